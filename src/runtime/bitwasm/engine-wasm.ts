// The WebAssembly engine: lays weights (bits packed) and activations out in one wasm memory and calls the kernels.

import { packedRowBytes } from '../../core/bitpack.js';
import { ACTIVATION_LLOYD_STEPS } from '../../core/spec.js';
import type { Profiler } from '../profiler.js';
import { features, layerTag, normalizeInput, padPlanes, type Engine } from './engine.js';
import { instantiateKernels, type KernelExports } from './loader.js';
import type { Plan, PlanWeightLayer } from './plan.js';

const PAGE_BYTES = 65536;
const MODE_CODE = Object.freeze({ dab: 1, xnor: 2 } as const);

/** A weight layer as laid out in wasm memory (byte offsets). */
interface WasmLayer {
  plan: PlanWeightLayer;
  tag: string;
  /**
   * f32: float rows; i8: int8 rows (conv taps (ky, kx, c), tapsMajor) and their scales (in `step`); masked: file bit rows with float inputs; pop:
   * 16-byte-padded bit rows with binarized inputs.
   */
  path: 'f32' | 'i8' | 'masked' | 'pop';
  weights: number;
  /** Bytes from one weight row to the next (bit paths). */
  rowStride: number;
  lower: number;
  step: number;
  wpop: number;
  /** 0 when the layer has no scale. */
  scale: number;
  shift: number;
  /** Conv popcount path: bytes holding one pixel's channel bits. */
  chunkBytes: number;
  /** Dense popcount path: bytes of one weight column (popColumns), or 0 for weight rows (popRows). */
  colBytes: number;
  /** Masked path: subset sums as two 16-entry tables per weight byte instead of one of 256 (few rows). */
  nibbles: boolean;
  /** Masked conv path: set taps added straight from the input (maskedConv) instead of per-pixel tables. */
  direct: boolean;
  /** Masked conv path: channels per group of the per-pixel subset-sum tables (maskedConvTables); 0 when direct. */
  pixelGroup: number;
  /** int8 conv path: how the products run (int8ConvPlan). */
  i8Conv: Int8ConvKind;
}

/** Scratch sizes in bytes for a batch of one (`perSample`) or shared across the batch. */
interface Needs {
  activation: number;
  quantized: number;
  /** int8 layers: the input quantized to i16 (quantizeInput), for convs then pixel-major (pixelMajor). */
  q16: number;
  /** int8 convs: the weights widened to i16 (widenI8). */
  wide: number;
  tmp: number;
  colSum: number;
  bits: number;
  patches: number;
  apop: number;
  lut: number;
}

const align16 = (n: number): number => (n + 15) & ~15;

/** Creates a wasm engine for `plan`: one kernel instance (and memory) per engine. */
export async function createWasmEngine(plan: Plan): Promise<Engine> {
  const k = await instantiateKernels();
  let top = align16(k.heapBase());
  const alloc = (bytes: number): number => {
    const p = top;
    top = align16(top + bytes);
    const missing = top - k.memory.buffer.byteLength;
    if (missing > 0) k.memory.grow(Math.ceil(missing / PAGE_BYTES));
    return p;
  };
  const put = (data: Float32Array | Uint8Array | Int32Array): number => {
    const p = alloc(data.byteLength);
    new Uint8Array(k.memory.buffer, p, data.byteLength).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    return p;
  };
  const layers = new Map<PlanWeightLayer, WasmLayer>();
  const weightStart = top;
  for (const layer of plan.layers) {
    if (layer.kind === 'dense' || layer.kind === 'conv') layers.set(layer, placeLayer(layer, put));
  }
  const weightBytes = top - weightStart;
  const scratchStart = top;
  let capacity = 0;
  let buffers = {
    a: 0,
    b: 0,
    q: 0,
    q16: 0,
    ascales: 0,
    wide: 0,
    tmp: 0,
    colSum: 0,
    bits: 0,
    patches: 0,
    apop: 0,
    levels: 0,
    lut: 0,
  };

  const ensureCapacity = (batch: number): void => {
    if (batch <= capacity) return;
    const n = scratchNeeds(plan, layers);
    top = scratchStart;
    buffers = {
      a: alloc(n.activation * batch),
      b: alloc(n.activation * batch),
      q: alloc(n.quantized * batch),
      q16: alloc(n.q16 * batch),
      ascales: alloc(4 * batch),
      wide: alloc(n.wide),
      tmp: alloc(n.tmp),
      colSum: alloc(n.colSum),
      bits: alloc(n.bits * batch),
      patches: alloc(n.patches),
      apop: alloc(n.apop * batch),
      levels: alloc(8 * batch),
      lut: alloc(n.lut),
    };
    capacity = batch;
  };

  // Views on the wasm memory, renewed only when it grows (growing detaches the old buffer).
  let f32 = new Float32Array(k.memory.buffer);
  let i32 = new Int32Array(k.memory.buffer);
  const views = (): void => {
    if (f32.buffer !== k.memory.buffer) {
      f32 = new Float32Array(k.memory.buffer);
      i32 = new Int32Array(k.memory.buffer);
    }
  };

  return {
    mode: 'wasm',
    plan,
    weightBytes,
    run(input: Float32Array, batch: number, profiler?: Profiler): Float32Array {
      ensureCapacity(batch);
      views();
      const inF = features(plan.inputShape);
      f32.set(input.subarray(0, batch * inF), buffers.a >> 2);
      normalizeInput(f32, buffers.a >> 2, batch * inF, plan);
      let cur = buffers.a;
      let other = buffers.b;
      for (const layer of plan.layers) {
        if (layer.kind === 'flatten') continue;
        const event = profiler?.begin(layer.name, layers.get(layer as PlanWeightLayer)?.tag ?? layerTag(layer));
        if (layer.kind === 'maxpool') {
          const [c, h, w] = layer.inputShape;
          k.maxPool(cur, batch * c, h, w, layer.size, other);
        } else if (layer.kind === 'pad') {
          const [c, h, w] = layer.inputShape;
          padPlanes(f32, cur >> 2, f32, other >> 2, batch * c, h, w, layer.size);
        } else {
          runLayer(k, i32, layers.get(layer) as WasmLayer, buffers, cur, other, batch);
        }
        if (event !== undefined) profiler?.end(event);
        const swap = cur;
        cur = other;
        other = swap;
      }
      return f32.slice(cur >> 2, (cur >> 2) + batch * plan.classes);
    },
    dispose(): void {
      layers.clear();
    },
  };
}

