// bitwasm's WebAssembly kernels against the plain TypeScript reference: golden vectors and awkward random shapes.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { packBits } from '../../src/core/bitpack.js';
import { roundToFloat16 } from '../../src/core/float16.js';
import { quantizeInput, quantizeRows } from '../../src/core/quantize.js';
import type { BinarizeMode } from '../../src/core/spec.js';
import {
  binarizationMargins,
  binarizeSample,
  createReferenceEngine,
} from '../../src/runtime/bitwasm/engine-reference.js';
import {
  createWasmEngine,
  int8ConvPlan,
  maskedConvPlan,
  repackForPopcount,
  tapsMajor,
} from '../../src/runtime/bitwasm/engine-wasm.js';
import type { Plan, PlanLayer, PlanWeightLayer } from '../../src/runtime/bitwasm/plan.js';
import { Profiler } from '../../src/runtime/profiler.js';
import { makeRng } from '../../src/core/rng.js';
import { maxAbsDiff } from '../helpers.js';

/** Logits and activations here are O(1..100); float32 sums in a different order differ by far less than this. */
const TOLERANCE = 1e-4;

interface GoldenCase {
  name: string;
  rows: number;
  rowLength: number;
  packed: number[];
  upper: number[];
  lower: number[];
  weights: number[];
}

const golden = JSON.parse(readFileSync(new URL('../golden/bitpack.json', import.meta.url), 'utf8')) as {
  cases: GoldenCase[];
};

const uniform = (n: number, next: () => number, scale = 1, offset = 0): Float32Array =>
  Float32Array.from({ length: n }, () => offset + (next() * 2 - 1) * scale);

/** Relative to the largest magnitude, so large conv sums and small dense outputs are held to the same standard. */
function relativeDiff(a: Float32Array, b: Float32Array): number {
  const scale = Math.max(1, ...Array.from(b, Math.abs));
  return maxAbsDiff(a, b) / scale;
}

interface LayerOptions {
  kind: 'dense' | 'conv';
  inputShape: [number, number, number];
  rows: number;
  kernel?: number;
  binary: boolean;
  /** int8 rows (core/quantize.ts) instead of float ones when not binary. */
  int8?: boolean;
  inputs: BinarizeMode;
  relu?: boolean;
  scale?: boolean;
}

function weightLayer(name: string, o: LayerOptions, next: () => number): PlanWeightLayer {
  const [c, h, w] = o.inputShape;
  const k = o.kind === 'conv' ? (o.kernel ?? 3) : 1;
  const rowLength = o.kind === 'conv' ? c * k * k : c * h * w;
  const outputShape: [number, number, number] = o.kind === 'conv' ? [o.rows, h - k + 1, w - k + 1] : [o.rows, 1, 1];
  let weights: PlanWeightLayer['weights'];
  if (o.binary) {
    const bits = Array.from({ length: o.rows * rowLength }, () => (next() < 0.5 ? 1 : 0));
    const upper = roundToFloat16(uniform(o.rows, next, 0.5, 0.6));
    const lower = roundToFloat16(uniform(o.rows, next, 0.5, -0.6));
    weights = {
      kind: 'binary',
      packed: packBits(bits, o.rows, rowLength),
      lower,
      step: upper.map((u, r) => u - lower[r]),
    };
  } else if (o.int8) {
    weights = { kind: 'int8', ...quantizeRows(uniform(o.rows * rowLength, next), o.rows, rowLength) };
  } else {
    weights = { kind: 'float', rows: uniform(o.rows * rowLength, next) };
  }
  return {
    kind: o.kind,
    name,
    inputShape: o.inputShape,
    outputShape,
    kernel: k,
    rows: o.rows,
    rowLength,
    weights,
    scale: o.scale === false ? undefined : uniform(o.rows, next, 0.5, 1),
    shift: uniform(o.rows, next, 0.5),
    relu: o.relu ?? false,
    inputs: o.inputs,
  };
}

function planOf(layers: PlanLayer[]): Plan {
  const last = layers[layers.length - 1];
  // A plan may end in a conv here: its "classes" are all of the last layer's outputs.
  const [c, h, w] = last.outputShape;
  return { inputShape: layers[0].inputShape, classes: c * h * w, layers };
}

