// Guided structured sparsity (GSS): a group-lasso penalty over whole neurons/filters that spares a keep-alive share.

import type * as tfTypes from '@tensorflow/tfjs';
import { isWeightLayer, type ModelSpec, type WeightLayerSpec } from '../core/spec.js';
import type { Params } from './network.js';
import type { Tf } from './tf.js';

export interface GroupSparsityOptions {
  /** Weight of the group-lasso term. */
  lambda: number;
  /** Share (0..1) of each layer's groups, the strongest, that the penalty spares: they always stay alive. */
  keepAlive: number;
  /** Neurons/filters per group. */
  groupSize: number;
}

export const DEFAULT_GSS: Readonly<Omit<GroupSparsityOptions, 'keepAlive'>> = Object.freeze({
  lambda: 2e-3,
  groupSize: 1,
});

/**
 * The layers whose outputs can be removed: every weight layer but the classifier. A unit's "group parameters" are
 * what decides whether it contributes: its batch-norm scale and shift (batch norm makes the incoming weights' scale
 * irrelevant, so a lasso on them would only shrink them all), or its incoming weights and bias without batch norm.
 */
export function prunableLayers(spec: ModelSpec): WeightLayerSpec[] {
  const weightLayers = spec.layers.filter(isWeightLayer);
  return weightLayers.slice(0, -1);
}

/** Units (dense) or filters (conv) of a weight layer. */
export function unitsOf(layer: WeightLayerSpec): number {
  return layer.kind === 'dense' ? layer.units : layer.filters;
}

/** Per-unit squared norms of a layer's group parameters, [units]. */
export function unitSquaredNorms(tf: Tf, layer: WeightLayerSpec, params: Params): tfTypes.Tensor {
  if (layer.batchNorm) {
    const gamma = params.trainable.get(`${layer.name}.bn.gamma`) as tfTypes.Variable;
    const beta = params.trainable.get(`${layer.name}.bn.beta`) as tfTypes.Variable;
    return tf.add(tf.square(gamma), tf.square(beta));
  }
  const w = params.trainable.get(`${layer.name}.weight`) as tfTypes.Variable;
  const bias = params.trainable.get(`${layer.name}.bias`) as tfTypes.Variable;
  const incoming =
    layer.kind === 'dense' ? tf.sum(tf.square(w), 0) : tf.sum(tf.square(w.reshape([unitsOf(layer), -1])), 1);
  return tf.add(incoming, tf.square(bias));
}

/**
 * lambda * sum over groups of ||group||_2, where the strongest ceil(keepAlive * groups) groups of each layer are
 * exempt (the guidance: the penalty may empty a layer only down to that share, so accuracy does not collapse).
 */
export function groupSparsityPenalty(
  tf: Tf,
  spec: ModelSpec,
  params: Params,
  options: GroupSparsityOptions,
): tfTypes.Scalar {
  let total: tfTypes.Tensor = tf.scalar(0);
  for (const layer of prunableLayers(spec)) {
    const units = unitsOf(layer);
    const groups = Math.ceil(units / options.groupSize);
    const padded = groups * options.groupSize;
    let squares = unitSquaredNorms(tf, layer, params);
    if (padded > units) squares = tf.concat([squares, tf.zeros([padded - units])]);
    const norms = tf.sqrt(tf.add(tf.sum(squares.reshape([groups, options.groupSize]), 1), 1e-12));
    const spared = Math.max(1, Math.ceil(options.keepAlive * groups));
    // The spared groups are the current strongest; step() has a zero gradient, so the choice is not differentiated.
    const kth = tf.topk(norms, spared).values.slice([spared - 1], [1]);
    const penalised = tf.step(tf.sub(kth, norms));
    total = tf.add(total, tf.sum(tf.mul(norms, penalised)));
  }
  return tf.mul<tfTypes.Scalar>(total, options.lambda);
}
