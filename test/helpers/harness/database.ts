// Scratch databases on the shared PostgreSQL server, for tests (test/helpers/db.ts) and the
// benchmarks (bench/): created under a random name, dropped when their owner is done.
import pg from 'pg';

interface Owner {
  teardown(fn: () => unknown): void;
}

/** A name that is safe to splice into CREATE/DROP DATABASE (identifiers cannot be bound as parameters). */
const PLAIN_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** The URL of database `name` on the server that `adminUrl` points at. */
export function databaseUrl(adminUrl: string, name: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return u.toString();
}

async function onAdmin(adminUrl: string, sql: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

function checked(name: string): string {
  if (!PLAIN_NAME.test(name)) throw new Error(`not a plain database name: ${JSON.stringify(name)}`);
  return name;
}

/** CREATE DATABASE `name` on the server of `adminUrl`; resolves its URL. */
export async function createDatabaseNamed(adminUrl: string, name: string): Promise<string> {
  await onAdmin(adminUrl, `CREATE DATABASE ${checked(name)}`);
  return databaseUrl(adminUrl, name);
}

/** Drop database `name`, closing the connections still open to it. */
export async function dropDatabaseNamed(adminUrl: string, name: string): Promise<void> {
  await onAdmin(adminUrl, `DROP DATABASE IF EXISTS ${checked(name)} WITH (FORCE)`);
}

/** A database created now and dropped at `owner`'s teardown; resolves its URL. */
export async function scratchDatabase(owner: Owner, adminUrl: string, name: string): Promise<string> {
  const url = await createDatabaseNamed(adminUrl, name);
  owner.teardown(() => dropDatabaseNamed(adminUrl, name));
  return url;
}
