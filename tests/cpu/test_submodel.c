/* Sub-model index plans, extraction and streaming aggregation, checked against a naive reference
 * that maps every sub element to its global coordinates from the spec's formulas alone (no plan,
 * no graph walk), against hand-computed numbers, and for FedRolex's coverage and nesting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/mem/ledger.h"
#include "engine/nn/models.h"
#include "fl/submodel.h"

static void setup(void) { fgt_setup_cpu(1); }
TestSuite(submodel, .init = setup);

/* ------------------------------------------------------------------------------------------ */
/* Fixtures                                                                                    */

typedef struct client_spec {
  double rate;
  int depth;
} client_spec;

static fg_graph *model(const char *arch, double width, int c, int h, int w, int exits, int depth, double rate) {
  fg_model_spec s = {.arch = arch, .width = width, .in_c = c, .in_h = h, .in_w = w, .classes = 10,
                     .exits = exits, .depth = depth, .rate = rate};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

typedef struct scenario {
  const char *arch;
  double width;
  int c, h, w, exits;
  client_spec clients[4];
  int n_clients;
} scenario;

static const scenario SCENARIOS[] = {
    {"cnn", 16, 1, 28, 28, 1, {{1.0, 0}, {0.5, 0}, {0.25, 0}, {0.5, 2}}, 4},
    {"resnet18", 0.25, 3, 32, 32, 0, {{0.5, 0}, {0.25, 0}}, 2},
    {"vgg-me", 0, 1, 28, 28, 0, {{0.5, 0}, {0.25, 0}, {0.5, 2}}, 3},
};
#define N_SCENARIOS ((int)(sizeof SCENARIOS / sizeof SCENARIOS[0]))

static fg_graph *scenario_model(const scenario *s, double rate, int depth) {
  return model(s->arch, s->width, s->c, s->h, s->w, s->exits, depth, rate);
}

static float *random_state(const fg_graph *g, uint64_t seed) {
  int64_t n = fg_graph_state_numel(g);
  float *x = malloc((size_t)n * sizeof *x);
  cr_assert_not_null(x);
  fgt_fill_uniform(x, (size_t)n, seed, -1.0f, 1.0f);
  return x;
}

/* ------------------------------------------------------------------------------------------ */
/* The naive reference                                                                         */

/* Spatial positions behind each input feature of a linear layer: the flatten heads of vgg-me on
 * 1x28x28 see 7x7, 3x3 and 1x1 maps (28 -> 14 stem pool -> 7 -> 3 -> 1); every other linear reads
 * a global average pool. */
static int64_t features_per_channel(const char *tensor) {
  if (strcmp(tensor, "exit1.head.weight") == 0) return 49;
  if (strcmp(tensor, "exit2.head.weight") == 0) return 9;
  return 1;
}

/* Global index along one dimension (global extent K, sub extent k) of sub index c, straight from
 * the spec: equal extents (inputs, classes, full-width layers) keep c; FIRST keeps c; ROLLING
 * takes the window starting at (K - j mod K) mod K. */
static int64_t ref_channel(int64_t K, int64_t k, const fg_channel_select *sel, int64_t c) {
  if (k == K || sel->policy == FG_CHANNELS_FIRST) return c;
  int64_t start = (K - sel->round % K) % K;
  return (start + c) % K;
}

/* Global coordinate along dim d of a sub tensor, hw features per channel along dim 1. */
static int64_t ref_coord(const fg_param *g, const fg_param *s, int d, int64_t c, int64_t hw,
                         const fg_channel_select *sel) {
  if (d >= 2) return c;
  if (d == 1 && hw > 1) {
    if (s->shape[1] == g->shape[1]) return c;
    return ref_channel(g->shape[1] / hw, s->shape[1] / hw, sel, c / hw) * hw + c % hw;
  }
  return ref_channel(g->shape[d], s->shape[d], sel, c);
}

/* Linear global index of every element of sub tensor `s` (row-major coordinates). */
static void ref_tensor_index(const fg_param *g, const fg_param *s, const fg_channel_select *sel, int64_t *gidx) {
  int64_t hw = features_per_channel(s->name);
  for (int64_t e = 0; e < s->numel; e++) {
    int64_t rest = e, coord[4] = {0, 0, 0, 0};
    for (int d = s->ndim - 1; d >= 0; d--) {
      coord[d] = rest % s->shape[d];
      rest /= s->shape[d];
    }
    int64_t ge = 0;
    for (int d = 0; d < s->ndim; d++) ge = ge * g->shape[d] + ref_coord(g, s, d, coord[d], hw, sel);
    gidx[e] = g->offset + ge;
  }
}

/* One client into dense reference accumulators: sum[e] += w x, weight[e] += w, classifier rows
 * (weight and bias of the sub graph's outputs) only for classes in the mask. */
static void ref_add(const fg_graph *G, const fg_graph *S, const fg_channel_select *sel, const float *x, double w,
                    const uint8_t *mask, double *sum, double *weight) {
  for (int t = 0; t < fg_graph_param_count(S); t++) {
    const fg_param *s = fg_graph_param(S, t);
    int gi = fg_graph_find_param(G, s->name);
    cr_assert_geq(gi, 0, "%s", s->name);
    const fg_param *g = fg_graph_param(G, gi);
    int classifier = fg_graph_node(S, s->node)->output >= 0;
    int64_t per_row = s->numel / s->shape[0];
    int64_t *gidx = malloc((size_t)s->numel * sizeof *gidx);
    ref_tensor_index(g, s, sel, gidx);
    for (int64_t e = 0; e < s->numel; e++) {
      int64_t row = e / per_row; /* classes are kept, so the sub row is the class */
      if (classifier && mask && !mask[row]) continue;
      sum[gidx[e]] += w * (double)x[s->offset + e];
      weight[gidx[e]] += w;
    }
    free(gidx);
  }
}

static void ref_finish(const double *sum, const double *weight, int64_t n, float *global) {
  for (int64_t e = 0; e < n; e++)
    if (weight[e] > 0) global[e] = (float)(sum[e] / weight[e]);
}

static int64_t first_difference(const float *a, const float *b, int64_t n) {
  for (int64_t e = 0; e < n; e++)
    if (memcmp(&a[e], &b[e], sizeof(float)) != 0) return e;
  return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Aggregation equals the dense reference                                                      */

static void check_scenario(const scenario *sc, const fg_channel_select *sel, const uint8_t *const *masks) {
  fg_graph *G = scenario_model(sc, 1.0, 0);
  int64_t n = fg_graph_state_numel(G);
  float *global = random_state(G, 1000);
  float *expect = malloc((size_t)n * sizeof *expect);
  memcpy(expect, global, (size_t)n * sizeof *expect);
  double *rsum = calloc((size_t)n, sizeof *rsum), *rweight = calloc((size_t)n, sizeof *rweight);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, n, &ledger));
  for (int k = 0; k < sc->n_clients; k++) {
    fg_graph *S = scenario_model(sc, sc->clients[k].rate, sc->clients[k].depth);
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S, sel, &plan));
    float *x = random_state(S, 2000 + (uint64_t)k);
    double w = 0.5 + 3.0 * k + 0.25 * k * k;
    const uint8_t *mask = masks ? masks[k] : NULL;
    FGT_OK(fg_aggregator_add(&agg, &plan, G, S, x, w, mask));
    ref_add(G, S, sel, x, w, mask, rsum, rweight);
    free(x);
    fg_index_plan_free(&plan);
    fg_graph_free(S);
  }
  fg_aggregator_finish(&agg, global);
  ref_finish(rsum, rweight, n, expect);
  int64_t bad = first_difference(global, expect, n);
  cr_assert_eq(bad, -1, "%s, policy %d round %lld: element %lld is %.9g, the reference %.9g", sc->arch,
               (int)sel->policy, (long long)sel->round, (long long)bad, bad >= 0 ? global[bad] : 0.0,
               bad >= 0 ? expect[bad] : 0.0);
  /* the coverage the aggregator recorded is the reference's, element by element */
  const double *aw = agg.weight.ptr;
  for (int64_t e = 0; e < n; e++)
    if (aw[e] != rweight[e])
      cr_assert_fail("%s: weight of element %lld is %g, the reference %g", sc->arch, (long long)e, aw[e], rweight[e]);
  fg_aggregator_free(&agg);
  cr_assert_eq(ledger.current, 0, "the accumulators are released");
  free(rsum);
  free(rweight);
  free(global);
  free(expect);
  fg_graph_free(G);
}

