/* The thin SVD op (fg_svd, LAPACK sgesdd on the CPU) and the low-rank factorisation of conv
 * weights built on it (engine/nn/lrf.h), against the double-precision one-sided Jacobi SVD of
 * cpu/ref/ref_linalg.h: singular values, orthonormality, reconstruction at full rank, the
 * truncation error sqrt(sum of the discarded s^2), the sign rule and its stability under a row
 * permutation of the input, workspace from a ledger-charged region, and validation.
 *
 * Tolerances are multiples of float epsilon scaled by the size: LAPACK's SVD is backward stable,
 * so u diag(s) vt reproduces a to O(eps) |a| and every singular value is within O(eps) s_max of
 * the exact one; the factors of a component move by O(eps) s_max / (gap to its neighbours). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_linalg.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
#include "engine/nn/lrf.h"

#define EPS ((double)FLT_EPSILON)

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static float *new_uniform(size_t n, uint64_t seed) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  fgt_fill_uniform(x, n, seed, -1.0f, 1.0f);
  return x;
}

static double *to_double(const float *x, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static double frobenius(const float *x, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) sum += (double)x[i] * x[i];
  return sqrt(sum);
}

/* The reference SVD of a float matrix: s [k] always, u [m,k] and vt [k,n] when not NULL. */
static void ref_svd(const float *a, int64_t m, int64_t n, double *s, double *u, double *vt) {
  double *ad = to_double(a, (size_t)(m * n));
  double *scratch = malloc((size_t)fg_ref_svd_scratch(m, n) * sizeof *scratch);
  int sweeps = fg_ref_svd(ad, m, n, u, s, vt, scratch);
  cr_assert(sweeps > 0, "reference Jacobi SVD of [%lld, %lld] did not converge", (long long)m,
            (long long)n);
  free(ad);
  free(scratch);
}

/* Output buffers of one fg_svd call with a malloc'd workspace of the size the op asks for. */
typedef struct svd_out {
  float *u, *s, *vt;
  void *ws;
  size_t ws_bytes;
} svd_out;

static fg_status run_svd(const float *a, int64_t m, int64_t n, svd_out *o) {
  const int64_t k = m < n ? m : n;
  fg_tensor ta = fg_tensor_2d((float *)a, m, n);
  FGT_OK(fg_svd_workspace(&ta, &o->ws_bytes));
  o->u = malloc((size_t)(m * k) * sizeof(float));
  o->s = malloc((size_t)k * sizeof(float));
  o->vt = malloc((size_t)(k * n) * sizeof(float));
  o->ws = aligned_alloc(64, (o->ws_bytes + 63) / 64 * 64);
  fg_tensor tu = fg_tensor_2d(o->u, m, k), ts = fg_tensor_1d(o->s, k), tvt = fg_tensor_2d(o->vt, k, n);
  fg_workspace ws = {o->ws, o->ws_bytes};
  return fg_svd(&ta, &tu, &ts, &tvt, ws);
}

static void svd_out_free(svd_out *o) {
  free(o->u);
  free(o->s);
  free(o->vt);
  free(o->ws);
  memset(o, 0, sizeof *o);
}

/* Index of the first entry of largest magnitude of x [n] (stride 1). */
static int64_t argmax_abs(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (fabsf(x[i]) > fabsf(x[best])) best = i;
  return best;
}

/* Shapes [m, n]: degenerate, square, tall, wide, a conv's (O*3) x (I*3) views, 192 x 384. */
static const int64_t svd_shapes[][2] = {{1, 1}, {1, 7}, {7, 1},  {5, 5},   {13, 8},
                                        {8, 13}, {24, 36}, {96, 48}, {192, 384}};
enum { SVD_SHAPES = sizeof svd_shapes / sizeof svd_shapes[0] };

/* ----------------------------------------------------------------------------------------- */
/* The SVD op                                                                                 */

