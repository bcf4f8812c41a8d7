// Importing a TensorFlow.js model from local files (model.json and its weight shards): layers models through
// tfjs-layers, graph models from their GraphDef JSON; both become a cmp network (NHWC turned into cmp's NCHW).

import { dirname, isAbsolute, join, normalize, sep } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import { loadTf, type Tf } from '../compress/tf.js';
import { transpose } from '../core/frozen.js';
import { readRegularFile } from '../core/regular-file.js';
import { CmpError } from '../errors.js';
import { ChainBuilder, type Constant, type ImportedNetwork, type SourceOp } from './chain.js';
import type { ImportInputOptions } from './import-onnx.js';

/** The Keras layer classes cmp imports from a layers model. */
export const TFJS_IMPORT_LAYERS: readonly string[] = Object.freeze([
  'InputLayer',
  'Conv2D',
  'Dense',
  'MaxPooling2D',
  'AveragePooling2D',
  'GlobalAveragePooling2D',
  'GlobalMaxPooling2D',
  'Flatten',
  'Reshape',
  'Dropout',
  'SpatialDropout2D',
  'Activation',
  'ReLU',
  'Softmax',
  'BatchNormalization',
]);

/** The TensorFlow ops cmp imports from a graph model. */
export const TFJS_IMPORT_OPS: readonly string[] = Object.freeze([
  'Placeholder',
  'Const',
  'Identity',
  'StopGradient',
  'Conv2D',
  '_FusedConv2D',
  'BiasAdd',
  'Add',
  'AddV2',
  'Sub',
  'Mul',
  'RealDiv',
  'FusedBatchNorm',
  'FusedBatchNormV3',
  'Relu',
  'MaxPool',
  'AvgPool',
  'Mean',
  'Reshape',
  'Squeeze',
  'MatMul',
  '_FusedMatMul',
  'Softmax',
  'LogSoftmax',
]);

/** An imported TF.js model: the cmp network, and the source model itself to compare against. */
export interface TfjsImport {
  network: ImportedNetwork;
  format: 'layers-model' | 'graph-model';
  producer: string;
  /** Layers (layers model) or nodes (graph model) read. */
  nodes: number;
  /** Runs the original model on `count` NCHW images (pixels as the model expects them); returns its outputs. */
  predict(x: Float32Array, count: number): Promise<Float32Array>;
  dispose(): void;
}

/** The files of a TF.js model as written by model.save or tensorflowjs_converter. */
export interface TfjsFiles {
  json: {
    format?: string;
    generatedBy?: string;
    convertedBy?: string | null;
    modelTopology?: unknown;
    weightsManifest?: { paths: string[]; weights: tfTypes.io.WeightsManifestEntry[] }[];
    signature?: { outputs?: Record<string, unknown> };
  };
  /** Bytes of model.json. */
  jsonBytes: number;
  /** The weight shards in order, as read. */
  weightFiles: { path: string; bytes: number }[];
  weightSpecs: tfTypes.io.WeightsManifestEntry[];
  weightData: ArrayBuffer;
}

const FIX = 'cmp imports single-path conv/dense classifiers (see cmp import --help); rebuild the model without it.';

/** Reads model.json and its shards at `path` and builds the cmp network; what cmp cannot hold is one error. */
export async function importTfjs(path: string, options: ImportInputOptions): Promise<TfjsImport> {
  const files = readTfjsFiles(path);
  const { tf } = await loadTf();
  const topology = files.json.modelTopology as { node?: unknown[] } | undefined;
  const producer = [files.json.generatedBy, files.json.convertedBy].filter(Boolean).join(', ') || 'unknown';
  if (files.json.format === 'graph-model' || Array.isArray(topology?.node)) {
    return { ...(await importGraphModel(tf, path, files, options)), format: 'graph-model', producer };
  }
  return { ...(await importLayersModel(tf, path, files, options)), format: 'layers-model', producer };
}

/** Largest model.json read: its topology and weights manifest, not weights (those are in the shards). */
const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;

