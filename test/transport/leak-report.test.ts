// The GitHub secret-scanning listener as GitHub and as an attacker see it: only a report signed
// by a key GitHub publishes, over exactly these bytes, changes anything; every refusal is a 4xx
// problem+json that changes nothing and is counted. Also the admin route for other scanners and
// /metrics moved to METRICS_PORT.
import t from 'tap';
import { capturedLogs, createKey, LIMITED_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';
import { entry, githubKeyServer, postReport, sha256, signBody, signedReport, signingKey } from '../helpers/github.js';
import { query } from '../helpers/db.js';
import { accountState, assertProblem } from '../helpers/http.js';
import { forgeKey, randomBase62, wrongSecret } from '../helpers/keys.js';
import { MAX_UNVOUCHED_VERIFICATIONS } from '../../src/service/leak-report-service.js';
import { characters, TEXT_LIMITS } from '../../src/domain/text.js';
import { metric, parseMetrics } from '../helpers/ops/prom.js';

const REPORTS = 'otesse_keys_leak_reports_total';

/** Every token these tests send: none may reach a log line (key-shaped or not). */
const sent = new Set<string>();
const GARBAGE = 'ghp_Z3JlYXRzZWNyZXRub3RvdXJzMDEyMzQ1Njc4OQ';

async function setup(t: { teardown(fn: () => unknown): void }, extra: Record<string, string> = {}) {
  const github = signingKey();
  const keys = await githubKeyServer(t, [github]);
  const app = await startTestApp(t, {
    LEAK_REPORT_PORT: '0',
    METRICS_PORT: '0',
    GITHUB_SECRET_SCANNING_KEYS_URL: keys.url,
    ...extra,
  });
  const scrape = async () => parseMetrics(await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text());
  return { github, keys, app, port: app.leakPort as number, scrape };
}

/** Everything a refused report could have touched. */
async function snapshot(app: TestApp, keys: { secret: string }[]) {
  const decisions = await Promise.all(keys.map((k) => app.authenticate({ key: k.secret }).then((r) => r.allowed)));
  return { acct_1: await accountState(app, 'acct_1'), acct_2: await accountState(app, 'acct_2'), decisions };
}

t.test(
  'refused reports: bad or missing signature, unknown key, tampered body, replay, malformed, too large',
  async (t) => {
    const { github, keys, app, port, scrape } = await setup(t);
    const real = [await createKey(app, 'acct_1'), await createKey(app, 'acct_2')];
    const before = await snapshot(app, real);
    t.same(before.decisions, [true, true], 'both keys work');
    const body = JSON.stringify([...real.map((k, i) => entry(k.secret, i)), entry(GARBAGE, 9)]);
    for (const k of [...real.map((r) => r.secret), GARBAGE]) sent.add(k);
    const other = JSON.stringify([entry(real[0]!.secret, 7)]);
    const impostor = signingKey();
    const unpublished = signingKey();
    const cases: [string, () => Promise<Awaited<ReturnType<typeof postReport>>>, number, string][] = [
      ['no signature headers', () => postReport(port, body, {}), 400, 'missing_signature'],
      [
        "a signature by another key under GitHub's identifier",
        () => signedReport(port, body, github, signBody(body, impostor)),
        401,
        'bad_signature',
      ],
      [
        'a signature that is not DER at all',
        () => signedReport(port, body, github, 'bm90IGEgc2lnbmF0dXJl'),
        401,
        'bad_signature',
      ],
      [
        'a signature by an identifier GitHub does not publish',
        () => signedReport(port, body, unpublished),
        401,
        'unknown_key',
      ],
      [
        'a tampered body (one token changed after signing)',
        () => signedReport(port, body.replace(real[1]!.secret, real[0]!.secret), github, signBody(body, github)),
        401,
        'bad_signature',
      ],
      [
        "a replay: a valid body with another body's valid signature",
        () => signedReport(port, body, github, signBody(other, github)),
        401,
        'bad_signature',
      ],
      ['signed, but not JSON', () => signedReport(port, `${body}]`, github), 400, 'malformed'],
      [
        'signed JSON of the wrong shape',
        () => signedReport(port, JSON.stringify({ token: real[0]!.secret }), github),
        400,
        'malformed',
      ],
      [
        'signed, more than 1,000 entries',
        () => signedReport(port, JSON.stringify(Array.from({ length: 1001 }, (_, i) => entry(`x${i}`, i))), github),
        400,
        'malformed',
      ],
      [
        'over the body size limit',
        () => signedReport(port, JSON.stringify([{ ...entry(real[0]!.secret), url: 'x'.repeat(1_100_000) }]), github),
        413,
        'too_large',
      ],
    ];
    for (const [name, send, status, outcome] of cases) {
      const res = await send();
      assertProblem(t, res, status);
      t.notMatch(JSON.stringify(res.body), /otesse_(live|test)_sk_/, `${name}: no token in the answer`);
      t.equal(metric(await scrape(), REPORTS, { outcome }) > 0, true, `${name}: counted as ${outcome}`);
    }
    const wrongType = await postReport(port, body, {
      'content-type': 'text/plain',
      'Github-Public-Key-Identifier': github.identifier,
      'Github-Public-Key-Signature': signBody(body, github),
    });
    assertProblem(t, wrongType, 415);
    const elsewhere = await fetch(`http://127.0.0.1:${port}/v1/accounts/acct_1/keys`);
    assertProblem(t, { status: elsewhere.status, body: await elsewhere.json(), headers: elsewhere.headers }, 404);
    const m = await scrape();
    t.same(
      ['missing_signature', 'bad_signature', 'unknown_key', 'malformed', 'too_large', 'unsupported_media_type'].map(
        (o) => metric(m, REPORTS, { outcome: o }),
      ),
      [1, 4, 1, 3, 1, 1],
      'each refusal counted once, by outcome',
    );
    t.equal(metric(m, REPORTS, { outcome: 'accepted' }), 0, 'nothing accepted');
    t.same(await snapshot(app, real), before, 'nothing changed: keys, audit logs and decisions as before');
    t.equal(
      keys.fetches,
      1,
      'the key list was fetched once (the unknown identifier did not refetch within the minute)',
    );

    const ok = await signedReport(port, body, github);
    t.equal(ok.status, 200, 'the same body with its own signature is accepted');
    t.same(
      ok.body.map((v: { label: string }) => v.label),
      ['true_positive', 'true_positive', 'false_positive'],
    );
  },
);

t.test(
  'a key GitHub publishes later is picked up on first sight; made-up identifiers refetch at most once a minute',
  async (t) => {
    const { github, keys, app, port } = await setup(t);
    const k = await createKey(app, 'acct_1');
    const body = JSON.stringify([entry(randomBase62(20))]);
    t.equal((await signedReport(port, body, github)).status, 200, 'first report: list fetched');
    t.equal(keys.fetches, 1);
    const rotated = signingKey();
    keys.publish(rotated);
    // Within the minute the unknown identifier cannot refetch: refused.
    t.equal(
      (await signedReport(port, body, rotated)).status,
      401,
      'a new identifier seen within a minute of the last fetch is unknown',
    );
    t.equal(keys.fetches, 1, 'no refetch within the minute');
    const second = await startTestApp(t, { LEAK_REPORT_PORT: '0', GITHUB_SECRET_SCANNING_KEYS_URL: keys.url }, app.env);
    const leakBody = JSON.stringify([entry(k.secret)]);
    sent.add(k.secret);
    const res = await signedReport(second.leakPort as number, leakBody, rotated);
    t.equal(res.status, 200, 'a replica that never saw the identifier fetches the list and accepts the report');
    t.same(
      res.body,
      [{ token_hash: sha256(k.secret), token_type: 'otesse_api_key', label: 'true_positive' }],
      'GitHub feedback format',
    );
    const flood = await Promise.all(
      Array.from({ length: 20 }, () => signedReport(second.leakPort as number, body, signingKey())),
    );
    t.ok(
      flood.every((r) => r.status === 401),
      '20 reports by made-up identifiers: all refused',
    );
    t.equal(keys.fetches, 2, 'and they cost GitHub no more fetches (the second replica fetched once)');
  },
);

t.test('the admin route: keys of this account only, audit actor = the admin', async (t) => {
  const { app } = await setup(t);
  const mine = await createKey(app, 'acct_1');
  const theirs = await createKey(app, 'acct_2');
  const forged = wrongSecret(mine.secret);
  const unknown = forgeKey('live', randomBase62(12), randomBase62(32));
  const theirsBefore = await accountState(app, 'acct_2');
  const keys = [mine.secret, theirs.secret, forged, unknown, GARBAGE, mine.secret];
  for (const k of keys) sent.add(k);
  const res = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', {
    keys,
    source: 'trufflehog',
    url: 'https://pastebin.example/abc',
  });
  t.equal(res.status, 200);
  t.same(
    res.body.results.map((r: { label: string }) => r.label),
    ['true_positive', 'false_positive', 'false_positive', 'false_positive', 'false_positive', 'true_positive'],
    'labels in order',
  );
  t.same(
    res.body.results.map((r: { token_hash: string }) => r.token_hash),
    keys.map(sha256),
    'token hashes in order',
  );
  t.same(res.body.results[0], {
    token_hash: sha256(mine.secret),
    token_type: 'otesse_api_key',
    label: 'true_positive',
    key_id: mine.id,
    outcome: 'revoked',
  });
  t.equal(res.body.results[1].key_id, null, "another account's key is not even named");
  t.notMatch(JSON.stringify(res.body), /otesse_(live|test)_sk_/, 'no token in the answer');
  t.equal((await app.authenticate({ key: mine.secret })).reason, 'KEY_REVOKED', 'the key of this account is revoked');
  t.equal((await app.authenticate({ key: theirs.secret })).allowed, true, "the other account's key still works");
  t.same(await accountState(app, 'acct_2'), theirsBefore, 'nothing changed on the other account');
  const audit = (await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data as {
    actor: string;
    action: string;
    changes: Record<string, unknown>;
  }[];
  const revoked = audit.filter((e) => e.action === 'key.revoked');
  t.equal(revoked.length, 1, 'one revoke, though the key was listed twice');
  t.equal(revoked[0]?.actor, 'admin', 'audit actor: the admin token name');
  t.equal(
    revoked[0]?.changes['reason'],
    'leaked: trufflehog https://pastebin.example/abc',
    'reason names the source and the URL',
  );
  const activity = (await app.api('GET', `/v1/accounts/acct_1/keys/${mine.id}/activity`)).body;
  t.ok(
    activity.alerts.some(
      (a: { type: string; message: string }) =>
        a.type === 'leaked' && a.message.includes('https://pastebin.example/abc'),
    ),
    'leaked alert',
  );

  const again = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [mine.secret], source: 'trufflehog' });
  t.same(again.body.results[0].outcome, 'already_revoked', 'reported again: already revoked, not revoked twice');
  t.equal(
    (await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data.filter(
      (e: { action: string }) => e.action === 'key.revoked',
    ).length,
    1,
  );

  const before = await accountState(app, 'acct_1');
  for (const bad of [
    { keys: [], source: 'x' },
    { keys: ['a'] },
    { keys: ['a'], source: 'x\u0000' },
    { keys: ['a'], source: 'x', extra: 1 },
    { keys: Array.from({ length: 1001 }, () => 'a'), source: 'x' },
  ]) {
    const r = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', bad);
    assertProblem(t, { ...r, headers: r.headers }, 400);
  }
  t.equal(
    (await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [mine.secret], source: 'x' }, LIMITED_TOKEN))
      .status,
    403,
    'a token limited to another account: 403',
  );
  t.equal(
    (
      await app.api(
        'POST',
        '/v1/accounts/acct_1/keys/leaked',
        { keys: [mine.secret], source: 'x' },
        'wrong-token-0123456789abcdef',
      )
    ).status,
    401,
  );
  t.same(await accountState(app, 'acct_1'), before, 'refused requests changed nothing');
  const spec = (await app.api('GET', '/openapi.json')).body;
  t.ok(spec.paths['/v1/accounts/{accountId}/keys/leaked']?.post?.responses?.['200'], 'documented in OpenAPI');
});

