/* main.c: the firmware: a static arena, the link over the board's UART, and a byte loop. Board-independent. */
#include <stdint.h>

#include "cmp/link.h"
#include "cmp/platform.h"

#ifndef CMP_ARENA_BYTES
#define CMP_ARENA_BYTES (128u * 1024u)
#endif

/** The one arena: uploaded model first, then the runtime's activations and scratch (MODEL.md, "Arena"). */
static uint8_t g_arena[CMP_ARENA_BYTES] __attribute__((aligned(8)));
static cmp_link_t g_link;

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
  for (;;) cmp_link_feed(&g_link, cmp_platform_read_byte());
}
