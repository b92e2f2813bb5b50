/* The arithmetic of the CUDA nHSIC op (cuda/math/hsic.h), compiled on the host: the op is
 * composed from the header's functions the way cuda/hsic.cu's kernels compose them (each pair's
 * squared distance over the values in ascending order, Gaussian values, row and grand sums,
 * centring entry by entry, the three Frobenius products per row, the value; the float
 * coefficient matrix C' with its diagonal minus the row's sum; dz = -C' z), with sums added left
 * to right instead of by the device's trees, and compared with
 *   - the double-precision reference of tests/ref/ref_math.h (explicit centring matrix, the
 *     chain-rule gradient by differences z_i - z_j): the value to 1e-9 relative (the op suite's
 *     class for a value computed in double), the gradient in the tolerance class, both with the
 *     product C' z accumulated in double and in float (a stand-in for cublasSgemm's rounding:
 *     the product form z_i sum_j C_ij - sum_j C_ij z_j is where it differs from the CPU's
 *     differences);
 *   - the CPU backend's op on the same inputs: the value to 1e-13 relative, the gradient in the
 *     tolerance class.
 * Cases: feature and one-hot label targets, rows with a common offset, m = 2 rows (nHSIC is 1 and its gradient 0), equal
 * rows (the centred kernel vanishes: value 0 exactly, no gradient), x = z (value 1), a batch of
 * 64 rows of 512 values against 784. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/hsic.h"
#include "cuda/math/loss.h"
#include "engine/backend/ops.h"
#include "ref/ref_math.h"

/* ----------------------------------------------------------------------------------------- */
/* The op composed as the kernels compose it                                                  */

typedef struct nh_emulated {
  double value, norm;
  float *coef;      /* C' [m, m] (when norm > 0) */
  double *grad_d;   /* -C' z accumulated in double [m, d] */
  float *grad_f;    /* -C' z accumulated in float [m, d] */
} nh_emulated;

/* out [m, m] := exp(-|a_i - a_j|^2 / s), as nhsic_gaussian_kernel: pairs i <= j, mirrored. */
static void gaussian_rows(const float *a, int64_t m, int64_t d, double s, double *out) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = i; j < m; j++) {
      double sum = 0.0;
      for (int64_t k = 0; k < d; k++) sum += fg_cuda_nhsic_sq_diff(a[i * d + k], a[j * d + k]);
      out[i * m + j] = out[j * m + i] = fg_cuda_nhsic_gaussian(sum, s);
    }
}

static double sum_of(const double *v, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i++) s += v[i];
  return s;
}

static double centred_at(const double *k, const double *sums, double grand, int64_t m, int64_t i, int64_t j) {
  return fg_cuda_nhsic_centred(k[i * m + j], fg_cuda_nhsic_mean(sums[i], m), fg_cuda_nhsic_mean(sums[j], m), grand);
}

