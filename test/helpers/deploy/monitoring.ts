// The dashboard and alerting rules of k8s/monitoring/, read for the tests: every PromQL query they
// hold, with where it came from.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promqlRefs, withoutGrafanaVariables, type PromqlRefs } from '../ops/promql.js';
import { parseYamlStrict, projectRoot } from './render.js';

export const MONITORING = join(projectRoot, 'k8s', 'monitoring');
export const RULES_FILE = join(MONITORING, 'otesse-keys.rules.yaml');
export const PROMETHEUS_RULE = join(MONITORING, 'prometheusrule.yaml');
export const DASHBOARD = join(MONITORING, 'otesse-keys-dashboard.json');

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
export interface RuleGroup {
  name: string;
  rules: Rule[];
}

type Json = Record<string, any>;

export function ruleGroups(file = RULES_FILE): RuleGroup[] {
  const [doc] = parseYamlStrict(readFileSync(file, 'utf8'), file) as Json[];
  return (doc?.['groups'] ?? []) as RuleGroup[];
}

export function dashboard(): Json {
  return JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Json;
}

/** The panels of a dashboard, rows' nested panels included. */
export function panels(d: Json): Json[] {
  return (d['panels'] as Json[]).flatMap((p) => [p, ...((p['panels'] as Json[] | undefined) ?? [])]);
}

export interface Query {
  where: string;
  refs: PromqlRefs;
}

/** Every query of the rules and the dashboard (panel targets and `label_values(...)` variables), parsed. */
export function monitoringQueries(groups = ruleGroups(), d = dashboard()): Query[] {
  const out: Query[] = [];
  for (const g of groups)
    for (const r of g.rules) out.push({ where: `rule ${r.alert ?? r.record}`, refs: promqlRefs(r.expr) });
  for (const p of panels(d)) {
    for (const target of (p['targets'] as Json[] | undefined) ?? []) {
      out.push({
        where: `panel "${p['title']}" ${target['refId']}`,
        refs: promqlRefs(withoutGrafanaVariables(String(target['expr']))),
      });
    }
  }
  for (const v of (d['templating']?.['list'] as Json[] | undefined) ?? []) {
    if (v['type'] !== 'query') continue;
    out.push({ where: `variable ${v['name']}`, refs: labelValues(String(v['query']?.['query'] ?? v['query'])) });
  }
  return out;
}

/** Grafana's `label_values(selector, label)`: the selector's references, and the label on its metric. */
function labelValues(query: string): PromqlRefs {
  const m = /^label_values\((.+),\s*([A-Za-z_]\w*)\s*\)$/.exec(query.trim());
  if (!m) throw new Error(`not a label_values() query: ${query}`);
  const refs = promqlRefs(withoutGrafanaVariables(m[1] as string));
  refs.labels.push({
    label: m[2] as string,
    metrics: [...refs.metrics],
    every: true,
    clause: `label_values(…, ${m[2]})`,
  });
  return refs;
}
