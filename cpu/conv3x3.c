/* CPU dense 3x3 stride-1 convolution with register-blocked AVX2/FMA kernels: no im2col, no
 * GEMM library. cpu/conv.c sends here the convolutions for which fg_cpu_conv3x3_applies.
 *
 * Padded-stride planes. An image plane [H, W] is copied into a zero-padded plane of row width
 * Wp = W + 2 pad; output pixel (oy, ox) is computed at position p = oy * Wp + ox of an output
 * plane with the same row width, so tap t = (ky, kx) reads the padded input at p + ky Wp + kx.
 * For a fixed tap, consecutive output positions read consecutive floats, and the kernels run over
 * p in vectors of 8 straight across row ends. The Wp - Wo positions at the end of each output
 * row, and the tail up to a whole vector, are junk: computed but never copied out (forward,
 * backward data), or multiplied by zeros (weight gradient, whose dy plane is zero there).
 *
 *   forward        out[o][p] = sum_c sum_t w[o][c][t] xpad[c][p + off_t]
 *                  (tiles of 4 output channels x 24, 16 or 8 positions, 8..12 accumulators)
 *   backward data  the same kernel on dy padded by 2 - pad, with w flipped and transposed:
 *                  dx[c][p] = sum_o sum_t w[o][c][8 - t] dypad[o][p + off_t]
 *   weight grad    dw[o][c][ky][kx] += sum_p dyp[o][p] xpad[c][p + ky Wp + kx]
 *                  (tiles of 4 output channels x the 3 kx, summed over a group of images before
 *                  the vector lanes are added up)
 *
 * Lanes as in cpu/conv.c: lane l takes images l, l+L, l+2L, ... in order with its own buffers
 * and its own weight-gradient partial; the partials are added element by element in lane order.
 * Every sum therefore runs in an order fixed by the shapes and the lane count alone, so results
 * are bit-identical for any thread count.
 *
 * Workspace (floats; each piece rounded up to 16 floats = one 64-byte line):
 *   forward        [ packed w: O4*C*9 | lane 0: C*in + O4*out | lane 1 | ... ]
 *   backward data  [ packed w: C4*O*9 | lane 0: O*in' + C4*out' | lane 1 | ... ]
 *   weight grad    [ lane 0: G*(C*in + O4*out) | lane 1 | ... | dw partial lane 1 | ... ]
 * with O4, C4 the channel counts rounded up to 4 (the extra rows are zero weights), in and out
 * the padded input and output plane sizes (' for backward data's planes), G the images of a
 * weight-gradient group. Lane 0 accumulates straight into dw when O is a multiple of 4 (else it
 * too has a partial [O4][C][3][3] in the workspace). fg_cpu_conv3x3_workspace reports the
 * largest of the three. */
#include <string.h>

#include "cpu/conv_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FG_CONV3X3_X86 1
#include <immintrin.h>
#else
#define FG_CONV3X3_X86 0
#endif

enum {
  FG_C3_SLICE = 16,     /* floats: workspace pieces start on 64-byte lines */
  FG_C3_VEC = 8,        /* floats per AVX vector */
  FG_C3_TAPS = 9,       /* 3x3 */
  FG_C3_BLOCK = 4,      /* output channels per tile */
  FG_C3_GRAD_VECS = 32, /* weight gradient: vectors per image group at least (when possible) */
};

/* ----------------------------------------------------------------------------------------- */
/* Geometry                                                                                   */

/* A padded-stride plane pair: input [h, w] padded by `pad`, output of the 3x3 kernel on it. */
typedef struct c3_geom {
  int64_t h, w, pad;
  int64_t wp;         /* padded row width w + 2 pad: the row stride of both planes */
  int64_t ho, wo;     /* valid output extent: h + 2 pad - 2, w + 2 pad - 2 */
  int64_t nvec;       /* vectors covering the ho * wp output positions */
  int64_t out_floats; /* output plane: nvec * 8 */
  int64_t in_floats;  /* padded input plane: everything a vector of taps can read, rounded to 8 */
  int64_t off[FG_C3_TAPS]; /* tap offsets ky * wp + kx */
} c3_geom;

