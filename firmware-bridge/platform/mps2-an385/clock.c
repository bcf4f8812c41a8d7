/* clock.c: MPS2 AN385 clock (25 MHz) and the counter. QEMU models no DWT cycle counter (on QEMU 7.2, DWT_CTRL
 * and DWT_CYCCNT read 0 even with TRCENA and CYCCNTENA set), so this board counts with SysTick on the core clock,
 * extended to 32 bits by its wrap interrupt. Under QEMU the ticks follow the emulator's virtual clock (host time
 * unless QEMU runs with -icount), so they measure time, not instructions. */
#include <stdint.h>

#include "cmp/platform.h"
#include "cmp/protocol.h"

#define CORE_CLOCK_HZ 25000000u
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYSTICK_MAX 0x00FFFFFFu

void cmp_uart_init(uint32_t clock_hz);

static volatile uint32_t g_wraps;

void cmp_systick_handler(void) { g_wraps++; }

void cmp_platform_init(void) {
  cmp_uart_init(CORE_CLOCK_HZ);
  SYST_RVR = SYSTICK_MAX;
  SYST_CVR = 0u;
  SYST_CSR = 0x7u; /* core clock, wrap interrupt, enabled */
}

uint32_t cmp_platform_counter(void) {
  uint32_t hi;
  uint32_t lo;
  do { /* a wrap between the two reads changes g_wraps: read again */
    hi = g_wraps;
    lo = SYST_CVR;
  } while (hi != g_wraps);
  return (hi << 24) + (SYSTICK_MAX - lo);
}

uint32_t cmp_platform_counter_hz(void) { return CORE_CLOCK_HZ; }

uint8_t cmp_platform_counter_kind(void) { return CMP_COUNTER_SYSTICK; }

const char *cmp_platform_board(void) { return "mps2-an385"; }
