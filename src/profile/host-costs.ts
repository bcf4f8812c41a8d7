// This machine's cost tables: a backend that times its layers (bitwasm) gets per-layer samples fitted per kernel,
// as the board's; one that times none (onnxruntime) gets its whole-model p50 fitted over every model recorded.

import { nowMs, percentile } from '../core/clock.js';
import type { Backend } from '../runtime/backend.js';
import type { ModelFile } from '../runtime/model-file.js';
import { Profiler } from '../runtime/profiler.js';
import { analyzeModel, hostUnits } from './analyze.js';
import { recordCosts, recordModelCost, type CostSample, type CostTable } from './cost-table.js';

/** Profiled calls (after as many unprofiled ones) whose per-layer medians make a layer-timed backend's samples. */
export const LAYER_COST_RUNS = 500;

/** What one model's timing gives a table. */
export interface HostCostMeasure {
  /** Per-layer median ms (backends that time layers), with each layer's kernel and work units. */
  samples?: CostSample[];
  /** The batch-1 p50 outside the layers (a warm unprofiled p50 - the sum of the layers' medians), ms. */
  overheadMs?: number;
  /** Whole-model work per kernel (hostUnits), for the fit over models. */
  units: Record<string, number>;
  p50Ms: number;
}

/**
 * Measures one model for `backend`'s table: its batch-1 `p50Ms` (timed by the caller, without a profiler), and for a
 * backend that times its layers, each layer's median over `runs` profiled calls of `input` and the time outside them.
 */
export async function measureHostCosts(
  backend: Backend,
  file: ModelFile,
  input: Float32Array,
  dims: number[],
  p50Ms: number,
  runs = LAYER_COST_RUNS,
): Promise<HostCostMeasure> {
  const layers = analyzeModel(file, { target: 'host' }).layers;
  const units = hostUnits(layers, backend.name);
  if (!backend.setProfiler) return { units, p50Ms };
  // Warm first: a fresh process runs wasm on its baseline compiler until the optimized code is ready. Then the
  // unprofiled p50 the layers' medians are taken from (the caller's p50 may include cold calls).
  for (let i = 0; i < runs; i++) await backend.run(input, dims);
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    const began = nowMs();
    await backend.run(input, dims);
    warm.push(nowMs() - began);
  }
  const profiler = new Profiler();
  backend.setProfiler(profiler);
  try {
    for (let i = 0; i < runs; i++) await backend.run(input, dims);
  } finally {
    backend.setProfiler(undefined);
  }
  // A span also holds the profiler's own work between its two clock reads: timed empty, it is taken off each layer
  // (on layers of a microsecond or less it made small models look slower than they run unprofiled).
  const empty = new Profiler();
  for (let i = 0; i < runs; i++) empty.end(empty.begin('empty'));
  const emptyMs = empty.summary()[0]?.p50Ms ?? 0;
  // The profiler gives the split between the layers; the caller's p50 (timed beside the other models, as cmp run
  // times) gives the whole. On a loaded machine the two are minutes apart, and the machine's speed moves between them.
  const warmMs = percentile(warm, 50);
  const scale = warmMs > 0 && p50Ms > 0 ? p50Ms / warmMs : 1;
  const rows = new Map(profiler.summary().map((r) => [r.name, scale * Math.max(0, r.p50Ms - emptyMs)]));
  const samples: CostSample[] = layers.flatMap((l) => {
    const ms = rows.get(l.name);
    return ms !== undefined && l.units > 0 ? [{ kernel: l.kernel, units: l.units, ms }] : [];
  });
  const inLayers = [...rows.values()].reduce((a, ms) => a + ms, 0);
  return { samples, overheadMs: Math.max(0, scale * warmMs - inLayers), units, p50Ms };
}

/** Adds one model's measure to the backend's table at `path` and refits it; returns the table written. */
export function recordHostCosts(path: string, backendName: string, model: string, m: HostCostMeasure): CostTable {
  const device = `host-${backendName}`;
  if (m.samples) {
    return recordCosts(path, device, 'performance.now(), per-layer medians (profiler)', model, m.samples, m.overheadMs);
  }
  return recordModelCost(path, device, 'performance.now(), batch-1 p50', { model, units: m.units, ms: m.p50Ms });
}
