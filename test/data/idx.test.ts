// Tests of the IDX reader and writer: round trips for every element type and one-line errors for malformed files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { isCmpError, type CmpErrorCode } from '../../src/errors.js';
import { readIdx, readIdxFile, writeIdx, type IdxArray } from '../../src/data/idx.js';

/** Asserts that `fn` throws a CmpError with `code` whose message is one line containing every `parts` string. */
function assertCmpError(fn: () => unknown, code: CmpErrorCode, ...parts: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isCmpError(err), `expected a CmpError, got ${String(err)}`);
    assert.equal(err.code, code);
    assert.ok(!err.message.includes('\n'), `message is not one line: ${JSON.stringify(err.message)}`);
    for (const part of parts) assert.ok(err.message.includes(part), `"${err.message}" lacks "${part}"`);
    return true;
  });
}

const IMAGES: IdxArray = {
  dtype: 'uint8',
  shape: [3, 2, 4],
  data: Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256),
};

const FLOATS: IdxArray = {
  dtype: 'float32',
  shape: [2, 3],
  data: Float32Array.from([0, -1.5, 3.25, 1e-7, 65504, -0.125]),
};

test('writeIdx writes the documented header: 00 00, type byte, dims, big-endian sizes', () => {
  const bytes = writeIdx(IMAGES);
  assert.deepEqual([...bytes.subarray(0, 16)], [0, 0, 0x08, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 4]);
  assert.equal(bytes.length, 16 + 24);
  const floats = writeIdx(FLOATS);
  assert.equal(floats[2], 0x0d);
  // -1.5 as big-endian float32 is bf c0 00 00.
  assert.deepEqual([...floats.subarray(12 + 4, 12 + 8)], [0xbf, 0xc0, 0, 0]);
});

for (const gzip of [false, true]) {
  for (const array of [IMAGES, FLOATS]) {
    test(`readIdx reads back what writeIdx wrote (${array.dtype}, ${gzip ? 'gzipped' : 'plain'})`, () => {
      const bytes = writeIdx(array, { gzip });
      assert.equal(bytes[0] === 0x1f && bytes[1] === 0x8b, gzip);
      const back = readIdx(bytes, 'round-trip');
      assert.equal(back.dtype, array.dtype);
      assert.deepEqual(back.shape, array.shape);
      assert.equal(back.data.constructor, array.data.constructor);
      assert.deepEqual([...back.data], [...array.data]);
    });
  }
}

test('readIdx round-trips int8, int16, int32 and float64 with negative values', () => {
  const arrays: IdxArray[] = [
    { dtype: 'int8', shape: [4], data: Int8Array.from([-128, -1, 0, 127]) },
    { dtype: 'int16', shape: [2, 2], data: Int16Array.from([-32768, -2, 258, 32767]) },
    { dtype: 'int32', shape: [3], data: Int32Array.from([-2147483648, 16909060, 2147483647]) },
    { dtype: 'float64', shape: [1, 3], data: Float64Array.from([Math.PI, -1e300, 5e-324]) },
  ];
  for (const array of arrays) {
    const back = readIdx(writeIdx(array, { gzip: array.dtype === 'int16' }), array.dtype);
    assert.equal(back.dtype, array.dtype);
    assert.deepEqual(back.shape, array.shape);
    assert.deepEqual([...back.data], [...array.data], array.dtype);
  }
});

test('readIdx does not alias the caller buffer for plain uint8 input', () => {
  const bytes = writeIdx(IMAGES);
  const back = readIdx(bytes, 'alias');
  bytes[16] = 255 - bytes[16];
  assert.equal(back.data[0], IMAGES.data[0]);
});

test('a truncated file is DATASET_CORRUPT naming the file and the byte counts', () => {
  const bytes = writeIdx(IMAGES).subarray(0, 16 + 10);
  assertCmpError(
    () => readIdx(bytes, 'x.gz'),
    'DATASET_CORRUPT',
    'Corrupt IDX file "x.gz"',
    'expected 24 bytes',
    'found 10',
  );
  assertCmpError(() => readIdx(gzipSync(bytes), 'y.gz'), 'DATASET_CORRUPT', '"y.gz"', 'expected 24 bytes');
});

