import type { LocalGrant } from './caller-watch.js';
import type { Decision } from '../domain/decision.js';

/** Which tier answered: for metrics and tests. */
export type AuthPath = 'parse' | 'memory' | 'redis' | 'storage';

/** The tier a trace names: PostgreSQL's answer is told apart from one that also needed argon2. */
export type Tier = 'parse' | 'memory' | 'redis' | 'postgresql' | 'argon2';
export const TIER: Record<AuthPath, Tier> = { parse: 'parse', memory: 'memory', redis: 'redis', storage: 'postgresql' };

export interface AuthResult {
  decision: Decision;
  path: AuthPath;
  /**
   * For a call deciding several uses: how many are allowed (the first ones) when the key's limits
   * refuse the others (`decision` is then the refusal). Absent: all uses allowed, or all denied.
   */
  allowedUses?: number;
  /** For a watching caller's allow: what it needs to decide this key, address and scope itself (design: callers-hold-leases). */
  local?: LocalGrant | undefined;
}