static int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

static c3_geom make_geom(int64_t h, int64_t w, int64_t pad) {
  c3_geom g;
  g.h = h;
  g.w = w;
  g.pad = pad;
  g.wp = w + 2 * pad;
  g.ho = h + 2 * pad - 2;
  g.wo = w + 2 * pad - 2;
  g.nvec = (g.ho * g.wp + FG_C3_VEC - 1) / FG_C3_VEC;
  g.out_floats = g.nvec * FG_C3_VEC;
  /* the last vector's last tap reads up to out_floats - 1 + 2 wp + 2 */
  g.in_floats = round_up(g.out_floats + 2 * g.wp + 2, FG_C3_VEC);
  for (int t = 0; t < FG_C3_TAPS; t++) g.off[t] = (t / 3) * g.wp + t % 3;
  return g;
}

/* Everything the three calls derive from the shapes, the descriptor and the lane count. */
typedef struct c3_plan {
  int64_t n, c, o, c4, o4;
  c3_geom fwd;  /* x padded by pad -> y (also the weight gradient's planes) */
  c3_geom bwd;  /* dy padded by 2 - pad -> dx */
  int lanes;    /* min(configured lanes, n) */
  int threads;  /* min(configured threads, lanes), at least 1 */
  int64_t group; /* weight gradient: images per group */
  /* workspace pieces, floats, each rounded to FG_C3_SLICE */
  size_t fwd_w, fwd_lane, bwd_w, bwd_lane, grad_lane, grad_part;
  int own_partials; /* weight-gradient partials in the workspace: lanes, or lanes - 1 */
} c3_plan;

static size_t slice(int64_t floats) { return (size_t)round_up(floats, FG_C3_SLICE); }

/* img: x or dx [N,C,H,W]; wt: w or dw [O,C,3,3]. */
static c3_plan make_plan(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *img,
                         const fg_tensor *wt) {
  const fg_cpu_ctx *ctx = fg_cpu_ctx_of(b);
  c3_plan p;
  memset(&p, 0, sizeof p);
  p.n = img->shape[0];
  p.c = img->shape[1];
  p.o = wt->shape[0];
  p.c4 = round_up(p.c, FG_C3_BLOCK);
  p.o4 = round_up(p.o, FG_C3_BLOCK);
  p.fwd = make_geom(img->shape[2], img->shape[3], d->pad);
  p.bwd = make_geom(p.fwd.ho, p.fwd.wo, 2 - d->pad);
  p.lanes = p.n < ctx->lanes ? (int)p.n : ctx->lanes;
  p.threads = ctx->threads < p.lanes ? ctx->threads : p.lanes;
  if (p.threads < 1) p.threads = 1;
  const int64_t per_lane = p.lanes > 0 ? (p.n + p.lanes - 1) / p.lanes : 0;
  p.group = (FG_C3_GRAD_VECS + p.fwd.nvec - 1) / p.fwd.nvec;
  if (p.group > per_lane) p.group = per_lane;
  if (p.group < 1) p.group = 1;
  p.fwd_w = slice(p.o4 * p.c * FG_C3_TAPS);
  p.fwd_lane = slice(p.c * p.fwd.in_floats) + slice(p.o4 * p.fwd.out_floats);
  p.bwd_w = slice(p.c4 * p.o * FG_C3_TAPS);
  p.bwd_lane = slice(p.o * p.bwd.in_floats) + slice(p.c4 * p.bwd.out_floats);
  p.grad_lane = slice(p.group * p.c * p.fwd.in_floats) + slice(p.group * p.o4 * p.fwd.out_floats);
  p.grad_part = slice(p.o4 * p.c * FG_C3_TAPS);
  p.own_partials = p.o4 == p.o && p.lanes > 0 ? p.lanes - 1 : p.lanes;
  return p;
}

