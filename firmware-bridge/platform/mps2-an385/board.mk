# board.mk: Arm MPS2 AN385 (Cortex-M3, 25 MHz) as QEMU's mps2-an385 models it.
BOARD_CC ?= arm-none-eabi-gcc
BOARD_SIZE ?= arm-none-eabi-size
BOARD_CFLAGS = -mcpu=cortex-m3 -mthumb -mfloat-abi=soft
BOARD_LDFLAGS = -nostartfiles --specs=nano.specs --specs=nosys.specs -T platform/mps2-an385/linker.ld
BOARD_SRCS = platform/mps2-an385/startup.c platform/mps2-an385/uart.c platform/mps2-an385/clock.c
# The arena for model + activations: a realistic budget for a Cortex-M3/M4 class part, not the board's 4 MiB.
ARENA_BYTES ?= 131072