/** Reads model.json and its weight shards (beside it, never outside its folder); a bad file is one error. */
export function readTfjsFiles(path: string): TfjsFiles {
  const bad = (problem: string, cause?: unknown): CmpError =>
    new CmpError(
      'MODEL_INVALID',
      `${path} ${problem}. Pass the model.json of a TF.js model with its weight files beside it.`,
      {
        cause,
      },
    );
  let json: TfjsFiles['json'];
  let text: string;
  try {
    text = Buffer.from(readRegularFile(path, { maxBytes: MAX_MODEL_JSON_BYTES })).toString('utf8');
  } catch (err) {
    throw bad(`cannot be read (${(err as Error).message.split('\n')[0]})`, err);
  }
  try {
    json = JSON.parse(text) as TfjsFiles['json'];
  } catch (err) {
    // Never the parser's message: it quotes the file.
    throw bad('is not JSON', err);
  }
  if (typeof json !== 'object' || json === null || !json.modelTopology) throw bad('has no modelTopology');
  const parts: Uint8Array[] = [];
  const weightFiles: TfjsFiles['weightFiles'] = [];
  const weightSpecs: tfTypes.io.WeightsManifestEntry[] = [];
  for (const group of json.weightsManifest ?? []) {
    for (const shard of group.paths ?? []) {
      const relative = normalize(shard);
      if (isAbsolute(relative) || relative.split(sep).includes('..'))
        throw bad(`names weight file "${shard}" outside its folder`);
      const shardPath = join(dirname(path), relative);
      try {
        parts.push(readRegularFile(shardPath, { inside: dirname(path) }));
        weightFiles.push({ path: shardPath, bytes: parts[parts.length - 1].length });
      } catch (err) {
        throw bad(`names weight file "${shard}", which cannot be read (${(err as Error).message})`, err);
      }
    }
    weightSpecs.push(...group.weights);
  }
  const total = parts.reduce((a, p) => a + p.length, 0);
  const weightData = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    weightData.set(p, at);
    at += p.length;
  }
  return { json, jsonBytes: Buffer.byteLength(text), weightFiles, weightSpecs, weightData: weightData.buffer };
}

/** The cmp input of a TF.js input of dims `dims` (without the batch dim; NHWC images or flat vectors). */
function chainInput(path: string, dims: (number | null)[], options: ImportInputOptions): ImportedInputShape {
  const known = dims.every((d) => typeof d === 'number' && d > 0);
  if (dims.length === 3 && known) {
    const [h, w, c] = dims as number[];
    return { shape: [c, h, w], flat: false };
  }
  if (dims.length === 1 && known) {
    const features = dims[0] as number;
    const given = options.inputShape;
    if (given && given[0] * given[1] * given[2] !== features)
      throw new CmpError(
        'BAD_FLAG',
        `--input-shape ${given.join(',')} does not have the ${features} values ${path} takes.`,
      );
    return { shape: given ?? [features, 1, 1], flat: true };
  }
  if (dims.length === 3 && options.inputShape) return { shape: options.inputShape, flat: false };
  throw new CmpError(
    'MODEL_INVALID',
    `${path} takes an input of dims [batch, ${dims.map((d) => d ?? '?').join(', ')}]; cmp imports [batch, H, W, C] or [batch, features] inputs. Give open dims with --input-shape C,H,W.`,
  );
}

interface ImportedInputShape {
  shape: [number, number, number];
  flat: boolean;
}

/** NCHW images to the NHWC layout TF.js models take (flat inputs unchanged). */
function toSourceLayout(tf: Tf, x: Float32Array, count: number, input: ImportedInputShape): tfTypes.Tensor {
  if (input.flat) return tf.tensor2d(x, [count, input.shape[0] * input.shape[1] * input.shape[2]]);
  return tf.tidy(() => tf.transpose(tf.tensor4d(x, [count, ...input.shape]), [0, 2, 3, 1]));
}

// ---- Layers models ----

type LayerConfig = Record<string, unknown>;
type Layer = tfTypes.LayersModel['layers'][number];

