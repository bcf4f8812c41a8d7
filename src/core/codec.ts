// The input-selection codec (cmp-select/1): what a sensor sends for one instance, only the features its mask selects.

import { CmpError } from '../errors.js';
import { fromFloat16Bits, toFloat16Bits } from './float16.js';
import {
  featuresOf,
  granularityName,
  MASK_VALUE_BYTES as VALUE_BYTES,
  maskLayout,
  type MaskLayout,
  type MaskSpec,
} from './mask.js';
import { crc32 } from './crc32.js';
import { decodeRates, encodeRates } from './rates-coder.js';

/**
 * cmp-select/1, little-endian; documented in firmware-bridge/PROTOCOL.md ("Selected-input frames").
 *
 *   0  u8   version (1)
 *   1  u8   flags: bit 0 dynamic; bits 1-2 value type (0 uint8, 1 float16, 2 float32);
 *                  bits 3-5 selection coding (0 none: static mask, 1 bitmap, 2 index list, 3 gaps, 4 prior, 5 rates)
 *   2  u32  mask id: CRC-32 of the mask's canonical description (see maskId); a receiver refuses other ids
 *   6  u16  number of selected units
 *   8  ...  selection, dynamic masks only, whichever coding is shortest for this instance:
 *             bitmap     ceil(units / 8) bytes, unit u at bit u % 8 of byte u / 8 (LSB first)
 *             index list one unit index per selected unit, ascending, u8 when units <= 256, else u16
 *             gaps       per selected unit, its distance from the previous one (the first from -1) minus 1, in
 *                        bytes: 255 adds 255 and continues, a byte below 255 ends the gap
 *             prior      the units where this frame differs from the mask's prior (the units its selector sends for
 *                        most instances, known to both ends from the model): their count, then the units as gaps,
 *                        each number written as a gap is; the selection is the prior with those units flipped
 *             rates      every unit's bit (1: sent), arithmetic-coded with the unit's rate from the model (how often
 *                        its selector sends it on held-out data, in 256ths; see core/rates-coder.ts), MSB first,
 *                        zero-padded to a byte; its length follows from the coder's state, and the values follow it
 *   ...     values: every feature of the selected units in ascending feature (NCHW) order, 1, 2 or 4 bytes each;
 *           uint8 is round(value * 255) of inputs in [0, 1], float16 IEEE half, float32 IEEE single
 *
 * A static mask's frame has no selection: the receiver knows the kept units from the model.
 */
export const SELECT_CODEC_VERSION = 1;
export const SELECT_HEADER_BYTES = 8;

const VALUE_CODES = { uint8: 0, float16: 1, float32: 2 } as const;
type Coding = 'none' | 'bitmap' | 'indices' | 'gaps' | 'prior' | 'rates';
const CODING_CODES: Record<Coding, number> = { none: 0, bitmap: 1, indices: 2, gaps: 3, prior: 4, rates: 5 };
const CODINGS: Coding[] = ['none', 'bitmap', 'indices', 'gaps', 'prior', 'rates'];

/**
 * The mask id frames carry: CRC-32 of the mask's canonical JSON (kind, input shape, granularity, value type; the
 * kept units of a static mask; the CRC of a dynamic selector's weights, so a retrained selector is another mask, and
 * its prior and rates when it has them).
 */
export function maskId(mask: MaskSpec, shape: [number, number, number], selectorWeights?: Float32Array): number {
  const canonical = {
    kind: mask.kind,
    shape,
    granularity: granularityName(mask.granularity),
    values: mask.values,
    ...(mask.kind === 'static'
      ? { kept: mask.kept }
      : {
          pool: mask.selectorPool,
          ...(mask.prior ? { prior: mask.prior } : {}),
          ...(mask.rates ? { rates: mask.rates } : {}),
        }),
    ...(selectorWeights
      ? {
          selector: crc32(
            new Uint8Array(selectorWeights.buffer, selectorWeights.byteOffset, selectorWeights.byteLength),
          ),
        }
      : {}),
  };
  return crc32(new TextEncoder().encode(JSON.stringify(canonical)));
}

/** A decoded frame: the selected units, their features (ascending) and the values of those features. */
export interface SelectedInput {
  units: Int32Array;
  features: Int32Array;
  values: Float32Array;
}

/** Encodes and decodes one model's frames. Built once per model; frames are checked where they enter. */
export class SelectionCodec {
  readonly layout: MaskLayout;
  /** Static masks: the kept features, the model's compact input order. */
  readonly staticFeatures?: Int32Array;
  /** Dynamic masks with a prior: 1 for each unit the prior sends. */
  private readonly prior?: Uint8Array;
  /** Dynamic masks with rates: each unit's chance of being sent, in 256ths. */
  private readonly rates?: Uint8Array;

