// Tests of devices.json: absolute paths whatever folder the deploy ran in, and older files with relative ones.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { listDevices, recordDevice, type DeviceRecord } from '../../src/deploy/devices.js';
import { targetFor } from '../../src/deploy/targets.js';
import { tempDir } from '../helpers.js';

const at = '2026-12-01T10:00:00.000Z';

test('a deploy from another folder records the model, site, key and known-hosts file by absolute path', () => {
  const work = tempDir();
  const file = join(work, 'devices.json');
  const cwd = process.cwd();
  process.chdir(work);
  try {
    recordDevice({ kind: 'browser', name: 'site', path: 'site', model: 'cmp-demo/mlp-dab.onnx', deployedAt: at }, file);
    recordDevice(
      {
        kind: 'rpi',
        name: 'pi@127.0.0.1:2222',
        ssh: {
          user: 'pi',
          host: '127.0.0.1',
          port: 2222,
          identity: 'keys/id',
          knownHosts: 'keys/known',
          remoteDir: 'cmp',
        },
        model: './fm.onnx',
        deployedAt: at,
      },
      file,
    );
  } finally {
    process.chdir(cwd);
  }
  const written = JSON.parse(readFileSync(file, 'utf8')) as { devices: DeviceRecord[] };
  const byKind = Object.fromEntries(written.devices.map((d) => [d.kind, d])) as Record<string, DeviceRecord>;
  assert.equal(byKind.browser.model, join(work, 'cmp-demo', 'mlp-dab.onnx'));
  assert.equal(byKind.browser.path, join(work, 'site'));
  assert.equal(byKind.rpi.model, join(work, 'fm.onnx'));
  assert.deepEqual(byKind.rpi.ssh, {
    user: 'pi',
    host: '127.0.0.1',
    port: 2222,
    identity: join(work, 'keys', 'id'),
    knownHosts: join(work, 'keys', 'known'),
    remoteDir: 'cmp',
  });
});

test("an older file's relative model is read as the site's copy, else from this folder, else as written", () => {
  const work = tempDir();
  const site = join(work, 'site');
  mkdirSync(join(site, 'model'), { recursive: true });
  writeFileSync(join(site, 'model', 'mlp-dab.onnx'), 'x');
  writeFileSync(join(work, 'here.onnx'), 'x');
  const file = join(work, 'devices.json');
  const devices = [
    { kind: 'browser', name: site, path: site, model: 'cmp-demo/mlp-dab.onnx', deployedAt: at },
    { kind: 'mcu', name: '/dev/pts/9', path: '/dev/pts/9', model: 'here.onnx', deployedAt: at },
    { kind: 'mcu', name: '/dev/pts/8', path: '/dev/pts/8', model: 'gone/lost.onnx', deployedAt: at },
  ];
  writeFileSync(file, JSON.stringify({ schema: 'cmp-devices/1', devices }));
  const cwd = process.cwd();
  process.chdir(work);
  try {
    const models = Object.fromEntries(listDevices(file).map((d) => [d.name, d.model]));
    assert.deepEqual(models, {
      [site]: join(site, 'model', 'mlp-dab.onnx'),
      '/dev/pts/9': join(work, 'here.onnx'),
      '/dev/pts/8': 'gone/lost.onnx',
    });
  } finally {
    process.chdir(cwd);
  }
});

test('an entry under an old kind name is read as its kind today, and a redeploy replaces it', () => {
  const work = tempDir();
  const file = join(work, 'devices.json');
  const model = join(work, 'fm.onnx');
  const old = { kind: 'serial', name: '/dev/pts/7', path: '/dev/pts/7', model, deployedAt: at };
  writeFileSync(file, JSON.stringify({ schema: 'cmp-devices/1', devices: [old] }));
  assert.deepEqual(
    listDevices(file).map((d) => [d.kind, d.name]),
    [['mcu', '/dev/pts/7']],
  );
  recordDevice(
    { kind: 'mcu', name: '/dev/pts/7', path: '/dev/pts/7', model, deployedAt: '2026-12-02T10:00:00.000Z' },
    file,
  );
  const written = JSON.parse(readFileSync(file, 'utf8')) as { devices: DeviceRecord[] };
  assert.deepEqual(
    written.devices.map((d) => [d.kind, d.deployedAt]),
    [['mcu', '2026-12-02T10:00:00.000Z']],
  );
});

test('targets are found by kind; an old name reads as its kind and an unknown one lists the kinds', () => {
  assert.equal(targetFor('serial').kind, 'mcu');
  assert.throws(() => targetFor('rpii'), {
    message: 'Unknown target "rpii". Use one of: local, rpi, mcu, browser, electron.',
  });
});
