/* The trainer's step in parts (engine/nn/trainer.h: fg_trainer_forward, fg_trainer_output,
 * fg_trainer_output_grad, fg_trainer_backward, fg_trainer_update) and external loss terms
 * (FG_LOSS_EXTERNAL, engine/nn/plan.h):
 *   - parameter gradients from a gradient the caller writes equal central differences of a loss
 *     computed here, outside the trainer, alone and beside a cross-entropy term that shares the
 *     hidden layer;
 *   - the parts of a step give bit for bit what fg_trainer_step gives for an existing loss;
 *   - writing the gradient leaves the output's value intact; plan total = ledger peak;
 *   - misuse fails with a status. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/nn/models.h"
#include "engine/nn/trainer.h"

enum { IN = 6, HIDDEN = 8, CLASSES = 5, EXT = 5, BATCH = 3 }; /* equal widths: evaluation averages the exits */

/* input (6) -> fc1 (8) -> relu -> head0 (5 logits), and relu -> head1 (5) when two_heads.
 * Outputs: head0 = 0, head1 = 1. */
static fg_graph *mlp(int two_heads) {
  fg_graph *g = fg_graph_create(IN, 1, 1);
  int x = fg_graph_flatten(g, 0, "flatten");
  x = fg_graph_linear(g, x, HIDDEN, 1, "fc1");
  x = fg_graph_relu(g, x, "relu");
  fg_graph_mark_output(g, fg_graph_linear(g, x, two_heads ? CLASSES : EXT, 1, "head0"));
  if (two_heads) fg_graph_mark_output(g, fg_graph_linear(g, x, EXT, 1, "head1"));
  FGT_OK(fg_graph_status(g));
  return g;
}

/* two_heads: cross-entropy on output 0 and the external term on output 1; else external on 0. */
static fg_trainer_options options(int two_heads) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = BATCH;
  o.mode = FG_EXEC_STORE;
  o.optim = fg_optim_adam(1e-2f, 0.0f);
  o.device = fg_host_device();
  o.loss.n = two_heads ? 2 : 1;
  o.loss.terms[0] = (fg_loss_term){.kind = two_heads ? FG_LOSS_XENT : FG_LOSS_EXTERNAL, .output = 0, .weight = 1};
  if (two_heads) o.loss.terms[1] = (fg_loss_term){.kind = FG_LOSS_EXTERNAL, .output = 1};
  return o;
}

static fg_trainer *make(const fg_graph *g, const fg_trainer_options *o, fg_ledger *l, uint64_t seed) {
  fg_trainer *t = NULL;
  FGT_OK(fg_trainer_create(g, o, l, &t));
  float *state = malloc((size_t)fg_graph_state_numel(g) * sizeof *state);
  fg_graph_init_state(g, seed, state);
  FGT_OK(fg_trainer_set_state(t, state));
  free(state);
  return t;
}

static void set_batch(fg_trainer *t, uint64_t seed) {
  float x[BATCH * IN];
  int32_t y[BATCH];
  fgt_fill_uniform(x, BATCH * IN, seed, -1.0f, 1.0f);
  for (int i = 0; i < BATCH; i++) y[i] = (int32_t)((seed + (uint64_t)i) % CLASSES);
  const int64_t xs[4] = {BATCH, IN, 1, 1}, ys[1] = {BATCH};
  fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, xs);
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  FGT_OK(fg_trainer_set_batch(t, &tx, &ty));
}

/* The loss computed outside: L(z) = sum_i c_i (z_i - m_i)^2 / 2 over z [BATCH, EXT], with
 * weights c_i = 1 + i/10 and centres m_i = sin(i); its gradient c_i (z_i - m_i). */
static double external_loss(const float *z, float *dz) {
  double loss = 0.0;
  for (int i = 0; i < BATCH * EXT; i++) {
    const double c = 1.0 + i / 10.0, d = (double)z[i] - sin((double)i);
    loss += 0.5 * c * d * d;
    if (dz) dz[i] = (float)(c * d);
  }
  return loss;
}

