// Training's binarized-weight kernels: DAB's split search, the two-level fit and its gradient, on raw memory.
/* eslint-disable -- AssemblyScript, not TypeScript: asc compiles it (npm run build:wasm); tsc and eslint meet it only because it lives in src/. */
// @ts-nocheck

/*
 * A weight matrix is float32 [len, stride]: value j of row r at (j * stride + r) * 4, a dense layer's [in, out]
 * weights as they are, rows (output units) being columns; stride is a multiple of 4 (the caller pads with zero
 * columns), so four neighbouring rows share each v128. Row-wise results are arrays of `stride` entries. Everything
 * the kernels need beyond their arguments lies in a scratch area of searchScratchBytes(len) bytes; nothing allocates.
 * binarize-wasm.ts lays the memory out, and core/binarize.ts (DabSearch, fitTwoLevel) is the reference they follow.
 */

/** Buckets per row, as core/binarize.ts SEARCH_BUCKETS. */
const B: i32 = 128;
/** Rows searched together: 16 float32 rows are one 64-byte line of the matrix. */
const BLOCK: i32 = 16;
/** Buckets at most this full are sorted by insertion; fuller ones by heap sort. */
const INSERTION_MAX: i32 = 32;

/** Four rows' two float64 sums, as fitLevels and gradient hand them from registers to per-row arithmetic. */
const SUMS = memory.data(64, 16);

function storeSums(up0: v128, up1: v128, all0: v128, all1: v128): void {
  v128.store(SUMS, up0);
  v128.store(SUMS, up1, 16);
  v128.store(SUMS, all0, 32);
  v128.store(SUMS, all1, 48);
}

export function heapBase(): usize {
  return __heap_base;
}

/** Bytes of scratch dabSearch needs for rows of `len` values. */
export function searchScratchBytes(len: i32): usize {
  // members (f64) and bucketOf (u8) per value of a block, then counts, offsets, fill (i32) and sums (f64) per bucket,
  // then mins, maxs, totals, scales, bests (f64) and edges (i32) per row of the block, bounds (f64) per bucket of a
  // row, and each row's lowest and highest bucket worth gathering (u8).
  return <usize>BLOCK * <usize>len * 9 + <usize>(BLOCK * B) * 20 + <usize>BLOCK * 44 + <usize>B * 8 + 32 + 64;
}

/** core/binarize.ts splitScore. */
function splitScore(k: f64, s: f64, total: f64, n: f64): f64 {
  if (k <= 0) return (total * total) / n;
  if (k >= n) return s == total ? (s * s) / n : Infinity;
  return (s * s) / k + ((total - s) * (total - s)) / (n - k);
}

/**
 * DAB's threshold of every row (DabSearch.threshold, to the bit: the same buckets, float64 sums in the same order, the
 * same bounds) into thr (float32 per row). See DabSearch for the method.
 */
