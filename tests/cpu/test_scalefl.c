/* ScaleFL (baselines.md A.5) on the built-in models:
 * - its exit head is 3 x (conv3x3 C->C without bias, Scaler, BN, ReLU), global pool and a linear
 *   C->K: 3 (9 C^2 + 2 C) + C K + K parameters, counted here from the formula, on top of the
 *   model without exits (cnn, resnet18) or in place of vgg-me's own early exits;
 * - a level's sub-model keeps floor(s C) channels of every layer, a Scaler 1/s in training and
 *   inference, BN without running statistics, and the backbone and exits up to its h-th;
 * - one local round at every level of the cnn (fgt_train_every_level_once). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/method_util.h"
#include "common/test_util.h"
#include "fl/method.h"

/* Parameters of one ScaleFL exit head on C channels with K classes, written out term by term. */
static int64_t head_params(int64_t C, int64_t K) {
  int64_t conv = C * C * 3 * 3; /* (C, C, 3, 3), no bias */
  int64_t bn = 2 * C;           /* gamma, beta */
  int64_t fc = K * C + K;       /* weight (K, C), bias */
  return 3 * (conv + bn) + fc;
}

static int64_t params_with_prefix(const fg_graph *g, const char *prefix) {
  int64_t n = 0;
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (!p->is_buffer && strncmp(p->name, prefix, strlen(prefix)) == 0) n += p->numel;
  }
  return n;
}

static fg_graph *build(fg_model_spec s) {
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

static const fg_param *param(const fg_graph *g, const char *name) {
  int i = fg_graph_find_param(g, name);
  cr_assert_geq(i, 0, "no tensor %s", name);
  return fg_graph_param(g, i);
}

static void assert_shape(const fg_graph *g, const char *name, int rank, int64_t d0, int64_t d1) {
  const fg_param *p = param(g, name);
  cr_assert_eq(p->ndim, rank, "%s: rank %d", name, p->ndim);
  cr_assert(p->shape[0] == d0 && (rank < 2 || p->shape[1] == d1), "%s: %lld x %lld, want %lld x %lld", name,
            (long long)p->shape[0], (long long)(rank > 1 ? p->shape[1] : 0), (long long)d0, (long long)d1);
}

/* Exit j's head on C channels: its tensors' shapes and the parameter count. */
static void assert_head(const fg_graph *g, int j, int64_t C, int64_t K) {
  char name[64];
  for (int i = 1; i <= 3; i++) {
    snprintf(name, sizeof name, "scalefl.exit%d.conv%d.weight", j, i);
    assert_shape(g, name, 4, C, C);
    cr_assert_eq(param(g, name)->shape[2], 3);
    snprintf(name, sizeof name, "scalefl.exit%d.conv%d.bias", j, i);
    cr_assert_eq(fg_graph_find_param(g, name), -1, "the head's convs have no bias");
    snprintf(name, sizeof name, "scalefl.exit%d.bn%d.weight", j, i);
    assert_shape(g, name, 1, C, 0);
  }
  snprintf(name, sizeof name, "scalefl.exit%d.fc.weight", j);
  assert_shape(g, name, 2, K, C);
  snprintf(name, sizeof name, "scalefl.exit%d.", j);
  cr_assert_eq(params_with_prefix(g, name), head_params(C, K), "exit %d on %lld channels", j, (long long)C);
}

Test(scalefl, head_parameters_follow_the_formula) {
  /* cnn width 8: exits after blocks 1 and 2, on 8 and 16 channels; the last exit is the head */
  fg_model_spec cnn = {.arch = "cnn", .width = 8, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
  fg_graph *plain = build(cnn);
  cnn.exits = 1;
  cnn.exit_head = FG_EXIT_HEAD_SCALEFL;
  fg_graph *g = build(cnn);
  assert_head(g, 1, 8, 10);
  assert_head(g, 2, 16, 10);
  cr_assert_eq(fg_graph_param_numel(g), fg_graph_param_numel(plain) + head_params(8, 10) + head_params(16, 10));
  cr_assert_eq(fg_graph_find_param(g, "exit1.weight"), -1, "no pooled exit beside ScaleFL's");
  cr_assert_eq(fg_graph_output_count(g), 3);
  cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, 0))->name, "scalefl.exit1.fc");
  cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, 2))->name, "head");
  fg_graph_free(g);
  fg_graph_free(plain);

  /* resnet18 width 0.25 (16, 32, 64, 128 channels): exits after stages 1..3; the last is fc */
  fg_model_spec r18 = {.arch = "resnet18", .width = 0.25, .in_c = 3, .in_h = 32, .in_w = 32, .classes = 100};
  plain = build(r18);
  r18.exits = 1;
  r18.exit_head = FG_EXIT_HEAD_SCALEFL;
  g = build(r18);
  int64_t heads = 0;
  for (int j = 1; j <= 3; j++) {
    assert_head(g, j, 16 << (j - 1), 100);
    heads += head_params(16 << (j - 1), 100);
  }
  cr_assert_eq(fg_graph_param_numel(g), fg_graph_param_numel(plain) + heads);
  cr_assert_eq(fg_graph_output_count(g), 4);
  cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, 3))->name, "fc");
  fg_graph_free(g);
  fg_graph_free(plain);

  /* vgg-me (Fashion-MNIST: exit blocks of 64, 128, 256 channels): ScaleFL's heads replace the
   * flatten-dropout-linear heads of exits 1 and 2 (31370 and 11530 parameters, models.md) */
  fg_model_spec vgg = {.arch = "vgg-me", .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
  plain = build(vgg);
  vgg.exit_head = FG_EXIT_HEAD_SCALEFL;
  g = build(vgg);
  assert_head(g, 1, 64, 10);
  assert_head(g, 2, 128, 10);
  cr_assert_eq(fg_graph_find_param(g, "exit1.head.weight"), -1);
  cr_assert_geq(fg_graph_find_param(g, "exit3.head.weight"), 0);
  cr_assert_eq(fg_graph_param_numel(g),
               fg_graph_param_numel(plain) - 31370 - 11530 + head_params(64, 10) + head_params(128, 10));
  fg_graph_free(g);
  fg_graph_free(plain);
}

