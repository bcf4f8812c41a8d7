/* cobs.c: COBS encoding and decoding (Cheshire and Baker, 1999). */
#include "cmp/cobs.h"

cmp_status_t cmp_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t cap, uint32_t *out_n) {
  if (in == NULL || out == NULL || out_n == NULL) return CMP_ERR_ARG;
  if (cap < cmp_cobs_max_encoded(n)) return CMP_ERR_RANGE;
  uint32_t code_at = 0u;
  uint32_t o = 1u;
  uint8_t code = 1u;
  for (uint32_t i = 0u; i < n; i++) {
    if (in[i] == 0u) {
      out[code_at] = code;
      code_at = o++;
      code = 1u;
    } else {
      out[o++] = in[i];
      if (++code == 0xFFu) {
        out[code_at] = code;
        code_at = o++;
        code = 1u;
      }
    }
  }
  out[code_at] = code;
  *out_n = o;
  return CMP_OK;
}

cmp_status_t cmp_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t cap, uint32_t *out_n) {
  if (in == NULL || out == NULL || out_n == NULL) return CMP_ERR_ARG;
  uint32_t i = 0u;
  uint32_t o = 0u;
  while (i < n) {
    uint8_t code = in[i++];
    if (code == 0u) return CMP_ERR_FRAME;
    for (uint8_t j = 1u; j < code; j++) {
      if (i >= n || in[i] == 0u || o >= cap) return CMP_ERR_FRAME;
      out[o++] = in[i++];
    }
    if (code != 0xFFu && i < n) {
      if (o >= cap) return CMP_ERR_FRAME;
      out[o++] = 0u;
    }
  }
  *out_n = o;
  return CMP_OK;
}
