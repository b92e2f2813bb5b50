/* Op suite: the elementwise ops (relu forward and backward, add, axpy, scale, copy, fill, the
 * sigmoid forward and backward, the product) and dropout on every backend. All of them but the
 * sigmoid forward (expf: tolerance class) are in the bitwise class: each output is compared
 * exactly with a float reference (tests/ref/ref_exact.h) or with a double reference whose
 * rounding is provably the float result, and the float references are themselves checked
 * against the double ones. Rows cover one element, odd counts, counts above the CPU's threading
 * threshold (32768), ReLU inputs exactly at 0 and -0, the in-place forms, accumulation, the
 * misaligned and partial-batch layouts, a hand-derived add with differing shapes, dropout with
 * p = 0 and the statistics of its mask, and the entry points' value and shape errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_exact.h"
#include "ref/ref_math.h"

/* A row of every elementwise table. */
typedef struct ew_row {
  int64_t n;
  int form;         /* EW_* */
  float value;      /* alpha (axpy, scale), the fill value, or p (dropout) */
  int layout;       /* FGT_ALIGNED, FGT_MISALIGNED, FGT_PARTIAL */
  fg_status expect; /* value errors: the status, and a fragment of the message */
  const char *text;
} ew_row;

enum {
  EW_PLAIN,
  EW_ACCUMULATE,  /* the output is accumulated into (pre-filled with known values) */
  EW_IN_PLACE,    /* y == x (add: y == x1; relu backward: dx == dy) */
  EW_IN_PLACE_X2, /* add: y == x2 */
  EW_HAND,        /* literal inputs and hand-derived outputs */
  EW_NO_OUTPUT,   /* the output tensor is missing */
};

static const char *form_name(int form) {
  static const char *names[] = {"",         " accumulate",    " in place", " in place (y == x2)",
                                " by hand", " without output"};
  return names[form];
}

static const ew_row *start(fgt_op *op, const char *opname, const ew_row *r) {
  fgt_name(op, "%s n%lld%s%s value %g", opname, (long long)r->n, form_name(r->form),
           fgt_layout_name(r->layout), (double)r->value);
  op->row = r;
  fgt_layout(op, r->layout);
  if (r->expect != FG_OK) fgt_expect_error(op, r->expect, r->text, NULL);
  return r;
}

/* The rounded double reference as the expectation of argument i (exact: see ref_exact.h). */
static void expect_rounded(fgt_op *op, int i, const double *ref) {
  double *want = fgt_expect(op, i, FGT_EXACT);
  for (int64_t k = 0; k < fgt_numel(op, i); k++) want[k] = (float)ref[k];
}

/* A float reference as the expectation of argument i, after checking it against the double
 * reference `ref`. */
static void expect_float_ref(fgt_op *op, int i, const float *got, const double *ref) {
  const int64_t n = fgt_numel(op, i);
  double *want = fgt_expect(op, i, FGT_EXACT);
  for (int64_t k = 0; k < n; k++) want[k] = got[k];
  fgt_check_reference(op->name, want, ref, n);
}

enum { X = 0, X2 = 1, Y = 2, DY = 3, DX = 4 };

/* ----------------------------------------------------------------------------------------- */
/* ReLU                                                                                       */

static const ew_row RELU_ROWS[] = {
    {1, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_PLAIN, 0, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_IN_PLACE, 0, FGT_ALIGNED, FG_OK, NULL},
    {70001, EW_IN_PLACE, 0, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_ACCUMULATE, 0, FGT_ALIGNED, FG_OK, NULL}, /* backward only */
    {70001, EW_ACCUMULATE, 0, FGT_PARTIAL, FG_OK, NULL},
};

/* x uniform in [-2, 2) with every fifth value exactly 0 and x[3] = -0. */
static void relu_input(fgt_op *op, int i) {
  float *x = fgt_fill(op, i, -2.0f, 2.0f);
  for (int64_t k = 0; k < fgt_numel(op, i); k += 5) x[k] = 0.0f;
  if (fgt_numel(op, i) > 3) x[3] = -0.0f;
}

static fg_status relu_forward_call(fgt_op *op) {
  return fg_relu_forward(fgt_t(op, X), fgt_t(op, Y));
}
static fg_status relu_forward_in_place(fgt_op *op) {
  return fg_relu_forward(fgt_t(op, X), fgt_t(op, X));
}

/* The forward suite runs the first six rows (the accumulate rows are backward only). */
static void build_relu_forward(int index, fgt_op *op) {
  const ew_row *r = start(op, "relu_forward", &RELU_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE;
  fgt_arg1(op, X, "x", in_place ? FGT_INOUT : FGT_IN, r->n);
  relu_input(op, X);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_relu_forward(fgt_widen(op, X), r->n, ref);
  if (!in_place) fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  expect_rounded(op, in_place ? X : Y, ref);
  op->call = in_place ? relu_forward_in_place : relu_forward_call;
}

static fg_status relu_backward_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_relu_backward(fgt_t(op, Y), fgt_t(op, DY), fgt_t(op, DX), r->form == EW_ACCUMULATE);
}
static fg_status relu_backward_in_place(fgt_op *op) {
  return fg_relu_backward(fgt_t(op, Y), fgt_t(op, DY), fgt_t(op, DY), 0);
}

