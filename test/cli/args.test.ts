// Flag parsing: -h for --help, negative numbers as values, and the one-line refusal of any other value starting '-'.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { commandHelp, parseCommand, type CommandDef } from '../../src/cli/args.js';

const DEF: CommandDef = {
  name: 'demo',
  summary: 'A command for the parser tests.',
  positionals: ['MODEL'],
  flags: {
    range: { type: 'string', value: 'LO,HI', help: 'a range' },
    lr: { type: 'number', help: 'a positive number' },
    fast: { type: 'boolean', help: 'a switch' },
  },
  examples: [],
};

test('-h is --help, before or after the positionals, and skips the positional check', () => {
  assert.equal(parseCommand(DEF, ['-h']).flags.help, true);
  assert.equal(parseCommand(DEF, ['m.onnx', '-h']).flags.help, true);
  assert.match(commandHelp(DEF), /^ {2}-h, --help +show this help$/m);
});

test('a string flag followed by a negative number or list takes it as its value', () => {
  for (const value of ['-1,1', '-0.5', '-1', '-.5', '-1e-3,2', '-1,-0.5']) {
    const parsed = parseCommand(DEF, ['m.onnx', '--range', value, '--fast']);
    assert.equal(parsed.flags.range, value);
    assert.deepEqual(parsed.positionals, ['m.onnx']);
    assert.equal(parsed.flags.fast, true);
  }
  assert.equal(parseCommand(DEF, ['m.onnx', '--range=-1,1']).flags.range, '-1,1');
});

test('a negative number for a positive-number flag is refused by the flag, not as ambiguous', () => {
  assert.throws(() => parseCommand(DEF, ['m.onnx', '--lr', '-0.5']), /--lr must be a positive number \(got "-0\.5"\)/);
});

test('any other value starting with "-" says to write --flag=VALUE', () => {
  assert.throws(
    () => parseCommand(DEF, ['m.onnx', '--range', '-low,high']),
    (err: Error) => {
      assert.match(err.message, /Flag --range is followed by "-low,high", not a value.*write --range=-low,high/);
      assert.equal(err.message.split('\n').length, 1);
      return true;
    },
  );
  assert.throws(
    () => parseCommand(DEF, ['m.onnx', '--range', '--fast']),
    /give --range a value, or write --range=--fast/,
  );
  assert.equal(parseCommand(DEF, ['m.onnx', '--range=-low,high']).flags.range, '-low,high');
});

test('after "--", a dash token is a positional and is not joined to a flag', () => {
  assert.deepEqual(parseCommand(DEF, ['--', '-1,1']).positionals, ['-1,1']);
});
