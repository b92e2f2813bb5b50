/* The index arithmetic and the sign rule of the CUDA SVD (cuda/math/linalg.h), compiled on the
 * host. What cuSOLVER's gesvd returns is modelled from its contract alone: for the column-major
 * matrix X it is given (rows >= columns), factors X = U diag(s) V^T with U (rows x k, leading
 * dimension rows) and V^T (k x k), each component with either sign. Here X is built from its
 * definition (a^T when n >= m, a otherwise), factored by the double-precision Jacobi SVD of
 * tests/ref/ref_linalg.h, its components' signs scrambled, and laid out column-major; then
 * svd_finish_kernel's work is done with the header's functions, and the u, s, vt it yields for a
 * are checked: a = u diag(s) vt, orthonormal factors, the sign rule (the first entry of largest
 * magnitude of each row of vt positive), agreement with the reference SVD of a itself and with
 * the CPU backend's fg_svd for well-separated components. Also: the input copy's placement
 * against X's definition, and the sign rule's decisions by hand (ties keep the first entry). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/linalg.h"
#include "engine/backend/ops.h"
#include "ref/ref_linalg.h"

#define EPS ((double)FLT_EPSILON)

/* X(p, q) of the problem gesvd is given for a [m, n], by its definition. */
static double problem_entry(const float *a, int64_t m, int64_t n, int64_t p, int64_t q) {
  return n >= m ? a[q * n + p] : a[p * n + q];
}

/* svd_finish_kernel's work on the host: the sign rule per component, then s, u, vt. */
static void emulate_finish(const float *left, const float *right, const float *s_in, int64_t m, int64_t n, float *u,
                           float *s, float *vt) {
  const int64_t k = fg_cuda_svd_cols(m, n);
  const float *v_src = fg_cuda_svd_u_in_left(m, n) ? right : left;
  const float *u_src = fg_cuda_svd_u_in_left(m, n) ? left : right;
  for (int64_t i = 0; i < k; i++) {
    float best_abs = -1.0f;
    int64_t best = n;
    for (int64_t j = 0; j < n; j++) {
      const float v = v_src[fg_cuda_svd_vt_offset(i, j, m, n)];
      if (fg_cuda_svd_beats(v, best_abs)) best_abs = fabsf(v), best = j;
    }
    const int negate = best < n && fg_cuda_svd_negate(v_src[fg_cuda_svd_vt_offset(i, best, m, n)]);
    for (int64_t j = 0; j < n; j++) vt[i * n + j] = fg_cuda_svd_signed(v_src[fg_cuda_svd_vt_offset(i, j, m, n)], negate);
    for (int64_t r = 0; r < m; r++) u[r * k + i] = fg_cuda_svd_signed(u_src[fg_cuda_svd_u_offset(r, i, m, n)], negate);
    s[i] = s_in[i];
  }
}

static int64_t argmax_abs(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (fabsf(x[i]) > fabsf(x[best])) best = i;
  return best;
}

/* The solver's outputs for a [m, n]: left (rows x k, column-major), right (k x k), s [k], from
 * the reference SVD of X with component i negated when bit i of `flips` is set. */
static void model_gesvd(const float *a, int64_t m, int64_t n, unsigned flips, float *left, float *right, float *s) {
  const int64_t rows = fg_cuda_svd_rows(m, n), k = fg_cuda_svd_cols(m, n);
  double *x = malloc((size_t)(rows * k) * sizeof *x), *ux = malloc((size_t)(rows * k) * sizeof *ux);
  double *sx = malloc((size_t)k * sizeof *sx), *vx = malloc((size_t)(k * k) * sizeof *vx);
  double *scratch = malloc((size_t)fg_ref_svd_scratch(rows, k) * sizeof *scratch);
  cr_assert(x && ux && sx && vx && scratch);
  for (int64_t p = 0; p < rows; p++)
    for (int64_t q = 0; q < k; q++) x[p * k + q] = problem_entry(a, m, n, p, q);
  cr_assert(fg_ref_svd(x, rows, k, ux, sx, vx, scratch) > 0, "the reference SVD did not converge");
  for (int64_t i = 0; i < k; i++) {
    const double sign = (flips >> (i % 32)) & 1u ? -1.0 : 1.0;
    for (int64_t p = 0; p < rows; p++) left[p + i * rows] = (float)(sign * ux[p * k + i]);
    for (int64_t q = 0; q < k; q++) right[i + q * k] = (float)(sign * vx[i * k + q]);
    s[i] = (float)sx[i];
  }
  free(x), free(ux), free(sx), free(vx), free(scratch);
}

