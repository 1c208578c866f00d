import { createHash, timingSafeEqual } from 'node:crypto';
import type { AdminToken } from '../../config.js';
import { AppError } from '../../domain/errors.js';

/** An authenticated admin: the token's name and what it may act on. */
export interface Admin {
  name: string;
  accounts?: ReadonlySet<string> | undefined;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Checks `Authorization: Bearer <token>` against ADMIN_TOKENS in constant time per token. */
export class AdminAuth {
  #tokens: { name: string; digest: Buffer; accounts?: ReadonlySet<string> | undefined }[];

  constructor(tokens: readonly AdminToken[]) {
    this.#tokens = tokens.map((t) => ({ name: t.name, digest: digest(t.token), accounts: t.accounts && new Set(t.accounts) }));
  }

  /** The admin for a header, or UNAUTHENTICATED. */
  authenticate(header: string | undefined): Admin {
    const match = /^Bearer +(\S+)\s*$/i.exec(header ?? '');
    if (!match?.[1]) throw new AppError('UNAUTHENTICATED', 'a valid admin bearer token is required');
    const d = digest(match[1]);
    const found = this.#tokens.find((t) => timingSafeEqual(t.digest, d));
    if (!found) throw new AppError('UNAUTHENTICATED', 'a valid admin bearer token is required');
    return { name: found.name, accounts: found.accounts };
  }

  /** FORBIDDEN unless the admin may act on the account. */
  authorize(admin: Admin, accountId: string): void {
    // The account id is not echoed: whatever was put in the path must not come back.
    if (admin.accounts && !admin.accounts.has(accountId)) throw new AppError('FORBIDDEN', 'this token may not act on this account');
  }
}
