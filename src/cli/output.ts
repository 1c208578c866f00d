/** Human-readable output of the CLI (`--json` prints the API's JSON instead). */

/** A key resource of the admin API, as printed; `secret` and `previous` only in create and rotate answers. */
export type Key = Record<string, unknown> & {
  id?: string;
  secret?: string;
  revoked_at?: string;
  previous?: { id: string; expires_at: string };
};

/** A page of `GET …/keys`. */
export interface KeyPage {
  data: Key[];
  next_cursor?: string | null;
}

/** `GET …/activity`, the parts printed. */
export interface Activity {
  totals?: { allowed?: number; denied?: Record<string, number> };
  addresses?: { ip: string; count: number; last_seen: string }[];
  alerts?: { type?: string; message?: string }[];
  events?: unknown[];
}

const text = (v: unknown): string => {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v)) return v.join(',') || '-';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  // An object the API adds later reads as JSON, not as "[object Object]".
  return JSON.stringify(v) ?? '-';
};

/** One key as `field: value` lines. */
export function keyLines(key: Key): string {
  const fields = [
    'id',
    'account_id',
    'label',
    'environment',
    'status',
    'scopes',
    'allowed_ips',
    'redacted',
    'created_at',
    'created_by',
    'expires_at',
    'revoked_at',
    'rotation_due_at',
    'last_used_at',
    'last_used_ip',
    'replaces',
    'replaced_by',
    'enabled',
    'rate_limits',
    'remaining_uses',
    'refill',
    'metadata',
  ];
  return fields
    .filter((f) => f in key)
    .map((f) => `${`${f}:`.padEnd(17)}${fieldText(f, key[f])}`)
    .join('\n');
}

/** Limits as `name=limit/window_seconds s`, refill as `amount interval`, metadata as JSON. */
function fieldText(field: string, v: unknown): string {
  if (field === 'rate_limits' && Array.isArray(v))
    return text(
      v.map(
        (l: { name: string; limit: number; window_seconds: number }) => `${l.name}=${l.limit}/${l.window_seconds}s`,
      ),
    );
  if (field === 'refill' && v && typeof v === 'object')
    return `${(v as { amount: number }).amount} ${(v as { interval: string }).interval}`;
  if (field === 'metadata' && v !== null && v !== undefined) return JSON.stringify(v);
  return text(v);
}

/** Keys as an aligned table. */
export function keyTable(keys: Key[]): string {
  const columns = ['id', 'label', 'environment', 'status', 'scopes', 'last_used_at'];
  return aligned([columns.map((c) => c.toUpperCase()), ...keys.map((k) => columns.map((c) => text(k[c])))]);
}

/** A webhook endpoint of the admin API, as printed; `secret` only in the create answer. */
export type Endpoint = Record<string, unknown> & {
  id?: string;
  secret?: string;
  enabled?: boolean;
  disabled_reason?: string | null;
};

/** `enabled`, `disabled`, or `disabled (gone)` / `disabled (failing)` when the service turned it off. */
const endpointStatus = (e: Endpoint): string =>
  e.enabled ? 'enabled' : e.disabled_reason ? `disabled (${e.disabled_reason})` : 'disabled';

/** One endpoint as `field: value` lines (never a secret: the caller prints it apart, once). */
export function endpointLines(e: Endpoint): string {
  const fields = ['id', 'url', 'events', 'description', 'failing_since', 'previous_secret_until', 'created_at'];
  return [
    ...fields.filter((f) => f in e).map((f) => `${`${f}:`.padEnd(17)}${text(e[f])}`),
    `${'status:'.padEnd(17)}${endpointStatus(e)}`,
  ].join('\n');
}

/** Endpoints as an aligned table. */
export function endpointTable(endpoints: Endpoint[]): string {
  const columns = ['id', 'url', 'events', 'status', 'failing_since'];
  return aligned([
    columns.map((c) => c.toUpperCase()),
    ...endpoints.map((e) => columns.map((c) => (c === 'status' ? endpointStatus(e) : text(e[c])))),
  ]);
}

function aligned(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** The activity summary: totals, denials by reason, addresses, alerts. */
export function activityLines(a: Activity): string {
  const denied =
    Object.entries(a.totals?.denied ?? {})
      .map(([r, n]) => `${r}=${n}`)
      .join(' ') || 'none';
  const lines = [`allowed: ${a.totals?.allowed ?? 0}`, `denied:  ${denied}`, 'addresses:'];
  for (const ad of a.addresses ?? [])
    lines.push(`  ${ad.ip.padEnd(40)} ${String(ad.count).padStart(8)}  last ${ad.last_seen}`);
  lines.push(`alerts: ${(a.alerts ?? []).length === 0 ? 'none' : ''}`);
  for (const al of a.alerts ?? []) lines.push(`  ${al.type ?? ''} ${al.message ?? ''}`.trimEnd());
  lines.push(`admin events: ${(a.events ?? []).length}`);
  return lines.join('\n');
}