  constructor(
    readonly mask: MaskSpec,
    shape: [number, number, number],
    readonly id: number,
  ) {
    this.layout = maskLayout(shape, mask.granularity);
    if (mask.kind === 'static') this.staticFeatures = featuresOf(this.layout, mask.kept);
    else {
      if (mask.prior) {
        this.prior = new Uint8Array(this.layout.units);
        for (const u of mask.prior) this.prior[u] = 1;
      }
      if (mask.rates) this.rates = Uint8Array.from(mask.rates);
    }
  }

  /** Bytes of a frame carrying `units` selected units covering `features` features (static: the mask's). */
  frameBytes(units?: ArrayLike<number>): number {
    const { mask } = this;
    const chosen = mask.kind === 'static' ? mask.kept : (units ?? []);
    const selection = mask.kind === 'static' ? 0 : this.selectionBytes(chosen).bytes;
    return SELECT_HEADER_BYTES + selection + featuresOf(this.layout, chosen).length * VALUE_BYTES[mask.values];
  }

  /** Bytes of the selection a dynamic frame carrying `units` spends (0 for a static mask). */
  selectionLength(units: ArrayLike<number>): number {
    return this.mask.kind === 'static' ? 0 : this.selectionBytes(units).bytes;
  }

  /**
   * The frame for one instance: `input` is its full feature vector (NCHW, [0, 1] for uint8); `units` the selected
   * units, ascending (dynamic masks only; a static mask sends its kept units).
   */
  encode(input: Float32Array, units?: ArrayLike<number>): Uint8Array {
    const { layout, mask } = this;
    if (input.length !== layout.unitOf.length) {
      throw new CmpError(
        'BAD_ARGUMENT',
        `Input has ${input.length} features, the mask expects ${layout.unitOf.length}.`,
      );
    }
    const chosen = mask.kind === 'static' ? mask.kept : units;
    if (!chosen) throw new CmpError('BAD_ARGUMENT', 'A dynamic mask frame needs the selected units.');
    const features = mask.kind === 'static' ? (this.staticFeatures as Int32Array) : featuresOf(layout, chosen);
    const selection = mask.kind === 'static' ? { coding: 'none' as Coding, bytes: 0 } : this.selectionBytes(chosen);
    const size = VALUE_BYTES[mask.values];
    const frame = new Uint8Array(SELECT_HEADER_BYTES + selection.bytes + features.length * size);
    const view = new DataView(frame.buffer);
    frame[0] = SELECT_CODEC_VERSION;
    frame[1] =
      (mask.kind === 'dynamic' ? 1 : 0) | (VALUE_CODES[mask.values] << 1) | (CODING_CODES[selection.coding] << 3);
    view.setUint32(2, this.id, true);
    view.setUint16(6, chosen.length, true);
    let o = SELECT_HEADER_BYTES;
    if (selection.coding === 'rates') {
      frame.set(selection.rated as Uint8Array, o);
      o += selection.bytes;
    } else if (selection.coding === 'prior') o = writePrior(frame, o, this.flips(chosen));
    else o = writeSelection(frame, o, chosen, selection.coding, layout.units);
    for (let i = 0; i < features.length; i++) {
      const v = input[features[i]];
      if (mask.values === 'uint8') frame[o] = Math.max(0, Math.min(255, Math.round(v * 255)));
      else if (mask.values === 'float16') view.setUint16(o, toFloat16Bits(v), true);
      else view.setFloat32(o, v, true);
      o += size;
    }
    return frame;
  }

