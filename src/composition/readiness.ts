import type { Invalidator } from '../service/invalidator.js';
import type { Database } from '../store/db.js';
import type { RedisParts } from './storage.js';

/** What /readyz reports. */
export interface Readiness {
  ready: boolean;
  /** Shared dependencies that are degraded, in words (empty when all is well). */
  degraded: string[];
}

/** Ready once caught up; shared faults are listed as degraded, never as unready (design: readiness-is-local). */
export function readinessCheck(db: Database, redis: RedisParts, invalidator: Invalidator): () => Promise<Readiness> {
  return async () => {
    const degraded: string[] = [];
    if (
      !(await db.query('SELECT 1').then(
        () => true,
        () => false,
      ))
    )
      degraded.push('storage unreachable: serving verified keys within the stale bound');
    if (!(await redis.ping())) degraded.push('redis unreachable: deciding from PostgreSQL');
    const bus = invalidator.degraded;
    if (bus) degraded.push(bus);
    return { ready: invalidator.everReady, degraded };
  };
}
