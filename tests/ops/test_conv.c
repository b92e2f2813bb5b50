/* Op suite: 2-D convolution (forward with and without bias, backward data assigned and
 * accumulated, backward filter with and without dbias) on every backend against the
 * double-precision reference (tests/ref/ref_nn.h), in the tolerance class. The table covers odd
 * sizes, N = 1, N = 0 (parameter gradients are exact zeros), more images than the CPU's lanes,
 * stride 1 and 2, pad 0, 1 and 3, kernels 1, 3 and 7 (one larger than the input), grouped and
 * depthwise convolutions, channel counts 3 to 64, the misaligned and partial-batch layouts, and
 * shapes large enough for the CPU's threaded and vectorised paths; then the entry points'
 * descriptor and shape errors; then finite differences: the reference's backward against its
 * forward, and each backend's backward against its forward. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "ops/harness/op_suite.h"
#include "ref/ref_nn.h"

typedef struct conv_row {
  int n, c, h, w, o, k, stride, pad, groups;
  int layout;
  fg_status expect; /* descriptor errors: the status and a fragment of the message */
  const char *text;
} conv_row;

static const conv_row ROWS[] = {
    /* n  c   h   w   o  k  s  p  g */
    {1, 3, 7, 9, 5, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},     /* odd sizes, 3x3 "same", N = 1 */
    {3, 4, 11, 10, 6, 3, 2, 1, 1, FGT_ALIGNED, FG_OK, NULL},   /* stride 2 */
    {3, 5, 9, 9, 7, 3, 1, 0, 1, FGT_ALIGNED, FG_OK, NULL},     /* pad 0 */
    {3, 5, 9, 9, 7, 1, 1, 0, 1, FGT_ALIGNED, FG_OK, NULL},     /* 1x1 stride 1 pad 0 (direct) */
    {3, 6, 8, 7, 4, 1, 2, 0, 1, FGT_ALIGNED, FG_OK, NULL},     /* 1x1 stride 2 (shortcut) */
    {2, 3, 6, 5, 5, 1, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},     /* 1x1 pad 1 */
    {3, 3, 13, 11, 5, 7, 2, 3, 1, FGT_ALIGNED, FG_OK, NULL},   /* 7x7 pad 3 stride 2 */
    {1, 2, 5, 6, 3, 7, 1, 3, 1, FGT_ALIGNED, FG_OK, NULL},     /* 7x7 larger than the input */
    {1, 5, 10, 9, 5, 3, 1, 1, 5, FGT_ALIGNED, FG_OK, NULL},    /* depthwise */
    {3, 6, 9, 11, 12, 3, 2, 0, 6, FGT_ALIGNED, FG_OK, NULL},   /* depthwise x2, stride 2, pad 0 */
    {5, 6, 7, 7, 9, 3, 1, 1, 3, FGT_ALIGNED, FG_OK, NULL},     /* groups 3, more images / lanes */
    {6, 4, 5, 5, 8, 1, 1, 0, 2, FGT_ALIGNED, FG_OK, NULL},     /* direct and grouped */
    {9, 3, 6, 7, 5, 3, 2, 1, 1, FGT_ALIGNED, FG_OK, NULL},     /* 9 images over 4 lanes */
    {7, 5, 12, 11, 8, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},   /* 7 images, 2 threads share lanes */
    {3, 6, 9, 9, 6, 3, 2, 1, 3, FGT_ALIGNED, FG_OK, NULL},     /* grouped, 3 lanes */
    {1, 4, 10, 9, 6, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},    /* one image: one lane */
    /* One lane with GEMMs (M N K = 64 * 400 * 288) big enough for OpenBLAS to thread them if it
     * were allowed: a threaded sgemm rounds differently, so the run-twice check (1 and 2
     * threads) sees it. 64 channels; also the vectorised 3x3 path. */
    {1, 32, 20, 20, 64, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},
    {5, 16, 14, 14, 32, 1, 1, 0, 1, FGT_ALIGNED, FG_OK, NULL}, /* direct 1x1, 16 channels */
    {2, 64, 5, 5, 16, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},   /* 64 input channels */
    {2, 16, 9, 7, 16, 3, 1, 1, 1, FGT_MISALIGNED, FG_OK, NULL},
    {3, 4, 11, 10, 6, 3, 2, 1, 1, FGT_MISALIGNED, FG_OK, NULL},
    {5, 6, 7, 7, 9, 3, 1, 1, 3, FGT_PARTIAL, FG_OK, NULL},
    {0, 4, 6, 6, 8, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},     /* N = 0: empty sums */
    {2, 4, 6, 6, 8, 3, 1, 1, 1, FGT_ALIGNED, FG_OK, NULL},     /* the base of the error rows */
    {2, 4, 6, 6, 8, 3, 0, 1, 1, FGT_ALIGNED, FG_ERR_INVALID, "stride 0 out of range"},
    {2, 4, 6, 6, 8, 3, 1, -1, 1, FGT_ALIGNED, FG_ERR_INVALID, "pad -1 out of range"},
    /* groups 3 divides neither the 4 channels nor the 8 outputs */
    {2, 4, 6, 6, 8, 3, 1, 1, 3, FGT_ALIGNED, FG_ERR_SHAPE,
     "groups 3 does not divide the 4 channels of"},
};
enum { ROW_COUNT = sizeof ROWS / sizeof ROWS[0], BASE = 23 };

