// Training a cmp network with TensorFlow.js: seeded, reproducible, binarized layers through straight-through estimators.

import type * as tfTypes from '@tensorflow/tfjs';
import { CmpError } from '../errors.js';
import { freeze, type FrozenModel } from '../core/frozen.js';
import type { EpochRecord, MaskCheckpointRecord, TrainingRecord } from '../core/run.js';
import { MASK_VALUE_BYTES, maskLayout } from '../core/mask.js';
import { isBinaryMode, MASK_LOGITS, type ModelSpec } from '../core/spec.js';
import { makeRng } from '../core/rng.js';
import type { Dataset, Split } from '../data/datasets.js';
import { binarizeKernels } from './binarize-wasm.js';
import { forwardFrozen, forwardTrain, initParams, paramsFromTensors, paramsToTensors, type Params } from './network.js';
import { shrinkGroups, type GroupSparsityOptions } from './gss.js';
import {
  checkpointKey,
  clearCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
  type MaskTrainingState,
  type OptimizerState,
} from './checkpoint.js';
import { SELECT_HEADER_BYTES, SelectionCodec } from '../core/codec.js';
import { frozenGates, LambdaSchedule, type LambdaScheduleOptions, type MaskTerms } from './mask.js';
import { loadTf, type Tf } from './tf.js';

/** Progress while training; `etaMs` estimates the time left for the whole run. */
export type TrainProgress =
  | { phase: 'batch'; epoch: number; epochs: number; batch: number; batches: number; loss: number; etaMs: number }
  | { phase: 'epoch'; epochs: number; record: EpochRecord; etaMs: number };

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Peak Adam learning rate; decays along a cosine to 0 over the run (with `sgd`: SGD's rate, stepped down). */
  learningRate: number;
  seed: number;
  onProgress?: (progress: TrainProgress) => void;
  /** Start from these tensors instead of a fresh initialisation (fine-tuning). */
  initial?: Map<string, Float32Array>;
  /** Keep the last N training samples out of training, for calibration. */
  validationCount?: number;
  /** Guided group sparsity (GSS): a group-lasso penalty with a keep-alive share, see compress/gss.ts. */
  groupSparsity?: GroupSparsityOptions;
  /** Learning the spec's input mask (learned static or dynamic); needs validationCount. */
  masking?: MaskTrainingOptions;
  /** SGD with Nesterov momentum and a step schedule instead of Adam with a cosine (the MINT paper's recipe). */
  sgd?: SgdOptions;
  /** Dropout rate after every hidden dense layer while training (the MINT paper's MLP: 0.2); 0 or absent: none. */
  dropout?: number;
  /**
   * Knowledge distillation (Hinton et al. 2015): the loss is (1 - weight) x cross-entropy on the labels plus weight x T^2
   * x cross-entropy against the teacher's predictions softened at temperature T. Pruning's fine-tuning uses the run
   * before pruning as its teacher.
   */
  distill?: DistillOptions;
  /**
   * Keep a checkpoint in this folder after every epoch, and resume from the one there when it belongs to the same
   * training (same spec, data, options and starting tensors): a long training can stop and carry on. Removed at the
   * end. Not with masking.
   */
  checkpointDir?: string;
  /** Pruned connections: per weight tensor (e.g. "fc2.weight"), 1 where a weight trains and 0 where it stays zero. */
  weightMasks?: Map<string, Float32Array>;
}

export interface DistillOptions {
  teacher: FrozenModel;
  /** Share of the loss given to the teacher's soft targets, in (0, 1]. */
  weight: number;
  temperature: number;
}

/** PyTorch's SGD with Nesterov momentum and weight decay, under MultiStepLR. */
export interface SgdOptions {
  momentum: number;
  weightDecay: number;
  /** Epochs (1-based) after which the rate is multiplied by `gamma`. */
  milestones: number[];
  gamma: number;
}

