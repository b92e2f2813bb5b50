/* The executor: regions from a plan, and one op call per instruction. */
#include "engine/nn/trainer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_check.h"
#include "engine/base/rng.h"

struct fg_trainer {
  const fg_graph *g;
  const fg_plan *plan;
  fg_plan *owned_plan;  /* the plan when the trainer built it (fg_trainer_create), else NULL */
  fg_optim_config optim;/* the plan's optimizer, with this trainer's learning rate */
  fg_param_group group; /* the trained parameters, their gradients and optimizer state: one step */
  fg_tensor *group_views;     /* [4 x group.count]: the views group points to */
  fg_tensor **group_pointers; /* [4 x group.count] */
  fg_region region[FG_PLAN_REGIONS];
  fg_device device;
  int64_t n;            /* samples in the running step */
  int64_t step;         /* steps run (dropout streams) */
  int64_t optim_step;   /* optimizer steps since the last reset (Adam) */
  uint64_t drop_seed, drop_stream;
  fg_loss_spec loss;    /* effective loss terms */
  float bn_momentum;    /* > 0: overrides every BN layer's momentum */
  int in_gap;           /* a step's forward part ran; its backward part has not */
};

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                    */

fg_status fg_trainer_create(const fg_graph *g, const fg_trainer_options *o, fg_ledger *ledger,
                            fg_trainer **out) {
  *out = NULL;
  fg_plan *plan;
  FG_TRY(fg_plan_build(g, o, &plan));
  fg_status s = fg_trainer_create_planned(g, plan, ledger, out);
  if (s != FG_OK) {
    fg_plan_free(plan);
    return s;
  }
  (*out)->owned_plan = plan;
  return FG_OK;
}

static fg_status build_group(fg_trainer *t);
static fg_tensor view(const fg_trainer *t, void *data, fg_dtype dtype, int ndim, const int64_t *shape);

fg_status fg_trainer_create_planned(const fg_graph *g, const fg_plan *plan, fg_ledger *ledger, fg_trainer **out) {
  *out = NULL;
  if (!plan || plan->n_nodes != fg_graph_node_count(g))
    return FG_FAIL(FG_ERR_INVALID, "trainer: the plan is missing or was built for another graph");
  fg_trainer *t = calloc(1, sizeof *t);
  if (!t) return FG_FAIL(FG_ERR_OOM, "trainer: out of memory");
  const fg_trainer_options *o = &plan->opt;
  t->g = g;
  t->plan = plan;
  t->optim = o->optim;
  t->device = o->device;
  t->loss = fg_loss_effective(g, &o->loss);
  for (int r = 0; r < FG_PLAN_REGIONS; r++) {
    fg_status s = fg_region_alloc(&t->region[r], ledger, o->device,
                                  fg_plan_region_category((fg_plan_region)r), plan->region_bytes[r],
                                  fg_plan_region_name((fg_plan_region)r));
    if (s != FG_OK) {
      fg_trainer_destroy(t);
      return s;
    }
  }
  fg_status s = build_group(t);
  if (s == FG_OK) s = fg_trainer_reset_optimizer(t);
  if (s == FG_OK && plan->region_bytes[FG_REGION_PROX]) { /* c = 0 until set */
    int64_t n = plan->grad_numel;
    fg_tensor c = view(t, t->region[FG_REGION_PROX].ptr, FG_F32, 1, &n);
    s = fg_fill(&c, 0.0f);
  }
  if (s != FG_OK) {
    fg_trainer_destroy(t);
    return s;
  }
  *out = t;
  return FG_OK;
}

void fg_trainer_destroy(fg_trainer *t) {
  if (!t) return;
  for (int r = FG_PLAN_REGIONS - 1; r >= 0; r--) fg_region_free(&t->region[r]);
  fg_plan_free(t->owned_plan);
  free(t->group_views);
  free(t->group_pointers);
  free(t);
}

const fg_plan *fg_trainer_plan(const fg_trainer *t) { return t->plan; }
const fg_graph *fg_trainer_graph(const fg_trainer *t) { return t->g; }

/* ------------------------------------------------------------------------------------------ */
/* Views                                                                                       */

static fg_tensor view(const fg_trainer *t, void *data, fg_dtype dtype, int ndim, const int64_t *shape) {
  return fg_tensor_view(data, dtype, t->device, ndim, shape);
}

static float *region_f32(const fg_trainer *t, fg_plan_region r) { return (float *)t->region[r].ptr; }