/* Floats each call needs; nothing at all for an empty batch (no lanes). */
static size_t forward_floats(const c3_plan *p) {
  return p->lanes ? p->fwd_w + (size_t)p->lanes * p->fwd_lane : 0;
}
static size_t backward_floats(const c3_plan *p) {
  return p->lanes ? p->bwd_w + (size_t)p->lanes * p->bwd_lane : 0;
}
static size_t grad_floats(const c3_plan *p) {
  return (size_t)p->lanes * p->grad_lane + (size_t)p->own_partials * p->grad_part;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* ----------------------------------------------------------------------------------------- */
/* Kernels (AVX2 + FMA)                                                                       */

#if FG_CONV3X3_X86

#define FG_C3_TARGET __attribute__((target("avx2,fma")))

/* One forward tile: 4 output rows x (8 * vectors) positions. */
typedef struct c3_tile {
  const float *x;      /* padded input of channel 0 at the tile's first position */
  int64_t x_stride;    /* floats between input channels */
  int64_t channels;    /* input channels */
  const int64_t *off;  /* the 9 tap offsets */
  const float *w;      /* packed weights of the 4-row block: [channels][9][4] */
  float *out;          /* output row 0 of the block at the tile's first position */
  int64_t out_stride;  /* floats between output rows */
} c3_tile;

FG_C3_TARGET static void tile_fwd3(const c3_tile *t) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  const float *w = t->w;
  for (int64_t c = 0; c < t->channels; c++) {
    const float *xc = t->x + c * t->x_stride;
    for (int k = 0; k < FG_C3_TAPS; k++, w += FG_C3_BLOCK) {
      const float *xr = xc + t->off[k];
      const __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
      const __m256 x2 = _mm256_loadu_ps(xr + 16);
      __m256 v = _mm256_broadcast_ss(w);
      a00 = _mm256_fmadd_ps(v, x0, a00), a01 = _mm256_fmadd_ps(v, x1, a01);
      a02 = _mm256_fmadd_ps(v, x2, a02);
      v = _mm256_broadcast_ss(w + 1);
      a10 = _mm256_fmadd_ps(v, x0, a10), a11 = _mm256_fmadd_ps(v, x1, a11);
      a12 = _mm256_fmadd_ps(v, x2, a12);
      v = _mm256_broadcast_ss(w + 2);
      a20 = _mm256_fmadd_ps(v, x0, a20), a21 = _mm256_fmadd_ps(v, x1, a21);
      a22 = _mm256_fmadd_ps(v, x2, a22);
      v = _mm256_broadcast_ss(w + 3);
      a30 = _mm256_fmadd_ps(v, x0, a30), a31 = _mm256_fmadd_ps(v, x1, a31);
      a32 = _mm256_fmadd_ps(v, x2, a32);
    }
  }
  float *o = t->out;
  _mm256_storeu_ps(o, a00), _mm256_storeu_ps(o + 8, a01), _mm256_storeu_ps(o + 16, a02);
  o += t->out_stride;
  _mm256_storeu_ps(o, a10), _mm256_storeu_ps(o + 8, a11), _mm256_storeu_ps(o + 16, a12);
  o += t->out_stride;
  _mm256_storeu_ps(o, a20), _mm256_storeu_ps(o + 8, a21), _mm256_storeu_ps(o + 16, a22);
  o += t->out_stride;
  _mm256_storeu_ps(o, a30), _mm256_storeu_ps(o + 8, a31), _mm256_storeu_ps(o + 16, a32);
}

