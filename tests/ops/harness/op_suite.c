/* The op suite's runner (op_suite.h): device buffers with sentinels, the two runs of a case,
 * the guards, the comparisons and their one-line reports, and the per-backend summary. */
#include "ops/harness/op_suite.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fd_check.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "fedgap_config.h"
#if FEDGAP_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif

const fgt_tol FGT_EXACT = {1, 0.0, 0.0, 0.0};
const fgt_tol FGT_TOL = {0, 1e-5, 1e-4, 1e-7};
const fgt_tol FGT_TOL_LOSS = {0, 1e-12, 1e-6, 0.0};

/* Elements of sentinel before and after every tensor. */
enum { FGT_GUARD = 16 };

/* Bit patterns: sentinels, and the pre-fill of outputs that are not accumulated. Both f32
 * patterns are quiet NaNs with payloads of their own, so that any write shows. */
static const uint32_t SENTINEL_F32 = 0x7fc0deadu, PREFILL_F32 = 0x7fc0beefu;
static const uint8_t SENTINEL_U8 = 0xee, PREFILL_U8 = 0xfe;
static const int32_t SENTINEL_I32 = 0x7fc0dead, PREFILL_I32 = INT32_MIN;

/* ----------------------------------------------------------------------------------------- */
/* Declaring a case                                                                           */

fg_tensor *fgt_t(fgt_op *op, int i) { return op->args[i].name ? &op->args[i].t : NULL; }

void *fgt_scratch(fgt_op *op, size_t bytes) {
  cr_assert(op->nscratch < (int)(sizeof op->scratch / sizeof op->scratch[0]),
            "%s: too many scratch buffers", op->name);
  void *p = calloc(bytes ? bytes : 1, 1);
  cr_assert_not_null(p);
  op->scratch[op->nscratch++] = p;
  return p;
}

double *fgt_scratch_d(fgt_op *op, int64_t n) {
  return fgt_scratch(op, (size_t)(n > 0 ? n : 1) * sizeof(double));
}

void fgt_name(fgt_op *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(op->name, sizeof op->name, fmt, ap);
  va_end(ap);
}

static int64_t shape_numel(int ndim, const int64_t *shape) {
  int64_t n = 1;
  for (int d = 0; d < ndim; d++) n *= shape[d];
  return n;
}

int64_t fgt_numel(const fgt_op *op, int i) {
  return shape_numel(op->args[i].ndim, op->args[i].shape);
}

void *fgt_arg_declare(fgt_op *op, int i, const char *name, fg_dtype dtype, fgt_role role, int ndim,
                      const int64_t *shape) {
  cr_assert(i >= 0 && i < FGT_MAX_ARGS && ndim >= 1 && ndim <= FG_MAX_DIMS);
  fgt_arg *a = &op->args[i];
  memset(a, 0, sizeof *a);
  a->name = name;
  a->dtype = dtype;
  a->role = role;
  a->ndim = ndim;
  for (int d = 0; d < FG_MAX_DIMS; d++) a->shape[d] = d < ndim ? shape[d] : 1;
  a->host = fgt_scratch(op, (size_t)shape_numel(ndim, shape) * fg_dtype_size(dtype));
  return a->host;
}

float *fgt_arg1(fgt_op *op, int i, const char *name, fgt_role role, int64_t n) {
  return fgt_arg_declare(op, i, name, FG_F32, role, 1, &n);
}

float *fgt_arg2(fgt_op *op, int i, const char *name, fgt_role role, int64_t rows, int64_t cols) {
  const int64_t s[2] = {rows, cols};
  return fgt_arg_declare(op, i, name, FG_F32, role, 2, s);
}

float *fgt_arg4(fgt_op *op, int i, const char *name, fgt_role role, int64_t n, int64_t c, int64_t h,
                int64_t w) {
  const int64_t s[4] = {n, c, h, w};
  return fgt_arg_declare(op, i, name, FG_F32, role, 4, s);
}

float *fgt_f32(fgt_op *op, int i) { return op->args[i].host; }

