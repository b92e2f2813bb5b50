/* The arithmetic of the CUDA pooling kernels (cuda/math/pool.h), compiled for the host: a host
 * model of each kernel (one thread per output or input element, calling the header's functions)
 * against the CPU backend's ops bit for bit (max-pool forward and argmax, the max-pool backward's
 * gather against the CPU's scatter, both average-pool ops) and against the double references
 * (tests/ref/ref_nn.h, tests/ref/ref_exact.h); the windows covering an input element against
 * brute force; the bad-argmax rule against the CPU's count. Shapes: the models' 2x2/2 (the CPU's
 * vectorised path), 3x3/2 pad 1, overlapping windows (stride < kernel), stride 1, windows over
 * both edges, a 7x7 window, the identity, the 16x16 u8 limit, an even kernel with pad 2; inputs
 * with many exact ties, all negative (padding would win if it took part) and -inf; the op suite's
 * hand-derived tie and padding cases. Runs without a GPU (label cpu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/pool.h"
#include "engine/backend/backend.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_exact.h"
#include "ref/ref_nn.h"

#define CLASS_ATOL 1e-5
#define CLASS_RTOL 1e-4

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  cr_assert_not_null(p);
  return p;
}

static double *widen(const float *f, size_t n) {
  double *d = xmalloc(n * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

static void expect_bitwise(const char *what, const float *got, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      cr_expect_fail("%s: element %zu is %.9g, expected %.9g", what, i, (double)got[i], (double)want[i]);
      return;
    }
}

static void expect_same_u8(const char *what, const uint8_t *got, const uint8_t *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (got[i] != want[i]) {
      cr_expect_fail("%s: argmax %zu is %d, expected %d", what, i, got[i], want[i]);
      return;
    }
}

typedef struct pool_case {
  int n, c, h, w, kernel, stride, pad;
  const char *what;
} pool_case;

static const pool_case CASES[] = {
    {2, 3, 7, 9, 2, 2, 0, "2x2/2, odd extents (the CPU's vectorised path)"},
    {1, 3, 8, 8, 2, 2, 0, "2x2/2, even extents"},
    {3, 2, 9, 7, 3, 2, 1, "3x3/2 pad 1: overlapping windows"},
    {1, 5, 6, 5, 3, 1, 1, "3x3/1 pad 1: heavy overlap"},
    {2, 3, 5, 6, 2, 1, 1, "2x2/1 pad 1: windows over both edges"},
    {1, 2, 13, 11, 7, 2, 3, "7x7/2 pad 3"},
    {2, 2, 5, 4, 1, 1, 0, "identity window"},
    {1, 1, 16, 16, 16, 1, 0, "16x16: the u8 limit"},
    {1, 2, 10, 11, 4, 3, 2, "4x4/3 pad 2: even kernel, windows half in the padding"},
    {2, 2, 9, 9, 3, 3, 0, "3x3/3: windows side by side"},
    {1, 2, 11, 9, 5, 4, 2, "5x5/4 pad 2"},
    {1, 1, 5, 5, 1, 2, 0, "1x1/2: inputs no window covers"},
};
enum { CASE_COUNT = sizeof CASES / sizeof CASES[0] };

enum { DATA_TIES, DATA_NEGATIVE, DATA_NEG_INF };
static const char *const DATA_NAMES[] = {"ties", "all negative", "-inf"};

static fg_pool_geom geom_of(const pool_case *k) {
  const fg_ref_pool_shape s = {k->n, k->c, k->h, k->w, k->kernel, k->stride, k->pad};
  fg_pool_geom g = {k->h, k->w, fg_ref_pool_out_h(&s), fg_ref_pool_out_w(&s), k->kernel, k->stride, k->pad};
  return g;
}

static fg_ref_pool_shape ref_shape(const pool_case *k) {
  const fg_ref_pool_shape s = {k->n, k->c, k->h, k->w, k->kernel, k->stride, k->pad};
  return s;
}

static fg_pool_desc desc_of(const pool_case *k) {
  const fg_pool_desc d = {k->kernel, k->stride, k->pad};
  return d;
}

/* Values from a few levels (many exact ties), shifted below zero, or partly -inf. */
static float *pool_input(size_t n, uint64_t seed, int data) {
  float *x = xmalloc(n * sizeof *x);
  fgt_fill_uniform(x, n, seed, 0.0f, 1.0f);
  for (size_t i = 0; i < n; i++) {
    const float level = floorf(x[i] * 5.0f) * 0.5f - 1.0f; /* -1, -0.5, 0, 0.5, 1 */
    x[i] = data == DATA_NEGATIVE ? level - 2.0f : level;
    if (data == DATA_NEG_INF && i % 3 != 0) x[i] = -INFINITY;
  }
  return x;
}

