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

/* ------------------------------------------------------------------------------------------ */
/* Options                                                                                     */

enum { SCHEDULE_ROUNDROBIN, SCHEDULE_SEQUENTIAL };
enum { ADVANCE_ROUNDS, ADVANCE_MOVEMENT };
enum { FROZEN_BN_UPDATE, FROZEN_BN_FIXED };
enum { OUTPUT_LINEAR, OUTPUT_BN_RELU };

/* Every scalar holds a value (its default when not given) whatever the schedule; a list holds
 * no entries when not given (the method's default), else one per stage. */
typedef struct options {
  int schedule, advance;
  int stage_rounds[FG_MAX_LEVELS]; /* sequential, advance rounds: rounds of each stage */
  int n_stage_rounds;
  double em_threshold; /* advance movement: the stage ends when EM falls below this */
  int em_window, em_every, em_samples;
  double lambdas[FG_MAX_LEVELS], gammas[FG_MAX_LEVELS]; /* nHSIC weights per stage */
  int n_lambdas, n_gammas;
  double hsic_sigma;
  int mentor, harmonizer;
  int frozen_bn, output_module;
} options;

/* The options, in the order of the table below. */
enum {
  OPT_SCHEDULE, OPT_ADVANCE, OPT_STAGE_ROUNDS, OPT_EM_THRESHOLD, OPT_EM_WINDOW, OPT_EM_EVERY, OPT_EM_SAMPLES,
  OPT_LAMBDAS, OPT_GAMMAS, OPT_HSIC_SIGMA, OPT_MENTOR, OPT_HARMONIZER, OPT_FROZEN_BN, OPT_OUTPUT_MODULE, OPT_COUNT
};

static const fg_choice schedules[] = {{"roundrobin", SCHEDULE_ROUNDROBIN}, {"sequential", SCHEDULE_SEQUENTIAL}};
static const fg_choice advances[] = {{"rounds", ADVANCE_ROUNDS}, {"movement", ADVANCE_MOVEMENT}};
static const fg_choice frozen_bns[] = {{"update", FROZEN_BN_UPDATE}, {"fixed", FROZEN_BN_FIXED}};
static const fg_choice output_modules[] = {{"linear", OUTPUT_LINEAR}, {"bn_relu", OUTPUT_BN_RELU}};

static const fg_field option_table[OPT_COUNT] = {
    [OPT_SCHEDULE] = {.key = "schedule", .type = FG_FIELD_CHOICE, .offset = offsetof(options, schedule),
                      .def = SCHEDULE_ROUNDROBIN, .choices = schedules, .n_choices = 2,
                      .doc = "the stages take turns (roundrobin, the reference code) or run one after another"},
    [OPT_ADVANCE] = {.key = "advance", .type = FG_FIELD_CHOICE, .offset = offsetof(options, advance),
                     .def = ADVANCE_ROUNDS, .choices = advances, .n_choices = 2,
                     .doc = "sequential: a stage ends after its stage_rounds, or when its effective movement is low"},
    [OPT_STAGE_ROUNDS] = {.key = "stage_rounds", .type = FG_FIELD_INTS, .offset = offsetof(options, stage_rounds),
                          .count_offset = offsetof(options, n_stage_rounds), .min = 1, .max = INFINITY,
                          .min_len = 1, .max_len = FG_MAX_LEVELS, .absent = "the rounds split evenly over the stages",
                          .doc = "sequential, advance rounds: rounds of each stage"},
    [OPT_EM_THRESHOLD] = {.key = "em_threshold", .type = FG_FIELD_REAL, .offset = offsetof(options, em_threshold),
                          .def = 0.1, .min = 0, .min_open = 1, .max = 1,
                          .doc = "advance movement: the stage ends when its effective movement is below this"},
    [OPT_EM_WINDOW] = {.key = "em_window", .type = FG_FIELD_INT, .offset = offsetof(options, em_window), .def = 6,
                       .min = 2, .max = INFINITY, .doc = "advance movement: round-to-round changes summed into EM"},
    [OPT_EM_EVERY] = {.key = "em_every", .type = FG_FIELD_INT, .offset = offsetof(options, em_every), .def = 10,
                      .min = 1, .max = INFINITY, .doc = "advance movement: check EM every this many rounds of a stage"},
    [OPT_EM_SAMPLES] = {.key = "em_samples", .type = FG_FIELD_INT, .offset = offsetof(options, em_samples),
                        .def = 10000, .min = 1, .max = INFINITY,
                        .doc = "advance movement: scalars of the active block tracked for EM"},
    [OPT_LAMBDAS] = {.key = "lambdas", .type = FG_FIELD_REALS, .offset = offsetof(options, lambdas),
                     .count_offset = offsetof(options, n_lambdas), .min = 0, .max = INFINITY, .min_len = 1,
                     .max_len = FG_MAX_LEVELS, .absent = "the method's default schedule",
                     .doc = "weight of nHSIC(X; Z_X) in each stage"},
    [OPT_GAMMAS] = {.key = "gammas", .type = FG_FIELD_REALS, .offset = offsetof(options, gammas),
                    .count_offset = offsetof(options, n_gammas), .min = 0, .max = INFINITY, .min_len = 1,
                    .max_len = FG_MAX_LEVELS, .absent = "the method's default schedule",
                    .doc = "weight of nHSIC(Y; Z_Y) in each stage"},
    [OPT_HSIC_SIGMA] = {.key = "hsic_sigma", .type = FG_FIELD_REAL, .offset = offsetof(options, hsic_sigma), .def = 5,
                        .min = 0, .min_open = 1, .max = INFINITY, .doc = "sigma of nHSIC's Gaussian kernel"},
    [OPT_MENTOR] = {.key = "mentor", .type = FG_FIELD_BOOL, .offset = offsetof(options, mentor), .def = 1,
                    .doc = "the Curriculum Mentor's nHSIC terms"},
    [OPT_HARMONIZER] = {.key = "harmonizer", .type = FG_FIELD_BOOL, .offset = offsetof(options, harmonizer),
                        .def = 1, .doc = "the Training Harmonizer"},
    [OPT_FROZEN_BN] = {.key = "frozen_bn", .type = FG_FIELD_CHOICE, .offset = offsetof(options, frozen_bn),
                       .def = FROZEN_BN_UPDATE, .choices = frozen_bns, .n_choices = 2, .doc = "frozen prefix's BN"},
    [OPT_OUTPUT_MODULE] = {.key = "output_module", .type = FG_FIELD_CHOICE, .offset = offsetof(options, output_module),
                           .def = OUTPUT_LINEAR, .choices = output_modules, .n_choices = 2,
                           .doc = "per-stage output module: the reference's convs, or with BN + ReLU after each"},
};

