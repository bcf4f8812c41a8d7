// bitwasm kernels: XNOR/AND-popcount, masked-sum and float products, binarization, im2col and pooling, on raw memory.
/* eslint-disable -- AssemblyScript, not TypeScript: asc compiles it (npm run build:wasm); tsc and eslint meet it only because it lives in src/. */
// @ts-nocheck

/*
 * Everything works on pointers into the one linear memory the TypeScript side (engine.ts) lays out; the kernels never
 * allocate. Layouts:
 *   - activations: float32, one sample after the other, NCHW (dense layers: [features]);
 *   - float weights: float32 rows [rows, len] (dense [out, in], conv OIHW flattened per filter);
 *   - packed weights for float inputs: the cmp bit format as stored in the file (core/bitpack.ts), row stride `rowStride`;
 *   - packed rows for the popcount kernels (weights and binarized inputs alike): bit k of a row at byte k>>3, bit k&7,
 *     rows padded with zero bits to a multiple of 16 bytes so every row is whole v128 words. Dense rows keep the
 *     file's bit order (k = input feature); conv rows are reordered to (ky, kx, c) with the channel bits of one pixel
 *     padded to whole bytes (`chunkBytes`), so an input patch row is K*K byte-copies of pixel chunks.
 * Products share one epilogue, the folded batch norm or bias of the layer: y = dot * scale[r] + shift[r], then ReLU.
 * Output element (row r, item i) goes to y[r * strideRow + i * strideItem] (dense: items are samples, conv: positions).
 */

export function heapBase(): usize {
  return __heap_base;
}

function epilogue(v: f32, r: i32, scale: usize, shift: usize, relu: i32): f32 {
  if (scale != 0) v = v * load<f32>(scale + ((<usize>r) << 2));
  v = v + load<f32>(shift + ((<usize>r) << 2));
  // Branch-free: a ReLU branch (or a float select, which V8 lowers to one) follows the data, and mispredicts on every
  // new input cost more than a 1-channel conv's products. The mask keeps v where v > 0; NaN and -0 become +0, as
  // `!(v > 0) ? 0 : v` makes them.
  if (relu != 0) v = reinterpret<f32>(reinterpret<i32>(v) & -(<i32>(v > 0)));
  return v;
}

function hsum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3));
}

/** Float rows: y = epilogue(dot(a_i, w_r)) for `items` inputs of `len` floats and `rows` weight rows of `len`. */
export function f32Rows(
  a: usize,
  items: i32,
  len: i32,
  w: usize,
  rows: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
): void {
  const len8 = len & ~7;
  const len4 = len & ~3;
  for (let i = 0; i < items; i++) {
    const ai = a + ((<usize>i * <usize>len) << 2);
    for (let r = 0; r < rows; r++) {
      const wr = w + ((<usize>r * <usize>len) << 2);
      let acc0 = f32x4.splat(0);
      let acc1 = f32x4.splat(0);
      let k = 0;
      for (; k < len8; k += 8) {
        const o = (<usize>k) << 2;
        acc0 = f32x4.add(acc0, f32x4.mul(v128.load(ai + o), v128.load(wr + o)));
        acc1 = f32x4.add(acc1, f32x4.mul(v128.load(ai + o, 16), v128.load(wr + o, 16)));
      }
      for (; k < len4; k += 4) {
        const o = (<usize>k) << 2;
        acc0 = f32x4.add(acc0, f32x4.mul(v128.load(ai + o), v128.load(wr + o)));
      }
      let s = hsum(f32x4.add(acc0, acc1));
      for (; k < len; k++) s += load<f32>(ai + ((<usize>k) << 2)) * load<f32>(wr + ((<usize>k) << 2));
      store<f32>(y + ((<usize>(r * strideRow + i * strideItem)) << 2), epilogue(s, r, scale, shift, relu));
    }
  }
}

/**
 * A layer's input quantized for the int8 kernels (core/quantize.ts quantizeInput, the rule): one scale per sample,
 * s = f32(max |x| / L) (1 when all are zero), L = 255 levels when no input is negative (after a ReLU, or pixels) and
 * 127 otherwise; q = x * f32(1 / s) rounded half away from zero, clamped to +/-L, all in f32 as the reference computes
 * it; `n` floats to `n` i16. Returns s and stores it at `scaleOut`.
 */
export function quantizeInput(x: usize, n: i32, q: usize, scaleOut: usize): f32 {
  const n4 = n & ~3;
  let m4 = f32x4.splat(0);
  let low4 = f32x4.splat(0);
  let k = 0;
  for (; k < n4; k += 4) {
    const v = v128.load(x + ((<usize>k) << 2));
    m4 = f32x4.pmax(m4, f32x4.abs(v));
    low4 = f32x4.pmin(low4, v);
  }
  // pmax (a < b ? b : a) and pmin pass NaN over, as the reference's comparisons do.
  let maxAbs: f32 = 0;
  let low: f32 = 0;
  for (let lane = 0; lane < 4; lane++) {
    const v = f32x4.extract_lane(m4, 0);
    if (maxAbs < v) maxAbs = v;
    const u = f32x4.extract_lane(low4, 0);
    if (u < low) low = u;
    m4 = i32x4.shuffle(m4, m4, 1, 2, 3, 0);
    low4 = i32x4.shuffle(low4, low4, 1, 2, 3, 0);
  }
  for (; k < n; k++) {
    const u = load<f32>(x + ((<usize>k) << 2));
    const v = abs(u);
    if (maxAbs < v) maxAbs = v;
    if (u < low) low = u;
  }
  const levels: f32 = low < 0 ? 127 : 255;
  const s: f32 = maxAbs > 0 ? <f32>(<f64>maxAbs / <f64>levels) : 1;
  const inv: f32 = <f32>1 / s;
  store<f32>(scaleOut, s);
  const inv4 = f32x4.splat(inv);
  const half = f32x4.splat(0.5);
  const sign = i32x4.splat(0x80000000);
  const hi = f32x4.splat(levels);
  const lo = f32x4.splat(-levels);
  // An integer t in [-255, 255] plus 1.5 * 2^23 has the bits 0x4B400000 + t: the conversion without trunc_sat's checks.
  const magic = f32x4.splat(12582912);
  const magicBits = i32x4.splat(0x4b400000);
  const n8 = n & ~7;
  k = 0;
  for (; k < n8; k += 8) {
    const a = v128.load(x + ((<usize>k) << 2));
    const b = v128.load(x + ((<usize>k) << 2), 16);
    let ra = f32x4.trunc(f32x4.add(f32x4.mul(a, inv4), v128.or(v128.and(a, sign), half)));
    let rb = f32x4.trunc(f32x4.add(f32x4.mul(b, inv4), v128.or(v128.and(b, sign), half)));
    ra = f32x4.pmin(f32x4.pmax(ra, lo), hi);
    rb = f32x4.pmin(f32x4.pmax(rb, lo), hi);
    ra = v128.and(ra, f32x4.eq(ra, ra));
    rb = v128.and(rb, f32x4.eq(rb, rb));
    const qa = i32x4.sub(f32x4.add(ra, magic), magicBits);
    const qb = i32x4.sub(f32x4.add(rb, magic), magicBits);
    v128.store(q + ((<usize>k) << 1), i16x8.narrow_i32x4_s(qa, qb));
  }
  for (; k < n; k++) store<i16>(q + ((<usize>k) << 1), quantizeOne(load<f32>(x + ((<usize>k) << 2)), inv, levels));
  return s;
}

/**
 * i16 planes [C, P] to pixel-major [P, stride] (out[p * stride + c], stride >= C; channels C..stride-1 zero), so a
 * conv's patch rows are contiguous runs of pixels (i8Im2col, stride C) and Winograd tiles read whole vectors of
 * channels (winogradInput, stride a multiple of 8): 8 x 8 blocks transposed in three rounds of interleaves, the
 * leftover channels and pixels one at a time.
 */
export function pixelMajor(q: usize, C: i32, P: i32, out: usize, stride: i32): void {
  if (stride > C) memory.fill(out, 0, (<usize>P * <usize>stride) << 1);
  const C8 = C & ~7;
  const P8 = P & ~7;
  const rowBytes = (<usize>P) << 1;
  const outRow = (<usize>stride) << 1;
  for (let c = 0; c < C8; c += 8) {
    const src = q + ((<usize>c * <usize>P) << 1);
    for (let p = 0; p < P8; p += 8) {
      const s = src + ((<usize>p) << 1);
      const r0 = v128.load(s);
      const r1 = v128.load(s + rowBytes);
      const r2 = v128.load(s + 2 * rowBytes);
      const r3 = v128.load(s + 3 * rowBytes);
      const r4 = v128.load(s + 4 * rowBytes);
      const r5 = v128.load(s + 5 * rowBytes);
      const r6 = v128.load(s + 6 * rowBytes);
      const r7 = v128.load(s + 7 * rowBytes);
      // 16-bit interleaves: (c0 c1) pairs of pixels 0-3 and 4-7.
      const a0 = i16x8.shuffle(r0, r1, 0, 8, 1, 9, 2, 10, 3, 11);
      const a1 = i16x8.shuffle(r0, r1, 4, 12, 5, 13, 6, 14, 7, 15);
      const a2 = i16x8.shuffle(r2, r3, 0, 8, 1, 9, 2, 10, 3, 11);
      const a3 = i16x8.shuffle(r2, r3, 4, 12, 5, 13, 6, 14, 7, 15);
      const a4 = i16x8.shuffle(r4, r5, 0, 8, 1, 9, 2, 10, 3, 11);
      const a5 = i16x8.shuffle(r4, r5, 4, 12, 5, 13, 6, 14, 7, 15);
      const a6 = i16x8.shuffle(r6, r7, 0, 8, 1, 9, 2, 10, 3, 11);
      const a7 = i16x8.shuffle(r6, r7, 4, 12, 5, 13, 6, 14, 7, 15);
      // 32-bit interleaves: (c0 c1 c2 c3) of pixels 0-1, 2-3, 4-5, 6-7.
      const b0 = i32x4.shuffle(a0, a2, 0, 4, 1, 5);
      const b1 = i32x4.shuffle(a0, a2, 2, 6, 3, 7);
      const b2 = i32x4.shuffle(a1, a3, 0, 4, 1, 5);
      const b3 = i32x4.shuffle(a1, a3, 2, 6, 3, 7);
      const b4 = i32x4.shuffle(a4, a6, 0, 4, 1, 5);
      const b5 = i32x4.shuffle(a4, a6, 2, 6, 3, 7);
      const b6 = i32x4.shuffle(a5, a7, 0, 4, 1, 5);
      const b7 = i32x4.shuffle(a5, a7, 2, 6, 3, 7);
      // 64-bit interleaves: the 8 channels of one pixel.
      const d = out + ((<usize>(p * stride + c)) << 1);
      v128.store(d, i64x2.shuffle(b0, b4, 0, 2));
      v128.store(d + outRow, i64x2.shuffle(b0, b4, 1, 3));
      v128.store(d + 2 * outRow, i64x2.shuffle(b1, b5, 0, 2));
      v128.store(d + 3 * outRow, i64x2.shuffle(b1, b5, 1, 3));
      v128.store(d + 4 * outRow, i64x2.shuffle(b2, b6, 0, 2));
      v128.store(d + 5 * outRow, i64x2.shuffle(b2, b6, 1, 3));
      v128.store(d + 6 * outRow, i64x2.shuffle(b3, b7, 0, 2));
      v128.store(d + 7 * outRow, i64x2.shuffle(b3, b7, 1, 3));
    }
    for (let p = P8; p < P; p++) {
      for (let j = 0; j < 8; j++) {
        store<i16>(out + ((<usize>(p * stride + c + j)) << 1), load<i16>(q + ((<usize>((c + j) * P + p)) << 1)));
      }
    }
  }
  for (let c = C8; c < C; c++) {
    for (let p = 0; p < P; p++) {
      store<i16>(out + ((<usize>(p * stride + c)) << 1), load<i16>(q + ((<usize>(c * P + p)) << 1)));
    }
  }
}

function quantizeOne(v: f32, inv: f32, levels: f32): i16 {
  const r = v * inv + (v < 0 ? <f32>-0.5 : <f32>0.5);
  // As i32x4.trunc_sat_f32x4_s and the clamp in the vector loop: NaN gives 0.
  return r >= levels ? <i16>levels : r <= -levels ? -(<i16>levels) : r == r ? <i16>(<i32>r) : 0;
}

/**
 * The patch rows of a K x K 'valid' conv from a pixel-major i16 input (pixelMajor): row (oy, ox) is the K runs of
 * K * C values starting at pixels (oy + ky, ox), in (ky, kx, c) order (the order i8 conv weights are laid out in).
 */
export function i8Im2col(q: usize, C: i32, H: i32, W: i32, K: i32, out: usize): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  const run = (<usize>(K * C)) << 1;
  let d = out;
  for (let oy = 0; oy < OH; oy++) {
    for (let ox = 0; ox < OW; ox++) {
      for (let ky = 0; ky < K; ky++) {
        memory.copy(d, q + ((<usize>(((oy + ky) * W + ox) * C)) << 1), run);
        d += run;
      }
    }
  }
}

/** The int8 epilogue: the exact integer dot times f32(sample scale * row scale), rounded once to f32, then epilogue. */
function i8Out(dot: i32, as: f32, r: i32, wscale: usize, scale: usize, shift: usize, relu: i32): f32 {
  const combined = as * load<f32>(wscale + ((<usize>r) << 2));
  return epilogue(<f32>(<f64>dot * <f64>combined), r, scale, shift, relu);
}

function hsumI32(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + (i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3));
}

/** The tail of a row's dot past its last whole 16 values. */
function i8Tail(a: usize, w: usize, from: i32, len: i32): i32 {
  let s = 0;
  for (let k = from; k < len; k++) s += <i32>load<i16>(a + ((<usize>k) << 1)) * <i32>load<i8>(w + <usize>k);
  return s;
}

/**
 * int8 weights times int8 inputs (as i16, quantizeInput): y = i8Out(dot(q_i, w_r)), the dots exact in i32
 * (i32x4.dot_i16x8_s on the weights sign-extended to i16). Four rows share each load of an input, and two inputs each
 * widening of a row's weights; `ascale + i * ascaleStride` holds item i's input scale (stride 0: one for all).
 * Weights [rows, len] int8, inputs [items, len] i16; len up to 2^31 / (255 * 127) = 66k keeps the sums in range.
 */
