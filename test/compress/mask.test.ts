// Mask training terms: a dynamic selector pays for the bytes its selection costs, and the select bench's schedule
// pushes a unit as hard as the pixels it covers and, with a plan, reaches the budget's share and holds it; a static
// mask over a budget is trimmed to it by dropping its least open units.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  LambdaSchedule,
  maskInputTrain,
  plannedKeep,
  scheduleFor,
  trimStaticMask,
  type MaskTerms,
} from '../../src/compress/mask.js';
import { loadTf } from '../../src/compress/tf.js';
import { SELECT_HEADER_BYTES } from '../../src/core/codec.js';
import type { MaskSpec } from '../../src/core/mask.js';
import { MASK_LOGITS, type ModelSpec } from '../../src/core/spec.js';

/** The mask loss of two 2-pixel instances under a selector that sends pixel i where pixel i is bright. */
async function penalty(instances: number[][]): Promise<number> {
  const { tf } = await loadTf();
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 1 };
  const terms: MaskTerms = { active: true };
  const value = tf.tidy(() => {
    const x = tf.tensor4d(instances.flat(), [instances.length, 1, 1, 2]);
    const weight = tf.tensor2d([20, 0, 0, 20], [2, 2]);
    const bias = tf.tensor1d([-10, -10]);
    maskInputTrain(tf, spec, [1, 1, 2], x, { weight, bias }, terms);
    return (terms.penalty as ReturnType<typeof tf.scalar>).dataSync()[0];
  });
  return value;
}

test('a dynamic mask whose instances send different units pays for the departures on top of the units', async () => {
  // Both instances send one unit. The same unit: the selection never departs from the typical one, so the loss is
  // the open units alone (1 per instance). Different units: each instance departs by half in both units (2 x 0.5),
  // a byte each for a one-byte pixel, so the loss doubles.
  const same = await penalty([
    [1, 0],
    [1, 0],
  ]);
  const different = await penalty([
    [1, 0],
    [0, 1],
  ]);
  assert.ok(Math.abs(same - 1) < 1e-3, `same units: ${same}`);
  assert.ok(Math.abs(different - 2) < 1e-3, `different units: ${different}`);
});

test('the select schedule starts lambda in proportion to the pixels a unit covers', () => {
  const pixel = scheduleFor({ kind: 'pixel' }, [1, 28, 28]);
  const block = scheduleFor({ kind: 'block', size: 2 }, [1, 28, 28]);
  const block4 = scheduleFor({ kind: 'block', size: 4 }, [1, 28, 28]);
  assert.equal(pixel.start, 0.0005);
  assert.ok(Math.abs(block.start / pixel.start - 4) < 1e-12);
  assert.ok(Math.abs(block4.start / pixel.start - 16) < 1e-12);
  assert.equal(block.patience, 2);
});

test('a plan grows lambda every other epoch the share is above its path, stops at the budget and shrinks under it', () => {
  const plan = { keep: 0.04, from: 2, by: 21, every: 2 };
  assert.equal(plannedKeep(plan, 2), 1);
  assert.ok(Math.abs(plannedKeep(plan, 21) - 0.04) < 1e-12);
  assert.equal(plannedKeep(plan, 30), 0.04);
  const mid = plannedKeep(plan, 11.5);
  assert.ok(Math.abs(mid - 0.2) < 1e-9, `halfway on a geometric path: ${mid}`);

  const options = scheduleFor({ kind: 'pixel' }, [1, 28, 28], plan);
  const planned = new LambdaSchedule(options);
  const everyEpoch = new LambdaSchedule(scheduleFor({ kind: 'pixel' }, [1, 28, 28], { ...plan, every: 1 }));
  const calmOnly = new LambdaSchedule(scheduleFor({ kind: 'pixel' }, [1, 28, 28]));
  // Validation accuracy that drops by a point every other epoch never lets the calm rule grow lambda.
  for (let epoch = 3; epoch <= 12; epoch++) {
    const accuracy = epoch % 2 ? 0.97 : 0.96;
    calmOnly.update(accuracy);
    planned.update(accuracy, { epoch, share: 0.5 });
    everyEpoch.update(accuracy, { epoch, share: 0.5 });
  }
  assert.equal(calmOnly.lambda, options.start);
  // Half the units are above the path from epoch 7 on (0.43 there, 0.51 at epoch 6): growths at epochs 7, 9 and 11,
  // or at each of 7-12 with every: 1.
  const times = (s: LambdaSchedule): number => Math.log(s.lambda / options.start) / Math.log(1.5);
  assert.ok(Math.abs(times(planned) - 3) < 1e-9, `grew ${times(planned)} times`);
  assert.ok(Math.abs(times(everyEpoch) - 6) < 1e-9, `grew ${times(everyEpoch)} times`);

  const before = planned.lambda;
  assert.equal(planned.update(0.97, { epoch: 25, share: 0.035 }), false, 'at the budget lambda holds');
  assert.equal(planned.update(0.99, { epoch: 26, share: 0.035 }), false, 'calm or not');
  assert.equal(planned.lambda, before);
  planned.update(0.97, { epoch: 27, share: 0.02 });
  assert.ok(Math.abs(planned.lambda - before / 1.5) < 1e-15, 'far under the budget lambda shrinks');

  // A schedule restored from its state carries on as the unbroken one.
  const restored = new LambdaSchedule(options);
  restored.restore(planned.state);
  for (const s of [planned, restored]) s.update(0.97, { epoch: 28, share: 0.2 });
  assert.equal(restored.lambda, planned.lambda);
});

test('a static mask over a byte budget is trimmed to it by dropping its least open units, and closes their logits', () => {
  // A 4x4 picture, pixel units 0..15; kept 2, 5, 7, 9, 11 with logits 0.9, 0.2, 0.7, 0.1, 0.5.
  const logits = new Float32Array(16).fill(-1);
  const open: Record<number, number> = { 2: 0.9, 5: 0.2, 7: 0.7, 9: 0.1, 11: 0.5 };
  for (const [u, l] of Object.entries(open)) logits[Number(u)] = l;
  const spec = {
    format: 'cmp-model/1',
    arch: 'mlp',
    input: { shape: [1, 4, 4], mean: 0, std: 1 },
    labels: ['a', 'b'],
    layers: [],
    inputMask: {
      kind: 'static',
      granularity: { kind: 'pixel' },
      source: 'learned',
      values: 'uint8',
      kept: [2, 5, 7, 9, 11],
    },
  } as unknown as ModelSpec;
  const weight = new Float32Array([1, 2, 3]);
  const tensors = new Map([
    [MASK_LOGITS, logits],
    ['fc.weight', weight],
  ]);
  const trimmed = trimStaticMask(spec, tensors, SELECT_HEADER_BYTES + 3.5);
  assert.ok(trimmed);
  assert.deepEqual(trimmed.spec.inputMask, { ...spec.inputMask, kept: [2, 7, 11] });
  const after = trimmed.tensors.get(MASK_LOGITS) as Float32Array;
  assert.ok(after[5] < 0 && after[9] < 0, 'the dropped units are closed');
  assert.ok(after[2] > 0 && after[7] > 0 && after[11] > 0, 'the kept units stay open');
  assert.equal(logits[5], Math.fround(open[5]), 'the run it came from is left as it was');
  assert.equal(trimmed.tensors.get('fc.weight'), weight);
  assert.equal(trimStaticMask(spec, tensors, SELECT_HEADER_BYTES + 5), undefined, 'a mask that fits is left alone');
  assert.equal(trimStaticMask(spec, tensors, SELECT_HEADER_BYTES - 1), undefined, 'nothing fits under the header');
});
