// The user's microcontroller path through the real CLI: cmp firmware build, cmp firmware qemu, cmp deploy --target mcu.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { DAB_MLP, fixtures, type ModelFixture } from '../fixtures.js';
import { CLI, runCli, tempDir } from '../helpers.js';

const dir = tempDir('cmp-mcu-cli-');
const buildDir = join(dir, 'fw');
let fitting: string;
let tooBig: string;
let board: ChildProcess | undefined;

/** A float first layer (784 x 256 x 4 bytes = 784 KiB) cannot fit a 128 KiB arena. */
const TOO_BIG_MLP: ModelFixture = {
  data: DAB_MLP.data,
  train: { ...DAB_MLP.train, widths: [256], keepFloat: ['first'], seed: 2 },
};

before(async () => {
  fitting = await fixtures.onnx(DAB_MLP, join(dir, 'fits.onnx'));
  tooBig = await fixtures.onnx(TOO_BIG_MLP, join(dir, 'too-big.onnx'));
});

after(() => {
  board?.kill('SIGKILL');
});

test('cmp firmware build prints flash and RAM use', () => {
  const json = runCli(['firmware', 'build', '--board', 'mps2-an385', '--out', buildDir, '--json', '--quiet']);
  assert.equal(json.code, 0, json.stderr);
  const b = JSON.parse(json.stdout) as { flashBytes: number; ramBytes: number; arenaBytes: number; elfPath: string };
  assert.ok(b.flashBytes > 1000 && b.ramBytes > b.arenaBytes, json.stdout);
  assert.equal(b.elfPath, join(buildDir, 'cmp-fw.elf'));
  const table = runCli(['firmware', 'build', '--board', 'mps2-an385', '--out', buildDir, '--quiet']);
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /flash bytes\s+of which model\s+RAM bytes/);
  assert.match(table.stdout, new RegExp(`mps2-an385\\s+${b.flashBytes}\\s+-\\s+${b.ramBytes}`));
});

test('bad firmware and deploy arguments are one-line errors with exit code 2', () => {
  const action = runCli(['firmware', 'flash']);
  assert.equal(action.code, 2);
  assert.match(action.stderr, /Unknown firmware action "flash". Use one of: build, qemu\./);
  const boardName = runCli(['firmware', 'build', '--board', 'stm32']);
  assert.equal(boardName.code, 2);
  assert.match(boardName.stderr, /--board must be one of: mps2-an385/);
  const port = runCli(['deploy', fitting, '--target', 'mcu']);
  assert.equal(port.code, 2);
  assert.match(port.stderr, /needs --port PATH/);
});

test('cmp firmware qemu serves the board; cmp deploy uploads, verifies and smoke-tests; a too-big model is refused', async () => {
  board = spawn(process.execPath, [
    CLI,
    'firmware',
    'qemu',
    '--elf',
    join(buildDir, 'cmp-fw.elf'),
    '--json',
    '--quiet',
  ]);
  const exited = new Promise<number | null>((resolve) => board?.on('exit', (code) => resolve(code)));
  const first = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: board?.stdout as NodeJS.ReadableStream });
    lines.once('line', resolve);
    void exited.then((code) => reject(new Error(`cmp firmware qemu exited with ${code}`)));
  });
  const served = JSON.parse(first) as { port: string; capabilities: { board: string; arenaBytes: number } };
  assert.match(served.port, /^\/dev\/pts\/\d+$/);
  assert.equal(served.capabilities.board, 'mps2-an385');

  const refused = runCli(['deploy', tooBig, '--target', 'mcu', '--port', served.port, '--data', 'fashion-mnist']);
  assert.equal(refused.code, 1, refused.stdout);
  assert.match(
    refused.stderr,
    /needs \d+ bytes of device arena \(model \d+ \+ activations \d+\) but the board on \/dev\/pts\/\d+ has 131072\./,
  );

  const deployed = runCli([
    'deploy',
    fitting,
    '--target',
    'mcu',
    '--port',
    served.port,
    '--data',
    'fashion-mnist',
    '--json',
    '--quiet',
  ]);
  assert.equal(deployed.code, 0, deployed.stderr);
  const r = JSON.parse(deployed.stdout) as {
    crc: string;
    blobBytes: number;
    arenaUsed: number;
    smoke: { deviceLabel: number; hostLabel: number; maxLogitDiff: number; cycles: number };
  };
  assert.match(r.crc, /^0x[0-9a-f]{8}$/);
  assert.ok(r.arenaUsed > r.blobBytes);
  assert.equal(r.smoke.deviceLabel, r.smoke.hostLabel);
  assert.ok(r.smoke.maxLogitDiff <= 1e-4, `logit difference ${r.smoke.maxLogitDiff}`);
  assert.ok(r.smoke.cycles > 0);

  // cmp profile runs the deployed model on test images; another model is refused with the deploy command to run.
  const profiled = runCli([
    'profile',
    fitting,
    '--target',
    'mcu',
    '--port',
    served.port,
    '--data',
    'fashion-mnist',
    '--limit',
    '20',
    '--json',
    '--quiet',
  ]);
  assert.equal(profiled.code, 0, profiled.stderr);
  const p = JSON.parse(profiled.stdout) as {
    samples: number;
    accuracy: number;
    deviceShare: number;
    meanUpBytes: number;
    meanHandoffBytes: number;
  };
  assert.equal(p.samples, 20);
  assert.equal(p.deviceShare, 0, 'no exits: every image is handed off');
  assert.equal(p.meanHandoffBytes, 8 + 784, 'a model without a mask hands off every pixel');
  assert.ok(p.meanUpBytes > p.meanHandoffBytes, 'framing on top of the hand-off frame');
  const other = runCli([
    'profile',
    tooBig,
    '--target',
    'mcu',
    '--port',
    served.port,
    '--data',
    'fashion-mnist',
    '--limit',
    '5',
  ]);
  assert.equal(other.code, 2, other.stdout + other.stderr);
  assert.match(other.stderr.trim(), /holds another model .* Deploy it first: npx cmp deploy/);
  const noPort = runCli(['profile', fitting, '--target', 'mcu']);
  assert.equal(noPort.code, 2);
  assert.match(noPort.stderr, /needs --port PATH/);

  board.kill('SIGINT');
  assert.equal(await exited, 0, 'Ctrl-C stops the board cleanly');
  board = undefined;
});
