// Offline checks of k8s/monitoring/: the alerting rules are well formed, promtool accepts them,
// the PrometheusRule says the same as the plain rules file, every alert has a runbook row, and the
// Grafana dashboard is a dashboard whose queries parse. (That every metric and label they name is
// exposed by a running replica: test/ops/monitoring-metrics.test.ts.)
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  dashboard,
  DASHBOARD,
  monitoringQueries,
  panels,
  PROMETHEUS_RULE,
  ruleGroups,
  RULES_FILE,
  type Rule,
} from '../helpers/deploy/monitoring.js';
import { schemaErrors } from '../helpers/deploy/k8s-schema.js';
import { parseYamlStrict, projectRoot, render } from '../helpers/deploy/render.js';
import { promqlRefs } from '../helpers/ops/promql.js';

type Json = Record<string, any>;
const SEVERITIES = ['critical', 'warning', 'info'];
const alerts = () => ruleGroups().flatMap((g) => g.rules);

/** What is wrong with one alerting rule (none: it is complete). */
function ruleProblems(r: Rule): string[] {
  const name = r.alert ?? '(no alert name)';
  const problems: string[] = [];
  if (!r.alert || !/^OtesseKeys[A-Z][A-Za-z0-9]+$/.test(r.alert))
    problems.push(`${name}: alert must be named OtesseKeys<Something>`);
  try {
    if (promqlRefs(r.expr).metrics.size === 0) problems.push(`${name}: expr selects no metric`);
  } catch (err) {
    problems.push(`${name}: ${(err as Error).message}`);
  }
  if (!/^\d+[smh]$/.test(String(r.for ?? ''))) problems.push(`${name}: for must be a duration`);
  if (!SEVERITIES.includes(r.labels?.['severity'] ?? ''))
    problems.push(`${name}: labels.severity must be one of ${SEVERITIES.join(', ')}`);
  if (!r.annotations?.['summary']) problems.push(`${name}: annotations.summary is missing`);
  if (!r.annotations?.['runbook']?.includes('docs/deploying.md') || !r.annotations['runbook'].includes(name)) {
    problems.push(`${name}: annotations.runbook must point at its row in docs/deploying.md`);
  }
  return problems;
}

t.test('every alerting rule is complete: alert, parsed expr, for, severity, summary, runbook', async (t) => {
  const rules = alerts();
  t.ok(rules.length >= 15, `${rules.length} alerts`);
  t.same(rules.flatMap(ruleProblems), [], 'no rule lacks anything');
  const names = rules.map((r) => r.alert);
  t.same(
    names.filter((n, i) => names.indexOf(n) !== i),
    [],
    'alert names are unique',
  );

  const broken: Rule[] = [
    {
      alert: 'OtesseKeysBroken',
      expr: 'sum(rate(otesse_keys_authenticate_total[5m]',
      for: '5m',
      labels: { severity: 'warning' },
      annotations: { summary: 's', runbook: 'docs/deploying.md OtesseKeysBroken' },
    },
    { alert: 'OtesseKeysNoRunbook', expr: 'up == 0', for: 'soon', labels: { severity: 'page' }, annotations: {} },
  ];
  t.match(
    broken.flatMap(ruleProblems).join('\n'),
    /OtesseKeysBroken: PromQL does not parse[\s\S]*for must be[\s\S]*severity[\s\S]*summary[\s\S]*runbook/,
    'the check rejects an unparsable expr, a bad duration and missing severity, summary and runbook',
  );
});

