import { Type } from '@sinclair/typebox';
import { DateTime, Nullable } from './common.js';

export const AuditEntry = Type.Object({
  id: Type.String(),
  at: DateTime,
  actor: Type.String(),
  action: Type.String(),
  key_id: Nullable(Type.String()),
  source_ip: Nullable(Type.String()),
  changes: Type.Record(Type.String(), Type.Unknown()),
  count: Type.Integer({
    minimum: 1,
    description:
      'events this entry stands for: 1, or the refused attempts (admin.unauthenticated, ' +
      'admin.forbidden) of one actor from one address folded into one entry per 10 minutes; `changes` describes the first',
  }),
  last_at: Type.String({
    format: 'date-time',
    description: 'the last of those events (equal to `at` for an ordinary entry)',
  }),
});
export const AuditPage = Type.Object({ data: Type.Array(AuditEntry), next_cursor: Nullable(Type.String()) });
