/* Batch norm on the CPU: x [N,C,H,W] or [N,C], statistics per channel over N*H*W.
 *
 * Each channel is handled by one thread from start to end, so results are bit-identical for
 * any thread count. A channel is N contiguous planes of H*W values, each handled by a
 * vectorisable per-plane loop.
 *   statistics: sums of x - s and (x - s)^2, s the mean of the channel's first plane (one
 *               pass, two when s is far from the mean), in float over short fixed blocks and
 *               in double across blocks;
 *   outputs:    one fused multiply-add per element in float, on x - mean_f (mean_f = the mean
 *               rounded to float; the rounding is folded into the constant term, computed in
 *               double), so that values near the mean do not lose precision to cancellation. */
#include <math.h>

#include "cpu/math_internal.h"

/* The layout of a batch-norm tensor: element (i, ch, s) is at (i * channels + ch) * inner + s. */
typedef struct bn_layout {
  int64_t batch;    /* N */
  int64_t channels; /* C */
  int64_t inner;    /* H*W (1 for [N,C]) */
  int64_t count;    /* N*H*W, values per channel */
} bn_layout;

static bn_layout layout_of(const fg_tensor *x) {
  bn_layout l;
  l.batch = x->shape[0];
  l.channels = x->shape[1];
  l.inner = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
  l.count = l.batch * l.inner;
  return l;
}

static int64_t plane_offset(const bn_layout *l, int64_t i, int64_t ch) {
  return (i * l->channels + ch) * l->inner;
}

/* Parallelise over channels only when there is enough work for it to pay. */
static int worth_threads(const bn_layout *l) {
  return l->channels > 1 && l->channels * l->count >= FG_CPU_PARALLEL_MIN;
}

/* ----------------------------------------------------------------------------------------- */
/* Per-plane kernels (p: n contiguous values of one channel in one image)                    */

/* Sums run in float over blocks of at most FG_BN_BLOCK values (an `omp simd` reduction: a few
 * vector-lane partial sums, combined in an order fixed at build time) and in double across
 * blocks. The cut into blocks depends on n alone, and each float partial covers few enough
 * values that its rounding stays near 1e-7 relative. */
enum { FG_BN_BLOCK = 64 };

static double plane_sum(const float *p, int64_t n) {
  double s = 0.0;
  for (int64_t i = 0; i < n; i += FG_BN_BLOCK) {
    const int64_t len = n - i < FG_BN_BLOCK ? n - i : FG_BN_BLOCK;
    float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
    for (int64_t k = 0; k < len; k++) acc += p[i + k];
    s += (double)acc;
  }
  return s;
}

/* *sum += sum (p_i - s), *sq += sum (p_i - s)^2 */
static void plane_shifted_sums(const float *p, int64_t n, float s, double *sum, double *sq) {
  double a = 0.0, b = 0.0;
  for (int64_t i = 0; i < n; i += FG_BN_BLOCK) {
    const int64_t len = n - i < FG_BN_BLOCK ? n - i : FG_BN_BLOCK;
    float acc = 0.0f, acc2 = 0.0f;
#pragma omp simd reduction(+ : acc, acc2)
    for (int64_t k = 0; k < len; k++) {
      const float d = p[i + k] - s;
      acc += d;
      acc2 += d * d;
    }
    a += (double)acc;
    b += (double)acc2;
  }
  *sum += a;
  *sq += b;
}

/* *sum_dy += sum dy_i, *sum_dy_xc += sum dy_i (x_i - m) */
static void plane_dy_sums(const float *dy, const float *x, int64_t n, float m, double *sum_dy,
                          double *sum_dy_xc) {
  double sa = 0.0, sb = 0.0;
  for (int64_t i = 0; i < n; i += FG_BN_BLOCK) {
    const int64_t len = n - i < FG_BN_BLOCK ? n - i : FG_BN_BLOCK;
    float a = 0.0f, b = 0.0f;
#pragma omp simd reduction(+ : a, b)
    for (int64_t k = 0; k < len; k++) {
      const float d = dy[i + k];
      a += d;
      b += d * (x[i + k] - m);
    }
    sa += (double)a;
    sb += (double)b;
  }
  *sum_dy += sa;
  *sum_dy_xc += sb;
}

