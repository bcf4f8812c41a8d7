// A run folder: what training writes and export reads (model.json with spec and history, weights.bin with tensors).

import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CmpError } from '../errors.js';
import { parseSpec, type ModelSpec } from './spec.js';

/** One epoch of training as recorded in the run. */
export interface EpochRecord {
  epoch: number;
  loss: number;
  trainAccuracy: number;
  testAccuracy: number;
  /** Mask training: accuracy on the held-out samples, share of input units kept, the mask loss weight. */
  validationAccuracy?: number;
  keptFraction?: number;
  lambda?: number;
  durationMs: number;
}

/** How a run was trained: enough to reproduce it. */
export interface TrainingRecord {
  dataset: string;
  epochs: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  backend: string;
  trainCount: number;
  /** Samples at the end of the training split held out of training (validation for calibration). */
  validationCount?: number;
  testCount: number;
  durationMs: number;
  history: EpochRecord[];
  /** Test accuracy of the frozen (deployable) model at the end. */
  testAccuracy: number;
}

/** Where a tensor lives in weights.bin: float32 little-endian, `offset` in bytes. */
export interface TensorEntry {
  name: string;
  shape: number[];
  offset: number;
}

export interface RunRecord {
  format: 'cmp-run/1';
  cmpVersion: string;
  spec: ModelSpec;
  training: TrainingRecord;
  /** Present when the run was made by pruning another (see compress/prune.ts). */
  pruning?: PruneSummary;
  /** Present when cmp calibrate chose exit thresholds (see compress/calibrate.ts). */
  calibration?: CalibrationSummary;
  /** Present when the model has an input mask (see compress/mask.ts). */
  masking?: MaskingSummary;
  /** Present when cmp import made the run from another framework's model (see import/import-run.ts). */
  imported?: ImportSummary;
  tensors: TensorEntry[];
}

/** Where an imported run came from, and how it compared with its source on test data. */
export interface ImportSummary {
  /** The model file as given to cmp import. */
  source: string;
  format: 'onnx' | 'tfjs-layers' | 'tfjs-graph';
  /** The producer the file names (e.g. "pytorch 2.0.0"). */
  producer: string;
  /** ONNX: the default-domain opset. */
  opset?: number;
  /** Source nodes (or layers) read. */
  nodes: number;
  /** The source nodes each cmp layer was built from. */
  layers: Record<string, string[]>;
  /** Source ops left out on purpose, and why. */
  notes: string[];
  /** With --data: the source model (in its own runtime) and the imported one on the same test images. */
  check?: ImportCheck;
}

/** An imported model and its source on the same test images. */
export interface ImportCheck {
  dataset: string;
  samples: number;
  /** The runtime that ran the source model: onnxruntime-node or TensorFlow.js. */
  sourceRuntime: string;
  sourceAccuracy: number;
  importedAccuracy: number;
  /** Largest difference between the source's outputs and the imported model's (softmax applied where the source did). */
  maxAbsDiff: number;
}

/** One saved point of a learned mask's accuracy/bandwidth trade-off: a run folder of its own, under the run. */
export interface MaskCheckpointRecord {
  /** Relative to the run folder, e.g. checkpoints/03. */
  dir: string;
  epoch: number;
  lambda: number;
  keptUnits: number;
  keptFraction: number;
  /** Mean cmp-select/1 frame bytes per instance on the validation data. */
  frameBytes: number;
  validationAccuracy: number;
  testAccuracy: number;
}

/** How the input mask was made and, for learned masks, the checkpoints a user picks a trade-off from. */
export interface MaskingSummary {
  kind: 'static' | 'dynamic';
  granularity: string;
  source: 'learned' | 'importance' | 'random';
  values: 'uint8' | 'float16' | 'float32';
  units: number;
  /** Bytes of the whole input at the same value type: the unmasked reference. */
  fullInputBytes: number;
  keptUnits: number;
  keptFraction: number;
  frameBytes: number;
  schedule?: { start: number; growth: number; patience: number; tolerance: number; warmupEpochs: number };
  /** The checkpoint or run this one fine-tuned with its mask fixed. */
  finetunedFrom?: string;
  checkpoints: MaskCheckpointRecord[];
}

/** One operating point of an early-exit model on validation data. */
export interface ExitOperatingPoint {
  thresholds: number[];
  accuracy: number;
  meanLatencyMs: number;
  /** Share of samples leaving at each exit, then at the final classifier. */
  exitShares: number[];
}

/** What calibration measured and chose. */
export interface CalibrationSummary {
  validationCount: number;
  /** Mean batch-1 latency of each stage in onnxruntime-node on the calibrating machine, milliseconds. */
  stageLatencyMs: number[];
  goal: { targetAccuracy: number } | { latencyBudgetMs: number } | { thresholds: number[] };
  chosen: ExitOperatingPoint;
  /** Full network on the same data: the reference point. */
  full: ExitOperatingPoint;
  /** Operating points no other beats in both accuracy and mean latency, fastest first. */
  pareto: ExitOperatingPoint[];
}

