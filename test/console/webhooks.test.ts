// The console's Webhooks section in Debian's chromium against a real service and a real receiver that verifies
// every request with the standardwebhooks package (WEBHOOK_ALLOW_PRIVATE=1: the receiver is on 127.0.0.1).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Page } from 'playwright-core';
import { WEBHOOK_EVENT_TYPES } from '../../src/domain/webhook.js';
import { consoleBundleDir } from '../../src/transport/http/console.js';
import { ADMIN_TOKEN, capturedLogs, createKey, startTestApp } from '../helpers/app.js';
import { axeViolations, launchBrowser, screenshotDir } from '../helpers/browser.js';
import { adminJwt, jwksServer, jwtEnv, signingKey } from '../helpers/jwt.js';
import { startReceiver } from '../helpers/webhook-receiver.js';

if (!existsSync(join(consoleBundleDir(), 'index.html')))
  throw new Error('the dashboard is not built: run npm run build');

// The browser's globals, for the functions that run in the page (this project compiles without the DOM library).
declare const document: any, navigator: any, localStorage: any, sessionStorage: any;

const started = Date.now();
const ACCOUNT = 'acct_hooks';
const PATH = `/v1/accounts/${ACCOUNT}/webhook-endpoints`;
const signer = await signingKey('ES256');
const jwks = await jwksServer(t, [signer]);
const app = await startTestApp(t, { ...jwtEnv(jwks.url), WEBHOOK_ALLOW_PRIVATE: '1' });
const receiver = await startReceiver(t);
const context = await launchBrowser(t);
const shots = screenshotDir(t);
const consoleMessages: string[] = [];
const secrets: string[] = [];

async function openPage(token: string): Promise<Page> {
  const p = await context.newPage();
  p.on('console', (m) => consoleMessages.push(m.text()));
  p.on('pageerror', (e) => consoleMessages.push(`pageerror: ${e.message}`));
  await p.goto(`${app.url}/console/#token=${encodeURIComponent(token)}&account=${ACCOUNT}`);
  await p.getByRole('heading', { name: 'Webhooks' }).waitFor();
  return p;
}
const page = await openPage(ADMIN_TOKEN);
const section = (p: Page = page) => p.locator('section', { has: p.getByRole('heading', { name: 'Webhooks' }) });
const endpointRow = (id: string, p: Page = page) => p.locator(`tr[data-endpoint-id="${id}"]`);
const deliveryRow = (id: string, p: Page = page) => p.locator(`tr[data-delivery-id="${id}"]`);
const shot = async (name: string, p: Page = page) =>
  p.screenshot({ path: join(shots, `${name}.png`), fullPage: (await p.getByRole('dialog').count()) === 0 });

async function accessible(t: Test, screen: string, p: Page = page) {
  const found = await axeViolations(p);
  t.same(
    found.map((v) => `${v.id} (${v.impact}): ${v.help} at ${JSON.stringify(v.nodes.map((n) => n.target))}`),
    [],
    `axe: ${screen}`,
  );
}
async function endpoints(): Promise<{ id: string; url: string; events: string[]; enabled: boolean }[]> {
  return (await app.api('GET', PATH)).body.data;
}
/** The delivery of this event, as the API says (the truth the page must show). */
async function deliveryOf(endpointId: string, eventId: string): Promise<{ id: string; state: string }> {
  const res = await app.api('GET', `${PATH}/${endpointId}/deliveries?limit=100`);
  const found = (res.body.data as { id: string; event_id: string; state: string }[]).find(
    (d) => d.event_id === eventId,
  );
  if (!found) throw new Error(`no delivery of ${eventId}`);
  return found;
}
/** The signing secret in the open dialog, once: Copy, then Done; nothing of it is left in the page. */
async function takeSecret(t: Test, title: string | RegExp, screen?: string): Promise<string> {
  const d = page.getByRole('dialog', { name: title });
  await d.waitFor();
  t.match(await d.textContent(), /Copy this signing secret now\. It will not be shown again\./, 'the warning');
  const secret = await d.getByLabel('Signing secret').inputValue();
  t.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/, 'a Standard Webhooks secret');
  secrets.push(secret);
  if (screen) {
    await shot(screen);
    await accessible(t, screen);
  }
  await d.getByRole('button', { name: 'Copy' }).click();
  await d.getByText('Copied to the clipboard.').waitFor();
  t.equal(await page.evaluate(() => navigator.clipboard.readText()), secret, 'Copy puts the secret on the clipboard');
  await d.getByRole('button', { name: 'Done' }).click();
  await d.waitFor({ state: 'detached' });
  t.notOk((await page.content()).includes(secret), 'closed: the secret is gone from the page');
  return secret;
}
/** Send test event from the row; returns the event id the page announces. */
async function sendTest(id: string): Promise<string> {
  const notice = section().locator('p.notice').first();
  const before = await notice.textContent();
  await endpointRow(id).getByRole('button', { name: 'Send test event' }).click();
  const handle = await page.waitForFunction(
    ([el, was]) => {
      const text = (el as { textContent: string }).textContent;
      return text !== was && /^Sent a test event \(evt_\w+\)/.test(text) ? text : false;
    },
    [await notice.elementHandle(), before] as const,
  );
  return /\((evt_\w+)\)/.exec(String(await handle.jsonValue()))?.[1] ?? '';
}

