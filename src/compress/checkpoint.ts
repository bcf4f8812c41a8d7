// Training checkpoints: after every epoch, what a training needs to carry on exactly where it stopped (parameters,
// the optimizer's state, the generator's state, the history), so a long training can span sessions.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EpochRecord, MaskCheckpointRecord } from '../core/run.js';
import type { LambdaScheduleState } from './mask.js';

const HEADER = 'checkpoint.json';
const BLOB = 'checkpoint.bin';

/** An optimizer's step count and buffers (moments, momentum), by name. */
export interface OptimizerState {
  steps: number;
  tensors: Map<string, Float32Array>;
}

export interface Checkpoint {
  /** What the training was asked to do; a checkpoint of another training is never resumed. */
  key: string;
  /** Epochs done. */
  epoch: number;
  step: number;
  rngState: number;
  history: EpochRecord[];
  durationMs: number;
  optimizer: OptimizerState;
  /** Parameters and batch-norm statistics, by name. */
  params: Map<string, Float32Array>;
  /** Mask training's own state: its lambda schedule, the last mask checkpoint's figures, the checkpoints made. */
  masking?: MaskTrainingState;
}

export interface MaskTrainingState {
  schedule: LambdaScheduleState;
  last?: { validationAccuracy: number; keptFraction: number };
  made: Omit<MaskCheckpointRecord, 'dir'>[];
}

interface Header extends Omit<Checkpoint, 'optimizer' | 'params'> {
  format: 'cmp-checkpoint/1';
  optimizerSteps: number;
  /** Name and length of each array in the blob, in order: parameters, then optimizer buffers. */
  arrays: { name: string; length: number; optimizer: boolean }[];
}

/** A digest of what shapes a training: any JSON-able description, and the tensors it starts from. */
export function checkpointKey(description: unknown, initial?: Map<string, Float32Array>): string {
  const hash = createHash('sha256').update(JSON.stringify(description));
  for (const [name, t] of [...(initial ?? [])].sort(([a], [b]) => (a < b ? -1 : 1))) {
    hash.update(name).update(new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  }
  return hash.digest('hex');
}

/** Writes the checkpoint into `dir` (blob first, both renamed into place, so a stop mid-write leaves the last one). */
export function saveCheckpoint(dir: string, checkpoint: Checkpoint): void {
  mkdirSync(dir, { recursive: true });
  const { optimizer, params, ...rest } = checkpoint;
  const arrays = [
    ...[...params].map(([name, t]) => ({ name, t, optimizer: false })),
    ...[...optimizer.tensors].map(([name, t]) => ({ name, t, optimizer: true })),
  ];
  const blob = new Float32Array(arrays.reduce((a, x) => a + x.t.length, 0));
  let at = 0;
  for (const { t } of arrays) {
    blob.set(t, at);
    at += t.length;
  }
  const header: Header = {
    format: 'cmp-checkpoint/1',
    ...rest,
    optimizerSteps: optimizer.steps,
    arrays: arrays.map(({ name, t, optimizer: o }) => ({ name, length: t.length, optimizer: o })),
  };
  writeFileSync(join(dir, `${BLOB}.tmp`), new Uint8Array(blob.buffer));
  writeFileSync(join(dir, `${HEADER}.tmp`), JSON.stringify(header));
  renameSync(join(dir, `${BLOB}.tmp`), join(dir, BLOB));
  renameSync(join(dir, `${HEADER}.tmp`), join(dir, HEADER));
}

/** The checkpoint in `dir` if it belongs to the training `key` describes and is whole; otherwise undefined. */
export function loadCheckpoint(dir: string, key: string): Checkpoint | undefined {
  if (!existsSync(join(dir, HEADER)) || !existsSync(join(dir, BLOB))) return undefined;
  let header: Header;
  try {
    header = JSON.parse(readFileSync(join(dir, HEADER), 'utf8')) as Header;
  } catch {
    return undefined;
  }
  if (header.format !== 'cmp-checkpoint/1' || header.key !== key) return undefined;
  const bytes = readFileSync(join(dir, BLOB));
  const total = header.arrays.reduce((a, x) => a + x.length, 0);
  if (bytes.byteLength !== total * 4) return undefined;
  const blob = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const params = new Map<string, Float32Array>();
  const tensors = new Map<string, Float32Array>();
  let at = 0;
  for (const { name, length, optimizer } of header.arrays) {
    (optimizer ? tensors : params).set(name, blob.slice(at, at + length));
    at += length;
  }
  return {
    key: header.key,
    epoch: header.epoch,
    step: header.step,
    rngState: header.rngState,
    history: header.history,
    durationMs: header.durationMs,
    optimizer: { steps: header.optimizerSteps, tensors },
    params,
    ...(header.masking ? { masking: header.masking } : {}),
  };
}

/** Removes the checkpoint once its training has finished. */
export function clearCheckpoint(dir: string): void {
  for (const file of [HEADER, BLOB]) rmSync(join(dir, file), { force: true });
}
