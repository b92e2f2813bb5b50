/* The per-element arithmetic of the CUDA backend's reductions (cuda/reduce.cu): the term that
 * sum_squares adds up, written once as an FG_HOST_DEVICE function in the common subset of C11
 * and C++14, so that the kernel and the host tests (tests/cpu/test_cuda_math_reduce.c) compile
 * the same code. The order of the additions is cuda/reduce.cuh's fixed grid. Owns nothing. */
#ifndef FG_CUDA_MATH_REDUCE_H
#define FG_CUDA_MATH_REDUCE_H

#include "engine/base/host_device.h"

/* x^2 in double, as the CPU backend (cpu/reduce.c) computes it: exact for every finite float
 * (a 24-bit significand squared fits in 53 bits, and the exponent range of double holds it), so
 * only the order of the additions can make two backends differ. */
FG_HOST_DEVICE static inline double fg_math_square(float x) { return (double)x * (double)x; }

#endif
