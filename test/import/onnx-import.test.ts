// Generated ONNX files across opsets (9, 13, 21: attribute and input forms), external data, batch-norm folding and
// shape subgraphs import with the outputs onnxruntime-node gives for the original file; what cmp cannot hold is one error.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { makeRng } from '../../src/core/rng.js';
import { trainRun } from '../../src/compress/train-run.js';
import { predictFrozen } from '../../src/compress/train.js';
import { freeze } from '../../src/core/frozen.js';
import { withBinarization } from '../../src/core/spec.js';
import {
  encodeModel,
  floatTensor,
  int64Tensor,
  node,
  valueInfo,
  type AttributeValue,
  type OnnxNode,
  type OnnxTensor,
} from '../../src/core/onnx.js';
import type { Dataset } from '../../src/data/datasets.js';
import { loadDataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { importOnnx, type ImportInputOptions } from '../../src/import/import-onnx.js';
import { outputsOf, parseInputRange } from '../../src/import/import-run.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { maxAbsDiff, tempDir } from '../helpers.js';

const SAMPLES = 200;
let data: Dataset;

before(async () => {
  data = await loadDataset('mnist', { limitTrain: 1, limitTest: SAMPLES });
});

/** A graph under construction: nodes, initializers and the deterministic random weights a test model needs. */
class Graph {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxTensor[] = [];
  private readonly rng = makeRng(11);

  op(type: string, inputs: string[], output: string, attributes: Record<string, AttributeValue> = {}): string {
    this.nodes.push(node(type, inputs, [output], attributes));
    return output;
  }

  /** A float initializer of uniform values in [lo, hi). */
  weight(name: string, dims: number[], lo = -0.5, hi = 0.5): string {
    const count = dims.reduce((a, b) => a * b, 1);
    this.initializers.push(
      floatTensor(
        name,
        dims,
        Array.from({ length: count }, () => lo + (hi - lo) * this.rng()),
      ),
    );
    return name;
  }

  ints(name: string, values: number[], dims = [values.length]): string {
    this.initializers.push(int64Tensor(name, dims, values));
    return name;
  }

  /** The model bytes; `opset` picks the semantics its nodes are written for. */
  encode(opset: number, output: string, classes = 10): Uint8Array {
    return encodeModel({
      name: 'generated',
      nodes: this.nodes,
      initializers: this.initializers,
      inputs: [valueInfo('input', ['batch', 1, 28, 28])],
      outputs: [valueInfo(output, ['batch', classes])],
      opset,
      producerVersion: 'test',
      metadata: {},
    });
  }
}

/** The original file's outputs in onnxruntime-node, on the test images as the model expects them. */
async function referenceOutputs(bytes: Uint8Array, options: ImportInputOptions): Promise<Float32Array> {
  const backend = await createBackend('ort-node', parseModelFile(bytes, 'reference.onnx'));
  const x = data.test.x.slice(0, SAMPLES * 784).map((v) => (v - options.mean) / options.std);
  const out = await backend.run(x, [SAMPLES, 1, 28, 28]);
  await backend.dispose();
  return out;
}

/**
 * Imports `path` and checks the imported network against `reference` (the original's outputs): its frozen forward
 * pass in TensorFlow.js, and cmp's export of it in onnxruntime-node.
 */
async function assertImportMatches(path: string, reference: Float32Array, options: ImportInputOptions) {
  const imported = importOnnx(path, options);
  const frozen = freeze(imported.network.spec, new Map([...imported.network.tensors].map(([k, t]) => [k, t.data])));
  const forward = outputsOf(imported.network, await predictFrozen(frozen, data, data.test, SAMPLES));
  assert.ok(maxAbsDiff(forward, reference) <= 1e-4, `frozen forward: max abs diff ${maxAbsDiff(forward, reference)}`);
  const file = parseModelFile(exportOnnx(frozen).bytes, 'imported.onnx');
  const backend = await createBackend('ort-node', file);
  // cmp's file takes pixel / 255 and normalizes in its graph.
  const exported = outputsOf(
    imported.network,
    await backend.run(data.test.x.slice(0, SAMPLES * 784), [SAMPLES, 1, 28, 28]),
  );
  await backend.dispose();
  assert.ok(maxAbsDiff(exported, reference) <= 1e-4, `cmp export: max abs diff ${maxAbsDiff(exported, reference)}`);
  return imported;
}

const PLAIN: ImportInputOptions = { mean: 0, std: 1 };

test('opset 9: batch norm folds into the conv, Shape/Gather/Unsqueeze/Concat folds into a flatten, Gemm transB', async () => {
  const g = new Graph();
  g.op('Conv', ['input', g.weight('w1', [4, 1, 3, 3]), g.weight('b1', [4])], 'c1', { pads: [1, 1, 1, 1] });
  const bn = ['gamma', 'beta', 'mean', 'var'].map((n, i) => g.weight(n, [4], i === 3 ? 0.5 : -0.5, i === 3 ? 2 : 0.5));
  g.op('BatchNormalization', ['c1', ...bn], 'bn1', { epsilon: 1e-5 });
  g.op('Relu', ['bn1'], 'r1');
  g.op('MaxPool', ['r1'], 'p1', { kernel_shape: [2, 2], strides: [2, 2] });
  g.op('Shape', ['p1'], 's');
  g.op('Gather', ['s', g.ints('zero', [0], [])], 'n', { axis: 0 });
  g.op('Unsqueeze', ['n'], 'n1', { axes: [0] });
  g.op('Concat', ['n1', g.ints('minus1', [-1])], 'shape', { axis: 0 });
  g.op('Reshape', ['p1', 'shape'], 'flat');
  g.op('Gemm', ['flat', g.weight('w2', [10, 784], -0.1, 0.1), g.weight('b2', [10])], 'logits', { transB: 1 });
  g.op('Dropout', ['logits'], 'd');
  g.op('Softmax', ['d'], 'probabilities');
  const bytes = g.encode(9, 'probabilities');
  const path = join(tempDir(), 'opset9.onnx');
  writeFileSync(path, bytes);
  const imported = await assertImportMatches(path, await referenceOutputs(bytes, PLAIN), PLAIN);
  const layers = imported.network.spec.layers;
  assert.deepEqual(
    layers.map((l) => l.kind),
    ['conv', 'maxpool', 'flatten', 'dense'],
  );
  assert.equal(layers[0].kind === 'conv' && layers[0].padding, 1);
  assert.deepEqual(imported.network.sources.conv1, ['c1', 'bn1', 'r1']);
  assert.equal(imported.network.outputOf, 'softmax');
  assert.match(imported.network.notes.join('\n'), /final Softmax \(node "probabilities"\)/);
});

test('opset 13: SAME padding, Clip and Dropout inputs, MatMul + Add, AveragePool, Gemm alpha/beta, a 0..255 input', async () => {
  const g = new Graph();
  g.op('Conv', ['input', g.weight('w1', [6, 1, 5, 5], -0.01, 0.01)], 'c1', { auto_pad: 'SAME_UPPER' });
  g.op('Add', ['c1', g.weight('b1', [1, 6, 1, 1])], 'a1');
  g.op('Clip', ['a1', g.weight('zero', [], 0, 0)], 'r1');
  g.op('AveragePool', ['r1'], 'p1', { kernel_shape: [2, 2], strides: [2, 2] });
  g.op('Conv', ['p1', g.weight('w2', [8, 6, 3, 3], -0.2, 0.2), g.weight('b2', [8])], 'c2');
  g.op('Relu', ['c2'], 'r2');
  g.op('MaxPool', ['r2'], 'p2', { kernel_shape: [2, 2], strides: [2, 2] });
  g.op('Reshape', ['p2', g.ints('flat_shape', [0, -1])], 'flat');
  g.op('MatMul', ['flat', g.weight('w3', [288, 32], -0.1, 0.1)], 'm3');
  g.op('Add', ['m3', g.weight('b3', [32])], 'h3');
  g.op('Relu', ['h3'], 'r3');
  g.op('Dropout', ['r3', g.weight('ratio', [], 0.5, 0.5)], 'd3');
  g.op('Gemm', ['d3', g.weight('w4', [32, 10]), g.weight('b4', [1, 10])], 'logits', { alpha: 0.5, beta: 1.5 });
  g.op('Softmax', ['logits'], 'probabilities', { axis: -1 });
  const bytes = g.encode(13, 'probabilities');
  const path = join(tempDir(), 'opset13.onnx');
  writeFileSync(path, bytes);
  const range = parseInputRange('0,255');
  const imported = await assertImportMatches(path, await referenceOutputs(bytes, range), range);
  assert.deepEqual(
    imported.network.spec.layers.map((l) => l.kind),
    ['conv', 'avgpool', 'conv', 'maxpool', 'flatten', 'dense', 'dense'],
  );
  assert.deepEqual(imported.network.spec.input, { shape: [1, 28, 28], mean: 0, std: 1 / 255 });

  // It fine-tunes (padding, average pooling and the 0..255 input in training), binarized, and exports what it trained.
  const train = await loadDataset('mnist', { limitTrain: 300, limitTest: 100 });
  const tuned = await trainRun(train, {
    arch: 'imported',
    binarizeWeights: 'dab',
    binarizeActivations: 'none',
    epochs: 1,
    batchSize: 50,
    learningRate: 0.001,
    seed: 3,
    from: {
      dir: path,
      spec: withBinarization(imported.network.spec, {
        binarizeWeights: 'dab',
        keepFloatWeights: [],
        keepFloatInputs: [],
      }),
      tensors: new Map([...imported.network.tensors].map(([k, t]) => [k, t.data])),
    },
  });
  const expected = await predictFrozen(tuned.frozen, train, train.test);
  const file = parseModelFile(exportOnnx(tuned.frozen).bytes, 'tuned.onnx');
  const backend = await createBackend('ort-node', file);
  const actual = await predict(backend, file, train, train.test.count);
  await backend.dispose();
  assert.ok(maxAbsDiff(actual, expected) <= 1e-4, `tuned export: max abs diff ${maxAbsDiff(actual, expected)}`);
});

test('opset 21 with external data: input normalization and per-channel Mul/Add fold, GlobalAveragePool, Squeeze', async () => {
  const dir = tempDir();
  const build = (external: boolean): Uint8Array => {
    const g = new Graph();
    g.op('Sub', ['input', g.weight('centre', [], 0.5, 0.5)], 'x1');
    g.op('Div', ['x1', g.weight('spread', [1], 0.25, 0.25)], 'x2');
    g.op('Conv', ['x2', g.weight('w1', [8, 1, 3, 3], -0.3, 0.3), g.weight('b1', [8])], 'c1', { pads: [1, 1, 1, 1] });
    g.op('Mul', ['c1', g.weight('scale', [8, 1, 1], 0.5, 1.5)], 'm1');
    g.op('Add', [g.weight('shift', [1, 8, 1, 1]), 'm1'], 'a1');
    g.op('Relu', ['a1'], 'r1');
    g.op('MaxPool', ['r1'], 'p1', { kernel_shape: [4, 4], strides: [4, 4] });
    g.op('Conv', ['p1', g.weight('w2', [12, 8, 3, 3], -0.3, 0.3)], 'c2');
    g.op('GlobalAveragePool', ['c2'], 'gap');
    g.op('Squeeze', ['gap', g.ints('axes', [2, 3])], 'flat');
    g.op('Identity', ['flat'], 'same');
    g.op('Gemm', ['same', g.weight('w3', [10, 12]), g.weight('b3', [10])], 'logits', { transB: 1 });
    g.op('LogSoftmax', ['logits'], 'log_probabilities', { axis: 1 });
    if (external) {
      // The weights move to weights.bin, 64-byte aligned as onnx.save_model writes them.
      const chunks: Buffer[] = [];
      let offset = 0;
      for (const t of g.initializers) {
        if (!['w1', 'w2', 'w3'].includes(t.name ?? '')) continue;
        const raw = Buffer.from(t.rawData as Uint8Array);
        const padded = Buffer.alloc(Math.ceil(raw.length / 64) * 64);
        raw.copy(padded);
        t.externalData = [
          { key: 'location', value: 'weights.bin' },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(raw.length) },
        ];
        t.dataLocation = 1;
        t.rawData = new Uint8Array(0);
        chunks.push(padded);
        offset += padded.length;
      }
      writeFileSync(join(dir, 'weights.bin'), Buffer.concat(chunks));
    }
    return g.encode(21, 'log_probabilities');
  };
  const reference = await referenceOutputs(build(false), PLAIN);
  const path = join(dir, 'opset21.onnx');
  const bytes = build(true);
  writeFileSync(path, bytes);
  assert.ok(bytes.length < 2000, `the model file keeps its weights outside (${bytes.length} bytes)`);
  const imported = await assertImportMatches(path, reference, PLAIN);
  const { spec } = imported.network;
  assert.deepEqual(
    spec.layers.map((l) => l.kind),
    ['conv', 'maxpool', 'conv', 'avgpool', 'flatten', 'dense'],
  );
  // (x - 0.5) / 0.25 folded into the input: mean 0.5, std 0.25.
  assert.deepEqual([spec.input.mean, spec.input.std], [0.5, 0.25]);
  assert.equal(imported.network.outputOf, 'logSoftmax');
});