export function i8Dot(
  a: usize,
  items: i32,
  len: i32,
  w: usize,
  wscale: usize,
  rows: i32,
  ascale: usize,
  ascaleStride: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
): void {
  const len16 = len & ~15;
  const rows4 = rows & ~3;
  const items2 = items & ~1;
  let i = 0;
  for (; i < items2; i += 2) {
    const a0 = a + ((<usize>i * <usize>len) << 1);
    const a1 = a0 + ((<usize>len) << 1);
    const as0 = load<f32>(ascale + <usize>(i * ascaleStride));
    const as1 = load<f32>(ascale + <usize>((i + 1) * ascaleStride));
    let r = 0;
    for (; r < rows4; r += 4) {
      const w0 = w + <usize>r * <usize>len;
      const w1 = w0 + <usize>len;
      const w2 = w1 + <usize>len;
      const w3 = w2 + <usize>len;
      let c00 = i32x4.splat(0);
      let c01 = i32x4.splat(0);
      let c10 = i32x4.splat(0);
      let c11 = i32x4.splat(0);
      let c20 = i32x4.splat(0);
      let c21 = i32x4.splat(0);
      let c30 = i32x4.splat(0);
      let c31 = i32x4.splat(0);
      for (let k = 0; k < len16; k += 16) {
        const o = (<usize>k) << 1;
        const x0l = v128.load(a0 + o);
        const x0h = v128.load(a0 + o, 16);
        const x1l = v128.load(a1 + o);
        const x1h = v128.load(a1 + o, 16);
        let q = v128.load(w0 + <usize>k);
        let l = i16x8.extend_low_i8x16_s(q);
        let h = i16x8.extend_high_i8x16_s(q);
        c00 = i32x4.add(c00, i32x4.add(i32x4.dot_i16x8_s(l, x0l), i32x4.dot_i16x8_s(h, x0h)));
        c01 = i32x4.add(c01, i32x4.add(i32x4.dot_i16x8_s(l, x1l), i32x4.dot_i16x8_s(h, x1h)));
        q = v128.load(w1 + <usize>k);
        l = i16x8.extend_low_i8x16_s(q);
        h = i16x8.extend_high_i8x16_s(q);
        c10 = i32x4.add(c10, i32x4.add(i32x4.dot_i16x8_s(l, x0l), i32x4.dot_i16x8_s(h, x0h)));
        c11 = i32x4.add(c11, i32x4.add(i32x4.dot_i16x8_s(l, x1l), i32x4.dot_i16x8_s(h, x1h)));
        q = v128.load(w2 + <usize>k);
        l = i16x8.extend_low_i8x16_s(q);
        h = i16x8.extend_high_i8x16_s(q);
        c20 = i32x4.add(c20, i32x4.add(i32x4.dot_i16x8_s(l, x0l), i32x4.dot_i16x8_s(h, x0h)));
        c21 = i32x4.add(c21, i32x4.add(i32x4.dot_i16x8_s(l, x1l), i32x4.dot_i16x8_s(h, x1h)));
        q = v128.load(w3 + <usize>k);
        l = i16x8.extend_low_i8x16_s(q);
        h = i16x8.extend_high_i8x16_s(q);
        c30 = i32x4.add(c30, i32x4.add(i32x4.dot_i16x8_s(l, x0l), i32x4.dot_i16x8_s(h, x0h)));
        c31 = i32x4.add(c31, i32x4.add(i32x4.dot_i16x8_s(l, x1l), i32x4.dot_i16x8_s(h, x1h)));
      }
      const y0 = y + ((<usize>(r * strideRow + i * strideItem)) << 2);
      const y1 = y0 + ((<usize>strideItem) << 2);
      const sr = (<usize>strideRow) << 2;
      store<f32>(y0, i8Out(hsumI32(c00) + i8Tail(a0, w0, len16, len), as0, r, wscale, scale, shift, relu));
      store<f32>(y1, i8Out(hsumI32(c01) + i8Tail(a1, w0, len16, len), as1, r, wscale, scale, shift, relu));
      store<f32>(y0 + sr, i8Out(hsumI32(c10) + i8Tail(a0, w1, len16, len), as0, r + 1, wscale, scale, shift, relu));
      store<f32>(y1 + sr, i8Out(hsumI32(c11) + i8Tail(a1, w1, len16, len), as1, r + 1, wscale, scale, shift, relu));
      store<f32>(y0 + 2 * sr, i8Out(hsumI32(c20) + i8Tail(a0, w2, len16, len), as0, r + 2, wscale, scale, shift, relu));
      store<f32>(y1 + 2 * sr, i8Out(hsumI32(c21) + i8Tail(a1, w2, len16, len), as1, r + 2, wscale, scale, shift, relu));
      store<f32>(y0 + 3 * sr, i8Out(hsumI32(c30) + i8Tail(a0, w3, len16, len), as0, r + 3, wscale, scale, shift, relu));
      store<f32>(y1 + 3 * sr, i8Out(hsumI32(c31) + i8Tail(a1, w3, len16, len), as1, r + 3, wscale, scale, shift, relu));
    }
    for (; r < rows; r++) {
      const wr = w + <usize>r * <usize>len;
      store<f32>(
        y + ((<usize>(r * strideRow + i * strideItem)) << 2),
        i8Out(i8Row(a0, wr, len), as0, r, wscale, scale, shift, relu),
      );
      store<f32>(
        y + ((<usize>(r * strideRow + (i + 1) * strideItem)) << 2),
        i8Out(i8Row(a1, wr, len), as1, r, wscale, scale, shift, relu),
      );
    }
  }
  for (; i < items; i++) {
    const a0 = a + ((<usize>i * <usize>len) << 1);
    const as0 = load<f32>(ascale + <usize>(i * ascaleStride));
    let r = 0;
    for (; r < rows4; r += 4) {
      const w0 = w + <usize>r * <usize>len;
      const w1 = w0 + <usize>len;
      const w2 = w1 + <usize>len;
      const w3 = w2 + <usize>len;
      let c0 = i32x4.splat(0);
      let c1 = i32x4.splat(0);
      let c2 = i32x4.splat(0);
      let c3 = i32x4.splat(0);
      for (let k = 0; k < len16; k += 16) {
        const o = (<usize>k) << 1;
        const xl = v128.load(a0 + o);
        const xh = v128.load(a0 + o, 16);
        let q = v128.load(w0 + <usize>k);
        c0 = i32x4.add(
          c0,
          i32x4.add(
            i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), xl),
            i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), xh),
          ),
        );
        q = v128.load(w1 + <usize>k);
        c1 = i32x4.add(
          c1,
          i32x4.add(
            i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), xl),
            i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), xh),
          ),
        );
        q = v128.load(w2 + <usize>k);
        c2 = i32x4.add(
          c2,
          i32x4.add(
            i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), xl),
            i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), xh),
          ),
        );
        q = v128.load(w3 + <usize>k);
        c3 = i32x4.add(
          c3,
          i32x4.add(
            i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), xl),
            i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), xh),
          ),
        );
      }
      const y0 = y + ((<usize>(r * strideRow + i * strideItem)) << 2);
      const sr = (<usize>strideRow) << 2;
      store<f32>(y0, i8Out(hsumI32(c0) + i8Tail(a0, w0, len16, len), as0, r, wscale, scale, shift, relu));
      store<f32>(y0 + sr, i8Out(hsumI32(c1) + i8Tail(a0, w1, len16, len), as0, r + 1, wscale, scale, shift, relu));
      store<f32>(y0 + 2 * sr, i8Out(hsumI32(c2) + i8Tail(a0, w2, len16, len), as0, r + 2, wscale, scale, shift, relu));
      store<f32>(y0 + 3 * sr, i8Out(hsumI32(c3) + i8Tail(a0, w3, len16, len), as0, r + 3, wscale, scale, shift, relu));
    }
    for (; r < rows; r++) {
      const wr = w + <usize>r * <usize>len;
      store<f32>(
        y + ((<usize>(r * strideRow + i * strideItem)) << 2),
        i8Out(i8Row(a0, wr, len), as0, r, wscale, scale, shift, relu),
      );
    }
  }
}

/** One row's dot with one input (i8Dot's leftover rows). */
function i8Row(a: usize, w: usize, len: i32): i32 {
  const len16 = len & ~15;
  let c = i32x4.splat(0);
  for (let k = 0; k < len16; k += 16) {
    const o = (<usize>k) << 1;
    const q = v128.load(w + <usize>k);
    c = i32x4.add(
      c,
      i32x4.add(
        i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(q), v128.load(a + o)),
        i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(q), v128.load(a + o, 16)),
      ),
    );
  }
  return hsumI32(c) + i8Tail(a, w, len16, len);
}

/** A layer's int8 weights sign-extended to i16 (`n` a multiple of 16 or the bytes past it readable): for i16Dot. */
export function widenI8(w: usize, n: i32, out: usize): void {
  for (let k = 0; k < n; k += 16) {
    const q = v128.load(w + <usize>k);
    v128.store(out + ((<usize>k) << 1), i16x8.extend_low_i8x16_s(q));
    v128.store(out + ((<usize>k) << 1), i16x8.extend_high_i8x16_s(q), 16);
  }
}

/**
 * i8Dot on weights widened to i16 once per call (widenI8): for convs, whose rows meet every position, so the widening
 * leaves the inner loop. Four rows and two inputs a step of 8 values; then leftover inputs and rows.
 */
export function i16Dot(
  a: usize,
  items: i32,
  len: i32,
  w: usize,
  wscale: usize,
  rows: i32,
  ascale: usize,
  ascaleStride: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
): void {
  const len8 = len & ~7;
  const rows4 = rows & ~3;
  const rowBytes = (<usize>len) << 1;
  const sr = (<usize>strideRow) << 2;
  for (let i = 0; i < items; i += 2) {
    const pair = i + 1 < items;
    const a0 = a + <usize>i * rowBytes;
    // A lone last input runs as its own pair; only the first of the two is stored.
    const a1 = pair ? a0 + rowBytes : a0;
    const as0 = load<f32>(ascale + <usize>(i * ascaleStride));
    const as1 = pair ? load<f32>(ascale + <usize>((i + 1) * ascaleStride)) : as0;
    let r = 0;
    for (; r < rows4; r += 4) {
      const w0 = w + <usize>r * rowBytes;
      const w1 = w0 + rowBytes;
      const w2 = w1 + rowBytes;
      const w3 = w2 + rowBytes;
      let c00 = i32x4.splat(0);
      let c01 = i32x4.splat(0);
      let c10 = i32x4.splat(0);
      let c11 = i32x4.splat(0);
      let c20 = i32x4.splat(0);
      let c21 = i32x4.splat(0);
      let c30 = i32x4.splat(0);
      let c31 = i32x4.splat(0);
      for (let k = 0; k < len8; k += 8) {
        const o = (<usize>k) << 1;
        const x0 = v128.load(a0 + o);
        const x1 = v128.load(a1 + o);
        let q = v128.load(w0 + o);
        c00 = i32x4.add(c00, i32x4.dot_i16x8_s(q, x0));
        c01 = i32x4.add(c01, i32x4.dot_i16x8_s(q, x1));
        q = v128.load(w1 + o);
        c10 = i32x4.add(c10, i32x4.dot_i16x8_s(q, x0));
        c11 = i32x4.add(c11, i32x4.dot_i16x8_s(q, x1));
        q = v128.load(w2 + o);
        c20 = i32x4.add(c20, i32x4.dot_i16x8_s(q, x0));
        c21 = i32x4.add(c21, i32x4.dot_i16x8_s(q, x1));
        q = v128.load(w3 + o);
        c30 = i32x4.add(c30, i32x4.dot_i16x8_s(q, x0));
        c31 = i32x4.add(c31, i32x4.dot_i16x8_s(q, x1));
      }
      const y0 = y + ((<usize>(r * strideRow + i * strideItem)) << 2);
      store<f32>(y0, i8Out(hsumI32(c00) + i16Tail(a0, w0, len8, len), as0, r, wscale, scale, shift, relu));
      store<f32>(y0 + sr, i8Out(hsumI32(c10) + i16Tail(a0, w1, len8, len), as0, r + 1, wscale, scale, shift, relu));
      store<f32>(y0 + 2 * sr, i8Out(hsumI32(c20) + i16Tail(a0, w2, len8, len), as0, r + 2, wscale, scale, shift, relu));
      store<f32>(y0 + 3 * sr, i8Out(hsumI32(c30) + i16Tail(a0, w3, len8, len), as0, r + 3, wscale, scale, shift, relu));
      if (!pair) continue;
      const y1 = y0 + ((<usize>strideItem) << 2);
      store<f32>(y1, i8Out(hsumI32(c01) + i16Tail(a1, w0, len8, len), as1, r, wscale, scale, shift, relu));
      store<f32>(y1 + sr, i8Out(hsumI32(c11) + i16Tail(a1, w1, len8, len), as1, r + 1, wscale, scale, shift, relu));
      store<f32>(y1 + 2 * sr, i8Out(hsumI32(c21) + i16Tail(a1, w2, len8, len), as1, r + 2, wscale, scale, shift, relu));
      store<f32>(y1 + 3 * sr, i8Out(hsumI32(c31) + i16Tail(a1, w3, len8, len), as1, r + 3, wscale, scale, shift, relu));
    }
    for (; r < rows; r++) {
      const wr = w + <usize>r * rowBytes;
      const y0 = y + ((<usize>(r * strideRow + i * strideItem)) << 2);
      store<f32>(y0, i8Out(i16Tail(a0, wr, 0, len), as0, r, wscale, scale, shift, relu));
      if (pair)
        store<f32>(y0 + ((<usize>strideItem) << 2), i8Out(i16Tail(a1, wr, 0, len), as1, r, wscale, scale, shift, relu));
    }
  }
}

/** The dot of i16 inputs and i16 weights from `from` to `len`, one value at a time (i16Dot's tails, leftover rows). */
function i16Tail(a: usize, w: usize, from: i32, len: i32): i32 {
  let s = 0;
  for (let k = from; k < len; k++) s += <i32>load<i16>(a + ((<usize>k) << 1)) * <i32>load<i16>(w + ((<usize>k) << 1));
  return s;
}

/*
 * Winograd F(2x2, 3x3) in exact integers, for 3x3 int8 convs (stride 1, 'valid'): each 2 x 2 block of outputs (a
 * tile) from its 4 x 4 input patch d with 16 products per channel instead of 36. With the 2G-scaled filter transform
 * U = (2G) g (2G)^T (integers, |U| <= 9 * 127), the input transform V = B^T d B (|V| <= 4 * 255) and the output
 * transform A^T M A of M = the sum over channels of U * V, the result is 4x the direct integer sum, so a shift by 2
 * gives it exactly:
 *   2G = [2 0 0; 1 1 1; 1 -1 1; 0 0 2], B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], A^T = [1 1 1 0; 0 1 -1 -1].
 * U and V fit i16; the products and sums are i32 and wrap, which leaves the result exact whenever 4x the direct sum
 * fits i32 (sums are exact modulo 2^32): channels <= 2^31 / (4 * 9 * 255 * 127) = 1841 (the engine checks).
 * Layouts, with C8 the channels rounded up to 8 (the padding zero) and CoutP the filters rounded up to 8:
 *   weights (as placed at load): int8 [C][9 taps][CoutP], the filters zero-padded;
 *   U: i16 [16][C8 / 2][CoutP][2], each i32 lane the filter's values for channels 2p and 2p + 1;
 *   V: i16 [16][WINOGRAD_BLOCK][C8] and M: i32 [16][WINOGRAD_BLOCK][CoutP], for one block of tiles (row-major).
 * Element e = 4i + j is row i, column j of the 4 x 4 transforms; the 16 arrays of U, V and M lie E_PAD bytes apart
 * besides their size, so that the 16 of one tile or filter do not share one set of the L1 cache (their sizes are often
 * multiples of 4 KiB: with 64 -> 64 filters, the filters' transform took 63 µs without the padding, 4.6 µs with it
 * and straight-line code, and the products 123 against 81 µs, all tiles at once before they were blocked).
 */
const E_PAD: usize = 64;

/** The filters' transforms U from the int8 weights (see above), once per call: 8 filters and 2 channels a step. */
export function winogradWeights(w: usize, C: i32, C8: i32, CoutP: i32, u: usize): void {
  const pairs = C8 >> 1;
  const eStride = ((<usize>(pairs * CoutP)) << 2) + E_PAD;
  for (let p = 0; p < pairs; p++) {
    for (let cb = 0; cb < CoutP; cb += 8) {
      const slot = u + ((<usize>(p * CoutP + cb)) << 2);
      // Each channel's 16 vectors of 8 filters go to the pair's two slots; then they are interleaved in place.
      for (let j = 0; j < 2; j++) {
        const c = 2 * p + j;
        const at = slot + ((<usize>j) << 4);
        if (c >= C) {
          for (let e = 0; e < 16; e++) v128.store(at + <usize>e * eStride, i32x4.splat(0));
          continue;
        }
        const g = w + <usize>(c * 9 * CoutP + cb);
        const row = <usize>CoutP;
        // (2G) g, the 4 x 3 left product, one column (kx) at a time; times (2G)^T, row i of U from its row i.
        const g00 = i16x8.extend_low_i8x16_s(v128.load64_zero(g));
        const g01 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + row));
        const g02 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 2 * row));
        const g10 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 3 * row));
        const g11 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 4 * row));
        const g12 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 5 * row));
        const g20 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 6 * row));
        const g21 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 7 * row));
        const g22 = i16x8.extend_low_i8x16_s(v128.load64_zero(g + 8 * row));
        winogradWeightRow(at, eStride, 0, i16x8.shl(g00, 1), i16x8.shl(g01, 1), i16x8.shl(g02, 1));
        const s0 = i16x8.add(g00, g20);
        const s1 = i16x8.add(g01, g21);
        const s2 = i16x8.add(g02, g22);
        winogradWeightRow(at, eStride, 1, i16x8.add(s0, g10), i16x8.add(s1, g11), i16x8.add(s2, g12));
        winogradWeightRow(at, eStride, 2, i16x8.sub(s0, g10), i16x8.sub(s1, g11), i16x8.sub(s2, g12));
        winogradWeightRow(at, eStride, 3, i16x8.shl(g20, 1), i16x8.shl(g21, 1), i16x8.shl(g22, 1));
      }
      for (let e = 0; e < 16; e++) {
        const at = slot + <usize>e * eStride;
        const a = v128.load(at);
        const b = v128.load(at, 16);
        v128.store(at, i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
        v128.store(at, i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
      }
    }
  }
}

