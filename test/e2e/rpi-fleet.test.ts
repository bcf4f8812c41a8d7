// Fleets and real ARM devices: an x64 device (this machine) and Debian armhf and arm64 userlands under qemu-user
// (test/arm-userlands.ts: armhf is Raspberry Pi OS 32-bit's base, Node 18 reporting `arm`) in one hosts file. A binary
// model with an exit and a mask goes to all three in parallel, each with its own platform's runtime; each answers
// like the host, and profiles like it; then, in a fleet of x64 and armhf, the x64 one is down during a deploy while the
// armhf one moves on, and rolls back. Emulated code is many times slower than a Pi, so only behaviour is checked, never
// speed: each ARM activation starts Node and loads runtimes under emulation, so the file deploys there as few times as
// its checks need (arm64's rollback runs the same agent code as armhf's).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { StagedRunReport } from '../../src/cli/commands/run.js';
import { stagePath } from '../../src/core/manifest.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import type { ArmArch } from '../arm-userlands.js';
import { EXIT_MASKED_MLP, EXIT_MLP, fixtures } from '../fixtures.js';
import { assertOneLineError, runCli, tempDir } from '../helpers.js';
import {
  deviceHealth,
  deviceRelease,
  deviceTempDir,
  hostPath,
  startSshd,
  stopDeviceService,
  type Sshd,
} from './sshd.js';

interface Device {
  sshd: Sshd;
  /** The device's cmp folder, as the device names it. */
  dir: string;
}

/** What each device must report, which backends `auto` may pick there, and the native files its release holds. */
const EXPECT: Record<'host' | ArmArch, { arch: string; uname: string; backends: RegExp; native: string[] }> = {
  host: {
    arch: process.arch,
    uname: `Linux ${spawnSync('uname', ['-m'], { encoding: 'utf8' }).stdout.trim()}`,
    backends: /^(bitwasm|ort-node)$/,
    native: ['libonnxruntime.so.1', 'onnxruntime_binding.node'].map(
      (f) => `node_modules/onnxruntime-node/bin/napi-v6/linux/${process.arch}/${f}`,
    ),
  },
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
/** ELF e_machine of the native code each device runs (EM_X86_64, EM_ARM, EM_AARCH64). */
const ELF_MACHINE: Record<string, number> = { x64: 62, arm: 40, arm64: 183 };
/** Instances each device profiles: enough for both ends of the exit, few enough for an emulated CPU. */
const LIMIT = 30;

let work: string;
/** The binary model with an exit and a mask (first deploy), and the plain exit model (second). */
const models = { exitMasked: '', exit: '' };
const fleet: Device[] = [];
let hostsFile: string;
/** The x64 and armhf devices only: the fleet of the cut-off deploy. */
let pairFile: string;
let knownHosts: string;
/** Each device's release of the first model, in hosts-file order. */
let first: string[] = [];

before(async () => {
  work = tempDir('cmp-fleet-');
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
  for (const arch of [undefined, 'armhf', 'arm64'] as const) {
    const sshd = await startSshd(arch ? { arch } : {});
    fleet.push({ sshd, dir: deviceTempDir(sshd, 'cmp-fleet-') });
  }
  // One known_hosts for the fleet; each device has its own key and folder on its line of the hosts file.
  knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, fleet.map((d) => readFileSync(d.sshd.knownHosts, 'utf8')).join(''));
  const line = (d: Device): string =>
    `${d.sshd.host} remote-dir=${d.dir} identity=${d.sshd.identity}  # ${d.sshd.arch ?? 'x64'}`;
  hostsFile = join(work, 'fleet.txt');
  writeFileSync(hostsFile, ['# three devices on this machine: x64, armhf, arm64', ...fleet.map(line), ''].join('\n'));
  pairFile = join(work, 'pair.txt');
  writeFileSync(pairFile, ['# x64 and armhf', ...fleet.slice(0, 2).map(line), ''].join('\n'));
});

after(() => {
  for (const d of fleet) {
    stopDeviceService(d.dir, d.sshd);
    d.sshd.kill();
    if (d.sshd.arch) rmSync(hostPath(d.sshd, d.dir), { recursive: true, force: true });
  }
});