  /** Decodes a frame; a truncated, foreign or inconsistent one is one FRAME_INVALID line. */
  decode(frame: Uint8Array): SelectedInput {
    const { layout, mask } = this;
    const bad = (problem: string): CmpError =>
      new CmpError('FRAME_INVALID', `Selected-input frame rejected: ${problem}.`);
    if (frame.length < SELECT_HEADER_BYTES) throw bad(`${frame.length} bytes is shorter than the 8-byte header`);
    const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    if (frame[0] !== SELECT_CODEC_VERSION)
      throw bad(`codec version ${frame[0]}, this cmp reads version ${SELECT_CODEC_VERSION}; update the sender or cmp`);
    const flags = frame[1];
    const dynamic = (flags & 1) === 1;
    const valueCode = (flags >> 1) & 3;
    const coding = CODINGS[(flags >> 3) & 7] as Coding | undefined;
    if (flags >> 6 !== 0 || coding === undefined) throw bad(`unknown flag bits 0x${flags.toString(16)}`);
    if (dynamic !== (mask.kind === 'dynamic'))
      throw bad(`a ${dynamic ? 'dynamic' : 'static'} frame for a ${mask.kind} mask`);
    const id = view.getUint32(2, true);
    if (id !== this.id) {
      throw bad(
        `mask id 0x${id.toString(16).padStart(8, '0')} is not this model's 0x${this.id.toString(16).padStart(8, '0')} (a frame for another model version); deploy the same model to sender and receiver`,
      );
    }
    if (valueCode !== VALUE_CODES[mask.values])
      throw bad(`value type code ${valueCode}, the model expects ${mask.values}`);
    const count = view.getUint16(6, true);
    let units: Int32Array;
    let o = SELECT_HEADER_BYTES;
    if (mask.kind === 'static') {
      if (coding !== 'none') throw bad('a static frame carries a selection');
      if (count !== mask.kept.length) throw bad(`${count} units, the static mask keeps ${mask.kept.length}`);
      units = Int32Array.from(mask.kept);
    } else {
      if (coding === 'none') throw bad('a dynamic frame without a selection');
      if (count > layout.units) throw bad(`${count} units, the mask has ${layout.units}`);
      if (coding === 'prior' && !this.prior) throw bad('a selection coded against a prior the mask does not have');
      if (coding === 'rates' && !this.rates) throw bad('a selection coded with rates the mask does not have');
      const read =
        coding === 'rates'
          ? readRates(frame, o, count, this.rates as Uint8Array)
          : coding === 'prior'
            ? readPrior(frame, o, count, this.prior as Uint8Array)
            : readSelection(frame, o, count, coding, layout.units);
      if (typeof read === 'string') throw bad(read);
      units = read.units;
      o = read.end;
    }
    const features = mask.kind === 'static' ? (this.staticFeatures as Int32Array) : featuresOf(layout, units);
    const size = VALUE_BYTES[mask.values];
    const expected = o + features.length * size;
    if (frame.length !== expected)
      throw bad(`${frame.length} bytes, ${expected} expected for ${features.length} values (truncated or padded)`);
    const values = new Float32Array(features.length);
    for (let i = 0; i < features.length; i++, o += size) {
      values[i] =
        mask.values === 'uint8'
          ? frame[o] / 255
          : mask.values === 'float16'
            ? fromFloat16Bits(view.getUint16(o, true))
            : view.getFloat32(o, true);
    }
    return { units, features, values };
  }

  /** The shortest selection coding for `units`, its size in bytes, and the rate-coded bytes when it has them. */
  private selectionBytes(units: ArrayLike<number>): { coding: Coding; bytes: number; rated?: Uint8Array } {
    const total = this.layout.units;
    const options: [Coding, number][] = [
      ['bitmap', Math.ceil(total / 8)],
      ['indices', units.length * (total <= 256 ? 1 : 2)],
      ['gaps', gapBytes(units)],
    ];
    if (this.prior) {
      const flips = this.flips(units);
      options.push(['prior', numberBytes(flips.length) + gapBytes(flips)]);
    }
    const rated = this.rates ? encodeRates(this.chosen(units), this.rates) : undefined;
    if (rated) options.push(['rates', rated.length]);
    options.sort((a, b) => a[1] - b[1]);
    return { coding: options[0][0], bytes: options[0][1], rated };
  }

  /** 1 for each of `units`, over every unit of the mask. */
  private chosen(units: ArrayLike<number>): Uint8Array {
    const chosen = new Uint8Array(this.layout.units);
    for (let i = 0; i < units.length; i++) chosen[units[i]] = 1;
    return chosen;
  }

  /** The units where `units` (ascending) and the prior differ, ascending. */
  private flips(units: ArrayLike<number>): number[] {
    const prior = this.prior as Uint8Array;
    const chosen = this.chosen(units);
    const out: number[] = [];
    for (let u = 0; u < prior.length; u++) if (chosen[u] !== prior[u]) out.push(u);
    return out;
  }
}

/** Bytes of one number written as a gap is (255 adds 255 and continues). */
function numberBytes(n: number): number {
  return Math.floor(n / 255) + 1;
}

function gapBytes(units: ArrayLike<number>): number {
  let bytes = 0;
  let previous = -1;
  for (let i = 0; i < units.length; i++) {
    bytes += Math.floor((units[i] - previous - 1) / 255) + 1;
    previous = units[i];
  }
  return bytes;
}

function writeSelection(frame: Uint8Array, o: number, units: ArrayLike<number>, coding: Coding, total: number): number {
  if (coding === 'bitmap') {
    for (let i = 0; i < units.length; i++) frame[o + (units[i] >> 3)] |= 1 << (units[i] & 7);
    return o + Math.ceil(total / 8);
  }
  if (coding === 'indices') {
    for (let i = 0; i < units.length; i++) {
      if (total <= 256) frame[o++] = units[i];
      else {
        frame[o++] = units[i] & 0xff;
        frame[o++] = units[i] >> 8;
      }
    }
    return o;
  }
  if (coding === 'gaps') {
    let previous = -1;
    for (let i = 0; i < units.length; i++) {
      let gap = units[i] - previous - 1;
      while (gap >= 255) {
        frame[o++] = 255;
        gap -= 255;
      }
      frame[o++] = gap;
      previous = units[i];
    }
  }
  return o;
}