/** How a learned input mask trains: the paper's schedule, and when to save a checkpoint. */
export interface MaskTrainingOptions {
  schedule: LambdaScheduleOptions;
  /** Epochs of the whole network without a mask first (the paper's warm-up network). */
  warmupEpochs: number;
  /** A checkpoint whenever validation accuracy fell by this much (a fraction) since the last checkpoint... */
  checkpointStep: number;
  /** ...or the kept fraction fell to this share of the last checkpoint's. */
  checkpointKeptRatio: number;
  /** Lambda stops growing once the kept fraction is at or below this. */
  minKeep: number;
  onCheckpoint?: (checkpoint: MaskCheckpoint) => void;
  /**
   * A training resumed from a training checkpoint (`checkpointDir`) calls this first with the mask checkpoints made
   * before the stop, in order (their models were given to onCheckpoint then; keep them where they survive a stop).
   */
  onResume?: (made: Omit<MaskCheckpointRecord, 'dir'>[]) => void;
}

/**
 * One point of the accuracy/kept-fraction trade-off, saved during mask training: what the run records of it (dynamic
 * masks: kept units are the mean over validation instances), and the model itself.
 */
export interface MaskCheckpoint extends Omit<MaskCheckpointRecord, 'dir'> {
  spec: ModelSpec;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** The training record as of this epoch. */
  training: TrainingRecord;
}

export interface TrainResult {
  /** The trained spec: a learned static mask's kept units are those its logits keep at the end. */
  spec: ModelSpec;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  frozen: FrozenModel;
  training: TrainingRecord;
  testAccuracy: number;
}

export const DEFAULT_TRAIN_OPTIONS: Readonly<Omit<TrainOptions, 'onProgress' | 'initial'>> = Object.freeze({
  epochs: 10,
  batchSize: 100,
  learningRate: 0.002,
  seed: 1,
});

/** What shapes a training, for its checkpoints: the spec, the data, the options (callbacks and teacher aside), the start. */
function trainingKey(spec: ModelSpec, data: Dataset, options: TrainOptions): string {
  const { initial, distill, weightMasks } = options;
  const shaping = {
    ...options,
    onProgress: undefined,
    initial: undefined,
    masking: options.masking && { ...options.masking, onCheckpoint: undefined, onResume: undefined },
    checkpointDir: undefined,
    weightMasks: undefined,
    distill: distill && { weight: distill.weight, temperature: distill.temperature, teacher: distill.teacher.spec },
  };
  const extra = new Map([...(initial ?? []), ...[...(weightMasks ?? [])].map(([n, m]) => [`mask:${n}`, m] as const)]);
  return checkpointKey({ spec, data: [data.name, data.train.count, data.test.count], shaping }, extra);
}

/** Whether tensor `name` belongs to an exit head or the input mask, which fine-tuning may add to a run. */
function isAddedPart(spec: ModelSpec, name: string): boolean {
  const owner = name.split('.')[0];
  return (spec.exits ?? []).some((e) => e.name === owner) || name === MASK_LOGITS || name.startsWith('selector.');
}