/** Copies a layer's parameters into wasm memory in the layout its kernel reads. */
function placeLayer(layer: PlanWeightLayer, put: (data: Float32Array | Uint8Array | Int32Array) => number): WasmLayer {
  const base = {
    plan: layer,
    tag: layerTag(layer),
    rowStride: 0,
    lower: 0,
    step: 0,
    wpop: 0,
    chunkBytes: 0,
    colBytes: 0,
    nibbles: false,
    direct: false,
    pixelGroup: 0,
    i8Conv: 'patches' as Int8ConvKind,
    scale: layer.scale ? put(layer.scale) : 0,
    shift: put(layer.shift),
  };
  const w = layer.weights;
  if (w.kind === 'float') return { ...base, path: 'f32', weights: put(w.rows) };
  if (w.kind === 'int8') {
    const i8Conv = layer.kind === 'conv' ? int8ConvPlan(layer) : 'patches';
    const data =
      layer.kind !== 'conv'
        ? w.data
        : i8Conv === 'winograd'
          ? winogradMajor(w.data, layer.rows, layer.inputShape[0])
          : i8Conv === 'pairs'
            ? pairMajor(w.data, layer)
            : tapsMajor(w.data, layer.rows, layer.inputShape[0], layer.kernel);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const tag = i8Conv === 'patches' ? base.tag : `${base.tag} (${i8Conv === 'pairs' ? 'positions' : i8Conv})`;
    return { ...base, tag, path: 'i8', weights: put(bytes), step: put(w.scales), i8Conv };
  }
  const lower = put(w.lower);
  const step = put(w.step);
  if (layer.inputs === 'none') {
    // Convs run direct on the file's rows or on per-pixel tables with their indices; dense layers keep long rows'
    // bytes group-major for the blocked kernel, short ones as the file packs them. The profile names the variant.
    const variant = layer.kind === 'conv' ? maskedConvPlan(layer) : undefined;
    if (variant?.kind === 'tables') {
      const tag = base.tag.replace('(masked sum)', `(masked sum, pixel tables of ${variant.group} channels)`);
      const weights = put(pixelTableIndices(layer, w.packed, variant.group));
      return { ...base, tag, path: 'masked', weights, lower, step, pixelGroup: variant.group };
    }
    const groups = packedRowBytes(layer.rowLength);
    const direct = variant?.kind === 'direct';
    const blocked = groups > MASKED_TABLE_GROUPS && !direct;
    const weights = put(blocked ? groupMajor(w.packed, layer.rows, groups) : w.packed);
    const nibbles = layer.rows <= NIBBLE_MAX_ROWS;
    const kind = direct ? 'direct' : nibbles ? 'nibble tables' : 'byte tables';
    const tag = base.tag.replace('(masked sum)', `(masked sum, ${kind})`);
    return { ...base, tag, path: 'masked', weights, rowStride: blocked ? 0 : groups, lower, step, nibbles, direct };
  }
  const { rows: repacked, rowStride, chunkBytes, popcounts } = repackForPopcount(layer, w.packed);
  if (layer.kind === 'dense' && layer.rows >= POP_COLUMNS_MIN_ROWS && layer.rowLength < 65536) {
    const colBytes = align16(packedRowBytes(layer.rows));
    const tag = base.tag.replace('(popcount)', '(popcount, columns)');
    const weights = put(weightColumns(w.packed, layer.rows, layer.rowLength, colBytes));
    return { ...base, tag, path: 'pop', weights, rowStride, lower, step, wpop: put(popcounts), chunkBytes, colBytes };
  }
  return { ...base, path: 'pop', weights: put(repacked), rowStride, lower, step, wpop: put(popcounts), chunkBytes };
}

