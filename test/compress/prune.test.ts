// Structural pruning: exactly the chosen groups leave, the pruned ONNX matches the pruned model, DAB composes.

import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { pruneRun } from '../../src/compress/prune-run.js';
import {
  applyPruning,
  mutualInformation,
  planPruning,
  quantileBins,
  weightCount,
  type KeepPlan,
} from '../../src/compress/prune.js';
import { trainRun } from '../../src/compress/train-run.js';
import { predictFrozen } from '../../src/compress/train.js';
import { freeze } from '../../src/core/frozen.js';
import { loadRun } from '../../src/core/run.js';
import type { ModelSpec } from '../../src/core/spec.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { fixtureData, fixtures, type ModelFixture } from '../fixtures.js';
import { maxAbsDiff, runCli, tempDir } from '../helpers.js';

const DATA = { dataset: 'fashion-mnist', limitTrain: 1000, limitTest: 200 } as const;
const ONE_EPOCH = { epochs: 1, batchSize: 50, learningRate: 0.002 } as const;
let data: Dataset;

before(async () => {
  data = await fixtureData(DATA);
});

/** The same network with the planned units silenced instead of removed: their outgoing weights are zeroed. */
function silenced(spec: ModelSpec, tensors: Map<string, Float32Array>, plan: KeepPlan): Map<string, Float32Array> {
  const out = new Map([...tensors].map(([k, v]) => [k, v.slice()]));
  const weightLayers = spec.layers.filter((l) => l.kind === 'dense' || l.kind === 'conv');
  for (const [name, keep] of plan) {
    const layer = weightLayers.find((l) => l.name === name);
    const next = weightLayers[weightLayers.indexOf(layer as (typeof weightLayers)[number]) + 1];
    const units = layer?.kind === 'dense' ? layer.units : layer?.kind === 'conv' ? layer.filters : 0;
    const w = out.get(`${next.name}.weight`) as Float32Array;
    const kept = new Set(keep);
    if (next.kind === 'dense') {
      const perUnit = w.length / next.units / units;
      for (let r = 0; r < w.length / next.units; r++) {
        if (!kept.has(Math.floor(r / perUnit))) w.fill(0, r * next.units, (r + 1) * next.units);
      }
    } else {
      const k2 = next.kernel * next.kernel;
      for (let o = 0; o < next.filters; o++)
        for (let c = 0; c < units; c++) if (!kept.has(c)) w.fill(0, (o * units + c) * k2, (o * units + c + 1) * k2);
    }
  }
  return out;
}

for (const arch of ['mlp', 'lenet']) {
  test(`${arch}: removing units gives the same logits as silencing exactly those units`, async () => {
    const trained = await fixtures.model({
      data: DATA,
      train: {
        arch,
        widths: arch === 'mlp' ? [40, 30] : [24],
        filters: [6, 8],
        binarizeWeights: 'none',
        binarizeActivations: 'none',
        ...ONE_EPOCH,
        seed: 2,
      },
    });
    const tensors = new Map([...trained.tensors].map(([k, t]) => [k, t.data]));
    const plan: KeepPlan =
      arch === 'mlp'
        ? new Map([
            ['fc1', [0, 3, 4, 9, 17, 39]],
            ['fc2', [1, 2, 29]],
          ])
        : new Map([
            ['conv1', [0, 2, 5]],
            ['conv2', [1, 6, 7]],
            ['fc1', [0, 1, 2, 23]],
          ]);
    const pruned = applyPruning(trained.spec, tensors, plan);
    for (const [name, keep] of plan) {
      const layer = pruned.spec.layers.find((l) => l.name === name);
      assert.equal(
        layer?.kind === 'dense' ? layer.units : layer?.kind === 'conv' ? layer.filters : -1,
        keep.length,
        name,
      );
    }
    const expected = await predictFrozen(
      freeze(trained.spec, silenced(trained.spec, tensors, plan)),
      data,
      data.test,
      100,
    );
    const actual = await predictFrozen(freeze(pruned.spec, pruned.tensors), data, data.test, 100);
    assert.ok(maxAbsDiff(actual, expected) < 1e-4, `max abs diff ${maxAbsDiff(actual, expected)}`);
    assert.ok(weightCount(pruned.spec) < weightCount(trained.spec) / 4);
  });
}

