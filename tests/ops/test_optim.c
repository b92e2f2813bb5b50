/* Op suite: the optimizer steps (SGD with momentum, Nesterov, dampening and weight decay, and
 * without momentum; Adam with weight decay at steps 1, 2, 5 and 1000) on every backend, in the
 * bitwise class: one step from random state against the float references
 * (tests/ref/ref_exact.h), which are checked against the double references. Hand-derived
 * single steps, hand-derived sequences of steps (SGD over two steps, Adam over three), the
 * misaligned and partial-batch layouts, and the entry points' value and shape errors. */
#include <math.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_exact.h"
#include "ref/ref_math.h"

enum { P, G, BUF, M, V };

/* ----------------------------------------------------------------------------------------- */
/* SGD                                                                                        */

typedef struct sgd_row {
  int64_t n;
  fg_sgd_hparams h;
  int zero_buffer; /* the first step: buf = 0 */
  int layout;
  int hand; /* literal p = 1, g = 0.5, buf = 0 and the hand-derived p and buf below */
  double want_p, want_buf;
  fg_status expect;
  const char *text;
} sgd_row;

/* By hand (p = 1, g = 0.5, buffer 0, lr 0.1, weight decay 0.01):
 *   momentum 0.9: d = 0.5 + 0.01*1 = 0.51; buf = 0.9*0 + 0.51 = 0.51; p = 1 - 0.1*0.51 = 0.949.
 *   Nesterov: update = d + momentum*buf = 0.51 + 0.9*0.51 = 0.969, p = 1 - 0.0969 = 0.9031.
 *   dampening 0.5: buf = 0.5*0.51 = 0.255, p = 1 - 0.0255 = 0.9745.
 *   without momentum (no buffer): p = 1 - 0.1*0.51 = 0.949. */
