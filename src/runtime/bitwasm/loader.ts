// Finds, compiles (once) and instantiates the bitwasm kernels, in Node (fs) and in browsers (fetch).

import { CmpError } from '../../errors.js';

/**
 * i8Dot and i16Dot: quantized inputs `a` (i16 lanes, one scale per item at `ascale`) times int8 or widened i16 rows
 * `w` (one scale per row at `wscale`), summed in i32, then the layer's scale, shift and ReLU into `y`.
 */
type IntegerDot = (
  a: number,
  items: number,
  len: number,
  w: number,
  wscale: number,
  rows: number,
  ascale: number,
  ascaleStride: number,
  scale: number,
  shift: number,
  relu: number,
  y: number,
  strideRow: number,
  strideItem: number,
) => void;

/** The kernels' exports (see kernels.as.ts for what each computes); pointers are byte offsets into `memory`. */
export interface KernelExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  f32Rows(
    a: number,
    items: number,
    len: number,
    w: number,
    rows: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideRow: number,
    strideItem: number,
  ): void;
  quantizeInput(x: number, n: number, q: number, scaleOut: number): number;
  pixelMajor(q: number, channels: number, positions: number, out: number, stride: number): void;
  winogradWeights(w: number, channels: number, channels8: number, filtersPadded: number, u: number): void;
  winogradConv(
    x: number,
    channels8: number,
    height: number,
    width: number,
    u: number,
    filtersPadded: number,
    rows: number,
    outHeight: number,
    outWidth: number,
    zero: number,
    v: number,
    m: number,
    y: number,
  ): void;
  i8ConvPairs(
    e: number,
    pairsA: number,
    height: number,
    width: number,
    kernel: number,
    pairsB: number,
    step: number,
    wp: number,
    rows: number,
    ascale: number,
    wscale: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
  ): void;
  pairAlongRows(q: number, n: number, e: number): void;
  pairChannels(q: number, channels: number, positions: number, e: number): void;
  i32Epilogue(
    y: number,
    rows: number,
    positions: number,
    ascale: number,
    wscale: number,
    scale: number,
    shift: number,
    relu: number,
  ): void;
  widenI8(w: number, n: number, out: number): void;
  i16Dot: IntegerDot;
  i8Im2col(q: number, channels: number, height: number, width: number, kernel: number, out: number): void;
  i8Dot: IntegerDot;
  maskedRows(
    a: number,
    items: number,
    len: number,
    bits: number,
    rowStride: number,
    rows: number,
    lower: number,
    step: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideRow: number,
    strideItem: number,
    lut: number,
    nibbles: number,
  ): void;
  maskedRowsBlocked(
    a: number,
    items: number,
    len: number,
    bits: number,
    rows: number,
    lower: number,
    step: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideRow: number,
    strideItem: number,
    lut: number,
    nibbles: number,
  ): void;
  maskedRowsBatch(
    a: number,
    items: number,
    len: number,
    bits: number,
    rows: number,
    lower: number,
    step: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideRow: number,
    strideItem: number,
    lut: number,
  ): void;
  maskedConv(
    x: number,
    C: number,
    H: number,
    W: number,
    K: number,
    bits: number,
    rowStride: number,
    rows: number,
    lower: number,
    step: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    scratch: number,
  ): void;
  maskedConvTables(
    x: number,
    C: number,
    H: number,
    W: number,
    K: number,
    G: number,
    idx: number,
    rows: number,
    lower: number,
    step: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    scratch: number,
  ): void;
  popRows(
    a: number,
    items: number,
    rowBytes: number,
    apop: number,
    itemsPerSample: number,
    aLevels: number,
    w: number,
    rows: number,
    wpop: number,
    wLow: number,
    wStep: number,
    n: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideRow: number,
    strideItem: number,
  ): void;
  popColumns(
    a: number,
    items: number,
    rowBytes: number,
    apop: number,
    aLevels: number,
    w: number,
    colBytes: number,
    rows: number,
    wpop: number,
    wLow: number,
    wStep: number,
    n: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
    strideItem: number,
    scratch: number,
  ): void;
  popcount(p: number, bytes: number): number;
  binarize(
    x: number,
    channels: number,
    positions: number,
    mode: number,
    steps: number,
    tmp: number,
    colSum: number,
    bits: number,
    chunkBytes: number,
    bitBytes: number,
    levels: number,
    q: number,
  ): number;
  im2colBits(
    bits: number,
    height: number,
    width: number,
    chunkBytes: number,
    kernel: number,
    out: number,
    rowBytes: number,
    apop: number,
  ): void;
  f32Conv(
    x: number,
    channels: number,
    height: number,
    width: number,
    kernel: number,
    w: number,
    rows: number,
    scale: number,
    shift: number,
    relu: number,
    y: number,
  ): void;
  maxPool(x: number, planes: number, height: number, width: number, size: number, y: number): void;
}

/** The wasm file's name beside the compiled loader (dist/runtime/bitwasm/), where `npm run build:wasm` writes it. */
export const WASM_FILE = 'bitwasm.wasm';

let compiled: Promise<WebAssembly.Module> | undefined;

/** Where the kernels may lie: beside this module (dist, bundles), else the build output when running from src/. */
function candidates(): URL[] {
  return [
    new URL(`./${WASM_FILE}`, import.meta.url),
    new URL(`../../../dist/runtime/bitwasm/${WASM_FILE}`, import.meta.url),
  ];
}

async function readWasm(): Promise<Uint8Array<ArrayBuffer>> {
  const urls = candidates();
  const isNode = typeof process !== 'undefined' && typeof process.versions?.node === 'string';
  if (isNode && urls[0].protocol === 'file:') {
    const { readFile } = await import('node:fs/promises');
    for (const url of urls) {
      try {
        return new Uint8Array(await readFile(url));
      } catch {
        // try the next place
      }
    }
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `bitwasm kernels ${WASM_FILE} not found beside ${urls[0].pathname}. Run npm run build:wasm (or npm run build).`,
    );
  }
  const response = await fetch(urls[0]);
  if (!response.ok) {
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `bitwasm kernels ${urls[0].href} answered HTTP ${response.status}. Serve ${WASM_FILE} beside the bundle.`,
    );
  }
  return new Uint8Array(await response.arrayBuffer());
}

/** The compiled kernels module, compiled once per process. */
export function kernelModule(): Promise<WebAssembly.Module> {
  compiled ??= readWasm().then(async (bytes) => {
    try {
      return await WebAssembly.compile(bytes);
    } catch (err) {
      throw new CmpError(
        'BACKEND_UNAVAILABLE',
        `bitwasm kernels do not compile here (${String((err as Error).message).split('\n')[0]}); this runtime may lack WebAssembly SIMD. Use --backend ort-web.`,
        { cause: err },
      );
    }
  });
  compiled.catch(() => {
    compiled = undefined;
  });
  return compiled;
}

/** A fresh instance with its own memory: one per loaded model. */
export async function instantiateKernels(): Promise<KernelExports> {
  const instance = await WebAssembly.instantiate(await kernelModule(), {});
  return instance.exports as unknown as KernelExports;
}
