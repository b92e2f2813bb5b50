/* Optimizer steps on the CPU over a group of flat parameter tensors, one tensor after another,
 * element by element in float in the order PyTorch's single-tensor implementations use (see
 * fg_sgd_hparams and fg_adam_hparams in engine/backend/backend.h). */
#include <math.h>

#include "cpu/math_internal.h"

/* d = g + wd p; with momentum: buf = momentum buf + (1 - dampening) d, update = nesterov ? d +
 * momentum buf : buf; without momentum (0): update = d and the buffer is not touched.
 * p -= lr update. */
static void sgd_one(const fg_sgd_hparams *h, fg_tensor *param, const fg_tensor *grad, fg_tensor *momentum_buf) {
  const int64_t n = fg_tensor_numel(param);
  float *p = fg_f32(param);
  const float *g = fg_f32(grad);
  const float lr = h->lr, wd = h->weight_decay, mom = h->momentum;
  const float keep = (float)(1.0 - (double)h->dampening);
  if (mom == 0.0f) {
#pragma omp parallel for schedule(static) if (n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      p[i] = p[i] - lr * d;
    }
    return;
  }
  float *buf = fg_f32(momentum_buf);
  const int nesterov = h->nesterov;
#pragma omp parallel for schedule(static) if (n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float m = mom * buf[i] + keep * d;
    buf[i] = m;
    float update = nesterov ? d + mom * m : m;
    p[i] = p[i] - lr * update;
  }
}

static fg_status cpu_sgd_step(fg_backend *b, const fg_sgd_hparams *h, const fg_param_group *g) {
  (void)b;
  for (int i = 0; i < g->count; i++) sgd_one(h, g->param[i], g->grad[i], g->state[0] ? g->state[0][i] : NULL);
  return FG_OK;
}

/* g' = g + wd p; m = beta1 m + (1 - beta1) g'; v = beta2 v + (1 - beta2) g'^2;
 * p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps), bc1 = 1 - beta1^step, bc2 = 1 - beta2^step
 * (the bias corrections in double, as PyTorch computes them on the host). */
static void adam_one(const fg_adam_hparams *h, int64_t step, fg_tensor *param, const fg_tensor *grad,
                     fg_tensor *m_t, fg_tensor *v_t) {
  const int64_t n = fg_tensor_numel(param);
  float *p = fg_f32(param), *m = fg_f32(m_t), *v = fg_f32(v_t);
  const float *g = fg_f32(grad);
  const double bc1 = 1.0 - pow((double)h->beta1, (double)step);
  const double bc2 = 1.0 - pow((double)h->beta2, (double)step);
  const float step_size = (float)((double)h->lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float b1 = h->beta1, b2 = h->beta2, eps = h->eps, wd = h->weight_decay;
  const float one_b1 = (float)(1.0 - (double)b1), one_b2 = (float)(1.0 - (double)b2);
#pragma omp parallel for schedule(static) if (n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] + wd * p[i];
    float mi = b1 * m[i] + one_b1 * gi;
    float vi = b2 * v[i] + one_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    float denom = sqrtf(vi) / bc2_sqrt + eps;
    p[i] = p[i] - step_size * (mi / denom);
  }
}

static fg_status cpu_adam_step(fg_backend *b, const fg_adam_hparams *h, int64_t step, const fg_param_group *g) {
  (void)b;
  for (int i = 0; i < g->count; i++) adam_one(h, step, g->param[i], g->grad[i], g->state[0][i], g->state[1][i]);
  return FG_OK;
}

void fg_cpu_register_optim_ops(fg_backend *b) {
  b->sgd_step = cpu_sgd_step;
  b->adam_step = cpu_adam_step;
}
