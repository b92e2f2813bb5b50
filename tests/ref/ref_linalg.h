/* Reference linear algebra in double precision on plain host buffers: a thin SVD by one-sided
 * (Hestenes) Jacobi rotations, used as the test oracle of the SVD op and of the low-rank
 * factorisation (tests/ops, tests/cpu/test_lrf.c). Written for obviousness, not speed: cyclic sweeps of
 * plane rotations that orthogonalise the columns until every pair is orthogonal to working
 * precision, then column norms as singular values. Single-threaded; no allocation (the caller
 * passes the scratch); owns nothing. Matrices are row-major. */
#ifndef FG_REF_LINALG_H
#define FG_REF_LINALG_H

#include <stdint.h>

/* Doubles of scratch fg_ref_svd needs for a [m,n]: with p = max(m,n), q = min(m,n),
 * p*q + q*q. */
int64_t fg_ref_svd_scratch(int64_t m, int64_t n);

/* Thin SVD a = u diag(s) vt of a [m,n] (m, n >= 1), k = min(m,n):
 *   s  [k]   singular values, descending, >= 0 (always written)
 *   u  [m,k] left singular vectors (when not NULL)
 *   vt [k,n] right singular vectors as rows (when not NULL)
 * For a zero singular value the vector on the longer side (u when m >= n, else vt) is written
 * as 0 rather than completed to an orthonormal basis.
 * The components carry the sign rule of fg_svd (engine/backend/ops.h): the entry of largest
 * magnitude of each row of vt is positive, the first on equal magnitudes. scratch holds
 * fg_ref_svd_scratch(m, n) doubles. Returns the number of sweeps used, or -1 when 100 sweeps did
 * not converge (the outputs are then the last iterate's). */
int fg_ref_svd(const double *a, int64_t m, int64_t n, double *u, double *s, double *vt,
               double *scratch);

#endif
