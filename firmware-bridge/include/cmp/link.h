/* cmp/link.h: the device side of the serial protocol: byte in, frames out, model upload, inference, profile. */
#ifndef CMP_LINK_H
#define CMP_LINK_H

#include <stdint.h>

#include "cmp/arena.h"
#include "cmp/cobs.h"
#include "cmp/protocol.h"
#include "cmp/runtime.h"
#include "cmp/status.h"

#define CMP_LINK_BODY_BYTES (CMP_FRAME_HEADER_BYTES + CMP_MAX_PAYLOAD + CMP_FRAME_CRC_BYTES)
/** Encoded frame: COBS of the body plus a leading and a trailing 0x00. */
#define CMP_LINK_WIRE_BYTES (CMP_LINK_BODY_BYTES + CMP_LINK_BODY_BYTES / 254u + 3u)

/** What the link needs from the board. */
typedef struct {
  void (*write)(const uint8_t *bytes, uint32_t n); /**< blocking UART write */
  cmp_counter_fn counter;                          /**< the cycle/tick counter */
  uint32_t counter_hz;                             /**< counter ticks per second */
  uint8_t counter_kind;                            /**< CMP_COUNTER_* */
  const char *board;                               /**< board name for CAPS, e.g. "mps2-an385" */
} cmp_link_io_t;

/** Link counters, as PROFILE reports them. */
typedef struct {
  uint32_t frames_ok;
  uint32_t frames_bad;   /**< COBS or CRC failures (each answered with a NAK) */
  uint32_t duplicates;   /**< requests seen twice (answer resent from cache) */
  uint32_t bytes_rx;
  uint32_t bytes_tx;
  uint32_t inferences;
  uint32_t last_cycles;
  uint64_t total_cycles;
} cmp_link_counters_t;

/** The whole device state; one static instance. */
typedef struct {
  cmp_link_io_t io;
  cmp_arena_t arena;
  cmp_runtime_t rt;
  int model_ready;
  const uint8_t *builtin;  /**< the model compiled into the image (flash), or NULL */
  uint32_t builtin_bytes;
  int model_builtin;       /**< the loaded model is the built-in one, read in place */
  int uploading;
  uint32_t upload_total;
  uint32_t upload_crc;
  uint32_t model_crc; /**< CRC-32 of the whole loaded blob, as UPLOAD_BEGIN announced it */
  int input_f32;      /**< a float32 INFER chunk arrived since the last RUN (no hand-off frame for that input) */
  uint32_t input_received; /**< input elements received in order since the chunk at offset 0; RUN needs them all */
  cmp_link_counters_t counters;
  uint8_t rx[CMP_LINK_WIRE_BYTES];
  uint32_t rx_len;
  int rx_overflow;
  uint8_t body[CMP_LINK_BODY_BYTES];
  uint8_t tx[CMP_LINK_WIRE_BYTES]; /**< the last response, resent when its request comes again */
  uint32_t tx_len;
  int has_last;
  uint16_t last_seq;
  uint8_t last_type;
} cmp_link_t;

/** Sets up the link over the caller's arena (the model is uploaded into its start). */
cmp_status_t cmp_link_init(cmp_link_t *link, const cmp_link_io_t *io, uint8_t *arena, uint32_t arena_bytes);

/**
 * Loads the model compiled into the image (4-byte aligned constant data) in place: the arena then holds only its
 * workspace. RESET loads it again; an upload replaces it until then.
 */
cmp_status_t cmp_link_load_builtin(cmp_link_t *link, const uint8_t *blob, uint32_t bytes);
/** Feeds one received byte; a 0x00 completes a frame, which is checked, dispatched and answered. */
void cmp_link_feed(cmp_link_t *link, uint8_t byte);

#endif /* CMP_LINK_H */
