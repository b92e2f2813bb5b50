/* nHSIC on the CPU (neulite.md §2). Squared distances are summed in double directly from the
 * row differences (no |a|^2 - 2<a,b> + |b|^2 cancellation), kernels, centring and traces are in
 * double, and the gradient
 *   d nHSIC / d z_i = 4 sum_j M_ij (z_i - z_j),  M = -(G o K_z) / s,
 *   G = (L~ - (a/b) K~_z) / sqrt(b c),  a = <K~_z, L~>, b = |K~_z|^2, c = |L~|^2
 * is written row by row. Each row belongs to one thread and is summed in a fixed order, so the
 * results do not depend on the thread count. Workspace: three m x m double matrices and m doubles. */
#include <math.h>
#include <string.h>

#include "cpu/math_internal.h"

/* Rows x values below which the O(m^2 d) loops stay on one thread. */
enum { FG_HSIC_PARALLEL_MIN = 1 << 16 };

static fg_status cpu_nhsic_workspace(fg_backend *b, int64_t m, size_t *bytes) {
  (void)b;
  *bytes = (3 * (size_t)(m * m) + (size_t)m) * sizeof(double);
  return FG_OK;
}

/* out [m, m] := |a_i - a_j|^2 for the rows of a [m, d]. */
static void sq_distances(const float *a, int64_t m, int64_t d, double *out) {
#pragma omp parallel for schedule(dynamic, 1) if (m * d >= FG_HSIC_PARALLEL_MIN)
  for (int64_t i = 0; i < m; i++) {
    out[i * m + i] = 0.0;
    for (int64_t j = i + 1; j < m; j++) {
      const float *ai = a + i * d, *aj = a + j * d;
      double s = 0.0;
      for (int64_t k = 0; k < d; k++) {
        double t = (double)ai[k] - (double)aj[k];
        s += t * t;
      }
      out[i * m + j] = s;
    }
  }
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < i; j++) out[i * m + j] = out[j * m + i];
}

/* One-hot rows differ by 2 in squared distance, or 0 for equal labels (labels checked). */
static void label_distances(const int32_t *y, int64_t m, double *out) {
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) out[i * m + j] = y[i] == y[j] ? 0.0 : 2.0;
}

/* k := exp(-k / s), in place. */
static void gaussian(double *k, int64_t m, double s) {
  for (int64_t e = 0; e < m * m; e++) k[e] = exp(-k[e] / s);
}

/* out := H k H = k_ij - mean_i - mean_j + grand mean, for a symmetric k (row means = column
 * means, kept in mean [m]). */
static void centre(const double *k, int64_t m, double *mean, double *out) {
  double grand = 0.0;
  for (int64_t i = 0; i < m; i++) {
    double r = 0.0;
    for (int64_t j = 0; j < m; j++) r += k[i * m + j];
    mean[i] = r / (double)m;
    grand += r;
  }
  grand /= (double)(m * m);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < m; j++) out[i * m + j] = k[i * m + j] - mean[i] - mean[j] + grand;
}

static double dot(const double *a, const double *b, int64_t n) {
  double s = 0.0;
  for (int64_t e = 0; e < n; e++) s += a[e] * b[e];
  return s;
}

/* dz_i (=|+=) scale * sum_j M_ij (z_i - z_j). */
static void write_grad(const double *mm, const float *z, int64_t m, int64_t d, double scale, float *dz,
                       int accumulate) {
#pragma omp parallel for schedule(static) if (m * m * d >= FG_HSIC_PARALLEL_MIN)
  for (int64_t i = 0; i < m; i++) {
    float *gi = dz + i * d;
    const float *zi = z + i * d;
    if (!accumulate) memset(gi, 0, (size_t)d * sizeof(float));
    for (int64_t j = 0; j < m; j++) {
      float c = (float)(scale * mm[i * m + j]);
      if (j == i || c == 0.0f) continue;
      const float *zj = z + j * d;
      for (int64_t k = 0; k < d; k++) gi[k] += c * (zi[k] - zj[k]);
    }
  }
}

static fg_status cpu_nhsic(fg_backend *b, const fg_nhsic_desc *desc, const fg_tensor *z, const fg_tensor *x,
                           const fg_tensor *labels, float weight, fg_tensor *dz, int accumulate, fg_workspace ws,
                           double *value, fg_index_report *bad) {
  (void)b;
  int64_t m = z->shape[0], dzn = fg_tensor_numel(z) / m;
  double *kz = ws.ptr, *kzc = kz + m * m, *lc = kzc + m * m, *mean = lc + m * m;
  double two_sigma2 = 2.0 * (double)desc->sigma * (double)desc->sigma;
  /* The target's kernel, centred, goes to lc (kz serves as scratch). */
  if (!x && fg_cpu_count_bad_labels(fg_i32(labels), m, desc->classes, bad)) return FG_OK;
  if (x) {
    int64_t dx = fg_tensor_numel(x) / m;
    sq_distances(fg_f32(x), m, dx, kz);
    gaussian(kz, m, two_sigma2 * (double)dx);
  } else {
    label_distances(fg_i32(labels), m, kz);
    gaussian(kz, m, two_sigma2 * (double)desc->classes);
  }
  centre(kz, m, mean, lc);
  double sz = two_sigma2 * (double)dzn;
  sq_distances(fg_f32(z), m, dzn, kz);
  gaussian(kz, m, sz);
  centre(kz, m, mean, kzc);
  double a = dot(kzc, lc, m * m), bb = dot(kzc, kzc, m * m), c = dot(lc, lc, m * m);
  double norm = sqrt(bb * c);
  *value = norm > 0.0 ? a / norm : 0.0;
  if (!dz) return FG_OK;
  if (!(norm > 0.0)) {
    if (!accumulate) memset(fg_f32(dz), 0, (size_t)(m * dzn) * sizeof(float));
    return FG_OK;
  }
  /* M = -(G o K_z) / s, into kzc (G is formed element by element from kzc and lc). */
  double ratio = a / bb;
  for (int64_t e = 0; e < m * m; e++) kzc[e] = -((lc[e] - ratio * kzc[e]) / norm) * kz[e] / sz;
  write_grad(kzc, fg_f32(z), m, dzn, 4.0 * (double)weight, fg_f32(dz), accumulate);
  return FG_OK;
}

void fg_cpu_register_hsic_ops(fg_backend *b) {
  b->nhsic_workspace = cpu_nhsic_workspace;
  b->nhsic = cpu_nhsic;
}
