// Deterministic reductions of the CUDA backend: the same inputs give bitwise the same sums, run
// after run and on any device, because the partition of the work and the order of every addition
// are fixed:
//   - a grid of exactly FG_CUDA_REDUCE_BLOCKS blocks of FG_CUDA_THREADS threads (never sized from
//     the device's SM count); thread t of block k sums elements k*T + t, k*T + t + B*T, ... in that
//     order (T threads, B blocks), in double;
//   - each block combines its threads with a fixed binary tree in shared memory and writes one
//     partial per block;
//   - one block then combines the B partials with the same tree (fg_cuda_combine_partials_kernel).
// Row reductions (a softmax row, a BN channel) use fg_block_sum directly: one block per row or
// channel, its threads striding over the row in order, then the tree.
#ifndef FG_CUDA_REDUCE_CUH
#define FG_CUDA_REDUCE_CUH

#include "cuda/cuda_internal.h"

// The sum over the block's FG_CUDA_THREADS threads of v, by a fixed binary tree over `shared`
// [FG_CUDA_THREADS]; every thread gets the result. All threads of the block must call it.
__device__ inline double fg_block_sum(double v, double *shared) {
  const int t = threadIdx.x;
  shared[t] = v;
  __syncthreads();
  for (int half = FG_CUDA_THREADS / 2; half > 0; half /= 2) {
    if (t < half) shared[t] += shared[t + half];
    __syncthreads();
  }
  const double total = shared[0];
  __syncthreads();
  return total;
}

// The maximum, by the same tree (for softmax's shift); every thread gets it.
__device__ inline double fg_block_max(double v, double *shared) {
  const int t = threadIdx.x;
  shared[t] = v;
  __syncthreads();
  for (int half = FG_CUDA_THREADS / 2; half > 0; half /= 2) {
    if (t < half && shared[t + half] > shared[t]) shared[t] = shared[t + half];
    __syncthreads();
  }
  const double m = shared[0];
  __syncthreads();
  return m;
}

// The smallest of the threads' candidate indices `first` (each thread's own, `none` when it has
// none), through fg_block_max of the negated values: exact for indices below 2^53; every thread
// gets it (`none` when no thread had a candidate).
__device__ inline int64_t fg_block_first_index(int64_t first, int64_t none, double *shared) {
  return (int64_t)-fg_block_max(-(double)(first < none ? first : none), shared);
}

// partials[0..count) combined by one block of FG_CUDA_THREADS threads: thread t sums entries t,
// t + T, ... in order, then the tree. *out = the sum (device). Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void fg_cuda_combine_partials_kernel(const double *partials, int count, double *out);

// The stage one of a grid reduction: `term(i)` for i in [0, n), summed per block as above into
// partials[blockIdx.x]. Launch <<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS>>>. Term is a functor
// with `__device__ double operator()(int64_t i) const`.
template <typename Term>
__global__ void fg_cuda_partials_kernel(int64_t n, Term term, double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t stride = (int64_t)FG_CUDA_REDUCE_BLOCKS * FG_CUDA_THREADS;
  double s = 0.0;
  for (int64_t i = (int64_t)blockIdx.x * FG_CUDA_THREADS + threadIdx.x; i < n; i += stride) s += term(i);
  s = fg_block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// Sum of term(i) over [0, n) into the device double *out, deterministically (both stages, on the
// backend's stream, using its partials scratch).
template <typename Term>
fg_status fg_cuda_grid_sum(fg_cuda_ctx *c, int64_t n, Term term, double *out) {
  double *partials = (double *)c->partials.ptr;
  fg_cuda_partials_kernel<Term><<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS, 0, c->stream>>>(n, term, partials);
  FG_CUDA_LAUNCHED(c, "fg_cuda_partials_kernel");
  fg_cuda_combine_partials_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(partials, FG_CUDA_REDUCE_BLOCKS, out);
  FG_CUDA_LAUNCHED(c, "fg_cuda_combine_partials_kernel");
  return FG_OK;
}

#endif
