/* HypeMeFed's server hypernetworks (fl/hypernet.h) against references written here:
 *   - the forward pass of both kinds against explicit double loops over the documented weight
 *     layout (the LRF factors of the source come from fg_lrf_factor, tested in test_svd.c);
 *   - every weight gradient against central differences of that double reference;
 *   - the first Adam step of a train call against the hand-derived update lr * g / (|g| + eps),
 *     and the optimizer reset between calls;
 *   - training on one fixed pair lowers the MSE;
 *   - planned bytes equal the ledger's charges; the SVHN mapper parameter counts of the spec;
 *   - determinism (seed, key), cached factors equal per-step SVDs, validation;
 *   - the weights through a checkpoint file and back, bit for bit. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fd_check.h"
#include "common/test_util.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/mem/ledger.h"
#include "engine/nn/lrf.h"
#include "fl/checkpoint.h"
#include "fl/hypernet.h"

/* ----------------------------------------------------------------------------------------- */
/* Fixtures                                                                                   */

static const int64_t tiny_src[4] = {4, 3, 3, 3};
static const int64_t tiny_tgt[4] = {5, 4, 3, 3};

static int64_t numel4(const int64_t s[4]) { return s[0] * s[1] * s[2] * s[3]; }

static fg_hypernet_desc tiny_desc(fg_hypernet_kind kind, int64_t rank) {
  fg_hypernet_desc d = fg_hypernet_defaults(kind, tiny_src, tiny_tgt);
  d.hidden = 7;
  d.rank = rank;
  return d;
}

/* A conv weight at PyTorch's default scale U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
static float *conv_weight(const int64_t s[4], uint64_t seed) {
  const int64_t n = numel4(s);
  const float bound = (float)(1.0 / sqrt((double)(s[1] * s[2] * s[3])));
  float *w = malloc((size_t)n * sizeof *w);
  fgt_fill_uniform(w, (size_t)n, seed, -bound, bound);
  return w;
}

static fg_hypernet *make(const fg_hypernet_desc *d, uint64_t seed, fg_ledger *ledger) {
  fg_hypernet *h = NULL;
  FGT_OK(fg_hypernet_create(d, seed, ledger, &h));
  return h;
}

/* Host copies [fg_hypernet_numel] (malloc'd) of the weights and of the last step's gradients. */
static float *weights_of(const fg_hypernet *h) {
  float *w = malloc((size_t)fg_hypernet_numel(h) * sizeof *w);
  FGT_OK(fg_hypernet_get_weights(h, w));
  return w;
}

static float *grads_of(const fg_hypernet *h) {
  float *g = malloc((size_t)fg_hypernet_numel(h) * sizeof *g);
  FGT_OK(fg_hypernet_get_grads(h, g));
  return g;
}

/* ----------------------------------------------------------------------------------------- */
/* The double reference: the documented layout and arithmetic, written out as loops           */

typedef struct ref_mlp {
  int64_t in, hidden, out, offset;
} ref_mlp;

typedef struct ref_net {
  int lrf;
  int n_mlps;
  ref_mlp mlp[2];
  int64_t rank;                 /* rows of the MLP batch */
  int64_t tgt_rows, tgt_cols;   /* LRF W [tgt_rows, tgt_cols] */
  double *x[2];                 /* the MLP inputs [rank, in] */
} ref_net;

static void ref_set_mlp(ref_mlp *m, int64_t in, int64_t hidden, int64_t out, int64_t *offset) {
  m->in = in;
  m->hidden = hidden;
  m->out = out;
  m->offset = *offset;
  *offset += hidden * in + hidden + hidden * out + out;
}

