// The model spec: a small JSON description of a cmp network that training, export and later passes extend.

import * as v from 'valibot';
import { CmpError } from '../errors.js';
import { checkMaskSpec, maskLayout, MASK_SPEC_SCHEMA, selectorFeatures } from './mask.js';
import { checkDocument } from './schema.js';

/** How a tensor is binarized: `dab` fits two levels to the distribution, `xnor` uses +/-alpha, `none` keeps float. */
export type BinarizeMode = 'none' | 'xnor' | 'dab';
export const BINARIZE_MODES: readonly BinarizeMode[] = Object.freeze(['none', 'xnor', 'dab']);

/**
 * How a layer's weights are stored and computed: float32 (`none`), one of the two-level binarizations, or `int8`,
 * symmetric per output channel (w = q * scale, q in -127..127; see core/quantize.ts).
 */
export type WeightMode = BinarizeMode | 'int8';
export const WEIGHT_MODES: readonly WeightMode[] = Object.freeze(['none', 'xnor', 'dab', 'int8']);

/** Whether weights in `mode` are binary (1 bit each plus two levels per row). */
export function isBinaryMode(mode: WeightMode): mode is Exclude<BinarizeMode, 'none'> {
  return mode === 'xnor' || mode === 'dab';
}

/** A whole number >= 1 (units, filters, kernel and pool sizes). */
const POSITIVE = v.pipe(v.number(), v.safeInteger(), v.minValue(1));

export const ACTIVATION_SCHEMA = v.picklist(['relu', 'none']);
export type Activation = v.InferOutput<typeof ACTIVATION_SCHEMA>;

/** What a weight layer compresses: its weights (binarized or int8), and its input activations (binarized). */
const LAYER_BINARIZE_SCHEMA = v.object({
  weights: v.picklist(['none', 'xnor', 'dab', 'int8']),
  inputs: v.picklist(['none', 'xnor', 'dab']),
});
export type LayerBinarize = v.InferOutput<typeof LAYER_BINARIZE_SCHEMA>;

/** A fully connected layer. Followed by batch normalization when `batchNorm`, then `activation`. */
const DENSE_SCHEMA = v.object({
  kind: v.literal('dense'),
  name: v.string(),
  units: POSITIVE,
  batchNorm: v.boolean(),
  activation: ACTIVATION_SCHEMA,
  binarize: LAYER_BINARIZE_SCHEMA,
});
export type DenseSpec = v.InferOutput<typeof DENSE_SCHEMA>;

/**
 * A 2-D convolution, square kernel, stride 1, NCHW; no padding ('valid') unless `padding` says otherwise: zeros added
 * on every side of the input (after its binarization), 0 to kernel - 1.
 */
const CONV_SCHEMA = v.object({
  kind: v.literal('conv'),
  name: v.string(),
  filters: POSITIVE,
  kernel: POSITIVE,
  padding: v.optional(v.pipe(v.number(), v.safeInteger(), v.minValue(0))),
  batchNorm: v.boolean(),
  activation: ACTIVATION_SCHEMA,
  binarize: LAYER_BINARIZE_SCHEMA,
});
export type ConvSpec = v.InferOutput<typeof CONV_SCHEMA>;

/** Max pooling with a square window and the same stride. */
const MAXPOOL_SCHEMA = v.object({ kind: v.literal('maxpool'), name: v.string(), size: POSITIVE });
export type MaxPoolSpec = v.InferOutput<typeof MAXPOOL_SCHEMA>;

/** Average pooling with a square window and the same stride (imported models; cmp's own architectures use max). */
const AVGPOOL_SCHEMA = v.object({ kind: v.literal('avgpool'), name: v.string(), size: POSITIVE });
export type AvgPoolSpec = v.InferOutput<typeof AVGPOOL_SCHEMA>;

/** Flattens [C, H, W] to [C*H*W] in C-major order (as ONNX Flatten on NCHW). */
const FLATTEN_SCHEMA = v.object({ kind: v.literal('flatten'), name: v.string() });
export type FlattenSpec = v.InferOutput<typeof FLATTEN_SCHEMA>;

export const LAYER_SPEC_SCHEMA = v.variant('kind', [
  DENSE_SCHEMA,
  CONV_SCHEMA,
  MAXPOOL_SCHEMA,
  AVGPOOL_SCHEMA,
  FLATTEN_SCHEMA,
]);
export type LayerSpec = v.InferOutput<typeof LAYER_SPEC_SCHEMA>;
export type WeightLayerSpec = DenseSpec | ConvSpec;

