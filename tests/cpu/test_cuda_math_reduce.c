/* The arithmetic of the CUDA sum_squares (cuda/math/reduce.h, summed in the fixed order of
 * cuda/reduce.cuh), compiled here by the host's C compiler: the term is exact (checked against
 * long double), and the device's order of additions, replayed on the host, stays within the
 * tight bound that cuda/reduce.cu states of the CPU backend's sum_squares (cpu/reduce.c) and of
 * the double reference (tests/ref/ref_math.h), for sizes around the grid's 65536 threads. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/test_util.h"
#include "cuda/math/reduce.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_math.h"

/* cuda/cuda_internal.h's FG_CUDA_THREADS and FG_CUDA_REDUCE_BLOCKS (a C++ header this C test
 * cannot include). */
enum { THREADS = 256, BLOCKS = 256 };

/* A fixed binary tree over v[0..THREADS), as fg_block_sum combines a block's threads. */
static double tree_sum(double *v) {
  for (int half = THREADS / 2; half > 0; half /= 2)
    for (int t = 0; t < half; t++) v[t] += v[t + half];
  return v[0];
}

/* fg_cuda_grid_sum's order: thread t of block k sums elements k T + t, k T + t + B T, ... in
 * order; each block's tree; then one block's threads sum the partials t, t + T, ..., and a tree. */
static double grid_order_sum(const float *x, int64_t n) {
  static double partial[BLOCKS], lane[THREADS];
  for (int k = 0; k < BLOCKS; k++) {
    for (int t = 0; t < THREADS; t++) {
      double s = 0.0;
      for (int64_t i = (int64_t)k * THREADS + t; i < n; i += (int64_t)BLOCKS * THREADS)
        s += fg_math_square(x[i]);
      lane[t] = s;
    }
    partial[k] = tree_sum(lane);
  }
  for (int t = 0; t < THREADS; t++) {
    double s = 0.0;
    for (int i = t; i < BLOCKS; i += THREADS) s += partial[i];
    lane[t] = s;
  }
  return tree_sum(lane);
}

static void setup(void) { fgt_setup_cpu(1); }

TestSuite(cuda_math_reduce, .init = setup);

/* x^2 in double is the exact square: long double (64-bit significand) holds it too. */
Test(cuda_math_reduce, square_is_exact) {
  float x[2000];
  fgt_fill_uniform(x, 2000, 5, -3.0f, 3.0f);
  const float edges[] = {0.0f,    -0.0f,    1.0e-45f,           FLT_MIN,
                         FLT_MAX, -FLT_MAX, 1.0f + FLT_EPSILON, 16777215.0f};
  for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) x[k] = edges[k];
  for (int i = 0; i < 2000; i++) {
    const long double exact = (long double)x[i] * (long double)x[i];
    cr_assert((long double)fg_math_square(x[i]) == exact, "%a squared: %a", (double)x[i],
              fg_math_square(x[i]));
  }
  cr_assert(isinf(fg_math_square(-INFINITY)) && fg_math_square(-INFINITY) > 0.0);
  cr_assert(isnan(fg_math_square(NAN)));
}

/* The device's order against the CPU backend and the double reference: every term is exact and
 * non-negative, so each sum is within d 2^-53 relative of the exact one, d its nesting depth
 * (n / 65536 + 17 here, 16384 + n / 16384 on the CPU, n for the reference): 1e-11 relative
 * covers all three for these sizes, and a mistake in the order or the terms would not. */
Test(cuda_math_reduce, grid_order_is_within_the_tight_bound) {
  const int64_t sizes[] = {1, 2, 255, 256, 257, 65535, 65536, 65537, 1000003, 3 * 65536 + 17};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    const int64_t n = sizes[s];
    float *x = malloc((size_t)n * sizeof *x);
    double *xd = malloc((size_t)n * sizeof *xd);
    cr_assert(x && xd);
    fgt_fill_uniform(x, (size_t)n, 40 + s, -2.0f, 2.0f);
    for (int64_t i = 0; i < n; i++) xd[i] = x[i];
    const double got = grid_order_sum(x, n), want = fg_ref_sum_squares(xd, n);
    double cpu = 0.0;
    fg_tensor t = fg_tensor_1d(x, n);
    FGT_OK(fg_sum_squares(&t, &cpu));
    cr_assert(fabs(got - want) <= 1e-11 * want, "n %lld: grid order %.17g, reference %.17g",
              (long long)n, got, want);
    cr_assert(fabs(got - cpu) <= 1e-11 * cpu, "n %lld: grid order %.17g, CPU backend %.17g",
              (long long)n, got, cpu);
    free(x), free(xd);
  }
}

/* A value that dominates: the order cannot lose the small terms beyond the bound either. */
Test(cuda_math_reduce, grid_order_with_a_dominant_value) {
  enum { n = 200001 };
  static float x[n];
  static double xd[n];
  fgt_fill_uniform(x, n, 77, -1e-3f, 1e-3f);
  x[12345] = 1.0e4f;
  for (int i = 0; i < n; i++) xd[i] = x[i];
  const double got = grid_order_sum(x, n), want = fg_ref_sum_squares(xd, n);
  cr_assert(fabs(got - want) <= 1e-12 * want, "grid order %.17g, reference %.17g", got, want);
}
