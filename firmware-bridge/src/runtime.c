/* runtime.c: the layer loop: binarize inputs where the layer says so, pick the kernel, scale/shift, activation. */
#include "cmp/runtime.h"

#include <math.h>
#include <string.h>

#include "cmp/bitpack.h"
#include "cmp/kernels.h"

uint32_t cmp_runtime_required_bytes(const cmp_runtime_t *rt) {
  const cmp_model_t *model = &rt->model;
  return (rt->in_place ? 0u : cmp_align4(model->blob_bytes)) + cmp_model_workspace_bytes(model);
}

/** Takes the workspace of the parsed model from the arena, after what it already holds (MODEL.md, "Arena"). */
static cmp_status_t take_workspace(cmp_runtime_t *rt, cmp_arena_t *arena, cmp_counter_fn counter) {
  const cmp_model_t *m = &rt->model;
  cmp_status_t s = CMP_OK;
  void *p = NULL;
  if ((s = cmp_arena_alloc(arena, m->act_a_floats * 4u, 4u, &p)) != CMP_OK) return s;
  rt->act_a = (float *)p;
  if ((s = cmp_arena_alloc(arena, m->act_b_bytes, 4u, &p)) != CMP_OK) return s;
  rt->act_b = (float *)p;
  if ((s = cmp_arena_alloc(arena, m->bits_bytes, 4u, &p)) != CMP_OK) return s;
  rt->bits = (uint8_t *)p;
  if ((s = cmp_arena_alloc(arena, m->patch_floats * 4u, 4u, &p)) != CMP_OK) return s;
  rt->patch = (float *)p;
  if ((s = cmp_arena_alloc(arena, cmp_packed_row_bytes(m->patch_floats), 4u, &p)) != CMP_OK) return s;
  rt->patch_bits = (uint8_t *)p;
  if (m->exit_count > 0u) {
    if ((s = cmp_arena_alloc(arena, 4u * m->classes, 4u, &p)) != CMP_OK) return s;
    rt->exit_logits = (float *)p;
  }
  if (m->mask_count > 0u) {
    if ((s = cmp_arena_alloc(arena, 8u + m->mask_count, 4u, &p)) != CMP_OK) return s;
    rt->handoff = (uint8_t *)p;
    memset(rt->handoff, 0, 8u + m->mask_count);
    rt->handoff[0] = 1u; /* cmp-select/1, flags 0: static mask, uint8 values */
    for (uint32_t k = 0u; k < 4u; k++) rt->handoff[2u + k] = (uint8_t)(m->mask_id >> (8u * k));
    rt->handoff[6] = (uint8_t)m->mask_units;
    rt->handoff[7] = (uint8_t)(m->mask_units >> 8);
  }
  rt->counter = counter;
  return CMP_OK;
}

cmp_status_t cmp_runtime_load(cmp_runtime_t *rt, cmp_arena_t *arena, uint32_t blob_bytes, cmp_counter_fn counter) {
  if (rt == NULL || arena == NULL || counter == NULL) return CMP_ERR_ARG;
  if (blob_bytes > arena->size) return CMP_ERR_ARENA;
  memset(rt, 0, sizeof(*rt));
  cmp_status_t s = cmp_model_parse(arena->base, blob_bytes, &rt->model);
  if (s != CMP_OK) return s;
  if (cmp_runtime_required_bytes(rt) > arena->size) return CMP_ERR_ARENA;
  arena->used = cmp_align4(blob_bytes);
  return take_workspace(rt, arena, counter);
}

cmp_status_t cmp_runtime_load_const(cmp_runtime_t *rt, cmp_arena_t *arena, const uint8_t *blob, uint32_t blob_bytes,
                                    cmp_counter_fn counter) {
  if (rt == NULL || arena == NULL || counter == NULL) return CMP_ERR_ARG;
  memset(rt, 0, sizeof(*rt));
  cmp_status_t s = cmp_model_parse(blob, blob_bytes, &rt->model);
  if (s != CMP_OK) return s;
  rt->in_place = 1;
  if (cmp_runtime_required_bytes(rt) > arena->size) return CMP_ERR_ARENA;
  arena->used = 0u;
  return take_workspace(rt, arena, counter);
}

