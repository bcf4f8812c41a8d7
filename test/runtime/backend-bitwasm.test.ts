// The bitwasm backend: batch 1 and batched agree, its reference kernels too; auto picks it per model or falls back.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import type { BinarizeMode } from '../../src/core/spec.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBitwasmBackend } from '../../src/runtime/backend-bitwasm.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile, readModelFile, type ModelFile } from '../../src/runtime/model-file.js';
import { binarizedCase, fixtureData, fixtures, FLOAT_MLP } from '../fixtures.js';
import { allowanceFor } from './conformance.js';
import { maxAbsDiff, runCli, sharedFile, tempDir } from '../helpers.js';

/** Inputs per case: bitwasm against the trained model and every other backend is the conformance suite's. */
const SAMPLES = 60;
const THIRD_PARTY = sharedFile('models', 'lenet5-mnist-pytorch.onnx');

let data: Dataset;
const files = new Map<string, ModelFile>();

const CASES: {
  name: string;
  arch: 'mlp' | 'lenet';
  weights: BinarizeMode;
  activations: BinarizeMode;
  keepFloat?: string[];
  int8?: string[];
}[] = [
  {
    name: 'mlp dab weights, float first/last',
    arch: 'mlp',
    weights: 'dab',
    activations: 'none',
    keepFloat: ['first', 'last'],
  },
  { name: 'mlp dab weights+activations', arch: 'mlp', weights: 'dab', activations: 'dab' },
  { name: 'mlp xnor weights+activations', arch: 'mlp', weights: 'xnor', activations: 'xnor' },
  { name: 'lenet dab weights+activations (binary conv)', arch: 'lenet', weights: 'dab', activations: 'dab' },
  {
    name: 'mlp hybrid (int8 first and last)',
    arch: 'mlp',
    weights: 'dab',
    activations: 'none',
    int8: ['first', 'last'],
  },
  {
    name: 'lenet hybrid (int8 first and last)',
    arch: 'lenet',
    weights: 'dab',
    activations: 'none',
    int8: ['first', 'last'],
  },
];

before(async () => {
  data = await fixtureData(binarizedCase('mlp', 'dab', 'dab').data);
});

for (const c of CASES) {
  test(`${c.name}: bitwasm gives batch 1 the batched logits exactly, and its reference kernels conform to it`, async () => {
    const trained = await fixtures.model(binarizedCase(c.arch, c.weights, c.activations, c.keepFloat, c.int8));
    const file = parseModelFile(exportOnnx(trained.frozen).bytes, `${c.name}.onnx`);
    files.set(c.name, file);
    const bitwasm = await createBackend('bitwasm', file);
    assert.equal(bitwasm.name, 'bitwasm');
    const batched = await predict(bitwasm, file, data, SAMPLES, 30);
    const single = await predict(bitwasm, file, data, 20, 1);
    await bitwasm.dispose();
    const classes = data.labels.length;
    assert.deepEqual(single, batched.subarray(0, 20 * classes), 'batch 1 gives the batched logits exactly');
    // The plain TypeScript kernels, judged against the wasm ones by the conformance suite's rule.
    const reference = await createBitwasmBackend(file, 'reference');
    const ref = await predict(reference, file, data, SAMPLES, 30);
    const relative = allowanceFor('bitwasm', { file }).relative;
    for (let i = 0; i < SAMPLES; i++) {
      const want = batched.subarray(i * classes, (i + 1) * classes);
      const scale = Math.max(1, ...Array.from(want, Math.abs));
      const diff = maxAbsDiff(ref.subarray(i * classes, (i + 1) * classes), want);
      assert.ok(diff <= relative * scale, `image ${i}: reference kernels off by ${diff}`);
    }
  });
}

test('bitwasm keeps binary weights packed: resident weight bytes far below float32', async () => {
  const file = files.get('mlp dab weights+activations');
  assert.ok(file, 'the model test ran first');
  const backend = await createBitwasmBackend(file);
  // fc1 784x96, fc2 96x64 binary (1 bit plus a few floats per row); logits 64x10 float.
  const float32Bytes = 4 * (784 * 96 + 96 * 64 + 64 * 10);
  assert.ok(backend.engine.weightBytes * 10 < float32Bytes, `${backend.engine.weightBytes} bytes resident`);
  await backend.dispose();
});