/* Factors src with fg_lrf_factor (LRF) or flattens it (naive) into the reference's inputs. */
static ref_net ref_build(const fg_hypernet_desc *d, const float *src) {
  ref_net r;
  memset(&r, 0, sizeof r);
  const int64_t *s = d->src_shape, *t = d->tgt_shape;
  const int64_t src_rows = s[0] * s[2], src_cols = s[1] * s[3];
  r.tgt_rows = t[0] * t[2];
  r.tgt_cols = t[1] * t[3];
  int64_t offset = 0;
  if (d->kind == FG_HYPERNET_NAIVE) {
    r.n_mlps = 1;
    r.rank = 1;
    ref_set_mlp(&r.mlp[0], numel4(s), d->hidden, numel4(t), &offset);
    r.x[0] = malloc((size_t)numel4(s) * sizeof(double));
    for (int64_t i = 0; i < numel4(s); i++) r.x[0][i] = src[i];
    return r;
  }
  r.lrf = 1;
  r.n_mlps = 2;
  const int64_t kmin = src_rows < src_cols ? src_rows : src_cols;
  r.rank = d->rank < kmin ? d->rank : kmin;
  ref_set_mlp(&r.mlp[0], src_rows, d->hidden, r.tgt_cols, &offset);
  ref_set_mlp(&r.mlp[1], src_cols, d->hidden, r.tgt_rows, &offset);
  fg_tensor w = fg_tensor_4d((float *)src, s[0], s[1], s[2], s[3]);
  size_t ws_bytes = 0;
  FGT_OK(fg_lrf_workspace(&w, &ws_bytes));
  void *ws = aligned_alloc(64, (ws_bytes + 63) / 64 * 64);
  float *a = malloc((size_t)(r.rank * src_rows) * sizeof *a);
  float *b = malloc((size_t)(r.rank * src_cols) * sizeof *b);
  fg_tensor ta = fg_tensor_2d(a, r.rank, src_rows), tb = fg_tensor_2d(b, r.rank, src_cols);
  FGT_OK(fg_lrf_factor(&w, d->rank, &ta, &tb, (fg_workspace){ws, ws_bytes}));
  r.x[0] = malloc((size_t)(r.rank * src_rows) * sizeof(double));
  r.x[1] = malloc((size_t)(r.rank * src_cols) * sizeof(double));
  for (int64_t i = 0; i < r.rank * src_rows; i++) r.x[0][i] = a[i];
  for (int64_t i = 0; i < r.rank * src_cols; i++) r.x[1][i] = b[i];
  free(a);
  free(b);
  free(ws);
  return r;
}

static void ref_free(ref_net *r) {
  free(r->x[0]);
  free(r->x[1]);
}

static int64_t ref_numel(const ref_net *r) {
  const ref_mlp *m = &r->mlp[r->n_mlps - 1];
  return m->offset + m->hidden * m->in + m->hidden + m->hidden * m->out + m->out;
}

/* y [rank, out] = w2 relu(w1 x + b1) + b2, row by row. */
static void ref_mlp_forward(const ref_mlp *m, const double *wts, const double *x, int64_t rows, double *y) {
  const double *w1 = wts + m->offset, *b1 = w1 + m->hidden * m->in;
  const double *w2 = b1 + m->hidden, *b2 = w2 + m->out * m->hidden;
  double *hid = malloc((size_t)m->hidden * sizeof *hid);
  for (int64_t r = 0; r < rows; r++) {
    for (int64_t j = 0; j < m->hidden; j++) {
      double acc = b1[j];
      for (int64_t i = 0; i < m->in; i++) acc += w1[j * m->in + i] * x[r * m->in + i];
      hid[j] = acc > 0.0 ? acc : 0.0;
    }
    for (int64_t o = 0; o < m->out; o++) {
      double acc = b2[o];
      for (int64_t j = 0; j < m->hidden; j++) acc += w2[o * m->hidden + j] * hid[j];
      y[r * m->out + o] = acc;
    }
  }
  free(hid);
}

/* The generated target [numel(tgt)]: LRF W = B'^T A' row-major, naive the MLP output. */
static void ref_forward(const ref_net *r, const double *wts, double *out) {
  if (!r->lrf) {
    ref_mlp_forward(&r->mlp[0], wts, r->x[0], 1, out);
    return;
  }
  double *ap = malloc((size_t)(r->rank * r->tgt_cols) * sizeof *ap);
  double *bp = malloc((size_t)(r->rank * r->tgt_rows) * sizeof *bp);
  ref_mlp_forward(&r->mlp[0], wts, r->x[0], r->rank, ap);
  ref_mlp_forward(&r->mlp[1], wts, r->x[1], r->rank, bp);
  for (int64_t i = 0; i < r->tgt_rows; i++)
    for (int64_t j = 0; j < r->tgt_cols; j++) {
      double acc = 0.0;
      for (int64_t k = 0; k < r->rank; k++) acc += bp[k * r->tgt_rows + i] * ap[k * r->tgt_cols + j];
      out[i * r->tgt_cols + j] = acc;
    }
  free(ap);
  free(bp);
}

static double ref_loss(const ref_net *r, const double *wts, const float *tgt, int64_t n) {
  double *out = malloc((size_t)n * sizeof *out);
  ref_forward(r, wts, out);
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) sum += (out[i] - tgt[i]) * (out[i] - tgt[i]);
  free(out);
  return sum / (double)n;
}

/* ref_loss as a function of the weights, for the finite-difference checker. */
typedef struct ref_loss_ctx {
  const ref_net *r;
  const double *wts;
  const float *tgt;
  int64_t n;
} ref_loss_ctx;

static double ref_loss_of(void *p) {
  const ref_loss_ctx *c = p;
  return ref_loss(c->r, c->wts, c->tgt, c->n);
}

