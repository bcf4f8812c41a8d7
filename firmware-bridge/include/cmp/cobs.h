/* cmp/cobs.h: Consistent Overhead Byte Stuffing, the framing of the serial link (0x00 ends a frame). */
#ifndef CMP_COBS_H
#define CMP_COBS_H

#include <stddef.h>
#include <stdint.h>

#include "cmp/status.h"

/** Most bytes COBS adds to `n` bytes: one code byte per 254 data bytes, plus one. */
static inline uint32_t cmp_cobs_max_encoded(uint32_t n) { return n + n / 254u + 1u; }

/** Encodes `n` bytes (no delimiter is written); CMP_ERR_RANGE when `cap` is too small. */
cmp_status_t cmp_cobs_encode(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t cap, uint32_t *out_n);

/** Decodes one frame without its delimiter; `out` may equal `in`. CMP_ERR_FRAME on a 0 byte or a truncated block. */
cmp_status_t cmp_cobs_decode(const uint8_t *in, uint32_t n, uint8_t *out, uint32_t cap, uint32_t *out_n);

#endif /* CMP_COBS_H */
