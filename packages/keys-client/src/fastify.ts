import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { KeyServiceClient, type ApiKeyIdentity, type KeyServiceClientOptions } from './client.js';
import { denialResponse, type DenialResponse } from './denials.js';
import { KeyServiceUnavailableError } from './errors.js';
import { keyFromHeaders, type KeyFromHeaders } from './headers.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The API key's identity on a route with `config.scope`, once allowed; null elsewhere. */
    apiKey: ApiKeyIdentity | null;
  }
  interface FastifyContextConfig {
    /** The scope an API key needs for this route, e.g. `bookings:read`; routes without it are not checked. */
    scope?: string;
  }
}

export type { ApiKeyIdentity } from './client.js';
export { KEY_HEADER_REDACT_PATHS } from './headers.js';

export interface OtesseKeysOptions {
  /** A client to share (the plugin does not close it); otherwise one is made from `address`. */
  client?: KeyServiceClient;
  /** The key service, e.g. `dns:///otesse-keys-headless:50051` (used when `client` is not given). */
  address?: string;
  /** Deadline, TLS, keepalive... for the client the plugin makes. */
  clientOptions?: Omit<KeyServiceClientOptions, 'address'>;
}

function send(reply: FastifyReply, answer: DenialResponse): FastifyReply {
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/**
 * The check of a route with `config.scope` that memory could not decide: the key's identity on
 * request.apiKey, or a problem+json answer.
 */
async function check(
  client: KeyServiceClient,
  request: FastifyRequest,
  reply: FastifyReply,
  scope: string,
  found: KeyFromHeaders,
): Promise<FastifyReply | undefined> {
  if (found.kind === 'conflict') return send(reply, denialResponse('KEY_CONFLICT'));
  if (found.kind === 'missing') return send(reply, denialResponse('KEY_MISSING'));
  let result;
  try {
    result = await client.authenticate({ key: found.key, ip: request.ip, scope });
  } catch (err) {
    if (err instanceof KeyServiceUnavailableError) {
      request.log.warn({ code: err.code }, 'key service unavailable: request refused');
      return send(reply, denialResponse('SERVICE_UNAVAILABLE'));
    }
    throw err; // a caller's bug (a scope not in the catalog): the app's error handler answers 500
  }
  if (!result.allowed) {
    request.log.info({ reason: result.reason, keyId: result.identity?.keyId }, 'API key denied');
    return send(reply, denialResponse(result.reason, result.retryAfterMs));
  }
  request.apiKey = result.identity;
  return undefined;
}

const plugin: FastifyPluginAsync<OtesseKeysOptions> = async (fastify: FastifyInstance, opts: OtesseKeysOptions) => {
  const client =
    opts.client ?? new KeyServiceClient({ ...opts.clientOptions, address: opts.address ?? 'localhost:50051' });
  // Only a client made here is closed here.
  const owned = opts.client ? undefined : client;
  fastify.decorateRequest('apiKey', null);
  // A call this client may decide from memory is decided here, synchronously: no promise, no await.
  fastify.addHook('onRequest', (request, reply, done) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined) return done();
    const found = keyFromHeaders(request.headers);
    const known = found.kind === 'key' ? client.decideLocally({ key: found.key, ip: request.ip, scope }) : undefined;
    if (known !== undefined) {
      request.apiKey = known.identity;
      return done();
    }
    // A reply sent by the check ends the request; `done` is called only to go on to the route.
    check(client, request, reply, scope, found).then((sent) => (sent === undefined ? done() : undefined), done);
    return undefined;
  });
  if (owned) fastify.addHook('onClose', async () => owned.close());
};

// What fastify-plugin would do (the hook must cover the routes of the app that registers it);
// done by hand so the package depends on grpc-js and proto-loader alone.
Object.assign(plugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@otesse/keys-client',
});

/** Register once; then `config: { scope: 'bookings:read' }` on a route requires an API key granting that scope. */
export const otesseKeys = plugin;
export default plugin;
