/* Op suite: bilinear x2 upsampling (align_corners false), forward and backward (assigned and
 * accumulated), on every backend, against the double references of tests/ref/ref_nn.h (which
 * compute the source coordinates from PyTorch's formula and run the backward as a scatter, the
 * backends as a gather). Sums of products: the tolerance class. Rows: 1x1 planes (every output
 * is the one input), even and odd extents, outputs cropped by a row and/or a column (2H - 1),
 * many planes over the threads, N = 0, the misaligned and partial-batch layouts, a hand-derived
 * 2x2 -> 4x4 map and its transpose; the entry points' shape errors; finite differences of each
 * backend's forward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_nn.h"

typedef struct up_row {
  int n, c, h, w, ho, wo;
  int layout;
  int hand;
} up_row;

static const up_row ROWS[] = {
    {2, 3, 1, 1, 2, 2, FGT_ALIGNED, 0},      /* every output is the one input */
    {2, 3, 4, 4, 8, 8, FGT_ALIGNED, 0},
    {3, 2, 5, 3, 10, 6, FGT_ALIGNED, 0},     /* odd extents */
    {2, 3, 4, 4, 7, 7, FGT_ALIGNED, 0},      /* a 7x7 map's gate: 4x4 cropped to 7x7 */
    {1, 2, 3, 5, 6, 9, FGT_ALIGNED, 0},      /* cropped along one axis */
    {1, 1, 1, 6, 1, 12, FGT_ALIGNED, 0},     /* 1 x 2: cropped to a single row */
    {8, 16, 8, 8, 16, 16, FGT_ALIGNED, 0},   /* 128 planes over the threads */
    {0, 4, 3, 3, 6, 6, FGT_ALIGNED, 0},      /* N = 0 */
    {2, 3, 5, 3, 9, 6, FGT_MISALIGNED, 0},
    {3, 2, 4, 5, 8, 10, FGT_PARTIAL, 0},
    {1, 1, 2, 2, 4, 4, FGT_ALIGNED, 1},      /* by hand; the base of the error rows */
};
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0], HAND = ROW_COUNT - 1 };

enum { X, Y, DY, DX };

/* Each row runs in two variants (backward: assigned, accumulated): case 2 row + variant. */
static const up_row *start(fgt_op *op, const char *opname, int index, const char *variant) {
  const up_row *r = &ROWS[index / 2];
  fgt_name(op, "%s n%d c%d %dx%d -> %dx%d%s%s%s", opname, r->n, r->c, r->h, r->w, r->ho, r->wo,
           r->hand ? " by hand" : "", variant, fgt_layout_name(r->layout));
  op->row = r;
  fgt_layout(op, r->layout);
  return r;
}

/* x = [[1, 2], [3, 4]] -> y: rows read (0, weight 1), (0, 3/4; 1, 1/4), (0, 1/4; 1, 3/4),
 * (1, 1); so does every column:
 *   1     1.25  1.75  2
 *   1.5   1.75  2.25  2.5
 *   2.5   2.75  3.25  3.5
 *   3     3.25  3.75  4       */
static const double HAND_Y[16] = {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4};

static fg_status forward_call(fgt_op *op) { return fg_upsample2x_bilinear_forward(fgt_t(op, X), fgt_t(op, Y)); }

static void build_forward(int index, fgt_op *op) {
  const up_row *r = start(op, "upsample2x_bilinear_forward", index, index % 2 ? " again" : "");
  float *x = fgt_arg4(op, X, "x", FGT_IN, r->n, r->c, r->h, r->w);
  fgt_arg4(op, Y, "y", FGT_OUT, r->n, r->c, r->ho, r->wo);
  double *want = fgt_expect(op, Y, FGT_TOL);
  op->call = forward_call;
  if (r->hand) {
    for (int k = 0; k < 4; k++) x[k] = (float)(k + 1);
    double *ref = fgt_scratch_d(op, 16);
    fg_ref_upsample2x_bilinear_forward(1, 1, 2, 2, 4, 4, fgt_widen(op, X), ref);
    for (int k = 0; k < 16; k++) {
      cr_assert(ref[k] == HAND_Y[k], "%s: reference y[%d] = %g, by hand %g", op->name, k, ref[k], HAND_Y[k]);
      want[k] = HAND_Y[k];
    }
    return;
  }
  fgt_fill(op, X, -1.0f, 1.0f);
  fg_ref_upsample2x_bilinear_forward(r->n, r->c, r->h, r->w, r->ho, r->wo, fgt_widen(op, X), want);
}

