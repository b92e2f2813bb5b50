/* nHSIC op on the CPU backend: the value against the reference code's formula in double
 * (tr(K H L H) normalisation with an explicit H), feature and label targets; the gradient
 * against central differences of that double reference; nHSIC(Z; Z) = 1; invariance under a
 * joint permutation of the batch; accumulate; equal rows give 0; bit-identical for 1 and 2
 * threads; argument errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"

typedef struct nh_case {
  int64_t m, dz, dx;
  float sigma;
  float range; /* z uniform in [-range, range) */
} nh_case;

static const nh_case cases[] = {
    {6, 5, 4, 1.0f, 1.0f}, {16, 40, 30, 0.7f, 2.0f}, {64, 512, 784, 5.0f, 3.0f}, {9, 3, 10, 0.5f, 1.5f},
};

typedef struct buffers {
  float *z, *x, *dz;
  double *zd, *xd, *scratch;
  void *ws;
  fg_workspace w;
} buffers;

static void make(const nh_case *c, uint64_t seed, buffers *b) {
  b->z = malloc((size_t)(c->m * c->dz) * sizeof(float));
  b->x = malloc((size_t)(c->m * c->dx) * sizeof(float));
  b->dz = malloc((size_t)(c->m * c->dz) * sizeof(float));
  fgt_fill_uniform(b->z, (size_t)(c->m * c->dz), seed, -c->range, c->range);
  fgt_fill_uniform(b->x, (size_t)(c->m * c->dx), seed + 1, -1.0f, 1.0f);
  b->zd = malloc((size_t)(c->m * c->dz) * sizeof(double));
  b->xd = malloc((size_t)(c->m * c->dx) * sizeof(double));
  for (int64_t i = 0; i < c->m * c->dz; i++) b->zd[i] = b->z[i];
  for (int64_t i = 0; i < c->m * c->dx; i++) b->xd[i] = b->x[i];
  b->scratch = malloc((size_t)(6 * c->m * c->m) * sizeof(double));
  size_t bytes = 0;
  FGT_OK(fg_nhsic_workspace(fg_host_device(), c->m, &bytes));
  b->ws = malloc(bytes);
  b->w = (fg_workspace){b->ws, bytes};
}

static void release(buffers *b) {
  free(b->z), free(b->x), free(b->dz), free(b->zd), free(b->xd), free(b->scratch), free(b->ws);
}

static double run(const nh_case *c, buffers *b, float weight, int grad, int accumulate) {
  fg_tensor tz = fg_tensor_2d(b->z, c->m, c->dz), tx = fg_tensor_2d(b->x, c->m, c->dx);
  fg_tensor tdz = fg_tensor_2d(b->dz, c->m, c->dz);
  fg_nhsic_desc d = {c->sigma, 0};
  double v = NAN;
  FGT_OK(fg_nhsic(&d, &tz, &tx, NULL, weight, grad ? &tdz : NULL, accumulate, b->w, &v));
  return v;
}

Test(nhsic, value_matches_reference_formula) {
  fgt_setup_cpu(2);
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const nh_case *c = &cases[k];
    buffers b;
    make(c, 100 + k, &b);
    double v = run(c, &b, 1.0f, 0, 0);
    double want = fg_ref_nhsic(b.zd, c->dz, b.xd, c->dx, c->m, c->sigma, b.scratch);
    cr_assert(fabs(v - want) <= 1e-9 + 1e-9 * fabs(want), "case %zu: nhsic %.15g, reference %.15g", k, v, want);
    cr_assert(v > 0.0 && v <= 1.0 + 1e-12, "case %zu: nhsic %.15g outside (0, 1]", k, v);
    release(&b);
  }
}

