/* HypeMeFed (Shin et al., SenSys 2024; spec hypemefed.md): multi-exit depth levels and, on the
 * server, hypernetworks that generate the conv kernels shallow clients could not train.
 *
 * Clients train as the multi-exit baseline (fl/multiexit.c): blocks 1..d, the sum of the exits'
 * cross-entropies, local Adam with coupled weight decay 0.1 lr reset every round. The server keeps
 * four hypernetworks (fl/hypernet.h), one per pair "conv i of block j -> conv i of block j+1"
 * (j = 1, 2; i = 1, 2; vgg-me: exit{j}.conv{i}, cnn: block{j}.conv{i}). Every round, after local
 * training: each hypernetwork trains on the (source, target) kernels of this round's participants
 * that trained both (a fresh Adam, hn_epochs epochs, batch 1), then generates the target kernel of
 * every shallower participant from its own source kernel, in pair order, so a depth-1 client's
 * block-3 kernels come from its generated block-2 kernels. The aggregate is the uniform mean over
 * the round's participants of their full models (§4.1): a shallow participant contributes its
 * generated kernels, and the global values it was sent for everything else it lacks (conv biases,
 * BN, heads).
 *
 * Generation (option generate): `always` (the default, hypemefed.md §3.6 and §10) generates every
 * round, for every shallower participant, with each hypernetwork that has trained at least once
 * (this round, or an earlier one when no participant of this round was deep enough); `if_better`
 * (ours) generates only while the hypernetwork's last training (the latest round with
 * participants deep enough) predicted those participants' kernels better than the stale global
 * kernel does (last-epoch MSE below the stale kernel's), otherwise stale values stand in. Every
 * round's record (metrics.jsonl "method": {"hypernet": [...]}, one entry per pair) holds the
 * pair's training pairs this round, the hypernetwork's last-epoch training MSE, the stale
 * kernel's MSE on the same targets (both null without training pairs), whether it generated and
 * for how many participants; summary.json's "method" counts the rounds each pair generated.
 *
 * Our choices where the spec leaves room: the kernels of blocks a participant did not train
 * start as the global ones (the chain's source when block 2 is not generated); hypernetwork
 * weights, the generation flags and the per-pair counts persist in checkpoints
 * (method_state.safetensors). Compatibility switches (option compat): noop_writeback
 * (F1: hypernetworks train, generated kernels are dropped: nothing is generated), dup_avg (F3,
 * vgg-me only: exit-block * tensors weighted 1/P^2 for the round's first participant and (P+1)/P^2 for the others), rank 1
 * (F2) through `rank`. With hypernet none, shallow participants send stale copies only (the
 * reference's F1 behaviour without the hypernetworks' cost), unlike the multiexit method, which
 * averages each tensor over the participants that trained it. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/rng.h"
#include "engine/mem/region.h"
#include "fl/hypernet.h"
#include "fl/method.h"

enum { HMF_BLOCKS = 3, HMF_CONVS = 2, HMF_PAIRS = 4, HMF_HIDDEN = 512 };
static const float hmf_hypernet_lr = 5e-4f;

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                     */

enum { HYPERNET_LRF, HYPERNET_NAIVE, HYPERNET_NONE };
enum { GENERATE_ALWAYS, GENERATE_IF_BETTER };
/* The reference code's behaviours that `compat` reproduces (hypemefed.md §9). */
enum {
  COMPAT_NOOP_WRITEBACK = 1, /* F1: generated kernels never reach aggregation (shallow clients send stale copies) */
  COMPAT_DUP_AVG = 2,        /* F3: exit-block tensors weighted 1/P^2 (first participant) and (P+1)/P^2 (others) */
};

typedef struct options {
  fg_multiexit_options multiexit; /* levels, lr */
  int hypernet;
  int rank;      /* LRF rank r, capped per layer at min(O k, I k); 1 reproduces the reference code (F2) */
  int hn_epochs; /* hypernetwork epochs per round */
  int compat;    /* COMPAT_* bits */
  int generate;  /* GENERATE_* */
} options;

