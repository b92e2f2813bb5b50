/* DepthFL (Kim et al., ICLR 2023): depth levels, a classifier after every block; a client of
 * depth d trains blocks 1..d and exits 1..d with
 *   L = sum_i [ CE(z_i) + w_t / (d - 1) sum_{j != i} KL(softmax(z_j) || softmax(z_i)) ]
 * (teachers detached, T = 1, 1e-7 added to the teacher probabilities, KL summed over classes and
 * averaged over the batch) and w_t = exp(-5 (1 - min(t, R) / R)^2), R = kd_ramp_rounds (the
 * reference's 300; -1, the default: 60% of the run's rounds, at most 300, so that a short run
 * reaches full distillation too; ours).
 * Per-tensor count-mean aggregation (baselines.md A.4).
 *
 * FedDyn (feddyn_alpha α > 0, the paper's "DepthFL" row; 0, the default, is "DepthFL (FedAvg)"):
 * client k's local loss adds -<θ, g_k> + (α/2) ||θ - θ^t||^2 over its trained parameters, g_k its
 * stored linear term (zero before it first trains), θ^t the sub-model it was sent; after it trained
 * to θ_k, g_k <- g_k - α (θ_k - θ^t). The server keeps h (zero at the start) and, for every
 * parameter tensor i (weights and biases, BN affine included; BN running buffers are plain means)
 * that m_i > 0 of the round's participants hold, with θ̄_i their mean:
 *   h_i <- h_i - α (m_i / N) (θ̄_i - θ_i^t),  θ_i^{t+1} = θ̄_i - h_i / α   (N: all clients).
 * Rank 0 keeps h and every g_k (global-model layout, g_k allocated when client k first trains), saves
 * them with the checkpoint (feddyn.h, feddyn.client<k>) and hands each participant its linear term
 * -g_k - α θ^t (client_prox); the g_k update is computed from what the participant sent back.
 *
 * The exits are the models' own: global pool + linear for cnn (models.md); on the resnets DepthFL's
 * classifiers (attention gate, bottleneck, linear: FG_EXIT_HEAD_DEPTHFL, engine/nn/models.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl/method.h"

typedef struct options {
  int kd;              /* mutual distillation between the exits */
  int kd_ramp_rounds;  /* R of the distillation weight's ramp; -1: ramp_rounds_for(rounds) */
  double feddyn_alpha; /* FedDyn's α; 0: off */
} options;

static const fg_field option_table[] = {
    {.key = "kd", .type = FG_FIELD_BOOL, .offset = offsetof(options, kd), .def = 1,
     .doc = "mutual distillation between the exits"},
    {.key = "kd_ramp_rounds", .type = FG_FIELD_INT, .offset = offsetof(options, kd_ramp_rounds), .def = -1,
     .min = -1, .max = INFINITY,
     .doc = "rounds over which the distillation weight ramps up (-1: 60% of the rounds, at most 300)"},
    {.key = "feddyn_alpha", .type = FG_FIELD_REAL, .offset = offsetof(options, feddyn_alpha), .def = 0, .min = 0,
     .max = INFINITY,
     .doc = "FedDyn's alpha: the dynamic regularizer in the local loss and the server's h correction (the "
            "paper's DepthFL row: 0.1); 0: off (DepthFL (FedAvg))"},
};

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  out->global.exits = 1;
  if (fg_model_block_count(base->arch) == 4) out->global.exit_head = FG_EXIT_HEAD_DEPTHFL; /* the resnets */
  fg_levels_by_depth(&out->global, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->prox_mu = (float)o->feddyn_alpha;
  return FG_OK;
}

/* The default ramp: over 60% of the run's rounds, at most the reference's 300. */
static int ramp_rounds_for(int rounds) {
  int r = (int)lround(0.6 * rounds);
  return r < 300 ? r : 300;
}

static double ramp(int round, int ramp_rounds) {
  if (ramp_rounds <= 0) return 1.0;
  double t = (double)(round < ramp_rounds ? round : ramp_rounds) / (double)ramp_rounds;
  return exp(-5.0 * (1.0 - t) * (1.0 - t));
}

static void loss(const fg_method_config *mc, const fg_method_plan *mp, int level, int round, int rounds,
                 fg_loss_spec *out) {
  const options *o = mc->options;
  int d = fg_spec_outputs(&mp->levels[level].spec);
  fg_loss_every_exit(d, out);
  if (!o->kd || d < 2) return;
  int ramp_rounds = o->kd_ramp_rounds >= 0 ? o->kd_ramp_rounds : ramp_rounds_for(rounds);
  float w = (float)(ramp(round, ramp_rounds) / (double)(d - 1));
  for (int i = 0; i < d; i++)
    for (int j = 0; j < d; j++) {
      if (i == j) continue;
      fg_loss_term *t = &out->terms[out->n++];
      memset(t, 0, sizeof *t);
      t->kind = FG_LOSS_KL;
      t->output = i;
      t->teacher = j;
      t->detach_teacher = 1;
      t->kl.temperature = 1.0f;
      t->kl.teacher_eps = 1e-7f;
      t->kl.reduction = FG_KL_BATCHMEAN;
      t->kl.weight = w;
    }
}

