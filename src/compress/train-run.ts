// One training job end to end: load the data set, build the spec, train, and save the run folder.

import { freeze } from '../core/frozen.js';
import { saveRun, type PruneSummary, type RunRecord } from '../core/run.js';
import { buildSpec, tensorShapes, type ArchOptions, type BinarizeMode, type ModelSpec } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { layerWidths, removeDeadGroups } from './prune-run.js';
import { evaluateFrozen, train, type TrainOptions, type TrainResult } from './train.js';

export interface TrainRunOptions extends TrainOptions {
  arch: string;
  binarizeWeights: BinarizeMode;
  binarizeActivations: BinarizeMode;
  /** Weight layers kept float, for weights and activations ('first', 'last', or an index); undefined: defaults. */
  keepFloat?: string[];
  widths?: number[];
  filters?: number[];
  /** Early exits after these hidden weight layers (1-based). */
  exits?: number[];
  /** Where to write the run; nothing is written when undefined. */
  out?: string;
  /** With groupSparsity: keep the emptied groups in the network (to prune later by norm, e.g. to a set sparsity). */
  keepDeadGroups?: boolean;
}

/** Weight layers whose inputs stay float unless --keep-float says otherwise: the pixels and the classifier. */
export const DEFAULT_KEEP_FLOAT_ACTIVATIONS: readonly string[] = Object.freeze(['first', 'last']);

/** The spec a training job builds for `data`. */
export function specFor(data: Dataset, options: Omit<TrainRunOptions, keyof TrainOptions>): ModelSpec {
  const arch: ArchOptions = {
    inputShape: data.inputShape,
    labels: data.labels,
    widths: options.widths,
    filters: options.filters,
    exits: options.exits,
    binarizeWeights: options.binarizeWeights,
    binarizeInputs: options.binarizeActivations,
    keepFloatWeights: options.keepFloat ?? [],
    keepFloatInputs: options.keepFloat ?? [...DEFAULT_KEEP_FLOAT_ACTIVATIONS],
  };
  return buildSpec(options.arch, arch);
}

/** Trains a model on `data` and, with `out`, saves it as a run folder. */
export async function trainRun(
  data: Dataset,
  options: TrainRunOptions,
): Promise<TrainResult & { spec: ModelSpec; pruning?: PruneSummary }> {
  let spec = specFor(data, options);
  // Models with exits hold out a tenth of the training split: cmp calibrate chooses thresholds on it.
  const validationCount = spec.exits?.length ? Math.floor(data.train.count / 10) : 0;
  let result = await train(spec, data, { ...options, ...(validationCount ? { validationCount } : {}) });
  let pruning: PruneSummary | undefined;
  if (options.groupSparsity && !options.keepDeadGroups) {
    // GSS ends by removing the groups the lasso emptied; the result is a smaller network, evaluated again.
    const { groupSize, keepAlive } = options.groupSparsity;
    const dead = await removeDeadGroups(spec, flat(result.tensors), data, { groupSize, keepAlive });
    const frozen = freeze(dead.spec, dead.tensors);
    const testAccuracy = await evaluateFrozen(frozen, data, data.test);
    const kept: PruneSummary['kept'] = {};
    for (const [layer, keep] of dead.plan) kept[layer] = { kept: keep.length, of: layerWidths(spec)[layer] };
    pruning = {
      method: 'gss',
      scope: 'per-layer',
      sparsityTarget: 1 - dead.weightsAfter / dead.weightsBefore,
      groupSize,
      from: `gss training, keep-alive ${keepAlive}`,
      weightsBefore: dead.weightsBefore,
      weightsAfter: dead.weightsAfter,
      kept,
    };
    const shapes = tensorShapes(dead.spec);
    const tensors = new Map(
      [...dead.tensors].map(([name, data]) => [name, { shape: shapes.get(name) ?? [data.length], data }]),
    );
    spec = dead.spec;
    result = { ...result, tensors, frozen, testAccuracy, training: { ...result.training, testAccuracy } };
  }
  if (options.out) {
    const record: Omit<RunRecord, 'format' | 'tensors'> = {
      cmpVersion: CMP_VERSION,
      spec,
      training: result.training,
      ...(pruning ? { pruning } : {}),
    };
    saveRun(options.out, record, result.tensors);
  }
  return { ...result, spec, ...(pruning ? { pruning } : {}) };
}

function flat(tensors: Map<string, { data: Float32Array }>): Map<string, Float32Array> {
  return new Map([...tensors].map(([name, t]) => [name, t.data]));
}