/** Loads a layers model from its files in TF.js; one that TF.js cannot load is one MODEL_INVALID line. */
export async function loadLayersModel(tf: Tf, path: string, files: TfjsFiles): Promise<tfTypes.LayersModel> {
  try {
    return await tf.loadLayersModel(
      tf.io.fromMemory({
        modelTopology: files.json.modelTopology as tfTypes.io.ModelArtifacts['modelTopology'],
        weightSpecs: files.weightSpecs,
        weightData: files.weightData,
      }),
    );
  } catch (err) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} is not a layers model TF.js can load (${String((err as Error).message).split('\n')[0]}). Save it with model.save or tensorflowjs_converter.`,
      { cause: err },
    );
  }
}

async function importLayersModel(
  tf: Tf,
  path: string,
  files: TfjsFiles,
  options: ImportInputOptions,
): Promise<Omit<TfjsImport, 'format' | 'producer'>> {
  const model = await loadLayersModel(tf, path, files);
  const layers = model.layers;
  checkLayers(path, layers);
  const input = chainInput(path, model.inputs[0].shape.slice(1), options);
  const chain: ChainBuilder = new ChainBuilder(
    path,
    { ...input, mean: options.mean, std: options.std },
    {
      layout: 'nhwc',
      unit: 'layer',
      fix: FIX,
    },
  );
  layers.forEach((layer, i) => {
    const at: SourceOp = { op: layer.getClassName(), node: layer.name };
    const inbound = layer.inboundNodes.flatMap((n) => n.inboundLayers);
    if (i > 0 && (inbound.length !== 1 || inbound[0] !== layers[i - 1]))
      chain.fail(at, 'does not read the layer before it alone (a branch); cmp imports single-path networks');
    importLayer(chain, at, layer.getConfig(), weightsOf(layer));
  });
  return {
    network: chain.finish(options.labels, 'imported'),
    nodes: layers.length,
    predict: async (x, count) => {
      const out = tf.tidy(() => model.predict(toSourceLayout(tf, x, count, input)) as tfTypes.Tensor);
      const values = (await out.data()) as Float32Array;
      out.dispose();
      return values;
    },
    dispose: () => model.dispose(),
  };
}

/** A layer's weights by their short name (kernel, bias, gamma, moving_mean ...). */
function weightsOf(layer: Layer): Map<string, Constant> {
  const out = new Map<string, Constant>();
  for (const v of layer.weights) {
    const short = v.originalName.split('/').pop()?.replace(/:\d+$/, '') ?? v.originalName;
    const t = v.read();
    out.set(short, { dims: [...t.shape], values: Float64Array.from(t.dataSync() as Float32Array) });
  }
  return out;
}

/** Lists every layer class or option cmp cannot import in one error. */
function checkLayers(path: string, layers: Layer[]): void {
  const problems: string[] = [];
  for (const layer of layers) {
    const cls = layer.getClassName();
    const config = layer.getConfig() as LayerConfig;
    const problem = TFJS_IMPORT_LAYERS.includes(cls) ? layerProblem(cls, config) : '';
    if (problem !== undefined) problems.push(`${cls} (layer "${layer.name}"${problem ? `: ${problem}` : ''})`);
  }
  if (problems.length === 0) return;
  throw new CmpError(
    'MODEL_INVALID',
    `${path} has layers cmp cannot import: ${problems.join(', ')}. cmp imports ${TFJS_IMPORT_LAYERS.join(', ')} (stride 1 convolutions with 'valid' or odd-kernel 'same' padding, pooling with stride = window, activations relu, linear and a final softmax); rebuild the model without the others.`,
  );
}

/** What a supported layer's options ask that cmp cannot represent; undefined when nothing. */
function layerProblem(cls: string, config: LayerConfig): string | undefined {
  const pair = (key: string): number[] => {
    const v = config[key];
    return Array.isArray(v) ? (v as number[]) : typeof v === 'number' ? [v, v] : [];
  };
  const activation = config.activation as string | undefined;
  if (activation && !['linear', 'relu', 'softmax'].includes(activation)) return `activation ${activation}`;
  if (config.dataFormat === 'channelsFirst') return 'channels first';
  switch (cls) {
    case 'Conv2D': {
      const [kh, kw] = pair('kernelSize');
      if (kh !== kw) return `kernel ${kh}x${kw}`;
      if (pair('strides').some((s) => s !== 1)) return `strides ${pair('strides').join('x')}`;
      if (pair('dilationRate').some((d) => d !== 1)) return `dilation ${pair('dilationRate').join('x')}`;
      if (config.padding !== 'valid' && (config.padding !== 'same' || kh % 2 === 0))
        return `padding ${String(config.padding)}`;
      return undefined;
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const [ph, pw] = pair('poolSize');
      const strides = config.strides ? pair('strides') : [ph, pw];
      if (ph !== pw || strides.some((s) => s !== ph)) return `pool ${ph}x${pw} stride ${strides.join('x')}`;
      return undefined;
    }
    case 'ReLU':
      return config.maxValue != null || Number(config.negativeSlope ?? 0) !== 0 || Number(config.threshold ?? 0) !== 0
        ? 'max value, slope or threshold'
        : undefined;
    case 'BatchNormalization': {
      const axis = Number(config.axis ?? -1);
      return axis !== -1 && axis !== 3 ? `axis ${axis}` : undefined;
    }
    default:
      return undefined;
  }
}

function importLayer(chain: ChainBuilder, at: SourceOp, config: LayerConfig, weights: Map<string, Constant>): void {
  const weight = (name: string): Constant => weights.get(name) ?? chain.fail(at, `has no ${name} weights`);
  const floats = (c: Constant | undefined): Float32Array | undefined => (c ? Float32Array.from(c.values) : undefined);
  switch (at.op) {
    case 'InputLayer':
    case 'Dropout':
    case 'SpatialDropout2D':
      return;
    case 'Conv2D': {
      const kernel = weight('kernel');
      const [k, , , filters] = kernel.dims;
      const padding = config.padding === 'same' ? (k - 1) / 2 : 0;
      chain.conv(at, hwioToOihw(kernel), filters, k, padding, floats(weights.get('bias')));
      break;
    }
    case 'Dense': {
      const kernel = weight('kernel');
      chain.dense(at, Float32Array.from(kernel.values), kernel.dims[1], floats(weights.get('bias')));
      break;
    }
    case 'MaxPooling2D':
    case 'AveragePooling2D': {
      const size = (config.poolSize as number[])[0];
      const [, h, w] = chain.shape;
      if (config.padding === 'same' && (h % size || w % size))
        chain.fail(at, `pads a ${h}x${w} input to pool by ${size}`);
      chain.pool(at, at.op === 'MaxPooling2D' ? 'max' : 'avg', size);
      return;
    }
    case 'GlobalAveragePooling2D':
    case 'GlobalMaxPooling2D': {
      const [, h, w] = chain.shape;
      if (h !== w) chain.fail(at, `pools a ${h}x${w} activation; cmp pools square windows`);
      chain.pool(at, at.op === 'GlobalMaxPooling2D' ? 'max' : 'avg', h);
      if (!config.keepDims) chain.flatten(at);
      return;
    }
    case 'Flatten':
      chain.flatten(at);
      return;
    case 'Reshape': {
      const target = config.targetShape as number[];
      const [c, h, w] = chain.shape;
      if (target.length === 1) chain.flatten(at);
      else if (chain.flat || target.join() !== [h, w, c].join()) chain.fail(at, `reshapes to [${target.join(', ')}]`);
      return;
    }
    case 'Activation':
    case 'Softmax':
      break;
    case 'ReLU':
      chain.relu(at);
      return;
    case 'BatchNormalization': {
      const epsilon = Number(config.epsilon ?? 1e-3);
      const mean = weight('moving_mean').values;
      const variance = weight('moving_variance').values;
      const gamma = weights.get('gamma')?.values;
      const beta = weights.get('beta')?.values;
      const s = mean.map((_, c) => (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon));
      chain.affine(
        at,
        [...s],
        [...mean].map((m, c) => (beta ? beta[c] : 0) - m * s[c]),
      );
      return;
    }
    default:
      chain.fail(at, 'is not a layer cmp imports');
  }
  const activation = at.op === 'Softmax' ? 'softmax' : (config.activation as string | undefined);
  if (activation === 'relu') chain.relu(at);
  else if (activation === 'softmax') chain.end({ op: 'softmax', node: at.node }, 'softmax');
}

/** A TF conv kernel [kh, kw, in, out] in cmp's OIHW layout. */
function hwioToOihw(kernel: Constant): Float32Array {
  const [kh, kw, inC, outC] = kernel.dims;
  const out = new Float32Array(kernel.values.length);
  for (let y = 0; y < kh; y++)
    for (let x = 0; x < kw; x++)
      for (let i = 0; i < inC; i++)
        for (let o = 0; o < outC; o++)
          out[((o * inC + i) * kh + y) * kw + x] = kernel.values[((y * kw + x) * inC + i) * outC + o];
  return out;
}

// ---- Graph models ----

/** A GraphDef node as TF.js model.json stores it (protobuf JSON: int64 as strings, strings base64). */
interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: Record<string, GraphAttr>;
}

interface GraphAttr {
  i?: string | number;
  f?: number;
  b?: boolean;
  s?: string;
  type?: string;
  list?: { i?: (string | number)[]; s?: string[]; f?: number[] };
  shape?: { dim?: { size?: string | number }[]; unknownRank?: boolean };
  tensor?: {
    dtype?: string;
    tensorShape?: { dim?: { size?: string | number }[] };
    intVal?: number[];
    floatVal?: number[];
    int64Val?: (string | number)[];
    tensorContent?: string;
  };
}

type GraphValue = { kind: 'const'; value: Constant } | { kind: 'act'; version: number };

async function importGraphModel(
  tf: Tf,
  path: string,
  files: TfjsFiles,
  options: ImportInputOptions,
): Promise<Omit<TfjsImport, 'format' | 'producer'>> {
  const all = (files.json.modelTopology as { node: GraphNode[] }).node;
  const byName = new Map(all.map((n) => [n.name, n]));
  const output = graphOutput(path, files, all);
  const nodes = topological(path, byName, output);
  const problems = nodes.flatMap((n) => {
    const problem = TFJS_IMPORT_OPS.includes(n.op) ? graphProblem(n) : '';
    return problem === undefined ? [] : [`${n.op} (node "${n.name}"${problem ? `: ${problem}` : ''})`];
  });
  if (problems.length) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} has ops cmp cannot import: ${problems.join(', ')}. cmp imports ${TFJS_IMPORT_OPS.join(', ')} (NHWC, stride 1 convolutions, pooling with stride = window); rebuild the model without the others.`,
    );
  }
  const weights = tf.io.decodeWeights(files.weightData, files.weightSpecs);
  const placeholders = nodes.filter((n) => n.op === 'Placeholder');
  if (placeholders.length !== 1)
    throw new CmpError(
      'MODEL_INVALID',
      `${path} has ${placeholders.length} inputs; cmp imports models with one. ${FIX}`,
    );
  const dims = (placeholders[0].attr?.shape?.shape?.dim ?? []).map((d) => Number(d.size ?? -1));
  const input = chainInput(
    path,
    dims.slice(1).map((d) => (d > 0 ? d : null)),
    options,
  );
  const chain: ChainBuilder = new ChainBuilder(
    path,
    { ...input, mean: options.mean, std: options.std },
    {
      layout: 'nhwc',
      unit: 'node',
      fix: FIX,
    },
  );
  const values = new Map<string, GraphValue>();
  for (const n of nodes) {
    const at: SourceOp = { op: n.op, node: n.name };
    if (n.op === 'Placeholder') values.set(n.name, { kind: 'act', version: chain.version });
    else if (n.op === 'Const') values.set(n.name, { kind: 'const', value: constOf(chain, at, n, weights) });
    else values.set(n.name, importGraphNode(chain, at, n, values));
  }
  tf.dispose(Object.values(weights));
  const out = values.get(output);
  if (out?.kind !== 'act' || out.version !== chain.version)
    throw new CmpError('MODEL_INVALID', `${path}: the output "${output}" is not the network's last activation. ${FIX}`);
  let model: tfTypes.GraphModel | undefined;
  return {
    network: chain.finish(options.labels, 'imported'),
    nodes: nodes.length,
    predict: async (x, count) => {
      model ??= await tf.loadGraphModel(
        tf.io.fromMemory({
          modelTopology: files.json.modelTopology as tfTypes.io.ModelArtifacts['modelTopology'],
          weightSpecs: files.weightSpecs,
          weightData: files.weightData,
          format: 'graph-model',
        }),
      );
      const loaded = model;
      const result = tf.tidy(() => loaded.execute(toSourceLayout(tf, x, count, input), output) as tfTypes.Tensor);
      const outValues = (await result.data()) as Float32Array;
      result.dispose();
      return outValues;
    },
    dispose: () => model?.dispose(),
  };
}