/* Each row runs in two variants: case 2 row + variant. */
static const conv_row *row_of(int index) { return &ROWS[index / 2]; }

enum { X, W, B, Y, DY, DX, DW, DB };

static fg_ref_conv2d_shape ref_shape(const conv_row *r) {
  fg_ref_conv2d_shape s = {r->n, r->c, r->h, r->w, r->o, r->k, r->k, r->stride, r->pad, r->groups};
  return s;
}

static fg_conv_desc desc_of(const conv_row *r) {
  fg_conv_desc d = {r->stride, r->pad, r->groups};
  return d;
}

/* Output extents; for descriptor-error rows whatever the formula gives with a stride of 1. */
static void out_extents(const conv_row *r, int64_t *ho, int64_t *wo) {
  const int64_t s = r->stride > 0 ? r->stride : 1, p = r->pad > 0 ? r->pad : 0;
  *ho = fg_ref_out_extent(r->h, r->k, s, p);
  *wo = fg_ref_out_extent(r->w, r->k, s, p);
}

static void start(fgt_op *op, const char *opname, int index, const char *variant) {
  const conv_row *r = row_of(index);
  fgt_name(op, "%s n%d c%d %dx%d o%d k%d s%d p%d g%d%s%s", opname, r->n, r->c, r->h, r->w, r->o,
           r->k, r->stride, r->pad, r->groups, variant, fgt_layout_name(r->layout));
  op->row = r;
  fgt_layout(op, r->layout);
  if (r->expect != FG_OK) fgt_expect_error(op, r->expect, r->text, NULL);
}

/* Declares the image-, weight- and output-shaped arguments a call uses. */
static float *image_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  const conv_row *r = op->row;
  return fgt_arg4(op, i, name, role, r->n, r->c, r->h, r->w);
}

static float *weight_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  const conv_row *r = op->row;
  return fgt_arg4(op, i, name, role, r->o, r->c / r->groups, r->k, r->k);
}

static float *output_arg(fgt_op *op, int i, const char *name, fgt_role role) {
  const conv_row *r = op->row;
  int64_t ho, wo;
  out_extents(r, &ho, &wo);
  return fgt_arg4(op, i, name, role, r->n, r->o, ho, wo);
}

/* Gradients of an empty batch are exact zeros; everything else is in the tolerance class. */
static fgt_tol tol_of(const conv_row *r) { return r->n == 0 ? FGT_EXACT : FGT_TOL; }

static fg_status workspace_forward(fgt_op *op, size_t *bytes) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_workspace(&d, fgt_t(op, X), fgt_t(op, W), bytes);
}

static fg_status workspace_backward_data(fgt_op *op, size_t *bytes) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_workspace(&d, fgt_t(op, DX), fgt_t(op, W), bytes);
}

static fg_status workspace_backward_filter(fgt_op *op, size_t *bytes) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_workspace(&d, fgt_t(op, X), fgt_t(op, DW), bytes);
}

/* ----------------------------------------------------------------------------------------- */
/* Forward: variant 0 without bias, 1 with bias                                               */

static fg_status forward_call(fgt_op *op) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_forward(&d, fgt_t(op, X), fgt_t(op, W), fgt_t(op, B), fgt_t(op, Y), op->ws);
}

