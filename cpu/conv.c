/* CPU 2-D convolution: im2col + GEMM, image by image over a fixed number of lanes. Dense 3x3
 * stride-1 convolutions go to the AVX2/FMA kernels of cpu/conv3x3.c instead when the CPU has
 * them (fg_cpu_conv3x3_applies); everything below describes the generic path.
 *
 * Lanes: with L = min(lanes, N) lanes, lane l processes images l, l+L, l+2L, ... in order, with
 * its own column buffer (and, for the weight gradient, its own partial sum). OpenMP spreads the
 * lanes over min(threads, L) threads; inside a lane every GEMM runs single-threaded. Nothing a
 * thread computes depends on which thread computes it, and lane partials are summed in lane
 * order, so results are bit-identical for any thread count.
 *
 * Per image (one group shown; groups are independent GEMMs on slices):
 *   forward          y [O, HoWo]  = w [O, K] col [K, HoWo]          (+ bias)
 *   backward data    dcol [K, HoWo] = w^T dy;  dx (=|+=) col2im(dcol)
 *   backward filter  dw [O, K]   += dy [O, HoWo] col^T
 * with K = C/groups * kh * kw. A 1x1 convolution with stride 1 and pad 0 is "direct": the image
 * [C, H*W] is already its column matrix, so no im2col/col2im happens.
 *
 * Workspace layout (floats; each slice rounded up to 16 floats = one 64-byte line):
 *   [ col lane 0 | col lane 1 | ... | col lane L-1 | dw partial lane 1 | ... | lane L-1 ]
 * Lane 0 accumulates straight into dw. Forward and backward-data use only the column buffers;
 * fg_conv2d_workspace reports the backward-filter total, the largest of the three. */
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "cpu/conv_internal.h"
#include "cpu/cpu_backend.h"
#include "cpu/nn_internal.h"

enum { FG_CONV_SLICE_ALIGN = 16 }; /* floats */

/* Everything the three calls derive from the shapes, the descriptor and the lane count. */
typedef struct conv_plan {
  int64_t n, c, h, w, o, kh, kw, ho, wo;
  int64_t stride, pad, groups;
  int64_t cg, og;   /* channels per group: input, output */
  int64_t k;        /* GEMM depth: cg * kh * kw */
  int64_t hw_in;    /* h * w */
  int64_t hw_out;   /* ho * wo */
  int direct;       /* 1x1, stride 1, pad 0: the image is its own column matrix */
  int lanes;        /* min(configured lanes, n) */
  int threads;      /* min(configured threads, lanes), at least 1 */
  size_t col_stride; /* floats per lane column buffer */
  size_t dw_stride;  /* floats per lane weight-gradient partial */
} conv_plan;

static size_t round_slice(size_t floats) {
  return (floats + FG_CONV_SLICE_ALIGN - 1) / FG_CONV_SLICE_ALIGN * FG_CONV_SLICE_ALIGN;
}

static int64_t out_extent(int64_t in, int64_t k, int64_t stride, int64_t pad) {
  return (in + 2 * pad - k) / stride + 1; /* the entry point checked that the kernel fits */
}

/* img: x or dx [N,C,H,W]; wt: w or dw [O,C/groups,kh,kw]. */
static conv_plan make_plan(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *img,
                           const fg_tensor *wt) {
  const fg_cpu_ctx *ctx = fg_cpu_ctx_of(b);
  conv_plan p;
  memset(&p, 0, sizeof p);
  p.n = img->shape[0];
  p.c = img->shape[1];
  p.h = img->shape[2];
  p.w = img->shape[3];
  p.o = wt->shape[0];
  p.kh = wt->shape[2];
  p.kw = wt->shape[3];
  p.stride = d->stride;
  p.pad = d->pad;
  p.groups = d->groups;
  p.ho = out_extent(p.h, p.kh, p.stride, p.pad);
  p.wo = out_extent(p.w, p.kw, p.stride, p.pad);
  p.cg = p.c / p.groups;
  p.og = p.o / p.groups;
  p.k = p.cg * p.kh * p.kw;
  p.hw_in = p.h * p.w;
  p.hw_out = p.ho * p.wo;
  p.direct = p.kh == 1 && p.kw == 1 && p.stride == 1 && p.pad == 0;
  p.lanes = p.n < ctx->lanes ? (int)p.n : ctx->lanes;
  p.threads = ctx->threads < p.lanes ? ctx->threads : p.lanes;
  if (p.threads < 1) p.threads = 1;
  p.col_stride = p.direct ? 0 : round_slice((size_t)(p.c * p.kh * p.kw) * (size_t)p.hw_out);
  p.dw_stride = round_slice((size_t)(p.o * p.k));
  return p;
}