async function compare(plan: Plan, batch: number, seed: number): Promise<number> {
  const [c, h, w] = plan.inputShape;
  const input = uniform(batch * c * h * w, makeRng(seed), 2);
  const wasm = await createWasmEngine(plan);
  const reference = createReferenceEngine(plan);
  const actual = wasm.run(input, batch);
  const expected = reference.run(input, batch);
  assert.equal(actual.length, batch * plan.classes);
  return relativeDiff(actual, expected);
}

test('golden bit-format vectors: the wasm kernels compute x * weights as the golden file expands them', async () => {
  const next = makeRng(11);
  for (const g of golden.cases) {
    for (const inputs of ['none', 'dab', 'xnor'] as const) {
      const upper = Float32Array.from(g.upper);
      const lower = Float32Array.from(g.lower);
      const layer: PlanWeightLayer = {
        kind: 'dense',
        name: 'golden',
        inputShape: [g.rowLength, 1, 1],
        outputShape: [g.rows, 1, 1],
        kernel: 1,
        rows: g.rows,
        rowLength: g.rowLength,
        weights: { kind: 'binary', packed: Uint8Array.from(g.packed), lower, step: upper.map((u, r) => u - lower[r]) },
        shift: new Float32Array(g.rows),
        relu: false,
        inputs,
      };
      const x = uniform(g.rowLength, next, 1, 0.1);
      const engine = await createWasmEngine(planOf([layer]));
      const actual = engine.run(x, 1);
      // The golden weights times the input as the reference binarizes it.
      const reference = createReferenceEngine(planOf([{ ...layer, inputs: 'none' }]));
      const q = binarizeSample(x, [g.rowLength, 1, 1], false, inputs);
      const expected = new Float32Array(g.rows);
      for (let r = 0; r < g.rows; r++) {
        let s = 0;
        for (let k = 0; k < g.rowLength; k++) s += q[k] * g.weights[r * g.rowLength + k];
        expected[r] = s;
      }
      const diff = maxAbsDiff(actual, expected);
      assert.ok(diff <= TOLERANCE, `${g.name}, inputs ${inputs}: max abs difference ${diff}`);
      assert.ok(maxAbsDiff(reference.run(q, 1), expected) <= TOLERANCE, `${g.name}: reference`);
    }
  }
});

test('popcount repacking keeps every set bit and pads rows to whole 16-byte words', () => {
  const next = makeRng(5);
  const layer = weightLayer('c', { kind: 'conv', inputShape: [5, 6, 6], rows: 3, binary: true, inputs: 'dab' }, next);
  const w = layer.weights as Extract<PlanWeightLayer['weights'], { kind: 'binary' }>;
  const { rows, rowStride, chunkBytes, popcounts } = repackForPopcount(layer, w.packed);
  assert.equal(chunkBytes, 1);
  assert.equal(rowStride, 16);
  for (let r = 0; r < 3; r++) {
    let set = 0;
    for (let b = 0; b < rowStride; b++) for (let bit = 0; bit < 8; bit++) set += (rows[r * rowStride + b] >> bit) & 1;
    assert.equal(set, popcounts[r]);
    // Channel c of kernel position (ky, kx) sits at bit (ky * 3 + kx) * 8 + c; bits 5..7 of each chunk are padding.
    for (let kk = 0; kk < 9; kk++) assert.equal(rows[r * rowStride + kk] >> 5, 0);
    assert.deepEqual(Array.from(rows.subarray(r * rowStride + 9, (r + 1) * rowStride)), new Array(7).fill(0));
  }
});

