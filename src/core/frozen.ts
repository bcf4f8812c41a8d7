// A frozen model: a trained spec with binary weights packed, levels fixed and batch norm folded; what export writes.

import { CmpError } from '../errors.js';
import { binarizeRows, fitTwoLevel, type BinaryRows, type TwoLevelFitter } from './binarize.js';
import { quantizeRows, type Int8Rows } from './quantize.js';
import { featuresOf, maskLayout, selectorFeatures, type MaskSpec } from './mask.js';
import {
  BN_EPSILON,
  exitFeatures,
  inferShapes,
  SELECTOR_BIAS,
  SELECTOR_WEIGHT,
  type Activation,
  type BinarizeMode,
  type ModelSpec,
} from './spec.js';

/** Float weights: dense [in, out], conv OIHW. */
export interface FloatWeights {
  kind: 'float';
  data: Float32Array;
}

export interface BinaryWeights extends BinaryRows {
  kind: 'binary';
}

/** int8 weights in the row layout (output units / filters), one scale per row (see core/quantize.ts). */
export interface Int8Weights extends Int8Rows {
  kind: 'int8';
}

/** A dense or conv layer ready to run: y = (x * W) * scale + shift per output channel, then the activation. */
export interface FrozenWeightLayer {
  kind: 'dense' | 'conv';
  name: string;
  /** Dense [in, out]; conv [out, in, k, k]. */
  weightShape: number[];
  /** Conv: zeros added on every side of the (binarized) input; absent: none. */
  padding?: number;
  weights: FloatWeights | BinaryWeights | Int8Weights;
  /** Per output channel; batch norm folded (all ones without it, and in int8 layers, whose integers carry it). */
  scale: Float32Array;
  /** Per output channel; folded batch norm shift, or the bias. */
  shift: Float32Array;
  activation: Activation;
  /** How this layer's input is binarized before the product (see binarizeActivations in the runtime). */
  inputs: BinarizeMode;
}

export type FrozenLayer =
  | FrozenWeightLayer
  | { kind: 'maxpool'; name: string; size: number }
  | { kind: 'avgpool'; name: string; size: number }
  | { kind: 'flatten'; name: string };

/** An early-exit head: logits = flatten(output of `after`) * weight [features, classes] + bias. */
export interface FrozenExit {
  name: string;
  after: string;
  weight: Float32Array;
  bias: Float32Array;
  /** Entropy threshold in nats; the exit is taken when the entropy is below it. Infinity-free: absent = never. */
  threshold?: number;
}

/**
 * The input mask of a frozen model. Static: `features`, the kept features ascending (the compact input's order).
 * Dynamic: the selector, scores = avgpool(input) flattened * weight [pooled, units] + bias; units scoring > 0 are sent.
 */
export interface FrozenMask {
  spec: MaskSpec;
  features?: Int32Array;
  selector?: { weight: Float32Array; bias: Float32Array };
}

export interface FrozenModel {
  spec: ModelSpec;
  layers: FrozenLayer[];
  /** Early exits in network order (absent or empty: none). */
  exits?: FrozenExit[];
  /** Input selection (absent: the whole input). */
  mask?: FrozenMask;
}

/**
 * Freezes trained tensors: binarizes weights per the spec (levels rounded to float16) or quantizes them to int8, folds
 * batch norm into one scale and shift per channel. Tensor names: `<layer>.weight`, `<layer>.bias`,
 * `<layer>.bn.{gamma,beta,mean,variance}`. `fit` fits binary layers: fitTwoLevel, or a fitter with its results (training
 * passes its WebAssembly kernels, as it freezes at every epoch).
 */
export function freeze(
  spec: ModelSpec,
  tensors: Map<string, Float32Array>,
  fit: TwoLevelFitter = fitTwoLevel,
): FrozenModel {
  const shapes = inferShapes(spec);
  const get = (name: string, length: number): Float32Array => {
    const t = tensors.get(name);
    if (!t || t.length !== length) {
      throw new CmpError('RUN_INVALID', `Tensor "${name}" is missing or has the wrong size. Retrain with cmp train.`);
    }
    return t;
  };
  const layers = spec.layers.map((layer, i): FrozenLayer => {
    if (layer.kind === 'maxpool' || layer.kind === 'avgpool' || layer.kind === 'flatten') return { ...layer };
    const { weightShape, weightCount, rowLength } = shapes[i];
    const out = layer.kind === 'dense' ? layer.units : layer.filters;
    const raw = get(`${layer.name}.weight`, weightCount);
    const scale = new Float32Array(out).fill(1);
    const shift = new Float32Array(out);
    if (layer.batchNorm) {
      const gamma = get(`${layer.name}.bn.gamma`, out);
      const beta = get(`${layer.name}.bn.beta`, out);
      const mean = get(`${layer.name}.bn.mean`, out);
      const variance = get(`${layer.name}.bn.variance`, out);
      for (let c = 0; c < out; c++) {
        scale[c] = gamma[c] / Math.sqrt(variance[c] + BN_EPSILON);
        shift[c] = beta[c] - mean[c] * scale[c];
      }
    } else {
      shift.set(get(`${layer.name}.bias`, out));
    }
    let weights: FrozenWeightLayer['weights'];
    const mode = layer.binarize.weights;
    const rows = (): Float32Array => (layer.kind === 'dense' ? transpose(raw, rowLength, out) : raw);
    if (mode === 'none') weights = { kind: 'float', data: raw };
    else if (mode === 'int8') {
      // The batch-norm scale goes into the rows before they are quantized: per row it only scales (or, negative,
      // flips) the integers' scale, so the file carries one float per channel instead of two and runs one Mul fewer.
      const scaled = rows().slice();
      for (let c = 0; c < out; c++) {
        for (let k = 0; k < rowLength; k++) scaled[c * rowLength + k] *= scale[c];
      }
      weights = { kind: 'int8', ...quantizeRows(scaled, out, rowLength) };
      scale.fill(1);
    } else weights = { kind: 'binary', ...binarizeRows(rows(), out, rowLength, mode, fit) };
    return {
      kind: layer.kind,
      name: layer.name,
      weightShape,
      ...(layer.kind === 'conv' && layer.padding ? { padding: layer.padding } : {}),
      weights,
      scale,
      shift,
      activation: layer.activation,
      inputs: layer.binarize.inputs,
    };
  });
  const exits = (spec.exits ?? []).map((exit): FrozenExit => {
    const features = exitFeatures(spec, exit);
    return {
      name: exit.name,
      after: exit.after,
      weight: get(`${exit.name}.weight`, features * spec.labels.length),
      bias: get(`${exit.name}.bias`, spec.labels.length),
      ...(exit.threshold !== undefined ? { threshold: exit.threshold } : {}),
    };
  });
  const maskSpec = spec.inputMask;
  let mask: FrozenMask | undefined;
  if (maskSpec?.kind === 'static') {
    mask = { spec: maskSpec, features: featuresOf(maskLayout(spec.input.shape, maskSpec.granularity), maskSpec.kept) };
  } else if (maskSpec?.kind === 'dynamic') {
    const units = maskLayout(spec.input.shape, maskSpec.granularity).units;
    const pooled = selectorFeatures(spec.input.shape, maskSpec.selectorPool);
    mask = {
      spec: maskSpec,
      selector: { weight: get(SELECTOR_WEIGHT, pooled * units), bias: get(SELECTOR_BIAS, units) },
    };
  }
  return { spec, layers, exits, ...(mask ? { mask } : {}) };
}

/** Transposes a row-major [rows, cols] matrix. */
export function transpose(m: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(m.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c];
  return out;
}
