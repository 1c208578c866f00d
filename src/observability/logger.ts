import pino, { type DestinationStream, type Logger } from 'pino';
import { KEY_PATTERN } from '../domain/key-format.js';

const SECRET_FIELDS = ['secret', 'key', 'token', 'authorization', 'x-api-key', 'password', 'secret_hash', 'admin_tokens'];

/** A key-shaped token cut to its prefix and 4 id characters (an already cut one stays as it is). */
const cutKey = (k: string) => (k.length <= 19 ? k : `${k.slice(0, 19)}…[redacted]`);

/** Replace every key-shaped token and bearer credential in a string. */
export function scrub(text: string): string {
  return text
    .replace(KEY_PATTERN, cutKey)
    .replace(/(Bearer\s+)\S+/gi, '$1[redacted]');
}

/** Deep copy with secrets removed: named secret fields dropped, key-shaped strings scrubbed anywhere. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return { type: value.name, message: scrub(value.message), stack: value.stack && scrub(value.stack), code: (value as { code?: unknown }).code };
  }
  if (Array.isArray(value)) return value.map((v) => redactDeep(v, depth + 1));
  // Class instances (requests, replies, sockets) are left to their serializers.
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELDS.includes(k.toLowerCase()) && v !== undefined ? '[redacted]' : redactDeep(v, depth + 1);
  }
  return out;
}

/**
 * The service's pino logger: JSON lines, and no key secret or admin token in any field or
 * message, whatever the level (serializers run first, then the log formatter scrubs the result).
 */
export function createLogger(level: string, destination?: DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'otesse-keys' },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: {
      err: (e: unknown) => redactDeep(e),
      req: (req: { method?: string; url?: string; id?: string; ip?: string }) => ({ method: req.method, url: req.url && scrub(req.url), ip: req.ip }),
      res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
    },
    formatters: {
      // req and res go to their serializers untouched (a deep copy loses their getters: method, url, statusCode).
      log: ({ req, res, ...rest }) => ({ ...(redactDeep(rest) as Record<string, unknown>), ...(req === undefined ? {} : { req }), ...(res === undefined ? {} : { res }) }),
      // Child bindings too: Fastify binds the client's x-request-id to every line of a request.
      bindings: (bindings) => redactDeep(bindings) as Record<string, unknown>,
    },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((a) => (typeof a === 'string' ? scrub(a) : a)) as Parameters<typeof method>);
      },
      // Last line of defence: pino takes `msg` from an Error's message when none is given, unscrubbed.
      streamWrite: (line) => line.replace(KEY_PATTERN, cutKey),
    },
  }, destination);
}
