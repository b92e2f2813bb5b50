/* The per-element arithmetic of the CUDA backend's elementwise family (cuda/elementwise.cu):
 * ReLU and its gradient, add, axpy, scale, inverted dropout, the sigmoid and its gradient and the
 * product (whose gradient is the product again), written once as FG_HOST_DEVICE
 * functions in the common subset of C11 and C++14, so that the kernels and the host tests
 * (tests/cpu/test_cuda_math_elementwise.c) compile the same code.
 *
 * The sigmoid and the product are also the CPU backend's code (cpu/elementwise.c includes this
 * header for them). The sigmoid calls expf, which the GPU's libdevice and the host's libm may
 * round differently (within 2 ulp): it is in the op suite's tolerance class; its gradient and the
 * product are single roundings, in the bitwise class.
 *
 * Each function is the CPU backend's expression (cpu/elementwise.c), with the same operations in
 * the same order and precision: a kernel built with --fmad=false (cuda/CMakeLists.txt) computes
 * the CPU's bits. Every result is one correctly rounded float operation on its inputs, or a
 * selection of one, which the GPU computes as IEEE 754 prescribes (nvcc's defaults: -prec-div,
 * -prec-sqrt, no flush to zero). One exception, which no op's contract covers: a NaN produced by
 * arithmetic on the GPU is the canonical NaN, while the CPU propagates an input's payload; a NaN
 * that is only selected (ReLU forward, the non-accumulating gradient) keeps its bits on both.
 *
 * Owns nothing. */
#ifndef FG_CUDA_MATH_ELEMENTWISE_H
#define FG_CUDA_MATH_ELEMENTWISE_H

#include <math.h>
#include <stdint.h>

#include "engine/base/host_device.h"
#include "engine/base/philox.h"

/* ----------------------------------------------------------------------------------------- */
/* ReLU                                                                                       */

/* max(x, 0) as a select: x for x >= 0 (-0 stays -0) and for NaN (NaN < 0 is false). */
FG_HOST_DEVICE static inline float fg_math_relu(float x) { return x < 0.0f ? 0.0f : x; }

/* The gradient from the forward output y: dy where y > 0, else 0 (y = 0, -0 or NaN pass none). */
FG_HOST_DEVICE static inline float fg_math_relu_grad(float y, float dy) {
  return y > 0.0f ? dy : 0.0f;
}

/* The accumulating gradient: dx + dy where y > 0, else dx unchanged (not dx + 0: -0 stays -0). */
FG_HOST_DEVICE static inline float fg_math_relu_grad_acc(float y, float dy, float dx) {
  return y > 0.0f ? dx + dy : dx;
}

/* ----------------------------------------------------------------------------------------- */
/* Arithmetic                                                                                 */

/* x1 + x2. */
FG_HOST_DEVICE static inline float fg_math_add(float x1, float x2) { return x1 + x2; }

/* y + alpha x: the product rounded, then the sum (no fused multiply-add). */
FG_HOST_DEVICE static inline float fg_math_axpy(float alpha, float x, float y) {
  return y + alpha * x;
}

/* alpha x. */
FG_HOST_DEVICE static inline float fg_math_scale(float alpha, float x) { return alpha * x; }

/* ----------------------------------------------------------------------------------------- */
/* Inverted dropout                                                                           */

/* The divisor of kept values for drop probability p: 1 - p rounded to float, as the CPU
 * computes it once per call (exact for p >= 0.5 by Sterbenz's lemma). */
FG_HOST_DEVICE static inline float fg_math_dropout_keep_scale(float p) { return 1.0f - p; }

/* Whether element i is kept: fg_rng_uniform_at(key, i) >= p (always for p = 0). */
FG_HOST_DEVICE static inline int fg_math_dropout_keep(float p, uint64_t key, int64_t i) {
  return fg_rng_uniform_at(key, (uint64_t)i) >= p;
}

/* The dropout map's value for element i of `in`: in / keep_scale when kept, else 0. Forward
 * (in = x) and backward (in = dy) are the same map; keep_scale = fg_math_dropout_keep_scale(p). */
FG_HOST_DEVICE static inline float fg_math_dropout(float in, float p, float keep_scale,
                                                   uint64_t key, int64_t i) {
  return fg_math_dropout_keep(p, key, i) ? in / keep_scale : 0.0f;
}

/* The accumulating form: out + the value above (a dropped element adds +0, as on the CPU). */
FG_HOST_DEVICE static inline float fg_math_dropout_acc(float in, float out, float p,
                                                       float keep_scale, uint64_t key, int64_t i) {
  return out + fg_math_dropout(in, p, keep_scale, key, i);
}

/* ----------------------------------------------------------------------------------------- */
/* Sigmoid and product                                                                        */

/* 1 / (1 + exp(-x)): expf(-x) overflows to inf below x = -88.7, giving 0; for x above 17 the sum
 * rounds to 1, giving 1. NaN stays NaN. */
FG_HOST_DEVICE static inline float fg_math_sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* The gradient from the forward output y: dy (y (1 - y)), each product rounded. */
FG_HOST_DEVICE static inline float fg_math_sigmoid_grad(float y, float dy) {
  return dy * (y * (1.0f - y));
}

/* The accumulating form: dx + the gradient above. */
FG_HOST_DEVICE static inline float fg_math_sigmoid_grad_acc(float y, float dy, float dx) {
  return dx + fg_math_sigmoid_grad(y, dy);
}

/* x1 x2. */
FG_HOST_DEVICE static inline float fg_math_mul(float x1, float x2) { return x1 * x2; }

/* y + x1 x2: the product rounded, then the sum (no fused multiply-add). */
FG_HOST_DEVICE static inline float fg_math_mul_acc(float x1, float x2, float y) { return y + x1 * x2; }

#endif
