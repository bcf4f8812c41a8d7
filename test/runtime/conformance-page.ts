// The conformance suite's page in Chromium: one exported model answered on a backend as the browser target runs it.

import { parseModelFile, Predictor, type ModelReader } from '../../src/edge.js';

/** One answer, as plain numbers (what crosses back to the test). */
export interface PageAnswer {
  label: number;
  exit: number;
  logits: number[];
}

declare global {
  interface Window {
    /** Opens `model` (and its stage and selector files) on `backend` and answers `count` instances of `inputs`. */
    conform(model: string, backend: string, inputs: string, count: number): Promise<PageAnswer[]>;
  }
}

async function fetchBytes(path: string): Promise<Uint8Array> {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path} answered HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

const read: ModelReader = async (path) => parseModelFile(await fetchBytes(path), path);

window.conform = async (model, backend, inputs, count) => {
  const bytes = await fetchBytes(inputs);
  const pixels = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const predictor = await Predictor.open(await read(model), { backend, read });
  try {
    if (predictor.backendName !== backend) throw new Error(`${backend} was asked for, ${predictor.backendName} ran`);
    const features = pixels.length / count;
    const answers: PageAnswer[] = [];
    for (let i = 0; i < count; i++) {
      const p = await predictor.infer(pixels.subarray(i * features, (i + 1) * features));
      answers.push({ label: p.label, exit: p.exit, logits: Array.from(p.logits) });
    }
    return answers;
  } finally {
    await predictor.dispose();
  }
};
