/* Op suite: batch norm (training forward with and without running statistics and in place,
 * evaluation forward and in place, and the backward with every subset of dx, dgamma and dbeta,
 * dx assigned and accumulated) on every backend against the double-precision reference
 * (tests/ref/ref_math.h). Statistics are reductions: the tolerance class, with tighter rows for
 * data that stress how the statistics are summed (a first image far from the others, a large
 * common offset with a small spread, an [N,C] batch whose first value is an outlier), where a
 * loss of precision is the bug to catch. Shapes: odd extents, 16 channels, one channel, N = 1,
 * N*H*W = 2, [N,C] and [N,C,1,1], a shape large enough for the CPU's channel threads, the
 * misaligned and partial-batch layouts; running statistics derived by hand; the entry points'
 * value and shape errors; finite differences of the reference and of each backend. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_math.h"

enum { INPUT_PLAIN, INPUT_FAR_FIRST, INPUT_OFFSET, INPUT_FIRST_ROW_OUTLIER, INPUT_HAND };

typedef struct bn_shape {
  int ndim; /* 2: [N,C]; 4: [N,C,H,W] */
  int64_t n, c, h, w;
  int input; /* INPUT_* */
  int layout;
} bn_shape;

static const bn_shape SHAPES[] = {
    {4, 2, 3, 5, 7, INPUT_PLAIN, FGT_ALIGNED},  /* odd extents */
    {4, 4, 16, 3, 3, INPUT_PLAIN, FGT_ALIGNED}, /* 16 channels */
    {4, 1, 5, 1, 2, INPUT_PLAIN, FGT_ALIGNED},  /* N = 1, N*H*W = 2 */
    {4, 2, 4, 1, 1, INPUT_PLAIN, FGT_ALIGNED},  /* [N,C,1,1], N*H*W = 2 */
    {2, 9, 6, 1, 1, INPUT_PLAIN, FGT_ALIGNED},  /* [N,C] */
    {2, 2, 3, 1, 1, INPUT_PLAIN, FGT_ALIGNED},  /* [N,C], N = 2 */
    {4, 3, 1, 4, 5, INPUT_PLAIN, FGT_ALIGNED},  /* one channel */
    {4, 8, 16, 16, 16, INPUT_PLAIN, FGT_ALIGNED}, /* C * N*H*W >= 32K: channels over threads */
    {4, 3, 5, 7, 3, INPUT_PLAIN, FGT_MISALIGNED},
    {2, 7, 5, 1, 1, INPUT_PLAIN, FGT_PARTIAL},
    {4, 2, 3, 2, 2, INPUT_PLAIN, FGT_ALIGNED}, /* the base of the error rows */
    /* Precision of the training statistics (the CPU sums x - s with s the mean of the
     * channel's first plane, and repeats the pass when s is far from the mean). Training
     * forward only: the backward takes the saved mean, which is the batch mean rounded to
     * float, and with a spread 1e5 times below the offset that rounding (~0.5% of the
     * spread) alone moves the gradient far beyond the class, whatever the backend. */
    {4, 64, 3, 3, 3, INPUT_FAR_FIRST, FGT_ALIGNED},
    {4, 16, 4, 7, 9, INPUT_OFFSET, FGT_ALIGNED},
    {2, 1024, 3, 1, 1, INPUT_FIRST_ROW_OUTLIER, FGT_ALIGNED},
};
enum { SHAPE_COUNT = sizeof SHAPES / sizeof SHAPES[0], BASE_SHAPE = 10, PLAIN_SHAPES = 11 };

/* One call: a shape, a variant of the op and its scalars. */
typedef struct bn_case {
  bn_shape s;
  int variant;
  float momentum;
  fg_status expect;
  const char *text;
} bn_case;

static int64_t numel_of(const bn_shape *s) { return s->n * s->c * s->h * s->w; }
static int64_t inner_of(const bn_shape *s) { return s->h * s->w; }