static const fg_choice hypernets[] = {{"lrf", HYPERNET_LRF}, {"naive", HYPERNET_NAIVE}, {"none", HYPERNET_NONE}};
static const fg_choice generates[] = {{"always", GENERATE_ALWAYS}, {"if_better", GENERATE_IF_BETTER}};
static const fg_choice compats[] = {{"noop_writeback", COMPAT_NOOP_WRITEBACK}, {"dup_avg", COMPAT_DUP_AVG}};

static const fg_field option_table[] = {
    {.key = "hypernet", .type = FG_FIELD_CHOICE, .offset = offsetof(options, hypernet), .def = HYPERNET_LRF,
     .choices = hypernets, .n_choices = 3, .doc = "the server's hypernetworks: low-rank (lrf), naive, or none"},
    {.key = "rank", .type = FG_FIELD_INT, .offset = offsetof(options, rank), .def = 100, .min = 1, .max = INFINITY,
     .doc = "LRF rank"},
    {.key = "hn_epochs", .type = FG_FIELD_INT, .offset = offsetof(options, hn_epochs), .def = 25, .min = 1,
     .max = INFINITY, .doc = "hypernetwork epochs per round"},
    {.key = "compat", .type = FG_FIELD_FLAGS, .offset = offsetof(options, compat), .choices = compats,
     .n_choices = 2, .doc = "reproduce the reference code's noop_writeback (F1) and dup_avg (F3)"},
    {.key = "generate", .type = FG_FIELD_CHOICE, .offset = offsetof(options, generate), .def = GENERATE_ALWAYS,
     .choices = generates, .n_choices = 2,
     .doc = "every round (always, as published) or only while the hypernetwork beats the stale kernel (if_better, "
            "ours)"},
};

typedef struct hmf_pair {
  int src_block, conv;        /* source: conv `conv` of block src_block; target: block src_block + 1 */
  int src_param, tgt_param;   /* global parameter indices of the two kernels */
  fg_hypernet *net;
  char name[64];              /* "hypernet.b1c1-b2c1" */
} hmf_pair;

struct fg_method_server {
  const fg_method_config *mc;
  const fg_method_plan *mp;
  const fg_graph *global;     /* the server's, alive as long as this state */
  uint64_t seed;
  fg_device device;           /* where the hypernetworks train and generate */
  int blocks;
  hmf_pair pairs[HMF_PAIRS];
  float trained[HMF_PAIRS];   /* 1 while pair k may generate: always: it has trained; if_better: its
                                 last training beat the stale kernel */
  float rounds_generated[HMF_PAIRS]; /* rounds pair k generated a kernel for a participant */
  /* the latest round's record, per pair */
  int round_pairs[HMF_PAIRS];       /* training pairs (0: the hypernetwork did not train) */
  double round_hn_mse[HMF_PAIRS];   /* last-epoch training MSE (NaN without training) */
  double round_stale_mse[HMF_PAIRS];/* the stale kernel's MSE on the same targets (NaN likewise) */
  int round_generated_for[HMF_PAIRS]; /* participants it generated a kernel for */
  int kernel_param[HMF_BLOCKS + 1][HMF_CONVS + 1];  /* global parameter of each block's conv kernels */
  int64_t kernel_offset[HMF_BLOCKS + 1][HMF_CONVS + 1]; /* into one slot's kernel store */
  int64_t slot_floats;
  int max_slots;
  fg_region kernels;          /* [max_slots x slot_floats]: each participant's trained / generated kernels */
  int *slot_depth;            /* [max_slots] depth trained (0: no contribution) */
  unsigned char *level_has;   /* [levels x global params]: the level's model holds the tensor,
                                 filled from the first model of that level collected */
  unsigned char *level_known; /* [levels]: level_has holds the level */
  int n_params;
  const float **src, **tgt;   /* [max_slots] training pairs of one hypernetwork */
};

static const char *block_prefix(const fg_model_spec *spec) {
  return strcmp(spec->arch, "vgg-me") == 0 ? "exit" : "block";
}

