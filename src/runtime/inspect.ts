// What an ONNX file holds: operators, stored tensors and their sizes, and cmp's per-layer compression when present.

import type { LayerManifest, Manifest } from '../core/manifest.js';
import { isBinaryMode } from '../core/spec.js';
import { initializerSizes, type ModelFile } from './model-file.js';

export interface ModelReport {
  path: string;
  /** Bytes of the ONNX file itself. */
  fileBytes: number;
  /** Side files holding some of its tensors (external data), with their sizes. */
  externalData?: { path: string; bytes: number }[];
  producer: string;
  opset: number;
  input: { name: string; dims: number[] };
  output: { name: string; dims: number[] };
  /** Node count per operator type. */
  ops: Record<string, number>;
  initializers: { name: string; type: string; dims: number[]; bytes: number }[];
  /** Bytes of all initializers. */
  weightBytes: number;
  manifest?: Manifest;
  /** cmp layers, when the file has a manifest. */
  layers?: LayerManifest[];
  /** Over the binarized layers: total bits stored (bits and levels) per weight. */
  binaryBitsPerWeight?: number;
  /** Over the int8 layers: total bits stored (int8 values and per-channel scales) per weight. */
  int8BitsPerWeight?: number;
}

/** Describes a model file for `cmp inspect`. */
export function inspectModel(file: ModelFile): ModelReport {
  const ops: Record<string, number> = {};
  for (const n of file.model.graph?.node ?? []) ops[n.opType ?? '?'] = (ops[n.opType ?? '?'] ?? 0) + 1;
  const initializers = initializerSizes(file);
  const binary = file.manifest?.layers.filter((l) => isBinaryMode(l.weights)) ?? [];
  const binaryWeights = binary.reduce((a, l) => a + l.weightCount, 0);
  const int8 = file.manifest?.layers.filter((l) => l.weights === 'int8') ?? [];
  const int8Weights = int8.reduce((a, l) => a + l.weightCount, 0);
  return {
    path: file.path,
    fileBytes: file.fileBytes,
    ...(file.externalData ? { externalData: file.externalData } : {}),
    producer: file.producer,
    opset: file.opset,
    input: { name: file.inputName, dims: file.inputDims },
    output: { name: file.outputName, dims: file.outputDims },
    ops,
    initializers,
    weightBytes: initializers.reduce((a, t) => a + t.bytes, 0),
    manifest: file.manifest,
    layers: file.manifest?.layers,
    binaryBitsPerWeight: binaryWeights
      ? (binary.reduce((a, l) => a + l.weightBytes, 0) * 8) / binaryWeights
      : undefined,
    int8BitsPerWeight: int8Weights ? (int8.reduce((a, l) => a + l.weightBytes, 0) * 8) / int8Weights : undefined,
  };
}