cmp_status_t cmp_runtime_write_pixels(cmp_runtime_t *rt, uint32_t offset, const uint8_t *pixels, uint32_t count) {
  if (rt == NULL || rt->act_a == NULL || (pixels == NULL && count > 0u)) return CMP_ERR_ARG;
  const cmp_model_t *m = &rt->model;
  uint32_t inputs = cmp_shape_count(m->input);
  if (offset > inputs || count > inputs - offset) return CMP_ERR_RANGE;
  float *x = rt->act_a + offset;
  int plain = m->input_mean == 0.0f && m->input_std == 1.0f;
  for (uint32_t k = 0u; k < count; k++) {
    float v = (float)pixels[k] / 255.0f;
    x[k] = plain ? v : (v - m->input_mean) / m->input_std;
  }
  if (m->mask_count == 0u) {
    /* no mask: every pixel goes into the hand-off frame; act_b is free until the next run */
    memcpy((uint8_t *)rt->act_b + offset, pixels, count);
    return CMP_OK;
  }
  const uint16_t *kept = m->mask_features;
  uint32_t lo = 0u;
  uint32_t hi = m->mask_count;
  while (lo < hi) { /* the first kept feature at or after offset */
    uint32_t mid = lo + (hi - lo) / 2u;
    if (kept[mid] < offset) {
      lo = mid + 1u;
    } else {
      hi = mid;
    }
  }
  for (uint32_t k = lo; k < m->mask_count && kept[k] < offset + count; k++) {
    rt->handoff[8u + k] = pixels[kept[k] - offset];
  }
  return CMP_OK;
}

uint32_t cmp_runtime_handoff_bytes(const cmp_runtime_t *rt) {
  return 8u + (rt->model.mask_count > 0u ? rt->model.mask_count : cmp_shape_count(rt->model.input));
}

cmp_status_t cmp_runtime_handoff_frame(const cmp_runtime_t *rt, uint8_t *out, uint32_t cap, uint32_t *bytes) {
  if (rt == NULL || out == NULL || bytes == NULL || rt->act_b == NULL) return CMP_ERR_ARG;
  uint32_t n = cmp_runtime_handoff_bytes(rt);
  if (cap < n) return CMP_ERR_RANGE;
  if (rt->handoff != NULL) {
    memcpy(out, rt->handoff, n);
  } else {
    uint32_t inputs = n - 8u;
    memset(out, 0, 8u); /* version 1, static, uint8 values, mask id 0 */
    out[0] = 1u;
    out[6] = (uint8_t)inputs;
    out[7] = (uint8_t)(inputs >> 8);
    memcpy(out + 8, rt->act_b, inputs);
  }
  *bytes = n;
  return CMP_OK;
}

/** Sets every input feature the mask does not keep to 0 (the normalized value of nothing). */
static void apply_mask(cmp_runtime_t *rt) {
  const cmp_model_t *m = &rt->model;
  if (m->mask_count == 0u) return;
  uint32_t inputs = cmp_shape_count(m->input);
  uint32_t k = 0u;
  for (uint32_t i = 0u; i < inputs; i++) {
    if (k < m->mask_count && m->mask_features[k] == i) {
      k++;
    } else {
      rt->act_a[i] = 0.0f;
    }
  }
}

/** Exit head logits = bias + weights x out, into rt->exit_logits; returns their softmax entropy in `entropy`. */
static cmp_status_t run_exit(cmp_runtime_t *rt, const cmp_exit_t *e, const float *out, float *entropy) {
  uint32_t classes = rt->model.classes;
  cmp_status_t s = cmp_dense_f32(e->weights, classes, e->features, out, rt->exit_logits);
  if (s != CMP_OK) return s;
  for (uint32_t c = 0u; c < classes; c++) rt->exit_logits[c] += e->bias[c];
  *entropy = cmp_softmax_entropy(rt->exit_logits, classes);
  return CMP_OK;
}

/** A dense or conv layer from `x` into `y`; may overwrite `x` (binarization centres or dequantizes in place). */
static cmp_status_t run_weight_layer(cmp_runtime_t *rt, const cmp_layer_t *layer, float *x, float *y) {
  uint32_t n = cmp_shape_count(layer->in);
  cmp_binary_vector_t xb = {rt->bits, 0.0f, 0.0f, n};
  int binary_input = layer->inputs != CMP_INPUTS_NONE;
  cmp_status_t s = CMP_OK;
  if (layer->inputs == CMP_INPUTS_DAB) {
    /* dense inputs are flat: every feature is a "channel" of one position */
    uint32_t positions = layer->kind == CMP_LAYER_CONV ? layer->in.height * layer->in.width : 1u;
    s = cmp_binarize_dab(x, n / positions, positions, rt->bits, &xb.upper, &xb.lower);
  } else if (layer->inputs == CMP_INPUTS_XNOR) {
    s = cmp_binarize_xnor(x, n, rt->bits, &xb.upper, &xb.lower);
  }
  if (s != CMP_OK) return s;
  if (binary_input && layer->weights != CMP_WEIGHTS_BINARY) {
    cmp_dequantize(rt->bits, n, xb.upper, xb.lower, x); /* float or int8 weights: feed the two-level values */
    binary_input = 0;
  }
  if (layer->kind == CMP_LAYER_DENSE) {
    if (layer->weights == CMP_WEIGHTS_F32) return cmp_dense_f32(layer->weights_f32, layer->rows, n, x, y);
    if (layer->weights == CMP_WEIGHTS_INT8) {
      return cmp_dense_i8(layer->weights_i8, layer->weights_i8_scale, layer->rows, n, x, y);
    }
    return binary_input ? cmp_dense_binary_bin(&layer->binary, &xb, y) : cmp_dense_binary_f32(&layer->binary, x, y);
  }
  if (layer->weights == CMP_WEIGHTS_F32) {
    return cmp_conv_f32(layer->weights_f32, layer->rows, layer->size, layer->in, x, y, rt->patch);
  }
  if (layer->weights == CMP_WEIGHTS_INT8) {
    return cmp_conv_i8(layer->weights_i8, layer->weights_i8_scale, layer->rows, layer->size, layer->in, x, y,
                       rt->patch);
  }
  return binary_input ? cmp_conv_binary_bin(&layer->binary, layer->size, layer->in, &xb, y, rt->patch_bits)
                      : cmp_conv_binary_f32(&layer->binary, layer->size, layer->in, x, y, rt->patch);
}

