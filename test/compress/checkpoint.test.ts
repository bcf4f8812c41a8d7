// Training checkpoints: a training stopped after an epoch and started again ends exactly where one unbroken run does.

import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { DEFAULT_MASK_TRAINING, specFor, trainRun, type TrainRunOptions } from '../../src/compress/train-run.js';
import { train, type TrainOptions } from '../../src/compress/train.js';
import { RUN_MODEL_FILE } from '../../src/core/run.js';
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

test("mask training stopped mid-schedule resumes with its lambda, its mask checkpoints and the unbroken run's tensors", async () => {
  const options: TrainRunOptions = {
    arch: 'mlp',
    widths: [24],
    binarizeWeights: 'none',
    binarizeActivations: 'none',
    epochs: 5,
    batchSize: 50,
    learningRate: 0.01,
    seed: 7,
    mask: {
      kind: 'static',
      granularity: { kind: 'pixel' },
      source: 'learned',
      values: 'uint8',
      ...DEFAULT_MASK_TRAINING,
      // A large start and no patience: lambda grows every epoch, so a resumed run that lost it would differ.
      schedule: { ...DEFAULT_MASK_TRAINING.schedule, start: 0.02, patience: 1 },
      warmupEpochs: 1,
      checkpointStep: 0,
      checkpointKeptRatio: 1,
    },
  };
  const unbroken = await trainRun(data, { ...options, out: join(tempDir(), 'run') });
  const made = unbroken.masking?.checkpoints ?? [];
  const epochsMade = made.map((c) => c.epoch);
  assert.ok(epochsMade.some((e) => e <= 3) && epochsMade.some((e) => e > 3), `checkpoints at ${epochsMade.join(', ')}`);
  const lambdas = unbroken.training.history.map((r) => r.lambda);
  assert.ok((lambdas[4] ?? 0) > (lambdas[2] ?? 0), `lambda grew (${lambdas.join(', ')})`);
  const dir = tempDir();
  const out = join(tempDir(), 'run');
  await assert.rejects(
    trainRun(data, {
      ...options,
      out,
      checkpointDir: dir,
      onProgress: (p) => {
        if (p.phase === 'epoch' && p.record.epoch === 3) throw new Error('stopped');
      },
    }),
    /stopped/,
  );
  const epochs: number[] = [];
  const resumed = await trainRun(data, {
    ...options,
    out,
    checkpointDir: dir,
    onProgress: (p) => {
      if (p.phase === 'epoch') epochs.push(p.record.epoch);
    },
  });
  assert.deepEqual(epochs, [4, 5], 'only the epochs not done ran');
  assert.deepEqual(
    resumed.training.history.map((r) => r.lambda),
    lambdas,
  );
  assert.deepEqual(resumed.masking?.checkpoints, made, 'the same mask checkpoints, the earlier ones included');
  for (const [name, t] of unbroken.tensors) {
    assert.deepEqual(resumed.tensors.get(name)?.data, t.data, `${name} equals the unbroken run's`);
  }
  assert.ok(
    existsSync(join(out, made[0].dir, RUN_MODEL_FILE)),
    'the checkpoints made before the stop are still in the run',
  );
});
