// The cmp manifest: JSON stored in an ONNX file's metadata_props under "cmp", describing input, labels and layers.

import { CmpError } from '../errors.js';
import type { BinarizeMode, InputSpec, ModelSpec, WeightMode } from './spec.js';

export const MANIFEST_KEY = 'cmp';
export const MANIFEST_FORMAT = 'cmp-manifest/1';
/** What the graph input of a file written by this cmp takes: pixel / 255 in [0, 1] (see Manifest.input.feed). */
export const PIXEL_FEED = 'pixel/255';

/** Compression of one weight layer as stored in the file. */
export interface LayerManifest {
  name: string;
  kind: 'dense' | 'conv';
  weightShape: number[];
  weightCount: number;
  weights: WeightMode;
  inputs: BinarizeMode;
  /** Bytes the layer's weights take in the file (packed bits and float16 levels, int8 values and float32 scales, or
   * float32 values). */
  weightBytes: number;
  /** weightBytes * 8 / weightCount: 32 for float, about 8 for int8, about 1 for binary (levels and padding included). */
  bitsPerWeight: number;
  /**
   * Names of the initializers: `bits`, `upper`, `lower` (binary), `weightInt8` and `weightScale` (int8, in the op's
   * layout, dequantized along the output axis) or `weight` (float), then `scale` (absent when all ones) and `shift`, the per-channel folded batch norm or bias: y = (x * W) * scale + shift.
   */
  initializers: Record<string, string>;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  cmpVersion: string;
  arch: string;
  /**
   * Graph input name and layout (NCHW float32) and the network's input normalization, (pixel/255 - mean) / std.
   * `feed` says who applies it. 'pixel/255': callers feed pixel / 255 in [0, 1] and the graph normalizes (a Sub and a
   * Div on the input, absent when mean is 0 and std 1). Absent, in files exported before it existed: callers feed the
   * normalized values. In both cases a dynamic mask's unsent features are those that normalize to 0 (`mean` with
   * 'pixel/255', else 0).
   */
  input: InputSpec & { name: string; layout: 'NCHW'; feed?: typeof PIXEL_FEED };
  output: { name: string };
  labels: string[];
  /** The whole network as trained (every layer in order), so runtimes other than onnxruntime can rebuild it. */
  spec: ModelSpec;
  /** The weight layers in order, with their compression and initializer names. */
  layers: LayerManifest[];
  /** Early exits: the layer each reads, its entropy threshold (null: never taken until calibrated), its stage. */
  exits?: { name: string; after: string; threshold: number | null; stage: number }[];
  /** Number of stages (exits + 1) when the model has exits; each is also exported as its own file. */
  stages?: number;
  /** In a stage file: which stage it is, its input and outputs. */
  stage?: { index: number; of: number; input: string; outputs: string[] };
  /**
   * Input selection. Static: the graph input is the compact vector of the kept features (`features` values, ascending
   * NCHW order). Dynamic: the graph input is the whole [C, H, W] input with unsent features at zero, and the sender
   * runs the selector file beside the model (`selector`). Frames between them are cmp-select/1 (core/codec.ts).
   */
  inputMask?: ManifestMask;
  /** True in a dynamic mask's selector file: input -> per-unit scores, not a classifier. */
  selector?: boolean;
  /** Where the model came from, when cmp trained it. */
  training?: { dataset: string; epochs: number; testAccuracy: number };
}

export interface ManifestMask {
  kind: 'static' | 'dynamic';
  granularity: string;
  values: 'uint8' | 'float16' | 'float32';
  units: number;
  /** CRC-32 mask id every frame carries (see core/codec.ts maskId). */
  maskId: number;
  /** Static: the kept units, ascending, and how many features they cover (the graph input's length). */
  kept?: number[];
  features?: number;
  /** Dynamic: the selector's pool window (its file lies beside the model, see selectorPath). */
  selectorPool?: number;
  /** Dynamic: the selector's prior, when it has one (see core/mask.ts DynamicMaskSpec). */
  prior?: number[];
  /** Bytes of the whole input at the same value type: what the link would carry without a mask. */
  fullInputBytes: number;
}