/* Floats of workspace for the column buffers (forward, backward data) and for everything
 * (backward filter). */
static size_t col_floats(const conv_plan *p) { return (size_t)p->lanes * p->col_stride; }

static size_t filter_floats(const conv_plan *p) {
  const size_t partials = p->lanes > 1 ? (size_t)(p->lanes - 1) * p->dw_stride : 0;
  return col_floats(p) + partials;
}

/* x [N,C,H,W], w [O,C/g,kh,kw] -> bytes (the backward-filter layout above, the largest of the
 * three calls' needs; the 3x3 kernels may plan faster directions within `limit`). */
static fg_status cpu_conv2d_workspace(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                      const fg_tensor *w, size_t limit, size_t *bytes) {
  if (fg_cpu_conv3x3_applies(b, d, w->shape[2], w->shape[3])) {
    *bytes = fg_cpu_conv3x3_workspace(b, d, x, w, limit);
    return FG_OK;
  }
  const conv_plan p = make_plan(b, d, x, w);
  *bytes = filter_floats(&p) * sizeof(float);
  return FG_OK;
}

fg_status fg_cpu_conv_supports(const fg_backend *b, const fg_op_query *q) {
  const fg_tensor *img = q->t[0], *wt = q->t[1];
  if (fg_cpu_conv3x3_applies(b, q->conv, wt->shape[2], wt->shape[3])) return FG_OK;
  const conv_plan p = make_plan(b, q->conv, img, wt);
  const int64_t dims[5] = {p.og, p.k, p.hw_out, p.o * p.k, p.c * p.hw_in};
  for (int i = 0; i < 5; i++)
    if (!fg_cpu_blas_fits(dims[i]))
      return FG_FAIL(FG_ERR_UNSUPPORTED, "a GEMM extent of %lld exceeds the BLAS int range", (long long)dims[i]);
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* im2col / col2im                                                                            */

/* Output columns ox whose input column ox*stride - pad + kx lies inside [0, w): [*lo, *hi). */
static void valid_columns(const conv_plan *p, int64_t kx, int64_t *lo, int64_t *hi) {
  const int64_t first = p->pad - kx; /* smallest ox*stride allowed */
  *lo = first > 0 ? (first + p->stride - 1) / p->stride : 0;
  const int64_t last = p->w - 1 + p->pad - kx; /* largest ox*stride allowed */
  *hi = last < 0 ? 0 : last / p->stride + 1;
  if (*hi > p->wo) *hi = p->wo;
  if (*lo > *hi) *lo = *hi;
}

/* col [C*kh*kw, Ho*Wo] := the receptive fields of img [C,H,W], zeros where padding. */
static void im2col(const conv_plan *p, const float *img, float *col) {
  for (int64_t ch = 0; ch < p->c; ch++)
    for (int64_t ky = 0; ky < p->kh; ky++)
      for (int64_t kx = 0; kx < p->kw; kx++) {
        float *row = col + ((ch * p->kh + ky) * p->kw + kx) * p->hw_out;
        int64_t lo, hi;
        valid_columns(p, kx, &lo, &hi);
        for (int64_t oy = 0; oy < p->ho; oy++) {
          float *dst = row + oy * p->wo;
          const int64_t iy = oy * p->stride - p->pad + ky;
          if (iy < 0 || iy >= p->h) {
            memset(dst, 0, (size_t)p->wo * sizeof(float));
            continue;
          }
          const float *src = img + (ch * p->h + iy) * p->w; /* input row iy */
          const int64_t shift = kx - p->pad; /* input column = ox * stride + shift */
          for (int64_t ox = 0; ox < lo; ox++) dst[ox] = 0.0f;
          if (p->stride == 1) {
            if (hi > lo) memcpy(dst + lo, src + lo + shift, (size_t)(hi - lo) * sizeof(float));
          } else {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox] = src[ox * p->stride + shift];
          }
          for (int64_t ox = hi; ox < p->wo; ox++) dst[ox] = 0.0f;
        }
      }
}

/* img [C,H,W] += the columns of col scattered back (the transpose of im2col). */
static void col2im_add(const conv_plan *p, const float *col, float *img) {
  for (int64_t ch = 0; ch < p->c; ch++)
    for (int64_t ky = 0; ky < p->kh; ky++)
      for (int64_t kx = 0; kx < p->kw; kx++) {
        const float *row = col + ((ch * p->kh + ky) * p->kw + kx) * p->hw_out;
        int64_t lo, hi;
        valid_columns(p, kx, &lo, &hi);
        for (int64_t oy = 0; oy < p->ho; oy++) {
          const int64_t iy = oy * p->stride - p->pad + ky;
          if (iy < 0 || iy >= p->h) continue;
          const float *src = row + oy * p->wo;
          float *dst = img + (ch * p->h + iy) * p->w; /* input row iy */
          const int64_t shift = kx - p->pad;
          if (p->stride == 1) {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox + shift] += src[ox];
          } else {
            for (int64_t ox = lo; ox < hi; ox++) dst[ox * p->stride + shift] += src[ox];
          }
        }
      }
}

