// CUDA ops: the optimizer steps (SGD with momentum, dampening, Nesterov and weight decay; Adam
// with coupled weight decay) over a group of flat f32 parameter tensors (a trainer's trainable
// parameters: one launch per OPTIM_CHUNK tensors, not one per tensor); shapes and
// hyper-parameters were checked by the entry points (engine/backend/ops_math.c).
//
// The step's constants are computed once on the host as the CPU backend computes them
// (fg_math_sgd_prepare, fg_math_adam_prepare: Adam's bias corrections in double with the host's
// pow and sqrt, rounded to float), and passed by value to a grid-stride kernel (64-bit indices,
// FG_CUDA_THREADS threads per block, blockIdx.y the tensor, fg_cuda_blocks(largest n) blocks in
// x, on the backend's stream) whose thread reads element i of each state tensor, calls the element
// function of cuda/math/optim.h and writes element i back. One thread owns each element:
// deterministic, and in the bitwise class of the op suite (the element functions are
// cpu/optim.c's arithmetic, built with --fmad=false).
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/optim.h"

// ------------------------------------------------------------------------------------------- //
// Kernels: one launch steps up to OPTIM_CHUNK tensors (blockIdx.y: the tensor; x: its elements)  //

// Tensors per launch; their pointers travel as a kernel argument (5 x 8 bytes each, far under the
// 4 KB argument limit of every CUDA version).
enum { OPTIM_CHUNK = 32 };

typedef struct optim_chunk {
  int count;
  int64_t n[OPTIM_CHUNK];
  float *p[OPTIM_CHUNK];
  const float *g[OPTIM_CHUNK];
  float *s0[OPTIM_CHUNK]; // momentum buffer, or Adam's m
  float *s1[OPTIM_CHUNK]; // Adam's v
} optim_chunk;

// Each tensor: p = the SGD update without momentum.
static __global__ void sgd_step_plain_kernel(fg_math_sgd k, optim_chunk c) {
  const int t = blockIdx.y;
  float *p = c.p[t];
  const float *g = c.g[t];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c.n[t]; i += (int64_t)gridDim.x * blockDim.x)
    p[i] = fg_math_sgd_plain(k, p[i], g[i]);
}

// Each tensor: p and its momentum buffer after the SGD update with momentum.
static __global__ void sgd_step_momentum_kernel(fg_math_sgd k, optim_chunk c) {
  const int t = blockIdx.y;
  float *p = c.p[t], *buf = c.s0[t];
  const float *g = c.g[t];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c.n[t]; i += (int64_t)gridDim.x * blockDim.x) {
    const fg_math_sgd_state s = fg_math_sgd_momentum(k, p[i], g[i], buf[i]);
    buf[i] = s.buf;
    p[i] = s.p;
  }
}

// Each tensor: p, m and v after the Adam update.
static __global__ void adam_step_kernel(fg_math_adam k, optim_chunk c) {
  const int t = blockIdx.y;
  float *p = c.p[t], *m = c.s0[t], *v = c.s1[t];
  const float *g = c.g[t];
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < c.n[t]; i += (int64_t)gridDim.x * blockDim.x) {
    const fg_math_adam_state s = fg_math_adam_update(k, p[i], g[i], m[i], v[i]);
    m[i] = s.m;
    v[i] = s.v;
    p[i] = s.p;
  }
}

// ------------------------------------------------------------------------------------------- //
// Launchers (one per op)                                                                       //

static float *f32(const fg_tensor *t) { return t ? (float *)t->data : NULL; }

// Tensors first .. first + OPTIM_CHUNK - 1 of the group (those that exist), and the blocks their
// largest needs; 0 blocks when they are all empty.
static optim_chunk chunk_of(const fg_param_group *g, int first, unsigned *blocks) {
  optim_chunk c;
  memset(&c, 0, sizeof c);
  int64_t most = 0;
  for (int i = first; i < g->count && c.count < OPTIM_CHUNK; i++, c.count++) {
    const int k = c.count;
    c.n[k] = fg_tensor_numel(g->param[i]);
    c.p[k] = f32(g->param[i]);
    c.g[k] = (const float *)g->grad[i]->data;
    c.s0[k] = g->state[0] ? f32(g->state[0][i]) : NULL;
    c.s1[k] = g->state[1] ? f32(g->state[1][i]) : NULL;
    if (c.n[k] > most) most = c.n[k];
  }
  *blocks = most > 0 ? fg_cuda_blocks(most, FG_CUDA_THREADS) : 0;
  return c;
}

// One SGD step (fg_sgd_hparams) over the group. Without momentum (0) no buffer is read or
// written, as on the CPU.
static fg_status cuda_sgd_step(fg_backend *b, const fg_sgd_hparams *h, const fg_param_group *g) {
  fg_cuda_ctx *ctx = fg_cuda_ctx_of(b);
  const fg_math_sgd k = fg_math_sgd_prepare(h);
  if (k.momentum != 0.0f && !g->state[0])
    return FG_FAIL(FG_ERR_INTERNAL, "sgd_step: momentum %g without momentum buffers", (double)k.momentum);
  for (int first = 0; first < g->count; first += OPTIM_CHUNK) {
    unsigned blocks;
    const optim_chunk c = chunk_of(g, first, &blocks);
    if (blocks == 0) continue;
    const dim3 grid(blocks, (unsigned)c.count);
    if (k.momentum == 0.0f) {
      sgd_step_plain_kernel<<<grid, FG_CUDA_THREADS, 0, ctx->stream>>>(k, c);
      FG_CUDA_LAUNCHED(ctx, "sgd_step_plain_kernel");
    } else {
      sgd_step_momentum_kernel<<<grid, FG_CUDA_THREADS, 0, ctx->stream>>>(k, c);
      FG_CUDA_LAUNCHED(ctx, "sgd_step_momentum_kernel");
    }
  }
  return FG_OK;
}

// One Adam step (fg_adam_hparams), step >= 1, over the group.
static fg_status cuda_adam_step(fg_backend *b, const fg_adam_hparams *h, int64_t step, const fg_param_group *g) {
  fg_cuda_ctx *ctx = fg_cuda_ctx_of(b);
  const fg_math_adam k = fg_math_adam_prepare(h, step);
  for (int first = 0; first < g->count; first += OPTIM_CHUNK) {
    unsigned blocks;
    const optim_chunk c = chunk_of(g, first, &blocks);
    if (blocks == 0) continue;
    adam_step_kernel<<<dim3(blocks, (unsigned)c.count), FG_CUDA_THREADS, 0, ctx->stream>>>(k, c);
    FG_CUDA_LAUNCHED(ctx, "adam_step_kernel");
  }
  return FG_OK;
}

void fg_cuda_register_optim_ops(fg_backend *b) {
  b->sgd_step = cuda_sgd_step;
  b->adam_step = cuda_adam_step;
}
