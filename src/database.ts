// How the composition root opens PostgreSQL: which URL serves what, TLS, and the start-up checks.
// Nothing above the store learns whether it runs through PgBouncer or over TLS.
import type { Config } from './config.js';
import type { Database } from './store/db.js';
import { migrate, unappliedMigrations } from './store/migrations.js';
import { openDatabase } from './store/open-database.js';
import { checkServer, type PgEndpoint } from './store/pg-connection.js';

/** The service's own queries, or the migrations (on DATABASE_MIGRATION_URL when it is set). */
type Use = 'service' | 'migrations';

function endpoint(config: Config, use: Use): PgEndpoint | undefined {
  const direct = use === 'migrations' && config.DATABASE_MIGRATION_URL !== undefined;
  const url = direct ? config.DATABASE_MIGRATION_URL : config.DATABASE_URL;
  if (!url) return undefined;
  return {
    url,
    urlName: direct ? 'DATABASE_MIGRATION_URL' : 'DATABASE_URL',
    tlsCaFile: config.DATABASE_TLS_CA,
    tlsCaName: 'DATABASE_TLS_CA',
  };
}

/**
 * The database for `use`, its server checked first (TLS as configured, transactions kept on one
 * connection), or the embedded PGlite under DATA_DIR when there is no URL.
 */
export async function openConfiguredDatabase(
  config: Config,
  use: Use,
  opts: { max?: number; onIdleError?: (err: Error) => void } = {},
): Promise<Database> {
  const e = endpoint(config, use);
  if (e) await checkServer(e);
  return openDatabase({ url: e?.url, tlsCaFile: e?.tlsCaFile, dataDir: config.DATA_DIR, ...opts });
}

/**
 * Apply the migrations: over `db`, or over a connection of their own to DATABASE_MIGRATION_URL (a
 * pooler in front of DATABASE_URL need not carry DDL), and then `db` must see them: both URLs name
 * one database. Returns the names applied.
 */
export async function applyMigrations(config: Config, db: Database): Promise<string[]> {
  if (!config.DATABASE_MIGRATION_URL) return migrate(db);
  const direct = await openConfiguredDatabase(config, 'migrations', { max: 1 });
  let applied: string[];
  try {
    applied = await migrate(direct);
  } finally {
    await direct.close();
  }
  const missing = await unappliedMigrations(db);
  if (missing.length > 0) {
    throw new Error(
      `DATABASE_MIGRATION_URL: the migrations applied there are not seen through DATABASE_URL (${missing.length} missing): both must name the same database`,
    );
  }
  return applied;
}