/**
 * Dense popcount layers with at least this many rows run popColumns (the set inputs' weight columns added into
 * bit-sliced counters, 2 x 128 rows a pass) instead of popRows. Timed on x64 (V8) under load, batch 1, same outputs
 * (scratch runs, median of 15 x 100 calls, rows against columns): 1024 -> 1024 8.4-9.7 against 5.7-5.9 µs; 784 ->
 * 128 0.87-0.95 against 0.80-0.85; 256 -> 128 0.43 against 0.40-0.43; 256 -> 96 even; 1024 -> 64 0.49 against 0.88
 * (a pass costs the same for fewer rows).
 */
const POP_COLUMNS_MIN_ROWS = 128;

/** The file's packed rows [rows, rowLength bits] as columns of `colBytes`: bit r of column k at byte k * colBytes + r / 8. */
export function weightColumns(packed: Uint8Array, rows: number, rowLength: number, colBytes: number): Uint8Array {
  const rowBytes = packedRowBytes(rowLength);
  const out = new Uint8Array(rowLength * colBytes);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < rowLength; k++) {
      if ((packed[r * rowBytes + (k >> 3)] >> (k & 7)) & 1) out[k * colBytes + (r >> 3)] |= 1 << (r & 7);
    }
  }
  return out;
}

/** Rows longer than this many bytes run the blocked masked-sum kernel (kernels.as.ts TABLE_GROUPS). */
const MASKED_TABLE_GROUPS = 8;

/**
 * Batches of at least this many samples into a dense layer with long rows (float inputs, binary weights) run
 * maskedRowsBatch, eight samples in the lanes of each table entry, instead of maskedRowsBlocked one sample at a time.
 */
const MASKED_BATCH_MIN_ITEMS = 3;

/**
 * Layers with at most this many rows build 2 x 16 nibble sums per weight byte instead of 256 byte sums: filling a
 * 256-entry table costs about as much as 30 rows' second lookups. Timed on x64 (V8) for 16, 24, 32 and 48 rows: the
 * nibbles were 20%, 12%, 0% faster and 15% slower.
 */
const NIBBLE_MAX_ROWS = 24;

/** The most bytes of per-pixel tables maskedConvTables may build (2^group planes of the input's pixels). */
const PIXEL_TABLE_MAX_BYTES = 256 * 1024;

/**
 * How a binary conv on float inputs runs: `direct` (maskedConv: per filter, the input under each set tap added up in
 * f32x4, work ~ positions / 4 * (rows * taps / 2 + taps)) or per-pixel subset-sum tables of `group` channels
 * (maskedConvTables: work ~ the lookups, padded positions / 4 * (rows + 1) * groups * K*K, plus building the tables,
 * groups * 2^group * pixels / 4 at 1.5 each). The group minimizes the second within PIXEL_TABLE_MAX_BYTES. Timed on x64
 * (V8) under load, interleaved (scratch runs, p50): direct won 1.7x on LeNet-5's 1 -> 6 5x5 on 32x32; the tables won
 * 1.2x on 3 -> 32 3x3 18x18, 3.6x on 6 -> 16 5x5 14x14 and 3x on 16 -> 32 5x5 12x12, hence 1.2 per unit of direct
 * (the weight below, twice 0.6 for positions / 2). Groups of 4, 6 and 8 channels were within 20% of each other on
 * 64 -> 64 3x3 16x16.
 */
export function maskedConvPlan(layer: PlanWeightLayer): { kind: 'direct' | 'tables'; group: number } {
  const [channels, h, w] = layer.inputShape;
  const [, oh, ow] = layer.outputShape;
  const kk = layer.kernel * layer.kernel;
  const taps = layer.rowLength;
  const direct = 1.2 * ((oh * ow) / 4) * ((layer.rows * taps) / 2 + taps);
  let best = { cost: Infinity, group: 1 };
  for (let group = 1; group <= Math.min(8, channels); group++) {
    if (4 * (tablePlaneFloats(h, w, layer.kernel) << group) > PIXEL_TABLE_MAX_BYTES && group > 1) break;
    const groups = Math.ceil(channels / group);
    const lookups = ((oh * ((ow + 3) & ~3)) / 4) * (layer.rows + 1) * groups * kk;
    const cost = lookups + 1.5 * groups * (1 << group) * ((h * w) / 4);
    if (cost < best.cost) best = { cost, group };
  }
  return direct < best.cost ? { kind: 'direct', group: 0 } : { kind: 'tables', group: best.group };
}

/**
 * The table indices of maskedConvTables: u8 [rows + 1, groups, K*K], entry (r, g, t) the bits of channels
 * g * group .. of filter r at tap t (bit j: channel g * group + j); row `rows` selects every channel (window sums).
 */
