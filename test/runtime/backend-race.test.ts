// auto's load-time race, with stand-in backends registered next to the real ones (this file's process only).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nowMs } from '../../src/core/clock.js';
import { createBackend, registerBackend, type Backend } from '../../src/runtime/backends.js';
import { readModelFile } from '../../src/runtime/model-file.js';
import { sharedFile } from '../helpers.js';

const FILE = readModelFile(sharedFile('models', 'lenet5-mnist-pytorch.onnx'));

function standIn(name: string, run: () => void, disposed: string[]): Backend {
  return {
    name,
    async run() {
      run();
      return new Float32Array(10);
    },
    async dispose() {
      disposed.push(name);
    },
  };
}

const busy = (ms: number) => () => {
  const until = nowMs() + ms;
  while (nowMs() < until);
};

/** The stand-in's time per call: so far above onnxruntime's LeNet (well under 1 ms) that no load reverses them. */
const SLOW_MS = 50;

test('auto keeps the faster of a raced backend and the next one that loads, and disposes the other', async () => {
  const disposed: string[] = [];
  registerBackend({
    name: 'slow',
    priority: 100,
    raced: true,
    create: async () => standIn('slow', busy(SLOW_MS), disposed),
  });
  const chosen = await createBackend('auto', FILE);
  // The third-party LeNet: bitwasm refuses it, so the next that loads is ort-node.
  const medians = chosen.choice?.medianMs ?? {};
  assert.ok(medians['ort-node'] < medians.slow, JSON.stringify(chosen.choice));
  assert.equal(chosen.name, 'ort-node');
  assert.deepEqual(disposed, ['slow']);
  assert.ok(medians.slow >= SLOW_MS, JSON.stringify(chosen.choice));
  assert.match(chosen.choice?.reason ?? '', /^auto: ort-node [0-9.]+ ms per batch-1 call against slow [0-9.]+ ms/);
  await chosen.dispose();

  // A raced backend that wins keeps its place; one that throws on the probe loses whatever its speed.
  registerBackend({
    name: 'slow',
    priority: 100,
    raced: true,
    create: async () => standIn('slow', () => {}, disposed),
  });
  const fast = await createBackend('auto', FILE);
  assert.equal(fast.name, 'slow');
  registerBackend({
    name: 'slow',
    priority: 100,
    raced: true,
    create: async () =>
      standIn(
        'slow',
        () => {
          throw new Error('kernel fault');
        },
        disposed,
      ),
  });
  const failing = await createBackend('auto', FILE);
  assert.equal(failing.name, 'ort-node');
  assert.match(failing.choice?.reason ?? '', /against slow failed on the probe input/);
  await failing.dispose();
  // When both fail on the probe, it does not suit the model: the ranking's choice stays, untimed.
  registerBackend({
    name: 'also-failing',
    priority: 90,
    create: async () =>
      standIn(
        'also-failing',
        () => {
          throw new Error('wrong dims');
        },
        disposed,
      ),
  });
  const untimed = await createBackend('auto', FILE);
  assert.equal(untimed.name, 'slow');
  assert.equal(untimed.choice, undefined);
  assert.equal(disposed[disposed.length - 1], 'also-failing');
  // Asked for by name, a raced backend is not raced.
  assert.equal((await createBackend('slow', FILE)).choice, undefined);
});
