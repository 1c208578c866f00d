import { randomUUID } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { LeakReportService } from '../../service/leak-report-service.js';
import { checker } from '../../validation.js';
import { errorHandler, sendProblem } from '../http/problem.js';
import type { GithubPublicKeys } from './github-keys.js';
import { KeysUnavailableError, verifyGithubSignature } from './github-keys.js';

/** The audit actor of revokes made on GitHub's word. */
export const GITHUB_ACTOR = 'github-secret-scanning';
export const GITHUB_PATH = '/v1/secret-scanning/github';
/** GitHub sends at most 1,000 matches per request. */
export const MAX_ENTRIES = 1000;
/** 1,000 entries with long URLs fit with room to spare; anything larger is not GitHub. */
export const LEAK_BODY_LIMIT = 1_048_576;

/**
 * Only the shape is refused here: the text of an entry (its URL, its source) is GitHub's word about a
 * public place, and one odd character in one of 1,000 entries must not fail the whole report and leave
 * real keys live. The use case makes that text readable (escaped and cut, domain/text.ts) before it
 * reaches a revoke reason, an alert or the audit log.
 */
const Report = Type.Array(
  Type.Object({
    token: Type.String(),
    type: Type.String(),
    url: Type.Optional(Type.String()),
    // Older reports carry no source.
    source: Type.String({ default: 'unknown' }),
  }),
  { maxItems: MAX_ENTRIES },
);
const checkReport = checker(Report, 'json');

type Outcome =
  | 'accepted'
  | 'missing_signature'
  | 'unknown_key'
  | 'bad_signature'
  | 'malformed'
  | 'too_large'
  | 'unsupported_media_type'
  | 'keys_unavailable'
  | 'failed';

export interface LeakServerOptions {
  logger: Logger;
  leaks: LeakReportService;
  publicKeys: GithubPublicKeys;
  /** The app's metrics registry: reports by outcome, tokens by label. */
  registry: Registry;
  bodyLimit?: number;
}

function leakMetrics(registry: Registry) {
  return {
    reports: new Counter({
      name: 'otesse_keys_leak_reports_total',
      help: 'GitHub secret-scanning requests by outcome (accepted, bad_signature, unknown_key, malformed, too_large, …)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'otesse_keys_leak_report_tokens_total',
      help: "Tokens in accepted GitHub reports by label (true_positive: a real key; not_checked: past the report's argon2 budget)",
      labelNames: ['label'] as const,
      registers: [registry],
    }),
  };
}

const header = (request: FastifyRequest, name: string): string | undefined => {
  const v = request.headers[name];
  return typeof v === 'string' && v.length > 0 && v.length <= 1024 ? v : undefined;
};

/**
 * GitHub's secret-scanning partner endpoint, on a listener of its own that serves nothing else
 * (an Ingress can expose it without exposing the admin API). The signature is checked over the
 * raw bytes before the body is parsed; any refusal is a problem+json 4xx that changes nothing.
 */
export async function buildLeakServer(opts: LeakServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger,
    bodyLimit: opts.bodyLimit ?? LEAK_BODY_LIMIT,
    requestIdHeader: false,
    genReqId: () => randomUUID(),
    logController: new LogController({ requestIdLogLabel: 'request_id' }),
  }) as unknown as FastifyInstance;
  const metrics = leakMetrics(opts.registry);

  // The signature covers the bytes as sent: keep them, parse JSON only once they are verified.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const outcome: Outcome =
      err.statusCode === 413
        ? 'too_large'
        : err.statusCode === 415
          ? 'unsupported_media_type'
          : err instanceof KeysUnavailableError
            ? 'keys_unavailable'
            : (err.statusCode ?? 500) < 500
              ? 'malformed'
              : 'failed';
    metrics.reports.inc({ outcome });
    if (err instanceof KeysUnavailableError)
      return sendProblem(reply, 503, 'the signing keys cannot be read right now; retry later');
    return errorHandler(err, request, reply);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(reply, 404, `this listener serves only POST ${GITHUB_PATH}`));

  app.post(GITHUB_PATH, reportHandler(opts, metrics));
  return app;
}

/** Signature over the raw bytes first, then the body, then the use case; each refusal counted by outcome. */
function reportHandler(opts: LeakServerOptions, metrics: ReturnType<typeof leakMetrics>) {
  const refuse = (reply: FastifyReply, outcome: Outcome, status: number, detail: string) => {
    metrics.reports.inc({ outcome });
    return sendProblem(reply, status, detail);
  };
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const identifier = header(request, 'github-public-key-identifier');
    const signature = header(request, 'github-public-key-signature');
    if (!identifier || !signature)
      return refuse(
        reply,
        'missing_signature',
        400,
        'Github-Public-Key-Identifier and Github-Public-Key-Signature are required',
      );
    const key = await opts.publicKeys.get(identifier);
    if (!key) return refuse(reply, 'unknown_key', 401, 'the signing key identifier is not one GitHub publishes');
    const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
    if (!verifyGithubSignature(raw, signature, key))
      return refuse(reply, 'bad_signature', 401, 'the signature does not match the body');
    const entries = parseReport(raw);
    if (!entries)
      return refuse(
        reply,
        'malformed',
        400,
        `the body must be a JSON array of at most ${MAX_ENTRIES} {token, type, url, source}`,
      );
    const verdicts = await opts.leaks.report({ name: GITHUB_ACTOR, sourceIp: request.ip }, entries, {
      channel: 'github',
    });
    metrics.reports.inc({ outcome: 'accepted' });
    for (const v of verdicts) metrics.tokens.inc({ label: v.label ?? 'not_checked' });
    // Feedback is optional per token: a token left unchecked (the report's argon2 budget spent) gets none rather than a wrong label.
    const feedback = verdicts.flatMap((v, i) =>
      v.label ? [{ token_hash: v.tokenHash, token_type: entries[i]?.type ?? '', label: v.label }] : [],
    );
    return reply.type('application/json').send(feedback);
  };
}

/** The report, or undefined when it is not JSON of the expected shape (the parser's message may quote the body: never shown). */
function parseReport(raw: Buffer): Static<typeof Report> | undefined {
  try {
    const result = checkReport(JSON.parse(raw.toString('utf8')));
    return result.ok ? result.value : undefined;
  } catch {
    // Not JSON: the caller answers 400 `malformed` and counts it; the parser's message may quote the body.
    return undefined;
  }
}
