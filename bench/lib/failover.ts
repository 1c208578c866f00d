// The soak's `--failover`: Redis as a Sentinel-watched master group, and a failover every two minutes,
// alternating a crash (SIGKILL of the primary; it is started again once a replica is promoted and
// comes back as a replica) with SENTINEL FAILOVER (the primary, alive, is demoted).
import type { SentinelGroup } from '../../test/helpers/redis-sentinel.js';

export interface FailoverRecord {
  /** Seconds into the load. */
  at: number;
  kind: 'primary SIGKILL' | 'SENTINEL FAILOVER';
  from: number | undefined;
  to?: number;
  /** From the kill or the command to the first +switch-master. */
  promotionMs?: number;
  /** From +switch-master until every running replica trusted its caches again. */
  trustedMs?: number;
  /** From +switch-master until the old primary was a replica in sync (it is started again after a kill). */
  oldPrimaryReplicaMs?: number;
  error?: string;
}

interface LoopOptions {
  group: SentinelGroup;
  everyMs: number;
  firstAtMs: number;
  t0: number;
  endAt: number;
  running: () => boolean;
  /** True when every running replica trusts its caches. */
  trusted: () => Promise<boolean>;
  log: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if (await check()) return true;
    await sleep(100);
  }
  return false;
}

/** One failover of `kind`, measured. */
async function failoverOnce(o: LoopOptions, kind: FailoverRecord['kind']): Promise<FailoverRecord> {
  const from = await o.group.primary();
  const record: FailoverRecord = { at: Math.round((Date.now() - o.t0) / 100) / 10, kind, from };
  const old = o.group.servers.find((s) => s.port === from);
  if (!old) return { ...record, error: 'no primary named by a majority of the Sentinels' };
  const switched = o.group.nextSwitch();
  await sleep(200);
  const started = performance.now();
  if (kind === 'primary SIGKILL') await old.kill();
  else await o.group.failover();
  const promotion = await Promise.race([switched, sleep(60_000).then(() => undefined)]);
  if (!promotion) return { ...record, error: 'no promotion within 60 s' };
  record.to = promotion.port;
  record.promotionMs = Math.round(promotion.at - started);
  if (await until(o.trusted, 30_000)) record.trustedMs = Math.round(performance.now() - promotion.at);
  if (kind === 'primary SIGKILL') {
    await until(async () => (await o.group.primary()) === promotion.port, 15_000);
    await old.start();
  }
  if (await until(() => o.group.inSync(old.port), 60_000))
    record.oldPrimaryReplicaMs = Math.round(performance.now() - promotion.at);
  return record;
}

/** Failovers every `everyMs` from `firstAtMs` into the load until `endAt`; resolves the records. */
export async function failoverLoop(o: LoopOptions): Promise<FailoverRecord[]> {
  const records: FailoverRecord[] = [];
  for (let k = 0; ; k++) {
    const due = o.t0 + o.firstAtMs + k * o.everyMs;
    while (Date.now() < Math.min(due, o.endAt) && o.running()) await sleep(200);
    if (Date.now() >= o.endAt || !o.running()) return records;
    const kind = k % 2 === 0 ? 'primary SIGKILL' : 'SENTINEL FAILOVER';
    o.log(`failover ${k + 1}: ${kind}`);
    const record = await failoverOnce(o, kind).catch((err: unknown): FailoverRecord => ({
      at: Math.round((Date.now() - o.t0) / 100) / 10,
      kind,
      from: undefined,
      error: String(err),
    }));
    o.log(`failover ${k + 1}: ${JSON.stringify(record)}`);
    records.push(record);
  }
}
