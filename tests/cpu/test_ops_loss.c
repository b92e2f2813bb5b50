/* Losses on the CPU backend (softmax cross-entropy, KL distillation, MSE): values and
 * gradients against the double-precision reference, including logits of magnitude 1e4;
 * accumulate; hand-computed examples; the reference gradients against finite differences;
 * bit-identical results for 1 and 2 threads; label and value errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"

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

static int32_t *new_labels(int64_t n, int64_t k, uint64_t seed) {
  int32_t *y = malloc((size_t)n * sizeof *y);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 1, 0);
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)fg_rng_below(&r, (uint64_t)k);
  return y;
}

static fg_tensor labels_tensor(int32_t *y, int64_t n) {
  return fg_tensor_view(y, FG_I32, fg_host_device(), 1, &n);
}

static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
  char msg[512];
  cr_assert(fgt_allclose(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

static void expect_scalar(const char *what, double got, double want, double atol, double rtol) {
  cr_assert(fabs(got - want) <= atol + rtol * fabs(want), "%s: got %.12g, want %.12g", what, got,
            want);
}

/* Central difference of f at v[j]. */
typedef double (*objective_fn)(const void *ctx);
static double central_difference(objective_fn f, const void *ctx, double *v, int64_t j, double h) {
  const double saved = v[j];
  v[j] = saved + h;
  double lp = f(ctx);
  v[j] = saved - h;
  double lm = f(ctx);
  v[j] = saved;
  return (lp - lm) / (2 * h);
}

static void check_fd_close(const char *what, int64_t j, double analytic, double numeric,
                           double tol) {
  cr_assert(fabs(analytic - numeric) <= tol + tol * fabs(numeric),
            "%s[%lld]: analytic %.12g, finite difference %.12g", what, (long long)j, analytic,
            numeric);
}

/* ----------------------------------------------------------------------------------------- */
/* Softmax cross-entropy                                                                      */

typedef struct xent_case {
  int64_t n, k;
  float range; /* logits uniform in [-range, range) */
} xent_case;

static const xent_case xent_cases[] = {
    {5, 7, 3.0f}, {33, 10, 5.0f}, {4, 3, 1e4f}, {1, 1, 1.0f}, {17, 100, 2.0f}, {6, 11, 3e4f},
};

static void check_xent(const xent_case *c, float weight, int with_grad, int accumulate,
                       uint64_t seed) {
  const int64_t nk = c->n * c->k;
  float *z = new_uniform((size_t)nk, seed, -c->range, c->range);
  /* A few exact ties, so the first-argmax rule is exercised. */
  if (c->k >= 3)
    for (int64_t r = 0; r < c->n; r += 2) z[r * c->k + 2] = z[r * c->k + 1];
  int32_t *y = new_labels(c->n, c->k, seed + 1);
  float *dz = new_uniform((size_t)nk, seed + 2, -1.0f, 1.0f);
  double *dz0 = to_double(dz, (size_t)nk), *zd = to_double(z, (size_t)nk);
  double *dref = malloc((size_t)nk * sizeof *dref);
  int64_t correct_ref = -1, correct = -1;
  double loss_ref = fg_ref_softmax_xent(zd, y, NULL, c->n, c->k, weight, dref, &correct_ref);
  if (accumulate)
    for (int64_t i = 0; i < nk; i++) dref[i] += dz0[i];

  fg_tensor tz = fg_tensor_2d(z, c->n, c->k), ty = labels_tensor(y, c->n);
  fg_tensor tdz = fg_tensor_2d(dz, c->n, c->k);
  double loss = NAN;
  FGT_OK(fg_softmax_xent(&tz, &ty, NULL, weight, with_grad ? &tdz : NULL, accumulate, &loss, &correct));
  expect_scalar("xent loss", loss, loss_ref, 1e-12, 1e-10);
  cr_assert_eq(correct, correct_ref, "xent correct: got %lld, want %lld", (long long)correct,
               (long long)correct_ref);
  if (with_grad)
    expect_close("xent dlogits", dz, dref, (size_t)nk, 1e-7, 1e-5);
  else
    expect_close("xent dlogits untouched", dz, dz0, (size_t)nk, 0, 0);

  /* correct may be NULL. */
  double loss2 = NAN;
  FGT_OK(fg_softmax_xent(&tz, &ty, NULL, weight, NULL, 0, &loss2, NULL));
  cr_assert(loss2 == loss, "loss without gradient differs: %.17g vs %.17g", loss2, loss);
  free(z), free(y), free(dz), free(dz0), free(zd), free(dref);
}

