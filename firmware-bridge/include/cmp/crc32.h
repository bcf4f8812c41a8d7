/* cmp/crc32.h: CRC-32 (IEEE 802.3, reflected, poly 0xEDB88320, init and final xor 0xFFFFFFFF) of frames and models. */
#ifndef CMP_CRC32_H
#define CMP_CRC32_H

#include <stddef.h>
#include <stdint.h>

/** CRC-32 of `n` bytes; crc32("123456789") = 0xCBF43926. */
uint32_t cmp_crc32(const uint8_t *data, uint32_t n);

/** Continues a CRC-32: start with crc = 0 and feed pieces in order; the result equals cmp_crc32 of the whole. */
uint32_t cmp_crc32_update(uint32_t crc, const uint8_t *data, uint32_t n);

#endif /* CMP_CRC32_H */
