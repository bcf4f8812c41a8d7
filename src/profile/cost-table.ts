// The per-kernel cost table of one device ("cmp-costs/1"): the time of each layer kernel per unit of work, fitted
// from layer times the device measured (cmp profile records them), so cmp analyze can estimate a model it never ran.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CmpError } from '../errors.js';

export const COST_TABLE_FORMAT = 'cmp-costs/1';

/** One measured layer: its kernel, its work units (MACs, popcount words, pool compares) and its time. */
export interface CostSample {
  kernel: string;
  units: number;
  ms: number;
  /** The model it came from, for the reader. */
  model?: string;
}

/** A kernel's fitted cost: ms = fixedMs + msPerUnit x units. */
export interface KernelCost {
  msPerUnit: number;
  fixedMs: number;
  samples: number;
}

/** A device's table. */
export interface CostTable {
  format: typeof COST_TABLE_FORMAT;
  /** The device it was measured on (the board name for mcu). */
  device: string;
  /** What the times are: e.g. "SysTick ticks of the emulated board (QEMU virtual clock = host time)". */
  clock: string;
  updatedAt: string;
  kernels: Record<string, KernelCost>;
  /** Per-inference time outside the layers (input scaling, argmax; on a host the backend's call), ms. */
  overheadMs?: number;
  samples: CostSample[];
  /**
   * Whole-model times, on a host whose backend times no single layer (onnxruntime): the kernels' costs and the
   * overhead are then fitted over models (fitTotals) instead of over layers.
   */
  models?: ModelSample[];
}

/** One model's batch-1 p50 with its work per kernel. */
export interface ModelSample {
  model: string;
  units: Record<string, number>;
  ms: number;
}

/** The key a layer's time is kept under: kind, weight storage and input binarization (`dense/binary/dab`). */
export function costKey(kind: string, weights: string, inputs: string): string {
  if (kind !== 'dense' && kind !== 'conv') return kind;
  return `${kind}/${weights}/${inputs}`;
}

/** Kernels that do no work on the device (flatten is a view of the same buffer). */
const FREE_KERNELS: readonly string[] = Object.freeze(['flatten']);

/** The estimated time of `units` of work on `kernel`, ms; undefined when the table has no such kernel. */
export function estimateMs(table: CostTable, kernel: string, units: number): number | undefined {
  if (FREE_KERNELS.includes(kernel)) return 0;
  const cost = table.kernels[kernel];
  return cost ? cost.fixedMs + cost.msPerUnit * units : undefined;
}

/**
 * Fits each kernel's cost by least squares over its samples: ms = fixed + perUnit x units, both kept non-negative;
 * with one distinct size (or a negative fit) the fixed part is 0 and the per-unit cost the ratio of the sums.
 */
export function fitCosts(samples: readonly CostSample[]): Record<string, KernelCost> {
  const byKernel = new Map<string, CostSample[]>();
  for (const s of samples) {
    if (FREE_KERNELS.includes(s.kernel) || !(s.units > 0)) continue;
    byKernel.set(s.kernel, [...(byKernel.get(s.kernel) ?? []), s]);
  }
  const kernels: Record<string, KernelCost> = {};
  for (const [kernel, list] of byKernel) {
    const n = list.length;
    const mx = list.reduce((a, s) => a + s.units, 0) / n;
    const my = list.reduce((a, s) => a + s.ms, 0) / n;
    const sxx = list.reduce((a, s) => a + (s.units - mx) ** 2, 0);
    const sxy = list.reduce((a, s) => a + (s.units - mx) * (s.ms - my), 0);
    let perUnit = sxx > 0 ? sxy / sxx : 0;
    let fixed = my - perUnit * mx;
    if (sxx === 0 || perUnit <= 0 || fixed < 0) {
      perUnit = list.reduce((a, s) => a + s.ms, 0) / list.reduce((a, s) => a + s.units, 0);
      fixed = 0;
    }
    kernels[kernel] = { msPerUnit: perUnit, fixedMs: fixed, samples: n };
  }
  return kernels;
}

/**
 * Fits per-call overhead and per-unit kernel costs to whole-model times: non-negative least squares on the relative
 * error (each model weighs the same however fast it is), by coordinate descent on scaled columns.
 */
