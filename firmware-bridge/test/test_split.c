/* test_split.c: model format 2 on the host: a hand-built blob with a mask and exit heads, parsed, run, handed off.
 *   test-split       parsing (valid and each refusal), exits, mask zeroing, hand-off frames, and the link's answers
 * Prints "ok <what>" per passed check and "FAIL <what>" per failure; exits 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cmp/cobs.h"
#include "cmp/crc32.h"
#include "cmp/link.h"
#include "cmp/model.h"
#include "cmp/protocol.h"
#include "cmp/runtime.h"

static int g_failures;
static int g_checks;

static void check(int ok, const char *what) {
  g_checks++;
  printf("%s %s\n", ok ? "ok" : "FAIL", what);
  if (!ok) g_failures++;
}

static void put16(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
  for (uint32_t k = 0u; k < 4u; k++) p[k] = (uint8_t)(v >> (8u * k));
}
static void putf32(uint8_t *p, float f) {
  uint32_t v;
  memcpy(&v, &f, 4u);
  put32(p, v);
}
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static float getf32(const uint8_t *p) {
  uint32_t v = get32(p);
  float f;
  memcpy(&f, &v, 4u);
  return f;
}

/*
 * The test model: input [1, 2, 2] (4 features), 2 classes, mean 0, std 1.
 *   layer 0 dense 4 -> 3, ReLU: h = relu([x1, x3, x0])
 *   layer 1 flatten [3, 1, 1]
 *   layer 2 dense 3 -> 2, shift [0, 0.5]: logits = [h2, 0.5]
 * Mask: keeps features 1 and 3 (id 0xA1B2C3D4, 2 units), so x0 = 0 and the final logits are [0, 0.5].
 * Exit 0 after layer 0: logits = [h0, h1] = [x1, x3]. Room for a second exit record (after layer 1, same head).
 */
#define MASK_ID 0xA1B2C3D4u
#define BLOB_CAP 1024u

typedef struct {
  uint8_t bytes[BLOB_CAP] __attribute__((aligned(8)));
  uint32_t total;
  uint32_t mask_off;
  uint32_t exit_off;
  uint32_t exit_w;
  uint32_t exit_b;
} blob_t;

static uint32_t g_at;
static uint32_t place(blob_t *b, const void *data, uint32_t n) {
  uint32_t off = g_at;
  memcpy(b->bytes + off, data, n);
  g_at += cmp_align4(n);
  return off;
}

static void layer_record(uint8_t *rec, uint32_t kind, uint32_t weights, uint32_t act, uint32_t in, uint32_t out,
                         uint32_t w_off, uint32_t shift_off, const char *name) {
  rec[0] = (uint8_t)kind;
  rec[1] = (uint8_t)weights;
  rec[3] = (uint8_t)act;
  put16(rec + 4, in);
  put16(rec + 6, 1u);
  put16(rec + 8, 1u);
  put16(rec + 10, out);
  put16(rec + 12, 1u);
  put16(rec + 14, 1u);
  if (kind == CMP_LAYER_DENSE) {
    put32(rec + 20, out);
    put32(rec + 24, in);
  }
  put32(rec + 28, w_off);
  put32(rec + 44, shift_off);
  memcpy(rec + 48, name, strlen(name));
}

static void fix_crc(blob_t *b) { put32(b->bytes + b->total - 4u, cmp_crc32(b->bytes, b->total - 4u)); }

