/* Naive double-precision reference math ops (test oracles); see ref_math.h. */
#include "ref/ref_math.h"

#include <math.h>

#include "engine/base/rng.h"

/* Index of element (i, ch, s) of an [n, c, hw] buffer. */
static int64_t at(int64_t c, int64_t hw, int64_t i, int64_t ch, int64_t s) {
  return (i * c + ch) * hw + s;
}

/* ----------------------------------------------------------------------------------------- */
/* Batch norm                                                                                 */

void fg_ref_bn_forward_train(const double *x, int64_t n, int64_t c, int64_t hw, const double *gamma,
                             const double *beta, double eps, double momentum, double *y,
                             double *mean, double *invstd, double *running_mean,
                             double *running_var) {
  const double count = (double)(n * hw);
  for (int64_t ch = 0; ch < c; ch++) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t s = 0; s < hw; s++) sum += x[at(c, hw, i, ch, s)];
    double mu = sum / count;
    double sq = 0.0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t s = 0; s < hw; s++) {
        double d = x[at(c, hw, i, ch, s)] - mu;
        sq += d * d;
      }
    double var = sq / count;
    double is = 1.0 / sqrt(var + eps);
    mean[ch] = mu;
    invstd[ch] = is;
    for (int64_t i = 0; i < n; i++)
      for (int64_t s = 0; s < hw; s++) {
        int64_t j = at(c, hw, i, ch, s);
        y[j] = gamma[ch] * (x[j] - mu) * is + beta[ch];
      }
    if (running_mean) {
      double var_unbiased = sq / (count - 1.0);
      running_mean[ch] = (1.0 - momentum) * running_mean[ch] + momentum * mu;
      running_var[ch] = (1.0 - momentum) * running_var[ch] + momentum * var_unbiased;
    }
  }
}

void fg_ref_bn_forward_eval(const double *x, int64_t n, int64_t c, int64_t hw, const double *gamma,
                            const double *beta, const double *running_mean,
                            const double *running_var, double eps, double *y) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t ch = 0; ch < c; ch++)
      for (int64_t s = 0; s < hw; s++) {
        int64_t j = at(c, hw, i, ch, s);
        y[j] = gamma[ch] * (x[j] - running_mean[ch]) / sqrt(running_var[ch] + eps) + beta[ch];
      }
}

/* The chain rule of the original batch-norm paper, with var = 1/invstd^2 - eps:
 *   dxhat = dy gamma
 *   dvar  = sum dxhat (x - mean) (-1/2) invstd^3
 *   dmean = sum -dxhat invstd + dvar sum -2 (x - mean) / count
 *   dx    = dxhat invstd + dvar 2 (x - mean) / count + dmean / count */
void fg_ref_bn_backward(const double *dy, const double *x, int64_t n, int64_t c, int64_t hw,
                        const double *gamma, const double *mean, const double *invstd, double *dx,
                        double *dgamma, double *dbeta) {
  const double count = (double)(n * hw);
  for (int64_t ch = 0; ch < c; ch++) {
    const double mu = mean[ch], is = invstd[ch];
    double sum_dy = 0.0, sum_dy_xhat = 0.0, dvar = 0.0, dmean = 0.0, sum_centered = 0.0;
    for (int64_t i = 0; i < n; i++)
      for (int64_t s = 0; s < hw; s++) {
        int64_t j = at(c, hw, i, ch, s);
        double xhat = (x[j] - mu) * is;
        double dxhat = dy[j] * gamma[ch];
        sum_dy += dy[j];
        sum_dy_xhat += dy[j] * xhat;
        dvar += dxhat * (x[j] - mu) * -0.5 * is * is * is;
        dmean += -dxhat * is;
        sum_centered += -2.0 * (x[j] - mu);
      }
    dmean += dvar * sum_centered / count;
    dgamma[ch] = sum_dy_xhat;
    dbeta[ch] = sum_dy;
    for (int64_t i = 0; i < n; i++)
      for (int64_t s = 0; s < hw; s++) {
        int64_t j = at(c, hw, i, ch, s);
        double dxhat = dy[j] * gamma[ch];
        dx[j] = dxhat * is + dvar * 2.0 * (x[j] - mu) / count + dmean / count;
      }
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Elementwise                                                                                */

void fg_ref_relu_forward(const double *x, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] = x[i] > 0.0 ? x[i] : 0.0;
}

void fg_ref_relu_backward(const double *y, const double *dy, int64_t count, double *dx) {
  for (int64_t i = 0; i < count; i++) dx[i] = y[i] > 0.0 ? dy[i] : 0.0;
}

void fg_ref_add(const double *x1, const double *x2, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] = x1[i] + x2[i];
}