/* The schedule an option is used only with, or NULL when every entry uses it. */
static const char *option_needs(int i) {
  if (i == OPT_ADVANCE) return "schedule sequential";
  if (i == OPT_STAGE_ROUNDS) return "schedule sequential with advance rounds";
  if (i >= OPT_EM_THRESHOLD && i <= OPT_EM_SAMPLES) return "schedule sequential with advance movement";
  return NULL;
}

static int option_used(const options *o, int i) {
  if (!option_needs(i)) return 1;
  if (o->schedule != SCHEDULE_SEQUENTIAL) return 0;
  if (i == OPT_ADVANCE) return 1;
  return o->advance == (i == OPT_STAGE_ROUNDS ? ADVANCE_ROUNDS : ADVANCE_MOVEMENT);
}

/* A per-stage list: no entries, or one per stage (block) of the model. */
static fg_status check_stage_count(fg_schema_ctx *c, int i, int n, const char *arch) {
  int stages = fg_model_block_count(arch);
  if (n == 0 || n == stages) return FG_OK;
  return fg_schema_fail_key(c, option_table[i].key,
                            "%d entries but model %s has %d stages (expected %d, one per block)", n, arch, stages,
                            stages);
}

/* A key given for a schedule / advance that does not use it is an error; the per-stage lists
 * hold one entry per block of `arch`. */
static fg_status check_options(fg_schema_ctx *c, const void *opt, const unsigned char *given, const char *arch) {
  const options *o = opt;
  int sequential = o->schedule == SCHEDULE_SEQUENTIAL;
  for (int i = 0; i < OPT_COUNT; i++) {
    if (!given[i] || option_used(o, i)) continue;
    return fg_schema_fail_key(c, option_table[i].key,
                              "used only with %s (this entry has %s %s; remove it, or change %s)", option_needs(i),
                              sequential ? "advance" : "schedule",
                              sequential ? advances[o->advance].name : schedules[o->schedule].name,
                              sequential ? "advance" : "the schedule");
  }
  FG_TRY(check_stage_count(c, OPT_STAGE_ROUNDS, o->n_stage_rounds, arch));
  FG_TRY(check_stage_count(c, OPT_LAMBDAS, o->n_lambdas, arch));
  return check_stage_count(c, OPT_GAMMAS, o->n_gammas, arch);
}

/* The resolved config.yaml notes the keys the entry's schedule does not use. */
static const char *option_note(const void *opt, int i) {
  const options *o = opt;
  if (option_used(o, i)) return NULL;
  if (o->schedule != SCHEDULE_SEQUENTIAL) return "advance, stage_rounds, em_*: used only with schedule sequential";
  if (i == OPT_STAGE_ROUNDS) return "stage_rounds: used only with advance rounds";
  return "em_*: used only with advance movement";
}