Test(svd, matches_the_jacobi_reference) {
  fgt_setup_cpu(1);
  for (int c = 0; c < SVD_SHAPES; c++) {
    const int64_t m = svd_shapes[c][0], n = svd_shapes[c][1], k = m < n ? m : n;
    const int64_t big = m > n ? m : n;
    float *a = new_uniform((size_t)(m * n), 100 + (uint64_t)c);
    svd_out o = {0};
    FGT_OK(run_svd(a, m, n, &o));
    double *s_ref = malloc((size_t)k * sizeof *s_ref);
    double *vt_ref = malloc((size_t)(k * n) * sizeof *vt_ref);
    ref_svd(a, m, n, s_ref, NULL, vt_ref);

    /* Singular values: descending, non-negative, within O(eps) s_max of the reference. */
    const double s_tol = 4.0 * sqrt((double)big) * EPS * s_ref[0];
    for (int64_t i = 0; i < k; i++) {
      cr_assert(o.s[i] >= 0.0f, "[%lld,%lld] s[%lld] = %g < 0", (long long)m, (long long)n,
                (long long)i, (double)o.s[i]);
      if (i > 0)
        cr_assert(o.s[i] <= o.s[i - 1], "[%lld,%lld] s not descending at %lld", (long long)m,
                  (long long)n, (long long)i);
      cr_assert(fabs(o.s[i] - s_ref[i]) <= s_tol,
                "[%lld,%lld] s[%lld] = %.9g, reference %.9g (tolerance %.3g)", (long long)m,
                (long long)n, (long long)i, (double)o.s[i], s_ref[i], s_tol);
    }

    /* Reconstruction u diag(s) vt = a, in double from the float factors. */
    double err2 = 0.0;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) {
        double sum = 0.0;
        for (int64_t p = 0; p < k; p++) sum += (double)o.u[i * k + p] * o.s[p] * o.vt[p * n + j];
        err2 += (sum - a[i * n + j]) * (sum - a[i * n + j]);
      }
    const double rec_tol = 4.0 * sqrt((double)big) * EPS * frobenius(a, (size_t)(m * n));
    cr_assert(sqrt(err2) <= rec_tol, "[%lld,%lld] |a - u s vt|_F = %.3g > %.3g", (long long)m,
              (long long)n, sqrt(err2), rec_tol);

    /* Orthonormal columns of u and rows of vt. */
    const double orth_tol = 4.0 * sqrt((double)big) * EPS;
    for (int64_t p = 0; p < k; p++)
      for (int64_t q = p; q < k; q++) {
        double du = 0.0, dv = 0.0;
        for (int64_t i = 0; i < m; i++) du += (double)o.u[i * k + p] * o.u[i * k + q];
        for (int64_t j = 0; j < n; j++) dv += (double)o.vt[p * n + j] * o.vt[q * n + j];
        const double want = p == q ? 1.0 : 0.0;
        cr_assert(fabs(du - want) <= orth_tol && fabs(dv - want) <= orth_tol,
                  "[%lld,%lld] (u_%lld, u_%lld) = %.3g, (v_%lld, v_%lld) = %.3g, expected %g",
                  (long long)m, (long long)n, (long long)p, (long long)q, du, (long long)p,
                  (long long)q, dv, want);
      }

    /* Sign rule: the largest entry of each v_i is positive. With the same rule in the reference
     * the right vectors agree, to eps s_max / gap, for components separated from their
     * neighbours (random matrices: all of them, at these sizes). */
    int64_t compared = 0;
    for (int64_t p = 0; p < k; p++) {
      const float *v = o.vt + p * n;
      cr_assert(v[argmax_abs(v, n)] > 0.0f, "[%lld,%lld] sign rule broken on component %lld",
                (long long)m, (long long)n, (long long)p);
      double gap = s_ref[0];
      if (p > 0) gap = fmin(gap, s_ref[p - 1] - s_ref[p]);
      if (p + 1 < k) gap = fmin(gap, s_ref[p] - s_ref[p + 1]);
      if (!(gap > 1e-3 * s_ref[0])) continue;
      const double v_tol = 16.0 * sqrt((double)big) * EPS * s_ref[0] / gap;
      compared++;
      for (int64_t j = 0; j < n; j++)
        cr_assert(fabs(v[j] - vt_ref[p * n + j]) <= v_tol,
                  "[%lld,%lld] v_%lld[%lld] = %.7g, reference %.7g (tolerance %.3g)",
                  (long long)m, (long long)n, (long long)p, (long long)j, (double)v[j],
                  vt_ref[p * n + j], v_tol);
    }
    cr_assert(2 * compared >= k, "[%lld,%lld] only %lld of %lld components are well separated",
              (long long)m, (long long)n, (long long)compared, (long long)k);
    free(a);
    free(s_ref);
    free(vt_ref);
    svd_out_free(&o);
  }
}

