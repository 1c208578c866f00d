import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { consoleBundleDir } from '../../src/transport/http/console.js';
import { ADMIN_TOKEN, capturedLogs, createKey, startTestApp } from '../helpers/app.js';
import { axeViolations, launchBrowser, screenshotDir } from '../helpers/browser.js';
import { adminJwt, jwksServer, jwtEnv, signingKey } from '../helpers/jwt.js';

// The page is served from the build (npm test builds first; alone: npm run build && npx tap test/console).
if (!existsSync(join(consoleBundleDir(), 'index.html')))
  throw new Error('the dashboard is not built: run npm run build');

// The browser's globals, for the functions that run in the page (this project compiles without the DOM library).
declare const document: any, navigator: any, history: any, localStorage: any, sessionStorage: any;

const started = Date.now();
const ACCOUNT = 'acct_console';
const signer = await signingKey('ES256');
const jwks = await jwksServer(t, [signer]);
const app = await startTestApp(t, jwtEnv(jwks.url));
const context = await launchBrowser(t);
const shots = screenshotDir(t);
const consoleMessages: string[] = [];
const secrets: string[] = [];

async function openPage(): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (m) => consoleMessages.push(m.text()));
  page.on('pageerror', (e) => consoleMessages.push(`pageerror: ${e.message}`));
  return page;
}
const page = await openPage();
const dialog = () => page.getByRole('dialog');
const row = (id: string) => page.locator(`tr[data-key-id="${id}"]`);
/** A screen as a person sees it: the whole page, or the viewport while a modal dialog is open. */
const shot = async (name: string, p: Page = page) =>
  p.screenshot({ path: join(shots, `${name}.png`), fullPage: (await p.getByRole('dialog').count()) === 0 });
const allowed = async (key: string, scope = 'bookings:read') =>
  await app.authenticate({ key, ip: '198.51.100.7', scope });

