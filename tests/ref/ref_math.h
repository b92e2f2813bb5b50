/* Reference implementations of the math ops (batch norm, elementwise, dropout, losses,
 * optimizers, reductions) in double precision on plain host buffers with explicit sizes.
 *
 * Written for obviousness, not speed: naive loops that follow the textbook formulas (batch-norm
 * backward by the chain rule through mean and variance, loss gradients by explicit Jacobians),
 * so that they can serve as test oracles for every backend (the op suite, tests/ops).
 * Single-threaded; no allocation; owns nothing. Shapes: "x [n, c, hw]" means n*c*hw values in
 * NCHW order with hw = H*W (1 for [N,C] tensors). Outputs are assigned, never accumulated. */
#ifndef FG_REF_MATH_H
#define FG_REF_MATH_H

#include <stdint.h>

#include "engine/backend/backend.h"

/* ----------------------------------------------------------------------------------------- */
/* Batch norm                                                                                 */

/* x, y [n, c, hw]; gamma, beta, mean, invstd [c] (outputs: batch mean, 1/sqrt(biased var +
 * eps)); running_mean, running_var [c] updated with `momentum` (running_var with the unbiased
 * variance, n*hw >= 2) when not NULL. */
void fg_ref_bn_forward_train(const double *x, int64_t n, int64_t c, int64_t hw, const double *gamma,
                             const double *beta, double eps, double momentum, double *y,
                             double *mean, double *invstd, double *running_mean,
                             double *running_var);
/* x, y [n, c, hw]; gamma, beta, running_mean, running_var [c]. */
void fg_ref_bn_forward_eval(const double *x, int64_t n, int64_t c, int64_t hw, const double *gamma,
                            const double *beta, const double *running_mean,
                            const double *running_var, double eps, double *y);
/* Backward of the training forward with saved mean and invstd. dy, x, dx [n, c, hw]; gamma,
 * mean, invstd, dgamma, dbeta [c]. */
void fg_ref_bn_backward(const double *dy, const double *x, int64_t n, int64_t c, int64_t hw,
                        const double *gamma, const double *mean, const double *invstd, double *dx,
                        double *dgamma, double *dbeta);

/* ----------------------------------------------------------------------------------------- */
/* Elementwise (all buffers [count])                                                          */

void fg_ref_relu_forward(const double *x, int64_t count, double *y);
/* dx = dy * (y > 0), y being the forward output. */
void fg_ref_relu_backward(const double *y, const double *dy, int64_t count, double *dx);
void fg_ref_add(const double *x1, const double *x2, int64_t count, double *y);
/* y += alpha x. */
void fg_ref_axpy(double alpha, const double *x, int64_t count, double *y);
void fg_ref_scale(double alpha, const double *x, int64_t count, double *y);
/* Inverted dropout with the mask of fg_rng_uniform_at(key, i) >= p (p as the float the op
 * receives): y_i = keep_i ? x_i / (1 - p) : 0. Backward applies the same map to dy. */
void fg_ref_dropout_forward(const double *x, int64_t count, float p, uint64_t key, double *y);
void fg_ref_dropout_backward(const double *dy, int64_t count, float p, uint64_t key, double *dx);
/* y = 1 / (1 + exp(-x)). */
void fg_ref_sigmoid_forward(const double *x, int64_t count, double *y);
/* dx = dy * y (1 - y), y being the forward output. */
void fg_ref_sigmoid_backward(const double *y, const double *dy, int64_t count, double *dx);
/* y = x1 * x2. */
void fg_ref_mul(const double *x1, const double *x2, int64_t count, double *y);

/* ----------------------------------------------------------------------------------------- */
/* Losses                                                                                     */

/* logits [n, k], labels [n] in [0, k), class_mask [k] of 0/1 or NULL (masked logits read as 0
 * and get gradient 0); returns weight * mean_n (logsumexp(z_n) - z_n[y_n]) of the masked logits.
 * dlogits [n, k] (gradient) and correct (rows whose first argmax is the label) when not NULL. */
double fg_ref_softmax_xent(const double *logits, const int32_t *labels, const double *class_mask,
                           int64_t n, int64_t k, double weight, double *dlogits, int64_t *correct);
/* student, teacher [n, k]; returns weight * T^2 * reduce(sum_k q_k (log q_k - log p_k)) with
 * p = softmax(student / T), q = softmax(teacher / T) + teacher_eps (terms with q_k = 0 count 0).
 * dstudent, dteacher [n, k] (gradients) when not NULL. k <= 1024 (row scratch lives on the
 * stack); larger k returns NaN. */
double fg_ref_kl_div(const double *student, const double *teacher, int64_t n, int64_t k,
                     double temperature, double teacher_eps, fg_kl_reduction reduction,
                     double weight, double *dstudent, double *dteacher);
/* y, target [count]; returns weight * mean((y - target)^2); dy [count] when not NULL. */
double fg_ref_mse(const double *y, const double *target, int64_t count, double weight, double *dy);
/* nHSIC of z [m, dz] against t [m, dt] as the reference code writes it: Gaussian kernels
 * exp(-|a_i - a_j|^2 / (2 sigma^2 d)), H = I - 11^T / m as a matrix, hsic(A, B) =
 * tr(K_A H K_B H) / m^2, nHSIC = hsic(z, t) / sqrt(hsic(z, z) hsic(t, t)). scratch: 6 m^2. */
double fg_ref_nhsic(const double *z, int64_t dz, const double *t, int64_t dt, int64_t m, double sigma,
                    double *scratch);
/* The gradient of that nHSIC with respect to z, into grad [m, dz], by the chain rule written out:
 * with centred kernels Kz~ = H Kz H, Kt~ = H Kt H, a = <Kz~, Kt~>, b = |Kz~|^2, c = |Kt~|^2,
 * nHSIC = a / sqrt(b c) and d nHSIC / d Kz = G = (Kt~ - (a / b) Kz~) / sqrt(b c) (G is centred,
 * so H G H = G); Kz_ij = exp(-|z_i - z_j|^2 / s) with s = 2 sigma^2 dz gives
 * d nHSIC / d z_i = -(4 / s) sum_j G_ij Kz_ij (z_i - z_j). Returns nHSIC; when b c = 0 (a
 * centred kernel vanishes, e.g. all rows equal) returns 0 with a zero gradient, as the op
 * defines it. scratch: 6 m^2. */
double fg_ref_nhsic_grad(const double *z, int64_t dz, const double *t, int64_t dt, int64_t m,
                         double sigma, double *grad, double *scratch);

/* ----------------------------------------------------------------------------------------- */
/* Optimizers and reductions                                                                  */

/* One step as documented on fg_sgd_hparams; param, grad, momentum_buf [count] (momentum_buf
 * unused and may be NULL when momentum == 0). */
void fg_ref_sgd_step(const fg_sgd_hparams *h, int64_t count, double *param, const double *grad,
                     double *momentum_buf);
/* One step as documented on fg_adam_hparams; step >= 1; param, grad, m, v [count]. */
void fg_ref_adam_step(const fg_adam_hparams *h, int64_t step, int64_t count, double *param,
                      const double *grad, double *m, double *v);
double fg_ref_sum_squares(const double *x, int64_t count);

#endif
