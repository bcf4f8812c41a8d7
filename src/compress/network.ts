// A cmp network in TensorFlow.js: parameters, the training forward pass (binarized with straight-through
// estimators) and the inference pass of a frozen model, which export reproduces op for op.

import type * as tfTypes from '@tensorflow/tfjs';
import { expandBinary } from '../core/bitpack.js';
import { dequantizeRows, INT8_MAX } from '../core/quantize.js';
import type { FrozenModel, FrozenWeightLayer } from '../core/frozen.js';
import { maskLayout, selectorFeatures } from '../core/mask.js';
import { makeRng } from '../core/rng.js';
import {
  ACTIVATION_LLOYD_STEPS,
  BN_EPSILON,
  exitFeatures,
  inferShapes,
  MASK_LOGITS,
  SELECTOR_BIAS,
  SELECTOR_WEIGHT,
  type BinarizeMode,
  type ModelSpec,
} from '../core/spec.js';
import { binarizeKernels } from './binarize-wasm.js';
import { MASK_OPEN_LOGIT, maskInputFrozen, maskInputTrain, type MaskTerms } from './mask.js';
import { tensorOfScratch, viewFloat32, type Tf } from './tf.js';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

/** Trainable and running-statistics tensors of a network, by the names used in run folders. */
export interface Params {
  trainable: Map<string, Variable>;
  /** Batch-norm moving mean and variance, updated in training, not by the optimizer. */
  running: Map<string, Variable>;
}

/** Creates parameters: Glorot-uniform weights from `rng`, zero biases, identity batch norm. */
export function initParams(tf: Tf, spec: ModelSpec, rng: () => number): Params {
  const shapes = inferShapes(spec);
  const trainable = new Map<string, Variable>();
  const running = new Map<string, Variable>();
  spec.layers.forEach((layer, i) => {
    if (layer.kind !== 'dense' && layer.kind !== 'conv') return;
    const { weightShape, weightCount, rowLength } = shapes[i];
    const out = layer.kind === 'dense' ? layer.units : layer.filters;
    const fanOut = layer.kind === 'dense' ? out : out * layer.kernel * layer.kernel;
    const limit = Math.sqrt(6 / (rowLength + fanOut));
    const w = new Float32Array(weightCount);
    for (let k = 0; k < weightCount; k++) w[k] = (rng() * 2 - 1) * limit;
    trainable.set(`${layer.name}.weight`, tf.variable(tf.tensor(w, weightShape), true));
    if (layer.batchNorm) {
      trainable.set(`${layer.name}.bn.gamma`, tf.variable(tf.ones([out]), true));
      trainable.set(`${layer.name}.bn.beta`, tf.variable(tf.zeros([out]), true));
      running.set(`${layer.name}.bn.mean`, tf.variable(tf.zeros([out]), false));
      running.set(`${layer.name}.bn.variance`, tf.variable(tf.ones([out]), false));
    } else {
      trainable.set(`${layer.name}.bias`, tf.variable(tf.zeros([out]), true));
    }
  });
  for (const exit of spec.exits ?? []) {
    const features = exitFeatures(spec, exit);
    const classes = spec.labels.length;
    const limit = Math.sqrt(6 / (features + classes));
    const w = Float32Array.from({ length: features * classes }, () => (rng() * 2 - 1) * limit);
    trainable.set(`${exit.name}.weight`, tf.variable(tf.tensor(w, [features, classes]), true));
    trainable.set(`${exit.name}.bias`, tf.variable(tf.zeros([classes]), true));
  }
  const mask = spec.inputMask;
  if (mask) {
    // Every unit starts open (logit or score MASK_OPEN_LOGIT > 0); the mask loss closes them.
    const units = maskLayout(spec.input.shape, mask.granularity).units;
    if (mask.kind === 'static' && mask.source === 'learned') {
      trainable.set(MASK_LOGITS, tf.variable(tf.fill([units], MASK_OPEN_LOGIT), true));
    } else if (mask.kind === 'dynamic') {
      const pooled = selectorFeatures(spec.input.shape, mask.selectorPool);
      const limit = Math.sqrt(6 / (pooled + units));
      const w = Float32Array.from({ length: pooled * units }, () => (rng() * 2 - 1) * limit);
      trainable.set(SELECTOR_WEIGHT, tf.variable(tf.tensor(w, [pooled, units]), true));
      trainable.set(SELECTOR_BIAS, tf.variable(tf.fill([units], MASK_OPEN_LOGIT), true));
    }
  }
  return { trainable, running };
}

