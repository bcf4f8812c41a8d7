// Goal lines: each goal met or missed with its margin, and a margin smaller than the printed digits still shows.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { atLeast, atMost, goalLines } from '../../bench/common.js';

test('a goal line says met or missed with the margin, and a tiny miss is not printed as a miss by zero', () => {
  const [hit, nearMiss, wide] = goalLines(
    [
      atLeast('accuracy', 98.36, 98.15, 'pt'),
      atMost('hybrid within 0.5 pt', 0.5003, 0.5, 'pt'),
      atMost('int8 size ratio', 4.2, 3.9, 'x'),
    ],
    3,
  );
  assert.equal(hit, '  MET    accuracy: 98.360 vs 98.150 (by 0.210 pt)');
  assert.equal(nearMiss, '  MISSED hybrid within 0.5 pt: 0.500 vs 0.500 (short by 0.00030 pt)');
  assert.equal(wide, '  MISSED int8 size ratio: 4.200 vs 3.900 (short by 0.300 x)');
});
