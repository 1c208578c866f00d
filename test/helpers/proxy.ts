import net from 'node:net';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/**
 * A TCP proxy in front of a real server, so a test can cut the connection (`cut`), make it
 * half-open (`stall`: sockets stay open, nothing passes), and heal it (`heal`).
 */
export interface Proxy {
  port: number;
  url(scheme: string, path?: string): string;
  cut(): void;
  stall(): void;
  /** Every byte from the server to the client passes `ms` late, in order (0: no delay); the other way is untouched. */
  delay(ms: number): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startProxy(t: TestLike, targetPort: number, targetHost = '127.0.0.1'): Promise<Proxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let mode: 'open' | 'cut' | 'stall' = 'open';
  let delayMs = 0;
  const server = net.createServer((client) => {
    if (mode === 'cut') {
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket, delayed: boolean) => {
      let last = 0; // release times never go backwards, so a shorter delay cannot reorder the stream
      from.on('data', (d) => {
        if (mode !== 'open') return;
        if (!delayed || (delayMs === 0 && last <= Date.now())) {
          to.write(d);
          return;
        }
        last = Math.max(Date.now() + delayMs, last);
        setTimeout(() => {
          if (!to.destroyed) to.write(d);
        }, last - Date.now());
      });
    };
    forward(client, upstream, false);
    forward(upstream, client, true);
    const end = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => {
    for (const [a, b] of pairs) {
      a.destroy();
      b.destroy();
    }
    pairs.clear();
  };
  const proxy: Proxy = {
    port,
    url: (scheme, path = '') => `${scheme}://127.0.0.1:${port}${path}`,
    cut() {
      mode = 'cut';
      destroyAll();
    },
    // Half-open: existing sockets stay connected but nothing passes; new ones connect and hang the same way.
    stall() {
      mode = 'stall';
    },
    delay(ms) {
      delayMs = ms;
    },
    heal() {
      if (mode === 'stall') destroyAll();
      mode = 'open';
      delayMs = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        destroyAll();
        server.close(() => resolve());
      }),
  };
  t.teardown(() => proxy.close());
  return proxy;
}
