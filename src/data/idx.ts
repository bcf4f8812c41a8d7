// Reads and writes the IDX tensor format of MNIST and Fashion-MNIST, plain or gzipped, rejecting malformed files.

import { readFile } from 'node:fs/promises';
import { gunzipSync, gzipSync } from 'node:zlib';
import { CmpError } from '../errors.js';

/*
 * IDX layout (all multi-byte numbers big-endian):
 *   bytes 0-1   0x00 0x00
 *   byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64
 *   byte  3     number of dimensions D (at least 1)
 *   then        D uint32 sizes, outermost first
 *   then        product(sizes) elements, row-major, nothing after them
 * A file starting with 0x1f 0x8b is a gzip stream holding the above.
 */

/** Element types an IDX file can hold. */
export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';

/** The typed array that holds each IDX element type. */
export interface IdxDataOf {
  uint8: Uint8Array;
  int8: Int8Array;
  int16: Int16Array;
  int32: Int32Array;
  float32: Float32Array;
  float64: Float64Array;
}

/** Any typed array an IDX tensor can hold. */
export type IdxData = IdxDataOf[IdxDtype];

/** An IDX tensor of one element type: `data` holds product(shape) elements, row-major. */
export type IdxArrayOf<D extends IdxDtype> = { dtype: D; shape: number[]; data: IdxDataOf[D] };

/** An IDX tensor; `dtype` tells which typed array `data` is (a discriminated union, so `dtype` narrows `data`). */
export type IdxArray = { [D in IdxDtype]: IdxArrayOf<D> }[IdxDtype];

interface DtypeInfo {
  readonly dtype: IdxDtype;
  readonly code: number;
  readonly bytes: number;
}

const DTYPES: readonly DtypeInfo[] = Object.freeze([
  { dtype: 'uint8', code: 0x08, bytes: 1 },
  { dtype: 'int8', code: 0x09, bytes: 1 },
  { dtype: 'int16', code: 0x0b, bytes: 2 },
  { dtype: 'int32', code: 0x0c, bytes: 4 },
  { dtype: 'float32', code: 0x0d, bytes: 4 },
  { dtype: 'float64', code: 0x0e, bytes: 8 },
]);

const REINSTALL_HINT = 'Reinstall the data set or point --data at intact files.';

function corrupt(source: string, problem: string, cause?: unknown): CmpError {
  const message = `Corrupt IDX file "${source}": ${problem}. ${REINSTALL_HINT}`.replace(/\s*[\r\n]+\s*/g, ' ');
  return new CmpError('DATASET_CORRUPT', message, cause === undefined ? undefined : { cause });
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, '0')}`;
}

/**
 * Parses an IDX file (gzipped or not) held in memory.
 *
 * @param bytes the file's contents; a gzip stream is detected by its magic bytes 0x1f 0x8b.
 * @param source the file name, used only in error messages.
 * @returns the tensor. For uint8/int8 data read from a gzip stream `data` is a view on the decompressed buffer
 *   (no copy); otherwise it is a fresh array, never a view on `bytes`.
 * @throws CmpError DATASET_CORRUPT for a broken gzip stream, a bad header, missing or trailing data.
 */
export function readIdx(bytes: Uint8Array, source: string): IdxArray {
  let raw = bytes;
  const gzipped = isGzip(bytes);
  if (gzipped) {
    try {
      const out = gunzipSync(bytes);
      raw = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw corrupt(source, `the gzip stream is broken (${why})`, err);
    }
  }
  const what = gzipped ? 'decompressed file' : 'file';
  if (raw.length < 4) throw corrupt(source, `the ${what} is ${raw.length} bytes long, shorter than an IDX header`);
  if (raw[0] !== 0 || raw[1] !== 0) {
    throw corrupt(source, `bad magic ${hex(raw[0])} ${hex(raw[1])} (an IDX file starts with 0x00 0x00)`);
  }
  const info = DTYPES.find((d) => d.code === raw[2]);
  if (info === undefined) {
    throw corrupt(source, `unknown element type ${hex(raw[2])} (expected 0x08, 0x09, 0x0b, 0x0c, 0x0d or 0x0e)`);
  }
  const dims = raw[3];
  if (dims === 0) throw corrupt(source, 'the header declares 0 dimensions');
  const headerBytes = 4 + 4 * dims;
  if (raw.length < headerBytes) {
    throw corrupt(source, `the header declares ${dims} dimensions but the ${what} ends after ${raw.length} bytes`);
  }
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const shape: number[] = [];
  let count = 1;
  for (let i = 0; i < dims; i++) {
    const size = view.getUint32(4 + 4 * i, false);
    shape.push(size);
    count *= size;
  }
  const expected = count * info.bytes;
  const found = raw.length - headerBytes;
  const noun = info.dtype === 'uint8' && dims >= 3 ? 'pixels' : 'data';
  if (found < expected) {
    throw corrupt(source, `expected ${expected} bytes of ${noun} for shape [${shape.join(', ')}], found ${found}`);
  }
  if (found > expected) {
    throw corrupt(source, `${found - expected} trailing bytes after the ${expected} bytes of ${noun}`);
  }
  return decode(info.dtype, raw, headerBytes, count, gzipped, shape);
}

function decode(
  dtype: IdxDtype,
  raw: Uint8Array,
  offset: number,
  count: number,
  ownBuffer: boolean,
  shape: number[],
): IdxArray {
  const start = raw.byteOffset + offset;
  // One-byte types need no byte swapping: a view when `raw` is our own decompressed buffer, else a copy.
  if (dtype === 'uint8') {
    const data = new Uint8Array(raw.buffer, start, count);
    return { dtype, shape, data: ownBuffer ? data : data.slice() };
  }
  if (dtype === 'int8') {
    const data = new Int8Array(raw.buffer, start, count);
    return { dtype, shape, data: ownBuffer ? data : data.slice() };
  }
  const view = new DataView(raw.buffer, start, raw.byteLength - offset);
  switch (dtype) {
    case 'int16': {
      const data = new Int16Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt16(2 * i, false);
      return { dtype, shape, data };
    }
    case 'int32': {
      const data = new Int32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getInt32(4 * i, false);
      return { dtype, shape, data };
    }
    case 'float32': {
      const data = new Float32Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat32(4 * i, false);
      return { dtype, shape, data };
    }
    case 'float64': {
      const data = new Float64Array(count);
      for (let i = 0; i < count; i++) data[i] = view.getFloat64(8 * i, false);
      return { dtype, shape, data };
    }
  }
}

/**
 * Reads and parses an IDX file (gzipped or not) from disk.
 *
 * @throws CmpError DATASET_MISSING when the file cannot be read, DATASET_CORRUPT when it is malformed.
 */
export async function readIdxFile(path: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${typeof code === 'string' ? code : 'error'})`;
    throw new CmpError('DATASET_MISSING', `IDX file "${path}" ${why}.`, { cause: err });
  }
  return readIdx(bytes, path);
}