static void build_forward(int index, fgt_op *op) {
  const int with_bias = index % 2;
  start(op, "conv2d_forward", index, with_bias ? " bias" : "");
  const conv_row *r = op->row;
  image_arg(op, X, "x", FGT_IN);
  weight_arg(op, W, "w", FGT_IN);
  if (with_bias) fgt_arg1(op, B, "bias", FGT_IN, r->o);
  output_arg(op, Y, "y", FGT_OUT);
  op->call = forward_call;
  op->workspace = workspace_forward;
  fgt_fill_all(op, -1.0f, 1.0f);
  if (r->expect != FG_OK) return;
  const fg_ref_conv2d_shape s = ref_shape(r);
  fg_ref_conv2d_forward(&s, fgt_widen(op, X), fgt_widen(op, W), with_bias ? fgt_widen(op, B) : NULL,
                        fgt_expect(op, Y, tol_of(r)));
}

/* Error rows (case 2 BASE + variant: n2 c4 6x6 o8 k3 s1 p1 g1). */
static const fgt_error_row FORWARD_ERRORS[] = {
    {2 * BASE, W, 4, {8, 3, 3, 3}, -1, FG_ERR_SHAPE,
     "conv2d_forward: w has shape [8, 3, 3, 3], expected extent 4 in dimension 1", NULL},
    {2 * BASE, Y, 4, {2, 8, 5, 6}, -1, FG_ERR_SHAPE,
     "conv2d_forward: y has shape [2, 8, 5, 6]", NULL},
    {2 * BASE + 1, B, 1, {7}, -1, FG_ERR_SHAPE, "conv2d_forward: bias has shape [7]", NULL},
    {2 * BASE, X, 0, {0}, FG_I32, FG_ERR_SHAPE,
     "conv2d_forward: x has dtype i32, expected f32", NULL},
    {2 * BASE, X, 3, {4, 6, 6}, -1, FG_ERR_SHAPE,
     "conv2d_forward: x has shape [4, 6, 6] (rank 3)", NULL},
    {2 * BASE, W, 4, {8, 4, 9, 9}, -1, FG_ERR_SHAPE,
     "the 9x9 kernel of w does not fit the 6x6 input of x", NULL},
};

static const fgt_suite FORWARD = {"conv2d_forward", 2 * ROW_COUNT, build_forward, FORWARD_ERRORS,
                                  sizeof FORWARD_ERRORS / sizeof FORWARD_ERRORS[0]};
FGT_SUITE_TESTS(conv2d, forward, FORWARD)

/* ----------------------------------------------------------------------------------------- */
/* Backward data: variant 0 assigns dx, 1 accumulates into it                                 */

static fg_status backward_data_call(fgt_op *op) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_backward_data(&d, fgt_t(op, DY), fgt_t(op, W), fgt_t(op, DX),
                                 op->args[DX].role == FGT_INOUT, op->ws);
}

static void build_backward_data(int index, fgt_op *op) {
  const int acc = index % 2;
  start(op, "conv2d_backward_data", index, acc ? " accumulate" : "");
  const conv_row *r = op->row;
  output_arg(op, DY, "dy", FGT_IN);
  weight_arg(op, W, "w", FGT_IN);
  image_arg(op, DX, "dx", acc ? FGT_INOUT : FGT_OUT);
  op->call = backward_data_call;
  op->workspace = workspace_backward_data;
  fgt_fill_all(op, -1.0f, 1.0f);
  if (r->expect != FG_OK) return;
  const fg_ref_conv2d_shape s = ref_shape(r);
  fg_ref_conv2d_backward_data(&s, fgt_widen(op, DY), fgt_widen(op, W),
                              fgt_expect_onto(op, DX, tol_of(r)), acc);
}

static const fgt_error_row BACKWARD_DATA_ERRORS[] = {
    {2 * BASE, DY, 4, {2, 7, 6, 6}, -1, FG_ERR_SHAPE,
     "conv2d_backward_data: dy has shape [2, 7, 6, 6]", NULL},
    {2 * BASE, DX, 4, {2, 5, 6, 6}, -1, FG_ERR_SHAPE,
     "conv2d_backward_data: w has shape [8, 4, 3, 3], expected extent 5", NULL},
};

static const fgt_suite BACKWARD_DATA = {"conv2d_backward_data", 2 * ROW_COUNT, build_backward_data,
                                        BACKWARD_DATA_ERRORS, 2};
FGT_SUITE_TESTS(conv2d, backward_data, BACKWARD_DATA)

