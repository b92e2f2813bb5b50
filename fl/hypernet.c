/* HypeMeFed's server-side hypernetworks (LRF and naive) as engine graphs trained by engine
 * trainers; see hypernet.h. */
#include "fl/hypernet.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/region.h"
#include "engine/nn/lrf.h"
#include "engine/nn/trainer.h"

enum {
  HN_DEFAULT_RANK = 100,
  HN_DEFAULT_HIDDEN = 512,
  HN_DEFAULT_EPOCHS = 25,
  HN_DEFAULT_MAX_PAIRS = 8,
  HN_MAX_PAIRS = 1 << 20, /* sanity bound on max_pairs */
  HN_INIT_CHUNK = 4096    /* floats of initial weights drawn on the host per transfer */
};
static const float hn_default_lr = 5e-4f;
/* Bounds that keep every size computation far from int64 / size_t overflow. */
static const int64_t hn_max_extent = (int64_t)1 << 24;
static const int64_t hn_max_numel = (int64_t)1 << 36;

/* ----------------------------------------------------------------------------------------- */
/* Layout: the MLPs' widths and the hypernetwork's own buffers, shared by plan and create      */

typedef struct hn_layout {
  fg_hypernet_desc d; /* defaults filled in */
  int n_mlps;         /* LRF 2 (A, B), naive 1 */
  int64_t in[2], out[2];
  int64_t numel;      /* weights */
  int64_t rows;       /* the MLPs' batch: r_eff (LRF) or 1 (naive) */
  int64_t src_rows, src_cols, tgt_rows, tgt_cols, src_numel, tgt_numel;
  int slots;          /* LRF factor sets held: max_pairs with cache_factors, else 1; naive 0 */
  /* byte offsets and sizes of the own regions (all on d.device but the order) */
  size_t out_bytes;                           /* activations: W (LRF) */
  size_t ws_lrf, ws_lrf_bytes, ws_bytes;      /* workspace: dW at 0, then the LRF workspace */
  size_t data_tgt, data_slots, slot_b, slot_stride, data_bytes; /* data: source at 0, target,
                                                                   factor slots (A, then B) */
  size_t order_bytes;                         /* host: the shuffle order */
} hn_layout;

struct fg_hypernet {
  hn_layout l;
  fg_graph *graph[2];
  fg_trainer *mlp[2];
  fg_region out, ws, data, order;
};

static size_t floats(int64_t n) { return (size_t)n * sizeof(float); }

/* Reserves `bytes` at the end of a region being laid out on `device`; returns its offset. */
static size_t carve(size_t *cursor, fg_device device, size_t bytes) {
  size_t at = *cursor;
  *cursor = at + fg_region_round(device, bytes);
  return at;
}

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
  d.device = fg_host_device();
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
  if ((unsigned)d->device.kind >= FG_DEV_KINDS || d->device.index < 0)
    return FG_FAIL(FG_ERR_INVALID, "hypernet: device kind %d index %d is not a device", (int)d->device.kind,
                   d->device.index);
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