Test(xent, matches_reference) {
  fgt_setup_cpu(1);
  for (size_t i = 0; i < sizeof xent_cases / sizeof xent_cases[0]; i++) {
    uint64_t seed = 10 * (uint64_t)i;
    check_xent(&xent_cases[i], 1.0f, 1, 0, seed);
    check_xent(&xent_cases[i], 0.7f, 1, 1, seed + 3);
    check_xent(&xent_cases[i], 2.5f, 0, 0, seed + 6);
  }
}

/* logits row 0 = [1, 2, 3], label 2; row 1 = [0, 0, 0], label 1.
 * Row 0: logsumexp = 3 + ln(1 + e^-1 + e^-2) = 3 + ln(1.5032147244) = 3.4076059644, so its loss
 *   is 0.4076059644; softmax = [e^-2, e^-1, 1] / 1.5032147244 = [0.0900305732, 0.2447284711,
 *   0.6652409558].
 * Row 1: loss ln 3 = 1.0986122887, softmax 1/3 each; the first argmax (class 0) is not the
 *   label, while row 0's argmax 2 is: correct = 1.
 * loss = (0.4076059644 + 1.0986122887) / 2 = 0.7531091266.
 * dlogits = (softmax - onehot) / 2: row 0 [0.0450152866, 0.1223642355, -0.1673795221],
 *   row 1 [1/6, -1/3, 1/6]. */
Test(xent, hand_computed_2x3) {
  fgt_setup_cpu(1);
  float z[6] = {1, 2, 3, 0, 0, 0}, dz[6];
  int32_t y[2] = {2, 1};
  fg_tensor tz = fg_tensor_2d(z, 2, 3), ty = labels_tensor(y, 2), tdz = fg_tensor_2d(dz, 2, 3);
  double loss;
  int64_t correct;
  FGT_OK(fg_softmax_xent(&tz, &ty, NULL, 1.0f, &tdz, 0, &loss, &correct));
  expect_scalar("loss", loss, 0.7531091266, 1e-9, 0);
  cr_assert_eq(correct, 1);
  const double want[6] = {0.0450152866, 0.1223642355, -0.1673795221, 1.0 / 6, -1.0 / 3, 1.0 / 6};
  expect_close("dlogits", dz, want, 6, 1e-7, 0);
  /* weight 2 doubles both. */
  FGT_OK(fg_softmax_xent(&tz, &ty, NULL, 2.0f, &tdz, 0, &loss, NULL));
  expect_scalar("loss x2", loss, 2 * 0.7531091266, 2e-9, 0);
  cr_assert_float_eq(dz[2], (float)(-2 * 0.1673795221), 1e-7);
}

typedef struct xent_fd_ctx {
  const double *z;
  const int32_t *y;
  int64_t n, k;
} xent_fd_ctx;

static double xent_objective(const void *p) {
  const xent_fd_ctx *c = p;
  return fg_ref_softmax_xent(c->z, c->y, NULL, c->n, c->k, 0.8, NULL, NULL);
}

