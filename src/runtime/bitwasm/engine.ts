// The bitwasm engine interface: a plan run by the WebAssembly kernels or by the plain TypeScript reference.

import type { Profiler } from '../profiler.js';
import type { PlanLayer, Plan } from './plan.js';

/** `wasm`: the SIMD kernels (weights packed in wasm memory); `reference`: simple loops with the same semantics. */
export type EngineMode = 'wasm' | 'reference';

export interface Engine {
  readonly mode: EngineMode;
  readonly plan: Plan;
  /** Bytes the layer parameters take in memory as the kernels read them (bits, levels, popcounts, scale, shift). */
  readonly weightBytes: number;
  /** Runs `batch` samples of the plan's input shape (NCHW float32); returns logits [batch, classes]. */
  run(input: Float32Array, batch: number, profiler?: Profiler): Float32Array;
  dispose(): void;
}

/** What runs for a layer, as the profiler reports it (the same words for both modes). */
export function layerTag(layer: PlanLayer): string {
  if (layer.kind === 'flatten' || layer.kind === 'maxpool' || layer.kind === 'pad') return layer.kind;
  const inputs = layer.inputs === 'none' ? 'float in' : `${layer.inputs} in`;
  if (layer.weights.kind === 'float') return `${layer.kind} float w, ${inputs}`;
  if (layer.weights.kind === 'int8') return `${layer.kind} int8 w, ${inputs}`;
  return layer.inputs === 'none'
    ? `${layer.kind} 1-bit w, float in (masked sum)`
    : `${layer.kind} 1-bit w, ${inputs} (popcount)`;
}

/**
 * Copies `planes` planes of h x w floats from `from` (at element `source`) into planes `size` wider on every side in
 * `to` (at element `target`), zeros around them: a padded convolution's input.
 */
export function padPlanes(
  from: Float32Array,
  source: number,
  to: Float32Array,
  target: number,
  planes: number,
  h: number,
  w: number,
  size: number,
): void {
  const pw = w + 2 * size;
  const ph = h + 2 * size;
  to.fill(0, target, target + planes * ph * pw);
  // Plain loops: rows here are a few dozen values, where a subarray and set per row cost more than the copy.
  for (let p = 0; p < planes; p++) {
    for (let y = 0; y < h; y++) {
      const row = source + (p * h + y) * w;
      const at = target + (p * ph + y + size) * pw + size;
      for (let x = 0; x < w; x++) to[at + x] = from[row + x];
    }
  }
}

/**
 * Applies a plan's input normalization to `count` values of `x` from element `offset`, in place, rounding as the
 * graph's Sub and Div do in float32. It stays a pass of its own rather than being folded into the first layer's
 * weights: folding changes the rounding, and the pass costs one operation per input value against a layer's rows.
 */
export function normalizeInput(x: Float32Array, offset: number, count: number, plan: Plan): void {
  if (!plan.normalize) return;
  const mean = Math.fround(plan.normalize.mean);
  const std = Math.fround(plan.normalize.std);
  for (let i = offset; i < offset + count; i++) x[i] = Math.fround(x[i] - mean) / std;
}

/** Float elements of a shape [C, H, W]. */
export function features(shape: readonly number[]): number {
  return shape[0] * shape[1] * shape[2];
}
