/* Validating entry points of the convolution, linear and pooling ops (engine/backend/ops.h).
 * Each checks descriptors, ranks, extents, dtypes and devices, naming the op and the argument
 * when something is wrong, and then dispatches to the backend of the tensors' device. */
#include <limits.h>
#include <stdio.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_check.h"

/* ----------------------------------------------------------------------------------------- */
/* Shared checks                                                                              */

/* Largest pooling window whose positions fit the u8 argmax. */
enum { FG_POOL_MAX_WINDOW = 256 };

/* Rank-checked `t` has non-negative extents (a negative one can only be a corrupt view). */
static fg_status check_nonnegative(const char *op, const char *arg, const fg_tensor *t) {
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] < 0) {
      char buf[64];
      return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s with a negative extent", op, arg,
                     fg_shape_str(t, buf, sizeof buf));
    }
  return FG_OK;
}

/* `t` is present with `dtype` and exactly rank `rank`, extents >= 0. */
static fg_status check_rank(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                            int rank) {
  FG_TRY(fg_check_tensor(op, arg, t, dtype, rank, rank));
  return check_nonnegative(op, arg, t);
}

/* check_rank for shape descriptors (data may be NULL). */
static fg_status check_layout_rank(const char *op, const char *arg, const fg_tensor *t,
                                   fg_dtype dtype, int rank) {
  FG_TRY(fg_check_layout(op, arg, t, dtype, rank, rank));
  return check_nonnegative(op, arg, t);
}

/* t has the extents e[0..t->ndim). */
static fg_status check_extents(const char *op, const char *arg, const fg_tensor *t,
                               const int64_t *e) {
  for (int i = 0; i < t->ndim; i++) FG_TRY(fg_check_extent(op, arg, t, i, e[i]));
  return FG_OK;
}

/* Largest element count a convolution's output or per-image column matrix may have: far
 * beyond any real tensor (2^50 floats = 4 PiB), and small enough that byte counts times lanes
 * cannot overflow. Only absurd descriptors (a pad of 2^30, say) run into it. */
static const int64_t FG_CONV_MAX_ELEMENTS = (int64_t)1 << 50;

/* The product of f[0..count) (each >= 0) is at most `limit`, computed without overflow. */
static int product_within(const int64_t *f, int count, int64_t limit) {
  int64_t p = 1;
  for (int i = 0; i < count; i++) {
    if (f[i] == 0) return 1;
    if (p > limit / f[i]) return 0;
    p *= f[i];
  }
  return 1;
}

int64_t fg_conv_out_extent(int64_t in, int k, int stride, int pad) {
  if (in < 0 || k < 1 || stride < 1 || pad < 0) return 0;
  if (in + 2 * (int64_t)pad < k) return 0;
  return (in + 2 * (int64_t)pad - k) / stride + 1;
}

/* ----------------------------------------------------------------------------------------- */
/* Convolution                                                                                */

/* The convolution's geometry, derived from the image-shaped tensor (x or dx) and the
 * weight-shaped tensor (w or dw). */
typedef struct conv_geom {
  int64_t n, c, h, w, o, kh, kw, ho, wo;
} conv_geom;

