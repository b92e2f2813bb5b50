/* HeteroFL (Diao et al., ICLR 2021): width levels; a client keeps the first ceil(r C) channels of
 * every layer; a Scaler divides conv outputs by r in training; element-wise count-mean
 * aggregation; optional label split (masked classes in the loss and in classifier averaging).
 * BN keeps no running statistics in training (clients' statistics of differently scaled
 * activations cannot be averaged); with sbn (the reference's default) they are recomputed over
 * training data before each evaluation, otherwise evaluation uses batch statistics
 * (baselines.md A.2). */
#include <string.h>

#include "fl/method.h"

typedef struct options {
  fg_width_options width; /* rates */
  int scaler, sbn, label_mask;
} options;

static const fg_field option_table[] = {
    {.key = "scaler", .type = FG_FIELD_BOOL, .offset = offsetof(options, scaler), .def = 1,
     .doc = "divide conv outputs by the rate in training"},
    {.key = "sbn", .type = FG_FIELD_BOOL, .offset = offsetof(options, sbn), .def = 1,
     .doc = "recompute BN statistics over training data before each evaluation (else batch statistics)"},
    {.key = "label_mask", .type = FG_FIELD_BOOL, .offset = offsetof(options, label_mask), .def = 0,
     .doc = "clients mask the classes they lack, in the loss and in classifier averaging"},
};

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, o->width.rates, o->width.n_rates, o->scaler ? FG_SCALER_TRAIN_ONLY : FG_SCALER_NONE, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->label_mask = o->label_mask;
  out->static_bn = o->sbn;
  out->bn_mode = o->sbn ? FG_BN_BATCH_NO_UPDATE : FG_BN_NO_RUNNING_STATS;
  return FG_OK;
}

const fg_method_ops fg_method_heterofl = {
    .name = "heterofl", .weighting = FG_WEIGHT_COUNT, .plan = plan, .options_size = sizeof(options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .shared_options = fg_width_option_table, .n_shared_options = FG_WIDTH_OPTIONS,
    .options = option_table, .n_options = (int)(sizeof option_table / sizeof *option_table)};