/** The graph's one output: the signature's, else the one node nothing reads. */
function graphOutput(path: string, files: TfjsFiles, nodes: GraphNode[]): string {
  const signed = Object.keys(files.json.signature?.outputs ?? {}).map((n) => n.split(':')[0]);
  const read = new Set(nodes.flatMap((n) => (n.input ?? []).map(sourceName)));
  const outputs = signed.length ? signed : nodes.filter((n) => !read.has(n.name) && n.op !== 'NoOp').map((n) => n.name);
  if (outputs.length !== 1)
    throw new CmpError('MODEL_INVALID', `${path} has ${outputs.length} outputs; cmp imports models with one. ${FIX}`);
  return outputs[0];
}

/** "name:1" and "^name" (a control input) to "name". */
function sourceName(input: string): string {
  return input.replace(/^\^/, '').split(':')[0];
}

/** The nodes `output` depends on, each after its inputs. */
function topological(path: string, byName: Map<string, GraphNode>, output: string): GraphNode[] {
  const order: GraphNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (name: string): void => {
    const node = byName.get(name);
    if (!node)
      throw new CmpError('MODEL_INVALID', `${path} reads node "${name}", which its graph lacks. Re-convert the model.`);
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'open')
      throw new CmpError('MODEL_INVALID', `${path} has a cycle through "${name}". ${FIX}`);
    state.set(name, 'open');
    for (const i of node.input ?? []) if (!i.startsWith('^')) visit(sourceName(i));
    state.set(name, 'done');
    order.push(node);
  };
  visit(output);
  return order;
}

