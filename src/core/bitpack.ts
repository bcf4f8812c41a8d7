// The one written bit format of cmp: how binary weights are packed, in files, in memory and on the wire.

/*
 * CMP BIT FORMAT, version 1 (the same block stands in firmware-bridge/include/cmp/bitpack.h)
 *
 * A binary tensor is viewed as a matrix [rows, rowLength]:
 *   - dense weights: rows = output units, rowLength = input features (ONNX MatMul weight transposed, i.e. [out, in]);
 *   - conv weights:  rows = output filters, rowLength = inChannels * kernelH * kernelW, in ONNX OIHW order.
 * Bits:
 *   - bit k of a row lives in byte (k >> 3) of that row, at bit position (k & 7): least significant bit first;
 *   - word size: 8 bits. Each row starts on a byte boundary: a row takes ceil(rowLength / 8) bytes and the
 *     padding bits at its end are 0. Kernels that want 32-bit words repack rows when they load a model;
 *   - rows follow each other with no gap: the packed tensor is uint8 [rows, ceil(rowLength / 8)].
 * Sign convention: a set bit (1) means the upper level, a clear bit (0) the lower level. For symmetric (XNOR-Net)
 *   binarization the upper level is +alpha and the lower -alpha, so 1 = +1 and 0 = -1 (the opposite of Larq).
 * Levels: two per row, `upper` (alpha) and `lower` (beta), stored as IEEE float16 in two arrays of length rows.
 *   The represented weight is w = lower + (upper - lower) * bit. With x the layer input, a row's dot product is
 *   (upper - lower) * sum(x where bit = 1) + lower * sum(x): one masked sum (a popcount when x is binary too) plus a
 *   per-row scale and offset.
 */

/** Bytes one packed row of `rowLength` bits takes. */
export function packedRowBytes(rowLength: number): number {
  return (rowLength + 7) >> 3;
}

/**
 * Packs a 0/1 matrix [rows, rowLength] (any truthy value counts as 1) into the cmp bit format.
 * @returns uint8 [rows, packedRowBytes(rowLength)]
 */
export function packBits(bits: ArrayLike<number>, rows: number, rowLength: number): Uint8Array {
  const rowBytes = packedRowBytes(rowLength);
  const out = new Uint8Array(rows * rowBytes);
  for (let r = 0; r < rows; r++) {
    const src = r * rowLength;
    const dst = r * rowBytes;
    for (let k = 0; k < rowLength; k++) {
      if (bits[src + k]) out[dst + (k >> 3)] |= 1 << (k & 7);
    }
  }
  return out;
}

/** Unpacks the cmp bit format into a 0/1 matrix [rows, rowLength]. Padding bits are dropped. */
export function unpackBits(packed: Uint8Array, rows: number, rowLength: number): Uint8Array {
  const rowBytes = packedRowBytes(rowLength);
  const out = new Uint8Array(rows * rowLength);
  for (let r = 0; r < rows; r++) {
    const src = r * rowBytes;
    const dst = r * rowLength;
    for (let k = 0; k < rowLength; k++) out[dst + k] = (packed[src + (k >> 3)] >> (k & 7)) & 1;
  }
  return out;
}

/**
 * Expands packed bits and their two levels per row into float weights [rows, rowLength]: lower + (upper - lower) * bit.
 * This is the reference every kernel and the ONNX unpacking subgraph must agree with.
 */
export function expandBinary(
  packed: Uint8Array,
  rows: number,
  rowLength: number,
  upper: Float32Array,
  lower: Float32Array,
): Float32Array {
  const bits = unpackBits(packed, rows, rowLength);
  const out = new Float32Array(rows * rowLength);
  for (let r = 0; r < rows; r++) {
    const lo = lower[r];
    const step = Math.fround(upper[r] - lo);
    for (let k = 0; k < rowLength; k++) out[r * rowLength + k] = Math.fround(lo + step * bits[r * rowLength + k]);
  }
  return out;
}
