import { KEY_BOUNDS, rotationDueAt } from '../domain/key-bounds.js';
import { invalid } from '../domain/errors.js';
import type { Database } from '../store/db.js';
import { activityRepository, type AddressRow, type HourRow } from '../store/activity-repository.js';
import { auditRepository, type AuditRow } from '../store/audit-repository.js';
import type { KeyRow } from '../store/keys-repository.js';
import { leaksRepository, type LeakRow } from '../store/leaks-repository.js';
import type { KeyService } from './key-service.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** An hour with at least this many denials, and more denials than allows, is a burst. */
export const DENIAL_BURST = 20;

export interface Alert {
  type: 'new_address' | 'denial_burst' | 'rotated_key_in_use' | 'rotation_due' | 'rotation_overdue' | 'leaked';
  message: string;
  at: string;
  ip?: string;
}

export interface Activity {
  key_id: string;
  from: string;
  to: string;
  last_used_at: string | null;
  last_used_ip: string | null;
  /** The quota balance as stored (shares leased by replicas and not yet spent count as used); null = unlimited. */
  remaining_uses: number | null;
  refill: { amount: number; interval: 'daily' | 'monthly'; refilled_at: string | null } | null;
  /** Denials are counted per reason, whatever the reason (RATE_LIMITED, USAGE_EXCEEDED, KEY_DISABLED included): no fixed list. */
  totals: { allowed: number; denied: Record<string, number> };
  series: { start: string; allowed: number; denied: number }[];
  addresses: { ip: string; first_seen: string; last_seen: string; count: number }[];
  /** A bounded sample (newest 50) of the addresses denied calls came from; denials are counted per reason in `totals`. */
  denied_addresses: { ip: string; reason: string; last_seen: string; count: number }[];
  rotation: {
    due_at: string;
    replaces: string | null;
    replaced_by: string | null;
    rotated_at: string | null;
    grace_ends_at: string | null;
    /** Addresses that used this key since it was rotated out (traffic still to move). */
    addresses_since_rotation: string[];
  };
  alerts: Alert[];
  events: {
    id: string;
    at: string;
    actor: string;
    action: string;
    source_ip: string | null;
    changes: Record<string, unknown>;
  }[];
}

export interface ActivityServiceOptions {
  db: Database;
  keys: KeyService;
  /** Write this replica's pending counts before reading (so a read follows this replica's traffic). */
  flush?: () => Promise<void>;
  now?: () => number;
}

/** An RFC 3339 time that JavaScript and PostgreSQL both represent (a leap second 23:59:60 is not one). */
function instant(path: string, text: string): Date {
  const d = new Date(text);
  const year = d.getUTCFullYear();
  if (Number.isNaN(d.getTime()) || year < 1970 || year > 9999)
    throw invalid(path, 'must be an RFC 3339 date-time between 1970 and 9999 (no leap second)');
  return d;
}

/** The activity log of a key: usage over time, addresses, alerts and admin events. */
export class ActivityService {
  #o: ActivityServiceOptions;
  #now: () => number;

  constructor(opts: ActivityServiceOptions) {
    this.#o = opts;
    this.#now = opts.now ?? Date.now;
  }

