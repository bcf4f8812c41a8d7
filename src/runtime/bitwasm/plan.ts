// The bitwasm layer plan: a cmp ONNX file checked op by op and turned into layers with decoded weights, or refused.

import { packedRowBytes } from '../../core/bitpack.js';
import { fromFloat16Bits } from '../../core/float16.js';
import { PIXEL_FEED } from '../../core/manifest.js';
import { inferShapes, type BinarizeMode } from '../../core/spec.js';
import { ONNX_TYPE, onnxTypeName, toNumber, type OnnxTensor } from '../../core/onnx.js';
import { CmpError } from '../../errors.js';
import type { ModelFile } from '../model-file.js';

/**
 * The ONNX ops cmp export writes (core graph, bit unpacking and activation binarization subgraphs). A model using any
 * other op was not written by cmp export, so the manifest cannot describe what it computes.
 */
export const BITWASM_OPS: readonly string[] = Object.freeze([
  'Abs',
  'Add',
  'BitShift',
  'BitwiseAnd',
  'Cast',
  'Conv',
  'DequantizeLinear',
  'Div',
  'Flatten',
  'GreaterOrEqual',
  'Identity',
  'MatMul',
  'Max',
  'MaxPool',
  'Mul',
  'Neg',
  'ReduceMean',
  'ReduceSum',
  'Relu',
  'Reshape',
  'Shape',
  'Slice',
  'Sub',
  'Transpose',
  'Unsqueeze',
]);

/** Weights as rows [rows, rowLength]: dense [out, in], conv [filters, c * k * k] (OIHW). */
export type PlanWeights =
  | { kind: 'float'; rows: Float32Array }
  /** int8 rows (core/quantize.ts): w[r][k] = data[r * rowLength + k] * scales[r]. */
  | { kind: 'int8'; data: Int8Array; scales: Float32Array }
  | {
      kind: 'binary';
      /** The cmp bit format, as stored in the file: uint8 [rows, ceil(rowLength / 8)]. */
      packed: Uint8Array;
      lower: Float32Array;
      /** upper - lower, rounded to float32 as the exported graph does. */
      step: Float32Array;
    };

export interface PlanWeightLayer {
  kind: 'dense' | 'conv';
  name: string;
  /** [C, H, W]; dense inputs and outputs are [features, 1, 1]. */
  inputShape: [number, number, number];
  outputShape: [number, number, number];
  /** Conv kernel size (square); 1 for dense. */
  kernel: number;
  rows: number;
  rowLength: number;
  weights: PlanWeights;
  /** Per output channel; undefined when all ones (the file then has no scale). */
  scale?: Float32Array;
  shift: Float32Array;
  relu: boolean;
  inputs: BinarizeMode;
}

export type PlanLayer =
  | PlanWeightLayer
  | {
      kind: 'maxpool';
      name: string;
      size: number;
      inputShape: [number, number, number];
      outputShape: [number, number, number];
    }
  | { kind: 'flatten'; name: string; inputShape: [number, number, number]; outputShape: [number, number, number] }
  | {
      /** Zeros around every plane, `size` on each side: a padded conv's input, the conv itself then unpadded. */
      kind: 'pad';
      name: string;
      size: number;
      inputShape: [number, number, number];
      outputShape: [number, number, number];
    };

export interface Plan {
  inputShape: [number, number, number];
  /**
   * (x - mean) / std on every input value before the first layer, as the file's graph does (manifest input.feed
   * 'pixel/255', stage 1 or a whole model); absent when the caller feeds normalized values or there is none.
   */
  normalize?: { mean: number; std: number };
  classes: number;
  layers: PlanLayer[];
}

