// Fleets and 32-bit ARM: a device that reports `arm` gets a release with no native code that runs and passes its
// health check on WebAssembly; three real sshd devices deployed in parallel, one cut off mid-deploy.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { EXIT_MLP, fixtures, MASKED_MLP } from '../fixtures.js';
import { assertOneLineError, CLI, runCli, tempDir, TEST_CMP_HOME } from '../helpers.js';
import { cutMidUpload, deviceHealth, deviceRelease, startSshd, stopDeviceService, type Sshd } from './sshd.js';

let work: string;
let exitModel: string;
let maskedModel: string;
const fleet: { sshd: Sshd; dir: string }[] = [];
let hostsFile: string;
let knownHosts: string;

before(async () => {
  work = tempDir('cmp-fleet-');
  exitModel = await fixtures.onnx(EXIT_MLP, join(work, 'exit.onnx'));
  maskedModel = await fixtures.onnx(MASKED_MLP, join(work, 'masked.onnx'));
  for (let i = 0; i < 3; i++) fleet.push({ sshd: await startSshd(), dir: join(work, `device${i + 1}`) });
  // One known_hosts for the fleet; each device has its own key and folder on its line of the hosts file.
  knownHosts = join(work, 'known_hosts');
  writeFileSync(knownHosts, fleet.map((d) => readFileSync(d.sshd.knownHosts, 'utf8')).join(''));
  hostsFile = join(work, 'fleet.txt');
  writeFileSync(
    hostsFile,
    [
      '# three devices on this machine',
      ...fleet.map((d) => `${d.sshd.host} remote-dir=${d.dir} identity=${d.sshd.identity}  # a pi`),
      '',
    ].join('\n'),
  );
});

after(() => {
  for (const d of fleet) {
    stopDeviceService(d.dir);
    d.sshd.kill();
  }
  stopDeviceService(join(work, 'old-pi'));
});

function fleetArgs(): string[] {
  return ['--target', 'rpi', '--hosts', hostsFile, '--known-hosts', knownHosts, '--parallel', '8'];
}