/** The valid format-2 blob (mask and one exit). */
static void build(blob_t *b) {
  memset(b, 0, sizeof(*b));
  uint8_t *h = b->bytes;
  g_at = CMP_MODEL_HEADER_BYTES + 3u * CMP_MODEL_LAYER_BYTES;
  static const float w0[12] = {0, 1, 0, 0, /* x1 */ 0, 0, 0, 1, /* x3 */ 1, 0, 0, 0 /* x0 */};
  static const float s0[3] = {0, 0, 0};
  static const float w2[6] = {0, 0, 1, 0, 0, 0};
  static const float s2[2] = {0, 0.5f};
  static const float ew[6] = {1, 0, 0, 0, 1, 0};
  static const float eb[2] = {0, 0};
  uint32_t w0_off = place(b, w0, sizeof(w0));
  uint32_t s0_off = place(b, s0, sizeof(s0));
  uint32_t w2_off = place(b, w2, sizeof(w2));
  uint32_t s2_off = place(b, s2, sizeof(s2));
  uint8_t mask[12] = {0};
  put32(mask, MASK_ID);
  put16(mask + 4, 2u);
  put16(mask + 6, 2u);
  put16(mask + 8, 1u);
  put16(mask + 10, 3u);
  b->mask_off = place(b, mask, sizeof(mask));
  b->exit_w = place(b, ew, sizeof(ew));
  b->exit_b = place(b, eb, sizeof(eb));
  uint8_t table[4u + 2u * CMP_MODEL_EXIT_BYTES] = {0};
  put16(table, 1u);
  put16(table + 2, CMP_MODEL_EXIT_BYTES);
  for (uint32_t e = 0u; e < 2u; e++) {
    uint8_t *r = table + 4u + e * CMP_MODEL_EXIT_BYTES;
    put16(r, e);
    put16(r + 2, 3u);
    put32(r + 4, b->exit_w);
    put32(r + 8, b->exit_b);
    putf32(r + 12, 0.1f);
  }
  b->exit_off = place(b, table, sizeof(table));
  b->total = g_at + 4u;
  memcpy(h, "CMPM", 4u);
  put16(h + 4, 2u);
  put16(h + 6, CMP_MODEL_HEADER_BYTES);
  put32(h + 8, b->total);
  put16(h + 12, 3u);
  put16(h + 14, CMP_MODEL_LAYER_BYTES);
  put32(h + 16, CMP_MODEL_FLAG_MASK | CMP_MODEL_FLAG_EXITS);
  put16(h + 20, 1u);
  put16(h + 22, 2u);
  put16(h + 24, 2u);
  put16(h + 26, 2u);
  putf32(h + 28, 0.0f);
  putf32(h + 32, 1.0f);
  put32(h + 36, CMP_MODEL_HEADER_BYTES);
  put32(h + 40, b->mask_off);
  put32(h + 44, b->exit_off);
  uint8_t *t = h + CMP_MODEL_HEADER_BYTES;
  layer_record(t, CMP_LAYER_DENSE, CMP_WEIGHTS_F32, CMP_ACT_RELU, 4u, 3u, w0_off, s0_off, "fc1");
  layer_record(t + 64, CMP_LAYER_FLATTEN, CMP_WEIGHTS_NONE, CMP_ACT_NONE, 3u, 3u, 0u, 0u, "flat");
  layer_record(t + 128, CMP_LAYER_DENSE, CMP_WEIGHTS_F32, CMP_ACT_NONE, 3u, 2u, w2_off, s2_off, "logits");
  fix_crc(b);
}

/** Parses `b` after `edit` (applied to a fresh valid blob, then re-CRC'd) and checks the status. */
static void expect_status(void (*edit)(blob_t *), cmp_status_t want, const char *what) {
  static blob_t b;
  static cmp_model_t m;
  build(&b);
  edit(&b);
  fix_crc(&b);
  cmp_status_t s = cmp_model_parse(b.bytes, b.total, &m);
  char line[200];
  snprintf(line, sizeof(line), "parse: %s -> %s (got %s)", what, cmp_status_name(want), cmp_status_name(s));
  check(s == want, line);
}

static uint8_t *mask_sec(blob_t *b) { return b->bytes + b->mask_off; }
static uint8_t *exit_rec(blob_t *b, uint32_t e) { return b->bytes + b->exit_off + 4u + e * CMP_MODEL_EXIT_BYTES; }

