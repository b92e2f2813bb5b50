/* The multi-exit baseline: HypeMeFed without its hypernetworks. Depth levels of a multi-exit
 * model (vgg-me, or the cnn with exits), each client trains blocks 1..d with the sum of the
 * cross-entropies of exits 1..d (no distillation), local Adam with coupled weight decay 0.1 lr
 * reset every round, and the server takes the per-tensor count mean over the clients that trained
 * each tensor (hypemefed.md §4.3's level-wise fallback, without its P - 1 bug). */
#include "fl/method.h"

const fg_method_ops fg_method_multiexit = {
    .name = "multiexit", .weighting = FG_WEIGHT_COUNT, .plan = fg_method_plan_multiexit,
    .sampling = FG_SAMPLE_PER_LEVEL,
    .options_size = sizeof(fg_multiexit_options), .shared_options = fg_multiexit_option_table,
    .n_shared_options = FG_MULTIEXIT_OPTIONS};
