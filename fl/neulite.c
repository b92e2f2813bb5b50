/* NeuLite (Wu et al., "Bridging Memory Gaps: Scaling Federated Learning for Heterogeneous
 * Clients"; neulite.md): progressive block-wise training.
 *
 * Levels are stages: level l trains the stage-(l+1) model (engine/nn/models.h): real blocks
 * 1..t, block t's output module, classifier and projection head. Block t, its heads and, with
 * the Training Harmonizer, the last conv + BN of block t-1 train; every other tensor is frozen,
 * so the planner runs the prefix in frozen mode (no activations, gradients or optimizer state).
 * Frozen-prefix BN layers normalise with batch statistics and update their running statistics,
 * as the reference code does (frozen_bn: update), or use their running statistics (fixed).
 *
 * Loss (Curriculum Mentor, neulite.md §2.7): CE - lambda_t nHSIC(X; Z_X) - gamma_t nHSIC(Y; Z_Y)
 * with the reference's Gaussian kernels (sigma 5, bandwidth 2 sigma^2 d). The reference releases
 * no lambda/gamma values; our default schedule goes linearly from (lambda, gamma) = (0.5, 0) at
 * stage 1 to (0, 0.5) at the last stage (high lambda / low gamma early, as the paper describes).
 *
 * The global model is the model with every stage's heads (FG_STAGES_ALL): one copy of each real
 * block, the latest aggregate, and each stage's own heads. That is the reference's checkpoint
 * hand-off (a stage loads its own heads, the blocks before it from the previous stage and its
 * block from the last stage) with one difference: the reference does not refresh stage 1's stem
 * from the last stage, here every block is always the latest. The deployable model is the last
 * stage's (the model itself); the evaluation reports every stage's classifier.
 *
 * Output module: linear, as the reference (bias-free strided convs, no BN, no ReLU), or bn_relu
 * (ours, neulite.md §6.5): BN + ReLU after each of its convs, so an early stage's classifier reads
 * a nonlinear map of the block's output rather than, in effect, its channel means.
 *
 * Schedules: roundrobin (the reference code: stage (r mod T) + 1) and sequential (stages in
 * order, a fixed number of rounds each, or advancing when the effective movement of the active
 * block, ProFL's metric, falls under a threshold). Aggregation: sample-weighted (the paper) or
 * equal weights (the reference code) over every tensor, BN buffers included. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/rng.h"
#include "fl/method.h"

static int stage_count(const fg_method_plan *mp) { return mp->n_levels; }

/* Our default curriculum: lambda from 0.5 down to 0, gamma from 0 up to 0.5. */
static double default_lambda(int t, int stages) { return 0.5 * (double)(stages - t) / (double)(stages - 1); }
static double default_gamma(int t, int stages) { return 0.5 * (double)(t - 1) / (double)(stages - 1); }

/* The Curriculum Mentor's weights of stage level + 1 (both 0 with the mentor off). */
static void mentor_weights(const fg_method_config *mc, int level, int stages, double *lambda, double *gamma) {
  int t = level + 1;
  *lambda = !mc->mentor ? 0.0 : mc->n_lambdas ? mc->lambdas[level] : default_lambda(t, stages);
  *gamma = !mc->mentor ? 0.0 : mc->n_gammas ? mc->gammas[level] : default_gamma(t, stages);
}

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  int stages = fg_model_block_count(base->arch);
  if (strcmp(base->arch, "vgg-me") == 0 || stages < 2)
    return FG_FAIL(FG_ERR_CONFIG, "method neulite: model %s has no stage models (expected cnn, resnet18 or resnet34)",
                   base->arch);
  if (base->exits) return FG_FAIL(FG_ERR_CONFIG, "method neulite: the model must not have early exits");
  out->global = *base;
  out->global.stage = FG_STAGES_ALL;
  out->global.om_bn_relu = strcmp(mc->output_module, "bn_relu") == 0;
  out->n_levels = stages;
  for (int l = 0; l < stages; l++) {
    fg_level *lv = &out->levels[l];
    lv->spec = out->global;
    lv->spec.stage = l + 1;
    /* a stage whose label term has weight 0 never uses P: its clients neither get nor hold it */
    double lambda, gamma;
    mentor_weights(mc, l, stages, &lambda, &gamma);
    lv->spec.no_projection = !(gamma > 0.0);
    snprintf(lv->label, sizeof lv->label, "stage %d", l + 1);
  }
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->bn_mode = FG_BN_BATCH_STATS;
  out->no_ensemble = 1;
  return FG_OK;
}

/* Stage t (1-based) trains its block (0-based block t-1), its heads, and with the harmonizer the
 * tail of block t-1; everything else is frozen. */
