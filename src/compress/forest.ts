// Random-forest feature importance (mean decrease in Gini impurity), the paper's "given" mask baseline.

import { makeRng } from '../core/rng.js';

/**
 * How the forest grows. The defaults follow scikit-learn's RandomForestClassifier, which the paper's baseline used:
 * bootstrap samples, sqrt(features) candidates per split, Gini impurity; trees stop at `maxDepth` or pure nodes.
 */
export interface ForestOptions {
  trees: number;
  /** Bootstrap sample per tree (drawn with replacement from the rows given). */
  samples: number;
  maxDepth: number;
  /** A node with fewer rows than this is a leaf. */
  minSplit: number;
  seed: number;
}

export const DEFAULT_FOREST: Readonly<ForestOptions> = Object.freeze({
  trees: 100,
  samples: 10000,
  maxDepth: 24,
  minSplit: 2,
  seed: 0xf0e57,
});

/**
 * Inputs in [0, 1] are split on 32 levels: a pixel's importance does not hinge on finer thresholds, and 32 bins keep
 * the split search cheap (a 100-tree forest on 10,000 MNIST digits takes seconds, where npm `ml-random-forest` 2.1.0
 * took 24 s for 2 trees on 500 digits and bags features per tree rather than per split).
 */
const BINS = 32;

/**
 * The importance of each of `features` features of the first `count` rows of `x` (row-major, values in [0, 1]) for
 * predicting `y` (class indices below `classes`): each tree's Gini decreases per feature, normalized to sum 1, averaged
 * over the trees (scikit-learn's `feature_importances_`).
 */
export function forestImportance(
  x: Float32Array,
  y: ArrayLike<number>,
  count: number,
  features: number,
  classes: number,
  options: ForestOptions = DEFAULT_FOREST,
): Float64Array {
  const q = new Uint8Array(count * features);
  for (let i = 0; i < q.length; i++) q[i] = Math.min(BINS - 1, Math.max(0, Math.floor(x[i] * BINS)));
  const rng = makeRng(options.seed);
  const perSplit = Math.max(1, Math.round(Math.sqrt(features)));
  const total = new Float64Array(features);
  const tree = new Float64Array(features);
  const rows = new Int32Array(options.samples);
  const hist = new Float64Array(BINS * classes);
  const left = new Float64Array(classes);
  const right = new Float64Array(classes);
  const candidates = new Int32Array(features);
  for (let f = 0; f < features; f++) candidates[f] = f;
  const gini = (counts: Float64Array, n: number): number => {
    let s = 0;
    for (let c = 0; c < classes; c++) s += counts[c] * counts[c];
    return n > 0 ? 1 - s / (n * n) : 0;
  };
  const grow = (start: number, end: number, depth: number): void => {
    const n = end - start;
    if (n < options.minSplit || depth >= options.maxDepth) return;
    const parent = new Float64Array(classes);
    for (let i = start; i < end; i++) parent[y[rows[i]]]++;
    const parentGini = gini(parent, n);
    if (parentGini === 0) return;
    let bestGain = 0;
    let bestFeature = -1;
    let bestBin = -1;
    // sqrt(features) distinct candidates: a partial Fisher-Yates shuffle of the feature list.
    for (let k = 0; k < perSplit; k++) {
      const j = k + Math.floor(rng() * (features - k));
      const f = candidates[j];
      candidates[j] = candidates[k];
      candidates[k] = f;
      hist.fill(0);
      for (let i = start; i < end; i++) hist[q[rows[i] * features + f] * classes + y[rows[i]]]++;
      left.fill(0);
      let nLeft = 0;
      for (let b = 0; b < BINS - 1; b++) {
        for (let c = 0; c < classes; c++) {
          left[c] += hist[b * classes + c];
          nLeft += hist[b * classes + c];
        }
        if (nLeft === 0 || nLeft === n) continue;
        for (let c = 0; c < classes; c++) right[c] = parent[c] - left[c];
        const gain = n * parentGini - nLeft * gini(left, nLeft) - (n - nLeft) * gini(right, n - nLeft);
        if (gain > bestGain) {
          bestGain = gain;
          bestFeature = f;
          bestBin = b;
        }
      }
    }
    if (bestFeature < 0) return;
    tree[bestFeature] += bestGain;
    // Partition rows in place: bins <= bestBin go left.
    let mid = start;
    for (let i = start; i < end; i++) {
      if (q[rows[i] * features + bestFeature] <= bestBin) {
        const r = rows[i];
        rows[i] = rows[mid];
        rows[mid++] = r;
      }
    }
    grow(start, mid, depth + 1);
    grow(mid, end, depth + 1);
  };
  for (let t = 0; t < options.trees; t++) {
    for (let i = 0; i < rows.length; i++) rows[i] = Math.floor(rng() * count);
    tree.fill(0);
    grow(0, rows.length, 0);
    const sum = tree.reduce((a, b) => a + b, 0);
    if (sum > 0) for (let f = 0; f < features; f++) total[f] += tree[f] / sum / options.trees;
  }
  return total;
}
