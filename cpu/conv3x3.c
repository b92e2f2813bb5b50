/* CPU dense 3x3 stride-1 convolution with register-blocked AVX2/FMA kernels: no im2col, no
 * GEMM library. cpu/conv.c sends here the convolutions for which fg_cpu_conv3x3_applies.
 *
 * Forward and backward data are the same computation ("a direction"): backward data is the
 * forward convolution of dy padded by 2 - pad with the weights flipped and transposed,
 * dx[c] = sum_o sum_t w[o][c][8 - t] dypad[o][. + off_t]. A direction runs as Winograd
 * F(4x4, 3x3) or F(2x2, 3x3) (Lavin & Gray) when it has at least FG_C3_WINO_MIN_CHANNELS input
 * channels and FG_C3_WINO_MIN_PLANE tiles per image, else directly (the first layer, small
 * images): F(4x4) where its workspace (2.25 times the transformed weights) fits in what the
 * call needs anyway with all the lanes or half of them, or in the larger workspace the call is
 * given (the planner gives the room where it does not raise the step's peak; make_dir), else
 * F(2x2). Images
 * of fewer than FG_C3_WINO_GROUP_TILES tiles (but FG_C3_WINO_MIN_IMAGE_TILES at least) with
 * FG_C3_WINO_GROUP_CHANNELS input channels and output rows - resnet18's 8x8 and 4x4 maps - go
 * whole, several to a Winograd block, where such blocks fit in the workspace the call needs
 * anyway. The
 * weight gradient runs as Winograd F(3x3, 2x2) from FG_C3_WGRAD_MIN_CHANNELS input and output
 * channels where its workspace fits in what the convolution needs anyway, else directly, or by
 * output-channel vectors (below).
 *
 * Winograd. Each (m+2)x(m+2) input tile d (tiles m apart, m = 2 or 4) and each kernel g are
 * transformed,
 *   V = B^T d B,  U = G g G^T,  M[xi][o][t] = sum_c U[xi][o][c] V[xi][c][t]  (xi < (m+2)^2),
 *   y (m x m outputs of tile t) = A^T M_t A,
 * 16 multiplications per 2x2 outputs and input channel, or 36 per 4x4, instead of 36 or 144.
 * Images are copied into zero-padded planes; the transforms read 8 tiles at a time
 * (deinterleaving columns m apart) and write the outputs straight into y or dx. Tiles go in
 * blocks of a few tile rows whose transformed tiles and products stay in the L2 cache, one lane
 * per image; or of a few whole small images (each image's tiles after the previous one's), one
 * block at a time for all threads, which share its buffers and split each step (transforms by
 * channel, products by plane and row block, outputs by image and row), so that one block's
 * buffers serve the call.
 * The products over channels run on the register-blocked tile (4 rows x 24, 16 or 8 tiles).
 *
 * Direct. An image plane [H, W] is copied into a zero-padded plane of row width Wp = W + 2 pad;
 * output pixel (oy, ox) is computed at position p = oy * Wp + ox of an output plane with the
 * same row width, so tap t = (ky, kx) reads the padded input at p + ky Wp + kx: for a fixed
 * tap, consecutive output positions read consecutive floats, and the kernels run over p in
 * vectors of 8 straight across row ends. The Wp - Wo positions at the end of each output row,
 * and the tail up to a whole vector, are junk: computed but never copied out, or (weight
 * gradient) multiplied by zeros.
 *   out[o][p] = sum_c sum_t w[o][c][t] xpad[c][p + off_t]          (the same 4-row tile)
 *   dw[o][c][ky][kx] += sum_p dyp[o][p] xpad[c][p + ky Wp + kx]    (4 x 3 tiles over groups of
 *                                                                    images)
 *
 * Weight gradient by output-channel vectors, where the direct planes would spend a tenth or
 * more of their positions on junk (small images): dy is transposed to [pixel][o], and a tile
 * keeps dw[o .. o+15][c, c+1][ky][0..2] in 12 vector accumulators over every pixel of a group
 * of images (x broadcast per pixel): no junk positions and no sums across vector lanes.
 *
 * Winograd weight gradient (wgrad_lane): the forward's 4x4 input tiles V = B^T d B and the
 * 2x2 tiles of dy, D = G' dy G'^T (4x4), are multiplied plane by plane and summed over every
 * tile of every image, M[xi][c][o] = sum_t V[xi][c][t] D[xi][t][o], and dw[o][c] = A^T M A
 * (3x3): 16 products per tile, input and output channel instead of 36, and no partial sums
 * per lane - two parts take 8 planes each, over all the images in order.
 *
 * Lanes as in cpu/conv.c: lane l takes images l, l+L, l+2L, ... in order with its own buffers
 * and its own weight-gradient partial; the partials are added element by element in lane order.
 * Every sum therefore runs in an order fixed by the shapes and the lane count alone, so results
 * are bit-identical for any thread count. (Grouped Winograd directions have no lanes: each of
 * their outputs is one thread's work whatever the split.)
 *
 * Workspace (floats; each piece rounded up to 16 floats = one 64-byte line):
 *   direction        [ packed weights | lane 0 | lane 1 | ... ]
 *     direct:        weights R4*I*9,  lane: I*in + R4*out              (c3_geom sizes)
 *     Winograd:      weights X*R4*I, lane: I*plane + X*vxi + X*mxi (c3_wino, c3_dir)
 *                    with X = 16 or 36 planes, I input channels, R output rows rounded up to
 *                    R4, a multiple of 4 (the extra rows have zero weights), vxi/mxi the
 *                    strides of the X transformed planes of a block; F(4x4) on all the lanes
 *                    or on half of them; grouped blocks of small images: one such lane's worth
 *                    for the whole call;
 *   weight gradient  [ lane 0: G*(C*in + O4*out) | lane 1 | ... | partial lane 1 | ... ]
 *                    with G images per group; lane 0 accumulates straight into dw when O is a
 *                    multiple of 4 (else it too has a partial [O4][C][3][3]);
 *     by vectors:    [ lane 0: G*C*in + G*pixels*O16 + C*9*O16 | lane 1 | ... ] (x planes,
 *                    transposed dy, the lane's partial [C][9][O16]; O16: O rounded up to 16).
 *     Winograd:      [ part 0: C*plane + pixels*O16 + 8*vxi + 8*dxi | part 1 | 16*C*O16 ]
 *                    (a padded image, its transposed dy, a batch's V and D for the part's 8
 *                    planes; then M), see c3_plan.
 * fg_cpu_conv3x3_workspace reports the largest of the three. */
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
  FG_C3_GRADT_MIN_PIXELS = 49, /* gradient by output-channel vectors: 7x7 outputs at least, */
  FG_C3_GRADT_PIXELS = 128,    /* and images grouped to this many pixels (when possible) */
  FG_C3_WINO = 16,      /* Winograd F(2x2, 3x3) (and the weight gradient's F(3x3, 2x2)): 4x4
                         * transformed tiles */
  FG_C3_WINO_MIN_CHANNELS = 8, /* fewer input channels: direct (transforms would dominate) */
  FG_C3_WINO_MIN_PLANE = 16,   /* fewer 2x2 tiles per image (outputs under 7x7): direct */
  FG_C3_WINO_GROUP_TILES = 48,    /* grouped (make_dir): images of fewer tiles, whole, several
                                   * to a block of this many tiles, when they have */
  FG_C3_WINO_MIN_IMAGE_TILES = 4, /* ... this many tiles at least (3x3 outputs) and */
  FG_C3_WINO_GROUP_CHANNELS = 128, /* ... this many input channels and output rows (with
                                    * fewer, the threads' sharing of a block's buffers costs
                                    * more than the bigger blocks save) */
  FG_C3_WINO_BLOCK = 1 << 16,   /* Winograd blocks: floats of transformed tiles at most */
  FG_C3_WINO4_BLOCK = 1 << 17,  /* ... (F(4x4, 3x3): 36 planes a tile instead of 16), and */
  FG_C3_WINO_MIN_TILES = 48,    /* tiles at least (choose_block_rows) */
  FG_C3_WGRAD_PARTS = 2,        /* Winograd weight gradient: transform rows 0-1 and 2-3 */
  FG_C3_WGRAD_XI = 8,           /* ... so 8 of the 16 transformed planes per part */
  FG_C3_WGRAD_TILES = 64,       /* ... in batches of this many tiles (or one tile row) */
  FG_C3_WGRAD_CH = 6,           /* ... products over this many input channels per tile */
  FG_C3_WGRAD_MIN_CHANNELS = 8, /* ... with this many input and output channels at least */
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

/* Winograd planes of one direction, F(2x2, 3x3) or F(4x4, 3x3): input [h, w] padded by `pad`,
 * output [ho, wo] in m x m tiles (the last row / column of tiles partly outside when m does not
 * divide ho / wo), each read as an (m + 2) x (m + 2) input tile and transformed into xi planes. */
typedef struct c3_wino {
  int m;                 /* output tile: 2 or 4 */
  int xi;                /* transformed planes: (m + 2)^2, 16 or 36 */
  int64_t h, w, pad, ho, wo;
  int64_t th, tw, tiles; /* tile rows, tiles per row, th * tw */
  int64_t wp;            /* padded row: m tw + 2 (zeros past w + pad) */
  int64_t plane;         /* padded plane: m th + 2 rows of wp, and m * 8 floats of slack */
} c3_wino;

static c3_wino make_wino(int64_t h, int64_t w, int64_t pad, int m) {
  c3_wino g;
  g.m = m;
  g.xi = (m + 2) * (m + 2);
  g.h = h;
  g.w = w;
  g.pad = pad;
  g.ho = h + 2 * pad - 2;
  g.wo = w + 2 * pad - 2;
  g.th = (g.ho + m - 1) / m;
  g.tw = (g.wo + m - 1) / m;
  g.tiles = g.th * g.tw;
  /* an 8-tile vector reads 8 m + 2 columns: past a row's end it reads the next row (for tiles
   * that are junk), past the last row the slack */
  g.wp = m * g.tw + 2;
  g.plane = (m * g.th + 2) * g.wp + m * FG_C3_VEC;
  return g;
}

static size_t slice(int64_t floats) { return (size_t)round_up(floats, FG_C3_SLICE); }

