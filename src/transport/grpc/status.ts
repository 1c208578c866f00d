import * as grpc from '@grpc/grpc-js';
import { AppError } from '../../domain/errors.js';

/** The gRPC status of each error code the gRPC methods can meet; any other error is INTERNAL. */
const STATUS: Partial<Record<AppError['code'], grpc.status>> = {
  VALIDATION_FAILED: grpc.status.INVALID_ARGUMENT,
  STORAGE_UNAVAILABLE: grpc.status.UNAVAILABLE,
  // The key cannot be checked here: fail closed, and a caller's retry may reach a replica whose argon2 works.
  HASHER_FAULT: grpc.status.UNAVAILABLE,
  OVERLOADED: grpc.status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: grpc.status.DEADLINE_EXCEEDED,
};

/**
 * An error as the caller sees it: its status, and its message unless INTERNAL (then only "internal
 * error": an unexpected error's text is logged, never sent). `internal`: told of an INTERNAL one.
 */
export function statusOf(err: unknown, internal: (err: unknown) => void): { code: grpc.status; details: string } {
  const code = err instanceof AppError ? (STATUS[err.code] ?? grpc.status.INTERNAL) : grpc.status.INTERNAL;
  if (code === grpc.status.INTERNAL) {
    internal(err);
    return { code, details: 'internal error' };
  }
  return { code, details: (err as AppError).message };
}