/* ----------------------------------------------------------------------------------------- */
/* Backward filter: variant 0 dw only, 1 dw and dbias                                         */

static fg_status backward_filter_call(fgt_op *op) {
  const fg_conv_desc d = desc_of(op->row);
  return fg_conv2d_backward_filter(&d, fgt_t(op, X), fgt_t(op, DY), fgt_t(op, DW), fgt_t(op, DB),
                                   op->ws);
}

static void build_backward_filter(int index, fgt_op *op) {
  const int with_bias = index % 2;
  start(op, "conv2d_backward_filter", index, with_bias ? " dbias" : "");
  const conv_row *r = op->row;
  image_arg(op, X, "x", FGT_IN);
  output_arg(op, DY, "dy", FGT_IN);
  weight_arg(op, DW, "dw", FGT_OUT);
  if (with_bias) fgt_arg1(op, DB, "dbias", FGT_OUT, r->o);
  op->call = backward_filter_call;
  op->workspace = workspace_backward_filter;
  fgt_fill_all(op, -1.0f, 1.0f);
  if (r->expect != FG_OK) return;
  const fg_ref_conv2d_shape s = ref_shape(r);
  double *db = with_bias ? fgt_expect(op, DB, tol_of(r)) : fgt_scratch_d(op, r->o);
  fg_ref_conv2d_backward_filter(&s, fgt_widen(op, X), fgt_widen(op, DY),
                                fgt_expect(op, DW, tol_of(r)), db);
}

static const fgt_error_row BACKWARD_FILTER_ERRORS[] = {
    {2 * BASE, DW, 4, {8, 4, 3, 2}, -1, FG_ERR_SHAPE,
     "conv2d_backward_filter: dy has shape [2, 8, 6, 6], expected extent 7 in dimension 3", NULL},
    {2 * BASE + 1, DB, 1, {7}, -1, FG_ERR_SHAPE,
     "conv2d_backward_filter: dbias has shape [7]", NULL},
};

static const fgt_suite BACKWARD_FILTER = {"conv2d_backward_filter", 2 * ROW_COUNT,
                                          build_backward_filter, BACKWARD_FILTER_ERRORS, 2};
FGT_SUITE_TESTS(conv2d, backward_filter, BACKWARD_FILTER)

/* ----------------------------------------------------------------------------------------- */
/* Entry-point checks that need no device memory                                              */

Test(conv2d, out_extent) {
  cr_assert_eq(fg_conv_out_extent(28, 3, 1, 1), 28);
  cr_assert_eq(fg_conv_out_extent(28, 3, 2, 1), 14);
  cr_assert_eq(fg_conv_out_extent(7, 2, 2, 0), 3); /* floor */
  cr_assert_eq(fg_conv_out_extent(5, 7, 1, 3), 5);
  cr_assert_eq(fg_conv_out_extent(13, 7, 2, 3), 7);
  cr_assert_eq(fg_conv_out_extent(2, 5, 1, 1), 0); /* kernel does not fit */
  cr_assert_eq(fg_conv_out_extent(8, 3, 0, 1), 0); /* invalid stride */
}

/* The workspace query reads shapes only (tensors without data), and the descriptor is
 * checked before anything is dispatched. */