Test(submodel, count_mean_equals_dense_reference_first_k) {
  fg_channel_select sel = {.policy = FG_CHANNELS_FIRST};
  for (int s = 0; s < N_SCENARIOS; s++) check_scenario(&SCENARIOS[s], &sel, NULL);
}

Test(submodel, count_mean_equals_dense_reference_rolling) {
  static const int64_t rounds[] = {0, 1, 5, 21, 77};
  for (int r = 0; r < 5; r++) {
    fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = rounds[r]};
    for (int s = 0; s < N_SCENARIOS; s++) check_scenario(&SCENARIOS[s], &sel, NULL);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Extraction                                                                                  */

Test(submodel, extract_then_aggregate_reproduces_the_global_values) {
  fg_channel_select sels[2] = {{.policy = FG_CHANNELS_FIRST}, {.policy = FG_CHANNELS_ROLLING, .round = 11}};
  for (int s = 0; s < N_SCENARIOS; s++) {
    const scenario *sc = &SCENARIOS[s];
    fg_graph *G = scenario_model(sc, 1.0, 0);
    int64_t n = fg_graph_state_numel(G);
    float *global = random_state(G, 31);
    float *out = malloc((size_t)n * sizeof *out);
    fg_ledger ledger;
    fg_ledger_init(&ledger, "server", 0);
    fg_aggregator agg;
    FGT_OK(fg_aggregator_init(&agg, n, &ledger));
    for (int p = 0; p < 2; p++) {
      for (int k = 0; k < sc->n_clients; k++) {
        fg_graph *S = scenario_model(sc, sc->clients[k].rate, sc->clients[k].depth);
        int64_t m = fg_graph_state_numel(S);
        fg_index_plan plan;
        FGT_OK(fg_index_plan_build(G, S, &sels[p], &plan));
        float *x = malloc((size_t)m * sizeof *x);
        FGT_OK(fg_submodel_extract(&plan, G, S, global, x));
        /* every sub element is the global element at the reference coordinates */
        for (int t = 0; t < fg_graph_param_count(S); t++) {
          const fg_param *sp = fg_graph_param(S, t);
          const fg_param *gp = fg_graph_param(G, fg_graph_find_param(G, sp->name));
          int64_t *gidx = malloc((size_t)sp->numel * sizeof *gidx);
          ref_tensor_index(gp, sp, &sels[p], gidx);
          for (int64_t e = 0; e < sp->numel; e++)
            if (x[sp->offset + e] != global[gidx[e]])
              cr_assert_fail("%s rate %g: %s[%lld] is %g, global[%lld] %g", sc->arch, sc->clients[k].rate,
                             sp->name, (long long)e, x[sp->offset + e], (long long)gidx[e], global[gidx[e]]);
          free(gidx);
        }
        /* one client of weight w: covered elements come back exactly, the rest keep a sentinel */
        fg_aggregator_reset(&agg);
        FGT_OK(fg_aggregator_add(&agg, &plan, G, S, x, 3.7, NULL));
        for (int64_t e = 0; e < n; e++) out[e] = -12345.0f;
        fg_aggregator_finish(&agg, out);
        int64_t covered = 0;
        for (int64_t e = 0; e < n; e++) {
          if (out[e] == -12345.0f) continue;
          covered++;
          if (memcmp(&out[e], &global[e], sizeof(float)) != 0)
            cr_assert_fail("%s: element %lld came back as %.9g, was %.9g", sc->arch, (long long)e, out[e], global[e]);
        }
        cr_assert_eq(covered, m, "%s rate %g: %lld elements covered, the sub-model has %lld", sc->arch,
                     sc->clients[k].rate, (long long)covered, (long long)m);
        free(x);
        fg_index_plan_free(&plan);
        fg_graph_free(S);
      }
    }
    fg_aggregator_free(&agg);
    free(global);
    free(out);
    fg_graph_free(G);
  }
}

Test(submodel, full_model_with_sample_weight_is_bit_identical) {
  for (int s = 0; s < N_SCENARIOS; s++) {
    const scenario *sc = &SCENARIOS[s];
    fg_graph *G = scenario_model(sc, 1.0, 0), *S = scenario_model(sc, 1.0, 0);
    int64_t n = fg_graph_state_numel(G);
    float *global = random_state(G, 77), *x = malloc((size_t)n * sizeof *x), *out = calloc((size_t)n, sizeof *out);
    fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = 3};
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S, &sel, &plan));
    for (int t = 0; t < plan.n; t++)
      cr_assert(plan.maps[t].out_idx == NULL && plan.maps[t].in_idx == NULL, "rate 1 is the identity");
    FGT_OK(fg_submodel_extract(&plan, G, S, global, x));
    cr_assert_eq(first_difference(x, global, n), -1);
    fg_ledger ledger;
    fg_ledger_init(&ledger, "server", 0);
    fg_aggregator agg;
    FGT_OK(fg_aggregator_init(&agg, n, &ledger));
    FGT_OK(fg_aggregator_add(&agg, &plan, G, S, x, 60000.0, NULL));
    fg_aggregator_finish(&agg, out);
    cr_assert_eq(first_difference(out, global, n), -1, "%s", sc->arch);
    fg_aggregator_free(&agg);
    fg_index_plan_free(&plan);
    free(global);
    free(x);
    free(out);
    fg_graph_free(G);
    fg_graph_free(S);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* Hand-computed weighted means                                                                */

