// A binary arithmetic coder for a dynamic frame's selection: one bit per unit, coded with that unit's rate (how often
// its selector sends it, in 256ths), so a frame costs about the selection's information, not a byte per unit.

/** Interval bounds are 32-bit; a rate in 256ths times a range stays under 2^40, exact in a double. */
const TOP = 2 ** 32;
const HALF = TOP / 2;
const QUARTER = TOP / 4;

/**
 * Codes `chosen` (1 where the unit is selected) with `rates` (each unit's chance of being selected, 1..255 in 256ths;
 * a unit of rate 0 or 256 would make a bit impossible to code). Returns the bytes, bits MSB first, padded with zeros.
 * The Witten-Neal-Cleary coder: a unit's bit narrows [low, high] to its rate's share, and whole bits are shifted out
 * as soon as the interval lies in one half (or, deferred, straddles the middle quarter).
 */
export function encodeRates(chosen: Uint8Array, rates: Uint8Array): Uint8Array {
  const bits: number[] = [];
  let pending = 0;
  const emit = (bit: number): void => {
    bits.push(bit);
    for (; pending > 0; pending--) bits.push(1 - bit);
  };
  let low = 0;
  let high = TOP - 1;
  for (let u = 0; u < rates.length; u++) {
    const split = low + Math.floor(((high - low + 1) * (256 - rates[u])) / 256) - 1;
    if (chosen[u]) low = split + 1;
    else high = split;
    for (;;) {
      if (high < HALF) emit(0);
      else if (low >= HALF) {
        emit(1);
        low -= HALF;
        high -= HALF;
      } else if (low >= QUARTER && high < HALF + QUARTER) {
        pending++;
        low -= QUARTER;
        high -= QUARTER;
      } else break;
      low *= 2;
      high = high * 2 + 1;
    }
  }
  // Two more bits pick a quarter inside [low, high]: whatever follows them (padding, the frame's values) decodes the
  // same.
  pending++;
  emit(low < QUARTER ? 0 : 1);
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((b, i) => (out[i >> 3] |= b << (7 - (i & 7))));
  return out;
}

/** Bytes `encodeRates` spends on `chosen`. */
export function ratesBytes(chosen: Uint8Array, rates: Uint8Array): number {
  return encodeRates(chosen, rates).length;
}

/**
 * Decodes `rates.length` bits from `frame` at byte `o` (bits past the frame's end read as 0). Returns the selection and
 * where the coded bytes end, found from the coder's own state: every bit the decoder shifts in is one the encoder
 * wrote, and the encoder's two closing bits follow.
 */
export function decodeRates(frame: Uint8Array, o: number, rates: Uint8Array): { chosen: Uint8Array; end: number } {
  const bitAt = (i: number): number => {
    const byte = o + (i >> 3);
    return byte < frame.length ? (frame[byte] >> (7 - (i & 7))) & 1 : 0;
  };
  let read = 0;
  let value = 0;
  for (; read < 32; read++) value = value * 2 + bitAt(read);
  let low = 0;
  let high = TOP - 1;
  const chosen = new Uint8Array(rates.length);
  for (let u = 0; u < rates.length; u++) {
    const split = low + Math.floor(((high - low + 1) * (256 - rates[u])) / 256) - 1;
    if (value > split) {
      chosen[u] = 1;
      low = split + 1;
    } else high = split;
    for (;;) {
      if (high < HALF) {
        // nothing to subtract
      } else if (low >= HALF) {
        low -= HALF;
        high -= HALF;
        value -= HALF;
      } else if (low >= QUARTER && high < HALF + QUARTER) {
        low -= QUARTER;
        high -= QUARTER;
        value -= QUARTER;
      } else break;
      low *= 2;
      high = high * 2 + 1;
      value = value * 2 + bitAt(read++);
    }
  }
  // The encoder wrote one bit per shift (the decoder's 32 look-ahead bits are the first 32 of them) and two to close.
  return { chosen, end: o + Math.ceil((read - 32 + 2) / 8) };
}
