// int8 quantization per output channel against its definition.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dequantizeRows, INT8_MAX, quantizeRows } from '../../src/core/quantize.js';

test('each row gets scale max|w|/127, its largest weight maps to +/-127 and the rest round to the nearest step', () => {
  const values = Float32Array.from([0.5, -1, 0.25, 0.003, 2, 1, -0.5, 0.999]);
  const q = quantizeRows(values, 2, 4);
  assert.deepEqual([...q.scales], [Math.fround(1 / INT8_MAX), Math.fround(2 / INT8_MAX)]);
  assert.deepEqual([...q.data], [64, -127, 32, 0, 127, 64, -32, 63]);
  const back = dequantizeRows(q);
  for (let i = 0; i < values.length; i++) {
    assert.ok(Math.abs(back[i] - values[i]) <= q.scales[i >> 2] / 2 + 1e-7, `value ${i}: ${back[i]} vs ${values[i]}`);
  }
});

test('quantization is symmetric, and an all-zero row gets scale 1 and zeros', () => {
  const q = quantizeRows(Float32Array.from([0.3, -0.3, 0, 0, 0, 0]), 2, 3);
  assert.equal(q.data[0], -q.data[1]);
  assert.equal(q.scales[1], 1);
  assert.deepEqual([...q.data.subarray(3)], [0, 0, 0]);
});
