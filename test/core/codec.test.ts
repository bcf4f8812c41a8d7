// The cmp-select/1 codec: every selection round-trips exactly, and bad frames are refused with one clear line.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeRng } from '../../src/core/rng.js';
import { featuresOf, maskLayout, type MaskSpec } from '../../src/core/mask.js';
import { maskId, SELECT_HEADER_BYTES, SelectionCodec } from '../../src/core/codec.js';

const SHAPE: [number, number, number] = [1, 28, 28];

/** A sample of pixels k/255, as the data sets hold them. */
function pixels(count: number, seed: number): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: count }, () => Math.floor(rng() * 256) / 255);
}

function selection(units: number, density: number, seed: number): number[] {
  const rng = makeRng(seed);
  const out: number[] = [];
  for (let u = 0; u < units; u++) if (rng() < density) out.push(u);
  return out;
}

const dynamicCases: [string, MaskSpec, [number, number, number]][] = [
  ['pixel 28x28', { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 }, SHAPE],
  ['block:4', { kind: 'dynamic', granularity: { kind: 'block', size: 4 }, values: 'float16', selectorPool: 4 }, SHAPE],
  [
    'block:5 (clipped edge blocks)',
    { kind: 'dynamic', granularity: { kind: 'block', size: 5 }, values: 'float32', selectorPool: 2 },
    SHAPE,
  ],
  ['channel 3x9x9', { kind: 'dynamic', granularity: { kind: 'channel' }, values: 'uint8', selectorPool: 3 }, [3, 9, 9]],
];

for (const [name, spec, shape] of dynamicCases) {
  test(`dynamic ${name}: every selection density round-trips units and values exactly`, () => {
    const codec = new SelectionCodec(spec, shape, maskId(spec, shape));
    const layout = maskLayout(shape, spec.granularity);
    const input = pixels(layout.unitOf.length, 7);
    const codings = new Set<number>();
    for (const density of [0, 0.005, 0.02, 0.1, 0.3, 0.7, 1]) {
      for (let seed = 1; seed <= 4; seed++) {
        const units = selection(layout.units, density, seed * 31 + density * 1000);
        const frame = codec.encode(input, units);
        codings.add((frame[1] >> 3) & 7);
        assert.equal(frame.length, codec.frameBytes(units), 'frameBytes predicts the encoded size');
        const decoded = codec.decode(frame);
        assert.deepEqual([...decoded.units], units);
        const features = featuresOf(layout, units);
        assert.deepEqual([...decoded.features], [...features]);
        // uint8 and float16 carry k/255 exactly enough to restore it; float32 exactly.
        const tolerance = spec.values === 'float16' ? 1e-3 : 1e-7;
        decoded.values.forEach((v, i) => assert.ok(Math.abs(v - input[features[i]]) <= tolerance));
      }
    }
    assert.ok(codings.size >= 2, `several selection codings were chosen (${[...codings].join(', ')})`);
  });
}

test('against a prior: a selection near it costs its flips, any selection round-trips, and foreign frames are refused', () => {
  const prior = selection(784, 0.05, 11);
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4, prior };
  const codec = new SelectionCodec(spec, SHAPE, maskId(spec, SHAPE));
  const input = pixels(784, 2);
  // The prior with one of its units dropped and two others added: a count byte and three gap bytes.
  // (Units just after the dropped one, so each gap fits in one byte.)
  const added = Array.from({ length: 20 }, (_, i) => prior[0] + 1 + i)
    .filter((u) => !prior.includes(u))
    .slice(0, 2);
  const near = [...prior.slice(1), ...added].sort((a, b) => a - b);
  const frame = codec.encode(input, near);
  assert.equal((frame[1] >> 3) & 7, 4, 'coded against the prior');
  assert.equal(frame.length, SELECT_HEADER_BYTES + 1 + 3 + near.length);
  assert.deepEqual([...codec.decode(frame).units], near);
  assert.equal(codec.selectionLength(near), 4);
  // The plain gap list of the same selection costs a byte per unit, more than 4.
  const plain = new SelectionCodec({ ...spec, prior: undefined }, SHAPE, 1);
  assert.ok(plain.selectionLength(near) > 4 * 5, `gaps: ${plain.selectionLength(near)} bytes`);
  for (const density of [0, 0.02, 0.05, 0.3, 1]) {
    const units = selection(784, density, 5);
    const encoded = codec.encode(input, units);
    assert.equal(encoded.length, codec.frameBytes(units));
    assert.deepEqual([...codec.decode(encoded).units], units);
  }
  // A receiver without the prior (another model) refuses the frame before reading it.
  const withoutPrior = new SelectionCodec({ ...spec, prior: undefined }, SHAPE, codec.id);
  assert.throws(() => withoutPrior.decode(frame), /prior the mask does not have/);
  for (let length = SELECT_HEADER_BYTES; length < frame.length - near.length; length++)
    assert.throws(() => codec.decode(frame.subarray(0, length)), /truncated/);
  // A count of flips that leaves the header's unit count unmatched.
  const wrong = frame.slice();
  wrong[6] += 1;
  assert.throws(() => codec.decode(wrong), /header says/);
});

test('static frames carry values only: 8 header bytes plus one byte per kept pixel', () => {
  const spec: MaskSpec = {
    kind: 'static',
    granularity: { kind: 'pixel' },
    source: 'learned',
    values: 'uint8',
    kept: [3, 100, 101, 783],
  };
  const codec = new SelectionCodec(spec, SHAPE, maskId(spec, SHAPE));
  const input = pixels(784, 3);
  const frame = codec.encode(input);
  assert.equal(frame.length, SELECT_HEADER_BYTES + 4);
  const decoded = codec.decode(frame);
  assert.deepEqual(
    [...decoded.values].map((v) => Math.round(v * 255)),
    [3, 100, 101, 783].map((f) => Math.round(input[f] * 255)),
  );
});

