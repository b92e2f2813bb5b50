/* The multi-exit baseline: HypeMeFed without its hypernetworks. Depth levels of a multi-exit
 * model (vgg-me, or the cnn with exits), each client trains blocks 1..d with the sum of the
 * cross-entropies of exits 1..d (no distillation), local Adam with coupled weight decay 0.1 lr
 * reset every round, and the server takes the per-tensor count mean over the clients that trained
 * each tensor (hypemefed.md §4.3's level-wise fallback, without its P - 1 bug). */
#include <math.h>

#include "fl/method.h"

enum { LEVELS_BY_BUDGET, LEVELS_BY_INDEX };

typedef struct options {
  int levels;
  double lr; /* local Adam; weight decay 0.1 lr, coupled; state reset every round */
} options;

static const fg_choice level_rules[] = {{"budget", LEVELS_BY_BUDGET}, {"index", LEVELS_BY_INDEX}};

static const fg_field option_table[] = {
    {.key = "levels", .type = FG_FIELD_CHOICE, .offset = offsetof(options, levels), .def = LEVELS_BY_BUDGET,
     .choices = level_rules, .n_choices = 2,
     .doc = "each client at the deepest level its budget fits, or client i at depth (i mod 3) + 1 (index)"},
    {.key = "lr", .type = FG_FIELD_REAL, .offset = offsetof(options, lr), .def = 5e-4, .min = 0, .min_open = 1,
     .max = INFINITY, .doc = "local Adam learning rate (replaces local.optimizer and local.lr)"},
};

static fg_status plan(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const options *o = mc->options;
  return fg_method_plan_multiexit(mc, base, o->levels == LEVELS_BY_INDEX, o->lr, out);
}

const fg_method_ops fg_method_multiexit = {.name = "multiexit",
                                           .options = option_table,
                                           .n_options = (int)(sizeof option_table / sizeof option_table[0]),
                                           .options_size = sizeof(options),
                                           .weighting = FG_WEIGHT_COUNT,
                                           .plan = plan};