FG_C3_TARGET static void tile_fwd2(const c3_tile *t) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00;
  __m256 a20 = a00, a21 = a00, a30 = a00, a31 = a00;
  const float *w = t->w;
  for (int64_t c = 0; c < t->channels; c++) {
    const float *xc = t->x + c * t->x_stride;
    for (int k = 0; k < FG_C3_TAPS; k++, w += FG_C3_BLOCK) {
      const float *xr = xc + t->off[k];
      const __m256 x0 = _mm256_loadu_ps(xr), x1 = _mm256_loadu_ps(xr + 8);
      __m256 v = _mm256_broadcast_ss(w);
      a00 = _mm256_fmadd_ps(v, x0, a00), a01 = _mm256_fmadd_ps(v, x1, a01);
      v = _mm256_broadcast_ss(w + 1);
      a10 = _mm256_fmadd_ps(v, x0, a10), a11 = _mm256_fmadd_ps(v, x1, a11);
      v = _mm256_broadcast_ss(w + 2);
      a20 = _mm256_fmadd_ps(v, x0, a20), a21 = _mm256_fmadd_ps(v, x1, a21);
      v = _mm256_broadcast_ss(w + 3);
      a30 = _mm256_fmadd_ps(v, x0, a30), a31 = _mm256_fmadd_ps(v, x1, a31);
    }
  }
  float *o = t->out;
  _mm256_storeu_ps(o, a00), _mm256_storeu_ps(o + 8, a01);
  o += t->out_stride;
  _mm256_storeu_ps(o, a10), _mm256_storeu_ps(o + 8, a11);
  o += t->out_stride;
  _mm256_storeu_ps(o, a20), _mm256_storeu_ps(o + 8, a21);
  o += t->out_stride;
  _mm256_storeu_ps(o, a30), _mm256_storeu_ps(o + 8, a31);
}

FG_C3_TARGET static void tile_fwd1(const c3_tile *t) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const float *w = t->w;
  for (int64_t c = 0; c < t->channels; c++) {
    const float *xc = t->x + c * t->x_stride;
    for (int k = 0; k < FG_C3_TAPS; k++, w += FG_C3_BLOCK) {
      const __m256 x0 = _mm256_loadu_ps(xc + t->off[k]);
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(w), x0, a0);
      a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 1), x0, a1);
      a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 2), x0, a2);
      a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(w + 3), x0, a3);
    }
  }
  float *o = t->out;
  _mm256_storeu_ps(o, a0), _mm256_storeu_ps(o + t->out_stride, a1);
  _mm256_storeu_ps(o + 2 * t->out_stride, a2), _mm256_storeu_ps(o + 3 * t->out_stride, a3);
}

/* One weight-gradient tile: rows o..o+3 x the 3 kx of one (c, ky), over a group of images. */
typedef struct c3_grad_tile {
  const float *dy;   /* dy plane of row 0 of the block, image 0 */
  int64_t dy_row;    /* floats between rows (output channels) */
  int64_t dy_image;  /* floats between the images of a row */
  const float *x;    /* padded input of channel c, image 0, at offset ky * wp */
  int64_t x_image;   /* floats between images */
  int64_t images, nvec;
  float *dw;         /* partial dw[o][c][ky][0] */
  int64_t dw_row;    /* floats between rows of dw (C * 9) */
} c3_grad_tile;

/* [sum a0, sum a1, ..., sum a7] */
FG_C3_TARGET static __m256 sum8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4,
                                __m256 a5, __m256 a6, __m256 a7) {
  const __m256 s01 = _mm256_hadd_ps(a0, a1), s23 = _mm256_hadd_ps(a2, a3);
  const __m256 s45 = _mm256_hadd_ps(a4, a5), s67 = _mm256_hadd_ps(a6, a7);
  const __m256 s03 = _mm256_hadd_ps(s01, s23), s47 = _mm256_hadd_ps(s45, s67);
  /* s03 = [a0 a1 a2 a3 partials of the low half | the same of the high half] */
  return _mm256_add_ps(_mm256_permute2f128_ps(s03, s47, 0x20),
                       _mm256_permute2f128_ps(s03, s47, 0x31));
}

