// Export of a frozen model to standard ONNX (opset 18): binary weights stored 1 bit each and unpacked in the graph.

import { packedRowBytes } from '../core/bitpack.js';
import { encodeFloat16 } from '../core/float16.js';
import type { FrozenModel, FrozenWeightLayer } from '../core/frozen.js';
import { MANIFEST_FORMAT, MANIFEST_KEY, type LayerManifest, type Manifest } from '../core/manifest.js';
import {
  encodeModel,
  floatTensor,
  int64Tensor,
  node,
  ONNX_TYPE,
  tensor,
  valueInfo,
  type OnnxNode,
  type OnnxTensor,
} from '../core/onnx.js';
import { ACTIVATION_LLOYD_STEPS, inferShapes } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';

/** The opset cmp writes: 18 is the first with BitwiseAnd, which unpacks bits. */
export const EXPORT_OPSET = 18;
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';

export interface ExportResult {
  bytes: Uint8Array;
  manifest: Manifest;
}

/** Builds the ONNX file of a frozen model; `training` is recorded in the manifest when given. */
export function exportOnnx(frozen: FrozenModel, training?: Manifest['training']): ExportResult {
  const g = new GraphBuilder();
  const shapes = inferShapes(frozen.spec);
  const layers: LayerManifest[] = [];
  let h = INPUT_NAME;
  frozen.layers.forEach((layer, i) => {
    if (layer.kind === 'flatten') h = g.op('Flatten', [h], layer.name, { axis: 1 });
    else if (layer.kind === 'maxpool') {
      h = g.op('MaxPool', [h], layer.name, {
        kernel_shape: [layer.size, layer.size],
        strides: [layer.size, layer.size],
      });
    } else {
      const input = binarizeInputs(g, h, layer, featureCount(shapes[i].inputShape));
      const { weight, manifest } = weights(g, layer);
      layers.push(manifest);
      h =
        layer.kind === 'dense'
          ? g.op('MatMul', [input, weight], `${layer.name}.matmul`)
          : g.op('Conv', [input, weight], `${layer.name}.conv`, { kernel_shape: layer.weightShape.slice(2) });
      const channelShape = layer.kind === 'dense' ? [layer.scale.length] : [layer.scale.length, 1, 1];
      if (layer.scale.some((s) => s !== 1)) {
        const scale = g.constFloat(`${layer.name}.scale`, channelShape, layer.scale);
        manifest.initializers.scale = scale;
        h = g.op('Mul', [h, scale], `${layer.name}.scaled`);
      }
      const shift = g.constFloat(`${layer.name}.shift`, channelShape, layer.shift);
      manifest.initializers.shift = shift;
      h = g.op('Add', [h, shift], `${layer.name}.shifted`);
      if (layer.activation === 'relu') h = g.op('Relu', [h], `${layer.name}.relu`);
    }
  });
  g.nodes.push(node('Identity', [h], [OUTPUT_NAME]));
  const { spec } = frozen;
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    cmpVersion: CMP_VERSION,
    arch: spec.arch,
    input: { ...spec.input, name: INPUT_NAME, layout: 'NCHW' },
    output: { name: OUTPUT_NAME },
    labels: spec.labels,
    spec,
    layers,
    ...(training ? { training } : {}),
  };
  const bytes = encodeModel({
    name: `cmp-${spec.arch}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [valueInfo(INPUT_NAME, ['batch', ...spec.input.shape])],
    outputs: [valueInfo(OUTPUT_NAME, ['batch', spec.labels.length])],
    opset: EXPORT_OPSET,
    producerVersion: CMP_VERSION,
    metadata: { [MANIFEST_KEY]: JSON.stringify(manifest) },
  });
  return { bytes, manifest };
}

function featureCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Collects nodes and initializers; every op gets a unique output name derived from `name`. */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private readonly constants = new Map<string, string>();

  op(
    opType: string,
    inputs: string[],
    name: string,
    attributes: Record<string, number | number[] | string> = {},
  ): string {
    this.nodes.push(node(opType, inputs, [name], attributes));
    return name;
  }

  init(t: OnnxTensor): string {
    this.initializers.push(t);
    return t.name as string;
  }

  constFloat(name: string, dims: number[], values: ArrayLike<number>): string {
    return this.init(floatTensor(name, dims, values));
  }

  /** A shared int64 constant (shapes, axes), written once per distinct value. */
  constInt64(values: number[]): string {
    const key = `i64:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const.i64.${values.join('_').replace(/-/g, 'm')}`;
      this.init(int64Tensor(name, [values.length], values));
      this.constants.set(key, name);
    }
    return name;
  }

  /** A shared uint8 constant. */
  constUint8(dims: number[], values: number[]): string {
    const key = `u8:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const.u8.${values.join('_')}`;
      this.init(tensor(name, ONNX_TYPE.uint8, dims, Uint8Array.from(values)));
      this.constants.set(key, name);
    }
    return name;
  }

  /** A shared scalar float constant. */
  constScalar(value: number): string {
    const key = `f32:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const.f32.${String(value).replace(/[-.]/g, '_')}`;
      this.init(floatTensor(name, [], [value]));
      this.constants.set(key, name);
    }
    return name;
  }
}

/**
 * The layer's weights as a graph value in the layout its op wants (MatMul [in, out], Conv OIHW). Binary weights are
 * stored as uint8 bits [rows, ceil(rowLength / 8)] and float16 levels [rows, 1] (see core/bitpack.ts) and expanded
 * by BitShift, BitwiseAnd and Cast: w = lower + (upper - lower) * bit.
 */
function weights(g: GraphBuilder, layer: FrozenWeightLayer): { weight: string; manifest: LayerManifest } {
  const weightCount = featureCount(layer.weightShape);
  const base = {
    name: layer.name,
    kind: layer.kind,
    weightShape: layer.weightShape,
    weightCount,
    inputs: layer.inputs,
  };
  if (layer.weights.kind === 'float') {
    const name = g.constFloat(`${layer.name}.weight`, layer.weightShape, layer.weights.data);
    const weightBytes = weightCount * 4;
    return {
      weight: name,
      manifest: { ...base, weights: 'none', weightBytes, bitsPerWeight: 32, initializers: { weight: name } },
    };
  }
  const { packed, rows, rowLength, upper, lower, mode } = layer.weights;
  const rowBytes = packedRowBytes(rowLength);
  const bits = g.init(tensor(`${layer.name}.bits`, ONNX_TYPE.uint8, [rows, rowBytes], packed));
  const up16 = g.init(tensor(`${layer.name}.upper`, ONNX_TYPE.float16, [rows, 1], bytesOf(encodeFloat16(upper))));
  const lo16 = g.init(tensor(`${layer.name}.lower`, ONNX_TYPE.float16, [rows, 1], bytesOf(encodeFloat16(lower))));
  const shifts = g.constUint8([8], [0, 1, 2, 3, 4, 5, 6, 7]);
  const one = g.constUint8([], [1]);
  const p = `${layer.name}.unpack`;
  const column = g.op('Unsqueeze', [bits, g.constInt64([2])], `${p}.column`);
  const shifted = g.op('BitShift', [column, shifts], `${p}.shifted`, { direction: 'RIGHT' });
  const masked = g.op('BitwiseAnd', [shifted, one], `${p}.masked`);
  const asFloat = g.op('Cast', [masked], `${p}.float`, { to: ONNX_TYPE.float });
  let flat = g.op('Reshape', [asFloat, g.constInt64([rows, rowBytes * 8])], `${p}.rows`);
  if (rowBytes * 8 !== rowLength) {
    flat = g.op('Slice', [flat, g.constInt64([0]), g.constInt64([rowLength]), g.constInt64([1])], `${p}.unpadded`);
  }
  const up = g.op('Cast', [up16], `${p}.upper`, { to: ONNX_TYPE.float });
  const lo = g.op('Cast', [lo16], `${p}.lower`, { to: ONNX_TYPE.float });
  const step = g.op('Sub', [up, lo], `${p}.step`);
  const w = g.op('Add', [lo, g.op('Mul', [flat, step], `${p}.scaled`)], `${p}.weights`);
  const weight =
    layer.kind === 'dense'
      ? g.op('Transpose', [w], `${layer.name}.weight`, { perm: [1, 0] })
      : g.op('Reshape', [w, g.constInt64(layer.weightShape)], `${layer.name}.weight`);
  const weightBytes = packed.length + 4 * rows;
  return {
    weight,
    manifest: {
      ...base,
      weights: mode,
      weightBytes,
      bitsPerWeight: (weightBytes * 8) / weightCount,
      initializers: { bits, upper: up16, lower: lo16 },
    },
  };
}

function bytesOf(a: Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * The input binarization of a layer, in graph ops, computing what training and the runtimes compute (see
 * compress/network.ts): DAB centres across channels (axis 1), then per sample runs ACTIVATION_LLOYD_STEPS Lloyd steps
 * from the sample mean (threshold = midpoint of the two level means) and replaces each value by its level's mean.
 */
function binarizeInputs(g: GraphBuilder, h: string, layer: FrozenWeightLayer, features: number): string {
  if (layer.inputs === 'none') return h;
  const p = `${layer.name}.binarize`;
  const shape = g.op('Shape', [h], `${p}.shape`);
  const axis = g.constInt64([1]);
  let levels: SplitLevels;
  if (layer.inputs === 'dab') {
    const mean = g.op('ReduceMean', [h, axis], `${p}.mean`, { keepdims: 1 });
    const flat = g.op('Reshape', [g.op('Sub', [h, mean], `${p}.centred`), g.constInt64([0, -1])], `${p}.flat`);
    let threshold = g.op('ReduceMean', [flat, axis], `${p}.t0`, { keepdims: 1 });
    levels = splitLevels(g, flat, threshold, features, `${p}.s0`);
    for (let step = 1; step <= ACTIVATION_LLOYD_STEPS; step++) {
      const sum = g.op('Add', [levels.upper, levels.lower], `${p}.t${step}.sum`);
      threshold = g.op('Div', [sum, g.constScalar(2)], `${p}.t${step}`);
      levels = splitLevels(g, flat, threshold, features, `${p}.s${step}`);
    }
  } else {
    const flat = g.op('Reshape', [h, g.constInt64([0, -1])], `${p}.flat`);
    const bits = g.op('Cast', [g.op('GreaterOrEqual', [flat, g.constScalar(0)], `${p}.isup`)], `${p}.bits`, {
      to: ONNX_TYPE.float,
    });
    const upper = g.op('ReduceMean', [g.op('Abs', [flat], `${p}.abs`), axis], `${p}.upper`, { keepdims: 1 });
    levels = { bits, upper, lower: g.op('Neg', [upper], `${p}.lower`) };
  }
  const step = g.op('Sub', [levels.upper, levels.lower], `${p}.step`);
  const q = g.op('Add', [levels.lower, g.op('Mul', [step, levels.bits], `${p}.scaled`)], `${p}.levels`);
  return g.op('Reshape', [q, shape], `${p}.out`);
}

interface SplitLevels {
  bits: string;
  upper: string;
  lower: string;
}

/** Bits (flat >= threshold) and the mean of the values on each side, per row of `flat` [N, n]. */
function splitLevels(g: GraphBuilder, flat: string, threshold: string, n: number, p: string): SplitLevels {
  const axis = g.constInt64([1]);
  const one = g.constScalar(1);
  const bits = g.op('Cast', [g.op('GreaterOrEqual', [flat, threshold], `${p}.isup`)], `${p}.bits`, {
    to: ONNX_TYPE.float,
  });
  const ups = g.op('ReduceSum', [bits, axis], `${p}.ups`, { keepdims: 1 });
  const downs = g.op('Sub', [g.constScalar(n), ups], `${p}.downs`);
  const notBits = g.op('Sub', [one, bits], `${p}.notbits`);
  const upSum = g.op('ReduceSum', [g.op('Mul', [flat, bits], `${p}.upvals`), axis], `${p}.upsum`, { keepdims: 1 });
  const downSum = g.op('ReduceSum', [g.op('Mul', [flat, notBits], `${p}.downvals`), axis], `${p}.downsum`, {
    keepdims: 1,
  });
  return {
    bits,
    upper: g.op('Div', [upSum, g.op('Max', [ups, one], `${p}.upcount`)], `${p}.upper`),
    lower: g.op('Div', [downSum, g.op('Max', [downs, one], `${p}.downcount`)], `${p}.lower`),
  };
}