static void e_none(blob_t *b) { (void)b; }
static void e_version3(blob_t *b) { put16(b->bytes + 4, 3u); }
static void e_version0(blob_t *b) { put16(b->bytes + 4, 0u); }
static void e_v1_flags(blob_t *b) { put16(b->bytes + 4, 1u); }
static void e_v1_plain(blob_t *b) {
  put16(b->bytes + 4, 1u);
  put32(b->bytes + 16, 0u);
  put32(b->bytes + 40, 0u);
  put32(b->bytes + 44, 0u);
}
static void e_v1_offset(blob_t *b) {
  e_v1_plain(b);
  put32(b->bytes + 44, b->exit_off);
}
static void e_unknown_flag(blob_t *b) { put32(b->bytes + 16, 7u); }
static void e_v2_no_flags(blob_t *b) {
  put32(b->bytes + 16, 0u);
  put32(b->bytes + 40, 0u);
  put32(b->bytes + 44, 0u);
}
static void e_mask_flag_no_offset(blob_t *b) { put32(b->bytes + 40, 0u); }
static void e_mask_offset_no_flag(blob_t *b) { put32(b->bytes + 16, CMP_MODEL_FLAG_EXITS); }
static void e_exit_offset_no_flag(blob_t *b) { put32(b->bytes + 16, CMP_MODEL_FLAG_MASK); }
static void e_mask_misaligned(blob_t *b) { put32(b->bytes + 40, b->mask_off + 2u); }
static void e_mask_outside(blob_t *b) { put32(b->bytes + 40, b->total - 4u); }
static void e_mask_k0(blob_t *b) { put16(mask_sec(b) + 6, 0u); }
static void e_mask_k_over(blob_t *b) { put16(mask_sec(b) + 6, 5u); }
static void e_mask_descending(blob_t *b) {
  put16(mask_sec(b) + 8, 3u);
  put16(mask_sec(b) + 10, 1u);
}
static void e_mask_duplicate(blob_t *b) { put16(mask_sec(b) + 10, 1u); }
static void e_mask_index_range(blob_t *b) { put16(mask_sec(b) + 10, 4u); }
static void e_exit_count0(blob_t *b) { put16(b->bytes + b->exit_off, 0u); }
static void e_exit_count5(blob_t *b) { put16(b->bytes + b->exit_off, 5u); }
static void e_exit_record_bytes(blob_t *b) { put16(b->bytes + b->exit_off + 2u, 12u); }
static void e_exit_table_misaligned(blob_t *b) { put32(b->bytes + 44, b->exit_off + 2u); }
static void e_exit_table_outside(blob_t *b) { put32(b->bytes + 44, b->total); }
static void e_exit_after_last(blob_t *b) { put16(exit_rec(b, 0), 2u); }
static void e_exit_features(blob_t *b) { put16(exit_rec(b, 0) + 2, 4u); }
static void e_exit_weights_misaligned(blob_t *b) { put32(exit_rec(b, 0) + 4, b->exit_w + 2u); }
static void e_exit_weights_outside(blob_t *b) { put32(exit_rec(b, 0) + 4, b->total - 20u); }
static void e_exit_bias_outside(blob_t *b) { put32(exit_rec(b, 0) + 8, b->total - 4u); }
static void e_two_exits(blob_t *b) { put16(b->bytes + b->exit_off, 2u); }
static void e_two_exits_same_layer(blob_t *b) {
  e_two_exits(b);
  put16(exit_rec(b, 1), 0u);
}
static void e_two_exits_descending(blob_t *b) {
  e_two_exits(b);
  put16(exit_rec(b, 0), 1u);
  put16(exit_rec(b, 1), 0u);
}

static void test_parse(void) {
  static blob_t b;
  static cmp_model_t m;
  build(&b);
  cmp_status_t s = cmp_model_parse(b.bytes, b.total, &m);
  check(s == CMP_OK && m.format_version == 2u && m.mask_id == MASK_ID && m.mask_units == 2u && m.mask_count == 2u &&
            m.mask_features[0] == 1u && m.mask_features[1] == 3u && m.exit_count == 1u && m.exits[0].after == 0u &&
            m.exits[0].features == 3u && m.exits[0].threshold == 0.1f &&
            m.exits[0].weights == (const float *)(const void *)(b.bytes + b.exit_w) &&
            m.exits[0].bias == (const float *)(const void *)(b.bytes + b.exit_b),
        "parse: a format-2 blob with a mask and an exit reads its sections in place");
  /* arena: buffer a holds the input (4 floats) and layer 2's output (2), b layer 0's (3): 16 + 12 = 28; no layer
   * binarizes or convolves; exit logits align4(8) = 8, hand-off frame align4(8 + 2) = 12 */
  check(m.act_a_floats == 4u && m.act_b_bytes == 12u && m.bits_bytes == 0u && m.patch_floats == 0u,
        "arena: the plan ping-pongs layer outputs between a (input) and b, without bits or patch buffers");
  check(cmp_model_workspace_bytes(&m) == 28u + 8u + 12u, "arena: 16 + 12 + align4(4 classes) + align4(8 + K)");
  expect_status(e_none, CMP_OK, "the valid blob");
  expect_status(e_v1_plain, CMP_OK, "version 1 without flags or sections");
  expect_status(e_v2_no_flags, CMP_OK, "version 2 without flags or sections");
  expect_status(e_two_exits, CMP_OK, "two exits after layers 0 and 1");
  expect_status(e_version3, CMP_ERR_MODEL_VERSION, "format version 3");
  expect_status(e_version0, CMP_ERR_MODEL_VERSION, "format version 0");
  expect_status(e_v1_flags, CMP_ERR_UNSUPPORTED, "version 1 with mask and exit flags");
  expect_status(e_v1_offset, CMP_ERR_MODEL, "version 1 with a nonzero exit table offset");
  expect_status(e_unknown_flag, CMP_ERR_UNSUPPORTED, "an unknown flag bit 2");
  expect_status(e_mask_flag_no_offset, CMP_ERR_MODEL, "mask flag with offset 0");
  expect_status(e_mask_offset_no_flag, CMP_ERR_MODEL, "mask offset without its flag");
  expect_status(e_exit_offset_no_flag, CMP_ERR_MODEL, "exit table offset without its flag");
  expect_status(e_mask_misaligned, CMP_ERR_MODEL, "mask section not 4-aligned");
  expect_status(e_mask_outside, CMP_ERR_MODEL, "mask section in the CRC trailer");
  expect_status(e_mask_k0, CMP_ERR_MODEL, "mask with K = 0");
  expect_status(e_mask_k_over, CMP_ERR_MODEL, "mask with K > input count");
  expect_status(e_mask_descending, CMP_ERR_MODEL, "kept indices descending");
  expect_status(e_mask_duplicate, CMP_ERR_MODEL, "kept indices repeated");
  expect_status(e_mask_index_range, CMP_ERR_MODEL, "kept index = input count");
  expect_status(e_exit_count0, CMP_ERR_MODEL, "exit count 0");
  expect_status(e_exit_count5, CMP_ERR_MODEL, "exit count 5");
  expect_status(e_exit_record_bytes, CMP_ERR_MODEL, "exit record bytes 12");
  expect_status(e_exit_table_misaligned, CMP_ERR_MODEL, "exit table not 4-aligned");
  expect_status(e_exit_table_outside, CMP_ERR_MODEL, "exit table past the blob");
  expect_status(e_exit_after_last, CMP_ERR_MODEL, "exit after the last layer");
  expect_status(e_exit_features, CMP_ERR_MODEL, "exit features unequal to the layer's output");
  expect_status(e_exit_weights_misaligned, CMP_ERR_MODEL, "exit weights not 4-aligned");
  expect_status(e_exit_weights_outside, CMP_ERR_MODEL, "exit weights running into the trailer");
  expect_status(e_exit_bias_outside, CMP_ERR_MODEL, "exit bias in the trailer");
  expect_status(e_two_exits_same_layer, CMP_ERR_MODEL, "two exits after the same layer");
  expect_status(e_two_exits_descending, CMP_ERR_MODEL, "exits not in network order");
}