/* y is a forward output (zeros where x <= 0, including the exact zeros), so zero inputs get a
 * zero gradient. */
static void build_relu_backward(int index, fgt_op *op) {
  const ew_row *r = start(op, "relu_backward", &RELU_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE, acc = r->form == EW_ACCUMULATE;
  float *y = fgt_arg1(op, Y, "y", FGT_IN, r->n);
  relu_input(op, Y);
  for (int64_t k = 0; k < r->n; k++) y[k] = y[k] > 0.0f ? y[k] : 0.0f;
  fgt_arg1(op, DY, "dy", in_place ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, DY, -1.0f, 1.0f);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_relu_backward(fgt_widen(op, Y), fgt_widen(op, DY), r->n, ref);
  if (!in_place) fgt_arg1(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT, r->n);
  if (acc) {
    fgt_fill(op, DX, -1.0f, 1.0f);
    const double *dx0 = fgt_widen(op, DX);
    for (int64_t k = 0; k < r->n; k++) ref[k] += dx0[k]; /* one float addition: exact */
  }
  expect_rounded(op, in_place ? DY : DX, ref);
  op->call = in_place ? relu_backward_in_place : relu_backward_call;
}

static const fgt_error_row RELU_BACKWARD_ERRORS[] = {
    {1, DY, 1, {5}, -1, FG_ERR_SHAPE,
     "relu_backward: dy has shape [5] (5 elements), expected 7", NULL},
};

static const fgt_suite RELU_FORWARD = {"relu_forward", 6, build_relu_forward, NULL, 0};
static const fgt_suite RELU_BACKWARD = {"relu_backward", 8, build_relu_backward,
                                        RELU_BACKWARD_ERRORS, 1};
FGT_SUITE_TESTS(relu, forward, RELU_FORWARD)
FGT_SUITE_TESTS(relu, backward, RELU_BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* add                                                                                        */

static const ew_row ADD_ROWS[] = {
    {1, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_PLAIN, 0, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {1001, EW_IN_PLACE, 0, FGT_ALIGNED, FG_OK, NULL},
    {70001, EW_IN_PLACE_X2, 0, FGT_MISALIGNED, FG_OK, NULL},
    /* Shapes need not agree, only element counts: [2,3] + [6] -> [3,2], 1..6 + 6..1 = 7. */
    {6, EW_HAND, 0, FGT_ALIGNED, FG_OK, NULL},
};

static fg_status add_call(fgt_op *op) { return fg_add(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, Y)); }
static fg_status add_into_x1(fgt_op *op) {
  return fg_add(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, X));
}
static fg_status add_into_x2(fgt_op *op) {
  return fg_add(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, X2));
}

static void build_add(int index, fgt_op *op) {
  const ew_row *r = start(op, "add", &ADD_ROWS[index]);
  if (r->form == EW_HAND) {
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    float *a = fgt_arg_declare(op, X, "x1", FG_F32, FGT_IN, 2, s23);
    float *b = fgt_arg1(op, X2, "x2", FGT_IN, 6);
    fgt_arg_declare(op, Y, "y", FG_F32, FGT_OUT, 2, s32);
    double *want = fgt_expect(op, Y, FGT_EXACT);
    for (int k = 0; k < 6; k++) a[k] = (float)(k + 1), b[k] = (float)(6 - k), want[k] = 7.0;
    op->call = add_call;
    return;
  }
  fgt_arg1(op, X, "x1", r->form == EW_IN_PLACE ? FGT_INOUT : FGT_IN, r->n);
  fgt_arg1(op, X2, "x2", r->form == EW_IN_PLACE_X2 ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, X, -3.0f, 3.0f);
  fgt_fill(op, X2, -3.0f, 3.0f);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_add(fgt_widen(op, X), fgt_widen(op, X2), r->n, ref);
  int out = Y;
  op->call = add_call;
  if (r->form == EW_IN_PLACE) out = X, op->call = add_into_x1;
  if (r->form == EW_IN_PLACE_X2) out = X2, op->call = add_into_x2;
  if (out == Y) fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  expect_rounded(op, out, ref);
}

static const fgt_error_row ADD_ERRORS[] = {
    {6, X2, 1, {5}, -1, FG_ERR_SHAPE,
     "add: x2 has shape [5] (5 elements), expected 6 elements", NULL},
    {6, Y, 1, {7}, -1, FG_ERR_SHAPE, "add: y has shape [7]", NULL},
};
static const fgt_suite ADD = {"add", 7, build_add, ADD_ERRORS, 2};
FGT_SUITE_TESTS(arith, add, ADD)

