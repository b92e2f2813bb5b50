/* The per-element and per-row arithmetic of the CUDA losses (cuda/loss.cu): softmax
 * cross-entropy with an optional class mask, temperature-scaled KL distillation, mean squared
 * error. Written once for the kernels and for the host tests (tests/cpu/test_cuda_math_loss.c),
 * in the common subset of C11 and C++14; each function is the CPU backend's formula (cpu/loss.c)
 * in its precision (double, from the float inputs) and its order of operations, so that the
 * kernels, built without FMA contraction, round as the CPU does. Only how the row sums are
 * added (a fixed tree on the device, left to right on the CPU) differs. Owns nothing. */
#ifndef FG_CUDA_MATH_LOSS_H
#define FG_CUDA_MATH_LOSS_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"

/* ----------------------------------------------------------------------------------------- */
/* Shared                                                                                     */

/* A label is usable when it lies in [0, k); the others are counted into the op's index report. */
FG_HOST_DEVICE static inline int fg_cuda_label_valid(int32_t y, int64_t k) {
  return y >= 0 && (int64_t)y < k;
}

/* A gradient element v stored into *dst's old value: assigned (rounded once) or accumulated in
 * double and rounded once (the CPU's store_grad). */
FG_HOST_DEVICE static inline float fg_cuda_loss_store(float old, double v, int accumulate) {
  return accumulate ? (float)((double)old + v) : (float)v;
}

/* exp((z - zmax) * inv_t): one term of a row's shifted sum of exponentials. */
FG_HOST_DEVICE static inline double fg_cuda_exp_shifted(float z, double zmax, double inv_t) {
  return exp(((double)z - zmax) * inv_t);
}

/* ----------------------------------------------------------------------------------------- */
/* Softmax cross-entropy                                                                      */

/* Logit j of a row after the class mask: masked classes (mask_j == 0) read 0. has_mask = 0: no
 * mask (mask_j is ignored). */
FG_HOST_DEVICE static inline float fg_cuda_xent_logit(float z, int has_mask, float mask_j) {
  return !has_mask || mask_j != 0.0f ? z : 0.0f;
}

/* Whether class j takes part in the gradient (not masked). */
FG_HOST_DEVICE static inline int fg_cuda_xent_kept(int has_mask, float mask_j) {
  return !has_mask || mask_j != 0.0f;
}

/* The log-sum-exp of a row from its maximum and its shifted sum sum_j exp(z_j - zmax). */
FG_HOST_DEVICE static inline double fg_cuda_xent_lse(double zmax, double sum_exp) {
  return zmax + log(sum_exp);
}

/* The row's loss term logsumexp(z) - z_y (z_y the masked logit of the label). */
FG_HOST_DEVICE static inline double fg_cuda_xent_row_loss(double lse, float z_label) {
  return lse - (double)z_label;
}

/* One gradient element grad_scale (softmax_j - [j == y]) of a kept class, 0 for a masked one;
 * grad_scale = weight / N, z the masked logit. */
FG_HOST_DEVICE static inline double fg_cuda_xent_grad(float z, double lse, int is_label, int kept,
                                                      double grad_scale) {
  const double soft = exp((double)z - lse);
  return kept ? grad_scale * (soft - (is_label ? 1.0 : 0.0)) : 0.0;
}

/* ----------------------------------------------------------------------------------------- */
/* KL distillation                                                                            */

/* The per-row shifts of a KL row: log p_j = (s_j - smax) inv_t - ls and log q0_j = (t_j - tmax)
 * inv_t - lt, with ls, lt the logs of the rows' shifted sums of exponentials. */
typedef struct fg_cuda_kl_row {
  double smax, ls, tmax, lt;
  double inv_t, eps;
} fg_cuda_kl_row;

/* One class of a KL row: q0 = softmax(t / T)_j, q = q0 + eps, r = log q - log p, p =
 * softmax(s / T)_j. */
typedef struct fg_cuda_kl_term {
  double q0, q, r, p;
} fg_cuda_kl_term;

FG_HOST_DEVICE static inline fg_cuda_kl_term fg_cuda_kl_term_at(const fg_cuda_kl_row *w, float s,
                                                                float t) {
  fg_cuda_kl_term e;
  const double log_p = ((double)s - w->smax) * w->inv_t - w->ls;
  const double log_q0 = ((double)t - w->tmax) * w->inv_t - w->lt;
  /* log q from log q0, exact when eps == 0 (an underflowed q0 does not give log 0) */
  const double log_q = w->eps == 0.0 ? log_q0 : log(exp(log_q0) + w->eps);
  e.q0 = exp(log_q0);
  e.q = e.q0 + w->eps;
  e.r = log_q - log_p;
  e.p = exp(log_p);
  return e;
}

/* d L / d s_j scaled: g (p_j Q - q_j), Q = sum_j q_j, g = scale / T. */
FG_HOST_DEVICE static inline double fg_cuda_kl_dstudent(const fg_cuda_kl_term *e, double q_total,
                                                        double g) {
  return g * (e->p * q_total - e->q);
}

/* d L / d t_j scaled: g q0_j (r_j - sum_i q0_i r_i). */
FG_HOST_DEVICE static inline double fg_cuda_kl_dteacher(const fg_cuda_kl_term *e, double q0_r,
                                                        double g) {
  return g * e->q0 * (e->r - q0_r);
}

/* ----------------------------------------------------------------------------------------- */
/* Mean squared error                                                                         */

/* y - target in double (the loss adds its square; the gradient is grad_scale times it, with
 * grad_scale = 2 weight / numel). */
FG_HOST_DEVICE static inline double fg_cuda_mse_diff(float y, float target) {
  return (double)y - (double)target;
}

#endif
