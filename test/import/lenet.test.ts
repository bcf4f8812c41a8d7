// The third-party LeNet-5 (a PyTorch export, opset 10) imports with the original's outputs, then fine-tunes binarized,
// exports bit-packed and runs: the user's path through the real CLI.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { pruneRun } from '../../src/compress/prune-run.js';
import { predictFrozen } from '../../src/compress/train.js';
import { freeze } from '../../src/core/frozen.js';
import { loadRun } from '../../src/core/run.js';
import { withBinarization } from '../../src/core/spec.js';
import { loadDataset, type Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { importOnnx } from '../../src/import/import-onnx.js';
import { importRun } from '../../src/import/import-run.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile, readModelFile } from '../../src/runtime/model-file.js';
import { assertOneLineError, maxAbsDiff, runCli, sharedFile, tempDir } from '../helpers.js';

const LENET = sharedFile('models', 'lenet5-mnist-pytorch.onnx');
const SAMPLES = 500;
let data: Dataset;

before(async () => {
  data = await loadDataset('mnist', { limitTrain: 3000, limitTest: SAMPLES });
});

test('LeNet-5: the imported frozen model and its cmp export give the original outputs (onnxruntime-node) on MNIST', async () => {
  const original = readModelFile(LENET);
  const backend = await createBackend('ort-node', original);
  const expected = await predict(backend, original, data, SAMPLES);
  await backend.dispose();

  const { network, opset } = importOnnx(LENET, { mean: 0, std: 1 });
  assert.equal(opset, 10);
  assert.deepEqual(
    network.spec.layers.map((l) => l.kind),
    ['conv', 'maxpool', 'conv', 'maxpool', 'flatten', 'dense', 'dense', 'dense'],
  );
  const conv1 = network.spec.layers[0];
  assert.ok(conv1.kind === 'conv' && conv1.padding === 2 && conv1.kernel === 5, 'the first conv pads by 2');
  const frozen = freeze(network.spec, new Map([...network.tensors].map(([k, t]) => [k, t.data])));
  const forward = await predictFrozen(frozen, data, data.test, SAMPLES);
  assert.ok(maxAbsDiff(forward, expected) <= 1e-4, `frozen forward: max abs diff ${maxAbsDiff(forward, expected)}`);

  const exported = parseModelFile(exportOnnx(frozen).bytes, 'lenet-imported.onnx');
  for (const name of ['ort-node', 'bitwasm']) {
    const b = await createBackend(name, exported);
    const actual = await predict(b, exported, data, SAMPLES);
    await b.dispose();
    assert.ok(maxAbsDiff(actual, expected) <= 1e-4, `${name}: max abs diff ${maxAbsDiff(actual, expected)}`);
  }
});

test('cmp import -> train --from --binarize dab -> export (bit-packed) -> eval on ort-node and bitwasm', () => {
  const dir = tempDir();
  const run = join(dir, 'lenet');
  const imported = runCli(['import', LENET, '--out', run, '--data', 'mnist', '--limit', '300', '--json', '--quiet']);
  assert.equal(imported.code, 0, imported.stderr);
  const check = (
    JSON.parse(imported.stdout) as {
      imported: { check: { sourceAccuracy: number; importedAccuracy: number; maxAbsDiff: number } };
    }
  ).imported.check;
  assert.equal(check.importedAccuracy, check.sourceAccuracy);
  assert.ok(check.maxAbsDiff <= 1e-4, `max abs diff ${check.maxAbsDiff}`);
  assert.ok(check.sourceAccuracy > 0.95, `source accuracy ${check.sourceAccuracy}`);
  assert.equal(loadRun(run).record.training.dataset, 'mnist');

  const bin = join(dir, 'lenet-bin');
  const trained = runCli([
    'train',
    '--from',
    run,
    '--data',
    'mnist',
    '--binarize',
    'dab',
    '--epochs',
    '1',
    '--limit-train',
    '600',
    '--limit-test',
    '300',
    '--out',
    bin,
    '--json',
    '--quiet',
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  const spec = loadRun(bin).record.spec;
  assert.ok(
    spec.layers.every((l) => !('binarize' in l) || l.binarize.weights === 'dab'),
    'every weight layer binarized',
  );

  const onnx = join(dir, 'lenet-bin.onnx');
  const exported = runCli(['export', bin, '--out', onnx, '--json']);
  assert.equal(exported.code, 0, exported.stderr);
  const manifest = (
    JSON.parse(exported.stdout) as { manifest: { layers: { bitsPerWeight: number; weights: string }[] } }
  ).manifest;
  for (const layer of manifest.layers.filter((l) => l.weights === 'dab'))
    assert.ok(layer.bitsPerWeight < 3, `bits per weight ${layer.bitsPerWeight}`);
  // 61,470 float weights take 240 KiB; packed, the whole file is a tenth of that.
  assert.ok(readFileSync(onnx).length < 30_000, `file ${readFileSync(onnx).length} bytes`);

  const accuracies = ['ort-node', 'bitwasm'].map((backend) => {
    const result = runCli(['eval', onnx, '--data', 'mnist', '--limit', '300', '--backend', backend, '--json']);
    assert.equal(result.code, 0, result.stderr);
    return (JSON.parse(result.stdout) as { accuracy: number }).accuracy;
  });
  assert.equal(accuracies[0], accuracies[1], 'bitwasm agrees with onnxruntime-node');
  assert.ok(accuracies[0] > 0.8, `binarized accuracy ${accuracies[0]}`);
});

test('cmp train --from an imported LeNet-5 --preset hybrid: int8 first and last, DAB between; conflicting flags refused', () => {
  const dir = tempDir();
  const run = join(dir, 'lenet');
  assert.equal(runCli(['import', LENET, '--out', run, '--quiet']).code, 0);
  const hybrid = join(dir, 'lenet-hybrid');
  const common = ['--data', 'mnist', '--epochs', '1', '--limit-train', '600', '--limit-test', '300', '--quiet'];
  const trained = runCli(['train', '--from', run, '--preset', 'hybrid', ...common, '--out', hybrid]);
  assert.equal(trained.code, 0, trained.stderr);
  assert.match(trained.stdout, /int8\/dab\/dab\/dab\/int8/);
  const spec = loadRun(hybrid).record.spec;
  const modes = spec.layers.flatMap((l) => ('binarize' in l ? [l.binarize.weights] : []));
  assert.deepEqual(modes, ['int8', 'dab', 'dab', 'dab', 'int8']);
  const onnx = join(dir, 'lenet-hybrid.onnx');
  assert.equal(runCli(['export', hybrid, '--out', onnx]).code, 0);
  // 61,470 float weights take 240 KiB; int8 ends and packed middle layers a fraction of it.
  assert.ok(readFileSync(onnx).length < 25_000, `file ${readFileSync(onnx).length} bytes`);
  const result = runCli(['eval', onnx, '--data', 'mnist', '--limit', '300', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.ok((JSON.parse(result.stdout) as { accuracy: number }).accuracy > 0.8, result.stdout);
  const out = ['--out', join(dir, 'never')];
  assertOneLineError(
    runCli(['train', '--from', run, '--preset', 'hybrid', '--binarize', 'xnor', ...common, ...out]),
    /--preset hybrid sets the layers' precision itself\. Drop --binarize\./,
  );
  assertOneLineError(
    runCli(['train', '--from', run, '--int8', 'middle', ...common, ...out]),
    /--int8 takes weight layers as first, last, all or 0-based indices \(got "middle"\)/,
  );
});

test('an imported LeNet-5 fine-tunes with an exit head and an input mask added, exports both, and runs stage by stage', () => {
  const dir = tempDir();
  const run = join(dir, 'lenet');
  assert.equal(runCli(['import', LENET, '--out', run, '--quiet']).code, 0);
  const tuned = join(dir, 'lenet-exit-mask');
  const common = ['--data', 'mnist', '--epochs', '1', '--limit-train', '600', '--limit-test', '200', '--quiet'];
  const trained = runCli([
    'train',
    '--from',
    run,
    '--exits',
    '1',
    '--mask',
    'static',
    '--mask-source',
    'random',
    '--keep',
    '0.5',
    ...common,
    '--out',
    tuned,
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  const spec = loadRun(tuned).record.spec;
  assert.equal(spec.exits?.length, 1);
  assert.equal(spec.inputMask?.kind === 'static' ? spec.inputMask.kept.length : 0, 392);
  const onnx = join(dir, 'lenet-exit-mask.onnx');
  assert.equal(runCli(['export', tuned, '--out', onnx, '--quiet']).code, 0);
  const result = runCli(['run', onnx, '--data', 'mnist', '--limit', '200', '--json', '--quiet']);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as { accuracy: number; exits: unknown[]; meanLinkBytes: number };
  assert.equal(report.exits.length, 2, 'one exit and the final classifier');
  assert.equal(report.meanLinkBytes, 8 + 392, 'the sender sends the kept half of the pixels');
  assert.ok(report.accuracy > 0.6, `accuracy ${report.accuracy}`);
  assertOneLineError(
    runCli(['train', '--from', tuned, '--exits', '1', ...common, '--out', join(dir, 'again')]),
    /already has exits/,
  );
});

test('the firmware converter refuses a padded conv in one line instead of mis-running it', () => {
  const { network } = importOnnx(LENET, { mean: 0, std: 1 });
  const frozen = freeze(network.spec, new Map([...network.tensors].map(([k, t]) => [k, t.data])));
  const file = parseModelFile(exportOnnx(frozen).bytes, 'lenet-imported.onnx');
  assert.throws(
    () => convertToMcuModel(file),
    /^CmpError: lenet-imported\.onnx has a padded conv layer "conv1" \(the firmware runs unpadded convolutions only\)\. Deploy it to a target that runs ONNX/,
  );
});

test('bitwasm refuses a padded conv with binarized inputs in one line; auto falls back to onnxruntime', async () => {
  const { network } = importOnnx(LENET, { mean: 0, std: 1 });
  const spec = withBinarization(network.spec, { binarizeInputs: 'dab', keepFloatWeights: [], keepFloatInputs: [] });
  const frozen = freeze(spec, new Map([...network.tensors].map(([k, t]) => [k, t.data])));
  const file = parseModelFile(exportOnnx(frozen).bytes, 'lenet-dab-inputs.onnx');
  await assert.rejects(createBackend('bitwasm', file), (err: Error) => {
    assert.equal(err.message.split('\n').length, 1);
    assert.match(err.message, /conv layer "conv1" pads its binarized input, which bitwasm does not support/);
    return true;
  });
  const backend = await createBackend('auto', file);
  assert.equal(backend.name, 'ort-node');
  await backend.dispose();
});

test('MINT prunes an imported run (never trained by cmp); one epoch of fine-tuning recovers it', async () => {
  const run = join(tempDir(), 'lenet');
  await importRun(LENET, { mean: 0, std: 1, out: run });
  const pruned = await pruneRun(run, data, {
    method: 'mint',
    sparsity: 0.5,
    scope: 'per-layer',
    groupSize: 1,
    samplesPerClass: 20,
    bins: 8,
    retrain: 1,
    batchSize: 100,
    learningRate: 0.001,
    seed: 1,
  });
  assert.ok(pruned.pruning.weightsAfter < 0.55 * pruned.pruning.weightsBefore, JSON.stringify(pruned.pruning));
  assert.ok(pruned.testAccuracy > 0.8, `accuracy after pruning half the weights and one epoch: ${pruned.testAccuracy}`);
});
