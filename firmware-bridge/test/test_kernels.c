/* test_kernels.c: host build of the firmware core, checked against test/golden/bitpack.json.
 *   test-kernels golden < cases.txt     bit format and kernels on the golden vectors (text from the node test)
 *   test-kernels run BLOB INPUTS N      runs a model blob on N float32 inputs: a line "label exit entropy logits" each
 * Prints "ok <what>" per passed check and "FAIL <what>: <why>" per failure; exits 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmp/arena.h"
#include "cmp/bitpack.h"
#include "cmp/cobs.h"
#include "cmp/crc32.h"
#include "cmp/kernels.h"
#include "cmp/runtime.h"

#define MAX_BITS 4096u

static int g_failures;

static void check(int ok, const char *name, const char *what) {
  if (ok) {
    printf("ok %s %s\n", name, what);
  } else {
    printf("FAIL %s %s\n", name, what);
    g_failures++;
  }
}

static uint32_t g_rng = 12345u;
static float rnd(void) { /* uniform in [-1, 1), deterministic */
  g_rng = g_rng * 1664525u + 1013904223u;
  return (float)(g_rng >> 8) / 8388608.0f - 1.0f;
}

static int read_label(const char *want) {
  char word[64];
  return scanf("%63s", word) == 1 && strcmp(word, want) == 0;
}

/** Reference dot product in double. */
static double dot(const float *a, const float *b, uint32_t n) {
  double s = 0.0;
  for (uint32_t k = 0u; k < n; k++) s += (double)a[k] * (double)b[k];
  return s;
}

static double abs_dot(const float *a, const float *b, uint32_t n) {
  double s = 0.0;
  for (uint32_t k = 0u; k < n; k++) s += fabs((double)a[k] * (double)b[k]);
  return s;
}

/** |got - want| within float32 summation error of the products' magnitudes. */
static int close_to(float got, double want, double scale) {
  return fabs((double)got - want) <= 1e-5 * scale + 1e-6;
}

static void test_dense(const char *name, const cmp_binary_matrix_t *w, const float *wf) {
  uint32_t n = w->row_length;
  static float x[MAX_BITS], xq[MAX_BITS], y[64], y2[64];
  static uint8_t xbits[MAX_BITS / 8u];
  for (uint32_t k = 0u; k < n; k++) x[k] = rnd();
  int ok = cmp_dense_binary_f32(w, x, y) == CMP_OK && cmp_dense_f32(wf, w->rows, n, x, y2) == CMP_OK;
  for (uint32_t r = 0u; r < w->rows && ok; r++) {
    double s = abs_dot(wf + r * n, x, n);
    ok = close_to(y[r], dot(wf + r * n, x, n), s) && close_to(y2[r], dot(wf + r * n, x, n), s);
  }
  check(ok, name, "dense: masked-sum and float kernels equal the expanded weights' dot products");

  memcpy(xq, x, sizeof(float) * n);
  cmp_binary_vector_t xb = {xbits, 0.0f, 0.0f, n};
  ok = cmp_binarize_dab(xq, n, 1u, xbits, &xb.upper, &xb.lower) == CMP_OK;
  cmp_dequantize(xbits, n, xb.upper, xb.lower, xq);
  ok = ok && cmp_dense_binary_bin(w, &xb, y) == CMP_OK;
  for (uint32_t r = 0u; r < w->rows && ok; r++) ok = close_to(y[r], dot(wf + r * n, xq, n), abs_dot(wf + r * n, xq, n));
  check(ok, name, "dense: popcount kernel on DAB inputs equals the float product of the two-level values");

  ok = cmp_binarize_xnor(x, n, xbits, &xb.upper, &xb.lower) == CMP_OK && xb.upper == -xb.lower;
  cmp_dequantize(xbits, n, xb.upper, xb.lower, xq);
  for (uint32_t k = 0u; k < n && ok; k++) ok = (x[k] >= 0.0f) == (xq[k] > 0.0f);
  ok = ok && cmp_dense_binary_bin(w, &xb, y) == CMP_OK;
  for (uint32_t r = 0u; r < w->rows && ok; r++) ok = close_to(y[r], dot(wf + r * n, xq, n), abs_dot(wf + r * n, xq, n));
  check(ok, name, "dense: popcount kernel on XNOR inputs (bit = x >= 0, levels +-mean|x|)");
}