static double *weights_double(fg_hypernet *h) {
  const int64_t n = fg_hypernet_numel(h);
  float *w = weights_of(h);
  double *d = malloc((size_t)n * sizeof *d);
  for (int64_t i = 0; i < n; i++) d[i] = w[i];
  free(w);
  return d;
}

/* ----------------------------------------------------------------------------------------- */
/* Forward                                                                                    */

static void check_forward(const fg_hypernet_desc *d, uint64_t seed) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(d, seed, &ledger);
  float *src = conv_weight(d->src_shape, seed + 100);
  ref_net r = ref_build(d, src);
  cr_assert_eq(fg_hypernet_numel(h), ref_numel(&r), "weight count %lld, reference layout %lld",
               (long long)fg_hypernet_numel(h), (long long)ref_numel(&r));
  cr_assert_eq(fg_hypernet_rank(h), r.rank);
  const int64_t n = numel4(d->tgt_shape), guard = 16;
  float *got = malloc((size_t)(n + guard) * sizeof *got);
  for (int64_t i = 0; i < n + guard; i++) got[i] = -12345.0f;
  FGT_OK(fg_hypernet_generate(h, src, got));
  for (int64_t i = n; i < n + guard; i++)
    cr_assert_eq(got[i], -12345.0f, "generate wrote past the target's %lld elements", (long long)n);
  double *wts = weights_double(h), *want = malloc((size_t)n * sizeof *want);
  ref_forward(&r, wts, want);
  char msg[256];
  cr_assert(fgt_allclose(got, want, (size_t)n, 1e-6, 1e-4, msg, sizeof msg), "%s", msg);
  fg_hypernet_free(h);
  cr_assert_eq(ledger.current, 0, "free left %zu bytes charged", ledger.current);
  ref_free(&r);
  free(src);
  free(got);
  free(wts);
  free(want);
}

Test(hypernet, lrf_forward_matches_reference) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3); /* r_eff = 3 < min(12, 9): truncated */
  check_forward(&d, 1);
  d = tiny_desc(FG_HYPERNET_LRF, 100); /* r_eff = min(12, 9) = 9: full rank */
  check_forward(&d, 2);
  /* non-square kernels: rows O*kh, cols I*kw */
  const int64_t src[4] = {3, 2, 1, 3}, tgt[4] = {2, 5, 3, 1};
  d = fg_hypernet_defaults(FG_HYPERNET_LRF, src, tgt);
  d.hidden = 5;
  d.rank = 2;
  check_forward(&d, 3);
}

Test(hypernet, naive_forward_matches_reference) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_NAIVE, 0);
  check_forward(&d, 4);
}

Test(hypernet, generated_weight_is_the_rank_limited_product) {
  /* W = B'^T A' has rank <= r_eff: with r_eff = 1 every 2x2 minor of the matrix view vanishes. */
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 1);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(&d, 5, &ledger);
  float *src = conv_weight(tiny_src, 6);
  float w[5 * 4 * 3 * 3];
  FGT_OK(fg_hypernet_generate(h, src, w));
  const int rows = 15, cols = 12;
  const double scale = fgt_max_abs_f32(w, (size_t)(rows * cols));
  cr_assert(scale > 0.0);
  for (int i = 1; i < rows; i++)
    for (int j = 1; j < cols; j++) {
      double minor = (double)w[0] * w[i * cols + j] - (double)w[j] * w[i * cols];
      cr_assert(fabs(minor) <= 1e-5 * scale * scale, "minor (%d,%d) = %g", i, j, minor);
    }
  fg_hypernet_free(h);
  free(src);
}

/* ----------------------------------------------------------------------------------------- */
/* Gradients                                                                                  */

static void check_gradients(const fg_hypernet_desc *d, uint64_t seed) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(d, seed, &ledger);
  float *src = conv_weight(d->src_shape, seed + 10);
  float *tgt = conv_weight(d->tgt_shape, seed + 20);
  const int64_t nt = numel4(d->tgt_shape), nw = fg_hypernet_numel(h);
  double loss = 0.0;
  FGT_OK(fg_hypernet_loss_grad(h, src, tgt, &loss));
  ref_net r = ref_build(d, src);
  double *wts = weights_double(h);
  const double want_loss = ref_loss(&r, wts, tgt, nt);
  cr_assert(fabs(loss - want_loss) <= 1e-5 * want_loss, "loss %.9g, reference %.9g", loss, want_loss);
  float *g = grads_of(h);
  const double gmax = fgt_max_abs_f32(g, (size_t)nw);
  cr_assert(gmax > 0.0, "all gradients are zero");
  double *gd = malloc((size_t)nw * sizeof *gd);
  cr_assert_not_null(gd);
  for (int64_t i = 0; i < nw; i++) gd[i] = g[i];
  /* the float gradients against central differences of the double reference loss */
  ref_loss_ctx c = {&r, wts, tgt, nt};
  const fgt_fd_opts o = {1e-6, 1e-4 * gmax, 1e-3, 1, 0.0, NULL, 0};
  fgt_fd_check("hypernet gradients", ref_loss_of, &c, wts, nw, gd, &o);
  free(gd);
  fg_hypernet_free(h);
  ref_free(&r);
  free(src);
  free(tgt);
  free(wts);
  free(g);
}