/* input 2x1x1 -> flatten -> fc1 (hidden) -> ReLU -> out (classes 2, an output). */
static fg_graph *tiny(int64_t hidden) {
  fg_graph *g = fg_graph_create(2, 1, 1);
  int x = fg_graph_flatten(g, 0, "flat");
  x = fg_graph_linear(g, x, hidden, 1, "fc1");
  x = fg_graph_relu(g, x, "act");
  fg_graph_mark_output(g, fg_graph_linear(g, x, 2, 1, "out"));
  FGT_OK(fg_graph_status(g));
  return g;
}

Test(submodel, weighted_mean_hand_computed) {
  fg_graph *G = tiny(3), *S = tiny(2);
  cr_assert_eq(fg_graph_state_numel(G), 17);
  cr_assert_eq(fg_graph_state_numel(S), 12);
  /* global layout: fc1.weight (3,2), fc1.bias [3], out.weight (2,3), out.bias [2] */
  const float a[17] = {1, 2, 3, 4, 5, 6, /**/ 1, 1, 1, /**/ 1, 2, 3, 4, 5, 6, /**/ 0, 0};
  /* sub layout: fc1.weight (2,2), fc1.bias [2], out.weight (2,2), out.bias [2] */
  const float b[12] = {5, 6, 7, 8, /**/ 5, 9, /**/ 9, 10, 12, 13, /**/ 4, 8};
  fg_channel_select sel = {.policy = FG_CHANNELS_FIRST};
  fg_index_plan pa, pb;
  FGT_OK(fg_index_plan_build(G, G, &sel, &pa));
  FGT_OK(fg_index_plan_build(G, S, &sel, &pb));
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, 17, &ledger));

  /* samples: A has 1, B has 3 -> (a + 3 b) / 4 where B holds the element, else a */
  FGT_OK(fg_aggregator_add(&agg, &pa, G, G, a, 1.0, NULL));
  FGT_OK(fg_aggregator_add(&agg, &pb, G, S, b, 3.0, NULL));
  float out[17];
  for (int e = 0; e < 17; e++) out[e] = -1;
  fg_aggregator_finish(&agg, out);
  const float want_samples[17] = {4, 5, 6, 7, 5, 6, /**/ 4, 7, 1, /**/ 7, 8, 3, 10, 11, 6, /**/ 3, 6};
  for (int e = 0; e < 17; e++) cr_assert_eq(out[e], want_samples[e], "samples: element %d is %g, want %g", e, out[e], want_samples[e]);

  /* count mean: (a + b) / 2 where B holds the element */
  fg_aggregator_reset(&agg);
  FGT_OK(fg_aggregator_add(&agg, &pa, G, G, a, 1.0, NULL));
  FGT_OK(fg_aggregator_add(&agg, &pb, G, S, b, 1.0, NULL));
  fg_aggregator_finish(&agg, out);
  const float want_count[17] = {3, 4, 5, 6, 5, 6, /**/ 3, 5, 1, /**/ 5, 6, 3, 8, 9, 6, /**/ 2, 4};
  for (int e = 0; e < 17; e++) cr_assert_eq(out[e], want_count[e], "count: element %d is %g, want %g", e, out[e], want_count[e]);

  /* only B uploads: the third hidden unit keeps its old value */
  const float old[17] = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15, -16, -17};
  memcpy(out, old, sizeof out);
  fg_aggregator_reset(&agg);
  FGT_OK(fg_aggregator_add(&agg, &pb, G, S, b, 3.0, NULL));
  fg_aggregator_finish(&agg, out);
  const float want_b[17] = {5, 6, 7, 8, -5, -6, /**/ 5, 9, -9, /**/ 9, 10, -12, 12, 13, -15, /**/ 4, 8};
  for (int e = 0; e < 17; e++) cr_assert_eq(out[e], want_b[e], "B only: element %d is %g, want %g", e, out[e], want_b[e]);

  /* a hidden linear rolls like a conv: K = 3, round 1 keeps hidden units (2, 0); the classifier
   * keeps both classes in order and reads the same two units */
  fg_channel_select roll = {.policy = FG_CHANNELS_ROLLING, .round = 1};
  fg_index_plan pr;
  FGT_OK(fg_index_plan_build(G, S, &roll, &pr));
  float sub[12];
  FGT_OK(fg_submodel_extract(&pr, G, S, a, sub));
  const float want_roll[12] = {5, 6, 1, 2, /**/ 1, 1, /**/ 3, 1, 6, 4, /**/ 0, 0};
  for (int e = 0; e < 12; e++) cr_assert_eq(sub[e], want_roll[e], "rolling: element %d is %g, want %g", e, sub[e], want_roll[e]);
  fg_index_plan_free(&pr);

  fg_aggregator_free(&agg);
  fg_index_plan_free(&pa);
  fg_index_plan_free(&pb);
  fg_graph_free(G);
  fg_graph_free(S);
}

