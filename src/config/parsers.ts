import { readFileSync } from 'node:fs';
import { normalizeRule, parseRule } from '../domain/ip.js';
import type { Variables } from './schema.js';

/** A value the schema let through but its parser refuses: `message` names the rule, never the value. */
export class InvalidValue extends Error {}

/** The entries of a comma-separated list, trimmed, empty ones left out. */
const commaList = (text: string): string[] =>
  text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);

const url =
  (protocols: string[]) =>
  (text: string): string => {
    try {
      if (protocols.includes(new URL(text).protocol)) return text;
    } catch {
      /* not a URL: refused below */
    }
    throw new InvalidValue(`must be a ${protocols.join(' or ')} URL`);
  };

/** A file that holds at least one PEM certificate (a CA bundle); the value stays the path. */
function pemCertificateFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    // The system's error would repeat the path; the line names the variable only.
    throw new InvalidValue('cannot read the file');
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new InvalidValue('the file holds no PEM certificate');
  return path;
}

/** `host:port` entries, comma separated (IPv6 in brackets): the Sentinels. */
function hostPorts(text: string): { host: string; port: number }[] {
  const out = commaList(text).map((entry) => {
    const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(entry);
    const port = Number(m?.[2]);
    if (!m?.[1] || port < 1 || port > 65535) throw new InvalidValue('entries must be host:port, comma separated');
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  if (out.length === 0) throw new InvalidValue('no host:port entry');
  return out;
}

/** An admin credential: `accounts` undefined means every account. */
export interface AdminToken {
  name: string;
  token: string;
  accounts?: string[] | undefined;
}

/**
 * `name:token` entries, comma separated (names are audit actors, tokens at least 16 characters);
 * `name:token:acct_1|acct_2` limits a token to those accounts.
 */
function adminTokens(text: string): AdminToken[] {
  const out: AdminToken[] = [];
  for (const entry of commaList(text)) {
    const [name = '', token = '', accounts, ...rest] = entry.split(':');
    if (rest.length > 0 || !/^[A-Za-z0-9._-]{1,64}$/.test(name) || !/^[\x21-\x7e]{16,256}$/.test(token)) {
      throw new InvalidValue(
        'entries must be name:token[:account|account] with a token of 16 to 256 printable characters',
      );
    }
    out.push({ name, token, accounts: accounts === undefined ? undefined : accounts.split('|').filter(Boolean) });
  }
  if (out.length === 0) throw new InvalidValue('no name:token entry');
  return out;
}

/** Comma-separated addresses and CIDRs (v4 and v6), parsed by the domain's rules. */
function cidrList(text: string): string[] {
  const out: string[] = [];
  for (const entry of commaList(text)) {
    const rule = parseRule(entry);
    if (!rule) throw new InvalidValue('entries must be IP addresses or CIDRs, comma separated');
    out.push(normalizeRule(rule));
  }
  return out;
}

/**
 * Comma-separated web origins, each exactly as a browser reports `event.origin` (`https://host[:port]`: lower case,
 * no default port, no path or trailing slash), since the console compares them as text.
 */
function originList(text: string): string[] {
  const entries = text.split(',').map((e) => e.trim());
  const bad = entries.findIndex((entry) => !isOrigin(entry));
  if (bad >= 0) {
    throw new InvalidValue(
      `entry ${bad + 1} is not an origin: write scheme://host[:port] (http or https), as a browser reports it, with nothing after`,
    );
  }
  return [...new Set(entries)];
}

function isOrigin(entry: string): boolean {
  try {
    const u = new URL(entry);
    return (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === entry;
  } catch {
    // Not a URL at all: not an origin, which the caller reports naming the variable.
    return false;
  }
}

/** Variables whose text, once the schema holds, is read further: a parser returns the value or throws InvalidValue. */
export const parsers = {
  DATABASE_URL: url(['postgres:', 'postgresql:']),
  DATABASE_MIGRATION_URL: url(['postgres:', 'postgresql:']),
  DATABASE_TLS_CA: pemCertificateFile,
  REDIS_URL: url(['redis:', 'rediss:']),
  REDIS_SENTINELS: hostPorts,
  REDIS_TLS_CA: pemCertificateFile,
  ADMIN_TOKENS: adminTokens,
  TRUST_PROXY: cidrList,
  GITHUB_SECRET_SCANNING_KEYS_URL: url(['https:', 'http:']),
  ADMIN_JWKS_URL: url(['https:', 'http:']),
  CONSOLE_HOST_ORIGINS: originList,
} satisfies { [K in keyof Variables]?: (text: string) => unknown };

export type Parsers = typeof parsers;

/** The variables, each parsed one as its parser returns it. */
export type Config = Readonly<{
  [K in keyof Variables]: K extends keyof Parsers
    ? ReturnType<Parsers[K]> | Exclude<Variables[K], string>
    : Variables[K];
}>;
