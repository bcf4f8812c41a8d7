// Input selection masks: which input features a sensor sends. Granularity, the unit layout and the spec entries.

import * as v from 'valibot';
import { CmpError } from '../errors.js';

/**
 * What one mask unit covers: `pixel` one position with all its channels, `channel` one value (a pixel of one
 * channel), `block` a size x size square of positions with all channels (edge blocks are clipped to the image).
 */
export const MASK_GRANULARITY_SCHEMA = v.variant('kind', [
  v.object({ kind: v.literal('pixel') }),
  v.object({ kind: v.literal('channel') }),
  v.object({ kind: v.literal('block'), size: v.pipe(v.number(), v.safeInteger(), v.minValue(1)) }),
]);
export type MaskGranularity = v.InferOutput<typeof MASK_GRANULARITY_SCHEMA>;

/** How selected values travel on the wire: uint8 is round(value * 255) of [0, 1] inputs. */
export type MaskValueType = 'uint8' | 'float16' | 'float32';
export const MASK_VALUE_TYPES: readonly MaskValueType[] = Object.freeze(['uint8', 'float16', 'float32']);
/** Bytes one value takes on the wire. */
export const MASK_VALUE_BYTES: Readonly<Record<MaskValueType, number>> = Object.freeze({
  uint8: 1,
  float16: 2,
  float32: 4,
});

/** Where a static mask came from: learned jointly, a feature-importance ranking, or random (the two baselines). */
export type MaskSource = 'learned' | 'importance' | 'random';
export const MASK_SOURCES: readonly MaskSource[] = Object.freeze(['learned', 'importance', 'random']);

/**
 * One mask for every instance. `kept` lists the kept units in ascending order; while a learned mask trains it follows
 * the `mask.logits` tensor (a unit is kept while its logit is positive) and is written at every save.
 */
const UNIT_LIST = v.array(v.pipe(v.number(), v.safeInteger(), v.minValue(0)));
export const STATIC_MASK_SPEC_SCHEMA = v.object({
  kind: v.literal('static'),
  granularity: MASK_GRANULARITY_SCHEMA,
  source: v.picklist(['learned', 'importance', 'random']),
  values: v.picklist(['uint8', 'float16', 'float32']),
  kept: UNIT_LIST,
});
export type StaticMaskSpec = v.InferOutput<typeof STATIC_MASK_SPEC_SCHEMA>;

/**
 * A mask chosen per instance on the sender by a linear selector: scores = avgpool(input, selectorPool) flattened,
 * times `selector.weight` [pooled features, units], plus `selector.bias` [units]; a unit is sent when its score is > 0.
 */
export const DYNAMIC_MASK_SPEC_SCHEMA = v.object({
  kind: v.literal('dynamic'),
  granularity: MASK_GRANULARITY_SCHEMA,
  values: v.picklist(['uint8', 'float16', 'float32']),
  selectorPool: v.pipe(v.number(), v.safeInteger(), v.minValue(1)),
  /**
   * The units the selector sends for at least half of the held-out instances, ascending (set after training): frames
   * may code their selection as the units where they differ from it, which costs less than listing every unit.
   */
  prior: v.optional(UNIT_LIST),
  /**
   * Per unit, how often the selector sends it on the held-out instances, in 256ths, 1..255 (set after training):
   * frames may arithmetic-code their selection with these, about the selection's information in bits.
   */
  rates: v.optional(v.array(v.pipe(v.number(), v.safeInteger(), v.minValue(1), v.maxValue(255)))),
});
export type DynamicMaskSpec = v.InferOutput<typeof DYNAMIC_MASK_SPEC_SCHEMA>;

/** An input mask in a model spec; checkMaskSpec adds what the schema cannot say (units in range, ascending). */
export const MASK_SPEC_SCHEMA = v.variant('kind', [STATIC_MASK_SPEC_SCHEMA, DYNAMIC_MASK_SPEC_SCHEMA]);
export type MaskSpec = StaticMaskSpec | DynamicMaskSpec;

/** The units of a granularity on an input [C, H, W]: how many, each feature's unit, and each unit's features. */
export interface MaskLayout {
  shape: [number, number, number];
  granularity: MaskGranularity;
  units: number;
  /** Unit grid for pictures: [C, H, W] (channel), [H, W] (pixel) or [ceil(H/b), ceil(W/b)] (block). */
  grid: number[];
  /** Feature index (NCHW, row-major) to unit index. */
  unitOf: Int32Array;
  /** Features of unit u: featureIndex[featureStart[u] .. featureStart[u + 1]), ascending. */
  featureStart: Int32Array;
  featureIndex: Int32Array;
}

/** Parses `pixel`, `channel` or `block:N`. */
export function parseGranularity(text: string): MaskGranularity {
  if (text === 'pixel' || text === 'channel') return { kind: text };
  const block = /^block:(\d+)$/.exec(text);
  if (block && Number(block[1]) >= 1) return { kind: 'block', size: Number(block[1]) };
  throw new CmpError('BAD_FLAG', `Unknown granularity "${text}". Use pixel, channel or block:N (e.g. block:4).`);
}

