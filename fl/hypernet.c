/* HypeMeFed's server-side hypernetworks (LRF and naive); see hypernet.h. */
#include "fl/hypernet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/region.h"
#include "engine/nn/lrf.h"
#include "engine/optim/optim.h"

enum {
  HN_DEFAULT_RANK = 100,
  HN_DEFAULT_HIDDEN = 512,
  HN_DEFAULT_EPOCHS = 25,
  HN_DEFAULT_MAX_PAIRS = 8,
  HN_ALIGN = 64,         /* sub-buffers of a region start at multiples of this many bytes */
  HN_MAX_PAIRS = 1 << 20 /* sanity bound on max_pairs */
};
static const float hn_default_lr = 5e-4f;
/* Bounds that keep every size computation far from int64 / size_t overflow. */
static const int64_t hn_max_extent = (int64_t)1 << 24;
static const int64_t hn_max_numel = (int64_t)1 << 36;

/* ----------------------------------------------------------------------------------------- */
/* Layout: sizes and offsets of everything, shared by plan and create                         */

/* One Linear -> ReLU -> Linear: w1 [hidden, in], b1 [hidden], w2 [out, hidden], b2 [out] at
 * `offset` floats into the flat weights. */
typedef struct hn_mlp {
  int64_t in, hidden, out;
  int64_t offset;
} hn_mlp;

typedef struct hn_layout {
  fg_hypernet_desc d; /* defaults filled in */
  int n_mlps;         /* LRF 2 (A, B), naive 1 */
  hn_mlp mlp[2];
  int64_t numel;      /* weights */
  int64_t rows;       /* the MLPs' batch: r_eff (LRF) or 1 (naive) */
  int64_t src_rows, src_cols, tgt_rows, tgt_cols, src_numel, tgt_numel;
  /* byte offsets in the activation region */
  size_t act_x[2], act_h[2], act_y[2], act_w, act_bytes;
  /* in the workspace region */
  size_t ws_dw, ws_dy[2], ws_dh, ws_lrf, ws_lrf_bytes, ws_bytes;
  /* in the data region */
  size_t data_src, data_tgt, data_order, data_cache, cache_stride, cache_b, data_bytes;
} hn_layout;

struct fg_hypernet {
  hn_layout l;
  fg_region params, grads, optim, acts, ws, data;
};

static size_t align_up(size_t v) { return (v + HN_ALIGN - 1) / HN_ALIGN * HN_ALIGN; }

/* Reserves `bytes` at the aligned end of a region being laid out; returns its offset. */
static size_t carve(size_t *cursor, size_t bytes) {
  size_t at = align_up(*cursor);
  *cursor = at + bytes;
  return at;
}

static size_t floats(int64_t n) { return (size_t)n * sizeof(float); }

fg_hypernet_desc fg_hypernet_defaults(fg_hypernet_kind kind, const int64_t src_shape[4],
                                      const int64_t tgt_shape[4]) {
  fg_hypernet_desc d;
  memset(&d, 0, sizeof d);
  d.kind = kind;
  for (int i = 0; i < 4; i++) {
    d.src_shape[i] = src_shape ? src_shape[i] : 0;
    d.tgt_shape[i] = tgt_shape ? tgt_shape[i] : 0;
  }
  d.rank = HN_DEFAULT_RANK;
  d.hidden = HN_DEFAULT_HIDDEN;
  d.lr = hn_default_lr;
  d.epochs = HN_DEFAULT_EPOCHS;
  d.max_pairs = HN_DEFAULT_MAX_PAIRS;
  d.cache_factors = 1;
  return d;
}

static fg_status check_shape(const char *what, const int64_t s[4], int64_t *numel) {
  int64_t n = 1;
  for (int i = 0; i < 4; i++) {
    if (s[i] < 1 || s[i] > hn_max_extent)
      return FG_FAIL(FG_ERR_INVALID,
                     "hypernet: %s [%lld, %lld, %lld, %lld] has extent %d = %lld, expected 1..%lld",
                     what, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3], i,
                     (long long)s[i], (long long)hn_max_extent);
    n *= s[i];
    if (n > hn_max_numel)
      return FG_FAIL(FG_ERR_INVALID, "hypernet: %s has more than %lld elements", what,
                     (long long)hn_max_numel);
  }
  *numel = n;
  return FG_OK;
}