double *fgt_widen(fgt_op *op, int i) {
  const int64_t n = fgt_numel(op, i);
  const float *f = op->args[i].host;
  double *d = fgt_scratch_d(op, n);
  for (int64_t k = 0; k < n; k++) d[k] = f[k];
  return d;
}

float *fgt_fill(fgt_op *op, int i, float lo, float hi) {
  fg_rng r = fg_rng_stream(op->seed, FG_RNG_TEST, (uint64_t)i, 0);
  float *x = op->args[i].host;
  const int64_t n = fgt_numel(op, i);
  for (int64_t k = 0; k < n; k++) x[k] = lo + (hi - lo) * fg_rng_uniform(&r);
  return x;
}

int32_t *fgt_fill_labels(fgt_op *op, int i, int64_t below) {
  fg_rng r = fg_rng_stream(op->seed, FG_RNG_TEST, (uint64_t)i, 1);
  int32_t *y = op->args[i].host;
  const int64_t n = fgt_numel(op, i);
  for (int64_t k = 0; k < n; k++) y[k] = (int32_t)fg_rng_below(&r, (uint64_t)below);
  return y;
}

void fgt_fill_all(fgt_op *op, float lo, float hi) {
  for (int i = 0; i < FGT_MAX_ARGS; i++)
    if (op->args[i].name && op->args[i].dtype == FG_F32 && op->args[i].role != FGT_OUT)
      fgt_fill(op, i, lo, hi);
}

double *fgt_expect_onto(fgt_op *op, int i, fgt_tol tol) {
  double *want = fgt_expect(op, i, tol);
  if (op->args[i].role == FGT_INOUT) {
    const float *f = op->args[i].host;
    for (int64_t k = 0; k < fgt_numel(op, i); k++) want[k] = f[k];
  }
  return want;
}

double *fgt_expect(fgt_op *op, int i, fgt_tol tol) {
  fgt_arg *a = &op->args[i];
  cr_assert(a->name && a->role != FGT_IN, "%s: argument %d is no output", op->name, i);
  a->want = fgt_scratch_d(op, fgt_numel(op, i));
  a->tol = tol;
  return a->want;
}

void fgt_expect_scalar(fgt_op *op, double want, fgt_tol tol) {
  op->check_scalar = 1;
  op->want_scalar = want;
  op->scalar_tol = tol;
}

void fgt_expect_count(fgt_op *op, int64_t want) {
  op->check_count = 1;
  op->want_count = want;
}

void fgt_expect_error(fgt_op *op, fg_status status, const char *text, const char *text2) {
  op->expect = status;
  op->expect_text[0] = text;
  op->expect_text[1] = text2;
}

void fgt_arg_reshape(fgt_op *op, int i, int ndim, const int64_t *shape) {
  fgt_arg *a = &op->args[i];
  fgt_arg_declare(op, i, a->name, a->dtype, a->role, ndim, shape);
}

void fgt_arg_retype(fgt_op *op, int i, fg_dtype dtype) {
  fgt_arg *a = &op->args[i];
  int64_t shape[FG_MAX_DIMS];
  memcpy(shape, a->shape, sizeof shape);
  fgt_arg_declare(op, i, a->name, dtype, a->role, a->ndim, shape);
}

static void op_free(fgt_op *op) {
  for (int k = 0; k < op->nscratch; k++) free(op->scratch[k]);
  op->nscratch = 0;
}

/* ----------------------------------------------------------------------------------------- */
/* Comparisons                                                                                */

static double value_at(const void *p, fg_dtype dtype, int64_t i) {
  switch (dtype) {
    case FG_F32: return ((const float *)p)[i];
    case FG_I32: return ((const int32_t *)p)[i];
    default: return ((const uint8_t *)p)[i];
  }
}

/* "[1, 0, 3, 2]": the multi-index of flat index i in a's shape. */
static const char *index_str(const fgt_arg *a, int64_t i, char *buf, size_t cap) {
  int64_t idx[FG_MAX_DIMS];
  for (int d = a->ndim - 1; d >= 0; d--) {
    idx[d] = a->shape[d] > 0 ? i % a->shape[d] : 0;
    i = a->shape[d] > 0 ? i / a->shape[d] : 0;
  }
  size_t len = (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < a->ndim && len < cap; d++)
    len += (size_t)snprintf(buf + len, cap - len, d ? ", %lld" : "%lld", (long long)idx[d]);
  if (len < cap) snprintf(buf + len, cap - len, "]");
  return buf;
}