static fg_status check_conv_desc(const char *op, const fg_conv_desc *d) {
  if (!d) return FG_FAIL(FG_ERR_INVALID, "%s: convolution descriptor is missing", op);
  if (d->stride < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: stride %d out of range (expected >= 1)", op, d->stride);
  if (d->pad < 0)
    return FG_FAIL(FG_ERR_INVALID, "%s: pad %d out of range (expected >= 0)", op, d->pad);
  if (d->groups < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: groups %d out of range (expected >= 1)", op, d->groups);
  return FG_OK;
}

/* Checks the descriptor, the image tensor `img` [N,C,H,W] and the weight tensor `wt`
 * [O,C/groups,kh,kw] against each other, and fills `g`. */
/* need_data 0: img and wt may be shape descriptors without data. */
static fg_status check_conv(const char *op, const fg_conv_desc *d, const char *img_name,
                            const fg_tensor *img, const char *wt_name, const fg_tensor *wt,
                            int need_data, conv_geom *g) {
  FG_TRY(check_conv_desc(op, d));
  if (need_data) {
    FG_TRY(check_rank(op, img_name, img, FG_F32, 4));
    FG_TRY(check_rank(op, wt_name, wt, FG_F32, 4));
  } else {
    FG_TRY(check_layout_rank(op, img_name, img, FG_F32, 4));
    FG_TRY(check_layout_rank(op, wt_name, wt, FG_F32, 4));
  }
  g->n = img->shape[0];
  g->c = img->shape[1];
  g->h = img->shape[2];
  g->w = img->shape[3];
  g->o = wt->shape[0];
  g->kh = wt->shape[2];
  g->kw = wt->shape[3];
  if (g->c % d->groups != 0)
    return FG_FAIL(FG_ERR_SHAPE, "%s: groups %d does not divide the %lld channels of %s", op,
                   d->groups, (long long)g->c, img_name);
  if (g->o % d->groups != 0)
    return FG_FAIL(FG_ERR_SHAPE, "%s: groups %d does not divide the %lld output channels of %s",
                   op, d->groups, (long long)g->o, wt_name);
  FG_TRY(fg_check_extent(op, wt_name, wt, 1, g->c / d->groups));
  if (g->kh < 1 || g->kw < 1)
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has an empty %lldx%lld kernel", op, wt_name,
                   (long long)g->kh, (long long)g->kw);
  if (g->kh > INT_MAX || g->kw > INT_MAX || g->h + 2 * (int64_t)d->pad < g->kh ||
      g->w + 2 * (int64_t)d->pad < g->kw)
    return FG_FAIL(FG_ERR_SHAPE,
                   "%s: the %lldx%lld kernel of %s does not fit the %lldx%lld input of %s padded "
                   "by %d",
                   op, (long long)g->kh, (long long)g->kw, wt_name, (long long)g->h,
                   (long long)g->w, img_name, d->pad);
  g->ho = fg_conv_out_extent(g->h, (int)g->kh, d->stride, d->pad);
  g->wo = fg_conv_out_extent(g->w, (int)g->kw, d->stride, d->pad);
  const int64_t out[4] = {g->n, g->o, g->ho, g->wo}, col[5] = {g->c, g->kh, g->kw, g->ho, g->wo};
  if (!product_within(out, 4, FG_CONV_MAX_ELEMENTS) || !product_within(col, 5, FG_CONV_MAX_ELEMENTS))
    return FG_FAIL(FG_ERR_SHAPE, "%s: output %lldx%lld of %s (pad %d, stride %d) is too large", op,
                   (long long)g->ho, (long long)g->wo, img_name, d->pad, d->stride);
  return FG_OK;
}

/* bias-shaped tensor [O], when present. */
static fg_status check_channel_vector(const char *op, const char *arg, const fg_tensor *t,
                                      int64_t channels) {
  if (!t) return FG_OK;
  FG_TRY(check_rank(op, arg, t, FG_F32, 1));
  return fg_check_extent(op, arg, t, 0, channels);
}

/* output-shaped tensor [N,O,Ho,Wo]. */
static fg_status check_conv_output(const char *op, const char *arg, const fg_tensor *t,
                                   const conv_geom *g) {
  FG_TRY(check_rank(op, arg, t, FG_F32, 4));
  const int64_t e[4] = {g->n, g->o, g->ho, g->wo};
  return check_extents(op, arg, t, e);
}

/* The workspace the backend's plan for this convolution needs within `limit` (x, w checked); a
 * backend that runs convolutions answers this query. */
static fg_status conv_workspace(const char *op, fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                const fg_tensor *w, size_t limit, size_t *bytes) {
  *bytes = 0;
  if (!b->conv2d_workspace)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "conv2d_workspace: not supported by the %s backend", b->name);
  fg_status s = b->conv2d_workspace(b, d, x, w, limit, bytes);
  if (s != FG_OK) fg_error_prefix("%s", op);
  return s;
}