static void *vbuf_ptr(const fg_trainer *t, int v) {
  const fg_vbuf *vb = &t->plan->vbufs[v];
  fg_plan_region r = vb->arena == FG_ARENA_ACT ? FG_REGION_ACT
                     : vb->arena == FG_ARENA_WS ? FG_REGION_WS
                                                : FG_REGION_IMAGES;
  return (char *)t->region[r].ptr + vb->offset;
}

/* Value (or gradient) of node i for the running batch, stored in vbuf v. */
static fg_tensor node_tensor(const fg_trainer *t, int i, int v, fg_dtype dtype) {
  const fg_node *n = fg_graph_node(t->g, i);
  int64_t shape[4] = {t->n, n->shape[0], n->shape[1], n->shape[2]};
  return view(t, vbuf_ptr(t, v), dtype, n->ndim + 1, shape);
}

static fg_tensor param_tensor(const fg_trainer *t, int p) {
  const fg_param *pa = fg_graph_param(t->g, p);
  return view(t, region_f32(t, FG_REGION_STATE) + pa->offset, FG_F32, pa->ndim, pa->shape);
}

static int has_grad(const fg_trainer *t, int p) { return p >= 0 && t->plan->grad_offset[p] >= 0; }

static fg_tensor grad_tensor(const fg_trainer *t, int p) {
  const fg_param *pa = fg_graph_param(t->g, p);
  return view(t, region_f32(t, FG_REGION_GRADS) + t->plan->grad_offset[p], FG_F32, pa->ndim, pa->shape);
}

/* The proximal term's linear part of parameter p (with a gradient), laid out as its gradient. */
static fg_tensor prox_tensor(const fg_trainer *t, int p) {
  const fg_param *pp = fg_graph_param(t->g, p);
  return view(t, region_f32(t, FG_REGION_PROX) + t->plan->grad_offset[p], FG_F32, pp->ndim, pp->shape);
}

static fg_tensor channel_tensor(const fg_trainer *t, int v, int64_t c) {
  return view(t, vbuf_ptr(t, v), FG_F32, 1, &c);
}

static fg_tensor labels_tensor(const fg_trainer *t) {
  return view(t, t->region[FG_REGION_LABELS].ptr, FG_I32, 1, &t->n);
}

static fg_workspace workspace(const fg_trainer *t, int v) {
  fg_workspace ws = {NULL, 0};
  if (v > 0) {
    ws.ptr = vbuf_ptr(t, v);
    ws.bytes = t->plan->vbufs[v].bytes;
  }
  return ws;
}

static uint64_t dropout_key(const fg_trainer *t, int node) {
  return fg_rng_key(t->drop_seed, FG_RNG_DROPOUT, (t->drop_stream << 20) ^ (uint64_t)node,
                    (uint64_t)t->step);
}

/* The group one optimizer step updates: every parameter with a gradient under the plan, in
 * parameter order, with its state (momentum buffer, or Adam's m then v) from the optimizer
 * region. Views into the trainer's regions, made once. */
