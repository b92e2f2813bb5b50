/* CPU max pooling, global average pooling and bilinear x2 upsampling (whose per-element
 * arithmetic is cuda/math/upsample.h, shared with the CUDA backend), OpenMP over the N*C planes (each plane is read
 * and written by one thread, so results do not depend on the thread count). */
#include <stdint.h>
#include <string.h>

#include "cpu/nn_internal.h"
#include "cuda/math/upsample.h"

/* Extents of one pooling call: input planes [h, w], output planes [ho, wo]. */
typedef struct pool_geom {
  int64_t planes, h, w, ho, wo;
  int64_t kernel, stride, pad;
} pool_geom;

/* img: x or dx [N,C,H,W]; pooled: y, dy or argmax [N,C,Ho,Wo] (validated by the entry point). */
static pool_geom make_geom(const fg_pool_desc *d, const fg_tensor *img, const fg_tensor *pooled) {
  pool_geom g;
  g.planes = img->shape[0] * img->shape[1];
  g.h = img->shape[2];
  g.w = img->shape[3];
  g.ho = pooled->shape[2];
  g.wo = pooled->shape[3];
  g.kernel = d->kernel;
  g.stride = d->stride;
  g.pad = d->pad;
  return g;
}

/* Window offsets k in [*lo, *hi) whose input index start + k lies inside [0, extent). */
static void window_range(int64_t start, int64_t kernel, int64_t extent, int64_t *lo, int64_t *hi) {
  *lo = start < 0 ? -start : 0;
  *hi = extent - start < kernel ? extent - start : kernel;
}

static int threads_of(const fg_backend *b) { return fg_cpu_ctx_of(b)->threads; }

/* ----------------------------------------------------------------------------------------- */
/* Max pooling                                                                                */

/* One plane: the first maximum of each window over the input positions only. */
static void maxpool_plane(const pool_geom *g, const float *x, float *y, uint8_t *argmax) {
  for (int64_t oy = 0; oy < g->ho; oy++) {
    const int64_t y0 = oy * g->stride - g->pad;
    int64_t ky_lo, ky_hi;
    window_range(y0, g->kernel, g->h, &ky_lo, &ky_hi);
    for (int64_t ox = 0; ox < g->wo; ox++) {
      const int64_t x0 = ox * g->stride - g->pad;
      int64_t kx_lo, kx_hi;
      window_range(x0, g->kernel, g->w, &kx_lo, &kx_hi);
      float best = x[(y0 + ky_lo) * g->w + x0 + kx_lo];
      int64_t best_pos = ky_lo * g->kernel + kx_lo;
      for (int64_t ky = ky_lo; ky < ky_hi; ky++) {
        const float *row = x + (y0 + ky) * g->w + x0;
        for (int64_t kx = kx_lo; kx < kx_hi; kx++)
          if (row[kx] > best) { /* strict: ties keep the first maximum */
            best = row[kx];
            best_pos = ky * g->kernel + kx;
          }
      }
      y[oy * g->wo + ox] = best;
      if (argmax) argmax[oy * g->wo + ox] = (uint8_t)best_pos;
    }
  }
}

/* The common 2x2 window, stride 2, no padding, with an argmax to write: every window lies inside
 * the input, and the first-maximum rule becomes a chain of strict comparisons written as
 * selects, vectorised across the row (no branches to mispredict on the data). Same results as
 * maxpool_plane. */
static int is_2x2_stride_2(const pool_geom *g) {
  return g->kernel == 2 && g->stride == 2 && g->pad == 0;
}

enum { FG_POOL_CHUNK = 64 }; /* outputs per vectorised chunk of a row */

static void maxpool2_plane(const pool_geom *g, const float *x, float *y, uint8_t *argmax) {
  for (int64_t oy = 0; oy < g->ho; oy++) {
    const float *r0 = x + 2 * oy * g->w, *r1 = r0 + g->w;
    for (int64_t ox0 = 0; ox0 < g->wo; ox0 += FG_POOL_CHUNK) {
      const int64_t len = g->wo - ox0 < FG_POOL_CHUNK ? g->wo - ox0 : FG_POOL_CHUNK;
      float *yr = y + oy * g->wo + ox0;
      float pos[FG_POOL_CHUNK]; /* window positions as floats: the loop stays one data width */
#pragma omp simd
      for (int64_t k = 0; k < len; k++) {
        const int64_t ix = 2 * (ox0 + k);
        const float v0 = r0[ix], v1 = r0[ix + 1], v2 = r1[ix], v3 = r1[ix + 1];
        float best = v0, at = 0.0f;
        at = v1 > best ? 1.0f : at;
        best = v1 > best ? v1 : best;
        at = v2 > best ? 2.0f : at;
        best = v2 > best ? v2 : best;
        at = v3 > best ? 3.0f : at;
        best = v3 > best ? v3 : best;
        yr[k] = best;
        pos[k] = at;
      }
      uint8_t *ar = argmax + oy * g->wo + ox0;
      for (int64_t k = 0; k < len; k++) ar[k] = (uint8_t)pos[k];
    }
  }
}

