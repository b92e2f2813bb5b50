/* The arithmetic of the CUDA losses (cuda/math/loss.h), compiled on the host: each loss is
 * composed from the header's functions the way cuda/loss.cu's kernels compose them (per row: the
 * maximum, the first argmax, the shifted sum, the log-sum-exp, the loss term, the gradient), with
 * the row sums added left to right instead of by the device's tree, and compared with
 *   - the double-precision references of tests/ref/ref_math.h (the op suite's classes: losses
 *     1e-6 relative, the correct count exactly, gradients |d| <= 1e-5 + 1e-4 |ref|), and
 *   - the CPU backend's ops on the same inputs: the gradients bitwise (same formulas, same order,
 *     same double precision) and the loss to 1e-13 relative (the CPU adds its rows in blocks).
 * Cases: random logits, logits of magnitude 1e4 and 3e4, exact ties (the first argmax counts), a
 * class mask, accumulated gradients, KL with temperature, teacher epsilon and both reductions,
 * MSE; the label range check and the store rule on their own. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/loss.h"
#include "engine/backend/ops.h"
#include "ref/ref_math.h"

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static float *uniform(int64_t n, uint64_t seed, float lo, float hi) {
  float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof *x);
  cr_assert_not_null(x);
  fgt_fill_uniform(x, (size_t)n, seed, lo, hi);
  return x;
}

static double *widen(const float *x, int64_t n) {
  double *d = malloc((size_t)(n > 0 ? n : 1) * sizeof *d);
  cr_assert_not_null(d);
  for (int64_t i = 0; i < n; i++) d[i] = x[i];
  return d;
}

static float *copy_of(const float *x, int64_t n) {
  float *c = malloc((size_t)n * sizeof *c);
  cr_assert_not_null(c);
  memcpy(c, x, (size_t)n * sizeof *c);
  return c;
}

static fg_tensor labels_tensor(int32_t *y, int64_t n) {
  return fg_tensor_view(y, FG_I32, fg_host_device(), 1, &n);
}

static void assert_close(const char *what, const float *got, const double *want, int64_t n) {
  char msg[256];
  cr_assert(fgt_allclose(got, want, (size_t)n, 1e-5, 1e-4, msg, sizeof msg), "%s: %s", what, msg);
}

static void assert_bitwise(const char *what, const float *got, const float *want, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(memcmp(&got[i], &want[i], sizeof(float)) == 0, "%s: element %lld is %.9g, the CPU backend's %.9g",
              what, (long long)i, (double)got[i], (double)want[i]);
}

static void assert_rel(const char *what, double got, double want, double rtol, double atol) {
  cr_assert(fabs(got - want) <= atol + rtol * fabs(want), "%s: %.17g, expected %.17g", what, got, want);
}

/* ----------------------------------------------------------------------------------------- */
/* Softmax cross-entropy composed as softmax_xent_rows_kernel composes it                    */

static double emulate_xent(const float *logits, const int32_t *labels, const float *mask, int64_t n, int64_t k,
                           float weight, float *dlogits, int accumulate, int64_t *correct, int64_t *bad) {
  const int has_mask = mask != NULL;
  const double grad_scale = (double)weight / (double)n;
  double loss = 0.0;
  *correct = 0;
  *bad = 0;
  for (int64_t row = 0; row < n; row++) {
    const float *z = logits + row * k;
    const int32_t y = labels[row];
    double zmax = -INFINITY;
    for (int64_t j = 0; j < k; j++) {
      const double v = fg_cuda_xent_logit(z[j], has_mask, has_mask ? mask[j] : 1.0f);
      if (v > zmax) zmax = v;
    }
    int64_t arg = k;
    double sum = 0.0;
    for (int64_t j = 0; j < k; j++) {
      const float v = fg_cuda_xent_logit(z[j], has_mask, has_mask ? mask[j] : 1.0f);
      if (arg == k && (double)v == zmax) arg = j;
      sum += fg_cuda_exp_shifted(v, zmax, 1.0);
    }
    const double lse = fg_cuda_xent_lse(zmax, sum);
    if (!fg_cuda_label_valid(y, k)) {
      (*bad)++;
      continue;
    }
    loss += fg_cuda_xent_row_loss(lse, fg_cuda_xent_logit(z[y], has_mask, has_mask ? mask[y] : 1.0f));
    *correct += arg == y;
    if (!dlogits) continue;
    for (int64_t j = 0; j < k; j++) {
      const float mj = has_mask ? mask[j] : 1.0f;
      const double g = fg_cuda_xent_grad(fg_cuda_xent_logit(z[j], has_mask, mj), lse, j == y,
                                         fg_cuda_xent_kept(has_mask, mj), grad_scale);
      dlogits[row * k + j] = fg_cuda_loss_store(dlogits[row * k + j], g, accumulate);
    }
  }
  return (double)weight * loss / (double)n;
}

