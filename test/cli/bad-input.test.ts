// Every CLI entry point answers bad input with one clear line on stderr and a non-zero exit.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { freeze } from '../../src/core/frozen.js';
import { buildSpec } from '../../src/core/spec.js';
import { decodeModel, encodeModel, encodeOnnxModel, node, tensor, valueInfo } from '../../src/core/onnx.js';
import { assertOneLineError, CLI, runCli, sharedFile, tempDir, TEST_CMP_HOME } from '../helpers.js';

let dir: string;
let goodModel: string;

before(() => {
  dir = tempDir();
  // A tiny untrained cmp model: enough to exercise the file readers.
  const spec = buildSpec('mlp', {
    inputShape: [1, 28, 28],
    labels: ['a', 'b'],
    widths: [4],
    binarizeWeights: 'dab',
    binarizeInputs: 'none',
    keepFloatWeights: [],
    keepFloatInputs: ['first', 'last'],
  });
  const tensors = new Map<string, Float32Array>([
    ['fc1.weight', Float32Array.from({ length: 784 * 4 }, (_, i) => Math.sin(i))],
    ['fc1.bn.gamma', new Float32Array(4).fill(1)],
    ['fc1.bn.beta', new Float32Array(4)],
    ['fc1.bn.mean', new Float32Array(4)],
    ['fc1.bn.variance', new Float32Array(4).fill(1)],
    ['logits.weight', Float32Array.from({ length: 8 }, (_, i) => Math.cos(i))],
    ['logits.bias', new Float32Array(2)],
  ]);
  goodModel = join(dir, 'good.onnx');
  writeFileSync(goodModel, exportOnnx(freeze(spec, tensors)).bytes);
});

test('an unknown flag names the flag and the help command', () => {
  assertOneLineError(
    runCli(['train', '--epochz', '3', '--out', join(dir, 'r')]),
    /Unknown flag "--epochz".*cmp train --help/,
  );
});

test('a malformed number names the flag and the value', () => {
  assertOneLineError(
    runCli(['train', '--epochs', 'many', '--out', join(dir, 'r')]),
    /--epochs must be a positive whole number \(got "many"\)/,
  );
});

test('a value outside the choices lists them', () => {
  assertOneLineError(
    runCli(['train', '--binarize', 'ternary', '--out', join(dir, 'r')]),
    /--binarize must be one of: none, xnor, dab/,
  );
});

test('an unknown command or flag suggests the nearest and lists the commands', () => {
  assertOneLineError(
    runCli(['trian']),
    /Unknown command "trian"\. Did you mean npx cmp train\? Use one of: demo, train/,
  );
  assertOneLineError(runCli(['qwerty']), /Unknown command "qwerty"\. Use one of: demo, train/);
  assertOneLineError(runCli(['train', '--epochz', '3']), /Unknown flag "--epochz" \(did you mean --epochs\?\)/);
});

test('an unknown data set names it and the choices', () => {
  assertOneLineError(runCli(['train', '--data', 'cifar', '--out', join(dir, 'r')]), /Unknown data set "cifar"/);
});

test('a missing data folder says what to pass', () => {
  assertOneLineError(runCli(['eval', goodModel, '--data', join(dir, 'nowhere')]), /nowhere/);
});

test('a corrupt IDX file is named with the problem', () => {
  const data = join(dir, 'corrupt-idx');
  mkdirSync(data);
  const header = Buffer.from([0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 28, 0, 0, 0, 28]);
  writeFileSync(join(data, 'train-images-idx3-ubyte.gz'), gzipSync(Buffer.concat([header, Buffer.alloc(100)])));
  writeFileSync(
    join(data, 'train-labels-idx1-ubyte'),
    Buffer.from([0, 0, 8, 1, 0, 0, 0, 10, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1]),
  );
  copyFileSync(join(data, 'train-images-idx3-ubyte.gz'), join(data, 't10k-images-idx3-ubyte.gz'));
  copyFileSync(join(data, 'train-labels-idx1-ubyte'), join(data, 't10k-labels-idx1-ubyte'));
  assertOneLineError(runCli(['eval', goodModel, '--data', data]), /Corrupt IDX file ".*images-idx3-ubyte\.gz".*bytes/);
});

test('a file that is not ONNX is refused by eval and inspect', () => {
  const notOnnx = join(dir, 'notes.onnx');
  writeFileSync(notOnnx, 'these are my notes, not a model\n'.repeat(20));
  assertOneLineError(runCli(['inspect', notOnnx]), /notes\.onnx is not .*ONNX/);
  assertOneLineError(runCli(['eval', notOnnx, '--data', 'mnist']), /notes\.onnx is not .*ONNX/);
});

