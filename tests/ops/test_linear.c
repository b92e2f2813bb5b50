/* Op suite: the linear layer (forward with and without bias, backward data assigned and
 * accumulated, backward params with dw and dbias, dw only and dbias only) on every backend
 * against the double-precision reference (tests/ref/ref_nn.h), in the tolerance class (GEMM).
 * Rows: N = 1, odd sizes, one input feature, a shape large enough for the NMSE check, N = 0
 * (parameter gradients are exact zeros), the misaligned and partial-batch layouts; then the
 * entry points' shape errors; then finite differences of the reference and of each backend. */
#include <stdio.h>
#include <stdlib.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_nn.h"

typedef struct linear_row {
  int n, in, out;
  int layout;
} linear_row;

static const linear_row ROWS[] = {
    {1, 7, 5, FGT_ALIGNED},      {3, 13, 11, FGT_ALIGNED}, {17, 33, 10, FGT_ALIGNED},
    {64, 64, 10, FGT_ALIGNED},   {5, 1, 3, FGT_ALIGNED},   {33, 257, 65, FGT_ALIGNED},
    {17, 33, 10, FGT_MISALIGNED}, {9, 31, 7, FGT_PARTIAL}, {0, 5, 3, FGT_ALIGNED},
    {4, 10, 3, FGT_ALIGNED}, /* the base of the error rows */
};
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0], BASE = 9, VARIANTS = 3 };

enum { X, W, B, Y, DY, DX, DW, DB };

static const linear_row *start(fgt_op *op, const char *opname, int index, const char *variant) {
  const linear_row *r = &ROWS[index / VARIANTS];
  fgt_name(op, "%s n%d in%d out%d%s%s", opname, r->n, r->in, r->out, variant,
           fgt_layout_name(r->layout));
  op->row = r;
  fgt_layout(op, r->layout);
  return r;
}

/* Gradients of an empty batch are exact zeros; everything else is in the tolerance class. */
static fgt_tol tol_of(const linear_row *r) { return r->n == 0 ? FGT_EXACT : FGT_TOL; }

/* ----------------------------------------------------------------------------------------- */
/* Forward: variant 0 without bias, 1 with bias (2 runs as 1)                                 */

static fg_status forward_call(fgt_op *op) {
  return fg_linear_forward(fgt_t(op, X), fgt_t(op, W), fgt_t(op, B), fgt_t(op, Y));
}

static void build_forward(int index, fgt_op *op) {
  const int with_bias = index % VARIANTS != 0;
  const linear_row *r = start(op, "linear_forward", index, with_bias ? " bias" : "");
  fgt_arg2(op, X, "x", FGT_IN, r->n, r->in);
  fgt_arg2(op, W, "w", FGT_IN, r->out, r->in);
  if (with_bias) fgt_arg1(op, B, "bias", FGT_IN, r->out);
  fgt_arg2(op, Y, "y", FGT_OUT, r->n, r->out);
  fgt_fill_all(op, -1.0f, 1.0f);
  fg_ref_linear_forward(r->n, r->in, r->out, fgt_widen(op, X), fgt_widen(op, W),
                        with_bias ? fgt_widen(op, B) : NULL, fgt_expect(op, Y, FGT_TOL));
  op->call = forward_call;
}

static const fgt_error_row FORWARD_ERRORS[] = {
    {VARIANTS * BASE + 1, W, 2, {3, 9}, -1, FG_ERR_SHAPE,
     "linear_forward: w has shape [3, 9], expected extent 10 in dimension 1", NULL},
    {VARIANTS * BASE + 1, Y, 2, {4, 4}, -1, FG_ERR_SHAPE,
     "linear_forward: y has shape [4, 4]", NULL},
    {VARIANTS * BASE + 1, B, 1, {4}, -1, FG_ERR_SHAPE, "linear_forward: bias has shape [4]", NULL},
    {VARIANTS * BASE + 1, X, 4, {4, 10, 1, 1}, -1, FG_ERR_SHAPE,
     "linear_forward: x has shape [4, 10, 1, 1] (rank 4)", NULL},
};
static const fgt_suite FORWARD = {"linear_forward", VARIANTS *ROW_COUNT, build_forward,
                                  FORWARD_ERRORS, 4};
FGT_SUITE_TESTS(linear, forward, FORWARD)

/* ----------------------------------------------------------------------------------------- */
/* Backward data: variant 0 assigns dx, 1 accumulates (2 runs as 1)                           */

static fg_status backward_data_call(fgt_op *op) {
  return fg_linear_backward_data(fgt_t(op, DY), fgt_t(op, W), fgt_t(op, DX),
                                 op->args[DX].role == FGT_INOUT);
}

