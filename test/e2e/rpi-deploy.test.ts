// cmp deploy --target rpi against a real sshd on 127.0.0.1: deploy, health check, profile, redeploy, rollback, and
// the faults: a cut connection mid-upload, a wrong or unknown host key, a device without Node.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { StagedRunReport } from '../../src/cli/commands/run.js';
import { stagePath } from '../../src/core/manifest.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { listDevices } from '../../src/deploy/devices.js';
import { EXIT_MLP, fixtures, MASKED_MLP, WIDE_FLOAT_MLP } from '../fixtures.js';
import { assertOneLineError, CLI, HANG_MS, runCli, tempDir, TEST_CMP_HOME } from '../helpers.js';
import { cutMidUpload, deviceHealth, deviceRelease, startSshd, stopDeviceService, type Sshd } from './sshd.js';

let sshd: Sshd;
let work: string;
/** The device's cmp folder (the device is this machine, so the test can look at it directly). */
let deviceDir: string;
const models: Record<'exit' | 'masked', string> = { exit: '', masked: '' };
const releases: Record<string, string> = {};

/** The SSH flags of the test device. */
function device(s: Sshd = sshd, dir = deviceDir, knownHosts = s.knownHosts): string[] {
  return ['--host', s.host, '--identity', s.identity, '--known-hosts', knownHosts, '--remote-dir', dir];
}

function serviceHealth(dir = deviceDir): Promise<{ ok: boolean; release: string; backend: string }> {
  return deviceHealth(dir);
}

function currentRelease(dir = deviceDir): string {
  return deviceRelease(dir);
}

/** Runs an agent verb of release `id` on the device folder, as the host does over SSH. */
function agentVerb(id: string, verb: string): { status: number | null; stdout: string } {
  return spawnSync(process.execPath, [join(deviceDir, 'releases', id, 'cmp-edge.mjs'), verb], { encoding: 'utf8' });
}

/** Pids of the cmp-edge supervisors serving device folder `dir`, read from /proc. */
function supervisorsOf(dir: string): number[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .filter((n) => {
      try {
        const cmdline = readFileSync(`/proc/${n}/cmdline`, 'utf8');
        return cmdline.includes(`${dir}/`) && cmdline.includes('cmp-edge.mjs') && cmdline.includes('supervise');
      } catch {
        return false;
      }
    })
    .map(Number);
}

before(async () => {
  sshd = await startSshd();
  work = tempDir('cmp-rpi-');
  deviceDir = join(work, 'device');
  // The exit model with a threshold that some samples pass and some do not, so its profile has both ends of the exit.
  const { frozen, training } = await fixtures.model(EXIT_MLP);
  const exported = exportOnnx(
    { ...frozen, exits: (frozen.exits ?? []).map((e) => ({ ...e, threshold: 1.2 })) },
    { dataset: training.dataset, epochs: training.epochs, testAccuracy: training.testAccuracy },
  );
  models.exit = join(work, 'exit.onnx');
  writeFileSync(models.exit, exported.bytes);
  exported.stages.forEach((bytes, k) => writeFileSync(stagePath(models.exit, k + 1), bytes));
  models.masked = await fixtures.onnx(MASKED_MLP, join(work, 'masked.onnx'));
});

after(() => {
  // The service outlives SSH sessions by design; stop it so the test leaves nothing running.
  stopDeviceService(deviceDir);
  sshd?.kill();
});