Test(conv2d, workspace_query_and_descriptor_errors) {
  fgt_setup_cpu(1);
  const fg_conv_desc d = {1, 1, 1};
  fg_tensor x = fg_tensor_4d(NULL, 2, 4, 6, 6), w = fg_tensor_4d(NULL, 8, 4, 3, 3);
  fg_tensor bad_w = fg_tensor_4d(NULL, 8, 3, 3, 3), w1 = fg_tensor_4d(NULL, 8, 4, 1, 1);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace(&d, &x, &w, &bytes));
  fgt_assert_error(fg_conv2d_workspace(&d, &x, &bad_w, &bytes), FG_ERR_SHAPE, NULL,
                   "conv2d_workspace: w has shape [8, 3, 3, 3]");
  const fg_conv_desc huge_pad = {1, 1 << 30, 1}; /* a 2^31 x 2^31 output */
  fgt_assert_error(fg_conv2d_workspace(&huge_pad, &x, &w1, &bytes), FG_ERR_SHAPE, NULL,
                   "conv2d_workspace: output 2147483654x2147483654 of x");
  cr_assert(strstr(fg_last_error(), "too large") != NULL, "%s", fg_last_error());
  fgt_assert_error(fg_conv2d_workspace(NULL, &x, &w, &bytes), FG_ERR_INVALID, NULL,
                   "conv2d_workspace: convolution descriptor is missing");
  fg_tensor y = fg_tensor_4d(NULL, 2, 8, 6, 6);
  const fg_workspace none = {NULL, 0};
  fgt_assert_error(fg_conv2d_forward(NULL, &x, &w, NULL, &y, none), FG_ERR_INVALID, NULL,
                   "conv2d_forward: convolution descriptor is missing");
  fgt_assert_error(fg_conv2d_workspace(&d, &x, &w, NULL), FG_ERR_INVALID, NULL, "output pointer");
  /* within a limit: never less than the least, the least itself with limit 0, the same checks */
  size_t least = 0, within0 = 0, unlimited = 0;
  fg_tensor x16 = fg_tensor_4d(NULL, 4, 8, 16, 16), w8 = fg_tensor_4d(NULL, 8, 8, 3, 3);
  FGT_OK(fg_conv2d_workspace(&d, &x16, &w8, &least));
  FGT_OK(fg_conv2d_workspace_within(&d, &x16, &w8, 0, &within0));
  FGT_OK(fg_conv2d_workspace_within(&d, &x16, &w8, SIZE_MAX, &unlimited));
  cr_assert_eq(within0, least);
  cr_assert_geq(unlimited, least);
  fgt_assert_error(fg_conv2d_workspace_within(&d, &x, &bad_w, SIZE_MAX, &bytes), FG_ERR_SHAPE,
                   NULL, "conv2d_workspace: w has shape [8, 3, 3, 3]");
  fgt_assert_error(fg_conv2d_workspace_within(&d, &x, &w, 0, NULL), FG_ERR_INVALID, NULL,
                   "output pointer");
  const fg_conv_desc g2 = {1, 1, 2}; /* w must have C/groups = 2 input channels */
  fgt_assert_error(fg_conv2d_workspace(&g2, &x, &w, &bytes), FG_ERR_SHAPE, NULL,
                   "conv2d_workspace: w has shape [8, 4, 3, 3], expected extent 2 in dimension 1");
  const fg_conv_desc g3 = {1, 1, 3};
  fg_tensor w_g3 = fg_tensor_4d(NULL, 9, 1, 3, 3); /* 9 outputs: only the 4 channels fail */
  fgt_assert_error(fg_conv2d_workspace(&g3, &x, &w_g3, &bytes), FG_ERR_SHAPE, NULL,
                   "groups 3 does not divide the 4 channels of x");
  fg_tensor x12 = fg_tensor_4d(NULL, 2, 12, 6, 6), w_o8 = fg_tensor_4d(NULL, 8, 4, 3, 3);
  fgt_assert_error(fg_conv2d_workspace(&g3, &x12, &w_o8, &bytes), FG_ERR_SHAPE, NULL,
                   "groups 3 does not divide the 8 output channels of w");
  fg_tensor w_cuda = w; /* tensors on two devices */
  w_cuda.device.kind = FG_DEV_CUDA;
  fgt_assert_error(fg_conv2d_workspace(&d, &x, &w_cuda, &bytes), FG_ERR_INVALID, NULL,
                   "tensors live on different devices");
}

/* ----------------------------------------------------------------------------------------- */
/* Finite differences                                                                         */

/* Small cases: grouped with stride 2 and pad 1, depthwise, 1x1, 7x7 pad 3. */
static const conv_row FD_ROWS[] = {
    {2, 4, 5, 4, 4, 3, 2, 1, 2, 0, FG_OK, NULL},
    {1, 3, 4, 5, 3, 3, 1, 1, 3, 0, FG_OK, NULL},
    {2, 2, 3, 3, 3, 1, 1, 0, 1, 0, FG_OK, NULL},
    {1, 2, 3, 4, 2, 7, 1, 3, 1, 0, FG_OK, NULL},
};

typedef struct conv_sizes {
  fg_ref_conv2d_shape s;
  int64_t nx, nw, ny;
} conv_sizes;

static conv_sizes sizes_of(const conv_row *r) {
  conv_sizes z;
  z.s = ref_shape(r);
  z.nx = (int64_t)r->n * r->c * r->h * r->w;
  z.nw = (int64_t)r->o * (r->c / r->groups) * r->k * r->k;
  z.ny = (int64_t)r->n * r->o * fg_ref_conv2d_out_h(&z.s) * fg_ref_conv2d_out_w(&z.s);
  return z;
}