test('planPruning reaches the asked share of weights and keeps the best-scored groups', () => {
  const spec = {
    format: 'cmp-model/1',
    arch: 'mlp',
    input: { shape: [1, 28, 28], mean: 0, std: 1 },
    labels: ['a', 'b'],
    layers: [
      { kind: 'flatten', name: 'flatten' },
      {
        kind: 'dense',
        name: 'fc1',
        units: 100,
        batchNorm: true,
        activation: 'relu',
        binarize: { weights: 'none', inputs: 'none' },
      },
      {
        kind: 'dense',
        name: 'logits',
        units: 2,
        batchNorm: false,
        activation: 'none',
        binarize: { weights: 'none', inputs: 'none' },
      },
    ],
  } as ModelSpec;
  const scores = Float64Array.from({ length: 100 }, (_, i) => (i * 37) % 100);
  const plan = planPruning(spec, [{ layer: 'fc1', units: 100, groupSize: 1, scores }], 0.9, 'per-layer');
  const keep = plan.get('fc1') as number[];
  assert.equal(keep.length, 10);
  for (const u of keep) assert.ok(scores[u] >= 90, `unit ${u} scored ${scores[u]}`);
});

test("planPruning can count one layer's weights: 96% of fc2 as the MINT paper measures it", () => {
  const dense = (name: string, units: number, last = false): ModelSpec['layers'][number] => ({
    kind: 'dense',
    name,
    units,
    batchNorm: false,
    activation: last ? 'none' : 'relu',
    binarize: { weights: 'none', inputs: 'none' },
  });
  const spec = {
    format: 'cmp-model/1',
    arch: 'mlp',
    input: { shape: [1, 28, 28], mean: 0, std: 1 },
    labels: Array.from({ length: 10 }, (_, i) => String(i)),
    layers: [{ kind: 'flatten', name: 'flatten' }, dense('fc1', 500), dense('fc2', 300), dense('logits', 10, true)],
  } as ModelSpec;
  const scores = [
    { layer: 'fc1', units: 500, groupSize: 10, scores: Float64Array.from({ length: 50 }, (_, i) => i) },
    { layer: 'fc2', units: 300, groupSize: 10, scores: Float64Array.from({ length: 30 }, (_, i) => i) },
  ];
  const plan = planPruning(spec, scores, 0.96, 'per-layer', ['fc2']);
  const [fc1, fc2] = ['fc1', 'fc2'].map((l) => (plan.get(l) as number[]).length);
  assert.ok(fc1 * fc2 <= 0.04 * 500 * 300, `fc2 keeps ${fc1} x ${fc2}`);
  assert.ok(fc1 * fc2 > 0.02 * 500 * 300, `not much past the target: ${fc1} x ${fc2}`);
  assert.deepEqual(plan.get('fc1')?.slice(0, 2), [400, 401], 'the best-scored groups stay');
  assert.equal(weightCount(spec, ['fc2']), 150000);
});

test('mutual information is high for dependent and near zero for independent activations', () => {
  const n = 4000;
  const x = Float64Array.from({ length: n }, (_, i) => (Math.sin(i * 12.9898) * 43758.5453) % 1);
  const y = x.map((v) => v * 2 + 0.01);
  const z = Float64Array.from({ length: n }, (_, i) => (Math.sin(i * 78.233) * 12345.678) % 1);
  const [bx, by, bz] = [x, y, z].map((v) => quantileBins(v, 8));
  assert.ok(mutualInformation(bx, by, 8) > 1.9, 'ln 8 for a copy');
  assert.ok(mutualInformation(bx, bz, 8) < 0.05, 'about 0 for unrelated');
});

test('a DAB-binarized run prunes, fine-tunes, exports and runs in onnxruntime-node as the pruned model does', async () => {
  const dir = tempDir();
  const dab: ModelFixture = {
    data: DATA,
    train: {
      arch: 'mlp',
      widths: [64, 64],
      binarizeWeights: 'dab',
      binarizeActivations: 'none',
      ...ONE_EPOCH,
      seed: 3,
    },
  };
  await fixtures.runFolder(dab, `${dir}/dab`);
  for (const method of ['mint', 'magnitude'] as const) {
    const result = await pruneRun(loadRun(`${dir}/dab`), data, {
      method,
      sparsity: 0.7,
      scope: 'per-layer',
      groupSize: 2,
      samplesPerClass: 20,
      bins: 8,
      retrain: 1,
      batchSize: 50,
      learningRate: 0.001,
      seed: 1,
      out: `${dir}/${method}`,
    });
    assert.ok(
      result.pruning.weightsAfter <= 0.31 * result.pruning.weightsBefore,
      `${method}: ${result.pruning.weightsAfter}`,
    );
    const { bytes, manifest } = exportOnnx(result.frozen);
    assert.ok(manifest.layers.filter((l) => l.weights === 'dab').length === 3, 'still binarized');
    const file = parseModelFile(bytes, `${method}.onnx`);
    const backend = await createBackend('ort-node', file);
    const actual = await predict(backend, file, data, 200);
    await backend.dispose();
    const expected = await predictFrozen(result.frozen, data, data.test, 200);
    assert.ok(maxAbsDiff(actual, expected) <= 1e-4, `${method}: ${maxAbsDiff(actual, expected)}`);
    assert.ok(result.testAccuracy > 0.25, `${method} accuracy ${result.testAccuracy} (chance 0.1)`);
  }
});