/* ------------------------------------------------------------------------------------------ */
/* The plan                                                                                    */

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  if (fg_model_block_count(base->arch) != HMF_BLOCKS)
    return FG_FAIL(FG_ERR_CONFIG,
                   "method hypemefed: model %s has %d blocks, expected %d (the four hypernetworks map the convs "
                   "of block j to block j+1, j = 1, 2: cnn or vgg-me)",
                   base->arch, fg_model_block_count(base->arch), HMF_BLOCKS);
  FG_TRY(fg_method_plan_multiexit(mc, base, out));
  if (out->weighting != FG_WEIGHT_COUNT)
    return FG_FAIL(FG_ERR_CONFIG, "method hypemefed averages uniformly over the round's participants "
                                  "(hypemefed.md §4.1): weighting must be count, not samples");
  if ((o->compat & COMPAT_DUP_AVG) && strcmp(base->arch, "vgg-me") != 0)
    return FG_FAIL(FG_ERR_CONFIG, "method hypemefed: compat dup_avg reproduces the duplicated keys of the "
                                  "reference vgg-me model; model %s has none", base->arch);
  return FG_OK;
}

/* F3: the reference averages every exit-block tensor twice (hypemefed.md §4.2). */
static double tensor_weight(const fg_method_config *mc, int slot, int n, const fg_param *p) {
  const options *o = mc->options;
  if (!(o->compat & COMPAT_DUP_AVG) || strncmp(p->name, "exit", 4) != 0) return 1.0;
  return slot == 0 ? 1.0 / (double)n : (double)(n + 1) / (double)n;
}

/* ------------------------------------------------------------------------------------------ */
/* Server state                                                                                */

/* "exit2.conv1.weight" (vgg-me) or "block2.conv1.weight" (cnn): conv `conv` of block `block`. */
static void kernel_name(const fg_method_server *ms, int block, int conv, char *buf, size_t cap) {
  snprintf(buf, cap, "%s%d.conv%d.weight", block_prefix(&ms->mp->global), block, conv);
}

static fg_status find_kernels(fg_method_server *ms, const fg_graph *global) {
  ms->slot_floats = 0;
  for (int b = 1; b <= ms->blocks; b++)
    for (int c = 1; c <= HMF_CONVS; c++) {
      char name[64];
      kernel_name(ms, b, c, name, sizeof name);
      int i = fg_graph_find_param(global, name);
      if (i < 0) return FG_FAIL(FG_ERR_INVALID, "hypemefed: the global model has no tensor %s", name);
      ms->kernel_param[b][c] = i;
      ms->kernel_offset[b][c] = ms->slot_floats;
      ms->slot_floats += fg_graph_param(global, i)->numel;
    }
  return FG_OK;
}

/* Which global tensors the model `g` of `level` holds (once per level). */
static void level_tensors(fg_method_server *ms, int level, const fg_graph *g) {
  if (ms->level_known[level]) return;
  for (int i = 0; i < ms->n_params; i++)
    ms->level_has[(size_t)level * (size_t)ms->n_params + (size_t)i] =
        fg_graph_find_param(g, fg_graph_param(ms->global, i)->name) >= 0;
  ms->level_known[level] = 1;
}

static void shape_of(const fg_param *p, int64_t shape[4]) {
  for (int d = 0; d < 4; d++) shape[d] = d < p->ndim ? p->shape[d] : 1;
}

static fg_status make_pairs(fg_method_server *ms, const fg_graph *global, fg_ledger *ledger) {
  const options *o = ms->mc->options;
  if (o->hypernet == HYPERNET_NONE) return FG_OK;
  int k = 0;
  for (int j = 1; j < ms->blocks; j++)
    for (int c = 1; c <= HMF_CONVS; c++, k++) {
      hmf_pair *p = &ms->pairs[k];
      p->src_block = j;
      p->conv = c;
      p->src_param = ms->kernel_param[j][c];
      p->tgt_param = ms->kernel_param[j + 1][c];
      snprintf(p->name, sizeof p->name, "hypernet.b%dc%d-b%dc%d", j, c, j + 1, c);
      int64_t src[4], tgt[4];
      shape_of(fg_graph_param(global, p->src_param), src);
      shape_of(fg_graph_param(global, p->tgt_param), tgt);
      fg_hypernet_desc d =
          fg_hypernet_defaults(o->hypernet == HYPERNET_NAIVE ? FG_HYPERNET_NAIVE : FG_HYPERNET_LRF, src, tgt);
      d.rank = o->rank;
      d.hidden = HMF_HIDDEN;
      d.lr = hmf_hypernet_lr;
      d.epochs = o->hn_epochs;
      d.max_pairs = ms->max_slots;
      d.device = ms->device;
      fg_status st = fg_hypernet_create(&d, fg_rng_key(ms->seed, FG_RNG_INIT, 1u << 20, (uint64_t)k), ledger, &p->net);
      if (st != FG_OK) {
        fg_error_prefix("hypemefed %s", p->name);
        return st;
      }
    }
  return FG_OK;
}

