// Goals: met or missed with the margin, a margin smaller than the printed digits still shows, and a value at its
// target exactly meets it whatever float rounding did on the way.

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

test('a value at its target exactly meets it, though float arithmetic put it 1e-14 over', () => {
  // Three seeds' gaps of 0.44, 0.39 and 0.67 points are 0.5 on the mean; in float64 the means land 1.2e-14 apart.
  const float = (0.9159 + 0.9141 + 0.922) / 3;
  const hybrid = (0.9115 + 0.9102 + 0.9153) / 3;
  const gap = (float - hybrid) * 100;
  assert.notEqual(gap, 0.5, 'the rounding this test is about');
  const goal = atMost('hybrid within 0.5 pt', gap, 0.5, 'pt');
  assert.equal(goal.met, true);
  assert.equal(goal.margin, 0);
  assert.equal(atMost('hybrid within 0.5 pt', 0.5003, 0.5, 'pt').met, false, 'a real miss stays a miss');
  assert.equal(atLeast('dynamic beats static', 1, 1, 'x', true).met, false, 'a strict goal is not met at a tie');
});
