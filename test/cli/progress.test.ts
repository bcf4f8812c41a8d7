// Progress off a terminal: the status at a steady interval, so a log is never silent for long; lines pasteable.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createProgress, plural } from '../../src/cli/progress.js';
import { sleep } from '../helpers.js';

/** A stream that is not a terminal, keeping what was written. */
function pipe(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = { isTTY: false, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('off a terminal, status updates print a line once per interval, and lines that stay print at once', async () => {
  const { stream, lines } = pipe();
  const progress = createProgress(stream, { steadyMs: 200, rewrite: (t) => t.toUpperCase() });
  progress.log('start');
  for (let i = 0; i < 5; i++) progress.update(`batch ${i}`);
  assert.deepEqual(lines(), ['START'], 'no status line before the interval has passed');
  await sleep(250);
  progress.update('batch 5');
  progress.update('batch 6');
  assert.deepEqual(lines(), ['START', 'BATCH 5']);
  progress.log('epoch 1');
  await sleep(100);
  progress.update('batch 7');
  assert.deepEqual(lines(), ['START', 'BATCH 5', 'EPOCH 1'], 'the interval runs from the last line of any kind');
});

test('--quiet prints nothing; plural says 1 epoch and 3 epochs', () => {
  const { stream, lines } = pipe();
  const progress = createProgress(stream, { quiet: true, steadyMs: 0 });
  progress.update('x');
  progress.log('y');
  assert.deepEqual(lines(), []);
  assert.equal(plural(1, 'epoch'), '1 epoch');
  assert.equal(plural(3, 'epoch'), '3 epochs');
  assert.equal(plural(0, 'epoch'), '0 epochs');
});
