/* The per-element arithmetic of the CUDA backend's optimizer steps (cuda/optim.cu): one SGD or
 * Adam update of one parameter element, written once as FG_HOST_DEVICE functions in the common
 * subset of C11 and C++14, so that the kernels and the host tests
 * (tests/cpu/test_cuda_math_optim.c) compile the same code. The element functions take the
 * step's constants by value and return the new state, reading no memory themselves, so a
 * multi-tensor kernel (one launch over every parameter tensor) can call them unchanged.
 *
 * The constants of a step (fg_math_sgd_prepare, fg_math_adam_prepare) are computed on the host,
 * once per step, exactly as the CPU backend computes them (cpu/optim.c): Adam's bias corrections
 * in double with the host's pow and sqrt, then rounded to float. The element functions are the
 * CPU's float expressions in its order, so a kernel built with --fmad=false computes the CPU's
 * bits (float +, -, *, / and sqrtf are correctly rounded on both; nvcc's defaults -prec-div and
 * -prec-sqrt, no flush to zero). Formulas: fg_sgd_hparams and fg_adam_hparams in
 * engine/backend/backend.h. Owns nothing. */
#ifndef FG_CUDA_MATH_OPTIM_H
#define FG_CUDA_MATH_OPTIM_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"

#ifdef __cplusplus
extern "C" {
#endif
#include "engine/backend/backend.h"
#ifdef __cplusplus
}
#endif

/* ----------------------------------------------------------------------------------------- */
/* SGD                                                                                        */

/* The constants of one SGD step. keep = 1 - dampening computed in double and rounded to float. */
typedef struct fg_math_sgd {
  float lr;
  float weight_decay;
  float momentum; /* 0: no momentum buffer (fg_math_sgd_plain) */
  float keep;
  int nesterov;
} fg_math_sgd;

/* One parameter element and its momentum buffer element after a step. */
typedef struct fg_math_sgd_state {
  float p;
  float buf;
} fg_math_sgd_state;

/* Host only: the constants of a step with hyper-parameters h. */
static inline fg_math_sgd fg_math_sgd_prepare(const fg_sgd_hparams *h) {
  fg_math_sgd k;
  k.lr = h->lr;
  k.weight_decay = h->weight_decay;
  k.momentum = h->momentum;
  k.keep = (float)(1.0 - (double)h->dampening);
  k.nesterov = h->nesterov;
  return k;
}

/* Without momentum (k.momentum == 0; no buffer is read or written): d = g + wd p; p - lr d. */
FG_HOST_DEVICE static inline float fg_math_sgd_plain(fg_math_sgd k, float p, float g) {
  const float d = g + k.weight_decay * p;
  return p - k.lr * d;
}

/* With momentum: d = g + wd p; buf' = momentum buf + keep d; update = nesterov ? d + momentum
 * buf' : buf'; p' = p - lr update. Returns p' and buf'. */
FG_HOST_DEVICE static inline fg_math_sgd_state fg_math_sgd_momentum(fg_math_sgd k, float p, float g,
                                                                    float buf) {
  const float d = g + k.weight_decay * p;
  const float m = k.momentum * buf + k.keep * d;
  const float update = k.nesterov ? d + k.momentum * m : m;
  fg_math_sgd_state s;
  s.p = p - k.lr * update;
  s.buf = m;
  return s;
}

/* ----------------------------------------------------------------------------------------- */
/* Adam                                                                                       */

/* The constants of one Adam step: step_size = lr / bc1 and bc2_sqrt = sqrt(bc2), with
 * bc = 1 - beta^step, both computed in double and rounded to float once; 1 - beta1 and
 * 1 - beta2 likewise. */
typedef struct fg_math_adam {
  float step_size;
  float bc2_sqrt;
  float beta1;
  float beta2;
  float one_minus_beta1;
  float one_minus_beta2;
  float eps;
  float weight_decay;
} fg_math_adam;

/* One parameter element and its moment elements after a step. */
typedef struct fg_math_adam_state {
  float p;
  float m;
  float v;
} fg_math_adam_state;

/* Host only (the host's pow and sqrt, as the CPU backend's): the constants of step `step`
 * (1-based) with hyper-parameters h. */
static inline fg_math_adam fg_math_adam_prepare(const fg_adam_hparams *h, int64_t step) {
  const double bc1 = 1.0 - pow((double)h->beta1, (double)step);
  const double bc2 = 1.0 - pow((double)h->beta2, (double)step);
  fg_math_adam k;
  k.step_size = (float)((double)h->lr / bc1);
  k.bc2_sqrt = (float)sqrt(bc2);
  k.beta1 = h->beta1;
  k.beta2 = h->beta2;
  k.one_minus_beta1 = (float)(1.0 - (double)h->beta1);
  k.one_minus_beta2 = (float)(1.0 - (double)h->beta2);
  k.eps = h->eps;
  k.weight_decay = h->weight_decay;
  return k;
}

/* g' = g + wd p; m' = beta1 m + (1 - beta1) g'; v' = beta2 v + ((1 - beta2) g') g';
 * p' = p - step_size (m' / (sqrt(v') / bc2_sqrt + eps)). Returns p', m', v'. */
FG_HOST_DEVICE static inline fg_math_adam_state fg_math_adam_update(fg_math_adam k, float p,
                                                                    float g, float m, float v) {
  const float gi = g + k.weight_decay * p;
  fg_math_adam_state s;
  s.m = k.beta1 * m + k.one_minus_beta1 * gi;
  s.v = k.beta2 * v + k.one_minus_beta2 * gi * gi;
  const float denom = sqrtf(s.v) / k.bc2_sqrt + k.eps;
  s.p = p - k.step_size * (s.m / denom);
  return s;
}

#endif
