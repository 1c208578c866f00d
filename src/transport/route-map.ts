import { readFileSync } from 'node:fs';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { parse } from 'yaml';
import { Type, type Static } from '@sinclair/typebox';
import { ConfigError } from '../config.js';
import { SCOPES } from '../domain/scopes.js';
import { checker, StringEnum } from '../validation.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const Rule = Type.Object(
  {
    method: StringEnum(['ANY', ...METHODS] as const),
    // find-my-way patterns: `/v1/bookings/:id`, `/v1/files/*`.
    path: Type.String({ pattern: '^/\\S*$', errorMessage: { pattern: 'must start with / and hold no spaces' } }),
    scope: StringEnum(SCOPES, { errorMessage: { enum: 'not a scope of the catalog' } }),
  },
  { additionalProperties: false },
);

const checkFile = checker(
  Type.Object({ routes: Type.Array(Rule, { minItems: 1 }) }, { additionalProperties: false }),
  'json',
);

export type RouteRule = Static<typeof Rule>;

/**
 * Which scope a gateway's request needs, from its method and path (FORWARD_AUTH_ROUTES). Paths
 * are matched by find-my-way, Fastify's router, so patterns mean what they mean in a Fastify app.
 */
export class RouteMap {
  #router = FindMyWay();

  constructor(rules: readonly RouteRule[]) {
    for (const r of rules) {
      const methods: HTTPMethod[] = r.method === 'ANY' ? [...METHODS] : [r.method];
      this.#router.on(methods, r.path, () => undefined, { scope: r.scope });
    }
  }

  /** Parse and check the YAML text; throws an Error naming the bad entry. */
  static parse(text: string): RouteMap {
    const result = checkFile(parse(text));
    if (!result.ok) throw new Error(`${result.issue.path || 'file'}: ${result.issue.message}`);
    return new RouteMap(result.value.routes);
  }

  /** Read FORWARD_AUTH_ROUTES at start; a bad file stops start-up with one line naming the variable. */
  static load(path: string): RouteMap {
    try {
      return RouteMap.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError(`FORWARD_AUTH_ROUTES: ${err instanceof Error ? err.message.split('\n')[0] : 'unreadable'}`);
    }
  }

  /**
   * The scope for a method and a path, or undefined when no rule matches. `path` is the canonical path
   * that checkRequestTarget gives (query string gone): the gateways check the target before they ask
   * (design: client-cannot-choose), so a path the upstream could read differently never gets here.
   */
  scopeFor(method: string, path: string): string | undefined {
    const m = method.toUpperCase();
    if (!(METHODS as readonly string[]).includes(m)) return undefined;
    const found = this.#router.find(m as HTTPMethod, path);
    return (found?.store as { scope?: string } | undefined)?.scope;
  }
}