export function dabSearch(w: usize, len: i32, stride: i32, thr: usize, scratch: usize): void {
  const members = (scratch + 7) & ~(<usize>7);
  const bucketOf = members + <usize>BLOCK * <usize>len * 8;
  const sums = (bucketOf + <usize>BLOCK * <usize>len + 7) & ~(<usize>7);
  const counts = sums + <usize>(BLOCK * B) * 8;
  const offsets = counts + <usize>(BLOCK * B) * 4;
  const fill = offsets + <usize>(BLOCK * B) * 4;
  const mins = fill + <usize>(BLOCK * B) * 4;
  const maxs = mins + <usize>BLOCK * 8;
  const totals = maxs + <usize>BLOCK * 8;
  const scales = totals + <usize>BLOCK * 8;
  const bests = scales + <usize>BLOCK * 8;
  const edges = bests + <usize>BLOCK * 8;
  const bounds = edges + <usize>BLOCK * 4;
  const lows = bounds + <usize>B * 8;
  const highs = lows + 16;
  const n = <f64>len;
  const rowBytes = (<usize>stride) << 2;
  for (let first = 0; first < stride; first += BLOCK) {
    const count = min<i32>(BLOCK, stride - first);
    const base = w + ((<usize>first) << 2);
    // Minimum, maximum and float64 total of each row, four rows per v128; a whole block (one line a step) at once.
    if (count == BLOCK) rangeBlock(base, len, rowBytes, mins, maxs, totals);
    else
      for (let q = 0; q < count; q += 4)
        rangeColumns(
          base + ((<usize>q) << 2),
          len,
          rowBytes,
          mins + ((<usize>q) << 3),
          maxs + ((<usize>q) << 3),
          totals + ((<usize>q) << 3),
        );
    // A row with one value, or all equal, has no split: its threshold is its value.
    for (let i = 0; i < count; i++) {
      const mn = load<f64>(mins + ((<usize>i) << 3));
      const mx = load<f64>(maxs + ((<usize>i) << 3));
      const live = len >= 2 && mx > mn;
      store<f64>(scales + ((<usize>i) << 3), live ? <f64>B / (mx - mn) : 0);
      if (!live) store<f32>(thr + ((<usize>(first + i)) << 2), <f32>mx);
    }
    memory.fill(counts, 0, <usize>(BLOCK * B) * 4);
    memory.fill(sums, 0, <usize>(BLOCK * B) * 8);
    // Each value's bucket, (v - min) * scale in float64 two rows per f64x2, then its row's count and float64 sum.
    const top = i32x4.splat(B - 1);
    for (let j = 0; j < len; j++) {
      const row = base + <usize>j * rowBytes;
      const k = bucketOf + <usize>j * <usize>BLOCK;
      for (let q = 0; q < count; q += 4) {
        const v = v128.load(row + ((<usize>q) << 2));
        const lo = f64x2.promote_low_f32x4(v);
        const hi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
        const m = mins + ((<usize>q) << 3);
        const sc = scales + ((<usize>q) << 3);
        const blo = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(f64x2.sub(lo, v128.load(m)), v128.load(sc)));
        const bhi = i32x4.trunc_sat_f64x2_s_zero(f64x2.mul(f64x2.sub(hi, v128.load(m, 16)), v128.load(sc, 16)));
        const b4 = i32x4.min_s(i32x4.shuffle(blo, bhi, 0, 1, 4, 5), top);
        const at = k + <usize>q;
        const slots = counts + ((<usize>(q * B)) << 2);
        const sumSlots = sums + ((<usize>(q * B)) << 3);
        tally(at, slots, sumSlots, i32x4.extract_lane(b4, 0), f64x2.extract_lane(lo, 0));
        tally(
          at + 1,
          slots + ((<usize>B) << 2),
          sumSlots + ((<usize>B) << 3),
          i32x4.extract_lane(b4, 1),
          f64x2.extract_lane(lo, 1),
        );
        tally(
          at + 2,
          slots + ((<usize>B) << 3),
          sumSlots + ((<usize>B) << 4),
          i32x4.extract_lane(b4, 2),
          f64x2.extract_lane(hi, 0),
        );
        tally(
          at + 3,
          slots + <usize>B * 12,
          sumSlots + <usize>B * 24,
          i32x4.extract_lane(b4, 3),
          f64x2.extract_lane(hi, 1),
        );
      }
    }
    // Per row, in one sweep down its buckets: the best split at a bucket edge, and each bucket's bound (the largest
    // score at the corners of the region its inner splits lie in); then the buckets whose bound reaches the best edge
    // are each given a stretch of members, and the row's range of buckets worth a look while gathering.
    let gathered = 0;
    for (let i = 0; i < 16; i++) {
      store<u8>(lows + <usize>i, 255);
      store<u8>(highs + <usize>i, 0);
    }
    for (let i = 0; i < count; i++) {
      const o = <usize>(i * B);
      memory.fill(offsets + (o << 2), 0xff, <usize>B * 4);
      store<i32>(edges + ((<usize>i) << 2), -1);
      const scale = load<f64>(scales + ((<usize>i) << 3));
      if (scale == 0) continue;
      const total = load<f64>(totals + ((<usize>i) << 3));
      const mn = load<f64>(mins + ((<usize>i) << 3));
      const width = (load<f64>(maxs + ((<usize>i) << 3)) - mn) / <f64>B;
      let best = -Infinity;
      let edge = B - 1;
      let above: f64 = 0;
      let sumAbove: f64 = 0;
      // The score at the edge above the current bucket: splitScore(above, sumAbove), at first its closure at k = 0.
      let previous = (total * total) / n;
      for (let b = B - 1; b >= 0; b--) {
        const c = load<i32>(counts + ((o + <usize>b) << 2));
        if (c == 0) continue;
        if (c > 1) {
          // The region's far corners at k = above + c; for the lowest bucket (k = n, outside every split) the inner
          // splits leave at least one value below, so its corners at c - 1 bound them.
          const fc = above + <f64>c < n ? <f64>c : <f64>(c - 1);
          const k = above + fc;
          const lo = sumAbove + fc * (mn + <f64>b * width);
          const hi = sumAbove + fc * (mn + <f64>(b + 1) * width);
          const inK = 1 / k;
          const inRest = 1 / (n - k);
          const bound = Math.max(
            previous,
            Math.max(
              lo * lo * inK + (total - lo) * (total - lo) * inRest,
              hi * hi * inK + (total - hi) * (total - hi) * inRest,
            ),
          );
          store<f64>(bounds + ((<usize>b) << 3), bound);
        }
        above += <f64>c;
        sumAbove += load<f64>(sums + ((o + <usize>b) << 3));
        if (above < n) {
          previous = splitScore(above, sumAbove, total, n);
          if (previous > best) {
            best = previous;
            edge = b;
          }
        }
      }
      store<i32>(edges + ((<usize>i) << 2), edge);
      store<f64>(bests + ((<usize>i) << 3), best);
      const floor = best - Math.abs(best) * 1e-9;
      let low = edge;
      let high = edge;
      for (let b = B - 1; b >= 0; b--) {
        const c = load<i32>(counts + ((o + <usize>b) << 2));
        if (c > 1 && load<f64>(bounds + ((<usize>b) << 3)) >= floor) {
          store<i32>(offsets + ((o + <usize>b) << 2), gathered);
          gathered += c;
          low = min<i32>(low, b);
          high = max<i32>(high, b);
        }
      }
      store<u8>(lows + <usize>i, <u8>low);
      store<u8>(highs + <usize>i, <u8>high);
    }
    // The best edge's threshold is the lowest value of the bucket above it, found while gathering. Sixteen rows'
    // buckets are one v128: only the lanes within their row's range are looked at.
    for (let i = 0; i < count; i++) {
      if (load<f64>(scales + ((<usize>i) << 3)) != 0) store<f32>(thr + ((<usize>(first + i)) << 2), <f32>Infinity);
    }
    memory.copy(fill, offsets, <usize>(BLOCK * B) * 4);
    const lowLanes = v128.load(lows);
    const highLanes = v128.load(highs);
    for (let j = 0; j < len; j++) {
      const row = base + <usize>j * rowBytes;
      const k = bucketOf + <usize>j * <usize>BLOCK;
      const b16 = v128.load(k);
      let lanes = i8x16.bitmask(v128.and(i8x16.ge_u(b16, lowLanes), i8x16.le_u(b16, highLanes)));
      while (lanes != 0) {
        const i = ctz<i32>(lanes);
        lanes &= lanes - 1;
        const b = <i32>load<u8>(k + <usize>i);
        const v = load<f32>(row + ((<usize>i) << 2));
        const t = thr + ((<usize>(first + i)) << 2);
        if (b == load<i32>(edges + ((<usize>i) << 2)) && v < load<f32>(t)) store<f32>(t, v);
        const slotAt = fill + ((<usize>(i * B + b)) << 2);
        const slot = load<i32>(slotAt);
        if (slot >= 0) {
          store<f64>(members + ((<usize>slot) << 3), <f64>v);
          store<i32>(slotAt, slot + 1);
        }
      }
    }
    for (let i = 0; i < count; i++) {
      if (load<f64>(scales + ((<usize>i) << 3)) == 0) continue;
      const o = <usize>(i * B);
      const total = load<f64>(totals + ((<usize>i) << 3));
      const t = thr + ((<usize>(first + i)) << 2);
      let best = load<f64>(bests + ((<usize>i) << 3));
      let above: f64 = 0;
      let sumAbove: f64 = 0;
      for (let b = B - 1; b >= 0; b--) {
        const c = load<i32>(counts + ((o + <usize>b) << 2));
        const from = load<i32>(offsets + ((o + <usize>b) << 2));
        if (from >= 0) {
          const at = members + ((<usize>from) << 3);
          sortDescending(at, c);
          let s = sumAbove;
          for (let m = 1; m < c; m++) {
            const v = load<f64>(at + ((<usize>(m - 1)) << 3));
            s += v;
            const score = splitScore(above + <f64>m, s, total, n);
            if (score > best) {
              best = score;
              store<f32>(t, <f32>v);
            }
          }
        }
        above += <f64>c;
        sumAbove += load<f64>(sums + ((o + <usize>b) << 3));
      }
    }
  }
}