static void server_free(fg_method_server *ms) {
  if (!ms) return;
  for (int k = 0; k < HMF_PAIRS; k++) fg_hypernet_free(ms->pairs[k].net);
  fg_region_free(&ms->kernels);
  free(ms->slot_depth);
  free(ms->level_has);
  free(ms->level_known);
  free(ms->src);
  free(ms->tgt);
  free(ms);
}

static fg_status server_create(const fg_method_config *mc, const fg_method_plan *mp, const fg_graph *global,
                               uint64_t seed, int clients, int max_participants, fg_device device, fg_ledger *ledger,
                               fg_method_server **out) {
  (void)clients;
  *out = NULL;
  fg_method_server *ms = calloc(1, sizeof *ms);
  if (!ms) return FG_FAIL(FG_ERR_OOM, "hypemefed: out of memory");
  ms->mc = mc;
  ms->mp = mp;
  ms->global = global;
  ms->seed = seed;
  ms->device = device;
  ms->blocks = fg_model_block_count(mp->global.arch);
  ms->n_params = fg_graph_param_count(global);
  ms->max_slots = max_participants;
  for (int k = 0; k < HMF_PAIRS; k++) ms->round_hn_mse[k] = ms->round_stale_mse[k] = NAN;
  fg_status st = ms->blocks == HMF_BLOCKS ? FG_OK
                                          : FG_FAIL(FG_ERR_CONFIG, "hypemefed: model %s has %d blocks, expected %d",
                                                    mp->global.arch, ms->blocks, HMF_BLOCKS);
  if (st == FG_OK) st = find_kernels(ms, global);
  if (st == FG_OK)
    st = fg_region_alloc(&ms->kernels, ledger, fg_host_device(), FG_MEM_OTHER,
                         (size_t)ms->max_slots * (size_t)ms->slot_floats * sizeof(float),
                         "hypemefed participant kernels");
  if (st == FG_OK) {
    ms->slot_depth = calloc((size_t)ms->max_slots, sizeof *ms->slot_depth);
    ms->src = calloc((size_t)ms->max_slots, sizeof *ms->src);
    ms->tgt = calloc((size_t)ms->max_slots, sizeof *ms->tgt);
    ms->level_has = calloc((size_t)mp->n_levels * (size_t)ms->n_params, 1);
    ms->level_known = calloc((size_t)mp->n_levels, 1);
    if (!ms->slot_depth || !ms->src || !ms->tgt || !ms->level_has || !ms->level_known)
      st = FG_FAIL(FG_ERR_OOM, "hypemefed: out of memory");
  }
  if (st == FG_OK) st = make_pairs(ms, global, ledger);
  if (st != FG_OK) {
    server_free(ms);
    return st;
  }
  *out = ms;
  return FG_OK;
}

static float *slot_kernel(fg_method_server *ms, int slot, int block, int conv) {
  return (float *)ms->kernels.ptr + (size_t)slot * (size_t)ms->slot_floats + (size_t)ms->kernel_offset[block][conv];
}

static int level_depth(const fg_method_server *ms, int level) {
  int d = ms->mp->levels[level].spec.depth;
  return d ? d : ms->blocks;
}

