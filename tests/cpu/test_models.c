/* Built-in models: parameter counts as models.md, neulite.md and hypemefed.md state them (and,
 * for the Fashion-MNIST vgg-me variant, as derived by hand below), names, shapes, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/nn/models.h"

static fg_graph *build(const char *arch, double width, int c, int h, int w, int classes, int exits, int depth) {
  fg_model_spec s = {.arch = arch, .width = width, .in_c = c, .in_h = h, .in_w = w, .classes = classes, .exits = exits, .depth = depth};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

static int64_t numel_with_prefix(const fg_graph *g, const char *prefix) {
  int64_t n = 0;
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (!p->is_buffer && strncmp(p->name, prefix, strlen(prefix)) == 0) n += p->numel;
  }
  return n;
}

Test(models, cnn_fashion_mnist_counts) {
  fg_graph *g = build("cnn", 16, 1, 28, 28, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 72666);
  /* buffers: running mean + var of six BN layers: 2 * (16+16+32+32+64+64) */
  cr_assert_eq(fg_graph_state_numel(g) - fg_graph_param_numel(g), 448);
  cr_assert_eq(fg_graph_output_count(g), 1);
  cr_assert_geq(fg_graph_find_param(g, "block1.conv1.weight"), 0);
  cr_assert_geq(fg_graph_find_param(g, "block3.bn2.running_var"), 0);
  cr_assert_geq(fg_graph_find_param(g, "head.bias"), 0);
  cr_assert_eq(fg_graph_find_param(g, "block1.conv1.bias"), -1, "cnn convs have no bias");
  const fg_param *w = fg_graph_param(g, fg_graph_find_param(g, "block2.conv1.weight"));
  cr_assert(w->shape[0] == 32 && w->shape[1] == 16 && w->shape[2] == 3 && w->shape[3] == 3);
  fg_graph_free(g);
}

Test(models, cnn_exits_and_depth) {
  fg_graph *g = build("cnn", 16, 1, 28, 28, 10, 1, 0);
  /* exit1: 16*10+10, exit2: 32*10+10 */
  cr_assert_eq(fg_graph_param_numel(g), 72666 + 170 + 330);
  cr_assert_eq(fg_graph_output_count(g), 3);
  cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, 0))->name, "exit1");
  cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, 2))->name, "head");
  fg_graph_free(g);
  g = build("cnn", 16, 1, 28, 28, 10, 1, 2);
  /* blocks 1, 2 (2512 + 13952) and exits 1, 2 */
  cr_assert_eq(fg_graph_param_numel(g), 2512 + 13952 + 170 + 330);
  cr_assert_eq(fg_graph_output_count(g), 2);
  fg_graph_free(g);
}

Test(models, vgg_me_variants) {
  fg_graph *g = build("vgg-me", 0, 3, 32, 32, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 1245886); /* SVHN, hypemefed.md 1.2 */
  cr_assert_eq(numel_with_prefix(g, "stem."), 10272);
  cr_assert_eq(numel_with_prefix(g, "exit1.head."), 40970);
  cr_assert_eq(fg_graph_output_count(g), 3);
  fg_graph_free(g);
  g = build("vgg-me", 0, 3, 96, 96, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 5979486); /* STL10 */
  cr_assert_eq(numel_with_prefix(g, "exit1.head."), 737290);
  fg_graph_free(g);
  g = build("vgg-me", 0, 1, 18, 25, 8, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 4729048); /* UniMiB SHAR */
  fg_graph_free(g);
  /* Fashion-MNIST: stem 1->32 (320 + 64 + 9248 + 64), exit blocks as SVHN (55680, 221952,
   * 886272), heads over 64x7x7, 128x3x3, 256x1x1 maps: 31370, 11530, 2570. */
  g = build("vgg-me", 0, 1, 28, 28, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 9696 + 55680 + 221952 + 886272 + 31370 + 11530 + 2570);
  int pool3 = -1;
  for (int i = 0; i < fg_graph_node_count(g); i++)
    if (strcmp(fg_graph_node(g, i)->name, "exit3.pool") == 0) pool3 = i;
  cr_assert_geq(pool3, 0);
  cr_assert_eq(fg_graph_node(g, pool3)->shape[1], 1);
  fg_graph_free(g);
  g = build("vgg-me", 0, 3, 32, 32, 10, 0, 1);
  cr_assert_eq(fg_graph_param_numel(g), 10272 + 55680 + 40970);
  fg_graph_free(g);
}