static uint32_t g_ticks;
static uint32_t ticking_counter(void) { return ++g_ticks; }

static uint8_t g_arena[4096] __attribute__((aligned(8)));
static cmp_runtime_t g_rt;

/** Loads `b` (after `edit`) into a fresh arena. */
static cmp_status_t load(void (*edit)(blob_t *)) {
  static blob_t b;
  build(&b);
  edit(&b);
  fix_crc(&b);
  memset(g_arena, 0xA5, sizeof(g_arena));
  memcpy(g_arena, b.bytes, b.total);
  cmp_arena_t arena;
  cmp_status_t s = cmp_arena_init(&arena, g_arena, sizeof(g_arena));
  return s == CMP_OK ? cmp_runtime_load(&g_rt, &arena, b.total, ticking_counter) : s;
}

static void set_threshold(float t) { g_rt.model.exits[0].threshold = t; }

/** Entropy of softmax([a, b]) in double. */
static double entropy2(double a, double b) {
  double m = a > b ? a : b;
  double ea = exp(a - m), eb = exp(b - m), s = ea + eb;
  return -(ea / s) * log(ea / s) - (eb / s) * log(eb / s);
}

static void write_input(float x0, float x1, float x2, float x3) {
  float *x = cmp_runtime_input(&g_rt);
  x[0] = x0;
  x[1] = x1;
  x[2] = x2;
  x[3] = x3;
}

