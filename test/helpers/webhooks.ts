import pg from 'pg';
import type { Received } from './webhook-receiver.js';
import { waitFor } from './harness/process.js';

interface TestLike {
  teardown(fn: () => unknown): void;
}

type Api = (
  method: string,
  path: string,
  body?: unknown,
  token?: string,
) => Promise<{ status: number; body: any; headers?: Headers }>;

/** The webhook endpoints of an account (and one of them). */
export const hooksPath = (account: string, endpointId?: string) =>
  `/v1/accounts/${account}/webhook-endpoints${endpointId ? `/${endpointId}` : ''}`;

/** Create an endpoint through the admin API; its id and signing secret. */
export async function addEndpoint(
  app: { api: Api },
  account: string,
  url: string,
  events: string[],
  extra: Record<string, unknown> = {},
): Promise<{ id: string; secret: string }> {
  const res = await app.api('POST', hooksPath(account), { url, events, ...extra });
  if (res.status !== 201) throw new Error(`endpoint create failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id as string, secret: res.body.secret as string };
}

/** A connection to a test database of the test's own, closed at teardown. */
export async function sqlClient(t: TestLike, url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  t.teardown(() => c.end());
  return c;
}

/** Wait until no delivery of an enabled endpoint is pending or claimed: every count after this is final. */
export async function quiet(sql: pg.Client, ms = 20_000): Promise<void> {
  const ok = await waitFor(
    async () => {
      const { rows } = await sql.query(
        `SELECT count(*)::int AS n FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE e.enabled AND (d.state = 'pending' OR d.claimed_until IS NOT NULL)`,
      );
      return rows[0].n === 0;
    },
    ms,
    50,
  );
  if (!ok) throw new Error(`webhook deliveries still pending after ${ms} ms`);
}

/** The deliveries list of an endpoint (first page), through the admin API. */
export async function deliveriesOf(app: { api: Api }, account: string, endpointId: string): Promise<any[]> {
  const res = await app.api('GET', `${hooksPath(account, endpointId)}/deliveries?limit=100`);
  if (res.status !== 200) throw new Error(`deliveries: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.data as any[];
}

/** Verified events of `type` (about key `keyId` when given) among what a receiver got. */
export function eventsOf(received: Received[], type: string, keyId?: string): NonNullable<Received['event']>[] {
  return received
    .filter((r) => r.verified && r.event?.type === type && (keyId === undefined || r.event.data.key?.id === keyId))
    .map((r) => r.event as NonNullable<Received['event']>);
}