/* Copies d with defaults for its zero fields; rejects negative or out-of-range values. */
static fg_status fill_defaults(const fg_hypernet_desc *in, fg_hypernet_desc *d) {
  if (!in) return FG_FAIL(FG_ERR_INVALID, "hypernet: descriptor is missing");
  *d = *in;
  if (d->kind != FG_HYPERNET_LRF && d->kind != FG_HYPERNET_NAIVE)
    return FG_FAIL(FG_ERR_INVALID, "hypernet: kind %d is not lrf (%d) or naive (%d)", (int)d->kind,
                   FG_HYPERNET_LRF, FG_HYPERNET_NAIVE);
  if (d->rank < 0 || d->hidden < 0 || d->epochs < 0 || d->max_pairs < 0)
    return FG_FAIL(FG_ERR_INVALID,
                   "hypernet: rank %lld, hidden %lld, epochs %d, max_pairs %d: expected >= 0 "
                   "(0 = default)",
                   (long long)d->rank, (long long)d->hidden, d->epochs, d->max_pairs);
  if (!(d->lr >= 0.0f) || !isfinite(d->lr))
    return FG_FAIL(FG_ERR_INVALID, "hypernet: lr %g, expected a finite value >= 0 (0 = default)",
                   (double)d->lr);
  if (d->cache_factors != 0 && d->cache_factors != 1)
    return FG_FAIL(FG_ERR_INVALID, "hypernet: cache_factors %d, expected 0 or 1", d->cache_factors);
  if (d->rank == 0) d->rank = HN_DEFAULT_RANK;
  if (d->hidden == 0) d->hidden = HN_DEFAULT_HIDDEN;
  if (d->lr == 0.0f) d->lr = hn_default_lr;
  if (d->epochs == 0) d->epochs = HN_DEFAULT_EPOCHS;
  if (d->max_pairs == 0) d->max_pairs = HN_DEFAULT_MAX_PAIRS;
  if (d->hidden > hn_max_extent || d->max_pairs > HN_MAX_PAIRS)
    return FG_FAIL(FG_ERR_INVALID, "hypernet: hidden %lld or max_pairs %d is too large",
                   (long long)d->hidden, d->max_pairs);
  if (d->kind == FG_HYPERNET_NAIVE) d->cache_factors = 0;
  return FG_OK;
}

static void set_mlp(hn_mlp *m, int64_t in, int64_t hidden, int64_t out, int64_t *offset) {
  m->in = in;
  m->hidden = hidden;
  m->out = out;
  m->offset = *offset;
  *offset += hidden * in + hidden + out * hidden + out;
}

/* The activation and workspace buffers of the LRF kind. */
static fg_status lay_out_lrf(hn_layout *l) {
  const int64_t r = l->rows;
  size_t act = 0, ws = 0;
  for (int m = 0; m < 2; m++) {
    l->act_x[m] = carve(&act, floats(r * l->mlp[m].in));
    l->act_h[m] = carve(&act, floats(r * l->mlp[m].hidden));
    l->act_y[m] = carve(&act, floats(r * l->mlp[m].out));
    l->ws_dy[m] = carve(&ws, floats(r * l->mlp[m].out));
  }
  l->act_w = carve(&act, floats(l->tgt_numel));
  l->ws_dw = carve(&ws, floats(l->tgt_numel));
  l->ws_dh = carve(&ws, floats(r * l->d.hidden));
  fg_tensor src = fg_tensor_view(NULL, FG_F32, fg_host_device(), 4, l->d.src_shape);
  FG_TRY(fg_lrf_workspace(&src, &l->ws_lrf_bytes));
  l->ws_lrf = carve(&ws, l->ws_lrf_bytes);
  l->act_bytes = act;
  l->ws_bytes = ws;
  return FG_OK;
}

