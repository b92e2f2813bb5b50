/* Op suite: the losses (softmax cross-entropy with and without a class mask and the correct
 * count, KL distillation with temperature, teacher epsilon and both reductions, MSE) on every
 * backend against the double-precision references (tests/ref/ref_math.h): the loss in the loss
 * class (1e-6 relative), the correct count exactly, the gradients in the tolerance class,
 * assigned and accumulated, with weights. Rows include logits of magnitude 1e4 and 3e4, one
 * class, 100 classes, exact ties (the first argmax counts), a batch large enough for several
 * reduction blocks, hand-derived examples, and the entry points' label, value and shape
 * errors; then finite differences of the references and of each backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_math.h"

enum { Z, LABELS, MASK, DZ, T, DT };

/* ----------------------------------------------------------------------------------------- */
/* Softmax cross-entropy                                                                      */

typedef struct xent_row {
  int64_t n, k;
  float range; /* logits uniform in [-range, range) */
  int masked;  /* class mask: every third class (j % 3 == 1) masked; labels on kept classes */
  int hand;    /* XENT_HAND_* */
  int layout;
} xent_row;

enum {
  XENT_RANDOM,
  XENT_HAND_2X3,
  XENT_HAND_MASK,
  XENT_BAD_LABEL,
  XENT_NEGATIVE_LABEL,
  XENT_NO_LOSS
};

static const xent_row XENT_ROWS[] = {
    {5, 7, 3.0f, 0, XENT_RANDOM, FGT_ALIGNED},     {33, 10, 5.0f, 0, XENT_RANDOM, FGT_ALIGNED},
    {4, 3, 1e4f, 0, XENT_RANDOM, FGT_ALIGNED},     {1, 1, 1.0f, 0, XENT_RANDOM, FGT_ALIGNED},
    {17, 100, 2.0f, 0, XENT_RANDOM, FGT_ALIGNED},  {6, 11, 3e4f, 0, XENT_RANDOM, FGT_ALIGNED},
    {3000, 10, 4.0f, 0, XENT_RANDOM, FGT_ALIGNED}, /* several reduction blocks */
    {7, 11, 4.0f, 1, XENT_RANDOM, FGT_ALIGNED},
    {64, 10, 3.0f, 1, XENT_RANDOM, FGT_MISALIGNED},
    {9, 13, 3.0f, 0, XENT_RANDOM, FGT_PARTIAL},
    {2, 3, 0.0f, 0, XENT_HAND_2X3, FGT_ALIGNED},   {1, 3, 0.0f, 1, XENT_HAND_MASK, FGT_ALIGNED},
    {2, 3, 1.0f, 0, XENT_BAD_LABEL, FGT_ALIGNED},
    {2, 3, 1.0f, 0, XENT_NEGATIVE_LABEL, FGT_ALIGNED},
    {2, 3, 1.0f, 0, XENT_NO_LOSS, FGT_ALIGNED},
};
enum { XENT_ROW_COUNT = sizeof XENT_ROWS / sizeof XENT_ROWS[0], XENT_BASE = 10 };

/* Variants: 0 weight 1 with the gradient and the count; 1 weight 0.7 accumulating the
 * gradient; 2 weight 2.5, the loss alone. */
static const float XENT_WEIGHTS[3] = {1.0f, 0.7f, 2.5f};

typedef struct xent_case {
  const xent_row *r;
  int variant;
  float weight;
} xent_case;

static fg_status xent_call(fgt_op *op) {
  const xent_case *c = op->row;
  return fg_softmax_xent(fgt_t(op, Z), fgt_t(op, LABELS), fgt_t(op, MASK), c->weight, fgt_t(op, DZ),
                         c->variant == 1, c->r->hand == XENT_NO_LOSS ? NULL : &op->scalar,
                         c->variant == 0 ? &op->count : NULL);
}

/* logits row 0 = [1, 2, 3], label 2; row 1 = [0, 0, 0], label 1.
 * Row 0: logsumexp = 3 + ln(1 + e^-1 + e^-2) = 3 + ln(1.5032147244) = 3.4076059644, so its loss
 *   is 0.4076059644; softmax = [e^-2, e^-1, 1] / 1.5032147244 = [0.0900305732, 0.2447284711,
 *   0.6652409558].
 * Row 1: loss ln 3 = 1.0986122887, softmax 1/3 each; the first argmax (class 0) is not the
 *   label, while row 0's argmax 2 is: correct = 1.
 * loss = (0.4076059644 + 1.0986122887) / 2 = 0.7531091266.
 * dlogits = (softmax - onehot) / 2: row 0 [0.0450152866, 0.1223642355, -0.1673795221],
 *   row 1 [1/6, -1/3, 1/6]. Weights scale both. */
