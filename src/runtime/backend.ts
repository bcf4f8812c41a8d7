// The Backend interface every runtime adapter implements, and the registry that picks one by name with fallback.

import { nowMs } from '../core/clock.js';
import { CmpError } from '../errors.js';
import { callerNormalization, type ModelFile } from './model-file.js';
import type { Profiler } from './profiler.js';
import { standardize } from './standardize.js';

/** A loaded model on one runtime. */
export interface Backend {
  readonly name: string;
  /** Runs a float32 input of shape `dims` (batch first) and returns the output rows. */
  run(input: Float32Array, dims: number[]): Promise<Float32Array>;
  /** Every float32 output by name (stage files of early-exit models have two); backends with one output omit it. */
  runAll?(input: Float32Array, dims: number[]): Promise<Record<string, Float32Array>>;
  /** Backends that time their layers (bitwasm) record begin/end events into `profiler` while one is set. */
  setProfiler?(profiler: Profiler | undefined): void;
  dispose(): Promise<void>;
  /** Set by `auto` when it timed this backend against another and kept the faster: what it measured. */
  readonly choice?: BackendChoice;
}

/** The timing race `auto` ran at load: median batch-1 milliseconds of each backend on the same probe inputs. */
export interface BackendChoice {
  medianMs: Record<string, number>;
  /** One line: which backend won, by how much. */
  reason: string;
}

/** Creates a Backend for a model; registered by short lowercase name. */
export interface BackendFactory {
  readonly name: string;
  /** Higher is tried first by `auto`. */
  readonly priority: number;
  /** The priority for this model, when it depends on the model (bitwasm is fastest only on binary layers). */
  rank?(file: ModelFile): number;
  /**
   * Whether its speed against the others depends on the model and the machine (bitwasm: binary layers with binarized
   * inputs are far faster than onnxruntime, float-input convolutions slower). When it ranks first, `auto` also loads
   * the next backend and keeps whichever runs the model faster here.
   */
  readonly raced?: boolean;
  create(file: ModelFile): Promise<Backend>;
}

const registry = new Map<string, BackendFactory>();

/** Registers a backend factory (a later registration under the same name replaces it). */
export function registerBackend(factory: BackendFactory): void {
  registry.set(factory.name, factory);
}

/** Names of the registered backends, highest priority first. */
export function backendNames(): string[] {
  return [...registry.values()].sort((a, b) => b.priority - a.priority).map((f) => f.name);
}

/**
 * Creates the named backend, or with 'auto' the highest-ranked one for this model that loads; a raced backend that
 * ranks first is timed against the next one that loads and the faster is kept. When none loads, one error lists every
 * failure.
 */
export async function createBackend(name: string, file: ModelFile): Promise<Backend> {
  if (name !== 'auto' && !registry.has(name)) {
    throw new CmpError('BAD_ARGUMENT', `Unknown backend "${name}". Use one of: auto, ${backendNames().join(', ')}.`);
  }
  const rank = (f: BackendFactory): number => f.rank?.(file) ?? f.priority;
  const candidates = name === 'auto' ? [...registry.values()].sort((a, b) => rank(b) - rank(a)) : [registry.get(name)];
  const failures: string[] = [];
  const probe = name === 'auto' ? probeInput(file) : undefined;
  let first: Backend | undefined;
  for (const factory of candidates as BackendFactory[]) {
    let backend: Backend;
    try {
      backend = await factory.create(file);
    } catch (err) {
      failures.push(
        `${factory.name}: ${String((err as Error).message ?? err)
          .split('\n')[0]
          .replace(/\.$/, '')}`,
      );
      continue;
    }
    if (first && probe) return race(first, backend, probe);
    if (name !== 'auto' || !factory.raced || rank(factory) <= 0 || !probe) return backend;
    first = backend;
  }
  if (first) return first;
  throw new CmpError('BACKEND_UNAVAILABLE', `No backend could load ${file.path} (${failures.join('; ')}).`);
}

