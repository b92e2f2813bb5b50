/* DepthFL beyond its loss (baselines.md A.4), against values this file computes itself in double
 * precision:
 * - FedDyn's local term: one plain-SGD step of a depth-2 level with the term equals
 *   θ0 - lr (∇CE + α (θ0 - θ^t) - g_k), ∇CE from the same step without the term;
 * - FedDyn's server: over two rounds of participants at different depths, the global model is
 *   θ̄_i - h_i / α with h_i <- h_i - α (m_i / N) (θ̄_i - θ_i^t) per parameter tensor (BN running
 *   statistics plain means, tensors nobody held unchanged), and every client's g_k is
 *   -α Σ (θ_k - θ^t) over the rounds it trained;
 * - with feddyn_alpha 0 (the default) there is no server state and no proximal term;
 * - the ResNet exit classifiers' parameter counts equal the formula of models.h
 *   (FG_EXIT_HEAD_DEPTHFL), derived by hand below. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/method_util.h"
#include "common/test_util.h"
#include "engine/nn/trainer.h"
#include "fl/method.h"

/* A small cnn: width 2 on 1x8x8 inputs, 3 classes (maps 8, 4, 2). */
static const fg_model_spec TINY = {.arch = "cnn", .width = 2, .in_c = 1, .in_h = 8, .in_w = 8, .classes = 3};
enum { CLIENTS = 5, BATCH = 4 };
static const double ALPHA = 0.3;

typedef struct setup {
  fg_method_config mc;
  const fg_method_ops *ops;
  fg_method_plan mp;
  fg_graph *global;
  fg_graph *level[3];
  fg_ledger ledger;
  fg_method_server *ms;
} setup;

static void setup_open(setup *s, const char *alpha) {
  fgt_setup_cpu(1);
  memset(s, 0, sizeof *s);
  s->mc = fgt_method_config("depthfl", "cnn", alpha, NULL);
  s->ops = fg_method_find("depthfl");
  FGT_OK(s->ops->plan(&s->mc, &TINY, &s->mp));
  FGT_OK(fg_model_build(&s->mp.global, &s->global));
  for (int l = 0; l < s->mp.n_levels; l++) FGT_OK(fg_model_build(&s->mp.levels[l].spec, &s->level[l]));
  fg_ledger_init(&s->ledger, "server", 0);
  FGT_OK(s->ops->server_create(&s->mc, &s->mp, s->global, 1, CLIENTS, CLIENTS, fg_host_device(), &s->ledger, &s->ms));
}

static void setup_close(setup *s) {
  if (s->ms) s->ops->server_free(s->ms);
  for (int l = 0; l < 3; l++) fg_graph_free(s->level[l]);
  fg_graph_free(s->global);
  fg_method_config_free(&s->mc);
}

/* The offset in the global state of the tensor of g called like g's parameter i. */
static int64_t global_offset(const fg_graph *global, const fg_graph *g, int i) {
  int k = fg_graph_find_param(global, fg_graph_param(g, i)->name);
  cr_assert_geq(k, 0, "%s is not in the global model", fg_graph_param(g, i)->name);
  return fg_graph_param(global, k)->offset;
}

Test(depthfl, feddyn_is_off_by_default) {
  setup s;
  setup_open(&s, NULL);
  cr_assert_eq(s.mp.prox_mu, 0.0f);
  cr_assert_null(s.ms, "DepthFL (FedAvg) keeps no server state");
  setup_close(&s);
  setup_open(&s, "feddyn_alpha=0.3");
  cr_assert_float_eq(s.mp.prox_mu, 0.3f, 1e-7);
  cr_assert_not_null(s.ms);
  /* h and one g_k per client, each the global model's size */
  const char *name;
  int64_t numel;
  int n = 0;
  while (s.ops->server_tensor(s.ms, n, &name, &numel)) {
    cr_assert_eq(numel, fg_graph_state_numel(s.global));
    n++;
  }
  cr_assert_eq(n, 1 + CLIENTS);
  setup_close(&s);
}

