// A calling service in a process of its own, for the fault tests of local decisions (design:
// callers-hold-leases): it decides its keys in a loop with @otesse/keys-client (memory first, then
// Authenticate) and answers the test on stdin/stdout. Each allowed decision is kept with the time its
// request started, so the test can ask how many requests that started after a revoke returned were
// allowed (there must be none).
import { createInterface } from 'node:readline';
import { KeyServiceClient } from '@otesse/keys-client';

const address = process.env.CALLER_TARGET ?? '';
const keys = JSON.parse(process.env.CALLER_KEYS ?? '[]') as string[];
const client = new KeyServiceClient({ address, deadlineMs: 2000 });
const ip = '203.0.113.7';
const scope = 'bookings:read';

/** Per key: start times (epoch ms) of allowed requests, by whether memory decided them. */
const allowed = keys.map(() => ({ local: [] as number[], asked: [] as number[] }));
let calls = 0;
let faults = 0;
let running = true;

async function loop(): Promise<void> {
  while (running) {
    for (const [i, key] of keys.entries()) {
      const started = Date.now();
      calls++;
      const local = client.decideLocally({ key, ip, scope });
      if (local) {
        allowed[i]!.local.push(started);
        continue;
      }
      try {
        if ((await client.authenticate({ key, ip, scope })).allowed) allowed[i]!.asked.push(started);
      } catch {
        // No decision (the service unreachable): counted, and the request is not allowed.
        faults++;
      }
    }
    // Timers and the stream's events run between rounds.
    await new Promise((r) => setTimeout(r, 5));
  }
}

const count = (list: number[], after: number) => list.filter((t) => t > after).length;

createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line) as { id: number; cmd: 'allowsAfter' | 'close'; key?: number; after?: number };
  if (msg.cmd === 'allowsAfter') {
    const a = allowed[msg.key ?? 0]!;
    const after = msg.after ?? 0;
    process.stdout.write(
      `${JSON.stringify({ id: msg.id, local: count(a.local, after), asked: count(a.asked, after), calls, faults })}\n`,
    );
  } else if (msg.cmd === 'close') {
    running = false;
    void client.close().then(() => {
      process.stdout.write(`${JSON.stringify({ id: msg.id, closed: true })}\n`);
      process.exit(0);
    });
  }
});

process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
void loop();