/* ------------------------------------------------------------------------------------------ */
/* Depth prefix                                                                                */

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

Test(submodel, depth_prefix_covers_blocks_and_exits_one_and_two) {
  fg_graph *G = model("cnn", 16, 1, 28, 28, 1, 0, 1.0);
  int64_t n = fg_graph_state_numel(G);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, n, &ledger));
  const double rates[2] = {1.0, 0.5};
  for (int r = 0; r < 2; r++) {
    fg_graph *S = model("cnn", 16, 1, 28, 28, 1, 2, rates[r]);
    fg_channel_select sel = {.policy = FG_CHANNELS_FIRST};
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S, &sel, &plan));
    float *x = random_state(S, 5);
    fg_aggregator_reset(&agg);
    FGT_OK(fg_aggregator_add(&agg, &plan, G, S, x, 1.0, NULL));
    const double *w = agg.weight.ptr;
    for (int t = 0; t < fg_graph_param_count(G); t++) {
      const fg_param *p = fg_graph_param(G, t);
      int in_prefix = has_prefix(p->name, "block1.") || has_prefix(p->name, "block2.") ||
                      has_prefix(p->name, "exit1.") || has_prefix(p->name, "exit2.");
      int64_t covered = 0;
      for (int64_t e = 0; e < p->numel; e++) covered += w[p->offset + e] > 0;
      if (!in_prefix) {
        cr_assert_eq(covered, 0, "%s is beyond depth 2 but covered", p->name);
        continue;
      }
      int s = fg_graph_find_param(S, p->name);
      cr_assert_geq(s, 0, "%s", p->name);
      cr_assert_eq(covered, fg_graph_param(S, s)->numel, "rate %g: %s covers %lld of %lld", rates[r], p->name,
                   (long long)covered, (long long)fg_graph_param(S, s)->numel);
      if (rates[r] == 1.0) cr_assert_eq(covered, p->numel, "%s whole at rate 1", p->name);
    }
    free(x);
    fg_index_plan_free(&plan);
    fg_graph_free(S);
  }
  fg_aggregator_free(&agg);
  fg_graph_free(G);
}

