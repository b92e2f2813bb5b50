// CUDA ops: max pooling (forward with the u8 argmax, backward), global average pooling
// (forward, backward) and bilinear x2 upsampling (forward, backward; cuda/math/upsample.h, the
// CPU's arithmetic too) with our own kernels (cuDNN's max-pool backward is non-deterministic and has
// no u8 argmax). The arithmetic (one window, the windows covering an input element, one plane's
// mean) is cuda/math/pool.h, the CPU backend's (cpu/pool.c); this file holds the indexing and the
// launches only.
//
// Every output element is computed by one thread, from its inputs in a fixed order: no atomics,
// no sums split across threads. The max-pool forward, its argmax, the max-pool backward and both
// average-pool ops do the CPU's arithmetic in the CPU's order (built with --fmad=false), so they
// give the CPU backend's results bit for bit.
#include "cuda/cuda_internal.h"
#include "cuda/math/pool.h"
#include "cuda/math/upsample.h"
#include "cuda/reduce.cuh"

// The geometry of a call: img is x or dx [N,C,H,W], pooled is y, dy or argmax [N,C,Ho,Wo]
// (validated by the entry point).
static fg_pool_geom geom_of(const fg_pool_desc *d, const fg_tensor *img, const fg_tensor *pooled) {
  fg_pool_geom g;
  g.h = img->shape[2];
  g.w = img->shape[3];
  g.ho = pooled->shape[2];
  g.wo = pooled->shape[3];
  g.kernel = d->kernel;
  g.stride = d->stride;
  g.pad = d->pad;
  return g;
}

static int64_t planes_of(const fg_tensor *img) { return img->shape[0] * img->shape[1]; }

// First index and stride of a grid-stride loop.
__device__ static int64_t grid_start() { return (int64_t)blockIdx.x * blockDim.x + threadIdx.x; }
__device__ static int64_t grid_stride() { return (int64_t)gridDim.x * blockDim.x; }

// ------------------------------------------------------------------------------------------- //
// Max pooling forward                                                                          //

// One thread per output: the window's first maximum over the input positions. x [planes, h, w],
// y and argmax (or NULL) [planes, ho, wo]. Launch <<<fg_cuda_blocks(planes ho wo), T>>>.
__global__ void maxpool_forward_kernel(fg_pool_geom g, int64_t planes, const float *x, float *y, uint8_t *argmax) {
  const int64_t out_plane = g.ho * g.wo, total = planes * out_plane;
  for (int64_t o = grid_start(); o < total; o += grid_stride()) {
    const int64_t p = o / out_plane, r = o - p * out_plane;
    const int64_t oy = r / g.wo, ox = r - oy * g.wo;
    int pos;
    y[o] = fg_maxpool_window(&g, x + p * g.h * g.w, oy, ox, &pos);
    if (argmax) argmax[o] = (uint8_t)pos;
  }
}

static fg_status cuda_maxpool_forward(fg_backend *b, const fg_pool_desc *d, const fg_tensor *x, fg_tensor *y,
                                      fg_tensor *argmax) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_pool_geom g = geom_of(d, x, y);
  const int64_t planes = planes_of(x), total = planes * g.ho * g.wo;
  if (total == 0) return FG_OK;
  maxpool_forward_kernel<<<fg_cuda_blocks(total, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      g, planes, (const float *)x->data, (float *)y->data, argmax ? (uint8_t *)argmax->data : NULL);
  FG_CUDA_LAUNCHED(c, "maxpool_forward_kernel");
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Max pooling backward                                                                         //

// One thread per input element: init (0, or dx when accumulating) plus the dy of every window
// that covers it and chose it, in the windows' row-major order (the order of the CPU's scatter).
// dy, argmax [planes, ho, wo]; dx [planes, h, w]. Launch <<<fg_cuda_blocks(planes h w), T>>>.
__global__ void maxpool_backward_kernel(fg_pool_geom g, int64_t planes, const float *dy, const uint8_t *argmax,
                                        float *dx, int accumulate) {
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo, total = planes * in_plane;
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t p = i / in_plane, r = i - p * in_plane;
    const int64_t iy = r / g.w, ix = r - iy * g.w;
    const float init = accumulate ? dx[i] : 0.0f;
    dx[i] = fg_maxpool_gather(&g, dy + p * out_plane, argmax + p * out_plane, iy, ix, init);
  }
}

