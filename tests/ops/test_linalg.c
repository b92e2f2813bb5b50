/* Op suite: the reductions and linear algebra (sum_squares; the thin SVD) on every backend.
 * sum_squares against the double reference, by hand (1 + 4 + 9 = 14) and on sizes that span
 * several reduction blocks. The SVD against the double-precision one-sided Jacobi SVD of
 * tests/ref/ref_linalg.h: singular values (descending, non-negative, within O(eps) s_max),
 * u diag(s) vt = a, orthonormal factors, the sign rule (the largest entry of each row of vt is
 * positive, the first on equal magnitudes) and agreement with the reference's right vectors for
 * well-separated components; degenerate, square, tall and wide shapes, a rank-2 and a zero
 * matrix, a hand-built tie, a non-finite input. Then the entry points' validation.
 *
 * SVD tolerances are multiples of float epsilon scaled by the size: a backward-stable SVD
 * reproduces a to O(eps) |a|, every singular value is within O(eps) s_max of the exact one, and
 * the factors of a component move by O(eps) s_max / (gap to its neighbours). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_linalg.h"
#include "ref/ref_math.h"

#define EPS ((double)FLT_EPSILON)

/* ----------------------------------------------------------------------------------------- */
/* sum_squares                                                                                */

typedef struct ss_row {
  int64_t n;
  int layout;
  int hand;   /* x = {1, -2, 3}: 14 */
  int no_out; /* the host output is missing */
} ss_row;

static const ss_row SS_ROWS[] = {
    {1, FGT_ALIGNED, 0, 0},      {5, FGT_ALIGNED, 0, 0},      {16384, FGT_ALIGNED, 0, 0},
    {100001, FGT_ALIGNED, 0, 0}, {1001, FGT_MISALIGNED, 0, 0}, {70001, FGT_PARTIAL, 0, 0},
    {3, FGT_ALIGNED, 1, 0},      {3, FGT_ALIGNED, 0, 1},
};

/* A sum of squares returned in double, accumulated in double (cuda.md: reductions combine in
 * double where the CPU reference does): held to 1e-12 relative, not the float class. */
static const fgt_tol SUM_IN_DOUBLE = {0, 0.0, 1e-12, 0.0};

static fg_status ss_call(fgt_op *op) {
  const ss_row *r = op->row;
  return fg_sum_squares(fgt_t(op, 0), r->no_out ? NULL : &op->scalar);
}

static void build_ss(int index, fgt_op *op) {
  const ss_row *r = &SS_ROWS[index];
  fgt_name(op, "sum_squares n%lld%s%s%s", (long long)r->n, r->hand ? " by hand" : "",
           r->no_out ? " without output" : "", fgt_layout_name(r->layout));
  op->row = r;
  op->call = ss_call;
  fgt_layout(op, r->layout);
  float *x = fgt_arg1(op, 0, "x", FGT_IN, r->n);
  fgt_fill(op, 0, -3.0f, 3.0f);
  if (r->no_out) {
    fgt_expect_error(op, FG_ERR_INVALID, "sum_squares", NULL);
    return;
  }
  if (r->hand) {
    x[0] = 1.0f, x[1] = -2.0f, x[2] = 3.0f;
    fgt_expect_scalar(op, 14.0, FGT_EXACT);
    return;
  }
  fgt_expect_scalar(op, fg_ref_sum_squares(fgt_widen(op, 0), r->n), SUM_IN_DOUBLE);
}

static const fgt_suite SUM_SQUARES = {"sum_squares", sizeof SS_ROWS / sizeof SS_ROWS[0], build_ss,
                                      NULL, 0};
FGT_SUITE_TESTS(sum_squares, matches_reference, SUM_SQUARES)

/* ----------------------------------------------------------------------------------------- */
/* SVD                                                                                        */

enum { SVD_RANDOM, SVD_RANK2, SVD_ZERO, SVD_TIE, SVD_NAN };

typedef struct svd_row {
  int64_t m, n;
  int kind; /* SVD_* */
  int layout;
} svd_row;

