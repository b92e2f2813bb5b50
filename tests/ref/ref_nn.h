/* Naive double-precision reference implementations of the convolution, linear and pooling ops.
 *
 * These are test oracles (the op suite in tests/ops, run on every backend): each function is the
 * literal definition of its op written as plain loops, with no blocking, threading or clever
 * indexing, so that it can be checked by reading. Buffers are dense row-major `double` arrays (NCHW for
 * images, (out, in) for linear weights, PyTorch's layouts) whose shapes are passed explicitly.
 * The caller guarantees consistent shapes (the engine's entry points in engine/backend/ops.h
 * are where shapes are validated); nothing here allocates or fails. Owns nothing.
 *
 * Arithmetic matches engine/backend/backend.h exactly:
 * - conv2d: zero padding, dilation 1, square stride/pad, `groups` dividing C and O;
 *   Ho = floor((H + 2 pad - kh) / stride) + 1, likewise Wo.
 * - linear: y = x w^T + b.
 * - max pool: floor output size, padding never wins, argmax = row-major position ky*k+kx of
 *   the FIRST maximum inside the window.
 * - global average pool: mean over H*W. */
#ifndef FG_REF_NN_H
#define FG_REF_NN_H

#include <stdint.h>

/* floor((in + 2 pad - k) / stride) + 1; 0 when the kernel does not fit the padded input. */
int64_t fg_ref_out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad);

/* ----------------------------------------------------------------------------------------- */
/* Convolution. x [n,c,h,w], w [o, c/groups, kh, kw], bias [o], y [n,o,ho,wo] with ho, wo from
 * fg_ref_conv2d_out_h / _out_w. */

typedef struct fg_ref_conv2d_shape {
  int64_t n, c, h, w; /* input */
  int64_t o;          /* output channels */
  int64_t kh, kw;     /* kernel */
  int64_t stride, pad, groups;
} fg_ref_conv2d_shape;

int64_t fg_ref_conv2d_out_h(const fg_ref_conv2d_shape *s);
int64_t fg_ref_conv2d_out_w(const fg_ref_conv2d_shape *s);

/* y := conv(x, w) + bias; bias may be NULL. */
void fg_ref_conv2d_forward(const fg_ref_conv2d_shape *s, const double *x, const double *w,
                           const double *bias, double *y);
/* dy [n,o,ho,wo], w -> dx [n,c,h,w]: dx := (accumulate = 0) or += (accumulate = 1) the gradient
 * of <y, dy> with respect to x. */
void fg_ref_conv2d_backward_data(const fg_ref_conv2d_shape *s, const double *dy, const double *w,
                                 double *dx, int accumulate);
/* x, dy -> dw [o, c/groups, kh, kw] := gradient of <y, dy> with respect to w (summed over the
 * batch); dbias [o] := sum of dy over n, ho, wo (when not NULL). */
void fg_ref_conv2d_backward_filter(const fg_ref_conv2d_shape *s, const double *x,
                                   const double *dy, double *dw, double *dbias);

/* ----------------------------------------------------------------------------------------- */
/* Linear. x [n, in], w [out, in], bias [out], y [n, out]. */

/* y := x w^T + bias; bias may be NULL. */
void fg_ref_linear_forward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                           const double *bias, double *y);
/* dx [n, in] (:= or +=) dy w, with dy [n, out]. */
void fg_ref_linear_backward_data(int64_t n, int64_t in, int64_t out, const double *dy,
                                 const double *w, double *dx, int accumulate);
/* dw [out, in] := dy^T x and dbias [out] := column sums of dy; each skipped when NULL. */
void fg_ref_linear_backward_params(int64_t n, int64_t in, int64_t out, const double *x,
                                   const double *dy, double *dw, double *dbias);

/* ----------------------------------------------------------------------------------------- */
/* Max pooling. x [n,c,h,w], y and argmax [n,c,ho,wo]. Requires every window to overlap the
 * input (true when pad <= kernel / 2, which the engine enforces). */

typedef struct fg_ref_pool_shape {
  int64_t n, c, h, w;
  int64_t kernel, stride, pad;
} fg_ref_pool_shape;

int64_t fg_ref_pool_out_h(const fg_ref_pool_shape *s);
int64_t fg_ref_pool_out_w(const fg_ref_pool_shape *s);

/* y := window maxima; argmax (when not NULL) := position ky*kernel+kx of the first maximum. */
void fg_ref_maxpool_forward(const fg_ref_pool_shape *s, const double *x, double *y,
                            uint8_t *argmax);
/* dx (:= or +=) dy scattered to the argmax positions, summing where windows overlap. argmax
 * must point inside the input (as fg_ref_maxpool_forward's does). */
void fg_ref_maxpool_backward(const fg_ref_pool_shape *s, const double *dy, const uint8_t *argmax,
                             double *dx, int accumulate);

/* ----------------------------------------------------------------------------------------- */
/* Global average pooling. x, dx [n,c,h,w]; y, dy [n,c]. */

/* y[n,c] := mean of x[n,c,:,:]. */
void fg_ref_avgpool_global_forward(int64_t n, int64_t c, int64_t h, int64_t w, const double *x,
                                   double *y);
/* dx[n,c,i,j] (:= or +=) dy[n,c] / (h w). */
void fg_ref_avgpool_global_backward(int64_t n, int64_t c, int64_t h, int64_t w, const double *dy,
                                    double *dx, int accumulate);

/* ----------------------------------------------------------------------------------------- */
/* Bilinear x2 upsampling, align_corners false (PyTorch's nn.Upsample(scale_factor=2,
 * mode='bilinear')), cropped to ho x wo (ho <= 2h, wo <= 2w). x, dx [n,c,h,w]; y, dy [n,c,ho,wo]. */

/* Output (oy, ox) interpolates x at the source point s = max(0, (o + 1/2) / 2 - 1/2) of each
 * axis between floor(s) and floor(s) + 1 (clamped to the last row/column). */
void fg_ref_upsample2x_bilinear_forward(int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho,
                                        int64_t wo, const double *x, double *y);
/* The transpose, as a scatter over the outputs: dx (:= or +=). */
void fg_ref_upsample2x_bilinear_backward(int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho,
                                         int64_t wo, const double *dy, double *dx, int accumulate);

#endif