/* Compares got (n values of a's dtype) with a->want under a->tol; on a mismatch fails the test
 * with one line: how many values are off, the worst index and values, the NMSE. */
static void compare_arg(const fgt_op *op, const char *backend, const fgt_arg *a, const void *got) {
  const int64_t n = shape_numel(a->ndim, a->shape);
  int64_t bad = 0, worst = -1;
  double worst_excess = -INFINITY, err2 = 0.0, ref2 = 0.0;
  for (int64_t i = 0; i < n; i++) {
    const double g = value_at(got, a->dtype, i), w = a->want[i];
    double excess;
    if (a->tol.exact) {
      excess = g == w ? -1.0 : (isnan(g) ? INFINITY : fabs(g - w));
    } else {
      const double atol = a->atol_each ? a->atol_each[i] : a->tol.atol;
      excess = fabs(g - w) - (atol + a->tol.rtol * fabs(w));
      if (isnan(excess)) excess = INFINITY;
    }
    if (excess > 0.0) bad++;
    if (excess > worst_excess) worst_excess = excess, worst = i;
    err2 += (g - w) * (g - w);
    ref2 += w * w;
  }
  const double nmse = ref2 > 0.0 ? err2 / ref2 : err2;
  const int nmse_bad =
      !a->tol.exact && a->tol.nmse > 0.0 && n >= FGT_NMSE_MIN && !(nmse <= a->tol.nmse);
  if (bad == 0 && !nmse_bad) return;
  char where[64];
  const double g = value_at(got, a->dtype, worst), w = a->want[worst];
  if (a->tol.exact)
    cr_assert_fail(
        "%s on %s: %s: %lld of %lld values differ from the bitwise reference; worst at "
        "%lld %s: got %.9g, want %.9g",
        op->name, backend, a->name, (long long)bad, (long long)n, (long long)worst,
        index_str(a, worst, where, sizeof where), g, w);
  cr_assert_fail(
      "%s on %s: %s: %lld of %lld values out of |d| <= %g + %g |want|%s; worst at %lld "
      "%s: got %.9g, want %.9g, |d| %.3g; NMSE %.3g (max %g%s)",
      op->name, backend, a->name, (long long)bad, (long long)n, a->tol.atol, a->tol.rtol,
      a->atol_each ? " (per-element atol)" : "", (long long)worst,
      index_str(a, worst, where, sizeof where), g, w, fabs(g - w), nmse, a->tol.nmse,
      n >= FGT_NMSE_MIN ? "" : ", not checked below 1000 values");
}

static void compare_scalar(const fgt_op *op, const char *backend, double got) {
  const fgt_tol *t = &op->scalar_tol;
  const double w = op->want_scalar;
  const int ok = t->exact ? got == w : fabs(got - w) <= t->atol + t->rtol * fabs(w);
  cr_assert(ok, "%s on %s: scalar result %.15g, want %.15g (|d| %.3g, allowed %g + %g |want|)",
            op->name, backend, got, w, fabs(got - w), t->atol, t->rtol);
}

void fgt_check_reference(const char *what, const double *got, const double *want, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    cr_assert(fabs(got[i] - want[i]) <= FGT_TOL.atol + FGT_TOL.rtol * fabs(want[i]),
              "%s: the float reference %.9g and the double reference %.9g disagree at %lld", what,
              got[i], want[i], (long long)i);
}

/* ----------------------------------------------------------------------------------------- */
/* Device buffers                                                                             */

static fg_ledger *harness_ledger(void) {
  static fg_ledger ledger;
  static int ready;
  if (!ready) fg_ledger_init(&ledger, "op suite", 0), ready = 1;
  return &ledger;
}