/* Degenerate, square, tall, wide, a conv's (O*3) x (I*3) views, 192 x 384 (and its transpose,
 * and 60 x 45: sizes where LAPACK would thread, for the run-twice check with 1 and 2 threads). */
static const svd_row SVD_ROWS[] = {
    {1, 1, SVD_RANDOM, FGT_ALIGNED},     {1, 7, SVD_RANDOM, FGT_ALIGNED},
    {7, 1, SVD_RANDOM, FGT_ALIGNED},     {5, 5, SVD_RANDOM, FGT_ALIGNED},
    {13, 8, SVD_RANDOM, FGT_ALIGNED},    {8, 13, SVD_RANDOM, FGT_ALIGNED},
    {24, 36, SVD_RANDOM, FGT_ALIGNED},   {96, 48, SVD_RANDOM, FGT_ALIGNED},
    {192, 384, SVD_RANDOM, FGT_ALIGNED}, {384, 192, SVD_RANDOM, FGT_ALIGNED},
    {60, 45, SVD_RANDOM, FGT_ALIGNED},   {13, 8, SVD_RANDOM, FGT_MISALIGNED},
    {8, 13, SVD_RANDOM, FGT_PARTIAL},    {12, 9, SVD_RANK2, FGT_ALIGNED},
    {2, 3, SVD_ZERO, FGT_ALIGNED},       {2, 2, SVD_TIE, FGT_ALIGNED},
    {4, 3, SVD_NAN, FGT_ALIGNED},        {4, 3, SVD_RANDOM, FGT_ALIGNED}, /* the error rows' base */
};
enum { SVD_COUNT = sizeof SVD_ROWS / sizeof SVD_ROWS[0] };

enum { A, U, S, VT };

/* What the check needs besides the outputs: the reference's singular values and right
 * vectors. */
typedef struct svd_case {
  const svd_row *r;
  int64_t k, big;
  double *s_ref, *vt_ref;
} svd_case;

static fg_status svd_call(fgt_op *op) {
  return fg_svd(fgt_t(op, A), fgt_t(op, U), fgt_t(op, S), fgt_t(op, VT), op->ws);
}

static fg_status svd_workspace(fgt_op *op, size_t *bytes) {
  return fg_svd_workspace(fgt_t(op, A), bytes);
}

/* Index of the first entry of largest magnitude of x [n]. */
static int64_t argmax_abs(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (fabsf(x[i]) > fabsf(x[best])) best = i;
  return best;
}

static void check_reconstruction(const fgt_op *op, const char *backend, const float *u,
                                 const float *s, const float *vt) {
  const svd_case *c = op->row;
  const int64_t m = c->r->m, n = c->r->n, k = c->k;
  const float *a = op->args[A].host;
  double err2 = 0.0, norm2 = 0.0;
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) {
      double sum = 0.0;
      for (int64_t p = 0; p < k; p++) sum += (double)u[i * k + p] * s[p] * vt[p * n + j];
      err2 += (sum - a[i * n + j]) * (sum - a[i * n + j]);
      norm2 += (double)a[i * n + j] * a[i * n + j];
    }
  const double tol = 4.0 * sqrt((double)c->big) * EPS * sqrt(norm2);
  cr_assert(sqrt(err2) <= tol, "%s on %s: |a - u s vt|_F = %.3g > %.3g", op->name, backend,
            sqrt(err2), tol);
}

static void check_orthonormal(const fgt_op *op, const char *backend, const float *u,
                              const float *vt) {
  const svd_case *c = op->row;
  const int64_t m = c->r->m, n = c->r->n, k = c->k;
  const double tol = 4.0 * sqrt((double)c->big) * EPS;
  for (int64_t p = 0; p < k; p++)
    for (int64_t q = p; q < k; q++) {
      double du = 0.0, dv = 0.0;
      for (int64_t i = 0; i < m; i++) du += (double)u[i * k + p] * u[i * k + q];
      for (int64_t j = 0; j < n; j++) dv += (double)vt[p * n + j] * vt[q * n + j];
      const double want = p == q ? 1.0 : 0.0;
      cr_assert(fabs(du - want) <= tol && fabs(dv - want) <= tol,
                "%s on %s: (u_%lld, u_%lld) = %.3g, (v_%lld, v_%lld) = %.3g, expected %g", op->name,
                backend, (long long)p, (long long)q, du, (long long)p, (long long)q, dv, want);
    }
}

