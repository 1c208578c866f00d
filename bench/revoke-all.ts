/**
 * `npm run bench:revoke-all`: a large revoke-all holds everywhere when it returns.
 *
 * 3 replicas on a private redis-server; per round, one account with 5,000 active keys (seeded straight
 * into api_keys), each verified on every replica; then POST /v1/accounts/:id/keys/revoke-all on the
 * first replica: its response time and propagation, then at once a sample of 500 of the keys asked on
 * every other replica (target: 0 allowed), then every key on every replica (target: 0 allowed).
 *
 * Options: --keys (5000), --sample (500), --replicas (3), --rounds (3).
 */
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { startRedis } from '../test/helpers/redis-server.js';
import {
  createDatabase,
  eachLimit,
  fleetEnv,
  guard,
  log as logAs,
  seedKeys,
  startFleet,
  Teardown,
  writeResult,
  type Propagation,
  type Replica,
  type SeededKey,
} from './lib/fleet.js';
import { percentiles } from '../test/helpers/harness/stats.js';

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string', default: '5000' },
    sample: { type: 'string', default: '500' },
    replicas: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
  },
});
const KEYS = Number(args.keys);
const SAMPLE = Number(args.sample);
const REPLICAS = Number(args.replicas);
const ROUNDS = Number(args.rounds);
const log = (msg: string) => logAs('revoke-all', msg);

/** What one replica answered for a set of keys. */
interface Asked {
  replica: string;
  allowed: number;
  errors: number;
  ms: number;
}

/** One revoke-all round, as reported. */
interface Round {
  round: number;
  account: string;
  warmMs: number;
  status: number;
  revoked: number | undefined;
  responseMs: number;
  propagation: Propagation | undefined;
  sampleRightAfter: Asked[];
  everyKeyAfterwards: Asked[];
}

/** Ask `keys` on `r`: how many were allowed, and how many calls failed. */
async function ask(
  r: Replica,
  keys: SeededKey[],
  concurrency = 32,
): Promise<{ allowed: number; errors: number; ms: number }> {
  let allowed = 0;
  let errors = 0;
  const started = performance.now();
  await eachLimit(keys, concurrency, async (k) => {
    const res = await r.authenticate(k.request);
    if (res.code !== grpc.status.OK) errors++;
    else if (res.allowed) allowed++;
  });
  return { allowed, errors, ms: Math.round(performance.now() - started) };
}

async function main(): Promise<number> {
  const td = new Teardown();
  guard(td, 'revoke-all', 20 * 60_000);
  try {
    const db = await createDatabase(td, 'revokeall');
    const redis = await startRedis(td);
    // Entries stay fresh for 10 min, so every replica would decide from memory (the case a revoke must reach).
    const replicas = await startFleet(td, REPLICAS, fleetEnv(db, redis.url, { CACHE_TTL_SECONDS: '600' }));
    const [writer, ...others] = replicas as [Replica, ...Replica[]];
    const rounds: Round[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      const account = `acct_revoke_all_${round}`;
      const keys = await seedKeys(db, account, KEYS);
      const warmStarted = performance.now();
      for (const r of replicas) {
        const warm = await ask(r, keys);
        if (warm.allowed !== keys.length)
          throw new Error(`warm-up on ${r.id}: ${warm.allowed} of ${keys.length} allowed, ${warm.errors} errors`);
      }
      const warmMs = Math.round(performance.now() - warmStarted);
      // Every key answered from memory on every replica before the revoke (no refresh due within the round).
      const sample = [...keys].sort(() => Math.random() - 0.5).slice(0, SAMPLE);
      log(
        `round ${round}: ${keys.length} keys of ${account} cached on ${replicas.length} replicas; revoke-all on ${writer.id}`,
      );
      const res = await writer.api('POST', `/v1/accounts/${account}/keys/revoke-all`, { reason: 'bench' });
      const sampled = await Promise.all(others.map(async (r) => ({ replica: r.id, ...(await ask(r, sample)) })));
      const everyKey = await Promise.all(replicas.map(async (r) => ({ replica: r.id, ...(await ask(r, keys)) })));
      const row = {
        round,
        account,
        warmMs,
        status: res.status,
        revoked: res.body?.revoked,
        responseMs: Math.round(res.ms),
        propagation: res.body?.propagation,
        sampleRightAfter: sampled,
        everyKeyAfterwards: everyKey,
      };
      rounds.push(row);
      log(JSON.stringify(row));
    }
    const allowedInSample = rounds.reduce((a, r) => a + r.sampleRightAfter.reduce((b, s) => b + s.allowed, 0), 0);
    const allowedAfter = rounds.reduce((a, r) => a + r.everyKeyAfterwards.reduce((b, s) => b + s.allowed, 0), 0);
    const errors = rounds.reduce(
      (a, r) => a + [...r.sampleRightAfter, ...r.everyKeyAfterwards].reduce((b, s) => b + s.errors, 0),
      0,
    );
    const result = {
      kind: 'revoke-all',
      at: new Date().toISOString(),
      keys: KEYS,
      sample: SAMPLE,
      replicas: REPLICAS,
      rounds,
      responseMs: percentiles(
        rounds.map((r) => Number(r.responseMs)),
        1,
      ),
      targets: {
        status200: rounds.every((r) => r.status === 200),
        allRevoked: rounds.every((r) => r.revoked === KEYS),
        allowedRightAfter0: allowedInSample === 0,
        allowedAfterwards0: allowedAfter === 0,
        callErrors0: errors === 0,
      },
    };
    const file = writeResult('revoke-all', result);
    console.log(`revoke-all: ${KEYS} keys cached on ${REPLICAS} replicas, ${ROUNDS} round(s)`);
    for (const r of rounds) {
      const p = r.propagation;
      console.log(
        `round ${r.round}: HTTP ${r.status}, revoked ${r.revoked}, ${r.responseMs} ms; propagation ${p?.outcome} ${p?.confirmed}/${p?.replicas} confirmed, waited ${p?.waited_ms} ms; ` +
          `right after, ${SAMPLE} sampled keys allowed: ${r.sampleRightAfter.map((s) => `${s.replica}=${s.allowed}`).join(' ')}; ` +
          `afterwards, all keys allowed: ${r.everyKeyAfterwards.map((s) => `${s.replica}=${s.allowed}`).join(' ')}`,
      );
    }
    console.log(`response ms ${JSON.stringify(result.responseMs)}; call errors ${errors}`);
    console.log(`targets: ${JSON.stringify(result.targets)}`);
    console.log(`written ${file}`);
    return Object.values(result.targets).every(Boolean) ? 0 : 1;
  } finally {
    await td.run();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
