// The shared fixture cache: what it reads back is the model training gives, and a half-built entry is rebuilt.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { trainRun } from '../src/compress/train-run.js';
import { FixtureCache, fixtureData, type ModelFixture } from './fixtures.js';
import { tempDir } from './helpers.js';

const TINY: ModelFixture = {
  data: { dataset: 'fashion-mnist', limitTrain: 200, limitTest: 50 },
  train: {
    arch: 'mlp',
    widths: [8],
    binarizeWeights: 'dab',
    binarizeActivations: 'none',
    epochs: 1,
    batchSize: 50,
    learningRate: 0.002,
    seed: 9,
  },
};

const root = tempDir('cmp-fixtures-');
let direct: Awaited<ReturnType<typeof trainRun>>;

test('a cached fixture is the model training gives: spec, tensors, frozen model and accuracy', async () => {
  direct = await trainRun(await fixtureData(TINY.data), TINY.train);
  const cache = new FixtureCache(root);
  for (const cached of [await cache.model(TINY), await new FixtureCache(root).model(TINY)]) {
    assert.deepEqual(cached.spec, direct.spec);
    assert.deepEqual(cached.frozen, direct.frozen);
    assert.deepEqual(cached.tensors, direct.tensors);
    assert.equal(cached.testAccuracy, direct.testAccuracy);
  }
  assert.equal(readdirSync(root).filter((n) => n.startsWith('model-')).length, 1, 'trained once, one entry');
});

test('an entry without its completion mark, or locked by a process that died, is built again, not read', async () => {
  const [entry] = readdirSync(root).filter((n) => n.startsWith('model-') && !n.includes('.'));
  // What a build killed midway leaves: weights cut short, no completion mark, its lock and its temporary folder.
  truncateSync(join(root, entry, 'run', 'weights.bin'), 10);
  rmSync(join(root, entry, 'complete'));
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  writeFileSync(join(root, `${entry}.lock`), String(dead));
  mkdirSync(join(root, `${entry}.tmp-${dead}`));
  const rebuilt = await new FixtureCache(root).model(TINY);
  assert.deepEqual(rebuilt.frozen, direct.frozen);
  assert.deepEqual(readdirSync(root).sort(), [entry], 'no lock or temporary folder left behind');
});