function stringAttr(n: GraphNode, name: string, fallback: string): string {
  const s = n.attr?.[name]?.s;
  return s === undefined ? fallback : Buffer.from(s, 'base64').toString('utf8');
}

function intsAttr(n: GraphNode, name: string): number[] | undefined {
  return n.attr?.[name]?.list?.i?.map(Number);
}

function fusedOps(n: GraphNode): string[] {
  return (n.attr?.fused_ops?.list?.s ?? []).map((s) => Buffer.from(s, 'base64').toString('utf8'));
}

/** What a supported op's attributes ask that cmp cannot represent; undefined when nothing. */
function graphProblem(n: GraphNode): string | undefined {
  const format = stringAttr(n, 'data_format', 'NHWC');
  if (format !== 'NHWC') return `data format ${format}`;
  const ones = (v: number[] | undefined): boolean => !v || v.every((x) => x === 1);
  switch (n.op) {
    case 'Conv2D':
    case '_FusedConv2D': {
      if (!ones(intsAttr(n, 'strides'))) return `strides ${intsAttr(n, 'strides')?.join(',')}`;
      if (!ones(intsAttr(n, 'dilations'))) return `dilations ${intsAttr(n, 'dilations')?.join(',')}`;
      const padding = stringAttr(n, 'padding', 'VALID');
      if (padding !== 'VALID' && padding !== 'SAME') return `padding ${padding}`;
      const fused = fusedOps(n).filter((op) => !['BiasAdd', 'Relu', 'FusedBatchNorm'].includes(op));
      return fused.length ? `fused ${fused.join(', ')}` : undefined;
    }
    case 'MaxPool':
    case 'AvgPool': {
      const k = intsAttr(n, 'ksize') ?? [];
      const s = intsAttr(n, 'strides') ?? [];
      if (k[1] !== k[2] || s[1] !== k[1] || s[2] !== k[2]) return `ksize ${k.join(',')} strides ${s.join(',')}`;
      return undefined;
    }
    case 'MatMul':
    case '_FusedMatMul': {
      if (n.attr?.transpose_a?.b) return 'transpose_a';
      const fused = fusedOps(n).filter((op) => !['BiasAdd', 'Relu'].includes(op));
      return fused.length ? `fused ${fused.join(', ')}` : undefined;
    }
    case 'FusedBatchNorm':
    case 'FusedBatchNormV3':
      return n.attr?.is_training?.b ? 'is_training' : undefined;
    default:
      return undefined;
  }
}

