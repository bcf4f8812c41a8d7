/* arena.c: bump allocation in the caller's static arena. */
#include "cmp/arena.h"

cmp_status_t cmp_arena_init(cmp_arena_t *arena, void *base, uint32_t size) {
  if (arena == NULL || base == NULL || size == 0u) return CMP_ERR_ARG;
  uintptr_t start = ((uintptr_t)base + 3u) & ~(uintptr_t)3u;
  uint32_t skipped = (uint32_t)(start - (uintptr_t)base);
  if (skipped >= size) return CMP_ERR_ARENA;
  arena->base = (uint8_t *)start;
  arena->size = size - skipped;
  arena->used = 0u;
  return CMP_OK;
}

cmp_status_t cmp_arena_alloc(cmp_arena_t *arena, uint32_t bytes, uint32_t align, void **out) {
  if (arena == NULL || out == NULL || align == 0u || (align & (align - 1u)) != 0u) return CMP_ERR_ARG;
  uint32_t start = (arena->used + align - 1u) & ~(align - 1u);
  if (start > arena->size || bytes > arena->size - start) return CMP_ERR_ARENA;
  *out = arena->base + start;
  arena->used = start + bytes;
  return CMP_OK;
}
