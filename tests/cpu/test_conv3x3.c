/* The dense 3x3 stride-1 convolution kernels (cpu/conv3x3.c, AVX2/FMA: Winograd F(4x4, 3x3)
 * or F(2x2, 3x3) from 8 input channels and 16 tiles, or on small images of 128 channels with
 * several images per block, else direct; weight gradient as Winograd F(3x3, 2x2), or
 * by output-channel vectors on small planes, or direct) and the generic path they replace: both
 * against the double-precision references (tests/ref/ref_nn.h) on shapes that exercise every
 * tile width, odd output extents (half tiles), channel counts that are not multiples of 4 (or
 * odd), pads 0..2, uneven lanes, grouped images, images cut into several blocks of tile rows,
 * Winograd blocks of several small images (full and partial) and Winograd weight-gradient
 * batches across images, every weight-gradient path, both Winograd tiles and the grouped blocks
 * reached;
 * bit-identical results for 1 and 2 threads; and workspace sizes derived by hand from the
 * documented layout, refused when one byte short. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "cpu/conv_internal.h"
#include "ref/ref_nn.h"
#include "engine/backend/ops.h"

/* Sums of at most 144 products forward and 480 for the weight gradient, of O(1) values: float
 * rounding stays far below these bounds, indexing errors are O(0.1..1). Cases with longer sums
 * (big images, many channels) scale the absolute tolerance with the number of terms. */
#define C3_ATOL 1e-5
#define C3_RTOL 1e-4
#define C3_TERMS 480
#define C3_WINO4_ERROR 32.0

typedef struct c3_case {
  int n, c, h, w, o, pad;
} c3_case;

static const c3_case CASES[] = {
    /* n  c   h   w  o  pad */
    {1, 3, 7, 9, 5, 1},    /* 10 vectors per plane: tiles of 3, 3, 2, 2; O not a multiple of 4 */
    {3, 5, 6, 7, 6, 1},    /* fewer images than lanes, every lane with its own partial */
    {9, 4, 5, 5, 8, 1},    /* 9 images over 4 lanes, weight-gradient groups of 3 and 2 */
    {2, 2, 4, 4, 3, 0},    /* pad 0 (backward data pads by 2); one vector per plane */
    {2, 3, 5, 4, 4, 2},    /* pad 2 (backward data pads by 0) */
    {1, 1, 1, 1, 4, 1},    /* a 1x1 image */
    {4, 2, 12, 10, 4, 1},  /* one input channel pair, 480 terms per weight gradient */
    {2, 16, 14, 14, 8, 1}, /* cnn-like: 16 channels, 14x14 (Winograd forward and backward) */
    {1, 16, 28, 28, 8, 1}, /* cnn-like, 28x28: two 8-tile vectors per tile row, 3 blocks */
    {1, 8, 7, 9, 5, 1},    /* Winograd: odd extents (half tiles), O = 5 (rows padded to 8) */
    {2, 9, 11, 10, 8, 0},  /* Winograd, pad 0 (backward data pads by 2), odd output rows */
    {2, 8, 8, 9, 8, 2},    /* Winograd, pad 2 (backward data pads by 0) */
    {9, 8, 8, 8, 12, 1},   /* Winograd, 9 images over 4 lanes, 12 input channels backward */
    {1, 8, 76, 76, 4, 1},  /* Winograd: one image cut into blocks of tile rows */
    {4, 16, 28, 28, 16, 1}, /* Winograd weight gradient: batches of 4 tile rows across images */
    {3, 12, 9, 7, 20, 2},  /* ... pad 2, odd extents, O = 20 (32 with zero rows), C = 12 */
    {20, 128, 4, 4, 128, 1}, /* Winograd on 4x4 images, blocks of 12 and 8 of them */
    {20, 128, 3, 3, 128, 1}, /* ... 3x3 outputs (half tiles) */
    {7, 128, 8, 7, 128, 1},  /* ... 4 x 4 = 16 tiles (half tiles): 3 images a block, then 1 */
    {3, 12, 30, 33, 20, 0},  /* F(4x4) forward: pad 0, 28x31 outputs (a 3-wide last tile),
                              * O = 20 (rows padded to 24), 8 tiles a row */
    {2, 10, 21, 19, 12, 2},  /* F(4x4): pad 2, 23x21 outputs; backward data pad 0 */
};
enum { C3_CASES = sizeof CASES / sizeof CASES[0] };