static int precise(const bn_shape *s) { return s->input != INPUT_PLAIN && s->input != INPUT_HAND; }

/* Tighter than the class for the statistics rows: a single shifted pass with the shift 8
 * standard deviations off the mean loses a factor 1 + 8^2 in the variance, i.e. ~6e-6
 * relative, which the class (1e-4) would let through. */
static const fgt_tol PRECISE_STATS = {0, 0.0, 1e-6, 1e-7};
static const fgt_tol PRECISE_Y = {0, 2e-6, 2e-6, 1e-7};

static fgt_tol stats_tol(const bn_shape *s) { return precise(s) ? PRECISE_STATS : FGT_TOL; }

enum { X, GAMMA, BETA, Y, MEAN, INVSTD, RM, RV, DY, DX };

/* ----------------------------------------------------------------------------------------- */
/* Arguments and inputs                                                                       */

static void start(fgt_op *op, const char *opname, const bn_case *k, const char *variant) {
  const bn_shape *s = &k->s;
  fgt_name(op, "%s %s[%lld, %lld, %lld, %lld]%s momentum %g%s", opname,
           s->ndim == 2 ? "[N,C] " : "", (long long)s->n, (long long)s->c, (long long)s->h,
           (long long)s->w, variant, (double)k->momentum, fgt_layout_name(s->layout));
  op->row = k;
  fgt_layout(op, s->layout);
  if (k->expect != FG_OK) fgt_expect_error(op, k->expect, k->text, NULL);
}

static float *batch_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  const bn_shape *s = &((const bn_case *)op->row)->s;
  if (s->ndim == 4) return fgt_arg4(op, i, name, role, s->n, s->c, s->h, s->w);
  return fgt_arg2(op, i, name, role, s->n, s->c);
}

static float *channel_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  return fgt_arg1(op, i, name, role, ((const bn_case *)op->row)->s.c);
}

/* x with a different mean and spread per channel (so that normalisation matters), or the data
 * of a precision row. */
