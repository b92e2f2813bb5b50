// CUDA ops: the elementwise family (relu forward and backward, add, axpy, scale, copy, fill,
// inverted dropout forward and backward, sigmoid forward and backward, the product) over flat f32 buffers; shapes were checked by the entry
// points (engine/backend/ops_math.c), so only element counts matter here.
//
// Every kernel is a grid-stride loop over n elements with 64-bit indices, FG_CUDA_THREADS threads
// per block and fg_cuda_blocks(n) blocks, on the backend's stream. Element i is read only to
// write element i, so the in-place forms of engine/backend/backend.h (x == y, dx == dy) work, and
// no pointer is declared __restrict__. What one element computes is in cuda/math/elementwise.h,
// shared with the host tests; it is the CPU backend's arithmetic (cpu/elementwise.c), so these
// ops are in the bitwise class of the op suite. No atomics, no reductions: each output element
// is written by exactly one thread, hence deterministic.
#include "cuda/cuda_internal.h"
#include "cuda/math/elementwise.h"

// ------------------------------------------------------------------------------------------- //
// Kernels                                                                                      //

// x, y [n]; y may be x.
static __global__ void relu_forward_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_relu(x[i]);
}

// y, dy, dx [n]; dx may be dy.
static __global__ void relu_backward_assign_kernel(const float *y, const float *dy, float *dx, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = fg_math_relu_grad(y[i], dy[i]);
}

// y, dy, dx [n].
static __global__ void relu_backward_accumulate_kernel(const float *y, const float *dy, float *dx, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = fg_math_relu_grad_acc(y[i], dy[i], dx[i]);
}

// x1, x2, y [n]; y may be x1 or x2.
static __global__ void add_kernel(const float *x1, const float *x2, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_add(x1[i], x2[i]);
}

// x, y [n]: y += alpha x.
static __global__ void axpy_kernel(float alpha, const float *x, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_axpy(alpha, x[i], y[i]);
}

// x, y [n]; y may be x.
static __global__ void scale_kernel(float alpha, const float *x, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_scale(alpha, x[i]);
}

// y [n].
static __global__ void fill_kernel(float *y, float value, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = value;
}

// in, out [n]: out = the dropout map of in (forward: in = x; backward: in = dy).
static __global__ void dropout_assign_kernel(const float *in, float *out, int64_t n, float p, float keep_scale,
                                             uint64_t key) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = fg_math_dropout(in[i], p, keep_scale, key, i);
}

// in, out [n]: out += the dropout map of in.
static __global__ void dropout_accumulate_kernel(const float *in, float *out, int64_t n, float p, float keep_scale,
                                                 uint64_t key) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = fg_math_dropout_acc(in[i], out[i], p, keep_scale, key, i);
}

// x, y [n]; y may be x.
static __global__ void sigmoid_forward_kernel(const float *x, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_sigmoid(x[i]);
}

// y, dy, dx [n]; dx may be dy.
static __global__ void sigmoid_backward_assign_kernel(const float *y, const float *dy, float *dx, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = fg_math_sigmoid_grad(y[i], dy[i]);
}

// y, dy, dx [n].
static __global__ void sigmoid_backward_accumulate_kernel(const float *y, const float *dy, float *dx, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dx[i] = fg_math_sigmoid_grad_acc(y[i], dy[i], dx[i]);
}

// x1, x2, y [n]; y may be x1 or x2.
static __global__ void mul_assign_kernel(const float *x1, const float *x2, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_mul(x1[i], x2[i]);
}

// x1, x2, y [n]: y += x1 x2.
static __global__ void mul_accumulate_kernel(const float *x1, const float *x2, float *y, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    y[i] = fg_math_mul_acc(x1[i], x2[i], y[i]);
}

// ------------------------------------------------------------------------------------------- //
// Launchers (one per op)                                                                       //

static float *f32(const fg_tensor *t) { return (float *)t->data; }

// The launch geometry of every kernel here.
static dim3 blocks_for(int64_t n) { return dim3(fg_cuda_blocks(n, FG_CUDA_THREADS)); }

// y = max(x, 0); x, y any shape with the same element count; in-place (x == y) allowed.
static fg_status cuda_relu_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x);
  if (n == 0) return FG_OK;
  relu_forward_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(x), f32(y), n);
  FG_CUDA_LAUNCHED(c, "relu_forward_kernel");
  return FG_OK;
}

// dx (=|+=) dy * (y > 0); y (the forward output), dy, dx with one element count; dx == dy allowed
// when !accumulate.
static fg_status cuda_relu_backward(fg_backend *b, const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx,
                                    int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(y);
  if (n == 0) return FG_OK;
  if (accumulate) {
    relu_backward_accumulate_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(y), f32(dy), f32(dx), n);
    FG_CUDA_LAUNCHED(c, "relu_backward_accumulate_kernel");
  } else {
    relu_backward_assign_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(y), f32(dy), f32(dx), n);
    FG_CUDA_LAUNCHED(c, "relu_backward_assign_kernel");
  }
  return FG_OK;
}

// y = x1 + x2; one element count; y may be x1 or x2.
static fg_status cuda_add(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x1);
  if (n == 0) return FG_OK;
  add_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(x1), f32(x2), f32(y), n);
  FG_CUDA_LAUNCHED(c, "add_kernel");
  return FG_OK;
}

// y += alpha x; one element count.
static fg_status cuda_axpy(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x);
  if (n == 0) return FG_OK;
  axpy_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(alpha, f32(x), f32(y), n);
  FG_CUDA_LAUNCHED(c, "axpy_kernel");
  return FG_OK;
}

