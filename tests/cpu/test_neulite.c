/* NeuLite (fl/neulite.c): what each stage trains (neulite.md §1.4: trainable counts of the
 * ResNet-34 stages, the harmonizer's conv + BN), a local step that leaves the frozen prefix
 * untouched and moves the harmonizer and the active block, frozen-prefix BN buffers updated or
 * fixed as configured, the Curriculum Mentor terms, and the schedules. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/method_util.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/nn/trainer.h"
#include "fl/method.h"

static const fg_method_ops *neulite(void) {
  const fg_method_ops *ops = fg_method_find("neulite");
  cr_assert_not_null(ops);
  return ops;
}

/* The level graph of stage t as the server builds it. */
static fg_graph *stage_graph(const fg_method_config *mc, const fg_method_plan *mp, int t) {
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&mp->levels[t - 1].spec, &g));
  fg_graph_set_bn_mode(g, "", mp->bn_mode);
  FGT_OK(neulite()->prepare_level(mc, mp, t - 1, g));
  return g;
}

/* neulite.md §1.3: trainable parameters of the ResNet-34 stages (P included: every stage has a
 * label-HSIC weight). */
Test(neulite, resnet34_trainable_counts) {
  fg_method_config mc = fgt_method_config("neulite", "resnet34", "gammas=[0.1, 0.2, 0.3, 0.4]", NULL);
  fg_model_spec base = {.arch = "resnet34", .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
  fg_method_plan mp;
  FGT_OK(neulite()->plan(&mc, &base, &mp));
  cr_assert_eq(mp.n_levels, 4);
  const int64_t trainable[4] = {5463122, 6318994, 11840786, 17395730};
  for (int t = 1; t <= 4; t++) {
    fg_graph *g = stage_graph(&mc, &mp, t);
    cr_assert_eq(fg_graph_trainable_numel(g), trainable[t - 1], "stage %d: %lld trainable", t,
                 (long long)fg_graph_trainable_numel(g));
    fg_graph_free(g);
  }
  /* Without the harmonizer stage 2 loses layer1.2.conv2 (36,864) and bn2 (128). */
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet34", "gammas=[0.1, 0.2, 0.3, 0.4]", "harmonizer=false", NULL);
  fg_graph *g = stage_graph(&mc, &mp, 2);
  cr_assert_eq(fg_graph_trainable_numel(g), 6318994 - 36864 - 128);
  fg_graph_free(g);
  /* A stage whose label term has weight 0 (stage 1 of the default curriculum) leaves out P:
   * 512x2056 + 2056 + 2056x1024 + 1024 + 1024x512 + 512 parameters. */
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet34", NULL);
  FGT_OK(neulite()->plan(&mc, &base, &mp));
  g = stage_graph(&mc, &mp, 1);
  const int64_t p_params = 512 * 2056 + 2056 + 2056 * 1024 + 1024 + 1024 * 512 + 512;
  cr_assert_eq(fg_graph_trainable_numel(g), 5463122 - p_params);
  cr_assert_eq(fg_graph_feature_count(g), 1);
  fg_graph_free(g);
  g = stage_graph(&mc, &mp, 2);
  cr_assert_eq(fg_graph_trainable_numel(g), 6318994);
  cr_assert_eq(fg_graph_feature_count(g), 2);
  fg_graph_free(g);
  fg_method_config_free(&mc);
}

/* output_module bn_relu (ours): each output-module conv gains a BN (weight and bias trainable,
 * running statistics as buffers) followed by a ReLU; the last stage has no output module. */
Test(neulite, output_module_bn_relu) {
  fg_method_config mc =
      fgt_method_config("neulite", "resnet34", "gammas=[0.1, 0.2, 0.3, 0.4]", "output_module=bn_relu", NULL);
  fg_model_spec base = {.arch = "resnet34", .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
  fg_method_plan mp;
  FGT_OK(neulite()->plan(&mc, &base, &mp));
  const int64_t linear[4] = {5463122, 6318994, 11840786, 17395730};
  const int64_t om_channels[4] = {128 + 256 + 512, 256 + 512, 512, 0};
  for (int t = 1; t <= 4; t++) {
    fg_graph *g = stage_graph(&mc, &mp, t);
    cr_assert_eq(fg_graph_trainable_numel(g), linear[t - 1] + 2 * om_channels[t - 1], "stage %d", t);
    int relus = 0;
    for (int i = 1; i < fg_graph_node_count(g); i++) {
      const fg_node *n = fg_graph_node(g, i);
      if (n->kind == FG_NODE_RELU && strncmp(n->name, "neulite.", 8) == 0) relus++;
    }
    cr_assert_eq(relus, 4 - t, "stage %d: one ReLU per output-module conv", t);
    fg_graph_free(g);
  }
  fg_method_config_free(&mc);
}

typedef struct step_result {
  float *before, *after;
  fg_graph *g;
} step_result;

/* One local SGD step of stage t of a small resnet18 from a random state. */
static step_result one_step(const fg_method_config *mc, int t) {
  fgt_setup_cpu(2);
  fg_model_spec base = {.arch = "resnet18", .width = 0.125, .in_c = 3, .in_h = 16, .in_w = 16, .classes = 10};
  fg_method_plan mp;
  FGT_OK(neulite()->plan(mc, &base, &mp));
  step_result r;
  r.g = stage_graph(mc, &mp, t);
  int64_t numel = fg_graph_state_numel(r.g);
  r.before = malloc((size_t)numel * sizeof(float));
  r.after = malloc((size_t)numel * sizeof(float));
  fg_graph_init_state(r.g, 3, r.before);
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = 6;
  o.mode = FG_EXEC_STORE;
  o.optim = fg_optim_sgd(0.1f, 0.9f, 5e-4f);
  o.device = fg_host_device();
  neulite()->loss(mc, &mp, t - 1, 0, 10, &o.loss);
  fg_ledger l;
  fg_ledger_init(&l, "neulite", 0);
  fg_trainer *tr;
  FGT_OK(fg_trainer_create(r.g, &o, &l, &tr));
  FGT_OK(fg_trainer_set_state(tr, r.before));
  fgt_input in;
  fgt_input_open(&in, tr);
  fgt_fill_uniform(fg_f32(&in.x), (size_t)fg_tensor_numel(&in.x), 9, -1.0f, 1.0f);
  for (int i = 0; i < 6; i++) fg_i32(&in.y)[i] = i % 3;
  fgt_input_load(&in, tr, 6);
  fgt_input_close(&in);
  fg_step_stats st;
  FGT_OK(fg_trainer_step(tr, 6, &st));
  FGT_OK(fg_trainer_get_state(tr, r.after));
  fg_trainer_destroy(tr);
  return r;
}

static int changed(const step_result *r, const char *name) {
  int i = fg_graph_find_param(r->g, name);
  cr_assert_geq(i, 0, "no tensor %s", name);
  const fg_param *p = fg_graph_param(r->g, i);
  return memcmp(r->before + p->offset, r->after + p->offset, (size_t)p->numel * sizeof(float)) != 0;
}

static void free_step(step_result *r) {
  free(r->before), free(r->after);
  fg_graph_free(r->g);
}

Test(neulite, frozen_prefix_harmonizer_and_bn_buffers) {
  fg_method_config mc = fgt_method_config("neulite", "resnet18", NULL);
  step_result r = one_step(&mc, 3);
  /* Frozen: the stem, layer1, layer2 except its last conv2 + bn2. */
  cr_assert(!changed(&r, "stem.conv.weight"));
  cr_assert(!changed(&r, "layer1.1.conv2.weight"));
  cr_assert(!changed(&r, "layer2.1.conv1.weight"));
  cr_assert(!changed(&r, "layer2.1.bn1.weight"));
  cr_assert(!changed(&r, "layer2.0.shortcut.conv.weight"));
  /* The harmonizer and the active block (with its heads) train. */
  cr_assert(changed(&r, "layer2.1.conv2.weight"));
  cr_assert(changed(&r, "layer2.1.bn2.weight"));
  cr_assert(changed(&r, "layer3.0.conv1.weight"));
  cr_assert(changed(&r, "neulite.stage3.om1.weight"));
  cr_assert(changed(&r, "neulite.stage3.fc.weight"));
  cr_assert(changed(&r, "neulite.stage3.proj1.weight"));
  /* As the reference: frozen-prefix BN still updates its running statistics. */
  cr_assert(changed(&r, "stem.bn.running_mean"));
  cr_assert(changed(&r, "layer1.0.bn1.running_var"));
  free_step(&r);

  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet18", "frozen_bn=fixed", NULL);
  r = one_step(&mc, 3);
  cr_assert(!changed(&r, "stem.bn.running_mean"));
  cr_assert(!changed(&r, "layer1.0.bn1.running_var"));
  cr_assert(!changed(&r, "layer2.1.bn1.running_mean"));
  cr_assert(changed(&r, "layer2.1.bn2.running_mean")); /* the harmonizer's BN trains */
  cr_assert(changed(&r, "layer2.1.conv2.weight"));
  free_step(&r);

  /* Without the harmonizer the whole of block 2 is frozen. */
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet18", "frozen_bn=update", "harmonizer=false", NULL);
  r = one_step(&mc, 3);
  cr_assert(!changed(&r, "layer2.1.conv2.weight"));
  cr_assert(!changed(&r, "layer2.1.bn2.weight"));
  cr_assert(changed(&r, "layer3.0.conv1.weight"));
  free_step(&r);
  fg_method_config_free(&mc);
}

/* The mentor's terms: CE, then -lambda_t nHSIC(X; Z_X), -gamma_t nHSIC(Y; Z_Y); zero weights
 * drop a term; our default runs lambda 0.5 -> 0 and gamma 0 -> 0.5 over the stages. */
Test(neulite, curriculum_mentor_terms) {
  fg_method_config mc = fgt_method_config("neulite", "resnet18", NULL);
  fg_model_spec base = {.arch = "resnet18", .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
  fg_method_plan mp;
  FGT_OK(neulite()->plan(&mc, &base, &mp));
  fg_loss_spec l;
  neulite()->loss(&mc, &mp, 0, 0, 10, &l);
  cr_assert_eq(l.n, 2, "stage 1: CE and the input term (gamma_1 = 0)");
  cr_assert_eq(l.terms[1].kind, FG_LOSS_NHSIC);
  cr_assert_eq(l.terms[1].hsic_target, FG_HSIC_INPUT);
  cr_assert_float_eq(l.terms[1].weight, -0.5f, 1e-7);
  neulite()->loss(&mc, &mp, 1, 0, 10, &l);
  cr_assert_eq(l.n, 3);
  cr_assert_float_eq(l.terms[1].weight, (float)(-0.5 * 2.0 / 3.0), 1e-7);
  cr_assert_float_eq(l.terms[2].weight, (float)(-0.5 / 3.0), 1e-7);
  cr_assert_eq(l.terms[2].hsic_target, FG_HSIC_LABELS);
  cr_assert_eq(l.terms[2].hsic.classes, 10);
  cr_assert_float_eq(l.terms[2].hsic.sigma, 5.0f, 1e-7);
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet18", "lambdas=[1, 0, 0, 0]", "gammas=[0, 0, 0, 2]", NULL);
  neulite()->loss(&mc, &mp, 3, 0, 10, &l);
  cr_assert_eq(l.n, 2);
  cr_assert_float_eq(l.terms[1].weight, -2.0f, 1e-7);
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "resnet18", "lambdas=[1, 0, 0, 0]", "gammas=[0, 0, 0, 2]", "mentor=false", NULL);
  neulite()->loss(&mc, &mp, 0, 0, 10, &l);
  cr_assert_eq(l.n, 1);
  cr_assert_eq(l.terms[0].kind, FG_LOSS_XENT);
  fg_method_config_free(&mc);
}

static int next_level(fg_schedule *s, int round, const float *state) {
  int level = -1;
  FGT_OK(neulite()->schedule_next(s, round, state, &level));
  return level;
}

Test(neulite, schedules) {
  fg_method_config mc = fgt_method_config("neulite", "cnn", NULL);
  fg_model_spec base = {.arch = "cnn", .width = 4, .in_c = 1, .in_h = 12, .in_w = 12, .classes = 10};
  fg_method_plan mp;
  FGT_OK(neulite()->plan(&mc, &base, &mp));
  fg_graph *global;
  FGT_OK(fg_model_build(&mp.global, &global));
  int64_t numel = fg_graph_state_numel(global);
  float *state = calloc((size_t)numel, sizeof *state);
  /* Round-robin: stage (r mod 3) + 1. */
  fg_schedule *s;
  FGT_OK(neulite()->schedule_create(&mc, &mp, global, 1, 10, 0, &s));
  for (int r = 0; r < 10; r++) cr_assert_eq(next_level(s, r, state), r % 3);
  neulite()->schedule_free(s);
  /* Sequential, 10 rounds split 4 / 3 / 3, or as configured. */
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "cnn", "schedule=sequential", NULL);
  FGT_OK(neulite()->schedule_create(&mc, &mp, global, 1, 10, 0, &s));
  const int want[10] = {0, 0, 0, 0, 1, 1, 1, 2, 2, 2};
  for (int r = 0; r < 10; r++) cr_assert_eq(next_level(s, r, state), want[r], "round %d", r);
  neulite()->schedule_free(s);
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "cnn", "schedule=sequential", "stage_rounds=[1, 2, 7]", NULL);
  FGT_OK(neulite()->schedule_create(&mc, &mp, global, 1, 10, 0, &s));
  const int want2[10] = {0, 1, 1, 2, 2, 2, 2, 2, 2, 2};
  for (int r = 0; r < 10; r++) cr_assert_eq(next_level(s, r, state), want2[r], "round %d", r);
  neulite()->schedule_free(s);
  /* Effective movement (window 3, checked every 2 rounds): a block drifting steadily (EM = 1)
   * stays; one oscillating back and forth (EM = 1/3 < 0.5) advances at the next check. */
  fg_method_config_free(&mc);
  mc = fgt_method_config("neulite", "cnn", "schedule=sequential", "advance=movement", "em_threshold=0.5",
                         "em_window=3", "em_every=2", "em_samples=50", NULL);
  FGT_OK(neulite()->schedule_create(&mc, &mp, global, 1, 40, 0, &s));
  for (int r = 0; r < 8; r++) {
    for (int64_t k = 0; k < numel; k++) state[k] = 0.01f * (float)r;
    cr_assert_eq(next_level(s, r, state), 0, "steady drift, round %d", r);
  }
  int advanced_at = -1;
  for (int r = 8; r < 20 && advanced_at < 0; r++) {
    for (int64_t k = 0; k < numel; k++) state[k] = (r % 2) ? 0.5f : 0.0f;
    if (next_level(s, r, state) == 1) advanced_at = r;
  }
  cr_assert(advanced_at > 8 && advanced_at <= 12, "oscillating block advanced at round %d", advanced_at);
  neulite()->schedule_free(s);
  /* It does not resume (its history is not checkpointed). */
  cr_assert_eq(neulite()->schedule_create(&mc, &mp, global, 1, 40, 5, &s), FG_ERR_UNSUPPORTED);
  free(state);
  fg_graph_free(global);
  fg_method_config_free(&mc);
}
