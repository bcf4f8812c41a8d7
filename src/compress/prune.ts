// Structural pruning: score neurons/filters (MINT conditional mutual information, GSS group norms, magnitude), remove the
// weakest groups physically from the spec and tensors, then fine-tune.

import type * as tfTypes from '@tensorflow/tfjs';
import { CmpError } from '../errors.js';
import { freeze } from '../core/frozen.js';
import type { PruneSummary, Run } from '../core/run.js';
import { inferShapes, isWeightLayer, type ModelSpec, type WeightLayerSpec } from '../core/spec.js';
import type { Dataset } from '../data/datasets.js';
import { prunableLayers, unitsOf } from './gss.js';
import { conditionalDependencies, type LayerActivations } from './cmi.js';
import { makeRng } from '../core/rng.js';
import { forwardFrozen } from './network.js';
import { loadTf } from './tf.js';
import { recalibrateBatchNorm } from './train.js';

/**
 * mint: the paper's score, each parent group's dependency with the next layer's groups conditioned on the other parents;
 * mint-pairwise: cmp's earlier simplification, the plain (binned) mutual information of each parent with each child;
 * gss: group norms after group-sparse training; magnitude: the L1 norm of each unit's incoming weights.
 */
export type PruneMethod = 'mint' | 'mint-pairwise' | 'gss' | 'magnitude';
export const PRUNE_METHODS: readonly PruneMethod[] = Object.freeze(['mint', 'mint-pairwise', 'gss', 'magnitude']);
export type PruneScope = 'per-layer' | 'global';

export interface ScoreOptions {
  method: PruneMethod;
  /** Neurons/filters scored and removed together. */
  groupSize: number;
  /** MINT: class-balanced samples per class whose activations estimate the mutual information. */
  samplesPerClass: number;
  /** mint-pairwise: equal-frequency bins per activation for the histogram estimate. */
  bins: number;
  /** MINT: seeds the order of the samples (the estimator cuts them in thirds). */
  seed?: number;
  onProgress?: (text: string) => void;
}

/** Importance of each group of each prunable layer (higher = keep). */
export interface GroupScores {
  layer: string;
  units: number;
  groupSize: number;
  scores: Float64Array;
}

export type Tensors = Map<string, Float32Array>;

/** Scores the groups of every prunable layer of a trained run. */
export async function scoreGroups(
  spec: ModelSpec,
  tensors: Tensors,
  data: Dataset,
  options: ScoreOptions,
): Promise<GroupScores[]> {
  const layers = prunableLayers(spec);
  if (layers.length === 0) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `The model has no hidden layer to prune (only the classifier). Train one with --widths.`,
    );
  }
  if (options.method === 'mint' || options.method === 'mint-pairwise') {
    return mintScores(spec, tensors, data, layers, options);
  }
  return layers.map((layer) => {
    const units = unitsOf(layer);
    const perUnit = new Float64Array(units);
    if (options.method === 'gss') {
      // The norm the group lasso acted on: batch-norm scale and shift, or incoming weights and bias.
      if (layer.batchNorm) {
        const gamma = tensors.get(`${layer.name}.bn.gamma`) as Float32Array;
        const beta = tensors.get(`${layer.name}.bn.beta`) as Float32Array;
        for (let u = 0; u < units; u++) perUnit[u] = gamma[u] ** 2 + beta[u] ** 2;
      } else {
        incomingNorms(layer, tensors, perUnit, 2);
        const bias = tensors.get(`${layer.name}.bias`) as Float32Array;
        for (let u = 0; u < units; u++) perUnit[u] += bias[u] ** 2;
      }
      return {
        layer: layer.name,
        units,
        groupSize: options.groupSize,
        scores: groupSum(perUnit, options.groupSize, true),
      };
    }
    incomingNorms(layer, tensors, perUnit, 1);
    return {
      layer: layer.name,
      units,
      groupSize: options.groupSize,
      scores: groupSum(perUnit, options.groupSize, false),
    };
  });
}

