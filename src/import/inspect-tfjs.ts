// What a TF.js model holds (layers or graph model): its layers or ops, shapes, parameters and stored bytes, and
// whether cmp import takes it, for `cmp inspect model.json`.

import type * as tfTypes from '@tensorflow/tfjs';
import { loadTf } from '../compress/tf.js';
import { isCmpError } from '../errors.js';
import { importTfjs, loadLayersModel, readTfjsFiles, type TfjsFiles } from './import-tfjs.js';

/** One layer of a layers model. */
export interface TfjsLayerReport {
  name: string;
  className: string;
  /** Batch first, as TF.js gives it (NHWC for images); null where open. */
  outputShape: (number | null)[];
  /** The layer's activation, when it has one other than linear. */
  activation?: string;
  params: number;
  /** Bytes its weights take in the weight files. */
  bytes: number;
}

export interface TfjsReport {
  path: string;
  format: 'layers-model' | 'graph-model';
  producer: string;
  /** Bytes of model.json. */
  fileBytes: number;
  weightFiles: { path: string; bytes: number }[];
  /** Batch first, as TF.js gives them (NHWC for images); null where open. */
  inputs: { name: string; dims: (number | null)[] }[];
  outputs: { name: string; dims: (number | null)[] }[];
  /** Layers models: every layer in order. */
  layers?: TfjsLayerReport[];
  /** Graph models: node count per op. */
  ops?: Record<string, number>;
  /** Stored tensors as the weights manifest lists them (dtype: the stored one, after any quantization). */
  weights: { name: string; dtype: string; dims: number[]; bytes: number }[];
  params: number;
  weightBytes: number;
  /** True when cmp import takes the model as it is, else the one-line reason it does not. */
  importable: true | string;
}

/** Bytes per stored value of each TF.js dtype (quantized weights are stored as their quantization dtype). */
const DTYPE_BYTES: Readonly<Record<string, number>> = Object.freeze({
  float32: 4,
  int32: 4,
  bool: 1,
  complex64: 8,
  float16: 2,
  uint16: 2,
  uint8: 1,
});

/** Describes the TF.js model whose model.json is at `path`; a model TF.js cannot read is one MODEL_INVALID line. */
export async function inspectTfjs(path: string): Promise<TfjsReport> {
  const files = readTfjsFiles(path);
  const weights = files.weightSpecs.map((w) => {
    const dims = [...w.shape];
    const dtype = w.quantization?.dtype ?? w.dtype;
    const count = dims.reduce((a, b) => a * b, 1);
    return { name: w.name, dtype, dims, bytes: count * (DTYPE_BYTES[dtype] ?? 4), count };
  });
  const topology = files.json.modelTopology as { node?: GraphNode[] };
  const graph = files.json.format === 'graph-model' || Array.isArray(topology.node);
  const described = graph ? describeGraph(files) : await describeLayers(path, files, weights);
  let importable: true | string = true;
  try {
    (await importTfjs(path, { mean: 0, std: 1 })).dispose();
  } catch (err) {
    if (!isCmpError(err)) throw err;
    importable = err.message;
  }
  return {
    path,
    format: graph ? 'graph-model' : 'layers-model',
    producer: [files.json.generatedBy, files.json.convertedBy].filter(Boolean).join(', ') || 'unknown',
    fileBytes: files.jsonBytes,
    weightFiles: files.weightFiles,
    ...described,
    weights: weights.map(({ name, dtype, dims, bytes }) => ({ name, dtype, dims, bytes })),
    params: weights.reduce((a, w) => a + w.count, 0),
    weightBytes: weights.reduce((a, w) => a + w.bytes, 0),
    importable,
  };
}

type Described = Pick<TfjsReport, 'inputs' | 'outputs' | 'layers' | 'ops'>;

/** A layers model through tfjs-layers: each layer's class, output shape, activation, parameters and bytes. */
async function describeLayers(
  path: string,
  files: TfjsFiles,
  weights: { name: string; bytes: number }[],
): Promise<Described> {
  const { tf } = await loadTf();
  const model = await loadLayersModel(tf, path, files);
  const stored = new Map(weights.map((w) => [w.name, w.bytes]));
  const shape = (s: tfTypes.Shape | tfTypes.Shape[]): (number | null)[] =>
    Array.isArray(s[0]) ? s[0] : (s as tfTypes.Shape);
  try {
    return {
      inputs: model.inputs.map((t) => ({ name: t.name, dims: [...t.shape] })),
      outputs: model.outputs.map((t) => ({ name: t.name, dims: [...t.shape] })),
      layers: model.layers.map((layer) => {
        const activation = (layer.getConfig() as { activation?: unknown }).activation;
        return {
          name: layer.name,
          className: layer.getClassName(),
          outputShape: shape(layer.outputShape),
          ...(typeof activation === 'string' && activation !== 'linear' ? { activation } : {}),
          params: layer.countParams(),
          bytes: layer.weights.reduce(
            (a, v) => a + (stored.get(v.originalName) ?? 4 * countOf(v.shape as number[])),
            0,
          ),
        };
      }),
    };
  } finally {
    model.dispose();
  }
}

interface GraphNode {
  name: string;
  op: string;
  input?: string[];
  attr?: { shape?: { shape?: { dim?: { size?: string | number }[] } }; dtype?: { type?: string } };
}

/** A graph model from its GraphDef: op counts, placeholders and outputs (the signature's, else unread nodes). */
function describeGraph(files: TfjsFiles): Described {
  const nodes = (files.json.modelTopology as { node: GraphNode[] }).node;
  const ops: Record<string, number> = {};
  for (const n of nodes) ops[n.op] = (ops[n.op] ?? 0) + 1;
  const dimsOf = (dim: { size?: string | number }[] | undefined): (number | null)[] =>
    (dim ?? []).map((d) => (Number(d.size ?? -1) >= 0 ? Number(d.size) : null));
  const signature = files.json.signature as
    { outputs?: Record<string, { name?: string; tensorShape?: { dim?: { size?: string | number }[] } }> } | undefined;
  const read = new Set(nodes.flatMap((n) => (n.input ?? []).map((i) => i.replace(/^\^/, '').split(':')[0])));
  const signed = Object.entries(signature?.outputs ?? {});
  return {
    inputs: nodes
      .filter((n) => n.op === 'Placeholder')
      .map((n) => ({ name: n.name, dims: dimsOf(n.attr?.shape?.shape?.dim) })),
    outputs: signed.length
      ? signed.map(([key, o]) => ({ name: (o.name ?? key).split(':')[0], dims: dimsOf(o.tensorShape?.dim) }))
      : nodes.filter((n) => !read.has(n.name) && n.op !== 'NoOp').map((n) => ({ name: n.name, dims: [] })),
    ops,
  };
}

function countOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}