Test(xent, reference_gradient_matches_finite_differences) {
  const int64_t n = 4, k = 6;
  double z[24], g[24];
  fgt_fill_uniform_double(z, 24, 5, -3, 3);
  int32_t *y = new_labels(n, k, 6);
  xent_fd_ctx c = {z, y, n, k};
  fg_ref_softmax_xent(z, y, NULL, n, k, 0.8, g, NULL);
  for (int64_t j = 0; j < n * k; j++)
    check_fd_close("ref xent dlogits", j, g[j], central_difference(xent_objective, &c, z, j, 1e-5),
                   1e-7);
  free(y);
}

Test(xent, label_out_of_range_names_row_and_value) {
  fgt_setup_cpu(1);
  float z[6] = {0};
  int32_t y[2] = {1, 3};
  fg_tensor tz = fg_tensor_2d(z, 2, 3), ty = labels_tensor(y, 2);
  double loss;
  cr_assert_eq(fg_softmax_xent(&tz, &ty, NULL, 1.0f, NULL, 0, &loss, NULL), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "row 1 is 3") != NULL, "message: %s", fg_last_error());
  y[1] = -1;
  cr_assert_eq(fg_softmax_xent(&tz, &ty, NULL, 1.0f, NULL, 0, &loss, NULL), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "row 1 is -1") != NULL, "message: %s", fg_last_error());
}

Test(xent, shape_and_dtype_errors) {
  fgt_setup_cpu(1);
  float z[6] = {0}, fy[2] = {0}, dz[6];
  int32_t y[3] = {0, 0, 0};
  fg_tensor tz = fg_tensor_2d(z, 2, 3), ty3 = labels_tensor(y, 3), ty = labels_tensor(y, 2);
  double loss;
  /* labels [3] for 2 rows. */
  cr_assert_eq(fg_softmax_xent(&tz, &ty3, NULL, 1.0f, NULL, 0, &loss, NULL), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "labels") != NULL, "message: %s", fg_last_error());
  /* f32 labels. */
  fg_tensor tfy = fg_tensor_1d(fy, 2);
  cr_assert_eq(fg_softmax_xent(&tz, &tfy, NULL, 1.0f, NULL, 0, &loss, NULL), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "dtype f32, expected i32") != NULL, "message: %s",
            fg_last_error());
  /* dlogits transposed. */
  fg_tensor tdz = fg_tensor_2d(dz, 3, 2);
  cr_assert_eq(fg_softmax_xent(&tz, &ty, NULL, 1.0f, &tdz, 0, &loss, NULL), FG_ERR_SHAPE);
  /* Missing loss pointer. */
  cr_assert_eq(fg_softmax_xent(&tz, &ty, NULL, 1.0f, NULL, 0, NULL, NULL), FG_ERR_INVALID);
}

/* ----------------------------------------------------------------------------------------- */
/* KL distillation                                                                            */

typedef struct kl_case {
  int64_t n, k;
  float range;
} kl_case;

static const kl_case kl_cases[] = {{3, 5, 3.0f}, {8, 10, 6.0f}, {5, 7, 1e4f}, {2, 33, 2.0f}};

