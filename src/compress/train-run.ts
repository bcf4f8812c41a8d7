// One training job end to end: load the data set, build the spec, train, and save the run folder.

import { join } from 'node:path';
import { freeze } from '../core/frozen.js';
import {
  granularityName,
  MASK_VALUE_BYTES,
  maskLayout,
  type MaskGranularity,
  type MaskSource,
  type MaskSpec,
  type MaskValueType,
} from '../core/mask.js';
import {
  saveRun,
  type MaskCheckpointRecord,
  type MaskingSummary,
  type PruneSummary,
  type RunRecord,
} from '../core/run.js';
import {
  buildSpec,
  inferShapes,
  tensorShapes,
  type ArchOptions,
  type BinarizeMode,
  type ModelSpec,
} from '../core/spec.js';
import { CmpError } from '../errors.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { DEFAULT_LAMBDA_SCHEDULE, importanceRanking, randomUnits, type LambdaScheduleOptions } from './mask.js';
import { makeRng } from '../core/rng.js';
import { layerWidths, removeDeadGroups } from './prune-run.js';
import {
  evaluateFrozen,
  heldOut,
  maskTraffic,
  train,
  type MaskCheckpoint,
  type MaskTrainingOptions,
  type TrainOptions,
  type TrainResult,
} from './train.js';

export interface TrainRunOptions extends TrainOptions {
  arch: string;
  binarizeWeights: BinarizeMode;
  binarizeActivations: BinarizeMode;
  /** Weight layers kept float, for weights and activations ('first', 'last', or an index); undefined: defaults. */
  keepFloat?: string[];
  /** Weight layers whose weights are int8 (trained quantization-aware): 'first', 'last', 'all' or an index. */
  int8?: string[];
  widths?: number[];
  filters?: number[];
  /** Early exits after these hidden weight layers (1-based). */
  exits?: number[];
  /** Where to write the run; nothing is written when undefined. */
  out?: string;
  /** With groupSparsity: keep the emptied groups in the network (to prune later by norm, e.g. to a set sparsity). */
  keepDeadGroups?: boolean;
  /** An input mask to learn (or, for the baselines, to fix before training). */
  mask?: MaskOptions;
  /** Fine-tune this run (its spec and tensors, mask fixed) instead of building a new network. */
  from?: { dir: string; spec: ModelSpec; tensors: Map<string, Float32Array> };
}

/** The input mask of a training job. */
export interface MaskOptions {
  kind: 'static' | 'dynamic';
  granularity: MaskGranularity;
  /** Static masks: learned jointly, or a fixed baseline (importance ranking, random). */
  source: MaskSource;
  values: MaskValueType;
  /** Baselines: the share of units kept. */
  keep?: number;
  /** Dynamic masks: the selector's average-pool window (default: the input side / 7, at least 1). */
  selectorPool?: number;
  schedule: LambdaScheduleOptions;
  warmupEpochs: number;
  checkpointStep: number;
  checkpointKeptRatio: number;
  minKeep: number;
}

export const DEFAULT_MASK_TRAINING: Readonly<
  Pick<MaskOptions, 'schedule' | 'warmupEpochs' | 'checkpointStep' | 'checkpointKeptRatio' | 'minKeep'>
> = Object.freeze({
  schedule: DEFAULT_LAMBDA_SCHEDULE,
  warmupEpochs: 2,
  checkpointStep: 0.01,
  checkpointKeptRatio: 0.8,
  minKeep: 0.01,
});

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
    ...(options.int8 ? { int8Weights: options.int8 } : {}),
  };
  const spec = buildSpec(options.arch, arch);
  // Checked before any tensor is made: a width such as 99999999 would ask for an array no runtime can hold.
  const weights = inferShapes(spec).reduce((a, l) => a + l.weightCount, 0);
  if (weights > MAX_TRAIN_WEIGHTS) {
    throw new CmpError(
      'BAD_FLAG',
      `--widths ${(options.widths ?? []).join(',') || '(default)'} and --filters ${(options.filters ?? []).join(',') || '(default)'} make a network of ${weights.toExponential(2)} weights, over the ${MAX_TRAIN_WEIGHTS.toExponential(0)} cmp trains. Give smaller widths or filters.`,
    );
  }
  return options.mask ? { ...spec, inputMask: maskSpecFor(data, options.mask) } : spec;
}

/** Most weights a trained network may have: float32 weights, gradients and Adam's two moments fit the wasm heap. */
const MAX_TRAIN_WEIGHTS = 100_000_000;

