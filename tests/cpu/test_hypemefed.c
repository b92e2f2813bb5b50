/* HypeMeFed's server: the aggregate of a round with one participant per depth, computed here by
 * hand from the participants' states, the global state and hypernetworks trained here on the same
 * pairs (fl/hypernet.h), with and without generated kernels, with the reference's duplicated-key
 * weights (F3); and the multi-exit levels and local optimizer both multi-exit methods plan. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/mem/ledger.h"
#include "fl/hypernet.h"
#include "fl/method.h"

enum { P = 3, BLOCKS = 3 };

typedef struct round_fixture {
  const fg_method_ops *ops;
  fg_method_config mc;
  fg_method_plan mp;
  fg_graph *global;
  float *global_state;
  fg_graph *level[P];
  float *trained[P];   /* slot s: the trained model of depth s + 1 */
  fg_index_plan plan[P];
  float *result;       /* the aggregate */
  char report[4096];   /* the method's record of the round */
  char summary[1024];  /* and of the run */
} round_fixture;

static fg_model_spec tiny_vgg(void) {
  fg_model_spec s;
  memset(&s, 0, sizeof s);
  s.arch = "vgg-me";
  s.in_c = 1;
  s.in_h = 28;
  s.in_w = 28;
  s.classes = 10;
  s.width = 0.125;
  return s;
}

/* Slot s is a participant of depth s + 1 (level P - 1 - s). */
static int slot_level(int s) { return P - 1 - s; }

/* Option `key` of `m`, an int. */
static int option_int(const fg_method_config *m, const char *key) {
  char text[32];
  FGT_OK(fg_method_option_text(m, key, text, sizeof text));
  return atoi(text);
}

/* `compat` as the option's list ("[noop_writeback]"); without `hypernet`, none; `generate` always
 * or if_better. */
static void setup_generate(round_fixture *f, const char *compat, int hypernet, const char *generate) {
  fgt_setup_cpu(1);
  memset(f, 0, sizeof *f);
  f->ops = fg_method_find("hypemefed");
  cr_assert_not_null(f->ops);
  char compat_set[96];
  snprintf(compat_set, sizeof compat_set, "compat=%s", compat);
  char generate_set[64];
  snprintf(generate_set, sizeof generate_set, "generate=%s", generate);
  const char *set[] = {compat_set, "hn_epochs=3", generate_set, "hypernet=none"};
  FGT_OK(fg_method_config_with("hypemefed", "vgg-me", set, hypernet ? 3 : 4, &f->mc));
  fg_model_spec base = tiny_vgg();
  FGT_OK(f->ops->plan(&f->mc, &base, &f->mp));
  cr_assert_eq(f->mp.n_levels, BLOCKS);
  FGT_OK(fg_model_build(&f->mp.global, &f->global));
  int64_t n = fg_graph_state_numel(f->global);
  f->global_state = malloc((size_t)n * sizeof(float));
  f->result = malloc((size_t)n * sizeof(float));
  fgt_fill_uniform(f->global_state, (size_t)n, 11, -0.3f, 0.3f);
  for (int s = 0; s < P; s++) {
    FGT_OK(fg_model_build(&f->mp.levels[slot_level(s)].spec, &f->level[s]));
    int64_t m = fg_graph_state_numel(f->level[s]);
    f->trained[s] = malloc((size_t)m * sizeof(float));
    fgt_fill_uniform(f->trained[s], (size_t)m, 100 + (uint64_t)s, -0.3f, 0.3f);
    fg_channel_select sel = {FG_CHANNELS_FIRST, 0, 0, 0};
    FGT_OK(fg_index_plan_build(f->global, f->level[s], &sel, &f->plan[s]));
  }
}

static void setup(round_fixture *f, const char *compat, int hypernet) { setup_generate(f, compat, hypernet, "always"); }

