/* The arithmetic of the CUDA linear and convolution kernels (cuda/math/linear.h), compiled as C
 * on the host: the bias broadcast against the double references' forward with zero weights, the
 * bias gradient against the references' backward and against the CPU backend (a linear layer's
 * column sums bitwise, as the one-thread-per-column kernel computes them; a convolution's block
 * shares combined with a host copy of cuda/reduce.cuh's fixed tree, in the tolerance class), and
 * the partition of a channel into thread shares: every value counted once, no other channel read.
 * Runs in every build, with or without CUDA. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/linear.h"
#include "engine/backend/ops.h"
#include "ref/ref_nn.h"

/* The block width of the CUDA backend's kernels (FG_CUDA_THREADS in cuda/cuda_internal.h, a C++
 * header this C test cannot include). */
enum { THREADS = 256 };

/* The GEMM/convolution tolerance class of cuda.md. */
static const double ATOL = 1e-5, RTOL = 1e-4;

static float *frand(size_t n, uint64_t seed) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  cr_assert_not_null(p);
  fgt_fill_uniform(p, n, seed, -1.0f, 1.0f);
  return p;
}

static double *dzeros(size_t n) {
  double *p = calloc(n ? n : 1, sizeof *p);
  cr_assert_not_null(p);
  return p;
}

static double *widen(const float *x, size_t n) {
  double *p = dzeros(n);
  for (size_t i = 0; i < n; i++) p[i] = x[i];
  return p;
}

static void assert_close(const float *got, const double *want, size_t n, const char *what) {
  char msg[256];
  cr_assert(fgt_allclose(got, want, n, ATOL, RTOL, msg, sizeof msg), "%s: %s", what, msg);
}

/* A convolution's dbias as conv_bias_grad_kernel computes it for `channel`: the THREADS shares,
 * then the fixed binary tree of fg_block_sum (halves 128, 64, ..., 1, each slot t < half adding
 * slot t + half). */
static float block_bias_grad(const float *dy, int64_t n, int64_t channels, int64_t plane, int64_t channel) {
  double shared[THREADS];
  for (int t = 0; t < THREADS; t++) shared[t] = fg_bias_grad_partial(dy, n, channels, plane, channel, t, THREADS);
  for (int half = THREADS / 2; half > 0; half /= 2)
    for (int t = 0; t < half; t++) shared[t] += shared[t + half];
  return (float)shared[0];
}

/* ----------------------------------------------------------------------------------------- */
/* Bias broadcast                                                                             */

/* y [n, channels, plane] := bias broadcast, against the reference convolution's forward with zero
 * weights (a 1x1 kernel: y = 0 + bias at every output), bitwise. */
static void check_broadcast(int64_t n, int64_t channels, int64_t h, int64_t w) {
  const int64_t plane = h * w, count = n * channels * plane;
  float *bias = frand((size_t)channels, 7 + (uint64_t)channels);
  double *xd = dzeros((size_t)(n * h * w)), *wd = dzeros((size_t)channels), *bd = widen(bias, (size_t)channels);
  double *want = dzeros((size_t)count);
  const fg_ref_conv2d_shape s = {n, 1, h, w, channels, 1, 1, 1, 0, 1};
  fg_ref_conv2d_forward(&s, xd, wd, bd, want);
  for (int64_t i = 0; i < count; i++) {
    const float got = fg_bias_broadcast(bias, i, channels, plane);
    cr_assert(got == (float)want[i], "n%lld c%lld plane%lld: element %lld is %g, want %g", (long long)n,
              (long long)channels, (long long)plane, (long long)i, got, want[i]);
    cr_assert_eq(fg_bias_channel(i, channels, plane), (i / plane) % channels);
  }
  free(bias), free(xd), free(wd), free(bd), free(want);
}

Test(cuda_math_linear, bias_broadcast_matches_the_reference) {
  check_broadcast(3, 5, 1, 1); /* a linear layer's [N, O] */
  check_broadcast(1, 7, 1, 1);
  check_broadcast(2, 4, 3, 5);
  check_broadcast(3, 6, 9, 7);
  check_broadcast(1, 1, 17, 19);
}