export function pixelTableIndices(layer: PlanWeightLayer, packed: Uint8Array, group: number): Uint8Array {
  const channels = layer.inputShape[0];
  const kk = layer.kernel * layer.kernel;
  const groups = Math.ceil(channels / group);
  const rowBytes = packedRowBytes(layer.rowLength);
  const out = new Uint8Array((layer.rows + 1) * groups * kk);
  for (let r = 0; r <= layer.rows; r++) {
    for (let c = 0; c < channels; c++) {
      const g = Math.floor(c / group);
      for (let t = 0; t < kk; t++) {
        const bit = c * kk + t; // OIHW row index
        const set = r === layer.rows || (packed[r * rowBytes + (bit >> 3)] >> (bit & 7)) & 1;
        if (set) out[(r * groups + g) * kk + t] |= 1 << (c % group);
      }
    }
  }
  return out;
}

/** Floats in one table plane of maskedConvTables (kernels.as.ts tablePlaneFloats: the pixels and padding columns). */
function tablePlaneFloats(h: number, w: number, kernel: number): number {
  return (h * w + ((w - kernel + 4) & ~3) + 3) & ~3;
}

/** Binary weights on float inputs: the masked-sum kernel for the layer's row length (see placeLayer). */
function maskedRows(
  k: KernelExports,
  l: WasmLayer,
  a: number,
  items: number,
  y: number,
  strideRow: number,
  strideItem: number,
  lut: number,
): void {
  const { rows, rowLength: len, relu } = l.plan;
  const r = relu ? 1 : 0;
  const nibbles = l.nibbles ? 1 : 0;
  if (l.rowStride === 0) {
    // Long rows, group-major: eight samples per table entry for a batch, else one sample at a time.
    const args = [
      a,
      items,
      len,
      l.weights,
      rows,
      l.lower,
      l.step,
      l.scale,
      l.shift,
      r,
      y,
      strideRow,
      strideItem,
      lut,
    ] as const;
    if (items >= MASKED_BATCH_MIN_ITEMS) k.maskedRowsBatch(...args);
    else k.maskedRowsBlocked(...args, nibbles);
  } else {
    k.maskedRows(
      a,
      items,
      len,
      l.weights,
      l.rowStride,
      rows,
      l.lower,
      l.step,
      l.scale,
      l.shift,
      r,
      y,
      strideRow,
      strideItem,
      lut,
      nibbles,
    );
  }
}

/** Packed rows [rows, groups] as [groups, rows], the masked-sum kernel's layout (byte g of every row together). */
export function groupMajor(packed: Uint8Array, rows: number, groups: number): Uint8Array {
  const out = new Uint8Array(rows * groups);
  for (let r = 0; r < rows; r++) for (let g = 0; g < groups; g++) out[g * rows + r] = packed[r * groups + g];
  return out;
}

/**
 * Weight rows for the popcount kernel: 16-byte-padded rows; conv rows reordered from (c, ky, kx) to (ky, kx, c) with
 * each pixel's channel bits padded to whole bytes, the layout im2colBits gives input patches.
 */
export function repackForPopcount(
  layer: PlanWeightLayer,
  packed: Uint8Array,
): { rows: Uint8Array; rowStride: number; chunkBytes: number; popcounts: Int32Array } {
  const fileRowBytes = packedRowBytes(layer.rowLength);
  const isConv = layer.kind === 'conv';
  const channels = layer.inputShape[0];
  const kk = layer.kernel * layer.kernel;
  const chunkBytes = isConv ? packedRowBytes(channels) : 0;
  const rowStride = align16(isConv ? kk * chunkBytes : fileRowBytes);
  const rows = new Uint8Array(layer.rows * rowStride);
  const popcounts = new Int32Array(layer.rows);
  for (let r = 0; r < layer.rows; r++) {
    for (let bit = 0; bit < layer.rowLength; bit++) {
      if (!((packed[r * fileRowBytes + (bit >> 3)] >> (bit & 7)) & 1)) continue;
      // OIHW row index bit = c * kk + (ky * K + kx).
      const to = isConv ? (bit % kk) * chunkBytes * 8 + Math.floor(bit / kk) : bit;
      rows[r * rowStride + (to >> 3)] |= 1 << (to & 7);
      popcounts[r]++;
    }
  }
  return { rows, rowStride, chunkBytes, popcounts };
}

/**
 * int8 conv rows from the file's (c, ky, kx) order to (ky, kx, c), the order of i8Im2col's patch rows: each kernel
 * row's taps then read one contiguous run of pixels of the position-major quantized input.
 */
export function tapsMajor(data: Int8Array, rows: number, channels: number, kernel: number): Int8Array {
  const taps = kernel * kernel;
  const len = channels * taps;
  const out = new Int8Array(data.length);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++) {
      for (let t = 0; t < taps; t++) out[r * len + t * channels + c] = data[r * len + c * taps + t];
    }
  }
  return out;
}

/**
 * How an int8 conv's products run: i16Dot on patch rows (i8Im2col), Winograd F(2x2, 3x3), or four output positions a
 * vector (i8ConvPairs) (kernels.as.ts).
 */
export type Int8ConvKind = 'patches' | 'winograd' | 'pairs';

/**
 * The most channels a Winograd conv may have: 4x the direct integer sum, 4 * 9 * 255 * 127 per channel, stays within
 * i32 (the kernels' sums wrap, so the result is exact while the true one fits).
 */
const WINOGRAD_MAX_CHANNELS = Math.floor(2 ** 31 / (4 * 9 * 255 * 127));