FG_C3_TARGET static void tile_grad(const c3_grad_tile *t) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  for (int64_t i = 0; i < t->images; i++) {
    const float *xi = t->x + i * t->x_image, *di = t->dy + i * t->dy_image;
    for (int64_t v = 0; v < t->nvec; v++) {
      const float *x = xi + FG_C3_VEC * v, *d = di + FG_C3_VEC * v;
      const __m256 x0 = _mm256_loadu_ps(x), x1 = _mm256_loadu_ps(x + 1);
      const __m256 x2 = _mm256_loadu_ps(x + 2);
      __m256 g = _mm256_loadu_ps(d);
      a00 = _mm256_fmadd_ps(g, x0, a00), a01 = _mm256_fmadd_ps(g, x1, a01);
      a02 = _mm256_fmadd_ps(g, x2, a02);
      g = _mm256_loadu_ps(d + t->dy_row);
      a10 = _mm256_fmadd_ps(g, x0, a10), a11 = _mm256_fmadd_ps(g, x1, a11);
      a12 = _mm256_fmadd_ps(g, x2, a12);
      g = _mm256_loadu_ps(d + 2 * t->dy_row);
      a20 = _mm256_fmadd_ps(g, x0, a20), a21 = _mm256_fmadd_ps(g, x1, a21);
      a22 = _mm256_fmadd_ps(g, x2, a22);
      g = _mm256_loadu_ps(d + 3 * t->dy_row);
      a30 = _mm256_fmadd_ps(g, x0, a30), a31 = _mm256_fmadd_ps(g, x1, a31);
      a32 = _mm256_fmadd_ps(g, x2, a32);
    }
  }
  float s[16];
  _mm256_storeu_ps(s, sum8(a00, a01, a02, a10, a11, a12, a20, a21));
  _mm256_storeu_ps(s + 8, sum8(a22, a30, a31, a32, a22, a22, a22, a22));
  for (int r = 0; r < FG_C3_BLOCK; r++)
    for (int kx = 0; kx < 3; kx++) t->dw[r * t->dw_row + kx] += s[3 * r + kx];
}

int fg_cpu_conv3x3_cpu_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#else /* no x86 kernels: fg_cpu_conv3x3_applies is always 0 and these are never called */

typedef struct c3_tile {
  int unused;
} c3_tile;
typedef struct c3_grad_tile {
  int unused;
} c3_grad_tile;
static void tile_fwd3(const c3_tile *t) { (void)t; }
static void tile_fwd2(const c3_tile *t) { (void)t; }
static void tile_fwd1(const c3_tile *t) { (void)t; }
static void tile_grad(const c3_grad_tile *t) { (void)t; }
int fg_cpu_conv3x3_cpu_supported(void) { return 0; }

#endif

/* ----------------------------------------------------------------------------------------- */
/* Planes                                                                                     */

/* Padded planes [channels][in_floats] := the interiors from img [channels, h, w]. The borders
 * and tails are zero from the lane's start and never written. */
static void pad_planes(const c3_geom *g, int64_t channels, const float *img, float *pad,
                       int64_t plane_stride) {
  for (int64_t ch = 0; ch < channels; ch++)
    for (int64_t iy = 0; iy < g->h; iy++) {
      const float *src = img + (ch * g->h + iy) * g->w;
      float *dst = pad + ch * plane_stride + (iy + g->pad) * g->wp + g->pad;
      for (int64_t ix = 0; ix < g->w; ix++) dst[ix] = src[ix];
    }
}

/* dst [rows, ho, wo] (=|+=) the valid positions of out [rows][out_floats] (+ bias[row]). */
static void unpad_planes(const c3_geom *g, int64_t rows, const float *out, const float *bias,
                         int accumulate, float *dst) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t oy = 0; oy < g->ho; oy++) {
      const float *src = out + r * g->out_floats + oy * g->wp;
      float *d = dst + (r * g->ho + oy) * g->wo;
      if (accumulate) {
        for (int64_t ox = 0; ox < g->wo; ox++) d[ox] += src[ox];
      } else if (bias) {
        const float b = bias[r];
        for (int64_t ox = 0; ox < g->wo; ox++) d[ox] = src[ox] + b;
      } else {
        for (int64_t ox = 0; ox < g->wo; ox++) d[ox] = src[ox];
      }
    }
}

/* out [rows4][out_floats] := the 3x3 kernel over xpad [channels][in_floats] with packed
 * weights [rows4 / 4][channels][9][4]. */
