/* Optimizers: configuration, state sizing and the per-tensor update loop.
 *
 * An optimizer updates only parameters that received a gradient in the step (frozen or unused
 * parameters are skipped entirely, as PyTorch skips p.grad is None). Its state (SGD momentum,
 * Adam moments) is one flat region per trainer, laid out in parameter order; a reset zeroes it,
 * which FL clients do every round. Owns: nothing (state lives in the trainer's region). */
#ifndef FG_OPTIM_H
#define FG_OPTIM_H

#include <stdint.h>

#include "engine/backend/backend.h"

typedef enum fg_optim_kind { FG_OPTIM_NONE = 0, FG_OPTIM_SGD, FG_OPTIM_ADAM } fg_optim_kind;

typedef struct fg_optim_config {
  fg_optim_kind kind;
  fg_sgd_hparams sgd;
  fg_adam_hparams adam;
} fg_optim_config;

/* SGD with PyTorch's defaults for everything not given. */
fg_optim_config fg_optim_sgd(float lr, float momentum, float weight_decay);
/* Adam with betas (0.9, 0.999), eps 1e-8. */
fg_optim_config fg_optim_adam(float lr, float weight_decay);

/* State floats per parameter float: 0 (plain SGD), 1 (SGD with momentum), 2 (Adam). */
int fg_optim_state_per_param(const fg_optim_config *c);
const char *fg_optim_name(fg_optim_kind kind);

/* One update of a group of parameter tensors (engine/backend/backend.h, fg_param_group: the
 * state arrays as the optimizer needs them: none for SGD without momentum, the momentum buffers,
 * or Adam's m and v); step is 1-based (Adam's bias correction). Nothing for FG_OPTIM_NONE. */
fg_status fg_optim_update(const fg_optim_config *c, int64_t step, const fg_param_group *g);

#endif