Test(svd, rank_deficient_and_zero_matrices) {
  fgt_setup_cpu(1);
  /* Rank 2 matrix [12, 9] = x y^T + z w^T: two positive singular values, the rest ~0. */
  const int64_t m = 12, n = 9;
  float *x = new_uniform(m, 1), *y = new_uniform(n, 2), *z = new_uniform(m, 3), *w = new_uniform(n, 4);
  float a[12 * 9];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) a[i * n + j] = x[i] * y[j] + z[i] * w[j];
  svd_out o = {0};
  FGT_OK(run_svd(a, m, n, &o));
  double s_ref[9];
  ref_svd(a, m, n, s_ref, NULL, NULL);
  for (int i = 0; i < 9; i++) {
    cr_assert(fabs(o.s[i] - s_ref[i]) <= 16 * EPS * s_ref[0], "s[%d] = %g, reference %g", i,
              (double)o.s[i], s_ref[i]);
    cr_assert(o.s[i] >= 0.0f);
  }
  cr_assert(s_ref[1] > 0.1 && s_ref[2] < 1e-5, "reference: s1 %g, s2 %g", s_ref[1], s_ref[2]);
  svd_out_free(&o);
  /* All zeros: s = 0, u and vt still orthonormal-shaped (finite). */
  float zero[6] = {0};
  FGT_OK(run_svd(zero, 2, 3, &o));
  cr_assert(o.s[0] == 0.0f && o.s[1] == 0.0f);
  for (int i = 0; i < 6; i++) cr_assert(isfinite(o.vt[i]));
  svd_out_free(&o);
  free(x);
  free(y);
  free(z);
  free(w);
}

Test(svd, sign_rule_ties_go_to_the_first_entry) {
  fgt_setup_cpu(1);
  /* a = [[1, -1], [2, -2]]: rank one, v_1 = +-(1, -1)/sqrt 2, both entries of equal magnitude;
   * the first must be the positive one, and u_1 then has positive entries. */
  float a[4] = {1, -1, 2, -2};
  svd_out o = {0};
  FGT_OK(run_svd(a, 2, 2, &o));
  cr_assert(fabsf(fabsf(o.vt[0]) - fabsf(o.vt[1])) <= 2 * FLT_EPSILON, "v_1 = (%.9g, %.9g)",
            (double)o.vt[0], (double)o.vt[1]);
  if (fabsf(o.vt[0]) == fabsf(o.vt[1]))
    cr_assert(o.vt[0] > 0.0f && o.vt[1] < 0.0f, "v_1 = (%g, %g)", (double)o.vt[0], (double)o.vt[1]);
  cr_assert(o.u[0] > 0.0f && o.u[2] > 0.0f, "u_1 = (%g, %g)", (double)o.u[0], (double)o.u[2]);
  svd_out_free(&o);
}

Test(svd, deterministic_across_calls) {
  fgt_setup_cpu(2);
  const int64_t m = 96, n = 192;
  float *a = new_uniform((size_t)(m * n), 7);
  svd_out o1 = {0}, o2 = {0};
  FGT_OK(run_svd(a, m, n, &o1));
  FGT_OK(run_svd(a, m, n, &o2));
  cr_assert(memcmp(o1.u, o2.u, (size_t)(m * m) * sizeof(float)) == 0);
  cr_assert(memcmp(o1.s, o2.s, (size_t)m * sizeof(float)) == 0);
  cr_assert(memcmp(o1.vt, o2.vt, (size_t)(m * n) * sizeof(float)) == 0);
  svd_out_free(&o1);
  svd_out_free(&o2);
  free(a);
}

/* ----------------------------------------------------------------------------------------- */
/* Low-rank factorisation                                                                     */

/* Workspace for fg_lrf_factor from a region charged to `ledger` (category workspace). */
static fg_workspace lrf_ws(const fg_tensor *w, fg_ledger *ledger, fg_region *r) {
  size_t bytes = 0;
  FGT_OK(fg_lrf_workspace(w, &bytes));
  FGT_OK(fg_region_alloc(r, ledger, fg_host_device(), FG_MEM_WORKSPACE, bytes, "lrf workspace"));
  cr_assert_eq(ledger->by_cat[FG_MEM_WORKSPACE], fg_region_round(fg_host_device(), bytes));
  fg_workspace ws = {r->ptr, r->bytes};
  return ws;
}

/* Factors of w at rank r: a [rank, rows], b [rank, cols] (malloc'd). */
typedef struct factors {
  float *a, *b;
  int64_t rank, rows, cols;
} factors;

static void factorise(const fg_tensor *w, int64_t r, factors *f) {
  FGT_OK(fg_lrf_dims(w, r, &f->rank, &f->rows, &f->cols));
  f->a = malloc((size_t)(f->rank * f->rows) * sizeof(float));
  f->b = malloc((size_t)(f->rank * f->cols) * sizeof(float));
  fg_tensor ta = fg_tensor_2d(f->a, f->rank, f->rows), tb = fg_tensor_2d(f->b, f->rank, f->cols);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_region region = {0};
  fg_workspace ws = lrf_ws(w, &ledger, &region);
  FGT_OK(fg_lrf_factor(w, r, &ta, &tb, ws));
  fg_region_free(&region);
  cr_assert_eq(ledger.current, 0u);
}

