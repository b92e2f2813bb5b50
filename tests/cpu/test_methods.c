/* FL methods: levels each method offers, and the DepthFL / ScaleFL local losses evaluated by the
 * trainer on fixed logits against the formulas of baselines.md A.4 / A.5 written out here in
 * double precision. The fixed logits come from a graph whose three outputs are linear selections
 * of its input, so the input batch is the logits. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/method_util.h"
#include "common/test_util.h"
#include "engine/nn/trainer.h"
#include "fl/method.h"

enum { N = 4, K = 5, EXITS = 3 };

/* input [3K] -> three linear exits, exit j = input[jK .. jK+K). */
static fg_graph *logit_graph(float **state) {
  fg_graph *g = fg_graph_create(EXITS * K, 1, 1);
  int x = fg_graph_flatten(g, 0, "flat");
  const char *names[EXITS] = {"exit1", "exit2", "exit3"};
  for (int j = 0; j < EXITS; j++) fg_graph_mark_output(g, fg_graph_linear(g, x, K, 1, names[j]));
  FGT_OK(fg_graph_status(g));
  *state = calloc((size_t)fg_graph_state_numel(g), sizeof(float));
  for (int j = 0; j < EXITS; j++) {
    char w[32];
    snprintf(w, sizeof w, "%s.weight", names[j]);
    const fg_param *p = fg_graph_param(g, fg_graph_find_param(g, w));
    for (int k = 0; k < K; k++) (*state)[p->offset + k * (EXITS * K) + j * K + k] = 1.0f;
  }
  return g;
}

static void fixed_logits(float z[EXITS][N][K], int32_t y[N]) {
  for (int j = 0; j < EXITS; j++)
    for (int n = 0; n < N; n++)
      for (int k = 0; k < K; k++) z[j][n][k] = (float)(sin(1.3 * (j + 1) * (n + 2) + 0.7 * k) * (1.5 + j));
  for (int n = 0; n < N; n++) y[n] = (n * 2 + 1) % K;
}

/* The trainer's loss for `loss` on the fixed logits. */
static double trainer_loss(const fg_loss_spec *loss) {
  fgt_setup_cpu(1);
  float *state;
  fg_graph *g = logit_graph(&state);
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = N;
  o.mode = FG_EXEC_STORE;
  o.device = fg_host_device();
  o.loss = *loss;
  fg_ledger l;
  fg_ledger_init(&l, "loss", 0);
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  FGT_OK(fg_trainer_set_state(t, state));
  fgt_input in;
  fgt_input_open(&in, t);
  fg_tensor x = in.x, yt = in.y;
  float z[EXITS][N][K];
  int32_t y[N];
  fixed_logits(z, y);
  for (int n = 0; n < N; n++) {
    fg_i32(&yt)[n] = y[n];
    for (int j = 0; j < EXITS; j++)
      for (int k = 0; k < K; k++) fg_f32(&x)[n * EXITS * K + j * K + k] = z[j][n][k];
  }
  fgt_input_load(&in, t, N);
  fgt_input_close(&in);
  fg_step_stats st;
  FGT_OK(fg_trainer_compute_gradients(t, N, &st));
  fg_trainer_destroy(t);
  fg_graph_free(g);
  free(state);
  return st.loss;
}

static void softmax(const float *z, double t, double *p) {
  double m = z[0], s = 0;
  for (int k = 1; k < K; k++) m = fmax(m, z[k]);
  for (int k = 0; k < K; k++) s += exp((z[k] - m) / t);
  for (int k = 0; k < K; k++) p[k] = exp((z[k] - m) / t) / s;
}

static double ce(const float *z, int y) {
  double p[K];
  softmax(z, 1.0, p);
  return -log(p[y]);
}

