// Exporting a run folder to an ONNX file on disk.

import { renameSync, writeFileSync } from 'node:fs';
import { CmpError } from '../errors.js';
import { freeze } from '../core/frozen.js';
import { loadRun } from '../core/run.js';
import { stagePath } from '../core/manifest.js';
import { exportOnnx, type ExportResult } from './export-onnx.js';

/** Freezes the run in `dir` and writes its ONNX file to `out` (via a temporary file, so `out` is never half-written). */
export function exportRun(dir: string, out: string): ExportResult {
  const run = loadRun(dir);
  const frozen = freeze(run.record.spec, run.tensors);
  const result = exportOnnx(frozen, {
    dataset: run.record.training.dataset,
    epochs: run.record.training.epochs,
    testAccuracy: run.record.training.testAccuracy,
  });
  const files: [string, Uint8Array][] = [
    [out, result.bytes],
    ...result.stages.map((bytes, k): [string, Uint8Array] => [stagePath(out, k + 1), bytes]),
  ];
  try {
    for (const [path, bytes] of files) writeFileSync(`${path}.tmp`, bytes);
    for (const [path] of files) renameSync(`${path}.tmp`, path);
  } catch (err) {
    throw new CmpError('IO', `Cannot write ${out}: ${(err as Error).message}. Check the path.`, { cause: err });
  }
  return result;
}
