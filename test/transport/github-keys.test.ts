// GitHub's secret-scanning signing keys are trusted for at most an hour after they were read: a key
// GitHub retires stops verifying reports, and a list that cannot be re-read is 503 (GitHub retries),
// never a retired key trusted forever.
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import t from 'tap';
import { GithubPublicKeys, KeysUnavailableError } from '../../src/transport/leak/github-keys.js';
import { buildLeakServer } from '../../src/transport/leak/server.js';
import { createLogger } from '../../src/observability/logger.js';
import type { LeakReportService } from '../../src/service/leak-report-service.js';
import { entry, githubKeyServer, signedReport, signingKey } from '../helpers/github.js';

const HOUR = 3_600_000;

t.test('a key GitHub retired stops being trusted once the list is an hour old', async (t) => {
  const [old, current] = [signingKey(), signingKey()];
  const list = await githubKeyServer(t, [old, current]);
  let now = 1_000_000;
  const keys = new GithubPublicKeys({ url: list.url, now: () => now });
  t.ok(await keys.get(old.identifier), 'published: trusted');
  list.retire(old);
  now += 59 * 60_000;
  t.ok(await keys.get(old.identifier), 'within the hour the cached list answers (no fetch per report)');
  t.equal(list.fetches, 1);
  now += 2 * 60_000;
  t.equal(
    await keys.get(old.identifier),
    undefined,
    'after the hour the list is read again: the retired key is unknown',
  );
  t.ok(await keys.get(current.identifier), 'the current key still verifies');
  t.equal(list.fetches, 2, 'one re-read');
});

t.test('a list past its age that cannot be re-read is 503 (GitHub retries), never trust in stale keys', async (t) => {
  const key = signingKey();
  const list = await githubKeyServer(t, [key]);
  let now = 1_000_000;
  const errors: unknown[] = [];
  const keys = new GithubPublicKeys({ url: list.url, now: () => now, onFetchError: (err) => errors.push(err) });
  t.ok(await keys.get(key.identifier));
  list.fail(true);
  now += 30 * 60_000;
  t.ok(await keys.get(key.identifier), 'a young list needs no fetch: an outage of GitHub does not matter yet');
  now += HOUR;
  await t.rejects(keys.get(key.identifier), KeysUnavailableError, 'too old and not re-readable: unavailable');
  t.equal(errors.length, 1, 'the failed fetch is reported');
  await t.rejects(keys.get(key.identifier), KeysUnavailableError, 'still unavailable, without hammering GitHub');
  t.equal(list.fetches, 2, 'the next fetch waits for the refetch interval');
  list.fail(false);
  now += 60_000;
  t.ok(await keys.get(key.identifier), 'readable again: trusted again');
});

t.test('the leak listener answers 503 for a report while the key list is stale and unreadable', async (t) => {
  const key = signingKey();
  const list = await githubKeyServer(t, [key]);
  let now = Date.now();
  const leaks = { report: async () => [] } as unknown as LeakReportService;
  const server = await buildLeakServer({
    logger: createLogger('silent'),
    leaks,
    registry: new Registry(),
    publicKeys: new GithubPublicKeys({ url: list.url, now: () => now }),
  });
  await server.listen({ host: '127.0.0.1', port: 0 });
  t.teardown(() => server.close());
  const port = (server.server.address() as AddressInfo).port;
  const body = JSON.stringify([entry('otesse_live_sk_not-a-real-key')]);
  t.equal((await signedReport(port, body, key)).status, 200, 'accepted while the list is fresh');
  list.fail(true);
  now += 2 * HOUR;
  const res = await signedReport(port, body, key);
  t.equal(res.status, 503, 'stale and unreadable: 503, GitHub retries');
  t.match(res.headers.get('content-type'), /^application\/problem\+json/);
});
