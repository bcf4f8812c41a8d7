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
  if (layer.kind === 'flatten' || layer.kind === 'maxpool') return layer.kind;
  const inputs = layer.inputs === 'none' ? 'float in' : `${layer.inputs} in`;
  if (layer.weights.kind === 'float') return `${layer.kind} float w, ${inputs}`;
  return layer.inputs === 'none'
    ? `${layer.kind} 1-bit w, float in (masked sum)`
    : `${layer.kind} 1-bit w, ${inputs} (popcount)`;
}

/** Float elements of a shape [C, H, W]. */
export function features(shape: readonly number[]): number {
  return shape[0] * shape[1] * shape[2];
}
