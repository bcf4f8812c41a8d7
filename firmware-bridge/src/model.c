/* model.c: parsing and validating the device model blob; after this, kernels trust the model. */
#include "cmp/model.h"

#include <string.h>

#include "cmp/arena.h"
#include "cmp/bitpack.h"
#include "cmp/crc32.h"

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static float lef32(const uint8_t *p) {
  uint32_t bits = le32(p);
  float f;
  memcpy(&f, &bits, 4u);
  return f;
}

/** True when [offset, offset + length) lies between the header and the CRC trailer and offset is aligned. */
static int in_blob(uint32_t offset, uint64_t length, uint32_t align, uint32_t bytes) {
  if (offset < CMP_MODEL_HEADER_BYTES || (offset & (align - 1u)) != 0u) return 0;
  return (uint64_t)offset + length <= (uint64_t)bytes - 4u;
}

static int same_shape(cmp_shape_t a, cmp_shape_t b) {
  return a.channels == b.channels && a.height == b.height && a.width == b.width;
}

static cmp_shape_t read_shape(const uint8_t *p) {
  cmp_shape_t s = {le16(p), le16(p + 2), le16(p + 4)};
  return s;
}

/** Checks that the padding bits at the end of every packed row are 0, as the bit format requires. */
static int padding_is_zero(const uint8_t *bits, uint32_t rows, uint32_t row_length) {
  uint32_t rem = row_length & 7u;
  if (rem == 0u) return 1;
  uint32_t row_bytes = cmp_packed_row_bytes(row_length);
  uint8_t pad = (uint8_t)~((1u << rem) - 1u);
  for (uint32_t r = 0u; r < rows; r++) {
    if ((bits[(size_t)r * row_bytes + row_bytes - 1u] & pad) != 0u) return 0;
  }
  return 1;
}

