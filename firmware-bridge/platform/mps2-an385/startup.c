/* startup.c: MPS2 AN385 vector table and reset handler: copy .data, zero .bss, call main. */
#include <stdint.h>

extern uint32_t _data_load, _data_start, _data_end, _bss_start, _bss_end, _stack_top;
extern int main(void);
extern void cmp_systick_handler(void);

void cmp_reset_handler(void);

/** Faults park the core; a debugger (or QEMU -d) shows where. */
static void cmp_fault_handler(void) {
  for (;;) {
  }
}

__attribute__((section(".isr_vector"), used)) static const void *const g_vectors[16] = {
    &_stack_top,         /* initial SP */
    cmp_reset_handler,   /* reset */
    cmp_fault_handler,   /* NMI */
    cmp_fault_handler,   /* HardFault */
    cmp_fault_handler,   /* MemManage */
    cmp_fault_handler,   /* BusFault */
    cmp_fault_handler,   /* UsageFault */
    0, 0, 0, 0,          /* reserved */
    cmp_fault_handler,   /* SVCall */
    cmp_fault_handler,   /* DebugMonitor */
    0,                   /* reserved */
    cmp_fault_handler,   /* PendSV */
    cmp_systick_handler, /* SysTick */
};

void cmp_reset_handler(void) {
  uint32_t *src = &_data_load;
  for (uint32_t *dst = &_data_start; dst < &_data_end;) *dst++ = *src++;
  for (uint32_t *dst = &_bss_start; dst < &_bss_end;) *dst++ = 0u;
  (void)main();
  for (;;) {
  }
}
