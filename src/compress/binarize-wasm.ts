// Training's binarized-weight kernels (binarize-kernels.as.ts): loaded once, synchronously, each call's matrix copied
// into their memory in the layout they read, and their results handed back as views.

import { readFileSync } from 'node:fs';
import type { RowLayout, TwoLevelFit } from '../core/binarize.js';
import type { BinarizeMode } from '../core/spec.js';
import { CmpError } from '../errors.js';

/** The kernels' file beside the compiled module (dist/compress/), where `npm run build:wasm` writes it. */
export const BINARIZE_WASM_FILE = 'binarize-kernels.wasm';

/** What binarize-kernels.as.ts exports; pointers are byte offsets into `memory`. */
interface Exports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  searchScratchBytes(len: number): number;
  dabSearch(w: number, len: number, stride: number, thr: number, scratch: number): void;
  fitLevels(
    w: number,
    len: number,
    stride: number,
    thr: number,
    mode: number,
    lower: number,
    upper: number,
    lower64: number,
    upper64: number,
    ups: number,
    out: number,
  ): void;
  gradient(
    w: number,
    dy: number,
    len: number,
    stride: number,
    thr: number,
    ups: number,
    meanLo: number,
    meanHi: number,
    out: number,
  ): void;
}

/** A fit's split of each row: its values >= threshold are the upper level (XNOR: threshold 0); `ups` counts them. */
export interface SweptFit {
  thresholds: Float32Array;
  ups: Int32Array;
}

/** Where one call's arrays lie in the kernels' memory (byte offsets). */
interface Plan {
  len: number;
  stride: number;
  w: number;
  dy: number;
  out: number;
  thr: number;
  ups: number;
  lower: number;
  upper: number;
  lower64: number;
  upper64: number;
  scratch: number;
}

/**
 * fitTwoLevel (core/binarize.ts) on every row of a weight matrix, and the gradient training gives it, in WebAssembly:
 * DAB's thresholds to the bit (the search of DabSearch, rows read sixteen at a time in memory order), levels from
 * float64 sums, the passes over the values four rows per SIMD word. Calls run one at a time and share one memory; the
 * arrays returned are views into it, valid until the next call.
 */
export class BinarizeKernels {
  private readonly exports: Exports;
  private copy = new Float32Array(0);

  constructor(exports: Exports) {
    this.exports = exports;
  }

  /**
   * Fits two levels to each of `rows` rows of `rowLength` values (value j of row r at `r * rowStep + j * step`) and
   * returns each value's level in the values' own layout, with the split for `gradient`.
   */
  fit(
    values: Float32Array,
    rows: number,
    rowLength: number,
    mode: Exclude<BinarizeMode, 'none'>,
    layout: RowLayout,
  ): { values: Float32Array; fit: SweptFit } {
    const plan = this.fitPlan(values, rows, rowLength, mode, layout);
    const memory = this.exports.memory.buffer;
    const fit = {
      thresholds: new Float32Array(memory, plan.thr, rows).slice(),
      ups: new Int32Array(memory, plan.ups, rows).slice(),
    };
    return { values: this.unload(plan.out, values.length, rows, rowLength, layout), fit };
  }

  /**
   * fitTwoLevel's contract and results, to the bit (thresholds as DabSearch finds them, levels from the same float64
   * sums in the same order), for freeze's binarizeRows: training freezes its network at every epoch.
   */
  readonly fitRows = (
    values: Float32Array,
    rows: number,
    rowLength: number,
    mode: Exclude<BinarizeMode, 'none'>,
    layout: RowLayout = { rowStep: rowLength, step: 1 },
  ): TwoLevelFit => {
    const plan = this.fitPlan(values, rows, rowLength, mode, layout);
    const memory = this.exports.memory.buffer;
    const thresholds = new Float32Array(memory, plan.thr, rows);
    const bits = new Uint8Array(values.length);
    const { rowStep, step } = layout;
    for (let r = 0; r < rows; r++) {
      const t = thresholds[r];
      for (let j = 0, at = r * rowStep; j < rowLength; j++, at += step) bits[at] = +(values[at] >= t);
    }
    return {
      bits,
      upper: new Float64Array(memory, plan.upper64, rows).slice(),
      lower: new Float64Array(memory, plan.lower64, rows).slice(),
    };
  };

  /** Loads the values and runs the search (DAB) and the fit; returns where their results lie. */
  private fitPlan(
    values: Float32Array,
    rows: number,
    rowLength: number,
    mode: Exclude<BinarizeMode, 'none'>,
    layout: RowLayout,
  ): Plan {
    const k = this.exports;
    const plan = this.plan(rows, rowLength);
    this.load(values, plan.w, rows, rowLength, layout);
    if (mode === 'dab') k.dabSearch(plan.w, rowLength, plan.stride, plan.thr, plan.scratch);
    else new Float32Array(k.memory.buffer, plan.thr, plan.stride).fill(0);
    const { w, stride, thr, lower, upper, lower64, upper64, ups, out } = plan;
    k.fitLevels(w, rowLength, stride, thr, mode === 'dab' ? 0 : 1, lower, upper, lower64, upper64, ups, out);
    return plan;
  }