static void convolve_planes(const c3_geom *g, int64_t channels, int64_t rows4, const float *xpad,
                            const float *wpack, float *out) {
  c3_tile t = {0};
#if FG_CONV3X3_X86
  t.x_stride = g->in_floats;
  t.channels = channels;
  t.off = g->off;
  t.out_stride = g->out_floats;
  for (int64_t rb = 0; rb < rows4 / FG_C3_BLOCK; rb++) {
    t.w = wpack + rb * channels * FG_C3_TAPS * FG_C3_BLOCK;
    float *rows = out + rb * FG_C3_BLOCK * g->out_floats;
    int64_t v = 0;
    while (v < g->nvec) {
      const int64_t left = g->nvec - v;
      t.x = xpad + FG_C3_VEC * v;
      t.out = rows + FG_C3_VEC * v;
      if (left >= 3 && left != 4) { /* 4 goes as 2 + 2 rather than 3 + 1 */
        tile_fwd3(&t);
        v += 3;
      } else if (left >= 2) {
        tile_fwd2(&t);
        v += 2;
      } else {
        tile_fwd1(&t);
        v += 1;
      }
    }
  }
#else
  (void)g, (void)channels, (void)rows4, (void)xpad, (void)wpack, (void)out, (void)t;
  (void)tile_fwd3, (void)tile_fwd2, (void)tile_fwd1;
#endif
}

/* ----------------------------------------------------------------------------------------- */
/* Weights                                                                                    */

/* Forward: wpack[ob][c][t][r] = w[4 ob + r][c][t], zero for rows >= O. */
static void pack_forward_weights(const c3_plan *p, const float *w, float *wpack) {
  for (int64_t ob = 0; ob < p->o4 / FG_C3_BLOCK; ob++)
    for (int64_t c = 0; c < p->c; c++)
      for (int t = 0; t < FG_C3_TAPS; t++)
        for (int r = 0; r < FG_C3_BLOCK; r++) {
          const int64_t o = ob * FG_C3_BLOCK + r;
          wpack[((ob * p->c + c) * FG_C3_TAPS + t) * FG_C3_BLOCK + r] =
              o < p->o ? w[(o * p->c + c) * FG_C3_TAPS + t] : 0.0f;
        }
}

/* Backward data (flipped, transposed): wpack[cb][o][t][r] = w[o][4 cb + r][8 - t], zero for
 * channels >= C. */
static void pack_backward_weights(const c3_plan *p, const float *w, float *wpack) {
  for (int64_t cb = 0; cb < p->c4 / FG_C3_BLOCK; cb++)
    for (int64_t o = 0; o < p->o; o++)
      for (int t = 0; t < FG_C3_TAPS; t++)
        for (int r = 0; r < FG_C3_BLOCK; r++) {
          const int64_t c = cb * FG_C3_BLOCK + r;
          wpack[((cb * p->o + o) * FG_C3_TAPS + t) * FG_C3_BLOCK + r] =
              c < p->c ? w[(o * p->c + c) * FG_C3_TAPS + (FG_C3_TAPS - 1 - t)] : 0.0f;
        }
}

/* ----------------------------------------------------------------------------------------- */
/* Lanes                                                                                      */

typedef struct c3_job {
  const c3_plan *p;
  const float *x, *w, *bias, *dy;
  const float *wpack; /* forward and backward data */
  float *y, *dx;
  float *lanes;       /* the first lane's workspace piece */
  float *dw;          /* weight gradient [O][C][3][3] */
  int accumulate;
} c3_job;

/* One convolution direction over a lane's images: src [N, in_ch, g->h, g->w] padded into the
 * lane's input planes, convolved into its output planes, unpadded into dst [N, out_ch, ho, wo]. */
