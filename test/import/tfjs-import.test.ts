// TF.js models written by the test (a layers model saved by tfjs, a graph model in the converter's model.json format)
// import with the outputs TensorFlow.js gives for them; layers cmp cannot hold are one error.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { before, test } from 'node:test';
import type * as tfTypes from '@tensorflow/tfjs';
import { makeRng } from '../../src/core/rng.js';
import { loadTf, type Tf } from '../../src/compress/tf.js';
import { predictFrozen } from '../../src/compress/train.js';
import { freeze } from '../../src/core/frozen.js';
import { loadDataset, type Dataset } from '../../src/data/datasets.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { importTfjs } from '../../src/import/import-tfjs.js';
import { outputsOf } from '../../src/import/import-run.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { maxAbsDiff, runCli, tempDir } from '../helpers.js';

const SAMPLES = 200;
let tf: Tf;
let data: Dataset;

before(async () => {
  tf = (await loadTf()).tf;
  data = await loadDataset('mnist', { limitTrain: 1, limitTest: SAMPLES });
});

/** Writes a model as tfjs' file:// handler would: model.json and the weights split over two shards. */
async function saveToFiles(model: tfTypes.LayersModel, dir: string): Promise<string> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weights = new Uint8Array(artifacts.weightData as ArrayBuffer);
      const half = Math.floor(weights.length / 8) * 4;
      writeFileSync(join(dir, 'group1-shard1of2.bin'), weights.subarray(0, half));
      writeFileSync(join(dir, 'group1-shard2of2.bin'), weights.subarray(half));
      const json = {
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'], weights: artifacts.weightSpecs }],
      };
      writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return join(dir, 'model.json');
}

/** Random weights everywhere (batch-norm statistics included), so folding mistakes show. */
function randomize(model: tfTypes.LayersModel): void {
  const rng = makeRng(5);
  for (const layer of model.layers) {
    layer.setWeights(
      layer.getWeights().map((w) => {
        const variance = layer.getClassName() === 'BatchNormalization' && w === layer.getWeights()[3];
        const values = Float32Array.from({ length: w.size }, () => (variance ? 0.5 + rng() : rng() - 0.5) * 0.6);
        return tf.tensor(values, w.shape);
      }),
    );
  }
}

/** The imported network's outputs (softmax applied where the source ends in one) on the test images. */
async function importedOutputs(path: string) {
  const imported = await importTfjs(path, { mean: 0, std: 1 });
  const frozen = freeze(imported.network.spec, new Map([...imported.network.tensors].map(([k, t]) => [k, t.data])));
  const outputs = outputsOf(imported.network, await predictFrozen(frozen, data, data.test, SAMPLES));
  const source = await imported.predict(data.test.x.slice(0, SAMPLES * 784), SAMPLES);
  imported.dispose();
  return { imported, frozen, outputs, source };
}

test('a TF.js layers model (same padding, batch norm, average pooling, NHWC flatten) imports with equal outputs', async () => {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3, padding: 'same' }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.conv2d({ filters: 6, kernelSize: 3, activation: 'relu' }));
  model.add(tf.layers.averagePooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dropout({ rate: 0.25 }));
  model.add(tf.layers.dense({ units: 16, activation: 'relu' }));
  model.add(tf.layers.dense({ units: 10 }));
  randomize(model);
  const path = await saveToFiles(model, tempDir());
  const reference = (
    model.predict(tf.tensor4d(data.test.x.slice(0, SAMPLES * 784), [SAMPLES, 28, 28, 1])) as tfTypes.Tensor
  ).dataSync();
  const { imported, frozen, outputs, source } = await importedOutputs(path);
  assert.equal(imported.format, 'layers-model');
  assert.equal(maxAbsDiff(source, reference), 0, 'the importer runs the source as tfjs does');
  assert.ok(maxAbsDiff(outputs, reference) <= 1e-4, `max abs diff ${maxAbsDiff(outputs, reference)}`);
  assert.deepEqual(
    imported.network.spec.layers.map((l) => l.kind),
    ['conv', 'maxpool', 'conv', 'avgpool', 'flatten', 'dense', 'dense'],
  );
  // And cmp's export of it, in onnxruntime-node.
  const file = parseModelFile(exportOnnx(frozen).bytes, 'tfjs-layers.onnx');
  const backend = await createBackend('ort-node', file);
  const exported = await predict(backend, file, data, SAMPLES);
  await backend.dispose();
  assert.ok(maxAbsDiff(exported, reference) <= 1e-4, `exported: max abs diff ${maxAbsDiff(exported, reference)}`);
});