/** Loads run tensors into parameters (for fine-tuning or evaluation). */
export function paramsFromTensors(tf: Tf, spec: ModelSpec, tensors: Map<string, Float32Array>): Params {
  const params = initParams(tf, spec, makeRng(0));
  for (const [name, v] of [...params.trainable, ...params.running]) {
    const data = tensors.get(name);
    if (data && data.length === v.size) v.assign(tf.tensor(data, v.shape));
  }
  return params;
}

/** Reads parameters back as plain arrays (the run folder's tensors). */
export async function paramsToTensors(params: Params): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const [name, v] of [...params.trainable, ...params.running]) {
    out.set(name, { shape: v.shape, data: (await v.data()) as Float32Array });
  }
  return out;
}

/** Momentum of the batch-norm running statistics. */
const BN_MOMENTUM = 0.9;

/**
 * The training forward pass. `x` is NCHW pixels in [0, 1]; returns logits [N, labels]. With `training`, batch norm uses
 * batch statistics and updates the running ones.
 */
export function forwardTrain(
  tf: Tf,
  spec: ModelSpec,
  params: Params,
  x: Tensor,
  training: boolean,
  exitsOut?: Tensor[],
  maskTerms?: MaskTerms,
  dropout?: { rate: number; seed: number },
): Tensor {
  x = normalize(tf, spec, x);
  if (spec.inputMask) {
    const { trainable } = params;
    const tensors = {
      logits: trainable.get(MASK_LOGITS),
      weight: trainable.get(SELECTOR_WEIGHT),
      bias: trainable.get(SELECTOR_BIAS),
    };
    x = maskInputTrain(tf, spec.inputMask, spec.input.shape, x, tensors, maskTerms);
  }
  let h: Tensor = toNhwc(tf, x);
  // Until the first weight layer, h is the data (or the learned mask's product with it): only a mask needs its gradient.
  let inputGrad = spec.inputMask !== undefined;
  for (const layer of spec.layers) {
    switch (layer.kind) {
      case 'flatten':
        h = flattenNchw(tf, h);
        break;
      case 'maxpool':
        h = tf.maxPool(h as tfTypes.Tensor4D, layer.size, layer.size, 'valid');
        break;
      case 'avgpool':
        h = tf.avgPool(h as tfTypes.Tensor4D, layer.size, layer.size, 'valid');
        break;
      case 'dense':
      case 'conv': {
        const w = params.trainable.get(`${layer.name}.weight`) as Variable;
        const input = binarizeInputs(tf, h, layer.binarize.inputs, layer.kind === 'conv', training);
        // Rows are output units (the bit format's rows); the product uses [in, out] because tfjs-wasm's matMul with
        // a transposed operand is about 20x slower than with plain ones.
        let q: Tensor = w;
        const mode = layer.binarize.weights;
        if (mode === 'int8') q = fakeQuantizeInt8(tf, w, layer.kind);
        else if (mode !== 'none') q = binarizeWeights(tf, w, layer.kind, mode);
        h = layer.kind === 'dense' ? matMul(tf, input, q, inputGrad) : conv(tf, input, q, layer.padding, inputGrad);
        inputGrad = true;
        if (layer.batchNorm) {
          const axes = layer.kind === 'dense' ? [0] : [0, 1, 2];
          const gamma = params.trainable.get(`${layer.name}.bn.gamma`) as Variable;
          const beta = params.trainable.get(`${layer.name}.bn.beta`) as Variable;
          const movingMean = params.running.get(`${layer.name}.bn.mean`) as Variable;
          const movingVar = params.running.get(`${layer.name}.bn.variance`) as Variable;
          let mean: Tensor = movingMean;
          let variance: Tensor = movingVar;
          if (training) {
            const m = tf.moments(h, axes);
            mean = m.mean;
            variance = m.variance;
            movingMean.assign(tf.add(tf.mul(movingMean, BN_MOMENTUM), tf.mul(mean, 1 - BN_MOMENTUM)));
            movingVar.assign(tf.add(tf.mul(movingVar, BN_MOMENTUM), tf.mul(variance, 1 - BN_MOMENTUM)));
          }
          h = tf.add(tf.mul(tf.div(tf.sub(h, mean), tf.sqrt(tf.add(variance, BN_EPSILON))), gamma), beta);
        } else {
          h = tf.add(h, params.trainable.get(`${layer.name}.bias`) as Variable);
        }
        if (layer.activation === 'relu') h = tf.relu(h);
        // Dropout after hidden dense layers only (the classifier has no activation); inference never drops.
        if (dropout && training && layer.kind === 'dense' && layer.activation !== 'none') {
          h = tf.dropout(h, dropout.rate, undefined, dropout.seed + spec.layers.indexOf(layer));
        }
        break;
      }
    }
    const exit = spec.exits?.find((e) => e.after === layer.name);
    if (exit && exitsOut) {
      const w = params.trainable.get(`${exit.name}.weight`) as Variable;
      exitsOut.push(tf.add(matMul(tf, flattenNchw(tf, h), w), params.trainable.get(`${exit.name}.bias`) as Variable));
    }
  }
  return h;
}

