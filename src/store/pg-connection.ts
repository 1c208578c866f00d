import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import pg from 'pg';
import { AppError } from '../domain/errors.js';
import { isConnectionFault } from './pg-database.js';

/**
 * A PostgreSQL server as the operator configured it. The names are those of the settings, so that
 * an error line tells the operator which one to fix (the store knows no configuration).
 */
export interface PgEndpoint {
  url: string;
  urlName: string;
  /** PEM file of the CA that signed the server's certificate: TLS with the certificate and host name verified. */
  tlsCaFile?: string | undefined;
  tlsCaName: string;
}

/** What `pg` is given for an endpoint: the URL, and the TLS options when a CA file is configured. */
export function connectionOptions(e: Pick<PgEndpoint, 'url' | 'tlsCaFile'>): {
  connectionString: string;
  ssl?: ConnectionOptions;
} {
  if (!e.tlsCaFile) return { connectionString: e.url };
  // pg lets the URL's ssl settings override `ssl`: they are taken out (the configuration allowed only
  // sslmode=verify-full beside a CA file, which is what `ssl` below asks for).
  const url = new URL(e.url);
  for (const name of ['sslmode', 'ssl']) url.searchParams.delete(name);
  return { connectionString: url.toString(), ssl: { ca: readFileSync(e.tlsCaFile, 'utf8'), rejectUnauthorized: true } };
}

// Node's codes for a certificate chain that does not verify against the trusted CAs.
const UNTRUSTED =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_\w+|INVALID_CA|INVALID_PURPOSE)$/;

/**
 * Start-up check of one endpoint over a connection of its own: TLS as configured, and a transaction
 * whose statements run on one server session. A pooler that hands each statement its own server
 * connection (PgBouncer's pool_mode=statement) would break every transaction of the store, and
 * with it the change log's lock (design: revoke-holds). Transaction and session pooling pass.
 * Throws one line naming the setting to fix.
 */
export async function checkServer(e: PgEndpoint): Promise<void> {
  const client = new pg.Client({
    ...connectionOptions(e),
    connectionTimeoutMillis: 5000,
    query_timeout: 5000,
    application_name: 'otesse-keys',
  });
  // An error after the failing call has been reported (the socket closing) is the same fault.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    // Closing what failed to open can fail too; the fault reported is the one that matters.
    await client.end().catch(() => undefined);
    throw connectFault(e, err);
  }
  try {
    await oneSession(e, client);
  } finally {
    // The check's own outcome is what counts; a failed goodbye on a one-off connection changes nothing.
    await client.end().catch(() => undefined);
  }
}

async function oneSession(e: PgEndpoint, client: pg.Client): Promise<void> {
  const xid = async () => String((await client.query<{ x: string }>('SELECT txid_current()::text AS x')).rows[0]?.x);
  let same: boolean;
  try {
    await client.query('BEGIN');
    same = (await xid()) === (await xid());
    await client.query('COMMIT');
  } catch (err) {
    const text = (err as Error).message;
    if ((err as { code?: string }).code === '08P01' || /pool(ing)? mode/i.test(text)) throw statementPooling(e, text);
    throw connectFault(e, err);
  }
  if (!same) throw statementPooling(e, 'two statements of one transaction ran in different transactions');
}

function statementPooling(e: PgEndpoint, detail: string): Error {
  return new Error(
    `${e.urlName}: the server does not keep a transaction on one connection (${detail}): ` +
      'a pooler in statement mode cannot serve this service; use PgBouncer pool_mode=transaction (or session)',
  );
}

/** The line for a connection that could not be opened: TLS and authentication named, the rest unavailable. */
function connectFault(e: PgEndpoint, err: unknown): Error {
  const raw = (err as { code?: unknown }).code;
  const code = typeof raw === 'string' ? raw : '';
  const message = err instanceof Error ? err.message : String(err);
  const ca = e.tlsCaFile ? e.tlsCaName : `${e.urlName} (sslrootcert, or the system's CAs)`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new Error(`${e.urlName}: the PostgreSQL server's certificate does not name the host in the URL (${code})`);
  }
  if (UNTRUSTED.test(code))
    return new Error(
      `${ca}: the PostgreSQL server's certificate at ${e.urlName} does not verify against this CA (${code})`,
    );
  if (/does not support SSL/i.test(message)) {
    return new Error(
      `${e.urlName}: the PostgreSQL server does not offer TLS, which ${e.tlsCaFile ? e.tlsCaName : 'sslmode'} requires`,
    );
  }
  if (isConnectionFault(err))
    return new AppError('STORAGE_UNAVAILABLE', `${e.urlName}: PostgreSQL cannot be reached: ${message}`);
  return new Error(`${e.urlName}: ${message}`);
}
