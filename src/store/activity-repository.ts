import type { Queryable } from './db.js';

/** One flush's worth of counts from one replica. */
export interface UsageBatch {
  id: string;
  hourly: { keyId: string; hour: Date; outcome: string; count: number }[];
  addresses: { keyId: string; ip: string; first: Date; last: Date; count: number }[];
  lastUsed: { keyId: string; at: Date; ip: string }[];
  /** A sample of the addresses denied calls came from (bounded per key). */
  denied?: { keyId: string; ip: string; reason: string; last: Date; count: number }[];
}

/** What a batch changed that webhooks tell of: addresses first seen for their key, and the keys allowed uses. */
export interface AppliedUsage {
  newAddresses: { keyId: string; ip: string; firstSeen: Date }[];
  allowedKeys: string[];
}

/** Denied addresses kept per key in the database (the newest). */
export const DENIED_KEPT = 50;
export interface DeniedRow {
  ip: string;
  reason: string;
  last_seen: Date;
  count: number;
}

export interface AddressRow {
  ip: string;
  first_seen: Date;
  last_seen: Date;
  count: number;
}
export interface HourRow {
  hour: Date;
  outcome: string;
  count: number;
}

const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The batch's rows sorted by primary key: replicas flushing at once then lock shared rows in the
 * same order and never deadlock (in map order, concurrent flushes deadlocked about half the time).
 */
function inLockOrder(b: UsageBatch): UsageBatch {
  return {
    id: b.id,
    hourly: [...b.hourly].sort(
      (x, y) => byText(x.keyId, y.keyId) || x.hour.getTime() - y.hour.getTime() || byText(x.outcome, y.outcome),
    ),
    addresses: [...b.addresses].sort((x, y) => byText(x.keyId, y.keyId) || byText(x.ip, y.ip)),
    lastUsed: [...b.lastUsed].sort((x, y) => byText(x.keyId, y.keyId)),
    denied: [...(b.denied ?? [])].sort((x, y) => byText(x.keyId, y.keyId) || byText(x.ip, y.ip)),
  };
}

/** Usage counters: written by flushes, read by the activity route. */
export const activityRepository = {
  /** Apply a batch once: undefined when a batch with this id was applied before (a retried flush). */
  async apply(tx: Queryable, batch: UsageBatch): Promise<AppliedUsage | undefined> {
    const { rows } = await tx.query(
      'INSERT INTO activity_batches (id) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id',
      [batch.id],
    );
    if (rows.length === 0) return undefined;
    const b = inLockOrder(batch);
    const applied: AppliedUsage = { newAddresses: [], allowedKeys: [] };
    if (b.hourly.length > 0) {
      await tx.query(
        `INSERT INTO key_usage_hourly (key_id, hour, outcome, count)
         SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[])
         ON CONFLICT (key_id, hour, outcome) DO UPDATE SET count = key_usage_hourly.count + excluded.count`,
        [
          b.hourly.map((h) => h.keyId),
          b.hourly.map((h) => h.hour),
          b.hourly.map((h) => h.outcome),
          b.hourly.map((h) => h.count),
        ],
      );
    }
    if (b.addresses.length > 0) {
      // xmax = 0 marks a row this statement inserted: an address never seen for the key (or not within the retention).
      const { rows: upserted } = await tx.query<{ key_id: string; ip: string; first_seen: Date; inserted: boolean }>(
        `INSERT INTO key_addresses (key_id, ip, first_seen, last_seen, count)
         SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])
         ON CONFLICT (key_id, ip) DO UPDATE SET first_seen = LEAST(key_addresses.first_seen, excluded.first_seen),
           last_seen = GREATEST(key_addresses.last_seen, excluded.last_seen), count = key_addresses.count + excluded.count
         RETURNING key_id, ip, first_seen, (xmax = 0) AS inserted`,
        [
          b.addresses.map((a) => a.keyId),
          b.addresses.map((a) => a.ip),
          b.addresses.map((a) => a.first),
          b.addresses.map((a) => a.last),
          b.addresses.map((a) => a.count),
        ],
      );
      for (const r of upserted)
        if (r.inserted) applied.newAddresses.push({ keyId: r.key_id, ip: r.ip, firstSeen: r.first_seen });
    }
    const denied = b.denied ?? [];
    if (denied.length > 0) {
      await tx.query(
        `INSERT INTO key_denied_addresses (key_id, ip, reason, last_seen, count)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])
         ON CONFLICT (key_id, ip) DO UPDATE SET reason = excluded.reason,
           last_seen = GREATEST(key_denied_addresses.last_seen, excluded.last_seen), count = key_denied_addresses.count + excluded.count`,
        [
          denied.map((d) => d.keyId),
          denied.map((d) => d.ip),
          denied.map((d) => d.reason),
          denied.map((d) => d.last),
          denied.map((d) => d.count),
        ],
      );
      // Keep the newest DENIED_KEPT per key: a stranger rotating addresses replaces rows, never adds them.
      await tx.query(
        `DELETE FROM key_denied_addresses d USING (
           SELECT key_id, ip, row_number() OVER (PARTITION BY key_id ORDER BY last_seen DESC, ip) AS n
           FROM key_denied_addresses WHERE key_id = ANY($1::text[])) r
         WHERE d.key_id = r.key_id AND d.ip = r.ip AND r.n > $2`,
        [[...new Set(denied.map((d) => d.keyId))], DENIED_KEPT],
      );
    }
    if (b.lastUsed.length > 0) {
      await tx.query(
        `UPDATE api_keys k SET last_used_at = u.at, last_used_ip = u.ip
         FROM unnest($1::text[], $2::timestamptz[], $3::text[]) AS u(id, at, ip)
         WHERE k.id = u.id AND (k.last_used_at IS NULL OR k.last_used_at < u.at)`,
        [b.lastUsed.map((u) => u.keyId), b.lastUsed.map((u) => u.at), b.lastUsed.map((u) => u.ip)],
      );
    }
    applied.allowedKeys = [...new Set(b.hourly.filter((h) => h.outcome === 'ALLOWED').map((h) => h.keyId))];
    return applied;
  },

  async hours(q: Queryable, keyId: string, from: Date, to: Date): Promise<HourRow[]> {
    const { rows } = await q.query<HourRow>(
      'SELECT hour, outcome, count FROM key_usage_hourly WHERE key_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour',
      [keyId, new Date(Math.floor(from.getTime() / 3_600_000) * 3_600_000), to],
    );
    return rows;
  },

  async denied(q: Queryable, keyId: string): Promise<DeniedRow[]> {
    const { rows } = await q.query<DeniedRow>(
      'SELECT ip, reason, last_seen, count FROM key_denied_addresses WHERE key_id = $1 ORDER BY last_seen DESC',
      [keyId],
    );
    return rows;
  },

  async addresses(q: Queryable, keyId: string): Promise<AddressRow[]> {
    const { rows } = await q.query<AddressRow>(
      'SELECT ip, first_seen, last_seen, count FROM key_addresses WHERE key_id = $1 ORDER BY last_seen DESC LIMIT 1000',
      [keyId],
    );
    return rows;
  },
};