/* ----------------------------------------------------------------------------------------- */
/* Host models of the kernels (cuda/pool.cu)                                                  */

/* maxpool_forward_kernel: one thread per output. argmax may be NULL. */
static void model_maxpool_forward(const fg_pool_geom *g, int64_t planes, const float *x, float *y,
                                  uint8_t *argmax) {
  const int64_t out_plane = g->ho * g->wo;
  for (int64_t o = 0; o < planes * out_plane; o++) {
    const int64_t p = o / out_plane, r = o % out_plane;
    int pos;
    y[o] = fg_maxpool_window(g, x + p * g->h * g->w, r / g->wo, r % g->wo, &pos);
    if (argmax) argmax[o] = (uint8_t)pos;
  }
}

/* maxpool_backward_kernel: one thread per input element. */
static void model_maxpool_backward(const fg_pool_geom *g, int64_t planes, const float *dy, const uint8_t *argmax,
                                   float *dx, int accumulate) {
  const int64_t in_plane = g->h * g->w, out_plane = g->ho * g->wo;
  for (int64_t i = 0; i < planes * in_plane; i++) {
    const int64_t p = i / in_plane, r = i % in_plane;
    const float init = accumulate ? dx[i] : 0.0f;
    dx[i] = fg_maxpool_gather(g, dy + p * out_plane, argmax + p * out_plane, r / g->w, r % g->w, init);
  }
}

/* maxpool_argmax_check_kernel and its report: the number of bad values and the first's position. */
static int64_t model_bad_argmax(const fg_pool_geom *g, int64_t planes, const uint8_t *argmax, int64_t *first) {
  const int64_t out_plane = g->ho * g->wo;
  int64_t bad = 0;
  *first = -1;
  for (int64_t o = 0; o < planes * out_plane; o++) {
    const int64_t r = o % out_plane;
    int64_t iy, ix;
    if (fg_maxpool_argmax_input(g, r / g->wo, r % g->wo, argmax[o], &iy, &ix)) continue;
    if (bad++ == 0) *first = o;
  }
  return bad;
}

/* ----------------------------------------------------------------------------------------- */
/* The windows covering an input element                                                      */

Test(cuda_math_pool, covering_windows_match_brute_force) {
  for (int64_t kernel = 1; kernel <= 7; kernel++)
    for (int64_t stride = 1; stride <= 4; stride++)
      for (int64_t pad = 0; pad <= kernel / 2; pad++)
        for (int64_t in = kernel > 2 * pad ? kernel - 2 * pad : 1; in <= 12; in++) {
          const int64_t out = (in + 2 * pad - kernel) / stride + 1;
          for (int64_t i = 0; i < in; i++) {
            int64_t lo, hi, want_lo = -1, want_hi = -1;
            for (int64_t o = 0; o < out; o++)
              if (o * stride - pad <= i && i < o * stride - pad + kernel) {
                if (want_lo < 0) want_lo = o;
                want_hi = o + 1;
              }
            fg_pool_covering(i, out, kernel, stride, pad, &lo, &hi);
            if (want_lo < 0) {
              cr_assert_geq(lo, hi, "k%lld s%lld p%lld in %lld: input %lld is covered by [%lld, %lld)",
                            (long long)kernel, (long long)stride, (long long)pad, (long long)in, (long long)i,
                            (long long)lo, (long long)hi);
            } else {
              cr_assert(lo == want_lo && hi == want_hi,
                        "k%lld s%lld p%lld in %lld: input %lld covered by [%lld, %lld), expected [%lld, %lld)",
                        (long long)kernel, (long long)stride, (long long)pad, (long long)in, (long long)i,
                        (long long)lo, (long long)hi, (long long)want_lo, (long long)want_hi);
            }
          }
        }
}

/* ----------------------------------------------------------------------------------------- */
/* Max pooling against the CPU backend and the references                                     */