/* trainer on level graph g: plain SGD at lr, no weight decay, the given proximal coefficient. */
static fg_trainer *sgd_trainer(const fg_graph *g, float lr, float prox_mu, fg_ledger *l) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = BATCH;
  o.mode = FG_EXEC_STORE;
  o.device = fg_host_device();
  o.optim = fg_optim_sgd(lr, 0.0f, 0.0f);
  o.prox_mu = prox_mu;
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, l, &t));
  return t;
}

static void load_batch(fg_trainer *t) {
  fgt_input in;
  fgt_input_open(&in, t);
  fgt_fill_uniform(fg_f32(&in.x), (size_t)fg_tensor_numel(&in.x), 71, -1.0f, 1.0f);
  for (int n = 0; n < BATCH; n++) fg_i32(&in.y)[n] = (n * 2 + 1) % 3;
  fgt_input_load(&in, t, BATCH);
  fgt_input_close(&in);
}

Test(depthfl, feddyn_local_step_adds_the_dynamic_term) {
  setup s;
  setup_open(&s, "feddyn_alpha=0.3");
  const int client = 2, level = 1; /* depth 2 */
  const fg_graph *g = s.level[level];
  int64_t gn = fg_graph_state_numel(g), global_n = fg_graph_state_numel(s.global);
  /* the client's stored g_k: nonzero on the global model's parameters */
  float *gk = calloc((size_t)global_n, sizeof(float));
  for (int i = 0; i < fg_graph_param_count(s.global); i++) {
    const fg_param *p = fg_graph_param(s.global, i);
    if (!p->is_buffer) fgt_fill_uniform(gk + p->offset, (size_t)p->numel, 100 + (uint64_t)i, -0.5f, 0.5f);
  }
  FGT_OK(s.ops->server_tensor_set(s.ms, 1 + client, gk));
  /* θ^t the sub-model sent; θ0 where the step starts (a later step of local training) */
  float *sent = malloc((size_t)gn * sizeof(float)), *theta0 = malloc((size_t)gn * sizeof(float));
  float *theta1 = malloc((size_t)gn * sizeof(float));
  fg_graph_init_state(g, 5, sent);
  memcpy(theta0, sent, (size_t)gn * sizeof(float));
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    float *noise = malloc((size_t)p->numel * sizeof(float));
    fgt_fill_uniform(noise, (size_t)p->numel, 200 + (uint64_t)i, -0.2f, 0.2f);
    for (int64_t e = 0; e < p->numel; e++) theta0[p->offset + e] += noise[e];
    free(noise);
  }
  const float *linear = NULL;
  FGT_OK(s.ops->client_prox(s.ms, client, level, g, sent, &linear));

  const float lr = 0.1f;
  fg_ledger l;
  fg_ledger_init(&l, "client", 0);
  fg_trainer *plain = sgd_trainer(g, lr, 0.0f, &l), *dyn = sgd_trainer(g, lr, (float)ALPHA, &l);
  cr_assert_eq(fg_trainer_set_prox_linear(plain, linear), FG_ERR_INVALID, "a plan without the term refuses it");
  FGT_OK(fg_trainer_set_state(plain, theta0));
  load_batch(plain);
  fg_step_stats st;
  FGT_OK(fg_trainer_compute_gradients(plain, BATCH, &st));
  FGT_OK(fg_trainer_set_state(dyn, theta0));
  FGT_OK(fg_trainer_set_prox_linear(dyn, linear));
  load_batch(dyn);
  FGT_OK(fg_trainer_step(dyn, BATCH, &st));
  FGT_OK(fg_trainer_get_state(dyn, theta1));
  int checked = 0;
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    float *grad = malloc((size_t)p->numel * sizeof(float));
    double *want = malloc((size_t)p->numel * sizeof(double));
    FGT_OK(fg_trainer_get_grad(plain, i, grad));
    const float *gp = gk + global_offset(s.global, g, i);
    for (int64_t e = 0; e < p->numel; e++) {
      double th = theta0[p->offset + e], tt = sent[p->offset + e];
      want[e] = th - (double)lr * ((double)grad[e] + ALPHA * (th - tt) - (double)gp[e]);
    }
    char msg[256];
    cr_assert(fgt_allclose(theta1 + p->offset, want, (size_t)p->numel, 1e-6, 1e-5, msg, sizeof msg), "%s: %s",
              p->name, msg);
    checked++;
    free(grad);
    free(want);
  }
  cr_assert_gt(checked, 10);
  fg_trainer_destroy(plain);
  fg_trainer_destroy(dyn);
  free(gk);
  free(sent);
  free(theta0);
  free(theta1);
  setup_close(&s);
}