/** Row i of U (elements 4i .. 4i + 3) from row i of (2G) g, for one channel of 8 filters. */
function winogradWeightRow(at: usize, eStride: usize, i: i32, r0: v128, r1: v128, r2: v128): void {
  const s = i16x8.add(r0, r2);
  const base = at + <usize>(4 * i) * eStride;
  v128.store(base, i16x8.shl(r0, 1));
  v128.store(base + eStride, i16x8.add(s, r1));
  v128.store(base + 2 * eStride, i16x8.sub(s, r1));
  v128.store(base + 3 * eStride, i16x8.shl(r2, 1));
}

/**
 * A Winograd conv of one sample (see above) from its pixel-major quantized input (pixelMajor, stride C8) and U: the
 * tiles in blocks of WINOGRAD_BLOCK, each block's V and M (at v and m) made and used while they stay in cache. The
 * outputs are i32 (i32Epilogue then makes them floats). `zero`: C8 i16, cleared here.
 */
export function winogradConv(
  x: usize,
  C8: i32,
  H: i32,
  W: i32,
  u: usize,
  CoutP: i32,
  rows: i32,
  OH: i32,
  OW: i32,
  zero: usize,
  v: usize,
  m: usize,
  y: usize,
): void {
  memory.fill(zero, 0, (<usize>C8) << 1);
  const TW = (OW + 1) >> 1;
  const tiles = ((OH + 1) >> 1) * TW;
  for (let t0 = 0; t0 < tiles; t0 += WINOGRAD_BLOCK) {
    winogradInput(x, C8, H, W, TW, t0, tiles, zero, v);
    winogradProducts(v, u, m, WINOGRAD_BLOCK, C8, CoutP);
    winogradOutput(m, t0, min(WINOGRAD_BLOCK, tiles - t0), CoutP, rows, TW, OH, OW, y);
  }
}

/** Tiles per block of winogradConv (a multiple of 4). */
const WINOGRAD_BLOCK = 8;

/**
 * The input transforms V = B^T d B of tiles t0 .. t0 + WINOGRAD_BLOCK - 1, 8 channels a step. The patches of the last
 * tiles reach past the input when an output side is odd, and tiles past the last have none: those pixels read `zero`.
 */
function winogradInput(x: usize, C8: i32, H: i32, W: i32, TW: i32, t0: i32, tiles: i32, zero: usize, v: usize): void {
  const pixel = (<usize>C8) << 1;
  const eStride = <usize>WINOGRAD_BLOCK * pixel + E_PAD;
  const at = memory.data(16 * sizeof<usize>());
  for (let b = 0; b < WINOGRAD_BLOCK; b++) {
    const t = t0 + b;
    const ty = t / TW;
    const tx = t - ty * TW;
    for (let i = 0; i < 4; i++) {
      for (let j = 0; j < 4; j++) {
        const py = 2 * ty + i;
        const px = 2 * tx + j;
        store<usize>(
          at + <usize>(4 * i + j) * sizeof<usize>(),
          t < tiles && py < H && px < W ? x + <usize>(py * W + px) * pixel : zero,
        );
      }
    }
    const out = v + <usize>b * pixel;
    for (let o: usize = 0; o < pixel; o += 16) {
      // B^T d: t_0 = d_0 - d_2, t_1 = d_1 + d_2, t_2 = d_2 - d_1, t_3 = d_1 - d_3 (rows), then the same on columns.
      for (let j = 0; j < 4; j++) {
        const d0 = v128.load(load<usize>(at + <usize>j * sizeof<usize>()) + o);
        const d1 = v128.load(load<usize>(at + <usize>(4 + j) * sizeof<usize>()) + o);
        const d2 = v128.load(load<usize>(at + <usize>(8 + j) * sizeof<usize>()) + o);
        const d3 = v128.load(load<usize>(at + <usize>(12 + j) * sizeof<usize>()) + o);
        // Column j of B^T d kept in the slots of elements j, 4 + j, 8 + j, 12 + j of V (finished below).
        const dst = out + o + <usize>j * eStride;
        v128.store(dst, i16x8.sub(d0, d2));
        v128.store(dst + 4 * eStride, i16x8.add(d1, d2));
        v128.store(dst + 8 * eStride, i16x8.sub(d2, d1));
        v128.store(dst + 12 * eStride, i16x8.sub(d1, d3));
      }
      for (let i = 0; i < 4; i++) {
        const row = out + o + <usize>(4 * i) * eStride;
        const t0 = v128.load(row);
        const t1 = v128.load(row + eStride);
        const t2 = v128.load(row + 2 * eStride);
        const t3 = v128.load(row + 3 * eStride);
        v128.store(row, i16x8.sub(t0, t2));
        v128.store(row + eStride, i16x8.add(t1, t2));
        v128.store(row + 2 * eStride, i16x8.sub(t2, t1));
        v128.store(row + 3 * eStride, i16x8.sub(t1, t3));
      }
    }
  }
}

/**
 * The 16 products M_e = V_e U_e^T, summed over channels in i32 (i32x4.dot_i16x8_s: two channels of four filters a
 * step): four tiles by eight filters a block, each tile's channel pair splatted across the lanes.
 */
function winogradProducts(v: usize, u: usize, m: usize, tilesP: i32, C8: i32, CoutP: i32): void {
  const pairs = C8 >> 1;
  const vRow = (<usize>C8) << 1;
  const uRow = (<usize>CoutP) << 2;
  for (let e = 0; e < 16; e++) {
    const ve = v + <usize>e * (<usize>tilesP * vRow + E_PAD);
    const ue = u + <usize>e * (<usize>pairs * uRow + E_PAD);
    const me = m + <usize>e * (<usize>tilesP * uRow + E_PAD);
    for (let t = 0; t < tilesP; t += 4) {
      const x0 = ve + <usize>t * vRow;
      const x1 = x0 + vRow;
      const x2 = x1 + vRow;
      const x3 = x2 + vRow;
      for (let co = 0; co < CoutP; co += 8) {
        let a00 = i32x4.splat(0);
        let a01 = i32x4.splat(0);
        let a10 = i32x4.splat(0);
        let a11 = i32x4.splat(0);
        let a20 = i32x4.splat(0);
        let a21 = i32x4.splat(0);
        let a30 = i32x4.splat(0);
        let a31 = i32x4.splat(0);
        let up = ue + ((<usize>co) << 2);
        for (let p = 0; p < pairs; p++) {
          const w0 = v128.load(up);
          const w1 = v128.load(up, 16);
          up += uRow;
          const o = (<usize>p) << 2;
          let s = v128.load32_splat(x0 + o);
          a00 = i32x4.add(a00, i32x4.dot_i16x8_s(s, w0));
          a01 = i32x4.add(a01, i32x4.dot_i16x8_s(s, w1));
          s = v128.load32_splat(x1 + o);
          a10 = i32x4.add(a10, i32x4.dot_i16x8_s(s, w0));
          a11 = i32x4.add(a11, i32x4.dot_i16x8_s(s, w1));
          s = v128.load32_splat(x2 + o);
          a20 = i32x4.add(a20, i32x4.dot_i16x8_s(s, w0));
          a21 = i32x4.add(a21, i32x4.dot_i16x8_s(s, w1));
          s = v128.load32_splat(x3 + o);
          a30 = i32x4.add(a30, i32x4.dot_i16x8_s(s, w0));
          a31 = i32x4.add(a31, i32x4.dot_i16x8_s(s, w1));
        }
        const y0 = me + <usize>t * uRow + ((<usize>co) << 2);
        v128.store(y0, a00);
        v128.store(y0, a01, 16);
        v128.store(y0 + uRow, a10);
        v128.store(y0 + uRow, a11, 16);
        v128.store(y0 + 2 * uRow, a20);
        v128.store(y0 + 2 * uRow, a21, 16);
        v128.store(y0 + 3 * uRow, a30);
        v128.store(y0 + 3 * uRow, a31, 16);
      }
    }
  }
}

/**
 * The output transforms A^T M A / 4 (exact: see above) of `count` tiles from t0, four filters a step, as i32 into the
 * conv's output planes y [rows][OH][OW]; a last tile's row or column past the output is dropped.
 */
function winogradOutput(
  m: usize,
  t0: i32,
  count: i32,
  CoutP: i32,
  rows: i32,
  TW: i32,
  OH: i32,
  OW: i32,
  y: usize,
): void {
  const eStride = ((<usize>(WINOGRAD_BLOCK * CoutP)) << 2) + E_PAD;
  const plane = (<usize>(OH * OW)) << 2;
  const rowBytes = (<usize>OW) << 2;
  for (let b = 0; b < count; b++) {
    const t = t0 + b;
    const ty = t / TW;
    const tx = t - ty * TW;
    const right = 2 * tx + 1 < OW;
    const down = 2 * ty + 1 < OH;
    const base = y + ((<usize>(2 * ty * OW + 2 * tx)) << 2);
    for (let co = 0; co < rows; co += 4) {
      const mp = m + ((<usize>(b * CoutP + co)) << 2);
      // A^T M: two rows of four, s_j = m_0j + m_1j + m_2j and d_j = m_1j - m_2j - m_3j.
      let m0 = v128.load(mp);
      let m1 = v128.load(mp + 4 * eStride);
      let m2 = v128.load(mp + 8 * eStride);
      let m3 = v128.load(mp + 12 * eStride);
      const s0 = i32x4.add(i32x4.add(m0, m1), m2);
      const d0 = i32x4.sub(i32x4.sub(m1, m2), m3);
      m0 = v128.load(mp + eStride);
      m1 = v128.load(mp + 5 * eStride);
      m2 = v128.load(mp + 9 * eStride);
      m3 = v128.load(mp + 13 * eStride);
      const s1 = i32x4.add(i32x4.add(m0, m1), m2);
      const d1 = i32x4.sub(i32x4.sub(m1, m2), m3);
      m0 = v128.load(mp + 2 * eStride);
      m1 = v128.load(mp + 6 * eStride);
      m2 = v128.load(mp + 10 * eStride);
      m3 = v128.load(mp + 14 * eStride);
      const s2 = i32x4.add(i32x4.add(m0, m1), m2);
      const d2 = i32x4.sub(i32x4.sub(m1, m2), m3);
      m0 = v128.load(mp + 3 * eStride);
      m1 = v128.load(mp + 7 * eStride);
      m2 = v128.load(mp + 11 * eStride);
      m3 = v128.load(mp + 15 * eStride);
      const s3 = i32x4.add(i32x4.add(m0, m1), m2);
      const d3 = i32x4.sub(i32x4.sub(m1, m2), m3);
      // Then times A: column 0 = x_0 + x_1 + x_2, column 1 = x_1 - x_2 - x_3.
      const y00 = i32x4.shr_s(i32x4.add(i32x4.add(s0, s1), s2), 2);
      const y01 = i32x4.shr_s(i32x4.sub(i32x4.sub(s1, s2), s3), 2);
      const y10 = i32x4.shr_s(i32x4.add(i32x4.add(d0, d1), d2), 2);
      const y11 = i32x4.shr_s(i32x4.sub(i32x4.sub(d1, d2), d3), 2);
      const n = min(4, rows - co);
      const at = base + <usize>co * plane;
      storeLanes(at, plane, y00, n);
      if (right) storeLanes(at + 4, plane, y01, n);
      if (down) {
        storeLanes(at + rowBytes, plane, y10, n);
        if (right) storeLanes(at + rowBytes + 4, plane, y11, n);
      }
    }
  }
}

/** Lane l of v (l < n) to p + l * plane. */
function storeLanes(p: usize, plane: usize, v: v128, n: i32): void {
  store<i32>(p, i32x4.extract_lane(v, 0));
  if (n > 1) store<i32>(p + plane, i32x4.extract_lane(v, 1));
  if (n > 2) store<i32>(p + 2 * plane, i32x4.extract_lane(v, 2));
  if (n > 3) store<i32>(p + 3 * plane, i32x4.extract_lane(v, 3));
}

/**
 * Exact i32 dots in place in y [rows][positions] to the layer's outputs, as i8Out computes them one at a time: the dot
 * times f32(sample scale * row scale) in f64, rounded once to f32, then scale, shift and ReLU; four positions a step.
 */
export function i32Epilogue(
  y: usize,
  rows: i32,
  positions: i32,
  ascale: usize,
  wscale: usize,
  scale: usize,
  shift: usize,
  relu: i32,
): void {
  const as = load<f32>(ascale);
  const p4 = positions & ~3;
  for (let r = 0; r < rows; r++) {
    const yr = y + ((<usize>(r * positions)) << 2);
    const combined = f64x2.splat(<f64>(as * load<f32>(wscale + ((<usize>r) << 2))));
    let k = 0;
    for (; k < p4; k += 4) {
      const at = yr + ((<usize>k) << 2);
      v128.store(at, i8Out4(v128.load(at), combined, r, scale, shift, relu));
    }
    for (; k < positions; k++) {
      const at = yr + ((<usize>k) << 2);
      store<f32>(at, i8Out(load<i32>(at), as, r, wscale, scale, shift, relu));
    }
  }
}

/** i8Out on four dots: f64 products (exact conversions), one rounding to f32, then the epilogue in SIMD (storeConv). */
function i8Out4(dot: v128, combined: v128, r: i32, scale: usize, shift: usize, relu: i32): v128 {
  const lo = f64x2.mul(f64x2.convert_low_i32x4_s(dot), combined);
  const hi = f64x2.mul(f64x2.convert_low_i32x4_s(i32x4.shuffle(dot, dot, 2, 3, 0, 1)), combined);
  let v = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
  if (scale != 0) v = f32x4.mul(v, f32x4.splat(load<f32>(scale + ((<usize>r) << 2))));
  v = f32x4.add(v, f32x4.splat(load<f32>(shift + ((<usize>r) << 2))));
  if (relu != 0) v = f32x4.pmax(f32x4.splat(0), v);
  return v;
}

/**
 * int8 convs vectorized over output positions, for few channels (LeNet's first layer has one: 25 products per output,
 * too few to amortize a patch row's horizontal sum and scalar epilogue). The quantized input is laid out as i32 pairs
 * of two values that share a weight pair (pairAlongRows, pairChannels), so the pairs of four consecutive output
 * positions are one v128 and i32x4.dot_i16x8_s with a splatted weight pair adds two taps to four outputs, exactly in
 * i32 as i16Dot. Taps: for a < A, ky < K, b < B, the pair at byte offset ((a * H + ky) * W + b * step) * 4 from the
 * output's (a = channel, pairs along rows with step 2; or a = channel pair, step 1). Weights: i16 pairs [taps][rowsP]
 * (pairMajor in engine-wasm.ts, widened by widenI8), rowsP the filters rounded up to 4 (zeros). Four filters by eight
 * positions a step; the positions past a row's end are computed from whatever follows and not stored (`e` needs
 * (K + 8) * 4 readable bytes past its end).
 */
export function i8ConvPairs(
  e: usize,
  A: i32,
  H: i32,
  W: i32,
  K: i32,
  B: i32,
  step: i32,
  wp: usize,
  rows: i32,
  ascale: usize,
  wscale: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  const rowsP = (rows + 3) & ~3;
  const plane = (<usize>(OH * OW)) << 2;
  const tapRow = (<usize>rowsP) << 2;
  const as = load<f32>(ascale);
  for (let oy = 0; oy < OH; oy++) {
    for (let ox = 0; ox < OW; ox += 8) {
      const at = e + ((<usize>(oy * W + ox)) << 2);
      const n0 = min(4, OW - ox);
      const n1 = min(4, OW - ox - 4);
      for (let r = 0; r < rows; r += 4) {
        let a00 = i32x4.splat(0);
        let a01 = i32x4.splat(0);
        let a10 = i32x4.splat(0);
        let a11 = i32x4.splat(0);
        let a20 = i32x4.splat(0);
        let a21 = i32x4.splat(0);
        let a30 = i32x4.splat(0);
        let a31 = i32x4.splat(0);
        let w = wp + ((<usize>r) << 2);
        for (let a = 0; a < A; a++) {
          for (let ky = 0; ky < K; ky++) {
            let p = at + ((<usize>((a * H + ky) * W)) << 2);
            for (let b = 0; b < B; b++) {
              const x0 = v128.load(p);
              const x1 = v128.load(p, 16);
              p += (<usize>step) << 2;
              let s = v128.load32_splat(w);
              a00 = i32x4.add(a00, i32x4.dot_i16x8_s(x0, s));
              a01 = i32x4.add(a01, i32x4.dot_i16x8_s(x1, s));
              s = v128.load32_splat(w, 4);
              a10 = i32x4.add(a10, i32x4.dot_i16x8_s(x0, s));
              a11 = i32x4.add(a11, i32x4.dot_i16x8_s(x1, s));
              s = v128.load32_splat(w, 8);
              a20 = i32x4.add(a20, i32x4.dot_i16x8_s(x0, s));
              a21 = i32x4.add(a21, i32x4.dot_i16x8_s(x1, s));
              s = v128.load32_splat(w, 12);
              a30 = i32x4.add(a30, i32x4.dot_i16x8_s(x0, s));
              a31 = i32x4.add(a31, i32x4.dot_i16x8_s(x1, s));
              w += tapRow;
            }
          }
        }
        const out = y + <usize>r * plane + ((<usize>(oy * OW + ox)) << 2);
        pairsOut(out, a00, a01, n0, n1, as, r, wscale, scale, shift, relu);
        if (r + 1 < rows) pairsOut(out + plane, a10, a11, n0, n1, as, r + 1, wscale, scale, shift, relu);
        if (r + 2 < rows) pairsOut(out + 2 * plane, a20, a21, n0, n1, as, r + 2, wscale, scale, shift, relu);
        if (r + 3 < rows) pairsOut(out + 3 * plane, a30, a31, n0, n1, as, r + 3, wscale, scale, shift, relu);
      }
    }
  }
}

