import net from 'node:net';

interface TestLike { teardown(fn: () => unknown): void }

/**
 * A TCP proxy in front of a real server, so a test can cut the connection (`cut`), make it
 * half-open (`stall`: sockets stay open, nothing passes), and heal it (`heal`).
 */
export interface Proxy {
  port: number;
  url(scheme: string, path?: string): string;
  cut(): void;
  stall(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function startProxy(t: TestLike, targetPort: number, targetHost = '127.0.0.1'): Promise<Proxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  let mode: 'open' | 'cut' | 'stall' = 'open';
  const server = net.createServer((client) => {
    if (mode === 'cut') { client.destroy(); return; }
    const upstream = net.connect(targetPort, targetHost);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const forward = (from: net.Socket, to: net.Socket) => from.on('data', (d) => { if (mode === 'open') to.write(d); });
    forward(client, upstream);
    forward(upstream, client);
    const end = () => { client.destroy(); upstream.destroy(); pairs.delete(pair); };
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const destroyAll = () => { for (const [a, b] of pairs) { a.destroy(); b.destroy(); } pairs.clear(); };
  const proxy: Proxy = {
    port,
    url: (scheme, path = '') => `${scheme}://127.0.0.1:${port}${path}`,
    cut() { mode = 'cut'; destroyAll(); },
    // Half-open: existing sockets stay connected but nothing passes; new ones connect and hang the same way.
    stall() { mode = 'stall'; },
    heal() { if (mode === 'stall') destroyAll(); mode = 'open'; },
    close: () => new Promise<void>((resolve) => { destroyAll(); server.close(() => resolve()); }),
  };
  t.teardown(() => proxy.close());
  return proxy;
}