const SINGLE_LAYERS: { name: string; options: LayerOptions }[] = [];
for (const binary of [true, false]) {
  for (const inputs of ['none', 'dab', 'xnor'] as const) {
    SINGLE_LAYERS.push({
      name: `dense 37->13 ${binary ? '1-bit' : 'float'} w, ${inputs} in`,
      options: { kind: 'dense', inputShape: [37, 1, 1], rows: 13, binary, inputs, relu: inputs === 'none' },
    });
    SINGLE_LAYERS.push({
      name: `conv 3x3 33->6 on 9x7 ${binary ? '1-bit' : 'float'} w, ${inputs} in`,
      options: { kind: 'conv', inputShape: [33, 9, 7], rows: 6, kernel: 3, binary, inputs, scale: inputs !== 'xnor' },
    });
  }
}
for (const features of [64, 65, 150]) {
  // Float inputs on 1-bit rows: up to 8 bytes per row all tables at once; longer, blocked by 8 with a tail block.
  SINGLE_LAYERS.push({
    name: `dense ${features}->11 1-bit w, float in (masked sum, ${Math.ceil(features / 8)} row bytes)`,
    options: { kind: 'dense', inputShape: [features, 1, 1], rows: 11, binary: true, inputs: 'none', relu: true },
  });
}
// Float inputs into 1-bit convs: one channel adds the set taps straight from the input (maskedConv), more build
// subset-sum tables per input pixel (maskedConvTables). Output widths of 5 (one quad at a time) and 18 (two blocks of 8
// and a quad), and heights of 4 and 8 (one and two rows past the last step of three) exercise its tails; 40 and 13
// channels end in a partial group of channels.
SINGLE_LAYERS.push({
  name: 'conv 5x5 1->16 on 12x13 1-bit w, float in (direct)',
  options: { kind: 'conv', inputShape: [1, 12, 13], rows: 16, kernel: 5, binary: true, inputs: 'none', relu: true },
});
SINGLE_LAYERS.push({
  name: 'conv 3x3 40->64 on 6x7 1-bit w, float in (pixel tables)',
  options: { kind: 'conv', inputShape: [40, 6, 7], rows: 64, kernel: 3, binary: true, inputs: 'none' },
});
SINGLE_LAYERS.push({
  name: 'conv 3x3 13->24 on 10x20 1-bit w, float in (pixel tables, 8 x 18 outputs)',
  options: { kind: 'conv', inputShape: [13, 10, 20], rows: 24, kernel: 3, binary: true, inputs: 'none', relu: true },
});
// Float convs run f32Conv: four filters and four outputs per step; a last step overlapping the one before it on widths
// that are no multiple of four, one output at a time on widths under four, one filter at a time for the rows after
// the last group of four.
SINGLE_LAYERS.push({
  name: 'conv 5x5 3->7 on 14x10 float w, none in (6 outputs a row: an overlapping step)',
  options: { kind: 'conv', inputShape: [3, 14, 10], rows: 7, kernel: 5, binary: false, inputs: 'none', relu: true },
});
SINGLE_LAYERS.push({
  name: 'conv 5x5 2->5 on 9x7 float w, none in (3 outputs a row: one at a time)',
  options: { kind: 'conv', inputShape: [2, 9, 7], rows: 5, kernel: 5, binary: false, inputs: 'none', relu: true },
});
SINGLE_LAYERS.push({
  name: 'dense 4100->9 1-bit w, dab in (rows longer than 31 v128 words)',
  options: { kind: 'dense', inputShape: [4100, 1, 1], rows: 9, binary: true, inputs: 'dab' },
});
// Binarized inputs into dense layers of 128 rows or more run popColumns: 300 rows are two blocks of 128 and a partial
// third, 1000 inputs give about 500 set columns (chunks of 16 and a tail); 130 rows on 20 inputs, fewer than 16.
for (const [features, rows, inputs] of [
  [1000, 300, 'dab'],
  [20, 130, 'xnor'],
] as const) {
  SINGLE_LAYERS.push({
    name: `dense ${features}->${rows} 1-bit w, ${inputs} in (popcount columns)`,
    options: { kind: 'dense', inputShape: [features, 1, 1], rows, binary: true, inputs, relu: true },
  });
}
SINGLE_LAYERS.push({
  name: 'conv 2x2 5->17 on 4x5 1-bit w, xnor in (one byte per pixel, tail rows)',
  options: { kind: 'conv', inputShape: [5, 4, 5], rows: 17, kernel: 2, binary: true, inputs: 'xnor', relu: true },
});