export function fitTotals(samples: readonly ModelSample[]): {
  kernels: Record<string, KernelCost>;
  overheadMs: number;
} {
  const keys = [...new Set(samples.flatMap((s) => Object.keys(s.units)))].filter((k) => !FREE_KERNELS.includes(k));
  // rows: [1, units...] / ms, target 1
  const rows = samples.map((s) => [1, ...keys.map((k) => s.units[k] ?? 0)].map((v) => v / s.ms));
  const scale = rows[0]?.map((_, j) => Math.sqrt(rows.reduce((a, r) => a + r[j] ** 2, 0)) || 1) ?? [];
  const a = rows.map((r) => r.map((v, j) => v / scale[j]));
  const x = new Array<number>(scale.length).fill(0);
  const residual = a.map(() => 1); // b - A x with x = 0
  for (let sweep = 0; sweep < 5000; sweep++) {
    for (let j = 0; j < x.length; j++) {
      const g = a.reduce((acc, r, i) => acc + r[j] * residual[i], 0);
      const next = Math.max(0, x[j] + g); // columns have unit norm
      const d = next - x[j];
      if (d !== 0) a.forEach((r, i) => (residual[i] -= r[j] * d));
      x[j] = next;
    }
  }
  const kernels: Record<string, KernelCost> = {};
  keys.forEach((k, j) => {
    kernels[k] = { msPerUnit: x[j + 1] / scale[j + 1], fixedMs: 0, samples: samples.length };
  });
  return { kernels, overheadMs: x[0] / scale[0] };
}

/** Adds a model's whole batch-1 time to a host's table (replacing that model's earlier one) and refits it. */
export function recordModelCost(path: string, device: string, clock: string, sample: ModelSample): CostTable {
  const old = existsSync(path) ? readCostTable(path) : undefined;
  const models = [...(old?.models ?? []).filter((m) => m.model !== sample.model), sample];
  const fit = fitTotals(models);
  const table: CostTable = {
    format: COST_TABLE_FORMAT,
    device,
    clock,
    updatedAt: new Date().toISOString(),
    kernels: fit.kernels,
    overheadMs: fit.overheadMs,
    samples: [],
    models,
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(table, null, 2)}\n`);
  return table;
}

/** The table's default place: $CMP_HOME/costs/<device>.json. */
export function costTablePath(home: string, device: string): string {
  return join(home, 'costs', `${device.replace(/[^A-Za-z0-9._-]/g, '_')}.json`);
}

/** Reads a table; a missing or foreign file is one line saying how to make one. */
export function readCostTable(path: string): CostTable {
  if (!existsSync(path)) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `No cost table at ${path}. Measure one with cmp profile on the device (it records one per device), or pass --costs FILE.`,
    );
  }
  let table: CostTable;
  try {
    table = JSON.parse(readFileSync(path, 'utf8')) as CostTable;
  } catch (err) {
    throw new CmpError('BAD_ARGUMENT', `${path} is not JSON. Pass a ${COST_TABLE_FORMAT} file cmp profile wrote.`, {
      cause: err,
    });
  }
  if (table?.format !== COST_TABLE_FORMAT || typeof table.kernels !== 'object' || !Array.isArray(table.samples)) {
    throw new CmpError('BAD_ARGUMENT', `${path} is not a ${COST_TABLE_FORMAT} table. Pass one cmp profile wrote.`);
  }
  return table;
}

/**
 * Adds a model's measured layers to the device's table (replacing that model's earlier samples) and refits it.
 * Returns the table written.
 */
export function recordCosts(
  path: string,
  device: string,
  clock: string,
  model: string,
  samples: CostSample[],
  overheadMs?: number,
): CostTable {
  const old = existsSync(path) ? readCostTable(path) : undefined;
  const kept = (old?.samples ?? []).filter((s) => s.model !== model);
  const all = [...kept, ...samples.map((s) => ({ ...s, model }))];
  const table: CostTable = {
    format: COST_TABLE_FORMAT,
    device,
    clock,
    updatedAt: new Date().toISOString(),
    kernels: fitCosts(all),
    ...(overheadMs !== undefined
      ? { overheadMs }
      : old?.overheadMs !== undefined
        ? { overheadMs: old.overheadMs }
        : {}),
    samples: all,
  };
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(table, null, 2)}\n`);
  return table;
}
