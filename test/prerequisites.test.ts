// npm test checks the machine before anything else: every Debian package the tests need, named in one line when
// missing (as root it installs them first); .ci/run installs the same list, then runs exactly npm test.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { PREREQUISITES } from './prerequisites.js';
import { ROOT, tempDir } from './helpers.js';

const check = (env: Record<string, string> = {}): { code: number; stderr: string } => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/prerequisites.ts', '--check'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  return { code: r.status ?? -1, stderr: r.stderr };
};

test('on a machine with none of the packages, one line names each with what it is for and the command', () => {
  const r = check({ CMP_PREREQ_ROOT: tempDir() });
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  const names = PREREQUISITES.map((p) => p.debian);
  assert.ok(names.length >= 8);
  assert.match(lines[0], /^npm test needs Debian packages that are not installed: dataset-fashion-mnist \(real images/);
  assert.ok(lines[0].endsWith(`apt-get install ${names.join(' ')}`), lines[0]);
});

test('this machine has every package the tests need (else this fails, as the suite would)', () => {
  assert.deepEqual(check(), { code: 0, stderr: '' });
});

test('npm test checks first; .ci/run installs exactly these packages, then runs exactly npm test', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { test: string } };
  assert.match(pkg.scripts.test, /^node --import tsx test\/prerequisites\.ts && npm run build && /);
  const ci = readFileSync(join(ROOT, '.ci', 'run'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() && !l.trim().startsWith('#'));
  assert.equal(ci[ci.length - 1], 'npm test');
  const install = ci.find((l) => l.startsWith('apt-get install '));
  assert.ok(install, ci.join('\n'));
  const packages = install.split(/\s+/).filter((w) => !w.startsWith('-') && w !== 'apt-get' && w !== 'install');
  assert.deepEqual(packages.sort(), PREREQUISITES.map((p) => p.debian).sort());
});
