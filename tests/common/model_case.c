/* Small whole models for the plan and trainer suites: see model_case.h. */
#include "common/model_case.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/fd_check.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/nn/models.h"

fg_graph *fgt_model_build(const fgt_model_case *m) {
  fg_model_spec s = {.arch = m->arch, .width = m->width, .in_c = m->c, .in_h = m->h, .in_w = m->w, .classes = 10, .exits = m->exits, .depth = m->depth, .stage = m->stage,
                   .exit_head = (fg_exit_head)m->exit_head};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

fg_trainer_options fgt_model_options(const fgt_model_case *m, fg_exec_mode mode) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = m->batch;
  o.mode = mode;
  o.optim = fg_optim_sgd(0.05f, 0.9f, 5e-4f);
  o.device = fg_host_device();
  if (m->stage) {
    o.loss.n = 3;
    o.loss.terms[0] = (fg_loss_term){.kind = FG_LOSS_XENT, .output = 0, .weight = 1.0f};
    o.loss.terms[1] = (fg_loss_term){.kind = FG_LOSS_NHSIC, .output = 0, .weight = -1.0f,
                                     .hsic_target = FG_HSIC_INPUT, .hsic = {1.0f, 10}};
    o.loss.terms[2] = (fg_loss_term){.kind = FG_LOSS_NHSIC, .output = 1, .weight = -0.5f,
                                     .hsic_target = FG_HSIC_LABELS, .hsic = {1.0f, 10}};
  }
  return o;
}

/* A deterministic batch: images uniform in [-1, 1], labels in [0, 10). */
void fgt_model_fill_batch(fg_trainer *t, int64_t n, uint64_t seed) {
  fgt_input in;
  fgt_input_open(&in, t);
  int64_t per = fg_tensor_numel(&in.x) / in.x.shape[0];
  fgt_fill_uniform(fg_f32(&in.x), (size_t)(n * per), seed, -1.0f, 1.0f);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 1, 0);
  for (int64_t i = 0; i < n; i++) fg_i32(&in.y)[i] = (int32_t)fg_rng_below(&r, 10);
  fgt_input_load(&in, t, n);
  fgt_input_close(&in);
}

float *fgt_model_init_state(const fg_graph *g, uint64_t seed) {
  float *s = malloc((size_t)fg_graph_state_numel(g) * sizeof *s);
  fg_graph_init_state(g, seed, s);
  return s;
}

fg_trainer *fgt_model_trainer(const fg_graph *g, const fg_trainer_options *o, fg_ledger *l, const float *state) {
  fg_trainer *t = NULL;
  FGT_OK(fg_trainer_create(g, o, l, &t));
  FGT_OK(fg_trainer_set_state(t, state));
  return t;
}


/* Whole-model finite differences. For every parameter tensor with gradient g, along two unit
 * directions: v = g/|g| (the derivative there must equal |g|: by Cauchy-Schwarz only a gradient
 * with the true direction and length passes) and a random sign vector. The central difference
 * (L(p + eps v) - L(p - eps v)) / (2 eps) is compared with <g, v>. The error of the difference
 * does not scale with <g, v>: BN with beta = 0 puts many ReLU inputs next to the kink, and the
 * kinks crossed inside [-eps, eps] add an error that grows linearly with eps (measured: 15% of
 * <g, v> at eps 1e-3 on the ResNet, 2% at 1e-4), so eps is 1e-4 and the tolerance is relative
 * to |g|: 3% of |g|, plus 1e-3 for the float32 rounding of the loss (~1e-7 / 2e-4). */

static double loss_at(fg_trainer *t, const float *state, uint64_t batch_seed, int64_t n) {
  FGT_OK(fg_trainer_set_state(t, state));
  fgt_model_fill_batch(t, n, batch_seed);
  fg_step_stats st;
  FGT_OK(fg_trainer_compute_gradients(t, n, &st));
  return st.loss;
}

/* The loss with parameter p replaced by `param` (rounded to float), the rest of the state fixed:
 * the function the finite-difference checker perturbs. */