static void factors_free(factors *f) {
  free(f->a);
  free(f->b);
}

/* Conv weights [O, I, k, k] with their matrix views [O*k, I*k]: square, tall, wide, 192 x 384
 * (SVHN's exit1 conv b, 64 -> 128... read as (O, I) = (64, 128)), a 1x1 kernel. */
static const int64_t conv_shapes[][4] = {
    {8, 8, 3, 3}, {32, 16, 3, 3}, {16, 32, 3, 3}, {64, 128, 3, 3}, {128, 64, 3, 3}, {6, 10, 1, 1}};
enum { CONV_SHAPES = sizeof conv_shapes / sizeof conv_shapes[0] };

Test(lrf, full_rank_factors_rebuild_the_weight) {
  fgt_setup_cpu(1);
  for (int c = 0; c < CONV_SHAPES; c++) {
    const int64_t *sh = conv_shapes[c];
    const size_t numel = (size_t)(sh[0] * sh[1] * sh[2] * sh[3]);
    float *w = new_uniform(numel, 200 + (uint64_t)c);
    fg_tensor tw = fg_tensor_4d(w, sh[0], sh[1], sh[2], sh[3]);
    factors f = {0};
    factorise(&tw, 100000, &f);
    cr_assert_eq(f.rows, sh[0] * sh[2]);
    cr_assert_eq(f.cols, sh[1] * sh[3]);
    cr_assert_eq(f.rank, f.rows < f.cols ? f.rows : f.cols);
    float *back = malloc(numel * sizeof *back);
    fg_tensor tback = fg_tensor_4d(back, sh[0], sh[1], sh[2], sh[3]);
    fg_tensor ta = fg_tensor_2d(f.a, f.rank, f.rows), tb = fg_tensor_2d(f.b, f.rank, f.cols);
    FGT_OK(fg_lrf_rebuild(&ta, &tb, &tback));
    const int64_t big = f.rows > f.cols ? f.rows : f.cols;
    double err2 = 0.0, max_err = 0.0, max_w = 0.0;
    for (size_t i = 0; i < numel; i++) {
      const double d = (double)back[i] - w[i];
      err2 += d * d;
      max_err = fmax(max_err, fabs(d));
      max_w = fmax(max_w, fabs(w[i]));
    }
    const double fro_tol = 8.0 * sqrt((double)big) * EPS * frobenius(w, numel);
    cr_assert(sqrt(err2) <= fro_tol, "%lldx%lldx%lldx%lld: |w - a^T b|_F = %.3g > %.3g",
              (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3], sqrt(err2),
              fro_tol);
    const double max_tol = 8.0 * sqrt((double)big) * EPS * sqrt((double)f.rank) * max_w;
    cr_assert(max_err <= max_tol, "%lldx%lldx%lldx%lld: max |w - a^T b| = %.3g > %.3g",
              (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3], max_err,
              max_tol);
    free(back);
    free(w);
    factors_free(&f);
  }
}

Test(lrf, factors_are_the_scaled_singular_vectors) {
  fgt_setup_cpu(1);
  /* Row i of a is sqrt(s_i) u_i^T and row i of b is sqrt(s_i) v_i^T, so both have squared norm
   * s_i; and the matrix view is the row-major reinterpretation ((o*I + i)*k + y)*k + x. */
  const int64_t o = 16, in = 8, k = 3, rows = o * k, cols = in * k;
  float *w = new_uniform((size_t)(rows * cols), 31);
  fg_tensor tw = fg_tensor_4d(w, o, in, k, k), view;
  FGT_OK(fg_lrf_matrix_view("w", &tw, &view));
  cr_assert(view.ndim == 2 && view.shape[0] == rows && view.shape[1] == cols && view.data == w);
  factors f = {0};
  factorise(&tw, 5, &f);
  cr_assert_eq(f.rank, 5);
  double s_ref[24];
  ref_svd(w, rows, cols, s_ref, NULL, NULL);
  for (int64_t i = 0; i < f.rank; i++) {
    double na = 0.0, nb = 0.0;
    for (int64_t j = 0; j < rows; j++) na += (double)f.a[i * rows + j] * f.a[i * rows + j];
    for (int64_t j = 0; j < cols; j++) nb += (double)f.b[i * cols + j] * f.b[i * cols + j];
    const double tol = 64 * EPS * s_ref[0];
    cr_assert(fabs(na - s_ref[i]) <= tol && fabs(nb - s_ref[i]) <= tol,
              "component %lld: |a_i|^2 = %.7g, |b_i|^2 = %.7g, s_i = %.7g", (long long)i, na, nb,
              s_ref[i]);
    const float *bi = f.b + i * cols;
    cr_assert(bi[argmax_abs(bi, cols)] > 0.0f, "sign rule on b row %lld", (long long)i);
  }
  factors_free(&f);
  free(w);
}