/** Why bitwasm cannot run `file`, or undefined when it can (a quick check before decoding weights). */
export function unsupportedReason(file: ModelFile): string | undefined {
  const nodes = file.model.graph?.node ?? [];
  const foreign = nodes.find((n) => !BITWASM_OPS.includes(n.opType ?? '') || (n.domain ?? '') !== '');
  if (foreign) {
    const domain = foreign.domain ? `${foreign.domain}.` : '';
    return `${file.path} uses op ${domain}${foreign.opType ?? '?'} (node "${foreign.name ?? ''}"), which bitwasm does not support; use --backend ort-node`;
  }
  if (!file.manifest) return `${file.path} has no cmp manifest, so bitwasm cannot rebuild it; use --backend ort-node`;
  if (!file.manifest.spec || !Array.isArray(file.manifest.spec.layers)) {
    return `${file.path} has a cmp manifest without the model spec (exported by an older cmp); re-export it with cmp export`;
  }
  return undefined;
}

/** Builds the plan of a cmp-exported file; anything bitwasm cannot run is one BACKEND_UNAVAILABLE line. */
export function planModel(file: ModelFile): Plan {
  const reason = unsupportedReason(file);
  if (reason) throw new CmpError('BACKEND_UNAVAILABLE', `${reason}.`);
  const manifest = file.manifest as NonNullable<ModelFile['manifest']>;
  const spec = manifest.spec;
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `${file.path}: ${problem}. Re-export the model with cmp export.`);
  let shapes;
  try {
    shapes = inferShapes(spec);
  } catch (err) {
    throw bad(`its manifest spec is invalid (${(err as Error).message})`);
  }
  // A stage file of a model with early exits holds the layers [from, to) (export-onnx.ts stageBounds) and takes the
  // previous stage's activation, flattened once a flatten or dense layer came before.
  const [from, to] = stageLayers(file, bad);
  let inputShape: [number, number, number] = [...spec.input.shape];
  let flat = false;
  if (from > 0) {
    const [c, h, w] = shapes[from].inputShape;
    flat = spec.layers.slice(0, from).some((l) => l.kind === 'flatten' || l.kind === 'dense');
    inputShape = flat ? [c * h * w, 1, 1] : [c, h, w];
  }
  // A static input mask is folded into the first dense layer (export-onnx.ts foldStaticMask): the file takes the
  // compact kept features, and that layer's rows span only them.
  const mask = manifest.inputMask;
  if (from === 0 && mask?.kind === 'static' && !manifest.selector && mask.features !== undefined) {
    if (spec.layers[0]?.kind !== 'flatten' || spec.layers[1]?.kind !== 'dense') {
      throw new CmpError(
        'BACKEND_UNAVAILABLE',
        `${file.path}: its static input mask is not folded into a first dense layer, which bitwasm needs; use --backend ort-node.`,
      );
    }
    inputShape = [mask.features, 1, 1];
    shapes[0] = { ...shapes[0], inputShape, outputShape: inputShape };
    shapes[1] = { ...shapes[1], inputShape, rowLength: mask.features };
  }
  const initializers = new Map<string, OnnxTensor>();
  for (const t of file.model.graph?.initializer ?? []) initializers.set(t.name ?? '', t);
  const layers: PlanLayer[] = [];
  if (from > 0 && flat) shapes[from] = { ...shapes[from], inputShape };
  spec.layers.slice(from, to).forEach((layer, j) => {
    const i = from + j;
    const { inputShape, outputShape, rowLength } = shapes[i];
    if (layer.kind === 'flatten') {
      flat = true;
      layers.push({ kind: 'flatten', name: layer.name, inputShape, outputShape });
      return;
    }
    if (layer.kind === 'maxpool') {
      layers.push({ kind: 'maxpool', name: layer.name, size: layer.size, inputShape, outputShape });
      return;
    }
    if (layer.kind !== 'dense' && layer.kind !== 'conv') {
      throw new CmpError(
        'BACKEND_UNAVAILABLE',
        `${file.path} has a layer of kind "${(layer as { kind: string }).kind}", which bitwasm does not support; use --backend ort-node.`,
      );
    }
    if (layer.kind === 'dense' && !flat && (inputShape[1] !== 1 || inputShape[2] !== 1)) {
      throw new CmpError(
        'BACKEND_UNAVAILABLE',
        `${file.path}: dense layer "${layer.name}" takes a [C, H, W] input without a flatten, which bitwasm does not support; use --backend ort-node.`,
      );
    }
    let convInput = inputShape;
    if (layer.kind === 'conv' && layer.padding) {
      // Zeros are not one of a binarized input's two levels, so the popcount kernels cannot take them.
      if (layer.binarize.inputs !== 'none') {
        throw new CmpError(
          'BACKEND_UNAVAILABLE',
          `${file.path}: conv layer "${layer.name}" pads its binarized input, which bitwasm does not support; use --backend ort-node.`,
        );
      }
      const p = layer.padding;
      convInput = [inputShape[0], inputShape[1] + 2 * p, inputShape[2] + 2 * p];
      layers.push({ kind: 'pad', name: `${layer.name}.pad`, size: p, inputShape, outputShape: convInput });
    }
    if (layer.kind === 'conv') flat = false;
    const entry = manifest.layers.find((l) => l.name === layer.name);
    if (!entry) throw bad(`its manifest lists no initializers for layer "${layer.name}"`);
    const rows = layer.kind === 'dense' ? layer.units : layer.filters;
    const tensorOf = (role: string): OnnxTensor => {
      const name = entry.initializers[role];
      const t = name === undefined ? undefined : initializers.get(name);
      if (!t) throw bad(`layer "${layer.name}" has no ${role} initializer`);
      return t;
    };
    let weights: PlanWeights;
    if (entry.initializers.bits !== undefined) {
      const packed = bytesOf(tensorOf('bits'), ONNX_TYPE.uint8, rows * packedRowBytes(rowLength), layer.name, bad);
      const upper = float16Of(tensorOf('upper'), rows, layer.name, bad);
      const lower = float16Of(tensorOf('lower'), rows, layer.name, bad);
      const step = new Float32Array(rows);
      for (let r = 0; r < rows; r++) step[r] = upper[r] - lower[r];
      weights = { kind: 'binary', packed, lower, step };
    } else if (entry.initializers.weightInt8 !== undefined) {
      const stored = new Int8Array(
        bytesOf(tensorOf('weightInt8'), ONNX_TYPE.int8, rows * rowLength, layer.name, bad).buffer,
      );
      const data = layer.kind === 'dense' ? transposeToRows(stored, rowLength, rows) : stored;
      weights = { kind: 'int8', data, scales: float32Of(tensorOf('weightScale'), rows, layer.name, bad) };
    } else {
      const w = float32Of(tensorOf('weight'), rows * rowLength, layer.name, bad);
      weights = { kind: 'float', rows: layer.kind === 'dense' ? transposeToRows(w, rowLength, rows) : w };
    }
    const scale =
      entry.initializers.scale === undefined ? undefined : float32Of(tensorOf('scale'), rows, layer.name, bad);
    const shift = float32Of(tensorOf('shift'), rows, layer.name, bad);
    layers.push({
      kind: layer.kind,
      name: layer.name,
      inputShape: convInput,
      outputShape,
      kernel: layer.kind === 'conv' ? layer.kernel : 1,
      rows,
      rowLength,
      weights,
      scale,
      shift,
      relu: layer.activation === 'relu',
      inputs: layer.binarize.inputs,
    });
  });
  const last = shapes[to - 1].outputShape;
  const classes = to === spec.layers.length ? spec.labels.length : last[0] * last[1] * last[2];
  const { mean, std } = spec.input;
  const normalize = from === 0 && manifest.input.feed === PIXEL_FEED && (mean !== 0 || std !== 1);
  return { inputShape, ...(normalize ? { normalize: { mean, std } } : {}), classes, layers };
}

