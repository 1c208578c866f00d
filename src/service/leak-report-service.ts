import { createHash } from 'node:crypto';
import pLimit from 'p-limit';
import { AppError } from '../domain/errors.js';
import { KEY_PATTERN, parseKey, redact, secretOf, type ParsedKey } from '../domain/key-format.js';
import { auditRepository, type NewAudit } from '../store/audit-repository.js';
import type { Database } from '../store/db.js';
import { keysRepository, type KeyRow } from '../store/keys-repository.js';
import { leaksRepository, type NewLeak } from '../store/leaks-repository.js';
import type { Hasher } from './hasher.js';
import type { Actor, KeyService } from './key-service.js';

/** One place a token was seen: GitHub sends one per match, an admin one per key. */
export interface LeakedToken {
  token: string;
  /** What found it or where (GitHub: `commit`, `gist`, …; an admin: their scanner's name). */
  source: string;
  url?: string | undefined;
}

export type LeakLabel = 'true_positive' | 'false_positive';

/** The answer for one reported token, never the token itself. */
export interface LeakVerdict {
  /** SHA-256 hex of the token as reported. */
  tokenHash: string;
  /** true_positive: a real key (now revoked, or revoked before); false_positive: anything else. */
  label: LeakLabel;
  keyId: string | null;
  outcome: 'revoked' | 'already_revoked' | null;
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
  /** argon2 verifications this use case keeps in the Hasher at once (Authenticate shares its queue); default 2. */
  verifyConcurrency?: number;
  /** Revokes at once (each waits for every replica's confirmation); default 8. */
  revokeConcurrency?: number;
  /** How long to keep retrying while the Hasher sheds load before giving up with OVERLOADED. */
  overloadWaitMs?: number;
}

/** Places recorded per key and report: a token pasted in thousands of files is one incident. */
const MAX_PLACES = 20;
const MAX_REASON = 500;

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');
/** A URL could itself hold a key: never store one, wherever it appears. */
const scrubKeys = (text: string) => text.replace(KEY_PATTERN, redact);

interface Candidate {
  token: string;
  parsed: ParsedKey;
  places: { source: string; url: string | null }[];
}

/**
 * Leaked-key reports: each token is checked offline, then, when it names a real key (of the
 * scope's account), verified against the stored argon2 hash, so a forged secret with a real id
 * revokes nothing. A verified key is revoked through KeyService.revoke (the admin revoke: on
 * every replica before it returns) and the report is recorded as a leak of that key.
 */
export class LeakReportService {
  #o: LeakReportServiceOptions;

  constructor(opts: LeakReportServiceOptions) {
    this.#o = opts;
  }

  /** Check, verify, revoke and record; one verdict per entry, in the entries' order. */
  async report(actor: Actor, entries: readonly LeakedToken[], scope: LeakScope): Promise<LeakVerdict[]> {
    const candidates = candidatesOf(entries);
    const rows = await this.#rows([...new Set([...candidates.values()].map((c) => c.parsed.keyId))]);
    const verified = new Map<string, { row: KeyRow; outcome: 'revoked' | 'already_revoked' }>();
    const verify = pLimit(this.#o.verifyConcurrency ?? 2);
    const revoke = pLimit(this.#o.revokeConcurrency ?? 8);
    await Promise.all([...candidates.values()].map(async (c) => {
      const row = rows.get(c.parsed.keyId);
      if (!row || row.environment !== c.parsed.environment || (scope.accountId !== undefined && row.account_id !== scope.accountId)) return;
      if (!(await verify(() => this.#verify(row, c.token)))) return;
      verified.set(c.token, { row, outcome: await revoke(() => this.#revokeAndRecord(actor, row, c, scope)) });
    }));
    return entries.map((e) => {
      const hit = verified.get(e.token);
      return { tokenHash: sha256(e.token), label: hit ? 'true_positive' : 'false_positive', keyId: hit?.row.id ?? null, outcome: hit?.outcome ?? null };
    });
  }

  async #rows(ids: string[]): Promise<Map<string, KeyRow>> {
    const read = pLimit(8);
    const rows = await Promise.all(ids.map((id) => read(() => keysRepository.byId(this.#o.db, id))));
    return new Map(rows.filter((r): r is KeyRow => r !== undefined).map((r) => [r.id, r]));
  }

  /** argon2 verification; while Authenticate keeps the Hasher's queue full, wait rather than fail the report. */
  async #verify(row: KeyRow, token: string): Promise<boolean> {
    const deadline = Date.now() + (this.#o.overloadWaitMs ?? 5000);
    for (;;) {
      try {
        return await this.#o.hasher.verify(row.secret_hash, secretOf(token));
      } catch (err) {
        if (!(err instanceof AppError && err.code === 'OVERLOADED') || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
  }

  async #revokeAndRecord(actor: Actor, row: KeyRow, c: Candidate, scope: LeakScope): Promise<'revoked' | 'already_revoked'> {
    // Read before the revoke: a key revoked earlier is reported again, never revoked twice.
    const outcome = row.revoked_at ? 'already_revoked' : 'revoked';
    const first = c.places[0];
    if (outcome === 'revoked') {
      const reason = `leaked: ${scope.channel}${first?.url ? ` ${first.url}` : ''}`.slice(0, MAX_REASON);
      await this.#o.keys.revoke(actor, row.account_id, row.id, reason);
    }
    const leaks: NewLeak[] = c.places.map((p) => ({ key_id: row.id, account_id: row.account_id, reporter: actor.name, source: p.source, url: p.url, outcome }));
    const audit: NewAudit[] = c.places.map((p) => ({
      account_id: row.account_id, key_id: row.id, actor: actor.name, action: 'key.leak_reported', source_ip: actor.sourceIp,
      changes: { source: p.source, url: p.url, outcome },
    }));
    await this.#o.db.transaction(async (tx) => {
      await leaksRepository.insert(tx, leaks);
      await auditRepository.insert(tx, audit);
    });
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
    const place = { source: scrubKeys(e.source), url: e.url === undefined ? null : scrubKeys(e.url) };
    if (c.places.length < MAX_PLACES && !c.places.some((p) => p.source === place.source && p.url === place.url)) c.places.push(place);
    out.set(e.token, c);
  }
  return out;
}