/* What the server does in a round with participants 0..P-1, into f->result. */
static void run_round(round_fixture *f) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_method_server *ms = NULL;
  FGT_OK(f->ops->server_create(&f->mc, &f->mp, f->global, 7, 10, P, fg_host_device(), &ledger, &ms));
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, fg_graph_state_numel(f->global), &ledger));
  int levels[P];
  int np = fg_graph_param_count(f->global);
  double *scale = malloc((size_t)np * sizeof *scale);
  for (int s = 0; s < P; s++) {
    for (int i = 0; i < np; i++) scale[i] = f->ops->tensor_weight(&f->mc, s, P, fg_graph_param(f->global, i));
    FGT_OK(fg_aggregator_add_scaled(&agg, &f->plan[s], f->global, f->level[s], f->trained[s], 1.0, NULL, scale));
    FGT_OK(f->ops->server_collect(ms, s, s, slot_level(s), f->level[s], NULL, f->trained[s]));
    levels[s] = slot_level(s);
  }
  FGT_OK(f->ops->server_complete(ms, 0, levels, P, &agg, f->global, f->global_state));
  FGT_OK(f->ops->server_report(ms, 0, f->report, sizeof f->report));
  FGT_OK(f->ops->server_report(ms, 1, f->summary, sizeof f->summary));
  memcpy(f->result, f->global_state, (size_t)fg_graph_state_numel(f->global) * sizeof(float));
  fg_aggregator_finish(&agg, f->result);
  free(scale);
  fg_aggregator_free(&agg);
  f->ops->server_free(ms);
}

static void teardown(round_fixture *f) {
  for (int s = 0; s < P; s++) {
    fg_index_plan_free(&f->plan[s]);
    fg_graph_free(f->level[s]);
    free(f->trained[s]);
  }
  fg_graph_free(f->global);
  free(f->global_state);
  free(f->result);
  fg_method_config_free(&f->mc);
}

/* Participant s's value of tensor `name` (NULL when its level lacks it). */
static const float *slot_tensor(const round_fixture *f, int s, const char *name) {
  int i = fg_graph_find_param(f->level[s], name);
  return i < 0 ? NULL : f->trained[s] + fg_graph_param(f->level[s], i)->offset;
}

static const fg_param *global_param(const round_fixture *f, const char *name) {
  int i = fg_graph_find_param(f->global, name);
  cr_assert_geq(i, 0, "%s", name);
  return fg_graph_param(f->global, i);
}

/* result[name] == sum_s w_s v_s / sum_s w_s, v_s = given[s] or else the participant's own value
 * or else the global value. */
static void expect_mean(const round_fixture *f, const char *name, const float *const given[P], const double w[P]) {
  const fg_param *p = global_param(f, name);
  double *want = malloc((size_t)p->numel * sizeof *want);
  double wsum = 0;
  for (int s = 0; s < P; s++) wsum += w[s];
  for (int64_t k = 0; k < p->numel; k++) {
    double acc = 0;
    for (int s = 0; s < P; s++) {
      const float *v = given && given[s] ? given[s] : slot_tensor(f, s, name);
      if (!v) v = f->global_state + p->offset;
      acc += w[s] * (double)v[k];
    }
    want[k] = acc / wsum;
  }
  char msg[256];
  cr_assert(fgt_allclose(f->result + p->offset, want, (size_t)p->numel, 1e-6, 1e-5, msg, sizeof msg), "%s: %s",
            name, msg);
  free(want);
}

static const double uniform[P] = {1, 1, 1};

Test(hypemefed, stale_copies_without_hypernetworks) {
  round_fixture f;
  setup(&f, "[]", 0);
  run_round(&f);
  const char *names[] = {"stem.conv1.weight",  "exit1.conv2.weight", "exit1.head.bias",   "exit2.conv1.weight",
                         "exit2.bn2.running_var", "exit3.conv2.weight", "exit3.head.weight", "exit3.bn1.bias"};
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) expect_mean(&f, names[i], NULL, uniform);
  teardown(&f);
}

/* What an independent training of pair k's hypernetwork gives: the network, its last-epoch MSE
 * and the stale (global) kernel's MSE on the same targets, both in double precision here. */
typedef struct pair_training {
  fg_hypernet *net;
  double hn_mse, stale_mse;
  int pairs;
} pair_training;

/* The hypernetwork of pair k (block j conv c -> block j+1 conv c) as the method creates it,
 * trained here on the participants that have block j+1. */
