// The commands' files as the issue asks them to be: no command imports another, and the device commands read flags
// and print while the targets (src/deploy/target-*.ts) hold what happens on the device.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT } from '../helpers.js';

const COMMANDS = join(ROOT, 'src', 'cli', 'commands');

/** The modules a file imports, with whether the import is of types only. */
function importsOf(path: string): { from: string; typeOnly: boolean }[] {
  const text = readFileSync(path, 'utf8');
  return [...text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'([^']+)'/gms)].map((m) => ({
    from: m[2],
    typeOnly: m[1] !== undefined,
  }));
}

test('no command imports another: a command file imports only its own folder among the commands', () => {
  const files = readdirSync(COMMANDS).filter((name) => name.endsWith('.ts'));
  assert.ok(files.includes('deploy.ts') && files.includes('profile.ts'), `commands found: ${files.join(', ')}`);
  for (const name of files) {
    const own = `./${name.replace(/\.ts$/, '')}/`;
    for (const { from } of importsOf(join(COMMANDS, name))) {
      if (!from.startsWith('./')) continue;
      assert.ok(from.startsWith(own), `${name} imports ${from}, another command's file`);
    }
  }
});

test('deploy, profile, status, rollback and serve hold no target logic: no link client, SSH, predictor or records', () => {
  const forbidden = [
    'link/mcu-client',
    'core/mcu-model',
    'deploy/remote-ssh',
    'deploy/devices',
    'profile/split',
    'runtime/predictor',
    'runtime/backends',
  ];
  const files = [
    ...['deploy', 'profile', 'status', 'rollback', 'serve'].map((c) => join(COMMANDS, `${c}.ts`)),
    ...readdirSync(join(COMMANDS, 'deploy')).map((name) => join(COMMANDS, 'deploy', name)),
  ];
  for (const path of files) {
    for (const { from, typeOnly } of importsOf(path)) {
      const bad =
        forbidden.find((f) => from.endsWith(`/${f}.js`)) ??
        (from.startsWith('../') && from.endsWith('/deploy/rpi.js') && !typeOnly);
      assert.ok(!bad, `${path.slice(ROOT.length)} imports ${from}: that belongs in a target`);
    }
  }
});