static cmp_status_t parse_layer(const uint8_t *blob, uint32_t bytes, const uint8_t *rec, cmp_shape_t cur,
                                cmp_layer_t *layer) {
  memset(layer, 0, sizeof(*layer));
  uint32_t kind = rec[0];
  uint32_t weights = rec[1];
  uint32_t inputs = rec[2];
  uint32_t activation = rec[3];
  layer->in = read_shape(rec + 4);
  layer->out = read_shape(rec + 10);
  layer->size = le16(rec + 16);
  if (le16(rec + 18) != 0u) return CMP_ERR_UNSUPPORTED; /* layer flags are reserved (exit heads) */
  layer->rows = le32(rec + 20);
  layer->row_length = le32(rec + 24);
  uint32_t w_off = le32(rec + 28);
  uint32_t up_off = le32(rec + 32);
  uint32_t lo_off = le32(rec + 36);
  uint32_t scale_off = le32(rec + 40);
  uint32_t shift_off = le32(rec + 44);
  memcpy(layer->name, rec + 48, CMP_MODEL_NAME_BYTES);
  layer->name[CMP_MODEL_NAME_BYTES] = '\0';
  if (inputs > CMP_INPUTS_DAB || activation > CMP_ACT_RELU || weights > CMP_WEIGHTS_INT8) return CMP_ERR_MODEL;
  layer->weights = (cmp_weights_kind_t)weights;
  layer->inputs = (cmp_inputs_kind_t)inputs;
  layer->activation = (cmp_activation_t)activation;
  uint32_t count = cmp_shape_count(cur);
  if (cmp_shape_count(layer->in) != count) return CMP_ERR_MODEL;
  cmp_shape_t expect = cur;
  switch (kind) {
    case CMP_LAYER_DENSE:
      if (layer->row_length != count || layer->rows == 0u) return CMP_ERR_MODEL;
      expect.channels = layer->rows;
      expect.height = 1u;
      expect.width = 1u;
      break;
    case CMP_LAYER_CONV:
      if (!same_shape(layer->in, cur) || layer->size == 0u || cur.height < layer->size || cur.width < layer->size) {
        return CMP_ERR_MODEL;
      }
      if (layer->rows == 0u || layer->row_length != cur.channels * layer->size * layer->size) return CMP_ERR_MODEL;
      expect.channels = layer->rows;
      expect.height = cur.height - layer->size + 1u;
      expect.width = cur.width - layer->size + 1u;
      break;
    case CMP_LAYER_MAXPOOL:
      if (!same_shape(layer->in, cur) || layer->size == 0u || cur.height < layer->size || cur.width < layer->size) {
        return CMP_ERR_MODEL;
      }
      expect.height = cur.height / layer->size;
      expect.width = cur.width / layer->size;
      break;
    case CMP_LAYER_FLATTEN:
      expect.channels = count;
      expect.height = 1u;
      expect.width = 1u;
      break;
    default:
      return CMP_ERR_UNSUPPORTED;
  }
  layer->kind = (cmp_layer_kind_t)kind;
  if (!same_shape(layer->out, expect)) return CMP_ERR_MODEL;
  int has_weights = kind == CMP_LAYER_DENSE || kind == CMP_LAYER_CONV;
  if (!has_weights) {
    return weights == CMP_WEIGHTS_NONE && inputs == CMP_INPUTS_NONE && activation == CMP_ACT_NONE ? CMP_OK
                                                                                                  : CMP_ERR_MODEL;
  }
  uint64_t cells = (uint64_t)layer->rows * layer->row_length;
  if (weights == CMP_WEIGHTS_F32) {
    if (!in_blob(w_off, cells * 4u, 4u, bytes)) return CMP_ERR_MODEL;
    layer->weights_f32 = (const float *)(const void *)(blob + w_off);
  } else if (weights == CMP_WEIGHTS_BINARY) {
    uint64_t packed = (uint64_t)layer->rows * cmp_packed_row_bytes(layer->row_length);
    if (!in_blob(w_off, packed, 1u, bytes) || !in_blob(up_off, (uint64_t)layer->rows * 2u, 2u, bytes) ||
        !in_blob(lo_off, (uint64_t)layer->rows * 2u, 2u, bytes)) {
      return CMP_ERR_MODEL;
    }
    if (!padding_is_zero(blob + w_off, layer->rows, layer->row_length)) return CMP_ERR_MODEL;
    layer->binary.bits = blob + w_off;
    layer->binary.upper = (const uint16_t *)(const void *)(blob + up_off);
    layer->binary.lower = (const uint16_t *)(const void *)(blob + lo_off);
    layer->binary.rows = layer->rows;
    layer->binary.row_length = layer->row_length;
  } else if (weights == CMP_WEIGHTS_INT8) {
    if (!in_blob(w_off, cells, 1u, bytes) || !in_blob(up_off, (uint64_t)layer->rows * 4u, 4u, bytes)) {
      return CMP_ERR_MODEL;
    }
    layer->weights_i8 = (const int8_t *)(const void *)(blob + w_off);
    layer->weights_i8_scale = (const float *)(const void *)(blob + up_off);
  } else {
    return CMP_ERR_MODEL;
  }
  if (scale_off != 0u) {
    if (!in_blob(scale_off, (uint64_t)layer->rows * 4u, 4u, bytes)) return CMP_ERR_MODEL;
    layer->scale = (const float *)(const void *)(blob + scale_off);
  }
  if (shift_off != 0u) {
    if (!in_blob(shift_off, (uint64_t)layer->rows * 4u, 4u, bytes)) return CMP_ERR_MODEL;
    layer->shift = (const float *)(const void *)(blob + shift_off);
  }
  return CMP_OK;
}

/** The input mask section (format 2): mask id, kept units, K, then K strictly ascending feature indices. */
static cmp_status_t parse_mask(const uint8_t *blob, uint32_t bytes, uint32_t offset, cmp_model_t *model) {
  if (offset == 0u || !in_blob(offset, 8u, 4u, bytes)) return CMP_ERR_MODEL;
  const uint8_t *sec = blob + offset;
  uint32_t kept = le16(sec + 6);
  uint32_t inputs = cmp_shape_count(model->input);
  if (kept == 0u || kept > inputs || !in_blob(offset, 8u + 2u * (uint64_t)kept, 4u, bytes)) return CMP_ERR_MODEL;
  for (uint32_t k = 0u; k < kept; k++) {
    uint32_t f = le16(sec + 8u + 2u * k);
    if (f >= inputs || (k > 0u && f <= le16(sec + 6u + 2u * k))) return CMP_ERR_MODEL;
  }
  model->mask_id = le32(sec);
  model->mask_units = le16(sec + 4);
  model->mask_count = kept;
  model->mask_features = (const uint16_t *)(const void *)(sec + 8);
  return CMP_OK;
}

