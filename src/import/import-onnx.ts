// Importing a foreign ONNX classifier (PyTorch, tf2onnx, ...): its single-path graph becomes a cmp network.

import { decodeModel, encodeOnnxModel, toNumber, valueDims, type OnnxModel, type OnnxNode } from '../core/onnx.js';
import { readRegularFile } from '../core/regular-file.js';
import { CmpError } from '../errors.js';
import { BATCH, ChainBuilder, vector, type Constant, type ImportedNetwork, type SourceOp } from './chain.js';
import { ExternalData, embedExternalData } from '../runtime/external-data.js';
import {
  floatAttribute,
  foldConstants,
  intAttribute,
  intsAttribute,
  readTensor,
  stringAttribute,
} from './onnx-values.js';

/** The opsets whose semantics of the imported ops cmp knows (the default domain). */
export const ONNX_IMPORT_OPSETS = Object.freeze({ min: 7, max: 21 });

/** The ops cmp imports: layers, what folds into them, what a classifier's graph wraps them in. */
export const ONNX_IMPORT_OPS: readonly string[] = Object.freeze([
  'Conv',
  'Gemm',
  'MatMul',
  'Add',
  'Sub',
  'Mul',
  'Div',
  'BatchNormalization',
  'Relu',
  'Clip',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'Flatten',
  'Reshape',
  'Squeeze',
  'Unsqueeze',
  'Dropout',
  'Identity',
  'Softmax',
  'LogSoftmax',
  'Constant',
  'Shape',
  'Gather',
  'Concat',
  'Cast',
  'Slice',
]);

/** What the user says about the model's input. */
export interface ImportInputOptions {
  /** Pixels x in [0, 1] reach the model as (x - mean) / std (from --input-range). */
  mean: number;
  std: number;
  /** [C, H, W] for a model whose input is flat or has open dims. */
  inputShape?: [number, number, number];
  labels?: string[];
}

/** An imported ONNX file: the cmp network and what the file says about itself. */
export interface OnnxImport {
  network: ImportedNetwork;
  opset: number;
  producer: string;
  nodes: number;
  /** The model as onnxruntime can load it from memory: external data embedded when there was some. */
  bytes: Uint8Array;
  inputName: string;
  outputName: string;
  /** The model's input dims without the batch dim. */
  inputDims: number[];
}

type Value =
  { kind: 'const'; value: Constant } | { kind: 'act'; version: number; shape: [number, number, number]; flat: boolean };

const FIX = 'cmp imports single-path conv/dense classifiers (see cmp import --help); re-export the model without it.';

