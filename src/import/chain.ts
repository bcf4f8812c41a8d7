// Building a cmp network from a single-path model, one source op at a time: what the ONNX and TF.js importers share.

import { CmpError } from '../errors.js';
import { inferShapes, type LayerSpec, type ModelSpec, type WeightLayerSpec } from '../core/spec.js';

/** Where an op came from, for messages and the import record: its op type and its node (or layer) name. */
export interface SourceOp {
  op: string;
  node: string;
}

/** An imported network: a cmp spec, its tensors (run-folder names and layouts) and the source of each layer. */
export interface ImportedNetwork {
  spec: ModelSpec;
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  /** The source nodes (or layers) each cmp layer was built from, in order. */
  sources: Record<string, string[]>;
  /** Source ops left out on purpose, one line each saying why (a final Softmax). */
  notes: string[];
  /** The source's outputs are these of cmp's logits (absent: the logits themselves). */
  outputOf?: 'softmax' | 'logSoftmax';
}

/**
 * A constant tensor of a source graph: dims and values (row-major, any element type as numbers). In shapes computed
 * from an activation, NaN stands for the batch size, which is only known at run time.
 */
export interface Constant {
  dims: number[];
  values: Float64Array;
}

/** The batch dim of a shape computed by Shape on an activation. */
export const BATCH = Number.NaN;

/** A scalar or 1-D constant of the given numbers. */
export function vector(values: number[], dims: number[] = [values.length]): Constant {
  return { dims, values: Float64Array.from(values) };
}

/** The network input as cmp sees it. */
export interface ChainInput {
  /** [C, H, W]; a flat source input of F features is [F, 1, 1] unless the user gave a shape. */
  shape: [number, number, number];
  /** The source model takes a flat vector: the chain starts with a flatten. */
  flat: boolean;
  /** What the source model expects from pixels x in [0, 1]: (x - mean) / std. */
  mean: number;
  std: number;
}

/**
 * The order a source model lays activations out in. NCHW (ONNX) flattens like cmp; NHWC (TF.js) flattens channel
 * last, so the dense layer after such a flatten gets its rows reordered to cmp's channel-major order.
 */
export type Layout = 'nchw' | 'nhwc';

interface WeightState {
  layer: WeightLayerSpec;
  /** Dense [in, out]; conv OIHW. */
  weight: Float32Array;
  bias: Float32Array;
}

/**
 * Appends cmp layers as the source model's ops come: convolutions and dense layers start layers; bias, batch norm and
 * other per-channel affine ops fold into the layer before them; ReLU becomes that layer's activation (also across a
 * max pool or flatten, which commute with it). `version` counts the activations made, so an importer can tell an op
 * reading an earlier activation (a branch, which a cmp network cannot hold) from one reading the latest.
 */
export class ChainBuilder {
  private readonly layers: LayerSpec[] = [];
  private readonly tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  private readonly sources = new Map<string, string[]>();
  private readonly notes: string[] = [];
  private readonly counts = new Map<string, number>();
  private last: WeightState | undefined;
  /** Kinds of the layers appended since the last weight layer. */
  private tail: LayerSpec['kind'][] = [];
  /** Set by an NHWC flatten of [C, H, W]: the next dense layer's rows are in (h, w, c) order. */
  private nhwcRows: [number, number, number] | undefined;
  private ended: SourceOp | undefined;
  private outputOf: ImportedNetwork['outputOf'];
  private mean: number;
  private std: number;
  private readonly inputShape: [number, number, number];
  shape: [number, number, number];
  flat: boolean;
  version = 0;

  /**
   * @param source the model's path, for messages.
   * @param options.unit what the source calls an op ('node' in graphs, 'layer' in layers models).
   * @param options.fix what a message about an op the chain cannot take tells the user to do.
   */
  constructor(
    private readonly source: string,
    input: ChainInput,
    private readonly options: { layout: Layout; unit: string; fix: string },
  ) {
    this.inputShape = [...input.shape];
    this.shape = [...input.shape];
    this.flat = false;
    this.mean = input.mean;
    this.std = input.std;
    if (input.flat) this.flatten({ op: 'input', node: '(flat input)' });
    this.version = 0;
  }

  /** Throws the one-line error of an op the chain cannot take. */
  fail(at: SourceOp, problem: string): never {
    const { unit, fix } = this.options;
    throw new CmpError('MODEL_INVALID', `${this.source}: ${at.op} ${unit} "${at.node}" ${problem}. ${fix}`);
  }