static void convolve_lane(const c3_job *job, int lane, const c3_geom *g, int64_t in_ch,
                          int64_t out_ch, int64_t out_ch4, size_t lane_floats, const float *src,
                          float *dst, const float *bias, int accumulate) {
  const c3_plan *p = job->p;
  float *xpad = job->lanes + (size_t)lane * lane_floats;
  float *out = xpad + slice(in_ch * g->in_floats);
  memset(xpad, 0, (size_t)(in_ch * g->in_floats) * sizeof(float));
  const int64_t in_img = in_ch * g->h * g->w, out_img = out_ch * g->ho * g->wo;
  for (int64_t n = lane; n < p->n; n += p->lanes) {
    pad_planes(g, in_ch, src + n * in_img, xpad, g->in_floats);
    convolve_planes(g, in_ch, out_ch4, xpad, job->wpack, out);
    unpad_planes(g, out_ch, out, bias, accumulate, dst + n * out_img);
  }
}

static void forward_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  const c3_plan *p = job->p;
  convolve_lane(job, lane, &p->fwd, p->c, p->o, p->o4, p->fwd_lane, job->x, job->y, job->bias, 0);
}

static void backward_data_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  const c3_plan *p = job->p;
  convolve_lane(job, lane, &p->bwd, p->o, p->c, p->c4, p->bwd_lane, job->dy, job->dx, NULL,
                job->accumulate);
}

/* The lane's weight-gradient partial [o4][C][3][3]: dw itself for lane 0 when O = O4. */
static float *grad_partial(const c3_job *job, int lane) {
  const c3_plan *p = job->p;
  const int first = p->lanes - p->own_partials; /* the first lane with its own partial */
  if (lane < first) return job->dw;
  return job->lanes + (size_t)p->lanes * p->grad_lane + (size_t)(lane - first) * p->grad_part;
}

/* dy planes [o4][group][out_floats] := the valid positions of dy_n [O, ho, wo] for slot j; the
 * junk positions, the tails and rows >= O are zero from the lane's start. */
static void place_dy(const c3_plan *p, const float *dyn, int64_t j, float *dyg) {
  const c3_geom *g = &p->fwd;
  for (int64_t o = 0; o < p->o; o++)
    for (int64_t oy = 0; oy < g->ho; oy++) {
      const float *src = dyn + (o * g->ho + oy) * g->wo;
      float *dst = dyg + (o * p->group + j) * g->out_floats + oy * g->wp;
      for (int64_t ox = 0; ox < g->wo; ox++) dst[ox] = src[ox];
    }
}

/* The lane's partial dw [o4][C][3][3] := sum over its images, taken `group` at a time. */
static void backward_filter_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  const c3_plan *p = job->p;
  const c3_geom *g = &p->fwd;
  float *xg = job->lanes + (size_t)lane * p->grad_lane;
  float *dyg = xg + slice(p->group * p->c * g->in_floats);
  float *part = grad_partial(job, lane);
  memset(xg, 0, p->grad_lane * sizeof(float)); /* the planes and their zero borders */
  memset(part, 0, (size_t)(p->o4 * p->c * FG_C3_TAPS) * sizeof(float));
  const int64_t x_img = p->c * g->h * g->w, dy_img = p->o * g->ho * g->wo;
  const int64_t x_plane = p->group * g->in_floats; /* floats between the channels of xg */
  for (int64_t first = lane; first < p->n; first += p->group * p->lanes) {
    int64_t images = 0;
    for (int64_t n = first; images < p->group && n < p->n; n += p->lanes, images++) {
      pad_planes(g, p->c, job->x + n * x_img, xg + images * g->in_floats, x_plane);
      place_dy(p, job->dy + n * dy_img, images, dyg);
    }
    c3_grad_tile t = {0};
#if FG_CONV3X3_X86
    t.dy_row = p->group * g->out_floats;
    t.dy_image = g->out_floats;
    t.x_image = g->in_floats;
    t.images = images;
    t.nvec = g->nvec;
    t.dw_row = p->c * FG_C3_TAPS;
    for (int64_t ob = 0; ob < p->o4 / FG_C3_BLOCK; ob++)
      for (int64_t c = 0; c < p->c; c++)
        for (int64_t ky = 0; ky < 3; ky++) {
          t.dy = dyg + ob * FG_C3_BLOCK * t.dy_row;
          t.x = xg + c * x_plane + ky * g->wp;
          t.dw = part + (ob * FG_C3_BLOCK * p->c + c) * FG_C3_TAPS + ky * 3;
          tile_grad(&t);
        }
#else
    (void)t, (void)tile_grad;
#endif
  }
}