/** Reads an ONNX file and builds the cmp network it holds; anything cmp cannot represent is one MODEL_INVALID line. */
export function importOnnx(path: string, options: ImportInputOptions): OnnxImport {
  let bytes: Uint8Array;
  try {
    bytes = readRegularFile(path);
  } catch (err) {
    throw new CmpError('MODEL_INVALID', `Cannot read ${path}: ${(err as Error).message}. Check the path.`, {
      cause: err,
    });
  }
  const model = decodeModel(bytes, path);
  const graph = model.graph as NonNullable<OnnxModel['graph']>;
  const opsetEntry = (model.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  const opset = opsetEntry ? toNumber(opsetEntry.version) : 0;
  if (opset < ONNX_IMPORT_OPSETS.min || opset > ONNX_IMPORT_OPSETS.max) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} uses ONNX opset ${opset}; cmp imports opsets ${ONNX_IMPORT_OPSETS.min} to ${ONNX_IMPORT_OPSETS.max}. Re-export it with an opset in that range (e.g. torch.onnx.export(..., opset_version=17)).`,
    );
  }
  const stored = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const inputs = (graph.input ?? []).filter((i) => !stored.has(i.name ?? ''));
  const outputs = graph.output ?? [];
  if (inputs.length !== 1 || outputs.length !== 1) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path} has ${inputs.length} inputs and ${outputs.length} outputs; cmp imports classifiers with one of each. Export the model with a single input and output.`,
    );
  }
  const nodes = reachableNodes(graph.node ?? [], outputs[0].name ?? '');
  checkOps(path, nodes, opset);

  const inputName = inputs[0].name ?? '';
  const dims = valueDims(inputs[0]).slice(1);
  const input = chainInput(path, dims, options);
  const chain = new ChainBuilder(
    path,
    { ...input, mean: options.mean, std: options.std },
    {
      layout: 'nchw',
      unit: 'node',
      fix: FIX,
    },
  );
  const external = new ExternalData(path);
  const values = new Map<string, Value>();
  for (const t of graph.initializer ?? [])
    values.set(t.name ?? '', { kind: 'const', value: readTensor(t, external, path) });
  values.set(inputName, { kind: 'act', version: chain.version, shape: chain.shape, flat: chain.flat });
  for (const n of nodes) importNode({ chain, values, opset, external }, n);

  const out = values.get(outputs[0].name ?? '');
  if (out?.kind !== 'act' || out.version !== chain.version) {
    throw new CmpError(
      'MODEL_INVALID',
      `${path}: the graph output "${outputs[0].name}" is not the network's last activation. ${FIX}`,
    );
  }
  const network = chain.finish(options.labels, 'imported');
  return {
    network,
    opset,
    producer: `${model.producerName ?? ''} ${model.producerVersion ?? ''}`.trim() || 'unknown',
    nodes: nodes.length,
    bytes: embedExternalData(model, external) ? encodeOnnxModel(model, path) : bytes,
    inputName,
    outputName: outputs[0].name ?? '',
    inputDims: dims.map((d) => (typeof d === 'number' ? d : -1)),
  };
}

/** The cmp input of a model with input dims `dims` (without the batch dim). */
function chainInput(
  path: string,
  dims: (number | string)[],
  options: ImportInputOptions,
): { shape: [number, number, number]; flat: boolean } {
  const known = dims.every((d) => typeof d === 'number' && d > 0);
  const given = options.inputShape;
  const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);
  if (dims.length === 3 && known) {
    const shape = dims as [number, number, number];
    if (given && given.join() !== shape.join())
      throw new CmpError(
        'BAD_FLAG',
        `--input-shape ${given.join(',')} does not match ${path}'s input [${shape.join(', ')}]. Drop --input-shape.`,
      );
    return { shape, flat: false };
  }
  if (dims.length === 1 && known) {
    const features = dims[0] as number;
    if (given && size(given) !== features)
      throw new CmpError(
        'BAD_FLAG',
        `--input-shape ${given.join(',')} has ${size(given)} values but ${path} takes ${features}. Give C,H,W with C*H*W = ${features}.`,
      );
    return { shape: given ?? [features, 1, 1], flat: true };
  }
  if (given && dims.length === 3) return { shape: given, flat: false };
  throw new CmpError(
    'MODEL_INVALID',
    `${path} takes an input of dims [batch, ${dims.join(', ')}]; cmp imports [batch, C, H, W] or [batch, features] inputs${dims.length === 3 ? ' (give open dims with --input-shape C,H,W)' : ''}. Export the model with a fixed input size.`,
  );
}

/** The nodes the graph output depends on, in graph (topological) order. */
function reachableNodes(nodes: OnnxNode[], output: string): OnnxNode[] {
  const producer = new Map<string, OnnxNode>();
  for (const n of nodes) for (const o of n.output ?? []) producer.set(o, n);
  const needed = new Set<OnnxNode>();
  const stack = [output];
  while (stack.length) {
    const n = producer.get(stack.pop() as string);
    if (!n || needed.has(n)) continue;
    needed.add(n);
    stack.push(...(n.input ?? []).filter(Boolean));
  }
  return nodes.filter((n) => needed.has(n));
}

function nodeName(n: OnnxNode): string {
  return n.name || (n.output ?? [])[0] || '?';
}

/**
 * Lists every op cmp cannot import, and every attribute it cannot represent, in one error: a user sees all there is
 * to change at once.
 */
