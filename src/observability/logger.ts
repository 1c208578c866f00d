import pino, { type DestinationStream, type Logger } from 'pino';
import { isKeyId, KEY_PATTERN } from '../domain/key-format.js';

const SECRET_FIELDS = [
  'secret',
  'key',
  'token',
  'authorization',
  'x-api-key',
  'password',
  'secret_hash',
  'admin_tokens',
];

/** A key-shaped token cut to its prefix and 4 id characters (an already cut one stays as it is). */
const cutKey = (k: string) => (k.length <= 19 ? k : `${k.slice(0, 19)}…[redacted]`);

/** Replace every key-shaped token and bearer credential in a string. */
export function scrub(text: string): string {
  return text.replace(KEY_PATTERN, cutKey).replace(/(Bearer\s+)\S+/gi, '$1[redacted]');
}

/** Deep copy with secrets removed: named secret fields dropped, key-shaped strings scrubbed anywhere. */
export function redactDeep(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return scrub(value);
  if (depth > 8 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    return {
      type: value.name,
      message: scrub(value.message),
      stack: value.stack && scrub(value.stack),
      code: (value as { code?: unknown }).code,
    };
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

/** A serialized log line with every field redacted (see redactDeep); a line that is not JSON is scrubbed. */
export function redactLine(line: string): string {
  try {
    return `${JSON.stringify(redactDeep(JSON.parse(line)))}\n`;
  } catch {
    // Not JSON (pino writes JSON, but a line may arrive cut or from another writer): it is still scrubbed as text.
    // The parse error is not logged: this is the logger's own write hook, and logging here would recurse.
    return scrub(line);
  }
}

/** Query parameters of the admin API whose values are never credentials. */
const PLAIN_QUERY = new Set(['limit', 'cursor', 'environment', 'status', 'rotation', 'in_grace', 'from', 'to']);
/** Admin tokens are at least 16 characters (config.ts): a shorter text cannot be one. */
const MIN_TOKEN = 16;

interface LoggedRequest {
  method?: string;
  url?: string;
  ip?: string;
  headers?: Record<string, string | string[] | undefined>;
  routeOptions?: { url?: string | undefined };
}

/**
 * A request URL fit for the log. A client may put a credential anywhere, so: its own bearer
 * credential is cut wherever it is repeated, key-shaped text is scrubbed, query values are
 * kept only for the API's own parameters, and on an unmatched route any segment long enough
 * to be a token is cut. (A matched route's segments are its ids: they are kept.)
 */
export function safeUrl(url: string, req: LoggedRequest = {}): string {
  const at = url.indexOf('?');
  let path = at < 0 ? url : url.slice(0, at);
  const query =
    at < 0
      ? []
      : url
          .slice(at + 1)
          .split('&')
          .filter(Boolean);
  if (!req.routeOptions?.url) {
    path = path
      .split('/')
      .map((s) => (s.length >= MIN_TOKEN && !isKeyId(s) ? '[redacted]' : s))
      .join('/');
  }
  const params = query.map((pair) => {
    const name = pair.split('=')[0] ?? '';
    if (PLAIN_QUERY.has(name)) return pair;
    return `${name.length < MIN_TOKEN ? name : '[redacted]'}=[redacted]`;
  });
  let out = scrub(params.length > 0 ? `${path}?${params.join('&')}` : path);
  const credential = /^\s*\S+\s+(\S{16,})/.exec(String(req.headers?.authorization ?? ''))?.[1];
  if (credential)
    out = out.split(credential).join('[redacted]').split(encodeURIComponent(credential)).join('[redacted]');
  return out;
}

/** Human-readable lines only for a person at a terminal in development; JSON lines for pipes, production and the image. */
export function wantsPrettyLogs(nodeEnv: string | undefined, isTTY: boolean | undefined): boolean {
  return isTTY === true && nodeEnv !== 'production';
}

export interface LoggerOptions {
  /** Lines through pino-pretty (in a worker thread) instead of JSON: decide with wantsPrettyLogs. Ignored with a destination. */
  pretty?: boolean;
  /** Where pretty lines go: a file path or a file descriptor; stdout by default. */
  prettyTo?: string | number;
}

/** pino-pretty as a pino transport: it receives the lines already redacted by the streamWrite hook. */
function prettyDestination(to: string | number): DestinationStream {
  return pino.transport({
    target: 'pino-pretty',
    options: { destination: to, colorize: to === 1, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' },
  });
}

/**
 * The service's pino logger: JSON lines (or pretty ones, see LoggerOptions), and no key secret or admin token in any field or
 * message, whatever the level (serializers shape req, res and err; every finished line is redacted).
 */
export function createLogger(level: string, destination?: DestinationStream, options: LoggerOptions = {}): Logger {
  const out = destination ?? (options.pretty ? prettyDestination(options.prettyTo ?? 1) : undefined);
  return pino(
    {
      level,
      base: { service: 'otesse-keys' },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: {
        err: (e: unknown) => redactDeep(e),
        req: (req: LoggedRequest) => ({ method: req.method, url: req.url && safeUrl(req.url, req), ip: req.ip }),
        res: (res: { statusCode?: number }) => ({ statusCode: res.statusCode }),
      },
      hooks: {
        // One redaction, on the finished line: it sees every field, child bindings (Fastify binds the
        // client's x-request-id), and the `msg` pino takes from an Error, whatever produced them.
        streamWrite: redactLine,
      },
    },
    out,
  );
}