/**
 * How an int8 conv runs. Winograd F(2x2, 3x3) for 3x3 convs of at most WINOGRAD_MAX_CHANNELS channels whose direct
 * products, outputs x filters x channels (times 9), reach WINOGRAD_MIN_WORK: 16 products per tile of 4 outputs
 * instead of 36, against transforms of the input, the filters (each call: only the int8 weights stay resident) and
 * the outputs. Timed on x64 (V8) under load, the layer alone, interleaved (scratch runs, p50 of 8 x 50 calls), patch
 * rows against Winograd: 64 -> 64 on 16x16 200.6 against 114.9 µs; 32 -> 64 on 14x14 85.0 / 50.0; 16 -> 16 on 14x14
 * 16.5 / 10.5; 8 -> 8 on 16x16 10.0 / 6.8; 4 -> 16 on 28x28 97.5 / 43.0; 3 -> 32 on 18x18 41.6 / 19.3; 33 -> 6 on
 * 9x9 21.5 / 6.1; 1 -> 16 on 28x28 40.0 / 34.1; 2 -> 8 on 10x10 3.6 / 2.7 (work 1024); Winograd lost only on the
 * tiny 1 -> 4 on 5x5 (1.2 / 2.0, work 36) and 1 -> 8 on 3x3 (0.2 / 0.9, work 8), where its fixed costs dominate.
 */
export function int8ConvPlan(layer: PlanWeightLayer): Int8ConvKind {
  const [channels] = layer.inputShape;
  const [, oh, ow] = layer.outputShape;
  const work = oh * ow * layer.rows * channels;
  const winograd = layer.kernel === 3 && channels <= WINOGRAD_MAX_CHANNELS && work >= WINOGRAD_MIN_WORK;
  const pairs = channels <= PAIRS_MAX_CHANNELS && ow >= PAIRS_MIN_WIDTH;
  if (pairs && (channels <= PAIRS_OVER_WINOGRAD_CHANNELS || !winograd)) return 'pairs';
  return winograd ? 'winograd' : 'patches';
}

/**
 * i8ConvPairs (four output positions a vector) for convs of at most PAIRS_MAX_CHANNELS channels and output rows of at
 * least PAIRS_MIN_WIDTH (eight positions a step), over Winograd up to PAIRS_OVER_WINOGRAD_CHANNELS. Timed as for
 * Winograd above, patch rows against positions (against Winograd): 1 -> 16 5x5 on 28x28 (the int8 LeNet's conv1)
 * 43.3 / 14.0 µs; 16 -> 32 5x5 on 12x12 (its conv2) 25.9 / 22.4; 1 -> 9 5x5 on 12x12 4.7 / 3.0; 6 -> 16 5x5 on 14x14
 * 16.8 / 11.7; 2 -> 8 3x3 on 10x10 3.3 / 2.9; 1 -> 16 3x3 on 28x28 38.5 / 13.6 (Winograd 26.7); 4 -> 16 3x3 on 28x28
 * 64.7 / 20.6 (29.5); 3 -> 32 3x3 on 18x18 42.0 / 14.0 (19.3); but 8 -> 16 3x3 on 14x14 11.3 / 9.0 (Winograd 7.0);
 * 32 -> 64 5x5 on 12x12 80.8 / 79.3 and 64 -> 64 5x5 on 16x16 354.3 / 478.6 (many channels); with outputs 4 or 6
 * wide, where half or a quarter of the lanes are wasted, 1 -> 8 5x5 on 8x8 1.4 / 2.4, 32 -> 32 5x5 on 8x8 12.1 / 22.3
 * and 1 -> 16 7x7 on 12x12 3.7 / 4.4.
 */
const PAIRS_MAX_CHANNELS = 16;
const PAIRS_MIN_WIDTH = 8;
const PAIRS_OVER_WINOGRAD_CHANNELS = 4;

const WINOGRAD_MIN_WORK = 1024;

/** kernels.as.ts E_PAD and WINOGRAD_BLOCK: bytes between the 16 arrays of the Winograd transforms, tiles per block. */
const WINOGRAD_PAD = 64;
const WINOGRAD_BLOCK = 8;

/** The padded sizes of a Winograd conv (kernels.as.ts): channels and filters rounded up to 8. */
export function winogradShape(layer: PlanWeightLayer): { c8: number; coutP: number } {
  return { c8: Math.ceil(layer.inputShape[0] / 8) * 8, coutP: Math.ceil(layer.rows / 8) * 8 };
}

/**
 * How i8ConvPairs pairs an int8 conv's taps: along kernel rows (values x and x + 1 of a channel, `step` 2; an odd
 * kernel's last column paired with a zero weight) or across channels (2a and 2a + 1, `step` 1), whichever needs fewer
 * pairs (`taps` = a * kernel * b); `rowsP` the filters rounded up to 4.
 */
