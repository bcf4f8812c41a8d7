// A third-party model that expects [-1, 1]: eval and run take --input-range as import does, and the file cmp exports
// from the import takes pixel/255, so plain onnxruntime-node on raw pixels scores what cmp eval scores.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { trainRun } from '../../src/compress/train-run.js';
import type { FrozenWeightLayer } from '../../src/core/frozen.js';
import { encodeModel, floatTensor, node, valueInfo } from '../../src/core/onnx.js';
import { loadDataset, type Dataset } from '../../src/data/datasets.js';
import { assertOneLineError, runCli, tempDir } from '../helpers.js';

const SAMPLES = 300;
let data: Dataset;
let dir: string;
let foreign: string;

/**
 * A float MLP trained by cmp on pixels in [0, 1], rewritten as another framework would hold it for inputs y in
 * [-1, 1]: x = (y + 1) / 2 folds into the first layer (W / 2, b + colsum(W) / 2), so no op in the file says the range.
 */
before(async () => {
  data = await loadDataset('mnist', { limitTrain: 1500, limitTest: SAMPLES });
  const trained = await trainRun(data, {
    arch: 'mlp',
    widths: [32],
    binarizeWeights: 'none',
    binarizeActivations: 'none',
    epochs: 2,
    batchSize: 50,
    learningRate: 0.01,
    seed: 9,
  });
  const [fc1, fc2] = trained.frozen.layers.filter((l): l is FrozenWeightLayer => l.kind !== 'flatten');
  const dense = (layer: FrozenWeightLayer, half: boolean): { w: number[]; b: number[] } => {
    const [inputs, outputs] = layer.weightShape;
    const data = layer.weights.kind === 'float' ? layer.weights.data : new Float32Array(0);
    const w = new Array<number>(inputs * outputs);
    const b = [...layer.shift];
    for (let i = 0; i < inputs; i++) {
      for (let o = 0; o < outputs; o++) {
        const v = data[i * outputs + o] * layer.scale[o];
        w[i * outputs + o] = half ? v / 2 : v;
        if (half) b[o] += v / 2;
      }
    }
    return { w, b };
  };
  const first = dense(fc1, true);
  const last = dense(fc2, false);
  dir = tempDir();
  foreign = join(dir, 'tanh-range.onnx');
  writeFileSync(
    foreign,
    encodeModel({
      name: 'foreign',
      nodes: [
        node('Flatten', ['image'], ['flat'], { axis: 1 }),
        node('Gemm', ['flat', 'w1', 'b1'], ['h']),
        node('Relu', ['h'], ['r']),
        node('Gemm', ['r', 'w2', 'b2'], ['scores']),
      ],
      initializers: [
        floatTensor('w1', [784, 32], first.w),
        floatTensor('b1', [32], first.b),
        floatTensor('w2', [32, 10], last.w),
        floatTensor('b2', [10], last.b),
      ],
      inputs: [valueInfo('image', ['batch', 1, 28, 28])],
      outputs: [valueInfo('scores', ['batch', 10])],
      opset: 13,
      producerVersion: 'test',
      metadata: {},
    }),
  );
});

const common = ['--data', 'mnist', '--limit', String(SAMPLES), '--json'];

function accuracyOf(result: { code: number; stdout: string; stderr: string }): number {
  assert.equal(result.code, 0, result.stderr);
  return (JSON.parse(result.stdout) as { accuracy: number }).accuracy;
}

test('eval and run --input-range=-1,1 feed a foreign file its range; without it eval says what it fed', () => {
  const ranged = accuracyOf(runCli(['eval', foreign, ...common, '--input-range=-1,1']));
  assert.ok(ranged > 0.7, `accuracy with its range ${ranged}`);
  const ran = accuracyOf(runCli(['run', foreign, ...common, '--backend', 'ort-node', '--input-range=-1,1']));
  assert.equal(ran, ranged);
  const plain = runCli(['eval', foreign, ...common]);
  assert.notEqual(accuracyOf(plain), ranged);
  assert.match(plain.stderr, /has no cmp manifest: feeding pixels in \[0, 1\] as is \(pass --input-range LO,HI/);
  const noted = runCli(['eval', foreign, ...common, '--input-range=-1,1']);
  assert.match(noted.stderr, /feeding pixels in \[-1, 1\] \(--input-range\)/);
  assertOneLineError(
    runCli(['eval', foreign, '--data', 'mnist', '--input-range', '1,0']),
    /--input-range takes LO,HI with LO < HI/,
  );
});

test('the exported import takes pixel/255: plain onnxruntime-node on raw pixels scores what cmp eval does', async () => {
  const run = join(dir, 'run');
  const imported = runCli(['import', foreign, '--out', run, '--input-range=-1,1', ...common]);
  assert.equal(imported.code, 0, imported.stderr);
  const source = (JSON.parse(imported.stdout) as { imported: { check: { sourceAccuracy: number } } }).imported.check;
  const exportedPath = join(dir, 'imported.onnx');
  const exported = runCli(['export', run, '--out', exportedPath, '--quiet']);
  assert.equal(exported.code, 0, exported.stderr);
  const evaluated = accuracyOf(runCli(['eval', exportedPath, ...common]));
  assert.equal(evaluated, source.sourceAccuracy);
  assert.equal(evaluated, accuracyOf(runCli(['eval', foreign, ...common, '--input-range=-1,1'])));

  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(readFileSync(exportedPath));
  const out = await session.run({
    input: new ort.Tensor('float32', data.test.x.slice(0, SAMPLES * 784), [SAMPLES, 1, 28, 28]),
  });
  await session.release();
  const logits = out.logits.data as Float32Array;
  let correct = 0;
  for (let i = 0; i < SAMPLES; i++) {
    const row = [...logits.subarray(i * 10, (i + 1) * 10)];
    correct += Number(row.indexOf(Math.max(...row)) === data.test.y[i]);
  }
  assert.equal(correct / SAMPLES, evaluated, 'plain onnxruntime-node on pixel/255');

  const inspected = runCli(['inspect', exportedPath]);
  assert.match(inspected.stdout, /takes pixel\/255; the graph applies \(x - 0\.5\) \/ 0\.5/);
  assertOneLineError(
    runCli(['eval', exportedPath, '--data', 'mnist', '--input-range', '0,1']),
    /imported\.onnx is a cmp file whose manifest says its network takes pixels in \[-1, 1\], not \[0, 1\]; --input-range is for files without a cmp manifest/,
  );
  assert.equal(accuracyOf(runCli(['eval', exportedPath, ...common, '--input-range=-1,1'])), evaluated);
});
