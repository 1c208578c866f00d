import { Type, type Static } from '@sinclair/typebox';
import { LIMITS } from '../../../domain/key-limits.js';
import { KEY_BOUNDS } from '../../../domain/key-bounds.js';
import { KEY_STATUSES, REFILL_INTERVALS } from '../../../domain/key.js';
import { TEXT_LIMITS } from '../../../domain/text.js';
import { StringEnum } from '../../../validation.js';
import { Cursor, DateTime, Environment, Limit, Nullable, NullableOf, Readable } from './common.js';
import { RateLimit, RateLimits, Refill, RemainingUses } from './limits.js';

const Label = Readable(TEXT_LIMITS.label, "the key's name");
const Scopes = Type.Array(Type.String({ maxLength: 64 }), {
  minItems: 1,
  maxItems: 32,
  uniqueItems: true,
  description: 'catalog scopes (GET /v1/scopes), each once',
});
const AllowedIps = Type.Array(Type.String({ maxLength: 64 }), {
  maxItems: KEY_BOUNDS.allowedIps,
  uniqueItems: true,
  description: 'IPv4/IPv6 addresses and CIDRs (no zone ids, no host bits beyond the prefix), each once; empty = any',
});
const Enabled = Type.Boolean({
  description: 'false: Authenticate answers KEY_DISABLED on every replica until enabled again; revoking stays final',
});
/** Any JSON object: its bounds (size, depth, key length) are checked by the use case, whose errors never echo the content. */
const Metadata = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  description:
    `a JSON object returned by Authenticate (as a JSON string), never used for the decision: at most ${LIMITS.metadataBytes} bytes as ` +
    `compact UTF-8 JSON, at most ${LIMITS.metadataDepth} levels of nested objects and arrays (the object itself is 1), keys of at most ` +
    `${LIMITS.metadataKey} characters, no NUL or lone surrogate; key order is not kept`,
});

const Reason = Readable(TEXT_LIMITS.reason, 'why (kept with the key and in the audit log)');

export const CreateBody = Type.Object(
  {
    label: Label,
    scopes: Scopes,
    environment: Environment,
    allowed_ips: Type.Optional(AllowedIps),
    expires_at: Type.Optional(DateTime),
    enabled: Type.Optional(
      Type.Boolean({ description: 'default true; false: issued disabled (KEY_DISABLED until enabled)' }),
    ),
    rate_limits: Type.Optional(RateLimits),
    remaining_uses: Type.Optional(RemainingUses),
    refill: Type.Optional(Refill),
    metadata: Type.Optional(Metadata),
  },
  { additionalProperties: false },
);
export type CreateBody = Static<typeof CreateBody>;

