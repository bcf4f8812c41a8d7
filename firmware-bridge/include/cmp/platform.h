/* cmp/platform.h: what a board provides (platform/<board>/): UART, counter, clock. A new board implements these. */
#ifndef CMP_PLATFORM_H
#define CMP_PLATFORM_H

#include <stdint.h>

/** Clocks, UART and counter up; called once from main before anything else. */
void cmp_platform_init(void);

/** Writes `n` bytes to the host UART, blocking until they are queued. */
void cmp_platform_write(const uint8_t *bytes, uint32_t n);

/** Blocks until the host UART has a byte and returns it. */
uint8_t cmp_platform_read_byte(void);

/** The free-running cycle/tick counter (wraps at 2^32). */
uint32_t cmp_platform_counter(void);

/** Counter ticks per second. */
uint32_t cmp_platform_counter_hz(void);

/** Which counter this board uses: CMP_COUNTER_SYSTICK or CMP_COUNTER_DWT (see protocol.h). */
uint8_t cmp_platform_counter_kind(void);

/** Board name reported in CAPS. */
const char *cmp_platform_board(void);

#endif /* CMP_PLATFORM_H */
