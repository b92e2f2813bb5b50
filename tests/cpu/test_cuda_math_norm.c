/* The arithmetic of the CUDA batch-norm kernels (cuda/math/norm.h), compiled for the host: the
 * channel cursor against plain nested loops; a host model of each kernel (one "block" of 256
 * threads per channel, each thread's sums from the header's functions, combined by the same
 * fixed tree as fg_block_sum in cuda/reduce.cuh) against the CPU backend's ops and the double
 * references (tests/ref/ref_math.h): statistics tighter than the tolerance class, outputs and
 * gradients in the class, the evaluation forward bit for bit (it has no sum: the same float and
 * double operations as the CPU's). Shapes: odd extents, [N,C], N*H*W = 2, a channel longer than
 * the block and planes longer than the block, a large common offset with a small spread, a first
 * image far from the others (the second pass); the running statistics and the second pass
 * derived by hand. Runs without a GPU (label cpu). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/norm.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_math.h"

/* Threads of one block of the kernels (FG_CUDA_THREADS in cuda/cuda_internal.h, which a C test
 * cannot include). */
enum { BLOCK = 256 };

/* Tolerances: the class of cuda.md for outputs and gradients; statistics much tighter (both the
 * model and the CPU sum shifted values in double across blocks, so a loss of precision, not
 * rounding, is what a larger difference would show). */
#define CLASS_ATOL 1e-5
#define CLASS_RTOL 1e-4
#define STATS_RTOL 1e-6
/* The mean: its float rounding (3e-8 relative) plus 1e-7 of the data's O(1) spread. */
#define MEAN_ATOL 1e-7
#define MEAN_RTOL 1e-7

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static void *xmalloc(size_t bytes) {
  void *p = malloc(bytes ? bytes : 1);
  cr_assert_not_null(p);
  return p;
}

static float *frand(size_t n, uint64_t seed, float lo, float hi) {
  float *p = xmalloc(n * sizeof *p);
  fgt_fill_uniform(p, n, seed, lo, hi);
  return p;
}

