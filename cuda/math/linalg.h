/* The index arithmetic and the sign rule of the CUDA thin SVD (cuda/linalg.cu), written once for
 * its kernels and for the host tests (tests/cpu/test_cuda_math_linalg.c), in the common subset
 * of C11 and C++14.
 *
 * cuSOLVER's gesvd works on column-major matrices with at least as many rows as columns. For a
 * row-major a [m, n], k = min(m, n):
 *   wide (n >= m): the buffer of a read column-major is a^T, n x m: gesvd factors it as
 *     a^T = U' diag(s) V'^T with U' [n, k] (leading dimension n) and V'^T [k, k] (leading
 *     dimension k), so vt = U'^T and u = V';
 *   tall (m > n): a is first transposed into a column-major m x n copy, factored as
 *     a = U diag(s) V^T with U [m, k] (leading dimension m) and V^T [k, k]: u = U, vt = V^T.
 * So one factor buffer of the solver ("left": U or U') and one ("right": V^T or V'^T) hold u and
 * vt; the functions below say which and where. Then the sign rule of engine/backend/backend.h:
 * component i (column u_i, row vt_i) is negated when the entry of largest magnitude of vt_i, the
 * first on equal magnitudes, is negative (cpu/linalg.c's apply_sign_rule). Owns nothing. */
#ifndef FG_CUDA_MATH_LINALG_H
#define FG_CUDA_MATH_LINALG_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"

/* Whether a [m, n] is solved as its transpose without a copy-transpose (n >= m). */
FG_HOST_DEVICE static inline int fg_cuda_svd_wide(int64_t m, int64_t n) { return n >= m; }

/* The rows and columns of the column-major problem gesvd solves (rows >= columns = k). */
FG_HOST_DEVICE static inline int64_t fg_cuda_svd_rows(int64_t m, int64_t n) { return m > n ? m : n; }
FG_HOST_DEVICE static inline int64_t fg_cuda_svd_cols(int64_t m, int64_t n) { return m < n ? m : n; }

/* Where a[r][c] goes in the solver's input copy. */
FG_HOST_DEVICE static inline int64_t fg_cuda_svd_input_offset(int64_t r, int64_t c, int64_t m,
                                                              int64_t n) {
  return fg_cuda_svd_wide(m, n) ? r * n + c : r + c * m;
}

/* u[r][i] (r < m, i < k) is read from the right factor (wide) or the left factor (tall), at: */
FG_HOST_DEVICE static inline int fg_cuda_svd_u_in_left(int64_t m, int64_t n) {
  return !fg_cuda_svd_wide(m, n);
}
FG_HOST_DEVICE static inline int64_t fg_cuda_svd_u_offset(int64_t r, int64_t i, int64_t m,
                                                          int64_t n) {
  const int64_t k = fg_cuda_svd_cols(m, n);
  return fg_cuda_svd_wide(m, n) ? i + r * k : r + i * m;
}

/* vt[i][j] (i < k, j < n) is read from the left factor (wide) or the right factor (tall), at: */
FG_HOST_DEVICE static inline int64_t fg_cuda_svd_vt_offset(int64_t i, int64_t j, int64_t m,
                                                           int64_t n) {
  const int64_t k = fg_cuda_svd_cols(m, n);
  return fg_cuda_svd_wide(m, n) ? j + i * n : i + j * k;
}

/* The sign rule's search: whether v beats the largest magnitude seen so far (ties keep the
 * earlier entry), and whether the component is negated, given its winning entry. */
FG_HOST_DEVICE static inline int fg_cuda_svd_beats(float v, float best_abs) {
  return fabsf(v) > best_abs;
}
FG_HOST_DEVICE static inline int fg_cuda_svd_negate(float winner) { return winner < 0.0f; }

/* An entry of a component after the rule. */
FG_HOST_DEVICE static inline float fg_cuda_svd_signed(float v, int negate) { return negate ? -v : v; }

#endif