Test(nhsic, label_target_matches_one_hot_reference) {
  fgt_setup_cpu(1);
  const int64_t m = 24, dz = 12, classes = 10;
  const float sigma = 5.0f;
  float *z = malloc((size_t)(m * dz) * sizeof *z);
  fgt_fill_uniform(z, (size_t)(m * dz), 7, -2.0f, 2.0f);
  int32_t y[24];
  double *onehot = calloc((size_t)(m * classes), sizeof *onehot), *zd = malloc((size_t)(m * dz) * sizeof *zd);
  fg_rng r = fg_rng_stream(8, FG_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < m; i++) {
    y[i] = (int32_t)fg_rng_below(&r, (uint64_t)classes);
    onehot[i * classes + y[i]] = 1.0;
  }
  for (int64_t i = 0; i < m * dz; i++) zd[i] = z[i];
  double *scratch = malloc((size_t)(6 * m * m) * sizeof *scratch);
  size_t bytes = 0;
  FGT_OK(fg_nhsic_workspace(fg_host_device(), m, &bytes));
  void *ws = malloc(bytes);
  fg_tensor tz = fg_tensor_2d(z, m, dz);
  int64_t n = m;
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, &n);
  fg_nhsic_desc d = {sigma, (int)classes};
  double v = NAN;
  FGT_OK(fg_nhsic(&d, &tz, NULL, &ty, 1.0f, NULL, 0, (fg_workspace){ws, bytes}, &v));
  double want = fg_ref_nhsic(zd, dz, onehot, classes, m, sigma, scratch);
  cr_assert(fabs(v - want) <= 1e-9 * fabs(want) + 1e-12, "labels: nhsic %.15g, reference %.15g", v, want);
  /* A label out of range is an error naming it. */
  y[3] = (int32_t)classes;
  cr_assert_eq(fg_nhsic(&d, &tz, NULL, &ty, 1.0f, NULL, 0, (fg_workspace){ws, bytes}, &v), FG_ERR_INVALID);
  free(z), free(onehot), free(zd), free(scratch), free(ws);
}

/* d nHSIC / dz against central differences of the double reference. */
Test(nhsic, gradient_matches_finite_differences) {
  fgt_setup_cpu(2);
  for (size_t k = 0; k < 2; k++) {
    const nh_case *c = &cases[k];
    buffers b;
    make(c, 200 + k, &b);
    const float weight = -0.75f;
    run(c, &b, weight, 1, 0);
    const double h = 1e-5;
    for (int64_t j = 0; j < c->m * c->dz; j += (k == 0 ? 1 : 7)) {
      double saved = b.zd[j];
      b.zd[j] = saved + h;
      double lp = fg_ref_nhsic(b.zd, c->dz, b.xd, c->dx, c->m, c->sigma, b.scratch);
      b.zd[j] = saved - h;
      double lm = fg_ref_nhsic(b.zd, c->dz, b.xd, c->dx, c->m, c->sigma, b.scratch);
      b.zd[j] = saved;
      double fd = weight * (lp - lm) / (2 * h);
      cr_assert(fabs(b.dz[j] - fd) <= 2e-5 + 2e-3 * fabs(fd), "case %zu dz[%lld]: analytic %.10g, fd %.10g", k,
                (long long)j, (double)b.dz[j], fd);
    }
    release(&b);
  }
}

Test(nhsic, self_similarity_is_one_and_permutation_invariant) {
  fgt_setup_cpu(1);
  const nh_case c = {20, 30, 30, 1.0f, 1.0f};
  buffers b;
  make(&c, 300, &b);
  /* nHSIC(Z; Z) = 1. */
  memcpy(b.x, b.z, (size_t)(c.m * c.dz) * sizeof(float));
  double self = run(&c, &b, 1.0f, 0, 0);
  cr_assert(fabs(self - 1.0) <= 1e-12, "nHSIC(Z; Z) = %.17g", self);
  /* A joint permutation of the rows of z and x leaves the value unchanged. */
  fgt_fill_uniform(b.x, (size_t)(c.m * c.dx), 301, -1.0f, 1.0f);
  double v = run(&c, &b, 1.0f, 0, 0);
  float *pz = malloc((size_t)(c.m * c.dz) * sizeof(float)), *px = malloc((size_t)(c.m * c.dx) * sizeof(float));
  for (int64_t i = 0; i < c.m; i++) {
    int64_t src = (i * 7 + 3) % c.m; /* 7 is coprime with 20: a permutation */
    memcpy(pz + i * c.dz, b.z + src * c.dz, (size_t)c.dz * sizeof(float));
    memcpy(px + i * c.dx, b.x + src * c.dx, (size_t)c.dx * sizeof(float));
  }
  memcpy(b.z, pz, (size_t)(c.m * c.dz) * sizeof(float));
  memcpy(b.x, px, (size_t)(c.m * c.dx) * sizeof(float));
  double vp = run(&c, &b, 1.0f, 0, 0);
  cr_assert(fabs(v - vp) <= 1e-12, "permuted batch: %.17g vs %.17g", vp, v);
  free(pz), free(px);
  release(&b);
}