static void xent_hand_2x3(fgt_op *op, const xent_case *c, double *dz) {
  const float z[6] = {1, 2, 3, 0, 0, 0};
  const int32_t y[2] = {2, 1};
  const double g[6] = {0.0450152866, 0.1223642355, -0.1673795221, 1.0 / 6, -1.0 / 3, 1.0 / 6};
  memcpy(fgt_f32(op, Z), z, sizeof z);
  memcpy(op->args[LABELS].host, y, sizeof y);
  for (int j = 0; j < 6; j++) dz[j] = c->weight * g[j];
  fgt_expect_scalar(op, c->weight * 0.7531091266, FGT_TOL_LOSS);
  fgt_expect_count(op, 1);
}

/* logits [2, 1, 3], mask [1, 0, 1], label 0: masked logits [2, 0, 3]; loss = log(e^2 + e^0 +
 * e^3) - 2; dz = softmax - onehot on the kept classes, 0 on the masked one; the masked argmax is
 * class 2, so correct = 0. */
static void xent_hand_mask(fgt_op *op, const xent_case *c, double *dz) {
  const float z[3] = {2.0f, 1.0f, 3.0f}, m[3] = {1.0f, 0.0f, 1.0f};
  memcpy(fgt_f32(op, Z), z, sizeof z);
  memcpy(fgt_f32(op, MASK), m, sizeof m);
  ((int32_t *)op->args[LABELS].host)[0] = 0;
  const double s = exp(2.0) + 1.0 + exp(3.0);
  const double g[3] = {exp(2.0) / s - 1.0, 0.0, exp(3.0) / s};
  for (int j = 0; j < 3; j++) dz[j] = c->weight * g[j];
  fgt_expect_scalar(op, c->weight * (log(s) - 2.0), FGT_TOL_LOSS);
  fgt_expect_count(op, 0);
}

static void xent_random(fgt_op *op, const xent_row *r) {
  float *z = fgt_fill(op, Z, -r->range, r->range);
  if (r->k >= 3) /* exact ties, so the first-argmax rule is exercised */
    for (int64_t i = 0; i < r->n; i += 2) z[i * r->k + 2] = z[i * r->k + 1];
  int32_t *y = fgt_fill_labels(op, LABELS, r->k);
  if (!r->masked) return;
  float *m = fgt_f32(op, MASK);
  for (int64_t j = 0; j < r->k; j++) m[j] = j % 3 != 1;
  for (int64_t i = 0; i < r->n; i++)
    if (y[i] % 3 == 1) y[i] = 0; /* labels on kept classes */
}