for (const { name, options } of SINGLE_LAYERS) {
  test(`wasm equals reference: ${name}, batch 1 and 3`, async () => {
    const layer = weightLayer('layer', options, makeRng(name.length));
    if (name.includes('(direct)')) assert.equal(maskedConvPlan(layer).kind, 'direct');
    if (name.includes('(popcount columns)')) {
      const profiler = new Profiler();
      (await createWasmEngine(planOf([layer]))).run(new Float32Array(layer.rowLength), 1, profiler);
      assert.match(profiler.events[0].tag, /popcount, columns/);
      // Integer counts and popRows' epilogue: a sample's outputs do not depend on the batch it runs in.
      const engine = await createWasmEngine(planOf([layer]));
      const three = uniform(3 * layer.rowLength, makeRng(3), 2);
      const batched = engine.run(three, 3);
      assert.deepEqual(
        engine.run(three.subarray(layer.rowLength, 2 * layer.rowLength), 1),
        batched.subarray(layer.rows, 2 * layer.rows),
      );
    }
    if (name.includes('(pixel tables')) {
      const { kind, group } = maskedConvPlan(layer);
      assert.equal(kind, 'tables');
      assert.notEqual(layer.inputShape[0] % group, 0, 'a partial last group of channels');
    }
    const plan = planOf([layer]);
    for (const batch of [1, 3]) {
      const diff = await compare(plan, batch, batch + 17);
      assert.ok(diff <= TOLERANCE, `batch ${batch}: relative difference ${diff}`);
    }
  });
}

// int8 layers quantize their input per sample and sum integer products exactly (i8Dot): four rows and two samples a
// step, then leftover rows and samples; rows of 37 and 297 values end past their last whole 16. Convs read patches of
// the position-major input, one channel (LeNet's first layer) or several, or run Winograd F(2x2, 3x3) in integers
// (`variant`, the profile's tag): odd output sides (partial tiles), channels and filters short of a multiple of 8,
// a last block of tiles short of 8; or four output positions a vector (few channels): rows ending inside a step of 8,
// filters short of a multiple of 4.
const INT8_LAYERS: { name: string; options: LayerOptions; variant?: RegExp }[] = [
  {
    name: 'dense 37->13 int8 w, float in',
    options: { kind: 'dense', inputShape: [37, 1, 1], rows: 13, binary: false, int8: true, inputs: 'none', relu: true },
  },
  {
    name: 'dense 1024->8 int8 w, dab in',
    options: { kind: 'dense', inputShape: [1024, 1, 1], rows: 8, binary: false, int8: true, inputs: 'dab' },
  },
  {
    name: 'conv 3x3 33->6 on 9x7 int8 w, float in',
    options: { kind: 'conv', inputShape: [33, 9, 7], rows: 6, kernel: 3, binary: false, int8: true, inputs: 'none' },
    variant: /\(winograd\)$/,
  },
  {
    name: 'conv 3x3 5->9 on 8x8 int8 w, float in, ReLU',
    options: {
      kind: 'conv',
      inputShape: [5, 8, 8],
      rows: 9,
      kernel: 3,
      binary: false,
      int8: true,
      inputs: 'none',
      relu: true,
    },
    variant: /\(winograd\)$/,
  },
  {
    name: 'conv 3x3 3->4 on 5x6 int8 w, float in (too small for Winograd)',
    options: { kind: 'conv', inputShape: [3, 5, 6], rows: 4, kernel: 3, binary: false, int8: true, inputs: 'none' },
    variant: /in$/,
  },
  {
    name: 'conv 5x5 1->9 on 12x13 int8 w, float in',
    options: { kind: 'conv', inputShape: [1, 12, 13], rows: 9, kernel: 5, binary: false, int8: true, inputs: 'none' },
    variant: /\(positions\)$/,
  },
  {
    name: 'conv 5x5 7->6 on 13x12 int8 w, float in (pairs across channels, the last alone)',
    options: { kind: 'conv', inputShape: [7, 13, 12], rows: 6, kernel: 5, binary: false, int8: true, inputs: 'none' },
    variant: /\(positions\)$/,
  },
  {
    name: 'conv 3x3 1->5 on 6x14 int8 w, float in, ReLU (pairs along rows)',
    options: {
      kind: 'conv',
      inputShape: [1, 6, 14],
      rows: 5,
      kernel: 3,
      binary: false,
      int8: true,
      inputs: 'none',
      relu: true,
    },
    variant: /\(positions\)$/,
  },
];