/* A linear layer's y = 0 + bias through the reference's linear forward with zero weights. */
Test(cuda_math_linear, linear_bias_broadcast_matches_the_reference) {
  const int64_t n = 4, in = 3, out = 6;
  float *bias = frand((size_t)out, 11);
  double *x = dzeros((size_t)(n * in)), *w = dzeros((size_t)(out * in)), *b = widen(bias, (size_t)out);
  double *y = dzeros((size_t)(n * out));
  fg_ref_linear_forward(n, in, out, x, w, b, y);
  for (int64_t i = 0; i < n * out; i++) cr_assert(fg_bias_broadcast(bias, i, out, 1) == (float)y[i], "element %lld", (long long)i);
  free(bias), free(x), free(w), free(b), free(y);
}

/* ----------------------------------------------------------------------------------------- */
/* Linear bias gradient: one thread per column, the whole column in order                     */

static void check_linear_grad(int64_t n, int64_t out, uint64_t seed) {
  fgt_setup_cpu(2);
  const int64_t in = 3;
  float *dy = frand((size_t)(n * out), seed), *x = frand((size_t)(n * in), seed + 1);
  float *got = malloc((size_t)out * sizeof *got), *cpu = malloc((size_t)out * sizeof *cpu);
  cr_assert(got && cpu);
  for (int64_t o = 0; o < out; o++) got[o] = (float)fg_bias_grad_partial(dy, n, out, 1, o, 0, 1);

  double *xd = widen(x, (size_t)(n * in)), *dyd = widen(dy, (size_t)(n * out)), *want = dzeros((size_t)out);
  fg_ref_linear_backward_params(n, in, out, xd, dyd, NULL, want);
  assert_close(got, want, (size_t)out, "linear dbias against the reference");

  fg_tensor tx = fg_tensor_2d(x, n, in), tdy = fg_tensor_2d(dy, n, out), tdb = fg_tensor_1d(cpu, out);
  FGT_OK(fg_linear_backward_params(&tx, &tdy, NULL, &tdb));
  for (int64_t o = 0; o < out; o++)
    cr_assert(memcmp(&got[o], &cpu[o], sizeof(float)) == 0, "n%lld out%lld: column %lld is %a, the CPU's %a",
              (long long)n, (long long)out, (long long)o, got[o], cpu[o]);
  free(dy), free(x), free(got), free(cpu), free(xd), free(dyd), free(want);
}

Test(cuda_math_linear, linear_bias_grad_is_the_cpu_column_sum_bitwise) {
  check_linear_grad(1, 5, 100);
  check_linear_grad(17, 10, 101);
  check_linear_grad(64, 10, 102);
  check_linear_grad(33, 65, 103);
  check_linear_grad(1000, 3, 104); /* long columns: the order of the additions matters */
}

/* ----------------------------------------------------------------------------------------- */
/* Convolution bias gradient: one block per channel, shares combined by the fixed tree        */

static void check_conv_grad(int64_t n, int64_t c, int64_t h, int64_t w, int64_t o, int64_t k, int64_t stride,
                            int64_t pad, uint64_t seed) {
  fgt_setup_cpu(2);
  const fg_ref_conv2d_shape s = {n, c, h, w, o, k, k, stride, pad, 1};
  const int64_t ho = fg_ref_conv2d_out_h(&s), wo = fg_ref_conv2d_out_w(&s), plane = ho * wo;
  const size_t nx = (size_t)(n * c * h * w), ndy = (size_t)(n * o * plane), nw = (size_t)(o * c * k * k);
  float *x = frand(nx, seed), *dy = frand(ndy, seed + 1);
  float *dw = malloc(nw * sizeof *dw), *cpu = malloc((size_t)o * sizeof *cpu), *got = malloc((size_t)o * sizeof *got);
  cr_assert(dw && cpu && got);
  for (int64_t ch = 0; ch < o; ch++) got[ch] = block_bias_grad(dy, n, o, plane, ch);

  double *xd = widen(x, nx), *dyd = widen(dy, ndy), *dwd = dzeros(nw), *want = dzeros((size_t)o);
  fg_ref_conv2d_backward_filter(&s, xd, dyd, dwd, want);
  assert_close(got, want, (size_t)o, "conv dbias against the reference");

  const fg_conv_desc d = {(int)stride, (int)pad, 1};
  fg_tensor tx = fg_tensor_4d(x, n, c, h, w), tdy = fg_tensor_4d(dy, n, o, ho, wo);
  fg_tensor tdw = fg_tensor_4d(dw, o, c, k, k), tdb = fg_tensor_1d(cpu, o);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace(&d, &tx, &tdw, &bytes));
  fg_workspace ws = {bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64) : NULL, bytes};
  cr_assert(bytes == 0 || ws.ptr);
  FGT_OK(fg_conv2d_backward_filter(&d, &tx, &tdy, &tdw, &tdb, ws));
  char msg[256];
  cr_assert(fgt_allclose_f(got, cpu, (size_t)o, ATOL, RTOL, msg, sizeof msg), "conv dbias against the CPU: %s", msg);
  free(ws.ptr);
  free(x), free(dy), free(dw), free(cpu), free(got), free(xd), free(dyd), free(dwd), free(want);
}

