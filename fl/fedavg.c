/* FedAvg: every client trains the full model, budgets ignored — the upper bound that no real
 * memory-constrained deployment reaches. Updates averaged by sample count (McMahan et al.). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  double full = 1.0;
  fg_levels_by_rate(base, &full, 1, FG_SCALER_NONE, out);
  out->ignore_budgets = 1;
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  return FG_OK;
}

const fg_method_ops fg_method_fedavg = {.name = "fedavg", .weighting = FG_WEIGHT_SAMPLES,
                                      .sampling = FG_SAMPLE_UNIFORM, .plan = plan};