/* ------------------------------------------------------------------------------------------ */
/* FedRolex                                                                                    */

static const fg_tensor_map *map_of(const fg_index_plan *p, const fg_graph *S, const char *name) {
  int i = fg_graph_find_param(S, name);
  cr_assert_geq(i, 0, "%s", name);
  cr_assert_eq(p->maps[i].sub_param, i);
  return &p->maps[i];
}

Test(submodel, rolling_windows_cover_equally_and_nest) {
  fg_graph *G = model("cnn", 16, 1, 28, 28, 0, 0, 1.0);
  fg_graph *S[2] = {model("cnn", 16, 1, 28, 28, 0, 0, 0.25), model("cnn", 16, 1, 28, 28, 0, 0, 0.5)};
  const double rates[2] = {0.25, 0.5};
  int64_t n = fg_graph_state_numel(G);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  /* the cnn's layers have 16, 32 and 64 channels: 64 consecutive rounds are whole cycles of all */
  for (int r = 0; r < 2; r++) {
    fg_aggregator agg;
    FGT_OK(fg_aggregator_init(&agg, n, &ledger));
    float *x = calloc((size_t)fg_graph_state_numel(S[r]), sizeof *x);
    for (int64_t j = 7; j < 7 + 64; j++) {
      fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = j};
      fg_index_plan plan;
      FGT_OK(fg_index_plan_build(G, S[r], &sel, &plan));
      FGT_OK(fg_aggregator_add(&agg, &plan, G, S[r], x, 1.0, NULL));
      fg_index_plan_free(&plan);
    }
    const double *w = agg.weight.ptr;
    for (int t = 0; t < fg_graph_param_count(G); t++) {
      const fg_param *p = fg_graph_param(G, t);
      if (p->ndim != 1) continue; /* one count per channel: BN tensors and the head bias */
      double want = has_prefix(p->name, "head.") ? 64.0 : 64.0 * rates[r];
      for (int64_t c = 0; c < p->numel; c++)
        cr_assert_eq(w[p->offset + c], want, "rate %g: %s channel %lld covered %g times, want %g", rates[r],
                     p->name, (long long)c, w[p->offset + c], want);
    }
    free(x);
    fg_aggregator_free(&agg);
  }
  /* the direction of the reference code: round 1 starts at K - 1, round 3 at K - 3 */
  {
    fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = 1};
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S[0], &sel, &plan));
    const int32_t *v = map_of(&plan, S[0], "block1.bn1.weight")->out_idx;
    cr_assert(v && v[0] == 15 && v[1] == 0 && v[2] == 1 && v[3] == 2);
    fg_index_plan_free(&plan);
    sel.round = 3;
    FGT_OK(fg_index_plan_build(G, S[0], &sel, &plan));
    v = map_of(&plan, S[0], "block2.bn1.weight")->out_idx; /* K = 32, k = 8 */
    cr_assert(v && v[0] == 29 && v[2] == 31 && v[3] == 0 && v[7] == 4);
    fg_index_plan_free(&plan);
  }
  /* nesting: in one round the rate-0.25 window is the start of the rate-0.5 window */
  for (int64_t j = 0; j < 70; j += 9) {
    fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = j};
    fg_index_plan small, big;
    FGT_OK(fg_index_plan_build(G, S[0], &sel, &small));
    FGT_OK(fg_index_plan_build(G, S[1], &sel, &big));
    for (int t = 0; t < small.n; t++) {
      const fg_param *ps = fg_graph_param(S[0], t), *pb = fg_graph_param(S[1], t);
      cr_assert_str_eq(ps->name, pb->name);
      for (int d = 0; d < ps->ndim && d < 2; d++) {
        const int32_t *vs = d ? small.maps[t].in_idx : small.maps[t].out_idx;
        const int32_t *vb = d ? big.maps[t].in_idx : big.maps[t].out_idx;
        for (int64_t c = 0; c < ps->shape[d]; c++)
          cr_assert_eq(vs ? vs[c] : c, vb ? vb[c] : c, "round %lld %s dim %d entry %lld", (long long)j, ps->name, d,
                       (long long)c);
      }
    }
    fg_index_plan_free(&small);
    fg_index_plan_free(&big);
  }
  fg_graph_free(S[0]);
  fg_graph_free(S[1]);
  fg_graph_free(G);
}

/* ------------------------------------------------------------------------------------------ */
/* Residual chaining                                                                           */