static fg_status backward_call(fgt_op *op) {
  return fg_upsample2x_bilinear_backward(fgt_t(op, DY), fgt_t(op, DX), op->args[DX].role == FGT_INOUT);
}

/* The hand row's transpose with dy = 1 everywhere: each input's column weights sum, times its
 * row weights sum; input 0 of an axis of 4 outputs gets 1 + 3/4 + 1/4 = 2, and so does input 1:
 * dx = 4 everywhere (the 16 ones of dy, spread over 4 inputs). */
static void build_backward(int index, fgt_op *op) {
  const int acc = index % 2;
  const up_row *r = start(op, "upsample2x_bilinear_backward", index, acc ? " accumulate" : "");
  float *dy = fgt_arg4(op, DY, "dy", FGT_IN, r->n, r->c, r->ho, r->wo);
  fgt_arg4(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT, r->n, r->c, r->h, r->w);
  op->call = backward_call;
  if (r->hand) {
    for (int k = 0; k < 16; k++) dy[k] = 1.0f;
  } else {
    fgt_fill(op, DY, -1.0f, 1.0f);
  }
  if (acc) fgt_fill(op, DX, -1.0f, 1.0f);
  double *want = fgt_expect_onto(op, DX, FGT_TOL);
  fg_ref_upsample2x_bilinear_backward(r->n, r->c, r->h, r->w, r->ho, r->wo, fgt_widen(op, DY), want, acc);
  if (r->hand && !acc)
    for (int k = 0; k < 4; k++) cr_assert(want[k] == 4.0, "%s: reference dx[%d] = %g, by hand 4", op->name, k, want[k]);
}