static double *widen(const float *f, size_t n) {
  double *d = xmalloc(n * sizeof *d);
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

static void expect_close(const char *what, const float *got, const double *want, size_t n, double atol,
                         double rtol) {
  char msg[256];
  cr_expect(fgt_allclose(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

static void expect_close_f(const char *what, const float *got, const float *want, size_t n, double atol,
                           double rtol) {
  char msg[256];
  cr_expect(fgt_allclose_f(got, want, n, atol, rtol, msg, sizeof msg), "%s: %s", what, msg);
}

static void expect_bitwise(const char *what, const float *got, const float *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      cr_expect_fail("%s: element %zu is %.9g, the CPU's %.9g", what, i, (double)got[i], (double)want[i]);
      return;
    }
}

/* fg_block_sum's tree (cuda/reduce.cuh): v[t] += v[t + half] for half = 128, 64, ..., 1. */
static double block_sum(double *v) {
  for (int half = BLOCK / 2; half > 0; half /= 2)
    for (int t = 0; t < half; t++) v[t] += v[t + half];
  return v[0];
}

static fg_bn_layout layout(int64_t n, int64_t c, int64_t inner) {
  fg_bn_layout l = {n, c, inner, n * inner};
  return l;
}

static fg_tensor tensor_of(float *data, const fg_bn_layout *l, int ndim) {
  if (ndim == 2) return fg_tensor_2d(data, l->batch, l->channels);
  return fg_tensor_4d(data, l->batch, l->channels, l->inner, 1);
}

/* ----------------------------------------------------------------------------------------- */
/* Host models of the kernels (cuda/norm.cu), thread by thread                                */

/* bn_forward_train_kernel's block_moments: every thread's shifted sums, then the tree. */
static fg_bn_moments model_moments(const float *x, const fg_bn_layout *l, int64_t ch, float shift) {
  double sum[BLOCK], sq[BLOCK];
  for (int t = 0; t < BLOCK; t++) fg_bn_thread_shifted_sums(x, l, ch, t, BLOCK, shift, &sum[t], &sq[t]);
  const double s = block_sum(sum), q = block_sum(sq);
  return fg_bn_moments_of(s, q, l->count, shift);
}

/* bn_forward_train_kernel, channel by channel; *second_passes counts the channels that took two. */
static void model_forward_train(const float *x, const fg_bn_layout *l, const float *gamma, const float *beta,
                                float *y, float *save_mean, float *save_invstd, float *rm, float *rv,
                                float momentum, float eps, int *second_passes) {
  const double unbias = fg_bn_unbias(l->count);
  *second_passes = 0;
  for (int64_t ch = 0; ch < l->channels; ch++) {
    double part[BLOCK];
    for (int t = 0; t < BLOCK; t++) part[t] = fg_bn_thread_plane_sum(x, l, ch, t, BLOCK);
    float shift = fg_bn_shift(block_sum(part), l->inner);
    fg_bn_moments m = model_moments(x, l, ch, shift);
    if (fg_bn_needs_second_pass(&m, shift)) {
      shift = (float)m.mean;
      m = model_moments(x, l, ch, shift);
      (*second_passes)++;
    }
    const double invstd = fg_bn_invstd(m.var, eps);
    save_mean[ch] = (float)m.mean;
    save_invstd[ch] = (float)invstd;
    if (rm) {
      rm[ch] = fg_bn_running_mean(rm[ch], momentum, m.mean);
      rv[ch] = fg_bn_running_var(rv[ch], momentum, m.var, unbias);
    }
    const fg_bn_affine k = fg_bn_train_affine(m.mean, invstd, gamma[ch], beta[ch]);
    for (int t = 0; t < BLOCK; t++)
      for (fg_bn_cursor c = fg_bn_cursor_start(l, t, BLOCK); c.j < l->count; fg_bn_cursor_next(l, &c)) {
        const int64_t off = fg_bn_cursor_offset(l, ch, &c);
        y[off] = fg_bn_normalise(&k, x[off]);
      }
  }
}

/* bn_forward_eval_kernel (which element a thread takes does not change its value). */
static void model_forward_eval(const float *x, const fg_bn_layout *l, const float *gamma, const float *beta,
                               const float *rm, const float *rv, float eps, float *y) {
  for (int64_t ch = 0; ch < l->channels; ch++) {
    const fg_bn_affine k = fg_bn_eval_affine(rm[ch], rv[ch], eps, gamma[ch], beta[ch]);
    for (int64_t j = 0; j < l->count; j++) {
      const int64_t off = fg_bn_offset(l, ch, j);
      y[off] = fg_bn_normalise(&k, x[off]);
    }
  }
}

/* bn_backward_kernel: dx (=|+=), dgamma, dbeta (each may be NULL). */
static void model_backward(const float *dy, const float *x, const fg_bn_layout *l, const float *gamma,
                           const float *mean, const float *invstd, float *dx, float *dgamma, float *dbeta,
                           int accumulate) {
  for (int64_t ch = 0; ch < l->channels; ch++) {
    double a[BLOCK], b[BLOCK];
    for (int t = 0; t < BLOCK; t++) fg_bn_thread_dy_sums(dy, x, l, ch, t, BLOCK, mean[ch], &a[t], &b[t]);
    const double sum_dy = block_sum(a), sum_dy_xc = block_sum(b);
    const fg_bn_grad k = fg_bn_grad_of(gamma[ch], invstd[ch], sum_dy, sum_dy_xc, l->count);
    if (dbeta) dbeta[ch] = (float)k.dbeta;
    if (dgamma) dgamma[ch] = (float)k.dgamma;
    if (!dx) continue;
    for (int64_t j = 0; j < l->count; j++) {
      const int64_t off = fg_bn_offset(l, ch, j);
      const float g = fg_bn_dx(&k, dy[off], x[off], mean[ch]);
      dx[off] = accumulate ? dx[off] + g : g;
    }
  }
}

/* ----------------------------------------------------------------------------------------- */
/* The channel cursor                                                                         */

/* The offsets of channel ch in the order j = start, start + step, ..., by nested loops over
 * images and plane positions (an independent enumeration), against the cursor and fg_bn_offset. */
static void check_walk(int64_t n, int64_t c, int64_t inner, int64_t ch, int64_t start, int64_t step) {
  const fg_bn_layout l = layout(n, c, inner);
  int64_t j = 0;
  fg_bn_cursor cur = fg_bn_cursor_start(&l, start, step);
  for (int64_t i = 0; i < n; i++)
    for (int64_t s = 0; s < inner; s++, j++) {
      if (j < start || (j - start) % step != 0) continue;
      const int64_t want = (i * c + ch) * inner + s;
      cr_assert_lt(cur.j, l.count, "n%lld c%lld inner%lld start%lld step%lld: the walk ended before j=%lld",
                   (long long)n, (long long)c, (long long)inner, (long long)start, (long long)step, (long long)j);
      cr_assert_eq(cur.j, j);
      cr_assert_eq(fg_bn_cursor_offset(&l, ch, &cur), want, "inner %lld step %lld j %lld", (long long)inner,
                   (long long)step, (long long)j);
      cr_assert_eq(fg_bn_offset(&l, ch, j), want);
      fg_bn_cursor_next(&l, &cur);
    }
  cr_assert_geq(cur.j, l.count, "the walk goes past the channel's %lld values", (long long)l.count);
}

Test(cuda_math_norm, cursor_visits_the_channel_in_order) {
  const int64_t inners[] = {1, 2, 3, 7, 255, 256, 257, 1000};
  const int64_t batches[] = {1, 3, 5};
  for (size_t a = 0; a < sizeof inners / sizeof inners[0]; a++)
    for (size_t b = 0; b < sizeof batches / sizeof batches[0]; b++) {
      const int64_t inner = inners[a], n = batches[b];
      check_walk(n, 4, inner, 2, 0, 1);
      check_walk(n, 4, inner, 0, 0, BLOCK);
      check_walk(n, 4, inner, 3, 17, BLOCK);
      check_walk(n, 4, inner, 1, BLOCK - 1, BLOCK);
      check_walk(n, 4, inner, 1, 300, 3 * BLOCK); /* the eval kernel's chunked walk */
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Forward and backward against the CPU backend and the references                            */

enum { DATA_PLAIN, DATA_OFFSET, DATA_FAR_FIRST };

typedef struct bn_case {
  int ndim; /* 2: [N,C]; 4: [N,C,inner,1] */
  int64_t n, c, inner;
  int data;
  const char *what;
} bn_case;

static const bn_case CASES[] = {
    {4, 2, 3, 35, DATA_PLAIN, "odd extents"},
    {4, 1, 5, 2, DATA_PLAIN, "N = 1, N*H*W = 2"},
    {4, 2, 4, 1, DATA_PLAIN, "[N,C,1,1], N*H*W = 2"},
    {2, 9, 6, 1, DATA_PLAIN, "[N,C]"},
    {2, 2, 3, 1, DATA_PLAIN, "[N,C], N = 2"},
    {4, 3, 2, 400, DATA_PLAIN, "planes longer than the block"},
    {4, 37, 2, 9, DATA_PLAIN, "a channel longer than the block, short planes"},
    {2, 300, 3, 1, DATA_PLAIN, "[N,C], channel longer than the block"},
    {4, 4, 16, 63, DATA_OFFSET, "offset 1e3, spread 1e-2"},
    {4, 8, 3, 9, DATA_FAR_FIRST, "first image far off (second pass)"},
    {2, 300, 2, 1, DATA_FAR_FIRST, "[N,C], first row far off (second pass)"},
};
enum { CASE_COUNT = sizeof CASES / sizeof CASES[0] };

/* The case's input x (count values per channel). */
static float *case_input(const bn_case *k, const fg_bn_layout *l, uint64_t seed) {
  const size_t numel = (size_t)(l->batch * l->channels * l->inner);
  float *x = frand(numel, seed, -2.0f, 2.0f);
  for (int64_t i = 0; i < l->batch; i++)
    for (int64_t ch = 0; ch < l->channels; ch++)
      for (int64_t s = 0; s < l->inner; s++) {
        float *v = &x[(i * l->channels + ch) * l->inner + s];
        if (k->data == DATA_OFFSET) *v = 1000.0f + 0.005f * *v;
        if (k->data == DATA_FAR_FIRST && i == 0) *v += 40.0f + (float)ch;
      }
  return x;
}

typedef struct bn_run {
  fg_bn_layout l;
  size_t numel;
  float *x, *gamma, *beta;
} bn_run;

static bn_run run_open(const bn_case *k, uint64_t seed) {
  bn_run r;
  r.l = layout(k->n, k->c, k->inner);
  r.numel = (size_t)(k->n * k->c * k->inner);
  r.x = case_input(k, &r.l, seed);
  r.gamma = frand((size_t)k->c, seed + 1, 0.5f, 1.5f);
  r.beta = frand((size_t)k->c, seed + 2, -0.5f, 0.5f);
  return r;
}

static void run_close(bn_run *r) {
  free(r->x);
  free(r->gamma);
  free(r->beta);
}

Test(cuda_math_norm, forward_train_matches_cpu_and_reference) {
  fgt_setup_cpu(1);
  const float momentum = 0.1f, eps = 1e-5f;
  for (int ci = 0; ci < CASE_COUNT; ci++) {
    const bn_case *k = &CASES[ci];
    bn_run r = run_open(k, 100 + (uint64_t)ci);
    const size_t c = (size_t)k->c;
    float *y = xmalloc(r.numel * sizeof *y), *cy = xmalloc(r.numel * sizeof *cy);
    float *mean = xmalloc(c * sizeof *mean), *invstd = xmalloc(c * sizeof *invstd);
    float *cmean = xmalloc(c * sizeof *cmean), *cinvstd = xmalloc(c * sizeof *cinvstd);
    float *rm = frand(c, 7, -1.0f, 1.0f), *rv = frand(c, 8, 0.5f, 2.0f);
    float *crm = xmalloc(c * sizeof *crm), *crv = xmalloc(c * sizeof *crv);
    memcpy(crm, rm, c * sizeof *rm);
    memcpy(crv, rv, c * sizeof *rv);
    double *dx = widen(r.x, r.numel), *dg = widen(r.gamma, c), *db = widen(r.beta, c);
    double *drm = widen(rm, c), *drv = widen(rv, c);
    double *ry = xmalloc(r.numel * sizeof *ry), *rmean = xmalloc(c * sizeof *rmean);
    double *rinvstd = xmalloc(c * sizeof *rinvstd);

    int second = 0;
    model_forward_train(r.x, &r.l, r.gamma, r.beta, y, mean, invstd, rm, rv, momentum, eps, &second);
    fg_tensor tx = tensor_of(r.x, &r.l, k->ndim), ty = tensor_of(cy, &r.l, k->ndim);
    fg_tensor tg = fg_tensor_1d(r.gamma, k->c), tb = fg_tensor_1d(r.beta, k->c);
    fg_tensor tm = fg_tensor_1d(cmean, k->c), ti = fg_tensor_1d(cinvstd, k->c);
    fg_tensor trm = fg_tensor_1d(crm, k->c), trv = fg_tensor_1d(crv, k->c);
    FGT_OK(fg_bn_forward_train(&tx, &tg, &tb, &ty, &tm, &ti, &trm, &trv, momentum, eps));
    fg_ref_bn_forward_train(dx, k->n, k->c, k->inner, dg, db, eps, momentum, ry, rmean, rinvstd, drm, drv);

    cr_log_info("%s: %d channel(s) took the second pass", k->what, second);
    if (k->data == DATA_FAR_FIRST) cr_expect_eq(second, k->c, "%s: every channel needs the second pass", k->what);
    char what[128];
    snprintf(what, sizeof what, "%s: mean vs reference", k->what);
    expect_close(what, mean, rmean, c, MEAN_ATOL, MEAN_RTOL);
    snprintf(what, sizeof what, "%s: invstd vs reference", k->what);
    expect_close(what, invstd, rinvstd, c, 0.0, STATS_RTOL);
    snprintf(what, sizeof what, "%s: running mean vs reference", k->what);
    expect_close(what, rm, drm, c, MEAN_ATOL, MEAN_RTOL);
    snprintf(what, sizeof what, "%s: running var vs reference", k->what);
    expect_close(what, rv, drv, c, 0.0, STATS_RTOL);
    snprintf(what, sizeof what, "%s: y vs reference", k->what);
    expect_close(what, y, ry, r.numel, CLASS_ATOL, CLASS_RTOL);
    snprintf(what, sizeof what, "%s: mean vs CPU", k->what);
    expect_close_f(what, mean, cmean, c, MEAN_ATOL, MEAN_RTOL);
    snprintf(what, sizeof what, "%s: invstd vs CPU", k->what);
    expect_close_f(what, invstd, cinvstd, c, 0.0, STATS_RTOL);
    snprintf(what, sizeof what, "%s: running var vs CPU", k->what);
    expect_close_f(what, rv, crv, c, 0.0, STATS_RTOL);
    snprintf(what, sizeof what, "%s: y vs CPU", k->what);
    expect_close_f(what, y, cy, r.numel, CLASS_ATOL, CLASS_RTOL);

    free(y), free(cy), free(mean), free(invstd), free(cmean), free(cinvstd), free(rm), free(rv);
    free(crm), free(crv), free(dx), free(dg), free(db), free(drm), free(drv), free(ry), free(rmean);
    free(rinvstd);
    run_close(&r);
  }
}

/* The forward in place (y = x), as the op allows: the statistics are complete before any write. */
Test(cuda_math_norm, forward_train_in_place_equals_out_of_place) {
  const bn_case *k = &CASES[5];
  bn_run r = run_open(k, 42);
  const size_t c = (size_t)k->c;
  float *y = xmalloc(r.numel * sizeof *y), *m1 = xmalloc(c * 4), *i1 = xmalloc(c * 4);
  float *m2 = xmalloc(c * 4), *i2 = xmalloc(c * 4);
  int second;
  model_forward_train(r.x, &r.l, r.gamma, r.beta, y, m1, i1, NULL, NULL, 0.1f, 1e-5f, &second);
  model_forward_train(r.x, &r.l, r.gamma, r.beta, r.x, m2, i2, NULL, NULL, 0.1f, 1e-5f, &second);
  expect_bitwise("in place y", r.x, y, r.numel);
  expect_bitwise("in place mean", m2, m1, c);
  free(y), free(m1), free(i1), free(m2), free(i2);
  run_close(&r);
}

Test(cuda_math_norm, forward_eval_is_the_cpus_bit_for_bit) {
  fgt_setup_cpu(1);
  const float eps = 1e-5f;
  for (int ci = 0; ci < CASE_COUNT; ci++) {
    const bn_case *k = &CASES[ci];
    bn_run r = run_open(k, 200 + (uint64_t)ci);
    const size_t c = (size_t)k->c;
    float *rm = frand(c, 9, -1.0f, 1.0f), *rv = frand(c, 10, 0.01f, 3.0f);
    if (k->data == DATA_OFFSET)
      for (size_t i = 0; i < c; i++) rm[i] += 1000.0f;
    float *y = xmalloc(r.numel * sizeof *y), *cy = xmalloc(r.numel * sizeof *cy);
    double *dxd = widen(r.x, r.numel), *dg = widen(r.gamma, c), *db = widen(r.beta, c);
    double *drm = widen(rm, c), *drv = widen(rv, c), *ry = xmalloc(r.numel * sizeof *ry);

    model_forward_eval(r.x, &r.l, r.gamma, r.beta, rm, rv, eps, y);
    fg_tensor tx = tensor_of(r.x, &r.l, k->ndim), ty = tensor_of(cy, &r.l, k->ndim);
    fg_tensor tg = fg_tensor_1d(r.gamma, k->c), tb = fg_tensor_1d(r.beta, k->c);
    fg_tensor trm = fg_tensor_1d(rm, k->c), trv = fg_tensor_1d(rv, k->c);
    FGT_OK(fg_bn_forward_eval(&tx, &tg, &tb, &trm, &trv, eps, &ty));
    fg_ref_bn_forward_eval(dxd, k->n, k->c, k->inner, dg, db, drm, drv, eps, ry);

    char what[128];
    snprintf(what, sizeof what, "%s: eval y vs CPU", k->what);
    expect_bitwise(what, y, cy, r.numel);
    snprintf(what, sizeof what, "%s: eval y vs reference", k->what);
    expect_close(what, y, ry, r.numel, CLASS_ATOL, CLASS_RTOL);

    free(rm), free(rv), free(y), free(cy), free(dxd), free(dg), free(db), free(drm), free(drv), free(ry);
    run_close(&r);
  }
}

Test(cuda_math_norm, backward_matches_cpu_and_reference) {
  fgt_setup_cpu(1);
  for (int ci = 0; ci < CASE_COUNT; ci++) {
    const bn_case *k = &CASES[ci];
    /* The saved mean is the batch mean rounded to float: with a spread 1e5 below the offset that
     * rounding alone moves the gradient beyond the class, for any backend (tests/ops/test_bn.c). */
    if (k->data == DATA_OFFSET) continue;
    bn_run r = run_open(k, 300 + (uint64_t)ci);
    const size_t c = (size_t)k->c;
    float *mean = xmalloc(c * 4), *invstd = xmalloc(c * 4), *y = xmalloc(r.numel * 4);
    int second;
    model_forward_train(r.x, &r.l, r.gamma, r.beta, y, mean, invstd, NULL, NULL, 0.0f, 1e-5f, &second);
    float *dy = frand(r.numel, 400 + (uint64_t)ci, -1.0f, 1.0f);
    float *init = frand(r.numel, 500 + (uint64_t)ci, -1.0f, 1.0f);
    float *gx = xmalloc(r.numel * 4), *cgx = xmalloc(r.numel * 4);
    float *gg = xmalloc(c * 4), *gb = xmalloc(c * 4), *cgg = xmalloc(c * 4), *cgb = xmalloc(c * 4);
    double *ddy = widen(dy, r.numel), *dxd = widen(r.x, r.numel), *dg = widen(r.gamma, c);
    double *dmean = widen(mean, c), *dinvstd = widen(invstd, c);
    double *rgx = xmalloc(r.numel * 8), *rgg = xmalloc(c * 8), *rgb = xmalloc(c * 8);
    fg_ref_bn_backward(ddy, dxd, k->n, k->c, k->inner, dg, dmean, dinvstd, rgx, rgg, rgb);

    for (int accumulate = 0; accumulate <= 1; accumulate++) {
      memcpy(gx, init, r.numel * 4);
      memcpy(cgx, init, r.numel * 4);
      model_backward(dy, r.x, &r.l, r.gamma, mean, invstd, gx, gg, gb, accumulate);
      fg_tensor tdy = tensor_of(dy, &r.l, k->ndim), tx = tensor_of(r.x, &r.l, k->ndim);
      fg_tensor tdx = tensor_of(cgx, &r.l, k->ndim), tg = fg_tensor_1d(r.gamma, k->c);
      fg_tensor tm = fg_tensor_1d(mean, k->c), ti = fg_tensor_1d(invstd, k->c);
      fg_tensor tdg = fg_tensor_1d(cgg, k->c), tdb = fg_tensor_1d(cgb, k->c);
      FGT_OK(fg_bn_backward(&tdy, &tx, &tg, &tm, &ti, &tdx, &tdg, &tdb, accumulate));

      double *want = xmalloc(r.numel * 8);
      for (size_t i = 0; i < r.numel; i++) want[i] = rgx[i] + (accumulate ? (double)init[i] : 0.0);
      char what[160];
      snprintf(what, sizeof what, "%s (accumulate %d): dx vs reference", k->what, accumulate);
      expect_close(what, gx, want, r.numel, CLASS_ATOL, CLASS_RTOL);
      snprintf(what, sizeof what, "%s (accumulate %d): dx vs CPU", k->what, accumulate);
      expect_close_f(what, gx, cgx, r.numel, CLASS_ATOL, CLASS_RTOL);
      snprintf(what, sizeof what, "%s: dgamma vs reference", k->what);
      expect_close(what, gg, rgg, c, CLASS_ATOL, CLASS_RTOL);
      snprintf(what, sizeof what, "%s: dbeta vs reference", k->what);
      expect_close(what, gb, rgb, c, CLASS_ATOL, CLASS_RTOL);
      snprintf(what, sizeof what, "%s: dgamma vs CPU", k->what);
      expect_close_f(what, gg, cgg, c, CLASS_ATOL, CLASS_RTOL);
      snprintf(what, sizeof what, "%s: dbeta vs CPU", k->what);
      expect_close_f(what, gb, cgb, c, CLASS_ATOL, CLASS_RTOL);
      free(want);
    }
    free(mean), free(invstd), free(y), free(dy), free(init), free(gx), free(cgx), free(gg), free(gb);
    free(cgg), free(cgb), free(ddy), free(dxd), free(dg), free(dmean), free(dinvstd), free(rgx), free(rgg);
    free(rgb);
    run_close(&r);
  }
}

/* dx, dgamma and dbeta are each optional; the ones given do not depend on the others. */
Test(cuda_math_norm, backward_outputs_are_independent) {
  const bn_case *k = &CASES[0];
  bn_run r = run_open(k, 77);
  const size_t c = (size_t)k->c;
  float *mean = xmalloc(c * 4), *invstd = xmalloc(c * 4), *y = xmalloc(r.numel * 4);
  int second;
  model_forward_train(r.x, &r.l, r.gamma, r.beta, y, mean, invstd, NULL, NULL, 0.0f, 1e-5f, &second);
  float *dy = frand(r.numel, 78, -1.0f, 1.0f);
  float *gx = xmalloc(r.numel * 4), *gx2 = xmalloc(r.numel * 4);
  float *gg = xmalloc(c * 4), *gb = xmalloc(c * 4), *gg2 = xmalloc(c * 4), *gb2 = xmalloc(c * 4);
  model_backward(dy, r.x, &r.l, r.gamma, mean, invstd, gx, gg, gb, 0);
  model_backward(dy, r.x, &r.l, r.gamma, mean, invstd, gx2, NULL, NULL, 0);
  model_backward(dy, r.x, &r.l, r.gamma, mean, invstd, NULL, gg2, NULL, 0);
  model_backward(dy, r.x, &r.l, r.gamma, mean, invstd, NULL, NULL, gb2, 0);
  expect_bitwise("dx alone", gx2, gx, r.numel);
  expect_bitwise("dgamma alone", gg2, gg, c);
  expect_bitwise("dbeta alone", gb2, gb, c);
  free(mean), free(invstd), free(y), free(dy), free(gx), free(gx2), free(gg), free(gb), free(gg2), free(gb2);
  run_close(&r);
}

/* ----------------------------------------------------------------------------------------- */
/* Hand-derived values                                                                        */

/* One channel x = 1, 2, 3, 4: mean 2.5, biased variance 1.25, unbiased 5/3. Running statistics
 * 1 and 2 with momentum 0.1 become 0.9 + 0.25 = 1.15 and 1.8 + 0.1 * 5/3 = 1.9666...; the
 * normalised values are (x - 2.5) / sqrt(1.25) = -1.3416408, -0.4472136, 0.4472136, 1.3416408. */
Test(cuda_math_norm, hand_derived_statistics) {
  float x[4] = {1, 2, 3, 4}, gamma[1] = {1}, beta[1] = {0}, y[4], mean[1], invstd[1];
  float rm[1] = {1}, rv[1] = {2};
  const fg_bn_layout l = layout(4, 1, 1);
  int second;
  model_forward_train(x, &l, gamma, beta, y, mean, invstd, rm, rv, 0.1f, 0.0f, &second);
  cr_expect_eq(second, 0);
  cr_expect_eq(mean[0], 2.5f);
  cr_expect_float_eq(invstd[0], 0.89442719f, 1e-7f);
  cr_expect_float_eq(rm[0], 1.15f, 1e-7f);
  cr_expect_float_eq(rv[0], 1.96666667f, 2e-7f);
  const float want[4] = {-1.34164079f, -0.44721360f, 0.44721360f, 1.34164079f};
  for (int i = 0; i < 4; i++) cr_expect_float_eq(y[i], want[i], 2e-7f, "y[%d] = %.9g", i, (double)y[i]);
}

/* Without running statistics the update is skipped (NULL), and momentum 0 keeps them, 1 replaces
 * them by the batch's (mean 2.5, unbiased variance 5/3). */
Test(cuda_math_norm, running_statistics_momentum_bounds) {
  cr_expect_eq(fg_bn_running_mean(7.0f, 0.0f, 2.5), 7.0f);
  cr_expect_eq(fg_bn_running_var(3.0f, 0.0f, 1.25, fg_bn_unbias(4)), 3.0f);
  cr_expect_eq(fg_bn_running_mean(7.0f, 1.0f, 2.5), 2.5f);
  cr_expect_float_eq(fg_bn_running_var(3.0f, 1.0f, 1.25, fg_bn_unbias(4)), 5.0f / 3.0f, 1e-7f);
  cr_expect_eq(fg_bn_unbias(2), 2.0);
}

/* Image 0 = {10, 10}, images 1..7 = {0, 0}: shift 10 (the first plane's mean), mean 1.25,
 * variance (2 * 8.75^2 + 14 * 1.25^2) / 16 = 10.9375; the shift is 8.75 off, more than two
 * standard deviations (sqrt(4 * 10.9375) = 6.61), so the sums are taken again around 1.25. Every
 * value here is exact in binary, so both passes give exactly these. */
Test(cuda_math_norm, hand_derived_second_pass) {
  float x[16] = {10, 10};
  const fg_bn_layout l = layout(8, 1, 2);
  double part[BLOCK];
  for (int t = 0; t < BLOCK; t++) part[t] = fg_bn_thread_plane_sum(x, &l, 0, t, BLOCK);
  const float shift = fg_bn_shift(block_sum(part), l.inner);
  cr_expect_eq(shift, 10.0f);
  const fg_bn_moments m = model_moments(x, &l, 0, shift);
  cr_expect_eq(m.mean, 1.25);
  cr_expect_eq(m.var, 10.9375);
  cr_expect(fg_bn_needs_second_pass(&m, shift));
  const fg_bn_moments m2 = model_moments(x, &l, 0, (float)m.mean);
  cr_expect_eq(m2.mean, 1.25);
  cr_expect_eq(m2.var, 10.9375);
  cr_expect_not(fg_bn_needs_second_pass(&m2, (float)m.mean));
  /* A shift exactly two standard deviations off does not trigger it (strict). */
  const fg_bn_moments edge = {2.0, 1.0};
  cr_expect_not(fg_bn_needs_second_pass(&edge, 0.0f));
}

/* The backward by hand: x = 1, 2, 3, 4 (mean 2.5, invstd 1/sqrt(1.25)), gamma 2, dy = 1, 0, 0, 0:
 * dbeta = 1, dgamma = xhat_0 = -1.5 invstd, and dx = gamma invstd (dy - 1/4 - xhat xhat_0 / 4). */
Test(cuda_math_norm, hand_derived_backward) {
  const float x[4] = {1, 2, 3, 4}, dy[4] = {1, 0, 0, 0}, gamma[1] = {2};
  const double is = 1.0 / sqrt(1.25);
  const float mean[1] = {2.5f}, invstd[1] = {(float)is};
  float dx[4], dg[1], db[1];
  const fg_bn_layout l = layout(4, 1, 1);
  model_backward(dy, x, &l, gamma, mean, invstd, dx, dg, db, 0);
  cr_expect_eq(db[0], 1.0f);
  cr_expect_float_eq(dg[0], (float)(-1.5 * is), 2e-7f);
  const double xhat0 = -1.5 * is;
  for (int i = 0; i < 4; i++) {
    const double xhat = (x[i] - 2.5) * is;
    const double want = 2.0 * is * (dy[i] - 0.25 - xhat * xhat0 / 4.0);
    cr_expect_float_eq(dx[i], (float)want, 1e-6f, "dx[%d] = %.9g, want %.9g", i, (double)dx[i], want);
  }
}