/**
 * Inference with a frozen model on pixels in [0, 1], computing exactly what the exported ONNX graph computes on them
 * normalized (runtimes normalize before the graph). `tap` sees every weight layer's output (after its activation, NHWC
 * for conv) while it is alive; read it synchronously there. `exitsOut` receives each early exit's logits (kept; the
 * caller disposes them).
 */
export function forwardFrozen(
  tf: Tf,
  frozen: FrozenModel,
  x: Tensor,
  tap?: (layer: string, output: Tensor) => void,
  exitsOut?: Tensor[],
): Tensor {
  return tf.tidy(() => {
    const normalized = normalize(tf, frozen.spec, x);
    const masked = frozen.mask ? maskInputFrozen(tf, frozen.mask, frozen.spec.input.shape, normalized) : normalized;
    let h: Tensor = toNhwc(tf, masked);
    for (const layer of frozen.layers) {
      if (layer.kind === 'flatten') h = flattenNchw(tf, h);
      else if (layer.kind === 'maxpool') h = tf.maxPool(h as tfTypes.Tensor4D, layer.size, layer.size, 'valid');
      else if (layer.kind === 'avgpool') h = tf.avgPool(h as tfTypes.Tensor4D, layer.size, layer.size, 'valid');
      else {
        const input = binarizeInputs(tf, h, layer.inputs, layer.kind === 'conv', false);
        const w = frozenWeights(tf, layer);
        h = layer.kind === 'dense' ? tf.matMul(input, w) : conv(tf, input, w, layer.padding);
        h = tf.add(tf.mul(h, tf.tensor1d(layer.scale)), tf.tensor1d(layer.shift));
        if (layer.activation === 'relu') h = tf.relu(h);
        tap?.(layer.name, h);
      }
      const exit = frozen.exits?.find((e) => e.after === layer.name);
      if (exit && exitsOut) {
        const features = exit.weight.length / exit.bias.length;
        const logits = tf.add(
          tf.matMul(flattenNchw(tf, h), tf.tensor2d(exit.weight, [features, exit.bias.length])),
          tf.tensor1d(exit.bias),
        );
        exitsOut.push(tf.keep(logits));
      }
    }
    return h;
  });
}

