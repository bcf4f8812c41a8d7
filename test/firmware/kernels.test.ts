// The firmware's kernels built for the host with gcc, run on the golden bit-format vectors; its model loader's refusals.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { toFloat16Bits } from '../../src/core/float16.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { firmwareRoot, requireTool } from '../../src/link/firmware-build.js';
import { convertToMcuModel } from '../../src/core/mcu-model.js';
import { parseModelFile } from '../../src/runtime/model-file.js';
import { binarizedCase, fixtures } from '../fixtures.js';
import { ROOT, tempDir } from '../helpers.js';

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

test('host-built runtime loads a LeNet blob with every kernel kind, and refuses damaged or foreign blobs', async () => {
  // What the runtime computes on real models, against the trained model and every other backend, is the conformance
  // suite's (test/runtime/conformance.test.ts); here, the kernels those blobs exercise and the loader's refusals.
  const trained = await fixtures.model(binarizedCase('lenet', 'dab', 'dab'));
  const mcu = convertToMcuModel(parseModelFile(exportOnnx(trained.frozen).bytes, 'lenet.onnx'));
  // conv1 (float input), conv2 (DAB input: the popcount conv), pools, fc1 and logits all binary weights.
  assert.deepEqual(
    mcu.layers.map((l) => `${l.kind}:${l.weights}`),
    ['conv:binary', 'maxpool:none', 'conv:binary', 'maxpool:none', 'flatten:none', 'dense:binary', 'dense:binary'],
  );
  const hybrid = await fixtures.model(binarizedCase('lenet', 'dab', 'none', undefined, ['first', 'last']));
  assert.deepEqual(
    convertToMcuModel(parseModelFile(exportOnnx(hybrid.frozen).bytes, 'hybrid.onnx')).layers.map(
      (l) => `${l.kind}:${l.weights}`,
    ),
    ['conv:int8', 'maxpool:none', 'conv:binary', 'maxpool:none', 'flatten:none', 'dense:binary', 'dense:int8'],
  );
  const dir = tempDir('cmp-host-lenet-');
  writeFileSync(join(dir, 'inputs.f32'), new Float32Array(784));
  const run = (blob: Uint8Array) => {
    writeFileSync(join(dir, 'model.bin'), blob);
    return spawnSync(binary, ['run', join(dir, 'model.bin'), join(dir, 'inputs.f32'), '1'], { encoding: 'utf8' });
  };
  const ran = run(mcu.blob);
  assert.equal(ran.status, 0, ran.stdout + ran.stderr);
  // One line: label, exit, entropy and the 10 logits.
  assert.equal(ran.stdout.trim().split(' ').length, 13, ran.stdout);

  // The loader refuses damaged or foreign blobs before running anything.
  const refuse = (blob: Uint8Array): string => {
    const bad = run(blob);
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