/* z [m, d] against x [m, dx] or labels [m] (x NULL); the gradient for `weight`. */
static nh_emulated emulate_nhsic(const float *z, int64_t d, const float *x, int64_t dx, const int32_t *labels,
                                 int classes, int64_t m, float sigma, float weight) {
  nh_emulated r = {0.0, 0.0, NULL, NULL, NULL};
  double *kz = malloc((size_t)(m * m) * sizeof *kz), *kt = malloc((size_t)(m * m) * sizeof *kt);
  double *sums_z = malloc((size_t)m * sizeof *sums_z), *sums_t = malloc((size_t)m * sizeof *sums_t);
  cr_assert(kz && kt && sums_z && sums_t);
  if (x) {
    gaussian_rows(x, m, dx, fg_cuda_nhsic_bandwidth(sigma, dx), kt);
  } else {
    const double st = fg_cuda_nhsic_bandwidth(sigma, classes);
    for (int64_t e = 0; e < m * m; e++)
      kt[e] = fg_cuda_nhsic_gaussian(fg_cuda_nhsic_label_distance(labels[e / m], labels[e % m]), st);
  }
  const double sz = fg_cuda_nhsic_bandwidth(sigma, d);
  gaussian_rows(z, m, d, sz, kz);
  for (int64_t i = 0; i < m; i++) sums_z[i] = sum_of(kz + i * m, m), sums_t[i] = sum_of(kt + i * m, m);
  const double gz = fg_cuda_nhsic_grand(sum_of(sums_z, m), m), gt = fg_cuda_nhsic_grand(sum_of(sums_t, m), m);
  double a = 0.0, b = 0.0, c = 0.0;
  for (int64_t i = 0; i < m; i++) {
    double ra = 0.0, rb = 0.0, rc = 0.0;
    for (int64_t j = 0; j < m; j++) {
      const double zc = centred_at(kz, sums_z, gz, m, i, j), tc = centred_at(kt, sums_t, gt, m, i, j);
      ra += zc * tc, rb += zc * zc, rc += tc * tc;
    }
    a += ra, b += rb, c += rc;
  }
  r.norm = fg_cuda_nhsic_norm(b, c);
  r.value = fg_cuda_nhsic_value(a, r.norm);
  if (r.norm > 0.0) {
    r.coef = malloc((size_t)(m * m) * sizeof *r.coef);
    r.grad_d = calloc((size_t)(m * d), sizeof *r.grad_d);
    r.grad_f = calloc((size_t)(m * d), sizeof *r.grad_f);
    cr_assert(r.coef && r.grad_d && r.grad_f);
    for (int64_t i = 0; i < m; i++) {
      double off = 0.0;
      for (int64_t j = 0; j < m; j++) {
        if (j == i) continue;
        const float cij = fg_cuda_nhsic_coefficient(centred_at(kz, sums_z, gz, m, i, j),
                                                    centred_at(kt, sums_t, gt, m, i, j), kz[i * m + j], a / b,
                                                    r.norm, sz, 4.0 * (double)weight);
        r.coef[i * m + j] = cij;
        off += (double)cij;
      }
      r.coef[i * m + i] = fg_cuda_nhsic_diagonal(off);
    }
    for (int64_t i = 0; i < m; i++)
      for (int64_t k = 0; k < d; k++) {
        double sd = 0.0;
        float sf = 0.0f;
        for (int64_t j = 0; j < m; j++) {
          sd += (double)r.coef[i * m + j] * (double)z[j * d + k];
          sf += r.coef[i * m + j] * z[j * d + k];
        }
        r.grad_d[i * d + k] = -sd;
        r.grad_f[i * d + k] = -sf;
      }
  }
  free(kz), free(kt), free(sums_z), free(sums_t);
  return r;
}

static void emulated_free(nh_emulated *r) { free(r->coef), free(r->grad_d), free(r->grad_f); }

/* ----------------------------------------------------------------------------------------- */
/* Checks                                                                                     */

static void assert_class(const char *what, const double *got, const double *want, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(fabs(got[i] - want[i]) <= 1e-5 + 1e-4 * fabs(want[i]), "%s: element %lld is %.9g, expected %.9g",
              what, (long long)i, got[i], want[i]);
}

static void assert_class_f(const char *what, const float *got, const double *want, int64_t n) {
  char msg[256];
  cr_assert(fgt_allclose(got, want, (size_t)n, 1e-5, 1e-4, msg, sizeof msg), "%s: %s", what, msg);
}

typedef struct nh_case {
  int64_t m, d, dx; /* dx: the features' width, or the number of classes for labels */
  float sigma, range, weight;
  int labels;
  float offset; /* z = offset + uniform(-range, range) */
} nh_case;

/* The CPU backend's value and gradient for the same inputs. */
static double cpu_nhsic(const nh_case *c, float *z, float *x, int32_t *y, float *dz) {
  fgt_setup_cpu(1);
  const fg_nhsic_desc desc = {c->sigma, c->labels ? (int)c->dx : 0};
  fg_tensor tz = fg_tensor_2d(z, c->m, c->d), tg = fg_tensor_2d(dz, c->m, c->d);
  fg_tensor tx = x ? fg_tensor_2d(x, c->m, c->dx) : tz;
  int64_t m = c->m;
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, &m);
  size_t bytes = 0;
  FGT_OK(fg_nhsic_workspace(fg_host_device(), c->m, &bytes));
  fg_workspace ws = {malloc(bytes), bytes};
  cr_assert_not_null(ws.ptr);
  double value = -1.0;
  FGT_OK(fg_nhsic(&desc, &tz, x ? &tx : NULL, x ? NULL : &ty, c->weight, &tg, 0, ws, &value));
  free(ws.ptr);
  return value;
}