test('every op cmp cannot import is named in one line, with its node', () => {
  const g = new Graph();
  g.op('Conv', ['input', g.weight('w1', [4, 1, 3, 3])], 'conv_s2', { strides: [2, 2] });
  g.op('Sigmoid', ['conv_s2'], 's1');
  g.op('Sigmoid', ['s1'], 's2');
  g.nodes.push({ ...node('FusedGemm', ['s2', 'w1'], ['fg']), domain: 'com.microsoft' });
  g.op('Flatten', ['fg'], 'out');
  const path = join(tempDir(), 'unsupported.onnx');
  writeFileSync(path, g.encode(17, 'out'));
  assert.throws(
    () => importOnnx(path, PLAIN),
    (err: Error) => {
      assert.equal(err.message.split('\n').length, 1, err.message);
      assert.match(err.message, /unsupported\.onnx has ops cmp cannot import: /);
      assert.match(err.message, /Sigmoid \(nodes "s1", "s2"\)/);
      assert.match(err.message, /com\.microsoft\.FusedGemm \(node "fg"\)/);
      assert.match(err.message, /Conv \(node "conv_s2": strides 2x2\)/);
      return true;
    },
  );
});

test('a skip connection is one error naming the node: cmp imports single-path networks', () => {
  const g = new Graph();
  g.op('Conv', ['input', g.weight('w1', [4, 1, 3, 3])], 'c1', { pads: [1, 1, 1, 1] });
  g.op('Relu', ['c1'], 'r1');
  g.op('Conv', ['r1', g.weight('w2', [4, 4, 3, 3])], 'c2', { pads: [1, 1, 1, 1] });
  g.op('Add', ['c2', 'r1'], 'residual');
  g.op('Flatten', ['residual'], 'flat');
  g.op('Gemm', ['flat', g.weight('w3', [3136, 10])], 'logits');
  const path = join(tempDir(), 'residual.onnx');
  writeFileSync(path, g.encode(13, 'logits'));
  assert.throws(() => importOnnx(path, PLAIN), /residual\.onnx: Add node "residual" combines two activations/);
});

test('--input-range maps pixels in [0, 1] to the range a model expects, and rejects an empty range', () => {
  assert.deepEqual(parseInputRange('0,1'), { mean: 0, std: 1 });
  assert.deepEqual(parseInputRange('-1,1'), { mean: 0.5, std: 0.5 });
  assert.throws(() => parseInputRange('1,0'), /--input-range takes LO,HI with LO < HI.*got "1,0"/);
});