function checkOps(path: string, nodes: OnnxNode[], opset: number): void {
  const plain = new Map<string, string[]>();
  const detailed: string[] = [];
  for (const n of nodes) {
    const domain = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.` : '';
    const op = `${domain}${n.opType ?? '?'}`;
    if (domain || !ONNX_IMPORT_OPS.includes(n.opType ?? '')) {
      plain.set(op, [...(plain.get(op) ?? []), nodeName(n)]);
      continue;
    }
    const problem = attributeProblem(n, opset);
    if (problem) detailed.push(`${op} (node "${nodeName(n)}": ${problem})`);
  }
  const listed = [
    ...[...plain].map(
      ([op, names]) => `${op} (${names.length > 1 ? 'nodes' : 'node'} ${names.map((x) => `"${x}"`).join(', ')})`,
    ),
    ...detailed,
  ];
  if (listed.length === 0) return;
  throw new CmpError(
    'MODEL_INVALID',
    `${path} has ops cmp cannot import: ${listed.join(', ')}. cmp imports ${ONNX_IMPORT_OPS.join(', ')} (convolutions: square kernel, stride 1, no dilation or groups, equal padding; pooling: square, stride = window, no padding); re-export the model without the others.`,
  );
}

/** What an op's attributes ask that cmp cannot represent, judged on the node alone; undefined when nothing. */
function attributeProblem(n: OnnxNode, opset: number): string | undefined {
  const ones = (v: number[] | undefined): boolean => !v || v.every((x) => x === 1);
  switch (n.opType) {
    case 'Conv': {
      const group = intAttribute(n, 'group', 1);
      if (group !== 1) return `group ${group}`;
      if (!ones(intsAttribute(n, 'strides'))) return `strides ${intsAttribute(n, 'strides')?.join('x')}`;
      if (!ones(intsAttribute(n, 'dilations'))) return `dilations ${intsAttribute(n, 'dilations')?.join('x')}`;
      const kernel = intsAttribute(n, 'kernel_shape');
      if (kernel && (kernel.length !== 2 || kernel[0] !== kernel[1])) return `kernel ${kernel.join('x')}`;
      const pads = intsAttribute(n, 'pads');
      if (pads && pads.some((p) => p !== pads[0])) return `pads ${pads.join(',')}`;
      const autoPad = stringAttribute(n, 'auto_pad', 'NOTSET');
      if (autoPad.startsWith('SAME') && kernel && kernel[0] % 2 === 0) return `auto_pad ${autoPad} with an even kernel`;
      return undefined;
    }
    case 'MaxPool':
    case 'AveragePool': {
      const kernel = intsAttribute(n, 'kernel_shape') ?? [];
      if (kernel.length !== 2 || kernel[0] !== kernel[1]) return `kernel ${kernel.join('x')}`;
      const strides = intsAttribute(n, 'strides') ?? [1, 1];
      if (kernel[0] !== 1 && strides.some((s) => s !== kernel[0])) return `strides ${strides.join('x')}`;
      const pads = intsAttribute(n, 'pads');
      if (pads?.some((p) => p !== 0)) return `pads ${pads.join(',')}`;
      if (!ones(intsAttribute(n, 'dilations'))) return `dilations ${intsAttribute(n, 'dilations')?.join('x')}`;
      const autoPad = stringAttribute(n, 'auto_pad', 'NOTSET');
      if (autoPad.startsWith('SAME') && kernel[0] !== 1) return `auto_pad ${autoPad}`;
      return undefined;
    }
    case 'Gemm':
      return intAttribute(n, 'transA', 0) ? 'transA 1' : undefined;
    case 'BatchNormalization':
      if (opset < 9 && intAttribute(n, 'spatial', 1) === 0) return 'spatial 0';
      return intAttribute(n, 'training_mode', 0) ? 'training_mode 1' : undefined;
    default:
      return undefined;
  }
}

/** What importing a node works on. */
interface Context {
  chain: ChainBuilder;
  values: Map<string, Value>;
  opset: number;
  external: ExternalData;
}

/** Imports one node: folds it when its inputs are constants, else applies it to the chain. */
function importNode(context: Context, n: OnnxNode): void {
  // Typed explicitly: TypeScript narrows after chain.fail (which never returns) only through annotated names.
  const chain: ChainBuilder = context.chain;
  const { values, opset, external } = context;
  const at: SourceOp = { op: n.opType ?? '?', node: nodeName(n) };
  const ins = (n.input ?? []).map((name) => {
    if (!name) return undefined;
    const v = values.get(name);
    if (!v) chain.fail(at, `reads "${name}", which no node before it makes`);
    return v;
  });
  const out = (n.output ?? [])[0] ?? '';
  const constant = (i: number): Constant | undefined => {
    const v = ins[i];
    if (v && v.kind !== 'const') chain.fail(at, `takes an activation as input ${i + 1}, where cmp needs a constant`);
    return v?.value;
  };
  const setAct = (): void => {
    values.set(out, { kind: 'act', version: chain.version, shape: [...chain.shape], flat: chain.flat });
  };

  if (n.opType === 'Constant') {
    values.set(out, { kind: 'const', value: constantNode(chain, at, n, external) });
    return;
  }
  if (n.opType === 'Shape') {
    const v = ins[0];
    if (!v) chain.fail(at, 'has no input');
    const full = v.kind === 'const' ? v.value.dims : [BATCH, ...(v.flat ? [v.shape[0]] : v.shape)];
    const rank = full.length;
    const clamp = (x: number): number => Math.min(Math.max(x < 0 ? x + rank : x, 0), rank);
    const start = clamp(intAttribute(n, 'start', 0));
    const end = clamp(intAttribute(n, 'end', rank));
    values.set(out, { kind: 'const', value: vector(full.slice(start, end)) });
    return;
  }
  if (ins.every((v) => !v || v.kind === 'const')) {
    const folded = foldConstants(
      n,
      ins.map((v) => (v?.kind === 'const' ? v.value : undefined)),
      opset,
    );
    if (!folded) chain.fail(at, 'computes on constants in a way cmp does not fold');
    values.set(out, { kind: 'const', value: folded });
    return;
  }

  const acts = ins.filter((v) => v?.kind === 'act');
  if (acts.length > 1) {
    chain.fail(at, 'combines two activations (a branch or skip connection); cmp imports single-path networks');
  }
  const act = acts[0];
  if (act.version !== chain.version) {
    chain.fail(at, 'reads an earlier activation (a branch); cmp imports single-path networks');
  }
  if (ins[0]?.kind !== 'act' && !['Add', 'Sub', 'Mul', 'Div'].includes(n.opType ?? '')) {
    chain.fail(at, 'takes the activation as a later input; cmp needs it first');
  }
  const rank = act.flat ? 2 : 4;
  switch (n.opType) {
    case 'Identity':
    case 'Dropout':
      if (n.opType === 'Dropout' && opset >= 12 && constant(2)?.values[0]) chain.fail(at, 'is in training mode');
      values.set(out, act);
      return;
    case 'Cast':
      if (intAttribute(n, 'to', 1) !== 1) chain.fail(at, 'casts the activation to another type than float');
      values.set(out, act);
      return;
    case 'Conv':
      conv(chain, at, n, constant(1), constant(2));
      break;
    case 'Gemm':
      gemm(chain, at, n, constant(1), constant(2));
      break;
    case 'MatMul': {
      const b = constant(1);
      if (!b || b.dims.length !== 2) chain.fail(at, 'multiplies by a constant that is not a matrix');
      chain.dense(at, Float32Array.from(b.values), b.dims[1]);
      break;
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div': {
      const first = ins[0]?.kind === 'act';
      const c = channelVector(chain, at, constant(first ? 1 : 0), rank);
      if (n.opType === 'Div' && !first) chain.fail(at, 'divides a constant by the activation');
      // As y = x * scale + shift.
      const affine: Record<string, [number[] | undefined, number[] | undefined]> = {
        Add: [undefined, c],
        Mul: [c, undefined],
        Sub: first ? [undefined, c.map((v) => -v)] : [[-1], c],
        Div: [c.map((v) => 1 / v), undefined],
      };
      chain.affine(at, ...affine[n.opType ?? 'Add']);
      break;
    }
    case 'BatchNormalization': {
      // One value per channel each (not broadcast like the operands of Add or Mul).
      const [scale, bias, mean, variance] = [1, 2, 3, 4].map((i) => [...(constant(i)?.values ?? [])]);
      const epsilon = floatAttribute(n, 'epsilon', 1e-5);
      const s = scale.map((g, c) => g / Math.sqrt(variance[c] + epsilon));
      chain.affine(
        at,
        s,
        bias.map((b, c) => b - mean[c] * s[c]),
      );
      break;
    }
    case 'Relu':
      chain.relu(at);
      break;
    case 'Clip': {
      const min = opset < 11 ? floatAttribute(n, 'min', -Infinity) : (constant(1)?.values[0] ?? -Infinity);
      const max = opset < 11 ? floatAttribute(n, 'max', Infinity) : (constant(2)?.values[0] ?? Infinity);
      if (min !== 0 || max !== Infinity)
        chain.fail(at, `clips to [${min}, ${max}]; cmp has ReLU (a clip to [0, inf)) only`);
      chain.relu(at);
      break;
    }
    case 'MaxPool':
    case 'AveragePool': {
      const size = (intsAttribute(n, 'kernel_shape') ?? [1])[0];
      const [, h, w] = chain.shape;
      if (intAttribute(n, 'ceil_mode', 0) && (h % size !== 0 || w % size !== 0))
        chain.fail(at, `rounds a ${h}x${w} pooling by ${size} up (ceil_mode 1); cmp pools rounding down`);
      chain.pool(at, n.opType === 'MaxPool' ? 'max' : 'avg', size);
      break;
    }
    case 'GlobalAveragePool':
    case 'GlobalMaxPool': {
      const [, h, w] = chain.shape;
      if (h !== w) chain.fail(at, `pools a ${h}x${w} activation; cmp pools square windows`);
      chain.pool(at, n.opType === 'GlobalMaxPool' ? 'max' : 'avg', h);
      break;
    }
    case 'Flatten': {
      const axis = intAttribute(n, 'axis', 1);
      if ((axis < 0 ? axis + rank : axis) !== 1) chain.fail(at, `flattens from axis ${axis}; cmp flattens from axis 1`);
      chain.flatten(at);
      break;
    }
    case 'Squeeze':
    case 'Reshape': {
      reshape(chain, at, n, act, opset < 5 || n.opType === 'Squeeze' ? undefined : constant(1), opset);
      break;
    }
    case 'Softmax':
    case 'LogSoftmax': {
      const axis = intAttribute(n, 'axis', opset < 13 ? 1 : -1);
      if (!act.flat || (axis !== 1 && axis !== -1)) chain.fail(at, 'is not over the classes of a flat output');
      chain.end(at, n.opType === 'Softmax' ? 'softmax' : 'logSoftmax');
      break;
    }
    default:
      chain.fail(at, 'takes an activation, which cmp cannot import for this op');
  }
  setAct();
}

/** A Constant node's value, from any of its attribute forms. */
function constantNode(chain: ChainBuilder, at: SourceOp, n: OnnxNode, external: ExternalData): Constant {
  const a = (n.attribute ?? [])[0];
  if (!a) chain.fail(at, 'has no value');
  if (a.name === 'value' && a.t) return readTensor(a.t, external, at.node);
  if (a.name === 'value_float') return vector([a.f ?? 0], []);
  if (a.name === 'value_floats') return vector(a.floats ?? []);
  if (a.name === 'value_int') return vector([toNumber(a.i)], []);
  if (a.name === 'value_ints') return vector((a.ints ?? []).map(toNumber));
  return chain.fail(at, `has a ${a.name} value, which cmp cannot import`);
}

/** A per-channel constant of an activation of `rank` (1 value or one per channel), as a plain list. */
function channelVector(chain: ChainBuilder, at: SourceOp, c: Constant | undefined, rank: number): number[] {
  if (!c) return chain.fail(at, 'lacks a constant input');
  // Broadcast against [N, C, H, W] (or [N, F]): only the channel axis may have more than one value.
  const dims = [...Array<number>(Math.max(0, rank - c.dims.length)).fill(1), ...c.dims];
  const channelAxis = 1;
  if (dims.length > rank || dims.some((d, i) => i !== channelAxis && d !== 1)) {
    return chain.fail(at, `has a constant of dims [${c.dims.join(', ')}]; cmp folds per-channel constants only`);
  }
  return [...c.values];
}

function conv(chain: ChainBuilder, at: SourceOp, n: OnnxNode, w: Constant | undefined, b: Constant | undefined): void {
  if (!w || w.dims.length !== 4) return chain.fail(at, 'has no 4-D constant weight');
  const [filters, , kh, kw] = w.dims;
  if (kh !== kw) chain.fail(at, `has a ${kh}x${kw} kernel; cmp convolves with square kernels`);
  const autoPad = stringAttribute(n, 'auto_pad', 'NOTSET');
  const padding =
    autoPad === 'SAME_UPPER' || autoPad === 'SAME_LOWER'
      ? (kh - 1) / 2
      : autoPad === 'VALID'
        ? 0
        : (intsAttribute(n, 'pads') ?? [0])[0];
  chain.conv(at, Float32Array.from(w.values), filters, kh, padding, b ? Float32Array.from(b.values) : undefined);
}

function gemm(chain: ChainBuilder, at: SourceOp, n: OnnxNode, b: Constant | undefined, c: Constant | undefined): void {
  if (!b || b.dims.length !== 2) return chain.fail(at, 'has no constant weight matrix');
  const alpha = floatAttribute(n, 'alpha', 1);
  const beta = floatAttribute(n, 'beta', 1);
  const transB = intAttribute(n, 'transB', 0) === 1;
  const [inputs, units] = transB ? [b.dims[1], b.dims[0]] : b.dims;
  const weight = new Float32Array(inputs * units);
  for (let i = 0; i < inputs; i++)
    for (let o = 0; o < units; o++) weight[i * units + o] = alpha * b.values[transB ? o * inputs + i : i * units + o];
  let bias: Float32Array | undefined;
  if (c) {
    if (c.values.length !== 1 && c.values.length !== units) chain.fail(at, `adds a bias of ${c.values.length} values`);
    bias = Float32Array.from({ length: units }, (_, o) => beta * c.values[c.values.length === 1 ? 0 : o]);
  }
  chain.dense(at, weight, units, bias);
}

/** Reshape or Squeeze of the activation: a flatten, or no change; anything else cmp cannot hold. */
function reshape(
  chain: ChainBuilder,
  at: SourceOp,
  n: OnnxNode,
  act: Extract<Value, { kind: 'act' }>,
  target: Constant | undefined,
  opset: number,
): void {
  const current = act.flat ? [act.shape[0]] : [...act.shape];
  const features = current.reduce((a, b) => a * b, 1);
  let dims: number[];
  if (n.opType === 'Squeeze') {
    // Squeezing [N, C, 1, 1] to [N, C] (after a global pooling) is a flatten.
    dims = current.filter((d) => d !== 1);
    if (dims.length === 0) dims = [1];
  } else {
    const shape = target ? [...target.values] : (intsAttribute(n, 'shape') ?? []);
    if (opset >= 14 && intAttribute(n, 'allowzero', 0) && shape.includes(0)) chain.fail(at, 'reshapes with allowzero');
    // The first dim is the batch: the batch size itself (NaN from Shape), 0 (copy), -1 (infer) or a fixed size.
    const rest = shape.slice(1).map((d, i) => (d === 0 ? (current[i] ?? 1) : d));
    const known = rest.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    dims = rest.map((d) => (d === -1 ? features / known : d));
    if (Number.isNaN(known) || rest.filter((d) => d === -1).length > 1)
      chain.fail(at, `reshapes to [${shape.join(', ')}], which cmp cannot resolve`);
  }
  if (dims.length === 1 && dims[0] === features) chain.flatten(at);
  else if (dims.join() !== current.join())
    chain.fail(at, `reshapes [${current.join(', ')}] to [${dims.join(', ')}]; cmp reshapes only to flatten`);
}