/** A Const node's value: from the weights, or stored inline in the node. */
function constOf(chain: ChainBuilder, at: SourceOp, n: GraphNode, weights: tfTypes.NamedTensorMap): Constant {
  const w = weights[n.name];
  if (w) return { dims: [...w.shape], values: Float64Array.from(w.dataSync() as Float32Array) };
  const t = n.attr?.value?.tensor;
  if (!t) return chain.fail(at, 'has no value in the weights or the node');
  const dims = (t.tensorShape?.dim ?? []).map((d) => Number(d.size));
  const count = dims.reduce((a, b) => a * b, 1);
  let values: number[];
  if (t.tensorContent) {
    const bytes = Buffer.from(t.tensorContent, 'base64');
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const int = t.dtype === 'DT_INT32';
    if (!int && t.dtype !== 'DT_FLOAT') chain.fail(at, `stores a ${t.dtype ?? '?'} value`);
    values = Array.from({ length: count }, (_, i) => (int ? view.getInt32(4 * i, true) : view.getFloat32(4 * i, true)));
  } else {
    const listed = (t.intVal ?? t.floatVal ?? t.int64Val ?? []).map(Number);
    // A single listed value fills the whole tensor (protobuf's compact form).
    values = Array.from({ length: count }, (_, i) => listed[Math.min(i, listed.length - 1)] ?? 0);
  }
  return { dims, values: Float64Array.from(values) };
}

