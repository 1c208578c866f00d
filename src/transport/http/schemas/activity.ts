import { Type } from '@sinclair/typebox';
import { REFILL_INTERVALS } from '../../../domain/key.js';
import { StringEnum } from '../../../validation.js';
import { DateTime, Nullable } from './common.js';

const Count = Type.Integer({ minimum: 0 });
export const ActivityBody = Type.Object({
  key_id: Type.String(),
  from: DateTime,
  to: DateTime,
  last_used_at: Nullable(DateTime),
  last_used_ip: Nullable(Type.String()),
  remaining_uses: Type.Union([Count, Type.Null()], {
    description: 'the quota balance, as on the key resource; null = unlimited',
  }),
  refill: Type.Union(
    [
      Type.Object({ amount: Type.Integer(), interval: StringEnum(REFILL_INTERVALS), refilled_at: Nullable(DateTime) }),
      Type.Null(),
    ],
    { description: 'the quota refill, as on the key resource; null = none' },
  ),
  totals: Type.Object({
    allowed: Count,
    denied: Type.Record(Type.String(), Count, {
      description:
        'denials per reason (KEY_REVOKED, IP_NOT_ALLOWED, RATE_LIMITED, USAGE_EXCEEDED, KEY_DISABLED, …): every reason recorded, no fixed list',
    }),
  }),
  series: Type.Array(Type.Object({ start: DateTime, allowed: Count, denied: Count })),
  addresses: Type.Array(Type.Object({ ip: Type.String(), first_seen: DateTime, last_seen: DateTime, count: Count }), {
    description: 'addresses of allowed calls',
  }),
  denied_addresses: Type.Array(
    Type.Object({ ip: Type.String(), reason: Type.String(), last_seen: DateTime, count: Count }),
    {
      description:
        'a bounded sample (the newest 50) of the addresses denied calls came from; denials are counted per reason in totals',
    },
  ),
  rotation: Type.Object({
    due_at: DateTime,
    replaces: Nullable(Type.String()),
    replaced_by: Nullable(Type.String()),
    rotated_at: Nullable(DateTime),
    grace_ends_at: Nullable(DateTime),
    addresses_since_rotation: Type.Array(Type.String()),
  }),
  alerts: Type.Array(
    Type.Object({ type: Type.String(), message: Type.String(), at: DateTime, ip: Type.Optional(Type.String()) }),
  ),
  events: Type.Array(
    Type.Object({
      id: Type.String(),
      at: DateTime,
      actor: Type.String(),
      action: Type.String(),
      source_ip: Nullable(Type.String()),
      changes: Type.Record(Type.String(), Type.Unknown()),
    }),
  ),
});
