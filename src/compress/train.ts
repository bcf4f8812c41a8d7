// Training a cmp network with TensorFlow.js: seeded, reproducible, binarized layers through straight-through estimators.

import type * as tfTypes from '@tensorflow/tfjs';
import { CmpError } from '../errors.js';
import { freeze, type FrozenModel } from '../core/frozen.js';
import type { EpochRecord, TrainingRecord } from '../core/run.js';
import type { ModelSpec } from '../core/spec.js';
import type { Dataset, Split } from '../data/datasets.js';
import {
  forwardFrozen,
  forwardTrain,
  initParams,
  makeRng,
  paramsFromTensors,
  paramsToTensors,
  type Params,
} from './network.js';
import { shrinkGroups, type GroupSparsityOptions } from './gss.js';
import { loadTf, type Tf } from './tf.js';

/** Progress while training; `etaMs` estimates the time left for the whole run. */
export type TrainProgress =
  | { phase: 'batch'; epoch: number; epochs: number; batch: number; batches: number; loss: number; etaMs: number }
  | { phase: 'epoch'; epochs: number; record: EpochRecord; etaMs: number };

export interface TrainOptions {
  epochs: number;
  batchSize: number;
  /** Peak Adam learning rate; decays along a cosine to 0 over the run. */
  learningRate: number;
  seed: number;
  onProgress?: (progress: TrainProgress) => void;
  /** Start from these tensors instead of a fresh initialisation (fine-tuning). */
  initial?: Map<string, Float32Array>;
  /** Keep the last N training samples out of training, for calibration. */
  validationCount?: number;
  /** Guided group sparsity (GSS): a group-lasso penalty with a keep-alive share, see compress/gss.ts. */
  groupSparsity?: GroupSparsityOptions;
}

export interface TrainResult {
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

/** Trains `spec` on `data`; every epoch ends with the frozen (deployable) model evaluated on the test split. */
export async function train(spec: ModelSpec, data: Dataset, options: TrainOptions): Promise<TrainResult> {
  const { tf, backend } = await loadTf();
  const rng = makeRng(options.seed);
  const params = initParams(tf, spec, rng);
  if (options.initial) {
    for (const [name, v] of [...params.trainable, ...params.running]) {
      const t = options.initial.get(name);
      if (!t || t.length !== v.size) {
        throw new CmpError(
          'RUN_INVALID',
          `Tensor "${name}" is missing or has ${t?.length ?? 0} values, the spec needs ${v.size}. Retrain the run.`,
        );
      }
      v.assign(tf.tensor(t, v.shape));
    }
  }
  const adam = new Adam(tf, params);
  const binaryWeights = spec.layers
    .filter((l) => (l.kind === 'dense' || l.kind === 'conv') && l.binarize.weights !== 'none')
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
  const learningRateAt = (step: number): number =>
    (options.learningRate * (1 + Math.cos((Math.PI * step) / totalSteps))) / 2;
  const started = Date.now();
  const history: EpochRecord[] = [];
  let step = 0;
  for (let epoch = 1; epoch <= options.epochs; epoch++) {
    const epochStart = Date.now();
    const order = shuffled(count, rng);
    let lossSum = 0;
    let correct = 0;
    for (let b = 0; b < batches; b++) {
      const lr = learningRateAt(step);
      const { x, y } = batchTensors(tf, data, data.train, order, b * options.batchSize, options.batchSize);
      const { loss, hits } = tf.tidy(() => {
        let logits: tfTypes.Tensor | undefined;
        const { value, grads } = tf.variableGrads(() => {
          const exits: tfTypes.Tensor[] = [];
          logits = tf.keep(forwardTrain(tf, spec, params, x, true, exits));
          const labels = tf.oneHot(y, spec.labels.length);
          let loss: tfTypes.Scalar = tf.losses.softmaxCrossEntropy(labels, logits);
          // Exit heads train jointly: each adds its weighted cross-entropy.
          (spec.exits ?? []).forEach((exit, i) => {
            loss = tf.add(loss, tf.mul(tf.losses.softmaxCrossEntropy(labels, exits[i]), exit.lossWeight));
          });
          return loss;
        }, [...params.trainable.values()]);
        adam.step(grads, lr);
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
    const frozen = freeze(spec, flatTensors(await paramsToTensors(params)));
    const testAccuracy = await evaluateFrozen(frozen, data, data.test);
    const record: EpochRecord = {
      epoch,
      loss: lossSum / Math.max(batches, 1),
      trainAccuracy: correct / Math.max(batches * options.batchSize, 1),
      testAccuracy,
      durationMs: Date.now() - epochStart,
    };
    history.push(record);
    const elapsed = Date.now() - started;
    options.onProgress?.({
      phase: 'epoch',
      epochs: options.epochs,
      record,
      etaMs: (elapsed / epoch) * (options.epochs - epoch),
    });
  }
  const tensors = await paramsToTensors(params);
  const frozen = freeze(spec, flatTensors(tensors));
  const testAccuracy = history.length
    ? history[history.length - 1].testAccuracy
    : await evaluateFrozen(frozen, data, data.test);
  disposeParams(params);
  adam.dispose();
  return {
    tensors,
    frozen,
    testAccuracy,
    training: {
      dataset: data.name,
      epochs: options.epochs,
      batchSize: options.batchSize,
      learningRate: options.learningRate,
      seed: options.seed,
      backend,
      trainCount: count,
      ...(validationCount ? { validationCount } : {}),
      testCount: data.test.count,
      durationMs: Date.now() - started,
      history,
      testAccuracy,
    },
  };
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
    logits.set((await out.data()), start * classes);
    for (let e = 0; e < exits.length; e++) exits[e].set((await exitLogits[e].data()), start * classes);
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

/** Adam with a learning rate set per step (tfjs' own Adam fixes it at construction). */
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

  dispose(): void {
    for (const { m, v } of this.moments.values()) {
      m.dispose();
      v.dispose();
    }
  }
}