Test(cuda_math_pool, maxpool_forward_is_the_cpus_bit_for_bit) {
  fgt_setup_cpu(1);
  for (int ci = 0; ci < CASE_COUNT; ci++)
    for (int data = DATA_TIES; data <= DATA_NEG_INF; data++) {
      const pool_case *k = &CASES[ci];
      const fg_pool_geom g = geom_of(k);
      const fg_ref_pool_shape s = ref_shape(k);
      const fg_pool_desc d = desc_of(k);
      const int64_t planes = (int64_t)k->n * k->c;
      const size_t nx = (size_t)(planes * g.h * g.w), ny = (size_t)(planes * g.ho * g.wo);
      float *x = pool_input(nx, 10 + (uint64_t)ci, data);
      float *y = xmalloc(ny * 4), *cy = xmalloc(ny * 4), *cy2 = xmalloc(ny * 4), *ry_f = xmalloc(ny * 4);
      uint8_t *am = xmalloc(ny), *cam = xmalloc(ny), *ram = xmalloc(ny);
      double *xd = widen(x, nx), *ry = xmalloc(ny * 8);

      model_maxpool_forward(&g, planes, x, y, am);
      fg_tensor tx = fg_tensor_4d(x, k->n, k->c, k->h, k->w);
      fg_tensor ty = fg_tensor_4d(cy, k->n, k->c, g.ho, g.wo), ty2 = fg_tensor_4d(cy2, k->n, k->c, g.ho, g.wo);
      const int64_t shape[4] = {k->n, k->c, g.ho, g.wo};
      fg_tensor tam = fg_tensor_view(cam, FG_U8, fg_host_device(), 4, shape);
      FGT_OK(fg_maxpool_forward(&d, &tx, &ty, &tam));
      FGT_OK(fg_maxpool_forward(&d, &tx, &ty2, NULL));
      fg_ref_maxpool_forward(&s, xd, ry, ram);
      for (size_t i = 0; i < ny; i++) ry_f[i] = (float)ry[i];

      char what[160];
      snprintf(what, sizeof what, "%s, %s: y vs CPU", k->what, DATA_NAMES[data]);
      expect_bitwise(what, y, cy, ny);
      snprintf(what, sizeof what, "%s, %s: y vs CPU without argmax", k->what, DATA_NAMES[data]);
      expect_bitwise(what, y, cy2, ny);
      snprintf(what, sizeof what, "%s, %s: argmax vs CPU", k->what, DATA_NAMES[data]);
      expect_same_u8(what, am, cam, ny);
      snprintf(what, sizeof what, "%s, %s: y vs reference", k->what, DATA_NAMES[data]);
      expect_bitwise(what, y, ry_f, ny);
      snprintf(what, sizeof what, "%s, %s: argmax vs reference", k->what, DATA_NAMES[data]);
      expect_same_u8(what, am, ram, ny);

      free(x), free(y), free(cy), free(cy2), free(ry_f), free(am), free(cam), free(ram), free(xd), free(ry);
    }
}

Test(cuda_math_pool, maxpool_backward_is_the_cpus_bit_for_bit) {
  fgt_setup_cpu(1);
  for (int ci = 0; ci < CASE_COUNT; ci++) {
    const pool_case *k = &CASES[ci];
    const fg_pool_geom g = geom_of(k);
    const fg_ref_pool_shape s = ref_shape(k);
    const fg_pool_desc d = desc_of(k);
    const int64_t planes = (int64_t)k->n * k->c;
    const size_t nx = (size_t)(planes * g.h * g.w), ny = (size_t)(planes * g.ho * g.wo);
    float *x = pool_input(nx, 20 + (uint64_t)ci, DATA_TIES), *y = xmalloc(ny * 4);
    uint8_t *am = xmalloc(ny);
    model_maxpool_forward(&g, planes, x, y, am);
    float *dy = xmalloc(ny * 4), *init = xmalloc(nx * 4);
    fgt_fill_uniform(dy, ny, 30 + (uint64_t)ci, -1.0f, 1.0f);
    fgt_fill_uniform(init, nx, 40 + (uint64_t)ci, -1.0f, 1.0f);
    float *dx = xmalloc(nx * 4), *cdx = xmalloc(nx * 4);
    double *dyd = widen(dy, ny), *rdx = xmalloc(nx * 8);
    int64_t first;
    cr_expect_eq(model_bad_argmax(&g, planes, am, &first), 0, "%s: the forward's argmax is all valid", k->what);

    for (int accumulate = 0; accumulate <= 1; accumulate++) {
      memcpy(dx, init, nx * 4);
      memcpy(cdx, init, nx * 4);
      model_maxpool_backward(&g, planes, dy, am, dx, accumulate);
      const int64_t shape[4] = {k->n, k->c, g.ho, g.wo};
      fg_tensor tdy = fg_tensor_4d(dy, k->n, k->c, g.ho, g.wo), tdx = fg_tensor_4d(cdx, k->n, k->c, k->h, k->w);
      fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, shape);
      FGT_OK(fg_maxpool_backward(&d, &tdy, &tam, &tdx, accumulate));
      for (size_t i = 0; i < nx; i++) rdx[i] = init[i];
      fg_ref_maxpool_backward(&s, dyd, am, rdx, accumulate);

      char what[160], msg[256];
      snprintf(what, sizeof what, "%s (accumulate %d): dx vs CPU", k->what, accumulate);
      expect_bitwise(what, dx, cdx, nx);
      cr_expect(fgt_allclose(dx, rdx, nx, CLASS_ATOL, CLASS_RTOL, msg, sizeof msg), "%s (accumulate %d): dx vs "
                "reference: %s", k->what, accumulate, msg);
    }
    free(x), free(y), free(am), free(dy), free(init), free(dx), free(cdx), free(dyd), free(rdx);
  }
}

