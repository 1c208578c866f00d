// The GitHub secret-scanning listener as GitHub and as an attacker see it: only a report signed
// by a key GitHub publishes, over exactly these bytes, changes anything; every refusal is a 4xx
// problem+json that changes nothing and is counted. Also the admin route for other scanners and
// /metrics moved to METRICS_PORT.
import t from 'tap';
import { capturedLogs, createKey, LIMITED_TOKEN, startTestApp, type TestApp } from '../helpers/app.js';
import { entry, githubKeyServer, postReport, sha256, signBody, signedReport, signingKey } from '../helpers/github.js';
import { accountState, assertProblem } from '../helpers/http.js';
import { forgeKey, randomBase62, wrongSecret } from '../helpers/keys.js';
import { metric, parseMetrics } from '../helpers/ops/prom.js';

const REPORTS = 'otesse_keys_leak_reports_total';

/** Every token these tests send: none may reach a log line (key-shaped or not). */
const sent = new Set<string>();
const GARBAGE = 'ghp_Z3JlYXRzZWNyZXRub3RvdXJzMDEyMzQ1Njc4OQ';

async function setup(t: { teardown(fn: () => unknown): void }) {
  const github = signingKey();
  const keys = await githubKeyServer(t, [github]);
  const app = await startTestApp(t, { LEAK_REPORT_PORT: '0', METRICS_PORT: '0', GITHUB_SECRET_SCANNING_KEYS_URL: keys.url });
  const scrape = async () => parseMetrics(await (await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`)).text());
  return { github, keys, app, port: app.leakPort as number, scrape };
}

/** Everything a refused report could have touched. */
async function snapshot(app: TestApp, keys: { secret: string }[]) {
  const decisions = await Promise.all(keys.map((k) => app.authenticate({ key: k.secret }).then((r) => r.allowed)));
  return { acct_1: await accountState(app, 'acct_1'), acct_2: await accountState(app, 'acct_2'), decisions };
}

t.test('refused reports: bad or missing signature, unknown key, tampered body, replay, malformed, too large', async (t) => {
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
    ['a signature by another key under GitHub\'s identifier', () => signedReport(port, body, github, signBody(body, impostor)), 401, 'bad_signature'],
    ['a signature that is not DER at all', () => signedReport(port, body, github, 'bm90IGEgc2lnbmF0dXJl'), 401, 'bad_signature'],
    ['a signature by an identifier GitHub does not publish', () => signedReport(port, body, unpublished), 401, 'unknown_key'],
    ['a tampered body (one token changed after signing)', () => signedReport(port, body.replace(real[1]!.secret, real[0]!.secret), github, signBody(body, github)), 401, 'bad_signature'],
    ['a replay: a valid body with another body\'s valid signature', () => signedReport(port, body, github, signBody(other, github)), 401, 'bad_signature'],
    ['signed, but not JSON', () => signedReport(port, `${body}]`, github), 400, 'malformed'],
    ['signed JSON of the wrong shape', () => signedReport(port, JSON.stringify({ token: real[0]!.secret }), github), 400, 'malformed'],
    ['signed, more than 1,000 entries', () => signedReport(port, JSON.stringify(Array.from({ length: 1001 }, (_, i) => entry(`x${i}`, i))), github), 400, 'malformed'],
    ['signed, a URL with a control character', () => signedReport(port, JSON.stringify([{ ...entry(real[0]!.secret), url: 'https://x/\u0007' }]), github), 400, 'malformed'],
    ['over the body size limit', () => signedReport(port, JSON.stringify([{ ...entry(real[0]!.secret), url: 'x'.repeat(1_100_000) }]), github), 413, 'too_large'],
  ];
  for (const [name, send, status, outcome] of cases) {
    const res = await send();
    assertProblem(t, res, status);
    t.notMatch(JSON.stringify(res.body), /otesse_(live|test)_sk_/, `${name}: no token in the answer`);
    t.equal(metric(await scrape(), REPORTS, { outcome }) > 0, true, `${name}: counted as ${outcome}`);
  }
  const wrongType = await postReport(port, body, { 'content-type': 'text/plain', 'Github-Public-Key-Identifier': github.identifier, 'Github-Public-Key-Signature': signBody(body, github) });
  assertProblem(t, wrongType, 415);
  const elsewhere = await fetch(`http://127.0.0.1:${port}/v1/accounts/acct_1/keys`);
  assertProblem(t, { status: elsewhere.status, body: await elsewhere.json(), headers: elsewhere.headers }, 404);
  const m = await scrape();
  t.same(['missing_signature', 'bad_signature', 'unknown_key', 'malformed', 'too_large', 'unsupported_media_type'].map((o) => metric(m, REPORTS, { outcome: o })),
    [1, 4, 1, 4, 1, 1], 'each refusal counted once, by outcome');
  t.equal(metric(m, REPORTS, { outcome: 'accepted' }), 0, 'nothing accepted');
  t.same(await snapshot(app, real), before, 'nothing changed: keys, audit logs and decisions as before');
  t.equal(keys.fetches, 1, 'the key list was fetched once (the unknown identifier did not refetch within the minute)');

  const ok = await signedReport(port, body, github);
  t.equal(ok.status, 200, 'the same body with its own signature is accepted');
  t.same(ok.body.map((v: { label: string }) => v.label), ['true_positive', 'true_positive', 'false_positive']);
});