/** Conv over a 5x5 input with the golden rows as filters: k = 2 when rowLength is a multiple of 4, else 1. */
static void test_conv(const char *name, const cmp_binary_matrix_t *w, const float *wf) {
  uint32_t k = (w->row_length % 4u == 0u) ? 2u : 1u;
  cmp_shape_t in = {w->row_length / (k * k), 5u, 5u};
  uint32_t oh = in.height - k + 1u;
  uint32_t ow = in.width - k + 1u;
  uint32_t count = cmp_shape_count(in);
  static float x[MAX_BITS], xq[MAX_BITS], y[MAX_BITS], patch[MAX_BITS], ref_patch[MAX_BITS];
  static uint8_t xbits[MAX_BITS / 8u], patch_bits[MAX_BITS / 8u];
  for (uint32_t i = 0u; i < count; i++) x[i] = rnd();
  for (int variant = 0; variant < 3; variant++) {
    const float *input = x;
    cmp_binary_vector_t xb = {xbits, 0.0f, 0.0f, count};
    int ok = 1;
    if (variant == 0) {
      ok = cmp_conv_binary_f32(w, k, in, x, y, patch) == CMP_OK;
    } else if (variant == 1) {
      memcpy(xq, x, sizeof(float) * count);
      ok = cmp_binarize_dab(xq, in.channels, in.height * in.width, xbits, &xb.upper, &xb.lower) == CMP_OK;
      cmp_dequantize(xbits, count, xb.upper, xb.lower, xq);
      ok = ok && cmp_conv_binary_bin(w, k, in, &xb, y, patch_bits) == CMP_OK;
      input = xq;
    } else {
      ok = cmp_conv_f32(wf, w->rows, k, in, x, y, patch) == CMP_OK;
    }
    for (uint32_t f = 0u; f < w->rows && ok; f++) {
      for (uint32_t oy = 0u; oy < oh && ok; oy++) {
        for (uint32_t ox = 0u; ox < ow && ok; ox++) {
          uint32_t i = 0u;
          for (uint32_t c = 0u; c < in.channels; c++)
            for (uint32_t ky = 0u; ky < k; ky++)
              for (uint32_t kx = 0u; kx < k; kx++) {
                ref_patch[i++] = input[(c * in.height + oy + ky) * in.width + ox + kx];
              }
          const float *wr = wf + f * w->row_length;
          double want = dot(wr, ref_patch, w->row_length);
          ok = close_to(y[(f * oh + oy) * ow + ox], want, abs_dot(wr, ref_patch, w->row_length));
        }
      }
    }
    static const char *what[3] = {"conv: binary weights, float input (masked sum) equal the reference convolution",
                                  "conv: binary weights, DAB input (popcount) equal the reference convolution",
                                  "conv: float weights equal the reference convolution"};
    check(ok, name, what[variant]);
  }
}

