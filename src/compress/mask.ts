// Learning input-selection masks: hard gates with straight-through gradients, the paper's lambda schedule, and the
// two baselines (random-forest importance and random masks).

import type * as tfTypes from '@tensorflow/tfjs';
import { join } from 'node:path';
import { SelectionCodec } from '../core/codec.js';
import type { FrozenMask } from '../core/frozen.js';
import {
  featureMask,
  MASK_VALUE_BYTES,
  maskLayout,
  type MaskGranularity,
  type MaskLayout,
  type MaskSpec,
} from '../core/mask.js';
import { chooseMaskCheckpoint, loadRun, type MaskCheckpointRecord, type Run } from '../core/run.js';
import { MASK_LOGITS, type ModelSpec } from '../core/spec.js';
import type { Split } from '../data/datasets.js';
import { DEFAULT_FOREST, forestImportance, type ForestOptions } from './forest.js';
import type { Tf } from './tf.js';

type Tensor = tfTypes.Tensor;

/** Initial logit of a mask unit (and bias of a selector's scores): open, half a unit from the decision at 0. */
export const MASK_OPEN_LOGIT = 0.5;

/** What a masked forward pass reports for the loss and the schedule. */
export interface MaskTerms {
  /** False during warm-up: the whole input passes and the mask is not trained. */
  active: boolean;
  /**
   * The mask loss before lambda: sum over units of sigmoid(logit), averaged over the batch, and for a dynamic mask
   * the bytes its selection costs, in units.
   */
  penalty?: Tensor;
}

/**
 * The gate of each unit: 1 where its logit is positive, else 0 (as the frozen model and the runtime decide);
 * backward, the gradient of sigmoid(logit), so closed units keep learning whether they should reopen.
 */
export function hardGate(tf: Tf, logits: Tensor): Tensor {
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    const z = args[0] as Tensor;
    (args[1] as tfTypes.GradSaveFunc)([z]);
    return {
      value: tf.step(z),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const s = tf.sigmoid(saved[0]);
        return tf.mul(dy, tf.mul(s, tf.sub(1, s)));
      },
    };
  });
  return f(logits);
}

/** `t` itself, through which no gradient flows (tfjs has no stopGradient). */
function withoutGradient(tf: Tf, t: Tensor): Tensor {
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    const z = args[0] as Tensor;
    return { value: tf.clone(z), gradFunc: (dy: Tensor) => tf.zerosLike(dy) };
  });
  return f(t);
}

/** Unit gates [n, units] spread over the input: [n, C, H, W] for channels, [n, 1, H, W] otherwise (broadcast). */
export function expandUnits(tf: Tf, gates: Tensor, layout: MaskLayout): Tensor {
  const [c, h, w] = layout.shape;
  const n = gates.shape[0];
  const g = layout.granularity;
  if (g.kind === 'channel') return gates.reshape([n, c, h, w]);
  if (g.kind === 'pixel') return gates.reshape([n, 1, h, w]);
  const [gh, gw] = layout.grid;
  const b = g.size;
  const spread = tf
    .mul(gates.reshape([n, 1, gh, 1, gw, 1]), tf.ones([1, 1, 1, b, 1, b]))
    .reshape([n, 1, gh * b, gw * b]);
  return gh * b === h && gw * b === w ? spread : tf.slice(spread, [0, 0, 0, 0], [n, 1, h, w]);
}

/** Selector scores [n, units] of NCHW input `x`: average pool, flatten channel-major, linear. */
export function selectorScores(tf: Tf, x: Tensor, pool: number, weight: Tensor, bias: Tensor): Tensor {
  const nhwc = tf.transpose(x, [0, 2, 3, 1]) as tfTypes.Tensor4D;
  const pooled = pool === 1 ? nhwc : tf.avgPool(nhwc, pool, pool, 'valid');
  const flat = tf.transpose(pooled, [0, 3, 1, 2]).reshape([x.shape[0], -1]);
  return tf.add(tf.matMul(flat, weight), bias);
}

/**
 * Applies a spec's mask to NCHW input in training. A static mask gates by its `mask.logits` while it is being learned
 * (`terms` given and active) and otherwise multiplies by its fixed kept units; a dynamic one gates each instance by
 * its selector scores.
 */