/* ----------------------------------------------------------------------------------------- */
/* axpy, scale                                                                                */

static const ew_row AXPY_ROWS[] = {
    {1, EW_ACCUMULATE, -0.75f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_ACCUMULATE, 1.5f, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_ACCUMULATE, -0.75f, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_ACCUMULATE, 0.3f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_ACCUMULATE, INFINITY, FGT_ALIGNED, FG_ERR_INVALID, "axpy: alpha is inf"},
};

static fg_status axpy_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_axpy(r->value, fgt_t(op, X), fgt_t(op, Y));
}

static void build_axpy(int index, fgt_op *op) {
  const ew_row *r = start(op, "axpy", &AXPY_ROWS[index]);
  fgt_arg1(op, X, "x", FGT_IN, r->n);
  float *y = fgt_arg1(op, Y, "y", FGT_INOUT, r->n);
  const float *x = fgt_fill(op, X, -3.0f, 3.0f);
  fgt_fill(op, Y, -3.0f, 3.0f);
  op->call = axpy_call;
  if (r->expect != FG_OK) return;
  double *ref = fgt_widen(op, Y);
  fg_ref_axpy(r->value, fgt_widen(op, X), r->n, ref);
  float *f = fgt_scratch(op, (size_t)r->n * sizeof *f);
  memcpy(f, y, (size_t)r->n * sizeof *f);
  fg_ref_f32_axpy(r->value, x, r->n, f);
  expect_float_ref(op, Y, f, ref);
}

static const fgt_suite AXPY = {"axpy", 5, build_axpy, NULL, 0};
FGT_SUITE_TESTS(arith, axpy, AXPY)

static const ew_row SCALE_ROWS[] = {
    {1, EW_PLAIN, 1.5f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, -3.0f, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_PLAIN, 1.5f, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_IN_PLACE, -3.0f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_IN_PLACE, 0.1f, FGT_MISALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, NAN, FGT_ALIGNED, FG_ERR_INVALID, "scale: alpha is nan"},
};

static fg_status scale_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_scale(r->value, fgt_t(op, X), fgt_t(op, r->form == EW_IN_PLACE ? X : Y));
}

static void build_scale(int index, fgt_op *op) {
  const ew_row *r = start(op, "scale", &SCALE_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE;
  fgt_arg1(op, X, "x", in_place ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, X, -3.0f, 3.0f);
  if (!in_place) fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  op->call = scale_call;
  if (r->expect != FG_OK) return;
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_scale(r->value, fgt_widen(op, X), r->n, ref);
  expect_rounded(op, in_place ? X : Y, ref);
}

static const fgt_error_row SCALE_ERRORS[] = {
    {1, X, 0, {0}, FG_I32, FG_ERR_SHAPE, "scale: x has dtype i32, expected f32", NULL},
};
static const fgt_suite SCALE = {"scale", 6, build_scale, SCALE_ERRORS, 1};
FGT_SUITE_TESTS(arith, scale, SCALE)

/* ----------------------------------------------------------------------------------------- */
/* copy, fill                                                                                 */

static const ew_row COPY_ROWS[] = {
    {1, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0, FGT_MISALIGNED, FG_OK, NULL},
    {70001, EW_PLAIN, 0, FGT_PARTIAL, FG_OK, NULL},
    {1001, EW_IN_PLACE, 0, FGT_ALIGNED, FG_OK, NULL},
};

static fg_status copy_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_copy(fgt_t(op, X), fgt_t(op, r->form == EW_IN_PLACE ? X : Y));
}

static void build_copy(int index, fgt_op *op) {
  const ew_row *r = start(op, "copy", &COPY_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE;
  fgt_arg1(op, X, "x", in_place ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, X, -3.0f, 3.0f);
  if (!in_place) fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  expect_rounded(op, in_place ? X : Y, fgt_widen(op, X));
  op->call = copy_call;
}

static const fgt_error_row COPY_ERRORS[] = {
    {1, Y, 1, {5}, -1, FG_ERR_SHAPE, "copy: y has shape [5]", NULL},
};
static const fgt_suite COPY = {"copy", 4, build_copy, COPY_ERRORS, 1};
FGT_SUITE_TESTS(arith, copy, COPY)

static const ew_row FILL_ROWS[] = {
    {1, EW_PLAIN, -2.5f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0.0f, FGT_MISALIGNED, FG_OK, NULL},
    {70001, EW_PLAIN, -2.5f, FGT_PARTIAL, FG_OK, NULL},
    {1, EW_NO_OUTPUT, 1.0f, FGT_ALIGNED, FG_ERR_INVALID, "fill: y is missing"},
};

static fg_status fill_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_fill(fgt_t(op, Y), r->value);
}

