// The reference engine: what the exported graph computes, in simple TypeScript loops, for tests to compare against.

import { expandBinary } from '../../core/bitpack.js';
import { quantizeInput } from '../../core/quantize.js';
import { ACTIVATION_LLOYD_STEPS, type BinarizeMode } from '../../core/spec.js';
import type { Profiler } from '../profiler.js';
import { features, layerTag, normalizeInput, padPlanes, type Engine } from './engine.js';
import type { Plan, PlanWeightLayer } from './plan.js';

const f32 = Math.fround;

/**
 * A reference engine for `plan`: binary weights expanded to float32 rows, sums in float64; int8 layers quantize their
 * input per sample (core/quantize.ts quantizeInput) and sum integer products exactly, as the wasm kernels do.
 */
export function createReferenceEngine(plan: Plan): Engine {
  const { expanded, weightBytes } = expandWeights(plan);
  return {
    mode: 'reference',
    plan,
    weightBytes,
    run(input: Float32Array, batch: number, profiler?: Profiler): Float32Array {
      const out = new Float32Array(batch * plan.classes);
      for (let s = 0; s < batch; s++) out.set(forwardSample(plan, expanded, input, s, profiler), s * plan.classes);
      return out;
    },
    dispose(): void {},
  };
}

/**
 * For every sample, the smallest distance of a binarized activation from its threshold, as a fraction of the largest
 * |value| its layer binarizes (Infinity where no layer binarizes its input): how far float32 sums in another order are
 * from flipping a bit. A backend may answer a sample whose margin is near float32's epsilon either way.
 */
export function binarizationMargins(plan: Plan, input: Float32Array, batch: number): Float64Array {
  const { expanded } = expandWeights(plan);
  const margins = new Float64Array(batch);
  for (let s = 0; s < batch; s++) {
    const margin = { min: Infinity };
    forwardSample(plan, expanded, input, s, undefined, margin);
    margins[s] = margin.min;
  }
  return margins;
}

type Expanded = Map<PlanWeightLayer, Float32Array | Int8Array>;

/** Each weight layer's rows as the reference multiplies them, and the bytes they and their scales take. */
function expandWeights(plan: Plan): { expanded: Expanded; weightBytes: number } {
  const expanded: Expanded = new Map();
  let weightBytes = 0;
  for (const layer of plan.layers) {
    if (layer.kind !== 'dense' && layer.kind !== 'conv') continue;
    const w = layer.weights;
    if (w.kind === 'float') expanded.set(layer, w.rows);
    else if (w.kind === 'int8') {
      expanded.set(layer, w.data);
      weightBytes += w.scales.byteLength;
    } else {
      const upper = w.lower.map((lo, r) => f32(lo + w.step[r]));
      expanded.set(layer, expandBinary(w.packed, layer.rows, layer.rowLength, upper, w.lower));
    }
    weightBytes += expanded.get(layer)!.byteLength + (layer.scale?.byteLength ?? 0) + layer.shift.byteLength;
  }
  return { expanded, weightBytes };
}

/** Sample s of `input` through every layer; `margin.min` takes the smallest binarization margin met (see above). */
function forwardSample(
  plan: Plan,
  expanded: Expanded,
  input: Float32Array,
  s: number,
  profiler?: Profiler,
  margin?: { min: number },
): Float32Array {
  const inF = features(plan.inputShape);
  let h: Float32Array = input.slice(s * inF, (s + 1) * inF);
  normalizeInput(h, 0, inF, plan);
  for (const layer of plan.layers) {
    const event = profiler?.begin(layer.name, layerTag(layer));
    if (layer.kind === 'maxpool') h = maxPool(h, layer.inputShape, layer.size);
    else if (layer.kind === 'pad') {
      const [c, height, width] = layer.inputShape;
      const padded = new Float32Array(features(layer.outputShape));
      padPlanes(h, 0, padded, 0, c, height, width, layer.size);
      h = padded;
    } else if (layer.kind !== 'flatten') {
      const x = binarizeSample(h, layer.inputShape, layer.kind === 'conv', layer.inputs, margin);
      h = weightLayer(x, layer, expanded.get(layer)!);
    }
    if (event !== undefined) profiler?.end(event);
  }
  return h;
}

/**
 * One sample's input binarization (see export-onnx.ts binarizeInputs): DAB centres each position across channels
 * (conv) or the features (dense), runs ACTIVATION_LLOYD_STEPS Lloyd steps from the mean and returns each value's level;
 * XNOR returns +/- mean |x| by sign. `margin.min`, when given, takes the nearest value's distance from the threshold as a
 * fraction of the largest |value|.
 */
