/* Optimizer steps on the CPU backend: hand-computed SGD (momentum, weight decay, dampening,
 * Nesterov) and Adam steps, several steps against the double-precision reference, and value
 * errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"

static double *to_double(const float *x, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static void expect_close(const char *what, const float *got, const double *want, size_t n,
                         double atol, double rtol) {
  char msg[512];
  cr_assert(fgt_allclose(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

/* ----------------------------------------------------------------------------------------- */
/* SGD                                                                                        */

/* p = 1, g = 0.5, lr 0.1, momentum 0.9, weight decay 0.01, buffer 0:
 * step 1: d = 0.5 + 0.01*1 = 0.51; buf = 0.9*0 + 0.51 = 0.51; p = 1 - 0.1*0.51 = 0.949.
 * step 2 (g = 0.5): d = 0.5 + 0.01*0.949 = 0.50949; buf = 0.9*0.51 + 0.50949 = 0.96849;
 *   p = 0.949 - 0.096849 = 0.852151. */
Test(sgd, momentum_and_weight_decay_by_hand) {
  fgt_setup_cpu(1);
  float p = 1.0f, g = 0.5f, buf = 0.0f;
  fg_tensor tp = fg_tensor_1d(&p, 1), tg = fg_tensor_1d(&g, 1), tb = fg_tensor_1d(&buf, 1);
  fg_sgd_hparams h = {0.1f, 0.9f, 0.01f, 0.0f, 0};
  FGT_OK(fg_sgd_step(&h, &tp, &tg, &tb));
  cr_assert_float_eq(buf, 0.51f, 1e-7);
  cr_assert_float_eq(p, 0.949f, 1e-7);
  FGT_OK(fg_sgd_step(&h, &tp, &tg, &tb));
  cr_assert_float_eq(buf, 0.96849f, 1e-6);
  cr_assert_float_eq(p, 0.852151f, 1e-6);
}

/* Same first step with Nesterov: update = d + momentum*buf = 0.51 + 0.9*0.51 = 0.969,
 * p = 1 - 0.0969 = 0.9031. With dampening 0.5 instead: buf = 0.5*0.51 = 0.255,
 * p = 1 - 0.0255 = 0.9745. Without momentum (no buffer): p = 1 - 0.1*0.51 = 0.949. */
Test(sgd, nesterov_dampening_and_plain_by_hand) {
  fgt_setup_cpu(1);
  float p = 1.0f, g = 0.5f, buf = 0.0f;
  fg_tensor tp = fg_tensor_1d(&p, 1), tg = fg_tensor_1d(&g, 1), tb = fg_tensor_1d(&buf, 1);
  fg_sgd_hparams nesterov = {0.1f, 0.9f, 0.01f, 0.0f, 1};
  FGT_OK(fg_sgd_step(&nesterov, &tp, &tg, &tb));
  cr_assert_float_eq(p, 0.9031f, 1e-7);
  p = 1.0f, buf = 0.0f;
  fg_sgd_hparams damp = {0.1f, 0.9f, 0.01f, 0.5f, 0};
  FGT_OK(fg_sgd_step(&damp, &tp, &tg, &tb));
  cr_assert_float_eq(buf, 0.255f, 1e-7);
  cr_assert_float_eq(p, 0.9745f, 1e-7);
  p = 1.0f;
  fg_sgd_hparams plain = {0.1f, 0.0f, 0.01f, 0.0f, 0};
  FGT_OK(fg_sgd_step(&plain, &tp, &tg, NULL));
  cr_assert_float_eq(p, 0.949f, 1e-7);
}

static void check_sgd_steps(const fg_sgd_hparams *h, int64_t n, uint64_t seed) {
  float *p = malloc((size_t)n * sizeof *p), *g = malloc((size_t)n * sizeof *g);
  float *buf = calloc((size_t)n, sizeof *buf);
  fgt_fill_uniform(p, (size_t)n, seed, -1, 1);
  double *pd = to_double(p, (size_t)n), *bd = calloc((size_t)n, sizeof *bd);
  fg_tensor tp = fg_tensor_1d(p, n), tg = fg_tensor_1d(g, n), tb = fg_tensor_1d(buf, n);
  for (int step = 0; step < 4; step++) {
    fgt_fill_uniform(g, (size_t)n, seed + 10 + (uint64_t)step, -1, 1);
    double *gd = to_double(g, (size_t)n);
    FGT_OK(fg_sgd_step(h, &tp, &tg, h->momentum != 0.0f ? &tb : NULL));
    fg_ref_sgd_step(h, n, pd, gd, bd);
    free(gd);
  }
  expect_close("sgd param", p, pd, (size_t)n, 1e-6, 1e-6);
  if (h->momentum != 0.0f) expect_close("sgd buffer", buf, bd, (size_t)n, 1e-6, 1e-6);
  free(p), free(g), free(buf), free(pd), free(bd);
}

Test(sgd, matches_reference_over_steps) {
  fgt_setup_cpu(1);
  const fg_sgd_hparams hs[] = {
      {0.1f, 0.9f, 5e-4f, 0.0f, 0}, {0.05f, 0.9f, 1e-3f, 0.0f, 1}, {0.1f, 0.5f, 0.0f, 0.3f, 0},
      {0.1f, 0.0f, 1e-3f, 0.0f, 0}, {0.0f, 0.9f, 0.1f, 0.0f, 0},
  };
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) check_sgd_steps(&hs[i], 1001, 7 + i);
}

/* ----------------------------------------------------------------------------------------- */
/* Adam                                                                                       */