/** How a pruned run came about. */
export interface PruneSummary {
  method: string;
  scope: string;
  /** Absent: whole units; connection: blocks of weights were zeroed (weightsAfter counts the weights not zero). */
  granularity?: 'connection';
  sparsityTarget: number;
  groupSize: number;
  samplesPerClass?: number;
  from: string;
  weightsBefore: number;
  weightsAfter: number;
  kept: Record<string, { kept: number; of: number }>;
}

/** A loaded run: its record and its tensors by name (dense weights [in, out], conv weights OIHW). */
export interface Run {
  dir: string;
  record: RunRecord;
  tensors: Map<string, Float32Array>;
}

export const RUN_MODEL_FILE = 'model.json';
export const RUN_WEIGHTS_FILE = 'weights.bin';

/** Writes a run folder. Files are written beside and renamed, so an interrupted save leaves the old run intact. */
export function saveRun(
  dir: string,
  record: Omit<RunRecord, 'format' | 'tensors'>,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
): void {
  const entries: TensorEntry[] = [];
  let bytes = 0;
  for (const [name, t] of tensors) {
    entries.push({ name, shape: t.shape, offset: bytes });
    bytes += t.data.length * 4;
  }
  const blob = Buffer.alloc(bytes);
  let i = 0;
  for (const t of tensors.values()) {
    const base = entries[i++].offset;
    for (let k = 0; k < t.data.length; k++) blob.writeFloatLE(t.data[k], base + 4 * k);
  }
  const full: RunRecord = { format: 'cmp-run/1', ...record, tensors: entries };
  try {
    makeFolder(dir);
    writeFileSync(join(dir, `${RUN_WEIGHTS_FILE}.tmp`), blob);
    writeFileSync(join(dir, `${RUN_MODEL_FILE}.tmp`), JSON.stringify(full, null, 2) + '\n');
    renameSync(join(dir, `${RUN_WEIGHTS_FILE}.tmp`), join(dir, RUN_WEIGHTS_FILE));
    renameSync(join(dir, `${RUN_MODEL_FILE}.tmp`), join(dir, RUN_MODEL_FILE));
  } catch (err) {
    throw new CmpError(
      'IO',
      `Cannot write the run to ${dir}: ${(err as Error).message}. Check the path and free space.`,
      {
        cause: err,
      },
    );
  }
}

/** What a folder cmp wrote as a run may hold: the run, its unfinished writes, mask checkpoints. */
const RUN_ENTRIES: ReadonlySet<string> = new Set([
  RUN_MODEL_FILE,
  RUN_WEIGHTS_FILE,
  `${RUN_MODEL_FILE}.tmp`,
  `${RUN_WEIGHTS_FILE}.tmp`,
  'checkpoints',
]);

/**
 * Checks a command's --out run folder before any work: it must be a new folder that can be made, an empty one, or
 * one cmp wrote as a run, which is replaced only with `force`. A folder holding anything else is never written into.
 */
export function prepareRunOut(dir: string, force: boolean): void {
  if (dir.trim() === '')
    throw new CmpError('BAD_FLAG', `--out is empty: give the run folder to write, e.g. --out runs/new-run.`);
  let entries: string[] | undefined;
  try {
    if (!statSync(dir).isDirectory()) {
      throw new CmpError(
        'BAD_FLAG',
        `--out ${dir} is a file, not a folder. Give a new folder for the run, e.g. --out runs/new-run.`,
      );
    }
    entries = readdirSync(dir);
  } catch (err) {
    if (err instanceof CmpError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new CmpError(
        'BAD_FLAG',
        `--out ${dir} cannot be read (${(err as NodeJS.ErrnoException).code}). Give a folder you can read and write.`,
      );
    }
  }
  if (entries && entries.length > 0) {
    if (!entries.every((e) => RUN_ENTRIES.has(e))) {
      throw new CmpError(
        'BAD_FLAG',
        `--out ${dir} holds files other than a run's (${entries.length} entries); cmp writes a run only into a new or empty folder, or over a run. Choose another folder.`,
      );
    }
    if (!force) {
      throw new CmpError(
        'BAD_FLAG',
        `--out ${dir} already holds a run. Pass --force to replace it, or choose another folder.`,
      );
    }
  }
  if (entries) return;
  // A new folder: made and removed again now, so that a path that cannot be made fails before the work, and a
  // command that fails later leaves nothing behind.
  try {
    const made = makeFolder(dir);
    if (made !== undefined) rmSync(made, { recursive: true });
  } catch (err) {
    throw new CmpError(
      'BAD_FLAG',
      `--out ${dir} cannot be created (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}). Give a folder you can write.`,
      { cause: err },
    );
  }
}

/**
 * mkdir -p, one level at a time (Node's recursive mkdirSync never returns on some paths: /proc/x loops on ENOENT);
 * returns the topmost folder it made, undefined when `dir` was there.
 */
function makeFolder(dir: string): string | undefined {
  try {
    mkdirSync(dir);
    return dir;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && statSync(dir).isDirectory()) return undefined;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw err;
    const made = makeFolder(dirname(dir));
    mkdirSync(dir);
    return made ?? dir;
  }
}