/* The largest entry of each v_i is positive; with the same rule in the reference the right
 * vectors agree, to eps s_max / gap, for components separated from their neighbours (random
 * matrices: at least half of them at these sizes). */
static void check_sign_rule(const fgt_op *op, const char *backend, const float *vt) {
  const svd_case *c = op->row;
  const int64_t n = c->r->n, k = c->k;
  int64_t compared = 0;
  for (int64_t p = 0; p < k; p++) {
    const float *v = vt + p * n;
    cr_assert(v[argmax_abs(v, n)] > 0.0f, "%s on %s: sign rule broken on component %lld", op->name,
              backend, (long long)p);
    double gap = c->s_ref[0];
    if (p > 0) gap = fmin(gap, c->s_ref[p - 1] - c->s_ref[p]);
    if (p + 1 < k) gap = fmin(gap, c->s_ref[p] - c->s_ref[p + 1]);
    if (!(gap > 1e-3 * c->s_ref[0])) continue;
    const double tol = 16.0 * sqrt((double)c->big) * EPS * c->s_ref[0] / gap;
    compared++;
    for (int64_t j = 0; j < n; j++)
      cr_assert(fabs(v[j] - c->vt_ref[p * n + j]) <= tol,
                "%s on %s: v_%lld[%lld] = %.7g, reference %.7g (tolerance %.3g)", op->name, backend,
                (long long)p, (long long)j, (double)v[j], c->vt_ref[p * n + j], tol);
  }
  cr_assert(2 * compared >= k, "%s on %s: only %lld of %lld components are well separated",
            op->name, backend, (long long)compared, (long long)k);
}

/* a = [[1, -1], [2, -2]]: rank one, v_1 = +-(1, -1)/sqrt 2, both entries of equal magnitude;
 * the first must be the positive one, and u_1 then has positive entries. */
static void check_tie(const fgt_op *op, const char *backend, const float *u, const float *vt) {
  cr_assert(fabsf(fabsf(vt[0]) - fabsf(vt[1])) <= 2 * FLT_EPSILON, "%s on %s: v_1 = (%.9g, %.9g)",
            op->name, backend, (double)vt[0], (double)vt[1]);
  if (fabsf(vt[0]) == fabsf(vt[1]))
    cr_assert(vt[0] > 0.0f && vt[1] < 0.0f, "%s on %s: v_1 = (%g, %g)", op->name, backend,
              (double)vt[0], (double)vt[1]);
  cr_assert(u[0] > 0.0f && u[2] > 0.0f, "%s on %s: u_1 = (%g, %g)", op->name, backend, (double)u[0],
            (double)u[2]);
}

static void svd_check(const fgt_op *op, const char *backend, void *const *out) {
  const svd_case *c = op->row;
  const float *u = out[U], *s = out[S], *vt = out[VT];
  for (int64_t i = 0; i < c->k; i++) {
    cr_assert(s[i] >= 0.0f, "%s on %s: s[%lld] = %g < 0", op->name, backend, (long long)i,
              (double)s[i]);
    cr_assert(i == 0 || s[i] <= s[i - 1], "%s on %s: s not descending at %lld", op->name, backend,
              (long long)i);
  }
  if (c->r->kind == SVD_ZERO) {
    for (int64_t i = 0; i < c->k * c->r->n; i++)
      cr_assert(isfinite(vt[i]), "%s on %s: vt[%lld] = %g", op->name, backend, (long long)i,
                (double)vt[i]);
    return;
  }
  check_reconstruction(op, backend, u, s, vt);
  if (c->r->kind == SVD_TIE) {
    check_tie(op, backend, u, vt);
    return;
  }
  if (c->r->kind == SVD_RANK2) return; /* null-space vectors are not unique */
  check_orthonormal(op, backend, u, vt);
  check_sign_rule(op, backend, vt);
}