test('a truncated ONNX file is refused', () => {
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, readFileSync(goodModel).subarray(0, 3000));
  assertOneLineError(runCli(['inspect', truncated]), /truncated\.onnx is not a readable ONNX file/);
});

test('a malformed cmp manifest is refused with what to do', () => {
  const bad = join(dir, 'bad-manifest.onnx');
  writeFileSync(
    bad,
    encodeModel({
      name: 'g',
      nodes: [node('Relu', ['input'], ['logits'])],
      initializers: [],
      inputs: [valueInfo('input', ['batch', 2])],
      outputs: [valueInfo('logits', ['batch', 2])],
      opset: 18,
      producerVersion: 'test',
      metadata: { cmp: '{"format": "cmp-manifest/1", "input": {' },
    }),
  );
  assertOneLineError(runCli(['inspect', bad]), /manifest .* is not valid JSON\. Re-export/);
});

test('a missing model file is named in a plain sentence, with its own code', () => {
  const missing = runCli(['inspect', join(dir, 'absent.onnx')]);
  assertOneLineError(
    missing,
    /^cmp: There is no model file .*absent\.onnx\. Check the path, or export one: npx cmp export RUN --out FILE\.$/,
  );
  assert.doesNotMatch(missing.stderr, /ENOENT|stat/);
  assertOneLineError(
    runCli(['inspect', dir]),
    /^cmp: Cannot read model file .*: it is a folder; pass the \.onnx file in it\./,
  );
});

test('a run folder that is not a run is named', () => {
  assertOneLineError(runCli(['export', dir, '--out', join(dir, 'x.onnx')]), /is not|has no readable/);
});

test('--json errors are JSON with a stable code', () => {
  const result = runCli(['inspect', join(dir, 'absent.onnx'), '--json']);
  assert.notEqual(result.code, 0);
  const parsed = JSON.parse(result.stdout) as { error: { code: string } };
  assert.equal(parsed.error.code, 'MODEL_MISSING');
});

test('inspect reads a model it did not make (the third-party PyTorch LeNet)', () => {
  const result = runCli(['inspect', sharedFile('models', 'lenet5-mnist-pytorch.onnx'), '--json']);
  assert.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as { opset: number; ops: Record<string, number>; manifest?: unknown };
  assert.equal(report.opset, 10);
  assert.ok(report.ops.Conv >= 2);
  assert.equal(report.manifest, undefined);
});