/* Forward, the external loss on output `k`, and (grads) its gradient written and backward run.
 * Returns the total loss: the trainer's terms plus the external one. */
static double run_parts(fg_trainer *t, int k, int grads) {
  fg_step_stats st;
  FGT_OK(fg_trainer_forward(t, BATCH, &st));
  fg_tensor z, dz;
  FGT_OK(fg_trainer_output(t, k, &z));
  cr_assert(z.ndim == 2 && z.shape[0] == BATCH && z.shape[1] == EXT);
  float zh[BATCH * EXT], dzh[BATCH * EXT];
  FGT_OK(fg_tensor_to_host(zh, &z, sizeof zh));
  const double loss = st.loss + external_loss(zh, dzh);
  if (grads) {
    FGT_OK(fg_trainer_output_grad(t, k, &dz));
    FGT_OK(fg_tensor_from_host(&dz, dzh, sizeof dzh));
    float again[BATCH * EXT]; /* the gradient buffer does not share the value's storage */
    FGT_OK(fg_tensor_to_host(again, &z, sizeof again));
    cr_assert(memcmp(again, zh, sizeof zh) == 0, "writing the gradient changed the output's value");
    FGT_OK(fg_trainer_backward(t));
  }
  return loss;
}

/* Every parameter gradient against the central difference of run_parts' loss, element by element. */
static void check_external_gradients(int two_heads) {
  fgt_setup_cpu(1);
  fg_graph *g = mlp(two_heads);
  fg_trainer_options o = options(two_heads);
  fg_ledger l;
  fg_ledger_init(&l, "external", 0);
  fg_trainer *t = make(g, &o, &l, 3);
  set_batch(t, 4);
  const int k = two_heads ? 1 : 0;
  run_parts(t, k, 1);
  const int64_t n = fg_graph_state_numel(g);
  float *state = malloc((size_t)n * sizeof *state), *probe = malloc((size_t)n * sizeof *probe);
  float *grad = malloc((size_t)n * sizeof *grad);
  FGT_OK(fg_trainer_get_state(t, state));
  int checked = 0;
  for (int p = 0; p < fg_graph_param_count(g); p++) {
    const fg_param *pa = fg_graph_param(g, p);
    FGT_OK(fg_trainer_get_grad(t, p, grad));
    const double gmax = fgt_max_abs_f32(grad, (size_t)pa->numel);
    cr_assert_gt(gmax, 0.0, "%s: zero gradient", pa->name);
    for (int64_t e = 0; e < pa->numel; e++) {
      const int64_t at = pa->offset + e;
      memcpy(probe, state, (size_t)n * sizeof *probe);
      probe[at] = state[at] + 1e-3f;
      const float up_at = probe[at];
      FGT_OK(fg_trainer_set_state(t, probe));
      const double up = run_parts(t, k, 0);
      probe[at] = state[at] - 1e-3f;
      const float down_at = probe[at];
      FGT_OK(fg_trainer_set_state(t, probe));
      const double down = run_parts(t, k, 0);
      const double fd = (up - down) / ((double)up_at - (double)down_at);
      cr_assert(fabs(fd - grad[e]) <= 2e-3 * gmax + 1e-2 * fabs(fd), "%s[%lld]: gradient %.7g, central difference %.7g",
                pa->name, (long long)e, (double)grad[e], fd);
      checked++;
    }
  }
  cr_assert_eq(checked, fg_graph_param_numel(g));
  fg_trainer_destroy(t);
  cr_assert_eq(l.current, 0u);
  free(state);
  free(probe);
  free(grad);
  fg_graph_free(g);
}

Test(external, gradient_matches_finite_differences_of_the_outside_loss) { check_external_gradients(0); }
Test(external, gradient_adds_to_a_trainer_term_through_shared_layers) { check_external_gradients(1); }

