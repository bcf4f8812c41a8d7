// Export of a frozen model to standard ONNX (opset 18): binary weights stored 1 bit each and unpacked in the graph.

import { packBits, packedRowBytes, unpackBits } from '../core/bitpack.js';
import { encodeFloat16 } from '../core/float16.js';
import type { FrozenExit, FrozenModel, FrozenWeightLayer, Int8Weights } from '../core/frozen.js';
import {
  MANIFEST_FORMAT,
  MANIFEST_KEY,
  PIXEL_FEED,
  type LayerManifest,
  type Manifest,
  type ManifestMask,
} from '../core/manifest.js';
import { granularityName, MASK_VALUE_BYTES, maskLayout } from '../core/mask.js';
import { maskId } from '../core/codec.js';
import {
  encodeModel,
  int64Attribute,
  floatTensor,
  int64Tensor,
  node,
  ONNX_TYPE,
  tensor,
  valueInfo,
  type AttributeValue,
  type OnnxNode,
  type OnnxSubgraph,
  type OnnxTensor,
} from '../core/onnx.js';
import { ACTIVATION_LLOYD_STEPS, inferShapes, type LayerShapes } from '../core/spec.js';
import { CMP_VERSION } from '../core/version.js';

/** The opset cmp writes: 18 is the first with BitwiseAnd, which unpacks bits. */
export const EXPORT_OPSET = 18;
export const INPUT_NAME = 'input';
export const OUTPUT_NAME = 'logits';

export interface ExportResult {
  bytes: Uint8Array;
  manifest: Manifest;
  /** With early exits: each stage as its own ONNX model (stage 1 first); empty otherwise. */
  stages: Uint8Array[];
  /** With a dynamic mask: the sender's selector model (input -> per-unit scores, > 0 means send). */
  selector?: Uint8Array;
}

/** The selector model's output: one score per mask unit. */
export const SCORES_NAME = 'scores';

/** Initializer holding the exit thresholds (nats, one per exit): the calibrated ones. */
export const THRESHOLDS_NAME = 'exit_thresholds';
/** Graph output naming the exit taken: 1..n for early exits, 0 for the final classifier. */
export const EXIT_INDEX_NAME = 'exit_index';
/** Threshold of an uncalibrated exit: entropy is never negative, so it is never taken. */
export const NEVER_EXIT = -1;

/**
 * Builds the ONNX file of a frozen model; `training` is recorded in the manifest when given. The file takes pixel / 255
 * and applies the spec's input normalization itself (manifest input.feed). A model with early exits becomes one graph
 * with nested `If` nodes (stop at the first exit whose entropy is below its threshold, judged on the whole batch: all
 * its samples must be confident) plus one file per stage, runnable separately: stage k takes the previous stage's
 * activation (`stage{k}_in`) and gives its own (`stage{k}_out`) and its exit's logits.
 */
