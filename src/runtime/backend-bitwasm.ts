// The bitwasm backend: cmp's own engine (WebAssembly SIMD, weights kept 1-bit), for models cmp exported.

import { CmpError } from '../errors.js';
import type { Backend, BackendFactory } from './backend.js';
import type { Engine, EngineMode } from './bitwasm/engine.js';
import { createReferenceEngine } from './bitwasm/engine-reference.js';
import { createWasmEngine } from './bitwasm/engine-wasm.js';
import { planExit, planModel, type Plan } from './bitwasm/plan.js';
import { isBinaryMode } from '../core/spec.js';
import type { ModelFile } from './model-file.js';
import type { Profiler } from './profiler.js';

/** Above ort-node for cmp files with binary layers; below every other backend for anything else. */
export const BITWASM_PRIORITY = 30;

/** A Backend running `file` on the wasm kernels, or with `mode: 'reference'` on the plain TypeScript reference. */
export async function createBitwasmBackend(
  file: ModelFile,
  mode: EngineMode = 'wasm',
): Promise<Backend & { engine: Engine }> {
  const plan = planModel(file);
  const create = async (p: Plan): Promise<Engine> =>
    mode === 'wasm' ? await createWasmEngine(p) : createReferenceEngine(p);
  const engine = await create(plan);
  // A stage file with an exit: the exit head runs as a second engine on the stage's output.
  const exitPlan = planExit(file);
  const exit = exitPlan ? await create(exitPlan) : undefined;
  const perSample = plan.inputShape[0] * plan.inputShape[1] * plan.inputShape[2];
  let profiler: Profiler | undefined;
  const run = (input: Float32Array, dims: number[]): Float32Array => {
    const batch = dims[0];
    if (input.length !== batch * perSample) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `bitwasm got input [${dims.join(', ')}] but ${file.path} takes [batch, ${plan.inputShape.join(', ')}]. Feed the model's input shape.`,
      );
    }
    return engine.run(input, batch, profiler);
  };
  return {
    name: mode === 'wasm' ? 'bitwasm' : 'bitwasm-reference',
    engine,
    async run(input: Float32Array, dims: number[]): Promise<Float32Array> {
      return run(input, dims);
    },
    async runAll(input: Float32Array, dims: number[]): Promise<Record<string, Float32Array>> {
      const out = run(input, dims);
      const names = file.manifest?.stage?.outputs ?? [file.outputName];
      if (!exit) return { [names[0]]: out };
      return { [names[0]]: out, [names[1]]: exit.run(out, dims[0], profiler) };
    },
    setProfiler(p: Profiler | undefined): void {
      profiler = p;
    },
    async dispose(): Promise<void> {
      engine.dispose();
      exit?.dispose();
    },
  };
}

/**
 * Registered as `bitwasm`; `auto` ranks it first for cmp models with at least one binary or int8 layer and for the
 * stage files of models with exits (per-call overhead weighs most there: B-LeNet's stage 1 is a few microseconds of
 * work), and then keeps it only if it runs the model faster than the next backend here.
 */
export const bitwasmBackend: BackendFactory = {
  name: 'bitwasm',
  priority: BITWASM_PRIORITY,
  raced: true,
  rank(file: ModelFile): number {
    const packed = file.manifest?.layers?.some((l) => isBinaryMode(l.weights) || l.weights === 'int8');
    return packed || file.manifest?.stage ? BITWASM_PRIORITY : 0;
  },
  create: (file: ModelFile) => createBitwasmBackend(file),
};