/* The level of `mp` with this rate and exit count (-1 if none). */
static int find_level(const fg_method_plan *mp, double rate, int exits) {
  for (int l = 0; l < mp->n_levels; l++)
    if (fabs(mp->levels[l].spec.rate - rate) < 1e-12 && mp->levels[l].spec.depth == exits) return l;
  return -1;
}

/* Every Scaler divides by `rate` in training and inference; `want` of them. */
static void assert_scalers(const fg_graph *g, double rate, int want) {
  int n = 0;
  for (int i = 0; i < fg_graph_node_count(g); i++) {
    const fg_node *node = fg_graph_node(g, i);
    if (node->kind != FG_NODE_SCALE) continue;
    n++;
    cr_assert_float_eq(node->alpha, (float)(1.0 / rate), 1e-6, "%s", node->name);
    cr_assert(!node->train_only, "%s: ScaleFL's Scaler acts in inference too", node->name);
  }
  cr_assert_eq(n, want);
}

static void assert_no_running_stats(const fg_graph *g) {
  for (int i = 0; i < fg_graph_node_count(g); i++) {
    const fg_node *node = fg_graph_node(g, i);
    if (node->kind == FG_NODE_BN) cr_assert_eq(node->bn_mode, FG_BN_NO_RUNNING_STATS, "%s", node->name);
  }
}

/* The reference's levels on resnet18 width 0.25 (16, 32, 64, 128 channels): width 0.7 x 1 exit,
 * 0.7 x 2, 0.75 x 3, 1 x 4; widths floor(s C), as the reference's int(s C). */