  /** A convolution: `weight` OIHW [filters, C, k, k], stride 1, `padding` zeros on every side. */
  conv(
    at: SourceOp,
    weight: Float32Array,
    filters: number,
    kernel: number,
    padding: number,
    bias?: Float32Array,
  ): void {
    this.open(at);
    if (this.flat) this.fail(at, 'convolves a flat activation; cmp convolves [C, H, W] activations only');
    const [c, h, w] = this.shape;
    if (weight.length !== filters * c * kernel * kernel)
      this.fail(
        at,
        `has weights for ${weight.length / (filters * kernel * kernel)} input channels, its input has ${c}`,
      );
    if (padding >= kernel || h + 2 * padding < kernel || w + 2 * padding < kernel)
      this.fail(at, `has a ${kernel}x${kernel} kernel and padding ${padding} for a ${h}x${w} input`);
    const name = this.nameFor('conv');
    const layer: WeightLayerSpec = {
      kind: 'conv',
      name,
      filters,
      kernel,
      ...(padding ? { padding } : {}),
      batchNorm: false,
      activation: 'none',
      binarize: { weights: 'none', inputs: 'none' },
    };
    this.addWeightLayer(at, layer, weight, bias ?? new Float32Array(filters));
    this.shape = [filters, h + 2 * padding - kernel + 1, w + 2 * padding - kernel + 1];
  }

  /** A fully connected layer: `weight` [in, out] with in the flattened input in the source model's layout. */
  dense(at: SourceOp, weight: Float32Array, units: number, bias?: Float32Array): void {
    this.open(at);
    const [c, h, w] = this.shape;
    if (!this.flat) {
      // A dense layer on [C, 1, 1] (after a global pooling) reads C features, as after a flatten.
      if (h !== 1 || w !== 1) this.fail(at, `multiplies a [${c}, ${h}, ${w}] activation; flatten it first`);
      this.flatten(at);
    }
    const features = c * h * w;
    if (weight.length !== features * units)
      this.fail(at, `has ${weight.length / units} inputs per unit, its input has ${features} features`);
    const rows = this.nhwcRows ? channelMajorRows(weight, this.nhwcRows, units) : weight;
    this.nhwcRows = undefined;
    const layer: WeightLayerSpec = {
      kind: 'dense',
      name: this.nameFor('fc'),
      units,
      batchNorm: false,
      activation: 'none',
      binarize: { weights: 'none', inputs: 'none' },
    };
    this.addWeightLayer(at, layer, rows, bias ?? new Float32Array(units));
    this.shape = [units, 1, 1];
  }

  /**
   * y = x * scale + shift per channel (vectors of one value, or one per channel): a bias, a folded batch norm, a
   * scaling. It folds into the conv or dense layer right before it, or into the input normalization when no layer came
   * yet (pooling and flattening commute with it); anywhere else it cannot be represented.
   */
  affine(at: SourceOp, scale: ArrayLike<number> | undefined, shift: ArrayLike<number> | undefined): void {
    this.open(at);
    const channels = this.shape[0];
    for (const v of [scale, shift]) {
      if (v && v.length !== 1 && v.length !== channels)
        this.fail(at, `has ${v.length} values for ${channels} channels; cmp folds per-channel constants only`);
    }
    const s = (c: number): number => (scale ? scale[scale.length === 1 ? 0 : c] : 1);
    const t = (c: number): number => (shift ? shift[shift.length === 1 ? 0 : c] : 0);
    if (!this.last) {
      if (channels !== 1 && ((scale && scale.length > 1) || (shift && shift.length > 1)))
        this.fail(at, 'scales input channels differently; cmp normalizes all input channels alike');
      if (!(s(0) > 0) || !Number.isFinite(s(0))) this.fail(at, `scales the input by ${s(0)}`);
      // (x - mean) / std * s + t = (x - mean') / std' with std' = std / s, mean' = mean - t * std'.
      this.std /= s(0);
      this.mean -= t(0) * this.std;
      return;
    }
    const last = this.last;
    if (!last || this.tail.length || last.layer.activation !== 'none') {
      this.fail(at, 'does not directly follow a conv or dense layer, so it cannot be folded into one');
    }
    const units = last.bias.length;
    const perUnit = last.weight.length / units;
    for (let o = 0; o < units; o++) {
      const k = s(o);
      if (last.layer.kind === 'dense') for (let i = 0; i < perUnit; i++) last.weight[i * units + o] *= k;
      else for (let i = 0; i < perUnit; i++) last.weight[o * perUnit + i] *= k;
      last.bias[o] = last.bias[o] * k + t(o);
    }
    this.record(last.layer.name, at);
    this.version++;
  }

  /** ReLU: the activation of the last weight layer, across max pooling and flattening, which commute with it. */
  relu(at: SourceOp): void {
    this.open(at);
    const last = this.last;
    if (!last) this.fail(at, 'applies to the input before any conv or dense layer');
    if (this.tail.includes('avgpool')) this.fail(at, 'follows an average pooling, which a cmp activation cannot');
    last.layer.activation = 'relu';
    this.record(last.layer.name, at);
    this.version++;
  }

  /** Max or average pooling, square window `size`, stride `size`, no padding (rows and columns left over drop). */
  pool(at: SourceOp, mode: 'max' | 'avg', size: number): void {
    this.open(at);
    if (this.flat) this.fail(at, 'pools a flat activation');
    const [c, h, w] = this.shape;
    if (size > h || size > w) this.fail(at, `pools a ${h}x${w} activation by ${size}`);
    this.version++;
    if (size === 1) return;
    const kind = mode === 'max' ? 'maxpool' : 'avgpool';
    const name = this.nameFor('pool');
    this.layers.push({ kind, name, size });
    this.record(name, at);
    this.tail.push(kind);
    this.shape = [c, Math.floor(h / size), Math.floor(w / size)];
  }

