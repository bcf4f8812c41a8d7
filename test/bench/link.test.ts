// The link bench's masked model plans for the most pixels whose hand-off fits the byte budget on the wire.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pixelsWithin } from '../../bench/link.js';
import { SELECT_HEADER_BYTES } from '../../src/core/codec.js';
import { handoffUplinkBytes } from '../../src/profile/split.js';

test('pixelsWithin is the most pixels whose hand-off fits the budget', () => {
  const budget = handoffUplinkBytes(SELECT_HEADER_BYTES + 784) / 10;
  const pixels = pixelsWithin(budget, 784);
  assert.ok(handoffUplinkBytes(SELECT_HEADER_BYTES + pixels) <= budget);
  assert.ok(handoffUplinkBytes(SELECT_HEADER_BYTES + pixels + 1) > budget);
  assert.equal(pixels, 50, 'a tenth of the whole image on the wire (81.8 bytes) carries 50 pixels');
  assert.equal(pixelsWithin(1e6, 784), 784, 'a budget over the whole image keeps every pixel');
  assert.equal(pixelsWithin(0, 784), 1, 'never an empty mask');
});