static void check_kl(const kl_case *c, const fg_kl_desc *d, int want_teacher, int accumulate,
                     uint64_t seed) {
  const int64_t nk = c->n * c->k;
  float *s = new_uniform((size_t)nk, seed, -c->range, c->range);
  float *t = new_uniform((size_t)nk, seed + 1, -c->range, c->range);
  float *ds = new_uniform((size_t)nk, seed + 2, -1, 1),
        *dt = new_uniform((size_t)nk, seed + 3, -1, 1);
  double *ds0 = to_double(ds, (size_t)nk), *dt0 = to_double(dt, (size_t)nk);
  double *sd = to_double(s, (size_t)nk), *td = to_double(t, (size_t)nk);
  double *dsr = malloc((size_t)nk * sizeof *dsr), *dtr = malloc((size_t)nk * sizeof *dtr);
  double loss_ref = fg_ref_kl_div(sd, td, c->n, c->k, d->temperature, d->teacher_eps, d->reduction,
                                  d->weight, dsr, dtr);
  cr_assert(isfinite(loss_ref), "reference loss is %g", loss_ref);
  if (accumulate)
    for (int64_t i = 0; i < nk; i++) dsr[i] += ds0[i], dtr[i] += dt0[i];
  fg_tensor ts = fg_tensor_2d(s, c->n, c->k), tt = fg_tensor_2d(t, c->n, c->k);
  fg_tensor tds = fg_tensor_2d(ds, c->n, c->k), tdt = fg_tensor_2d(dt, c->n, c->k);
  double loss = NAN;
  FGT_OK(fg_kl_div(d, &ts, &tt, &tds, want_teacher ? &tdt : NULL, accumulate, &loss));
  char what[128];
  snprintf(what, sizeof what, "kl n=%lld k=%lld range=%g T=%g eps=%g red=%d", (long long)c->n,
           (long long)c->k, (double)c->range, (double)d->temperature, (double)d->teacher_eps,
           (int)d->reduction);
  expect_scalar(what, loss, loss_ref, 1e-10, 1e-9);
  /* Gradient entries are O(weight T / divisor); they carry float rounding only. */
  expect_close(what, ds, dsr, (size_t)nk, 1e-7, 1e-5);
  if (want_teacher)
    expect_close(what, dt, dtr, (size_t)nk, 1e-7, 1e-5);
  else
    expect_close("kl dteacher untouched", dt, dt0, (size_t)nk, 0, 0);
  free(s), free(t), free(ds), free(dt), free(ds0), free(dt0), free(sd), free(td), free(dsr),
      free(dtr);
}

Test(kl, matches_reference) {
  fgt_setup_cpu(1);
  /* eps 0.05 makes the eps terms of the gradients (Q = 1 + K eps) visible in float. */
  const float temps[2] = {1.0f, 3.0f}, epss[3] = {0.0f, 1e-7f, 0.05f};
  const fg_kl_reduction reds[2] = {FG_KL_BATCHMEAN, FG_KL_ELEMENTWISE_MEAN};
  uint64_t seed = 1;
  for (size_t i = 0; i < sizeof kl_cases / sizeof kl_cases[0]; i++)
    for (int a = 0; a < 2; a++)
      for (int e = 0; e < 3; e++)
        for (int r = 0; r < 2; r++) {
          fg_kl_desc d = {temps[a], epss[e], reds[r], 0.6f};
          check_kl(&kl_cases[i], &d, 1, 0, seed += 5);
          check_kl(&kl_cases[i], &d, 1, 1, seed += 5);
          check_kl(&kl_cases[i], &d, 0, 0, seed += 5);
        }
}

/* N = 1, K = 2, T = 1, eps = 0: student [0, 0] -> p = [1/2, 1/2]; teacher [ln 3, 0] -> q =
 * [3/4, 1/4]. KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.3040988310 - 0.1732867951 = 0.1308120359.
 * dstudent = (p - q) / T = [-1/4, 1/4].
 * dteacher_j = q_j (r_j - sum_i q_i r_i) / T with r = ln(q/p) = [ln 1.5, ln 0.5]:
 *   [0.75 (0.4054651081 - 0.1308120359), 0.25 (-0.6931471806 - 0.1308120359)]
 *   = [0.2059898041, -0.2059898041].
 * Elementwise mean with weight 3: 3 * 0.1308120359 / 2 = 0.1962180539, gradients x 3/2. */
