// Refused admin attempts fold into one audit entry per account, action, actor and source address
// per window: on the real PostgreSQL under concurrency (many connections, as replicas would), and
// on the embedded PGlite, which runs the same migrations.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { auditRepository, type NewAudit } from '../../src/store/audit-repository.js';
import type { Database } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrations.js';
import { openDatabase } from '../../src/store/open-database.js';
import { createDatabase } from '../helpers/db.js';

const refusal = (over: Partial<NewAudit> = {}): NewAudit => ({
  account_id: 'acct_v',
  key_id: null,
  actor: 'unauthenticated',
  action: 'admin.unauthenticated',
  source_ip: '198.51.100.1',
  changes: { status: 401, method: 'GET', route: '/v1/accounts/:accountId/keys' },
  ...over,
});

interface Row {
  actor: string;
  action: string;
  source_ip: string | null;
  count: string | number;
}
interface Asserts {
  same(...args: any[]): unknown;
  equal(...args: any[]): unknown;
}
async function rows(db: Database): Promise<[string, string, string | null, number][]> {
  const { rows: r } = await db.query<Row>(
    "SELECT actor, action, source_ip, count FROM audit_log WHERE account_id = 'acct_v' ORDER BY id",
  );
  return r.map((x) => [x.actor, x.action, x.source_ip, Number(x.count)]);
}

async function folds(t: Asserts, db: Database, parallel: boolean): Promise<void> {
  await migrate(db);
  const writes = Array.from({ length: 40 }, () => () => auditRepository.recordRefusal(db, refusal()));
  if (parallel) await Promise.all(writes.map((w) => w()));
  else for (const w of writes) await w();
  await auditRepository.recordRefusal(db, refusal({ source_ip: '198.51.100.2' }));
  await auditRepository.recordRefusal(db, refusal({ actor: 'limited', action: 'admin.forbidden' }));
  await auditRepository.recordRefusal(db, refusal({ source_ip: null }));
  await auditRepository.recordRefusal(db, refusal({ source_ip: null }));
  t.same(
    await rows(db),
    [
      ['unauthenticated', 'admin.unauthenticated', '198.51.100.1', 40],
      ['unauthenticated', 'admin.unauthenticated', '198.51.100.2', 1],
      ['limited', 'admin.forbidden', '198.51.100.1', 1],
      ['unauthenticated', 'admin.unauthenticated', null, 2],
    ],
    '44 refusals, 4 entries',
  );
  // The window moves on: the next refusal starts a new entry, the old one keeps its count.
  await db.query("UPDATE audit_log SET refusal_window = refusal_window - interval '10 minutes'");
  await auditRepository.recordRefusal(db, refusal());
  t.same(
    (await rows(db)).filter(([, , ip]) => ip === '198.51.100.1').map((r) => r[3]),
    [40, 1, 1],
    'a new window, a new entry',
  );
  await auditRepository.insert(db, [
    { ...refusal(), action: 'key.created' },
    { ...refusal(), action: 'key.created' },
  ]);
  t.equal(
    (await rows(db)).filter(([, action]) => action === 'key.created').length,
    2,
    'ordinary entries are never folded',
  );
}

t.test('PostgreSQL: 40 concurrent refusals from one address add up in one entry', async (t) => {
  const db = await openDatabase({ url: await createDatabase(t, 'audit'), dataDir: '', max: 10 });
  t.teardown(() => db.close());
  await folds(t, db, true);
});

t.test('PGlite: the same migrations, the same folding', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-audit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = await openDatabase({ dataDir: dir });
  t.teardown(() => db.close());
  await folds(t, db, false);
});
