// Reading any ONNX file for running: its input and output, its cmp manifest when it has one, and its sizes.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { CmpError } from '../errors.js';
import type { DatasetConsumer } from '../data/datasets.js';
import { MANIFEST_KEY, modelFilePaths, parseManifest, PIXEL_FEED, type Manifest } from '../core/manifest.js';
import {
  decodeModel,
  encodeOnnxModel,
  onnxTypeName,
  tensorBytes,
  toNumber,
  valueDims,
  type OnnxModel,
  type OnnxValueInfo,
} from '../core/onnx.js';
import { embedExternalData, ExternalData } from './external-data.js';

/** What a runtime needs to know about a model file. */
export interface ModelFile {
  path: string;
  /** The model as runtimes load it from memory: tensors kept in external data files are embedded. */
  bytes: Uint8Array;
  /** The decoded model, external data embedded. */
  model: OnnxModel;
  /** Bytes of the ONNX file itself, without its external data. */
  fileBytes: number;
  /** Side files that held tensors of the model (external data): path as read, location in the model's folder. */
  externalData?: { path: string; location: string; bytes: number }[];
  /** Present when cmp exported the file. */
  manifest?: Manifest;
  /**
   * The normalization the network wants on pixel / 255, (x - mean) / std, and who applies it: the graph itself (cmp
   * files with input.feed 'pixel/255'), or the caller before each call (older cmp files; foreign files, with the range
   * eval and run take from --input-range, else the identity). `callerNormalization` gives what a caller applies.
   */
  normalization: { mean: number; std: number; by: 'graph' | 'caller' };
  inputName: string;
  /** Input dims without the batch dim; -1 where the file leaves a dim open. */
  inputDims: number[];
  outputName: string;
  outputDims: number[];
  opset: number;
  producer: string;
}

/**
 * What a data set must fit to feed this file: its input (the manifest's whole input, which a masked file's compact
 * graph input is selected from), its classes and the data set its manifest records.
 */
export function datasetConsumer(file: ModelFile): DatasetConsumer {
  const classes = file.manifest?.labels.length ?? file.outputDims[file.outputDims.length - 1];
  const inputShape = file.manifest?.input.shape ?? file.inputDims;
  return { name: file.path, recorded: file.manifest?.training?.dataset, inputShape, classes };
}

/** Reads a model file by path: from disk in Node, by fetch in a browser (sibling files of stages and selectors). */
export type ModelReader = (path: string) => Promise<ModelFile>;

/** The ModelReader of Node: readModelFile. */
export const readModelFileAsync: ModelReader = async (path) => readModelFile(path);

/** Reads and checks an ONNX file; a missing, truncated or foreign file is one clear error. */
export function readModelFile(path: string): ModelFile {
  if (!existsSync(path)) {
    throw new CmpError(
      'MODEL_MISSING',
      `There is no model file ${path}. Check the path, or export one: cmp export RUN --out FILE.`,
    );
  }
  let bytes: Uint8Array;
  try {
    if (statSync(path).isDirectory()) throw new Error('it is a folder; pass the .onnx file in it');
    bytes = readFileSync(path);
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'EACCES' ? 'permission denied' : (err as Error).message;
    throw new CmpError('MODEL_INVALID', `Cannot read model file ${path}: ${why}. Check the path.`, { cause: err });
  }
  return parseModelFile(bytes, path);
}

/**
 * Parses ONNX bytes read from `path`. Tensors the file keeps in external data files are read from `path`'s folder
 * (never outside it) and embedded, so every runtime loads the model from memory wherever the process runs.
 */
