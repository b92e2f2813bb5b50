/* Index plans (one walk over the sub graph carrying global channel lists), extraction and
 * streaming aggregation. */
#include "fl/submodel.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/killpoint.h"
#include "engine/base/rng.h"

/* ------------------------------------------------------------------------------------------ */
/* Plan building state                                                                         */

typedef struct plan_build {
  const fg_graph *global, *sub;
  const fg_channel_select *sel;
  int n_nodes;
  int32_t **list;  /* per sub node: global indices of its output's channels (features), NULL = identity */
  uint8_t *owned;  /* list[i] was allocated for node i (else it aliases its producer's) */
  int *root;       /* union-find over sub nodes: layers whose outputs meet at an add */
  int param_hint;  /* where the next global parameter lookup starts */
  int node_hint;
  fg_index_plan *plan;
} plan_build;

static const char *policy_name(fg_channel_policy p) {
  switch (p) {
    case FG_CHANNELS_FIRST: return "first";
    case FG_CHANNELS_ROLLING: return "rolling";
    case FG_CHANNELS_RANDOM: return "random";
  }
  return "?";
}

/* Global parameter named `name`, searched from the last hit on (both graphs list tensors in the
 * same order, so a lookup takes a step or two in the usual case); -1 if absent. */
static int find_global_param(plan_build *b, const char *name) {
  int n = fg_graph_param_count(b->global);
  for (int t = 0; t < n; t++) {
    int i = (b->param_hint + t) % n;
    if (strcmp(fg_graph_param(b->global, i)->name, name) == 0) {
      b->param_hint = i;
      return i;
    }
  }
  return -1;
}

static int find_global_node(plan_build *b, const char *name) {
  int n = fg_graph_node_count(b->global);
  for (int t = 0; t < n; t++) {
    int i = (b->node_hint + t) % n;
    if (strcmp(fg_graph_node(b->global, i)->name, name) == 0) {
      b->node_hint = i;
      return i;
    }
  }
  return -1;
}

static int uf_find(int *root, int i) {
  while (root[i] != i) {
    root[i] = root[root[i]];
    i = root[i];
  }
  return i;
}

/* Joins two classes; the smaller node index becomes the root, so a class is named by its
 * earliest layer whatever the order of unions. */
static void uf_union(int *root, int a, int b) {
  a = uf_find(root, a);
  b = uf_find(root, b);
  if (a < b) root[b] = a;
  else if (b < a) root[a] = b;
}

/* Channel classes: conv (dense), linear, flatten and the input start a class; depthwise convs
 * and every pass-through node join their input's; an add or a product joins its two inputs' classes. */
static void build_channel_classes(plan_build *b) {
  int *src = malloc((size_t)b->n_nodes * sizeof *src);
  for (int i = 0; i < b->n_nodes; i++) b->root[i] = i;
  if (!src) return; /* classes only key RANDOM permutations; singletons are still valid */
  for (int i = 0; i < b->n_nodes; i++) {
    const fg_node *n = fg_graph_node(b->sub, i);
    switch (n->kind) {
      case FG_NODE_INPUT:
      case FG_NODE_LINEAR:
      case FG_NODE_FLATTEN: src[i] = i; break;
      case FG_NODE_CONV: src[i] = n->conv.groups > 1 ? src[n->in[0]] : i; break;
      case FG_NODE_ADD:
      case FG_NODE_MUL:
        uf_union(b->root, src[n->in[0]], src[n->in[1]]);
        src[i] = src[n->in[0]];
        break;
      default: src[i] = n->n_in > 0 ? src[n->in[0]] : i; break;
    }
  }
  free(src);
}

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

