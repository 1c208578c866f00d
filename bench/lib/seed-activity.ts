// The usage a seeded key brings: hourly counts, addresses and denied addresses, as the service's usage
// flushes would have left them (src/store/activity-repository.ts), over the last 30 days.
import { randomInt } from 'node:crypto';

/** busy: used every hour of the last 30 days from 20 addresses; some: 12 hours; few: 6 hours; none: never used. */
export type Usage = 'busy' | 'some' | 'few' | 'none';

export interface Activity {
  hours: { hour: number; outcome: string; count: number }[];
  addresses: { ip: string; first: number; last: number; count: number }[];
  denied: { ip: string; reason: string; last: number; count: number }[];
  lastUsed: { at: number; ip: string } | undefined;
}

const HOUR = 3_600_000;
const WINDOW_HOURS = 30 * 24;
const SHAPE: Record<Usage, { hours: number; addresses: number; denied: number }> = {
  busy: { hours: WINDOW_HOURS, addresses: 20, denied: 5 },
  some: { hours: 12, addresses: 2, denied: 0 },
  few: { hours: 6, addresses: 1, denied: 0 },
  none: { hours: 0, addresses: 0, denied: 0 },
};

/** Distinct hour starts in the window, oldest first, none before `since`. */
function hoursOf(n: number, now: number, since: number): number[] {
  const top = Math.floor(now / HOUR) * HOUR;
  const picked = new Set<number>();
  if (n >= WINDOW_HOURS) for (let i = 0; i < WINDOW_HOURS; i++) picked.add(i);
  else while (picked.size < n) picked.add(randomInt(WINDOW_HOURS));
  return [...picked]
    .map((i) => top - i * HOUR)
    .filter((h) => h >= since)
    .sort((a, b) => a - b);
}

/** A key's usage; every tenth hour of a busy key also has denials (a few of them bursts, which the activity reports). */
export function planActivity(usage: Usage, now: number, createdAt: number): Activity {
  const shape = SHAPE[usage];
  const hours = hoursOf(shape.hours, now, createdAt);
  const out: Activity = { hours: [], addresses: [], denied: [], lastUsed: undefined };
  if (hours.length === 0) return out;
  hours.forEach((hour, i) => {
    out.hours.push({ hour, outcome: 'ALLOWED', count: 1 + randomInt(400) });
    if (usage === 'busy' && i % 10 === 0)
      out.hours.push({ hour, outcome: 'SCOPE_NOT_GRANTED', count: 1 + randomInt(30) });
  });
  const first = hours[0] ?? now;
  const last = (hours[hours.length - 1] ?? now) + randomInt(HOUR);
  for (let a = 0; a < shape.addresses; a++) {
    out.addresses.push({
      ip: `198.51.100.${a + 1}`,
      first: Math.min(first + a * HOUR, last),
      last: last - a * 1000,
      count: 1 + randomInt(10_000),
    });
  }
  for (let d = 0; d < shape.denied; d++)
    out.denied.push({
      ip: `192.0.2.${d + 1}`,
      reason: 'SCOPE_NOT_GRANTED',
      last: last - d * HOUR,
      count: 1 + randomInt(50),
    });
  out.lastUsed = { at: last, ip: '198.51.100.1' };
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** INSERTs of the usage of a batch of keys (the tables the service's flushes write). */
export function activityStatements(
  keys: { keyId: string; activity: Activity }[],
): { sql: string; params: unknown[] }[] {
  const hours = keys.flatMap((k) => k.activity.hours.map((h) => ({ k: k.keyId, ...h })));
  const addresses = keys.flatMap((k) => k.activity.addresses.map((a) => ({ k: k.keyId, ...a })));
  const denied = keys.flatMap((k) => k.activity.denied.map((d) => ({ k: k.keyId, ...d })));
  const out: { sql: string; params: unknown[] }[] = [];
  if (hours.length > 0) {
    out.push({
      sql: `INSERT INTO key_usage_hourly (key_id, hour, outcome, count)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::bigint[])`,
      params: [
        hours.map((h) => h.k),
        hours.map((h) => iso(h.hour)),
        hours.map((h) => h.outcome),
        hours.map((h) => h.count),
      ],
    });
  }
  if (addresses.length > 0) {
    out.push({
      sql: `INSERT INTO key_addresses (key_id, ip, first_seen, last_seen, count)
            SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::bigint[])`,
      params: [
        addresses.map((a) => a.k),
        addresses.map((a) => a.ip),
        addresses.map((a) => iso(a.first)),
        addresses.map((a) => iso(a.last)),
        addresses.map((a) => a.count),
      ],
    });
  }
  if (denied.length > 0) {
    out.push({
      sql: `INSERT INTO key_denied_addresses (key_id, ip, reason, last_seen, count)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::bigint[])`,
      params: [
        denied.map((d) => d.k),
        denied.map((d) => d.ip),
        denied.map((d) => d.reason),
        denied.map((d) => iso(d.last)),
        denied.map((d) => d.count),
      ],
    });
  }
  return out;
}