void fg_ref_axpy(double alpha, const double *x, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] += alpha * x[i];
}

void fg_ref_scale(double alpha, const double *x, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] = alpha * x[i];
}

void fg_ref_dropout_forward(const double *x, int64_t count, float p, uint64_t key, double *y) {
  for (int64_t i = 0; i < count; i++) {
    int keep = fg_rng_uniform_at(key, (uint64_t)i) >= p;
    y[i] = keep ? x[i] / (1.0 - (double)p) : 0.0;
  }
}

void fg_ref_dropout_backward(const double *dy, int64_t count, float p, uint64_t key, double *dx) {
  fg_ref_dropout_forward(dy, count, p, key, dx);
}

/* ----------------------------------------------------------------------------------------- */
/* Losses                                                                                     */

/* out = softmax(z / t) of one row, stabilised by the row maximum. */
static void softmax_row(const double *z, int64_t k, double t, double *out) {
  double m = z[0];
  for (int64_t j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
  double sum = 0.0;
  for (int64_t j = 0; j < k; j++) sum += exp((z[j] - m) / t);
  for (int64_t j = 0; j < k; j++) out[j] = exp((z[j] - m) / t) / sum;
}

/* out = log softmax(z / t) of one row. */
static void log_softmax_row(const double *z, int64_t k, double t, double *out) {
  double m = z[0];
  for (int64_t j = 1; j < k; j++) m = z[j] > m ? z[j] : m;
  double sum = 0.0;
  for (int64_t j = 0; j < k; j++) sum += exp((z[j] - m) / t);
  for (int64_t j = 0; j < k; j++) out[j] = (z[j] - m) / t - log(sum);
}

/* Logit j of a row with the class mask applied: masked classes read 0. */
static double masked_logit(const double *row, const double *class_mask, int64_t j) {
  return (class_mask && class_mask[j] == 0.0) ? 0.0 : row[j];
}

double fg_ref_softmax_xent(const double *logits, const int32_t *labels, const double *class_mask,
                           int64_t n, int64_t k, double weight, double *dlogits, int64_t *correct) {
  double total = 0.0;
  int64_t right = 0;
  for (int64_t r = 0; r < n; r++) {
    const double *row = logits + r * k;
    double m = masked_logit(row, class_mask, 0);
    int64_t arg = 0;
    for (int64_t j = 1; j < k; j++)
      if (masked_logit(row, class_mask, j) > m) {
        m = masked_logit(row, class_mask, j);
        arg = j;
      }
    double sum = 0.0;
    for (int64_t j = 0; j < k; j++) sum += exp(masked_logit(row, class_mask, j) - m);
    double lse = m + log(sum);
    total += lse - masked_logit(row, class_mask, labels[r]);
    right += arg == labels[r];
    if (dlogits)
      for (int64_t j = 0; j < k; j++) {
        double soft = exp(masked_logit(row, class_mask, j) - m) / sum;
        double onehot = j == labels[r] ? 1.0 : 0.0;
        int kept = !class_mask || class_mask[j] != 0.0;
        dlogits[r * k + j] = kept ? weight * (soft - onehot) / (double)n : 0.0;
      }
  }
  if (correct) *correct = right;
  return weight * total / (double)n;
}

/* Largest class count the KL reference handles (row scratch lives on the stack). */
enum { FG_REF_KL_MAX_K = 1024 };

/* Per row: L = sum_k q_k (log q_k - log p_k). Gradients through the explicit Jacobians
 *   d log p_k / d s_j = (delta_kj - p_j) / T,   dL/d log p_k = -q_k
 *   d q_k / d t_j = q0_k (delta_kj - q0_j) / T,  dL/d q_k = log q_k - log p_k + 1
 * (a class with q0_k = 0 contributes nothing: the limit of q log q). */
double fg_ref_kl_div(const double *student, const double *teacher, int64_t n, int64_t k,
                     double temperature, double teacher_eps, fg_kl_reduction reduction,
                     double weight, double *dstudent, double *dteacher) {
  if (k > FG_REF_KL_MAX_K) return NAN;
  double logp[FG_REF_KL_MAX_K], p[FG_REF_KL_MAX_K], q0[FG_REF_KL_MAX_K], q[FG_REF_KL_MAX_K];
  const double t = temperature;
  const double divisor = reduction == FG_KL_BATCHMEAN ? (double)n : (double)(n * k);
  const double scale = weight * t * t / divisor;
  double total = 0.0;
  for (int64_t r = 0; r < n; r++) {
    const double *s = student + r * k, *te = teacher + r * k;
    log_softmax_row(s, k, t, logp);
    softmax_row(s, k, t, p);
    softmax_row(te, k, t, q0);
    for (int64_t j = 0; j < k; j++) q[j] = q0[j] + teacher_eps;
    for (int64_t j = 0; j < k; j++)
      if (q[j] > 0.0) total += q[j] * (log(q[j]) - logp[j]);
    if (dstudent)
      for (int64_t j = 0; j < k; j++) {
        double g = 0.0;
        for (int64_t kk = 0; kk < k; kk++) {
          double dlogp = ((kk == j ? 1.0 : 0.0) - p[j]) / t;
          g += -q[kk] * dlogp;
        }
        dstudent[r * k + j] = scale * g;
      }
    if (dteacher)
      for (int64_t j = 0; j < k; j++) {
        double g = 0.0;
        for (int64_t kk = 0; kk < k; kk++) {
          if (q0[kk] == 0.0) continue;
          double dq = q0[kk] * ((kk == j ? 1.0 : 0.0) - q0[j]) / t;
          g += (log(q[kk]) - logp[kk] + 1.0) * dq;
        }
        dteacher[r * k + j] = scale * g;
      }
  }
  return scale * total;
}

double fg_ref_mse(const double *y, const double *target, int64_t count, double weight, double *dy) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; i++) sum += (y[i] - target[i]) * (y[i] - target[i]);
  if (dy)
    for (int64_t i = 0; i < count; i++) dy[i] = 2.0 * weight * (y[i] - target[i]) / (double)count;
  return weight * sum / (double)count;
}