// y = alpha x; one element count; in-place allowed.
static fg_status cuda_scale(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x);
  if (n == 0) return FG_OK;
  scale_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(alpha, f32(x), f32(y), n);
  FG_CUDA_LAUNCHED(c, "scale_kernel");
  return FG_OK;
}

// y = x; one element count. A device-to-device copy queued on the stream (the bytes are the
// CPU's, whatever the values: NaN payloads included). x == y copies nothing, as on the CPU; a
// partial overlap, which the CPU's memmove handles, is refused with FG_ERR_UNSUPPORTED
// (cudaMemcpyAsync leaves it undefined).
static fg_status cuda_copy_tensor(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const size_t bytes = fg_tensor_bytes(x);
  if (bytes == 0 || x->data == y->data) return FG_OK;
  const char *xs = (const char *)x->data, *ys = (const char *)y->data;
  if (xs < ys + bytes && ys < xs + bytes)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "copy: x and y overlap without being the same tensor (%zu bytes, %td apart)",
                   bytes, ys - xs);
  FG_CUDA_TRY(cudaMemcpyAsync(y->data, x->data, bytes, cudaMemcpyDeviceToDevice, c->stream));
  return FG_OK;
}

// y = value everywhere.
static fg_status cuda_fill(fg_backend *b, fg_tensor *y, float value) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(y);
  if (n == 0) return FG_OK;
  fill_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(y), value, n);
  FG_CUDA_LAUNCHED(c, "fill_kernel");
  return FG_OK;
}

// out (=|+=) the dropout map of in (cuda/math/elementwise.h); in, out [n].
static fg_status dropout_apply(fg_cuda_ctx *c, const float *in, float *out, int64_t n, float p, uint64_t key,
                               int accumulate) {
  if (n == 0) return FG_OK;
  const float keep_scale = fg_math_dropout_keep_scale(p);
  if (accumulate) {
    dropout_accumulate_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(in, out, n, p, keep_scale, key);
    FG_CUDA_LAUNCHED(c, "dropout_accumulate_kernel");
  } else {
    dropout_assign_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(in, out, n, p, keep_scale, key);
    FG_CUDA_LAUNCHED(c, "dropout_assign_kernel");
  }
  return FG_OK;
}

// y = keep_i ? x_i / (1 - p) : 0, keep_i = fg_rng_uniform_at(key, i) >= p; x, y one element count.
// p = 0 is a copy, as on the CPU.
static fg_status cuda_dropout_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y, float p, uint64_t key) {
  if (p == 0.0f) return cuda_copy_tensor(b, x, y);
  return dropout_apply(fg_cuda_ctx_of(b), f32(x), f32(y), fg_tensor_numel(x), p, key, 0);
}

// dx (=|+=) the same map applied to dy, the mask recomputed from the key; dy, dx one element
// count. p = 0 without accumulation is a copy, as on the CPU.
static fg_status cuda_dropout_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx, float p, uint64_t key,
                                       int accumulate) {
  if (p == 0.0f && !accumulate) return cuda_copy_tensor(b, dy, dx);
  return dropout_apply(fg_cuda_ctx_of(b), f32(dy), f32(dx), fg_tensor_numel(dy), p, key, accumulate);
}

// y = 1 / (1 + exp(-x)); one element count; in-place allowed.
static fg_status cuda_sigmoid_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x);
  if (n == 0) return FG_OK;
  sigmoid_forward_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(x), f32(y), n);
  FG_CUDA_LAUNCHED(c, "sigmoid_forward_kernel");
  return FG_OK;
}

// dx (=|+=) dy * (y (1 - y)); y (the forward output), dy, dx with one element count; dx == dy
// allowed when !accumulate.
static fg_status cuda_sigmoid_backward(fg_backend *b, const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx,
                                       int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(y);
  if (n == 0) return FG_OK;
  if (accumulate) {
    sigmoid_backward_accumulate_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(y), f32(dy), f32(dx), n);
    FG_CUDA_LAUNCHED(c, "sigmoid_backward_accumulate_kernel");
  } else {
    sigmoid_backward_assign_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(y), f32(dy), f32(dx), n);
    FG_CUDA_LAUNCHED(c, "sigmoid_backward_assign_kernel");
  }
  return FG_OK;
}

// y (=|+=) x1 x2; one element count; y may be x1 or x2 when !accumulate.
static fg_status cuda_mul(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y, int accumulate) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(x1);
  if (n == 0) return FG_OK;
  if (accumulate) {
    mul_accumulate_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(x1), f32(x2), f32(y), n);
    FG_CUDA_LAUNCHED(c, "mul_accumulate_kernel");
  } else {
    mul_assign_kernel<<<blocks_for(n), FG_CUDA_THREADS, 0, c->stream>>>(f32(x1), f32(x2), f32(y), n);
    FG_CUDA_LAUNCHED(c, "mul_assign_kernel");
  }
  return FG_OK;
}

void fg_cuda_register_elementwise_ops(fg_backend *b) {
  b->relu_forward = cuda_relu_forward;
  b->relu_backward = cuda_relu_backward;
  b->add = cuda_add;
  b->axpy = cuda_axpy;
  b->scale = cuda_scale;
  b->copy_tensor = cuda_copy_tensor;
  b->fill = cuda_fill;
  b->dropout_forward = cuda_dropout_forward;
  b->dropout_backward = cuda_dropout_backward;
  b->sigmoid_forward = cuda_sigmoid_forward;
  b->sigmoid_backward = cuda_sigmoid_backward;
  b->mul = cuda_mul;
}
