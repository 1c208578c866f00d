import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminToken } from '../../config.js';
import { AppError } from '../../domain/errors.js';

/** `viewer` reads only; `admin` reads and writes. */
export type AdminRole = 'admin' | 'viewer';

/** An authenticated admin: the audit actor, what it may do and which accounts it may touch (undefined: all). */
export interface Admin {
  name: string;
  role: AdminRole;
  accounts?: ReadonlySet<string> | undefined;
}

/**
 * The one contract every admin identity backend implements (static tokens, JWTs):
 * resolves the Admin behind an `Authorization` header, or rejects with UNAUTHENTICATED
 * (any other AppError is a fault of the backend itself, e.g. an unreachable key set).
 */
export interface AdminAuthenticator {
  authenticate(header: string | undefined): Promise<Admin>;
}

/** The bearer credential of a header, or UNAUTHENTICATED. */
export function bearer(header: string | undefined): string {
  const match = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
  if (!match?.[1]) throw unauthenticated();
  return match[1];
}

export const unauthenticated = () => new AppError('UNAUTHENTICATED', 'a valid admin bearer token is required');

const digest = (s: string) => createHash('sha256').update(s).digest();

/** ADMIN_TOKENS: compared in constant time per token; every static token is an `admin`. */
export class StaticTokenAuth implements AdminAuthenticator {
  #tokens: { name: string; digest: Buffer; accounts?: ReadonlySet<string> | undefined }[];

  constructor(tokens: readonly AdminToken[]) {
    this.#tokens = tokens.map((t) => ({
      name: t.name,
      digest: digest(t.token),
      accounts: t.accounts && new Set(t.accounts),
    }));
  }

  async authenticate(header: string | undefined): Promise<Admin> {
    const d = digest(bearer(header));
    const found = this.#tokens.find((t) => timingSafeEqual(t.digest, d));
    if (!found) throw unauthenticated();
    return { name: found.name, role: 'admin', accounts: found.accounts };
  }
}

/** Several backends in order: the first that recognises the credential answers; UNAUTHENTICATED when none does. */
export class FirstOfAuth implements AdminAuthenticator {
  readonly #backends: readonly AdminAuthenticator[];

  constructor(backends: readonly AdminAuthenticator[]) {
    this.#backends = backends;
  }

  async authenticate(header: string | undefined): Promise<Admin> {
    for (const backend of this.#backends) {
      try {
        return await backend.authenticate(header);
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'UNAUTHENTICATED')) throw err;
      }
    }
    throw unauthenticated();
  }
}

/** FORBIDDEN unless the admin may act on the account, and, for a write, holds the `admin` role. */
export function authorize(admin: Admin, accountId: string, write: boolean): void {
  // The account id is not echoed: whatever was put in the path must not come back.
  if (admin.accounts && !admin.accounts.has(accountId))
    throw new AppError('FORBIDDEN', 'this token may not act on this account');
  if (write && admin.role !== 'admin') throw new AppError('FORBIDDEN', 'this token may only read (role viewer)');
}