/**
 * The network input: `shape` is [channels, height, width]; values fed to the network are `(pixel/255 - mean) / std`
 * per the manifest (cmp's own models use mean 0, std 1: inputs in [0, 1]).
 */
export const INPUT_SPEC_SCHEMA = v.object({
  shape: v.tuple([POSITIVE, POSITIVE, POSITIVE]),
  mean: v.number(),
  std: v.pipe(v.number(), v.gtValue(0)),
});
export type InputSpec = v.InferOutput<typeof INPUT_SPEC_SCHEMA>;

/**
 * An early exit: a float classifier head (flatten, dense) reading the output of layer `after`. At inference the
 * model stops at the first exit whose softmax entropy is below its `threshold` (nats; set by cmp calibrate).
 * `lossWeight` weighs this head's loss in joint training (the final classifier weighs 1).
 */
const EXIT_SPEC_SCHEMA = v.object({
  name: v.string(),
  after: v.string(),
  lossWeight: v.number(),
  threshold: v.optional(v.number()),
});
export type ExitSpec = v.InferOutput<typeof EXIT_SPEC_SCHEMA>;

/** The model spec format's name and version. */
export const MODEL_FORMAT = 'cmp-model/1';

/**
 * A cmp network (cmp-model/1). `format` is versioned so later readers can refuse what they do not know; `exits` are
 * in network order (absent: none); `inputMask` is the input selection (absent: the whole input is sent).
 */
export const MODEL_SPEC_SCHEMA = v.object({
  format: v.literal(MODEL_FORMAT),
  arch: v.string(),
  input: INPUT_SPEC_SCHEMA,
  labels: v.array(v.string()),
  layers: v.array(LAYER_SPEC_SCHEMA),
  exits: v.optional(v.array(EXIT_SPEC_SCHEMA)),
  inputMask: v.optional(MASK_SPEC_SCHEMA),
});
export type ModelSpec = v.InferOutput<typeof MODEL_SPEC_SCHEMA>;

export function isWeightLayer(layer: LayerSpec): layer is WeightLayerSpec {
  return layer.kind === 'dense' || layer.kind === 'conv';
}

/** Shape [C, H, W] (dense outputs are [units, 1, 1]) after every layer, and the weight shape of each weight layer. */
export interface LayerShapes {
  inputShape: [number, number, number];
  outputShape: [number, number, number];
  /** Dense: [in, out]; conv: [out, in, k, k] (OIHW). Empty for layers without weights. */
  weightShape: number[];
  /** Number of weights (without levels, batch norm or bias). */
  weightCount: number;
  /** Length of one binary row in the bit format: inputs per output unit / filter. */
  rowLength: number;
}

/** Infers every layer's shapes, and checks the spec is consistent (one line per problem, thrown as MODEL_INVALID). */
export function inferShapes(spec: ModelSpec): LayerShapes[] {
  let shape: [number, number, number] = [...spec.input.shape];
  let flat = false;
  const out: LayerShapes[] = [];
  for (const layer of spec.layers) {
    const inputShape: [number, number, number] = [...shape];
    let weightShape: number[] = [];
    let rowLength = 0;
    switch (layer.kind) {
      case 'dense': {
        const features = shape[0] * shape[1] * shape[2];
        if (!flat && (shape[1] !== 1 || shape[2] !== 1)) flat = true;
        weightShape = [features, layer.units];
        rowLength = features;
        shape = [layer.units, 1, 1];
        break;
      }
      case 'conv': {
        if (flat || shape[1] === 1) throw invalid(`layer "${layer.name}" is a conv after a flatten or dense layer`);
        const pad = layer.padding ?? 0;
        if (!Number.isInteger(pad) || pad < 0 || pad >= layer.kernel)
          throw invalid(`layer "${layer.name}" pads by ${pad}, not 0 to ${layer.kernel - 1}`);
        const [c, h, w] = shape;
        if (h + 2 * pad < layer.kernel || w + 2 * pad < layer.kernel)
          throw invalid(`layer "${layer.name}" kernel is larger than its input`);
        weightShape = [layer.filters, c, layer.kernel, layer.kernel];
        rowLength = c * layer.kernel * layer.kernel;
        shape = [layer.filters, h + 2 * pad - layer.kernel + 1, w + 2 * pad - layer.kernel + 1];
        break;
      }
      case 'maxpool':
      case 'avgpool': {
        const [c, h, w] = shape;
        if (h < layer.size || w < layer.size)
          throw invalid(`layer "${layer.name}" pools a ${h}x${w} input by ${layer.size}`);
        shape = [c, Math.floor(h / layer.size), Math.floor(w / layer.size)];
        break;
      }
      case 'flatten':
        shape = [shape[0] * shape[1] * shape[2], 1, 1];
        flat = true;
        break;
    }
    const weightCount = weightShape.reduce((a, b) => a * b, weightShape.length ? 1 : 0);
    out.push({ inputShape, outputShape: [...shape], weightShape, weightCount, rowLength });
  }
  const last = spec.layers[spec.layers.length - 1];
  if (!last || !isWeightLayer(last) || last.kind !== 'dense') throw invalid('the last layer must be dense');
  let previous = -1;
  for (const exit of spec.exits ?? []) {
    const at = spec.layers.findIndex((l) => l.name === exit.after);
    if (at < 0 || at >= spec.layers.length - 1)
      throw invalid(`exit "${exit.name}" reads layer "${exit.after}", not an inner layer`);
    if (at <= previous) throw invalid(`exit "${exit.name}" is out of network order`);
    previous = at;
  }
  if (last.units !== spec.labels.length) {
    throw invalid(`the last layer has ${last.units} units but there are ${spec.labels.length} labels`);
  }
  if (spec.inputMask) checkMaskSpec(spec.inputMask, spec.input.shape);
  return out;
}