/** Records value v (in bucket b) of one row: its bucket byte, its bucket's count and float64 sum. */
function tally(at: usize, counts: usize, sums: usize, b: i32, v: f64): void {
  store<u8>(at, <u8>b);
  const c = counts + ((<usize>b) << 2);
  store<i32>(c, load<i32>(c) + 1);
  const s = sums + ((<usize>b) << 3);
  store<f64>(s, load<f64>(s) + v);
}

/** Minimum, maximum (as float64) and float64 total of four rows (one v128 column) into mins, maxs and totals. */
function rangeColumns(col: usize, len: i32, rowBytes: usize, mins: usize, maxs: usize, totals: usize): void {
  let lo = v128.load(col);
  let hi = lo;
  let t0 = f64x2.splat(0);
  let t1 = f64x2.splat(0);
  for (let j = 0; j < len; j++) {
    const v = v128.load(col + <usize>j * rowBytes);
    lo = f32x4.min(lo, v);
    hi = f32x4.max(hi, v);
    t0 = f64x2.add(t0, f64x2.promote_low_f32x4(v));
    t1 = f64x2.add(t1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
  }
  storeRange(lo, hi, t0, t1, mins, maxs, totals);
}

/** rangeColumns for BLOCK (16) rows at once, reading one 64-byte line of the matrix per step. */
function rangeBlock(base: usize, len: i32, rowBytes: usize, mins: usize, maxs: usize, totals: usize): void {
  let lo0 = v128.load(base);
  let lo1 = v128.load(base, 16);
  let lo2 = v128.load(base, 32);
  let lo3 = v128.load(base, 48);
  let hi0 = lo0;
  let hi1 = lo1;
  let hi2 = lo2;
  let hi3 = lo3;
  for (let j = 0; j < len; j++) {
    const row = base + <usize>j * rowBytes;
    const v0 = v128.load(row);
    const v1 = v128.load(row, 16);
    const v2 = v128.load(row, 32);
    const v3 = v128.load(row, 48);
    lo0 = f32x4.min(lo0, v0);
    lo1 = f32x4.min(lo1, v1);
    lo2 = f32x4.min(lo2, v2);
    lo3 = f32x4.min(lo3, v3);
    hi0 = f32x4.max(hi0, v0);
    hi1 = f32x4.max(hi1, v1);
    hi2 = f32x4.max(hi2, v2);
    hi3 = f32x4.max(hi3, v3);
  }
  // Totals in a second sweep: with the ranges, sixteen float64 accumulators would not fit in registers.
  for (let q = 0; q < 4; q++) {
    const col = base + ((<usize>q) << 4);
    let t0 = f64x2.splat(0);
    let t1 = f64x2.splat(0);
    for (let j = 0; j < len; j++) {
      const v = v128.load(col + <usize>j * rowBytes);
      t0 = f64x2.add(t0, f64x2.promote_low_f32x4(v));
      t1 = f64x2.add(t1, f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1)));
    }
    v128.store(totals + ((<usize>q) << 5), t0);
    v128.store(totals + ((<usize>q) << 5), t1, 16);
  }
  storeRange(lo0, hi0, f64x2.splat(0), f64x2.splat(0), mins, maxs, 0);
  storeRange(lo1, hi1, f64x2.splat(0), f64x2.splat(0), mins + 32, maxs + 32, 0);
  storeRange(lo2, hi2, f64x2.splat(0), f64x2.splat(0), mins + 64, maxs + 64, 0);
  storeRange(lo3, hi3, f64x2.splat(0), f64x2.splat(0), mins + 96, maxs + 96, 0);
}