test('trailing bytes after the data are DATASET_CORRUPT', () => {
  const bytes = new Uint8Array([...writeIdx(IMAGES), 1, 2, 3]);
  assertCmpError(() => readIdx(bytes, 'trail'), 'DATASET_CORRUPT', '"trail"', '3 trailing bytes');
});

test('a bad magic number is DATASET_CORRUPT', () => {
  const bytes = writeIdx(IMAGES);
  bytes[1] = 0x42;
  assertCmpError(() => readIdx(bytes, 'magic'), 'DATASET_CORRUPT', '"magic"', 'bad magic');
  const text = new TextEncoder().encode('<html>404 Not Found</html>');
  assertCmpError(() => readIdx(text, 'page.html'), 'DATASET_CORRUPT', '"page.html"');
});

test('an unknown type byte, zero dimensions and a cut header are DATASET_CORRUPT', () => {
  const unknown = writeIdx(IMAGES);
  unknown[2] = 0x0a;
  assertCmpError(() => readIdx(unknown, 'type'), 'DATASET_CORRUPT', 'unknown element type 0x0a');
  assertCmpError(() => readIdx(new Uint8Array([0, 0, 8, 0]), 'dims'), 'DATASET_CORRUPT', '0 dimensions');
  assertCmpError(() => readIdx(writeIdx(IMAGES).subarray(0, 9), 'cut'), 'DATASET_CORRUPT', '3 dimensions');
  assertCmpError(() => readIdx(new Uint8Array(0), 'empty'), 'DATASET_CORRUPT', '0 bytes');
});

test('a broken gzip stream is DATASET_CORRUPT with a one-line message', () => {
  const gz = writeIdx(IMAGES, { gzip: true });
  assertCmpError(() => readIdx(gz.subarray(0, gz.length - 6), 'cut.gz'), 'DATASET_CORRUPT', '"cut.gz"', 'gzip');
  const flipped = gz.slice();
  flipped[3] = 0xff; // reserved flag bits set: zlib rejects the header
  assertCmpError(() => readIdx(flipped, 'flags.gz'), 'DATASET_CORRUPT', '"flags.gz"', 'gzip');
  const garbage = new Uint8Array([0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]);
  assertCmpError(() => readIdx(garbage, 'junk.gz'), 'DATASET_CORRUPT', '"junk.gz"', 'gzip stream is broken');
});

test('readIdxFile reads a file from disk and reports a missing one as DATASET_MISSING', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cmp-idx-'));
  try {
    const path = join(dir, 'a-idx3-ubyte.gz');
    writeFileSync(path, writeIdx(IMAGES, { gzip: true }));
    const back = await readIdxFile(path);
    assert.deepEqual(back.shape, [3, 2, 4]);
    assert.deepEqual([...back.data], [...IMAGES.data]);
    await assert.rejects(readIdxFile(join(dir, 'nope')), (err: unknown) => {
      assert.ok(isCmpError(err));
      assert.equal(err.code, 'DATASET_MISSING');
      assert.ok(err.message.includes(join(dir, 'nope')));
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeIdx rejects a shape that does not match the data, and a typed array of the wrong kind', () => {
  assertCmpError(
    () => writeIdx({ dtype: 'uint8', shape: [2, 3], data: new Uint8Array(5) }),
    'BAD_ARGUMENT',
    'holds 6 elements',
    'has 5',
  );
  const wrong = { dtype: 'uint8', shape: [2], data: new Float32Array(2) } as unknown as IdxArray;
  assertCmpError(() => writeIdx(wrong), 'BAD_ARGUMENT', 'Uint8Array', 'Float32Array');
  assertCmpError(() => writeIdx({ dtype: 'uint8', shape: [], data: new Uint8Array(1) }), 'BAD_ARGUMENT', '1 to 255');
});
