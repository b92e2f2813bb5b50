/* Convolution, linear and pooling ops: the CPU backend against the double-precision references
 * (cpu/ref/ref_nn.h) on a table of shapes, the references against central finite differences,
 * the float ops against directional finite differences, hand-built max-pool ties and padding,
 * bit-identical results for 1 and 2 threads, exact workspace sizes, and argument validation. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "ref/ref_nn.h"
#include "engine/backend/ops.h"

/* float32 vs double reference. Inputs are O(1) and every output is a sum of at most a few
 * hundred O(1) products (conv: C/groups*k*k <= 147 terms forward, N*Ho*Wo <= 429 terms for the
 * weight gradient); float rounding of such sums stays below ~1e-6 typically and ~1e-5 in the
 * worst case, far from what an indexing bug produces (errors of O(0.1..1)). */
#define NN_ATOL 1e-5
#define NN_RTOL 1e-4

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static void setup_two_threads(void) { fgt_setup_cpu(2); }

static float *fbuf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof(float));
  cr_assert_not_null(p);
  return p;
}

static double *dbuf(size_t n) {
  double *p = malloc((n ? n : 1) * sizeof(double));
  cr_assert_not_null(p);
  return p;
}

static float *frand(size_t n, uint64_t seed) {
  float *p = fbuf(n);
  fgt_fill_uniform(p, n, seed, -1.0f, 1.0f);
  return p;
}

static double *widen(const float *f, size_t n) {
  double *d = dbuf(n);
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

static void fill_nan(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = NAN;
}

static void expect_close(const char *what, const char *case_name, const float *got,
                         const double *want, size_t n) {
  char msg[256];
  cr_assert(fgt_allclose(got, want, n, NN_ATOL, NN_RTOL, msg, sizeof msg), "%s [%s]: %s", what,
            case_name, msg);
}

static fg_workspace workspace_alloc(size_t bytes) {
  fg_workspace ws = {NULL, bytes};
  if (bytes) {
    ws.ptr = aligned_alloc(64, (bytes + 63) / 64 * 64);
    cr_assert_not_null(ws.ptr);
    fill_nan(ws.ptr, bytes / sizeof(float)); /* stale garbage must never be read */
  }
  return ws;
}

static double dot_fd(const float *y, const double *r, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += (double)y[i] * r[i];
  return s;
}

static double dot_dd(const double *a, const double *b, size_t n) {
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/* Values 0.05 apart (no ties, no near ties), shuffled, centred on 0. */
static void fill_distinct(float *x, size_t n, uint64_t seed) {
  uint32_t *perm = malloc(n * sizeof *perm);
  cr_assert_not_null(perm);
  for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  float *noise = frand(n, seed);
  for (size_t i = n; i > 1; i--) { /* Fisher-Yates driven by the test stream */
    size_t j = (size_t)((noise[i - 1] + 1.0f) * 0.5f * (float)i);
    if (j >= i) j = i - 1;
    uint32_t t = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = t;
  }
  for (size_t i = 0; i < n; i++) x[i] = 0.05f * ((float)perm[i] - (float)n / 2);
  free(noise);
  free(perm);
}

/* ----------------------------------------------------------------------------------------- */
/* Convolution vs reference                                                                   */

typedef struct conv_case {
  int n, c, h, w, o, k, stride, pad, groups;
} conv_case;

static const conv_case conv_cases[] = {
    /* n  c   h   w   o  k  s  p  g */
    {1, 3, 7, 9, 5, 3, 1, 1, 1},     /* odd sizes, 3x3 "same" */
    {3, 4, 11, 10, 6, 3, 2, 1, 1},   /* stride 2 */
    {3, 5, 9, 9, 7, 3, 1, 0, 1},     /* pad 0 */
    {3, 5, 9, 9, 7, 1, 1, 0, 1},     /* 1x1 stride 1 pad 0: the direct path */
    {3, 6, 8, 7, 4, 1, 2, 0, 1},     /* 1x1 stride 2 (ResNet shortcut) */
    {2, 3, 6, 5, 5, 1, 1, 1, 1},     /* 1x1 pad 1 */
    {3, 3, 13, 11, 5, 7, 2, 3, 1},   /* 7x7 pad 3 stride 2 */
    {1, 2, 5, 6, 3, 7, 1, 3, 1},     /* 7x7 pad 3 on an input smaller than the kernel */
    {1, 5, 10, 9, 5, 3, 1, 1, 5},    /* depthwise */
    {3, 6, 9, 11, 12, 3, 2, 0, 6},   /* depthwise, channel multiplier 2, stride 2, pad 0 */
    {5, 6, 7, 7, 9, 3, 1, 1, 3},     /* groups 3, more images than lanes */
    {6, 4, 5, 5, 8, 1, 1, 0, 2},     /* direct and grouped, more images than lanes */
    {9, 3, 6, 7, 5, 3, 2, 1, 1},     /* 9 images over 4 lanes: uneven lanes */
};

typedef struct conv_data {
  conv_case cc;
  fg_conv_desc desc;
  fg_ref_conv2d_shape s;
  int64_t ho, wo;
  size_t nx, nw, ny;
  char name[96];
} conv_data;

static conv_data conv_setup(const conv_case *cc) {
  conv_data d;
  d.cc = *cc;
  d.desc = (fg_conv_desc){cc->stride, cc->pad, cc->groups};
  d.s = (fg_ref_conv2d_shape){cc->n, cc->c, cc->h, cc->w, cc->o, cc->k, cc->k,
                              cc->stride, cc->pad, cc->groups};
  d.ho = fg_ref_conv2d_out_h(&d.s);
  d.wo = fg_ref_conv2d_out_w(&d.s);
  d.nx = (size_t)(cc->n * cc->c * cc->h * cc->w);
  d.nw = (size_t)(cc->o * (cc->c / cc->groups) * cc->k * cc->k);
  d.ny = (size_t)(cc->n * cc->o * d.ho * d.wo);
  snprintf(d.name, sizeof d.name, "n%d c%d %dx%d o%d k%d s%d p%d g%d", cc->n, cc->c, cc->h, cc->w,
           cc->o, cc->k, cc->stride, cc->pad, cc->groups);
  return d;
}

static void run_conv_case(const conv_case *cc, uint64_t seed) {
  conv_data d = conv_setup(cc);
  float *x = frand(d.nx, seed), *w = frand(d.nw, seed + 1), *b = frand((size_t)cc->o, seed + 2);
  float *dy = frand(d.ny, seed + 3), *dx0 = frand(d.nx, seed + 4);
  float *y = fbuf(d.ny), *dx = fbuf(d.nx), *dw = fbuf(d.nw), *db = fbuf((size_t)cc->o);
  double *xd = widen(x, d.nx), *wd = widen(w, d.nw), *bd = widen(b, (size_t)cc->o);
  double *dyd = widen(dy, d.ny), *dx0d = widen(dx0, d.nx);
  double *yr = dbuf(d.ny), *dxr = dbuf(d.nx), *dwr = dbuf(d.nw), *dbr = dbuf((size_t)cc->o);

  fg_tensor tx = fg_tensor_4d(x, cc->n, cc->c, cc->h, cc->w);
  fg_tensor tw = fg_tensor_4d(w, cc->o, cc->c / cc->groups, cc->k, cc->k);
  fg_tensor tb = fg_tensor_1d(b, cc->o);
  fg_tensor ty = fg_tensor_4d(y, cc->n, cc->o, d.ho, d.wo);
  fg_tensor tdy = fg_tensor_4d(dy, cc->n, cc->o, d.ho, d.wo);
  fg_tensor tdx = fg_tensor_4d(dx, cc->n, cc->c, cc->h, cc->w);
  fg_tensor tdw = fg_tensor_4d(dw, cc->o, cc->c / cc->groups, cc->k, cc->k);
  fg_tensor tdb = fg_tensor_1d(db, cc->o);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace(&d.desc, &tx, &tw, &bytes));
  fg_workspace ws = workspace_alloc(bytes);

  for (int with_bias = 0; with_bias <= 1; with_bias++) {
    fill_nan(y, d.ny);
    FGT_OK(fg_conv2d_forward(&d.desc, &tx, &tw, with_bias ? &tb : NULL, &ty, ws));
    fg_ref_conv2d_forward(&d.s, xd, wd, with_bias ? bd : NULL, yr);
    expect_close(with_bias ? "conv forward with bias" : "conv forward", d.name, y, yr, d.ny);
  }

  fill_nan(dx, d.nx);
  FGT_OK(fg_conv2d_backward_data(&d.desc, &tdy, &tw, &tdx, 0, ws));
  fg_ref_conv2d_backward_data(&d.s, dyd, wd, dxr, 0);
  expect_close("conv backward_data", d.name, dx, dxr, d.nx);

  memcpy(dx, dx0, d.nx * sizeof(float));
  memcpy(dxr, dx0d, d.nx * sizeof(double));
  FGT_OK(fg_conv2d_backward_data(&d.desc, &tdy, &tw, &tdx, 1, ws));
  fg_ref_conv2d_backward_data(&d.s, dyd, wd, dxr, 1);
  expect_close("conv backward_data accumulate", d.name, dx, dxr, d.nx);

  fill_nan(dw, d.nw);
  fill_nan(db, (size_t)cc->o);
  FGT_OK(fg_conv2d_backward_filter(&d.desc, &tx, &tdy, &tdw, &tdb, ws));
  fg_ref_conv2d_backward_filter(&d.s, xd, dyd, dwr, dbr);
  expect_close("conv backward_filter dw", d.name, dw, dwr, d.nw);
  expect_close("conv backward_filter dbias", d.name, db, dbr, (size_t)cc->o);

  fill_nan(dw, d.nw);
  FGT_OK(fg_conv2d_backward_filter(&d.desc, &tx, &tdy, &tdw, NULL, ws));
  expect_close("conv backward_filter dw without dbias", d.name, dw, dwr, d.nw);

  free(ws.ptr);
  free(x), free(w), free(b), free(dy), free(dx0), free(y), free(dx), free(dw), free(db);
  free(xd), free(wd), free(bd), free(dyd), free(dx0d), free(yr), free(dxr), free(dwr), free(dbr);
}

Test(conv2d, matches_reference, .init = setup_two_threads) {
  for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++)
    run_conv_case(&conv_cases[i], 100 + 10 * i);
}