/* The participants of the two rounds: (client, level). */
typedef struct participant {
  int client, level;
} participant;

static const participant ROUNDS[2][3] = {{{0, 0}, {3, 2}, {4, 2}}, {{3, 2}, {1, 1}, {-1, -1}}};
static const int PER_ROUND[2] = {3, 2};

Test(depthfl, feddyn_server_update_is_the_formula) {
  setup s;
  setup_open(&s, "feddyn_alpha=0.3");
  const fg_graph *global = s.global;
  int64_t n = fg_graph_state_numel(global);
  float *theta = malloc((size_t)n * sizeof(float)), *next = malloc((size_t)n * sizeof(float));
  double *h = calloc((size_t)n, sizeof(double)), *sum = malloc((size_t)n * sizeof(double));
  double *gk = calloc((size_t)CLIENTS * (size_t)n, sizeof(double));
  int *holders = malloc((size_t)n * sizeof(int));
  fg_graph_init_state(global, 3, theta);
  fg_index_plan plans[3];
  for (int l = 0; l < 3; l++) {
    fg_channel_select sel = {FG_CHANNELS_FIRST, 0, 0, 0};
    FGT_OK(fg_index_plan_build(global, s.level[l], &sel, &plans[l]));
  }
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, n, &s.ledger));
  for (int r = 0; r < 2; r++) {
    fg_aggregator_reset(&agg);
    memset(sum, 0, (size_t)n * sizeof(double));
    memset(holders, 0, (size_t)n * sizeof(int));
    int levels[3];
    for (int k = 0; k < PER_ROUND[r]; k++) {
      const participant *pt = &ROUNDS[r][k];
      const fg_graph *g = s.level[pt->level];
      int64_t gn = fg_graph_state_numel(g);
      float *sent = malloc((size_t)gn * sizeof(float)), *trained = malloc((size_t)gn * sizeof(float));
      FGT_OK(fg_submodel_extract(&plans[pt->level], global, g, theta, sent));
      fgt_fill_uniform(trained, (size_t)gn, 300 + (uint64_t)(10 * r + k), -0.1f, 0.1f);
      for (int64_t e = 0; e < gn; e++) trained[e] += sent[e];
      FGT_OK(fg_aggregator_add(&agg, &plans[pt->level], global, g, trained, 1.0, NULL));
      FGT_OK(s.ops->server_collect(s.ms, k, pt->client, pt->level, g, sent, trained));
      levels[k] = pt->level;
      /* the reference: sums over the holders of each global element, and g_k by name */
      for (int i = 0; i < fg_graph_param_count(g); i++) {
        const fg_param *p = fg_graph_param(g, i);
        int64_t at = global_offset(global, g, i);
        for (int64_t e = 0; e < p->numel; e++) {
          sum[at + e] += trained[p->offset + e];
          holders[at + e]++;
          if (!p->is_buffer)
            gk[(size_t)pt->client * (size_t)n + (size_t)(at + e)] -=
                ALPHA * ((double)trained[p->offset + e] - (double)sent[p->offset + e]);
        }
      }
      free(sent);
      free(trained);
    }
    FGT_OK(s.ops->server_complete(s.ms, r, levels, PER_ROUND[r], &agg, global, theta));
    memcpy(next, theta, (size_t)n * sizeof(float));
    fg_aggregator_finish(&agg, next);
    double *want = malloc((size_t)n * sizeof(double));
    int untouched = 0;
    for (int i = 0; i < fg_graph_param_count(global); i++) {
      const fg_param *p = fg_graph_param(global, i);
      for (int64_t e = p->offset; e < p->offset + p->numel; e++) {
        int m = holders[e];
        if (m == 0) { /* no participant holds it: θ^t stays */
          want[e] = theta[e];
          untouched++;
          continue;
        }
        double mean = sum[e] / m;
        if (p->is_buffer) {
          want[e] = mean;
          continue;
        }
        h[e] -= ALPHA * ((double)m / CLIENTS) * (mean - (double)theta[e]);
        want[e] = mean - h[e] / ALPHA;
      }
    }
    if (r == 1) cr_assert_gt(untouched, 0, "round 2 leaves block 3 and its head to no one");
    char msg[256];
    cr_assert(fgt_allclose(next, want, (size_t)n, 1e-5, 1e-5, msg, sizeof msg), "round %d: %s", r + 1, msg);
    free(want);
    memcpy(theta, next, (size_t)n * sizeof(float));
  }
  /* h and every client's g_k as the server keeps them */
  float *got = malloc((size_t)n * sizeof(float));
  char msg[256];
  FGT_OK(s.ops->server_tensor_get(s.ms, 0, got));
  cr_assert(fgt_allclose(got, h, (size_t)n, 1e-6, 1e-5, msg, sizeof msg), "h: %s", msg);
  cr_assert_gt(fgt_max_abs_f32(got, (size_t)n), 1e-3, "h moved");
  for (int c = 0; c < CLIENTS; c++) {
    FGT_OK(s.ops->server_tensor_get(s.ms, 1 + c, got));
    cr_assert(fgt_allclose(got, gk + (size_t)c * (size_t)n, (size_t)n, 1e-6, 1e-5, msg, sizeof msg), "g of client %d: %s",
              c, msg);
  }
  FGT_OK(s.ops->server_tensor_get(s.ms, 1 + 2, got));
  cr_assert_eq(fgt_max_abs_f32(got, (size_t)n), 0.0, "client 2 never trained");
  for (int l = 0; l < 3; l++) fg_index_plan_free(&plans[l]);
  fg_aggregator_free(&agg);
  free(got);
  free(theta);
  free(next);
  free(h);
  free(sum);
  free(gk);
  free(holders);
  setup_close(&s);
}