/* The backend of a convolution whose image-shaped tensor is img and weight-shaped tensor wt (the
 * query's shapes), all of ts on its device, with ws large enough. */
static fg_status conv_prepare(fg_op op, const fg_conv_desc *d, const fg_tensor *img, const fg_tensor *wt,
                              const fg_tensor *const *ts, int count, fg_workspace ws, fg_backend **out) {
  fg_op_query q = {.op = op, .t = {img, wt}, .conv = d};
  FG_TRY(fg_op_prepare(&q, ts, count, out));
  size_t need = 0;
  FG_TRY(conv_workspace(fg_op_name(op), *out, d, img, wt, 0, &need));
  return fg_check_workspace(fg_op_name(op), ws, need);
}

fg_status fg_conv2d_workspace_within(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                                     size_t limit, size_t *bytes) {
  const char *op = "conv2d_workspace";
  if (!bytes) return FG_FAIL(FG_ERR_INVALID, "%s: output pointer is missing", op);
  conv_geom g = {0};
  FG_TRY(check_conv(op, d, "x", x, "w", w, 0, &g));
  fg_backend *b;
  FG_TRY(fg_op_backend(op, (const fg_tensor *[]){x, w}, 2, &b));
  return conv_workspace(op, b, d, x, w, limit, bytes);
}

fg_status fg_conv2d_workspace(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                              size_t *bytes) {
  return fg_conv2d_workspace_within(d, x, w, 0, bytes);
}

fg_status fg_conv2d_forward(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *w,
                            const fg_tensor *bias, fg_tensor *y, fg_workspace ws) {
  const char *op = fg_op_name(FG_OP_CONV2D_FORWARD);
  conv_geom g = {0};
  FG_TRY(check_conv(op, d, "x", x, "w", w, 1, &g));
  FG_TRY(check_channel_vector(op, "bias", bias, g.o));
  FG_TRY(check_conv_output(op, "y", y, &g));
  fg_backend *b;
  FG_TRY(conv_prepare(FG_OP_CONV2D_FORWARD, d, x, w, (const fg_tensor *[]){x, w, bias, y}, 4, ws, &b));
  return b->conv2d_forward(b, d, x, w, bias, y, ws);
}

fg_status fg_conv2d_backward_data(const fg_conv_desc *d, const fg_tensor *dy, const fg_tensor *w,
                                  fg_tensor *dx, int accumulate, fg_workspace ws) {
  const char *op = fg_op_name(FG_OP_CONV2D_BACKWARD_DATA);
  conv_geom g = {0};
  FG_TRY(check_conv(op, d, "dx", dx, "w", w, 1, &g));
  FG_TRY(check_conv_output(op, "dy", dy, &g));
  fg_backend *b;
  FG_TRY(conv_prepare(FG_OP_CONV2D_BACKWARD_DATA, d, dx, w, (const fg_tensor *[]){dy, w, dx}, 3, ws, &b));
  return b->conv2d_backward_data(b, d, dy, w, dx, accumulate, ws);
}

fg_status fg_conv2d_backward_filter(const fg_conv_desc *d, const fg_tensor *x, const fg_tensor *dy,
                                    fg_tensor *dw, fg_tensor *dbias, fg_workspace ws) {
  const char *op = fg_op_name(FG_OP_CONV2D_BACKWARD_FILTER);
  conv_geom g = {0};
  FG_TRY(check_conv(op, d, "x", x, "dw", dw, 1, &g));
  FG_TRY(check_conv_output(op, "dy", dy, &g));
  FG_TRY(check_channel_vector(op, "dbias", dbias, g.o));
  fg_backend *b;
  FG_TRY(conv_prepare(FG_OP_CONV2D_BACKWARD_FILTER, d, x, dw, (const fg_tensor *[]){x, dy, dw, dbias}, 4, ws, &b));
  return b->conv2d_backward_filter(b, d, x, dy, dw, dbias, ws);
}

/* ----------------------------------------------------------------------------------------- */
/* Linear                                                                                     */

