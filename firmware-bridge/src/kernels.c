/* kernels.c: reference-exact layer kernels; loops trust their arguments (validated once when a model loads). */
#include "cmp/kernels.h"

#include <math.h>
#include <string.h>

#include "cmp/bitpack.h"

/** Mask of the valid bits in the last byte of a row of `row_length` bits (0xFF when the row fills it). */
static uint8_t last_byte_mask(uint32_t row_length) {
  uint32_t rem = row_length & 7u;
  return (uint8_t)(rem == 0u ? 0xFFu : (1u << rem) - 1u);
}

/** sum(x[k] where bit k of row is set), walking set bits only. */
static float masked_sum(const uint8_t *row, uint32_t row_length, const float *x) {
  uint32_t bytes = cmp_packed_row_bytes(row_length);
  uint8_t last = last_byte_mask(row_length);
  float sum = 0.0f;
  for (uint32_t i = 0u; i < bytes; i++) {
    uint32_t b = row[i];
    if (i + 1u == bytes) b &= last;
    const float *xs = x + (i << 3);
    while (b != 0u) {
      uint32_t k = (uint32_t)__builtin_ctz(b);
      sum += xs[k];
      b &= b - 1u;
    }
  }
  return sum;
}

static float sum_f32(const float *x, uint32_t count) {
  float sum = 0.0f;
  for (uint32_t k = 0u; k < count; k++) sum += x[k];
  return sum;
}

cmp_status_t cmp_dense_f32(const float *w, uint32_t rows, uint32_t row_length, const float *x, float *y) {
  if (w == NULL || x == NULL || y == NULL || rows == 0u || row_length == 0u) return CMP_ERR_ARG;
  for (uint32_t r = 0u; r < rows; r++) {
    const float *wr = w + (size_t)r * row_length;
    float acc = 0.0f;
    for (uint32_t k = 0u; k < row_length; k++) acc += wr[k] * x[k];
    y[r] = acc;
  }
  return CMP_OK;
}

cmp_status_t cmp_dense_i8(const int8_t *q, const float *scale, uint32_t rows, uint32_t row_length, const float *x,
                          float *y) {
  if (q == NULL || scale == NULL || x == NULL || y == NULL || rows == 0u || row_length == 0u) return CMP_ERR_ARG;
  for (uint32_t r = 0u; r < rows; r++) {
    const int8_t *qr = q + (size_t)r * row_length;
    float acc = 0.0f;
    for (uint32_t k = 0u; k < row_length; k++) acc += (float)qr[k] * x[k];
    y[r] = acc * scale[r];
  }
  return CMP_OK;
}

static cmp_status_t check_binary(const cmp_binary_matrix_t *w) {
  if (w == NULL || w->bits == NULL || w->upper == NULL || w->lower == NULL || w->rows == 0u || w->row_length == 0u) {
    return CMP_ERR_ARG;
  }
  return CMP_OK;
}

/** The masked-sum dot products of every row with x, given sum(x). */
static void binary_rows_f32(const cmp_binary_matrix_t *w, const float *x, float x_sum, float *y, uint32_t y_stride) {
  uint32_t row_bytes = cmp_packed_row_bytes(w->row_length);
  for (uint32_t r = 0u; r < w->rows; r++) {
    float lo = cmp_f16_to_f32(w->lower[r]);
    float step = cmp_f16_to_f32(w->upper[r]) - lo;
    float on = masked_sum(w->bits + (size_t)r * row_bytes, w->row_length, x);
    y[(size_t)r * y_stride] = lo * x_sum + step * on;
  }
}

cmp_status_t cmp_dense_binary_f32(const cmp_binary_matrix_t *w, const float *x, float *y) {
  cmp_status_t s = check_binary(w);
  if (s != CMP_OK) return s;
  if (x == NULL || y == NULL) return CMP_ERR_ARG;
  binary_rows_f32(w, x, sum_f32(x, w->row_length), y, 1u);
  return CMP_OK;
}