// The bad argmax values (outside their window or pointing into the padding): stage one counts
// them per block and keeps the block's lowest bad position as a score n - position (0: none), so
// that the first bad entry is a maximum. argmax [planes, ho, wo], n = planes ho wo;
// partials[blockIdx.x] = the count, partials[FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = the score.
// Launch <<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS>>>.
__global__ void maxpool_argmax_check_kernel(fg_pool_geom g, int64_t n, const uint8_t *argmax, double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t out_plane = g.ho * g.wo, stride = (int64_t)FG_CUDA_REDUCE_BLOCKS * FG_CUDA_THREADS;
  double count = 0.0, score = 0.0;
  for (int64_t o = (int64_t)blockIdx.x * FG_CUDA_THREADS + threadIdx.x; o < n; o += stride) {
    const int64_t r = o % out_plane, oy = r / g.wo, ox = r - oy * g.wo;
    int64_t iy, ix;
    if (fg_maxpool_argmax_input(&g, oy, ox, argmax[o], &iy, &ix)) continue;
    count += 1.0;
    if (score == 0.0) score = (double)(n - o); // this thread's first bad position
  }
  count = fg_block_sum(count, shared);
  score = fg_block_max(score, shared);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = count;
    partials[FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = score;
  }
}

// Stage two: scalars[0] = the number of bad values, scalars[1] = the first one's position (-1
// when none), scalars[2] = its value. Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void maxpool_argmax_report_kernel(int64_t n, const uint8_t *argmax, const double *partials,
                                             double *scalars) {
  __shared__ double shared[FG_CUDA_THREADS];
  double count = 0.0, score = 0.0;
  for (int k = threadIdx.x; k < FG_CUDA_REDUCE_BLOCKS; k += FG_CUDA_THREADS) {
    count += partials[k];
    const double s = partials[FG_CUDA_REDUCE_BLOCKS + k];
    if (s > score) score = s;
  }
  count = fg_block_sum(count, shared);
  score = fg_block_max(score, shared);
  if (threadIdx.x == 0) {
    const int64_t first = score > 0.0 ? n - (int64_t)score : -1;
    scalars[0] = count;
    scalars[1] = (double)first;
    scalars[2] = first >= 0 ? (double)argmax[first] : 0.0;
  }
}

static fg_status cuda_maxpool_backward(fg_backend *b, const fg_pool_desc *d, const fg_tensor *dy,
                                       const fg_tensor *argmax, fg_tensor *dx, int accumulate,
                                       fg_index_report *report) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_pool_geom g = geom_of(d, dx, dy);
  const int64_t planes = planes_of(dx), n = planes * g.ho * g.wo, total = planes * g.h * g.w;
  report->bad = 0;
  report->first = -1;
  report->value = 0;
  if (total == 0) return FG_OK; // no planes (N or C is 0): nothing to read or write
  const uint8_t *am = (const uint8_t *)argmax->data;
  double *partials = (double *)c->partials.ptr; // FG_CUDA_REDUCE_BLOCKS x 4 doubles: 2 used
  maxpool_argmax_check_kernel<<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS, 0, c->stream>>>(g, n, am, partials);
  FG_CUDA_LAUNCHED(c, "maxpool_argmax_check_kernel");
  maxpool_argmax_report_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(n, am, partials, (double *)c->scalars.ptr);
  FG_CUDA_LAUNCHED(c, "maxpool_argmax_report_kernel");
  maxpool_backward_kernel<<<fg_cuda_blocks(total, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      g, planes, (const float *)dy->data, am, (float *)dx->data, accumulate);
  FG_CUDA_LAUNCHED(c, "maxpool_backward_kernel");
  double found[3];
  FG_TRY(fg_cuda_read_scalars(c, found, 3));
  report->bad = (int64_t)found[0];
  report->first = (int64_t)found[1];
  report->value = (int64_t)found[2];
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Global average pooling                                                                       //

// One thread per plane: its values summed in order in double (as the CPU), divided, rounded.
// x [planes, hw], y [planes]. Launch <<<fg_cuda_blocks(planes), T>>>.
__global__ void avgpool_global_forward_kernel(int64_t planes, int64_t hw, const float *x, float *y) {
  for (int64_t p = grid_start(); p < planes; p += grid_stride()) y[p] = fg_avgpool_plane_mean(x + p * hw, hw);
}

