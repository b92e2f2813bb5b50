/* The low-rank factorisation of conv weights (engine/nn/lrf.h, built on the SVD op; CPU only:
 * it needs host memory) against the double-precision one-sided Jacobi SVD of
 * tests/ref/ref_linalg.h: full-rank factors rebuild the weight, the factors are the singular
 * vectors scaled by sqrt(s), the truncation error is sqrt(sum of the discarded s^2), the sign
 * rule is stable under a row permutation of the weight's matrix view, the workspace comes from
 * a ledger-charged region, and validation. The SVD op itself is in the op suite (tests/ops).
 *
 * Tolerances are multiples of float epsilon scaled by the size: LAPACK's SVD is backward stable,
 * so the factors reproduce w to O(eps) |w| and the factors of a component move by O(eps) s_max /
 * (gap to its neighbours). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
#include "engine/nn/lrf.h"
#include "ref/ref_linalg.h"

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

/* Index of the first entry of largest magnitude of x [n] (stride 1). */
static int64_t argmax_abs(const float *x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; i++)
    if (fabsf(x[i]) > fabsf(x[best])) best = i;
  return best;
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
static const int64_t conv_shapes[][4] = {{8, 8, 3, 3},    {32, 16, 3, 3},  {16, 32, 3, 3},
                                         {64, 128, 3, 3}, {128, 64, 3, 3}, {6, 10, 1, 1}};
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

/* fg_svd of the row-major matrix m [rows, cols] on the host: u [rows, k], s [k], vt [k, cols]. */
static void host_svd(const float *m, int64_t rows, int64_t cols, float *u, float *s, float *vt) {
  const int64_t k = rows < cols ? rows : cols;
  fg_tensor ta = fg_tensor_2d((float *)m, rows, cols), tu = fg_tensor_2d(u, rows, k), ts = fg_tensor_1d(s, k),
            tvt = fg_tensor_2d(vt, k, cols);
  size_t need = 0;
  FGT_OK(fg_svd_workspace(&ta, &need));
  void *mem = aligned_alloc(64, (need + 63) / 64 * 64);
  cr_assert(mem);
  fg_workspace ws = {mem, need};
  FGT_OK(fg_svd(&ta, &tu, &ts, &tvt, ws));
  free(mem);
}

Test(lrf, factors_are_exactly_the_scaled_svd_vectors) {
  /* The factors are formed by ops (a = D U^T, b = D V^T with D = diag(sqrt s)); every element is
   * one rounded product, so it equals sqrtf(s_i) * u_ji computed here from fg_svd's output. */
  fgt_setup_cpu(1);
  for (int c = 0; c < CONV_SHAPES; c++) {
    const int64_t *sh = conv_shapes[c];
    float *w = new_uniform((size_t)(sh[0] * sh[1] * sh[2] * sh[3]), 400 + (uint64_t)c);
    fg_tensor tw = fg_tensor_4d(w, sh[0], sh[1], sh[2], sh[3]);
    factors f = {0};
    factorise(&tw, 5, &f);
    const int64_t rows = sh[0] * sh[2], cols = sh[1] * sh[3], k = rows < cols ? rows : cols;
    float *u = malloc((size_t)(rows * k) * sizeof *u), *s = malloc((size_t)k * sizeof *s),
          *vt = malloc((size_t)(k * cols) * sizeof *vt);
    cr_assert(u && s && vt);
    host_svd(w, rows, cols, u, s, vt);
    for (int64_t i = 0; i < f.rank; i++) {
      const float root = sqrtf(s[i] > 0.0f ? s[i] : 0.0f);
      for (int64_t j = 0; j < rows; j++)
        cr_assert_eq(f.a[i * rows + j], root * u[j * k + i], "shape %d: a[%lld, %lld]", c, (long long)i,
                     (long long)j);
      for (int64_t j = 0; j < cols; j++)
        cr_assert_eq(f.b[i * cols + j], root * vt[i * cols + j], "shape %d: b[%lld, %lld]", c, (long long)i,
                     (long long)j);
    }
    free(u), free(s), free(vt);
    factors_free(&f);
    free(w);
  }
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
      for (size_t i = 0; i < numel; i++)
        err2 += ((double)back[i] - w[i]) * ((double)back[i] - w[i]);
      for (int64_t i = f.rank; i < kk; i++) tail2 += s_ref[i] * s_ref[i];
      const double tol =
          8.0 * sqrt((double)(rows > cols ? rows : cols)) * EPS * frobenius(w, numel);
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
    for (int64_t i = 0; i < rows; i++)
      memcpy(mp + i * cols, m + perm[i] * cols, (size_t)cols * sizeof(float));
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
      const double tol =
          16.0 * sqrt((double)(rows > cols ? rows : cols)) * EPS * s_ref[0] / gap * sqrt(s_ref[i]);
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
  fg_tensor shape =
      fg_tensor_view(NULL, FG_F32, fg_host_device(), 4, (const int64_t[4]){256, 256, 3, 3});
  size_t bytes = 0;
  FGT_OK(fg_lrf_workspace(&shape, &bytes));
  cr_assert(bytes >= (size_t)(2 * 768 * 768 + 768) * sizeof(float), "workspace %zu bytes", bytes);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "capped", bytes / 2);
  fg_region r = {0};
  cr_assert_eq(
      fg_region_alloc(&r, &ledger, fg_host_device(), FG_MEM_WORKSPACE, bytes, "lrf workspace"),
      FG_ERR_BUDGET);
  cr_assert_eq(ledger.current, 0u);
}