typedef struct xent_case {
  int64_t n, k;
  float range;
  int masked, ties, accumulate;
  float weight;
} xent_case;

static void check_xent(const xent_case *c, uint64_t seed) {
  const int64_t n = c->n, k = c->k, nk = n * k;
  float *z = uniform(nk, seed, -c->range, c->range);
  if (c->ties && k >= 3)
    for (int64_t i = 0; i < n; i += 2) z[i * k + 2] = z[i * k + 1] = z[i * k] + 0.0f;
  int32_t *y = malloc((size_t)n * sizeof *y);
  float *mask = c->masked ? malloc((size_t)k * sizeof *mask) : NULL;
  for (int64_t j = 0; c->masked && j < k; j++) mask[j] = j % 3 != 1;
  for (int64_t i = 0; i < n; i++) {
    y[i] = (int32_t)((i * 7 + 3) % k);
    if (c->masked && y[i] % 3 == 1) y[i] = 0;
  }
  if (c->ties && k >= 3) y[0] = 2; /* tied with classes 0 and 1: the first argmax (0) is not it */
  float *dz0 = uniform(nk, seed + 1, -1.0f, 1.0f);
  float *got = copy_of(dz0, nk), *cpu = copy_of(dz0, nk);
  int64_t correct = -1, bad = -1, cpu_correct = -1;
  const double loss = emulate_xent(z, y, mask, n, k, c->weight, got, c->accumulate, &correct, &bad);
  cr_assert_eq(bad, 0);

  /* The double reference. */
  double *zd = widen(z, nk), *md = mask ? widen(mask, k) : NULL, *want = calloc((size_t)nk, sizeof *want);
  int64_t ref_correct = -1;
  const double ref = fg_ref_softmax_xent(zd, y, md, n, k, c->weight, want, &ref_correct);
  for (int64_t i = 0; c->accumulate && i < nk; i++) want[i] += dz0[i];
  assert_rel("softmax_xent loss against the reference", loss, ref, 1e-6, 1e-12);
  cr_assert_eq(correct, ref_correct, "correct %lld, the reference %lld", (long long)correct, (long long)ref_correct);
  assert_close("softmax_xent dlogits against the reference", got, want, nk);

  /* The CPU backend. */
  fgt_setup_cpu(1);
  fg_tensor tz = fg_tensor_2d(z, n, k), ty = labels_tensor(y, n), tg = fg_tensor_2d(cpu, n, k);
  fg_tensor tm = mask ? fg_tensor_1d(mask, k) : tz;
  double cpu_loss = 0.0;
  FGT_OK(fg_softmax_xent(&tz, &ty, mask ? &tm : NULL, c->weight, &tg, c->accumulate, &cpu_loss, &cpu_correct));
  assert_rel("softmax_xent loss against the CPU backend", loss, cpu_loss, 1e-13, 0.0);
  cr_assert_eq(correct, cpu_correct);
  assert_bitwise("softmax_xent dlogits against the CPU backend", got, cpu, nk);
  free(z), free(y), free(mask), free(dz0), free(got), free(cpu), free(zd), free(md), free(want);
}

