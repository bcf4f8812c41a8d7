// Bad input around input masks: flags, runs without masks or without a fitting checkpoint, and broken mask specs.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { maskWithinBytes } from '../../src/compress/mask.js';
import { SELECT_HEADER_BYTES } from '../../src/core/codec.js';
import { checkMaskSpec, featuresOf, maskLayout, parseGranularity, type MaskSpec } from '../../src/core/mask.js';
import { loadRun, saveRun } from '../../src/core/run.js';
import { buildSpec, MASK_LOGITS, tensorShapes, type ModelSpec } from '../../src/core/spec.js';
import { assertOneLineError, runCli, tempDir } from '../helpers.js';

let dir: string;
let plainRun: string;
let maskedRun: string;
let learnedRun: string;

const TRAINING = {
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

/** An MLP (one hidden layer of 4) on 28x28 inputs and ten classes, with `inputMask` when given. */
function tinySpec(inputMask?: MaskSpec): ModelSpec {
  const base = buildSpec('mlp', {
    inputShape: [1, 28, 28],
    labels: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'],
    widths: [4],
    binarizeWeights: 'none',
    binarizeInputs: 'none',
    keepFloatWeights: [],
    keepFloatInputs: [],
  });
  return inputMask ? { ...base, inputMask } : base;
}

/** The units a static mask keeps (none without one). */
function keptOf(spec: ModelSpec): number[] {
  return spec.inputMask?.kind === 'static' ? spec.inputMask.kept : [];
}

/** Every tensor of `spec` at `fill`; a learned mask's logits open (0.5 + unit / 1000) on `kept`, closed elsewhere. */
function tinyTensors(spec: ModelSpec, fill = 0.5): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map(
    [...tensorShapes(spec)].map(([name, shape]) => {
      const data = new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(fill);
      if (name === MASK_LOGITS) {
        data.fill(-1);
        for (const u of keptOf(spec)) data[u] = 0.5 + u / 1000;
      }
      return [name, { shape, data }];
    }),
  );
}

/** A tiny run folder (untrained tensors), with a static mask and one checkpoint keeping 30% when `masked`. */
function tinyRun(out: string, masked: boolean): void {
  const kept = Array.from({ length: 235 }, (_, i) => i * 3);
  const spec = tinySpec(
    masked
      ? { kind: 'static', granularity: { kind: 'pixel' }, source: 'importance', values: 'uint8', kept }
      : undefined,
  );
  const tensors = tinyTensors(spec);
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
  saveRun(out, { cmpVersion: 'test', spec, training: TRAINING, ...(masked ? { masking } : {}) }, tensors);
  if (masked) saveRun(join(out, checkpoint.dir), { cmpVersion: 'test', spec, training: TRAINING }, tensors);
}

/**
 * A run with a learned static mask and three checkpoints: the first `counts[i]` pixels kept, so a frame is the 8-byte
 * header and one byte per pixel, at validation accuracies `accuracies[i]`.
 */
function learnedMaskRun(out: string, counts: number[], accuracies: number[]): void {
  const specOf = (count: number): ModelSpec =>
    tinySpec({
      kind: 'static',
      granularity: { kind: 'pixel' },
      source: 'learned',
      values: 'uint8',
      kept: Array.from({ length: count }, (_, u) => u),
    });
  const checkpoints = counts.map((count, i) => ({
    dir: `checkpoints/0${i + 1}`,
    epoch: i + 1,
    lambda: 0.001 * (i + 1),
    keptUnits: count,
    keptFraction: count / 784,
    frameBytes: SELECT_HEADER_BYTES + count,
    validationAccuracy: accuracies[i],
    testAccuracy: accuracies[i],
  }));
  const last = counts[counts.length - 1];
  const masking = {
    kind: 'static' as const,
    granularity: 'pixel',
    source: 'learned' as const,
    values: 'uint8' as const,
    units: 784,
    fullInputBytes: 784,
    keptUnits: last,
    keptFraction: last / 784,
    frameBytes: SELECT_HEADER_BYTES + last,
    checkpoints,
  };
  const spec = specOf(last);
  saveRun(out, { cmpVersion: 'test', spec, training: TRAINING, masking }, tinyTensors(spec, 0.01));
  counts.forEach((count, i) => {
    const at = specOf(count);
    saveRun(join(out, checkpoints[i].dir), { cmpVersion: 'test', spec: at, training: TRAINING }, tinyTensors(at, 0.01));
  });
}