export function maskInputTrain(
  tf: Tf,
  mask: MaskSpec,
  shape: [number, number, number],
  x: Tensor,
  tensors: { logits?: Tensor; weight?: Tensor; bias?: Tensor },
  terms: MaskTerms | undefined,
): Tensor {
  const layout = maskLayout(shape, mask.granularity);
  if (terms && !terms.active) return x;
  if (mask.kind === 'static' && (mask.source !== 'learned' || !terms)) {
    return tf.mul(x, tf.tensor(featureMask(layout, mask.kept), [1, ...shape]));
  }
  let logits: Tensor;
  if (mask.kind === 'static') logits = (tensors.logits as Tensor).reshape([1, layout.units]);
  else logits = selectorScores(tf, x, mask.selectorPool, tensors.weight as Tensor, tensors.bias as Tensor);
  if (terms) {
    const open = tf.sigmoid(logits);
    terms.penalty = tf.div(tf.sum(open), logits.shape[0]);
    if (mask.kind === 'dynamic') {
      // The selection costs bytes too: coded against the prior, about one byte per unit where an instance departs
      // from what most instances do. Each unit's distance from the batch's mean openness (the prior's soft stand-in,
      // held fixed) is charged at a byte's share of what the unit's values cost, so the selector departs only
      // where that pays.
      const typical = withoutGradient(tf, tf.mean(open, 0, true));
      const departures = tf.div(tf.sum(tf.abs(tf.sub(open, typical))), logits.shape[0]);
      const unitBytes = (layout.unitOf.length / layout.units) * MASK_VALUE_BYTES[mask.values];
      terms.penalty = tf.add(terms.penalty, tf.div(departures, unitBytes));
    }
  }
  return tf.mul(x, expandUnits(tf, hardGate(tf, logits), layout));
}

/** The frozen mask applied to NCHW input: zeros where the model receives nothing. */
export function maskInputFrozen(tf: Tf, mask: FrozenMask, shape: [number, number, number], x: Tensor): Tensor {
  const layout = maskLayout(shape, mask.spec.granularity);
  if (mask.features) {
    const m = new Float32Array(layout.unitOf.length);
    for (const f of mask.features) m[f] = 1;
    return tf.mul(x, tf.tensor(m, [1, ...shape]));
  }
  return tf.mul(x, expandUnits(tf, frozenGates(tf, mask, shape, x), layout));
}

/** Per-instance gates [n, units] (0/1) of a frozen dynamic mask. */
export function frozenGates(tf: Tf, mask: FrozenMask, shape: [number, number, number], x: Tensor): Tensor {
  const { spec, selector } = mask;
  if (spec.kind !== 'dynamic' || !selector) throw new Error('frozenGates needs a dynamic mask');
  const units = selector.bias.length;
  const weight = tf.tensor2d(selector.weight, [selector.weight.length / units, units]);
  return tf.step(selectorScores(tf, x, spec.selectorPool, weight, tf.tensor1d(selector.bias)));
}

/** The paper's lambda schedule: multiply lambda by `growth` once accuracy has not dropped for `patience` epochs. */
export interface LambdaScheduleOptions {
  start: number;
  growth: number;
  patience: number;
  /** A drop smaller than this (accuracy as a fraction) does not count: validation accuracy is noisy. */
  tolerance: number;
  /** A kept share to reach by an epoch; without it lambda grows only on the paper's calm rule. */
  plan?: KeepPlan;
}

/**
 * The share a mask run must reach (`keep`, the frame's bytes after the header as a fraction of every feature's value:
 * the kept share of the units for a static mask) by epoch `by` (1-based, of the whole training), on a geometric path
 * from every unit at epoch `from`. While the share is above the path, a drop in validation accuracy does not hold
 * lambda back: it grows once `every` epochs have passed since it last grew, calm or not. Once the share is at or under
 * `keep` lambda stops growing, and it shrinks again if the share falls under `keep` times `HOLD_BAND`, so the run holds
 * the budget instead of overshooting it.
 */
export interface KeepPlan {
  keep: number;
  from: number;
  by: number;
  every: number;
}

/** How far under the plan's share a mask may fall before lambda shrinks. */
const HOLD_BAND = 0.8;

export const DEFAULT_LAMBDA_SCHEDULE: Readonly<LambdaScheduleOptions> = Object.freeze({
  start: 0.0005,
  growth: 1.5,
  patience: 5,
  tolerance: 0.002,
});

/**
 * The select bench's schedule for a granularity. The paper's start (0.0005 per open unit) is scaled by the features a
 * unit covers: shutting a 2x2 block removes four pixels' worth of bytes, so its penalty weighs four times as much and
 * block masks reach the same byte budget in the same epochs (at the paper's start they stayed above it for 30 epochs).
 * Patience 2 instead of the paper's 5 lets 30 epochs hold up to 14 increases, and a drop under half a point does not
 * reset it: validation accuracy at the peak learning rate moves that much from epoch to epoch on its own. With a
 * `plan`, lambda also grows every other epoch the share is above the plan's path, calm or not: on the full MNIST
 * split the calm rule alone grew lambda 6 times in 30 epochs and the static mask stopped at 6.8% of the pixels, short
 * of the 20x budget's 4%, because the validation accuracy of a moving mask swings 1-4 points between epochs.
 */