Test(models, resnets) {
  fg_graph *g = build("resnet18", 0, 3, 32, 32, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 11173962);
  cr_assert_eq(numel_with_prefix(g, "layer1."), 147968);
  cr_assert_eq(numel_with_prefix(g, "layer2."), 525568);
  cr_assert_eq(numel_with_prefix(g, "layer3."), 2099712);
  cr_assert_eq(numel_with_prefix(g, "layer4."), 8393728);
  cr_assert_geq(fg_graph_find_param(g, "layer2.0.shortcut.conv.weight"), 0);
  cr_assert_eq(fg_graph_find_param(g, "layer1.0.shortcut.conv.weight"), -1);
  cr_assert_eq(fg_graph_block_count(g), 4);
  fg_graph_free(g);
  g = build("resnet34", 0, 3, 32, 32, 10, 0, 0);
  cr_assert_eq(fg_graph_param_numel(g), 21282122);
  cr_assert_eq(numel_with_prefix(g, "stem."), 1856); /* neulite.md 1.2 */
  cr_assert_eq(numel_with_prefix(g, "layer1."), 221952);
  cr_assert_eq(numel_with_prefix(g, "layer2."), 1116416);
  cr_assert_eq(numel_with_prefix(g, "layer3."), 6822400);
  cr_assert_eq(numel_with_prefix(g, "layer4."), 13114368);
  cr_assert_eq(numel_with_prefix(g, "fc."), 5130);
  fg_graph_free(g);
  /* width 0.25: channels 16/32/64/128, fc 128 -> 10 */
  g = build("resnet18", 0.25, 3, 32, 32, 10, 0, 0);
  const fg_param *fc = fg_graph_param(g, fg_graph_find_param(g, "fc.weight"));
  cr_assert_eq(fc->shape[1], 128);
  fg_graph_free(g);
}

/* Our early exits on the resnets (global pool + linear after blocks 1..3) and depth prefixes:
 * counts from the block sizes checked above plus the exits' 64/128/256 x 10 + 10. */
Test(models, resnet_exits_and_depth) {
  fg_graph *g = build("resnet18", 0, 3, 32, 32, 10, 1, 0);
  cr_assert_eq(fg_graph_param_numel(g), 11173962 + 650 + 1290 + 2570);
  cr_assert_eq(fg_graph_output_count(g), 4);
  const char *outs[4] = {"exit1", "exit2", "exit3", "fc"};
  for (int j = 0; j < 4; j++) cr_assert_str_eq(fg_graph_node(g, fg_graph_output_node(g, j))->name, outs[j]);
  cr_assert_eq(fg_graph_param(g, fg_graph_find_param(g, "exit2.weight"))->shape[1], 128);
  fg_graph_free(g);
  g = build("resnet18", 0, 3, 32, 32, 10, 1, 2); /* stem, layer1, layer2, exits 1 and 2 */
  cr_assert_eq(fg_graph_param_numel(g), 1856 + 147968 + 525568 + 650 + 1290);
  cr_assert_eq(fg_graph_output_count(g), 2);
  cr_assert_eq(fg_graph_find_param(g, "layer3.0.conv1.weight"), -1);
  cr_assert_eq(fg_graph_find_param(g, "fc.weight"), -1);
  fg_graph_free(g);
  g = build("resnet34", 0, 3, 32, 32, 10, 1, 1);
  cr_assert_eq(fg_graph_param_numel(g), 1856 + 221952 + 650);
  fg_graph_free(g);
  fg_model_spec no_exits = {.arch = "resnet18", .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10, .depth = 2};
  fg_graph *none = NULL;
  fg_clear_error();
  cr_assert_eq(fg_model_build(&no_exits, &none), FG_ERR_INVALID);
  cr_assert_null(none);
  cr_assert(strstr(fg_last_error(), "depth 2 needs early exits"), "%s", fg_last_error());
}