  async activity(
    accountId: string,
    keyId: string,
    window: { from?: string | undefined; to?: string | undefined },
  ): Promise<Activity> {
    const now = this.#now();
    const to = window.to ? instant('to', window.to) : new Date(now);
    const from = window.from ? instant('from', window.from) : new Date(to.getTime() - 30 * DAY);
    if (from.getTime() >= to.getTime()) throw invalid('from', 'must be before to');
    if (to.getTime() - from.getTime() > 400 * DAY) throw invalid('from', 'the window is at most 400 days');
    // Flush first: the key row's last_used_at must include the counts this answer shows.
    await this.#o.flush?.().catch(() => {});
    const key = await this.#o.keys.get(accountId, keyId);
    const [hours, addresses, events, leaks, denied] = await Promise.all([
      activityRepository.hours(this.#o.db, keyId, from, to),
      activityRepository.addresses(this.#o.db, keyId),
      auditRepository.list(this.#o.db, accountId, { keyId, limit: 100 }),
      leaksRepository.forKey(this.#o.db, keyId),
      activityRepository.denied(this.#o.db, keyId),
    ]);
    const rotatedAt = events.find((e) => e.action === 'key.rotated')?.at ?? null;
    const sinceRotation = rotatedAt ? addresses.filter((a) => a.last_seen > rotatedAt).map((a) => a.ip) : [];
    return {
      key_id: keyId,
      from: from.toISOString(),
      to: to.toISOString(),
      last_used_at: key.last_used_at?.toISOString() ?? null,
      last_used_ip: key.last_used_ip,
      remaining_uses: key.remaining_uses,
      refill:
        key.refill_amount !== null && key.refill_interval !== null
          ? {
              amount: key.refill_amount,
              interval: key.refill_interval,
              refilled_at: key.refilled_at?.toISOString() ?? null,
            }
          : null,
      totals: totals(hours),
      series: series(hours),
      addresses: addresses.map((a) => ({
        ip: a.ip,
        first_seen: a.first_seen.toISOString(),
        last_seen: a.last_seen.toISOString(),
        count: Number(a.count),
      })),
      denied_addresses: denied.map((d) => ({
        ip: d.ip,
        reason: d.reason,
        last_seen: d.last_seen.toISOString(),
        count: Number(d.count),
      })),
      rotation: {
        due_at: rotationDueAt(key.created_at).toISOString(),
        replaces: key.replaces,
        replaced_by: key.replaced_by,
        rotated_at: rotatedAt?.toISOString() ?? null,
        grace_ends_at: key.replaced_by ? (key.expires_at?.toISOString() ?? null) : null,
        addresses_since_rotation: sinceRotation,
      },
      alerts: [...leaks.map(leakAlert), ...alerts(key, hours, addresses, rotatedAt, now)],
      events: events.map((e: AuditRow) => ({
        id: String(e.id),
        at: e.at.toISOString(),
        actor: e.actor,
        action: e.action,
        source_ip: e.source_ip,
        changes: e.changes,
      })),
    };
  }
}

/** A report that the key was seen in public (the URL and the time, never the token). */
function leakAlert(l: LeakRow): Alert {
  const where = l.url ? ` at ${l.url}` : '';
  const done = l.outcome === 'revoked' ? 'the key was revoked' : 'the key was already revoked';
  return {
    type: 'leaked',
    at: l.reported_at.toISOString(),
    message: `leaked: reported by ${l.reporter} (${l.source})${where}; ${done}`,
  };
}

function totals(hours: HourRow[]): Activity['totals'] {
  const out: Activity['totals'] = { allowed: 0, denied: {} };
  for (const h of hours) {
    if (h.outcome === 'ALLOWED') out.allowed += Number(h.count);
    else out.denied[h.outcome] = (out.denied[h.outcome] ?? 0) + Number(h.count);
  }
  return out;
}

function series(hours: HourRow[]): Activity['series'] {
  const byHour = new Map<number, { start: string; allowed: number; denied: number }>();
  for (const h of hours) {
    const t = h.hour.getTime();
    const s = byHour.get(t) ?? { start: h.hour.toISOString(), allowed: 0, denied: 0 };
    if (h.outcome === 'ALLOWED') s.allowed += Number(h.count);
    else s.denied += Number(h.count);
    byHour.set(t, s);
  }
  return [...byHour.values()];
}

function alerts(key: KeyRow, hours: HourRow[], addresses: AddressRow[], rotatedAt: Date | null, now: number): Alert[] {
  const out: Alert[] = [];
  const firstEver = Math.min(...addresses.map((a) => a.first_seen.getTime()));
  for (const a of addresses) {
    if (a.first_seen.getTime() > firstEver && now - a.first_seen.getTime() < 7 * DAY) {
      out.push({
        type: 'new_address',
        ip: a.ip,
        at: a.first_seen.toISOString(),
        message: `first use from ${a.ip}, never seen before for this key`,
      });
    }
  }
  for (const s of series(hours)) {
    if (s.denied >= DENIAL_BURST && s.denied > s.allowed) {
      out.push({ type: 'denial_burst', at: s.start, message: `${s.denied} denials in the hour from ${s.start}` });
    }
  }
  if (key.replaced_by && rotatedAt && key.last_used_at && key.last_used_at > rotatedAt) {
    const ends = key.expires_at?.toISOString() ?? 'its grace end';
    out.push({
      type: 'rotated_key_in_use',
      at: key.last_used_at.toISOString(),
      message: `still used after rotation to ${key.replaced_by}; it stops working at ${ends}`,
    });
  }
  const due = rotationDueAt(key.created_at).getTime();
  if (!key.replaced_by && !key.revoked_at && due - now < KEY_BOUNDS.rotationNoticeDays * DAY) {
    out.push({
      type: due <= now ? 'rotation_overdue' : 'rotation_due',
      at: new Date(due).toISOString(),
      message:
        due <= now
          ? `rotation is overdue (keys are rotated every ${KEY_BOUNDS.rotationDays} days)`
          : `rotation is due within ${KEY_BOUNDS.rotationNoticeDays} days`,
    });
  }
  return out;
}
