/* CPU linear algebra: thin SVD with LAPACK's divide-and-conquer sgesdd from OpenBLAS.
 *
 * Debian's OpenBLAS exports the Fortran LAPACK routines (sgesdd_) but no LAPACKE, and the
 * row-major LAPACKE wrappers would allocate transposed copies of every matrix behind the
 * ledger's back. So the Fortran routine is called directly, on the row-major buffer read as the
 * column-major n x m matrix a^T = v diag(s) u^T. Its left factor (n x k, column-major) is then
 * exactly vt [k,n] row-major and its right factor (k x m, column-major) exactly u [m,k]
 * row-major: no transposition anywhere. Everything LAPACK touches comes from the caller's
 * workspace: a copy of a (sgesdd overwrites its input), the float work array and the integer
 * work array. The sign rule of engine/backend/backend.h is applied afterwards. LAPACK runs on
 * one OpenBLAS thread (see cpu_svd), so results do not depend on the thread count. */
#include <cblas.h> /* blasint, the integer type of this OpenBLAS build's LAPACK */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_internal.h"

/* LAPACK (Fortran calling convention, gfortran ABI: the length of each character argument is
 * passed as a trailing size_t). */
extern void sgesdd_(const char *jobz, const blasint *m, const blasint *n, float *a,
                    const blasint *lda, float *s, float *u, const blasint *ldu, float *vt,
                    const blasint *ldvt, float *work, const blasint *lwork, blasint *iwork,
                    blasint *info, size_t jobz_len);

/* Workspace parts start at multiples of this many bytes from the workspace pointer. */
enum { FG_CPU_SVD_ALIGN = 64 };

static size_t round_up(size_t v) {
  return (v + FG_CPU_SVD_ALIGN - 1) / FG_CPU_SVD_ALIGN * FG_CPU_SVD_ALIGN;
}

static int fits_blasint(int64_t v) {
  return v >= 0 && (uint64_t)v <= (uint64_t)(((uint64_t)1 << (8 * sizeof(blasint) - 1)) - 1);
}

/* The layout of the workspace for a [m,n]: bytes of the input copy, floats of the LAPACK work
 * array (from its workspace query), integers of the LAPACK iwork array. */
typedef struct svd_layout {
  size_t copy_bytes, work_floats, iwork_count;
  size_t work_offset, iwork_offset, total;
} svd_layout;

static fg_status svd_layout_for(int64_t m, int64_t n, svd_layout *l) {
  const int64_t k = m < n ? m : n;
  /* sgesdd indexes its arrays with the BLAS integer: keep every extent and the matrix size in
   * range (a 46341 x 46341 float matrix is 8 GiB, far beyond what the methods need). */
  if (!fits_blasint(m) || !fits_blasint(n) || m > INT64_MAX / n || !fits_blasint(m * n) ||
      !fits_blasint(8 * k))
    return FG_FAIL(FG_ERR_UNSUPPORTED,
                   "cpu svd: a [%lld, %lld] exceeds the range of LAPACK's integer (%zu bytes)",
                   (long long)m, (long long)n, sizeof(blasint));
  /* Workspace query on the transposed problem (column-major n x m), as svd runs it. */
  const blasint bm = (blasint)n, bn = (blasint)m, lda = (blasint)n, ldu = (blasint)n,
                ldvt = (blasint)k, query = -1;
  blasint info = 0, iwork_dummy = 0;
  float work_query = 0.0f, dummy = 0.0f;
  sgesdd_("S", &bm, &bn, &dummy, &lda, &dummy, &dummy, &ldu, &dummy, &ldvt, &work_query, &query,
          &iwork_dummy, &info, 1);
  if (info != 0)
    return FG_FAIL(FG_ERR_LIBRARY, "cpu svd: LAPACK sgesdd workspace query for [%lld, %lld] "
                   "failed with info %lld", (long long)m, (long long)n, (long long)info);
  /* LAPACK returns the optimal size as a float, which may round an integer down by up to one
   * part in 2^24: add a margin so the size passed back is never below what it needs. */
  double want = (double)work_query;
  if (!(want >= 1.0)) want = 1.0;
  want = ceil(want * (1.0 + 1.0 / 4194304.0)) + 1.0;
  if (!(want < 9.0e15) || !fits_blasint((int64_t)want))
    return FG_FAIL(FG_ERR_UNSUPPORTED, "cpu svd: LAPACK asks for %.0f work floats for [%lld, %lld], "
                   "beyond its integer range", want, (long long)m, (long long)n);
  l->copy_bytes = (size_t)(m * n) * sizeof(float);
  l->work_floats = (size_t)want;
  l->iwork_count = (size_t)(8 * k);
  l->work_offset = round_up(l->copy_bytes);
  l->iwork_offset = l->work_offset + round_up(l->work_floats * sizeof(float));
  l->total = l->iwork_offset + round_up(l->iwork_count * sizeof(blasint));
  return FG_OK;
}