/* The k of K output channels sub node `node` keeps, as a new list (*out NULL = identity). */
static fg_status select_channels(plan_build *b, int node, int64_t K, int64_t k, int32_t **out) {
  *out = NULL;
  const fg_channel_select *sel = b->sel;
  if (k == K || sel->policy == FG_CHANNELS_FIRST) return FG_OK;
  if (K > INT32_MAX)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "sub-model node '%s': %lld channels exceed 32-bit indices",
                   fg_graph_node(b->sub, node)->name, (long long)K);
  int32_t *v = malloc((size_t)k * sizeof *v);
  if (!v) return FG_FAIL(FG_ERR_OOM, "sub-model plan: out of memory selecting channels");
  if (sel->policy == FG_CHANNELS_ROLLING) {
    int64_t start = (K - sel->round % K) % K;
    for (int64_t t = 0; t < k; t++) v[t] = (int32_t)((start + t) % K);
  } else {
    uint32_t *perm = malloc((size_t)K * sizeof *perm);
    if (!perm) {
      free(v);
      return FG_FAIL(FG_ERR_OOM, "sub-model plan: out of memory selecting channels");
    }
    for (int64_t c = 0; c < K; c++) perm[c] = (uint32_t)c;
    const char *layer = fg_graph_node(b->sub, uf_find(b->root, node))->name;
    uint64_t per_round = fg_rng_key(sel->seed, FG_RNG_LEVEL, (uint64_t)(uint32_t)sel->client, (uint64_t)sel->round);
    fg_rng r = fg_rng_stream(per_round, FG_RNG_LEVEL, name_hash(layer), (uint64_t)K);
    fg_rng_shuffle_u32(&r, perm, (uint64_t)K);
    qsort(perm, (size_t)k, sizeof *perm, cmp_u32);
    for (int64_t t = 0; t < k; t++) v[t] = (int32_t)perm[t];
    free(perm);
  }
  *out = v;
  return FG_OK;
}

static void shape_str(const fg_param *p, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int d = 0; d < p->ndim && used < cap; d++) {
    int w = snprintf(buf + used, cap - used, d ? " x %lld" : "%lld", (long long)p->shape[d]);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* The global tensor of sub parameter `sp`, checked: same name and rank, extents along dims 0-1
 * at most the global ones, dims >= 2 equal. */
static fg_status lookup_global(plan_build *b, int sp, int *gp_out) {
  const fg_param *s = fg_graph_param(b->sub, sp);
  int gp = find_global_param(b, s->name);
  if (gp < 0)
    return FG_FAIL(FG_ERR_INVALID, "sub-model tensor '%s' has no tensor of that name in the global model",
                   s->name);
  const fg_param *g = fg_graph_param(b->global, gp);
  int ok = g->ndim == s->ndim;
  for (int d = 0; ok && d < s->ndim; d++) ok = d < 2 ? s->shape[d] <= g->shape[d] : s->shape[d] == g->shape[d];
  if (!ok) {
    char ss[96], gs[96];
    shape_str(s, ss, sizeof ss);
    shape_str(g, gs, sizeof gs);
    return FG_FAIL(FG_ERR_INVALID,
                   "sub-model tensor '%s' is %s, the global one is %s: expected the same rank, extents "
                   "along dims 0 and 1 at most the global ones and equal kernel extents",
                   s->name, ss, gs);
  }
  *gp_out = gp;
  return FG_OK;
}

/* A copy of `n` entries of `v`, each checked to lie below `extent` (NULL stays NULL). */
static fg_status copy_list(const int32_t *v, int64_t n, int64_t extent, const char *tensor, int dim,
                           int32_t **out) {
  *out = NULL;
  if (!v) return FG_OK;
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0 || v[i] >= extent)
      return FG_FAIL(FG_ERR_INVALID,
                     "sub-model tensor '%s': entry %lld along dim %d selects global index %d of %lld "
                     "(the graphs do not chain the same way)",
                     tensor, (long long)i, dim, (int)v[i], (long long)extent);
  int32_t *c = malloc((size_t)(n > 0 ? n : 1) * sizeof *c);
  if (!c) return FG_FAIL(FG_ERR_OOM, "sub-model plan: out of memory for '%s'", tensor);
  memcpy(c, v, (size_t)n * sizeof *c);
  *out = c;
  return FG_OK;
}

