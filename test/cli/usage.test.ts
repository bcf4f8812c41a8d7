// What a user expects of any command line: -h wherever --help works, usage on stdout only when asked for.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { assertOneLineError, runCli, sharedFile, tempDir } from '../helpers.js';

test('cmp --help, cmp -h and cmp help print the usage on stdout and exit 0', () => {
  for (const args of [['--help'], ['-h'], ['help']]) {
    const result = runCli(args);
    assert.equal(result.code, 0, args.join(' '));
    assert.match(result.stdout, /^Usage: npx cmp <command>/m);
    assert.equal(result.stderr, '');
  }
});

test('a bare cmp prints the usage on stderr, nothing on stdout, and exits 1', () => {
  const result = runCli([]);
  assert.equal(result.code, 1);
  assert.equal(result.stdout, '');
  assert.match(result.stderr, /^Usage: npx cmp <command>/m);
});

test('every command answers -h with its help on stdout and exit 0, as it answers --help', () => {
  // Every command the usage lists, so a new one is covered without editing this test.
  const usage = runCli(['--help']).stdout;
  const names = [...usage.slice(usage.indexOf('Commands:')).matchAll(/^ {2}(\w+) {2}/gm)].map((m) => m[1]);
  assert.ok(names.length >= 17, usage);
  for (const name of names) {
    const result = runCli([name, '-h']);
    assert.equal(result.code, 0, `cmp ${name} -h: ${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^npx cmp ${name}\\b[\\s\\S]*-h, --help`), `cmp ${name} -h`);
    assert.equal(result.stderr, '');
  }
  const help = runCli(['train', '--help']).stdout;
  assert.equal(runCli(['train', '-h']).stdout, help);
  assert.equal(runCli(['help', 'train']).stdout, help);
});

test('a flag before the command is one line on stderr with exit 2', () => {
  const result = runCli(['--bogus']);
  assertOneLineError(result, /Unknown flag "--bogus" before the command.*cmp --help/);
  assert.equal(result.code, 2);
  assert.equal(result.stdout, '');
});

test('--input-range -1,1 is accepted: the imported model takes pixels in [-1, 1]', () => {
  const out = join(tempDir(), 'run');
  const result = runCli([
    'import',
    sharedFile('models', 'lenet5-mnist-pytorch.onnx'),
    '--input-range',
    '-1,1',
    '--out',
    out,
    '--json',
    '--quiet',
  ]);
  assert.equal(result.code, 0, result.stderr);
  const { spec } = JSON.parse(result.stdout) as { spec: { input: { mean: number; std: number } } };
  assert.deepEqual([-spec.input.mean / spec.input.std, (1 - spec.input.mean) / spec.input.std], [-1, 1]);
});

test('a value starting with "-" that is not a number says to write --flag=VALUE', () => {
  const result = runCli(['import', 'model.onnx', '--out', '-runs', '--input-range', '0,1']);
  assertOneLineError(result, /Flag --out is followed by "-runs", not a value.*write --out=-runs.*cmp import --help/);
  assert.equal(result.code, 2);
});