for (const { name, options, variant } of INT8_LAYERS) {
  test(`wasm equals reference (float inputs: to the bit): ${name}, batch 1 and 3, a sample does not depend on its batch`, async () => {
    const layer = weightLayer('layer', options, makeRng(name.length));
    const plan = planOf([layer]);
    const wasm = await createWasmEngine(plan);
    const reference = createReferenceEngine(plan);
    const [c, h, w] = plan.inputShape;
    const input = uniform(3 * c * h * w, makeRng(7), 2);
    for (const batch of [1, 3]) {
      const x = input.subarray(0, batch * c * h * w);
      // Binarized inputs arrive with levels a float rounding apart (binarize sums in another order): the rule then.
      if (options.inputs === 'none') assert.deepEqual(wasm.run(x, batch), reference.run(x, batch), `batch ${batch}`);
      else assert.ok(relativeDiff(wasm.run(x, batch), reference.run(x, batch)) <= TOLERANCE, `batch ${batch}`);
    }
    assert.deepEqual(
      wasm.run(input.subarray(c * h * w, 2 * c * h * w), 1),
      wasm.run(input, 3).subarray(plan.classes, 2 * plan.classes),
    );
    // No negative inputs (as after a ReLU): 255 levels, the same in both engines; a NaN counts as 0 in both.
    const positive = input.map(Math.abs);
    if (options.inputs === 'none') assert.deepEqual(wasm.run(positive, 3), reference.run(positive, 3));
    const nan = input.slice();
    nan[c * h * w + 4] = Number.NaN;
    if (options.inputs === 'none') assert.deepEqual(wasm.run(nan, 3), reference.run(nan, 3));
    if (variant) {
      const profiler = new Profiler();
      wasm.run(input, 1, profiler);
      assert.match(profiler.events[0].tag, variant);
    }
    // Quantizing the input moves the outputs by about 1% of their scale, no more: the product of the float rows.
    const floats = { ...layer, weights: { kind: 'float' as const, rows: dequantize(layer) } };
    const diff = relativeDiff(wasm.run(input, 3), createReferenceEngine(planOf([floats])).run(input, 3));
    assert.ok(diff > 0 && diff < 2e-2, `int8 inputs against float inputs: relative difference ${diff}`);
  });
}

test('int8 convs: Winograd for 3x3 kernels with enough work (while 4x the direct sum fits i32), positions for few channels', () => {
  const conv = (channels: number, size: number, kernel: number, rows = 8): PlanWeightLayer => ({
    ...weightLayer(
      'conv',
      { kind: 'conv', inputShape: [1, 5, 5], rows: 1, binary: false, int8: true, inputs: 'none' },
      makeRng(1),
    ),
    inputShape: [channels, size, size],
    outputShape: [rows, size - kernel + 1, size - kernel + 1],
    kernel,
    rows,
    rowLength: channels * kernel * kernel,
  });
  assert.equal(int8ConvPlan(conv(1841, 4, 3)), 'winograd');
  assert.equal(int8ConvPlan(conv(1842, 4, 3)), 'patches');
  assert.equal(int8ConvPlan(conv(64, 16, 3, 64)), 'winograd');
  assert.equal(int8ConvPlan(conv(64, 16, 5, 64)), 'patches');
  assert.equal(int8ConvPlan(conv(1, 5, 3, 4)), 'patches');
  // Few channels and rows of at least 8 outputs: four positions a vector (LeNet's 1 -> 16 and 16 -> 32 5x5).
  assert.equal(int8ConvPlan(conv(1, 28, 5, 16)), 'pairs');
  assert.equal(int8ConvPlan(conv(16, 12, 5, 32)), 'pairs');
  assert.equal(int8ConvPlan(conv(17, 12, 5, 32)), 'patches');
  assert.equal(int8ConvPlan(conv(16, 11, 5, 32)), 'patches');
  assert.equal(int8ConvPlan(conv(4, 28, 3, 16)), 'pairs');
  assert.equal(int8ConvPlan(conv(8, 16, 3, 16)), 'winograd');
});

