/* Op suite: max pooling (forward with and without argmax, backward assigned and accumulated)
 * and global average pooling (forward, backward assigned and accumulated) on every backend.
 * Max-pool forward and argmax are in the bitwise class (a maximum is one of the inputs; ties go
 * to the first position, padding never wins), and so is the average-pool backward (one float
 * division per plane, tests/ref/ref_exact.h); max-pool backward and the average-pool forward
 * are sums, in the tolerance class. Rows: the models' 2x2/2 window on odd extents (floor),
 * overlapping windows with padding, stride 1, windows hanging over both edges, a 7x7 window,
 * the identity window, a 16x16 window (the largest u8 argmax), exact ties in random data,
 * hand-derived ties and padding, N = 0, the misaligned and partial-batch layouts; the entry
 * points' descriptor and shape errors and an argmax outside its window; finite differences of
 * the references and of each backend (skipping the kinks where a window's maximum changes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_exact.h"
#include "ref/ref_nn.h"

typedef struct pool_row {
  int n, c, h, w, kernel, stride, pad;
  int layout;
  int hand;         /* HAND_*: literal inputs and hand-derived outputs */
  fg_status expect; /* descriptor errors */
  const char *text;
} pool_row;

enum { HAND_NONE, HAND_TIES, HAND_PADDING, HAND_BAD_ARGMAX };