/* Keeps the kernels of the blocks the participant trained. */
static fg_status server_collect(fg_method_server *ms, int slot, int client, int level, const fg_graph *g,
                                const float *sent, const float *trained) {
  (void)client, (void)sent;
  if (slot < 0 || slot >= ms->max_slots)
    return FG_FAIL(FG_ERR_INVALID, "hypemefed: participant slot %d, expected 0..%d", slot, ms->max_slots - 1);
  int depth = level_depth(ms, level);
  level_tensors(ms, level, g);
  for (int b = 1; b <= depth; b++)
    for (int c = 1; c <= HMF_CONVS; c++) {
      char name[64];
      kernel_name(ms, b, c, name, sizeof name);
      int i = fg_graph_find_param(g, name);
      if (i < 0) return FG_FAIL(FG_ERR_INVALID, "hypemefed: a depth-%d model without %s", depth, name);
      const fg_param *p = fg_graph_param(g, i);
      memcpy(slot_kernel(ms, slot, b, c), trained + p->offset, (size_t)p->numel * sizeof(float));
    }
  ms->slot_depth[slot] = depth;
  return FG_OK;
}

/* Mean over the m training pairs of MSE(stale, target): what a shallow participant's stale copy
 * of the target kernel would score on them. */
static double stale_mse(const fg_method_server *ms, int m, const float *stale, int64_t numel) {
  double sum = 0;
  for (int i = 0; i < m; i++)
    for (int64_t e = 0; e < numel; e++) {
      double d = (double)ms->tgt[i][e] - (double)stale[e];
      sum += d * d;
    }
  return sum / ((double)m * (double)numel);
}

/* Trains pair k on the participants that trained its target block, then generates the target
 * kernel of every shallower participant: always once the hypernetwork has trained, or with
 * if_better only while it predicts its training targets better than the stale kernel does
 * (last-epoch MSE below the stale kernel's), so that a freshly initialised network's kernels,
 * orders of magnitude off, are not averaged into the global model. Records the round's figures. */
static fg_status train_and_generate(fg_method_server *ms, int round, int k, int n, const fg_graph *global,
                                    const float *global_state) {
  const options *o = ms->mc->options;
  hmf_pair *p = &ms->pairs[k];
  int tb = p->src_block + 1, m = 0;
  for (int s = 0; s < n; s++)
    if (ms->slot_depth[s] >= tb) {
      ms->src[m] = slot_kernel(ms, s, p->src_block, p->conv);
      ms->tgt[m] = slot_kernel(ms, s, tb, p->conv);
      m++;
    }
  ms->round_pairs[k] = m;
  ms->round_hn_mse[k] = ms->round_stale_mse[k] = NAN;
  ms->round_generated_for[k] = 0;
  if (m > 0) {
    double mse = 0;
    uint64_t key = fg_rng_key(ms->seed, FG_RNG_SERVER, (uint64_t)round, (uint64_t)k);
    FG_TRY(fg_hypernet_train(p->net, m, ms->src, ms->tgt, key, NULL, &mse));
    const fg_param *tp = fg_graph_param(global, p->tgt_param);
    double stale = stale_mse(ms, m, global_state + tp->offset, tp->numel);
    ms->round_hn_mse[k] = mse;
    ms->round_stale_mse[k] = stale;
    ms->trained[k] = o->generate == GENERATE_ALWAYS ? 1.0f : (float)(mse < stale);
  }
  if (!ms->trained[k] || (o->compat & COMPAT_NOOP_WRITEBACK)) return FG_OK;
  for (int s = 0; s < n; s++)
    if (ms->slot_depth[s] > 0 && ms->slot_depth[s] < tb) {
      FG_TRY(fg_hypernet_generate(p->net, slot_kernel(ms, s, p->src_block, p->conv), slot_kernel(ms, s, tb, p->conv)));
      ms->round_generated_for[k]++;
    }
  if (ms->round_generated_for[k] > 0) ms->rounds_generated[k] += 1.0f;
  return FG_OK;
}

/* The kernel generated for the participant in `slot` for global parameter i, or NULL. */
static const float *generated(fg_method_server *ms, int slot, int i) {
  const options *o = ms->mc->options;
  if (o->compat & COMPAT_NOOP_WRITEBACK) return NULL;
  for (int k = 0; k < HMF_PAIRS; k++) {
    const hmf_pair *p = &ms->pairs[k];
    if (p->net && ms->trained[k] && p->tgt_param == i && ms->slot_depth[slot] <= p->src_block)
      return slot_kernel(ms, slot, p->src_block + 1, p->conv);
  }
  return NULL;
}

