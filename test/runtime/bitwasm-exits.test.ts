// bitwasm runs models with early exits stage by stage, from their stage files, as onnxruntime does.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { stagePath } from '../../src/core/manifest.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBitwasmBackend } from '../../src/runtime/backend-bitwasm.js';
import { createBackend, type Backend } from '../../src/runtime/backends.js';
import { readModelFile } from '../../src/runtime/model-file.js';
import { EXIT_MLP, fixtureData, fixtures, type ModelFixture } from '../fixtures.js';
import { maxAbsDiff, runCli, tempDir } from '../helpers.js';

let data: Dataset;
/** Exported models with one exit: LeNet hands a [C, H, W] activation from stage 1 to 2, the MLP a flat one. */
const models = new Map<string, string>();

/** A DAB LeNet with an exit after its first conv stage (the MLP is the one the browser and devices run). */
const EXIT_LENET: ModelFixture = {
  data: EXIT_MLP.data,
  train: { ...EXIT_MLP.train, arch: 'lenet', widths: [64] },
};

before(async () => {
  data = await fixtureData(EXIT_MLP.data);
  const dir = tempDir('bitwasm-exits');
  for (const [arch, fixture] of [
    ['lenet', EXIT_LENET],
    ['mlp', EXIT_MLP],
  ] as const) {
    const trained = await fixtures.model(fixture);
    // A threshold that some samples pass and some do not, so both ends of the exit decision run.
    (trained.frozen.exits ?? [])[0].threshold = 1.2;
    const exported = exportOnnx(trained.frozen);
    const path = join(dir, `${arch}-exit.onnx`);
    writeFileSync(path, exported.bytes);
    exported.stages.forEach((bytes, k) => writeFileSync(stagePath(path, k + 1), bytes));
    models.set(arch, path);
  }
});

test('bitwasm runs each stage file like onnxruntime-node: the activation handed on and the exit logits', async () => {
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  for (const [k, model] of [...models.values()].flatMap((m) => [1, 2].map((k) => [k, m] as const))) {
    const stage = readModelFile(stagePath(model, k));
    const ort = await createBackend('ort-node', stage);
    const bit = await createBackend('bitwasm', stage);
    const reference = await createBitwasmBackend(stage, 'reference');
    assert.equal(bit.name, 'bitwasm');
    let input: Float32Array = data.test.x.slice(0, 20 * features);
    if (k === 2) {
      // Stage 2 takes what stage 1 hands on.
      const first = readModelFile(stagePath(model, 1));
      const s1 = await createBackend('ort-node', first);
      const out = await s1.runAll?.(input, [20, ...first.inputDims]);
      input = out?.[first.manifest?.stage?.outputs[0] ?? ''] ?? new Float32Array();
      await s1.dispose();
    }
    const dims = [20, ...stage.inputDims];
    const outputs = (b: Backend): Promise<Record<string, Float32Array>> =>
      b.runAll ? b.runAll(input, dims) : Promise.reject(new Error(`${b.name} has no runAll`));
    const [expected, actual, ref] = await Promise.all([ort, bit, reference].map(outputs));
    const names = stage.manifest?.stage?.outputs ?? [];
    assert.equal(names.length, k === 1 ? 2 : 1);
    for (const name of names) {
      assert.ok(actual[name] && expected[name], `stage ${k} gives ${name}`);
      assert.equal(actual[name].length, expected[name].length, name);
      // Float outputs of 20 samples: a sample whose activation flips at a DAB threshold would move by ~0.1.
      assert.ok(maxAbsDiff(actual[name], expected[name]) <= 1e-3, `stage ${k} ${name}`);
      assert.ok(maxAbsDiff(actual[name], ref[name]) <= 1e-3, `stage ${k} ${name} reference`);
    }
    await Promise.all([ort, bit, reference].map((b) => b.dispose()));
  }
});

// A staged model on bitwasm takes the trained model's exits, labels and logits: the conformance suite
// (test/runtime/conformance.test.ts, models exit-mlp, exit-masked-mlp and two-exit-lenet).

test('cmp run --backend bitwasm runs the stages; the whole file alone is refused with one line', async () => {
  const model = models.get('mlp') ?? '';
  const args = ['run', model, '--data', 'fashion-mnist', '--limit', '200', '--json'];
  const [bit, ort] = [runCli([...args, '--backend', 'bitwasm']), runCli([...args, '--backend', 'ort-node'])];
  assert.equal(bit.code, 0, bit.stderr);
  const [b, o] = [bit, ort].map((r) => JSON.parse(r.stdout) as { backend: string; exits: { share: number }[] });
  assert.equal(b.backend, 'bitwasm');
  assert.deepEqual(
    b.exits.map((e) => e.share),
    o.exits.map((e) => e.share),
  );
  await assert.rejects(createBackend('bitwasm', readModelFile(model)), /runs .*mlp-exit\.onnx stage by stage/);
});
