/* main.c: the firmware: a static arena, the link over the board's UART, and a byte loop. Board-independent. */
#include <stdint.h>

#include "cmp/link.h"
#include "cmp/platform.h"

#ifndef CMP_ARENA_BYTES
#define CMP_ARENA_BYTES (128u * 1024u)
#endif

/** The one arena: uploaded model first, then the runtime's activations and scratch; a built-in model's workspace
 * only (MODEL.md, "Arena"). */
static uint8_t g_arena[CMP_ARENA_BYTES] __attribute__((aligned(8)));
static cmp_link_t g_link;

#ifdef CMP_BUILTIN_MODEL
/* The model compiled into the image (cmp firmware build --model writes this C array): constant data in flash, read
 * in place, so the arena holds only its workspace. */
extern const uint8_t cmp_builtin_model[];
extern const uint32_t cmp_builtin_model_bytes;
#endif

int main(void) {
  cmp_platform_init();
  cmp_link_io_t io = {
      .write = cmp_platform_write,
      .counter = cmp_platform_counter,
      .counter_hz = cmp_platform_counter_hz(),
      .counter_kind = cmp_platform_counter_kind(),
      .board = cmp_platform_board(),
  };
  if (cmp_link_init(&g_link, &io, g_arena, sizeof(g_arena)) != CMP_OK) {
    for (;;) {
    }
  }
#ifdef CMP_BUILTIN_MODEL
  /* A model that does not load leaves the image answering HELLO without one (CAPS says so) rather than hanging. */
  (void)cmp_link_load_builtin(&g_link, cmp_builtin_model, cmp_builtin_model_bytes);
#endif
  for (;;) cmp_link_feed(&g_link, cmp_platform_read_byte());
}