/**
 * Calls per backend in a race: warm-up calls (onnxruntime sizes its arenas, V8 moves hot wasm from its baseline
 * compiler to the optimizing one), at least RACE_CALLS timed calls and at most RACE_MAX_CALLS, and the time the race
 * may take: a big model stops early after a few calls, a small one keeps timing until the budget is spent, since its
 * first calls are not yet its steady speed and two backends a few hundredths of a millisecond apart need many calls.
 */
const RACE_WARMUP = 5;
const RACE_CALLS = 15;
const RACE_MAX_CALLS = 200;
const RACE_BUDGET_MS = 60;

/**
 * Times two loaded backends call by call on the probe inputs (batch 1) and keeps the faster, with the race recorded in
 * its `choice`; the other is disposed. A backend that fails on the probe loses.
 */
async function race(a: Backend, b: Backend, probe: Probe): Promise<Backend> {
  const { inputs, dims } = probe;
  const samples = new Map<Backend, number[]>([
    [a, []],
    [b, []],
  ]);
  const failed = new Set<Backend>();
  const began = nowMs();
  for (let i = 0; i < RACE_WARMUP + RACE_MAX_CALLS && failed.size === 0; i++) {
    for (const backend of i % 2 === 0 ? [a, b] : [b, a]) {
      const t = nowMs();
      try {
        await backend.run(inputs[i % inputs.length], dims);
      } catch {
        failed.add(backend);
        continue;
      }
      if (i >= RACE_WARMUP) samples.get(backend)?.push(nowMs() - t);
    }
    const spent = nowMs() - began;
    if (i >= RACE_WARMUP + 2 && spent > 2 * RACE_BUDGET_MS) break;
    if (i >= RACE_WARMUP + RACE_CALLS && spent > RACE_BUDGET_MS) break;
  }
  const median = (backend: Backend): number => {
    const s = [...(samples.get(backend) ?? [])].sort((x, y) => x - y);
    return failed.has(backend) || s.length === 0 ? Infinity : s[s.length >> 1];
  };
  if (failed.has(a) && failed.has(b)) {
    // The probe does not suit this model (both failed on it): keep the ranking's choice, untimed.
    await b.dispose();
    return a;
  }
  const [winner, loser] = failed.has(a) || (!failed.has(b) && median(b) < median(a)) ? [b, a] : [a, b];
  await loser.dispose();
  const said = (backend: Backend): string => {
    if (failed.has(backend)) return `${backend.name} failed on the probe input`;
    const ms = median(backend);
    return Number.isFinite(ms) ? `${backend.name} ${ms.toFixed(3)} ms` : `${backend.name} (not timed)`;
  };
  const choice: BackendChoice = {
    medianMs: { [a.name]: median(a), [b.name]: median(b) },
    reason: `auto: ${said(winner)} per batch-1 call against ${said(loser)}, timed here at load`,
  };
  return Object.assign(winner, { choice });
}

/**
 * Fixed batch-1 inputs the race times both backends on, one after another. Several, not one: a kernel whose branches
 * follow the data runs a repeated input faster than real traffic, since the CPU's branch predictor learns it (bitwasm's
 * int8 LeNet: 0.070 ms per call on one input repeated, 0.152 ms on inputs that change, onnxruntime-node 0.058 ms both
 * ways), and a race on one input picked the slower backend.
 */
interface Probe {
  inputs: Float32Array[];
  dims: number[];
}

/** How many distinct probe inputs a race cycles through. */
const PROBE_INPUTS = 16;

/** A fixed pseudo-random batch-1 input in the model's input range, or undefined when its input dims are open. */
function probeInput(file: ModelFile): Probe | undefined {
  if (file.inputDims.length === 0 || file.inputDims.some((d) => d <= 0)) return undefined;
  const { mean, std } = callerNormalization(file);
  const size = file.inputDims.reduce((x, y) => x * y, 1);
  let state = 12345;
  const inputs = Array.from({ length: PROBE_INPUTS }, () => {
    const input = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      state = (Math.imul(state, 1103515245) + 12345) >>> 0;
      input[i] = state / 2 ** 32;
    }
    return standardize(input, { mean, std }, input);
  });
  return { inputs, dims: [1, ...file.inputDims] };
}