static void batch_input(fgt_op *op, int i) {
  const bn_shape *s = &((const bn_case *)op->row)->s;
  const int64_t numel = numel_of(s), inner = inner_of(s);
  float *x = fgt_fill(op, i, -1.0f, 1.0f);
  switch (s->input) {
    case INPUT_PLAIN:
      for (int64_t k = 0; k < numel; k++) {
        const int64_t ch = (k / inner) % s->c;
        x[k] = x[k] * (0.5f + 0.25f * (float)ch) + 0.3f * (float)ch - 0.4f;
      }
      break;
    case INPUT_FAR_FIRST: /* the first image 100 above the rest: the shift (about 100) is some
                             8 standard deviations (about 12.4) from the mean (about 1.6) */
      for (int64_t k = 0; k < s->c * inner; k++) x[k] += 100.0f;
      break;
    case INPUT_OFFSET: /* 1000 +- 0.01: E[x^2] - E[x]^2 without a shift cancels every digit */
      for (int64_t k = 0; k < numel; k++) x[k] = 1000.0f + 0.01f * x[k];
      break;
    case INPUT_FIRST_ROW_OUTLIER: /* [N,C]: each plane is one value, so the shift is the first
                                     row's; in channel 0 it is 100 among values in [-1, 1],
                                     some 31 standard deviations out */
      x[0] = 100.0f;
      break;
    default: break;
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Training forward                                                                           */

enum {
  TRAIN_RUNNING,
  TRAIN_RUNNING_FAST,
  TRAIN_NO_RUNNING,
  TRAIN_IN_PLACE,
  TRAIN_VARIANTS,
  TRAIN_ONE_RUNNING
};

static const bn_case TRAIN_SPECIAL[] = {
    /* by hand, below */
    {{2, 2, 1, 1, 1, INPUT_HAND, FGT_ALIGNED}, TRAIN_RUNNING, 0.1f, FG_OK, NULL},
    {{2, 1, 3, 1, 1, INPUT_PLAIN, FGT_ALIGNED}, TRAIN_NO_RUNNING, 0.1f, FG_ERR_INVALID,
     "bn_forward_train: batch norm needs more than one value per channel (got 1 = N*H*W)"},
    {{4, 2, 3, 2, 2, INPUT_PLAIN, FGT_ALIGNED}, TRAIN_ONE_RUNNING, 0.1f, FG_ERR_INVALID,
     "running_mean and running_var must both be given or both be NULL"},
    {{4, 2, 3, 2, 2, INPUT_PLAIN, FGT_ALIGNED}, TRAIN_RUNNING, 1.5f, FG_ERR_INVALID,
     "bn_forward_train: momentum is 1.5"},
    {{4, 2, 3, 2, 2, INPUT_PLAIN, FGT_ALIGNED}, TRAIN_RUNNING, 0.1f, FG_OK, NULL}, /* error base */
};
enum { TRAIN_SPECIALS = sizeof TRAIN_SPECIAL / sizeof TRAIN_SPECIAL[0] };

/* Case `index`: SHAPES x variants, then the special cases (a copy owned by the op). The
 * evaluation and backward suites stop before the precision shapes. */
static bn_case *case_of(fgt_op *op, int index, int variants, const bn_case *special) {
  bn_case *k = fgt_scratch(op, sizeof *k);
  if (special && index >= SHAPE_COUNT * variants) {
    *k = special[index - SHAPE_COUNT * variants];
  } else {
    const bn_case plain = {SHAPES[index / variants], index % variants, 0.1f, FG_OK, NULL};
    *k = plain;
  }
  return k;
}

static fg_status train_call(fgt_op *op) {
  const bn_case *k = op->row;
  fg_tensor *y = k->variant == TRAIN_IN_PLACE ? fgt_t(op, X) : fgt_t(op, Y);
  return fg_bn_forward_train(fgt_t(op, X), fgt_t(op, GAMMA), fgt_t(op, BETA), y, fgt_t(op, MEAN),
                             fgt_t(op, INVSTD), fgt_t(op, RM), fgt_t(op, RV), k->momentum, 1e-5f);
}

/* Running statistics by hand: one channel, x = {1, 3} (N = 2): mean 2, biased var 1, unbiased
 * var 2; from running_mean 0, running_var 1 with momentum 0.1: running_mean = 0.9*0 + 0.1*2 =
 * 0.2, running_var = 0.9*1 + 0.1*2 = 1.1; y = (x - 2)/sqrt(1 + eps) = -+1/sqrt(1.00001). */
static void train_by_hand(fgt_op *op) {
  float *x = fgt_f32(op, X), *g = fgt_f32(op, GAMMA), *b = fgt_f32(op, BETA);
  float *rm = fgt_f32(op, RM), *rv = fgt_f32(op, RV);
  x[0] = 1.0f, x[1] = 3.0f, g[0] = 1.0f, b[0] = 0.0f, rm[0] = 0.0f, rv[0] = 1.0f;
  const double is = 1.0 / sqrt(1.00001);
  const double want_y[2] = {-is, is}, want[4] = {2.0, is, 0.2, 1.1};
  const int outs[4] = {MEAN, INVSTD, RM, RV};
  memcpy(fgt_expect(op, Y, PRECISE_Y), want_y, sizeof want_y);
  for (int k = 0; k < 4; k++) fgt_expect(op, outs[k], PRECISE_STATS)[0] = want[k];
}

static void build_train(int index, fgt_op *op) {
  bn_case *k = case_of(op, index, TRAIN_VARIANTS, TRAIN_SPECIAL);
  static const char *variants[] = {" running", " running", "", " in place", "", " one running"};
  if (k->variant == TRAIN_RUNNING_FAST) k->momentum = 0.35f;
  start(op, "bn_forward_train", k, variants[k->variant]);
  const bn_shape *s = &k->s;
  const int in_place = k->variant == TRAIN_IN_PLACE;
  const int running = k->variant == TRAIN_RUNNING || k->variant == TRAIN_RUNNING_FAST;
  batch_arg(op, X, "x", in_place ? FGT_INOUT : FGT_IN);
  channel_arg(op, GAMMA, "gamma", FGT_IN);
  channel_arg(op, BETA, "beta", FGT_IN);
  if (!in_place) batch_arg(op, Y, "y", FGT_OUT);
  channel_arg(op, MEAN, "save_mean", FGT_OUT);
  channel_arg(op, INVSTD, "save_invstd", FGT_OUT);
  if (running || k->variant == TRAIN_ONE_RUNNING) channel_arg(op, RM, "running_mean", FGT_INOUT);
  if (running) channel_arg(op, RV, "running_var", FGT_INOUT);
  op->call = train_call;
  if (s->input == INPUT_HAND) {
    train_by_hand(op);
    return;
  }
  batch_input(op, X);
  fgt_fill(op, GAMMA, 0.5f, 1.5f);
  fgt_fill(op, BETA, -1.0f, 1.0f);
  if (running) fgt_fill(op, RM, -0.5f, 0.5f), fgt_fill(op, RV, 0.5f, 2.0f);
  if (k->expect != FG_OK) return;
  const fgt_tol tol = stats_tol(s);
  double *y = fgt_expect(op, in_place ? X : Y, precise(s) ? PRECISE_Y : FGT_TOL);
  double *rm = running ? fgt_widen(op, RM) : NULL, *rv = running ? fgt_widen(op, RV) : NULL;
  fg_ref_bn_forward_train(fgt_widen(op, X), s->n, s->c, inner_of(s), fgt_widen(op, GAMMA),
                          fgt_widen(op, BETA), 1e-5, k->momentum, y, fgt_expect(op, MEAN, tol),
                          fgt_expect(op, INVSTD, tol), rm, rv);
  if (running) {
    memcpy(fgt_expect(op, RM, tol), rm, (size_t)s->c * sizeof *rm);
    memcpy(fgt_expect(op, RV, tol), rv, (size_t)s->c * sizeof *rv);
  }
}

static const fgt_error_row TRAIN_ERRORS[] = {
    {SHAPE_COUNT * TRAIN_VARIANTS + TRAIN_SPECIALS - 1, GAMMA, 1, {4}, -1, FG_ERR_SHAPE,
     "bn_forward_train: gamma has shape [4]", NULL},
    {SHAPE_COUNT * TRAIN_VARIANTS + TRAIN_SPECIALS - 1, Y, 4, {2, 3, 4, 1}, -1, FG_ERR_SHAPE,
     "bn_forward_train: y has shape [2, 3, 4, 1]", NULL},
    {SHAPE_COUNT * TRAIN_VARIANTS + TRAIN_SPECIALS - 1, X, 3, {2, 3, 4}, -1, FG_ERR_SHAPE,
     "bn_forward_train: x has shape [2, 3, 4], expected [N,C,H,W] or [N,C]", NULL},
};
static const fgt_suite TRAIN = {"bn_forward_train", SHAPE_COUNT *TRAIN_VARIANTS + TRAIN_SPECIALS,
                                build_train, TRAIN_ERRORS, 3};
FGT_SUITE_TESTS(bn, forward_train, TRAIN)

/* ----------------------------------------------------------------------------------------- */
/* Evaluation forward: variant 0 into y, 1 in place                                           */

static fg_status eval_call(fgt_op *op) {
  const bn_case *k = op->row;
  return fg_bn_forward_eval(fgt_t(op, X), fgt_t(op, GAMMA), fgt_t(op, BETA), fgt_t(op, RM),
                            fgt_t(op, RV), 1e-5f, fgt_t(op, k->variant ? X : Y));
}

static void build_eval(int index, fgt_op *op) {
  const bn_case *k = case_of(op, index, 2, NULL);
  start(op, "bn_forward_eval", k, k->variant ? " in place" : "");
  const bn_shape *s = &k->s;
  batch_arg(op, X, "x", k->variant ? FGT_INOUT : FGT_IN);
  channel_arg(op, GAMMA, "gamma", FGT_IN);
  channel_arg(op, BETA, "beta", FGT_IN);
  channel_arg(op, RM, "running_mean", FGT_IN);
  channel_arg(op, RV, "running_var", FGT_IN);
  if (!k->variant) batch_arg(op, Y, "y", FGT_OUT);
  batch_input(op, X);
  fgt_fill(op, GAMMA, 0.5f, 1.5f);
  fgt_fill(op, BETA, -1.0f, 1.0f);
  fgt_fill(op, RM, -0.5f, 0.5f);
  fgt_fill(op, RV, 0.1f, 3.0f);
  fg_ref_bn_forward_eval(fgt_widen(op, X), s->n, s->c, inner_of(s), fgt_widen(op, GAMMA),
                         fgt_widen(op, BETA), fgt_widen(op, RM), fgt_widen(op, RV), 1e-5,
                         fgt_expect(op, k->variant ? X : Y, FGT_TOL));
  op->call = eval_call;
}

static const fgt_error_row EVAL_ERRORS[] = {
    {2 * BASE_SHAPE, RV, 1, {2}, -1, FG_ERR_SHAPE,
     "bn_forward_eval: running_var has shape [2]", NULL},
};
static const fgt_suite EVAL = {"bn_forward_eval", 2 * PLAIN_SHAPES, build_eval, EVAL_ERRORS, 1};
FGT_SUITE_TESTS(bn, forward_eval, EVAL)

/* ----------------------------------------------------------------------------------------- */
/* Backward                                                                                   */

enum { WANT_DX = 1, WANT_DGAMMA = 2, WANT_DBETA = 4, WANT_ALL = 7 };
static const struct {
  int want, accumulate;
} BACKWARD_VARIANTS[] = {
    {WANT_ALL, 0},  {WANT_ALL, 1}, {WANT_DX, 0}, {WANT_DX, 1}, {WANT_DGAMMA | WANT_DBETA, 0},
    {WANT_DBETA, 1}};
enum { BACKWARD_VARIANT_COUNT = 6, DG = RM, DB = RV };

static fg_status backward_call(fgt_op *op) {
  const bn_case *k = op->row;
  return fg_bn_backward(fgt_t(op, DY), fgt_t(op, X), fgt_t(op, GAMMA), fgt_t(op, MEAN),
                        fgt_t(op, INVSTD), fgt_t(op, DX), fgt_t(op, DG), fgt_t(op, DB),
                        BACKWARD_VARIANTS[k->variant].accumulate);
}

/* dx = gamma invstd (dy - mean dy - xhat mean(dy xhat)) cancels: with two values per channel
 * it is exactly 0, and float32 leaves a residue of order 1e-7 |dy| gamma invstd, where invstd
 * is large when the values are close. Relaxation: the absolute tolerance of each element scales
 * with gamma invstd of its channel (never below the class's). */
static void dx_tolerance(fgt_op *op, const double *gamma, const double *invstd, const double *dy) {
  const bn_shape *s = &((const bn_case *)op->row)->s;
  const int64_t numel = numel_of(s), inner = inner_of(s);
  double dy_max = 0.0;
  for (int64_t i = 0; i < numel; i++) dy_max = fmax(dy_max, fabs(dy[i]));
  double *atol = fgt_scratch_d(op, numel);
  for (int64_t i = 0; i < numel; i++) {
    const int64_t ch = (i / inner) % s->c;
    atol[i] = fmax(FGT_TOL.atol, 1e-6 * fabs(gamma[ch]) * invstd[ch] * (1.0 + dy_max));
  }
  op->args[DX].atol_each = atol;
}

/* The saved statistics are the double reference forward's, rounded to float; the reference
 * backward then starts from the same float values the op receives. dgamma and dbeta are
 * assigned even when dx accumulates. */
static void build_backward(int index, fgt_op *op) {
  const bn_case *k = case_of(op, index, BACKWARD_VARIANT_COUNT, NULL);
  const int want = BACKWARD_VARIANTS[k->variant].want,
            acc = BACKWARD_VARIANTS[k->variant].accumulate;
  char variant[64];
  snprintf(variant, sizeof variant, "%s%s%s%s", want & WANT_DX ? " dx" : "",
           want & WANT_DGAMMA ? " dgamma" : "", want & WANT_DBETA ? " dbeta" : "",
           acc ? " accumulate" : "");
  start(op, "bn_backward", k, variant);
  const bn_shape *s = &k->s;
  const int64_t numel = numel_of(s), c = s->c;
  batch_arg(op, DY, "dy", FGT_IN);
  batch_arg(op, X, "x", FGT_IN);
  channel_arg(op, GAMMA, "gamma", FGT_IN);
  float *mean = channel_arg(op, MEAN, "save_mean", FGT_IN);
  float *invstd = channel_arg(op, INVSTD, "save_invstd", FGT_IN);
  if (want & WANT_DX) batch_arg(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT);
  if (want & WANT_DGAMMA) channel_arg(op, DG, "dgamma", FGT_OUT);
  if (want & WANT_DBETA) channel_arg(op, DB, "dbeta", FGT_OUT);
  op->call = backward_call;
  batch_input(op, X);
  fgt_fill(op, DY, -1.0f, 1.0f);
  fgt_fill(op, GAMMA, 0.5f, 1.5f);
  if ((want & WANT_DX) && acc) fgt_fill(op, DX, -1.0f, 1.0f);
  const double *xd = fgt_widen(op, X), *gd = fgt_widen(op, GAMMA), *dyd = fgt_widen(op, DY);
  double *md = fgt_scratch_d(op, c), *isd = fgt_scratch_d(op, c), *yd = fgt_scratch_d(op, numel);
  double *beta = fgt_scratch_d(op, c);
  fg_ref_bn_forward_train(xd, s->n, c, inner_of(s), gd, beta, 1e-5, 0.1, yd, md, isd, NULL, NULL);
  for (int64_t ch = 0; ch < c; ch++) {
    mean[ch] = (float)md[ch], invstd[ch] = (float)isd[ch];
    md[ch] = mean[ch], isd[ch] = invstd[ch];
  }
  double *dx = (want & WANT_DX) ? fgt_expect(op, DX, FGT_TOL) : fgt_scratch_d(op, numel);
  double *dg = (want & WANT_DGAMMA) ? fgt_expect(op, DG, FGT_TOL) : fgt_scratch_d(op, c);
  double *db = (want & WANT_DBETA) ? fgt_expect(op, DB, FGT_TOL) : fgt_scratch_d(op, c);
  fg_ref_bn_backward(dyd, xd, s->n, c, inner_of(s), gd, md, isd, dx, dg, db);
  if (!(want & WANT_DX)) return;
  if (acc) {
    const double *dx0 = fgt_widen(op, DX);
    for (int64_t i = 0; i < numel; i++) dx[i] += dx0[i];
  }
  dx_tolerance(op, gd, isd, dyd);
}

static const fgt_error_row BACKWARD_ERRORS[] = {
    {BACKWARD_VARIANT_COUNT * BASE_SHAPE, DG, 1, {2}, -1, FG_ERR_SHAPE,
     "bn_backward: dgamma has shape [2]", NULL},
    {BACKWARD_VARIANT_COUNT * BASE_SHAPE, DY, 4, {2, 3, 2, 3}, -1, FG_ERR_SHAPE,
     "bn_backward: dy has shape [2, 3, 2, 3] but x has shape [2, 3, 2, 2]", NULL},
};
static const fgt_suite BACKWARD = {"bn_backward", BACKWARD_VARIANT_COUNT *PLAIN_SHAPES,
                                   build_backward, BACKWARD_ERRORS, 2};
FGT_SUITE_TESTS(bn, backward, BACKWARD)

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

/* L = <bn_train(x, gamma, beta), r> with the reference (double) or the op (on a device). */
typedef struct ref_loss_ctx {
  const bn_shape *s;
  const double *x, *gamma, *beta, *r;
  double *y, *mean, *invstd;
} ref_loss_ctx;

static double ref_loss(void *p) {
  ref_loss_ctx *c = p;
  fg_ref_bn_forward_train(c->x, c->s->n, c->s->c, inner_of(c->s), c->gamma, c->beta, 1e-5, 0.1,
                          c->y, c->mean, c->invstd, NULL, NULL);
  double l = 0.0;
  for (int64_t i = 0; i < numel_of(c->s); i++) l += c->y[i] * c->r[i];
  return l;
}

/* The reference's chain-rule backward against central differences of its forward (h = 1e-5:
 * truncation ~h^2, rounding ~1e-16 / h). */
Test(bn, reference_backward_matches_finite_differences) {
  const fgt_fd_opts o = {1e-5, 1e-6, 1e-6, 1, 0.0, NULL, 0};
  for (int k = 0; k < 7; k++) {
    const bn_shape *s = &SHAPES[k];
    const int64_t numel = numel_of(s), c = s->c;
    double *x = fgt_alloc_uniform(numel, 40 + (uint64_t)k, -2.0, 2.0),
           *r = fgt_alloc_uniform(numel, 50 + (uint64_t)k, -1.0, 1.0);
    double *gamma = fgt_alloc_uniform(c, 60 + (uint64_t)k, 0.5, 1.5),
           *beta = fgt_alloc_uniform(c, 70 + (uint64_t)k, -1.0, 1.0);
    double *y = fgt_alloc_uniform(numel, 0, 0, 0), *dx = fgt_alloc_uniform(numel, 0, 0, 0),
           *mean = fgt_alloc_uniform(c, 0, 0, 0);
    double *invstd = fgt_alloc_uniform(c, 0, 0, 0), *dgamma = fgt_alloc_uniform(c, 0, 0, 0),
           *dbeta = fgt_alloc_uniform(c, 0, 0, 0);
    ref_loss_ctx ctx = {s, x, gamma, beta, r, y, mean, invstd};
    ref_loss(&ctx);
    fg_ref_bn_backward(r, x, s->n, c, inner_of(s), gamma, mean, invstd, dx, dgamma, dbeta);
    char what[64];
    snprintf(what, sizeof what, "reference bn shape %d dx", k);
    fgt_fd_check(what, ref_loss, &ctx, x, numel, dx, &o);
    snprintf(what, sizeof what, "reference bn shape %d dgamma", k);
    fgt_fd_check(what, ref_loss, &ctx, gamma, c, dgamma, &o);
    snprintf(what, sizeof what, "reference bn shape %d dbeta", k);
    fgt_fd_check(what, ref_loss, &ctx, beta, c, dbeta, &o);
    free(x), free(r), free(gamma), free(beta), free(y), free(dx), free(mean), free(invstd);
    free(dgamma), free(dbeta);
  }
}

typedef struct bn_dev {
  fgt_dbuf x, gamma, beta, y, mean, invstd;
} bn_dev;

static fg_status bn_dev_forward(void *p) {
  bn_dev *c = p;
  return fg_bn_forward_train(&c->x.t, &c->gamma.t, &c->beta.t, &c->y.t, &c->mean.t, &c->invstd.t,
                             NULL, NULL, 0.1f, 1e-5f);
}

/* Each backend's backward against directional differences of its training forward: inputs,
 * direction and h = 2^-7 on grids that keep the perturbed inputs exact in float
 * (fgt_quantize); the truncation error (~h^2 |L'''|) and the float rounding of y (~1e-7 |y|
 * per element, over 2h) stay near 1e-4 relative here, and a wrong gradient is off by O(1). */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const bn_shape s = {4, 3, 4, 3, 5, INPUT_PLAIN, FGT_ALIGNED};
  const int64_t numel = numel_of(&s), c = s.c, shape[4] = {s.n, s.c, s.h, s.w};
  bn_dev d = {fgt_dbuf_alloc(dev, FG_F32, 4, shape), fgt_dbuf_alloc(dev, FG_F32, 1, &c),
              fgt_dbuf_alloc(dev, FG_F32, 1, &c),    fgt_dbuf_alloc(dev, FG_F32, 4, shape),
              fgt_dbuf_alloc(dev, FG_F32, 1, &c),    fgt_dbuf_alloc(dev, FG_F32, 1, &c)};
  fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 4, shape), dx = fgt_dbuf_alloc(dev, FG_F32, 4, shape);
  fgt_dbuf dg = fgt_dbuf_alloc(dev, FG_F32, 1, &c), db = fgt_dbuf_alloc(dev, FG_F32, 1, &c);
  double *x = fgt_alloc_uniform(numel, 1300, -2.0, 2.0),
         *r = fgt_alloc_uniform(numel, 1301, -1.0, 1.0);
  double *gamma = fgt_alloc_uniform(c, 1302, 0.5, 1.5),
         *beta = fgt_alloc_uniform(c, 1303, -1.0, 1.0);
  for (int64_t i = 0; i < numel; i++) r[i] = (float)r[i];
  fgt_quantize(x, numel, 1.0 / 1024), fgt_quantize(gamma, c, 1.0 / 1024),
      fgt_quantize(beta, c, 1.0 / 1024);
  fgt_upload_d(&d.x, x), fgt_upload_d(&d.gamma, gamma), fgt_upload_d(&d.beta, beta),
      fgt_upload_d(&dy, r);
  fg_status st = bn_dev_forward(&d);
  if (st == FG_ERR_UNSUPPORTED) cr_skip_test("bn on %s: %s", fgt_kind_name(kind), fg_last_error());
  FGT_OK(st);
  FGT_OK(fg_bn_backward(&dy.t, &d.x.t, &d.gamma.t, &d.mean.t, &d.invstd.t, &dx.t, &dg.t, &db.t, 0));
  double *gx = fgt_alloc_uniform(numel, 0, 0, 0), *gg = fgt_alloc_uniform(c, 0, 0, 0),
         *gb = fgt_alloc_uniform(c, 0, 0, 0);
  fgt_download_d(gx, &dx), fgt_download_d(gg, &dg), fgt_download_d(gb, &db);
  const fgt_fd_param params[3] = {{"dx", &d.x, x, gx, numel},
                                  {"dgamma", &d.gamma, gamma, gg, c},
                                  {"dbeta", &d.beta, beta, gb, c}};
  fgt_fd_check_params("bn", kind, bn_dev_forward, &d, &d.y, r, NULL, params, 3, 1.0 / 128, 1e-5,
                      2e-3, 1310);
  free(x), free(r), free(gamma), free(beta), free(gx), free(gg), free(gb);
  fgt_dbuf_free(&d.x), fgt_dbuf_free(&d.gamma), fgt_dbuf_free(&d.beta), fgt_dbuf_free(&d.y);
  fgt_dbuf_free(&d.mean), fgt_dbuf_free(&d.invstd), fgt_dbuf_free(&dy), fgt_dbuf_free(&dx);
  fgt_dbuf_free(&dg), fgt_dbuf_free(&db);
}

Test(bn, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(bn, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