  /** Flattens to [C*H*W] (a no-op on a flat activation). */
  flatten(at: SourceOp): void {
    this.open(at);
    this.version++;
    if (this.flat) return;
    const [c, h, w] = this.shape;
    if (this.options.layout === 'nhwc' && c > 1 && h * w > 1) this.nhwcRows = [c, h, w];
    const name = this.nameFor('flatten');
    this.layers.push({ kind: 'flatten', name });
    this.record(name, at);
    this.tail.push('flatten');
    this.shape = [c * h * w, 1, 1];
    this.flat = true;
  }

  /**
   * The source's last op turns logits into probabilities (Softmax, LogSoftmax): cmp models output logits, which rank
   * the classes the same, so the op is left out and the import says so.
   */
  end(at: SourceOp, kind: 'softmax' | 'logSoftmax'): void {
    this.open(at);
    this.ended = at;
    this.outputOf = kind;
    this.notes.push(
      `Left out the final ${at.op} (${this.options.unit} "${at.node}"): cmp models output logits, which rank the classes the same.`,
    );
    this.version++;
  }

  /** The finished network; `labels` name the classes (default "0".."N-1"). */
  finish(labels: string[] | undefined, arch: string): ImportedNetwork {
    const last = this.layers[this.layers.length - 1];
    if (last?.kind !== 'dense') {
      throw new CmpError(
        'MODEL_INVALID',
        `${this.source} ends in ${last ? `a ${last.kind} layer` : 'no layer'}; cmp imports classifiers whose last layer is dense (Gemm, MatMul or Dense). ${this.options.fix}`,
      );
    }
    this.rename(last.name, 'logits');
    const classes = last.units;
    if (labels && labels.length !== classes) {
      throw new CmpError(
        'BAD_FLAG',
        `--labels names ${labels.length} classes but ${this.source} has ${classes} outputs. Give ${classes} labels.`,
      );
    }
    const spec: ModelSpec = {
      format: 'cmp-model/1',
      arch,
      input: { shape: this.inputShape, mean: this.mean, std: this.std },
      labels: labels ?? Array.from({ length: classes }, (_, i) => String(i)),
      layers: this.layers,
    };
    inferShapes(spec);
    const sources = Object.fromEntries(this.sources);
    return {
      spec,
      tensors: this.tensors,
      sources,
      notes: this.notes,
      ...(this.outputOf ? { outputOf: this.outputOf } : {}),
    };
  }

  private open(at: SourceOp): void {
    if (this.ended) this.fail(at, `comes after the final ${this.ended.op} (node "${this.ended.node}")`);
  }

  private addWeightLayer(at: SourceOp, layer: WeightLayerSpec, weight: Float32Array, bias: Float32Array): void {
    this.layers.push(layer);
    const shape =
      layer.kind === 'dense'
        ? [weight.length / layer.units, layer.units]
        : [layer.filters, this.shape[0], layer.kernel, layer.kernel];
    this.tensors.set(`${layer.name}.weight`, { shape, data: weight });
    this.tensors.set(`${layer.name}.bias`, { shape: [bias.length], data: bias });
    this.last = { layer, weight, bias };
    this.tail = [];
    this.record(layer.name, at);
    this.version++;
  }

  private record(layer: string, at: SourceOp): void {
    const list = this.sources.get(layer) ?? [];
    if (list[list.length - 1] !== at.node) list.push(at.node);
    this.sources.set(layer, list);
  }

  private nameFor(prefix: string): string {
    const n = (this.counts.get(prefix) ?? 0) + 1;
    this.counts.set(prefix, n);
    return prefix === 'flatten' && n === 1 ? 'flatten' : `${prefix}${n}`;
  }

  private rename(from: string, to: string): void {
    const layer = this.layers.find((l) => l.name === from) as LayerSpec;
    layer.name = to;
    for (const suffix of ['weight', 'bias']) {
      const t = this.tensors.get(`${from}.${suffix}`);
      if (!t) continue;
      this.tensors.delete(`${from}.${suffix}`);
      this.tensors.set(`${to}.${suffix}`, t);
    }
    this.sources.set(to, this.sources.get(from) ?? []);
    this.sources.delete(from);
  }
}

/**
 * Dense rows [in, out] whose inputs come in (h, w, c) order (an NHWC flatten) reordered to cmp's (c, h, w) order, so
 * the layer reads cmp's channel-major flatten.
 */
function channelMajorRows(weight: Float32Array, [c, h, w]: [number, number, number], units: number): Float32Array {
  const out = new Float32Array(weight.length);
  for (let ch = 0; ch < c; ch++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const from = ((y * w + x) * c + ch) * units;
        out.set(weight.subarray(from, from + units), ((ch * h + y) * w + x) * units);
      }
  return out;
}