/** The shape of every tensor a spec's run holds, by name (weights, bias or batch-norm vectors). */
export function tensorShapes(spec: ModelSpec): Map<string, number[]> {
  const shapes = inferShapes(spec);
  const out = new Map<string, number[]>();
  spec.layers.forEach((layer, i) => {
    if (!isWeightLayer(layer)) return;
    const units = layer.kind === 'dense' ? layer.units : layer.filters;
    out.set(`${layer.name}.weight`, shapes[i].weightShape);
    const vectors = layer.batchNorm ? ['bn.gamma', 'bn.beta', 'bn.mean', 'bn.variance'] : ['bias'];
    for (const v of vectors) out.set(`${layer.name}.${v}`, [units]);
  });
  for (const exit of spec.exits ?? []) {
    out.set(`${exit.name}.weight`, [exitFeatures(spec, exit), spec.labels.length]);
    out.set(`${exit.name}.bias`, [spec.labels.length]);
  }
  const mask = spec.inputMask;
  if (mask) {
    const units = maskLayout(spec.input.shape, mask.granularity).units;
    if (mask.kind === 'static' && mask.source === 'learned') out.set(MASK_LOGITS, [units]);
    if (mask.kind === 'dynamic') {
      out.set(SELECTOR_WEIGHT, [selectorFeatures(spec.input.shape, mask.selectorPool), units]);
      out.set(SELECTOR_BIAS, [units]);
    }
  }
  return out;
}

/** Tensor of a learned static mask's unit logits (a unit is kept while its logit is positive). */
export const MASK_LOGITS = 'mask.logits';
/** Tensors of a dynamic mask's linear selector. */
export const SELECTOR_WEIGHT = 'selector.weight';
export const SELECTOR_BIAS = 'selector.bias';

/** Features an exit head reads: the flattened output of its layer. */
export function exitFeatures(spec: ModelSpec, exit: ExitSpec): number {
  const shapes = inferShapes(spec);
  const at = spec.layers.findIndex((l) => l.name === exit.after);
  return shapes[at].outputShape.reduce((a, b) => a * b, 1);
}

function invalid(problem: string): CmpError {
  return new CmpError('MODEL_INVALID', `Invalid model spec: ${problem}. Fix the spec or retrain with cmp train.`);
}

/** What a network binarizes: one mode for weights and one for inputs, except in the layers kept float. */
export interface BinarizeOptions {
  binarizeWeights: BinarizeMode;
  binarizeInputs: BinarizeMode;
  /** Weight layers (by 'first', 'last' or 0-based index among weight layers) whose weights stay float. */
  keepFloatWeights: string[];
  /** Weight layers whose weights are int8 instead (also 'all'); they win over binarizeWeights and keepFloatWeights. */
  int8Weights?: string[];
  /** Weight layers whose inputs stay float. */
  keepFloatInputs: string[];
}