/* p = 1, lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8, no weight decay; gradients 1, -1, 2.
 * step 1: m = 0.1, v = 0.001, bc1 = 0.1, bc2 = 0.001 -> m/bc1 = 1, v/bc2 = 1;
 *   p = 1 - 0.1 * 1 / (1 + 1e-8) = 0.900000001.
 * step 2: m = 0.09 - 0.1 = -0.01, v = 0.000999 + 0.001 = 0.001999, bc1 = 0.19,
 *   bc2 = 1 - 0.998001 = 0.001999 -> m/bc1 = -0.0526315789, v/bc2 = 1;
 *   p = 0.900000001 + 0.00526315789 = 0.905263159.
 * step 3: m = -0.009 + 0.2 = 0.191, v = 0.001997001 + 0.004 = 0.005997001, bc1 = 0.271,
 *   bc2 = 0.002997001 -> m/bc1 = 0.704797048, v/bc2 = 2.001000667, sqrt = 1.414567307;
 *   p = 0.905263159 - 0.1 * 0.704797048 / 1.414567307 = 0.905263159 - 0.049824214
 *     = 0.855438945.
 * The hyper-parameters are floats: 0.999f = 0.99900001287, so 1 - beta2 = 0.00099998713 and v
 * sits 1.3e-5 (relative) below the decimal values above; the bias correction uses the same
 * beta2, so v/bc2 and p are unaffected. */
Test(adam, three_steps_by_hand) {
  fgt_setup_cpu(1);
  float p = 1.0f, g, m = 0.0f, v = 0.0f;
  fg_tensor tp = fg_tensor_1d(&p, 1), tg = fg_tensor_1d(&g, 1), tm = fg_tensor_1d(&m, 1);
  fg_tensor tv = fg_tensor_1d(&v, 1);
  fg_adam_hparams h = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  const float grads[3] = {1.0f, -1.0f, 2.0f};
  const double want_p[3] = {0.900000001, 0.905263159, 0.855438945};
  const double want_m[3] = {0.1, -0.01, 0.191};
  const double want_v[3] = {0.001, 0.001999, 0.005997001};
  for (int s = 0; s < 3; s++) {
    g = grads[s];
    FGT_OK(fg_adam_step(&h, s + 1, &tp, &tg, &tm, &tv));
    cr_assert(fabs(p - want_p[s]) < 2e-7, "step %d: p = %.9g, want %.9g", s + 1, p, want_p[s]);
    cr_assert(fabs(m - want_m[s]) < 1e-7, "step %d: m = %.9g, want %.9g", s + 1, m, want_m[s]);
    cr_assert(fabs(v - want_v[s]) < 2e-5 * want_v[s], "step %d: v = %.9g, want %.9g", s + 1, v,
              want_v[s]);
  }
}

Test(adam, matches_reference_over_steps) {
  fgt_setup_cpu(1);
  const fg_adam_hparams hs[] = {{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f},
                                {0.01f, 0.8f, 0.99f, 1e-6f, 1e-2f}};
  for (int c = 0; c < 2; c++) {
    const int64_t n = 777;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
    float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    fgt_fill_uniform(p, n, 3 + (uint64_t)c, -1, 1);
    double *pd = to_double(p, n), *md = calloc(n, sizeof *md), *vd = calloc(n, sizeof *vd);
    fg_tensor tp = fg_tensor_1d(p, n), tg = fg_tensor_1d(g, n), tm = fg_tensor_1d(m, n);
    fg_tensor tv = fg_tensor_1d(v, n);
    for (int64_t s = 1; s <= 5; s++) {
      fgt_fill_uniform(g, n, 20 + (uint64_t)s, -1, 1);
      double *gd = to_double(g, n);
      FGT_OK(fg_adam_step(&hs[c], s, &tp, &tg, &tm, &tv));
      fg_ref_adam_step(&hs[c], s, n, pd, gd, md, vd);
      free(gd);
    }
    expect_close("adam param", p, pd, n, 1e-6, 1e-6);
    expect_close("adam m", m, md, n, 1e-7, 1e-5);
    expect_close("adam v", v, vd, n, 1e-9, 1e-5);
    free(p), free(g), free(m), free(v), free(pd), free(md), free(vd);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Errors                                                                                     */

Test(optim, value_errors) {
  fgt_setup_cpu(1);
  float p[3] = {0}, g[3] = {0}, b[3] = {0}, g2[2] = {0};
  fg_tensor tp = fg_tensor_1d(p, 3), tg = fg_tensor_1d(g, 3), tb = fg_tensor_1d(b, 3);
  fg_tensor tg2 = fg_tensor_1d(g2, 2);
  fg_sgd_hparams s = {-0.1f, 0.9f, 0.0f, 0.0f, 0};
  cr_assert_eq(fg_sgd_step(&s, &tp, &tg, &tb), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "lr is -0.1") != NULL, "message: %s", fg_last_error());
  s.lr = 0.1f;
  s.momentum = 1.5f;
  cr_assert_eq(fg_sgd_step(&s, &tp, &tg, &tb), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "momentum is 1.5") != NULL, "message: %s", fg_last_error());
  s.momentum = 0.9f;
  cr_assert_eq(fg_sgd_step(&s, &tp, &tg, NULL), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "momentum_buf is missing") != NULL, "message: %s",
            fg_last_error());
  cr_assert_eq(fg_sgd_step(&s, &tp, &tg2, &tb), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "grad") != NULL, "message: %s", fg_last_error());

  fg_adam_hparams a = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  fg_tensor tm = fg_tensor_1d(b, 3), tv = fg_tensor_1d(g, 3);
  cr_assert_eq(fg_adam_step(&a, 0, &tp, &tg, &tm, &tv), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "step is 0") != NULL, "message: %s", fg_last_error());
  a.beta2 = 1.0f;
  cr_assert_eq(fg_adam_step(&a, 1, &tp, &tg, &tm, &tv), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "beta2 is 1") != NULL, "message: %s", fg_last_error());
}
