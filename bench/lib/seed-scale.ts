// Bulk seeding for the at-scale benchmark: a million keys in a few dozen seconds, in the real
// key format, spread over accounts, with one large account that also has a realistic audit log and activity.
import { randomInt } from 'node:crypto';
import { hash } from '@node-rs/argon2';
import pg from 'pg';
import { loadConfig } from '../../src/config.js';
import { generateKey, parseKey, redact, secretCheck, type Environment } from '../../src/domain/key-format.js';
import { SCOPES } from '../../src/domain/scopes.js';
import { migrate } from '../../src/store/migrations.js';
import { PgDatabase } from '../../src/store/pg-database.js';
import { forgeKey } from '../../test/helpers/keys.js';
import { activityStatements, planActivity, type Activity } from './seed-activity.js';

export interface SeedOptions {
  databaseUrl: string;
  keys: number;
  /** Keys of the one large account (default: a tenth of the keys, at most 10,000). */
  bigAccountKeys?: number | undefined;
  /** Keys whose full text is kept (all active, chosen uniformly over the whole table). */
  sample?: number | undefined;
  /** Rows per INSERT (each table). */
  batch?: number | undefined;
  log?: ((msg: string) => void) | undefined;
}

export interface SeedResult {
  keys: number;
  accounts: number;
  bigAccount: string;
  /** Full keys (with the secret) of the sample, in table order. */
  sample: string[];
  /** Key ids of the large account with an hour-by-hour usage history (the busiest). */
  busyKeyIds: string[];
  /** The argon2id parameters of the one hash every key shares. */
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  rows: Record<string, number>;
  seconds: { hash: number; insert: number; vacuum: number; total: number };
}

export const BIG_ACCOUNT = 'acct_scale_big';
const DAY = 86_400_000;
/** Keys are created over two years, oldest first, as a real table fills. */
const HISTORY_DAYS = 730;
const KEYS_PER_ACCOUNT = 100;
const CIDRS = '{203.0.113.0/24,2001:db8::/32}';

/** A key row to insert, with what else it brings (audit rows, usage). */
interface Planned {
  id: string;
  account: string;
  environment: Environment;
  redacted: string;
  scopes: string;
  ips: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  /** When an admin changed it (the large account only: audit rows to page through). */
  updates: number[];
  activity: Activity;
}

/** Picks exactly `want` of `total` items in one pass, each equally likely (selection sampling). */
class Selector {
  constructor(
    private want: number,
    private left: number,
  ) {}
  next(): boolean {
    const pick = this.want > 0 && randomInt(this.left) < this.want;
    this.left--;
    if (pick) this.want--;
    return pick;
  }
}

/** 1 to 3 scopes, always with bookings:read (what the bench asks for). */
function scopesOf(): string {
  const extra = SCOPES.filter((s) => s !== 'bookings:read');
  const n = randomInt(3);
  const picked = new Set(Array.from({ length: n }, () => extra[randomInt(extra.length)]));
  return `{bookings:read${[...picked].map((s) => `,${s}`).join('')}}`;
}

class Plan {
  readonly accounts: number;
  #big: Selector;
  #sample: Selector;
  #busy: Selector;
  #now = Date.now();
  #n = 0;
  readonly sample: string[] = [];
  readonly busyKeyIds: string[] = [];

  constructor(
    readonly secret: string,
    readonly total: number,
    big: number,
    sample: number,
  ) {
    this.accounts = 1 + Math.max(1, Math.ceil((total - big) / KEYS_PER_ACCOUNT));
    this.#big = new Selector(big, total);
    this.#sample = new Selector(sample, total);
    this.#busy = new Selector(Math.min(200, Math.ceil(big / 50)), big);
  }