t.test('a key GitHub publishes later is picked up on first sight; made-up identifiers refetch at most once a minute', async (t) => {
  const { github, keys, app, port } = await setup(t);
  const k = await createKey(app, 'acct_1');
  const body = JSON.stringify([entry(randomBase62(20))]);
  t.equal((await signedReport(port, body, github)).status, 200, 'first report: list fetched');
  t.equal(keys.fetches, 1);
  const rotated = signingKey();
  keys.publish(rotated);
  // Within the minute the unknown identifier cannot refetch: refused.
  t.equal((await signedReport(port, body, rotated)).status, 401, 'a new identifier seen within a minute of the last fetch is unknown');
  t.equal(keys.fetches, 1, 'no refetch within the minute');
  const second = await startTestApp(t, { LEAK_REPORT_PORT: '0', GITHUB_SECRET_SCANNING_KEYS_URL: keys.url }, app.env);
  const leakBody = JSON.stringify([entry(k.secret)]);
  sent.add(k.secret);
  const res = await signedReport(second.leakPort as number, leakBody, rotated);
  t.equal(res.status, 200, 'a replica that never saw the identifier fetches the list and accepts the report');
  t.same(res.body, [{ token_hash: sha256(k.secret), token_type: 'otesse_api_key', label: 'true_positive' }], 'GitHub feedback format');
  const flood = await Promise.all(Array.from({ length: 20 }, () => signedReport(second.leakPort as number, body, signingKey())));
  t.ok(flood.every((r) => r.status === 401), '20 reports by made-up identifiers: all refused');
  t.equal(keys.fetches, 2, 'and they cost GitHub no more fetches (the second replica fetched once)');
});

