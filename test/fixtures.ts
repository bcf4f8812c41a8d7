// Trained models and firmware shared by test files: each is built once into a cache keyed by its spec and the sources.

import { createHash } from 'node:crypto';
import {
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { DEFAULT_MASK_TRAINING, trainRun, type TrainRunOptions } from '../src/compress/train-run.js';
import type { TrainResult } from '../src/compress/train.js';
import { freeze } from '../src/core/frozen.js';
import { loadRun, type MaskingSummary, type PruneSummary } from '../src/core/run.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { exportRun } from '../src/export/export-run.js';
import { buildFirmware, type FirmwareBuild } from '../src/link/firmware-build.js';
import { fashionMnist, ROOT } from './helpers.js';

/**
 * The cache: $CMP_TEST_FIXTURES, else test-artifacts/fixtures (git-ignored). Safe to delete at any time; an entry only
 * ever appears whole (built under a temporary name, then renamed), and a stale one has another key.
 */
export const FIXTURE_DIR = process.env.CMP_TEST_FIXTURES ?? join(ROOT, 'test-artifacts', 'fixtures');

/** The slice of a real data set a fixture trains and scores on. */
export interface FixtureData {
  dataset: 'fashion-mnist' | 'mnist';
  limitTrain: number;
  limitTest: number;
}

/** A model to train: the data slice and trainRun's options (deterministic: the seed is part of them). */
export interface ModelFixture {
  data: FixtureData;
  train: Omit<TrainRunOptions, 'out' | 'from' | 'onProgress' | 'initial'>;
}

/** What trainRun returns, read back from the cache, plus the cached run folder (read-only: copy it to change it). */
export type TrainedFixture = TrainResult & { pruning?: PruneSummary; masking?: MaskingSummary; runDir: string };

const FM_1000 = { dataset: 'fashion-mnist', limitTrain: 1000, limitTest: 300 } as const;
const FM_2000 = { dataset: 'fashion-mnist', limitTrain: 2000, limitTest: 200 } as const;
const ONE_EPOCH = { epochs: 1, batchSize: 50, learningRate: 0.002 } as const;

/** A DAB MLP with one early exit: the browser site, the Electron app, the rpi devices, bitwasm's stage files. */
export const EXIT_MLP: ModelFixture = {
  data: FM_1000,
  train: {
    arch: 'mlp',
    widths: [32, 32],
    exits: [1],
    binarizeWeights: 'dab',
    binarizeActivations: 'dab',
    ...ONE_EPOCH,
    seed: 3,
  },
};

/** A DAB MLP without exits: the firmware under QEMU, cmp deploy --target mcu, the dashboard's bitwasm card. */
export const DAB_MLP: ModelFixture = {
  data: FM_2000,
  train: { arch: 'mlp', widths: [64, 64], binarizeWeights: 'dab', binarizeActivations: 'dab', ...ONE_EPOCH, seed: 11 },
};

/** A float MLP whose random static input mask keeps half the pixels: a device's link carries half the input. */
export const MASKED_MLP: ModelFixture = {
  data: FM_1000,
  train: {
    arch: 'mlp',
    widths: [32],
    binarizeWeights: 'none',
    binarizeActivations: 'none',
    ...ONE_EPOCH,
    seed: 2,
    mask: {
      kind: 'static',
      granularity: { kind: 'pixel' },
      source: 'random',
      keep: 0.5,
      values: 'uint8',
      ...DEFAULT_MASK_TRAINING,
    },
  },
};

/** A DAB MLP with one early exit and a random static input mask: the ARM devices' model (test/e2e/rpi-arm.test.ts). */
export const EXIT_MASKED_MLP: ModelFixture = {
  data: FM_1000,
  train: {
    ...EXIT_MLP.train,
    // Half the pixels and binary weights learn slowly: one epoch at 0.002 leaves it near chance (27%), this 50%.
    epochs: 2,
    learningRate: 0.005,
    seed: 5,
    mask: { ...(MASKED_MLP.train.mask as NonNullable<ModelFixture['train']['mask']>) },
  },
};

/**
 * A wide float MLP (1536-1536, a 14 MB file): a model no device has seen yet, whose upload lasts long enough to be
 * cut off mid-way even though a redeploy sends only the model (the runtimes are linked from the device's release).
 */
export const WIDE_FLOAT_MLP: ModelFixture = {
  data: FM_1000,
  train: {
    arch: 'mlp',
    widths: [1536, 1536],
    binarizeWeights: 'none',
    binarizeActivations: 'none',
    ...ONE_EPOCH,
    seed: 1,
  },
};

/** The smallest float MLP: nothing for bitwasm to race on, and a release no device has seen yet. */
export const FLOAT_MLP: ModelFixture = {
  data: FM_1000,
  train: { arch: 'mlp', widths: [16], binarizeWeights: 'none', binarizeActivations: 'none', ...ONE_EPOCH, seed: 1 },
};

/** One of the binarization cases that export and bitwasm both check against onnxruntime (same data, same seed). */
export function binarizedCase(
  arch: 'mlp' | 'lenet',
  weights: TrainRunOptions['binarizeWeights'],
  activations: TrainRunOptions['binarizeActivations'],
  keepFloat?: string[],
  int8?: string[],
): ModelFixture {
  return {
    data: FM_1000,
    train: {
      arch,
      binarizeWeights: weights,
      binarizeActivations: activations,
      ...(keepFloat ? { keepFloat } : {}),
      ...(int8 ? { int8 } : {}),
      widths: arch === 'mlp' ? [96, 64] : [64],
      ...ONE_EPOCH,
      seed: 7,
    },
  };
}

/** The fixture data slice, loaded once per process; a missing data set fails loudly with what to install. */
export async function fixtureData(data: FixtureData): Promise<Dataset> {
  const key = JSON.stringify(data);
  let loading = loadedData.get(key);
  if (!loading) {
    loading =
      data.dataset === 'fashion-mnist'
        ? fashionMnist(data.limitTrain, data.limitTest)
        : loadDataset(data.dataset, { limitTrain: data.limitTrain, limitTest: data.limitTest });
    loadedData.set(key, loading);
  }
  return loading;
}
const loadedData = new Map<string, Promise<Dataset>>();

/** Builds and reads back cached fixtures under one folder. */
export class FixtureCache {
  private sourcesHash?: string;
  private firmwareHash?: string;
  /** Folders this process already has (or is building), so its own tests never wait on its own lock. */
  private readonly ready = new Map<string, Promise<string>>();

  constructor(readonly root: string) {}

  /** The model `fixture` describes, trained here the first time and read from the cache after. */
  async model(fixture: ModelFixture): Promise<TrainedFixture> {
    const key = `model-${hash(stableJson({ fixture, sources: this.sources() }))}`;
    const dir = await this.once(key, async (tmp) => {
      await trainRun(await fixtureData(fixture.data), { ...fixture.train, out: join(tmp, 'run') });
    });
    const runDir = join(dir, 'run');
    const run = loadRun(runDir);
    const { spec, training } = run.record;
    const tensors = new Map(
      run.record.tensors.map((e) => [e.name, { shape: e.shape, data: run.tensors.get(e.name) as Float32Array }]),
    );
    return {
      spec,
      tensors,
      frozen: freeze(spec, run.tensors),
      training,
      testAccuracy: training.testAccuracy,
      ...(run.record.pruning ? { pruning: run.record.pruning } : {}),
      ...(run.record.masking ? { masking: run.record.masking } : {}),
      runDir,
    };
  }

  /** The fixture's run folder copied to `out` (a run of one's own, e.g. to calibrate). */
  async runFolder(fixture: ModelFixture, out: string): Promise<string> {
    cpSync((await this.model(fixture)).runDir, out, { recursive: true });
    return out;
  }

  /** What `cmp export` writes for the fixture: `path` and its stage and selector files. */
  async onnx(fixture: ModelFixture, path: string): Promise<string> {
    exportRun((await this.model(fixture)).runDir, path);
    return path;
  }

  /** The firmware for `board`, built here the first time and read from the cache after. */
  async firmware(board = 'mps2-an385'): Promise<FirmwareBuild> {
    const key = `firmware-${board}-${hash(this.firmwareSources())}`;
    const dir = await this.once(key, async (tmp) => {
      const build = await buildFirmware({ board, outDir: join(tmp, 'build') });
      writeFileSync(join(tmp, 'firmware.json'), JSON.stringify({ ...build, elfPath: relative(tmp, build.elfPath) }));
    });
    // Not make again: a source touched since (same content, same key) would rebuild inside the shared folder.
    const build = JSON.parse(readFileSync(join(dir, 'firmware.json'), 'utf8')) as FirmwareBuild;
    return { ...build, elfPath: join(dir, build.elfPath) };
  }

  /**
   * The folder of `key`, built by `build` into a temporary folder and renamed into place when missing. One process
   * builds at a time (a lock file with its pid); the others wait for it, and take over when it died.
   */
  private once(key: string, build: (tmp: string) => Promise<void>): Promise<string> {
    let ready = this.ready.get(key);
    if (!ready) {
      ready = this.buildOnce(key, build);
      this.ready.set(key, ready);
      // A failed build is not remembered: the next test that needs it tries again (and reports its own failure).
      ready.catch(() => this.ready.delete(key));
    }
    return ready;
  }

  private async buildOnce(key: string, build: (tmp: string) => Promise<void>): Promise<string> {
    const dir = join(this.root, key);
    const done = join(dir, 'complete');
    const lock = `${dir}.lock`;
    mkdirSync(this.root, { recursive: true });
    for (;;) {
      if (existsSync(done)) return dir;
      let fd: number;
      try {
        fd = openSync(lock, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        if (lockIsStale(lock)) rmSync(lock, { force: true });
        else await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      try {
        writeSync(fd, String(process.pid));
        closeSync(fd);
        if (existsSync(done)) return dir;
        // Whatever is there without its completion mark was left half-built by a process that died, and so was any
        // temporary folder of this key: only the lock holder builds.
        for (const name of readdirSync(this.root))
          if (name === key || name.startsWith(`${key}.tmp-`))
            rmSync(join(this.root, name), { recursive: true, force: true });
        const tmp = `${dir}.tmp-${process.pid}`;
        mkdirSync(tmp);
        await build(tmp);
        closeSync(openSync(join(tmp, 'complete'), 'w'));
        renameSync(tmp, dir);
        return dir;
      } finally {
        rmSync(lock, { force: true });
      }
    }
  }

  /** Everything a trained model depends on: cmp's sources, the locked dependencies and this file. */
  private sources(): string {
    this.sourcesHash ??= hash(
      [
        ...filesUnder(join(ROOT, 'src')),
        join(ROOT, 'package-lock.json'),
        join(ROOT, 'test', 'fixtures.ts'),
        join(ROOT, 'test', 'helpers.ts'),
      ]
        .map((f) => `${relative(ROOT, f)}\0${hash(readFileSync(f))}`)
        .join('\n'),
    );
    return this.sourcesHash;
  }

  private firmwareSources(): string {
    const root = join(ROOT, 'firmware-bridge');
    this.firmwareHash ??= hash(
      filesUnder(root, ['build'])
        .map((f) => `${relative(root, f)}\0${hash(readFileSync(f))}`)
        .join('\n'),
    );
    return this.firmwareHash;
  }
}

/** The cache every test file shares. */
export const fixtures = new FixtureCache(FIXTURE_DIR);

/** A lock whose process has ended, or that is older than any build takes. */
function lockIsStale(lock: string): boolean {
  try {
    const pid = Number(readFileSync(lock, 'utf8'));
    if (Date.now() - statSync(lock).mtimeMs > 30 * 60_000) return true;
    if (!Number.isInteger(pid) || pid <= 0) return false; // just created; its pid follows
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH' || (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

function filesUnder(dir: string, skip: string[] = []): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    if (skip.includes(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path, skip));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function hash(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 20);
}

/** JSON with object keys sorted, so the same options give the same key whatever order they were written in. */
function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}