  /** The next key, in creation order. */
  next(): Planned {
    const i = this.#n++;
    const inBig = this.#big.next();
    const sampled = this.#sample.next();
    const environment: Environment = sampled || randomInt(5) > 0 ? 'live' : 'test';
    const { publicId, keyId: id } = generateKey(environment);
    const key = forgeKey(environment, publicId, this.secret);
    const createdAt = this.#now - Math.round(((this.total - i) / this.total) * HISTORY_DAYS * DAY) - randomInt(60_000);
    // Sampled keys must authenticate: never revoked, expired or limited to addresses the bench does not use.
    const fate = sampled ? 99 : randomInt(100);
    const busy = inBig && this.#busy.next();
    const planned: Planned = {
      id,
      environment,
      createdAt,
      redacted: redact(key),
      account: inBig ? BIG_ACCOUNT : `acct_scale_${randomInt(this.accounts - 1)}`,
      scopes: scopesOf(),
      ips: fate < 30 ? CIDRS : '{}',
      revokedAt: fate < 5 ? createdAt + randomInt(Math.max(1, this.#now - createdAt)) : null,
      expiresAt:
        fate >= 5 && fate < 8
          ? this.#now - randomInt(30 * DAY)
          : fate >= 8 && fate < 13
            ? this.#now + randomInt(365 * DAY)
            : null,
      updates: inBig && randomInt(5) === 0 ? [createdAt + randomInt(Math.max(1, this.#now - createdAt))] : [],
      activity: planActivity(
        busy ? 'busy' : inBig ? 'some' : randomInt(20) === 0 ? 'few' : 'none',
        this.#now,
        createdAt,
      ),
    };
    if (sampled) {
      if (parseKey(key)?.keyId !== id) throw new Error(`not a well-formed key: ${redact(key)}`);
      this.sample.push(key);
    }
    if (busy) this.busyKeyIds.push(id);
    return planned;
  }
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** The INSERTs of one batch of keys: every table, as arrays bound to unnest(). */
function batchStatements(keys: Planned[], hashText: string, check: string): { sql: string; params: unknown[] }[] {
  const out: { sql: string; params: unknown[] }[] = [
    {
      sql: `INSERT INTO api_keys (id, account_id, environment, label, scopes, allowed_ips, secret_hash, secret_check, redacted, created_at,
            created_by, expires_at, revoked_at, revoked_reason, version, last_used_at, last_used_ip)
          SELECT id, acct, env, 'service key ' || right(id, 4), scopes::text[], ips::text[], $9, $10, red, created, 'seed', expires, revoked,
            CASE WHEN revoked IS NULL THEN NULL ELSE 'rotated out' END, CASE WHEN revoked IS NULL THEN 1 ELSE 2 END, used, used_ip
          FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[],
            $11::timestamptz[], $12::timestamptz[], $13::text[]) AS t(id, acct, env, scopes, ips, red, created, expires, revoked, used, used_ip)`,
      params: [
        keys.map((k) => k.id),
        keys.map((k) => k.account),
        keys.map((k) => k.environment),
        keys.map((k) => k.scopes),
        keys.map((k) => k.ips),
        keys.map((k) => k.redacted),
        keys.map((k) => iso(k.createdAt)),
        keys.map((k) => iso(k.expiresAt)),
        hashText,
        check,
        keys.map((k) => iso(k.revokedAt)),
        keys.map((k) => iso(k.activity.lastUsed?.at ?? null)),
        keys.map((k) => k.activity.lastUsed?.ip ?? null),
      ],
    },
  ];
  // The audit log in time order, as the service writes it: created, then revoked.
  const audit = keys
    .flatMap((k) => [
      {
        k,
        at: k.createdAt,
        action: 'key.created',
        changes: {
          label: `service key ${k.id.slice(-4)}`,
          scopes: k.scopes.slice(1, -1).split(','),
          environment: k.environment,
        },
      },
      ...k.updates.map((at) => ({
        k,
        at,
        action: 'key.updated',
        changes: { label: { from: 'old label', to: 'new label' } },
      })),
      ...(k.revokedAt === null
        ? []
        : [
            {
              k,
              at: k.revokedAt,
              action: 'key.revoked',
              changes: { reason: 'rotated out', status: { from: 'active', to: 'revoked' } },
            },
          ]),
    ])
    .sort((a, b) => a.at - b.at);
  out.push({
    sql: `INSERT INTO audit_log (account_id, key_id, at, actor, action, source_ip, changes)
          SELECT acct, key, at, 'seed-admin', action, '198.51.100.10', changes FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::jsonb[])
            AS t(acct, key, at, action, changes)`,
    params: [
      audit.map((a) => a.k.account),
      audit.map((a) => a.k.id),
      audit.map((a) => iso(a.at)),
      audit.map((a) => a.action),
      audit.map((a) => JSON.stringify(a.changes)),
    ],
  });
  out.push(...activityStatements(keys.map((k) => ({ keyId: k.id, activity: k.activity }))));
  const leaks = keys.filter((k) => k.account === BIG_ACCOUNT && k.revokedAt !== null && randomInt(10) === 0);
  if (leaks.length > 0) {
    out.push({
      sql: `INSERT INTO key_leaks (key_id, account_id, reported_at, reporter, source, url, outcome)
            SELECT key, $2, at, 'github-secret-scanning', 'commit', 'https://github.com/example/app/commit/1', 'revoked'
            FROM unnest($1::text[], $3::timestamptz[]) AS t(key, at)`,
      params: [leaks.map((k) => k.id), BIG_ACCOUNT, leaks.map((k) => iso(k.revokedAt))],
    });
  }
  return out;
}

/** Refuse any database that holds keys or tables of something else: seeding is for a database made for it. */
async function assertEmpty(client: pg.Pool): Promise<void> {
  const { rows } = await client.query<{ tables: number; keys: boolean }>(
    `SELECT count(*)::int AS tables, to_regclass('api_keys') IS NOT NULL AS keys FROM pg_tables WHERE schemaname = 'public'`,
  );
  const r = rows[0];
  if (!r || r.tables === 0) return;
  if (!r.keys) throw new Error('the database has tables and none is api_keys: seed a database made for it');
  const { rows: any } = await client.query('SELECT 1 FROM api_keys LIMIT 1');
  if (any.length > 0) throw new Error('api_keys is not empty: seed a database made for it');
}

/**
 * Migrate an empty database and load `keys` keys. Every key shares one secret, hashed once with the
 * service's argon2id parameters (ARGON2_* as the service reads them): seeding a million argon2 hashes
 * would take hours, and a lookup still reads its own row and runs a full verification.
 */
export async function seedScale(opts: SeedOptions): Promise<SeedResult> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const big = Math.min(opts.keys, opts.bigAccountKeys ?? Math.min(10_000, Math.floor(opts.keys / 10)));
  const sampleSize = Math.min(opts.keys, opts.sample ?? Math.min(1000, Math.floor(opts.keys / 2)));
  const batchSize = opts.batch ?? 5000;
  const pool = new pg.Pool({
    connectionString: opts.databaseUrl,
    max: 2,
    application_name: 'otesse-seed',
    // A crash would lose the database anyway: no need to wait for each batch's WAL flush.
    options: '-c synchronous_commit=off',
  });
  pool.on('error', () => {});
  try {
    await assertEmpty(pool);
    const db = new PgDatabase({ connectionString: opts.databaseUrl, max: 1 });
    await migrate(db).finally(() => db.close());
    const c = loadConfig(
      {
        DATABASE_URL: opts.databaseUrl,
        ARGON2_MEMORY_KIB: process.env.ARGON2_MEMORY_KIB,
        ARGON2_TIME_COST: process.env.ARGON2_TIME_COST,
        ARGON2_PARALLELISM: process.env.ARGON2_PARALLELISM,
      },
      { migrateOnly: true },
    );
    const argon2 = { memoryCost: c.ARGON2_MEMORY_KIB, timeCost: c.ARGON2_TIME_COST, parallelism: c.ARGON2_PARALLELISM };
    const { secret } = generateKey('live');
    const phc = await hash(secret, argon2);
    const check = secretCheck(secret);
    const tHash = performance.now();
    const plan = new Plan(secret, opts.keys, big, sampleSize);
    // Two batches in flight on two connections: the next batch is built while PostgreSQL inserts one.
    const inFlight = new Set<Promise<void>>();
    for (let done = 0; done < opts.keys;) {
      const n = Math.min(batchSize, opts.keys - done);
      const statements = batchStatements(
        Array.from({ length: n }, () => plan.next()),
        phc,
        check,
      );
      done += n;
      const p: Promise<void> = insertBatch(pool, statements).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 2) await Promise.race(inFlight);
      if (done % 100_000 < batchSize) log(`${done.toLocaleString('en-US')} keys`);
    }
    await Promise.all(inFlight);
    await rotateSome(pool, BIG_ACCOUNT);
    const tInsert = performance.now();
    // A table that has been in service has its statistics and visibility map: plans and index-only scans as in production.
    await pool.query(
      'VACUUM (ANALYZE) api_keys, audit_log, key_usage_hourly, key_addresses, key_denied_addresses, key_leaks',
    );
    const tVacuum = performance.now();
    const rows = await countRows(pool);
    const s = (ms: number) => Math.round(ms / 100) / 10;
    return {
      keys: opts.keys,
      accounts: plan.accounts,
      bigAccount: BIG_ACCOUNT,
      sample: plan.sample,
      busyKeyIds: plan.busyKeyIds,
      argon2,
      rows,
      seconds: {
        hash: s(tHash - t0),
        insert: s(tInsert - tHash),
        vacuum: s(tVacuum - tInsert),
        total: s(tVacuum - t0),
      },
    };
  } finally {
    await pool.end();
  }
}

/**
 * Rotate one active key in 500 of the account to the next newer one, as rotations do: the old key keeps
 * working for a grace period (the list's in_grace filter has something to find).
 */
async function rotateSome(pool: pg.Pool, account: string): Promise<void> {
  await pool.query(
    `WITH pairs AS (
       SELECT id, lead(id) OVER (ORDER BY created_at, id) AS next_id, row_number() OVER (ORDER BY created_at, id) AS n
       FROM api_keys WHERE account_id = $1 AND revoked_at IS NULL AND expires_at IS NULL),
     old AS (
       UPDATE api_keys k SET replaced_by = p.next_id, expires_at = now() + interval '3 days', version = version + 1
       FROM pairs p WHERE k.id = p.id AND p.n % 500 = 0 AND p.next_id IS NOT NULL RETURNING k.id, k.replaced_by)
     UPDATE api_keys k SET replaces = old.id FROM old WHERE k.id = old.replaced_by`,
    [account],
  );
}

/** One batch in one transaction (its statements in order, on one connection). */
async function insertBatch(pool: pg.Pool, statements: { sql: string; params: unknown[] }[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const s of statements) await client.query(s.sql, s.params);
    await client.query('COMMIT');
  } catch (err) {
    // The batch's own error is the one thrown; a ROLLBACK that fails too means the connection broke, and
    // pg's pool discards a client that is no longer queryable on release.
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function countRows(pool: pg.Pool): Promise<Record<string, number>> {
  const tables = ['api_keys', 'audit_log', 'key_usage_hourly', 'key_addresses', 'key_denied_addresses', 'key_leaks'];
  const counts = await Promise.all(
    tables.map(async (t) => Number((await pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${t}`)).rows[0]?.n)),
  );
  return Object.fromEntries(tables.map((t, i) => [t, counts[i] ?? 0]));
}
