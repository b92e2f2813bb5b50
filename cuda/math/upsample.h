/* The arithmetic of bilinear x2 upsampling (align_corners false, as PyTorch's
 * nn.Upsample(scale_factor=2, mode='bilinear')), written once for the CUDA kernels
 * (cuda/pool.cu), the CPU backend (cpu/pool.c) and the host tests
 * (tests/cpu/test_cuda_math_upsample.c).
 *
 * Along one axis of input extent n (output extent 2n), output o reads the source coordinate
 * s = max(0, (o + 0.5) / 2 - 0.5) = max(0, o / 2 - 1/4): i0 = floor(s), i1 = min(i0 + 1, n - 1),
 * weights w0 = 1 - (s - i0) and w1 = s - i0. So o = 0 reads input 0 with weight 1, an even o = 2k
 * (k >= 1) reads k - 1 and k with 1/4 and 3/4, an odd o = 2k + 1 reads k and min(k + 1, n - 1)
 * with 3/4 and 1/4. The weights are exact in float, so the only roundings are the products and
 * sums, in the order written here; the GPU (built with --fmad=false) and the CPU (C11, no
 * contraction) compute the same bits.
 *
 * The output may also drop the last row and/or column of the 2n map (extent 2n - 1, the map of
 * an odd feature map whose half was rounded up): the coordinate map does not depend on the
 * output extent, so that is a crop.
 *
 * Input element i is read by the outputs o in [2i - 1, 2i + 2] (clipped to [0, output extent)),
 * and no others; the backward gathers over them (16 candidates in 2-D) in row-major order, so every
 * dx element is one thread's fixed-order sum: deterministic, no atomics.
 *
 * Planes are row-major: input [h, w], output [ho, wo] with ho in {2h - 1, 2h}, wo in {2w - 1, 2w}. Plain C11 / C++14 common subset,
 * FG_HOST_DEVICE; no allocation; owns nothing. */
#ifndef FG_CUDA_MATH_UPSAMPLE_H
#define FG_CUDA_MATH_UPSAMPLE_H

#include <stdint.h>

#include "engine/base/host_device.h"

/* The two inputs output o reads along an axis of input extent n, and their weights. */
typedef struct fg_upsample_tap {
  int64_t i0, i1;
  float w0, w1;
} fg_upsample_tap;

FG_HOST_DEVICE static inline fg_upsample_tap fg_upsample2x_tap(int64_t o, int64_t n) {
  fg_upsample_tap t;
  if (o == 0) {
    t.i0 = 0, t.w1 = 0.0f;
  } else if (o % 2 == 0) {
    t.i0 = o / 2 - 1, t.w1 = 0.75f;
  } else {
    t.i0 = o / 2, t.w1 = 0.25f;
  }
  t.i1 = t.i0 + 1 < n ? t.i0 + 1 : n - 1;
  t.w0 = 1.0f - t.w1;
  return t;
}

/* The weight with which output o reads input i along the axis (0 when it does not read it; the
 * sum of both weights, 1, where the clamped taps coincide). */
FG_HOST_DEVICE static inline float fg_upsample2x_weight(int64_t o, int64_t i, int64_t n) {
  const fg_upsample_tap t = fg_upsample2x_tap(o, n);
  return (t.i0 == i ? t.w0 : 0.0f) + (t.i1 == i ? t.w1 : 0.0f);
}

/* Output (oy, ox) of one plane x [h, w] (oy < 2h, ox < 2w). */
FG_HOST_DEVICE static inline float fg_upsample2x_value(const float *x, int64_t h, int64_t w, int64_t oy,
                                                       int64_t ox) {
  const fg_upsample_tap ty = fg_upsample2x_tap(oy, h), tx = fg_upsample2x_tap(ox, w);
  const float *r0 = x + ty.i0 * w, *r1 = x + ty.i1 * w;
  return ty.w0 * (tx.w0 * r0[tx.i0] + tx.w1 * r0[tx.i1]) + ty.w1 * (tx.w0 * r1[tx.i0] + tx.w1 * r1[tx.i1]);
}

/* The gradient of input (iy, ix) of one plane from dy [ho, wo]: for each output row oy in
 * [2iy - 1, 2iy + 2] (clipped to [0, ho)), the row's sum over ox in [2ix - 1, 2ix + 2] (clipped to
 * [0, wo)) of wx dy[oy, ox], times wy, added in order (zero weights skipped). */
FG_HOST_DEVICE static inline float fg_upsample2x_grad(const float *dy, int64_t h, int64_t w, int64_t ho, int64_t wo,
                                                      int64_t iy, int64_t ix) {
  const int64_t oy_lo = 2 * iy - 1 < 0 ? 0 : 2 * iy - 1, oy_hi = 2 * iy + 2 < ho - 1 ? 2 * iy + 2 : ho - 1;
  const int64_t ox_lo = 2 * ix - 1 < 0 ? 0 : 2 * ix - 1, ox_hi = 2 * ix + 2 < wo - 1 ? 2 * ix + 2 : wo - 1;
  float acc = 0.0f;
  for (int64_t oy = oy_lo; oy <= oy_hi; oy++) {
    const float wy = fg_upsample2x_weight(oy, iy, h);
    if (wy == 0.0f) continue;
    const float *row = dy + oy * wo;
    float s = 0.0f;
    for (int64_t ox = ox_lo; ox <= ox_hi; ox++) {
      const float wx = fg_upsample2x_weight(ox, ix, w);
      if (wx != 0.0f) s += wx * row[ox];
    }
    acc += wy * s;
  }
  return acc;
}

#endif