/** The popcount dot products of every row with a binary x whose packed bits are `xbits` (popcount px). */
static void binary_rows_bin(const cmp_binary_matrix_t *w, const uint8_t *xbits, uint32_t px, float xu, float xl,
                            float *y, uint32_t y_stride) {
  uint32_t row_bytes = cmp_packed_row_bytes(w->row_length);
  float n = (float)w->row_length;
  float dx = xu - xl;
  for (uint32_t r = 0u; r < w->rows; r++) {
    const uint8_t *row = w->bits + (size_t)r * row_bytes;
    float lw = cmp_f16_to_f32(w->lower[r]);
    float dw = cmp_f16_to_f32(w->upper[r]) - lw;
    float pw = (float)cmp_popcount_row(row, row_bytes);
    float pa = (float)cmp_popcount_and(row, xbits, row_bytes);
    y[(size_t)r * y_stride] = n * xl * lw + xl * dw * pw + lw * dx * (float)px + dx * dw * pa;
  }
}

cmp_status_t cmp_dense_binary_bin(const cmp_binary_matrix_t *w, const cmp_binary_vector_t *x, float *y) {
  cmp_status_t s = check_binary(w);
  if (s != CMP_OK) return s;
  if (x == NULL || x->bits == NULL || y == NULL || x->length != w->row_length) return CMP_ERR_ARG;
  uint32_t px = cmp_popcount_row(x->bits, cmp_packed_row_bytes(x->length));
  binary_rows_bin(w, x->bits, px, x->upper, x->lower, y, 1u);
  return CMP_OK;
}

static cmp_status_t check_conv(uint32_t kernel, cmp_shape_t in, const void *x, const void *y, const void *scratch) {
  if (x == NULL || y == NULL || scratch == NULL || kernel == 0u || in.channels == 0u) return CMP_ERR_ARG;
  if (in.height < kernel || in.width < kernel) return CMP_ERR_ARG;
  return CMP_OK;
}

/** im2col of one output position: patch[(c * k + ky) * k + kx] = x[c, oy + ky, ox + kx] (OIHW row order). */
static void gather_patch(const float *x, cmp_shape_t in, uint32_t kernel, uint32_t oy, uint32_t ox, float *patch) {
  uint32_t i = 0u;
  for (uint32_t c = 0u; c < in.channels; c++) {
    for (uint32_t ky = 0u; ky < kernel; ky++) {
      const float *src = x + ((size_t)c * in.height + oy + ky) * in.width + ox;
      for (uint32_t kx = 0u; kx < kernel; kx++) patch[i++] = src[kx];
    }
  }
}

cmp_status_t cmp_conv_f32(const float *w, uint32_t filters, uint32_t kernel, cmp_shape_t in, const float *x, float *y,
                          float *patch) {
  cmp_status_t s = check_conv(kernel, in, x, y, patch);
  if (s != CMP_OK) return s;
  if (w == NULL || filters == 0u) return CMP_ERR_ARG;
  uint32_t oh = in.height - kernel + 1u;
  uint32_t ow = in.width - kernel + 1u;
  uint32_t row_length = in.channels * kernel * kernel;
  for (uint32_t oy = 0u; oy < oh; oy++) {
    for (uint32_t ox = 0u; ox < ow; ox++) {
      gather_patch(x, in, kernel, oy, ox, patch);
      for (uint32_t f = 0u; f < filters; f++) {
        const float *wf = w + (size_t)f * row_length;
        float acc = 0.0f;
        for (uint32_t k = 0u; k < row_length; k++) acc += wf[k] * patch[k];
        y[((size_t)f * oh + oy) * ow + ox] = acc;
      }
    }
  }
  return CMP_OK;
}

cmp_status_t cmp_conv_i8(const int8_t *q, const float *scale, uint32_t filters, uint32_t kernel, cmp_shape_t in,
                         const float *x, float *y, float *patch) {
  cmp_status_t s = check_conv(kernel, in, x, y, patch);
  if (s != CMP_OK) return s;
  if (q == NULL || scale == NULL || filters == 0u) return CMP_ERR_ARG;
  uint32_t oh = in.height - kernel + 1u;
  uint32_t ow = in.width - kernel + 1u;
  uint32_t row_length = in.channels * kernel * kernel;
  for (uint32_t oy = 0u; oy < oh; oy++) {
    for (uint32_t ox = 0u; ox < ow; ox++) {
      gather_patch(x, in, kernel, oy, ox, patch);
      for (uint32_t f = 0u; f < filters; f++) {
        const int8_t *qf = q + (size_t)f * row_length;
        float acc = 0.0f;
        for (uint32_t k = 0u; k < row_length; k++) acc += (float)qf[k] * patch[k];
        y[((size_t)f * oh + oy) * ow + ox] = acc * scale[f];
      }
    }
  }
  return CMP_OK;
}

