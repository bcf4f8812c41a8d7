// Input masks end to end: the exported model on what the receiver decodes equals the trained masked model.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { trainRun, DEFAULT_MASK_TRAINING, type MaskOptions } from '../../src/compress/train-run.js';
import { predictFrozen, predictFrozenWithExits, selectedUnits } from '../../src/compress/train.js';
import type { MaskSpec } from '../../src/core/mask.js';
import { SelectionCodec } from '../../src/core/codec.js';
import { selectorPath } from '../../src/core/manifest.js';
import { loadDataset, type Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { createBackend } from '../../src/runtime/backends.js';
import { StagedModel } from '../../src/runtime/early-exit.js';
import { evaluate, predict } from '../../src/runtime/evaluate.js';
import { MaskedInput } from '../../src/runtime/masked-input.js';
import { parseModelFile, readModelFile } from '../../src/runtime/model-file.js';
import { maxAbsDiff, tempDir } from '../helpers.js';

const SAMPLES = 200;
let data: Dataset;

before(async () => {
  data = await loadDataset('mnist', { limitTrain: 1500, limitTest: SAMPLES });
});

/** A quick learned mask: a large starting lambda so units close within a few short epochs. */
function quickMask(overrides: Partial<MaskOptions>): MaskOptions {
  return {
    kind: 'static',
    granularity: { kind: 'pixel' },
    source: 'learned',
    values: 'uint8',
    ...DEFAULT_MASK_TRAINING,
    schedule: { ...DEFAULT_MASK_TRAINING.schedule, start: 0.02, patience: 1 },
    warmupEpochs: 1,
    ...overrides,
  };
}

const base = {
  binarizeWeights: 'none',
  binarizeActivations: 'none',
  batchSize: 50,
  learningRate: 0.01,
  seed: 5,
} as const;

test('a learned static mask closes units; the exported MLP takes only the kept pixels and equals the trained model', async () => {
  const out = tempDir();
  const trained = await trainRun(data, {
    ...base,
    arch: 'mlp',
    widths: [64],
    epochs: 4,
    mask: quickMask({}),
    out: join(out, 'run'),
  });
  const mask = trained.spec.inputMask;
  assert.ok(
    mask?.kind === 'static' && mask.kept.length < 784 && mask.kept.length > 0,
    `kept ${mask?.kind === 'static' ? mask.kept.length : '?'} of 784`,
  );
  assert.ok((trained.masking?.checkpoints.length ?? 0) >= 2, 'checkpoints were saved along the way');
  const { bytes, manifest } = exportOnnx(trained.frozen);
  const file = parseModelFile(bytes, 'mask.onnx');
  assert.deepEqual(file.inputDims, [manifest.inputMask?.features]);
  assert.equal(manifest.layers[0].weightShape[0], mask.kept.length, 'the first layer keeps only the kept rows');
  const backend = await createBackend('ort-node', file);
  const got = await predict(backend, file, data, SAMPLES);
  const expected = await predictFrozen(trained.frozen, data, data.test, SAMPLES);
  assert.ok(maxAbsDiff(got, expected) <= 1e-4, `max abs diff ${maxAbsDiff(got, expected)}`);
  const result = await evaluate(backend, file, data);
  assert.equal(
    result.link?.meanFrameBytes,
    8 + mask.kept.length,
    'each frame is the header plus one byte per kept pixel',
  );
  await backend.dispose();
});

test('bitwasm runs a masked DAB MLP whose mask is folded into its first layer, as onnxruntime does', async () => {
  const trained = await trainRun(data, {
    ...base,
    binarizeWeights: 'dab',
    binarizeActivations: 'dab',
    arch: 'mlp',
    widths: [64, 32],
    epochs: 1,
    mask: quickMask({ source: 'random', keep: 0.25 }),
  });
  const file = parseModelFile(exportOnnx(trained.frozen).bytes, 'dab-mask.onnx');
  const ort = await createBackend('ort-node', file);
  const bitwasm = await createBackend('bitwasm', file);
  const expected = await predict(ort, file, data, SAMPLES);
  const got = await predict(bitwasm, file, data, SAMPLES);
  assert.ok(maxAbsDiff(got, expected) <= 1e-3, `max abs diff ${maxAbsDiff(got, expected)}`);
  await Promise.all([ort.dispose(), bitwasm.dispose()]);
});

test('a conv net with a fixed block mask and an exit: whole model, stages and training agree on compact input', async () => {
  const trained = await trainRun(data, {
    ...base,
    arch: 'lenet',
    filters: [4, 6],
    widths: [16],
    exits: [1],
    epochs: 1,
    mask: quickMask({ source: 'importance', keep: 0.3, granularity: { kind: 'block', size: 4 } }),
  });
  const calibrated = { ...trained.frozen, exits: (trained.frozen.exits ?? []).map((e) => ({ ...e, threshold: 0.5 })) };
  const dir = tempDir();
  const path = join(dir, 'lenet-mask.onnx');
  const exported = exportOnnx(calibrated);
  writeFileSync(path, exported.bytes);
  exported.stages.forEach((b, k) => writeFileSync(path.replace('.onnx', `.stage${k + 1}.onnx`), b));
  const file = readModelFile(path);
  const features = exported.manifest.inputMask?.features as number;
  assert.deepEqual(file.inputDims, [features]);
  assert.ok(features < 784);
  const expected = await predictFrozenWithExits(calibrated, data, data.test, SAMPLES);
  const link = (await MaskedInput.open(file)) as MaskedInput;
  const staged = await StagedModel.load(path, 'ort-node');
  const whole = await createBackend('ort-node', file);
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(exported.bytes);
  for (let i = 0; i < 40; i++) {
    const { input } = await link.modelInput(data.test.x.subarray(i * 784, (i + 1) * 784), 1);
    const result = await staged.run(input);
    const outputs = await session.run({ input: new ort.Tensor('float32', input, [1, features]) });
    assert.equal(Number(outputs.exit_index.data[0]), result.exit, `sample ${i}: same exit`);
    assert.ok(maxAbsDiff(outputs.logits.data as Float32Array, result.logits) <= 1e-4);
    const reference = result.exit === 1 ? expected.exits[0] : expected.logits;
    assert.ok(
      maxAbsDiff(result.logits, reference.subarray(i * 10, (i + 1) * 10)) <= 1e-4,
      `sample ${i} equals training`,
    );
  }
  await Promise.all([staged.dispose(), whole.dispose(), link.dispose(), session.release()]);
});

test('a dynamic mask: the selector file picks per instance and the receiver model equals the trained model', async () => {
  const trained = await trainRun(data, {
    ...base,
    arch: 'mlp',
    widths: [64],
    epochs: 3,
    mask: quickMask({ kind: 'dynamic', granularity: { kind: 'block', size: 2 } }),
  });
  const dir = tempDir();
  const path = join(dir, 'dyn.onnx');
  const exported = exportOnnx(trained.frozen);
  assert.ok(exported.selector, 'a selector file is exported');
  writeFileSync(path, exported.bytes);
  writeFileSync(selectorPath(path), exported.selector);
  const file = readModelFile(path);
  const backend = await createBackend('ort-node', file);
  const got = await predict(backend, file, data, SAMPLES);
  const expected = await predictFrozen(trained.frozen, data, data.test, SAMPLES);
  assert.ok(maxAbsDiff(got, expected) <= 1e-4, `max abs diff ${maxAbsDiff(got, expected)}`);
  const result = await evaluate(backend, file, data);
  const link = result.link;
  assert.ok(link && link.meanFrameBytes < 784, `${link?.meanFrameBytes} bytes per instance`);
  // The selection is coded against the prior training found (the units sent for most held-out digits), or with the
  // rates it found (how often each unit was sent), when that is shorter: over the test digits it costs less than the
  // best coding without them, and no more than with the prior alone.
  const mask = exported.manifest.inputMask!;
  assert.ok(Array.isArray(mask.prior) && mask.prior.length > 0, 'the manifest carries the prior');
  assert.equal(mask.rates?.length, mask.units, 'and a rate per unit');
  const spec = trained.frozen.mask!.spec;
  const plain = new SelectionCodec({ ...spec, prior: undefined, rates: undefined } as MaskSpec, data.inputShape, 0);
  const priorOnly = new SelectionCodec({ ...spec, rates: undefined } as MaskSpec, data.inputShape, 0);
  const sent = await selectedUnits(trained.frozen, data.test, SAMPLES);
  const plainBytes = sent.reduce((a, units) => a + plain.selectionLength(units), 0);
  const priorBytes = sent.reduce((a, units) => a + priorOnly.selectionLength(units), 0);
  // The runtime's selector (what a sender and the dashboard's model view run) picks what the trainer picks.
  const masked = (await MaskedInput.open(file, 'ort-node'))!;
  assert.deepEqual(await masked.selections(data.test.x.subarray(0, SAMPLES * 784), SAMPLES), sent);
  await masked.dispose();
  assert.equal(link.frames, SAMPLES);
  assert.ok(
    link.selectionBytes < plainBytes,
    `${link.selectionBytes} selection bytes with the prior and rates, ${plainBytes} without`,
  );
  assert.ok(link.selectionBytes <= priorBytes, `${link.selectionBytes} bytes, ${priorBytes} with the prior alone`);
  await backend.dispose();
  writeFileSync(
    selectorPath(path),
    exportOnnx({
      ...trained.frozen,
      mask: {
        ...trained.frozen.mask!,
        selector: {
          weight: new Float32Array(trained.frozen.mask!.selector!.weight.length),
          bias: trained.frozen.mask!.selector!.bias,
        },
      },
    }).selector!,
  );
  await assert.rejects(MaskedInput.open(readModelFile(path)), /not the selector of/);
});