/** Eight outputs of filter r (n0 of the first four, n1 of the next) through i8Out4 to out. */
function pairsOut(
  out: usize,
  d0: v128,
  d1: v128,
  n0: i32,
  n1: i32,
  as: f32,
  r: i32,
  wscale: usize,
  scale: usize,
  shift: usize,
  relu: i32,
): void {
  const combined = f64x2.splat(<f64>(as * load<f32>(wscale + ((<usize>r) << 2))));
  storeFloats(out, i8Out4(d0, combined, r, scale, shift, relu), n0);
  if (n1 > 0) storeFloats(out + 16, i8Out4(d1, combined, r, scale, shift, relu), n1);
}

/** The first n (1..4) lanes of v to p. */
function storeFloats(p: usize, v: v128, n: i32): void {
  if (n >= 4) {
    v128.store(p, v);
    return;
  }
  store<f32>(p, f32x4.extract_lane(v, 0));
  if (n > 1) store<f32>(p, f32x4.extract_lane(v, 1), 4);
  if (n > 2) store<f32>(p, f32x4.extract_lane(v, 2), 8);
}

/** i8ConvPairs' input, pairs along rows: i32 i of `e` holds i16 values i and i + 1 of q (n values). */
export function pairAlongRows(q: usize, n: i32, e: usize): void {
  for (let i = 0; i < n; i += 8) {
    const a = v128.load(q + ((<usize>i) << 1));
    const b = v128.load(q + ((<usize>i) << 1), 2);
    v128.store(e + ((<usize>i) << 2), i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
    v128.store(e + ((<usize>i) << 2), i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
  }
}

/**
 * i8ConvPairs' input, pairs across channels: i32 (a, p) of `e` holds channels 2a and 2a + 1 of pixel p of the planes
 * q [C][P] (an odd last channel paired with 0).
 */
export function pairChannels(q: usize, C: i32, P: i32, e: usize): void {
  const planeBytes = (<usize>P) << 1;
  for (let c = 0; c < C; c += 2) {
    const q0 = q + <usize>c * planeBytes;
    const e0 = e + <usize>c * planeBytes;
    const odd = c + 1 == C;
    for (let p = 0; p < P; p += 8) {
      const a = v128.load(q0 + ((<usize>p) << 1));
      const b = odd ? i16x8.splat(0) : v128.load(q0 + planeBytes + ((<usize>p) << 1));
      v128.store(e0 + ((<usize>p) << 2), i16x8.shuffle(a, b, 0, 8, 1, 9, 2, 10, 3, 11));
      v128.store(e0 + ((<usize>p) << 2), i16x8.shuffle(a, b, 4, 12, 5, 13, 6, 14, 7, 15), 16);
    }
  }
}

/**
 * Binary weights, float inputs (a masked sum): dot = lower[r] * sum(a) + step[r] * sum(a_k where bit k of row r).
 * Per input, the subset sums of every 8 consecutive inputs (one weight byte's worth) turn each weight byte into
 * lookups. They are kept as one table of all 256 sums (1 KiB per byte of a row, one lookup per weight byte) or, when
 * few rows share them (`nibbles`), as the two tables of 16 sums of its low and high four inputs (128 bytes, two
 * lookups and an add per weight byte). The 256-entry table holds exactly those two sums added, so both give the same
 * floats. For rows of up to TABLE_GROUPS bytes (conv patches, small layers), whose tables stay in L1; longer rows go
 * to maskedRowsBlocked.
 */
export function maskedRows(
  a: usize,
  items: i32,
  len: i32,
  bits: usize,
  rowStride: i32,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
  lut: usize,
  nibbles: i32,
): void {
  if (nibbles != 0)
    maskedRowsOf<Nibbles>(
      a,
      items,
      len,
      bits,
      rowStride,
      rows,
      lower,
      step,
      scale,
      shift,
      relu,
      y,
      strideRow,
      strideItem,
      lut,
    );
  else
    maskedRowsOf<Bytes>(
      a,
      items,
      len,
      bits,
      rowStride,
      rows,
      lower,
      step,
      scale,
      shift,
      relu,
      y,
      strideRow,
      strideItem,
      lut,
    );
}

function maskedRowsOf<T>(
  a: usize,
  items: i32,
  len: i32,
  bits: usize,
  rowStride: i32,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
  lut: usize,
): void {
  const groups = (len + 7) >> 3;
  const tb = tableBytes<T>();
  const nib = lut + <usize>groups * tb; // 2 x 16 floats of nibble sums after the tables
  for (let i = 0; i < items; i++) {
    const ai = a + ((<usize>i * <usize>len) << 2);
    let total: f64 = 0;
    for (let g = 0; g < groups; g++) total += <f64>groupTables(ai, len, g, nib, lut + <usize>g * tb, isNibbles<T>());
    for (let r = 0; r < rows; r++) {
      const wr = bits + <usize>r * <usize>rowStride;
      let s0: f32 = 0;
      let s1: f32 = 0;
      let g = 0;
      for (; g + 2 <= groups; g += 2) {
        s0 += lookup<T>(lut + <usize>g * tb, load<u8>(wr + g));
        s1 += lookup<T>(lut + <usize>(g + 1) * tb, load<u8>(wr + g + 1));
      }
      if (g < groups) s0 += lookup<T>(lut + <usize>g * tb, load<u8>(wr + g));
      const lo = <f64>load<f32>(lower + ((<usize>r) << 2));
      const st = <f64>load<f32>(step + ((<usize>r) << 2));
      const v = <f32>(lo * total + st * <f64>(s0 + s1));
      store<f32>(y + ((<usize>(r * strideRow + i * strideItem)) << 2), epilogue(v, r, scale, shift, relu));
    }
  }
}

/** Groups of 8 inputs whose subset-sum tables are built together: at most 8 KiB of tables, which stay in L1. */
const TABLE_GROUPS = 8;

/**
 * maskedRows for long rows (more than TABLE_GROUPS bytes): all the tables of a long row do not fit in L1. Weight
 * bytes are group-major (`bits[g * rows + r]` is byte g of row r), so the tables of TABLE_GROUPS groups are
 * built, then every row adds its lookups in them while they sit in L1. Groups whose eight inputs are all zero add
 * nothing and are skipped (a quarter to a half of an image's pixels). `lut` holds the tables, 32 floats of nibble
 * sums, `rows` floats of running sums, then TABLE_GROUPS * rows bytes for gathered weight bytes.
 */
export function maskedRowsBlocked(
  a: usize,
  items: i32,
  len: i32,
  bits: usize,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
  lut: usize,
  nibbles: i32,
): void {
  if (nibbles != 0)
    blockedOf<Nibbles>(a, items, len, bits, rows, lower, step, scale, shift, relu, y, strideRow, strideItem, lut);
  else blockedOf<Bytes>(a, items, len, bits, rows, lower, step, scale, shift, relu, y, strideRow, strideItem, lut);
}

function blockedOf<T>(
  a: usize,
  items: i32,
  len: i32,
  bits: usize,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
  lut: usize,
): void {
  const groups = (len + 7) >> 3;
  const tb = tableBytes<T>();
  const nib = lut + <usize>TABLE_GROUPS * tb;
  const rs = <usize>rows;
  const acc = nib + 128;
  const gathered = acc + (rs << 2);
  for (let i = 0; i < items; i++) {
    const ai = a + ((<usize>i * <usize>len) << 2);
    let total: f64 = 0;
    memory.fill(acc, 0, rs << 2);
    let g = 0;
    while (g < groups) {
      // Tables for the next TABLE_GROUPS groups with a nonzero input. Where a group of zeros was passed over, the
      // weight bytes of the chosen groups are gathered into one block so the lookups below stay as they are.
      let n = 0;
      let b = bits + <usize>g * rs;
      for (; g < groups && n < TABLE_GROUPS; g++) {
        if (groupIsZero(ai, len, g)) {
          if (b != gathered) {
            memory.copy(gathered, b, <usize>n * rs);
            b = gathered;
          }
          continue;
        }
        total += <f64>groupTables(ai, len, g, nib, lut + <usize>n * tb, isNibbles<T>());
        if (b == gathered) memory.copy(gathered + <usize>n * rs, bits + <usize>g * rs, rs);
        n++;
      }
      // Each row's running sum takes its groups' lookups one at a time, in group order: skipping a group of zeros
      // (whose lookups are +0) then changes nothing, so maskedRowsBatch, which skips fewer, gives the same floats.
      if (n == TABLE_GROUPS) {
        for (let r: usize = 0; r < rs; r++) {
          const br = b + r;
          const o = acc + (r << 2);
          let s = load<f32>(o);
          s += lookup<T>(lut, load<u8>(br));
          s += lookup<T>(lut + tb, load<u8>(br + rs));
          s += lookup<T>(lut + 2 * tb, load<u8>(br + 2 * rs));
          s += lookup<T>(lut + 3 * tb, load<u8>(br + 3 * rs));
          s += lookup<T>(lut + 4 * tb, load<u8>(br + 4 * rs));
          s += lookup<T>(lut + 5 * tb, load<u8>(br + 5 * rs));
          s += lookup<T>(lut + 6 * tb, load<u8>(br + 6 * rs));
          s += lookup<T>(lut + 7 * tb, load<u8>(br + 7 * rs));
          store<f32>(o, s);
        }
      } else if (n > 0) {
        for (let r: usize = 0; r < rs; r++) {
          const o = acc + (r << 2);
          let s = load<f32>(o);
          for (let t = 0; t < n; t++) s += lookup<T>(lut + <usize>t * tb, load<u8>(b + <usize>t * rs + r));
          store<f32>(o, s);
        }
      }
    }
    for (let r = 0; r < rows; r++) {
      const lo = <f64>load<f32>(lower + ((<usize>r) << 2));
      const st = <f64>load<f32>(step + ((<usize>r) << 2));
      const v = <f32>(lo * total + st * <f64>load<f32>(acc + ((<usize>r) << 2)));
      store<f32>(y + ((<usize>(r * strideRow + i * strideItem)) << 2), epilogue(v, r, scale, shift, relu));
    }
  }
}

/** Samples per step of maskedRowsBatch: the lanes of two v128 in every table entry and running sum. */
const BATCH_LANES = 8;

/** Groups of 8 inputs whose tables maskedRowsBatch builds together: 256 entries of 32 bytes each, 32 KiB in all. */
const BATCH_GROUPS = 4;

/**
 * maskedRowsBlocked for several samples at once, to the bit: eight samples ride in the lanes of two v128, so a table
 * entry holds one group's subset sum for all eight, and one weight byte's lookup adds for all eight. The lookups per
 * sample fall eightfold, and each group's tables are built once per eight samples. Each step transposes its samples'
 * inputs to [groups * 8, 8] (inputs past len and samples past `items` read as zeros; the latter are not stored), builds
 * the tables of BATCH_GROUPS groups (skipping groups whose inputs are zero in every sample), then adds every row's
 * lookups to its running sums, one group at a time in group order. Every float is maskedRowsBlocked's: the same table
 * entries, the same order of sums (a group of zeros that one skips and the other does not adds +0), window sums in f64,
 * the same epilogue. So a sample's outputs do not depend on the batch it comes in. Weight bytes group-major, as for
 * maskedRowsBlocked. `lut`: the transposed inputs (groups * 8 * 8 floats), BATCH_GROUPS tables of 256 * 8 floats,
 * 2 x 16 * 8 floats of nibble sums, rows * 8 floats of running sums, 8 f64 of window sums and BATCH_GROUPS * rows
 * bytes of gathered weight bytes.
 */
export function maskedRowsBatch(
  a: usize,
  items: i32,
  len: i32,
  bits: usize,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
  lut: usize,
): void {
  const groups = (len + 7) >> 3;
  const rs = <usize>rows;
  const xt = lut;
  const tables = xt + ((<usize>groups) << 8);
  const nib = tables + BATCH_GROUPS * 8192;
  const acc = nib + 1024;
  const win = acc + (rs << 5);
  const gathered = win + 64;
  for (let i0 = 0; i0 < items; i0 += BATCH_LANES) {
    const n = min(BATCH_LANES, items - i0);
    if (n < BATCH_LANES || (len & 7) != 0) memory.fill(xt, 0, (<usize>groups) << 8);
    for (let s = 0; s < n; s++) {
      const as = a + ((<usize>(i0 + s) * <usize>len) << 2);
      const to = xt + ((<usize>s) << 2);
      for (let k = 0; k < len; k++) store<f32>(to + ((<usize>k) << 5), load<f32>(as + ((<usize>k) << 2)));
    }
    memory.fill(acc, 0, rs << 5);
    // Window sums in f64, samples 0-1, 2-3, 4-5 and 6-7, as maskedRowsBlocked's total.
    let w0 = f64x2.splat(0);
    let w1 = w0;
    let w2 = w0;
    let w3 = w0;
    let g = 0;
    while (g < groups) {
      // Tables for the next BATCH_GROUPS groups with a nonzero input; past a group of zeros, the chosen groups' weight
      // bytes are gathered into one block (as in maskedRowsBlocked), so that byte t of row r is at b + t * rows + r.
      let m = 0;
      let b = bits + <usize>g * rs;
      for (; g < groups && m < BATCH_GROUPS; g++) {
        if (lanesZero(xt + ((<usize>g) << 8))) {
          if (b != gathered) {
            memory.copy(gathered, b, <usize>m * rs);
            b = gathered;
          }
          continue;
        }
        const entry = batchTables(xt + ((<usize>g) << 8), nib, tables + ((<usize>m) << 13));
        const e0 = v128.load(entry);
        const e1 = v128.load(entry, 16);
        w0 = f64x2.add(w0, f64x2.promote_low_f32x4(e0));
        w1 = f64x2.add(w1, f64x2.promote_low_f32x4(i32x4.shuffle(e0, e0, 2, 3, 0, 1)));
        w2 = f64x2.add(w2, f64x2.promote_low_f32x4(e1));
        w3 = f64x2.add(w3, f64x2.promote_low_f32x4(i32x4.shuffle(e1, e1, 2, 3, 0, 1)));
        if (b == gathered) memory.copy(gathered + <usize>m * rs, bits + <usize>g * rs, rs);
        m++;
      }
      if (m == BATCH_GROUPS) {
        for (let r: usize = 0; r < rs; r++) {
          const p = b + r;
          const t0 = tables + ((<usize>load<u8>(p)) << 5);
          const t1 = tables + 8192 + ((<usize>load<u8>(p + rs)) << 5);
          const t2 = tables + 16384 + ((<usize>load<u8>(p + 2 * rs)) << 5);
          const t3 = tables + 24576 + ((<usize>load<u8>(p + 3 * rs)) << 5);
          const o = acc + (r << 5);
          let lo = f32x4.add(v128.load(o), v128.load(t0));
          let hi = f32x4.add(v128.load(o, 16), v128.load(t0, 16));
          lo = f32x4.add(lo, v128.load(t1));
          hi = f32x4.add(hi, v128.load(t1, 16));
          lo = f32x4.add(lo, v128.load(t2));
          hi = f32x4.add(hi, v128.load(t2, 16));
          v128.store(o, f32x4.add(lo, v128.load(t3)));
          v128.store(o, f32x4.add(hi, v128.load(t3, 16)), 16);
        }
      } else {
        for (let t = 0; t < m; t++) {
          const bt = b + <usize>t * rs;
          const table = tables + ((<usize>t) << 13);
          for (let r: usize = 0; r < rs; r++) {
            const e = table + ((<usize>load<u8>(bt + r)) << 5);
            const o = acc + (r << 5);
            v128.store(o, f32x4.add(v128.load(o), v128.load(e)));
            v128.store(o, f32x4.add(v128.load(o, 16), v128.load(e, 16)), 16);
          }
        }
      }
    }
    v128.store(win, w0);
    v128.store(win, w1, 16);
    v128.store(win, w2, 32);
    v128.store(win, w3, 48);
    const si = (<usize>strideItem) << 2;
    for (let r = 0; r < rows; r++) {
      const o = acc + ((<usize>r) << 5);
      for (let q = 0; q < n; q += 4) {
        const v = batchEpilogue(
          v128.load(win + ((<usize>q) << 3)),
          v128.load(win + ((<usize>q) << 3), 16),
          v128.load(o + ((<usize>q) << 2)),
          r,
          lower,
          step,
          scale,
          shift,
          relu,
        );
        const at = y + ((<usize>(r * strideRow + (i0 + q) * strideItem)) << 2);
        store<f32>(at, f32x4.extract_lane(v, 0));
        if (q + 1 < n) store<f32>(at + si, f32x4.extract_lane(v, 1));
        if (q + 2 < n) store<f32>(at + 2 * si, f32x4.extract_lane(v, 2));
        if (q + 3 < n) store<f32>(at + 3 * si, f32x4.extract_lane(v, 3));
      }
    }
  }
}

/**
 * Four samples' outputs of row r, each the float maskedRowsBlocked gives: f32(lower * total + step * sum) in f64 (t01,
 * t23: the totals of samples 0-1 and 2-3), then epilogue's scale, shift and ReLU (the mask keeps v where v > 0).
 */
function batchEpilogue(
  t01: v128,
  t23: v128,
  sum: v128,
  r: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
): v128 {
  const lo = f64x2.splat(<f64>load<f32>(lower + ((<usize>r) << 2)));
  const st = f64x2.splat(<f64>load<f32>(step + ((<usize>r) << 2)));
  const a = f64x2.add(f64x2.mul(lo, t01), f64x2.mul(st, f64x2.promote_low_f32x4(sum)));
  const b = f64x2.add(f64x2.mul(lo, t23), f64x2.mul(st, f64x2.promote_low_f32x4(i32x4.shuffle(sum, sum, 2, 3, 0, 1))));
  let v = i32x4.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
  if (scale != 0) v = f32x4.mul(v, f32x4.splat(load<f32>(scale + ((<usize>r) << 2))));
  v = f32x4.add(v, f32x4.splat(load<f32>(shift + ((<usize>r) << 2))));
  if (relu != 0) v = v128.and(v, f32x4.gt(v, f32x4.splat(0)));
  return v;
}

/** Whether the 8 x 8 transposed inputs at x (one group, eight samples) are all zero (a NaN is not). */
function lanesZero(x: usize): bool {
  const zero = f32x4.splat(0);
  let any = f32x4.ne(v128.load(x), zero);
  for (let k: usize = 1; k < 16; k++) any = v128.or(any, f32x4.ne(v128.load(x + (k << 4)), zero));
  return !v128.any_true(any);
}

/**
 * The 256 subset sums of one group's eight transposed inputs at x (eight samples each) into `table`, entry m at m * 32
 * bytes: the sums of the low and high four inputs (16 each, in `nib`), then every pair added, low plus high, as
 * groupTables adds them. Returns the address of entry 255, the sum of all eight.
 */
function batchTables(x: usize, nib: usize, table: usize): usize {
  // Nibble sums as groupTables makes them, lane by lane: entry l is (H + (bit 1 of l ? x1 : 0)) + (bit 0 ? x0 : 0),
  // with H 0, x2, x3 or x3 + x2 by bits 3 and 2, so that every entry is the float groupTables gives that sample.
  const zero = f32x4.splat(0);
  for (let half: usize = 0; half < 2; half++) {
    const xs = x + (half << 7);
    const t = nib + (half << 9);
    for (let o: usize = 0; o < 32; o += 16) {
      const x0 = v128.load(xs + o);
      const x1 = v128.load(xs + 32 + o);
      const x2 = v128.load(xs + 64 + o);
      const x3 = v128.load(xs + 96 + o);
      const x32 = f32x4.add(x3, x2);
      for (let l: usize = 0; l < 16; l++) {
        const high = l >> 2;
        const h = high == 0 ? zero : high == 1 ? x2 : high == 2 ? x3 : x32;
        const e = f32x4.add(f32x4.add(h, (l & 2) != 0 ? x1 : zero), (l & 1) != 0 ? x0 : zero);
        v128.store(t + (l << 5) + o, e);
      }
    }
  }
  for (let h: usize = 0; h < 16; h++) {
    const b = nib + 512 + (h << 5);
    const b0 = v128.load(b);
    const b1 = v128.load(b, 16);
    const o = table + (h << 9);
    for (let l: usize = 0; l < 16; l++) {
      const e = nib + (l << 5);
      v128.store(o + (l << 5), f32x4.add(v128.load(e), b0));
      v128.store(o + (l << 5), f32x4.add(v128.load(e, 16), b1), 16);
    }
  }
  return table + (255 << 5);
}

/**
 * The two table kinds, as type arguments so that each kernel is compiled once per kind with its lookups inlined:
 * Bytes (256 sums per group) and Nibbles (2 x 16 sums per group).
 */
class Bytes {}
class Nibbles {}

function isNibbles<T>(): bool {
  return idof<T>() == idof<Nibbles>();
}

/** Bytes of one group's tables. */
function tableBytes<T>(): usize {
  return isNibbles<T>() ? 128 : 1024;
}

/** The sum of the inputs of one group that weight byte `byte` selects, from that group's tables at t. */
function lookup<T>(t: usize, byte: u32): f32 {
  if (isNibbles<T>())
    return load<f32>(t + ((<usize>(byte & 15)) << 2)) + load<f32>(t + 64 + ((<usize>(byte >> 4)) << 2));
  return load<f32>(t + ((<usize>byte) << 2));
}

/** Whether inputs 8g..8g+7 of `ai` (those before len) are all zero (a NaN is not). */
function groupIsZero(ai: usize, len: i32, g: i32): bool {
  const k0 = g << 3;
  const p = ai + ((<usize>k0) << 2);
  const zero = f32x4.splat(0);
  if (k0 + 8 <= len) return !v128.any_true(v128.or(f32x4.ne(v128.load(p), zero), f32x4.ne(v128.load(p, 16), zero)));
  for (let k = k0; k < len; k++) if (load<f32>(ai + ((<usize>k) << 2)) != 0) return false;
  return true;
}

/**
 * Writes the subset-sum tables of inputs 8g..8g+7 of `ai` (inputs past len count as 0) to `table`, and returns the
 * sum of all eight. The nibble sums go to `table` itself when `nibbles`, else to `nib` (scratch for 2 x 16 floats) and
 * from there into the 256 sums.
 */
function groupTables(ai: usize, len: i32, g: i32, nib: usize, table: usize, nibbles: bool): f32 {
  const ns = nibbles ? table : nib;
  // Subset sums of the low four (A) and high four (B) inputs x0..x3 of this byte: entry m is the sum of the x_j whose
  // bit j is set in m, added from the highest bit down (((x3 + x2) + x1) + x0), four entries per v128.
  for (let half = 0; half < 2; half++) {
    const k = (g << 3) + (half << 2);
    const t = ns + ((<usize>half) << 6);
    let x: v128;
    if (k + 4 <= len) x = v128.load(ai + ((<usize>k) << 2));
    else {
      for (let j = 0; j < 4; j++)
        store<f32>(t + ((<usize>j) << 2), k + j < len ? load<f32>(ai + ((<usize>(k + j)) << 2)) : 0);
      x = v128.load(t);
    }
    const x2 = f32x4.extract_lane(x, 2);
    const x3 = f32x4.extract_lane(x, 3);
    const low1 = v128.and(i32x4.shuffle(x, x, 1, 1, 1, 1), i32x4(0, 0, -1, -1));
    const low0 = v128.and(i32x4.shuffle(x, x, 0, 0, 0, 0), i32x4(0, -1, 0, -1));
    v128.store(t, f32x4.add(f32x4.add(f32x4.splat(0), low1), low0));
    v128.store(t, f32x4.add(f32x4.add(f32x4.splat(x2), low1), low0), 16);
    v128.store(t, f32x4.add(f32x4.add(f32x4.splat(x3), low1), low0), 32);
    v128.store(t, f32x4.add(f32x4.add(f32x4.splat(x3 + x2), low1), low0), 48);
  }
  if (!nibbles) {
    const a0 = v128.load(ns);
    const a1 = v128.load(ns, 16);
    const a2 = v128.load(ns, 32);
    const a3 = v128.load(ns, 48);
    for (let h = 0; h < 16; h++) {
      const b = f32x4.splat(load<f32>(ns + 64 + ((<usize>h) << 2)));
      const o = table + ((<usize>h) << 6);
      v128.store(o, f32x4.add(a0, b));
      v128.store(o, f32x4.add(a1, b), 16);
      v128.store(o, f32x4.add(a2, b), 32);
      v128.store(o, f32x4.add(a3, b), 48);
    }
  }
  return load<f32>(ns + 60) + load<f32>(ns + 124);
}

/**
 * Binary weights on float inputs for a 'valid' convolution, without patches or tables: per filter, the input under
 * every tap whose weight bit is set is added up, eight output positions at a time in two f32x4 registers, so the work
 * is the set bits times the positions. Meant for few input channels (a conv net's first layer), where tables would
 * serve only a handful of filters. y[r, p] = lower[r] * window(p) + step[r] * (sum over set taps of the input under
 * the tap), the two products in f64, then the epilogue. x: one sample [C, H, W]; bits: the file's rows (bit
 * (c * K + ky) * K + kx), `rowStride` bytes each; y: [rows, OH, OW]; scratch: OH*OW floats (the window sums), then
 * C*K*K tap offsets.
 */
export function maskedConv(
  x: usize,
  C: i32,
  H: i32,
  W: i32,
  K: i32,
  bits: usize,
  rowStride: i32,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  scratch: usize,
): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  const P = OH * OW;
  const taps = C * K * K;
  const win = scratch;
  const offs = win + ((<usize>((P + 3) & ~3)) << 2);
  // Window sums: every tap.
  for (let t = 0; t < taps; t++) store<i32>(offs + ((<usize>t) << 2), tapOffset(t, H, W, K));
  tapSums(x, offs, taps, W, OH, OW, win, 0, 0, 0, 0, 0, 0, 0, 0);
  for (let r = 0; r < rows; r++) {
    const wr = bits + <usize>r * <usize>rowStride;
    let m = 0;
    for (let t = 0; t < taps; t++) {
      if ((load<u8>(wr + (t >> 3)) >> (t & 7)) & 1) {
        store<i32>(offs + ((<usize>m) << 2), tapOffset(t, H, W, K));
        m++;
      }
    }
    tapSums(x, offs, m, W, OH, OW, y + ((<usize>r * <usize>P) << 2), 1, win, r, lower, step, scale, shift, relu);
  }
}

/** Byte offset in the input [C, H, W] of tap t = (c * K + ky) * K + kx at output (0, 0). */
function tapOffset(t: i32, H: i32, W: i32, K: i32): i32 {
  const kk = K * K;
  return (((t / kk) * H + (t % kk) / K) * W + (t % K)) << 2;
}

/**
 * For every output (oy, ox): the sum of x at (oy * W + ox) * 4 + offs[j] over the m taps, in float32. With `finish` 0
 * it is stored to out; with 1, row r's masked-sum result lower * win + step * sum goes through the epilogue to out.
 */
function tapSums(
  x: usize,
  offs: usize,
  m: i32,
  W: i32,
  OH: i32,
  OW: i32,
  out: usize,
  finish: i32,
  win: usize,
  r: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
): void {
  const lo = finish != 0 ? <f64>load<f32>(lower + ((<usize>r) << 2)) : 0;
  const st = finish != 0 ? <f64>load<f32>(step + ((<usize>r) << 2)) : 0;
  const ow8 = OW & ~7;
  for (let oy = 0; oy < OH; oy++) {
    const row = x + ((<usize>(oy * W)) << 2);
    const po = (<usize>(oy * OW)) << 2;
    let ox = 0;
    for (; ox < ow8; ox += 8) {
      const base = row + ((<usize>ox) << 2);
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      for (let j = 0; j < m; j++) {
        const s = base + <usize>load<i32>(offs + ((<usize>j) << 2));
        a0 = f32x4.add(a0, v128.load(s));
        a1 = f32x4.add(a1, v128.load(s, 16));
      }
      const o = po + ((<usize>ox) << 2);
      if (finish == 0) {
        v128.store(out + o, a0);
        v128.store(out + o, a1, 16);
      } else {
        v128.store(out + o, maskedEpilogue4(lo, st, v128.load(win + o), a0, r, scale, shift, relu));
        v128.store(out + o, maskedEpilogue4(lo, st, v128.load(win + o, 16), a1, r, scale, shift, relu), 16);
      }
    }
    for (; ox + 4 <= OW; ox += 4) {
      const base = row + ((<usize>ox) << 2);
      let a0 = f32x4.splat(0);
      for (let j = 0; j < m; j++) a0 = f32x4.add(a0, v128.load(base + <usize>load<i32>(offs + ((<usize>j) << 2))));
      const o = po + ((<usize>ox) << 2);
      if (finish == 0) v128.store(out + o, a0);
      else v128.store(out + o, maskedEpilogue4(lo, st, v128.load(win + o), a0, r, scale, shift, relu));
    }
    for (; ox < OW; ox++) {
      const base = row + ((<usize>ox) << 2);
      let a: f32 = 0;
      for (let j = 0; j < m; j++) a += load<f32>(base + <usize>load<i32>(offs + ((<usize>j) << 2)));
      const o = po + ((<usize>ox) << 2);
      if (finish == 0) store<f32>(out + o, a);
      else {
        const v = <f32>(lo * <f64>load<f32>(win + o) + st * <f64>a);
        store<f32>(out + o, epilogue(v, r, scale, shift, relu));
      }
    }
  }
}

/** Four outputs of row r: lower * win + step * sum in f64, to f32, then scale, shift and ReLU (as epilogue does). */
function maskedEpilogue4(lo: f64, st: f64, win: v128, sum: v128, r: i32, scale: usize, shift: usize, relu: i32): v128 {
  const lo2 = f64x2.splat(lo);
  const st2 = f64x2.splat(st);
  const a = f64x2.add(f64x2.mul(lo2, f64x2.promote_low_f32x4(win)), f64x2.mul(st2, f64x2.promote_low_f32x4(sum)));
  const b = f64x2.add(
    f64x2.mul(lo2, f64x2.promote_low_f32x4(i32x4.shuffle(win, win, 2, 3, 0, 1))),
    f64x2.mul(st2, f64x2.promote_low_f32x4(i32x4.shuffle(sum, sum, 2, 3, 0, 1))),
  );
  let v = i32x4.shuffle(f32x4.demote_f64x2_zero(a), f32x4.demote_f64x2_zero(b), 0, 1, 4, 5);
  if (scale != 0) v = f32x4.mul(v, f32x4.splat(load<f32>(scale + ((<usize>r) << 2))));
  v = f32x4.add(v, f32x4.splat(load<f32>(shift + ((<usize>r) << 2))));
  if (relu != 0) v = f32x4.pmax(v, f32x4.splat(0));
  return v;
}

/**
 * Binary weights on float inputs for a 'valid' convolution with many channels: subset-sum tables per input pixel. The
 * channels are taken G at a time (a group; the last may hold fewer); for a group, plane m of the tables holds, at every
 * input pixel, the sum of the group's channels whose bit is set in m (2^G planes, plane 0 zeros). One table entry then
 * stands for G taps of every filter at every output whose window covers that pixel, so a filter's masked sum at an
 * output is K*K lookups per group. Outputs go four to a v128 along a row (the tables are planes, so four neighbouring
 * outputs read four neighbouring floats), three rows and eight columns per step (six accumulators: eight spilled one to
 * the stack on x64). Sums run group after group in float32 into `acc`, rows padded to OWP (OW rounded up to 4; the
 * padding columns read past the row and are dropped); row `rows` of `idx` selects every channel and gives the window
 * sums. Then y[r, p] = epilogue(lower[r] * window(p) + step[r] * sum) with the two products in f64, as maskedConv does.
 * x: one sample [C, H, W]; idx: u8 [rows + 1, groups, K*K], entry (r, g, ky * K + kx) the bits of channels
 * gG..gG+G-1 of filter r at tap (ky, kx) (bit j: channel gG + j); y: [rows, OH, OW]; scratch: 2^G planes of
 * tablePlaneFloats(H, W, K) floats, then (rows + 1) * OH * OWP floats of sums, (rows + 1) * K*K u32 of (filter, tap)
 * offsets and K*K u32 of tap offsets.
 */
export function maskedConvTables(
  x: usize,
  C: i32,
  H: i32,
  W: i32,
  K: i32,
  G: i32,
  idx: usize,
  rows: i32,
  lower: usize,
  step: usize,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  scratch: usize,
): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  const OWP = (OW + 3) & ~3;
  const KK = K * K;
  const groups = (C + G - 1) / G;
  const HW = H * W;
  const planeBytes = (<usize>tablePlaneFloats(H, W, K)) << 2;
  const tables = scratch;
  const acc = scratch + (planeBytes << G);
  const rowBytes = (<usize>W) << 2;
  const accRow = (<usize>OWP) << 2;
  const accPlane = <usize>OH * accRow;
  // Per group, the byte offset of every (filter, tap)'s table row from the output's row: plane and tap together.
  const offs = acc + <usize>(rows + 1) * accPlane;
  const full = OWP & ~7;
  // Each tap's byte offset in a plane, after the (filter, tap) offsets.
  const taps = offs + ((<usize>((rows + 1) * KK)) << 2);
  for (let ky = 0; ky < K; ky++) {
    for (let kx = 0; kx < K; kx++) store<u32>(taps + ((<usize>(ky * K + kx)) << 2), <u32>((ky * W + kx) << 2));
  }
  memory.fill(tables, 0, planeBytes);
  for (let g = 0; g < groups; g++) {
    const c0 = g * G;
    const n = min(G, C - c0);
    // Plane 2^j + m = plane m + channel c0 + j (the last quad of a plane may read into the next channel: padding).
    const quads = <usize>((HW + 3) >> 2);
    for (let j = 0; j < n; j++) {
      const xc = x + ((<usize>((c0 + j) * HW)) << 2);
      const half = (<usize>1) << j;
      for (let m: usize = 0; m < half; m++) {
        const from = tables + m * planeBytes;
        const to = tables + (half + m) * planeBytes;
        for (let q: usize = 0; q < quads; q++) {
          const o = q << 4;
          v128.store(to + o, f32x4.add(v128.load(from + o), v128.load(xc + o)));
        }
      }
    }
    const first = g == 0;
    for (let r = 0; r <= rows; r++) {
      const ib = idx + <usize>((r * groups + g) * KK);
      const ob = offs + ((<usize>(r * KK)) << 2);
      for (let t = 0; t < KK; t++) {
        const at = (<usize>t) << 2;
        store<u32>(ob + at, <u32>(<usize>load<u8>(ib + <usize>t) * planeBytes + <usize>load<u32>(taps + at)));
      }
    }
    // Three output rows of every filter in turn: the table rows they read (K + 2 rows of each plane) stay in L1.
    for (let oy = 0; oy < OH; oy += 3) {
      // Past the last row, rows run twice (both stores write the same values).
      const oy1 = min(oy + 1, OH - 1);
      const oy2 = min(oy + 2, OH - 1);
      const t0 = tables + <usize>oy * rowBytes;
      const t1 = tables + <usize>oy1 * rowBytes;
      const t2 = tables + <usize>oy2 * rowBytes;
      for (let r = 0; r <= rows; r++) {
        const out = acc + <usize>r * accPlane;
        const ob = offs + ((<usize>(r * KK)) << 2);
        const y0 = out + <usize>oy * accRow;
        const y1 = out + <usize>oy1 * accRow;
        const y2 = out + <usize>oy2 * accRow;
        let b = 0;
        for (; b < full; b += 8) {
          const bo = (<usize>b) << 2;
          let a0 = f32x4.splat(0);
          let a1 = a0;
          let a2 = a0;
          let a3 = a0;
          let a4 = a0;
          let a5 = a0;
          if (!first) {
            a0 = v128.load(y0 + bo);
            a1 = v128.load(y0 + bo, 16);
            a2 = v128.load(y1 + bo);
            a3 = v128.load(y1 + bo, 16);
            a4 = v128.load(y2 + bo);
            a5 = v128.load(y2 + bo, 16);
          }
          const u0 = t0 + bo;
          const u1 = t1 + bo;
          const u2 = t2 + bo;
          for (let t: usize = 0; t < <usize>KK; t++) {
            const off = <usize>load<u32>(ob + (t << 2));
            const p0 = u0 + off;
            const p1 = u1 + off;
            const p2 = u2 + off;
            a0 = f32x4.add(a0, v128.load(p0));
            a1 = f32x4.add(a1, v128.load(p0, 16));
            a2 = f32x4.add(a2, v128.load(p1));
            a3 = f32x4.add(a3, v128.load(p1, 16));
            a4 = f32x4.add(a4, v128.load(p2));
            a5 = f32x4.add(a5, v128.load(p2, 16));
          }
          v128.store(y2 + bo, a4);
          v128.store(y2 + bo, a5, 16);
          v128.store(y1 + bo, a2);
          v128.store(y1 + bo, a3, 16);
          v128.store(y0 + bo, a0);
          v128.store(y0 + bo, a1, 16);
        }
        for (; b < OWP; b += 4) {
          const bo = (<usize>b) << 2;
          let a0 = first ? f32x4.splat(0) : v128.load(y0 + bo);
          let a1 = first ? f32x4.splat(0) : v128.load(y1 + bo);
          let a2 = first ? f32x4.splat(0) : v128.load(y2 + bo);
          for (let t: usize = 0; t < <usize>KK; t++) {
            const off = <usize>load<u32>(ob + (t << 2)) + bo;
            a0 = f32x4.add(a0, v128.load(t0 + off));
            a1 = f32x4.add(a1, v128.load(t1 + off));
            a2 = f32x4.add(a2, v128.load(t2 + off));
          }
          v128.store(y2 + bo, a2);
          v128.store(y1 + bo, a1);
          v128.store(y0 + bo, a0);
        }
      }
    }
  }
  const win = acc + <usize>rows * accPlane;
  for (let r = 0; r < rows; r++) {
    const lo = <f64>load<f32>(lower + ((<usize>r) << 2));
    const st = <f64>load<f32>(step + ((<usize>r) << 2));
    const ar = acc + <usize>r * accPlane;
    const yr = y + ((<usize>(r * OH * OW)) << 2);
    for (let oy = 0; oy < OH; oy++) {
      const ya = yr + ((<usize>(oy * OW)) << 2);
      for (let b = 0; b < OWP; b += 4) {
        const o = <usize>oy * accRow + ((<usize>b) << 2);
        const v = maskedEpilogue4(lo, st, v128.load(win + o), v128.load(ar + o), r, scale, shift, relu);
        const at = ya + ((<usize>b) << 2);
        if (b + 4 <= OW) v128.store(at, v);
        else {
          store<f32>(at, f32x4.extract_lane(v, 0));
          if (b + 1 < OW) store<f32>(at, f32x4.extract_lane(v, 1), 4);
          if (b + 2 < OW) store<f32>(at, f32x4.extract_lane(v, 2), 8);
        }
      }
    }
  }
}

