/* FedAvg-S (AllSmall): every client trains the widest model that the smallest budget fits, and
 * that small model is the global model (baselines.md A.7). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const fg_width_options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, o->rates, o->n_rates, FG_SCALER_NONE, out);
  out->same_level = 1;
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  return FG_OK;
}

const fg_method_ops fg_method_fedavg_s = {
    .name = "fedavg-s", .weighting = FG_WEIGHT_SAMPLES, .plan = plan, .options_size = sizeof(fg_width_options),
    .sampling = FG_SAMPLE_ELIGIBLE,
    .shared_options = fg_width_option_table, .n_shared_options = FG_WIDTH_OPTIONS};