function dequantize(layer: PlanWeightLayer): Float32Array {
  const w = layer.weights as Extract<PlanWeightLayer['weights'], { kind: 'int8' }>;
  return Float32Array.from(w.data, (q, i) => q * w.scales[Math.floor(i / layer.rowLength)]);
}

test('input quantization: the largest magnitude becomes +/-127 (255 without negatives), halves round away from zero', async () => {
  const q = quantizeInput(Float32Array.from([2.54, -2.54, 0.01, -0.01, 0.03, 0]));
  assert.equal(q.scale, Math.fround(2.54 / 127));
  assert.deepEqual(Array.from(q.data), [127, -127, 1, -1, 2, 0]);
  assert.deepEqual(quantizeInput(new Float32Array(4)), { data: new Int16Array(4), scale: 1 });
  // No negative value (after a ReLU): 255 levels, twice the resolution.
  const relu = quantizeInput(Float32Array.from([2.55, 0.01, 0.025, 0]));
  assert.deepEqual([Array.from(relu.data), relu.scale], [[255, 1, 3, 0], Math.fround(2.55 / 255)]);
  // A NaN neither sets the scale nor adds to the sums: 0 in both engines, which then agree on the other values.
  const nan = quantizeInput(Float32Array.from([Number.NaN, 1.27, -0.5]));
  assert.deepEqual([Array.from(nan.data), nan.scale], [[0, 127, -50], Math.fround(0.01)]);
  const layer = weightLayer('fc', INT8_LAYERS[0].options, makeRng(3));
  const x = uniform(37, makeRng(4), 2);
  x[5] = Number.NaN;
  const wasm = (await createWasmEngine(planOf([layer]))).run(x, 1);
  assert.ok(wasm.every((v) => Number.isFinite(v)));
  assert.deepEqual(wasm, createReferenceEngine(planOf([layer])).run(x, 1));
  // Conv rows go from the file's (c, ky, kx) to (ky, kx, c): filter 0 of 2 channels, 2x2 taps.
  assert.deepEqual(
    Array.from(tapsMajor(Int8Array.from([0, 1, 2, 3, 10, 11, 12, 13]), 1, 2, 2)),
    [0, 10, 1, 11, 2, 12, 3, 13],
  );
});

test('wasm equals reference on a whole awkward network (conv, odd pool, conv, flatten, dense), batch 1 and 5', async () => {
  const next = makeRng(99);
  const conv1 = weightLayer(
    'conv1',
    { kind: 'conv', inputShape: [3, 11, 10], rows: 6, kernel: 3, binary: true, inputs: 'none', relu: true },
    next,
  );
  const pool: PlanLayer = { kind: 'maxpool', name: 'pool', size: 2, inputShape: [6, 9, 8], outputShape: [6, 4, 4] };
  const conv2 = weightLayer(
    'conv2',
    { kind: 'conv', inputShape: [6, 4, 4], rows: 35, kernel: 3, binary: true, inputs: 'dab' },
    next,
  );
  const flatten: PlanLayer = { kind: 'flatten', name: 'flatten', inputShape: [35, 2, 2], outputShape: [140, 1, 1] };
  const fc = weightLayer(
    'fc',
    { kind: 'dense', inputShape: [140, 1, 1], rows: 21, binary: true, inputs: 'xnor' },
    next,
  );
  const logits = weightLayer(
    'logits',
    { kind: 'dense', inputShape: [21, 1, 1], rows: 10, binary: false, inputs: 'dab' },
    next,
  );
  const plan = planOf([conv1, pool, conv2, flatten, fc, logits]);
  for (const batch of [1, 5]) {
    const diff = await compare(plan, batch, batch);
    assert.ok(diff <= TOLERANCE, `batch ${batch}: relative difference ${diff}`);
  }
  // The profiler sees every layer that runs, once per call, with the same names in both engines.
  const profiler = new Profiler();
  const wasm = await createWasmEngine(plan);
  wasm.run(uniform(3 * 11 * 10, next), 1, profiler);
  assert.deepEqual(
    profiler.events.map((e) => e.name),
    ['conv1', 'pool', 'conv2', 'fc', 'logits'],
  );
  assert.ok(profiler.events.every((e) => e.endMs >= e.startMs));
});