/* ----------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static float *frand(size_t n, uint64_t seed) {
  float *p = malloc((n ? n : 1) * sizeof *p);
  cr_assert_not_null(p);
  fgt_fill_uniform(p, n, seed, -1.0f, 1.0f);
  return p;
}

static double *widen(const float *f, size_t n) {
  double *d = malloc((n ? n : 1) * sizeof *d);
  cr_assert_not_null(d);
  for (size_t i = 0; i < n; i++) d[i] = f[i];
  return d;
}

static void fill_nan(float *p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* A workspace of `bytes` full of NaN: stale contents must never be read. */
static fg_workspace nan_workspace(size_t bytes) {
  fg_workspace ws = {NULL, bytes};
  if (bytes) {
    ws.ptr = aligned_alloc(64, (bytes + 63) / 64 * 64);
    cr_assert_not_null(ws.ptr);
    fill_nan(ws.ptr, bytes / sizeof(float));
  }
  return ws;
}

static void expect_close(const char *what, const char *name, const float *got, const double *want,
                         size_t n, double atol) {
  char msg[256];
  cr_assert(fgt_allclose(got, want, n, atol, C3_RTOL, msg, sizeof msg), "%s [%s]: %s", what, name,
            msg);
}

/* Everything one case needs: inputs, their double copies, outputs. */
typedef struct c3_data {
  c3_case k;
  fg_conv_desc desc;
  fg_ref_conv2d_shape s;
  int64_t ho, wo;
  size_t nx, nw, ny;
  char name[96];
  float *x, *w, *b, *dy, *dx0;
  double *xd, *wd, *bd, *dyd, *dx0d;
} c3_data;

static c3_data c3_setup(const c3_case *k, uint64_t seed) {
  c3_data d;
  d.k = *k;
  d.desc = (fg_conv_desc){1, k->pad, 1};
  d.s = (fg_ref_conv2d_shape){k->n, k->c, k->h, k->w, k->o, 3, 3, 1, k->pad, 1};
  d.ho = fg_ref_conv2d_out_h(&d.s);
  d.wo = fg_ref_conv2d_out_w(&d.s);
  d.nx = (size_t)(k->n * k->c * k->h * k->w);
  d.nw = (size_t)(k->o * k->c * 9);
  d.ny = (size_t)(k->n * k->o * d.ho * d.wo);
  snprintf(d.name, sizeof d.name, "n%d c%d %dx%d o%d p%d, %s", k->n, k->c, k->h, k->w, k->o,
           k->pad, fg_cpu_uses_avx2() ? "avx2" : "generic");
  d.x = frand(d.nx, seed), d.w = frand(d.nw, seed + 1), d.b = frand((size_t)k->o, seed + 2);
  d.dy = frand(d.ny, seed + 3), d.dx0 = frand(d.nx, seed + 4);
  d.xd = widen(d.x, d.nx), d.wd = widen(d.w, d.nw), d.bd = widen(d.b, (size_t)k->o);
  d.dyd = widen(d.dy, d.ny), d.dx0d = widen(d.dx0, d.nx);
  return d;
}

static void c3_free(c3_data *d) {
  free(d->x), free(d->w), free(d->b), free(d->dy), free(d->dx0);
  free(d->xd), free(d->wd), free(d->bd), free(d->dyd), free(d->dx0d);
}

/* Tensors of a case over the given output buffers. */
typedef struct c3_tensors {
  fg_tensor x, w, b, y, dy, dx, dw, db;
} c3_tensors;

static c3_tensors c3_views(const c3_data *d, float *y, float *dx, float *dw, float *db) {
  const c3_case *k = &d->k;
  c3_tensors t;
  t.x = fg_tensor_4d(d->x, k->n, k->c, k->h, k->w);
  t.w = fg_tensor_4d(d->w, k->o, k->c, 3, 3);
  t.b = fg_tensor_1d(d->b, k->o);
  t.y = fg_tensor_4d(y, k->n, k->o, d->ho, d->wo);
  t.dy = fg_tensor_4d(d->dy, k->n, k->o, d->ho, d->wo);
  t.dx = fg_tensor_4d(dx, k->n, k->c, k->h, k->w);
  t.dw = fg_tensor_4d(dw, k->o, k->c, 3, 3);
  t.db = fg_tensor_1d(db, k->o);
  return t;
}

/* ----------------------------------------------------------------------------------------- */
/* Against the reference                                                                      */

/* The workspace case k's three calls need within `limit` bytes (0: the least). */
static size_t workspace_within(const c3_case *k, size_t limit) {
  c3_data d = c3_setup(k, 700);
  c3_tensors t = c3_views(&d, NULL, NULL, NULL, NULL);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace_within(&d.desc, &t.x, &t.w, limit, &bytes));
  c3_free(&d);
  return bytes;
}

