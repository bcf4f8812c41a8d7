/* cmp/runtime.h: runs a parsed model on one input in the caller's arena, timing every layer. */
#ifndef CMP_RUNTIME_H
#define CMP_RUNTIME_H

#include <stdint.h>

#include "cmp/arena.h"
#include "cmp/model.h"
#include "cmp/status.h"

/** A free-running counter (cycles or ticks); the runtime only subtracts readings, so it may wrap. */
typedef uint32_t (*cmp_counter_fn)(void);

/** What one inference produced. */
typedef struct {
  uint32_t label;         /**< argmax of the logits */
  uint32_t exit;          /**< 0: the final classifier answered; e + 1: exit head e was confident */
  float entropy;          /**< softmax entropy of the answering logits, nats (handed off: of the last exit checked,
                               NaN when the model has no exits) */
  uint32_t cycles;        /**< counter ticks of the whole inference */
  const float *logits;    /**< [model.classes], valid until the next run; NULL when handed off */
  uint32_t exits_checked; /**< exit heads evaluated */
  int handed_off;         /**< hand-off run only: 1 when no exit was confident (label and logits are not set) */
} cmp_result_t;

/** A loaded model with its workspace. Lives in caller memory (static), never on the heap. */
typedef struct {
  cmp_model_t model;
  float *act_a;          /**< [model.act_a_floats]: holds the input before a run */
  float *act_b;          /**< [model.act_b_bytes / 4] */
  uint8_t *bits;         /**< [model.bits_bytes]: a binarized layer input */
  float *patch;          /**< [model.patch_floats]: im2col of one conv position */
  uint8_t *patch_bits;   /**< packed [model.patch_floats] */
  float *exit_logits;    /**< [classes] when the model has exits, else NULL */
  uint8_t *handoff;      /**< the cmp-select/1 frame [8 + K] when the model has a mask, else NULL */
  int in_place;          /**< the blob is read where it lies (flash), not from the arena */
  cmp_counter_fn counter;
  uint32_t layer_cycles[CMP_MAX_LAYERS]; /**< per layer, last inference */
} cmp_runtime_t;

/**
 * Parses the blob that already lies at the start of `arena` (`blob_bytes` long, where upload wrote it), then takes
 * the workspace from the arena after it. CMP_ERR_ARENA when blob plus workspace exceed it (see
 * cmp_runtime_required_bytes); model errors as cmp_model_parse.
 */
cmp_status_t cmp_runtime_load(cmp_runtime_t *rt, cmp_arena_t *arena, uint32_t blob_bytes, cmp_counter_fn counter);

/**
 * Loads a model compiled into the image (constant data in flash, 4-byte aligned) where it lies: only the workspace
 * comes from the arena, from its start. CMP_ERR_ARENA when the workspace exceeds it; model errors as cmp_model_parse.
 */
cmp_status_t cmp_runtime_load_const(cmp_runtime_t *rt, cmp_arena_t *arena, const uint8_t *blob, uint32_t blob_bytes,
                                    cmp_counter_fn counter);
/**
 * Arena bytes a parsed model needs in all: the blob (rounded to 4) plus its workspace, or the workspace alone for a
 * model loaded in place (cmp_runtime_load_const). src/core/mcu-model.ts computes the same (McuModel.arenaBytes).
 */
uint32_t cmp_runtime_required_bytes(const cmp_runtime_t *rt);

/** The input buffer: write cmp_shape_count(model.input) floats (normalized, CHW) here before cmp_runtime_run. */
static inline float *cmp_runtime_input(cmp_runtime_t *rt) { return rt->act_a; }

/**
 * Writes `count` uint8 pixels p starting at input element `offset` as (p / 255 - mean) / std, and keeps the pixels a
 * hand-off frame needs (the kept ones with a mask, else all of them). CMP_ERR_RANGE past the input.
 */
cmp_status_t cmp_runtime_write_pixels(cmp_runtime_t *rt, uint32_t offset, const uint8_t *pixels, uint32_t count);

/** Bytes of the hand-off frame: 8 + K (K = kept features, or every input without a mask). */
uint32_t cmp_runtime_handoff_bytes(const cmp_runtime_t *rt);

/**
 * Copies the cmp-select/1 static frame of the pixels last written by cmp_runtime_write_pixels into `out`:
 * [0x01][0x00][mask id u32][kept units u16][K pixels, ascending]; without a mask, mask id 0, units = inputs and all
 * pixels. Call it before a run (a run reuses the pixel store of a model without a mask). CMP_ERR_RANGE when `cap`
 * is smaller than cmp_runtime_handoff_bytes.
 */
cmp_status_t cmp_runtime_handoff_frame(const cmp_runtime_t *rt, uint8_t *out, uint32_t cap, uint32_t *bytes);

/**
 * Runs every layer on the input buffer (the input buffer is overwritten): zeroes the inputs the mask drops, checks
 * each exit head after its layer and stops at the first whose entropy is below its threshold.
 */
cmp_status_t cmp_runtime_run(cmp_runtime_t *rt, cmp_result_t *result);

/**
 * Stage 1 of a split inference: as cmp_runtime_run, but only up to and including the last exit's layer (nothing
 * without exits). When no exit is confident, result->handed_off is 1 and the host finishes from the hand-off frame.
 */
cmp_status_t cmp_runtime_run_handoff(cmp_runtime_t *rt, cmp_result_t *result);

#endif /* CMP_RUNTIME_H */
