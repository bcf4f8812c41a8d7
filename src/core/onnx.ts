// The ONNX protobuf adapter: the only file that imports onnx-proto; builds graphs and reads files of any producer.

import onnxProto, { type onnx as OnnxNs } from 'onnx-proto';
import { CmpError } from '../errors.js';

// onnx-proto is CommonJS: its default import is module.exports, which bundlers (esbuild) and browsers can follow.
const { onnx } = onnxProto as { onnx: typeof OnnxNs };

export type OnnxModel = OnnxNs.ModelProto;
export type OnnxNode = OnnxNs.INodeProto;
export type OnnxTensor = OnnxNs.ITensorProto;
export type OnnxAttribute = OnnxNs.IAttributeProto;
export type OnnxValueInfo = OnnxNs.IValueInfoProto;

/** ONNX tensor element types cmp writes. */
export const ONNX_TYPE = Object.freeze({ float: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10 } as const);
const TYPE_NAMES: Readonly<Record<number, string>> = Object.freeze({
  1: 'float32',
  2: 'uint8',
  3: 'int8',
  4: 'uint16',
  5: 'int16',
  6: 'int32',
  7: 'int64',
  8: 'string',
  9: 'bool',
  10: 'float16',
  11: 'float64',
  12: 'uint32',
  13: 'uint64',
  16: 'bfloat16',
  17: 'float8e4m3fn',
  21: 'uint4',
  22: 'int4',
});

/** Name of an ONNX element type number, e.g. 1 -> 'float32'. */
export function onnxTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `type${type}`;
}

/** Bytes per element of an ONNX type (fractions for sub-byte types). */
export function onnxTypeBytes(type: number): number {
  return (
    (
      {
        1: 4,
        2: 1,
        3: 1,
        4: 2,
        5: 2,
        6: 4,
        7: 8,
        9: 1,
        10: 2,
        11: 8,
        12: 4,
        13: 8,
        16: 2,
        17: 1,
        21: 0.5,
        22: 0.5,
      } as Record<number, number>
    )[type] ?? 0
  );
}

/** An initializer from raw little-endian bytes. */
export function tensor(name: string, type: number, dims: number[], bytes: Uint8Array): OnnxTensor {
  return { name, dataType: type, dims, rawData: bytes };
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): OnnxTensor {
  return tensor(name, ONNX_TYPE.float, dims, new Uint8Array(Float32Array.from(values).buffer));
}

export function int64Tensor(name: string, dims: number[], values: number[]): OnnxTensor {
  return tensor(name, ONNX_TYPE.int64, dims, new Uint8Array(BigInt64Array.from(values.map(BigInt)).buffer));
}

/** A subgraph (If branches): nodes and outputs; it may read any value of the enclosing graph. */
export interface OnnxSubgraph {
  name: string;
  node: OnnxNode[];
  output: OnnxValueInfo[];
}

export type AttributeValue = number | number[] | string | OnnxSubgraph;

/** A node; attribute values are ints, int lists, floats, strings or subgraphs. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  attributes: Record<string, AttributeValue> = {},
  name = outputs[0],
): OnnxNode {
  const attribute = Object.entries(attributes).map(([key, value]): OnnxAttribute => {
    if (typeof value === 'object' && !Array.isArray(value)) {
      return { name: key, type: onnx.AttributeProto.AttributeType.GRAPH, g: value };
    }
    if (Array.isArray(value)) return { name: key, type: onnx.AttributeProto.AttributeType.INTS, ints: value };
    if (typeof value === 'string') {
      return { name: key, type: onnx.AttributeProto.AttributeType.STRING, s: new TextEncoder().encode(value) };
    }
    if (Number.isInteger(value)) return { name: key, type: onnx.AttributeProto.AttributeType.INT, i: value };
    return { name: key, type: onnx.AttributeProto.AttributeType.FLOAT, f: value };
  });
  return { opType, input: inputs, output: outputs, attribute, name };
}

/** An INT attribute holding a scalar int64 tensor (Constant's `value`). */
export function int64Attribute(name: string, value: number): OnnxAttribute {
  return { name, type: onnx.AttributeProto.AttributeType.TENSOR, t: int64Tensor('', [], [value]) };
}

/** A float tensor graph input or output; string dims are symbolic (e.g. 'batch'). */
export function valueInfo(name: string, dims: (number | string)[], type: number = ONNX_TYPE.float): OnnxValueInfo {
  return {
    name,
    type: {
      tensorType: {
        elemType: type,
        shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) },
      },
    },
  };
}

export interface GraphParts {
  name: string;
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
  /** Graph inputs; one with an initializer of the same name is optional, the initializer its default. */
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
  opset: number;
  producerVersion: string;
  metadata: Record<string, string>;
}

/** Serialises a model (IR version 8, default domain at `opset`). */
export function encodeModel(parts: GraphParts): Uint8Array {
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'cmp',
    producerVersion: parts.producerVersion,
    opsetImport: [{ domain: '', version: parts.opset }],
    graph: {
      name: parts.name,
      node: parts.nodes,
      initializer: parts.initializers,
      input: parts.inputs,
      output: parts.outputs,
    },
    metadataProps: Object.entries(parts.metadata).map(([key, value]) => ({ key, value })),
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Serialises a decoded (possibly edited) model back to bytes. */
export function encodeOnnxModel(model: OnnxModel, source: string): Uint8Array {
  try {
    return onnx.ModelProto.encode(model).finish();
  } catch (err) {
    throw new CmpError('MODEL_INVALID', `Cannot re-encode ${source} (${firstLine(err)}). Pass a valid .onnx model.`, {
      cause: err,
    });
  }
}

/** Parses ONNX bytes; anything that is not a model with a graph is one MODEL_INVALID line naming `source`. */
export function decodeModel(bytes: Uint8Array, source: string): OnnxModel {
  let model: OnnxModel;
  try {
    model = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new CmpError(
      'MODEL_INVALID',
      `${source} is not a readable ONNX file (${firstLine(err)}). Pass a valid .onnx model (re-export it if cmp made it).`,
      {
        cause: err,
      },
    );
  }
  if (!model.graph || !model.irVersion || (model.graph.node ?? []).length === 0) {
    throw new CmpError('MODEL_INVALID', `${source} is not an ONNX model (no graph found). Pass a .onnx model file.`);
  }
  return model;
}

/** A protobuf int64 (number or Long) as a number. */
export function toNumber(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}

/** Element count of a stored tensor and its size in bytes (raw, typed fields or external data). */
export function tensorBytes(t: OnnxTensor): { count: number; bytes: number; external: boolean } {
  const count = (t.dims ?? []).reduce((a: number, d) => a * toNumber(d), 1);
  const external = Number(t.dataLocation) === 1; // DataLocation.EXTERNAL
  const bytes = t.rawData && t.rawData.length ? t.rawData.length : Math.ceil(count * onnxTypeBytes(t.dataType ?? 0));
  return { count, bytes, external };
}

/** Static dims of a value info; symbolic or unknown dims are returned as their name or -1. */
export function valueDims(info: OnnxValueInfo): (number | string)[] {
  return (info.type?.tensorType?.shape?.dim ?? []).map((d) =>
    d.dimParam ? d.dimParam : d.dimValue != null ? toNumber(d.dimValue) : -1,
  );
}

function firstLine(err: unknown): string {
  return String((err as Error).message ?? err).split('\n')[0];
}
