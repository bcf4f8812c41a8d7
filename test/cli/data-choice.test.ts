// A run remembers its data set: commands default to it, say when --data picks another, and refuse one that does not fit.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { chooseDataset, checkDatasetFits } from '../../src/data/datasets.js';
import { writeIdx } from '../../src/data/idx.js';
import { loadRun } from '../../src/core/run.js';
import { isCmpError } from '../../src/errors.js';
import { assertOneLineError, runCli, tempDir } from '../helpers.js';

const SMALL = ['--epochs', '1', '--limit-train', '300', '--limit-test', '100'];

let dir: string;
let mnistRun: string;
let tinyImages: string;

before(() => {
  dir = tempDir('cmp-data-choice-');
  mnistRun = join(dir, 'mnist-run');
  const trained = runCli(['train', '--data', 'mnist', ...SMALL, '--widths', '8', '--out', mnistRun, '--quiet']);
  assert.equal(trained.code, 0, trained.stderr);
  // An IDX folder of 3x4x4 images in 10 classes: fits no 28x28 model.
  tinyImages = join(dir, 'tiny');
  mkdirSync(tinyImages);
  const images = (n: number) => writeIdx({ dtype: 'uint8', shape: [n, 4, 4, 3], data: new Uint8Array(n * 48) });
  const labels = (n: number) =>
    writeIdx({ dtype: 'uint8', shape: [n], data: Uint8Array.from({ length: n }, (_, i) => i % 10) });
  writeFileSync(join(tinyImages, 'train-images-idx3-ubyte'), images(20));
  writeFileSync(join(tinyImages, 'train-labels-idx1-ubyte'), labels(20));
  writeFileSync(join(tinyImages, 't10k-images-idx3-ubyte'), images(10));
  writeFileSync(join(tinyImages, 't10k-labels-idx1-ubyte'), labels(10));
});

test('train --from without --data fine-tunes on the data set the run records, and says so first', () => {
  const out = join(dir, 'from-default');
  const r = runCli(['train', '--from', mnistRun, '--binarize', 'dab', ...SMALL, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(loadRun(out).record.training.dataset, 'mnist');
  const first = r.stderr.split('\n').find((line) => line.trim() !== '') ?? '';
  assert.match(first, /^Data: mnist, 300 train \/ 100 test images .*model: .*mnist-run/);
});

test('a --data other than the run records is used, with one line saying so', () => {
  const out = join(dir, 'from-fashion');
  const r = runCli(['train', '--from', mnistRun, '--data', 'fashion-mnist', ...SMALL, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(loadRun(out).record.training.dataset, 'fashion-mnist');
  assert.match(r.stderr, /mnist-run was trained on mnist; using fashion-mnist as --data asks\./);
});

test('eval of an exported file defaults to its manifest data set, and export hints a command that pastes', () => {
  const onnx = join(dir, 'm.onnx');
  const exported = runCli(['export', mnistRun, '--out', onnx]);
  assert.equal(exported.code, 0, exported.stderr);
  assert.match(exported.stdout, new RegExp(`Next: npx cmp eval ${onnx.replace(/[.]/g, '\\.')}$`, 'm'));
  const r = runCli(['eval', onnx, '--limit', '50', '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { dataset: string }).dataset, 'mnist');
});

test('a data set that does not fit the model is refused in one line before any work', () => {
  for (const args of [
    ['train', '--from', mnistRun, '--data', tinyImages, '--epochs', '1', '--out', join(dir, 'never')],
    ['eval', mnistRun, '--data', tinyImages],
    ['prune', mnistRun, '--data', tinyImages, '--sparsity', '0.5', '--out', join(dir, 'never')],
  ]) {
    const r = runCli(args);
    assertOneLineError(
      r,
      /Data set .*tiny \(\[3, 4, 4\], 10 classes\) does not fit .*mnist-run \(input \[1, 28, 28\], 10 classes\)\. Use --data mnist/,
    );
  }
});

test('chooseDataset: asked, else recorded, else the default with a note; folders compare by path', async () => {
  assert.deepEqual(await chooseDataset(undefined, { name: 'r', recorded: 'mnist' }), { name: 'mnist' });
  assert.deepEqual(await chooseDataset('mnist', { name: 'r', recorded: 'mnist' }), { name: 'mnist' });
  assert.deepEqual(await chooseDataset('./x/../x', { name: 'r', recorded: join(process.cwd(), 'x') }), {
    name: './x/../x',
  });
  const other = await chooseDataset('fashion-mnist', { name: 'r', recorded: 'mnist' });
  assert.equal(other.name, 'fashion-mnist');
  assert.match(other.note ?? '', /r was trained on mnist; using fashion-mnist/);
  const none = await chooseDataset(undefined, { name: 'r', recorded: '' }, { root: join(dir, 'absent') });
  assert.equal(none.name, 'mnist');
  assert.match(none.note ?? '', /r records no data set; using mnist/);
});

test('checkDatasetFits: counts values (flat or open dims fit) and classes', () => {
  const data = { name: 'd', inputShape: [1, 28, 28] as [number, number, number], labels: Array(10).fill('x') };
  checkDatasetFits(data, { name: 'm', inputShape: [784], classes: 10 });
  checkDatasetFits(data, { name: 'm', inputShape: [1, -1, 28], classes: 10 });
  checkDatasetFits(data, { name: 'm' });
  for (const model of [
    { name: 'm', inputShape: [1, 32, 32] },
    { name: 'm', inputShape: [1, 28, 28], classes: 2 },
  ]) {
    assert.throws(
      () => checkDatasetFits(data, model),
      (err) => isCmpError(err) && err.code === 'BAD_ARGUMENT' && /does not fit m/.test(err.message),
    );
  }
});
