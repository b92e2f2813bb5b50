/* The per-element arithmetic of the CUDA nHSIC op (cuda/hsic.cu): squared distances, Gaussian
 * kernel values, centring on the fly, the value and the entries of the gradient matrix. Written
 * once for the kernels and for the host tests (tests/cpu/test_cuda_math_hsic.c), in the common
 * subset of C11 and C++14; each function is the CPU backend's formula (cpu/hsic.c) in its
 * precision (double) and its order of operations. With
 *   K_ij = exp(-|a_i - a_j|^2 / s),  s = 2 sigma^2 d,  K~ = H K H (centred),
 *   a = <K~_z, L~>, b = |K~_z|^2, c = |L~|^2,  nHSIC = a / sqrt(b c)  (0 when b c = 0),
 *   M_ij = -((L~_ij - (a/b) K~z_ij) / sqrt(b c)) K_z,ij / s,
 * the gradient is dz_i = 4 w sum_j M_ij (z_i - z_j) = -(C' z)_i, where C_ij = (float)(4 w M_ij)
 * off the diagonal (the CPU's float coefficients) and C'_ii = -sum_{j != i} C_ij. Owns nothing. */
#ifndef FG_CUDA_MATH_HSIC_H
#define FG_CUDA_MATH_HSIC_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"

/* The bandwidth s = 2 sigma^2 d of rows with d values each (d = classes for one-hot labels). */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_bandwidth(float sigma, int64_t d) {
  const double two_sigma2 = 2.0 * (double)sigma * (double)sigma;
  return two_sigma2 * (double)d;
}

/* One term of a squared distance, (a - b)^2 in double (exact difference of two floats); a row's
 * distance adds these over its values in ascending order, as the CPU does. */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_sq_diff(float a, float b) {
  const double t = (double)a - (double)b;
  return t * t;
}

/* The squared distance of two one-hot rows: 0 for equal labels, else 2. */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_label_distance(int32_t yi, int32_t yj) {
  return yi == yj ? 0.0 : 2.0;
}

/* The Gaussian kernel value of a squared distance. */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_gaussian(double d2, double s) {
  return exp(-d2 / s);
}

/* A row's mean from its sum, and the grand mean from the sum of all m row sums. */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_mean(double row_sum, int64_t m) {
  return row_sum / (double)m;
}
FG_HOST_DEVICE static inline double fg_cuda_nhsic_grand(double total, int64_t m) {
  return total / (double)(m * m);
}

/* The centred entry K~_ij = K_ij - mean_i - mean_j + grand of a symmetric K (no uncentred
 * shortcut: the centred entries are far smaller than K's, so they are formed entry by entry). */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_centred(double k, double mean_i, double mean_j,
                                                          double grand) {
  return k - mean_i - mean_j + grand;
}

/* nHSIC from a, b, c, and its normaliser sqrt(b c) (0 when a centred kernel vanishes). */
FG_HOST_DEVICE static inline double fg_cuda_nhsic_norm(double b, double c) { return sqrt(b * c); }
FG_HOST_DEVICE static inline double fg_cuda_nhsic_value(double a, double norm) {
  return norm > 0.0 ? a / norm : 0.0;
}

/* The gradient coefficient C_ij = (float)(scale M_ij) of an off-diagonal pair, scale = 4 w,
 * ratio = a / b, from the centred kz, lt of the pair and K_z,ij (kz_raw). */
FG_HOST_DEVICE static inline float fg_cuda_nhsic_coefficient(double kz_centred, double lt_centred,
                                                             double kz_raw, double ratio,
                                                             double norm, double s, double scale) {
  const double mij = -((lt_centred - ratio * kz_centred) / norm) * kz_raw / s;
  return (float)(scale * mij);
}

/* The diagonal of C' from the sum, in double, of the row's off-diagonal coefficients. */
FG_HOST_DEVICE static inline float fg_cuda_nhsic_diagonal(double offdiag_sum) {
  return (float)-offdiag_sum;
}

#endif
