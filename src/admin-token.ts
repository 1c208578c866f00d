import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AdminToken } from './config.js';

/**
 * The development admin token used when ADMIN_TOKENS is unset: made on first start and kept
 * in DATA_DIR/admin-token (mode 0600). Returns it and the file's path (the path may be logged, the token never).
 */
export function developmentToken(dataDir: string): { token: AdminToken; path: string } {
  const path = resolve(join(dataDir, 'admin-token'));
  if (!existsSync(path)) {
    mkdirSync(dataDir, { recursive: true });
    writeFileSync(path, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flag: 'wx' });
  }
  chmodSync(path, 0o600);
  return { token: { name: 'dev', token: readFileSync(path, 'utf8').trim() }, path };
}