function writeNumber(frame: Uint8Array, o: number, n: number): number {
  while (n >= 255) {
    frame[o++] = 255;
    n -= 255;
  }
  frame[o++] = n;
  return o;
}

/** Writes the flipped units' count, then the units as gaps. */
function writePrior(frame: Uint8Array, o: number, flips: number[]): number {
  return writeSelection(frame, writeNumber(frame, o, flips.length), flips, 'gaps', 0);
}

/** Reads a selection coded against `prior`: `count` units once the flips are applied, or says what is wrong. */
function readPrior(
  frame: Uint8Array,
  o: number,
  count: number,
  prior: Uint8Array,
): { units: Int32Array; end: number } | string {
  let flipCount = 0;
  for (;;) {
    if (o >= frame.length) return 'truncated in its count of flips against the prior';
    const b = frame[o++];
    flipCount += b;
    if (b < 255) break;
  }
  if (flipCount > prior.length) return `${flipCount} flips against the prior, the mask has ${prior.length} units`;
  const flips = readSelection(frame, o, flipCount, 'gaps', prior.length);
  if (typeof flips === 'string') return flips;
  const chosen = prior.slice();
  for (const u of flips.units) chosen[u] ^= 1;
  const units = new Int32Array(count);
  let n = 0;
  for (let u = 0; u < chosen.length; u++) {
    if (!chosen[u]) continue;
    if (n === count) return `the prior and its flips select more than the ${count} units the header says`;
    units[n++] = u;
  }
  if (n !== count) return `the prior and its flips select ${n} units, the header says ${count}`;
  return { units, end: flips.end };
}

/** Reads a selection arithmetic-coded with `rates`: `count` units, or says what is wrong. */
function readRates(
  frame: Uint8Array,
  o: number,
  count: number,
  rates: Uint8Array,
): { units: Int32Array; end: number } | string {
  const { chosen, end } = decodeRates(frame, o, rates);
  if (end > frame.length) return 'truncated in its rate-coded selection';
  const units = new Int32Array(count);
  let n = 0;
  for (let u = 0; u < chosen.length; u++) {
    if (!chosen[u]) continue;
    if (n === count) return `the rate-coded selection holds more than the ${count} units the header says`;
    units[n++] = u;
  }
  if (n !== count) return `the rate-coded selection holds ${n} units, the header says ${count}`;
  return { units, end };
}

/** Reads `count` ascending units, or says what is wrong. */
function readSelection(
  frame: Uint8Array,
  o: number,
  count: number,
  coding: Coding,
  total: number,
): { units: Int32Array; end: number } | string {
  const units = new Int32Array(count);
  if (coding === 'bitmap') {
    const bytes = Math.ceil(total / 8);
    if (frame.length < o + bytes) return 'truncated in its selection bitmap';
    let n = 0;
    for (let u = 0; u < total; u++) {
      if (frame[o + (u >> 3)] & (1 << (u & 7))) {
        if (n === count) return `the bitmap selects more than the ${count} units the header says`;
        units[n++] = u;
      }
    }
    for (let u = total; u < bytes * 8; u++)
      if (frame[o + (u >> 3)] & (1 << (u & 7))) return 'padding bits set in the bitmap';
    if (n !== count) return `the bitmap selects ${n} units, the header says ${count}`;
    return { units, end: o + bytes };
  }
  if (coding === 'indices') {
    const width = total <= 256 ? 1 : 2;
    if (frame.length < o + count * width) return 'truncated in its index list';
    for (let i = 0; i < count; i++) {
      units[i] = width === 1 ? frame[o + i] : frame[o + 2 * i] | (frame[o + 2 * i + 1] << 8);
      if (units[i] >= total) return `unit ${units[i]} is outside 0..${total - 1}`;
      if (i > 0 && units[i] <= units[i - 1]) return 'index list not strictly ascending';
    }
    return { units, end: o + count * width };
  }
  let previous = -1;
  for (let i = 0; i < count; i++) {
    let gap = 0;
    for (;;) {
      if (o >= frame.length) return 'truncated in its gap list';
      const b = frame[o++];
      gap += b;
      if (b < 255) break;
    }
    previous += gap + 1;
    if (previous >= total) return `unit ${previous} is outside 0..${total - 1}`;
    units[i] = previous;
  }
  return { units, end: o };
}
