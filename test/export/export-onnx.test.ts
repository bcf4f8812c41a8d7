// The exported ONNX computes what the trained model computes, in onnxruntime-node and onnxruntime-web, on real images.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { predictFrozen } from '../../src/compress/train.js';
import type { BinarizeMode } from '../../src/core/spec.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { binarizedCase, fixtureData, fixtures } from '../fixtures.js';
import { maxAbsDiff } from '../helpers.js';

const SAMPLES = 200;
let data: Dataset;

before(async () => {
  data = await fixtureData(binarizedCase('mlp', 'dab', 'dab').data);
});

const CASES: { arch: 'mlp' | 'lenet'; weights: BinarizeMode; activations: BinarizeMode; int8?: string[] }[] = [
  { arch: 'mlp', weights: 'none', activations: 'none' },
  { arch: 'mlp', weights: 'dab', activations: 'none' },
  { arch: 'mlp', weights: 'xnor', activations: 'none' },
  { arch: 'mlp', weights: 'dab', activations: 'dab' },
  { arch: 'mlp', weights: 'xnor', activations: 'xnor' },
  { arch: 'lenet', weights: 'dab', activations: 'dab' },
  // The hybrid preset: int8 first layer and classifier (DequantizeLinear), DAB between.
  { arch: 'mlp', weights: 'dab', activations: 'none', int8: ['first', 'last'] },
];

for (const c of CASES) {
  const int8 = c.int8 ? ` int8=${c.int8.join(',')}` : '';
  test(`${c.arch} weights=${c.weights} activations=${c.activations}${int8}: ONNX logits equal the trained model's (ort-node, ort-web)`, async () => {
    // The same models as bitwasm's tests (test/runtime/backend-bitwasm.test.ts): trained once for both.
    const trained = await fixtures.model(binarizedCase(c.arch, c.weights, c.activations, undefined, c.int8));
    const expected = await predictFrozen(trained.frozen, data, data.test, SAMPLES);
    const file = parseModelFile(exportOnnx(trained.frozen).bytes, `${c.arch}-${c.weights}-${c.activations}.onnx`);
    for (const name of ['ort-node', 'ort-web']) {
      const backend = await createBackend(name, file);
      const actual = await predict(backend, file, data, SAMPLES, 50);
      await backend.dispose();
      const diff = maxAbsDiff(actual, expected);
      // onnxruntime fuses an int8 dense layer (DequantizeLinear into MatMul) into its MatMulNBits kernel, which
      // quantizes the layer's input to int8 too (its default accuracy level): close to cmp's float reference, not equal.
      const tolerance = c.int8 ? 0.05 : 1e-4;
      assert.ok(diff <= tolerance, `${name}: max abs difference ${diff} over ${SAMPLES} images`);
      if (c.int8) assert.ok(agreement(actual, expected) >= 0.99, `${name}: predictions agree`);
    }
    // The model learned something: a broken export of a random net would not pass the equality alone.
    assert.ok(trained.testAccuracy > 0.3, `test accuracy ${trained.testAccuracy} (chance is 0.1)`);
  });
}

test('binary layers are stored 1 bit per weight plus float16 levels', async () => {
  const trained = await fixtures.model({
    data: binarizedCase('mlp', 'dab', 'none').data,
    train: {
      arch: 'mlp',
      binarizeWeights: 'dab',
      binarizeActivations: 'none',
      widths: [512],
      epochs: 1,
      batchSize: 100,
      learningRate: 0.002,
      seed: 1,
    },
  });
  const { manifest, bytes } = exportOnnx(trained.frozen);
  const file = parseModelFile(bytes, 'dab.onnx');
  const bitsInit = (file.model.graph?.initializer ?? []).find((t) => t.name === 'fc1.bits');
  assert.equal(bitsInit?.dataType, 2, 'uint8 initializer');
  assert.deepEqual(bitsInit?.dims?.map(Number), [512, 98]);
  const fc1 = manifest.layers.find((l) => l.name === 'fc1');
  assert.equal(fc1?.weightBytes, 512 * 98 + 512 * 4);
  assert.ok((fc1?.bitsPerWeight ?? 99) <= 1.1, `fc1 bits/weight ${fc1?.bitsPerWeight}`);
  // Float weights would take 784*512*4 bytes for fc1 alone.
  assert.ok(bytes.length < (784 * 512 * 4) / 20, `file ${bytes.length} bytes`);
});

test('int8 layers are stored as int8 initializers with a float32 scale per output channel', async () => {
  const trained = await fixtures.model(binarizedCase('lenet', 'dab', 'none', undefined, ['first', 'last']));
  const { manifest, bytes } = exportOnnx(trained.frozen);
  const file = parseModelFile(bytes, 'hybrid.onnx');
  const init = (name: string) => (file.model.graph?.initializer ?? []).find((t) => t.name === name);
  assert.equal(init('conv1.weight_int8')?.dataType, 3, 'int8 initializer');
  assert.deepEqual(init('conv1.weight_int8')?.dims?.map(Number), [16, 1, 5, 5]);
  assert.deepEqual(init('logits.weight_int8')?.dims?.map(Number), [64, 10]);
  assert.deepEqual(init('logits.weight_scale')?.dims?.map(Number), [10]);
  const kinds = manifest.layers.map((l) => l.weights);
  assert.deepEqual(kinds, ['int8', 'dab', 'dab', 'int8']);
  const logits = manifest.layers[3];
  assert.equal(logits.weightBytes, 64 * 10 + 10 * 4);
  // onnxruntime runs the int8 conv and classifier as the trained model does (see the tolerance above).
  const expected = await predictFrozen(trained.frozen, data, data.test, SAMPLES);
  const backend = await createBackend('ort-node', file);
  const actual = await predict(backend, file, data, SAMPLES, 50);
  await backend.dispose();
  assert.ok(maxAbsDiff(actual, expected) <= 0.05, `max abs difference ${maxAbsDiff(actual, expected)}`);
  assert.ok(agreement(actual, expected) >= 0.99, 'predictions agree');
});

/** The share of images whose predicted class (argmax of 10 logits) is the same in both. */
function agreement(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const argmax = (v: ArrayLike<number>, i: number): number => {
    let best = 0;
    for (let k = 1; k < 10; k++) if (v[i * 10 + k] > v[i * 10 + best]) best = k;
    return best;
  };
  let same = 0;
  for (let i = 0; i < a.length / 10; i++) if (argmax(a, i) === argmax(b, i)) same++;
  return same / (a.length / 10);
}
