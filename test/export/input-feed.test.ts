// Exported files take pixel / 255 and normalize in the graph (manifest input.feed): plain onnxruntime, bitwasm, stage
// files, static and dynamic masks agree with training; files exported before input.feed are still normalized by cmp.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { DEFAULT_MASK_TRAINING, trainRun, type MaskOptions } from '../../src/compress/train-run.js';
import { predictFrozen, predictFrozenWithExits } from '../../src/compress/train.js';
import type { FrozenModel } from '../../src/core/frozen.js';
import { MANIFEST_KEY, PIXEL_FEED, selectorPath, stagePath, type Manifest } from '../../src/core/manifest.js';
import { decodeModel, encodeOnnxModel } from '../../src/core/onnx.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBitwasmBackend } from '../../src/runtime/backend-bitwasm.js';
import { createBackend } from '../../src/runtime/backends.js';
import { StagedModel } from '../../src/runtime/early-exit.js';
import { evaluate, predict } from '../../src/runtime/evaluate.js';
import { MaskedInput } from '../../src/runtime/masked-input.js';
import { parseModelFile, readModelFile } from '../../src/runtime/model-file.js';
import { Predictor } from '../../src/runtime/predictor.js';
import { fixtureData, fixtures, type ModelFixture } from '../fixtures.js';
import { maxAbsDiff, runCli, tempDir } from '../helpers.js';

const SAMPLES = 100;
/** Logits of bitwasm and onnxruntime differ by summation order only (float activations: no binarization flips). */
const TOLERANCE = 1e-4;
let data: Dataset;

const DATA = { dataset: 'mnist', limitTrain: 800, limitTest: SAMPLES } as const;

before(async () => {
  data = await fixtureData(DATA);
});

const base = {
  binarizeWeights: 'dab',
  binarizeActivations: 'none',
  batchSize: 50,
  learningRate: 0.01,
  seed: 3,
  epochs: 1,
} as const;

/** A DAB MLP that two tests give other input normalizations: trained once (fixture cache). */
const DAB_MLP_32: ModelFixture = { data: DATA, train: { ...base, arch: 'mlp', widths: [32] } };

/** The model with another input normalization, as an imported [-1, 1] or [0, 255] model has one. */
function withInput(frozen: FrozenModel, mean: number, std: number): FrozenModel {
  return { ...frozen, spec: { ...frozen.spec, input: { ...frozen.spec.input, mean, std } } };
}

/** A file as cmp wrote it before input.feed: no Sub/Div on the input, and the manifest says nothing of the feed. */
function asOldFile(bytes: Uint8Array): Uint8Array {
  const model = decodeModel(bytes, 'new.onnx');
  const graph = model.graph as NonNullable<typeof model.graph>;
  graph.node = (graph.node ?? []).filter((n) => n.name !== 'input.centred' && n.name !== 'input.normalized');
  for (const n of graph.node) n.input = (n.input ?? []).map((i) => (i === 'input.normalized' ? 'input' : i));
  const entry = (model.metadataProps ?? []).find((p) => p.key === MANIFEST_KEY);
  const manifest = JSON.parse(entry?.value ?? '{}') as Manifest;
  delete manifest.input.feed;
  (entry as { value: string }).value = JSON.stringify(manifest);
  return encodeOnnxModel(model, 'old.onnx');
}

function pixels(count: number): Float32Array {
  return data.test.x.slice(0, count * 784);
}