static void build_fill(int index, fgt_op *op) {
  const ew_row *r = start(op, "fill", &FILL_ROWS[index]);
  op->call = fill_call;
  if (r->form == EW_NO_OUTPUT) return;
  fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  double *want = fgt_expect(op, Y, FGT_EXACT);
  for (int64_t k = 0; k < r->n; k++) want[k] = r->value;
}

static const fgt_suite FILL = {"fill", 4, build_fill, NULL, 0};
FGT_SUITE_TESTS(arith, fill, FILL)

/* ----------------------------------------------------------------------------------------- */
/* Dropout                                                                                    */

static const ew_row DROPOUT_ROWS[] = {
    {1001, EW_PLAIN, 0.0f, FGT_ALIGNED, FG_OK, NULL}, /* p = 0: the identity */
    {1, EW_PLAIN, 0.5f, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0.3f, FGT_MISALIGNED, FG_OK, NULL},
    {100000, EW_PLAIN, 0.1f, FGT_ALIGNED, FG_OK, NULL},
    {100000, EW_PLAIN, 0.3f, FGT_PARTIAL, FG_OK, NULL},
    {100003, EW_PLAIN, 0.5f, FGT_ALIGNED, FG_OK, NULL},
    {1001, EW_ACCUMULATE, 0.0f, FGT_ALIGNED, FG_OK, NULL}, /* backward: dx = dx + dy */
    {100000, EW_ACCUMULATE, 0.25f, FGT_MISALIGNED, FG_OK, NULL},
    {4, EW_PLAIN, 1.0f, FGT_ALIGNED, FG_ERR_INVALID, "p is 1, expected 0 <= p < 1"},
    {4, EW_PLAIN, -0.1f, FGT_ALIGNED, FG_ERR_INVALID, "p is -0.1"},
    {4, EW_PLAIN, NAN, FGT_ALIGNED, FG_ERR_INVALID, "p is nan"},
};

static uint64_t dropout_key(const fgt_op *op) { return fg_rng_key(op->seed, FG_RNG_DROPOUT, 1, 2); }

static fg_status dropout_forward_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_dropout_forward(fgt_t(op, X), fgt_t(op, Y), r->value, dropout_key(op));
}

static fg_status dropout_backward_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_dropout_backward(fgt_t(op, DY), fgt_t(op, DX), r->value, dropout_key(op),
                             r->form == EW_ACCUMULATE);
}

/* The kept fraction of a large mask is Binomial(n, 1 - p) / n: within 5 standard deviations. */
static void check_mask_fraction(const fgt_op *op, const float *out, int64_t n, float p) {
  if (n < 10000 || p == 0.0f) return;
  int64_t kept = 0;
  for (int64_t k = 0; k < n; k++) kept += out[k] != 0.0f;
  const double frac = (double)kept / (double)n, sd = sqrt(p * (1.0 - p) / (double)n);
  cr_assert(fabs(frac - (1.0 - p)) < 5 * sd, "%s: kept fraction %g, expected %g", op->name, frac,
            1.0 - p);
}

/* Inputs >= 0.5, so an output of 0 means a dropped element. The accumulate rows have no
 * forward counterpart: they run as plain rows there. */
static void build_dropout_forward(int index, fgt_op *op) {
  const ew_row *r = start(op, "dropout_forward", &DROPOUT_ROWS[index]);
  const float *x = fgt_arg1(op, X, "x", FGT_IN, r->n);
  fgt_fill(op, X, 0.5f, 2.0f);
  fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  op->call = dropout_forward_call;
  if (r->expect != FG_OK) return;
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_dropout_forward(fgt_widen(op, X), r->n, r->value, dropout_key(op), ref);
  float *f = fgt_scratch(op, (size_t)r->n * sizeof *f);
  fg_ref_f32_dropout(x, r->n, r->value, dropout_key(op), 0, f);
  expect_float_ref(op, Y, f, ref);
  check_mask_fraction(op, f, r->n, r->value);
}