Test(conv2d, out_extent) {
  cr_assert_eq(fg_conv_out_extent(28, 3, 1, 1), 28);
  cr_assert_eq(fg_conv_out_extent(28, 3, 2, 1), 14);
  cr_assert_eq(fg_conv_out_extent(7, 2, 2, 0), 3);  /* floor */
  cr_assert_eq(fg_conv_out_extent(5, 7, 1, 3), 5);
  cr_assert_eq(fg_conv_out_extent(13, 7, 2, 3), 7);
  cr_assert_eq(fg_conv_out_extent(2, 5, 1, 1), 0);  /* kernel does not fit */
  cr_assert_eq(fg_conv_out_extent(8, 3, 0, 1), 0);  /* invalid stride */
}

/* ----------------------------------------------------------------------------------------- */
/* Linear vs reference                                                                        */

typedef struct linear_case {
  int n, in, out;
} linear_case;

static void run_linear_case(const linear_case *lc, uint64_t seed) {
  const size_t nx = (size_t)lc->n * lc->in, nw = (size_t)lc->out * lc->in;
  const size_t ny = (size_t)lc->n * lc->out, no = (size_t)lc->out;
  char name[64];
  snprintf(name, sizeof name, "n%d in%d out%d", lc->n, lc->in, lc->out);
  float *x = frand(nx, seed), *w = frand(nw, seed + 1), *b = frand(no, seed + 2);
  float *dy = frand(ny, seed + 3), *dx0 = frand(nx, seed + 4);
  float *y = fbuf(ny), *dx = fbuf(nx), *dw = fbuf(nw), *db = fbuf(no);
  double *xd = widen(x, nx), *wd = widen(w, nw), *bd = widen(b, no), *dyd = widen(dy, ny);
  double *yr = dbuf(ny), *dxr = widen(dx0, nx), *dwr = dbuf(nw), *dbr = dbuf(no);
  fg_tensor tx = fg_tensor_2d(x, lc->n, lc->in), tw = fg_tensor_2d(w, lc->out, lc->in);
  fg_tensor tb = fg_tensor_1d(b, lc->out), ty = fg_tensor_2d(y, lc->n, lc->out);
  fg_tensor tdy = fg_tensor_2d(dy, lc->n, lc->out), tdx = fg_tensor_2d(dx, lc->n, lc->in);
  fg_tensor tdw = fg_tensor_2d(dw, lc->out, lc->in), tdb = fg_tensor_1d(db, lc->out);

  for (int with_bias = 0; with_bias <= 1; with_bias++) {
    fill_nan(y, ny);
    FGT_OK(fg_linear_forward(&tx, &tw, with_bias ? &tb : NULL, &ty));
    fg_ref_linear_forward(lc->n, lc->in, lc->out, xd, wd, with_bias ? bd : NULL, yr);
    expect_close(with_bias ? "linear forward with bias" : "linear forward", name, y, yr, ny);
  }

  memcpy(dx, dx0, nx * sizeof(float));
  FGT_OK(fg_linear_backward_data(&tdy, &tw, &tdx, 1));
  fg_ref_linear_backward_data(lc->n, lc->in, lc->out, dyd, wd, dxr, 1);
  expect_close("linear backward_data accumulate", name, dx, dxr, nx);
  fill_nan(dx, nx);
  FGT_OK(fg_linear_backward_data(&tdy, &tw, &tdx, 0));
  fg_ref_linear_backward_data(lc->n, lc->in, lc->out, dyd, wd, dxr, 0);
  expect_close("linear backward_data", name, dx, dxr, nx);

  fg_ref_linear_backward_params(lc->n, lc->in, lc->out, xd, dyd, dwr, dbr);
  fill_nan(dw, nw);
  fill_nan(db, no);
  FGT_OK(fg_linear_backward_params(&tx, &tdy, &tdw, &tdb));
  expect_close("linear backward_params dw", name, dw, dwr, nw);
  expect_close("linear backward_params dbias", name, db, dbr, no);
  fill_nan(dw, nw);
  FGT_OK(fg_linear_backward_params(&tx, &tdy, &tdw, NULL));
  expect_close("linear backward_params dw only", name, dw, dwr, nw);
  fill_nan(db, no);
  FGT_OK(fg_linear_backward_params(&tx, &tdy, NULL, &tdb));
  expect_close("linear backward_params dbias only", name, db, dbr, no);

  free(x), free(w), free(b), free(dy), free(dx0), free(y), free(dx), free(dw), free(db);
  free(xd), free(wd), free(bd), free(dyd), free(yr), free(dxr), free(dwr), free(dbr);
}

Test(linear, matches_reference, .init = setup_two_threads) {
  const linear_case cases[] = {{1, 7, 5}, {3, 13, 11}, {17, 33, 10}, {64, 64, 10}, {5, 1, 3}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_linear_case(&cases[i], 300 + 10 * i);
}

/* ----------------------------------------------------------------------------------------- */
/* Pooling vs reference                                                                       */

typedef struct pool_case {
  int n, c, h, w, kernel, stride, pad;
} pool_case;

static void run_maxpool_case(const pool_case *pc, uint64_t seed) {
  fg_pool_desc desc = {pc->kernel, pc->stride, pc->pad};
  fg_ref_pool_shape s = {pc->n, pc->c, pc->h, pc->w, pc->kernel, pc->stride, pc->pad};
  const int64_t ho = fg_ref_pool_out_h(&s), wo = fg_ref_pool_out_w(&s);
  const size_t nx = (size_t)(pc->n * pc->c * pc->h * pc->w), ny = (size_t)(pc->n * pc->c * ho * wo);
  char name[80];
  snprintf(name, sizeof name, "n%d c%d %dx%d k%d s%d p%d", pc->n, pc->c, pc->h, pc->w, pc->kernel,
           pc->stride, pc->pad);
  float *x = frand(nx, seed), *dy = frand(ny, seed + 1), *dx0 = frand(nx, seed + 2);
  /* a few exact ties, so the first-maximum rule is exercised on random data too */
  for (size_t i = 0; i + 1 < nx; i += 7) x[i + 1] = x[i];
  float *y = fbuf(ny), *y2 = fbuf(ny), *dx = fbuf(nx);
  uint8_t *am = malloc(ny), *amr = malloc(ny);
  cr_assert(am && amr);
  double *xd = widen(x, nx), *dyd = widen(dy, ny), *yr = dbuf(ny), *dxr = widen(dx0, nx);
  int64_t sx[4] = {pc->n, pc->c, pc->h, pc->w}, sy[4] = {pc->n, pc->c, ho, wo};
  fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, sx);
  fg_tensor ty = fg_tensor_view(y, FG_F32, fg_host_device(), 4, sy);
  fg_tensor ty2 = fg_tensor_view(y2, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, sy);
  fg_tensor tdy = fg_tensor_view(dy, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tdx = fg_tensor_view(dx, FG_F32, fg_host_device(), 4, sx);

  fill_nan(y, ny);
  memset(am, 0xee, ny);
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, &tam));
  fg_ref_maxpool_forward(&s, xd, yr, amr);
  for (size_t i = 0; i < ny; i++) {
    cr_assert_eq((double)y[i], yr[i], "maxpool y [%s] at %zu: %g vs %g", name, i, y[i], yr[i]);
    cr_assert_eq(am[i], amr[i], "maxpool argmax [%s] at %zu: %d vs %d", name, i, am[i], amr[i]);
  }
  fill_nan(y2, ny);
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty2, NULL)); /* inference: no argmax */
  cr_assert(memcmp(y, y2, ny * sizeof(float)) == 0, "maxpool without argmax [%s]", name);

  memcpy(dx, dx0, nx * sizeof(float));
  FGT_OK(fg_maxpool_backward(&desc, &tdy, &tam, &tdx, 1));
  fg_ref_maxpool_backward(&s, dyd, amr, dxr, 1);
  expect_close("maxpool backward accumulate", name, dx, dxr, nx);
  fill_nan(dx, nx);
  FGT_OK(fg_maxpool_backward(&desc, &tdy, &tam, &tdx, 0));
  fg_ref_maxpool_backward(&s, dyd, amr, dxr, 0);
  expect_close("maxpool backward", name, dx, dxr, nx);

  free(x), free(dy), free(dx0), free(y), free(y2), free(dx), free(am), free(amr);
  free(xd), free(dyd), free(yr), free(dxr);
}