Test(lrf, truncation_error_is_the_discarded_energy) {
  fgt_setup_cpu(1);
  const int64_t shapes[][4] = {{64, 128, 3, 3}, {32, 16, 3, 3}};
  const int64_t ranks[] = {1, 10, 50};
  for (int c = 0; c < 2; c++) {
    const int64_t *sh = shapes[c];
    const int64_t rows = sh[0] * sh[2], cols = sh[1] * sh[3], kk = rows < cols ? rows : cols;
    const size_t numel = (size_t)(rows * cols);
    float *w = new_uniform(numel, 300 + (uint64_t)c);
    fg_tensor tw = fg_tensor_4d(w, sh[0], sh[1], sh[2], sh[3]);
    double *s_ref = malloc((size_t)kk * sizeof *s_ref);
    ref_svd(w, rows, cols, s_ref, NULL, NULL);
    float *back = malloc(numel * sizeof *back);
    for (int ri = 0; ri < 3; ri++) {
      factors f = {0};
      factorise(&tw, ranks[ri], &f);
      cr_assert_eq(f.rank, ranks[ri] < kk ? ranks[ri] : kk);
      fg_tensor ta = fg_tensor_2d(f.a, f.rank, rows), tb = fg_tensor_2d(f.b, f.rank, cols);
      fg_tensor tback = fg_tensor_2d(back, rows, cols); /* the matrix form is accepted too */
      FGT_OK(fg_lrf_rebuild(&ta, &tb, &tback));
      double err2 = 0.0, tail2 = 0.0;
      for (size_t i = 0; i < numel; i++) err2 += ((double)back[i] - w[i]) * ((double)back[i] - w[i]);
      for (int64_t i = f.rank; i < kk; i++) tail2 += s_ref[i] * s_ref[i];
      const double tol = 8.0 * sqrt((double)(rows > cols ? rows : cols)) * EPS * frobenius(w, numel);
      cr_assert(fabs(sqrt(err2) - sqrt(tail2)) <= tol,
                "%lldx%lldx%lldx%lld rank %lld: |w - a^T b|_F = %.9g, sqrt(sum of discarded s^2) "
                "= %.9g (tolerance %.3g)",
                (long long)sh[0], (long long)sh[1], (long long)sh[2], (long long)sh[3],
                (long long)f.rank, sqrt(err2), sqrt(tail2), tol);
      factors_free(&f);
    }
    free(back);
    free(s_ref);
    free(w);
  }
}