test('GSS training empties groups beyond the keep-alive share and removes them', async () => {
  const result = await trainRun(data, {
    arch: 'mlp',
    widths: [64],
    binarizeWeights: 'none',
    binarizeActivations: 'none',
    epochs: 3,
    batchSize: 20,
    learningRate: 0.002,
    seed: 4,
    groupSparsity: { lambda: 10, keepAlive: 0.25, groupSize: 1 },
  });
  const kept = result.pruning?.kept.fc1.kept ?? 64;
  assert.ok(kept < 64, `some groups removed (kept ${kept})`);
  assert.ok(kept >= 16, `the keep-alive share survives (kept ${kept})`);
});

test('bad prune input: sparsity outside (0, 1), an untrained folder, a model without hidden layers', () => {
  const dir = tempDir();
  let r = runCli(['prune', dir, '--sparsity', '1.5', '--out', `${dir}/o`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^cmp: Run folder .* has no readable model\.json/);
  assert.equal(
    runCli(['train', '--data', 'mnist', '--widths', '', '--epochs', '1', '--limit-train', '200', '--out', `${dir}/x`])
      .code,
    2,
  );
  assert.equal(
    runCli([
      'train',
      '--data',
      'mnist',
      '--widths',
      '16',
      '--epochs',
      '1',
      '--limit-train',
      '200',
      '--out',
      `${dir}/run`,
      '--quiet',
    ]).code,
    0,
  );
  r = runCli(['prune', `${dir}/run`, '--sparsity', '1.5', '--out', `${dir}/o`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^cmp: Sparsity must be between 0 and 1 \(exclusive\), got 1\.5/);
  r = runCli(['prune', `${dir}/run`, '--sparsity', '0.5', '--method', 'random', '--out', `${dir}/o`]);
  assert.match(r.stderr.trim(), /--method must be one of: mint, mint-pairwise, gss, magnitude/);
});

test('cmp prune --method mint runs end to end on a small slice and writes a smaller run that exports', async () => {
  const dir = tempDir();
  const float: ModelFixture = {
    data: DATA,
    train: {
      arch: 'mlp',
      widths: [40, 30],
      binarizeWeights: 'none',
      binarizeActivations: 'none',
      ...ONE_EPOCH,
      seed: 6,
    },
  };
  await fixtures.runFolder(float, `${dir}/float`);
  const r = runCli([
    'prune',
    `${dir}/float`,
    '--data',
    'fashion-mnist',
    '--limit-train',
    '1000',
    '--limit-test',
    '200',
    '--method',
    'mint',
    '--sparsity',
    '0.8',
    '--group-size',
    '5',
    '--samples-per-class',
    '30',
    '--retrain',
    '1',
    '--json',
    '--out',
    `${dir}/mint`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { pruning: { method: string; weightsBefore: number; weightsAfter: number } };
  assert.equal(out.pruning.method, 'mint');
  assert.ok(out.pruning.weightsAfter <= 0.2 * out.pruning.weightsBefore, `${out.pruning.weightsAfter} weights left`);
  const pruned = loadRun(`${dir}/mint`);
  assert.equal(weightCount(pruned.record.spec), out.pruning.weightsAfter);
  assert.equal(runCli(['export', `${dir}/mint`, '--out', `${dir}/mint.onnx`]).code, 0);
});

test('prune, then binarize: a float run pruned with --binarize dab fine-tunes into binary layers', async () => {
  const dir = tempDir();
  const float: ModelFixture = {
    data: DATA,
    train: { arch: 'mlp', widths: [48], binarizeWeights: 'none', binarizeActivations: 'none', ...ONE_EPOCH, seed: 5 },
  };
  await fixtures.runFolder(float, `${dir}/float`);
  const result = await pruneRun(loadRun(`${dir}/float`), data, {
    method: 'magnitude',
    sparsity: 0.5,
    scope: 'per-layer',
    groupSize: 1,
    samplesPerClass: 0,
    bins: 8,
    retrain: 1,
    batchSize: 50,
    learningRate: 0.002,
    seed: 1,
    binarizeWeights: 'dab',
  });
  const fc1 = result.frozen.layers.find((l) => l.name === 'fc1');
  assert.ok(fc1?.kind === 'dense' && fc1.weights.kind === 'binary' && fc1.weights.rows === 24);
});