static fg_status build_group(fg_trainer *t) {
  int count = 0;
  for (int p = 0; p < fg_graph_param_count(t->g); p++) count += has_grad(t, p);
  if (count == 0 || t->plan->opt.optim.kind == FG_OPTIM_NONE) return FG_OK;
  t->group_views = calloc((size_t)count * 4, sizeof *t->group_views);
  t->group_pointers = calloc((size_t)count * 4, sizeof *t->group_pointers);
  if (!t->group_views || !t->group_pointers) return FG_FAIL(FG_ERR_OOM, "trainer: out of memory");
  const int states = fg_optim_state_per_param(&t->plan->opt.optim);
  fg_tensor **ptr[4];
  for (int k = 0; k < 4; k++) ptr[k] = t->group_pointers + (size_t)k * (size_t)count;
  int i = 0;
  for (int p = 0; p < fg_graph_param_count(t->g); p++) {
    if (!has_grad(t, p)) continue;
    fg_tensor *v = t->group_views + (size_t)i * 4;
    v[0] = param_tensor(t, p);
    v[1] = grad_tensor(t, p);
    int64_t n = fg_tensor_numel(&v[0]);
    float *state = t->plan->optim_offset[p] >= 0 ? region_f32(t, FG_REGION_OPTIM) + t->plan->optim_offset[p] : NULL;
    for (int s = 0; s < states; s++) v[2 + s] = view(t, state + s * n, FG_F32, 1, &n);
    for (int k = 0; k < 4; k++) ptr[k][i] = &v[k];
    i++;
  }
  t->group.count = count;
  t->group.param = ptr[0];
  t->group.grad = (const fg_tensor *const *)ptr[1];
  t->group.state[0] = states > 0 ? ptr[2] : NULL;
  t->group.state[1] = states > 1 ? ptr[3] : NULL;
  return FG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Instructions                                                                                */

static fg_status run_forward(fg_trainer *t, const fg_instr *in) {
  const fg_node *n = fg_graph_node(t->g, in->node);
  fg_tensor x = node_tensor(t, n->in[0], in->in[0], FG_F32);
  fg_tensor y = node_tensor(t, in->node, in->out, FG_F32);
  switch (n->kind) {
    case FG_NODE_CONV: {
      fg_tensor w = param_tensor(t, n->param[0]);
      fg_tensor b = n->param[1] >= 0 ? param_tensor(t, n->param[1]) : w;
      return fg_conv2d_forward(&n->conv, &x, &w, n->param[1] >= 0 ? &b : NULL, &y, workspace(t, in->ws));
    }
    case FG_NODE_LINEAR: {
      fg_tensor w = param_tensor(t, n->param[0]);
      fg_tensor b = n->param[1] >= 0 ? param_tensor(t, n->param[1]) : w;
      return fg_linear_forward(&x, &w, n->param[1] >= 0 ? &b : NULL, &y);
    }
    case FG_NODE_BN: {
      fg_tensor gamma = param_tensor(t, n->param[0]), beta = param_tensor(t, n->param[1]);
      fg_tensor rm = param_tensor(t, n->buffer[0]), rv = param_tensor(t, n->buffer[1]);
      if (in->aux[0] < 0) return fg_bn_forward_eval(&x, &gamma, &beta, &rm, &rv, n->bn_eps, &y);
      fg_tensor mean = channel_tensor(t, in->aux[0], n->shape[0]);
      fg_tensor invstd = channel_tensor(t, in->aux[1], n->shape[0]);
      return fg_bn_forward_train(&x, &gamma, &beta, &y, &mean, &invstd,
                                 in->update_running ? &rm : NULL, in->update_running ? &rv : NULL,
                                 t->bn_momentum > 0 ? t->bn_momentum : n->bn_momentum, n->bn_eps);
    }
    case FG_NODE_RELU: return fg_relu_forward(&x, &y);
    case FG_NODE_MAXPOOL: {
      fg_tensor am = node_tensor(t, in->node, in->aux[0] > 0 ? in->aux[0] : in->out, FG_U8);
      return fg_maxpool_forward(&n->pool, &x, &y, in->aux[0] > 0 ? &am : NULL);
    }
    case FG_NODE_AVGPOOL: return fg_avgpool_global_forward(&x, &y);
    case FG_NODE_ADD: {
      fg_tensor x2 = node_tensor(t, n->in[1], in->in[1], FG_F32);
      return fg_add(&x, &x2, &y);
    }
    case FG_NODE_DROPOUT: return fg_dropout_forward(&x, &y, n->p, dropout_key(t, in->node));
    case FG_NODE_SCALE: return fg_scale(n->alpha, &x, &y);
    case FG_NODE_SIGMOID: return fg_sigmoid_forward(&x, &y);
    case FG_NODE_MUL: {
      fg_tensor x2 = node_tensor(t, n->in[1], in->in[1], FG_F32);
      return fg_mul(&x, &x2, &y, 0);
    }
    case FG_NODE_UPSAMPLE2X: return fg_upsample2x_bilinear_forward(&x, &y);
    default: break;
  }
  return FG_FAIL(FG_ERR_INTERNAL, "trainer: node '%s' has no forward instruction", n->name);
}

static fg_status run_backward(fg_trainer *t, const fg_instr *in) {
  const fg_node *n = fg_graph_node(t->g, in->node);
  int x_node = n->in[0];
  fg_tensor dy = node_tensor(t, in->node, in->dout, FG_F32);
  fg_tensor dx = in->din[0] > 0 ? node_tensor(t, x_node, in->din[0], FG_F32) : dy;
  fg_tensor *dxp = in->din[0] > 0 ? &dx : NULL;
  int acc = in->din_acc[0];
  switch (n->kind) {
    case FG_NODE_CONV: {
      fg_tensor w = param_tensor(t, n->param[0]);
      fg_workspace ws = workspace(t, in->ws);
      if (has_grad(t, n->param[0])) {
        fg_tensor x = node_tensor(t, x_node, in->in[0], FG_F32);
        fg_tensor dw = grad_tensor(t, n->param[0]);
        fg_tensor db = has_grad(t, n->param[1]) ? grad_tensor(t, n->param[1]) : dw;
        FG_TRY(fg_conv2d_backward_filter(&n->conv, &x, &dy, &dw, has_grad(t, n->param[1]) ? &db : NULL, ws));
      }
      return dxp ? fg_conv2d_backward_data(&n->conv, &dy, &w, dxp, acc, ws) : FG_OK;
    }
    case FG_NODE_LINEAR: {
      fg_tensor w = param_tensor(t, n->param[0]);
      if (has_grad(t, n->param[0]) || has_grad(t, n->param[1])) {
        fg_tensor x = node_tensor(t, x_node, in->in[0], FG_F32);
        fg_tensor dw = has_grad(t, n->param[0]) ? grad_tensor(t, n->param[0]) : w;
        fg_tensor db = has_grad(t, n->param[1]) ? grad_tensor(t, n->param[1]) : w;
        FG_TRY(fg_linear_backward_params(&x, &dy, has_grad(t, n->param[0]) ? &dw : NULL,
                                         has_grad(t, n->param[1]) ? &db : NULL));
      }
      return dxp ? fg_linear_backward_data(&dy, &w, dxp, acc) : FG_OK;
    }
    case FG_NODE_BN: {
      fg_tensor x = node_tensor(t, x_node, in->in[0], FG_F32);
      fg_tensor gamma = param_tensor(t, n->param[0]);
      fg_tensor mean = channel_tensor(t, in->aux[0], n->shape[0]);
      fg_tensor invstd = channel_tensor(t, in->aux[1], n->shape[0]);
      fg_tensor dg = has_grad(t, n->param[0]) ? grad_tensor(t, n->param[0]) : gamma;
      fg_tensor dbeta = has_grad(t, n->param[1]) ? grad_tensor(t, n->param[1]) : gamma;
      return fg_bn_backward(&dy, &x, &gamma, &mean, &invstd, dxp,
                            has_grad(t, n->param[0]) ? &dg : NULL,
                            has_grad(t, n->param[1]) ? &dbeta : NULL, acc);
    }
    case FG_NODE_RELU: {
      fg_tensor y = node_tensor(t, in->node, in->self_out, FG_F32);
      return fg_relu_backward(&y, &dy, &dx, acc);
    }
    case FG_NODE_MAXPOOL: {
      fg_tensor am = node_tensor(t, in->node, in->aux[0], FG_U8);
      return fg_maxpool_backward(&n->pool, &dy, &am, &dx, acc);
    }
    case FG_NODE_AVGPOOL: return fg_avgpool_global_backward(&dy, &dx, acc);
    case FG_NODE_DROPOUT: return fg_dropout_backward(&dy, &dx, n->p, dropout_key(t, in->node), acc);
    case FG_NODE_SCALE: return acc ? fg_axpy(n->alpha, &dy, &dx) : fg_scale(n->alpha, &dy, &dx);
    case FG_NODE_SIGMOID: {
      fg_tensor y = node_tensor(t, in->node, in->self_out, FG_F32);
      return dxp ? fg_sigmoid_backward(&y, &dy, dxp, acc) : FG_OK;
    }
    case FG_NODE_UPSAMPLE2X: return dxp ? fg_upsample2x_bilinear_backward(&dy, dxp, acc) : FG_OK;
    case FG_NODE_MUL: /* d(x1 x2) = dy x2 to x1, dy x1 to x2 */
      for (int k = 0; k < 2; k++) {
        if (in->din[k] <= 0) continue;
        fg_tensor g = node_tensor(t, n->in[k], in->din[k], FG_F32);
        fg_tensor other = node_tensor(t, n->in[1 - k], in->in[1 - k], FG_F32);
        FG_TRY(fg_mul(&dy, &other, &g, in->din_acc[k]));
      }
      return FG_OK;
    case FG_NODE_ADD:
      for (int k = 0; k < 2; k++) {
        if (in->din[k] <= 0) continue;
        fg_tensor g = node_tensor(t, n->in[k], in->din[k], FG_F32);
        if (in->din_acc[k]) {
          FG_TRY(fg_axpy(1.0f, &dy, &g));
        } else if (g.data != dy.data) {
          FG_TRY(fg_copy(&dy, &g));
        }
      }
      return FG_OK;
    default: break;
  }
  return FG_FAIL(FG_ERR_INTERNAL, "trainer: node '%s' has no backward instruction", n->name);
}

/* The class mask of the running loss, or NULL. */
static const fg_tensor *class_mask(const fg_trainer *t, fg_tensor *buf) {
  if (!t->loss.class_mask || !t->region[FG_REGION_CLASS_MASK].ptr) return NULL;
  const fg_node *logits = fg_graph_node(t->g, fg_graph_output_node(t->g, 0));
  *buf = view(t, t->region[FG_REGION_CLASS_MASK].ptr, FG_F32, 1, &logits->shape[0]);
  return buf;
}

/* weight * nHSIC(feature; input or labels). A batch of one sample has no dependence to
 * measure: the term is 0 and its gradient zero. */
static fg_status run_nhsic(fg_trainer *t, const fg_instr *in, const fg_loss_term *lt, fg_step_stats *st) {
  int f_node = fg_graph_feature_node(t->g, lt->output);
  fg_tensor z = node_tensor(t, f_node, in->in[0], FG_F32);
  fg_tensor dz = in->din[0] > 0 ? node_tensor(t, f_node, in->din[0], FG_F32) : z;
  double value = 0.0;
  if (t->n < 2) {
    if (in->din[0] > 0 && !in->din_acc[0]) FG_TRY(fg_fill(&dz, 0.0f));
  } else {
    fg_tensor labels = labels_tensor(t), x = node_tensor(t, 0, 0, FG_F32);
    FG_TRY(fg_nhsic(&lt->hsic, &z, lt->hsic_target == FG_HSIC_INPUT ? &x : NULL, &labels, lt->weight,
                    in->din[0] > 0 ? &dz : NULL, in->din_acc[0], workspace(t, in->ws), &value));
  }
  st->term_value[in->node] = value;
  st->loss += (double)lt->weight * value;
  return FG_OK;
}

static fg_status run_loss(fg_trainer *t, const fg_instr *in, fg_step_stats *st) {
  fg_tensor labels = labels_tensor(t);
  if (in->eval) {
    int ensemble = in->node < 0;
    int node = fg_graph_output_node(t->g, ensemble ? 0 : in->node);
    fg_tensor z = node_tensor(t, node, in->in[0], FG_F32);
    if (ensemble) return fg_softmax_xent(&z, &labels, NULL, 1.0f, NULL, 0, &st->ensemble_loss, &st->ensemble_correct);
    return fg_softmax_xent(&z, &labels, NULL, 1.0f, NULL, 0, &st->output_loss[in->node], &st->correct[in->node]);
  }
  const fg_loss_term *lt = &t->loss.terms[in->node];
  if (lt->kind == FG_LOSS_EXTERNAL) return FG_OK; /* the caller writes the gradient */
  if (lt->kind == FG_LOSS_NHSIC) return run_nhsic(t, in, lt, st);
  int s_node = fg_graph_output_node(t->g, lt->output);
  fg_tensor z = node_tensor(t, s_node, in->in[0], FG_F32);
  fg_tensor dz = in->din[0] > 0 ? node_tensor(t, s_node, in->din[0], FG_F32) : z;
  double loss = 0.0;
  if (lt->kind == FG_LOSS_XENT) {
    fg_tensor mask;
    FG_TRY(fg_softmax_xent(&z, &labels, class_mask(t, &mask), lt->weight, in->din[0] > 0 ? &dz : NULL, in->din_acc[0], &loss,
                           &st->correct[lt->output]));
  } else {
    int t_node = fg_graph_output_node(t->g, lt->teacher);
    fg_tensor zt = node_tensor(t, t_node, in->in[1], FG_F32);
    fg_tensor dzt = in->din[1] > 0 ? node_tensor(t, t_node, in->din[1], FG_F32) : zt;
    /* One accumulate flag serves both gradients: when only one of them already holds a
     * gradient, the fresh one starts from zero and both accumulate. */
    int both = in->din[0] > 0 && in->din[1] > 0, acc = in->din[0] > 0 ? in->din_acc[0] : in->din_acc[1];
    if (both && in->din_acc[0] != in->din_acc[1]) {
      FG_TRY(fg_fill(in->din_acc[0] ? &dzt : &dz, 0.0f));
      acc = 1;
    }
    FG_TRY(fg_kl_div(&lt->kl, &z, &zt, in->din[0] > 0 ? &dz : NULL, in->din[1] > 0 ? &dzt : NULL, acc, &loss));
  }
  st->term_value[in->node] = loss;
  st->loss += loss;
  return FG_OK;
}

static fg_status run_instr(fg_trainer *t, const fg_instr *in, fg_step_stats *st) {
  switch (in->kind) {
    case FG_I_FORWARD:
    case FG_I_RECOMPUTE: return run_forward(t, in);
    case FG_I_LOSS: return run_loss(t, in, st);
    case FG_I_BACKWARD: return run_backward(t, in);
    case FG_I_ACCUMULATE: {
      const fg_node *n = fg_graph_node(t->g, in->node);
      fg_tensor dy = node_tensor(t, in->node, in->dout, FG_F32);
      fg_tensor dx = node_tensor(t, n->in[0], in->din[0], FG_F32);
      return fg_axpy(1.0f, &dy, &dx);
    }
    case FG_I_ENSEMBLE: {
      int node = fg_graph_output_node(t->g, in->node);
      float share = 1.0f / (float)fg_graph_output_count(t->g);
      fg_tensor z = node_tensor(t, node, in->in[0], FG_F32);
      fg_tensor mean = node_tensor(t, fg_graph_output_node(t->g, 0), in->out, FG_F32);
      return in->accumulate ? fg_axpy(share, &z, &mean) : fg_scale(share, &z, &mean);
    }
  }
  return FG_FAIL(FG_ERR_INTERNAL, "trainer: unknown instruction %d", (int)in->kind);
}

/* Starts a program on the first n samples: checks n, clears the statistics. */
static fg_status begin_program(fg_trainer *t, int64_t n, fg_step_stats *st) {
  if (n <= 0 || n > t->plan->opt.batch)
    return FG_FAIL(FG_ERR_INVALID, "trainer: batch of %lld samples, the plan holds 1..%lld", (long long)n,
                   (long long)t->plan->opt.batch);
  memset(st, 0, sizeof *st);
  st->n_outputs = fg_graph_output_count(t->g);
  st->count = n;
  t->n = n;
  return FG_OK;
}

/* Runs instructions [from, to) of prog. */
static fg_status run_range(fg_trainer *t, const fg_instr *prog, int from, int to, fg_step_stats *st) {
  for (int k = from; k < to; k++) {
    fg_status s = run_instr(t, &prog[k], st);
    if (s != FG_OK) {
      const fg_instr *in = &prog[k];
      if (in->kind != FG_I_LOSS && in->kind != FG_I_ENSEMBLE) fg_error_prefix("%s", fg_graph_node(t->g, in->node)->name);
      return s;
    }
  }
  return FG_OK;
}

static fg_status run_program(fg_trainer *t, const fg_instr *prog, int count, int64_t n, fg_step_stats *st) {
  FG_TRY(begin_program(t, n, st));
  return run_range(t, prog, 0, count, st);
}

/* ------------------------------------------------------------------------------------------ */
/* Public operations                                                                           */

fg_status fg_trainer_set_batch(fg_trainer *t, const fg_tensor *images, const fg_tensor *labels) {
  static const char op[] = "trainer input";
  const fg_node *in = fg_graph_node(t->g, 0);
  FG_TRY(fg_check_tensor(op, "images", images, FG_F32, 4, 4));
  int64_t n = images->shape[0];
  if (n < 1 || n > t->plan->opt.batch)
    return FG_FAIL(FG_ERR_SHAPE, "%s: a batch of %lld samples, the plan holds 1..%lld", op, (long long)n,
                   (long long)t->plan->opt.batch);
  for (int d = 0; d < 3; d++) FG_TRY(fg_check_extent(op, "images", images, d + 1, in->shape[d]));
  int64_t shape[4] = {n, in->shape[0], in->shape[1], in->shape[2]};
  fg_tensor dst = view(t, t->region[FG_REGION_IMAGES].ptr, FG_F32, 4, shape);
  FG_TRY(fg_tensor_transfer(&dst, images));
  if (labels) {
    FG_TRY(fg_check_tensor(op, "labels", labels, FG_I32, 1, 1));
    FG_TRY(fg_check_extent(op, "labels", labels, 0, n));
    fg_tensor ldst = view(t, t->region[FG_REGION_LABELS].ptr, FG_I32, 1, &n);
    FG_TRY(fg_tensor_transfer(&ldst, labels));
  }
  return FG_OK;
}

fg_tensor fg_trainer_state(const fg_trainer *t) {
  int64_t n = fg_graph_state_numel(t->g);
  return view(t, t->region[FG_REGION_STATE].ptr, FG_F32, 1, &n);
}

fg_status fg_trainer_set_state(fg_trainer *t, const float *host_state) {
  fg_tensor s = fg_trainer_state(t);
  return fg_tensor_from_host(&s, host_state, fg_tensor_bytes(&s));
}

fg_status fg_trainer_get_state(const fg_trainer *t, float *host_state) {
  fg_tensor s = fg_trainer_state(t);
  return fg_tensor_to_host(host_state, &s, fg_tensor_bytes(&s));
}

fg_status fg_trainer_get_grad(const fg_trainer *t, int param, float *host) {
  if (param < 0 || param >= fg_graph_param_count(t->g) || !has_grad(t, param))
    return FG_FAIL(FG_ERR_INVALID, "trainer: parameter %d has no gradient under this plan", param);
  fg_tensor g = grad_tensor(t, param);
  return fg_tensor_to_host(host, &g, fg_tensor_bytes(&g));
}

fg_status fg_trainer_reset_optimizer(fg_trainer *t) {
  t->optim_step = 0;
  if (t->plan->optim_numel == 0) return FG_OK;
  int64_t n = t->plan->optim_numel;
  fg_tensor s = view(t, t->region[FG_REGION_OPTIM].ptr, FG_F32, 1, &n);
  return fg_fill(&s, 0.0f);
}

void fg_trainer_set_lr(fg_trainer *t, float lr) {
  t->optim.sgd.lr = lr;
  t->optim.adam.lr = lr;
}

void fg_trainer_set_dropout_stream(fg_trainer *t, uint64_t seed, uint64_t stream) {
  t->drop_seed = seed;
  t->drop_stream = stream;
  t->step = 0;
}

fg_status fg_trainer_set_class_mask(fg_trainer *t, const float *host_mask) {
  fg_tensor buf;
  const fg_tensor *m = class_mask(t, &buf);
  if (!m) return FG_FAIL(FG_ERR_INVALID, "trainer: this plan's loss does not mask classes");
  return fg_tensor_from_host(&buf, host_mask, fg_tensor_bytes(&buf));
}

fg_status fg_trainer_set_prox_linear(fg_trainer *t, const float *host) {
  if (!(t->plan->opt.prox_mu > 0) || !t->region[FG_REGION_PROX].ptr)
    return FG_FAIL(FG_ERR_INVALID, "trainer: this plan has no proximal term (prox_mu 0)");
  for (int p = 0; p < fg_graph_param_count(t->g); p++) {
    if (!has_grad(t, p)) continue;
    fg_tensor c = prox_tensor(t, p);
    FG_TRY(fg_tensor_from_host(&c, host + fg_graph_param(t->g, p)->offset, fg_tensor_bytes(&c)));
  }
  return FG_OK;
}

void fg_trainer_set_bn_momentum(fg_trainer *t, float momentum) { t->bn_momentum = momentum; }

fg_status fg_trainer_set_loss_weight(fg_trainer *t, int term, float weight) {
  if (term < 0 || term >= t->loss.n)
    return FG_FAIL(FG_ERR_INVALID, "trainer: loss term %d, the loss has %d", term, t->loss.n);
  if (t->loss.terms[term].kind == FG_LOSS_KL)
    t->loss.terms[term].kl.weight = weight;
  else
    t->loss.terms[term].weight = weight;
  return FG_OK;
}

/* The step ends (dropout streams move on); no backward part is pending any more. */
static void end_step(fg_trainer *t) {
  t->step++;
  t->in_gap = 0;
}

fg_status fg_trainer_forward(fg_trainer *t, int64_t n, fg_step_stats *st) {
  t->in_gap = 0;
  if (t->plan->opt.mode == FG_EXEC_INFERENCE)
    return FG_FAIL(FG_ERR_INVALID, "trainer: an inference trainer cannot train");
  fg_status s = begin_program(t, n, st);
  if (s == FG_OK) s = run_range(t, t->plan->train, 0, t->plan->backward_at, st);
  if (s != FG_OK || !isfinite(st->loss)) {
    end_step(t);
    return s != FG_OK ? s : FG_FAIL(FG_ERR_NUMERIC, "training loss is %g at step %lld", st->loss, (long long)t->step);
  }
  t->in_gap = 1;
  return FG_OK;
}

fg_status fg_trainer_backward(fg_trainer *t) {
  if (!t->in_gap)
    return FG_FAIL(FG_ERR_INVALID, "trainer: backward without a forward (fg_trainer_forward) before it");
  fg_step_stats unused;
  fg_status s = run_range(t, t->plan->train, t->plan->backward_at, t->plan->n_train, &unused);
  end_step(t);
  return s;
}

/* The LOSS instruction of the external term on output k, or NULL. */
static const fg_instr *external_loss(const fg_trainer *t, int k) {
  for (int i = t->plan->loss_at; i < t->plan->backward_at; i++) {
    const fg_instr *in = &t->plan->train[i];
    if (in->kind != FG_I_LOSS) continue;
    const fg_loss_term *lt = &t->loss.terms[in->node];
    if (lt->kind == FG_LOSS_EXTERNAL && lt->output == k) return in;
  }
  return NULL;
}

/* The buffer of output k's value (grad 0) or gradient (grad 1) in the gap of a step. */
static fg_status external_tensor(const fg_trainer *t, int k, int grad, fg_tensor *out) {
  const char *what = grad ? "output_grad" : "output";
  const fg_instr *in = external_loss(t, k);
  if (!in)
    return FG_FAIL(FG_ERR_INVALID, "trainer %s: output %d has no external loss term in this plan", what, k);
  if (!t->in_gap)
    return FG_FAIL(FG_ERR_INVALID, "trainer %s: only between fg_trainer_forward and fg_trainer_backward", what);
  int v = grad ? in->din[0] : in->in[0];
  if (v <= 0)
    return FG_FAIL(FG_ERR_INVALID, "trainer %s: output %d depends on no trainable parameter: no gradient", what, k);
  *out = node_tensor(t, fg_graph_output_node(t->g, k), v, FG_F32);
  return FG_OK;
}

fg_status fg_trainer_output(const fg_trainer *t, int k, fg_tensor *value) {
  return external_tensor(t, k, 0, value);
}

fg_status fg_trainer_output_grad(const fg_trainer *t, int k, fg_tensor *grad) {
  return external_tensor(t, k, 1, grad);
}

/* FG_ERR_INVALID when a loss term's gradient comes from the caller. */
static fg_status check_no_external(const fg_trainer *t) {
  for (int k = 0; k < t->loss.n; k++)
    if (t->loss.terms[k].kind == FG_LOSS_EXTERNAL)
      return FG_FAIL(FG_ERR_INVALID,
                     "trainer: loss term %d is external: its gradient comes from the caller (fg_trainer_forward, "
                     "fg_trainer_output_grad, fg_trainer_backward)",
                     k);
  return FG_OK;
}

fg_status fg_trainer_compute_gradients(fg_trainer *t, int64_t n, fg_step_stats *st) {
  FG_TRY(check_no_external(t));
  FG_TRY(fg_trainer_forward(t, n, st));
  return fg_trainer_backward(t);
}

/* clip_norm > 0 (fg_trainer_options): the group's gradients scaled together so that their joint L2
 * norm is at most clip_norm (PyTorch's clip_grad_norm_: coefficient clip / (norm + 1e-6), applied
 * when below 1). */
static fg_status clip_gradients(fg_trainer *t) {
  const double clip = t->plan->opt.clip_norm;
  if (!(clip > 0)) return FG_OK;
  double total = 0;
  for (int i = 0; i < t->group.count; i++) {
    double ss = 0;
    FG_TRY(fg_sum_squares(t->group.grad[i], &ss));
    total += ss;
  }
  const double coef = clip / (sqrt(total) + 1e-6);
  if (!(coef < 1.0)) return FG_OK;
  for (int i = 0; i < t->group.count; i++) {
    fg_tensor *grad = &t->group_views[(size_t)i * 4 + 1]; /* the trainer's own gradient view */
    FG_TRY(fg_scale((float)coef, grad, grad));
  }
  return FG_OK;
}

/* prox_mu > 0 (fg_trainer_options): every trained parameter's gradient gets prox_mu θ + c. */
static fg_status add_prox_gradients(fg_trainer *t) {
  const float mu = t->plan->opt.prox_mu;
  if (!(mu > 0)) return FG_OK;
  for (int p = 0; p < fg_graph_param_count(t->g); p++) {
    if (!has_grad(t, p)) continue;
    fg_tensor theta = param_tensor(t, p), grad = grad_tensor(t, p), c = prox_tensor(t, p);
    FG_TRY(fg_axpy(mu, &theta, &grad));
    FG_TRY(fg_axpy(1.0f, &c, &grad));
  }
  return FG_OK;
}

static fg_status apply_update(fg_trainer *t) {
  if (t->optim.kind == FG_OPTIM_NONE || t->group.count == 0) return FG_OK;
  FG_TRY(add_prox_gradients(t));
  FG_TRY(clip_gradients(t));
  t->optim_step++;
  fg_status s = fg_optim_update(&t->optim, t->optim_step, &t->group);
  if (s != FG_OK) fg_error_prefix("optimizer");
  return s;
}

fg_status fg_trainer_update(fg_trainer *t) { return apply_update(t); }

fg_status fg_trainer_step(fg_trainer *t, int64_t n, fg_step_stats *st) {
  FG_TRY(fg_trainer_compute_gradients(t, n, st));
  return apply_update(t);
}

fg_status fg_trainer_evaluate(fg_trainer *t, int64_t n, fg_step_stats *st) {
  t->in_gap = 0; /* the eval program reuses the train program's buffers */
  return run_program(t, t->plan->eval, t->plan->n_eval, n, st);
}
