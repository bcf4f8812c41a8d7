// Split inference on the real firmware in QEMU: the device applies the static mask and runs stage 1; confident
// answers come from its exit, the rest is handed off as a cmp-select/1 frame of exactly the kept pixels, and the
// host finishes. Every label equals the host-only run's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { predictFrozenWithExits } from '../../src/compress/train.js';
import { softmaxEntropy } from '../../src/core/entropy.js';
import type { FrozenModel } from '../../src/core/frozen.js';
import type { Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { requireTool } from '../../src/link/firmware-build.js';
import { SelectionCodec } from '../../src/core/codec.js';
import { analyzeModel } from '../../src/profile/analyze.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { bootQemu, type QemuSession } from '../../src/link/qemu.js';
import { parseGranularity } from '../../src/core/mask.js';
import { handoffUplinkBytes, resultUplinkBytes, runSplit } from '../../src/profile/split.js';
import { createBackend } from '../../src/runtime/backends.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { fixtureData, fixtures, type ModelFixture } from '../fixtures.js';

/** Enough for dozens of answers on each side of the exit threshold; each image crosses the emulated UART twice. */
const IMAGES = 80;
const CLASSES = 10;
const FEATURES = 784;
/** Device float sums run in another order than TensorFlow.js's: entropies agree to this. */
const TOLERANCE = 1e-3;

let data: Dataset;
let frozen: FrozenModel;
let threshold: number;
let expected: { logits: Float32Array; exits: Float32Array[] };
let session: QemuSession;

/** A DAB MLP with an exit after its first layer and a static mask of the 15% most informative pixels. */
const SPLIT_MLP: ModelFixture = {
  data: { dataset: 'fashion-mnist', limitTrain: 2000, limitTest: IMAGES },
  train: {
    arch: 'mlp',
    widths: [64, 32],
    exits: [1],
    binarizeWeights: 'dab',
    binarizeActivations: 'dab',
    epochs: 1,
    batchSize: 50,
    learningRate: 0.002,
    seed: 4,
    mask: {
      kind: 'static',
      granularity: parseGranularity('pixel'),
      source: 'importance',
      keep: 0.15,
      values: 'uint8',
      schedule: { start: 0, growth: 1, patience: 1, tolerance: 0 },
      warmupEpochs: 0,
      checkpointStep: 0.01,
      checkpointKeptRatio: 0.8,
      minKeep: 0.01,
    },
  },
};

before(async () => {
  requireTool('qemu-system-arm');
  const firmware = await fixtures.firmware('mps2-an385');
  data = await fixtureData(SPLIT_MLP.data);
  const trained = await fixtures.model(SPLIT_MLP);
  const probe = await predictFrozenWithExits(trained.frozen, data, data.test, IMAGES);
  // The median exit entropy: about half the images leave on the device.
  const entropies = Array.from({ length: IMAGES }, (_, i) => softmaxEntropy(probe.exits[0], i * CLASSES, CLASSES)).sort(
    (a, b) => a - b,
  );
  threshold = (entropies[IMAGES / 2] + entropies[IMAGES / 2 + 1]) / 2;
  frozen = { ...trained.frozen, exits: (trained.frozen.exits ?? []).map((e) => ({ ...e, threshold })) };
  expected = await predictFrozenWithExits(frozen, data, data.test, IMAGES);
  session = await bootQemu({ elfPath: firmware.elfPath, client: { timeoutMs: 3000 } });
});

after(async () => {
  await session?.close();
});

test(`${IMAGES} images split between device and host: exits, hand-off frames and labels equal the host-only run`, async () => {
  const exported = exportOnnx(frozen);
  const file = parseModelFile(exported.bytes, 'split.onnx');
  const mcu = convertToMcuModel(file);
  assert.ok(mcu.mask && mcu.exits?.length === 1, 'format 2 carries the mask and the exit');
  const info = await session.client.uploadModel(mcu.blob);
  assert.equal(info.arenaUsed, mcu.arenaBytes, 'the device uses exactly the arena the host computed');
  const analysis = analyzeModel(file, { target: 'mcu', board: 'mps2-an385' });
  assert.equal(analysis.mcu?.arenaUploadedBytes, info.arenaUsed, 'cmp analyze gives the arena the firmware reports');
  assert.equal(analysis.mcu?.modelBytes, info.bytes, 'and the model bytes');
  const mask = exported.manifest.inputMask;
  assert.ok(mask?.kind === 'static');
  const codec = new SelectionCodec(
    {
      kind: 'static',
      granularity: parseGranularity(mask.granularity),
      source: 'learned',
      values: 'uint8',
      kept: mask.kept ?? [],
    },
    [1, 28, 28],
    mask.maskId,
  );
  let onDevice = 0;
  let handedOff = 0;
  for (let i = 0; i < IMAGES; i++) {
    const x = data.test.x.subarray(i * FEATURES, (i + 1) * FEATURES);
    const hostEntropy = softmaxEntropy(expected.exits[0], i * CLASSES, CLASSES);
    if (Math.abs(hostEntropy - threshold) < TOLERANCE) continue; // too close to call across float orders
    const answer = await session.client.inferSplit(Uint8Array.from(x, (v) => Math.round(v * 255)));
    if (hostEntropy < threshold) {
      assert.ok('result' in answer, `image ${i}: the device's exit answers`);
      assert.equal(answer.result.exit, 1);
      assert.ok(Math.abs(answer.result.entropy - hostEntropy) <= TOLERANCE, `image ${i}: stage-1 entropy`);
      const row = expected.exits[0].subarray(i * CLASSES, (i + 1) * CLASSES);
      assert.equal(answer.result.label, row.indexOf(Math.max(...row)), `image ${i}: stage-1 label`);
      onDevice++;
    } else {
      assert.ok('handoff' in answer, `image ${i}: no exit is confident, the device hands off`);
      const decoded = codec.decode(answer.handoff.frame);
      assert.deepEqual(
        [...decoded.values],
        Array.from(codec.staticFeatures ?? [], (f) => Math.fround(Math.round(x[f] * 255) / 255)),
      );
      assert.equal(answer.handoff.frame.length, 8 + (mask.features ?? 0), 'the frame carries exactly the kept pixels');
      handedOff++;
    }
  }
  assert.ok(onDevice > 20 && handedOff > 20, `${onDevice} on the device, ${handedOff} handed off`);
});

test('runSplit: final labels equal the host-only run, and the link carries far fewer bytes than whole images', async () => {
  const exported = exportOnnx(frozen);
  const file = parseModelFile(exported.bytes, 'split.onnx');
  const backend = await createBackend('ort-node', file);
  const resendsBefore = session.client.stats.resends;
  const { report, samples } = await runSplit(session.client, file, backend, data.test, IMAGES);
  await backend.dispose();
  let compared = 0;
  samples.forEach((s, i) => {
    const exitEntropy = softmaxEntropy(expected.exits[0], i * CLASSES, CLASSES);
    if (Math.abs(exitEntropy - threshold) < TOLERANCE) return;
    const source = exitEntropy < threshold ? expected.exits[0] : expected.logits;
    const row = source.subarray(i * CLASSES, (i + 1) * CLASSES);
    assert.equal(s.label, row.indexOf(Math.max(...row)), `image ${i}`);
    compared++;
  });
  assert.ok(compared > IMAGES * 0.9);
  // What the link bench budgets with is what the firmware sends: a RESULT, or a HANDOFF carrying the frame. A request
  // resent on a loaded machine brings a second answer, so only those inferences may carry more, never less.
  const resends = session.client.stats.resends - resendsBefore;
  const budgeted = samples.map((s) => (s.exit > 0 ? resultUplinkBytes() : handoffUplinkBytes(s.handoffBytes)));
  samples.forEach((s, i) => assert.ok(s.upBytes >= budgeted[i], `image ${i}: ${s.upBytes} < ${budgeted[i]}`));
  const over = samples.filter((s, i) => s.upBytes !== budgeted[i]).length;
  assert.ok(over <= resends, `${over} inferences sent more than budgeted, with ${resends} resends`);
  assert.ok(report.deviceShare > 0.2 && report.deviceShare < 0.8, `device share ${report.deviceShare}`);
  assert.ok(report.meanUpBytes < FEATURES / 3, `${report.meanUpBytes} bytes up per inference`);
});