static void check_case(const nh_case *c, uint64_t seed) {
  const int64_t m = c->m, d = c->d, n = m * d;
  float *z = malloc((size_t)n * sizeof *z), *x = NULL, *cpu_dz = malloc((size_t)n * sizeof *cpu_dz);
  int32_t *y = malloc((size_t)m * sizeof *y);
  cr_assert(z && y && cpu_dz);
  fgt_fill_uniform(z, (size_t)n, seed, -c->range, c->range);
  for (int64_t e = 0; e < n; e++) z[e] += c->offset;
  double *target = NULL;
  if (c->labels) {
    target = calloc((size_t)(m * c->dx), sizeof *target);
    for (int64_t i = 0; i < m; i++) {
      y[i] = (int32_t)((i * 3 + 1) % c->dx);
      cr_assert(fg_cuda_label_valid(y[i], c->dx));
      target[i * c->dx + y[i]] = 1.0;
    }
  } else {
    x = malloc((size_t)(m * c->dx) * sizeof *x);
    fgt_fill_uniform(x, (size_t)(m * c->dx), seed + 1, -1.0f, 1.0f);
    target = malloc((size_t)(m * c->dx) * sizeof *target);
    for (int64_t e = 0; e < m * c->dx; e++) target[e] = x[e];
  }
  double *zd = malloc((size_t)n * sizeof *zd), *want = malloc((size_t)n * sizeof *want);
  double *scratch = malloc((size_t)(6 * m * m) * sizeof *scratch);
  for (int64_t e = 0; e < n; e++) zd[e] = z[e];
  const double ref = fg_ref_nhsic_grad(zd, d, target, c->dx, m, c->sigma, want, scratch);
  for (int64_t e = 0; e < n; e++) want[e] *= c->weight;

  nh_emulated r = emulate_nhsic(z, d, x, c->dx, y, (int)c->dx, m, c->sigma, c->weight);
  cr_assert(r.norm > 0.0 && r.value > 0.0 && r.value <= 1.0 + 1e-12, "value %.17g", r.value);
  cr_assert(fabs(r.value - ref) <= 1e-9 * fabs(ref), "value %.17g, the reference %.17g", r.value, ref);
  assert_class("dz (C' z in double) against the reference", r.grad_d, want, n);
  assert_class_f("dz (C' z in float) against the reference", r.grad_f, want, n);

  const double cpu = cpu_nhsic(c, z, x, y, cpu_dz);
  cr_assert(fabs(r.value - cpu) <= 1e-13 * fabs(cpu), "value %.17g, the CPU backend's %.17g", r.value, cpu);
  double *cpu_d = malloc((size_t)n * sizeof *cpu_d);
  for (int64_t e = 0; e < n; e++) cpu_d[e] = cpu_dz[e];
  assert_class_f("dz (C' z in float) against the CPU backend", r.grad_f, cpu_d, n);
  emulated_free(&r);
  free(z), free(x), free(y), free(cpu_dz), free(target), free(zd), free(want), free(scratch), free(cpu_d);
}

Test(cuda_math_hsic, matches_references) {
  const nh_case cases[] = {
      {6, 5, 4, 1.0f, 1.0f, 1.0f, 0, 0.0f},     {16, 40, 30, 0.7f, 2.0f, -0.75f, 0, 0.0f},
      {9, 3, 10, 0.5f, 1.5f, 0.5f, 0, 0.0f},    {24, 12, 10, 5.0f, 2.0f, 1.0f, 1, 0.0f},
      {64, 512, 784, 5.0f, 3.0f, 1.0f, 0, 0.0f}, {12, 6, 5, 0.8f, 1.0f, 2.0f, 1, 0.0f},
      /* rows sharing an offset 10 times their spread: the product form cancels (about 1e-6 of
       * the largest gradient here, growing with the ratio), still inside the class */
      {32, 200, 50, 1.0f, 1.0f, 1.0f, 0, 10.0f},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i], 400 + 10 * i);
}

