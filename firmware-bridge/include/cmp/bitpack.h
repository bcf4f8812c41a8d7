/* cmp/bitpack.h: the one written bit format of cmp (shared with src/core/bitpack.ts) and packed-row helpers. */
#ifndef CMP_BITPACK_H
#define CMP_BITPACK_H

#include <stddef.h>
#include <stdint.h>

/*
 * CMP BIT FORMAT, version 1 (the same block stands in firmware-bridge/include/cmp/bitpack.h)
 *
 * A binary tensor is viewed as a matrix [rows, rowLength]:
 *   - dense weights: rows = output units, rowLength = input features (ONNX MatMul weight transposed, i.e. [out, in]);
 *   - conv weights:  rows = output filters, rowLength = inChannels * kernelH * kernelW, in ONNX OIHW order.
 * Bits:
 *   - bit k of a row lives in byte (k >> 3) of that row, at bit position (k & 7): least significant bit first;
 *   - word size: 8 bits. Each row starts on a byte boundary: a row takes ceil(rowLength / 8) bytes and the
 *     padding bits at its end are 0. Kernels that want 32-bit words repack rows when they load a model;
 *   - rows follow each other with no gap: the packed tensor is uint8 [rows, ceil(rowLength / 8)].
 * Sign convention: a set bit (1) means the upper level, a clear bit (0) the lower level. For symmetric (XNOR-Net)
 *   binarization the upper level is +alpha and the lower -alpha, so 1 = +1 and 0 = -1 (the opposite of Larq).
 * Levels: two per row, `upper` (alpha) and `lower` (beta), stored as IEEE float16 in two arrays of length rows.
 *   The represented weight is w = lower + (upper - lower) * bit. With x the layer input, a row's dot product is
 *   (upper - lower) * sum(x where bit = 1) + lower * sum(x): one masked sum (a popcount when x is binary too) plus a
 *   per-row scale and offset.
 */

/** Bytes one packed row of `row_length` bits takes: ceil(row_length / 8). */
static inline uint32_t cmp_packed_row_bytes(uint32_t row_length) { return (row_length + 7u) >> 3; }

/** Bit k (0 or 1) of a packed row. */
static inline uint32_t cmp_bit_get(const uint8_t *row, uint32_t k) { return (uint32_t)(row[k >> 3] >> (k & 7u)) & 1u; }

/** Sets bit k of a packed row (the row must start zeroed). */
static inline void cmp_bit_set(uint8_t *row, uint32_t k) { row[k >> 3] = (uint8_t)(row[k >> 3] | (1u << (k & 7u))); }

/** Number of set bits in a 32-bit word (SWAR: Cortex-M3 has no popcount instruction). */
static inline uint32_t cmp_popcount32(uint32_t v) {
  v = v - ((v >> 1) & 0x55555555u);
  v = (v & 0x33333333u) + ((v >> 2) & 0x33333333u);
  v = (v + (v >> 4)) & 0x0F0F0F0Fu;
  return (v * 0x01010101u) >> 24;
}

/** Set bits in `bytes` bytes of a packed row (rows are byte aligned, so words are read bytewise). */
uint32_t cmp_popcount_row(const uint8_t *row, uint32_t bytes);

/** Set bits in (a AND b) over `bytes` bytes: the popcount of two packed rows' agreement on "upper". */
uint32_t cmp_popcount_and(const uint8_t *a, const uint8_t *b, uint32_t bytes);

/** Packs a 0/1 matrix [rows, row_length] (one byte per bit, nonzero = 1) into the format above. */
void cmp_pack_bits(const uint8_t *bits01, uint32_t rows, uint32_t row_length, uint8_t *packed);

/** Unpacks the format above into a 0/1 matrix [rows, row_length]; padding bits are dropped. */
void cmp_unpack_bits(const uint8_t *packed, uint32_t rows, uint32_t row_length, uint8_t *bits01);

/** IEEE 754 half precision bits to float (the storage type of levels). */
float cmp_f16_to_f32(uint16_t h);

/** Expands packed rows and their float16 levels into weights [rows, row_length]: lower + (upper - lower) * bit. */
void cmp_expand_binary(const uint8_t *packed, uint32_t rows, uint32_t row_length, const uint16_t *upper16,
                       const uint16_t *lower16, float *out);

#endif /* CMP_BITPACK_H */