Test(hypernet, lrf_gradients_match_finite_differences) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  check_gradients(&d, 11);
  d = tiny_desc(FG_HYPERNET_LRF, 100);
  check_gradients(&d, 12);
}

Test(hypernet, naive_gradients_match_finite_differences) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_NAIVE, 0);
  check_gradients(&d, 13);
}

/* ----------------------------------------------------------------------------------------- */
/* Training                                                                                   */

/* The first Adam step from zeroed moments moves each weight by lr * g / (|g| + eps) exactly
 * (m^ = g, v^ = g^2); a second train call starts from zeroed moments again. */
static void check_first_adam_step(fg_hypernet *trained, fg_hypernet *twin, const float *src,
                                  const float *tgt, float lr, double *mse_first) {
  const int64_t nw = fg_hypernet_numel(twin);
  double loss = 0.0;
  FGT_OK(fg_hypernet_loss_grad(twin, src, tgt, &loss));
  float *before = weights_of(twin), *g = grads_of(twin);
  double *want = malloc((size_t)nw * sizeof *want);
  for (int64_t i = 0; i < nw; i++)
    want[i] = (double)before[i] - (double)lr * g[i] / (fabs((double)g[i]) + 1e-8);
  double first = 0.0, last = 0.0;
  const float *const s[1] = {src}, *const t[1] = {tgt};
  FGT_OK(fg_hypernet_train(trained, 1, s, t, 7, &first, &last));
  cr_assert(fabs(first - loss) <= 1e-6 * loss, "mse_first %.9g, loss before training %.9g", first, loss);
  cr_assert_eq(first, last, "one epoch: first and last epoch are the same");
  char msg[256];
  float *after = weights_of(trained);
  cr_assert(fgt_allclose(after, want, (size_t)nw, 1e-7, 1e-5, msg, sizeof msg), "%s", msg);
  *mse_first = first;
  /* bring the twin to the same weights for the next call */
  FGT_OK(fg_hypernet_set_weights(twin, after));
  free(want);
  free(before);
  free(g);
  free(after);
}

Test(hypernet, each_train_call_starts_a_fresh_adam) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.epochs = 1;
  d.lr = 1e-3f;
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(&d, 21, &ledger), *twin = make(&d, 21, &ledger);
  float *src = conv_weight(tiny_src, 22), *tgt = conv_weight(tiny_tgt, 23);
  double m1 = 0.0, m2 = 0.0;
  check_first_adam_step(h, twin, src, tgt, d.lr, &m1);
  check_first_adam_step(h, twin, src, tgt, d.lr, &m2);
  fg_hypernet_free(h);
  fg_hypernet_free(twin);
  free(src);
  free(tgt);
}

static void check_training_lowers_mse(fg_hypernet_kind kind, int epochs) {
  const int64_t src_shape[4] = {8, 4, 3, 3}, tgt_shape[4] = {16, 8, 3, 3};
  fg_hypernet_desc d = fg_hypernet_defaults(kind, src_shape, tgt_shape);
  d.hidden = 64;
  d.epochs = epochs;
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(&d, 31, &ledger);
  float *src = conv_weight(src_shape, 32), *tgt = conv_weight(tgt_shape, 33);
  const float *const s[1] = {src}, *const t[1] = {tgt};
  double first = 0.0, last = 0.0;
  FGT_OK(fg_hypernet_train(h, 1, s, t, 34, &first, &last));
  cr_assert(first > 0.0 && last < 0.5 * first, "%s: mse first epoch %g, last %g (want < half)",
            kind == FG_HYPERNET_LRF ? "lrf" : "naive", first, last);
  /* the reported last-epoch MSE was measured before the last update: the final loss is lower */
  double now = 0.0;
  FGT_OK(fg_hypernet_loss_grad(h, src, tgt, &now));
  cr_assert(now < last, "loss after training %g, last epoch %g", now, last);
  fg_hypernet_free(h);
  free(src);
  free(tgt);
}

Test(hypernet, training_on_one_pair_lowers_the_mse) {
  fgt_setup_cpu(2);
  check_training_lowers_mse(FG_HYPERNET_LRF, 25);
  check_training_lowers_mse(FG_HYPERNET_NAIVE, 50); /* one step an epoch: 25 steps halve it only just */
}

typedef struct pair_set {
  int n;
  float *src[4], *tgt[4];
} pair_set;