/* The naive kind's: the input is the staged source, the output is W itself. */
static void lay_out_naive(hn_layout *l) {
  size_t act = 0, ws = 0;
  l->act_h[0] = carve(&act, floats(l->d.hidden));
  l->act_y[0] = carve(&act, floats(l->tgt_numel));
  l->ws_dy[0] = carve(&ws, floats(l->tgt_numel));
  l->ws_dh = carve(&ws, floats(l->d.hidden));
  l->act_bytes = act;
  l->ws_bytes = ws;
}

/* Staged source and target, the shuffle order, the factor cache. */
static void lay_out_data(hn_layout *l) {
  size_t data = 0;
  l->data_src = carve(&data, floats(l->src_numel));
  l->data_tgt = carve(&data, floats(l->tgt_numel));
  l->data_order = carve(&data, (size_t)l->d.max_pairs * sizeof(uint32_t));
  if (l->d.cache_factors) {
    l->cache_b = align_up(floats(l->rows * l->src_rows));
    l->cache_stride = align_up(l->cache_b + floats(l->rows * l->src_cols));
    l->data_cache = carve(&data, (size_t)l->d.max_pairs * l->cache_stride);
  }
  l->data_bytes = data;
}

static fg_status lay_out(const fg_hypernet_desc *in, hn_layout *l) {
  memset(l, 0, sizeof *l);
  FG_TRY(fill_defaults(in, &l->d));
  FG_TRY(check_shape("source shape", l->d.src_shape, &l->src_numel));
  FG_TRY(check_shape("target shape", l->d.tgt_shape, &l->tgt_numel));
  const int64_t *s = l->d.src_shape, *t = l->d.tgt_shape, hid = l->d.hidden;
  l->src_rows = s[0] * s[2];
  l->src_cols = s[1] * s[3];
  l->tgt_rows = t[0] * t[2];
  l->tgt_cols = t[1] * t[3];
  int64_t offset = 0;
  if (l->d.kind == FG_HYPERNET_LRF) {
    const int64_t k = l->src_rows < l->src_cols ? l->src_rows : l->src_cols;
    l->rows = l->d.rank < k ? l->d.rank : k;
    l->n_mlps = 2;
    set_mlp(&l->mlp[0], l->src_rows, hid, l->tgt_cols, &offset); /* MLP_A: O_s k -> I_t k */
    set_mlp(&l->mlp[1], l->src_cols, hid, l->tgt_rows, &offset); /* MLP_B: I_s k -> O_t k */
    l->numel = offset;
    FG_TRY(lay_out_lrf(l));
  } else {
    l->rows = 1;
    l->n_mlps = 1;
    set_mlp(&l->mlp[0], l->src_numel, hid, l->tgt_numel, &offset);
    l->numel = offset;
    lay_out_naive(l);
  }
  lay_out_data(l);
  return FG_OK;
}

static void memory_of_layout(const hn_layout *l, fg_hypernet_memory *m) {
  const fg_device cpu = fg_host_device();
  m->params = fg_region_round(cpu, floats(l->numel));
  m->grads = fg_region_round(cpu, floats(l->numel));
  m->optim = fg_region_round(cpu, 2 * floats(l->numel));
  m->activations = fg_region_round(cpu, l->act_bytes);
  m->workspace = fg_region_round(cpu, l->ws_bytes);
  m->data = fg_region_round(cpu, l->data_bytes);
  m->total = m->params + m->grads + m->optim + m->activations + m->workspace + m->data;
}

int64_t fg_hypernet_param_count(const fg_hypernet_desc *d) {
  hn_layout l;
  if (lay_out(d, &l) != FG_OK) return -1;
  return l.numel;
}