static pair_training trained_net(round_fixture *f, int k, int j, int c, fg_ledger *ledger) {
  char src[64], tgt[64];
  snprintf(src, sizeof src, "exit%d.conv%d.weight", j, c);
  snprintf(tgt, sizeof tgt, "exit%d.conv%d.weight", j + 1, c);
  int64_t ss[4], ts[4];
  const fg_param *sp = global_param(f, src), *tp = global_param(f, tgt);
  for (int d = 0; d < 4; d++) ss[d] = sp->shape[d], ts[d] = tp->shape[d];
  fg_hypernet_desc d = fg_hypernet_defaults(FG_HYPERNET_LRF, ss, ts);
  d.rank = option_int(&f->mc, "rank");
  d.hidden = 512;
  d.lr = 5e-4f;
  d.epochs = option_int(&f->mc, "hn_epochs");
  d.max_pairs = P;
  pair_training t = {NULL, 0, 0, 0};
  FGT_OK(fg_hypernet_create(&d, fg_rng_key(7, FG_RNG_INIT, 1u << 20, (uint64_t)k), ledger, &t.net));
  const float *xs[P], *ys[P];
  int m = 0;
  for (int s = 0; s < P; s++)
    if (s + 1 >= j + 1) {
      xs[m] = slot_tensor(f, s, src);
      ys[m] = slot_tensor(f, s, tgt);
      m++;
    }
  FGT_OK(fg_hypernet_train(t.net, m, xs, ys, fg_rng_key(7, FG_RNG_SERVER, 0, (uint64_t)k), NULL, &t.hn_mse));
  const float *stale = f->global_state + tp->offset;
  double sum = 0;
  for (int i = 0; i < m; i++)
    for (int64_t e = 0; e < tp->numel; e++) sum += ((double)ys[i][e] - stale[e]) * ((double)ys[i][e] - stale[e]);
  t.stale_mse = sum / ((double)m * (double)tp->numel);
  t.pairs = m;
  return t;
}

/* The record of pair "b{j}c{c}-b{j+1}c{c}" in the round's report. */
static const cJSON *pair_record(const cJSON *report, int j, int c) {
  char name[32];
  snprintf(name, sizeof name, "b%dc%d-b%dc%d", j, c, j + 1, c);
  const cJSON *e;
  cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(report, "hypernet")) {
    const cJSON *pair = cJSON_GetObjectItemCaseSensitive(e, "pair");
    if (cJSON_IsString(pair) && strcmp(pair->valuestring, name) == 0) return e;
  }
  cr_assert_fail("no record of pair %s", name);
  return NULL;
}

/* The pair's record says it trained on t's pairs with t's MSEs, and generated for `generated_for`
 * participants; the summary counts the round when it generated. */
static void expect_record(const round_fixture *f, int j, int c, const pair_training *t, int generated_for) {
  cJSON *report = cJSON_Parse(f->report), *summary = cJSON_Parse(f->summary);
  cr_assert_not_null(report, "%s", f->report);
  cr_assert_not_null(summary, "%s", f->summary);
  const cJSON *r = pair_record(report, j, c);
  cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r, "training_pairs")->valueint, t->pairs);
  double hn = cJSON_GetObjectItemCaseSensitive(r, "hn_mse")->valuedouble;
  double stale = cJSON_GetObjectItemCaseSensitive(r, "stale_mse")->valuedouble;
  cr_assert(fabs(hn - t->hn_mse) <= 1e-6 * fabs(t->hn_mse) + 1e-12, "hn_mse %.9g, trained here %.9g", hn, t->hn_mse);
  cr_assert(fabs(stale - t->stale_mse) <= 1e-6 * fabs(t->stale_mse) + 1e-12, "stale_mse %.9g, computed here %.9g",
            stale, t->stale_mse);
  cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "generated")), generated_for > 0);
  cr_assert_eq(cJSON_GetObjectItemCaseSensitive(r, "generated_for")->valueint, generated_for);
  char name[32];
  snprintf(name, sizeof name, "b%dc%d-b%dc%d", j, c, j + 1, c);
  const cJSON *counts = cJSON_GetObjectItemCaseSensitive(summary, "hypernet_rounds_generated");
  cr_assert_eq(cJSON_GetObjectItemCaseSensitive(counts, name)->valueint, generated_for > 0);
  cJSON_Delete(report);
  cJSON_Delete(summary);
}

/* generate always: the aggregate of every generated kernel is the mean with the kernels generated
 * here (the chain for depth 1), and each pair's record holds what was computed here. */