/* W, dW, the LRF workspace and the factor slots (LRF only). */
static fg_status lay_out_lrf(hn_layout *l) {
  const fg_device dev = l->d.device;
  size_t ws = 0, data = l->data_slots;
  l->out_bytes = fg_region_round(dev, floats(l->tgt_numel));
  carve(&ws, dev, floats(l->tgt_numel));
  fg_tensor src = fg_tensor_view(NULL, FG_F32, dev, 4, l->d.src_shape);
  FG_TRY(fg_lrf_workspace(&src, &l->ws_lrf_bytes));
  l->ws_lrf = carve(&ws, dev, l->ws_lrf_bytes);
  l->ws_bytes = ws;
  l->slots = l->d.cache_factors ? l->d.max_pairs : 1;
  l->slot_b = fg_region_round(dev, floats(l->rows * l->src_rows));
  l->slot_stride = l->slot_b + fg_region_round(dev, floats(l->rows * l->src_cols));
  l->data_bytes = data + (size_t)l->slots * l->slot_stride;
  return FG_OK;
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
  const int lrf = l->d.kind == FG_HYPERNET_LRF;
  const int64_t k = l->src_rows < l->src_cols ? l->src_rows : l->src_cols;
  l->rows = lrf ? (l->d.rank < k ? l->d.rank : k) : 1;
  l->n_mlps = lrf ? 2 : 1;
  l->in[0] = lrf ? l->src_rows : l->src_numel; /* MLP_A: O_s k -> I_t k (F7); naive: flat */
  l->out[0] = lrf ? l->tgt_cols : l->tgt_numel;
  l->in[1] = l->src_cols;                      /* MLP_B: I_s k -> O_t k */
  l->out[1] = l->tgt_rows;
  for (int m = 0; m < l->n_mlps; m++) l->numel += hid * l->in[m] + hid + l->out[m] * hid + l->out[m];
  size_t data = 0;
  carve(&data, l->d.device, floats(l->src_numel));
  l->data_tgt = carve(&data, l->d.device, floats(l->tgt_numel));
  l->data_slots = l->data_bytes = data;
  l->order_bytes = fg_region_round(fg_host_device(), (size_t)l->d.max_pairs * sizeof(uint32_t));
  return lrf ? lay_out_lrf(l) : FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* The MLP graphs and their trainers                                                          */

/* input [in, 1, 1] -> flatten -> fc1 (hidden, bias) -> ReLU -> fc2 (out, bias): the output 0.
 * Its state vector is fc1.weight [hidden, in], fc1.bias, fc2.weight [out, hidden], fc2.bias. */
static fg_status mlp_graph(int64_t in, int64_t hidden, int64_t out, fg_graph **g) {
  *g = fg_graph_create(in, 1, 1);
  if (!*g) return FG_FAIL(FG_ERR_OOM, "hypernet: out of host memory");
  int x = fg_graph_flatten(*g, 0, "flatten");
  x = fg_graph_linear(*g, x, hidden, 1, "fc1");
  x = fg_graph_relu(*g, x, "relu");
  x = fg_graph_linear(*g, x, out, 1, "fc2");
  fg_graph_mark_output(*g, x);
  fg_status st = fg_graph_status(*g);
  if (st != FG_OK) {
    fg_graph_free(*g);
    *g = NULL;
  }
  return st;
}

/* A batch of l->rows rows, the engine's Adam without weight decay, and the loss on the output
 * computed here (the MSE of the generated target): an external term. */
static fg_trainer_options mlp_options(const hn_layout *l) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = l->rows;
  o.mode = FG_EXEC_STORE;
  o.optim = fg_optim_adam(l->d.lr, 0.0f);
  o.loss.n = 1;
  o.loss.terms[0].kind = FG_LOSS_EXTERNAL;
  o.loss.terms[0].output = 0;
  o.device = l->d.device;
  return o;
}

/* Adds the bytes of the own regions, per category. */
static void own_bytes(const hn_layout *l, size_t by_cat[FG_MEM_CATEGORIES]) {
  by_cat[FG_MEM_ACTIVATIONS] += l->out_bytes;
  by_cat[FG_MEM_WORKSPACE] += l->ws_bytes;
  by_cat[FG_MEM_DATA] += l->data_bytes + l->order_bytes;
}

static void to_memory(const size_t by_cat[FG_MEM_CATEGORIES], fg_hypernet_memory *m) {
  m->params = by_cat[FG_MEM_PARAMS];
  m->grads = by_cat[FG_MEM_GRADS];
  m->optim = by_cat[FG_MEM_OPTIM];
  m->activations = by_cat[FG_MEM_ACTIVATIONS];
  m->workspace = by_cat[FG_MEM_WORKSPACE];
  m->data = by_cat[FG_MEM_DATA];
  m->total = m->params + m->grads + m->optim + m->activations + m->workspace + m->data;
}

