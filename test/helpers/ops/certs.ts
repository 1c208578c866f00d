import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

interface TestLike {
  teardown(fn: () => unknown): void;
}

/** PEM files made at test time with the openssl CLI (paths, plus their contents). */
export interface TestPki {
  dir: string;
  /** The CA that signs the server and the trusted client. */
  ca: string;
  server: { cert: string; key: string };
  client: { cert: string; key: string };
  /** A client certificate from another, untrusted CA (and that CA). */
  stranger: { cert: string; key: string; ca: string };
  read(path: string): Buffer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** An EC P-256 key and a certificate signed by `caName` (or self-signed when it is undefined). */
function issue(dir: string, name: string, subject: string, extensions: string, caName?: string): void {
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
  writeFileSync(join(dir, `${name}.cnf`), `[req]\ndistinguished_name = dn\n[dn]\n[v3]\n${extensions}\n`);
  if (!caName) {
    openssl(
      dir,
      'req',
      '-x509',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      subject,
      '-days',
      '2',
      '-config',
      `${name}.cnf`,
      '-extensions',
      'v3',
      '-out',
      `${name}.crt`,
    );
    return;
  }
  openssl(dir, 'req', '-new', '-key', `${name}.key`, '-subj', subject, '-config', `${name}.cnf`, '-out', `${name}.csr`);
  openssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    `${caName}.crt`,
    '-CAkey',
    `${caName}.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    `${name}.cnf`,
    '-extensions',
    'v3',
    '-out',
    `${name}.crt`,
  );
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign';
const LEAF = 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature';

/** A CA, a server certificate (localhost, 127.0.0.1), a client certificate, and one from a second CA. */
export function makePki(t: TestLike): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'otesse-pki-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  issue(dir, 'ca', '/CN=Otesse test CA', CA_EXT);
  issue(
    dir,
    'server',
    '/CN=localhost',
    `${LEAF}\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1`,
    'ca',
  );
  issue(dir, 'client', '/CN=gateway', `${LEAF}\nextendedKeyUsage=clientAuth`, 'ca');
  issue(dir, 'other-ca', '/CN=Some other CA', CA_EXT);
  issue(dir, 'stranger', '/CN=gateway', `${LEAF}\nextendedKeyUsage=clientAuth`, 'other-ca');
  const p = (n: string) => join(dir, n);
  return {
    dir,
    ca: p('ca.crt'),
    server: { cert: p('server.crt'), key: p('server.key') },
    client: { cert: p('client.crt'), key: p('client.key') },
    stranger: { cert: p('stranger.crt'), key: p('stranger.key'), ca: p('other-ca.crt') },
    read: (path) => readFileSync(path),
  };
}