/** axe on the screen as it is now: nothing serious or critical. */
async function accessible(t: Test, screen: string, p: Page = page) {
  const found = await axeViolations(p);
  t.same(
    found.map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`),
    [],
    `axe: ${screen}`,
  );
}
/** The active key of this label (the API is the truth the page must show). */
async function activeKeyId(label: string): Promise<string> {
  const res = await app.api('GET', `/v1/accounts/${ACCOUNT}/keys?status=active&limit=100`);
  const found = (res.body.data as { id: string; label: string }[]).find((k) => k.label === label);
  if (!found) throw new Error(`no active key ${label}`);
  return found.id;
}
/** The secret shown in the dialog; then the dialog is closed with the keyboard and nothing of it is left. */
async function takeSecret(t: Test, title: string, screen: string): Promise<string> {
  const d = page.getByRole('dialog', { name: title });
  await d.waitFor();
  t.match(await d.textContent(), /It will not be shown again/, 'the warning is shown');
  const secret = await d.getByLabel('API key').inputValue();
  secrets.push(secret);
  await shot(screen);
  await accessible(t, screen);
  await page.keyboard.press('Tab'); // from the secret (focused on open) to Copy
  await page.keyboard.press('Enter');
  await d.getByText('Copied to the clipboard.').waitFor();
  t.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'Copy puts the secret on the clipboard');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Enter'); // Done
  await d.waitFor({ state: 'detached' });
  t.notOk((await page.content()).includes(secret), 'closed: the secret is gone from the page');
  t.notOk(page.url().includes(secret.slice(-12)), 'never in the URL');
  return secret;
}

t.test('the accessibility check itself finds a violation when there is one', async (t) => {
  const blank = await context.newPage();
  await blank.setContent('<html lang="en"><title>x</title><main><input type="text"><button></button></main></html>');
  const ids = (await axeViolations(blank)).map((v) => v.id).sort();
  t.ok(ids.includes('button-name') && ids.includes('label'), `axe reports ${ids.join(', ')}`);
  await blank.close();
});

t.test('sign in with the development form', async (t) => {
  const res = await page.goto(`${app.url}/console`);
  t.equal(res?.status(), 200);
  t.equal(page.url(), `${app.url}/console/`);
  await page.getByLabel('Admin token').waitFor();
  await accessible(t, 'sign-in');
  await page.getByLabel('Admin token').fill('not-a-valid-admin-token');
  await page.getByLabel('Account').fill(ACCOUNT);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#err-token').getByText('a valid admin bearer token is required').waitFor();
  t.equal(
    await page.getByLabel('Admin token').getAttribute('aria-invalid'),
    'true',
    'the refusal is shown next to the token',
  );
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await page.getByLabel('Admin token').fill(ADMIN_TOKEN);
  await shot('sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('button', { name: 'Generate New Key', exact: true }).waitFor();
});

t.test('Generate New Key with the keyboard only; the secret works in a real Authenticate', async (t) => {
  await page.getByRole('button', { name: 'Generate New Key', exact: true }).focus();
  await page.keyboard.press('Enter');
  await dialog().getByLabel('Label', { exact: true }).waitFor();
  t.equal(await page.evaluate(() => document.activeElement?.id), 'f-label', 'focus is in the form');
  for (const [scope, words] of [
    ['bookings:read', 'Read bookings'],
    ['webhooks:manage', 'Manage webhooks'],
    ['customers:write', 'Create and update customers'],
  ]) {
    t.equal(
      await dialog()
        .getByRole('checkbox', { name: `${scope} ${words}` })
        .count(),
      1,
      `${scope} is labelled "${words}"`,
    );
  }
  await page.keyboard.type('Bookings sync');
  await page.keyboard.press('Tab');
  t.equal(await page.evaluate(() => document.activeElement?.id), 'scope-bookings:read');
  await page.keyboard.press('Space');
  await page.keyboard.press('Shift+Tab');
  await shot('generate-new-key');
  await accessible(t, 'the Generate New Key form');
  await page.keyboard.press('Enter'); // submits the form (Create)
  const secret = await takeSecret(t, 'Your new API key', 'secret-shown-once');
  t.match(secret, /^otesse_live_sk_[A-Za-z0-9]{50}$/);
  const id = await activeKeyId('Bookings sync');
  await row(id).getByText('otesse_live_sk_').waitFor();
  t.match(await row(id).textContent(), /bookings:read/);
  t.equal(
    await page.evaluate(() => document.activeElement?.textContent),
    'Generate New Key',
    'focus returns to the button',
  );
  const answer = await allowed(secret);
  t.equal(answer.allowed, true, 'the secret shown by the page is allowed by Authenticate');
  t.equal(answer.key_id, id);
});

t.test('errors from the API are shown in words next to the fields that caused them', async (t) => {
  await page.getByRole('button', { name: 'Generate New Key', exact: true }).click();
  await dialog().getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#err-label').waitFor();
  t.match(await page.locator('#err-label').textContent(), /fewer than 1/);
  t.match(await page.locator('#err-scopes').textContent(), /fewer than 1/);
  t.equal(await dialog().getByLabel('Label', { exact: true }).getAttribute('aria-invalid'), 'true');
  await dialog().getByLabel('Label', { exact: true }).fill('Bad addresses');
  await dialog().getByRole('checkbox', { name: 'bookings:read Read bookings' }).check();
  await dialog()
    .getByLabel(/Allowed IPs/)
    .fill('198.51.100.0/24\nnot-an-address');
  await dialog().getByRole('button', { name: 'Create', exact: true }).click();
  await page.locator('#err-allowed_ips').waitFor();
  t.match(await page.locator('#err-allowed_ips').textContent(), /^Entry 2: /, 'the bad entry is named');
  await shot('form-errors');
  await accessible(t, 'form with errors');
  await page.keyboard.press('Escape');
  await dialog().waitFor({ state: 'detached' });
  t.equal(
    (await app.api('GET', `/v1/accounts/${ACCOUNT}/keys`)).body.data.length,
    1,
    'nothing was created by the refused forms',
  );
});

t.test('Edit scopes; the activity chart shows the calls just made', async (t) => {
  const id = await activeKeyId('Bookings sync');
  await row(id).getByRole('button', { name: 'Edit' }).click();
  await dialog().getByRole('checkbox', { name: 'customers:read Read customers' }).check();
  await dialog().getByRole('button', { name: 'Save' }).click();
  await dialog().waitFor({ state: 'detached' });
  await row(id).getByText('customers:read').waitFor();
  const secret = secrets[0] ?? '';
  t.equal((await allowed(secret, 'customers:read')).allowed, true, 'the edited scope is granted at once');
  t.equal((await allowed(secret, 'invoices:read')).reason, 'SCOPE_NOT_GRANTED');
  await row(id).getByRole('button', { name: 'Activity' }).click();
  const chart = page.getByRole('img', { name: /Calls per hour/ });
  await chart.waitFor();
  t.equal(await page.evaluate(() => document.activeElement?.id), 'activity-title', 'focus moves to the activity');
  t.equal(await chart.getAttribute('data-allowed'), '2', 'two allowed calls in the chart');
  t.equal(await chart.getAttribute('data-denied'), '1', 'one denied call in the chart');
  t.equal(await page.getByTestId('allowed-total').textContent(), '2');
  t.match(
    await page.locator('section', { has: page.getByRole('heading', { name: /Activity of/ }) }).textContent(),
    /198\.51\.100\.7/,
    'the address seen',
  );
  await row(id).getByText('from 198.51.100.7').waitFor();
  t.match(await row(id).textContent(), /from 198\.51\.100\.7/, 'the table shows the last use and where it came from');
  await shot('activity');
  await accessible(t, 'activity');
});

t.test('Disable and Enable from the row: held by the API at once; the remaining uses are shown', async (t) => {
  const id = await activeKeyId('Bookings sync');
  await app.api('PATCH', `/v1/accounts/${ACCOUNT}/keys/${id}`, {
    remaining_uses: 1500,
    refill: { amount: 1500, interval: 'daily' },
  });
  await row(id).getByRole('button', { name: 'Disable' }).click();
  await row(id).locator('.status-disabled').waitFor();
  t.equal((await app.api('GET', `/v1/accounts/${ACCOUNT}/keys/${id}`)).body.enabled, false, 'the key is disabled');
  t.match(
    await row(id).textContent(),
    /1,500 uses left \(refilled to 1,500 daily\)/,
    'the row shows the balance and its refill',
  );
  await accessible(t, 'a disabled key');
  await row(id).getByRole('button', { name: 'Enable' }).click();
  await row(id).getByRole('button', { name: 'Disable' }).waitFor();
  t.equal((await app.api('GET', `/v1/accounts/${ACCOUNT}/keys/${id}`)).body.enabled, true, 'enabled again');
  const actions = (await app.api('GET', `/v1/accounts/${ACCOUNT}/audit-log`)).body.data.map(
    (e: { action: string }) => e.action,
  );
  t.same(actions.slice(0, 2), ['key.enabled', 'key.disabled'], 'both audited');
});

t.test(
  'Rotate: grace period, the new secret once; then Revoke from the keyboard: the row shows revoked and Authenticate denies',
  async (t) => {
    const oldId = await activeKeyId('Bookings sync');
    await row(oldId).getByRole('button', { name: 'Rotate' }).click();
    await dialog().getByLabel('Keep the old key working for').selectOption({ label: 'Immediately' });
    await shot('rotate');
    await dialog().getByRole('button', { name: 'Rotate key' }).click();
    const fresh = await takeSecret(t, 'The new key for Bookings sync', 'rotated-secret');
    t.not(fresh, secrets[0]);
    t.equal((await allowed(fresh)).allowed, true, 'the rotated key works');
    t.equal((await allowed(secrets[0] ?? '')).allowed, false, 'the old key stopped at once (grace: immediately)');

    const id = await activeKeyId('Bookings sync');
    await row(id).getByRole('button', { name: 'Revoke' }).focus();
    await page.keyboard.press('Enter');
    await dialog()
      .getByLabel(/Reason/)
      .waitFor();
    await page.keyboard.type('left on a laptop');
    await shot('revoke');
    await accessible(t, 'revoke confirmation');
    await page.keyboard.press('Enter');
    await row(id).locator('.status').getByText('revoked').waitFor();
    const denied = await allowed(fresh);
    t.equal(denied.allowed, false, 'revoked through the page: the same call is denied');
    t.equal(denied.reason, 'KEY_REVOKED');
    t.equal(await row(id).getByRole('button', { name: 'Revoke' }).count(), 0, 'no Revoke on a revoked key');
  },
);

t.test('filters, paging and the audit log', async (t) => {
  for (let i = 0; i < 10; i++)
    await createKey(app, ACCOUNT, { label: `batch ${i}`, environment: i % 2 ? 'test' : 'live' });
  await page.getByLabel('Status').selectOption('revoked');
  await page.locator('tbody tr').first().waitFor();
  await page.waitForFunction(() =>
    [...document.querySelectorAll('table.keys tbody tr .status')].every((s) => s.textContent === 'revoked'),
  );
  t.equal(await page.locator('table.keys tbody tr').count(), 1, 'only the revoked key');
  await page.getByLabel('Status').selectOption('');
  await page.getByLabel('Environment').selectOption('test');
  await page.waitForFunction(() => document.querySelectorAll('table.keys tbody tr').length === 5);
  t.equal(await page.locator('table.keys .env-live').count(), 0, 'only test keys');
  await page.getByLabel('Environment').selectOption('');
  await page.waitForFunction(() => document.querySelectorAll('table.keys tbody tr').length === 10);
  const first = await page.locator('table.keys tbody tr').first().getAttribute('data-key-id');
  await page.getByRole('button', { name: 'Next page' }).click();
  await page.waitForFunction(
    (f) => document.querySelector('table.keys tbody tr')?.getAttribute('data-key-id') !== f,
    first,
  );
  t.equal(await page.locator('table.keys tbody tr').count(), 2, '12 keys: 10 then 2');
  await page.getByRole('button', { name: 'Previous page' }).click();
  await page.waitForFunction(
    (f) => document.querySelector('table.keys tbody tr')?.getAttribute('data-key-id') === f,
    first,
  );
  const audit = await page.locator('section', { has: page.getByRole('heading', { name: 'Audit log' }) }).textContent();
  for (const action of ['key.created', 'key.updated', 'key.rotated', 'key.revoked'])
    t.match(audit, action, `the audit log shows ${action}`);
  await shot('keys');
  await accessible(t, 'keys table');
});

t.test('rotation due and overdue are highlighted, and filtered', async (t) => {
  const db = new pg.Client({ connectionString: app.env.DATABASE_URL });
  await db.connect();
  t.teardown(() => db.end());
  // Age two keys: 95 days (overdue) and 80 days (due within 14 days); rotation is due 90 days after creation.
  await db.query(
    `UPDATE api_keys SET created_at = now() - interval '95 days' WHERE account_id = $1 AND label = 'batch 0'`,
    [ACCOUNT],
  );
  await db.query(
    `UPDATE api_keys SET created_at = now() - interval '80 days' WHERE account_id = $1 AND label = 'batch 1'`,
    [ACCOUNT],
  );
  await page.getByLabel('Rotation').selectOption('due');
  await page.waitForFunction(() => document.querySelectorAll('table.keys tbody tr').length === 2);
  t.match(await page.locator('td.rotation-overdue').textContent(), /overdue/, 'overdue: highlighted and said');
  t.match(await page.locator('td.rotation-due').textContent(), /due soon/, 'due within 14 days: highlighted and said');
  await shot('rotation-due');
  await page.getByLabel('Rotation').selectOption('overdue');
  await page.waitForFunction(() => document.querySelectorAll('table.keys tbody tr').length === 1);
  t.match(await page.locator('table.keys tbody th').textContent(), 'batch 0');
  await page.getByLabel('Rotation').selectOption('');
});

t.test('Revoke all keys of one environment behind a typed confirmation', async (t) => {
  const testKey = await createKey(app, ACCOUNT, { label: 'sandbox', environment: 'test' });
  const liveKey = await createKey(app, ACCOUNT, { label: 'production', environment: 'live' });
  await page.getByRole('button', { name: 'Revoke all keys', exact: true }).click();
  await dialog().getByLabel('Environment').selectOption('test');
  const confirm = dialog().getByRole('button', { name: 'Revoke all test keys' });
  t.equal(await confirm.isDisabled(), true, 'disabled until the account id is typed');
  await dialog()
    .getByLabel(/Type the account id/)
    .fill('acct_wrong');
  t.equal(await confirm.isDisabled(), true);
  await dialog()
    .getByLabel(/Type the account id/)
    .fill(ACCOUNT);
  await shot('revoke-all');
  await accessible(t, 'revoke all');
  await confirm.click();
  await page.getByText('Revoked 6 test keys.').waitFor();
  t.equal((await app.authenticate({ key: testKey.secret })).reason, 'KEY_REVOKED', 'a test key is revoked');
  t.equal((await app.authenticate({ key: liveKey.secret })).allowed, true, 'live keys are untouched');
});

t.test('a viewer signed in through the URL fragment sees no write buttons, and its writes are refused', async (t) => {
  const token = await adminJwt(signer, {
    sub: 'viewer@otesse.test',
    otesse_accounts: [ACCOUNT],
    otesse_role: 'viewer',
  });
  const viewer = await openPage();
  await viewer.goto(`${app.url}/console/#token=${token}&account=${ACCOUNT}`);
  await viewer.getByText('viewer@otesse.test').waitFor();
  t.equal(new URL(viewer.url()).hash, '', 'the fragment with the token is removed at once');
  t.notOk(await viewer.evaluate(() => history.state), 'and replaced in history');
  await viewer.locator('table.keys tbody tr').first().waitFor();
  for (const name of ['Generate New Key', 'Edit', 'Rotate', 'Revoke', 'Revoke all keys']) {
    t.equal(await viewer.getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
  }
  t.ok((await viewer.getByRole('button', { name: 'Activity' }).count()) > 0, 'reads are there');
  const id = await activeKeyId('production');
  const status = await viewer.evaluate(
    async ([tok, acct, key]) =>
      (
        await fetch(`/v1/accounts/${acct}/keys/${key}/revoke`, {
          method: 'POST',
          headers: { authorization: `Bearer ${tok}`, 'content-type': 'application/json' },
          body: '{}',
        })
      ).status,
    [token, ACCOUNT, id],
  );
  t.equal(status, 403, 'the API refuses the viewer a write');
  await shot('viewer', viewer);
  await accessible(t, 'viewer', viewer);
  const stored = await viewer.evaluate(() =>
    JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)]),
  );
  t.equal(stored, '[[],[]]', 'nothing in localStorage or sessionStorage');
  await viewer.close();
});

