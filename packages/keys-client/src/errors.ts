/** A fault talking to the key service (never a deny: a deny is a result). Never carries the key. */
export class KeyServiceError extends Error {
  /** The gRPC status name, e.g. `INVALID_ARGUMENT`. */
  readonly code: string;

  constructor(code: string, message: string) {
    super(message);
    this.name = 'KeyServiceError';
    this.code = code;
  }
}

/**
 * The key service could not decide (unreachable, too slow for the deadline, or shedding load):
 * the caller must not allow the request; an HTTP service answers 503.
 */
export class KeyServiceUnavailableError extends KeyServiceError {
  constructor(code: string, message: string) {
    super(code, message);
    this.name = 'KeyServiceUnavailableError';
  }
}