static void add_plan(const fg_plan *p, size_t by_cat[FG_MEM_CATEGORIES]) {
  for (int c = 0; c < FG_MEM_CATEGORIES; c++) by_cat[c] += p->bytes_by_cat[c];
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
  size_t by_cat[FG_MEM_CATEGORIES] = {0};
  own_bytes(&l, by_cat);
  const fg_trainer_options o = mlp_options(&l);
  for (int k = 0; k < l.n_mlps; k++) {
    fg_graph *g = NULL;
    fg_plan *p = NULL;
    FG_TRY(mlp_graph(l.in[k], l.d.hidden, l.out[k], &g));
    fg_status st = fg_plan_build(g, &o, &p);
    if (st == FG_OK) add_plan(p, by_cat);
    fg_plan_free(p);
    fg_graph_free(g);
    FG_TRY(st);
  }
  to_memory(by_cat, m);
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Creation                                                                                   */

/* PyTorch's Linear default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): parameter p of MLP m is tensor
 * t = 4 m + p and draws from its own stream, on the host in chunks copied to the device. */
static fg_status init_weights(fg_hypernet *h, uint64_t seed) {
  float chunk[HN_INIT_CHUNK];
  for (int m = 0; m < h->l.n_mlps; m++) {
    const fg_tensor state = fg_trainer_state(h->mlp[m]);
    for (int p = 0; p < fg_graph_param_count(h->graph[m]); p++) {
      const fg_param *pa = fg_graph_param(h->graph[m], p);
      fg_rng r = fg_rng_stream(seed, FG_RNG_INIT, 4 * (uint64_t)m + (uint64_t)p, 1);
      const double bound = 1.0 / sqrt((double)pa->fan_in);
      for (int64_t at = 0; at < pa->numel; at += HN_INIT_CHUNK) {
        int64_t n = pa->numel - at < HN_INIT_CHUNK ? pa->numel - at : HN_INIT_CHUNK;
        for (int64_t k = 0; k < n; k++) chunk[k] = (float)(bound * (2.0 * fg_rng_uniform_double(&r) - 1.0));
        fg_tensor dst = fg_tensor_view((float *)state.data + pa->offset + at, FG_F32, state.device, 1, &n);
        fg_tensor src = fg_tensor_1d(chunk, n);
        FG_TRY(fg_tensor_transfer(&dst, &src));
      }
    }
  }
  return FG_OK;
}

static fg_status create_mlps(fg_hypernet *h, fg_ledger *ledger) {
  const fg_trainer_options o = mlp_options(&h->l);
  for (int m = 0; m < h->l.n_mlps; m++) {
    FG_TRY(mlp_graph(h->l.in[m], h->l.d.hidden, h->l.out[m], &h->graph[m]));
    FG_TRY(fg_trainer_create(h->graph[m], &o, ledger, &h->mlp[m]));
  }
  return FG_OK;
}

static fg_status alloc_own(fg_hypernet *h, fg_ledger *ledger) {
  const hn_layout *l = &h->l;
  const fg_device dev = l->d.device;
  FG_TRY(fg_region_alloc(&h->out, ledger, dev, FG_MEM_ACTIVATIONS, l->out_bytes, "hypernet generated weight"));
  FG_TRY(fg_region_alloc(&h->ws, ledger, dev, FG_MEM_WORKSPACE, l->ws_bytes, "hypernet weight gradient and SVD"));
  FG_TRY(fg_region_alloc(&h->data, ledger, dev, FG_MEM_DATA, l->data_bytes, "hypernet staged pairs and factors"));
  return fg_region_alloc(&h->order, ledger, fg_host_device(), FG_MEM_DATA, l->order_bytes, "hypernet shuffle order");
}

fg_status fg_hypernet_create(const fg_hypernet_desc *d, uint64_t seed, fg_ledger *ledger,
                             fg_hypernet **out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "hypernet_create: output pointer is missing");
  *out = NULL;
  if (!ledger) return FG_FAIL(FG_ERR_INVALID, "hypernet_create: ledger is missing");
  fg_hypernet *h = calloc(1, sizeof *h);
  if (!h) return FG_FAIL(FG_ERR_OOM, "hypernet_create: out of host memory");
  fg_status st = lay_out(d, &h->l);
  if (st == FG_OK) st = create_mlps(h, ledger);
  if (st == FG_OK) st = alloc_own(h, ledger);
  if (st == FG_OK) st = init_weights(h, seed);
  if (st != FG_OK) {
    fg_hypernet_free(h);
    return st;
  }
  *out = h;
  return FG_OK;
}

