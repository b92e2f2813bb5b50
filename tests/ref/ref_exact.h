/* Float32 references of the bitwise class (../shared/spec/cuda.md, "Testing"): the ops whose
 * result every backend must reproduce bit for bit, written as plain loops doing the same float
 * arithmetic in the same order as the formulas documented in engine/backend/backend.h (the CPU
 * backend computes exactly these; a CUDA kernel built with --fmad=false computes them too).
 * Test oracles only: no threading, no allocation; owns nothing.
 *
 * relu, add, scale, copy, fill and max pooling need no float reference: each output is one
 * correctly rounded operation on float inputs (or a selection of one), and binary64 carries more
 * than 2 * 24 + 2 bits, so rounding the double reference's result to float gives the float
 * result exactly (double rounding is innocuous for +, -, *, / and sqrt at that precision). */
#ifndef FG_REF_EXACT_H
#define FG_REF_EXACT_H

#include <stdint.h>

#include "engine/backend/backend.h"

/* y[i] = y[i] + alpha * x[i] (two roundings: the product, then the sum). */
void fg_ref_f32_axpy(float alpha, const float *x, int64_t count, float *y);
/* out[i] (=|+=) keep_i ? in[i] / (1 - p) : 0, keep_i = fg_rng_uniform_at(key, i) >= p, with
 * 1 - p rounded to float first. */
void fg_ref_f32_dropout(const float *in, int64_t count, float p, uint64_t key, int accumulate,
                        float *out);
/* dx[plane, i] (=|+=) dy[plane] / (float)hw. */
void fg_ref_f32_avgpool_global_backward(const float *dy, int64_t planes, int64_t hw, int accumulate,
                                        float *dx);
/* One SGD step as fg_sgd_hparams documents it, in float: d = g + wd p; with momentum buf =
 * momentum buf + (1 - dampening) d (1 - dampening rounded to float), update = nesterov ? d +
 * momentum buf : buf; p = p - lr update. Without momentum the buffer is not read or written. */
void fg_ref_f32_sgd_step(const fg_sgd_hparams *h, int64_t count, float *param, const float *grad,
                         float *momentum_buf);
/* One Adam step as fg_adam_hparams documents it: g' = g + wd p; m = beta1 m + (1 - beta1) g';
 * v = beta2 v + (1 - beta2) g'^2; p = p - (lr / bc1) (m / (sqrt(v) / sqrt(bc2) + eps)), with the
 * bias corrections bc = 1 - beta^step computed in double (as PyTorch does on the host) and
 * lr / bc1, sqrt(bc2), 1 - beta1 and 1 - beta2 rounded to float once. */
void fg_ref_f32_adam_step(const fg_adam_hparams *h, int64_t step, int64_t count, float *param,
                          const float *grad, float *m, float *v);

#endif
