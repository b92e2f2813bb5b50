// CUDA ops: the optimizer steps (SGD with momentum, dampening, Nesterov and weight decay; Adam
// with coupled weight decay) over one flat f32 parameter tensor; shapes and hyper-parameters were
// checked by the entry points (engine/backend/ops_math.c).
//
// The step's constants are computed once on the host as the CPU backend computes them
// (fg_math_sgd_prepare, fg_math_adam_prepare: Adam's bias corrections in double with the host's
// pow and sqrt, rounded to float), and passed by value to a grid-stride kernel (64-bit indices,
// FG_CUDA_THREADS threads per block, fg_cuda_blocks(n) blocks, on the backend's stream) whose
// thread reads element i of each state tensor, calls the element function of
// cuda/math/optim.h and writes element i back. One thread owns each element: deterministic, and
// in the bitwise class of the op suite (the element functions are cpu/optim.c's arithmetic, built
// with --fmad=false). A multi-tensor step can call the same element functions over many tensors.
#include "cuda/cuda_internal.h"
#include "cuda/math/optim.h"

// ------------------------------------------------------------------------------------------- //
// Kernels                                                                                      //

// p, g [n]: p = the SGD update without momentum.
static __global__ void sgd_step_plain_kernel(fg_math_sgd k, float *p, const float *g, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    p[i] = fg_math_sgd_plain(k, p[i], g[i]);
}

// p, g, buf [n]: p and buf after the SGD update with momentum.
static __global__ void sgd_step_momentum_kernel(fg_math_sgd k, float *p, const float *g, float *buf, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const fg_math_sgd_state s = fg_math_sgd_momentum(k, p[i], g[i], buf[i]);
    buf[i] = s.buf;
    p[i] = s.p;
  }
}

// p, g, m, v [n]: p, m and v after the Adam update.
static __global__ void adam_step_kernel(fg_math_adam k, float *p, const float *g, float *m, float *v, int64_t n) {
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    const fg_math_adam_state s = fg_math_adam_update(k, p[i], g[i], m[i], v[i]);
    m[i] = s.m;
    v[i] = s.v;
    p[i] = s.p;
  }
}

// ------------------------------------------------------------------------------------------- //
// Launchers (one per op)                                                                       //

static float *f32(const fg_tensor *t) { return (float *)t->data; }

// One SGD step (fg_sgd_hparams); param, grad, momentum_buf [n] (any shapes with n elements).
// Without momentum (0) the buffer is neither read nor written and may be NULL, as on the CPU.
static fg_status cuda_sgd_step(fg_backend *b, const fg_sgd_hparams *h, fg_tensor *param, const fg_tensor *grad,
                               fg_tensor *momentum_buf) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(param);
  if (n == 0) return FG_OK;
  const fg_math_sgd k = fg_math_sgd_prepare(h);
  const unsigned blocks = fg_cuda_blocks(n, FG_CUDA_THREADS);
  if (k.momentum == 0.0f) {
    sgd_step_plain_kernel<<<blocks, FG_CUDA_THREADS, 0, c->stream>>>(k, f32(param), f32(grad), n);
    FG_CUDA_LAUNCHED(c, "sgd_step_plain_kernel");
    return FG_OK;
  }
  if (!momentum_buf)
    return FG_FAIL(FG_ERR_INTERNAL, "sgd_step: momentum %g without a momentum buffer", (double)k.momentum);
  sgd_step_momentum_kernel<<<blocks, FG_CUDA_THREADS, 0, c->stream>>>(k, f32(param), f32(grad), f32(momentum_buf), n);
  FG_CUDA_LAUNCHED(c, "sgd_step_momentum_kernel");
  return FG_OK;
}

// One Adam step (fg_adam_hparams), step >= 1; param, grad, m, v [n] (any shapes with n elements).
static fg_status cuda_adam_step(fg_backend *b, const fg_adam_hparams *h, int64_t step, fg_tensor *param,
                                const fg_tensor *grad, fg_tensor *m, fg_tensor *v) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(param);
  if (n == 0) return FG_OK;
  const fg_math_adam k = fg_math_adam_prepare(h, step);
  adam_step_kernel<<<fg_cuda_blocks(n, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(k, f32(param), f32(grad),
                                                                                          f32(m), f32(v), n);
  FG_CUDA_LAUNCHED(c, "adam_step_kernel");
  return FG_OK;
}

void fg_cuda_register_optim_ops(fg_backend *b) {
  b->sgd_step = cuda_sgd_step;
  b->adam_step = cuda_adam_step;
}