export function granularityName(g: MaskGranularity): string {
  return g.kind === 'block' ? `block:${g.size}` : g.kind;
}

/** The unit layout of `granularity` over an input of `shape` [C, H, W]. */
export function maskLayout(shape: [number, number, number], granularity: MaskGranularity): MaskLayout {
  const [c, h, w] = shape;
  const features = c * h * w;
  const unitOf = new Int32Array(features);
  let grid: number[];
  if (granularity.kind === 'channel') {
    grid = [c, h, w];
    for (let f = 0; f < features; f++) unitOf[f] = f;
  } else {
    const b = granularity.kind === 'block' ? granularity.size : 1;
    const gw = Math.ceil(w / b);
    grid = [Math.ceil(h / b), gw];
    for (let ch = 0; ch < c; ch++)
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) unitOf[(ch * h + y) * w + x] = Math.floor(y / b) * gw + Math.floor(x / b);
  }
  const units = grid.reduce((a, b) => a * b, 1);
  const featureStart = new Int32Array(units + 1);
  for (let f = 0; f < features; f++) featureStart[unitOf[f] + 1]++;
  for (let u = 0; u < units; u++) featureStart[u + 1] += featureStart[u];
  const fill = featureStart.slice(0, units);
  const featureIndex = new Int32Array(features);
  for (let f = 0; f < features; f++) featureIndex[fill[unitOf[f]]++] = f;
  return { shape, granularity, units, grid, unitOf, featureStart, featureIndex };
}

/** Features covered by `units` (any order), ascending: the order selected values travel in and the model reads. */
export function featuresOf(layout: MaskLayout, units: ArrayLike<number>): Int32Array {
  const chosen = new Uint8Array(layout.units);
  for (let i = 0; i < units.length; i++) chosen[units[i]] = 1;
  const out: number[] = [];
  for (let f = 0; f < layout.unitOf.length; f++) if (chosen[layout.unitOf[f]]) out.push(f);
  return Int32Array.from(out);
}

/** A 0/1 value per feature: 1 where a kept unit covers it. */
export function featureMask(layout: MaskLayout, units: ArrayLike<number>): Float32Array {
  const out = new Float32Array(layout.unitOf.length);
  for (const f of featuresOf(layout, units)) out[f] = 1;
  return out;
}

/** Pooled selector input size of a dynamic mask: [C, floor(H/p), floor(W/p)] flattened. */
export function selectorFeatures(shape: [number, number, number], pool: number): number {
  return shape[0] * Math.floor(shape[1] / pool) * Math.floor(shape[2] / pool);
}

/** Checks a mask spec against the model input; one MODEL_INVALID line per problem. */
export function checkMaskSpec(mask: MaskSpec, shape: [number, number, number]): void {
  const bad = (problem: string): CmpError =>
    new CmpError('MODEL_INVALID', `Invalid input mask: ${problem}. Retrain the mask with cmp train --mask.`);
  if (!MASK_VALUE_TYPES.includes(mask.values)) throw bad(`unknown value type ${JSON.stringify(mask.values)}`);
  const g = mask.granularity;
  if (!g || !['pixel', 'channel', 'block'].includes(g.kind)) throw bad('unknown granularity');
  if (g.kind === 'block' && (!Number.isInteger(g.size) || g.size < 1))
    throw bad('block size is not a positive integer');
  const layout = maskLayout(shape, g);
  if (mask.kind === 'static') {
    if (!Array.isArray(mask.kept) || mask.kept.length === 0) throw bad('it keeps no unit');
    for (let i = 0; i < mask.kept.length; i++) {
      const u = mask.kept[i];
      if (!Number.isInteger(u) || u < 0 || u >= layout.units) throw bad(`unit ${u} is outside 0..${layout.units - 1}`);
      if (i > 0 && u <= mask.kept[i - 1]) throw bad('kept units are not strictly ascending');
    }
  } else if (mask.kind === 'dynamic') {
    const p = mask.selectorPool;
    if (!Number.isInteger(p) || p < 1 || p > Math.min(shape[1], shape[2]))
      throw bad(`selector pool ${p} does not fit a ${shape[1]}x${shape[2]} input`);
    if (mask.prior !== undefined) {
      if (!Array.isArray(mask.prior)) throw bad('its prior is not a list of units');
      mask.prior.forEach((u, i) => {
        if (!Number.isInteger(u) || u < 0 || u >= layout.units)
          throw bad(`prior unit ${u} is outside 0..${layout.units - 1}`);
        if (i > 0 && u <= mask.prior![i - 1]) throw bad('prior units are not strictly ascending');
      });
    }
    if (mask.rates !== undefined) {
      if (!Array.isArray(mask.rates) || mask.rates.length !== layout.units)
        throw bad(`its rates are not one per unit (${layout.units})`);
      if (mask.rates.some((r) => !Number.isInteger(r) || r < 1 || r > 255))
        throw bad('a rate is outside 1..255 (256ths of the instances)');
    }
  } else {
    throw bad(`unknown kind ${JSON.stringify((mask as { kind: unknown }).kind)}`);
  }
}
