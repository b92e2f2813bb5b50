/* Batch norm on the CPU backend: forward (train and eval), running statistics and every
 * backward output against the double-precision reference (cpu/ref/ref_math.h); the reference
 * backward against finite differences of the reference forward; bit-identical results for 1
 * and 2 threads; the one-value-per-channel error. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static double *to_double(const float *x, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static float *new_uniform(size_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  fgt_fill_uniform(x, n, seed, lo, hi);
  return x;
}

static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
  char msg[512];
  cr_assert(fgt_allclose(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

typedef struct bn_case {
  int ndim; /* 2: [N,C]; 4: [N,C,H,W] */
  int64_t n, c, h, w;
} bn_case;

static int64_t case_numel(const bn_case *k) { return k->n * k->c * k->h * k->w; }
static int64_t case_inner(const bn_case *k) { return k->h * k->w; }

static fg_tensor case_tensor(const bn_case *k, float *data) {
  return k->ndim == 4 ? fg_tensor_4d(data, k->n, k->c, k->h, k->w) : fg_tensor_2d(data, k->n, k->c);
}

/* The shapes every BN test runs over: odd extents, N*H*W = 2, [N,C] and [N,C,H,W], N = 1. */
static bn_case shape(int index) {
  static const bn_case all[] = {
      {4, 2, 3, 5, 7},  /* odd extents */
      {4, 4, 16, 3, 3}, /* 16 channels */
      {4, 1, 5, 1, 2},  /* N = 1, N*H*W = 2 */
      {4, 2, 4, 1, 1},  /* [N,C,1,1], N*H*W = 2 */
      {2, 9, 6, 1, 1},  /* [N,C] */
      {2, 2, 3, 1, 1},  /* [N,C], N = 2 */
      {4, 3, 1, 4, 5},  /* one channel */
  };
  return all[index];
}
enum { BN_SHAPES = 7 };

/* x with a different mean and spread per channel, so that normalisation matters. */
static float *bn_input(const bn_case *k, uint64_t seed) {
  int64_t numel = case_numel(k), inner = case_inner(k);
  float *x = new_uniform((size_t)numel, seed, -1.0f, 1.0f);
  for (int64_t i = 0; i < numel; i++) {
    int64_t ch = (i / inner) % k->c;
    x[i] = x[i] * (0.5f + 0.25f * (float)ch) + 0.3f * (float)ch - 0.4f;
  }
  return x;
}

/* ----------------------------------------------------------------------------------------- */
/* Forward                                                                                    */

static void check_forward_train(const bn_case *k, float momentum, int with_running, uint64_t seed) {
  const int64_t numel = case_numel(k), c = k->c, inner = case_inner(k);
  const float eps = 1e-5f;
  float *x = bn_input(k, seed);
  float *gamma = new_uniform((size_t)c, seed + 1, 0.5f, 1.5f);
  float *beta = new_uniform((size_t)c, seed + 2, -1.0f, 1.0f);
  float *rm = new_uniform((size_t)c, seed + 3, -0.5f, 0.5f);
  float *rv = new_uniform((size_t)c, seed + 4, 0.5f, 2.0f);
  float *y = calloc((size_t)numel, sizeof *y);
  float *mean = calloc((size_t)c, sizeof *mean), *invstd = calloc((size_t)c, sizeof *invstd);

  double *xd = to_double(x, (size_t)numel), *gd = to_double(gamma, (size_t)c);
  double *bd = to_double(beta, (size_t)c), *rmd = to_double(rm, (size_t)c);
  double *rvd = to_double(rv, (size_t)c);
  double *yd = malloc((size_t)numel * sizeof *yd);
  double *md = malloc((size_t)c * sizeof *md), *isd = malloc((size_t)c * sizeof *isd);
  fg_ref_bn_forward_train(xd, k->n, c, inner, gd, bd, eps, momentum, yd, md, isd,
                          with_running ? rmd : NULL, with_running ? rvd : NULL);

  fg_tensor tx = case_tensor(k, x), ty = case_tensor(k, y);
  fg_tensor tg = fg_tensor_1d(gamma, c), tb = fg_tensor_1d(beta, c);
  fg_tensor tm = fg_tensor_1d(mean, c), ti = fg_tensor_1d(invstd, c);
  fg_tensor trm = fg_tensor_1d(rm, c), trv = fg_tensor_1d(rv, c);
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, with_running ? &trm : NULL,
                             with_running ? &trv : NULL, momentum, eps));
  expect_close("bn y", y, yd, (size_t)numel, 2e-6, 2e-6);
  expect_close("bn save_mean", mean, md, (size_t)c, 1e-7, 1e-6);
  expect_close("bn save_invstd", invstd, isd, (size_t)c, 0, 1e-6);
  if (with_running) {
    expect_close("bn running_mean", rm, rmd, (size_t)c, 1e-7, 1e-6);
    expect_close("bn running_var", rv, rvd, (size_t)c, 1e-7, 1e-6);
  } else {
    /* Untouched: compare with the initial values the reference still holds. */
    expect_close("bn running_mean untouched", rm, rmd, (size_t)c, 0, 0);
    expect_close("bn running_var untouched", rv, rvd, (size_t)c, 0, 0);
  }

  /* In place (y == x) gives the same result. */
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &tx, &tm, &ti, NULL, NULL, momentum, eps));
  expect_close("bn y in place", x, yd, (size_t)numel, 2e-6, 2e-6);

  free(x), free(gamma), free(beta), free(rm), free(rv), free(y), free(mean), free(invstd);
  free(xd), free(gd), free(bd), free(rmd), free(rvd), free(yd), free(md), free(isd);
}