fgt_dbuf fgt_dbuf_alloc(fg_device dev, fg_dtype dtype, int ndim, const int64_t *shape) {
  fgt_dbuf b;
  memset(&b, 0, sizeof b);
  const size_t bytes = (size_t)shape_numel(ndim, shape) * fg_dtype_size(dtype);
  FGT_OK(fg_region_alloc(&b.region, harness_ledger(), dev, FG_MEM_OTHER, bytes, "op suite tensor"));
  b.t = fg_tensor_view(b.region.ptr, dtype, dev, ndim, shape);
  return b;
}

void fgt_dbuf_free(fgt_dbuf *b) { fg_region_free(&b->region); }

void fgt_upload(fgt_dbuf *b, const void *host) {
  FGT_OK(fg_tensor_from_host(&b->t, host, fg_tensor_bytes(&b->t)));
}

void fgt_download(void *host, const fgt_dbuf *b) {
  FGT_OK(fg_tensor_to_host(host, &b->t, fg_tensor_bytes(&b->t)));
}

void fgt_upload_d(fgt_dbuf *b, const double *host) {
  const int64_t n = fg_tensor_numel(&b->t);
  float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
  cr_assert_not_null(f);
  for (int64_t i = 0; i < n; i++) f[i] = (float)host[i];
  fgt_upload(b, f);
  free(f);
}

void fgt_download_d(double *host, const fgt_dbuf *b) {
  const int64_t n = fg_tensor_numel(&b->t);
  float *f = malloc((size_t)(n > 0 ? n : 1) * sizeof *f);
  cr_assert_not_null(f);
  fgt_download(f, b);
  for (int64_t i = 0; i < n; i++) host[i] = f[i];
  free(f);
}

/* n copies of a 1-, 4- or 4-byte pattern. */
static void fill_pattern(void *p, fg_dtype dtype, int64_t n, int sentinel) {
  for (int64_t i = 0; i < n; i++) {
    if (dtype == FG_F32) {
      memcpy((uint32_t *)p + i, sentinel ? &SENTINEL_F32 : &PREFILL_F32, 4);
    } else if (dtype == FG_I32) {
      ((int32_t *)p)[i] = sentinel ? SENTINEL_I32 : PREFILL_I32;
    } else {
      ((uint8_t *)p)[i] = sentinel ? SENTINEL_U8 : PREFILL_U8;
    }
  }
}

fg_workspace fgt_workspace_alloc(fg_device dev, size_t bytes, fg_region *r) {
  fg_workspace ws = {NULL, bytes};
  memset(r, 0, sizeof *r);
  if (!bytes) return ws;
  FGT_OK(fg_region_alloc(r, harness_ledger(), dev, FG_MEM_WORKSPACE, bytes, "op suite workspace"));
  const int64_t floats = (int64_t)(bytes / sizeof(float));
  if (floats > 0) {
    float *nan = malloc((size_t)floats * sizeof *nan);
    cr_assert_not_null(nan);
    fill_pattern(nan, FG_F32, floats, 0);
    fg_tensor whole = fg_tensor_view(r->ptr, FG_F32, dev, 1, &floats);
    FGT_OK(fg_tensor_from_host(&whole, nan, (size_t)floats * sizeof(float)));
    free(nan);
  }
  ws.ptr = r->ptr;
  return ws;
}

double fgt_device_loss(void *device_loss_ctx) {
  const fgt_device_loss_ctx *c = device_loss_ctx;
  fgt_upload_d(c->target, c->param);
  FGT_OK(c->forward(c->ctx));
  if (!c->out) return *c->scalar;
  const int64_t n = fg_tensor_numel(&c->out->t);
  double *y = malloc((size_t)(n > 0 ? n : 1) * sizeof *y);
  cr_assert_not_null(y);
  fgt_download_d(y, c->out);
  double l = 0.0;
  for (int64_t i = 0; i < n; i++) l += y[i] * c->r[i];
  free(y);
  return l;
}

void fgt_fd_check_device(const char *what, fgt_device_loss_ctx *c, double *param, int64_t n,
                         const double *grad, const fgt_fd_opts *o) {
  c->param = param;
  fgt_fd_check(what, fgt_device_loss, c, param, n, grad, o);
  fgt_upload_d(c->target, param);
}