/* One direction (forward, or backward data): in_ch input channels -> rows output rows. */
typedef struct c3_dir {
  int wino;          /* 1: Winograd F(2x2, 3x3); 0: direct */
  int backward;      /* 1: the kernels are w flipped and transposed (backward data) */
  int64_t in_ch, rows, rows4;
  c3_geom direct;    /* planes when !wino */
  c3_wino wg;        /* planes when wino */
  int64_t images;    /* Winograd: images per block (> 1: grouped, one block at a time) */
  int64_t block_rows; /* Winograd: tile rows per block (all of them when images > 1) */
  int lanes;         /* lanes, each with its own buffers (1 when images > 1: the call's one set) */
  int64_t vt;        /* Winograd: floats per transformed row (one xi, one channel, one block) */
  int64_t v_xi, m_xi; /* Winograd: floats between the xi planes of V [in_ch][vt], M [rows4][vt] */
  size_t w_floats;   /* packed weights, shared by the lanes */
  size_t lane_floats; /* a lane's buffers (grouped: the one set of buffers) */
  /* a lane's pieces, as offsets from its start (the padded planes start it) */
  size_t v_off, m_off; /* Winograd: V, M */
  size_t out_off;      /* direct: the output planes */
} c3_dir;

/* A Winograd block is a run of tile rows of one image, transformed, multiplied and transformed
 * back together: FG_C3_WINO_MIN_TILES tiles at least (enough for the products to run on whole
 * register tiles) unless their transformed tiles and products (16 `channels` floats per tile:
 * input channels plus output rows) would pass FG_C3_WINO_BLOCK floats; the rows are shared out
 * evenly. Returns the tile rows per block. */
static int64_t choose_block_rows(const c3_wino *g, int64_t channels) {
  int64_t want = FG_C3_WINO_MIN_TILES;
  const int64_t cap = (g->m == 4 ? FG_C3_WINO4_BLOCK : FG_C3_WINO_BLOCK) / (g->xi * channels);
  if (want > cap) want = cap;
  const int64_t rows = want / g->tw > 0 ? want / g->tw : 1;
  const int64_t blocks = (g->th + rows - 1) / rows;
  return (g->th + blocks - 1) / blocks;
}

/* The Winograd layout of d for blocks of `images` images x `block_rows` tile rows. vt: floats
 * per transformed row of a block - tile rows are transformed in whole vectors, the last one
 * running up to 7 tiles past the block's end, and the products run over whole vectors too. */
static void wino_layout(c3_dir *d, int64_t images, int64_t block_rows, int lanes) {
  d->wino = 1;
  d->lanes = images > 1 ? 1 : lanes;
  d->images = images;
  d->block_rows = block_rows;
  d->vt = round_up(images * block_rows * d->wg.tw + FG_C3_VEC, FG_C3_VEC);
  /* one extra line between xi planes, so that the 16 planes a transform reads or writes at
   * once do not all fall into the same cache sets */
  d->v_xi = round_up(d->in_ch * d->vt, FG_C3_SLICE) + FG_C3_SLICE;
  d->m_xi = round_up(d->rows4 * d->vt, FG_C3_SLICE) + FG_C3_SLICE;
  d->w_floats = slice(d->wg.xi * d->rows4 * d->in_ch);
  d->v_off = slice(d->in_ch * d->wg.plane);
  d->m_off = d->v_off + slice(d->wg.xi * d->v_xi);
  d->lane_floats = d->m_off + slice(d->wg.xi * d->m_xi);
}

static void direct_layout(c3_dir *d, int64_t h, int64_t w, int64_t pad, int lanes) {
  d->wino = 0;
  d->lanes = lanes;
  d->direct = make_geom(h, w, pad);
  d->w_floats = slice(d->rows4 * d->in_ch * FG_C3_TAPS);
  d->out_off = slice(d->in_ch * d->direct.in_floats);
  d->lane_floats = d->out_off + slice(d->rows4 * d->direct.out_floats);
}

/* Floats direction d needs: its packed weights and one set of buffers per lane (one for the
 * call when its blocks group several images). */
static size_t dir_need(const c3_dir *d) {
  return d->w_floats + (size_t)d->lanes * d->lane_floats;
}

/* Groups whole images into d's Winograd blocks: the most images (FG_C3_WINO_GROUP_TILES tiles'
 * worth, n at most) that fit in `budget` floats; 0 (d left to be laid out again) where not even
 * one image does. */
static int group_layout(c3_dir *d, int64_t n, int lanes, size_t budget) {
  int64_t k = (FG_C3_WINO_GROUP_TILES + d->wg.tiles - 1) / d->wg.tiles;
  if (k > n) k = n;
  for (; k >= 1; k--) {
    wino_layout(d, k, d->wg.th, lanes);
    if (dir_need(d) <= budget) return 1;
  }
  return 0;
}

/* Lays d out as Winograd F(m x m, 3x3) on images [h, w] padded by pad: images of fewer than
 * FG_C3_WINO_MIN_TILES tiles (FG_C3_WINO_MIN_IMAGE_TILES at least) with
 * FG_C3_WINO_GROUP_CHANNELS input channels and output rows whole into blocks of several
 * (group_layout, within `group_budget` floats), else per-image blocks of tile rows from
 * FG_C3_WINO_MIN_CHANNELS input channels and FG_C3_WINO_MIN_PLANE tiles, within `budget`.
 * Returns 0 (d to be laid out again) where neither applies or fits. */
static int winograd_layout(c3_dir *d, int m, int64_t h, int64_t w, int64_t pad, int64_t n,
                           int lanes, size_t group_budget, size_t budget) {
  d->wg = make_wino(h, w, pad, m);
  const int groupable = d->in_ch >= FG_C3_WINO_GROUP_CHANNELS &&
                        d->rows >= FG_C3_WINO_GROUP_CHANNELS &&
                        d->wg.tiles >= FG_C3_WINO_MIN_IMAGE_TILES &&
                        d->wg.tiles < FG_C3_WINO_MIN_TILES;
  if (groupable && group_layout(d, n, lanes, group_budget)) return 1;
  if (d->in_ch < FG_C3_WINO_MIN_CHANNELS || d->wg.tiles < FG_C3_WINO_MIN_PLANE) return 0;
  const int64_t rows = choose_block_rows(&d->wg, d->in_ch + d->rows4);
  wino_layout(d, 1, rows, lanes);
  if (dir_need(d) <= budget) return 1;
  wino_layout(d, 1, rows, (lanes + 1) / 2); /* half the lanes: the threads stay evenly loaded */
  return dir_need(d) <= budget;
}

/* One direction of a call on n images over `lanes` lanes, the first layout that applies:
 * Winograd F(4x4, 3x3) where it fits in `budget` floats (2.25 times the transformed weights of
 * F(2x2, 3x3), but 36 multiplications per 4x4 outputs and input channel instead of 64); then
 * F(2x2, 3x3), its blocks of several small images within `budget`; then direct. `budget` is
 * what the call needs anyway, or the larger workspace it is given (make_plan): the planner
 * decides whether a larger workspace would raise the step's peak. */
static c3_dir make_dir(int backward, int64_t in_ch, int64_t rows, int64_t h, int64_t w,
                       int64_t pad, int64_t n, int lanes, size_t budget) {
  c3_dir d;
  memset(&d, 0, sizeof d);
  d.backward = backward;
  d.in_ch = in_ch;
  d.rows = rows;
  d.rows4 = round_up(rows, FG_C3_BLOCK);
  if (budget && winograd_layout(&d, 4, h, w, pad, n, lanes, budget, budget)) return d;
  if (winograd_layout(&d, 2, h, w, pad, n, lanes, budget, SIZE_MAX)) return d;
  direct_layout(&d, h, w, pad, lanes);
  return d;
}

/* Everything the three calls derive from the shapes, the descriptor and the lane count. */
typedef struct c3_plan {
  int64_t n, c, o, c4, o4;
  c3_dir fwd;    /* x padded by pad -> y */
  c3_dir bwd;    /* dy padded by 2 - pad -> dx */
  c3_wino wgg;   /* the Winograd weight gradient's F(2x2) tiles of x padded by pad */
  c3_geom grad;  /* the weight gradient's planes: x padded by pad, dy on the output plane */
  int lanes;     /* min(configured lanes, n) */
  int threads;   /* min(configured threads, lanes), at least 1 */
  int64_t group; /* weight gradient: images per group */
  size_t grad_lane, grad_part;
  int own_partials; /* weight-gradient partials in the workspace: lanes, or lanes - 1 */
  /* the weight gradient by output-channel vectors (gradt): per lane, G images' padded x planes
   * (c3_geom) and transposed dy [ho wo][o16], and a partial [C][9][o16] */
  int gradt;
  int64_t o16, gt_images;
  size_t gt_x_off, gt_dyt_off, gt_part_off, gt_lane;
  /* the Winograd weight gradient (wgrad), on the tiles wgg: per part a padded
   * image [C][plane], its transposed dy [pixels][o16], and a batch of wg_tcap tiles
   * transformed, V [8][C][wg_vt] (xi planes wg_vxi apart) and D [8][wg_tcap][o16] (wg_dxi
   * apart); after the parts, M [16][C][o16] (wg_mxi apart) */
  int wgrad;
  int64_t wg_tcap, wg_vt, wg_vxi, wg_dxi, wg_mxi;
  size_t wg_dyt_off, wg_v_off, wg_d_off, wg_part;
} c3_plan;

/* Floats a call needs; nothing at all for an empty batch (no lanes). */
static size_t dir_floats(const c3_plan *p, const c3_dir *d) {
  return p->lanes ? dir_need(d) : 0;
}
static size_t wgrad_floats(const c3_plan *p) {
  return FG_C3_WGRAD_PARTS * p->wg_part + (size_t)(FG_C3_WINO * p->wg_mxi);
}
static size_t grad_floats(const c3_plan *p) {
  if (!p->lanes) return 0;
  if (p->wgrad) return wgrad_floats(p);
  if (p->gradt) return (size_t)p->lanes * p->gt_lane;
  return (size_t)p->lanes * p->grad_lane + (size_t)p->own_partials * p->grad_part;
}

static size_t max_size(size_t a, size_t b) { return a > b ? a : b; }

/* The Winograd weight gradient's layout, and whether it runs: for FG_C3_WGRAD_MIN_CHANNELS
 * input and output channels at least, and only where its workspace fits in what the two
 * directions and the direct weight gradient ask for already (it never makes a convolution's
 * workspace larger). A batch holds FG_C3_WGRAD_TILES tiles (whole tile rows; one row at least,
 * all the call's tiles at most). */