/** Floats in one table plane of maskedConvTables: the input pixels, and room for the padding columns to read. */
export function tablePlaneFloats(H: i32, W: i32, K: i32): i32 {
  const OWP = (W - K + 4) & ~3;
  return (H * W + OWP + 3) & ~3;
}

/**
 * Binary weights, binary inputs: with input levels aLow + aStep * bit (per sample) and weight levels wLow + wStep * bit
 * (per row), over n real positions: dot = n aLow wLow + aLow wStep P(w) + aStep wLow P(a) + aStep wStep P(a AND w),
 * where P is a popcount (i8x16.popcnt). XNOR-Net's +/-alpha is the special case low = -alpha, step = 2 alpha.
 * Input rows (`rowBytes` each, a multiple of 16) carry their popcounts in `apop`; item i belongs to sample
 * i / itemsPerSample, whose levels are aLevels[2s] = aLow, aLevels[2s + 1] = aStep (as binarize writes them). Weight
 * rows have the same stride and popcounts `wpop`.
 */
export function popRows(
  a: usize,
  items: i32,
  rowBytes: i32,
  apop: usize,
  itemsPerSample: i32,
  aLevels: usize,
  w: usize,
  rows: i32,
  wpop: usize,
  wLow: usize,
  wStep: usize,
  n: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideRow: i32,
  strideItem: i32,
): void {
  const nv = rowBytes >> 4;
  const rows4 = rows & ~3;
  for (let i = 0; i < items; i++) {
    const ai = a + <usize>i * <usize>rowBytes;
    const s = i / itemsPerSample;
    const al = <f64>load<f32>(aLevels + ((<usize>s) << 3));
    const as = <f64>load<f32>(aLevels + ((<usize>s) << 3), 4);
    const pa = <f64>load<i32>(apop + ((<usize>i) << 2));
    // dot = wLow * (n aLow + aStep P(a)) + aLow * wStep P(w) + aStep wStep P(a AND w), in f64 lanes.
    const big = f64x2.splat(<f64>n * al + as * pa);
    const al2 = f64x2.splat(al);
    const as2 = f64x2.splat(as);
    const yi = y + ((<usize>(i * strideItem)) << 2);
    let r = 0;
    // Four rows at a time share the input loads; their counts are summed into one i32x4 by lane shuffles.
    for (; r < rows4; r += 4) {
      const w0 = w + <usize>r * <usize>rowBytes;
      const w1 = w0 + <usize>rowBytes;
      const w2 = w1 + <usize>rowBytes;
      const w3 = w2 + <usize>rowBytes;
      let t0 = i32x4.splat(0);
      let t1 = i32x4.splat(0);
      let t2 = i32x4.splat(0);
      let t3 = i32x4.splat(0);
      let j = 0;
      while (j < nv) {
        const end = min(j + 31, nv); // 31 * 8 bits per byte lane stays below 256
        let b0 = i8x16.splat(0);
        let b1 = i8x16.splat(0);
        let b2 = i8x16.splat(0);
        let b3 = i8x16.splat(0);
        for (; j < end; j++) {
          const o = (<usize>j) << 4;
          const x = v128.load(ai + o);
          b0 = i8x16.add(b0, i8x16.popcnt(v128.and(x, v128.load(w0 + o))));
          b1 = i8x16.add(b1, i8x16.popcnt(v128.and(x, v128.load(w1 + o))));
          b2 = i8x16.add(b2, i8x16.popcnt(v128.and(x, v128.load(w2 + o))));
          b3 = i8x16.add(b3, i8x16.popcnt(v128.and(x, v128.load(w3 + o))));
        }
        t0 = i32x4.add(t0, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b0)));
        t1 = i32x4.add(t1, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b1)));
        t2 = i32x4.add(t2, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b2)));
        t3 = i32x4.add(t3, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b3)));
      }
      const u0 = i32x4.add(i32x4.shuffle(t0, t1, 0, 4, 1, 5), i32x4.shuffle(t0, t1, 2, 6, 3, 7));
      const u1 = i32x4.add(i32x4.shuffle(t2, t3, 0, 4, 1, 5), i32x4.shuffle(t2, t3, 2, 6, 3, 7));
      const counts = i32x4.add(i32x4.shuffle(u0, u1, 0, 1, 4, 5), i32x4.shuffle(u0, u1, 2, 3, 6, 7));
      const ro = (<usize>r) << 2;
      const wl = v128.load(wLow + ro);
      const ws = v128.load(wStep + ro);
      const pw = v128.load(wpop + ro);
      const lo = dot2(
        f64x2.promote_low_f32x4(wl),
        f64x2.promote_low_f32x4(ws),
        f64x2.convert_low_i32x4_s(pw),
        f64x2.convert_low_i32x4_s(counts),
        big,
        al2,
        as2,
      );
      const hi = dot2(
        f64x2.promote_low_f32x4(i32x4.shuffle(wl, wl, 2, 3, 0, 1)),
        f64x2.promote_low_f32x4(i32x4.shuffle(ws, ws, 2, 3, 0, 1)),
        f64x2.convert_low_i32x4_s(i32x4.shuffle(pw, pw, 2, 3, 0, 1)),
        f64x2.convert_low_i32x4_s(i32x4.shuffle(counts, counts, 2, 3, 0, 1)),
        big,
        al2,
        as2,
      );
      let v = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
      if (scale != 0) v = f32x4.mul(v, v128.load(scale + ro));
      v = f32x4.add(v, v128.load(shift + ro));
      if (relu != 0) v = f32x4.pmax(v, f32x4.splat(0));
      if (strideRow == 1) v128.store(yi + ro, v);
      else {
        const stride = (<usize>strideRow) << 2;
        const yr = yi + <usize>r * stride;
        store<f32>(yr, f32x4.extract_lane(v, 0));
        store<f32>(yr + stride, f32x4.extract_lane(v, 1));
        store<f32>(yr + 2 * stride, f32x4.extract_lane(v, 2));
        store<f32>(yr + 3 * stride, f32x4.extract_lane(v, 3));
      }
    }
    for (; r < rows; r++) {
      const pand = popcountAnd(ai, w + <usize>r * <usize>rowBytes, nv);
      const wl = <f64>load<f32>(wLow + ((<usize>r) << 2));
      const ws = <f64>load<f32>(wStep + ((<usize>r) << 2));
      const pw = <f64>load<i32>(wpop + ((<usize>r) << 2));
      const v = <f32>(wl * (<f64>n * al + as * pa) + al * ws * pw + as * ws * <f64>pand);
      store<f32>(yi + ((<usize>(r * strideRow)) << 2), epilogue(v, r, scale, shift, relu));
    }
  }
}