test('the gap coding spans gaps of 255 and more', () => {
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'channel' }, values: 'uint8', selectorPool: 1 };
  const shape: [number, number, number] = [1, 40, 40];
  const codec = new SelectionCodec(spec, shape, 9);
  const units = [0, 254, 255, 510, 1020, 1599];
  const decoded = codec.decode(codec.encode(pixels(1600, 1), units));
  assert.deepEqual([...decoded.units], units);
});

test('truncated, padded, foreign and malformed frames are refused with a one-line FRAME_INVALID error', () => {
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 };
  const codec = new SelectionCodec(spec, SHAPE, maskId(spec, SHAPE));
  const frame = codec.encode(pixels(784, 5), selection(784, 0.05, 2));
  const refused = (bytes: Uint8Array, pattern: RegExp): void =>
    assert.throws(
      () => codec.decode(bytes),
      (err: Error & { code?: string }) =>
        err.code === 'FRAME_INVALID' && pattern.test(err.message) && !err.message.includes('\n'),
    );
  for (let length = 0; length < frame.length; length++) refused(frame.subarray(0, length), /shorter|truncated|bytes/);
  refused(Uint8Array.from([...frame, 0]), /expected/);
  const other = frame.slice();
  other[2] ^= 0xff;
  refused(other, /another model version/);
  const version = frame.slice();
  version[0] = 2;
  refused(version, /codec version 2/);
  const flags = frame.slice();
  flags[1] |= 0x80;
  refused(flags, /flag bits/);
  const staticSpec: MaskSpec = {
    kind: 'static',
    granularity: { kind: 'pixel' },
    source: 'learned',
    values: 'uint8',
    kept: [1, 2],
  };
  const staticFrame = new SelectionCodec(staticSpec, SHAPE, codec.id).encode(pixels(784, 1));
  refused(staticFrame, /static frame for a dynamic mask/);
});

test('with rates: a selection costs about its information, round-trips, and foreign or broken frames are refused', () => {
  // A selector that sends the 60 units of a stroke-like band often and the others rarely.
  const rng = makeRng(17);
  const rates = Array.from({ length: 784 }, (_, u) => (u >= 300 && u < 360 ? 96 : 1));
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4, rates };
  const codec = new SelectionCodec(spec, SHAPE, maskId(spec, SHAPE));
  const input = pixels(784, 4);
  let rateBytes = 0;
  let gapBytes = 0;
  for (let t = 0; t < 50; t++) {
    const units = rates.flatMap((r, u) => (rng() * 256 < r ? [u] : []));
    const frame = codec.encode(input, units);
    assert.equal((frame[1] >> 3) & 7, 5, 'arithmetic-coded with the rates');
    assert.equal(frame.length, codec.frameBytes(units));
    assert.deepEqual([...codec.decode(frame).units], units);
    let information = 0;
    rates.forEach((r, u) => (information -= Math.log2(units.includes(u) ? r / 256 : 1 - r / 256)));
    const bytes = codec.selectionLength(units);
    assert.ok(bytes <= Math.ceil((information + 2) / 8) + 1, `${bytes} bytes for ${information.toFixed(1)} bits`);
    rateBytes += bytes;
    gapBytes += units.length;
  }
  // About 23 units a frame, 10 bytes where the gaps (the next shortest) would take one a unit.
  assert.ok(rateBytes < gapBytes / 2, `${rateBytes} bytes coded with the rates, ${gapBytes} as gaps`);
  const units = rates.flatMap((r, u) => (u % 3 === 0 && r > 1 ? [u] : []));
  const frame = codec.encode(input, units);
  assert.equal((frame[1] >> 3) & 7, 5);
  const withoutRates = new SelectionCodec({ ...spec, rates: undefined }, SHAPE, codec.id);
  assert.throws(() => withoutRates.decode(frame), /rates the mask does not have/);
  assert.throws(() => codec.decode(frame.subarray(0, frame.length - 1)), /FRAME_INVALID|rejected/);
  const wrong = frame.slice();
  wrong[6] += 1;
  assert.throws(() => codec.decode(wrong), /header says/);
  assert.notEqual(maskId({ ...spec, rates: [...rates.slice(1), 2] }, SHAPE), codec.id, 'the rates are in the mask id');
});

test('the mask id changes with the prior of a dynamic mask', () => {
  const spec: MaskSpec = { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 };
  const ids = new Set([
    maskId(spec, SHAPE),
    maskId({ ...spec, prior: [1] }, SHAPE),
    maskId({ ...spec, prior: [2] }, SHAPE),
  ]);
  assert.equal(ids.size, 3);
});

test('the mask id changes with the kept units, the value type and the selector weights', () => {
  const base: MaskSpec = {
    kind: 'static',
    granularity: { kind: 'pixel' },
    source: 'learned',
    values: 'uint8',
    kept: [1, 2],
  };
  const ids = new Set([
    maskId(base, SHAPE),
    maskId({ ...base, kept: [1, 3] }, SHAPE),
    maskId({ ...base, values: 'float16' }, SHAPE),
    maskId(
      { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 },
      SHAPE,
      new Float32Array([1]),
    ),
    maskId(
      { kind: 'dynamic', granularity: { kind: 'pixel' }, values: 'uint8', selectorPool: 4 },
      SHAPE,
      new Float32Array([2]),
    ),
  ]);
  assert.equal(ids.size, 5);
});
