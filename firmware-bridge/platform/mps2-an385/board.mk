# board.mk: Arm MPS2 AN385 (Cortex-M3, 25 MHz) as QEMU's mps2-an385 models it.
BOARD_CC ?= arm-none-eabi-gcc
BOARD_SIZE ?= arm-none-eabi-size
BOARD_CFLAGS = -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
# Memory the linker enforces (cmp analyze reads these lines): flash is QEMU's 4 MiB code SSRAM; RAM is budgeted like
# a Cortex-M3/M4 class part (STM32F4: 192-256 KiB), not the machine's 4 MiB, so an image that needs more fails to link.
FLASH_BYTES ?= 4194304
RAM_BYTES ?= 262144
BOARD_LDFLAGS = -nostartfiles --specs=nano.specs --specs=nosys.specs -T platform/mps2-an385/linker.ld \
                -Wl,--defsym=__cmp_flash_bytes=$(FLASH_BYTES) -Wl,--defsym=__cmp_ram_bytes=$(RAM_BYTES)
BOARD_SRCS = platform/mps2-an385/startup.c platform/mps2-an385/uart.c platform/mps2-an385/clock.c
# The arena for model + activations: a realistic budget for a Cortex-M3/M4 class part, not the board's 4 MiB.
ARENA_BYTES ?= 131072
