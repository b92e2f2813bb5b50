/* FedRolex (Alam et al., NeurIPS 2022): HeteroFL's pipeline with a window of channels that rolls
 * every round (`roll`), or HeteroFL's first channels (`static`), or a fresh random subset per
 * client and round (`random`). BN keeps no running statistics and the global model is evaluated
 * directly, with batch statistics (baselines.md A.3). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, mc->rates, mc->n_rates, mc->scaler ? FG_SCALER_TRAIN_ONLY : FG_SCALER_NONE, out);
  if (!mc->rolling || strcmp(mc->rolling, "roll") == 0)
    out->channels = FG_CHANNELS_ROLLING;
  else if (strcmp(mc->rolling, "static") == 0)
    out->channels = FG_CHANNELS_FIRST;
  else
    out->channels = FG_CHANNELS_RANDOM;
  out->weighting = mc->weighting;
  out->label_mask = mc->label_mask;
  out->bn_mode = FG_BN_NO_RUNNING_STATS;
  return FG_OK;
}

const fg_method_ops fg_method_fedrolex = {.name = "fedrolex", .plan = plan, .loss = NULL};