t.test("GitHub's key list unreachable and nothing cached: 503, nothing changed, counted", async (t) => {
  const github = signingKey();
  // Port 9 (discard) refuses connections here: the list cannot be read.
  const app = await startTestApp(t, {
    LEAK_REPORT_PORT: '0',
    GITHUB_SECRET_SCANNING_KEYS_URL: 'http://127.0.0.1:9/meta/public_keys/secret_scanning',
  });
  const k = await createKey(app, 'acct_1');
  sent.add(k.secret);
  const before = await snapshot(app, [k]);
  const res = await signedReport(app.leakPort as number, JSON.stringify([entry(k.secret)]), github);
  assertProblem(t, res, 503);
  t.same(await snapshot(app, [k]), before, 'nothing changed: GitHub retries later');
  t.equal(
    metric(parseMetrics(await (await fetch(`${app.url}/metrics`)).text()), REPORTS, { outcome: 'keys_unavailable' }),
    1,
    'counted as keys_unavailable',
  );
});

/** `count` well-formed tokens (valid checksums) naming the given keys' ids with wrong secrets, round robin. */
const wrongSecrets = (keys: { secret: string }[], count: number) =>
  Array.from({ length: count }, (_, i) => wrongSecret(keys[i % keys.length]!.secret));
/** The same token with its last checksum character changed: fails the offline checks. */
const badChecksum = (token: string) => `${token.slice(0, -1)}${token.endsWith('a') ? 'b' : 'a'}`;
/** Keys stored before check values existed: only argon2 can tell their wrong secrets. */
const dropChecks = (app: TestApp, account: string) =>
  query(app.env.DATABASE_URL as string, 'UPDATE api_keys SET secret_check = NULL WHERE account_id = $1', [account]);
