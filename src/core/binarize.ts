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

/** Where the rows of a flat array lie: value j of row r is at `r * rowStep + j * step`. */
export interface RowLayout {
  rowStep: number;
  step: number;
}

/** A two-level fit of each row: bits in the values' own layout (1 = upper level), levels per row in float64. */
export interface TwoLevelFit {
  bits: Uint8Array;
  upper: Float64Array;
  lower: Float64Array;
}

/**
 * Fits two levels to each row of `values`. `dab`: the split minimising the reconstruction error (bestSplit over the
 * row sorted descending), upper = mean of the values at or above it, lower = mean of those below. `xnor`: split at 0,
 * upper = -lower = mean |w|. Sums are float64. DAB's split is found without sorting rows (see DabSearch); `layout`
 * lets it read a dense layer's [in, out] weights column by column. Training fits every layer at every batch with the
 * same method in WebAssembly (compress/binarize-wasm.ts), tested equal to this.
 */
export function fitTwoLevel(
  values: Float32Array,
  rows: number,
  rowLength: number,
  mode: Exclude<BinarizeMode, 'none'>,
  layout: RowLayout = { rowStep: rowLength, step: 1 },
): TwoLevelFit {
  const bits = new Uint8Array(values.length);
  const upper = new Float64Array(rows);
  const lower = new Float64Array(rows);
  const sorter = mode === 'dab' ? new DabSearch(rowLength) : undefined;
  for (let r = 0; r < rows; r++) {
    const base = r * layout.rowStep;
    const step = layout.step;
    const threshold = sorter ? sorter.threshold(values, base, step) : 0;
    let upSum = 0;
    let upCount = 0;
    let loSum = 0;
    let absSum = 0;
    for (let k = 0, at = base; k < rowLength; k++, at += step) {
      const v = values[at];
      absSum += Math.abs(v);
      if (v >= threshold) {
        bits[at] = 1;
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
  return { bits, upper, lower };
}

/** A two-level fitter with fitTwoLevel's contract and results: binarizeRows and freeze take one. */
export type TwoLevelFitter = typeof fitTwoLevel;

/** DAB's threshold of each row (the lowest value of its upper level), by DabSearch; `layout` as in fitTwoLevel. */
export function dabThresholds(
  values: Float32Array,
  rows: number,
  rowLength: number,
  layout: RowLayout = { rowStep: rowLength, step: 1 },
): Float32Array {
  const search = new DabSearch(rowLength);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) out[r] = search.threshold(values, r * layout.rowStep, layout.step);
  return out;
}

/** Buckets DabSearch spreads a row over (at most 256: a bucket index is a byte). */
const SEARCH_BUCKETS = 128;

/**
 * DAB's threshold for one row at a time, without sorting the row: the bestSplit-th largest value. The split score
 * F(k, S) = S^2/k + (T - S)^2/(n - k) (k values above the split summing to S) is jointly convex in (k, S), so over the
 * splits inside a bucket of values in [lo, hi] it is at most its largest value at the corners (K, S), (K + c, S + c*lo)
 * and (K + c, S + c*hi) of the region those splits lie in. Values go into SEARCH_BUCKETS equal-width buckets; the
 * score is exact at bucket edges, and only buckets whose corner bound beats the best edge are sorted and searched,
 * usually a few of about 3 values each. A row costs three passes instead of a sort. Sums are float64 in another order
 * than bestSplit's, so the two can differ only where two splits score equal to rounding.
 */
export class DabSearch {
  private readonly bucketOf: Uint8Array;
  private readonly counts = new Int32Array(SEARCH_BUCKETS);
  private readonly sums = new Float64Array(SEARCH_BUCKETS);
  private readonly offsets = new Int32Array(SEARCH_BUCKETS);
  private readonly fill = new Int32Array(SEARCH_BUCKETS);
  private readonly members: Float64Array;

  constructor(private readonly length: number) {
    this.bucketOf = new Uint8Array(length);
    this.members = new Float64Array(length);
  }

  /** The threshold of the row whose value j is `values[base + j * step]`. */
  threshold(values: ArrayLike<number>, base: number, step: number): number {
    const { length: n, bucketOf, counts, sums, offsets, fill, members } = this;
    let min = Infinity;
    let max = -Infinity;
    let total = 0;
    for (let k = 0, at = base; k < n; k++, at += step) {
      const v = values[at];
      if (v < min) min = v;
      if (v > max) max = v;
      total += v;
    }
    if (n < 2 || !(max > min)) return max;
    counts.fill(0);
    sums.fill(0);
    const scale = SEARCH_BUCKETS / (max - min);
    for (let k = 0, at = base; k < n; k++, at += step) {
      const v = values[at];
      const b = Math.min(SEARCH_BUCKETS - 1, ((v - min) * scale) | 0);
      bucketOf[k] = b;
      counts[b]++;
      sums[b] += v;
    }
    // A bucket's nominal range bounds its values (max falls in the top bucket, whose range ends at max).
    const width = (max - min) / SEARCH_BUCKETS;
    // The best split at a bucket edge (top bucket first), and its threshold: the lowest value above the edge.
    let best = -Infinity;
    let edgeBucket = SEARCH_BUCKETS - 1;
    let above = 0;
    let sumAbove = 0;
    for (let b = SEARCH_BUCKETS - 1; b >= 0; b--) {
      if (counts[b] === 0) continue;
      above += counts[b];
      sumAbove += sums[b];
      if (above < n && splitScore(above, sumAbove, total, n) > best) {
        best = splitScore(above, sumAbove, total, n);
        edgeBucket = b;
      }
    }
    // Buckets whose corner bound reaches the best edge (a relative slack keeps rounding from skipping the bucket that
    // holds the best split) are gathered in one pass, each into its own stretch of `members`.
    const floor = best - Math.abs(best) * 1e-9;
    let gathered = 0;
    above = 0;
    sumAbove = 0;
    for (let b = SEARCH_BUCKETS - 1; b >= 0; b--) {
      const c = counts[b];
      offsets[b] = -1;
      if (c > 1) {
        const bound = Math.max(
          splitScore(above, sumAbove, total, n),
          splitScore(above + c, sumAbove + c * (min + b * width), total, n),
          splitScore(above + c, sumAbove + c * (min + (b + 1) * width), total, n),
        );
        if (bound >= floor) {
          offsets[b] = gathered;
          gathered += c;
        }
      }
      above += c;
      sumAbove += sums[b];
    }
    // The best edge's threshold is the lowest value of the bucket above it, found in the same pass.
    let bestThreshold = Infinity;
    fill.set(offsets);
    for (let k = 0, at = base; k < n; k++, at += step) {
      const b = bucketOf[k];
      if (b === edgeBucket && values[at] < bestThreshold) bestThreshold = values[at];
      if (fill[b] >= 0) members[fill[b]++] = values[at];
    }
    above = 0;
    sumAbove = 0;
    for (let b = SEARCH_BUCKETS - 1; b >= 0; b--) {
      const c = counts[b];
      if (offsets[b] >= 0) {
        const inside = members
          .subarray(offsets[b], offsets[b] + c)
          .sort()
          .reverse();
        let s = sumAbove;
        for (let m = 1; m < c; m++) {
          s += inside[m - 1];
          if (splitScore(above + m, s, total, n) > best) {
            best = splitScore(above + m, s, total, n);
            bestThreshold = inside[m - 1];
          }
        }
      }
      above += c;
      sumAbove += sums[b];
    }
    return bestThreshold;
  }
}

/**
 * Binarizes each row of a [rows, rowLength] matrix with fitTwoLevel (or `fit`, a faster fitter giving the same
 * results). Levels are rounded to float16, the precision they are stored with, so every consumer uses the same numbers.
 */
export function binarizeRows(
  values: Float32Array,
  rows: number,
  rowLength: number,
  mode: Exclude<BinarizeMode, 'none'>,
  fit: TwoLevelFitter = fitTwoLevel,
): BinaryRows {
  const { bits, upper, lower } = fit(values, rows, rowLength, mode);
  return {
    mode,
    rows,
    rowLength,
    packed: packBits(bits, rows, rowLength),
    upper: roundToFloat16(Float32Array.from(upper)),
    lower: roundToFloat16(Float32Array.from(lower)),
  };
}

/**
 * DAB's split score F(k, s) = s^2/k + (total - s)^2/(n - k) of k values summing to s above the split, extended to its
 * closure at k = 0 and k = n (where only s = total is a split).
 */
function splitScore(k: number, s: number, total: number, n: number): number {
  if (k <= 0) return (total * total) / n;
  if (k >= n) return s === total ? (s * s) / n : Infinity;
  return (s * s) / k + ((total - s) * (total - s)) / (n - k);
}