export function binarizeSample(
  x: Float32Array,
  shape: number[],
  isConv: boolean,
  mode: BinarizeMode,
  margin?: { min: number },
): Float32Array {
  if (mode === 'none') return x;
  const n = x.length;
  let lower: number;
  let upper: number;
  let threshold: number;
  let v: Float32Array;
  if (mode === 'xnor') {
    let s = 0;
    for (let k = 0; k < n; k++) s += Math.abs(x[k]);
    upper = f32(s / n);
    lower = -upper;
    threshold = 0;
    v = x;
  } else {
    const channels = isConv ? shape[0] : n;
    const positions = n / channels;
    v = new Float32Array(n);
    for (let p = 0; p < positions; p++) {
      let s = 0;
      for (let c = 0; c < channels; c++) s += x[c * positions + p];
      const mean = f32(s / channels);
      for (let c = 0; c < channels; c++) v[c * positions + p] = f32(x[c * positions + p] - mean);
    }
    let s = 0;
    for (let k = 0; k < n; k++) s += v[k];
    threshold = f32(s / n);
    lower = 0;
    upper = 0;
    for (let step = 0; step <= ACTIVATION_LLOYD_STEPS; step++) {
      if (step > 0) threshold = f32(f32(upper + lower) / 2);
      let upSum = 0;
      let downSum = 0;
      let ups = 0;
      for (let k = 0; k < n; k++) {
        if (v[k] >= threshold) {
          upSum += v[k];
          ups++;
        } else downSum += v[k];
      }
      upper = f32(upSum / Math.max(ups, 1));
      lower = f32(downSum / Math.max(n - ups, 1));
    }
  }
  if (margin) {
    let scale = 0;
    let nearest = Infinity;
    for (let k = 0; k < n; k++) {
      scale = Math.max(scale, Math.abs(v[k]));
      nearest = Math.min(nearest, Math.abs(v[k] - threshold));
    }
    if (scale > 0) margin.min = Math.min(margin.min, nearest / scale);
  }
  const high = f32(lower + f32(upper - lower));
  return v.map((value) => (value >= threshold ? high : lower));
}

/**
 * A weight layer on one sample. int8 rows take the input as quantizeInput gives it, and each output is the exact integer
 * sum times f32(input scale * row scale), rounded once to float32 (kernels.as.ts i8Out), then the epilogue.
 */
function weightLayer(x: Float32Array, layer: PlanWeightLayer, w: Values): Float32Array {
  let input: Values = x;
  let rowScale: Float32Array | undefined;
  if (layer.weights.kind === 'int8') {
    const q = quantizeInput(x);
    input = q.data;
    rowScale = layer.weights.scales.map((s) => f32(q.scale * s));
  }
  return layer.kind === 'dense' ? dense(input, layer, w, rowScale) : conv(input, layer, w, rowScale);
}

function epilogue(sum: number, r: number, layer: PlanWeightLayer, rowScale?: Float32Array): number {
  let y = f32(rowScale ? sum * rowScale[r] : sum);
  if (layer.scale) y = f32(y * layer.scale[r]);
  y = f32(y + layer.shift[r]);
  return layer.relu && !(y > 0) ? 0 : y;
}

type Values = Float32Array | Int8Array | Int16Array;

function dense(x: Values, layer: PlanWeightLayer, w: Values, rowScale?: Float32Array): Float32Array {
  const out = new Float32Array(layer.rows);
  const n = layer.rowLength;
  for (let r = 0; r < layer.rows; r++) {
    let s = 0;
    for (let k = 0; k < n; k++) s += x[k] * w[r * n + k];
    out[r] = epilogue(s, r, layer, rowScale);
  }
  return out;
}

function conv(x: Values, layer: PlanWeightLayer, w: Values, rowScale?: Float32Array): Float32Array {
  const [c, h, wd] = layer.inputShape;
  const k = layer.kernel;
  const [, oh, ow] = layer.outputShape;
  const out = new Float32Array(layer.rows * oh * ow);
  for (let r = 0; r < layer.rows; r++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let s = 0;
        for (let ch = 0; ch < c; ch++) {
          for (let ky = 0; ky < k; ky++) {
            for (let kx = 0; kx < k; kx++) {
              s += x[(ch * h + oy + ky) * wd + ox + kx] * w[r * layer.rowLength + (ch * k + ky) * k + kx];
            }
          }
        }
        out[(r * oh + oy) * ow + ox] = epilogue(s, r, layer, rowScale);
      }
    }
  }
  return out;
}

function maxPool(x: Float32Array, shape: number[], size: number): Float32Array {
  const [c, h, w] = shape;
  const oh = Math.floor(h / size);
  const ow = Math.floor(w / size);
  const out = new Float32Array(c * oh * ow);
  for (let ch = 0; ch < c; ch++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++) {
        let m = -Infinity;
        for (let ky = 0; ky < size; ky++) {
          for (let kx = 0; kx < size; kx++) m = Math.max(m, x[(ch * h + oy * size + ky) * w + ox * size + kx]);
        }
        out[(ch * oh + oy) * ow + ox] = m;
      }
    }
  }
  return out;
}
