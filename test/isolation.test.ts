// Tests never see the state of whoever runs them: test/register.js gives each test file a fresh HOME and CMP_HOME.
// Checked the way a user breaks it: a home with an earlier deploy's devices.json, then the suite run from it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DashboardSession } from '../src/dashboard/session.js';
import { cmpHome, listDevices } from '../src/deploy/devices.js';
import { HANG_MS, ROOT, TEST_CMP_HOME, tempDir } from './helpers.js';

const APP_MODEL = '/opt/app/model/fm-exit.onnx';
const USER_MODEL = '/home/someone/cmp-demo/mlp-dab.onnx';

test("this file's HOME and CMP_HOME are fresh, and the dashboard (Electron's main process) offers only its own model", async () => {
  const userHome = process.env.CMP_TEST_USER_HOME ?? '';
  assert.notEqual(homedir(), userHome, 'HOME is not the user home');
  assert.equal(cmpHome(), TEST_CMP_HOME);
  assert.ok(!relative(homedir(), cmpHome()).startsWith('..'), 'CMP_HOME lies in the fresh HOME');
  assert.deepEqual(readdirSync(homedir()).sort(), ['.xdg-cache', '.xdg-config', '.xdg-data', '.xdg-state']);
  if (process.env.CMP_TEST_POLLUTED) {
    // The outer run below made this user: the pollution is really there to be read.
    assert.deepEqual(
      listDevices(join(userHome, '.cmp', 'devices.json')).map((d) => d.model),
      [USER_MODEL, USER_MODEL],
    );
  }
  const session = new DashboardSession({ mode: 'electron', models: [APP_MODEL] });
  const hello = await session.handle({ id: 1, type: 'hello' });
  assert.equal(hello.type, 'reply');
  const state = hello.type === 'reply' ? (hello.result as { models: string[]; devices: { kind: string }[] }) : null;
  assert.deepEqual(state?.models, [APP_MODEL]);
  assert.deepEqual(
    state?.devices.filter((d) => d.kind === 'rpi' || d.kind === 'browser'),
    [],
  );
});

if (!process.env.CMP_TEST_POLLUTED) {
  test('run from a home where cmp was used (devices.json, ~/.ssh), this file still passes', () => {
    const home = tempDir('cmp-user-home-');
    mkdirSync(join(home, '.cmp'));
    mkdirSync(join(home, '.ssh'));
    const at = new Date().toISOString();
    const devices = [
      { kind: 'browser', name: join(home, 'site'), path: join(home, 'site'), model: USER_MODEL, deployedAt: at },
      {
        kind: 'rpi',
        name: 'pi@192.0.2.7:22',
        ssh: { user: 'pi', host: '192.0.2.7', port: 22 },
        model: USER_MODEL,
        deployedAt: at,
      },
    ];
    writeFileSync(join(home, '.cmp', 'devices.json'), JSON.stringify({ schema: 'cmp-devices/1', devices }));
    writeFileSync(join(home, '.ssh', 'known_hosts'), '192.0.2.7 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA\n');
    const env: Record<string, string | undefined> = {
      ...process.env,
      HOME: home,
      CMP_HOME: join(home, '.cmp'),
      CMP_TEST_POLLUTED: '1',
      CMP_DASHBOARD_MODELS: JSON.stringify([USER_MODEL]),
    };
    // As a user's shell would start it: not inside another test run.
    delete env.CMP_TEST_USER_HOME;
    delete env.NODE_TEST_CONTEXT;
    const run = spawnSync(
      process.execPath,
      ['--import', './test/register.js', '--test', relative(ROOT, fileURLToPath(import.meta.url))],
      { cwd: ROOT, encoding: 'utf8', timeout: HANG_MS, env },
    );
    assert.equal(run.status, 0, run.stdout.slice(-3000) + run.stderr.slice(-2000));
    assert.match(run.stdout, /^# pass 1$/m);
    assert.match(run.stdout, /^# fail 0$/m);
  });
}