Test(maxpool, matches_reference, .init = setup_two_threads) {
  const pool_case cases[] = {
      {3, 4, 7, 9, 2, 2, 0},   /* the models' 2x2/2, odd extents (floor) */
      {1, 3, 8, 8, 2, 2, 0},
      {3, 2, 9, 7, 3, 2, 1},   /* overlapping windows with padding */
      {1, 5, 6, 5, 3, 1, 1},   /* stride 1: heavy overlap */
      {2, 3, 5, 6, 2, 1, 1},   /* windows hanging over both edges */
      {1, 2, 13, 11, 7, 2, 3}, /* big window */
      {2, 2, 5, 4, 1, 1, 0},   /* identity window */
      {1, 1, 16, 16, 16, 1, 0} /* kernel*kernel == 256: the largest u8 argmax */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    run_maxpool_case(&cases[i], 500 + 10 * i);
}

Test(avgpool_global, matches_reference, .init = setup_two_threads) {
  const int shapes[][4] = {{3, 5, 7, 6}, {1, 2, 1, 1}, {2, 64, 7, 7}, {1, 3, 1, 9}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const int n = shapes[k][0], c = shapes[k][1], h = shapes[k][2], w = shapes[k][3];
    const size_t nx = (size_t)(n * c * h * w), ny = (size_t)(n * c);
    char name[48];
    snprintf(name, sizeof name, "n%d c%d %dx%d", n, c, h, w);
    float *x = frand(nx, 700 + k), *dy = frand(ny, 710 + k), *dx0 = frand(nx, 720 + k);
    float *y = fbuf(ny), *dx = fbuf(nx);
    double *xd = widen(x, nx), *dyd = widen(dy, ny), *yr = dbuf(ny), *dxr = widen(dx0, nx);
    fg_tensor tx = fg_tensor_4d(x, n, c, h, w), ty = fg_tensor_2d(y, n, c);
    fg_tensor tdx = fg_tensor_4d(dx, n, c, h, w), tdy = fg_tensor_2d(dy, n, c);
    fill_nan(y, ny);
    FGT_OK(fg_avgpool_global_forward(&tx, &ty));
    fg_ref_avgpool_global_forward(n, c, h, w, xd, yr);
    expect_close("avgpool forward", name, y, yr, ny);
    memcpy(dx, dx0, nx * sizeof(float));
    FGT_OK(fg_avgpool_global_backward(&tdy, &tdx, 1));
    fg_ref_avgpool_global_backward(n, c, h, w, dyd, dxr, 1);
    expect_close("avgpool backward accumulate", name, dx, dxr, nx);
    fill_nan(dx, nx);
    FGT_OK(fg_avgpool_global_backward(&tdy, &tdx, 0));
    fg_ref_avgpool_global_backward(n, c, h, w, dyd, dxr, 0);
    expect_close("avgpool backward", name, dx, dxr, nx);
    free(x), free(dy), free(dx0), free(y), free(dx), free(xd), free(dyd), free(yr), free(dxr);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Max pool: ties and padding, by hand                                                        */

Test(maxpool, ties_pick_the_first_maximum, .init = setup_two_threads) {
  /* 2x2 stride 2 windows:  [1 3 | 3 0]   window (0,0) has 3 at positions 1 and 3 -> 1
   *                        [2 3 | 1 5]   window (0,1): 5 at position 3
   *                        [-1 -2|-3 -4] window (1,0): -1 at 0; window (1,1): -3 at 0
   *                        [-5 -6|-7 -8]                                                   */
  float x[16] = {1, 3, 3, 0, 2, 3, 1, 5, -1, -2, -3, -4, -5, -6, -7, -8};
  const float want_y[4] = {3, 5, -1, -3};
  const uint8_t want_arg[4] = {1, 3, 0, 0};
  float y[4];
  uint8_t am[4];
  int64_t sx[4] = {1, 1, 4, 4}, sy[4] = {1, 1, 2, 2};
  fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, sx);
  fg_tensor ty = fg_tensor_view(y, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, sy);
  fg_pool_desc desc = {2, 2, 0};
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, &tam));
  double xd[16], yr[4];
  uint8_t amr[4];
  for (int i = 0; i < 16; i++) xd[i] = x[i];
  fg_ref_pool_shape s = {1, 1, 4, 4, 2, 2, 0};
  fg_ref_maxpool_forward(&s, xd, yr, amr);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(y[i], want_y[i], "cpu y[%d] = %g, want %g", i, y[i], want_y[i]);
    cr_assert_eq(am[i], want_arg[i], "cpu argmax[%d] = %d, want %d", i, am[i], want_arg[i]);
    cr_assert_eq(yr[i], want_y[i], "ref y[%d] = %g, want %g", i, yr[i], want_y[i]);
    cr_assert_eq(amr[i], want_arg[i], "ref argmax[%d] = %d, want %d", i, amr[i], want_arg[i]);
  }
  /* backward: the gradient of the tied window goes to the first 3 (row 0, column 1) only */
  float dy[4] = {10, 20, 30, 40}, dx[16];
  fg_tensor tdy = fg_tensor_view(dy, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tdx = fg_tensor_view(dx, FG_F32, fg_host_device(), 4, sx);
  FGT_OK(fg_maxpool_backward(&desc, &tdy, &tam, &tdx, 0));
  const float want_dx[16] = {0, 10, 0, 0, 0, 0, 0, 20, 30, 0, 40, 0, 0, 0, 0, 0};
  for (int i = 0; i < 16; i++) cr_assert_eq(dx[i], want_dx[i], "dx[%d] = %g, want %g", i, dx[i], want_dx[i]);
}

Test(maxpool, padding_never_wins, .init = setup_two_threads) {
  /* All inputs negative, so a zero from the padding would win if it took part.
   *   -5 -2 -9      3x3 windows, stride 2, pad 1 -> 2x2 outputs; window (oy,ox) covers input
   *   -4 -7 -1      rows 2oy-1..2oy+1 and columns 2ox-1..2ox+1.
   *   -3 -6 -8
   * (0,0): max -2 at input (0,1) = window (1,2) -> 5;  (0,1): -1 at (1,2) = window (2,1) -> 7
   * (1,0): -3 at (2,0) = window (1,1) -> 4;            (1,1): -1 at (1,2) = window (0,1) -> 1 */
  float x[9] = {-5, -2, -9, -4, -7, -1, -3, -6, -8};
  const float want_y[4] = {-2, -1, -3, -1};
  const uint8_t want_arg[4] = {5, 7, 4, 1};
  float y[4];
  uint8_t am[4];
  int64_t sx[4] = {1, 1, 3, 3}, sy[4] = {1, 1, 2, 2};
  fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, sx);
  fg_tensor ty = fg_tensor_view(y, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, sy);
  fg_pool_desc desc = {3, 2, 1};
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, &tam));
  double xd[9], yr[4];
  uint8_t amr[4];
  for (int i = 0; i < 9; i++) xd[i] = x[i];
  fg_ref_pool_shape s = {1, 1, 3, 3, 3, 2, 1};
  fg_ref_maxpool_forward(&s, xd, yr, amr);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(y[i], want_y[i], "cpu y[%d] = %g, want %g", i, y[i], want_y[i]);
    cr_assert_eq(am[i], want_arg[i], "cpu argmax[%d] = %d, want %d", i, am[i], want_arg[i]);
    cr_assert_eq(yr[i], want_y[i], "ref y[%d] = %g, want %g", i, yr[i], want_y[i]);
    cr_assert_eq(amr[i], want_arg[i], "ref argmax[%d] = %d, want %d", i, amr[i], want_arg[i]);
  }
  /* backward: windows (0,1) and (1,1) both pick input (1,2): their gradients add up */
  float dy[4] = {1, 2, 3, 4}, dx[9];
  for (int i = 0; i < 9; i++) dx[i] = 100;
  fg_tensor tdy = fg_tensor_view(dy, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tdx = fg_tensor_view(dx, FG_F32, fg_host_device(), 4, sx);
  FGT_OK(fg_maxpool_backward(&desc, &tdy, &tam, &tdx, 1));
  const float want_dx[9] = {100, 101, 100, 100, 100, 106, 103, 100, 100};
  for (int i = 0; i < 9; i++) cr_assert_eq(dx[i], want_dx[i], "dx[%d] = %g, want %g", i, dx[i], want_dx[i]);
}