/* y = (x - mf) * a + b; y may equal x. */
static void plane_affine(const float *x, float *y, int64_t n, float mf, float a, float b) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) y[i] = (x[i] - mf) * a + b;
}

/* dx (=|+=) ka dy + kb (x - mean) + kc */
static void plane_dx(const float *dy, const float *x, float *dx, int64_t n, float mean, float ka,
                     float kb, float kc, int accumulate) {
  if (accumulate) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dx[i] = dx[i] + ((ka * dy[i] + kb * (x[i] - mean)) + kc);
  } else {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dx[i] = (ka * dy[i] + kb * (x[i] - mean)) + kc;
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Per-channel steps                                                                          */

/* Mean and biased variance of one channel from sums of d = x - s (float s): mean = s + sum d /
 * count, var = sum d^2 / count - (sum d / count)^2. */
static void shifted_moments(const float *x, const bn_layout *l, int64_t ch, float s, double *mean,
                            double *var) {
  double sum = 0.0, sq = 0.0;
  for (int64_t i = 0; i < l->batch; i++)
    plane_shifted_sums(x + plane_offset(l, i, ch), l->inner, s, &sum, &sq);
  const double md = sum / (double)l->count;
  const double v = sq / (double)l->count - md * md;
  *mean = (double)s + md;
  *var = v > 0.0 ? v : 0.0;
}

/* Mean and biased variance of one channel, usually in one pass: shifted by s = the mean of the
 * channel's first plane, which is close enough to the mean for the subtraction in the variance
 * to lose nothing to speak of. Should s be more than two standard deviations off, the pass is
 * repeated shifted by the mean found (as a two-pass variance would). */
static void channel_moments(const float *x, const bn_layout *l, int64_t ch, double *mean,
                            double *var) {
  const float *first = x + plane_offset(l, 0, ch);
  const float s = (float)(plane_sum(first, l->inner) / (double)l->inner);
  shifted_moments(x, l, ch, s, mean, var);
  const double off = *mean - (double)s;
  if (off * off > 4.0 * *var) shifted_moments(x, l, ch, (float)*mean, mean, var);
}

/* y = (x - mean) * scale + shift over one channel; y may equal x. */
static void channel_affine(const float *x, float *y, const bn_layout *l, int64_t ch, double mean,
                           double scale, double shift) {
  const float mf = (float)mean;
  const float a = (float)scale;
  /* (x - mean) scale = (x - mf) scale + (mf - mean) scale */
  const float b = (float)(shift + ((double)mf - mean) * scale);
  for (int64_t i = 0; i < l->batch; i++) {
    const int64_t off = plane_offset(l, i, ch);
    plane_affine(x + off, y + off, l->inner, mf, a, b);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Backend entries                                                                            */

static fg_status cpu_bn_forward_train(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                                      const fg_tensor *beta, fg_tensor *y, fg_tensor *save_mean,
                                      fg_tensor *save_invstd, fg_tensor *running_mean,
                                      fg_tensor *running_var, float momentum, float eps) {
  (void)b;
  bn_layout l = layout_of(x); /* the entry point checked count >= 2 */
  const float *xd = fg_f32(x), *g = fg_f32(gamma), *bt = fg_f32(beta);
  float *yd = fg_f32(y), *sm = fg_f32(save_mean), *si = fg_f32(save_invstd);
  float *rm = running_mean ? fg_f32(running_mean) : NULL;
  float *rv = running_var ? fg_f32(running_var) : NULL;
  const double m = momentum;
  const double unbias = (double)l.count / (double)(l.count - 1);
#pragma omp parallel for schedule(static) if (worth_threads(&l))
  for (int64_t ch = 0; ch < l.channels; ch++) {
    double mean, var;
    channel_moments(xd, &l, ch, &mean, &var);
    double invstd = 1.0 / sqrt(var + (double)eps);
    sm[ch] = (float)mean;
    si[ch] = (float)invstd;
    if (rm) {
      rm[ch] = (float)((1.0 - m) * rm[ch] + m * mean);
      rv[ch] = (float)((1.0 - m) * rv[ch] + m * var * unbias);
    }
    channel_affine(xd, yd, &l, ch, mean, (double)g[ch] * invstd, bt[ch]);
  }
  return FG_OK;
}

static fg_status cpu_bn_forward_eval(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                                     const fg_tensor *beta, const fg_tensor *running_mean,
                                     const fg_tensor *running_var, float eps, fg_tensor *y) {
  (void)b;
  bn_layout l = layout_of(x);
  const float *xd = fg_f32(x), *g = fg_f32(gamma), *bt = fg_f32(beta);
  const float *rm = fg_f32(running_mean), *rv = fg_f32(running_var);
  float *yd = fg_f32(y);
#pragma omp parallel for schedule(static) if (worth_threads(&l))
  for (int64_t ch = 0; ch < l.channels; ch++) {
    double invstd = 1.0 / sqrt((double)rv[ch] + (double)eps);
    channel_affine(xd, yd, &l, ch, rm[ch], (double)g[ch] * invstd, bt[ch]);
  }
  return FG_OK;
}

/* Backward of y = gamma * xhat + beta, xhat = (x - mean) * invstd with batch statistics:
 *   dbeta = sum dy,  dgamma = sum dy * xhat,
 *   dx = gamma * invstd * (dy - dbeta / count - xhat * dgamma / count)
 *      = ka dy + kb (x - mean) + kc   with, in double, ka = gamma invstd,
 *        kb = -ka invstd dgamma / count, kc = -ka dbeta / count
 * (the saved mean is a float, so x - mean is computed in float without a correction). */
static fg_status cpu_bn_backward(fg_backend *b, const fg_tensor *dy, const fg_tensor *x,
                                 const fg_tensor *gamma, const fg_tensor *save_mean,
                                 const fg_tensor *save_invstd, fg_tensor *dx, fg_tensor *dgamma,
                                 fg_tensor *dbeta, int accumulate) {
  (void)b;
  bn_layout l = layout_of(x);
  const float *dyd = fg_f32(dy), *xd = fg_f32(x), *g = fg_f32(gamma);
  const float *sm = fg_f32(save_mean), *si = fg_f32(save_invstd);
  float *dxd = dx ? fg_f32(dx) : NULL;
  float *dg = dgamma ? fg_f32(dgamma) : NULL;
  float *db = dbeta ? fg_f32(dbeta) : NULL;
#pragma omp parallel for schedule(static) if (worth_threads(&l))
  for (int64_t ch = 0; ch < l.channels; ch++) {
    const double invstd = si[ch];
    double sum_dy = 0.0, sum_dy_xc = 0.0;
    for (int64_t i = 0; i < l.batch; i++) {
      const int64_t off = plane_offset(&l, i, ch);
      plane_dy_sums(dyd + off, xd + off, l.inner, sm[ch], &sum_dy, &sum_dy_xc);
    }
    const double sum_dy_xhat = sum_dy_xc * invstd;
    if (db) db[ch] = (float)sum_dy;
    if (dg) dg[ch] = (float)sum_dy_xhat;
    if (!dxd) continue;
    const double ka = (double)g[ch] * invstd;
    const double kb = -ka * invstd * (sum_dy_xhat / (double)l.count);
    const double kc = -ka * (sum_dy / (double)l.count);
    for (int64_t i = 0; i < l.batch; i++) {
      const int64_t off = plane_offset(&l, i, ch);
      plane_dx(dyd + off, xd + off, dxd + off, l.inner, sm[ch], (float)ka, (float)kb, (float)kc,
               accumulate);
    }
  }
  return FG_OK;
}

void fg_cpu_register_norm_ops(fg_backend *b) {
  b->bn_forward_train = cpu_bn_forward_train;
  b->bn_forward_eval = cpu_bn_forward_eval;
  b->bn_backward = cpu_bn_backward;
}
