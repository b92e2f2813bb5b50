/* Plan-time capability check: every op a plan's programs will call, asked of the backend of the
 * plan's device before anything is allocated (engine/backend/ops.h, fg_op_supported). The op
 * each instruction runs is the one engine/nn/trainer.c calls for it. */
#include <stdio.h>

#include "engine/backend/ops.h"
#include "engine/nn/plan.h"

typedef struct support_ctx {
  const fg_graph *g;
  const fg_plan *p;
} support_ctx;

/* Node i's value for the plan's batch as a shape descriptor [batch, per-sample shape]. */
static fg_tensor node_shape(const support_ctx *c, int i) {
  const fg_node *n = fg_graph_node(c->g, i);
  const int64_t shape[4] = {c->p->opt.batch, n->shape[0], n->shape[1], n->shape[2]};
  return fg_tensor_view(NULL, FG_F32, c->p->opt.device, n->ndim + 1, shape);
}

static fg_tensor param_shape(const support_ctx *c, int param) {
  const fg_param *pa = fg_graph_param(c->g, param);
  return fg_tensor_view(NULL, FG_F32, c->p->opt.device, pa->ndim, pa->shape);
}

/* The op with shape descriptors a and b (NULL: none) and conv descriptor d (NULL: none). */
static fg_status ask(const support_ctx *c, fg_op op, const fg_tensor *a, const fg_tensor *b, const fg_conv_desc *d,
                     int class_mask) {
  const fg_op_query q = {.op = op, .t = {a, b}, .conv = d, .class_mask = class_mask};
  return fg_op_supported(c->p->opt.device, &q);
}

static fg_status ask_op(const support_ctx *c, fg_op op) { return ask(c, op, NULL, NULL, NULL, 0); }

static int has_grad(const support_ctx *c, int param) { return param >= 0 && c->p->grad_offset[param] >= 0; }

static fg_status forward_ops(const support_ctx *c, const fg_instr *in) {
  const fg_node *n = fg_graph_node(c->g, in->node);
  fg_tensor x = node_shape(c, n->in[0]);
  switch (n->kind) {
    case FG_NODE_CONV: {
      fg_tensor w = param_shape(c, n->param[0]);
      return ask(c, FG_OP_CONV2D_FORWARD, &x, &w, &n->conv, 0);
    }
    case FG_NODE_LINEAR: {
      fg_tensor w = param_shape(c, n->param[0]);
      return ask(c, FG_OP_LINEAR_FORWARD, &x, &w, NULL, 0);
    }
    case FG_NODE_BN: return ask_op(c, in->aux[0] < 0 ? FG_OP_BN_FORWARD_EVAL : FG_OP_BN_FORWARD_TRAIN);
    case FG_NODE_RELU: return ask_op(c, FG_OP_RELU_FORWARD);
    case FG_NODE_MAXPOOL: return ask_op(c, FG_OP_MAXPOOL_FORWARD);
    case FG_NODE_AVGPOOL: return ask_op(c, FG_OP_AVGPOOL_GLOBAL_FORWARD);
    case FG_NODE_ADD: return ask_op(c, FG_OP_ADD);
    case FG_NODE_DROPOUT: return ask_op(c, FG_OP_DROPOUT_FORWARD);
    case FG_NODE_SCALE: return ask_op(c, FG_OP_SCALE);
    case FG_NODE_SIGMOID: return ask_op(c, FG_OP_SIGMOID_FORWARD);
    case FG_NODE_MUL: return ask_op(c, FG_OP_MUL);
    case FG_NODE_UPSAMPLE2X: return ask_op(c, FG_OP_UPSAMPLE2X_BILINEAR_FORWARD);
    default: return FG_OK;
  }
}