static void build_xent(int index, fgt_op *op) {
  xent_case *c = fgt_scratch(op, sizeof *c);
  c->r = &XENT_ROWS[index / 3];
  c->variant = index % 3;
  c->weight = XENT_WEIGHTS[c->variant];
  const xent_row *r = c->r;
  fgt_name(op, "softmax_xent n%lld k%lld range %g%s weight %g%s%s", (long long)r->n,
           (long long)r->k, (double)r->range, r->masked ? " masked" : "", (double)c->weight,
           c->variant == 1   ? " accumulate"
           : c->variant == 2 ? " loss only"
                             : "",
           fgt_layout_name(r->layout));
  op->row = c;
  op->call = xent_call;
  fgt_layout(op, r->layout);
  fgt_arg2(op, Z, "logits", FGT_IN, r->n, r->k);
  fgt_arg_declare(op, LABELS, "labels", FG_I32, FGT_IN, 1, &r->n);
  if (r->masked) fgt_arg1(op, MASK, "class_mask", FGT_IN, r->k);
  if (c->variant != 2)
    fgt_arg2(op, DZ, "dlogits", c->variant == 1 ? FGT_INOUT : FGT_OUT, r->n, r->k);
  if (c->variant == 1) fgt_fill(op, DZ, -1.0f, 1.0f);
  double *dz = c->variant != 2 ? fgt_expect(op, DZ, FGT_TOL) : fgt_scratch_d(op, r->n * r->k);
  switch (r->hand) {
    case XENT_HAND_2X3: xent_hand_2x3(op, c, dz); break;
    case XENT_HAND_MASK: xent_hand_mask(op, c, dz); break;
    default: xent_random(op, r); break;
  }
  int32_t *y = op->args[LABELS].host;
  if (r->hand == XENT_BAD_LABEL) y[1] = 3;
  if (r->hand == XENT_NEGATIVE_LABEL) y[1] = -1;
  if (r->hand == XENT_BAD_LABEL || r->hand == XENT_NEGATIVE_LABEL)
    fgt_expect_error(op, FG_ERR_INVALID, r->hand == XENT_BAD_LABEL ? "at row 1, is 3" : "at row 1, is -1",
                     NULL);
  if (r->hand == XENT_NO_LOSS)
    fgt_expect_error(op, FG_ERR_INVALID, "softmax_xent: loss (host output) is missing", NULL);
  if (op->expect != FG_OK) return;
  int64_t correct = -1;
  double *ref = fgt_scratch_d(op, r->n * r->k);
  const double loss =
      fg_ref_softmax_xent(fgt_widen(op, Z), y, r->masked ? fgt_widen(op, MASK) : NULL, r->n, r->k,
                          c->weight, ref, &correct);
  if (r->hand) { /* the reference agrees with the hand-derived values, the op is held to them */
    fgt_check_reference(op->name, ref, dz, r->n * r->k);
    cr_assert(fabs(loss - op->want_scalar) <= 1e-9, "%s: reference loss %.12g, by hand %.12g",
              op->name, loss, op->want_scalar);
    cr_assert_eq(correct, op->want_count, "%s: reference count %lld", op->name, (long long)correct);
  } else {
    fgt_expect_scalar(op, loss, FGT_TOL_LOSS);
    fgt_expect_count(op, correct);
    memcpy(dz, ref, (size_t)(r->n * r->k) * sizeof *dz);
  }
  if (c->variant == 1) {
    const double *dz0 = fgt_widen(op, DZ);
    for (int64_t i = 0; i < r->n * r->k; i++) dz[i] += dz0[i];
  }
  if (c->variant != 0) op->check_count = 0; /* the count is asked for in variant 0 only */
}

static const fgt_error_row XENT_ERRORS[] = {
    {3 * XENT_BASE, LABELS, 1, {3}, -1, FG_ERR_SHAPE, "softmax_xent: labels has shape [3]", NULL},
    {3 * XENT_BASE, LABELS, 0, {0}, FG_F32, FG_ERR_SHAPE,
     "softmax_xent: labels has dtype f32, expected i32", NULL},
    {3 * XENT_BASE, DZ, 2, {3, 2}, -1, FG_ERR_SHAPE,
     "softmax_xent: dlogits has shape [3, 2]", NULL},
    {3 * (XENT_BASE + 1), MASK, 1, {2}, -1, FG_ERR_SHAPE,
     "softmax_xent: class_mask has shape [2]", NULL},
};
static const fgt_suite XENT = {"softmax_xent", 3 * XENT_ROW_COUNT, build_xent, XENT_ERRORS, 4};
FGT_SUITE_TESTS(softmax_xent, matches_reference, XENT)

/* ----------------------------------------------------------------------------------------- */
/* KL distillation                                                                            */

typedef struct kl_shape {
  int64_t n, k;
  float range;
} kl_shape;

static const kl_shape KL_SHAPES[] = {{3, 5, 3.0f}, {8, 10, 6.0f}, {5, 7, 1e4f}, {2, 33, 2.0f}};
static const float KL_TEMPS[2] = {1.0f, 3.0f};
/* eps 0.05 makes the eps terms of the gradients (Q = 1 + K eps) visible in float. */
static const float KL_EPS[3] = {0.0f, 1e-7f, 0.05f};
static const fg_kl_reduction KL_REDUCTIONS[2] = {FG_KL_BATCHMEAN, FG_KL_ELEMENTWISE_MEAN};
enum { KL_GRID = 4 * 2 * 3 * 2 * 3 }; /* shapes x temperatures x eps x reductions x variants */

typedef struct kl_case {
  kl_shape s;
  fg_kl_desc d;
  int variant; /* 0 both gradients, 1 both accumulated, 2 the student's only (teacher detached) */
  int hand;    /* KL_HAND_* */
  int layout;
  fg_status expect;
  const char *text;
} kl_case;

enum { KL_RANDOM, KL_HAND_TINY, KL_HAND_TEMPERATURE };

