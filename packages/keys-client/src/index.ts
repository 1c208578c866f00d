export { KeyServiceClient } from './client.js';
export type {
  ApiKeyIdentity,
  AuthenticateInput,
  AuthenticateResult,
  KeyServiceClientOptions,
  TlsOptions,
} from './client.js';
export { KeyServiceError, KeyServiceUnavailableError } from './errors.js';
export { DENIALS, DENY_REASONS, PROBLEM_BASE, PROBLEM_CONTENT_TYPE, denialFor, denialResponse } from './denials.js';
export type { Denial, DenialResponse, DenyReason, LocalOutcome, Problem } from './denials.js';
export { KEY_HEADER_REDACT_PATHS, bearerToken, keyFromHeaders } from './headers.js';
export type { HeaderValue, KeyFromHeaders } from './headers.js';
export { PROTO_FILE, PROTO_ROOT, SERVICE_NAME, loadKeysProto } from './proto.js';
