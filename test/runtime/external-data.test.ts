// ONNX files with external data run in every runtime and command from any working directory: the side file is read
// from the model's folder, and a location outside that folder is refused in one line.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import {
  decodeModel,
  encodeModel,
  encodeOnnxModel,
  floatTensor,
  node,
  valueInfo,
  type OnnxTensor,
} from '../../src/core/onnx.js';
import { loadDataset, type Dataset } from '../../src/data/datasets.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { modelFilesOf, parseModelFile, readModelFile } from '../../src/runtime/model-file.js';
import { assertOneLineError, CLI, maxAbsDiff, runCli, tempDir } from '../helpers.js';

const SAMPLES = 50;
let data: Dataset;

before(async () => {
  data = await loadDataset('mnist', { limitTrain: 1, limitTest: SAMPLES });
});

/** A 784-16-10 MLP (MatMul, Add, Relu) as a foreign exporter writes it, with deterministic weights. */
function mlp(): { initializers: OnnxTensor[]; encode(initializers: OnnxTensor[]): Uint8Array } {
  let state = 7;
  const next = (): number => {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const values = (n: number): number[] => Array.from({ length: n }, next);
  const initializers = [
    floatTensor('w1', [784, 16], values(784 * 16)),
    floatTensor('b1', [16], values(16)),
    floatTensor('w2', [16, 10], values(160)),
  ];
  const nodes = [
    node('Flatten', ['input'], ['flat'], { axis: 1 }),
    node('MatMul', ['flat', 'w1'], ['h1']),
    node('Add', ['h1', 'b1'], ['h2']),
    node('Relu', ['h2'], ['h3']),
    node('MatMul', ['h3', 'w2'], ['output']),
  ];
  return {
    initializers,
    encode: (stored) =>
      encodeModel({
        name: 'external',
        nodes,
        initializers: stored,
        inputs: [valueInfo('input', ['batch', 1, 28, 28])],
        outputs: [valueInfo('output', ['batch', 10])],
        opset: 17,
        producerVersion: 'test',
        metadata: {},
      }),
  };
}

/** The same model with w1 and w2 moved to the side file `location` (relative to the model's folder). */
function withExternalData(dir: string, location: string, sideFile = join(dir, location)): Uint8Array {
  const model = mlp();
  const chunks: Buffer[] = [];
  let offset = 0;
  const stored = model.initializers.map((t): OnnxTensor => {
    if (t.name === 'b1') return t;
    const raw = Buffer.from(t.rawData as Uint8Array);
    chunks.push(raw);
    const entry = {
      ...t,
      rawData: new Uint8Array(0),
      dataLocation: 1,
      externalData: [
        { key: 'location', value: location },
        { key: 'offset', value: String(offset) },
        { key: 'length', value: String(raw.length) },
      ],
    };
    offset += raw.length;
    return entry;
  });
  writeFileSync(sideFile, Buffer.concat(chunks));
  return model.encode(stored);
}

test('a model with external data gives the embedded model outputs in ort-node and ort-web, read from anywhere', async () => {
  const dir = tempDir();
  const path = join(dir, 'mlp.onnx');
  writeFileSync(path, withExternalData(dir, 'mlp.onnx.data'));
  const embedded = parseModelFile(mlp().encode(mlp().initializers), 'embedded.onnx');
  const reference = await createBackend('ort-node', embedded);
  const expected = await predict(reference, embedded, data, SAMPLES);
  await reference.dispose();
  const file = readModelFile(path);
  assert.ok(file.fileBytes < 2000, `the .onnx keeps its weights outside (${file.fileBytes} bytes)`);
  assert.deepEqual(
    file.externalData?.map((e) => e.bytes),
    [(784 * 16 + 160) * 4],
  );
  // What a deploy ships beside the model: the side file too, at its place relative to the model.
  assert.deepEqual(
    modelFilesOf(file).map((f) => f.name),
    ['mlp.onnx', 'mlp.onnx.data'],
  );
  for (const name of ['ort-node', 'ort-web']) {
    const backend = await createBackend(name, file);
    const actual = await predict(backend, file, data, SAMPLES);
    await backend.dispose();
    assert.ok(maxAbsDiff(actual, expected) <= 1e-5, `${name}: max abs diff ${maxAbsDiff(actual, expected)}`);
  }
});

test('cmp eval, run and inspect read external data beside the model when run from another folder', () => {
  const dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(join(models, 'weights'), { recursive: true });
  const path = join(models, 'mlp.onnx');
  writeFileSync(path, withExternalData(models, 'weights/mlp.bin'));
  const elsewhere = tempDir();
  const common = ['--data', 'mnist', '--limit', String(SAMPLES), '--json', '--quiet'];
  const evaluated = runCli(['eval', path, ...common], elsewhere);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal((JSON.parse(evaluated.stdout) as { count: number }).count, SAMPLES);
  const ran = runCli(['run', path, '--backend', 'ort-web', ...common], elsewhere);
  assert.equal(ran.code, 0, ran.stderr);
  assert.equal((JSON.parse(ran.stdout) as { samples: number }).samples, SAMPLES);
  const inspected = runCli(['inspect', path], elsewhere);
  assert.equal(inspected.code, 0, inspected.stderr);
  assert.match(inspected.stdout, /mlp\.onnx: .* \+ 49\.6 KiB in .*weights\/mlp\.bin/);
});

test('an external data location outside the model folder is refused in one line, by eval and inspect alike', () => {
  const dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(models);
  const climbing = join(models, 'climbing.onnx');
  writeFileSync(climbing, withExternalData(models, '../secret.bin', join(dir, 'secret.bin')));
  const absolute = join(models, 'absolute.onnx');
  writeFileSync(absolute, withExternalData(models, join(dir, 'abs.bin'), join(dir, 'abs.bin')));
  for (const [path, location] of [
    [climbing, '../secret.bin'],
    [absolute, join(dir, 'abs.bin')],
  ]) {
    const pattern = new RegExp(
      `keeps tensor "w1" in "${location.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}", a path outside the model's folder\\. Keep the data file beside the model`,
    );
    assertOneLineError(runCli(['eval', path, '--data', 'mnist', '--limit', '10', '--quiet']), pattern);
    assertOneLineError(runCli(['inspect', path]), pattern);
  }
});

test('external data through a link out of the model folder, or from anything but a regular file, is refused', () => {
  const dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(models);
  const cases: [string, string, RegExp][] = [
    ['passwd-link.bin', '/etc/passwd', /a link to a file outside the model's folder/],
    ['zero-link.bin', '/dev/zero', /a link to a file outside the model's folder/],
    ['fifo.bin', '', /which is not a regular file/],
  ];
  for (const [location, target, problem] of cases) {
    const path = join(models, `${location}.onnx`);
    writeFileSync(path, withExternalData(models, location, join(dir, 'written-elsewhere.bin')));
    if (target) symlinkSync(target, join(models, location));
    else assert.equal(spawnSync('mkfifo', [join(models, location)]).status, 0);
    // A read that never ends (a FIFO no one writes, /dev/zero) is a hang: the guard is far above a normal inspect.
    const r = spawnSync(process.execPath, [CLI, 'inspect', path], { encoding: 'utf8', timeout: 60_000 });
    assertOneLineError({ code: r.status ?? -1, stderr: r.stderr }, problem);
    assert.doesNotMatch(r.stderr, /root:/, 'nothing of the file is quoted');
  }
  // A link that stays inside the folder is fine.
  const inside = join(models, 'inside.onnx');
  writeFileSync(inside, withExternalData(models, 'link-inside.bin', join(models, 'real.bin')));
  symlinkSync('real.bin', join(models, 'link-inside.bin'));
  assert.equal(runCli(['inspect', inside]).code, 0);
});

test('external data is read only up to the declared size of its tensor', () => {
  const dir = tempDir();
  const path = join(dir, 'long.onnx');
  const bytes = withExternalData(dir, 'long.bin');
  // The side file is far longer than its tensors, and w1's entry claims all of it.
  const model = decodeModel(bytes, path);
  const w1 = model.graph?.initializer?.find((t) => t.name === 'w1') as OnnxTensor;
  w1.externalData = (w1.externalData ?? []).map((e) => (e.key === 'length' ? { ...e, value: String(1 << 20) } : e));
  writeFileSync(join(dir, 'long.bin'), Buffer.alloc(1 << 20));
  writeFileSync(path, encodeOnnxModel(model, path));
  assertOneLineError(runCli(['inspect', path]), /tensor "w1" declares 1048576 bytes in "long\.bin" for its 50176/);
});

test('eval reads external data beside the model, never a same-named file in the working directory', () => {
  const dir = tempDir();
  const models = join(dir, 'models');
  mkdirSync(join(models, 'weights'), { recursive: true });
  const path = join(models, 'mlp.onnx');
  writeFileSync(path, withExternalData(models, 'weights/mlp.bin'));
  // A decoy where a reader relative to the working directory would look: the same name, 8 bytes, so that using it
  // fails (the tensors need 50,816) instead of passing by chance.
  const elsewhere = tempDir();
  mkdirSync(join(elsewhere, 'weights'));
  writeFileSync(join(elsewhere, 'weights', 'mlp.bin'), Buffer.alloc(8));
  const accuracy = (cwd: string): number => {
    const r = runCli(['eval', path, '--data', 'mnist', '--limit', String(SAMPLES), '--json', '--quiet'], cwd);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { accuracy: number }).accuracy;
  };
  assert.equal(accuracy(elsewhere), accuracy(models));
  const ran = runCli(['run', path, '--data', 'mnist', '--limit', String(SAMPLES), '--json', '--quiet'], elsewhere);
  assert.equal(ran.code, 0, ran.stderr);
});
