// The CUDA backend's context and registration: device probe, one non-blocking stream with the
// cuBLAS, cuDNN and cuSOLVER handles bound to it, the fixed scratch (cuBLAS workspace, reduction
// partials, scalar slots) charged to the backend's own ledger, memory and transfers, and the op
// families' table entries (one .cu file per family). Library results become fg_status values.
#include "cuda/cuda_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/reduce.cuh"

static fg_backend fg_cuda;
static fg_cuda_ctx fg_cuda_state;
static int fg_cuda_live; // the context's stream and handles exist

fg_cuda_ctx *fg_cuda_ctx_of(const fg_backend *b) { return (fg_cuda_ctx *)b->ctx; }

// ------------------------------------------------------------------------------------------- //
// Library results                                                                              //

fg_status fg_cuda_fail(cudaError_t e, const char *call, const char *file, int line) {
  const fg_status s = e == cudaErrorMemoryAllocation ? FG_ERR_OOM : FG_ERR_LIBRARY;
  return FG_FAIL(s, "cuda: %s (%s:%d): %s", call, file, line, cudaGetErrorString(e));
}

fg_status fg_cublas_fail(cublasStatus_t s, const char *call, const char *file, int line) {
  const fg_status st = s == CUBLAS_STATUS_ALLOC_FAILED ? FG_ERR_OOM : FG_ERR_LIBRARY;
  return FG_FAIL(st, "cublas: %s (%s:%d): status %d", call, file, line, (int)s);
}

fg_status fg_cudnn_fail(cudnnStatus_t s, const char *call, const char *file, int line) {
  const fg_status st = s == CUDNN_STATUS_ALLOC_FAILED ? FG_ERR_OOM : FG_ERR_LIBRARY;
  return FG_FAIL(st, "cudnn: %s (%s:%d): %s", call, file, line, cudnnGetErrorString(s));
}

fg_status fg_cusolver_fail(cusolverStatus_t s, const char *call, const char *file, int line) {
  const fg_status st = s == CUSOLVER_STATUS_ALLOC_FAILED ? FG_ERR_OOM : FG_ERR_LIBRARY;
  return FG_FAIL(st, "cusolver: %s (%s:%d): status %d", call, file, line, (int)s);
}

fg_status fg_cuda_launched(const fg_cuda_ctx *c, const char *kernel, const char *file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && c->sync_each_op) e = cudaStreamSynchronize(c->stream);
  return e == cudaSuccess ? FG_OK : fg_cuda_fail(e, kernel, file, line);
}

unsigned fg_cuda_blocks(int64_t n, int threads) {
  const int64_t most = (int64_t)65535 * 32;
  int64_t blocks = (n + threads - 1) / threads;
  if (blocks < 1) blocks = 1;
  return (unsigned)(blocks < most ? blocks : most);
}

fg_status fg_cuda_read_scalars(fg_cuda_ctx *c, double *host, int count) {
  if (count < 0 || count > FG_CUDA_SCALARS)
    return FG_FAIL(FG_ERR_INTERNAL, "cuda: %d scalars asked, the backend holds %d", count, FG_CUDA_SCALARS);
  FG_CUDA_TRY(cudaMemcpyAsync(c->readback, c->scalars.ptr, (size_t)count * sizeof(double), cudaMemcpyDeviceToHost,
                              c->stream));
  FG_CUDA_TRY(cudaStreamSynchronize(c->stream));
  memcpy(host, c->readback, (size_t)count * sizeof(double));
  return FG_OK;
}

__global__ void fg_cuda_combine_partials_kernel(const double *partials, int count, double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  double s = 0.0;
  for (int i = threadIdx.x; i < count; i += FG_CUDA_THREADS) s += partials[i];
  s = fg_block_sum(s, shared);
  if (threadIdx.x == 0) *out = s;
}

// ------------------------------------------------------------------------------------------- //
// Memory and transfers                                                                         //

static fg_status cuda_alloc(fg_backend *b, size_t bytes, void **out) {
  (void)b;
  FG_CUDA_TRY(cudaMalloc(out, bytes));
  return FG_OK;
}

static void cuda_free(fg_backend *b, void *ptr) {
  (void)b;
  cudaFree(ptr);
}