/** Trains `spec` on `data`; every epoch ends with the frozen (deployable) model evaluated on the test split. */
export async function train(spec: ModelSpec, data: Dataset, options: TrainOptions): Promise<TrainResult> {
  const { tf, backend } = await loadTf();
  let rng = makeRng(options.seed);
  const params = initParams(tf, spec, rng);
  if (options.initial) {
    for (const [name, v] of [...params.trainable, ...params.running]) {
      const t = options.initial.get(name);
      // Parts the fine-tuned run did not have (new exit heads, a new mask) keep their fresh initialisation.
      if (!t && isAddedPart(spec, name)) continue;
      if (!t || t.length !== v.size) {
        throw new CmpError(
          'RUN_INVALID',
          `Tensor "${name}" is missing or has ${t?.length ?? 0} values, the spec needs ${v.size}. Retrain the run.`,
        );
      }
      v.assign(tf.tensor(t, v.shape));
    }
  }
  const optimizer = options.sgd ? new Sgd(tf, params, options.sgd) : new Adam(tf, params);
  const held = [...(options.weightMasks ?? [])].map(([name, mask]) => {
    const v = params.trainable.get(name);
    if (!v || v.size !== mask.length) {
      throw new CmpError(
        'INTERNAL',
        `Weight mask "${name}" has ${mask.length} values; the spec's tensor has ${v?.size}.`,
      );
    }
    return { v, mask: tf.tensor(mask, v.shape) };
  });
  const holdMasked = (): void => {
    for (const { v, mask } of held) v.assign(tf.mul(v, mask));
  };
  tf.tidy(holdMasked);
  const binaryWeights = spec.layers
    .filter((l) => (l.kind === 'dense' || l.kind === 'conv') && isBinaryMode(l.binarize.weights))
    .map((l) => params.trainable.get(`${l.name}.weight`) as tfTypes.Variable);
  // Held-out samples (the end of the training split) are never trained on: calibration's validation data.
  const validationCount = options.validationCount ?? 0;
  const count = data.train.count - validationCount;
  if (count < options.batchSize) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `Only ${count} training samples for batches of ${options.batchSize}. Use more data or a smaller --batch-size.`,
    );
  }
  const batches = Math.floor(count / options.batchSize);
  const totalSteps = batches * options.epochs;
  // Mask training keeps the peak rate: the mask keeps moving as lambda grows, and the network must follow it.
  const sgd = options.sgd;
  const learningRateAt = (step: number): number => {
    if (sgd) {
      const epochsDone = Math.floor(step / batches);
      return options.learningRate * sgd.gamma ** sgd.milestones.filter((e) => e <= epochsDone).length;
    }
    return options.masking
      ? options.learningRate
      : (options.learningRate * (1 + Math.cos((Math.PI * step) / totalSteps))) / 2;
  };
  const masking = options.masking;
  const schedule = masking ? new LambdaSchedule(masking.schedule) : undefined;
  if (masking && validationCount === 0) {
    throw new CmpError('INTERNAL', 'Mask training needs held-out validation data (validationCount).');
  }
  const maskParams = new Set(
    [...params.trainable].filter(([name]) => name === MASK_LOGITS || name.startsWith('selector.')).map(([, v]) => v),
  );
  let lastCheckpoint: MaskTrainingState['last'];
  const made: MaskTrainingState['made'] = [];
  let started = Date.now();
  const history: EpochRecord[] = [];
  let step = 0;
  let firstEpoch = 1;
  const checkpointDir = options.checkpointDir;
  const key = checkpointDir ? trainingKey(spec, data, options) : '';
  const resumed = checkpointDir ? loadCheckpoint(checkpointDir, key) : undefined;
  if (resumed) {
    for (const [name, v] of [...params.trainable, ...params.running]) {
      v.assign(tf.tensor(resumed.params.get(name) as Float32Array, v.shape));
    }
    optimizer.restore(resumed.optimizer);
    rng = makeRng(resumed.rngState);
    history.push(...resumed.history);
    step = resumed.step;
    firstEpoch = resumed.epoch + 1;
    started -= resumed.durationMs;
    if (resumed.masking && schedule && masking) {
      schedule.restore(resumed.masking.schedule);
      lastCheckpoint = resumed.masking.last;
      made.push(...resumed.masking.made);
      masking.onResume?.(made);
    }
  }
  const recordSoFar = (epochs: number, testAccuracy: number): TrainingRecord => ({
    dataset: data.name,
    epochs,
    batchSize: options.batchSize,
    learningRate: options.learningRate,
    seed: options.seed,
    backend,
    trainCount: count,
    ...(validationCount ? { validationCount } : {}),
    testCount: data.test.count,
    durationMs: Date.now() - started,
    history: [...history],
    testAccuracy,
  });
  let currentSpec: ModelSpec;
  for (let epoch = firstEpoch; epoch <= options.epochs; epoch++) {
    const epochStart = Date.now();
    const order = shuffled(count, rng);
    const maskActive = masking !== undefined && epoch > masking.warmupEpochs;
    const variables = [...params.trainable.values()].filter((v) => maskActive || !maskParams.has(v));
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < batches; b++) {
      const lr = learningRateAt(step);
      const { x, y } = batchTensors(tf, data, data.train, order, b * options.batchSize, options.batchSize);
      const { loss, hits } = tf.tidy(() => {
        let logits: tfTypes.Tensor | undefined;
        const distill = options.distill;
        const soft = distill && tf.softmax(tf.div(forwardFrozen(tf, distill.teacher, x), distill.temperature));
        const { value, grads } = tf.variableGrads(() => {
          const exits: tfTypes.Tensor[] = [];
          const terms: MaskTerms | undefined = masking ? { active: maskActive } : undefined;
          const dropout = options.dropout ? { rate: options.dropout, seed: Math.floor(rng() * 2 ** 31) } : undefined;
          logits = tf.keep(forwardTrain(tf, spec, params, x, true, exits, terms, dropout));
          const labels = tf.oneHot(y, spec.labels.length);
          let loss: tfTypes.Scalar = tf.losses.softmaxCrossEntropy(labels, logits);
          if (distill && soft) {
            const t = distill.temperature;
            const taught = tf.mul(tf.losses.softmaxCrossEntropy(soft, tf.div(logits, t)), t * t);
            loss = tf.add(tf.mul(loss, 1 - distill.weight), tf.mul(taught, distill.weight));
          }
          // Exit heads train jointly: each adds its weighted cross-entropy.
          (spec.exits ?? []).forEach((exit, i) => {
            loss = tf.add(loss, tf.mul(tf.losses.softmaxCrossEntropy(labels, exits[i]), exit.lossWeight));
          });
          // The mask loss: lambda times the (soft) number of open units pushes units shut.
          if (terms?.penalty && schedule) loss = tf.add(loss, tf.mul(terms.penalty, schedule.lambda));
          return loss;
        }, variables);
        optimizer.step(grads, lr);
        holdMasked();
        if (options.groupSparsity) {
          shrinkGroups(tf, spec, params, options.groupSparsity, options.groupSparsity.lambda * lr);
        }
        for (const w of binaryWeights) w.assign(tf.clipByValue(w, -1, 1));
        const predicted = tf.argMax(logits as tfTypes.Tensor, 1);
        const hitCount = tf.keep(tf.sum(tf.cast(tf.equal(predicted, y), 'int32')));
        (logits as tfTypes.Tensor).dispose();
        return { loss: tf.keep(value), hits: hitCount };
      });
      lossSum += (await loss.data())[0];
      correct += (await hits.data())[0];
      tf.dispose([x, y, loss, hits]);
      step++;
      if (options.onProgress && (b % 20 === 0 || b === batches - 1)) {
        const elapsed = Date.now() - started;
        options.onProgress({
          phase: 'batch',
          epoch,
          epochs: options.epochs,
          batch: b + 1,
          batches,
          loss: lossSum / (b + 1),
          etaMs: (elapsed / step) * (totalSteps - step),
        });
      }
    }
    const epochTensors = await paramsToTensors(params);
    currentSpec = await withSelectionPrior(
      specWithLearnedMask(spec, epochTensors),
      flatTensors(epochTensors),
      heldOut(data, validationCount),
    );
    const frozen = freeze(currentSpec, flatTensors(epochTensors), binarizeKernels().fitRows);
    const testAccuracy = await evaluateFrozen(frozen, data, data.test);
    let maskRecord: Pick<EpochRecord, 'validationAccuracy' | 'keptFraction' | 'lambda'> = {};
    if (masking && schedule) {
      const validation = heldOut(data, validationCount);
      const validationAccuracy = await evaluateFrozen(frozen, data, validation);
      const { keptUnits, frameBytes } = await maskTraffic(frozen, validation);
      const inputMask = spec.inputMask as NonNullable<ModelSpec['inputMask']>;
      const units = maskLayout(spec.input.shape, inputMask.granularity).units;
      const keptFraction = keptUnits / units;
      // What a keep plan compares: the frame's bytes after the header as a share of every feature's value. For a
      // static mask this is the kept share; a dynamic frame's selection counts as the units it could have carried.
      const features = spec.input.shape.reduce((a, b) => a * b, 1);
      const byteShare = (frameBytes - SELECT_HEADER_BYTES) / (features * MASK_VALUE_BYTES[inputMask.values]);
      maskRecord = { validationAccuracy, keptFraction, lambda: schedule.lambda };
      if (maskActive) {
        const figures = {
          epoch,
          lambda: schedule.lambda,
          keptUnits,
          keptFraction,
          frameBytes,
          validationAccuracy,
          testAccuracy,
        };
        const checkpoint: MaskCheckpoint = {
          ...figures,
          spec: currentSpec,
          tensors: epochTensors,
          training: recordSoFar(epoch, testAccuracy),
        };
        const due =
          !lastCheckpoint ||
          epoch === options.epochs ||
          validationAccuracy <= lastCheckpoint.validationAccuracy - masking.checkpointStep ||
          keptFraction <= lastCheckpoint.keptFraction * masking.checkpointKeptRatio;
        if (due) {
          masking.onCheckpoint?.(checkpoint);
          lastCheckpoint = { validationAccuracy, keptFraction };
          made.push(figures);
        }
        if (keptFraction > masking.minKeep) schedule.update(validationAccuracy, { epoch, share: byteShare });
      }
    }
    const record: EpochRecord = {
      epoch,
      loss: lossSum / Math.max(batches, 1),
      trainAccuracy: correct / Math.max(batches * options.batchSize, 1),
      testAccuracy,
      ...maskRecord,
      durationMs: Date.now() - epochStart,
    };
    history.push(record);
    if (checkpointDir && epoch < options.epochs) {
      saveCheckpoint(checkpointDir, {
        key,
        epoch,
        step,
        rngState: rng.state,
        history,
        durationMs: Date.now() - started,
        optimizer: await optimizer.state(),
        params: new Map([...epochTensors].map(([name, t]) => [name, t.data])),
        ...(schedule ? { masking: { schedule: schedule.state, last: lastCheckpoint, made } } : {}),
      });
    }
    const elapsed = Date.now() - started;
    options.onProgress?.({
      phase: 'epoch',
      epochs: options.epochs,
      record,
      etaMs: (elapsed / epoch) * (options.epochs - epoch),
    });
  }
  const tensors = await paramsToTensors(params);
  currentSpec = await withSelectionPrior(
    specWithLearnedMask(spec, tensors),
    flatTensors(tensors),
    heldOut(data, validationCount),
  );
  const frozen = freeze(currentSpec, flatTensors(tensors), binarizeKernels().fitRows);
  const testAccuracy = history.length
    ? history[history.length - 1].testAccuracy
    : await evaluateFrozen(frozen, data, data.test);
  disposeParams(params);
  optimizer.dispose();
  tf.dispose(held.map((h) => h.mask));
  if (checkpointDir) clearCheckpoint(checkpointDir);
  return { spec: currentSpec, tensors, frozen, testAccuracy, training: recordSoFar(options.epochs, testAccuracy) };
}