/** Options of {@link writeIdx}. */
export interface WriteIdxOptions {
  /** Compress the result with gzip (default false). */
  gzip?: boolean;
}

const CONSTRUCTORS: { readonly [D in IdxDtype]: { readonly name: string } } = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  int32: Int32Array,
  float32: Float32Array,
  float64: Float64Array,
};

/**
 * Serializes a tensor as an IDX file (big-endian), optionally gzipped; used by tests and to write small fixtures.
 *
 * @throws CmpError BAD_ARGUMENT when the shape is not 1 to 255 sizes in 0..2^32-1, does not match the data length,
 *   or the typed array does not match `dtype`.
 */
export function writeIdx(array: IdxArray, options: WriteIdxOptions = {}): Uint8Array {
  const { dtype, shape, data } = array;
  const info = DTYPES.find((d) => d.dtype === dtype);
  if (info === undefined) throw new CmpError('BAD_ARGUMENT', `Unknown IDX dtype "${String(dtype)}".`);
  const expectedType = CONSTRUCTORS[dtype].name;
  if (data.constructor.name !== expectedType) {
    throw new CmpError('BAD_ARGUMENT', `IDX dtype "${dtype}" needs a ${expectedType}, got a ${data.constructor.name}.`);
  }
  if (shape.length < 1 || shape.length > 255) {
    throw new CmpError('BAD_ARGUMENT', `IDX shape needs 1 to 255 dimensions, got ${shape.length}.`);
  }
  let count = 1;
  for (const size of shape) {
    if (!Number.isInteger(size) || size < 0 || size > 0xffffffff) {
      throw new CmpError('BAD_ARGUMENT', `IDX shape [${shape.join(', ')}] has a size that is not in 0..2^32-1.`);
    }
    count *= size;
  }
  if (count !== data.length) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `IDX shape [${shape.join(', ')}] holds ${count} elements but the data has ${data.length}.`,
    );
  }
  const headerBytes = 4 + 4 * shape.length;
  const out = new Uint8Array(headerBytes + count * info.bytes);
  const view = new DataView(out.buffer);
  out[2] = info.code;
  out[3] = shape.length;
  shape.forEach((size, i) => view.setUint32(4 + 4 * i, size, false));
  switch (array.dtype) {
    case 'uint8':
      out.set(array.data, headerBytes);
      break;
    case 'int8':
      out.set(new Uint8Array(array.data.buffer, array.data.byteOffset, count), headerBytes);
      break;
    case 'int16':
      array.data.forEach((v, i) => view.setInt16(headerBytes + 2 * i, v, false));
      break;
    case 'int32':
      array.data.forEach((v, i) => view.setInt32(headerBytes + 4 * i, v, false));
      break;
    case 'float32':
      array.data.forEach((v, i) => view.setFloat32(headerBytes + 4 * i, v, false));
      break;
    case 'float64':
      array.data.forEach((v, i) => view.setFloat64(headerBytes + 8 * i, v, false));
      break;
  }
  if (!options.gzip) return out;
  const gz = gzipSync(out);
  return new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength);
}
