/**
 * The event types an endpoint may ask for, in the words of docs/webhooks.md (the service's list is
 * WEBHOOK_EVENT_TYPES in src/domain/webhook.ts; the browser test checks the form offers exactly those).
 */
export const WEBHOOK_EVENTS: readonly (readonly [type: string, when: string])[] = [
  ['key.created', 'A key was created (also the new key of a rotation)'],
  ['key.rotated', 'A key was rotated'],
  ['key.updated', 'A key was changed (including enabled)'],
  ['key.revoked', 'A key was revoked'],
  ['key.leaked', 'A leak report named a key'],
  ['key.rotation_due', 'A key is due for rotation'],
  ['key.expiring', 'A key expires within 7 days'],
  ['key.expired', 'A key expired'],
  ['key.new_address', 'A key was used from a new address'],
  ['key.quota_low', "A key's uses fell under 10 %"],
  ['key.quota_exhausted', "A key's uses ran out"],
];