export function scheduleFor(
  granularity: MaskGranularity,
  shape: [number, number, number],
  plan?: KeepPlan,
): LambdaScheduleOptions {
  const layout = maskLayout(shape, granularity);
  const featuresPerUnit = layout.unitOf.length / layout.units;
  const schedule = {
    start: DEFAULT_LAMBDA_SCHEDULE.start * featuresPerUnit,
    growth: 1.5,
    patience: 2,
    tolerance: 0.005,
  };
  return plan ? { ...schedule, plan } : schedule;
}

/** Where a lambda schedule stands: what a training checkpoint keeps of it. */
export interface LambdaScheduleState {
  lambda: number;
  calm: number;
  previous: number;
  /** Epochs since lambda last changed (absent in checkpoints made before keep plans). */
  since?: number;
}

export class LambdaSchedule {
  lambda: number;
  private calm = 0;
  private previous = -1;
  private since = 0;

  constructor(private readonly options: LambdaScheduleOptions) {
    this.lambda = options.start;
  }

  get state(): LambdaScheduleState {
    return { lambda: this.lambda, calm: this.calm, previous: this.previous, since: this.since };
  }

  restore(state: LambdaScheduleState): void {
    ({ lambda: this.lambda, calm: this.calm, previous: this.previous } = state);
    this.since = state.since ?? 0;
  }

  /**
   * Records one epoch's validation accuracy and, for a plan, the epoch and the share the mask sends (in bytes, as a
   * fraction of every feature's value: a dynamic frame's selection counts); returns true when lambda grew.
   */
  update(accuracy: number, progress?: { epoch: number; share: number }): boolean {
    const dropped = this.previous >= 0 && accuracy < this.previous - this.options.tolerance;
    this.previous = accuracy;
    this.calm = dropped ? 0 : this.calm + 1;
    this.since += 1;
    const plan = this.options.plan;
    if (plan && progress) {
      if (progress.share < plan.keep * HOLD_BAND) {
        this.changeBy(1 / this.options.growth);
        return false;
      }
      if (progress.share <= plan.keep) return false;
      if (progress.share > plannedKeep(plan, progress.epoch) && this.since >= plan.every) {
        this.changeBy(this.options.growth);
        return true;
      }
    }
    if (this.calm < this.options.patience) return false;
    this.changeBy(this.options.growth);
    return true;
  }

  private changeBy(factor: number): void {
    this.lambda *= factor;
    this.calm = 0;
    this.since = 0;
  }
}

/**
 * A plan to reach `keep` by two thirds of the mask epochs after the warm-up, leaving a third to train at that share,
 * growing lambda at most every other epoch on the way (every epoch overshot: on the full MNIST split lambda grew 38x in
 * 8 epochs, the static mask fell from 7.7% to 2.9% of the pixels and its validation accuracy from 95.8% to 77%). The
 * fractions are set beforehand, not tuned on test data: the benches choose checkpoints, not schedules, on validation
 * data.
 */
export function planToReach(keep: number, warmupEpochs: number, epochs: number): KeepPlan {
  return { keep, from: warmupEpochs, by: warmupEpochs + Math.round(((epochs - warmupEpochs) * 2) / 3), every: 2 };
}

/** The share a plan expects at `epoch`: every unit until `from`, `keep` from `by` on, geometric between. */
export function plannedKeep(plan: KeepPlan, epoch: number): number {
  const t = Math.min(1, Math.max(0, (epoch - plan.from) / Math.max(plan.by - plan.from, 1)));
  return Math.pow(plan.keep, t);
}

/**
 * Units ranked by importance, most important first: the paper's "given" mask. A random forest learns the labels from
 * the pixels of up to `forest.samples` training rows (the split's first nine tenths: the last tenth is the held-out
 * validation data of masked runs); a unit's score is the summed Gini importance of its features. No network involved.
 */
export function importanceRanking(
  split: Split,
  layout: MaskLayout,
  classes: number,
  forest: ForestOptions = DEFAULT_FOREST,
): number[] {
  const features = layout.unitOf.length;
  const rows = Math.max(1, Math.min(split.count - Math.floor(split.count / 10), forest.samples));
  const importance = forestImportance(split.x, split.y, rows, features, classes, forest);
  const score = new Float64Array(layout.units);
  for (let f = 0; f < features; f++) score[layout.unitOf[f]] += importance[f];
  return Array.from({ length: layout.units }, (_, u) => u).sort((a, b) => score[b] - score[a] || a - b);
}