static int run_golden(void) {
  int cases = 0;
  char name[64];
  while (scanf("%63s", name) == 1) {
    if (strcmp(name, "case") != 0) return 1;
    uint32_t rows = 0u, row_length = 0u;
    if (scanf("%63s %u %u", name, &rows, &row_length) != 3 || rows * row_length > MAX_BITS || rows > 64u) return 1;
    uint32_t row_bytes = cmp_packed_row_bytes(row_length);
    static uint8_t bits[MAX_BITS], packed[MAX_BITS], mine[MAX_BITS];
    static uint16_t up16[64], lo16[64];
    static float up[64], lo[64], weights[MAX_BITS], expanded[MAX_BITS];
    unsigned v;
    if (!read_label("bits")) return 1;
    for (uint32_t i = 0u; i < rows * row_length; i++) {
      if (scanf("%u", &v) != 1) return 1;
      bits[i] = (uint8_t)v;
    }
    if (!read_label("packed")) return 1;
    for (uint32_t i = 0u; i < rows * row_bytes; i++) {
      if (scanf("%u", &v) != 1) return 1;
      packed[i] = (uint8_t)v;
    }
    if (!read_label("upper16")) return 1;
    for (uint32_t r = 0u; r < rows; r++) {
      if (scanf("%u", &v) != 1) return 1;
      up16[r] = (uint16_t)v;
    }
    if (!read_label("lower16")) return 1;
    for (uint32_t r = 0u; r < rows; r++) {
      if (scanf("%u", &v) != 1) return 1;
      lo16[r] = (uint16_t)v;
    }
    if (!read_label("upper")) return 1;
    for (uint32_t r = 0u; r < rows; r++)
      if (scanf("%f", &up[r]) != 1) return 1;
    if (!read_label("lower")) return 1;
    for (uint32_t r = 0u; r < rows; r++)
      if (scanf("%f", &lo[r]) != 1) return 1;
    if (!read_label("weights")) return 1;
    for (uint32_t i = 0u; i < rows * row_length; i++)
      if (scanf("%f", &weights[i]) != 1) return 1;

    cmp_pack_bits(bits, rows, row_length, mine);
    check(memcmp(mine, packed, rows * row_bytes) == 0, name, "pack: bits pack to the golden bytes");
    cmp_unpack_bits(packed, rows, row_length, mine);
    check(memcmp(mine, bits, rows * row_length) == 0, name, "unpack: golden bytes unpack to the bits");
    int ok = 1;
    for (uint32_t r = 0u; r < rows; r++) {
      ok = ok && cmp_f16_to_f32(up16[r]) == up[r] && cmp_f16_to_f32(lo16[r]) == lo[r];
    }
    check(ok, name, "float16: levels decode to the golden values");
    cmp_expand_binary(packed, rows, row_length, up16, lo16, expanded);
    check(memcmp(expanded, weights, sizeof(float) * rows * row_length) == 0, name,
          "expand: lower + (upper - lower) * bit equals the golden weights exactly");
    uint32_t ones = 0u;
    for (uint32_t i = 0u; i < rows * row_length; i++) ones += bits[i];
    check(cmp_popcount_row(packed, rows * row_bytes) == ones, name, "popcount: set bits of the packed rows");

    cmp_binary_matrix_t w = {packed, up16, lo16, rows, row_length};
    test_dense(name, &w, weights);
    test_conv(name, &w, weights);
    cases++;
  }
  /* Shared helpers the golden file does not cover. */
  check(cmp_crc32((const uint8_t *)"123456789", 9u) == 0xCBF43926u, "crc32", "check value of \"123456789\"");
  static uint8_t raw[600], enc[700], dec[700];
  for (uint32_t i = 0u; i < sizeof(raw); i++) raw[i] = (uint8_t)(i % 7u == 0u ? 0u : i);
  uint32_t en = 0u, dn = 0u;
  int ok = cmp_cobs_encode(raw, sizeof(raw), enc, sizeof(enc), &en) == CMP_OK && memchr(enc, 0, en) == NULL &&
           cmp_cobs_decode(enc, en, dec, sizeof(dec), &dn) == CMP_OK && dn == sizeof(raw) &&
           memcmp(raw, dec, dn) == 0;
  check(ok, "cobs", "round trip of 600 bytes with zeros and long runs");
  float logits[4] = {1.0f, 3.0f, 3.0f, -2.0f};
  check(cmp_argmax(logits, 4u) == 1u, "argmax", "first index on ties");
  float uniform[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  check(fabsf(cmp_softmax_entropy(uniform, 4u) - logf(4.0f)) < 1e-6f, "entropy", "uniform logits give log(n) nats");
  float pool_in[8] = {1, 5, 2, 0, -1, -3, 7, 4}; /* [1, 2, 4] */
  float pool_out[2];
  cmp_shape_t ps = {1u, 2u, 4u};
  check(cmp_maxpool(pool_in, ps, 2u, pool_out) == CMP_OK && pool_out[0] == 5.0f && pool_out[1] == 7.0f, "maxpool",
        "2x2 windows");
  printf("cases %d failures %d\n", cases, g_failures);
  return cases > 0 && g_failures == 0 ? 0 : 1;
}

static uint32_t host_counter(void) { return 0u; }

static int run_model(const char *blob_path, const char *inputs_path, int n) {
  static uint8_t arena_mem[8u << 20] __attribute__((aligned(8)));
  FILE *f = fopen(blob_path, "rb");
  if (f == NULL) return 2;
  uint32_t bytes = (uint32_t)fread(arena_mem, 1u, sizeof(arena_mem), f);
  fclose(f);
  cmp_arena_t arena;
  static cmp_runtime_t rt;
  cmp_status_t s = cmp_arena_init(&arena, arena_mem, sizeof(arena_mem));
  if (s == CMP_OK) s = cmp_runtime_load(&rt, &arena, bytes, host_counter);
  if (s != CMP_OK) {
    printf("FAIL load %s\n", cmp_status_name(s));
    return 1;
  }
  FILE *in = fopen(inputs_path, "rb");
  if (in == NULL) return 2;
  uint32_t count = cmp_shape_count(rt.model.input);
  for (int i = 0; i < n; i++) {
    if (fread(cmp_runtime_input(&rt), sizeof(float), count, in) != count) return 2;
    cmp_result_t r;
    if ((s = cmp_runtime_run(&rt, &r)) != CMP_OK) {
      printf("FAIL run %s\n", cmp_status_name(s));
      return 1;
    }
    printf("%u %u %.9g", r.label, r.exit, (double)r.entropy);
    for (uint32_t c = 0u; c < rt.model.classes; c++) printf(" %.9g", (double)r.logits[c]);
    printf("\n");
  }
  fclose(in);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "golden") == 0) return run_golden();
  if (argc == 5 && strcmp(argv[1], "run") == 0) return run_model(argv[2], argv[3], atoi(argv[4]));
  fprintf(stderr, "usage: test-kernels golden < cases.txt | test-kernels run BLOB INPUTS N\n");
  return 2;
}
