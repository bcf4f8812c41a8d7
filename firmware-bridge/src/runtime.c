/* runtime.c: the layer loop: binarize inputs where the layer says so, pick the kernel, scale/shift, activation. */
#include "cmp/runtime.h"

#include <string.h>

#include "cmp/bitpack.h"
#include "cmp/kernels.h"

uint32_t cmp_runtime_required_bytes(const cmp_model_t *model) {
  return cmp_align4(model->blob_bytes) + cmp_model_workspace_bytes(model);
}

cmp_status_t cmp_runtime_load(cmp_runtime_t *rt, cmp_arena_t *arena, uint32_t blob_bytes, cmp_counter_fn counter) {
  if (rt == NULL || arena == NULL || counter == NULL) return CMP_ERR_ARG;
  if (blob_bytes > arena->size) return CMP_ERR_ARENA;
  memset(rt, 0, sizeof(*rt));
  cmp_status_t s = cmp_model_parse(arena->base, blob_bytes, &rt->model);
  if (s != CMP_OK) return s;
  if (cmp_runtime_required_bytes(&rt->model) > arena->size) return CMP_ERR_ARENA;
  arena->used = cmp_align4(blob_bytes);
  uint32_t act = rt->model.max_activation;
  uint32_t row = rt->model.max_row_length;
  void *p = NULL;
  if ((s = cmp_arena_alloc(arena, act * 4u, 4u, &p)) != CMP_OK) return s;
  rt->act_a = (float *)p;
  if ((s = cmp_arena_alloc(arena, act * 4u, 4u, &p)) != CMP_OK) return s;
  rt->act_b = (float *)p;
  if ((s = cmp_arena_alloc(arena, cmp_packed_row_bytes(act), 4u, &p)) != CMP_OK) return s;
  rt->bits = (uint8_t *)p;
  if ((s = cmp_arena_alloc(arena, row * 4u, 4u, &p)) != CMP_OK) return s;
  rt->patch = (float *)p;
  if ((s = cmp_arena_alloc(arena, cmp_packed_row_bytes(row), 4u, &p)) != CMP_OK) return s;
  rt->patch_bits = (uint8_t *)p;
  rt->counter = counter;
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
  if (binary_input && layer->weights == CMP_WEIGHTS_F32) {
    cmp_dequantize(rt->bits, n, xb.upper, xb.lower, x); /* float weights: feed the two-level values */
    binary_input = 0;
  }
  if (layer->kind == CMP_LAYER_DENSE) {
    if (layer->weights == CMP_WEIGHTS_F32) return cmp_dense_f32(layer->weights_f32, layer->rows, n, x, y);
    return binary_input ? cmp_dense_binary_bin(&layer->binary, &xb, y) : cmp_dense_binary_f32(&layer->binary, x, y);
  }
  if (layer->weights == CMP_WEIGHTS_F32) {
    return cmp_conv_f32(layer->weights_f32, layer->rows, layer->size, layer->in, x, y, rt->patch);
  }
  return binary_input ? cmp_conv_binary_bin(&layer->binary, layer->size, layer->in, &xb, y, rt->patch_bits)
                      : cmp_conv_binary_f32(&layer->binary, layer->size, layer->in, x, y, rt->patch);
}

cmp_status_t cmp_runtime_run(cmp_runtime_t *rt, cmp_result_t *result) {
  if (rt == NULL || result == NULL || rt->act_a == NULL) return CMP_ERR_ARG;
  const cmp_model_t *m = &rt->model;
  float *cur = rt->act_a;
  float *next = rt->act_b;
  uint32_t start = rt->counter();
  for (uint32_t i = 0u; i < m->layer_count; i++) {
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
    rt->layer_cycles[i] = rt->counter() - began;
  }
  result->label = cmp_argmax(cur, m->classes);
  result->exit = 0u;
  result->entropy = cmp_softmax_entropy(cur, m->classes);
  result->logits = cur;
  result->cycles = rt->counter() - start;
  return CMP_OK;
}