Test(lrf, sign_rule_is_stable_under_row_permutation) {
  fgt_setup_cpu(1);
  const int64_t shapes[][2] = {{48, 24}, {24, 48}, {192, 384}};
  for (int c = 0; c < 3; c++) {
    const int64_t rows = shapes[c][0], cols = shapes[c][1], kk = rows < cols ? rows : cols;
    float *m = new_uniform((size_t)(rows * cols), 400 + (uint64_t)c);
    float *mp = malloc((size_t)(rows * cols) * sizeof *mp);
    int64_t *perm = malloc((size_t)rows * sizeof *perm);
    for (int64_t i = 0; i < rows; i++) perm[i] = i;
    fg_rng rng = fg_rng_stream(500 + (uint64_t)c, FG_RNG_TEST, 0, 0);
    for (int64_t i = rows - 1; i > 0; i--) {
      int64_t j = (int64_t)fg_rng_below(&rng, (uint64_t)(i + 1)), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    for (int64_t i = 0; i < rows; i++) memcpy(mp + i * cols, m + perm[i] * cols, (size_t)cols * sizeof(float));
    fg_tensor tm = fg_tensor_2d(m, rows, cols), tmp = fg_tensor_2d(mp, rows, cols);
    factors f = {0}, g = {0};
    factorise(&tm, kk, &f);
    factorise(&tmp, kk, &g);
    double s_ref[192];
    ref_svd(m, rows, cols, s_ref, NULL, NULL);
    int64_t compared = 0;
    for (int64_t i = 0; i < kk; i++) {
      /* Components are unique up to sign only when separated from their neighbours. */
      double gap = s_ref[0];
      if (i > 0) gap = fmin(gap, s_ref[i - 1] - s_ref[i]);
      if (i + 1 < kk) gap = fmin(gap, s_ref[i] - s_ref[i + 1]);
      if (!(gap > 1e-3 * s_ref[0])) continue;
      const double tol = 16.0 * sqrt((double)(rows > cols ? rows : cols)) * EPS * s_ref[0] / gap *
                         sqrt(s_ref[i]);
      compared++;
      for (int64_t j = 0; j < cols; j++)
        cr_assert(fabs((double)f.b[i * cols + j] - g.b[i * cols + j]) <= tol,
                  "[%lld,%lld] b[%lld][%lld]: %.7g before the permutation, %.7g after "
                  "(tolerance %.3g)",
                  (long long)rows, (long long)cols, (long long)i, (long long)j,
                  (double)f.b[i * cols + j], (double)g.b[i * cols + j], tol);
      for (int64_t j = 0; j < rows; j++)
        cr_assert(fabs((double)g.a[i * rows + j] - f.a[i * rows + perm[j]]) <= tol,
                  "[%lld,%lld] a[%lld][%lld] after the permutation = %.7g, a[%lld][%lld] before "
                  "= %.7g (tolerance %.3g)",
                  (long long)rows, (long long)cols, (long long)i, (long long)j,
                  (double)g.a[i * rows + j], (long long)i, (long long)perm[j],
                  (double)f.a[i * rows + perm[j]], tol);
    }
    cr_assert(2 * compared >= kk, "[%lld,%lld] only %lld of %lld components are well separated",
              (long long)rows, (long long)cols, (long long)compared, (long long)kk);
    factors_free(&f);
    factors_free(&g);
    free(perm);
    free(mp);
    free(m);
  }
}

Test(lrf, workspace_comes_from_a_capped_ledger) {
  fgt_setup_cpu(1);
  /* The STL10 exit2 conv b (256 x 256 x 3 x 3, a 768 x 768 view): the workspace is planned
   * before anything runs, and a ledger capped below it refuses the region. */
  fg_tensor shape = fg_tensor_view(NULL, FG_F32, fg_host_device(), 4, (const int64_t[4]){256, 256, 3, 3});
  size_t bytes = 0;
  FGT_OK(fg_lrf_workspace(&shape, &bytes));
  cr_assert(bytes >= (size_t)(2 * 768 * 768 + 768) * sizeof(float), "workspace %zu bytes", bytes);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "capped", bytes / 2);
  fg_region r = {0};
  cr_assert_eq(fg_region_alloc(&r, &ledger, fg_host_device(), FG_MEM_WORKSPACE, bytes, "lrf workspace"),
               FG_ERR_BUDGET);
  cr_assert_eq(ledger.current, 0u);
}

/* ----------------------------------------------------------------------------------------- */
/* Validation                                                                                 */

static void expect_fail(fg_status got, fg_status want, const char *needle, const char *what) {
  cr_assert_eq(got, want, "%s: got %s, expected %s (%s)", what, fg_status_name(got),
               fg_status_name(want), fg_last_error());
  cr_assert(strstr(fg_last_error(), needle) != NULL, "%s: message '%s' lacks '%s'", what,
            fg_last_error(), needle);
}

