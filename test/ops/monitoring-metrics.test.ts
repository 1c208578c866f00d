// The alerts and the dashboard of k8s/monitoring/ against a running replica: after the traffic
// they watch (allowed and denied Authenticate calls, admin calls, a refused admin token, a revoke,
// a usage flush, leak reports), its /metrics exposes every metric and label they name. A rule or
// panel that names a misspelt metric, a label the metric does not have, or a metric the service
// dropped fails here.
import t, { type Test } from 'tap';
import { node } from '../helpers/cluster.js';
import { testEnv } from '../helpers/app.js';
import { monitoringQueries } from '../helpers/deploy/monitoring.js';
import { entry, githubKeyServer, postReport, signedReport, signingKey } from '../helpers/github.js';
import { parseExposition, promqlRefs, unexposed, type Exposition } from '../helpers/ops/promql.js';
import { SERVICE_STARTED } from '../helpers/harness/process.js';
import { startReplica, waitFor } from '../helpers/replica.js';

/** What the alerts must watch, one metric at least per subject (so the check cannot pass on an empty rule set). */
const WATCHED = [
  'otesse_keys_authenticate_total',
  'otesse_keys_authenticate_seconds_bucket',
  'otesse_keys_cache_trusted',
  'otesse_keys_invalidation_subscribed',
  'otesse_keys_invalidation_lag_seconds_bucket',
  'otesse_keys_propagation_total',
  'otesse_keys_argon2_queue_depth',
  'otesse_keys_usage_flushes_total',
  'otesse_keys_usage_dropped_total',
  'otesse_keys_leak_reports_total',
  'otesse_keys_leak_report_tokens_total',
  'otesse_keys_http_request_seconds_count',
  'nodejs_eventloop_lag_p99_seconds',
];

/** A replica as production runs it (metrics and leak reports on ports of their own), with traffic of every kind the rules watch. */
async function replicaAfterTraffic(t: Test): Promise<Exposition> {
  const github = signingKey();
  const keys = await githubKeyServer(t, [github]);
  const env = await testEnv(t, {
    LOG_LEVEL: 'info',
    METRICS_PORT: '0',
    LEAK_REPORT_PORT: '0',
    GITHUB_SECRET_SCANNING_KEYS_URL: keys.url,
    ACTIVITY_FLUSH_MS: '200',
  });
  const r = node(t, await startReplica(t, env));
  const started = JSON.parse(r.logs.find((l) => l.includes(SERVICE_STARTED)) ?? '{}') as {
    metricsPort?: number;
    leakPort?: number;
  };
  t.ok(started.metricsPort && started.leakPort, 'metrics and leak-report ports bound');

  const create = () =>
    r.api('POST', '/v1/accounts/acct_1/keys', { label: 'monitoring', scopes: ['bookings:read'], environment: 'live' });
  const [kept, revoked, leaked] = [await create(), await create(), await create()];
  t.equal(kept.status, 201, 'keys created');
  t.equal((await r.authenticate({ key: kept.body.secret })).allowed, true, 'an allowed call');
  t.equal(
    (await r.authenticate({ key: kept.body.secret, scope: 'bookings:write' })).reason,
    'SCOPE_NOT_GRANTED',
    'a denied call',
  );
  t.equal((await r.authenticate({ key: 'otesse_live_sk_not-a-key' })).reason, 'KEY_MALFORMED', 'a malformed key');
  t.equal((await r.api('POST', `/v1/accounts/acct_1/keys/${revoked.body.id}/revoke`, {})).status, 200, 'a revoke');
  const refused = await fetch(`http://127.0.0.1:${r.httpPort}/v1/accounts/acct_1/keys`, {
    headers: { authorization: 'Bearer not-a-token-of-ours-0000' },
  });
  t.equal(refused.status, 401, 'a refused admin token');
  t.equal((await postReport(started.leakPort!, '[]', {})).status, 400, 'an unsigned leak report');
  const report = await signedReport(started.leakPort!, JSON.stringify([entry(leaked.body.secret)]), github);
  t.equal(report.status, 200, 'a signed leak report of a real key');

  const scrape = async () =>
    parseExposition(await (await fetch(`http://127.0.0.1:${started.metricsPort}/metrics`)).text());
  t.ok(
    await waitFor(async () => (await scrape()).labels.has('otesse_keys_usage_flushes_total')),
    'a usage flush happened',
  );
  return scrape();
}

t.test('every metric and label the alerts, panels and variables name is exposed by a running replica', async (t) => {
  const exposed = await replicaAfterTraffic(t);
  const queries = monitoringQueries();
  const referenced = new Set(queries.flatMap((q) => [...q.refs.metrics]));
  t.ok(queries.length >= 40 && referenced.size >= 15, `${queries.length} queries name ${referenced.size} metrics`);
  t.same(
    WATCHED.filter((m) => !referenced.has(m)),
    [],
    'the rules and panels watch every subject',
  );
  t.ok(
    queries.some((q) => q.refs.labels.length > 0),
    'and name labels',
  );
  t.same(
    queries.flatMap((q) => unexposed(q.where, q.refs, exposed)),
    [],
    'nothing named is missing from /metrics',
  );

  const wrong = (expr: string) => unexposed('probe', promqlRefs(expr), exposed);
  t.match(
    wrong('rate(otesse_keys_authenticate_totals[5m])'),
    [/metric otesse_keys_authenticate_totals is not exposed/],
    'a misspelt metric fails',
  );
  t.match(
    wrong('otesse_keys_propagation_total{result="pending"}'),
    [/label result .* not a label of otesse_keys_propagation_total/],
    'a label the metric lacks fails',
  );
  t.match(
    wrong('sum by (tier) (rate(otesse_keys_authenticate_total[5m]))'),
    [/label tier \(by/],
    'grouping by a label of another metric fails',
  );
  t.match(
    wrong('histogram_quantile(0.99, sum by (le) (rate(otesse_keys_authenticate_seconds[5m])))'),
    [/not exposed/],
    'a histogram without _bucket fails',
  );
  t.same(
    wrong('sum by (instance, path, le) (rate(otesse_keys_authenticate_seconds_bucket{job="x"}[5m]))'),
    [],
    'job and instance come from the scrape',
  );
});
