/* DepthFL (Kim et al., ICLR 2023): depth levels, a classifier after every block; a client of
 * depth d trains blocks 1..d and exits 1..d with
 *   L = sum_i [ CE(z_i) + w_t / (d - 1) sum_{j != i} KL(softmax(z_j) || softmax(z_i)) ]
 * (teachers detached, T = 1, 1e-7 added to the teacher probabilities, KL summed over classes and
 * averaged over the batch) and w_t = exp(-5 (1 - min(t, R) / R)^2), R = kd_ramp_rounds (the
 * reference's 300; -1, the default: 60% of the run's rounds, at most 300, so that a short run
 * reaches full distillation too; ours).
 * Per-tensor count-mean aggregation (baselines.md A.4). The exits here are the models' own
 * (global pool + linear for cnn, models.md); DepthFL's attention/bottleneck classifiers for
 * ResNets and its FedDyn variant are not implemented. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fl/method.h"

typedef struct options {
  int kd;             /* mutual distillation between the exits */
  int kd_ramp_rounds; /* R of the distillation weight's ramp; -1: ramp_rounds_for(rounds) */
} options;

static const fg_field option_table[] = {
    {.key = "kd", .type = FG_FIELD_BOOL, .offset = offsetof(options, kd), .def = 1,
     .doc = "mutual distillation between the exits"},
    {.key = "kd_ramp_rounds", .type = FG_FIELD_INT, .offset = offsetof(options, kd_ramp_rounds), .def = -1,
     .min = -1, .max = INFINITY,
     .doc = "rounds over which the distillation weight ramps up (-1: 60% of the rounds, at most 300)"},
};

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  out->global.exits = 1;
  fg_levels_by_depth(&out->global, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
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

const fg_method_ops fg_method_depthfl = {
    .name = "depthfl", .weighting = FG_WEIGHT_COUNT, .plan = plan, .loss = loss, .options_size = sizeof(options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .options = option_table, .n_options = (int)(sizeof option_table / sizeof *option_table)};
