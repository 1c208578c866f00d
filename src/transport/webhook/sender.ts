import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import { invalid } from '../../domain/errors.js';
import { DELIVERY } from '../../domain/webhook.js';
import type { WebhookRequest, WebhookResponse, WebhookSender } from '../../service/webhook-sender.js';

export type { WebhookSender } from '../../service/webhook-sender.js';

export interface HttpWebhookSenderOptions {
  /** Plain http: URLs too (development); production takes https: only. */
  allowHttp: boolean;
  /** Loopback, private, link-local… addresses too (WEBHOOK_ALLOW_PRIVATE=1: development and tests only). */
  allowPrivate: boolean;
  timeoutMs?: number;
}

/** Cloud metadata services, named as such in refusals (each also lies in a refused range). */
const METADATA = new Set(['169.254.169.254', 'fd00:ec2::254', '100.100.100.200', '169.254.170.2']);

/**
 * Why the service must not connect to `address`, or undefined for a public unicast address: loopback,
 * private, link-local, multicast, metadata, unspecified, carrier-grade NAT, reserved, documentation and
 * the IPv6 forms that carry an IPv4 address (mapped ones are judged by the address they carry).
 */
export function refusedRange(address: string): string | undefined {
  const text = address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address;
  if (isIP(text) === 0) return 'not an address';
  let parsed: ipaddr.IPv4 | ipaddr.IPv6 = ipaddr.parse(text);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress())
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  if (METADATA.has(parsed.toNormalizedString()) || METADATA.has(parsed.toString())) return 'metadata';
  const range = parsed.range();
  return range === 'unicast' ? undefined : range;
}

const refusal = (host: string, address: string, range: string) =>
  `${host === address ? address : `${host} resolves to ${address}`}, a ${range} address: webhooks go to public addresses only`;

class RefusedAddress extends Error {
  readonly code = 'WEBHOOK_ADDRESS_REFUSED';
}

export class HttpWebhookSender implements WebhookSender {
  #o: HttpWebhookSenderOptions;
  #agents: { http: http.Agent; https: https.Agent };

  constructor(opts: HttpWebhookSenderOptions) {
    this.#o = opts;
    const lookup = this.#lookup;
    this.#agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: 32, lookup }),
      https: new https.Agent({ keepAlive: true, maxSockets: 32, lookup }),
    };
  }

  async check(text: string): Promise<void> {
    const url = this.#url(text);
    const host = hostOf(url);
    if (isIP(host) !== 0) {
      const range = this.#o.allowPrivate ? undefined : refusedRange(host);
      if (range) throw invalid('url', refusal(host, host, range));
      return;
    }
    const addresses = await new Promise<LookupAddress[]>((resolve) => {
      dnsLookup(host, { all: true }, (err, found) => resolve(err ? [] : found));
    });
    if (addresses.length === 0) throw invalid('url', `${host} does not resolve`);
    const refused = this.#refused(host, addresses);
    if (refused) throw invalid('url', refused);
  }

  async send(request: WebhookRequest): Promise<WebhookResponse> {
    const started = performance.now();
    const elapsed = () => Math.round(performance.now() - started);
    let url: URL;
    try {
      url = this.#url(request.url);
      const host = hostOf(url);
      const range = isIP(host) !== 0 && !this.#o.allowPrivate ? refusedRange(host) : undefined;
      if (range) throw new RefusedAddress(refusal(host, host, range));
    } catch (err) {
      return { statusCode: null, error: reasonOf(err), durationMs: elapsed(), response: null };
    }
    const timeoutMs = this.#o.timeoutMs ?? DELIVERY.timeoutMs;
    return new Promise<WebhookResponse>((resolve) => {
      const secure = url.protocol === 'https:';
      const req = (secure ? https : http).request(url, {
        method: 'POST',
        agent: secure ? this.#agents.https : this.#agents.http,
        headers: {
          'content-type': 'application/json',
          'user-agent': 'otesse-webhooks/1',
          ...request.headers,
          'content-length': String(Buffer.byteLength(request.body)),
        },
        signal: AbortSignal.timeout(timeoutMs),
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const body = Buffer.concat(chunks).subarray(0, DELIVERY.responseBytes).toString('utf8');
          resolve({ statusCode: res.statusCode ?? null, error: null, durationMs: elapsed(), response: body });
        };
        res.on('data', (chunk: Buffer) => {
          if (size >= DELIVERY.responseBytes) return;
          chunks.push(chunk);
          size += chunk.length;
          // Enough is read: the rest of a large answer is not waited for.
          if (size >= DELIVERY.responseBytes) {
            done();
            res.destroy();
          }
        });
        res.on('end', done);
        res.on('error', done);
      });
      req.on('error', (err) =>
        resolve({ statusCode: null, error: reasonOf(err, timeoutMs), durationMs: elapsed(), response: null }),
      );
      req.end(request.body);
    });
  }

  /** Close the kept-alive connections (shutdown). */
  close(): void {
    this.#agents.http.destroy();
    this.#agents.https.destroy();
  }

  #url(text: string): URL {
    if (!URL.canParse(text)) throw invalid('url', 'not a URL');
    const url = new URL(text);
    if (url.protocol !== 'https:' && !(url.protocol === 'http:' && this.#o.allowHttp))
      throw invalid('url', this.#o.allowHttp ? 'must be an http: or https: URL' : 'must be an https: URL');
    if (url.username || url.password) throw invalid('url', 'must not carry a user name or password');
    return url;
  }

  /** Why `host` must not be called, when any address it resolved to is refused (none with allowPrivate). */
  #refused(host: string, addresses: readonly LookupAddress[]): string | undefined {
    if (this.#o.allowPrivate) return undefined;
    for (const a of addresses) {
      const range = refusedRange(a.address);
      if (range) return refusal(host, a.address, range);
    }
    return undefined;
  }

  /** Resolve, refuse if any address is refused, and hand the connection the checked addresses. */
  #lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: options.family ?? 0, hints: options.hints }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const refused = this.#refused(hostname, addresses);
      if (refused) return callback(new RefusedAddress(refused), '', 0);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`${hostname} does not resolve`), { code: 'ENOTFOUND' }), '', 0);
      if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      else callback(null, first.address, first.family);
    });
  };
}

/** The URL's host as the connection uses it: an IPv6 literal without its brackets. */
function hostOf(url: URL): string {
  const h = url.hostname;
  return h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h;
}

/** A short reason for the attempt log: never a header or the body. */
function reasonOf(err: unknown, timeoutMs: number = DELIVERY.timeoutMs): string {
  const e = err as { code?: string; name?: string; message?: string; errors?: unknown[] };
  if (err instanceof RefusedAddress) return `refused: ${err.message}`;
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `no answer within ${timeoutMs / 1000} s`;
  if (e.code === 'VALIDATION_FAILED') return `refused: ${e.message ?? 'invalid URL'}`;
  // Happy eyeballs fails with an AggregateError of one error per address: the first says enough.
  const inner = Array.isArray(e.errors) && e.errors[0] ? (e.errors[0] as { code?: string }) : undefined;
  const code = e.code ?? inner?.code;
  if (code === 'WEBHOOK_ADDRESS_REFUSED') return `refused: ${(inner as Error | undefined)?.message ?? e.message}`;
  return `connection failed: ${code ?? e.message ?? 'unknown error'}`;
}
