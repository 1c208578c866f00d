import { ConfigError, loadConfig, type Config } from './config.js';
import { tracingRequested } from './observability/tracing-env.js';
import { newReplicaId } from './replica-id.js';

/** The process: configuration, tracing when asked for, start, and SIGTERM/SIGINT for an orderly stop. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  // One id names the replica in its logs, metrics and traces.
  if (!config.REPLICA_ID) config = Object.freeze({ ...config, REPLICA_ID: newReplicaId() });
  // Tracing starts before the app is imported, so its instrumentations patch grpc-js, pg, ioredis and
  // pino as they load; with no OTEL_* variable asking for traces, nothing of OpenTelemetry is loaded.
  const tracing = tracingRequested() ? await startTracing(config.REPLICA_ID as string) : undefined;
  const { startApp } = await import('./app.js');
  const app = await startApp(config, undefined, tracing?.trace);
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'stopping');
      // The spans of the last calls are exported after the app has closed.
      app
        .close()
        .then(() => tracing?.shutdown())
        .then(
          () => process.exit(0),
          (err: unknown) => {
            app.log.error({ err }, 'stop failed');
            process.exit(1);
          },
        );
    });
  }
}

async function startTracing(replicaId: string) {
  const { startTracing: start } = await import('./observability/tracing.js');
  try {
    return await start(replicaId);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`start-up failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
