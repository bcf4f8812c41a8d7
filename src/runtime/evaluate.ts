// Evaluating an ONNX model on a labelled data set with any backend: accuracy and per-batch latency.

import { CmpError } from '../errors.js';
import { nowMs, percentile } from '../core/clock.js';
import type { Dataset, Split } from '../data/datasets.js';
import type { Backend } from './backend.js';
import { MaskedInput, type LinkTally } from './masked-input.js';
import { callerNormalization, type ModelFile } from './model-file.js';
import { standardize } from './standardize.js';

export interface EvalOptions {
  /** Evaluate only the first `limit` test samples. */
  limit?: number;
  batchSize?: number;
  onProgress?: (done: number, total: number) => void;
  /** Backend of a dynamic mask's selector (default auto). */
  selectorBackend?: string;
}

export interface EvalResult {
  backend: string;
  count: number;
  correct: number;
  accuracy: number;
  batchSize: number;
  /** Wall time of one backend call per batch, milliseconds. */
  batchLatencyMs: { p50: number; p90: number; p99: number; mean: number };
  /**
   * The network's input normalization of pixels in [0, 1], (x - mean) / std, where it came from (the cmp manifest,
   * else --input-range or none) and who applied it (the graph, or this evaluation before each call).
   */
  normalization: { mean: number; std: number; fromManifest: boolean; by: 'graph' | 'caller' };
  /** Masked models: what the sender sent, frame by frame (cmp-select/1), against sending every input whole. */
  link?: LinkTally & { meanFrameBytes: number; saving: number };
}

/** The concrete input dims for `batch` samples of `data`, or a one-line error when model and data disagree. */
export function inputDimsFor(file: ModelFile, data: Pick<Dataset, 'inputShape' | 'name'>, batch: number): number[] {
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  const open = file.inputDims.filter((d) => d < 0).length;
  const known = file.inputDims.filter((d) => d > 0).reduce((a, b) => a * b, 1);
  if (open === 0 && known === features) return [batch, ...file.inputDims];
  if (open === 1 && features % known === 0)
    return [batch, ...file.inputDims.map((d) => (d < 0 ? features / known : d))];
  throw new CmpError(
    'BAD_ARGUMENT',
    `Model input [${file.inputDims.join(', ')}] does not fit data set ${data.name} [${data.inputShape.join(', ')}]. Use a data set of the model's input size.`,
  );
}

/** Runs the model over the test split and scores it. */
export async function evaluate(
  backend: Backend,
  file: ModelFile,
  data: Dataset,
  options: EvalOptions = {},
): Promise<EvalResult> {
  const split = data.test;
  const count = Math.min(options.limit ?? split.count, split.count);
  const batchSize = options.batchSize ?? 100;
  const classes = outputClasses(file, data);
  const latencies: number[] = [];
  let correct = 0;
  const link = await MaskedInput.open(file, options.selectorBackend);
  try {
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      const { input, dims } = await modelInput(link, file, data, start, size);
      const began = nowMs();
      const logits = await backend.run(input, dims);
      latencies.push(nowMs() - began);
      for (let i = 0; i < size; i++) if (argmax(logits, i * classes, classes) === split.y[start + i]) correct++;
      options.onProgress?.(start + size, count);
    }
  } finally {
    await link?.dispose();
  }
  return {
    backend: backend.name,
    count,
    correct,
    accuracy: count ? correct / count : 0,
    batchSize,
    batchLatencyMs: {
      p50: percentile(latencies, 50),
      p90: percentile(latencies, 90),
      p99: percentile(latencies, 99),
      mean: latencies.reduce((a, b) => a + b, 0) / Math.max(latencies.length, 1),
    },
    normalization: { ...file.normalization, fromManifest: file.manifest !== undefined },
    ...(link ? { link: linkSummary(link.tally) } : {}),
  };
}

function linkSummary(t: LinkTally): LinkTally & { meanFrameBytes: number; saving: number } {
  return { ...t, meanFrameBytes: t.frames ? t.bytes / t.frames : 0, saving: t.bytes ? t.fullBytes / t.bytes : 0 };
}

/**
 * The model input for test samples [start, start + size): the pixels as the model takes them (normalized here only
 * when its graph does not), or for a masked model what the receiver decodes from the sender's frames.
 */
async function modelInput(
  link: MaskedInput | undefined,
  file: ModelFile,
  data: Dataset,
  start: number,
  size: number,
): Promise<{ input: Float32Array; dims: number[] }> {
  if (link) {
    const features = data.inputShape.reduce((a, b) => a * b, 1);
    if (features !== link.codec.layout.unitOf.length) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Model ${file.path} selects from a [${link.codec.layout.shape.join(', ')}] input but data set ${data.name} is [${data.inputShape.join(', ')}]. Use a data set of the model's input size.`,
      );
    }
    return link.modelInput(data.test.x.subarray(start * features, (start + size) * features), size);
  }
  const { mean, std } = callerNormalization(file);
  return { input: batchInput(data.test, data, start, size, mean, std), dims: inputDimsFor(file, data, size) };
}

/** Logits of the first `count` test samples (rows of `classes`), for comparisons across runtimes. */
export async function predict(
  backend: Backend,
  file: ModelFile,
  data: Dataset,
  count: number,
  batchSize = 100,
): Promise<Float32Array> {
  const classes = outputClasses(file, data);
  const out = new Float32Array(count * classes);
  const link = await MaskedInput.open(file);
  try {
    for (let start = 0; start < count; start += batchSize) {
      const size = Math.min(batchSize, count - start);
      const { input, dims } = await modelInput(link, file, data, start, size);
      const logits = await backend.run(input, dims);
      out.set(logits.subarray(0, size * classes), start * classes);
    }
  } finally {
    await link?.dispose();
  }
  return out;
}

function outputClasses(file: ModelFile, data: Dataset): number {
  const classes = file.outputDims.length ? file.outputDims[file.outputDims.length - 1] : -1;
  if (classes > 0 && classes !== data.labels.length) {
    throw new CmpError(
      'BAD_ARGUMENT',
      `Model has ${classes} outputs but data set ${data.name} has ${data.labels.length} classes. Use a matching data set.`,
    );
  }
  return data.labels.length;
}

function batchInput(split: Split, data: Dataset, start: number, size: number, mean: number, std: number): Float32Array {
  const features = data.inputShape.reduce((a, b) => a * b, 1);
  return standardize(split.x.subarray(start * features, (start + size) * features), { mean, std });
}

function argmax(values: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let c = 1; c < length; c++) if (values[offset + c] > values[offset + best]) best = c;
  return best;
}
