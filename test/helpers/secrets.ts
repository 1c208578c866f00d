import pg from 'pg';
import { secretOf } from '../../src/domain/key-format.js';
import { capturedLogs } from './app.js';

/** The shortest piece of a secret that counts as a leak. */
export const MIN_FRAGMENT = 16;

/** What must never appear for a key: the key, its secret, and every 16-character piece of the secret. */
export function fragmentsOf(key: string): string[] {
  const secret = secretOf(key);
  const out = [key, secret];
  for (let i = 0; i + MIN_FRAGMENT <= secret.length; i++) out.push(secret.slice(i, i + MIN_FRAGMENT));
  return out;
}

/** Where any key's secret (or a 16-character piece of it) appears in `text`; empty when nowhere. */
export function leaksIn(text: string, keys: readonly string[]): string[] {
  const found: string[] = [];
  for (const key of keys) {
    for (const fragment of fragmentsOf(key)) {
      const at = text.indexOf(fragment);
      if (at >= 0) {
        found.push(`…${text.slice(Math.max(0, at - 60), at + fragment.length + 20)}…`);
        break;
      }
    }
  }
  return found;
}

/** Every column of every table in the public schema (text, json, arrays and the rest), each value as text. */
export async function dumpDatabase(url: string): Promise<{ table: string; column: string; value: string }[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: columns } = await client.query<{ table_name: string; column_name: string }>(
      `SELECT table_name, column_name FROM information_schema.columns
       WHERE table_schema = 'public'
       ORDER BY table_name, ordinal_position`,
    );
    const out: { table: string; column: string; value: string }[] = [];
    for (const { table_name: table, column_name: column } of columns) {
      const { rows } = await client.query<{ v: string | null }>(`SELECT "${column}"::text AS v FROM "${table}"`);
      for (const r of rows) if (r.v !== null) out.push({ table, column, value: r.v });
    }
    return out;
  } finally {
    await client.end();
  }
}

/** Every line logged so far in this process that leaks one of these keys. */
export function leakedLogLines(keys: readonly string[]): string[] {
  return capturedLogs.flatMap((line) => leaksIn(line, keys));
}
