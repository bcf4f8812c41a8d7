// The IDX file format (MNIST, Fashion-MNIST): reading and writing, gzipped or not, with one-line errors for bad files.

import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CmpError } from '../errors.js';

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  shape: number[];
  data: IdxData;
}

/** IDX type byte -> element type and size. */
const IDX_TYPES: Readonly<Record<number, { dtype: IdxDtype; bytes: number }>> = Object.freeze({
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
});

/**
 * Parses IDX bytes (gunzipping first when they start with the gzip magic 1f 8b). Layout: 0x00 0x00, a type byte, a
 * dimension count, the dimensions as big-endian uint32, then the values big-endian, row-major.
 */
export function readIdx(bytes: Uint8Array, source: string): IdxArray {
  const corrupt = (problem: string, cause?: unknown): CmpError =>
    new CmpError('DATASET_CORRUPT', `Corrupt IDX file "${source}": ${problem}. Reinstall the data set or point --data at intact files.`, {
      cause,
    });
  let raw = bytes;
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (err) {
      throw corrupt('the gzip stream is broken', err);
    }
  }
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0) throw corrupt('it does not start with the IDX magic (00 00)');
  const type = IDX_TYPES[raw[2]];
  if (!type) throw corrupt(`unknown element type 0x${raw[2].toString(16).padStart(2, '0')}`);
  const rank = raw[3];
  if (rank === 0) throw corrupt('it has no dimensions');
  const header = 4 + 4 * rank;
  if (raw.length < header) throw corrupt('the header is cut short');
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const shape: number[] = [];
  for (let i = 0; i < rank; i++) shape.push(view.getUint32(4 + 4 * i, false));
  const count = shape.reduce((a, b) => a * b, 1);
  const expected = count * type.bytes;
  const found = raw.length - header;
  if (found < expected) throw corrupt(`expected ${expected} bytes of values, found ${found}`);
  if (found > expected) throw corrupt(`${found - expected} unexpected bytes after the values`);
  return { dtype: type.dtype, shape, data: decode(view, header, count, type.dtype) };
}

function decode(view: DataView, offset: number, count: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int8':
      return new Int8Array(view.buffer, view.byteOffset + offset, count).slice();
    case 'int16': {
      const out = new Int16Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(offset + 2 * i, false);
      return out;
    }
    case 'int32': {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(offset + 4 * i, false);
      return out;
    }
    case 'float32': {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(offset + 4 * i, false);
      return out;
    }
    case 'float64': {
      const out = new Float64Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(offset + 8 * i, false);
      return out;
    }
  }
}

/** Reads an IDX file from disk. */
export function readIdxFile(path: string): IdxArray {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new CmpError('DATASET_MISSING', `Cannot read IDX file "${path}": ${(err as Error).message}. Check the path.`, {
      cause: err,
    });
  }
  return readIdx(bytes, path);
}

/** Serialises an array as IDX (for fixtures and exports), gzipped when asked. */
export function writeIdx(array: IdxArray, options: { gzip?: boolean } = {}): Uint8Array {
  const code = Number(Object.entries(IDX_TYPES).find(([, t]) => t.dtype === array.dtype)?.[0]);
  const size = IDX_TYPES[code].bytes;
  const header = 4 + 4 * array.shape.length;
  const out = new Uint8Array(header + array.data.length * size);
  const view = new DataView(out.buffer);
  out[2] = code;
  out[3] = array.shape.length;
  array.shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  for (let i = 0; i < array.data.length; i++) {
    const v = array.data[i];
    const at = header + i * size;
    if (array.dtype === 'uint8') view.setUint8(at, v);
    else if (array.dtype === 'int8') view.setInt8(at, v);
    else if (array.dtype === 'int16') view.setInt16(at, v, false);
    else if (array.dtype === 'int32') view.setInt32(at, v, false);
    else if (array.dtype === 'float32') view.setFloat32(at, v, false);
    else view.setFloat64(at, v, false);
  }
  return options.gzip ? gzipSync(out) : out;
}