/* N = 1, K = 2, T = 1, eps = 0: student [0, 0] -> p = [1/2, 1/2]; teacher [ln 3, 0] -> q =
 * [3/4, 1/4]. KL = 3/4 ln(3/2) + 1/4 ln(1/2) = 0.3040988310 - 0.1732867951 = 0.1308120359.
 * dstudent = (p - q) / T = [-1/4, 1/4].
 * dteacher_j = q_j (r_j - sum_i q_i r_i) / T with r = ln(q/p) = [ln 1.5, ln 0.5]:
 *   [0.75 (0.4054651081 - 0.1308120359), 0.25 (-0.6931471806 - 0.1308120359)]
 *   = [0.2059898041, -0.2059898041].
 * Elementwise mean with weight 3: 3 * 0.1308120359 / 2 = 0.1962180539, gradients x 3/2.
 * Temperature: student [0, 0], teacher [2 ln 3, 0], T = 2 give the same p and q, so loss =
 * T^2 * 0.1308120359 = 0.5232481436, dstudent = T^2 (p - q) / T = [-0.5, 0.5].
 * (The teacher's ln 3 is rounded to float: q moves by ~1e-8, within the class.) */
static const kl_case KL_SPECIAL[] = {
    {{1, 2, 0}, {1.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f}, 0, KL_HAND_TINY, FGT_ALIGNED, FG_OK, NULL},
    {{1, 2, 0}, {1.0f, 0.0f, FG_KL_ELEMENTWISE_MEAN, 3.0f}, 0, KL_HAND_TINY, FGT_ALIGNED, FG_OK,
     NULL},
    {{1, 2, 0}, {2.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f}, 2, KL_HAND_TEMPERATURE, FGT_ALIGNED, FG_OK,
     NULL},
    {{3000, 10, 4.0f}, {3.0f, 1e-7f, FG_KL_ELEMENTWISE_MEAN, 0.5f}, 0, KL_RANDOM, FGT_ALIGNED,
     FG_OK, NULL},
    {{8, 10, 6.0f}, {1.0f, 1e-7f, FG_KL_BATCHMEAN, 0.6f}, 1, KL_RANDOM, FGT_MISALIGNED, FG_OK,
     NULL},
    {{5, 7, 3.0f}, {3.0f, 0.0f, FG_KL_BATCHMEAN, 0.6f}, 0, KL_RANDOM, FGT_PARTIAL, FG_OK, NULL},
    {{2, 2, 1.0f}, {0.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f}, 2, KL_RANDOM, FGT_ALIGNED, FG_ERR_INVALID,
     "kl_div: temperature is 0"},
    {{2, 2, 1.0f}, {1.0f, -1e-7f, FG_KL_BATCHMEAN, 1.0f}, 2, KL_RANDOM, FGT_ALIGNED, FG_ERR_INVALID,
     "kl_div: teacher_eps is -1e-07"},
    {{2, 2, 1.0f}, {1.0f, 0.0f, (fg_kl_reduction)7, 1.0f}, 2, KL_RANDOM, FGT_ALIGNED,
     FG_ERR_INVALID, "kl_div: reduction is 7"},
    /* the error rows' base */
    {{2, 2, 1.0f}, {1.0f, 0.0f, FG_KL_BATCHMEAN, 1.0f}, 0, KL_RANDOM, FGT_ALIGNED, FG_OK, NULL},
};
enum { KL_SPECIALS = sizeof KL_SPECIAL / sizeof KL_SPECIAL[0] };

static kl_case kl_case_of(int index) {
  if (index >= KL_GRID) return KL_SPECIAL[index - KL_GRID];
  kl_case c = {
      KL_SHAPES[index / 36],
      {KL_TEMPS[index / 18 % 2], KL_EPS[index / 6 % 3], KL_REDUCTIONS[index / 3 % 2], 0.6f},
      index % 3,
      KL_RANDOM,
      FGT_ALIGNED,
      FG_OK,
      NULL};
  return c;
}

static fg_status kl_call(fgt_op *op) {
  const kl_case *c = op->row;
  return fg_kl_div(&c->d, fgt_t(op, Z), fgt_t(op, T), fgt_t(op, DZ), fgt_t(op, DT), c->variant == 1,
                   &op->scalar);
}

