/* Engine ops: the validating entry points every layer and method calls.
 *
 * Each entry checks ranks, extents, dtypes (f32 unless noted) and that all tensors live on one
 * device, records a message naming the op, the argument and the shapes when they do not, and then
 * dispatches to that device's backend table (engine/backend/backend.h, which documents each op's
 * arithmetic). Optional tensors may be NULL where noted there. Owns nothing. */
#ifndef FG_OPS_H
#define FG_OPS_H

#include "engine/backend/backend.h"

/* The op's name ("conv2d_forward", ...). */
const char *fg_op_name(fg_op op);
/* Whether the backend registered for `device` (available or not) can run the call q describes:
 * its table has the op's entry and its `supports` hook, if any, accepts the shapes. FG_OK, or
 * FG_ERR_UNSUPPORTED naming the op, the shapes and the backend (FG_ERR_NO_DEVICE when no backend
 * is registered for the device). The planner asks this for every op of a plan. */
fg_status fg_op_supported(fg_device device, const fg_op_query *q);

/* Conv output extent: floor((in + 2 pad - k) / stride) + 1. */
int64_t fg_conv_out_extent(int64_t in, int k, int stride, int pad);

/* x [N,C,H,W], w [O,C/g,k,k] -> the least bytes of workspace the backend needs for this
 * convolution. */
fg_status fg_conv2d_workspace(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                              size_t *bytes);
/* The same, for a plan that may use up to `limit` bytes: the bytes of the fastest plan the
 * backend has within max(least, limit) (the least where it has nothing faster). The three calls
 * run the plan their workspace's size allows, so a caller that gives them this many bytes gets
 * this plan. */
fg_status fg_conv2d_workspace_within(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                                     size_t limit, size_t *bytes);
/* x [N,C,H,W], w [O,C/g,kh,kw], bias [O] | NULL, y [N,O,Ho,Wo]. */
fg_status fg_conv2d_forward(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                            const fg_tensor *bias, fg_tensor *y, fg_workspace ws);
/* dy [N,O,Ho,Wo], w [O,C/g,kh,kw], dx [N,C,H,W]. */
fg_status fg_conv2d_backward_data(const fg_conv_desc *d, const fg_tensor *dy, const fg_tensor *w,
                                  fg_tensor *dx, int accumulate, fg_workspace ws);
/* x [N,C,H,W], dy [N,O,Ho,Wo], dw [O,C/g,kh,kw], dbias [O] | NULL. */
fg_status fg_conv2d_backward_filter(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *dy,
                                    fg_tensor *dw, fg_tensor *dbias, fg_workspace ws);

/* x [N,I], w [O,I], bias [O] | NULL, y [N,O]. */
fg_status fg_linear_forward(const fg_tensor *x, const fg_tensor *w, const fg_tensor *bias,
                            fg_tensor *y);
/* dy [N,O], w [O,I], dx [N,I]. */
fg_status fg_linear_backward_data(const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                  int accumulate);
/* x [N,I], dy [N,O], dw [O,I] | NULL, dbias [O] | NULL. */
fg_status fg_linear_backward_params(const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                    fg_tensor *dbias);

/* x, y [N,C,H,W] or [N,C]; gamma, beta, save_mean, save_invstd, running_mean, running_var [C];
 * running_* both NULL or both set. */
fg_status fg_bn_forward_train(const fg_tensor *x, const fg_tensor *gamma, const fg_tensor *beta,
                              fg_tensor *y, fg_tensor *save_mean, fg_tensor *save_invstd,
                              fg_tensor *running_mean, fg_tensor *running_var, float momentum,
                              float eps);
fg_status fg_bn_forward_eval(const fg_tensor *x, const fg_tensor *gamma, const fg_tensor *beta,
                             const fg_tensor *running_mean, const fg_tensor *running_var, float eps,
                             fg_tensor *y);
/* dy, x, dx [N,C,H,W] or [N,C]; gamma, save_mean, save_invstd, dgamma, dbeta [C]. */
fg_status fg_bn_backward(const fg_tensor *dy, const fg_tensor *x, const fg_tensor *gamma,
                         const fg_tensor *save_mean, const fg_tensor *save_invstd, fg_tensor *dx,
                         fg_tensor *dgamma, fg_tensor *dbeta, int accumulate);

