// Two-level binarization fits (DAB and XNOR-Net) in plain TypeScript: the reference that export and kernels follow.

import type { BinarizeMode } from './spec.js';
import { packBits } from './bitpack.js';
import { roundToFloat16 } from './float16.js';

/** A binarized matrix in the cmp bit format (see bitpack.ts) with float16-exact levels per row. */
export interface BinaryRows {
  mode: Exclude<BinarizeMode, 'none'>;
  rows: number;
  rowLength: number;
  packed: Uint8Array;
  upper: Float32Array;
  lower: Float32Array;
}

/**
 * Chooses how many of the sorted-descending `sorted` values go to the upper level so that the two-level
 * reconstruction error is smallest (DAB). With prefix sum S_k and total T, the error is sum(v^2) - S_k^2/k -
 * (T - S_k)^2/(n - k), so the best k in 1..n-1 maximises S_k^2/k + (T - S_k)^2/(n - k). Returns k (>= 1).
 */
export function bestSplit(sorted: ArrayLike<number>): number {
  const n = sorted.length;
  if (n < 2) return n;
  let total = 0;
  for (let i = 0; i < n; i++) total += sorted[i];
  let prefix = 0;
  let best = -Infinity;
  let bestK = 1;
  for (let k = 1; k < n; k++) {
    prefix += sorted[k - 1];
    const rest = total - prefix;
    const score = (prefix * prefix) / k + (rest * rest) / (n - k);
    if (score > best) {
      best = score;
      bestK = k;
    }
  }
  return bestK;
}

/**
 * Binarizes each row of a [rows, rowLength] matrix. `dab`: the split minimising the reconstruction error, upper =
 * mean of the values at or above it, lower = mean of those below. `xnor`: split at 0, upper = -lower = mean |w|.
 * Levels are rounded to float16, the precision they are stored with, so every consumer uses the same numbers.
 */
export function binarizeRows(
  values: Float32Array,
  rows: number,
  rowLength: number,
  mode: Exclude<BinarizeMode, 'none'>,
): BinaryRows {
  const bits = new Uint8Array(rows * rowLength);
  const upper = new Float32Array(rows);
  const lower = new Float32Array(rows);
  const row = new Float64Array(rowLength);
  for (let r = 0; r < rows; r++) {
    const base = r * rowLength;
    for (let k = 0; k < rowLength; k++) row[k] = values[base + k];
    let threshold: number;
    if (mode === 'dab') {
      const sorted = Float64Array.from(row).sort().reverse();
      threshold = sorted[bestSplit(sorted) - 1];
    } else {
      threshold = 0;
    }
    let upSum = 0;
    let upCount = 0;
    let loSum = 0;
    let absSum = 0;
    for (let k = 0; k < rowLength; k++) {
      const v = row[k];
      absSum += Math.abs(v);
      if (v >= threshold) {
        bits[base + k] = 1;
        upSum += v;
        upCount++;
      } else {
        loSum += v;
      }
    }
    if (mode === 'dab') {
      upper[r] = upCount ? upSum / upCount : 0;
      lower[r] = upCount < rowLength ? loSum / (rowLength - upCount) : upper[r];
    } else {
      upper[r] = absSum / rowLength;
      lower[r] = -upper[r];
    }
  }
  return {
    mode,
    rows,
    rowLength,
    packed: packBits(bits, rows, rowLength),
    upper: roundToFloat16(upper),
    lower: roundToFloat16(lower),
  };
}