Test(validation, svd_rejects_bad_arguments) {
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

  fg_tensor a1 = fg_tensor_1d(a, 12), a4 = fg_tensor_4d(a, 1, 1, 4, 3), a0 = fg_tensor_2d(a, 0, 3);
  expect_fail(fg_svd(&a1, &tu, &ts, &tvt, ws), FG_ERR_SHAPE, "svd: a has shape [12]", "rank 1");
  expect_fail(fg_svd(&a4, &tu, &ts, &tvt, ws), FG_ERR_SHAPE, "svd: a has shape", "rank 4");
  expect_fail(fg_svd(&a0, &tu, &ts, &tvt, ws), FG_ERR_INVALID, "at least one row", "empty");
  expect_fail(fg_svd_workspace(&a0, &need), FG_ERR_INVALID, "at least one row", "empty ws");
  fg_tensor bad_u = fg_tensor_2d(u, 3, 4), bad_s = fg_tensor_1d(s, 4), bad_vt = fg_tensor_2d(vt, 3, 4);
  expect_fail(fg_svd(&ta, &bad_u, &ts, &tvt, ws), FG_ERR_SHAPE, "svd: u has shape [3, 4]", "u");
  expect_fail(fg_svd(&ta, &tu, &bad_s, &tvt, ws), FG_ERR_SHAPE, "svd: s has shape [4]", "s");
  expect_fail(fg_svd(&ta, &tu, &ts, &bad_vt, ws), FG_ERR_SHAPE, "svd: vt has shape [3, 4]", "vt");
  fg_tensor ai = fg_tensor_view(a, FG_I32, fg_host_device(), 2, (const int64_t[2]){4, 3});
  expect_fail(fg_svd(&ai, &tu, &ts, &tvt, ws), FG_ERR_SHAPE, "dtype i32", "dtype");
  expect_fail(fg_svd(NULL, &tu, &ts, &tvt, ws), FG_ERR_INVALID, "a is missing", "null a");
  expect_fail(fg_svd(&ta, &tu, NULL, &tvt, ws), FG_ERR_INVALID, "s is missing", "null s");
  expect_fail(fg_svd_workspace(&ta, NULL), FG_ERR_INVALID, "output pointer", "null bytes");
  fg_tensor alias = fg_tensor_2d(u + 3, 3, 3);
  expect_fail(fg_svd(&ta, &tu, &ts, &alias, ws), FG_ERR_INVALID, "u and vt overlap", "overlap");
  fg_workspace small = {mem, need - 1};
  expect_fail(fg_svd(&ta, &tu, &ts, &tvt, small), FG_ERR_INVALID, "ask fg_svd_workspace", "small ws");
  fg_workspace none = {NULL, need};
  expect_fail(fg_svd(&ta, &tu, &ts, &tvt, none), FG_ERR_INVALID, "workspace pointer", "null ws");
  a[5] = NAN;
  expect_fail(fg_svd(&ta, &tu, &ts, &tvt, ws), FG_ERR_NUMERIC, "row 1, column 2", "nan");
  fg_tensor on_gpu = ta;
  on_gpu.device.kind = FG_DEV_CUDA;
  fg_tensor u_gpu = tu, s_gpu = ts, vt_gpu = tvt;
  u_gpu.device = s_gpu.device = vt_gpu.device = on_gpu.device;
  cr_assert_neq(fg_svd(&on_gpu, &u_gpu, &s_gpu, &vt_gpu, ws), FG_OK);
  expect_fail(fg_svd(&on_gpu, &tu, &ts, &tvt, ws), FG_ERR_INVALID, "different devices", "devices");
  free(mem);
}

Test(validation, svd_null_entry_is_unsupported) {
  fgt_register_empty_backend();
  float a[4] = {1, 2, 3, 4}, u[4], s[2], vt[4], w[64];
  fg_tensor ta = fg_tensor_2d(a, 2, 2), tu = fg_tensor_2d(u, 2, 2), ts = fg_tensor_1d(s, 2),
            tvt = fg_tensor_2d(vt, 2, 2);
  fg_workspace ws = {w, sizeof w};
  size_t bytes;
  expect_fail(fg_svd(&ta, &tu, &ts, &tvt, ws), FG_ERR_UNSUPPORTED,
              "svd: not supported by the empty backend", "svd");
  expect_fail(fg_svd_workspace(&ta, &bytes), FG_ERR_UNSUPPORTED,
              "svd_workspace: not supported by the empty backend", "svd_workspace");
  expect_fail(fg_lrf_workspace(&ta, &bytes), FG_ERR_UNSUPPORTED, "not supported", "lrf");
  fg_backend_registry_clear();
}