/** Options shared by the architectures cmp can build. */
export interface ArchOptions extends BinarizeOptions {
  inputShape: [number, number, number];
  labels: string[];
  /** Hidden widths of the dense layers (before the output layer). */
  widths?: number[];
  /** Conv filters per stage (lenet and b-lenet only). */
  filters?: number[];
  /** Early exits after these hidden weight layers (1-based, before the classifier); see exitsAfter. */
  exits?: number[];
}

export const ARCHS: readonly string[] = Object.freeze(['mlp', 'lenet', 'b-lenet']);
export const DEFAULT_MLP_WIDTHS: readonly number[] = Object.freeze([512, 512]);
export const DEFAULT_LENET_FILTERS: readonly number[] = Object.freeze([16, 32]);
export const DEFAULT_LENET_WIDTHS: readonly number[] = Object.freeze([256]);
/**
 * B-LeNet's main network (BranchyNet, `kunglab/branchynet` networks/lenet_mnist.py): three 5x5 convs with 5, 10 and
 * 20 filters, each padded by 3 and followed by a 2x2 max pool, then 84 hidden units. Stage 1 (conv1, pool1) is cheap
 * and the stages after it cost several times more, which is what an exit after block 1 needs to pay off.
 */
export const B_LENET_FILTERS: readonly number[] = Object.freeze([5, 10, 20]);
export const B_LENET_WIDTHS: readonly number[] = Object.freeze([84]);
export const B_LENET_PADDING = 3;

/** Builds the spec of a named architecture. */
export function buildSpec(arch: string, options: ArchOptions): ModelSpec {
  const hidden = (i: number, units: number): DenseSpec => ({
    kind: 'dense',
    name: `fc${i}`,
    units,
    batchNorm: true,
    activation: 'relu',
    binarize: { weights: 'none', inputs: 'none' },
  });
  const layers: LayerSpec[] = [];
  if (arch === 'mlp') {
    layers.push({ kind: 'flatten', name: 'flatten' });
    (options.widths ?? DEFAULT_MLP_WIDTHS).forEach((units, i) => layers.push(hidden(i + 1, units)));
  } else if (arch === 'lenet' || arch === 'b-lenet') {
    const branchy = arch === 'b-lenet';
    (options.filters ?? (branchy ? B_LENET_FILTERS : DEFAULT_LENET_FILTERS)).forEach((filters, i) => {
      layers.push({
        kind: 'conv',
        name: `conv${i + 1}`,
        filters,
        kernel: 5,
        ...(branchy ? { padding: B_LENET_PADDING } : {}),
        batchNorm: true,
        activation: 'relu',
        binarize: { weights: 'none', inputs: 'none' },
      });
      layers.push({ kind: 'maxpool', name: `pool${i + 1}`, size: 2 });
    });
    layers.push({ kind: 'flatten', name: 'flatten' });
    (options.widths ?? (branchy ? B_LENET_WIDTHS : DEFAULT_LENET_WIDTHS)).forEach((units, i) =>
      layers.push(hidden(i + 1, units)),
    );
  } else {
    throw new CmpError('BAD_ARGUMENT', `Unknown architecture "${arch}". Use one of: ${ARCHS.join(', ')}.`);
  }
  layers.push({
    kind: 'dense',
    name: 'logits',
    units: options.labels.length,
    batchNorm: false,
    activation: 'none',
    binarize: { weights: 'none', inputs: 'none' },
  });
  binarizeLayers(layers, options);
  // A layer whose successor binarizes its input ends at batch norm: the binarization is the non-linearity (BNN
  // style); a ReLU before it would leave XNOR nothing but ones.
  const weightLayers = layers.filter(isWeightLayer);
  weightLayers.forEach((layer, i) => {
    const next = weightLayers[i + 1];
    if (next && next.binarize.inputs !== 'none') layer.activation = 'none';
  });
  const spec: ModelSpec = {
    format: 'cmp-model/1',
    arch,
    input: { shape: options.inputShape, mean: 0, std: 1 },
    labels: options.labels,
    layers,
    ...(options.exits?.length ? { exits: exitsAfter(layers, options.exits) } : {}),
  };
  inferShapes(spec);
  return spec;
}

/**
 * Exit heads after the given hidden weight layers (1-based). A head reads the end of that layer's block: the layer
 * itself, or the pooling layer right after it.
 */