Test(external, parts_of_a_step_equal_step_for_an_existing_loss) {
  fgt_setup_cpu(2);
  const fg_model_spec spec = {.arch = "vgg-me", .width = 0.25, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&spec, &g)); /* BN, dropout, several exits */
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = 4;
  o.optim = fg_optim_adam(1e-3f, 1e-4f);
  o.device = fg_host_device();
  fg_ledger l;
  fg_ledger_init(&l, "parts", 0);
  fg_trainer *a = make(g, &o, &l, 9), *b = make(g, &o, &l, 9);
  const int64_t numel = fg_graph_state_numel(g);
  float *images = malloc((size_t)(4 * 28 * 28) * sizeof *images);
  int32_t labels[4] = {1, 7, 3, 3};
  const int64_t is[4] = {4, 1, 28, 28}, ls[1] = {4};
  fg_tensor ti = fg_tensor_view(images, FG_F32, fg_host_device(), 4, is);
  fg_tensor tl = fg_tensor_view(labels, FG_I32, fg_host_device(), 1, ls);
  for (int k = 0; k < 3; k++) {
    fgt_fill_uniform(images, 4 * 28 * 28, 50 + (uint64_t)k, -1.0f, 1.0f);
    FGT_OK(fg_trainer_set_batch(a, &ti, &tl));
    FGT_OK(fg_trainer_set_batch(b, &ti, &tl));
    fg_step_stats sa, sb;
    FGT_OK(fg_trainer_step(a, 4, &sa));
    FGT_OK(fg_trainer_forward(b, 4, &sb));
    FGT_OK(fg_trainer_backward(b));
    FGT_OK(fg_trainer_update(b));
    cr_assert(memcmp(&sa, &sb, sizeof sa) == 0, "step %d: statistics differ (loss %.9g vs %.9g)", k, sa.loss, sb.loss);
  }
  float *sa = malloc((size_t)numel * sizeof *sa), *sb = malloc((size_t)numel * sizeof *sb);
  FGT_OK(fg_trainer_get_state(a, sa));
  FGT_OK(fg_trainer_get_state(b, sb));
  cr_assert(memcmp(sa, sb, (size_t)numel * sizeof *sa) == 0, "the parts and fg_trainer_step give different states");
  fg_trainer_destroy(a);
  fg_trainer_destroy(b);
  free(sa);
  free(sb);
  free(images);
  fg_graph_free(g);
}

Test(external, plan_total_is_the_ledger_peak) {
  fgt_setup_cpu(1);
  fg_graph *g = mlp(1);
  fg_trainer_options o = options(1);
  fg_plan *plan = NULL;
  FGT_OK(fg_plan_build(g, &o, &plan));
  cr_assert_eq(plan->backward_at, plan->loss_at + 2, "two LOSS instructions, then backward");
  fg_ledger l;
  fg_ledger_init(&l, "external", 0);
  fg_trainer *t = make(g, &o, &l, 5);
  for (int k = 0; k < 3; k++) {
    set_batch(t, 10 + (uint64_t)k);
    run_parts(t, 1, 1);
    FGT_OK(fg_trainer_update(t));
  }
  cr_assert_eq(l.peak, plan->total, "ledger peak %zu, plan %zu", l.peak, plan->total);
  fg_trainer_destroy(t);
  fg_plan_free(plan);
  fg_graph_free(g);
}