/* ----------------------------------------------------------------------------------------- */
/* Validation                                                                                 */

/* A backend without the SVD entries: the factorisation's workspace query reports it. */
Test(validation, lrf_on_a_backend_without_svd_is_unsupported) {
  fgt_register_empty_backend();
  float a[4] = {1, 2, 3, 4};
  fg_tensor ta = fg_tensor_2d(a, 2, 2);
  size_t bytes;
  fgt_assert_error(fg_lrf_workspace(&ta, &bytes), FG_ERR_UNSUPPORTED, NULL, "not supported");
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

  fgt_assert_error(fg_lrf_factor(&tw, 0, &ta, &tb, ws), FG_ERR_INVALID, NULL, "r >= 1");
  fgt_assert_error(fg_lrf_dims(&tw, -3, NULL, NULL, NULL), FG_ERR_INVALID, NULL, "r >= 1");
  fg_tensor w3 = fg_tensor_view(w, FG_F32, fg_host_device(), 3, (const int64_t[3]){2, 3, 9});
  fgt_assert_error(fg_lrf_factor(&w3, 4, &ta, &tb, ws), FG_ERR_SHAPE, NULL,
                   "expected a conv weight");
  fg_tensor w0 = fg_tensor_4d(w, 2, 0, 3, 3);
  fgt_assert_error(fg_lrf_factor(&w0, 4, &ta, &tb, ws), FG_ERR_INVALID, NULL, "every extent >= 1");
  fg_tensor a5 = fg_tensor_2d(a, 5, 6), b_wide = fg_tensor_2d(b, 4, 6);
  fgt_assert_error(fg_lrf_factor(&tw, 4, &a5, &tb, ws), FG_ERR_SHAPE, NULL,
                   "a is f32 [5, 6], expected f32 [4, 6]");
  fgt_assert_error(fg_lrf_factor(&tw, 4, &ta, &b_wide, ws), FG_ERR_SHAPE, NULL,
                   "expected f32 [4, 9]");
  /* r beyond min(rows, cols) = 6 is capped: a and b need 6 rows. */
  fgt_assert_error(fg_lrf_factor(&tw, 50, &ta, &tb, ws), FG_ERR_SHAPE, NULL, "expected f32 [6, 6]");
  fg_workspace small = {mem, need - 64};
  fgt_assert_error(fg_lrf_factor(&tw, 4, &ta, &tb, small), FG_ERR_INVALID, NULL,
                   "ask fg_lrf_workspace");
  fg_workspace over = {w, need};
  fgt_assert_error(fg_lrf_factor(&tw, 4, &ta, &tb, over), FG_ERR_INVALID, NULL,
                   "workspace overlaps w");
  fg_tensor a_in_w = fg_tensor_2d(w, 4, 6);
  fgt_assert_error(fg_lrf_factor(&tw, 4, &a_in_w, &tb, ws), FG_ERR_INVALID, NULL,
                   "must not overlap");
  fg_tensor gpu_a = ta;
  gpu_a.device.kind = FG_DEV_CUDA;
  fgt_assert_error(fg_lrf_factor(&tw, 4, &gpu_a, &tb, ws), FG_ERR_INVALID, NULL,
                   "live on different devices (cpu, cuda:0, cpu)");
  /* Rebuild: the target's matrix view must be [a cols, b cols]. */
  fg_tensor wrong = fg_tensor_4d(back, 3, 2, 3, 3); /* view [9, 6] */
  fgt_assert_error(fg_lrf_rebuild(&ta, &tb, &wrong), FG_ERR_SHAPE, NULL, "expected f32 [4, 9]");
  fg_tensor b3 = fg_tensor_2d(b, 3, 9);
  fgt_assert_error(fg_lrf_rebuild(&ta, &b3, &tback), FG_ERR_SHAPE, NULL, "b is f32 [3, 9]");
  fg_tensor back_in_a = fg_tensor_2d(a, 6, 9);
  fgt_assert_error(fg_lrf_rebuild(&ta, &tb, &back_in_a), FG_ERR_INVALID, NULL, "must not overlap");
  free(mem);
}
