/* Low-rank factorisation (LRF) of convolution weights, the input encoding of HypeMeFed's
 * hypernetworks (spec hypemefed.md §3.2), and its inverse.
 *
 * A conv weight w [O, I, kh, kw] (PyTorch's row-major layout) is read as the matrix
 * M [O*kh, I*kw]: a pure reinterpretation of the buffer (element (o, i, y, x) has flat index
 * ((o*I + i)*kh + y)*kw + x, row = flat / (I*kw), column = flat % (I*kw)); for the k x k kernels
 * of the spec that is (O*k) x (I*k). With the thin SVD M = U diag(s) V^T (fg_svd, singular values
 * descending, signs fixed by fg_svd's rule: flag F8) and r_eff = min(r, rows, cols):
 *   a = (U_r diag(sqrt s_r))^T   [r_eff, rows]   row i = sqrt(s_i) u_i^T
 *   b = diag(sqrt s_r) V_r^T     [r_eff, cols]   row i = sqrt(s_i) v_i^T
 * so M ~= a^T b, exactly (to rounding) when r_eff = min(rows, cols), and otherwise the best
 * rank-r_eff approximation, whose Frobenius error is sqrt(sum of the discarded s_i^2).
 *
 * Matrices [rows, cols] (rank-2 tensors) are accepted wherever a conv weight is and are used as
 * they are. Memory: nothing is allocated here. fg_lrf_factor takes its scratch (U, s, V^T, the
 * SVD op's own workspace, then the scaling matrix of the factors) from the caller, who sizes it
 * with fg_lrf_workspace and carves it from a region charged to a ledger (category
 * FG_MEM_WORKSPACE) on the tensors' device, like any op workspace.
 *
 * Devices: everything runs through the op entry points (engine/backend/ops.h) on the device the
 * tensors live on (w, a, b and the workspace on one device): the SVD, then a = D U^T and
 * b = D V^T with D = diag(sqrt s_r) padded to [r_eff, k] (two GEMMs whose every element has one
 * nonzero term, so the factors are the rounded products sqrt(s_i) u_ji exactly); only the r_eff
 * singular values are read to the host, one float at a time. Owns nothing. */
#ifndef FG_LRF_H
#define FG_LRF_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend/backend.h"

/* The matrix view of w: [O, I, kh, kw] -> [O*kh, I*kw] (same data and device, nothing copied);
 * a rank-2 w [rows, cols] is returned unchanged. Other ranks, empty extents, or a dtype other
 * than f32 fail (FG_ERR_SHAPE, FG_ERR_INVALID for empty). `what` names w in messages. */
fg_status fg_lrf_matrix_view(const char *what, const fg_tensor *w, fg_tensor *m);

/* Sizes of the factorisation of w [O, I, kh, kw] | [rows, cols] at rank r >= 1:
 * rows = O*kh, cols = I*kw, rank = r_eff = min(r, rows, cols). Any output may be NULL. */
fg_status fg_lrf_dims(const fg_tensor *w, int64_t r, int64_t *rank, int64_t *rows, int64_t *cols);

/* Bytes of workspace fg_lrf_factor needs for w [O, I, kh, kw] | [rows, cols] (any rank r; w's
 * data may be NULL: only its shape and device are read). */
fg_status fg_lrf_workspace(const fg_tensor *w, size_t *bytes);

/* w [O, I, kh, kw] | [rows, cols] (f32, finite) -> a [r_eff, rows], b [r_eff, cols] as in the
 * header comment; r >= 1. ws: at least fg_lrf_workspace(w) bytes, 8-byte aligned, not
 * overlapping w, a or b. w is not modified. */
fg_status fg_lrf_factor(const fg_tensor *w, int64_t r, fg_tensor *a, fg_tensor *b,
                        fg_workspace ws);

/* The inverse: w := a^T b, with a [r, rows], b [r, cols] (r >= 1) and w [O, I, kh, kw] with
 * O*kh = rows and I*kw = cols, or w [rows, cols]. Runs on the tensors' device (one GEMM, the
 * linear layer's weight-gradient product). */
fg_status fg_lrf_rebuild(const fg_tensor *a, const fg_tensor *b, fg_tensor *w);

#endif
