import t from 'tap';
import pg from 'pg';
import { UsageRecorder } from '../../src/service/usage.js';
import type { Database, Queryable } from '../../src/store/db.js';
import { keysRepository } from '../../src/store/keys-repository.js';
import { migrate } from '../../src/store/migrations.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { createDatabase } from '../helpers/db.js';

type Fault = 'none' | 'before-commit' | 'after-commit';

/**
 * A real PgDatabase with two faults a flush must survive: `before-commit` throws inside the
 * transaction (rolled back, nothing written); `after-commit` throws once the server committed,
 * as when the acknowledgement of COMMIT is lost on the wire. Counts the statements of each transaction.
 */
class FaultyDatabase implements Database {
  readonly embedded = false;
  fault: Fault = 'none';
  /** Statements run inside each transaction, one entry per transaction (BEGIN/COMMIT not counted). */
  statements: number[] = [];
  #inner: PgDatabase;

  constructor(inner: PgDatabase) {
    this.#inner = inner;
  }

  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<{ rows: R[] }> {
    return this.#inner.query<R>(sql, params);
  }

  exec(sql: string): Promise<void> {
    return this.#inner.exec(sql);
  }

  async transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    const fault = this.fault;
    this.fault = 'none';
    const index = this.statements.push(0) - 1;
    const out = await this.#inner.transaction(async (tx) => {
      const counted: Queryable = {
        query: <R>(sql: string, params?: readonly unknown[]) => {
          this.statements[index] = (this.statements[index] ?? 0) + 1;
          return tx.query<R>(sql, params);
        },
      };
      const result = await fn(counted);
      if (fault === 'before-commit') throw new Error('injected: connection lost before COMMIT');
      return result;
    });
    if (fault === 'after-commit') throw new Error('injected: COMMIT acknowledgement lost');
    return out;
  }

  close(): Promise<void> {
    return this.#inner.close();
  }
}

interface Totals {
  hourly: Record<string, number>;
  addresses: Record<string, number>;
  batches: number;
}

interface TestLike {
  teardown(fn: () => unknown): void;
}

async function setup(t: TestLike) {
  const url = await createDatabase(t, 'usage');
  const inner = new PgDatabase({ connectionString: url });
  await migrate(inner);
  const db = new FaultyDatabase(inner);
  t.teardown(() => db.close());
  for (const id of ['key_AAAAAAAAAAAA', 'key_BBBBBBBBBBBB']) {
    await keysRepository.insert(inner, {
      id,
      account_id: 'acct_1',
      environment: 'live',
      label: id,
      scopes: ['bookings:read'],
      allowed_ips: [],
      secret_hash: 'not-a-real-hash',
      secret_check: null,
      redacted: 'otesse_live_sk_x…',
      created_by: 'test',
      expires_at: null,
      replaces: null,
    });
  }
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  t.teardown(() => client.end());
  const deniedRows = async () =>
    (
      await client.query<{ key_id: string; ip: string; reason: string }>(
        'SELECT key_id, ip, reason FROM key_denied_addresses',
      )
    ).rows;
  /** What the database holds, summed per key|outcome and per key|ip. */
  const totals = async (): Promise<Totals> => {
    const out: Totals = { hourly: {}, addresses: {}, batches: 0 };
    for (const r of (
      await client.query('SELECT key_id, outcome, sum(count)::int AS n FROM key_usage_hourly GROUP BY 1, 2')
    ).rows) {
      out.hourly[`${r.key_id}|${r.outcome}`] = r.n;
    }
    for (const r of (await client.query('SELECT key_id, ip, count::int AS n FROM key_addresses')).rows)
      out.addresses[`${r.key_id}|${r.ip}`] = r.n;
    out.batches = (await client.query('SELECT count(*)::int AS n FROM activity_batches')).rows[0].n;
    return out;
  };
  const lastUsed = async (id: string) =>
    (await client.query('SELECT last_used_at, last_used_ip FROM api_keys WHERE id = $1', [id])).rows[0] as {
      last_used_at: Date | null;
      last_used_ip: string | null;
    };
  return { db, totals, lastUsed, deniedRows };
}

const A = 'key_AAAAAAAAAAAA';
const B = 'key_BBBBBBBBBBBB';
const T0 = Date.parse('2030-01-02T10:15:00Z');

/** Record `n` calls of one kind, one millisecond apart from `start`. */
function traffic(
  u: UsageRecorder,
  keyId: string,
  ip: string,
  n: number,
  start: number,
  reason?: 'IP_NOT_ALLOWED' | 'SCOPE_NOT_GRANTED',
) {
  for (let i = 0; i < n; i++) u.record(keyId, ip, reason === undefined, reason, start + i);
}

