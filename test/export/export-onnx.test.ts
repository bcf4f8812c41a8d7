// How the exported ONNX stores binary and int8 layers: packed bits and float16 levels, int8 values and float32 scales.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { binarizedCase, fixtures } from '../fixtures.js';

// What the exported files compute, on every backend against the trained model, is the conformance suite's
// (test/runtime/conformance.test.ts); here, how the layers are stored.

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
});