static const fgt_error_row FORWARD_ERRORS[] = {
    {2 * HAND, Y, 4, {1, 1, 4, 5}, -1, FG_ERR_SHAPE,
     "upsample2x_bilinear_forward: y has shape [1, 1, 4, 5], expected spatial extents 3 or 4 by 3 or 4", NULL},
    {2 * HAND, Y, 4, {1, 2, 4, 4}, -1, FG_ERR_SHAPE, "upsample2x_bilinear_forward: y has shape [1, 2, 4, 4], expected extent 1 in dimension 1", NULL},
    {2 * HAND, X, 4, {1, 1, 0, 2}, -1, FG_ERR_SHAPE,
     "upsample2x_bilinear_forward: x has shape [1, 1, 0, 2] with an empty spatial extent", NULL},
    {2 * HAND, X, 3, {1, 2, 2}, -1, FG_ERR_SHAPE, "upsample2x_bilinear_forward: x has shape [1, 2, 2] (rank 3)", NULL},
};
static const fgt_error_row BACKWARD_ERRORS[] = {
    {2 * HAND, DY, 4, {1, 1, 2, 4}, -1, FG_ERR_SHAPE,
     "upsample2x_bilinear_backward: dy has shape [1, 1, 2, 4], expected spatial extents 3 or 4", NULL},
    {2 * HAND, DX, 4, {1, 1, 2, 2}, FG_I32, FG_ERR_SHAPE, "upsample2x_bilinear_backward: dx has dtype", NULL},
};
static const fgt_suite FORWARD = {"upsample2x_bilinear_forward", 2 * ROW_COUNT, build_forward, FORWARD_ERRORS, 4};
static const fgt_suite BACKWARD = {"upsample2x_bilinear_backward", 2 * ROW_COUNT, build_backward, BACKWARD_ERRORS, 2};
FGT_SUITE_TESTS(upsample2x_bilinear, forward, FORWARD)
FGT_SUITE_TESTS(upsample2x_bilinear, backward, BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

typedef struct up_dev {
  fgt_dbuf x, y;
} up_dev;

static fg_status up_dev_forward(void *p) {
  up_dev *c = p;
  return fg_upsample2x_bilinear_forward(&c->x.t, &c->y.t);
}

/* The reference backward against central differences of the reference forward (a linear map:
 * exact up to double rounding), on a full and a cropped output. */
typedef struct ref_ctx {
  const up_row *r;
  const double *x, *rr;
  double *y;
} ref_ctx;

static double ref_loss(void *p) {
  ref_ctx *c = p;
  const up_row *r = c->r;
  fg_ref_upsample2x_bilinear_forward(r->n, r->c, r->h, r->w, r->ho, r->wo, c->x, c->y);
  double l = 0.0;
  for (int64_t i = 0; i < (int64_t)r->n * r->c * r->ho * r->wo; i++) l += c->y[i] * c->rr[i];
  return l;
}

Test(upsample2x_bilinear, reference_backward_matches_finite_differences) {
  const up_row shapes[] = {{2, 2, 3, 4, 6, 8, 0, 0}, {1, 2, 4, 3, 7, 5, 0, 0}};
  const fgt_fd_opts o = {1e-6, 1e-7, 1e-7, 1, 0.0, NULL, 0};
  for (int k = 0; k < 2; k++) {
    const up_row *r = &shapes[k];
    const int64_t nx = (int64_t)r->n * r->c * r->h * r->w, ny = (int64_t)r->n * r->c * r->ho * r->wo;
    double *x = fgt_alloc_uniform(nx, 700 + k, -1.0, 1.0), *rr = fgt_alloc_uniform(ny, 710 + k, -1.0, 1.0),
           *y = fgt_alloc_uniform(ny, 0, -1.0, 1.0), *dx = fgt_alloc_uniform(nx, 0, -1.0, 1.0);
    fg_ref_upsample2x_bilinear_backward(r->n, r->c, r->h, r->w, r->ho, r->wo, rr, dx, 0);
    ref_ctx c = {r, x, rr, y};
    char what[64];
    snprintf(what, sizeof what, "reference upsample case %d dx", k);
    fgt_fd_check(what, ref_loss, &c, x, nx, dx, &o);
    free(x), free(rr), free(y), free(dx);
  }
}

/* Each backend's backward against central differences of its forward, element by element, with
 * inputs and steps on grids exact in float (the map is linear with weights 1, 3/4, 1/4: the
 * differences are exact up to the float rounding of the outputs), on a cropped odd output. */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int n = 2, c = 3, h = 4, w = 3, ho = 7, wo = 6;
  const int64_t sx[4] = {n, c, h, w}, sy[4] = {n, c, ho, wo};
  const int64_t nx = (int64_t)n * c * h * w, ny = (int64_t)n * c * ho * wo;
  up_dev p = {fgt_dbuf_alloc(dev, FG_F32, 4, sx), fgt_dbuf_alloc(dev, FG_F32, 4, sy)};
  fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 4, sy), dx = fgt_dbuf_alloc(dev, FG_F32, 4, sx);
  double *x = fgt_alloc_uniform(nx, 720, -1.0, 1.0), *r = fgt_random_direction(ny, 721),
         *g = fgt_alloc_uniform(nx, 0, -1.0, 1.0);
  fgt_quantize(x, nx, 1.0 / 1024);
  fgt_upload_d(&p.x, x), fgt_upload_d(&dy, r);
  fg_status s = up_dev_forward(&p);
  if (s == FG_ERR_UNSUPPORTED) cr_skip_test("upsampling on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  FGT_OK(fg_upsample2x_bilinear_backward(&dy.t, &dx.t, 0));
  fgt_download_d(g, &dx);
  char what[64];
  snprintf(what, sizeof what, "upsample dx on %s", fgt_kind_name(kind));
  const fgt_fd_opts o = {1.0 / 128, 1e-5, 1e-4, 1, 0.0, NULL, 0};
  fgt_device_loss_ctx lc = {&p.x, NULL, up_dev_forward, &p, &p.y, r, NULL};
  fgt_fd_check_device(what, &lc, x, nx, g, &o);
  free(x), free(r), free(g);
  fgt_dbuf_free(&p.x), fgt_dbuf_free(&p.y), fgt_dbuf_free(&dy), fgt_dbuf_free(&dx);
}

Test(upsample2x_bilinear, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(upsample2x_bilinear, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