/** The revoke reasons of an account's keys, by key id. */
async function reasons(app: TestApp, account: string): Promise<Map<string, string>> {
  const audit = (await app.api('GET', `/v1/accounts/${account}/audit-log?limit=100`)).body.data as {
    action: string;
    key_id: string;
    changes: { reason?: string };
  }[];
  return new Map(audit.filter((e) => e.action === 'key.revoked').map((e) => [e.key_id, e.changes.reason ?? '']));
}
/** A URL that puts an emoji across the 500th UTF-16 unit of the reason `leaked: <channel> <url>`. */
function urlCutInEmoji(channel: string): string {
  const head = 'https://github.com/octo-org/leaky/blob/abc/';
  return `${head}${'a'.repeat(499 - `leaked: ${channel} ${head}`.length)}🚀🚀/config.env`;
}

t.test('400 wrong secrets for real key ids (valid checksums) cost no argon2; 400 bad checksums neither', async (t) => {
  const { github, app, port } = await setup(t);
  const real = await Promise.all(Array.from({ length: 10 }, () => createKey(app, 'acct_1')));
  const wrong = wrongSecrets(real, 400);
  const garbled = wrong.map(badChecksum);
  for (const k of [...real.map((r) => r.secret), ...wrong, ...garbled]) sent.add(k);
  const before = await accountState(app, 'acct_1');
  for (const [name, tokens] of [
    ['wrong secrets', wrong],
    ['bad checksums', garbled],
  ] as const) {
    const start = app.hasher.verifications;
    const admin = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: tokens, source: 'scanner' });
    t.equal(admin.status, 200);
    t.ok(
      admin.body.results.every((r: { label: string }) => r.label === 'false_positive'),
      `admin route, ${name}: 400 false positives`,
    );
    const gh = await signedReport(port, JSON.stringify(tokens.map((tok, i) => entry(tok, i))), github);
    t.equal(gh.status, 200);
    t.ok(
      gh.body.length === 400 && gh.body.every((r: { label: string }) => r.label === 'false_positive'),
      `GitHub, ${name}: 400 false positives`,
    );
    t.equal(app.hasher.verifications - start, 0, `${name}: two reports of 400 tokens, zero argon2 verifications`);
  }
  t.same(await accountState(app, 'acct_1'), before, 'nothing changed');
  const decisions = await Promise.all(real.map((k) => app.authenticate({ key: k.secret })));
  t.ok(
    decisions.every((d) => d.allowed),
    'every key still works',
  );
});

