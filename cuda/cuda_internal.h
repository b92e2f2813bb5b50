// Internals shared by the CUDA backend's files (C++14): the device context (one non-blocking
// stream, the cuBLAS / cuDNN / cuSOLVER handles bound to it, the backend's fixed scratch), the
// conversion of every library's result to an fg_status, launch geometry, scalar read-back and the
// registration of each op family (one .cu file per family, as the CPU backend's). Not part of the
// public interface: the engine reaches the backend through its op table only.
#ifndef FG_CUDA_INTERNAL_H
#define FG_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>
#include <cusolverDn.h>
#include <stddef.h>
#include <stdint.h>

#include "cuda/compat.h"

extern "C" {
#include "engine/backend/backend.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
}

// Threads per block of the backend's own kernels, and the fixed grid of deterministic reductions
// (cuda/reduce.cuh): a reduction's partial sums do not depend on the device's size.
enum { FG_CUDA_THREADS = 256, FG_CUDA_REDUCE_BLOCKS = 256, FG_CUDA_SCALARS = 16 };

// The cuBLAS workspace the backend installs (cublasSetWorkspace): cuBLAS's own recommendation for
// Hopper; older architectures need less but gain nothing from a smaller one.
static const size_t fg_cuda_cublas_workspace_bytes = (size_t)32 << 20;

typedef struct fg_cuda_ctx {
  int index;                 // the device
  int integrated;            // shares host memory (Jetson): the device ledger is a child of the host's
  int sm_count;
  cudaStream_t stream;       // every kernel, copy and library call of the backend runs on it
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  cusolverDnHandle_t cusolver;
  fg_ledger ledger;          // the backend's fixed memory: what memplan shows as its overhead
  fg_region cublas_ws;       // cuBLAS workspace (FG_CUDA_HAS_CUBLAS_WORKSPACE)
  fg_region partials;        // reduction partials: FG_CUDA_REDUCE_BLOCKS x 4 doubles
  fg_region scalars;         // FG_CUDA_SCALARS device doubles: an op's scalar results
  double *readback;          // FG_CUDA_SCALARS pinned host doubles they come back through
  size_t baseline_bytes;     // device memory the context took outside the ledger (handles, the
                             // runtime), from cudaMemGetInfo around its creation
  int sync_each_op;          // FEDGAP_CUDA_SYNC=1: synchronise after every launch (debugging)
} fg_cuda_ctx;

fg_cuda_ctx *fg_cuda_ctx_of(const fg_backend *b);

// Library results as statuses: FG_ERR_OOM for allocation failures, FG_ERR_LIBRARY otherwise, the
// message naming the call, file:line and the library's error string.
fg_status fg_cuda_fail(cudaError_t e, const char *call, const char *file, int line);
fg_status fg_cublas_fail(cublasStatus_t s, const char *call, const char *file, int line);
fg_status fg_cudnn_fail(cudnnStatus_t s, const char *call, const char *file, int line);
fg_status fg_cusolver_fail(cusolverStatus_t s, const char *call, const char *file, int line);

#define FG_CUDA_TRY(call)                                                              \
  do {                                                                                 \
    const cudaError_t fg_e_ = (call);                                                  \
    if (fg_e_ != cudaSuccess) return fg_cuda_fail(fg_e_, #call, __FILE__, __LINE__);   \
  } while (0)
#define FG_CUBLAS_TRY(call)                                                                     \
  do {                                                                                          \
    const cublasStatus_t fg_e_ = (call);                                                        \
    if (fg_e_ != CUBLAS_STATUS_SUCCESS) return fg_cublas_fail(fg_e_, #call, __FILE__, __LINE__); \
  } while (0)
#define FG_CUDNN_TRY(call)                                                                     \
  do {                                                                                         \
    const cudnnStatus_t fg_e_ = (call);                                                        \
    if (fg_e_ != CUDNN_STATUS_SUCCESS) return fg_cudnn_fail(fg_e_, #call, __FILE__, __LINE__); \
  } while (0)
#define FG_CUSOLVER_TRY(call)                                                                        \
  do {                                                                                               \
    const cusolverStatus_t fg_e_ = (call);                                                           \
    if (fg_e_ != CUSOLVER_STATUS_SUCCESS) return fg_cusolver_fail(fg_e_, #call, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: the launch's error, and with sync_each_op the kernel's own.
fg_status fg_cuda_launched(const fg_cuda_ctx *c, const char *kernel, const char *file, int line);
#define FG_CUDA_LAUNCHED(c, kernel) FG_TRY(fg_cuda_launched((c), (kernel), __FILE__, __LINE__))

// Blocks of a launch over n items with `threads` per block: ceil(n / threads), at least 1 and at
// most 65535 x 32 (the kernels loop grid-stride beyond that).
unsigned fg_cuda_blocks(int64_t n, int threads);

// The first `count` (<= FG_CUDA_SCALARS) doubles of ctx->scalars, copied to host[] after the work
// queued before it (one stream synchronisation).
fg_status fg_cuda_read_scalars(fg_cuda_ctx *c, double *host, int count);

// The op families (one .cu file each) fill their table entries.
void fg_cuda_register_elementwise_ops(fg_backend *b); // relu, add, axpy, scale, copy, fill, dropout, sigmoid, mul
void fg_cuda_register_optim_ops(fg_backend *b);       // sgd_step, adam_step
void fg_cuda_register_reduce_ops(fg_backend *b);      // sum_squares
void fg_cuda_register_linear_ops(fg_backend *b);      // linear_* (cuBLAS)
void fg_cuda_register_conv_ops(fg_backend *b);        // conv2d_* (cuDNN)
void fg_cuda_register_norm_ops(fg_backend *b);        // bn_*
void fg_cuda_register_pool_ops(fg_backend *b);        // maxpool_*, avgpool_global_*, upsample2x_bilinear_*
void fg_cuda_register_loss_ops(fg_backend *b);        // softmax_xent, kl_div, mse
void fg_cuda_register_hsic_ops(fg_backend *b);        // nhsic_workspace, nhsic
void fg_cuda_register_linalg_ops(fg_backend *b);      // svd_workspace, svd (cuSOLVER)

// The backend's `supports` hook for each family that has limits (FG_OK where none apply).
fg_status fg_cuda_conv_supports(fg_backend *b, const fg_op_query *q);
fg_status fg_cuda_linear_supports(fg_backend *b, const fg_op_query *q);
fg_status fg_cuda_hsic_supports(fg_backend *b, const fg_op_query *q);
fg_status fg_cuda_linalg_supports(fg_backend *b, const fg_op_query *q);

// Released when the context is torn down (cached cuDNN descriptors and algorithm choices).
void fg_cuda_conv_release(fg_backend *b);

#endif