static void plan_wgrad(c3_plan *p) {
  const c3_wino *g = &p->wgg;
  int64_t tcap = FG_C3_WGRAD_TILES > g->tw ? FG_C3_WGRAD_TILES : g->tw;
  if (tcap > p->n * g->tiles) tcap = p->n * g->tiles;
  p->wg_tcap = tcap;
  p->wg_vt = round_up(tcap + FG_C3_VEC, FG_C3_VEC); /* the transform's junk past the batch */
  p->wg_vxi = (int64_t)slice(p->c * p->wg_vt) + FG_C3_SLICE;
  p->wg_dxi = (int64_t)slice(tcap * p->o16) + FG_C3_SLICE;
  p->wg_mxi = (int64_t)slice(p->c * p->o16);
  p->wg_dyt_off = slice(p->c * g->plane);
  p->wg_v_off = p->wg_dyt_off + slice(g->ho * g->wo * p->o16);
  p->wg_d_off = p->wg_v_off + slice(FG_C3_WGRAD_XI * p->wg_vxi);
  p->wg_part = p->wg_d_off + slice(FG_C3_WGRAD_XI * p->wg_dxi);
  const size_t others =
      max_size(dir_floats(p, &p->fwd), max_size(dir_floats(p, &p->bwd), grad_floats(p)));
  p->wgrad = p->c >= FG_C3_WGRAD_MIN_CHANNELS && p->o >= FG_C3_WGRAD_MIN_CHANNELS &&
             p->lanes > 0 && wgrad_floats(p) <= others;
}

/* img: x or dx [N,C,H,W]; wt: w or dw [O,C,3,3]; room: floats the directions may use where
 * that is more than the call needs anyway (the workspace a call is given, or the query's
 * limit). */
static c3_plan make_plan(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *img,
                         const fg_tensor *wt, size_t room) {
  const fg_cpu_ctx *ctx = fg_cpu_ctx_of(b);
  c3_plan p;
  memset(&p, 0, sizeof p);
  p.n = img->shape[0];
  p.c = img->shape[1];
  p.o = wt->shape[0];
  p.c4 = round_up(p.c, FG_C3_BLOCK);
  p.o4 = round_up(p.o, FG_C3_BLOCK);
  const int64_t h = img->shape[2], w = img->shape[3];
  p.lanes = p.n < ctx->lanes ? (int)p.n : ctx->lanes;
  p.threads = ctx->threads < p.lanes ? ctx->threads : p.lanes;
  if (p.threads < 1) p.threads = 1;
  const int64_t per_lane = p.lanes > 0 ? (p.n + p.lanes - 1) / p.lanes : 0;
  p.grad = make_geom(h, w, d->pad);
  /* first with no room for blocks of several small images (those directions take the
   * ungrouped path), to know what the call needs anyway */
  p.fwd = make_dir(0, p.c, p.o, h, w, d->pad, p.n, p.lanes, 0);
  p.bwd = make_dir(1, p.o, p.c, p.grad.ho, p.grad.wo, 2 - d->pad, p.n, p.lanes, 0);
  p.group = (FG_C3_GRAD_VECS + p.grad.nvec - 1) / p.grad.nvec;
  if (p.group > per_lane) p.group = per_lane;
  if (p.group < 1) p.group = 1;
  p.grad_lane = slice(p.group * p.c * p.grad.in_floats) + slice(p.group * p.o4 * p.grad.out_floats);
  p.grad_part = slice(p.o4 * p.c * FG_C3_TAPS);
  p.own_partials = p.o4 == p.o && p.lanes > 0 ? p.lanes - 1 : p.lanes;
  /* by output-channel vectors when the direct planes would waste a tenth of their positions on
   * junk (small planes), for at least two input channels and FG_C3_GRADT_MIN_PIXELS outputs */
  const int64_t pixels = p.grad.ho * p.grad.wo;
  p.gradt = p.c >= 2 && pixels >= FG_C3_GRADT_MIN_PIXELS &&
            10 * pixels < 9 * FG_C3_VEC * p.grad.nvec;
  p.o16 = round_up(p.o, 2 * FG_C3_VEC);
  if (p.gradt) {
    p.gt_images = (FG_C3_GRADT_PIXELS + pixels - 1) / pixels;
    if (p.gt_images > per_lane) p.gt_images = per_lane;
    if (p.gt_images < 1) p.gt_images = 1;
    p.gt_x_off = 0;
    p.gt_dyt_off = slice(p.gt_images * p.c * p.grad.in_floats);
    p.gt_part_off = p.gt_dyt_off + slice(p.gt_images * pixels * p.o16);
    p.gt_lane = p.gt_part_off + slice(p.c * FG_C3_TAPS * p.o16);
  }
  p.wgg = make_wino(h, w, d->pad, 2);
  plan_wgrad(&p);
  /* then the faster layouts where they fit in what the call needs anyway, or in the room */
  const size_t budget = max_size(
      room, max_size(dir_floats(&p, &p.fwd), max_size(dir_floats(&p, &p.bwd), grad_floats(&p))));
  p.fwd = make_dir(0, p.c, p.o, h, w, d->pad, p.n, p.lanes, budget);
  p.bwd = make_dir(1, p.o, p.c, p.grad.ho, p.grad.wo, 2 - d->pad, p.n, p.lanes, budget);
  return p;
}

/* ----------------------------------------------------------------------------------------- */
/* Kernels (AVX2 + FMA)                                                                       */

/* One tile: 4 output rows x (8 * vectors) positions, out[r][p] = sum over input channels c and
 * taps k of w[c][k][r] * x[c][p + off[k]] (direct: 9 taps; a Winograd product: 1 tap at 0). */
typedef struct c3_tile {
  const float *x;      /* input of channel 0 at the tile's first position */
  int64_t x_stride;    /* floats between input channels */
  int64_t channels;    /* input channels */
  const int64_t *off;  /* the tap offsets */
  int taps;
  const float *w;      /* packed weights of the 4-row block: [channels][taps][4] */
  float *out;          /* output row 0 of the block at the tile's first position */
  int64_t out_stride;  /* floats between output rows */
} c3_tile;

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

/* One weight-gradient tile by output-channel vectors: acc[ch][kx][o] += sum over the pixels
 * (oy, ox) of the group's images of dyt[pixel][o] * x_ch[(oy + ky) wp + ox + kx] for 16 output
 * channels o (two vectors), kx < 3 and ch < 2 (x1 set) or 1. Every pixel counts exactly once
 * (no junk positions), and the sums stay per output channel, so no vector is ever reduced
 * across its lanes; the 12 (or 6) accumulators start from acc and go back to it. */
typedef struct c3_gradt_tile {
  const float *dyt;     /* transposed dy [pixels][o16] of image 0, at the block's first o */
  int64_t dyt_image;    /* floats between images */
  int64_t o16;          /* floats between pixels */
  const float *x0, *x1; /* padded planes of the channels (x1 NULL: one channel), image 0, at
                         * row ky */
  int64_t x_image;      /* floats between images */
  int64_t images, ho, wo, wp;
  float *acc;           /* the lane's partial [C][9][o16] at (c, 3 ky, first o) */
  int64_t acc_ch;       /* floats between channels: 9 o16 */
} c3_gradt_tile;

/* One tile of the Winograd weight gradient's products, for one transformed plane xi:
 * m[k][o] += sum over the batch's tiles t of v[k][t] d[t][o], for nc (<= FG_C3_WGRAD_CH) input
 * channels k and 16 output channels o (two vectors): 2 nc accumulators, loaded from m and
 * stored back. */
typedef struct c3_wgrad_tile {
  const float *v;    /* V[xi] of the first channel, at tile 0 */
  int64_t v_ch;      /* floats between channels */
  const float *d;    /* D[xi] at tile 0, the block's first o */
  int64_t d_tile;    /* floats between tiles (o16) */
  int64_t tiles;
  float *m;          /* M[xi] at the first channel, the block's first o */
  int64_t m_ch;      /* floats between channels (o16) */
} c3_wgrad_tile;

#if FG_CONV3X3_X86

#define FG_C3_TARGET __attribute__((target("avx2,fma")))
/* Hides where pointer p points from the optimiser (an empty asm that may change it). Used where
 * the compiler would otherwise carry loaded values from one loop iteration to the next in
 * registers that the accumulators need, spilling one of them (2.5x slower). */
#define FG_C3_OPAQUE(p) __asm__("" : "+r"(p))


FG_C3_TARGET static void tile_fwd3(const c3_tile *t) {
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
  __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
  const float *w = t->w;
  for (int64_t c = 0; c < t->channels; c++) {
    const float *xc = t->x + c * t->x_stride;
    for (int k = 0; k < t->taps; k++, w += FG_C3_BLOCK) {
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
    for (int k = 0; k < t->taps; k++, w += FG_C3_BLOCK) {
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
    for (int k = 0; k < t->taps; k++, w += FG_C3_BLOCK) {
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

/* [a0 a2 a4 a6 b0 b2 b4 b6] and [a1 a3 a5 a7 b1 b3 b5 b7] */
FG_C3_TARGET static void deinterleave(__m256 a, __m256 b, __m256 *even, __m256 *odd) {
  const __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
  const __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  *even = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xd8));
  *odd = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), 0xd8));
}

/* The 4 tile columns s of 8 tiles from padded row r: row[s] holds r[2 l + s], l < 8. */
FG_C3_TARGET static void tile_row_columns(const float *r, __m256 *row) {
  deinterleave(_mm256_loadu_ps(r), _mm256_loadu_ps(r + 8), &row[0], &row[1]);
  deinterleave(_mm256_loadu_ps(r + 2), _mm256_loadu_ps(r + 10), &row[2], &row[3]);
}

/* Winograd input transform of tile rows [i0, i1) of one channel, from its zero-padded plane
 * (c3_wino: rows of wp): V[xi][t] = (B^T d_t B)[xi], B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0;
 * 0 1 0 -1], for the xi = 4 r + s with r in [r0, r1) (all 16: 0, 4); V rows `xi_stride` floats
 * apart from xi = 4 r0, tile (i, j) at v + (i - i0) tw + j. Tiles go 8
 * at a time along a tile row (each 8-tile column top to bottom, so that the two padded rows tile
 * row i shares with tile row i + 1 are read once); the vector that passes a row's end writes
 * junk that the next row's first column (or, after the last row, the slack) overwrites. */
