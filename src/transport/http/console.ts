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
  try { return (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === 'otesse-key-service'; } catch { return false; }
}

/**
 * The dashboard's static files at /console/ with their own security headers: scripts and styles only from this origin
 * (no inline script), no framing, no referrer. Encapsulated: the API's answers are untouched.
 * The server knows nothing of the page but the folder it serves.
 */
export async function consolePlugin(app: FastifyInstance, opts: { dir: string }): Promise<void> {
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'none'"], scriptSrc: ["'self'"], styleSrc: ["'self'"], imgSrc: ["'self'", 'data:'], connectSrc: ["'self'"],
        fontSrc: ["'self'"], manifestSrc: ["'self'"], baseUri: ["'none'"], formAction: ["'none'"], frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    crossOriginOpenerPolicy: false, // the host page that opens the console talks to it with postMessage (window.opener)
    strictTransportSecurity: false, // set by the TLS-terminating edge, not by a plaintext development server
  });
  // The bundle's file names carry content hashes; index.html must always be re-read.
  await app.register(fastifyStatic, {
    root: opts.dir, prefix: '/console/', redirect: true, index: 'index.html', cacheControl: false,
    setHeaders: (res, path) => {
      res.setHeader('cache-control', path.endsWith('.html') ? 'no-store' : 'public, max-age=31536000, immutable');
    },
  });
  app.get('/console', { schema: { hide: true } }, async (_request, reply) => reply.redirect('/console/', 301));
}
