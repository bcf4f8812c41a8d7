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
  uint32_t label;       /**< argmax of the logits */
  uint32_t exit;        /**< 0: the final classifier answered (exit heads arrive with model format 2) */
  float entropy;        /**< softmax entropy of the answering logits, nats */
  uint32_t cycles;      /**< counter ticks of the whole inference */
  const float *logits;  /**< [model.classes], valid until the next run */
} cmp_result_t;

/** A loaded model with its workspace. Lives in caller memory (static), never on the heap. */
typedef struct {
  cmp_model_t model;
  float *act_a;          /**< [max_activation]: holds the input before a run */
  float *act_b;          /**< [max_activation] */
  uint8_t *bits;         /**< packed [max_activation]: a binarized layer input */
  float *patch;          /**< [max_row_length]: im2col of one conv position */
  uint8_t *patch_bits;   /**< packed [max_row_length] */
  cmp_counter_fn counter;
  uint32_t layer_cycles[CMP_MAX_LAYERS]; /**< per layer, last inference */
} cmp_runtime_t;

/**
 * Parses the blob that already lies at the start of `arena` (`blob_bytes` long, where upload wrote it), then takes
 * the workspace from the arena after it. CMP_ERR_ARENA when blob plus workspace exceed it (see
 * cmp_runtime_required_bytes); model errors as cmp_model_parse.
 */
cmp_status_t cmp_runtime_load(cmp_runtime_t *rt, cmp_arena_t *arena, uint32_t blob_bytes, cmp_counter_fn counter);

/** Arena bytes a parsed model needs in all: the blob (rounded to 4) plus its workspace. */
uint32_t cmp_runtime_required_bytes(const cmp_model_t *model);

/** The input buffer: write cmp_shape_count(model.input) floats (normalized, CHW) here before cmp_runtime_run. */
static inline float *cmp_runtime_input(cmp_runtime_t *rt) { return rt->act_a; }

/** Runs every layer on the input buffer; the input buffer is overwritten. */
cmp_status_t cmp_runtime_run(cmp_runtime_t *rt, cmp_result_t *result);

#endif /* CMP_RUNTIME_H */