static void test_runtime(void) {
  cmp_result_t r;
  check(load(e_none) == CMP_OK && cmp_runtime_required_bytes(&g_rt) == cmp_align4(g_rt.model.blob_bytes) + 48u &&
            g_rt.exit_logits != NULL && g_rt.handoff != NULL,
        "runtime: loads with the exit logits and the hand-off frame in the arena");
  double h = entropy2(4.0, 0.0);
  write_input(5.0f, 4.0f, 7.0f, 0.0f);
  set_threshold((float)h + 0.01f);
  int ok = cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 1u && r.label == 0u && r.exits_checked == 1u &&
           !r.handed_off && fabs((double)r.entropy - h) < 1e-6 && r.logits == g_rt.exit_logits &&
           r.logits[0] == 4.0f && r.logits[1] == 0.0f && g_rt.layer_cycles[0] > 0u && g_rt.layer_cycles[2] == 0u;
  check(ok, "exit: entropy below the threshold stops after layer 0 (exit 1, exit logits, later layers 0 cycles)");

  write_input(5.0f, 4.0f, 7.0f, 0.0f);
  set_threshold((float)h - 0.01f);
  ok = cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 0u && r.exits_checked == 1u && r.label == 1u &&
       r.logits[0] == 0.0f && r.logits[1] == 0.5f && g_rt.layer_cycles[2] > 0u;
  check(ok, "exit: entropy above the threshold runs on to the final classifier (exit 0)");
  check(ok && r.logits[0] == 0.0f, "mask: input feature 0 (not kept) is zeroed: the final logit reading it is 0");

  write_input(0.0f, 1000.0f, 0.0f, -1000.0f);
  set_threshold(1e-3f);
  ok = cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 1u && isfinite(r.entropy) && r.entropy >= 0.0f &&
       r.entropy < 1e-6f;
  check(ok, "exit: entropy of logits [1000, 0] is finite and about 0 (stable softmax)");

  write_input(0.0f, 1000.0f, 0.0f, -1000.0f);
  set_threshold(-1.0f);
  check(cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 0u, "exit: a negative threshold is never taken");

  /* the same model as format 1: no mask, so x0 reaches the final logit */
  check(load(e_v1_plain) == CMP_OK && g_rt.exit_logits == NULL && g_rt.handoff == NULL &&
            cmp_runtime_required_bytes(&g_rt) == cmp_align4(g_rt.model.blob_bytes) + 28u,
        "runtime: format 1 takes the version-1 workspace");
  write_input(5.0f, 4.0f, 7.0f, 0.0f);
  check(cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 0u && r.logits[0] == 5.0f && r.label == 0u,
        "mask: without a mask feature 0 reaches the final logit");

  /* hand-off mode */
  check(load(e_none) == CMP_OK, "handoff: reload the format-2 model");
  static const uint8_t pixels[4] = {10, 20, 30, 40};
  ok = cmp_runtime_write_pixels(&g_rt, 0u, pixels, 3u) == CMP_OK &&
       cmp_runtime_write_pixels(&g_rt, 3u, pixels + 3, 1u) == CMP_OK &&
       cmp_runtime_write_pixels(&g_rt, 3u, pixels, 2u) == CMP_ERR_RANGE;
  float *x = cmp_runtime_input(&g_rt);
  ok = ok && x[0] == 10.0f / 255.0f && x[3] == 40.0f / 255.0f;
  check(ok, "pixels: two chunks normalized into the input, a chunk past the input refused");
  uint8_t frame[64];
  uint32_t n = 0u;
  static const uint8_t want[10] = {0x01, 0x00, 0xD4, 0xC3, 0xB2, 0xA1, 0x02, 0x00, 20, 40};
  ok = cmp_runtime_handoff_bytes(&g_rt) == 10u &&
       cmp_runtime_handoff_frame(&g_rt, frame, sizeof(frame), &n) == CMP_OK && n == 10u &&
       memcmp(frame, want, 10u) == 0 && cmp_runtime_handoff_frame(&g_rt, frame, 9u, &n) == CMP_ERR_RANGE;
  check(ok, "handoff frame: [01][00][mask id LE][units LE][kept pixels 20 40]");

  h = entropy2(20.0 / 255.0, 40.0 / 255.0);
  set_threshold(-1.0f);
  ok = cmp_runtime_run_handoff(&g_rt, &r) == CMP_OK && r.handed_off && r.exit == 0u && r.exits_checked == 1u &&
       r.logits == NULL && fabs((double)r.entropy - h) < 1e-6 && g_rt.layer_cycles[0] > 0u &&
       g_rt.layer_cycles[1] == 0u && g_rt.layer_cycles[2] == 0u;
  check(ok, "handoff run: no confident exit stops after the last exit's layer, entropy of that exit");
  cmp_runtime_write_pixels(&g_rt, 0u, pixels, 4u);
  set_threshold(10.0f);
  ok = cmp_runtime_run_handoff(&g_rt, &r) == CMP_OK && !r.handed_off && r.exit == 1u && r.label == 1u;
  check(ok, "handoff run: a confident exit answers as usual (exit 1)");

  /* two exits: hand-off runs through the second exit's layer (1) and not layer 2 */
  check(load(e_two_exits) == CMP_OK, "handoff: load two exits");
  g_rt.model.exits[0].threshold = -1.0f;
  g_rt.model.exits[1].threshold = -1.0f;
  cmp_runtime_write_pixels(&g_rt, 0u, pixels, 4u);
  ok = cmp_runtime_run_handoff(&g_rt, &r) == CMP_OK && r.handed_off && r.exits_checked == 2u &&
       g_rt.layer_cycles[1] > 0u && g_rt.layer_cycles[2] == 0u;
  g_rt.model.exits[1].threshold = 10.0f;
  cmp_runtime_write_pixels(&g_rt, 0u, pixels, 4u);
  ok = ok && cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 2u && r.exits_checked == 2u;
  check(ok, "two exits: both checked in order, the second answers with exit 2");

  /* format 1: no mask and no exits: the frame carries every pixel, and hand-off runs nothing */
  check(load(e_v1_plain) == CMP_OK, "handoff: load format 1");
  cmp_runtime_write_pixels(&g_rt, 0u, pixels, 4u);
  static const uint8_t want_all[12] = {0x01, 0x00, 0, 0, 0, 0, 0x04, 0x00, 10, 20, 30, 40};
  ok = cmp_runtime_handoff_frame(&g_rt, frame, sizeof(frame), &n) == CMP_OK && n == 12u &&
       memcmp(frame, want_all, 12u) == 0;
  check(ok, "handoff frame without a mask: mask id 0, units = inputs, every pixel");
  g_ticks = 0u;
  ok = cmp_runtime_run_handoff(&g_rt, &r) == CMP_OK && r.handed_off && r.exits_checked == 0u && isnan(r.entropy) &&
       g_rt.layer_cycles[0] == 0u;
  check(ok, "handoff run without exits: runs no layer, entropy NaN");
}

