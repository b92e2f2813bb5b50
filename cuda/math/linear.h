/* The per-element arithmetic of the CUDA linear and convolution ops' own kernels (cuda/linear.cu,
 * cuda/conv_cudnn.cu): the bias broadcast and the bias gradient. Both layers see their output as
 * [N, channels, plane]: a linear layer's y [N, O] has plane 1, a convolution's y [N, O, Ho, Wo]
 * plane Ho*Wo. The GEMMs and convolutions themselves are cuBLAS's and cuDNN's.
 *
 * Written in the common subset of C11 and C++14 with FG_HOST_DEVICE, so the kernels call these
 * functions and the host tests (tests/cpu/test_cuda_math_linear.c) compile the same code. Owns
 * nothing. */
#ifndef FG_CUDA_MATH_LINEAR_H
#define FG_CUDA_MATH_LINEAR_H

#include <stdint.h>

#include "engine/base/host_device.h"

/* The channel of flat element i of a [N, channels, plane] tensor (channels, plane >= 1). */
FG_HOST_DEVICE static inline int64_t fg_bias_channel(int64_t i, int64_t channels, int64_t plane) {
  return (i / plane) % channels;
}

/* Element i of bias [channels] broadcast over [N, channels, plane]: what a layer's output holds
 * before the GEMM or convolution adds onto it (beta 1), as the CPU backend does. */
FG_HOST_DEVICE static inline float fg_bias_broadcast(const float *bias, int64_t i, int64_t channels,
                                                     int64_t plane) {
  return bias[fg_bias_channel(i, channels, plane)];
}

/* One share of the bias gradient of `channel`: dy [n, channels, plane]; the channel's n * plane
 * values are numbered j = image * plane + p (image by image, positions in order), and the share
 * is the sum, in double and in increasing j, of the values j = first, first + step, ... below
 * n * plane (0 when there are none). step >= 1, first >= 0.
 *   - first 0, step 1: the whole gradient in the CPU backend's order (one thread per column of
 *     a linear layer's dy [n, out]: bitwise the CPU's column sum once rounded to float);
 *   - first t, step T: thread t's share of a block of T threads (a convolution: one block per
 *     channel), which the block then combines with its fixed tree (cuda/reduce.cuh).
 * The position is advanced by additions, so the loop divides only once. */
FG_HOST_DEVICE static inline double fg_bias_grad_partial(const float *dy, int64_t n, int64_t channels,
                                                         int64_t plane, int64_t channel, int64_t first,
                                                         int64_t step) {
  double sum = 0.0;
  const int64_t total = n * plane;
  if (first >= total) return sum; /* also every plane == 0 case: nothing to read */
  int64_t image = first / plane, p = first % plane;
  const int64_t image_step = step / plane, p_step = step % plane;
  for (int64_t j = first; j < total; j += step) {
    sum += (double)dy[(image * channels + channel) * plane + p];
    image += image_step;
    p += p_step;
    if (p >= plane) {
      p -= plane;
      image += 1;
    }
  }
  return sum;
}

#endif
