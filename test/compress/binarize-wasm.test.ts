// Training's WebAssembly binarization kernels against the TypeScript reference (core/binarize.ts) and sorting.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { binarizeKernels } from '../../src/compress/binarize-wasm.js';
import { bestSplit, binarizeRows, dabThresholds, fitTwoLevel } from '../../src/core/binarize.js';

let seed = 7;
const rnd = (): number => (seed = (seed * 16807) % 2147483647) / 2147483647;

// Bell-shaped, skewed, two-cluster and heavily tied rows, like trained weights and worse; then rows crowded into one
// bucket by an outlier (the kernels' heap sort) and constant rows (no split).
const SHAPES: [string, () => number][] = [
  ['bell', () => (rnd() + rnd() + rnd() + rnd() - 2) * 0.05],
  ['skewed', () => rnd() ** 4 - 0.1],
  ['two-cluster', () => (rnd() < 0.3 ? 0.8 : -0.2) + rnd() * 0.05],
  ['tied', () => Math.round(rnd() * 4) / 4],
  ['outlier', () => (rnd() < 0.01 ? 1 : rnd() * 1e-3)],
  ['constant', () => 0.25],
];

/** [rowLength, rows]: rows a multiple of 4 or not (the kernels pad), a row of one value, long rows. */
const SIZES: [number, number][] = [
  [300, 24],
  [97, 10],
  [1, 5],
  [3, 7],
];

/** Each row's DAB threshold by sorting it and bestSplit; rows of a [rowLength, rows] matrix are its columns. */
function sortedThresholds(values: Float32Array, rows: number, rowLength: number): number[] {
  return Array.from({ length: rows }, (_, r) => {
    const sorted = Float64Array.from({ length: rowLength }, (_, j) => values[j * rows + r])
      .sort()
      .reverse();
    return sorted[Math.max(1, bestSplit(sorted)) - 1];
  });
}

/** The transpose of a [rowLength, rows] matrix: rows contiguous, as a conv layer's filters. */
function transpose(values: Float32Array, rows: number, rowLength: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let j = 0; j < rowLength; j++) for (let r = 0; r < rows; r++) out[r * rowLength + j] = values[j * rows + r];
  return out;
}

test('the wasm DAB search finds the sorted split on every row, as columns and as contiguous rows', () => {
  const kernels = binarizeKernels();
  for (const [name, shape] of SHAPES) {
    for (const [rowLength, rows] of SIZES) {
      const values = Float32Array.from({ length: rows * rowLength }, shape);
      const expected = sortedThresholds(values, rows, rowLength);
      const reference = dabThresholds(values, rows, rowLength, { rowStep: 1, step: rows });
      const byColumn = kernels.fit(values, rows, rowLength, 'dab', { rowStep: 1, step: rows }).fit.thresholds;
      const byRow = kernels.fit(transpose(values, rows, rowLength), rows, rowLength, 'dab', {
        rowStep: rowLength,
        step: 1,
      }).fit.thresholds;
      for (let r = 0; r < rows; r++) {
        const at = `${name} ${rowLength}x${rows} row ${r}`;
        assert.equal(byColumn[r], expected[r], `${at} (columns)`);
        assert.equal(byRow[r], expected[r], `${at} (rows)`);
        assert.equal(byColumn[r], reference[r], `${at} (DabSearch)`);
      }
    }
  }
});

test('the wasm fit gives the levels of fitTwoLevel, in the layout it was given, for dab and xnor', () => {
  const kernels = binarizeKernels();
  const [rowLength, rows] = [200, 9];
  const values = Float32Array.from({ length: rows * rowLength }, SHAPES[1][1]);
  const rowMajor = transpose(values, rows, rowLength);
  for (const mode of ['dab', 'xnor'] as const) {
    const reference = fitTwoLevel(rowMajor, rows, rowLength, mode);
    const columns = kernels.fit(values, rows, rowLength, mode, { rowStep: 1, step: rows });
    const byColumn = Float32Array.from(columns.values);
    const byRow = kernels.fit(rowMajor, rows, rowLength, mode, { rowStep: rowLength, step: 1 }).values;
    for (let r = 0; r < rows; r++) {
      let ups = 0;
      for (let j = 0; j < rowLength; j++) {
        const bit = reference.bits[r * rowLength + j];
        const level = Math.fround(bit ? reference.upper[r] : reference.lower[r]);
        ups += bit;
        // The lower level is (total - upper sum) / count here, a separately summed mean there: equal to rounding.
        assert.ok(Math.abs(byColumn[j * rows + r] - level) <= 1e-6 * Math.abs(level), `${mode} row ${r} value ${j}`);
        assert.equal(byRow[r * rowLength + j], byColumn[j * rows + r], `${mode} row ${r} value ${j} (rows)`);
      }
      assert.equal(columns.fit.ups[r], ups, `${mode} row ${r} count above the split`);
    }
    assert.ok(reference.bits.includes(0) && reference.bits.includes(1), 'both levels are used');
  }
});

test('the wasm gradient passes dy straight through where |w| <= 1 and adds the mean of dy over the level', () => {
  const kernels = binarizeKernels();
  const [rowLength, rows] = [50, 6];
  const values = Float32Array.from({ length: rows * rowLength }, () => (rnd() - 0.5) * 2.4);
  const dy = Float32Array.from({ length: values.length }, () => rnd() - 0.5);
  const layout = { rowStep: 1, step: rows };
  const { fit } = kernels.fit(values, rows, rowLength, 'dab', layout);
  const grad = Float32Array.from(kernels.gradient(values, dy, fit, rows, rowLength, layout));
  let clipped = 0;
  for (let r = 0; r < rows; r++) {
    const sums = [0, 0];
    const counts = [0, 0];
    for (let j = 0; j < rowLength; j++) {
      const bit = +(values[j * rows + r] >= fit.thresholds[r]);
      sums[bit] += dy[j * rows + r];
      counts[bit]++;
    }
    for (let j = 0; j < rowLength; j++) {
      const v = values[j * rows + r];
      const bit = +(v >= fit.thresholds[r]);
      const straight = Math.abs(v) <= 1 ? dy[j * rows + r] : 0;
      clipped += +(Math.abs(v) > 1);
      const expected = straight + sums[bit] / Math.max(counts[bit], 1);
      assert.ok(
        Math.abs(grad[j * rows + r] - expected) < 1e-6,
        `row ${r} value ${j}: ${grad[j * rows + r]} vs ${expected}`,
      );
    }
  }
  assert.ok(clipped > 0, 'some weights lie outside [-1, 1]');
});

test('the wasm fitter gives the bits and float64 levels of fitTwoLevel exactly, so freeze packs the same layers', () => {
  const kernels = binarizeKernels();
  for (const [name, shape] of SHAPES) {
    for (const [rowLength, rows] of SIZES) {
      const values = Float32Array.from({ length: rows * rowLength }, shape);
      for (const mode of ['dab', 'xnor'] as const) {
        const at = `${name} ${rowLength}x${rows} ${mode}`;
        assert.deepEqual(
          kernels.fitRows(values, rows, rowLength, mode),
          fitTwoLevel(values, rows, rowLength, mode),
          at,
        );
        const fast = binarizeRows(values, rows, rowLength, mode, kernels.fitRows);
        assert.deepEqual(fast, binarizeRows(values, rows, rowLength, mode), at);
      }
    }
  }
});