/* ---- the link: requests in, answers captured ---- */

static uint8_t g_out[4096];
static uint32_t g_out_len;
static void capture(const uint8_t *bytes, uint32_t n) {
  if (g_out_len + n <= sizeof(g_out)) memcpy(g_out + g_out_len, bytes, n);
  g_out_len += n;
}

static cmp_link_t g_link;
static uint8_t g_link_arena[4096] __attribute__((aligned(8)));
static uint16_t g_seq = 100u;
static uint8_t g_answer_type;
static uint8_t g_answer[CMP_MAX_PAYLOAD];
static uint32_t g_answer_len;

/** Sends one request and decodes the one answer frame. */
static int request(uint8_t type, const uint8_t *payload, uint32_t n) {
  static uint8_t body[CMP_LINK_BODY_BYTES], wire[CMP_LINK_WIRE_BYTES];
  body[0] = CMP_PROTOCOL_VERSION;
  body[1] = type;
  put16(body + 2, g_seq++);
  memcpy(body + 4, payload, n);
  put32(body + 4 + n, cmp_crc32(body, 4u + n));
  uint32_t en = 0u;
  if (cmp_cobs_encode(body, 8u + n, wire, sizeof(wire), &en) != CMP_OK) return 0;
  g_out_len = 0u;
  cmp_link_feed(&g_link, 0u);
  for (uint32_t k = 0u; k < en; k++) cmp_link_feed(&g_link, wire[k]);
  cmp_link_feed(&g_link, 0u);
  if (g_out_len < 3u || g_out[0] != 0u || g_out[g_out_len - 1u] != 0u) return 0;
  uint32_t dn = 0u;
  if (cmp_cobs_decode(g_out + 1, g_out_len - 2u, body, sizeof(body), &dn) != CMP_OK || dn < 8u) return 0;
  if (cmp_crc32(body, dn - 4u) != get32(body + dn - 4u)) return 0;
  g_answer_type = body[1];
  g_answer_len = dn - 8u;
  memcpy(g_answer, body + 4, g_answer_len);
  return 1;
}

static int infer(uint8_t encoding, uint8_t flags, uint32_t offset, const uint8_t *values, uint32_t n) {
  uint8_t p[64] = {encoding, flags, 0, 0};
  put32(p + 4, offset);
  memcpy(p + 8, values, n);
  return request(CMP_MSG_INFER, p, 8u + n);
}

static int upload(void (*edit)(blob_t *)) {
  static blob_t b;
  build(&b);
  edit(&b);
  fix_crc(&b);
  uint8_t p[8 + 512];
  put32(p, b.total);
  put32(p + 4, cmp_crc32(b.bytes, b.total - 4u));
  if (!request(CMP_MSG_UPLOAD_BEGIN, p, 8u) || g_answer_type != CMP_MSG_ACK) return 0;
  put32(p, 0u);
  memcpy(p + 4, b.bytes, b.total);
  if (!request(CMP_MSG_UPLOAD_CHUNK, p, 4u + b.total) || g_answer_type != CMP_MSG_ACK) return 0;
  return request(CMP_MSG_UPLOAD_END, p, 0u) && g_answer_type == CMP_MSG_MODEL_INFO &&
         get32(g_answer + 16) == cmp_align4(b.total) + cmp_model_workspace_bytes(&g_link.rt.model);
}

