/* The arithmetic of the CUDA batch-norm kernels (cuda/norm.cu), written once for the device and
 * for the host tests (tests/cpu/test_cuda_math_norm.c): what one thread of a channel's block sums,
 * what the channel's statistics and constants are made of, and what one element becomes. The
 * formulas and their order are the CPU backend's (cpu/norm.c, the reference for the arithmetic):
 *   statistics: shift s = the mean of the channel's first plane rounded to float; sums of
 *               d = x - s and d^2 (in double here: each d is formed in double, so the float
 *               blocks of the CPU are not needed); mean = s + sum d / count, biased var =
 *               sum d^2 / count - (sum d / count)^2 clamped at 0; a second pass shifted by the
 *               mean found when s lies more than two standard deviations off;
 *   outputs:    y = (x - mf) a + b in float (mf the mean rounded to float, a = gamma invstd,
 *               b = beta + (mf - mean) a in double, then rounded), so that values near the
 *               mean keep their precision;
 *   backward:   sums of dy and dy (x - mean_f) per channel, dx = (ka dy + kb (x - mean_f)) + kc.
 * Layout: element (i, ch, s) of x [N,C,H,W] (or [N,C], inner 1) is at (i C + ch) inner + s; a
 * channel's values are numbered j = i inner + s, 0 <= j < count = N inner.
 * Plain C11 / C++14 common subset, FG_HOST_DEVICE; no allocation; owns nothing. */
#ifndef FG_CUDA_MATH_NORM_H
#define FG_CUDA_MATH_NORM_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"

/* Extents of one batch-norm call. */
typedef struct fg_bn_layout {
  int64_t batch;    /* N */
  int64_t channels; /* C */
  int64_t inner;    /* H*W, 1 for [N,C]; >= 1 */
  int64_t count;    /* N*inner: the values of one channel */
} fg_bn_layout;

/* ----------------------------------------------------------------------------------------- */
/* Walking a channel                                                                          */

/* Offset in x of value j of channel ch (by division; the cursor below avoids it). */
FG_HOST_DEVICE static inline int64_t fg_bn_offset(const fg_bn_layout *l, int64_t ch, int64_t j) {
  const int64_t i = j / l->inner;
  return (i * l->channels + ch) * l->inner + (j - i * l->inner);
}

/* A walk over the values j = start, start + step, ... of one channel, keeping (image, position
 * in the plane) so that each step costs additions only. */
typedef struct fg_bn_cursor {
  int64_t j;              /* the value's number in the channel */
  int64_t i, s;           /* its image and its position in the plane: j = i inner + s */
  int64_t step;           /* >= 1 */
  int64_t step_i, step_s; /* step = step_i inner + step_s, 0 <= step_s < inner */
} fg_bn_cursor;

FG_HOST_DEVICE static inline fg_bn_cursor fg_bn_cursor_start(const fg_bn_layout *l, int64_t start,
                                                              int64_t step) {
  fg_bn_cursor c;
  c.j = start;
  c.step = step;
  c.i = start / l->inner;
  c.s = start - c.i * l->inner;
  c.step_i = step / l->inner;
  c.step_s = step - c.step_i * l->inner;
  return c;
}

FG_HOST_DEVICE static inline void fg_bn_cursor_next(const fg_bn_layout *l, fg_bn_cursor *c) {
  c->j += c->step;
  c->i += c->step_i;
  c->s += c->step_s;
  if (c->s >= l->inner) {
    c->s -= l->inner;
    c->i += 1;
  }
}

/* Offset in x of the cursor's value in channel ch. */
FG_HOST_DEVICE static inline int64_t fg_bn_cursor_offset(const fg_bn_layout *l, int64_t ch,
                                                          const fg_bn_cursor *c) {
  return (c->i * l->channels + ch) * l->inner + c->s;
}

/* ----------------------------------------------------------------------------------------- */
/* Statistics (training forward)                                                              */

