import { ConfigError, loadConfig } from './config.js';
import { migrate } from './store/migrations.js';
import { PgDatabase } from './store/pg-database.js';
import { PgliteDatabase } from './store/pglite-database.js';
import { join } from 'node:path';

/** `npm run migrate`: apply the migrations to DATABASE_URL (or the embedded database) and exit. */
async function run(): Promise<void> {
  const config = loadConfig();
  const db = config.DATABASE_URL ? new PgDatabase({ connectionString: config.DATABASE_URL, max: 1 }) : await PgliteDatabase.open(join(config.DATA_DIR, 'pg'));
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
  } finally {
    await db.close();
  }
}

run().catch((err: unknown) => {
  process.stderr.write(`${err instanceof ConfigError ? 'configuration error' : 'migration failed'}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