fg_status fg_hypernet_plan(const fg_hypernet_desc *d, fg_hypernet_memory *m) {
  if (!m) return FG_FAIL(FG_ERR_INVALID, "hypernet_plan: output is missing");
  hn_layout l;
  FG_TRY(lay_out(d, &l));
  memory_of_layout(&l, m);
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Creation                                                                                   */

/* PyTorch's Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), one stream per tensor. */
static void init_uniform(float *v, int64_t n, int64_t fan_in, uint64_t seed, uint64_t tensor) {
  fg_rng r = fg_rng_stream(seed, FG_RNG_INIT, tensor, 1);
  const double bound = 1.0 / sqrt((double)fan_in);
  for (int64_t k = 0; k < n; k++) v[k] = (float)(bound * (2.0 * fg_rng_uniform_double(&r) - 1.0));
}

static void init_weights(fg_hypernet *h, uint64_t seed) {
  float *w = h->params.ptr;
  for (int m = 0; m < h->l.n_mlps; m++) {
    const hn_mlp *p = &h->l.mlp[m];
    float *w1 = w + p->offset, *b1 = w1 + p->hidden * p->in;
    float *w2 = b1 + p->hidden, *b2 = w2 + p->out * p->hidden;
    const uint64_t t = 4 * (uint64_t)m;
    init_uniform(w1, p->hidden * p->in, p->in, seed, t);
    init_uniform(b1, p->hidden, p->in, seed, t + 1);
    init_uniform(w2, p->out * p->hidden, p->hidden, seed, t + 2);
    init_uniform(b2, p->out, p->hidden, seed, t + 3);
  }
}

fg_status fg_hypernet_create(const fg_hypernet_desc *d, uint64_t seed, fg_ledger *ledger,
                             fg_hypernet **out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "hypernet_create: output pointer is missing");
  *out = NULL;
  if (!ledger) return FG_FAIL(FG_ERR_INVALID, "hypernet_create: ledger is missing");
  fg_hypernet *h = calloc(1, sizeof *h);
  if (!h) return FG_FAIL(FG_ERR_OOM, "hypernet_create: out of host memory");
  fg_status st = lay_out(d, &h->l);
  const fg_device cpu = fg_host_device();
  const hn_layout *l = &h->l;
  if (st == FG_OK)
    st = fg_region_alloc(&h->params, ledger, cpu, FG_MEM_PARAMS, floats(l->numel), "hypernet weights");
  if (st == FG_OK)
    st = fg_region_alloc(&h->grads, ledger, cpu, FG_MEM_GRADS, floats(l->numel), "hypernet gradients");
  if (st == FG_OK)
    st = fg_region_alloc(&h->optim, ledger, cpu, FG_MEM_OPTIM, 2 * floats(l->numel),
                         "hypernet Adam moments");
  if (st == FG_OK)
    st = fg_region_alloc(&h->acts, ledger, cpu, FG_MEM_ACTIVATIONS, l->act_bytes,
                         "hypernet activations");
  if (st == FG_OK)
    st = fg_region_alloc(&h->ws, ledger, cpu, FG_MEM_WORKSPACE, l->ws_bytes, "hypernet workspace");
  if (st == FG_OK)
    st = fg_region_alloc(&h->data, ledger, cpu, FG_MEM_DATA, l->data_bytes,
                         "hypernet staged pairs and factor cache");
  if (st != FG_OK) {
    fg_hypernet_free(h);
    return st;
  }
  init_weights(h, seed);
  *out = h;
  return FG_OK;
}

void fg_hypernet_free(fg_hypernet *h) {
  if (!h) return;
  fg_region_free(&h->params);
  fg_region_free(&h->grads);
  fg_region_free(&h->optim);
  fg_region_free(&h->acts);
  fg_region_free(&h->ws);
  fg_region_free(&h->data);
  free(h);
}

int64_t fg_hypernet_numel(const fg_hypernet *h) { return h ? h->l.numel : 0; }
float *fg_hypernet_weights(fg_hypernet *h) { return h ? h->params.ptr : NULL; }
const float *fg_hypernet_grads(const fg_hypernet *h) { return h ? h->grads.ptr : NULL; }
const fg_hypernet_desc *fg_hypernet_desc_of(const fg_hypernet *h) { return h ? &h->l.d : NULL; }
int64_t fg_hypernet_rank(const fg_hypernet *h) { return h ? h->l.rows : 0; }