/* What every shallow participant sends for the tensors its level lacks: generated kernels, and
 * the global values it was sent for the rest. */
static fg_status add_missing(fg_method_server *ms, const int *levels, int n, fg_aggregator *agg, const fg_graph *global,
                             const float *global_state) {
  for (int s = 0; s < n; s++) {
    if (levels[s] < 0) continue;
    const unsigned char *has = ms->level_has + (size_t)levels[s] * (size_t)ms->n_params;
    for (int i = 0; i < ms->n_params; i++) {
      if (has[i]) continue;
      const fg_param *p = fg_graph_param(global, i);
      const float *values = generated(ms, s, i);
      if (!values) values = global_state + p->offset;
      FG_TRY(fg_aggregator_add_tensor(agg, p, values, tensor_weight(ms->mc, s, n, p)));
    }
  }
  return FG_OK;
}

/* The kernels of the blocks the participant did not train are the global ones it was sent, until
 * a hypernetwork generates them (the source of the next generation in the chain). */
static void stale_kernels(fg_method_server *ms, int slot, const fg_graph *global, const float *global_state) {
  for (int b = ms->slot_depth[slot] + 1; b <= ms->blocks; b++)
    for (int c = 1; c <= HMF_CONVS; c++) {
      const fg_param *p = fg_graph_param(global, ms->kernel_param[b][c]);
      memcpy(slot_kernel(ms, slot, b, c), global_state + p->offset, (size_t)p->numel * sizeof(float));
    }
}

static fg_status server_complete(fg_method_server *ms, int round, const int *levels, int n, fg_aggregator *agg,
                                 const fg_graph *global, const float *global_state) {
  if (n > ms->max_slots)
    return FG_FAIL(FG_ERR_INVALID, "hypemefed: %d participants, sized for %d", n, ms->max_slots);
  for (int s = 0; s < n; s++) {
    if (levels[s] < 0) ms->slot_depth[s] = 0;
    stale_kernels(ms, s, global, global_state);
  }
  memset(ms->round_pairs, 0, sizeof ms->round_pairs);
  memset(ms->round_generated_for, 0, sizeof ms->round_generated_for);
  for (int k = 0; k < HMF_PAIRS; k++) {
    ms->round_hn_mse[k] = ms->round_stale_mse[k] = NAN;
    if (ms->pairs[k].net) FG_TRY(train_and_generate(ms, round, k, n, global, global_state));
  }
  FG_TRY(add_missing(ms, levels, n, agg, global, global_state));
  memset(ms->slot_depth, 0, (size_t)ms->max_slots * sizeof *ms->slot_depth);
  return FG_OK;
}

/* Checkpointed: whether each hypernetwork may generate (tensor 0), the rounds each generated
 * (tensor 1), and the weights of each (2..): the hypernetwork behind tensor i, or NULL. */
enum { HMF_FLAG_TENSORS = 2 };

static hmf_pair *tensor_pair(fg_method_server *ms, int i) {
  i -= HMF_FLAG_TENSORS - 1;
  for (int k = 0; k < HMF_PAIRS && i > 0; k++)
    if (ms->pairs[k].net && --i == 0) return &ms->pairs[k];
  return NULL;
}

static float *flag_tensor(fg_method_server *ms, int i) {
  return i == 0 ? ms->trained : i == 1 ? ms->rounds_generated : NULL;
}

static int server_tensor(fg_method_server *ms, int i, const char **name, int64_t *numel) {
  if (i < HMF_FLAG_TENSORS) {
    *name = i == 0 ? "hypernet.trained" : "hypernet.rounds_generated";
    *numel = HMF_PAIRS;
    return 1;
  }
  const hmf_pair *p = tensor_pair(ms, i);
  if (!p) return 0;
  *name = p->name;
  *numel = fg_hypernet_numel(p->net);
  return 1;
}

static fg_status server_tensor_get(fg_method_server *ms, int i, float *host) {
  if (i < HMF_FLAG_TENSORS) {
    memcpy(host, flag_tensor(ms, i), HMF_PAIRS * sizeof(float));
    return FG_OK;
  }
  const hmf_pair *p = tensor_pair(ms, i);
  return p ? fg_hypernet_get_weights(p->net, host) : FG_FAIL(FG_ERR_INVALID, "hypemefed: no server tensor %d", i);
}