/* Backward recomputes the forward's mask from the key: the same reference with dy for x. */
static void build_dropout_backward(int index, fgt_op *op) {
  const ew_row *r = start(op, "dropout_backward", &DROPOUT_ROWS[index]);
  const int acc = r->form == EW_ACCUMULATE;
  const float *dy = fgt_arg1(op, DY, "dy", FGT_IN, r->n);
  fgt_fill(op, DY, 0.5f, 2.0f);
  float *dx = fgt_arg1(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT, r->n);
  op->call = dropout_backward_call;
  if (r->expect != FG_OK) return;
  if (acc && r->value == 0.0f)
    memcpy(dx, dy, (size_t)r->n * sizeof *dx); /* want 2 dy */
  else if (acc)
    fgt_fill(op, DX, -1.0f, 1.0f);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_dropout_backward(fgt_widen(op, DY), r->n, r->value, dropout_key(op), ref);
  float *f = fgt_scratch(op, (size_t)r->n * sizeof *f);
  if (acc) {
    const double *dx0 = fgt_widen(op, DX);
    for (int64_t k = 0; k < r->n; k++) ref[k] += dx0[k];
    memcpy(f, dx, (size_t)r->n * sizeof *f);
  }
  fg_ref_f32_dropout(dy, r->n, r->value, dropout_key(op), acc, f);
  if (acc && r->value == 0.0f)
    for (int64_t k = 0; k < r->n; k++)
      cr_assert(f[k] == 2.0f * dy[k], "%s: p = 0 accumulates dy onto dy: %g", op->name, f[k]);
  expect_float_ref(op, DX, f, ref);
}

static const fgt_suite DROPOUT_FORWARD = {"dropout_forward", 11, build_dropout_forward, NULL, 0};
static const fgt_suite DROPOUT_BACKWARD = {"dropout_backward", 11, build_dropout_backward, NULL, 0};
FGT_SUITE_TESTS(dropout, forward, DROPOUT_FORWARD)
FGT_SUITE_TESTS(dropout, backward, DROPOUT_BACKWARD)

/* Masks are functions of the key: independent keys with p = 1/2 give masks that differ in about
 * half of the positions (every backend reproduces these masks bit for bit, above). */
Test(dropout, different_keys_give_independent_masks) {
  const int64_t n = 10000;
  uint64_t k1 = fg_rng_key(1, FG_RNG_DROPOUT, 5, 0), k2 = fg_rng_key(1, FG_RNG_DROPOUT, 6, 0);
  int64_t differ = 0;
  for (int64_t i = 0; i < n; i++)
    differ += (fg_rng_uniform_at(k1, (uint64_t)i) >= 0.5f) !=
              (fg_rng_uniform_at(k2, (uint64_t)i) >= 0.5f);
  cr_assert(differ > 4500 && differ < 5500,
            "different keys: masks differ at %lld of %lld positions", (long long)differ,
            (long long)n);
}

/* ----------------------------------------------------------------------------------------- */
/* Sigmoid                                                                                    */

/* The forward calls expf, which libm and the GPU round differently: tolerance class against the
 * double reference. The hand row: sigmoid(0) = 1/2, sigmoid(-0) = 1/2, and the saturations
 * (exp(200) overflows float: 1 / inf = 0; exp(-200) underflows: 1 / 1 = 1). */
