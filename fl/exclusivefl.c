/* ExclusiveFL: only clients whose budget fits the full model train it; the others sit out.
 * Averaged like FedAvg (baselines.md A.7). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  double full = 1.0;
  fg_levels_by_rate(base, &full, 1, FG_SCALER_NONE, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  return FG_OK;
}

const fg_method_ops fg_method_exclusivefl = {.name = "exclusivefl", .weighting = FG_WEIGHT_SAMPLES,
                                            .sampling = FG_SAMPLE_ELIGIBLE, .plan = plan};