t.test('an admin JWT handed over by postMessage from the page that opened the console', async (t) => {
  const token = await adminJwt(signer, { sub: 'alice@otesse.test', otesse_accounts: [ACCOUNT], otesse_role: 'admin' });
  const host = await openPage();
  await host.goto(`${app.url}/healthz`); // any page: the host dashboard of another origin in production
  const opened = context.waitForEvent('page');
  // The host opens the console and keeps the window that says it is ready.
  await host.evaluate((url) => {
    const w = globalThis as unknown as {
      addEventListener(type: 'message', listener: (e: { data?: { type?: string }; source: unknown }) => void): void;
      open(url: string): unknown;
      consoleWindow?: unknown;
    };
    w.addEventListener('message', (e: { data?: { type?: string }; source: unknown }) => {
      if (e.data?.type === 'otesse-console:ready') w.consoleWindow = e.source;
    });
    w.open(url);
  }, `${app.url}/console/`);
  const popup = await opened;
  popup.on('console', (m) => consoleMessages.push(m.text()));
  await popup.getByLabel('Admin token').waitFor();
  await host.waitForFunction(() => Boolean((globalThis as unknown as { consoleWindow?: unknown }).consoleWindow));
  // A message that does not come from the opener (here: the console's own window) is ignored.
  await popup.evaluate(
    ([tok, acct]) =>
      (globalThis as unknown as { postMessage(message: unknown, targetOrigin: string): void }).postMessage(
        { type: 'otesse-console:token', token: tok, account: acct },
        '*',
      ),
    [token, ACCOUNT],
  );
  await popup.waitForTimeout(500);
  t.equal(await popup.getByLabel('Admin token').count(), 1, 'a token from another window does not sign in');
  await host.evaluate(
    ([tok, acct]) => {
      const w = globalThis as unknown as {
        consoleWindow: { postMessage(message: unknown, targetOrigin: string): void };
      };
      w.consoleWindow.postMessage({ type: 'otesse-console:token', token: tok, account: acct }, '*');
    },
    [token, ACCOUNT],
  );
  await popup.getByText('alice@otesse.test').waitFor();
  t.match(await popup.locator('header').textContent(), ACCOUNT, 'the account named by the host');
  t.equal(
    await popup.getByRole('button', { name: 'Generate New Key', exact: true }).count(),
    1,
    'an admin JWT may write',
  );
  t.equal(new URL(popup.url()).hash, '', 'the token never was in the URL');
  await popup.close();
  await host.close();
});