let endpointId = '';
let testEventId = '';

t.test('Add endpoint: every event type offered, a refused URL shown at its field, the secret once', async (t) => {
  // The list loads after the page: wait for its answer (a count alone does not wait).
  await section().getByText('No webhook endpoints yet.').waitFor();
  t.equal(await section().getByText('No webhook endpoints yet.').count(), 1, 'empty at first');
  await section().getByRole('button', { name: 'Add endpoint' }).click();
  const form = page.getByRole('dialog', { name: 'Add webhook endpoint' });
  await form.waitFor();
  const offered = await form
    .getByRole('group', { name: 'Events' })
    .getByRole('checkbox')
    .evaluateAll((boxes) => boxes.map((b) => (b as { id: string }).id.replace(/^event-/, '')));
  t.same(offered, [...WEBHOOK_EVENT_TYPES], 'one checkbox per event type the service sends, in its order');
  t.equal(await form.getByRole('checkbox', { name: 'key.revoked A key was revoked' }).count(), 1, 'labelled');

  await form.getByLabel(/^URL/).fill('ftp://hooks.example.com/x');
  await form.getByRole('checkbox', { name: /^key\.revoked/ }).check();
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  await page.locator('#err-url').waitFor();
  t.equal(await form.getByLabel(/^URL/).getAttribute('aria-invalid'), 'true', 'the URL is marked invalid');
  t.ok(((await page.locator('#err-url').textContent()) ?? '').length > 0, 'and the refusal is said next to it');
  t.same(await endpoints(), [], 'nothing was created by the refused form');
  await shot('webhook-add-endpoint');
  await accessible(t, 'the Add endpoint form, with an error');

  await form.getByLabel(/^URL/).fill(receiver.url);
  await form.getByRole('checkbox', { name: /^key\.created/ }).check();
  await form.getByLabel(/^Description/).fill('on-call pager');
  await form.getByRole('button', { name: 'Add endpoint' }).click();
  const secret = await takeSecret(t, 'The signing secret of your new endpoint', 'webhook-secret-shown-once');
  receiver.state.secrets = [secret];

  const [created] = await endpoints();
  endpointId = created?.id ?? '';
  t.match(created, { url: receiver.url, events: ['key.revoked', 'key.created'], enabled: true }, 'saved as asked');
  const row = endpointRow(endpointId);
  await row.waitFor();
  t.match(await row.textContent(), /127\.0\.0\.1.*on-call pager.*key\.revoked.*key\.created.*enabled/s, 'the row');
  t.equal(await page.getByRole('button', { name: 'Add endpoint' }).evaluate((b) => b === document.activeElement), true);

  const key = await createKey(app, ACCOUNT, { label: 'hooked' });
  const [got] = await receiver.until((r) => r.some((x) => x.event?.type === 'key.created'));
  t.equal(got?.verified, true, 'a real event is signed with the secret the page showed');
  t.equal(got?.event?.data.key.id, key.id);
});