void fg_hypernet_memory_of(const fg_hypernet *h, fg_hypernet_memory *m) {
  if (!m) return;
  memset(m, 0, sizeof *m);
  if (!h) return;
  m->params = h->params.bytes;
  m->grads = h->grads.bytes;
  m->optim = h->optim.bytes;
  m->activations = h->acts.bytes;
  m->workspace = h->ws.bytes;
  m->data = h->data.bytes;
  m->total = m->params + m->grads + m->optim + m->activations + m->workspace + m->data;
}

/* ----------------------------------------------------------------------------------------- */
/* Views                                                                                      */

static fg_tensor matrix_at(const fg_region *r, size_t offset, int64_t rows, int64_t cols) {
  return fg_tensor_2d((float *)((unsigned char *)r->ptr + offset), rows, cols);
}

/* The four tensors of MLP m inside a flat vector laid out like the weights. */
typedef struct hn_mlp_tensors {
  fg_tensor w1, b1, w2, b2;
} hn_mlp_tensors;

static hn_mlp_tensors mlp_tensors(const hn_mlp *p, float *flat) {
  hn_mlp_tensors t;
  float *w1 = flat + p->offset, *b1 = w1 + p->hidden * p->in;
  float *w2 = b1 + p->hidden, *b2 = w2 + p->out * p->hidden;
  t.w1 = fg_tensor_2d(w1, p->hidden, p->in);
  t.b1 = fg_tensor_1d(b1, p->hidden);
  t.w2 = fg_tensor_2d(w2, p->out, p->hidden);
  t.b2 = fg_tensor_1d(b2, p->out);
  return t;
}

/* The buffers of one MLP for a batch of l->rows rows: input x [rows, in] (caller's), ReLU output
 * h [rows, hidden], output y [rows, out], output gradient dy [rows, out]. */
typedef struct hn_mlp_bufs {
  fg_tensor h, y, dy;
} hn_mlp_bufs;

static hn_mlp_bufs mlp_bufs(const fg_hypernet *h, int m) {
  const hn_layout *l = &h->l;
  const hn_mlp *p = &l->mlp[m];
  hn_mlp_bufs b;
  b.h = matrix_at(&h->acts, l->act_h[m], l->rows, p->hidden);
  b.y = matrix_at(&h->acts, l->act_y[m], l->rows, p->out);
  b.dy = matrix_at(&h->ws, l->ws_dy[m], l->rows, p->out);
  return b;
}

/* The generated target as a matrix: LRF W [tgt_rows, tgt_cols]; naive the MLP output [1, numel]. */
static fg_tensor output_view(const fg_hypernet *h) {
  const hn_layout *l = &h->l;
  if (l->d.kind == FG_HYPERNET_LRF) return matrix_at(&h->acts, l->act_w, l->tgt_rows, l->tgt_cols);
  return matrix_at(&h->acts, l->act_y[0], 1, l->tgt_numel);
}

/* dL/dW, shaped like output_view. */
static fg_tensor output_grad_view(const fg_hypernet *h) {
  const hn_layout *l = &h->l;
  if (l->d.kind == FG_HYPERNET_LRF) return matrix_at(&h->ws, l->ws_dw, l->tgt_rows, l->tgt_cols);
  return matrix_at(&h->ws, l->ws_dy[0], 1, l->tgt_numel);
}

/* The MLP inputs: x[0] = A_src [r, src_rows], x[1] = B_src [r, src_cols] (LRF), or x[0] = the
 * staged source [1, src_numel] (naive). */
typedef struct hn_inputs {
  fg_tensor x[2];
} hn_inputs;