/* sum_k q'_k (log q'_k - log p_k), q' = softmax(teacher / T) + eps, p = softmax(student / T). */
static double kl_row(const float *student, const float *teacher, double t, double eps) {
  double p[K], q[K], s = 0;
  softmax(student, t, p);
  softmax(teacher, t, q);
  for (int k = 0; k < K; k++) s += (q[k] + eps) * (log(q[k] + eps) - log(p[k]));
  return s;
}

static const fg_model_spec CNN = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};

Test(methods, depthfl_loss_is_the_formula) {
  fg_method_config mc = fgt_method_config("depthfl", "cnn", "kd=true", "kd_ramp_rounds=300", NULL);
  const fg_method_ops *ops = fg_method_find("depthfl");
  cr_assert_not_null(ops);
  fg_method_plan mp;
  FGT_OK(ops->plan(&mc, &CNN, &mp));
  cr_assert_eq(mp.n_levels, 3);
  cr_assert_eq(mp.levels[0].spec.depth, 3);
  cr_assert_eq(mp.levels[2].spec.depth, 1);
  float z[EXITS][N][K];
  int32_t y[N];
  fixed_logits(z, y);
  const int rounds[3] = {0, 150, 400};
  for (int r = 0; r < 3; r++) {
    fg_loss_spec loss;
    ops->loss(&mc, &mp, 0, rounds[r], 1000, &loss);
    double tt = fmin(rounds[r], 300) / 300.0, w = exp(-5.0 * (1 - tt) * (1 - tt)), want = 0;
    for (int n = 0; n < N; n++)
      for (int i = 0; i < EXITS; i++) {
        want += ce(z[i][n], y[n]) / N;
        for (int j = 0; j < EXITS; j++)
          if (j != i) want += w / (EXITS - 1) * kl_row(z[i][n], z[j][n], 1.0, 1e-7) / N;
      }
    double got = trainer_loss(&loss);
    cr_assert(fabs(got - want) < 1e-5 * fabs(want), "round %d: trainer %.9g, formula %.9g", rounds[r], got, want);
  }
  /* Depth 1: only its own cross-entropy. */
  fg_loss_spec one;
  ops->loss(&mc, &mp, 2, 10, 1000, &one);
  cr_assert_eq(one.n, 1);
  fg_method_config_free(&mc);
  /* The default ramp fits the run: over 60% of its rounds (12 of 20), at most 300 (of 1000). */
  fg_method_config dflt = fgt_method_config("depthfl", "cnn", NULL);
  const struct {
    int round, rounds, ramp_rounds;
  } cases[] = {{3, 20, 12}, {12, 20, 12}, {150, 1000, 300}};
  for (int c = 0; c < 3; c++) {
    fg_loss_spec loss;
    ops->loss(&dflt, &mp, 0, cases[c].round, cases[c].rounds, &loss);
    double tt = fmin(cases[c].round, cases[c].ramp_rounds) / cases[c].ramp_rounds;
    double w = exp(-5.0 * (1 - tt) * (1 - tt)) / (EXITS - 1);
    cr_assert_eq(loss.n, EXITS + EXITS * (EXITS - 1));
    cr_assert_float_eq(loss.terms[EXITS].kl.weight, w, 1e-6, "round %d of %d: %g vs %g", cases[c].round,
                       cases[c].rounds, (double)loss.terms[EXITS].kl.weight, w);
  }
  fg_method_config_free(&dflt);
}

