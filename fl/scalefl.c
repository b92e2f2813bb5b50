/* ScaleFL (Ilhan et al., CVPR 2023): levels of (width s, exits h); a client keeps the first
 * channels of every layer at width s (a Scaler divides by s in training and inference) and the
 * blocks up to its h-th exit, and trains
 *   L = [ sum_{i<h} i (CE(z_i) + gamma T^2 KL(softmax(z_h/T) || softmax(z_i/T))) + h CE(z_h) ]
 *       / (h (h+1) / 2)
 * with the KL averaged over batch x classes and the deepest exit not detached (the reference
 * code's choices), the distillation only from kd_start x rounds on. Element-wise count-mean
 * aggregation. BN keeps no running statistics, so inference uses batch statistics (the
 * reference's default, baselines.md A.5). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fl/method.h"

/* Levels from the smallest: widths[i] x exits[i]. */
typedef struct options {
  double widths[FG_MAX_LEVELS];
  int n_widths;
  int exits[FG_MAX_LEVELS];
  int n_exits;
  double kd_gamma, kd_temperature, kd_start;
} options;

static const double default_widths[] = {0.7, 0.75, 1};
static const int default_exits[] = {1, 2, 3};

static const fg_field option_table[] = {
    {.key = "widths", .type = FG_FIELD_REALS, .offset = offsetof(options, widths),
     .count_offset = offsetof(options, n_widths), .def_reals = default_widths, .n_def = 3, .min = 0, .min_open = 1,
     .max = 1, .min_len = 1, .max_len = FG_MAX_LEVELS, .doc = "width of each level, from the smallest"},
    {.key = "exits", .type = FG_FIELD_INTS, .offset = offsetof(options, exits),
     .count_offset = offsetof(options, n_exits), .def_ints = default_exits, .n_def = 3, .min = 1, .max = INFINITY,
     .min_len = 1, .max_len = FG_MAX_LEVELS, .order = 1, .entry = "exits",
     .doc = "exits of each level (one per width), strictly increasing"},
    {.key = "kd_gamma", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_gamma), .def = 0.05, .min = 0,
     .max = INFINITY, .doc = "weight of the distillation from the deepest exit"},
    {.key = "kd_temperature", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_temperature), .def = 3,
     .min = 0, .min_open = 1, .max = INFINITY, .doc = "distillation temperature"},
    {.key = "kd_start", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_start), .def = 0.25, .min = 0,
     .max = 1, .doc = "distillation from this fraction of the rounds on"},
};

/* One exit count per width (giving only one of the lists keeps the other's default). */
static fg_status check_options(fg_schema_ctx *c, const void *opt, const unsigned char *given, const char *arch) {
  (void)given, (void)arch;
  const options *o = opt;
  if (o->n_exits == o->n_widths) return FG_OK;
  return fg_schema_fail_key(c, "exits", "%d entries but widths has %d (expected one exit count per width)", o->n_exits,
                            o->n_widths);
}

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  int blocks = fg_model_block_count(base->arch);
  out->global = *base;
  out->global.exits = 1;
  out->n_levels = o->n_widths;
  for (int l = 0; l < out->n_levels; l++) {
    int src = out->n_levels - 1 - l; /* the config lists levels from the smallest */
    if (o->exits[src] > blocks)
      return FG_FAIL(FG_ERR_CONFIG, "method scalefl: %d exits, the %s model has %d", o->exits[src], base->arch,
                     blocks);
    if (l == 0 && o->exits[src] != blocks)
      return FG_FAIL(FG_ERR_CONFIG,
                     "method scalefl: the largest level has %d exits, the %s model has %d blocks (expected the "
                     "largest level to hold them all; set method.exits%s)",
                     o->exits[src], base->arch, blocks,
                     blocks == 4 ? ", e.g. exits [1, 2, 3, 4] with widths [0.7, 0.7, 0.75, 1] as ScaleFL's reference"
                                 : "");
    fg_level *lv = &out->levels[l];
    lv->spec = out->global;
    lv->spec.rate = o->widths[src];
    lv->spec.depth = o->exits[src];
    lv->spec.scaler = FG_SCALER_ALWAYS;
    snprintf(lv->label, sizeof lv->label, "rate %g x %d exits", o->widths[src], o->exits[src]);
  }
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->bn_mode = FG_BN_NO_RUNNING_STATS;
  return FG_OK;
}

static void add_xent(fg_loss_spec *out, int output, float weight) {
  fg_loss_term *t = &out->terms[out->n++];
  memset(t, 0, sizeof *t);
  t->kind = FG_LOSS_XENT;
  t->output = output;
  t->weight = weight;
}

static void loss(const fg_method_config *mc, const fg_method_plan *mp, int level, int round, int rounds,
                 fg_loss_spec *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  int h = fg_spec_outputs(&mp->levels[level].spec);
  double norm = h * (h + 1) / 2.0;
  int kd = o->kd_gamma > 0 && (double)round >= o->kd_start * (double)rounds;
  for (int i = 1; i < h; i++) {
    add_xent(out, i - 1, (float)(i / norm));
    if (!kd) continue;
    fg_loss_term *t = &out->terms[out->n++];
    memset(t, 0, sizeof *t);
    t->kind = FG_LOSS_KL;
    t->output = i - 1;
    t->teacher = h - 1;
    t->kl.temperature = (float)o->kd_temperature;
    t->kl.reduction = FG_KL_ELEMENTWISE_MEAN;
    t->kl.weight = (float)(o->kd_gamma * i / norm);
  }
  add_xent(out, h - 1, (float)(h / norm));
}

const fg_method_ops fg_method_scalefl = {
    .name = "scalefl", .weighting = FG_WEIGHT_COUNT, .plan = plan, .loss = loss, .options_size = sizeof(options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .options = option_table, .n_options = (int)(sizeof option_table / sizeof *option_table),
    .check_options = check_options};