export const PatchBody = Type.Object(
  {
    label: Type.Optional(Label),
    scopes: Type.Optional(Scopes),
    allowed_ips: Type.Optional(AllowedIps),
    expires_at: Type.Optional(Nullable(DateTime)),
    enabled: Type.Optional(Enabled),
    rate_limits: Type.Optional(
      Type.Array(RateLimit, {
        maxItems: LIMITS.rateLimits,
        description: `${RateLimits.description}; replaces the whole list ([] removes every limit)`,
      }),
    ),
    remaining_uses: Type.Optional(
      NullableOf(
        RemainingUses,
        'sets the balance (the current refill period counts as refilled); null removes the quota and its refill',
      ),
    ),
    refill: Type.Optional(NullableOf(Refill, 'sets the refill (the key must have a quota); null removes it')),
    metadata: Type.Optional(NullableOf(Metadata, 'replaces the metadata as a whole; null clears it')),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchBody = Static<typeof PatchBody>;

export const RevokeBody = Type.Object({ reason: Type.Optional(Reason) }, { additionalProperties: false });
export const RevokeAllBody = Type.Object(
  {
    environment: Type.Optional(Environment),
    reason: Type.Optional(Reason),
  },
  { additionalProperties: false },
);
export const RotateBody = Type.Object(
  {
    expire_previous_in: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: KEY_BOUNDS.graceMaxSeconds,
        description: `seconds the old key keeps working (default ${KEY_BOUNDS.graceDefaultSeconds})`,
      }),
    ),
  },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  {
    limit: Limit,
    cursor: Type.Optional(Cursor),
    environment: Type.Optional(Environment),
    status: Type.Optional(StringEnum(KEY_STATUSES)),
    rotation: Type.Optional(
      StringEnum(['due', 'overdue'] as const, {
        description: 'due: rotation date within 14 days or past; overdue: past',
      }),
    ),
    in_grace: Type.Optional(Type.Boolean({ description: 'only rotated keys still working in their grace period' })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const KeyResource = Type.Object({
  id: Type.String(),
  account_id: Type.String(),
  label: Type.String(),
  environment: Environment,
  scopes: Type.Array(Type.String()),
  allowed_ips: Type.Array(Type.String()),
  status: StringEnum(KEY_STATUSES),
  redacted: Type.String(),
  created_at: DateTime,
  created_by: Type.String(),
  expires_at: Nullable(DateTime),
  revoked_at: Nullable(DateTime),
  rotation_due_at: DateTime,
  last_used_at: Nullable(DateTime),
  last_used_ip: Nullable(Type.String()),
  replaces: Nullable(Type.String()),
  replaced_by: Nullable(Type.String()),
  enabled: Enabled,
  rate_limits: Type.Array(RateLimit, { description: 'the named limits; empty = none' }),
  remaining_uses: Type.Union([Type.Integer({ minimum: 0 }), Type.Null()], {
    description:
      'the quota balance as stored; null = unlimited. Replicas lease shares of it to answer without a database round trip: ' +
      'a share they hold and have not spent counts as used here until they return it (within seconds, or when the replica stops)',
  }),
  refill: Type.Union(
    [
      Type.Object(
        {
          amount: Type.Integer(),
          interval: StringEnum(REFILL_INTERVALS),
          refilled_at: Nullable(DateTime),
        },
        { description: 'refilled_at: when the balance was last set back to amount (or the quota or refill was set)' },
      ),
      Type.Null(),
    ],
    {
      description: 'the quota refill; null = none',
    },
  ),
  metadata: Type.Union(
    [Type.Unsafe<Record<string, unknown>>({ type: 'object', additionalProperties: true }), Type.Null()],
    {
      description: 'the JSON object returned by Authenticate; null = none',
    },
  ),
});
export type KeyResource = Static<typeof KeyResource>;

export const Propagation = Type.Object(
  {
    replicas: Type.Integer({
      description:
        'lease holders (replicas, and callers watching with local decisions) that may have been deciding from memory when the change was published',
    }),
    confirmed: Type.Integer({ description: 'lease holders that confirmed the eviction before the response' }),
    outcome: Type.Union([Type.Literal('confirmed'), Type.Literal('lease_expired'), Type.Literal('single_replica')], {
      description:
        '`confirmed`: every replica confirmed; `lease_expired`: the response waited until every replica that did not ' +
        'confirm had provably stopped deciding from memory; `single_replica`: in-process bus (no other replica)',
    }),
    unconfirmed: Type.Array(Type.String(), {
      description:
        "lease holders (replica ids, or a watching caller's stream id) whose lease ran out instead of confirming",
    }),
    waited_ms: Type.Integer({ description: 'how long the response waited for the change to hold everywhere' }),
    published: Type.Boolean(),
  },
  { description: 'how the change reached every replica before the response was sent (design: revoke-holds)' },
);

export const KeyWithPropagation = Type.Intersect([KeyResource, Type.Object({ propagation: Propagation })]);
export const IssuedKey = Type.Intersect([
  KeyResource,
  Type.Object({ secret: Type.String({ description: 'the full key: shown once, never again' }) }),
]);
export const RotatedKey = Type.Intersect([
  IssuedKey,
  Type.Object({
    previous: Type.Object({ id: Type.String(), expires_at: Nullable(DateTime) }),
    propagation: Propagation,
  }),
]);

export const KeyPage = Type.Object({ data: Type.Array(KeyResource), next_cursor: Nullable(Type.String()) });