FG_C3_TARGET static void wino_input(const c3_wino *g, const float *pad, int64_t i0, int64_t i1,
                                    float *v, int64_t xi_stride, int r0, int r1) {
  /* the last 8-tile column first: its junk past a row's end lands on the next row's first
   * tiles, which the first column writes afterwards */
  for (int64_t j = (g->tw - 1) / FG_C3_VEC * FG_C3_VEC; j >= 0; j -= FG_C3_VEC) {
    const float *col = pad + 2 * j; /* tile column s of tile j + l is padded column 2 (j + l) + s */
    __m256 d[4][4];                 /* d[k][s]: tile row k, tile column s, for the 8 tiles */
    tile_row_columns(col + 2 * i0 * g->wp, d[2]);
    tile_row_columns(col + (2 * i0 + 1) * g->wp, d[3]);
    for (int64_t i = i0; i < i1; i++) {
      for (int s = 0; s < 4; s++) d[0][s] = d[2][s], d[1][s] = d[3][s];
      tile_row_columns(col + (2 * i + 2) * g->wp, d[2]);
      tile_row_columns(col + (2 * i + 3) * g->wp, d[3]);
      __m256 e[4][4]; /* (B^T d)[r][s] */
      for (int s = 0; s < 4; s++) {
        e[0][s] = _mm256_sub_ps(d[0][s], d[2][s]);
        e[1][s] = _mm256_add_ps(d[1][s], d[2][s]);
        e[2][s] = _mm256_sub_ps(d[2][s], d[1][s]);
        e[3][s] = _mm256_sub_ps(d[1][s], d[3][s]);
      }
      float *dst = v + (i - i0) * g->tw + j;
      for (int r = r0; r < r1; r++, dst += 4 * xi_stride) {
        _mm256_storeu_ps(dst, _mm256_sub_ps(e[r][0], e[r][2]));
        _mm256_storeu_ps(dst + xi_stride, _mm256_add_ps(e[r][1], e[r][2]));
        _mm256_storeu_ps(dst + 2 * xi_stride, _mm256_sub_ps(e[r][2], e[r][1]));
        _mm256_storeu_ps(dst + 3 * xi_stride, _mm256_sub_ps(e[r][1], e[r][3]));
      }
    }
  }
}

/* In each 128-bit half, the 4 x 4 transpose of rows x[0..3]: y[k] holds element k of each row
 * ([a_k b_k c_k d_k] in each half, for rows a, b, c, d). */
FG_C3_TARGET static void transpose4_halves(const __m256 x[4], __m256 y[4]) {
  const __m256 t0 = _mm256_unpacklo_ps(x[0], x[1]), t1 = _mm256_unpackhi_ps(x[0], x[1]);
  const __m256 t2 = _mm256_unpacklo_ps(x[2], x[3]), t3 = _mm256_unpackhi_ps(x[2], x[3]);
  y[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  y[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  y[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  y[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

/* dst[0..n) (=|+=) the first n of the 8 k floats in out[0..k). A partial run goes through a
 * small buffer (masked stores are slow on some CPUs). */
FG_C3_TARGET static void store_run(float *dst, const __m256 *out, int k, int64_t n,
                                   int accumulate) {
  if (n >= FG_C3_VEC * k) {
    for (int q = 0; q < k; q++) {
      const __m256 y = accumulate ? _mm256_add_ps(out[q], _mm256_loadu_ps(dst + FG_C3_VEC * q))
                                  : out[q];
      _mm256_storeu_ps(dst + FG_C3_VEC * q, y);
    }
    return;
  }
  float tmp[4 * FG_C3_VEC];
  for (int q = 0; q < k; q++) _mm256_storeu_ps(tmp + FG_C3_VEC * q, out[q]);
  if (accumulate) {
    for (int64_t e = 0; e < n; e++) dst[e] += tmp[e];
  } else {
    for (int64_t e = 0; e < n; e++) dst[e] = tmp[e];
  }
}

/* dst[0..n) (=|+=) the first n of the 16 interleaved values [y0_0 y1_0 y0_1 y1_1 ...] (+ b). */
FG_C3_TARGET static void store_pairs(float *dst, __m256 y0, __m256 y1, int64_t n, __m256 b,
                                     int accumulate) {
  const __m256 t0 = _mm256_unpacklo_ps(y0, y1), t1 = _mm256_unpackhi_ps(y0, y1);
  const __m256 out[2] = {_mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x20), b),
                         _mm256_add_ps(_mm256_permute2f128_ps(t0, t1, 0x31), b)};
  store_run(dst, out, 2, n, accumulate);
}

/* Winograd output transform of tile rows [i0, i1) of one output channel: the 2x2 outputs
 * A^T M_t A, A^T = [1 1 1 0; 0 1 -1 -1], from M[xi][t] (rows `xi_stride` apart, tile (i, j) at
 * m + (i - i0) tw + j) into dst
 * [ho, wo] (=|+=, + bias); nothing outside the image is written. */
FG_C3_TARGET static void wino_output(const c3_wino *g, const float *m, int64_t xi_stride,
                                     int64_t i0, int64_t i1, float *dst, float bias,
                                     int accumulate) {
  const __m256 b = _mm256_set1_ps(bias);
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = 0; j < g->tw; j += FG_C3_VEC) {
      const float *src = m + (i - i0) * g->tw + j;
      __m256 z[2][4]; /* A^T M, per column s */
      for (int s = 0; s < 4; s++) {
        const __m256 m0 = _mm256_loadu_ps(src + (0 + s) * xi_stride);
        const __m256 m1 = _mm256_loadu_ps(src + (4 + s) * xi_stride);
        const __m256 m2 = _mm256_loadu_ps(src + (8 + s) * xi_stride);
        const __m256 m3 = _mm256_loadu_ps(src + (12 + s) * xi_stride);
        z[0][s] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
        z[1][s] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
      }
      for (int a = 0; a < 2 && 2 * i + a < g->ho; a++) {
        const __m256 y0 = _mm256_add_ps(_mm256_add_ps(z[a][0], z[a][1]), z[a][2]);
        const __m256 y1 = _mm256_sub_ps(_mm256_sub_ps(z[a][1], z[a][2]), z[a][3]);
        store_pairs(dst + (2 * i + a) * g->wo + 2 * j, y0, y1, g->wo - 2 * j, b, accumulate);
      }
    }
}

/* F(4x4, 3x3), with B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
 * 0 2 -1 -2 1 0; 0 4 0 -5 0 1] and A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0;
 * 0 1 -1 8 -8 1] (Lavin & Gray's, points 0, +-1, +-2): t := B^T d along one axis. */
FG_C3_TARGET static void winograd_bt6(const __m256 d[6], __m256 t[6]) {
  const __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f);
  const __m256 two = _mm256_set1_ps(2.0f);
  t[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
  t[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
  t[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
  const __m256 f = _mm256_sub_ps(d[4], d[2]), g = _mm256_sub_ps(d[3], d[1]);
  t[3] = _mm256_fmadd_ps(two, g, f);
  t[4] = _mm256_fnmadd_ps(two, g, f);
  t[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/* y := A^T m along one axis. */
FG_C3_TARGET static void winograd_at6(const __m256 m[6], __m256 y[4]) {
  const __m256 s12 = _mm256_add_ps(m[1], m[2]), d12 = _mm256_sub_ps(m[1], m[2]);
  const __m256 s34 = _mm256_add_ps(m[3], m[4]), d34 = _mm256_sub_ps(m[3], m[4]);
  y[0] = _mm256_add_ps(_mm256_add_ps(m[0], s12), s34);
  y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2.0f), d34, d12);
  y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4.0f), s34, s12);
  y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d34, d12), m[5]);
}

/* The 6 tile columns s of 8 tiles 4 apart from padded row r: col[s] holds r[4 l + s], l < 8
 * (reads r[0..33]). */
FG_C3_TARGET static void tile_row_columns6(const float *r, __m256 col[6]) {
  const __m256 a0 = _mm256_loadu_ps(r), a1 = _mm256_loadu_ps(r + 8);
  const __m256 a2 = _mm256_loadu_ps(r + 16), a3 = _mm256_loadu_ps(r + 24);
  /* tiles (0 | 4), (1 | 5), (2 | 6), (3 | 7), then a 4 x 4 transpose in each 128-bit half */
  const __m256 p[4] = {_mm256_permute2f128_ps(a0, a2, 0x20), _mm256_permute2f128_ps(a0, a2, 0x31),
                       _mm256_permute2f128_ps(a1, a3, 0x20), _mm256_permute2f128_ps(a1, a3, 0x31)};
  transpose4_halves(p, col);
  /* columns 4, 5 are columns 0, 1 of the next tile: shift by one lane, r[32], r[33] last */
  const __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  col[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(col[0], next), _mm256_broadcast_ss(r + 32),
                           0x80);
  col[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(col[1], next), _mm256_broadcast_ss(r + 33),
                           0x80);
}

/* F(4x4) input transform of tile rows [i0, i1) of one channel, as wino_input (all 36 planes
 * xi = 6 r + s, tile (i, j) at v + (i - i0) tw + j): each padded row is transformed along x
 * once (the two it shares with the next tile row kept), then each column along y. */
FG_C3_TARGET static void wino_input4(const c3_wino *g, const float *pad, int64_t i0, int64_t i1,
                                     float *v, int64_t xi_stride) {
  for (int64_t j = (g->tw - 1) / FG_C3_VEC * FG_C3_VEC; j >= 0; j -= FG_C3_VEC) {
    const float *col = pad + 4 * j;
    __m256 h[6][6]; /* h[k][s]: padded row 4 i + k transformed along x, for the 8 tiles */
    __m256 c[6];
    for (int k = 4; k < 6; k++) {
      tile_row_columns6(col + (4 * i0 + k - 4) * g->wp, c);
      winograd_bt6(c, h[k]);
    }
    for (int64_t i = i0; i < i1; i++) {
      for (int s = 0; s < 6; s++) h[0][s] = h[4][s], h[1][s] = h[5][s];
      for (int k = 2; k < 6; k++) {
        tile_row_columns6(col + (4 * i + k) * g->wp, c);
        winograd_bt6(c, h[k]);
      }
      float *dst = v + (i - i0) * g->tw + j;
      for (int s = 0; s < 6; s++) {
        __m256 d[6], t[6];
        for (int k = 0; k < 6; k++) d[k] = h[k][s];
        winograd_bt6(d, t);
        for (int r = 0; r < 6; r++) _mm256_storeu_ps(dst + (6 * r + s) * xi_stride, t[r]);
      }
    }
  }
}

/* F(4x4) output transform of tile rows [i0, i1) of one output channel, as wino_output: the 4x4
 * outputs A^T M_t A into dst [ho, wo] (=|+=, + bias); nothing outside the image is written. */