/* x [N,C,H,W] -> y [N,C,Ho,Wo], argmax u8 [N,C,Ho,Wo] | NULL. */
static fg_status cpu_maxpool_forward(fg_backend *b, const fg_pool_desc *d, const fg_tensor *x,
                                     fg_tensor *y, fg_tensor *argmax) {
  const pool_geom g = make_geom(d, x, y);
  const float *xp = fg_f32(x);
  float *yp = fg_f32(y);
  uint8_t *ap = argmax ? fg_u8(argmax) : NULL;
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const int two = is_2x2_stride_2(&g);
#pragma omp parallel for num_threads(threads_of(b)) schedule(static)
  for (int64_t p = 0; p < g.planes; p++) {
    uint8_t *a = ap ? ap + p * out_plane : NULL;
    if (two && a)
      maxpool2_plane(&g, xp + p * in_plane, yp + p * out_plane, a);
    else
      maxpool_plane(&g, xp + p * in_plane, yp + p * out_plane, a);
  }
  return FG_OK;
}

/* One plane: dx += dy at each window's argmax. Returns the number of argmax values that point
 * outside the window or the input (skipped: they cannot come from maxpool_forward). */
static int64_t maxpool_plane_backward(const pool_geom *g, const float *dy, const uint8_t *argmax,
                                      float *dx) {
  int64_t bad = 0;
  for (int64_t oy = 0; oy < g->ho; oy++)
    for (int64_t ox = 0; ox < g->wo; ox++) {
      const int64_t a = argmax[oy * g->wo + ox];
      const int64_t iy = oy * g->stride - g->pad + a / g->kernel;
      const int64_t ix = ox * g->stride - g->pad + a % g->kernel;
      if (a >= g->kernel * g->kernel || iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) {
        bad++;
        continue;
      }
      dx[iy * g->w + ix] += dy[oy * g->wo + ox];
    }
  return bad;
}

/* 2x2, stride 2, no padding: every window lies inside the input, so the argmax position is an
 * address computed without branching on the data. Returns the number of argmax values above 3
 * (skipped). */
static int64_t maxpool2_plane_backward(const pool_geom *g, const float *dy, const uint8_t *argmax,
                                       float *dx, int accumulate) {
  int64_t bad = 0;
  for (int64_t oy = 0; oy < g->ho; oy++) {
    float *r0 = dx + 2 * oy * g->w, *r1 = r0 + g->w;
    const float *dr = dy + oy * g->wo;
    const uint8_t *ar = argmax + oy * g->wo;
    if (!accumulate)
      for (int64_t ix = 0; ix < 2 * g->wo; ix++) r0[ix] = 0.0f, r1[ix] = 0.0f;
    for (int64_t ox = 0; ox < g->wo; ox++) {
      const int a = ar[ox];
      if (a > 3) { /* cannot come from maxpool_forward */
        bad++;
        continue;
      }
      float *row = a < 2 ? r0 : r1; /* an address, not a branch on the data */
      row[2 * ox + (a & 1)] += dr[ox];
    }
    if (!accumulate)
      for (int64_t ix = 2 * g->wo; ix < g->w; ix++) r0[ix] = 0.0f, r1[ix] = 0.0f;
  }
  if (!accumulate)
    for (int64_t i = 2 * g->ho * g->w; i < g->h * g->w; i++) dx[i] = 0.0f;
  return bad;
}

