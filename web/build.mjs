// Builds the page into dist/: app.js (src/app.ts and @entente/client, bundled by esbuild for
// browsers), index.html and style.css. `npm run build` typechecks first (tsc) and builds the client
// (its dist/ is what `@entente/client` resolves to).

import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = join(here, 'dist');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: [join(src, 'app.ts')],
  outfile: join(out, 'app.js'),
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: ['chrome111', 'firefox115', 'safari16.4'],
  sourcemap: true,
  minify: true,
  // The client loads the `ws` package only in Node (a dynamic import behind a check); the page
  // hands it the browser's WebSocket. Keep `ws` out of the bundle.
  external: ['ws'],
  metafile: true,
  logLevel: 'warning',
  legalComments: 'none',
});

const inputs = Object.keys(result.metafile.inputs);
const leaked = inputs.filter((f) => /(^|\/)node_modules\/ws\//.test(f) || /(^|\/)node:/.test(f));
if (leaked.length > 0) {
  console.error(`build: Node-only modules ended up in the page's bundle: ${leaked.join(', ')}`);
  process.exit(1);
}

for (const f of ['index.html', 'style.css']) copyFileSync(join(src, f), join(out, f));

const bytes = result.metafile.outputs[relative(process.cwd(), join(out, 'app.js'))]?.bytes;
console.log(`built ${relative(process.cwd(), out)}/: index.html, style.css, app.js${bytes ? ` (${Math.round(bytes / 1024)} KiB)` : ''} from ${inputs.length} modules`);