/* u [m, k], s [k], vt [k, n] of a [m, n] against a, orthonormality, the sign rule, and the
 * reference factors (want_u [m, k], want_vt [k, n], want_s [k]) for separated components. */
static void check_factors(const char *what, const float *a, int64_t m, int64_t n, const float *u, const float *s,
                          const float *vt, const double *want_u, const double *want_s, const double *want_vt) {
  const int64_t k = fg_cuda_svd_cols(m, n), big = fg_cuda_svd_rows(m, n);
  const double tol = 4.0 * sqrt((double)big) * EPS;
  double err2 = 0.0, norm2 = 0.0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; p++) sum += (double)u[i * k + p] * s[p] * vt[p * n + j];
      err2 += (sum - a[i * n + j]) * (sum - a[i * n + j]);
      norm2 += (double)a[i * n + j] * a[i * n + j];
    }
  cr_assert(sqrt(err2) <= tol * sqrt(norm2), "%s [%lld, %lld]: |a - u s vt| = %.3g", what, (long long)m,
            (long long)n, sqrt(err2));
  for (int64_t p = 0; p < k; p++) {
    cr_assert(p == 0 || s[p] <= s[p - 1], "%s: s not descending at %lld", what, (long long)p);
    cr_assert(vt[p * n + argmax_abs(vt + p * n, n)] > 0.0f, "%s: the sign rule fails on component %lld", what,
              (long long)p);
    for (int64_t q = p; q < k; q++) {
      double du = 0.0, dv = 0.0;
      for (int64_t i = 0; i < m; i++) du += (double)u[i * k + p] * u[i * k + q];
      for (int64_t j = 0; j < n; j++) dv += (double)vt[p * n + j] * vt[q * n + j];
      const double want = p == q ? 1.0 : 0.0;
      cr_assert(fabs(du - want) <= tol && fabs(dv - want) <= tol, "%s: (u_%lld, u_%lld) = %g, (v, v) = %g", what,
                (long long)p, (long long)q, du, dv);
    }
    double gap = want_s[0];
    if (p > 0) gap = fmin(gap, want_s[p - 1] - want_s[p]);
    if (p + 1 < k) gap = fmin(gap, want_s[p] - want_s[p + 1]);
    if (!(gap > 1e-3 * want_s[0])) continue;
    const double vtol = 16.0 * sqrt((double)big) * EPS * want_s[0] / gap;
    for (int64_t j = 0; j < n; j++)
      cr_assert(fabs(vt[p * n + j] - want_vt[p * n + j]) <= vtol, "%s: v_%lld[%lld] = %.7g, expected %.7g", what,
                (long long)p, (long long)j, (double)vt[p * n + j], want_vt[p * n + j]);
    for (int64_t i = 0; i < m; i++)
      cr_assert(fabs(u[i * k + p] - want_u[i * k + p]) <= vtol, "%s: u_%lld[%lld] = %.7g, expected %.7g", what,
                (long long)p, (long long)i, (double)u[i * k + p], want_u[i * k + p]);
  }
}

