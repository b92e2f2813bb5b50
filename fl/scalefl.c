/* ScaleFL (Ilhan et al., CVPR 2023): levels of (width s, exits h); a client keeps the first
 * channels of every layer at width s (a Scaler divides by s in training and inference) and the
 * blocks up to its h-th exit, and trains
 *   L = [ sum_{i<h} i (CE(z_i) + gamma T^2 KL(softmax(z_h/T) || softmax(z_i/T))) + h CE(z_h) ]
 *       / (h (h+1) / 2)
 * with the KL averaged over batch x classes and the deepest exit not detached (the reference
 * code's choices), the distillation only from kd_start x rounds on. Element-wise count-mean
 * aggregation. BN keeps no running statistics, so inference uses batch statistics (the
 * reference's default, baselines.md A.5). */
#include <stdio.h>
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  if (strcmp(base->arch, "cnn") != 0 && strcmp(base->arch, "vgg-me") != 0)
    return FG_FAIL(FG_ERR_CONFIG, "method scalefl needs a model with early exits (cnn or vgg-me), not %s",
                   base->arch);
  int blocks = fg_model_block_count(base->arch);
  out->global = *base;
  out->global.exits = 1;
  out->n_levels = mc->n_scalefl_levels;
  for (int l = 0; l < out->n_levels; l++) {
    int src = out->n_levels - 1 - l; /* the config lists levels from the smallest */
    if (mc->exits[src] > blocks)
      return FG_FAIL(FG_ERR_CONFIG, "method scalefl: %d exits, the %s model has %d", mc->exits[src], base->arch,
                     blocks);
    fg_level *lv = &out->levels[l];
    lv->spec = out->global;
    lv->spec.rate = mc->widths[src];
    lv->spec.depth = mc->exits[src];
    lv->spec.scaler = FG_SCALER_ALWAYS;
    snprintf(lv->label, sizeof lv->label, "rate %g x %d exits", mc->widths[src], mc->exits[src]);
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
  memset(out, 0, sizeof *out);
  int h = fg_spec_outputs(&mp->levels[level].spec);
  double norm = h * (h + 1) / 2.0;
  int kd = mc->kd_gamma > 0 && (double)round >= mc->kd_start * (double)rounds;
  for (int i = 1; i < h; i++) {
    add_xent(out, i - 1, (float)(i / norm));
    if (!kd) continue;
    fg_loss_term *t = &out->terms[out->n++];
    memset(t, 0, sizeof *t);
    t->kind = FG_LOSS_KL;
    t->output = i - 1;
    t->teacher = h - 1;
    t->kl.temperature = (float)mc->kd_temperature;
    t->kl.reduction = FG_KL_ELEMENTWISE_MEAN;
    t->kl.weight = (float)(mc->kd_gamma * i / norm);
  }
  add_xent(out, h - 1, (float)(h / norm));
}

const fg_method_ops fg_method_scalefl = {.name = "scalefl", .plan = plan, .loss = loss};