static const pool_row ROWS[] = {
    {3, 4, 7, 9, 2, 2, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* the models' 2x2/2, odd extents */
    {1, 3, 8, 8, 2, 2, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},
    {3, 2, 9, 7, 3, 2, 1, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* overlapping windows, padding */
    {1, 5, 6, 5, 3, 1, 1, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* stride 1: heavy overlap */
    {2, 3, 5, 6, 2, 1, 1, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* windows over both edges */
    {1, 2, 13, 11, 7, 2, 3, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* big window */
    {2, 2, 5, 4, 1, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},   /* identity window */
    {1, 1, 16, 16, 16, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* 256 positions: the u8 limit */
    {8, 16, 32, 32, 2, 2, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* 128 planes over threads */
    {3, 4, 7, 9, 2, 2, 0, FGT_MISALIGNED, HAND_NONE, FG_OK, NULL},
    {3, 2, 9, 7, 3, 2, 1, FGT_PARTIAL, HAND_NONE, FG_OK, NULL},
    {0, 4, 6, 6, 2, 2, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},   /* N = 0 */
    /* Identity windows on the average pool's shapes: a 1x1 plane, a 1x9 plane, 64 channels. */
    {3, 5, 7, 6, 1, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},
    {1, 2, 1, 1, 1, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},
    {2, 64, 7, 7, 1, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},
    {1, 3, 1, 9, 1, 1, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL},
    {1, 1, 4, 4, 2, 2, 0, FGT_ALIGNED, HAND_TIES, FG_OK, NULL},
    {1, 1, 3, 3, 3, 2, 1, FGT_ALIGNED, HAND_PADDING, FG_OK, NULL},
    {2, 3, 8, 9, 2, 2, 0, FGT_ALIGNED, HAND_NONE, FG_OK, NULL}, /* the base of the error rows */
    {2, 3, 8, 9, 17, 1, 0, FGT_ALIGNED, HAND_NONE, FG_ERR_INVALID, "kernel 17 too large"},
    {2, 3, 8, 9, 3, 2, 2, FGT_ALIGNED, HAND_NONE, FG_ERR_INVALID, "pad 2 out of range"},
    {2, 3, 8, 9, 2, 0, 0, FGT_ALIGNED, HAND_NONE, FG_ERR_INVALID, "stride 0 out of range"},
    {2, 3, 8, 9, 16, 1, 0, FGT_ALIGNED, HAND_NONE, FG_ERR_SHAPE,
     "the 16x16 window does not fit the 8x9 input"},
    /* An argmax that is no position of a 2x2 window. Argmax values live where the backend runs,
     * so the backend counts the bad ones while it scatters (fg_index_report) and the entry point
     * refuses the call; dx is then unspecified (backend.h), so the row checks the status, the
     * message and the sentinels, not that dx is untouched (refusal_writes). */
    {1, 1, 4, 4, 2, 2, 0, FGT_ALIGNED, HAND_BAD_ARGMAX, FG_ERR_INVALID, "argmax"},
};
/* The average pool runs the rows up to the base (it reads n, c, h and w only). */
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0], BASE = 18, AVG_ROWS = BASE + 1 };

enum { X, Y, AM, DY, DX };

/* Each row runs in two variants: case 2 row + variant. */
static const pool_row *start(fgt_op *op, const char *opname, int index, const char *variant) {
  const pool_row *r = &ROWS[index / 2];
  fgt_name(op, "%s n%d c%d %dx%d k%d s%d p%d%s%s", opname, r->n, r->c, r->h, r->w, r->kernel,
           r->stride, r->pad, variant, fgt_layout_name(r->layout));
  op->row = r;
  fgt_layout(op, r->layout);
  if (r->expect != FG_OK) fgt_expect_error(op, r->expect, r->text, NULL);
  return r;
}

static fg_ref_pool_shape ref_shape(const pool_row *r) {
  fg_ref_pool_shape s = {r->n, r->c, r->h, r->w, r->kernel, r->stride, r->pad};
  return s;
}

static fg_pool_desc desc_of(const pool_row *r) {
  fg_pool_desc d = {r->kernel, r->stride, r->pad};
  return d;
}

/* Output extents; descriptor-error rows get a 1x1 output (the call fails before using it). */
static void out_extents(const pool_row *r, int64_t *ho, int64_t *wo) {
  *ho = *wo = 1;
  if (r->expect != FG_OK && r->hand != HAND_BAD_ARGMAX) return;
  const fg_ref_pool_shape s = ref_shape(r);
  *ho = fg_ref_pool_out_h(&s);
  *wo = fg_ref_pool_out_w(&s);
}

static void image_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  const pool_row *r = op->row;
  fgt_arg4(op, i, name, role, r->n, r->c, r->h, r->w);
}

static void pooled_arg(fgt_op *op, int i, const char *name, fg_dtype dtype, fgt_role role) {
  const pool_row *r = op->row;
  int64_t s[4] = {r->n, r->c, 1, 1};
  out_extents(r, &s[2], &s[3]);
  fgt_arg_declare(op, i, name, dtype, role, 4, s);
}

/* Random inputs with a few exact ties, so the first-maximum rule is exercised. */
static void random_input(fgt_op *op, int i) {
  float *x = fgt_fill(op, i, -1.0f, 1.0f);
  for (int64_t k = 0; k + 1 < fgt_numel(op, i); k += 7) x[k + 1] = x[k];
}

/* Hand-derived cases.
 * Ties, 2x2 stride 2:  [1 3 | 3 0]    window (0,0) has 3 at positions 1 and 3 -> 1
 *                      [2 3 | 1 5]    window (0,1): 5 at position 3
 *                      [-1 -2|-3 -4]  window (1,0): -1 at 0; window (1,1): -3 at 0
 *                      [-5 -6|-7 -8]
 *   backward of dy = [10 20 30 40] (assigned): the tied window's gradient goes to the first 3
 *   (row 0, column 1) only.
 * Padding never wins: all inputs negative, so a zero from the padding would win if it took part.
 *   -5 -2 -9      3x3 windows, stride 2, pad 1 -> 2x2 outputs; window (oy,ox) covers input
 *   -4 -7 -1      rows 2oy-1..2oy+1 and columns 2ox-1..2ox+1.
 *   -3 -6 -8
 *   (0,0): max -2 at input (0,1) = window (1,2) -> 5;  (0,1): -1 at (1,2) = window (2,1) -> 7
 *   (1,0): -3 at (2,0) = window (1,1) -> 4;            (1,1): -1 at (1,2) = window (0,1) -> 1
 *   backward of dy = [1 2 3 4] accumulated onto 100: windows (0,1) and (1,1) both pick input
 *   (1,2): their gradients add up. */
typedef struct hand_pool {
  float x[16];
  float y[4];
  uint8_t argmax[4];
  float dy[4], dx0, dx[16];
} hand_pool;

static const hand_pool HAND_TIES_CASE = {{1, 3, 3, 0, 2, 3, 1, 5, -1, -2, -3, -4, -5, -6, -7, -8},
                                         {3, 5, -1, -3},
                                         {1, 3, 0, 0},
                                         {10, 20, 30, 40},
                                         0.0f,
                                         {0, 10, 0, 0, 0, 0, 0, 20, 30, 0, 40, 0, 0, 0, 0, 0}};
static const hand_pool HAND_PADDING_CASE = {{-5, -2, -9, -4, -7, -1, -3, -6, -8},
                                            {-2, -1, -3, -1},
                                            {5, 7, 4, 1},
                                            {1, 2, 3, 4},
                                            100.0f,
                                            {100, 101, 100, 100, 100, 106, 103, 100, 100}};

static const hand_pool *hand_of(const pool_row *r) {
  return r->hand == HAND_TIES      ? &HAND_TIES_CASE
         : r->hand == HAND_PADDING ? &HAND_PADDING_CASE
                                   : NULL;
}

/* ----------------------------------------------------------------------------------------- */
/* Max-pool forward: variant 0 without argmax (inference), 1 with                             */

static fg_status maxpool_forward_call(fgt_op *op) {
  const fg_pool_desc d = desc_of(op->row);
  return fg_maxpool_forward(&d, fgt_t(op, X), fgt_t(op, Y), fgt_t(op, AM));
}

static void build_maxpool_forward(int index, fgt_op *op) {
  const int with_argmax = index % 2;
  const pool_row *r = start(op, "maxpool_forward", index, with_argmax ? " argmax" : "");
  const hand_pool *hand = hand_of(r);
  image_arg(op, X, "x", FGT_IN);
  pooled_arg(op, Y, "y", FG_F32, FGT_OUT);
  if (with_argmax) pooled_arg(op, AM, "argmax", FG_U8, FGT_OUT);
  op->call = maxpool_forward_call;
  if (hand)
    memcpy(fgt_f32(op, X), hand->x, (size_t)fgt_numel(op, X) * sizeof(float));
  else
    random_input(op, X);
  if (r->expect != FG_OK) return;
  const fg_ref_pool_shape s = ref_shape(r);
  const int64_t ny = fgt_numel(op, Y);
  uint8_t *am = fgt_scratch(op, (size_t)(ny > 0 ? ny : 1));
  double *y = fgt_expect(op, Y, FGT_EXACT); /* a maximum is one of the inputs */
  fg_ref_maxpool_forward(&s, fgt_widen(op, X), y, am);
  double *want_am = with_argmax ? fgt_expect(op, AM, FGT_EXACT) : fgt_scratch_d(op, ny);
  for (int64_t i = 0; i < ny; i++) want_am[i] = am[i];
  if (!hand) return;
  for (int64_t i = 0; i < ny; i++) {
    cr_assert_eq(y[i], hand->y[i], "reference y[%lld] = %g, by hand %g", (long long)i, y[i],
                 hand->y[i]);
    cr_assert_eq(am[i], hand->argmax[i], "reference argmax[%lld] = %d, by hand %d", (long long)i,
                 am[i], hand->argmax[i]);
  }
}

static const fgt_error_row MAXPOOL_FORWARD_ERRORS[] = {
    {2 * BASE + 1, AM, 0, {0}, FG_F32, FG_ERR_SHAPE,
     "maxpool_forward: argmax has dtype f32, expected u8", NULL},
    {2 * BASE + 1, Y, 4, {2, 3, 4, 5}, -1, FG_ERR_SHAPE,
     "maxpool_forward: y has shape [2, 3, 4, 5]", NULL},
};
static const fgt_suite MAXPOOL_FORWARD = {"maxpool_forward", 2 * (ROW_COUNT - 1),
                                          build_maxpool_forward, MAXPOOL_FORWARD_ERRORS, 2};
FGT_SUITE_TESTS(maxpool, forward, MAXPOOL_FORWARD)

/* ----------------------------------------------------------------------------------------- */
/* Max-pool backward: variant 0 assigns dx, 1 accumulates                                     */

static fg_status maxpool_backward_call(fgt_op *op) {
  const fg_pool_desc d = desc_of(op->row);
  return fg_maxpool_backward(&d, fgt_t(op, DY), fgt_t(op, AM), fgt_t(op, DX),
                             op->args[DX].role == FGT_INOUT);
}

/* The argmax is the reference forward's on random inputs (or the hand-derived one); dx sums
 * the dy of every window whose maximum it holds, in the backend's order: the tolerance class. */
static void build_maxpool_backward(int index, fgt_op *op) {
  const int acc = index % 2;
  const pool_row *r = start(op, "maxpool_backward", index, acc ? " accumulate" : "");
  const hand_pool *hand = hand_of(r);
  pooled_arg(op, DY, "dy", FG_F32, FGT_IN);
  pooled_arg(op, AM, "argmax", FG_U8, FGT_IN);
  image_arg(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT);
  op->call = maxpool_backward_call;
  fgt_fill(op, DY, -1.0f, 1.0f);
  if (acc) fgt_fill(op, DX, -1.0f, 1.0f);
  const int64_t ny = fgt_numel(op, DY), nx = fgt_numel(op, DX);
  uint8_t *am = op->args[AM].host;
  if (r->hand == HAND_BAD_ARGMAX) {
    const uint8_t bad[4] = {0, 1, 200, 2}; /* 200 is no position of a 2x2 window */
    memcpy(am, bad, sizeof bad);
    op->refusal_writes = 1; /* see the row */
    return;
  }
  if (r->expect != FG_OK) return;
  const fg_ref_pool_shape s = ref_shape(r);
  double *xs = fgt_scratch_d(op, nx), *ys = fgt_scratch_d(op, ny);
  fgt_fill_uniform_double(xs, (size_t)nx, op->seed, -1.0, 1.0);
  fg_ref_maxpool_forward(&s, xs, ys, am);
  if (hand) {
    memcpy(am, hand->argmax, 4);
    memcpy(fgt_f32(op, DY), hand->dy, sizeof hand->dy);
    for (int64_t i = 0; i < nx; i++) fgt_f32(op, DX)[i] = hand->dx0;
  }
  double *want = fgt_expect_onto(op, DX, FGT_TOL);
  fg_ref_maxpool_backward(&s, fgt_widen(op, DY), am, want, acc);
  if (hand && acc == (hand->dx0 != 0.0f))
    for (int64_t i = 0; i < nx; i++)
      cr_assert_eq(want[i], hand->dx[i], "reference dx[%lld] = %g, by hand %g", (long long)i,
                   want[i], hand->dx[i]);
}

static const fgt_error_row MAXPOOL_BACKWARD_ERRORS[] = {
    {2 * BASE, AM, 0, {0}, FG_F32, FG_ERR_SHAPE,
     "maxpool_backward: argmax has dtype f32, expected u8", NULL},
    {2 * BASE, DY, 4, {2, 3, 4, 5}, -1, FG_ERR_SHAPE,
     "maxpool_backward: dy has shape [2, 3, 4, 5]", NULL},
};
static const fgt_suite MAXPOOL_BACKWARD = {"maxpool_backward", 2 * ROW_COUNT,
                                           build_maxpool_backward, MAXPOOL_BACKWARD_ERRORS, 2};
FGT_SUITE_TESTS(maxpool, backward, MAXPOOL_BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* Global average pooling                                                                     */

static const pool_row *avg_start(fgt_op *op, const char *opname, int index, const char *variant) {
  const pool_row *r = &ROWS[index / 2];
  fgt_name(op, "%s n%d c%d %dx%d%s%s", opname, r->n, r->c, r->h, r->w, variant,
           fgt_layout_name(r->layout));
  op->row = r;
  fgt_layout(op, r->layout);
  return r;
}

static fg_status avgpool_forward_call(fgt_op *op) {
  return fg_avgpool_global_forward(fgt_t(op, X), fgt_t(op, Y));
}

/* A mean over H*W: a reduction, in the tolerance class. Variants differ only in the seed. */
static void build_avgpool_forward(int index, fgt_op *op) {
  const pool_row *r = avg_start(op, "avgpool_global_forward", index, "");
  image_arg(op, X, "x", FGT_IN);
  fgt_arg2(op, Y, "y", FGT_OUT, r->n, r->c);
  fgt_fill(op, X, -1.0f, 1.0f);
  fg_ref_avgpool_global_forward(r->n, r->c, r->h, r->w, fgt_widen(op, X),
                                fgt_expect(op, Y, FGT_TOL));
  op->call = avgpool_forward_call;
}

static const fgt_error_row AVGPOOL_FORWARD_ERRORS[] = {
    {2 * BASE, Y, 2, {3, 2}, -1, FG_ERR_SHAPE, "avgpool_global_forward: y has shape [3, 2]", NULL},
    {2 * BASE, X, 4, {2, 3, 0, 4}, -1, FG_ERR_SHAPE,
     "avgpool_global_forward: x has shape [2, 3, 0, 4] with an empty spatial extent", NULL},
};
static const fgt_suite AVGPOOL_FORWARD = {"avgpool_global_forward", 2 * AVG_ROWS,
                                          build_avgpool_forward, AVGPOOL_FORWARD_ERRORS, 2};
FGT_SUITE_TESTS(avgpool_global, forward, AVGPOOL_FORWARD)

static fg_status avgpool_backward_call(fgt_op *op) {
  return fg_avgpool_global_backward(fgt_t(op, DY), fgt_t(op, DX), op->args[DX].role == FGT_INOUT);
}

/* dy / (H W) spread over each plane: one float division (and one addition when accumulating),
 * in the bitwise class against the float reference. */
static void build_avgpool_backward(int index, fgt_op *op) {
  const int acc = index % 2;
  const pool_row *r = avg_start(op, "avgpool_global_backward", index, acc ? " accumulate" : "");
  fgt_arg2(op, DY, "dy", FGT_IN, r->n, r->c);
  image_arg(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT);
  const float *dy = fgt_fill(op, DY, -1.0f, 1.0f);
  if (acc) fgt_fill(op, DX, -1.0f, 1.0f);
  const int64_t nx = fgt_numel(op, DX);
  double *ref = fgt_scratch_d(op, nx);
  if (acc) memcpy(ref, fgt_widen(op, DX), (size_t)nx * sizeof *ref);
  fg_ref_avgpool_global_backward(r->n, r->c, r->h, r->w, fgt_widen(op, DY), ref, acc);
  float *f = fgt_scratch(op, (size_t)(nx > 0 ? nx : 1) * sizeof *f);
  if (acc) memcpy(f, fgt_f32(op, DX), (size_t)nx * sizeof *f);
  fg_ref_f32_avgpool_global_backward(dy, (int64_t)r->n * r->c, (int64_t)r->h * r->w, acc, f);
  double *want = fgt_expect(op, DX, FGT_EXACT);
  for (int64_t i = 0; i < nx; i++) want[i] = f[i];
  fgt_check_reference(op->name, want, ref, nx);
  op->call = avgpool_backward_call;
}

static const fgt_error_row AVGPOOL_BACKWARD_ERRORS[] = {
    {2 * BASE, DY, 2, {3, 2}, -1, FG_ERR_SHAPE,
     "avgpool_global_backward: dy has shape [3, 2]", NULL},
};
static const fgt_suite AVGPOOL_BACKWARD = {"avgpool_global_backward", 2 * AVG_ROWS,
                                           build_avgpool_backward, AVGPOOL_BACKWARD_ERRORS, 1};
FGT_SUITE_TESTS(avgpool_global, backward, AVGPOOL_BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

/* Values 0.05 apart (no ties, no near ties), shuffled, centred on 0: the maximum is
 * differentiable there and a step of 1e-2 never changes a window's winner. */
static void fill_distinct(double *x, int64_t n, uint64_t seed) {
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  uint32_t *perm = malloc((size_t)n * sizeof *perm);
  cr_assert_not_null(perm);
  for (int64_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
  fg_rng_shuffle_u32(&r, perm, (uint64_t)n);
  for (int64_t i = 0; i < n; i++) x[i] = 0.05 * ((double)perm[i] - (double)n / 2);
  free(perm);
}

typedef struct ref_loss_ctx {
  fg_ref_pool_shape s;
  const double *x, *r;
  double *y;
  int64_t ny;
  int average;
} ref_loss_ctx;

static double ref_loss(void *p) {
  ref_loss_ctx *c = p;
  if (c->average)
    fg_ref_avgpool_global_forward(c->s.n, c->s.c, c->s.h, c->s.w, c->x, c->y);
  else
    fg_ref_maxpool_forward(&c->s, c->x, c->y, NULL);
  double l = 0.0;
  for (int64_t i = 0; i < c->ny; i++) l += c->y[i] * c->r[i];
  return l;
}

/* Piecewise linear (max) or linear (mean): central differences are exact at inputs without
 * ties, up to double rounding. */
Test(pooling, reference_backward_matches_finite_differences) {
  const fg_ref_pool_shape shapes[] = {
      {2, 2, 5, 5, 2, 2, 0}, {1, 2, 5, 4, 3, 2, 1}, {1, 1, 4, 5, 3, 1, 1}, {2, 3, 4, 3, 1, 1, 0}};
  const fgt_fd_opts o = {1e-6, 1e-7, 1e-7, 1, 0.0, NULL, 0};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const fg_ref_pool_shape *s = &shapes[k];
    const int average = k == 3;
    const int64_t nx = s->n * s->c * s->h * s->w;
    const int64_t ny =
        average ? s->n * s->c : s->n * s->c * fg_ref_pool_out_h(s) * fg_ref_pool_out_w(s);
    double *x = fgt_alloc_uniform(nx, 950 + k, -1.0, 1.0),
           *r = fgt_alloc_uniform(ny, 960 + k, -1.0, 1.0), *y = fgt_alloc_uniform(ny, 0, -1.0, 1.0),
           *dx = fgt_alloc_uniform(nx, 0, -1.0, 1.0);
    if (!average) fill_distinct(x, nx, 970 + k);
    uint8_t *am = malloc((size_t)ny);
    cr_assert_not_null(am);
    if (average) {
      fg_ref_avgpool_global_backward(s->n, s->c, s->h, s->w, r, dx, 0);
    } else {
      fg_ref_maxpool_forward(s, x, y, am);
      fg_ref_maxpool_backward(s, r, am, dx, 0);
    }
    ref_loss_ctx c = {*s, x, r, y, ny, average};
    char what[64];
    snprintf(what, sizeof what, "reference %s case %zu dx", average ? "avgpool" : "maxpool", k);
    fgt_fd_check(what, ref_loss, &c, x, nx, dx, &o);
    free(x), free(r), free(y), free(dx), free(am);
  }
}

typedef struct pool_dev {
  fg_pool_desc d;
  fgt_dbuf x, y, v;
} pool_dev;

static fg_status maxpool_dev_forward(void *p) {
  pool_dev *c = p;
  return fg_maxpool_forward(&c->d, &c->x.t, &c->y.t, NULL);
}

static fg_status avgpool_dev_forward(void *p) {
  pool_dev *c = p;
  return fg_avgpool_global_forward(&c->x.t, &c->v.t);
}

/* Each backend's backward against central differences of its forward, with inputs and
 * steps on grids that keep the perturbed inputs exact in float (fgt_quantize). Max pool,
 * element by element on random inputs with exact ties: where a tie or a near tie lets the step
 * change a window's winner, the one-sided differences disagree by O(|dy|) and the element is
 * skipped as a kink; elsewhere the output moves exactly with the input. Average pool, along one
 * direction. */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int n = 2, c = 3, h = 7, w = 6;
  const int64_t ho = fg_conv_out_extent(h, 3, 2, 1), wo = fg_conv_out_extent(w, 3, 2, 1);
  const int64_t sx[4] = {n, c, h, w}, sy[4] = {n, c, ho, wo}, sv[2] = {n, c};
  const int64_t nx = (int64_t)n * c * h * w, ny = (int64_t)n * c * ho * wo, nv = (int64_t)n * c;
  pool_dev p = {{3, 2, 1},
                fgt_dbuf_alloc(dev, FG_F32, 4, sx),
                fgt_dbuf_alloc(dev, FG_F32, 4, sy),
                fgt_dbuf_alloc(dev, FG_F32, 2, sv)};
  fgt_dbuf am = fgt_dbuf_alloc(dev, FG_U8, 4, sy), dy = fgt_dbuf_alloc(dev, FG_F32, 4, sy);
  fgt_dbuf dv = fgt_dbuf_alloc(dev, FG_F32, 2, sv), dx = fgt_dbuf_alloc(dev, FG_F32, 4, sx);
  double *x = fgt_alloc_uniform(nx, 1200, -1.0, 1.0), *r = fgt_alloc_uniform(ny, 1202, -1.0, 1.0),
         *rv = fgt_alloc_uniform(nv, 1203, -1.0, 1.0);
  for (int64_t i = 0; i + 1 < nx; i += 7) x[i + 1] = x[i]; /* exact ties */
  fgt_quantize(x, nx, 1.0 / 1024);
  for (int64_t i = 0; i < ny; i++) r[i] = (float)r[i];
  for (int64_t i = 0; i < nv; i++) rv[i] = (float)rv[i];
  fgt_upload_d(&p.x, x), fgt_upload_d(&dy, r), fgt_upload_d(&dv, rv);
  fg_status s = fg_maxpool_forward(&p.d, &p.x.t, &p.y.t, &am.t);
  if (s == FG_ERR_UNSUPPORTED)
    cr_skip_test("pooling on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  double *gmax = fgt_alloc_uniform(nx, 0, -1.0, 1.0), *gavg = fgt_alloc_uniform(nx, 0, -1.0, 1.0);
  FGT_OK(fg_maxpool_backward(&p.d, &dy.t, &am.t, &dx.t, 0));
  fgt_download_d(gmax, &dx);
  FGT_OK(fg_avgpool_global_backward(&dv.t, &dx.t, 0));
  fgt_download_d(gavg, &dx);
  char what[64];
  snprintf(what, sizeof what, "maxpool dx on %s", fgt_kind_name(kind));
  const fgt_fd_opts element = {1.0 / 128, 1e-5, 1e-3, 1, 1e-3, NULL, 0};
  fgt_device_loss_ctx lmax = {&p.x, NULL, maxpool_dev_forward, &p, &p.y, r, NULL};
  fgt_fd_check_device(what, &lmax, x, nx, gmax, &element);
  double *v = fgt_random_direction(nx, 1201);
  const double *dirs[1] = {v};
  const fgt_fd_opts along = {1.0 / 128, 1e-6, 2e-3, 1, 0.0, dirs, 1};
  snprintf(what, sizeof what, "avgpool dx on %s", fgt_kind_name(kind));
  fgt_device_loss_ctx lavg = {&p.x, NULL, avgpool_dev_forward, &p, &p.v, rv, NULL};
  fgt_fd_check_device(what, &lavg, x, nx, gavg, &along);
  free(v), free(x), free(r), free(rv), free(gmax), free(gavg);
  fgt_dbuf_free(&p.x), fgt_dbuf_free(&p.y), fgt_dbuf_free(&p.v), fgt_dbuf_free(&am);
  fgt_dbuf_free(&dy), fgt_dbuf_free(&dv), fgt_dbuf_free(&dx);
}

Test(pooling, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(pooling, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
