import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { AppError } from '../domain/errors.js';
import {
  KEY_PATTERN,
  offlineRefusal,
  parseKey,
  redact,
  secretCheck,
  secretOf,
  type ParsedKey,
} from '../domain/key-format.js';
import { readableFrom, TEXT_LIMITS } from '../domain/text.js';
import { auditRepository, type NewAudit } from '../store/audit-repository.js';
import type { Database } from '../store/db.js';
import { keysRepository, type KeyRow } from '../store/keys-repository.js';
import { leaksRepository, type NewLeak } from '../store/leaks-repository.js';
import { webhookRepository } from '../store/webhook-repository.js';
import { keyEvent } from '../domain/webhook.js';
import type { Hasher } from './hasher.js';
import type { Actor, KeyService } from './key-service.js';
import { NO_TRACE, type Trace } from './trace.js';

/** One place a token was seen: GitHub sends one per match, an admin one per key. */
export interface LeakedToken {
  token: string;
  /** What found it or where (GitHub: `commit`, `gist`, …; an admin: their scanner's name). */
  source: string;
  url?: string | undefined;
}

export type LeakLabel = 'true_positive' | 'false_positive';

/**
 * `not_checked`: the token names a key made before check values existed, and the report had already
 * spent its argon2 budget (MAX_UNVOUCHED_VERIFICATIONS), or argon2 could not verify the key's stored
 * hash (a fault, reported by the Hasher): nothing was decided, report it again.
 */
export type LeakOutcome = 'revoked' | 'already_revoked' | 'not_checked';

/** The answer for one reported token, never the token itself. */
export interface LeakVerdict {
  /** SHA-256 hex of the token as reported. */
  tokenHash: string;
  /** true_positive: a real key (now revoked, or revoked before); false_positive: anything else; null: not checked. */
  label: LeakLabel | null;
  keyId: string | null;
  outcome: LeakOutcome | null;
}

export interface LeakScope {
  /** Only keys of this account count (the admin route); undefined: any account (GitHub). */
  accountId?: string | undefined;
  /** Names the reporter in the revoke reason: `leaked: <channel> <url>`. */
  channel: string;
}

export interface LeakReportServiceOptions {
  db: Database;
  hasher: Hasher;
  keys: KeyService;
  /** argon2 verifications this use case keeps in the Hasher's admin lane at once; default 1. */
  verifyConcurrency?: number;
  /** Revokes at once (each waits for every replica's confirmation); default 8. */
  revokeConcurrency?: number;
  /** How long to keep retrying while the Hasher sheds load before giving up with OVERLOADED. */
  overloadWaitMs?: number;
  /** Each report as a span with its counts, never a token (default: tracing off). */
  trace?: Trace;
  /** Told after a commit that wrote to the webhook outbox (key.leaked). */
  onEvents?: () => void;
}

/** Places recorded per key and report: a token pasted in thousands of files is one incident. */
const MAX_PLACES = 20;
/**
 * argon2 verifications one report may spend on tokens no check value vouches for (keys made before
 * check values existed). A token whose secret fails the check value costs no hashing at all; one that
 * passes it is the real secret (short of a one-in-four-billion chance) and is hashed only to revoke a
 * live key, so it costs argon2 once per key. Past the budget a token is answered `not_checked`.
 */
export const MAX_UNVOUCHED_VERIFICATIONS = 20;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
/** A URL could itself hold a key: never store one, wherever it appears. */
const scrubKeys = (text: string) => text.replace(KEY_PATTERN, redact);

interface Candidate {
  token: string;
  parsed: ParsedKey;
  places: { source: string; url: string | null }[];
}

/** What a candidate costs to decide: nothing (refused offline, or an already revoked key vouched for), or argon2. */
type Triage =
  { kind: 'refused' } | { kind: 'settled'; row: KeyRow } | { kind: 'verify'; row: KeyRow; vouched: boolean };
type Decided = { row: KeyRow; outcome: LeakOutcome };