t.test(
  `keys without a check value: at most ${MAX_UNVOUCHED_VERIFICATIONS} argon2 verifications per report, the rest not_checked; Authenticate stays responsive`,
  async (t) => {
    const { github, app, port } = await setup(t, {
      ARGON2_MEMORY_KIB: '19456',
      ARGON2_TIME_COST: '2',
      ARGON2_MAX_CONCURRENCY: '1',
      ARGON2_ADMIN_CONCURRENCY: '1',
    });
    const legacy = await Promise.all(Array.from({ length: 10 }, () => createKey(app, 'acct_legacy')));
    const leakedLegacy = await createKey(app, 'acct_legacy');
    await dropChecks(app, 'acct_legacy');
    const vouched = await createKey(app, 'acct_legacy');
    const cold = await createKey(app, 'acct_2');
    const wrong = wrongSecrets(legacy, 400);
    for (const k of [...legacy, leakedLegacy, vouched, cold].map((r) => r.secret).concat(wrong)) sent.add(k);

    const start = app.hasher.verifications;
    const report = app
      .api('POST', '/v1/accounts/acct_legacy/keys/leaked', { keys: wrong, source: 'scanner' })
      .then((r) => ({ r, at: performance.now() }));
    await new Promise((r) => setTimeout(r, 50));
    const asked = performance.now();
    const auth = await app.authenticate({ key: cold.secret });
    const authMs = performance.now() - asked;
    const { r: res, at: reportDone } = await report;
    t.equal(res.status, 200);
    t.equal(
      app.hasher.verifications - start - 1,
      MAX_UNVOUCHED_VERIFICATIONS,
      `400 wrong secrets: ${MAX_UNVOUCHED_VERIFICATIONS} argon2 verifications, not 400`,
    );
    const outcomes = res.body.results.map(
      (v: { label: string | null; outcome: string | null }) => `${v.label}/${v.outcome}`,
    );
    t.same(
      outcomes,
      [
        ...Array(MAX_UNVOUCHED_VERIFICATIONS).fill('false_positive/null'),
        ...Array(400 - MAX_UNVOUCHED_VERIFICATIONS).fill('null/not_checked'),
      ],
      'the first 20 checked and false, the rest not_checked (in report order)',
    );
    t.equal(auth.allowed, true, 'a cold Authenticate during the report is allowed');
    t.ok(
      asked + authMs < reportDone,
      `and answered (${authMs.toFixed(0)} ms) before the report: the report hashes in the admin lane, not in Authenticate's`,
    );

    // GitHub: a real legacy key within the budget and a real key vouched for by its check value past it are both revoked.
    const tokens = [leakedLegacy.secret, ...wrong.slice(0, 399), vouched.secret];
    const before = app.hasher.verifications;
    const gh = await signedReport(port, JSON.stringify(tokens.map((tok, i) => entry(tok, i))), github);
    t.equal(gh.status, 200);
    t.equal(
      app.hasher.verifications - before,
      MAX_UNVOUCHED_VERIFICATIONS + 1,
      'the budget, plus one for the vouched real key',
    );
    t.equal(
      gh.body.length,
      MAX_UNVOUCHED_VERIFICATIONS + 1,
      'feedback only for the tokens checked: none for those not_checked',
    );
    t.same(
      gh.body
        .filter((v: { label: string }) => v.label === 'true_positive')
        .map((v: { token_hash: string }) => v.token_hash),
      [sha256(leakedLegacy.secret), sha256(vouched.secret)],
      'both real keys are true positives',
    );
    for (const k of [leakedLegacy, vouched])
      t.equal((await app.authenticate({ key: k.secret })).reason, 'KEY_REVOKED', `${k.id} revoked`);
    t.ok(
      (await Promise.all(legacy.map((k) => app.authenticate({ key: k.secret })))).every((d) => d.allowed),
      'the keys named with wrong secrets still work',
    );

    const replay = app.hasher.verifications;
    const again = await signedReport(port, JSON.stringify([entry(vouched.secret)]), github);
    t.same(
      again.body.map((v: { label: string }) => v.label),
      ['true_positive'],
      'a revoked key reported again: still a true positive',
    );
    t.equal(
      app.hasher.verifications - replay,
      0,
      'settled by its check value: a replayed report of revoked keys costs no argon2',
    );
  },
);

