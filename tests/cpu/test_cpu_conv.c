/* CPU-internal properties of the generic (GEMM-based) convolution, which the op suite
 * (tests/ops) cannot see from outside: the workspace a plan asks for follows the documented
 * lane layout exactly and does not depend on the thread count, a workspace one byte short is
 * refused before anything is written, a direct 1x1 convolution needs no column buffer, an empty
 * batch needs no workspace, and a lane's single-threaded BLAS setting does not leak out of the
 * call. (The dense 3x3 kernels have their own file, test_conv3x3.c.) */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "engine/backend/ops.h"

static float *frand(size_t n, uint64_t seed) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  cr_assert_not_null(p);
  fgt_fill_uniform(p, n, seed, -1.0f, 1.0f);
  return p;
}

static float *fbuf(size_t n) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  cr_assert_not_null(p);
  return p;
}

/* A workspace full of NaN: stale contents must never be read. */
static fg_workspace nan_workspace(size_t bytes) {
  fg_workspace ws = {aligned_alloc(64, (bytes + 63) / 64 * 64), bytes};
  cr_assert_not_null(ws.ptr);
  for (size_t i = 0; i < bytes / sizeof(float); i++) ((float *)ws.ptr)[i] = NAN;
  return ws;
}

Test(cpu_conv, workspace_is_exact_and_thread_independent) {
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

  fg_workspace ws = nan_workspace(total);
  unsigned char *ws_before = malloc(total);
  cr_assert_not_null(ws_before);
  memcpy(ws_before, ws.ptr, total);
  for (size_t i = 0; i < 6 * 2 * 9; i++) dw[i] = 12345.0f;
  for (size_t i = 0; i < 6; i++) db[i] = 12345.0f;

  /* one byte short: refused, nothing written */
  fg_workspace short_ws = {ws.ptr, total - 1};
  fgt_assert_error(fg_conv2d_backward_filter(&desc, &tx, &tdy, &tdw, &tdb, short_ws),
                   FG_ERR_INVALID, NULL, "workspace");
  for (size_t i = 0; i < 6 * 2 * 9; i++) cr_assert_eq(dw[i], 12345.0f, "dw[%zu] was written", i);
  for (size_t i = 0; i < 6; i++) cr_assert_eq(db[i], 12345.0f, "dbias[%zu] was written", i);
  cr_assert(memcmp(ws_before, ws.ptr, total) == 0, "workspace was written");

  for (size_t i = 0; i < (size_t)(n * o * h * w); i++) y[i] = 12345.0f;
  for (size_t i = 0; i < (size_t)(n * c * h * w); i++) dx[i] = 12345.0f;
  fg_workspace short_cols = {ws.ptr, total - 1};
  cr_assert_eq(fg_conv2d_forward(&desc, &tx, &tw, NULL, &ty, short_cols), FG_ERR_INVALID);
  cr_assert_eq(fg_conv2d_backward_data(&desc, &tdy, &tw, &tdx, 0, short_cols), FG_ERR_INVALID);
  for (size_t i = 0; i < (size_t)(n * o * h * w); i++)
    cr_assert_eq(y[i], 12345.0f, "y[%zu] written", i);
  for (size_t i = 0; i < (size_t)(n * c * h * w); i++)
    cr_assert_eq(dx[i], 12345.0f, "dx[%zu] written", i);
  cr_assert(memcmp(ws_before, ws.ptr, total) == 0, "workspace was written");

  /* exactly the query's bytes work for every call; the column buffers alone (`cols`) do not: the
   * entry point holds each call to the query */
  fg_workspace cols_only = {ws.ptr, cols};
  cr_assert_eq(fg_conv2d_forward(&desc, &tx, &tw, NULL, &ty, cols_only), FG_ERR_INVALID);
  FGT_OK(fg_conv2d_forward(&desc, &tx, &tw, NULL, &ty, ws));
  FGT_OK(fg_conv2d_backward_data(&desc, &tdy, &tw, &tdx, 0, ws));
  FGT_OK(fg_conv2d_backward_filter(&desc, &tx, &tdy, &tdw, &tdb, ws));

  /* a direct 1x1 convolution needs no column buffer, only the weight-gradient partials; the query
   * says so, and every call is held to it */
  const fg_conv_desc one = {1, 0, 1};
  fg_tensor tw1 = fg_tensor_4d(wt, o, c, 1, 1);
  size_t bytes_1x1 = 0;
  FGT_OK(fg_conv2d_workspace(&one, &tx, &tw1, &bytes_1x1));
  cr_assert_eq(bytes_1x1, 2 * 32 * 4, "1x1 workspace %zu: 2 partials of 24 -> 32 floats",
               bytes_1x1);
  fg_workspace none = {NULL, 0}, partials = {ws.ptr, bytes_1x1};
  cr_assert_eq(fg_conv2d_forward(&one, &tx, &tw1, NULL, &ty, none), FG_ERR_INVALID);
  FGT_OK(fg_conv2d_forward(&one, &tx, &tw1, NULL, &ty, partials));
  cr_assert_eq(fg_conv2d_backward_filter(&one, &tx, &tdy, &tw1, NULL, none), FG_ERR_INVALID);

  free(ws.ptr), free(ws_before);
  free(x), free(wt), free(dy), free(y), free(dx), free(dw), free(db);
}

/* N = 0: nothing to compute, no workspace. */
Test(cpu_conv, empty_batch_needs_no_workspace) {
  fgt_setup_cpu(2);
  const fg_conv_desc d = {1, 1, 1};
  fg_tensor x = fg_tensor_4d(NULL, 0, 4, 6, 6), w = fg_tensor_4d(NULL, 8, 4, 3, 3);
  size_t bytes = 1;
  FGT_OK(fg_conv2d_workspace(&d, &x, &w, &bytes));
  cr_assert_eq(bytes, 0);
}

/* One lane with GEMMs (M N K = 64 * 400 * 288) big enough for OpenBLAS to thread them: the lane
 * keeps BLAS single-threaded (a threaded sgemm rounds differently), and that setting must not
 * leak into the caller's OpenMP state. */
Test(cpu_conv, lane_settings_do_not_leak) {
  fgt_setup_cpu(2);
  const int n = 1, c = 32, h = 20, w = 20, o = 64;
  const fg_conv_desc d = {1, 1, 1};
  float *x = frand((size_t)(n * c * h * w), 1), *wt = frand((size_t)(o * c * 9), 2);
  float *y = fbuf((size_t)(n * o * h * w)), *dx = frand((size_t)(n * c * h * w), 3);
  float *dw = fbuf((size_t)(o * c * 9));
  fg_tensor tx = fg_tensor_4d(x, n, c, h, w), tw = fg_tensor_4d(wt, o, c, 3, 3),
            ty = fg_tensor_4d(y, n, o, h, w);
  fg_tensor tdx = fg_tensor_4d(dx, n, c, h, w), tdw = fg_tensor_4d(dw, o, c, 3, 3);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace(&d, &tx, &tw, &bytes));
  fg_workspace ws = nan_workspace(bytes ? bytes : 64);
  FGT_OK(fg_conv2d_forward(&d, &tx, &tw, NULL, &ty, ws));
  FGT_OK(fg_conv2d_backward_data(&d, &ty, &tw, &tdx, 1, ws));
  FGT_OK(fg_conv2d_backward_filter(&d, &tx, &ty, &tdw, NULL, ws));
  cr_assert_eq(omp_get_max_threads(), 2, "a lane's single-thread setting leaked out");
  free(ws.ptr), free(x), free(wt), free(y), free(dx), free(dw);
}