/* L = <conv_ref(x, w, b), r>, everything in double. */
typedef struct ref_loss_ctx {
  const fg_ref_conv2d_shape *s;
  const double *x, *w, *b, *r;
  double *y;
  int64_t ny;
} ref_loss_ctx;

static double ref_loss(void *p) {
  ref_loss_ctx *c = p;
  fg_ref_conv2d_forward(c->s, c->x, c->w, c->b, c->y);
  double l = 0.0;
  for (int64_t i = 0; i < c->ny; i++) l += c->y[i] * c->r[i];
  return l;
}

/* The reference is linear in each argument, so central differences carry no truncation error:
 * only double rounding (~1e-9 here) separates them from the reference's backward. */
Test(conv2d, reference_backward_matches_finite_differences) {
  const fgt_fd_opts o = {1e-6, 1e-7, 1e-7, 1, 0.0, NULL, 0};
  for (size_t k = 0; k < sizeof FD_ROWS / sizeof FD_ROWS[0]; k++) {
    const conv_sizes z = sizes_of(&FD_ROWS[k]);
    double *x = fgt_alloc_uniform(z.nx, 800 + k, -1.0, 1.0),
           *w = fgt_alloc_uniform(z.nw, 810 + k, -1.0, 1.0),
           *b = fgt_alloc_uniform(z.s.o, 820 + k, -1.0, 1.0);
    double *r = fgt_alloc_uniform(z.ny, 830 + k, -1.0, 1.0),
           *y = fgt_alloc_uniform(z.ny, 0, -1.0, 1.0);
    double *dx = fgt_alloc_uniform(z.nx, 0, -1.0, 1.0), *dw = fgt_alloc_uniform(z.nw, 0, -1.0, 1.0),
           *db = fgt_alloc_uniform(z.s.o, 0, -1.0, 1.0);
    fg_ref_conv2d_backward_data(&z.s, r, w, dx, 0);
    fg_ref_conv2d_backward_filter(&z.s, x, r, dw, db);
    ref_loss_ctx c = {&z.s, x, w, b, r, y, z.ny};
    char what[64];
    snprintf(what, sizeof what, "reference conv case %zu dx", k);
    fgt_fd_check(what, ref_loss, &c, x, z.nx, dx, &o);
    snprintf(what, sizeof what, "reference conv case %zu dw", k);
    fgt_fd_check(what, ref_loss, &c, w, z.nw, dw, &o);
    snprintf(what, sizeof what, "reference conv case %zu dbias", k);
    fgt_fd_check(what, ref_loss, &c, b, z.s.o, db, &o);
    free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db);
  }
}

/* One convolution's tensors on a device. */
typedef struct conv_dev {
  fg_conv_desc d;
  fgt_dbuf x, w, b, y;
  fg_workspace ws;
  fg_region ws_region;
} conv_dev;

static fg_status conv_dev_forward(void *p) {
  conv_dev *c = p;
  return fg_conv2d_forward(&c->d, &c->x.t, &c->w.t, &c->b.t, &c->y.t, c->ws);
}

/* Directional differences of L = <conv(x, w, b), r> on the backend, against its backward. The
 * op is linear in each argument, inputs, direction and h = 2^-7 lie on grids that keep the
 * perturbed inputs exact in float (fgt_quantize), so only the float rounding of y (~1e-7
 * relative per element) against a difference of O(2 h sqrt(n)) remains: 2e-3 relative is a
 * wide margin, while a wrong gradient (a wrong index, a missing term, a wrong sign) is off by
 * O(1). */