Test(methods, scalefl_loss_is_the_formula) {
  fg_method_config mc = fgt_method_config("scalefl", "cnn", "widths=[0.7, 0.75, 1]", "exits=[1, 2, 3]",
                                          "kd_gamma=0.05", "kd_temperature=3", "kd_start=0.25", NULL);
  const fg_method_ops *ops = fg_method_find("scalefl");
  fg_method_plan mp;
  FGT_OK(ops->plan(&mc, &CNN, &mp));
  cr_assert_eq(mp.n_levels, 3);
  cr_assert_float_eq(mp.levels[0].spec.rate, 1.0, 1e-12);
  cr_assert_eq(mp.levels[0].spec.depth, 3);
  cr_assert_float_eq(mp.levels[2].spec.rate, 0.7, 1e-12);
  cr_assert_eq(mp.levels[2].spec.scaler, FG_SCALER_ALWAYS);
  float z[EXITS][N][K];
  int32_t y[N];
  fixed_logits(z, y);
  const double T = 3, gamma = 0.05;
  for (int kd = 0; kd < 2; kd++) {
    fg_loss_spec loss;
    ops->loss(&mc, &mp, 0, kd ? 30 : 10, 100, &loss); /* distillation from round 25 of 100 */
    double want = 0;
    for (int i = 1; i <= EXITS; i++) {
      double term = 0;
      for (int n = 0; n < N; n++) {
        term += ce(z[i - 1][n], y[n]) / N;
        if (kd && i < EXITS) term += gamma * T * T * kl_row(z[i - 1][n], z[EXITS - 1][n], T, 0.0) / (N * K);
      }
      want += i * term;
    }
    want /= EXITS * (EXITS + 1) / 2.0;
    double got = trainer_loss(&loss);
    cr_assert(fabs(got - want) < 1e-5 * fabs(want), "kd %d: trainer %.9g, formula %.9g", kd, got, want);
  }
  fg_method_config_free(&mc);
}

/* ScaleFL's reference levels (baselines.md A.5: widths 0.7, 0.7, 0.75, 1 x exits 1, 2, 3, 4) on a
 * 3-block cnn: the exits capped at 3, so the two largest levels differ by width only. */
Test(methods, scalefl_default_levels_on_a_cnn) {
  fg_method_config mc = fgt_method_config("scalefl", "cnn", NULL);
  fg_method_plan mp;
  FGT_OK(fg_method_find("scalefl")->plan(&mc, &CNN, &mp));
  const double rate[4] = {1, 0.75, 0.7, 0.7};
  const int depth[4] = {3, 3, 2, 1};
  cr_assert_eq(mp.n_levels, 4);
  for (int l = 0; l < 4; l++) {
    cr_assert_float_eq(mp.levels[l].spec.rate, rate[l], 1e-12, "level %d", l);
    cr_assert_eq(mp.levels[l].spec.depth, depth[l], "level %d", l);
    cr_assert_eq(mp.levels[l].spec.rate_floor, 1);
    cr_assert_eq(mp.levels[l].spec.exit_head, FG_EXIT_HEAD_SCALEFL);
  }
  cr_assert_eq(mp.global.exit_head, FG_EXIT_HEAD_SCALEFL);
  cr_assert_eq(mp.bn_mode, FG_BN_NO_RUNNING_STATS);
  fg_method_config_free(&mc);
}

Test(methods, levels_of_the_width_methods) {
  const char *names[] = {"heterofl", "fedrolex", "fedavg-s", "fedavg", "exclusivefl", "depthfl"};
  fg_method_config mc[6] = {
      fgt_method_config("heterofl", "cnn", "rates=[1, 0.5, 0.25]", "scaler=true", NULL),
      fgt_method_config("fedrolex", "cnn", "rates=[1, 0.5, 0.25]", "rolling=roll", NULL),
      fgt_method_config("fedavg-s", "cnn", "rates=[1, 0.5, 0.25]", NULL),
      fgt_method_config("fedavg", "cnn", NULL),
      fgt_method_config("exclusivefl", "cnn", NULL),
      fgt_method_config("depthfl", "cnn", NULL),
  };
  fg_method_plan mp;
  FGT_OK(fg_method_find(names[0])->plan(&mc[0], &CNN, &mp));
  cr_assert_eq(mp.n_levels, 3);
  cr_assert_float_eq(mp.levels[1].spec.rate, 0.5, 1e-12);
  cr_assert_eq(mp.levels[1].spec.scaler, FG_SCALER_TRAIN_ONLY);
  cr_assert_eq(mp.channels, FG_CHANNELS_FIRST);
  FGT_OK(fg_method_find(names[1])->plan(&mc[1], &CNN, &mp));
  cr_assert_eq(mp.channels, FG_CHANNELS_ROLLING);
  FGT_OK(fg_method_find(names[2])->plan(&mc[2], &CNN, &mp));
  cr_assert(mp.same_level);
  cr_assert_eq(mp.n_levels, 3);
  FGT_OK(fg_method_find(names[3])->plan(&mc[3], &CNN, &mp));
  cr_assert(mp.ignore_budgets);
  cr_assert_eq(mp.n_levels, 1);
  FGT_OK(fg_method_find(names[4])->plan(&mc[4], &CNN, &mp));
  cr_assert(!mp.ignore_budgets);
  cr_assert_null(fg_method_find("fedprox"));
  cr_assert_eq(fg_last_status(), FG_ERR_CONFIG);
  for (int i = 0; i < 6; i++) fg_method_config_free(&mc[i]);
}