  /**
   * The gradient of fit's values with respect to `values`, given theirs (`dy`, same layout): straight-through where
   * |v| <= 1 (the latent weights' clip range) plus the mean of dy over the value's level.
   */
  gradient(
    values: Float32Array,
    dy: Float32Array,
    fit: SweptFit,
    rows: number,
    rowLength: number,
    layout: RowLayout,
  ): Float32Array {
    const k = this.exports;
    const plan = this.plan(rows, rowLength);
    this.load(values, plan.w, rows, rowLength, layout);
    this.load(dy, plan.dy, rows, rowLength, layout);
    const memory = k.memory.buffer;
    new Float32Array(memory, plan.thr, plan.stride).fill(0).set(fit.thresholds);
    new Int32Array(memory, plan.ups, plan.stride).fill(0).set(fit.ups);
    k.gradient(plan.w, plan.dy, rowLength, plan.stride, plan.thr, plan.ups, plan.lower, plan.upper, plan.out);
    return this.unload(plan.out, values.length, rows, rowLength, layout);
  }

  /** Lays out a call's arrays after the kernels' static data, growing the memory if they do not fit. */
  private plan(rows: number, len: number): Plan {
    const k = this.exports;
    const stride = Math.ceil(rows / 4) * 4;
    const matrix = align(len * stride * 4);
    const row = align(stride * 4);
    const w = align(k.heapBase());
    const plan = {
      len,
      stride,
      w,
      dy: w + matrix,
      out: w + 2 * matrix,
      thr: w + 3 * matrix,
      ups: w + 3 * matrix + row,
      lower: w + 3 * matrix + 2 * row,
      upper: w + 3 * matrix + 3 * row,
      lower64: w + 3 * matrix + 4 * row,
      upper64: w + 3 * matrix + 6 * row,
      scratch: w + 3 * matrix + 8 * row,
    };
    const end = plan.scratch + k.searchScratchBytes(len);
    const short = end - k.memory.buffer.byteLength;
    if (short > 0) k.memory.grow(Math.ceil(short / 65536));
    return plan;
  }

  /** Copies a matrix into the kernels' [rowLength, stride] layout at `at`; padding rows are zeros. */
  private load(values: Float32Array, at: number, rows: number, rowLength: number, layout: RowLayout): void {
    const stride = Math.ceil(rows / 4) * 4;
    const to = new Float32Array(this.exports.memory.buffer, at, rowLength * stride);
    const { rowStep, step } = layout;
    if (rowStep === 1 && step === stride) {
      to.set(values.subarray(0, rowLength * stride));
      return;
    }
    to.fill(0);
    for (let j = 0; j < rowLength; j++) {
      for (let r = 0; r < rows; r++) to[j * stride + r] = values[r * rowStep + j * step];
    }
  }

  /** The kernels' output at `at` in the caller's layout: a view where the layouts agree, else a reused copy. */
  private unload(at: number, length: number, rows: number, rowLength: number, layout: RowLayout): Float32Array {
    const stride = Math.ceil(rows / 4) * 4;
    const from = new Float32Array(this.exports.memory.buffer, at, rowLength * stride);
    const { rowStep, step } = layout;
    if (rowStep === 1 && step === stride) return from;
    if (this.copy.length < length) this.copy = new Float32Array(length);
    const out = this.copy.subarray(0, length);
    for (let j = 0; j < rowLength; j++) {
      for (let r = 0; r < rows; r++) out[r * rowStep + j * step] = from[j * stride + r];
    }
    return out;
  }
}

function align(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

let kernels: BinarizeKernels | undefined;

/** The kernels, compiled and instantiated on first use (training runs in Node, where both may be synchronous). */
export function binarizeKernels(): BinarizeKernels {
  kernels ??= new BinarizeKernels(new WebAssembly.Instance(new WebAssembly.Module(readKernels())).exports as never);
  return kernels;
}

/** Beside this module (dist), else the build output when running from src/. */
function readKernels(): Uint8Array<ArrayBuffer> {
  const urls = [
    new URL(`./${BINARIZE_WASM_FILE}`, import.meta.url),
    new URL(`../../dist/compress/${BINARIZE_WASM_FILE}`, import.meta.url),
  ];
  for (const url of urls) {
    try {
      return new Uint8Array(readFileSync(url));
    } catch {
      // try the next place
    }
  }
  throw new CmpError(
    'BACKEND_UNAVAILABLE',
    `Binarized training's kernels ${BINARIZE_WASM_FILE} are not beside ${urls[0].pathname}. Run npm run build:wasm (or npm run build).`,
  );
}