// Host buffers may be reused as soon as the call returns, and host readers need the data: copies
// to or from the host complete before returning; device-to-device copies stay queued.
static fg_status cuda_copy(fg_backend *b, void *dst, const void *src, size_t bytes, fg_copy_kind kind) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const cudaMemcpyKind k = kind == FG_COPY_H2D   ? cudaMemcpyHostToDevice
                           : kind == FG_COPY_D2H ? cudaMemcpyDeviceToHost
                                                 : cudaMemcpyDeviceToDevice;
  FG_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, k, c->stream));
  if (kind != FG_COPY_D2D) FG_CUDA_TRY(cudaStreamSynchronize(c->stream));
  return FG_OK;
}

static fg_status cuda_sync(fg_backend *b) {
  FG_CUDA_TRY(cudaStreamSynchronize(fg_cuda_ctx_of(b)->stream));
  return FG_OK;
}

static fg_status cuda_mem_query(fg_backend *b, size_t *free_bytes, size_t *total_bytes) {
  (void)b;
  FG_CUDA_TRY(cudaMemGetInfo(free_bytes, total_bytes));
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// The context                                                                                  //

static fg_status cuda_supports(fg_backend *b, const fg_op_query *q) {
  switch (q->op) {
    case FG_OP_CONV2D_FORWARD:
    case FG_OP_CONV2D_BACKWARD_DATA:
    case FG_OP_CONV2D_BACKWARD_FILTER: return fg_cuda_conv_supports(b, q);
    case FG_OP_LINEAR_FORWARD:
    case FG_OP_LINEAR_BACKWARD_DATA:
    case FG_OP_LINEAR_BACKWARD_PARAMS: return fg_cuda_linear_supports(b, q);
    case FG_OP_NHSIC: return fg_cuda_hsic_supports(b, q);
    case FG_OP_SVD: return fg_cuda_linalg_supports(b, q);
    default: return FG_OK;
  }
}

// Stream, handles (bound to the stream, TF32 kept out of cuBLAS), the fixed scratch.
static fg_status context_create(fg_backend *b, fg_cuda_ctx *c) {
  size_t free_before = 0, free_after = 0, total = 0;
  FG_CUDA_TRY(cudaMemGetInfo(&free_before, &total));
  FG_CUDA_TRY(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  FG_CUBLAS_TRY(cublasCreate(&c->cublas));
  FG_CUBLAS_TRY(cublasSetStream(c->cublas, c->stream));
  FG_CUBLAS_TRY(cublasSetMathMode(c->cublas, CUBLAS_DEFAULT_MATH));
  FG_CUDNN_TRY(cudnnCreate(&c->cudnn));
  FG_CUDNN_TRY(cudnnSetStream(c->cudnn, c->stream));
  FG_CUSOLVER_TRY(cusolverDnCreate(&c->cusolver));
  FG_CUSOLVER_TRY(cusolverDnSetStream(c->cusolver, c->stream));
  fg_cuda_live = 1;
  FG_CUDA_TRY(cudaMemGetInfo(&free_after, &total));
  c->baseline_bytes = free_before > free_after ? free_before - free_after : 0;
  const fg_device d = b->device;
  FG_TRY(fg_region_alloc(&c->partials, &c->ledger, d, FG_MEM_WORKSPACE,
                         (size_t)FG_CUDA_REDUCE_BLOCKS * 4 * sizeof(double), "cuda reduction partials"));
  FG_TRY(fg_region_alloc(&c->scalars, &c->ledger, d, FG_MEM_WORKSPACE, FG_CUDA_SCALARS * sizeof(double),
                         "cuda scalar results"));
  FG_TRY(fg_ledger_charge(&c->ledger, FG_MEM_OTHER, FG_CUDA_SCALARS * sizeof(double), "pinned read-back slots"));
  cudaError_t e = cudaHostAlloc((void **)&c->readback, FG_CUDA_SCALARS * sizeof(double), cudaHostAllocDefault);
  if (e != cudaSuccess) {
    fg_ledger_release(&c->ledger, FG_MEM_OTHER, FG_CUDA_SCALARS * sizeof(double));
    c->readback = NULL;
    return fg_cuda_fail(e, "cudaHostAlloc", __FILE__, __LINE__);
  }
#if FG_CUDA_HAS_CUBLAS_WORKSPACE
  FG_TRY(fg_region_alloc(&c->cublas_ws, &c->ledger, d, FG_MEM_WORKSPACE, fg_cuda_cublas_workspace_bytes,
                         "cublas workspace"));
  FG_CUBLAS_TRY(cublasSetWorkspace(c->cublas, c->cublas_ws.ptr, c->cublas_ws.bytes));
#endif
  return FG_OK;
}

static void context_destroy(fg_backend *b, fg_cuda_ctx *c) {
  if (fg_cuda_live) {
    cudaStreamSynchronize(c->stream);
    fg_cuda_conv_release(b);
  }
  fg_region_free(&c->cublas_ws);
  fg_region_free(&c->scalars);
  fg_region_free(&c->partials);
  if (c->readback) {
    cudaFreeHost(c->readback);
    fg_ledger_release(&c->ledger, FG_MEM_OTHER, FG_CUDA_SCALARS * sizeof(double));
    c->readback = NULL;
  }
  if (c->cusolver) cusolverDnDestroy(c->cusolver);
  if (c->cudnn) cudnnDestroy(c->cudnn);
  if (c->cublas) cublasDestroy(c->cublas);
  if (c->stream) cudaStreamDestroy(c->stream);
  c->cusolver = NULL;
  c->cudnn = NULL;
  c->cublas = NULL;
  c->stream = NULL;
  fg_cuda_live = 0;
}

// Probes device `index`: 0 and a description when usable, else -1 and the reason.
static int probe(int index, fg_backend *b, fg_cuda_ctx *c) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(b->reason, sizeof b->reason, "no usable CUDA device: %s", cudaGetErrorString(e));
    return -1;
  }
  if (index < 0 || index >= count) {
    snprintf(b->reason, sizeof b->reason, "device %d requested, %d present", index, count);
    return -1;
  }
  cudaDeviceProp p;
  e = cudaGetDeviceProperties(&p, index);
  if (e == cudaSuccess) e = cudaSetDevice(index);
  if (e != cudaSuccess) {
    snprintf(b->reason, sizeof b->reason, "device %d: %s", index, cudaGetErrorString(e));
    return -1;
  }
  c->integrated = p.integrated;
  c->sm_count = p.multiProcessorCount;
  snprintf(b->description, sizeof b->description, "%.160s, %.1f GiB, compute capability %d.%d%s", p.name,
           (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor,
           p.integrated ? ", integrated (shares host memory)" : "");
  return 0;
}

static void fill_table(fg_backend *b) {
  b->supports = cuda_supports;
  b->alloc = cuda_alloc;
  b->free = cuda_free;
  b->copy = cuda_copy;
  b->synchronize = cuda_sync;
  b->mem_query = cuda_mem_query;
  fg_cuda_register_elementwise_ops(b);
  fg_cuda_register_optim_ops(b);
  fg_cuda_register_reduce_ops(b);
  fg_cuda_register_linear_ops(b);
  fg_cuda_register_conv_ops(b);
  fg_cuda_register_norm_ops(b);
  fg_cuda_register_pool_ops(b);
  fg_cuda_register_loss_ops(b);
  fg_cuda_register_hsic_ops(b);
  fg_cuda_register_linalg_ops(b);
}

extern "C" fg_status fg_cuda_backend_register(int index) {
  fg_cuda_ctx *c = &fg_cuda_state;
  if (fg_cuda_live) context_destroy(&fg_cuda, c);
  memset(&fg_cuda, 0, sizeof fg_cuda);
  memset(c, 0, sizeof *c);
  fg_cuda.name = "cuda";
  fg_cuda.device.kind = FG_DEV_CUDA;
  fg_cuda.device.index = index;
  fg_cuda.alignment = 256;
  fg_cuda.ctx = c;
  fg_cuda.fixed = &c->ledger;
  c->index = index;
  const char *sync = getenv("FEDGAP_CUDA_SYNC");
  c->sync_each_op = sync && strcmp(sync, "1") == 0;
  char name[32];
  snprintf(name, sizeof name, "cuda:%d backend", index);
  fg_ledger_init(&c->ledger, name, 0);
  fill_table(&fg_cuda);
  if (probe(index, &fg_cuda, c) != 0) return fg_backend_register(&fg_cuda);
  fg_cuda.available = 1; // the context's own regions are allocated through the registry
  FG_TRY(fg_backend_register(&fg_cuda));
  fg_status s = context_create(&fg_cuda, c);
  fg_cuda.baseline_bytes = c->baseline_bytes;
  if (s != FG_OK) {
    fg_cuda.available = 0;
    snprintf(fg_cuda.reason, sizeof fg_cuda.reason, "device %d: %s", index, fg_last_error());
    context_destroy(&fg_cuda, c);
  }
  return FG_OK;
}