/* Records the map of sub parameter `sp` (-1: none, nothing to do). */
static fg_status set_map(plan_build *b, int sp, const int32_t *out_idx, const int32_t *in_idx) {
  if (sp < 0) return FG_OK;
  int gp = -1;
  FG_TRY(lookup_global(b, sp, &gp));
  const fg_param *s = fg_graph_param(b->sub, sp), *g = fg_graph_param(b->global, gp);
  fg_tensor_map *m = &b->plan->maps[sp];
  m->global_param = gp;
  FG_TRY(copy_list(out_idx, s->shape[0], g->shape[0], s->name, 0, &m->out_idx));
  if (s->ndim >= 2) FG_TRY(copy_list(in_idx, s->shape[1], g->shape[1], s->name, 1, &m->in_idx));
  return FG_OK;
}

/* Gives node i its own list. */
static void own_list(plan_build *b, int i, int32_t *v) {
  b->list[i] = v;
  b->owned[i] = v != NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Node rules                                                                                  */

static fg_status plan_input(plan_build *b) {
  const fg_node *s = fg_graph_node(b->sub, 0), *g = fg_graph_node(b->global, 0);
  if (memcmp(s->shape, g->shape, sizeof s->shape) != 0)
    return FG_FAIL(FG_ERR_INVALID, "sub-model input %lldx%lldx%lld differs from the global input %lldx%lldx%lld",
                   (long long)s->shape[0], (long long)s->shape[1], (long long)s->shape[2],
                   (long long)g->shape[0], (long long)g->shape[1], (long long)g->shape[2]);
  own_list(b, 0, NULL);
  return FG_OK;
}

static fg_status plan_conv(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  const fg_node *x = fg_graph_node(b->sub, n->in[0]);
  const fg_param *w = fg_graph_param(b->sub, n->param[0]);
  int gw = -1;
  FG_TRY(lookup_global(b, n->param[0], &gw));
  const fg_param *gwp = fg_graph_param(b->global, gw);
  const fg_node *gn = fg_graph_node(b->global, gwp->node);
  const int32_t *in = b->list[n->in[0]];
  if (n->conv.groups > 1) {
    if (n->conv.groups != x->shape[0] || n->conv.groups != n->shape[0])
      return FG_FAIL(FG_ERR_UNSUPPORTED,
                     "sub-model conv '%s': %d groups over %lld -> %lld channels; only dense and depthwise "
                     "convs can be sliced",
                     n->name, n->conv.groups, (long long)x->shape[0], (long long)n->shape[0]);
    if (gn->kind != FG_NODE_CONV || gn->conv.groups != gn->shape[0] || gwp->shape[1] != 1)
      return FG_FAIL(FG_ERR_INVALID, "sub-model conv '%s' is depthwise, the global '%s' is not", n->name,
                     gn->name);
    b->list[i] = b->list[n->in[0]]; /* outputs are the inputs' channels */
    FG_TRY(set_map(b, n->param[0], in, NULL));
    return set_map(b, n->n_param > 1 ? n->param[1] : -1, in, NULL);
  }
  if (gn->kind != FG_NODE_CONV || gn->conv.groups != 1)
    return FG_FAIL(FG_ERR_INVALID, "sub-model conv '%s' is dense, the global '%s' is not a dense conv", n->name,
                   gn->name);
  int32_t *out = NULL;
  FG_TRY(select_channels(b, i, gwp->shape[0], w->shape[0], &out));
  own_list(b, i, out);
  FG_TRY(set_map(b, n->param[0], out, in));
  return set_map(b, n->n_param > 1 ? n->param[1] : -1, out, NULL);
}

static fg_status plan_linear(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  const fg_param *w = fg_graph_param(b->sub, n->param[0]);
  int gw = -1;
  FG_TRY(lookup_global(b, n->param[0], &gw));
  int32_t *out = NULL;
  if (n->output < 0) FG_TRY(select_channels(b, i, fg_graph_param(b->global, gw)->shape[0], w->shape[0], &out));
  own_list(b, i, out);
  FG_TRY(set_map(b, n->param[0], out, b->list[n->in[0]]));
  return set_map(b, n->n_param > 1 ? n->param[1] : -1, out, NULL);
}

static fg_status plan_bn(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  const int32_t *c = b->list[n->in[0]];
  b->list[i] = b->list[n->in[0]];
  for (int t = 0; t < n->n_param; t++) FG_TRY(set_map(b, n->param[t], c, NULL));
  for (int t = 0; t < n->n_buffer; t++) FG_TRY(set_map(b, n->buffer[t], c, NULL));
  return FG_OK;
}

static int lists_equal(const int32_t *a, const int32_t *c, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if ((a ? a[i] : (int32_t)i) != (c ? c[i] : (int32_t)i)) return 0;
  return 1;
}

static fg_status plan_add(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  const int32_t *l0 = b->list[n->in[0]], *l1 = b->list[n->in[1]];
  if (!lists_equal(l0, l1, n->shape[0]))
    return FG_FAIL(FG_ERR_INVALID,
                   "sub-model add '%s': its inputs '%s' and '%s' keep different global channels (policy %s)",
                   n->name, fg_graph_node(b->sub, n->in[0])->name, fg_graph_node(b->sub, n->in[1])->name,
                   policy_name(b->sel->policy));
  b->list[i] = b->list[n->in[0]];
  return FG_OK;
}

static fg_status plan_flatten(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  const fg_node *x = fg_graph_node(b->sub, n->in[0]);
  const int32_t *in = b->list[n->in[0]];
  if (x->ndim == 1) { /* a flat input: nothing to expand */
    b->list[i] = b->list[n->in[0]];
    return FG_OK;
  }
  int gi = find_global_node(b, n->name);
  const fg_node *gx = gi >= 0 ? fg_graph_node(b->global, fg_graph_node(b->global, gi)->in[0]) : NULL;
  if (!gx || fg_graph_node(b->global, gi)->kind != FG_NODE_FLATTEN || gx->ndim != 3 ||
      gx->shape[1] != x->shape[1] || gx->shape[2] != x->shape[2])
    return FG_FAIL(FG_ERR_INVALID,
                   "sub-model flatten '%s' (over %lldx%lld) has no global flatten of that name over the same "
                   "spatial extent",
                   n->name, (long long)x->shape[1], (long long)x->shape[2]);
  if (!in) {
    own_list(b, i, NULL);
    return FG_OK;
  }
  int64_t hw = x->shape[1] * x->shape[2], c = x->shape[0];
  if (gx->shape[0] * hw > INT32_MAX)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "sub-model flatten '%s': %lld features exceed 32-bit indices", n->name,
                   (long long)(gx->shape[0] * hw));
  int32_t *v = malloc((size_t)(c * hw) * sizeof *v);
  if (!v) return FG_FAIL(FG_ERR_OOM, "sub-model plan: out of memory at '%s'", n->name);
  for (int64_t ch = 0; ch < c; ch++)
    for (int64_t s = 0; s < hw; s++) v[ch * hw + s] = (int32_t)(in[ch] * hw + s);
  own_list(b, i, v);
  return FG_OK;
}