/** L1 (p = 1) or squared L2 (p = 2) norm of each unit's incoming weights. */
function incomingNorms(layer: WeightLayerSpec, tensors: Tensors, out: Float64Array, p: 1 | 2): void {
  const w = tensors.get(`${layer.name}.weight`) as Float32Array;
  const units = unitsOf(layer);
  const fanIn = w.length / units;
  for (let i = 0; i < w.length; i++) {
    // Dense weights are [in, out]: unit = column; conv weights are OIHW: unit = leading index.
    const u = layer.kind === 'dense' ? i % units : Math.floor(i / fanIn);
    out[u] += p === 1 ? Math.abs(w[i]) : w[i] * w[i];
  }
}

/** Sums per-unit values over consecutive groups (square-rooted for L2 norms). */
function groupSum(perUnit: Float64Array, groupSize: number, sqrt: boolean): Float64Array {
  const groups = Math.ceil(perUnit.length / groupSize);
  const out = new Float64Array(groups);
  for (let u = 0; u < perUnit.length; u++) out[Math.floor(u / groupSize)] += perUnit[u];
  return sqrt ? out.map(Math.sqrt) : out;
}

/**
 * MINT on a class-balanced sample of the training split (the first samples of each class, in a seeded order). The
 * groups of a layer are runs of `groupSize` consecutive units (conv outputs averaged over positions, as the authors do);
 * the children of the last hidden layer are the classifier's logits, one group each. mint: a parent group's score is
 * the sum over the child groups of its conditional dependency given the other parents (see cmi.ts), so a parent whose
 * information its siblings already carry scores low even when it tells the children much. mint-pairwise: the sum over
 * child groups of the binned mutual information of the groups' summed activations, blind to that redundancy.
 */
async function mintScores(
  spec: ModelSpec,
  tensors: Tensors,
  data: Dataset,
  layers: WeightLayerSpec[],
  options: ScoreOptions,
): Promise<GroupScores[]> {
  const { tf } = await loadTf();
  const frozen = freeze(spec, tensors);
  const sample = shuffle(balancedSample(data, options.samplesPerClass), options.seed ?? 1);
  const weightLayers = spec.layers.filter(isWeightLayer);
  const activations = new Map<string, Float32Array[]>(weightLayers.map((l) => [l.name, []]));
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  for (let start = 0; start < sample.length; start += 250) {
    const idx = sample.slice(start, start + 250);
    const xs = new Float32Array(idx.length * features);
    idx.forEach((j, i) => xs.set(data.train.x.subarray(j * features, (j + 1) * features), i * features));
    const x = tf.tensor4d(xs, [idx.length, ...data.inputShape]);
    const logits = forwardFrozen(tf, frozen, x, (name, out: tfTypes.Tensor) => {
      // Conv outputs are NHWC: one value per filter and sample, the mean over positions.
      const perUnit = out.rank === 4 ? tf.mean(out, [1, 2]) : out;
      (activations.get(name) as Float32Array[]).push(perUnit.dataSync() as Float32Array);
    });
    tf.dispose([x, logits]);
    options.onProgress?.(`mint: activations ${Math.min(start + 250, sample.length)}/${sample.length}`);
  }
  const layerActivations = (layer: WeightLayerSpec): LayerActivations => {
    const units = unitsOf(layer);
    const values = concat(activations.get(layer.name) as Float32Array[]);
    return { count: values.length / units, units, values };
  };
  const groupsOf = (layer: WeightLayerSpec): number[][] => {
    const units = unitsOf(layer);
    const size = layer === weightLayers[weightLayers.length - 1] ? 1 : options.groupSize;
    return Array.from({ length: Math.ceil(units / size) }, (_, g) =>
      Array.from({ length: Math.min(size, units - g * size) }, (_, k) => g * size + k),
    );
  };
  return layers.map((layer) => {
    const next = weightLayers[weightLayers.indexOf(layer) + 1];
    const parentGroups = groupsOf(layer);
    const childGroups = groupsOf(next);
    const parents = layerActivations(layer);
    const children = layerActivations(next);
    const scores = new Float64Array(parentGroups.length);
    if (options.method === 'mint') {
      const dependency = conditionalDependencies(parents, parentGroups, children, childGroups);
      for (let c = 0; c < childGroups.length; c++) {
        for (let g = 0; g < parentGroups.length; g++) scores[g] += dependency[c * parentGroups.length + g];
      }
    } else {
      const binned = (a: LayerActivations, groups: number[][]): Uint8Array[] =>
        groups.map((group) => {
          const summed = new Float64Array(a.count);
          for (let s = 0; s < a.count; s++) for (const u of group) summed[s] += a.values[s * a.units + u];
          return quantileBins(summed, options.bins);
        });
      const childBins = binned(children, childGroups);
      binned(parents, parentGroups).forEach((p, g) => {
        for (const c of childBins) scores[g] += mutualInformation(p, c, options.bins);
      });
    }
    options.onProgress?.(
      `${options.method}: scored ${layer.name} (${parentGroups.length} groups x ${childGroups.length} children)`,
    );
    return { layer: layer.name, units: unitsOf(layer), groupSize: options.groupSize, scores };
  });
}

