/* Internals shared by the CPU convolution, linear and pooling files (cpu/conv.c, cpu/linear.c,
 * cpu/pool.c; registered together by cpu/nn_ops.c). The backend functions here trust the shapes:
 * the entry points of engine/backend/ops.h have validated them. Not part of the public interface. */
#ifndef FG_CPU_NN_INTERNAL_H
#define FG_CPU_NN_INTERNAL_H

#include <stdint.h>

#include "cpu/cpu_internal.h"

/* Fill the table entries of each family. */
void fg_cpu_register_conv_ops(fg_backend *b);
void fg_cpu_register_linear_ops(fg_backend *b);
void fg_cpu_register_pool_ops(fg_backend *b);

/* Row-major C [m,n] := alpha op(A) op(B) + beta C with op(A) [m,k], op(B) [k,n] (A stored
 * [k,m] when trans_a, B stored [n,k] when trans_b). beta = 0 ignores C's old contents. Empty
 * dimensions are handled here (BLAS rejects leading dimensions of 0). Threads as OpenBLAS
 * decides: all of them outside an OpenMP parallel region, one inside. The caller has checked
 * that every extent fits fg_cpu_blas_fits. */
void fg_cpu_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc);

/* 1 when `v` fits the int that BLAS takes for extents and leading dimensions. */
int fg_cpu_blas_fits(int64_t v);

/* Whether the linear layer's GEMMs fit BLAS's int for the call q describes (the backend's
 * `supports` for the linear ops). */
fg_status fg_cpu_linear_supports(const fg_op_query *q);

#endif