t.test('one flush is a few statements whatever the traffic, and writes exact counts', async (t) => {
  const { db, totals, lastUsed, deniedRows } = await setup(t);
  const usage = new UsageRecorder({ db, replicaId: 'r-test' });
  await usage.flush();
  t.same(db.statements, [], 'nothing counted: no transaction at all');

  traffic(usage, A, '198.51.100.1', 3, T0);
  await usage.flush();
  const small = db.statements[0];

  // 5,000 calls on two keys, 50 addresses, three outcomes, two hours.
  for (let i = 0; i < 50; i++) {
    traffic(usage, A, `198.51.100.${i + 10}`, 60, T0 + i * 1000);
    traffic(usage, B, `2001:db8::${(i + 1).toString(16)}`, 20, T0 + 3_600_000 + i * 1000, 'IP_NOT_ALLOWED');
    traffic(usage, B, `2001:db8::${(i + 1).toString(16)}`, 20, T0 + 3_600_000 + i * 1000 + 500, 'SCOPE_NOT_GRANTED');
  }
  t.equal(usage.unflushed, 5000);
  await usage.flush();
  const large = db.statements[1];
  t.equal(db.statements.length, 2, 'one transaction per flush');
  t.ok(small !== undefined && small <= 4, `3 allowed calls: at most 4 statements (measured ${small})`);
  t.ok(
    large !== undefined && large <= 6,
    `5,000 calls with denials: at most 6 statements, whatever the volume (measured ${large}, plus BEGIN and COMMIT)`,
  );
  t.equal(usage.unflushed, 0);

  const got = await totals();
  t.same(got.hourly, { [`${A}|ALLOWED`]: 3 + 3000, [`${B}|IP_NOT_ALLOWED`]: 1000, [`${B}|SCOPE_NOT_GRANTED`]: 1000 });
  t.equal(Object.keys(got.addresses).length, 1 + 50, 'addresses of allowed calls only');
  t.equal(got.addresses[`${A}|198.51.100.1`], 3);
  t.equal(got.addresses[`${B}|2001:db8::32`], undefined, 'a denied address is not an address of the key');
  const denied = await deniedRows();
  t.equal(denied.length, 10, 'denied addresses: a sample of 10 per key and flush');
  t.equal(got.batches, 2);
  const a = await lastUsed(A);
  t.equal(a.last_used_at?.getTime(), T0 + 49 * 1000 + 59, 'last use of A is its latest allowed call');
  t.equal(a.last_used_ip, '198.51.100.59');
  t.same(await lastUsed(B), { last_used_at: null, last_used_ip: null }, 'denied calls are not a use');
});

t.test(
  'a flush whose COMMIT went through but whose acknowledgement was lost is retried without double counting',
  async (t) => {
    const { db, totals, lastUsed } = await setup(t);
    const usage = new UsageRecorder({ db, replicaId: 'r-test' });
    traffic(usage, A, '198.51.100.1', 70, T0);
    traffic(usage, A, '198.51.100.2', 30, T0 + 100, 'SCOPE_NOT_GRANTED');
    db.fault = 'after-commit';
    await t.rejects(usage.flush(), /acknowledgement lost/);
    t.same(
      (await totals()).hourly,
      { [`${A}|ALLOWED`]: 70, [`${A}|SCOPE_NOT_GRANTED`]: 30 },
      'the server did commit the batch',
    );
    t.equal(usage.unflushed, 100, 'the recorder cannot know that: it keeps the batch');

    traffic(usage, A, '198.51.100.1', 5, T0 + 1000);
    await usage.flush();
    const got = await totals();
    t.same(
      got.hourly,
      { [`${A}|ALLOWED`]: 75, [`${A}|SCOPE_NOT_GRANTED`]: 30 },
      'the retried batch is not counted twice; later calls are counted once',
    );
    t.same(got.addresses, { [`${A}|198.51.100.1`]: 75 }, 'addresses of allowed calls');
    t.equal(usage.unflushed, 0);
    t.equal((await lastUsed(A)).last_used_at?.getTime(), T0 + 1004);

    await usage.flush();
    t.same(
      (await totals()).hourly,
      { [`${A}|ALLOWED`]: 75, [`${A}|SCOPE_NOT_GRANTED`]: 30 },
      'a further flush changes nothing',
    );
  },
);

