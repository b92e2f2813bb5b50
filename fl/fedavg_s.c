/* FedAvg-S (AllSmall): every client trains the widest model that the smallest budget fits, and
 * that small model is the global model (baselines.md A.7). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, mc->rates, mc->n_rates, FG_SCALER_NONE, out);
  out->same_level = 1;
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  return FG_OK;
}

const fg_method_ops fg_method_fedavg_s = {.name = "fedavg-s", .plan = plan, .loss = NULL};
