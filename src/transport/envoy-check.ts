import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { clientAddress, trustedProxies } from '../domain/forwarded-for.js';
import type { IpRule } from '../domain/ip.js';
import { checkGatewayRequest, identityHeaders, type Authenticate, type GatewayOutcome } from './gateway-check.js';
import { PROTO_ROOT } from './grpc/server.js';
import type { RouteMap } from './route-map.js';

export const ENVOY_PROTO_FILE = 'envoy/service/auth/v3/external_auth.proto';
export const ENVOY_SERVICE = 'envoy.service.auth.v3.Authorization';

/** google.rpc.Code values Envoy reads in CheckResponse.status. */
const RPC_OK = 0;
const RPC_PERMISSION_DENIED = 7;
const RPC_UNAUTHENTICATED = 16;

interface HeaderValueOption {
  header: { key: string; value: string };
  append_action: string;
}

export interface CheckRequest {
  attributes?: {
    source?: { address?: { socket_address?: { address?: string } } };
    request?: {
      http?: {
        method?: string;
        path?: string;
        headers?: Record<string, string>;
        header_map?: { headers?: { key: string; value: string; raw_value?: Buffer }[] };
      };
    };
    context_extensions?: Record<string, string>;
  };
}

export interface CheckResponse {
  status: { code: number; message: string };
  ok_response?: { headers: HeaderValueOption[]; headers_to_remove: string[] };
  denied_response?: { status: { code: number }; headers: HeaderValueOption[]; body: string };
}

export interface EnvoyCheckOptions {
  authenticate: Authenticate;
  /** FORWARD_AUTH_ROUTES: the scope when the route sets no context_extensions["scope"]. */
  routes?: RouteMap | undefined;
  /**
   * TRUST_PROXY: attributes.source.address is the peer of Envoy's connection (a load balancer, say);
   * its x-forwarded-for is believed only when that peer is one of these, as forward auth does.
   */
  trustProxy?: string[] | undefined;
  log: { error(obj: object, msg: string): void };
  onOutcome?: (outcome: GatewayOutcome) => void;
}

/** Load the Envoy ext_authz subset (proto/envoy, proto/google). */
export function loadEnvoyProto(): protoLoader.PackageDefinition {
  return protoLoader.loadSync(ENVOY_PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,
    enums: String,
    longs: Number,
    defaults: true,
    oneofs: true,
  });
}

/** Header names lower-cased, from `headers` or (encode_raw_headers) `header_map`. */
function headersOf(
  http: NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http'],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(http?.headers ?? {})) out[k.toLowerCase()] = v;
  for (const h of http?.header_map?.headers ?? [])
    out[h.key.toLowerCase()] = h.value || (h.raw_value ? h.raw_value.toString('utf8') : '');
  return out;
}

const overwrite = (headers: Record<string, string>): HeaderValueOption[] =>
  Object.entries(headers).map(([key, value]) => ({
    header: { key, value },
    append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
  }));

/** The decision as Envoy wants it: OK with identity headers added and the key header removed, or a denied response. */
export function toCheckResponse(outcome: GatewayOutcome): CheckResponse {
  if (outcome.allowed) {
    return {
      status: { code: RPC_OK, message: '' },
      ok_response: { headers: overwrite(identityHeaders(outcome.identity)), headers_to_remove: outcome.keyHeaders },
    };
  }
  const { status, headers, body } = outcome.answer;
  return {
    status: { code: status === 401 ? RPC_UNAUTHENTICATED : RPC_PERMISSION_DENIED, message: outcome.reason },
    denied_response: {
      status: { code: status },
      headers: overwrite({ ...headers, 'x-otesse-deny-reason': outcome.reason }),
      body: JSON.stringify(body),
    },
  };
}

/** `envoy.service.auth.v3.Authorization/Check` for Envoy's ext_authz filter (and Istio's CUSTOM action). */
export class EnvoyCheck {
  readonly definition = loadEnvoyProto();
  #o: EnvoyCheckOptions;
  #trusted: IpRule[];

  constructor(opts: EnvoyCheckOptions) {
    this.#o = opts;
    this.#trusted = trustedProxies(opts.trustProxy);
  }

  addToServer(server: grpc.Server): void {
    const pkg = grpc.loadPackageDefinition(this.definition) as unknown as {
      envoy: { service: { auth: { v3: { Authorization: grpc.ServiceClientConstructor } } } };
    };
    server.addService(pkg.envoy.service.auth.v3.Authorization.service, { Check: this.#check.bind(this) });
  }

  #check(call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>, callback: grpc.sendUnaryData<CheckResponse>): void {
    const attrs = call.request.attributes;
    const http = attrs?.request?.http;
    const headers = headersOf(http);
    const ip = clientAddress(
      attrs?.source?.address?.socket_address?.address ?? '',
      headers['x-forwarded-for'],
      this.#trusted,
    );
    // context_extensions come from the operator's Envoy configuration, never from the client.
    checkGatewayRequest(this.#o.authenticate, this.#o.routes, {
      headers,
      ip,
      method: http?.method || undefined,
      target: http?.path || undefined,
      fixedScope: attrs?.context_extensions?.scope || undefined,
    }).then(
      (outcome) => {
        this.#o.onOutcome?.(outcome);
        callback(null, toCheckResponse(outcome));
      },
      (err: unknown) => {
        this.#o.log.error({ err }, 'Envoy Check failed');
        callback({ code: grpc.status.INTERNAL, details: 'internal error' });
      },
    );
  }
}