Test(bn, forward_train_matches_reference) {
  fgt_setup_cpu(1);
  for (int s = 0; s < BN_SHAPES; s++) {
    bn_case k = shape(s);
    check_forward_train(&k, 0.1f, 1, 100 + (uint64_t)s);
    check_forward_train(&k, 0.35f, 1, 200 + (uint64_t)s);
    check_forward_train(&k, 0.1f, 0, 300 + (uint64_t)s);
  }
}

/* Running statistics by hand: one channel, x = {1, 3} (N = 2): mean 2, biased var 1, unbiased
 * var 2; from running_mean 0, running_var 1 with momentum 0.1: running_mean = 0.9*0 + 0.1*2 =
 * 0.2, running_var = 0.9*1 + 0.1*2 = 1.1; y = (x - 2)/sqrt(1 + eps) = -+1/sqrt(1.00001). */
Test(bn, running_statistics_by_hand) {
  fgt_setup_cpu(1);
  float x[2] = {1.0f, 3.0f}, y[2], g = 1.0f, b = 0.0f, m, is, rm = 0.0f, rv = 1.0f;
  fg_tensor tx = fg_tensor_2d(x, 2, 1), ty = fg_tensor_2d(y, 2, 1);
  fg_tensor tg = fg_tensor_1d(&g, 1), tb = fg_tensor_1d(&b, 1), tm = fg_tensor_1d(&m, 1);
  fg_tensor ti = fg_tensor_1d(&is, 1), trm = fg_tensor_1d(&rm, 1), trv = fg_tensor_1d(&rv, 1);
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, &trv, 0.1f, 1e-5f));
  cr_assert_float_eq(m, 2.0f, 1e-7);
  cr_assert_float_eq(is, (float)(1.0 / sqrt(1.00001)), 1e-7);
  cr_assert_float_eq(rm, 0.2f, 1e-7);
  cr_assert_float_eq(rv, 1.1f, 1e-6);
  cr_assert_float_eq(y[0], (float)(-1.0 / sqrt(1.00001)), 1e-6);
  cr_assert_float_eq(y[1], (float)(1.0 / sqrt(1.00001)), 1e-6);
}