Test(kl, hand_computed_tiny) {
  fgt_setup_cpu(1);
  float s[2] = {0.0f, 0.0f}, t[2] = {(float)log(3.0), 0.0f}, ds[2], dt[2];
  fg_tensor ts = fg_tensor_2d(s, 1, 2), tt = fg_tensor_2d(t, 1, 2);
  fg_tensor tds = fg_tensor_2d(ds, 1, 2), tdt = fg_tensor_2d(dt, 1, 2);
  fg_kl_desc d = {1.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  double loss;
  FGT_OK(fg_kl_div(&d, &ts, &tt, &tds, &tdt, 0, &loss));
  /* t[0] is ln 3 rounded to float: q deviates by ~1e-8. */
  expect_scalar("kl", loss, 0.1308120359, 1e-7, 0);
  const double want_ds[2] = {-0.25, 0.25}, want_dt[2] = {0.2059898041, -0.2059898041};
  expect_close("kl dstudent", ds, want_ds, 2, 1e-7, 0);
  expect_close("kl dteacher", dt, want_dt, 2, 1e-7, 0);
  fg_kl_desc d2 = {1.0f, 0.0f, FG_KL_ELEMENTWISE_MEAN, 3.0f};
  FGT_OK(fg_kl_div(&d2, &ts, &tt, &tds, &tdt, 0, &loss));
  expect_scalar("kl elementwise", loss, 0.1962180539, 1e-7, 0);
  const double want_ds2[2] = {-0.375, 0.375},
               want_dt2[2] = {1.5 * 0.2059898041, -1.5 * 0.2059898041};
  expect_close("kl dstudent elementwise", ds, want_ds2, 2, 1e-7, 0);
  expect_close("kl dteacher elementwise", dt, want_dt2, 2, 1e-7, 0);
}

/* Temperature by hand: student [0, 0], teacher [2 ln 3, 0], T = 2 gives the same p and q as
 * above, so loss = T^2 * 0.1308120359 = 0.5232481436, dstudent = T^2 (p - q) / T = [-0.5, 0.5]. */
Test(kl, hand_computed_temperature) {
  fgt_setup_cpu(1);
  float s[2] = {0.0f, 0.0f}, t[2] = {(float)(2 * log(3.0)), 0.0f}, ds[2];
  fg_tensor ts = fg_tensor_2d(s, 1, 2), tt = fg_tensor_2d(t, 1, 2), tds = fg_tensor_2d(ds, 1, 2);
  fg_kl_desc d = {2.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  double loss;
  FGT_OK(fg_kl_div(&d, &ts, &tt, &tds, NULL, 0, &loss));
  expect_scalar("kl T=2", loss, 0.5232481436, 4e-7, 0);
  const double want[2] = {-0.5, 0.5};
  expect_close("kl T=2 dstudent", ds, want, 2, 1e-7, 0);
}

typedef struct kl_fd_ctx {
  const double *s, *t;
  int64_t n, k;
  double temperature, eps;
  fg_kl_reduction reduction;
} kl_fd_ctx;

static double kl_objective(const void *p) {
  const kl_fd_ctx *c = p;
  return fg_ref_kl_div(c->s, c->t, c->n, c->k, c->temperature, c->eps, c->reduction, 0.9, NULL,
                       NULL);
}

Test(kl, reference_gradients_match_finite_differences) {
  const int64_t n = 3, k = 5;
  double s[15], t[15], ds[15], dt[15];
  fgt_fill_uniform_double(s, 15, 21, -3, 3);
  fgt_fill_uniform_double(t, 15, 22, -3, 3);
  const double temps[2] = {1.0, 3.0}, epss[2] = {0.0, 1e-7};
  const fg_kl_reduction reds[2] = {FG_KL_BATCHMEAN, FG_KL_ELEMENTWISE_MEAN};
  for (int a = 0; a < 2; a++)
    for (int e = 0; e < 2; e++)
      for (int r = 0; r < 2; r++) {
        kl_fd_ctx c = {s, t, n, k, temps[a], epss[e], reds[r]};
        fg_ref_kl_div(s, t, n, k, temps[a], epss[e], reds[r], 0.9, ds, dt);
        for (int64_t j = 0; j < n * k; j++) {
          check_fd_close("ref kl dstudent", j, ds[j],
                         central_difference(kl_objective, &c, s, j, 1e-5), 1e-7);
          check_fd_close("ref kl dteacher", j, dt[j],
                         central_difference(kl_objective, &c, t, j, 1e-5), 1e-7);
        }
      }
}

Test(kl, value_errors) {
  fgt_setup_cpu(1);
  float s[4] = {0}, t[6] = {0};
  fg_tensor ts = fg_tensor_2d(s, 2, 2), tt = fg_tensor_2d(t, 2, 2), tt3 = fg_tensor_2d(t, 2, 3);
  double loss;
  fg_kl_desc d = {0.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  cr_assert_eq(fg_kl_div(&d, &ts, &tt, NULL, NULL, 0, &loss), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "temperature is 0") != NULL, "message: %s", fg_last_error());
  d.temperature = 1.0f;
  d.teacher_eps = -1e-7f;
  cr_assert_eq(fg_kl_div(&d, &ts, &tt, NULL, NULL, 0, &loss), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "teacher_eps") != NULL, "message: %s", fg_last_error());
  d.teacher_eps = 0.0f;
  d.reduction = (fg_kl_reduction)7;
  cr_assert_eq(fg_kl_div(&d, &ts, &tt, NULL, NULL, 0, &loss), FG_ERR_INVALID);
  d.reduction = FG_KL_BATCHMEAN;
  cr_assert_eq(fg_kl_div(&d, &ts, &tt3, NULL, NULL, 0, &loss), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "teacher has shape [2, 3]") != NULL, "message: %s",
            fg_last_error());
}

