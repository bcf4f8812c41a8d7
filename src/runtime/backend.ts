// The Backend interface every runtime adapter implements, and the registry that picks one by name with fallback.

import { CmpError } from '../errors.js';
import type { ModelFile } from './model-file.js';
import type { Profiler } from './profiler.js';

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
}

/** Creates a Backend for a model; registered by short lowercase name. */
export interface BackendFactory {
  readonly name: string;
  /** Higher is tried first by `auto`. */
  readonly priority: number;
  /** The priority for this model, when it depends on the model (bitwasm is fastest only on binary layers). */
  rank?(file: ModelFile): number;
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
 * Creates the named backend, or with 'auto' the highest-ranked one for this model that loads. When none loads, one error lists
 * every failure.
 */
export async function createBackend(name: string, file: ModelFile): Promise<Backend> {
  if (name !== 'auto' && !registry.has(name)) {
    throw new CmpError('BAD_ARGUMENT', `Unknown backend "${name}". Use one of: auto, ${backendNames().join(', ')}.`);
  }
  const rank = (f: BackendFactory): number => f.rank?.(file) ?? f.priority;
  const candidates =
    name === 'auto' ? [...registry.values()].sort((a, b) => rank(b) - rank(a)).map((f) => f.name) : [name];
  const failures: string[] = [];
  for (const candidate of candidates) {
    try {
      return await (registry.get(candidate) as BackendFactory).create(file);
    } catch (err) {
      failures.push(
        `${candidate}: ${String((err as Error).message ?? err)
          .split('\n')[0]
          .replace(/\.$/, '')}`,
      );
    }
  }
  throw new CmpError('BACKEND_UNAVAILABLE', `No backend could load ${file.path} (${failures.join('; ')}).`);
}
