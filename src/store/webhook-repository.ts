import type { NewWebhookEvent } from '../domain/webhook.js';
import { newDeliveryId } from '../domain/webhook.js';
import type { KeyRow } from './keys-repository.js';
import type { Queryable } from './db.js';

export interface EndpointRow {
  id: string;
  account_id: string;
  url: string;
  events: string[];
  description: string | null;
  enabled: boolean;
  disabled_reason: string | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_until: Date | null;
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface EndpointPatch {
  url?: string | undefined;
  events?: string[] | undefined;
  description?: string | null | undefined;
  enabled?: boolean | undefined;
}

export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface AttemptRow {
  n: number;
  at: Date;
  status_code: number | null;
  error: string | null;
  duration_ms: number;
  response: string | null;
}

export interface DeliveryRow {
  id: string;
  event_id: string;
  event_type: string;
  endpoint_id: string;
  state: DeliveryState;
  attempts: number;
  next_attempt_at: Date | null;
  created_at: Date;
  updated_at: Date;
  /** The newest attempts first (at most 30). */
  attempt_log: AttemptRow[];
}

/** A delivery a replica has claimed: what it needs to sign and send. */
export interface ClaimedDelivery {
  id: string;
  event_id: string;
  event_type: string;
  body: string;
  attempts: number;
  endpoint_id: string;
  account_id: string;
  url: string;
  secrets: string[];
}

export interface AttemptOutcome {
  statusCode: number | null;
  error: string | null;
  durationMs: number;
  response: string | null;
}

/** The endpoints, the outbox of events, the deliveries claimed with FOR UPDATE SKIP LOCKED, the attempts and the once-only notices. */
export const webhookRepository = {
  async insertEndpoint(
    q: Queryable,
    e: Pick<EndpointRow, 'id' | 'account_id' | 'url' | 'events' | 'description' | 'secret'>,
  ): Promise<EndpointRow> {
    const { rows } = await q.query<EndpointRow>(
      `INSERT INTO webhook_endpoints (id, account_id, url, events, description, secret)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [e.id, e.account_id, e.url, e.events, e.description, e.secret],
    );
    return rows[0] as EndpointRow;
  },

  async countEndpoints(q: Queryable, accountId: string): Promise<number> {
    const { rows } = await q.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM webhook_endpoints WHERE account_id = $1',
      [accountId],
    );
    return rows[0]?.n ?? 0;
  },

  async listEndpoints(q: Queryable, accountId: string): Promise<EndpointRow[]> {
    const { rows } = await q.query<EndpointRow>(
      'SELECT * FROM webhook_endpoints WHERE account_id = $1 ORDER BY created_at, id',
      [accountId],
    );
    return rows;
  },

  async getEndpoint(q: Queryable, accountId: string, id: string, lock = false): Promise<EndpointRow | undefined> {
    const { rows } = await q.query<EndpointRow>(
      `SELECT * FROM webhook_endpoints WHERE account_id = $1 AND id = $2${lock ? ' FOR UPDATE' : ''}`,
      [accountId, id],
    );
    return rows[0];
  },

  /** Turning an endpoint on again clears why it was turned off, and its failing streak. */
  async updateEndpoint(q: Queryable, id: string, p: EndpointPatch): Promise<EndpointRow> {
    const { rows } = await q.query<EndpointRow>(
      `UPDATE webhook_endpoints SET
         url = coalesce($2, url), events = coalesce($3, events),
         description = CASE WHEN $4::boolean THEN $5 ELSE description END,
         enabled = coalesce($6, enabled),
         disabled_reason = CASE WHEN $6::boolean IS TRUE THEN NULL ELSE disabled_reason END,
         failing_since = CASE WHEN $6::boolean IS TRUE THEN NULL ELSE failing_since END,
         updated_at = now()
       WHERE id = $1 RETURNING *`,
      [id, p.url ?? null, p.events ?? null, p.description !== undefined, p.description ?? null, p.enabled ?? null],
    );
    return rows[0] as EndpointRow;
  },

  async deleteEndpoint(q: Queryable, accountId: string, id: string): Promise<boolean> {
    const { rows } = await q.query('DELETE FROM webhook_endpoints WHERE account_id = $1 AND id = $2 RETURNING id', [
      accountId,
      id,
    ]);
    return rows.length > 0;
  },

  /** A new secret; the current one keeps signing beside it until `overlapUntil`. */
  async rotateSecret(q: Queryable, id: string, secret: string, overlapUntil: Date): Promise<EndpointRow> {
    const { rows } = await q.query<EndpointRow>(
      `UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_until = $3, secret = $2, updated_at = now()
       WHERE id = $1 RETURNING *`,
      [id, secret, overlapUntil],
    );
    return rows[0] as EndpointRow;
  },

  /**
   * Write events to the outbox inside the caller's transaction (design: outbox): each one with a
   * delivery for every enabled endpoint of its account that asked for its type; an event no endpoint
   * asked for is not written. `endpointId` addresses one endpoint whatever it asked for (webhook.test).
   */
  async emit(tx: Queryable, events: NewWebhookEvent[], endpointId?: string): Promise<number> {
    if (events.length === 0) return 0;
    const { rows: targets } = await tx.query<{ event_id: string; endpoint_id: string }>(
      `SELECT i.id AS event_id, e.id AS endpoint_id
       FROM unnest($1::text[], $2::text[], $3::text[]) AS i(id, account_id, type)
       JOIN webhook_endpoints e ON e.account_id = i.account_id AND e.enabled
         AND (CASE WHEN $4::text IS NULL THEN i.type = ANY(e.events) ELSE e.id = $4 END)
       ORDER BY e.id`,
      [events.map((e) => e.id), events.map((e) => e.accountId), events.map((e) => e.type), endpointId ?? null],
    );
    if (targets.length === 0) return 0;
    const wanted = new Set(targets.map((t) => t.event_id));
    const kept = events.filter((e) => wanted.has(e.id));
    await tx.query(
      `INSERT INTO webhook_events (id, account_id, type, body)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])`,
      [kept.map((e) => e.id), kept.map((e) => e.accountId), kept.map((e) => e.type), kept.map((e) => e.body)],
    );
    await tx.query(
      `INSERT INTO webhook_deliveries (id, event_id, endpoint_id)
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[])`,
      [targets.map(() => newDeliveryId()), targets.map((t) => t.event_id), targets.map((t) => t.endpoint_id)],
    );
    return targets.length;
  },

  /**
   * Claim up to `limit` due deliveries of enabled endpoints for `replica` until `claimMs` from now:
   * deliveries another replica is claiming at this moment are skipped, not waited for, and a claim
   * that has run out (its replica died mid-send) is taken over.
   */
  async claim(q: Queryable, replica: string, limit: number, claimMs: number): Promise<ClaimedDelivery[]> {
    const { rows } = await q.query<ClaimedDelivery & { secret: string; previous: string | null }>(
      `WITH due AS (
         SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.state = 'pending' AND d.next_attempt_at <= now() AND (d.claimed_until IS NULL OR d.claimed_until < now())
           AND e.enabled
         ORDER BY d.next_attempt_at LIMIT $2 FOR UPDATE OF d SKIP LOCKED
       ), claimed AS (
         UPDATE webhook_deliveries d SET claimed_until = now() + make_interval(secs => $3::double precision / 1000),
           claimed_by = $1, attempts = d.attempts + 1, updated_at = now()
         FROM due WHERE d.id = due.id
         RETURNING d.id, d.event_id, d.endpoint_id, d.attempts
       )
       SELECT c.id, c.event_id, ev.type AS event_type, ev.body, c.attempts, c.endpoint_id, e.account_id, e.url,
         e.secret, CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous
       FROM claimed c JOIN webhook_events ev ON ev.id = c.event_id JOIN webhook_endpoints e ON e.id = c.endpoint_id`,
      [replica, limit, claimMs],
    );
    return rows.map(({ secret, previous, ...r }) => ({ ...r, secrets: previous ? [secret, previous] : [secret] }));
  },

  /**
   * Record an attempt and settle the delivery as the delivery service decided: delivered, pending
   * again at `retryAt`, or failed. Only the claim's holder settles it (a claim taken over after it ran
   * out is the new holder's). Also keeps the endpoint's failing streak: cleared by a delivery, started
   * by anything else.
   */
  async settle(
    tx: Queryable,
    d: Pick<ClaimedDelivery, 'id' | 'attempts' | 'endpoint_id'>,
    replica: string,
    outcome: AttemptOutcome,
    next: { state: 'delivered' | 'failed' } | { state: 'pending'; retryAt: Date },
  ): Promise<{ settled: boolean; failingSince: Date | null }> {
    const delivered = next.state === 'delivered';
    await tx.query(
      `INSERT INTO webhook_attempts (delivery_id, n, replica, status_code, error, duration_ms, response)
       VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (delivery_id, n) DO NOTHING`,
      [d.id, d.attempts, replica, outcome.statusCode, outcome.error, outcome.durationMs, outcome.response],
    );
    const { rows } = await tx.query(
      `UPDATE webhook_deliveries SET state = $3, next_attempt_at = coalesce($4, next_attempt_at),
         claimed_until = NULL, claimed_by = NULL, updated_at = now()
       WHERE id = $1 AND claimed_by = $2 RETURNING id`,
      [d.id, replica, next.state, next.state === 'pending' ? next.retryAt : null],
    );
    const { rows: endpoint } = await tx.query<{ failing_since: Date | null }>(
      `UPDATE webhook_endpoints SET failing_since = CASE WHEN $2 THEN NULL ELSE coalesce(failing_since, now()) END
       WHERE id = $1 RETURNING failing_since`,
      [d.endpoint_id, delivered],
    );
    return { settled: rows.length > 0, failingSince: endpoint[0]?.failing_since ?? null };
  },

  /** Turn an endpoint off for a reason of the service's ('gone', 'failing'); false when it already was. */
  async disableEndpoint(tx: Queryable, id: string, reason: string): Promise<EndpointRow | undefined> {
    const { rows } = await tx.query<EndpointRow>(
      `UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
       WHERE id = $1 AND enabled RETURNING *`,
      [id, reason],
    );
    return rows[0];
  },

  /** The endpoint's deliveries, newest first, each with its attempts (newest first, at most 30). */
  async listDeliveries(
    q: Queryable,
    endpointId: string,
    opts: { before?: { createdAt: Date; id: string } | undefined; limit: number },
  ): Promise<DeliveryRow[]> {
    const { rows } = await q.query<DeliveryRow>(
      `SELECT d.id, d.event_id, ev.type AS event_type, d.endpoint_id, d.state, d.attempts,
         CASE WHEN d.state = 'pending' THEN d.next_attempt_at END AS next_attempt_at, d.created_at, d.updated_at,
         coalesce((SELECT json_agg(a ORDER BY a.n DESC) FROM (
           SELECT n, at, status_code, error, duration_ms, response FROM webhook_attempts
           WHERE delivery_id = d.id ORDER BY n DESC LIMIT 30) a), '[]') AS attempt_log
       FROM webhook_deliveries d JOIN webhook_events ev ON ev.id = d.event_id
       WHERE d.endpoint_id = $1 AND ($2::timestamptz IS NULL OR (d.created_at, d.id) < ($2, $3))
       ORDER BY d.created_at DESC, d.id DESC LIMIT $4`,
      [endpointId, opts.before?.createdAt ?? null, opts.before?.id ?? '', opts.limit],
    );
    for (const r of rows)
      r.attempt_log = (r.attempt_log as unknown as (Omit<AttemptRow, 'at'> & { at: string })[]).map((a) => ({
        ...a,
        at: new Date(a.at),
      }));
    return rows;
  },

  /** Make a delivery due now, whatever its state (sent again under the same webhook-id); undefined when the endpoint has no such delivery. */
  async retry(q: Queryable, endpointId: string, deliveryId: string): Promise<{ id: string } | undefined> {
    const { rows } = await q.query<{ id: string }>(
      `UPDATE webhook_deliveries SET state = 'pending', next_attempt_at = now(), updated_at = now()
       WHERE id = $1 AND endpoint_id = $2 RETURNING id`,
      [deliveryId, endpointId],
    );
    return rows[0];
  },

  /** Record notices once: returns those not recorded before (the others were sent already, by any replica). */
  async notice(tx: Queryable, notices: { keyId: string; notice: string }[]): Promise<Set<string>> {
    if (notices.length === 0) return new Set();
    const { rows } = await tx.query<{ key_id: string; notice: string }>(
      `INSERT INTO webhook_notices (key_id, notice) SELECT * FROM unnest($1::text[], $2::text[])
       ON CONFLICT DO NOTHING RETURNING key_id, notice`,
      [notices.map((n) => n.keyId), notices.map((n) => n.notice)],
    );
    return new Set(rows.map((r) => `${r.key_id}|${r.notice}`));
  },

  /**
   * Keys of accounts with an enabled endpoint asking for `type` that match `condition` (SQL over
   * `k`, the key row; its own parameters from $3), at most `limit`.
   */
  async keysFor(
    q: Queryable,
    type: string,
    condition: string,
    limit: number,
    params: unknown[] = [],
  ): Promise<KeyRow[]> {
    const { rows } = await q.query<KeyRow>(
      `SELECT k.* FROM api_keys k
       WHERE ${condition} AND EXISTS (SELECT 1 FROM webhook_endpoints e
         WHERE e.account_id = k.account_id AND e.enabled AND $1 = ANY(e.events))
       LIMIT $2`,
      [type, limit, ...params],
    );
    return rows;
  },

  /** Keys among `ids` whose quota balance is under `fraction` of its reference, with their balance and refill mark. */
  async lowQuotas(q: Queryable, ids: string[], fraction: number): Promise<(KeyRow & { quota_basis: number })[]> {
    if (ids.length === 0) return [];
    const { rows } = await q.query<KeyRow & { quota_basis: number }>(
      `SELECT k.* FROM api_keys k WHERE k.id = ANY($1::text[]) AND k.remaining_uses IS NOT NULL AND k.revoked_at IS NULL
         AND k.quota_basis > 0 AND k.remaining_uses < k.quota_basis * $2::double precision
         AND EXISTS (SELECT 1 FROM webhook_endpoints e WHERE e.account_id = k.account_id AND e.enabled
           AND e.events && ARRAY['key.quota_low', 'key.quota_exhausted'])`,
      [ids, fraction],
    );
    return rows;
  },
};