/** A frozen layer's float weights in cmp layout (dense [in, out], conv OIHW), expanded from bits where binary. */
function frozenWeights(tf: Tf, layer: FrozenWeightLayer): Tensor {
  const w = layer.weights;
  if (w.kind === 'float') return tf.tensor(w.data, layer.weightShape);
  const values = w.kind === 'int8' ? dequantizeRows(w) : expandBinary(w.packed, w.rows, w.rowLength, w.upper, w.lower);
  const expanded = tf.tensor(values, [w.rows, w.rowLength]);
  return layer.kind === 'dense' ? expanded.transpose() : expanded.reshape(layer.weightShape);
}

/**
 * x [N, in] times w [in, out], with a backward pass built from explicit transposes and plain products: tfjs-wasm's
 * own matMul gradient multiplies by transposed operands, its slow path. Without `inputGrad` (x is the data), x's
 * gradient is zeros instead of a product nobody reads.
 */
function matMul(tf: Tf, x: Tensor, w: Tensor, inputGrad = true): Tensor {
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    const [a, b] = args as [Tensor, Tensor];
    (args[2] as tfTypes.GradSaveFunc)([a, b]);
    return {
      value: tf.matMul(a, b),
      gradFunc: (dy: Tensor, saved: Tensor[]) => [
        inputGrad ? tf.matMul(dy, tf.transpose(saved[1])) : tf.zerosLike(saved[0]),
        tf.matMul(tf.transpose(saved[0]), dy),
      ],
    };
  });
  return f(x, w);
}

/** NCHW input to the NHWC layout TensorFlow.js convolves in. */
function toNhwc(tf: Tf, x: Tensor): Tensor {
  return x.rank === 4 ? tf.transpose(x, [0, 2, 3, 1]) : x;
}

/** Flattens in NCHW (channel-major) order, as ONNX Flatten does, so exported weights line up. */
function flattenNchw(tf: Tf, h: Tensor): Tensor {
  return h.rank === 4 ? tf.transpose(h, [0, 3, 1, 2]).reshape([h.shape[0], -1]) : h;
}

/** Convolution of NHWC input with OIHW weights, stride 1, `padding` zeros on every side (none when absent). */
function conv(tf: Tf, input: Tensor, oihw: Tensor, padding = 0, inputGrad = true): Tensor {
  const padded = padding
    ? tf.pad(input as tfTypes.Tensor4D, [
        [0, 0],
        [padding, padding],
        [padding, padding],
        [0, 0],
      ])
    : input;
  return convValid(tf, padded, tf.transpose(oihw, [2, 3, 1, 0]), inputGrad);
}

/**
 * The network's input from pixels in [0, 1]: (x - mean) / std per the spec, as every runtime feeds the exported
 * model. cmp's own models use mean 0 and std 1, and get no op at all; imported ones may expect another range.
 */
function normalize(tf: Tf, spec: ModelSpec, x: Tensor): Tensor {
  const { mean, std } = spec.input;
  return mean === 0 && std === 1 ? x : tf.div(tf.sub(x, mean), std);
}

/**
 * conv2d (NHWC input, HWIO filter, 'valid', stride 1) with its own backward pass: tfjs-wasm has no
 * Conv2DBackpropFilter kernel, and its Conv3D stand-in is 50x slower. The input gradient is the full convolution of
 * the padded output gradient with the flipped filter; the filter gradient is a convolution too, of the input with
 * the samples as channels by the output gradient. It replaced patches^T * dy with the patches gathered by k*k slices
 * and a concat, which tfjs-wasm copies in JavaScript: a third of a LeNet training step (`npm run bench --
 * train-speed`: a LeNet epoch on 2,000 MNIST images 5.5-5.9 -> 2.4-2.8 s of CPU). Without `inputGrad` (the input is
 * the data), the input's gradient is zeros instead of a convolution nobody reads.
 */