/** The spec's layers [from, to) that `file` holds: all of them, or one stage's. */
function stageLayers(file: ModelFile, bad: Bad): [number, number] {
  const manifest = file.manifest as NonNullable<ModelFile['manifest']>;
  const layers = manifest.spec.layers;
  const stage = manifest.stage;
  if (!stage) return [0, layers.length];
  const ends = (manifest.exits ?? []).map((e) => layers.findIndex((l) => l.name === e.after) + 1);
  ends.push(layers.length);
  if (ends.length !== stage.of || stage.index < 1 || stage.index > stage.of || ends.some((e) => e <= 0)) {
    throw bad(`its stage ${stage.index} of ${stage.of} does not match the manifest's exits`);
  }
  return [stage.index === 1 ? 0 : ends[stage.index - 2], ends[stage.index - 1]];
}

/**
 * The exit head of a stage file that has one (every stage but the last): a float dense layer on the stage's output,
 * flattened, as export-onnx.ts emitExitHead writes it. Its plan takes the stage's output; its classes are the labels.
 */
export function planExit(file: ModelFile): Plan | undefined {
  const manifest = file.manifest;
  const stage = manifest?.stage;
  if (!manifest || !stage || stage.index === stage.of) return undefined;
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `${file.path}: ${problem}. Re-export the model with cmp export.`);
  const exit = manifest.exits?.[stage.index - 1];
  if (!exit) throw bad(`stage ${stage.index} has no exit in the manifest`);
  const classes = manifest.spec.labels.length;
  const initializers = new Map<string, OnnxTensor>();
  for (const t of file.model.graph?.initializer ?? []) initializers.set(t.name ?? '', t);
  const tensor = (name: string): OnnxTensor => {
    const t = initializers.get(name);
    if (!t) throw bad(`exit "${exit.name}" has no initializer ${name}`);
    return t;
  };
  const weight = tensor(`${exit.name}.weight`);
  const features = (weight.dims ?? []).map(toNumber)[0] ?? 0;
  const inputShape: [number, number, number] = [features, 1, 1];
  const w = float32Of(weight, features * classes, exit.name, bad);
  return {
    inputShape,
    classes,
    layers: [
      {
        kind: 'dense',
        name: exit.name,
        inputShape,
        outputShape: [classes, 1, 1],
        kernel: 1,
        rows: classes,
        rowLength: features,
        weights: { kind: 'float', rows: transposeToRows(w, features, classes) },
        shift: float32Of(tensor(`${exit.name}.bias`), classes, exit.name, bad),
        relu: false,
        inputs: 'none',
      },
    ],
  };
}