/* dy, argmax [N,C,Ho,Wo] -> dx [N,C,H,W] (=|+=). */
static fg_status cpu_maxpool_backward(fg_backend *b, const fg_pool_desc *d, const fg_tensor *dy,
                                      const fg_tensor *argmax, fg_tensor *dx, int accumulate,
                                      fg_index_report *report) {
  const pool_geom g = make_geom(d, dx, dy);
  const float *dyp = fg_f32(dy);
  const uint8_t *ap = fg_u8(argmax);
  float *dxp = fg_f32(dx);
  const int64_t in_plane = g.h * g.w, out_plane = g.ho * g.wo;
  const int two = is_2x2_stride_2(&g);
  int64_t bad = 0;
#pragma omp parallel for num_threads(threads_of(b)) schedule(static) reduction(+ : bad)
  for (int64_t p = 0; p < g.planes; p++) {
    float *plane = dxp + p * in_plane;
    if (two) {
      bad +=
          maxpool2_plane_backward(&g, dyp + p * out_plane, ap + p * out_plane, plane, accumulate);
      continue;
    }
    if (!accumulate) memset(plane, 0, (size_t)in_plane * sizeof(float));
    bad += maxpool_plane_backward(&g, dyp + p * out_plane, ap + p * out_plane, plane);
  }
  report->bad = bad;
  report->first = -1; /* counted over threads: which one came first is not kept */
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Global average pooling                                                                     */

/* x [N,C,H,W] -> y [N,C]: plane means, summed in double. */
static fg_status cpu_avgpool_global_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  const int64_t planes = x->shape[0] * x->shape[1], hw = x->shape[2] * x->shape[3];
  const float *xp = fg_f32(x);
  float *yp = fg_f32(y);
#pragma omp parallel for num_threads(threads_of(b)) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    double sum = 0.0;
    for (int64_t i = 0; i < hw; i++) sum += xp[p * hw + i];
    yp[p] = (float)(sum / (double)hw);
  }
  return FG_OK;
}

/* dy [N,C] -> dx [N,C,H,W] (=|+=) dy / (H W). */
static fg_status cpu_avgpool_global_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx,
                                             int accumulate) {
  const int64_t planes = dx->shape[0] * dx->shape[1], hw = dx->shape[2] * dx->shape[3];
  const float *dyp = fg_f32(dy);
  float *dxp = fg_f32(dx);
#pragma omp parallel for num_threads(threads_of(b)) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float v = (float)((double)dyp[p] / (double)hw);
    float *plane = dxp + p * hw;
    if (accumulate) {
      for (int64_t i = 0; i < hw; i++) plane[i] += v;
    } else {
      for (int64_t i = 0; i < hw; i++) plane[i] = v;
    }
  }
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Bilinear x2 upsampling                                                                     */

/* x [N,C,H,W] -> y [N,C,Ho,Wo] (Ho in {2H - 1, 2H}, Wo in {2W - 1, 2W}). */
static fg_status cpu_upsample2x_bilinear_forward(fg_backend *b, const fg_tensor *x, fg_tensor *y) {
  const int64_t planes = x->shape[0] * x->shape[1], h = x->shape[2], w = x->shape[3];
  const int64_t ho = y->shape[2], wo = y->shape[3];
  const float *xp = fg_f32(x);
  float *yp = fg_f32(y);
#pragma omp parallel for num_threads(threads_of(b)) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float *in = xp + p * h * w;
    float *out = yp + p * ho * wo;
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) out[oy * wo + ox] = fg_upsample2x_value(in, h, w, oy, ox);
  }
  return FG_OK;
}

/* dy [N,C,Ho,Wo] -> dx [N,C,H,W] (=|+=), each element gathered by fg_upsample2x_grad. */
static fg_status cpu_upsample2x_bilinear_backward(fg_backend *b, const fg_tensor *dy, fg_tensor *dx,
                                                  int accumulate) {
  const int64_t planes = dx->shape[0] * dx->shape[1], h = dx->shape[2], w = dx->shape[3];
  const int64_t ho = dy->shape[2], wo = dy->shape[3];
  const float *dyp = fg_f32(dy);
  float *dxp = fg_f32(dx);
#pragma omp parallel for num_threads(threads_of(b)) schedule(static)
  for (int64_t p = 0; p < planes; p++) {
    const float *g = dyp + p * ho * wo;
    float *out = dxp + p * h * w;
    for (int64_t iy = 0; iy < h; iy++)
      for (int64_t ix = 0; ix < w; ix++) {
        const float v = fg_upsample2x_grad(g, h, w, ho, wo, iy, ix);
        out[iy * w + ix] = accumulate ? out[iy * w + ix] + v : v;
      }
  }
  return FG_OK;
}

void fg_cpu_register_pool_ops(fg_backend *b) {
  b->maxpool_forward = cpu_maxpool_forward;
  b->maxpool_backward = cpu_maxpool_backward;
  b->avgpool_global_forward = cpu_avgpool_global_forward;
  b->avgpool_global_backward = cpu_avgpool_global_backward;
  b->upsample2x_bilinear_forward = cpu_upsample2x_bilinear_forward;
  b->upsample2x_bilinear_backward = cpu_upsample2x_bilinear_backward;
}