/* Factor slot: the activation buffers (slot < 0) or cache entry `slot`. */
static hn_inputs lrf_inputs(const fg_hypernet *h, int slot) {
  const hn_layout *l = &h->l;
  hn_inputs in;
  if (slot < 0) {
    in.x[0] = matrix_at(&h->acts, l->act_x[0], l->rows, l->src_rows);
    in.x[1] = matrix_at(&h->acts, l->act_x[1], l->rows, l->src_cols);
  } else {
    const size_t base = l->data_cache + (size_t)slot * l->cache_stride;
    in.x[0] = matrix_at(&h->data, base, l->rows, l->src_rows);
    in.x[1] = matrix_at(&h->data, base + l->cache_b, l->rows, l->src_cols);
  }
  return in;
}

static fg_tensor staged_source(const fg_hypernet *h) {
  const int64_t *s = h->l.d.src_shape;
  float *p = (float *)((unsigned char *)h->data.ptr + h->l.data_src);
  return fg_tensor_4d(p, s[0], s[1], s[2], s[3]);
}

static fg_tensor staged_target(const fg_hypernet *h) {
  const int64_t *t = h->l.d.tgt_shape;
  float *p = (float *)((unsigned char *)h->data.ptr + h->l.data_tgt);
  return fg_tensor_4d(p, t[0], t[1], t[2], t[3]);
}

/* ----------------------------------------------------------------------------------------- */
/* Forward and backward                                                                       */

/* Copies a host source in and prepares the MLP inputs: LRF factors into `slot` (< 0: the
 * activation buffers), naive the staged source itself. */
static fg_status load_source(fg_hypernet *h, const float *src, int slot, hn_inputs *in) {
  const hn_layout *l = &h->l;
  fg_tensor s = staged_source(h);
  FG_TRY(fg_tensor_from_host(&s, src, floats(l->src_numel)));
  if (l->d.kind == FG_HYPERNET_NAIVE) {
    double sq = 0.0; /* the LRF kind's SVD rejects a non-finite source; so does this */
    FG_TRY(fg_sum_squares(&s, &sq));
    if (!isfinite(sq))
      return FG_FAIL(FG_ERR_NUMERIC, "hypernet: the source holds a NaN or an infinity (or values whose squares overflow)");
    in->x[0] = fg_tensor_2d(fg_f32(&s), 1, l->src_numel);
    return FG_OK;
  }
  *in = lrf_inputs(h, slot);
  fg_workspace ws = {(unsigned char *)h->ws.ptr + l->ws_lrf, l->ws_lrf_bytes};
  fg_status st = fg_lrf_factor(&s, l->d.rank, &in->x[0], &in->x[1], ws);
  if (st != FG_OK) fg_error_prefix("hypernet: factoring the source");
  return st;
}

/* y = w2 relu(w1 x + b1) + b2, row-wise; keeps the ReLU output for backward. */
static fg_status mlp_forward(fg_hypernet *h, int m, const fg_tensor *x) {
  hn_mlp_tensors w = mlp_tensors(&h->l.mlp[m], h->params.ptr);
  hn_mlp_bufs b = mlp_bufs(h, m);
  FG_TRY(fg_linear_forward(x, &w.w1, &w.b1, &b.h));
  FG_TRY(fg_relu_forward(&b.h, &b.h));
  return fg_linear_forward(&b.h, &w.w2, &w.b2, &b.y);
}

/* Weight gradients of MLP m from its output gradient dy (in the workspace) and the input x. */
static fg_status mlp_backward(fg_hypernet *h, int m, const fg_tensor *x) {
  const hn_layout *l = &h->l;
  const hn_mlp *p = &l->mlp[m];
  hn_mlp_tensors w = mlp_tensors(p, h->params.ptr);
  hn_mlp_tensors g = mlp_tensors(p, h->grads.ptr);
  hn_mlp_bufs b = mlp_bufs(h, m);
  fg_tensor dh = matrix_at(&h->ws, l->ws_dh, l->rows, p->hidden);
  FG_TRY(fg_linear_backward_params(&b.h, &b.dy, &g.w2, &g.b2));
  FG_TRY(fg_linear_backward_data(&b.dy, &w.w2, &dh, 0));
  FG_TRY(fg_relu_backward(&b.h, &dh, &dh, 0));
  return fg_linear_backward_params(x, &dh, &g.w1, &g.b1);
}