/** The initial mask spec: learned masks start with every unit kept, baselines with their fixed choice. */
function maskSpecFor(data: Dataset, mask: MaskOptions): MaskSpec {
  const layout = maskLayout(data.inputShape, mask.granularity);
  if (mask.kind === 'dynamic') {
    const pool = mask.selectorPool ?? Math.max(1, Math.floor(Math.min(data.inputShape[1], data.inputShape[2]) / 7));
    return { kind: 'dynamic', granularity: mask.granularity, values: mask.values, selectorPool: pool };
  }
  const all = Array.from({ length: layout.units }, (_, u) => u);
  let kept = all;
  if (mask.source !== 'learned') {
    const count = Math.max(1, Math.round((mask.keep ?? 0.1) * layout.units));
    kept =
      mask.source === 'importance'
        ? importanceRanking(data.train, layout, data.labels.length)
            .slice(0, count)
            .sort((a, b) => a - b)
        : randomUnits(layout.units, count, makeRng(0x5e1ec7));
  }
  return { kind: 'static', granularity: mask.granularity, source: mask.source, values: mask.values, kept };
}

/** Trains a model on `data` and, with `out`, saves it as a run folder. */
export async function trainRun(
  data: Dataset,
  runOptions: TrainRunOptions,
): Promise<TrainResult & { pruning?: PruneSummary; masking?: MaskingSummary }> {
  const from = runOptions.from;
  // Fine-tuning keeps the run's mask, or adds one to a run without (then its logits, like new exit heads, start fresh).
  const addsMask = from !== undefined && runOptions.mask !== undefined && !from.spec.inputMask;
  const options: TrainRunOptions = from
    ? { ...runOptions, initial: from.tensors, mask: addsMask ? runOptions.mask : undefined }
    : runOptions;
  let spec = from
    ? addsMask
      ? { ...from.spec, inputMask: maskSpecFor(data, runOptions.mask as MaskOptions) }
      : from.spec
    : specFor(data, options);
  const mask = options.mask;
  const learnsMask = mask !== undefined && (mask.kind === 'dynamic' || mask.source === 'learned');
  // Models with exits or a mask hold out a tenth of the training split: cmp calibrate chooses thresholds on it, and
  // the mask schedule and its checkpoints judge accuracy on it.
  const validationCount = spec.exits?.length || spec.inputMask ? Math.floor(data.train.count / 10) : 0;
  const checkpoints: MaskCheckpointRecord[] = [];
  const saveCheckpoint = (c: MaskCheckpoint): void => {
    const dir = join('checkpoints', String(checkpoints.length + 1).padStart(2, '0'));
    if (options.out)
      saveRun(join(options.out, dir), { cmpVersion: CMP_VERSION, spec: c.spec, training: c.training }, c.tensors);
    const { epoch, lambda, keptUnits, keptFraction, frameBytes, validationAccuracy, testAccuracy } = c;
    checkpoints.push({ dir, epoch, lambda, keptUnits, keptFraction, frameBytes, validationAccuracy, testAccuracy });
  };
  // A resumed training's earlier checkpoints are already saved in `out` (which a resumed run must name again).
  const resume = (made: Omit<MaskCheckpointRecord, 'dir'>[]): void => {
    checkpoints.push(...made.map((c, i) => ({ dir: join('checkpoints', String(i + 1).padStart(2, '0')), ...c })));
  };
  const maskTraining: MaskTrainingOptions | undefined =
    mask && learnsMask ? { ...mask, onCheckpoint: saveCheckpoint, onResume: resume } : undefined;
  let result = await train(spec, data, {
    ...options,
    ...(validationCount ? { validationCount } : {}),
    ...(maskTraining ? { masking: maskTraining } : {}),
  });
  spec = result.spec;
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
  let masking: MaskingSummary | undefined;
  const maskSpec = spec.inputMask;
  if (maskSpec) {
    const traffic = await maskTraffic(result.frozen, validationCount ? heldOut(data, validationCount) : data.test);
    const layout = maskLayout(data.inputShape, maskSpec.granularity);
    const valueBytes = MASK_VALUE_BYTES[maskSpec.values];
    masking = {
      kind: maskSpec.kind,
      granularity: granularityName(maskSpec.granularity),
      source: maskSpec.kind === 'dynamic' ? 'learned' : maskSpec.source,
      values: maskSpec.values,
      units: layout.units,
      fullInputBytes: layout.unitOf.length * valueBytes,
      keptUnits: traffic.keptUnits,
      keptFraction: traffic.keptUnits / layout.units,
      frameBytes: traffic.frameBytes,
      ...(mask && learnsMask ? { schedule: { ...mask.schedule, warmupEpochs: mask.warmupEpochs } } : {}),
      ...(options.from ? { finetunedFrom: options.from.dir } : {}),
      checkpoints,
    };
  }
  if (options.out) {
    const record: Omit<RunRecord, 'format' | 'tensors'> = {
      cmpVersion: CMP_VERSION,
      spec,
      training: result.training,
      ...(pruning ? { pruning } : {}),
      ...(masking ? { masking } : {}),
    };
    saveRun(options.out, record, result.tensors);
  }
  return { ...result, spec, ...(pruning ? { pruning } : {}), ...(masking ? { masking } : {}) };
}

function flat(tensors: Map<string, { data: Float32Array }>): Map<string, Float32Array> {
  return new Map([...tensors].map(([name, t]) => [name, t.data]));
}