static void build_backward_data(int index, fgt_op *op) {
  const int acc = index % VARIANTS != 0;
  const linear_row *r = start(op, "linear_backward_data", index, acc ? " accumulate" : "");
  fgt_arg2(op, DY, "dy", FGT_IN, r->n, r->out);
  fgt_arg2(op, W, "w", FGT_IN, r->out, r->in);
  fgt_arg2(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT, r->n, r->in);
  fgt_fill_all(op, -1.0f, 1.0f);
  fg_ref_linear_backward_data(r->n, r->in, r->out, fgt_widen(op, DY), fgt_widen(op, W),
                              fgt_expect_onto(op, DX, FGT_TOL), acc);
  op->call = backward_data_call;
}

static const fgt_error_row BACKWARD_DATA_ERRORS[] = {
    {VARIANTS * BASE, DX, 2, {4, 11}, -1, FG_ERR_SHAPE,
     "linear_backward_data: dx has shape [4, 11]", NULL},
    {VARIANTS * BASE, W, 2, {3, 9}, -1, FG_ERR_SHAPE,
     "linear_backward_data: dx has shape [4, 10], expected extent 9", NULL},
};
static const fgt_suite BACKWARD_DATA = {"linear_backward_data", VARIANTS *ROW_COUNT,
                                        build_backward_data, BACKWARD_DATA_ERRORS, 2};
FGT_SUITE_TESTS(linear, backward_data, BACKWARD_DATA)

/* ----------------------------------------------------------------------------------------- */
/* Backward params: variant 0 dw and dbias, 1 dw only, 2 dbias only                           */

static fg_status backward_params_call(fgt_op *op) {
  return fg_linear_backward_params(fgt_t(op, X), fgt_t(op, DY), fgt_t(op, DW), fgt_t(op, DB));
}

static void build_backward_params(int index, fgt_op *op) {
  const int variant = index % VARIANTS, want_dw = variant != 2, want_db = variant != 1;
  const linear_row *r = start(op, "linear_backward_params", index,
                              variant == 0   ? " dw dbias"
                              : variant == 1 ? " dw"
                                             : " dbias");
  fgt_arg2(op, X, "x", FGT_IN, r->n, r->in);
  fgt_arg2(op, DY, "dy", FGT_IN, r->n, r->out);
  if (want_dw) fgt_arg2(op, DW, "dw", FGT_OUT, r->out, r->in);
  if (want_db) fgt_arg1(op, DB, "dbias", FGT_OUT, r->out);
  fgt_fill_all(op, -1.0f, 1.0f);
  double *dw = want_dw ? fgt_expect(op, DW, tol_of(r)) : NULL;
  double *db = want_db ? fgt_expect(op, DB, tol_of(r)) : NULL;
  fg_ref_linear_backward_params(r->n, r->in, r->out, fgt_widen(op, X), fgt_widen(op, DY), dw, db);
  op->call = backward_params_call;
}

static const fgt_error_row BACKWARD_PARAMS_ERRORS[] = {
    {VARIANTS * BASE, DY, 2, {5, 3}, -1, FG_ERR_SHAPE,
     "linear_backward_params: dy has shape [5, 3]", NULL},
    {VARIANTS * BASE, DW, 2, {3, 9}, -1, FG_ERR_SHAPE,
     "linear_backward_params: dw has shape [3, 9]", NULL},
    {VARIANTS * BASE + 2, DB, 1, {4}, -1, FG_ERR_SHAPE,
     "linear_backward_params: dbias has shape [4]", NULL},
};
static const fgt_suite BACKWARD_PARAMS = {"linear_backward_params", VARIANTS *ROW_COUNT,
                                          build_backward_params, BACKWARD_PARAMS_ERRORS, 3};
FGT_SUITE_TESTS(linear, backward_params, BACKWARD_PARAMS)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

/* L = <x w^T + b, r> in double. */
typedef struct ref_loss_ctx {
  int64_t n, in, out;
  const double *x, *w, *b, *r;
  double *y;
} ref_loss_ctx;

static double ref_loss(void *p) {
  ref_loss_ctx *c = p;
  fg_ref_linear_forward(c->n, c->in, c->out, c->x, c->w, c->b, c->y);
  double l = 0.0;
  for (int64_t i = 0; i < c->n * c->out; i++) l += c->y[i] * c->r[i];
  return l;
}