static fg_status plan_node(plan_build *b, int i) {
  const fg_node *n = fg_graph_node(b->sub, i);
  switch (n->kind) {
    case FG_NODE_INPUT: return plan_input(b);
    case FG_NODE_CONV: return plan_conv(b, i);
    case FG_NODE_LINEAR: return plan_linear(b, i);
    case FG_NODE_BN: return plan_bn(b, i);
    case FG_NODE_ADD:
    case FG_NODE_MUL: return plan_add(b, i);
    case FG_NODE_FLATTEN: return plan_flatten(b, i);
    case FG_NODE_RELU:
    case FG_NODE_MAXPOOL:
    case FG_NODE_AVGPOOL:
    case FG_NODE_DROPOUT:
    case FG_NODE_SCALE:
    case FG_NODE_SIGMOID:
    case FG_NODE_UPSAMPLE2X: b->list[i] = b->list[n->in[0]]; return FG_OK;
    case FG_NODE_KINDS: break;
  }
  return FG_FAIL(FG_ERR_UNSUPPORTED, "sub-model node '%s' has kind %d, which index plans do not know", n->name,
                 (int)n->kind);
}

/* ------------------------------------------------------------------------------------------ */
/* Plans                                                                                       */

void fg_index_plan_free(fg_index_plan *p) {
  if (!p) return;
  for (int i = 0; i < p->n && p->maps; i++) {
    free(p->maps[i].out_idx);
    free(p->maps[i].in_idx);
  }
  free(p->maps);
  p->maps = NULL;
  p->n = 0;
}