/* matrix-shaped tensor [rows, cols]. */
static fg_status check_matrix(const char *op, const char *arg, const fg_tensor *t, int64_t rows,
                              int64_t cols) {
  FG_TRY(check_rank(op, arg, t, FG_F32, 2));
  const int64_t e[2] = {rows, cols};
  return check_extents(op, arg, t, e);
}

/* A linear op's GEMM: the sizes n (rows), in and out, read from its two defining matrices (a
 * [rows, *], b [*, *], both f32 rank 2): the extent a_dim of `a` is the one b_dim of `b` must
 * share. */
typedef struct linear_geom {
  int64_t n, in, out;
} linear_geom;

static fg_status check_linear_pair(const char *op, const char *a_name, const fg_tensor *a, int a_dim,
                                   const char *b_name, const fg_tensor *b, int b_dim) {
  FG_TRY(check_rank(op, a_name, a, FG_F32, 2));
  FG_TRY(check_rank(op, b_name, b, FG_F32, 2));
  return fg_check_extent(op, b_name, b, b_dim, a->shape[a_dim]);
}

/* The backend of a linear op whose defining matrices are q0, q1 (the query), all of ts[0..count)
 * on its device. */
static fg_status linear_prepare(fg_op op, const fg_tensor *q0, const fg_tensor *q1, const fg_tensor *const *ts,
                                int count, fg_backend **out) {
  const fg_op_query q = {.op = op, .t = {q0, q1}};
  return fg_op_prepare(&q, ts, count, out);
}

fg_status fg_linear_forward(const fg_tensor *x, const fg_tensor *w, const fg_tensor *bias,
                            fg_tensor *y) {
  const char *op = fg_op_name(FG_OP_LINEAR_FORWARD);
  FG_TRY(check_linear_pair(op, "x", x, 1, "w", w, 1)); /* x [N,I], w [O,I] */
  const linear_geom g = {x->shape[0], x->shape[1], w->shape[0]};
  FG_TRY(check_channel_vector(op, "bias", bias, g.out));
  FG_TRY(check_matrix(op, "y", y, g.n, g.out));
  fg_backend *b;
  FG_TRY(linear_prepare(FG_OP_LINEAR_FORWARD, x, w, (const fg_tensor *[]){x, w, bias, y}, 4, &b));
  return b->linear_forward(b, x, w, bias, y);
}

fg_status fg_linear_backward_data(const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                  int accumulate) {
  const char *op = fg_op_name(FG_OP_LINEAR_BACKWARD_DATA);
  FG_TRY(check_linear_pair(op, "dy", dy, 1, "w", w, 0)); /* dy [N,O], w [O,I] */
  FG_TRY(check_matrix(op, "dx", dx, dy->shape[0], w->shape[1]));
  fg_backend *b;
  FG_TRY(linear_prepare(FG_OP_LINEAR_BACKWARD_DATA, dx, w, (const fg_tensor *[]){dy, w, dx}, 3, &b));
  return b->linear_backward_data(b, dy, w, dx, accumulate);
}

fg_status fg_linear_backward_params(const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                    fg_tensor *dbias) {
  const char *op = fg_op_name(FG_OP_LINEAR_BACKWARD_PARAMS);
  FG_TRY(check_linear_pair(op, "x", x, 0, "dy", dy, 0)); /* x [N,I], dy [N,O] */
  const linear_geom g = {x->shape[0], x->shape[1], dy->shape[1]};
  if (dw) FG_TRY(check_matrix(op, "dw", dw, g.out, g.in));
  FG_TRY(check_channel_vector(op, "dbias", dbias, g.out));
  fg_backend *b;
  FG_TRY(linear_prepare(FG_OP_LINEAR_BACKWARD_PARAMS, x, dy, (const fg_tensor *[]){x, dy, dw, dbias}, 4, &b));
  return b->linear_backward_params(b, x, dy, dw, dbias);
}

/* ----------------------------------------------------------------------------------------- */
/* Pooling                                                                                    */

