// CUDA ops: the linear layer, y = x w^T + bias with w [O,I] (PyTorch's layout), and its two
// backward products, through cuBLAS SGEMM in the context's default math mode (no TF32; set when
// the context is created). cuBLAS is column-major: a row-major matrix [r, c] is the column-major
// matrix [c, r], its transpose, so each row-major product C = op(A) op(B) runs as
// C^T = op(B)^T op(A)^T with the operands swapped (gemm_row_major). The bias broadcast and the
// bias gradient are our own kernels (arithmetic in cuda/math/linear.h). The GEMM calls mirror the
// CPU backend's (cpu/linear.c) one for one.
//
// Determinism: cuBLAS gives bitwise the same results run after run for the same problem on the
// same GPU model and toolkit (its documented reproducibility, which needs every call on one stream,
// as the context's handle is; atomics mode stays at its default, off); the bias gradient is one thread per column summing the rows
// in order in double, bitwise the CPU backend's.
#include <limits.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/linear.h"

static float *dev_f32(const fg_tensor *t) { return (float *)t->data; }

// cuBLAS takes int extents.
static fg_status check_int_extent(int64_t e) {
  if (e > INT_MAX) return FG_FAIL(FG_ERR_UNSUPPORTED, "the extent %lld exceeds cuBLAS's int range", (long long)e);
  return FG_OK;
}

static fg_status check_gemm_extents(int64_t n, int64_t in, int64_t out) {
  FG_TRY(check_int_extent(n));
  FG_TRY(check_int_extent(in));
  return check_int_extent(out);
}

// Plan time: every extent of the two matrices that define the GEMM (the query's tensors) fits.
fg_status fg_cuda_linear_supports(fg_backend *b, const fg_op_query *q) {
  (void)b;
  for (int i = 0; i < 2; i++)
    if (q->t[i])
      for (int d = 0; d < q->t[i]->ndim; d++) FG_TRY(check_int_extent(q->t[i]->shape[d]));
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Kernels                                                                                      //

// y [rows, cols] := bias [cols] in every row. One thread per element, grid-stride.
__global__ void linear_bias_fill_kernel(const float *bias, int64_t count, int64_t cols, float *y) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride)
    y[i] = fg_bias_broadcast(bias, i, cols, 1);
}

// dbias [cols] := column sums of dy [rows, cols]. One thread per column (grid-stride over
// columns) summing the rows in order in double; consecutive threads read consecutive columns.
__global__ void linear_bias_grad_kernel(const float *dy, int64_t rows, int64_t cols, float *dbias) {
  const int64_t stride = (int64_t)gridDim.x * blockDim.x;
  for (int64_t o = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; o < cols; o += stride)
    dbias[o] = (float)fg_bias_grad_partial(dy, rows, cols, 1, o, 0, 1);
}

