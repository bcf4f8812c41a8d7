// Bad input around input masks: flags, runs without masks or without a fitting checkpoint, and broken mask specs.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { checkMaskSpec, featuresOf, maskLayout, parseGranularity } from '../../src/core/mask.js';
import { saveRun } from '../../src/core/run.js';
import { buildSpec, tensorShapes } from '../../src/core/spec.js';
import { assertOneLineError, runCli, tempDir } from '../helpers.js';

let dir: string;
let plainRun: string;
let maskedRun: string;

/** A tiny run folder (untrained tensors), with a static mask and one checkpoint keeping 30% when `masked`. */
function tinyRun(out: string, masked: boolean): void {
  const base = buildSpec('mlp', {
    inputShape: [1, 28, 28],
    labels: ['a', 'b'],
    widths: [4],
    binarizeWeights: 'none',
    binarizeInputs: 'none',
    keepFloatWeights: [],
    keepFloatInputs: [],
  });
  const kept = Array.from({ length: 235 }, (_, i) => i * 3);
  const spec = masked
    ? {
        ...base,
        inputMask: {
          kind: 'static' as const,
          granularity: { kind: 'pixel' as const },
          source: 'importance' as const,
          values: 'uint8' as const,
          kept,
        },
      }
    : base;
  const tensors = new Map(
    [...tensorShapes(spec)].map(([name, shape]) => [
      name,
      { shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5) },
    ]),
  );
  const training = {
    dataset: 'mnist',
    epochs: 1,
    batchSize: 1,
    learningRate: 0,
    seed: 1,
    backend: 'none',
    trainCount: 1,
    testCount: 1,
    durationMs: 0,
    history: [],
    testAccuracy: 0.5,
  };
  const checkpoint = {
    dir: 'checkpoints/01',
    epoch: 1,
    lambda: 0.001,
    keptUnits: 235,
    keptFraction: 0.3,
    frameBytes: 243,
    validationAccuracy: 0.9,
    testAccuracy: 0.9,
  };
  const masking = {
    kind: 'static' as const,
    granularity: 'pixel',
    source: 'importance' as const,
    values: 'uint8' as const,
    units: 784,
    fullInputBytes: 784,
    keptUnits: 235,
    keptFraction: 0.3,
    frameBytes: 243,
    checkpoints: [checkpoint],
  };
  saveRun(out, { cmpVersion: 'test', spec, training, ...(masked ? { masking } : {}) }, tensors);
  if (masked) saveRun(join(out, checkpoint.dir), { cmpVersion: 'test', spec, training }, tensors);
}

before(() => {
  dir = tempDir();
  plainRun = join(dir, 'plain');
  maskedRun = join(dir, 'masked');
  tinyRun(plainRun, false);
  tinyRun(maskedRun, true);
});

test('a malformed granularity names the accepted forms', () => {
  assertOneLineError(
    runCli(['train', '--data', 'mnist', '--mask', 'static', '--granularity', 'block:x', '--out', join(dir, 'x')]),
    /Unknown granularity "block:x".*block:N/,
  );
});

test('mask flags without --mask, and a baseline without --keep, say what is missing', () => {
  assertOneLineError(
    runCli(['train', '--data', 'mnist', '--keep', '0.1', '--out', join(dir, 'x')]),
    /--keep only applies with --mask/,
  );
  assertOneLineError(
    runCli(['train', '--data', 'mnist', '--mask', 'static', '--mask-source', 'random', '--out', join(dir, 'x')]),
    /--mask-source random needs --keep F/,
  );
  assertOneLineError(
    runCli([
      'train',
      '--data',
      'mnist',
      '--mask',
      'dynamic',
      '--mask-source',
      'importance',
      '--keep',
      '0.1',
      '--out',
      join(dir, 'x'),
    ]),
    /static baseline/,
  );
});