static void expect_generated(round_fixture *f) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "nets", 0);
  for (int c = 1; c <= 2; c++) {
    pair_training h12 = trained_net(f, c - 1, 1, c, &ledger), h23 = trained_net(f, 1 + c, 2, c, &ledger);
    char e2[64], e3[64], e1[64];
    snprintf(e1, sizeof e1, "exit1.conv%d.weight", c);
    snprintf(e2, sizeof e2, "exit2.conv%d.weight", c);
    snprintf(e3, sizeof e3, "exit3.conv%d.weight", c);
    int64_t n2 = global_param(f, e2)->numel, n3 = global_param(f, e3)->numel;
    float *gen2 = malloc((size_t)n2 * sizeof(float)), *gen3_0 = malloc((size_t)n3 * sizeof(float)),
          *gen3_1 = malloc((size_t)n3 * sizeof(float));
    /* depth 1: block 2 from its block 1, block 3 from that generated block 2 (the chain) */
    FGT_OK(fg_hypernet_generate(h12.net, slot_tensor(f, 0, e1), gen2));
    FGT_OK(fg_hypernet_generate(h23.net, gen2, gen3_0));
    /* depth 2: block 3 from its trained block 2 */
    FGT_OK(fg_hypernet_generate(h23.net, slot_tensor(f, 1, e2), gen3_1));
    const float *given2[P] = {gen2, NULL, NULL}, *given3[P] = {gen3_0, gen3_1, NULL};
    expect_mean(f, e2, given2, uniform);
    expect_mean(f, e3, given3, uniform);
    /* the generated kernels differ from the stale ones they replace */
    const float *stale = f->global_state + global_param(f, e2)->offset;
    double diff = 0;
    for (int64_t k = 0; k < n2; k++) diff += fabs((double)gen2[k] - stale[k]);
    cr_assert_gt(diff, 1e-3);
    expect_record(f, 1, c, &h12, 1);
    expect_record(f, 2, c, &h23, 2);
    free(gen2);
    free(gen3_0);
    free(gen3_1);
    fg_hypernet_free(h12.net);
    fg_hypernet_free(h23.net);
  }
  /* what is never generated stays stale: biases, BN, heads */
  expect_mean(f, "exit2.conv1.bias", NULL, uniform);
  expect_mean(f, "exit3.bn2.weight", NULL, uniform);
  expect_mean(f, "exit3.head.bias", NULL, uniform);
}

Test(hypemefed, generated_kernels_land_in_the_shallow_copies) {
  round_fixture f;
  setup(&f, "[]", 1);
  run_round(&f);
  expect_generated(&f);
  teardown(&f);
}

/* The deep participants' exit2.conv1 targets equal the global kernel: the stale copy predicts them
 * exactly (MSE 0), so no hypernetwork can beat it. */
static void stale_kernel_exact(round_fixture *f) {
  const fg_param *g = global_param(f, "exit2.conv1.weight");
  for (int s = 1; s < P; s++) {
    const fg_param *p = fg_graph_param(f->level[s], fg_graph_find_param(f->level[s], "exit2.conv1.weight"));
    memcpy(f->trained[s] + p->offset, f->global_state + g->offset, (size_t)g->numel * sizeof(float));
  }
}

/* generate always: the shallow participants' missing kernels are generated even where the stale
 * kernel predicts better (the published algorithm). */
Test(hypemefed, always_generates_where_stale_kernels_predict_better) {
  round_fixture f;
  setup_generate(&f, "[]", 1, "always");
  stale_kernel_exact(&f);
  run_round(&f);
  expect_generated(&f);
  teardown(&f);
}

/* generate if_better: a pair generates exactly when its hypernetwork's last-epoch MSE, trained
 * here, is below the stale kernel's MSE, computed here. */
Test(hypemefed, if_better_generates_only_while_beating_the_stale_kernel) {
  round_fixture f;
  setup_generate(&f, "[]", 1, "if_better");
  stale_kernel_exact(&f);
  run_round(&f);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "nets", 0);
  for (int c = 1; c <= 2; c++) {
    pair_training h12 = trained_net(&f, c - 1, 1, c, &ledger);
    char e1[64], e2[64];
    snprintf(e1, sizeof e1, "exit1.conv%d.weight", c);
    snprintf(e2, sizeof e2, "exit2.conv%d.weight", c);
    int beats = h12.hn_mse < h12.stale_mse;
    /* the exact stale kernel of conv 1 cannot be beaten; conv 2's random targets are */
    cr_assert_eq(beats, c == 2, "pair %d: hn %.9g, stale %.9g", c, h12.hn_mse, h12.stale_mse);
    int64_t n2 = global_param(&f, e2)->numel;
    float *gen2 = malloc((size_t)n2 * sizeof(float));
    FGT_OK(fg_hypernet_generate(h12.net, slot_tensor(&f, 0, e1), gen2));
    const float *given2[P] = {beats ? gen2 : NULL, NULL, NULL};
    expect_mean(&f, e2, given2, uniform);
    expect_record(&f, 1, c, &h12, beats ? 1 : 0);
    free(gen2);
    fg_hypernet_free(h12.net);
  }
  teardown(&f);
}