static pair_set make_pairs(int n, const int64_t src[4], const int64_t tgt[4], uint64_t seed) {
  pair_set p;
  memset(&p, 0, sizeof p);
  p.n = n;
  for (int i = 0; i < n; i++) {
    p.src[i] = conv_weight(src, seed + 2 * (uint64_t)i);
    p.tgt[i] = conv_weight(tgt, seed + 2 * (uint64_t)i + 1);
  }
  return p;
}

static void free_pairs(pair_set *p) {
  for (int i = 0; i < p->n; i++) {
    free(p->src[i]);
    free(p->tgt[i]);
  }
}

static fg_hypernet *train_copy(const fg_hypernet_desc *d, uint64_t seed, const pair_set *p, uint64_t key,
                               fg_ledger *ledger, double *first, double *last) {
  fg_hypernet *h = make(d, seed, ledger);
  FGT_OK(fg_hypernet_train(h, p->n, (const float *const *)p->src, (const float *const *)p->tgt, key,
                           first, last));
  return h;
}

static int same_weights(fg_hypernet *a, fg_hypernet *b) {
  if (fg_hypernet_numel(a) != fg_hypernet_numel(b)) return 0;
  float *wa = weights_of(a), *wb = weights_of(b);
  const int same = memcmp(wa, wb, (size_t)fg_hypernet_numel(a) * sizeof(float)) == 0;
  free(wa);
  free(wb);
  return same;
}

Test(hypernet, cached_factors_equal_an_svd_at_every_step) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 5);
  d.epochs = 4;
  pair_set p = make_pairs(3, tiny_src, tiny_tgt, 40);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  double f1, l1, f2, l2;
  d.cache_factors = 1;
  fg_hypernet *a = train_copy(&d, 41, &p, 42, &ledger, &f1, &l1);
  d.cache_factors = 0;
  fg_hypernet *b = train_copy(&d, 41, &p, 42, &ledger, &f2, &l2);
  cr_assert(same_weights(a, b), "cached and per-step factors give different weights");
  cr_assert(f1 == f2 && l1 == l2, "mse %g/%g vs %g/%g", f1, l1, f2, l2);
  fg_hypernet_free(a);
  fg_hypernet_free(b);
  free_pairs(&p);
}

static void check_determinism(fg_hypernet_kind kind) {
  fg_hypernet_desc d = tiny_desc(kind, 4);
  d.epochs = 3;
  pair_set p = make_pairs(4, tiny_src, tiny_tgt, 50);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  double f1, l1, f2, l2, f3, l3, f4, l4;
  fg_hypernet *a = train_copy(&d, 51, &p, 52, &ledger, &f1, &l1);
  fg_hypernet *b = train_copy(&d, 51, &p, 52, &ledger, &f2, &l2);
  fg_hypernet *c = train_copy(&d, 51, &p, 53, &ledger, &f3, &l3); /* another shuffle key */
  fg_hypernet *e = train_copy(&d, 54, &p, 52, &ledger, &f4, &l4); /* another init seed */
  cr_assert(same_weights(a, b), "same seed and key, different weights");
  cr_assert(f1 == f2 && l1 == l2);
  cr_assert(!same_weights(a, c), "the shuffle key does not change the training");
  cr_assert(!same_weights(a, e), "the seed does not change the initialisation");
  const int64_t nt = numel4(tiny_tgt);
  float *ga = malloc((size_t)nt * sizeof *ga), *gb = malloc((size_t)nt * sizeof *gb);
  FGT_OK(fg_hypernet_generate(a, p.src[0], ga));
  FGT_OK(fg_hypernet_generate(b, p.src[0], gb));
  cr_assert(memcmp(ga, gb, (size_t)nt * sizeof *ga) == 0, "same weights, different generated tensors");
  fg_hypernet_free(a);
  fg_hypernet_free(b);
  fg_hypernet_free(c);
  fg_hypernet_free(e);
  free(ga);
  free(gb);
  free_pairs(&p);
}

Test(hypernet, same_seed_and_key_give_identical_results) {
  fgt_setup_cpu(2);
  check_determinism(FG_HYPERNET_LRF);
  check_determinism(FG_HYPERNET_NAIVE);
}

/* The checkpoint callbacks (fl/checkpoint.h) over one hypernetwork's weights. */
static int ckpt_tensor(void *ctx, int i, const char **name, int64_t *numel) {
  if (i > 0) return 0;
  *name = "hypernet";
  *numel = fg_hypernet_numel(ctx);
  return 1;
}

static fg_status ckpt_get(void *ctx, int i, float *host) {
  (void)i;
  return fg_hypernet_get_weights(ctx, host);
}

static fg_status ckpt_set(void *ctx, int i, const float *host) {
  (void)i;
  return fg_hypernet_set_weights(ctx, host);
}