t.test('one odd URL does not fail a GitHub report: every real key is revoked, the reasons made readable', async (t) => {
  const { github, app, port } = await setup(t);
  const [a, b, c, d] = (await Promise.all(Array.from({ length: 4 }, () => createKey(app, 'acct_1')))) as [
    { id: string; secret: string },
    { id: string; secret: string },
    { id: string; secret: string },
    { id: string; secret: string },
  ];
  for (const k of [a, b, c, d]) sent.add(k.secret);
  const body = JSON.stringify([
    { ...entry(a.secret, 1), url: 'https://github.com/octo-org/leaky/blob/abc/\u202egnp.exe' },
    { ...entry(b.secret, 2), url: urlCutInEmoji('github') },
    { ...entry(c.secret, 3), url: 'https://github.com/octo-org/leaky/blob/abc/a\u0007b\u0000c\u0085' },
    { ...entry(d.secret, 4), source: 'content\u2066\ud83d' },
    entry(GARBAGE, 5),
  ]);
  const res = await signedReport(port, body, github);
  t.equal(res.status, 200, 'accepted');
  t.same(
    res.body.map((v: { label: string }) => v.label),
    ['true_positive', 'true_positive', 'true_positive', 'true_positive', 'false_positive'],
  );
  const decisions = await Promise.all([a, b, c, d].map((k) => app.authenticate({ key: k.secret })));
  t.same(
    decisions.map((x) => x.reason),
    Array(4).fill('KEY_REVOKED'),
    'all four real keys revoked',
  );
  const why = await reasons(app, 'acct_1');
  t.equal(
    why.get(a.id),
    'leaked: github https://github.com/octo-org/leaky/blob/abc/\\u{202E}gnp.exe',
    'U+202E shown as \\u{202E}',
  );
  const cut = why.get(b.id) ?? '';
  t.equal(characters(cut), TEXT_LIMITS.reason, 'the long reason is cut to 500 characters');
  t.ok(cut.endsWith('a🚀') && !/\p{Cs}/u.test(cut), 'on a character boundary: the emoji at the cut is whole');
  t.equal(
    why.get(c.id),
    'leaked: github https://github.com/octo-org/leaky/blob/abc/a\\u{7}b\\u{0}c\\u{85}',
    'C0, NUL and C1 escaped',
  );
  const activity = (await app.api('GET', `/v1/accounts/acct_1/keys/${d.id}/activity`)).body;
  t.ok(
    activity.alerts.some(
      (x: { type: string; message: string }) => x.type === 'leaked' && x.message.includes('content\\u{2066}\\u{D83D}'),
    ),
    'the source is kept readable in the leaked alert',
  );
});

