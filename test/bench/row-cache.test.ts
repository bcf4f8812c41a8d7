// RowCache: the rows a long bench saves so that it resumes, including when two of its runs share one file, and
// apart from its checkpoints when CMP_BENCH_ROWS says where rows go.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dirname } from 'node:path';
import { benchWorkDir, RowCache } from '../../bench/common.js';
import { tempDir } from '../helpers.js';

test("two caches of one bench and inputs (two processes side by side) keep each other's rows", () => {
  const dir = tempDir();
  const a = new RowCache<number>('prune', { epochs: 10 }, dir);
  const b = new RowCache<number>('prune', { epochs: 10 }, dir);
  assert.equal(a.path, b.path);
  a.put('lenet seed 1', 1);
  b.put('mlp seed 1', 2);
  a.put('lenet seed 2', 3);
  const reread = new RowCache<number>('prune', { epochs: 10 }, dir);
  assert.deepEqual(
    ['lenet seed 1', 'mlp seed 1', 'lenet seed 2'].map((k) => reread.get(k)),
    [1, 2, 3],
  );
  assert.equal(new RowCache<number>('prune', { epochs: 11 }, dir).size, 0, 'other inputs, another file');
});

test('CMP_BENCH_ROWS keeps the rows apart from the work folder, which stays CMP_BENCH_DIR', () => {
  const saved = { rows: process.env.CMP_BENCH_ROWS, work: process.env.CMP_BENCH_DIR };
  const rows = tempDir();
  const work = tempDir();
  try {
    process.env.CMP_BENCH_DIR = work;
    delete process.env.CMP_BENCH_ROWS;
    assert.equal(dirname(new RowCache<number>('select', {}).path), work, 'rows follow the work folder by default');
    process.env.CMP_BENCH_ROWS = rows;
    const cache = new RowCache<number>('select', {});
    cache.put('mnist full', 1);
    assert.equal(dirname(cache.path), rows);
    assert.equal(benchWorkDir(), work);
    assert.equal(new RowCache<number>('select', {}).get('mnist full'), 1, 'read back from the rows folder');
  } finally {
    for (const [name, value] of [
      ['CMP_BENCH_ROWS', saved.rows],
      ['CMP_BENCH_DIR', saved.work],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
});
