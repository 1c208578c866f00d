// EXPLAIN (ANALYZE, BUFFERS) of the queries behind the admin routes of the large account, run through the
// repositories themselves (their SQL, with realistic parameters), so a plan cannot drift from the code.
import pg from 'pg';
import { activityRepository } from '../../src/store/activity-repository.js';
import { auditRepository } from '../../src/store/audit-repository.js';
import type { Queryable } from '../../src/store/db.js';
import { keysRepository } from '../../src/store/keys-repository.js';
import { leaksRepository } from '../../src/store/leaks-repository.js';

export interface QueryPlan {
  route: string;
  query: string;
  plan: string;
  /** Sequential scans of the tables that grow with keys and traffic (none wanted). */
  seqScans: string[];
  executionMs: number;
}

// key_leaks is left out: a few rows per thousand revoked keys, read by its index once it outgrows a page or two.
const GROWING = /Seq Scan on (api_keys|audit_log|key_usage_hourly|key_addresses|key_denied_addresses)\b/g;

/** A Queryable that answers every query with nothing, recording the plan of it. */
function explaining(client: pg.Client, route: string, query: string, out: QueryPlan[]): Queryable {
  return {
    async query<R>(sql: string, params: readonly unknown[] = []) {
      const res = await client.query<{ 'QUERY PLAN': string }>(
        `EXPLAIN (ANALYZE, BUFFERS) ${sql}`,
        params as unknown[],
      );
      const plan = res.rows.map((r) => r['QUERY PLAN']).join('\n');
      out.push({
        route,
        query,
        plan,
        seqScans: [...plan.matchAll(GROWING)].map((m) => m[1] ?? ''),
        executionMs: Number(/Execution Time: ([\d.]+) ms/.exec(plan)?.[1] ?? Number.NaN),
      });
      return { rows: [] as R[] };
    },
  };
}

/** Where the plans look: the large account, a key with a long usage history, and cursors deep in its lists. */
export interface PlanTargets {
  account: string;
  busyKeyId: string;
  /** The cursor position 9/10 of the way down the key list (created_at, id). */
  deepKey: { createdAt: Date; id: string };
  /** An audit id 9/10 of the way down the account's audit log. */
  deepAuditId: number;
}

/** Find the deep cursor positions in the seeded data. */
export async function planTargets(client: pg.Client, account: string, busyKeyId: string): Promise<PlanTargets> {
  const key = await client.query<{ created_at: Date; id: string }>(
    `SELECT created_at, id FROM api_keys WHERE account_id = $1 ORDER BY created_at DESC, id DESC
     OFFSET (SELECT count(*) * 9 / 10 FROM api_keys WHERE account_id = $1) LIMIT 1`,
    [account],
  );
  const audit = await client.query<{ id: string }>(
    `SELECT id FROM audit_log WHERE account_id = $1 ORDER BY id DESC
     OFFSET (SELECT count(*) * 9 / 10 FROM audit_log WHERE account_id = $1) LIMIT 1`,
    [account],
  );
  const k = key.rows[0];
  if (!k || !audit.rows[0]) throw new Error(`account ${account} has no keys or no audit log`);
  return { account, busyKeyId, deepKey: { createdAt: k.created_at, id: k.id }, deepAuditId: Number(audit.rows[0].id) };
}

/** The plans of every query of the list, activity, audit-log and lookup routes. */
export async function routePlans(
  databaseUrl: string,
  t: Omit<PlanTargets, 'deepKey' | 'deepAuditId'>,
): Promise<QueryPlan[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const d = await planTargets(client, t.account, t.busyKeyId);
    const out: QueryPlan[] = [];
    const q = (route: string, query: string) => explaining(client, route, query, out);
    const list = 'GET /keys';
    await keysRepository.list(q(list, 'first page (limit 50)'), d.account, { limit: 51 });
    await keysRepository.list(q(list, 'a page 9/10 down (cursor)'), d.account, { limit: 51, after: d.deepKey });
    await keysRepository.list(q(`${list}?status=revoked`, 'a page 9/10 down (cursor)'), d.account, {
      status: 'revoked',
      limit: 21,
      after: d.deepKey,
    });
    await keysRepository.list(q(`${list}?rotation=due`, 'first page'), d.account, { rotation: 'due', limit: 21 });
    await keysRepository.list(q(`${list}?in_grace=true`, 'first page'), d.account, { inGrace: true, limit: 21 });
    const activity = 'GET /keys/{id}/activity';
    const to = new Date();
    const from = new Date(to.getTime() - 30 * 86_400_000);
    await keysRepository.get(q(activity, 'the key'), d.account, d.busyKeyId);
    await activityRepository.hours(q(activity, 'usage per hour, 30 days'), d.busyKeyId, from, to);
    await activityRepository.addresses(q(activity, 'addresses'), d.busyKeyId);
    await activityRepository.denied(q(activity, 'denied addresses'), d.busyKeyId);
    await auditRepository.list(q(activity, "the key's audit events"), d.account, { keyId: d.busyKeyId, limit: 100 });
    await leaksRepository.forKey(q(activity, 'leak reports'), d.busyKeyId);
    const audit = 'GET /audit-log';
    await auditRepository.list(q(audit, 'first page (limit 50)'), d.account, { limit: 51 });
    await auditRepository.list(q(audit, 'a page 9/10 down (cursor)'), d.account, { limit: 51, before: d.deepAuditId });
    await keysRepository.byId(q('Authenticate (cold)', 'the key by id'), d.busyKeyId);
    return out;
  } finally {
    await client.end();
  }
}