/** The spec with a learned static mask's kept units read off its logits (positive: kept; at least one unit). */
export function specWithLearnedMask(spec: ModelSpec, tensors: Map<string, { data: Float32Array }>): ModelSpec {
  const mask = spec.inputMask;
  const logits = tensors.get(MASK_LOGITS)?.data;
  if (mask?.kind !== 'static' || mask.source !== 'learned' || !logits) return spec;
  const kept: number[] = [];
  let best = 0;
  for (let u = 0; u < logits.length; u++) {
    if (logits[u] > 0) kept.push(u);
    if (logits[u] > logits[best]) best = u;
  }
  return { ...spec, inputMask: { ...mask, kept: kept.length ? kept : [best] } };
}

/** The last `count` training samples, which training never sees. */
export function heldOut(data: Dataset, count: number): Split {
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const start = data.train.count - count;
  return { x: data.train.x.subarray(start * features), y: data.train.y.subarray(start), count };
}

/**
 * What a frozen masked model's sender transmits per instance of `split`, on average: units kept, and bytes of the
 * cmp-select/1 frame (header, selection and values; see core/codec.ts).
 */
export async function maskTraffic(
  frozen: FrozenModel,
  split: Split,
): Promise<{ keptUnits: number; frameBytes: number }> {
  const mask = frozen.mask;
  if (!mask) return { keptUnits: 0, frameBytes: 0 };
  const shape = frozen.spec.input.shape;
  const codec = new SelectionCodec(mask.spec, shape, 0);
  if (mask.spec.kind === 'static') return { keptUnits: mask.spec.kept.length, frameBytes: codec.frameBytes() };
  let units = 0;
  let bytes = 0;
  for (const chosen of await selectedUnits(frozen, split, split.count)) {
    units += chosen.length;
    bytes += codec.frameBytes(chosen);
  }
  return split.count
    ? { keptUnits: units / split.count, frameBytes: bytes / split.count }
    : { keptUnits: 0, frameBytes: 0 };
}

