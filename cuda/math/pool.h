/* The arithmetic of the CUDA pooling kernels (cuda/pool.cu), written once for the device and for
 * the host tests (tests/cpu/test_cuda_math_pool.c): one max-pool window (its maximum and argmax
 * with the CPU's rules), the argmax position to input index mapping and its validity, the windows
 * that cover one input element (the gather of the backward), and one plane's global average and
 * its gradient. The CPU backend (cpu/pool.c) is the reference for the arithmetic and its order:
 *   max pool:  the window's positions inside the input only (padding never wins), row-major,
 *              a strict comparison (ties keep the first maximum; the first position inside the
 *              input starts the search); argmax = ky * kernel + kx;
 *   backward:  dx (=|+=) the dy of every window whose argmax is that element, added in the
 *              windows' row-major order (the CPU scatters in that order, so the sums agree bit
 *              for bit); argmax values outside the window or pointing into the padding select
 *              nothing and are counted as bad;
 *   avg pool:  the plane's values summed in order in double, divided by H*W in double, rounded;
 *              its gradient dy / (H*W) in double, rounded.
 * Planes are row-major [h, w] (input) and [ho, wo] (pooled). Plain C11 / C++14 common subset,
 * FG_HOST_DEVICE; no allocation; owns nothing. */
#ifndef FG_CUDA_MATH_POOL_H
#define FG_CUDA_MATH_POOL_H

#include <stdint.h>

#include "engine/base/host_device.h"

/* Extents of one max-pooling call (every window overlaps the input: pad <= kernel / 2, which
 * the entry point enforces). */
typedef struct fg_pool_geom {
  int64_t h, w;   /* input plane */
  int64_t ho, wo; /* pooled plane */
  int64_t kernel, stride, pad;
} fg_pool_geom;

/* Window offsets k in [*lo, *hi) whose input index start + k lies inside [0, extent). */
FG_HOST_DEVICE static inline void fg_pool_window_range(int64_t start, int64_t kernel, int64_t extent,
                                                       int64_t *lo, int64_t *hi) {
  *lo = start < 0 ? -start : 0;
  *hi = extent - start < kernel ? extent - start : kernel;
}

/* The maximum of window (oy, ox) of one input plane, and in *pos its position ky * kernel + kx
 * (the first maximum, over input positions only). */
FG_HOST_DEVICE static inline float fg_maxpool_window(const fg_pool_geom *g, const float *plane,
                                                     int64_t oy, int64_t ox, int *pos) {
  const int64_t y0 = oy * g->stride - g->pad, x0 = ox * g->stride - g->pad;
  int64_t ky_lo, ky_hi, kx_lo, kx_hi;
  fg_pool_window_range(y0, g->kernel, g->h, &ky_lo, &ky_hi);
  fg_pool_window_range(x0, g->kernel, g->w, &kx_lo, &kx_hi);
  float best = plane[(y0 + ky_lo) * g->w + x0 + kx_lo];
  int64_t best_pos = ky_lo * g->kernel + kx_lo;
  for (int64_t ky = ky_lo; ky < ky_hi; ky++) {
    const float *row = plane + (y0 + ky) * g->w + x0;
    for (int64_t kx = kx_lo; kx < kx_hi; kx++)
      if (row[kx] > best) { /* strict: ties keep the first maximum */
        best = row[kx];
        best_pos = ky * g->kernel + kx;
      }
  }
  *pos = (int)best_pos;
  return best;
}

/* The input element (*iy, *ix) that argmax value `a` of window (oy, ox) designates. Returns 1
 * when it is one of the window's positions inside the input, 0 when it is not (a >= kernel^2,
 * or a position in the padding): such a value cannot come from the forward and is counted bad. */
FG_HOST_DEVICE static inline int fg_maxpool_argmax_input(const fg_pool_geom *g, int64_t oy,
                                                         int64_t ox, int64_t a, int64_t *iy,
                                                         int64_t *ix) {
  *iy = oy * g->stride - g->pad + a / g->kernel;
  *ix = ox * g->stride - g->pad + a % g->kernel;
  return a < g->kernel * g->kernel && *iy >= 0 && *iy < g->h && *ix >= 0 && *ix < g->w;
}

/* The pooled indices o in [*lo, *hi) (of `out` along one axis) whose window covers input index
 * i: o stride - pad <= i < o stride - pad + kernel. */
FG_HOST_DEVICE static inline void fg_pool_covering(int64_t i, int64_t out, int64_t kernel,
                                                   int64_t stride, int64_t pad, int64_t *lo,
                                                   int64_t *hi) {
  const int64_t past = i + pad - kernel; /* o stride must exceed it */
  const int64_t last = (i + pad) / stride; /* i + pad >= 0 */
  *lo = past < 0 ? 0 : past / stride + 1;
  *hi = last + 1 < out ? last + 1 : out;
}

/* The gradient of input element (iy, ix) of one plane: `init` (0 or the dx it accumulates onto)
 * plus the dy of every window that covers it and whose argmax is it, in the windows' row-major
 * order. dy and argmax: the plane's [ho, wo]. */
FG_HOST_DEVICE static inline float fg_maxpool_gather(const fg_pool_geom *g, const float *dy,
                                                     const uint8_t *argmax, int64_t iy, int64_t ix,
                                                     float init) {
  int64_t oy_lo, oy_hi, ox_lo, ox_hi;
  fg_pool_covering(iy, g->ho, g->kernel, g->stride, g->pad, &oy_lo, &oy_hi);
  fg_pool_covering(ix, g->wo, g->kernel, g->stride, g->pad, &ox_lo, &ox_hi);
  float acc = init;
  for (int64_t oy = oy_lo; oy < oy_hi; oy++) {
    const int64_t ky = iy - (oy * g->stride - g->pad);
    for (int64_t ox = ox_lo; ox < ox_hi; ox++) {
      const int64_t kx = ix - (ox * g->stride - g->pad);
      if ((int64_t)argmax[oy * g->wo + ox] == ky * g->kernel + kx) acc += dy[oy * g->wo + ox];
    }
  }
  return acc;
}

/* The mean of one plane of hw values: summed in order in double, divided in double, rounded. */
FG_HOST_DEVICE static inline float fg_avgpool_plane_mean(const float *plane, int64_t hw) {
  double sum = 0.0;
  for (int64_t i = 0; i < hw; i++) sum += plane[i];
  return (float)(sum / (double)hw);
}

/* The gradient every element of a plane receives from the plane's dy: dy / hw in double,
 * rounded (the kernel writes it, or adds it to dx in float). */
FG_HOST_DEVICE static inline float fg_avgpool_grad(float dy, int64_t hw) {
  return (float)((double)dy / (double)hw);
}

#endif
