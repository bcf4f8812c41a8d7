// The firmware's kernels built for the host with gcc, run on the golden bit-format vectors and on a whole LeNet.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { toFloat16Bits } from '../../src/core/float16.js';
import { predictFrozen } from '../../src/compress/train.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { firmwareRoot, requireTool } from '../../src/link/firmware-build.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { binarizedCase, fixtureData, fixtures } from '../fixtures.js';
import { maxAbsDiff, ROOT, tempDir } from '../helpers.js';

interface GoldenCase {
  name: string;
  rows: number;
  rowLength: number;
  bits: number[];
  packed: number[];
  upper: number[];
  lower: number[];
  weights: number[];
}

let binary: string;
let split: string;

before(() => {
  requireTool('gcc');
  requireTool('make');
  const build = tempDir('cmp-host-kernels-');
  execFileSync('make', ['-C', firmwareRoot(), '--no-print-directory', `BUILD_HOST=${build}`, 'host-test'], {
    stdio: 'pipe',
  });
  binary = join(build, 'test-kernels');
  split = join(build, 'test-split');
});

test('host-built split-inference checks pass: format 2 parsing, exits, mask zeroing, hand-off frames, the link', () => {
  const run = spawnSync(split, [], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /checks \d+ failures 0/);
});

test('the C bit-format comment block is the TypeScript one, verbatim', () => {
  const block = (text: string): string => {
    const start = text.indexOf('/*\n * CMP BIT FORMAT');
    assert.ok(start >= 0, 'format block present');
    return text.slice(start, text.indexOf('*/', start) + 2);
  };
  const ts = block(readFileSync(join(ROOT, 'src/core/bitpack.ts'), 'utf8'));
  const c = block(readFileSync(join(firmwareRoot(), 'include/cmp/bitpack.h'), 'utf8'));
  assert.equal(c, ts);
});

test('host-built kernels pass on every golden vector (pack, unpack, float16, expand, dense, conv)', () => {
  const golden = JSON.parse(readFileSync(join(ROOT, 'test/golden/bitpack.json'), 'utf8')) as { cases: GoldenCase[] };
  const text = golden.cases
    .map((c) =>
      [
        `case ${c.name.replace(/\s+/g, '_')} ${c.rows} ${c.rowLength}`,
        `bits ${c.bits.join(' ')}`,
        `packed ${c.packed.join(' ')}`,
        `upper16 ${c.upper.map(toFloat16Bits).join(' ')}`,
        `lower16 ${c.lower.map(toFloat16Bits).join(' ')}`,
        `upper ${c.upper.join(' ')}`,
        `lower ${c.lower.join(' ')}`,
        `weights ${c.weights.join(' ')}`,
      ].join('\n'),
    )
    .join('\n');
  const run = spawnSync(binary, ['golden'], { input: text, encoding: 'utf8' });
  const failures = run.stdout.split('\n').filter((l) => l.startsWith('FAIL'));
  assert.deepEqual(failures, []);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const passed = run.stdout.split('\n').filter((l) => l.startsWith('ok ')).length;
  // 11 checks per golden case plus 5 shared ones: a silently shorter run would be a broken parser.
  assert.equal(passed, golden.cases.length * 11 + 5, run.stdout);
});

