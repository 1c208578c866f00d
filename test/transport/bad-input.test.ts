// Bad input over REST and gRPC (design: edge-validation): each case gets its one clear error and changes
// nothing: no key row, version, change-log row or audit entry (refusals aside), no Redis entry.
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import pg from 'pg';
import t from 'tap';
import { createKey, grpcClient, LIMITED_TOKEN, startTestApp } from '../helpers/app.js';
import { ACCOUNT, GRPC_CASES, KEY, OTHER_KEY, REST_CASES, WATCH_CASES } from '../helpers/bad-inputs.js';
import { openWatch } from '../helpers/watch.js';
import { REDIS_URL } from '../helpers/db.js';
import { assertProblem, rawRequest } from '../helpers/http.js';

const app = await startTestApp(t, { BODY_LIMIT_BYTES: '65536' });
const mine = await createKey(app, ACCOUNT, { allowed_ips: ['203.0.113.0/24'] });
const other = await createKey(app, 'acct_other');
const db = new pg.Client({ connectionString: app.env.DATABASE_URL });
await db.connect();
t.teardown(() => db.end());
const redis = new Redis(REDIS_URL);
t.teardown(() => redis.disconnect());

/** Everything a bad request could have changed. */
async function snapshot() {
  const one = async (sql: string) => String(Object.values((await db.query(sql)).rows[0] ?? {})[0]);
  return {
    keys: await one('SELECT count(*) FROM api_keys'),
    versions: await one('SELECT sum(version) FROM api_keys'),
    revoked: await one('SELECT count(*) FROM api_keys WHERE revoked_at IS NOT NULL'),
    changes: await one('SELECT count(*) FROM key_changes'),
    audit: await one("SELECT count(*) FROM audit_log WHERE action NOT LIKE 'admin.%'"),
    webhooks: await one('SELECT count(*) FROM webhook_endpoints'),
    deliveries: await one('SELECT count(*) FROM webhook_deliveries'),
    redis: (await redis.keys(`${app.env.REDIS_PREFIX}[kv]:*`)).sort().join(','),
  };
}

const fill = (text: string) => text.replaceAll(KEY, mine.id).replaceAll(OTHER_KEY, other.id);
const TOKENS = { limited: LIMITED_TOKEN, wrong: 'not-a-token-0123456789abcdef' } as const;

t.test(`${REST_CASES.length} bad REST requests: one clear error each, nothing changed`, async (t) => {
  const before = await snapshot();
  for (const c of REST_CASES) {
    const body = c.raw ?? (c.body === undefined ? undefined : JSON.stringify(c.body));
    const headers = { ...(c.body !== undefined ? { 'content-type': 'application/json' } : {}), ...c.headers };
    const token = c.token === undefined ? undefined : c.token === null ? null : TOKENS[c.token];
    const res = await rawRequest(app, c.method, fill(c.path), body, headers, token);
    await t.test(c.name, async (t) => {
      if (c.status === 431) t.equal(res.status, 431, 'refused by the HTTP parser');
      else assertProblem(t, res, c.status, c.paths);
      t.notOk(JSON.stringify(res.body ?? '').includes('otesse_live_sk_'), 'no key-shaped text comes back');
    });
  }
  t.same(await snapshot(), before, 'no row, version, change, audit entry or Redis entry changed');
  const key = await app.api('GET', `/v1/accounts/${ACCOUNT}/keys/${mine.id}`);
  t.equal(key.body.status, 'active', 'the key whose revoke had a bad reason is still active');
});

t.test(
  'refused attempts are counted and written to the audit log with the source address, never the token',
  async (t) => {
    const audit = (
      await db.query(
        "SELECT actor, action, source_ip, changes FROM audit_log WHERE action LIKE 'admin.%' AND account_id = $1",
        [ACCOUNT],
      )
    ).rows;
    t.ok(
      audit.some((a) => a.action === 'admin.unauthenticated' && a.source_ip === '127.0.0.1'),
      'a 401 is audited with its source',
    );
    t.ok(
      audit.some((a) => a.action === 'admin.forbidden' && a.actor === 'limited'),
      'a 403 names the token it came with',
    );
    t.notOk(
      JSON.stringify(audit).includes(LIMITED_TOKEN) || JSON.stringify(audit).includes(TOKENS.wrong),
      'no presented token is stored',
    );
    const metrics = await (await fetch(`${app.url}/metrics`)).text();
    t.match(metrics, /otesse_keys_admin_refused_total\{status="401"\} [1-9]/);
    t.match(metrics, /otesse_keys_admin_refused_total\{status="403"\} [1-9]/);
  },
);

t.test(
  `${GRPC_CASES.length} bad gRPC requests: INVALID_ARGUMENT for a caller's bug, a deny for an end client's`,
  async (t) => {
    const client = grpcClient(t, app.grpcPort);
    const before = await snapshot();
    for (const c of GRPC_CASES) {
      const req = {
        key: fill(c.key ?? KEY).replace(mine.id, mine.secret),
        ip: c.ip ?? '203.0.113.7',
        scope: c.scope ?? 'bookings:read',
      };
      if (c.key === undefined) req.key = mine.secret;
      const got = await client.authenticate(req).then(
        (r) => (r.allowed ? 'ALLOWED' : r.reason),
        (err: grpc.ServiceError) => grpc.status[err.code],
      );
      t.equal(got, c.expect, c.name);
    }
    const after = await snapshot();
    t.same({ ...after, redis: '' }, { ...before, redis: '' }, 'no row changed');
  },
);

t.test(
  `${WATCH_CASES.length} bad Watch messages: the stream ends with one clear status, nothing counted`,
  async (t) => {
    const before = await snapshot();
    await app.usage.flush();
    const usageBefore = (await db.query('SELECT count(*)::int AS n FROM key_usage_hourly WHERE key_id = $1', [mine.id]))
      .rows[0].n;
    for (const c of WATCH_CASES) {
      const watch = openWatch(t, app.grpcPort);
      const message = JSON.parse(JSON.stringify(c.message).replaceAll(KEY, mine.id)) as Record<string, unknown>;
      watch.call.write(message);
      const status = await watch.ended;
      t.equal(grpc.status[status.code], c.expect, c.name);
    }
    await app.usage.flush();
    t.same({ ...(await snapshot()), redis: '' }, { ...before, redis: '' }, 'no row changed');
    const counted = await db.query('SELECT count(*)::int AS n FROM key_usage_hourly WHERE key_id = $1', [mine.id]);
    t.equal(counted.rows[0].n, usageBefore, 'no use of the reports counted');
  },
);

t.test('docs/bad-input.md lists every case', async (t) => {
  const doc = readFileSync(new URL('../../docs/bad-input.md', import.meta.url), 'utf8');
  for (const c of [...REST_CASES, ...GRPC_CASES, ...WATCH_CASES]) t.ok(doc.includes(`| ${c.name} |`), c.name);
  t.ok(REST_CASES.length + GRPC_CASES.length >= 60, `${REST_CASES.length + GRPC_CASES.length} cases`);
});