Test(models, init_rules) {
  fg_graph *g = build("resnet18", 0.25, 3, 32, 32, 10, 0, 0);
  float *s = calloc((size_t)fg_graph_state_numel(g), sizeof *s);
  fg_graph_init_state(g, 1, s);
  const fg_param *bn = fg_graph_param(g, fg_graph_find_param(g, "stem.bn.weight"));
  const fg_param *rv = fg_graph_param(g, fg_graph_find_param(g, "stem.bn.running_var"));
  const fg_param *fc = fg_graph_param(g, fg_graph_find_param(g, "fc.weight"));
  const fg_param *cw = fg_graph_param(g, fg_graph_find_param(g, "layer4.1.conv2.weight"));
  for (int64_t k = 0; k < bn->numel; k++) cr_assert_eq(s[bn->offset + k], 1.0f);
  for (int64_t k = 0; k < rv->numel; k++) cr_assert_eq(s[rv->offset + k], 1.0f);
  double bound = 1.0 / sqrt(128.0);
  for (int64_t k = 0; k < fc->numel; k++) cr_assert(fabs(s[fc->offset + k]) <= bound);
  /* kaiming normal, fan_out = 128*9: sample variance close to 2/1152 */
  double sum2 = 0;
  for (int64_t k = 0; k < cw->numel; k++) sum2 += (double)s[cw->offset + k] * s[cw->offset + k];
  double var = sum2 / (double)cw->numel, want = 2.0 / 1152.0;
  cr_assert(fabs(var - want) < 0.05 * want, "variance %g, expected %g", var, want);
  /* Same name, same seed -> same values in a differently shaped model (a depth prefix). */
  fg_graph *g1 = build("cnn", 16, 1, 28, 28, 10, 1, 1);
  fg_graph *g3 = build("cnn", 16, 1, 28, 28, 10, 1, 0);
  float *s1 = calloc((size_t)fg_graph_state_numel(g1), sizeof *s1);
  float *s3 = calloc((size_t)fg_graph_state_numel(g3), sizeof *s3);
  fg_graph_init_state(g1, 7, s1);
  fg_graph_init_state(g3, 7, s3);
  const fg_param *e1 = fg_graph_param(g1, fg_graph_find_param(g1, "exit1.weight"));
  const fg_param *e3 = fg_graph_param(g3, fg_graph_find_param(g3, "exit1.weight"));
  cr_assert_eq(memcmp(s1 + e1->offset, s3 + e3->offset, (size_t)e1->numel * sizeof(float)), 0);
  free(s);
  free(s1);
  free(s3);
  fg_graph_free(g);
  fg_graph_free(g1);
  fg_graph_free(g3);
}

Test(models, errors_name_the_field) {
  fg_graph *g = NULL;
  fg_model_spec bad_arch = {.arch = "vgg16", .width = 0, .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10, .exits = 0, .depth = 0};
  cr_assert_eq(fg_model_build(&bad_arch, &g), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "vgg16") != NULL, "%s", fg_last_error());
  fg_model_spec bad_input = {.arch = "vgg-me", .width = 0, .in_c = 3, .in_h = 64, .in_w = 64, .classes = 10, .exits = 0, .depth = 0};
  cr_assert_eq(fg_model_build(&bad_input, &g), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "3x64x64") != NULL, "%s", fg_last_error());
  fg_model_spec bad_depth = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .exits = 1, .depth = 4};
  cr_assert_eq(fg_model_build(&bad_depth, &g), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "depth 4") != NULL, "%s", fg_last_error());
  fg_model_spec bad_width = {.arch = "cnn", .width = 2.5, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .exits = 0, .depth = 0};
  cr_assert_eq(fg_model_build(&bad_width, &g), FG_ERR_INVALID);
  fg_model_spec too_small = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 2, .in_w = 2, .classes = 10, .exits = 0, .depth = 0}; /* block 2 pools a 1x1 map */
  cr_assert_neq(fg_model_build(&too_small, &g), FG_OK);
  cr_assert_null(g);
}

Test(models, width_rate_keeps_ceil_channels_and_adds_scalers) {
  /* HeteroFL rates: ceil(rate * channels) for hidden layers; input and classes kept. */
  fg_model_spec s = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10,
                     .rate = 0.0625, .scaler = FG_SCALER_TRAIN_ONLY};
  fg_graph *g;
  FGT_OK(fg_model_build(&s, &g));
  const fg_param *c1 = fg_graph_param(g, fg_graph_find_param(g, "block1.conv1.weight"));
  const fg_param *c5 = fg_graph_param(g, fg_graph_find_param(g, "block3.conv1.weight"));
  const fg_param *head = fg_graph_param(g, fg_graph_find_param(g, "head.weight"));
  cr_assert(c1->shape[0] == 1 && c1->shape[1] == 1, "block1 keeps ceil(16/16) = 1 channel");
  cr_assert(c5->shape[0] == 4 && c5->shape[1] == 2);
  cr_assert(head->shape[0] == 10 && head->shape[1] == 4);
  int scalers = 0;
  for (int i = 0; i < fg_graph_node_count(g); i++) {
    const fg_node *n = fg_graph_node(g, i);
    if (n->kind == FG_NODE_SCALE) {
      scalers++;
      cr_assert_float_eq(n->alpha, 16.0f, 1e-6);
      cr_assert(n->train_only);
    }
  }
  cr_assert_eq(scalers, 6, "one Scaler per conv");
  fg_graph_free(g);
  /* rate 0.3 of 16/32/64: ceil gives 5, 10, 20 */
  fg_model_spec r = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .rate = 0.3};
  FGT_OK(fg_model_build(&r, &g));
  cr_assert_eq(fg_graph_param(g, fg_graph_find_param(g, "block2.conv2.weight"))->shape[0], 10);
  cr_assert_eq(fg_graph_param(g, fg_graph_find_param(g, "head.weight"))->shape[1], 20);
  for (int i = 0; i < fg_graph_node_count(g); i++) cr_assert_neq(fg_graph_node(g, i)->kind, FG_NODE_SCALE);
  fg_graph_free(g);
  fg_model_spec bad = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .rate = 1.5};
  cr_assert_eq(fg_model_build(&bad, &g), FG_ERR_INVALID);
}