Test(hypemefed, noop_writeback_keeps_stale_kernels) {
  round_fixture f;
  setup(&f, "[noop_writeback]", 1);
  run_round(&f);
  expect_mean(&f, "exit2.conv1.weight", NULL, uniform);
  expect_mean(&f, "exit3.conv2.weight", NULL, uniform);
  teardown(&f);
}

Test(hypemefed, duplicated_key_weights) {
  round_fixture f;
  setup(&f, "[noop_writeback, dup_avg]", 0);
  run_round(&f);
  /* hypemefed.md §4.2: exit-block tensors w_1 / P^2 + (P + 1) / P^2 sum_{j >= 2} w_j; stem the mean */
  const double dup[P] = {1.0 / (P * P), (P + 1.0) / (P * P), (P + 1.0) / (P * P)};
  expect_mean(&f, "stem.conv1.weight", NULL, uniform);
  expect_mean(&f, "stem.bn2.running_mean", NULL, uniform);
  expect_mean(&f, "exit1.conv1.weight", NULL, dup);
  expect_mean(&f, "exit2.bn1.weight", NULL, dup);
  expect_mean(&f, "exit3.head.weight", NULL, dup);
  teardown(&f);
}

Test(hypemefed, multi_exit_plans) {
  fgt_setup_cpu(1);
  fg_model_spec base = tiny_vgg();
  const char *names[] = {"hypemefed", "multiexit"};
  for (int m = 0; m < 2; m++) {
    fg_method_config mc;
    FGT_OK(fg_method_config_default(names[m], "vgg-me", &mc));
    fg_method_plan mp;
    FGT_OK(fg_method_find(names[m])->plan(&mc, &base, &mp));
    cr_assert_eq(mp.n_levels, 3);
    for (int l = 0; l < 3; l++) cr_assert_eq(fg_spec_outputs(&mp.levels[l].spec), 3 - l);
    cr_assert(mp.local_optim_set);
    cr_assert_eq(mp.local_optim.kind, FG_OPTIM_ADAM);
    cr_assert_float_eq(mp.local_optim.adam.lr, 5e-4f, 1e-9);
    cr_assert_float_eq(mp.local_optim.adam.weight_decay, 5e-5f, 1e-10);
    cr_assert_eq(mp.weighting, FG_WEIGHT_COUNT);
    cr_assert(!mp.level_by_index);
    fg_method_config_free(&mc);
    const char *by_index[] = {"levels=index"};
    FGT_OK(fg_method_config_with(names[m], "vgg-me", by_index, 1, &mc));
    FGT_OK(fg_method_find(names[m])->plan(&mc, &base, &mp));
    cr_assert(mp.level_by_index);
    fg_method_config_free(&mc);
  }
  /* hypemefed averages uniformly: sample weighting is refused; dup_avg needs vgg-me */
  fg_method_config mc;
  FGT_OK(fg_method_config_default("hypemefed", "vgg-me", &mc));
  fg_method_plan mp;
  mc.weighting = FG_WEIGHT_SAMPLES;
  cr_assert_eq(fg_method_find("hypemefed")->plan(&mc, &base, &mp), FG_ERR_CONFIG);
  fg_method_config_free(&mc);
  const char *dup_avg[] = {"compat=[dup_avg]"};
  FGT_OK(fg_method_config_with("hypemefed", "cnn", dup_avg, 1, &mc));
  fg_model_spec cnn = base;
  cnn.arch = "cnn";
  cnn.width = 0;
  cr_assert_eq(fg_method_find("hypemefed")->plan(&mc, &cnn, &mp), FG_ERR_CONFIG);
  fg_method_config_free(&mc);
}