test('cmp masks on a run without a mask, and export --keep out of range or unreachable, are one line each', () => {
  assertOneLineError(runCli(['masks', plainRun]), /has no input mask.*--mask/);
  assertOneLineError(
    runCli(['export', maskedRun, '--keep', '1.5', '--out', join(dir, 'a.onnx')]),
    /--keep is a share of the input in \(0, 1\]/,
  );
  assertOneLineError(
    runCli(['export', maskedRun, '--keep', '0.1', '--out', join(dir, 'a.onnx')]),
    /No checkpoint .* at most 10\.0% .* leanest keeps 30\.0%/,
  );
  assertOneLineError(
    runCli(['export', plainRun, '--keep', '0.1', '--out', join(dir, 'a.onnx')]),
    /has no mask checkpoints/,
  );
  assertOneLineError(
    runCli(['export', maskedRun, '--min-accuracy', '0.95', '--out', join(dir, 'a.onnx')]),
    /reaches 95\.00% .* best reaches 90\.00%/,
  );
});

test('cmp masks lists the checkpoints and export --keep picks the one that fits', () => {
  const listed = runCli(['masks', maskedRun]);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /checkpoints\/01 .* 235 .* 30\.00%/);
  const exported = runCli(['export', maskedRun, '--keep', '0.3', '--out', join(dir, 'b.onnx'), '--json']);
  assert.equal(exported.code, 0, exported.stderr);
  const record = JSON.parse(exported.stdout) as {
    checkpoint: { dir: string };
    manifest: { inputMask: { features: number } };
  };
  assert.equal(record.checkpoint.dir, 'checkpoints/01');
  assert.equal(record.manifest.inputMask.features, 235);
});

test('a mask spec that does not match the model input is refused', () => {
  const pixel = parseGranularity('pixel');
  assert.throws(
    () =>
      checkMaskSpec(
        { kind: 'static', granularity: pixel, source: 'learned', values: 'uint8', kept: [784] },
        [1, 28, 28],
      ),
    /unit 784 is outside 0\.\.783/,
  );
  assert.throws(
    () =>
      checkMaskSpec(
        { kind: 'static', granularity: pixel, source: 'learned', values: 'uint8', kept: [5, 5] },
        [1, 28, 28],
      ),
    /not strictly ascending/,
  );
  assert.throws(
    () => checkMaskSpec({ kind: 'dynamic', granularity: pixel, values: 'uint8', selectorPool: 40 }, [1, 28, 28]),
    /selector pool 40/,
  );
  const dynamic = { kind: 'dynamic' as const, granularity: pixel, values: 'uint8' as const, selectorPool: 4 };
  assert.throws(
    () => checkMaskSpec({ ...dynamic, prior: [3, 900] }, [1, 28, 28]),
    /prior unit 900 is outside 0\.\.783/,
  );
  assert.throws(
    () => checkMaskSpec({ ...dynamic, prior: [7, 3] }, [1, 28, 28]),
    /prior units are not strictly ascending/,
  );
  checkMaskSpec({ ...dynamic, prior: [3, 7] }, [1, 28, 28]);
  assert.throws(
    () => checkMaskSpec({ ...dynamic, rates: new Array(783).fill(9) }, [1, 28, 28]),
    /rates are not one per unit \(784\)/,
  );
  assert.throws(
    () => checkMaskSpec({ ...dynamic, rates: [...Array.from({ length: 783 }, () => 9), 0] }, [1, 28, 28]),
    /a rate is outside 1\.\.255/,
  );
  checkMaskSpec({ ...dynamic, rates: new Array(784).fill(255) }, [1, 28, 28]);
});

test('block layouts clip edge blocks and cover every feature once', () => {
  const layout = maskLayout([2, 10, 10], parseGranularity('block:4'));
  assert.deepEqual(layout.grid, [3, 3]);
  assert.equal(layout.featureStart[layout.units], 200);
  // The corner block (2, 2) covers rows 8-9 and columns 8-9 of both channels.
  assert.deepEqual([...featuresOf(layout, [8])], [88, 89, 98, 99, 188, 189, 198, 199]);
});