void fgt_fd_check_params(const char *op, fg_device_kind kind, fg_status (*forward)(void *ctx),
                         void *ctx, const fgt_dbuf *out, const double *r, const double *scalar,
                         const fgt_fd_param *params, int count, double step, double atol,
                         double rtol, uint64_t seed) {
  for (int a = 0; a < count; a++) {
    double *v = fgt_random_direction(params[a].n, seed + (uint64_t)a);
    const double *dirs[1] = {v};
    const fgt_fd_opts o = {step, atol, rtol, 1, 0.0, dirs, 1};
    fgt_device_loss_ctx lc = {params[a].target, NULL, forward, ctx, out, r, scalar};
    char what[96];
    snprintf(what, sizeof what, "%s %s on %s", op, params[a].name, fgt_kind_name(kind));
    fgt_fd_check_device(what, &lc, params[a].values, params[a].n, params[a].grad, &o);
    free(v);
  }
}

double *fgt_alloc_uniform(int64_t n, uint64_t seed, double lo, double hi) {
  double *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  cr_assert_not_null(v);
  fgt_fill_uniform_double(v, (size_t)n, seed, lo, hi);
  return v;
}

double *fgt_random_direction(int64_t n, uint64_t seed) {
  double *v = fgt_alloc_uniform(n, seed, -1.0, 1.0);
  fgt_quantize(v, n, FGT_FD_GRID);
  return v;
}

void fgt_quantize(double *x, int64_t n, double step) {
  for (int64_t i = 0; i < n; i++) x[i] = step * nearbyint(x[i] / step);
}

/* ----------------------------------------------------------------------------------------- */
/* Running a case                                                                             */

/* One argument's region: `before` sentinels, the tensor, `after` sentinels (all in elements). */
typedef struct arg_layout {
  int64_t before, numel, after;
  size_t elem;
} arg_layout;

static arg_layout layout_of(const fgt_op *op, const fgt_arg *a) {
  arg_layout l;
  l.elem = fg_dtype_size(a->dtype);
  l.numel = shape_numel(a->ndim, a->shape);
  l.before = FGT_GUARD + (op->misaligned && a->dtype == FG_F32 ? 1 : 0);
  l.after = FGT_GUARD + (op->partial_batch ? l.numel : 0);
  return l;
}

static int64_t layout_total(const arg_layout *l) { return l->before + l->numel + l->after; }

/* The whole region of an argument as one rank-1 tensor, for transfers. */
static fg_tensor whole_of(const fgt_arg *a, const arg_layout *l, fg_device dev) {
  const int64_t total = layout_total(l);
  return fg_tensor_view(a->region.ptr, a->dtype, dev, 1, &total);
}

/* The host image of an argument's region before the call: sentinels around the initial values
 * (inputs and INOUT) or the pre-fill (OUT). */
static void *initial_image(const fgt_arg *a, const arg_layout *l) {
  unsigned char *img = malloc((size_t)layout_total(l) * l->elem);
  cr_assert_not_null(img);
  fill_pattern(img, a->dtype, l->before, 1);
  if (a->role == FGT_OUT)
    fill_pattern(img + l->before * l->elem, a->dtype, l->numel, 0);
  else
    memcpy(img + l->before * l->elem, a->host, (size_t)l->numel * l->elem);
  fill_pattern(img + (l->before + l->numel) * l->elem, a->dtype, l->after, 1);
  return img;
}

static void alloc_args(fgt_op *op, fg_device dev) {
  for (int i = 0; i < FGT_MAX_ARGS; i++) {
    fgt_arg *a = &op->args[i];
    if (!a->name) continue;
    const arg_layout l = layout_of(op, a);
    FGT_OK(fg_region_alloc(&a->region, harness_ledger(), dev, FG_MEM_OTHER,
                           (size_t)layout_total(&l) * l.elem, a->name));
    a->t = fg_tensor_view((unsigned char *)a->region.ptr + l.before * l.elem, a->dtype, dev,
                          a->ndim, a->shape);
  }
}

