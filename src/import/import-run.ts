// One import job end to end: read an ONNX or TF.js model, build the cmp network, check it against the source on test
// data, and save it as a run folder that train --from, prune, export and eval take like any other.

import { freeze } from '../core/frozen.js';
import { saveRun, type ImportCheck, type ImportSummary, type TrainingRecord } from '../core/run.js';
import { CMP_VERSION } from '../core/version.js';
import type { Dataset } from '../data/datasets.js';
import { CmpError } from '../errors.js';
import { accuracyOf, predictFrozen } from '../compress/train.js';
import { createBackend } from '../runtime/backends.js';
import { parseModelFile } from '../runtime/model-file.js';
import type { ImportedNetwork } from './chain.js';
import { importOnnx, type ImportInputOptions } from './import-onnx.js';
import { importTfjs } from './import-tfjs.js';

/** The model formats cmp import reads. */
export type ImportFormat = 'onnx' | 'tfjs';
export const IMPORT_FORMATS: readonly ImportFormat[] = Object.freeze(['onnx', 'tfjs']);

/** What to import and how (the CLI flags of cmp import). */
export interface ImportRunOptions extends ImportInputOptions {
  /** onnx or tfjs; by default a .json file is TF.js and anything else ONNX. */
  format?: ImportFormat;
  /** Test data to compare the source and the imported model on (their accuracy and outputs). */
  data?: Dataset;
  /** Compare on the first `limit` test images only. */
  limit?: number;
  /** The run folder to write; nothing is written when undefined. */
  out?: string;
}

/** The imported network, what the run records of its origin, and its (empty) training record. */
export interface ImportRunResult {
  network: ImportedNetwork;
  summary: ImportSummary;
  training: TrainingRecord;
}

/**
 * The normalization that gives a model expecting values in [lo, hi] for black and white pixels (from --input-range
 * "LO,HI"): lo + x (hi - lo) = (x - mean) / std for pixels x in [0, 1].
 */
export function parseInputRange(text: string): { mean: number; std: number } {
  const parts = text.split(',').map((s) => Number(s.trim()));
  const [lo, hi] = parts;
  if (parts.length !== 2 || !Number.isFinite(lo) || !Number.isFinite(hi) || !(lo < hi)) {
    throw new CmpError(
      'BAD_FLAG',
      `--input-range takes LO,HI with LO < HI, the values black and white pixels become (got "${text}"). Example: --input-range 0,255`,
    );
  }
  // `|| 0` turns the -0 of lo = 0 into 0.
  return { mean: -lo / (hi - lo) || 0, std: 1 / (hi - lo) };
}

/** Imports the model at `path` (and with `out`, saves it as a run folder). */
export async function importRun(path: string, options: ImportRunOptions): Promise<ImportRunResult> {
  const started = Date.now();
  const format = options.format ?? (path.toLowerCase().endsWith('.json') ? 'tfjs' : 'onnx');
  if (!(options.std > 0) || !Number.isFinite(options.mean)) {
    throw new CmpError('BAD_FLAG', `The input range gives std ${options.std}; use --input-range LO,HI with LO < HI.`);
  }
  let network: ImportedNetwork;
  let summary: Omit<ImportSummary, 'layers' | 'notes'>;
  let source: SourceModel | undefined;
  if (format === 'onnx') {
    const onnx = importOnnx(path, options);
    network = onnx.network;
    summary = { source: path, format: 'onnx', producer: onnx.producer, opset: onnx.opset, nodes: onnx.nodes };
    if (options.data) {
      const dims = [...network.spec.input.shape];
      const backend = await createBackend('ort-node', parseModelFile(onnx.bytes, path));
      source = {
        runtime: 'onnxruntime-node',
        // The source's own input dims; an open-dim input takes the shape the user gave.
        run: (x, count) => backend.run(x, [count, ...(onnx.inputDims.every((d) => d > 0) ? onnx.inputDims : dims)]),
        dispose: () => backend.dispose(),
      };
    }
  } else {
    const tfjs = await importTfjs(path, options);
    network = tfjs.network;
    const kind = tfjs.format === 'graph-model' ? 'tfjs-graph' : 'tfjs-layers';
    summary = { source: path, format: kind, producer: tfjs.producer, nodes: tfjs.nodes };
    source = { runtime: 'TensorFlow.js', run: (x, count) => tfjs.predict(x, count), dispose: () => tfjs.dispose() };
  }
  // Without --labels, a data set with as many classes names them.
  const data = options.data;
  if (!options.labels && data && data.labels.length === network.spec.labels.length) {
    network.spec.labels = [...data.labels];
  }
  let check: ImportCheck | undefined;
  try {
    if (options.data && source) check = await compare(network, options, options.data, source);
  } finally {
    await source?.dispose();
  }
  const full: ImportSummary = {
    ...summary,
    layers: network.sources,
    notes: network.notes,
    ...(check ? { check } : {}),
  };
  const training: TrainingRecord = {
    dataset: options.data?.name ?? '',
    epochs: 0,
    batchSize: 0,
    learningRate: 0,
    seed: 0,
    backend: 'import',
    trainCount: 0,
    testCount: check?.samples ?? 0,
    durationMs: Date.now() - started,
    history: [],
    testAccuracy: check?.importedAccuracy ?? 0,
  };
  if (options.out) {
    saveRun(options.out, { cmpVersion: CMP_VERSION, spec: network.spec, training, imported: full }, network.tensors);
  }
  return { network, summary: full, training };
}

