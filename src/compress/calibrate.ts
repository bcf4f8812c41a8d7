// Exit calibration: choose per-exit entropy thresholds on held-out data for a target accuracy or a latency budget.

import { CmpError } from '../errors.js';
import { argmaxAt, softmaxEntropy } from '../core/entropy.js';
import type { FrozenModel } from '../core/frozen.js';
import type { CalibrationSummary, ExitOperatingPoint } from '../core/run.js';
import type { Dataset, Split } from '../data/datasets.js';
import { heldOut, predictFrozenWithExits } from './train.js';

/** Candidate thresholds per exit: these percentiles of the exit's entropies on validation data, plus "never". */
const PERCENTILES: readonly number[] = Object.freeze(Array.from({ length: 21 }, (_, i) => i * 5));

export type CalibrationGoal = { targetAccuracy: number } | { latencyBudgetMs: number } | { thresholds: number[] };

/** Per-sample entropies and correctness at every exit and at the final classifier. */
export interface ExitObservations {
  count: number;
  /** [exit][sample] */
  entropies: Float64Array[];
  /** [exit or final][sample] */
  correct: Uint8Array[];
}

/** The last `validationCount` samples of the training split (held out of training by train-run). */
export function validationSplit(data: Dataset, validationCount: number): Split {
  if (validationCount <= 0) {
    throw new CmpError(
      'RUN_INVALID',
      'The run held out no validation data. Retrain it with --exits (cmp train holds out a tenth).',
    );
  }
  return heldOut(data, validationCount);
}

/** Runs the frozen model (all heads) over a split and records entropies and correctness. */
export async function observeExits(frozen: FrozenModel, data: Dataset, split: Split): Promise<ExitObservations> {
  const { logits, exits } = await predictFrozenWithExits(frozen, data, split);
  const classes = frozen.spec.labels.length;
  const correctOf = (l: Float32Array): Uint8Array =>
    Uint8Array.from({ length: split.count }, (_, i) => Number(argmaxAt(l, i * classes, classes) === split.y[i]));
  return {
    count: split.count,
    entropies: exits.map((l) =>
      Float64Array.from({ length: split.count }, (_, i) => softmaxEntropy(l, i * classes, classes)),
    ),
    correct: [...exits.map(correctOf), correctOf(logits)],
  };
}

/** Accuracy, mean latency and exit shares of one threshold vector (exit at the first entropy below threshold). */
export function operatingPoint(
  obs: ExitObservations,
  thresholds: number[],
  stageLatencyMs: number[],
): ExitOperatingPoint {
  const n = obs.entropies.length;
  const cumulative = stageLatencyMs.map((_, k) => stageLatencyMs.slice(0, k + 1).reduce((a, b) => a + b, 0));
  const shares = new Array<number>(n + 1).fill(0);
  let correct = 0;
  let latency = 0;
  for (let i = 0; i < obs.count; i++) {
    let taken = n;
    for (let e = 0; e < n; e++) {
      if (obs.entropies[e][i] < thresholds[e]) {
        taken = e;
        break;
      }
    }
    shares[taken]++;
    correct += obs.correct[taken][i];
    latency += cumulative[taken];
  }
  return {
    thresholds,
    accuracy: correct / obs.count,
    meanLatencyMs: latency / obs.count,
    exitShares: shares.map((s) => s / obs.count),
  };
}

/** Tries every combination of candidate thresholds; returns the Pareto set (fastest first) and the full network. */
export function paretoSet(
  obs: ExitObservations,
  stageLatencyMs: number[],
): { pareto: ExitOperatingPoint[]; full: ExitOperatingPoint } {
  const candidates = obs.entropies.map((h) => {
    const sorted = Float64Array.from(h).sort();
    // Midway between neighbouring observed entropies, never on one: a threshold equal to a sample's entropy would
    // let float rounding in another runtime decide which side that sample falls.
    const values = PERCENTILES.map((p) => {
      const i = Math.floor((p / 100) * (sorted.length - 1));
      return i === sorted.length - 1 ? sorted[i] + 1e-3 : (sorted[i] + sorted[i + 1]) / 2;
    });
    return [-1, ...new Set(values)];
  });
  const points: ExitOperatingPoint[] = [];
  const walk = (e: number, chosen: number[]): void => {
    if (e === candidates.length) {
      points.push(operatingPoint(obs, [...chosen], stageLatencyMs));
      return;
    }
    for (const t of candidates[e]) walk(e + 1, [...chosen, t]);
  };
  walk(0, []);
  points.sort((a, b) => a.meanLatencyMs - b.meanLatencyMs || b.accuracy - a.accuracy);
  const pareto: ExitOperatingPoint[] = [];
  for (const p of points) if (!pareto.length || p.accuracy > pareto[pareto.length - 1].accuracy) pareto.push(p);
  return {
    pareto,
    full: operatingPoint(
      obs,
      obs.entropies.map(() => -1),
      stageLatencyMs,
    ),
  };
}

/**
 * Checks a calibration goal against the model before any work: one threshold per exit, each in [0, ln(classes)];
 * a target accuracy in (0, 1].
 */
export function checkCalibrationGoal(goal: CalibrationGoal, exits: number, classes: number): void {
  if ('thresholds' in goal) {
    const max = Math.log(classes);
    if (goal.thresholds.length !== exits) {
      throw new CmpError(
        'BAD_FLAG',
        `--thresholds needs ${exits} values, one per exit (got ${goal.thresholds.length}).`,
      );
    }
    const bad = goal.thresholds.find((t) => !(t >= 0 && t <= max));
    if (bad !== undefined) {
      throw new CmpError(
        'BAD_FLAG',
        `Threshold ${bad} is outside the entropy range [0, ${max.toFixed(4)}] nats of ${classes} classes. Pick values in it.`,
      );
    }
  } else if ('targetAccuracy' in goal && !(goal.targetAccuracy > 0 && goal.targetAccuracy <= 1)) {
    throw new CmpError('BAD_FLAG', `--target-accuracy is a share in (0, 1], got ${goal.targetAccuracy}. Example: 0.88`);
  }
}

/** Chooses thresholds for `goal` from the observations (checked by {@link checkCalibrationGoal}). */
export function calibrate(
  obs: ExitObservations,
  stageLatencyMs: number[],
  goal: CalibrationGoal,
  classes: number,
): Omit<CalibrationSummary, 'validationCount' | 'stageLatencyMs'> {
  checkCalibrationGoal(goal, obs.entropies.length, classes);
  const { pareto, full } = paretoSet(obs, stageLatencyMs);
  let chosen: ExitOperatingPoint | undefined;
  if ('thresholds' in goal) {
    chosen = operatingPoint(obs, goal.thresholds, stageLatencyMs);
  } else if ('targetAccuracy' in goal) {
    chosen = pareto.find((p) => p.accuracy >= goal.targetAccuracy) ?? pareto[pareto.length - 1];
  } else {
    chosen = [...pareto].reverse().find((p) => p.meanLatencyMs <= goal.latencyBudgetMs) ?? pareto[0];
  }
  return { goal, chosen, full, pareto };
}