function fleetArgs(hosts = hostsFile): string[] {
  return ['--target', 'rpi', '--hosts', hosts, '--known-hosts', knownHosts, '--parallel', '8'];
}

/** The flags that reach one device. */
function deviceArgs(d: Device): string[] {
  const { host, identity, knownHosts: known } = d.sshd;
  return ['--target', 'rpi', '--host', host, '--identity', identity, '--known-hosts', known, '--remote-dir', d.dir];
}

/** A device's `current` release, read from here. */
function releaseOf(d: Device): string {
  return deviceRelease(hostPath(d.sshd, d.dir));
}

/** Native code files under a release folder (seen from here), relative to it. */
function nativeFiles(release: string): string[] {
  const r = spawnSync('find', ['.', '-name', '*.node', '-o', '-name', '*.so*'], { cwd: release, encoding: 'utf8' });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((f) => f.replace(/^\.\//, ''))
    .sort();
}

test("x64, armhf and arm64 in parallel: each gets its own platform's runtime, answers like the host and passes its health check", async () => {
  const r = runCli(['deploy', models.exitMasked, ...fleetArgs(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout) as {
    device: string;
    ok: boolean;
    result: { release: string; backend: string; backendReason: string; facts: Record<string, string> };
  }[];
  assert.deepEqual(
    rows.map((row) => [row.device, row.ok]),
    fleet.map((d) => [d.sshd.host.replace(/:22$/, ''), true]),
  );
  first = rows.map((row) => row.result.release);
  assert.equal(new Set(first).size, 3, `one release per platform: ${first.join(' ')}`);
  for (const [i, d] of fleet.entries()) {
    const { result } = rows[i];
    const expect = EXPECT[d.sshd.arch ?? 'host'];
    const where = d.sshd.arch ?? 'host';
    assert.deepEqual([result.facts.arch, result.facts.uname], [expect.arch, expect.uname], where);
    if (d.sshd.arch) assert.match(result.facts.nodeVersion, /^v18\./, 'Debian bookworm has Node 18, as Pi OS does');
    assert.match(result.backend, expect.backends, where);
    // The release holds the device's own native code and nothing else: none on armhf, the arm64 binary on arm64.
    const release = hostPath(d.sshd, join(d.dir, 'releases', result.release));
    const native = nativeFiles(release);
    assert.deepEqual(native, expect.native, where);
    for (const f of native) assert.equal(readFileSync(join(release, f)).readUInt16LE(18), ELF_MACHINE[expect.arch], f);
    if (d.sshd.arch === 'armhf') assert.match(result.backendReason, /no linux\/arm binary/);
    // Activation already compared the device's answer to the smoke instance with the host's; the service serves it.
    assert.equal(releaseOf(d), result.release);
    const health = await deviceHealth(hostPath(d.sshd, join(d.dir)));
    assert.deepEqual([health.ok, health.release, health.backend], [true, result.release, result.backend], where);
  }
});

test('status and profile: a row per device, and each device answers real images as the host does on its backend', () => {
  const status = runCli(['status', ...fleetArgs()]);
  assert.equal(status.code, 0, status.stderr);
  for (const d of fleet) assert.match(status.stdout, new RegExp(`${d.sshd.host}\\s+ok\\s+[0-9a-f]{12}`));
  const one = runCli(['status', ...deviceArgs(fleet[1]), '--json', '--quiet']);
  assert.equal(one.code, 0, one.stderr);
  const s = JSON.parse(one.stdout) as { current: string; health: { ok: boolean }; service: { mode: string } };
  assert.deepEqual([s.current, s.health.ok, s.service.mode], [first[1], true, 'process']);

  const data = ['--data', 'fashion-mnist', '--limit', String(LIMIT), '--json', '--quiet'];
  const profile = runCli(['profile', ...fleetArgs(), ...data]);
  assert.equal(profile.code, 0, profile.stderr);
  const rows = JSON.parse(profile.stdout) as { device: string; ok: boolean; result: DeviceProfile }[];
  assert.equal(rows.length, 3);
  const hostRuns = new Map<string, StagedRunReport & { accuracy: number }>();
  for (const [i, { ok, device, result: p }] of rows.entries()) {
    assert.equal(ok, true, device);
    assert.deepEqual([p.samples, p.device.name, p.model.release], [LIMIT, device, first[i]]);
    assert.equal(p.device.arch, EXPECT[fleet[i].sshd.arch ?? 'host'].arch);
    if (!hostRuns.has(p.backend)) {
      const host = runCli(['run', models.exitMasked, '--backend', p.backend, ...data]);
      assert.equal(host.code, 0, host.stderr);
      hostRuns.set(p.backend, JSON.parse(host.stdout) as StagedRunReport & { accuracy: number });
    }
    const run = hostRuns.get(p.backend) as StagedRunReport & { accuracy: number };
    const shares = (exits: { exit: string; share: number }[]): [string, number][] =>
      exits.map((e) => [e.exit, e.share]);
    assert.equal(p.accuracy, run.accuracy, device);
    assert.deepEqual(shares(p.exits), shares(run.exits), device);
    assert.ok(p.exits[0].share > 0 && p.exits[0].share < 1, `${device}: exit1 share ${p.exits[0].share}`);
    assert.ok(p.link && p.link.saving > 1.5, `${device}: the masked model sends about half the input`);
  }
});

test('an x64 device that is down keeps its release while the armhf one moves on; a rerun catches it up', async () => {
  const [victim, armhf] = fleet;
  // Down for the whole deploy (test/e2e/rpi-deploy.test.ts cuts one off mid-upload, where the window is its own).
  victim.sshd.kill();
  const r = runCli(['deploy', models.exit, ...fleetArgs(pairFile), '--quiet']);
  assert.match(r.stderr, /failed on 1 of 2 devices/, `every device's row:\n${r.stdout}`);
  assertOneLineError(r, new RegExp(`Deploy failed on 1 of 2 devices: ${victim.sshd.host}\\.`));
  assert.match(r.stdout, /FAILED/);
  assert.equal(releaseOf(victim), first[0], 'the device that was down keeps its release');
  assert.equal((await deviceHealth(victim.dir)).release, first[0], 'and keeps serving it');
  const second = releaseOf(armhf);
  assert.notEqual(second, first[1], 'the armhf device moved on');

  // Again, with the device back: the one that has the release is skipped, the other catches up.
  await victim.sshd.restart();
  const again = runCli(['deploy', models.exit, ...fleetArgs(pairFile), '--json', '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  const rerun = (JSON.parse(again.stdout) as { result: { release: string; unchanged: boolean } }[]).map((row) => [
    row.result.release,
    row.result.unchanged,
  ]);
  const caughtUp = releaseOf(victim);
  assert.notEqual(caughtUp, first[0]);
  assert.deepEqual(rerun, [
    [caughtUp, false],
    [second, true],
  ]);
});

test('rollback on armhf: the first release runs again and passes its health check', async () => {
  const armhf = fleet[1];
  const r = runCli(['rollback', ...deviceArgs(armhf), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(releaseOf(armhf), first[1]);
  const health = await deviceHealth(hostPath(armhf.sshd, armhf.dir));
  assert.deepEqual([health.ok, health.release], [true, first[1]]);
});

test('fleet: bad hosts files are one-line errors naming the line', () => {
  const bad = join(work, 'bad.txt');
  writeFileSync(bad, 'pi@ok.local\npi@bad host\n');
  assertOneLineError(
    runCli(['status', '--target', 'rpi', '--hosts', bad]),
    /bad\.txt:2: --host "pi@bad" is not|bad\.txt:2: unknown setting/,
  );
  writeFileSync(bad, 'pi@a.local color=blue\n');
  assertOneLineError(runCli(['status', '--target', 'rpi', '--hosts', bad]), /bad\.txt:1: unknown setting "color=blue"/);
  writeFileSync(bad, '# nobody\n');
  assertOneLineError(runCli(['status', '--target', 'rpi', '--hosts', bad]), /lists no devices/);
  assertOneLineError(runCli(['status', '--target', 'rpi', '--hosts', bad, '--host', 'pi@x']), /not both/);
});
