// What a PromQL expression (an alert, a dashboard panel) asks of the service's /metrics: the metric
// names it selects and the label names it matches or groups by, checked against what a replica
// exposes. Parsed with @prometheus-io/lezer-promql, Prometheus's own grammar for its editor.
import { parser } from '@prometheus-io/lezer-promql';
import type { SyntaxNode } from '@lezer/common';

/** One label name an expression uses, and the metrics it must belong to. */
export interface LabelUse {
  label: string;
  /** The metrics under the clause that names it. */
  metrics: string[];
  /** true: every one of them must have it (a selector, `by`, `on`); false: at least one (`without`, `ignoring`, `group_left`). */
  every: boolean;
  clause: string;
}

export interface PromqlRefs {
  metrics: Set<string>;
  labels: LabelUse[];
}

/**
 * Labels Prometheus adds to every scraped series (the target's job and instance): the service
 * cannot expose them, yet rules and panels may use them to tell replicas apart.
 */
export const TARGET_LABELS: ReadonlySet<string> = new Set(['job', 'instance']);

/** Grafana's variables replaced by values that parse (`$__rate_interval` is a duration, the others sit in strings). */
export function withoutGrafanaVariables(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)\}?/g, '5m').replace(/\$\{?[A-Za-z_]\w*(?::\w+)?\}?/g, 'v');
}

/** The metric names and label uses of one expression; throws when it does not parse. */
export function promqlRefs(expr: string): PromqlRefs {
  const tree = parser.parse(expr);
  const errors: number[] = [];
  tree.iterate({
    enter: (n) => {
      if (n.type.isError) errors.push(n.from);
    },
  });
  if (errors.length > 0) throw new Error(`PromQL does not parse at ${errors[0]}: ${expr}`);
  const refs: PromqlRefs = { metrics: new Set(), labels: [] };
  visit(tree.topNode, expr, refs);
  return refs;
}

const text = (node: SyntaxNode, source: string) => source.slice(node.from, node.to);
const unquote = (s: string) => JSON.parse(s.startsWith("'") ? `"${s.slice(1, -1).replace(/"/g, '\\"')}"` : s) as string;

/** Collect the references under `node`; returns the metric names selected beneath it. */
function visit(node: SyntaxNode, source: string, refs: PromqlRefs): string[] {
  if (node.name === 'VectorSelector') return selector(node, source, refs);
  const metrics: string[] = [];
  for (let child = node.firstChild; child; child = child.nextSibling) metrics.push(...visit(child, source, refs));
  if (node.name === 'AggregateExpr') grouping(node.getChild('AggregateModifier'), source, metrics, refs);
  if (node.name === 'BinaryExpr') grouping(node.getChild('MatchingModifierClause'), source, metrics, refs);
  return metrics;
}

function selector(node: SyntaxNode, source: string, refs: PromqlRefs): string[] {
  const matchers = node.getChild('LabelMatchers');
  const pairs: Array<[string, SyntaxNode]> = [];
  for (let m = matchers?.firstChild ?? null; m; m = m.nextSibling) {
    const name = m.getChild('LabelName') ?? m.getChild('QuotedLabelName');
    if (name) pairs.push([text(name, source).replace(/^"(.*)"$/, '$1'), m]);
  }
  const id = node.getChild('Identifier');
  const byName = pairs.find(([label]) => label === '__name__')?.[1].getChild('StringLiteral');
  const metric = id ? text(id, source) : byName ? unquote(text(byName, source)) : undefined;
  if (!metric) throw new Error(`a selector without a metric name: ${text(node, source)}`);
  refs.metrics.add(metric);
  for (const [label] of pairs) {
    if (label !== '__name__')
      refs.labels.push({ label, metrics: [metric], every: true, clause: `selector ${text(node, source)}` });
  }
  return [metric];
}

/** `by`/`without` of an aggregation, `on`/`ignoring`/`group_left`/`group_right` of a binary operation. */
function grouping(clause: SyntaxNode | null, source: string, metrics: string[], refs: PromqlRefs): void {
  let keyword = '';
  for (let c = clause?.firstChild ?? null; c; c = c.nextSibling) {
    if (c.name !== 'GroupingLabels') {
      keyword = c.name;
      continue;
    }
    const every = keyword === 'By' || keyword === 'On';
    for (const l of c.getChildren('LabelName')) {
      refs.labels.push({
        label: text(l, source),
        metrics: [...new Set(metrics)],
        every,
        clause: `${keyword.toLowerCase()} (${text(c, source)})`,
      });
    }
  }
}

/** What a /metrics exposition offers: series names (a histogram's `_bucket`, `_sum`, `_count` too) and the label names seen on each. */
export interface Exposition {
  names: Set<string>;
  labels: Map<string, Set<string>>;
}

/** Names from the `# TYPE` lines (present even before a labelled metric is first used), label names from the samples. */
export function parseExposition(body: string): Exposition {
  const out: Exposition = { names: new Set(), labels: new Map() };
  for (const line of body.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) {
      const [, name, kind] = type as unknown as [string, string, string];
      const suffixes =
        kind === 'histogram' ? ['_bucket', '_sum', '_count'] : kind === 'summary' ? ['', '_sum', '_count'] : [''];
      for (const s of suffixes) out.names.add(`${name}${s}`);
      continue;
    }
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s/.exec(line);
    if (!sample || line.startsWith('#')) continue;
    const [, name, labels] = sample as unknown as [string, string, string | undefined];
    out.names.add(name);
    const seen = out.labels.get(name) ?? new Set<string>();
    for (const l of (labels ?? '').matchAll(/([a-zA-Z_]\w*)="(?:[^"\\]|\\.)*"/g)) seen.add(l[1] as string);
    out.labels.set(name, seen);
  }
  return out;
}

/** Every metric or label that `refs` name and the exposition does not offer, as readable lines (none: all is exposed). */
export function unexposed(where: string, refs: PromqlRefs, exposed: Exposition): string[] {
  const problems: string[] = [];
  for (const m of refs.metrics) if (!exposed.names.has(m)) problems.push(`${where}: metric ${m} is not exposed`);
  for (const use of refs.labels) {
    if (TARGET_LABELS.has(use.label)) continue;
    const has = (m: string) => exposed.labels.get(m)?.has(use.label) ?? false;
    const ok = use.metrics.length > 0 && (use.every ? use.metrics.every(has) : use.metrics.some(has));
    if (!ok) {
      const lacking = use.metrics.filter((m) => !has(m));
      problems.push(
        `${where}: label ${use.label} (${use.clause}) is not a label of ${lacking.join(', ') || 'any metric'}`,
      );
    }
  }
  return problems;
}
