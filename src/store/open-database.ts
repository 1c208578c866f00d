import { join } from 'node:path';
import type { Database } from './db.js';
import { connectionOptions } from './pg-connection.js';
import { PgDatabase } from './pg-database.js';
import { PgliteDatabase } from './pglite-database.js';

export interface OpenDatabaseOptions {
  url?: string | undefined;
  /** PostgreSQL server only: the CA file its certificate must verify against (see PgEndpoint). */
  tlsCaFile?: string | undefined;
  dataDir: string;
  max?: number;
  /** PostgreSQL server only: an idle pooled connection failed (see PgDatabaseOptions.onIdleError). */
  onIdleError?: (err: Error) => void;
}

/** The configured PostgreSQL server, or the embedded PGlite under `dataDir/pg` when there is no URL. */
export async function openDatabase(opts: OpenDatabaseOptions): Promise<Database> {
  if (opts.url)
    return new PgDatabase({
      ...connectionOptions({ url: opts.url, tlsCaFile: opts.tlsCaFile }),
      ...(opts.max ? { max: opts.max } : {}),
      onIdleError: opts.onIdleError,
    });
  return PgliteDatabase.open(join(opts.dataDir, 'pg'));
}