/* ----------------------------------------------------------------------------------------- */
/* Lanes                                                                                      */

typedef struct conv_job {
  const conv_plan *p;
  const float *x, *w, *bias, *dy;
  float *y, *dx, *dw;
  float *ws;
  int accumulate;
} conv_job;

/* GEMMs inside a lane run on one thread: OpenBLAS's OpenMP build sizes itself by
 * omp_get_max_threads, which this sets for the current task only, so a single-thread team does
 * not fan out either. */
void fg_cpu_run_lanes(int lanes, int threads, fg_cpu_lane_fn fn, const void *job) {
  /* One BLAS thread inside every lane, also when the team has one thread (OpenBLAS threads a call
   * made outside an active parallel region, and on some processors a threaded GEMM sums in
   * another order: aarch64's does). */
  fg_cpu_blas_set_threads(1);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
  for (int l = 0; l < lanes; l++) {
    omp_set_num_threads(1);
    fn(job, l);
  }
  fg_cpu_blas_set_threads(fg_cpu_threads());
}

static float *lane_col(const conv_job *job, int lane) {
  return job->ws + (size_t)lane * job->p->col_stride;
}

static void forward_lane(const void *arg, int lane) {
  const conv_job *job = arg;
  const conv_plan *p = job->p;
  float *col = lane_col(job, lane);
  for (int64_t n = lane; n < p->n; n += p->lanes) {
    const float *xn = job->x + n * p->c * p->hw_in;
    float *yn = job->y + n * p->o * p->hw_out;
    if (!p->direct) im2col(p, xn, col);
    const float *cols = p->direct ? xn : col;
    float beta = 0.0f;
    if (job->bias) {
      for (int64_t oc = 0; oc < p->o; oc++)
        for (int64_t i = 0; i < p->hw_out; i++) yn[oc * p->hw_out + i] = job->bias[oc];
      beta = 1.0f;
    }
    for (int64_t g = 0; g < p->groups; g++)
      fg_cpu_sgemm(0, 0, p->og, p->hw_out, p->k, 1.0f, job->w + g * p->og * p->k, p->k,
                   cols + g * p->k * p->hw_out, p->hw_out, beta, yn + g * p->og * p->hw_out,
                   p->hw_out);
  }
}

static void backward_data_lane(const void *arg, int lane) {
  const conv_job *job = arg;
  const conv_plan *p = job->p;
  float *col = lane_col(job, lane);
  for (int64_t n = lane; n < p->n; n += p->lanes) {
    const float *dyn = job->dy + n * p->o * p->hw_out;
    float *dxn = job->dx + n * p->c * p->hw_in;
    /* direct: dx is the column matrix, so the GEMM writes (or adds to) it in place */
    float *dcol = p->direct ? dxn : col;
    const float beta = p->direct && job->accumulate ? 1.0f : 0.0f;
    for (int64_t g = 0; g < p->groups; g++)
      fg_cpu_sgemm(1, 0, p->k, p->hw_out, p->og, 1.0f, job->w + g * p->og * p->k, p->k,
                   dyn + g * p->og * p->hw_out, p->hw_out, beta, dcol + g * p->k * p->hw_out,
                   p->hw_out);
    if (!p->direct) {
      if (!job->accumulate) memset(dxn, 0, (size_t)(p->c * p->hw_in) * sizeof(float));
      col2im_add(p, col, dxn);
    }
  }
}

/* Lane 0 accumulates into dw itself, lane l > 0 into its partial in the workspace. */
static float *lane_dw(const conv_job *job, int lane) {
  if (lane == 0) return job->dw;
  return job->ws + col_floats(job->p) + (size_t)(lane - 1) * job->p->dw_stride;
}

