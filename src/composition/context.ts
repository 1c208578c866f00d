import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { Metrics } from '../observability/metrics.js';
import type { Trace } from '../service/trace.js';

/** What every part of the composition root is built from: the configuration and the process's own instruments. */
export interface Root {
  config: Config;
  log: Logger;
  metrics: Metrics;
  replicaId: string;
  /** The use cases' spans and attributes (NO_TRACE unless tracing is configured). */
  trace: Trace;
}