Test(bn, forward_eval_matches_reference) {
  fgt_setup_cpu(1);
  for (int s = 0; s < BN_SHAPES; s++) {
    bn_case k = shape(s);
    const int64_t numel = case_numel(&k), c = k.c;
    float *x = bn_input(&k, 10 + (uint64_t)s);
    float *gamma = new_uniform((size_t)c, 11, 0.5f, 1.5f),
          *beta = new_uniform((size_t)c, 12, -1, 1);
    float *rm = new_uniform((size_t)c, 13, -0.5f, 0.5f),
          *rv = new_uniform((size_t)c, 14, 0.1f, 3.0f);
    float *y = calloc((size_t)numel, sizeof *y);
    double *xd = to_double(x, (size_t)numel), *gd = to_double(gamma, (size_t)c);
    double *bd = to_double(beta, (size_t)c), *rmd = to_double(rm, (size_t)c);
    double *rvd = to_double(rv, (size_t)c), *yd = malloc((size_t)numel * sizeof *yd);
    fg_ref_bn_forward_eval(xd, k.n, c, case_inner(&k), gd, bd, rmd, rvd, 1e-5, yd);
    fg_tensor tx = case_tensor(&k, x), ty = case_tensor(&k, y);
    fg_tensor tg = fg_tensor_1d(gamma, c), tb = fg_tensor_1d(beta, c);
    fg_tensor trm = fg_tensor_1d(rm, c), trv = fg_tensor_1d(rv, c);
    FGT_OK(fg_bn_forward_eval(&tx, &tg, &tb, &trm, &trv, 1e-5f, &ty));
    expect_close("bn eval y", y, yd, (size_t)numel, 2e-6, 2e-6);
    FGT_OK(fg_bn_forward_eval(&tx, &tg, &tb, &trm, &trv, 1e-5f, &tx));
    expect_close("bn eval y in place", x, yd, (size_t)numel, 2e-6, 2e-6);
    free(x), free(gamma), free(beta), free(rm), free(rv), free(y);
    free(xd), free(gd), free(bd), free(rmd), free(rvd), free(yd);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Backward                                                                                   */

/* |dx - ref| <= 1e-5 |ref| + 1e-6 |gamma_c| invstd_c (1 + max |dy|) per element (see the
 * comment at the call). */
static void expect_dx_close(const bn_case *k, const float *dx, const double *ref, const double *dy,
                            const double *gamma, const double *invstd) {
  const int64_t numel = case_numel(k), inner = case_inner(k);
  double dy_max = 0;
  for (int64_t i = 0; i < numel; i++) dy_max = fmax(dy_max, fabs(dy[i]));
  for (int64_t i = 0; i < numel; i++) {
    int64_t ch = (i / inner) % k->c;
    double tol = 1e-5 * fabs(ref[i]) + 1e-6 * fabs(gamma[ch]) * invstd[ch] * (1.0 + dy_max);
    cr_assert(fabs((double)dx[i] - ref[i]) <= tol, "bn dx[%lld] (channel %lld, invstd %g): got %.9g, want %.9g",
              (long long)i, (long long)ch, invstd[ch], (double)dx[i], ref[i]);
  }
}

/* Which outputs a backward call asks for. */
enum { WANT_DX = 1, WANT_DGAMMA = 2, WANT_DBETA = 4, WANT_ALL = 7 };

static void check_backward(const bn_case *k, int want, int accumulate, uint64_t seed) {
  const int64_t numel = case_numel(k), c = k->c, inner = case_inner(k);
  float *x = bn_input(k, seed);
  float *gamma = new_uniform((size_t)c, seed + 1, 0.5f, 1.5f);
  float *beta = new_uniform((size_t)c, seed + 2, -1.0f, 1.0f);
  float *dy = new_uniform((size_t)numel, seed + 3, -1.0f, 1.0f);
  float *y = calloc((size_t)numel, sizeof *y);
  float *mean = calloc((size_t)c, sizeof *mean), *invstd = calloc((size_t)c, sizeof *invstd);
  float *dx = new_uniform((size_t)numel, seed + 4, -1.0f, 1.0f); /* prior contents */
  float *dg = new_uniform((size_t)c, seed + 5, -1.0f, 1.0f);
  float *db = new_uniform((size_t)c, seed + 6, -1.0f, 1.0f);
  double *dx0 = to_double(dx, (size_t)numel), *dg0 = to_double(dg, (size_t)c);
  double *db0 = to_double(db, (size_t)c);

  fg_tensor tx = case_tensor(k, x), ty = case_tensor(k, y), tdy = case_tensor(k, dy);
  fg_tensor tdx = case_tensor(k, dx), tg = fg_tensor_1d(gamma, c), tb = fg_tensor_1d(beta, c);
  fg_tensor tm = fg_tensor_1d(mean, c), ti = fg_tensor_1d(invstd, c);
  fg_tensor tdg = fg_tensor_1d(dg, c), tdb = fg_tensor_1d(db, c);
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, NULL, NULL, 0.1f, 1e-5f));
  FGT_OK(fg_bn_backward(&tdy, &tx, &tg, &tm, &ti, (want & WANT_DX) ? &tdx : NULL,
                        (want & WANT_DGAMMA) ? &tdg : NULL, (want & WANT_DBETA) ? &tdb : NULL,
                        accumulate));

  /* Reference from the same saved statistics. */
  double *xd = to_double(x, (size_t)numel), *dyd = to_double(dy, (size_t)numel);
  double *gd = to_double(gamma, (size_t)c), *md = to_double(mean, (size_t)c);
  double *isd = to_double(invstd, (size_t)c);
  double *dxr = malloc((size_t)numel * sizeof *dxr), *dgr = malloc((size_t)c * sizeof *dgr);
  double *dbr = malloc((size_t)c * sizeof *dbr);
  fg_ref_bn_backward(dyd, xd, k->n, c, inner, gd, md, isd, dxr, dgr, dbr);
  if (accumulate && (want & WANT_DX))
    for (int64_t i = 0; i < numel; i++) dxr[i] += dx0[i];

  /* dx = gamma invstd (dy - mean dy - xhat mean(dy xhat)) cancels: with two values per channel
   * it is exactly 0 and float32 leaves a residue of order 1e-7 |dy| gamma invstd, where invstd is
   * large when the values are close. So the absolute tolerance scales with gamma invstd per
   * channel. */
  if (want & WANT_DX)
    expect_dx_close(k, dx, dxr, dyd, gd, isd);
  else
    expect_close("bn dx untouched", dx, dx0, (size_t)numel, 0, 0);
  if (want & WANT_DGAMMA)
    expect_close("bn dgamma", dg, dgr, (size_t)c, 1e-5, 1e-5);
  else
    expect_close("bn dgamma untouched", dg, dg0, (size_t)c, 0, 0);
  if (want & WANT_DBETA)
    expect_close("bn dbeta", db, dbr, (size_t)c, 1e-5, 1e-5);
  else
    expect_close("bn dbeta untouched", db, db0, (size_t)c, 0, 0);

  free(x), free(gamma), free(beta), free(dy), free(y), free(mean), free(invstd), free(dx);
  free(dg), free(db), free(dx0), free(dg0), free(db0), free(xd), free(dyd), free(gd), free(md);
  free(isd), free(dxr), free(dgr), free(dbr);
}