/* ----------------------------------------------------------------------------------------- */
/* MSE                                                                                        */

Test(mse, matches_reference_and_accumulates) {
  fgt_setup_cpu(1);
  const int64_t sizes[3] = {1, 7, 1000};
  for (int i = 0; i < 3; i++) {
    const int64_t n = sizes[i];
    float *y = new_uniform((size_t)n, 30 + (uint64_t)i, -2, 2),
          *t = new_uniform((size_t)n, 40 + (uint64_t)i, -2, 2);
    float *dy = new_uniform((size_t)n, 50 + (uint64_t)i, -1, 1);
    double *dy0 = to_double(dy, (size_t)n), *yd = to_double(y, (size_t)n),
           *td = to_double(t, (size_t)n);
    double *dr = malloc((size_t)n * sizeof *dr);
    double want = fg_ref_mse(yd, td, n, 1.3, dr);
    fg_tensor ty = fg_tensor_1d(y, n), tt = fg_tensor_1d(t, n), tdy = fg_tensor_1d(dy, n);
    double loss;
    FGT_OK(fg_mse(&ty, &tt, 1.3f, &tdy, 0, &loss));
    expect_scalar("mse", loss, want, 1e-12, 1e-7); /* 1.3f vs 1.3 */
    expect_close("mse dy", dy, dr, (size_t)n, 1e-8, 1e-6);
    for (int64_t j = 0; j < n; j++) dr[j] *= 2;
    FGT_OK(fg_mse(&ty, &tt, 1.3f, &tdy, 1, &loss));
    expect_close("mse dy accumulated", dy, dr, (size_t)n, 1e-8, 1e-6);
    FGT_OK(fg_mse(&ty, &tt, 1.3f, NULL, 0, &loss));
    expect_scalar("mse without gradient", loss, want, 1e-12, 1e-7);
    free(y), free(t), free(dy), free(dy0), free(yd), free(td), free(dr);
  }
}

/* y = [1, 2], target = [0, 4]: mean((1)^2, (-2)^2) = 2.5; dy = 2 (y - t) / 2 = [1, -2]. */
Test(mse, hand_computed) {
  fgt_setup_cpu(1);
  float y[2] = {1, 2}, t[2] = {0, 4}, dy[2];
  fg_tensor ty = fg_tensor_1d(y, 2), tt = fg_tensor_1d(t, 2), tdy = fg_tensor_1d(dy, 2);
  double loss;
  FGT_OK(fg_mse(&ty, &tt, 1.0f, &tdy, 0, &loss));
  cr_assert_eq(loss, 2.5);
  cr_assert_eq(dy[0], 1.0f);
  cr_assert_eq(dy[1], -2.0f);
}