/** The source model in its own runtime. */
interface SourceModel {
  runtime: string;
  /** Outputs for `count` inputs as the source takes them (NCHW images, or flat vectors). */
  run(x: Float32Array, count: number): Promise<Float32Array>;
  dispose(): Promise<void> | void;
}

/** The source and the imported model on the same test images: both accuracies and the largest output difference. */
async function compare(
  network: ImportedNetwork,
  options: ImportRunOptions,
  data: Dataset,
  source: SourceModel,
): Promise<ImportCheck> {
  const { spec } = network;
  const features = spec.input.shape.reduce((a, b) => a * b, 1);
  const dataFeatures = data.inputShape.reduce((a, b) => a * b, 1);
  if (features !== dataFeatures || spec.labels.length !== data.labels.length) {
    throw new CmpError(
      'BAD_FLAG',
      `The imported model takes [${spec.input.shape.join(', ')}] and has ${spec.labels.length} classes, data set ${data.name} is [${data.inputShape.join(', ')}] with ${data.labels.length}. Use a data set the model was made for.`,
    );
  }
  const samples = Math.min(options.limit ?? data.test.count, data.test.count);
  const frozen = freeze(spec, new Map([...network.tensors].map(([name, t]) => [name, t.data])));
  const imported = outputsOf(network, await predictFrozen(frozen, data, data.test, samples));
  const classes = spec.labels.length;
  const expected = new Float32Array(samples * classes);
  for (let start = 0; start < samples; start += 500) {
    const count = Math.min(500, samples - start);
    // The source takes what the user said it expects: (x - mean) / std from --input-range.
    const x = data.test.x
      .slice(start * features, (start + count) * features)
      .map((v) => (v - options.mean) / options.std);
    expected.set((await source.run(x, count)).subarray(0, count * classes), start * classes);
  }
  let maxAbsDiff = 0;
  for (let i = 0; i < expected.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(expected[i] - imported[i]));
  return {
    dataset: data.name,
    samples,
    sourceRuntime: source.runtime,
    sourceAccuracy: accuracyOf(expected, data.test.y, classes),
    importedAccuracy: accuracyOf(imported, data.test.y, classes),
    maxAbsDiff,
  };
}

/** The imported model's logits as the source outputs them: through the softmax it ended with, if any. */
export function outputsOf(network: ImportedNetwork, logits: Float32Array): Float32Array {
  if (!network.outputOf) return logits;
  const classes = network.spec.labels.length;
  const out = new Float32Array(logits.length);
  for (let i = 0; i < logits.length; i += classes) {
    let max = -Infinity;
    for (let c = 0; c < classes; c++) max = Math.max(max, logits[i + c]);
    let sum = 0;
    for (let c = 0; c < classes; c++) sum += Math.exp(logits[i + c] - max);
    for (let c = 0; c < classes; c++) {
      const log = logits[i + c] - max - Math.log(sum);
      out[i + c] = network.outputOf === 'softmax' ? Math.exp(log) : log;
    }
  }
  return out;
}
