// Pruning a run folder end to end: score, remove groups, fine-tune, save; and GSS's removal of dead groups.

import { CmpError } from '../errors.js';
import { loadRun, saveRun, type PruneSummary, type Run } from '../core/run.js';
import type { ModelSpec } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { prunableLayers, unitsOf } from './gss.js';
import {
  applyPruning,
  pruneTensors,
  scoreGroups,
  weightCount,
  type KeepPlan,
  type PruneScope,
  type ScoreOptions,
} from './prune.js';
import { recalibrateBatchNorm, train, type TrainOptions, type TrainResult } from './train.js';

export interface PruneRunOptions extends ScoreOptions {
  sparsity: number;
  scope: PruneScope;
  /** Fine-tuning epochs after pruning (0: none). */
  retrain: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  out?: string;
  onTrainProgress?: TrainOptions['onProgress'];
}

export interface PruneRunResult extends TrainResult {
  spec: ModelSpec;
  pruning: PruneSummary;
}

/** Prunes the run in `dir` (or an already loaded run) and fine-tunes it; with `out`, saves the pruned run. */
export async function pruneRun(source: string | Run, data: Dataset, options: PruneRunOptions): Promise<PruneRunResult> {
  const run = typeof source === 'string' ? loadRun(source) : source;
  if (run.record.training.history.length === 0 && !run.record.pruning) {
    throw new CmpError(
      'RUN_INVALID',
      `Run ${run.dir} was never trained (no epochs recorded). Train it first with cmp train.`,
    );
  }
  const { spec, tensors, record } = await pruneTensors(run, data, options);
  const result = await train(spec, data, {
    epochs: options.retrain,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    seed: options.seed,
    initial: tensors,
    onProgress: options.onTrainProgress,
  });
  if (options.out) {
    saveRun(options.out, { cmpVersion: CMP_VERSION, spec, training: result.training, pruning: record }, result.tensors);
  }
  return { ...result, spec, pruning: record };
}

/**
 * After GSS training: removes the groups whose norm fell below `relativeThreshold` times the strongest group of their
 * layer (the lasso drove them to zero, so removing them changes almost nothing). Returns the plan it applied.
 */
export async function removeDeadGroups(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  data: Dataset,
  groupSize: number,
  relativeThreshold = 1e-2,
): Promise<{
  spec: ModelSpec;
  tensors: Map<string, Float32Array>;
  plan: KeepPlan;
  weightsBefore: number;
  weightsAfter: number;
}> {
  const scores = await scoreGroups(spec, tensors, data, { method: 'gss', groupSize, samplesPerClass: 0, bins: 0 });
  const plan: KeepPlan = new Map();
  for (const s of scores) {
    const max = Math.max(...s.scores);
    const keep: number[] = [];
    for (let u = 0; u < s.units; u++) if (s.scores[Math.floor(u / groupSize)] >= relativeThreshold * max) keep.push(u);
    plan.set(s.layer, keep);
  }
  const pruned = applyPruning(spec, tensors, plan);
  const recalibrated = await recalibrateBatchNorm(pruned.spec, pruned.tensors, data);
  return {
    spec: pruned.spec,
    tensors: recalibrated,
    plan,
    weightsBefore: weightCount(spec),
    weightsAfter: weightCount(pruned.spec),
  };
}

/** Units per prunable layer, for reports. */
export function layerWidths(spec: ModelSpec): Record<string, number> {
  return Object.fromEntries(prunableLayers(spec).map((l) => [l.name, unitsOf(l)]));
}