Test(validation, lrf_rejects_bad_arguments) {
  fgt_setup_cpu(1);
  _Alignas(64) float w[2 * 3 * 3 * 3];
  float a[6 * 9], b[6 * 9], back[2 * 3 * 3 * 3];
  fgt_fill_uniform(w, sizeof w / sizeof w[0], 3, -1, 1);
  fg_tensor tw = fg_tensor_4d(w, 2, 3, 3, 3); /* view [6, 9] */
  size_t need = 0;
  FGT_OK(fg_lrf_workspace(&tw, &need));
  void *mem = aligned_alloc(64, (need + 63) / 64 * 64);
  fg_workspace ws = {mem, need};
  fg_tensor ta = fg_tensor_2d(a, 4, 6), tb = fg_tensor_2d(b, 4, 9);
  FGT_OK(fg_lrf_factor(&tw, 4, &ta, &tb, ws));
  fg_tensor tback = fg_tensor_4d(back, 2, 3, 3, 3);
  FGT_OK(fg_lrf_rebuild(&ta, &tb, &tback));

  expect_fail(fg_lrf_factor(&tw, 0, &ta, &tb, ws), FG_ERR_INVALID, "r >= 1", "r = 0");
  expect_fail(fg_lrf_dims(&tw, -3, NULL, NULL, NULL), FG_ERR_INVALID, "r >= 1", "r < 0");
  fg_tensor w3 = fg_tensor_view(w, FG_F32, fg_host_device(), 3, (const int64_t[3]){2, 3, 9});
  expect_fail(fg_lrf_factor(&w3, 4, &ta, &tb, ws), FG_ERR_SHAPE, "expected a conv weight", "rank 3");
  fg_tensor w0 = fg_tensor_4d(w, 2, 0, 3, 3);
  expect_fail(fg_lrf_factor(&w0, 4, &ta, &tb, ws), FG_ERR_INVALID, "every extent >= 1", "empty");
  fg_tensor a5 = fg_tensor_2d(a, 5, 6), b_wide = fg_tensor_2d(b, 4, 6);
  expect_fail(fg_lrf_factor(&tw, 4, &a5, &tb, ws), FG_ERR_SHAPE, "a is f32 [5, 6], expected f32 [4, 6]", "a rows");
  expect_fail(fg_lrf_factor(&tw, 4, &ta, &b_wide, ws), FG_ERR_SHAPE, "expected f32 [4, 9]", "b cols");
  /* r beyond min(rows, cols) = 6 is capped: a and b need 6 rows. */
  expect_fail(fg_lrf_factor(&tw, 50, &ta, &tb, ws), FG_ERR_SHAPE, "expected f32 [6, 6]", "r capped");
  fg_workspace small = {mem, need - 64};
  expect_fail(fg_lrf_factor(&tw, 4, &ta, &tb, small), FG_ERR_INVALID, "ask fg_lrf_workspace", "small ws");
  fg_workspace over = {w, need};
  expect_fail(fg_lrf_factor(&tw, 4, &ta, &tb, over), FG_ERR_INVALID, "workspace overlaps w", "ws overlap");
  fg_tensor a_in_w = fg_tensor_2d(w, 4, 6);
  expect_fail(fg_lrf_factor(&tw, 4, &a_in_w, &tb, ws), FG_ERR_INVALID, "must not overlap", "w/a overlap");
  fg_tensor gpu_a = ta;
  gpu_a.device.kind = FG_DEV_CUDA;
  expect_fail(fg_lrf_factor(&tw, 4, &gpu_a, &tb, ws), FG_ERR_UNSUPPORTED, "must live on the cpu", "device");
  /* Rebuild: the target's matrix view must be [a cols, b cols]. */
  fg_tensor wrong = fg_tensor_4d(back, 3, 2, 3, 3); /* view [9, 6] */
  expect_fail(fg_lrf_rebuild(&ta, &tb, &wrong), FG_ERR_SHAPE, "expected f32 [4, 9]", "rebuild shape");
  fg_tensor b3 = fg_tensor_2d(b, 3, 9);
  expect_fail(fg_lrf_rebuild(&ta, &b3, &tback), FG_ERR_SHAPE, "b is f32 [3, 9]", "rank mismatch");
  fg_tensor back_in_a = fg_tensor_2d(a, 6, 9);
  expect_fail(fg_lrf_rebuild(&ta, &tb, &back_in_a), FG_ERR_INVALID, "must not overlap", "rebuild overlap");
  free(mem);
}

/* LAPACK runs on one OpenBLAS thread whatever the backend's count: the same bits either way. */
Test(svd, same_bits_for_any_thread_count) {
  const int64_t shapes[][2] = {{192, 384}, {384, 192}, {60, 45}};
  for (int c = 0; c < 3; c++) {
    const int64_t m = shapes[c][0], n = shapes[c][1], k = m < n ? m : n;
    float *a = new_uniform((size_t)(m * n), 900 + (uint64_t)c);
    svd_out o1 = {0}, o2 = {0};
    fgt_setup_cpu(1);
    FGT_OK(run_svd(a, m, n, &o1));
    fgt_setup_cpu(2);
    FGT_OK(run_svd(a, m, n, &o2));
    cr_assert(memcmp(o1.u, o2.u, (size_t)(m * k) * sizeof(float)) == 0, "[%lld,%lld]: u differs",
              (long long)m, (long long)n);
    cr_assert(memcmp(o1.s, o2.s, (size_t)k * sizeof(float)) == 0, "[%lld,%lld]: s differs",
              (long long)m, (long long)n);
    cr_assert(memcmp(o1.vt, o2.vt, (size_t)(k * n) * sizeof(float)) == 0, "[%lld,%lld]: vt differs",
              (long long)m, (long long)n);
    svd_out_free(&o1);
    svd_out_free(&o2);
    free(a);
  }
}