/* Elementwise: all tensors have equal numel. */
fg_status fg_relu_forward(const fg_tensor *x, fg_tensor *y);
fg_status fg_relu_backward(const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx, int accumulate);
fg_status fg_add(const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y);
fg_status fg_axpy(float alpha, const fg_tensor *x, fg_tensor *y);
fg_status fg_scale(float alpha, const fg_tensor *x, fg_tensor *y);
fg_status fg_copy(const fg_tensor *x, fg_tensor *y);
fg_status fg_fill(fg_tensor *y, float value);
/* 0 <= p < 1. */
fg_status fg_dropout_forward(const fg_tensor *x, fg_tensor *y, float p, uint64_t key);
fg_status fg_dropout_backward(const fg_tensor *dy, fg_tensor *dx, float p, uint64_t key,
                              int accumulate);
/* y = sigmoid(x); in-place (x == y) allowed. */
fg_status fg_sigmoid_forward(const fg_tensor *x, fg_tensor *y);
/* y: the forward output; dx (=|+=) dy * y (1 - y); dx == dy allowed when !accumulate. */
fg_status fg_sigmoid_backward(const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx,
                              int accumulate);
/* y (=|+=) x1 * x2; the gradient of a product to x1 is fg_mul(dy, x2, dx1, accumulate) (and to
 * x2 likewise). y may be x1 or x2 when !accumulate. */
fg_status fg_mul(const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y, int accumulate);

/* x [N,C,H,W], y [N,C,Ho,Wo], argmax u8 [N,C,Ho,Wo] | NULL; kernel*kernel <= 256. */
fg_status fg_maxpool_forward(const fg_pool_desc *d, const fg_tensor *x, fg_tensor *y,
                             fg_tensor *argmax);
/* dy [N,C,Ho,Wo], argmax u8 [N,C,Ho,Wo], dx [N,C,H,W]. */
fg_status fg_maxpool_backward(const fg_pool_desc *d, const fg_tensor *dy, const fg_tensor *argmax,
                              fg_tensor *dx, int accumulate);
/* x [N,C,H,W] -> y [N,C]. */
fg_status fg_avgpool_global_forward(const fg_tensor *x, fg_tensor *y);
/* dy [N,C] -> dx [N,C,H,W]. */
fg_status fg_avgpool_global_backward(const fg_tensor *dy, fg_tensor *dx, int accumulate);
/* Bilinear x2 upsampling (align_corners false; backend.h): x [N,C,H,W] -> y [N,C,Ho,Wo],
 * H, W >= 1, Ho in {2H - 1, 2H}, Wo in {2W - 1, 2W} (an odd extent crops the last row/column). */
fg_status fg_upsample2x_bilinear_forward(const fg_tensor *x, fg_tensor *y);
/* dy [N,C,Ho,Wo] -> dx [N,C,H,W] (=|+=), extents as above. */
fg_status fg_upsample2x_bilinear_backward(const fg_tensor *dy, fg_tensor *dx, int accumulate);

/* logits [N,K], labels i32 [N], class_mask f32 [K] | NULL, dlogits [N,K] | NULL; loss and correct
 * on the host. */
fg_status fg_softmax_xent(const fg_tensor *logits, const fg_tensor *labels, const fg_tensor *class_mask,
                          float weight, fg_tensor *dlogits, int accumulate, double *loss,
                          int64_t *correct);
/* student, teacher, dstudent | NULL, dteacher | NULL: [N,K]. */
fg_status fg_kl_div(const fg_kl_desc *d, const fg_tensor *student, const fg_tensor *teacher,
                    fg_tensor *dstudent, fg_tensor *dteacher, int accumulate, double *loss);
/* y, target, dy | NULL: equal numel. */
fg_status fg_mse(const fg_tensor *y, const fg_tensor *target, float weight, fg_tensor *dy,
                 int accumulate, double *loss);