/* Thread `t` of `threads`: its part of the sum of the channel's first plane (positions t,
 * t + threads, ... of image 0), in double. */
FG_HOST_DEVICE static inline double fg_bn_thread_plane_sum(const float *x, const fg_bn_layout *l,
                                                           int64_t ch, int64_t t, int64_t threads) {
  const float *plane = x + ch * l->inner;
  double s = 0.0;
  for (int64_t k = t; k < l->inner; k += threads) s += (double)plane[k];
  return s;
}

/* The shift of the statistics: the first plane's mean (from its sum), rounded to float. */
FG_HOST_DEVICE static inline float fg_bn_shift(double plane_sum, int64_t inner) {
  return (float)(plane_sum / (double)inner);
}

/* Thread `t` of `threads`: its parts of sum (x - shift) and sum (x - shift)^2 over the channel's
 * values j = t, t + threads, ... in that order, in double. */
FG_HOST_DEVICE static inline void fg_bn_thread_shifted_sums(const float *x, const fg_bn_layout *l,
                                                            int64_t ch, int64_t t, int64_t threads,
                                                            float shift, double *sum, double *sq) {
  double a = 0.0, b = 0.0;
  fg_bn_cursor c = fg_bn_cursor_start(l, t, threads);
  for (; c.j < l->count; fg_bn_cursor_next(l, &c)) {
    const double d = (double)x[fg_bn_cursor_offset(l, ch, &c)] - (double)shift;
    a += d;
    b += d * d;
  }
  *sum = a;
  *sq = b;
}

/* A channel's batch mean and biased variance. */
typedef struct fg_bn_moments {
  double mean;
  double var;
} fg_bn_moments;

/* From the channel's sums of d = x - shift and d^2 over `count` values. */
FG_HOST_DEVICE static inline fg_bn_moments fg_bn_moments_of(double sum, double sq, int64_t count,
                                                            float shift) {
  fg_bn_moments m;
  const double md = sum / (double)count;
  const double v = sq / (double)count - md * md;
  m.mean = (double)shift + md;
  m.var = v > 0.0 ? v : 0.0;
  return m;
}

/* Whether the shift lies more than two standard deviations off the mean: then the sums are
 * taken again, shifted by (float)mean (cancellation in the variance otherwise). */
FG_HOST_DEVICE static inline int fg_bn_needs_second_pass(const fg_bn_moments *m, float shift) {
  const double off = m->mean - (double)shift;
  return off * off > 4.0 * m->var;
}

/* 1 / sqrt(var + eps), in double. */
FG_HOST_DEVICE static inline double fg_bn_invstd(double var, float eps) {
  return 1.0 / sqrt(var + (double)eps);
}

/* The running statistics' update (only when the call has them):
 *   running_mean = (1 - momentum) running_mean + momentum mean,
 *   running_var  = (1 - momentum) running_var + momentum var unbias, unbias = count / (count - 1)
 * (count >= 2: the entry point refuses less). */
FG_HOST_DEVICE static inline double fg_bn_unbias(int64_t count) {
  return (double)count / (double)(count - 1);
}
FG_HOST_DEVICE static inline float fg_bn_running_mean(float running, float momentum, double mean) {
  const double m = momentum;
  return (float)((1.0 - m) * running + m * mean);
}
FG_HOST_DEVICE static inline float fg_bn_running_var(float running, float momentum, double var,
                                                     double unbias) {
  const double m = momentum;
  return (float)((1.0 - m) * running + m * var * unbias);
}

/* ----------------------------------------------------------------------------------------- */
/* Normalisation (training and evaluation forward)                                            */

/* y = (x - mean) * scale + shift over a channel, as float constants: y = (x - mf) a + b. */
typedef struct fg_bn_affine {
  float mf; /* the mean rounded to float */
  float a;  /* scale */
  float b;  /* shift + (mf - mean) scale: the rounding of the mean folded into the constant */
} fg_bn_affine;

