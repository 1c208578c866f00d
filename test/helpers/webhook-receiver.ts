import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** One request the receiver got, with what verification said of it. */
export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  /** The parsed event, when the signature verified with one of the receiver's secrets. */
  event?: { type: string; id: string; created_at: string; data: Record<string, any> };
  verified: boolean;
  at: number;
}

/**
 * A webhook receiver on 127.0.0.1 (port 0) that verifies every request with the `standardwebhooks`
 * package, as an account's own system would. `secrets` may change while it runs (rotation); `answer`
 * decides the status code (default 204), or 'hang' to never answer.
 */
export async function startReceiver(t: TestLike, secrets: string[] = []) {
  const received: Received[] = [];
  const waiters: (() => void)[] = [];
  let connections = 0;
  const state = {
    secrets,
    answer: (_r: Received): number | 'hang' => 204,
  };
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const headers = {
        'webhook-id': String(req.headers['webhook-id'] ?? ''),
        'webhook-timestamp': String(req.headers['webhook-timestamp'] ?? ''),
        'webhook-signature': String(req.headers['webhook-signature'] ?? ''),
      };
      let event: Received['event'];
      for (const s of state.secrets) {
        try {
          event = new Webhook(s).verify(body, headers) as Received['event'];
          break;
        } catch {
          // not this secret: try the next
        }
      }
      const r: Received = {
        id: headers['webhook-id'],
        timestamp: headers['webhook-timestamp'],
        signature: headers['webhook-signature'],
        body,
        ...(event ? { event } : {}),
        verified: event !== undefined,
        at: Date.now(),
      };
      received.push(r);
      for (const w of waiters.splice(0)) w();
      const answer = state.answer(r);
      if (answer === 'hang') return;
      res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer < 300 ? 'ok' : 'no');
    });
  });
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return {
    url: `http://127.0.0.1:${port}/hooks`,
    port,
    received,
    state,
    close,
    get connections() {
      return connections;
    },
    /** Wait until `pred` holds over what was received (checked at each arrival), or fail after `ms`. */
    async until(pred: (r: Received[]) => boolean, ms = 10_000): Promise<Received[]> {
      const deadline = Date.now() + ms;
      while (!pred(received)) {
        const left = deadline - Date.now();
        if (left <= 0)
          throw new Error(`the receiver did not get what was awaited within ${ms} ms (${received.length} received)`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 200));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      return received;
    },
  };
}
