// Exporting a run folder to an ONNX file on disk.

import { renameSync, writeFileSync } from 'node:fs';
import { CmpError } from '../errors.js';
import { freeze } from '../core/frozen.js';
import { loadRun } from '../core/run.js';
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
  try {
    writeFileSync(`${out}.tmp`, result.bytes);
    renameSync(`${out}.tmp`, out);
  } catch (err) {
    throw new CmpError('IO', `Cannot write ${out}: ${(err as Error).message}. Check the path.`, { cause: err });
  }
  return result;
}