test('a binary MLP with mean 0.5, std 0.25 takes pixel/255: plain onnxruntime-node, bitwasm and training agree', async () => {
  const trained = await fixtures.model(DAB_MLP_32);
  const frozen = withInput(trained.frozen, 0.5, 0.25);
  const exported = exportOnnx(frozen);
  assert.equal(exported.manifest.input.feed, PIXEL_FEED);
  const expected = await predictFrozen(frozen, data, data.test, SAMPLES);
  // onnxruntime-node alone, no cmp code around it: the pixels as the data set holds them.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(exported.bytes);
  const plain = await session.run({ input: new ort.Tensor('float32', pixels(SAMPLES), [SAMPLES, 1, 28, 28]) });
  await session.release();
  const logits = plain.logits.data as Float32Array;
  assert.ok(maxAbsDiff(logits, expected) <= TOLERANCE, `plain onnxruntime: ${maxAbsDiff(logits, expected)}`);
  const file = parseModelFile(exported.bytes, 'mlp.onnx');
  assert.deepEqual(file.normalization, { mean: 0.5, std: 0.25, by: 'graph' });
  for (const backend of [
    await createBackend('ort-web', file),
    await createBitwasmBackend(file, 'wasm'),
    await createBitwasmBackend(file, 'reference'),
  ]) {
    const got = await predict(backend, file, data, SAMPLES, 25);
    await backend.dispose();
    assert.ok(maxAbsDiff(got, expected) <= TOLERANCE, `${backend.name}: ${maxAbsDiff(got, expected)}`);
  }
  const backend = await createBackend('ort-node', file);
  const result = await evaluate(backend, file, data);
  await backend.dispose();
  assert.deepEqual(result.normalization, { mean: 0.5, std: 0.25, by: 'graph', fromManifest: true });
  // A device's Predictor (the rpi agent, the browser page) hands the pixels on as they are.
  const predictor = await Predictor.open(file, { backend: 'bitwasm' });
  const one = await predictor.infer(pixels(1));
  await predictor.dispose();
  assert.ok(maxAbsDiff(one.logits, expected.subarray(0, 10)) <= TOLERANCE);
});

test('a file exported before input.feed is normalized by cmp as before, in onnxruntime, bitwasm and Predictor', async () => {
  const trained = await fixtures.model(DAB_MLP_32);
  const frozen = withInput(trained.frozen, 0.5, 0.5);
  const expected = await predictFrozen(frozen, data, data.test, SAMPLES);
  const file = parseModelFile(asOldFile(exportOnnx(frozen).bytes), 'old.onnx');
  assert.equal(file.manifest?.input.feed, undefined);
  assert.ok(!(file.model.graph?.node ?? []).some((n) => n.opType === 'Div'), 'no normalization in the old graph');
  assert.deepEqual(file.normalization, { mean: 0.5, std: 0.5, by: 'caller' });
  for (const name of ['ort-node', 'bitwasm']) {
    const backend = await createBackend(name, file);
    const got = await predict(backend, file, data, SAMPLES, 50);
    await backend.dispose();
    assert.ok(maxAbsDiff(got, expected) <= TOLERANCE, `${name}: ${maxAbsDiff(got, expected)}`);
  }
  const predictor = await Predictor.open(file, { backend: 'ort-node' });
  const one = await predictor.infer(pixels(1));
  await predictor.dispose();
  assert.ok(maxAbsDiff(one.logits, expected.subarray(0, 10)) <= TOLERANCE);
});

test('inspect says how each file takes its input: pixel/255 alone when there is nothing to normalize', async () => {
  const trained = await fixtures.model(DAB_MLP_32);
  const dir = tempDir();
  const takes = (name: string, bytes: Uint8Array): string => {
    writeFileSync(join(dir, name), bytes);
    const inspected = runCli(['inspect', join(dir, name)]);
    assert.equal(inspected.code, 0, inspected.stderr);
    return /^input .*, (takes .*)$/m.exec(inspected.stdout)?.[1] ?? inspected.stdout;
  };
  const plain = withInput(trained.frozen, 0, 1);
  const centred = withInput(trained.frozen, 0.5, 0.5);
  assert.equal(takes('new.onnx', exportOnnx(plain).bytes), 'takes pixel/255');
  assert.equal(takes('old.onnx', asOldFile(exportOnnx(plain).bytes)), 'takes pixel/255');
  assert.equal(
    takes('new-centred.onnx', exportOnnx(centred).bytes),
    'takes pixel/255; the graph applies (x - 0.5) / 0.5',
  );
  assert.equal(
    takes('old-centred.onnx', asOldFile(exportOnnx(centred).bytes)),
    'takes (pixel/255 - 0.5) / 0.5 (the caller normalizes; an older cmp file)',
  );
});

/** A quick mask: a fixed random or importance baseline, or a dynamic one whose units close fast. */
function mask(overrides: Partial<MaskOptions>): MaskOptions {
  return {
    kind: 'static',
    granularity: { kind: 'pixel' },
    source: 'random',
    keep: 0.5,
    values: 'uint8',
    ...DEFAULT_MASK_TRAINING,
    schedule: { ...DEFAULT_MASK_TRAINING.schedule, start: 0.02, patience: 1 },
    warmupEpochs: 1,
    ...overrides,
  };
}