/* Bytes of workspace fg_nhsic needs for a batch of m rows on `device`. */
fg_status fg_nhsic_workspace(fg_device device, int64_t m, size_t *bytes);
/* z [m, ...], x [m, ...] | NULL (then labels i32 [m] in [0, d->classes)), dz like z | NULL;
 * value on the host. See fg_backend.nhsic. */
fg_status fg_nhsic(const fg_nhsic_desc *d, const fg_tensor *z, const fg_tensor *x, const fg_tensor *labels,
                   float weight, fg_tensor *dz, int accumulate, fg_workspace ws, double *value);

/* param, grad, momentum_buf | NULL (NULL only when momentum == 0): equal numel. */
fg_status fg_sgd_step(const fg_sgd_hparams *h, fg_tensor *param, const fg_tensor *grad,
                      fg_tensor *momentum_buf);
/* param, grad, m, v: equal numel; step >= 1. */
fg_status fg_adam_step(const fg_adam_hparams *h, int64_t step, fg_tensor *param,
                       const fg_tensor *grad, fg_tensor *m, fg_tensor *v);
/* One step over a group of parameter tensors (backend.h, fg_param_group), all on one device, each
 * checked as fg_sgd_step / fg_adam_step check theirs (messages name the tensor: param[i]). */
fg_status fg_sgd_step_group(const fg_sgd_hparams *h, const fg_param_group *g);
fg_status fg_adam_step_group(const fg_adam_hparams *h, int64_t step, const fg_param_group *g);

fg_status fg_sum_squares(const fg_tensor *x, double *out);

/* Thin singular value decomposition a = u diag(s) vt (ops_linalg.c).
 *   a  [m,n] f32, m, n >= 1 (not modified)
 *   u  [m,k] f32, k = min(m,n): left singular vectors, orthonormal columns
 *   s  [k]   f32: singular values, descending, >= 0
 *   vt [k,n] f32: right singular vectors as rows, orthonormal
 * Sign rule (deterministic, the spec's flag F8): every component i is defined only up to a joint
 * sign of (u_i, v_i); the op negates both, where needed, so that the entry of largest magnitude
 * of v_i (row i of vt) is positive, the first (lowest column index) on equal magnitudes. v_i is
 * used rather than u_i because permuting the rows of `a` (say, reordering a conv's output
 * channels) permutes the rows of u only: v_i, its largest entry and the tie-break stay the same,
 * so the chosen signs do not change (up to rounding, for distinct singular values).
 * ws: at least the bytes fg_svd_workspace reports for a's shape, on a's device. a must be
 * finite (FG_ERR_NUMERIC otherwise). The CPU backend uses LAPACK's divide-and-conquer sgesdd
 * from OpenBLAS; CUDA has no entry yet (FG_ERR_UNSUPPORTED). */
fg_status fg_svd(const fg_tensor *a, fg_tensor *u, fg_tensor *s, fg_tensor *vt, fg_workspace ws);
/* Workspace bytes fg_svd needs for a [m,n] (a's data may be NULL: only its shape, dtype and
 * device are read). */
fg_status fg_svd_workspace(const fg_tensor *a, size_t *bytes);

/* Host <-> device transfers of a whole tensor (sizes must agree). */
fg_status fg_tensor_from_host(fg_tensor *dst, const void *src_host, size_t bytes);
fg_status fg_tensor_to_host(void *dst_host, const fg_tensor *src, size_t bytes);
/* dst := src byte for byte (equal dtype and element count, any shapes): host memory to a
 * device, a device to host memory, or within one device. Two different non-host devices:
 * FG_ERR_UNSUPPORTED. */
fg_status fg_tensor_transfer(fg_tensor *dst, const fg_tensor *src);

/* Waits until all work queued on `device` has finished (a backend without a synchronize entry
 * runs everything synchronously: FG_OK at once). Device work is asynchronous: timers read the
 * host clock only after this. FG_ERR_NO_DEVICE when the device has no usable backend; a failure
 * of earlier queued work may surface here, as the backend's status. */
fg_status fg_device_synchronize(fg_device device);

#endif
