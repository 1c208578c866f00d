import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard bundle goes next to the compiled service (dist/console), so the image's `COPY dist` carries it.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    // No inline script or style anywhere: the page is served with script-src 'self' and style-src 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
});