static const ew_row SIGMOID_ROWS[] = {
    {1, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_PLAIN, 0, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {1001, EW_IN_PLACE, 0, FGT_ALIGNED, FG_OK, NULL},
    {4, EW_HAND, 0, FGT_ALIGNED, FG_OK, NULL},
    {1001, EW_ACCUMULATE, 0, FGT_ALIGNED, FG_OK, NULL}, /* backward only */
    {70001, EW_ACCUMULATE, 0, FGT_MISALIGNED, FG_OK, NULL},
};

static fg_status sigmoid_forward_call(fgt_op *op) {
  return fg_sigmoid_forward(fgt_t(op, X), fgt_t(op, Y));
}
static fg_status sigmoid_forward_in_place(fgt_op *op) {
  return fg_sigmoid_forward(fgt_t(op, X), fgt_t(op, X));
}

/* The forward suite runs the first six rows. */
static void build_sigmoid_forward(int index, fgt_op *op) {
  const ew_row *r = start(op, "sigmoid_forward", &SIGMOID_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE;
  float *x = fgt_arg1(op, X, "x", in_place ? FGT_INOUT : FGT_IN, r->n);
  if (r->form == EW_HAND) {
    x[0] = 0.0f, x[1] = -0.0f, x[2] = -200.0f, x[3] = 200.0f;
  } else {
    fgt_fill(op, X, -8.0f, 8.0f);
  }
  if (!in_place) fgt_arg1(op, Y, "y", FGT_OUT, r->n);
  double *want = fgt_expect(op, in_place ? X : Y, FGT_TOL);
  if (r->form == EW_HAND) {
    want[0] = want[1] = 0.5, want[2] = 0.0, want[3] = 1.0;
  } else {
    fg_ref_sigmoid_forward(fgt_widen(op, X), r->n, want);
  }
  op->call = in_place ? sigmoid_forward_in_place : sigmoid_forward_call;
}

static fg_status sigmoid_backward_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_sigmoid_backward(fgt_t(op, Y), fgt_t(op, DY), fgt_t(op, DX), r->form == EW_ACCUMULATE);
}
static fg_status sigmoid_backward_in_place(fgt_op *op) {
  return fg_sigmoid_backward(fgt_t(op, Y), fgt_t(op, DY), fgt_t(op, DY), 0);
}

/* y in (0, 1) as a forward output; the hand row has y = 1/2 (gradient dy / 4, exact), 0 and 1
 * (no gradient). Bitwise class: a float reference doing dy (y (1 - y)) (and dx + that), checked
 * against the double reference. */
static void build_sigmoid_backward(int index, fgt_op *op) {
  const ew_row *r = start(op, "sigmoid_backward", &SIGMOID_ROWS[index]);
  const int in_place = r->form == EW_IN_PLACE, acc = r->form == EW_ACCUMULATE;
  float *y = fgt_arg1(op, Y, "y", FGT_IN, r->n);
  float *dy = fgt_arg1(op, DY, "dy", in_place ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, DY, -1.0f, 1.0f);
  if (r->form == EW_HAND) {
    y[0] = 0.5f, y[1] = 0.0f, y[2] = 1.0f, y[3] = 0.5f;
    dy[0] = 1.0f, dy[1] = 3.0f, dy[2] = -2.0f, dy[3] = -0.5f;
  } else {
    fgt_fill(op, Y, 0.001f, 0.999f);
  }
  float *dx = in_place ? NULL : fgt_arg1(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT, r->n);
  if (acc) fgt_fill(op, DX, -1.0f, 1.0f);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_sigmoid_backward(fgt_widen(op, Y), fgt_widen(op, DY), r->n, ref);
  float *f = fgt_scratch(op, (size_t)r->n * sizeof *f);
  for (int64_t k = 0; k < r->n; k++) {
    const float g = dy[k] * (y[k] * (1.0f - y[k]));
    f[k] = acc ? dx[k] + g : g;
  }
  if (acc) {
    const double *dx0 = fgt_widen(op, DX);
    for (int64_t k = 0; k < r->n; k++) ref[k] += dx0[k];
  }
  if (r->form == EW_HAND) {
    const double hand[4] = {0.25, 0.0, 0.0, -0.125};
    for (int k = 0; k < 4; k++) cr_assert(ref[k] == hand[k], "%s: reference %g, by hand %g", op->name, ref[k], hand[k]);
  }
  expect_float_ref(op, in_place ? DY : DX, f, ref);
  op->call = in_place ? sigmoid_backward_in_place : sigmoid_backward_call;
}

static const fgt_error_row SIGMOID_FORWARD_ERRORS[] = {
    {5, Y, 1, {5}, -1, FG_ERR_SHAPE, "sigmoid_forward: y has shape [5] (5 elements), expected 4", NULL},
};
static const fgt_error_row SIGMOID_BACKWARD_ERRORS[] = {
    {1, DY, 1, {5}, -1, FG_ERR_SHAPE, "sigmoid_backward: dy has shape [5] (5 elements), expected 7", NULL},
    {1, DX, 1, {7}, FG_I32, FG_ERR_SHAPE, "sigmoid_backward: dx has dtype", NULL},
};
static const fgt_suite SIGMOID_FORWARD = {"sigmoid_forward", 6, build_sigmoid_forward, SIGMOID_FORWARD_ERRORS, 1};
static const fgt_suite SIGMOID_BACKWARD = {"sigmoid_backward", 8, build_sigmoid_backward,
                                           SIGMOID_BACKWARD_ERRORS, 2};
FGT_SUITE_TESTS(sigmoid, forward, SIGMOID_FORWARD)
FGT_SUITE_TESTS(sigmoid, backward, SIGMOID_BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* mul (the product, and with accumulate its gradient to one factor)                          */

static const ew_row MUL_ROWS[] = {
    {1, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, EW_PLAIN, 0, FGT_MISALIGNED, FG_OK, NULL},
    {1001, EW_PLAIN, 0, FGT_PARTIAL, FG_OK, NULL},
    {70001, EW_PLAIN, 0, FGT_ALIGNED, FG_OK, NULL},
    {1001, EW_IN_PLACE, 0, FGT_ALIGNED, FG_OK, NULL},
    {70001, EW_IN_PLACE_X2, 0, FGT_MISALIGNED, FG_OK, NULL},
    {7, EW_ACCUMULATE, 0, FGT_ALIGNED, FG_OK, NULL},
    {70001, EW_ACCUMULATE, 0, FGT_PARTIAL, FG_OK, NULL},
    /* Shapes need not agree, only element counts: [2,3] * [6] -> [3,2], (1..6) (6..1). */
    {6, EW_HAND, 0, FGT_ALIGNED, FG_OK, NULL},
};

static fg_status mul_call(fgt_op *op) {
  const ew_row *r = op->row;
  return fg_mul(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, Y), r->form == EW_ACCUMULATE);
}
static fg_status mul_into_x1(fgt_op *op) { return fg_mul(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, X), 0); }
static fg_status mul_into_x2(fgt_op *op) { return fg_mul(fgt_t(op, X), fgt_t(op, X2), fgt_t(op, X2), 0); }

