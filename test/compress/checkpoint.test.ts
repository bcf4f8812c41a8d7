// Training checkpoints: a training stopped after an epoch and started again ends exactly where one unbroken run does.

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { specFor } from '../../src/compress/train-run.js';
import { train, type TrainOptions } from '../../src/compress/train.js';
import type { Dataset } from '../../src/data/datasets.js';
import { fixtureData } from '../fixtures.js';
import { tempDir } from '../helpers.js';

let data: Dataset;

before(async () => {
  data = await fixtureData({ dataset: 'fashion-mnist', limitTrain: 600, limitTest: 100 });
});

for (const optimizer of ['adam', 'sgd'] as const) {
  test(`${optimizer}: stopped after epoch 1 and resumed, training ends with the unbroken run's tensors`, async () => {
    const spec = specFor(data, { arch: 'mlp', widths: [32], binarizeWeights: 'dab', binarizeActivations: 'none' });
    const options: TrainOptions = {
      epochs: 3,
      batchSize: 50,
      learningRate: optimizer === 'sgd' ? 0.05 : 0.002,
      seed: 4,
      dropout: 0.2,
      ...(optimizer === 'sgd' ? { sgd: { momentum: 0.9, weightDecay: 1e-4, milestones: [2], gamma: 0.1 } } : {}),
    };
    const unbroken = await train(spec, data, options);
    const dir = tempDir();
    await assert.rejects(
      train(spec, data, {
        ...options,
        checkpointDir: dir,
        onProgress: (p) => {
          if (p.phase === 'epoch' && p.record.epoch === 1) throw new Error('stopped');
        },
      }),
      /stopped/,
    );
    assert.ok(existsSync(join(dir, 'checkpoint.json')), 'the first epoch left a checkpoint');
    const epochs: number[] = [];
    const resumed = await train(spec, data, {
      ...options,
      checkpointDir: dir,
      onProgress: (p) => {
        if (p.phase === 'epoch') epochs.push(p.record.epoch);
      },
    });
    assert.deepEqual(epochs, [2, 3], 'only the epochs not done ran');
    assert.equal(resumed.training.history.length, 3);
    for (const [name, t] of unbroken.tensors) {
      assert.deepEqual(resumed.tensors.get(name)?.data, t.data, `${name} equals the unbroken run's`);
    }
    assert.equal(resumed.testAccuracy, unbroken.testAccuracy);
    assert.ok(!existsSync(join(dir, 'checkpoint.json')), 'a finished training removes its checkpoint');
  });
}

test('a checkpoint of another training, or a damaged one, is not resumed', async () => {
  const spec = specFor(data, { arch: 'mlp', widths: [16], binarizeWeights: 'none', binarizeActivations: 'none' });
  const options: TrainOptions = { epochs: 2, batchSize: 50, learningRate: 0.002, seed: 5 };
  const dir = tempDir();
  const stop: TrainOptions['onProgress'] = (p) => {
    if (p.phase === 'epoch') throw new Error('stopped');
  };
  await assert.rejects(train(spec, data, { ...options, checkpointDir: dir, onProgress: stop }), /stopped/);
  const epochs: number[] = [];
  const count: TrainOptions['onProgress'] = (p) => {
    if (p.phase === 'epoch') epochs.push(p.record.epoch);
  };
  await train(spec, data, { ...options, seed: 6, checkpointDir: dir, onProgress: count });
  assert.deepEqual(epochs, [1, 2], 'another seed is another training: it starts from epoch 1');
  await assert.rejects(train(spec, data, { ...options, checkpointDir: dir, onProgress: stop }), /stopped/);
  writeFileSync(join(dir, 'checkpoint.bin'), 'cut short');
  epochs.length = 0;
  await train(spec, data, { ...options, checkpointDir: dir, onProgress: count });
  assert.deepEqual(epochs, [1, 2], 'a damaged checkpoint is ignored');
});
