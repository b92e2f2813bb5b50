/* ScaleFL's reference levels (widths 0.7, 0.7, 0.75, 1 x exits 1..4, baselines.md A.5) each
 * train one local round on resnet18 (small width: every stage and its exit head) and on vgg-me
 * (3 blocks: exits capped at 3), aggregated back by count (fgt_train_every_level_once). The cnn's
 * case is in tests/cpu/test_scalefl.c. */
#include "common/method_util.h"
#include "common/test_util.h"

Test(scalefl_levels, resnet18_trains_one_round_at_every_level, .timeout = 600) {
  cr_assert_eq(fgt_train_every_level_once("scalefl", "arch: resnet18, width: 0.125"), 4);
}

Test(scalefl_levels, vgg_me_trains_one_round_at_every_level, .timeout = 600) {
  cr_assert_eq(fgt_train_every_level_once("scalefl", "arch: vgg-me, width: 0.25"), 4);
}
