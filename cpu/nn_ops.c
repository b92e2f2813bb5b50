/* Convolution, linear and pooling ops of the CPU backend: registration and the GEMM wrapper
 * they share. The ops themselves live in cpu/conv.c, cpu/linear.c and cpu/pool.c. */
#include <cblas.h>
#include <limits.h>

#include "cpu/nn_internal.h"

void fg_cpu_register_nn_ops(fg_backend *b) {
  fg_cpu_register_conv_ops(b);
  fg_cpu_register_linear_ops(b);
  fg_cpu_register_pool_ops(b);
}

int fg_cpu_blas_fits(int64_t v) { return v >= 0 && v <= INT_MAX; }

void fg_cpu_sgemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                  const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                  int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) { /* op(A) op(B) is empty: C := beta C */
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k, alpha, a, (int)lda, b,
              (int)ldb, beta, c, (int)ldc);
}