Test(hypernet, weights_round_trip_through_a_checkpoint) {
  /* A trained network saved with fg_checkpoint_save_tensors and loaded into one initialised
   * from another seed: the same weights bit for bit, so the same generated tensors. */
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.epochs = 2;
  pair_set p = make_pairs(2, tiny_src, tiny_tgt, 90);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  double first, last;
  fg_hypernet *a = train_copy(&d, 91, &p, 92, &ledger, &first, &last), *b = make(&d, 93, &ledger);
  cr_assert(!same_weights(a, b));
  char *dir = fgt_mkdtemp();
  fg_checkpoint_tensors ta = {a, ckpt_tensor, ckpt_get, ckpt_set}, tb = {b, ckpt_tensor, ckpt_get, ckpt_set};
  FGT_OK(fg_checkpoint_save_tensors(dir, &ta, 4));
  cr_assert_eq(fg_checkpoint_load_tensors(dir, &tb, 5), FG_ERR_FORMAT, "a checkpoint of another round");
  FGT_OK(fg_checkpoint_load_tensors(dir, &tb, 4));
  cr_assert(same_weights(a, b), "loaded weights differ from the saved ones");
  const int64_t nt = numel4(tiny_tgt);
  float *ga = malloc((size_t)nt * sizeof *ga), *gb = malloc((size_t)nt * sizeof *gb);
  FGT_OK(fg_hypernet_generate(a, p.src[1], ga));
  FGT_OK(fg_hypernet_generate(b, p.src[1], gb));
  cr_assert(memcmp(ga, gb, (size_t)nt * sizeof *ga) == 0, "same weights, different generated tensors");
  fg_hypernet_free(a);
  fg_hypernet_free(b);
  cr_assert_eq(ledger.current, 0);
  fgt_rmtree(dir);
  free(dir);
  free(ga);
  free(gb);
  free_pairs(&p);
}

/* ----------------------------------------------------------------------------------------- */
/* Initialisation, sizes, memory                                                              */

Test(hypernet, initialisation_is_pytorch_linear_default) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  const uint64_t seed = 61;
  fg_hypernet *h = make(&d, seed, &ledger);
  float *w = weights_of(h);
  /* MLP_A: 12 -> 7 -> 12, MLP_B: 9 -> 7 -> 15; tensors w1, b1, w2, b2 each */
  const int64_t in[2] = {12, 9}, out[2] = {12, 15}, hid = 7;
  int64_t at = 0;
  for (int m = 0; m < 2; m++) {
    const int64_t sizes[4] = {hid * in[m], hid, out[m] * hid, out[m]};
    const int64_t fan[4] = {in[m], in[m], hid, hid};
    for (int t = 0; t < 4; t++) {
      fg_rng r = fg_rng_stream(seed, FG_RNG_INIT, (uint64_t)(4 * m + t), 1);
      const double bound = 1.0 / sqrt((double)fan[t]);
      for (int64_t k = 0; k < sizes[t]; k++, at++) {
        const float want = (float)(bound * (2.0 * fg_rng_uniform_double(&r) - 1.0));
        cr_assert_eq(w[at], want, "weight %lld (mlp %d tensor %d): %g, want %g", (long long)at, m, t,
                     (double)w[at], (double)want);
        cr_assert(fabs(w[at]) <= bound);
      }
    }
  }
  cr_assert_eq(at, fg_hypernet_numel(h));
  fg_hypernet_free(h);
  free(w);
}

/* The four SVHN vgg-me pairs of hypemefed.md §3.3. */
static const int64_t svhn_src[4][4] = {{64, 32, 3, 3}, {64, 64, 3, 3}, {128, 64, 3, 3}, {128, 128, 3, 3}};
static const int64_t svhn_tgt[4][4] = {{128, 64, 3, 3}, {128, 128, 3, 3}, {256, 128, 3, 3}, {256, 256, 3, 3}};
static const int64_t stl_src[4][4] = {{128, 64, 3, 3}, {128, 128, 3, 3}, {256, 128, 3, 3}, {256, 256, 3, 3}};
static const int64_t stl_tgt[4][4] = {{256, 128, 3, 3}, {256, 256, 3, 3}, {512, 256, 3, 3}, {512, 512, 3, 3}};