/**
 * Re-estimates batch-norm running statistics of `tensors` on training data (other tensors unchanged). Needed after
 * pruning: each layer now sums fewer inputs, so the statistics recorded for the full network no longer fit.
 */
export async function recalibrateBatchNorm(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  data: Dataset,
  batches = 100,
  batchSize = 100,
): Promise<Map<string, Float32Array>> {
  const { tf } = await loadTf();
  const params = paramsFromTensors(tf, spec, tensors);
  const rng = makeRng(0);
  const order = shuffled(data.train.count, rng);
  const n = Math.min(batches, Math.floor(data.train.count / batchSize));
  for (let b = 0; b < n; b++) {
    const { x, y } = batchTensors(tf, data, data.train, order, b * batchSize, batchSize);
    tf.tidy(() => forwardTrain(tf, spec, params, x, true));
    tf.dispose([x, y]);
  }
  const out = new Map(tensors);
  for (const [name, t] of await paramsToTensors(params))
    if (name.endsWith('.bn.mean') || name.endsWith('.bn.variance')) out.set(name, t.data);
  disposeParams(params);
  return out;
}

/** Logits of a frozen model on `count` samples of a split, computed in TensorFlow.js. */
export async function predictFrozen(
  frozen: FrozenModel,
  data: Dataset,
  split: Split,
  count = split.count,
): Promise<Float32Array> {
  return (await predictFrozenWithExits(frozen, data, split, count)).logits;
}

