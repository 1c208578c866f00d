// An idle pooled connection that dies (the server restarts, a proxy cuts it) is told, not ignored,
// and does not crash the process: the next query opens a new connection.
import { once } from 'node:events';
import t from 'tap';
import { openDatabase } from '../../src/store/open-database.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createDatabase, query } from '../helpers/db.js';

/** End every connection to this test's own database but the one asking (never another test's). */
async function terminateOthers(url: string): Promise<void> {
  await query(
    url,
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
  );
}

t.test('an idle connection killed by the server is told to onIdleError, and the pool carries on', async (t) => {
  const url = await createDatabase(t, 'idle');
  const told: Error[] = [];
  const db = await openDatabase({ url, dataDir: '', onIdleError: (err) => told.push(err) });
  t.teardown(() => db.close());
  await db.query('SELECT 1'); // leaves one idle client in the pool
  await terminateOthers(url);
  for (let i = 0; i < 100 && told.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.equal(told.length, 1, "the idle client's error was told");
  t.equal((db as PgDatabase).idleErrors, 1, 'and counted');
  t.same(
    (await db.query<{ one: number }>('SELECT 1 AS one')).rows,
    [{ one: 1 }],
    'the next query opens a new connection',
  );
});

t.test('without a callback, the fault is a process warning, not silence', async (t) => {
  const url = await createDatabase(t, 'idle');
  const db = new PgDatabase({ connectionString: url });
  t.teardown(() => db.close());
  await db.query('SELECT 1');
  const warned = once(process, 'warning');
  await terminateOthers(url);
  const [warning] = (await warned) as [Error];
  t.match(warning.message, /idle pooled connection failed/);
});