static fg_status prepare_level(const fg_method_config *mc, const fg_method_plan *mp, int level, fg_graph *g) {
  int t = level + 1;
  char tail[FG_NAME_CAP] = "";
  if (t > 1 && mc->harmonizer) FG_TRY(fg_model_block_tail(&mp->levels[level].spec, t - 1, tail, sizeof tail));
  size_t tail_len = strlen(tail);
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    int block = fg_graph_node(g, p->node)->block;
    int in_tail = tail_len && strncmp(p->name, tail, tail_len) == 0 &&
                  (strncmp(p->name + tail_len, ".conv2.", 7) == 0 || strncmp(p->name + tail_len, ".bn2.", 5) == 0);
    int trainable = block >= t - 1 || in_tail;
    fg_graph_set_trainable(g, p->name, trainable);
  }
  if (strcmp(mc->frozen_bn, "fixed") == 0) {
    for (int i = 1; i < fg_graph_node_count(g); i++) {
      fg_node *n = fg_graph_node_mut(g, i);
      if (n->kind == FG_NODE_BN && !fg_graph_param(g, n->param[0])->trainable) n->bn_mode = FG_BN_RUNNING_STATS;
    }
  }
  return FG_OK;
}

static void add_hsic_term(fg_loss_spec *out, int feature, fg_hsic_target target, double weight, float sigma,
                          int classes) {
  if (!(weight > 0.0)) return;
  fg_loss_term *lt = &out->terms[out->n++];
  memset(lt, 0, sizeof *lt);
  lt->kind = FG_LOSS_NHSIC;
  lt->output = feature;
  lt->weight = (float)-weight; /* both dependences are maximised */
  lt->hsic_target = target;
  lt->hsic.sigma = sigma;
  lt->hsic.classes = classes;
}

static void loss(const fg_method_config *mc, const fg_method_plan *mp, int level, int round, int rounds,
                 fg_loss_spec *out) {
  (void)round, (void)rounds;
  fg_loss_every_exit(1, out);
  double lambda, gamma;
  mentor_weights(mc, level, stage_count(mp), &lambda, &gamma);
  add_hsic_term(out, 0, FG_HSIC_INPUT, lambda, (float)mc->hsic_sigma, mp->global.classes);
  add_hsic_term(out, 1, FG_HSIC_LABELS, gamma, (float)mc->hsic_sigma, mp->global.classes);
}

/* ------------------------------------------------------------------------------------------ */
/* Schedules                                                                                   */

typedef enum { SCHED_ROUNDROBIN, SCHED_ROUNDS, SCHED_MOVEMENT } sched_kind;

struct fg_schedule {
  sched_kind kind;
  int stages, rounds;
  int stage_end[FG_MAX_LEVELS]; /* SCHED_ROUNDS: first round after stage l */
  /* SCHED_MOVEMENT */
  const fg_graph *global;
  double threshold;
  int window, every, samples;
  uint64_t seed;
  int stage;          /* current level */
  int stage_rounds;   /* rounds the current stage has run */
  int64_t *tracked;   /* [samples] state offsets of tracked scalars of the active block */
  int n_tracked;
  float *history;     /* [(window + 1) x samples] snapshots, oldest first */
  int n_history;
};

/* Rounds of each stage: the configured ones, or `rounds` split evenly (earlier stages get the
 * remainder). */
static void split_rounds(const fg_method_config *mc, int stages, int rounds, int *end) {
  int at = 0;
  for (int l = 0; l < stages; l++) {
    int r = mc->n_stage_rounds ? mc->stage_rounds[l] : rounds / stages + (l < rounds % stages ? 1 : 0);
    at += r;
    end[l] = at;
  }
}

/* Picks up to `samples` scalars of the active block's trainable parameters (real block tensors,
 * not the stage heads), a seeded uniform choice with replacement. */
static void track_block(fg_schedule *s) {
  int64_t total = 0;
  int np = fg_graph_param_count(s->global);
  for (int i = 0; i < np; i++) {
    const fg_param *p = fg_graph_param(s->global, i);
    if (!p->is_buffer && fg_graph_node(s->global, p->node)->block == s->stage && strncmp(p->name, "neulite.", 8) != 0)
      total += p->numel;
  }
  s->n_tracked = 0;
  s->n_history = 0;
  s->stage_rounds = 0;
  if (total == 0) return;
  fg_rng r = fg_rng_stream(s->seed, FG_RNG_SAMPLING, 0x4e4c, (uint64_t)s->stage);
  for (int k = 0; k < s->samples; k++) {
    int64_t pick = (int64_t)fg_rng_below(&r, (uint64_t)total);
    for (int i = 0; i < np; i++) {
      const fg_param *p = fg_graph_param(s->global, i);
      if (p->is_buffer || fg_graph_node(s->global, p->node)->block != s->stage || strncmp(p->name, "neulite.", 8) == 0)
        continue;
      if (pick < p->numel) {
        s->tracked[s->n_tracked++] = p->offset + pick;
        break;
      }
      pick -= p->numel;
    }
  }
}

