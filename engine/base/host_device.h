/* FG_HOST_DEVICE marks a function both C compilers and nvcc compile: plain C there, a
 * __host__ __device__ function under nvcc. The arithmetic a CUDA kernel and the host share (the
 * Philox generator, engine/base/philox.h; each kernel's per-element or per-row arithmetic,
 * cuda/math/) is written once with it. Owns nothing. */
#ifndef FG_HOST_DEVICE_H
#define FG_HOST_DEVICE_H

#if defined(__CUDACC__)
#define FG_HOST_DEVICE __host__ __device__
#else
#define FG_HOST_DEVICE
#endif

#endif