static void assert_lists_equal(const int32_t *a, const int32_t *b, int64_t n, const char *what) {
  for (int64_t i = 0; i < n; i++)
    cr_assert_eq(a ? a[i] : (int32_t)i, b ? b[i] : (int32_t)i, "%s: entry %lld", what, (long long)i);
}

static void check_resnet_chaining(const fg_graph *S, const fg_index_plan *p) {
  char name[FG_NAME_CAP], what[160];
  const fg_tensor_map *stem = map_of(p, S, "stem.bn.weight");
  const int32_t *block_in = stem->out_idx;
  int64_t c_in = fg_graph_param(S, fg_graph_find_param(S, "stem.bn.weight"))->numel;
  for (int l = 1; l <= 4; l++) {
    for (int u = 0; u < 2; u++) {
      snprintf(name, sizeof name, "layer%d.%d.conv1.weight", l, u);
      snprintf(what, sizeof what, "%s inputs = block input", name);
      assert_lists_equal(map_of(p, S, name)->in_idx, block_in, c_in, what);
      snprintf(name, sizeof name, "layer%d.%d.bn2.weight", l, u);
      const fg_tensor_map *bn2 = map_of(p, S, name);
      int64_t c_out = fg_graph_param(S, fg_graph_find_param(S, name))->numel;
      snprintf(name, sizeof name, "layer%d.%d.shortcut.conv.weight", l, u);
      if (fg_graph_find_param(S, name) >= 0) {
        snprintf(what, sizeof what, "%s inputs = block input", name);
        assert_lists_equal(map_of(p, S, name)->in_idx, block_in, c_in, what);
        snprintf(name, sizeof name, "layer%d.%d.shortcut.bn.weight", l, u);
        snprintf(what, sizeof what, "layer%d.%d add: bn2 = shortcut.bn", l, u);
        assert_lists_equal(bn2->out_idx, map_of(p, S, name)->out_idx, c_out, what);
      } else {
        snprintf(what, sizeof what, "layer%d.%d add: bn2 = block input", l, u);
        cr_assert_eq(c_out, c_in);
        assert_lists_equal(bn2->out_idx, block_in, c_out, what);
      }
      block_in = bn2->out_idx;
      c_in = c_out;
    }
  }
  assert_lists_equal(map_of(p, S, "fc.weight")->in_idx, block_in, c_in, "fc inputs = layer4 output");
  cr_assert_null(map_of(p, S, "fc.weight")->out_idx, "the classifier keeps every class");
}

Test(submodel, resnet_residual_lists_chain) {
  fg_graph *G = model("resnet18", 0.25, 3, 32, 32, 0, 0, 1.0), *S = model("resnet18", 0.25, 3, 32, 32, 0, 0, 0.5);
  fg_channel_select sels[3] = {{.policy = FG_CHANNELS_FIRST},
                               {.policy = FG_CHANNELS_ROLLING, .round = 3},
                               {.policy = FG_CHANNELS_RANDOM, .round = 4, .seed = 7, .client = 2}};
  for (int s = 0; s < 3; s++) {
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S, &sels[s], &plan));
    check_resnet_chaining(S, &plan);
    fg_index_plan_free(&plan);
  }
  fg_graph_free(G);
  fg_graph_free(S);
}

/* RANDOM: sorted distinct in-range picks, the same for the same key, different across clients
 * and rounds. */
Test(submodel, random_selection_is_seeded_sorted_and_fresh) {
  fg_graph *G = model("resnet18", 0.25, 3, 32, 32, 0, 0, 1.0), *S = model("resnet18", 0.25, 3, 32, 32, 0, 0, 0.5);
  fg_channel_select base = {.policy = FG_CHANNELS_RANDOM, .round = 4, .seed = 7, .client = 2};
  fg_channel_select other_client = base, other_round = base;
  other_client.client = 3;
  other_round.round = 5;
  fg_index_plan p, q, rc, rr;
  FGT_OK(fg_index_plan_build(G, S, &base, &p));
  FGT_OK(fg_index_plan_build(G, S, &base, &q));
  FGT_OK(fg_index_plan_build(G, S, &other_client, &rc));
  FGT_OK(fg_index_plan_build(G, S, &other_round, &rr));
  int differ_client = 0, differ_round = 0;
  for (int t = 0; t < p.n; t++) {
    const fg_param *sp = fg_graph_param(S, t), *gp = fg_graph_param(G, p.maps[t].global_param);
    const int32_t *v = p.maps[t].out_idx;
    if (strcmp(sp->name, "fc.weight") == 0 || strcmp(sp->name, "fc.bias") == 0) {
      cr_assert_null(v);
      continue;
    }
    cr_assert_not_null(v, "%s: rate 0.5 keeps a strict subset", sp->name);
    for (int64_t c = 0; c < sp->shape[0]; c++) {
      cr_assert(v[c] >= 0 && v[c] < gp->shape[0], "%s[%lld] = %d", sp->name, (long long)c, v[c]);
      if (c) cr_assert_lt(v[c - 1], v[c], "%s is sorted and distinct", sp->name);
      cr_assert_eq(v[c], q.maps[t].out_idx[c], "same key, same pick");
      differ_client |= v[c] != rc.maps[t].out_idx[c];
      differ_round |= v[c] != rr.maps[t].out_idx[c];
    }
  }
  cr_assert(differ_client && differ_round);
  fg_index_plan_free(&p);
  fg_index_plan_free(&q);
  fg_index_plan_free(&rc);
  fg_index_plan_free(&rr);
  fg_graph_free(G);
  fg_graph_free(S);
}