FG_C3_TARGET static void wino_output4(const c3_wino *g, const float *m, int64_t xi_stride,
                                      int64_t i0, int64_t i1, float *dst, float bias,
                                      int accumulate) {
  const __m256 b = _mm256_set1_ps(bias);
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = 0; j < g->tw; j += FG_C3_VEC) {
      const float *src = m + (i - i0) * g->tw + j;
      __m256 z[4][6]; /* A^T M along y: z[a][s] */
      for (int s = 0; s < 6; s++) {
        __m256 col[6], y[4];
        for (int k = 0; k < 6; k++) col[k] = _mm256_loadu_ps(src + (6 * k + s) * xi_stride);
        winograd_at6(col, y);
        for (int a = 0; a < 4; a++) z[a][s] = y[a];
      }
      for (int a = 0; a < 4 && 4 * i + a < g->ho; a++) {
        __m256 y[4]; /* y[q]: output column 4 (j + l) + q of the 8 tiles l */
        winograd_at6(z[a], y);
        /* interleave: out = [y0_0 y1_0 y2_0 y3_0 y0_1 ...] (a 4 x 4 transpose per half) */
        __m256 u[4];
        transpose4_halves(y, u);
        const __m256 out[4] = {_mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x20), b),
                               _mm256_add_ps(_mm256_permute2f128_ps(u[2], u[3], 0x20), b),
                               _mm256_add_ps(_mm256_permute2f128_ps(u[0], u[1], 0x31), b),
                               _mm256_add_ps(_mm256_permute2f128_ps(u[2], u[3], 0x31), b)};
        store_run(dst + (4 * i + a) * g->wo + 4 * j, out, 4, g->wo - 4 * j, accumulate);
      }
    }
}


FG_C3_TARGET static void tile_gradt2(const c3_gradt_tile *t) {
  float *a = t->acc;
  const int64_t k = t->o16, c = t->acc_ch;
  __m256 a00 = _mm256_loadu_ps(a), a01 = _mm256_loadu_ps(a + 8);
  __m256 a10 = _mm256_loadu_ps(a + k), a11 = _mm256_loadu_ps(a + k + 8);
  __m256 a20 = _mm256_loadu_ps(a + 2 * k), a21 = _mm256_loadu_ps(a + 2 * k + 8);
  __m256 b00 = _mm256_loadu_ps(a + c), b01 = _mm256_loadu_ps(a + c + 8);
  __m256 b10 = _mm256_loadu_ps(a + c + k), b11 = _mm256_loadu_ps(a + c + k + 8);
  __m256 b20 = _mm256_loadu_ps(a + c + 2 * k), b21 = _mm256_loadu_ps(a + c + 2 * k + 8);
  for (int64_t i = 0; i < t->images; i++)
    for (int64_t oy = 0; oy < t->ho; oy++) {
      const float *r0 = t->x0 + i * t->x_image + oy * t->wp;
      const float *r1 = t->x1 + i * t->x_image + oy * t->wp;
      const float *d = t->dyt + i * t->dyt_image + oy * t->wo * k;
      for (int64_t ox = 0; ox < t->wo; ox++, d += k) {
        const float *p0 = r0 + ox, *p1 = r1 + ox;
        FG_C3_OPAQUE(p0);
        FG_C3_OPAQUE(p1);
        const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
        __m256 x = _mm256_broadcast_ss(p0);
        a00 = _mm256_fmadd_ps(x, d0, a00), a01 = _mm256_fmadd_ps(x, d1, a01);
        x = _mm256_broadcast_ss(p0 + 1);
        a10 = _mm256_fmadd_ps(x, d0, a10), a11 = _mm256_fmadd_ps(x, d1, a11);
        x = _mm256_broadcast_ss(p0 + 2);
        a20 = _mm256_fmadd_ps(x, d0, a20), a21 = _mm256_fmadd_ps(x, d1, a21);
        x = _mm256_broadcast_ss(p1);
        b00 = _mm256_fmadd_ps(x, d0, b00), b01 = _mm256_fmadd_ps(x, d1, b01);
        x = _mm256_broadcast_ss(p1 + 1);
        b10 = _mm256_fmadd_ps(x, d0, b10), b11 = _mm256_fmadd_ps(x, d1, b11);
        x = _mm256_broadcast_ss(p1 + 2);
        b20 = _mm256_fmadd_ps(x, d0, b20), b21 = _mm256_fmadd_ps(x, d1, b21);
      }
    }
  _mm256_storeu_ps(a, a00), _mm256_storeu_ps(a + 8, a01);
  _mm256_storeu_ps(a + k, a10), _mm256_storeu_ps(a + k + 8, a11);
  _mm256_storeu_ps(a + 2 * k, a20), _mm256_storeu_ps(a + 2 * k + 8, a21);
  _mm256_storeu_ps(a + c, b00), _mm256_storeu_ps(a + c + 8, b01);
  _mm256_storeu_ps(a + c + k, b10), _mm256_storeu_ps(a + c + k + 8, b11);
  _mm256_storeu_ps(a + c + 2 * k, b20), _mm256_storeu_ps(a + c + 2 * k + 8, b21);
}

FG_C3_TARGET static void tile_gradt1(const c3_gradt_tile *t) {
  float *a = t->acc;
  const int64_t k = t->o16;
  __m256 a00 = _mm256_loadu_ps(a), a01 = _mm256_loadu_ps(a + 8);
  __m256 a10 = _mm256_loadu_ps(a + k), a11 = _mm256_loadu_ps(a + k + 8);
  __m256 a20 = _mm256_loadu_ps(a + 2 * k), a21 = _mm256_loadu_ps(a + 2 * k + 8);
  for (int64_t i = 0; i < t->images; i++)
    for (int64_t oy = 0; oy < t->ho; oy++) {
      const float *r0 = t->x0 + i * t->x_image + oy * t->wp;
      const float *d = t->dyt + i * t->dyt_image + oy * t->wo * k;
      for (int64_t ox = 0; ox < t->wo; ox++, d += k) {
        const float *p0 = r0 + ox;
        FG_C3_OPAQUE(p0);
        const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
        __m256 x = _mm256_broadcast_ss(p0);
        a00 = _mm256_fmadd_ps(x, d0, a00), a01 = _mm256_fmadd_ps(x, d1, a01);
        x = _mm256_broadcast_ss(p0 + 1);
        a10 = _mm256_fmadd_ps(x, d0, a10), a11 = _mm256_fmadd_ps(x, d1, a11);
        x = _mm256_broadcast_ss(p0 + 2);
        a20 = _mm256_fmadd_ps(x, d0, a20), a21 = _mm256_fmadd_ps(x, d1, a21);
      }
    }
  _mm256_storeu_ps(a, a00), _mm256_storeu_ps(a + 8, a01);
  _mm256_storeu_ps(a + k, a10), _mm256_storeu_ps(a + k + 8, a11);
  _mm256_storeu_ps(a + 2 * k, a20), _mm256_storeu_ps(a + 2 * k + 8, a21);
}

int fg_cpu_conv3x3_cpu_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* The products of c3_wgrad_tile for a constant nc (inlined into the callers below, so that
 * the accumulators live in registers). */
FG_C3_TARGET static inline __attribute__((always_inline)) void wgrad_tile_n(
    const c3_wgrad_tile *t, const int nc) {
  __m256 a[FG_C3_WGRAD_CH][2];
#pragma GCC unroll 6
  for (int k = 0; k < nc; k++) {
    a[k][0] = _mm256_loadu_ps(t->m + k * t->m_ch);
    a[k][1] = _mm256_loadu_ps(t->m + k * t->m_ch + 8);
  }
  const float *d = t->d, *v = t->v;
  for (int64_t i = 0; i < t->tiles; i++, d += t->d_tile, v++) {
    const float *vk = v;
    FG_C3_OPAQUE(vk);
    const __m256 d0 = _mm256_loadu_ps(d), d1 = _mm256_loadu_ps(d + 8);
#pragma GCC unroll 6
    for (int k = 0; k < nc; k++) {
      const __m256 x = _mm256_broadcast_ss(vk + k * t->v_ch);
      a[k][0] = _mm256_fmadd_ps(x, d0, a[k][0]);
      a[k][1] = _mm256_fmadd_ps(x, d1, a[k][1]);
    }
  }
#pragma GCC unroll 6
  for (int k = 0; k < nc; k++) {
    _mm256_storeu_ps(t->m + k * t->m_ch, a[k][0]);
    _mm256_storeu_ps(t->m + k * t->m_ch + 8, a[k][1]);
  }
}

FG_C3_TARGET static void tile_wgrad(const c3_wgrad_tile *t, int nc) {
  switch (nc) {
  case 6: wgrad_tile_n(t, 6); break;
  case 5: wgrad_tile_n(t, 5); break;
  case 4: wgrad_tile_n(t, 4); break;
  case 3: wgrad_tile_n(t, 3); break;
  case 2: wgrad_tile_n(t, 2); break;
  default: wgrad_tile_n(t, 1); break;
  }
}

/* The weight gradient's dy transform of tile rows [i0, i1) of one image: for each tile t (2x2
 * outputs, those outside [ho, wo] zero) D[xi][t][o] = (G' dy_t G'^T)[xi] with
 * G' = [1 0; 1/2 1/2; 1/2 -1/2; 0 -1] for the xi = 4 r + s with r in [r0, r1), from the
 * transposed dy [ho wo][o16] (vectors of 8 output channels); D rows `xi_stride` floats apart
 * from xi = 4 r0, tile (i, j) at d + ((i - i0) tw + j) o16. (G' is F(3x3, 2x2)'s G with its last
 * row negated, matching wino_input's B^T, whose last row is the negative of that algorithm's.) */
FG_C3_TARGET static void wgrad_dy(const c3_wino *g, const float *dyt, int64_t o16, int64_t i0,
                                  int64_t i1, int r0, int r1, float *d, int64_t xi_stride) {
  const __m256 half = _mm256_set1_ps(0.5f), zero = _mm256_setzero_ps();
  for (int64_t i = i0; i < i1; i++)
    for (int64_t j = 0; j < g->tw; j++) {
      const int bottom = 2 * i + 1 < g->ho, right = 2 * j + 1 < g->wo;
      const float *top = dyt + (2 * i * g->wo + 2 * j) * o16, *below = top + g->wo * o16;
      float *dst = d + ((i - i0) * g->tw + j) * o16;
      for (int64_t o = 0; o < o16; o += FG_C3_VEC) {
        const __m256 p = _mm256_loadu_ps(top + o);
        const __m256 q = right ? _mm256_loadu_ps(top + o16 + o) : zero;
        const __m256 r = bottom ? _mm256_loadu_ps(below + o) : zero;
        const __m256 s = right && bottom ? _mm256_loadu_ps(below + o16 + o) : zero;
        __m256 rows[4][2]; /* G' dy: rows[a] = (column 0, column 1) */
        rows[0][0] = p, rows[0][1] = q;
        rows[1][0] = _mm256_mul_ps(half, _mm256_add_ps(p, r));
        rows[1][1] = _mm256_mul_ps(half, _mm256_add_ps(q, s));
        rows[2][0] = _mm256_mul_ps(half, _mm256_sub_ps(p, r));
        rows[2][1] = _mm256_mul_ps(half, _mm256_sub_ps(q, s));
        rows[3][0] = _mm256_sub_ps(zero, r), rows[3][1] = _mm256_sub_ps(zero, s);
        float *out = dst + o;
        for (int a = r0; a < r1; a++, out += 4 * xi_stride) {
          const __m256 u = rows[a][0], w = rows[a][1];
          _mm256_storeu_ps(out, u);
          _mm256_storeu_ps(out + xi_stride, _mm256_mul_ps(half, _mm256_add_ps(u, w)));
          _mm256_storeu_ps(out + 2 * xi_stride, _mm256_mul_ps(half, _mm256_sub_ps(u, w)));
          _mm256_storeu_ps(out + 3 * xi_stride, _mm256_sub_ps(zero, w));
        }
      }
    }
}