static fg_status check_pool_desc(const char *op, const fg_pool_desc *d) {
  if (!d) return FG_FAIL(FG_ERR_INVALID, "%s: pooling descriptor is missing", op);
  if (d->kernel < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: kernel %d out of range (expected >= 1)", op, d->kernel);
  if (d->kernel > 16 || d->kernel * d->kernel > FG_POOL_MAX_WINDOW)
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: kernel %d too large (the u8 argmax needs kernel*kernel <= %d)", op,
                   d->kernel, FG_POOL_MAX_WINDOW);
  if (d->stride < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: stride %d out of range (expected >= 1)", op, d->stride);
  if (d->pad < 0 || d->pad > d->kernel / 2)
    return FG_FAIL(FG_ERR_INVALID, "%s: pad %d out of range (expected 0..kernel/2 = %d)", op,
                   d->pad, d->kernel / 2);
  return FG_OK;
}

/* Checks the descriptor and the input-shaped tensor `img` [N,C,H,W]; *ho, *wo = output extents. */
static fg_status check_pool(const char *op, const fg_pool_desc *d, const char *img_name,
                            const fg_tensor *img, int64_t *ho, int64_t *wo) {
  FG_TRY(check_pool_desc(op, d));
  FG_TRY(check_rank(op, img_name, img, FG_F32, 4));
  const int64_t h = img->shape[2], w = img->shape[3];
  if (h + 2 * (int64_t)d->pad < d->kernel || w + 2 * (int64_t)d->pad < d->kernel)
    return FG_FAIL(FG_ERR_SHAPE,
                   "%s: the %dx%d window does not fit the %lldx%lld input of %s padded by %d", op,
                   d->kernel, d->kernel, (long long)h, (long long)w, img_name, d->pad);
  *ho = fg_conv_out_extent(h, d->kernel, d->stride, d->pad);
  *wo = fg_conv_out_extent(w, d->kernel, d->stride, d->pad);
  return FG_OK;
}

/* pooled-shaped tensor [N,C,Ho,Wo] of `dtype`. */
static fg_status check_pooled(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                              const fg_tensor *img, int64_t ho, int64_t wo) {
  FG_TRY(check_rank(op, arg, t, dtype, 4));
  const int64_t e[4] = {img->shape[0], img->shape[1], ho, wo};
  return check_extents(op, arg, t, e);
}

fg_status fg_maxpool_forward(const fg_pool_desc *d, const fg_tensor *x, fg_tensor *y,
                             fg_tensor *argmax) {
  const char *op = fg_op_name(FG_OP_MAXPOOL_FORWARD);
  int64_t ho = 0, wo = 0;
  FG_TRY(check_pool(op, d, "x", x, &ho, &wo));
  FG_TRY(check_pooled(op, "y", y, FG_F32, x, ho, wo));
  if (argmax) FG_TRY(check_pooled(op, "argmax", argmax, FG_U8, x, ho, wo));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_MAXPOOL_FORWARD, (const fg_tensor *[]){x, y, argmax}, 3, &b));
  return b->maxpool_forward(b, d, x, y, argmax);
}

fg_status fg_maxpool_backward(const fg_pool_desc *d, const fg_tensor *dy, const fg_tensor *argmax,
                              fg_tensor *dx, int accumulate) {
  const char *op = fg_op_name(FG_OP_MAXPOOL_BACKWARD);
  int64_t ho = 0, wo = 0;
  FG_TRY(check_pool(op, d, "dx", dx, &ho, &wo));
  FG_TRY(check_pooled(op, "dy", dy, FG_F32, dx, ho, wo));
  FG_TRY(check_pooled(op, "argmax", argmax, FG_U8, dx, ho, wo));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_MAXPOOL_BACKWARD, (const fg_tensor *[]){dy, argmax, dx}, 3, &b));
  fg_index_report bad = {0, 0, 0};
  FG_TRY(b->maxpool_backward(b, d, dy, argmax, dx, accumulate, &bad));
  char window[64];
  snprintf(window, sizeof window, "their %dx%d window or the input", d->kernel, d->kernel);
  return fg_index_report_status(op, &bad, "argmax positions", window, "position");
}