/** The exit-head table (format 2): count, record bytes, then one 16-byte record per exit in network order. */
static cmp_status_t parse_exits(const uint8_t *blob, uint32_t bytes, uint32_t offset, cmp_model_t *model) {
  if (offset == 0u || !in_blob(offset, 4u, 4u, bytes)) return CMP_ERR_MODEL;
  const uint8_t *table = blob + offset;
  uint32_t count = le16(table);
  if (count == 0u || count > CMP_MAX_EXITS || le16(table + 2) != CMP_MODEL_EXIT_BYTES) return CMP_ERR_MODEL;
  if (!in_blob(offset, 4u + (uint64_t)count * CMP_MODEL_EXIT_BYTES, 4u, bytes)) return CMP_ERR_MODEL;
  for (uint32_t e = 0u; e < count; e++) {
    const uint8_t *rec = table + 4u + e * CMP_MODEL_EXIT_BYTES;
    cmp_exit_t *head = &model->exits[e];
    head->after = le16(rec);
    head->features = le16(rec + 2);
    uint32_t w_off = le32(rec + 4);
    uint32_t b_off = le32(rec + 8);
    head->threshold = lef32(rec + 12);
    if (head->after + 1u >= model->layer_count || (e > 0u && head->after <= model->exits[e - 1u].after)) {
      return CMP_ERR_MODEL;
    }
    if (head->features != cmp_shape_count(model->layers[head->after].out)) return CMP_ERR_MODEL;
    if (!in_blob(w_off, (uint64_t)model->classes * head->features * 4u, 4u, bytes) ||
        !in_blob(b_off, (uint64_t)model->classes * 4u, 4u, bytes)) {
      return CMP_ERR_MODEL;
    }
    head->weights = (const float *)(const void *)(blob + w_off);
    head->bias = (const float *)(const void *)(blob + b_off);
  }
  model->exit_count = count;
  return CMP_OK;
}

/**
 * Sizes the workspace as the layer loop uses it: the input sits in buffer a, each layer but flatten writes into the
 * other buffer, so a holds the input and the outputs of layers 2, 4, ... and b those of layers 1, 3, ...; binarized
 * inputs and im2col patches only for the layers that have them. src/core/mcu-model.ts computes the same.
 */
static void plan_workspace(cmp_model_t *model) {
  uint32_t inputs = cmp_shape_count(model->input);
  uint32_t a = inputs;
  uint32_t b = 0u;
  int in_a = 1;
  for (uint32_t i = 0u; i < model->layer_count; i++) {
    const cmp_layer_t *layer = &model->layers[i];
    if (layer->kind == CMP_LAYER_FLATTEN) continue; /* in place: CHW is already flat */
    uint32_t out = cmp_shape_count(layer->out);
    if (in_a && out > b) b = out;
    if (!in_a && out > a) a = out;
    in_a = !in_a;
    if (layer->inputs != CMP_INPUTS_NONE && cmp_packed_row_bytes(cmp_shape_count(layer->in)) > model->bits_bytes) {
      model->bits_bytes = cmp_packed_row_bytes(cmp_shape_count(layer->in));
    }
    if (layer->kind == CMP_LAYER_CONV && layer->row_length > model->patch_floats) {
      model->patch_floats = layer->row_length;
    }
  }
  model->act_a_floats = a;
  model->act_b_bytes = 4u * b;
  /* without a mask, b keeps the received pixels of a hand-off frame until the run */
  if (model->mask_count == 0u && inputs > model->act_b_bytes) model->act_b_bytes = inputs;
}