static void backward_filter_lane(const void *arg, int lane) {
  const conv_job *job = arg;
  const conv_plan *p = job->p;
  float *col = lane_col(job, lane);
  float *dw = lane_dw(job, lane);
  for (int64_t n = lane; n < p->n; n += p->lanes) {
    const float *xn = job->x + n * p->c * p->hw_in;
    const float *dyn = job->dy + n * p->o * p->hw_out;
    if (!p->direct) im2col(p, xn, col);
    const float *cols = p->direct ? xn : col;
    const float beta = n == lane ? 0.0f : 1.0f; /* the lane's first image overwrites */
    for (int64_t g = 0; g < p->groups; g++)
      fg_cpu_sgemm(0, 1, p->og, p->k, p->hw_out, 1.0f, dyn + g * p->og * p->hw_out, p->hw_out,
                   cols + g * p->k * p->hw_out, p->hw_out, beta, dw + g * p->og * p->k, p->k);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Backend entries                                                                            */

/* x [N,C,H,W], w [O,C/g,kh,kw], bias [O] | NULL -> y [N,O,Ho,Wo]. */
static fg_status cpu_conv2d_forward(fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                    const fg_tensor *w, const fg_tensor *bias, fg_tensor *y,
                                    fg_workspace ws) {
  if (fg_cpu_conv3x3_applies(b, d, w->shape[2], w->shape[3]))
    return fg_cpu_conv3x3_forward(b, d, x, w, bias, y, ws);
  const conv_plan p = make_plan(b, d, x, w);
  const conv_job job = {.p = &p, .x = fg_f32(x), .w = fg_f32(w),
                        .bias = bias ? fg_f32(bias) : NULL, .y = fg_f32(y), .ws = ws.ptr};
  fg_cpu_run_lanes(p.lanes, p.threads, forward_lane, &job);
  return FG_OK;
}

/* dy [N,O,Ho,Wo], w [O,C/g,kh,kw] -> dx [N,C,H,W] (=|+=). */
static fg_status cpu_conv2d_backward_data(fg_backend *b, const fg_conv_desc *d,
                                          const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                          int accumulate, fg_workspace ws) {
  if (fg_cpu_conv3x3_applies(b, d, w->shape[2], w->shape[3]))
    return fg_cpu_conv3x3_backward_data(b, d, dy, w, dx, accumulate, ws);
  const conv_plan p = make_plan(b, d, dx, w);
  const conv_job job = {.p = &p, .dy = fg_f32(dy), .w = fg_f32(w), .dx = fg_f32(dx),
                        .ws = ws.ptr, .accumulate = accumulate};
  fg_cpu_run_lanes(p.lanes, p.threads, backward_data_lane, &job);
  return FG_OK;
}

/* dbias[o] := sum of dy over n, ho, wo; one thread per channel, a fixed order within it. */
static void bias_gradient(const conv_plan *p, int threads, const float *dy, float *dbias) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t oc = 0; oc < p->o; oc++) {
    double sum = 0.0;
    for (int64_t n = 0; n < p->n; n++) {
      const float *plane = dy + (n * p->o + oc) * p->hw_out;
      for (int64_t i = 0; i < p->hw_out; i++) sum += plane[i];
    }
    dbias[oc] = (float)sum;
  }
}

/* dw += partials of lanes 1..L-1, element by element in lane order. */
static void sum_lane_partials(const conv_job *job, int threads) {
  const conv_plan *p = job->p;
  const int64_t count = p->o * p->k;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < count; i++) {
    float s = job->dw[i];
    for (int l = 1; l < p->lanes; l++) s += lane_dw(job, l)[i];
    job->dw[i] = s;
  }
}

/* x [N,C,H,W], dy [N,O,Ho,Wo] -> dw [O,C/g,kh,kw] :=, dbias [O] := (when not NULL). */
static fg_status cpu_conv2d_backward_filter(fg_backend *b, const fg_conv_desc *d,
                                            const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                            fg_tensor *dbias, fg_workspace ws) {
  const conv_plan p = make_plan(b, d, x, dw);
  const int threads = fg_cpu_ctx_of(b)->threads;
  if (fg_cpu_conv3x3_applies(b, d, p.kh, p.kw)) {
    FG_TRY(fg_cpu_conv3x3_backward_filter(b, d, x, dy, dw, ws));
    if (dbias) bias_gradient(&p, threads, fg_f32(dy), fg_f32(dbias));
    return FG_OK;
  }
  const conv_job job = {.p = &p, .x = fg_f32(x), .dy = fg_f32(dy), .dw = fg_f32(dw),
                        .ws = ws.ptr};
  if (p.n == 0) {
    memset(job.dw, 0, (size_t)(p.o * p.k) * sizeof(float));
  } else {
    fg_cpu_run_lanes(p.lanes, p.threads, backward_filter_lane, &job);
    if (p.lanes > 1) sum_lane_partials(&job, threads);
  }
  if (dbias) bias_gradient(&p, threads, fg_f32(dy), fg_f32(dbias));
  return FG_OK;
}

void fg_cpu_register_conv_ops(fg_backend *b) {
  b->conv2d_workspace = cpu_conv2d_workspace;
  b->conv2d_forward = cpu_conv2d_forward;
  b->conv2d_backward_data = cpu_conv2d_backward_data;
  b->conv2d_backward_filter = cpu_conv2d_backward_filter;
}