static void ref_gaussian_kernel(const double *a, int64_t d, int64_t m, double sigma, double *k) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) {
      double s = 0.0;
      for (int64_t e = 0; e < d; e++) s += (a[i * d + e] - a[j * d + e]) * (a[i * d + e] - a[j * d + e]);
      k[i * m + j] = exp(-s / (2.0 * sigma * sigma * (double)d));
    }
}

/* out := a b for m x m matrices. */
static void ref_matmul(const double *a, const double *b, int64_t m, double *out) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) {
      double s = 0.0;
      for (int64_t e = 0; e < m; e++) s += a[i * m + e] * b[e * m + j];
      out[i * m + j] = s;
    }
}

/* tr(ka H kb H) / m^2, with `tmp` 3 m^2 of scratch. */
static double ref_hsic(const double *ka, const double *kb, const double *h, int64_t m, double *tmp) {
  double *kah = tmp, *kbh = tmp + m * m, *prod = tmp + 2 * m * m;
  ref_matmul(ka, h, m, kah);
  ref_matmul(kb, h, m, kbh);
  ref_matmul(kah, kbh, m, prod);
  double tr = 0.0;
  for (int64_t i = 0; i < m; i++) tr += prod[i * m + i];
  return tr / (double)(m * m);
}

double fg_ref_nhsic(const double *z, int64_t dz, const double *t, int64_t dt, int64_t m, double sigma,
                    double *scratch) {
  double *kz = scratch, *kt = scratch + m * m, *h = scratch + 2 * m * m, *tmp = scratch + 3 * m * m;
  ref_gaussian_kernel(z, dz, m, sigma, kz);
  ref_gaussian_kernel(t, dt, m, sigma, kt);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) h[i * m + j] = (i == j ? 1.0 : 0.0) - 1.0 / (double)m;
  double zt = ref_hsic(kz, kt, h, m, tmp), zz = ref_hsic(kz, kz, h, m, tmp), tt = ref_hsic(kt, kt, h, m, tmp);
  return zt / sqrt(zz * tt);
}