Test(cuda_math_loss, softmax_xent_matches_references) {
  const xent_case cases[] = {
      {7, 11, 3.0f, 0, 0, 0, 1.0f},  {33, 10, 5.0f, 0, 1, 1, 0.7f}, {4, 3, 1e4f, 0, 0, 0, 1.0f},
      {6, 11, 3e4f, 0, 1, 0, 2.5f},  {1, 1, 1.0f, 0, 0, 0, 1.0f},   {17, 100, 2.0f, 0, 0, 1, 1.0f},
      {7, 11, 4.0f, 1, 0, 0, 1.0f},  {64, 10, 3.0f, 1, 1, 1, 0.7f}, {5, 300, 1e4f, 1, 0, 0, 1.0f},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_xent(&cases[i], 100 + i);
}

/* logits [1, 2, 3] with label 2 and [0, 0, 0] with label 1 (tests/ops/test_loss.c's hand
 * example): loss 0.7531091266, one correct row. */
Test(cuda_math_loss, softmax_xent_by_hand) {
  const float z[6] = {1, 2, 3, 0, 0, 0};
  const int32_t y[2] = {2, 1};
  float g[6] = {0};
  int64_t correct = 0, bad = 0;
  const double loss = emulate_xent(z, y, NULL, 2, 3, 1.0f, g, 0, &correct, &bad);
  assert_rel("loss", loss, 0.7531091266, 1e-9, 0.0);
  cr_assert_eq(correct, 1);
  const double want[6] = {0.0450152866, 0.1223642355, -0.1673795221, 1.0 / 6, -1.0 / 3, 1.0 / 6};
  assert_close("dlogits", g, want, 6);
}

/* A masked class reads 0 for the maximum and the sum, and gets no gradient: logits [2, 1, 3],
 * mask [1, 0, 1], label 0: loss log(e^2 + 1 + e^3) - 2, argmax 2. */
Test(cuda_math_loss, softmax_xent_mask_by_hand) {
  const float z[3] = {2.0f, 1.0f, 3.0f}, mask[3] = {1.0f, 0.0f, 1.0f};
  const int32_t y[1] = {0};
  float g[3] = {0};
  int64_t correct = -1, bad = 0;
  const double loss = emulate_xent(z, y, mask, 1, 3, 1.0f, g, 0, &correct, &bad);
  const double s = exp(2.0) + 1.0 + exp(3.0);
  assert_rel("loss", loss, log(s) - 2.0, 1e-12, 0.0);
  cr_assert_eq(correct, 0);
  cr_assert(g[1] == 0.0f, "the masked class has gradient %g", (double)g[1]);
  const double want[3] = {exp(2.0) / s - 1.0, 0.0, exp(3.0) / s};
  assert_close("dlogits", g, want, 3);
}

Test(cuda_math_loss, labels_outside_the_classes_are_counted) {
  cr_assert(fg_cuda_label_valid(0, 3) && fg_cuda_label_valid(2, 3));
  cr_assert(!fg_cuda_label_valid(3, 3) && !fg_cuda_label_valid(-1, 3) && !fg_cuda_label_valid(INT32_MIN, 3));
  const float z[6] = {1, 2, 3, 0, 0, 0};
  const int32_t y[2] = {2, 3};
  int64_t correct = 0, bad = 0;
  emulate_xent(z, y, NULL, 2, 3, 1.0f, NULL, 0, &correct, &bad);
  cr_assert_eq(bad, 1);
}

/* Assigned: the double rounded once; accumulated: old + v in double, rounded once (not the sum
 * of two roundings). */
Test(cuda_math_loss, gradient_store_rounds_once) {
  const double v = 1.0 + 3.0 * ldexp(1.0, -26); /* between floats: alone it rounds to 1 */
  cr_assert_eq(fg_cuda_loss_store(123.0f, v, 0), (float)v);
  const float old = ldexpf(1.0f, -25);
  const float once = (float)((double)old + v), twice = old + (float)v;
  cr_assert_eq(fg_cuda_loss_store(old, v, 1), once);
  cr_assert_neq(once, twice, "the case does not tell one rounding from two");
}

/* ----------------------------------------------------------------------------------------- */
/* KL distillation composed as kl_div_rows_kernel composes it                                */

static double emulate_kl(const float *student, const float *teacher, int64_t n, int64_t k, const fg_kl_desc *d,
                         float *dstudent, float *dteacher, int accumulate) {
  const double t = d->temperature, inv_t = 1.0 / t;
  const double divisor = d->reduction == FG_KL_BATCHMEAN ? (double)n : (double)n * (double)k;
  const double scale = (double)d->weight * t * t / divisor, g = scale * inv_t;
  double loss = 0.0;
  for (int64_t row = 0; row < n; row++) {
    const float *s = student + row * k, *te = teacher + row * k;
    fg_cuda_kl_row w = {-INFINITY, 0.0, -INFINITY, 0.0, inv_t, (double)d->teacher_eps};
    for (int64_t j = 0; j < k; j++) {
      if ((double)s[j] > w.smax) w.smax = s[j];
      if ((double)te[j] > w.tmax) w.tmax = te[j];
    }
    double ss = 0.0, st = 0.0;
    for (int64_t j = 0; j < k; j++) {
      ss += fg_cuda_exp_shifted(s[j], w.smax, inv_t);
      st += fg_cuda_exp_shifted(te[j], w.tmax, inv_t);
    }
    w.ls = log(ss);
    w.lt = log(st);
    double row_loss = 0.0, q_total = 0.0, q0_r = 0.0;
    for (int64_t j = 0; j < k; j++) {
      const fg_cuda_kl_term e = fg_cuda_kl_term_at(&w, s[j], te[j]);
      row_loss += e.q * e.r;
      q_total += e.q;
      q0_r += e.q0 * e.r;
    }
    loss += row_loss;
    for (int64_t j = 0; j < k; j++) {
      const fg_cuda_kl_term e = fg_cuda_kl_term_at(&w, s[j], te[j]);
      if (dstudent)
        dstudent[row * k + j] =
            fg_cuda_loss_store(dstudent[row * k + j], fg_cuda_kl_dstudent(&e, q_total, g), accumulate);
      if (dteacher)
        dteacher[row * k + j] = fg_cuda_loss_store(dteacher[row * k + j], fg_cuda_kl_dteacher(&e, q0_r, g), accumulate);
    }
  }
  return scale * loss;
}

typedef struct kl_case {
  int64_t n, k;
  float range, temperature, eps, weight;
  fg_kl_reduction reduction;
  int accumulate;
} kl_case;

static void check_kl(const kl_case *c, uint64_t seed) {
  const int64_t n = c->n, k = c->k, nk = n * k;
  const fg_kl_desc d = {c->temperature, c->eps, c->reduction, c->weight};
  float *s = uniform(nk, seed, -c->range, c->range), *t = uniform(nk, seed + 1, -c->range, c->range);
  float *ds0 = uniform(nk, seed + 2, -1.0f, 1.0f), *dt0 = uniform(nk, seed + 3, -1.0f, 1.0f);
  float *ds = copy_of(ds0, nk), *dt = copy_of(dt0, nk), *cpu_ds = copy_of(ds0, nk), *cpu_dt = copy_of(dt0, nk);
  const double loss = emulate_kl(s, t, n, k, &d, ds, dt, c->accumulate);

  double *sd = widen(s, nk), *td = widen(t, nk);
  double *want_s = calloc((size_t)nk, sizeof *want_s), *want_t = calloc((size_t)nk, sizeof *want_t);
  const double ref = fg_ref_kl_div(sd, td, n, k, c->temperature, c->eps, c->reduction, c->weight, want_s, want_t);
  for (int64_t i = 0; c->accumulate && i < nk; i++) want_s[i] += ds0[i], want_t[i] += dt0[i];
  assert_rel("kl_div loss against the reference", loss, ref, 1e-6, 1e-12);
  assert_close("kl_div dstudent against the reference", ds, want_s, nk);
  assert_close("kl_div dteacher against the reference", dt, want_t, nk);

  fgt_setup_cpu(1);
  fg_tensor ts = fg_tensor_2d(s, n, k), tt = fg_tensor_2d(t, n, k);
  fg_tensor tds = fg_tensor_2d(cpu_ds, n, k), tdt = fg_tensor_2d(cpu_dt, n, k);
  double cpu_loss = 0.0;
  FGT_OK(fg_kl_div(&d, &ts, &tt, &tds, &tdt, c->accumulate, &cpu_loss));
  assert_rel("kl_div loss against the CPU backend", loss, cpu_loss, 1e-13, 1e-300);
  assert_bitwise("kl_div dstudent against the CPU backend", ds, cpu_ds, nk);
  assert_bitwise("kl_div dteacher against the CPU backend", dt, cpu_dt, nk);
  free(s), free(t), free(ds0), free(dt0), free(ds), free(dt), free(cpu_ds), free(cpu_dt);
  free(sd), free(td), free(want_s), free(want_t);
}

Test(cuda_math_loss, kl_div_matches_references) {
  const kl_case cases[] = {
      {5, 7, 3.0f, 1.0f, 0.0f, 1.0f, FG_KL_BATCHMEAN, 0},
      {8, 10, 4.0f, 4.0f, 0.0f, 0.5f, FG_KL_ELEMENTWISE_MEAN, 1},
      {3, 10, 4.0f, 2.0f, 1e-3f, 1.0f, FG_KL_BATCHMEAN, 0},    /* teacher_eps */
      {4, 100, 500.0f, 1.0f, 1e-7f, 2.0f, FG_KL_BATCHMEAN, 1}, /* q0 underflows to 0: eps */
      {2, 6, 1e4f, 3.0f, 0.0f, 1.0f, FG_KL_ELEMENTWISE_MEAN, 0}, /* large logits */
      {1, 1, 1.0f, 1.0f, 0.0f, 1.0f, FG_KL_BATCHMEAN, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_kl(&cases[i], 200 + 10 * i);
}

/* Equal rows: p = q, so the loss and both gradients are 0 (eps = 0). */
Test(cuda_math_loss, kl_div_of_equal_rows_is_zero) {
  const float s[4] = {0.5f, -1.0f, 2.0f, 0.25f};
  float ds[4] = {1, 1, 1, 1}, dt[4] = {1, 1, 1, 1};
  const fg_kl_desc d = {2.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f};
  const double loss = emulate_kl(s, s, 1, 4, &d, ds, dt, 0);
  cr_assert(fabs(loss) <= 1e-15, "loss %g", loss);
  for (int j = 0; j < 4; j++) cr_assert(fabsf(ds[j]) <= 1e-15f && fabsf(dt[j]) <= 1e-15f);
}

/* ----------------------------------------------------------------------------------------- */
/* Mean squared error composed as mse_partials_kernel composes it                            */

Test(cuda_math_loss, mse_matches_references) {
  const int64_t counts[3] = {1, 37, 5000};
  const float weights[3] = {1.0f, 0.3f, 2.0f};
  for (int c = 0; c < 3; c++) {
    const int64_t n = counts[c];
    const int accumulate = c == 1;
    float *y = uniform(n, 300 + c, -3.0f, 3.0f), *t = uniform(n, 310 + c, -3.0f, 3.0f);
    float *dy0 = uniform(n, 320 + c, -1.0f, 1.0f), *dy = copy_of(dy0, n), *cpu = copy_of(dy0, n);
    const double grad_scale = 2.0 * (double)weights[c] / (double)n;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
      const double d = fg_cuda_mse_diff(y[i], t[i]);
      sum += d * d;
      dy[i] = fg_cuda_loss_store(dy[i], grad_scale * d, accumulate);
    }
    const double loss = (double)weights[c] * sum / (double)n;
    double *yd = widen(y, n), *td = widen(t, n), *want = calloc((size_t)n, sizeof *want);
    const double ref = fg_ref_mse(yd, td, n, weights[c], want);
    for (int64_t i = 0; accumulate && i < n; i++) want[i] += dy0[i];
    assert_rel("mse loss against the reference", loss, ref, 1e-6, 1e-12);
    assert_close("mse dy against the reference", dy, want, n);
    fgt_setup_cpu(1);
    fg_tensor ty = fg_tensor_1d(y, n), tt = fg_tensor_1d(t, n), tg = fg_tensor_1d(cpu, n);
    double cpu_loss = 0.0;
    FGT_OK(fg_mse(&ty, &tt, weights[c], &tg, accumulate, &cpu_loss));
    assert_rel("mse loss against the CPU backend", loss, cpu_loss, 1e-13, 0.0);
    assert_bitwise("mse dy against the CPU backend", dy, cpu, n);
    free(y), free(t), free(dy0), free(dy), free(cpu), free(yd), free(td), free(want);
  }
}
