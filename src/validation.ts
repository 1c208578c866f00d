import { Type, type SchemaOptions, type Static, type TSchema } from '@sinclair/typebox';
import { Ajv, type ErrorObject } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * How values arrive. `json`: as parsed from JSON or YAML, checked as they are (`null` is not 0,
 * "5" is not 5). `text`: as strings (environment variables, querystrings, path parameters), so
 * numbers and booleans are read from their text.
 */
export type Input = 'json' | 'text';

/**
 * The project's one schema check: TypeBox schemas compiled by Ajv, with the same options for the
 * admin API's routes, the configuration, the gateways' route map and GitHub's leak reports, so a
 * schema means the same thing on every edge. Defaults are filled in; nothing unknown is removed.
 */
export function createAjv(input: Input): Ajv {
  const ajv = new Ajv({
    removeAdditional: false,
    allErrors: true,
    useDefaults: true,
    strict: false,
    coerceTypes: input === 'json' ? false : 'array',
  });
  addFormats.default(ajv);
  return ajv;
}

/** A string enum as JSON Schema `enum` (one clear error instead of anyOf noise). */
export const StringEnum = <T extends string>(values: readonly T[], options: SchemaOptions = {}) =>
  Type.Unsafe<T>({ ...options, type: 'string', enum: [...values] });

/**
 * A schema option naming the message for a failing keyword in place of Ajv's, in the form
 * ajv-errors reads: `Type.String({ pattern: '^/', errorMessage: { pattern: 'must start with /' } })`.
 */
export interface ErrorMessages {
  errorMessage?: Partial<Record<string, string>>;
}

/** The first problem found: where (`routes.0.scope`, empty for the whole value) and what, never the value itself. */
export interface Issue {
  path: string;
  message: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; issue: Issue };

const shared: Partial<Record<Input, Ajv>> = {};

/** Compile `schema` once; the checker fills in defaults (and reads numbers from text) in place. */
export function checker<T extends TSchema>(schema: T, input: Input): (value: unknown) => Checked<Static<T>> {
  const validate = (shared[input] ??= createAjv(input)).compile(schema);
  return (value) => {
    if (validate(value)) return { ok: true, value: value as Static<T> };
    const error = validate.errors?.[0];
    return { ok: false, issue: error ? issueOf(schema, error) : { path: '', message: 'invalid' } };
  };
}

/** A JSON pointer's segments; Ajv's schema paths are also URI-encoded (`#/properties/a%20b`). */
const segments = (pointer: string, uri = false) =>
  pointer
    .split('/')
    .slice(1)
    .map((s) => (uri ? decodeURIComponent(s) : s).replace(/~1/g, '/').replace(/~0/g, '~'));

/** Ajv's error as path and message; an unknown property is named in the path (Ajv names it only in `params`). */
function issueOf(schema: TSchema, error: ErrorObject): Issue {
  const path = segments(error.instancePath);
  if (error.keyword === 'additionalProperties') path.push(String(error.params['additionalProperty']));
  // The schema path ends with the failing keyword; the node above it may name its own message.
  const node = segments(error.schemaPath, true)
    .slice(0, -1)
    .reduce<unknown>((n, key) => (n as Record<string, unknown> | undefined)?.[key], schema);
  const custom = (node as ErrorMessages | undefined)?.errorMessage?.[error.keyword];
  return { path: path.join('.'), message: custom ?? error.message ?? 'invalid' };
}