test('--out is checked before any work: empty, uncreatable, a folder of other files, or a run without --force', () => {
  const small = ['--data', 'mnist', '--epochs', '1', '--limit-train', '200', '--limit-test', '50', '--widths', '8'];
  const hang = { timeout: 120_000 };
  assertOneLineError(runCli(['train', ...small, '--out', '']), /^cmp: --out is empty: give the run folder to write/);
  // Node's own recursive mkdir never returns on /proc/x: the check must, and before training.
  const proc = spawnSync(process.execPath, [CLI, 'train', ...small, '--out', '/proc/cmp-x/run'], {
    ...hang,
    encoding: 'utf8',
    env: { ...process.env, CMP_HOME: TEST_CMP_HOME },
  });
  assertOneLineError(
    { code: proc.status ?? -1, stderr: proc.stderr },
    /--out \/proc\/cmp-x\/run cannot be created \(ENOENT\)/,
  );
  // A folder of someone else's files (as /etc would be) is never written into, by train or import.
  const foreign = join(dir, 'foreign');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'mine');
  for (const args of [
    ['train', ...small],
    ['import', goodModel, '--force'],
  ]) {
    assertOneLineError(runCli([...args, '--out', foreign]), /holds files other than a run's \(1 entries\)/);
  }
  assert.deepEqual(readdirSync(foreign), ['notes.txt']);
  // A run is replaced only when asked.
  const run = join(dir, 'out-run');
  assert.equal(runCli(['train', ...small, '--out', run, '--quiet']).code, 0);
  const first = readFileSync(join(run, 'model.json'), 'utf8');
  assertOneLineError(runCli(['train', ...small, '--seed', '2', '--out', run]), /already holds a run\. Pass --force/);
  assert.equal(readFileSync(join(run, 'model.json'), 'utf8'), first);
  const forced = runCli(['train', ...small, '--seed', '2', '--out', run, '--force', '--quiet']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(readFileSync(join(run, 'model.json'), 'utf8'), first);
  // A failed command leaves no folder behind.
  const never = join(dir, 'never', 'run');
  assertOneLineError(runCli(['train', ...small, '--data', 'cifar', '--out', never]), /Unknown data set "cifar"/);
  assert.ok(!existsSync(join(dir, 'never')));
});

test('sizes and fields are checked before use: a manifest layer without a field, huge or negative dims, huge widths', () => {
  // The good model with one field of its first layer entry removed, field by field.
  const model = decodeModel(readFileSync(goodModel), goodModel);
  const entry = (model.metadataProps ?? []).find((p) => p.key === 'cmp') as { value: string };
  const manifest = JSON.parse(entry.value) as { layers: Record<string, unknown>[] };
  for (const field of Object.keys(manifest.layers[0])) {
    const rest = { ...manifest.layers[0] };
    delete rest[field];
    entry.value = JSON.stringify({ ...manifest, layers: [rest, ...manifest.layers.slice(1)] });
    const path = join(dir, `no-${field}.onnx`);
    writeFileSync(path, encodeOnnxModel(model, path));
    assertOneLineError(
      runCli(['inspect', path]),
      new RegExp(`manifest in .* has no layers\\[0\\]\\.${field}\\. Re-export`),
    );
  }
  // The whole document is checked: exits, the input mask and the spec inside, not only the layers.
  const whole = manifest as unknown as Record<string, unknown>;
  for (const [field, damage, pattern] of [
    ['exits', [{ name: 'exit1', after: 'fc1', threshold: 'low', stage: 1 }], /has exits\[0\]\.threshold "low"/],
    ['inputMask', { kind: 'static', granularity: 'pixel', values: 'uint8', units: 4 }, /has no inputMask\.maskId/],
    ['spec', { ...(whole.spec as object), layers: 'none' }, /has spec\.layers "none", expected a list/],
  ] as const) {
    entry.value = JSON.stringify({ ...whole, [field]: damage });
    const path = join(dir, `bad-${field}.onnx`);
    writeFileSync(path, encodeOnnxModel(model, path));
    assertOneLineError(runCli(['inspect', path]), pattern);
  }
  // A foreign model whose weight tensor declares dims no array can hold, or negative ones, with 8 bytes of data.
  for (const dims of [
    [1e9, 1e9],
    [-1, 2],
    [2, -4],
  ]) {
    const path = join(dir, `dims-${dims.join('x')}.onnx`);
    writeFileSync(
      path,
      encodeModel({
        name: 'g',
        nodes: [node('Flatten', ['input'], ['flat'], { axis: 1 }), node('MatMul', ['flat', 'w'], ['logits'])],
        initializers: [tensor('w', 1, dims, new Uint8Array(8))],
        inputs: [valueInfo('input', ['batch', 1, 28, 28])],
        outputs: [valueInfo('logits', ['batch', 10])],
        opset: 17,
        producerVersion: 'test',
        metadata: {},
      }),
    );
    assertOneLineError(
      runCli(['import', path, '--out', join(dir, `run-${dims.join('x')}`)]),
      /tensor "w" (has dims|has 8 bytes for)/,
    );
  }
  assertOneLineError(
    runCli([
      'train',
      '--data',
      'mnist',
      '--limit-train',
      '100',
      '--widths',
      '99999999',
      '--out',
      join(dir, 'wide'),
      '--quiet',
    ]),
    /--widths 99999999 and --filters \(default\) make a network of 7\.94e\+10 weights, over the 1e\+8 cmp trains/,
  );
});

test('deploy without --target assumes none: it lists the targets and how to reach each', () => {
  const result = runCli(['deploy', join(dir, 'x.onnx')]);
  assert.equal(result.code, 2);
  assertOneLineError(
    result,
    /^cmp: npx cmp deploy needs --target NAME, where the model goes: browser \(a static site, with --out DIR\); electron .*; mcu .*; rpi \(a Linux device over SSH, with --host USER@HOST\)\. Example: npx cmp deploy .*x\.onnx --target browser --out site\/$/,
  );
});

test('profile without --target assumes none either: it names the devices and the flag each needs', () => {
  const result = runCli(['profile', join(dir, 'x.onnx'), '--port', '/dev/pts/3']);
  assert.equal(result.code, 2);
  assertOneLineError(
    result,
    /^cmp: npx cmp profile needs --target NAME, where the model runs: local \(this machine, with --backend NAME\); mcu \(a microcontroller, with --port PATH\); rpi \(a Linux device over SSH, with --host USER@HOST\)\. Example: npx cmp profile --target rpi --host pi@raspberrypi\.local$/,
  );
});