static fg_status backward_ops(const support_ctx *c, const fg_instr *in) {
  const fg_node *n = fg_graph_node(c->g, in->node);
  fg_tensor x = node_shape(c, n->in[0]), y = node_shape(c, in->node);
  switch (n->kind) {
    case FG_NODE_CONV: {
      fg_tensor w = param_shape(c, n->param[0]);
      if (has_grad(c, n->param[0])) FG_TRY(ask(c, FG_OP_CONV2D_BACKWARD_FILTER, &x, &w, &n->conv, 0));
      return in->din[0] > 0 ? ask(c, FG_OP_CONV2D_BACKWARD_DATA, &x, &w, &n->conv, 0) : FG_OK;
    }
    case FG_NODE_LINEAR: {
      fg_tensor w = param_shape(c, n->param[0]);
      if (has_grad(c, n->param[0]) || has_grad(c, n->param[1]))
        FG_TRY(ask(c, FG_OP_LINEAR_BACKWARD_PARAMS, &x, &y, NULL, 0));
      return in->din[0] > 0 ? ask(c, FG_OP_LINEAR_BACKWARD_DATA, &x, &w, NULL, 0) : FG_OK;
    }
    case FG_NODE_BN: return ask_op(c, FG_OP_BN_BACKWARD);
    case FG_NODE_RELU: return ask_op(c, FG_OP_RELU_BACKWARD);
    case FG_NODE_MAXPOOL: return ask_op(c, FG_OP_MAXPOOL_BACKWARD);
    case FG_NODE_AVGPOOL: return ask_op(c, FG_OP_AVGPOOL_GLOBAL_BACKWARD);
    case FG_NODE_DROPOUT: return ask_op(c, FG_OP_DROPOUT_BACKWARD);
    case FG_NODE_SIGMOID: return ask_op(c, FG_OP_SIGMOID_BACKWARD);
    case FG_NODE_MUL: return ask_op(c, FG_OP_MUL);
    case FG_NODE_UPSAMPLE2X: return ask_op(c, FG_OP_UPSAMPLE2X_BILINEAR_BACKWARD);
    case FG_NODE_SCALE:
    case FG_NODE_ADD:
      FG_TRY(ask_op(c, FG_OP_AXPY));
      return ask_op(c, n->kind == FG_NODE_ADD ? FG_OP_COPY : FG_OP_SCALE);
    default: return FG_OK;
  }
}

static fg_status loss_ops(const support_ctx *c, const fg_instr *in, const fg_loss_spec *loss) {
  if (in->eval || loss->terms[in->node].kind == FG_LOSS_XENT) {
    int output = in->eval ? (in->node < 0 ? 0 : in->node) : loss->terms[in->node].output;
    fg_tensor z = node_shape(c, fg_graph_output_node(c->g, output));
    return ask(c, FG_OP_SOFTMAX_XENT, &z, NULL, NULL, !in->eval && loss->class_mask);
  }
  const fg_loss_term *lt = &loss->terms[in->node];
  switch (lt->kind) {
    case FG_LOSS_KL:
      FG_TRY(ask_op(c, FG_OP_FILL)); /* a fresh gradient zeroed when the other accumulates */
      return ask_op(c, FG_OP_KL_DIV);
    case FG_LOSS_NHSIC: {
      FG_TRY(ask_op(c, FG_OP_FILL)); /* the zero gradient of a one-row batch */
      fg_tensor z = node_shape(c, fg_graph_feature_node(c->g, lt->output));
      return ask(c, FG_OP_NHSIC, &z, NULL, NULL, 0);
    }
    default: return FG_OK; /* external terms: the caller computes them */
  }
}

static fg_status instr_ops(const support_ctx *c, const fg_instr *in, const fg_loss_spec *loss) {
  switch (in->kind) {
    case FG_I_FORWARD:
    case FG_I_RECOMPUTE: return forward_ops(c, in);
    case FG_I_BACKWARD: return backward_ops(c, in);
    case FG_I_LOSS: return loss_ops(c, in, loss);
    case FG_I_ACCUMULATE: return ask_op(c, FG_OP_AXPY);
    case FG_I_ENSEMBLE: FG_TRY(ask_op(c, FG_OP_AXPY)); return ask_op(c, FG_OP_SCALE);
  }
  return FG_OK;
}

static fg_status program_ops(const support_ctx *c, const fg_instr *prog, int n, const fg_loss_spec *loss) {
  for (int k = 0; k < n; k++) {
    fg_status s = instr_ops(c, &prog[k], loss);
    if (s != FG_OK) {
      if (prog[k].kind != FG_I_LOSS && prog[k].kind != FG_I_ENSEMBLE)
        fg_error_prefix("%s", fg_graph_node(c->g, prog[k].node)->name);
      return s;
    }
  }
  return FG_OK;
}

fg_status fg_plan_check_supported(const fg_graph *g, const fg_plan *p) {
  const support_ctx c = {g, p};
  const fg_loss_spec loss = fg_loss_effective(g, &p->opt.loss);
  fg_status s = program_ops(&c, p->train, p->n_train, &loss);
  if (s == FG_OK) s = program_ops(&c, p->eval, p->n_eval, &loss);
  if (s == FG_OK && p->opt.mode != FG_EXEC_INFERENCE) {
    s = ask_op(&c, FG_OP_FILL); /* the optimizer state is zeroed at reset */
    if (s == FG_OK && p->opt.optim.kind != FG_OPTIM_NONE && p->grad_numel > 0)
      s = ask_op(&c, p->opt.optim.kind == FG_OPTIM_ADAM ? FG_OP_ADAM_STEP : FG_OP_SGD_STEP);
  }
  if (s != FG_OK) fg_error_prefix("plan");
  return s;
}
