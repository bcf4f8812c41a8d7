// The fuzz harness (npm run bench -- fuzz) on a small scale: every kind is tried, and no input crashes, hangs or is
// accepted although damaged.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runFuzz } from '../../bench/fuzz.js';
import { HANG_MS } from '../helpers.js';

test('fuzz: damaged and crafted inputs at every edge are refused in one line or accepted intact, never a crash', () => {
  const rows = runFuzz({ seed: 3, scale: 0.05, hangLimitMs: HANG_MS });
  assert.equal(rows.length, 9, rows.map((r) => r.kind).join(', '));
  for (const row of rows) {
    assert.ok(row.tried > 0, row.kind);
    assert.equal(row.refused + row.accepted + row.acceptedDamaged + row.crashed + row.hung, row.tried, row.kind);
    assert.deepEqual(
      { crashed: row.crashed, hung: row.hung, acceptedDamaged: row.acceptedDamaged },
      { crashed: 0, hung: 0, acceptedDamaged: 0 },
      `${row.kind}: ${row.firstCrash ?? ''}`,
    );
  }
  // Damage the decoders must see: every over-long link frame is dropped.
  const long = rows.find((r) => r.kind === 'link frame, payload over 1024');
  assert.equal(long?.refused, long?.tried);
});
