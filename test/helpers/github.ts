// A stand-in for GitHub's secret-scanning side: ECDSA P-256 key pairs made at test time, the
// public keys served as GitHub serves them (meta/public_keys/secret_scanning) by a local HTTP
// server on port 0, and signed reports posted to the leak-report listener.
import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

interface TestLike {
  teardown(fn: () => unknown): void;
}

export interface SigningKey {
  identifier: string;
  privateKey: KeyObject;
  publicPem: string;
}

/** A fresh P-256 key pair with a GitHub-like identifier (hex SHA-256 of the public key). */
export function signingKey(): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  return { identifier: createHash('sha256').update(publicPem).digest('hex'), privateKey, publicPem };
}

/** GitHub's signature: ECDSA P-256 SHA-256 over the raw bytes, base64 of ASN.1 DER. */
export function signBody(body: string | Buffer, key: SigningKey): string {
  return sign('sha256', Buffer.from(body), { key: key.privateKey, dsaEncoding: 'der' }).toString('base64');
}

/** Serves `{public_keys: [...]}` for the keys published so far; counts the fetches. Keys can be retired, and the endpoint made to fail (502). */
export async function githubKeyServer(t: TestLike, initial: SigningKey[]) {
  let published = [...initial];
  let failing = false;
  let fetches = 0;
  const server = createServer((req, res) => {
    fetches++;
    if (failing) return res.writeHead(502).end();
    const body = JSON.stringify({
      public_keys: published.map((k, i) => ({
        key_identifier: k.identifier,
        key: k.publicPem,
        is_current: i === published.length - 1,
      })),
    });
    return res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/meta/public_keys/secret_scanning`,
    publish(key: SigningKey) {
      published.push(key);
    },
    retire(key: SigningKey) {
      published = published.filter((k) => k !== key);
    },
    fail(on: boolean) {
      failing = on;
    },
    get fetches() {
      return fetches;
    },
  };
}

export interface ReportEntry {
  token: string;
  type: string;
  url: string;
  source: string;
}

/** One entry as GitHub sends it. */
export function entry(token: string, i = 0): ReportEntry {
  return {
    token,
    type: 'otesse_api_key',
    url: `https://github.com/octo-org/leaky/blob/abc${i}/config.env`,
    source: 'content',
  };
}

export interface LeakResponse {
  status: number;
  body: any;
  headers: Headers;
  ms: number;
}

/** POST a body to the leak-report listener with the given signature headers. */
export async function postReport(
  port: number,
  body: string | Buffer,
  headers: Record<string, string>,
): Promise<LeakResponse> {
  const started = performance.now();
  const res = await fetch(`http://127.0.0.1:${port}/v1/secret-scanning/github`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* not JSON */
  }
  return { status: res.status, body: parsed, headers: res.headers, ms: performance.now() - started };
}

/** A report signed by `key` (or with an explicit signature), as GitHub posts it. */
export function signedReport(
  port: number,
  body: string,
  key: SigningKey,
  signature = signBody(body, key),
): Promise<LeakResponse> {
  return postReport(port, body, {
    'Github-Public-Key-Identifier': key.identifier,
    'Github-Public-Key-Signature': signature,
  });
}

export const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