typedef struct param_loss_ctx {
  fg_trainer *t;
  const float *state;
  float *probe;
  int64_t numel;
  const fg_param *p;
  const double *param;
  uint64_t batch_seed;
  int64_t n;
} param_loss_ctx;

static double param_loss(void *ctx) {
  const param_loss_ctx *c = ctx;
  memcpy(c->probe, c->state, (size_t)c->numel * sizeof *c->probe);
  for (int64_t k = 0; k < c->p->numel; k++) c->probe[c->p->offset + k] = (float)c->param[k];
  return loss_at(c->t, c->probe, c->batch_seed, c->n);
}

/* fgt_fd_check along the one direction v (eps 1e-4, |fd - <g, v>| <= tol). */
enum { FD_STEP_INV = 10000 }; /* the central differences' step is 1 / FD_STEP_INV */

static void check_along(const char *what, param_loss_ctx *c, double *param, const double *grad, const double *v,
                        double tol) {
  const double *dirs[1] = {v};
  const fgt_fd_opts o = {1.0 / FD_STEP_INV, tol, 0.0, 1, 0.0, dirs, 1};
  fgt_fd_check(what, param_loss, c, param, c->p->numel, grad, &o);
}

void fgt_model_gradcheck(const fgt_model_case *m) {
  fgt_setup_cpu(2);
  fg_graph *g = fgt_model_build(m);
  fg_trainer_options o = fgt_model_options(m, FG_EXEC_STORE);
  o.optim.kind = FG_OPTIM_NONE;
  float *state = fgt_model_init_state(g, 21);
  fg_ledger l;
  fg_ledger_init(&l, "fd", 0);
  fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
  int64_t numel = fg_graph_state_numel(g);
  float *probe = malloc((size_t)numel * sizeof *probe), *grad = malloc((size_t)numel * sizeof *grad);
  double *param = malloc((size_t)numel * sizeof *param), *gd = malloc((size_t)numel * sizeof *gd);
  double *v = malloc((size_t)numel * sizeof *v);
  const uint64_t batch_seed = 31;
  int checked = 0;
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    const double loss = loss_at(t, state, batch_seed, m->batch);
    FGT_OK(fg_trainer_get_grad(t, i, grad));
    double gnorm = 0;
    for (int64_t k = 0; k < p->numel; k++) gnorm += (double)grad[k] * grad[k];
    gnorm = sqrt(gnorm);
    cr_assert_gt(gnorm, 0.0, "%s: zero gradient", p->name);
    /* The loss comes from a float32 forward, resolved to a few ulps of its value: a central
     * difference of step h cannot tell apart slopes closer than about 2 |loss| FLT_EPSILON / h
     * (5e-3 at a loss of 2.3 and h 1e-4), so a parameter whose true slope is near 0 (a gate's BN
     * on a 2x2 map) needs that much absolute room; the relative part checks the rest. */
    const double noise = 2.0 * fabs(loss) * FLT_EPSILON * FD_STEP_INV;
    const double tol = 0.03 * gnorm + (noise > 1e-3 ? noise : 1e-3);
    for (int64_t k = 0; k < p->numel; k++) {
      param[k] = state[p->offset + k];
      gd[k] = grad[k];
      v[k] = grad[k] / gnorm;
    }
    param_loss_ctx c = {t, state, probe, numel, p, param, batch_seed, m->batch};
    char what[160];
    snprintf(what, sizeof what, "%s along its gradient (|g| %.6g)", p->name, gnorm);
    check_along(what, &c, param, gd, v, tol);
    fg_rng r = fg_rng_stream(5, FG_RNG_TEST, (uint64_t)i, 0);
    const double vn = sqrt((double)p->numel);
    for (int64_t k = 0; k < p->numel; k++) v[k] = (fg_rng_u32(&r) & 1 ? 1.0 : -1.0) / vn;
    snprintf(what, sizeof what, "%s along a random direction", p->name);
    check_along(what, &c, param, gd, v, tol);
    checked++;
  }
  cr_assert_gt(checked, 5);
  fg_trainer_destroy(t);
  free(v), free(gd), free(param), free(grad), free(probe), free(state);
  fg_graph_free(g);
}

