/* The arithmetic of the bilinear x2 upsampling kernels (cuda/math/upsample.h), compiled here by
 * the host's C compiler: the taps against PyTorch's source-coordinate formula computed in double
 * for every output of axes of extent 1..40, the weights of each output summing to 1, the set of
 * outputs reading an input (the gather's window) against a brute-force search, the forward value
 * and the gathered gradient against the double references (tests/ref/ref_nn.h: a scatter), hand
 * values, and the CPU backend's ops (which run this header) returning the header's values. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cuda/math/upsample.h"
#include "engine/backend/ops.h"
#include "engine/tensor/tensor.h"
#include "ref/ref_nn.h"

static void setup(void) { fgt_setup_cpu(1); }

TestSuite(cuda_math_upsample, .init = setup);

Test(cuda_math_upsample, taps_follow_the_align_corners_false_formula) {
  for (int64_t n = 1; n <= 40; n++)
    for (int64_t o = 0; o < 2 * n; o++) {
      double s = (o + 0.5) * 0.5 - 0.5;
      if (s < 0) s = 0;
      const int64_t i0 = (int64_t)floor(s), i1 = i0 + 1 < n ? i0 + 1 : n - 1;
      const fg_upsample_tap t = fg_upsample2x_tap(o, n);
      cr_assert(t.i0 == i0 && t.i1 == i1, "n %lld o %lld: taps %lld %lld, expected %lld %lld", (long long)n,
                (long long)o, (long long)t.i0, (long long)t.i1, (long long)i0, (long long)i1);
      cr_assert(t.w1 == (float)(s - i0) && t.w0 + t.w1 == 1.0f, "n %lld o %lld: weights %g %g", (long long)n,
                (long long)o, (double)t.w0, (double)t.w1);
    }
}

/* Input i is read (with a nonzero weight) only by outputs in [2i - 1, 2i + 2]. */
Test(cuda_math_upsample, readers_lie_in_the_gather_window) {
  for (int64_t n = 1; n <= 20; n++)
    for (int64_t o = 0; o < 2 * n; o++)
      for (int64_t i = 0; i < n; i++)
        if (fg_upsample2x_weight(o, i, n) != 0.0f)
          cr_assert(o >= 2 * i - 1 && o <= 2 * i + 2, "n %lld: output %lld reads input %lld", (long long)n,
                    (long long)o, (long long)i);
}

/* A 2x3 plane by hand: rows (1,2,3), (4,5,6); output row 1 = 3/4 row 0 + 1/4 row 1, column 3 =
 * 3/4 column 1 + 1/4 column 2: y[1][3] = 3/4 (6/4 + 3/4) + 1/4 (15/4 + 6/4) = 27/16 + 21/16 = 3;
 * output row 2 = 1/4 row 0 + 3/4 row 1, column 0 = column 0: y[2][0] = 1/4 + 3 = 13/4. */
Test(cuda_math_upsample, hand_derived_values) {
  const float x[6] = {1, 2, 3, 4, 5, 6};
  cr_assert_eq(fg_upsample2x_value(x, 2, 3, 0, 0), 1.0f);
  cr_assert_eq(fg_upsample2x_value(x, 2, 3, 3, 5), 6.0f);
  cr_assert_eq(fg_upsample2x_value(x, 2, 3, 1, 3), 3.0f);
  cr_assert_eq(fg_upsample2x_value(x, 2, 3, 2, 0), 3.25f);
}

/* Forward and gathered backward on full and cropped outputs against the references, and the CPU
 * ops returning the header's bits. */
Test(cuda_math_upsample, value_and_gradient_match_references_and_cpu) {
  const int64_t shapes[][4] = {{1, 1, 2, 2}, {3, 5, 6, 10}, {4, 3, 7, 5}, {5, 5, 9, 10}, {1, 4, 1, 7}};
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const int64_t h = shapes[k][0], w = shapes[k][1], ho = shapes[k][2], wo = shapes[k][3];
    float *x = malloc((size_t)(h * w) * sizeof *x), *dy = malloc((size_t)(ho * wo) * sizeof *dy);
    float *y = malloc((size_t)(ho * wo) * sizeof *y), *dx = malloc((size_t)(h * w) * sizeof *dx);
    double *xd = malloc((size_t)(h * w) * sizeof *xd), *dyd = malloc((size_t)(ho * wo) * sizeof *dyd);
    double *yr = malloc((size_t)(ho * wo) * sizeof *yr), *dxr = malloc((size_t)(h * w) * sizeof *dxr);
    cr_assert(x && dy && y && dx && xd && dyd && yr && dxr);
    fgt_fill_uniform(x, (size_t)(h * w), 30 + k, -1.0f, 1.0f);
    fgt_fill_uniform(dy, (size_t)(ho * wo), 40 + k, -1.0f, 1.0f);
    for (int64_t i = 0; i < h * w; i++) xd[i] = x[i];
    for (int64_t i = 0; i < ho * wo; i++) dyd[i] = dy[i];
    fg_ref_upsample2x_bilinear_forward(1, 1, h, w, ho, wo, xd, yr);
    fg_ref_upsample2x_bilinear_backward(1, 1, h, w, ho, wo, dyd, dxr, 0);
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) {
        const double v = fg_upsample2x_value(x, h, w, oy, ox), r = yr[oy * wo + ox];
        cr_assert(fabs(v - r) <= 1e-6, "%lldx%lld -> %lldx%lld: y[%lld][%lld] %.9g, reference %.17g", (long long)h,
                  (long long)w, (long long)ho, (long long)wo, (long long)oy, (long long)ox, v, r);
      }
    for (int64_t iy = 0; iy < h; iy++)
      for (int64_t ix = 0; ix < w; ix++) {
        const double g = fg_upsample2x_grad(dy, h, w, ho, wo, iy, ix), r = dxr[iy * w + ix];
        cr_assert(fabs(g - r) <= 1e-5, "%lldx%lld -> %lldx%lld: dx[%lld][%lld] %.9g, reference %.17g", (long long)h,
                  (long long)w, (long long)ho, (long long)wo, (long long)iy, (long long)ix, g, r);
      }
    const int64_t sx[4] = {1, 1, h, w}, sy[4] = {1, 1, ho, wo};
    fg_tensor tx = fg_tensor_view(x, FG_F32, fg_host_device(), 4, sx), ty = fg_tensor_view(y, FG_F32, fg_host_device(), 4, sy);
    fg_tensor tdy = fg_tensor_view(dy, FG_F32, fg_host_device(), 4, sy), tdx = fg_tensor_view(dx, FG_F32, fg_host_device(), 4, sx);
    FGT_OK(fg_upsample2x_bilinear_forward(&tx, &ty));
    FGT_OK(fg_upsample2x_bilinear_backward(&tdy, &tdx, 0));
    for (int64_t oy = 0; oy < ho; oy++)
      for (int64_t ox = 0; ox < wo; ox++) cr_assert_eq(y[oy * wo + ox], fg_upsample2x_value(x, h, w, oy, ox));
    for (int64_t iy = 0; iy < h; iy++)
      for (int64_t ix = 0; ix < w; ix++) cr_assert_eq(dx[iy * w + ix], fg_upsample2x_grad(dy, h, w, ho, wo, iy, ix));
    free(x), free(dy), free(y), free(dx), free(xd), free(dyd), free(yr), free(dxr);
  }
}