void fg_hypernet_free(fg_hypernet *h) {
  if (!h) return;
  for (int m = 0; m < 2; m++) {
    fg_trainer_destroy(h->mlp[m]);
    fg_graph_free(h->graph[m]);
  }
  fg_region_free(&h->out);
  fg_region_free(&h->ws);
  fg_region_free(&h->data);
  fg_region_free(&h->order);
  free(h);
}

int64_t fg_hypernet_numel(const fg_hypernet *h) { return h ? h->l.numel : 0; }
const fg_hypernet_desc *fg_hypernet_desc_of(const fg_hypernet *h) { return h ? &h->l.d : NULL; }
int64_t fg_hypernet_rank(const fg_hypernet *h) { return h ? h->l.rows : 0; }

void fg_hypernet_memory_of(const fg_hypernet *h, fg_hypernet_memory *m) {
  if (!m) return;
  memset(m, 0, sizeof *m);
  if (!h) return;
  size_t by_cat[FG_MEM_CATEGORIES] = {0};
  by_cat[FG_MEM_ACTIVATIONS] = h->out.bytes;
  by_cat[FG_MEM_WORKSPACE] = h->ws.bytes;
  by_cat[FG_MEM_DATA] = h->data.bytes + h->order.bytes;
  for (int k = 0; k < h->l.n_mlps; k++) add_plan(fg_trainer_plan(h->mlp[k]), by_cat);
  to_memory(by_cat, m);
}

/* ----------------------------------------------------------------------------------------- */
/* Weights through host buffers                                                               */

/* First float of MLP m in the flat layout. */
static int64_t mlp_offset(const fg_hypernet *h, int m) {
  return m == 0 ? 0 : fg_graph_state_numel(h->graph[0]);
}

static fg_status check_host_buffer(const char *op, const fg_hypernet *h, const void *host) {
  if (!h) return FG_FAIL(FG_ERR_INVALID, "%s: hypernetwork is missing", op);
  if (!host) return FG_FAIL(FG_ERR_INVALID, "%s: host buffer is missing", op);
  return FG_OK;
}

fg_status fg_hypernet_get_weights(const fg_hypernet *h, float *host) {
  FG_TRY(check_host_buffer("hypernet_get_weights", h, host));
  for (int m = 0; m < h->l.n_mlps; m++) FG_TRY(fg_trainer_get_state(h->mlp[m], host + mlp_offset(h, m)));
  return FG_OK;
}

fg_status fg_hypernet_set_weights(fg_hypernet *h, const float *host) {
  FG_TRY(check_host_buffer("hypernet_set_weights", h, host));
  for (int m = 0; m < h->l.n_mlps; m++) FG_TRY(fg_trainer_set_state(h->mlp[m], host + mlp_offset(h, m)));
  return FG_OK;
}