/* A product of two floats is exact in double: its rounding is the float product (bitwise). The
 * accumulating form (dx + dy x2, the backward) against a float reference checked against the
 * double one. */
static void build_mul(int index, fgt_op *op) {
  const ew_row *r = start(op, "mul", &MUL_ROWS[index]);
  op->call = mul_call;
  if (r->form == EW_HAND) {
    const int64_t s23[2] = {2, 3}, s32[2] = {3, 2};
    float *a = fgt_arg_declare(op, X, "x1", FG_F32, FGT_IN, 2, s23);
    float *b = fgt_arg1(op, X2, "x2", FGT_IN, 6);
    fgt_arg_declare(op, Y, "y", FG_F32, FGT_OUT, 2, s32);
    double *want = fgt_expect(op, Y, FGT_EXACT);
    const double hand[6] = {6, 10, 12, 12, 10, 6};
    for (int k = 0; k < 6; k++) a[k] = (float)(k + 1), b[k] = (float)(6 - k), want[k] = hand[k];
    return;
  }
  const int acc = r->form == EW_ACCUMULATE;
  const float *a = fgt_arg1(op, X, "x1", r->form == EW_IN_PLACE ? FGT_INOUT : FGT_IN, r->n);
  const float *b = fgt_arg1(op, X2, "x2", r->form == EW_IN_PLACE_X2 ? FGT_INOUT : FGT_IN, r->n);
  fgt_fill(op, X, -3.0f, 3.0f);
  fgt_fill(op, X2, -3.0f, 3.0f);
  double *ref = fgt_scratch_d(op, r->n);
  fg_ref_mul(fgt_widen(op, X), fgt_widen(op, X2), r->n, ref);
  int out = Y;
  if (r->form == EW_IN_PLACE) out = X, op->call = mul_into_x1;
  if (r->form == EW_IN_PLACE_X2) out = X2, op->call = mul_into_x2;
  if (out != Y) {
    expect_rounded(op, out, ref);
    return;
  }
  float *y = fgt_arg1(op, Y, "y", acc ? FGT_INOUT : FGT_OUT, r->n);
  if (!acc) {
    expect_rounded(op, Y, ref);
    return;
  }
  fgt_fill(op, Y, -1.0f, 1.0f);
  const double *y0 = fgt_widen(op, Y);
  float *f = fgt_scratch(op, (size_t)r->n * sizeof *f);
  for (int64_t k = 0; k < r->n; k++) f[k] = y[k] + a[k] * b[k], ref[k] += y0[k];
  expect_float_ref(op, Y, f, ref);
}

static const fgt_error_row MUL_ERRORS[] = {
    {8, X2, 1, {5}, -1, FG_ERR_SHAPE, "mul: x2 has shape [5] (5 elements), expected 6 elements", NULL},
    {8, Y, 1, {7}, -1, FG_ERR_SHAPE, "mul: y has shape [7]", NULL},
};
static const fgt_suite MUL = {"mul", 9, build_mul, MUL_ERRORS, 2};
FGT_SUITE_TESTS(arith, mul, MUL)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

typedef struct relu_dev {
  fgt_dbuf x, y;
} relu_dev;

static fg_status relu_dev_forward(void *p) {
  relu_dev *c = p;
  return fg_relu_forward(&c->x.t, &c->y.t);
}

/* Each backend's relu_backward against central differences of its relu_forward, element by
 * element, on inputs with exact zeros and values near zero: where the step crosses the kink
 * the one-sided differences disagree by |dy| and the element is skipped; elsewhere y moves
 * exactly with x (inputs and step on a grid exact in float), so the differences are exact. */
static void relu_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t n = 101;
  relu_dev c = {fgt_dbuf_alloc(dev, FG_F32, 1, &n), fgt_dbuf_alloc(dev, FG_F32, 1, &n)};
  fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 1, &n), dx = fgt_dbuf_alloc(dev, FG_F32, 1, &n);
  double *x = fgt_random_direction(n, 40), *r = fgt_random_direction(n, 41),
         *g = fgt_random_direction(n, 0);
  for (int64_t i = 0; i < n; i += 5) x[i] = 0.0; /* exact kinks */
  fgt_upload_d(&c.x, x), fgt_upload_d(&dy, r);
  fg_status s = relu_dev_forward(&c);
  if (s == FG_ERR_UNSUPPORTED) cr_skip_test("relu on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  FGT_OK(fg_relu_backward(&c.y.t, &dy.t, &dx.t, 0));
  fgt_download_d(g, &dx);
  const fgt_fd_opts o = {1.0 / 256, 1e-12, 1e-12, 1, 1e-3, NULL, 0};
  fgt_device_loss_ctx lc = {&c.x, NULL, relu_dev_forward, &c, &c.y, r, NULL};
  char what[48];
  snprintf(what, sizeof what, "relu dx on %s", fgt_kind_name(kind));
  fgt_fd_check_device(what, &lc, x, n, g, &o);
  free(x), free(r), free(g);
  fgt_dbuf_free(&c.x), fgt_dbuf_free(&c.y), fgt_dbuf_free(&dy), fgt_dbuf_free(&dx);
}

