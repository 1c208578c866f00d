import { Type, type TSchema } from '@sinclair/typebox';
import { SCOPES } from '../../../domain/scopes.js';
import { ENVIRONMENTS, KEY_ID_PATTERN } from '../../../domain/key-format.js';
import { ACCOUNT_ID_PATTERN } from '../../../domain/key.js';
import { READABLE_PATTERN } from '../../../domain/text.js';
import { StringEnum } from '../../../validation.js';

/** An RFC 3339 timestamp. */
export const DateTime = Type.String({ format: 'date-time' });
/** `t` or null. */
export const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);
export const Scope = StringEnum(SCOPES);
export const Environment = StringEnum(ENVIRONMENTS);

export const AccountParams = Type.Object(
  {
    accountId: Type.String({ pattern: ACCOUNT_ID_PATTERN, description: 'the account that owns the keys' }),
  },
  { additionalProperties: false },
);
export const KeyParams = Type.Object(
  {
    accountId: AccountParams.properties.accountId,
    keyId: Type.String({ pattern: KEY_ID_PATTERN, description: 'key_<public id>' }),
  },
  { additionalProperties: false },
);

/**
 * Text people give and others read: the pattern is generated from the domain's rule (domain/text.ts), so
 * the edge and the use case refuse the same strings (a test holds them to one table).
 */
export const Readable = (max: number, description: string) =>
  Type.String({
    minLength: 1,
    maxLength: max,
    pattern: READABLE_PATTERN,
    description: `${description}: 1 to ${max} characters, not only spaces, no control characters, bidirectional overrides or isolates`,
  });
/** `t` or null, with a description of what each means. */
export const NullableOf = <T extends TSchema>(t: T, description: string) =>
  Type.Union([t, Type.Null()], { description });

/** One page of a listing: its size, and where the previous page ended. */
export const Limit = Type.Integer({ minimum: 1, maximum: 100, default: 20 });
export const Cursor = Type.String({ minLength: 1, maxLength: 512 });
export const PageQuery = Type.Object({ limit: Limit, cursor: Type.Optional(Cursor) }, { additionalProperties: false });
export const WindowQuery = Type.Object(
  {
    from: Type.Optional(DateTime),
    to: Type.Optional(DateTime),
  },
  { additionalProperties: false },
);

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { description: 'RFC 9457 problem details (application/problem+json)' },
);