/**
 * popRows for a dense layer with many rows, one input at a time from the weights' columns: count(r) = P(a AND w_r) is
 * the number of set input bits k whose column k has bit r, so only the set columns are read (about half) and no
 * popcount is taken. Columns (`colBytes` each, a multiple of 16: bit r of column k at byte k * colBytes + (r >> 3), bit
 * r & 7) are added 128 rows (one v128) at a time, two such blocks per pass over the columns, into bit-sliced counters:
 * a carry-save adder tree over 16 columns (Harley-Seal) keeps the ones, twos, fours and eights, and its sixteens go
 * into counter planes by ripple carry. The planes are then turned into integer counts and y is popRows' epilogue on
 * them, so the floats are the same as popRows gives (same f64 expressions). Inputs: `items` bit rows of `rowBytes` (as
 * binarize writes them), apop and aLevels per item; scratch: 4 * n bytes of column addresses, 2 * 24 * 16 bytes of
 * planes, then 4 * rows (padded to 128) bytes of counts. n < 65536.
 */
export function popColumns(
  a: usize,
  items: i32,
  rowBytes: i32,
  apop: usize,
  aLevels: usize,
  w: usize,
  colBytes: i32,
  rows: i32,
  wpop: usize,
  wLow: usize,
  wStep: usize,
  n: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
  strideItem: i32,
  scratch: usize,
): void {
  const list = scratch;
  const planes = list + ((<usize>((n + 3) & ~3)) << 2);
  const counts = planes + 16 * 48;
  const blocks = colBytes >> 4;
  const words = (n + 63) >> 6;
  for (let i = 0; i < items; i++) {
    const ai = a + <usize>i * <usize>rowBytes;
    // Byte offsets of the set input bits' columns.
    let m = 0;
    for (let q = 0; q < words; q++) {
      let bw = (q << 3) + 8 <= rowBytes ? load<u64>(ai + ((<usize>q) << 3)) : tailWord(ai, q, rowBytes);
      while (bw != 0) {
        const k = (q << 6) + <i32>ctz<u64>(bw);
        store<u32>(list + ((<usize>m) << 2), <u32>(w + <usize>k * <usize>colBytes));
        m++;
        bw &= bw - 1;
      }
    }
    // Counter planes of sixteens: enough for m / 16, so the ripple carry runs a fixed number of planes. Two blocks
    // of 128 rows share one pass over the column addresses (the second 16 bytes further); an odd last block runs
    // alone.
    const depth = 32 - clz<i32>(m >> 4);
    for (let j = 0; j < blocks; j += 2) {
      const pair = j + 1 < blocks;
      const jo = (<usize>j) << 4;
      let ones = i32x4.splat(0);
      let twos = ones;
      let fours = ones;
      let eights = ones;
      let ones2 = ones;
      let twos2 = ones;
      let fours2 = ones;
      let eights2 = ones;
      memory.fill(planes, 0, 16 * 48);
      let t = 0;
      for (; t + 16 <= m; t += 16) {
        const l = list + ((<usize>t) << 2);
        const a0 = <usize>load<u32>(l, 0) + jo;
        const a1 = <usize>load<u32>(l, 4) + jo;
        const a2 = <usize>load<u32>(l, 8) + jo;
        const a3 = <usize>load<u32>(l, 12) + jo;
        const a4 = <usize>load<u32>(l, 16) + jo;
        const a5 = <usize>load<u32>(l, 20) + jo;
        const a6 = <usize>load<u32>(l, 24) + jo;
        const a7 = <usize>load<u32>(l, 28) + jo;
        const a8 = <usize>load<u32>(l, 32) + jo;
        const a9 = <usize>load<u32>(l, 36) + jo;
        const a10 = <usize>load<u32>(l, 40) + jo;
        const a11 = <usize>load<u32>(l, 44) + jo;
        const a12 = <usize>load<u32>(l, 48) + jo;
        const a13 = <usize>load<u32>(l, 52) + jo;
        const a14 = <usize>load<u32>(l, 56) + jo;
        const a15 = <usize>load<u32>(l, 60) + jo;
        // Carry-save adds: (a, b, c) -> low a ^ b ^ c, high majority(a, b, c).
        let u: v128;
        let d0: v128;
        let d1: v128;
        d0 = v128.load(a0);
        d1 = v128.load(a1);
        u = v128.xor(ones, d0);
        const twosA = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        d0 = v128.load(a2);
        d1 = v128.load(a3);
        u = v128.xor(ones, d0);
        const twosB = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        u = v128.xor(twos, twosA);
        const foursA = v128.or(v128.and(twos, twosA), v128.and(u, twosB));
        twos = v128.xor(u, twosB);
        d0 = v128.load(a4);
        d1 = v128.load(a5);
        u = v128.xor(ones, d0);
        const twosC = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        d0 = v128.load(a6);
        d1 = v128.load(a7);
        u = v128.xor(ones, d0);
        const twosD = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        u = v128.xor(twos, twosC);
        const foursB = v128.or(v128.and(twos, twosC), v128.and(u, twosD));
        twos = v128.xor(u, twosD);
        u = v128.xor(fours, foursA);
        const eightsA = v128.or(v128.and(fours, foursA), v128.and(u, foursB));
        fours = v128.xor(u, foursB);
        d0 = v128.load(a8);
        d1 = v128.load(a9);
        u = v128.xor(ones, d0);
        const twosE = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        d0 = v128.load(a10);
        d1 = v128.load(a11);
        u = v128.xor(ones, d0);
        const twosF = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        u = v128.xor(twos, twosE);
        const foursC = v128.or(v128.and(twos, twosE), v128.and(u, twosF));
        twos = v128.xor(u, twosF);
        d0 = v128.load(a12);
        d1 = v128.load(a13);
        u = v128.xor(ones, d0);
        const twosG = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        d0 = v128.load(a14);
        d1 = v128.load(a15);
        u = v128.xor(ones, d0);
        const twosH = v128.or(v128.and(ones, d0), v128.and(u, d1));
        ones = v128.xor(u, d1);
        u = v128.xor(twos, twosG);
        const foursD = v128.or(v128.and(twos, twosG), v128.and(u, twosH));
        twos = v128.xor(u, twosH);
        u = v128.xor(fours, foursC);
        const eightsB = v128.or(v128.and(fours, foursC), v128.and(u, foursD));
        fours = v128.xor(u, foursD);
        u = v128.xor(eights, eightsA);
        const carry = v128.or(v128.and(eights, eightsA), v128.and(u, eightsB));
        eights = v128.xor(u, eightsB);
        ripple(planes, carry, depth);
        if (pair) {
          d0 = v128.load(a0, 16);
          d1 = v128.load(a1, 16);
          u = v128.xor(ones2, d0);
          const twosA2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          d0 = v128.load(a2, 16);
          d1 = v128.load(a3, 16);
          u = v128.xor(ones2, d0);
          const twosB2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          u = v128.xor(twos2, twosA2);
          const foursA2 = v128.or(v128.and(twos2, twosA2), v128.and(u, twosB2));
          twos2 = v128.xor(u, twosB2);
          d0 = v128.load(a4, 16);
          d1 = v128.load(a5, 16);
          u = v128.xor(ones2, d0);
          const twosC2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          d0 = v128.load(a6, 16);
          d1 = v128.load(a7, 16);
          u = v128.xor(ones2, d0);
          const twosD2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          u = v128.xor(twos2, twosC2);
          const foursB2 = v128.or(v128.and(twos2, twosC2), v128.and(u, twosD2));
          twos2 = v128.xor(u, twosD2);
          u = v128.xor(fours2, foursA2);
          const eightsA2 = v128.or(v128.and(fours2, foursA2), v128.and(u, foursB2));
          fours2 = v128.xor(u, foursB2);
          d0 = v128.load(a8, 16);
          d1 = v128.load(a9, 16);
          u = v128.xor(ones2, d0);
          const twosE2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          d0 = v128.load(a10, 16);
          d1 = v128.load(a11, 16);
          u = v128.xor(ones2, d0);
          const twosF2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          u = v128.xor(twos2, twosE2);
          const foursC2 = v128.or(v128.and(twos2, twosE2), v128.and(u, twosF2));
          twos2 = v128.xor(u, twosF2);
          d0 = v128.load(a12, 16);
          d1 = v128.load(a13, 16);
          u = v128.xor(ones2, d0);
          const twosG2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          d0 = v128.load(a14, 16);
          d1 = v128.load(a15, 16);
          u = v128.xor(ones2, d0);
          const twosH2 = v128.or(v128.and(ones2, d0), v128.and(u, d1));
          ones2 = v128.xor(u, d1);
          u = v128.xor(twos2, twosG2);
          const foursD2 = v128.or(v128.and(twos2, twosG2), v128.and(u, twosH2));
          twos2 = v128.xor(u, twosH2);
          u = v128.xor(fours2, foursC2);
          const eightsB2 = v128.or(v128.and(fours2, foursC2), v128.and(u, foursD2));
          fours2 = v128.xor(u, foursD2);
          u = v128.xor(eights2, eightsA2);
          const carry2 = v128.or(v128.and(eights2, eightsA2), v128.and(u, eightsB2));
          eights2 = v128.xor(u, eightsB2);
          ripple(planes + 16 * 24, carry2, depth);
        }
      }
      for (; t < m; t++) {
        const at = <usize>load<u32>(list + ((<usize>t) << 2)) + jo;
        let carry = v128.load(at);
        let c = v128.and(ones, carry);
        ones = v128.xor(ones, carry);
        carry = c;
        c = v128.and(twos, carry);
        twos = v128.xor(twos, carry);
        carry = c;
        c = v128.and(fours, carry);
        fours = v128.xor(fours, carry);
        carry = c;
        c = v128.and(eights, carry);
        eights = v128.xor(eights, carry);
        ripple(planes, c, depth);
        if (pair) {
          carry = v128.load(at, 16);
          c = v128.and(ones2, carry);
          ones2 = v128.xor(ones2, carry);
          carry = c;
          c = v128.and(twos2, carry);
          twos2 = v128.xor(twos2, carry);
          carry = c;
          c = v128.and(fours2, carry);
          fours2 = v128.xor(fours2, carry);
          carry = c;
          c = v128.and(eights2, carry);
          eights2 = v128.xor(eights2, carry);
          ripple(planes + 16 * 24, c, depth);
        }
      }
      blockCounts(planes, ones, twos, fours, eights, depth, j << 7, rows, counts);
      if (pair) blockCounts(planes + 16 * 24, ones2, twos2, fours2, eights2, depth, (j + 1) << 7, rows, counts);
    }
    popEpilogue(
      counts,
      rows,
      aLevels + ((<usize>i) << 3),
      load<i32>(apop + ((<usize>i) << 2)),
      wpop,
      wLow,
      wStep,
      n,
      scale,
      shift,
      relu,
      y + ((<usize>(i * strideItem)) << 2),
    );
  }
}