static void kl_by_hand(fgt_op *op, const kl_case *c, double *ds, double *dt) {
  const double kl = 0.1308120359, dt0 = 0.2059898041;
  float *t = fgt_f32(op, T);
  t[0] = (float)(c->hand == KL_HAND_TEMPERATURE ? 2 * log(3.0) : log(3.0));
  const double scale = c->d.reduction == FG_KL_ELEMENTWISE_MEAN ? c->d.weight / 2.0 : c->d.weight;
  const double t2 = (double)c->d.temperature * c->d.temperature, tt = c->d.temperature;
  fgt_expect_scalar(op, scale * t2 * kl, FGT_TOL_LOSS);
  ds[0] = -0.25 * scale * tt, ds[1] = 0.25 * scale * tt;
  if (dt) dt[0] = dt0 * scale * tt, dt[1] = -dt0 * scale * tt;
}

static void build_kl(int index, fgt_op *op) {
  kl_case *c = fgt_scratch(op, sizeof *c);
  *c = kl_case_of(index);
  const int64_t n = c->s.n, k = c->s.k, nk = n * k;
  fgt_name(op, "kl_div n%lld k%lld range %g T %g eps %g %s weight %g%s%s", (long long)n,
           (long long)k, (double)c->s.range, (double)c->d.temperature, (double)c->d.teacher_eps,
           c->d.reduction == FG_KL_BATCHMEAN ? "batchmean" : "mean", (double)c->d.weight,
           c->variant == 1   ? " accumulate"
           : c->variant == 2 ? " student only"
                             : "",
           fgt_layout_name(c->layout));
  op->row = c;
  op->call = kl_call;
  fgt_layout(op, c->layout);
  if (c->expect != FG_OK) fgt_expect_error(op, c->expect, c->text, NULL);
  const fgt_role grad_role = c->variant == 1 ? FGT_INOUT : FGT_OUT;
  fgt_arg2(op, Z, "student", FGT_IN, n, k);
  fgt_arg2(op, T, "teacher", FGT_IN, n, k);
  fgt_arg2(op, DZ, "dstudent", grad_role, n, k);
  if (c->variant != 2) fgt_arg2(op, DT, "dteacher", grad_role, n, k);
  fgt_fill(op, Z, -c->s.range, c->s.range);
  fgt_fill(op, T, -c->s.range, c->s.range);
  if (c->variant == 1) fgt_fill(op, DZ, -1.0f, 1.0f), fgt_fill(op, DT, -1.0f, 1.0f);
  if (c->expect != FG_OK) return;
  double *ds = fgt_expect(op, DZ, FGT_TOL);
  double *dt = c->variant != 2 ? fgt_expect(op, DT, FGT_TOL) : fgt_scratch_d(op, nk);
  if (c->hand) {
    kl_by_hand(op, c, ds, c->variant != 2 ? dt : NULL);
    double *rs = fgt_scratch_d(op, nk), *rt = fgt_scratch_d(op, nk);
    const double loss = fg_ref_kl_div(fgt_widen(op, Z), fgt_widen(op, T), n, k, c->d.temperature,
                                      c->d.teacher_eps, c->d.reduction, c->d.weight, rs, rt);
    cr_assert(fabs(loss - op->want_scalar) <= 4e-7, "%s: reference %.10g, by hand %.10g", op->name,
              loss, op->want_scalar);
    fgt_check_reference(op->name, rs, ds, nk);
    if (c->variant != 2) fgt_check_reference(op->name, rt, dt, nk);
    return;
  }
  const double loss = fg_ref_kl_div(fgt_widen(op, Z), fgt_widen(op, T), n, k, c->d.temperature,
                                    c->d.teacher_eps, c->d.reduction, c->d.weight, ds, dt);
  cr_assert(isfinite(loss), "%s: reference loss %g", op->name, loss);
  fgt_expect_scalar(op, loss, FGT_TOL_LOSS);
  if (c->variant == 1) {
    const double *ds0 = fgt_widen(op, DZ), *dt0 = fgt_widen(op, DT);
    for (int64_t i = 0; i < nk; i++) ds[i] += ds0[i], dt[i] += dt0[i];
  }
}

static const fgt_error_row KL_ERRORS[] = {
    {KL_GRID + KL_SPECIALS - 1, T, 2, {2, 3}, -1, FG_ERR_SHAPE,
     "kl_div: teacher has shape [2, 3]", NULL},
    {KL_GRID + KL_SPECIALS - 1, DT, 2, {2, 3}, -1, FG_ERR_SHAPE,
     "kl_div: dteacher has shape [2, 3]", NULL},
};
static const fgt_suite KL = {"kl_div", KL_GRID + KL_SPECIALS, build_kl, KL_ERRORS, 2};
FGT_SUITE_TESTS(kl_div, matches_reference, KL)

/* ----------------------------------------------------------------------------------------- */
/* MSE                                                                                        */