static void backend_fd(fg_device_kind kind) {
  const fg_device dev = fgt_backend_open(kind);
  const conv_row rows[] = {{3, 4, 9, 8, 6, 3, 2, 1, 2, 0, FG_OK, NULL},
                           {2, 3, 7, 7, 4, 1, 1, 0, 1, 0, FG_OK, NULL}};
  for (size_t k = 0; k < 2; k++) {
    const conv_row *row = &rows[k];
    const conv_sizes z = sizes_of(row);
    const int64_t sx[4] = {row->n, row->c, row->h, row->w};
    const int64_t sw[4] = {row->o, row->c / row->groups, row->k, row->k};
    const int64_t sy[4] = {row->n, row->o, fg_ref_conv2d_out_h(&z.s), fg_ref_conv2d_out_w(&z.s)};
    conv_dev c = {desc_of(row),
                  fgt_dbuf_alloc(dev, FG_F32, 4, sx),
                  fgt_dbuf_alloc(dev, FG_F32, 4, sw),
                  fgt_dbuf_alloc(dev, FG_F32, 1, sy + 1),
                  fgt_dbuf_alloc(dev, FG_F32, 4, sy),
                  {NULL, 0},
                  {0}};
    fgt_dbuf dy = fgt_dbuf_alloc(dev, FG_F32, 4, sy), dx = fgt_dbuf_alloc(dev, FG_F32, 4, sx);
    fgt_dbuf dw = fgt_dbuf_alloc(dev, FG_F32, 4, sw), db = fgt_dbuf_alloc(dev, FG_F32, 1, sy + 1);
    double *x = fgt_alloc_uniform(z.nx, 1000 + k, -1.0, 1.0),
           *w = fgt_alloc_uniform(z.nw, 1010 + k, -1.0, 1.0),
           *b = fgt_alloc_uniform(z.s.o, 1020 + k, -1.0, 1.0);
    double *r = fgt_alloc_uniform(z.ny, 1030 + k, -1.0, 1.0);
    for (int64_t i = 0; i < z.ny; i++) r[i] = (float)r[i]; /* dy holds exactly r */
    fgt_quantize(x, z.nx, 1.0 / 1024), fgt_quantize(w, z.nw, 1.0 / 1024),
        fgt_quantize(b, z.s.o, 1.0 / 1024);
    fgt_upload_d(&c.x, x), fgt_upload_d(&c.w, w), fgt_upload_d(&c.b, b), fgt_upload_d(&dy, r);
    size_t bytes = 0;
    fg_status s = fg_conv2d_workspace(&c.d, &c.x.t, &c.w.t, &bytes);
    if (s == FG_ERR_UNSUPPORTED)
      cr_skip_test("conv2d on %s: %s", fgt_kind_name(kind), fg_last_error());
    FGT_OK(s);
    size_t roomy = 0; /* every backend: a plan within a limit never takes less than the least */
    FGT_OK(fg_conv2d_workspace_within(&c.d, &c.x.t, &c.w.t, SIZE_MAX, &roomy));
    cr_assert_geq(roomy, bytes, "conv2d case %zu on %s: %zu bytes within no limit, %zu least", k,
                  fgt_kind_name(kind), roomy, bytes);
    c.ws = fgt_workspace_alloc(dev, bytes, &c.ws_region);
    FGT_OK(fg_conv2d_backward_data(&c.d, &dy.t, &c.w.t, &dx.t, 0, c.ws));
    FGT_OK(fg_conv2d_backward_filter(&c.d, &c.x.t, &dy.t, &dw.t, &db.t, c.ws));
    double *gx = fgt_alloc_uniform(z.nx, 0, -1.0, 1.0), *gw = fgt_alloc_uniform(z.nw, 0, -1.0, 1.0),
           *gb = fgt_alloc_uniform(z.s.o, 0, -1.0, 1.0);
    fgt_download_d(gx, &dx), fgt_download_d(gw, &dw), fgt_download_d(gb, &db);
    const fgt_fd_param params[3] = {
        {"dx", &c.x, x, gx, z.nx}, {"dw", &c.w, w, gw, z.nw}, {"dbias", &c.b, b, gb, z.s.o}};
    char op[32];
    snprintf(op, sizeof op, "conv2d case %zu", k);
    fgt_fd_check_params(op, kind, conv_dev_forward, &c, &c.y, r, NULL, params, 3, 1.0 / 128, 1e-6,
                        2e-3, 1040 + 10 * k);
    free(x), free(w), free(b), free(r), free(gx), free(gw), free(gb);
    fgt_dbuf_free(&c.x), fgt_dbuf_free(&c.w), fgt_dbuf_free(&c.b), fgt_dbuf_free(&c.y);
    fgt_dbuf_free(&dy), fgt_dbuf_free(&dx), fgt_dbuf_free(&dw), fgt_dbuf_free(&db);
    fg_region_free(&c.ws_region);
  }
}

Test(conv2d, backward_matches_finite_differences_cpu) { backend_fd(FG_DEV_CPU); }
Test(conv2d, backward_matches_finite_differences_cuda) { backend_fd(FG_DEV_CUDA); }