/** Final logits and each early exit's logits (rows of `classes`) on `count` samples of a split. */
export async function predictFrozenWithExits(
  frozen: FrozenModel,
  data: Dataset,
  split: Split,
  count = split.count,
): Promise<{ logits: Float32Array; exits: Float32Array[] }> {
  const { tf } = await loadTf();
  const classes = frozen.spec.labels.length;
  const logits = new Float32Array(count * classes);
  const exits = (frozen.exits ?? []).map(() => new Float32Array(count * classes));
  const order = Array.from({ length: count }, (_, i) => i);
  for (let start = 0; start < count; start += 500) {
    const size = Math.min(500, count - start);
    const { x, y } = batchTensors(tf, data, split, order, start, size);
    const exitLogits: tfTypes.Tensor[] = [];
    const out = forwardFrozen(tf, frozen, x, undefined, exitLogits);
    logits.set(await out.data(), start * classes);
    for (let e = 0; e < exits.length; e++) exits[e].set(await exitLogits[e].data(), start * classes);
    tf.dispose([x, y, out, ...exitLogits]);
  }
  return { logits, exits };
}

/** Test accuracy of a frozen model in TensorFlow.js. */
export async function evaluateFrozen(frozen: FrozenModel, data: Dataset, split: Split): Promise<number> {
  const logits = await predictFrozen(frozen, data, split);
  return accuracyOf(logits, split.y, frozen.spec.labels.length);
}