Test(nhsic, accumulate_equal_rows_and_threads) {
  const nh_case c = {32, 200, 50, 1.0f, 1.0f};
  fgt_setup_cpu(1);
  buffers b;
  make(&c, 400, &b);
  size_t n = (size_t)(c.m * c.dz);
  run(&c, &b, 0.5f, 1, 0);
  float *g1 = malloc(n * sizeof *g1);
  memcpy(g1, b.dz, n * sizeof *g1);
  fgt_setup_cpu(2);
  run(&c, &b, 0.5f, 1, 0);
  cr_assert(memcmp(g1, b.dz, n * sizeof *g1) == 0, "gradients differ between 1 and 2 threads");
  /* Accumulate adds onto what is there. */
  fgt_fill_uniform(b.dz, n, 401, -1.0f, 1.0f);
  double *want = malloc(n * sizeof *want);
  for (size_t i = 0; i < n; i++) want[i] = (double)b.dz[i] + (double)g1[i];
  run(&c, &b, 0.5f, 1, 1);
  char msg[256];
  cr_assert(fgt_allclose(b.dz, want, n, 1e-6, 1e-5, msg, sizeof msg), "accumulate: %s", msg);
  /* Equal rows: the centred kernel vanishes; value 0 and a zero gradient. */
  for (int64_t i = 1; i < c.m; i++) memcpy(b.z + i * c.dz, b.z, (size_t)c.dz * sizeof(float));
  double v = run(&c, &b, 1.0f, 1, 0);
  cr_assert(v == 0.0, "equal rows: nhsic %g", v);
  for (size_t i = 0; i < n; i++) cr_assert(b.dz[i] == 0.0f, "equal rows: dz[%zu] = %g", i, (double)b.dz[i]);
  free(g1), free(want);
  release(&b);
}

Test(nhsic, argument_errors) {
  fgt_setup_cpu(1);
  float z[12] = {0}, x[12] = {0};
  fg_tensor tz = fg_tensor_2d(z, 4, 3), tx = fg_tensor_2d(x, 3, 4), one = fg_tensor_2d(z, 1, 12);
  double ws[64], v;
  fg_workspace w = {ws, sizeof ws};
  fg_nhsic_desc d = {5.0f, 10};
  cr_assert_eq(fg_nhsic(&d, &tz, &tx, NULL, 1.0f, NULL, 0, w, &v), FG_ERR_SHAPE); /* rows differ */
  cr_assert_eq(fg_nhsic(&d, &one, &one, NULL, 1.0f, NULL, 0, w, &v), FG_ERR_SHAPE); /* one row */
  cr_assert_eq(fg_nhsic(&d, &tz, NULL, NULL, 1.0f, NULL, 0, w, &v), FG_ERR_INVALID); /* no target */
  fg_nhsic_desc bad = {0.0f, 10};
  fg_tensor tx4 = fg_tensor_2d(x, 4, 3);
  cr_assert_eq(fg_nhsic(&bad, &tz, &tx4, NULL, 1.0f, NULL, 0, w, &v), FG_ERR_INVALID); /* sigma */
  fg_workspace small = {ws, 8};
  cr_assert_eq(fg_nhsic(&d, &tz, &tx4, NULL, 1.0f, NULL, 0, small, &v), FG_ERR_INVALID); /* workspace */
}