static const sgd_row SGD_ROWS[] = {
    {1001, {0.1f, 0.9f, 5e-4f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {1001, {0.05f, 0.9f, 1e-3f, 0.0f, 1}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {1001, {0.1f, 0.5f, 0.0f, 0.3f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {1001, {0.1f, 0.0f, 1e-3f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {1001, {0.0f, 0.9f, 0.1f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {1, {0.1f, 0.9f, 5e-4f, 0.0f, 0}, 1, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {7, {0.05f, 0.9f, 1e-3f, 0.0f, 1}, 1, FGT_MISALIGNED, 0, 0, 0, FG_OK, NULL},
    {70001, {0.1f, 0.9f, 5e-4f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
    {70001, {0.1f, 0.0f, 1e-3f, 0.0f, 0}, 0, FGT_PARTIAL, 0, 0, 0, FG_OK, NULL},
    {1, {0.1f, 0.9f, 0.01f, 0.0f, 0}, 1, FGT_ALIGNED, 1, 0.949, 0.51, FG_OK, NULL},
    {1, {0.1f, 0.9f, 0.01f, 0.0f, 1}, 1, FGT_ALIGNED, 1, 0.9031, 0.51, FG_OK, NULL},
    {1, {0.1f, 0.9f, 0.01f, 0.5f, 0}, 1, FGT_ALIGNED, 1, 0.9745, 0.255, FG_OK, NULL},
    {1, {0.1f, 0.0f, 0.01f, 0.0f, 0}, 1, FGT_ALIGNED, 1, 0.949, 0, FG_OK, NULL},
    {3, {-0.1f, 0.9f, 0.0f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_ERR_INVALID,
     "sgd_step: lr is -0.1"},
    {3, {0.1f, 1.5f, 0.0f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_ERR_INVALID,
     "sgd_step: momentum is 1.5"},
    {3, {0.1f, 0.9f, 0.0f, 0.5f, 1}, 0, FGT_ALIGNED, 0, 0, 0, FG_ERR_INVALID,
     "nesterov needs momentum > 0 and dampening 0"},
    {3, {0.1f, 0.9f, 0.0f, 0.0f, 0}, 0, FGT_ALIGNED, 2, 0, 0, FG_ERR_INVALID,
     "sgd_step: momentum_buf is missing but momentum is 0.9"},
    /* the error rows' base */
    {3, {0.1f, 0.9f, 0.0f, 0.0f, 0}, 0, FGT_ALIGNED, 0, 0, 0, FG_OK, NULL},
};
enum { SGD_COUNT = sizeof SGD_ROWS / sizeof SGD_ROWS[0] };

/* The hand rows' values are decimals: held to 1e-7 (a float step from float inputs). */
static const fgt_tol HAND = {0, 1e-7, 0.0, 0.0};

static fg_status sgd_call(fgt_op *op) {
  const sgd_row *r = op->row;
  return fg_sgd_step(&r->h, fgt_t(op, P), fgt_t(op, G), fgt_t(op, BUF));
}

static void build_sgd(int index, fgt_op *op) {
  const sgd_row *r = &SGD_ROWS[index];
  fgt_name(op, "sgd_step n%lld lr %g momentum %g wd %g dampening %g%s%s%s%s", (long long)r->n,
           (double)r->h.lr, (double)r->h.momentum, (double)r->h.weight_decay,
           (double)r->h.dampening, r->h.nesterov ? " nesterov" : "",
           r->zero_buffer ? " first step" : "", r->hand == 1 ? " by hand" : "",
           fgt_layout_name(r->layout));
  op->row = r;
  op->call = sgd_call;
  fgt_layout(op, r->layout);
  if (r->expect != FG_OK) fgt_expect_error(op, r->expect, r->text, NULL);
  const int has_buf = r->h.momentum != 0.0f && r->hand != 2;
  float *p = fgt_arg1(op, P, "param", FGT_INOUT, r->n), *g = fgt_arg1(op, G, "grad", FGT_IN, r->n);
  float *buf = has_buf ? fgt_arg1(op, BUF, "momentum_buf", FGT_INOUT, r->n) : NULL;
  fgt_fill(op, P, -1.0f, 1.0f);
  fgt_fill(op, G, -1.0f, 1.0f);
  if (has_buf && !r->zero_buffer) fgt_fill(op, BUF, -1.0f, 1.0f);
  if (r->hand == 1) p[0] = 1.0f, g[0] = 0.5f;
  if (r->expect != FG_OK) return;
  /* the float reference, checked against the double one */
  double *pd = fgt_widen(op, P), *bd = has_buf ? fgt_widen(op, BUF) : NULL;
  fg_ref_sgd_step(&r->h, r->n, pd, fgt_widen(op, G), bd);
  float *pf = fgt_scratch(op, (size_t)r->n * sizeof *pf),
        *bf = fgt_scratch(op, (size_t)r->n * sizeof *bf);
  memcpy(pf, p, (size_t)r->n * sizeof *pf);
  if (has_buf) memcpy(bf, buf, (size_t)r->n * sizeof *bf);
  fg_ref_f32_sgd_step(&r->h, r->n, pf, g, has_buf ? bf : NULL);
  double *want_p = fgt_expect(op, P, r->hand ? HAND : FGT_EXACT);
  double *want_b = has_buf ? fgt_expect(op, BUF, r->hand ? HAND : FGT_EXACT) : NULL;
  for (int64_t i = 0; i < r->n; i++) {
    want_p[i] = pf[i];
    if (want_b) want_b[i] = bf[i];
  }
  fgt_check_reference(op->name, want_p, pd, r->n);
  if (want_b) fgt_check_reference(op->name, want_b, bd, r->n);
  if (r->hand == 1) {
    cr_assert(fabs(want_p[0] - r->want_p) <= 1e-7, "%s: float reference p %.9g, by hand %.9g",
              op->name, want_p[0], r->want_p);
    want_p[0] = r->want_p;
    if (want_b) want_b[0] = r->want_buf;
  }
}

static const fgt_error_row SGD_ERRORS[] = {
    {SGD_COUNT - 1, G, 1, {2}, -1, FG_ERR_SHAPE,
     "sgd_step: grad has shape [2] (2 elements), expected 3 elements", NULL},
    {SGD_COUNT - 1, BUF, 1, {4}, -1, FG_ERR_SHAPE, "sgd_step: momentum_buf has shape [4]", NULL},
};
static const fgt_suite SGD = {"sgd_step", SGD_COUNT, build_sgd, SGD_ERRORS, 2};
FGT_SUITE_TESTS(sgd, step, SGD)

/* ----------------------------------------------------------------------------------------- */
/* Adam                                                                                       */

typedef struct adam_row {
  int64_t n, step;
  fg_adam_hparams h;
  int zero_state; /* the first step: m = v = 0 */
  int layout;
  fg_status expect;
  const char *text;
} adam_row;

static const adam_row ADAM_ROWS[] = {
    {777, 1, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, 1, FGT_ALIGNED, FG_OK, NULL},
    {777, 2, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, 0, FGT_ALIGNED, FG_OK, NULL},
    {777, 5, {0.01f, 0.8f, 0.99f, 1e-6f, 1e-2f}, 0, FGT_ALIGNED, FG_OK, NULL},
    {777, 1000, {0.01f, 0.8f, 0.99f, 1e-6f, 1e-2f}, 0, FGT_ALIGNED, FG_OK, NULL},
    {1, 3, {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f}, 0, FGT_ALIGNED, FG_OK, NULL},
    {7, 2, {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f}, 0, FGT_MISALIGNED, FG_OK, NULL},
    {70001, 10, {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f}, 0, FGT_PARTIAL, FG_OK, NULL},
    {3, 0, {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f}, 0, FGT_ALIGNED, FG_ERR_INVALID,
     "adam_step: step is 0"},
    {3, 1, {0.1f, 0.9f, 1.0f, 1e-8f, 0.0f}, 0, FGT_ALIGNED, FG_ERR_INVALID,
     "adam_step: beta2 is 1"},
    /* the error rows' base */
    {3, 1, {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f}, 0, FGT_ALIGNED, FG_OK, NULL},
};
enum { ADAM_COUNT = sizeof ADAM_ROWS / sizeof ADAM_ROWS[0] };

static fg_status adam_call(fgt_op *op) {
  const adam_row *r = op->row;
  return fg_adam_step(&r->h, r->step, fgt_t(op, P), fgt_t(op, G), fgt_t(op, M), fgt_t(op, V));
}

static void build_adam(int index, fgt_op *op) {
  const adam_row *r = &ADAM_ROWS[index];
  fgt_name(op, "adam_step n%lld step %lld lr %g betas %g %g eps %g wd %g%s%s", (long long)r->n,
           (long long)r->step, (double)r->h.lr, (double)r->h.beta1, (double)r->h.beta2,
           (double)r->h.eps, (double)r->h.weight_decay, r->zero_state ? " first step" : "",
           fgt_layout_name(r->layout));
  op->row = r;
  op->call = adam_call;
  fgt_layout(op, r->layout);
  if (r->expect != FG_OK) fgt_expect_error(op, r->expect, r->text, NULL);
  float *p = fgt_arg1(op, P, "param", FGT_INOUT, r->n), *g = fgt_arg1(op, G, "grad", FGT_IN, r->n);
  float *m = fgt_arg1(op, M, "m", FGT_INOUT, r->n), *v = fgt_arg1(op, V, "v", FGT_INOUT, r->n);
  fgt_fill(op, P, -1.0f, 1.0f);
  fgt_fill(op, G, -1.0f, 1.0f);
  if (!r->zero_state) fgt_fill(op, M, -0.1f, 0.1f), fgt_fill(op, V, 0.0f, 0.01f);
  if (r->expect != FG_OK) return;
  double *pd = fgt_widen(op, P), *md = fgt_widen(op, M), *vd = fgt_widen(op, V);
  fg_ref_adam_step(&r->h, r->step, r->n, pd, fgt_widen(op, G), md, vd);
  float *f[3] = {fgt_scratch(op, (size_t)r->n * 4), fgt_scratch(op, (size_t)r->n * 4),
                 fgt_scratch(op, (size_t)r->n * 4)};
  memcpy(f[0], p, (size_t)r->n * 4), memcpy(f[1], m, (size_t)r->n * 4),
      memcpy(f[2], v, (size_t)r->n * 4);
  fg_ref_f32_adam_step(&r->h, r->step, r->n, f[0], g, f[1], f[2]);
  const int args[3] = {P, M, V};
  const double *refs[3] = {pd, md, vd};
  for (int a = 0; a < 3; a++) {
    double *want = fgt_expect(op, args[a], FGT_EXACT);
    for (int64_t i = 0; i < r->n; i++) want[i] = f[a][i];
    fgt_check_reference(op->name, want, refs[a], r->n);
  }
}

static const fgt_error_row ADAM_ERRORS[] = {
    {ADAM_COUNT - 1, V, 1, {2}, -1, FG_ERR_SHAPE, "adam_step: v has shape [2]", NULL},
};
static const fgt_suite ADAM = {"adam_step", ADAM_COUNT, build_adam, ADAM_ERRORS, 1};
FGT_SUITE_TESTS(adam, step, ADAM)

/* ----------------------------------------------------------------------------------------- */
/* Sequences of steps by hand, on every backend                                               */

static float read_one(const fgt_dbuf *b) {
  float v;
  fgt_download(&v, b);
  return v;
}

static void write_one(fgt_dbuf *b, float v) { fgt_upload(b, &v); }

/* p = 1, g = 0.5, lr 0.1, momentum 0.9, weight decay 0.01, buffer 0:
 * step 1: d = 0.5 + 0.01*1 = 0.51; buf = 0.9*0 + 0.51 = 0.51; p = 1 - 0.1*0.51 = 0.949.
 * step 2 (g = 0.5): d = 0.5 + 0.01*0.949 = 0.50949; buf = 0.9*0.51 + 0.50949 = 0.96849;
 *   p = 0.949 - 0.096849 = 0.852151. */
static void sgd_two_steps(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t one = 1;
  fgt_dbuf p = fgt_dbuf_alloc(dev, FG_F32, 1, &one), g = fgt_dbuf_alloc(dev, FG_F32, 1, &one);
  fgt_dbuf buf = fgt_dbuf_alloc(dev, FG_F32, 1, &one);
  write_one(&p, 1.0f), write_one(&g, 0.5f), write_one(&buf, 0.0f);
  const fg_sgd_hparams h = {0.1f, 0.9f, 0.01f, 0.0f, 0};
  const double want_p[2] = {0.949, 0.852151}, want_buf[2] = {0.51, 0.96849}, tol[2] = {1e-7, 1e-6};
  for (int s = 0; s < 2; s++) {
    fg_status st = fg_sgd_step(&h, &p.t, &g.t, &buf.t);
    if (st == FG_ERR_UNSUPPORTED)
      cr_skip_test("sgd_step on %s: %s", fgt_kind_name(kind), fg_last_error());
    FGT_OK(st);
    cr_assert(fabs(read_one(&buf) - want_buf[s]) <= tol[s], "step %d on %s: buf %.9g, want %.9g",
              s + 1, fgt_kind_name(kind), (double)read_one(&buf), want_buf[s]);
    cr_assert(fabs(read_one(&p) - want_p[s]) <= tol[s], "step %d on %s: p %.9g, want %.9g", s + 1,
              fgt_kind_name(kind), (double)read_one(&p), want_p[s]);
  }
  fgt_dbuf_free(&p), fgt_dbuf_free(&g), fgt_dbuf_free(&buf);
}

Test(sgd, two_steps_by_hand_cpu) { sgd_two_steps(FG_DEV_CPU); }
Test(sgd, two_steps_by_hand_cuda) { sgd_two_steps(FG_DEV_CUDA); }

/* p = 1, lr 0.1, beta1 0.9, beta2 0.999, eps 1e-8, no weight decay; gradients 1, -1, 2.
 * step 1: m = 0.1, v = 0.001, bc1 = 0.1, bc2 = 0.001 -> m/bc1 = 1, v/bc2 = 1;
 *   p = 1 - 0.1 * 1 / (1 + 1e-8) = 0.900000001.
 * step 2: m = 0.09 - 0.1 = -0.01, v = 0.000999 + 0.001 = 0.001999, bc1 = 0.19,
 *   bc2 = 1 - 0.998001 = 0.001999 -> m/bc1 = -0.0526315789, v/bc2 = 1;
 *   p = 0.900000001 + 0.00526315789 = 0.905263159.
 * step 3: m = -0.009 + 0.2 = 0.191, v = 0.001997001 + 0.004 = 0.005997001, bc1 = 0.271,
 *   bc2 = 0.002997001 -> m/bc1 = 0.704797048, v/bc2 = 2.001000667, sqrt = 1.414567307;
 *   p = 0.905263159 - 0.1 * 0.704797048 / 1.414567307 = 0.905263159 - 0.049824214
 *     = 0.855438945.
 * The hyper-parameters are floats: 0.999f = 0.99900001287, so 1 - beta2 = 0.00099998713 and v
 * sits 1.3e-5 (relative) below the decimal values above; the bias correction uses the same
 * beta2, so v/bc2 and p are unaffected. */
static void adam_three_steps(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const int64_t one = 1;
  fgt_dbuf p = fgt_dbuf_alloc(dev, FG_F32, 1, &one), g = fgt_dbuf_alloc(dev, FG_F32, 1, &one);
  fgt_dbuf m = fgt_dbuf_alloc(dev, FG_F32, 1, &one), v = fgt_dbuf_alloc(dev, FG_F32, 1, &one);
  write_one(&p, 1.0f), write_one(&m, 0.0f), write_one(&v, 0.0f);
  const fg_adam_hparams h = {0.1f, 0.9f, 0.999f, 1e-8f, 0.0f};
  const float grads[3] = {1.0f, -1.0f, 2.0f};
  const double want_p[3] = {0.900000001, 0.905263159, 0.855438945};
  const double want_m[3] = {0.1, -0.01, 0.191}, want_v[3] = {0.001, 0.001999, 0.005997001};
  for (int s = 0; s < 3; s++) {
    write_one(&g, grads[s]);
    fg_status st = fg_adam_step(&h, s + 1, &p.t, &g.t, &m.t, &v.t);
    if (st == FG_ERR_UNSUPPORTED)
      cr_skip_test("adam_step on %s: %s", fgt_kind_name(kind), fg_last_error());
    FGT_OK(st);
    const double got_p = read_one(&p), got_m = read_one(&m), got_v = read_one(&v);
    cr_assert(fabs(got_p - want_p[s]) < 2e-7, "step %d on %s: p = %.9g, want %.9g", s + 1,
              fgt_kind_name(kind), got_p, want_p[s]);
    cr_assert(fabs(got_m - want_m[s]) < 1e-7, "step %d on %s: m = %.9g, want %.9g", s + 1,
              fgt_kind_name(kind), got_m, want_m[s]);
    cr_assert(fabs(got_v - want_v[s]) < 2e-5 * want_v[s], "step %d on %s: v = %.9g, want %.9g",
              s + 1, fgt_kind_name(kind), got_v, want_v[s]);
  }
  fgt_dbuf_free(&p), fgt_dbuf_free(&g), fgt_dbuf_free(&m), fgt_dbuf_free(&v);
}

Test(adam, three_steps_by_hand_cpu) { adam_three_steps(FG_DEV_CPU); }
Test(adam, three_steps_by_hand_cuda) { adam_three_steps(FG_DEV_CUDA); }