test('host-built runtime runs a binarized LeNet blob as onnxruntime-node runs the ONNX file', async () => {
  const samples = 40;
  // The binarized LeNet that export and bitwasm check against onnxruntime too.
  const lenet = binarizedCase('lenet', 'dab', 'dab');
  const data = await fixtureData(lenet.data);
  const trained = await fixtures.model(lenet);
  const file = parseModelFile(exportOnnx(trained.frozen).bytes, 'lenet.onnx');
  const mcu = convertToMcuModel(file);
  // conv1 (float input), conv2 (DAB input: the popcount conv), pools, fc1 and logits all binary weights.
  assert.deepEqual(
    mcu.layers.map((l) => `${l.kind}:${l.weights}`),
    ['conv:binary', 'maxpool:none', 'conv:binary', 'maxpool:none', 'flatten:none', 'dense:binary', 'dense:binary'],
  );
  const dir = tempDir('cmp-host-lenet-');
  writeFileSync(join(dir, 'model.bin'), mcu.blob);
  writeFileSync(join(dir, 'inputs.f32'), data.test.x.subarray(0, samples * 784));
  const run = spawnSync(binary, ['run', join(dir, 'model.bin'), join(dir, 'inputs.f32'), String(samples)], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const rows = run.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number));
  assert.equal(rows.length, samples);
  const backend = await createBackend('ort-node', file);
  const expected = await predict(backend, file, data, samples);
  await backend.dispose();
  const logits = Float32Array.from(rows.flatMap((r) => r.slice(2)));
  const diff = maxAbsDiff(logits, expected);
  assert.ok(diff <= 1e-4, `max abs logit difference ${diff}`);
  rows.forEach((r, i) => {
    const ref = Array.from(expected.subarray(i * 10, i * 10 + 10));
    assert.equal(r[0], ref.indexOf(Math.max(...ref)), `label of image ${i}`);
  });

  // The loader refuses damaged or foreign blobs before running anything.
  const refuse = (blob: Uint8Array): string => {
    writeFileSync(join(dir, 'bad.bin'), blob);
    const bad = spawnSync(binary, ['run', join(dir, 'bad.bin'), join(dir, 'inputs.f32'), '1'], { encoding: 'utf8' });
    assert.equal(bad.status, 1, bad.stdout + bad.stderr);
    return bad.stdout.trim();
  };
  const flipped = mcu.blob.slice();
  flipped[mcu.blob.length >> 1] ^= 0x01;
  assert.equal(refuse(flipped), 'FAIL load CRC');
  // Formats 1 and 2 are read; a later one is refused (the version is checked before the CRC).
  const version3 = mcu.blob.slice();
  version3[4] = 3;
  assert.equal(refuse(version3), 'FAIL load MODEL_VERSION');
  assert.equal(refuse(mcu.blob.subarray(0, mcu.blob.length - 4)), 'FAIL load MODEL');
});

test('host-built runtime runs an int8 hybrid LeNet blob (int8 conv1 and classifier, DAB between) as training does', async () => {
  const samples = 40;
  const hybrid = binarizedCase('lenet', 'dab', 'none', undefined, ['first', 'last']);
  const data = await fixtureData(hybrid.data);
  const trained = await fixtures.model(hybrid);
  const mcu = convertToMcuModel(parseModelFile(exportOnnx(trained.frozen).bytes, 'hybrid.onnx'));
  assert.deepEqual(
    mcu.layers.map((l) => `${l.kind}:${l.weights}`),
    ['conv:int8', 'maxpool:none', 'conv:binary', 'maxpool:none', 'flatten:none', 'dense:binary', 'dense:int8'],
  );
  const dir = tempDir('cmp-host-hybrid-');
  writeFileSync(join(dir, 'model.bin'), mcu.blob);
  writeFileSync(join(dir, 'inputs.f32'), data.test.x.subarray(0, samples * 784));
  const run = spawnSync(binary, ['run', join(dir, 'model.bin'), join(dir, 'inputs.f32'), String(samples)], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  const rows = run.stdout
    .trim()
    .split('\n')
    .map((l) => l.split(' ').map(Number));
  // The trained model's own float computation: onnxruntime runs the int8 classifier with int8 inputs (MatMulNBits).
  const expected = await predictFrozen(trained.frozen, data, data.test, samples);
  const logits = Float32Array.from(rows.flatMap((r) => r.slice(2)));
  assert.ok(maxAbsDiff(logits, expected) <= 1e-4, `max abs logit difference ${maxAbsDiff(logits, expected)}`);
});
