// The model compiled into flash (cmp firmware build --model) on QEMU's mps2-an385: HELLO names the built-in model,
// the arena holds only activations, and a model larger than the board's RAM but within its flash runs.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { boardMemory, buildFirmware, requireTool } from '../../src/link/firmware-build.js';
import { convertToMcuModel, type McuModel } from '../../src/core/mcu-model.js';
import { FEATURE_BUILTIN } from '../../src/link/protocol.js';
import { analyzeModel } from '../../src/profile/analyze.js';
import { bootQemu, type QemuSession } from '../../src/link/qemu.js';
import { createBackend } from '../../src/runtime/backends.js';
import { predict } from '../../src/runtime/evaluate.js';
import { readModelFile } from '../../src/runtime/model-file.js';
import { DAB_MLP, fixtureData, fixtures, type ModelFixture } from '../fixtures.js';
import { tempDir } from '../helpers.js';

const IMAGES = 8;
const FEATURES = 784;
/** Device float32 sums run in another order than onnxruntime's. */
const TOLERANCE = 1e-3;
/** The arena the DAB MLP took before (issue 24): its 8788-byte blob + two 784-float buffers, bits, a 784-float patch. */
const ARENA_BEFORE_BYTES = 18_396;

/** A float 784-128-10 MLP: 100 480 float weights, about 400 KB, more than the board's 256 KiB of RAM. */
const LARGE_MLP: ModelFixture = {
  data: DAB_MLP.data,
  train: { ...DAB_MLP.train, widths: [128], binarizeWeights: 'none', binarizeActivations: 'none', seed: 4 },
};

const dir = tempDir('cmp-mcu-flash-');
const sessions: QemuSession[] = [];

after(async () => {
  for (const s of sessions) await s.close();
});

/** Builds the image with `fixture` in flash, boots it and checks its answers against onnxruntime-node. */
async function bootBuiltIn(fixture: ModelFixture, name: string): Promise<{ mcu: McuModel; session: QemuSession }> {
  requireTool('qemu-system-arm');
  const path = await fixtures.onnx(fixture, join(dir, `${name}.onnx`));
  const file = readModelFile(path);
  const mcu = convertToMcuModel(file);
  const build = await buildFirmware({ board: 'mps2-an385', outDir: join(dir, `fw-${name}`), model: mcu });
  assert.deepEqual(build.model, { crc: mcu.crc, bytes: mcu.blob.length });
  assert.equal(build.arenaBytes, mcu.workspaceBytes, 'the image reserves exactly the workspace');
  const session = await bootQemu({ elfPath: build.elfPath, client: { timeoutMs: 3000 } });
  sessions.push(session);
  const analysis = analyzeModel(file, { target: 'mcu', board: 'mps2-an385' });
  assert.equal(analysis.mcu?.modelBytes, session.capabilities.model?.bytes, 'cmp analyze: the flash HELLO reports');
  assert.equal(
    analysis.mcu?.arenaInFlashBytes,
    session.capabilities.model?.arenaUsed,
    'cmp analyze: the arena HELLO reports',
  );
  assert.equal(analysis.mcu?.fitsInFlash, true);
  const data = await fixtureData(fixture.data);
  const backend = await createBackend('ort-node', file);
  const expected = await predict(backend, file, data, IMAGES).finally(() => backend.dispose());
  for (let i = 0; i < IMAGES; i++) {
    const x = Uint8Array.from(data.test.x.subarray(i * FEATURES, (i + 1) * FEATURES), (v) => Math.round(v * 255));
    const r = await session.client.infer(x, { logits: true });
    const row = expected.subarray(i * 10, (i + 1) * 10);
    let worst = 0;
    row.forEach((v, c) => (worst = Math.max(worst, Math.abs(v - (r.logits as Float32Array)[c]))));
    assert.equal(r.label, row.indexOf(Math.max(...row)), `label of image ${i}`);
    assert.ok(worst <= TOLERANCE, `image ${i}: largest logit difference ${worst}`);
  }
  return { mcu, session };
}

test('the DAB MLP in flash: HELLO reports its CRC, no upload; the arena is at most a third of before', async () => {
  const { mcu, session } = await bootBuiltIn(DAB_MLP, 'dab');
  const caps = session.capabilities;
  assert.ok((caps.features & FEATURE_BUILTIN) !== 0, 'the built-in feature bit');
  assert.deepEqual(caps.model, { crc: mcu.crc, bytes: mcu.blob.length, builtIn: true, arenaUsed: mcu.workspaceBytes });
  assert.equal(caps.arenaBytes, mcu.workspaceBytes);
  assert.ok(
    3 * mcu.workspaceBytes <= ARENA_BEFORE_BYTES,
    `arena ${mcu.workspaceBytes} bytes against ${ARENA_BEFORE_BYTES} before`,
  );
  await session.client.reset();
  const again = await session.client.connect();
  assert.equal(again.model?.crc, mcu.crc, 'RESET loads the built-in model again');
});

test("a model larger than the board's RAM but within its flash runs from flash", async () => {
  const board = boardMemory('mps2-an385');
  const { mcu, session } = await bootBuiltIn(LARGE_MLP, 'large');
  assert.ok(mcu.blob.length > board.ramBytes, `model ${mcu.blob.length} bytes, RAM ${board.ramBytes}`);
  assert.ok(mcu.blob.length < board.flashBytes, `model ${mcu.blob.length} bytes, flash ${board.flashBytes}`);
  assert.ok(mcu.arenaBytes > board.arenaBytes, 'uploaded, it would not fit the default arena');
  assert.equal(session.capabilities.model?.builtIn, true);
});
