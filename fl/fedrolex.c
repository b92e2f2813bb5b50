/* FedRolex (Alam et al., NeurIPS 2022): HeteroFL's pipeline with a window of channels that rolls
 * every round (`roll`), or HeteroFL's first channels (`static`), or a fresh random subset per
 * client and round (`random`). BN keeps no running statistics and the global model is evaluated
 * directly, with batch statistics (baselines.md A.3). */
#include <string.h>

#include "fl/method.h"

typedef struct options {
  fg_width_options width; /* rates */
  int scaler, label_mask;
  int rolling; /* the channel policy */
} options;

static const fg_choice rollings[] = {
    {"roll", FG_CHANNELS_ROLLING}, {"static", FG_CHANNELS_FIRST}, {"random", FG_CHANNELS_RANDOM}};

static const fg_field option_table[] = {
    {.key = "scaler", .type = FG_FIELD_BOOL, .offset = offsetof(options, scaler), .def = 1,
     .doc = "divide conv outputs by the rate in training"},
    {.key = "label_mask", .type = FG_FIELD_BOOL, .offset = offsetof(options, label_mask), .def = 0,
     .doc = "clients mask the classes they lack, in the loss and in classifier averaging"},
    {.key = "rolling", .type = FG_FIELD_CHOICE, .offset = offsetof(options, rolling), .def = FG_CHANNELS_ROLLING,
     .choices = rollings, .n_choices = 3,
     .doc = "the window of channels: rolls every round, stays the first ones (static), or random per client"},
};

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, o->width.rates, o->width.n_rates, o->scaler ? FG_SCALER_TRAIN_ONLY : FG_SCALER_NONE, out);
  out->channels = (fg_channel_policy)o->rolling;
  out->weighting = mc->weighting;
  out->label_mask = o->label_mask;
  out->bn_mode = FG_BN_NO_RUNNING_STATS;
  return FG_OK;
}

const fg_method_ops fg_method_fedrolex = {
    .name = "fedrolex", .weighting = FG_WEIGHT_COUNT, .plan = plan, .options_size = sizeof(options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .shared_options = fg_width_option_table, .n_shared_options = FG_WIDTH_OPTIONS,
    .options = option_table, .n_options = (int)(sizeof option_table / sizeof *option_table)};
