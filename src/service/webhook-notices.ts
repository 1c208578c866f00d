import { KEY_BOUNDS, rotationDueAt } from '../domain/key-bounds.js';
import { keyEvent, type NewWebhookEvent, type WebhookEventType } from '../domain/webhook.js';
import type { AppliedUsage } from '../store/activity-repository.js';
import type { Database, Queryable } from '../store/db.js';
import type { KeyRow } from '../store/keys-repository.js';
import { webhookRepository } from '../store/webhook-repository.js';

const DAY_MS = 86_400_000;
// Any constant: the same on every replica, so one replica at a time runs the scheduled notices.
const NOTICE_LOCK = 7_336_014;
/** Keys handled per threshold and run; the rest wait for the next run. */
const PER_RUN = 1000;
/** key.quota_low: the balance fell under this share of the last set or refilled amount. */
export const QUOTA_LOW_FRACTION = 0.1;

/** A key still in use: not revoked, not expired, not replaced by a rotation (its owner has acted). */
const LIVE = 'k.revoked_at IS NULL AND k.replaced_by IS NULL';

interface Threshold {
  type: WebhookEventType;
  /** Thresholds of one kind, the latest first: a key past several is told of the latest, and the earlier ones are marked. */
  steps: { notice: string; condition: string; data: (k: KeyRow, now: Date) => Record<string, unknown> }[];
}

const daysLeft = (at: Date, now: Date) => Math.max(0, Math.ceil((at.getTime() - now.getTime()) / DAY_MS));
const rotationData = (k: KeyRow, now: Date) => {
  const due = rotationDueAt(k.created_at);
  return { due_at: due.toISOString(), days_left: daysLeft(due, now) };
};
const expiryData = (k: KeyRow, now: Date) => ({
  expires_at: k.expires_at?.toISOString() ?? null,
  days_left: k.expires_at ? daysLeft(k.expires_at, now) : null,
});

const ACTIVE = `${LIVE} AND (k.expires_at IS NULL OR k.expires_at > now())`;
const THRESHOLDS: Threshold[] = [
  {
    type: 'key.rotation_due',
    steps: [
      {
        notice: 'rotation_due:0',
        condition: `${ACTIVE} AND k.created_at <= now() - interval '${KEY_BOUNDS.rotationDays} days'`,
        data: rotationData,
      },
      {
        notice: `rotation_due:${KEY_BOUNDS.rotationNoticeDays}`,
        condition: `${ACTIVE} AND k.created_at <= now() - interval '${KEY_BOUNDS.rotationDays - KEY_BOUNDS.rotationNoticeDays} days'`,
        data: rotationData,
      },
    ],
  },
  {
    type: 'key.expired',
    steps: [
      {
        notice: 'expired',
        // A key that expired long before webhooks were set up is not news.
        condition: `${LIVE} AND k.expires_at <= now() AND k.expires_at > now() - interval '7 days'`,
        data: expiryData,
      },
    ],
  },
  {
    type: 'key.expiring',
    steps: [
      {
        notice: 'expiring:1',
        condition: `${ACTIVE} AND k.expires_at <= now() + interval '1 day'`,
        data: expiryData,
      },
      {
        notice: 'expiring:7',
        condition: `${ACTIVE} AND k.expires_at <= now() + interval '7 days'`,
        data: expiryData,
      },
    ],
  },
];

/**
 * The events no admin action causes: rotation due and expiry (a scheduled run, one replica at a
 * time under a transaction-scoped advisory lock), new addresses and quotas (from the usage flush,
 * never from Authenticate). Each is sent at most once per key and threshold: the notice is recorded
 * in the same transaction as the event (design: outbox).
 */
export class WebhookNotices {
  #db: Database;
  #now: () => number;

  constructor(opts: { db: Database; now?: () => number }) {
    this.#db = opts.db;
    this.#now = opts.now ?? Date.now;
  }

  /** One scheduled run: `ran` false when another replica holds the lock; the events written. */
  async runOnce(): Promise<{ ran: boolean; events: number }> {
    return this.#db.transaction(async (tx) => {
      const { rows } = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1) AS locked', [
        NOTICE_LOCK,
      ]);
      if (!rows[0]?.locked) return { ran: false, events: 0 };
      let events = 0;
      const now = new Date(this.#now());
      for (const t of THRESHOLDS) {
        for (const [i, step] of t.steps.entries()) {
          const later = t.steps.slice(0, i).map((s) => s.notice);
          // Not yet told of this step nor of a later one.
          const untold = [step.notice, ...later]
            .map((n) => `NOT EXISTS (SELECT 1 FROM webhook_notices n WHERE n.key_id = k.id AND n.notice = '${n}')`)
            .join(' AND ');
          const keys = await webhookRepository.keysFor(tx, t.type, `${step.condition} AND ${untold}`, PER_RUN);
          const earlier = t.steps.slice(i + 1).map((s) => s.notice);
          const fresh = await webhookRepository.notice(
            tx,
            keys.flatMap((k) => [step.notice, ...earlier].map((notice) => ({ keyId: k.id, notice }))),
          );
          const told = keys.filter((k) => fresh.has(`${k.id}|${step.notice}`));
          events += await webhookRepository.emit(
            tx,
            told.map((k) => keyEvent(t.type, k, step.data(k, now), now)),
          );
        }
      }
      return { ran: true, events };
    });
  }

  /** Inside a usage flush's transaction: key.new_address, key.quota_low and key.quota_exhausted. */
  async fromUsage(tx: Queryable, applied: AppliedUsage): Promise<number> {
    const now = new Date(this.#now());
    const events: NewWebhookEvent[] = [];
    if (applied.newAddresses.length > 0) {
      const ids = [...new Set(applied.newAddresses.map((a) => a.keyId))];
      const keys = await webhookRepository.keysFor(tx, 'key.new_address', 'k.id = ANY($3::text[])', ids.length, [ids]);
      const byId = new Map(keys.map((k) => [k.id, k]));
      for (const a of applied.newAddresses) {
        const k = byId.get(a.keyId);
        if (k) events.push(keyEvent('key.new_address', k, { ip: a.ip, first_seen: a.firstSeen.toISOString() }, now));
      }
    }
    const low = await webhookRepository.lowQuotas(tx, applied.allowedKeys, QUOTA_LOW_FRACTION);
    if (low.length > 0) {
      // Once per balance: the mark is when it was last set or refilled.
      const mark = (k: KeyRow) => String(k.refilled_at?.getTime() ?? 0);
      const fresh = await webhookRepository.notice(
        tx,
        low.flatMap((k) => [
          { keyId: k.id, notice: `quota_low:${mark(k)}` },
          ...(k.remaining_uses === 0 ? [{ keyId: k.id, notice: `quota_exhausted:${mark(k)}` }] : []),
        ]),
      );
      for (const k of low) {
        const exhausted = k.remaining_uses === 0;
        const notice = `${exhausted ? 'quota_exhausted' : 'quota_low'}:${mark(k)}`;
        if (!fresh.has(`${k.id}|${notice}`)) continue;
        events.push(
          keyEvent(
            exhausted ? 'key.quota_exhausted' : 'key.quota_low',
            k,
            {
              remaining_uses: k.remaining_uses,
              of: k.quota_basis,
              refill: k.refill_interval ? { amount: k.refill_amount, interval: k.refill_interval } : null,
            },
            now,
          ),
        );
      }
    }
    return webhookRepository.emit(tx, events);
  }
}