Test(hypernet, mapper_parameter_counts_match_the_spec) {
  fgt_setup_cpu(2);
  const int64_t want[4] = {443968, 591616, 886912, 1182208}; /* hypemefed.md §3.3 */
  int64_t svhn_naive = 0, stl_lrf = 0, stl_naive = 0;
  for (int i = 0; i < 4; i++) {
    fg_hypernet_desc d = fg_hypernet_defaults(FG_HYPERNET_LRF, svhn_src[i], svhn_tgt[i]);
    cr_assert_eq(fg_hypernet_param_count(&d), want[i], "SVHN pair %d: %lld parameters, spec %lld", i,
                 (long long)fg_hypernet_param_count(&d), (long long)want[i]);
    d.kind = FG_HYPERNET_NAIVE;
    svhn_naive += fg_hypernet_param_count(&d);
    d = fg_hypernet_defaults(FG_HYPERNET_LRF, stl_src[i], stl_tgt[i]);
    stl_lrf += fg_hypernet_param_count(&d);
    d.kind = FG_HYPERNET_NAIVE;
    stl_naive += fg_hypernet_param_count(&d);
  }
  /* §3.3 and §8: "6.2 M", "709 M", "2.84 B" */
  cr_assert(stl_lrf > 6150000 && stl_lrf < 6250000, "STL10 LRF total %lld", (long long)stl_lrf);
  cr_assert(svhn_naive > 708500000 && svhn_naive < 709500000, "SVHN naive total %lld", (long long)svhn_naive);
  cr_assert(stl_naive > 2835000000 && stl_naive < 2845000000, "STL10 naive total %lld", (long long)stl_naive);
  /* naive e1a->e2a by hand: 18432*512 + 512 + 512*73728 + 73728 */
  fg_hypernet_desc d = fg_hypernet_defaults(FG_HYPERNET_NAIVE, svhn_src[0], svhn_tgt[0]);
  cr_assert_eq(fg_hypernet_param_count(&d), 18432LL * 512 + 512 + 512LL * 73728 + 73728);
}

static void check_plan_equals_charges(const fg_hypernet_desc *d) {
  fg_hypernet_memory plan;
  FGT_OK(fg_hypernet_plan(d, &plan));
  cr_assert_eq(plan.total, plan.params + plan.grads + plan.optim + plan.activations + plan.workspace + plan.data);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_hypernet *h = make(d, 71, &ledger);
  cr_assert_eq(ledger.current, plan.total, "charged %zu bytes, planned %zu", ledger.current, plan.total);
  cr_assert_eq(ledger.by_cat[FG_MEM_PARAMS], plan.params);
  cr_assert_eq(ledger.by_cat[FG_MEM_GRADS], plan.grads);
  cr_assert_eq(ledger.by_cat[FG_MEM_OPTIM], plan.optim);
  cr_assert_eq(ledger.by_cat[FG_MEM_ACTIVATIONS], plan.activations);
  cr_assert_eq(ledger.by_cat[FG_MEM_WORKSPACE], plan.workspace);
  cr_assert_eq(ledger.by_cat[FG_MEM_DATA], plan.data);
  const size_t nw = (size_t)fg_hypernet_numel(h) * sizeof(float);
  cr_assert(plan.params >= nw && plan.params < nw + 64);
  cr_assert(plan.optim >= 2 * nw && plan.optim < 2 * nw + 64);
  fg_hypernet_memory of;
  fg_hypernet_memory_of(h, &of);
  cr_assert(memcmp(&of, &plan, sizeof of) == 0, "memory_of differs from the plan");
  /* training and generating charge nothing more */
  pair_set p = make_pairs(2, d->src_shape, d->tgt_shape, 72);
  FGT_OK(fg_hypernet_train(h, 2, (const float *const *)p.src, (const float *const *)p.tgt, 73, NULL, NULL));
  float *out = malloc((size_t)numel4(d->tgt_shape) * sizeof *out);
  FGT_OK(fg_hypernet_generate(h, p.src[0], out));
  cr_assert_eq(ledger.peak, plan.total, "peak %zu after train and generate, planned %zu", ledger.peak,
               plan.total);
  fg_hypernet_free(h);
  cr_assert_eq(ledger.current, 0);
  free(out);
  free_pairs(&p);
}

Test(hypernet, planned_bytes_equal_ledger_charges) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.epochs = 1;
  check_plan_equals_charges(&d);
  d.cache_factors = 0;
  check_plan_equals_charges(&d);
  d = tiny_desc(FG_HYPERNET_NAIVE, 0);
  d.epochs = 1;
  check_plan_equals_charges(&d);
  d = fg_hypernet_defaults(FG_HYPERNET_LRF, svhn_src[3], svhn_tgt[3]);
  d.epochs = 1;
  check_plan_equals_charges(&d);
}

