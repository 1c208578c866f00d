import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { consoleBundleDir, pageWithHostOrigins } from '../../src/transport/http/console.js';
import { startTestApp } from '../helpers/app.js';

const dir = consoleBundleDir();
if (!existsSync(join(dir, 'index.html'))) throw new Error('the dashboard is not built: run npm run build');
const app = await startTestApp(t);
const get = (path: string) => fetch(`${app.url}${path}`, { redirect: 'manual' });

t.test('/console serves the built page with a strict CSP, no framing and no referrer', async (t) => {
  const redirect = await get('/console');
  t.equal(redirect.status, 301);
  t.equal(redirect.headers.get('location'), '/console/');
  const res = await get('/console/');
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/html/);
  const html = await res.text();
  t.equal(
    html,
    pageWithHostOrigins(readFileSync(join(dir, 'index.html'), 'utf8'), undefined),
    'the bundle built by npm run build, told its host origins (any: development)',
  );
  t.notMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
  t.notMatch(html, /https?:\/\//, 'nothing from another origin (no CDN)');
  const csp = res.headers.get('content-security-policy') ?? '';
  for (const d of [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ]) {
    t.ok(
      csp
        .split(';')
        .map((x) => x.trim())
        .includes(d),
      `CSP has ${d}`,
    );
  }
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'no unsafe-* source');
  t.equal(res.headers.get('x-frame-options'), 'DENY');
  t.equal(res.headers.get('referrer-policy'), 'no-referrer');
  t.equal(res.headers.get('x-content-type-options'), 'nosniff');
  t.equal(res.headers.get('cache-control'), 'no-store', 'the page is always re-read');

  const script = /<script[^>]*src="([^"]+)"/.exec(html)?.[1] ?? '';
  const asset = await get(script);
  t.equal(asset.status, 200, `${script} is served`);
  t.match(asset.headers.get('content-type'), /javascript/);
  t.match(asset.headers.get('cache-control'), /immutable/, 'hashed assets are cached');
  t.equal(asset.headers.get('x-frame-options'), 'DENY');
});

t.test('the API keeps its own headers (the console plugin is encapsulated)', async (t) => {
  const res = await get('/v1/scopes');
  t.equal(res.status, 200);
  t.equal(res.headers.get('content-security-policy'), null);
  t.equal((await get('/console/nope.js')).status, 404);
  t.equal((await get('/console/..%2fpackage.json')).status, 404, 'nothing outside the bundle');
});