/* ---- ResNet exits ---------------------------------------------------------------------------- */

/* Parameters (buffers aside) whose name starts with prefix. */
static int64_t params_under(const fg_graph *g, const char *prefix) {
  int64_t n = 0;
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (!p->is_buffer && strncmp(p->name, prefix, strlen(prefix)) == 0) n += p->numel;
  }
  return n;
}

/* Exit j of a resnet with block channels c[1..4] and K classes, derived by hand: separable block
 * C -> C' holds a depthwise 3x3 (C x 1 x 3 x 3 = 9C), a 1x1 C -> C (C^2), BN (2C), a depthwise 3x3
 * (9C), a 1x1 C -> C' (C C') and BN (2C'): 20C + C^2 + CC' + 2C'. Exit j starts with the attention
 * gate on c_j channels: a separable block c_j -> c_j (20 c_j + 2 c_j^2 + 2 c_j = 22 c_j + 2 c_j^2)
 * and a BN (2 c_j); upsampling, sigmoid and the product have no parameters: 24 c_j + 2 c_j^2.
 * Then blocks c_j -> c_{j+1}, ..., c_3 -> c_4, then a linear c_4 -> K with bias (K c_4 + K). */
static int64_t exit_formula(const int64_t c[5], int j, int64_t k) {
  int64_t n = k * c[4] + k + 24 * c[j] + 2 * c[j] * c[j];
  for (int b = j; b < 4; b++) n += 20 * c[b] + c[b] * c[b] + c[b] * c[b + 1] + 2 * c[b + 1];
  return n;
}

