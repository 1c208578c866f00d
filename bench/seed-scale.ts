/**
 * `npm run seed:scale -- --keys 1000000 --database-url postgres://…/bench_scale_x`: load keys into an empty
 * database (migrated here) for the at-scale benchmark. Every key shares one secret and so one argon2id
 * hash, computed once: the full keys of a sample are written to a file (mode 0600, outside the repository).
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { seedScale } from './lib/seed-scale.js';

function count(min: number) {
  return (text: string): number => {
    const n = Number(text.replace(/_/g, ''));
    if (!Number.isSafeInteger(n) || n < min) throw new InvalidArgumentError(`a whole number, at least ${min}`);
    return n;
  };
}

const program = new Command('seed:scale')
  .description('Load many keys into an empty PostgreSQL database (one argon2id hash shared by every key)')
  .requiredOption('--database-url <url>', 'an empty database made for it (never a shared one)')
  .option('--keys <n>', 'keys to load', count(1), 1_000_000)
  .option('--big-account-keys <n>', 'keys of the one large account (default: a tenth, at most 10,000)', count(1))
  .option('--sample <n>', 'keys whose full text is kept (active, spread over the table)', count(0))
  .option('--sample-file <path>', 'where to write the sample (JSON)')
  .action(
    async (o: { databaseUrl: string; keys: number; bigAccountKeys?: number; sample?: number; sampleFile?: string }) => {
      const log = (msg: string) => process.stderr.write(`[seed ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
      const r = await seedScale({
        databaseUrl: o.databaseUrl,
        keys: o.keys,
        bigAccountKeys: o.bigAccountKeys,
        sample: o.sample,
        log,
      });
      const file = o.sampleFile ?? join(tmpdir(), `otesse-seed-sample-${Date.now()}.json`);
      writeFileSync(
        file,
        `${JSON.stringify({ bigAccount: r.bigAccount, busyKeyIds: r.busyKeyIds, keys: r.sample }, null, 2)}\n`,
        { mode: 0o600 },
      );
      const a = r.argon2;
      process.stdout.write(
        [
          `seeded ${r.keys.toLocaleString('en-US')} keys over ${r.accounts.toLocaleString('en-US')} accounts in ${r.seconds.total} s ` +
            `(hash ${r.seconds.hash} s, insert ${r.seconds.insert} s, vacuum/analyze ${r.seconds.vacuum} s)`,
          `one argon2id hash (m=${a.memoryCost} KiB, t=${a.timeCost}, p=${a.parallelism}) computed once and reused for every row: every key has ` +
            'the same secret under its own public id (so its own digest, cache entry and row); each lookup still runs a full verification',
          `rows: ${Object.entries(r.rows)
            .map(([t, n]) => `${t} ${n.toLocaleString('en-US')}`)
            .join(', ')}`,
          `large account: ${r.bigAccount}; sample of ${r.sample.length} full keys written to ${file}`,
          '',
        ].join('\n'),
      );
    },
  );

program.parseAsync().catch((err: unknown) => {
  process.stderr.write(`seed:scale failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