type Bad = (problem: string) => CmpError;

function bytesOf(t: OnnxTensor, type: number, length: number, layer: string, bad: Bad): Uint8Array {
  if (t.dataType !== type) {
    throw bad(`layer "${layer}" stores ${t.name} as ${onnxTypeName(t.dataType ?? 0)}, not ${onnxTypeName(type)}`);
  }
  const raw = t.rawData;
  const count = (t.dims ?? []).reduce((a: number, d) => a * toNumber(d), 1);
  const size = type === ONNX_TYPE.uint8 || type === ONNX_TYPE.int8 ? 1 : type === ONNX_TYPE.float16 ? 2 : 4;
  if (!raw || raw.length !== length * size || count !== length) {
    throw bad(`layer "${layer}" initializer ${t.name} has ${count} values instead of ${length}`);
  }
  // A copy, aligned, independent of the file's buffer.
  return Uint8Array.from(raw);
}

function float32Of(t: OnnxTensor, length: number, layer: string, bad: Bad): Float32Array {
  if (t.dataType === ONNX_TYPE.float && !t.rawData?.length && t.floatData?.length === length) {
    return Float32Array.from(t.floatData);
  }
  return new Float32Array(bytesOf(t, ONNX_TYPE.float, length, layer, bad).buffer);
}

function float16Of(t: OnnxTensor, length: number, layer: string, bad: Bad): Float32Array {
  const halves = new Uint16Array(bytesOf(t, ONNX_TYPE.float16, length, layer, bad).buffer);
  return Float32Array.from(halves, (h) => fromFloat16Bits(h));
}

/** [inputs, rows] (ONNX MatMul weight) to [rows, inputs]. */
function transposeToRows<T extends Float32Array | Int8Array>(w: T, inputs: number, rows: number): T {
  const out = w.slice() as T;
  for (let k = 0; k < inputs; k++) for (let r = 0; r < rows; r++) out[r * inputs + k] = w[k * rows + r];
  return out;
}
