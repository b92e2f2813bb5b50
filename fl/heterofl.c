/* HeteroFL (Diao et al., ICLR 2021): width levels; a client keeps the first ceil(r C) channels of
 * every layer; a Scaler divides conv outputs by r in training; element-wise count-mean
 * aggregation; optional label split (masked classes in the loss and in classifier averaging).
 * BN keeps no running statistics in training (clients' statistics of differently scaled
 * activations cannot be averaged); with sbn (the reference's default) they are recomputed over
 * training data before each evaluation, otherwise evaluation uses batch statistics
 * (baselines.md A.2). */
#include <string.h>

#include "fl/method.h"

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, mc->rates, mc->n_rates, mc->scaler ? FG_SCALER_TRAIN_ONLY : FG_SCALER_NONE, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->label_mask = mc->label_mask;
  out->static_bn = mc->sbn;
  out->bn_mode = mc->sbn ? FG_BN_BATCH_NO_UPDATE : FG_BN_NO_RUNNING_STATS;
  return FG_OK;
}

const fg_method_ops fg_method_heterofl = {.name = "heterofl", .plan = plan, .loss = NULL};