export function parseModelFile(bytes: Uint8Array, path: string): ModelFile {
  const model = decodeModel(bytes, path);
  const fileBytes = bytes.length;
  const external = new ExternalData(path);
  if (embedExternalData(model, external)) bytes = encodeOnnxModel(model, path);
  const graph = model.graph as NonNullable<OnnxModel['graph']>;
  const stored = new Set((graph.initializer ?? []).map((t) => t.name));
  const inputs = (graph.input ?? []).filter((i) => !stored.has(i.name));
  const outputs = graph.output ?? [];
  if (inputs.length === 0 || outputs.length === 0) {
    throw new CmpError('MODEL_INVALID', `${path} has no graph input or output. Pass a complete ONNX model.`);
  }
  const entry = (model.metadataProps ?? []).find((p) => p.key === MANIFEST_KEY);
  const manifest = entry ? parseManifest(entry.value ?? '', path) : undefined;
  const input = manifest ? (inputs.find((i) => i.name === manifest.input.name) ?? inputs[0]) : inputs[0];
  const output = manifest ? (outputs.find((o) => o.name === manifest.output.name) ?? outputs[0]) : outputs[0];
  const elemType = input.type?.tensorType?.elemType ?? 1;
  if (elemType !== 1) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} takes ${onnxTypeName(elemType)} input "${input.name}"; cmp runs models with float32 input. Export it with a float input.`,
    );
  }
  const dims = (info: OnnxValueInfo): number[] =>
    valueDims(info)
      .slice(1)
      .map((d) => (typeof d === 'number' ? d : -1));
  const defaultOpset = (model.opsetImport ?? []).find((o) => !o.domain);
  return {
    path,
    bytes,
    model,
    fileBytes,
    ...(external.used ? { externalData: external.sources } : {}),
    manifest,
    normalization: manifest
      ? {
          mean: manifest.input.mean,
          std: manifest.input.std,
          by: manifest.input.feed === PIXEL_FEED ? 'graph' : 'caller',
        }
      : { mean: 0, std: 1, by: 'caller' },
    inputName: input.name as string,
    inputDims:
      manifest && input.name === manifest.input.name
        ? manifest.inputMask?.kind === 'static' && !manifest.selector
          ? [manifest.inputMask.features ?? -1]
          : [...manifest.input.shape]
        : dims(input),
    outputName: output.name as string,
    outputDims: dims(output),
    opset: defaultOpset ? toNumber(defaultOpset.version) : 0,
    producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim(),
  };
}

/** What a caller applies to pixel / 255 before feeding `file`, (x - mean) / std: the identity when its graph does. */
export function callerNormalization(file: ModelFile): { mean: number; std: number } {
  return file.normalization.by === 'graph' ? { mean: 0, std: 1 } : file.normalization;
}

/**
 * `file` fed as a model expecting pixels mapped by `range` ((x - mean) / std, from --input-range). A cmp file says
 * what it takes in its manifest: a range that differs from it is one BAD_FLAG line.
 */
export function withInputRange(file: ModelFile, range: { mean: number; std: number }): ModelFile {
  const { mean, std } = file.normalization;
  if (!file.manifest) return { ...file, normalization: { ...range, by: 'caller' } };
  const close = (a: number, b: number): boolean => Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));
  if (close(range.mean, mean) && close(range.std, std)) return file;
  const said = (m: number, s: number): string => `[${[-m / s, (1 - m) / s].map((v) => +v.toPrecision(6)).join(', ')}]`;
  throw new CmpError(
    'BAD_FLAG',
    `${file.path} is a cmp file whose manifest says its network takes pixels in ${said(mean, std)}, not ${said(range.mean, range.std)}; --input-range is for files without a cmp manifest. Drop the flag.`,
  );
}

/** Sizes of a model's stored tensors, for inspect and benchmarks. */
export function initializerSizes(file: ModelFile): { name: string; type: string; dims: number[]; bytes: number }[] {
  return (file.model.graph?.initializer ?? []).map((t) => ({
    name: t.name ?? '',
    type: onnxTypeName(t.dataType ?? 0),
    dims: (t.dims ?? []).map(Number),
    bytes: tensorBytes(t).bytes,
  }));
}

/**
 * Every file `file` needs at run time (itself, its stage files, its selector, its external data), each checked to be
 * there, with its name relative to the model's folder ('/'-separated): where it goes beside the model on a device.
 */
export function modelFilesOf(file: ModelFile): { path: string; name: string }[] {
  const paths = modelFilePaths(file.path, file.manifest);
  const missing = paths.find((p) => !existsSync(p));
  if (missing) {
    throw new CmpError(
      'MODEL_INVALID',
      `${file.path} needs ${missing} beside it, which is missing. Export the model again.`,
    );
  }
  const beside = paths.map((path) => ({
    path,
    name: path.slice(Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\')) + 1),
  }));
  return [...beside, ...(file.externalData ?? []).map((e) => ({ path: e.path, name: e.location }))];
}