/* The Winograd output tile of case k's forward (backward 0) or backward data (1) given a
 * workspace of ws_bytes: 2, 4, or 0 when that direction runs directly. */
static int wino_tile_of(const c3_case *k, size_t ws_bytes, int backward) {
  if (!fg_cpu_uses_avx2()) return 0; /* the generic path */
  c3_data d = c3_setup(k, 700);
  c3_tensors t = c3_views(&d, NULL, NULL, NULL, NULL);
  const int tile =
      fg_cpu_conv3x3_wino_tile(fg_cpu_backend(), &d.desc, &t.x, &t.w, ws_bytes, backward);
  c3_free(&d);
  return tile;
}

/* Case k's three calls against the reference, given the least workspace (roomy 0) or what
 * they would take with no limit (1: F(4x4, 3x3) wherever it applies). */
static void check_case(const c3_case *k, uint64_t seed, int roomy) {
  c3_data d = c3_setup(k, seed);
  float *y = malloc(d.ny * sizeof *y), *dx = malloc(d.nx * sizeof *dx);
  float *dw = malloc(d.nw * sizeof *dw), *db = malloc((size_t)k->o * sizeof *db);
  double *yr = malloc(d.ny * sizeof *yr), *dxr = malloc(d.nx * sizeof *dxr);
  double *dwr = malloc(d.nw * sizeof *dwr), *dbr = malloc((size_t)k->o * sizeof *dbr);
  cr_assert(y && dx && dw && db && yr && dxr && dwr && dbr);
  c3_tensors t = c3_views(&d, y, dx, dw, db);
  const size_t bytes = workspace_within(k, roomy ? SIZE_MAX : 0);
  fg_workspace ws = nan_workspace(bytes);
  /* the longest sum: the weight gradient's over pixels, or a direction's over 9 taps a channel */
  double terms = (double)(k->n * d.ho * d.wo);
  if (9.0 * k->c > terms) terms = 9.0 * k->c;
  if (9.0 * k->o > terms) terms = 9.0 * k->o;
  const double atol = terms > C3_TERMS ? C3_ATOL * terms / C3_TERMS : C3_ATOL;
  /* F(4x4, 3x3)'s transforms amplify the rounding of a sum: per axis their row sums are 10, 19
   * and 1/2 (B^T, A^T, G) against F(2x2)'s 2, 3 and 3/2, a worst case about 100 times F(2x2)'s
   * in 2-D; these cases reach about 12 times. C3_WINO4_ERROR times the bound: still far below
   * an indexing error */
  const double atol_fwd = wino_tile_of(k, bytes, 0) == 4 ? C3_WINO4_ERROR * atol : atol;
  const double atol_bwd = wino_tile_of(k, bytes, 1) == 4 ? C3_WINO4_ERROR * atol : atol;

  for (int with_bias = 0; with_bias <= 1; with_bias++) {
    fill_nan(y, d.ny);
    FGT_OK(fg_conv2d_forward(&d.desc, &t.x, &t.w, with_bias ? &t.b : NULL, &t.y, ws));
    fg_ref_conv2d_forward(&d.s, d.xd, d.wd, with_bias ? d.bd : NULL, yr);
    expect_close(with_bias ? "forward with bias" : "forward", d.name, y, yr, d.ny, atol_fwd);
  }

  fill_nan(dx, d.nx);
  FGT_OK(fg_conv2d_backward_data(&d.desc, &t.dy, &t.w, &t.dx, 0, ws));
  fg_ref_conv2d_backward_data(&d.s, d.dyd, d.wd, dxr, 0);
  expect_close("backward_data", d.name, dx, dxr, d.nx, atol_bwd);

  memcpy(dx, d.dx0, d.nx * sizeof *dx);
  memcpy(dxr, d.dx0d, d.nx * sizeof *dxr);
  FGT_OK(fg_conv2d_backward_data(&d.desc, &t.dy, &t.w, &t.dx, 1, ws));
  fg_ref_conv2d_backward_data(&d.s, d.dyd, d.wd, dxr, 1);
  expect_close("backward_data accumulate", d.name, dx, dxr, d.nx, atol_bwd);

  fill_nan(dw, d.nw);
  fill_nan(db, (size_t)k->o);
  FGT_OK(fg_conv2d_backward_filter(&d.desc, &t.x, &t.dy, &t.dw, &t.db, ws));
  fg_ref_conv2d_backward_filter(&d.s, d.xd, d.dyd, dwr, dbr);
  expect_close("backward_filter dw", d.name, dw, dwr, d.nw, atol);
  expect_close("backward_filter dbias", d.name, db, dbr, (size_t)k->o, atol);

  free(ws.ptr), free(y), free(dx), free(dw), free(db), free(yr), free(dxr), free(dwr), free(dbr);
  c3_free(&d);
}