test('masked sum skips input groups of zeros, one sample at a time (blocked byte and nibble tables) and eight at a time, and matches the reference', async () => {
  const next = makeRng(5);
  // 203 inputs = 26 row bytes: groups 0, 3-12 and the partial tail group 25 are all zeros, so blocks gather.
  const zeros = new Set([0, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 25]);
  for (const rows of [40, 11]) {
    const layer = weightLayer(
      'fc',
      { kind: 'dense', inputShape: [203, 1, 1], rows, binary: true, inputs: 'none', relu: false },
      next,
    );
    const plan = planOf([layer]);
    // Eleven samples: a batch runs one step of eight and a partial step of three. Sample 9 has a nonzero group 3, so
    // the second step builds that group's tables while the first skips it.
    const batch = 11;
    const input = uniform(batch * 203, next, 2);
    for (let i = 0; i < batch * 203; i++) if (zeros.has((i % 203) >> 3) || (i % 203) % 13 === 1) input[i] = 0;
    input[9 * 203 + 3 * 8 + 5] = 1.5;
    const engine = await createWasmEngine(plan);
    const batched = engine.run(input, batch).slice();
    const diff = relativeDiff(batched, createReferenceEngine(plan).run(input, batch));
    assert.ok(diff <= TOLERANCE, `${rows} rows, batch ${batch}: relative difference ${diff}`);
    // Alone, each sample skips its own groups of zeros one sample at a time: the same floats.
    for (let s = 0; s < batch; s++) {
      const one = engine.run(input.subarray(s * 203, (s + 1) * 203), 1);
      assert.deepEqual(one, batched.subarray(s * rows, (s + 1) * rows), `${rows} rows, sample ${s} alone`);
    }
    // All-zero samples leave only the shift: the skipped groups really add nothing.
    const empty = (await createWasmEngine(plan)).run(new Float32Array(203), 1);
    assert.deepEqual(empty, createReferenceEngine(plan).run(new Float32Array(203), 1));
  }
});

test('max pooling: 2x2 windows four at a time with a tail column, 3x3 windows, odd sizes, NaN propagates', async () => {
  for (const [size, h, w] of [
    [2, 7, 11],
    [2, 8, 18],
    [3, 10, 7],
  ]) {
    const [oh, ow] = [Math.floor(h / size), Math.floor(w / size)];
    const pool: PlanLayer = { kind: 'maxpool', name: 'pool', size, inputShape: [3, h, w], outputShape: [3, oh, ow] };
    const plan = planOf([pool]);
    const input = uniform(3 * h * w, makeRng(h * w));
    input[w + size] = Number.NaN; // plane 0, row 1, column size: window (0, 1)
    const actual = (await createWasmEngine(plan)).run(input, 1);
    const expected = createReferenceEngine(plan).run(input, 1);
    assert.ok(Number.isNaN(actual[1]) && Number.isNaN(expected[1]), `${size}x${size} on ${h}x${w}: NaN window`);
    actual[1] = expected[1] = 0;
    assert.deepEqual(actual, expected, `${size}x${size} on ${h}x${w}`);
  }
});

test('binarization margins: the nearest binarized value to its threshold, as a fraction of the largest', () => {
  const next = makeRng(9);
  const xnor = planOf([
    weightLayer('fc', { kind: 'dense', inputShape: [4, 1, 1], rows: 3, binary: true, inputs: 'xnor' }, next),
  ]);
  // XNOR splits at 0: the nearest of 2, -0.5, 0.25, -1e-3 is 1e-3 away, over a largest |value| of 2.
  const margins = binarizationMargins(xnor, Float32Array.from([2, -0.5, 0.25, -1e-3, 1, 1, 1, -1]), 2);
  assert.ok(Math.abs(margins[0] - 5e-4) < 1e-9, `sample 0: ${margins[0]}`);
  assert.equal(margins[1], 1);
  const float = planOf([
    weightLayer('fc', { kind: 'dense', inputShape: [4, 1, 1], rows: 3, binary: true, inputs: 'none' }, next),
  ]);
  assert.deepEqual(Array.from(binarizationMargins(float, new Float32Array(4), 1)), [Infinity]);
});
