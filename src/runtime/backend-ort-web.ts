// The onnxruntime-web adapter (WebAssembly): the only file that imports onnxruntime-web; runs in Node and browsers.

import type { Backend, BackendFactory } from './backend.js';
import type { ModelFile } from './model-file.js';

/** onnxruntime-web's wasm execution provider, single-threaded so it needs no cross-origin isolation. */
export const ortWebBackend: BackendFactory = {
  name: 'ort-web',
  priority: 10,
  async create(file: ModelFile): Promise<Backend> {
    // Loaded on first use, so a platform without this runtime can still fall back to another backend.
    const ort = await import('onnxruntime-web');
    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(file.bytes, {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
    });
    return {
      name: 'ort-web',
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
  },
};