/** Bytes 8q.. of a bit row that ends (rowBytes) inside that word, the rest zero. */
function tailWord(ai: usize, q: i32, rowBytes: i32): u64 {
  let v: u64 = 0;
  for (let b = rowBytes - 1; b >= q << 3; b--) v = (v << 8) | (<u64>load<u8>(ai + <usize>b));
  return v;
}

/** Adds the bits of `carry` (one per row) to `depth` bit-sliced counter planes at `planes` (ripple carry). */
function ripple(planes: usize, carry: v128, depth: i32): void {
  for (let p = 0; p < depth; p++) {
    const at = planes + ((<usize>p) << 4);
    const c = v128.load(at);
    v128.store(at, v128.xor(c, carry));
    carry = v128.and(c, carry);
  }
}

/**
 * Counts of one block's 128 rows from its bit-sliced counters (ones to eights, then `depth` planes of sixteens and up
 * at `planes`), 16 rows at a time: the bits of weight up to 128 summed in u8 lanes (at most 255), those of 256 and up
 * in units of 256, then low + 256 * high in u16, widened to i32 at counts[r0..].
 */
function blockCounts(
  planes: usize,
  ones: v128,
  twos: v128,
  fours: v128,
  eights: v128,
  depth: i32,
  r0: i32,
  rows: i32,
  counts: usize,
): void {
  v128.store(planes, ones, 16 * 20);
  v128.store(planes, twos, 16 * 21);
  v128.store(planes, fours, 16 * 22);
  v128.store(planes, eights, 16 * 23);
  for (let h = 0; h < 8; h++) {
    if (r0 + (h << 4) >= rows) break;
    const hb = (<usize>h) << 1;
    let low = expandBits(planes + 16 * 20 + hb, 1);
    low = i8x16.add(low, expandBits(planes + 16 * 21 + hb, 2));
    low = i8x16.add(low, expandBits(planes + 16 * 22 + hb, 4));
    low = i8x16.add(low, expandBits(planes + 16 * 23 + hb, 8));
    let high = i32x4.splat(0);
    for (let p = 0; p < depth; p++) {
      const bitsAt = planes + ((<usize>p) << 4) + hb;
      if (p < 4) low = i8x16.add(low, expandBits(bitsAt, 16 << p));
      else high = i8x16.add(high, expandBits(bitsAt, 1 << (p - 4)));
    }
    const c0 = i16x8.add(i16x8.extend_low_i8x16_u(low), i16x8.shl(i16x8.extend_low_i8x16_u(high), 8));
    const c1 = i16x8.add(i16x8.extend_high_i8x16_u(low), i16x8.shl(i16x8.extend_high_i8x16_u(high), 8));
    const at = counts + ((<usize>(r0 + (h << 4))) << 2);
    v128.store(at, i32x4.extend_low_i16x8_u(c0));
    v128.store(at, i32x4.extend_high_i16x8_u(c0), 16);
    v128.store(at, i32x4.extend_low_i16x8_u(c1), 32);
    v128.store(at, i32x4.extend_high_i16x8_u(c1), 48);
  }
}

/** The 16 bits at p (rows 0..15 of a chunk) as 16 byte lanes holding `weight` where the bit is set, else 0. */
function expandBits(p: usize, weight: i32): v128 {
  const v = i16x8.splat(load<i16>(p));
  const bytes = i8x16.shuffle(v, v, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  const bit = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return v128.and(i8x16.eq(v128.and(bytes, bit), bit), i8x16.splat(<i8>weight));
}

/**
 * popRows' epilogue on precomputed counts P(a AND w_r) (i32 at `counts`) for one input with levels at `levels`
 * and popcount pa: the same f64 expressions, four rows at a time, then the rest one at a time.
 */
function popEpilogue(
  counts: usize,
  rows: i32,
  levels: usize,
  paCount: i32,
  wpop: usize,
  wLow: usize,
  wStep: usize,
  n: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  yi: usize,
): void {
  const al = <f64>load<f32>(levels);
  const as = <f64>load<f32>(levels, 4);
  const pa = <f64>paCount;
  const big = f64x2.splat(<f64>n * al + as * pa);
  const al2 = f64x2.splat(al);
  const as2 = f64x2.splat(as);
  const rows4 = rows & ~3;
  let r = 0;
  for (; r < rows4; r += 4) {
    const ro = (<usize>r) << 2;
    const c = v128.load(counts + ro);
    const wl = v128.load(wLow + ro);
    const ws = v128.load(wStep + ro);
    const pw = v128.load(wpop + ro);
    const lo = dot2(
      f64x2.promote_low_f32x4(wl),
      f64x2.promote_low_f32x4(ws),
      f64x2.convert_low_i32x4_s(pw),
      f64x2.convert_low_i32x4_s(c),
      big,
      al2,
      as2,
    );
    const hi = dot2(
      f64x2.promote_low_f32x4(i32x4.shuffle(wl, wl, 2, 3, 0, 1)),
      f64x2.promote_low_f32x4(i32x4.shuffle(ws, ws, 2, 3, 0, 1)),
      f64x2.convert_low_i32x4_s(i32x4.shuffle(pw, pw, 2, 3, 0, 1)),
      f64x2.convert_low_i32x4_s(i32x4.shuffle(c, c, 2, 3, 0, 1)),
      big,
      al2,
      as2,
    );
    let v = i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
    if (scale != 0) v = f32x4.mul(v, v128.load(scale + ro));
    v = f32x4.add(v, v128.load(shift + ro));
    if (relu != 0) v = f32x4.pmax(v, f32x4.splat(0));
    v128.store(yi + ro, v);
  }
  for (; r < rows; r++) {
    const wl = <f64>load<f32>(wLow + ((<usize>r) << 2));
    const ws = <f64>load<f32>(wStep + ((<usize>r) << 2));
    const pw = <f64>load<i32>(wpop + ((<usize>r) << 2));
    const pand = <f64>load<i32>(counts + ((<usize>r) << 2));
    const v = <f32>(wl * (<f64>n * al + as * pa) + al * ws * pw + as * ws * pand);
    store<f32>(yi + ((<usize>r) << 2), epilogue(v, r, scale, shift, relu));
  }
}

function dot2(wl: v128, ws: v128, pw: v128, pand: v128, big: v128, al: v128, as: v128): v128 {
  return f64x2.add(f64x2.add(f64x2.mul(wl, big), f64x2.mul(al, f64x2.mul(ws, pw))), f64x2.mul(as, f64x2.mul(ws, pand)));
}

function popcountAnd(p: usize, q: usize, nv: i32): i32 {
  let c = i32x4.splat(0);
  let j = 0;
  while (j < nv) {
    const end = min(j + 31, nv);
    let b = i8x16.splat(0);
    for (; j < end; j++) {
      const o = (<usize>j) << 4;
      b = i8x16.add(b, i8x16.popcnt(v128.and(v128.load(p + o), v128.load(q + o))));
    }
    c = i32x4.add(c, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b)));
  }
  return i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) + i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3);
}

/** Sum (of absolute values when `absolute`) of n floats at p, in float32 lanes. */
function sum(p: usize, n: i32, absolute: bool): f64 {
  let s0 = f32x4.splat(0);
  let s1 = f32x4.splat(0);
  const n8 = n & ~7;
  let k = 0;
  for (; k < n8; k += 8) {
    const o = p + ((<usize>k) << 2);
    let a = v128.load(o);
    let b = v128.load(o, 16);
    if (absolute) {
      a = f32x4.abs(a);
      b = f32x4.abs(b);
    }
    s0 = f32x4.add(s0, a);
    s1 = f32x4.add(s1, b);
  }
  let s = <f64>hsum(f32x4.add(s0, s1));
  for (; k < n; k++) {
    const v = load<f32>(p + ((<usize>k) << 2));
    s += <f64>(absolute ? abs<f32>(v) : v);
  }
  return s;
}

