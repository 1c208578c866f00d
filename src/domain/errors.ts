/** Stable error codes; transports map them to HTTP or gRPC status, nowhere else. */
export type ErrorCode =
  | 'VALIDATION_FAILED'
  | 'NOT_FOUND'
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'STORAGE_UNAVAILABLE'
  | 'OVERLOADED'
  /** The caller's deadline passed (or it cancelled) before the work could start. */
  | 'DEADLINE_EXCEEDED'
  /** The change is committed but could not be announced to the replicas yet: the message says when it holds. */
  | 'PROPAGATION_PENDING'
  /** argon2 failed (a stored hash that does not decode, the native module, memory): the key cannot be checked. */
  | 'HASHER_FAULT'
  | 'INTERNAL';

export interface FieldError {
  path: string;
  message: string;
}

/** A fault or refusal with a stable code, safe to show (never carries a secret). */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly errors: FieldError[];

  constructor(code: ErrorCode, message: string, errors: FieldError[] = []) {
    super(message);
    this.name = 'AppError';
    this.code = code;
    this.errors = errors;
  }
}

/** Shorthand for a validation failure on one field. */
export function invalid(path: string, message: string): AppError {
  return new AppError('VALIDATION_FAILED', `${path}: ${message}`, [{ path, message }]);
}