typedef struct mse_fd_ctx {
  const double *y, *t;
  int64_t n;
} mse_fd_ctx;

static double mse_objective(const void *p) {
  const mse_fd_ctx *c = p;
  return fg_ref_mse(c->y, c->t, c->n, 0.7, NULL);
}

Test(mse, reference_gradient_matches_finite_differences) {
  double y[9], t[9], g[9];
  fgt_fill_uniform_double(y, 9, 1, -2, 2);
  fgt_fill_uniform_double(t, 9, 2, -2, 2);
  mse_fd_ctx c = {y, t, 9};
  fg_ref_mse(y, t, 9, 0.7, g);
  for (int64_t j = 0; j < 9; j++)
    check_fd_close("ref mse dy", j, g[j], central_difference(mse_objective, &c, y, j, 1e-5), 1e-8);
}

/* ----------------------------------------------------------------------------------------- */
/* Threads                                                                                    */

typedef struct loss_outputs {
  double xent, kl, mse;
  int64_t correct;
} loss_outputs;

/* Big enough for several reduction blocks (8192 values per block of rows; 16K per MSE block). */
enum { TH_N = 3000, TH_K = 10, TH_NK = TH_N * TH_K };

static void run_losses(float *grads, loss_outputs *o) {
  float *z = new_uniform(TH_NK, 91, -4, 4), *t = new_uniform(TH_NK, 92, -4, 4);
  int32_t *y = new_labels(TH_N, TH_K, 93);
  fg_tensor tz = fg_tensor_2d(z, TH_N, TH_K), tt = fg_tensor_2d(t, TH_N, TH_K);
  fg_tensor ty = labels_tensor(y, TH_N);
  fg_tensor g0 = fg_tensor_2d(grads, TH_N, TH_K), g1 = fg_tensor_2d(grads + TH_NK, TH_N, TH_K);
  fg_tensor g2 = fg_tensor_2d(grads + 2 * TH_NK, TH_N, TH_K),
            g3 = fg_tensor_2d(grads + 3 * TH_NK, TH_N, TH_K);
  FGT_OK(fg_softmax_xent(&tz, &ty, NULL, 1.0f, &g0, 0, &o->xent, &o->correct));
  fg_kl_desc d = {3.0f, 1e-7f, FG_KL_ELEMENTWISE_MEAN, 0.5f};
  FGT_OK(fg_kl_div(&d, &tz, &tt, &g1, &g2, 0, &o->kl));
  FGT_OK(fg_mse(&tz, &tt, 1.0f, &g3, 0, &o->mse));
  free(z), free(t), free(y);
}

Test(losses, bit_identical_for_one_and_two_threads) {
  float *g1 = calloc(4 * TH_NK, sizeof *g1), *g2 = calloc(4 * TH_NK, sizeof *g2);
  loss_outputs o1, o2;
  fgt_setup_cpu(1);
  run_losses(g1, &o1);
  fgt_setup_cpu(2);
  run_losses(g2, &o2);
  cr_assert(memcmp(&o1.xent, &o2.xent, sizeof(double)) == 0, "xent %.17g vs %.17g", o1.xent,
            o2.xent);
  cr_assert(memcmp(&o1.kl, &o2.kl, sizeof(double)) == 0, "kl %.17g vs %.17g", o1.kl, o2.kl);
  cr_assert(memcmp(&o1.mse, &o2.mse, sizeof(double)) == 0, "mse %.17g vs %.17g", o1.mse, o2.mse);
  cr_assert_eq(o1.correct, o2.correct);
  cr_assert(memcmp(g1, g2, 4 * TH_NK * sizeof *g1) == 0,
            "loss gradients differ between 1 and 2 threads");
  free(g1), free(g2);
}

/* ----------------------------------------------------------------------------------------- */
/* Class-masked cross-entropy (HeteroFL's label split: masked_fill(mask == 0, 0)).           */