/* ---- FedDyn: the server's h and every client's g_k ---------------------------------------- */

struct fg_method_server {
  double alpha;
  int clients;
  const fg_graph *global;
  fg_ledger *ledger;
  fg_region h;         /* float [state numel of global]; buffers' entries stay 0 */
  fg_region *g;        /* [clients]: g_k, float [state numel of global]; empty until k first trains */
  fg_region linear;    /* float [state numel of global]: client_prox's answer */
  int *holders;        /* [params of global]: the round's participants whose model holds it */
  double *mean;        /* [largest global parameter]: complete's scratch */
  char name[48];       /* server_tensor's answer */
};

static float *floats(const fg_region *r) { return (float *)r->ptr; }

static void server_free(fg_method_server *ms) {
  if (!ms) return;
  if (ms->g)
    for (int k = 0; k < ms->clients; k++) fg_region_free(&ms->g[k]);
  fg_region_free(&ms->linear);
  fg_region_free(&ms->h);
  free(ms->g);
  free(ms->holders);
  free(ms->mean);
  free(ms);
}

static fg_status alloc_zeroed(fg_method_server *ms, fg_region *r, const char *what) {
  int64_t n = fg_graph_state_numel(ms->global);
  FG_TRY(fg_region_alloc(r, ms->ledger, fg_host_device(), FG_MEM_OTHER, (size_t)n * sizeof(float), what));
  memset(r->ptr, 0, (size_t)n * sizeof(float));
  return FG_OK;
}

/* Server state only with FedDyn on (*out NULL otherwise: DepthFL (FedAvg) keeps none). */
static fg_status server_create(const fg_method_config *mc, const fg_method_plan *mp, const fg_graph *global,
                               uint64_t seed, int clients, int max_participants, fg_device device, fg_ledger *ledger,
                               fg_method_server **out) {
  (void)mp, (void)seed, (void)max_participants, (void)device;
  const options *o = mc->options;
  *out = NULL;
  if (!(o->feddyn_alpha > 0)) return FG_OK;
  fg_method_server *ms = calloc(1, sizeof *ms);
  if (!ms) return FG_FAIL(FG_ERR_OOM, "depthfl: out of memory");
  ms->alpha = o->feddyn_alpha;
  ms->clients = clients;
  ms->global = global;
  ms->ledger = ledger;
  int64_t largest = 1;
  for (int i = 0; i < fg_graph_param_count(global); i++)
    if (fg_graph_param(global, i)->numel > largest) largest = fg_graph_param(global, i)->numel;
  ms->g = calloc((size_t)clients, sizeof *ms->g);
  ms->holders = calloc((size_t)fg_graph_param_count(global) + 1, sizeof *ms->holders);
  ms->mean = malloc((size_t)largest * sizeof *ms->mean);
  fg_status st = ms->g && ms->holders && ms->mean ? FG_OK : FG_FAIL(FG_ERR_OOM, "depthfl: out of memory");
  if (st == FG_OK) st = alloc_zeroed(ms, &ms->h, "depthfl FedDyn h");
  if (st == FG_OK) st = alloc_zeroed(ms, &ms->linear, "depthfl FedDyn linear term");
  if (st != FG_OK) {
    server_free(ms);
    return st;
  }
  *out = ms;
  return FG_OK;
}

/* The global parameter that parameter i of level model g is (DepthFL's levels hold whole global
 * tensors), or -1 with FG_ERR_INVALID recorded. */
static int global_param(const fg_method_server *ms, const fg_graph *g, int i) {
  const fg_param *p = fg_graph_param(g, i);
  int k = fg_graph_find_param(ms->global, p->name);
  if (k < 0 || fg_graph_param(ms->global, k)->numel != p->numel) {
    FG_FAIL(FG_ERR_INVALID, "depthfl: the level's tensor %s is not a whole tensor of the global model", p->name);
    return -1;
  }
  return k;
}

/* g_k of client k, allocated (zero) when first needed. */
static fg_status client_state(fg_method_server *ms, int client, float **out) {
  if (client < 0 || client >= ms->clients)
    return FG_FAIL(FG_ERR_INVALID, "depthfl: client %d, expected 0..%d", client, ms->clients - 1);
  if (!ms->g[client].ptr) {
    char what[48];
    snprintf(what, sizeof what, "depthfl FedDyn g of client %d", client);
    FG_TRY(alloc_zeroed(ms, &ms->g[client], what));
  }
  *out = floats(&ms->g[client]);
  return FG_OK;
}

/* The linear part of client k's proximal term, -g_k - α θ^t, laid out as g's state. */
static fg_status client_prox(fg_method_server *ms, int client, int level, const fg_graph *g, const float *sent,
                             const float **linear) {
  (void)level;
  float *gk, *c = floats(&ms->linear);
  FG_TRY(client_state(ms, client, &gk));
  memset(c, 0, (size_t)fg_graph_state_numel(g) * sizeof(float));
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    int k = global_param(ms, g, i);
    if (k < 0) return fg_last_status();
    const float *gp = gk + fg_graph_param(ms->global, k)->offset;
    for (int64_t e = 0; e < p->numel; e++)
      c[p->offset + e] = (float)(-(double)gp[e] - ms->alpha * (double)sent[p->offset + e]);
  }
  *linear = c;
  return FG_OK;
}