static fg_status cpu_svd_workspace(fg_backend *b, int64_t m, int64_t n, size_t *bytes) {
  (void)b;
  svd_layout l = {0};
  FG_TRY(svd_layout_for(m, n, &l));
  *bytes = l.total;
  return FG_OK;
}

/* Negates (u_i, vt_i) where the largest-magnitude entry of vt_i (first on ties) is negative.
 * u [m,k], vt [k,n] row-major. */
static void apply_sign_rule(float *u, float *vt, int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < k; i++) {
    float *v = vt + i * n;
    int64_t best = 0;
    float best_abs = fabsf(v[0]);
    for (int64_t j = 1; j < n; j++)
      if (fabsf(v[j]) > best_abs) {
        best_abs = fabsf(v[j]);
        best = j;
      }
    if (!(v[best] < 0.0f)) continue;
    for (int64_t j = 0; j < n; j++) v[j] = -v[j];
    for (int64_t r = 0; r < m; r++) u[r * k + i] = -u[r * k + i];
  }
}

static fg_status cpu_svd(fg_backend *b, const fg_tensor *a, fg_tensor *u, fg_tensor *s,
                         fg_tensor *vt, fg_workspace ws) {
  const int64_t m = a->shape[0], n = a->shape[1], k = m < n ? m : n;
  svd_layout l = {0};
  FG_TRY(svd_layout_for(m, n, &l)); /* the entry point checked ws against l.total */
  const float *ap = fg_f32(a);
  for (int64_t i = 0; i < m * n; i++)
    if (!isfinite(ap[i]))
      return FG_FAIL(FG_ERR_NUMERIC, "cpu svd: a [%lld, %lld] has the non-finite value %g at "
                     "row %lld, column %lld", (long long)m, (long long)n, (double)ap[i],
                     (long long)(i / n), (long long)(i % n));
  unsigned char *base = ws.ptr;
  float *copy = (float *)base;
  float *work = (float *)(base + l.work_offset);
  blasint *iwork = (blasint *)(base + l.iwork_offset);
  memcpy(copy, ap, l.copy_bytes);
  /* Column-major n x m problem a^T = (left: vt^T) diag(s) (right: u^T). */
  const blasint bm = (blasint)n, bn = (blasint)m, lda = (blasint)n, ldu = (blasint)n,
                ldvt = (blasint)k, lwork = (blasint)l.work_floats;
  blasint info = 0;
  /* OpenBLAS splits LAPACK's BLAS calls differently for different thread counts, and the
   * results then differ in the last bits: run single-threaded, so the factors are the same
   * whatever the backend's thread count (the engine's CPU results never depend on it). */
  fg_cpu_blas_set_threads(1);
  sgesdd_("S", &bm, &bn, copy, &lda, fg_f32(s), fg_f32(vt), &ldu, fg_f32(u), &ldvt, work, &lwork,
          iwork, &info, 1);
  fg_cpu_blas_set_threads(fg_cpu_ctx_of(b)->threads);
  if (info < 0)
    return FG_FAIL(FG_ERR_INTERNAL, "cpu svd: LAPACK sgesdd rejected its argument %lld for "
                   "[%lld, %lld]", (long long)-info, (long long)m, (long long)n);
  if (info > 0)
    return FG_FAIL(FG_ERR_LIBRARY, "cpu svd: LAPACK sgesdd did not converge for [%lld, %lld] "
                   "(info %lld)", (long long)m, (long long)n, (long long)info);
  apply_sign_rule(fg_f32(u), fg_f32(vt), m, n, k);
  return FG_OK;
}

void fg_cpu_register_linalg_ops(fg_backend *b) {
  b->svd_workspace = cpu_svd_workspace;
  b->svd = cpu_svd;
}