/* out := H k H with the explicit centring matrix h; tmp: m^2. */
static void ref_centre(const double *k, const double *h, int64_t m, double *tmp, double *out) {
  ref_matmul(h, k, m, tmp);
  ref_matmul(tmp, h, m, out);
}

static double ref_frobenius_dot(const double *a, const double *b, int64_t m) {
  double s = 0.0;
  for (int64_t e = 0; e < m * m; e++) s += a[e] * b[e];
  return s;
}

double fg_ref_nhsic_grad(const double *z, int64_t dz, const double *t, int64_t dt, int64_t m,
                         double sigma, double *grad, double *scratch) {
  double *kz = scratch, *kt = scratch + m * m, *h = scratch + 2 * m * m, *tmp = scratch + 3 * m * m;
  double *kzc = scratch + 4 * m * m, *ktc = scratch + 5 * m * m;
  ref_gaussian_kernel(z, dz, m, sigma, kz);
  ref_gaussian_kernel(t, dt, m, sigma, kt);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) h[i * m + j] = (i == j ? 1.0 : 0.0) - 1.0 / (double)m;
  ref_centre(kz, h, m, tmp, kzc);
  ref_centre(kt, h, m, tmp, ktc);
  const double a = ref_frobenius_dot(kzc, ktc, m), b = ref_frobenius_dot(kzc, kzc, m);
  const double c = ref_frobenius_dot(ktc, ktc, m);
  for (int64_t e = 0; e < m * dz; e++) grad[e] = 0.0;
  if (!(b * c > 0.0)) return 0.0;
  const double s = 2.0 * sigma * sigma * (double)dz, norm = sqrt(b * c);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) {
      const double g = (ktc[i * m + j] - (a / b) * kzc[i * m + j]) / norm;
      const double coef = -4.0 / s * g * kz[i * m + j];
      for (int64_t e = 0; e < dz; e++) grad[i * dz + e] += coef * (z[i * dz + e] - z[j * dz + e]);
    }
  return a / norm;
}

/* ----------------------------------------------------------------------------------------- */
/* Optimizers and reductions                                                                  */

void fg_ref_sgd_step(const fg_sgd_hparams *h, int64_t count, double *param, const double *grad,
                     double *momentum_buf) {
  const double lr = h->lr, mom = h->momentum, wd = h->weight_decay, damp = h->dampening;
  for (int64_t i = 0; i < count; i++) {
    double d = grad[i] + wd * param[i];
    double update = d;
    if (mom != 0.0) {
      momentum_buf[i] = mom * momentum_buf[i] + (1.0 - damp) * d;
      update = h->nesterov ? d + mom * momentum_buf[i] : momentum_buf[i];
    }
    param[i] -= lr * update;
  }
}

void fg_ref_adam_step(const fg_adam_hparams *h, int64_t step, int64_t count, double *param,
                      const double *grad, double *m, double *v) {
  const double b1 = h->beta1, b2 = h->beta2;
  const double bc1 = 1.0 - pow(b1, (double)step);
  const double bc2 = 1.0 - pow(b2, (double)step);
  for (int64_t i = 0; i < count; i++) {
    double g = grad[i] + (double)h->weight_decay * param[i];
    m[i] = b1 * m[i] + (1.0 - b1) * g;
    v[i] = b2 * v[i] + (1.0 - b2) * g * g;
    param[i] -= ((double)h->lr / bc1) * m[i] / (sqrt(v[i]) / sqrt(bc2) + (double)h->eps);
  }
}

double fg_ref_sum_squares(const double *x, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; i++) sum += x[i] * x[i];
  return sum;
}

void fg_ref_sigmoid_forward(const double *x, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] = 1.0 / (1.0 + exp(-x[i]));
}

void fg_ref_sigmoid_backward(const double *y, const double *dy, int64_t count, double *dx) {
  for (int64_t i = 0; i < count; i++) dx[i] = dy[i] * y[i] * (1.0 - y[i]);
}

void fg_ref_mul(const double *x1, const double *x2, int64_t count, double *y) {
  for (int64_t i = 0; i < count; i++) y[i] = x1[i] * x2[i];
}