t.test('a flush that fails before COMMIT loses nothing: the retry writes it exactly once', async (t) => {
  const { db, totals } = await setup(t);
  const flushes: boolean[] = [];
  const usage = new UsageRecorder({ db, replicaId: 'r-test', onFlush: (ok) => flushes.push(ok) });
  traffic(usage, A, '198.51.100.1', 40, T0);
  traffic(usage, B, '203.0.113.9', 12, T0, 'IP_NOT_ALLOWED');
  db.fault = 'before-commit';
  await t.rejects(usage.flush(), /before COMMIT/);
  t.same(await totals(), { hourly: {}, addresses: {}, batches: 0 }, 'rolled back: nothing written');
  t.equal(usage.unflushed, 52);

  traffic(usage, B, '203.0.113.9', 8, T0 + 10, 'IP_NOT_ALLOWED');
  await usage.flush();
  const got = await totals();
  t.same(got.hourly, { [`${A}|ALLOWED`]: 40, [`${B}|IP_NOT_ALLOWED`]: 20 });
  t.same(got.addresses, { [`${A}|198.51.100.1`]: 40 }, 'addresses of allowed calls');
  t.same(flushes, [false, true, true], 'the failed batch went first on retry, then the newer counts');
});

t.test('flushes started together, with calls between them, count every call once', async (t) => {
  const { db, totals } = await setup(t);
  const usage = new UsageRecorder({ db, replicaId: 'r-test' });
  const running: Promise<void>[] = [];
  for (let i = 0; i < 10; i++) {
    traffic(usage, A, `198.51.100.${i}`, 10, T0 + i * 10);
    running.push(usage.flush());
  }
  await Promise.all(running);
  const got = await totals();
  t.same(got.hourly, { [`${A}|ALLOWED`]: 100 });
  t.equal(
    Object.values(got.addresses).reduce((s, n) => s + n, 0),
    100,
  );
});

t.test('two replicas flushing into one database add up exactly', async (t) => {
  const { db, totals } = await setup(t);
  const r1 = new UsageRecorder({ db, replicaId: 'r1' });
  const r2 = new UsageRecorder({ db, replicaId: 'r2' });
  traffic(r1, A, '198.51.100.1', 33, T0);
  traffic(r2, A, '198.51.100.1', 17, T0 + 5);
  traffic(r2, A, '198.51.100.3', 4, T0 + 50, 'IP_NOT_ALLOWED');
  await Promise.all([r1.flush(), r2.flush()]);
  const got = await totals();
  t.same(got.hourly, { [`${A}|ALLOWED`]: 50, [`${A}|IP_NOT_ALLOWED`]: 4 });
  t.same(got.addresses, { [`${A}|198.51.100.1`]: 50 });
});

t.test(
  'a stranger denied from 1,000 addresses adds at most 50 rows for the key, and no address of the key',
  async (t) => {
    const { db, totals, deniedRows } = await setup(t);
    const usage = new UsageRecorder({ db, replicaId: 'r-test' });
    for (let round = 0; round < 10; round++) {
      for (let i = 0; i < 100; i++) usage.record(A, `10.0.${round}.${i}`, false, 'KEY_UNKNOWN', T0 + round * 1000 + i);
      await usage.flush();
    }
    const got = await totals();
    t.same(got.hourly, { [`${A}|KEY_UNKNOWN`]: 1000 }, 'every denial counted, per reason');
    t.same(got.addresses, {}, 'no address rows');
    const denied = await deniedRows();
    t.equal(denied.length, 50, '50 rows kept (the newest)');
    t.ok(
      denied.every((d) => d.ip.startsWith('10.0.')),
      'a sample of the addresses',
    );
  },
);

t.test('while flushes fail, memory is bounded: the oldest entries are dropped and counted', async (t) => {
  const { db } = await setup(t);
  let reported = 0;
  const usage = new UsageRecorder({
    db,
    replicaId: 'r-test',
    maxEntries: 1000,
    onDrop: (n) => {
      reported += n;
    },
  });
  for (let i = 0; i < 3000; i++)
    usage.record(A, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, true, undefined, T0 + i * 3_600_000);
  t.equal(usage.dropped, 4000, 'hour and address entries beyond 1,000 each dropped');
  t.equal(reported, 4000, 'and reported');
  t.ok(usage.unflushed <= 1000, `counts held: ${usage.unflushed}`);
});

