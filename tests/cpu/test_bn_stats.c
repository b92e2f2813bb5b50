/* Batch-norm statistics of the CPU backend (cpu/norm.c) on data that stresses how they are
 * summed: sums shifted by the mean of each channel's first plane, with a second pass when that
 * shift is far from the mean. Checked against the double-precision reference
 * (cpu/ref/ref_math.h): a first image far off the others, a large common offset with a small
 * spread (cancellation), and the [N,C] layout, whose first plane is a single value (there, a
 * first value 31 standard deviations out, which only the second pass gets right). */
#include <math.h>
#include <stdlib.h>

#include "common/test_util.h"
#include "ref/ref_math.h"
#include "engine/backend/ops.h"

typedef struct stats_case {
  int ndim; /* 2: [N,C]; 4: [N,C,H,W] */
  int64_t n, c, h, w;
} stats_case;

static int64_t numel_of(const stats_case *k) { return k->n * k->c * k->h * k->w; }

/* Runs the training forward on x and compares y, the saved statistics and the running ones
 * with the reference. */
static void check_stats(const char *what, const stats_case *k, const float *x) {
  const int64_t numel = numel_of(k), c = k->c, inner = k->h * k->w;
  float *y = malloc((size_t)numel * sizeof *y), *g = malloc((size_t)c * sizeof *g);
  float *b = malloc((size_t)c * sizeof *b), *m = malloc((size_t)c * sizeof *m);
  float *is = malloc((size_t)c * sizeof *is), *rm = malloc((size_t)c * sizeof *rm);
  float *rv = malloc((size_t)c * sizeof *rv);
  double *xd = malloc((size_t)numel * sizeof *xd), *yd = malloc((size_t)numel * sizeof *yd);
  double *gd = malloc((size_t)c * sizeof *gd), *bd = malloc((size_t)c * sizeof *bd);
  double *md = malloc((size_t)c * sizeof *md), *isd = malloc((size_t)c * sizeof *isd);
  double *rmd = malloc((size_t)c * sizeof *rmd), *rvd = malloc((size_t)c * sizeof *rvd);
  cr_assert(y && g && b && m && is && rm && rv && xd && yd && gd && bd && md && isd && rmd && rvd);
  fgt_fill_uniform(g, (size_t)c, 5, 0.5f, 1.5f);
  fgt_fill_uniform(b, (size_t)c, 6, -1.0f, 1.0f);
  for (int64_t i = 0; i < c; i++) {
    rm[i] = 0.0f, rv[i] = 1.0f;
    gd[i] = g[i], bd[i] = b[i], rmd[i] = 0.0, rvd[i] = 1.0;
  }
  for (int64_t i = 0; i < numel; i++) xd[i] = x[i];
  fg_ref_bn_forward_train(xd, k->n, c, inner, gd, bd, 1e-5, 0.1, yd, md, isd, rmd, rvd);

  fg_tensor tx = k->ndim == 4 ? fg_tensor_4d((float *)x, k->n, c, k->h, k->w)
                              : fg_tensor_2d((float *)x, k->n, c);
  fg_tensor ty = k->ndim == 4 ? fg_tensor_4d(y, k->n, c, k->h, k->w) : fg_tensor_2d(y, k->n, c);
  fg_tensor tg = fg_tensor_1d(g, c), tb = fg_tensor_1d(b, c), tm = fg_tensor_1d(m, c);
  fg_tensor ti = fg_tensor_1d(is, c), trm = fg_tensor_1d(rm, c), trv = fg_tensor_1d(rv, c);
  FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, &trv, 0.1f, 1e-5f));

  char msg[512];
  cr_assert(fgt_allclose(m, md, (size_t)c, 0, 1e-6, msg, sizeof msg), "%s mean: %s", what, msg);
  cr_assert(fgt_allclose(is, isd, (size_t)c, 0, 1e-6, msg, sizeof msg), "%s invstd: %s", what,
            msg);
  cr_assert(fgt_allclose(rm, rmd, (size_t)c, 0, 1e-6, msg, sizeof msg), "%s running mean: %s",
            what, msg);
  cr_assert(fgt_allclose(rv, rvd, (size_t)c, 0, 1e-6, msg, sizeof msg), "%s running var: %s",
            what, msg);
  cr_assert(fgt_allclose(y, yd, (size_t)numel, 2e-6, 2e-6, msg, sizeof msg), "%s y: %s", what,
            msg);
  free(y), free(g), free(b), free(m), free(is), free(rm), free(rv);
  free(xd), free(yd), free(gd), free(bd), free(md), free(isd), free(rmd), free(rvd);
}

Test(bn_stats, first_image_far_from_the_others) {
  fgt_setup_cpu(2);
  /* the first of 64 images sits 100 above the rest: the shift (about 100) is some 8 standard
   * deviations (about 12.4) from the mean (about 1.6); one shifted pass would lose a factor
   * 1 + 8^2 in the variance's precision, so the second pass runs */
  const stats_case k = {4, 64, 3, 3, 3};
  const int64_t numel = numel_of(&k), per_image = k.c * k.h * k.w;
  float *x = malloc((size_t)numel * sizeof *x);
  cr_assert_not_null(x);
  fgt_fill_uniform(x, (size_t)numel, 11, -1.0f, 1.0f);
  for (int64_t i = 0; i < per_image; i++) x[i] += 100.0f;
  check_stats("far first image", &k, x);
  free(x);
}

Test(bn_stats, large_offset_small_spread) {
  fgt_setup_cpu(2);
  /* values 1000 +- 0.01: E[x^2] - E[x]^2 without the shift would cancel every digit */
  const stats_case k = {4, 16, 4, 7, 9};
  const int64_t numel = numel_of(&k);
  float *x = malloc((size_t)numel * sizeof *x);
  cr_assert_not_null(x);
  fgt_fill_uniform(x, (size_t)numel, 12, -0.01f, 0.01f);
  for (int64_t i = 0; i < numel; i++) x[i] += 1000.0f;
  check_stats("offset 1000", &k, x);
  free(x);
}

Test(bn_stats, rows_layout_first_plane_is_one_value) {
  fgt_setup_cpu(2);
  /* [N,C]: each plane is one value, so the shift is the first row's value. In channel 0 that
   * value is 100 among 1023 values in [-1, 1]: some 31 standard deviations from the mean, where
   * one shifted pass would lose three digits of the variance (the second pass must run); the
   * other channels are ordinary. */
  const stats_case k = {2, 1024, 3, 1, 1};
  const int64_t numel = numel_of(&k);
  float *x = malloc((size_t)numel * sizeof *x);
  cr_assert_not_null(x);
  fgt_fill_uniform(x, (size_t)numel, 13, -1.0f, 1.0f);
  x[0] = 100.0f;
  check_stats("[N,C]", &k, x);
  free(x);
}
