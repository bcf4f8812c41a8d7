// Exporting a run folder to an ONNX file on disk.

import { renameSync, writeFileSync } from 'node:fs';
import { CmpError } from '../errors.js';
import { freeze } from '../core/frozen.js';
import {
  chooseMaskCheckpoint,
  loadRun,
  type CheckpointChoice,
  type MaskCheckpointRecord,
  type Run,
} from '../core/run.js';
import { selectorPath, stagePath } from '../core/manifest.js';
import { exportOnnx, type ExportResult } from './export-onnx.js';

/**
 * Freezes the run in `dir` (or the mask checkpoint of it that `choice` picks) and writes its ONNX file to `out`, with
 * stage and selector files beside it; each is written to a temporary file first, so none is ever half-written.
 */
export function exportRun(
  dir: string,
  out: string,
  choice?: CheckpointChoice,
): ExportResult & { checkpoint?: MaskCheckpointRecord & { path: string } } {
  let run = loadRun(dir);
  let checkpoint: (MaskCheckpointRecord & { path: string }) | undefined;
  if (choice) {
    const chosen = chooseMaskCheckpoint(run, choice);
    checkpoint = { ...chosen.checkpoint, path: chosen.dir };
    run = loadRun(chosen.dir);
  }
  const result = exportLoadedRun(run);
  const files: [string, Uint8Array][] = [
    [out, result.bytes],
    ...result.stages.map((bytes, k): [string, Uint8Array] => [stagePath(out, k + 1), bytes]),
    ...(result.selector ? [[selectorPath(out), result.selector] as [string, Uint8Array]] : []),
  ];
  try {
    for (const [path, bytes] of files) writeFileSync(`${path}.tmp`, bytes);
    for (const [path] of files) renameSync(`${path}.tmp`, path);
  } catch (err) {
    throw new CmpError('IO', `Cannot write ${out}: ${(err as Error).message}. Check the path.`, { cause: err });
  }
  return { ...result, ...(checkpoint ? { checkpoint } : {}) };
}

/** The ONNX file of the run in `dir`, in memory: what cmp export writes, for commands that take a run folder. */
export function exportRunInMemory(dir: string): ExportResult {
  return exportLoadedRun(loadRun(dir));
}

function exportLoadedRun(run: Run): ExportResult {
  const frozen = freeze(run.record.spec, run.tensors);
  return exportOnnx(frozen, {
    dataset: run.record.training.dataset,
    epochs: run.record.training.epochs,
    testAccuracy: run.record.training.testAccuracy,
  });
}