t.test('Send test event: the receiver verifies it, the delivery shows as delivered', async (t) => {
  const before = receiver.received.length;
  const eventId = await sendTest(endpointId);
  testEventId = eventId;
  t.match(eventId, /^evt_[A-Za-z0-9]{20}$/);
  await page.getByRole('heading', { name: /^Deliveries to/ }).waitFor();
  t.equal(await page.evaluate(() => document.activeElement?.id), 'deliveries-title', 'focus moves to the deliveries');
  const got = await receiver.until((r) => r.slice(before).some((x) => x.id === eventId));
  const test = got.find((x) => x.id === eventId);
  t.equal(test?.verified, true, 'verified by standardwebhooks with the shown secret');
  t.equal(test?.event?.type, 'webhook.test');
  t.equal(test?.event?.data.endpoint_id, endpointId);

  const delivery = await deliveryOf(endpointId, eventId);
  const row = deliveryRow(delivery.id);
  await row.locator('.status-delivered').waitFor(); // the panel follows a pending delivery by itself
  const text = (await row.textContent()) ?? '';
  t.match(text, 'webhook.test', 'the event type');
  t.match(text, eventId, 'the event id (the webhook-id header)');
  t.match(text, /HTTP 204\s*[\d,]+ ms/, 'the status code and the duration');
  t.match(text, /1 attempt/, 'one attempt');
  t.equal((await deliveryOf(endpointId, eventId)).state, 'delivered', 'as the API says');
  await shot('webhooks');
  await accessible(t, 'webhooks and deliveries');
});

t.test('Retry sends a delivered event again under the same webhook-id', async (t) => {
  const eventId = testEventId;
  const delivery = await deliveryOf(endpointId, eventId);
  await deliveryRow(delivery.id).getByRole('button', { name: 'Retry' }).click();
  await receiver.until((r) => r.filter((x) => x.id === eventId).length === 2);
  t.ok(
    receiver.received.filter((x) => x.id === eventId).every((x) => x.verified),
    'both attempts verify',
  );
  await deliveryRow(delivery.id).getByText('2 attempts').waitFor();
  await deliveryRow(delivery.id).locator('.status-delivered').waitFor();
  const actions = (await app.api('GET', `/v1/accounts/${ACCOUNT}/audit-log`)).body.data.map(
    (e: { action: string }) => e.action,
  );
  t.equal(actions[0], 'webhook_delivery.retried', 'audited');
});

t.test('a failing receiver: its status code and the next retry are shown', async (t) => {
  receiver.state.answer = () => 500;
  t.teardown(() => {
    receiver.state.answer = () => 204;
  });
  const eventId = await sendTest(endpointId);
  await receiver.until((r) => r.some((x) => x.id === eventId));
  const delivery = await deliveryOf(endpointId, eventId);
  const row = deliveryRow(delivery.id);
  await row.locator('.answer-bad', { hasText: 'HTTP 500' }).waitFor();
  await row.locator('.status-pending').waitFor();
  const cells = await row.locator('td').allTextContents();
  t.not(cells[3], '—', `the next retry is shown (${cells[3]})`);
  t.match(cells[2], /^\d+ attempts?/, `the attempts (${cells[2]})`);
});

t.test('Edit events, Disable and Enable, Rotate secret (once; the receiver verifies with the new one)', async (t) => {
  const row = endpointRow(endpointId);
  await row.getByRole('button', { name: 'Edit' }).click();
  const form = page.getByRole('dialog', { name: 'Edit webhook endpoint' });
  t.equal(await form.getByLabel(/^URL/).inputValue(), receiver.url, 'the form holds the endpoint');
  await form.getByRole('checkbox', { name: /^key\.leaked/ }).check();
  await form.getByRole('button', { name: 'Save' }).click();
  await form.waitFor({ state: 'detached' });
  await row.getByText('key.leaked').waitFor();
  t.same((await endpoints())[0]?.events, ['key.revoked', 'key.created', 'key.leaked'], 'events saved');

  await row.getByRole('button', { name: 'Disable' }).click();
  await row.locator('.status-disabled').waitFor();
  t.equal((await endpoints())[0]?.enabled, false, 'disabled');
  t.equal(await row.getByRole('button', { name: 'Send test event' }).isDisabled(), true, 'no test to a disabled one');
  await row.getByRole('button', { name: 'Enable' }).click();
  await row.getByRole('button', { name: 'Disable' }).waitFor();
  t.equal((await endpoints())[0]?.enabled, true, 'enabled again');

  await row.getByRole('button', { name: 'Rotate secret' }).click();
  await page
    .getByRole('dialog', { name: 'Rotate the signing secret?' })
    .getByRole('button', { name: 'Rotate secret' })
    .click();
  const fresh = await takeSecret(t, /^The new signing secret of /);
  t.not(fresh, secrets[0], 'a new secret');
  await row.getByText(/old secret signs too until/).waitFor();
  receiver.state.secrets = [fresh]; // the receiver switched over
  const eventId = await sendTest(endpointId);
  const got = await receiver.until((r) => r.some((x) => x.id === eventId));
  t.equal(got.find((x) => x.id === eventId)?.verified, true, 'verified with the new secret alone');
});

