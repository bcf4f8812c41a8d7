// Bundles each target's device program with esbuild into dist/targets/: one file per target, no trainer inside.
// Run by `npm run build`; `node --import tsx targets/build.ts [NAME...]` builds some.

import { build, type BuildOptions, type Plugin } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const WASM = join(ROOT, 'dist', 'runtime', 'bitwasm', 'bitwasm.wasm');

/**
 * The page imports onnxruntime-web only when it opens a model on ort-web (backend-ort-web.ts imports it lazily): that
 * import becomes a fetch of ort-web.js beside the page, a bundle of its own, so a site can ship without it.
 */
const ORT_WEB_BESIDE_THE_PAGE: Plugin = {
  name: 'ort-web-beside-the-page',
  setup(b) {
    b.onResolve({ filter: /^onnxruntime-web$/ }, () => ({ path: './ort-web.js', external: true }));
  },
};

/** Each target's bundle: options beyond the shared ones, and files copied beside the bundle. */
export const BUNDLES: Readonly<Record<string, { options: BuildOptions; beside: string[] }>> = Object.freeze({
  rpi: {
    options: {
      entryPoints: [join(ROOT, 'targets', 'rpi', 'agent.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'rpi', 'cmp-edge.mjs'),
      platform: 'node',
      target: 'node18',
      // The native runtime and the wasm one ship beside the bundle in the release's node_modules, per platform.
      external: ['onnxruntime-node', 'onnxruntime-web'],
      // CommonJS dependencies (protobufjs) call require; an ES module has none of its own.
      banner: {
        js: "import { createRequire as cmpCreateRequire } from 'node:module'; const require = cmpCreateRequire(import.meta.url);",
      },
    },
    beside: [WASM],
  },
  browser: {
    options: {
      entryPoints: [join(ROOT, 'targets', 'browser', 'page.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'browser', 'cmp-page.js'),
      platform: 'browser',
      target: 'es2022',
      // onnxruntime-node never runs in a browser (backends.ts registers it only under Node); onnxruntime-web is its
      // own bundle (browser-ort-web). Node's built-ins that the edge API imports (readModelFile, the version's package.json fallback, the bitwasm
      // loader's Node branch) become stubs that throw if reached: the page reads everything by fetch.
      alias: {
        'node:fs': join(ROOT, 'targets', 'browser', 'node-builtins.ts'),
        'node:fs/promises': join(ROOT, 'targets', 'browser', 'node-builtins.ts'),
        'node:module': join(ROOT, 'targets', 'browser', 'node-builtins.ts'),
      },
      external: ['onnxruntime-node'],
      plugins: [ORT_WEB_BESIDE_THE_PAGE],
    },
    beside: [WASM, join(ROOT, 'targets', 'browser', 'index.html')],
  },
  // onnxruntime-web for the page (see ORT_WEB_BESIDE_THE_PAGE), with the wasm runtime it fetches from beside itself.
  // Only the wasm execution provider runs here: its build fetches half the bytes of the default (WebGPU) one.
  'browser-ort-web': {
    options: {
      entryPoints: [join(ROOT, 'targets', 'browser', 'ort-web.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'browser', 'ort-web.js'),
      platform: 'browser',
      target: 'es2022',
      alias: { 'onnxruntime-web': 'onnxruntime-web/wasm' },
    },
    beside: [
      join(ROOT, 'node_modules', 'onnxruntime-web', 'dist', 'ort-wasm-simd-threaded.wasm'),
      join(ROOT, 'node_modules', 'onnxruntime-web', 'dist', 'ort-wasm-simd-threaded.mjs'),
    ],
  },
  dashboard: {
    options: {
      entryPoints: [join(ROOT, 'app', 'renderer', 'main.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'dashboard', 'dashboard.js'),
      platform: 'browser',
      target: 'es2022',
      // A classic script, the same file from Electron's app scheme and over HTTP; its CSS lands in dashboard.css.
      format: 'iife',
    },
    beside: [join(ROOT, 'app', 'renderer', 'index.html')],
  },
  electron: {
    options: {
      entryPoints: [join(ROOT, 'app', 'main.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'electron', 'main.mjs'),
      platform: 'node',
      target: 'node20',
      // Electron comes from the app's host at run time; native runtimes and the data set package ship beside the
      // bundle in the app's node_modules (cmp deploy --target electron); TensorFlow.js only where it is installed.
      // ssh2's optional native crypto is left out: it falls back to its JavaScript, as it does wherever it is absent.
      external: ['electron', 'onnxruntime-node', 'onnxruntime-web', 'serialport', 'mnist', '@tensorflow/*', '*.node'],
      // CommonJS dependencies (protobufjs, ssh2) call require and read __dirname; an ES module has neither.
      banner: {
        js: [
          "import { createRequire as cmpCreateRequire } from 'node:module';",
          "import { dirname as cmpDirname } from 'node:path';",
          "import { fileURLToPath as cmpFileURLToPath } from 'node:url';",
          'const require = cmpCreateRequire(import.meta.url);',
          'const __filename = cmpFileURLToPath(import.meta.url);',
          'const __dirname = cmpDirname(__filename);',
        ].join(' '),
      },
    },
    beside: [WASM],
  },
  // The preload is its own bundle: a sandboxed preload must be CommonJS, the main process is an ES module.
  'electron-preload': {
    options: {
      entryPoints: [join(ROOT, 'app', 'preload.ts')],
      outfile: join(ROOT, 'dist', 'targets', 'electron', 'preload.cjs'),
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: ['electron'],
    },
    beside: [],
  },
});

/** Options every bundle shares; each bundle's own come after them. */
export const SHARED_OPTIONS: BuildOptions = Object.freeze({
  bundle: true,
  format: 'esm',
  minify: true,
  sourcemap: false,
  legalComments: 'eof',
  logLevel: 'warning',
  define: { __CMP_VERSION__: JSON.stringify(VERSION) },
});

async function main(names: string[]): Promise<void> {
  for (const name of names.length ? names : Object.keys(BUNDLES)) {
    const bundle = BUNDLES[name];
    if (!bundle) throw new Error(`Unknown bundle "${name}". Use one of: ${Object.keys(BUNDLES).join(', ')}.`);
    const outfile = bundle.options.outfile as string;
    mkdirSync(dirname(outfile), { recursive: true });
    await build({ ...SHARED_OPTIONS, ...bundle.options });
    for (const file of bundle.beside) copyFileSync(file, join(dirname(outfile), file.split('/').pop() as string));
  }
}

// Run as a script (npm run build:targets), not when a bench imports BUNDLES.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main(process.argv.slice(2));