/* ------------------------------------------------------------------------------------------ */
/* Label split                                                                                 */

Test(submodel, label_split_classifier_rows) {
  const scenario sc = {"cnn", 16, 1, 28, 28, 1, {{1.0, 0}, {0.5, 0}, {0.5, 0}}, 3};
  static const uint8_t ma[10] = {1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
  static const uint8_t mb[10] = {0, 0, 0, 1, 1, 1, 1, 1, 0, 0};
  static const uint8_t mc[10] = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0};
  const uint8_t *masks[3] = {ma, mb, mc};
  fg_channel_select sel = {.policy = FG_CHANNELS_ROLLING, .round = 2};
  check_scenario(&sc, &sel, masks);

  /* by hand on the head bias (every client holds all 10 entries) and one hidden BN bias */
  fg_graph *G = scenario_model(&sc, 1.0, 0);
  int64_t n = fg_graph_state_numel(G);
  float *global = random_state(G, 9), *old = malloc((size_t)n * sizeof *old);
  memcpy(old, global, (size_t)n * sizeof *old);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, n, &ledger));
  float *x[3];
  fg_graph *S[3];
  for (int k = 0; k < 3; k++) {
    S[k] = scenario_model(&sc, sc.clients[k].rate, 0);
    x[k] = random_state(S[k], 50 + (uint64_t)k);
    fg_index_plan plan;
    FGT_OK(fg_index_plan_build(G, S[k], &sel, &plan));
    FGT_OK(fg_aggregator_add(&agg, &plan, G, S[k], x[k], 1.0, masks[k]));
    fg_index_plan_free(&plan);
  }
  fg_aggregator_finish(&agg, global);
  int64_t hb = fg_graph_param(G, fg_graph_find_param(G, "head.bias"))->offset;
  int64_t sb[3];
  for (int k = 0; k < 3; k++) sb[k] = fg_graph_param(S[k], fg_graph_find_param(S[k], "head.bias"))->offset;
  cr_assert_eq(global[hb + 0], (float)(((double)x[0][sb[0]] + x[2][sb[2]]) / 2), "class 0: clients A and C");
  cr_assert_eq(global[hb + 2], x[0][sb[0] + 2], "class 2: client A only");
  cr_assert_eq(global[hb + 3], (float)(((double)x[0][sb[0] + 3] + x[1][sb[1] + 3]) / 2), "class 3: A and B");
  cr_assert_eq(global[hb + 6], x[1][sb[1] + 6], "class 6: client B only");
  cr_assert_eq(global[hb + 9], old[hb + 9], "class 9: nobody, kept");
  /* hidden tensors ignore the mask: block1.bn1.bias channel 0 under round 2 is global channel 14
   * for the rate-0.5 clients (K = 16, start 14) and channel 14 for the full client */
  int64_t gb = fg_graph_param(G, fg_graph_find_param(G, "block1.bn1.bias"))->offset;
  int64_t s0 = fg_graph_param(S[0], fg_graph_find_param(S[0], "block1.bn1.bias"))->offset;
  int64_t s1 = fg_graph_param(S[1], fg_graph_find_param(S[1], "block1.bn1.bias"))->offset;
  int64_t s2 = fg_graph_param(S[2], fg_graph_find_param(S[2], "block1.bn1.bias"))->offset;
  cr_assert_eq(global[gb + 14], (float)(((double)x[0][s0 + 14] + x[1][s1] + x[2][s2]) / 3));
  for (int k = 0; k < 3; k++) {
    free(x[k]);
    fg_graph_free(S[k]);
  }
  fg_aggregator_free(&agg);
  free(global);
  free(old);
  fg_graph_free(G);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

static void expect_plan_error(const fg_graph *G, const fg_graph *S, const fg_channel_select *sel, fg_status want,
                              const char *needle) {
  fg_index_plan plan = {(fg_tensor_map *)1, 99};
  fg_status s = fg_index_plan_build(G, S, sel, &plan);
  cr_assert_eq(s, want, "got %s: %s", fg_status_name(s), fg_last_error());
  cr_assert(strstr(fg_last_error(), needle), "message '%s' names '%s'", fg_last_error(), needle);
  cr_assert(plan.maps == NULL && plan.n == 0, "a failed build leaves an empty plan");
}