/** A graph model as tensorflowjs_converter writes one: a GraphDef in JSON (strings base64), weights in a shard. */
function writeGraphModel(dir: string): string {
  const rng = makeRng(9);
  const random = (n: number, scale: number, offset = 0): Float32Array =>
    Float32Array.from({ length: n }, () => offset + (rng() - 0.5) * scale);
  const weights: [string, number[], Float32Array | Int32Array][] = [
    ['conv1/filter', [3, 3, 1, 4], random(36, 0.8)],
    ['conv1/bias', [4], random(4, 0.2)],
    ['conv2/filter', [3, 3, 4, 6], random(216, 0.6)],
    ['conv2/bias', [6], random(6, 0.2)],
    ['bn/scale', [6], random(6, 0.5, 1)],
    ['bn/offset', [6], random(6, 0.2)],
    ['bn/mean', [6], random(6, 0.4)],
    ['bn/variance', [6], random(6, 0.5, 1)],
    ['flatten/shape', [2], Int32Array.from([-1, 216])],
    ['dense/kernel', [216, 10], random(2160, 0.2)],
    ['dense/bias', [10], random(10, 0.2)],
  ];
  const text = (s: string): { s: string } => ({ s: Buffer.from(s).toString('base64') });
  const ints = (v: number[]): { list: { i: string[] } } => ({ list: { i: v.map(String) } });
  const float = { type: 'DT_FLOAT' };
  const nhwc = { data_format: text('NHWC') };
  const node = (name: string, op: string, input: string[], attr: Record<string, unknown> = {}) => ({
    name,
    op,
    input,
    attr,
  });
  const nodes = [
    node('input', 'Placeholder', [], {
      dtype: float,
      shape: { shape: { dim: [{ size: '-1' }, { size: '28' }, { size: '28' }, { size: '1' }] } },
    }),
    ...weights.map(([name, , values]) =>
      node(name, 'Const', [], { dtype: { type: values instanceof Int32Array ? 'DT_INT32' : 'DT_FLOAT' } }),
    ),
    node('conv1', '_FusedConv2D', ['input', 'conv1/filter', 'conv1/bias'], {
      T: float,
      strides: ints([1, 1, 1, 1]),
      padding: text('SAME'),
      dilations: ints([1, 1, 1, 1]),
      fused_ops: { list: { s: [text('BiasAdd').s, text('Relu').s] } },
      num_args: { i: '1' },
      epsilon: { f: 0 },
      ...nhwc,
    }),
    node('pool1', 'MaxPool', ['conv1'], {
      T: float,
      ksize: ints([1, 2, 2, 1]),
      strides: ints([1, 2, 2, 1]),
      padding: text('VALID'),
      ...nhwc,
    }),
    node('conv2', 'Conv2D', ['pool1', 'conv2/filter'], {
      T: float,
      strides: ints([1, 1, 1, 1]),
      padding: text('VALID'),
      dilations: ints([1, 1, 1, 1]),
      ...nhwc,
    }),
    node('conv2/bias_add', 'BiasAdd', ['conv2', 'conv2/bias'], { T: float, ...nhwc }),
    node('bn', 'FusedBatchNormV3', ['conv2/bias_add', 'bn/scale', 'bn/offset', 'bn/mean', 'bn/variance'], {
      T: float,
      U: float,
      epsilon: { f: 0.001 },
      is_training: { b: false },
      ...nhwc,
    }),
    node('relu2', 'Relu', ['bn'], { T: float }),
    node('pool2', 'AvgPool', ['relu2'], {
      T: float,
      ksize: ints([1, 2, 2, 1]),
      strides: ints([1, 2, 2, 1]),
      padding: text('VALID'),
      ...nhwc,
    }),
    node('flatten', 'Reshape', ['pool2', 'flatten/shape'], { T: float, Tshape: { type: 'DT_INT32' } }),
    node('dense', '_FusedMatMul', ['flatten', 'dense/kernel', 'dense/bias'], {
      T: float,
      transpose_a: { b: false },
      transpose_b: { b: false },
      fused_ops: { list: { s: [text('BiasAdd').s] } },
      num_args: { i: '1' },
      epsilon: { f: 0 },
    }),
    node('probabilities', 'Softmax', ['dense'], { T: float }),
  ];
  const shard = Buffer.concat(weights.map(([, , values]) => Buffer.from(values.buffer)));
  writeFileSync(join(dir, 'group1-shard1of1.bin'), shard);
  const manifest = weights.map(([name, shape, values]) => ({
    name,
    shape,
    dtype: values instanceof Int32Array ? 'int32' : 'float32',
  }));
  const json = {
    format: 'graph-model',
    generatedBy: '2.15.0',
    convertedBy: 'TensorFlow.js Converter v4.22.0',
    modelTopology: { node: nodes, library: {}, versions: { producer: 1286 } },
    weightsManifest: [{ paths: ['group1-shard1of1.bin'], weights: manifest }],
  };
  writeFileSync(join(dir, 'model.json'), JSON.stringify(json));
  return join(dir, 'model.json');
}

