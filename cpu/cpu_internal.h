/* Internals shared by the CPU backend's files: the context and the per-family registration
 * hooks (nn_ops.c: convolution, linear, pooling; math_ops.c: batch norm, elementwise, dropout,
 * losses, optimizers, reductions; linalg.c: SVD). Not part of the public interface. */
#ifndef FG_CPU_INTERNAL_H
#define FG_CPU_INTERNAL_H

#include "engine/backend/backend.h"

typedef struct fg_cpu_ctx {
  int threads;
  int lanes;
  int avx2; /* 3x3 stride-1 convolutions use the AVX2/FMA kernels of cpu/conv3x3.c */
} fg_cpu_ctx;

static inline const fg_cpu_ctx *fg_cpu_ctx_of(const fg_backend *b) { return (const fg_cpu_ctx *)b->ctx; }

void fg_cpu_register_nn_ops(fg_backend *b);
void fg_cpu_register_math_ops(fg_backend *b);
void fg_cpu_register_linalg_ops(fg_backend *b); /* svd_workspace, svd */

/* OpenBLAS thread control and a version string ("OpenBLAS 0.3.21 ..."). */
void fg_cpu_blas_set_threads(int threads);
const char *fg_cpu_blas_description(void);

#endif