Test(bn, backward_matches_reference) {
  fgt_setup_cpu(1);
  for (int s = 0; s < BN_SHAPES; s++) {
    bn_case k = shape(s);
    uint64_t seed = 1000 + 10 * (uint64_t)s;
    check_backward(&k, WANT_ALL, 0, seed);
    check_backward(&k, WANT_ALL, 1, seed + 1);
    check_backward(&k, WANT_DX, 0, seed + 2);
    check_backward(&k, WANT_DX, 1, seed + 3);
    check_backward(&k, WANT_DGAMMA | WANT_DBETA, 0, seed + 4);
    check_backward(&k, WANT_DBETA, 1, seed + 5);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Finite differences on the reference                                                        */

/* L = sum_j w_j y_j(x, gamma, beta) with the reference training forward. */
static double bn_objective(const double *x, const double *gamma, const double *beta,
                           const double *w, int64_t n, int64_t c, int64_t inner, double *scratch) {
  double mean[64], invstd[64];
  fg_ref_bn_forward_train(x, n, c, inner, gamma, beta, 1e-5, 0.1, scratch, mean, invstd, NULL,
                          NULL);
  double l = 0.0;
  for (int64_t i = 0; i < n * c * inner; i++) l += w[i] * scratch[i];
  return l;
}

/* Central difference of bn_objective in v[j] (v is one of x, gamma, beta). */
static double bn_fd(double *v, int64_t j, const double *x, const double *gamma, const double *beta,
                    const double *w, int64_t n, int64_t c, int64_t inner, double *scratch) {
  const double h = 1e-5, saved = v[j];
  v[j] = saved + h;
  double lp = bn_objective(x, gamma, beta, w, n, c, inner, scratch);
  v[j] = saved - h;
  double lm = bn_objective(x, gamma, beta, w, n, c, inner, scratch);
  v[j] = saved;
  return (lp - lm) / (2 * h);
}

static void check_fd_close(const char *what, int64_t j, double analytic, double numeric) {
  cr_assert(fabs(analytic - numeric) <= 1e-6 + 1e-6 * fabs(numeric),
            "%s[%lld]: analytic %.12g, finite difference %.12g", what, (long long)j, analytic,
            numeric);
}

Test(bn, reference_backward_matches_finite_differences) {
  for (int s = 0; s < BN_SHAPES; s++) {
    bn_case k = shape(s);
    const int64_t numel = case_numel(&k), c = k.c, inner = case_inner(&k);
    double *x = malloc((size_t)numel * sizeof *x), *w = malloc((size_t)numel * sizeof *w);
    double *gamma = malloc((size_t)c * sizeof *gamma), *beta = malloc((size_t)c * sizeof *beta);
    fgt_fill_uniform_double(x, (size_t)numel, 40 + (uint64_t)s, -2.0, 2.0);
    fgt_fill_uniform_double(w, (size_t)numel, 50 + (uint64_t)s, -1.0, 1.0);
    fgt_fill_uniform_double(gamma, (size_t)c, 60 + (uint64_t)s, 0.5, 1.5);
    fgt_fill_uniform_double(beta, (size_t)c, 70 + (uint64_t)s, -1.0, 1.0);
    double *y = malloc((size_t)numel * sizeof *y), *dx = malloc((size_t)numel * sizeof *dx);
    double mean[64], invstd[64], dgamma[64], dbeta[64];
    fg_ref_bn_forward_train(x, k.n, c, inner, gamma, beta, 1e-5, 0.1, y, mean, invstd, NULL, NULL);
    fg_ref_bn_backward(w, x, k.n, c, inner, gamma, mean, invstd, dx, dgamma, dbeta);
    for (int64_t j = 0; j < numel; j++)
      check_fd_close("ref bn dx", j, dx[j], bn_fd(x, j, x, gamma, beta, w, k.n, c, inner, y));
    for (int64_t j = 0; j < c; j++) {
      check_fd_close("ref bn dgamma", j, dgamma[j],
                     bn_fd(gamma, j, x, gamma, beta, w, k.n, c, inner, y));
      check_fd_close("ref bn dbeta", j, dbeta[j],
                     bn_fd(beta, j, x, gamma, beta, w, k.n, c, inner, y));
    }
    free(x), free(w), free(gamma), free(beta), free(y), free(dx);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Threads and errors                                                                         */

/* Forward (with running statistics) and backward, returning all outputs in one buffer. */
static void bn_run_all(const bn_case *k, float *out) {
  const int64_t numel = case_numel(k), c = k->c;
  float *x = bn_input(k, 77);
  float *gamma = new_uniform((size_t)c, 78, 0.5f, 1.5f), *beta = new_uniform((size_t)c, 79, -1, 1);
  float *dy = new_uniform((size_t)numel, 80, -1, 1);
  float *y = out, *mean = y + numel, *invstd = mean + c, *rm = invstd + c, *rv = rm + c;
  float *dx = rv + c, *dg = dx + numel, *db = dg + c;
  for (int64_t i = 0; i < c; i++) rm[i] = 0.0f, rv[i] = 1.0f;
  fg_tensor tx = case_tensor(k, x), ty = case_tensor(k, y), tdy = case_tensor(k, dy);
  fg_tensor tdx = case_tensor(k, dx), tg = fg_tensor_1d(gamma, c), tb = fg_tensor_1d(beta, c);
  fg_tensor tm = fg_tensor_1d(mean, c), ti = fg_tensor_1d(invstd, c);
  fg_tensor trm = fg_tensor_1d(rm, c), trv = fg_tensor_1d(rv, c);
  fg_tensor tdg = fg_tensor_1d(dg, c), tdb = fg_tensor_1d(db, c);
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, &trv, 0.1f, 1e-5f));
  FGT_OK(fg_bn_backward(&tdy, &tx, &tg, &tm, &ti, &tdx, &tdg, &tdb, 0));
  free(x), free(gamma), free(beta), free(dy);
}

Test(bn, bit_identical_for_one_and_two_threads) {
  /* Large enough (C * N*H*W >= 32K) for the channel loop to run on several threads. */
  const bn_case k = {4, 8, 16, 16, 16};
  const size_t total = (size_t)(2 * case_numel(&k) + 6 * k.c);
  float *one = calloc(total, sizeof *one), *two = calloc(total, sizeof *two);
  fgt_setup_cpu(1);
  bn_run_all(&k, one);
  fgt_setup_cpu(2);
  bn_run_all(&k, two);
  cr_assert(memcmp(one, two, total * sizeof *one) == 0,
            "BN outputs differ between 1 and 2 threads");
  free(one), free(two);
}

Test(bn, one_value_per_channel_is_rejected) {
  fgt_setup_cpu(1);
  float x[3] = {1, 2, 3}, y[3], g[3] = {1, 1, 1}, b[3] = {0}, m[3], is[3];
  fg_tensor tx = fg_tensor_2d(x, 1, 3), ty = fg_tensor_2d(y, 1, 3);
  fg_tensor tg = fg_tensor_1d(g, 3), tb = fg_tensor_1d(b, 3), tm = fg_tensor_1d(m, 3);
  fg_tensor ti = fg_tensor_1d(is, 3);
  fg_status s = fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, NULL, NULL, 0.1f, 1e-5f);
  cr_assert_eq(s, FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "batch norm needs more than one value per channel") != NULL,
            "message: %s", fg_last_error());
}

