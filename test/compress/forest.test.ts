// Random-forest importance: the features that decide the label rank first; on real digits the border ranks last.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_FOREST, forestImportance } from '../../src/compress/forest.js';
import { importanceRanking } from '../../src/compress/mask.js';
import { maskLayout } from '../../src/core/mask.js';
import { makeRng } from '../../src/core/rng.js';
import { loadDataset } from '../../src/data/datasets.js';

test('the two features that decide the label carry most of the importance; noise features little', () => {
  const rng = makeRng(3);
  const n = 2000;
  const features = 12;
  const x = new Float32Array(n * features);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    for (let f = 0; f < features; f++) x[i * features + f] = rng();
    // Four classes from features 3 and 8: which half each one falls in.
    y[i] = (x[i * features + 3] > 0.5 ? 1 : 0) + (x[i * features + 8] > 0.5 ? 2 : 0);
  }
  const importance = forestImportance(x, y, n, features, 4, { ...DEFAULT_FOREST, trees: 20, samples: n });
  const sum = importance.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - 1) < 1e-9, `importances sum to ${sum}`);
  assert.ok(importance[3] + importance[8] > 0.8, `features 3 and 8 hold ${importance[3] + importance[8]}`);
  for (let f = 0; f < features; f++)
    if (f !== 3 && f !== 8) assert.ok(importance[f] < 0.05, `noise feature ${f}: ${importance[f]}`);
});

test('on real MNIST digits the top 5% of pixels by forest importance lie off the blank border', async () => {
  const data = await loadDataset('mnist', { limitTrain: 1000, limitTest: 10 });
  const layout = maskLayout(data.inputShape, { kind: 'pixel' });
  const ranking = importanceRanking(data.train, layout, 10, { ...DEFAULT_FOREST, trees: 20 });
  assert.equal(ranking.length, 784);
  const border = (u: number): boolean => {
    const [r, c] = [Math.floor(u / 28), u % 28];
    return r < 2 || r > 25 || c < 2 || c > 25;
  };
  // The top 5% (39 pixels) all lie off the two-pixel border, where MNIST digits never reach.
  for (const u of ranking.slice(0, 39)) assert.ok(!border(u), `pixel ${u} ranked in the top 39`);
  // Block units sum their pixels' scores: the ranking covers every 4x4 block once.
  const blocks = importanceRanking(data.train, maskLayout(data.inputShape, { kind: 'block', size: 4 }), 10, {
    ...DEFAULT_FOREST,
    trees: 20,
  });
  assert.deepEqual(
    [...blocks].sort((a, b) => a - b),
    Array.from({ length: 49 }, (_, u) => u),
  );
});
