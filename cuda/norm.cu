// CUDA ops: batch norm (training forward, evaluation forward, backward) with our own kernels, x
// [N,C,H,W] or [N,C] with statistics per channel over N*H*W. The arithmetic (what a thread sums,
// the channel's constants, one element's value) is cuda/math/norm.h, the CPU backend's formulas
// (cpu/norm.c); this file holds the indexing and the launches only.
//
// Determinism: the training forward and the backward run one block of FG_CUDA_THREADS threads per
// channel; thread t sums the channel's values t, t + T, ... in that order (in double) and the block
// combines them with fg_block_sum's fixed tree, so the sums, and everything derived from them, do
// not depend on the device or the run. The evaluation forward has no sum. No atomics.
#include "cuda/cuda_internal.h"
#include "cuda/math/norm.h"
#include "cuda/reduce.cuh"

// The layout of x (validated by the entry point: rank 2 or 4, C = shape[1]).
static fg_bn_layout layout_of(const fg_tensor *x) {
  fg_bn_layout l;
  l.batch = x->shape[0];
  l.channels = x->shape[1];
  l.inner = x->ndim == 4 ? x->shape[2] * x->shape[3] : 1;
  l.count = l.batch * l.inner;
  return l;
}

static const float *f32_in(const fg_tensor *t) { return t ? (const float *)t->data : NULL; }
static float *f32_out(fg_tensor *t) { return t ? (float *)t->data : NULL; }

// Blocks for a grid over the channels (the kernels loop over channels beyond it).
static unsigned channel_blocks(int64_t channels) { return fg_cuda_blocks(channels, 1); }

// ------------------------------------------------------------------------------------------- //
// Training forward                                                                             //

// Mean and biased variance of channel ch, shifted by `shift`; every thread of the block gets them.
// All threads of the block must call it.
__device__ static fg_bn_moments block_moments(const float *x, const fg_bn_layout *l, int64_t ch, float shift,
                                              double *shared) {
  double sum, sq;
  fg_bn_thread_shifted_sums(x, l, ch, threadIdx.x, FG_CUDA_THREADS, shift, &sum, &sq);
  sum = fg_block_sum(sum, shared);
  sq = fg_block_sum(sq, shared);
  return fg_bn_moments_of(sum, sq, l->count, shift);
}

// One block per channel: statistics (the first plane's mean as the shift, one shifted pass, a
// second when the shift is too far off), save_mean, save_invstd, the running statistics when
// running_mean is not NULL, then y. x, y [N,C,H,W] or [N,C] (y may be x); gamma, beta, save_mean,
// save_invstd, running_mean, running_var [C]. Launch <<<any, FG_CUDA_THREADS>>>.
__global__ void bn_forward_train_kernel(fg_bn_layout l, const float *x, const float *gamma, const float *beta,
                                        float *y, float *save_mean, float *save_invstd, float *running_mean,
                                        float *running_var, float momentum, float eps) {
  __shared__ double shared[FG_CUDA_THREADS];
  const double unbias = fg_bn_unbias(l.count);
  for (int64_t ch = blockIdx.x; ch < l.channels; ch += gridDim.x) {
    const double first = fg_block_sum(fg_bn_thread_plane_sum(x, &l, ch, threadIdx.x, FG_CUDA_THREADS), shared);
    float shift = fg_bn_shift(first, l.inner);
    fg_bn_moments m = block_moments(x, &l, ch, shift, shared);
    if (fg_bn_needs_second_pass(&m, shift)) { // the same decision in every thread
      shift = (float)m.mean;
      m = block_moments(x, &l, ch, shift, shared);
    }
    const double invstd = fg_bn_invstd(m.var, eps);
    if (threadIdx.x == 0) {
      save_mean[ch] = (float)m.mean;
      save_invstd[ch] = (float)invstd;
      if (running_mean) {
        running_mean[ch] = fg_bn_running_mean(running_mean[ch], momentum, m.mean);
        running_var[ch] = fg_bn_running_var(running_var[ch], momentum, m.var, unbias);
      }
    }
    const fg_bn_affine k = fg_bn_train_affine(m.mean, invstd, gamma[ch], beta[ch]);
    for (fg_bn_cursor c = fg_bn_cursor_start(&l, threadIdx.x, FG_CUDA_THREADS); c.j < l.count;
         fg_bn_cursor_next(&l, &c)) {
      const int64_t off = fg_bn_cursor_offset(&l, ch, &c);
      y[off] = fg_bn_normalise(&k, x[off]);
    }
  }
}

static fg_status cuda_bn_forward_train(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                                       const fg_tensor *beta, fg_tensor *y, fg_tensor *save_mean,
                                       fg_tensor *save_invstd, fg_tensor *running_mean, fg_tensor *running_var,
                                       float momentum, float eps) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_bn_layout l = layout_of(x); // the entry point refused count < 2
  if (l.channels == 0) return FG_OK;
  bn_forward_train_kernel<<<channel_blocks(l.channels), FG_CUDA_THREADS, 0, c->stream>>>(
      l, f32_in(x), f32_in(gamma), f32_in(beta), f32_out(y), f32_out(save_mean), f32_out(save_invstd),
      f32_out(running_mean), f32_out(running_var), momentum, eps);
  FG_CUDA_LAUNCHED(c, "bn_forward_train_kernel");
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Evaluation forward                                                                           //

// Blocks along each channel of the evaluation forward (grid.x): enough to fill a large device
// when channels are few, at most this many per channel.
enum { BN_EVAL_MAX_CHUNKS = 256 };