/** Training-set indices, the first `perClass` of each class (the sets are mixed, so these are spread out). */
function balancedSample(data: Dataset, perClass: number): number[] {
  const taken = new Array<number>(data.labels.length).fill(0);
  const out: number[] = [];
  for (let i = 0; i < data.train.count && out.length < perClass * data.labels.length; i++) {
    const label = data.train.y[i];
    if (taken[label] < perClass) {
      taken[label]++;
      out.push(i);
    }
  }
  return out;
}

/** A seeded Fisher-Yates shuffle. */
function shuffle(values: number[], seed: number): number[] {
  const rng = makeRng(seed);
  const out = values.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Equal-frequency bin index (0..bins-1) of each value; ties share a bin. */
export function quantileBins(values: Float64Array, bins: number): Uint8Array {
  const order = Array.from(values.keys()).sort((a, b) => values[a] - values[b]);
  const out = new Uint8Array(values.length);
  let bin = 0;
  for (let r = 0; r < order.length; r++) {
    const target = Math.min(bins - 1, Math.floor((r * bins) / order.length));
    // A value equal to its predecessor stays in the predecessor's bin, so a constant activation carries no information.
    if (r > 0 && values[order[r]] === values[order[r - 1]]) out[order[r]] = bin;
    else out[order[r]] = bin = target;
  }
  return out;
}

/** Mutual information (nats) of two binned variables from their joint histogram. */
export function mutualInformation(a: Uint8Array, b: Uint8Array, bins: number): number {
  const n = a.length;
  const joint = new Float64Array(bins * bins);
  const pa = new Float64Array(bins);
  const pb = new Float64Array(bins);
  for (let i = 0; i < n; i++) {
    joint[a[i] * bins + b[i]]++;
    pa[a[i]]++;
    pb[b[i]]++;
  }
  let mi = 0;
  for (let i = 0; i < bins; i++) {
    for (let j = 0; j < bins; j++) {
      const pij = joint[i * bins + j];
      if (pij > 0) mi += (pij / n) * Math.log((pij * n) / (pa[i] * pb[j]));
    }
  }
  return mi;
}

/** Which units of each prunable layer survive (sorted indices). */
export type KeepPlan = Map<string, number[]>;

/**
 * Chooses the groups to remove so that `sparsity` of the weights is gone: of all weight layers, or of the weight layers
 * named in `counted` (the MINT paper's measure: the share of layer 2's weights). Per layer: the same share of groups
 * leaves every prunable layer (a threshold per layer at that quantile of its scores); global: groups are ranked across
 * layers by their score relative to their layer's mean. Every layer keeps at least one group.
 */
export function planPruning(
  spec: ModelSpec,
  scores: GroupScores[],
  sparsity: number,
  scope: PruneScope,
  counted?: string[],
): KeepPlan {
  const before = weightCount(spec, counted);
  const planFor = (cut: number): KeepPlan => {
    const plan: KeepPlan = new Map();
    for (const s of scores) {
      const groups = s.scores.length;
      const order = Array.from(s.scores.keys()).sort((a, b) => s.scores[a] - s.scores[b] || a - b);
      let removed: number[];
      if (scope === 'per-layer') {
        removed = order.slice(0, Math.min(groups - 1, Math.round(cut * groups)));
      } else {
        const mean = s.scores.reduce((a, v) => a + v, 0) / groups || 1;
        removed = order.filter((g) => s.scores[g] / mean < cut).slice(0, groups - 1);
      }
      const gone = new Set(removed);
      const keep: number[] = [];
      for (let u = 0; u < s.units; u++) if (!gone.has(Math.floor(u / s.groupSize))) keep.push(u);
      plan.set(s.layer, keep);
    }
    return plan;
  };
  // The weight count falls as the cut rises: bisect for the cut that reaches the target.
  const target = before * (1 - sparsity) * (1 + 1e-9);
  let lo = 0;
  let hi =
    scope === 'per-layer'
      ? 1
      : Math.max(
          ...scores.map((s) => Math.max(...s.scores) / (s.scores.reduce((a, v) => a + v, 0) / s.scores.length || 1)),
        ) + 1;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (weightCount(prunedSpec(spec, planFor(mid)), counted) > target) lo = mid;
    else hi = mid;
  }
  return planFor(hi);
}

