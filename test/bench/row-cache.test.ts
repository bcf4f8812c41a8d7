// RowCache: the rows a long bench saves so that it resumes, including when two of its runs share one file.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RowCache } from '../../bench/common.js';
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