static void svd_input(fgt_op *op, const svd_row *r) {
  float *a = fgt_fill(op, A, -1.0f, 1.0f);
  if (r->kind == SVD_ZERO) memset(a, 0, (size_t)(r->m * r->n) * sizeof *a);
  if (r->kind == SVD_TIE) a[0] = 1, a[1] = -1, a[2] = 2, a[3] = -2;
  if (r->kind == SVD_NAN) a[5] = NAN;
  if (r->kind != SVD_RANK2) return;
  /* x y^T + z w^T: two positive singular values, the rest ~0 */
  double x[12], y[9], z[12], w[9];
  fgt_fill_uniform_double(x, 12, op->seed + 1, -1, 1),
      fgt_fill_uniform_double(y, 9, op->seed + 2, -1, 1);
  fgt_fill_uniform_double(z, 12, op->seed + 3, -1, 1),
      fgt_fill_uniform_double(w, 9, op->seed + 4, -1, 1);
  for (int64_t i = 0; i < r->m; i++)
    for (int64_t j = 0; j < r->n; j++) a[i * r->n + j] = (float)(x[i] * y[j] + z[i] * w[j]);
}

static void build_svd(int index, fgt_op *op) {
  const svd_row *r = &SVD_ROWS[index];
  svd_case *c = fgt_scratch(op, sizeof *c);
  c->r = r;
  c->k = r->m < r->n ? r->m : r->n;
  c->big = r->m > r->n ? r->m : r->n;
  static const char *kinds[] = {"", " rank 2", " zero", " tie", " nan"};
  fgt_name(op, "svd [%lld, %lld]%s%s", (long long)r->m, (long long)r->n, kinds[r->kind],
           fgt_layout_name(r->layout));
  op->row = c;
  op->call = svd_call;
  op->workspace = svd_workspace;
  op->check = svd_check;
  fgt_layout(op, r->layout);
  fgt_arg2(op, A, "a", FGT_IN, r->m, r->n);
  fgt_arg2(op, U, "u", FGT_OUT, r->m, c->k);
  fgt_arg1(op, S, "s", FGT_OUT, c->k);
  fgt_arg2(op, VT, "vt", FGT_OUT, c->k, r->n);
  svd_input(op, r);
  if (r->kind == SVD_NAN) {
    fgt_expect_error(op, FG_ERR_NUMERIC, "row 1, column 2", NULL);
    return;
  }
  c->s_ref = fgt_scratch_d(op, c->k);
  c->vt_ref = fgt_scratch_d(op, c->k * r->n);
  double *scratch = fgt_scratch_d(op, fg_ref_svd_scratch(r->m, r->n));
  const int sweeps = fg_ref_svd(fgt_widen(op, A), r->m, r->n, NULL, c->s_ref, c->vt_ref, scratch);
  cr_assert(sweeps > 0, "%s: the reference Jacobi SVD did not converge", op->name);
  /* Singular values within O(eps) s_max of the reference, non-negative (rank 2: 16 eps s_max,
   * and the reference has two clear values and zeros; zero: exactly 0). */
  const double s_tol = r->kind == SVD_RANK2 ? 16 * EPS * c->s_ref[0]
                                            : 4.0 * sqrt((double)c->big) * EPS * c->s_ref[0];
  const fgt_tol tol = r->kind == SVD_ZERO ? FGT_EXACT : (fgt_tol){0, s_tol, 0.0, 0.0};
  memcpy(fgt_expect(op, S, tol), c->s_ref, (size_t)c->k * sizeof(double));
  if (r->kind == SVD_RANK2)
    cr_assert(c->s_ref[1] > 0.1 && c->s_ref[2] < 1e-5, "%s: reference s1 %g, s2 %g", op->name,
              c->s_ref[1], c->s_ref[2]);
}