Test(maxpool, rejects_argmax_outside_the_input, .init = setup_two_threads) {
  float dy[4] = {1, 1, 1, 1}, dx[16];
  uint8_t am[4] = {0, 1, 200, 2}; /* 200 is no position of a 2x2 window */
  int64_t sx[4] = {1, 1, 4, 4}, sy[4] = {1, 1, 2, 2};
  fg_tensor tdy = fg_tensor_view(dy, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, sy);
  fg_tensor tdx = fg_tensor_view(dx, FG_F32, fg_host_device(), 4, sx);
  fg_pool_desc desc = {2, 2, 0};
  cr_assert_eq(fg_maxpool_backward(&desc, &tdy, &tam, &tdx, 0), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "argmax") != NULL, "%s", fg_last_error());
}

/* ----------------------------------------------------------------------------------------- */
/* Finite differences on the references (double)                                             */

/* L(params) = <op(params), r>; every element of `param` is perturbed by +-1e-6. The ops are
 * (piecewise) linear in each argument, so central differences have no truncation error and
 * only double rounding (~1e-9 here) separates them from the analytic gradient. */
typedef double (*loss_fn)(void *ctx);

static void check_fd(const char *what, loss_fn loss, void *ctx, double *param, size_t n,
                     const double *grad) {
  const double eps = 1e-6;
  for (size_t i = 0; i < n; i++) {
    const double keep = param[i];
    param[i] = keep + eps;
    const double lp = loss(ctx);
    param[i] = keep - eps;
    const double lm = loss(ctx);
    param[i] = keep;
    const double fd = (lp - lm) / (2 * eps);
    cr_assert(fabs(fd - grad[i]) <= 1e-7 + 1e-7 * fabs(grad[i]),
              "%s: element %zu: finite difference %.12g, backward %.12g", what, i, fd, grad[i]);
  }
}

static double *drand(size_t n, uint64_t seed) {
  double *p = dbuf(n);
  fgt_fill_uniform_double(p, n, seed, -1.0, 1.0);
  return p;
}

typedef struct conv_fd {
  fg_ref_conv2d_shape s;
  double *x, *w, *b, *r, *y;
  size_t ny;
} conv_fd;

static double conv_fd_loss(void *ctx) {
  conv_fd *c = ctx;
  fg_ref_conv2d_forward(&c->s, c->x, c->w, c->b, c->y);
  return dot_dd(c->y, c->r, c->ny);
}

Test(reference_fd, conv2d) {
  const conv_case cases[] = {
      {2, 4, 5, 4, 4, 3, 2, 1, 2}, /* grouped, stride 2, pad 1 */
      {1, 3, 4, 5, 3, 3, 1, 1, 3}, /* depthwise */
      {2, 2, 3, 3, 3, 1, 1, 0, 1}, /* 1x1 */
      {1, 2, 3, 4, 2, 7, 1, 3, 1}, /* 7x7 pad 3 */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    conv_data d = conv_setup(&cases[k]);
    conv_fd c = {d.s, drand(d.nx, 800 + k), drand(d.nw, 810 + k), drand((size_t)d.cc.o, 820 + k),
                 drand(d.ny, 830 + k), dbuf(d.ny), d.ny};
    double *dx = dbuf(d.nx), *dw = dbuf(d.nw), *db = dbuf((size_t)d.cc.o);
    fg_ref_conv2d_backward_data(&d.s, c.r, c.w, dx, 0);
    fg_ref_conv2d_backward_filter(&d.s, c.x, c.r, dw, db);
    char what[128];
    snprintf(what, sizeof what, "conv dx [%s]", d.name);
    check_fd(what, conv_fd_loss, &c, c.x, d.nx, dx);
    snprintf(what, sizeof what, "conv dw [%s]", d.name);
    check_fd(what, conv_fd_loss, &c, c.w, d.nw, dw);
    snprintf(what, sizeof what, "conv dbias [%s]", d.name);
    check_fd(what, conv_fd_loss, &c, c.b, (size_t)d.cc.o, db);
    free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db);
  }
}

typedef struct linear_fd {
  int64_t n, in, out;
  double *x, *w, *b, *r, *y;
} linear_fd;

static double linear_fd_loss(void *ctx) {
  linear_fd *c = ctx;
  fg_ref_linear_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
  return dot_dd(c->y, c->r, (size_t)(c->n * c->out));
}

Test(reference_fd, linear) {
  const int64_t n = 3, in = 5, out = 4;
  linear_fd c = {n, in, out, drand(n * in, 900), drand(out * in, 901), drand(out, 902),
                 drand(n * out, 903), dbuf(n * out)};
  double *dx = dbuf(n * in), *dw = dbuf(out * in), *db = dbuf(out);
  fg_ref_linear_backward_data(n, in, out, c.r, c.w, dx, 0);
  fg_ref_linear_backward_params(n, in, out, c.x, c.r, dw, db);
  check_fd("linear dx", linear_fd_loss, &c, c.x, n * in, dx);
  check_fd("linear dw", linear_fd_loss, &c, c.w, out * in, dw);
  check_fd("linear dbias", linear_fd_loss, &c, c.b, out, db);
  free(c.x), free(c.w), free(c.b), free(c.r), free(c.y), free(dx), free(dw), free(db);
}

typedef struct pool_fd {
  fg_ref_pool_shape s;
  double *x, *r, *y;
  size_t ny;
} pool_fd;

static double maxpool_fd_loss(void *ctx) {
  pool_fd *c = ctx;
  fg_ref_maxpool_forward(&c->s, c->x, c->y, NULL);
  return dot_dd(c->y, c->r, c->ny);
}

static double avgpool_fd_loss(void *ctx) {
  pool_fd *c = ctx;
  fg_ref_avgpool_global_forward(c->s.n, c->s.c, c->s.h, c->s.w, c->x, c->y);
  return dot_dd(c->y, c->r, c->ny);
}

Test(reference_fd, maxpool) {
  const fg_ref_pool_shape shapes[] = {{2, 2, 5, 5, 2, 2, 0}, {1, 2, 5, 4, 3, 2, 1},
                                      {1, 1, 4, 5, 3, 1, 1}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const fg_ref_pool_shape *s = &shapes[k];
    const size_t nx = (size_t)(s->n * s->c * s->h * s->w);
    const size_t ny = (size_t)(s->n * s->c * fg_ref_pool_out_h(s) * fg_ref_pool_out_w(s));
    float *xf = fbuf(nx);
    fill_distinct(xf, nx, 950 + k); /* no ties: the max is differentiable at these inputs */
    pool_fd c = {*s, widen(xf, nx), drand(ny, 960 + k), dbuf(ny), ny};
    uint8_t *am = malloc(ny);
    double *dx = dbuf(nx);
    cr_assert_not_null(am);
    fg_ref_maxpool_forward(s, c.x, c.y, am);
    fg_ref_maxpool_backward(s, c.r, am, dx, 0);
    check_fd("maxpool dx", maxpool_fd_loss, &c, c.x, nx, dx);
    free(xf), free(c.x), free(c.r), free(c.y), free(am), free(dx);
  }
}

Test(reference_fd, avgpool_global) {
  fg_ref_pool_shape s = {2, 3, 4, 3, 1, 1, 0}; /* only n, c, h, w are used */
  const size_t nx = 2 * 3 * 4 * 3, ny = 2 * 3;
  pool_fd c = {s, drand(nx, 970), drand(ny, 971), dbuf(ny), ny};
  double *dx = dbuf(nx);
  fg_ref_avgpool_global_backward(2, 3, 4, 3, c.r, dx, 0);
  check_fd("avgpool dx", avgpool_fd_loss, &c, c.x, nx, dx);
  free(c.x), free(c.r), free(c.y), free(dx);
}

/* ----------------------------------------------------------------------------------------- */
/* Directional finite differences on the float ops                                            */

