// Early exits: the staged runtime agrees with the one-graph model, and calibration is sound.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { calibrate, operatingPoint, paretoSet, type ExitObservations } from '../../src/compress/calibrate.js';
import { predictFrozenWithExits } from '../../src/compress/train.js';
import { softmaxEntropy } from '../../src/core/entropy.js';
import type { FrozenModel } from '../../src/core/frozen.js';
import { stagePath } from '../../src/core/manifest.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBackend } from '../../src/runtime/backends.js';
import { StagedModel } from '../../src/runtime/early-exit.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { fixtureData, fixtures } from '../fixtures.js';
import { TWO_EXIT_LENET } from '../runtime/conformance.js';
import { maxAbsDiff, runCli, tempDir } from '../helpers.js';

const SAMPLES = 60;
let data: Dataset;
let frozen: FrozenModel;
let expected: { logits: Float32Array; exits: Float32Array[] };

before(async () => {
  data = await fixtureData(TWO_EXIT_LENET.data);
  const trained = await fixtures.model(TWO_EXIT_LENET);
  frozen = trained.frozen;
  expected = await predictFrozenWithExits(frozen, data, data.test, SAMPLES);
});

/** Exit each sample would take (1..n, 0 = final) under thresholds, from the trained model's own logits. */
function expectedExit(i: number, thresholds: number[]): number {
  for (let e = 0; e < thresholds.length; e++)
    if (softmaxEntropy(expected.exits[e], i * 10, 10) < thresholds[e]) return e + 1;
  return 0;
}

// The one-graph file (If) and the stage files on every backend, against the trained model: the conformance suite
// (test/runtime/conformance.test.ts, model two-exit-lenet).

test('separate stages run by the staged runtime give the same predictions and exits as the one-graph model', async () => {
  const dir = tempDir();
  const thresholds = [0.9, 0.6];
  const calibrated = { ...frozen, exits: (frozen.exits ?? []).map((e, i) => ({ ...e, threshold: thresholds[i] })) };
  const result = exportOnnx(calibrated);
  const path = join(dir, 'exit.onnx');
  writeFileSync(path, result.bytes);
  result.stages.forEach((bytes, k) => writeFileSync(stagePath(path, k + 1), bytes));
  const staged = await StagedModel.load(path);
  const whole = await createBackend('ort-node', parseModelFile(result.bytes, path));
  for (let i = 0; i < SAMPLES; i++) {
    const x = data.test.x.slice(i * 784, (i + 1) * 784);
    const s = await staged.run(x);
    const w = await whole.run(x, [1, 1, 28, 28]);
    assert.equal(s.exit, expectedExit(i, thresholds), `sample ${i} exit`);
    assert.ok(maxAbsDiff(s.logits, w) <= 1e-5, `sample ${i} logits`);
    assert.equal(s.stageMs.length, s.exit === 0 ? 3 : s.exit);
  }
  await staged.dispose();
  await whole.dispose();
});

const OBSERVATIONS: ExitObservations = {
  count: 4,
  entropies: [Float64Array.from([0.1, 0.2, 1.5, 2.0])],
  correct: [Uint8Array.from([1, 1, 0, 0]), Uint8Array.from([1, 1, 1, 1])],
};

test('an operating point counts exits, accuracy and latency as the exit rule says', () => {
  const p = operatingPoint(OBSERVATIONS, [0.5], [1, 3]);
  assert.deepEqual(p.exitShares, [0.5, 0.5]);
  assert.equal(p.accuracy, 1);
  assert.equal(p.meanLatencyMs, (1 + 1 + 4 + 4) / 4);
  const { pareto, full } = paretoSet(OBSERVATIONS, [1, 3]);
  assert.equal(full.meanLatencyMs, 4);
  for (let i = 1; i < pareto.length; i++)
    assert.ok(pareto[i].accuracy > pareto[i - 1].accuracy && pareto[i].meanLatencyMs >= pareto[i - 1].meanLatencyMs);
  const chosen = calibrate(OBSERVATIONS, [1, 3], { targetAccuracy: 1 }, 10).chosen;
  assert.equal(chosen.accuracy, 1);
  assert.equal(chosen.meanLatencyMs, 2.5);
});

test('thresholds outside the entropy range are refused with the range', () => {
  assert.throws(
    () => calibrate(OBSERVATIONS, [1, 3], { thresholds: [2.5] }, 10),
    /Threshold 2\.5 is outside the entropy range \[0, 2\.3026\] nats/,
  );
  assert.throws(() => calibrate(OBSERVATIONS, [1, 3], { thresholds: [-0.1] }, 10), /outside the entropy range/);
});

test('cmp train --exits, calibrate, export, run: the CLI path and its bad input', () => {
  const dir = tempDir();
  const run = join(dir, 'run');
  assert.equal(
    runCli([
      'train',
      '--data',
      'mnist',
      '--limit-train',
      '8000',
      '--widths',
      '32,32',
      '--exits',
      '1',
      '--epochs',
      '2',
      '--out',
      run,
      '--quiet',
    ]).code,
    0,
  );
  const bad = runCli(['calibrate', run, '--thresholds', '9']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr.trim(), /^cmp: Threshold 9 is outside the entropy range/);
  const calibrated = runCli(['calibrate', run, '--target-accuracy', '0.8', '--json']);
  assert.equal(calibrated.code, 0, calibrated.stderr);
  const chosen = (JSON.parse(calibrated.stdout) as { chosen: { accuracy: number } }).chosen;
  assert.ok(chosen.accuracy >= 0.8, `validation accuracy ${chosen.accuracy}`);
  assert.equal(runCli(['export', run, '--out', join(dir, 'm.onnx')]).code, 0);
  const ran = runCli(['run', join(dir, 'm.onnx'), '--data', 'mnist', '--limit', '300', '--json', '--quiet']);
  assert.equal(ran.code, 0, ran.stderr);
  const report = JSON.parse(ran.stdout) as { samples: number; exits: { exit: string; share: number }[] };
  assert.equal(report.samples, 300);
  assert.deepEqual(
    report.exits.map((e) => e.exit),
    ['exit1', 'final'],
  );
  assert.ok(Math.abs(report.exits[0].share + report.exits[1].share - 1) < 1e-9);
  const noExits = runCli(['calibrate', join(dir, 'nothing'), '--target-accuracy', '0.9']);
  assert.notEqual(noExits.code, 0);
});
