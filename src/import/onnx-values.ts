// Values of a foreign ONNX graph: stored tensors (embedded or external data) as numbers, attributes, and the folding
// of shape-only subgraphs (Shape, Gather, Concat, Reshape ... of constants) that exporters emit around a flatten.

import { fromFloat16Bits } from '../core/float16.js';
import {
  onnxTypeBytes,
  onnxTypeName,
  toNumber,
  type OnnxAttribute,
  type OnnxNode,
  type OnnxTensor,
} from '../core/onnx.js';
import { CmpError } from '../errors.js';
import { isExternal, type ExternalData } from '../runtime/external-data.js';
import { vector, type Constant } from './chain.js';

/** A stored tensor's values as numbers; external data is read through `external`. */
export function readTensor(t: OnnxTensor, external: ExternalData, source: string): Constant {
  const dims = (t.dims ?? []).map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  const type = t.dataType ?? 0;
  const name = t.name ?? '';
  let raw: Uint8Array | undefined;
  if (isExternal(t)) raw = external.readTensor(t);
  else if (t.rawData && t.rawData.length) raw = t.rawData;
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `${source}: tensor "${name}" ${problem}. Re-export the model.`);
  // Dims are checked against the data before anything is allocated: [1e9, 1e9] or [-1] must not reach an array.
  if (!dims.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`has dims [${dims.join(', ')}]`);
  if (raw) {
    const size = elementBytes(type);
    if (!size) throw bad(`is of type ${onnxTypeName(type)}, which cmp cannot import`);
    if (raw.length !== count * size) throw bad(`has ${raw.length} bytes for ${count} ${onnxTypeName(type)} values`);
    const values = new Float64Array(count);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    for (let i = 0; i < count; i++) values[i] = readElement(view, type, i * size);
    return { dims, values };
  }
  const typed: ArrayLike<unknown> =
    type === TYPE.float
      ? (t.floatData ?? [])
      : type === TYPE.double
        ? (t.doubleData ?? [])
        : type === TYPE.int64
          ? (t.int64Data ?? [])
          : type === TYPE.uint32 || type === TYPE.uint64
            ? (t.uint64Data ?? [])
            : (t.int32Data ?? []);
  if (!elementBytes(type)) throw bad(`is of type ${onnxTypeName(type)}, which cmp cannot import`);
  if (typed.length !== count) throw bad(`has ${typed.length} values for its ${count} elements`);
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const v = toNumber(typed[i]);
    // float16 and bfloat16 values travel as their bits in int32_data.
    values[i] = type === TYPE.float16 ? fromFloat16Bits(v) : type === TYPE.bfloat16 ? bfloat16(v) : v;
  }
  return { dims, values };
}

const TYPE = Object.freeze({
  float: 1,
  uint8: 2,
  int8: 3,
  uint16: 4,
  int16: 5,
  int32: 6,
  int64: 7,
  bool: 9,
  float16: 10,
  double: 11,
  uint32: 12,
  uint64: 13,
  bfloat16: 16,
} as const);

/** The element types whose values cmp reads (readElement): whole bytes per element; onnxTypeBytes gives the size. */
const READABLE_TYPES: ReadonlySet<number> = new Set([1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 16]);

/** Bytes per element of a type cmp reads, or 0 for one it does not. */
function elementBytes(type: number): number {
  return READABLE_TYPES.has(type) ? onnxTypeBytes(type) : 0;
}

function readElement(view: DataView, type: number, at: number): number {
  switch (type) {
    case TYPE.float:
      return view.getFloat32(at, true);
    case TYPE.double:
      return view.getFloat64(at, true);
    case TYPE.float16:
      return fromFloat16Bits(view.getUint16(at, true));
    case TYPE.bfloat16:
      return bfloat16(view.getUint16(at, true));
    case TYPE.int64:
      return Number(view.getBigInt64(at, true));
    case TYPE.uint64:
      return Number(view.getBigUint64(at, true));
    case TYPE.int32:
      return view.getInt32(at, true);
    case TYPE.uint32:
      return view.getUint32(at, true);
    case TYPE.int16:
      return view.getInt16(at, true);
    case TYPE.uint16:
      return view.getUint16(at, true);
    case TYPE.int8:
      return view.getInt8(at);
    default:
      return view.getUint8(at);
  }
}

function bfloat16(bits: number): number {
  return new Float32Array(new Uint32Array([(bits & 0xffff) << 16]).buffer)[0];
}

/** A node's attribute by name. */
export function attribute(node: OnnxNode, name: string): OnnxAttribute | undefined {
  return (node.attribute ?? []).find((a) => a.name === name);
}

/** An INT attribute as a number, or `fallback` when the node lacks it. */
export function intAttribute(node: OnnxNode, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? toNumber(a.i) : fallback;
}

/** An INTS attribute as numbers, or undefined when the node lacks it. */
export function intsAttribute(node: OnnxNode, name: string): number[] | undefined {
  const a = attribute(node, name);
  return a ? (a.ints ?? []).map(toNumber) : undefined;
}

/** A FLOAT attribute, or `fallback` when the node lacks it. */
export function floatAttribute(node: OnnxNode, name: string, fallback: number): number {
  const a = attribute(node, name);
  return a ? (a.f ?? fallback) : fallback;
}