static void test_link(void) {
  cmp_link_io_t io = {capture, ticking_counter, 1000u, CMP_COUNTER_HOST, "host"};
  check(cmp_link_init(&g_link, &io, g_link_arena, sizeof(g_link_arena)) == CMP_OK, "link: init");
  uint8_t hello = CMP_PROTOCOL_VERSION;
  int ok = request(CMP_MSG_HELLO, &hello, 1u) && g_answer_type == CMP_MSG_CAPS && get16(g_answer + 14) == 2u &&
           g_answer[17] == (CMP_FEATURE_INPUT_MASK | CMP_FEATURE_EARLY_EXIT | CMP_FEATURE_HANDOFF);
  check(ok, "CAPS: model format version 2, feature bits 0-2 set");
  check(upload(e_none) && get32(g_answer + 16) == cmp_align4(g_link.rt.model.blob_bytes) + 48u,
        "MODEL_INFO: arena used = blob + workspace(v1) + exit logits + hand-off frame");

  /* no exit confident: HANDOFF, pixels from two chunks */
  g_link.rt.model.exits[0].threshold = -1.0f;
  static const uint8_t pixels[4] = {10, 20, 30, 40};
  ok = infer(CMP_INPUT_U8, 0u, 0u, pixels, 2u) && g_answer_type == CMP_MSG_ACK && get32(g_answer + 4) == 2u &&
       infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_HANDOFF, 2u, pixels + 2, 2u);
  double h = entropy2(20.0 / 255.0, 40.0 / 255.0);
  static const uint8_t frame[10] = {0x01, 0x00, 0xD4, 0xC3, 0xB2, 0xA1, 0x02, 0x00, 20, 40};
  ok = ok && g_answer_type == CMP_MSG_HANDOFF && g_answer_len == 12u + 10u &&
       fabs((double)getf32(g_answer) - h) < 1e-6 && get32(g_answer + 4) > 0u && g_answer[8] == 1u &&
       g_answer[9] == 0u && g_answer[10] == 0u && g_answer[11] == 0u && memcmp(g_answer + 12, frame, 10u) == 0;
  check(ok, "HANDOFF: entropy f32, cycles u32, exits checked u8, 3 reserved, then the cmp-select/1 frame");
  ok = request(CMP_MSG_PROFILE_GET, (const uint8_t *)"\0", 1u) && g_answer_type == CMP_MSG_PROFILE &&
       get32(g_answer + 20) == 1u && get16(g_answer + 40) == 3u && get32(g_answer + 44) > 0u &&
       get32(g_answer + 48) == 0u && get32(g_answer + 52) == 0u;
  check(ok, "PROFILE: the hand-off counts as an inference; layers not run report 0 cycles");

  /* a confident exit: RESULT with exit 1 and the exit logits */
  g_link.rt.model.exits[0].threshold = 10.0f;
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_HANDOFF | CMP_INFER_LOGITS, 0u, pixels, 4u) &&
       g_answer_type == CMP_MSG_RESULT && get16(g_answer) == 1u && g_answer[2] == 1u && get16(g_answer + 16) == 2u &&
       getf32(g_answer + 20) == 20.0f / 255.0f && getf32(g_answer + 24) == 40.0f / 255.0f;
  check(ok, "INFER HANDOFF with a confident exit: RESULT exit 1 with the exit logits");

  /* without HANDOFF the whole model runs (exit not confident) */
  g_link.rt.model.exits[0].threshold = -1.0f;
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_LOGITS, 0u, pixels, 4u) && g_answer_type == CMP_MSG_RESULT &&
       g_answer[2] == 0u && getf32(g_answer + 20) == 0.0f && getf32(g_answer + 24) == 0.5f;
  check(ok, "INFER without HANDOFF: the final classifier answers (exit 0), masked input 0 contributes nothing");

  uint8_t f32[16];
  for (uint32_t k = 0u; k < 4u; k++) putf32(f32 + 4u * k, 0.25f);
  ok = infer(CMP_INPUT_F32, CMP_INFER_RUN | CMP_INFER_HANDOFF, 0u, f32, 16u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_UNSUPPORTED && g_answer[1] == CMP_MSG_INFER;
  check(ok, "INFER HANDOFF with float32 values: ERROR UNSUPPORTED");
  ok = infer(CMP_INPUT_F32, 0u, 0u, f32, 8u) && g_answer_type == CMP_MSG_ACK &&
       infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_HANDOFF, 2u, pixels, 2u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_UNSUPPORTED;
  check(ok, "INFER HANDOFF after a float32 chunk of the same input: ERROR UNSUPPORTED");
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_HANDOFF, 0u, pixels, 4u) && g_answer_type == CMP_MSG_HANDOFF;
  check(ok, "INFER HANDOFF: a new input from element 0 is accepted again");

  /* RUN before every input arrived, a chunk past a gap, reserved flag bits: refused, nothing runs on a stale buffer */
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN, 0u, pixels, 3u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_STATE && get32(g_answer + 4) == 3u;
  check(ok, "INFER RUN after 3 of 4 inputs: ERROR STATE, detail = inputs received");
  ok = infer(CMP_INPUT_U8, 0u, 0u, pixels, 1u) && g_answer_type == CMP_MSG_ACK &&
       infer(CMP_INPUT_U8, CMP_INFER_RUN, 2u, pixels + 2, 2u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_STATE && get32(g_answer + 4) == 1u;
  check(ok, "INFER chunk after a gap (element 1 missing): ERROR STATE, detail = inputs received");
  for (uint32_t bit = 3u; bit < 8u; bit++) {
    uint8_t flags = (uint8_t)(CMP_INFER_RUN | (1u << bit));
    ok = infer(CMP_INPUT_U8, flags, 0u, pixels, 4u) && g_answer_type == CMP_MSG_ERROR && g_answer[0] == CMP_ERR_ARG &&
         get32(g_answer + 4) == flags;
    check(ok, "INFER with a reserved flag bit (3-7): ERROR ARG, detail = the flags");
  }
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN, 0u, pixels, 4u) && g_answer_type == CMP_MSG_RESULT;
  check(ok, "INFER after the refusals: a whole input runs");

  ok = request(CMP_MSG_INFER_MASKED, pixels, 4u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_UNSUPPORTED && request(CMP_MSG_HANDOFF, pixels, 0u) && g_answer_type == CMP_MSG_ERROR &&
       g_answer[0] == CMP_ERR_UNSUPPORTED;
  check(ok, "INFER_MASKED (reserved) and HANDOFF as a request: ERROR UNSUPPORTED");

  /* format 1 model: hand-off runs nothing and carries every pixel */
  check(upload(e_v1_plain), "link: upload format 1");
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN | CMP_INFER_HANDOFF, 0u, pixels, 4u) && g_answer_type == CMP_MSG_HANDOFF &&
       g_answer_len == 12u + 12u && isnan(getf32(g_answer)) && g_answer[8] == 0u && get16(g_answer + 18) == 4u &&
       memcmp(g_answer + 20, pixels, 4u) == 0;
  check(ok, "HANDOFF without mask or exits: NaN entropy, 0 exits checked, every pixel");
}

