import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import helmet from '@fastify/helmet';
import fastifyStatic from '@fastify/static';

/** Where `npm run build` puts the dashboard bundle: `<package root>/dist/console` (the same from src/ under tap and from dist/). */
export function consoleBundleDir(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    if (isThisPackage(join(dir, 'package.json'))) return join(dir, 'dist', 'console');
    // Not found: a folder without index.html, so /console is simply off.
    if (dirname(dir) === dir) return join(from, 'console');
  }
}

function isThisPackage(file: string): boolean {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'otesse-key-service';
  } catch {
    // Most folders walked up have no package.json (or another's): that folder is simply not ours.
    return false;
  }
}

/** The meta tag that tells the page who may hand it a token (console/src/handoff.ts reads it): `*` any opener and `#token=` (development), else the origins. */
const HOST_ORIGINS_META = 'otesse-console-host-origins';

/** index.html with the host-origins meta tag at the end of <head>; read once (the bundle does not change under a running server). */
export function pageWithHostOrigins(html: string, hostOrigins: readonly string[] | undefined): string {
  const value = hostOrigins ? hostOrigins.join(' ') : '*';
  const escaped = value.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const at = html.indexOf('</head>');
  if (at < 0) throw new Error("the dashboard's index.html has no </head>: rebuild it (npm run build:console)");
  return `${html.slice(0, at)}  <meta name="${HOST_ORIGINS_META}" content="${escaped}" />\n  ${html.slice(at)}`;
}

export interface ConsoleOptions {
  dir: string;
  /** CONSOLE_HOST_ORIGINS: the only origins whose postMessage may hand the page a token; unset: development handoff. */
  hostOrigins?: readonly string[] | undefined;
}

/**
 * The dashboard's static files at /console/ with their own security headers: scripts and styles only from this origin
 * (no inline script), no framing, no referrer. Encapsulated: the API's answers are untouched.
 * The server knows nothing of the page but the folder it serves and the host origins it tells the page.
 */
export async function consolePlugin(app: FastifyInstance, opts: ConsoleOptions): Promise<void> {
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        manifestSrc: ["'self'"],
        baseUri: ["'none'"],
        formAction: ["'none'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginOpenerPolicy: false, // the host page that opens the console talks to it with postMessage (window.opener)
    strictTransportSecurity: false, // set by the TLS-terminating edge, not by a plaintext development server
  });
  // The bundle's file names carry content hashes; index.html must always be re-read. It is served from memory, with the
  // host origins in it, and never as the bare file (which would say nothing of them).
  const page = pageWithHostOrigins(readFileSync(join(opts.dir, 'index.html'), 'utf8'), opts.hostOrigins);
  await app.register(fastifyStatic, {
    root: opts.dir,
    prefix: '/console/',
    redirect: true,
    index: false,
    cacheControl: false,
    allowedPath: (path) => !path.endsWith('.html'),
    setHeaders: (res) => {
      res.setHeader('cache-control', 'public, max-age=31536000, immutable');
    },
  });
  for (const url of ['/console/', '/console/index.html']) {
    app.get(url, { schema: { hide: true } }, async (_request, reply) =>
      reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(page),
    );
  }
  app.get('/console', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/console/', 301));
}