/* The depth methods on the resnets (4 blocks, exits after blocks 1..3): DepthFL offers depths
 * 4..1 with every exit up to each; ScaleFL's default levels are its reference's four (widths 0.7,
 * 0.7, 0.75, 1 x exits 1..4), and levels that never reach block 4 are refused with the fix named;
 * HypeMeFed's hypernetworks pair the blocks of 3-block models only. */
Test(methods, depth_methods_on_a_resnet) {
  fg_model_spec resnet = CNN;
  resnet.arch = "resnet18";
  resnet.width = 0.125;
  resnet.in_c = 3, resnet.in_h = 32, resnet.in_w = 32;
  fg_method_plan mp;
  fg_method_config depthfl = fgt_method_config("depthfl", "resnet18", NULL);
  FGT_OK(fg_method_find("depthfl")->plan(&depthfl, &resnet, &mp));
  cr_assert_eq(mp.n_levels, 4);
  for (int l = 0; l < 4; l++) {
    cr_assert_eq(mp.levels[l].spec.depth, 4 - l);
    cr_assert(mp.levels[l].spec.exits);
    cr_assert_eq(fg_spec_outputs(&mp.levels[l].spec), 4 - l);
  }
  /* three levels made for a cnn reach block 3 only */
  fg_method_config scalefl3 = fgt_method_config("scalefl", "cnn", "widths=[0.7, 0.75, 1]", "exits=[1, 2, 3]", NULL);
  fg_clear_error();
  cr_assert_eq(fg_method_find("scalefl")->plan(&scalefl3, &resnet, &mp), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "largest level has 3 exits") && strstr(fg_last_error(), "4 blocks") &&
                strstr(fg_last_error(), "exits [1, 2, 3, 4]"),
            "%s", fg_last_error());
  fg_method_config scalefl = fgt_method_config("scalefl", "resnet18", NULL);
  FGT_OK(fg_method_find("scalefl")->plan(&scalefl, &resnet, &mp));
  const double want_rate[4] = {1, 0.75, 0.7, 0.7};
  cr_assert_eq(mp.n_levels, 4);
  for (int l = 0; l < 4; l++) {
    cr_assert_eq(mp.levels[l].spec.depth, 4 - l);
    cr_assert_float_eq(mp.levels[l].spec.rate, want_rate[l], 1e-12);
    cr_assert_eq(mp.levels[l].spec.exit_head, FG_EXIT_HEAD_SCALEFL);
    cr_assert_eq(fg_spec_outputs(&mp.levels[l].spec), 4 - l);
  }
  fg_method_config hypemefed = fgt_method_config("hypemefed", "resnet18", NULL);
  fg_clear_error();
  cr_assert_eq(fg_method_find("hypemefed")->plan(&hypemefed, &resnet, &mp), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "resnet18 has 4 blocks, expected 3"), "%s", fg_last_error());
  fg_method_config_free(&depthfl);
  fg_method_config_free(&scalefl);
  fg_method_config_free(&scalefl3);
  fg_method_config_free(&hypemefed);
}