export function pairShape(layer: PlanWeightLayer): { a: number; b: number; step: number; taps: number; rowsP: number } {
  const channels = layer.inputShape[0];
  const k = layer.kernel;
  const along = { a: channels, b: Math.ceil(k / 2), step: 2 };
  const across = { a: Math.ceil(channels / 2), b: k, step: 1 };
  const best = along.a * along.b < across.a * across.b ? along : across;
  return { ...best, taps: best.a * k * best.b, rowsP: Math.ceil(layer.rows / 4) * 4 };
}

/**
 * int8 conv rows from the file's [rows][c][ky][kx] to i8ConvPairs' weight pairs [taps][rowsP][2] (pairShape), zeros
 * for the missing partner and the padding filters; bytes rounded up to 16 for widenI8.
 */
export function pairMajor(data: Int8Array, layer: PlanWeightLayer): Int8Array {
  const [channels] = layer.inputShape;
  const k = layer.kernel;
  const { a: pairsA, b: pairsB, step, taps, rowsP } = pairShape(layer);
  const out = new Int8Array(align16(2 * taps * rowsP));
  const at = (r: number, c: number, ky: number, kx: number): number =>
    c < channels && kx < k ? data[((r * channels + c) * k + ky) * k + kx] : 0;
  let t = 0;
  for (let a = 0; a < pairsA; a++) {
    for (let ky = 0; ky < k; ky++) {
      for (let b = 0; b < pairsB; b++, t++) {
        for (let r = 0; r < layer.rows; r++) {
          const i = 2 * (t * rowsP + r);
          out[i] = step === 2 ? at(r, a, ky, 2 * b) : at(r, 2 * a, ky, b);
          out[i + 1] = step === 2 ? at(r, a, ky, 2 * b + 1) : at(r, 2 * a + 1, ky, b);
        }
      }
    }
  }
  return out;
}

/** int8 3x3 conv rows from the file's [rows][c][ky][kx] to [c][ky * 3 + kx][rows rounded up to 8], filters padded with zeros. */
export function winogradMajor(data: Int8Array, rows: number, channels: number): Int8Array {
  const coutP = Math.ceil(rows / 8) * 8;
  const out = new Int8Array(channels * 9 * coutP);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < channels; c++) {
      for (let t = 0; t < 9; t++) out[(c * 9 + t) * coutP + r] = data[(r * channels + c) * 9 + t];
    }
  }
  return out;
}

/** Scratch bytes per sample (activations, quantized inputs, bits) or for one sample at a time (the rest). */
function scratchNeeds(plan: Plan, layers: Map<PlanWeightLayer, WasmLayer>): Needs {
  const n: Needs = {
    activation: 16,
    quantized: 16,
    q16: 16,
    wide: 16,
    tmp: 16,
    colSum: 16,
    bits: 16,
    patches: 16,
    apop: 16,
    lut: 16,
  };
  const grow = (key: keyof Needs, bytes: number): void => {
    n[key] = Math.max(n[key], align16(bytes));
  };
  grow('activation', 4 * features(plan.inputShape));
  for (const layer of plan.layers) {
    grow('activation', 4 * features(layer.outputShape));
    if (layer.kind !== 'dense' && layer.kind !== 'conv') continue;
    const wl = layers.get(layer) as WasmLayer;
    const [c, h, w] = layer.inputShape;
    const positions = layer.outputShape[1] * layer.outputShape[2];
    const isConv = layer.kind === 'conv';
    if (layer.inputs !== 'none') {
      grow('tmp', 4 * features(layer.inputShape));
      grow('colSum', 8 * h * w);
      grow('bits', isConv ? h * w * packedRowBytes(c) : wl.path === 'pop' ? wl.rowStride : packedRowBytes(c));
      if (wl.path === 'f32' || wl.path === 'i8') grow('quantized', 4 * features(layer.inputShape));
    }
    // The quantized input, and for convs its pixel-major copy.
    if (wl.path === 'i8' && wl.i8Conv === 'winograd') {
      // The pixels with channels padded to 8 and a pixel of zeros; U (wide); V and M (patches).
      const s = winogradShape(layer);
      grow('q16', align16(2 * features(layer.inputShape)) + align16(2 * h * w * s.c8) + 2 * s.c8);
      grow('wide', 16 * (2 * s.c8 * s.coutP + WINOGRAD_PAD));
      grow(
        'patches',
        16 * (2 * WINOGRAD_BLOCK * s.c8 + WINOGRAD_PAD) + 16 * (4 * WINOGRAD_BLOCK * s.coutP + WINOGRAD_PAD),
      );
    } else if (wl.path === 'i8' && wl.i8Conv === 'pairs') {
      // The quantized planes; the pairs (patches), with room for the reads past the last position; the weight pairs.
      const s = pairShape(layer);
      grow('q16', 2 * features(layer.inputShape) + 32);
      grow('patches', 4 * (c + 1) * h * w + 4 * (layer.kernel + 16) + 64);
      grow('wide', 2 * align16(2 * s.taps * s.rowsP));
    } else if (wl.path === 'i8') grow('q16', (isConv ? 4 : 2) * features(layer.inputShape));
    if (wl.path === 'i8' && isConv && wl.i8Conv === 'patches') grow('wide', 2 * align16(layer.rows * layer.rowLength));
    if (isConv && (wl.path === 'pop' || (wl.path === 'i8' && wl.i8Conv === 'patches'))) {
      grow('patches', wl.path === 'pop' ? positions * wl.rowStride : 2 * positions * layer.rowLength);
    }
    grow('apop', 4 * (isConv ? positions : 1));
    // Subset-sum tables (1 KiB, or 128 bytes with nibbles) for every row byte and 32 nibble sums; when blocked,
    // tables for MASKED_TABLE_GROUPS bytes, the nibble sums, the rows' running sums and MASKED_TABLE_GROUPS gathered
    // weight bytes per row (kernels.as.ts maskedRows, maskedRowsBlocked).
    if (wl.path === 'pop' && wl.colBytes > 0) {
      // popColumns: the set inputs' column addresses, 2 x 24 planes of 16 bytes, the counts (rows padded to 128).
      grow('lut', 4 * ((layer.rowLength + 3) & ~3) + 16 * 48 + 4 * ((layer.rows + 127) & ~127));
    } else if (wl.path === 'masked' && wl.pixelGroup > 0) {
      // maskedConvTables: 2^group planes of the input's pixels, the sums, the (filter, tap) offsets, the taps'.
      const [, oh, ow] = layer.outputShape;
      grow(
        'lut',
        4 * (tablePlaneFloats(h, w, layer.kernel) << wl.pixelGroup) +
          4 * ((layer.rows + 1) * (oh * ((ow + 3) & ~3) + layer.kernel * layer.kernel) + layer.kernel * layer.kernel),
      );
    } else if (wl.path === 'masked' && wl.direct) {
      // maskedConv: the window sums, then the set taps' offsets.
      grow('lut', 4 * (((positions + 3) & ~3) + layer.rowLength));
    } else if (wl.path === 'masked') {
      const groups = packedRowBytes(layer.rowLength);
      const table = wl.nibbles ? 128 : 1024;
      grow(
        'lut',
        groups > MASKED_TABLE_GROUPS
          ? Math.max(
              MASKED_TABLE_GROUPS * table + 128 + 4 * layer.rows + MASKED_TABLE_GROUPS * layer.rows,
              // maskedRowsBatch: transposed inputs, 4 tables, nibble sums, running sums, window sums, gathered bytes.
              256 * groups + 4 * 8192 + 1024 + 32 * layer.rows + 64 + 4 * layer.rows,
            )
          : groups * table + 128,
      );
    }
  }
  return n;
}

