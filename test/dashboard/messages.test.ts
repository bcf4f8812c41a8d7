// The dashboard's message check, its one-line error replies (what both the WebSocket and Electron IPC answer), the
// token a request presents, and the latency histogram.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { latencyHistogram } from '../../src/dashboard/histogram.js';
import { checkClientMessage, MAX_PROFILE_COUNT, type LatencyEstimate } from '../../src/dashboard/messages.js';
import { contentSecurityPolicy, presentedToken, sameToken } from '../../src/dashboard/security.js';
import { DashboardSession } from '../../src/dashboard/session.js';
import type { DeviceProfile } from '../../src/profile/device-profile.js';
import { MAX_PROFILE_FILE_BYTES } from '../../src/dashboard/profile-jobs.js';
import { ROOT, tempDir } from '../helpers.js';

test('every request type passes the check as sent', () => {
  const good = [
    { id: 0, type: 'hello' },
    { id: 1, type: 'devices' },
    { id: 2, type: 'devices', serialPath: '/dev/pts/3' },
    { id: 3, type: 'profile', device: 'local:ort-node', model: 'fm.onnx', dataset: 'auto', count: 1 },
    { id: 4, type: 'profile', device: 'rpi:pi@host', dataset: 'mnist', count: MAX_PROFILE_COUNT },
    { id: 5, type: 'load-profile', path: 'pi.json' },
    { id: 6, type: 'remove-profile', key: 'p1' },
    { id: 7, type: 'model', path: 'runs/fm' },
    { id: 8, type: 'report' },
    { id: 9, type: 'model', path: 'runs/fm', device: 'serial:/dev/pts/3' },
  ];
  for (const message of good) assert.equal(checkClientMessage(message), message);
});

