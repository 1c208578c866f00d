import { ConfigError, loadConfig } from './config.js';
import { openConfiguredDatabase } from './database.js';
import { migrate } from './store/migrations.js';

/** `npm run migrate`: apply the migrations over DATABASE_MIGRATION_URL, else DATABASE_URL (or the embedded database), and exit. */
async function run(): Promise<void> {
  const config = loadConfig(process.env, { migrateOnly: true });
  const db = await openConfiguredDatabase(config, 'migrations', { max: 1 });
  try {
    const applied = await migrate(db);
    process.stdout.write(applied.length > 0 ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
  } finally {
    await db.close();
  }
}

run().catch((err: unknown) => {
  process.stderr.write(
    `${err instanceof ConfigError ? 'configuration error' : 'migration failed'}: ${err instanceof Error ? err.message : String(err)}\n`,
  );
  process.exit(1);
});