test('deploy: the device runs the release, its service answers the smoke instance like the host', async () => {
  const r = runCli(['deploy', models.exit, '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as {
    release: string;
    unchanged: boolean;
    backend: string;
    facts: { arch: string };
    uploadedBytes: number;
  };
  assert.match(report.release, /^[0-9a-f]{12}$/);
  assert.equal(report.unchanged, false);
  assert.equal(report.facts.arch, process.arch);
  assert.ok(report.uploadedBytes > 1e6, 'the release carries the native onnxruntime for this platform');
  assert.equal(currentRelease(), report.release);
  const health = await serviceHealth();
  assert.deepEqual(health, { ...health, ok: true, release: report.release });
  // auto raced bitwasm against onnxruntime-node on stage 1 at activation; the service loads the winner directly.
  const pinned = JSON.parse(readFileSync(join(deviceDir, 'releases', report.release, 'backend.json'), 'utf8')) as {
    backend: string;
    reason: string;
  };
  assert.match(pinned.backend, /^(bitwasm|ort-node)$/);
  assert.equal(health.backend, pinned.backend);
  assert.match(pinned.reason, new RegExp(`^auto: ${pinned.backend} [0-9.]+ ms per batch-1 call against`));
  // No copy of the project's node_modules: only onnxruntime's runtime files.
  const modules = readdirSync(join(deviceDir, 'releases', report.release, 'node_modules')).sort();
  assert.deepEqual(modules, ['onnxruntime-common', 'onnxruntime-node']);
  releases.exit = report.release;
  // The deploy is recorded for the dashboard and fleet commands, with how to reach the device (a key path, no secret).
  const recorded = listDevices(join(TEST_CMP_HOME, 'devices.json')).find((d) => d.kind === 'rpi');
  assert.equal(recorded?.release, report.release);
  assert.equal(recorded?.ssh?.port, sshd.port);
  assert.equal(recorded?.ssh?.identity, sshd.identity);
});

test('deploy again: the same release is recognised and nothing is uploaded or restarted', async () => {
  const before = await serviceHealth();
  const r = runCli(['deploy', models.exit, '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { release: string; unchanged: boolean; uploadedBytes: number };
  assert.equal(report.unchanged, true);
  assert.equal(report.uploadedBytes, 0);
  assert.equal(report.release, releases.exit);
  assert.equal((await serviceHealth()).release, before.release);
});

test('status: release, previous, service and health', () => {
  const r = runCli(['status', '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const status = JSON.parse(r.stdout) as {
    current: string;
    health: { ok: boolean };
    service: { mode: string; pid: number };
    device: { arch: string };
  };
  assert.equal(status.current, releases.exit);
  assert.equal(status.health.ok, true);
  assert.equal(status.service.mode, 'process');
  assert.ok(status.service.pid > 0);
});

test('profile the exit model on the device: exit shares and per-stage latency agree with cmp run on the same images', () => {
  const limit = 40;
  const p = runCli([
    'profile',
    '--target',
    'rpi',
    ...device(),
    '--data',
    'fashion-mnist',
    '--limit',
    String(limit),
    '--json',
    '--quiet',
  ]);
  assert.equal(p.code, 0, p.stderr);
  const profile = JSON.parse(p.stdout) as DeviceProfile;
  assert.equal(profile.model.release, releases.exit);
  assert.match(profile.exitsReason ?? '', /^stage by stage/);
  const host = runCli([
    'run',
    models.exit,
    '--data',
    'fashion-mnist',
    '--limit',
    String(limit),
    '--backend',
    profile.backend,
    '--json',
    '--quiet',
  ]);
  assert.equal(host.code, 0, host.stderr);
  const run = JSON.parse(host.stdout) as StagedRunReport;
  // The same images leave at the same exits, and both ends of the exit decision ran.
  const shares = (exits: { exit: string; share: number }[]): [string, number][] => exits.map((e) => [e.exit, e.share]);
  assert.deepEqual(shares(profile.exits), shares(run.exits));
  assert.ok(profile.exits[0].share > 0 && profile.exits[0].share < 1, `exit1 share ${profile.exits[0].share}`);
  // The same stages, each run by as many images...
  const stages = (s: { name: string; runs: number }[]): [string, number][] => s.map((x) => [x.name, x.runs]);
  assert.deepEqual(stages(profile.stages), stages(run.stages));
  // ...each with latency figures that are figures: no speed is compared, since a loaded machine could slow either side.
  for (const s of [...profile.stages, ...run.stages]) {
    const { name, p50, p90, p99 } = s as { name: string; p50: number; p90: number; p99: number };
    assert.ok(
      Number.isFinite(p99) && p50 > 0 && p50 <= p90 && p90 <= p99,
      `${name}: p50 ${p50}, p90 ${p90}, p99 ${p99}`,
    );
  }
});

test('redeploy another model, then profile it on the device', () => {
  const r = runCli(['deploy', models.masked, '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as {
    release: string;
    previous: string;
    releaseBytes: number;
    uploadedBytes: number;
    reusedBytes: number;
  };
  assert.notEqual(report.release, releases.exit);
  assert.equal(report.previous, releases.exit);
  assert.equal(currentRelease(), report.release);
  releases.masked = report.release;
  // Only what the previous release lacks crosses the link; the runtimes are hard-linked from it on the device.
  const files = (id: string): { path: string; sha256: string; bytes: number }[] =>
    (JSON.parse(readFileSync(join(deviceDir, 'releases', id, 'release.json'), 'utf8')) as { files: [] }).files;
  const before = new Map(files(releases.exit).map((f) => [f.sha256, f.path]));
  const fresh = files(report.release).filter((f) => !before.has(f.sha256));
  assert.ok(fresh.length > 0 && fresh.every((f) => f.path.startsWith('model/')), 'only model files are new');
  assert.equal(
    report.uploadedBytes,
    fresh.reduce((a, f) => a + f.bytes, 0),
  );
  assert.equal(report.uploadedBytes + report.reusedBytes, report.releaseBytes);
  const shared = files(report.release).filter((f) => before.has(f.sha256));
  assert.ok(
    shared.some((f) => f.path.endsWith('.so.1')),
    'onnxruntime is among the shared files',
  );
  for (const f of shared) {
    const inode = (id: string, path: string): number => statSync(join(deviceDir, 'releases', id, path)).ino;
    assert.equal(inode(report.release, f.path), inode(releases.exit, before.get(f.sha256) as string), f.path);
  }

  const limit = 60;
  const p = runCli([
    'profile',
    '--target',
    'rpi',
    ...device(),
    '--data',
    'fashion-mnist',
    '--limit',
    String(limit),
    '--json',
    '--quiet',
  ]);
  assert.equal(p.code, 0, p.stderr);
  const profile = JSON.parse(p.stdout) as DeviceProfile;
  assert.equal(profile.schema, 'cmp-profile/1');
  assert.equal(profile.samples, limit);
  assert.equal(profile.model.release, releases.masked);
  assert.equal(profile.latenciesMs.length, limit);
  assert.ok(profile.latencyMs.p50 > 0 && profile.latencyMs.p99 >= profile.latencyMs.p50);
  assert.ok(profile.rssBytes !== undefined && profile.rssBytes > 1e6);
  assert.ok(profile.link && profile.link.saving > 1.5, 'the masked model sends about half the input');
  // The same images through the host's runtime give the same accuracy.
  const host = runCli([
    'run',
    models.masked,
    '--data',
    'fashion-mnist',
    '--limit',
    String(limit),
    '--backend',
    profile.backend,
    '--json',
    '--quiet',
  ]);
  assert.equal(host.code, 0, host.stderr);
  assert.equal(profile.accuracy, (JSON.parse(host.stdout) as { accuracy: number }).accuracy);
});

test('rollback: the previous release runs again and passes its health check', async () => {
  const r = runCli(['rollback', '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(currentRelease(), releases.exit);
  assert.equal((await serviceHealth()).release, releases.exit);
  assert.equal(readlinkSync(join(deviceDir, 'previous')).split('/').pop(), releases.masked);
});

test('a release that answers differently from the host is refused on the device and the running one stays', async () => {
  const running = currentRelease();
  // A copy of the running release whose recorded host answer disagrees with what its model computes.
  const bad = 'badbadbadbad';
  const dir = join(deviceDir, 'releases', bad);
  cpSync(join(deviceDir, 'releases', running), dir, { recursive: true });
  const config = JSON.parse(readFileSync(join(dir, 'release.json'), 'utf8')) as {
    id: string;
    smoke: { label: number };
  };
  config.id = bad;
  config.smoke.label = (config.smoke.label + 1) % 10;
  writeFileSync(join(dir, 'release.json'), JSON.stringify(config));
  const r = spawnSync(process.execPath, [join(dir, 'cmp-edge.mjs'), 'activate'], { encoding: 'utf8' });
  assert.equal(r.status, 1);
  assert.match((JSON.parse(r.stdout) as { error: string }).error, /Smoke test failed/);
  assert.equal(currentRelease(), running);
  assert.equal((await serviceHealth()).release, running);
  rmSync(dir, { recursive: true });
});

/**
 * Runs the agent verb `args` of release `id` with `fault` injected into the agent process: a preload that makes the
 * first call of the node:fs function `call` fail with ENOSPC, as a full disk would, in that verb's process only.
 */
function agentWithFault(id: string, args: string[], call: string): { status: number | null; stdout: string } {
  const preload = join(work, `fault-${call}.mjs`);
  writeFileSync(
    preload,
    [
      "import fs from 'node:fs';",
      "import { syncBuiltinESMExports } from 'node:module';",
      `if (process.argv[2] === ${JSON.stringify(args[0])}) {`,
      `  const real = fs.${call};`,
      '  let failed = false;',
      `  fs.${call} = (...a) => {`,
      '    if (failed) return real(...a);',
      '    failed = true;',
      `    throw Object.assign(new Error('ENOSPC: no space left on device, ${call}'), { code: 'ENOSPC' });`,
      '  };',
      '  syncBuiltinESMExports();',
      '}',
      '',
    ].join('\n'),
  );
  const script = join(deviceDir, 'releases', id, 'cmp-edge.mjs');
  return spawnSync(process.execPath, ['--import', preload, script, ...args], { encoding: 'utf8' });
}

for (const call of ['symlinkSync', 'renameSync']) {
  test(`a failed switch of current (${call} ENOSPC) restarts the previous release`, async () => {
    const running = currentRelease();
    const other = readlinkSync(join(deviceDir, 'previous')).split('/').pop() as string;
    const r = agentWithFault(other, ['activate'], call);
    assert.equal(r.status, 1, r.stdout);
    assert.match((JSON.parse(r.stdout) as { error: string }).error, new RegExp(`ENOSPC.*; restored ${running}\\.$`));
    assert.equal(currentRelease(), running);
    assert.equal((await serviceHealth()).release, running);
  });
}

test('two activations at once: one runs, the other is refused naming the holder, and one service serves current', async () => {
  const running = currentRelease();
  const other = readlinkSync(join(deviceDir, 'previous')).split('/').pop() as string;
  const activation = (id: string): Promise<{ code: number | null; stdout: string }> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [join(deviceDir, 'releases', id, 'cmp-edge.mjs'), 'activate'], {
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('exit', (code) => resolve({ code, stdout }));
    });
  // The second starts once the first holds the lock, so the two overlap however slowly a loaded machine starts them.
  let firstDone = false;
  const first = activation(other).finally(() => (firstDone = true));
  const lock = join(deviceDir, 'agent.lock');
  const giveUp = Date.now() + HANG_MS;
  while (!existsSync(lock) && !firstDone && Date.now() < giveUp) await new Promise((r) => setTimeout(r, 5));
  assert.ok(existsSync(lock), 'the first activation holds the lock while the second starts');
  const results = await Promise.all([first, activation(running)]);
  assert.deepEqual(results.map((r) => r.code).sort(), [0, 1], results.map((r) => r.stdout).join(''));
  const refused = JSON.parse(results.find((r) => r.code === 1)?.stdout ?? '{}') as { error: string };
  assert.match(refused.error, /^The device is busy: pid \d+ is activating release [0-9a-f]{12} since /);
  // The service runs the release current names, under the one supervisor agent.pid names.
  assert.equal((await serviceHealth()).release, currentRelease());
  assert.deepEqual(supervisorsOf(deviceDir), [Number(readFileSync(join(deviceDir, 'agent.pid'), 'utf8'))]);
  assert.ok(!existsSync(join(deviceDir, 'agent.lock')), 'the lock is let go');
  // Back to where the other tests expect the device.
  if (currentRelease() !== running) assert.equal(agentVerb(running, 'activate').status, 0);
});

test('a lock held by a live agent refuses start and stop; one left by a process that is gone is taken over', () => {
  const lock = join(deviceDir, 'agent.lock');
  const supervisor = Number(readFileSync(join(deviceDir, 'agent.pid'), 'utf8'));
  writeFileSync(lock, JSON.stringify({ pid: supervisor, what: 'activating release 0123456789ab', since: 'then' }));
  const refused = agentVerb(currentRelease(), 'stop');
  assert.equal(refused.status, 1);
  assert.match(
    (JSON.parse(refused.stdout) as { error: string }).error,
    new RegExp(`^The device is busy: pid ${supervisor} is activating release 0123456789ab since then`),
  );
  assert.deepEqual(supervisorsOf(deviceDir), [supervisor], 'the service was left alone');
  // A crashed agent's lock: its pid is gone.
  const gone = spawnSync('true').pid;
  writeFileSync(lock, JSON.stringify({ pid: gone, what: 'stopping the service', since: 'then' }));
  assert.equal(agentVerb(currentRelease(), 'stop').status, 0);
  writeFileSync(lock, '{"pid": 12'); // a torn write, as a full disk leaves it
  assert.equal(agentVerb(currentRelease(), 'start').status, 0);
  assert.ok(!existsSync(lock));
});

test('a connection cut during the upload leaves the previous release running', async () => {
  const running = currentRelease();
  // A large model the device has never seen, so the upload is real work; the device is cut off once it has begun.
  const fresh = await fixtures.onnx(WIDE_FLOAT_MLP, join(work, 'fresh.onnx'));
  const deploy = spawn(process.execPath, [CLI, 'deploy', fresh, '--target', 'rpi', ...device(), '--quiet'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CMP_HOME: TEST_CMP_HOME },
  });
  let stderr = '';
  deploy.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => deploy.on('exit', r));
  const releasesDir = join(deviceDir, 'releases');
  await cutMidUpload(deploy, releasesDir, sshd);
  const code = await exited;
  assertOneLineError({ code: code ?? -1, stderr }, /Lost the SSH connection|SSH to .* failed/);
  assert.equal(currentRelease(), running);
  assert.equal((await serviceHealth()).release, running);
  await sshd.restart();
  // The next deploy clears the partial folder and completes.
  const again = runCli(['deploy', fresh, '--target', 'rpi', ...device(), '--json', '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(!readdirSync(releasesDir).some((n) => n.startsWith('.partial-')));
  const rolled = runCli(['rollback', '--target', 'rpi', ...device(), '--quiet']);
  assert.equal(rolled.code, 0, rolled.stderr);
  assert.equal(currentRelease(), running);
});

test('a wrong host key is refused before anything is sent', () => {
  const other = join(work, 'wrong_known_hosts');
  const key = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(work, 'impostor')]);
  assert.equal(key.status, 0);
  const pub = spawnSync('cat', [join(work, 'impostor.pub')], { encoding: 'utf8' })
    .stdout.trim()
    .split(' ');
  writeFileSync(other, `[127.0.0.1]:${sshd.port} ${pub[0]} ${pub[1]}\n`);
  const r = runCli(['status', '--target', 'rpi', ...device(sshd, deviceDir, other)]);
  assertOneLineError(r, /does not match/);
});

test('an unknown host needs --accept-new-host-key, which remembers it', () => {
  const empty = join(work, 'empty_known_hosts');
  const args = ['status', '--target', 'rpi', ...device(sshd, deviceDir, empty)];
  assertOneLineError(runCli(args), /is not in .*--accept-new-host-key/);
  const accepted = runCli([...args, '--accept-new-host-key', '--json']);
  assert.equal(accepted.code, 0, accepted.stderr);
  assert.equal(runCli([...args, '--json']).code, 0, 'the key was remembered');
});

test('a device without Node gets a clear error naming what to install', async () => {
  // The device's login PATH holds the shell tools the facts script uses, and no node.
  const bin = join(work, 'bare-bin');
  mkdirSync(bin);
  for (const tool of ['sh', 'uname', 'nproc', 'sed', 'getconf', 'printf']) {
    const path = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    if (path.startsWith('/')) symlinkSync(path, join(bin, tool));
  }
  const bare = await startSshd({ path: bin });
  try {
    const r = runCli(['deploy', models.exit, '--target', 'rpi', ...device(bare, join(work, 'bare-device'))]);
    assertOneLineError(r, /has no Node\.js .*Install Node 18 or newer/);
  } finally {
    bare.kill();
  }
});

test('bad flags are one-line errors', () => {
  assertOneLineError(runCli(['deploy', models.exit, '--target', 'rpi']), /needs --host/);
  assertOneLineError(runCli(['deploy', models.exit, '--target', 'rpi', '--host', 'pi@bad host']), /is not user@host/);
  assertOneLineError(
    runCli(['deploy', models.exit, '--target', 'rpi', '--host', 'pi@x', '--remote-dir', '../etc']),
    /plain path/,
  );
  assertOneLineError(
    runCli(['deploy', models.exit, '--target', 'mcu', '--host', 'pi@x']),
    /--host is for --target rpi/,
  );
});