/** Reads a run folder written by saveRun; anything missing or inconsistent is one RUN_INVALID line. */
export function loadRun(dir: string): Run {
  const bad = (problem: string, cause?: unknown): CmpError =>
    new CmpError('RUN_INVALID', `Run folder ${dir} ${problem}. Train one with: cmp train --out ${dir}`, { cause });
  let text: string;
  let blob: Buffer;
  try {
    text = readFileSync(join(dir, RUN_MODEL_FILE), 'utf8');
    blob = readFileSync(join(dir, RUN_WEIGHTS_FILE));
  } catch (err) {
    throw bad(`has no readable ${RUN_MODEL_FILE} and ${RUN_WEIGHTS_FILE}`, err);
  }
  let record: RunRecord;
  try {
    record = JSON.parse(text) as RunRecord;
  } catch (err) {
    throw bad(`has a ${RUN_MODEL_FILE} that is not JSON`, err);
  }
  if (record.format !== 'cmp-run/1' || !Array.isArray(record.tensors)) throw bad('is not a cmp run (format cmp-run/1)');
  record.spec = parseSpec(record.spec, join(dir, RUN_MODEL_FILE));
  const tensors = new Map<string, Float32Array>();
  for (const entry of record.tensors) {
    const count = entry.shape.reduce((a, b) => a * b, 1);
    if (!Number.isInteger(entry.offset) || entry.offset < 0 || entry.offset + count * 4 > blob.length) {
      throw bad(`has a ${RUN_WEIGHTS_FILE} too short for tensor "${entry.name}"`);
    }
    const data = new Float32Array(count);
    for (let k = 0; k < count; k++) data[k] = blob.readFloatLE(entry.offset + 4 * k);
    tensors.set(entry.name, data);
  }
  return { dir, record, tensors };
}

/** How a user picks a learned mask's trade-off: the most accurate within a kept share or a byte budget, or the leanest above an accuracy. */
export type CheckpointChoice = { keep: number } | { minAccuracy: number } | { maxBytes: number };

/**
 * The folder of the mask checkpoint of `run` that `choice` picks: with `keep`, the best validation accuracy among those
 * keeping at most that share of units; with `maxBytes`, the best validation accuracy among those whose frame is at
 * most that many bytes per instance; with `minAccuracy`, the fewest bytes per instance among those at least that
 * accurate on validation data. Nothing qualifying is one BAD_FLAG line naming what the run offers.
 */
export function chooseMaskCheckpoint(
  run: Run,
  choice: CheckpointChoice,
): { dir: string; checkpoint: MaskCheckpointRecord } {
  const checkpoints = run.record.masking?.checkpoints ?? [];
  if (checkpoints.length === 0) {
    throw new CmpError(
      'BAD_FLAG',
      `Run ${run.dir} has no mask checkpoints to choose from. Train one with cmp train --mask static|dynamic, or drop --keep, --max-bytes and --min-accuracy.`,
    );
  }
  let best: MaskCheckpointRecord | undefined;
  if ('minAccuracy' in choice) {
    for (const c of checkpoints) {
      if (c.validationAccuracy < choice.minAccuracy) continue;
      if (!best || c.frameBytes < best.frameBytes) best = c;
    }
    if (!best) {
      const top = Math.max(...checkpoints.map((c) => c.validationAccuracy));
      throw new CmpError(
        'BAD_FLAG',
        `No checkpoint of ${run.dir} reaches ${(choice.minAccuracy * 100).toFixed(2)}% validation accuracy (the best reaches ${(top * 100).toFixed(2)}%). Use a lower --min-accuracy.`,
      );
    }
    return { dir: join(run.dir, best.dir), checkpoint: best };
  }
  const fits = (c: MaskCheckpointRecord): boolean =>
    'keep' in choice ? c.keptFraction <= choice.keep + 1e-9 : c.frameBytes <= choice.maxBytes + 1e-9;
  for (const c of checkpoints) if (fits(c) && (!best || c.validationAccuracy > best.validationAccuracy)) best = c;
  if (!best) {
    if ('keep' in choice) {
      const least = Math.min(...checkpoints.map((c) => c.keptFraction));
      throw new CmpError(
        'BAD_FLAG',
        `No checkpoint of ${run.dir} keeps at most ${(choice.keep * 100).toFixed(1)}% of the input (the leanest keeps ${(least * 100).toFixed(1)}%). Use --keep ${Math.ceil(least * 1000) / 1000} or more, or train longer.`,
      );
    }
    const least = Math.min(...checkpoints.map((c) => c.frameBytes));
    throw new CmpError(
      'BAD_FLAG',
      `No checkpoint of ${run.dir} sends at most ${choice.maxBytes} bytes per instance (the leanest sends ${least.toFixed(1)}). Use --max-bytes ${Math.ceil(least * 10) / 10} or more, or train longer.`,
    );
  }
  return { dir: join(run.dir, best.dir), checkpoint: best };
}