t.test('the admin route: keys of this account only, audit actor = the admin', async (t) => {
  const { app } = await setup(t);
  const mine = await createKey(app, 'acct_1');
  const theirs = await createKey(app, 'acct_2');
  const forged = wrongSecret(mine.secret);
  const unknown = forgeKey('live', randomBase62(12), randomBase62(32));
  const theirsBefore = await accountState(app, 'acct_2');
  const keys = [mine.secret, theirs.secret, forged, unknown, GARBAGE, mine.secret];
  for (const k of keys) sent.add(k);
  const res = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys, source: 'trufflehog', url: 'https://pastebin.example/abc' });
  t.equal(res.status, 200);
  t.same(res.body.results.map((r: { label: string }) => r.label),
    ['true_positive', 'false_positive', 'false_positive', 'false_positive', 'false_positive', 'true_positive'], 'labels in order');
  t.same(res.body.results.map((r: { token_hash: string }) => r.token_hash), keys.map(sha256), 'token hashes in order');
  t.same(res.body.results[0], { token_hash: sha256(mine.secret), token_type: 'otesse_api_key', label: 'true_positive', key_id: mine.id, outcome: 'revoked' });
  t.equal(res.body.results[1].key_id, null, "another account's key is not even named");
  t.notMatch(JSON.stringify(res.body), /otesse_(live|test)_sk_/, 'no token in the answer');
  t.equal((await app.authenticate({ key: mine.secret })).reason, 'KEY_REVOKED', 'the key of this account is revoked');
  t.equal((await app.authenticate({ key: theirs.secret })).allowed, true, "the other account's key still works");
  t.same(await accountState(app, 'acct_2'), theirsBefore, 'nothing changed on the other account');
  const audit = (await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data as { actor: string; action: string; changes: Record<string, unknown> }[];
  const revoked = audit.filter((e) => e.action === 'key.revoked');
  t.equal(revoked.length, 1, 'one revoke, though the key was listed twice');
  t.equal(revoked[0]?.actor, 'admin', 'audit actor: the admin token name');
  t.equal(revoked[0]?.changes['reason'], 'leaked: trufflehog https://pastebin.example/abc', 'reason names the source and the URL');
  const activity = (await app.api('GET', `/v1/accounts/acct_1/keys/${mine.id}/activity`)).body;
  t.ok(activity.alerts.some((a: { type: string; message: string }) => a.type === 'leaked' && a.message.includes('https://pastebin.example/abc')), 'leaked alert');

  const again = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [mine.secret], source: 'trufflehog' });
  t.same(again.body.results[0].outcome, 'already_revoked', 'reported again: already revoked, not revoked twice');
  t.equal((await app.api('GET', '/v1/accounts/acct_1/audit-log')).body.data.filter((e: { action: string }) => e.action === 'key.revoked').length, 1);

  const before = await accountState(app, 'acct_1');
  for (const bad of [{ keys: [], source: 'x' }, { keys: ['a'] }, { keys: ['a'], source: 'x\u0000' }, { keys: ['a'], source: 'x', extra: 1 },
    { keys: Array.from({ length: 1001 }, () => 'a'), source: 'x' }]) {
    const r = await app.api('POST', '/v1/accounts/acct_1/keys/leaked', bad);
    assertProblem(t, { ...r, headers: r.headers }, 400);
  }
  t.equal((await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [mine.secret], source: 'x' }, LIMITED_TOKEN)).status, 403, 'a token limited to another account: 403');
  t.equal((await app.api('POST', '/v1/accounts/acct_1/keys/leaked', { keys: [mine.secret], source: 'x' }, 'wrong-token-0123456789abcdef')).status, 401);
  t.same(await accountState(app, 'acct_1'), before, 'refused requests changed nothing');
  const spec = (await app.api('GET', '/openapi.json')).body;
  t.ok(spec.paths['/v1/accounts/{accountId}/keys/leaked']?.post?.responses?.['200'], 'documented in OpenAPI');
});

t.test('GitHub\'s key list unreachable and nothing cached: 503, nothing changed, counted', async (t) => {
  const github = signingKey();
  // Port 9 (discard) refuses connections here: the list cannot be read.
  const app = await startTestApp(t, { LEAK_REPORT_PORT: '0', GITHUB_SECRET_SCANNING_KEYS_URL: 'http://127.0.0.1:9/meta/public_keys/secret_scanning' });
  const k = await createKey(app, 'acct_1');
  sent.add(k.secret);
  const before = await snapshot(app, [k]);
  const res = await signedReport(app.leakPort as number, JSON.stringify([entry(k.secret)]), github);
  assertProblem(t, res, 503);
  t.same(await snapshot(app, [k]), before, 'nothing changed: GitHub retries later');
  t.equal(metric(parseMetrics(await (await fetch(`${app.url}/metrics`)).text()), REPORTS, { outcome: 'keys_unavailable' }), 1, 'counted as keys_unavailable');
});

t.test('METRICS_PORT: /metrics only on its own listener; no token reaches a log line', async (t) => {
  const { app } = await setup(t);
  t.equal((await fetch(`${app.url}/metrics`)).status, 404, 'the admin port does not serve /metrics');
  const res = await fetch(`http://127.0.0.1:${app.metricsPort}/metrics`);
  t.equal(res.status, 200);
  t.match(await res.text(), /otesse_keys_leak_reports_total/, 'the metrics listener serves the leak counters with the rest');
  t.equal((await fetch(`http://127.0.0.1:${app.metricsPort}/v1/scopes`)).status, 404, 'and nothing else');
  const logs = capturedLogs.join('');
  t.ok(logs.includes('otesse key service started') && sent.size >= 8, `${capturedLogs.length} log lines captured, ${sent.size} tokens sent`);
  t.same([...sent].filter((token) => logs.includes(token)), [], 'no token sent in any report appears in any log line');
  t.notMatch(logs, /otesse_(live|test)_sk_[0-9A-Za-z]{20}/, 'nor any full key-shaped token');
});
