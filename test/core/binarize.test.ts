// DAB and XNOR two-level fits against brute force and their definitions.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { bestSplit, binarizeRows, dabThresholds } from '../../src/core/binarize.js';
import { unpackBits } from '../../src/core/bitpack.js';
import { fromFloat16Bits, roundToFloat16, toFloat16Bits } from '../../src/core/float16.js';

function reconstructionError(sorted: number[], k: number): number {
  const up = sorted.slice(0, k);
  const down = sorted.slice(k);
  const mean = (a: number[]): number => a.reduce((s, v) => s + v, 0) / a.length;
  const [a, b] = [mean(up), mean(down)];
  return up.reduce((s, v) => s + (v - a) ** 2, 0) + down.reduce((s, v) => s + (v - b) ** 2, 0);
}

test('bestSplit finds the split with the smallest two-level reconstruction error', () => {
  let seed = 3;
  const rnd = (): number => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 2 - 1;
  for (let trial = 0; trial < 20; trial++) {
    const values = Array.from({ length: 5 + trial * 3 }, () => rnd() ** 3 + (trial % 2 ? 0.2 : 0)).sort(
      (a, b) => b - a,
    );
    let best = 1;
    for (let k = 2; k < values.length; k++)
      if (reconstructionError(values, k) < reconstructionError(values, best) - 1e-12) best = k;
    assert.equal(bestSplit(values), best, `trial ${trial}`);
  }
});

test('dabThresholds picks the same split as sorting each row, row-major or column by column', () => {
  let seed = 7;
  const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;
  // Bell-shaped, skewed, two-cluster and heavily tied rows, like trained weights and worse.
  const shapes: (() => number)[] = [
    () => (rnd() + rnd() + rnd() + rnd() - 2) * 0.05,
    () => rnd() ** 4 - 0.1,
    () => (rnd() < 0.3 ? 0.8 : -0.2) + rnd() * 0.05,
    () => Math.round(rnd() * 4) / 4,
  ];
  for (const [i, shape] of shapes.entries()) {
    const rows = 40;
    const rowLength = 3 + i * 97;
    const values = Float32Array.from({ length: rows * rowLength }, shape);
    const byRow = dabThresholds(values, rows, rowLength);
    const transposed = new Float32Array(values.length);
    for (let r = 0; r < rows; r++)
      for (let k = 0; k < rowLength; k++) transposed[k * rows + r] = values[r * rowLength + k];
    const byColumn = dabThresholds(transposed, rows, rowLength, { rowStep: 1, step: rows });
    for (let r = 0; r < rows; r++) {
      const sorted = Float64Array.from(values.subarray(r * rowLength, (r + 1) * rowLength))
        .sort()
        .reverse();
      const expected = sorted[bestSplit(sorted) - 1];
      assert.equal(byRow[r], expected, `shape ${i} row ${r}`);
      assert.equal(byColumn[r], expected, `shape ${i} column ${r}`);
    }
  }
});

test('dab levels are the means of the values on each side of the split', () => {
  const row = Float32Array.from([0.9, 0.8, 0.85, -0.1, -0.2, -0.15, -0.05, -0.12]);
  const b = binarizeRows(row, 1, row.length, 'dab');
  assert.deepEqual([...unpackBits(b.packed, 1, row.length)], [1, 1, 1, 0, 0, 0, 0, 0]);
  assert.equal(b.upper[0], roundToFloat16(Float32Array.from([0.85]))[0]);
  assert.equal(b.lower[0], roundToFloat16(Float32Array.from([-0.124]))[0]);
});

test('dab fits an asymmetric row better than xnor', () => {
  const row = Float32Array.from([1, 1.1, 0.9, 0.1, 0.12, 0.08, 0.11, 0.09, 0.1, 0.1]);
  const err = (mode: 'dab' | 'xnor'): number => {
    const b = binarizeRows(row, 1, row.length, mode);
    const bits = unpackBits(b.packed, 1, row.length);
    return row.reduce((s, v, i) => s + (v - (bits[i] ? b.upper[0] : b.lower[0])) ** 2, 0);
  };
  assert.ok(err('dab') < err('xnor') / 10, `dab ${err('dab')} xnor ${err('xnor')}`);
});

test('xnor splits at zero with levels +/- mean |w|', () => {
  const row = Float32Array.from([0.5, -0.25, 0.25, -1]);
  const b = binarizeRows(row, 1, 4, 'xnor');
  assert.deepEqual([...unpackBits(b.packed, 1, 4)], [1, 0, 1, 0]);
  assert.equal(b.upper[0], 0.5);
  assert.equal(b.lower[0], -0.5);
});

test('float16 conversion rounds to nearest and round-trips exact values', () => {
  for (const v of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8])
    assert.equal(fromFloat16Bits(toFloat16Bits(v)), v);
  assert.equal(fromFloat16Bits(toFloat16Bits(1 + 2 ** -11)), 1);
  assert.equal(fromFloat16Bits(toFloat16Bits(1 + 3 * 2 ** -11)), 1 + 2 ** -9);
  assert.equal(fromFloat16Bits(toFloat16Bits(1e6)), Infinity);
});