Test(hypernet, cache_costs_max_pairs_factor_sets) {
  fgt_setup_cpu(2);
  fg_hypernet_desc d = fg_hypernet_defaults(FG_HYPERNET_LRF, svhn_src[3], svhn_tgt[3]);
  fg_hypernet_memory with, without;
  FGT_OK(fg_hypernet_plan(&d, &with));
  d.cache_factors = 0;
  FGT_OK(fg_hypernet_plan(&d, &without));
  /* r_eff = 100 rows of 384 + 384 floats per pair; the cache holds the factors of 8 pairs,
   * without it the data region holds those of the pair being used: 7 more */
  const size_t per_pair = 100 * (384 + 384) * sizeof(float);
  cr_assert(with.data - without.data >= 7 * per_pair && with.data - without.data < 7 * (per_pair + 128),
            "cache %zu bytes", with.data - without.data);
  cr_assert_eq(with.params, without.params);
  cr_assert_eq(with.activations, without.activations);
  cr_assert_eq(with.workspace, without.workspace);
  cr_assert_eq(with.total - without.total, with.data - without.data);
}

/* ----------------------------------------------------------------------------------------- */
/* Validation                                                                                 */

Test(hypernet, bad_inputs_fail_with_a_status) {
  fgt_setup_cpu(2);
  fg_hypernet_memory m;
  fg_hypernet_desc d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.kind = (fg_hypernet_kind)7;
  cr_assert_eq(fg_hypernet_plan(&d, &m), FG_ERR_INVALID);
  d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.src_shape[2] = 0;
  cr_assert_eq(fg_hypernet_plan(&d, &m), FG_ERR_INVALID);
  cr_assert_eq(fg_hypernet_param_count(&d), -1);
  d = tiny_desc(FG_HYPERNET_LRF, -1);
  cr_assert_eq(fg_hypernet_plan(&d, &m), FG_ERR_INVALID);
  cr_assert_eq(fg_hypernet_plan(NULL, &m), FG_ERR_INVALID);
  d = tiny_desc(FG_HYPERNET_LRF, 3);
  d.device.kind = (fg_device_kind)9;
  cr_assert_eq(fg_hypernet_plan(&d, &m), FG_ERR_INVALID);

  fg_ledger ledger;
  fg_ledger_init(&ledger, "capped", 1024);
  d = tiny_desc(FG_HYPERNET_LRF, 3);
  fg_hypernet *h = NULL;
  cr_assert_eq(fg_hypernet_create(&d, 1, &ledger, &h), FG_ERR_BUDGET);
  cr_assert_null(h);
  cr_assert_eq(ledger.current, 0, "a failed create left %zu bytes charged", ledger.current);
  /* a device without a registered backend (this suite registers the CPU only) */
  fg_ledger_init(&ledger, "test", 0);
  for (int kind = 0; kind < 2; kind++) {
    d = tiny_desc(kind ? FG_HYPERNET_NAIVE : FG_HYPERNET_LRF, 3);
    d.device = (fg_device){FG_DEV_CUDA, 0};
    cr_assert_neq(fg_hypernet_create(&d, 1, &ledger, &h), FG_OK);
    cr_assert_null(h);
    cr_assert_eq(ledger.current, 0, "a failed create left %zu bytes charged", ledger.current);
  }
  d = tiny_desc(FG_HYPERNET_LRF, 3);

  fg_ledger_init(&ledger, "test", 0);
  d.max_pairs = 2;
  h = make(&d, 1, &ledger);
  pair_set p = make_pairs(3, tiny_src, tiny_tgt, 80);
  cr_assert_eq(fg_hypernet_train(h, 3, (const float *const *)p.src, (const float *const *)p.tgt, 1, NULL, NULL),
               FG_ERR_INVALID);
  cr_assert_eq(fg_hypernet_train(h, 0, (const float *const *)p.src, (const float *const *)p.tgt, 1, NULL, NULL),
               FG_ERR_INVALID);
  p.src[1][5] = NAN;
  cr_assert_eq(fg_hypernet_train(h, 2, (const float *const *)p.src, (const float *const *)p.tgt, 1, NULL, NULL),
               FG_ERR_NUMERIC);
  float out[180];
  cr_assert_eq(fg_hypernet_generate(h, p.src[1], out), FG_ERR_NUMERIC);
  cr_assert_eq(fg_hypernet_generate(h, NULL, out), FG_ERR_INVALID);
  p.tgt[0][3] = INFINITY;
  double loss;
  cr_assert_eq(fg_hypernet_loss_grad(h, p.src[0], p.tgt[0], &loss), FG_ERR_NUMERIC);
  fg_hypernet_free(h);

  d = tiny_desc(FG_HYPERNET_NAIVE, 0);
  h = make(&d, 1, &ledger);
  cr_assert_eq(fg_hypernet_generate(h, p.src[1], out), FG_ERR_NUMERIC);
  cr_assert_eq(fg_hypernet_loss_grad(h, p.src[1], p.tgt[1], &loss), FG_ERR_NUMERIC);
  fg_hypernet_free(h);
  cr_assert_eq(ledger.current, 0);
  free_pairs(&p);
}