/** Weights in all weight layers of a spec, or in the weight layers named in `layers`. */
export function weightCount(spec: ModelSpec, layers?: string[]): number {
  const shapes = inferShapes(spec);
  return spec.layers.reduce((a, l, i) => a + (!layers || layers.includes(l.name) ? shapes[i].weightCount : 0), 0);
}

/** The spec with each planned layer narrowed to its kept units. */
export function prunedSpec(spec: ModelSpec, plan: KeepPlan): ModelSpec {
  return {
    ...spec,
    layers: spec.layers.map((l) => {
      const keep = plan.get(l.name);
      if (!keep || !isWeightLayer(l)) return { ...l };
      return l.kind === 'dense' ? { ...l, units: keep.length } : { ...l, filters: keep.length };
    }),
  };
}

/**
 * Removes the planned units physically: the layer's weight columns (dense) or filters (conv), its batch-norm or bias
 * entries, and the matching inputs of the next weight layer (rows; input channels; or, after a flatten, the C*H*W
 * rows of each removed channel).
 */
export function applyPruning(spec: ModelSpec, tensors: Tensors, plan: KeepPlan): { spec: ModelSpec; tensors: Tensors } {
  const out = new Map(tensors);
  const weightIndices = spec.layers.map((l, i) => (isWeightLayer(l) ? i : -1)).filter((i) => i >= 0);
  for (const [name, keep] of plan) {
    const li = spec.layers.findIndex((l) => l.name === name);
    const layer = spec.layers[li] as WeightLayerSpec;
    const units = unitsOf(layer);
    // Read from `out`: pruning the previous layer may already have removed this layer's input rows or channels.
    const w = out.get(`${name}.weight`) as Float32Array;
    if (layer.kind === 'dense') out.set(`${name}.weight`, selectColumns(w, w.length / units, units, keep));
    else out.set(`${name}.weight`, selectBlocks(w, w.length / units, keep));
    for (const suffix of ['bias', 'bn.gamma', 'bn.beta', 'bn.mean', 'bn.variance']) {
      const t = tensors.get(`${name}.${suffix}`);
      if (t)
        out.set(
          `${name}.${suffix}`,
          Float32Array.from(keep, (u) => t[u]),
        );
    }
    const ni = weightIndices[weightIndices.indexOf(li) + 1];
    const next = spec.layers[ni] as WeightLayerSpec;
    const nw = out.get(`${next.name}.weight`) as Float32Array;
    if (next.kind === 'dense') {
      // Each of this layer's units feeds `perUnit` consecutive rows of the next dense layer (H*W after a flatten).
      const nextOut = next.units;
      const rows = nw.length / nextOut;
      const perUnit = rows / units;
      const rowsKept = keep.flatMap((u) => Array.from({ length: perUnit }, (_, k) => u * perUnit + k));
      out.set(`${next.name}.weight`, selectBlocks(nw, nextOut, rowsKept));
    } else {
      // OIHW: keep the input channels, per output filter.
      const k2 = next.kernel * next.kernel;
      const filters = next.filters;
      const kept = new Float32Array(filters * keep.length * k2);
      for (let o = 0; o < filters; o++) {
        keep.forEach((c, ci) =>
          kept.set(nw.subarray((o * units + c) * k2, (o * units + c + 1) * k2), (o * keep.length + ci) * k2),
        );
      }
      out.set(`${next.name}.weight`, kept);
    }
  }
  const pruned = prunedSpec(spec, plan);
  inferShapes(pruned);
  return { spec: pruned, tensors: out };
}