fg_status fg_hypernet_get_grads(const fg_hypernet *h, float *host) {
  FG_TRY(check_host_buffer("hypernet_get_grads", h, host));
  for (int m = 0; m < h->l.n_mlps; m++)
    for (int p = 0; p < fg_graph_param_count(h->graph[m]); p++)
      FG_TRY(fg_trainer_get_grad(h->mlp[m], p, host + mlp_offset(h, m) + fg_graph_param(h->graph[m], p)->offset));
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Views of the own regions                                                                   */

static fg_tensor matrix_at(const fg_region *r, size_t offset, int64_t rows, int64_t cols) {
  return fg_tensor_view((unsigned char *)r->ptr + offset, FG_F32, r->device, 2, (const int64_t[2]){rows, cols});
}

static fg_tensor staged_source(const fg_hypernet *h) {
  return fg_tensor_view(h->data.ptr, FG_F32, h->data.device, 4, h->l.d.src_shape);
}

static fg_tensor staged_target(const fg_hypernet *h) {
  return fg_tensor_view((unsigned char *)h->data.ptr + h->l.data_tgt, FG_F32, h->data.device, 4, h->l.d.tgt_shape);
}

/* Factor m of slot `slot` (LRF): A_src [r_eff, O_s k] (m = 0) or B_src [r_eff, I_s k] (m = 1). */
static fg_tensor factor(const fg_hypernet *h, int slot, int m) {
  const size_t at = h->l.data_slots + (size_t)slot * h->l.slot_stride + (m ? h->l.slot_b : 0);
  return matrix_at(&h->data, at, h->l.rows, h->l.in[m]);
}

/* The generated target W [O_t k, I_t k] (LRF) and dL/dW. */
static fg_tensor generated(const fg_hypernet *h) {
  return matrix_at(&h->out, 0, h->l.tgt_rows, h->l.tgt_cols);
}

static fg_tensor generated_grad(const fg_hypernet *h) {
  return matrix_at(&h->ws, 0, h->l.tgt_rows, h->l.tgt_cols);
}

/* ----------------------------------------------------------------------------------------- */
/* Forward and backward                                                                       */

/* Copies a host source in and prepares the MLP inputs: LRF its factors into `slot`, naive the
 * staged source itself (checked for non-finite values, as the SVD checks the LRF's). */
static fg_status load_source(fg_hypernet *h, const float *src, int slot) {
  const hn_layout *l = &h->l;
  fg_tensor s = staged_source(h);
  FG_TRY(fg_tensor_from_host(&s, src, floats(l->src_numel)));
  if (l->d.kind == FG_HYPERNET_NAIVE) {
    double sq = 0.0;
    FG_TRY(fg_sum_squares(&s, &sq));
    if (!isfinite(sq))
      return FG_FAIL(FG_ERR_NUMERIC, "hypernet: the source holds a NaN or an infinity (or values whose squares overflow)");
    return FG_OK;
  }
  fg_tensor a = factor(h, slot, 0), b = factor(h, slot, 1);
  fg_workspace ws = {(unsigned char *)h->ws.ptr + l->ws_lrf, l->ws_lrf_bytes};
  fg_status st = fg_lrf_factor(&s, l->d.rank, &a, &b, ws);
  if (st != FG_OK) fg_error_prefix("hypernet: factoring the source");
  return st;
}

/* MLP m's forward on x [rows, in] (copied into its trainer's input). */
static fg_status mlp_forward(fg_hypernet *h, int m, const fg_tensor *x) {
  const int64_t shape[4] = {h->l.rows, h->l.in[m], 1, 1};
  fg_tensor batch = fg_tensor_view(x->data, FG_F32, x->device, 4, shape);
  FG_TRY(fg_trainer_set_batch(h->mlp[m], &batch, NULL));
  fg_step_stats unused;
  return fg_trainer_forward(h->mlp[m], h->l.rows, &unused);
}

/* The generated target and dL/d(it): LRF W and dW; naive the MLP's output and its gradient. */
static fg_status output_of(const fg_hypernet *h, fg_tensor *y, fg_tensor *dy) {
  if (h->l.d.kind == FG_HYPERNET_LRF) {
    *y = generated(h);
    if (dy) *dy = generated_grad(h);
    return FG_OK;
  }
  FG_TRY(fg_trainer_output(h->mlp[0], 0, y));
  return dy ? fg_trainer_output_grad(h->mlp[0], 0, dy) : FG_OK;
}

/* The generated target from the source loaded into `slot`: LRF W = B'^T A'. */
static fg_status forward(fg_hypernet *h, int slot) {
  if (h->l.d.kind == FG_HYPERNET_NAIVE) {
    const fg_tensor s = staged_source(h);
    return mlp_forward(h, 0, &s);
  }
  fg_tensor xa = factor(h, slot, 0), xb = factor(h, slot, 1), a, b, w = generated(h);
  FG_TRY(mlp_forward(h, 0, &xa));
  FG_TRY(mlp_forward(h, 1, &xb));
  FG_TRY(fg_trainer_output(h->mlp[0], 0, &a));
  FG_TRY(fg_trainer_output(h->mlp[1], 0, &b));
  return fg_lrf_rebuild(&b, &a, &w);
}

/* Every weight gradient from dL/d(output). LRF: dA' = B' dW, dB' = A' dW^T, then each MLP. */
static fg_status backward(fg_hypernet *h) {
  if (h->l.d.kind == FG_HYPERNET_NAIVE) return fg_trainer_backward(h->mlp[0]);
  fg_tensor a, b, da, db, dw = generated_grad(h);
  FG_TRY(fg_trainer_output(h->mlp[0], 0, &a));
  FG_TRY(fg_trainer_output(h->mlp[1], 0, &b));
  FG_TRY(fg_trainer_output_grad(h->mlp[0], 0, &da));
  FG_TRY(fg_trainer_output_grad(h->mlp[1], 0, &db));
  FG_TRY(fg_linear_backward_data(&b, &dw, &da, 0)); /* [r, O_t k] x [O_t k, I_t k] */
  FG_TRY(fg_linear_forward(&a, &dw, NULL, &db));    /* [r, I_t k] x [I_t k, O_t k] */
  FG_TRY(fg_trainer_backward(h->mlp[0]));
  return fg_trainer_backward(h->mlp[1]);
}

/* Stages tgt, runs forward, the MSE and backward: the gradients of one pair. */
static fg_status pair_gradient(fg_hypernet *h, int slot, const float *tgt, double *loss) {
  fg_tensor t = staged_target(h), y, dy;
  FG_TRY(fg_tensor_from_host(&t, tgt, floats(h->l.tgt_numel)));
  FG_TRY(forward(h, slot));
  FG_TRY(output_of(h, &y, &dy));
  FG_TRY(fg_mse(&y, &t, 1.0f, &dy, 0, loss));
  if (!isfinite(*loss))
    return FG_FAIL(FG_ERR_NUMERIC, "hypernet: the MSE is %g (a non-finite source, target or weight)",
                   *loss);
  return backward(h);
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
  FG_TRY(load_source(h, src, 0));
  return pair_gradient(h, 0, tgt, loss);
}

fg_status fg_hypernet_generate(fg_hypernet *h, const float *src, float *tgt) {
  FG_TRY(check_pointers("hypernet_generate", h, src, tgt));
  FG_TRY(load_source(h, src, 0));
  FG_TRY(forward(h, 0));
  fg_tensor y;
  FG_TRY(output_of(h, &y, NULL));
  return fg_tensor_to_host(tgt, &y, floats(h->l.tgt_numel));
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

/* The visiting order of epoch e: a seeded shuffle of 0..n-1 (host memory). */
static const uint32_t *epoch_order(fg_hypernet *h, int n, uint64_t key, int epoch) {
  uint32_t *order = h->order.ptr;
  for (int i = 0; i < n; i++) order[i] = (uint32_t)i;
  fg_rng r = fg_rng_stream(key, FG_RNG_SHUFFLE, (uint64_t)epoch, 0);
  fg_rng_shuffle_u32(&r, order, (uint64_t)n);
  return order;
}

/* One Adam step of every MLP. */
static fg_status update(fg_hypernet *h) {
  for (int m = 0; m < h->l.n_mlps; m++) FG_TRY(fg_trainer_update(h->mlp[m]));
  return FG_OK;
}

/* One Adam step on pair p: its cached factors, or its source loaded now into slot 0. */
static fg_status train_pair(fg_hypernet *h, const float *const *src, const float *const *tgt, uint32_t p,
                            double *loss) {
  int slot = h->l.d.cache_factors ? (int)p : 0;
  if (!h->l.d.cache_factors) FG_TRY(load_source(h, src[p], 0));
  FG_TRY(pair_gradient(h, slot, tgt[p], loss));
  return update(h);
}

fg_status fg_hypernet_train(fg_hypernet *h, int n, const float *const *src, const float *const *tgt,
                            uint64_t key, double *mse_first, double *mse_last) {
  FG_TRY(check_pairs(h, n, src, tgt));
  for (int m = 0; m < h->l.n_mlps; m++) FG_TRY(fg_trainer_reset_optimizer(h->mlp[m]));
  if (h->l.d.cache_factors)
    for (int i = 0; i < n; i++) {
      fg_status st = load_source(h, src[i], i);
      if (st != FG_OK) {
        fg_error_prefix("hypernet_train: pair %d", i);
        return st;
      }
    }
  const int epochs = h->l.d.epochs;
  for (int e = 0; e < epochs; e++) {
    const uint32_t *order = epoch_order(h, n, key, e);
    double sum = 0.0;
    for (int j = 0; j < n; j++) {
      double loss = 0.0;
      fg_status st = train_pair(h, src, tgt, order[j], &loss);
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
