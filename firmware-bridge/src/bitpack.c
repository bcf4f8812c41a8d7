/* bitpack.c: packed-row helpers of the cmp bit format (see include/cmp/bitpack.h). */
#include "cmp/bitpack.h"

#include <string.h>

uint32_t cmp_popcount_row(const uint8_t *row, uint32_t bytes) {
  uint32_t count = 0u;
  uint32_t i = 0u;
  for (; i + 4u <= bytes; i += 4u) {
    uint32_t w;
    memcpy(&w, row + i, 4u); /* rows are byte aligned: never dereference them as words */
    count += cmp_popcount32(w);
  }
  for (; i < bytes; i++) count += cmp_popcount32(row[i]);
  return count;
}

uint32_t cmp_popcount_and(const uint8_t *a, const uint8_t *b, uint32_t bytes) {
  uint32_t count = 0u;
  uint32_t i = 0u;
  for (; i + 4u <= bytes; i += 4u) {
    uint32_t wa;
    uint32_t wb;
    memcpy(&wa, a + i, 4u);
    memcpy(&wb, b + i, 4u);
    count += cmp_popcount32(wa & wb);
  }
  for (; i < bytes; i++) count += cmp_popcount32((uint32_t)(a[i] & b[i]));
  return count;
}

void cmp_pack_bits(const uint8_t *bits01, uint32_t rows, uint32_t row_length, uint8_t *packed) {
  uint32_t row_bytes = cmp_packed_row_bytes(row_length);
  memset(packed, 0, (size_t)rows * row_bytes);
  for (uint32_t r = 0u; r < rows; r++) {
    for (uint32_t k = 0u; k < row_length; k++) {
      if (bits01[(size_t)r * row_length + k] != 0u) cmp_bit_set(packed + (size_t)r * row_bytes, k);
    }
  }
}

void cmp_unpack_bits(const uint8_t *packed, uint32_t rows, uint32_t row_length, uint8_t *bits01) {
  uint32_t row_bytes = cmp_packed_row_bytes(row_length);
  for (uint32_t r = 0u; r < rows; r++) {
    for (uint32_t k = 0u; k < row_length; k++) {
      bits01[(size_t)r * row_length + k] = (uint8_t)cmp_bit_get(packed + (size_t)r * row_bytes, k);
    }
  }
}

float cmp_f16_to_f32(uint16_t h) {
  uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
  uint32_t exp = ((uint32_t)h >> 10) & 0x1Fu;
  uint32_t mant = (uint32_t)h & 0x3FFu;
  uint32_t bits;
  if (exp == 0u) {
    if (mant == 0u) {
      bits = sign;
    } else { /* subnormal: normalise */
      exp = 127u - 15u + 1u;
      while ((mant & 0x400u) == 0u) {
        mant <<= 1;
        exp--;
      }
      bits = sign | (exp << 23) | ((mant & 0x3FFu) << 13);
    }
  } else if (exp == 0x1Fu) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127u - 15u) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, 4u);
  return f;
}

void cmp_expand_binary(const uint8_t *packed, uint32_t rows, uint32_t row_length, const uint16_t *upper16,
                       const uint16_t *lower16, float *out) {
  uint32_t row_bytes = cmp_packed_row_bytes(row_length);
  for (uint32_t r = 0u; r < rows; r++) {
    float lo = cmp_f16_to_f32(lower16[r]);
    float step = cmp_f16_to_f32(upper16[r]) - lo;
    for (uint32_t k = 0u; k < row_length; k++) {
      out[(size_t)r * row_length + k] = lo + step * (float)cmp_bit_get(packed + (size_t)r * row_bytes, k);
    }
  }
}