Test(bn, shape_and_value_errors) {
  fgt_setup_cpu(1);
  float x[24] = {0}, y[24], g[4] = {1, 1, 1, 1}, b[4] = {0}, m[4], is[4], rm[4] = {0}, rv[4] = {1};
  fg_tensor tx = fg_tensor_4d(x, 2, 3, 2, 2), ty = fg_tensor_4d(y, 2, 3, 2, 2);
  fg_tensor tg4 = fg_tensor_1d(g, 4), tg = fg_tensor_1d(g, 3), tb = fg_tensor_1d(b, 3);
  fg_tensor tm = fg_tensor_1d(m, 3), ti = fg_tensor_1d(is, 3);
  fg_tensor trm = fg_tensor_1d(rm, 3), trv = fg_tensor_1d(rv, 3);
  /* gamma has 4 entries for 3 channels. */
  cr_assert_eq(fg_bn_forward_train(&tx, &tg4, &tb, &ty, &tm, &ti, NULL, NULL, 0.1f, 1e-5f),
               FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "gamma") != NULL, "message: %s", fg_last_error());
  /* y of another shape. */
  fg_tensor ty2 = fg_tensor_4d(y, 2, 3, 4, 1);
  cr_assert_eq(fg_bn_forward_train(&tx, &tg, &tb, &ty2, &tm, &ti, NULL, NULL, 0.1f, 1e-5f),
               FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "y has shape [2, 3, 4, 1]") != NULL, "message: %s",
            fg_last_error());
  /* Rank 3. */
  int64_t s3[3] = {2, 3, 4};
  fg_tensor t3 = fg_tensor_view(x, FG_F32, fg_host_device(), 3, s3);
  cr_assert_eq(fg_bn_forward_train(&t3, &tg, &tb, &t3, &tm, &ti, NULL, NULL, 0.1f, 1e-5f),
               FG_ERR_SHAPE);
  /* Only one running statistic. */
  cr_assert_eq(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, NULL, 0.1f, 1e-5f),
               FG_ERR_INVALID);
  /* Momentum out of [0, 1]. */
  cr_assert_eq(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, &trv, 1.5f, 1e-5f),
               FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "momentum is 1.5") != NULL, "message: %s", fg_last_error());
  /* Backward: dgamma of the wrong size. */
  fg_tensor tdg = fg_tensor_1d(m, 2);
  cr_assert_eq(fg_bn_backward(&ty, &tx, &tg, &tm, &ti, NULL, &tdg, NULL, 0), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "dgamma") != NULL, "message: %s", fg_last_error());
}