export function exportOnnx(model: FrozenModel, training?: Manifest['training']): ExportResult {
  const folded = foldStaticMask(model);
  const frozen = folded ?? model;
  const { spec } = frozen;
  const shapes = inferShapes(spec);
  const exits = frozen.exits ?? [];
  const bounds = stageBounds(frozen);
  const layers: LayerManifest[] = [];
  const g = new GraphBuilder();
  const classes = spec.labels.length;
  const inputs = [valueInfo(INPUT_NAME, ['batch', ...modelInputDims(frozen)])];
  const outputs = [valueInfo(OUTPUT_NAME, ['batch', classes])];
  const normalized = emitInputNormalization(g, frozen, INPUT_NAME);
  const input = folded ? normalized : emitMaskScatter(g, frozen, normalized);
  if (exits.length === 0) {
    const h = emitLayers(g, frozen, shapes, 0, frozen.layers.length, input, layers);
    g.nodes.push(node('Identity', [h], [OUTPUT_NAME]));
  } else {
    const thresholds = exits.map((e) => e.threshold ?? NEVER_EXIT);
    // Baked in as a constant: onnxruntime's JavaScript API does not feed initializer-backed inputs. The staged
    // runtime (src/runtime/early-exit.ts) takes thresholds at run time instead.
    g.init(floatTensor(THRESHOLDS_NAME, [exits.length], thresholds));
    outputs.push(valueInfo(EXIT_INDEX_NAME, [], ONNX_TYPE.int64));
    emitStagedGraph(g, frozen, shapes, bounds, 0, input, layers);
  }
  const inputMask = manifestMask(frozen);
  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    cmpVersion: CMP_VERSION,
    arch: spec.arch,
    input: { ...spec.input, name: INPUT_NAME, layout: 'NCHW', feed: PIXEL_FEED },
    output: { name: OUTPUT_NAME },
    labels: spec.labels,
    spec,
    layers,
    ...(exits.length
      ? {
          exits: exits.map((e, i) => ({ name: e.name, after: e.after, threshold: e.threshold ?? null, stage: i + 1 })),
          stages: bounds.length,
        }
      : {}),
    ...(inputMask ? { inputMask } : {}),
    ...(training ? { training } : {}),
  };
  const bytes = encodeModel({
    name: `cmp-${spec.arch}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs,
    outputs,
    opset: EXPORT_OPSET,
    producerVersion: CMP_VERSION,
    metadata: { [MANIFEST_KEY]: JSON.stringify(manifest) },
  });
  const stages = exits.length
    ? bounds.map((_, k) => exportStage(frozen, shapes, bounds, k, manifest, folded !== undefined))
    : [];
  const selector = frozen.mask?.selector ? exportSelector(frozen, manifest) : undefined;
  return { bytes, manifest, stages, ...(selector ? { selector } : {}) };
}

/**
 * A static mask folded into the first layer when that layer is a dense one reading the flattened float input (an
 * MLP): it keeps only the weight rows of the kept features, so the file and the product shrink with the mask and the
 * compact input feeds it directly. Undefined when the model does not have that shape.
 */
function foldStaticMask(frozen: FrozenModel): FrozenModel | undefined {
  const features = frozen.mask?.features;
  const [flatten, first] = frozen.layers;
  if (!features || flatten?.kind !== 'flatten' || first?.kind !== 'dense' || first.inputs !== 'none') return undefined;
  const [inputs, outputs] = first.weightShape;
  const kept = features.length;
  let weights: FrozenWeightLayer['weights'];
  if (first.weights.kind === 'float') {
    const source = first.weights.data;
    const data = new Float32Array(kept * outputs);
    features.forEach((f, k) => data.set(source.subarray(f * outputs, (f + 1) * outputs), k * outputs));
    weights = { kind: 'float', data };
  } else if (first.weights.kind === 'int8') {
    // int8 rows are output units over the inputs: keep the kept inputs' integers of every row, scales unchanged.
    const { data: source, rows, rowLength } = first.weights;
    const data = new Int8Array(rows * kept);
    for (let r = 0; r < rows; r++) features.forEach((f, k) => (data[r * kept + k] = source[r * rowLength + f]));
    weights = { ...first.weights, data, rowLength: kept };
  } else {
    // Binary rows are output units over the inputs: keep the kept inputs' bits of every row, levels unchanged.
    const { packed, rows, rowLength } = first.weights;
    const bits = unpackBits(packed, rows, rowLength);
    const chosen = new Uint8Array(rows * kept);
    for (let r = 0; r < rows; r++) features.forEach((f, k) => (chosen[r * kept + k] = bits[r * inputs + f]));
    weights = { ...first.weights, packed: packBits(chosen, rows, kept), rowLength: kept };
  }
  const layers = [...frozen.layers];
  layers[1] = { ...first, weightShape: [kept, outputs], weights };
  return { ...frozen, layers };
}

/** The graph input's dims without the batch: the compact kept features of a static mask, else [C, H, W]. */
function modelInputDims(frozen: FrozenModel): number[] {
  const features = frozen.mask?.features;
  return features ? [features.length] : [...frozen.spec.input.shape];
}

/** What the manifest says of the input mask (absent without one). */
function manifestMask(frozen: FrozenModel): ManifestMask | undefined {
  const mask = frozen.mask;
  if (!mask) return undefined;
  const { spec } = mask;
  const shape = frozen.spec.input.shape;
  const layout = maskLayout(shape, spec.granularity);
  const valueBytes = MASK_VALUE_BYTES[spec.values];
  return {
    kind: spec.kind,
    granularity: granularityName(spec.granularity),
    values: spec.values,
    units: layout.units,
    maskId: maskId(spec, shape, mask.selector?.weight),
    ...(spec.kind === 'static'
      ? { kept: spec.kept, features: (mask.features as Int32Array).length }
      : {
          selectorPool: spec.selectorPool,
          ...(spec.prior ? { prior: spec.prior } : {}),
          ...(spec.rates ? { rates: spec.rates } : {}),
        }),
    fullInputBytes: layout.unitOf.length * valueBytes,
  };
}

/**
 * The input normalization in the graph, so that the file takes pixel / 255 as a sensor gives it (manifest input.feed):
 * (x - mean) / std as a Sub and a Div, the ops and order training uses (compress/network.ts normalize). Elementwise,
 * so it applies as well to a static mask's compact kept features, before they are scattered or reach the folded first
 * layer: unsent features stay 0 after normalization, as in training. No op when mean is 0 and std 1.
 */
function emitInputNormalization(g: GraphBuilder, frozen: FrozenModel, input: string): string {
  const { mean, std } = frozen.spec.input;
  if (mean === 0 && std === 1) return input;
  const centred = g.op('Sub', [input, g.constScalar(mean)], 'input.centred');
  return g.op('Div', [centred, g.constScalar(std)], 'input.normalized');
}

/**
 * A static mask's input side: the compact vector [N, K] of kept features becomes the full [N, C, H, W] input with
 * zeros elsewhere, by appending one zero column and gathering (each feature reads its compact slot, or the zero).
 * Without a static mask the input passes unchanged.
 */
function emitMaskScatter(g: GraphBuilder, frozen: FrozenModel, input: string): string {
  const features = frozen.mask?.features;
  if (!features) return input;
  const [c, h, w] = frozen.spec.input.shape;
  const index = new Int32Array(c * h * w).fill(features.length);
  features.forEach((f, i) => (index[f] = i));
  const first = g.op('Slice', [input, g.constInt64([0]), g.constInt64([1]), g.constInt64([1])], 'mask.first');
  const zero = g.op('Mul', [first, g.constScalar(0)], 'mask.zero');
  const padded = g.op('Concat', [input, zero], 'mask.padded', { axis: 1 });
  const slots = g.init(tensor('mask.slots', ONNX_TYPE.int32, [index.length], new Uint8Array(index.buffer)));
  const full = g.op('Gather', [padded, slots], 'mask.full', { axis: 1 });
  return g.op('Reshape', [full, g.constInt64([-1, c, h, w])], 'mask.input');
}

/** A dynamic mask's selector as its own model: AveragePool, Flatten, MatMul, Add -> `scores` [N, units]. */
function exportSelector(frozen: FrozenModel, whole: Manifest): Uint8Array {
  const mask = frozen.mask;
  if (mask?.spec.kind !== 'dynamic' || !mask.selector) throw new Error('exportSelector needs a dynamic mask');
  const g = new GraphBuilder();
  const pool = mask.spec.selectorPool;
  const units = mask.selector.bias.length;
  let h = emitInputNormalization(g, frozen, INPUT_NAME);
  if (pool > 1) h = g.op('AveragePool', [h], 'selector.pool', { kernel_shape: [pool, pool], strides: [pool, pool] });
  h = g.op('Flatten', [h], 'selector.flat', { axis: 1 });
  const weight = g.constFloat('selector.weight', [mask.selector.weight.length / units, units], mask.selector.weight);
  h = g.op('MatMul', [h, weight], 'selector.matmul');
  h = g.op('Add', [h, g.constFloat('selector.bias', [units], mask.selector.bias)], 'selector.scores');
  g.nodes.push(node('Identity', [h], [SCORES_NAME]));
  return encodeModel({
    name: `cmp-${frozen.spec.arch}-selector`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [valueInfo(INPUT_NAME, ['batch', ...frozen.spec.input.shape])],
    outputs: [valueInfo(SCORES_NAME, ['batch', units])],
    opset: EXPORT_OPSET,
    producerVersion: CMP_VERSION,
    metadata: { [MANIFEST_KEY]: JSON.stringify({ ...whole, output: { name: SCORES_NAME }, selector: true }) },
  });
}

/** [first, end) layer indices of each stage: a stage ends at the layer an exit reads; the last ends the network. */
function stageBounds(frozen: FrozenModel): [number, number][] {
  const ends = (frozen.exits ?? []).map((e) => frozen.layers.findIndex((l) => l.name === e.after) + 1);
  ends.push(frozen.layers.length);
  return ends.map((end, k) => [k === 0 ? 0 : ends[k - 1], end]);
}

/** Input name and dims [C, H, W] or [F] of stage k. */
function stageInput(
  frozen: FrozenModel,
  shapes: LayerShapes[],
  bounds: [number, number][],
  k: number,
): { name: string; dims: number[] } {
  if (k === 0) return { name: INPUT_NAME, dims: modelInputDims(frozen) };
  const shape = shapes[bounds[k][0]].inputShape;
  const flat = frozen.layers.slice(0, bounds[k][0]).some((l) => l.kind === 'flatten' || l.kind === 'dense');
  return { name: `stage${k + 1}_in`, dims: flat ? [shape[0] * shape[1] * shape[2]] : shape };
}

/** Stage k as its own model (see exportOnnx). */
function exportStage(
  frozen: FrozenModel,
  shapes: LayerShapes[],
  bounds: [number, number][],
  k: number,
  whole: Manifest,
  folded: boolean,
): Uint8Array {
  const g = new GraphBuilder();
  const input = stageInput(frozen, shapes, bounds, k);
  const classes = frozen.spec.labels.length;
  // Only stage 1 takes the pixels; later stages take the previous stage's activation.
  const normalized = k === 0 ? emitInputNormalization(g, frozen, input.name) : input.name;
  const first = k === 0 && !folded ? emitMaskScatter(g, frozen, normalized) : normalized;
  const h = emitLayers(g, frozen, shapes, bounds[k][0], bounds[k][1], first, []);
  const last = k === bounds.length - 1;
  const outputs = [];
  if (last) {
    g.nodes.push(node('Identity', [h], [OUTPUT_NAME]));
    outputs.push(valueInfo(OUTPUT_NAME, ['batch', classes]));
  } else {
    const next = stageInput(frozen, shapes, bounds, k + 1);
    g.nodes.push(node('Identity', [h], [`stage${k + 1}_out`]));
    const exit = (frozen.exits ?? [])[k];
    g.nodes.push(node('Identity', [emitExitHead(g, exit, h)], [`${exit.name}_logits`]));
    outputs.push(
      valueInfo(`stage${k + 1}_out`, ['batch', ...next.dims]),
      valueInfo(`${exit.name}_logits`, ['batch', classes]),
    );
  }
  const manifest = {
    ...whole,
    stage: { index: k + 1, of: bounds.length, input: input.name, outputs: outputs.map((o) => o.name) },
  };
  return encodeModel({
    name: `cmp-${frozen.spec.arch}-stage${k + 1}`,
    nodes: g.nodes,
    initializers: g.initializers,
    inputs: [valueInfo(input.name, ['batch', ...input.dims])],
    outputs,
    opset: EXPORT_OPSET,
    producerVersion: CMP_VERSION,
    metadata: { [MANIFEST_KEY]: JSON.stringify(manifest) },
  });
}

/**
 * Stage k and everything after it into `g`, writing `logits` and `exit_index`: stage k's layers, then (unless last)
 * its exit's entropy check and an If whose then-branch returns the exit's logits and whose else-branch holds the
 * following stages.
 */
function emitStagedGraph(
  g: GraphBuilder,
  frozen: FrozenModel,
  shapes: LayerShapes[],
  bounds: [number, number][],
  k: number,
  input: string,
  layers: LayerManifest[],
): void {
  const h = emitLayers(g, frozen, shapes, bounds[k][0], bounds[k][1], input, layers);
  const suffix = k === 0 ? '' : `.s${k + 1}`;
  if (k === bounds.length - 1) {
    g.nodes.push(node('Identity', [h], [`${OUTPUT_NAME}${suffix}`]));
    g.nodes.push(node('Constant', [], [`${EXIT_INDEX_NAME}${suffix}`], {}));
    (g.nodes[g.nodes.length - 1].attribute ??= []).push(int64Attribute('value', 0));
    return;
  }
  const exit = (frozen.exits ?? [])[k];
  const logits = emitExitHead(g, exit, h);
  const p = `${exit.name}.check`;
  const probabilities = g.op('Softmax', [logits], `${p}.p`, { axis: 1 });
  const logProbabilities = g.op('LogSoftmax', [logits], `${p}.logp`, { axis: 1 });
  const plogp = g.op(
    'ReduceSum',
    [g.op('Mul', [probabilities, logProbabilities], `${p}.plogp`), g.constInt64([1])],
    `${p}.sum`,
    {
      keepdims: 0,
    },
  );
  const entropy = g.op('Neg', [plogp], `${p}.entropy`);
  const worst = g.op('ReduceMax', [entropy], `${p}.worst`, { keepdims: 0 });
  const threshold = g.op('Gather', [THRESHOLDS_NAME, g.constScalarInt64(k)], `${p}.threshold`, { axis: 0 });
  const confident = g.op('Less', [worst, threshold], `${p}.confident`);
  const then = g.child();
  then.nodes.push(node('Identity', [logits], [`${OUTPUT_NAME}.exit${k + 1}`]));
  then.nodes.push(node('Constant', [], [`${EXIT_INDEX_NAME}.exit${k + 1}`]));
  (then.nodes[then.nodes.length - 1].attribute ??= []).push(int64Attribute('value', k + 1));
  const otherwise = g.child();
  emitStagedGraph(otherwise, frozen, shapes, bounds, k + 1, h, layers);
  const classes = frozen.spec.labels.length;
  const branch = (b: GraphBuilder, name: string, tag: string): OnnxSubgraph => ({
    name,
    node: b.nodes,
    output: [
      valueInfo(`${OUTPUT_NAME}${tag}`, ['batch', classes]),
      valueInfo(`${EXIT_INDEX_NAME}${tag}`, [], ONNX_TYPE.int64),
    ],
  });
  g.nodes.push(
    node('If', [confident], [`${OUTPUT_NAME}${suffix}`, `${EXIT_INDEX_NAME}${suffix}`], {
      then_branch: branch(then, `${exit.name}.taken`, `.exit${k + 1}`),
      else_branch: branch(otherwise, `${exit.name}.passed`, `.s${k + 2}`),
    }),
  );
}

/** An exit head: Flatten, MatMul, Add; returns its logits' name. */
function emitExitHead(g: GraphBuilder, exit: FrozenExit, h: string): string {
  const classes = exit.bias.length;
  const weight = g.constFloat(`${exit.name}.weight`, [exit.weight.length / classes, classes], exit.weight);
  const bias = g.constFloat(`${exit.name}.bias`, [classes], exit.bias);
  const flat = g.op('Flatten', [h], `${exit.name}.flat`, { axis: 1 });
  return g.op('Add', [g.op('MatMul', [flat, weight], `${exit.name}.matmul`), bias], `${exit.name}.logits`);
}

/** Layers [from, to) of the network as graph ops reading `input`; weight layers are recorded in `layers`. */
function emitLayers(
  g: GraphBuilder,
  frozen: FrozenModel,
  shapes: LayerShapes[],
  from: number,
  to: number,
  input: string,
  layers: LayerManifest[],
): string {
  let h = input;
  for (let i = from; i < to; i++) {
    const layer = frozen.layers[i];
    if (layer.kind === 'flatten') h = g.op('Flatten', [h], layer.name, { axis: 1 });
    else if (layer.kind === 'maxpool' || layer.kind === 'avgpool') {
      h = g.op(layer.kind === 'maxpool' ? 'MaxPool' : 'AveragePool', [h], layer.name, {
        kernel_shape: [layer.size, layer.size],
        strides: [layer.size, layer.size],
      });
    } else {
      const binarized = binarizeInputs(g, h, layer, featureCount(shapes[i].inputShape));
      const { weight, manifest } = weights(g, layer);
      layers.push(manifest);
      h =
        layer.kind === 'dense'
          ? g.op('MatMul', [binarized, weight], `${layer.name}.matmul`)
          : g.op('Conv', [binarized, weight], `${layer.name}.conv`, {
              kernel_shape: layer.weightShape.slice(2),
              ...(layer.padding ? { pads: [layer.padding, layer.padding, layer.padding, layer.padding] } : {}),
            });
      const channelShape = layer.kind === 'dense' ? [layer.scale.length] : [layer.scale.length, 1, 1];
      if (layer.scale.some((v) => v !== 1)) {
        const scale = g.constFloat(`${layer.name}.scale`, channelShape, layer.scale);
        manifest.initializers.scale = scale;
        h = g.op('Mul', [h, scale], `${layer.name}.scaled`);
      }
      const shift = g.constFloat(`${layer.name}.shift`, channelShape, layer.shift);
      manifest.initializers.shift = shift;
      h = g.op('Add', [h, shift], `${layer.name}.shifted`);
      if (layer.activation === 'relu') h = g.op('Relu', [h], `${layer.name}.relu`);
    }
  }
  return h;
}

function featureCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Collects nodes and initializers; every op gets a unique output name derived from `name`. A child builder (an If
 * branch) has its own nodes but puts initializers and constants in the root graph, which branches may read.
 */
class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[];
  private readonly constants: Map<string, string>;

  constructor(parent?: GraphBuilder) {
    this.initializers = parent ? parent.initializers : [];
    this.constants = parent ? parent.constants : new Map<string, string>();
  }

  child(): GraphBuilder {
    return new GraphBuilder(this);
  }

  /** A shared scalar int64 constant (Gather indices). */
  constScalarInt64(value: number): string {
    const key = `i64s:${value}`;
    let name = this.constants.get(key);
    if (!name) {
      name = `const.i64s.${value}`;
      this.init(int64Tensor(name, [], [value]));
      this.constants.set(key, name);
    }
    return name;
  }

  op(opType: string, inputs: string[], name: string, attributes: Record<string, AttributeValue> = {}): string {
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
  if (layer.weights.kind === 'int8') return int8Weights(g, layer, layer.weights, base);
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

/**
 * int8 weights as standard ONNX: an int8 initializer in the op's own layout (MatMul [in, out], Conv OIHW) and one
 * float32 scale per output channel, dequantized by DequantizeLinear along the output axis (1 for MatMul, 0 for Conv),
 * zero point 0 (absent). Stock onnxruntime (node and web) runs it as is.
 */
function int8Weights(
  g: GraphBuilder,
  layer: FrozenWeightLayer,
  q: Int8Weights,
  base: Omit<LayerManifest, 'weights' | 'weightBytes' | 'bitsPerWeight' | 'initializers'>,
): { weight: string; manifest: LayerManifest } {
  const { rows, rowLength, data, scales } = q;
  let stored = data;
  if (layer.kind === 'dense') {
    stored = new Int8Array(data.length);
    for (let r = 0; r < rows; r++) for (let k = 0; k < rowLength; k++) stored[k * rows + r] = data[r * rowLength + k];
  }
  const values = g.init(
    tensor(
      `${layer.name}.weight_int8`,
      ONNX_TYPE.int8,
      layer.weightShape,
      new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength),
    ),
  );
  const scale = g.init(floatTensor(`${layer.name}.weight_scale`, [rows], scales));
  const weight = g.op('DequantizeLinear', [values, scale], `${layer.name}.weight`, {
    axis: layer.kind === 'dense' ? 1 : 0,
  });
  const weightBytes = data.length + 4 * rows;
  return {
    weight,
    manifest: {
      ...base,
      weights: 'int8',
      weightBytes,
      bitsPerWeight: (weightBytes * 8) / base.weightCount,
      initializers: { weightInt8: values, weightScale: scale },
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