/** `count` distinct units drawn with `rng`, ascending. */
export function randomUnits(units: number, count: number, rng: () => number): number[] {
  const order = Array.from({ length: units }, (_, u) => u);
  for (let i = units - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order.slice(0, count).sort((a, b) => a - b);
}

/**
 * A learned static mask trimmed to frames of at most `maxFrameBytes`: the kept units least open at the end of
 * training (lowest logits) are dropped, and their logits closed, until the frame fits. A checkpoint a pixel or two
 * over a budget, trimmed and fine-tuned, can be the best mask within it. Undefined when the mask fits already, or
 * cannot (the header alone is over).
 */
export function trimStaticMask(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  maxFrameBytes: number,
): { spec: ModelSpec; tensors: Map<string, Float32Array> } | undefined {
  const mask = spec.inputMask;
  const logits = tensors.get(MASK_LOGITS);
  if (mask?.kind !== 'static' || !logits) return undefined;
  const shape = spec.input.shape;
  const bytes = (kept: number[]): number => new SelectionCodec({ ...mask, kept }, shape, 0).frameBytes();
  if (bytes(mask.kept) <= maxFrameBytes) return undefined;
  const byOpenness = [...mask.kept].sort((a, b) => logits[b] - logits[a] || a - b);
  let count = byOpenness.length;
  while (count > 0 && bytes(byOpenness.slice(0, count)) > maxFrameBytes) count--;
  if (count === 0) return undefined;
  const kept = byOpenness.slice(0, count).sort((a, b) => a - b);
  const closed = Float32Array.from(logits);
  for (const u of byOpenness.slice(count)) closed[u] = Math.min(closed[u], -MASK_OPEN_LOGIT);
  return {
    spec: { ...spec, inputMask: { ...mask, kept } },
    tensors: new Map([...tensors, [MASK_LOGITS, closed]]),
  };
}

/** How far over a byte budget a learned static mask's checkpoint may be to be trimmed to it: 10%. */
export const TRIM_SLACK = 1.1;

/**
 * The mask checkpoint of `run` to fine-tune within `maxBytes` per instance (cmp train --from --max-bytes): the most
 * accurate on validation among those that fit, unless the run's mask is learned and static and its leanest checkpoint
 * over the budget by at most TRIM_SLACK is more accurate: that one is trimmed to fit (trimStaticMask), and
 * `trimmedBytes` says to how many bytes. In the select bench the trimmed checkpoint, fine-tuned, was the best on
 * validation within both MNIST's and Fashion-MNIST's budgets. Nothing within reach is chooseMaskCheckpoint's error.
 */
export function maskWithinBytes(
  run: Run,
  maxBytes: number,
): {
  dir: string;
  spec: ModelSpec;
  tensors: Map<string, Float32Array>;
  checkpoint: MaskCheckpointRecord;
  trimmedBytes?: number;
} {
  const masking = run.record.masking;
  const checkpoints = masking?.checkpoints ?? [];
  const over =
    masking?.kind === 'static' && masking.source === 'learned'
      ? checkpoints
          .filter((c) => c.frameBytes > maxBytes && c.frameBytes <= maxBytes * TRIM_SLACK)
          .sort((a, b) => a.frameBytes - b.frameBytes)[0]
      : undefined;
  const fits = !over || checkpoints.some((c) => c.frameBytes <= maxBytes + 1e-9);
  const fitting = fits ? chooseMaskCheckpoint(run, { maxBytes }) : undefined;
  if (over && (!fitting || over.validationAccuracy > fitting.checkpoint.validationAccuracy)) {
    const dir = join(run.dir, over.dir);
    const loaded = loadRun(dir);
    const trimmed = trimStaticMask(loaded.record.spec, loaded.tensors, maxBytes);
    if (trimmed?.spec.inputMask) {
      const trimmedBytes = new SelectionCodec(trimmed.spec.inputMask, trimmed.spec.input.shape, 0).frameBytes();
      return { dir, ...trimmed, checkpoint: over, trimmedBytes };
    }
  }
  const chosen = fitting ?? chooseMaskCheckpoint(run, { maxBytes });
  const loaded = loadRun(chosen.dir);
  return { dir: chosen.dir, spec: loaded.record.spec, tensors: loaded.tensors, checkpoint: chosen.checkpoint };
}