/* The generated target into output_view. */
static fg_status forward(fg_hypernet *h, const hn_inputs *in) {
  FG_TRY(mlp_forward(h, 0, &in->x[0]));
  if (h->l.d.kind == FG_HYPERNET_NAIVE) return FG_OK;
  FG_TRY(mlp_forward(h, 1, &in->x[1]));
  hn_mlp_bufs a = mlp_bufs(h, 0), b = mlp_bufs(h, 1);
  fg_tensor w = output_view(h);
  return fg_lrf_rebuild(&b.y, &a.y, &w); /* W = B'^T A' */
}

/* Every weight gradient from dL/dW (output_grad_view). LRF: dA' = B' dW, dB' = A' dW^T. */
static fg_status backward(fg_hypernet *h, const hn_inputs *in) {
  if (h->l.d.kind == FG_HYPERNET_NAIVE) return mlp_backward(h, 0, &in->x[0]);
  hn_mlp_bufs a = mlp_bufs(h, 0), b = mlp_bufs(h, 1);
  fg_tensor dw = output_grad_view(h);
  FG_TRY(fg_linear_backward_data(&b.y, &dw, &a.dy, 0)); /* [r, O_t k] x [O_t k, I_t k] */
  FG_TRY(fg_linear_forward(&a.y, &dw, NULL, &b.dy));    /* [r, I_t k] x [I_t k, O_t k] */
  FG_TRY(mlp_backward(h, 0, &in->x[0]));
  return mlp_backward(h, 1, &in->x[1]);
}

/* Stages tgt, runs forward, the MSE and backward: the gradients of one pair. */
static fg_status pair_gradient(fg_hypernet *h, const hn_inputs *in, const float *tgt, double *loss) {
  fg_tensor t = staged_target(h);
  FG_TRY(fg_tensor_from_host(&t, tgt, floats(h->l.tgt_numel)));
  FG_TRY(forward(h, in));
  fg_tensor w = output_view(h), dw = output_grad_view(h);
  FG_TRY(fg_mse(&w, &t, 1.0f, &dw, 0, loss));
  if (!isfinite(*loss))
    return FG_FAIL(FG_ERR_NUMERIC, "hypernet: the MSE is %g (a non-finite source, target or weight)",
                   *loss);
  return backward(h, in);
}

/* ----------------------------------------------------------------------------------------- */
/* Public entry points                                                                        */

static fg_status check_pointers(const char *op, const fg_hypernet *h, const void *src, const void *tgt) {
  if (!h) return FG_FAIL(FG_ERR_INVALID, "%s: hypernetwork is missing", op);
  if (!src) return FG_FAIL(FG_ERR_INVALID, "%s: source is missing", op);
  if (!tgt) return FG_FAIL(FG_ERR_INVALID, "%s: target is missing", op);
  return FG_OK;
}

fg_status fg_hypernet_loss_grad(fg_hypernet *h, const float *src, const float *tgt, double *loss) {
  FG_TRY(check_pointers("hypernet_loss_grad", h, src, tgt));
  if (!loss) return FG_FAIL(FG_ERR_INVALID, "hypernet_loss_grad: loss pointer is missing");
  hn_inputs in;
  FG_TRY(load_source(h, src, -1, &in));
  return pair_gradient(h, &in, tgt, loss);
}

fg_status fg_hypernet_generate(fg_hypernet *h, const float *src, float *tgt) {
  FG_TRY(check_pointers("hypernet_generate", h, src, tgt));
  hn_inputs in;
  FG_TRY(load_source(h, src, -1, &in));
  FG_TRY(forward(h, &in));
  fg_tensor w = output_view(h);
  return fg_tensor_to_host(tgt, &w, floats(h->l.tgt_numel));
}

