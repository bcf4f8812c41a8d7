/* cmp/arena.h: the static arena the caller owns; the firmware never calls malloc. */
#ifndef CMP_ARENA_H
#define CMP_ARENA_H

#include <stddef.h>
#include <stdint.h>

#include "cmp/status.h"

/** A bump allocator over memory the caller owns (usually a static array). */
typedef struct {
  uint8_t *base;
  uint32_t size;
  uint32_t used;
} cmp_arena_t;

/** Wraps `size` bytes at `base` (aligned to 4 bytes). */
cmp_status_t cmp_arena_init(cmp_arena_t *arena, void *base, uint32_t size);

/** Takes `bytes` bytes aligned to `align` (a power of two); CMP_ERR_ARENA when they do not fit. */
cmp_status_t cmp_arena_alloc(cmp_arena_t *arena, uint32_t bytes, uint32_t align, void **out);

/** Rounds `bytes` up to a multiple of 4: the unit every arena region is laid out in. */
static inline uint32_t cmp_align4(uint32_t bytes) { return (bytes + 3u) & ~3u; }

#endif /* CMP_ARENA_H */
