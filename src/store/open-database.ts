import { join } from 'node:path';
import type { Database } from './db.js';
import { PgDatabase } from './pg-database.js';
import { PgliteDatabase } from './pglite-database.js';

/** The configured PostgreSQL server, or the embedded PGlite under `dataDir/pg` when there is no URL. */
export async function openDatabase(opts: { url?: string | undefined; dataDir: string; max?: number }): Promise<Database> {
  if (opts.url) return new PgDatabase({ connectionString: opts.url, ...(opts.max ? { max: opts.max } : {}) });
  return PgliteDatabase.open(join(opts.dataDir, 'pg'));
}