Test(submodel, errors_name_the_tensor) {
  fg_channel_select first = {.policy = FG_CHANNELS_FIRST};
  fg_graph *G = model("cnn", 16, 1, 28, 28, 0, 0, 1.0);
  fg_graph *with_exits = model("cnn", 16, 1, 28, 28, 1, 0, 1.0);
  expect_plan_error(G, with_exits, &first, FG_ERR_INVALID, "exit1.weight");
  fg_graph *wider = model("cnn", 32, 1, 28, 28, 0, 0, 1.0);
  expect_plan_error(G, wider, &first, FG_ERR_INVALID, "block1.conv1.weight");
  fg_graph *rgb = model("cnn", 16, 3, 28, 28, 0, 0, 0.5);
  expect_plan_error(G, rgb, &first, FG_ERR_INVALID, "input");
  fg_channel_select bad_policy = {.policy = (fg_channel_policy)9};
  expect_plan_error(G, G, &bad_policy, FG_ERR_INVALID, "policy");

  /* same name, other rank: a conv "fc" in the global, a linear "fc" in the sub-model */
  fg_graph *gc = fg_graph_create(4, 1, 1), *sl = fg_graph_create(4, 1, 1);
  fg_graph_flatten(gc, 0, "flat"); /* the same flatten, unused */
  fg_graph_conv(gc, 0, 2, 1, 1, 0, 1, 0, FG_INIT_ZERO, "fc");
  fg_graph_linear(sl, fg_graph_flatten(sl, 0, "flat"), 2, 0, "fc");
  FGT_OK(fg_graph_status(gc));
  FGT_OK(fg_graph_status(sl));
  expect_plan_error(gc, sl, &first, FG_ERR_INVALID, "fc.weight");

  /* an add whose inputs keep different channels: the global has p (8) -> q (16) in a chain, the
   * sub-model adds q to p; a rolling window differs between K = 8 and K = 16 */
  fg_graph *gq = fg_graph_create(4, 2, 2), *sq = fg_graph_create(4, 2, 2);
  int p = fg_graph_conv(gq, 0, 8, 1, 1, 0, 1, 0, FG_INIT_ZERO, "p");
  fg_graph_conv(gq, p, 16, 1, 1, 0, 1, 0, FG_INIT_ZERO, "q");
  p = fg_graph_conv(sq, 0, 4, 1, 1, 0, 1, 0, FG_INIT_ZERO, "p");
  int q = fg_graph_conv(sq, p, 4, 1, 1, 0, 1, 0, FG_INIT_ZERO, "q");
  fg_graph_add(sq, q, p, "res");
  FGT_OK(fg_graph_status(gq));
  FGT_OK(fg_graph_status(sq));
  fg_channel_select rolling = {.policy = FG_CHANNELS_ROLLING, .round = 1};
  expect_plan_error(gq, sq, &rolling, FG_ERR_INVALID, "res");
  fg_index_plan ok; /* first-k keeps 0..3 on both sides */
  FGT_OK(fg_index_plan_build(gq, sq, &first, &ok));
  fg_index_plan_free(&ok);

  /* a plan used with other graphs, a mis-sized aggregator, a negative weight */
  fg_graph *half = model("cnn", 16, 1, 28, 28, 0, 0, 0.5);
  fg_index_plan plan;
  FGT_OK(fg_index_plan_build(G, half, &first, &plan));
  float *x = calloc((size_t)fg_graph_state_numel(G), sizeof *x), *y = calloc((size_t)fg_graph_state_numel(G), sizeof *y);
  cr_assert_eq(fg_submodel_extract(&plan, G, with_exits, x, y), FG_ERR_INVALID);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, fg_graph_state_numel(G) - 1, &ledger));
  cr_assert_eq(fg_aggregator_add(&agg, &plan, G, half, y, 1.0, NULL), FG_ERR_INVALID);
  fg_aggregator_free(&agg);
  FGT_OK(fg_aggregator_init(&agg, fg_graph_state_numel(G), &ledger));
  cr_assert_eq(fg_aggregator_add(&agg, &plan, G, half, y, -1.0, NULL), FG_ERR_INVALID);
  cr_assert_eq(fg_aggregator_add(&agg, &plan, G, half, y, NAN, NULL), FG_ERR_INVALID);
  fg_aggregator_free(&agg);
  fg_index_plan_free(&plan);
  free(x);
  free(y);
  fg_graph_free(half);
  fg_graph_free(gq);
  fg_graph_free(sq);
  fg_graph_free(gc);
  fg_graph_free(sl);
  fg_graph_free(rgb);
  fg_graph_free(wider);
  fg_graph_free(with_exits);
  fg_graph_free(G);
}

Test(submodel, accumulators_are_charged_and_capped) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "server", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, 1000, &ledger));
  cr_assert_eq(ledger.by_cat[FG_MEM_OTHER], 2 * 8000 /* 1000 doubles, already 64-byte aligned */);
  const double *s = agg.sum.ptr, *w = agg.weight.ptr;
  for (int e = 0; e < 1000; e++) cr_assert(s[e] == 0 && w[e] == 0);
  fg_aggregator_free(&agg);
  cr_assert_eq(ledger.current, 0);
  fg_ledger_set_cap(&ledger, 12000);
  cr_assert_eq(fg_aggregator_init(&agg, 1000, &ledger), FG_ERR_BUDGET);
  cr_assert_eq(ledger.current, 0, "a failed init leaves nothing charged");
  cr_assert_null(agg.sum.ptr);
}