test('a TF.js graph model (fused conv, batch norm, NHWC reshape, fused matmul, softmax) imports with equal outputs', async () => {
  const path = writeGraphModel(tempDir());
  // The reference: tfjs-converter's executor on the same files.
  const json = JSON.parse(readFileSync(path, 'utf8')) as {
    modelTopology: tfTypes.io.ModelArtifacts['modelTopology'];
    weightsManifest: { paths: string[]; weights: tfTypes.io.WeightsManifestEntry[] }[];
  };
  const shard = readFileSync(join(dirname(path), json.weightsManifest[0].paths[0]));
  const model = await tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: json.modelTopology,
      weightSpecs: json.weightsManifest[0].weights,
      weightData: Uint8Array.from(shard).buffer,
    }),
  );
  const input = tf.tensor4d(data.test.x.slice(0, SAMPLES * 784), [SAMPLES, 28, 28, 1]);
  const reference = (model.execute(input) as tfTypes.Tensor).dataSync() as Float32Array;
  const { imported, outputs } = await importedOutputs(path);
  assert.equal(imported.format, 'graph-model');
  assert.ok(maxAbsDiff(outputs, reference) <= 1e-4, `max abs diff ${maxAbsDiff(outputs, reference)}`);
  assert.deepEqual(
    imported.network.spec.layers.map((l) => l.kind),
    ['conv', 'maxpool', 'conv', 'avgpool', 'flatten', 'dense'],
  );
  assert.deepEqual(imported.network.sources.conv2, ['conv2', 'conv2/bias_add', 'bn', 'relu2']);
  // The probabilities sum to 1 and are not uniform: the graph really ran.
  const first = reference.slice(0, 10);
  assert.ok(Math.abs(first.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  assert.ok(Math.max(...first) - Math.min(...first) > 0.01, `probabilities ${[...first].join(', ')}`);
});

test('layers cmp cannot import are named in one error; cmp import of a layers model checks it against tfjs', async () => {
  const bad = tf.sequential();
  bad.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 2, kernelSize: 3, strides: 2, name: 'strided' }));
  bad.add(tf.layers.flatten());
  bad.add(tf.layers.dense({ units: 10, activation: 'sigmoid', name: 'squash' }));
  const badPath = await saveToFiles(bad, tempDir());
  await assert.rejects(importTfjs(badPath, { mean: 0, std: 1 }), (err: Error) => {
    assert.equal(err.message.split('\n').length, 1, err.message);
    assert.match(
      err.message,
      /has layers cmp cannot import: Conv2D \(layer "strided": strides 2x2\), Dense \(layer "squash": activation sigmoid\)/,
    );
    return true;
  });

  const good = tf.sequential();
  good.add(tf.layers.flatten({ inputShape: [28, 28, 1] }));
  good.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  const dir = tempDir();
  const path = await saveToFiles(good, dir);
  const result = runCli([
    'import',
    path,
    '--out',
    join(dir, 'run'),
    '--data',
    'mnist',
    '--limit',
    '100',
    '--json',
    '--quiet',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const summary = (
    JSON.parse(result.stdout) as {
      imported: { format: string; check: { maxAbsDiff: number; sourceAccuracy: number; importedAccuracy: number } };
    }
  ).imported;
  assert.equal(summary.format, 'tfjs-layers');
  assert.ok(summary.check.maxAbsDiff <= 1e-5, `max abs diff ${summary.check.maxAbsDiff}`);
  assert.equal(summary.check.importedAccuracy, summary.check.sourceAccuracy);
});

test('cmp inspect model.json: layers with output shapes, parameters and bytes; a graph model with its ops', async () => {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 4, kernelSize: 3, activation: 'relu', name: 'c1' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }));
  model.add(tf.layers.flatten({ name: 'flat' }));
  model.add(tf.layers.dense({ units: 10, activation: 'sigmoid', name: 'out' }));
  const layersPath = await saveToFiles(model, tempDir());
  const text = runCli(['inspect', layersPath]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /model\.json: TF\.js layers-model, .* in 2 weight files/);
  assert.match(text.stdout, /^c1 +Conv2D +\[batch, 26, 26, 4\] +relu +40 +160 *$/m);
  assert.match(text.stdout, /^out +Dense +\[batch, 10\] +sigmoid +6770 +27080 *$/m);
  assert.match(text.stdout, /6,810 parameters, 26\.6 KiB of weights \(float32\)\./);
  assert.match(text.stdout, /Not importable as it is: .*Dense \(layer "out": activation sigmoid\)/);
  const json = runCli(['inspect', layersPath, '--json']);
  const report = JSON.parse(json.stdout) as { params: number; layers: { params: number }[]; inputs: unknown };
  assert.equal(report.params, 6810);
  assert.equal(
    report.layers.reduce((a, l) => a + l.params, 0),
    6810,
  );
  assert.deepEqual(report.inputs, [{ name: 'c1_input', dims: [null, 28, 28, 1] }]);

  const graphPath = writeGraphModel(tempDir());
  const graph = runCli(['inspect', graphPath]);
  assert.equal(graph.code, 0, graph.stderr);
  assert.match(graph.stdout, /TF\.js graph-model/);
  assert.match(graph.stdout, /ops +.*_FusedConv2D x\d/);
  assert.match(graph.stdout, /^conv1\/filter +float32 +3x3x1x4 +144 *$/m);
  assert.match(graph.stdout, /^Importable: npx cmp import .*model\.json --out DIR$/m);
});