test('auto races bitwasm against ort-node on binary cmp models and keeps the faster; float and third-party files go to ort-node', async () => {
  for (const name of ['mlp dab weights+activations', 'lenet dab weights+activations (binary conv)']) {
    const binary = files.get(name);
    assert.ok(binary, 'the model test ran first');
    const chosen = await createBackend('auto', binary);
    const medians = chosen.choice?.medianMs ?? {};
    assert.deepEqual(Object.keys(medians).sort(), ['bitwasm', 'ort-node'], name);
    assert.equal(chosen.name, medians.bitwasm <= medians['ort-node'] ? 'bitwasm' : 'ort-node', name);
    assert.match(chosen.choice?.reason ?? '', new RegExp(`^auto: ${chosen.name} [0-9.]+ ms per batch-1 call against`));
    // Which one wins is a speed question, which a loaded machine can turn around: npm run bench -- models holds the
    // goal that a binarized MLP is several times faster on bitwasm.
    await chosen.dispose();
  }
  const trained = await fixtures.model(FLOAT_MLP);
  const float = parseModelFile(exportOnnx(trained.frozen).bytes, 'float.onnx');
  const auto = await createBackend('auto', float);
  assert.equal(auto.name, 'ort-node');
  assert.equal(auto.choice, undefined, 'nothing to race: bitwasm ranks last for a float model');
  assert.equal(
    (await createBackend('bitwasm', float)).name,
    'bitwasm',
    'bitwasm still runs float cmp models on request',
  );
  assert.equal((await createBackend('auto', readModelFile(THIRD_PARTY))).name, 'ort-node');
});

test('--backend bitwasm on a third-party model is one line naming the unsupported op; auto falls back', () => {
  const failed = runCli(['run', THIRD_PARTY, '--backend', 'bitwasm', '--data', 'mnist', '--limit', '20']);
  assert.equal(failed.code, 1);
  const lines = failed.stderr.trim().split('\n');
  assert.equal(lines.length, 1, failed.stderr);
  assert.match(lines[0], /bitwasm: .*lenet5-mnist-pytorch\.onnx uses op (Gemm|Conv|Relu|MaxPool|Flatten|Reshape)/);
  assert.match(lines[0], /does not support/);
  const fallback = runCli(['run', THIRD_PARTY, '--backend', 'auto', '--data', 'mnist', '--limit', '20', '--json']);
  assert.equal(fallback.code, 0, fallback.stderr);
  const report = JSON.parse(fallback.stdout) as { backend: string; accuracy: number };
  assert.equal(report.backend, 'ort-node');
  assert.ok(report.accuracy > 0.8, `accuracy ${report.accuracy}`);
});

test('cmp run --backend bitwasm --profile prints accuracy, batch-1 latency and one profile row per layer', () => {
  const file = files.get('lenet dab weights+activations (binary conv)');
  assert.ok(file, 'the model test ran first');
  const path = join(tempDir(), 'lenet.onnx');
  writeFileSync(path, file.bytes);
  const result = runCli([
    'run',
    path,
    '--backend',
    'bitwasm',
    '--data',
    'fashion-mnist',
    '--limit',
    '60',
    '--profile',
    '--json',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as {
    backend: string;
    samples: number;
    accuracy: number;
    latencyMs: { p50: number; p99: number; samples: number };
    profile: { name: string; calls: number; meanMs: number; p50Ms: number }[];
    profiledP50Ms: number;
  };
  assert.equal(report.backend, 'bitwasm');
  assert.equal(report.samples, 60);
  assert.ok(report.latencyMs.p50 > 0 && report.latencyMs.p99 >= report.latencyMs.p50);
  assert.deepEqual(
    report.profile.map((p) => p.name),
    ['conv1', 'pool1', 'conv2', 'pool2', 'fc1', 'logits'],
  );
  assert.ok(report.profile.every((p) => p.calls === 60 && p.p50Ms > 0));
  assert.ok(report.profiledP50Ms > 0, 'the profiled pass reports its own whole-call p50 beside the layers');
  const text = runCli(['run', path, '--backend', 'bitwasm', '--data', 'fashion-mnist', '--limit', '20', '--profile']);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /batch-1 p50 ms/);
  assert.match(text.stdout, /conv2 +conv 1-bit w, dab in \(popcount\)/);
  assert.match(text.stdout, /^The layers' p50s add up to [\d.]+ µs of a profiled call's p50 of [\d.]+ µs/m);
});