/* Two rows: both centred kernels are [[x, -x], [-x, x]], so nHSIC = 1 whatever the rows, and
 * its gradient vanishes (the coefficients are 0 up to rounding). */
Test(cuda_math_hsic, two_rows_give_one_and_no_gradient) {
  const float z[6] = {0.5f, -1.0f, 2.0f, 1.5f, 0.25f, -0.75f}, x[4] = {1.0f, 0.0f, -0.5f, 2.0f};
  nh_emulated r = emulate_nhsic(z, 3, x, 2, NULL, 0, 2, 1.0f, 1.0f);
  cr_assert(fabs(r.value - 1.0) <= 1e-12, "value %.17g", r.value);
  cr_assert_not_null(r.grad_d);
  for (int e = 0; e < 6; e++) cr_assert(fabs(r.grad_d[e]) <= 1e-9, "dz[%d] = %g", e, r.grad_d[e]);
  emulated_free(&r);
}

/* Equal rows: every distance is 0, K = 1, each centred entry 1 - 1 - 1 + 1 = 0 exactly, so the
 * value is 0 and no gradient is formed (the op then writes zeros or leaves dz). */
Test(cuda_math_hsic, equal_rows_give_zero) {
  float z[5 * 4];
  for (int i = 0; i < 5; i++)
    for (int k = 0; k < 4; k++) z[i * 4 + k] = 0.3f * (float)k - 1.0f;
  cr_assert_eq(fg_cuda_nhsic_centred(1.0, fg_cuda_nhsic_mean(5.0, 5), fg_cuda_nhsic_mean(5.0, 5),
                                     fg_cuda_nhsic_grand(25.0, 5)),
               0.0);
  const int32_t y[5] = {0, 1, 2, 1, 0};
  nh_emulated r = emulate_nhsic(z, 4, NULL, 0, y, 3, 5, 5.0f, 1.0f);
  cr_assert(r.value == 0.0 && r.norm == 0.0, "value %g, norm %g", r.value, r.norm);
  cr_assert_null(r.coef);
  emulated_free(&r);
}

/* x = z: the two kernels are equal, nHSIC = 1 to rounding in double. */
Test(cuda_math_hsic, self_similarity_is_one) {
  float z[20 * 30];
  fgt_fill_uniform(z, 20 * 30, 77, -1.0f, 1.0f);
  nh_emulated r = emulate_nhsic(z, 30, z, 30, NULL, 0, 20, 1.0f, 1.0f);
  cr_assert(fabs(r.value - 1.0) <= 1e-12, "value %.17g", r.value);
  emulated_free(&r);
}

/* The pieces on their own: the bandwidth, a distance term's exactness, one-hot distances, the
 * Gaussian at 0, the value when the normaliser vanishes. */
Test(cuda_math_hsic, element_functions) {
  cr_assert_eq(fg_cuda_nhsic_bandwidth(5.0f, 784), 2.0 * 25.0 * 784.0);
  cr_assert_eq(fg_cuda_nhsic_sq_diff(16777216.0f, 1.0f), 16777215.0 * 16777215.0); /* exact in double */
  cr_assert_eq(fg_cuda_nhsic_label_distance(3, 3), 0.0);
  cr_assert_eq(fg_cuda_nhsic_label_distance(3, 4), 2.0);
  cr_assert_eq(fg_cuda_nhsic_gaussian(0.0, 7.0), 1.0);
  cr_assert_eq(fg_cuda_nhsic_value(0.5, 0.0), 0.0);
  cr_assert_eq(fg_cuda_nhsic_value(0.5, NAN), 0.0);
  cr_assert_eq(fg_cuda_nhsic_diagonal(0.25), -0.25f);
}