function importGraphNode(chain: ChainBuilder, at: SourceOp, n: GraphNode, values: Map<string, GraphValue>): GraphValue {
  const ins = (n.input ?? [])
    .filter((i) => !i.startsWith('^'))
    .map((i) => {
      const v = values.get(sourceName(i));
      if (!v) return chain.fail(at, `reads "${i}", which is not made before it`);
      if (i.includes(':') && !i.endsWith(':0')) chain.fail(at, `reads output ${i}, not a first output`);
      return v;
    });
  const acts = ins.filter((v) => v.kind === 'act');
  if (acts.length === 0) {
    if (n.op === 'Identity' || n.op === 'StopGradient') return ins[0];
    return chain.fail(at, 'computes on constants, which cmp does not fold in graph models');
  }
  if (acts.length > 1 || (acts[0].kind === 'act' && acts[0].version !== chain.version))
    chain.fail(at, 'reads an earlier activation or two (a branch); cmp imports single-path networks');
  const constant = (i: number): Constant => {
    const v = ins[i];
    return v?.kind === 'const'
      ? v.value
      : chain.fail(at, `takes an activation as input ${i + 1}, where cmp needs a constant`);
  };
  const channel = (c: Constant): number[] => {
    // NHWC: only the last (channel) axis may hold more than one value.
    if (c.dims.slice(0, -1).some((d) => d !== 1)) chain.fail(at, `has a constant of dims [${c.dims.join(', ')}]`);
    return [...c.values];
  };
  const epsilon = n.attr?.epsilon?.f ?? 1e-3;
  const batchNorm = (scale: number[], offset: number[], mean: number[], variance: number[]): void => {
    const s = scale.map((g, c) => g / Math.sqrt(variance[c] + epsilon));
    chain.affine(
      at,
      s,
      offset.map((b, c) => b - mean[c] * s[c]),
    );
  };
  const fused = (): void => {
    const ops = fusedOps(n);
    if (ops[0] === 'BiasAdd') chain.affine(at, undefined, channel(constant(2)));
    if (ops[0] === 'FusedBatchNorm')
      batchNorm(...([2, 3, 4, 5].map((i) => channel(constant(i))) as [number[], number[], number[], number[]]));
    if (ops.includes('Relu')) chain.relu(at);
  };
  switch (n.op) {
    case 'Identity':
    case 'StopGradient':
      return ins[0];
    case 'Conv2D':
    case '_FusedConv2D': {
      const filter = constant(1);
      const [k, kw, , filters] = filter.dims;
      if (k !== kw) chain.fail(at, `has a ${k}x${kw} kernel`);
      const same = stringAttr(n, 'padding', 'VALID') === 'SAME';
      if (same && k % 2 === 0) chain.fail(at, `pads a ${k}x${k} kernel unevenly (SAME)`);
      chain.conv(at, hwioToOihw(filter), filters, k, same ? (k - 1) / 2 : 0);
      if (n.op === '_FusedConv2D') fused();
      break;
    }
    case 'MatMul':
    case '_FusedMatMul': {
      const b = constant(1);
      if (b.dims.length !== 2) chain.fail(at, 'multiplies by a constant that is not a matrix');
      let weight: Float32Array = Float32Array.from(b.values);
      let units = b.dims[1];
      if (n.attr?.transpose_b?.b) {
        units = b.dims[0];
        weight = transpose(weight, b.dims[0], b.dims[1]);
      }
      chain.dense(at, weight, units);
      if (n.op === '_FusedMatMul') fused();
      break;
    }
    case 'BiasAdd':
    case 'Add':
    case 'AddV2':
    case 'Sub':
    case 'Mul':
    case 'RealDiv': {
      const first = ins[0].kind === 'act';
      const c = channel(constant(first ? 1 : 0));
      if (n.op === 'Mul') chain.affine(at, c, undefined);
      else if (n.op === 'Sub') chain.affine(at, first ? undefined : [-1], first ? c.map((v) => -v) : c);
      else if (n.op === 'RealDiv') {
        if (!first) chain.fail(at, 'divides a constant by the activation');
        chain.affine(
          at,
          c.map((v) => 1 / v),
          undefined,
        );
      } else chain.affine(at, undefined, c);
      break;
    }
    case 'FusedBatchNorm':
    case 'FusedBatchNormV3':
      batchNorm(...([1, 2, 3, 4].map((i) => channel(constant(i))) as [number[], number[], number[], number[]]));
      break;
    case 'Relu':
      chain.relu(at);
      break;
    case 'MaxPool':
    case 'AvgPool': {
      const size = (intsAttr(n, 'ksize') ?? [1, 1])[1];
      const [, h, w] = chain.shape;
      if (stringAttr(n, 'padding', 'VALID') === 'SAME' && (h % size || w % size))
        chain.fail(at, `pads a ${h}x${w} input to pool by ${size}`);
      chain.pool(at, n.op === 'MaxPool' ? 'max' : 'avg', size);
      break;
    }
    case 'Mean': {
      const axes = [...constant(1).values].sort().join();
      const [, h, w] = chain.shape;
      if (chain.flat || axes !== '1,2' || h !== w)
        chain.fail(at, `averages over axes ${axes}; cmp averages whole square planes`);
      chain.pool(at, 'avg', h);
      if (!n.attr?.keep_dims?.b) chain.flatten(at);
      break;
    }
    case 'Reshape':
    case 'Squeeze': {
      const [c, h, w] = chain.shape;
      const current = chain.flat ? [c] : [h, w, c];
      const features = c * h * w;
      let dims: number[];
      if (n.op === 'Squeeze') dims = current.filter((d) => d !== 1);
      else {
        const rest = [...constant(1).values].slice(1);
        const known = rest.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
        dims = rest.map((d) => (d === -1 ? features / known : d));
      }
      if (dims.length <= 1 && (dims[0] ?? 1) === features) chain.flatten(at);
      else if (dims.join() !== current.join())
        chain.fail(at, `reshapes [${current.join(', ')}] to [${dims.join(', ')}]`);
      break;
    }
    case 'Softmax':
    case 'LogSoftmax':
      if (!chain.flat) chain.fail(at, 'is not over the classes of a flat output');
      chain.end(at, n.op === 'Softmax' ? 'softmax' : 'logSoftmax');
      break;
    default:
      chain.fail(at, 'is not an op cmp imports');
  }
  return { kind: 'act', version: chain.version };
}
