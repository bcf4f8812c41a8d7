// The TensorFlow.js adapter: the only file that loads @tensorflow/*; tfjs-node where installed, else the wasm backend.

import { createRequire } from 'node:module';
import { CmpError } from '../errors.js';

export type Tf = typeof import('@tensorflow/tfjs');

let loaded: Promise<{ tf: Tf; backend: string }> | undefined;

/**
 * Loads TensorFlow.js once. A user's `@tensorflow/tfjs-node` (or `-gpu`) is used when it resolves, because it is
 * the fastest on a workstation; otherwise `@tensorflow/tfjs` on the wasm backend (about 7x faster than its cpu
 * backend for training here). Set CMP_TF_BACKEND=cpu|wasm to force one.
 */
export function loadTf(): Promise<{ tf: Tf; backend: string }> {
  loaded ??= load();
  return loaded;
}

async function load(): Promise<{ tf: Tf; backend: string }> {
  const forced = process.env.CMP_TF_BACKEND;
  if (!forced) {
    for (const name of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      if (!resolvable(name)) continue;
      try {
        const tf = (await import(name)) as Tf;
        await tf.ready();
        return { tf, backend: tf.getBackend() };
      } catch {
        // A broken native install falls through to the portable backends.
      }
    }
  }
  const tf = await import('@tensorflow/tfjs');
  await import('@tensorflow/tfjs-backend-wasm');
  const wanted = forced ?? 'wasm';
  if (!(await tf.setBackend(wanted))) {
    throw new CmpError(
      'BACKEND_UNAVAILABLE',
      `TensorFlow.js backend "${wanted}" failed to start. Use CMP_TF_BACKEND=cpu.`,
    );
  }
  await tf.ready();
  return { tf, backend: wanted };
}

function resolvable(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * A float32 tensor's values, read without a copy where the backend allows: tfjs-wasm's dataSync copies the tensor out
 * of the wasm heap (about 6 ms for a 784x512 layer here, more than the layer's product), while its own kernels view
 * the heap in place. The view is valid until the next TensorFlow.js call; read it at once.
 */
export function viewFloat32(tf: Tf, tensor: import('@tensorflow/tfjs').Tensor): Float32Array {
  const backend = tf.backend() as { typedArrayFromHeap?: (info: import('@tensorflow/tfjs').TensorInfo) => unknown };
  if (backend.typedArrayFromHeap && tensor.dtype === 'float32') {
    const view = backend.typedArrayFromHeap({ dataId: tensor.dataId, shape: tensor.shape, dtype: tensor.dtype });
    if (view instanceof Float32Array) return view;
  }
  return tensor.dataSync() as Float32Array;
}

/**
 * A float32 tensor of `values`, a buffer the caller reuses: tfjs-wasm copies it into its heap at once, while other
 * backends may keep the array itself, so they get a copy.
 */
export function tensorOfScratch(tf: Tf, values: Float32Array, shape: number[]): import('@tensorflow/tfjs').Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? values : values.slice(), shape, 'float32');
}
