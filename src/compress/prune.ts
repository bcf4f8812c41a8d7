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
/**
 * unit: whole neurons/filters leave the network, which shrinks; connection: the MINT paper's granularity, the blocks of
 * weights joining a parent group to a child group of the next layer are zeroed and held at zero while retraining (a
 * parent left with no outgoing connection then leaves the network as a unit).
 */
export type PruneGranularity = 'unit' | 'connection';
export const PRUNE_GRANULARITIES: readonly PruneGranularity[] = Object.freeze(['unit', 'connection']);

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
  /** Also score the first layer's blocks from groups of input features (see GroupScores.inputBlocks). */
  inputBlocks?: boolean;
  onProgress?: (text: string) => void;
}

/** Importance of each group of each prunable layer (higher = keep). */
export interface GroupScores {
  layer: string;
  units: number;
  groupSize: number;
  scores: Float64Array;
  /** Importance of the connections from this layer's groups to the next weight layer's groups (see BlockScores). */
  blocks?: BlockScores;
  /**
   * The first weight layer only, when it is dense over the flattened input and connections are cut there: importance
   * of its own weights' blocks, from groups of `groupSize` consecutive input features (pixels in raster order) to its
   * groups of units. Pixels never leave the network: a pixel group with no connection left is only zeros in the file.
   */
  inputBlocks?: BlockScores & { parentUnits: number };
}

/**
 * Importance of each block of the next weight layer's weights: the weights joining one of the parent layer's groups to
 * one child group (the next layer's units in runs of `childGroupSize`; the classifier's logits one by one), as a
 * [child groups x parent groups] row-major matrix. mint: the conditional dependency itself; mint-pairwise: the binned
 * mutual information; magnitude and gss: the mean absolute weight of the block.
 */
export interface BlockScores {
  /** The weight layer whose weights the blocks cut. */
  layer: string;
  childUnits: number;
  childGroupSize: number;
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
  const weightLayers = spec.layers.filter(isWeightLayer);
  const inputUnits = options.inputBlocks ? inputFeatures(spec) : undefined;
  return layers.map((layer, l) => {
    const units = unitsOf(layer);
    const next = weightLayers[weightLayers.indexOf(layer) + 1];
    const blocks = blockMagnitudes(
      units,
      next,
      tensors,
      options.groupSize,
      next === weightLayers.at(-1) ? 1 : options.groupSize,
    );
    const input =
      l === 0 && inputUnits !== undefined
        ? {
            inputBlocks: {
              ...blockMagnitudes(inputUnits, layer, tensors, options.groupSize, options.groupSize),
              parentUnits: inputUnits,
            },
          }
        : {};
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
        blocks,
        ...input,
      };
    }
    incomingNorms(layer, tensors, perUnit, 1);
    return {
      layer: layer.name,
      units,
      groupSize: options.groupSize,
      scores: groupSum(perUnit, options.groupSize, false),
      blocks,
      ...input,
    };
  });
}

/**
 * The features the first weight layer reads when connections from the input can be cut there: a dense first layer
 * over the flattened, unmasked input. Otherwise (a conv first layer, an input mask) a one-line error.
 */
export function inputFeatures(spec: ModelSpec): number {
  const first = spec.layers.find(isWeightLayer);
  if (first?.kind !== 'dense' || spec.inputMask) {
    throw new CmpError(
      'BAD_FLAG',
      `Connections from the input are cut only in a dense first layer over an unmasked input, and ${first?.name ?? 'the model'} is not one. Name later layers in --layers.`,
    );
  }
  return spec.input.shape.reduce((a, b) => a * b, 1);
}

/**
 * Whether connection pruning cuts the first weight layer's connections from the input: when `counted` names that
 * layer (a one-line error if it cannot be cut, see inputFeatures), or, counting every layer, when it can be.
 */
