/* cmp/kernels.h: the layer kernels (float and binary dense/conv, batch norm, ReLU, max pool, activation
 * binarization, softmax entropy, argmax). Activations are float32 in CHW order (ONNX NCHW without the batch). */
#ifndef CMP_KERNELS_H
#define CMP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "cmp/status.h"

/** A [channels, height, width] activation shape; dense activations are [features, 1, 1]. */
typedef struct {
  uint32_t channels;
  uint32_t height;
  uint32_t width;
} cmp_shape_t;

/** Elements of a shape. */
static inline uint32_t cmp_shape_count(cmp_shape_t s) { return s.channels * s.height * s.width; }

/** Binary weights in the cmp bit format: rows = output units or filters, float16 levels per row. */
typedef struct {
  const uint8_t *bits;    /**< uint8 [rows, cmp_packed_row_bytes(row_length)] */
  const uint16_t *upper;  /**< float16 [rows] */
  const uint16_t *lower;  /**< float16 [rows] */
  uint32_t rows;
  uint32_t row_length;
} cmp_binary_matrix_t;

/** A binarized activation: packed bits (same format as a weight row) and the sample's two levels. */
typedef struct {
  const uint8_t *bits;
  float upper;
  float lower;
  uint32_t length;
} cmp_binary_vector_t;

/** Float dense: y[r] = sum_k w[r, k] * x[k], w float32 [rows, row_length] (rows = output units). */
cmp_status_t cmp_dense_f32(const float *w, uint32_t rows, uint32_t row_length, const float *x, float *y);

/** int8 weights, symmetric per row (src/core/quantize.ts): y[r] = scale[r] * sum_k q[r][k] * x[k]. */
cmp_status_t cmp_dense_i8(const int8_t *q, const float *scale, uint32_t rows, uint32_t row_length, const float *x,
                          float *y);

/**
 * Binary weights, float input (the masked-sum path): y[r] = lower_r * sum(x) + (upper_r - lower_r) * sum(x where
 * bit = 1). Used for first layers fed with raw values and for layers whose inputs stay float.
 */
cmp_status_t cmp_dense_binary_f32(const cmp_binary_matrix_t *w, const float *x, float *y);

/**
 * Binary weights, binary input (the popcount path). With n = row_length, input levels (ux, lx), dx = ux - lx and
 * row levels (uw, lw), dw = uw - lw: y[r] = n*lx*lw + lx*dw*popcount(w_r) + lw*dx*popcount(x) +
 * dx*dw*popcount(w_r AND x), which equals the float dot product of the two-level values.
 */
cmp_status_t cmp_dense_binary_bin(const cmp_binary_matrix_t *w, const cmp_binary_vector_t *x, float *y);

/**
 * Float conv, 'valid', stride 1, square kernel: w float32 OIHW = [filters, channels * kernel * kernel]; y is
 * [filters, H - k + 1, W - k + 1]. `patch` is scratch of channels * kernel * kernel floats (im2col of one position).
 */
cmp_status_t cmp_conv_f32(const float *w, uint32_t filters, uint32_t kernel, cmp_shape_t in, const float *x, float *y,
                          float *patch);

/** int8 conv, float input: cmp_dense_i8 on each im2col patch. */
cmp_status_t cmp_conv_i8(const int8_t *q, const float *scale, uint32_t filters, uint32_t kernel, cmp_shape_t in,
                         const float *x, float *y, float *patch);

/** Binary conv with float input: the masked-sum path on each im2col patch. */
cmp_status_t cmp_conv_binary_f32(const cmp_binary_matrix_t *w, uint32_t kernel, cmp_shape_t in, const float *x,
                                 float *y, float *patch);

/**
 * Binary conv with binary input (bits of the whole [C, H, W] input, packed as one row): the popcount path on each
 * patch, gathered into `patch_bits` (scratch of cmp_packed_row_bytes(channels * kernel * kernel) bytes).
 */
cmp_status_t cmp_conv_binary_bin(const cmp_binary_matrix_t *w, uint32_t kernel, cmp_shape_t in,
                                 const cmp_binary_vector_t *x, float *y, uint8_t *patch_bits);

/** Folded batch norm or bias per channel: y = y * scale[c] + shift[c]; a NULL scale means all ones. */
void cmp_scale_shift(float *y, uint32_t channels, uint32_t positions, const float *scale, const float *shift);

/** y = max(y, 0). */
void cmp_relu(float *y, uint32_t count);

/** Max pooling with a size x size window and the same stride (floor): y is [C, H / size, W / size]. */
cmp_status_t cmp_maxpool(const float *x, cmp_shape_t in, uint32_t size, float *y);

/** Lloyd steps of DAB activation binarization after the first split (ACTIVATION_LLOYD_STEPS in src/core/spec.ts). */
#define CMP_ACTIVATION_LLOYD_STEPS 3u

/**
 * DAB activation binarization, as export writes it in ONNX: centre each position across `channels` (in place:
 * x becomes x - mean over channels), then split the whole sample at its mean and run CMP_ACTIVATION_LLOYD_STEPS
 * Lloyd steps (threshold = midpoint of the two level means). bits: packed [channels * positions] (bit = x >= t),
 * upper/lower: the means of the two sides (0 for an empty side).
 */
cmp_status_t cmp_binarize_dab(float *x, uint32_t channels, uint32_t positions, uint8_t *bits, float *upper,
                              float *lower);

/** XNOR activation binarization: bit = x >= 0, upper = mean |x|, lower = -upper. */
cmp_status_t cmp_binarize_xnor(const float *x, uint32_t count, uint8_t *bits, float *upper, float *lower);

/** Replaces x by the two-level values of its bits: x[k] = lower + (upper - lower) * bit k. */
void cmp_dequantize(const uint8_t *bits, uint32_t count, float upper, float lower, float *x);

/** Entropy of softmax(logits) in nats, computed stably from the max-shifted logits. */
float cmp_softmax_entropy(const float *logits, uint32_t count);

/** Index of the largest value (the first one on ties, as numpy and the host's argmax). */
uint32_t cmp_argmax(const float *x, uint32_t count);

#endif /* CMP_KERNELS_H */