typedef struct mse_row {
  int64_t n;
  int variant; /* 0 gradient, 1 accumulated gradient, 2 the loss alone, 3 by hand */
  int layout;
} mse_row;

static const mse_row MSE_ROWS[] = {
    {1, 0, FGT_ALIGNED},   {7, 0, FGT_ALIGNED},     {1000, 0, FGT_ALIGNED}, {30000, 0, FGT_ALIGNED},
    {1, 1, FGT_ALIGNED},   {7, 1, FGT_MISALIGNED},  {1000, 1, FGT_ALIGNED}, {1, 2, FGT_ALIGNED},
    {1000, 2, FGT_PARTIAL}, {2, 3, FGT_ALIGNED},
};
enum { MSE_ROW_COUNT = sizeof MSE_ROWS / sizeof MSE_ROWS[0] };

static fg_status mse_call(fgt_op *op) {
  const mse_row *r = op->row;
  return fg_mse(fgt_t(op, Z), fgt_t(op, T), r->variant == 3 ? 1.0f : 1.3f, fgt_t(op, DZ),
                r->variant == 1, &op->scalar);
}

/* y = [1, 2], target = [0, 4]: mean((1)^2, (-2)^2) = 2.5; dy = 2 (y - t) / 2 = [1, -2], exact in
 * float. */
static void build_mse(int index, fgt_op *op) {
  const mse_row *r = &MSE_ROWS[index];
  fgt_name(op, "mse n%lld%s%s", (long long)r->n,
           r->variant == 1   ? " accumulate"
           : r->variant == 2 ? " loss only"
           : r->variant == 3 ? " by hand"
                             : "",
           fgt_layout_name(r->layout));
  op->row = r;
  op->call = mse_call;
  fgt_layout(op, r->layout);
  float *y = fgt_arg1(op, Z, "y", FGT_IN, r->n), *t = fgt_arg1(op, T, "target", FGT_IN, r->n);
  if (r->variant != 2) fgt_arg1(op, DZ, "dy", r->variant == 1 ? FGT_INOUT : FGT_OUT, r->n);
  if (r->variant == 3) {
    y[0] = 1, y[1] = 2, t[0] = 0, t[1] = 4;
    fgt_expect_scalar(op, 2.5, FGT_EXACT);
    double *dy = fgt_expect(op, DZ, FGT_EXACT);
    dy[0] = 1.0, dy[1] = -2.0;
    return;
  }
  fgt_fill(op, Z, -2.0f, 2.0f);
  fgt_fill(op, T, -2.0f, 2.0f);
  if (r->variant == 1) fgt_fill(op, DZ, -1.0f, 1.0f);
  double *dy = r->variant != 2 ? fgt_expect(op, DZ, FGT_TOL) : fgt_scratch_d(op, r->n);
  /* the weight the op receives is the float 1.3f */
  fgt_expect_scalar(op, fg_ref_mse(fgt_widen(op, Z), fgt_widen(op, T), r->n, 1.3f, dy),
                    FGT_TOL_LOSS);
  if (r->variant == 1) {
    const double *dy0 = fgt_widen(op, DZ);
    for (int64_t i = 0; i < r->n; i++) dy[i] += dy0[i];
  }
}

static const fgt_error_row MSE_ERRORS[] = {
    {1, T, 1, {6}, -1, FG_ERR_SHAPE,
     "mse: target has shape [6] (6 elements), expected 7 elements", NULL},
};
static const fgt_suite MSE = {"mse", MSE_ROW_COUNT, build_mse, MSE_ERRORS, 1};
FGT_SUITE_TESTS(mse, matches_reference, MSE)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences of the references                                                       */

typedef struct loss_ctx {
  int which; /* 0 xent, 1 kl, 2 mse */
  const double *z, *t, *mask;
  const int32_t *y;
  int64_t n, k;
  double weight, temperature, eps;
  fg_kl_reduction reduction;
} loss_ctx;

static double ref_loss(void *p) {
  const loss_ctx *c = p;
  if (c->which == 0)
    return fg_ref_softmax_xent(c->z, c->y, c->mask, c->n, c->k, c->weight, NULL, NULL);
  if (c->which == 1)
    return fg_ref_kl_div(c->z, c->t, c->n, c->k, c->temperature, c->eps, c->reduction, c->weight,
                         NULL, NULL);
  return fg_ref_mse(c->z, c->t, c->n * c->k, c->weight, NULL);
}