before(() => {
  dir = tempDir();
  plainRun = join(dir, 'plain');
  maskedRun = join(dir, 'masked');
  learnedRun = join(dir, 'learned');
  tinyRun(plainRun, false);
  tinyRun(maskedRun, true);
  learnedMaskRun(learnedRun, [300, 250, 200], [0.95, 0.93, 0.9]);
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

test('--max-bytes picks the most accurate checkpoint that fits, and says what the run offers when none does', () => {
  const exported = runCli(['export', learnedRun, '--max-bytes', '260', '--out', join(dir, 'c.onnx'), '--json']);
  assert.equal(exported.code, 0, exported.stderr);
  assert.equal((JSON.parse(exported.stdout) as { checkpoint: { dir: string } }).checkpoint.dir, 'checkpoints/02');
  const marked = runCli(['masks', learnedRun, '--max-bytes', '400', '--json']);
  assert.equal(marked.code, 0, marked.stderr);
  assert.equal((JSON.parse(marked.stdout) as { chosen: string }).chosen, 'checkpoints/01');
  assertOneLineError(
    runCli(['export', learnedRun, '--max-bytes', '100', '--out', join(dir, 'c.onnx')]),
    /No checkpoint .* sends at most 100 bytes per instance \(the leanest sends 208\.0\)\. Use --max-bytes 208 or more/,
  );
  assertOneLineError(
    runCli(['export', learnedRun, '--max-bytes', '0', '--out', join(dir, 'c.onnx')]),
    /--max-bytes must be a positive number \(got "0"\)/,
  );
  assertOneLineError(
    runCli(['export', learnedRun, '--keep', '0.3', '--max-bytes', '260', '--out', join(dir, 'c.onnx')]),
    /--keep and --max-bytes each pick a mask checkpoint; give one of/,
  );
  assertOneLineError(
    runCli(['train', '--data', 'mnist', '--max-bytes', '78', '--out', join(dir, 'x')]),
    /--max-bytes picks a mask checkpoint of --from RUN/,
  );
});

test('within a byte budget, a learned static checkpoint up to 10% over is trimmed when it is the more accurate', () => {
  const run = loadRun(learnedRun);
  // 240 B: checkpoint 02 (258 B, 93%) is within 10% over and beats 03 (208 B, 90%), so it loses 18 pixels.
  const trimmed = maskWithinBytes(run, 240);
  assert.equal(trimmed.checkpoint.dir, 'checkpoints/02');
  assert.equal(trimmed.trimmedBytes, 240);
  assert.equal(keptOf(trimmed.spec).length, 240 - SELECT_HEADER_BYTES);
  // The pixels dropped are the least open: the logits rise with the unit, so the first 18 go.
  assert.deepEqual(keptOf(trimmed.spec).slice(0, 2), [18, 19]);
  // 208 B: 03 fits exactly and nothing is within 10% over (02 is 24% over), so 03 is taken as it is.
  const fits = maskWithinBytes(run, 208);
  assert.equal(fits.checkpoint.dir, 'checkpoints/03');
  assert.equal(fits.trimmedBytes, undefined);
  // 190 B: nothing fits and 03 is within 10% over: trimmed.
  assert.equal(maskWithinBytes(run, 190).trimmedBytes, 190);
  // A baseline mask (importance) has no logits to trim by: only checkpoints that fit.
  assert.throws(() => maskWithinBytes(loadRun(maskedRun), 230), /sends at most 230 bytes/);
});

test('train --from --max-bytes fine-tunes the trimmed checkpoint and keeps its budget', () => {
  const out = join(dir, 'tuned');
  const tuned = runCli([
    'train',
    '--from',
    learnedRun,
    '--max-bytes',
    '240',
    '--epochs',
    '1',
    '--limit-train',
    '300',
    '--limit-test',
    '100',
    '--out',
    out,
  ]);
  assert.equal(tuned.code, 0, tuned.stderr);
  assert.match(
    tuned.stdout,
    /Started from .*checkpoints\/02 \(258\.0 bytes per instance, 93\.00% on validation\), trimmed to 240\.0 bytes to fit --max-bytes\./,
  );
  const run = loadRun(out);
  assert.equal(keptOf(run.record.spec).length, 240 - SELECT_HEADER_BYTES);
  assert.equal(run.record.masking?.frameBytes, 240);
});
