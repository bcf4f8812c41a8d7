/* uart.c: CMSDK APB UART0 of the MPS2 (0x40004000), polled. QEMU holds input while RX is full, so polling loses
 * nothing there; a real board with a fast host would add an RX interrupt and ring buffer here. */
#include <stdint.h>

#include "cmp/platform.h"

#define UART0_BASE 0x40004000u
#define UART_DATA (*(volatile uint32_t *)(UART0_BASE + 0x00u))
#define UART_STATE (*(volatile uint32_t *)(UART0_BASE + 0x04u))
#define UART_CTRL (*(volatile uint32_t *)(UART0_BASE + 0x08u))
#define UART_BAUDDIV (*(volatile uint32_t *)(UART0_BASE + 0x10u))
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u

/** Enables TX and RX at 115200 baud from the 25 MHz peripheral clock (BAUDDIV must be >= 16). */
void cmp_uart_init(uint32_t clock_hz) {
  UART_BAUDDIV = clock_hz / 115200u;
  UART_CTRL = 0x3u;
}

void cmp_platform_write(const uint8_t *bytes, uint32_t n) {
  for (uint32_t i = 0u; i < n; i++) {
    while ((UART_STATE & UART_STATE_TX_FULL) != 0u) {
    }
    UART_DATA = bytes[i];
  }
}

uint8_t cmp_platform_read_byte(void) {
  while ((UART_STATE & UART_STATE_RX_FULL) == 0u) {
  }
  return (uint8_t)UART_DATA;
}
