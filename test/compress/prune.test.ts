// Structural pruning: exactly the chosen groups leave, the pruned ONNX matches the pruned model, DAB composes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, test } from 'node:test';
import { pruneRun } from '../../src/compress/prune-run.js';
import {
  applyPruning,
  cutsFromInput,
  inputFeatures,
  mutualInformation,
  nonzeroWeights,
  planConnections,
  planPruning,
  quantileBins,
  weightCount,
  type KeepPlan,
} from '../../src/compress/prune.js';
import { trainRun } from '../../src/compress/train-run.js';
import { predictFrozen, train } from '../../src/compress/train.js';
import { specFor } from '../../src/compress/train-run.js';
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
/** The float MLP the CLI prune tests start from (one fixture, trained once). */
const FLOAT_MLP: ModelFixture = {
  data: DATA,
  train: { arch: 'mlp', widths: [40, 30], binarizeWeights: 'none', binarizeActivations: 'none', ...ONE_EPOCH, seed: 6 },
};
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

/** A float dense layer for hand-built specs (ReLU, or none for the classifier). */
function dense(name: string, units: number, last = false): ModelSpec['layers'][number] {
  return {
    kind: 'dense',
    name,
    units,
    batchNorm: false,
    activation: last ? 'none' : 'relu',
    binarize: { weights: 'none', inputs: 'none' },
  };
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
  r = runCli(['prune', `${dir}/run`, '--sparsity', '0.5', '--distill', '1.5', '--out', `${dir}/o`]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^cmp: --distill is the teacher's share of the loss, in \(0, 1\]; got 1\.5/);
  r = runCli(['prune', `${dir}/run`, '--sparsity', '0.5', '--layers', 'fc9', '--out', `${dir}/o`]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr.trim(),
    /^cmp: --layers names "fc9", which is not a weight layer of .*Its weight layers: fc1, /,
  );
});

test('connections from the input are cut in a dense first layer over an unmasked input, and refused elsewhere', () => {
  const mlp = {
    format: 'cmp-model/1',
    arch: 'mlp',
    input: { shape: [1, 2, 2], mean: 0, std: 1 },
    labels: ['a', 'b'],
    layers: [{ kind: 'flatten', name: 'flatten' }, dense('fc1', 3), dense('logits', 2, true)],
  } as ModelSpec;
  assert.equal(cutsFromInput(mlp), true);
  assert.equal(cutsFromInput(mlp, ['logits']), false);
  assert.equal(inputFeatures(mlp), 4);
  const conv = {
    ...mlp,
    layers: [
      {
        kind: 'conv',
        name: 'conv1',
        filters: 2,
        kernel: 1,
        batchNorm: false,
        activation: 'relu',
        binarize: { weights: 'none', inputs: 'none' },
      },
      ...mlp.layers,
    ],
  } as ModelSpec;
  assert.equal(cutsFromInput(conv), false, 'counting every layer, a conv net keeps its input connections');
  assert.throws(
    () => cutsFromInput(conv, ['conv1', 'fc1']),
    /^CmpError: Connections from the input are cut only in a dense first layer over an unmasked input, and conv1 is not one\. Name later layers in --layers\.$/,
  );
});

