// Guided structured sparsity (GSS): a group-lasso penalty over whole neurons/filters that spares a keep-alive share.

import type * as tfTypes from '@tensorflow/tfjs';
import { isWeightLayer, type ModelSpec, type WeightLayerSpec } from '../core/spec.js';
import type { Params } from './network.js';
import type { Tf } from './tf.js';

export interface GroupSparsityOptions {
  /**
   * Strength of the group lasso: after every step each group's norm shrinks by lambda * learning rate. Adam moves a
   * parameter by at most about one learning rate per step, so with lambda > 1 only groups whose gradient keeps
   * pushing them back (consistently useful units) stay large; the rest settle near zero.
   */
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
 * One proximal step of the group lasso, after each optimizer step: every group's parameters shrink towards zero by
 * `tau` in norm (a group whose norm is smaller becomes exactly zero), except the strongest
 * ceil(keepAlive * groups) groups of each layer, which are spared. That guidance lets the penalty empty a layer
 * only down to the keep-alive share, so accuracy does not collapse. Proximal steps give exact zeros, which a
 * penalty added to the loss does not under Adam (its steps have a fixed size, so groups only hover near zero).
 */
export function shrinkGroups(
  tf: Tf,
  spec: ModelSpec,
  params: Params,
  options: GroupSparsityOptions,
  tau: number,
): void {
  for (const layer of prunableLayers(spec)) {
    const units = unitsOf(layer);
    const groups = Math.ceil(units / options.groupSize);
    const squares = tf.tidy(() => unitSquaredNorms(tf, layer, params).dataSync());
    const norms = new Float64Array(groups);
    for (let u = 0; u < units; u++) norms[Math.floor(u / options.groupSize)] += squares[u];
    for (let g = 0; g < groups; g++) norms[g] = Math.sqrt(norms[g]);
    const spared = Math.max(1, Math.ceil(options.keepAlive * groups));
    const kth = Float64Array.from(norms).sort()[groups - spared];
    const factor = new Float32Array(units);
    for (let u = 0; u < units; u++) {
      const norm = norms[Math.floor(u / options.groupSize)];
      factor[u] = norm >= kth ? 1 : Math.max(0, 1 - tau / Math.max(norm, 1e-12));
    }
    tf.tidy(() => {
      const f = tf.tensor1d(factor);
      const scale = (name: string, by: tfTypes.Tensor): void => {
        const v = params.trainable.get(name) as tfTypes.Variable;
        v.assign(tf.mul(v, by));
      };
      if (layer.batchNorm) {
        scale(`${layer.name}.bn.gamma`, f);
        scale(`${layer.name}.bn.beta`, f);
      } else {
        scale(`${layer.name}.weight`, layer.kind === 'dense' ? f : f.reshape([units, 1, 1, 1]));
        scale(`${layer.name}.bias`, f);
      }
    });
  }
}