/** Popcount of `bytes` (a multiple of 16) bytes at p. */
export function popcount(p: usize, bytes: i32): i32 {
  let c = i32x4.splat(0);
  const nv = bytes >> 4;
  let j = 0;
  while (j < nv) {
    const end = min(j + 31, nv);
    let b = i8x16.splat(0);
    for (; j < end; j++) b = i8x16.add(b, i8x16.popcnt(v128.load(p + ((<usize>j) << 4))));
    c = i32x4.add(c, i32x4.extadd_pairwise_i16x8_u(i16x8.extadd_pairwise_i8x16_u(b)));
  }
  return i32x4.extract_lane(c, 0) + i32x4.extract_lane(c, 1) + i32x4.extract_lane(c, 2) + i32x4.extract_lane(c, 3);
}

/**
 * Binarizes one sample x [C, P] (P = H*W positions; dense inputs have P = 1) as the exported graph does.
 * mode 1 (DAB): centre every position across channels, then `steps` Lloyd steps from the sample mean (threshold =
 * midpoint of the two level means; a level is the mean of the values on its side, counts clamped to >= 1); bits are
 * value >= threshold. mode 2 (XNOR): bits are x >= 0, levels +/- mean |x|.
 * Writes the bits of position p, channel c at bit p * chunkBytes * 8 + c of `bits` (zeroing `bitBytes` bytes first),
 * the levels as levels[0] = lower, levels[1] = upper - lower, and, when q != 0, the binarized floats [C, P] to q.
 * tmp: C*P floats; colSum: P floats. Returns the number of set bits.
 */
export function binarize(
  x: usize,
  C: i32,
  P: i32,
  mode: i32,
  steps: i32,
  tmp: usize,
  colSum: usize,
  bits: usize,
  chunkBytes: i32,
  bitBytes: i32,
  levels: usize,
  q: usize,
): i32 {
  const n = C * P;
  let lower: f32;
  let upper: f32;
  let threshold: f32;
  if (mode == 2) {
    upper = <f32>(sum(x, n, true) / <f64>n);
    lower = -upper;
    threshold = 0;
    memory.copy(tmp, x, (<usize>n) << 2);
  } else {
    if (P == 1) {
      const mean = <f32>(sum(x, C, false) / <f64>C);
      const m4 = f32x4.splat(mean);
      const c4 = C & ~3;
      let c = 0;
      for (; c < c4; c += 4) v128.store(tmp + ((<usize>c) << 2), f32x4.sub(v128.load(x + ((<usize>c) << 2)), m4));
      for (; c < C; c++) store<f32>(tmp + ((<usize>c) << 2), load<f32>(x + ((<usize>c) << 2)) - mean);
    } else {
      // Channel means per position, in float32 lanes across positions (colSum: P floats).
      const p4 = P & ~3;
      memory.fill(colSum, 0, (<usize>P) << 2);
      for (let c = 0; c < C; c++) {
        const xc = x + ((<usize>c * <usize>P) << 2);
        let p = 0;
        for (; p < p4; p += 4) {
          const o = colSum + ((<usize>p) << 2);
          v128.store(o, f32x4.add(v128.load(o), v128.load(xc + ((<usize>p) << 2))));
        }
        for (; p < P; p++) {
          const o = colSum + ((<usize>p) << 2);
          store<f32>(o, load<f32>(o) + load<f32>(xc + ((<usize>p) << 2)));
        }
      }
      const fc = <f32>C;
      for (let p = 0; p < P; p++) store<f32>(colSum + ((<usize>p) << 2), load<f32>(colSum + ((<usize>p) << 2)) / fc);
      for (let c = 0; c < C; c++) {
        const xc = x + ((<usize>c * <usize>P) << 2);
        const tc = tmp + ((<usize>c * <usize>P) << 2);
        let p = 0;
        for (; p < p4; p += 4) {
          const o = (<usize>p) << 2;
          v128.store(tc + o, f32x4.sub(v128.load(xc + o), v128.load(colSum + o)));
        }
        for (; p < P; p++) {
          const o = (<usize>p) << 2;
          store<f32>(tc + o, load<f32>(xc + o) - load<f32>(colSum + o));
        }
      }
    }
    threshold = <f32>(sum(tmp, n, false) / <f64>n);
    lower = 0;
    upper = 0;
    for (let step = 0; step <= steps; step++) {
      if (step > 0) threshold = (upper + lower) / 2;
      const t4 = f32x4.splat(threshold);
      let up4 = f32x4.splat(0);
      let down4 = f32x4.splat(0);
      let cnt4 = i32x4.splat(0);
      const n4 = n & ~3;
      let k = 0;
      for (; k < n4; k += 4) {
        const v = v128.load(tmp + ((<usize>k) << 2));
        const m = f32x4.ge(v, t4);
        up4 = f32x4.add(up4, v128.and(v, m));
        down4 = f32x4.add(down4, v128.andnot(v, m));
        cnt4 = i32x4.sub(cnt4, m);
      }
      let upSum: f64 = <f64>hsum(up4);
      let downSum: f64 = <f64>hsum(down4);
      let ups =
        i32x4.extract_lane(cnt4, 0) +
        i32x4.extract_lane(cnt4, 1) +
        i32x4.extract_lane(cnt4, 2) +
        i32x4.extract_lane(cnt4, 3);
      for (; k < n; k++) {
        const v = load<f32>(tmp + ((<usize>k) << 2));
        if (v >= threshold) {
          upSum += <f64>v;
          ups++;
        } else downSum += <f64>v;
      }
      upper = <f32>(upSum / <f64>max(ups, 1));
      lower = <f32>(downSum / <f64>max(n - ups, 1));
    }
  }
  const step: f32 = upper - lower;
  store<f32>(levels, lower);
  store<f32>(levels, step, 4);
  memory.fill(bits, 0, <usize>bitBytes);
  let count = 0;
  const t4 = f32x4.splat(threshold);
  if (P == 1) {
    const c8 = C & ~7;
    let c = 0;
    for (; c < c8; c += 8) {
      const o = tmp + ((<usize>c) << 2);
      const lo = i32x4.bitmask(f32x4.ge(v128.load(o), t4));
      const hi = i32x4.bitmask(f32x4.ge(v128.load(o, 16), t4));
      const byte = lo | (hi << 4);
      store<u8>(bits + ((<usize>c) >> 3), byte);
      count += popcnt<i32>(byte);
    }
    for (; c < C; c++) {
      if (load<f32>(tmp + ((<usize>c) << 2)) >= threshold) {
        const o = bits + ((<usize>c) >> 3);
        store<u8>(o, (<i32>load<u8>(o)) | ((<i32>1) << (c & 7)));
        count++;
      }
    }
  } else {
    const p4 = P & ~3;
    const cs = <usize>chunkBytes;
    for (let c = 0; c < C; c++) {
      const tc = tmp + ((<usize>c * <usize>P) << 2);
      const cb = bits + ((<usize>c) >> 3);
      const sh = c & 7;
      let p = 0;
      for (; p < p4; p += 4) {
        const m = i32x4.bitmask(f32x4.ge(v128.load(tc + ((<usize>p) << 2)), t4));
        count += popcnt<i32>(m);
        const o = cb + <usize>p * cs;
        store<u8>(o, (<i32>load<u8>(o)) | ((m & 1) << sh));
        store<u8>(o + cs, (<i32>load<u8>(o + cs)) | (((m >> 1) & 1) << sh));
        store<u8>(o + 2 * cs, (<i32>load<u8>(o + 2 * cs)) | (((m >> 2) & 1) << sh));
        store<u8>(o + 3 * cs, (<i32>load<u8>(o + 3 * cs)) | (((m >> 3) & 1) << sh));
      }
      for (; p < P; p++) {
        const bit = <i32>(load<f32>(tc + ((<usize>p) << 2)) >= threshold);
        count += bit;
        const o = cb + <usize>p * cs;
        store<u8>(o, (<i32>load<u8>(o)) | (bit << sh));
      }
    }
  }
  if (q != 0) {
    const hi: f32 = lower + step;
    for (let k = 0; k < n; k++) {
      store<f32>(q + ((<usize>k) << 2), load<f32>(tmp + ((<usize>k) << 2)) >= threshold ? hi : lower);
    }
  }
  return count;
}

/**
 * Input patches of a binarized sample for a K x K 'valid' convolution: row p = oy * OW + ox holds the K*K pixel chunks
 * (ky, kx) of `chunkBytes` each, zero-padded to `rowBytes`; apop[p] gets the row's popcount.
 */
export function im2colBits(
  bits: usize,
  H: i32,
  W: i32,
  chunkBytes: i32,
  K: i32,
  out: usize,
  rowBytes: i32,
  apop: usize,
): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  const used = K * K * chunkBytes;
  for (let oy = 0; oy < OH; oy++) {
    for (let ox = 0; ox < OW; ox++) {
      const p = oy * OW + ox;
      const dst = out + <usize>p * <usize>rowBytes;
      for (let ky = 0; ky < K; ky++) {
        const src = bits + <usize>((oy + ky) * W + ox) * <usize>chunkBytes;
        const d = dst + <usize>(ky * K * chunkBytes);
        const n = K * chunkBytes; // the K chunks of one kernel row are contiguous in the input row
        if ((n & 7) == 0) {
          for (let b = 0; b < n; b += 8) store<u64>(d + b, load<u64>(src + b));
        } else {
          for (let b = 0; b < n; b++) store<u8>(d + b, load<u8>(src + b));
        }
      }
      for (let b = used; b < rowBytes; b++) store<u8>(dst + b, 0);
      store<i32>(apop + ((<usize>p) << 2), popcount(dst, rowBytes));
    }
  }
}

/**
 * Float conv of one sample x [C, H, W] (stride 1, no padding) with float rows w [rows, C * K * K] in (c, ky, kx) order,
 * straight from the input: four neighbouring outputs of four filters per step (one input load feeds four independent
 * sums), each tap's weight splatted, so no patches are copied and no horizontal sums are taken. Output y
 * [rows, OH, OW] (NCHW). Each output sums its taps in (c, ky, kx) order, one float32 add at a time.
 */
export function f32Conv(
  x: usize,
  C: i32,
  H: i32,
  W: i32,
  K: i32,
  w: usize,
  rows: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  y: usize,
): void {
  const OH = H - K + 1;
  const OW = W - K + 1;
  // Steps of four outputs along a row; a row whose width is not a multiple of four ends with a step overlapping the one
  // before it (the overlapped outputs come out the same), and rows narrower than four go one output at a time.
  const full = OW >> 2;
  const steps = OW < 4 ? 0 : full + (OW & 3 ? 1 : 0);
  const len = C * K * K;
  const wStep = (<usize>len) << 2;
  const plane = (<usize>(OH * OW)) << 2;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const wr = w + <usize>r * wStep;
    const yr = y + <usize>r * plane;
    for (let oy = 0; oy < OH; oy++) {
      for (let step = 0; step < steps; step++) {
        const ox = step < full ? step << 2 : OW - 4;
        let a0 = f32x4.splat(0);
        let a1 = f32x4.splat(0);
        let a2 = f32x4.splat(0);
        let a3 = f32x4.splat(0);
        let t = wr;
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < K; ky++) {
            const src = x + ((<usize>((c * H + oy + ky) * W + ox)) << 2);
            for (let kx = 0; kx < K; kx++) {
              const v = v128.load(src + ((<usize>kx) << 2));
              a0 = f32x4.add(a0, f32x4.mul(v, f32x4.splat(load<f32>(t))));
              a1 = f32x4.add(a1, f32x4.mul(v, f32x4.splat(load<f32>(t + wStep))));
              a2 = f32x4.add(a2, f32x4.mul(v, f32x4.splat(load<f32>(t + 2 * wStep))));
              a3 = f32x4.add(a3, f32x4.mul(v, f32x4.splat(load<f32>(t + 3 * wStep))));
              t += 4;
            }
          }
        }
        const at = yr + ((<usize>(oy * OW + ox)) << 2);
        storeConv(a0, at, r, scale, shift, relu);
        storeConv(a1, at + plane, r + 1, scale, shift, relu);
        storeConv(a2, at + 2 * plane, r + 2, scale, shift, relu);
        storeConv(a3, at + 3 * plane, r + 3, scale, shift, relu);
      }
      if (OW < 4) {
        for (let j = 0; j < 4; j++) {
          convTail(x, C, H, W, K, wr + <usize>j * wStep, r + j, oy, OW, scale, shift, relu, yr + <usize>j * plane);
        }
      }
    }
  }
  for (; r < rows; r++) {
    const wr = w + <usize>r * wStep;
    const yr = y + <usize>r * plane;
    for (let oy = 0; oy < OH; oy++) {
      for (let step = 0; step < steps; step++) {
        const ox = step < full ? step << 2 : OW - 4;
        let a = f32x4.splat(0);
        let t = wr;
        for (let c = 0; c < C; c++) {
          for (let ky = 0; ky < K; ky++) {
            const src = x + ((<usize>((c * H + oy + ky) * W + ox)) << 2);
            for (let kx = 0; kx < K; kx++) {
              a = f32x4.add(a, f32x4.mul(v128.load(src + ((<usize>kx) << 2)), f32x4.splat(load<f32>(t))));
              t += 4;
            }
          }
        }
        storeConv(a, yr + ((<usize>(oy * OW + ox)) << 2), r, scale, shift, relu);
      }
      if (OW < 4) convTail(x, C, H, W, K, wr, r, oy, OW, scale, shift, relu, yr);
    }
  }
}

/** Four outputs of filter r: the epilogue in SIMD (pmax(0, v) is v > 0 ? v : 0, so NaN and -0 become 0 as there). */
function storeConv(acc: v128, at: usize, r: i32, scale: usize, shift: usize, relu: i32): void {
  if (scale != 0) acc = f32x4.mul(acc, f32x4.splat(load<f32>(scale + ((<usize>r) << 2))));
  acc = f32x4.add(acc, f32x4.splat(load<f32>(shift + ((<usize>r) << 2))));
  if (relu != 0) acc = f32x4.pmax(f32x4.splat(0), acc);
  v128.store(at, acc);
}

/** The outputs of output row oy of filter r, one at a time (rows narrower than a step of four). */
function convTail(
  x: usize,
  C: i32,
  H: i32,
  W: i32,
  K: i32,
  wr: usize,
  r: i32,
  oy: i32,
  OW: i32,
  scale: usize,
  shift: usize,
  relu: i32,
  yr: usize,
): void {
  for (let ox = 0; ox < OW; ox++) {
    let s: f32 = 0;
    let t = wr;
    for (let c = 0; c < C; c++) {
      for (let ky = 0; ky < K; ky++) {
        const src = x + ((<usize>((c * H + oy + ky) * W + ox)) << 2);
        for (let kx = 0; kx < K; kx++) {
          s += load<f32>(src + ((<usize>kx) << 2)) * load<f32>(t);
          t += 4;
        }
      }
    }
    store<f32>(yr + ((<usize>(oy * OW + ox)) << 2), epilogue(s, r, scale, shift, relu));
  }
}

/**
 * Max pooling of `planes` planes [H, W] by size x size windows with the same stride (floor); a NaN in a window gives
 * NaN. 2 x 2 windows, the common case, take four outputs per step in SIMD.
 */
export function maxPool(x: usize, planes: i32, H: i32, W: i32, size: i32, y: usize): void {
  const OH = H / size;
  const OW = W / size;
  const ow4 = size == 2 ? OW & ~3 : 0;
  for (let pl = 0; pl < planes; pl++) {
    const xp = x + ((<usize>pl * <usize>(H * W)) << 2);
    const yp = y + ((<usize>pl * <usize>(OH * OW)) << 2);
    for (let oy = 0; oy < OH; oy++) {
      const r0 = xp + ((<usize>(oy * size * W)) << 2);
      const yr = yp + ((<usize>(oy * OW)) << 2);
      let ox = 0;
      for (; ox < ow4; ox += 4) {
        const p0 = r0 + ((<usize>ox) << 3);
        const p1 = p0 + ((<usize>W) << 2);
        const a = f32x4.max(v128.load(p0), v128.load(p1));
        const b = f32x4.max(v128.load(p0, 16), v128.load(p1, 16));
        v128.store(
          yr + ((<usize>ox) << 2),
          f32x4.max(i32x4.shuffle(a, b, 0, 2, 4, 6), i32x4.shuffle(a, b, 1, 3, 5, 7)),
        );
      }
      for (; ox < OW; ox++) {
        let m = load<f32>(r0 + ((<usize>(ox * size)) << 2));
        for (let ky = 0; ky < size; ky++) {
          for (let kx = 0; kx < size; kx++) {
            const v = load<f32>(r0 + ((<usize>(ky * W + ox * size + kx)) << 2));
            if (v > m || v != v) m = v;
          }
        }
        store<f32>(yr + ((<usize>ox) << 2), m);
      }
    }
  }
}