/* For L = <y, r> (r fixed), compares L(p + e v) - L(p - e v) with <grad, (p + e v) - (p - e v)>
 * where the perturbed parameters are the float values actually used (so rounding of p +- e v
 * does not count as error). The remaining error is float rounding of y (~1e-7 relative per
 * element) against a difference of O(2 e sqrt(n)); 2e-3 relative leaves a wide margin while a
 * wrong gradient (wrong index, missing term, wrong sign) is off by O(1). */
static void perturb(const float *p, const float *v, float e, float *plus, float *minus, size_t n) {
  for (size_t i = 0; i < n; i++) {
    plus[i] = p[i] + e * v[i];
    minus[i] = p[i] - e * v[i];
  }
}

static void expect_directional(const char *what, double l_plus, double l_minus,
                               const float *grad, const float *plus, const float *minus,
                               size_t n) {
  double predicted = 0.0;
  for (size_t i = 0; i < n; i++) predicted += (double)grad[i] * ((double)plus[i] - minus[i]);
  const double fd = l_plus - l_minus;
  cr_assert(fabs(fd) > 1e-4, "%s: degenerate direction (difference %g)", what, fd);
  cr_assert(fabs(fd - predicted) <= 2e-3 * fabs(predicted) + 1e-6,
            "%s: L(p+ev) - L(p-ev) = %.9g, <grad, 2ev> = %.9g", what, fd, predicted);
}

Test(float_directional_fd, conv2d, .init = setup_two_threads) {
  const conv_case cases[] = {{3, 4, 9, 8, 6, 3, 2, 1, 2}, {2, 3, 7, 7, 4, 1, 1, 0, 1}};
  const float e = 1e-2f;
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    conv_data d = conv_setup(&cases[k]);
    const conv_case *cc = &d.cc;
    const size_t no = (size_t)cc->o;
    float *x = frand(d.nx, 1000 + k), *w = frand(d.nw, 1010 + k), *b = frand(no, 1020 + k);
    float *rf = frand(d.ny, 1030 + k), *y = fbuf(d.ny);
    double *r = widen(rf, d.ny);
    float *gx = fbuf(d.nx), *gw = fbuf(d.nw), *gb = fbuf(no);
    size_t nmax = d.nx > d.nw ? d.nx : d.nw;
    float *v = frand(nmax, 1040 + k), *plus = fbuf(nmax), *minus = fbuf(nmax);
    fg_tensor tx = fg_tensor_4d(x, cc->n, cc->c, cc->h, cc->w);
    fg_tensor tw = fg_tensor_4d(w, cc->o, cc->c / cc->groups, cc->k, cc->k);
    fg_tensor tb = fg_tensor_1d(b, cc->o), ty = fg_tensor_4d(y, cc->n, cc->o, d.ho, d.wo);
    fg_tensor tr = fg_tensor_4d(rf, cc->n, cc->o, d.ho, d.wo);
    fg_tensor tgx = fg_tensor_4d(gx, cc->n, cc->c, cc->h, cc->w);
    fg_tensor tgw = fg_tensor_4d(gw, cc->o, cc->c / cc->groups, cc->k, cc->k);
    fg_tensor tgb = fg_tensor_1d(gb, cc->o);
    size_t bytes = 0;
    FGT_OK(fg_conv2d_workspace(&d.desc, &tx, &tw, &bytes));
    fg_workspace ws = workspace_alloc(bytes);
    FGT_OK(fg_conv2d_backward_data(&d.desc, &tr, &tw, &tgx, 0, ws));
    FGT_OK(fg_conv2d_backward_filter(&d.desc, &tx, &tr, &tgw, &tgb, ws));

    /* each of x, w, bias in turn: swap the perturbed copy into the tensor's data pointer */
    float *params[3] = {x, w, b};
    fg_tensor *tensors[3] = {&tx, &tw, &tb};
    const float *grads[3] = {gx, gw, gb};
    const size_t counts[3] = {d.nx, d.nw, no};
    const char *names[3] = {"conv dx", "conv dw", "conv dbias"};
    for (int a = 0; a < 3; a++) {
      perturb(params[a], v, e, plus, minus, counts[a]);
      tensors[a]->data = plus;
      FGT_OK(fg_conv2d_forward(&d.desc, &tx, &tw, &tb, &ty, ws));
      const double lp = dot_fd(y, r, d.ny);
      tensors[a]->data = minus;
      FGT_OK(fg_conv2d_forward(&d.desc, &tx, &tw, &tb, &ty, ws));
      const double lm = dot_fd(y, r, d.ny);
      tensors[a]->data = params[a];
      char what[160];
      snprintf(what, sizeof what, "%s [%s]", names[a], d.name);
      expect_directional(what, lp, lm, grads[a], plus, minus, counts[a]);
    }
    free(ws.ptr);
    free(x), free(w), free(b), free(rf), free(y), free(r), free(gx), free(gw), free(gb);
    free(v), free(plus), free(minus);
  }
}

Test(float_directional_fd, linear, .init = setup_two_threads) {
  const int n = 7, in = 19, out = 6;
  const size_t nx = n * in, nw = out * in, ny = n * out;
  const float e = 1e-2f;
  float *x = frand(nx, 1100), *w = frand(nw, 1101), *b = frand(out, 1102);
  float *rf = frand(ny, 1103), *y = fbuf(ny), *gx = fbuf(nx), *gw = fbuf(nw), *gb = fbuf(out);
  const size_t nmax = nx > nw ? nx : nw;
  float *v = frand(nmax, 1104), *plus = fbuf(nmax), *minus = fbuf(nmax);
  double *r = widen(rf, ny);
  fg_tensor tx = fg_tensor_2d(x, n, in), tw = fg_tensor_2d(w, out, in), tb = fg_tensor_1d(b, out);
  fg_tensor ty = fg_tensor_2d(y, n, out), tr = fg_tensor_2d(rf, n, out);
  fg_tensor tgx = fg_tensor_2d(gx, n, in), tgw = fg_tensor_2d(gw, out, in);
  fg_tensor tgb = fg_tensor_1d(gb, out);
  FGT_OK(fg_linear_backward_data(&tr, &tw, &tgx, 0));
  FGT_OK(fg_linear_backward_params(&tx, &tr, &tgw, &tgb));
  float *params[3] = {x, w, b};
  fg_tensor *tensors[3] = {&tx, &tw, &tb};
  const float *grads[3] = {gx, gw, gb};
  const size_t counts[3] = {nx, nw, (size_t)out};
  const char *names[3] = {"linear dx", "linear dw", "linear dbias"};
  for (int a = 0; a < 3; a++) {
    perturb(params[a], v, e, plus, minus, counts[a]);
    tensors[a]->data = plus;
    FGT_OK(fg_linear_forward(&tx, &tw, &tb, &ty));
    const double lp = dot_fd(y, r, ny);
    tensors[a]->data = minus;
    FGT_OK(fg_linear_forward(&tx, &tw, &tb, &ty));
    const double lm = dot_fd(y, r, ny);
    tensors[a]->data = params[a];
    expect_directional(names[a], lp, lm, grads[a], plus, minus, counts[a]);
  }
  free(x), free(w), free(b), free(rf), free(y), free(gx), free(gw), free(gb);
  free(v), free(plus), free(minus), free(r);
}

Test(float_directional_fd, pools, .init = setup_two_threads) {
  const int n = 2, c = 3, h = 7, w = 6;
  const size_t nx = (size_t)(n * c * h * w);
  fg_pool_desc desc = {3, 2, 1};
  const int64_t ho = fg_conv_out_extent(h, 3, 2, 1), wo = fg_conv_out_extent(w, 3, 2, 1);
  const size_t ny = (size_t)(n * c * ho * wo), nv = (size_t)(n * c);
  /* inputs 0.05 apart and |e v| <= 0.01: no window changes its maximum */
  const float e = 1e-2f;
  float *x = fbuf(nx), *v = frand(nx, 1201), *plus = fbuf(nx), *minus = fbuf(nx);
  fill_distinct(x, nx, 1200);
  float *rf = frand(ny, 1202), *y = fbuf(ny), *gx = fbuf(nx);
  float *rv = frand(nv, 1203), *yv = fbuf(nv), *gv = fbuf(nx);
  uint8_t *am = malloc(ny);
  cr_assert_not_null(am);
  double *r = widen(rf, ny), *rvd = widen(rv, nv);
  int64_t sx[4] = {n, c, h, w}, sy[4] = {n, c, ho, wo};
  fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, sx);
  fg_tensor ty = fg_tensor_view(y, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tr = fg_tensor_view(rf, FG_F32, fg_host_device(), 4, sy);
  fg_tensor tam = fg_tensor_view(am, FG_U8, fg_host_device(), 4, sy);
  fg_tensor tgx = fg_tensor_view(gx, FG_F32, fg_host_device(), 4, sx);
  fg_tensor tyv = fg_tensor_2d(yv, n, c), trv = fg_tensor_2d(rv, n, c);
  fg_tensor tgv = fg_tensor_view(gv, FG_F32, fg_host_device(), 4, sx);
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, &tam));
  FGT_OK(fg_maxpool_backward(&desc, &tr, &tam, &tgx, 0));
  FGT_OK(fg_avgpool_global_backward(&trv, &tgv, 0));
  perturb(x, v, e, plus, minus, nx);

  tx.data = plus;
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, NULL));
  double lp = dot_fd(y, r, ny);
  FGT_OK(fg_avgpool_global_forward(&tx, &tyv));
  double lpv = dot_fd(yv, rvd, nv);
  tx.data = minus;
  FGT_OK(fg_maxpool_forward(&desc, &tx, &ty, NULL));
  double lm = dot_fd(y, r, ny);
  FGT_OK(fg_avgpool_global_forward(&tx, &tyv));
  double lmv = dot_fd(yv, rvd, nv);
  expect_directional("maxpool dx", lp, lm, gx, plus, minus, nx);
  expect_directional("avgpool dx", lpv, lmv, gv, plus, minus, nx);
  free(x), free(v), free(plus), free(minus), free(rf), free(y), free(gx), free(rv), free(yv);
  free(gv), free(am), free(r), free(rvd);
}