static fg_status walk(plan_build *b) {
  if (b->sel->policy != FG_CHANNELS_FIRST && b->sel->policy != FG_CHANNELS_ROLLING &&
      b->sel->policy != FG_CHANNELS_RANDOM)
    return FG_FAIL(FG_ERR_INVALID, "sub-model plan: channel policy %d, expected first, rolling or random",
                   (int)b->sel->policy);
  if (b->sel->round < 0)
    return FG_FAIL(FG_ERR_INVALID, "sub-model plan: round %lld, expected >= 0", (long long)b->sel->round);
  build_channel_classes(b);
  for (int i = 0; i < b->n_nodes; i++) FG_TRY(plan_node(b, i));
  for (int t = 0; t < b->plan->n; t++)
    if (b->plan->maps[t].global_param < 0)
      return FG_FAIL(FG_ERR_UNSUPPORTED, "sub-model tensor '%s' belongs to no node the plan knows",
                     fg_graph_param(b->sub, t)->name);
  return FG_OK;
}

fg_status fg_index_plan_build(const fg_graph *global, const fg_graph *sub, const fg_channel_select *sel,
                              fg_index_plan *out) {
  out->maps = NULL;
  out->n = 0;
  if (!global || !sub || !sel) return FG_FAIL(FG_ERR_INVALID, "sub-model plan: missing graph or selection");
  FG_TRY(fg_graph_status(global));
  FG_TRY(fg_graph_status(sub));
  plan_build b = {.global = global, .sub = sub, .sel = sel, .n_nodes = fg_graph_node_count(sub), .plan = out};
  int n_params = fg_graph_param_count(sub);
  b.list = calloc((size_t)b.n_nodes, sizeof *b.list);
  b.owned = calloc((size_t)b.n_nodes, sizeof *b.owned);
  b.root = calloc((size_t)b.n_nodes, sizeof *b.root);
  out->maps = calloc((size_t)(n_params > 0 ? n_params : 1), sizeof *out->maps);
  fg_status st = FG_OK;
  if (!b.list || !b.owned || !b.root || !out->maps) {
    st = FG_FAIL(FG_ERR_OOM, "sub-model plan: out of memory");
  } else {
    out->n = n_params;
    for (int t = 0; t < n_params; t++) {
      out->maps[t].sub_param = t;
      out->maps[t].global_param = -1;
    }
    st = walk(&b);
  }
  for (int i = 0; b.list && b.owned && i < b.n_nodes; i++)
    if (b.owned[i]) free(b.list[i]);
  free(b.list);
  free(b.owned);
  free(b.root);
  if (st != FG_OK) fg_index_plan_free(out);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Extraction and aggregation                                                                  */

/* A tensor seen as rows (dim 0) x cols (dim 1) x inner (dims >= 2). */
typedef struct tensor_geom {
  int64_t rows, cols, inner;
} tensor_geom;

static tensor_geom geom(const fg_param *p) {
  tensor_geom t = {p->shape[0], p->ndim >= 2 ? p->shape[1] : 1, 1};
  for (int d = 2; d < p->ndim; d++) t.inner *= p->shape[d];
  return t;
}

static fg_status check_plan(const fg_index_plan *p, const fg_graph *global, const fg_graph *sub, const char *what) {
  int ng = fg_graph_param_count(global), ns = fg_graph_param_count(sub);
  if (!p || p->n != ns || (ns > 0 && !p->maps))
    return FG_FAIL(FG_ERR_INVALID, "%s: the plan has %d tensors, the sub-model %d", what, p ? p->n : 0, ns);
  for (int t = 0; t < p->n; t++) {
    const fg_tensor_map *m = &p->maps[t];
    if (m->sub_param != t || m->global_param < 0 || m->global_param >= ng ||
        strcmp(fg_graph_param(sub, t)->name, fg_graph_param(global, m->global_param)->name) != 0)
      return FG_FAIL(FG_ERR_INVALID, "%s: the plan does not belong to these graphs (tensor %d '%s')", what, t,
                     fg_graph_param(sub, t)->name);
  }
  return FG_OK;
}

fg_status fg_submodel_extract(const fg_index_plan *p, const fg_graph *global, const fg_graph *sub,
                              const float *global_state, float *sub_state) {
  FG_TRY(check_plan(p, global, sub, "sub-model extract"));
  for (int t = 0; t < p->n; t++) {
    const fg_tensor_map *m = &p->maps[t];
    const fg_param *sp = fg_graph_param(sub, m->sub_param), *gp = fg_graph_param(global, m->global_param);
    tensor_geom s = geom(sp), g = geom(gp);
    const float *src = global_state + gp->offset;
    float *dst = sub_state + sp->offset;
    if (!m->out_idx && !m->in_idx && s.cols == g.cols) { /* a prefix of whole rows */
      memcpy(dst, src, (size_t)sp->numel * sizeof *dst);
      continue;
    }
    int64_t row = s.cols * s.inner;
    for (int64_t o = 0; o < s.rows; o++) {
      int64_t go = m->out_idx ? m->out_idx[o] : o;
      const float *grow = src + go * g.cols * g.inner;
      float *srow = dst + o * row;
      if (!m->in_idx) {
        memcpy(srow, grow, (size_t)row * sizeof *srow);
      } else if (s.inner == 1) {
        for (int64_t i = 0; i < s.cols; i++) srow[i] = grow[m->in_idx[i]];
      } else {
        for (int64_t i = 0; i < s.cols; i++)
          memcpy(srow + i * s.inner, grow + (int64_t)m->in_idx[i] * g.inner, (size_t)s.inner * sizeof *srow);
      }
    }
  }
  return FG_OK;
}

fg_status fg_aggregator_init(fg_aggregator *a, int64_t numel, fg_ledger *ledger) {
  memset(a, 0, sizeof *a);
  if (numel < 0 || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "aggregator: %lld elements%s", (long long)numel, ledger ? "" : ", no ledger");
  size_t bytes = (size_t)numel * sizeof(double);
  FG_TRY(fg_region_alloc(&a->sum, ledger, fg_host_device(), FG_MEM_OTHER, bytes, "aggregator sums"));
  fg_status st = fg_region_alloc(&a->weight, ledger, fg_host_device(), FG_MEM_OTHER, bytes, "aggregator weights");
  if (st != FG_OK) {
    fg_region_free(&a->sum);
    return st;
  }
  a->numel = numel;
  fg_aggregator_reset(a);
  return FG_OK;
}

void fg_aggregator_reset(fg_aggregator *a) {
  if (a->numel <= 0) return;
  memset(a->sum.ptr, 0, (size_t)a->numel * sizeof(double));
  memset(a->weight.ptr, 0, (size_t)a->numel * sizeof(double));
}

void fg_aggregator_free(fg_aggregator *a) {
  fg_region_free(&a->sum);
  fg_region_free(&a->weight);
  a->numel = 0;
}

/* sum[e .. e+n) += w * x[0 .. n), weight[e .. e+n) += w. */
static void accumulate(double *sum, double *weight, const float *x, int64_t n, double w) {
  for (int64_t r = 0; r < n; r++) {
    sum[r] += w * (double)x[r];
    weight[r] += w;
  }
}

static fg_status check_weight(double w) {
  if (!(w >= 0.0) || !isfinite(w))
    return FG_FAIL(FG_ERR_INVALID, "aggregator: client weight %g, expected a finite value >= 0", w);
  return FG_OK;
}

fg_status fg_aggregator_add(fg_aggregator *a, const fg_index_plan *p, const fg_graph *global, const fg_graph *sub,
                            const float *sub_state, double w, const uint8_t *class_mask) {
  return fg_aggregator_add_scaled(a, p, global, sub, sub_state, w, class_mask, NULL);
}

/* FG_ERR_INVALID when p lies outside the accumulators. */
static fg_status check_tensor(const fg_aggregator *a, const fg_param *p) {
  if (p->offset < 0 || p->numel < 0 || p->offset + p->numel > a->numel)
    return FG_FAIL(FG_ERR_INVALID, "aggregator: tensor %s [%lld, %lld) outside the %lld accumulated elements",
                   p->name, (long long)p->offset, (long long)(p->offset + p->numel), (long long)a->numel);
  return FG_OK;
}

fg_status fg_aggregator_add_tensor(fg_aggregator *a, const fg_param *p, const float *values, double w) {
  FG_TRY(check_weight(w));
  FG_TRY(check_tensor(a, p));
  accumulate((double *)a->sum.ptr + p->offset, (double *)a->weight.ptr + p->offset, values, p->numel, w);
  return FG_OK;
}

fg_status fg_aggregator_mean(const fg_aggregator *a, const fg_param *p, double *mean) {
  FG_TRY(check_tensor(a, p));
  const double *sum = (const double *)a->sum.ptr + p->offset, *weight = (const double *)a->weight.ptr + p->offset;
  for (int64_t k = 0; k < p->numel; k++) mean[k] = weight[k] > 0.0 ? sum[k] / weight[k] : NAN;
  return FG_OK;
}

fg_status fg_aggregator_replace(fg_aggregator *a, const fg_param *p, const double *values) {
  FG_TRY(check_tensor(a, p));
  double *sum = (double *)a->sum.ptr + p->offset, *weight = (double *)a->weight.ptr + p->offset;
  for (int64_t k = 0; k < p->numel; k++)
    if (weight[k] > 0.0) {
      if (!isfinite(values[k]))
        return FG_FAIL(FG_ERR_NUMERIC, "aggregator: tensor %s element %lld: the replacing mean is %g", p->name,
                       (long long)k, values[k]);
      sum[k] = values[k];
      weight[k] = 1.0;
    }
  return FG_OK;
}

fg_status fg_aggregator_add_scaled(fg_aggregator *a, const fg_index_plan *p, const fg_graph *global,
                                   const fg_graph *sub, const float *sub_state, double w0, const uint8_t *class_mask,
                                   const double *scale) {
  FG_TRY(check_plan(p, global, sub, "aggregator"));
  if (a->numel != fg_graph_state_numel(global))
    return FG_FAIL(FG_ERR_INVALID, "aggregator: %lld elements, the global model has %lld", (long long)a->numel,
                   (long long)fg_graph_state_numel(global));
  FG_TRY(check_weight(w0));
  fg_killpoint("aggregate");
  double *sum = a->sum.ptr, *weight = a->weight.ptr;
  for (int t = 0; t < p->n; t++) {
    const fg_tensor_map *m = &p->maps[t];
    double w = scale ? w0 * scale[m->global_param] : w0;
    FG_TRY(check_weight(w));
    const fg_param *sp = fg_graph_param(sub, m->sub_param), *gp = fg_graph_param(global, m->global_param);
    tensor_geom s = geom(sp), g = geom(gp);
    const uint8_t *mask = class_mask && fg_graph_node(sub, sp->node)->output >= 0 ? class_mask : NULL;
    const float *src = sub_state + sp->offset;
    int64_t row = s.cols * s.inner;
    for (int64_t o = 0; o < s.rows; o++) {
      int64_t go = m->out_idx ? m->out_idx[o] : o;
      if (mask && !mask[go]) continue;
      int64_t gbase = gp->offset + go * g.cols * g.inner;
      const float *srow = src + o * row;
      if (!m->in_idx) {
        accumulate(sum + gbase, weight + gbase, srow, row, w);
      } else {
        for (int64_t i = 0; i < s.cols; i++) {
          int64_t e = gbase + (int64_t)m->in_idx[i] * g.inner;
          accumulate(sum + e, weight + e, srow + i * s.inner, s.inner, w);
        }
      }
    }
  }
  return FG_OK;
}

void fg_aggregator_finish(const fg_aggregator *a, float *global_state) {
  fg_killpoint("aggregate");
  const double *sum = a->sum.ptr, *weight = a->weight.ptr;
  for (int64_t e = 0; e < a->numel; e++)
    if (weight[e] > 0.0) global_state[e] = (float)(sum[e] / weight[e]);
}
