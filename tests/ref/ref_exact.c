/* Float32 references of the bitwise class; see ref_exact.h. */
#include "ref/ref_exact.h"

#include <math.h>

#include "engine/base/rng.h"

void fg_ref_f32_axpy(float alpha, const float *x, int64_t count, float *y) {
  for (int64_t i = 0; i < count; i++) {
    const float product = alpha * x[i];
    y[i] = y[i] + product;
  }
}

void fg_ref_f32_dropout(const float *in, int64_t count, float p, uint64_t key, int accumulate,
                        float *out) {
  const float keep_scale = 1.0f - p;
  for (int64_t i = 0; i < count; i++) {
    const float v = fg_rng_uniform_at(key, (uint64_t)i) >= p ? in[i] / keep_scale : 0.0f;
    out[i] = accumulate ? out[i] + v : v;
  }
}

void fg_ref_f32_avgpool_global_backward(const float *dy, int64_t planes, int64_t hw, int accumulate,
                                        float *dx) {
  for (int64_t p = 0; p < planes; p++) {
    const float v = dy[p] / (float)hw;
    for (int64_t i = 0; i < hw; i++) dx[p * hw + i] = accumulate ? dx[p * hw + i] + v : v;
  }
}

void fg_ref_f32_sgd_step(const fg_sgd_hparams *h, int64_t count, float *param, const float *grad,
                         float *momentum_buf) {
  const float keep = (float)(1.0 - (double)h->dampening);
  for (int64_t i = 0; i < count; i++) {
    const float decay = h->weight_decay * param[i];
    const float d = grad[i] + decay;
    float update = d;
    if (h->momentum != 0.0f) {
      const float kept = h->momentum * momentum_buf[i];
      const float fresh = keep * d;
      const float buf = kept + fresh;
      momentum_buf[i] = buf;
      update = buf;
      if (h->nesterov) {
        const float look = h->momentum * buf;
        update = d + look;
      }
    }
    const float delta = h->lr * update;
    param[i] = param[i] - delta;
  }
}

void fg_ref_f32_adam_step(const fg_adam_hparams *h, int64_t step, int64_t count, float *param,
                          const float *grad, float *m, float *v) {
  const double bc1 = 1.0 - pow((double)h->beta1, (double)step);
  const double bc2 = 1.0 - pow((double)h->beta2, (double)step);
  const float step_size = (float)((double)h->lr / bc1);
  const float bc2_sqrt = (float)sqrt(bc2);
  const float one_b1 = (float)(1.0 - (double)h->beta1), one_b2 = (float)(1.0 - (double)h->beta2);
  for (int64_t i = 0; i < count; i++) {
    const float g = grad[i] + h->weight_decay * param[i];
    const float mi = h->beta1 * m[i] + one_b1 * g;
    const float gg = one_b2 * g;
    const float vi = h->beta2 * v[i] + gg * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bc2_sqrt + h->eps;
    const float ratio = mi / denom;
    param[i] = param[i] - step_size * ratio;
  }
}
