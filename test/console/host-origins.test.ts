import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Page } from 'playwright-core';
import { ConfigError, loadConfig } from '../../src/config.js';
import { consoleBundleDir } from '../../src/transport/http/console.js';
import { ADMIN_TOKEN, startTestApp } from '../helpers/app.js';
import { launchBrowser, originServer } from '../helpers/browser.js';

// With CONSOLE_HOST_ORIGINS set, another site must not be able to sign a person into the console with a token of
// its choosing (its own account: keys made there would belong to it).

if (!existsSync(join(consoleBundleDir(), 'index.html')))
  throw new Error('the dashboard is not built: run npm run build:console');

// The browser's globals, for the functions that run in the page (this project compiles without the DOM library).
declare const history: any;

const ACCOUNT = 'acct_console_host';
const dashboard = await originServer(t); // the Otesse dashboard: listed
const stranger = await originServer(t); // another site: another loopback port, so another origin
const app = await startTestApp(t, { CONSOLE_HOST_ORIGINS: `https://dashboard.otesse.test,${dashboard}` });
const context = await launchBrowser(t);
const consoleUrl = `${app.url}/console/`;

/** `origin` opens the console with window.open and records the origins its `ready` messages came from. */
async function openFrom(origin: string): Promise<{ host: Page; popup: Page }> {
  const host = await context.newPage();
  await host.goto(`${origin}/`);
  const opened = context.waitForEvent('page');
  await host.evaluate((url) => {
    const w = globalThis as unknown as {
      addEventListener(type: 'message', listener: (e: { data?: { type?: string }; origin: string }) => void): void;
      open(url: string): unknown;
      readyFrom: string[];
      consoleWindow: unknown;
    };
    w.readyFrom = [];
    w.addEventListener('message', (e: { data?: { type?: string }; origin: string }) => {
      if (e.data?.type === 'otesse-console:ready') w.readyFrom.push(e.origin);
    });
    w.consoleWindow = w.open(url); // the handle: a stranger does not need the console's `ready` to post to it
  }, consoleUrl);
  const popup = await opened;
  await popup.getByLabel('Admin token').waitFor();
  return { host, popup };
}

/** The host posts a token to the console it opened, every 100 ms for `ms` (whenever the console listens, it hears one). */
async function handOver(host: Page, targetOrigin: string, ms: number): Promise<void> {
  await host.evaluate(
    async ([tok, acct, target, duration]) => {
      const w = globalThis as unknown as {
        consoleWindow: { postMessage(message: unknown, targetOrigin: string): void };
        setTimeout(handler: (value?: unknown) => void, ms: number): unknown;
      };
      for (let waited = 0; waited < Number(duration); waited += 100) {
        w.consoleWindow.postMessage({ type: 'otesse-console:token', token: tok, account: acct }, target);
        await new Promise((resolve) => w.setTimeout(resolve, 100));
      }
    },
    [ADMIN_TOKEN, ACCOUNT, targetOrigin, String(ms)] as const,
  );
}

const signedIn = async (p: Page) =>
  (await p.getByRole('button', { name: 'Generate New Key', exact: true }).count()) > 0;

t.test('the page is told which origins may hand it a token, and still cannot be framed', async (t) => {
  const res = await fetch(consoleUrl);
  t.equal(res.status, 200);
  t.match(
    await res.text(),
    `<meta name="otesse-console-host-origins" content="https://dashboard.otesse.test ${dashboard}"`,
  );
  t.match(res.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  t.equal(res.headers.get('x-frame-options'), 'DENY');
  t.equal(res.headers.get('cache-control'), 'no-store', 'index.html is always re-read');
  const same = await fetch(`${app.url}/console/index.html`);
  t.match(await same.text(), 'otesse-console-host-origins', '/console/index.html is the same page');
});

t.test('a token posted by a window of an unlisted origin is ignored', async (t) => {
  const { host, popup } = await openFrom(stranger);
  await handOver(host, '*', 1500);
  t.notOk(await signedIn(popup), "the stranger's token does not sign in");
  t.equal(await popup.getByLabel('Admin token').count(), 1, 'the page still asks for a sign-in');
  t.same(
    await host.evaluate(() => (globalThis as unknown as { readyFrom: string[] }).readyFrom),
    [],
    'the stranger is not even told the console is ready',
  );
  await popup.close();
  await host.close();
});

t.test('a #token= link is ignored, and removed from the address bar', async (t) => {
  const p = await context.newPage();
  await p.goto(`${consoleUrl}#token=${ADMIN_TOKEN}&account=${ACCOUNT}`);
  await p.locator('#root main').first().waitFor();
  await p.waitForTimeout(1000); // time enough for a sign-in (GET /v1/me) had the token been taken
  t.notOk(await signedIn(p), 'a link cannot sign anyone in');
  t.equal(new URL(p.url()).hash, '', 'the token is gone from the address bar');
  t.notOk(await p.evaluate(() => history.state));
  await p.close();
});

t.test('the listed dashboard hands over a token and the console signs in', async (t) => {
  const { host, popup } = await openFrom(dashboard);
  await host.waitForFunction(() => (globalThis as unknown as { readyFrom: string[] }).readyFrom.length > 0);
  t.same(
    await host.evaluate(() => (globalThis as unknown as { readyFrom: string[] }).readyFrom),
    [app.url],
    "`ready` comes from the console's origin, once",
  );
  await handOver(host, app.url, 100); // the exact targetOrigin, as docs/console-embedding.md says
  await popup.getByRole('button', { name: 'Generate New Key', exact: true }).waitFor();
  t.match(await popup.locator('header').textContent(), ACCOUNT, 'the account named by the host');
  t.equal(new URL(popup.url()).hash, '', 'the token never was in the URL');
  await popup.close();
  await host.close();
});

t.test('CONSOLE_HOST_ORIGINS holds origins only; a mistake names the variable, never its value', async (t) => {
  const base = { EMBEDDED: '1' };
  const parsed = loadConfig({
    ...base,
    CONSOLE_HOST_ORIGINS: ' https://dashboard.otesse.test , http://127.0.0.1:8080 ',
  });
  t.same(parsed.CONSOLE_HOST_ORIGINS, ['https://dashboard.otesse.test', 'http://127.0.0.1:8080']);
  t.equal(loadConfig(base).CONSOLE_HOST_ORIGINS, undefined, 'unset: development behaviour');
  for (const bad of [
    '',
    ' ',
    ',',
    '*',
    'null',
    'dashboard.otesse.test',
    'https://dashboard.otesse.test/',
    'https://dashboard.otesse.test/app',
    'https://dashboard.otesse.test?x=1',
    'https://user@dashboard.otesse.test',
    'https://Dashboard.otesse.test',
    'https://dashboard.otesse.test:443',
    'ftp://dashboard.otesse.test',
    'https://a.otesse.test https://b.otesse.test',
    'javascript:alert(1)',
  ]) {
    t.throws(() => loadConfig({ ...base, CONSOLE_HOST_ORIGINS: bad }), ConfigError, JSON.stringify(bad));
    try {
      loadConfig({ ...base, CONSOLE_HOST_ORIGINS: bad });
    } catch (err) {
      t.match((err as Error).message, /^CONSOLE_HOST_ORIGINS: /, `${JSON.stringify(bad)} is named`);
      if (bad.trim().length > 1) t.notOk((err as Error).message.includes(bad.trim()), 'the value is not repeated');
    }
  }
});