/* dst[k][r] := src[r][k] for an 8 x 8 block (rows `src_row` and `dst_row` floats apart). */
FG_C3_TARGET static void transpose8(const float *src, int64_t src_row, float *dst,
                                    int64_t dst_row) {
  __m256 x[8], r[8];
  for (int k = 0; k < 8; k++) x[k] = _mm256_loadu_ps(src + k * src_row);
  transpose4_halves(x, r);         /* rows 0-3: r[k] = [a_k b_k c_k d_k | a_k+4 ...] */
  transpose4_halves(x + 4, r + 4); /* rows 4-7 */
  for (int k = 0; k < 4; k++) {
    _mm256_storeu_ps(dst + k * dst_row, _mm256_permute2f128_ps(r[k], r[k + 4], 0x20));
    _mm256_storeu_ps(dst + (k + 4) * dst_row, _mm256_permute2f128_ps(r[k], r[k + 4], 0x31));
  }
}

#else /* no x86 kernels: fg_cpu_conv3x3_applies is always 0 and these are never called */
static void tile_fwd3(const c3_tile *t) { (void)t; }
static void tile_fwd2(const c3_tile *t) { (void)t; }
static void tile_fwd1(const c3_tile *t) { (void)t; }
static void tile_grad(const c3_grad_tile *t) { (void)t; }
static void wino_input(const c3_wino *g, const float *pad, int64_t i0, int64_t i1, float *v,
                       int64_t xi_stride, int r0, int r1) {
  (void)g, (void)pad, (void)i0, (void)i1, (void)v, (void)xi_stride, (void)r0, (void)r1;
}
static void wino_input4(const c3_wino *g, const float *pad, int64_t i0, int64_t i1, float *v,
                        int64_t xi_stride) {
  (void)g, (void)pad, (void)i0, (void)i1, (void)v, (void)xi_stride;
}
static void wino_output4(const c3_wino *g, const float *m, int64_t xi_stride, int64_t i0,
                         int64_t i1, float *dst, float bias, int accumulate) {
  (void)g, (void)m, (void)xi_stride, (void)i0, (void)i1, (void)dst, (void)bias, (void)accumulate;
}
static void wino_output(const c3_wino *g, const float *m, int64_t xi_stride, int64_t i0,
                        int64_t i1, float *dst, float bias, int accumulate) {
  (void)g, (void)m, (void)xi_stride, (void)i0, (void)i1, (void)dst, (void)bias, (void)accumulate;
}
static void tile_gradt2(const c3_gradt_tile *t) { (void)t; }
static void tile_gradt1(const c3_gradt_tile *t) { (void)t; }
static void tile_wgrad(const c3_wgrad_tile *t, int nc) { (void)t, (void)nc; }
static void wgrad_dy(const c3_wino *g, const float *dyt, int64_t o16, int64_t i0, int64_t i1,
                     int r0, int r1, float *d, int64_t xi_stride) {
  (void)g, (void)dyt, (void)o16, (void)i0, (void)i1, (void)r0, (void)r1, (void)d, (void)xi_stride;
}
static void transpose8(const float *src, int64_t src_row, float *dst, int64_t dst_row) {
  (void)src, (void)src_row, (void)dst, (void)dst_row;
}
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

/* Runs the tiles of one 4-row block over `nvec` vectors of positions: widths 3, then 2 and 1
 * for the rest (4 goes as 2 + 2 rather than 3 + 1). t: everything but x and out, which are
 * advanced from x0 and out0. */
static void tile_row(c3_tile *t, const float *x0, float *out0, int64_t nvec) {
  int64_t v = 0;
  while (v < nvec) {
    const int64_t left = nvec - v;
    t->x = x0 + FG_C3_VEC * v;
    t->out = out0 + FG_C3_VEC * v;
    if (left >= 3 && left != 4) {
      tile_fwd3(t);
      v += 3;
    } else if (left >= 2) {
      tile_fwd2(t);
      v += 2;
    } else {
      tile_fwd1(t);
      v += 1;
    }
  }
}

/* Direct: out [rows4][out_floats] := the 3x3 kernel over xpad [channels][in_floats] with packed
 * weights [rows4 / 4][channels][9][4]. */
static void convolve_planes(const c3_geom *g, int64_t channels, int64_t rows4, const float *xpad,
                            const float *wpack, float *out) {
  c3_tile t;
  memset(&t, 0, sizeof t);
  t.x_stride = g->in_floats;
  t.channels = channels;
  t.off = g->off;
  t.taps = FG_C3_TAPS;
  t.out_stride = g->out_floats;
  for (int64_t rb = 0; rb < rows4 / FG_C3_BLOCK; rb++) {
    t.w = wpack + rb * channels * FG_C3_TAPS * FG_C3_BLOCK;
    tile_row(&t, xpad, out + rb * FG_C3_BLOCK * g->out_floats, g->nvec);
  }
}

/* Winograd: the interior of the padded plane [2 th + 2][wp] := one image channel [h, w]. */
static void pad_plane(const c3_wino *g, const float *src, float *pad) {
  for (int64_t iy = 0; iy < g->h; iy++) {
    const float *s = src + iy * g->w;
    float *d = pad + (iy + g->pad) * g->wp + g->pad;
    for (int64_t ix = 0; ix < g->w; ix++) d[ix] = s[ix];
  }
}

/* Winograd: the input transform of tile rows [i0, i1) of one channel's padded plane into all
 * of g's planes (xi_stride floats apart, tile (i, j) at v + (i - i0) tw + j). */
static void transform_input(const c3_wino *g, const float *pad, int64_t i0, int64_t i1, float *v,
                            int64_t xi_stride) {
  if (g->m == 4)
    wino_input4(g, pad, i0, i1, v, xi_stride);
  else
    wino_input(g, pad, i0, i1, v, xi_stride, 0, 4);
}

/* Winograd: the output transform of tile rows [i0, i1) of one output channel, from its planes
 * (as transform_input's) into dst [ho, wo] (=|+=, + bias). */
static void transform_output(const c3_wino *g, const float *m, int64_t xi_stride, int64_t i0,
                             int64_t i1, float *dst, float bias, int accumulate) {
  if (g->m == 4)
    wino_output4(g, m, xi_stride, i0, i1, dst, bias, accumulate);
  else
    wino_output(g, m, xi_stride, i0, i1, dst, bias, accumulate);
}

/* Winograd: m [xi][rows4][vt] := the products over input channels of the transformed weights
 * u [xi][rows4 / 4][in_ch][4] and the transformed tiles v [xi][in_ch][vt] of `tiles` tiles,
 * for the pieces (plane xi, row block rb) numbered [j0, j1) in the order xi * rows4 / 4 + rb
 * (all of them: 0, xi rows4 / 4). */
static void winograd_products(const c3_dir *d, const float *u, const float *v, int64_t tiles,
                              float *m, int64_t j0, int64_t j1) {
  static const int64_t zero_offset[1] = {0};
  c3_tile t;
  memset(&t, 0, sizeof t);
  t.x_stride = d->vt;
  t.channels = d->in_ch;
  t.off = zero_offset;
  t.taps = 1;
  t.out_stride = d->vt;
  const int64_t nvec = (tiles + FG_C3_VEC - 1) / FG_C3_VEC, blocks = d->rows4 / FG_C3_BLOCK;
  for (int64_t j = j0; j < j1; j++) {
    const int64_t xi = j / blocks, rb = j % blocks;
    t.w = u + (xi * d->rows4 + rb * FG_C3_BLOCK) * d->in_ch;
    tile_row(&t, v + xi * d->v_xi, m + xi * d->m_xi + rb * FG_C3_BLOCK * d->vt, nvec);
  }
}

/* ----------------------------------------------------------------------------------------- */
/* Weights                                                                                    */

/* The 3x3 kernel from input channel `in` to output row `row` of a direction, tap t:
 * forward w[row][in][t]; backward data w[in][row][8 - t] (flipped and transposed). Rows past the
 * real ones have zero kernels. */
static float dir_kernel(const c3_dir *d, const float *w, int64_t row, int64_t in, int t) {
  if (row >= d->rows) return 0.0f;
  if (d->backward) return w[(in * d->rows + row) * FG_C3_TAPS + (FG_C3_TAPS - 1 - t)];
  return w[(row * d->in_ch + in) * FG_C3_TAPS + t];
}

/* Direct: wpack[rb][in][t][r] = kernel(4 rb + r, in, t). */
static void pack_direct_weights(const c3_dir *d, const float *w, float *wpack) {
  for (int64_t rb = 0; rb < d->rows4 / FG_C3_BLOCK; rb++)
    for (int64_t in = 0; in < d->in_ch; in++)
      for (int t = 0; t < FG_C3_TAPS; t++)
        for (int r = 0; r < FG_C3_BLOCK; r++)
          wpack[((rb * d->in_ch + in) * FG_C3_TAPS + t) * FG_C3_BLOCK + r] =
              dir_kernel(d, w, rb * FG_C3_BLOCK + r, in, t);
}

/* G of F(2x2, 3x3) and of F(4x4, 3x3): U = G g G^T. */
static const double WINO_G2[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
static const double WINO_G4[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};

/* Winograd: u[xi][rb][in][r] = (G g G^T)[xi] for g = kernel(4 rb + r, in), computed in double
 * and rounded once; row blocks spread over `threads` threads (each element is computed on its
 * own). A block's 4 rows go together, so that each plane xi gets its 4 values of (rb, in) in
 * one contiguous store (16 or 36 planes, far apart, would otherwise take 64 or 144 scattered
 * stores). */
static void pack_winograd_weights(const c3_dir *d, const float *w, float *u, int threads) {
  const int64_t blocks = d->rows4 / FG_C3_BLOCK;
  const int a = d->wg.m + 2; /* transformed tile size */
  const double(*gm)[3] = d->wg.m == 4 ? WINO_G4 : WINO_G2;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t rb = 0; rb < blocks; rb++)
    for (int64_t in = 0; in < d->in_ch; in++) {
      double g[FG_C3_TAPS][FG_C3_BLOCK]; /* g[t][r]: tap t of row 4 rb + r */
      for (int r = 0; r < FG_C3_BLOCK; r++)
        for (int t = 0; t < FG_C3_TAPS; t++)
          g[t][r] = dir_kernel(d, w, rb * FG_C3_BLOCK + r, in, t);
      for (int y = 0; y < a; y++) {
        double gg[3][FG_C3_BLOCK]; /* row y of G g: gg[kx][r] */
        for (int kx = 0; kx < 3; kx++)
          for (int r = 0; r < FG_C3_BLOCK; r++)
            gg[kx][r] = gm[y][0] * g[kx][r] + gm[y][1] * g[3 + kx][r] + gm[y][2] * g[6 + kx][r];
        for (int x = 0; x < a; x++) {
          float *dst = u + (((y * a + x) * blocks + rb) * d->in_ch + in) * FG_C3_BLOCK;
          for (int r = 0; r < FG_C3_BLOCK; r++)
            dst[r] = (float)(gm[x][0] * gg[0][r] + gm[x][1] * gg[1][r] + gm[x][2] * gg[2][r]);
        }
      }
    }
}