static int32_t *labels_of(int64_t n, int64_t k, uint64_t seed) {
  int32_t *y = malloc((size_t)n * sizeof *y);
  cr_assert_not_null(y);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 1, 0);
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)fg_rng_below(&r, (uint64_t)k);
  return y;
}

/* The references' explicit Jacobians against central differences of their losses (smooth:
 * truncation ~h^2, rounding ~1e-16 / h). */
Test(losses, reference_gradients_match_finite_differences) {
  const fgt_fd_opts o = {1e-5, 1e-7, 1e-7, 1, 0.0, NULL, 0};
  /* cross-entropy, plain and masked (every third class masked, labels on kept classes) */
  for (int masked = 0; masked <= 1; masked++) {
    const int64_t n = masked ? 7 : 4, k = masked ? 11 : 6;
    double *z = fgt_alloc_uniform(n * k, 5 + (uint64_t)masked, -3, 3),
           *g = fgt_alloc_uniform(n * k, 0, 0, 0);
    double *mask = fgt_alloc_uniform(k, 0, 0, 0);
    for (int64_t j = 0; j < k; j++) mask[j] = j % 3 != 1;
    int32_t *y = labels_of(n, k, 6);
    for (int64_t i = 0; i < n; i++)
      if (masked && y[i] % 3 == 1) y[i] = 0;
    loss_ctx c = {0, z, NULL,           masked ? mask : NULL, y, n, k, masked ? 0.5 : 0.8,
                  0, 0, FG_KL_BATCHMEAN};
    fg_ref_softmax_xent(z, y, c.mask, n, k, c.weight, g, NULL);
    fgt_fd_check(masked ? "reference masked xent dlogits" : "reference xent dlogits", ref_loss, &c,
                 z, n * k, g, &o);
    free(z), free(g), free(mask), free(y);
  }
  /* KL: temperatures 1 and 3, eps 0 and 1e-7, both reductions */
  double *s = fgt_alloc_uniform(15, 21, -3, 3), *t = fgt_alloc_uniform(15, 22, -3, 3),
         *ds = fgt_alloc_uniform(15, 0, 0, 0);
  double *dt = fgt_alloc_uniform(15, 0, 0, 0);
  for (int a = 0; a < 8; a++) {
    loss_ctx c = {1,
                  s,
                  t,
                  NULL,
                  NULL,
                  3,
                  5,
                  0.9,
                  a & 1 ? 3.0 : 1.0,
                  a & 2 ? 1e-7 : 0.0,
                  a & 4 ? FG_KL_ELEMENTWISE_MEAN : FG_KL_BATCHMEAN};
    fg_ref_kl_div(s, t, 3, 5, c.temperature, c.eps, c.reduction, 0.9, ds, dt);
    char what[96];
    snprintf(what, sizeof what, "reference kl T %g eps %g reduction %d dstudent", c.temperature,
             c.eps, (int)c.reduction);
    fgt_fd_check(what, ref_loss, &c, s, 15, ds, &o);
    snprintf(what, sizeof what, "reference kl T %g eps %g reduction %d dteacher", c.temperature,
             c.eps, (int)c.reduction);
    fgt_fd_check(what, ref_loss, &c, t, 15, dt, &o);
  }
  free(s), free(t), free(ds), free(dt);
  /* MSE */
  double *y = fgt_alloc_uniform(9, 1, -2, 2), *tg = fgt_alloc_uniform(9, 2, -2, 2),
         *gy = fgt_alloc_uniform(9, 0, 0, 0);
  loss_ctx c = {2, y, tg, NULL, NULL, 1, 9, 0.7, 0, 0, FG_KL_BATCHMEAN};
  fg_ref_mse(y, tg, 9, 0.7, gy);
  const fgt_fd_opts omse = {1e-5, 1e-8, 1e-8, 1, 0.0, NULL, 0};
  fgt_fd_check("reference mse dy", ref_loss, &c, y, 9, gy, &omse);
  free(y), free(tg), free(gy);
}

/* ----------------------------------------------------------------------------------------- */
/* Finite differences of each backend                                                         */

typedef struct loss_dev {
  fgt_dbuf z, t, y, mask, dz, dt;
  fg_kl_desc d;
  double loss;
} loss_dev;

static fg_status xent_dev(void *p) {
  loss_dev *c = p;
  return fg_softmax_xent(&c->z.t, &c->y.t, &c->mask.t, 0.8f, NULL, 0, &c->loss, NULL);
}

