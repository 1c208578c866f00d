/**
 * Summarise a V8 .cpuprofile (from `node --cpu-prof`): self time by function (name + url + line),
 * by module (package or service file), and inclusive time of the service's own functions.
 * Optionally only the samples in a window (ms from the start of the profile).
 *
 *   node dist/bench/profile.js <file.cpuprofile> [fromMs toMs]
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface Row {
  name: string;
  ms: number;
  pct: number;
}
export interface ProfileSummary {
  file: string;
  /** Time covered by the samples counted (ms). */
  sampledMs: number;
  window: { fromMs: number; toMs: number } | null;
  /** (idle), (program), (garbage collector), and everything else (JavaScript and native code called from it). */
  categories: Row[];
  /** Self time by function; pct of busy (non-idle) time. */
  topSelf: Row[];
  /** Self time by module: a package under node_modules, a node: builtin area, or a service file. */
  byModule: Row[];
  /** Inclusive time of the service's own functions (dist/src/...); pct of busy time. */
  topInclusiveService: Row[];
}

const SPECIAL = new Set(['(idle)', '(program)', '(garbage collector)', '(root)']);

/** A short, stable place for a url: package/path inside node_modules, src/... for the service, node:... builtins. */
export function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const src = url.indexOf('/dist/');
  if (src >= 0) return url.slice(src + '/dist/'.length);
  return url.replace(/^file:\/\//, '');
}

/** The module a url belongs to: @scope/name or name for packages, node:internal/<area> for builtins, the file for the service. */
export function moduleOf(url: string): string {
  if (!url) return '(native/vm)';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const parts = url.slice(nm + 'node_modules/'.length).split('/');
    return parts[0]?.startsWith('@') ? `${parts[0]}/${parts[1] ?? ''}` : (parts[0] ?? url);
  }
  if (url.startsWith('node:')) {
    const parts = url.split('/');
    return parts.slice(0, parts[0] === 'node:internal' ? 2 : 1).join('/');
  }
  return shortUrl(url);
}

function label(f: CallFrame): string {
  const name = f.functionName || '(anonymous)';
  if (SPECIAL.has(name) || !f.url) return name;
  return `${name} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
}

function rows(map: Map<string, number>, busyUs: number, limit: number): Row[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, limit)
    .map(([name, us]) => ({
      name,
      ms: Math.round(us / 100) / 10,
      pct: busyUs > 0 ? Math.round((us / busyUs) * 1000) / 10 : 0,
    }));
}

export function summarizeProfile(file: string, window?: { fromMs: number; toMs: number }, limit = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const self = new Map<string, number>();
  const modules = new Map<string, number>();
  const categories = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  let busy = 0;
  const n = profile.samples.length;
  const meanDelta = n > 0 ? (profile.endTime - profile.startTime) / n : 0;
  for (let i = 0; i < n; i++) {
    t += profile.timeDeltas[i] ?? 0;
    const at = (t - profile.startTime) / 1000;
    if (window && (at < window.fromMs || at > window.toMs)) continue;
    // A sample stands for the time until the next one.
    const dt = Math.max(0, i + 1 < n ? (profile.timeDeltas[i + 1] ?? meanDelta) : meanDelta);
    const node = byId.get(profile.samples[i] ?? -1);
    if (!node) continue;
    total += dt;
    const f = node.callFrame;
    const name = f.functionName;
    const category = SPECIAL.has(name) ? name : 'JavaScript and native';
    categories.set(category, (categories.get(category) ?? 0) + dt);
    if (name === '(idle)') continue;
    busy += dt;
    const l = label(f);
    self.set(l, (self.get(l) ?? 0) + dt);
    const m = SPECIAL.has(name) ? name : moduleOf(f.url);
    modules.set(m, (modules.get(m) ?? 0) + dt);
    // Inclusive: every distinct service function on the stack.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const cf = byId.get(id)?.callFrame;
      if (cf && cf.url.includes('/dist/src/')) {
        const key = label(cf);
        if (!seen.has(key)) {
          seen.add(key);
          inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
        }
      }
    }
  }
  const cats = rows(categories, total, 10);
  return {
    file,
    sampledMs: Math.round(total / 1000),
    window: window ?? null,
    categories: cats,
    topSelf: rows(self, busy, limit),
    byModule: rows(modules, busy, 60),
    topInclusiveService: rows(inclusive, busy, 15),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const table = (title: string, list: Row[], of: string) =>
    [
      `${title}`,
      `| ms | % of ${of} | function |`,
      '| ---: | ---: | --- |',
      ...list.map((r) => `| ${r.ms.toFixed(1)} | ${r.pct.toFixed(1)} | \`${r.name.replace(/\|/g, '\\|')}\` |`),
      '',
    ].join('\n');
  return [
    `Profile ${s.file}: ${s.sampledMs} ms sampled${s.window ? ` (window ${Math.round(s.window.fromMs)}-${Math.round(s.window.toMs)} ms)` : ''}`,
    '',
    table('Where the time went:', s.categories, 'sampled'),
    table('Top self time by function (busy = not idle):', s.topSelf, 'busy'),
    table('Self time by module (top 15):', s.byModule.slice(0, 15), 'busy'),
    table("Inclusive time of the service's own functions:", s.topInclusiveService, 'busy'),
  ].join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, from, to] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile.js <file.cpuprofile> [fromMs toMs]\n');
    process.exit(2);
  }
  const window = from !== undefined && to !== undefined ? { fromMs: Number(from), toMs: Number(to) } : undefined;
  process.stdout.write(`${formatProfile(summarizeProfile(file, window))}\n`);
}