static const fgt_error_row SVD_ERRORS[] = {
    {SVD_COUNT - 1, A, 1, {12}, -1, FG_ERR_SHAPE, "svd: a has shape [12]", NULL},
    {SVD_COUNT - 1, A, 4, {1, 1, 4, 3}, -1, FG_ERR_SHAPE, "svd: a has shape", NULL},
    {SVD_COUNT - 1, A, 2, {0, 3}, -1, FG_ERR_INVALID, "at least one row", NULL},
    {SVD_COUNT - 1, U, 2, {3, 4}, -1, FG_ERR_SHAPE, "svd: u has shape [3, 4]", NULL},
    {SVD_COUNT - 1, S, 1, {4}, -1, FG_ERR_SHAPE, "svd: s has shape [4]", NULL},
    {SVD_COUNT - 1, VT, 2, {3, 4}, -1, FG_ERR_SHAPE, "svd: vt has shape [3, 4]", NULL},
    {SVD_COUNT - 1, A, 0, {0}, FG_I32, FG_ERR_SHAPE, "dtype i32", NULL},
};
static const fgt_suite SVD = {"svd", SVD_COUNT, build_svd, SVD_ERRORS,
                              sizeof SVD_ERRORS / sizeof SVD_ERRORS[0]};
FGT_SUITE_TESTS(svd, matches_reference, SVD)

/* ----------------------------------------------------------------------------------------- */
/* Validation that needs no device memory: missing arguments, aliasing, workspace pointers     */

Test(svd, validation) {
  fgt_setup_cpu(1);
  float a[12], u[12], s[4], vt[12];
  fgt_fill_uniform(a, 12, 1, -1, 1);
  fg_tensor ta = fg_tensor_2d(a, 4, 3), tu = fg_tensor_2d(u, 4, 3), ts = fg_tensor_1d(s, 3),
            tvt = fg_tensor_2d(vt, 3, 3);
  size_t need = 0;
  FGT_OK(fg_svd_workspace(&ta, &need));
  void *mem = aligned_alloc(64, (need + 63) / 64 * 64);
  fg_workspace ws = {mem, need};
  FGT_OK(fg_svd(&ta, &tu, &ts, &tvt, ws));
  fg_tensor a0 = fg_tensor_2d(a, 0, 3);
  fgt_assert_error(fg_svd_workspace(&a0, &need), FG_ERR_INVALID, NULL, "at least one row");
  fgt_assert_error(fg_svd(NULL, &tu, &ts, &tvt, ws), FG_ERR_INVALID, NULL, "a is missing");
  fgt_assert_error(fg_svd(&ta, &tu, NULL, &tvt, ws), FG_ERR_INVALID, NULL, "s is missing");
  fgt_assert_error(fg_svd_workspace(&ta, NULL), FG_ERR_INVALID, NULL, "output pointer");
  fg_tensor alias = fg_tensor_2d(u + 3, 3, 3);
  fgt_assert_error(fg_svd(&ta, &tu, &ts, &alias, ws), FG_ERR_INVALID, NULL, "u and vt overlap");
  fg_workspace small = {mem, need - 1};
  fgt_assert_error(fg_svd(&ta, &tu, &ts, &tvt, small), FG_ERR_INVALID, NULL,
                   "smaller than the");
  fg_workspace none = {NULL, need};
  fgt_assert_error(fg_svd(&ta, &tu, &ts, &tvt, none), FG_ERR_INVALID, NULL, "workspace pointer");
  fg_tensor on_gpu = ta;
  on_gpu.device.kind = FG_DEV_CUDA;
  fg_tensor u_gpu = tu, s_gpu = ts, vt_gpu = tvt;
  u_gpu.device = s_gpu.device = vt_gpu.device = on_gpu.device;
  cr_assert_neq(fg_svd(&on_gpu, &u_gpu, &s_gpu, &vt_gpu, ws), FG_OK);
  fgt_assert_error(fg_svd(&on_gpu, &tu, &ts, &tvt, ws), FG_ERR_INVALID, NULL, "different devices");
  free(mem);
}