static void check_exits(double width, const int64_t c[5], int64_t k) {
  fg_model_spec spec = {.arch = "resnet18", .width = width, .in_c = 3, .in_h = 32, .in_w = 32, .classes = (int)k,
                        .exits = 1, .exit_head = FG_EXIT_HEAD_DEPTHFL};
  fg_graph *g;
  FGT_OK(fg_model_build(&spec, &g));
  cr_assert_eq(fg_graph_output_count(g), 4);
  for (int j = 1; j <= 3; j++) {
    char prefix[16];
    snprintf(prefix, sizeof prefix, "exit%d.", j);
    cr_assert_eq(params_under(g, prefix), exit_formula(c, j, k), "width %g, exit %d: %lld parameters, expected %lld",
                 width, j, (long long)params_under(g, prefix), (long long)exit_formula(c, j, k));
  }
  /* the backbone and final head are resnet18's own */
  fg_model_spec plain = spec;
  plain.exits = 0;
  plain.exit_head = FG_EXIT_HEAD_MODEL;
  fg_graph *p;
  FGT_OK(fg_model_build(&plain, &p));
  cr_assert_eq(params_under(g, "") - params_under(g, "exit"), params_under(p, ""));
  fg_graph_free(p);
  fg_graph_free(g);
}

Test(depthfl, resnet_exit_classifiers_have_the_formula_parameter_count) {
  const int64_t full[5] = {0, 64, 128, 256, 512}, eighth[5] = {0, 8, 16, 32, 64};
  check_exits(1.0, full, 100);
  check_exits(0.125, eighth, 10);
  /* by hand for resnet18 on CIFAR-100: exit 1 = gate 9728 (24*64 + 2*64^2 = 1536 + 8192) + blocks
   * 13824 + 52224 + 202752 + fc 51300 */
  cr_assert_eq(exit_formula(full, 1, 100), 329828);
}

Test(depthfl, resnet_levels_are_prefixes_with_depthfl_exits) {
  fg_model_spec base = {.arch = "resnet18", .width = 0.125, .in_c = 3, .in_h = 32, .in_w = 32, .classes = 10};
  fg_method_config mc = fgt_method_config("depthfl", "resnet18", NULL);
  fg_method_plan mp;
  FGT_OK(fg_method_find("depthfl")->plan(&mc, &base, &mp));
  cr_assert_eq(mp.global.exit_head, FG_EXIT_HEAD_DEPTHFL);
  cr_assert_eq(mp.n_levels, 4);
  fg_graph *global;
  FGT_OK(fg_model_build(&mp.global, &global));
  for (int l = 0; l < 4; l++) {
    fg_graph *g;
    FGT_OK(fg_model_build(&mp.levels[l].spec, &g));
    cr_assert_eq(fg_graph_output_count(g), 4 - l);
    /* every tensor of the level is the global tensor of that name, at the same place */
    for (int i = 0; i < fg_graph_param_count(g); i++) {
      const fg_param *p = fg_graph_param(g, i);
      int k = fg_graph_find_param(global, p->name);
      cr_assert_geq(k, 0, "%s", p->name);
      cr_assert_eq(fg_graph_param(global, k)->offset, p->offset, "%s", p->name);
      cr_assert_eq(fg_graph_param(global, k)->numel, p->numel, "%s", p->name);
    }
    fg_graph_free(g);
  }
  fg_graph_free(global);
  /* cnn keeps its pooled exits; DepthFL's classifiers exist only on the resnets */
  fg_method_config cnn = fgt_method_config("depthfl", "cnn", NULL);
  FGT_OK(fg_method_find("depthfl")->plan(&cnn, &TINY, &mp));
  cr_assert_eq(mp.global.exit_head, FG_EXIT_HEAD_MODEL);
  fg_model_spec bad = mp.global;
  bad.exit_head = FG_EXIT_HEAD_DEPTHFL;
  fg_graph *g = NULL;
  fg_clear_error();
  cr_assert_eq(fg_model_build(&bad, &g), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "model cnn") && strstr(fg_last_error(), "resnet"), "%s", fg_last_error());
  fg_method_config_free(&mc);
  fg_method_config_free(&cnn);
}