/* ----------------------------------------------------------------------------------------- */
/* Determinism across thread counts                                                           */

typedef struct conv_outputs {
  float *y, *dx, *dw, *db;
} conv_outputs;

/* Runs forward, backward-data (accumulating onto a fixed dx) and backward-filter on fixed
 * inputs with the backend's current thread count. */
static conv_outputs run_conv_all(const conv_case *cc) {
  conv_data d = conv_setup(cc);
  float *x = frand(d.nx, 1300), *w = frand(d.nw, 1301), *b = frand((size_t)cc->o, 1302);
  float *dy = frand(d.ny, 1303);
  conv_outputs out = {fbuf(d.ny), frand(d.nx, 1304), fbuf(d.nw), fbuf((size_t)cc->o)};
  fg_tensor tx = fg_tensor_4d(x, cc->n, cc->c, cc->h, cc->w);
  fg_tensor tw = fg_tensor_4d(w, cc->o, cc->c / cc->groups, cc->k, cc->k);
  fg_tensor tb = fg_tensor_1d(b, cc->o), ty = fg_tensor_4d(out.y, cc->n, cc->o, d.ho, d.wo);
  fg_tensor tdy = fg_tensor_4d(dy, cc->n, cc->o, d.ho, d.wo);
  fg_tensor tdx = fg_tensor_4d(out.dx, cc->n, cc->c, cc->h, cc->w);
  fg_tensor tdw = fg_tensor_4d(out.dw, cc->o, cc->c / cc->groups, cc->k, cc->k);
  fg_tensor tdb = fg_tensor_1d(out.db, cc->o);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace(&d.desc, &tx, &tw, &bytes));
  fg_workspace ws = workspace_alloc(bytes);
  FGT_OK(fg_conv2d_forward(&d.desc, &tx, &tw, &tb, &ty, ws));
  FGT_OK(fg_conv2d_backward_data(&d.desc, &tdy, &tw, &tdx, 1, ws));
  FGT_OK(fg_conv2d_backward_filter(&d.desc, &tx, &tdy, &tdw, &tdb, ws));
  free(ws.ptr), free(x), free(w), free(b), free(dy);
  return out;
}

static void free_outputs(conv_outputs *o) { free(o->y), free(o->dx), free(o->dw), free(o->db); }

Test(conv2d, bit_identical_for_one_and_two_threads) {
  const conv_case cases[] = {
      {7, 5, 12, 11, 8, 3, 1, 1, 1},  /* 7 images over 4 lanes, 2 threads share them */
      {3, 6, 9, 9, 6, 3, 2, 1, 3},    /* grouped, 3 lanes */
      {1, 4, 10, 9, 6, 3, 1, 1, 1},   /* one image: one lane */
      /* one lane with GEMMs big enough (M N K = 64*400*288) for OpenBLAS to thread them when
       * allowed; a threaded sgemm rounds differently, so the lane must keep it single-threaded */
      {1, 32, 20, 20, 64, 3, 1, 1, 1},
      {5, 16, 14, 14, 32, 1, 1, 0, 1} /* direct 1x1 */
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    conv_data d = conv_setup(&cases[k]);
    fgt_setup_cpu(1);
    cr_assert_eq(fg_cpu_threads(), 1);
    conv_outputs one = run_conv_all(&cases[k]);
    fgt_setup_cpu(2);
    cr_assert_eq(fg_cpu_threads(), 2);
    conv_outputs two = run_conv_all(&cases[k]);
    cr_assert_eq(omp_get_max_threads(), 2, "a lane's single-thread setting leaked out");
    cr_assert(memcmp(one.y, two.y, d.ny * sizeof(float)) == 0, "forward differs [%s]", d.name);
    cr_assert(memcmp(one.dx, two.dx, d.nx * sizeof(float)) == 0, "backward_data differs [%s]",
              d.name);
    cr_assert(memcmp(one.dw, two.dw, d.nw * sizeof(float)) == 0, "dw differs [%s]", d.name);
    cr_assert(memcmp(one.db, two.db, (size_t)d.cc.o * sizeof(float)) == 0, "dbias differs [%s]",
              d.name);
    free_outputs(&one);
    free_outputs(&two);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Workspace                                                                                  */

Test(conv2d, workspace_is_exact_and_thread_independent) {
  /* n3 c4 9x7 o6 3x3 s1 p1 g2, 4 lanes -> min(4, 3) = 3 lanes used.
   * column buffer per image: C*kh*kw x Ho*Wo = 36 x 63 = 2268 floats -> 2272 (64-byte slices)
   * dw partials (lanes 1 and 2; lane 0 writes dw): O*C/g*kh*kw = 6*2*9 = 108 -> 112 floats
   * total = 3*2272 + 2*112 = 7040 floats = 28160 bytes; forward/backward-data need 3*2272*4. */
  const size_t total = 28160, cols = 3 * 2272 * 4;
  fgt_setup_cpu(1);
  const int n = 3, c = 4, h = 9, w = 7, o = 6;
  const fg_conv_desc desc = {1, 1, 2};
  float *x = frand((size_t)(n * c * h * w), 1400), *wt = frand(6 * 2 * 9, 1401);
  float *dy = frand((size_t)(n * o * h * w), 1402);
  float *y = fbuf((size_t)(n * o * h * w)), *dx = fbuf((size_t)(n * c * h * w));
  float *dw = fbuf(6 * 2 * 9), *db = fbuf(6);
  fg_tensor tx = fg_tensor_4d(x, n, c, h, w), tw = fg_tensor_4d(wt, o, 2, 3, 3);
  fg_tensor tdy = fg_tensor_4d(dy, n, o, h, w), ty = fg_tensor_4d(y, n, o, h, w);
  fg_tensor tdx = fg_tensor_4d(dx, n, c, h, w), tdw = fg_tensor_4d(dw, o, 2, 3, 3);
  fg_tensor tdb = fg_tensor_1d(db, o);
  size_t bytes1 = 0, bytes2 = 0;
  FGT_OK(fg_conv2d_workspace(&desc, &tx, &tw, &bytes1));
  fgt_setup_cpu(2);
  FGT_OK(fg_conv2d_workspace(&desc, &tx, &tw, &bytes2));
  cr_assert_eq(bytes1, total, "workspace %zu, want %zu", bytes1, total);
  cr_assert_eq(bytes2, total, "workspace with 2 threads %zu, want %zu", bytes2, total);

  fg_workspace ws = workspace_alloc(total);
  unsigned char *ws_before = malloc(total), *sentinel = malloc(1024);
  cr_assert(ws_before && sentinel);
  memcpy(ws_before, ws.ptr, total);
  for (size_t i = 0; i < 6 * 2 * 9; i++) dw[i] = 12345.0f;
  for (size_t i = 0; i < 6; i++) db[i] = 12345.0f;

  /* one byte short: refused, nothing written */
  fg_workspace short_ws = {ws.ptr, total - 1};
  cr_assert_eq(fg_conv2d_backward_filter(&desc, &tx, &tdy, &tdw, &tdb, short_ws), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "workspace") != NULL, "%s", fg_last_error());
  for (size_t i = 0; i < 6 * 2 * 9; i++) cr_assert_eq(dw[i], 12345.0f, "dw[%zu] was written", i);
  for (size_t i = 0; i < 6; i++) cr_assert_eq(db[i], 12345.0f, "dbias[%zu] was written", i);
  cr_assert(memcmp(ws_before, ws.ptr, total) == 0, "workspace was written");

  for (size_t i = 0; i < (size_t)(n * o * h * w); i++) y[i] = 12345.0f;
  for (size_t i = 0; i < (size_t)(n * c * h * w); i++) dx[i] = 12345.0f;
  fg_workspace short_cols = {ws.ptr, cols - 1};
  cr_assert_eq(fg_conv2d_forward(&desc, &tx, &tw, NULL, &ty, short_cols), FG_ERR_INVALID);
  cr_assert_eq(fg_conv2d_backward_data(&desc, &tdy, &tw, &tdx, 0, short_cols), FG_ERR_INVALID);
  for (size_t i = 0; i < (size_t)(n * o * h * w); i++) cr_assert_eq(y[i], 12345.0f, "y[%zu] written", i);
  for (size_t i = 0; i < (size_t)(n * c * h * w); i++) cr_assert_eq(dx[i], 12345.0f, "dx[%zu] written", i);
  cr_assert(memcmp(ws_before, ws.ptr, total) == 0, "workspace was written");

  /* exactly enough works */
  fg_workspace exact_cols = {ws.ptr, cols};
  FGT_OK(fg_conv2d_forward(&desc, &tx, &tw, NULL, &ty, exact_cols));
  FGT_OK(fg_conv2d_backward_data(&desc, &tdy, &tw, &tdx, 0, exact_cols));
  FGT_OK(fg_conv2d_backward_filter(&desc, &tx, &tdy, &tdw, &tdb, ws));

  /* a direct 1x1 convolution needs no column buffer: forward runs without a workspace */
  const fg_conv_desc one = {1, 0, 1};
  fg_tensor tw1 = fg_tensor_4d(wt, o, c, 1, 1);
  size_t bytes_1x1 = 0;
  FGT_OK(fg_conv2d_workspace(&one, &tx, &tw1, &bytes_1x1));
  cr_assert_eq(bytes_1x1, 2 * 32 * 4, "1x1 workspace %zu: 2 partials of 24 -> 32 floats", bytes_1x1);
  fg_workspace none = {NULL, 0};
  FGT_OK(fg_conv2d_forward(&one, &tx, &tw1, NULL, &ty, none));
  cr_assert_eq(fg_conv2d_backward_filter(&one, &tx, &tdy, &tw1, NULL, none), FG_ERR_INVALID);

  free(ws.ptr), free(ws_before), free(sentinel);
  free(x), free(wt), free(dy), free(y), free(dx), free(dw), free(db);
}

/* ----------------------------------------------------------------------------------------- */
/* Validation                                                                                 */

/* `word` occurs in `msg` as a whole word (delimited by spaces, punctuation or the ends). */
static int names_word(const char *msg, const char *word) {
  const size_t len = strlen(word);
  for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word)) {
    const int starts = p == msg || p[-1] == ' ' || p[-1] == '(';
    const char after = p[len];
    const int ends = after == '\0' || after == ' ' || after == ',' || after == ')' || after == ':';
    if (starts && ends) return 1;
  }
  return 0;
}