static void pack_weights(const c3_dir *d, const float *w, float *wpack, int threads) {
  if (d->wino)
    pack_winograd_weights(d, w, wpack, threads);
  else
    pack_direct_weights(d, w, wpack);
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

/* One direction over a lane's images: src [N, in_ch, h, w] -> dst [N, rows, ho, wo]. */
static void convolve_lane(const c3_job *job, int lane, const c3_dir *d, const float *src,
                          float *dst, const float *bias, int accumulate) {
  const c3_plan *p = job->p;
  float *base = job->lanes + (size_t)lane * d->lane_floats;
  if (d->wino) {
    const c3_wino *g = &d->wg;
    float *pad = base, *v = base + d->v_off, *m = base + d->m_off;
    const int64_t in_plane = g->h * g->w, out_plane = g->ho * g->wo;
    memset(pad, 0, (size_t)(d->in_ch * g->plane) * sizeof(float)); /* borders stay zero */
    for (int64_t n = lane; n < p->n; n += d->lanes) {
      for (int64_t c = 0; c < d->in_ch; c++)
        pad_plane(g, src + (n * d->in_ch + c) * in_plane, pad + c * g->plane);
      for (int64_t i0 = 0; i0 < g->th; i0 += d->block_rows) {
        const int64_t i1 = i0 + d->block_rows < g->th ? i0 + d->block_rows : g->th;
        for (int64_t c = 0; c < d->in_ch; c++)
          transform_input(g, pad + c * g->plane, i0, i1, v + c * d->vt, d->v_xi);
        winograd_products(d, job->wpack, v, (i1 - i0) * g->tw, m, 0,
                          d->wg.xi * d->rows4 / FG_C3_BLOCK);
        for (int64_t r = 0; r < d->rows; r++)
          transform_output(g, m + r * d->vt, d->m_xi, i0, i1,
                           dst + (n * d->rows + r) * out_plane, bias ? bias[r] : 0.0f, accumulate);
      }
    }
  } else {
    const c3_geom *g = &d->direct;
    float *xpad = base, *out = base + d->out_off;
    memset(xpad, 0, (size_t)(d->in_ch * g->in_floats) * sizeof(float));
    const int64_t in_img = d->in_ch * g->h * g->w, out_img = d->rows * g->ho * g->wo;
    for (int64_t n = lane; n < p->n; n += d->lanes) {
      pad_planes(g, d->in_ch, src + n * in_img, xpad, g->in_floats);
      convolve_planes(g, d->in_ch, d->rows4, xpad, job->wpack, out);
      unpad_planes(g, d->rows, out, bias, accumulate, dst + n * out_img);
    }
  }
}

/* One direction in Winograd blocks of d->images whole images (images n0 .. n0 + count - 1,
 * image k's tiles at k * tiles in V and M), one block at a time; the threads share the one set
 * of buffers and split each step: every output is still computed by one thread from start to
 * end, in the same order whatever the thread count. */
static void convolve_grouped(const c3_job *job, const c3_dir *d, const float *src, float *dst,
                             const float *bias, int accumulate) {
  const c3_plan *p = job->p;
  const c3_wino *g = &d->wg;
  float *pad = job->lanes, *v = pad + d->v_off, *m = pad + d->m_off;
  const int64_t in_plane = g->h * g->w, out_plane = g->ho * g->wo;
  const int64_t pieces = g->xi * d->rows4 / FG_C3_BLOCK;
  memset(pad, 0, (size_t)(d->in_ch * g->plane) * sizeof(float)); /* borders stay zero */
  for (int64_t n0 = 0; n0 < p->n; n0 += d->images) {
    const int64_t count = p->n - n0 < d->images ? p->n - n0 : d->images;
#pragma omp parallel num_threads(p->threads)
    {
      /* a channel's images in order: the junk of image k's last vector lands on image k + 1's
       * first tiles, which its transform writes afterwards */
#pragma omp for schedule(static)
      for (int64_t c = 0; c < d->in_ch; c++)
        for (int64_t k = 0; k < count; k++) {
          pad_plane(g, src + ((n0 + k) * d->in_ch + c) * in_plane, pad + c * g->plane);
          transform_input(g, pad + c * g->plane, 0, g->th, v + c * d->vt + k * g->tiles, d->v_xi);
        }
#pragma omp for schedule(static)
      for (int64_t j = 0; j < pieces; j++)
        winograd_products(d, job->wpack, v, count * g->tiles, m, j, j + 1);
#pragma omp for schedule(static)
      for (int64_t j = 0; j < count * d->rows; j++) {
        const int64_t k = j / d->rows, r = j % d->rows;
        transform_output(g, m + r * d->vt + k * g->tiles, d->m_xi, 0, g->th,
                         dst + ((n0 + k) * d->rows + r) * out_plane, bias ? bias[r] : 0.0f,
                         accumulate);
      }
    }
  }
}

/* Runs direction d over its lanes (fn: forward_lane or backward_data_lane), or in blocks of
 * several images. */
static void run_direction(const c3_job *job, const c3_dir *d, fg_cpu_lane_fn fn, const float *src,
                          float *dst, const float *bias, int accumulate) {
  if (d->images > 1) {
    convolve_grouped(job, d, src, dst, bias, accumulate);
    return;
  }
  const int threads = job->p->threads < d->lanes ? job->p->threads : d->lanes;
  fg_cpu_run_lanes(d->lanes, threads, fn, job);
}

static void forward_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  convolve_lane(job, lane, &job->p->fwd, job->x, job->y, job->bias, 0);
}

static void backward_data_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  convolve_lane(job, lane, &job->p->bwd, job->dy, job->dx, NULL, job->accumulate);
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
  const c3_geom *g = &p->grad;
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
  const c3_geom *g = &p->grad;
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
    c3_grad_tile t;
    memset(&t, 0, sizeof t);
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
  }
}

/* dyt [ho wo][o16] (rows o < O) := dy_n [O, ho wo] transposed; rows >= O stay zero. */
static void transpose_dy(const c3_plan *p, const float *dyn, float *dyt) {
  const int64_t pixels = p->grad.ho * p->grad.wo;
  const int64_t o8 = p->o / FG_C3_VEC * FG_C3_VEC, q8 = pixels / FG_C3_VEC * FG_C3_VEC;
  for (int64_t o = 0; o < o8; o += FG_C3_VEC)
    for (int64_t q = 0; q < q8; q += FG_C3_VEC)
      transpose8(dyn + o * pixels + q, pixels, dyt + q * p->o16 + o, p->o16);
  for (int64_t o = 0; o < p->o; o++) /* what the 8 x 8 blocks leave */
    for (int64_t q = o < o8 ? q8 : 0; q < pixels; q++) dyt[q * p->o16 + o] = dyn[o * pixels + q];
}

/* Weight gradient by output-channel vectors: the lane's partial [C][9][o16] := the sum over
 * its images, taken gt_images at a time. */
static void gradt_lane(const void *arg, int lane) {
  const c3_job *job = arg;
  const c3_plan *p = job->p;
  const c3_geom *g = &p->grad;
  float *base = job->lanes + (size_t)lane * p->gt_lane;
  float *xg = base + p->gt_x_off, *dyt = base + p->gt_dyt_off, *part = base + p->gt_part_off;
  memset(base, 0, p->gt_lane * sizeof(float)); /* borders, rows >= O of dyt, the partial */
  const int64_t pixels = g->ho * g->wo, x_img = p->c * g->h * g->w, dy_img = p->o * pixels;
  const int64_t x_slot = p->c * g->in_floats, dyt_slot = pixels * p->o16;
  for (int64_t first = lane; first < p->n; first += p->gt_images * p->lanes) {
    int64_t images = 0;
    for (int64_t n = first; images < p->gt_images && n < p->n; n += p->lanes, images++) {
      pad_planes(g, p->c, job->x + n * x_img, xg + images * x_slot, g->in_floats);
      transpose_dy(p, job->dy + n * dy_img, dyt + images * dyt_slot);
    }
    c3_gradt_tile t;
    memset(&t, 0, sizeof t);
    t.dyt_image = dyt_slot;
    t.o16 = p->o16;
    t.x_image = x_slot;
    t.images = images;
    t.ho = g->ho;
    t.wo = g->wo;
    t.wp = g->wp;
    t.acc_ch = FG_C3_TAPS * p->o16;
    for (int64_t ob = 0; ob < p->o16; ob += 2 * FG_C3_VEC)
      for (int64_t c = 0; c < p->c; c += 2)
        for (int64_t ky = 0; ky < 3; ky++) {
          t.dyt = dyt + ob;
          t.x0 = xg + c * g->in_floats + ky * g->wp;
          t.x1 = c + 1 < p->c ? t.x0 + g->in_floats : NULL;
          t.acc = part + (c * FG_C3_TAPS + 3 * ky) * p->o16 + ob;
          if (t.x1)
            tile_gradt2(&t);
          else
            tile_gradt1(&t);
        }
  }
}