t.test('an expired token returns the page to sign-in, saying why', async (t) => {
  // exp 24 s ago: accepted for about 6 s more (30 s clock tolerance), then refused.
  const exp = Math.floor(Date.now() / 1000) - 24;
  const token = await adminJwt(
    signer,
    { sub: 'brief@otesse.test', otesse_accounts: [ACCOUNT], otesse_role: 'admin' },
    { expiresIn: exp },
  );
  const p = await openPage();
  await p.goto(`${app.url}/console/#token=${token}&account=${ACCOUNT}`);
  await p.getByText('brief@otesse.test').waitFor();
  await p.waitForTimeout(Math.max(0, (exp + 31) * 1000 - Date.now()));
  await p.getByLabel('Status').selectOption('active'); // the next call to the API
  await p.getByLabel('Admin token').waitFor();
  t.match(await p.locator('#err-token').textContent(), /^Signed out: a valid admin bearer token is required/);
  await p.close();
});

t.test('no secret or token in a log, the storage or a CSP violation', async (t) => {
  const stored = await page.evaluate(() =>
    JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)]),
  );
  t.equal(stored, '[[],[]]');
  t.ok(secrets.length >= 2);
  for (const s of secrets) {
    t.notOk(
      consoleMessages.some((m) => m.includes(s)),
      'not in the browser console',
    );
    t.notOk(
      capturedLogs.some((l) => l.includes(s)),
      'not in the service log',
    );
  }
  t.same(
    consoleMessages.filter((m) => /Content Security Policy|pageerror/.test(m)),
    [],
    'the page runs under its CSP with no violation',
  );
  t.comment(`browser suite: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