// y [rows, cols] := bias broadcast. rows, cols >= 1.
static fg_status bias_fill(fg_cuda_ctx *c, const float *bias, int64_t rows, int64_t cols, float *y) {
  const int64_t count = rows * cols;
  linear_bias_fill_kernel<<<fg_cuda_blocks(count, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(bias, count,
                                                                                                      cols, y);
  FG_CUDA_LAUNCHED(c, "linear_bias_fill_kernel");
  return FG_OK;
}

// dbias [cols] := column sums of dy [rows, cols] (zeros when rows is 0). cols >= 1.
static fg_status bias_grad(fg_cuda_ctx *c, const float *dy, int64_t rows, int64_t cols, float *dbias) {
  linear_bias_grad_kernel<<<fg_cuda_blocks(cols, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(dy, rows, cols,
                                                                                                     dbias);
  FG_CUDA_LAUNCHED(c, "linear_bias_grad_kernel");
  return FG_OK;
}

// count floats at p := 0 (on the stream).
static fg_status zero(fg_cuda_ctx *c, float *p, int64_t count) {
  if (count > 0) FG_CUDA_TRY(cudaMemsetAsync(p, 0, (size_t)count * sizeof(float), c->stream));
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// GEMM                                                                                         //

// Row-major c [m, n] := op(a) op(b) + beta c, op(a) [m, k], op(b) [k, n]; a is stored [m, k]
// (ta 0) or [k, m] (ta 1) with row length lda, b likewise [k, n] or [n, k] with ldb; c has row
// length ldc. m, n, k >= 1 (cuBLAS rejects leading dimensions of 0: callers handle empty
// extents first) and within int (checked by the ops). Column-major, this is
// c^T [n, m] = op(b)^T op(a)^T, and the column-major view of a stored row-major matrix is already
// its transpose: b goes first with its own transpose flag, then a with its own.
static fg_status gemm_row_major(fg_cuda_ctx *c, int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a,
                                int64_t lda, const float *b, int64_t ldb, float beta, float *cm, int64_t ldc) {
  const float alpha = 1.0f;
  FG_CUBLAS_TRY(cublasSgemm(c->cublas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                            (int)k, &alpha, b, (int)ldb, a, (int)lda, &beta, cm, (int)ldc));
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Ops                                                                                          //

// x [N,I], w [O,I], bias [O] | NULL -> y [N,O] := x w^T (+ bias). With a bias, y is first filled
// with it and the GEMM adds onto it (beta 1), the CPU backend's order. I = 0: y := bias or 0.
static fg_status cuda_linear_forward(fg_backend *b, const fg_tensor *x, const fg_tensor *w, const fg_tensor *bias,
                                     fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  FG_TRY(check_gemm_extents(n, in, out));
  if (n == 0 || out == 0) return FG_OK;
  float *yp = dev_f32(y);
  float beta = 0.0f;
  if (bias) {
    FG_TRY(bias_fill(c, dev_f32(bias), n, out, yp));
    beta = 1.0f;
  } else if (in == 0) {
    FG_TRY(zero(c, yp, n * out));
  }
  if (in == 0) return FG_OK;
  return gemm_row_major(c, 0, 1, n, out, in, dev_f32(x), in, dev_f32(w), in, beta, yp, out);
}

// dy [N,O], w [O,I] -> dx [N,I] (=|+=) dy w (beta 1 accumulates). O = 0: dx := 0 or unchanged.
static fg_status cuda_linear_backward_data(fg_backend *b, const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                           int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = dy->shape[0], out = dy->shape[1], in = w->shape[1];
  FG_TRY(check_gemm_extents(n, in, out));
  if (n == 0 || in == 0) return FG_OK;
  if (out == 0) return accumulate ? FG_OK : zero(c, dev_f32(dx), n * in);
  return gemm_row_major(c, 0, 0, n, in, out, dev_f32(dy), out, dev_f32(w), in, accumulate ? 1.0f : 0.0f,
                        dev_f32(dx), in);
}

// x [N,I], dy [N,O] -> dw [O,I] := dy^T x, dbias [O] := column sums of dy (each when not NULL).
// N = 0: both are zeros.
static fg_status cuda_linear_backward_params(fg_backend *b, const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                             fg_tensor *dbias) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = x->shape[0], in = x->shape[1], out = dy->shape[1];
  FG_TRY(check_gemm_extents(n, in, out));
  if (dw && out > 0 && in > 0) {
    if (n == 0)
      FG_TRY(zero(c, dev_f32(dw), out * in));
    else
      FG_TRY(gemm_row_major(c, 1, 0, out, in, n, dev_f32(dy), out, dev_f32(x), in, 0.0f, dev_f32(dw), in));
  }
  if (dbias && out > 0) FG_TRY(bias_grad(c, dev_f32(dy), n, out, dev_f32(dbias)));
  return FG_OK;
}

void fg_cuda_register_linear_ops(fg_backend *b) {
  b->linear_forward = cuda_linear_forward;
  b->linear_backward_data = cuda_linear_backward_data;
  b->linear_backward_params = cuda_linear_backward_params;
}
