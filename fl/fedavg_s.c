/* FedAvg-S (AllSmall): every client trains the widest model that the smallest budget fits, and
 * that small model is the global model (baselines.md A.7). */
#include <string.h>

#include "fl/method.h"

typedef struct options {
  double rates[FG_MAX_LEVELS];
  int n_rates;
} options;

static const fg_field option_table[] = {
    {.key = "rates", .type = FG_FIELD_REALS, .offset = offsetof(options, rates),
     .count_offset = offsetof(options, n_rates), .def_reals = fg_default_rates, .n_def = FG_DEFAULT_RATES,
     .min = 0, .min_open = 1, .max = 1, .min_len = 1, .max_len = FG_MAX_LEVELS,
     .doc = "the widths the smallest budget is tried at, strictly descending"},
};

static fg_status check_options(fg_schema_ctx *c, const void *opt, const unsigned char *given, const char *arch) {
  (void)given, (void)arch;
  const options *o = opt;
  return fg_check_rates(c, o->rates, o->n_rates);
}

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  fg_levels_by_rate(base, o->rates, o->n_rates, FG_SCALER_NONE, out);
  out->same_level = 1;
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  return FG_OK;
}

const fg_method_ops fg_method_fedavg_s = {.name = "fedavg-s",
                                          .options = option_table,
                                          .n_options = (int)(sizeof option_table / sizeof option_table[0]),
                                          .options_size = sizeof(options),
                                          .weighting = FG_WEIGHT_SAMPLES,
                                          .check_options = check_options,
                                          .plan = plan};