static fg_graph *build_stage(const char *arch, double width, int c, int hw, int stage) {
  fg_model_spec s = {.arch = arch, .width = width, .in_c = c, .in_h = hw, .in_w = hw, .classes = 10, .stage = stage};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

/* neulite.md §1.3: the stage-model totals of the reference ResNet-34 (P included). */
Test(models, neulite_resnet34_stage_counts) {
  const int64_t totals[4] = {5463122, 6505810, 13033298, 24968018};
  const int64_t om[4] = {1548288, 1474560, 1179648, 0};
  for (int t = 1; t <= 4; t++) {
    fg_graph *g = build_stage("resnet34", 0, 3, 32, t);
    cr_assert_eq(fg_graph_param_numel(g), totals[t - 1], "stage %d: %lld parameters", t,
                 (long long)fg_graph_param_numel(g));
    char prefix[32];
    snprintf(prefix, sizeof prefix, "neulite.stage%d.om", t);
    cr_assert_eq(numel_with_prefix(g, prefix), om[t - 1], "stage %d output module", t);
    snprintf(prefix, sizeof prefix, "neulite.stage%d.proj", t);
    cr_assert_eq(numel_with_prefix(g, prefix), 3685896, "stage %d projection head", t);
    cr_assert_eq(fg_graph_output_count(g), 1);
    cr_assert_eq(fg_graph_feature_count(g), 2);
    /* Z_X is the 512x4x4 map, Z_Y the 512 outputs of P. */
    cr_assert_eq(fg_node_numel(fg_graph_node(g, fg_graph_feature_node(g, 0))), 8192);
    cr_assert_eq(fg_node_numel(fg_graph_node(g, fg_graph_feature_node(g, 1))), 512);
    /* The last stage's classifier is the model's own fc. */
    cr_assert_eq(fg_graph_find_param(g, "fc.weight") >= 0, t == 4);
    fg_graph_free(g);
  }
  /* All stages: the full model plus every stage's heads, the stage classifiers as outputs. */
  fg_graph *all = build_stage("resnet34", 0, 3, 32, FG_STAGES_ALL);
  cr_assert_eq(fg_graph_param_numel(all), 21282122 + (1548288 + 5130) + (1474560 + 5130) + (1179648 + 5130) +
                                              4 * 3685896);
  cr_assert_eq(fg_graph_output_count(all), 4);
  cr_assert_eq(fg_graph_feature_count(all), 0);
  fg_graph_free(all);
}

/* cnn stage models on Fashion-MNIST (w = 16), counted by hand: blocks 2512, 13952, 55552;
 * head 650; O_1 = 16->32 (4608) + 32->64 (18432); O_2 = 32->64 stride 1 (18432); P = 64->257
 * (16705) + 257->128 (33024) + 128->64 (8256) = 57985. */
Test(models, neulite_cnn_stages) {
  const int64_t totals[3] = {2512 + 4608 + 18432 + 650 + 57985, 2512 + 13952 + 18432 + 650 + 57985,
                             72666 + 57985};
  for (int t = 1; t <= 3; t++) {
    fg_graph *g = build_stage("cnn", 16, 1, 28, t);
    cr_assert_eq(fg_graph_param_numel(g), totals[t - 1], "cnn stage %d: %lld", t, (long long)fg_graph_param_numel(g));
    /* O_t maps block t's output to block 3's: 64 x 7 x 7. */
    cr_assert_eq(fg_node_numel(fg_graph_node(g, fg_graph_feature_node(g, 0))), 64 * 7 * 7);
    fg_graph_free(g);
  }
  fg_model_spec bad = {.arch = "vgg-me", .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .stage = 1};
  fg_graph *g = NULL;
  cr_assert_eq(fg_model_build(&bad, &g), FG_ERR_INVALID);
  bad.arch = "cnn";
  bad.stage = 4;
  cr_assert_eq(fg_model_build(&bad, &g), FG_ERR_INVALID);
  char prefix[32];
  fg_model_spec r18 = {.arch = "resnet18"}, r34 = {.arch = "resnet34"};
  FGT_OK(fg_model_block_tail(&r18, 1, prefix, sizeof prefix));
  cr_assert_str_eq(prefix, "layer1.1");
  FGT_OK(fg_model_block_tail(&r34, 3, prefix, sizeof prefix));
  cr_assert_str_eq(prefix, "layer3.5");
  FGT_OK(fg_model_block_tail(&bad, 2, prefix, sizeof prefix));
  cr_assert_str_eq(prefix, "block2");
}