export function exitsAfter(layers: LayerSpec[], positions: number[]): ExitSpec[] {
  const hidden = layers.filter(isWeightLayer).slice(0, -1);
  return [...new Set(positions)]
    .sort((a, b) => a - b)
    .map((position, i) => {
      const layer = hidden[position - 1];
      if (!layer) {
        throw new CmpError(
          'BAD_ARGUMENT',
          `No hidden layer ${position} for an exit: the network has ${hidden.length}. Use --exits 1..${hidden.length}.`,
        );
      }
      const at = layers.indexOf(layer);
      const next = layers[at + 1];
      const after = next?.kind === 'maxpool' || next?.kind === 'avgpool' ? next.name : layer.name;
      return { name: `exit${i + 1}`, after, lossWeight: 1 };
    });
}

/** Sets the binarization of every weight layer of `layers` (in place) per `options`. */
export function binarizeLayers(layers: LayerSpec[], options: BinarizeOptions): void {
  const weightLayers = layers.filter(isWeightLayer);
  weightLayers.forEach((layer, index) => {
    const keepWeights = matchesLayer(options.keepFloatWeights, index, weightLayers.length);
    const keepInputs = matchesLayer(options.keepFloatInputs, index, weightLayers.length);
    const int8 = matchesLayer(options.int8Weights ?? [], index, weightLayers.length);
    layer.binarize = {
      weights: int8 ? 'int8' : keepWeights ? 'none' : options.binarizeWeights,
      inputs: keepInputs ? 'none' : options.binarizeInputs,
    };
  });
}

/**
 * A copy of `spec` with the weights (when `binarizeWeights` is given) or inputs (when `binarizeInputs` is) of its
 * weight layers binarized per `options`, and the weights of the `int8Weights` layers int8, everything else kept: how a trained or imported network is fine-tuned
 * compressed. Activations stay as they are (buildSpec ends a layer at batch norm before binarized inputs): the trained
 * weights expect them.
 */
export function withBinarization(
  spec: ModelSpec,
  options: Partial<Pick<BinarizeOptions, 'binarizeWeights' | 'binarizeInputs' | 'int8Weights'>> &
    Pick<BinarizeOptions, 'keepFloatWeights' | 'keepFloatInputs'>,
): ModelSpec {
  const count = spec.layers.filter(isWeightLayer).length;
  let index = 0;
  const layers = spec.layers.map((l): LayerSpec => {
    if (!isWeightLayer(l)) return { ...l };
    const mode = <M extends WeightMode>(chosen: M | undefined, current: M, keepFloat: string[]): M | 'none' =>
      chosen === undefined ? current : matchesLayer(keepFloat, index, count) ? 'none' : chosen;
    const int8 = matchesLayer(options.int8Weights ?? [], index, count);
    const binarize: LayerBinarize = {
      weights: int8 ? 'int8' : mode(options.binarizeWeights, l.binarize.weights, options.keepFloatWeights),
      inputs: mode(options.binarizeInputs, l.binarize.inputs, options.keepFloatInputs),
    };
    index++;
    return { ...l, binarize };
  });
  return { ...spec, layers };
}

function matchesLayer(selectors: string[], index: number, count: number): boolean {
  return selectors.some(
    (s) =>
      s === 'all' || (s === 'first' && index === 0) || (s === 'last' && index === count - 1) || s === String(index),
  );
}

/** Checks a parsed JSON value is a whole ModelSpec this version understands, and that its layers fit together. */
export function parseSpec(value: unknown, source: string): ModelSpec {
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `Invalid model spec in ${source}: it has ${problem}. Retrain with cmp train.`);
  const spec = checkDocument(MODEL_SPEC_SCHEMA, value, bad);
  inferShapes(spec);
  return spec;
}

/**
 * DAB activation binarization fits its two levels per sample by Lloyd steps (threshold = midpoint of the two level
 * means) starting from the sample mean, instead of the sorted exhaustive search used for weights: it needs no sort
 * on the device, costs O(n) per step, and its result does not hinge on float rounding. With a sorted search the
 * reconstruction error is flat near its optimum, so runtimes that sum in a different order pick a split one value
 * apart and disagree on a bit; a midpoint threshold only moves values within rounding error of it.
 */
export const ACTIVATION_LLOYD_STEPS = 3;

/** Batch-normalization epsilon used in training and folded into exported scales. */
export const BN_EPSILON = 1e-3;