/** Columns `keep` of a row-major [rows, cols] matrix. */
function selectColumns(m: Float32Array, rows: number, cols: number, keep: number[]): Float32Array {
  const out = new Float32Array(rows * keep.length);
  for (let r = 0; r < rows; r++) keep.forEach((c, i) => (out[r * keep.length + i] = m[r * cols + c]));
  return out;
}

/** Blocks `keep` of `size` consecutive values each. */
function selectBlocks(m: Float32Array, size: number, keep: number[]): Float32Array {
  const out = new Float32Array(keep.length * size);
  keep.forEach((b, i) => out.set(m.subarray(b * size, (b + 1) * size), i * size));
  return out;
}

/** A sparsity target is a share of the weights strictly between 0 and 1; the CLI checks it before loading data. */
export function checkSparsity(sparsity: number): void {
  if (!(sparsity > 0 && sparsity < 1)) {
    throw new CmpError(
      'BAD_FLAG',
      `Sparsity must be between 0 and 1 (exclusive), got ${sparsity}. Example: --sparsity 0.9`,
    );
  }
}

/** What a prune did, recorded in the pruned run (kept: units kept per layer out of its original width). */
export type PruneRecord = PruneSummary;

/**
 * Scores, plans and applies pruning to a loaded run and re-estimates batch-norm statistics for the narrower layers;
 * fine-tuning is the caller's (see prune-run.ts).
 */
export async function pruneTensors(
  run: Run,
  data: Dataset,
  options: ScoreOptions & { sparsity: number; scope: PruneScope; counted?: string[]; scores?: GroupScores[] },
): Promise<{ spec: ModelSpec; tensors: Tensors; record: PruneRecord; scores: GroupScores[] }> {
  checkSparsity(options.sparsity);
  const spec = run.record.spec;
  // Scores computed earlier for the same run (a bench pruning one run to several shares) are reused.
  const scores = options.scores ?? (await scoreGroups(spec, run.tensors, data, options));
  const plan = planPruning(spec, scores, options.sparsity, options.scope, options.counted);
  const applied = applyPruning(spec, run.tensors, plan);
  const result = { spec: applied.spec, tensors: await recalibrateBatchNorm(applied.spec, applied.tensors, data) };
  const kept: PruneRecord['kept'] = {};
  for (const s of scores) kept[s.layer] = { kept: (plan.get(s.layer) as number[]).length, of: s.units };
  return {
    ...result,
    scores,
    record: {
      method: options.method,
      scope: options.scope,
      sparsityTarget: options.sparsity,
      groupSize: options.groupSize,
      ...(options.method.startsWith('mint') ? { samplesPerClass: options.samplesPerClass } : {}),
      from: run.dir,
      weightsBefore: weightCount(spec),
      weightsAfter: weightCount(result.spec),
      kept,
    },
  };
}