/* Checks the input-shaped `img` [N,C,H,W] (H*W > 0) and the pooled `vec` [N,C]. */
static fg_status check_avgpool(const char *op, const char *img_name, const fg_tensor *img,
                               const char *vec_name, const fg_tensor *vec) {
  FG_TRY(check_rank(op, img_name, img, FG_F32, 4));
  if (img->shape[2] == 0 || img->shape[3] == 0) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s with an empty spatial extent", op, img_name,
                   fg_shape_str(img, buf, sizeof buf));
  }
  return check_matrix(op, vec_name, vec, img->shape[0], img->shape[1]);
}

fg_status fg_avgpool_global_forward(const fg_tensor *x, fg_tensor *y) {
  const char *op = fg_op_name(FG_OP_AVGPOOL_GLOBAL_FORWARD);
  FG_TRY(check_avgpool(op, "x", x, "y", y));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_AVGPOOL_GLOBAL_FORWARD, (const fg_tensor *[]){x, y}, 2, &b));
  return b->avgpool_global_forward(b, x, y);
}

fg_status fg_avgpool_global_backward(const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  const char *op = fg_op_name(FG_OP_AVGPOOL_GLOBAL_BACKWARD);
  FG_TRY(check_avgpool(op, "dx", dx, "dy", dy));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_AVGPOOL_GLOBAL_BACKWARD, (const fg_tensor *[]){dy, dx}, 2, &b));
  return b->avgpool_global_backward(b, dy, dx, accumulate);
}

/* Checks the input-shaped `img` [N,C,H,W] (H, W >= 1) and the upsampled `up` [N,C,Ho,Wo] with
 * Ho in {2H - 1, 2H} and Wo in {2W - 1, 2W}. */
static fg_status check_upsample2x(const char *op, const char *img_name, const fg_tensor *img,
                                  const char *up_name, const fg_tensor *up) {
  char a[64], b[64];
  FG_TRY(check_rank(op, img_name, img, FG_F32, 4));
  if (img->shape[2] == 0 || img->shape[3] == 0)
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s with an empty spatial extent", op, img_name,
                   fg_shape_str(img, a, sizeof a));
  FG_TRY(check_rank(op, up_name, up, FG_F32, 4));
  FG_TRY(fg_check_extent(op, up_name, up, 0, img->shape[0]));
  FG_TRY(fg_check_extent(op, up_name, up, 1, img->shape[1]));
  for (int d = 2; d < 4; d++)
    if (up->shape[d] != 2 * img->shape[d] && up->shape[d] != 2 * img->shape[d] - 1)
      return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s, expected spatial extents %lld or %lld by %lld or %lld for %s %s",
                     op, up_name, fg_shape_str(up, a, sizeof a), (long long)(2 * img->shape[2] - 1),
                     (long long)(2 * img->shape[2]), (long long)(2 * img->shape[3] - 1), (long long)(2 * img->shape[3]),
                     img_name, fg_shape_str(img, b, sizeof b));
  return FG_OK;
}

fg_status fg_upsample2x_bilinear_forward(const fg_tensor *x, fg_tensor *y) {
  const char *op = fg_op_name(FG_OP_UPSAMPLE2X_BILINEAR_FORWARD);
  FG_TRY(check_upsample2x(op, "x", x, "y", y));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_UPSAMPLE2X_BILINEAR_FORWARD, (const fg_tensor *[]){x, y}, 2, &b));
  return b->upsample2x_bilinear_forward(b, x, y);
}

fg_status fg_upsample2x_bilinear_backward(const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  const char *op = fg_op_name(FG_OP_UPSAMPLE2X_BILINEAR_BACKWARD);
  FG_TRY(check_upsample2x(op, "dx", dx, "dy", dy));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_UPSAMPLE2X_BILINEAR_BACKWARD, (const fg_tensor *[]){dy, dx}, 2, &b));
  return b->upsample2x_bilinear_backward(b, dy, dx, accumulate);
}
