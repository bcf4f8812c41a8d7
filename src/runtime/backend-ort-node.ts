// The onnxruntime-node adapter: the only file that imports onnxruntime-node.

import type { Backend, BackendFactory } from './backend.js';
import type { ModelFile } from './model-file.js';

export interface OrtNodeOptions {
  /** Threads inside one operator (onnxruntime's intraOpNumThreads); onnxruntime's default when undefined. */
  intraOpNumThreads?: number;
}

/** onnxruntime-node with all graph optimizations (which also fold the in-graph bit unpacking once). */
export async function createOrtNodeBackend(file: ModelFile, options: OrtNodeOptions = {}): Promise<Backend> {
  // Loaded on first use, so a platform without this runtime can still fall back to another backend.
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(file.bytes, {
    graphOptimizationLevel: 'all',
    ...(options.intraOpNumThreads ? { intraOpNumThreads: options.intraOpNumThreads } : {}),
  });
  return {
    name: 'ort-node',
    async run(input: Float32Array, dims: number[]): Promise<Float32Array> {
      const result = await session.run({ [file.inputName]: new ort.Tensor('float32', input, dims) });
      return result[file.outputName].data as Float32Array;
    },
    async runAll(input: Float32Array, dims: number[]): Promise<Record<string, Float32Array>> {
      const result = await session.run({ [file.inputName]: new ort.Tensor('float32', input, dims) });
      const out: Record<string, Float32Array> = {};
      for (const [name, t] of Object.entries(result)) if (t.type === 'float32') out[name] = t.data as Float32Array;
      return out;
    },
    dispose: () => session.release(),
  };
}

export const ortNodeBackend: BackendFactory = {
  name: 'ort-node',
  priority: 20,
  create: (file: ModelFile) => createOrtNodeBackend(file),
};