t.test('a viewer sees endpoints and deliveries, and no write control', async (t) => {
  const token = await adminJwt(signer, {
    sub: 'viewer@otesse.test',
    otesse_accounts: [ACCOUNT],
    otesse_role: 'viewer',
  });
  const viewer = await openPage(token);
  await endpointRow(endpointId, viewer).waitFor();
  await endpointRow(endpointId, viewer).getByRole('button', { name: 'Deliveries' }).click();
  await viewer.locator('tr[data-delivery-id]').first().waitFor();
  t.ok((await viewer.locator('tr[data-delivery-id]').count()) >= 3, 'the deliveries are listed');
  for (const name of ['Add endpoint', 'Send test event', 'Edit', 'Disable', 'Rotate secret', 'Delete', 'Retry'])
    t.equal(await section(viewer).getByRole('button', { name, exact: true }).count(), 0, `no ${name} button`);
  t.equal(await section(viewer).getByRole('button', { name: 'Refresh deliveries' }).count(), 1, 'reading is there');
  const status = await viewer.evaluate(
    async ([tok, path]) =>
      (await fetch(`${path}/test`, { method: 'POST', headers: { authorization: `Bearer ${tok}` } })).status,
    [token, `${PATH}/${endpointId}`],
  );
  t.equal(status, 403, 'the API refuses the viewer a write');
  await accessible(t, 'webhooks for a viewer', viewer);
  await viewer.close();
});

t.test('Delete behind a confirmation', async (t) => {
  const row = endpointRow(endpointId);
  await row.getByRole('button', { name: 'Delete' }).click();
  const confirm = page.getByRole('dialog', { name: 'Delete this webhook endpoint?' });
  t.match(await confirm.textContent(), receiver.url, 'names the URL');
  await accessible(t, 'delete confirmation');
  await confirm.getByRole('button', { name: 'Cancel' }).click();
  await confirm.waitFor({ state: 'detached' });
  t.equal((await endpoints()).length, 1, 'Cancel keeps it');
  await row.getByRole('button', { name: 'Delete' }).click();
  await confirm.getByRole('button', { name: 'Delete endpoint' }).click();
  await section().getByText('No webhook endpoints yet.').waitFor();
  t.same(await endpoints(), [], 'deleted');
  t.equal(await page.getByRole('heading', { name: /^Deliveries to/ }).count(), 0, 'its deliveries are closed');
});

t.test('no signing secret in a log, the storage or a CSP violation', async (t) => {
  t.equal(secrets.length, 2);
  const stored = await page.evaluate(() =>
    JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)]),
  );
  t.equal(stored, '[[],[]]', 'nothing in web storage');
  for (const s of secrets) {
    t.notOk(
      consoleMessages.some((m) => m.includes(s)),
      'not in the browser console',
    );
    t.notOk(
      capturedLogs.some((l) => l.includes(s.slice(6))),
      'not in the service log',
    );
  }
  t.same(
    consoleMessages.filter((m) => /Content Security Policy|pageerror/.test(m)),
    [],
    'the page runs under its CSP with no violation',
  );
  t.comment(`webhooks browser suite: ${((Date.now() - started) / 1000).toFixed(1)} s`);
});
