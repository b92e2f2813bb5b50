/* Naive double-precision references for convolution, linear and pooling (see ref_nn.h).
 * Written for obviousness: every backward is the literal transpose of its forward loop nest. */
#include "ref/ref_nn.h"

#include <math.h>
#include <stddef.h>

int64_t fg_ref_out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  if (in + 2 * pad < k) return 0;
  return (in + 2 * pad - k) / stride + 1;
}

static void zero(double *p, int64_t count) {
  for (int64_t i = 0; i < count; i++) p[i] = 0.0;
}

/* ----------------------------------------------------------------------------------------- */
/* Convolution                                                                                */

int64_t fg_ref_conv2d_out_h(const fg_ref_conv2d_shape *s) {
  return fg_ref_out_extent(s->h, s->kh, s->stride, s->pad);
}

int64_t fg_ref_conv2d_out_w(const fg_ref_conv2d_shape *s) {
  return fg_ref_out_extent(s->w, s->kw, s->stride, s->pad);
}

/* Index helpers for the dense NCHW / OIHW layouts. */
static int64_t at4(int64_t d1, int64_t d2, int64_t d3, int64_t i0, int64_t i1, int64_t i2,
                   int64_t i3) {
  return ((i0 * d1 + i1) * d2 + i2) * d3 + i3;
}

/* Calls visit(...) for every multiply of the convolution: output element (b, oc, oy, ox), input
 * element (b, ic, iy, ix) inside the image, and weight element (oc, ci, ky, kx). Each op below is
 * this one loop nest with a different body, which is what makes them transposes of each other. */
typedef struct conv_term {
  int64_t y_index, x_index, w_index, oc;
} conv_term;

typedef void (*conv_visit)(const conv_term *t, void *arg);

static void conv_for_each_term(const fg_ref_conv2d_shape *s, conv_visit visit, void *arg) {
  const int64_t ho = fg_ref_conv2d_out_h(s), wo = fg_ref_conv2d_out_w(s);
  const int64_t cg = s->c / s->groups, og = s->o / s->groups;
  for (int64_t b = 0; b < s->n; b++)
    for (int64_t oc = 0; oc < s->o; oc++) {
      const int64_t g = oc / og;
      for (int64_t oy = 0; oy < ho; oy++)
        for (int64_t ox = 0; ox < wo; ox++)
          for (int64_t ci = 0; ci < cg; ci++)
            for (int64_t ky = 0; ky < s->kh; ky++)
              for (int64_t kx = 0; kx < s->kw; kx++) {
                const int64_t iy = oy * s->stride - s->pad + ky;
                const int64_t ix = ox * s->stride - s->pad + kx;
                if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue; /* zero padding */
                conv_term t;
                t.y_index = at4(s->o, ho, wo, b, oc, oy, ox);
                t.x_index = at4(s->c, s->h, s->w, b, g * cg + ci, iy, ix);
                t.w_index = at4(cg, s->kh, s->kw, oc, ci, ky, kx);
                t.oc = oc;
                visit(&t, arg);
              }
    }
}

typedef struct conv_buffers {
  const double *x, *w, *dy;
  double *y, *dx, *dw;
} conv_buffers;

static void forward_term(const conv_term *t, void *arg) {
  conv_buffers *p = arg;
  p->y[t->y_index] += p->x[t->x_index] * p->w[t->w_index];
}

static void backward_data_term(const conv_term *t, void *arg) {
  conv_buffers *p = arg;
  p->dx[t->x_index] += p->dy[t->y_index] * p->w[t->w_index];
}

static void backward_filter_term(const conv_term *t, void *arg) {
  conv_buffers *p = arg;
  p->dw[t->w_index] += p->dy[t->y_index] * p->x[t->x_index];
}

void fg_ref_conv2d_forward(const fg_ref_conv2d_shape *s, const double *x, const double *w,
                           const double *bias, double *y) {
  const int64_t ho = fg_ref_conv2d_out_h(s), wo = fg_ref_conv2d_out_w(s);
  for (int64_t b = 0; b < s->n; b++)
    for (int64_t oc = 0; oc < s->o; oc++)
      for (int64_t i = 0; i < ho * wo; i++)
        y[(b * s->o + oc) * ho * wo + i] = bias ? bias[oc] : 0.0;
  conv_buffers p = {.x = x, .w = w, .y = y};
  conv_for_each_term(s, forward_term, &p);
}