/** Share of rows of `logits` [N, classes] whose argmax equals the label. */
export function accuracyOf(logits: Float32Array, labels: Uint8Array, classes: number): number {
  const n = logits.length / classes;
  let hits = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (logits[i * classes + c] > logits[i * classes + best]) best = c;
    if (best === labels[i]) hits++;
  }
  return n ? hits / n : 0;
}

function batchTensors(
  tf: Tf,
  data: Dataset,
  split: Split,
  order: ArrayLike<number>,
  start: number,
  size: number,
): { x: tfTypes.Tensor; y: tfTypes.Tensor } {
  const [c, h, w] = data.inputShape;
  const features = c * h * w;
  const xs = new Float32Array(size * features);
  const ys = new Int32Array(size);
  for (let i = 0; i < size; i++) {
    const j = order[start + i];
    xs.set(split.x.subarray(j * features, (j + 1) * features), i * features);
    ys[i] = split.y[j];
  }
  return { x: tf.tensor4d(xs, [size, c, h, w]), y: tf.tensor1d(ys, 'int32') };
}

function shuffled(n: number, rng: () => number): Uint32Array {
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

function flatTensors(tensors: Map<string, { data: Float32Array }>): Map<string, Float32Array> {
  return new Map([...tensors].map(([name, t]) => [name, t.data]));
}

function disposeParams(params: Params): void {
  for (const v of [...params.trainable.values(), ...params.running.values()]) v.dispose();
}

function stateTensor(state: OptimizerState, name: string): Float32Array {
  const t = state.tensors.get(name);
  if (!t) throw new CmpError('INTERNAL', `The checkpoint has no optimizer buffer "${name}".`);
  return t;
}

/** Adam with a learning rate set per step (tfjs' own Adam fixes it at construction). */
/** SGD with Nesterov momentum, as PyTorch computes it: g += wd p; b = mu b + g; p -= lr (g + mu b). */
class Sgd {
  private readonly buffers = new Map<string, tfTypes.Variable>();

  constructor(
    private readonly tf: Tf,
    private readonly params: Params,
    private readonly options: SgdOptions,
  ) {
    for (const [name, p] of params.trainable) this.buffers.set(name, tf.variable(tf.zerosLike(p), false));
  }

  step(grads: tfTypes.NamedTensorMap, lr: number): void {
    const { tf } = this;
    const { momentum, weightDecay } = this.options;
    for (const [name, p] of this.params.trainable) {
      const raw = grads[p.name];
      if (!raw) continue;
      const g = weightDecay ? tf.add(raw, tf.mul(p, weightDecay)) : raw;
      const b = this.buffers.get(name) as tfTypes.Variable;
      b.assign(tf.add(tf.mul(b, momentum), g));
      p.assign(tf.sub(p, tf.mul(tf.add(g, tf.mul(b, momentum)), lr)));
    }
  }

  /** The momentum buffers, by parameter name, for a checkpoint. */
  async state(): Promise<OptimizerState> {
    const tensors = new Map<string, Float32Array>();
    for (const [name, b] of this.buffers) tensors.set(`sgd.momentum.${name}`, (await b.data()) as Float32Array);
    return { steps: 0, tensors };
  }

  restore(state: OptimizerState): void {
    for (const [name, b] of this.buffers) b.assign(this.tf.tensor(stateTensor(state, `sgd.momentum.${name}`), b.shape));
  }

  dispose(): void {
    for (const b of this.buffers.values()) b.dispose();
  }
}

class Adam {
  private readonly moments = new Map<string, { m: tfTypes.Variable; v: tfTypes.Variable }>();
  private t = 0;

  constructor(
    private readonly tf: Tf,
    private readonly params: Params,
  ) {
    for (const [name, p] of params.trainable) {
      this.moments.set(name, { m: tf.variable(tf.zerosLike(p), false), v: tf.variable(tf.zerosLike(p), false) });
    }
  }

  step(grads: tfTypes.NamedTensorMap, lr: number): void {
    const { tf } = this;
    const b1 = 0.9;
    const b2 = 0.999;
    this.t++;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    for (const [name, p] of this.params.trainable) {
      const g = grads[p.name];
      if (!g) continue;
      const { m, v } = this.moments.get(name) as { m: tfTypes.Variable; v: tfTypes.Variable };
      m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
      v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
      const update = tf.div(tf.mul(m, lr / c1), tf.add(tf.sqrt(tf.div(v, c2)), 1e-7));
      p.assign(tf.sub(p, update));
    }
  }

  /** The moments and the step count, for a checkpoint. */
  async state(): Promise<OptimizerState> {
    const tensors = new Map<string, Float32Array>();
    for (const [name, { m, v }] of this.moments) {
      tensors.set(`adam.m.${name}`, (await m.data()) as Float32Array);
      tensors.set(`adam.v.${name}`, (await v.data()) as Float32Array);
    }
    return { steps: this.t, tensors };
  }

  restore(state: OptimizerState): void {
    this.t = state.steps;
    for (const [name, { m, v }] of this.moments) {
      m.assign(this.tf.tensor(stateTensor(state, `adam.m.${name}`), m.shape));
      v.assign(this.tf.tensor(stateTensor(state, `adam.v.${name}`), v.shape));
    }
  }

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
  }
}

