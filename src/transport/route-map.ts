import { readFileSync } from 'node:fs';
import FindMyWay, { type HTTPMethod } from 'find-my-way';
import { parse } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../config.js';
import { isScope } from '../domain/scopes.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const rule = z.object({
  method: z.union([z.literal('ANY'), z.enum(METHODS)]),
  // find-my-way patterns: `/v1/bookings/:id`, `/v1/files/*`.
  path: z.string().regex(/^\/\S*$/, 'must start with / and hold no spaces'),
  scope: z.string().refine(isScope, 'not a scope of the catalog'),
}).strict();

const file = z.object({ routes: z.array(rule).min(1) }).strict();

export type RouteRule = z.infer<typeof rule>;

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
    const result = file.safeParse(parse(text));
    if (!result.success) {
      const issue = result.error.issues[0];
      throw new Error(`${issue?.path.join('.') || 'file'}: ${issue?.message ?? 'invalid'}`);
    }
    return new RouteMap(result.data.routes);
  }

  /** Read FORWARD_AUTH_ROUTES at start; a bad file stops start-up with one line naming the variable. */
  static load(path: string): RouteMap {
    try {
      return RouteMap.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError(`FORWARD_AUTH_ROUTES: ${err instanceof Error ? err.message.split('\n')[0] : 'unreadable'}`);
    }
  }

  /** The scope for a method and a request target (query string ignored), or undefined when no rule matches. */
  scopeFor(method: string, target: string): string | undefined {
    const path = target.split('?')[0] ?? '';
    const m = method.toUpperCase();
    if (!(METHODS as readonly string[]).includes(m)) return undefined;
    const found = this.#router.find(m as HTTPMethod, path);
    return (found?.store as { scope?: string } | undefined)?.scope;
  }
}
