// CUDA backend: device probe, memory, transfers. Compute ops arrive with the CUDA backend work;
// until then their table entries are NULL and the dispatcher reports them as unsupported.
#include "cuda/cuda_backend.h"

#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

static fg_backend fg_cuda;

static fg_status cuda_check(cudaError_t e, const char *what) {
  if (e == cudaSuccess) return FG_OK;
  if (e == cudaErrorMemoryAllocation)
    return FG_FAIL(FG_ERR_OOM, "cuda: %s: %s", what, cudaGetErrorString(e));
  return FG_FAIL(FG_ERR_LIBRARY, "cuda: %s: %s", what, cudaGetErrorString(e));
}

static fg_status cuda_alloc(fg_backend *b, size_t bytes, void **out) {
  (void)b;
  return cuda_check(cudaMalloc(out, bytes), "cudaMalloc");
}

static void cuda_free(fg_backend *b, void *ptr) {
  (void)b;
  cudaFree(ptr);
}

static fg_status cuda_copy(fg_backend *b, void *dst, const void *src, size_t bytes, fg_copy_kind kind) {
  (void)b;
  cudaMemcpyKind k = kind == FG_COPY_H2D ? cudaMemcpyHostToDevice
                     : kind == FG_COPY_D2H ? cudaMemcpyDeviceToHost
                                           : cudaMemcpyDeviceToDevice;
  return cuda_check(cudaMemcpy(dst, src, bytes, k), "cudaMemcpy");
}

static fg_status cuda_sync(fg_backend *b) {
  (void)b;
  return cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

static fg_status cuda_mem_query(fg_backend *b, size_t *free_bytes, size_t *total_bytes) {
  (void)b;
  return cuda_check(cudaMemGetInfo(free_bytes, total_bytes), "cudaMemGetInfo");
}

extern "C" fg_status fg_cuda_backend_register(int index) {
  memset(&fg_cuda, 0, sizeof fg_cuda);
  fg_cuda.name = "cuda";
  fg_cuda.device.kind = FG_DEV_CUDA;
  fg_cuda.device.index = index;
  fg_cuda.alignment = 256;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    snprintf(fg_cuda.reason, sizeof fg_cuda.reason, "no usable CUDA device: %s", cudaGetErrorString(e));
  } else if (index < 0 || index >= count) {
    snprintf(fg_cuda.reason, sizeof fg_cuda.reason, "device %d requested, %d present", index, count);
  } else {
    cudaDeviceProp p;
    e = cudaGetDeviceProperties(&p, index);
    if (e == cudaSuccess) e = cudaSetDevice(index);
    if (e != cudaSuccess) {
      snprintf(fg_cuda.reason, sizeof fg_cuda.reason, "device %d: %s", index, cudaGetErrorString(e));
    } else {
      fg_cuda.available = 1;
      snprintf(fg_cuda.description, sizeof fg_cuda.description,
               "%s, %.1f GiB, compute capability %d.%d%s", p.name,
               (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor,
               p.integrated ? ", integrated (shares host memory)" : "");
    }
  }
  fg_cuda.alloc = cuda_alloc;
  fg_cuda.free = cuda_free;
  fg_cuda.copy = cuda_copy;
  fg_cuda.synchronize = cuda_sync;
  fg_cuda.mem_query = cuda_mem_query;
  return fg_backend_register(&fg_cuda);
}