t.test(
  'the admin route: unreadable source or URL refused (400, nothing changed); a long URL cut between characters',
  async (t) => {
    const { app } = await setup(t);
    const mine = await createKey(app, 'acct_1');
    sent.add(mine.secret);
    const before = await accountState(app, 'acct_1');
    const bad: [string, Record<string, unknown>][] = [
      ['U+202E in source', { source: 'scanner\u202e' }],
      ['C1 in source', { source: 'scanner\u0085' }],
      ['U+2066 in url', { source: 'scanner', url: 'https://pastebin.example/\u2066x' }],
      ['a lone surrogate in url', { source: 'scanner', url: 'https://pastebin.example/\ud83d' }],
    ];
    for (const [name, fields] of bad) {
      for (const keys of [[mine.secret], [GARBAGE]]) {
        const r = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys, ...fields });
        t.equal(r.status, 400, `${name} (${keys[0] === GARBAGE ? 'no real key' : 'a real key'}): 400`);
      }
    }
    t.same(await accountState(app, 'acct_1'), before, 'nothing changed');
    t.equal((await app.authenticate({ key: mine.secret })).allowed, true, 'the key still works');
    const url = urlCutInEmoji('trufflehog');
    const res = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', {
      keys: [mine.secret],
      source: 'trufflehog',
      url,
    });
    t.equal(res.status, 200, 'a URL that puts an emoji across the 500th unit of the reason: accepted');
    t.equal(res.body.results[0].outcome, 'revoked');
    const reason = (await reasons(app, 'acct_1')).get(mine.id) ?? '';
    t.ok(
      characters(reason) === TEXT_LIMITS.reason && reason.endsWith('a🚀'),
      'the reason is cut to 500 characters, the emoji whole',
    );
  },
);

t.test('METRICS_PORT: /metrics only on its own listener; no token reaches a log line', async (t) => {
  const { app } = await setup(t);
  t.equal((await fetch(`${app.url}/metrics`)).status, 404, 'the admin port does not serve /metrics');
  const res = await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`);
  t.equal(res.status, 200);
  t.match(
    await res.text(),
    /otesse_keys_leak_reports_total/,
    'the metrics listener serves the leak counters with the rest',
  );
  t.equal((await fetch(`http://127.0.0.1:${app.metricsPort}/v1/scopes`)).status, 404, 'and nothing else');
  const logs = capturedLogs.join('');
  t.ok(
    logs.includes('otesse key service started') && sent.size >= 8,
    `${capturedLogs.length} log lines captured, ${sent.size} tokens sent`,
  );
  t.same(
    [...sent].filter((token) => logs.includes(token)),
    [],
    'no token sent in any report appears in any log line',
  );
  t.notMatch(logs, /otesse_(live|test)_sk_[0-9A-Za-z]{20}/, 'nor any full key-shaped token');
});