static fg_status kl_dev_student(void *p) {
  loss_dev *c = p;
  return fg_kl_div(&c->d, &c->z.t, &c->t.t, NULL, NULL, 0, &c->loss);
}

static fg_status mse_dev(void *p) {
  loss_dev *c = p;
  return fg_mse(&c->z.t, &c->t.t, 0.7f, NULL, 0, &c->loss);
}

/* The loss each backend returns, along one direction, against the gradient it returns
 * (directional: one probe per argument). Inputs, direction and h = 2^-10 on grids that make the
 * perturbed inputs exact in float (fgt_quantize): what remains is the truncation (~h^2 |L'''|,
 * near 1e-5 relative here) and the rounding of the loss; 2e-3 leaves a wide margin. */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t n = 5, k = 7, s2[2] = {n, k};
  loss_dev c = {fgt_dbuf_alloc(dev, FG_F32, 2, s2),   fgt_dbuf_alloc(dev, FG_F32, 2, s2),
                fgt_dbuf_alloc(dev, FG_I32, 1, &n),   fgt_dbuf_alloc(dev, FG_F32, 1, &k),
                fgt_dbuf_alloc(dev, FG_F32, 2, s2),   fgt_dbuf_alloc(dev, FG_F32, 2, s2),
                {3.0f, 1e-7f, FG_KL_BATCHMEAN, 0.9f}, 0.0};
  double *z = fgt_alloc_uniform(n * k, 31, -3, 3), *t = fgt_alloc_uniform(n * k, 32, -3, 3),
         *mask = fgt_alloc_uniform(k, 0, 0, 0);
  fgt_quantize(z, n * k, 1.0 / 1024), fgt_quantize(t, n * k, 1.0 / 1024);
  for (int64_t j = 0; j < k; j++) mask[j] = j % 3 != 1;
  int32_t *y = labels_of(n, k, 33);
  for (int64_t i = 0; i < n; i++)
    if (y[i] % 3 == 1) y[i] = 0;
  fgt_upload_d(&c.z, z), fgt_upload_d(&c.t, t), fgt_upload_d(&c.mask, mask), fgt_upload(&c.y, y);
  fg_status s = fg_softmax_xent(&c.z.t, &c.y.t, &c.mask.t, 0.8f, &c.dz.t, 0, &c.loss, NULL);
  if (s == FG_ERR_UNSUPPORTED)
    cr_skip_test("losses on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(s);
  double *g_xent = fgt_alloc_uniform(n * k, 0, 0, 0), *g_s = fgt_alloc_uniform(n * k, 0, 0, 0),
         *g_t = fgt_alloc_uniform(n * k, 0, 0, 0);
  double *g_mse = fgt_alloc_uniform(n * k, 0, 0, 0);
  fgt_download_d(g_xent, &c.dz);
  FGT_OK(fg_kl_div(&c.d, &c.z.t, &c.t.t, &c.dz.t, &c.dt.t, 0, &c.loss));
  fgt_download_d(g_s, &c.dz), fgt_download_d(g_t, &c.dt);
  FGT_OK(fg_mse(&c.z.t, &c.t.t, 0.7f, &c.dz.t, 0, &c.loss));
  fgt_download_d(g_mse, &c.dz);
  const fgt_fd_param xent[1] = {{"dlogits", &c.z, z, g_xent, n * k}};
  const fgt_fd_param kl[2] = {{"dstudent", &c.z, z, g_s, n * k}, {"dteacher", &c.t, t, g_t, n * k}};
  const fgt_fd_param mse[1] = {{"dy", &c.z, z, g_mse, n * k}};
  const double h = 1.0 / 1024;
  fgt_fd_check_params("masked xent", kind, xent_dev, &c, NULL, NULL, &c.loss, xent, 1, h, 1e-6,
                      2e-3, 34);
  fgt_fd_check_params("kl", kind, kl_dev_student, &c, NULL, NULL, &c.loss, kl, 2, h, 1e-6, 2e-3,
                      35);
  fgt_fd_check_params("mse", kind, mse_dev, &c, NULL, NULL, &c.loss, mse, 1, h, 1e-6, 2e-3, 37);
  free(z), free(t), free(mask), free(y), free(g_xent), free(g_s), free(g_t), free(g_mse);
  fgt_dbuf_free(&c.z), fgt_dbuf_free(&c.t), fgt_dbuf_free(&c.y), fgt_dbuf_free(&c.mask);
  fgt_dbuf_free(&c.dz), fgt_dbuf_free(&c.dt);
}

Test(losses, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(losses, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