/* After client k trained: g_k <- g_k - α (θ_k - θ^t); its parameters count as held. */
static fg_status server_collect(fg_method_server *ms, int slot, int client, int level, const fg_graph *g,
                                const float *sent, const float *trained) {
  (void)slot, (void)level;
  float *gk;
  FG_TRY(client_state(ms, client, &gk));
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    int k = global_param(ms, g, i);
    if (k < 0) return fg_last_status();
    float *gp = gk + fg_graph_param(ms->global, k)->offset;
    for (int64_t e = 0; e < p->numel; e++)
      gp[e] = (float)((double)gp[e] - ms->alpha * ((double)trained[p->offset + e] - (double)sent[p->offset + e]));
    ms->holders[k]++;
  }
  return FG_OK;
}

/* h_i <- h_i - α (m_i / N) (θ̄_i - θ_i^t), and the round's mean of tensor i becomes θ̄_i - h_i / α. */
static fg_status server_complete(fg_method_server *ms, int round, const int *levels, int n, fg_aggregator *agg,
                                 const fg_graph *global, const float *global_state) {
  (void)round, (void)levels, (void)n;
  float *h = floats(&ms->h);
  for (int i = 0; i < fg_graph_param_count(global); i++) {
    const fg_param *p = fg_graph_param(global, i);
    int m = ms->holders[i];
    ms->holders[i] = 0;
    if (p->is_buffer || m == 0) continue;
    FG_TRY(fg_aggregator_mean(agg, p, ms->mean));
    double share = ms->alpha * (double)m / (double)ms->clients;
    for (int64_t e = 0; e < p->numel; e++) {
      if (isnan(ms->mean[e])) continue; /* no participant covered it: it keeps θ^t */
      float *he = &h[p->offset + e];
      *he = (float)((double)*he - share * (ms->mean[e] - (double)global_state[p->offset + e]));
      ms->mean[e] -= (double)*he / ms->alpha;
    }
    FG_TRY(fg_aggregator_replace(agg, p, ms->mean));
  }
  return FG_OK;
}

/* Checkpointed: h (tensor 0), then g_k of every client k (tensor 1 + k; zeros until it trains). */
static int server_tensor(fg_method_server *ms, int i, const char **name, int64_t *numel) {
  if (i < 0 || i > ms->clients) return 0;
  if (i == 0)
    snprintf(ms->name, sizeof ms->name, "feddyn.h");
  else
    snprintf(ms->name, sizeof ms->name, "feddyn.client%d", i - 1);
  *name = ms->name;
  *numel = fg_graph_state_numel(ms->global);
  return 1;
}

static fg_status server_tensor_get(fg_method_server *ms, int i, float *host) {
  size_t bytes = (size_t)fg_graph_state_numel(ms->global) * sizeof(float);
  if (i < 0 || i > ms->clients) return FG_FAIL(FG_ERR_INVALID, "depthfl: no server tensor %d", i);
  const fg_region *r = i == 0 ? &ms->h : &ms->g[i - 1];
  if (r->ptr)
    memcpy(host, r->ptr, bytes);
  else
    memset(host, 0, bytes);
  return FG_OK;
}

/* All-zero g_k stay unallocated (a client that never trained). */
static fg_status server_tensor_set(fg_method_server *ms, int i, const float *host) {
  int64_t n = fg_graph_state_numel(ms->global);
  if (i < 0 || i > ms->clients) return FG_FAIL(FG_ERR_INVALID, "depthfl: no server tensor %d", i);
  for (int64_t e = 0; e < n; e++)
    if (!isfinite(host[e])) {
      const char *name;
      int64_t numel;
      server_tensor(ms, i, &name, &numel);
      return FG_FAIL(FG_ERR_NUMERIC, "depthfl: method state %s, element %lld is %g (expected a finite value)", name,
                     (long long)e, (double)host[e]);
    }
  float *dst = floats(&ms->h);
  if (i > 0) {
    int64_t e = 0;
    while (e < n && host[e] == 0.0f) e++;
    if (e == n && !ms->g[i - 1].ptr) return FG_OK;
    FG_TRY(client_state(ms, i - 1, &dst));
  }
  memcpy(dst, host, (size_t)n * sizeof(float));
  return FG_OK;
}

const fg_method_ops fg_method_depthfl = {
    .name = "depthfl", .weighting = FG_WEIGHT_COUNT, .plan = plan, .loss = loss, .options_size = sizeof(options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .options = option_table, .n_options = (int)(sizeof option_table / sizeof *option_table),
    .server_create = server_create, .server_collect = server_collect, .server_complete = server_complete,
    .server_tensor = server_tensor, .server_tensor_get = server_tensor_get, .server_tensor_set = server_tensor_set,
    .server_free = server_free, .client_prox = client_prox};
