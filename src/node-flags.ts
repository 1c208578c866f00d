/**
 * The node flags the service runs with, wherever it runs: the image's CMD (`Dockerfile`), `npm start`, and
 * every bench and test that starts `dist/src/main.js` (test/deploy/node-flags.test.ts holds the first two
 * to this list).
 *
 * A young generation of 16 MiB semi-spaces from the start. V8 starts it at 1 MiB and grows it only when
 * many objects survive a scavenge, which the per-call garbage of an RPC server never does: at light load
 * the service scavenged every few hundred calls, each scavenge taking 1.5–2.5 ms against about 1 ms in a
 * bare gRPC server, and its old generation filled with what the scavenges promoted (53 to 176 MB, then one
 * 360 ms major GC). Measured at 2 calls in flight, 12 interleaved rounds: 11 % less CPU per
 * cache hit (7 % in two shorter runs), resident memory unchanged.
 */
export const NODE_FLAGS: readonly string[] = ['--min-semi-space-size=16', '--max-semi-space-size=16'];
