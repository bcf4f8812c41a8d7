// The cmp manifest: JSON stored in an ONNX file's metadata_props under "cmp", describing input, labels and layers.

import * as v from 'valibot';
import { CmpError } from '../errors.js';
import { checkDocument } from './schema.js';
import { INPUT_SPEC_SCHEMA, MODEL_SPEC_SCHEMA } from './spec.js';

export const MANIFEST_KEY = 'cmp';
export const MANIFEST_FORMAT = 'cmp-manifest/1';
/** What the graph input of a file written by this cmp takes: pixel / 255 in [0, 1] (see Manifest.input.feed). */
export const PIXEL_FEED = 'pixel/255';

const COUNT = v.pipe(v.number(), v.safeInteger(), v.minValue(0));

/**
 * Compression of one weight layer as stored in the file. `weightBytes`: bytes the layer's weights take in the file
 * (packed bits and float16 levels, int8 values and float32 scales, or float32 values). `bitsPerWeight`: weightBytes * 8
 * / weightCount: 32 for float, about 8 for int8, about 1 for binary (levels and padding included). `initializers`:
 * names of the initializers: `bits`, `upper`, `lower` (binary), `weightInt8` and `weightScale` (int8, in the op's
 * layout, dequantized along the output axis) or `weight` (float), then `scale` (absent when all ones) and `shift`, the
 * per-channel folded batch norm or bias: y = (x * W) * scale + shift.
 */
export const LAYER_MANIFEST_SCHEMA = v.object({
  name: v.string(),
  kind: v.picklist(['dense', 'conv']),
  weightShape: v.array(COUNT),
  weightCount: COUNT,
  weights: v.picklist(['none', 'xnor', 'dab', 'int8']),
  inputs: v.picklist(['none', 'xnor', 'dab']),
  weightBytes: COUNT,
  bitsPerWeight: v.pipe(v.number(), v.minValue(0)),
  initializers: v.record(v.string(), v.string()),
});
export type LayerManifest = v.InferOutput<typeof LAYER_MANIFEST_SCHEMA>;

/**
 * Input selection. Static: the graph input is the compact vector of the kept features (`features` values, ascending
 * NCHW order). Dynamic: the graph input is the whole [C, H, W] input with unsent features at zero, and the sender
 * runs the selector file beside the model (`selector`). Frames between them are cmp-select/1 (core/codec.ts), each
 * carrying `maskId`, a CRC-32 (see core/codec.ts maskId). Static: `kept` units, ascending, and the `features` they
 * cover (the graph input's length). Dynamic: the selector's pool window `selectorPool` (its file lies beside the model,
 * see selectorPath) and its `prior` and `rates` when it has them (see core/mask.ts DynamicMaskSpec). `fullInputBytes`: bytes of the
 * whole input at the same value type, what the link would carry without a mask.
 */
export const MANIFEST_MASK_SCHEMA = v.object({
  kind: v.picklist(['static', 'dynamic']),
  granularity: v.string(),
  values: v.picklist(['uint8', 'float16', 'float32']),
  units: COUNT,
  maskId: v.pipe(COUNT, v.maxValue(0xffffffff)),
  kept: v.optional(v.array(COUNT)),
  features: v.optional(COUNT),
  selectorPool: v.optional(v.pipe(COUNT, v.minValue(1))),
  prior: v.optional(v.array(COUNT)),
  rates: v.optional(v.array(COUNT)),
  fullInputBytes: COUNT,
});
export type ManifestMask = v.InferOutput<typeof MANIFEST_MASK_SCHEMA>;

/**
 * The cmp manifest (cmp-manifest/1), the whole document:
 * - `input`: graph input name and layout (NCHW float32) and the network's input normalization, (pixel/255 - mean) /
 *   std. `feed` says who applies it. 'pixel/255': callers feed pixel / 255 in [0, 1] and the graph normalizes (a Sub
 *   and a Div on the input, absent when mean is 0 and std 1). Absent, in files exported before it existed: callers
 *   feed the normalized values. In both cases a dynamic mask's unsent features are those that normalize to 0 (`mean`
 *   with 'pixel/255', else 0).
 * - `spec`: the whole network as trained (every layer in order), so runtimes other than onnxruntime can rebuild it.
 * - `layers`: the weight layers in order, with their compression and initializer names.
 * - `exits`: early exits, the layer each reads, its entropy threshold (null: never taken until calibrated), its stage;
 *   `stages`: their number + 1, each also exported as its own file; `stage`: in a stage file, which it is, its input
 *   and outputs.
 * - `selector`: true in a dynamic mask's selector file (input -> per-unit scores, not a classifier).
 * - `training`: where the model came from, when cmp trained it.
 */
export const MANIFEST_SCHEMA = v.object({
  format: v.literal(MANIFEST_FORMAT),
  cmpVersion: v.string(),
  arch: v.string(),
  input: v.object({
    ...INPUT_SPEC_SCHEMA.entries,
    name: v.string(),
    layout: v.literal('NCHW'),
    feed: v.optional(v.literal(PIXEL_FEED)),
  }),
  output: v.object({ name: v.string() }),
  labels: v.array(v.string()),
  spec: MODEL_SPEC_SCHEMA,
  layers: v.array(LAYER_MANIFEST_SCHEMA),
  exits: v.optional(
    v.array(v.object({ name: v.string(), after: v.string(), threshold: v.nullable(v.number()), stage: COUNT })),
  ),
  stages: v.optional(COUNT),
  stage: v.optional(v.object({ index: COUNT, of: COUNT, input: v.string(), outputs: v.array(v.string()) })),
  inputMask: v.optional(MANIFEST_MASK_SCHEMA),
  selector: v.optional(v.boolean()),
  training: v.optional(v.object({ dataset: v.string(), epochs: COUNT, testAccuracy: v.number() })),
});
export type Manifest = v.InferOutput<typeof MANIFEST_SCHEMA>;

/** Parses the manifest text found in an ONNX file: the whole document, or one MODEL_INVALID line naming the field. */
export function parseManifest(text: string, source: string): Manifest {
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `The cmp manifest in ${source} ${problem}. Re-export the model with cmp export.`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('is not valid JSON');
  }
  return checkDocument(MANIFEST_SCHEMA, value, (problem) => bad(`has ${problem}`));
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