/**
 * A dynamic mask's spec with its prior and rates: the units its selector sends for more than half of the instances of
 * `split` (held-out data), and how often it sends each unit, in 256ths (a count of c in n instances is
 * (c + 1/2) / (n + 1), kept within 1..255 so that no selection is impossible to code); its frames code their
 * selection against them. Other specs, or no data, pass unchanged.
 */
export async function withSelectionPrior(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  split: Split,
): Promise<ModelSpec> {
  const mask = spec.inputMask;
  if (mask?.kind !== 'dynamic' || split.count === 0) return spec;
  const sends = await selectedUnits(freeze(spec, tensors), split, split.count);
  const counts = new Int32Array(maskLayout(spec.input.shape, mask.granularity).units);
  for (const chosen of sends) for (const u of chosen) counts[u]++;
  const prior: number[] = [];
  for (let u = 0; u < counts.length; u++) if (2 * counts[u] > split.count) prior.push(u);
  const rates = Array.from(counts, (c) =>
    Math.max(1, Math.min(255, Math.round((256 * (c + 0.5)) / (split.count + 1)))),
  );
  return { ...spec, inputMask: { ...mask, prior, rates } };
}

/** The units a frozen dynamic mask's selector sends for each of the first `count` instances of `split`. */
export async function selectedUnits(frozen: FrozenModel, split: Split, count: number): Promise<number[][]> {
  const mask = frozen.mask;
  if (!mask) return [];
  if (mask.spec.kind === 'static')
    return Array.from({ length: count }, () => [...(mask.spec as { kept: number[] }).kept]);
  const { tf } = await loadTf();
  const shape = frozen.spec.input.shape;
  const features = shape[0] * shape[1] * shape[2];
  const out: number[][] = [];
  for (let start = 0; start < count; start += 500) {
    const size = Math.min(500, count - start);
    const x = tf.tensor4d(split.x.subarray(start * features, (start + size) * features), [size, ...shape]);
    const gates = tf.tidy(() => frozenGates(tf, mask, shape, x));
    const g = (await gates.data()) as Float32Array;
    tf.dispose([x, gates]);
    const units = g.length / size;
    for (let i = 0; i < size; i++) {
      const chosen: number[] = [];
      for (let u = 0; u < units; u++) if (g[i * units + u] > 0) chosen.push(u);
      out.push(chosen);
    }
  }
  return out;
}