void fg_ref_conv2d_backward_data(const fg_ref_conv2d_shape *s, const double *dy, const double *w,
                                 double *dx, int accumulate) {
  if (!accumulate) zero(dx, s->n * s->c * s->h * s->w);
  conv_buffers p = {.dy = dy, .w = w, .dx = dx};
  conv_for_each_term(s, backward_data_term, &p);
}

void fg_ref_conv2d_backward_filter(const fg_ref_conv2d_shape *s, const double *x,
                                   const double *dy, double *dw, double *dbias) {
  zero(dw, s->o * (s->c / s->groups) * s->kh * s->kw);
  conv_buffers p = {.x = x, .dy = dy, .dw = dw};
  conv_for_each_term(s, backward_filter_term, &p);
  if (dbias) {
    const int64_t hw = fg_ref_conv2d_out_h(s) * fg_ref_conv2d_out_w(s);
    for (int64_t oc = 0; oc < s->o; oc++) {
      double sum = 0.0;
      for (int64_t b = 0; b < s->n; b++)
        for (int64_t i = 0; i < hw; i++) sum += dy[(b * s->o + oc) * hw + i];
      dbias[oc] = sum;
    }
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Linear                                                                                     */

void fg_ref_linear_forward(int64_t n, int64_t in, int64_t out, const double *x, const double *w,
                           const double *bias, double *y) {
  for (int64_t b = 0; b < n; b++)
    for (int64_t o = 0; o < out; o++) {
      double sum = bias ? bias[o] : 0.0;
      for (int64_t i = 0; i < in; i++) sum += x[b * in + i] * w[o * in + i];
      y[b * out + o] = sum;
    }
}

void fg_ref_linear_backward_data(int64_t n, int64_t in, int64_t out, const double *dy,
                                 const double *w, double *dx, int accumulate) {
  for (int64_t b = 0; b < n; b++)
    for (int64_t i = 0; i < in; i++) {
      double sum = 0.0;
      for (int64_t o = 0; o < out; o++) sum += dy[b * out + o] * w[o * in + i];
      dx[b * in + i] = accumulate ? dx[b * in + i] + sum : sum;
    }
}

void fg_ref_linear_backward_params(int64_t n, int64_t in, int64_t out, const double *x,
                                   const double *dy, double *dw, double *dbias) {
  if (dw)
    for (int64_t o = 0; o < out; o++)
      for (int64_t i = 0; i < in; i++) {
        double sum = 0.0;
        for (int64_t b = 0; b < n; b++) sum += dy[b * out + o] * x[b * in + i];
        dw[o * in + i] = sum;
      }
  if (dbias)
    for (int64_t o = 0; o < out; o++) {
      double sum = 0.0;
      for (int64_t b = 0; b < n; b++) sum += dy[b * out + o];
      dbias[o] = sum;
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Max pooling                                                                                */

int64_t fg_ref_pool_out_h(const fg_ref_pool_shape *s) {
  return fg_ref_out_extent(s->h, s->kernel, s->stride, s->pad);
}

int64_t fg_ref_pool_out_w(const fg_ref_pool_shape *s) {
  return fg_ref_out_extent(s->w, s->kernel, s->stride, s->pad);
}

void fg_ref_maxpool_forward(const fg_ref_pool_shape *s, const double *x, double *y,
                            uint8_t *argmax) {
  const int64_t ho = fg_ref_pool_out_h(s), wo = fg_ref_pool_out_w(s);
  for (int64_t plane = 0; plane < s->n * s->c; plane++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        int found = 0;
        double best = 0.0;
        int64_t best_pos = 0;
        for (int64_t ky = 0; ky < s->kernel; ky++)
          for (int64_t kx = 0; kx < s->kernel; kx++) {
            const int64_t iy = oy * s->stride - s->pad + ky;
            const int64_t ix = ox * s->stride - s->pad + kx;
            if (iy < 0 || iy >= s->h || ix < 0 || ix >= s->w) continue; /* padding never wins */
            const double v = x[(plane * s->h + iy) * s->w + ix];
            if (!found || v > best) { /* strict: ties keep the first maximum */
              found = 1;
              best = v;
              best_pos = ky * s->kernel + kx;
            }
          }
        const int64_t o = (plane * ho + oy) * wo + ox;
        y[o] = best;
        if (argmax) argmax[o] = (uint8_t)best_pos;
      }
}

void fg_ref_maxpool_backward(const fg_ref_pool_shape *s, const double *dy, const uint8_t *argmax,
                             double *dx, int accumulate) {
  const int64_t ho = fg_ref_pool_out_h(s), wo = fg_ref_pool_out_w(s);
  if (!accumulate) zero(dx, s->n * s->c * s->h * s->w);
  for (int64_t plane = 0; plane < s->n * s->c; plane++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        const int64_t o = (plane * ho + oy) * wo + ox;
        const int64_t iy = oy * s->stride - s->pad + argmax[o] / s->kernel;
        const int64_t ix = ox * s->stride - s->pad + argmax[o] % s->kernel;
        dx[(plane * s->h + iy) * s->w + ix] += dy[o];
      }
}

/* ----------------------------------------------------------------------------------------- */
/* Global average pooling                                                                     */

void fg_ref_avgpool_global_forward(int64_t n, int64_t c, int64_t h, int64_t w, const double *x,
                                   double *y) {
  for (int64_t plane = 0; plane < n * c; plane++) {
    double sum = 0.0;
    for (int64_t i = 0; i < h * w; i++) sum += x[plane * h * w + i];
    y[plane] = sum / (double)(h * w);
  }
}

void fg_ref_avgpool_global_backward(int64_t n, int64_t c, int64_t h, int64_t w, const double *dy,
                                    double *dx, int accumulate) {
  for (int64_t plane = 0; plane < n * c; plane++)
    for (int64_t i = 0; i < h * w; i++) {
      const double g = dy[plane] / (double)(h * w);
      dx[plane * h * w + i] = accumulate ? dx[plane * h * w + i] + g : g;
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Bilinear x2 upsampling                                                                     */

/* The two source indices and weights of output o along an axis of input extent n. */
static void upsample_taps(int64_t o, int64_t n, int64_t i[2], double wt[2]) {
  double s = (o + 0.5) / 2.0 - 0.5;
  if (s < 0.0) s = 0.0;
  i[0] = (int64_t)floor(s);
  i[1] = i[0] + 1 < n ? i[0] + 1 : n - 1;
  wt[1] = s - (double)i[0];
  wt[0] = 1.0 - wt[1];
}

void fg_ref_upsample2x_bilinear_forward(int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho,
                                        int64_t wo, const double *x, double *y) {
  for (int64_t p = 0; p < n * c; p++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        int64_t iy[2], ix[2];
        double wy[2], wx[2], v = 0.0;
        upsample_taps(oy, h, iy, wy);
        upsample_taps(ox, w, ix, wx);
        for (int a = 0; a < 2; a++)
          for (int b = 0; b < 2; b++) v += wy[a] * wx[b] * x[(p * h + iy[a]) * w + ix[b]];
        y[(p * ho + oy) * wo + ox] = v;
      }
}

void fg_ref_upsample2x_bilinear_backward(int64_t n, int64_t c, int64_t h, int64_t w, int64_t ho,
                                         int64_t wo, const double *dy, double *dx, int accumulate) {
  if (!accumulate) zero(dx, n * c * h * w);
  for (int64_t p = 0; p < n * c; p++)
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        int64_t iy[2], ix[2];
        double wy[2], wx[2];
        upsample_taps(oy, h, iy, wy);
        upsample_taps(ox, w, ix, wx);
        for (int a = 0; a < 2; a++)
          for (int b = 0; b < 2; b++) dx[(p * h + iy[a]) * w + ix[b]] += wy[a] * wx[b] * dy[(p * ho + oy) * wo + ox];
      }
}
