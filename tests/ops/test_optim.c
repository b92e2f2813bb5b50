/* Op suite: the optimizer steps (SGD with momentum, Nesterov, dampening and weight decay, and
 * without momentum; Adam with weight decay at steps 1, 2, 5 and 1000) on every backend, in the
 * bitwise class: one step from random state against the float references
 * (tests/ref/ref_exact.h), which are checked against the double references. Hand-derived
 * single steps, hand-derived sequences of steps (SGD over two steps, Adam over three), the
 * misaligned and partial-batch layouts, and the entry points' value and shape errors. A group of
 * tensors stepped at once (a trainer's one optimizer step) is bitwise its tensors stepped alone. */
#include <math.h>
#include <stdlib.h>
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
     "sgd_step: momentum_buf of tensor 0 is missing but momentum is 0.9"},
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

/* ----------------------------------------------------------------------------------------- */
/* Groups: one step over many tensors                                                         */

enum { GROUP = 40 }; /* more than one launch's worth on CUDA (32 tensors a launch) */

/* Tensor i of the group: n_i elements (an empty one, odd sizes, one larger than the rest). */
static int64_t group_size(int i) { return i == 7 ? 0 : i == 33 ? 5001 : 1 + (int64_t)i * 37 % 301; }

typedef struct group_bufs {
  fgt_dbuf t[GROUP][4]; /* param, grad, state 0, state 1 */
  fg_tensor *ptr[4][GROUP];
} group_bufs;

/* Random tensors, the same from `seed` on every call; state 1 of every tensor is >= 0 (Adam's v). */
static void group_fill(group_bufs *gb, fg_device dev, uint64_t seed) {
  for (int i = 0; i < GROUP; i++) {
    const int64_t n = group_size(i);
    float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof *host);
    for (int k = 0; k < 4; k++) {
      gb->t[i][k] = fgt_dbuf_alloc(dev, FG_F32, 1, &n);
      fgt_fill_uniform(host, (size_t)n, seed + (uint64_t)(i * 4 + k), k == 3 ? 0.0f : -1.0f, 1.0f);
      if (n > 0) fgt_upload(&gb->t[i][k], host);
      gb->ptr[k][i] = &gb->t[i][k].t;
    }
    free(host);
  }
}

static void group_free(group_bufs *gb) {
  for (int i = 0; i < GROUP; i++)
    for (int k = 0; k < 4; k++) fgt_dbuf_free(&gb->t[i][k]);
}

static fg_param_group group_of(group_bufs *gb, int states) {
  fg_param_group g = {GROUP, gb->ptr[0], (const fg_tensor *const *)gb->ptr[1],
                      {states > 0 ? gb->ptr[2] : NULL, states > 1 ? gb->ptr[3] : NULL}};
  return g;
}

/* Every tensor's bytes agree between a and b. */
static void group_same(const group_bufs *a, const group_bufs *b, const char *what, fg_device_kind kind) {
  for (int i = 0; i < GROUP; i++) {
    const int64_t n = group_size(i);
    if (n == 0) continue;
    for (int k = 0; k < 4; k++) {
      float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
      fgt_download(x, &a->t[i][k]);
      fgt_download(y, &b->t[i][k]);
      cr_assert(memcmp(x, y, (size_t)n * sizeof *x) == 0, "%s on %s: tensor %d, buffer %d differs", what,
                fgt_kind_name(kind), i, k);
      free(x), free(y);
    }
  }
}

/* One step over the group is bitwise the steps of its tensors one at a time (SGD with momentum
 * and Nesterov, SGD without momentum, Adam), and a malformed group is refused naming the tensor. */
static void group_equals_singles(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const fg_sgd_hparams sgd[2] = {{0.05f, 0.9f, 1e-3f, 0.0f, 1}, {0.1f, 0.0f, 5e-4f, 0.0f, 0}};
  const fg_adam_hparams adam = {1e-3f, 0.9f, 0.999f, 1e-8f, 1e-4f};
  for (int v = 0; v < 3; v++) {
    group_bufs together, alone;
    group_fill(&together, dev, 500);
    group_fill(&alone, dev, 500);
    const int states = v == 0 ? 1 : v == 1 ? 0 : 2;
    const fg_param_group g = group_of(&together, states);
    fg_status st = v < 2 ? fg_sgd_step_group(&sgd[v], &g) : fg_adam_step_group(&adam, 3, &g);
    if (st == FG_ERR_UNSUPPORTED) cr_skip_test("optimizer groups on %s: %s", fgt_kind_name(kind), fg_last_error());
    FGT_OK(st);
    for (int i = 0; i < GROUP; i++) {
      fg_tensor **p = alone.ptr[0], **gr = alone.ptr[1], **s0 = alone.ptr[2], **s1 = alone.ptr[3];
      FGT_OK(v < 2 ? fg_sgd_step(&sgd[v], p[i], gr[i], states ? s0[i] : NULL)
                   : fg_adam_step(&adam, 3, p[i], gr[i], s0[i], s1[i]));
    }
    group_same(&together, &alone, v == 0 ? "sgd momentum" : v == 1 ? "sgd" : "adam", kind);
    group_free(&together);
    group_free(&alone);
  }
  group_bufs gb;
  group_fill(&gb, dev, 600);
  fg_param_group g = group_of(&gb, 2);
  gb.ptr[2][12] = gb.ptr[0][13]; /* m of tensor 12 has tensor 13's size */
  fgt_assert_error(fg_adam_step_group(&adam, 1, &g), FG_ERR_SHAPE, NULL, "adam_step: m[12] has shape");
  gb.ptr[2][12] = &gb.t[12][2].t;
  g.state[0] = NULL;
  fgt_assert_error(fg_sgd_step_group(&sgd[0], &g), FG_ERR_INVALID, NULL,
                   "momentum_buf of tensor 0 is missing but momentum is 0.9");
  g.count = 0;
  fgt_assert_error(fg_sgd_step_group(&sgd[1], &g), FG_ERR_INVALID, NULL, "the parameter group is empty");
  group_free(&gb);
}

Test(optim_group, one_step_equals_the_singles_cpu) { group_equals_singles(FG_DEV_CPU); }
Test(optim_group, one_step_equals_the_singles_cuda) { group_equals_singles(FG_DEV_CUDA); }