static fg_status check_pairs(const fg_hypernet *h, int n, const float *const *src,
                             const float *const *tgt) {
  const char *op = "hypernet_train";
  if (!h) return FG_FAIL(FG_ERR_INVALID, "%s: hypernetwork is missing", op);
  if (n < 1 || n > h->l.d.max_pairs)
    return FG_FAIL(FG_ERR_INVALID, "%s: %d pairs, expected 1..%d (the desc's max_pairs)", op, n,
                   h->l.d.max_pairs);
  if (!src || !tgt) return FG_FAIL(FG_ERR_INVALID, "%s: the %s array is missing", op, src ? "target" : "source");
  for (int i = 0; i < n; i++)
    if (!src[i] || !tgt[i])
      return FG_FAIL(FG_ERR_INVALID, "%s: pair %d has no %s", op, i, src[i] ? "target" : "source");
  return FG_OK;
}

/* The visiting order of epoch e: a seeded shuffle of 0..n-1. */
static uint32_t *epoch_order(fg_hypernet *h, int n, uint64_t key, int epoch) {
  uint32_t *order = (uint32_t *)((unsigned char *)h->data.ptr + h->l.data_order);
  for (int i = 0; i < n; i++) order[i] = (uint32_t)i;
  fg_rng r = fg_rng_stream(key, FG_RNG_SHUFFLE, (uint64_t)epoch, 0);
  fg_rng_shuffle_u32(&r, order, (uint64_t)n);
  return order;
}

/* One Adam step over the whole flat vector (Adam is elementwise, so this is the per-tensor
 * update of every tensor at once). */
static fg_status adam_update(fg_hypernet *h, int64_t step) {
  const fg_optim_config c = fg_optim_adam(h->l.d.lr, 0.0f);
  fg_tensor p = fg_tensor_1d(h->params.ptr, h->l.numel);
  fg_tensor g = fg_tensor_1d(h->grads.ptr, h->l.numel);
  fg_tensor s = fg_tensor_1d(h->optim.ptr, 2 * h->l.numel);
  return fg_optim_update(&c, step, &p, &g, &s);
}

/* Loads pair p's inputs: the cached factors, or the source factored (or staged) now. */
static fg_status pair_inputs(fg_hypernet *h, const float *const *src, uint32_t p, hn_inputs *in) {
  if (h->l.d.cache_factors) {
    *in = lrf_inputs(h, (int)p);
    return FG_OK;
  }
  return load_source(h, src[p], -1, in);
}

fg_status fg_hypernet_train(fg_hypernet *h, int n, const float *const *src, const float *const *tgt,
                            uint64_t key, double *mse_first, double *mse_last) {
  FG_TRY(check_pairs(h, n, src, tgt));
  fg_tensor state = fg_tensor_1d(h->optim.ptr, 2 * h->l.numel);
  FG_TRY(fg_fill(&state, 0.0f));
  hn_inputs in;
  if (h->l.d.cache_factors)
    for (int i = 0; i < n; i++) {
      fg_status st = load_source(h, src[i], i, &in);
      if (st != FG_OK) {
        fg_error_prefix("hypernet_train: pair %d", i);
        return st;
      }
    }
  int64_t step = 0;
  const int epochs = h->l.d.epochs;
  for (int e = 0; e < epochs; e++) {
    const uint32_t *order = epoch_order(h, n, key, e);
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
      double loss = 0.0;
      fg_status st = pair_inputs(h, src, order[j], &in);
      if (st == FG_OK) st = pair_gradient(h, &in, tgt[order[j]], &loss);
      if (st == FG_OK) st = adam_update(h, ++step);
      if (st != FG_OK) {
        fg_error_prefix("hypernet_train: epoch %d, pair %u", e, order[j]);
        return st;
      }
      sum += loss;
    }
    if (e == 0 && mse_first) *mse_first = sum / n;
    if (e == epochs - 1 && mse_last) *mse_last = sum / n;
  }
  return FG_OK;
}