/* ---- a model compiled into the image: read in place, the arena holds only the workspace ---- */

static void test_builtin(void) {
  static blob_t b; /* stands for the flash array: outside the arena */
  build(&b);
  static uint8_t small[48] __attribute__((aligned(8))); /* exactly the workspace: 16 + 12 + 8 + 12 */
  cmp_arena_t arena;
  check(cmp_arena_init(&arena, small, sizeof(small)) == CMP_OK &&
            cmp_runtime_load_const(&g_rt, &arena, b.bytes, b.total, ticking_counter) == CMP_OK &&
            cmp_runtime_required_bytes(&g_rt) == 48u && arena.used <= 48u && g_rt.model.blob == b.bytes,
        "built-in: the blob is read where it lies; the arena holds the workspace alone (48 bytes)");
  write_input(5.0f, 4.0f, 7.0f, 0.0f);
  cmp_result_t r;
  g_rt.model.exits[0].threshold = -1.0f;
  check(cmp_runtime_run(&g_rt, &r) == CMP_OK && r.exit == 0u && r.logits[0] == 0.0f && r.logits[1] == 0.5f,
        "built-in: runs as the uploaded model does");
  check(cmp_arena_init(&arena, small, 44u) == CMP_OK &&
            cmp_runtime_load_const(&g_rt, &arena, b.bytes, b.total, ticking_counter) == CMP_ERR_ARENA,
        "built-in: an arena 4 bytes short of the workspace is refused (ARENA)");

  cmp_link_io_t io = {capture, ticking_counter, 1000u, CMP_COUNTER_HOST, "host"};
  check(cmp_link_init(&g_link, &io, small, sizeof(small)) == CMP_OK &&
            cmp_link_load_builtin(&g_link, b.bytes, b.total) == CMP_OK,
        "built-in: the link loads it at init");
  uint8_t hello = CMP_PROTOCOL_VERSION;
  uint32_t crc = cmp_crc32(b.bytes, b.total - 4u);
  int ok = request(CMP_MSG_HELLO, &hello, 1u) && g_answer_type == CMP_MSG_CAPS &&
           (g_answer[17] & CMP_FEATURE_BUILTIN) != 0u && g_answer[18] == 2u && get32(g_answer + 20) == crc &&
           get32(g_answer + 24) == b.total && g_answer[28] == 4u && g_answer_len == 33u + 4u &&
           get32(g_answer + 33) == 48u;
  check(ok, "CAPS: built-in feature bit, model loaded = 2 (flash), its CRC and bytes, arena used after the name");
  static const uint8_t pixels[4] = {10, 20, 30, 40};
  ok = infer(CMP_INPUT_U8, CMP_INFER_RUN, 0u, pixels, 4u) && g_answer_type == CMP_MSG_RESULT;
  check(ok, "built-in: INFER answers without an upload");
  ok = request(CMP_MSG_RESET, (const uint8_t *)"\0", 1u) && g_answer_type == CMP_MSG_ACK &&
       request(CMP_MSG_HELLO, &hello, 1u) && g_answer[18] == 2u && get32(g_answer + 20) == crc;
  check(ok, "RESET loads the built-in model again");
}

int main(void) {
  test_parse();
  test_runtime();
  test_link();
  test_builtin();
  printf("checks %d failures %d\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}