/** Stores four rows' minimum and maximum as float64, and their totals unless `totals` is 0. */
function storeRange(lo: v128, hi: v128, t0: v128, t1: v128, mins: usize, maxs: usize, totals: usize): void {
  v128.store(mins, f64x2.promote_low_f32x4(lo));
  v128.store(mins, f64x2.promote_low_f32x4(i32x4.shuffle(lo, lo, 2, 3, 0, 1)), 16);
  v128.store(maxs, f64x2.promote_low_f32x4(hi));
  v128.store(maxs, f64x2.promote_low_f32x4(i32x4.shuffle(hi, hi, 2, 3, 0, 1)), 16);
  if (totals != 0) {
    v128.store(totals, t0);
    v128.store(totals, t1, 16);
  }
}

/** Sorts the `count` float64 at `a` from largest to smallest in place. */
function sortDescending(a: usize, count: i32): void {
  if (count <= INSERTION_MAX) {
    for (let k = 1; k < count; k++) {
      const v = load<f64>(a + ((<usize>k) << 3));
      let m = k - 1;
      while (m >= 0 && load<f64>(a + ((<usize>m) << 3)) < v) {
        store<f64>(a + ((<usize>(m + 1)) << 3), load<f64>(a + ((<usize>m) << 3)));
        m--;
      }
      store<f64>(a + ((<usize>(m + 1)) << 3), v);
    }
    return;
  }
  // Heap sort on a min-heap: popping the smallest to the end leaves the array descending.
  for (let k = (count >> 1) - 1; k >= 0; k--) siftDown(a, k, count);
  for (let end = count - 1; end > 0; end--) {
    const top = load<f64>(a);
    store<f64>(a, load<f64>(a + ((<usize>end) << 3)));
    store<f64>(a + ((<usize>end) << 3), top);
    siftDown(a, 0, end);
  }
}

