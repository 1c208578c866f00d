import { createServer } from 'node:http';

/**
 * BENCH_TRACING=<ratio> (0.01, 1): the service under test traces that share of its calls
 * (OTEL_TRACES_SAMPLER=traceidratio) and exports them as OTLP/HTTP protobuf to a sink on loopback in
 * this process, which reads and drops them. Unset or `off`: no OTEL_* variable, nothing of OpenTelemetry
 * loaded. Returns the service's extra variables and a line for the log.
 */
export async function tracingEnv(
  ratio: string | undefined,
): Promise<{ env: Record<string, string>; describe: string }> {
  if (ratio === undefined || ratio === '' || ratio === 'off') return { env: {}, describe: 'tracing off' };
  if (!(Number(ratio) > 0 && Number(ratio) <= 1))
    throw new Error(`BENCH_TRACING: a ratio in (0, 1], or off (got "${ratio}")`);
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // The bench's exit ends it.
  server.unref();
  const endpoint = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    env: {
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: ratio,
    },
    describe: `tracing ${Number(ratio) * 100} % of calls (traceidratio ${ratio}), exported to a local OTLP sink`,
  };
}