/** The layer loop; `handoff`: stop after the last exit's layer when no exit is confident. */
static cmp_status_t run_model(cmp_runtime_t *rt, int handoff, cmp_result_t *result) {
  if (rt == NULL || result == NULL || rt->act_a == NULL) return CMP_ERR_ARG;
  const cmp_model_t *m = &rt->model;
  memset(result, 0, sizeof(*result));
  memset(rt->layer_cycles, 0, sizeof(rt->layer_cycles)); /* layers that do not run report 0 */
  float *cur = rt->act_a;
  float *next = rt->act_b;
  uint32_t start = rt->counter();
  apply_mask(rt);
  uint32_t end = m->layer_count;
  if (handoff) end = m->exit_count > 0u ? m->exits[m->exit_count - 1u].after + 1u : 0u;
  uint32_t next_exit = 0u;
  float exit_entropy = NAN;
  for (uint32_t i = 0u; i < end; i++) {
    const cmp_layer_t *layer = &m->layers[i];
    uint32_t began = rt->counter();
    cmp_status_t s = CMP_OK;
    int swap = 1;
    switch (layer->kind) {
      case CMP_LAYER_FLATTEN:
        swap = 0; /* CHW is already channel-major flat, as ONNX Flatten on NCHW */
        break;
      case CMP_LAYER_MAXPOOL:
        s = cmp_maxpool(cur, layer->in, layer->size, next);
        break;
      case CMP_LAYER_DENSE:
      case CMP_LAYER_CONV: {
        s = run_weight_layer(rt, layer, cur, next);
        if (s != CMP_OK) break;
        uint32_t positions = layer->out.height * layer->out.width;
        cmp_scale_shift(next, layer->rows, positions, layer->scale, layer->shift);
        if (layer->activation == CMP_ACT_RELU) cmp_relu(next, layer->rows * positions);
        break;
      }
    }
    if (s != CMP_OK) return s;
    if (swap) {
      float *t = cur;
      cur = next;
      next = t;
    }
    /* an exit head reads this layer's output; its cycles count to this layer */
    if (next_exit < m->exit_count && m->exits[next_exit].after == i) {
      const cmp_exit_t *e = &m->exits[next_exit++];
      if ((s = run_exit(rt, e, cur, &exit_entropy)) != CMP_OK) return s;
      result->exits_checked = next_exit;
      if (exit_entropy < e->threshold) {
        rt->layer_cycles[i] = rt->counter() - began;
        result->label = cmp_argmax(rt->exit_logits, m->classes);
        result->exit = next_exit;
        result->entropy = exit_entropy;
        result->logits = rt->exit_logits;
        result->cycles = rt->counter() - start;
        return CMP_OK;
      }
    }
    rt->layer_cycles[i] = rt->counter() - began;
  }
  if (handoff) {
    result->handed_off = 1;
    result->entropy = exit_entropy;
    result->cycles = rt->counter() - start;
    return CMP_OK;
  }
  result->label = cmp_argmax(cur, m->classes);
  result->exit = 0u;
  result->entropy = cmp_softmax_entropy(cur, m->classes);
  result->logits = cur;
  result->cycles = rt->counter() - start;
  return CMP_OK;
}

cmp_status_t cmp_runtime_run(cmp_runtime_t *rt, cmp_result_t *result) { return run_model(rt, 0, result); }

cmp_status_t cmp_runtime_run_handoff(cmp_runtime_t *rt, cmp_result_t *result) { return run_model(rt, 1, result); }