/** Parses the manifest text found in an ONNX file; a malformed one is one MODEL_INVALID line. */
export function parseManifest(text: string, source: string): Manifest {
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `The cmp manifest in ${source} ${problem}. Re-export the model with cmp export.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not valid JSON');
  }
  if (typeof value !== 'object' || value === null) throw bad('is not a JSON object');
  const m = value as Partial<Manifest>;
  if (m.format !== MANIFEST_FORMAT) throw bad(`has unknown format ${JSON.stringify(m.format)}`);
  const shape = m.input?.shape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw bad('has no valid input shape [C, H, W]');
  }
  const feed: unknown = m.input?.feed;
  if (feed !== undefined && feed !== PIXEL_FEED) {
    throw bad(`says its input takes ${JSON.stringify(feed)}, which this cmp does not know (it knows "${PIXEL_FEED}")`);
  }
  if (typeof m.input?.name !== 'string' || typeof m.output?.name !== 'string') throw bad('names no input or output');
  if (!Array.isArray(m.labels) || !m.labels.every((l) => typeof l === 'string')) throw bad('has no label list');
  if (!Array.isArray(m.layers)) throw bad('has no layer list');
  m.layers.forEach((layer: unknown, i) => checkLayer(layer, `layers[${i}]`, bad));
  return m as Manifest;
}

/** Checks one layer entry field by field, so a damaged one is a line naming the field, not a crash where it is read. */
function checkLayer(value: unknown, where: string, bad: (problem: string) => CmpError): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`has no object ${where}`);
  const l = value as Record<string, unknown>;
  const count = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;
  const checks: [string, boolean][] = [
    ['name', typeof l.name === 'string'],
    ['kind', l.kind === 'dense' || l.kind === 'conv'],
    ['weightShape', Array.isArray(l.weightShape) && l.weightShape.every(count)],
    ['weightCount', count(l.weightCount)],
    ['weights', typeof l.weights === 'string'],
    ['inputs', typeof l.inputs === 'string'],
    ['weightBytes', count(l.weightBytes)],
    ['bitsPerWeight', typeof l.bitsPerWeight === 'number' && Number.isFinite(l.bitsPerWeight)],
    [
      'initializers',
      typeof l.initializers === 'object' &&
        l.initializers !== null &&
        Object.values(l.initializers).every((n) => typeof n === 'string'),
    ],
  ];
  const wrong = checks.find(([, ok]) => !ok);
  if (wrong) throw bad(`has a missing or malformed ${where}.${wrong[0]}`);
}

/** Where a dynamic mask's selector lives, beside the model: fm-dyn.onnx -> fm-dyn.selector.onnx. */
export function selectorPath(modelPath: string): string {
  return modelPath.endsWith('.onnx') ? `${modelPath.slice(0, -5)}.selector.onnx` : `${modelPath}.selector.onnx`;
}

/** Where stage k (1-based) of a model with early exits lives, beside it: fm-exit.onnx -> fm-exit.stage1.onnx. */
export function stagePath(modelPath: string, k: number): string {
  return modelPath.endsWith('.onnx') ? `${modelPath.slice(0, -5)}.stage${k}.onnx` : `${modelPath}.stage${k}.onnx`;
}

/** Every file a model needs at run time: itself, its stage files (exits) and its selector (dynamic mask). */
export function modelFilePaths(modelPath: string, manifest: Manifest | undefined): string[] {
  const paths = [modelPath];
  for (let k = 1; k <= (manifest?.exits?.length ? (manifest.stages ?? 0) : 0); k++) paths.push(stagePath(modelPath, k));
  if (manifest?.inputMask?.kind === 'dynamic' && !manifest.selector) paths.push(selectorPath(modelPath));
  return paths;
}
