import type { IncomingMessage } from 'node:http';
import proxyAddr from '@fastify/proxy-addr';
import { ipAllowed, parseAddress, parseRule, type IpRule } from './ip.js';

/** TRUST_PROXY's entries as rules (they were checked when the configuration was read). */
export function trustedProxies(entries: readonly string[] | undefined): IpRule[] {
  return (entries ?? []).map(parseRule).filter((r): r is IpRule => r !== undefined);
}

/**
 * The client's address behind trusted proxies, found by proxy-addr, the library behind Fastify's
 * trustProxy (forward auth), so both gateways' entry points agree: from the peer back through
 * X-Forwarded-For while each hop is a trusted proxy; the first untrusted hop is the client (the
 * leftmost entry when every hop is trusted). An untrusted peer's header is ignored. Envoy Check
 * has a peer address and a header rather than a Node request: they are handed over as one.
 */
export function clientAddress(peer: string, forwardedFor: string | undefined, trusted: readonly IpRule[]): string {
  if (trusted.length === 0) return peer;
  const request = {
    socket: { remoteAddress: peer },
    headers: forwardedFor === undefined ? {} : { 'x-forwarded-for': forwardedFor },
  };
  return proxyAddr(request as unknown as IncomingMessage, (hop) => {
    const address = parseAddress(hop);
    return address !== undefined && ipAllowed(trusted, address);
  });
}
