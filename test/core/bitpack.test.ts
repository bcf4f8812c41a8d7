// The cmp bit format against the golden vectors shared with the firmware's C tests.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { expandBinary, packBits, packedRowBytes, unpackBits } from '../../src/core/bitpack.js';

interface GoldenCase {
  name: string;
  rows: number;
  rowLength: number;
  bits: number[];
  packed: number[];
  upper: number[];
  lower: number[];
  weights: number[];
}

const golden = JSON.parse(readFileSync(new URL('../golden/bitpack.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

for (const c of golden.cases) {
  test(`packBits matches golden "${c.name}"`, () => {
    assert.deepEqual([...packBits(c.bits, c.rows, c.rowLength)], c.packed);
  });

  test(`unpackBits inverts golden "${c.name}"`, () => {
    assert.deepEqual([...unpackBits(Uint8Array.from(c.packed), c.rows, c.rowLength)], c.bits);
  });

  test(`expandBinary gives golden weights for "${c.name}"`, () => {
    const w = expandBinary(
      Uint8Array.from(c.packed),
      c.rows,
      c.rowLength,
      Float32Array.from(c.upper),
      Float32Array.from(c.lower),
    );
    assert.deepEqual([...w], c.weights);
  });
}

test('rows start on byte boundaries and padding bits stay zero', () => {
  assert.equal(packedRowBytes(9), 2);
  const packed = packBits(new Array(18).fill(1), 2, 9);
  assert.deepEqual([...packed], [255, 1, 255, 1]);
});

test('round trip over odd random shapes', () => {
  for (const [rows, len] of [
    [1, 1],
    [5, 7],
    [3, 33],
    [17, 100],
  ]) {
    const bits = Array.from({ length: rows * len }, (_, i) => ((i * 2654435761) >>> 7) & 1);
    assert.deepEqual([...unpackBits(packBits(bits, rows, len), rows, len)], bits);
  }
});