/** A STRING attribute (UTF-8), or `fallback` when the node lacks it. */
export function stringAttribute(node: OnnxNode, name: string, fallback: string): string {
  const a = attribute(node, name);
  return a?.s ? new TextDecoder().decode(a.s) : fallback;
}

/**
 * Folds an op whose inputs are all constants, or returns undefined when `op` is not one cmp folds. Covers what
 * exporters put in shape subgraphs: elementwise arithmetic (numpy broadcasting), Cast, Concat, Gather, Slice,
 * Squeeze, Unsqueeze, Reshape and Identity, in the attribute or input forms of every opset from 7 to 21.
 */
export function foldConstants(node: OnnxNode, inputs: (Constant | undefined)[], opset: number): Constant | undefined {
  const [a, b] = inputs;
  if (!a) return undefined;
  switch (node.opType) {
    case 'Identity':
    case 'Dropout':
      return a;
    case 'Cast': {
      const to = intAttribute(node, 'to', TYPE.float);
      const float = to === TYPE.float || to === TYPE.double || to === TYPE.float16 || to === TYPE.bfloat16;
      return { dims: a.dims, values: float ? a.values : a.values.map((v) => (Number.isNaN(v) ? v : Math.trunc(v))) };
    }
    case 'Add':
    case 'Sub':
    case 'Mul':
    case 'Div':
      return b ? elementwise(node.opType, a, b) : undefined;
    case 'Concat': {
      const parts = inputs.filter((c): c is Constant => c !== undefined);
      if (parts.some((p) => p.dims.length !== 1)) return undefined;
      const values = parts.flatMap((p) => [...p.values]);
      return vector(values);
    }
    case 'Gather': {
      if (!b || a.dims.length !== 1 || intAttribute(node, 'axis', 0) !== 0) return undefined;
      const n = a.values.length;
      const values = [...b.values].map((i) => a.values[i < 0 ? i + n : i]);
      return { dims: b.dims, values: Float64Array.from(values) };
    }
    case 'Slice': {
      if (a.dims.length !== 1) return undefined;
      const starts = opset < 10 ? (intsAttribute(node, 'starts') ?? []) : [...(b?.values ?? [])];
      const ends = opset < 10 ? (intsAttribute(node, 'ends') ?? []) : [...(inputs[2]?.values ?? [])];
      const steps = opset < 10 ? [1] : [...(inputs[4]?.values ?? [1])];
      if (starts.length !== 1 || ends.length !== 1 || steps[0] !== 1) return undefined;
      const n = a.values.length;
      const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
      return vector([...a.values.subarray(clamp(starts[0]), clamp(ends[0]))]);
    }
    case 'Unsqueeze':
    case 'Squeeze': {
      const axes = opset < 13 ? intsAttribute(node, 'axes') : b ? [...b.values] : undefined;
      let dims: number[];
      if (node.opType === 'Squeeze') {
        const rank = a.dims.length;
        const drop = new Set(
          (axes ?? a.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((x) => (x < 0 ? x + rank : x)),
        );
        dims = a.dims.filter((_, i) => !drop.has(i));
      } else {
        const rank = a.dims.length + (axes?.length ?? 0);
        const add = new Set((axes ?? []).map((x) => (x < 0 ? x + rank : x)));
        dims = [];
        for (let i = 0, k = 0; i < rank; i++) dims.push(add.has(i) ? 1 : a.dims[k++]);
      }
      return { dims, values: a.values };
    }
    case 'Reshape': {
      const shape = opset < 5 ? intsAttribute(node, 'shape') : b ? [...b.values] : undefined;
      if (!shape) return undefined;
      const count = a.values.length;
      const known = shape.reduce((p, d, i) => p * (d === -1 ? 1 : d === 0 ? a.dims[i] : d), 1);
      return { dims: shape.map((d, i) => (d === -1 ? count / known : d === 0 ? a.dims[i] : d)), values: a.values };
    }
    default:
      return undefined;
  }
}

/** Elementwise arithmetic with numpy broadcasting. */
function elementwise(op: string, a: Constant, b: Constant): Constant {
  const rank = Math.max(a.dims.length, b.dims.length);
  const pad = (d: number[]): number[] => [...Array<number>(rank - d.length).fill(1), ...d];
  const da = pad(a.dims);
  const db = pad(b.dims);
  const dims = da.map((d, i) => Math.max(d, db[i]));
  const count = dims.reduce((x, y) => x * y, 1);
  const values = new Float64Array(count);
  const index = (d: number[], flat: number): number => {
    let at = 0;
    let rest = flat;
    let stride = 1;
    for (let i = rank - 1; i >= 0; i--) {
      const coordinate = rest % dims[i];
      rest = Math.floor(rest / dims[i]);
      at += (d[i] === 1 ? 0 : coordinate) * stride;
      stride *= d[i];
    }
    return at;
  };
  for (let i = 0; i < count; i++) {
    const x = a.values[index(da, i)];
    const y = b.values[index(db, i)];
    values[i] = op === 'Add' ? x + y : op === 'Sub' ? x - y : op === 'Mul' ? x * y : x / y;
  }
  return { dims, values };
}