/* Bad argmax values: beyond the window (>= kernel^2, up to 255) or pointing into the padding.
 * The model counts what the CPU counts, finds the lowest bad position, and its gather skips
 * them as the CPU's scatter does (dx bitwise equal). */
Test(cuda_math_pool, bad_argmax_counted_as_the_cpu_counts) {
  fgt_setup_cpu(1);
  fg_backend *cpu = fg_backend_for(fg_host_device());
  cr_assert_not_null(cpu);
  const int cases[] = {0, 2, 4, 8}; /* 2x2/2, 3x3/2 pad 1, 2x2/1 pad 1, 4x4/3 pad 2 */
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const pool_case *k = &CASES[cases[ci]];
    const fg_pool_geom g = geom_of(k);
    const fg_pool_desc d = desc_of(k);
    const int64_t planes = (int64_t)k->n * k->c;
    const size_t nx = (size_t)(planes * g.h * g.w), ny = (size_t)(planes * g.ho * g.wo);
    float *x = pool_input(nx, 50 + ci, DATA_TIES), *y = xmalloc(ny * 4), *dy = xmalloc(ny * 4);
    uint8_t *am = xmalloc(ny);
    model_maxpool_forward(&g, planes, x, y, am);
    fgt_fill_uniform(dy, ny, 60 + ci, -1.0f, 1.0f);
    /* Corrupt: position 3 beyond the window, the last output 255; with padding, window (0, 0)'s
     * position 0 (the padding's corner). */
    int64_t want = 2, want_first = 3;
    am[3] = (uint8_t)(k->kernel * k->kernel);
    am[ny - 1] = 255;
    if (k->pad > 0) {
      am[0] = 0;
      want = 3;
      want_first = 0;
    }
    int64_t first;
    cr_expect_eq(model_bad_argmax(&g, planes, am, &first), want, "%s: bad argmax count", k->what);
    cr_expect_eq(first, want_first, "%s: first bad position", k->what);

    float *dx = xmalloc(nx * 4), *cdx = xmalloc(nx * 4);
    model_maxpool_backward(&g, planes, dy, am, dx, 0);
    const int64_t shape[4] = {k->n, k->c, g.ho, g.wo};
    fg_tensor tdy = fg_tensor_4d(dy, k->n, k->c, g.ho, g.wo), tdx = fg_tensor_4d(cdx, k->n, k->c, k->h, k->w);
    fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, shape);
    fg_index_report report = {0, 0, 0};
    FGT_OK(cpu->maxpool_backward(cpu, &d, &tdy, &tam, &tdx, 0, &report));
    cr_expect_eq(report.bad, want, "%s: the CPU counts %lld", k->what, (long long)report.bad);
    char what[160];
    snprintf(what, sizeof what, "%s: dx with bad argmax vs CPU", k->what);
    expect_bitwise(what, dx, cdx, nx);
    free(x), free(y), free(dy), free(am), free(dx), free(cdx);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Hand-derived cases (the op suite's, tests/ops/test_pool.c, derived there by hand)          */

/* Ties, 2x2 stride 2: window (0,0) holds 3 at positions 1 and 3 -> 1; (0,1): 5 at 3;
 * (1,0): -1 at 0; (1,1): -3 at 0. The tied window's gradient goes to its first 3 only. */
Test(cuda_math_pool, hand_derived_ties) {
  const float x[16] = {1, 3, 3, 0, 2, 3, 1, 5, -1, -2, -3, -4, -5, -6, -7, -8};
  const float want_y[4] = {3, 5, -1, -3}, dy[4] = {10, 20, 30, 40};
  const uint8_t want_am[4] = {1, 3, 0, 0};
  const float want_dx[16] = {0, 10, 0, 0, 0, 0, 0, 20, 30, 0, 40, 0, 0, 0, 0, 0};
  const fg_pool_geom g = {4, 4, 2, 2, 2, 2, 0};
  float y[4], dx[16];
  uint8_t am[4];
  model_maxpool_forward(&g, 1, x, y, am);
  expect_bitwise("ties: y", y, want_y, 4);
  expect_same_u8("ties: argmax", am, want_am, 4);
  model_maxpool_backward(&g, 1, dy, am, dx, 0);
  expect_bitwise("ties: dx", dx, want_dx, 16);
}

/* Padding never wins: all inputs negative, 3x3 windows, stride 2, pad 1 -> 2x2 outputs.
 *   -5 -2 -9     (0,0): -2 at input (0,1) = window (1,2) -> 5;  (0,1): -1 at (1,2) -> 7
 *   -4 -7 -1     (1,0): -3 at (2,0) = window (1,1) -> 4;        (1,1): -1 at (1,2) -> 1
 *   -3 -6 -8     backward of dy = 1 2 3 4 onto 100: windows (0,1) and (1,1) both chose input
 *                (1,2), so it gets 100 + 2 + 4 (added in the windows' order). */
Test(cuda_math_pool, hand_derived_padding) {
  const float x[9] = {-5, -2, -9, -4, -7, -1, -3, -6, -8};
  const float want_y[4] = {-2, -1, -3, -1}, dy[4] = {1, 2, 3, 4};
  const uint8_t want_am[4] = {5, 7, 4, 1};
  const float want_dx[9] = {100, 101, 100, 100, 100, 106, 103, 100, 100};
  const fg_pool_geom g = {3, 3, 2, 2, 3, 2, 1};
  float y[4], dx[9];
  uint8_t am[4];
  model_maxpool_forward(&g, 1, x, y, am);
  expect_bitwise("padding: y", y, want_y, 4);
  expect_same_u8("padding: argmax", am, want_am, 4);
  for (int i = 0; i < 9; i++) dx[i] = 100.0f;
  model_maxpool_backward(&g, 1, dy, am, dx, 1);
  expect_bitwise("padding: dx", dx, want_dx, 9);
}

/* The argmax mapping by hand: 3x3/2 pad 1 on a 5x5 input. Window (1, 2) starts at input (1, 3):
 * position 4 is input (2, 4), position 5 is (2, 5) outside the input, position 9 is beyond the
 * window; window (0, 0) position 0 is (-1, -1) in the padding, position 4 is input (0, 0). */
Test(cuda_math_pool, hand_derived_argmax_mapping) {
  const fg_pool_geom g = {5, 5, 3, 3, 3, 2, 1};
  int64_t iy, ix;
  cr_expect(fg_maxpool_argmax_input(&g, 1, 2, 4, &iy, &ix));
  cr_expect(iy == 2 && ix == 4);
  cr_expect_not(fg_maxpool_argmax_input(&g, 1, 2, 5, &iy, &ix));
  cr_expect_not(fg_maxpool_argmax_input(&g, 1, 2, 9, &iy, &ix));
  cr_expect_not(fg_maxpool_argmax_input(&g, 0, 0, 0, &iy, &ix));
  cr_expect(fg_maxpool_argmax_input(&g, 0, 0, 4, &iy, &ix));
  cr_expect(iy == 0 && ix == 0);
}

/* ----------------------------------------------------------------------------------------- */
/* Global average pooling                                                                     */

typedef struct avg_case {
  int n, c, h, w;
} avg_case;

static const avg_case AVG_CASES[] = {{3, 5, 7, 6}, {1, 2, 1, 1}, {2, 64, 7, 7}, {1, 3, 1, 9}, {2, 3, 32, 32}};
enum { AVG_CASE_COUNT = sizeof AVG_CASES / sizeof AVG_CASES[0] };

/* The forward sums in order in double as the CPU and the reference do: all three agree bit for
 * bit once the reference's double is rounded. */
Test(cuda_math_pool, avgpool_forward_is_the_cpus_bit_for_bit) {
  fgt_setup_cpu(1);
  for (int ci = 0; ci < AVG_CASE_COUNT; ci++) {
    const avg_case *k = &AVG_CASES[ci];
    const int64_t planes = (int64_t)k->n * k->c, hw = (int64_t)k->h * k->w;
    const size_t nx = (size_t)(planes * hw);
    float *x = xmalloc(nx * 4), *y = xmalloc((size_t)planes * 4), *cy = xmalloc((size_t)planes * 4);
    float *ry_f = xmalloc((size_t)planes * 4);
    fgt_fill_uniform(x, nx, 70 + (uint64_t)ci, -3.0f, 1.0f);
    for (int64_t p = 0; p < planes; p++) y[p] = fg_avgpool_plane_mean(x + p * hw, hw);
    fg_tensor tx = fg_tensor_4d(x, k->n, k->c, k->h, k->w), ty = fg_tensor_2d(cy, k->n, k->c);
    FGT_OK(fg_avgpool_global_forward(&tx, &ty));
    double *xd = widen(x, nx), *ry = xmalloc((size_t)planes * 8);
    fg_ref_avgpool_global_forward(k->n, k->c, k->h, k->w, xd, ry);
    for (int64_t p = 0; p < planes; p++) ry_f[p] = (float)ry[p];
    char what[96];
    snprintf(what, sizeof what, "avgpool n%d c%d %dx%d: y vs CPU", k->n, k->c, k->h, k->w);
    expect_bitwise(what, y, cy, (size_t)planes);
    snprintf(what, sizeof what, "avgpool n%d c%d %dx%d: y vs reference", k->n, k->c, k->h, k->w);
    expect_bitwise(what, y, ry_f, (size_t)planes);
    free(x), free(y), free(cy), free(ry_f), free(xd), free(ry);
  }
}

Test(cuda_math_pool, avgpool_backward_is_the_cpus_bit_for_bit) {
  fgt_setup_cpu(1);
  for (int ci = 0; ci < AVG_CASE_COUNT; ci++) {
    const avg_case *k = &AVG_CASES[ci];
    const int64_t planes = (int64_t)k->n * k->c, hw = (int64_t)k->h * k->w;
    const size_t nx = (size_t)(planes * hw);
    float *dy = xmalloc((size_t)planes * 4), *init = xmalloc(nx * 4);
    float *dx = xmalloc(nx * 4), *cdx = xmalloc(nx * 4), *rdx = xmalloc(nx * 4);
    fgt_fill_uniform(dy, (size_t)planes, 80 + (uint64_t)ci, -1.0f, 1.0f);
    fgt_fill_uniform(init, nx, 90 + (uint64_t)ci, -1.0f, 1.0f);
    for (int accumulate = 0; accumulate <= 1; accumulate++) {
      memcpy(dx, init, nx * 4);
      memcpy(cdx, init, nx * 4);
      memcpy(rdx, init, nx * 4);
      for (int64_t i = 0; i < planes * hw; i++) { /* avgpool_global_backward_kernel's thread i */
        const float v = fg_avgpool_grad(dy[i / hw], hw);
        dx[i] = accumulate ? dx[i] + v : v;
      }
      fg_tensor tdy = fg_tensor_2d(dy, k->n, k->c), tdx = fg_tensor_4d(cdx, k->n, k->c, k->h, k->w);
      FGT_OK(fg_avgpool_global_backward(&tdy, &tdx, accumulate));
      fg_ref_f32_avgpool_global_backward(dy, planes, hw, accumulate, rdx);
      char what[112];
      snprintf(what, sizeof what, "avgpool n%d c%d %dx%d (accumulate %d): dx vs CPU", k->n, k->c, k->h, k->w,
               accumulate);
      expect_bitwise(what, dx, cdx, nx);
      snprintf(what, sizeof what, "avgpool n%d c%d %dx%d (accumulate %d): dx vs f32 reference", k->n, k->c,
               k->h, k->w, accumulate);
      expect_bitwise(what, dx, rdx, nx);
    }
    free(dy), free(init), free(dx), free(cdx), free(rdx);
  }
}