interface Buffers {
  q: number;
  q16: number;
  ascales: number;
  wide: number;
  tmp: number;
  colSum: number;
  bits: number;
  patches: number;
  apop: number;
  levels: number;
  lut: number;
}

function runLayer(
  k: KernelExports,
  i32: Int32Array,
  l: WasmLayer,
  buf: Buffers,
  x: number,
  y: number,
  batch: number,
): void {
  const layer = l.plan;
  const [c, h, w] = layer.inputShape;
  const inBytes = 4 * c * h * w;
  const outBytes = 4 * features(layer.outputShape);
  const positions = layer.outputShape[1] * layer.outputShape[2];
  const relu = layer.relu ? 1 : 0;
  const rows = layer.rows;
  const len = layer.rowLength;
  const isConv = layer.kind === 'conv';
  const mode = layer.inputs === 'none' ? 0 : MODE_CODE[layer.inputs];
  const steps = ACTIVATION_LLOYD_STEPS;
  if (l.path === 'pop') {
    if (!isConv) {
      for (let s = 0; s < batch; s++) {
        const bits = buf.bits + s * l.rowStride;
        i32[(buf.apop >> 2) + s] = k.binarize(
          x + s * inBytes,
          len,
          1,
          mode,
          steps,
          buf.tmp,
          buf.colSum,
          bits,
          l.rowStride,
          l.rowStride,
          buf.levels + 8 * s,
          0,
        );
      }
      if (l.colBytes > 0) {
        k.popColumns(
          buf.bits,
          batch,
          l.rowStride,
          buf.apop,
          buf.levels,
          l.weights,
          l.colBytes,
          rows,
          l.wpop,
          l.lower,
          l.step,
          len,
          l.scale,
          l.shift,
          relu,
          y,
          rows,
          buf.lut,
        );
        return;
      }
      k.popRows(
        buf.bits,
        batch,
        l.rowStride,
        buf.apop,
        1,
        buf.levels,
        l.weights,
        rows,
        l.wpop,
        l.lower,
        l.step,
        len,
        l.scale,
        l.shift,
        relu,
        y,
        1,
        rows,
      );
      return;
    }
    for (let s = 0; s < batch; s++) {
      const levels = buf.levels + 8 * s;
      k.binarize(
        x + s * inBytes,
        c,
        h * w,
        mode,
        steps,
        buf.tmp,
        buf.colSum,
        buf.bits,
        l.chunkBytes,
        h * w * l.chunkBytes,
        levels,
        0,
      );
      k.im2colBits(buf.bits, h, w, l.chunkBytes, layer.kernel, buf.patches, l.rowStride, buf.apop);
      k.popRows(
        buf.patches,
        positions,
        l.rowStride,
        buf.apop,
        positions,
        levels,
        l.weights,
        rows,
        l.wpop,
        l.lower,
        l.step,
        len,
        l.scale,
        l.shift,
        relu,
        y + s * outBytes,
        positions,
        1,
      );
    }
    return;
  }
  let input = x;
  if (mode !== 0) {
    // Binarized inputs into float weights: the levels as floats, then the float kernel.
    for (let s = 0; s < batch; s++) {
      k.binarize(
        x + s * inBytes,
        isConv ? c : len,
        isConv ? h * w : 1,
        mode,
        steps,
        buf.tmp,
        buf.colSum,
        buf.bits,
        packedRowBytes(c),
        isConv ? h * w * packedRowBytes(c) : packedRowBytes(len),
        buf.levels + 8 * s,
        buf.q + s * inBytes,
      );
    }
    input = buf.q;
  }
  if (!isConv) {
    if (l.path === 'f32') k.f32Rows(input, batch, len, l.weights, rows, l.scale, l.shift, relu, y, 1, rows);
    else if (l.path === 'i8') {
      for (let s = 0; s < batch; s++)
        k.quantizeInput(input + s * inBytes, len, buf.q16 + 2 * s * len, buf.ascales + 4 * s);
      k.i8Dot(buf.q16, batch, len, l.weights, l.step, rows, buf.ascales, 4, l.scale, l.shift, relu, y, 1, rows);
    } else maskedRows(k, l, input, batch, y, 1, rows, buf.lut);
    return;
  }
  // An int8 conv's rows meet every position: widened to i16 (or transformed, Winograd) once per call, they leave the
  // inner loops.
  const wino = l.path === 'i8' && l.i8Conv === 'winograd' ? winogradShape(layer) : undefined;
  const pairs = l.path === 'i8' && l.i8Conv === 'pairs' ? pairShape(layer) : undefined;
  if (wino) k.winogradWeights(l.weights, c, wino.c8, wino.coutP, buf.wide);
  else if (pairs) k.widenI8(l.weights, align16(2 * pairs.taps * pairs.rowsP), buf.wide);
  else if (l.path === 'i8') k.widenI8(l.weights, rows * len, buf.wide);
  for (let s = 0; s < batch; s++) {
    const out = y + s * outBytes;
    const x1 = input + s * inBytes;
    const { lower, step, scale, shift, weights } = l;
    if (l.path === 'f32') k.f32Conv(x1, c, h, w, layer.kernel, weights, rows, scale, shift, relu, out);
    else if (wino) {
      const pixels = buf.q16 + align16(2 * c * h * w);
      const zero = pixels + align16(2 * h * w * wino.c8);
      const v = buf.patches;
      const m = v + 16 * (2 * WINOGRAD_BLOCK * wino.c8 + WINOGRAD_PAD);
      const [, oh, ow] = layer.outputShape;
      k.quantizeInput(x1, c * h * w, buf.q16, buf.ascales);
      k.pixelMajor(buf.q16, c, h * w, pixels, wino.c8);
      k.winogradConv(pixels, wino.c8, h, w, buf.wide, wino.coutP, rows, oh, ow, zero, v, m, out);
      k.i32Epilogue(out, rows, positions, buf.ascales, step, scale, shift, relu);
    } else if (pairs) {
      k.quantizeInput(x1, c * h * w, buf.q16, buf.ascales);
      if (pairs.step === 2) k.pairAlongRows(buf.q16, c * h * w, buf.patches);
      else k.pairChannels(buf.q16, c, h * w, buf.patches);
      const { a, b, step: pairStep } = pairs;
      const { kernel } = layer;
      k.i8ConvPairs(
        buf.patches,
        a,
        h,
        w,
        kernel,
        b,
        pairStep,
        buf.wide,
        rows,
        buf.ascales,
        step,
        scale,
        shift,
        relu,
        out,
      );
    } else if (l.path === 'i8') {
      // One channel is pixel-major already; more are transposed into the second half of the buffer.
      const pixels = c === 1 ? buf.q16 : buf.q16 + inBytes / 2;
      k.quantizeInput(x1, c * h * w, buf.q16, buf.ascales);
      if (c > 1) k.pixelMajor(buf.q16, c, h * w, pixels, c);
      k.i8Im2col(pixels, c, h, w, layer.kernel, buf.patches);
      k.i16Dot(
        buf.patches,
        positions,
        len,
        buf.wide,
        step,
        rows,
        buf.ascales,
        0,
        scale,
        shift,
        relu,
        out,
        positions,
        1,
      );
    } else if (l.direct) {
      k.maskedConv(
        x1,
        c,
        h,
        w,
        layer.kernel,
        weights,
        l.rowStride,
        rows,
        lower,
        step,
        scale,
        shift,
        relu,
        out,
        buf.lut,
      );
    } else {
      const group = l.pixelGroup;
      k.maskedConvTables(
        x1,
        c,
        h,
        w,
        layer.kernel,
        group,
        weights,
        rows,
        lower,
        step,
        scale,
        shift,
        relu,
        out,
        buf.lut,
      );
    }
  }
}
