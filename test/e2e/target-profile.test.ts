// The dashboard and `cmp profile` profile a device through the same target: for this machine and for the board under
// QEMU, the CLI's cmp-profile/1 and the dashboard's agree on everything but the timings.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DashboardDevice } from '../../src/dashboard/messages.js';
import { profileDevice } from '../../src/dashboard/profile-jobs.js';
import { targetFor } from '../../src/deploy/targets.js';
import { requireTool } from '../../src/link/firmware-build.js';
import { startQemu, type QemuBoard } from '../../src/link/qemu.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { DAB_MLP, fixtures } from '../fixtures.js';
import { runCli, tempDir } from '../helpers.js';

const COUNT = 12;
const dir = tempDir('cmp-target-profile-');
let model: string;
let board: QemuBoard | undefined;

before(async () => {
  model = await fixtures.onnx(DAB_MLP, join(dir, 'fm-dab.onnx'));
});

after(async () => {
  await board?.stop();
});

/**
 * A profile without what varies from run to run: latencies, throughput, times, memory, and the bytes on the wire (a
 * frame QEMU's PTY dropped is sent again and counted).
 */
function measuredOnce(p: DeviceProfile): unknown {
  return {
    schema: p.schema,
    device: p.device,
    model: p.model,
    backend: p.backend,
    dataset: p.dataset,
    samples: p.samples,
    accuracy: p.accuracy,
    exits: p.exits,
    stages: p.stages.map((s) => [s.name, s.runs]),
    fullBytes: p.link?.fullBytes,
    latencies: p.latenciesMs.length,
  };
}

/** What the dashboard measures for `device`, as a job of its session runs it. */
async function dashboardProfile(device: DashboardDevice): Promise<DeviceProfile> {
  const result = await profileDevice(device, undefined, {
    model,
    dataset: 'fashion-mnist',
    count: COUNT,
    onProgress: () => undefined,
  });
  return result.profile;
}

function cliProfile(args: string[]): DeviceProfile {
  const r = runCli(['profile', model, ...args, '--data', 'fashion-mnist', '--limit', String(COUNT), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as DeviceProfile & { profile?: DeviceProfile };
  return out.profile ?? out;
}

test('this machine: cmp profile --target local and the dashboard give the same cmp-profile/1', async () => {
  const cli = cliProfile(['--target', 'local', '--backend', 'ort-node']);
  const dashboard = await dashboardProfile({
    id: 'local:ort-node',
    kind: 'local',
    name: 'this machine (ort-node)',
    detail: '',
    profilable: true,
    needsModel: true,
  });
  assert.equal(cli.schema, 'cmp-profile/1');
  assert.equal(cli.samples, COUNT);
  assert.deepEqual(measuredOnce(dashboard), measuredOnce(cli));
});

test('the board under QEMU: cmp profile --target mcu and the dashboard give the same cmp-profile/1', async () => {
  requireTool('qemu-system-arm');
  board = await startQemu({ elfPath: (await fixtures.firmware('mps2-an385')).elfPath });
  const deployed = runCli(['deploy', model, '--target', 'mcu', '--port', board.port, '--data', 'fashion-mnist']);
  assert.equal(deployed.code, 0, deployed.stderr);
  const cli = cliProfile(['--target', 'mcu', '--port', board.port]);
  const dashboard = await dashboardProfile({
    id: `mcu:${board.port}`,
    kind: 'mcu',
    name: board.port,
    detail: '',
    profilable: true,
    needsModel: true,
  });
  assert.equal(cli.backend, 'mcu-split');
  assert.equal(cli.samples, COUNT);
  assert.deepEqual(measuredOnce(dashboard), measuredOnce(cli));
});

test('targets are found by kind; an old name reads as its kind and an unknown one lists the kinds', () => {
  assert.equal(targetFor('serial').kind, 'mcu');
  assert.throws(() => targetFor('rpii'), {
    message: 'Unknown target "rpii". Use one of: local, rpi, mcu, browser, electron.',
  });
});
