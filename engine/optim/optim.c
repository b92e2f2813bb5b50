/* Optimizer configuration and dispatch to the backend's update ops. */
#include "engine/optim/optim.h"

#include "engine/backend/ops.h"

fg_optim_config fg_optim_sgd(float lr, float momentum, float weight_decay) {
  fg_optim_config c = {0};
  c.kind = FG_OPTIM_SGD;
  c.sgd.lr = lr;
  c.sgd.momentum = momentum;
  c.sgd.weight_decay = weight_decay;
  return c;
}

fg_optim_config fg_optim_adam(float lr, float weight_decay) {
  fg_optim_config c = {0};
  c.kind = FG_OPTIM_ADAM;
  c.adam.lr = lr;
  c.adam.beta1 = 0.9f;
  c.adam.beta2 = 0.999f;
  c.adam.eps = 1e-8f;
  c.adam.weight_decay = weight_decay;
  return c;
}

int fg_optim_state_per_param(const fg_optim_config *c) {
  switch (c->kind) {
    case FG_OPTIM_SGD: return c->sgd.momentum != 0.0f ? 1 : 0;
    case FG_OPTIM_ADAM: return 2;
    case FG_OPTIM_NONE: break;
  }
  return 0;
}

const char *fg_optim_name(fg_optim_kind kind) {
  switch (kind) {
    case FG_OPTIM_SGD: return "sgd";
    case FG_OPTIM_ADAM: return "adam";
    case FG_OPTIM_NONE: break;
  }
  return "none";
}

fg_status fg_optim_update(const fg_optim_config *c, int64_t step, const fg_param_group *g) {
  switch (c->kind) {
    case FG_OPTIM_SGD: return fg_sgd_step_group(&c->sgd, g);
    case FG_OPTIM_ADAM: return fg_adam_step_group(&c->adam, step, g);
    case FG_OPTIM_NONE: break;
  }
  return FG_OK;
}