t.test('replicas flushing at once, keys counted in opposite orders, neither deadlock nor lose a count', async (t) => {
  const { db, totals } = await setup(t);
  const keys = Array.from({ length: 200 }, (_, i) => `key_${String(i).padStart(12, '0')}`);
  await db.query(
    `INSERT INTO api_keys (id, account_id, environment, label, scopes, secret_hash, redacted, created_by)
    SELECT id, 'acct_1', 'live', id, '{bookings:read}', 'x', 'x', 'test' FROM unnest($1::text[]) AS id`,
    [keys],
  );
  const results: boolean[] = [];
  const replicas = Array.from(
    { length: 4 },
    (_, i) => new UsageRecorder({ db, replicaId: `r${i}`, onFlush: (ok) => results.push(ok) }),
  );
  const rounds = 5;
  for (let round = 0; round < rounds; round++) {
    replicas.forEach((r, i) => {
      for (const k of i % 2 === 0 ? keys : [...keys].reverse())
        r.record(k, `198.51.100.${i}`, true, undefined, T0 + round);
    });
    await Promise.allSettled(replicas.map((r) => r.flush()));
  }
  t.equal(results.filter((ok) => !ok).length, 0, `no flush failed (${results.length} flushes)`);
  const got = await totals();
  t.equal(
    Object.values(got.hourly).reduce((s, n) => s + n, 0),
    keys.length * replicas.length * rounds,
    'every call counted once',
  );
  t.same(new Set(Object.values(got.addresses)), new Set([rounds]), 'every key and address counted once per round');
});

t.test('repeated allows across addresses, an hour boundary and flushes in between are counted exactly', async (t) => {
  const { db, lastUsed } = await setup(t);
  const usage = new UsageRecorder({ db, replicaId: 'r-test' });
  const ips = ['198.51.100.1', '198.51.100.2', '2001:db8::1'];
  const start = T0 - (T0 % 3_600_000) + 3_600_000 - 3000; // 3 s before an hour starts
  const hourly = new Map<string, number>();
  const addresses = new Map<string, number>();
  const add = (m: Map<string, number>, k: string, n: number) => m.set(k, (m.get(k) ?? 0) + n);
  let last = { at: 0, ip: '' };
  for (let i = 0; i < 3000; i++) {
    const ip = ips[(i * i) % 3] as string;
    const now = start + i * 2; // the hour changes at i = 1500
    const count = i % 5 === 0 ? 3 : 1;
    const hour = new Date(now - (now % 3_600_000)).toISOString();
    usage.record(A, ip, true, undefined, now, count);
    add(hourly, `${hour}|ALLOWED`, count);
    add(addresses, ip, count);
    last = { at: now, ip };
    if (i % 11 === 0) {
      usage.record(A, ip, false, 'SCOPE_NOT_GRANTED', now);
      add(hourly, `${hour}|SCOPE_NOT_GRANTED`, 1);
    }
    if (i === 1000 || i === 2200) await usage.flush();
  }
  await usage.flush();
  const rows = (
    await db.query<{ hour: Date; outcome: string; n: number }>(
      'SELECT hour, outcome, sum(count)::int AS n FROM key_usage_hourly WHERE key_id = $1 GROUP BY 1, 2',
      [A],
    )
  ).rows;
  t.same(new Map(rows.map((r) => [`${r.hour.toISOString()}|${r.outcome}`, r.n])), hourly, 'per hour and outcome');
  const seen = (
    await db.query<{ ip: string; n: number }>('SELECT ip, count::int AS n FROM key_addresses WHERE key_id = $1', [A])
  ).rows;
  t.same(new Map(seen.map((r) => [r.ip, r.n])), addresses, 'per address');
  const a = await lastUsed(A);
  t.same({ at: a.last_used_at?.getTime(), ip: a.last_used_ip }, last, 'the last allowed call is the last use');
});

t.test('allows counted after entries were dropped at the bound are not lost', async (t) => {
  const { db, totals } = await setup(t);
  let dropped = 0;
  const usage = new UsageRecorder({
    db,
    replicaId: 'r-test',
    maxEntries: 2,
    onDrop: (n) => {
      dropped += n;
    },
  });
  traffic(usage, A, '198.51.100.1', 5, T0);
  traffic(usage, A, '198.51.100.2', 5, T0 + 10);
  traffic(usage, A, '198.51.100.3', 5, T0 + 20); // a third address: the oldest (.1) is dropped
  traffic(usage, A, '198.51.100.1', 5, T0 + 30); // .1 again: a new entry, and .2 is dropped
  traffic(usage, A, '198.51.100.3', 5, T0 + 40);
  await usage.flush();
  t.equal(dropped, 2, 'two address entries dropped');
  const got = await totals();
  t.same(
    got.addresses,
    { [`${A}|198.51.100.1`]: 5, [`${A}|198.51.100.3`]: 10 },
    'an address dropped and seen again counts its later calls; the kept one counts every call',
  );
  t.same(got.hourly, { [`${A}|ALLOWED`]: 25 }, 'every allowed call counted in the hour');
});
