// cmp deploy --target rpi on real ARM devices: Debian userlands under qemu-user (test/arm-userlands.ts), reached over
// SSH. armhf is Raspberry Pi OS 32-bit's base (Node 18 from Debian reports `arm`; onnxruntime-node has no binary for
// it) and arm64 is the 64-bit one (onnxruntime-node's linux-arm64 binary). On each: deploy a binary model with an exit
// and an input mask, health, status, profile against the host's answers, a second deploy, rollback. Emulated code is
// many times slower than a Pi, so only behaviour is checked, never speed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { StagedRunReport } from '../../src/cli/commands/run.js';
import { stagePath } from '../../src/core/manifest.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { ARM_ARCHES, type ArmArch } from '../arm-userlands.js';
import { EXIT_MASKED_MLP, EXIT_MLP, fixtures } from '../fixtures.js';
import { runCli, tempDir } from '../helpers.js';
import {
  deviceHealth,
  deviceRelease,
  deviceTempDir,
  hostPath,
  startSshd,
  stopDeviceService,
  type Sshd,
} from './sshd.js';

/** What each device must report, which backends `auto` may pick there, and the native files its release holds. */
const EXPECT: Record<ArmArch, { arch: string; uname: string; backends: RegExp; native: string[] }> = {
  armhf: { arch: 'arm', uname: 'Linux armv7l', backends: /^(bitwasm|ort-web)$/, native: [] },
  arm64: {
    arch: 'arm64',
    uname: 'Linux aarch64',
    backends: /^(bitwasm|ort-node)$/,
    native: ['libonnxruntime.so.1', 'onnxruntime_binding.node'].map(
      (f) => `node_modules/onnxruntime-node/bin/napi-v6/linux/arm64/${f}`,
    ),
  },
};
/** ELF e_machine of each architecture's code (EM_ARM, EM_AARCH64). */
const ELF_MACHINE: Record<ArmArch, number> = { armhf: 40, arm64: 183 };
/** Instances the device profiles: enough for both ends of the exit, few enough for an emulated CPU. */
const LIMIT = 30;

let work: string;
const models = { exitMasked: '', exit: '' };
const devices: { sshd: Sshd; dir: string }[] = [];

before(async () => {
  work = tempDir('cmp-rpi-arm-');
  // A threshold that some instances pass and some do not, so the profile has both ends of the exit.
  const { frozen, training } = await fixtures.model(EXIT_MASKED_MLP);
  const exported = exportOnnx(
    { ...frozen, exits: (frozen.exits ?? []).map((e) => ({ ...e, threshold: 1.2 })) },
    { dataset: training.dataset, epochs: training.epochs, testAccuracy: training.testAccuracy },
  );
  models.exitMasked = join(work, 'exit-masked.onnx');
  writeFileSync(models.exitMasked, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(models.exitMasked, k + 1), bytes));
  models.exit = await fixtures.onnx(EXIT_MLP, join(work, 'exit.onnx'));
});

after(() => {
  for (const { sshd, dir } of devices) {
    stopDeviceService(dir, sshd);
    sshd.kill();
    rmSync(hostPath(sshd, dir), { recursive: true, force: true });
  }
});

/** Native code files under a release folder (seen from here), relative to it. */
function nativeFiles(release: string): string[] {
  const r = spawnSync('find', ['.', '-name', '*.node', '-o', '-name', '*.so*'], { cwd: release, encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^\.\//, ''))
    .sort();
}

for (const arch of ARM_ARCHES) {
  test(`${arch}: deploy, health, status, profile and rollback of a binary model with an exit and a mask`, async () => {
    const sshd = await startSshd({ arch });
    const dir = deviceTempDir(sshd, 'cmp-device-');
    devices.push({ sshd, dir });
    const expect = EXPECT[arch];
    const args = ['--target', 'rpi', '--host', sshd.host, '--identity', sshd.identity];
    args.push('--known-hosts', sshd.knownHosts, '--remote-dir', dir);

    const r = runCli(['deploy', models.exitMasked, ...args, '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      release: string;
      backend: string;
      backendReason: string;
      facts: { arch: string; uname: string; nodeVersion: string };
    };
    assert.deepEqual([report.facts.arch, report.facts.uname], [expect.arch, expect.uname]);
    assert.match(report.facts.nodeVersion, /^v18\./, 'Debian bookworm ships Node 18, as Raspberry Pi OS does');
    assert.match(report.backend, expect.backends);
    // The release holds the device's own native code and nothing else: none on armhf, the arm64 binary on arm64.
    const release = hostPath(sshd, join(dir, 'releases', report.release));
    const native = nativeFiles(release);
    assert.deepEqual(native, expect.native);
    for (const f of native) assert.equal(readFileSync(join(release, f)).readUInt16LE(18), ELF_MACHINE[arch], f);
    if (arch === 'armhf') assert.match(report.backendReason, /no linux\/arm binary/);
    const health = await deviceHealth(hostPath(sshd, dir));
    assert.deepEqual([health.ok, health.release, health.backend], [true, report.release, report.backend]);

    const status = runCli(['status', ...args, '--json', '--quiet']);
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as { current: string; health: { ok: boolean }; service: { mode: string } };
    assert.deepEqual([s.current, s.health.ok, s.service.mode], [report.release, true, 'process']);

    // The device's answers on real images equal the host's, run on the backend the device runs.
    const data = ['--data', 'fashion-mnist', '--limit', String(LIMIT), '--json', '--quiet'];
    const p = runCli(['profile', ...args, ...data]);
    assert.equal(p.code, 0, p.stderr);
    const profile = JSON.parse(p.stdout) as DeviceProfile;
    assert.deepEqual(
      [profile.model.release, profile.backend, profile.device.arch],
      [report.release, report.backend, expect.arch],
    );
    const host = runCli(['run', models.exitMasked, '--backend', profile.backend, ...data]);
    assert.equal(host.code, 0, host.stderr);
    const run = JSON.parse(host.stdout) as StagedRunReport & { accuracy: number };
    assert.equal(profile.accuracy, run.accuracy);
    const shares = (exits: { exit: string; share: number }[]): [string, number][] =>
      exits.map((e) => [e.exit, e.share]);
    assert.deepEqual(shares(profile.exits), shares(run.exits));
    assert.ok(profile.exits[0].share > 0 && profile.exits[0].share < 1, `exit1 share ${profile.exits[0].share}`);
    assert.ok(profile.link && profile.link.saving > 1.5, 'the masked model sends about half the input');

    // A second model, then back to the first.
    const second = runCli(['deploy', models.exit, ...args, '--json', '--quiet']);
    assert.equal(second.code, 0, second.stderr);
    const b = JSON.parse(second.stdout) as { release: string; previous: string };
    assert.deepEqual([b.previous, deviceRelease(hostPath(sshd, dir))], [report.release, b.release]);
    const back = runCli(['rollback', ...args, '--json', '--quiet']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(deviceRelease(hostPath(sshd, dir)), report.release);
    const after = await deviceHealth(hostPath(sshd, dir));
    assert.deepEqual([after.ok, after.release], [true, report.release]);
  });
}