Test(xent_mask, hand_example_and_reference) {
  fgt_setup_cpu(1);
  /* logits [2, 1, 3], mask [1, 0, 1], label 0: masked logits [2, 0, 3];
   * loss = log(e^2 + e^0 + e^3) - 2; dz = softmax - onehot on kept classes, 0 on the masked one. */
  float z[3] = {2.0f, 1.0f, 3.0f}, m[3] = {1.0f, 0.0f, 1.0f}, dz[3];
  int32_t y[1] = {0};
  fg_tensor tz = fg_tensor_2d(z, 1, 3), tm = fg_tensor_1d(m, 3), tdz = fg_tensor_2d(dz, 1, 3);
  int64_t shape[1] = {1};
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, shape);
  double loss;
  int64_t correct;
  FGT_OK(fg_softmax_xent(&tz, &ty, &tm, 1.0f, &tdz, 0, &loss, &correct));
  double s = exp(2.0) + 1.0 + exp(3.0);
  cr_assert_float_eq(loss, log(s) - 2.0, 1e-6);
  cr_assert_float_eq(dz[0], exp(2.0) / s - 1.0, 1e-6);
  cr_assert_eq(dz[1], 0.0f);
  cr_assert_float_eq(dz[2], exp(3.0) / s, 1e-6);
  cr_assert_eq(correct, 0); /* the masked argmax is class 2 */
  /* Against the double reference on a larger case, with accumulation. */
  enum { N = 7, K = 11 };
  float zz[N * K], g[N * K], mask[K];
  double zd[N * K], gd[N * K], maskd[K];
  int32_t labels[N];
  fgt_fill_uniform(zz, N * K, 91, -4.0f, 4.0f);
  fgt_fill_uniform(g, N * K, 92, -1.0f, 1.0f);
  for (int j = 0; j < K; j++) mask[j] = maskd[j] = (j % 3 != 1);
  for (int i = 0; i < N; i++) labels[i] = (i * 3) % K == 1 ? 0 : (i * 3) % K; /* kept classes */
  for (int i = 0; i < N * K; i++) zd[i] = zz[i];
  double lref = fg_ref_softmax_xent(zd, labels, maskd, N, K, 0.5, gd, NULL);
  for (int i = 0; i < N * K; i++) gd[i] += g[i];
  fg_tensor tzz = fg_tensor_2d(zz, N, K), tg = fg_tensor_2d(g, N, K), tmask = fg_tensor_1d(mask, K);
  int64_t nshape[1] = {N};
  fg_tensor tl = fg_tensor_view(labels, FG_I32, fg_host_device(), 1, nshape);
  FGT_OK(fg_softmax_xent(&tzz, &tl, &tmask, 0.5f, &tg, 1, &loss, NULL));
  cr_assert_float_eq(loss, lref, 1e-6);
  char msg[256];
  cr_assert(fgt_allclose(g, gd, N * K, 1e-6, 1e-5, msg, sizeof msg), "%s", msg);
  /* The reference's gradient against central differences of the reference loss. */
  for (int i = 0; i < N * K; i++) {
    double save = zd[i], h = 1e-6;
    zd[i] = save + h;
    double lp = fg_ref_softmax_xent(zd, labels, maskd, N, K, 0.5, NULL, NULL);
    zd[i] = save - h;
    double lm = fg_ref_softmax_xent(zd, labels, maskd, N, K, 0.5, NULL, NULL);
    zd[i] = save;
    double an[N * K];
    fg_ref_softmax_xent(zd, labels, maskd, N, K, 0.5, an, NULL);
    cr_assert(fabs((lp - lm) / (2 * h) - an[i]) < 1e-7, "element %d", i);
  }
  float bad_mask[K - 1];
  fg_tensor tbad = fg_tensor_1d(bad_mask, K - 1);
  cr_assert_eq(fg_softmax_xent(&tzz, &tl, &tbad, 1.0f, NULL, 0, &loss, NULL), FG_ERR_SHAPE);
}