export function convValid(tf: Tf, input: Tensor, hwio: Tensor, inputGrad = true): Tensor {
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    const [x, w] = args as [tfTypes.Tensor4D, tfTypes.Tensor4D];
    (args[2] as tfTypes.GradSaveFunc)([x, w]);
    return {
      value: tf.conv2d(x, w, 1, 'valid'),
      gradFunc: (dy: Tensor, saved: Tensor[]) => {
        const [xs, ws] = saved as [tfTypes.Tensor4D, tfTypes.Tensor4D];
        const k = ws.shape[0];
        const dx = inputGrad
          ? tf.conv2d(
              tf.pad(dy as tfTypes.Tensor4D, [
                [0, 0],
                [k - 1, k - 1],
                [k - 1, k - 1],
                [0, 0],
              ]),
              tf.transpose<tfTypes.Tensor4D>(tf.reverse(ws, [0, 1]), [0, 1, 3, 2]),
              1,
              'valid',
            )
          : tf.zerosLike(xs);
        // dw[kh, kw, c, o] = sum over samples and outputs of x[n, oy + kh, ox + kw, c] * dy[n, oy, ox, o]: a 'valid'
        // conv of the input with the samples as channels ([c, h, w, n]) by the output gradient as the filter
        // ([oh, ow, n, o]), whose [c, k, k, o] output is the gradient once transposed.
        const dw = tf.transpose(
          tf.conv2d(
            tf.transpose<tfTypes.Tensor4D>(xs, [3, 1, 2, 0]),
            tf.transpose<tfTypes.Tensor4D>(dy as tfTypes.Tensor4D, [1, 2, 0, 3]),
            1,
            'valid',
          ),
          [1, 2, 0, 3],
        );
        return [dx, dw];
      },
    };
  });
  return f(input, hwio);
}

/**
 * XNOR-Net's two levels for each row of `values` [R, K] (activations, per sample): split at 0, levels +/- mean |v|.
 */
function xnorLevels(tf: Tf, values: Tensor): Tensor {
  // bits = values >= 0, as 1 - step(-values): tfjs-wasm's broadcasting compare is 30x slower.
  const bits = tf.sub(1, tf.step(tf.neg(values)));
  const upper = tf.mean(tf.abs(values), 1, true);
  return tf.add(tf.neg(upper), tf.mul(tf.mul(upper, 2), bits));
}

/**
 * A weight layer's binarized weights for training, two levels per output unit: a column of a dense layer's [in, out]
 * weights, a filter of a conv layer's OIHW weights. DAB: the split minimising the reconstruction error, the one
 * freeze's binarizeRows finds (to the bit, without sorting the rows); upper and lower are the means on either side.
 * XNOR: split at 0, levels +/- mean |w|. Backward: straight-through where |w| <= 1 (latent weights are clipped to
 * [-1, 1]) plus the gradient through the level means, since each level is the mean of the weights it stands for. Both
 * passes run in WebAssembly (binarize-wasm.ts) on a copy of the weights: as a dozen TensorFlow.js ops, whose reductions
 * along a column each transposed the matrix, they made an MLP step with DAB weights cost 1.9x a float one.
 */
export function binarizeWeights(
  tf: Tf,
  w: Tensor,
  kind: 'dense' | 'conv',
  mode: Exclude<BinarizeMode, 'none'>,
): Tensor {
  const rows = (kind === 'dense' ? w.shape[1] : w.shape[0]) as number;
  const rowLength = w.size / rows;
  const layout = kind === 'dense' ? { rowStep: 1, step: rows } : { rowStep: rowLength, step: 1 };
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    // The weights are read again in the backward pass without save(), which would copy them: the gradient is taken
    // within the tidy scope of the forward pass (tfjs' gradients), so they are still there, unchanged.
    const m = args[0] as Tensor;
    const kernels = binarizeKernels();
    const { values, fit } = kernels.fit(viewFloat32(tf, m), rows, rowLength, mode, layout);
    return {
      value: tensorOfScratch(tf, values, m.shape),
      gradFunc: (dy: Tensor) => {
        const grad = kernels.gradient(viewFloat32(tf, m), viewFloat32(tf, dy), fit, rows, rowLength, layout);
        return tensorOfScratch(tf, grad, m.shape);
      },
    };
  });
  return f(w);
}