static fg_status cuda_avgpool_global_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t planes = planes_of(x), hw = x->shape[2] * x->shape[3]; // hw > 0: the entry point
  if (planes == 0) return FG_OK;
  avgpool_global_forward_kernel<<<fg_cuda_blocks(planes, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      planes, hw, (const float *)x->data, (float *)y->data);
  FG_CUDA_LAUNCHED(c, "avgpool_global_forward_kernel");
  return FG_OK;
}

// One thread per input element: dx (=|+=) dy / hw. dy [planes], dx [planes, hw].
// Launch <<<fg_cuda_blocks(planes hw), T>>>.
__global__ void avgpool_global_backward_kernel(int64_t planes, int64_t hw, const float *dy, float *dx,
                                               int accumulate) {
  const int64_t total = planes * hw;
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const float v = fg_avgpool_grad(dy[i / hw], hw);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

static fg_status cuda_avgpool_global_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t planes = planes_of(dx), hw = dx->shape[2] * dx->shape[3];
  if (planes == 0) return FG_OK;
  avgpool_global_backward_kernel<<<fg_cuda_blocks(planes * hw, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      planes, hw, (const float *)dy->data, (float *)dx->data, accumulate);
  FG_CUDA_LAUNCHED(c, "avgpool_global_backward_kernel");
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Bilinear x2 upsampling                                                                       //

// One thread per output element. x [planes, h, w], y [planes, ho, wo].
// Launch <<<fg_cuda_blocks(planes ho wo), T>>>.
__global__ void upsample2x_forward_kernel(int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo,
                                          const float *x, float *y) {
  const int64_t out_plane = ho * wo, total = planes * out_plane;
  for (int64_t o = grid_start(); o < total; o += grid_stride()) {
    const int64_t p = o / out_plane, r = o - p * out_plane;
    const int64_t oy = r / wo, ox = r - oy * wo;
    y[o] = fg_upsample2x_value(x + p * h * w, h, w, oy, ox);
  }
}

// One thread per input element, gathering its outputs in a fixed order. dy [planes, ho, wo],
// dx [planes, h, w]. Launch <<<fg_cuda_blocks(planes h w), T>>>.
__global__ void upsample2x_backward_kernel(int64_t planes, int64_t h, int64_t w, int64_t ho, int64_t wo,
                                           const float *dy, float *dx, int accumulate) {
  const int64_t in_plane = h * w, total = planes * in_plane;
  for (int64_t i = grid_start(); i < total; i += grid_stride()) {
    const int64_t p = i / in_plane, r = i - p * in_plane;
    const int64_t iy = r / w, ix = r - iy * w;
    const float v = fg_upsample2x_grad(dy + p * ho * wo, h, w, ho, wo, iy, ix);
    dx[i] = accumulate ? dx[i] + v : v;
  }
}

// x [N,C,H,W] -> y [N,C,Ho,Wo] (Ho in {2H - 1, 2H}, Wo in {2W - 1, 2W}: the entry point).
static fg_status cuda_upsample2x_bilinear_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t planes = planes_of(x), h = x->shape[2], w = x->shape[3], ho = y->shape[2], wo = y->shape[3];
  if (planes == 0) return FG_OK;
  upsample2x_forward_kernel<<<fg_cuda_blocks(planes * ho * wo, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      planes, h, w, ho, wo, (const float *)x->data, (float *)y->data);
  FG_CUDA_LAUNCHED(c, "upsample2x_forward_kernel");
  return FG_OK;
}

// dy [N,C,Ho,Wo] -> dx [N,C,H,W] (=|+=).
static fg_status cuda_upsample2x_bilinear_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t planes = planes_of(dx), h = dx->shape[2], w = dx->shape[3], ho = dy->shape[2], wo = dy->shape[3];
  if (planes == 0) return FG_OK;
  upsample2x_backward_kernel<<<fg_cuda_blocks(planes * h * w, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      planes, h, w, ho, wo, (const float *)dy->data, (float *)dx->data, accumulate);
  FG_CUDA_LAUNCHED(c, "upsample2x_backward_kernel");
  return FG_OK;
}

void fg_cuda_register_pool_ops(fg_backend *b) {
  b->maxpool_forward = cuda_maxpool_forward;
  b->maxpool_backward = cuda_maxpool_backward;
  b->avgpool_global_forward = cuda_avgpool_global_forward;
  b->avgpool_global_backward = cuda_avgpool_global_backward;
  b->upsample2x_bilinear_forward = cuda_upsample2x_bilinear_forward;
  b->upsample2x_bilinear_backward = cuda_upsample2x_bilinear_backward;
}