/* ------------------------------------------------------------------------------------------ */
/* Plan and loss                                                                               */

static int stage_count(const fg_method_plan *mp) { return mp->n_levels; }

/* Our default curriculum: lambda from 0.5 down to 0, gamma from 0 up to 0.5. */
static double default_lambda(int t, int stages) { return 0.5 * (double)(stages - t) / (double)(stages - 1); }
static double default_gamma(int t, int stages) { return 0.5 * (double)(t - 1) / (double)(stages - 1); }

/* The Curriculum Mentor's weights of stage level + 1 (both 0 with the mentor off). */
static void mentor_weights(const options *o, int level, int stages, double *lambda, double *gamma) {
  int t = level + 1;
  *lambda = !o->mentor ? 0.0 : o->n_lambdas ? o->lambdas[level] : default_lambda(t, stages);
  *gamma = !o->mentor ? 0.0 : o->n_gammas ? o->gammas[level] : default_gamma(t, stages);
}

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  int stages = fg_model_block_count(base->arch);
  if (strcmp(base->arch, "vgg-me") == 0 || stages < 2)
    return FG_FAIL(FG_ERR_CONFIG, "method neulite: model %s has no stage models (expected cnn, resnet18 or resnet34)",
                   base->arch);
  if (base->exits) return FG_FAIL(FG_ERR_CONFIG, "method neulite: the model must not have early exits");
  out->global = *base;
  out->global.stage = FG_STAGES_ALL;
  out->global.om_bn_relu = o->output_module == OUTPUT_BN_RELU;
  out->n_levels = stages;
  for (int l = 0; l < stages; l++) {
    fg_level *lv = &out->levels[l];
    lv->spec = out->global;
    lv->spec.stage = l + 1;
    /* a stage whose label term has weight 0 never uses P: its clients neither get nor hold it */
    double lambda, gamma;
    mentor_weights(o, l, stages, &lambda, &gamma);
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
  const options *o = mc->options;
  int t = level + 1;
  char tail[FG_NAME_CAP] = "";
  if (t > 1 && o->harmonizer) FG_TRY(fg_model_block_tail(&mp->levels[level].spec, t - 1, tail, sizeof tail));
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
  if (o->frozen_bn == FROZEN_BN_FIXED) {
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
  const options *o = mc->options;
  fg_loss_every_exit(1, out);
  double lambda, gamma;
  mentor_weights(o, level, stage_count(mp), &lambda, &gamma);
  add_hsic_term(out, 0, FG_HSIC_INPUT, lambda, (float)o->hsic_sigma, mp->global.classes);
  add_hsic_term(out, 1, FG_HSIC_LABELS, gamma, (float)o->hsic_sigma, mp->global.classes);
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
static void split_rounds(const options *o, int stages, int rounds, int *end) {
  int at = 0;
  for (int l = 0; l < stages; l++) {
    int r = o->n_stage_rounds ? o->stage_rounds[l] : rounds / stages + (l < rounds % stages ? 1 : 0);
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
  const options *o = mc->options;
  *out = NULL;
  fg_schedule *s = calloc(1, sizeof *s);
  if (!s) return FG_FAIL(FG_ERR_OOM, "neulite: out of memory");
  s->stages = stage_count(mp);
  s->rounds = rounds;
  s->global = global;
  if (o->schedule == SCHEDULE_ROUNDROBIN) {
    s->kind = SCHED_ROUNDROBIN;
  } else if (o->advance == ADVANCE_ROUNDS) {
    s->kind = SCHED_ROUNDS;
    split_rounds(o, s->stages, rounds, s->stage_end);
  } else {
    s->kind = SCHED_MOVEMENT;
    if (start_round > 0) {
      free(s);
      return FG_FAIL(FG_ERR_UNSUPPORTED,
                     "neulite: a sequential schedule that advances by effective movement cannot resume (its "
                     "movement history is not checkpointed); rerun from round 1 or use advance: rounds");
    }
    s->threshold = o->em_threshold;
    s->window = o->em_window;
    s->every = o->em_every;
    s->samples = o->em_samples;
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

/* Weighting: the paper weights by |D_n| / |D|; the reference code averages with equal weights (count). */
const fg_method_ops fg_method_neulite = {.name = "neulite",
                                         .options_size = sizeof(options),
                                         .options = option_table,
                                         .n_options = OPT_COUNT,
                                         .weighting = FG_WEIGHT_SAMPLES, .sampling = FG_SAMPLE_ELIGIBLE,
                                         .check_options = check_options,
                                         .option_note = option_note,
                                         .plan = plan,
                                         .loss = loss,
                                         .prepare_level = prepare_level,
                                         .schedule_create = schedule_create,
                                         .schedule_next = schedule_next,
                                         .schedule_free = schedule_free};
