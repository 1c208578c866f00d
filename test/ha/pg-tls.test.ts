// TLS to PostgreSQL with certificates this test makes. The shared PostgreSQL runs without TLS, so
// the TLS endpoint is a PgBouncer in front of it that requires TLS from its clients and presents a
// server certificate from the test CA (localhost, 127.0.0.1): what the service meets is a
// PostgreSQL protocol server over TLS, as with a managed PostgreSQL.
import pg from 'pg';
import t from 'tap';
import { startApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/observability/logger.js';
import { checkServer } from '../../src/store/pg-connection.js';
import { createKey, startTestApp, testEnv } from '../helpers/app.js';
import { makePki } from '../helpers/ops/certs.js';
import { startPgBouncer } from '../helpers/pgbouncer.js';

const databaseName = (url: string) => new URL(url).pathname.slice(1);
const endpoint = (url: string, tlsCaFile?: string) => ({
  url,
  urlName: 'DATABASE_URL',
  tlsCaFile,
  tlsCaName: 'DATABASE_TLS_CA',
});

t.test('DATABASE_TLS_CA: the service talks TLS to PostgreSQL, verifying certificate and host name', async (t) => {
  const pki = makePki(t);
  const env = await testEnv(t);
  const db = databaseName(env.DATABASE_URL ?? '');
  const bouncer = await startPgBouncer(t, { tls: pki.server, listen: ['127.0.0.1', '127.0.0.2'] });
  const plain = new pg.Client({ connectionString: bouncer.url(db) });
  await t.rejects(plain.connect(), 'the endpoint refuses clients without TLS');
  // It never connected: nothing to close.
  await plain.end().catch(() => undefined);

  const app = await startTestApp(
    t,
    {},
    { ...env, DATABASE_URL: bouncer.url(db), DATABASE_MIGRATION_URL: bouncer.url(db), DATABASE_TLS_CA: pki.ca },
  );
  const key = await createKey(app);
  t.equal((await app.authenticate({ key: key.secret })).allowed, true, 'migrations, create and authenticate over TLS');
  t.match(bouncer.log(), /login attempt: db=\S+ user=postgres tls=TLSv1\.[23]/, 'the connections were TLS');

  t.test("a CA that did not sign the server's certificate: refused at start, naming DATABASE_TLS_CA", async (t) => {
    const config = loadConfig({ ...env, DATABASE_URL: bouncer.url(db), DATABASE_TLS_CA: pki.stranger.ca });
    await t.rejects(startApp(config, createLogger('silent')), {
      message:
        /^DATABASE_TLS_CA: the PostgreSQL server's certificate at DATABASE_URL does not verify against this CA \([A-Z_]+\)$/,
    });
  });

  t.test(
    'DATABASE_MIGRATION_URL is held to the same TLS: a host its certificate does not name is refused, naming it',
    async (t) => {
      const config = loadConfig({
        ...env,
        DATABASE_URL: bouncer.url(db),
        DATABASE_MIGRATION_URL: bouncer.url(db, { host: '127.0.0.2' }),
        DATABASE_TLS_CA: pki.ca,
      });
      await t.rejects(startApp(config, createLogger('silent')), {
        message: /^DATABASE_MIGRATION_URL: the PostgreSQL server's certificate does not name the host in the URL/,
      });
    },
  );

  t.test('a host name the certificate does not carry: refused, naming DATABASE_URL', async (t) => {
    await t.rejects(checkServer(endpoint(bouncer.url(db, { host: '127.0.0.2' }), pki.ca)), {
      message: /^DATABASE_URL: the PostgreSQL server's certificate does not name the host/,
    });
  });

  t.test('sslmode=verify-full with sslrootcert in the URL is honoured the same way', async (t) => {
    await t.resolves(
      checkServer(endpoint(bouncer.url(db, { params: `sslmode=verify-full&sslrootcert=${pki.ca}` }))),
      'the right CA',
    );
    await t.rejects(
      checkServer(endpoint(bouncer.url(db, { params: `sslmode=verify-full&sslrootcert=${pki.stranger.ca}` }))),
      { message: /^DATABASE_URL \(sslrootcert, or the system's CAs\): the PostgreSQL server's certificate/ },
      'another CA',
    );
    await t.resolves(
      checkServer(endpoint(bouncer.url(db, { params: 'sslmode=verify-full' }), pki.ca)),
      'verify-full beside DATABASE_TLS_CA',
    );
  });

  t.test('a server without TLS while DATABASE_TLS_CA is set: refused, not plaintext', async (t) => {
    await t.rejects(checkServer(endpoint(env.DATABASE_URL ?? '', pki.ca)), {
      message: /^DATABASE_URL: the PostgreSQL server does not offer TLS/,
    });
  });
});

t.test('configuration: a URL cannot weaken DATABASE_TLS_CA, and the CA file must be readable', async (t) => {
  const pki = makePki(t);
  const base = { DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', DATABASE_TLS_CA: pki.ca };
  const refused: [string, Record<string, string>, RegExp][] = [
    [
      'sslmode=disable',
      { DATABASE_URL: `${base.DATABASE_URL}?sslmode=disable` },
      /^DATABASE_URL: an sslmode other than verify-full/,
    ],
    [
      'sslmode=require on the migration URL',
      { DATABASE_MIGRATION_URL: `${base.DATABASE_URL}?sslmode=require` },
      /^DATABASE_MIGRATION_URL: an sslmode other than verify-full/,
    ],
    [
      'a second CA in the URL',
      { DATABASE_URL: `${base.DATABASE_URL}?sslrootcert=${pki.ca}` },
      /^DATABASE_URL: sslrootcert cannot go with DATABASE_TLS_CA/,
    ],
    ['an unreadable CA file', { DATABASE_TLS_CA: `${pki.dir}/missing.pem` }, /^DATABASE_TLS_CA: cannot read the file/],
    [
      'a file without a certificate',
      { DATABASE_TLS_CA: pki.server.key },
      /^DATABASE_TLS_CA: the file holds no PEM certificate/,
    ],
    [
      'an unreadable sslrootcert',
      { DATABASE_TLS_CA: '', DATABASE_URL: `${base.DATABASE_URL}?sslmode=verify-full&sslrootcert=/nonexistent.pem` },
      /^DATABASE_URL: sslrootcert: cannot read the file/,
    ],
    ['a CA without a server URL', { DATABASE_URL: '' }, /^DATABASE_URL: required when DATABASE_TLS_CA is set/],
  ];
  for (const [name, change, message] of refused) {
    const env: Record<string, string | undefined> = { ...base, ...change };
    for (const [k, v] of Object.entries(env)) if (v === '') delete env[k];
    t.throws(() => loadConfig(env), { name: 'ConfigError', message }, name);
  }
  t.doesNotThrow(
    () => loadConfig({ ...base, DATABASE_URL: `${base.DATABASE_URL}?sslmode=verify-full` }),
    'verify-full beside the CA file',
  );
});
