import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** One allowlist entry, parsed once: an address range (a lone address is a /32 or /128). */
export interface IpRule {
  address: Address;
  prefix: number;
}

/** Parse an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is folded to IPv4. Undefined when not an address. */
export function parseAddress(text: string): Address | undefined {
  // node:net is strict about notation (no octal, no short forms); ipaddr.js does the arithmetic.
  if (isIP(text) === 0) return undefined;
  const addr = ipaddr.parse(text);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (addr as ipaddr.IPv6).toIPv4Address();
  }
  return addr;
}

/** Parse an allowlist entry (address or CIDR); undefined when invalid. */
export function parseRule(text: string): IpRule | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) {
    const address = parseAddress(text);
    return address && { address, prefix: address.kind() === 'ipv4' ? 32 : 128 };
  }
  if (isIP(text.slice(0, slash)) === 0 || !ipaddr.isValidCIDR(text)) return undefined;
  const [addr, prefix] = ipaddr.parseCIDR(text);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    return { address: (addr as ipaddr.IPv6).toIPv4Address(), prefix: prefix - 96 };
  }
  return { address: addr, prefix };
}

/** The canonical text of an allowlist entry, as stored and returned. */
export function normalizeRule(rule: IpRule): string {
  const network = rule.address.kind() === 'ipv4'
    ? ipaddr.IPv4.networkAddressFromCIDR(`${rule.address.toString()}/${rule.prefix}`)
    : ipaddr.IPv6.networkAddressFromCIDR(`${rule.address.toString()}/${rule.prefix}`);
  const full = rule.address.kind() === 'ipv4' ? 32 : 128;
  return rule.prefix === full ? network.toString() : `${network.toString()}/${rule.prefix}`;
}

/** True when the allowlist is empty (any address) or one rule contains the address. */
export function ipAllowed(rules: readonly IpRule[], address: Address): boolean {
  if (rules.length === 0) return true;
  for (const rule of rules) {
    if (rule.address.kind() === address.kind() && address.match(rule.address, rule.prefix)) return true;
  }
  return false;
}

export type { Address };