cmp_status_t cmp_conv_binary_f32(const cmp_binary_matrix_t *w, uint32_t kernel, cmp_shape_t in, const float *x,
                                 float *y, float *patch) {
  cmp_status_t s = check_binary(w);
  if (s == CMP_OK) s = check_conv(kernel, in, x, y, patch);
  if (s != CMP_OK) return s;
  if (w->row_length != in.channels * kernel * kernel) return CMP_ERR_ARG;
  uint32_t oh = in.height - kernel + 1u;
  uint32_t ow = in.width - kernel + 1u;
  for (uint32_t oy = 0u; oy < oh; oy++) {
    for (uint32_t ox = 0u; ox < ow; ox++) {
      gather_patch(x, in, kernel, oy, ox, patch);
      binary_rows_f32(w, patch, sum_f32(patch, w->row_length), y + (size_t)oy * ow + ox, oh * ow);
    }
  }
  return CMP_OK;
}

cmp_status_t cmp_conv_binary_bin(const cmp_binary_matrix_t *w, uint32_t kernel, cmp_shape_t in,
                                 const cmp_binary_vector_t *x, float *y, uint8_t *patch_bits) {
  cmp_status_t s = check_binary(w);
  if (s == CMP_OK && x == NULL) s = CMP_ERR_ARG;
  if (s == CMP_OK) s = check_conv(kernel, in, x->bits, y, patch_bits);
  if (s != CMP_OK) return s;
  if (w->row_length != in.channels * kernel * kernel || x->length != cmp_shape_count(in)) return CMP_ERR_ARG;
  uint32_t oh = in.height - kernel + 1u;
  uint32_t ow = in.width - kernel + 1u;
  uint32_t patch_bytes = cmp_packed_row_bytes(w->row_length);
  for (uint32_t oy = 0u; oy < oh; oy++) {
    for (uint32_t ox = 0u; ox < ow; ox++) {
      memset(patch_bits, 0, patch_bytes);
      uint32_t i = 0u;
      for (uint32_t c = 0u; c < in.channels; c++) {
        for (uint32_t ky = 0u; ky < kernel; ky++) {
          uint32_t src = (c * in.height + oy + ky) * in.width + ox;
          for (uint32_t kx = 0u; kx < kernel; kx++, i++) {
            if (cmp_bit_get(x->bits, src + kx) != 0u) cmp_bit_set(patch_bits, i);
          }
        }
      }
      uint32_t px = cmp_popcount_row(patch_bits, patch_bytes);
      binary_rows_bin(w, patch_bits, px, x->upper, x->lower, y + (size_t)oy * ow + ox, oh * ow);
    }
  }
  return CMP_OK;
}

void cmp_scale_shift(float *y, uint32_t channels, uint32_t positions, const float *scale, const float *shift) {
  for (uint32_t c = 0u; c < channels; c++) {
    float *yc = y + (size_t)c * positions;
    float sc = scale != NULL ? scale[c] : 1.0f;
    float sh = shift != NULL ? shift[c] : 0.0f;
    if (scale != NULL) {
      for (uint32_t p = 0u; p < positions; p++) yc[p] = yc[p] * sc + sh;
    } else {
      for (uint32_t p = 0u; p < positions; p++) yc[p] = yc[p] + sh;
    }
  }
}

void cmp_relu(float *y, uint32_t count) {
  for (uint32_t k = 0u; k < count; k++) {
    if (!(y[k] > 0.0f)) y[k] = 0.0f;
  }
}