test('the check refuses what is not a request, naming the first thing wrong in one line', () => {
  const bad: [unknown, RegExp][] = [
    [null, /has a top level that is null, expected an object/],
    [[{ id: 1, type: 'hello' }], /has a top level that is a list, expected an object/],
    [{ id: 1 }, /has no type/],
    [{ id: 1, type: 'toString' }, /has type "toString", expected \("hello" \| "devices" \|/],
    [{ id: 1, type: 'constructor' }, /has type "constructor"/],
    [{ id: -1, type: 'hello' }, /"hello" has id -1, expected >=0/],
    [{ id: 1.5, type: 'hello' }, /"hello" has id 1\.5, expected safe integer/],
    [{ id: 1, type: 'report', path: 'x' }, /"report" has unknown field "path"/],
    [{ id: 1, type: 'model' }, /"model" has no path/],
    [{ id: 1, type: 'model', path: '' }, /"model" has path "", expected length >=1/],
    [{ id: 1, type: 'model', path: 'a\0b' }, /"model" has path "a\\u0000b", expected one line/],
    [{ id: 1, type: 'model', path: 7 }, /"model" has path 7, expected string/],
    [{ id: 1, type: 'model', path: 'fm.onnx', device: '' }, /"model" has device "", expected length >=1/],
    [{ id: 1, type: 'devices', serialPath: 'x'.repeat(5000) }, /serialPath "x{56}\.\.\., expected length <=4096/],
    [{ id: 1, type: 'profile', device: 'd', dataset: 'auto', count: MAX_PROFILE_COUNT + 1 }, /count 10001/],
    [{ id: 1, type: 'profile', device: 'd', dataset: 'auto', count: '5' }, /count "5"/],
    [{ id: 1, type: 'profile', device: 'd', dataset: 'auto' }, /"profile" has no count/],
    [{ id: 1, type: 'profile', device: 'd', dataset: 'x', count: 1 }, /dataset "x", expected \("auto" \|/],
  ];
  for (const [value, pattern] of bad) {
    assert.throws(
      () => checkClientMessage(value),
      (err: Error) => {
        assert.equal(err.message.split('\n').length, 1);
        assert.match(err.message, /^Dashboard message .+\. See src\/dashboard\/messages\.ts for the requests\.$/);
        assert.match(err.message, pattern);
        return true;
      },
      JSON.stringify(value)?.slice(0, 60),
    );
  }
});

test('a session answers bad messages with an error reply carrying the id it could read (the IPC path)', async () => {
  const session = new DashboardSession({ mode: 'electron' });
  // IPC's structured clone carries more than JSON: a BigInt, a Map.
  assert.deepEqual(await session.handle({ id: 3, type: 'model', path: 10n }), {
    type: 'error',
    id: 3,
    message:
      'Dashboard message "model" has path bigint, expected string. See src/dashboard/messages.ts for the requests.',
  });
  const unreadable = await session.handle(new Map([['type', 'hello']]));
  assert.equal(unreadable.type, 'error');
  assert.equal(unreadable.type === 'error' ? unreadable.id : 0, null);
  const missing = await session.handle({ id: 4, type: 'remove-profile', key: 'p1' });
  assert.deepEqual(missing, { type: 'error', id: 4, message: 'There is no profile "p1". Use one of: (none).' });
});

test('a request presents its token as a bearer, a header or the cookie of its port; tokens compare exactly', () => {
  assert.equal(presentedToken({ authorization: 'Bearer abc' }, 80), 'abc');
  assert.equal(presentedToken({ 'x-cmp-token': 'abc' }, 80), 'abc');
  assert.equal(presentedToken({ cookie: 'a=1; cmp-dashboard-80=abc=; b=2' }, 80), 'abc=');
  assert.equal(presentedToken({ cookie: 'cmp-dashboard-81=abc' }, 80), undefined, "another port's cookie");
  assert.equal(presentedToken({}, 80), undefined);
  assert.equal(sameToken('abc', 'abc'), true);
  assert.equal(sameToken('abd', 'abc'), false);
  assert.equal(sameToken('ab', 'abc'), false);
  assert.match(contentSecurityPolicy(), /connect-src 'none'/);
  assert.match(contentSecurityPolicy(['ws://127.0.0.1:1']), /connect-src ws:\/\/127\.0\.0\.1:1;/);
});

test('the latency histogram puts every instance in one bin between ascending edges', () => {
  const latencies = Array.from({ length: 1000 }, (_, i) => 0.1 + (i % 97) * 0.013 + (i === 999 ? 5 : 0));
  const h = latencyHistogram(latencies);
  assert.equal(h.counts.length, 32, 'about the square root of the count');
  assert.equal(h.edgesMs.length, h.counts.length + 1);
  assert.equal(
    h.counts.reduce((a, b) => a + b, 0),
    latencies.length,
  );
  assert.equal(h.edgesMs[0], Math.min(...latencies));
  assert.ok(Math.abs(h.edgesMs[h.edgesMs.length - 1] - Math.max(...latencies)) < 1e-9);
  assert.equal(h.counts[h.counts.length - 1], 1, 'the slowest instance sits in the last bin');
  assert.deepEqual(latencyHistogram([2, 2, 2]).counts, [3]);
  assert.deepEqual(latencyHistogram([]), { edgesMs: [], counts: [] });
});

test('a fleet profile file (cmp profile --hosts) loads as one card per device; failed rows are skipped', async () => {
  const profile = (name: string): DeviceProfile => ({
    schema: 'cmp-profile/1',
    device: { name, platform: 'linux', arch: 'arm64', cpus: 4, memoryBytes: 4e9, runtime: 'node v20.0.0' },
    model: { path: 'model/fm.onnx', release: 'abcdefabcdef' },
    backend: 'ort-node',
    dataset: 'fashion-mnist',
    samples: 2,
    accuracy: 0.5,
    latencyMs: { mean: 1, p50: 1, p90: 1, p99: 1, min: 1, max: 1 },
    latenciesMs: [1, 1],
    stages: [{ name: 'model', runs: 2, mean: 1, p50: 1, p90: 1, p99: 1, min: 1, max: 1 }],
    exits: [{ exit: 'final', share: 1, accuracy: 0.5 }],
    throughputPerS: 1000,
    startedAt: new Date().toISOString(),
    durationMs: 2,
  });
  const dir = tempDir();
  const rows = join(dir, 'fleet-rows.json');
  writeFileSync(
    rows,
    JSON.stringify([
      { device: 'pi@a', ok: true, result: profile('pi@a') },
      { device: 'pi@b', ok: false, error: 'Lost the SSH connection' },
      { device: 'pi@c', ok: true, result: profile('pi@c') },
    ]),
  );
  const array = join(dir, 'fleet-out.json');
  writeFileSync(array, JSON.stringify([profile('pi@d'), profile('pi@e')]));
  const session = new DashboardSession({ mode: 'http' });
  const first = (await session.handle({ id: 1, type: 'load-profile', path: rows })) as {
    result: { profiles: { title: string }[] };
  };
  assert.deepEqual(
    first.result.profiles.map((p) => p.title.split(' · ')[0]),
    ['pi@a', 'pi@c'],
  );
  // Estimated against measured: the measured is the file's p50; cost tables exist for boards and this machine only.
  const estimate = (first.result.profiles[0] as unknown as { estimate: LatencyEstimate }).estimate;
  assert.equal(estimate.measuredMs, 1);
  assert.equal(estimate.estimatedMs, undefined);
  assert.match(estimate.note ?? '', /^No estimate: cost tables are recorded for boards and this machine's backends/);
  const second = (await session.handle({ id: 2, type: 'load-profile', path: array })) as {
    result: { profiles: unknown[] };
  };
  assert.equal(second.result.profiles.length, 2);
  writeFileSync(array, JSON.stringify([{ device: 'pi@f', ok: false, error: 'x' }]));
  const none = (await session.handle({ id: 3, type: 'load-profile', path: array })) as {
    type: string;
    message?: string;
  };
  assert.equal(none.type, 'error');
  assert.match(none.message ?? '', /holds no successful profile/);
});

test('load-profile reads only regular files up to the size limit, and its errors never quote the file', async () => {
  const dir = tempDir();
  const secret = 'SECRET-d41d8cd9';
  const files: [string, string, RegExp][] = [
    ['not-json.txt', `root:${secret}:0:0\n`, /is not JSON\. Load a cmp-profile\/1 file/],
    ['key.json', JSON.stringify({ [secret]: 1 }), /has no schema\./],
    ['schema.json', JSON.stringify({ schema: secret }), /has schema a string, expected "cmp-profile\/1"/],
    ['device.json', JSON.stringify({ schema: 'cmp-profile/1', device: { [secret]: 1 } }), /has no device\.name/],
  ];
  const session = new DashboardSession({ mode: 'http' });
  for (const [name, content, pattern] of files) {
    writeFileSync(join(dir, name), content);
    const r = (await session.handle({ id: 1, type: 'load-profile', path: join(dir, name) })) as { message?: string };
    assert.match(r.message ?? '', pattern);
    assert.doesNotMatch(r.message ?? '', new RegExp(secret), name);
  }
  const big = join(dir, 'big.json');
  writeFileSync(big, Buffer.alloc(MAX_PROFILE_FILE_BYTES + 1, 0x20));
  const tooBig = (await session.handle({ id: 2, type: 'load-profile', path: big })) as { message?: string };
  assert.match(tooBig.message ?? '', /is 8388609 bytes, more than a profile's 8388608/);
  // /dev/zero never ends: read in a child, so that a reader without the limit fails by time instead of eating memory.
  const child = spawnSync(
    process.execPath,
    [
      '--import',
      './test/register.js',
      '--input-type=module',
      '-e',
      "import { DashboardSession } from './src/dashboard/session.ts'; const s = new DashboardSession({ mode: 'http' }); for (const path of ['/dev/zero', '/proc/self/environ']) console.log(JSON.stringify(await s.handle({ id: 3, type: 'load-profile', path })));",
    ],
    { cwd: ROOT, encoding: 'utf8', timeout: 20_000 },
  );
  assert.equal(child.status, 0, child.stderr);
  const [zero, environ] = child.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { message: string });
  assert.match(zero.message, /^\/dev\/zero is not a regular file\. Load a cmp-profile\/1 file\.$/);
  // /proc files say they are empty and are not regular in content: it is refused without a byte of it quoted.
  assert.doesNotMatch(environ.message, /PATH=|HOME=/);
});