/* dw [O][C][3][3] := the lanes' partials added element by element in lane order (lane 0's
 * partial may be dw itself). */
static void sum_partials(const c3_job *job, float *dw) {
  const c3_plan *p = job->p;
  const int64_t count = p->o * p->c * FG_C3_TAPS;
  const float *parts[1024]; /* lanes <= 1024 (fg_cpu_backend_register) */
  for (int l = 0; l < p->lanes; l++) parts[l] = grad_partial(job, l);
#pragma omp parallel for num_threads(p->threads) schedule(static)
  for (int64_t i = 0; i < count; i++) {
    float s = parts[0][i];
    for (int l = 1; l < p->lanes; l++) s += parts[l][i];
    dw[i] = s;
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Entries                                                                                    */

int fg_cpu_conv3x3_applies(const fg_backend *b, const fg_conv_desc *d, int64_t kh, int64_t kw) {
  return fg_cpu_ctx_of(b)->avx2 && kh == 3 && kw == 3 && d->stride == 1 && d->groups == 1 &&
         d->pad <= 2;
}

size_t fg_cpu_conv3x3_workspace(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                const fg_tensor *w) {
  const c3_plan p = make_plan(b, d, x, w);
  return max_size(forward_floats(&p), max_size(backward_floats(&p), grad_floats(&p))) *
         sizeof(float);
}

fg_status fg_cpu_conv3x3_forward(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                 const fg_tensor *w, const fg_tensor *bias, fg_tensor *y,
                                 fg_workspace ws) {
  const c3_plan p = make_plan(b, d, x, w);
  FG_TRY(fg_cpu_conv_check_workspace("conv2d_forward", ws, forward_floats(&p)));
  if (p.n == 0) return FG_OK;
  float *base = ws.ptr;
  pack_forward_weights(&p, fg_f32(w), base);
  const c3_job job = {.p = &p, .x = fg_f32(x), .bias = bias ? fg_f32(bias) : NULL,
                      .wpack = base, .y = fg_f32(y), .lanes = base + p.fwd_w};
  fg_cpu_run_lanes(p.lanes, p.threads, forward_lane, &job);
  return FG_OK;
}

fg_status fg_cpu_conv3x3_backward_data(const fg_backend *b, const fg_conv_desc *d,
                                       const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                       int accumulate, fg_workspace ws) {
  const c3_plan p = make_plan(b, d, dx, w);
  FG_TRY(fg_cpu_conv_check_workspace("conv2d_backward_data", ws, backward_floats(&p)));
  if (p.n == 0) return FG_OK;
  float *base = ws.ptr;
  pack_backward_weights(&p, fg_f32(w), base);
  const c3_job job = {.p = &p, .dy = fg_f32(dy), .wpack = base, .dx = fg_f32(dx),
                      .lanes = base + p.bwd_w, .accumulate = accumulate};
  fg_cpu_run_lanes(p.lanes, p.threads, backward_data_lane, &job);
  return FG_OK;
}

fg_status fg_cpu_conv3x3_backward_filter(const fg_backend *b, const fg_conv_desc *d,
                                         const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                         fg_workspace ws) {
  const c3_plan p = make_plan(b, d, x, dw);
  FG_TRY(fg_cpu_conv_check_workspace("conv2d_backward_filter", ws, grad_floats(&p)));
  if (p.n == 0) {
    memset(fg_f32(dw), 0, (size_t)(p.o * p.c * FG_C3_TAPS) * sizeof(float));
    return FG_OK;
  }
  const c3_job job = {.p = &p, .x = fg_f32(x), .dy = fg_f32(dy), .lanes = ws.ptr, .dw = fg_f32(dw)};
  fg_cpu_run_lanes(p.lanes, p.threads, backward_filter_lane, &job);
  sum_partials(&job, fg_f32(dw));
  return FG_OK;
}