Test(conv3x3, matches_reference_with_cpu_kernels) {
  fgt_setup_cpu(2);
  for (int i = 0; i < C3_CASES; i++) check_case(&CASES[i], 100 + 10 * (uint64_t)i, 0);
}

Test(conv3x3, matches_reference_with_room_to_spare) {
  fgt_setup_cpu(2);
  for (int i = 0; i < C3_CASES; i++) check_case(&CASES[i], 300 + 10 * (uint64_t)i, 1);
}

/* The weight-gradient path case k takes on the CPU backend as now set up. */
static fg_cpu_conv3x3_grad grad_path_of(const c3_case *k) {
  c3_data d = c3_setup(k, 700);
  c3_tensors t = c3_views(&d, NULL, NULL, NULL, NULL);
  const fg_cpu_conv3x3_grad path = fg_cpu_conv3x3_grad_path(fg_cpu_backend(), &d.desc, &t.x, &t.w);
  c3_free(&d);
  return path;
}

/* The cases above reach every weight-gradient path, two cases each at least: otherwise a path
 * could break unnoticed. */
Test(conv3x3, cases_reach_every_weight_gradient_path) {
  fgt_setup_cpu(2);
  if (!fg_cpu_uses_avx2()) return; /* the generic path has one weight gradient */
  int reached[3] = {0, 0, 0};
  for (int i = 0; i < C3_CASES; i++) {
    const fg_cpu_conv3x3_grad path = grad_path_of(&CASES[i]);
    cr_assert(path <= FG_CPU_C3_GRAD_WINOGRAD);
    reached[path]++;
  }
  cr_assert(reached[FG_CPU_C3_GRAD_DIRECT] >= 2, "direct: %d cases", reached[0]);
  cr_assert(reached[FG_CPU_C3_GRAD_VECTORS] >= 2, "by vectors: %d cases", reached[1]);
  cr_assert(reached[FG_CPU_C3_GRAD_WINOGRAD] >= 2, "Winograd: %d cases", reached[2]);
}

/* The images per Winograd block of case k's forward (backward 0) or backward data (1): 0 when
 * that direction runs directly. */
static int64_t block_images_of(const c3_case *k, int backward) {
  c3_data d = c3_setup(k, 700);
  c3_tensors t = c3_views(&d, NULL, NULL, NULL, NULL);
  const int64_t images =
      fg_cpu_conv3x3_block_images(fg_cpu_backend(), &d.desc, &t.x, &t.w, backward);
  c3_free(&d);
  return images;
}

/* The cases above run both directions as Winograd blocks of several images, two cases each at
 * least; shapes group as derived by hand (workspace_is_exact_and_thread_independent derives the
 * first case's sizes). */
Test(conv3x3, cases_reach_winograd_blocks_of_several_images) {
  fgt_setup_cpu(2);
  if (!fg_cpu_uses_avx2()) return;
  int grouped[2] = {0, 0};
  for (int i = 0; i < C3_CASES; i++)
    for (int backward = 0; backward <= 1; backward++)
      grouped[backward] += block_images_of(&CASES[i], backward) > 1;
  cr_assert(grouped[0] >= 2, "forward: %d cases", grouped[0]);
  cr_assert(grouped[1] >= 2, "backward data: %d cases", grouped[1]);
  const struct {
    c3_case k;
    int64_t fwd, bwd;
  } want[] = {
      /* 48 / 4 tiles -> 12 images (workspace_is_exact_and_thread_independent) */
      {{16, 128, 4, 4, 128, 1}, 12, 12},
      /* 3 lanes of 1 image: the call needs 319488 floats (its direct weight gradient: 3
       * lanes of 128*40 + 128*24 = 8192, 2 partials of 128*128*9 = 147456; the Winograd one
       * would take 353792); blocks of 3 images would need 367616 (w 16*128*128 = 262144,
       * buffers 128*52 = 6656 + 2*16*(128*24 + 16) = 105472), of 2 334848 (vt 16: buffers
       * 6656 + 2*16*(128*16 + 16) = 72704), of 1 per lane 262144 + 3*72704: direct */
      {{3, 128, 4, 4, 128, 1}, 0, 0},
      /* 64 input channels forward, 64 rows backward: under 128, 4 tiles: direct */
      {{30, 64, 4, 4, 136, 1}, 0, 0},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const c3_case *k = &want[i].k;
    cr_assert_eq(block_images_of(k, 0), want[i].fwd, "n%d c%d %dx%d o%d: forward", k->n, k->c,
                 k->h, k->w, k->o);
    cr_assert_eq(block_images_of(k, 1), want[i].bwd, "n%d c%d %dx%d o%d: backward data", k->n,
                 k->c, k->h, k->w, k->o);
  }
}