static void free_args(fgt_op *op) {
  for (int i = 0; i < FGT_MAX_ARGS; i++) fg_region_free(&op->args[i].region);
  fg_region_free(&op->ws_region);
  memset(&op->ws, 0, sizeof op->ws);
}

/* Uploads every argument's initial image and a fresh NaN workspace. */
static void upload_all(fgt_op *op, fg_device dev, void **images) {
  for (int i = 0; i < FGT_MAX_ARGS; i++) {
    fgt_arg *a = &op->args[i];
    if (!a->name) continue;
    const arg_layout l = layout_of(op, a);
    fg_tensor whole = whole_of(a, &l, dev);
    FGT_OK(fg_tensor_from_host(&whole, images[i], (size_t)layout_total(&l) * l.elem));
  }
  if (op->ws_region.ptr) {
    const size_t bytes = op->ws.bytes;
    fg_region_free(&op->ws_region);
    op->ws = fgt_workspace_alloc(dev, bytes, &op->ws_region);
  }
}

static void *download_whole(const fgt_arg *a, const arg_layout *l, fg_device dev) {
  void *img = malloc((size_t)layout_total(l) * l->elem);
  cr_assert_not_null(img);
  fg_tensor whole = whole_of(a, l, dev);
  FGT_OK(fg_tensor_to_host(img, &whole, (size_t)layout_total(l) * l->elem));
  return img;
}

/* The sentinels of every argument are intact, and inputs are unchanged (everything unchanged
 * when `all_unchanged`, for refused calls). */
static void check_guards(const fgt_op *op, const char *backend, void **before, void **after,
                         int all_unchanged) {
  for (int i = 0; i < FGT_MAX_ARGS; i++) {
    const fgt_arg *a = &op->args[i];
    if (!a->name) continue;
    const arg_layout l = layout_of(op, a);
    const unsigned char *b = before[i], *g = after[i];
    const size_t head = (size_t)l.before * l.elem, body = (size_t)l.numel * l.elem;
    const size_t tail = (size_t)l.after * l.elem;
    cr_assert(memcmp(b, g, head) == 0, "%s on %s: %s: the sentinel before the tensor was written",
              op->name, backend, a->name);
    cr_assert(memcmp(b + head + body, g + head + body, tail) == 0,
              "%s on %s: %s: the sentinel after the tensor was written (an out-of-bounds write%s)",
              op->name, backend, a->name, op->partial_batch ? ", or past the partial batch" : "");
    if (a->role == FGT_IN || all_unchanged)
      cr_assert(memcmp(b + head, g + head, body) == 0, "%s on %s: %s was modified by %s", op->name,
                backend, a->name, all_unchanged ? "a refused call" : "the call");
  }
}

static void check_error(const fgt_op *op, const char *backend, fg_status s) {
  cr_assert_eq(s, op->expect, "%s on %s: status %s, expected %s (%s)", op->name, backend,
               fg_status_name(s), fg_status_name(op->expect), fg_last_error());
  for (int k = 0; k < 2; k++)
    if (op->expect_text[k])
      cr_assert(strstr(fg_last_error(), op->expect_text[k]) != NULL,
                "%s on %s: the message lacks \"%s\": %s", op->name, backend, op->expect_text[k],
                fg_last_error());
}

/* Runs one case on dev. Returns FG_ERR_UNSUPPORTED (with the message recorded) when the backend
 * does not implement the call; FG_OK otherwise (every failure is an assertion). */
