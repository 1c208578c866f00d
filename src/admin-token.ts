import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, fstatSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { AdminToken } from './config.js';

const TOKEN = /^[A-Za-z0-9_-]{32}$/;
const { O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_WRONLY } = constants;

/** Read the token file without following a symlink; its contents must be one token we made. */
function readToken(path: string): string {
  const fd = openSync(path, O_RDONLY | O_NOFOLLOW);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile() || stat.size > 256) throw new Error(`${path} is not a development token file`);
    if ((stat.mode & 0o077) !== 0) fchmodSync(fd, 0o600);
    const buffer = Buffer.alloc(stat.size);
    readSync(fd, buffer, 0, stat.size, 0);
    const token = buffer.toString('utf8').trim();
    if (!TOKEN.test(token)) throw new Error(`${path} does not hold a development token (delete it to make a new one)`);
    return token;
  } finally {
    closeSync(fd);
  }
}

/**
 * The development admin token used when ADMIN_TOKENS is unset: made on first start and kept in
 * DATA_DIR/admin-token (mode 0600, created exclusively, never through a symlink). Returns it and the
 * file's path (the path may be logged, the token never).
 */
export function developmentToken(dataDir: string): { token: AdminToken; path: string } {
  const path = resolve(join(dataDir, 'admin-token'));
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  try {
    const fd = openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      writeSync(fd, `${randomBytes(24).toString('base64url')}\n`);
    } finally {
      closeSync(fd);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return { token: { name: 'dev', token: readToken(path) }, path };
}