/** The alert names of the runbook table in docs/deploying.md. */
function runbookRows(): string[] {
  const doc = readFileSync(join(projectRoot, 'docs', 'deploying.md'), 'utf8');
  const section = doc.split(/^### Alerts and runbook$/m)[1]?.split(/^#{2,3} /m)[0] ?? '';
  return [...section.matchAll(/^\| `(\w+)` \| (?:critical|warning|info) \| [^|]+\| [^|]+\|$/gm)].map(
    (m) => m[1] as string,
  );
}

t.test(
  'docs/deploying.md has one runbook row per alert, with its severity, and no row for an alert that does not exist',
  async (t) => {
    const rows = runbookRows();
    t.ok(rows.length > 0, `${rows.length} runbook rows`);
    t.same(
      [...rows].sort(),
      alerts()
        .map((r) => r.alert)
        .sort(),
    );
    const doc = readFileSync(join(projectRoot, 'docs', 'deploying.md'), 'utf8');
    for (const r of alerts())
      t.match(
        doc,
        new RegExp(`\\| \`${r.alert}\` \\| ${r.labels?.['severity']} \\|`),
        `${r.alert}: severity as in the rule`,
      );
  },
);

t.test(
  "the PrometheusRule holds exactly the rules file's groups, and the kustomization renders it with the dashboard",
  async (t) => {
    const [rule] = parseYamlStrict(readFileSync(PROMETHEUS_RULE, 'utf8'), PROMETHEUS_RULE) as Json[];
    t.equal(rule?.['apiVersion'], 'monitoring.coreos.com/v1');
    t.equal(rule?.['kind'], 'PrometheusRule');
    t.same(rule?.['spec']?.['groups'], ruleGroups(), 'spec.groups equals the groups of otesse-keys.rules.yaml');

    const objects = render('monitoring');
    t.same(
      objects.map((o) => o.kind).sort(),
      ['ConfigMap', 'PrometheusRule'],
      'k8s/monitoring renders the rule and the dashboard ConfigMap',
    );
    const rendered = objects.find((o) => o.kind === 'PrometheusRule') as Json;
    t.same(rendered['spec'].groups, ruleGroups(), 'rendered unchanged');
    const cm = objects.find((o) => o.kind === 'ConfigMap') as Json;
    t.equal(cm['metadata'].labels?.grafana_dashboard, '1', "labelled for Grafana's dashboard sidecar");
    t.same(
      JSON.parse(cm['data']['otesse-keys-dashboard.json']),
      dashboard(),
      'the ConfigMap carries the dashboard file',
    );
    t.same(schemaErrors([cm as never]), [], 'the ConfigMap passes the Kubernetes schema checks');
  },
);

const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
const noPromtool =
  promtool.error !== undefined || promtool.status !== 0
    ? 'promtool is not installed (apt-get install --no-install-recommends prometheus); the rules are still checked by the parser and the schema above'
    : false;

t.test('promtool check rules accepts the rules file, and rejects a broken one', { skip: noPromtool }, async (t) => {
  const ok = spawnSync('promtool', ['check', 'rules', RULES_FILE], { encoding: 'utf8' });
  t.equal(ok.status, 0, `promtool check rules\n${ok.stdout}${ok.stderr}`);
  t.match(ok.stdout, new RegExp(`SUCCESS: ${alerts().length} rules found`));
  const dir = mkdtempSync(join(tmpdir(), 'otesse-rules-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const broken = join(dir, 'broken.rules.yaml');
  const groups = structuredClone(ruleGroups());
  (groups[0] as { rules: Rule[] }).rules[0]!.expr = 'sum by (outcome (rate(otesse_keys_authenticate_total[5m]))';
  writeFileSync(broken, stringify({ groups }));
  t.not(
    spawnSync('promtool', ['check', 'rules', broken], { encoding: 'utf8' }).status,
    0,
    'promtool rejects a rule that does not parse',
  );
});

t.test(
  'the dashboard: schema 39, a Prometheus data-source variable, every panel on it with queries that parse',
  async (t) => {
    const d = dashboard();
    t.ok(Number(d['schemaVersion']) >= 39, `schemaVersion ${d['schemaVersion']}`);
    t.equal(d['uid'], 'otesse-keys');
    const vars = d['templating']['list'] as Json[];
    t.match(
      vars.find((v) => v['name'] === 'datasource'),
      { type: 'datasource', query: 'prometheus' },
      'a Prometheus data-source variable',
    );
    const all = panels(d);
    const ids = all.map((p) => p['id']);
    t.same(
      ids.filter((id, i) => ids.indexOf(id) !== i),
      [],
      'panel ids are unique',
    );
    const graphs = all.filter((p) => p['type'] !== 'row');
    t.ok(graphs.length >= 20, `${graphs.length} panels`);
    for (const p of graphs) {
      const targets = (p['targets'] ?? []) as Json[];
      const where = `panel "${p['title']}"`;
      t.equal(p['datasource']?.uid, '${datasource}', `${where}: uses the data-source variable`);
      t.ok(
        targets.length > 0 && targets.every((q) => q['datasource']?.uid === '${datasource}'),
        `${where}: has queries on it`,
      );
      const { x, w } = p['gridPos'] as { x: number; w: number };
      t.ok(x >= 0 && x + w <= 24, `${where}: fits the 24-column grid`);
    }
    t.doesNotThrow(() => monitoringQueries(), 'every panel query and variable query parses');
    t.match(readFileSync(DASHBOARD, 'utf8'), /"expr"/);
  },
);

t.test('every metric an alert watches has a panel', async (t) => {
  const queries = monitoringQueries();
  const inPanels = new Set(queries.filter((q) => q.where.startsWith('panel')).flatMap((q) => [...q.refs.metrics]));
  const inRules = new Set(queries.filter((q) => q.where.startsWith('rule')).flatMap((q) => [...q.refs.metrics]));
  t.ok(inRules.size > 0, `${inRules.size} metrics in the rules`);
  t.same(
    [...inRules].filter((m) => !inPanels.has(m)),
    [],
    'no alert watches a metric the dashboard does not show',
  );
});