/* dw[o][c][t] := the lanes' partials [C][9][o16] added in lane order, transposed. */
static void gradt_finish(const c3_job *job, float *dw) {
  const c3_plan *p = job->p;
  const float *parts[1024]; /* lanes <= 1024 (fg_cpu_backend_register) */
  for (int l = 0; l < p->lanes; l++)
    parts[l] = job->lanes + (size_t)l * p->gt_lane + p->gt_part_off;
  const int64_t count = p->o * p->c * FG_C3_TAPS;
#pragma omp parallel for num_threads(p->threads) schedule(static)
  for (int64_t i = 0; i < count; i++) {
    const int64_t o = i / (p->c * FG_C3_TAPS), ct = i % (p->c * FG_C3_TAPS);
    const int64_t at = ct * p->o16 + o;
    float s = parts[0][at];
    for (int l = 1; l < p->lanes; l++) s += parts[l][at];
    dw[i] = s;
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

/* Winograd weight gradient (Lavin & Gray's F(3x3, 2x2) on the forward's tiles): for each tile
 * t, the 4x4 input patch d_t and the 2x2 dy outputs dy_t of one output channel o,
 *   dw[o][c] += A^T [ (G' dy_t G'^T) (.) (B^T d_t B) ] A,  A^T = [1 1 1 0; 0 1 -1 0; 0 1 1 1],
 * so dw[o][c] = A^T M[o][c] A with M[xi][c][o] = sum over every tile of every image of
 * V[xi][c][t] D[xi][t][o]: 16 products per tile, input and output channel instead of 36. The
 * sums over tiles run in the transformed domain, one M[xi] per plane; part k computes the 8
 * planes of transform rows 2k, 2k + 1 over all the images in order (each part transforms its
 * own copy of each image), so every sum runs in an order fixed by the shapes alone. */

/* M[xl][c][o16] += the products of a batch of `tiles` transformed tiles, V [8][C][wg_vt] and
 * D [8][wg_tcap][o16], for the part's 8 planes xl. */
static void wgrad_products(const c3_plan *p, const float *v, const float *d, int64_t tiles,
                           float *m) {
  c3_wgrad_tile t;
  t.v_ch = p->wg_vt;
  t.d_tile = p->o16;
  t.tiles = tiles;
  t.m_ch = p->o16;
  for (int xl = 0; xl < FG_C3_WGRAD_XI; xl++)
    for (int64_t ob = 0; ob < p->o16; ob += 2 * FG_C3_VEC)
      for (int64_t c = 0; c < p->c; c += FG_C3_WGRAD_CH) {
        const int nc = p->c - c < FG_C3_WGRAD_CH ? (int)(p->c - c) : FG_C3_WGRAD_CH;
        t.v = v + xl * p->wg_vxi + c * p->wg_vt;
        t.d = d + xl * p->wg_dxi + ob;
        t.m = m + xl * p->wg_mxi + c * p->o16 + ob;
        tile_wgrad(&t, nc);
      }
}

/* Part `part` of the Winograd weight gradient: its 8 planes of M := the sum over the images, in
 * order, of their tile rows, gathered into batches of at most wg_tcap tiles. */
static void wgrad_lane(const void *arg, int part) {
  const c3_job *job = arg;
  const c3_plan *p = job->p;
  const c3_wino *g = &p->wgg;
  float *base = job->lanes + (size_t)part * p->wg_part;
  float *pad = base, *dyt = base + p->wg_dyt_off, *v = base + p->wg_v_off;
  float *d = base + p->wg_d_off;
  float *m = job->lanes + FG_C3_WGRAD_PARTS * p->wg_part +
             (size_t)(part * FG_C3_WGRAD_XI) * (size_t)p->wg_mxi;
  const int r0 = 2 * part, r1 = r0 + 2;
  /* the padded planes' borders and dyt's rows >= O stay zero; the part's M starts at zero */
  memset(pad, 0, p->wg_v_off * sizeof(float));
  memset(m, 0, (size_t)(FG_C3_WGRAD_XI * p->wg_mxi) * sizeof(float));
  const int64_t in_plane = g->h * g->w, pixels = g->ho * g->wo;
  int64_t filled = 0;
  for (int64_t n = 0; n < p->n; n++) {
    for (int64_t c = 0; c < p->c; c++)
      pad_plane(g, job->x + (n * p->c + c) * in_plane, pad + c * g->plane);
    transpose_dy(p, job->dy + n * p->o * pixels, dyt);
    for (int64_t i0 = 0; i0 < g->th;) {
      int64_t rows = (p->wg_tcap - filled) / g->tw;
      if (rows == 0) {
        wgrad_products(p, v, d, filled, m);
        filled = 0;
        continue;
      }
      if (rows > g->th - i0) rows = g->th - i0;
      for (int64_t c = 0; c < p->c; c++)
        wino_input(g, pad + c * g->plane, i0, i0 + rows, v + c * p->wg_vt + filled, p->wg_vxi,
                   r0, r1);
      wgrad_dy(g, dyt, p->o16, i0, i0 + rows, r0, r1, d + filled * p->o16, p->wg_dxi);
      filled += rows * g->tw;
      i0 += rows;
    }
  }
  if (filled) wgrad_products(p, v, d, filled, m);
}

/* dw[o][c] := A^T M[.][c][o] A (3x3 from the 16 planes). Input channels spread over the
 * threads; each reads its row c of the 16 planes in order of o (M [16][C][o16] is large: read
 * across o, it would be a cache miss per value). */
static void wgrad_finish(const c3_job *job, float *dw) {
  const c3_plan *p = job->p;
  const float *m = job->lanes + FG_C3_WGRAD_PARTS * p->wg_part;
#pragma omp parallel for num_threads(p->threads) schedule(static)
  for (int64_t c = 0; c < p->c; c++)
    for (int64_t o = 0; o < p->o; o++) {
      float x[FG_C3_WINO];
      for (int xi = 0; xi < FG_C3_WINO; xi++) x[xi] = m[xi * p->wg_mxi + c * p->o16 + o];
      float z[3][4]; /* A^T M */
      for (int s = 0; s < 4; s++) {
        z[0][s] = x[s] + x[4 + s] + x[8 + s];
        z[1][s] = x[4 + s] - x[8 + s];
        z[2][s] = x[4 + s] + x[8 + s] + x[12 + s];
      }
      float *out = dw + (o * p->c + c) * FG_C3_TAPS;
      for (int a = 0; a < 3; a++) {
        out[3 * a] = z[a][0] + z[a][1] + z[a][2];
        out[3 * a + 1] = z[a][1] - z[a][2];
        out[3 * a + 2] = z[a][1] + z[a][2] + z[a][3];
      }
    }
}

/* ----------------------------------------------------------------------------------------- */
/* Entries                                                                                    */

int fg_cpu_conv3x3_applies(const fg_backend *b, const fg_conv_desc *d, int64_t kh, int64_t kw) {
  return fg_cpu_ctx_of(b)->avx2 && kh == 3 && kw == 3 && d->stride == 1 && d->groups == 1 &&
         d->pad <= 2;
}

fg_cpu_conv3x3_grad fg_cpu_conv3x3_grad_path(const fg_backend *b, const fg_conv_desc *d,
                                             const fg_tensor *x, const fg_tensor *w) {
  const c3_plan p = make_plan(b, d, x, w, 0);
  if (p.wgrad) return FG_CPU_C3_GRAD_WINOGRAD;
  return p.gradt ? FG_CPU_C3_GRAD_VECTORS : FG_CPU_C3_GRAD_DIRECT;
}

int64_t fg_cpu_conv3x3_block_images(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                    const fg_tensor *w, int backward) {
  const c3_plan p = make_plan(b, d, x, w, 0);
  const c3_dir *dir = backward ? &p.bwd : &p.fwd;
  return dir->wino ? dir->images : 0;
}

int fg_cpu_conv3x3_wino_tile(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                             const fg_tensor *w, size_t ws_bytes, int backward) {
  const c3_plan p = make_plan(b, d, x, w, ws_bytes / sizeof(float));
  const c3_dir *dir = backward ? &p.bwd : &p.fwd;
  return dir->wino ? dir->wg.m : 0;
}

size_t fg_cpu_conv3x3_workspace(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                const fg_tensor *w, size_t limit) {
  const c3_plan p = make_plan(b, d, x, w, limit / sizeof(float));
  return max_size(dir_floats(&p, &p.fwd), max_size(dir_floats(&p, &p.bwd), grad_floats(&p))) *
         sizeof(float);
}

fg_status fg_cpu_conv3x3_forward(const fg_backend *b, const fg_conv_desc *d, const fg_tensor *x,
                                 const fg_tensor *w, const fg_tensor *bias, fg_tensor *y,
                                 fg_workspace ws) {
  const c3_plan p = make_plan(b, d, x, w, ws.bytes / sizeof(float));
  if (p.n == 0) return FG_OK;
  float *base = ws.ptr;
  pack_weights(&p.fwd, fg_f32(w), base, p.threads);
  const c3_job job = {.p = &p, .x = fg_f32(x), .bias = bias ? fg_f32(bias) : NULL,
                      .wpack = base, .y = fg_f32(y), .lanes = base + p.fwd.w_floats};
  run_direction(&job, &p.fwd, forward_lane, job.x, job.y, job.bias, 0);
  return FG_OK;
}

fg_status fg_cpu_conv3x3_backward_data(const fg_backend *b, const fg_conv_desc *d,
                                       const fg_tensor *dy, const fg_tensor *w, fg_tensor *dx,
                                       int accumulate, fg_workspace ws) {
  const c3_plan p = make_plan(b, d, dx, w, ws.bytes / sizeof(float));
  if (p.n == 0) return FG_OK;
  float *base = ws.ptr;
  pack_weights(&p.bwd, fg_f32(w), base, p.threads);
  const c3_job job = {.p = &p, .dy = fg_f32(dy), .wpack = base, .dx = fg_f32(dx),
                      .lanes = base + p.bwd.w_floats, .accumulate = accumulate};
  run_direction(&job, &p.bwd, backward_data_lane, job.dy, job.dx, NULL, accumulate);
  return FG_OK;
}

fg_status fg_cpu_conv3x3_backward_filter(const fg_backend *b, const fg_conv_desc *d,
                                         const fg_tensor *x, const fg_tensor *dy, fg_tensor *dw,
                                         fg_workspace ws) {
  const c3_plan p = make_plan(b, d, x, dw, 0); /* the weight gradient takes no room */
  if (p.n == 0) {
    memset(fg_f32(dw), 0, (size_t)(p.o * p.c * FG_C3_TAPS) * sizeof(float));
    return FG_OK;
  }
  const c3_job job = {.p = &p, .x = fg_f32(x), .dy = fg_f32(dy), .lanes = ws.ptr, .dw = fg_f32(dw)};
  if (p.wgrad) {
    fg_cpu_run_lanes(FG_C3_WGRAD_PARTS, p.threads < FG_C3_WGRAD_PARTS ? p.threads : FG_C3_WGRAD_PARTS,
                     wgrad_lane, &job);
    wgrad_finish(&job, fg_f32(dw));
    return FG_OK;
  }
  if (p.gradt) {
    fg_cpu_run_lanes(p.lanes, p.threads, gradt_lane, &job);
    gradt_finish(&job, fg_f32(dw));
    return FG_OK;
  }
  fg_cpu_run_lanes(p.lanes, p.threads, backward_filter_lane, &job);
  sum_partials(&job, fg_f32(dw));
  return FG_OK;
}