static void check_shape(int64_t m, int64_t n, uint64_t seed) {
  const int64_t rows = fg_cuda_svd_rows(m, n), k = fg_cuda_svd_cols(m, n);
  float *a = malloc((size_t)(m * n) * sizeof *a), *input = malloc((size_t)(m * n) * sizeof *input);
  float *left = malloc((size_t)(rows * k) * sizeof *left), *right = malloc((size_t)(k * k) * sizeof *right);
  float *s_in = malloc((size_t)k * sizeof *s_in), *u = malloc((size_t)(m * k) * sizeof *u);
  float *s = malloc((size_t)k * sizeof *s), *vt = malloc((size_t)(k * n) * sizeof *vt);
  double *ad = malloc((size_t)(m * n) * sizeof *ad), *want_u = malloc((size_t)(m * k) * sizeof *want_u);
  double *want_s = malloc((size_t)k * sizeof *want_s), *want_vt = malloc((size_t)(k * n) * sizeof *want_vt);
  double *scratch = malloc((size_t)fg_ref_svd_scratch(m, n) * sizeof *scratch);
  fgt_fill_uniform(a, (size_t)(m * n), seed, -1.0f, 1.0f);
  /* The input copy: a[r][c] lands where X's definition puts it, column-major. */
  for (int64_t r = 0; r < m; r++)
    for (int64_t c = 0; c < n; c++) input[fg_cuda_svd_input_offset(r, c, m, n)] = a[r * n + c];
  for (int64_t q = 0; q < k; q++)
    for (int64_t p = 0; p < rows; p++)
      cr_assert_eq((double)input[p + q * rows], problem_entry(a, m, n, p, q), "[%lld, %lld]: X(%lld, %lld)",
                   (long long)m, (long long)n, (long long)p, (long long)q);
  for (int64_t e = 0; e < m * n; e++) ad[e] = a[e];
  cr_assert(fg_ref_svd(ad, m, n, want_u, want_s, want_vt, scratch) > 0);
  /* Whatever signs the solver returns, the rule makes the result the same. */
  const unsigned patterns[3] = {0u, 0xFFFFFFFFu, 0x5A5A5A5Au};
  for (int f = 0; f < 3; f++) {
    model_gesvd(a, m, n, patterns[f], left, right, s_in);
    emulate_finish(left, right, s_in, m, n, u, s, vt);
    check_factors("finish from the modelled solver", a, m, n, u, s, vt, want_u, want_s, want_vt);
  }
  /* The CPU backend's SVD agrees with the reference, and so with this result. */
  fgt_setup_cpu(1);
  fg_tensor ta = fg_tensor_2d(a, m, n), tu = fg_tensor_2d(u, m, k), ts = fg_tensor_1d(s, k),
            tvt = fg_tensor_2d(vt, k, n);
  size_t bytes = 0;
  FGT_OK(fg_svd_workspace(&ta, &bytes));
  fg_workspace ws = {aligned_alloc(64, (bytes + 63) / 64 * 64), bytes};
  FGT_OK(fg_svd(&ta, &tu, &ts, &tvt, ws));
  check_factors("the CPU backend", a, m, n, u, s, vt, want_u, want_s, want_vt);
  free(ws.ptr);
  free(a), free(input), free(left), free(right), free(s_in), free(u), free(s), free(vt);
  free(ad), free(want_u), free(want_s), free(want_vt), free(scratch);
}

Test(cuda_math_linalg, finish_layouts_and_signs) {
  const int64_t shapes[][2] = {{1, 1}, {1, 7}, {7, 1}, {5, 5}, {13, 8}, {8, 13}, {24, 36}, {60, 45}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_shape(shapes[i][0], shapes[i][1], 500 + i);
}

/* a = [[1, -1], [2, -2]]: v_1 = +-(1, -1)/sqrt 2 with entries of equal magnitude: the first
 * decides, so v_1 = (+, -) and u_1 > 0, from either sign of the solver's result. */
Test(cuda_math_linalg, tie_goes_to_the_first_entry) {
  const float a[4] = {1.0f, -1.0f, 2.0f, -2.0f};
  float left[4], right[4], s_in[2], u[4], s[2], vt[4];
  for (unsigned flips = 0; flips < 4; flips++) {
    model_gesvd(a, 2, 2, flips, left, right, s_in);
    emulate_finish(left, right, s_in, 2, 2, u, s, vt);
    cr_assert(fabsf(vt[0]) == fabsf(vt[1]), "v_1 = (%.9g, %.9g)", (double)vt[0], (double)vt[1]);
    cr_assert(vt[0] > 0.0f && vt[1] < 0.0f, "v_1 = (%g, %g)", (double)vt[0], (double)vt[1]);
    cr_assert(u[0] > 0.0f && u[2] > 0.0f, "u_1 = (%g, %g)", (double)u[0], (double)u[2]);
  }
}

Test(cuda_math_linalg, sign_rule_decisions) {
  cr_assert(fg_cuda_svd_beats(-0.5f, 0.25f));
  cr_assert(!fg_cuda_svd_beats(-0.5f, 0.5f), "an equal magnitude must not replace the earlier entry");
  cr_assert(fg_cuda_svd_beats(0.0f, -1.0f), "the first entry always counts");
  cr_assert(fg_cuda_svd_negate(-0.5f) && !fg_cuda_svd_negate(0.5f) && !fg_cuda_svd_negate(0.0f));
  cr_assert_eq(fg_cuda_svd_signed(0.75f, 1), -0.75f);
  cr_assert_eq(fg_cuda_svd_signed(0.75f, 0), 0.75f);
  cr_assert(fg_cuda_svd_wide(3, 3) && fg_cuda_svd_wide(2, 5) && !fg_cuda_svd_wide(5, 2));
  cr_assert_eq(fg_cuda_svd_rows(5, 2), 5);
  cr_assert_eq(fg_cuda_svd_cols(5, 2), 2);
}