test('planConnections cuts the lowest-scored blocks of the counted layer, and a parent left unconnected leaves', () => {
  const spec = {
    format: 'cmp-model/1',
    arch: 'mlp',
    input: { shape: [1, 2, 2], mean: 0, std: 1 },
    labels: ['a', 'b'],
    layers: [{ kind: 'flatten', name: 'flatten' }, dense('fc1', 6), dense('fc2', 4), dense('logits', 2, true)],
  } as ModelSpec;
  // fc2's blocks: 2 child groups (rows) x 3 parent groups of fc1 (columns); fc1's group 1 scores lowest for both.
  const scores = [
    {
      layer: 'fc1',
      units: 6,
      groupSize: 2,
      scores: Float64Array.of(9, 1.5, 9),
      blocks: { layer: 'fc2', childUnits: 4, childGroupSize: 2, scores: Float64Array.of(5, 1, 6, 4, 0.5, 3) },
    },
    {
      layer: 'fc2',
      units: 4,
      groupSize: 2,
      scores: Float64Array.of(1, 1),
      blocks: { layer: 'logits', childUnits: 2, childGroupSize: 1, scores: Float64Array.of(1, 1, 1, 1) },
    },
  ];
  const { plan, masks, remaining } = planConnections(spec, scores, 1 / 3, 'per-layer', ['fc2']);
  assert.deepEqual(plan.get('fc1'), [0, 1, 4, 5], "fc1's units 2 and 3 lost every connection, so they leave");
  assert.deepEqual(plan.get('fc2'), undefined, 'logits are not counted, so not cut');
  // fc2's weights are [in = 6, out = 4]: rows 2 and 3 (fc1's units 2, 3) are cut for every child.
  assert.deepEqual(
    [...(masks.get('fc2.weight') as Float32Array)],
    [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
  );
  assert.deepEqual([...(masks.get('logits.weight') as Float32Array)], new Array(8).fill(1));
  assert.equal(remaining, 16);
  // As deep as it goes, counting every layer: each child group keeps its best block, and the classifier is not cut.
  const deepest = planConnections(spec, scores, 0.99, 'per-layer');
  const fc2 = deepest.masks.get('fc2.weight') as Float32Array;
  for (let unit = 0; unit < 4; unit++) {
    assert.ok(
      [0, 1, 2, 3, 4, 5].some((row) => fc2[row * 4 + unit] === 1),
      `fc2 unit ${unit} keeps an input`,
    );
  }
  assert.deepEqual([...fc2].filter((v) => v === 1).length, 8, "each child group keeps its best block's 4 weights");
  assert.deepEqual([...(deepest.masks.get('logits.weight') as Float32Array)], new Array(8).fill(1));
  // Counting fc1 too, its blocks from the input's feature groups (2 features each) are cut as well; no unit leaves
  // for losing input connections.
  const fromInput = [
    {
      ...scores[0],
      inputBlocks: {
        layer: 'fc1',
        childUnits: 6,
        childGroupSize: 2,
        parentUnits: 4,
        scores: Float64Array.of(5, 0.1, 6, 0.2, 4, 3),
      },
    },
    scores[1],
  ];
  const both = planConnections(spec, fromInput, 1 / 3, 'per-layer', ['fc1', 'fc2']);
  assert.deepEqual(both.plan.get('fc1'), [0, 1, 4, 5]);
  // fc1's weights are [in = 4, out = 6]: input group 1 (rows 2, 3) loses child groups 0 and 1 (columns 0-3), and
  // units 2 and 3 left with fc2's cut, so their columns are zero too.
  assert.deepEqual(
    [...(both.masks.get('fc1.weight') as Float32Array)],
    [1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1],
  );
  assert.deepEqual(both.cutLayers.sort(), ['fc1', 'fc2']);
  // The next block up: the cut that also takes the (child 1, parent 2) block, whose score is 3.
  const deeper = planConnections(spec, scores, 0.5, 'per-layer', ['fc2']);
  assert.deepEqual(deeper.plan.get('fc1'), [0, 1, 4, 5]);
  assert.equal(deeper.remaining, 12);
  assert.deepEqual(
    [...(deeper.masks.get('fc2.weight') as Float32Array)].slice(16),
    [1, 1, 0, 0, 1, 1, 0, 0],
    'parent group 2 keeps its block to child group 0 only',
  );
});

test('cmp prune --granularity connection cuts blocks of fc2, holds them at zero through fine-tuning, and exports', async () => {
  const dir = tempDir();
  await fixtures.runFolder(FLOAT_MLP, `${dir}/float`);
  for (const method of ['mint', 'magnitude']) {
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
      method,
      '--granularity',
      'connection',
      '--layers',
      'fc2',
      // fc1's 8 groups of 5 feed fc2's 6: each child group keeps its best block, so at most 7/8 of fc2 can go.
      '--sparsity',
      '0.85',
      '--group-size',
      '5',
      '--samples-per-class',
      '30',
      '--retrain',
      '1',
      '--json',
      '--out',
      `${dir}/${method}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      pruning: { granularity: string; weightsAfter: number };
      testAccuracy: number;
    };
    assert.equal(out.pruning.granularity, 'connection');
    const pruned = loadRun(`${dir}/${method}`);
    const fc2 = nonzeroWeights(pruned.record.spec, pruned.tensors, ['fc2']);
    assert.ok(fc2 <= 0.15 * 40 * 30 && fc2 >= 6 * 25, `${method}: fc2 keeps ${fc2} of 1200 weights after fine-tuning`);
    assert.equal(
      nonzeroWeights(pruned.record.spec, pruned.tensors),
      out.pruning.weightsAfter,
      'fine-tuning kept the cut weights at zero',
    );
    assert.ok(out.testAccuracy > 0.2, `${method}: ${out.testAccuracy} after fine-tuning (chance 0.1)`);
    assert.equal(runCli(['export', `${dir}/${method}`, '--out', `${dir}/${method}.onnx`]).code, 0);
    const file = parseModelFile(readFileSync(`${dir}/${method}.onnx`), `${method}.onnx`);
    const backend = await createBackend('ort-node', file);
    const actual = await predict(backend, file, data, 200);
    const expected = await predictFrozen(freeze(pruned.record.spec, pruned.tensors), data, data.test, 200);
    assert.ok(
      maxAbsDiff(actual, expected) <= 1e-4,
      `${method}: onnxruntime differs by ${maxAbsDiff(actual, expected)}`,
    );
    await backend.dispose();
  }
  // Counting the whole network, MINT also cuts fc1's connections from pixel groups.
  const r = runCli([
    'prune',
    `${dir}/float`,
    '--data',
    'fashion-mnist',
    '--limit-train',
    '1000',
    '--limit-test',
    '200',
    '--granularity',
    'connection',
    '--sparsity',
    '0.9',
    '--group-size',
    '5',
    '--samples-per-class',
    '30',
    '--retrain',
    '1',
    '--json',
    '--out',
    `${dir}/whole`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { pruning: { weightsBefore: number; weightsAfter: number } };
  assert.ok(out.pruning.weightsAfter <= 0.1 * out.pruning.weightsBefore, `${out.pruning.weightsAfter} weights left`);
  const whole = loadRun(`${dir}/whole`);
  const fc1 = nonzeroWeights(whole.record.spec, whole.tensors, ['fc1']);
  const fc1Before = weightCount(loadRun(`${dir}/float`).record.spec, ['fc1']);
  assert.ok(fc1 <= 0.15 * fc1Before, `fc1 keeps ${fc1} of ${fc1Before} weights: its input connections were cut`);
  assert.equal(nonzeroWeights(whole.record.spec, whole.tensors), out.pruning.weightsAfter);
});

test('cmp prune --method mint runs end to end on a small slice and writes a smaller run that exports', async () => {
  const dir = tempDir();
  await fixtures.runFolder(FLOAT_MLP, `${dir}/float`);
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

test("distillation's loss: (1 - w) x cross-entropy plus w x T^2 x cross-entropy against the teacher's softened predictions", async () => {
  const base = specFor(data, { arch: 'mlp', widths: [24], binarizeWeights: 'none', binarizeActivations: 'none' });
  const spec = { ...base, layers: base.layers.map((l) => (l.kind === 'dense' ? { ...l, batchNorm: false } : l)) };
  const teacher = await train(spec, data, { ...ONE_EPOCH, seed: 3 });
  const tensors = new Map([...teacher.tensors].map(([name, t]) => [name, t.data]));
  // The student starts as the teacher and does not move (rate 0): its loss is known in closed form.
  const [weight, temperature] = [0.6, 3];
  const student = await train(spec, data, {
    ...ONE_EPOCH,
    learningRate: 0,
    seed: 3,
    initial: tensors,
    sgd: { momentum: 0, weightDecay: 0, milestones: [], gamma: 1 },
    distill: { teacher: teacher.frozen, weight, temperature },
  });
  const logits = await predictFrozen(teacher.frozen, data, data.train);
  const classes = spec.labels.length;
  let ce = 0;
  let soft = 0;
  for (let i = 0; i < data.train.count; i++) {
    const row = Array.from(logits.subarray(i * classes, (i + 1) * classes));
    const logSoftmax = (v: number[]): number[] => {
      const max = Math.max(...v);
      const log = Math.log(v.reduce((a, x) => a + Math.exp(x - max), 0)) + max;
      return v.map((x) => x - log);
    };
    ce -= logSoftmax(row)[data.train.y[i]];
    const softened = logSoftmax(row.map((x) => x / temperature));
    soft -= softened.reduce((a, l) => a + Math.exp(l) * l, 0);
  }
  const expected = ((1 - weight) * ce + weight * temperature ** 2 * soft) / data.train.count;
  const actual = student.training.history[0].loss;
  assert.ok(Math.abs(actual - expected) < 1e-3 * expected, `epoch loss ${actual}, expected ${expected}`);
  assert.ok(Math.abs(actual - ce / data.train.count) > 0.05, 'and it is not the plain cross-entropy');
});