Test(relu, backward_matches_finite_differences_cpu) { relu_fd(FG_DEV_CPU); }
Test(relu, backward_matches_finite_differences_cuda) { relu_fd(FG_DEV_CUDA); }

typedef struct sigmoid_mul_dev {
  fgt_dbuf x, x2, y;
  int mul;
} sigmoid_mul_dev;

static fg_status sigmoid_mul_dev_forward(void *p) {
  sigmoid_mul_dev *c = p;
  return c->mul ? fg_mul(&c->x.t, &c->x2.t, &c->y.t, 0) : fg_sigmoid_forward(&c->x.t, &c->y.t);
}

/* Each backend's sigmoid_backward, and mul's gradients to both factors (mul with accumulate, the
 * way the mul layer runs them, onto a zeroed and onto a prefilled gradient), against central
 * differences of its forward, element by element (smooth maps: no kinks). */
static void sigmoid_mul_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t n = 97;
  sigmoid_mul_dev c = {fgt_dbuf_alloc(dev, FG_F32, 1, &n), fgt_dbuf_alloc(dev, FG_F32, 1, &n),
                       fgt_dbuf_alloc(dev, FG_F32, 1, &n), 0};
  fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 1, &n), dx = fgt_dbuf_alloc(dev, FG_F32, 1, &n);
  double *x = fgt_alloc_uniform(n, 50, -4.0, 4.0), *x2 = fgt_alloc_uniform(n, 51, -2.0, 2.0),
         *r = fgt_random_direction(n, 52), *g = fgt_random_direction(n, 0), *base = fgt_random_direction(n, 53);
  fgt_quantize(x, n, 1.0 / 1024), fgt_quantize(x2, n, 1.0 / 1024);
  fgt_upload_d(&c.x, x), fgt_upload_d(&c.x2, x2), fgt_upload_d(&dy, r);
  fg_status s = sigmoid_mul_dev_forward(&c);
  if (s == FG_ERR_UNSUPPORTED) cr_skip_test("sigmoid on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  FGT_OK(fg_sigmoid_backward(&c.y.t, &dy.t, &dx.t, 0));
  fgt_download_d(g, &dx);
  char what[48];
  const fgt_fd_opts smooth = {1.0 / 256, 1e-5, 1e-3, 1, 0.0, NULL, 0};
  fgt_device_loss_ctx lc = {&c.x, NULL, sigmoid_mul_dev_forward, &c, &c.y, r, NULL};
  snprintf(what, sizeof what, "sigmoid dx on %s", fgt_kind_name(kind));
  fgt_fd_check_device(what, &lc, x, n, g, &smooth);
  /* mul: dx1 = 0 + dy x2 (accumulated onto zeros), dx2 = base + dy x1 (minus base) */
  c.mul = 1;
  const fgt_fd_opts linear = {1.0 / 256, 1e-6, 1e-5, 1, 0.0, NULL, 0};
  for (int k = 0; k < 2; k++) {
    double *start = calloc((size_t)n, sizeof *start);
    cr_assert_not_null(start);
    if (k == 1) fgt_quantize(memcpy(start, base, (size_t)n * sizeof *start), n, 1.0 / 64);
    fgt_upload_d(&dx, start);
    FGT_OK(fg_mul(&dy.t, k == 0 ? &c.x2.t : &c.x.t, &dx.t, 1));
    fgt_download_d(g, &dx);
    for (int64_t i = 0; i < n; i++) g[i] -= start[i];
    fgt_device_loss_ctx lm = {k == 0 ? &c.x : &c.x2, NULL, sigmoid_mul_dev_forward, &c, &c.y, r, NULL};
    snprintf(what, sizeof what, "mul dx%d on %s", k + 1, fgt_kind_name(kind));
    fgt_fd_check_device(what, &lm, k == 0 ? x : x2, n, g, &linear);
    free(start);
  }
  free(x), free(x2), free(r), free(g), free(base);
  fgt_dbuf_free(&c.x), fgt_dbuf_free(&c.x2), fgt_dbuf_free(&c.y), fgt_dbuf_free(&dy), fgt_dbuf_free(&dx);
}

Test(sigmoid, backward_and_mul_gradients_match_finite_differences_cpu) { sigmoid_mul_fd(FG_DEV_CPU); }
Test(sigmoid, backward_and_mul_gradients_match_finite_differences_cuda) { sigmoid_mul_fd(FG_DEV_CUDA); }