Test(scalefl, level_sub_models_have_the_width_and_exits_of_the_spec) {
  fg_model_spec base = {.arch = "resnet18", .width = 0.25, .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
  fg_method_config mc = fgt_method_config("scalefl", "resnet18", NULL);
  const fg_method_ops *ops = fg_method_find("scalefl");
  fg_method_plan mp;
  FGT_OK(ops->plan(&mc, &base, &mp));
  fg_graph *global = build(mp.global);

  /* 0.7 x 1: stem and layer1 at floor(0.7 x 16) = 11 channels, exit 1 only */
  int l = find_level(&mp, 0.7, 1);
  cr_assert_geq(l, 0);
  fg_graph *g = NULL;
  FGT_OK(fg_method_build_level(ops, &mc, &mp, l, &g));
  cr_assert_eq(fg_graph_output_count(g), 1);
  assert_shape(g, "stem.conv.weight", 4, 11, 3);
  assert_shape(g, "layer1.1.conv2.weight", 4, 11, 11);
  assert_head(g, 1, 11, 10);
  cr_assert_eq(fg_graph_find_param(g, "layer2.0.conv1.weight"), -1);
  cr_assert_eq(fg_graph_find_param(g, "scalefl.exit2.fc.weight"), -1);
  /* one Scaler per conv: stem, layer1 (4), the head (3) */
  assert_scalers(g, 0.7, 1 + 4 + 3);
  assert_no_running_stats(g);
  fg_index_plan ip;
  fg_channel_select sel = {.policy = FG_CHANNELS_FIRST};
  FGT_OK(fg_index_plan_build(global, g, &sel, &ip));
  fg_index_plan_free(&ip);
  fg_graph_free(g);

  /* 0.7 x 2: layer2 at floor(0.7 x 32) = 22, exits 1 and 2 */
  l = find_level(&mp, 0.7, 2);
  cr_assert_geq(l, 0);
  FGT_OK(fg_method_build_level(ops, &mc, &mp, l, &g));
  cr_assert_eq(fg_graph_output_count(g), 2);
  assert_shape(g, "layer2.0.conv1.weight", 4, 22, 11);
  assert_head(g, 2, 22, 10);
  fg_graph_free(g);

  /* 0.75 x 3: floor(0.75 x 16, 32, 64) = 12, 24, 48; exits 1..3, no layer4 and no fc */
  l = find_level(&mp, 0.75, 3);
  cr_assert_geq(l, 0);
  FGT_OK(fg_method_build_level(ops, &mc, &mp, l, &g));
  cr_assert_eq(fg_graph_output_count(g), 3);
  assert_shape(g, "stem.conv.weight", 4, 12, 3);
  assert_shape(g, "layer3.1.conv2.weight", 4, 48, 48);
  assert_head(g, 1, 12, 10);
  assert_head(g, 3, 48, 10);
  cr_assert_eq(fg_graph_find_param(g, "layer4.0.conv1.weight"), -1);
  cr_assert_eq(fg_graph_find_param(g, "fc.weight"), -1);
  FGT_OK(fg_index_plan_build(global, g, &sel, &ip));
  fg_index_plan_free(&ip);
  fg_graph_free(g);

  /* 1 x 4: the whole global model, no Scaler */
  l = find_level(&mp, 1, 4);
  cr_assert_eq(l, 0);
  FGT_OK(fg_method_build_level(ops, &mc, &mp, l, &g));
  cr_assert_eq(fg_graph_output_count(g), 4);
  cr_assert_eq(fg_graph_param_numel(g), fg_graph_param_numel(global));
  assert_scalers(g, 1, 0);
  assert_no_running_stats(g);
  fg_graph_free(g);
  fg_graph_free(global);
  fg_method_config_free(&mc);
}

/* One round at every level (tests/common/method_util.h); resnet18 and vgg-me in tests/slow. */
Test(scalefl, cnn_trains_one_round_at_every_level, .timeout = 300) {
  cr_assert_eq(fgt_train_every_level_once("scalefl", "arch: cnn, width: 4"), 4, "the reference's four levels");
}