/* Linear in each argument: central differences are exact up to double rounding. */
Test(linear, reference_backward_matches_finite_differences) {
  const int64_t n = 3, in = 5, out = 4;
  double *x = fgt_alloc_uniform(n * in, 900, -1.0, 1.0),
         *w = fgt_alloc_uniform(out * in, 901, -1.0, 1.0),
         *b = fgt_alloc_uniform(out, 902, -1.0, 1.0);
  double *r = fgt_alloc_uniform(n * out, 903, -1.0, 1.0),
         *y = fgt_alloc_uniform(n * out, 0, -1.0, 1.0);
  double *dx = fgt_alloc_uniform(n * in, 0, -1.0, 1.0),
         *dw = fgt_alloc_uniform(out * in, 0, -1.0, 1.0),
         *db = fgt_alloc_uniform(out, 0, -1.0, 1.0);
  fg_ref_linear_backward_data(n, in, out, r, w, dx, 0);
  fg_ref_linear_backward_params(n, in, out, x, r, dw, db);
  ref_loss_ctx c = {n, in, out, x, w, b, r, y};
  const fgt_fd_opts o = {1e-6, 1e-7, 1e-7, 1, 0.0, NULL, 0};
  fgt_fd_check("reference linear dx", ref_loss, &c, x, n * in, dx, &o);
  fgt_fd_check("reference linear dw", ref_loss, &c, w, out * in, dw, &o);
  fgt_fd_check("reference linear dbias", ref_loss, &c, b, out, db, &o);
  free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db);
}

typedef struct linear_dev {
  fgt_dbuf x, w, b, y;
} linear_dev;

static fg_status linear_dev_forward(void *p) {
  linear_dev *c = p;
  return fg_linear_forward(&c->x.t, &c->w.t, &c->b.t, &c->y.t);
}

/* Directional differences on the backend against its backward (see test_conv.c for the
 * tolerance). */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t n = 7, in = 19, out = 6;
  const int64_t sx[2] = {n, in}, sw[2] = {out, in}, sy[2] = {n, out};
  linear_dev c = {fgt_dbuf_alloc(dev, FG_F32, 2, sx), fgt_dbuf_alloc(dev, FG_F32, 2, sw),
                  fgt_dbuf_alloc(dev, FG_F32, 1, &out), fgt_dbuf_alloc(dev, FG_F32, 2, sy)};
  fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 2, sy), dx = fgt_dbuf_alloc(dev, FG_F32, 2, sx);
  fgt_dbuf dw = fgt_dbuf_alloc(dev, FG_F32, 2, sw), db = fgt_dbuf_alloc(dev, FG_F32, 1, &out);
  double *x = fgt_alloc_uniform(n * in, 1100, -1.0, 1.0),
         *w = fgt_alloc_uniform(out * in, 1101, -1.0, 1.0),
         *b = fgt_alloc_uniform(out, 1102, -1.0, 1.0);
  double *r = fgt_alloc_uniform(n * out, 1103, -1.0, 1.0);
  for (int64_t i = 0; i < n * out; i++) r[i] = (float)r[i]; /* dy holds exactly r */
  fgt_quantize(x, n * in, 1.0 / 1024), fgt_quantize(w, out * in, 1.0 / 1024),
      fgt_quantize(b, out, 1.0 / 1024);
  fgt_upload_d(&c.x, x), fgt_upload_d(&c.w, w), fgt_upload_d(&c.b, b), fgt_upload_d(&dy, r);
  fg_status s = fg_linear_backward_data(&dy.t, &c.w.t, &dx.t, 0);
  if (s == FG_ERR_UNSUPPORTED)
    cr_skip_test("linear on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  FGT_OK(fg_linear_backward_params(&c.x.t, &dy.t, &dw.t, &db.t));
  double *gx = fgt_alloc_uniform(n * in, 0, -1.0, 1.0),
         *gw = fgt_alloc_uniform(out * in, 0, -1.0, 1.0),
         *gb = fgt_alloc_uniform(out, 0, -1.0, 1.0);
  fgt_download_d(gx, &dx), fgt_download_d(gw, &dw), fgt_download_d(gb, &db);
  const fgt_fd_param params[3] = {
      {"dx", &c.x, x, gx, n * in}, {"dw", &c.w, w, gw, out * in}, {"dbias", &c.b, b, gb, out}};
  fgt_fd_check_params("linear", kind, linear_dev_forward, &c, &c.y, r, NULL, params, 3, 1.0 / 128,
                      1e-6, 2e-3, 1104);
  free(x), free(w), free(b), free(r), free(gx), free(gw), free(gb);
  fgt_dbuf_free(&c.x), fgt_dbuf_free(&c.w), fgt_dbuf_free(&c.b), fgt_dbuf_free(&c.y);
  fgt_dbuf_free(&dy), fgt_dbuf_free(&dx), fgt_dbuf_free(&dw), fgt_dbuf_free(&db);
}

Test(linear, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(linear, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