cmp_status_t cmp_model_parse(const uint8_t *blob, uint32_t bytes, cmp_model_t *model) {
  if (blob == NULL || model == NULL || ((uintptr_t)blob & 3u) != 0u) return CMP_ERR_ARG;
  memset(model, 0, sizeof(*model));
  if (bytes < CMP_MODEL_HEADER_BYTES + 4u) return CMP_ERR_MODEL;
  if (blob[0] != CMP_MODEL_MAGIC0 || blob[1] != CMP_MODEL_MAGIC1 || blob[2] != CMP_MODEL_MAGIC2 ||
      blob[3] != CMP_MODEL_MAGIC3) {
    return CMP_ERR_MODEL;
  }
  uint32_t version = le16(blob + 4);
  if (version < CMP_MODEL_FORMAT_VERSION_MIN || version > CMP_MODEL_FORMAT_VERSION) return CMP_ERR_MODEL_VERSION;
  if (le16(blob + 6) != CMP_MODEL_HEADER_BYTES || le32(blob + 8) != bytes || (bytes & 3u) != 0u) return CMP_ERR_MODEL;
  uint32_t crc = le32(blob + bytes - 4u);
  if (cmp_crc32(blob, bytes - 4u) != crc) return CMP_ERR_CRC;
  uint32_t layer_count = le16(blob + 12);
  if (layer_count == 0u || layer_count > CMP_MAX_LAYERS || le16(blob + 14) != CMP_MODEL_LAYER_BYTES) {
    return CMP_ERR_MODEL;
  }
  model->format_version = version;
  model->flags = le32(blob + 16);
  uint32_t known = version >= 2u ? CMP_MODEL_FLAG_MASK | CMP_MODEL_FLAG_EXITS : 0u; /* version 1: no flags */
  if ((model->flags & ~known) != 0u) return CMP_ERR_UNSUPPORTED;
  uint32_t mask_off = le32(blob + 40);
  uint32_t exit_off = le32(blob + 44);
  /* a section's offset is nonzero exactly when its flag is set (both 0 in version 1) */
  if ((mask_off != 0u) != ((model->flags & CMP_MODEL_FLAG_MASK) != 0u) ||
      (exit_off != 0u) != ((model->flags & CMP_MODEL_FLAG_EXITS) != 0u)) {
    return CMP_ERR_MODEL;
  }
  model->input = read_shape(blob + 20);
  model->classes = le16(blob + 26);
  model->input_mean = lef32(blob + 28);
  model->input_std = lef32(blob + 32);
  uint32_t table = le32(blob + 36);
  if (cmp_shape_count(model->input) == 0u || model->classes == 0u || !(model->input_std > 0.0f)) return CMP_ERR_MODEL;
  if (!in_blob(table, (uint64_t)layer_count * CMP_MODEL_LAYER_BYTES, 4u, bytes)) return CMP_ERR_MODEL;
  cmp_shape_t cur = model->input;
  for (uint32_t i = 0u; i < layer_count; i++) {
    cmp_layer_t *layer = &model->layers[i];
    cmp_status_t s = parse_layer(blob, bytes, blob + table + i * CMP_MODEL_LAYER_BYTES, cur, layer);
    if (s != CMP_OK) return s;
    cur = layer->out;
  }
  if (cmp_shape_count(cur) != model->classes) return CMP_ERR_MODEL;
  model->layer_count = layer_count;
  cmp_status_t s = CMP_OK;
  if ((model->flags & CMP_MODEL_FLAG_MASK) != 0u && (s = parse_mask(blob, bytes, mask_off, model)) != CMP_OK) return s;
  if ((model->flags & CMP_MODEL_FLAG_EXITS) != 0u && (s = parse_exits(blob, bytes, exit_off, model)) != CMP_OK) {
    return s;
  }
  model->blob = blob;
  model->blob_bytes = bytes;
  model->crc = crc;
  plan_workspace(model);
  return CMP_OK;
}

uint32_t cmp_model_workspace_bytes(const cmp_model_t *model) {
  uint32_t bytes = cmp_align4(model->act_a_floats * 4u) + cmp_align4(model->act_b_bytes) +
                   cmp_align4(model->bits_bytes) + cmp_align4(model->patch_floats * 4u) +
                   cmp_align4(cmp_packed_row_bytes(model->patch_floats));
  if (model->exit_count > 0u) bytes += cmp_align4(4u * model->classes); /* the exit logits */
  if (model->mask_count > 0u) bytes += cmp_align4(8u + model->mask_count); /* the hand-off frame */
  return bytes;
}