/* The cases above run both directions as F(2x2, 3x3) and as F(4x4, 3x3) given the least
 * workspace, two cases each at least; given room, F(4x4) in more of them, never fewer. */
Test(conv3x3, cases_reach_both_winograd_tiles) {
  fgt_setup_cpu(2);
  if (!fg_cpu_uses_avx2()) return;
  int reached[2][2][5] = {{{0}}}; /* [roomy][backward][tile] */
  for (int i = 0; i < C3_CASES; i++)
    for (int roomy = 0; roomy <= 1; roomy++)
      for (int backward = 0; backward <= 1; backward++) {
        const size_t bytes = workspace_within(&CASES[i], roomy ? SIZE_MAX : 0);
        const int tile = wino_tile_of(&CASES[i], bytes, backward);
        cr_assert(tile == 0 || tile == 2 || tile == 4, "tile %d", tile);
        reached[roomy][backward][tile]++;
      }
  for (int backward = 0; backward <= 1; backward++) {
    const char *name = backward ? "backward data" : "forward";
    cr_assert(reached[0][backward][2] >= 2, "%s: F(2x2) in %d cases", name, reached[0][backward][2]);
    cr_assert(reached[0][backward][4] >= 2, "%s: F(4x4) in %d cases", name, reached[0][backward][4]);
    cr_assert(reached[1][backward][4] > reached[0][backward][4],
              "%s given room: F(4x4) in %d cases, %d without", name, reached[1][backward][4],
              reached[0][backward][4]);
  }
}

Test(conv3x3, matches_reference_with_generic_kernels) {
  fgt_setup_cpu(2);
  fg_cpu_set_generic_kernels(1);
  cr_assert_eq(fg_cpu_uses_avx2(), 0);
  for (int i = 0; i < C3_CASES; i++) check_case(&CASES[i], 200 + 10 * (uint64_t)i, 0);
  fg_cpu_set_generic_kernels(0);
}

/* ----------------------------------------------------------------------------------------- */
/* Threads                                                                                    */

/* forward (with bias), backward data (accumulating onto dx0) and the weight gradient with the
 * backend's current thread count and the least workspace (or, roomy, what they take with no
 * limit), all outputs in one buffer [y | dx | dw | db]. */
static float *run_all(const c3_data *d, int roomy) {
  const size_t total = d->ny + d->nx + d->nw + (size_t)d->k.o;
  float *out = malloc(total * sizeof *out);
  cr_assert_not_null(out);
  float *y = out, *dx = y + d->ny, *dw = dx + d->nx, *db = dw + d->nw;
  memcpy(dx, d->dx0, d->nx * sizeof *dx);
  c3_tensors t = c3_views(d, y, dx, dw, db);
  size_t bytes = 0;
  FGT_OK(fg_conv2d_workspace_within(&d->desc, &t.x, &t.w, roomy ? SIZE_MAX : 0, &bytes));
  fg_workspace ws = nan_workspace(bytes);
  FGT_OK(fg_conv2d_forward(&d->desc, &t.x, &t.w, &t.b, &t.y, ws));
  FGT_OK(fg_conv2d_backward_data(&d->desc, &t.dy, &t.w, &t.dx, 1, ws));
  FGT_OK(fg_conv2d_backward_filter(&d->desc, &t.x, &t.dy, &t.dw, &t.db, ws));
  free(ws.ptr);
  return out;
}

