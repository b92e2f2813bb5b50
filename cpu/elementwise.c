/* Elementwise ops and inverted dropout on the CPU, over flat f32 buffers (shapes were checked
 * by the entry points; only element counts matter here). Every element is computed on its own,
 * so results do not depend on the thread count, and the in-place forms documented in
 * engine/backend/backend.h (x == y, dx == dy) work: each loop reads element i only to write
 * element i, which is the same-index aliasing that `omp simd` allows, so the loops are
 * vectorised without the compiler having to prove the buffers distinct. Selects are written
 * as branch-free conditional expressions. */
#include <string.h>

#include "cpu/math_internal.h"
#include "cuda/math/elementwise.h"
#include "engine/base/rng.h"

/* ----------------------------------------------------------------------------------------- */
/* ReLU                                                                                       */

/* y = max(x, 0); NaN stays NaN. */
static fg_status cpu_relu_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  (void)b;
  const int64_t n = fg_tensor_numel(x);
  const float *xd = fg_f32(x);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] = xd[i] < 0.0f ? 0.0f : xd[i];
  return FG_OK;
}

/* dx (=|+=) dy * (y > 0). */
static fg_status cpu_relu_backward(fg_backend *b, const fg_tensor *y, const fg_tensor *dy,
                                   fg_tensor *dx, int accumulate) {
  (void)b;
  const int64_t n = fg_tensor_numel(y);
  const float *yd = fg_f32(y), *dyd = fg_f32(dy);
  float *dxd = fg_f32(dx);
  if (accumulate) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
      const float old = dxd[i], g = dyd[i]; /* both loaded unconditionally: a plain select */
      dxd[i] = yd[i] > 0.0f ? old + g : old;
    }
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) {
      const float g = dyd[i];
      dxd[i] = yd[i] > 0.0f ? g : 0.0f;
    }
  }
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Arithmetic                                                                                 */

static fg_status cpu_add(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y) {
  (void)b;
  const int64_t n = fg_tensor_numel(x1);
  const float *a = fg_f32(x1), *c = fg_f32(x2);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] = a[i] + c[i];
  return FG_OK;
}

/* y += alpha x. */
static fg_status cpu_axpy(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y) {
  (void)b;
  const int64_t n = fg_tensor_numel(x);
  const float *xd = fg_f32(x);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] += alpha * xd[i];
  return FG_OK;
}

/* y = alpha x. */
static fg_status cpu_scale(fg_backend *b, float alpha, const fg_tensor *x, fg_tensor *y) {
  (void)b;
  const int64_t n = fg_tensor_numel(x);
  const float *xd = fg_f32(x);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] = alpha * xd[i];
  return FG_OK;
}

static fg_status cpu_copy_tensor(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  (void)b;
  size_t bytes = fg_tensor_bytes(x);
  if (bytes && x->data != y->data) memmove(y->data, x->data, bytes);
  return FG_OK;
}

static fg_status cpu_fill(fg_backend *b, fg_tensor *y, float value) {
  (void)b;
  const int64_t n = fg_tensor_numel(y);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] = value;
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Dropout                                                                                    */

/* out (=|+=) keep_i ? in_i / (1 - p) : 0 with keep_i = uniform_at(key, i) >= p. Forward and
 * backward are the same map (backward recomputes the mask from the key). */
static void dropout_apply(const float *in, float *out, int64_t n, float p, uint64_t key,
                          int accumulate) {
  const float keep_scale = 1.0f - p;
#pragma omp parallel for schedule(static) if (n >= FG_CPU_PARALLEL_MIN / 8)
  for (int64_t i = 0; i < n; i++) {
    float v = fg_rng_uniform_at(key, (uint64_t)i) >= p ? in[i] / keep_scale : 0.0f;
    out[i] = accumulate ? out[i] + v : v;
  }
}

static fg_status cpu_dropout_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y, float p,
                                     uint64_t key) {
  if (p == 0.0f) return cpu_copy_tensor(b, x, y);
  dropout_apply(fg_f32(x), fg_f32(y), fg_tensor_numel(x), p, key, 0);
  return FG_OK;
}

static fg_status cpu_dropout_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx, float p,
                                      uint64_t key, int accumulate) {
  if (p == 0.0f && !accumulate) return cpu_copy_tensor(b, dy, dx);
  dropout_apply(fg_f32(dy), fg_f32(dx), fg_tensor_numel(dy), p, key, accumulate);
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Sigmoid and product: the per-element arithmetic of cuda/math/elementwise.h, shared with the  */
/* CUDA backend                                                                               */

static fg_status cpu_sigmoid_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  (void)b;
  const int64_t n = fg_tensor_numel(x);
  const float *xd = fg_f32(x);
  float *yd = fg_f32(y);
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) yd[i] = fg_math_sigmoid(xd[i]);
  return FG_OK;
}

/* dx (=|+=) dy * (y (1 - y)). */
static fg_status cpu_sigmoid_backward(fg_backend *b, const fg_tensor *y, const fg_tensor *dy,
                                      fg_tensor *dx, int accumulate) {
  (void)b;
  const int64_t n = fg_tensor_numel(y);
  const float *yd = fg_f32(y), *dyd = fg_f32(dy);
  float *dxd = fg_f32(dx);
  if (accumulate) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dxd[i] = fg_math_sigmoid_grad_acc(yd[i], dyd[i], dxd[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) dxd[i] = fg_math_sigmoid_grad(yd[i], dyd[i]);
  }
  return FG_OK;
}

/* y (=|+=) x1 x2. */
static fg_status cpu_mul(fg_backend *b, const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y,
                         int accumulate) {
  (void)b;
  const int64_t n = fg_tensor_numel(x1);
  const float *a = fg_f32(x1), *c = fg_f32(x2);
  float *yd = fg_f32(y);
  if (accumulate) {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) yd[i] = fg_math_mul_acc(a[i], c[i], yd[i]);
  } else {
#pragma omp parallel for simd schedule(static) if (parallel : n >= FG_CPU_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++) yd[i] = fg_math_mul(a[i], c[i]);
  }
  return FG_OK;
}

void fg_cpu_register_elementwise_ops(fg_backend *b) {
  b->relu_forward = cpu_relu_forward;
  b->relu_backward = cpu_relu_backward;
  b->add = cpu_add;
  b->axpy = cpu_axpy;
  b->scale = cpu_scale;
  b->copy_tensor = cpu_copy_tensor;
  b->fill = cpu_fill;
  b->dropout_forward = cpu_dropout_forward;
  b->dropout_backward = cpu_dropout_backward;
  b->sigmoid_forward = cpu_sigmoid_forward;
  b->sigmoid_backward = cpu_sigmoid_backward;
  b->mul = cpu_mul;
}
