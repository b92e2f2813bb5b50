/* ScaleFL (Ilhan et al., CVPR 2023): levels of (width s, exits h); a client keeps the first
 * floor(s C) channels of every layer (a Scaler divides by s in training and inference) and the
 * blocks up to its h-th exit, and trains
 *   L = [ sum_{i<h} i (CE(z_i) + gamma T^2 KL(softmax(z_h/T) || softmax(z_i/T))) + h CE(z_h) ]
 *       / (h (h+1) / 2)
 * with the KL averaged over batch x classes and the deepest exit not detached (the reference
 * code's choices), the distillation only from kd_start x rounds on. Every early exit is ScaleFL's
 * head (engine/nn/models.h FG_EXIT_HEAD_SCALEFL: 3 x (conv3x3, Scaler, BN, ReLU), pool, linear),
 * after each block but the last; the last exit is the model's own classifier. Element-wise
 * count-mean aggregation. BN keeps no running statistics, so inference uses batch statistics
 * (the reference's default, baselines.md A.5). The reference's levels are widths 0.7, 0.7, 0.75,
 * 1 with exits 1, 2, 3, 4; on a 3-block model (cnn, vgg-me) the exits default to that list
 * capped at 3. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fl/method.h"

/* Levels from the smallest: widths[i] x exits[i] (no exits given: level_exits). */
typedef struct options {
  double widths[FG_MAX_LEVELS];
  int n_widths;
  int exits[FG_MAX_LEVELS];
  int n_exits;
  double kd_gamma, kd_temperature, kd_start;
} options;

static const double default_widths[] = {0.7, 0.7, 0.75, 1};

static const fg_field option_table[] = {
    {.key = "widths", .type = FG_FIELD_REALS, .offset = offsetof(options, widths),
     .count_offset = offsetof(options, n_widths), .def_reals = default_widths, .n_def = 4, .min = 0, .min_open = 1,
     .max = 1, .min_len = 1, .max_len = FG_MAX_LEVELS, .doc = "width of each level, from the smallest"},
    {.key = "exits", .type = FG_FIELD_INTS, .offset = offsetof(options, exits),
     .count_offset = offsetof(options, n_exits), .min = 1, .max = INFINITY, .min_len = 1, .max_len = FG_MAX_LEVELS,
     .absent = "the reference's 1, 2, 3, ... (one per width), capped at the model's blocks",
     .doc = "exits of each level (one per width), from the smallest"},
    {.key = "kd_gamma", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_gamma), .def = 0.05, .min = 0,
     .max = INFINITY, .doc = "weight of the distillation from the deepest exit"},
    {.key = "kd_temperature", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_temperature), .def = 3,
     .min = 0, .min_open = 1, .max = INFINITY, .doc = "distillation temperature"},
    {.key = "kd_start", .type = FG_FIELD_REAL, .offset = offsetof(options, kd_start), .def = 0.25, .min = 0,
     .max = 1, .doc = "distillation from this fraction of the rounds on"},
};

/* Exits of level i (0-based from the smallest) of a model with `blocks` blocks: the given
 * ones, or the reference's i + 1 capped at the blocks. */
static int level_exits(const options *o, int i, int blocks) {
  if (o->n_exits) return o->exits[i];
  return i + 1 < blocks ? i + 1 : blocks;
}

/* What is wrong with the levels on a model of `blocks` blocks (arch), if anything: 1 with the
 * key ("exits[2]") and the problem in key / msg. Each level must hold the previous one (a width
 * and exits no smaller, one of them larger) and the largest must hold every block. */
static int level_problem(const options *o, const char *arch, int blocks, char *key, size_t kcap, char *msg,
                         size_t mcap) {
  int n = o->n_widths;
  for (int i = 0; i < n; i++) {
    int h = level_exits(o, i, blocks);
    if (h > blocks) {
      snprintf(key, kcap, "exits[%d]", i);
      snprintf(msg, mcap, "%d exits, the %s model has %d blocks", h, arch, blocks);
      return 1;
    }
    if (i == 0) continue;
    int prev = level_exits(o, i - 1, blocks);
    if (o->widths[i] < o->widths[i - 1]) {
      snprintf(key, kcap, "widths[%d]", i);
      snprintf(msg, mcap, "%g is below the previous level's %g (expected levels from the smallest, each holding "
               "the previous)", o->widths[i], o->widths[i - 1]);
      return 1;
    }
    if (h < prev || (h == prev && o->widths[i] == o->widths[i - 1])) {
      snprintf(key, kcap, "exits[%d]", i);
      snprintf(msg, mcap, "%d exits at width %g after %d exits at width %g (expected levels from the smallest, "
               "each with a larger width or more exits than the previous)", h, o->widths[i], prev, o->widths[i - 1]);
      return 1;
    }
  }
  int last = level_exits(o, n - 1, blocks);
  if (last == blocks) return 0;
  snprintf(key, kcap, "exits");
  snprintf(msg, mcap, "the largest level has %d exits, the %s model has %d blocks (expected the largest level to "
           "hold them all; give exits, one per width%s)", last, arch, blocks,
           blocks == 4 ? ", e.g. exits [1, 2, 3, 4] with widths [0.7, 0.7, 0.75, 1] as ScaleFL's reference" : "");
  return 1;
}

/* One exit count per width, and levels the model can hold. */
static fg_status check_options(fg_schema_ctx *c, const void *opt, const unsigned char *given, const char *arch) {
  (void)given;
  const options *o = opt;
  if (o->n_exits && o->n_exits != o->n_widths)
    return fg_schema_fail_key(c, "exits", "%d entries but widths has %d (expected one exit count per width)",
                              o->n_exits, o->n_widths);
  int blocks = fg_model_block_count(arch);
  char key[32], msg[320];
  if (blocks > 0 && level_problem(o, arch, blocks, key, sizeof key, msg, sizeof msg))
    return fg_schema_fail_key(c, key, "%s", msg);
  return FG_OK;
}

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  int blocks = fg_model_block_count(base->arch);
  char key[32], msg[320];
  if (level_problem(o, base->arch, blocks, key, sizeof key, msg, sizeof msg))
    return FG_FAIL(FG_ERR_CONFIG, "method scalefl: %s: %s", key, msg);
  out->global = *base;
  out->global.exits = 1;
  out->global.exit_head = FG_EXIT_HEAD_SCALEFL;
  out->global.rate_floor = 1;
  out->n_levels = o->n_widths;
  for (int l = 0; l < out->n_levels; l++) {
    int src = out->n_levels - 1 - l; /* the config lists levels from the smallest */
    int h = level_exits(o, src, blocks);
    fg_level *lv = &out->levels[l];
    lv->spec = out->global;
    lv->spec.rate = o->widths[src];
    lv->spec.depth = h;
    lv->spec.scaler = FG_SCALER_ALWAYS;
    snprintf(lv->label, sizeof lv->label, "rate %g x %d exits", o->widths[src], h);
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