Test(conv3x3, bit_identical_for_one_and_two_threads) {
  const c3_case cases[] = {
      {9, 4, 5, 5, 8, 1},     /* groups of images, lane 0 accumulating into dw */
      {7, 5, 9, 8, 6, 1},     /* O = 6: every lane with a partial in the workspace */
      {5, 16, 14, 14, 16, 1}, /* cnn-like, Winograd */
      {9, 8, 8, 8, 12, 1},    /* Winograd, 9 images over 4 lanes */
      {2, 16, 30, 28, 8, 1},  /* Winograd with images cut into blocks of tile rows */
      {4, 16, 28, 28, 16, 1}, /* the Winograd weight gradient in batches across images */
      {20, 128, 4, 4, 128, 1}, /* Winograd blocks of several 4x4 images */
      {6, 128, 8, 8, 128, 1}  /* given room: F(4x4) blocks of several 8x8 images */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    for (int roomy = 0; roomy <= 1; roomy++) {
      c3_data d = c3_setup(&cases[i], 500 + 10 * i);
      const size_t total = d.ny + d.nx + d.nw + (size_t)d.k.o;
      fgt_setup_cpu(1);
      float *one = run_all(&d, roomy);
      fgt_setup_cpu(2);
      float *two = run_all(&d, roomy);
      cr_assert(memcmp(one, two, total * sizeof *one) == 0, "results differ [%s%s]", d.name,
                roomy ? ", given room" : "");
      free(one), free(two);
      c3_free(&d);
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Workspace                                                                                  */

/* The three calls on case k with a workspace of `bytes`. */
typedef struct ws_calls {
  fg_status forward, backward_data, backward_filter;
} ws_calls;

static ws_calls call_with(const c3_case *k, size_t bytes) {
  c3_data d = c3_setup(k, 900);
  float *y = malloc(d.ny * sizeof *y), *dx = malloc(d.nx * sizeof *dx);
  float *dw = malloc(d.nw * sizeof *dw), *db = malloc((size_t)k->o * sizeof *db);
  cr_assert(y && dx && dw && db);
  c3_tensors t = c3_views(&d, y, dx, dw, db);
  fg_workspace ws = nan_workspace(bytes);
  ws_calls r;
  r.forward = fg_conv2d_forward(&d.desc, &t.x, &t.w, &t.b, &t.y, ws);
  r.backward_data = fg_conv2d_backward_data(&d.desc, &t.dy, &t.w, &t.dx, 0, ws);
  r.backward_filter = fg_conv2d_backward_filter(&d.desc, &t.x, &t.dy, &t.dw, &t.db, ws);
  free(ws.ptr), free(y), free(dx), free(dw), free(db);
  c3_free(&d);
  return r;
}

typedef fg_status (*ws_pick)(const ws_calls *);
static fg_status pick_forward(const ws_calls *c) { return c->forward; }
static fg_status pick_backward_data(const ws_calls *c) { return c->backward_data; }
static fg_status pick_backward_filter(const ws_calls *c) { return c->backward_filter; }

/* case k: the workspace query says `total` floats, with 1 and 2 threads, the largest of the
 * hand-derived needs of the three calls; each call works with exactly `total` floats and is
 * refused one byte less (the entry point checks every call against the query). */
static void expect_workspace(const c3_case *k, size_t total, const size_t need[3]) {
  size_t largest = need[0] > need[1] ? need[0] : need[1];
  if (need[2] > largest) largest = need[2];
  cr_assert_eq(largest, total, "c%d o%d: the hand-derived needs peak at %zu, not %zu", k->c, k->o, largest, total);
  static const ws_pick picks[3] = {pick_forward, pick_backward_data, pick_backward_filter};
  static const char *names[3] = {"forward", "backward_data", "backward_filter"};
  fgt_setup_cpu(1);
  const size_t one = workspace_within(k, 0);
  fgt_setup_cpu(2);
  const size_t two = workspace_within(k, 0);
  cr_assert_eq(one, total * 4, "c%d o%d: workspace %zu, want %zu", k->c, k->o, one, total * 4);
  cr_assert_eq(two, one, "c%d o%d: %zu bytes with 2 threads, %zu with 1", k->c, k->o, two, one);
  for (int i = 0; i < 3; i++) {
    const size_t bytes = total * 4;
    ws_calls ok = call_with(k, bytes), short_by_one = call_with(k, bytes - 1);
    cr_assert_eq(picks[i](&ok), FG_OK, "%s (c%d o%d) with %zu bytes: %s", names[i], k->c, k->o,
                 bytes, fg_last_error());
    cr_assert_eq(picks[i](&short_by_one), FG_ERR_INVALID, "%s (c%d o%d) accepted %zu bytes",
                 names[i], k->c, k->o, bytes - 1);
  }
}

Test(conv3x3, workspace_is_exact_and_thread_independent) {
  const c3_case direct6 = {3, 5, 6, 7, 6, 1}, direct8 = {3, 5, 6, 7, 8, 1};
  const c3_case wino4 = {2, 8, 7, 8, 4, 1}, wino8 = {2, 8, 7, 8, 8, 1};
  fgt_setup_cpu(2);
  if (!fg_cpu_uses_avx2()) {
    /* generic path: 3 lanes of col 45 x 42 = 1890 -> 1904 floats, 2 dw partials 270 -> 272 */
    const size_t need[3] = {3 * 1904, 3 * 1904, 3 * 1904 + 2 * 272};
    expect_workspace(&direct6, 3 * 1904 + 2 * 272, need);
    return;
  }
  /* Pieces are rounded to 16 floats.
   * n3 c5 6x7 pad 1, 4 lanes -> 3 lanes (1 image each); everything direct (C = 5 < 8; 6x7
   * outputs are 12 < 16 Winograd tiles). Planes: row width 9, 6 * 9 = 54 output positions ->
   * 7 vectors, out = 56 floats, in = 56 + 2*9 + 2 = 76 -> 80 (backward data pads dy, 6x7, by
   * 1: the same). Weight-gradient group: 32 / 7 -> 5, capped by the 1 image per lane -> 1.
   * o = 6 (O4 = 8, C4 = 8):
   *   forward   w 8*5*9 = 360 -> 368, lane 5*80 = 400 + 8*56 = 448: 368 + 3*848 = 2912
   *   bwd data  w 8*6*9 = 432,        lane 6*80 = 480 + 448:        432 + 3*928 = 3216
   *   weights   lane 400 + 448 = 848, partial 8*5*9 = 360 -> 368 for all 3 lanes:
   *             3*848 + 3*368 = 3648 (the largest) */
  const size_t need6[3] = {2912, 3216, 3648};
  expect_workspace(&direct6, 3648, need6);
  /* o = 8: lane 0 accumulates into dw, so 2 partials: 3*848 + 2*368 = 3280;
   *   bwd data  w 8*8*9 = 576, lane 8*80 + 448 = 1088: 576 + 3*1088 = 3840 (the largest) */
  const size_t need8[3] = {2912, 3840, 3280};
  expect_workspace(&direct8, 3840, need8);
  /* n2 c8 7x8 pad 1, 2 lanes (1 image each); 7x8 outputs in 4 x 4 = 16 tiles. Winograd planes:
   * padded rows of 2*4 + 2 = 10, plane (2*4 + 2) * 10 + 16 = 116. A block: 48 tiles wanted, 4
   * per tile row -> 12 rows, so the whole image (4 tile rows); vt = 16 + 8 = 24.
   * o = 4 (O4 = 4): forward Winograd, V planes 8*24 = 192 + 16 = 208 apart, M planes
   * 4*24 = 96 + 16 = 112 apart:
   *   forward   w 16*4*8 = 512, lane 8*116 = 928 + 16*208 = 3328 + 16*112 = 1792 = 6048:
   *             512 + 2*6048 = 12608 (the largest)
   * backward data has O = 4 < 8 input channels: direct, dy 7x8 padded by 1: row width 10,
   * 70 positions -> 9 vectors, out 72, in 72 + 20 + 2 = 94 -> 96; rows C4 = 8:
   *   bwd data  w 8*4*9 = 288, lane 4*96 = 384 + 8*72 = 576 = 960: 288 + 2*960 = 2208
   * The weight gradient goes by output-channel vectors (56 outputs, under 90% of the 72
   * positions of the direct planes): O rounded up to 16; per lane (group 128 / 56 -> 3, capped
   * at 1 image) x planes 8*96 = 768 (as above), transposed dy 56*16 = 896, partial 8*9*16 = 1152:
   *   weights   2 * (768 + 896 + 1152) = 5632 */
  const size_t need_w4[3] = {12608, 2208, 5632};
  expect_workspace(&wino4, 12608, need_w4);
  /* o = 8: forward and backward data both Winograd with 8 inputs and 8 rows, V and M planes
   * 8*24 = 192 + 16 = 208 apart:
   *   each      w 16*8*8 = 1024, lane 928 + 3328 + 3328 = 7584: 1024 + 2*7584 = 16192
   *   weights   O = 8 -> 16 again: 5632 */
  const size_t need_w8[3] = {16192, 16192, 5632};
  expect_workspace(&wino8, 16192, need_w8);
  /* n9 c8 8x8 pad 1 o12, 4 lanes (3, 2, 2, 2 images); 8x8 outputs in 4 x 4 = 16 tiles, padded
   * rows of 10, plane 10 * 10 + 16 = 116; one block per image (48 tiles wanted, 4 per row),
   * vt = 16 + 8 = 24.
   *   forward   8 inputs, 12 rows: V planes 8*24 = 192 + 16 = 208 apart, M 12*24 = 288 + 16 =
   *             304: w 16*12*8 = 1536, lane 8*116 = 928 + 16*208 = 3328 + 16*304 = 4864 = 9120:
   *             1536 + 4*9120 = 38016
   *   bwd data  12 inputs, 8 rows: V 304, M 208 apart: w 1536, lane 12*116 = 1392 + 4864 + 3328
   *             = 9584: 1536 + 4*9584 = 39872 (the largest)
   * The weight gradient by output-channel vectors would take, per lane (2 images of 64 pixels),
   * x planes 2*8*104 = 1664 + dyt 2*64*16 = 2048 + partial 8*9*16 = 1152 = 4864: 4*4864 =
   * 19456. The Winograd weight gradient fits within 39872, so it runs: batches of 64 tiles
   * (4 images), V rows 64 + 8 = 72; per part a padded image 8*116 = 928, dyt 64*16 = 1024, V
   * [8][8][72]: 8 * (576 + 16) = 4736, D [8][64][16]: 8 * (1024 + 16) = 8320 = 15008; then M
   * [16][8][16] = 2048:
   *   weights   2*15008 + 2048 = 32064 */
  const c3_case wgrad12 = {9, 8, 8, 8, 12, 1};
  cr_assert_eq(grad_path_of(&wgrad12), FG_CPU_C3_GRAD_WINOGRAD);
  const size_t need_g12[3] = {38016, 39872, 32064};
  expect_workspace(&wgrad12, 39872, need_g12);
  /* n16 c128 4x4 pad 1 o128, 4 lanes of 4 images (the grouped directions have none).
   * Direct directions: rows of 6, 4 * 6 = 24 positions -> 3 vectors, out 24, in 24 + 12 + 2 =
   *             38 -> 40: w 128*128*9 = 147456, lane 128*40 = 5120 + 128*24 = 3072: 147456 +
   *             4*8192 = 180224 each
   * Weights     16 pixels: not by vectors. Direct: group 32 / 3 -> 11, capped at 4: lane
   *             4*128*40 = 20480 + 4*128*24 = 12288, 3 partials 147456: 4*32768 + 3*147456 =
   *             573440. Winograd on 2 x 2 = 4 tiles per image (rows of 6, plane 6 * 6 + 16 =
   *             52): batches of 64 tiles, V rows 72; per part a padded image 128*52 = 6656,
   *             dyt 16*128 = 2048, V 8 * (128*72 + 16) = 73856, D 8 * (64*128 + 16) = 65664 =
   *             148224; M 16*128*128 = 262144: 2*148224 + 262144 = 558592, under 573440: it
   *             runs, and 558592 is what the call needs.
   * Grouped directions (4 tiles per image, under 16; 128 channels), within 558592: 48 / 4 =
   *             12 images, vt = 48 + 8 = 56, V and M planes 128*56 + 16 = 7184 apart; one set
   *             of buffers: w 16*128*128 = 262144, buffers 6656 + 2*16*7184 = 236544: 498688 */
  const c3_case grouped = {16, 128, 4, 4, 128, 1};
  cr_assert_eq(grad_path_of(&grouped), FG_CPU_C3_GRAD_WINOGRAD);
  const size_t need_gr[3] = {498688, 498688, 558592};
  expect_workspace(&grouped, 558592, need_gr);
  /* n4 c8 16x16 pad 1 o8, 4 lanes of 1 image. What the call needs anyway (F(2x2) directions):
   * 16x16 outputs in 8 x 8 tiles, padded rows of 18, plane 18 * 18 + 16 = 340; blocks of 4 tile
   * rows (48 tiles wanted, 8 a row -> 6 rows -> 2 blocks), vt = 32 + 8 = 40, V and M planes
   * 8*40 + 16 = 336 apart: w 16*8*8 = 1024, lane 8*340 = 2720 + 2*16*336 = 10752 = 13472:
   *             1024 + 4*13472 = 54912 each.
   * Weights     Winograd (256 pixels, 11% junk in the direct planes: by vectors would take
   *             4 * 7872 = 31488): batches of 64 tiles, V rows 72; per part a padded image
   *             2720, dyt 256*16 = 4096, V 8 * (8*72 + 16) = 4736, D 8 * (64*16 + 16) = 8320 =
   *             19872; M 16*8*16 = 2048: 2*19872 + 2048 = 41792, under 54912: it runs.
   * F(4x4) directions within 54912: 4 x 4 tiles, padded rows of 4*4 + 2 = 18, plane
   *             18 * 18 + 32 = 356; one block of the 4 tile rows, vt = 16 + 8 = 24, V and M
   *             planes 8*24 + 16 = 208 apart: w 36*8*8 = 2304, lane 8*356 = 2848 + 2*36*208 =
   *             14976 = 17824. 4 lanes: 2304 + 4*17824 = 73600, too many; 2 lanes: 37952. */
  const c3_case wino44 = {4, 8, 16, 16, 8, 1};
  cr_assert_eq(wino_tile_of(&wino44, 0, 0), 4);
  cr_assert_eq(wino_tile_of(&wino44, 0, 1), 4);
  const size_t need_44[3] = {37952, 37952, 41792};
  expect_workspace(&wino44, 41792, need_44);
}
