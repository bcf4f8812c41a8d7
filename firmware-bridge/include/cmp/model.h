/* cmp/model.h: the device model blob (format "CMPM" versions 1 and 2, see MODEL.md): parsing and validation. */
#ifndef CMP_MODEL_H
#define CMP_MODEL_H

#include <stdint.h>

#include "cmp/kernels.h"
#include "cmp/status.h"

#define CMP_MODEL_MAGIC0 'C'
#define CMP_MODEL_MAGIC1 'M'
#define CMP_MODEL_MAGIC2 'P'
#define CMP_MODEL_MAGIC3 'M'
/** The highest blob format version this firmware reads (MODEL.md): 1 plain, 2 with an input mask or exit heads. */
#define CMP_MODEL_FORMAT_VERSION 2u
#define CMP_MODEL_FORMAT_VERSION_MIN 1u
#define CMP_MODEL_HEADER_BYTES 48u
#define CMP_MODEL_LAYER_BYTES 64u
#define CMP_MODEL_NAME_BYTES 16u
/** Most layers (of every kind) a model may have; sizes the parsed layer table and the profile counters. */
#define CMP_MAX_LAYERS 32u
/** Header flags (offset 16), version 2: an input mask section (offset 40), an exit-head table (offset 44). */
#define CMP_MODEL_FLAG_MASK 0x01u
#define CMP_MODEL_FLAG_EXITS 0x02u
/** Most exit heads a model may have, and the bytes of one exit record. */
#define CMP_MAX_EXITS 4u
#define CMP_MODEL_EXIT_BYTES 16u

/** Layer kinds (MODEL.md, layer record byte 0). */
typedef enum { CMP_LAYER_DENSE = 1, CMP_LAYER_CONV = 2, CMP_LAYER_MAXPOOL = 3, CMP_LAYER_FLATTEN = 4 } cmp_layer_kind_t;
/** Weight storage (byte 1). */
typedef enum { CMP_WEIGHTS_NONE = 0, CMP_WEIGHTS_F32 = 1, CMP_WEIGHTS_BINARY = 2, CMP_WEIGHTS_INT8 = 3 } cmp_weights_kind_t;
/** Input binarization (byte 2), as in the manifest: none, xnor, dab. */
typedef enum { CMP_INPUTS_NONE = 0, CMP_INPUTS_XNOR = 1, CMP_INPUTS_DAB = 2 } cmp_inputs_kind_t;
/** Activation after scale/shift (byte 3). */
typedef enum { CMP_ACT_NONE = 0, CMP_ACT_RELU = 1 } cmp_activation_t;

/** One parsed layer; pointers point into the blob, which must outlive the model. */
typedef struct {
  cmp_layer_kind_t kind;
  cmp_weights_kind_t weights;
  cmp_inputs_kind_t inputs;
  cmp_activation_t activation;
  cmp_shape_t in;
  cmp_shape_t out;
  uint32_t size; /**< conv kernel or pool window; 0 for dense and flatten */
  uint32_t rows;
  uint32_t row_length;
  const float *weights_f32;      /**< float32 [rows, row_length] when weights == CMP_WEIGHTS_F32 */
  cmp_binary_matrix_t binary;    /**< when weights == CMP_WEIGHTS_BINARY */
  const int8_t *weights_i8;      /**< int8 [rows, row_length] when weights == CMP_WEIGHTS_INT8 */
  const float *weights_i8_scale; /**< float32 [rows]: w = q * scale, when weights == CMP_WEIGHTS_INT8 */
  const float *scale;            /**< float32 [rows] or NULL (all ones) */
  const float *shift;            /**< float32 [rows] or NULL (all zeros) */
  char name[CMP_MODEL_NAME_BYTES + 1u];
} cmp_layer_t;

/** One exit head (format 2): logits = bias + weights x (output of layer `after`), taken when entropy < threshold. */
typedef struct {
  uint32_t after;        /**< index of the layer whose output the head reads (< layer_count - 1) */
  uint32_t features;     /**< element count of that output */
  const float *weights;  /**< float32 [classes, features] */
  const float *bias;     /**< float32 [classes] */
  float threshold;       /**< nats; negative: never taken */
} cmp_exit_t;

/** A parsed, validated model. */
typedef struct {
  const uint8_t *blob;
  uint32_t blob_bytes;
  uint32_t crc;        /**< CRC-32 of the blob without its 4-byte trailer, as stored in the trailer */
  uint32_t format_version; /**< 1 or 2 */
  uint32_t flags;      /**< header flags: CMP_MODEL_FLAG_MASK, CMP_MODEL_FLAG_EXITS (format 2 only) */
  cmp_shape_t input;
  uint32_t classes;
  float input_mean;
  float input_std;
  uint32_t layer_count;
  cmp_layer_t layers[CMP_MAX_LAYERS];
  uint32_t mask_id;                  /**< cmp-select/1 mask id (0 without a mask) */
  uint32_t mask_units;               /**< the mask's kept units, as its frames count them */
  uint32_t mask_count;               /**< K: kept input features (0 without a mask) */
  const uint16_t *mask_features;     /**< [K] kept NCHW flat indices, strictly ascending; NULL without a mask */
  uint32_t exit_count;               /**< 0..CMP_MAX_EXITS */
  cmp_exit_t exits[CMP_MAX_EXITS];   /**< in network order (`after` strictly increasing) */
  /* The workspace plan (MODEL.md, "Arena"): layers ping-pong between buffers a (the input) and b. */
  uint32_t act_a_floats; /**< floats of buffer a: the input and every output written to a */
  uint32_t act_b_bytes;  /**< bytes of buffer b: the outputs written to b, and the pixels of a hand-off frame */
  uint32_t bits_bytes;   /**< packed bits of the largest binarized layer input (0 when no layer binarizes) */
  uint32_t patch_floats; /**< longest conv row: one im2col patch, float and packed (0 without conv layers) */
} cmp_model_t;

/**
 * Parses and validates a blob: magic, version, sizes, every offset inside the blob and aligned, shapes chained from
 * layer to layer, zero padding bits, the trailer CRC-32, and in format 2 the mask section (kept indices ascending
 * and inside the input) and the exit table (1..4 exits after increasing layers before the last, features equal to
 * that layer's output). Returns CMP_ERR_MODEL, CMP_ERR_MODEL_VERSION, CMP_ERR_CRC or CMP_ERR_UNSUPPORTED (unknown
 * flag bits, layer kinds); `blob` must be 4-byte aligned.
 */
cmp_status_t cmp_model_parse(const uint8_t *blob, uint32_t bytes, cmp_model_t *model);

/** Bytes of arena the runtime needs beyond the blob for this model (formula in MODEL.md). */
uint32_t cmp_model_workspace_bytes(const cmp_model_t *model);

#endif /* CMP_MODEL_H */
