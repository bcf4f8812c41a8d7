// The arithmetic coder of dynamic selections: exact round trips whatever follows the coded bytes, an end the decoder
// finds by itself, and a size within a few bits of the selection's information.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeRng } from '../../src/core/rng.js';
import { decodeRates, encodeRates } from '../../src/core/rates-coder.js';

test('every selection round-trips, its end is found, and it costs its information plus at most 2 bits and padding', () => {
  const rng = makeRng(3);
  let bits = 0;
  let information = 0;
  for (let t = 0; t < 400; t++) {
    const n = 1 + Math.floor(rng() * 800);
    // Mostly rare units, as a selector's rates are, with some common ones and both extremes.
    const rates = Uint8Array.from({ length: n }, () => 1 + Math.floor(rng() ** 3 * 254.99));
    const chosen = Uint8Array.from(rates, (r) => (rng() * 256 < r ? 1 : 0));
    const coded = encodeRates(chosen, rates);
    let h = 0;
    rates.forEach((r, u) => (h -= Math.log2(chosen[u] ? r / 256 : 1 - r / 256)));
    assert.ok(coded.length <= Math.ceil((h + 2) / 8) + 1, `${coded.length} bytes for ${h.toFixed(1)} bits`);
    bits += coded.length * 8;
    information += h;
    // The frame's values follow the selection: any bytes after it must not change what decodes.
    const frame = new Uint8Array(5 + coded.length + 4);
    frame.set(coded, 5);
    for (let i = 5 + coded.length; i < frame.length; i++) frame[i] = Math.floor(rng() * 256);
    const decoded = decodeRates(frame, 5, rates);
    assert.deepEqual(decoded.chosen, chosen);
    assert.equal(decoded.end, 5 + coded.length);
  }
  assert.ok(bits < information * 1.05, `${bits} bits for ${information.toFixed(0)} bits of information`);
});

test('a selection against its rates costs up to 8 bits a unit, never an impossible code', () => {
  const rates = new Uint8Array(100).fill(1);
  const all = new Uint8Array(100).fill(1);
  const coded = encodeRates(all, rates);
  assert.ok(coded.length <= 101, `${coded.length} bytes`);
  assert.deepEqual(decodeRates(coded, 0, rates).chosen, all);
  const none = encodeRates(new Uint8Array(100), new Uint8Array(100).fill(255));
  assert.deepEqual(decodeRates(none, 0, new Uint8Array(100).fill(255)).chosen, new Uint8Array(100));
});