/**
 * int8 weights for quantization-aware training: per output unit (dense: a column of [in, out]; conv: a filter),
 * scale = max |w| / 127 and w ~ round(w / scale) * scale, as core/quantize.ts stores them (float32 here, so a weight
 * exactly halfway between two steps may round the other way). Backward: straight-through, the rounding's gradient
 * taken as 1.
 */
export function fakeQuantizeInt8(tf: Tf, w: Tensor, kind: 'dense' | 'conv'): Tensor {
  const rows = (kind === 'dense' ? w.shape[1] : w.shape[0]) as number;
  const axis = kind === 'dense' ? 0 : 1;
  const matrix = kind === 'dense' ? w : w.reshape([rows, -1]);
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => {
    const m = args[0] as Tensor;
    // An all-zero row gets scale 1 (its integers are all 0 either way).
    const maxAbs = tf.max(tf.abs(m), axis, true);
    const scale = tf.add(tf.div(maxAbs, INT8_MAX), tf.cast(tf.equal(maxAbs, 0), 'float32'));
    const q = tf.mul(tf.mul(tf.sign(m), tf.round(tf.div(tf.abs(m), scale))), scale);
    return { value: q, gradFunc: (dy: Tensor) => dy };
  });
  const q = f(matrix);
  return kind === 'dense' ? q : q.reshape(w.shape);
}

/**
 * Binarizes a layer's input per sample. DAB centres each position across channels (dense: across features), then fits
 * two levels over the sample by Lloyd steps (see ACTIVATION_LLOYD_STEPS in core/spec.ts); XNOR splits at 0 with levels
 * +/- mean |x|. Backward: straight-through.
 */
export function binarizeInputs(tf: Tf, h: Tensor, mode: BinarizeMode, isConv: boolean, training: boolean): Tensor {
  if (mode === 'none') return h;
  const apply = (x: Tensor): Tensor => {
    const n = x.shape[0];
    if (mode === 'xnor') return xnorLevels(tf, x.reshape([n, -1])).reshape(x.shape);
    const flat = tf.sub(x, tf.mean(x, isConv ? 3 : 1, true)).reshape([n, -1]);
    let threshold = tf.mean(flat, 1, true);
    let levels = splitLevels(tf, flat, threshold);
    for (let step = 0; step < ACTIVATION_LLOYD_STEPS; step++) {
      threshold = tf.div(tf.add(levels.upper, levels.lower), 2);
      levels = splitLevels(tf, flat, threshold);
    }
    const { bits, upper, lower } = levels;
    return tf.add(lower, tf.mul(tf.sub(upper, lower), bits)).reshape(x.shape);
  };
  if (!training) return apply(h);
  const f = tf.customGrad((...args: (Tensor | tfTypes.GradSaveFunc)[]) => ({
    value: apply(args[0] as Tensor),
    gradFunc: (dy: Tensor) => dy,
  }));
  return f(h);
}

/** Bits (values >= threshold, per row) and the mean of the values on each side. */
function splitLevels(tf: Tf, values: Tensor, threshold: Tensor): { bits: Tensor; upper: Tensor; lower: Tensor } {
  const k = values.shape[1] as number;
  // values >= threshold as 1 - step(threshold - values): tfjs-wasm's broadcasting compare is 30x slower.
  const bits = tf.sub(1, tf.step(tf.sub(threshold, values)));
  const ups = tf.sum(bits, 1, true);
  const upper = tf.div(tf.sum(tf.mul(values, bits), 1, true), tf.maximum(ups, 1));
  const lower = tf.div(tf.sum(tf.mul(values, tf.sub(1, bits)), 1, true), tf.maximum(tf.sub(k, ups), 1));
  return { bits, upper, lower };
}
