/** The one scope catalog: nothing else is accepted anywhere. A scope grants exactly itself. */
export const SCOPES = Object.freeze([
  'bookings:read',
  'bookings:write',
  'customers:read',
  'customers:write',
  'invoices:read',
  'invoices:write',
  'services:read',
  'webhooks:manage',
] as const);

export type Scope = (typeof SCOPES)[number];

const catalog: ReadonlySet<string> = new Set(SCOPES);

/** True when `s` is a catalog scope. */
export function isScope(s: string): s is Scope {
  return catalog.has(s);
}