Test(external, misuse_fails_with_a_status) {
  fgt_setup_cpu(1);
  fg_graph *g = mlp(1);
  fg_trainer_options o = options(1);
  fg_plan *plan = NULL;
  /* another term reading the external term's output */
  o.loss.terms[0].output = 1;
  cr_assert_eq(fg_plan_build(g, &o, &plan), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "external term 1") != NULL, "%s", fg_last_error());
  o = options(1);
  o.loss.n = 3;
  o.loss.terms[2] = (fg_loss_term){.kind = FG_LOSS_KL, .output = 0, .teacher = 1, .kl = {1.0f, 1.0f}};
  cr_assert_eq(fg_plan_build(g, &o, &plan), FG_ERR_INVALID, "a KL teacher on the external output");
  o = options(1);
  fg_ledger l;
  fg_ledger_init(&l, "external", 0);
  fg_trainer *t = make(g, &o, &l, 5);
  set_batch(t, 1);
  fg_step_stats st;
  fg_tensor z;
  cr_assert_eq(fg_trainer_step(t, BATCH, &st), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "external") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_trainer_compute_gradients(t, BATCH, &st), FG_ERR_INVALID);
  cr_assert_eq(fg_trainer_backward(t), FG_ERR_INVALID, "backward before forward");
  cr_assert_eq(fg_trainer_output_grad(t, 1, &z), FG_ERR_INVALID, "outside a step's gap");
  FGT_OK(fg_trainer_forward(t, BATCH, &st));
  cr_assert_eq(fg_trainer_output(t, 0, &z), FG_ERR_INVALID, "output 0 has no external term");
  cr_assert_eq(fg_trainer_output(t, 2, &z), FG_ERR_INVALID);
  FGT_OK(fg_trainer_output(t, 1, &z));
  FGT_OK(fg_trainer_evaluate(t, BATCH, &st));
  cr_assert_eq(fg_trainer_backward(t), FG_ERR_INVALID, "evaluate closes the step");
  cr_assert_eq(fg_trainer_forward(t, BATCH + 1, &st), FG_ERR_INVALID, "batch above the plan's");
  fg_trainer_destroy(t);
  cr_assert_eq(l.current, 0u);
  fg_graph_free(g);
}

/* clip_norm: with SGD (lr 1, no momentum or decay) an update moves each parameter by -c g, c =
 * min(1, clip / (||g|| + 1e-6)) over all gradients together, computed here in double from the
 * gradients the trainer reports; a bound above the norm leaves the update -g. */
Test(external, clip_norm_scales_the_gradients_together) {
  fgt_setup_cpu(2);
  fg_graph *g = mlp(0);
  const double clips[2] = {0.05, 1e6};
  for (int k = 0; k < 2; k++) {
    fg_trainer_options o;
    memset(&o, 0, sizeof o);
    o.batch = BATCH;
    o.mode = FG_EXEC_STORE;
    o.optim = fg_optim_sgd(1.0f, 0.0f, 0.0f);
    o.device = fg_host_device();
    o.loss.n = 1;
    o.loss.terms[0] = (fg_loss_term){.kind = FG_LOSS_XENT, .output = 0, .weight = 1};
    o.clip_norm = (float)clips[k];
    fg_ledger l;
    fg_ledger_init(&l, "clip", 0);
    fg_trainer *t = make(g, &o, &l, 4);
    set_batch(t, 11);
    fg_step_stats st;
    FGT_OK(fg_trainer_compute_gradients(t, BATCH, &st));
    const int64_t numel = fg_graph_state_numel(g);
    float *before = malloc((size_t)numel * sizeof *before), *after = malloc((size_t)numel * sizeof *after);
    float *grad = calloc((size_t)numel, sizeof *grad);
    FGT_OK(fg_trainer_get_state(t, before));
    double ss = 0;
    for (int p = 0; p < fg_graph_param_count(g); p++) {
      const fg_param *pr = fg_graph_param(g, p);
      FGT_OK(fg_trainer_get_grad(t, p, grad + pr->offset));
      for (int64_t i = 0; i < pr->numel; i++) ss += (double)grad[pr->offset + i] * grad[pr->offset + i];
    }
    double coef = clips[k] / (sqrt(ss) + 1e-6);
    if (coef > 1) coef = 1;
    if (k == 0) cr_assert_lt(coef, 0.5, "the small bound must clip (norm %g)", sqrt(ss));
    FGT_OK(fg_trainer_update(t));
    FGT_OK(fg_trainer_get_state(t, after));
    for (int64_t i = 0; i < numel; i++) {
      double want = (double)before[i] - coef * (double)grad[i];
      cr_assert_float_eq(after[i], want, 1e-6 + 1e-5 * fabs(want), "clip %g, state[%lld]: %.9g vs %.9g", clips[k],
                         (long long)i, (double)after[i], want);
    }
    free(before);
    free(after);
    free(grad);
    fg_trainer_destroy(t);
  }
  fg_graph_free(g);
}