/* EM = |sum of the last `window` changes|_1 / sum of their |change|_1 (ProFL's effective
 * movement): near 1 while the block moves steadily, near 0 once it oscillates. */
static double effective_movement(const fg_schedule *s) {
  const float *first = s->history, *last = s->history + (size_t)s->window * (size_t)s->samples;
  double net = 0.0, path = 0.0;
  for (int k = 0; k < s->n_tracked; k++) net += fabs((double)last[k] - (double)first[k]);
  for (int h = 0; h < s->window; h++) {
    const float *a = s->history + (size_t)h * (size_t)s->samples, *b = a + s->samples;
    for (int k = 0; k < s->n_tracked; k++) path += fabs((double)b[k] - (double)a[k]);
  }
  return path > 0.0 ? net / path : 0.0;
}

static void record_snapshot(fg_schedule *s, const float *state) {
  if (s->n_history == s->window + 1) {
    memmove(s->history, s->history + s->samples, (size_t)s->window * (size_t)s->samples * sizeof(float));
    s->n_history--;
  }
  float *dst = s->history + (size_t)s->n_history * (size_t)s->samples;
  for (int k = 0; k < s->n_tracked; k++) dst[k] = state[s->tracked[k]];
  s->n_history++;
}

static fg_status schedule_create(const fg_method_config *mc, const fg_method_plan *mp, const fg_graph *global,
                                 uint64_t seed, int rounds, int start_round, fg_schedule **out) {
  *out = NULL;
  fg_schedule *s = calloc(1, sizeof *s);
  if (!s) return FG_FAIL(FG_ERR_OOM, "neulite: out of memory");
  s->stages = stage_count(mp);
  s->rounds = rounds;
  s->global = global;
  if (strcmp(mc->schedule, "roundrobin") == 0) {
    s->kind = SCHED_ROUNDROBIN;
  } else if (strcmp(mc->advance, "rounds") == 0) {
    s->kind = SCHED_ROUNDS;
    split_rounds(mc, s->stages, rounds, s->stage_end);
  } else {
    s->kind = SCHED_MOVEMENT;
    if (start_round > 0) {
      free(s);
      return FG_FAIL(FG_ERR_UNSUPPORTED,
                     "neulite: a sequential schedule that advances by effective movement cannot resume (its "
                     "movement history is not checkpointed); rerun from round 1 or use advance: rounds");
    }
    s->threshold = mc->em_threshold;
    s->window = mc->em_window;
    s->every = mc->em_every;
    s->samples = mc->em_samples;
    s->seed = seed;
    s->tracked = malloc((size_t)s->samples * sizeof *s->tracked);
    s->history = malloc((size_t)(s->window + 1) * (size_t)s->samples * sizeof *s->history);
    if (!s->tracked || !s->history) {
      free(s->tracked), free(s->history), free(s);
      return FG_FAIL(FG_ERR_OOM, "neulite: out of memory");
    }
    track_block(s);
  }
  *out = s;
  return FG_OK;
}

static fg_status schedule_next(fg_schedule *s, int round, const float *state, int *level) {
  switch (s->kind) {
    case SCHED_ROUNDROBIN: *level = round % s->stages; return FG_OK;
    case SCHED_ROUNDS: {
      int l = 0;
      while (l < s->stages - 1 && round >= s->stage_end[l]) l++;
      *level = l;
      return FG_OK;
    }
    case SCHED_MOVEMENT: break;
  }
  if (round > 0) {
    record_snapshot(s, state);
    s->stage_rounds++;
    int due = s->stage_rounds % s->every == 0 && s->n_history == s->window + 1;
    if (due && s->stage < s->stages - 1 && effective_movement(s) < s->threshold) {
      s->stage++;
      track_block(s);
    }
  }
  if (s->n_history == 0) record_snapshot(s, state);
  *level = s->stage;
  return FG_OK;
}

static void schedule_free(fg_schedule *s) {
  if (!s) return;
  free(s->tracked);
  free(s->history);
  free(s);
}

const fg_method_ops fg_method_neulite = {.name = "neulite",
                                         .plan = plan,
                                         .loss = loss,
                                         .prepare_level = prepare_level,
                                         .schedule_create = schedule_create,
                                         .schedule_next = schedule_next,
                                         .schedule_free = schedule_free};