export function cutsFromInput(spec: ModelSpec, counted?: string[]): boolean {
  const first = spec.layers.find(isWeightLayer);
  if (!first || (counted && !counted.includes(first.name))) return false;
  if (counted) return inputFeatures(spec) > 0;
  return first.kind === 'dense' && !spec.inputMask;
}

/**
 * Calls `visit(index, parent, child)` for every weight of `next`, fed by `units` parent units (the layer before it, or
 * the input's features): which parent feeds it and which of `next`'s units it feeds. Dense weights are [in, out]
 * (after a flatten, each unit feeds H*W consecutive rows); conv weights are OIHW.
 */
function forEachConnection(
  units: number,
  next: WeightLayerSpec,
  weights: number,
  visit: (index: number, parent: number, child: number) => void,
): void {
  const out = unitsOf(next);
  if (next.kind === 'dense') {
    const perUnit = weights / out / units;
    for (let i = 0; i < weights; i++) visit(i, Math.floor(Math.floor(i / out) / perUnit), i % out);
  } else {
    const k2 = next.kernel * next.kernel;
    for (let i = 0; i < weights; i++) visit(i, Math.floor(i / k2) % units, Math.floor(i / (units * k2)));
  }
}

/** Mean absolute weight of each block of `next`'s weights (see BlockScores). */
function blockMagnitudes(
  parentUnits: number,
  next: WeightLayerSpec,
  tensors: Tensors,
  groupSize: number,
  childGroupSize: number,
): BlockScores {
  const w = tensors.get(`${next.name}.weight`) as Float32Array;
  const parents = Math.ceil(parentUnits / groupSize);
  const childUnits = unitsOf(next);
  const sums = new Float64Array(Math.ceil(childUnits / childGroupSize) * parents);
  const counts = new Float64Array(sums.length);
  forEachConnection(parentUnits, next, w.length, (i, parent, child) => {
    const b = Math.floor(child / childGroupSize) * parents + Math.floor(parent / groupSize);
    sums[b] += Math.abs(w[i]);
    counts[b]++;
  });
  return { layer: next.name, childUnits, childGroupSize, scores: sums.map((v, b) => v / counts[b]) };
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
  const inputs: Float32Array[] = [];
  for (let start = 0; start < sample.length; start += 250) {
    const idx = sample.slice(start, start + 250);
    const xs = new Float32Array(idx.length * features);
    idx.forEach((j, i) => xs.set(data.train.x.subarray(j * features, (j + 1) * features), i * features));
    // Pixels as stored: the network's normalization is one scale and shift, which moves no nearest neighbour.
    if (options.inputBlocks) inputs.push(xs);
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
  const groupsOf = (units: number, size: number): number[][] =>
    Array.from({ length: Math.ceil(units / size) }, (_, g) =>
      Array.from({ length: Math.min(size, units - g * size) }, (_, k) => g * size + k),
    );
  const childGroupSizeOf = (layer: WeightLayerSpec): number =>
    layer === weightLayers[weightLayers.length - 1] ? 1 : options.groupSize;
  // The [child groups x parent groups] dependencies of one layer's groups on the groups feeding it.
  const dependencies = (
    parents: LayerActivations,
    parentGroups: number[][],
    children: LayerActivations,
    childGroups: number[][],
  ): Float64Array => {
    if (options.method === 'mint') return conditionalDependencies(parents, parentGroups, children, childGroups);
    const dependency = new Float64Array(childGroups.length * parentGroups.length);
    const binned = (a: LayerActivations, groups: number[][]): Uint8Array[] =>
      groups.map((group) => {
        const summed = new Float64Array(a.count);
        for (let s = 0; s < a.count; s++) for (const u of group) summed[s] += a.values[s * a.units + u];
        return quantileBins(summed, options.bins);
      });
    const childBins = binned(children, childGroups);
    binned(parents, parentGroups).forEach((p, g) =>
      childBins.forEach((c, k) => (dependency[k * parentGroups.length + g] = mutualInformation(p, c, options.bins))),
    );
    return dependency;
  };
  return layers.map((layer, l) => {
    const next = weightLayers[weightLayers.indexOf(layer) + 1];
    const parentGroups = groupsOf(unitsOf(layer), options.groupSize);
    const childGroups = groupsOf(unitsOf(next), childGroupSizeOf(next));
    const dependency = dependencies(layerActivations(layer), parentGroups, layerActivations(next), childGroups);
    const scores = new Float64Array(parentGroups.length);
    for (let c = 0; c < childGroups.length; c++) {
      for (let g = 0; g < parentGroups.length; g++) scores[g] += dependency[c * parentGroups.length + g];
    }
    options.onProgress?.(
      `${options.method}: scored ${layer.name} (${parentGroups.length} groups x ${childGroups.length} children)`,
    );
    const childGroupSize = childGroupSizeOf(next);
    const blocks = { layer: next.name, childUnits: unitsOf(next), childGroupSize, scores: dependency };
    const scored: GroupScores = {
      layer: layer.name,
      units: unitsOf(layer),
      groupSize: options.groupSize,
      scores,
      blocks,
    };
    if (l === 0 && options.inputBlocks) {
      const parentUnits = inputFeatures(spec);
      const values = concat(inputs);
      const inputGroups = groupsOf(parentUnits, options.groupSize);
      const own = groupsOf(unitsOf(layer), options.groupSize);
      scored.inputBlocks = {
        layer: layer.name,
        childUnits: unitsOf(layer),
        childGroupSize: options.groupSize,
        parentUnits,
        scores: dependencies(
          { count: values.length / parentUnits, units: parentUnits, values },
          inputGroups,
          layerActivations(layer),
          own,
        ),
      };
      options.onProgress?.(
        `${options.method}: scored the input into ${layer.name} (${inputGroups.length} groups x ${own.length} children)`,
      );
    }
    return scored;
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
  const cut = bisectCut(
    scope,
    scores.map((s) => s.scores),
    (c) => weightCount(prunedSpec(spec, planFor(c)), counted) <= target,
  );
  return planFor(cut);
}

/**
 * The smallest cut (to within 2^-50 of its range) at which `reached` holds, for cuts that remove more as they rise:
 * per layer a share of each layer's items in [0, 1]; global a score relative to its layer's mean, up to the largest.
 */
function bisectCut(scope: PruneScope, layerScores: Float64Array[], reached: (cut: number) => boolean): number {
  const relativeMax = (v: Float64Array): number => Math.max(...v) / (v.reduce((a, x) => a + x, 0) / v.length || 1);
  let lo = 0;
  let hi = scope === 'per-layer' ? 1 : Math.max(...layerScores.map(relativeMax)) + 1;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (reached(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/** A connection plan: the units that leave (parents left with no connection) and the weights held at zero. */
export interface ConnectionPlan {
  plan: KeepPlan;
  /** Per weight tensor ("fc2.weight") in the unpruned spec's layout: 1 where a weight stays, 0 where it is cut. */
  masks: Map<string, Float32Array>;
  /** Weights that stay, of all weight layers or of those counted. */
  remaining: number;
  /** The weight layers whose blocks were cut. */
  cutLayers: string[];
}

/**
 * Chooses the blocks of connections to cut so that `sparsity` of the weights (of all weight layers, or of those named
 * in `counted`) is gone, as the MINT paper prunes: only the layers the measure counts are cut (all with block scores
 * when nothing is named); per layer, the same share of each layer's blocks (a threshold per layer at that quantile of
 * its scores); global: blocks ranked across layers by their score relative to their layer's mean. The first layer's
 * blocks come from groups of input features (GroupScores.inputBlocks) when scored. A parent unit left with no outgoing
 * connection leaves (and its incoming weights with it); input features stay. Every cut layer keeps at least one block.
 */
export function planConnections(
  spec: ModelSpec,
  scores: GroupScores[],
  sparsity: number,
  scope: PruneScope,
  counted?: string[],
): ConnectionPlan {
  const weightLayers = spec.layers.filter(isWeightLayer);
  const shapes = inferShapes(spec);
  const sizes = new Map(spec.layers.map((l, i) => [l.name, shapes[i].weightCount]));
  const layerNamed = (name: string): WeightLayerSpec => weightLayers.find((l) => l.name === name) as WeightLayerSpec;
  // Each cut: the blocks of one weight layer's weights, from a hidden layer's groups (which may then leave) or from
  // the input's feature groups (which never do).
  interface Cut {
    blocks: BlockScores;
    parentUnits: number;
    parentGroupSize: number;
    /** The hidden layer's scores the blocks leave from; absent for the input. */
    parent?: GroupScores;
  }
  const cuts = scores.flatMap((s): Cut[] => {
    const fromLayer = s.blocks
      ? [{ blocks: s.blocks, parentUnits: s.units, parentGroupSize: s.groupSize, parent: s }]
      : [];
    const fromInput = s.inputBlocks
      ? [{ blocks: s.inputBlocks, parentUnits: s.inputBlocks.parentUnits, parentGroupSize: s.groupSize }]
      : [];
    return [...fromInput, ...fromLayer].filter((c) => !counted || counted.includes(c.blocks.layer));
  });
  if (cuts.length === 0) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `Connection pruning cuts the weights after a hidden layer, and none of ${counted?.join(', ') ?? 'the layers'} has one. Use --granularity unit.`,
    );
  }
  const total = weightLayers.reduce(
    (a, l) => a + (!counted || counted.includes(l.name) ? (sizes.get(l.name) ?? 0) : 0),
    0,
  );
  const planFor = (threshold: number): ConnectionPlan => {
    const masks = new Map(
      weightLayers.map((l) => [`${l.name}.weight`, new Float32Array(sizes.get(l.name) ?? 0).fill(1)]),
    );
    const plan: KeepPlan = new Map();
    for (const { blocks, parentUnits, parentGroupSize, parent } of cuts) {
      const n = blocks.scores.length;
      const order = Array.from(blocks.scores.keys()).sort((a, b) => blocks.scores[a] - blocks.scores[b] || a - b);
      const mean = blocks.scores.reduce((a, v) => a + v, 0) / n || 1;
      const removed =
        scope === 'per-layer'
          ? order.slice(0, Math.min(n - 1, Math.round(threshold * n)))
          : order.filter((b) => blocks.scores[b] / mean < threshold).slice(0, n - 1);
      const gone = new Uint8Array(n);
      for (const b of removed) gone[b] = 1;
      const next = layerNamed(blocks.layer);
      const mask = masks.get(`${next.name}.weight`) as Float32Array;
      const parentGroups = Math.ceil(parentUnits / parentGroupSize);
      const live = new Uint8Array(parentUnits);
      forEachConnection(parentUnits, next, mask.length, (i, p, child) => {
        if (gone[Math.floor(child / blocks.childGroupSize) * parentGroups + Math.floor(p / parentGroupSize)])
          mask[i] = 0;
        else live[p] = 1;
      });
      if (!parent) continue;
      // A parent unit with no outgoing connection leaves the network, its incoming weights with it.
      const keep = Array.from(live.keys()).filter((u) => live[u]);
      plan.set(parent.layer, keep);
      const layer = layerNamed(parent.layer);
      const own = masks.get(`${layer.name}.weight`) as Float32Array;
      const fanIn = own.length / parentUnits;
      for (let i = 0; i < own.length; i++) {
        const u = layer.kind === 'dense' ? i % parentUnits : Math.floor(i / fanIn);
        if (!live[u]) own[i] = 0;
      }
    }
    let remaining = 0;
    for (const l of weightLayers) {
      if (counted && !counted.includes(l.name)) continue;
      for (const v of masks.get(`${l.name}.weight`) as Float32Array) remaining += v;
    }
    return { plan, masks, remaining, cutLayers: [...new Set(cuts.map((c) => c.blocks.layer))] };
  };
  // What stays falls as the threshold rises: bisect for the threshold that reaches the target.
  const target = total * (1 - sparsity) * (1 + 1e-9);
  const blockScores = cuts.map((c) => c.blocks.scores);
  return planFor(bisectCut(scope, blockScores, (threshold) => planFor(threshold).remaining <= target));
}

/** Weights in all weight layers of a spec, or in the weight layers named in `layers`. */
export function weightCount(spec: ModelSpec, layers?: string[]): number {
  const shapes = inferShapes(spec);
  return spec.layers.reduce((a, l, i) => a + (!layers || layers.includes(l.name) ? shapes[i].weightCount : 0), 0);
}

/** Weights that are not zero in all weight layers, or in the weight layers named in `layers` (pruned connections are). */
export function nonzeroWeights(spec: ModelSpec, tensors: Map<string, Float32Array>, layers?: string[]): number {
  let count = 0;
  for (const l of spec.layers.filter(isWeightLayer)) {
    if (layers && !layers.includes(l.name)) continue;
    for (const w of tensors.get(`${l.name}.weight`) as Float32Array) if (w !== 0) count++;
  }
  return count;
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
  options: ScoreOptions & {
    sparsity: number;
    scope: PruneScope;
    granularity?: PruneGranularity;
    counted?: string[];
    scores?: GroupScores[];
  },
): Promise<{
  spec: ModelSpec;
  tensors: Tensors;
  record: PruneRecord;
  scores: GroupScores[];
  /** Connection pruning: the weights retraining must hold at zero, in the pruned spec's layout. */
  weightMasks?: Map<string, Float32Array>;
}> {
  checkSparsity(options.sparsity);
  const spec = run.record.spec;
  const inputBlocks = options.granularity === 'connection' && cutsFromInput(spec, options.counted);
  // Scores computed earlier for the same run (a bench pruning one run to several shares) are reused if they hold
  // what this cut needs.
  const scores =
    options.scores && (!inputBlocks || options.scores[0]?.inputBlocks)
      ? options.scores
      : await scoreGroups(spec, run.tensors, data, { ...options, inputBlocks });
  let plan: KeepPlan;
  let applied: { spec: ModelSpec; tensors: Tensors };
  let weightMasks: Map<string, Float32Array> | undefined;
  if (options.granularity === 'connection') {
    const connections = planConnections(spec, scores, options.sparsity, options.scope, options.counted);
    plan = connections.plan;
    const masked = new Map(run.tensors);
    for (const [name, mask] of connections.masks) {
      masked.set(
        name,
        (run.tensors.get(name) as Float32Array).map((w, i) => w * mask[i]),
      );
    }
    applied = applyPruning(spec, masked, plan);
    const cutLayers = new Set(connections.cutLayers.map((l) => `${l}.weight`));
    const masks = applyPruning(spec, connections.masks, plan).tensors;
    weightMasks = new Map([...masks].filter(([name]) => cutLayers.has(name)));
  } else {
    plan = planPruning(spec, scores, options.sparsity, options.scope, options.counted);
    applied = applyPruning(spec, run.tensors, plan);
  }
  const result = { spec: applied.spec, tensors: await recalibrateBatchNorm(applied.spec, applied.tensors, data) };
  const kept: PruneRecord['kept'] = {};
  for (const s of scores) kept[s.layer] = { kept: plan.get(s.layer)?.length ?? s.units, of: s.units };
  return {
    ...result,
    scores,
    ...(weightMasks ? { weightMasks } : {}),
    record: {
      method: options.method,
      scope: options.scope,
      ...(options.granularity === 'connection' ? { granularity: 'connection' } : {}),
      sparsityTarget: options.sparsity,
      groupSize: options.groupSize,
      ...(options.method.startsWith('mint') ? { samplesPerClass: options.samplesPerClass } : {}),
      from: run.dir,
      weightsBefore: weightCount(spec),
      weightsAfter: weightMasks ? nonzeroWeights(result.spec, result.tensors) : weightCount(result.spec),
      kept,
    },
  };
}
