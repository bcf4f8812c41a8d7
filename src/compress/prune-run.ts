// Pruning a run folder end to end: score, remove groups, fine-tune, save; and GSS's removal of dead groups.

import { CmpError } from '../errors.js';
import { freeze } from '../core/frozen.js';
import { loadRun, saveRun, type PruneSummary, type Run } from '../core/run.js';
import { isWeightLayer, type BinarizeMode, type ModelSpec } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { prunableLayers, unitsOf } from './gss.js';
import {
  applyPruning,
  pruneTensors,
  scoreGroups,
  weightCount,
  type GroupScores,
  type KeepPlan,
  type PruneGranularity,
  type PruneScope,
  type ScoreOptions,
} from './prune.js';
import { recalibrateBatchNorm, train, type TrainOptions, type TrainResult } from './train.js';

export interface PruneRunOptions extends ScoreOptions {
  sparsity: number;
  scope: PruneScope;
  /** Whole units (default) or the paper's blocks of connections, held at zero while fine-tuning. */
  granularity?: PruneGranularity;
  /** Fine-tuning epochs after pruning (0: none). */
  retrain: number;
  batchSize: number;
  learningRate: number;
  seed: number;
  out?: string;
  onTrainProgress?: TrainOptions['onProgress'];
  /** Binarize the weights of every weight layer during fine-tuning (prune, then binarize). */
  binarizeWeights?: BinarizeMode;
  /** Weight layers whose weights `sparsity` counts (default: all). */
  counted?: string[];
  /** Group scores of this run computed earlier (skips scoring). */
  scores?: GroupScores[];
  /** Fine-tuning's optimizer, dropout and held-out samples (see TrainOptions). */
  sgd?: TrainOptions['sgd'];
  dropout?: number;
  validationCount?: number;
  /** Keep fine-tuning's checkpoints here, so a stopped prune resumes (see TrainOptions.checkpointDir). */
  checkpointDir?: string;
  /** Fine-tune against the run before pruning as a teacher (see TrainOptions.distill). */
  distill?: { weight: number; temperature: number };
}

export interface PruneRunResult extends TrainResult {
  spec: ModelSpec;
  pruning: PruneSummary;
  /** The group scores the plan came from. */
  scores: GroupScores[];
}

/** Prunes the run in `dir` (or an already loaded run) and fine-tunes it; with `out`, saves the pruned run. */
export async function pruneRun(source: string | Run, data: Dataset, options: PruneRunOptions): Promise<PruneRunResult> {
  const run = typeof source === 'string' ? loadRun(source) : source;
  if (run.record.training.history.length === 0 && !run.record.pruning && !run.record.imported) {
    throw new CmpError(
      'RUN_INVALID',
      `Run ${run.dir} was never trained (no epochs recorded). Train it first with cmp train.`,
    );
  }
  const pruned = await pruneTensors(run, data, options);
  const { tensors, record } = pruned;
  const mode = options.binarizeWeights;
  const spec: ModelSpec = mode
    ? {
        ...pruned.spec,
        layers: pruned.spec.layers.map((l) =>
          isWeightLayer(l) ? { ...l, binarize: { ...l.binarize, weights: mode } } : l,
        ),
      }
    : pruned.spec;
  const result = await train(spec, data, {
    epochs: options.retrain,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    seed: options.seed,
    initial: tensors,
    onProgress: options.onTrainProgress,
    sgd: options.sgd,
    dropout: options.dropout,
    validationCount: options.validationCount,
    weightMasks: pruned.weightMasks,
    checkpointDir: options.checkpointDir,
    ...(options.distill ? { distill: { ...options.distill, teacher: freeze(run.record.spec, run.tensors) } } : {}),
  });
  if (options.out) {
    saveRun(options.out, { cmpVersion: CMP_VERSION, spec, training: result.training, pruning: record }, result.tensors);
  }
  return { ...result, spec, pruning: record, scores: pruned.scores };
}

/**
 * After GSS training: removes the groups the lasso emptied. Under Adam they settle near zero rather than at it, so a
 * group is dead when its norm is below `relativeThreshold` times the median norm of the layer's keep-alive share (the
 * spared, strongest groups). Batch-norm statistics are re-estimated for the narrower layers.
 */
export async function removeDeadGroups(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  data: Dataset,
  options: { groupSize: number; keepAlive: number },
  relativeThreshold = 0.1,
): Promise<{
  spec: ModelSpec;
  tensors: Map<string, Float32Array>;
  plan: KeepPlan;
  weightsBefore: number;
  weightsAfter: number;
}> {
  const { groupSize, keepAlive } = options;
  const scores = await scoreGroups(spec, tensors, data, { method: 'gss', groupSize, samplesPerClass: 0, bins: 0 });
  const plan: KeepPlan = new Map();
  for (const s of scores) {
    const sorted = Float64Array.from(s.scores).sort().reverse();
    const spared = sorted.subarray(0, Math.max(1, Math.ceil(keepAlive * sorted.length)));
    const threshold = relativeThreshold * spared[Math.floor(spared.length / 2)];
    const keep: number[] = [];
    for (let u = 0; u < s.units; u++) if (s.scores[Math.floor(u / groupSize)] >= threshold) keep.push(u);
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