/**
 * Leaked-key reports: each token is checked offline, then, when it names a real key (of the
 * scope's account), verified against the stored argon2 hash, so a forged secret with a real id
 * revokes nothing. A verified key is revoked through KeyService.revoke (the admin revoke: on
 * every replica before it returns) and the report is recorded as a leak of that key.
 */
export class LeakReportService {
  #o: LeakReportServiceOptions;
  #trace: Trace;

  constructor(opts: LeakReportServiceOptions) {
    this.#o = opts;
    this.#trace = opts.trace ?? NO_TRACE;
  }

  /**
   * Check, verify, revoke and record; one verdict per entry, in the entries' order. Tokens are refused
   * offline as Authenticate refuses them (format, unknown id, environment, check value), so only a
   * real secret, or a bounded number of tokens for keys without a check value, reaches argon2
   * (design: bounded-hashing); it runs in the Hasher's admin lane, never in Authenticate's.
   */
  report(actor: Actor, entries: readonly LeakedToken[], scope: LeakScope): Promise<LeakVerdict[]> {
    return this.#trace.span(
      'otesse.leak_report',
      async () => {
        const verdicts = await this.#report(actor, entries, scope);
        const count = (outcome: LeakOutcome) => verdicts.filter((v) => v.outcome === outcome).length;
        this.#trace.setAttributes({
          'otesse.leak.revoked': count('revoked'),
          'otesse.leak.already_revoked': count('already_revoked'),
          'otesse.leak.not_checked': count('not_checked'),
          'otesse.leak.false_positives': verdicts.filter((v) => v.label === 'false_positive').length,
        });
        return verdicts;
      },
      {
        'otesse.leak.channel': scope.channel,
        'otesse.leak.tokens': entries.length,
        'otesse.account_id': scope.accountId,
      },
    );
  }

  async #report(actor: Actor, entries: readonly LeakedToken[], scope: LeakScope): Promise<LeakVerdict[]> {
    const candidates = [...candidatesOf(entries).values()];
    const rows = await this.#rows([...new Set(candidates.map((c) => c.parsed.keyId))]);
    const triaged = candidates.map((c) => ({ c, t: triage(rows.get(c.parsed.keyId), c, scope) }));
    const decided = new Map<string, Decided>();
    const verify = pLimit(this.#o.verifyConcurrency ?? 1);
    const revoke = pLimit(this.#o.revokeConcurrency ?? 8);
    let unvouched = 0;
    await Promise.all(
      triaged.map(async ({ c, t }) => {
        if (t.kind === 'refused') return;
        if (t.kind === 'verify' && !t.vouched && ++unvouched > MAX_UNVOUCHED_VERIFICATIONS) {
          decided.set(c.token, { row: t.row, outcome: 'not_checked' });
          return;
        }
        const verified = t.kind === 'verify' ? await verify(() => this.#verify(t.row, c.token)) : true;
        if (verified === 'fault') decided.set(c.token, { row: t.row, outcome: 'not_checked' });
        if (verified !== true) return;
        decided.set(c.token, {
          row: t.row,
          outcome: await revoke(() => this.#revokeAndRecord(actor, t.row, c, scope)),
        });
      }),
    );
    return entries.map((e) => verdictOf(e.token, decided.get(e.token)));
  }

  async #rows(ids: string[]): Promise<Map<string, KeyRow>> {
    const read = pLimit(8);
    const rows = await Promise.all(ids.map((id) => read(() => keysRepository.byId(this.#o.db, id))));
    return new Map(rows.filter((r): r is KeyRow => r !== undefined).map((r) => [r.id, r]));
  }

  /**
   * argon2 in the admin lane; while create and rotate keep it full, wait rather than fail the report.
   * `fault`: argon2 could not verify this key's hash (the Hasher counted and reported it): that token is
   * left undecided rather than failing every other token of the report, or calling a real key forged.
   */
  async #verify(row: KeyRow, token: string): Promise<boolean | 'fault'> {
    const deadline = Date.now() + (this.#o.overloadWaitMs ?? 5000);
    for (;;) {
      try {
        return await this.#o.hasher.verifyForAdmin(row.secret_hash, secretOf(token));
      } catch (err) {
        if (err instanceof AppError && err.code === 'HASHER_FAULT') return 'fault';
        if (!(err instanceof AppError && err.code === 'OVERLOADED') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  async #revokeAndRecord(
    actor: Actor,
    row: KeyRow,
    c: Candidate,
    scope: LeakScope,
  ): Promise<'revoked' | 'already_revoked'> {
    // Read before the revoke: a key revoked earlier is reported again, never revoked twice.
    const outcome = row.revoked_at ? 'already_revoked' : 'revoked';
    const first = c.places[0];
    if (outcome === 'revoked') {
      // Built by the service from what the reporter sent: made readable and cut, never refused (one odd URL must not fail the report).
      const reason = readableFrom(`leaked: ${scope.channel}${first?.url ? ` ${first.url}` : ''}`, TEXT_LIMITS.reason);
      await this.#o.keys.revoke(actor, row.account_id, row.id, reason);
    }
    const leaks: NewLeak[] = c.places.map((p) => ({
      key_id: row.id,
      account_id: row.account_id,
      reporter: actor.name,
      source: p.source,
      url: p.url,
      outcome,
    }));
    const audit: NewAudit[] = c.places.map((p) => ({
      account_id: row.account_id,
      key_id: row.id,
      actor: actor.name,
      action: 'key.leak_reported',
      source_ip: actor.sourceIp,
      changes: { source: p.source, url: p.url, outcome },
    }));
    await this.#o.db.transaction(async (tx) => {
      await leaksRepository.insert(tx, leaks);
      await auditRepository.insert(tx, audit);
      await webhookRepository.emit(
        tx,
        c.places.map((p) =>
          keyEvent('key.leaked', row, { source: p.source, url: p.url, outcome, reporter: actor.name }),
        ),
      );
    });
    this.#o.onEvents?.();
    return outcome;
  }
}

/** The well-formed tokens, each once, with the distinct places it was seen. */
function candidatesOf(entries: readonly LeakedToken[]): Map<string, Candidate> {
  const out = new Map<string, Candidate>();
  for (const e of entries) {
    const parsed = parseKey(e.token);
    if (!parsed) continue;
    const c = out.get(e.token) ?? { token: e.token, parsed, places: [] };
    const place = {
      source: readableFrom(scrubKeys(e.source), TEXT_LIMITS.leakSource) || 'unknown',
      url: e.url === undefined ? null : readableFrom(scrubKeys(e.url), TEXT_LIMITS.leakUrl) || null,
    };
    if (c.places.length < MAX_PLACES && !c.places.some((p) => p.source === place.source && p.url === place.url))
      c.places.push(place);
    out.set(e.token, c);
  }
  return out;
}

/**
 * The same offline refusals as Authenticate (design: bounded-hashing): an unknown id, another account's
 * key, the other environment or a check value that differs cost no hashing. A key already revoked whose
 * check value vouches for the secret is settled without argon2: nothing would change, and a replayed
 * report of revoked keys must not cost hashing.
 */
function triage(row: KeyRow | undefined, c: Candidate, scope: LeakScope): Triage {
  if (!row || (scope.accountId !== undefined && row.account_id !== scope.accountId)) return { kind: 'refused' };
  if (
    offlineRefusal(
      { environment: row.environment, check: row.secret_check },
      c.parsed.environment,
      secretCheck(secretOf(c.token)),
    )
  ) {
    return { kind: 'refused' };
  }
  const vouched = row.secret_check !== null;
  if (vouched && row.revoked_at) return { kind: 'settled', row };
  return { kind: 'verify', row, vouched };
}

function verdictOf(token: string, d: Decided | undefined): LeakVerdict {
  const tokenHash = sha256(token);
  if (!d) return { tokenHash, label: 'false_positive', keyId: null, outcome: null };
  if (d.outcome === 'not_checked') return { tokenHash, label: null, keyId: null, outcome: 'not_checked' };
  return { tokenHash, label: 'true_positive', keyId: d.row.id, outcome: d.outcome };
}