function siftDown(a: usize, k: i32, count: i32): void {
  const v = load<f64>(a + ((<usize>k) << 3));
  while (true) {
    let child = 2 * k + 1;
    if (child >= count) break;
    if (child + 1 < count && load<f64>(a + ((<usize>(child + 1)) << 3)) < load<f64>(a + ((<usize>child) << 3))) child++;
    const c = load<f64>(a + ((<usize>child) << 3));
    if (!(c < v)) break;
    store<f64>(a + ((<usize>k) << 3), c);
    k = child;
  }
  store<f64>(a + ((<usize>k) << 3), v);
}

/**
 * The two-level fit of every row given its threshold: writes each value's level to out, the levels to lower and upper
 * (float32 per row) and to lower64 and upper64 (float64, equal to core/binarize.ts fitTwoLevel's: the same sums in the
 * same order), and the count at or above the threshold to ups (i32 per row). mode 0: DAB (levels: the means on
 * either side); 1: XNOR (levels +/- mean |v|, thr all 0).
 */
export function fitLevels(
  w: usize,
  len: i32,
  stride: i32,
  thr: usize,
  mode: i32,
  lower: usize,
  upper: usize,
  lower64: usize,
  upper64: usize,
  ups: usize,
  out: usize,
): void {
  const rowBytes = (<usize>stride) << 2;
  const n = <f64>len;
  const absMask = i32x4.splat(0x7fffffff);
  // Four rows per v128, their values read down the rows' columns; sums in float64, two rows per f64x2.
  for (let q = 0; q < stride; q += 4) {
    const col = w + ((<usize>q) << 2);
    const t = v128.load(thr + ((<usize>q) << 2));
    let count = i32x4.splat(0);
    let up0 = f64x2.splat(0);
    let up1 = f64x2.splat(0);
    let all0 = f64x2.splat(0);
    let all1 = f64x2.splat(0);
    for (let j = 0; j < len; j++) {
      const v = v128.load(col + <usize>j * rowBytes);
      const bits = f32x4.ge(v, t);
      count = i32x4.sub(count, bits);
      const kept = v128.and(v, bits);
      up0 = f64x2.add(up0, f64x2.promote_low_f32x4(kept));
      up1 = f64x2.add(up1, f64x2.promote_low_f32x4(i32x4.shuffle(kept, kept, 2, 3, 0, 1)));
      // DAB: the values below the split; XNOR: every value's magnitude.
      const a = mode == 0 ? v128.andnot(v, bits) : v128.and(v, absMask);
      all0 = f64x2.add(all0, f64x2.promote_low_f32x4(a));
      all1 = f64x2.add(all1, f64x2.promote_low_f32x4(i32x4.shuffle(a, a, 2, 3, 0, 1)));
    }
    v128.store(ups + ((<usize>q) << 2), count);
    storeSums(up0, up1, all0, all1);
    for (let l = 0; l < 4; l++) {
      const c = <f64>load<i32>(ups + ((<usize>(q + l)) << 2));
      const upSum = load<f64>(SUMS + ((<usize>l) << 3));
      const allSum = load<f64>(SUMS + 32 + ((<usize>l) << 3));
      let hiLevel: f64;
      let loLevel: f64;
      if (mode == 0) {
        hiLevel = c > 0 ? upSum / c : 0;
        loLevel = c < n ? allSum / (n - c) : hiLevel;
      } else {
        hiLevel = allSum / n;
        loLevel = -hiLevel;
      }
      store<f32>(upper + ((<usize>(q + l)) << 2), <f32>hiLevel);
      store<f32>(lower + ((<usize>(q + l)) << 2), <f32>loLevel);
      store<f64>(upper64 + ((<usize>(q + l)) << 3), hiLevel);
      store<f64>(lower64 + ((<usize>(q + l)) << 3), loLevel);
    }
  }
  for (let j = 0; j < len; j++) {
    const row = <usize>j * rowBytes;
    for (let q = 0; q < stride; q += 4) {
      const at = (<usize>q) << 2;
      const v = v128.load(w + row + at);
      const bits = f32x4.ge(v, v128.load(thr + at));
      v128.store(out + row + at, v128.bitselect(v128.load(upper + at), v128.load(lower + at), bits));
    }
  }
}

