/** The customer documentation's words for each scope; the scope list itself comes from GET /v1/scopes. */
export const SCOPE_DESCRIPTIONS: Readonly<Record<string, string>> = {
  'bookings:read': 'Read bookings',
  'bookings:write': 'Create and update bookings',
  'customers:read': 'Read customers',
  'customers:write': 'Create and update customers',
  'invoices:read': 'Read invoices',
  'invoices:write': 'Create and update invoices',
  'services:read': 'Read services',
  'webhooks:manage': 'Manage webhooks',
};