cmp_status_t cmp_maxpool(const float *x, cmp_shape_t in, uint32_t size, float *y) {
  if (x == NULL || y == NULL || size == 0u || in.height < size || in.width < size) return CMP_ERR_ARG;
  uint32_t oh = in.height / size;
  uint32_t ow = in.width / size;
  for (uint32_t c = 0u; c < in.channels; c++) {
    for (uint32_t oy = 0u; oy < oh; oy++) {
      for (uint32_t ox = 0u; ox < ow; ox++) {
        const float *src = x + ((size_t)c * in.height + oy * size) * in.width + ox * size;
        float best = src[0];
        for (uint32_t dy = 0u; dy < size; dy++) {
          for (uint32_t dx = 0u; dx < size; dx++) {
            float v = src[(size_t)dy * in.width + dx];
            if (v > best) best = v;
          }
        }
        y[((size_t)c * oh + oy) * ow + ox] = best;
      }
    }
  }
  return CMP_OK;
}

/** One split of DAB: bits = x >= t, and the means of both sides (ONNX: ReduceSum / Max(count, 1)). */
static void dab_split(const float *x, uint32_t count, float t, uint8_t *bits, float *upper, float *lower) {
  float up_sum = 0.0f;
  float down_sum = 0.0f;
  uint32_t ups = 0u;
  memset(bits, 0, cmp_packed_row_bytes(count));
  for (uint32_t k = 0u; k < count; k++) {
    if (x[k] >= t) {
      cmp_bit_set(bits, k);
      up_sum += x[k];
      ups++;
    } else {
      down_sum += x[k];
    }
  }
  uint32_t downs = count - ups;
  *upper = up_sum / (float)(ups > 0u ? ups : 1u);
  *lower = down_sum / (float)(downs > 0u ? downs : 1u);
}

cmp_status_t cmp_binarize_dab(float *x, uint32_t channels, uint32_t positions, uint8_t *bits, float *upper,
                              float *lower) {
  if (x == NULL || bits == NULL || upper == NULL || lower == NULL || channels == 0u || positions == 0u) {
    return CMP_ERR_ARG;
  }
  for (uint32_t p = 0u; p < positions; p++) {
    float sum = 0.0f;
    for (uint32_t c = 0u; c < channels; c++) sum += x[(size_t)c * positions + p];
    float mean = sum / (float)channels;
    for (uint32_t c = 0u; c < channels; c++) x[(size_t)c * positions + p] -= mean;
  }
  uint32_t count = channels * positions;
  float t = sum_f32(x, count) / (float)count;
  dab_split(x, count, t, bits, upper, lower);
  for (uint32_t step = 0u; step < CMP_ACTIVATION_LLOYD_STEPS; step++) {
    t = (*upper + *lower) / 2.0f;
    dab_split(x, count, t, bits, upper, lower);
  }
  return CMP_OK;
}

cmp_status_t cmp_binarize_xnor(const float *x, uint32_t count, uint8_t *bits, float *upper, float *lower) {
  if (x == NULL || bits == NULL || upper == NULL || lower == NULL || count == 0u) return CMP_ERR_ARG;
  float abs_sum = 0.0f;
  memset(bits, 0, cmp_packed_row_bytes(count));
  for (uint32_t k = 0u; k < count; k++) {
    if (x[k] >= 0.0f) cmp_bit_set(bits, k);
    abs_sum += fabsf(x[k]);
  }
  *upper = abs_sum / (float)count;
  *lower = -*upper;
  return CMP_OK;
}

void cmp_dequantize(const uint8_t *bits, uint32_t count, float upper, float lower, float *x) {
  float step = upper - lower;
  for (uint32_t k = 0u; k < count; k++) x[k] = lower + step * (float)cmp_bit_get(bits, k);
}

float cmp_softmax_entropy(const float *logits, uint32_t count) {
  if (logits == NULL || count == 0u) return 0.0f;
  float m = logits[cmp_argmax(logits, count)];
  float s = 0.0f;
  float weighted = 0.0f;
  for (uint32_t k = 0u; k < count; k++) {
    float d = logits[k] - m;
    float e = expf(d);
    s += e;
    weighted += e * d;
  }
  return logf(s) - weighted / s;
}

uint32_t cmp_argmax(const float *x, uint32_t count) {
  uint32_t best = 0u;
  for (uint32_t k = 1u; k < count; k++) {
    if (x[k] > x[best]) best = k;
  }
  return best;
}