/**
 * The gradient of fitLevels' values given theirs, dy: straight-through where |v| <= 1 (the latent weights' clip range)
 * plus the mean of dy over the value's level (each level is the mean of the values it stands for). meanLo and meanHi
 * are float32 scratch per row.
 */
export function gradient(
  w: usize,
  dy: usize,
  len: i32,
  stride: i32,
  thr: usize,
  ups: usize,
  meanLo: usize,
  meanHi: usize,
  out: usize,
): void {
  const rowBytes = (<usize>stride) << 2;
  const n = <f64>len;
  for (let q = 0; q < stride; q += 4) {
    const at = (<usize>q) << 2;
    const t = v128.load(thr + at);
    let up0 = f64x2.splat(0);
    let up1 = f64x2.splat(0);
    let all0 = f64x2.splat(0);
    let all1 = f64x2.splat(0);
    for (let j = 0; j < len; j++) {
      const o = <usize>j * rowBytes + at;
      const d = v128.load(dy + o);
      const kept = v128.and(d, f32x4.ge(v128.load(w + o), t));
      up0 = f64x2.add(up0, f64x2.promote_low_f32x4(kept));
      up1 = f64x2.add(up1, f64x2.promote_low_f32x4(i32x4.shuffle(kept, kept, 2, 3, 0, 1)));
      all0 = f64x2.add(all0, f64x2.promote_low_f32x4(d));
      all1 = f64x2.add(all1, f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 0, 1)));
    }
    storeSums(up0, up1, all0, all1);
    for (let l = 0; l < 4; l++) {
      const c = <f64>load<i32>(ups + ((<usize>(q + l)) << 2));
      const upSum = load<f64>(SUMS + ((<usize>l) << 3));
      const allSum = load<f64>(SUMS + 32 + ((<usize>l) << 3));
      store<f32>(meanHi + ((<usize>(q + l)) << 2), <f32>(upSum / Math.max(c, 1)));
      store<f32>(meanLo + ((<usize>(q + l)) << 2), <f32>((allSum - upSum) / Math.max(n - c, 1)));
    }
  }
  const one = f32x4.splat(1);
  for (let j = 0; j < len; j++) {
    const row = <usize>j * rowBytes;
    for (let q = 0; q < stride; q += 4) {
      const at = (<usize>q) << 2;
      const v = v128.load(w + row + at);
      const bits = f32x4.ge(v, v128.load(thr + at));
      const straight = v128.and(v128.load(dy + row + at), f32x4.le(f32x4.abs(v), one));
      const mean = v128.bitselect(v128.load(meanHi + at), v128.load(meanLo + at), bits);
      v128.store(out + row + at, f32x4.add(straight, mean));
    }
  }
}