// y = (x - running_mean) gamma / sqrt(running_var + eps) + beta, per element: grid.y strides over
// the channels, grid.x over each channel's values (each thread derives the channel's constants).
// x, y [N,C,H,W] or [N,C] (y may be x); gamma, beta, running_mean, running_var [C].
// Launch <<<(chunks, channel blocks), FG_CUDA_THREADS>>>.
__global__ void bn_forward_eval_kernel(fg_bn_layout l, const float *x, const float *gamma, const float *beta,
                                       const float *running_mean, const float *running_var, float eps,
                                       float *y) {
  const int64_t step = (int64_t)gridDim.x * FG_CUDA_THREADS;
  const int64_t start = (int64_t)blockIdx.x * FG_CUDA_THREADS + threadIdx.x;
  for (int64_t ch = blockIdx.y; ch < l.channels; ch += gridDim.y) {
    const fg_bn_affine k = fg_bn_eval_affine(running_mean[ch], running_var[ch], eps, gamma[ch], beta[ch]);
    for (fg_bn_cursor c = fg_bn_cursor_start(&l, start, step); c.j < l.count; fg_bn_cursor_next(&l, &c)) {
      const int64_t off = fg_bn_cursor_offset(&l, ch, &c);
      y[off] = fg_bn_normalise(&k, x[off]);
    }
  }
}

static fg_status cuda_bn_forward_eval(fg_backend *b, const fg_tensor *x, const fg_tensor *gamma,
                                      const fg_tensor *beta, const fg_tensor *running_mean,
                                      const fg_tensor *running_var, float eps, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_bn_layout l = layout_of(x);
  if (l.channels == 0 || l.count == 0) return FG_OK;
  unsigned chunks = fg_cuda_blocks(l.count, FG_CUDA_THREADS);
  if (chunks > BN_EVAL_MAX_CHUNKS) chunks = BN_EVAL_MAX_CHUNKS;
  const unsigned channel_grid = (unsigned)(l.channels < 65535 ? l.channels : 65535); // grid.y limit
  bn_forward_eval_kernel<<<dim3(chunks, channel_grid), FG_CUDA_THREADS, 0, c->stream>>>(
      l, f32_in(x), f32_in(gamma), f32_in(beta), f32_in(running_mean), f32_in(running_var), eps, f32_out(y));
  FG_CUDA_LAUNCHED(c, "bn_forward_eval_kernel");
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Backward                                                                                     //

// One block per channel: sums of dy and dy (x - mean), then dbeta := sum dy, dgamma := sum dy
// xhat (each when not NULL) and dx (=|+=) ka dy + kb (x - mean) + kc (when not NULL; dx may be
// dy or x: every read of the channel precedes its first write). dy, x, dx [N,C,H,W] or [N,C];
// gamma, save_mean, save_invstd, dgamma, dbeta [C]. Launch <<<any, FG_CUDA_THREADS>>>.
__global__ void bn_backward_kernel(fg_bn_layout l, const float *dy, const float *x, const float *gamma,
                                   const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
                                   float *dbeta, int accumulate) {
  __shared__ double shared[FG_CUDA_THREADS];
  for (int64_t ch = blockIdx.x; ch < l.channels; ch += gridDim.x) {
    const float mean = save_mean[ch];
    double sum_dy, sum_dy_xc;
    fg_bn_thread_dy_sums(dy, x, &l, ch, threadIdx.x, FG_CUDA_THREADS, mean, &sum_dy, &sum_dy_xc);
    sum_dy = fg_block_sum(sum_dy, shared);
    sum_dy_xc = fg_block_sum(sum_dy_xc, shared);
    const fg_bn_grad k = fg_bn_grad_of(gamma[ch], save_invstd[ch], sum_dy, sum_dy_xc, l.count);
    if (threadIdx.x == 0) {
      if (dbeta) dbeta[ch] = (float)k.dbeta;
      if (dgamma) dgamma[ch] = (float)k.dgamma;
    }
    if (!dx) continue; // block-uniform
    for (fg_bn_cursor c = fg_bn_cursor_start(&l, threadIdx.x, FG_CUDA_THREADS); c.j < l.count;
         fg_bn_cursor_next(&l, &c)) {
      const int64_t off = fg_bn_cursor_offset(&l, ch, &c);
      const float g = fg_bn_dx(&k, dy[off], x[off], mean);
      dx[off] = accumulate ? dx[off] + g : g;
    }
  }
}

static fg_status cuda_bn_backward(fg_backend *b, const fg_tensor *dy, const fg_tensor *x, const fg_tensor *gamma,
                                  const fg_tensor *save_mean, const fg_tensor *save_invstd, fg_tensor *dx,
                                  fg_tensor *dgamma, fg_tensor *dbeta, int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_bn_layout l = layout_of(x);
  if (l.channels == 0 || (!dx && !dgamma && !dbeta)) return FG_OK;
  // count = 0 (N = 0) still runs: dgamma and dbeta become 0, as sums over nothing.
  bn_backward_kernel<<<channel_blocks(l.channels), FG_CUDA_THREADS, 0, c->stream>>>(
      l, f32_in(dy), f32_in(x), f32_in(gamma), f32_in(save_mean), f32_in(save_invstd), f32_out(dx),
      f32_out(dgamma), f32_out(dbeta), accumulate);
  FG_CUDA_LAUNCHED(c, "bn_backward_kernel");
  return FG_OK;
}

void fg_cuda_register_norm_ops(fg_backend *b) {
  b->bn_forward_train = cuda_bn_forward_train;
  b->bn_forward_eval = cuda_bn_forward_eval;
  b->bn_backward = cuda_bn_backward;
}
