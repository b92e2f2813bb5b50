/* Naive double-precision one-sided Jacobi SVD (test oracle); see ref_linalg.h. */
#include "ref/ref_linalg.h"

#include <math.h>

/* A pair of columns counts as orthogonal when |g_p . g_q| <= this * |g_p| |g_q|. */
#define FG_REF_SVD_TOL 1e-15
#define FG_REF_SVD_MAX_SWEEPS 100

int64_t fg_ref_svd_scratch(int64_t m, int64_t n) {
  const int64_t p = m > n ? m : n, q = m < n ? m : n;
  return p * q + q * q;
}

static void swap_columns(double *x, int64_t len, int64_t i, int64_t j) {
  for (int64_t r = 0; r < len; r++) {
    double t = x[i * len + r];
    x[i * len + r] = x[j * len + r];
    x[j * len + r] = t;
  }
}

int fg_ref_svd(const double *a, int64_t m, int64_t n, double *u, double *s, double *vt,
               double *scratch) {
  /* Work on the tall one of a and a^T: q columns of length p, stored column after column. */
  const int transposed = m < n;
  const int64_t p = transposed ? n : m, q = transposed ? m : n;
  double *g = scratch;         /* [q columns][p] */
  double *v = scratch + p * q; /* [q columns][q], the accumulated rotations */
  for (int64_t j = 0; j < q; j++)
    for (int64_t i = 0; i < p; i++) g[j * p + i] = transposed ? a[j * n + i] : a[i * n + j];
  for (int64_t j = 0; j < q; j++)
    for (int64_t i = 0; i < q; i++) v[j * q + i] = i == j ? 1.0 : 0.0;

  int sweeps = 0, converged = 0;
  while (!converged && sweeps < FG_REF_SVD_MAX_SWEEPS) {
    converged = 1;
    sweeps++;
    for (int64_t c1 = 0; c1 < q; c1++)
      for (int64_t c2 = c1 + 1; c2 < q; c2++) {
        double *gp = g + c1 * p, *gq = g + c2 * p;
        double alpha = 0.0, beta = 0.0, gamma = 0.0;
        for (int64_t i = 0; i < p; i++) {
          alpha += gp[i] * gp[i];
          beta += gq[i] * gq[i];
          gamma += gp[i] * gq[i];
        }
        if (gamma == 0.0 || fabs(gamma) <= FG_REF_SVD_TOL * sqrt(alpha) * sqrt(beta)) continue;
        converged = 0;
        /* The rotation that makes the two columns orthogonal: tan = the smaller root of
         * t^2 + 2 zeta t - 1 = 0. */
        const double zeta = (beta - alpha) / (2.0 * gamma);
        const double t = (zeta >= 0.0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
        const double c = 1.0 / sqrt(1.0 + t * t), sn = c * t;
        for (int64_t i = 0; i < p; i++) {
          const double x = gp[i], y = gq[i];
          gp[i] = c * x - sn * y;
          gq[i] = sn * x + c * y;
        }
        double *vp = v + c1 * q, *vq = v + c2 * q;
        for (int64_t i = 0; i < q; i++) {
          const double x = vp[i], y = vq[i];
          vp[i] = c * x - sn * y;
          vq[i] = sn * x + c * y;
        }
      }
  }

  /* Singular values are the column norms; order them descending (selection sort, swapping the
   * columns of g and v along). */
  for (int64_t j = 0; j < q; j++) {
    double sum = 0.0;
    for (int64_t i = 0; i < p; i++) sum += g[j * p + i] * g[j * p + i];
    s[j] = sqrt(sum);
  }
  for (int64_t j = 0; j < q; j++) {
    int64_t best = j;
    for (int64_t i = j + 1; i < q; i++)
      if (s[i] > s[best]) best = i;
    if (best == j) continue;
    double t = s[j];
    s[j] = s[best];
    s[best] = t;
    swap_columns(g, p, j, best);
    swap_columns(v, q, j, best);
  }
  for (int64_t j = 0; j < q; j++)
    for (int64_t i = 0; i < p; i++) g[j * p + i] = s[j] > 0.0 ? g[j * p + i] / s[j] : 0.0;

  /* a = G diag(s) V^T (not transposed) or a^T = G diag(s) V^T, i.e. a = V diag(s) G^T. */
  const int64_t k = q;
  const double *left = transposed ? v : g, *right = transposed ? g : v;
  const int64_t left_len = transposed ? q : p, right_len = transposed ? p : q;
  for (int64_t j = 0; j < k; j++) {
    /* Sign rule on the right vector of component j. */
    const double *rv = right + j * right_len;
    int64_t big = 0;
    for (int64_t i = 1; i < right_len; i++)
      if (fabs(rv[i]) > fabs(rv[big])) big = i;
    const double sign = rv[big] < 0.0 ? -1.0 : 1.0;
    if (u)
      for (int64_t i = 0; i < left_len; i++) u[i * k + j] = sign * left[j * left_len + i];
    if (vt)
      for (int64_t i = 0; i < right_len; i++) vt[j * n + i] = sign * rv[i];
  }
  return converged ? sweeps : -1;
}