FG_HOST_DEVICE static inline fg_bn_affine fg_bn_affine_of(double mean, double scale, double shift) {
  fg_bn_affine k;
  k.mf = (float)mean;
  k.a = (float)scale;
  k.b = (float)(shift + ((double)k.mf - mean) * scale);
  return k;
}

/* Training: mean and invstd of the batch; scale = gamma invstd, shift = beta. */
FG_HOST_DEVICE static inline fg_bn_affine fg_bn_train_affine(double mean, double invstd, float gamma,
                                                            float beta) {
  return fg_bn_affine_of(mean, (double)gamma * invstd, (double)beta);
}

/* Evaluation: the running statistics; invstd = 1 / sqrt(running_var + eps) in double. */
FG_HOST_DEVICE static inline fg_bn_affine fg_bn_eval_affine(float running_mean, float running_var,
                                                           float eps, float gamma, float beta) {
  const double invstd = fg_bn_invstd((double)running_var, eps);
  return fg_bn_affine_of((double)running_mean, (double)gamma * invstd, (double)beta);
}

/* One normalised value. */
FG_HOST_DEVICE static inline float fg_bn_normalise(const fg_bn_affine *k, float x) {
  return (x - k->mf) * k->a + k->b;
}

/* ----------------------------------------------------------------------------------------- */
/* Backward                                                                                   */

/* Thread `t` of `threads`: its parts of sum dy and sum dy (x - mean) over the channel's values
 * j = t, t + threads, ... in that order (x - mean in float, as the CPU: mean is the saved float;
 * the product and the sums in double). */
FG_HOST_DEVICE static inline void fg_bn_thread_dy_sums(const float *dy, const float *x,
                                                       const fg_bn_layout *l, int64_t ch, int64_t t,
                                                       int64_t threads, float mean, double *sum_dy,
                                                       double *sum_dy_xc) {
  double a = 0.0, b = 0.0;
  fg_bn_cursor c = fg_bn_cursor_start(l, t, threads);
  for (; c.j < l->count; fg_bn_cursor_next(l, &c)) {
    const int64_t off = fg_bn_cursor_offset(l, ch, &c);
    const float xc = x[off] - mean;
    a += (double)dy[off];
    b += (double)dy[off] * (double)xc;
  }
  *sum_dy = a;
  *sum_dy_xc = b;
}

/* The channel's gradient constants, from its sums (invstd the saved float):
 *   dbeta = sum dy, dgamma = sum dy xhat = sum dy (x - mean) invstd,
 *   dx = ka dy + kb (x - mean) + kc with ka = gamma invstd, kb = -ka invstd dgamma / count,
 *   kc = -ka dbeta / count (in double, then rounded to float). */
typedef struct fg_bn_grad {
  double dgamma, dbeta;
  float ka, kb, kc;
} fg_bn_grad;

FG_HOST_DEVICE static inline fg_bn_grad fg_bn_grad_of(float gamma, float save_invstd, double sum_dy,
                                                      double sum_dy_xc, int64_t count) {
  fg_bn_grad k;
  const double invstd = save_invstd;
  const double sum_dy_xhat = sum_dy_xc * invstd;
  const double ka = (double)gamma * invstd;
  const double kb = -ka * invstd * (sum_dy_xhat / (double)count);
  const double kc = -ka * (sum_dy / (double)count);
  k.dgamma = sum_dy_xhat;
  k.dbeta = sum_dy;
  k.ka = (float)ka;
  k.kb = (float)kb;
  k.kc = (float)kc;
  return k;
}

/* One input gradient, without the accumulation: (ka dy + kb (x - mean)) + kc. The kernel writes
 * it (accumulate = 0) or dx + it (accumulate = 1). */
FG_HOST_DEVICE static inline float fg_bn_dx(const fg_bn_grad *k, float dy, float x, float mean) {
  return (k->ka * dy + k->kb * (x - mean)) + k->kc;
}

#endif
