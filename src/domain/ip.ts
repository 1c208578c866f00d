import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** One allowlist entry, parsed once: an address range (a lone address is a /32 or /128). */
export interface IpRule {
  address: Address;
  prefix: number;
  /** Stands for stored rules that could not be read: matches no address (design: unreadable-denies). */
  readonly unreadable?: true;
}

/** The whole of an allowlist that holds a rule the service cannot read. `::/128` too, should a check ever miss the flag. */
const UNREADABLE: readonly IpRule[] = Object.freeze([
  Object.freeze({ address: ipaddr.parse('::'), prefix: 128, unreadable: true as const }),
]);

/**
 * The allowlist to match, from its stored rules parsed one by one (undefined: a rule that does not
 * parse). Dropping such a rule would widen the list (to any address, once none is left), so a list
 * with any unreadable rule matches no address at all: its key is refused everywhere until the rule is
 * fixed, never allowed more widely than its owner wrote (design: unreadable-denies).
 */
export function allowlistOf(parsed: readonly (IpRule | undefined)[]): readonly IpRule[] {
  return parsed.every((r) => r !== undefined) ? parsed : UNREADABLE;
}

/** Strict parse, no folding: undefined when not an address. */
function parseRaw(text: string): Address | undefined {
  // node:net is strict about notation (no octal, no short forms); ipaddr.js does the arithmetic.
  // A zone id (fe80::1%eth0) names an interface of the sender's host, meaningless here.
  if (text.length > 64 || text.includes('%') || isIP(text) === 0) return undefined;
  try {
    // ipaddr.js reads the deprecated IPv4-compatible form ::a.b.c.d as IPv4-mapped ::ffff:a.b.c.d,
    // which would fold it into an IPv4 address it is not: build it from its bytes instead.
    const compatible = /^::(\d{1,3}(?:\.\d{1,3}){3})$/.exec(text);
    if (compatible?.[1])
      return ipaddr.fromByteArray([
        ...new Array<number>(12).fill(0),
        ...ipaddr.IPv4.parse(compatible[1]).toByteArray(),
      ]);
    return ipaddr.parse(text);
  } catch {
    // ipaddr.js throws on what it cannot read: not an address.
    return undefined;
  }
}

/** Parse an address; IPv4-mapped IPv6 (::ffff:a.b.c.d) is folded to IPv4. Undefined when not an address. */
export function parseAddress(text: string): Address | undefined {
  const addr = parseRaw(text);
  if (addr?.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress())
    return (addr as ipaddr.IPv6).toIPv4Address();
  return addr;
}

/** Parse an allowlist entry (address or CIDR); undefined when invalid. */
export function parseRule(text: string): IpRule | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) {
    const address = parseAddress(text);
    return address && { address, prefix: address.kind() === 'ipv4' ? 32 : 128 };
  }
  const prefixText = text.slice(slash + 1);
  const raw = parseRaw(text.slice(0, slash));
  if (!raw || !/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > (raw.kind() === 'ipv4' ? 32 : 128)) return undefined;
  if (raw.kind() === 'ipv6' && (raw as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    return { address: (raw as ipaddr.IPv6).toIPv4Address(), prefix: prefix - 96 };
  }
  return { address: raw, prefix };
}

/** True when the rule's address has bits set beyond its prefix (10.0.0.1/8): a typo more often than not. */
export function hasHostBits(rule: IpRule): boolean {
  const full = rule.address.kind() === 'ipv4' ? 32 : 128;
  return rule.prefix < full && normalizeRule(rule) !== `${rule.address.toString()}/${rule.prefix}`;
}

/** The canonical text of an allowlist entry, as stored and returned. */
export function normalizeRule(rule: IpRule): string {
  const network =
    rule.address.kind() === 'ipv4'
      ? ipaddr.IPv4.networkAddressFromCIDR(`${rule.address.toString()}/${rule.prefix}`)
      : ipaddr.IPv6.networkAddressFromCIDR(`${rule.address.toString()}/${rule.prefix}`);
  const full = rule.address.kind() === 'ipv4' ? 32 : 128;
  return rule.prefix === full ? network.toString() : `${network.toString()}/${rule.prefix}`;
}

/** True when every address of `inner` is also in `outer`. */
export function ruleWithin(inner: IpRule, outer: IpRule): boolean {
  return (
    inner.address.kind() === outer.address.kind() &&
    inner.prefix >= outer.prefix &&
    inner.address.match(outer.address, outer.prefix)
  );
}

/** True when the allowlist is empty (any address) or one rule contains the address; an unreadable rule contains none. */
export function ipAllowed(rules: readonly IpRule[], address: Address): boolean {
  if (rules.length === 0) return true;
  for (const rule of rules) {
    if (rule.unreadable) continue;
    if (rule.address.kind() === address.kind() && address.match(rule.address, rule.prefix)) return true;
  }
  return false;
}

export type { Address };
