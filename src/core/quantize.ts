// int8 weights, symmetric per output channel: the reference every consumer (training, export, kernels) follows.

/** Largest magnitude of a quantized weight: symmetric, so -128 is never used and -q is always representable. */
export const INT8_MAX = 127;

/**
 * int8 rows in the cmp row layout (rows are output units / filters, as in the bit format of core/bitpack.ts):
 * w[r][k] ~ data[r * rowLength + k] * scales[r].
 */
export interface Int8Rows {
  rows: number;
  rowLength: number;
  data: Int8Array;
  /** One float32 scale per row: max |w| of the row / INT8_MAX (1 for an all-zero row). */
  scales: Float32Array;
}

/** The scale of a row whose largest magnitude is `maxAbs`, as float32 (the precision every consumer stores). */
export function int8Scale(maxAbs: number): number {
  return Math.fround(maxAbs > 0 ? maxAbs / INT8_MAX : 1);
}

/**
 * Quantizes each row of a [rows, rowLength] matrix: scale = max |w| / 127, q = round(w / scale), halves away from
 * zero. (ONNX QuantizeLinear rounds halves to even; no runtime quantizes weights again, they all read these integers.)
 */
export function quantizeRows(values: Float32Array, rows: number, rowLength: number): Int8Rows {
  const data = new Int8Array(rows * rowLength);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * rowLength;
    let maxAbs = 0;
    for (let k = 0; k < rowLength; k++) maxAbs = Math.max(maxAbs, Math.abs(values[base + k]));
    const scale = int8Scale(maxAbs);
    scales[r] = scale;
    for (let k = 0; k < rowLength; k++) {
      const q = Math.sign(values[base + k]) * Math.round(Math.abs(values[base + k]) / scale);
      data[base + k] = Math.max(-INT8_MAX, Math.min(INT8_MAX, q));
    }
  }
  return { rows, rowLength, data, scales };
}

/** The float rows an int8 matrix stands for: data * scale per row. */
export function dequantizeRows(q: Int8Rows): Float32Array {
  const out = new Float32Array(q.data.length);
  for (let r = 0; r < q.rows; r++) {
    const scale = q.scales[r];
    for (let k = 0; k < q.rowLength; k++) out[r * q.rowLength + k] = q.data[r * q.rowLength + k] * scale;
  }
  return out;
}

/**
 * A layer's input quantized for int8 x int8 products (bitwasm's int8 layers; onnxruntime-node's MatMulNBits does the
 * like): one scale per sample, scale = f32(max |x| / L) (1 when all are zero; NaNs do not count), with L = 255 levels
 * when no value is negative (after a ReLU, or pixels: twice the resolution) and 127 otherwise; q = f32(f32(x * f32(1 /
 * scale)) +/- 0.5) truncated, clamped to +/-L (NaN gives 0), every step in float32 as the WebAssembly kernel computes
 * it, so both give the same integers. Held as int16 (0..255 does not fit int8); the products still fit int32 sums.
 */
export function quantizeInput(x: Float32Array): { data: Int16Array; scale: number } {
  let maxAbs = 0;
  let low = 0;
  for (let k = 0; k < x.length; k++) {
    if (maxAbs < Math.abs(x[k])) maxAbs = Math.abs(x[k]);
    if (x[k] < low) low = x[k];
  }
  const levels = low < 0 ? INT8_MAX : 255;
  const scale = maxAbs > 0 ? Math.fround(maxAbs / levels) : 1;
  const inv = Math.fround(1 / scale);
  const data = new Int16Array(x.length);
  for (let k = 0; k < x.length; k++) {
    const r = Math.fround(Math.fround(x[k] * inv) + (x[k] < 0 ? -0.5 : 0.5));
    data[k] = r >= levels ? levels : r <= -levels ? -levels : r === r ? Math.trunc(r) : 0;
  }
  return { data, scale };
}
