import type * as grpc from '@grpc/grpc-js';
import type { Metrics } from '../observability/metrics.js';
import type { AuthResult, Authenticator } from '../service/authenticator.js';
import type { Hasher } from '../service/hasher.js';
import type { Invalidator } from '../service/invalidator.js';
import type { InvalidationBus } from '../cache/bus.js';
import type { GatewayOutcome } from '../transport/gateway-check.js';

/** What /metrics serves, on the admin port or on METRICS_PORT. */
export interface MetricsEndpoint {
  contentType: string;
  render(): Promise<string>;
}

/** The parts whose state /metrics reads at each scrape. */
export interface GaugeSources {
  hasher: Hasher;
  authenticator: Authenticator;
  bus: InvalidationBus;
  invalidator: Invalidator;
}

/** /metrics: the gauges are read from their parts at each scrape, then the registry is rendered. */
export function metricsEndpoint(metrics: Metrics, s: GaugeSources): MetricsEndpoint {
  return {
    contentType: metrics.contentType,
    render: () => {
      metrics.argonQueue.set(s.hasher.queued);
      metrics.argonRunning.set(s.hasher.running);
      metrics.argonVerifications.set(s.hasher.verifications);
      metrics.argonFaults.set(s.hasher.faults);
      metrics.checkRefusals.set(s.authenticator.refusedByCheck);
      metrics.subscribed.set(s.bus.subscribed ? 1 : 0);
      metrics.trusted.set(s.invalidator.healthy ? 1 : 0);
      return metrics.render();
    },
  };
}

/** Each gRPC Authenticate call counted by outcome, reason, environment and the tier that answered. */
export function grpcCallObserver(
  metrics: Metrics,
): (result: AuthResult | undefined, code: grpc.status, seconds: number) => void {
  return (result, code, seconds) => {
    if (!result) {
      metrics.answer(`error_${code}`, '', '', 'error', false, seconds);
      return;
    }
    const d = result.decision;
    // A tier answered only when it held the key's grant (not for remembered unknown ids).
    metrics.answer(
      d.allowed ? 'allowed' : 'denied',
      d.allowed ? '' : d.reason,
      d.identity?.environment ?? '',
      result.path,
      d.identity !== undefined,
      seconds,
    );
  };
}

/**
 * Gateway decisions are counted apart from Authenticate calls: they include the gateway's own refusals
 * (no key, no route).
 */
export function gatewayCounter(metrics: Metrics): (gateway: string) => (o: GatewayOutcome) => void {
  return (gateway) => (o) =>
    metrics.gatewayChecks.inc({
      gateway,
      outcome: o.allowed ? 'allowed' : 'denied',
      reason: o.allowed ? '' : o.reason,
    });
}