Test(cuda_math_linear, conv_bias_grad_block_matches_the_reference_and_cpu) {
  check_conv_grad(1, 2, 5, 6, 3, 3, 1, 1, 200);    /* 30 positions: most threads idle */
  check_conv_grad(3, 4, 11, 10, 6, 3, 2, 1, 201);  /* stride 2: 3 images of 6x5 */
  check_conv_grad(2, 3, 16, 16, 5, 1, 1, 0, 202);  /* plane 256 = the block width */
  check_conv_grad(5, 2, 23, 21, 4, 3, 1, 1, 203);  /* plane 483: one thread covers two per image */
  check_conv_grad(64, 3, 4, 4, 7, 3, 1, 1, 204);   /* plane 16 < the block width, many images */
  check_conv_grad(9, 1, 7, 9, 2, 7, 1, 3, 205);    /* 7x7 pad 3 */
}

/* ----------------------------------------------------------------------------------------- */
/* The partition of a channel into shares                                                     */

/* dy [n, channels, plane] with small integers in `channel` (exact double sums) and NaN in every
 * other channel: the shares for every `first` below `step` must add up to the exact total, so
 * each value was read exactly once and no other channel was touched. */
static void check_partition(int64_t n, int64_t channels, int64_t plane, int64_t channel, int64_t step) {
  const size_t count = (size_t)(n * channels * plane);
  float *dy = malloc((count ? count : 1) * sizeof *dy);
  cr_assert_not_null(dy);
  double exact = 0.0;
  for (int64_t img = 0; img < n; img++)
    for (int64_t ch = 0; ch < channels; ch++)
      for (int64_t p = 0; p < plane; p++) {
        const size_t i = (size_t)((img * channels + ch) * plane + p);
        if (ch == channel) {
          dy[i] = (float)(1 + (img * 131 + p * 7) % 13); /* 1..13: not one value repeated */
          exact += dy[i];
        } else {
          dy[i] = NAN;
        }
      }
  double total = 0.0;
  for (int64_t first = 0; first < step; first++)
    total += fg_bias_grad_partial(dy, n, channels, plane, channel, first, step);
  cr_assert(total == exact, "n%lld channels%lld plane%lld channel%lld step%lld: shares sum to %g, want %g",
            (long long)n, (long long)channels, (long long)plane, (long long)channel, (long long)step, total, exact);
  free(dy);
}

Test(cuda_math_linear, shares_cover_the_channel_exactly_once) {
  const int64_t steps[] = {1, 2, 3, 7, 16, 255, THREADS, 1000};
  for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
    check_partition(5, 4, 1, 0, steps[s]);    /* a linear layer's column */
    check_partition(5, 4, 1, 3, steps[s]);
    check_partition(3, 5, 7, 2, steps[s]);    /* step below, at and above the plane */
    check_partition(2, 3, 256, 1, steps[s]);
    check_partition(4, 2, 300, 1, steps[s]);
    check_partition(1, 1, 1, 0, steps[s]);
    check_partition(37, 6, 49, 5, steps[s]);
  }
}

/* Nothing to sum: zero, and nothing is read (dy may be NULL). */
Test(cuda_math_linear, empty_extents_give_zero) {
  cr_assert_eq(fg_bias_grad_partial(NULL, 0, 4, 9, 1, 0, 1), 0.0);
  cr_assert_eq(fg_bias_grad_partial(NULL, 3, 4, 0, 1, 0, THREADS), 0.0);
  cr_assert_eq(fg_bias_grad_partial(NULL, 0, 4, 1, 2, 5, THREADS), 0.0);
  float one[4] = {1.0f, 2.0f, 3.0f, 4.0f};
  cr_assert_eq(fg_bias_grad_partial(one, 1, 4, 1, 2, 1, THREADS), 0.0); /* thread 1 of a 1-value channel */
}