test('a 32-bit ARM device gets a release without native code that runs on WebAssembly and passes its health check', async () => {
  // The device's node reports arm (process.arch, what cmp reads) and uname says armv7l, as Raspberry Pi OS 32-bit does.
  const bin = join(work, 'armv7l-bin');
  mkdirSync(bin);
  writeFileSync(join(work, 'pretend-arm.mjs'), "Object.defineProperty(process, 'arch', { value: 'arm' });\n");
  writeFileSync(
    join(bin, 'node'),
    `#!/bin/sh\nexec ${process.execPath} --import ${join(work, 'pretend-arm.mjs')} "$@"\n`,
  );
  writeFileSync(join(bin, 'uname'), '#!/bin/sh\necho Linux armv7l\n');
  chmodSync(join(bin, 'node'), 0o755);
  chmodSync(join(bin, 'uname'), 0o755);
  const pi = await startSshd({ path: `${bin}:/usr/bin:/bin` });
  const dir = join(work, 'old-pi');
  try {
    const args = [
      '--target',
      'rpi',
      '--host',
      pi.host,
      '--identity',
      pi.identity,
      '--known-hosts',
      pi.knownHosts,
      '--remote-dir',
      dir,
    ];
    const r = runCli(['deploy', exitModel, ...args, '--json', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as {
      release: string;
      backend: string;
      backendReason: string;
      facts: { arch: string; uname: string };
    };
    assert.equal(report.facts.arch, 'arm');
    assert.equal(report.facts.uname, 'Linux armv7l');
    assert.match(report.backendReason, /no linux\/arm binary/);
    // No native onnxruntime: bitwasm and onnxruntime-web's WebAssembly build race on stage 1 of the exit model.
    const wasmOnly = /^(bitwasm|ort-web)$/;
    assert.match(report.backend, wasmOnly);
    const release = join(dir, 'releases', report.release);
    const files = spawnSync('find', [release, '-name', '*.node', '-o', '-name', '*.so*'], {
      encoding: 'utf8',
    }).stdout.trim();
    assert.equal(files, '', 'no native code in the release');
    assert.ok(!existsSync(join(release, 'node_modules', 'onnxruntime-node')));
    const health = await deviceHealth(dir);
    assert.deepEqual([health.ok, health.release], [true, report.release]);
    assert.match(health.backend, wasmOnly);
    const status = runCli(['status', ...args, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.match((JSON.parse(status.stdout) as { backendReason: string }).backendReason, /no linux\/arm binary/);
    const profile = runCli(['profile', ...args, '--data', 'fashion-mnist', '--limit', '30', '--json', '--quiet']);
    assert.equal(profile.code, 0, profile.stderr);
    const p = JSON.parse(profile.stdout) as DeviceProfile;
    assert.match(p.backend, wasmOnly);
    assert.equal(p.device.arch, 'arm');
  } finally {
    pi.kill();
  }
});

test('fleet: three devices in parallel, then one cut off mid-deploy keeps its release while the others move on', async () => {
  const first = runCli(['deploy', exitModel, ...fleetArgs(), '--json', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  const rows = JSON.parse(first.stdout) as {
    device: string;
    ok: boolean;
    result: { release: string; unchanged: boolean };
  }[];
  assert.deepEqual(
    rows.map((r) => [r.device, r.ok]),
    fleet.map((d) => [d.sshd.host.replace(/:22$/, ''), true]),
  );
  const a = rows[0].result.release;
  assert.ok(rows.every((r) => r.result.release === a));
  for (const d of fleet) assert.equal(deviceRelease(d.dir), a);

  // The second device is cut off as soon as its upload begins.
  const victim = fleet[1];
  const deploy = spawn(process.execPath, [CLI, 'deploy', maskedModel, ...fleetArgs(), '--quiet'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CMP_HOME: TEST_CMP_HOME },
  });
  let stdout = '';
  let stderr = '';
  deploy.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  deploy.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((r) => deploy.on('exit', r));
  const releases = join(victim.dir, 'releases');
  await cutMidUpload(deploy, releases, victim.sshd);
  const code = await exited;
  assertOneLineError(
    { code: code ?? -1, stderr },
    new RegExp(`Deploy failed on 1 of 3 devices: ${victim.sshd.host}\\.`),
  );
  assert.match(stdout, /FAILED/);
  assert.equal(deviceRelease(victim.dir), a, 'the cut device keeps its release');
  assert.equal((await deviceHealth(victim.dir)).release, a, 'and keeps serving it');
  const b = deviceRelease(fleet[0].dir);
  assert.notEqual(b, a);
  assert.equal(deviceRelease(fleet[2].dir), b);

  // Again, with the device back: the two that have the release are skipped, the third catches up.
  await victim.sshd.restart();
  const again = runCli(['deploy', maskedModel, ...fleetArgs(), '--json', '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  const unchanged = (JSON.parse(again.stdout) as { result: { release: string; unchanged: boolean } }[]).map((r) => [
    r.result.release,
    r.result.unchanged,
  ]);
  assert.deepEqual(unchanged, [
    [b, true],
    [b, false],
    [b, true],
  ]);
});

test('fleet status and profile: one row per device, every profile comes back', () => {
  const status = runCli(['status', ...fleetArgs()]);
  assert.equal(status.code, 0, status.stderr);
  for (const d of fleet) assert.match(status.stdout, new RegExp(`${d.sshd.host}\\s+ok\\s+[0-9a-f]{12}`));
  const profile = runCli(['profile', ...fleetArgs(), '--data', 'fashion-mnist', '--limit', '20', '--json', '--quiet']);
  assert.equal(profile.code, 0, profile.stderr);
  const rows = JSON.parse(profile.stdout) as { device: string; ok: boolean; result: DeviceProfile }[];
  assert.equal(rows.length, 3);
  for (const r of rows) {
    assert.equal(r.ok, true);
    assert.equal(r.result.samples, 20);
    assert.equal(r.result.device.name, r.device);
  }
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
