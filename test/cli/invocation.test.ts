// Hints cmp prints run when pasted: `npx cmp ...` inside a project, the bin name the user typed after a global install.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { invocation, pasteable } from '../../src/cli/invocation.js';
import { CLI, runCli, tempDir } from '../helpers.js';

test('invocation: npx under npx or npm exec, from node_modules/.bin, or as bin/cmp.js; else the bin name', () => {
  const global = '/usr/local/bin';
  assert.equal(invocation(`${global}/cmp`, {}), 'cmp');
  assert.equal(invocation(`${global}/cmp-edge`, {}), 'cmp-edge');
  assert.equal(invocation(`${global}/cmp`, { npm_command: 'exec' }), 'npx cmp');
  assert.equal(invocation('/home/me/app/node_modules/.bin/cmp', {}), 'npx cmp');
  assert.equal(invocation('/home/me/app/node_modules/.bin/cmp-edge', {}), 'npx cmp-edge');
  assert.equal(invocation('/home/me/cmp/bin/cmp.js', {}), 'npx cmp');
});

test('pasteable: rewrites command lines only', () => {
  const paste = pasteable(['train', 'export', 'inspect', 'run', 'serve'], 'npx cmp');
  assert.equal(
    paste('Run cmp train --help for its flags. Next: cmp export runs/x --out x.onnx'),
    'Run npx cmp train --help for its flags. Next: npx cmp export runs/x --out x.onnx',
  );
  assert.equal(paste('{"serve": "cmp serve site/"}'), '{"serve": "npx cmp serve site/"}');
  assert.equal(paste('Usage: cmp <command> [arguments]'), 'Usage: npx cmp <command> [arguments]');
  // Not commands: a progress label, the word "cmp" in a sentence, a command-like word that is not one.
  for (const text of ['cmp demo: a float', 'cmp: Unknown flag', 'a cmp manifest', 'cmp runs models', 'mycmp train']) {
    assert.equal(paste(text), text);
  }
  assert.equal(pasteable(['train'], 'cmp')('Run cmp train --help'), 'Run cmp train --help');
});

test('the real CLI prints hints the way it was started: npx cmp from a project, cmp-edge after a global install', () => {
  const dir = tempDir();
  mkdirSync(join(dir, 'global-bin'));
  mkdirSync(join(dir, 'app', 'node_modules', '.bin'), { recursive: true });
  symlinkSync(CLI, join(dir, 'global-bin', 'cmp-edge'));
  symlinkSync(CLI, join(dir, 'app', 'node_modules', '.bin', 'cmp'));
  const hint = (path: string): string => spawnSync(path, ['train', '--epochz', '3'], { encoding: 'utf8' }).stderr;
  assert.match(hint(join(dir, 'global-bin', 'cmp-edge')), / Run cmp-edge train --help for its flags\.$/m);
  assert.match(hint(join(dir, 'app', 'node_modules', '.bin', 'cmp')), / Run npx cmp train --help for its flags\.$/m);
  // As the tests start it (node bin/cmp.js, in this checkout): npx cmp, which runs this checkout's bin.
  assert.match(runCli(['train', '--epochz', '3']).stderr, / Run npx cmp train --help for its flags\.$/m);
});