test('exits and a static mask: only stage 1 normalizes, on the compact raw pixels; stages on ort and bitwasm equal training', async () => {
  const trained = await trainRun(data, { ...base, arch: 'mlp', widths: [32, 32], exits: [1], mask: mask({}) });
  const frozen = withInput(
    { ...trained.frozen, exits: (trained.frozen.exits ?? []).map((e) => ({ ...e, threshold: 1 })) },
    0.5,
    0.5,
  );
  const path = join(tempDir(), 'exit-mask.onnx');
  const exported = exportOnnx(frozen);
  writeFileSync(path, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(path, k + 1), bytes));
  const divides = (bytes: Uint8Array): boolean =>
    (decodeModel(bytes, 'stage').graph?.node ?? []).some((n) => n.name === 'input.normalized');
  assert.deepEqual(exported.stages.map(divides), [true, false]);
  const expected = await predictFrozenWithExits(frozen, data, data.test, 40);
  const link = (await MaskedInput.open(readModelFile(path))) as MaskedInput;
  const stagedOrt = await StagedModel.load(path, 'ort-node');
  const stagedBitwasm = await StagedModel.load(path, 'bitwasm');
  assert.equal(stagedBitwasm.backendName, 'bitwasm');
  const inputs: Float32Array[] = [];
  for (let i = 0; i < 40; i++)
    inputs.push((await link.modelInput(data.test.x.subarray(i * 784, (i + 1) * 784), 1)).input);
  // The median exit entropy as the threshold, so that both paths are taken.
  stagedOrt.thresholds = [-1];
  const entropies = await Promise.all(inputs.map(async (x) => (await stagedOrt.run(x)).entropies[0]));
  stagedOrt.thresholds = stagedBitwasm.thresholds = [entropies.sort((x, y) => x - y)[20]];
  let exits = 0;
  for (let i = 0; i < 40; i++) {
    const input = inputs[i];
    // The receiver hands on the kept pixels as sent (k / 255), not normalized ones.
    assert.ok(input.every((v) => v >= 0 && v <= 1));
    const a = await stagedOrt.run(input);
    const b = await stagedBitwasm.run(input);
    const reference = a.exit === 1 ? expected.exits[0] : expected.logits;
    assert.equal(b.exit, a.exit, `sample ${i}: same exit`);
    assert.ok(maxAbsDiff(a.logits, reference.subarray(i * 10, (i + 1) * 10)) <= TOLERANCE, `sample ${i}: ort`);
    assert.ok(maxAbsDiff(b.logits, a.logits) <= TOLERANCE, `sample ${i}: bitwasm`);
    exits += Number(a.exit === 1);
  }
  await Promise.all([stagedOrt.dispose(), stagedBitwasm.dispose(), link.dispose()]);
  assert.ok(exits > 0 && exits < 40, `both paths taken (${exits} of 40 exited early)`);
});

test('a dynamic mask: the selector normalizes in its graph, and unsent features reach the model as the mean', async () => {
  const trained = await trainRun(data, {
    ...base,
    arch: 'mlp',
    widths: [32],
    epochs: 2,
    mask: mask({ kind: 'dynamic', source: 'learned', keep: undefined, granularity: { kind: 'block', size: 4 } }),
  });
  const frozen = withInput(trained.frozen, 0.25, 0.5);
  const path = join(tempDir(), 'dynamic.onnx');
  const exported = exportOnnx(frozen);
  writeFileSync(path, exported.bytes);
  writeFileSync(selectorPath(path), exported.selector as Uint8Array);
  const file = readModelFile(path);
  const link = (await MaskedInput.open(file)) as MaskedInput;
  const { input } = await link.modelInput(pixels(20), 20);
  await link.dispose();
  assert.ok(link.tally.units < 20 * 49, `some units unsent (${link.tally.units} of ${20 * 49} sent)`);
  assert.ok(
    input.some((v) => v === Math.fround(0.25)),
    'unsent features carry the mean',
  );
  const backend = await createBackend('ort-node', file);
  const got = await predict(backend, file, data, SAMPLES);
  await backend.dispose();
  const expected = await predictFrozen(frozen, data, data.test, SAMPLES);
  assert.ok(maxAbsDiff(got, expected) <= TOLERANCE, `max abs diff ${maxAbsDiff(got, expected)}`);
});