/* status is `want` and the message names the op and the argument. */
static void expect_error(fg_status got, fg_status want, const char *op, const char *arg) {
  cr_assert_eq(got, want, "%s/%s: got %s, want %s (%s)", op, arg, fg_status_name(got),
               fg_status_name(want), fg_last_error());
  const char *msg = fg_last_error();
  cr_assert(names_word(msg, op), "message does not name %s: %s", op, msg);
  cr_assert(names_word(msg, arg), "message does not name '%s': %s", arg, msg);
}

Test(validation, conv2d, .init = setup_two_threads) {
  static float buf[4096], ws_buf[4096]; /* tensors may alias each other here, never the workspace */
  const fg_conv_desc d = {1, 1, 1};
  fg_workspace ws = {ws_buf, sizeof ws_buf};
  fg_tensor x = fg_tensor_4d(buf, 2, 4, 6, 6), w = fg_tensor_4d(buf, 8, 4, 3, 3);
  fg_tensor b = fg_tensor_1d(buf, 8), y = fg_tensor_4d(buf, 2, 8, 6, 6);
  FGT_OK(fg_conv2d_forward(&d, &x, &w, &b, &y, ws)); /* the baseline is valid */

  fg_tensor bad_w = fg_tensor_4d(buf, 8, 3, 3, 3);
  expect_error(fg_conv2d_forward(&d, &x, &bad_w, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "w");
  fg_tensor bad_y = fg_tensor_4d(buf, 2, 8, 5, 6);
  expect_error(fg_conv2d_forward(&d, &x, &w, &b, &bad_y, ws), FG_ERR_SHAPE, "conv2d_forward", "y");
  fg_tensor bad_b = fg_tensor_1d(buf, 7);
  expect_error(fg_conv2d_forward(&d, &x, &w, &bad_b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "bias");
  fg_tensor x_i32 = x;
  x_i32.dtype = FG_I32;
  expect_error(fg_conv2d_forward(&d, &x_i32, &w, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "x");
  fg_tensor x_rank3 = fg_tensor_view(buf, FG_F32, fg_host_device(), 3, x.shape + 1);
  expect_error(fg_conv2d_forward(&d, &x_rank3, &w, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "x");

  const fg_conv_desc g3 = {1, 1, 3}; /* 3 divides neither 4 channels nor 8 outputs */
  fg_tensor w_g3 = fg_tensor_4d(buf, 8, 1, 3, 3);
  expect_error(fg_conv2d_forward(&g3, &x, &w_g3, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "x");
  const fg_conv_desc g2 = {1, 1, 2};
  fg_tensor w_g2_wrong = fg_tensor_4d(buf, 8, 4, 3, 3); /* must be C/groups = 2 */
  expect_error(fg_conv2d_forward(&g2, &x, &w_g2_wrong, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "w");

  fg_tensor w_big = fg_tensor_4d(buf, 8, 4, 9, 9); /* 9 > 6 + 2 */
  expect_error(fg_conv2d_forward(&d, &x, &w_big, &b, &y, ws), FG_ERR_SHAPE, "conv2d_forward", "w");
  const fg_conv_desc s0 = {0, 1, 1};
  cr_assert_eq(fg_conv2d_forward(&s0, &x, &w, &b, &y, ws), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "stride") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_conv2d_forward(NULL, &x, &w, &b, &y, ws), FG_ERR_INVALID);

  fg_tensor bad_dy = fg_tensor_4d(buf, 2, 7, 6, 6);
  fg_tensor dx = x;
  expect_error(fg_conv2d_backward_data(&d, &bad_dy, &w, &dx, 0, ws), FG_ERR_SHAPE,
               "conv2d_backward_data", "dy");
  fg_tensor bad_dx = fg_tensor_4d(buf, 2, 5, 6, 6);
  expect_error(fg_conv2d_backward_data(&d, &y, &w, &bad_dx, 0, ws), FG_ERR_SHAPE,
               "conv2d_backward_data", "w");
  fg_tensor bad_dw = fg_tensor_4d(buf, 8, 4, 3, 2);
  expect_error(fg_conv2d_backward_filter(&d, &x, &y, &bad_dw, &b, ws), FG_ERR_SHAPE,
               "conv2d_backward_filter", "dy");
  expect_error(fg_conv2d_backward_filter(&d, &x, &y, &w, &bad_b, ws), FG_ERR_SHAPE,
               "conv2d_backward_filter", "dbias");
  size_t bytes;
  expect_error(fg_conv2d_workspace(&d, &x, &bad_w, &bytes), FG_ERR_SHAPE, "conv2d_workspace", "w");

  const fg_conv_desc huge_pad = {1, 1 << 30, 1}; /* a 2^31 x 2^31 output */
  fg_tensor w1 = fg_tensor_4d(buf, 8, 4, 1, 1);
  expect_error(fg_conv2d_workspace(&huge_pad, &x, &w1, &bytes), FG_ERR_SHAPE, "conv2d_workspace",
               "x");
  cr_assert(strstr(fg_last_error(), "too large") != NULL, "%s", fg_last_error());

  /* tensors on two devices */
  fg_tensor w_cuda = w;
  w_cuda.device.kind = FG_DEV_CUDA;
  cr_assert_eq(fg_conv2d_forward(&d, &x, &w_cuda, &b, &y, ws), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "devices") != NULL, "%s", fg_last_error());
}

Test(validation, linear, .init = setup_two_threads) {
  static float buf[1024];
  fg_tensor x = fg_tensor_2d(buf, 4, 10), w = fg_tensor_2d(buf, 3, 10), b = fg_tensor_1d(buf, 3);
  fg_tensor y = fg_tensor_2d(buf, 4, 3);
  FGT_OK(fg_linear_forward(&x, &w, &b, &y));
  fg_tensor bad_w = fg_tensor_2d(buf, 3, 9);
  expect_error(fg_linear_forward(&x, &bad_w, &b, &y), FG_ERR_SHAPE, "linear_forward", "w");
  fg_tensor bad_y = fg_tensor_2d(buf, 4, 4);
  expect_error(fg_linear_forward(&x, &w, &b, &bad_y), FG_ERR_SHAPE, "linear_forward", "y");
  fg_tensor bad_b = fg_tensor_1d(buf, 4);
  expect_error(fg_linear_forward(&x, &w, &bad_b, &y), FG_ERR_SHAPE, "linear_forward", "bias");
  fg_tensor x4 = fg_tensor_4d(buf, 4, 10, 1, 1);
  expect_error(fg_linear_forward(&x4, &w, &b, &y), FG_ERR_SHAPE, "linear_forward", "x");
  fg_tensor bad_dx = fg_tensor_2d(buf, 4, 11);
  expect_error(fg_linear_backward_data(&y, &w, &bad_dx, 0), FG_ERR_SHAPE, "linear_backward_data",
               "dx");
  expect_error(fg_linear_backward_data(&y, &bad_w, &x, 0), FG_ERR_SHAPE, "linear_backward_data",
               "dx");
  fg_tensor bad_dy = fg_tensor_2d(buf, 5, 3);
  expect_error(fg_linear_backward_params(&x, &bad_dy, &w, &b), FG_ERR_SHAPE,
               "linear_backward_params", "dy");
  expect_error(fg_linear_backward_params(&x, &y, &bad_w, &b), FG_ERR_SHAPE,
               "linear_backward_params", "dw");
  expect_error(fg_linear_backward_params(&x, &y, NULL, &bad_b), FG_ERR_SHAPE,
               "linear_backward_params", "dbias");
}

Test(validation, pooling, .init = setup_two_threads) {
  static float buf[1024];
  static uint8_t ubuf[1024];
  int64_t sy[4] = {2, 3, 4, 4};
  fg_tensor x = fg_tensor_4d(buf, 2, 3, 8, 9), y = fg_tensor_4d(buf, 2, 3, 4, 4);
  fg_tensor am = fg_tensor_view(ubuf, FG_U8, fg_host_device(), 4, sy);
  fg_pool_desc d = {2, 2, 0};
  FGT_OK(fg_maxpool_forward(&d, &x, &y, &am));
  fg_tensor am_f32 = fg_tensor_4d(buf, 2, 3, 4, 4);
  expect_error(fg_maxpool_forward(&d, &x, &y, &am_f32), FG_ERR_SHAPE, "maxpool_forward", "argmax");
  expect_error(fg_maxpool_backward(&d, &y, &am_f32, &x, 0), FG_ERR_SHAPE, "maxpool_backward",
               "argmax");
  fg_tensor bad_y = fg_tensor_4d(buf, 2, 3, 4, 5);
  expect_error(fg_maxpool_forward(&d, &x, &bad_y, &am), FG_ERR_SHAPE, "maxpool_forward", "y");
  expect_error(fg_maxpool_backward(&d, &bad_y, &am, &x, 0), FG_ERR_SHAPE, "maxpool_backward", "dy");
  fg_pool_desc too_big = {17, 1, 0};
  cr_assert_eq(fg_maxpool_forward(&too_big, &x, &y, &am), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "kernel") != NULL, "%s", fg_last_error());
  fg_pool_desc big_pad = {3, 2, 2};
  cr_assert_eq(fg_maxpool_forward(&big_pad, &x, &y, &am), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "pad") != NULL, "%s", fg_last_error());
  fg_pool_desc no_fit = {16, 1, 0}; /* 16 > 8 */
  expect_error(fg_maxpool_forward(&no_fit, &x, &y, &am), FG_ERR_SHAPE, "maxpool_forward", "x");

  fg_tensor v = fg_tensor_2d(buf, 2, 3);
  FGT_OK(fg_avgpool_global_forward(&x, &v));
  fg_tensor bad_v = fg_tensor_2d(buf, 3, 2);
  expect_error(fg_avgpool_global_forward(&x, &bad_v), FG_ERR_SHAPE, "avgpool_global_forward", "y");
  expect_error(fg_avgpool_global_backward(&bad_v, &x, 0), FG_ERR_SHAPE, "avgpool_global_backward",
               "dy");
  fg_tensor empty = fg_tensor_4d(buf, 2, 3, 0, 4);
  expect_error(fg_avgpool_global_forward(&empty, &v), FG_ERR_SHAPE, "avgpool_global_forward", "x");
}

Test(validation, missing_backend_entry_is_unsupported, .init = setup_two_threads) {
  static float buf[256];
  fg_backend *b = fg_cpu_backend();
  cr_assert_not_null(b);
  b->maxpool_forward = NULL; /* this test runs in its own process */
  fg_tensor x = fg_tensor_4d(buf, 1, 1, 4, 4), y = fg_tensor_4d(buf + 16, 1, 1, 2, 2);
  fg_pool_desc d = {2, 2, 0};
  cr_assert_eq(fg_maxpool_forward(&d, &x, &y, NULL), FG_ERR_UNSUPPORTED);
  cr_assert(strstr(fg_last_error(), "maxpool_forward") != NULL, "%s", fg_last_error());
}

/* ----------------------------------------------------------------------------------------- */
/* Empty batch                                                                                */

/* N = 0: nothing to compute, and the parameter gradients are exact zeros (an empty sum). */
Test(empty_batch, gradients_are_zero, .init = setup_two_threads) {
  float dw[8 * 4 * 9], db[8], lw[3 * 5], lb[3];
  for (size_t i = 0; i < 8 * 4 * 9; i++) dw[i] = 7.0f;
  for (size_t i = 0; i < 8; i++) db[i] = 7.0f;
  for (size_t i = 0; i < 15; i++) lw[i] = 7.0f;
  for (size_t i = 0; i < 3; i++) lb[i] = 7.0f;
  const fg_conv_desc d = {1, 1, 1};
  fg_tensor x = fg_tensor_4d(NULL, 0, 4, 6, 6), y = fg_tensor_4d(NULL, 0, 8, 6, 6);
  fg_tensor tdw = fg_tensor_4d(dw, 8, 4, 3, 3), tdb = fg_tensor_1d(db, 8);
  size_t bytes = 1;
  FGT_OK(fg_conv2d_workspace(&d, &x, &tdw, &bytes));
  cr_assert_eq(bytes, 0);
  fg_workspace none = {NULL, 0};
  FGT_OK(fg_conv2d_forward(&d, &x, &tdw, &tdb, &y, none));
  FGT_OK(fg_conv2d_backward_data(&d, &y, &tdw, &x, 0, none));
  FGT_OK(fg_conv2d_backward_filter(&d, &x, &y, &tdw, &tdb, none));
  for (size_t i = 0; i < 8 * 4 * 9; i++) cr_assert_eq(dw[i], 0.0f, "conv dw[%zu] = %g", i, dw[i]);
  for (size_t i = 0; i < 8; i++) cr_assert_eq(db[i], 0.0f, "conv dbias[%zu] = %g", i, db[i]);

  fg_tensor lx = fg_tensor_2d(NULL, 0, 5), ly = fg_tensor_2d(NULL, 0, 3);
  fg_tensor tlw = fg_tensor_2d(lw, 3, 5), tlb = fg_tensor_1d(lb, 3);
  FGT_OK(fg_linear_forward(&lx, &tlw, &tlb, &ly));
  FGT_OK(fg_linear_backward_data(&ly, &tlw, &lx, 1));
  FGT_OK(fg_linear_backward_params(&lx, &ly, &tlw, &tlb));
  for (size_t i = 0; i < 15; i++) cr_assert_eq(lw[i], 0.0f, "linear dw[%zu] = %g", i, lw[i]);
  for (size_t i = 0; i < 3; i++) cr_assert_eq(lb[i], 0.0f, "linear dbias[%zu] = %g", i, lb[i]);

  fg_pool_desc pd = {2, 2, 0};
  fg_tensor px = fg_tensor_4d(NULL, 0, 4, 6, 6), py = fg_tensor_4d(NULL, 0, 4, 3, 3);
  int64_t sy[4] = {0, 4, 3, 3};
  fg_tensor pam = fg_tensor_view(NULL, FG_U8, fg_host_device(), 4, sy);
  FGT_OK(fg_maxpool_forward(&pd, &px, &py, &pam));
  FGT_OK(fg_maxpool_backward(&pd, &py, &pam, &px, 0));
  fg_tensor pv = fg_tensor_2d(NULL, 0, 4);
  FGT_OK(fg_avgpool_global_forward(&px, &pv));
  FGT_OK(fg_avgpool_global_backward(&pv, &px, 0));
}