static fg_status run_case(fgt_op *op, fg_device dev) {
  const char *backend = fgt_kind_name(dev.kind);
  alloc_args(op, dev);
  if (op->workspace) {
    size_t bytes = 0;
    fg_status s = op->workspace(op, &bytes);
    if (s == FG_ERR_UNSUPPORTED && op->expect == FG_OK) {
      free_args(op);
      return s;
    }
    /* An error row's query may fail too: the call then runs without a workspace. */
    if (op->expect == FG_OK)
      cr_assert_eq(s, FG_OK, "%s on %s: workspace query: %s", op->name, backend, fg_last_error());
    if (s == FG_OK) op->ws = fgt_workspace_alloc(dev, bytes, &op->ws_region);
  }
  void *images[FGT_MAX_ARGS] = {0}, *got[2][FGT_MAX_ARGS] = {{0}};
  double scalars[2];
  int64_t counts[2];
  for (int i = 0; i < FGT_MAX_ARGS; i++)
    if (op->args[i].name) {
      const arg_layout l = layout_of(op, &op->args[i]);
      images[i] = initial_image(&op->args[i], &l);
    }
  fg_status status = FG_OK;
  const int runs = op->expect == FG_OK ? 2 : 1;
  for (int r = 0; r < runs; r++) {
    if (dev.kind == FG_DEV_CPU) fgt_setup_cpu(r == 0 ? 1 : 2); /* determinism across threads */
    upload_all(op, dev, images);
    op->scalar = NAN;
    op->count = -1;
    fg_clear_error();
    status = op->call(op);
    if (status == FG_ERR_UNSUPPORTED && op->expect != FG_ERR_UNSUPPORTED) break;
    if (op->expect != FG_OK)
      check_error(op, backend, status);
    else
      cr_assert_eq(status, FG_OK, "%s on %s: %s: %s", op->name, backend, fg_status_name(status),
                   fg_last_error());
    for (int i = 0; i < FGT_MAX_ARGS; i++)
      if (op->args[i].name) {
        const arg_layout l = layout_of(op, &op->args[i]);
        got[r][i] = download_whole(&op->args[i], &l, dev);
      }
    check_guards(op, backend, images, got[r], op->expect != FG_OK && !op->refusal_writes);
    scalars[r] = op->scalar;
    counts[r] = op->count;
  }
  if (status == FG_OK && op->expect == FG_OK) {
    for (int i = 0; i < FGT_MAX_ARGS; i++) {
      const fgt_arg *a = &op->args[i];
      if (!a->name) continue;
      const arg_layout l = layout_of(op, a);
      cr_assert(memcmp(got[0][i], got[1][i], (size_t)layout_total(&l) * l.elem) == 0,
                "%s on %s: %s differs between two runs on the same inputs%s", op->name, backend,
                a->name, dev.kind == FG_DEV_CPU ? " (1 and 2 threads)" : "");
    }
    cr_assert(memcmp(&scalars[0], &scalars[1], sizeof scalars[0]) == 0 && counts[0] == counts[1],
              "%s on %s: the scalar results differ between two runs (%.17g, %lld then %.17g, %lld)",
              op->name, backend, scalars[0], (long long)counts[0], scalars[1],
              (long long)counts[1]);
    for (int i = 0; i < FGT_MAX_ARGS; i++) {
      const fgt_arg *a = &op->args[i];
      if (!a->name || !a->want) continue;
      const arg_layout l = layout_of(op, a);
      compare_arg(op, backend, a, (unsigned char *)got[0][i] + l.before * l.elem);
    }
    if (op->check) {
      void *out[FGT_MAX_ARGS] = {0};
      for (int i = 0; i < FGT_MAX_ARGS; i++)
        if (op->args[i].name) {
          const arg_layout l = layout_of(op, &op->args[i]);
          out[i] = (unsigned char *)got[0][i] + l.before * l.elem;
        }
      op->check(op, backend, out);
    }
    if (op->check_scalar) compare_scalar(op, backend, scalars[0]);
    if (op->check_count)
      cr_assert_eq(counts[0], op->want_count, "%s on %s: count %lld, want %lld", op->name, backend,
                   (long long)counts[0], (long long)op->want_count);
  }
  for (int i = 0; i < FGT_MAX_ARGS; i++) free(images[i]), free(got[0][i]), free(got[1][i]);
  free_args(op);
  return status == FG_ERR_UNSUPPORTED && op->expect != FG_ERR_UNSUPPORTED ? status : FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Backends and suites                                                                        */

const char *fgt_kind_name(fg_device_kind kind) { return fg_device_kind_name(kind); }

fg_device fgt_backend_open(fg_device_kind kind) {
  fgt_setup_cpu(1); /* host memory is the CPU backend's */
  if (kind == FG_DEV_CPU) return fg_host_device();
#if FEDGAP_WITH_CUDA
  /* Registered here, inside the test's own process, never in a global hook. */
  FGT_OK(fg_cuda_backend_register(0));
  fg_backend *b = fg_backend_registered(FG_DEV_CUDA);
  cr_assert_not_null(b);
  if (!b->available) cr_skip_test("cuda: %s", b->reason);
  return b->device;
#else
  cr_skip_test("cuda: not compiled in this build (FEDGAP_WITH_CUDA is 0)");
#endif
}

/* FNV-1a of a string: the suite's part of each case's seed. */
static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

const char *fgt_layout_name(int flags) {
  if (flags & FGT_MISALIGNED)
    return flags & FGT_PARTIAL ? " misaligned partial batch" : " misaligned";
  return flags & FGT_PARTIAL ? " partial batch" : "";
}

void fgt_layout(fgt_op *op, int flags) {
  op->misaligned = (flags & FGT_MISALIGNED) != 0;
  op->partial_batch = (flags & FGT_PARTIAL) != 0;
}

/* Case i of the suite; i >= s->cases: error row i - s->cases applied to its base case. */
static void build_case(const fgt_suite *s, int i, fgt_op *op) {
  const int base = i < s->cases ? i : s->errors[i - s->cases].base;
  memset(op, 0, sizeof *op);
  op->seed = fg_rng_key(name_hash(s->name), FG_RNG_TEST, (uint64_t)base, 0);
  snprintf(op->name, sizeof op->name, "%s case %d", s->name, base);
  op->expect = FG_OK;
  s->build(base, op);
  if (i < s->cases) return;
  const fgt_error_row *e = &s->errors[i - s->cases];
  cr_assert(op->args[e->arg].name, "%s: error row %d alters an absent argument", s->name,
            i - s->cases);
  if (e->ndim > 0) fgt_arg_reshape(op, e->arg, e->ndim, e->shape);
  if (e->dtype >= 0) fgt_arg_retype(op, e->arg, (fg_dtype)e->dtype);
  for (int k = 0; k < FGT_MAX_ARGS; k++) op->args[k].want = NULL;
  op->check_scalar = op->check_count = 0;
  fgt_expect_error(op, e->status, e->text, e->text2);
  char row[sizeof op->name];
  snprintf(row, sizeof row, "%s", op->name);
  fgt_name(op, "%s error %d (%s altered)", row, i - s->cases, op->args[e->arg].name);
}

void fgt_suite_run(const fgt_suite *s, fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const char *backend = fgt_kind_name(kind);
  int computed = 0, refused = 0, unsupported = 0;
  char first_reason[256] = "";
  const int total = s->cases + s->nerrors;
  for (int i = 0; i < total; i++) {
    fgt_op op;
    build_case(s, i, &op);
    if (run_case(&op, dev) == FG_ERR_UNSUPPORTED) {
      if (!unsupported) snprintf(first_reason, sizeof first_reason, "%s", fg_last_error());
      unsupported++;
    } else if (op.expect == FG_OK) {
      computed++;
    } else {
      refused++;
    }
    op_free(&op);
  }
  cr_assert_eq(harness_ledger()->current, 0, "%s: the suite leaked %zu device bytes", s->name,
               harness_ledger()->current);
  fprintf(stderr,
          "op suite: %-24s on %-4s: %3d cases: %3d computed, %2d refused as expected, %3d "
          "unsupported%s%s\n",
          s->name, backend, total, computed, refused, unsupported, unsupported ? ": " : "",
          first_reason);
  /* The CPU implements every op: an unsupported case there is a failure. */
  cr_assert(kind != FG_DEV_CPU || unsupported == 0, "%s: %d cases unsupported on the cpu (%s)",
            s->name, unsupported, first_reason);
  /* Another backend that computes none of the cases does not implement the op: a skip (the
   * error rows it refused as expected are in the summary line). */
  if (computed == 0 && unsupported > 0)
    cr_skip_test("%s: unsupported on %s: %d of %d cases (%s); %d error rows refused as expected",
                 s->name, backend, unsupported, total, first_reason, refused);
}