static fg_status server_tensor_set(fg_method_server *ms, int i, const float *host) {
  if (i < HMF_FLAG_TENSORS) {
    memcpy(flag_tensor(ms, i), host, HMF_PAIRS * sizeof(float));
    return FG_OK;
  }
  hmf_pair *p = tensor_pair(ms, i);
  return p ? fg_hypernet_set_weights(p->net, host) : FG_FAIL(FG_ERR_INVALID, "hypemefed: no server tensor %d", i);
}

/* ------------------------------------------------------------------------------------------ */
/* Records                                                                                     */

/* A JSON number, or null when not finite. */
static int put_number(char *buf, size_t cap, double v) {
  return isfinite(v) ? snprintf(buf, cap, "%.9g", v) : snprintf(buf, cap, "null");
}

/* The pair's name without the "hypernet." prefix ("b1c1-b2c1"). */
static const char *pair_label(const hmf_pair *p) { return p->name + strlen("hypernet."); }

/* Appends to json [cap] at *len; 0 once it no longer fits. */
static int put(char *json, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int put(char *json, size_t cap, size_t *len, const char *fmt, ...) {
  if (*len >= cap) return 0;
  va_list ap;
  va_start(ap, fmt);
  int w = vsnprintf(json + *len, cap - *len, fmt, ap);
  va_end(ap);
  if (w < 0 || (size_t)w >= cap - *len) {
    *len = cap;
    return 0;
  }
  *len += (size_t)w;
  return 1;
}

static fg_status server_report(fg_method_server *ms, int final, char *json, size_t cap) {
  size_t len = 0;
  int first = 1, ok = put(json, cap, &len, final ? "{\"hypernet_rounds_generated\": {" : "{\"hypernet\": [");
  for (int k = 0; k < HMF_PAIRS && ok; k++) {
    const hmf_pair *p = &ms->pairs[k];
    if (!p->net) continue;
    if (final) {
      ok = put(json, cap, &len, "%s\"%s\": %d", first ? "" : ", ", pair_label(p), (int)ms->rounds_generated[k]);
    } else {
      char hn[32], stale[32];
      put_number(hn, sizeof hn, ms->round_hn_mse[k]);
      put_number(stale, sizeof stale, ms->round_stale_mse[k]);
      ok = put(json, cap, &len,
               "%s{\"pair\": \"%s\", \"training_pairs\": %d, \"hn_mse\": %s, \"stale_mse\": %s, "
               "\"generated\": %s, \"generated_for\": %d}",
               first ? "" : ", ", pair_label(p), ms->round_pairs[k], hn, stale,
               ms->round_generated_for[k] > 0 ? "true" : "false", ms->round_generated_for[k]);
    }
    first = 0;
  }
  if (ok) ok = put(json, cap, &len, final ? "}}" : "]}");
  if (!ok) return FG_FAIL(FG_ERR_INVALID, "hypemefed: its records need more than %zu bytes", cap);
  if (first) json[0] = '\0'; /* no hypernetworks: nothing to record */
  return FG_OK;
}

const fg_method_ops fg_method_hypemefed = {.name = "hypemefed",
                                           .options_size = sizeof(options),
                                           .shared_options = fg_multiexit_option_table,
                                           .n_shared_options = FG_MULTIEXIT_OPTIONS,
                                           .options = option_table,
                                           .n_options = (int)(sizeof option_table / sizeof *option_table),
                                           .weighting = FG_WEIGHT_COUNT, /* the uniform mean, §4.1 */
                                           .sampling = FG_SAMPLE_PER_LEVEL,
                                           .plan = plan,
                                           .server_create = server_create,
                                           .server_collect = server_collect,
                                           .server_complete = server_complete,
                                           .server_tensor = server_tensor,
                                           .server_tensor_get = server_tensor_get,
                                           .server_tensor_set = server_tensor_set,
                                           .server_free = server_free,
                                           .server_report = server_report,
                                           .tensor_weight = tensor_weight};
