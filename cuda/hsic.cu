// CUDA ops: normalised HSIC (nhsic_workspace, nhsic) with its gradient, the CPU backend's
// definitions (cpu/hsic.c) with the arithmetic of cuda/math/hsic.h.
//
// The path, all on the backend's stream, for z [m, d_z] against x [m, d_x] or one-hot labels:
//   1. nhsic_labels_check_kernel (label targets): bad labels counted, the first one found;
//   2. nhsic_gaussian_kernel for the target and for z (nhsic_label_gaussian_kernel for labels):
//      K_ij = exp(-|a_i - a_j|^2 / s), each pair's distance summed by one thread in double over
//      the values in ascending order (the CPU's sum, bitwise: same terms, same order, no FMA);
//   3. nhsic_row_sums_kernel (both kernels) and nhsic_grand_kernel: row sums and grand sums;
//   4. nhsic_products_kernel: per row i, the three Frobenius products of the centred kernels,
//      centring each entry on the fly (K_ij - mean_i - mean_j + grand);
//   5. nhsic_combine_kernel: a, b, c combined over the rows, sqrt(b c), the value;
//   one read-back (the value, the label report, sqrt(b c)); then, when dz is wanted and sqrt(b c)
//   > 0, 6. nhsic_coefficients_kernel: C' [m, m] in float (the CPU's coefficients off the
//   diagonal, minus their row sum on it) and 7. cublasSgemm: dz = -C' z (+ dz).
//
// Why the distances are not taken from the Gram matrix Z Z^T (cublasSsyrk) as cuda.md sketches:
// |a_i|^2 - 2 <a_i, a_j> + |a_j|^2 in float cancels (rows of similar norm lose most of their
// digits), so the value would differ from the CPU's by ~1e-6 relative where the op suite holds it
// to 1e-9 (the value is computed in double from the float inputs); a Gram matrix in double would
// need z in double, and the workspace, a function of m alone, has no room for it. The direct
// kernel reproduces the CPU's distances exactly. Its cost is m^2 d / 2 double subtract-multiply-
// adds: fine on an H100 (~0.2 ms at m = 256, d = 65536 at full FP64 rate), slow on a Jetson
// (FP64 at 1/32 of FP32), where the nHSIC of NeuLite is a server-side or small-m affair.
//
// Determinism: every output belongs to one thread (a distance, a coefficient) or one block (a
// row's sums, by the fixed trees of cuda/reduce.cuh), and the combines are single fixed-shape
// blocks; cublasSgemm is deterministic on one stream with the backend's fixed workspace.
// Nothing is allocated: everything lives in the caller's workspace (nhsic_workspace) and the
// context's scalar slots.
#include <limits.h>
#include <math.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/hsic.h"
#include "cuda/math/loss.h"
#include "cuda/reduce.cuh"

// Scalar slots of the results read back (doubles in c->scalars).
enum { NH_VALUE = 0, NH_BAD, NH_FIRST_BAD, NH_BAD_VALUE, NH_NORM, NH_SCALARS };
// Device statistics kept in the workspace between kernels.
enum { NH_GRAND_Z = 0, NH_GRAND_T, NH_A, NH_B, NH_C, NH_STAT_NORM, NH_STATS };
// The distance tiles: NH_TILE x NH_TILE pairs per block, the rows staged NH_CHUNK values at a
// time in shared memory (2 x 16 x 33 floats).
enum { NH_TILE = 16, NH_CHUNK = 32 };

// The workspace of m rows, in this order: kz, kt [m, m] doubles (the Gaussian kernels of z and of
// the target), sums [2, m] doubles (their row sums), rows [3, m] doubles (the per-row products),
// stats [NH_STATS] doubles, coef [m, m] floats (C'). Every part starts at a multiple of 8 bytes.
typedef struct nh_layout {
  double *kz, *kt, *sums_z, *sums_t, *rows, *stats;
  float *coef;
} nh_layout;

static size_t nh_doubles(int64_t m) { return (size_t)(2 * m * m + 5 * m + NH_STATS); }

static size_t nh_bytes(int64_t m) { return nh_doubles(m) * sizeof(double) + (size_t)(m * m) * sizeof(float); }

static nh_layout nh_layout_of(void *ws, int64_t m) {
  nh_layout l;
  l.kz = (double *)ws;
  l.kt = l.kz + m * m;
  l.sums_z = l.kt + m * m;
  l.sums_t = l.sums_z + m;
  l.rows = l.sums_t + m;
  l.stats = l.rows + 3 * m;
  l.coef = (float *)(l.stats + NH_STATS);
  return l;
}

static fg_status cuda_nhsic_workspace(fg_backend *b, int64_t m, size_t *bytes) {
  (void)b;
  *bytes = nh_bytes(m);
  return FG_OK;
}

// z [m, ...] with d values per row: cublasSgemm takes int extents, so d and m d must fit an int.
// (The backend's `supports` hook can ask this for FG_OP_NHSIC, q->t[0] = z.)
fg_status fg_cuda_hsic_supports(fg_backend *b, const fg_op_query *q) {
  (void)b;
  const fg_tensor *z = q->t[0];
  const int64_t m = z->shape[0], numel = fg_tensor_numel(z);
  if (m < 1 || numel > INT_MAX)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "cuda nhsic: z has %lld values (%lld rows), at most %d on this backend",
                   (long long)numel, (long long)m, INT_MAX);
  return FG_OK;
}

// Labels i32 [m] outside [0, classes): out[NH_BAD] = their count, out[NH_FIRST_BAD] = the first
// one's row, out[NH_BAD_VALUE] = its value. Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void nhsic_labels_check_kernel(const int32_t *labels, int64_t m, int64_t classes, double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  double bad = 0.0;
  int64_t first = m;
  for (int64_t i = threadIdx.x; i < m; i += FG_CUDA_THREADS)
    if (!fg_cuda_label_valid(labels[i], classes)) {
      bad += 1.0;
      if (first == m) first = i;
    }
  bad = fg_block_sum(bad, shared);
  first = fg_block_first_index(first, m, shared);
  if (threadIdx.x == 0) {
    out[NH_BAD] = bad;
    out[NH_FIRST_BAD] = (double)first;
    out[NH_BAD_VALUE] = first < m ? (double)labels[first] : 0.0;
  }
}

// out [m, m] := exp(-|a_i - a_j|^2 / s) for the rows of a [m, d]. Block (bx, by) of NH_TILE x
// NH_TILE threads owns the pairs i = by T + ty, j = bx T + tx; only blocks with by <= bx work,
// each pair i <= j summed by its thread over k ascending and written to (i, j) and (j, i).
// Launch <<<(tiles, tiles), (NH_TILE, NH_TILE)>>>, tiles = ceil(m / NH_TILE).
__global__ void nhsic_gaussian_kernel(const float *a, int64_t m, int64_t d, double s, double *out) {
  if (blockIdx.y > blockIdx.x) return; // the whole block: the lower tiles mirror the upper ones
  __shared__ float rows_i[NH_TILE][NH_CHUNK + 1], rows_j[NH_TILE][NH_CHUNK + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, t = ty * NH_TILE + tx;
  const int64_t i0 = (int64_t)blockIdx.y * NH_TILE, j0 = (int64_t)blockIdx.x * NH_TILE;
  double sum = 0.0;
  for (int64_t k0 = 0; k0 < d; k0 += NH_CHUNK) {
    for (int e = t; e < NH_TILE * NH_CHUNK; e += NH_TILE * NH_TILE) {
      const int r = e / NH_CHUNK, col = e % NH_CHUNK;
      const int64_t k = k0 + col;
      rows_i[r][col] = i0 + r < m && k < d ? a[(i0 + r) * d + k] : 0.0f;
      rows_j[r][col] = j0 + r < m && k < d ? a[(j0 + r) * d + k] : 0.0f;
    }
    __syncthreads();
    const int64_t left = d - k0;
    const int kn = left < NH_CHUNK ? (int)left : NH_CHUNK;
    for (int kk = 0; kk < kn; kk++) sum += fg_cuda_nhsic_sq_diff(rows_i[ty][kk], rows_j[tx][kk]);
    __syncthreads();
  }
  const int64_t i = i0 + ty, j = j0 + tx;
  if (i < m && j < m && i <= j) {
    const double v = fg_cuda_nhsic_gaussian(sum, s);
    out[i * m + j] = v;
    out[j * m + i] = v;
  }
}

// out [m, m] := exp(-D_ij / s) for one-hot rows of labels i32 [m] (D = 0 or 2; bad labels only
// compare unequal). Grid-stride over the m^2 entries.
__global__ void nhsic_label_gaussian_kernel(const int32_t *labels, int64_t m, double s, double *out) {
  const int64_t total = m * m;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x)
    out[e] = fg_cuda_nhsic_gaussian(fg_cuda_nhsic_label_distance(labels[e / m], labels[e % m]), s);
}

// sums[i] := sum_j k[i, j] of k [m, m]: block (i, 0) for kz into sums_z, block (i, 1) for kt into
// sums_t. Launch <<<(m, 2), FG_CUDA_THREADS>>>.
__global__ void nhsic_row_sums_kernel(const double *kz, const double *kt, int64_t m, double *sums_z, double *sums_t) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t i = blockIdx.x;
  const double *k = (blockIdx.y == 0 ? kz : kt) + i * m;
  double s = 0.0;
  for (int64_t j = threadIdx.x; j < m; j += FG_CUDA_THREADS) s += k[j];
  s = fg_block_sum(s, shared);
  if (threadIdx.x == 0) (blockIdx.y == 0 ? sums_z : sums_t)[i] = s;
}

// The sum of v [m] by one block (thread t: entries t, t + T, ... in order, then the tree).
__device__ static double block_sum_of(const double *v, int64_t m, double *shared) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < m; i += FG_CUDA_THREADS) s += v[i];
  return fg_block_sum(s, shared);
}

// stats[NH_GRAND_Z], stats[NH_GRAND_T] := the grand means of kz and kt from their row sums.
// Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void nhsic_grand_kernel(const double *sums_z, const double *sums_t, int64_t m, double *stats) {
  __shared__ double shared[FG_CUDA_THREADS];
  const double gz = fg_cuda_nhsic_grand(block_sum_of(sums_z, m, shared), m);
  const double gt = fg_cuda_nhsic_grand(block_sum_of(sums_t, m, shared), m);
  if (threadIdx.x == 0) {
    stats[NH_GRAND_Z] = gz;
    stats[NH_GRAND_T] = gt;
  }
}

// The centred entry (i, j) of k [m, m] with row sums `sums` and grand mean `grand`.
__device__ static double centred_at(const double *k, const double *sums, double grand, int64_t m, int64_t i,
                                    int64_t j) {
  return fg_cuda_nhsic_centred(k[i * m + j], fg_cuda_nhsic_mean(sums[i], m), fg_cuda_nhsic_mean(sums[j], m), grand);
}

// Row i (one block each) of the three Frobenius products of the centred kernels: rows[i] = sum_j
// K~z_ij L~_ij, rows[m + i] = sum_j K~z_ij^2, rows[2m + i] = sum_j L~_ij^2. Launch <<<m,
// FG_CUDA_THREADS>>>.
__global__ void nhsic_products_kernel(const double *kz, const double *kt, const double *sums_z, const double *sums_t,
                                      const double *stats, int64_t m, double *rows) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t i = blockIdx.x;
  const double gz = stats[NH_GRAND_Z], gt = stats[NH_GRAND_T];
  double a = 0.0, b = 0.0, c = 0.0;
  for (int64_t j = threadIdx.x; j < m; j += FG_CUDA_THREADS) {
    const double zc = centred_at(kz, sums_z, gz, m, i, j), tc = centred_at(kt, sums_t, gt, m, i, j);
    a += zc * tc;
    b += zc * zc;
    c += tc * tc;
  }
  a = fg_block_sum(a, shared);
  b = fg_block_sum(b, shared);
  c = fg_block_sum(c, shared);
  if (threadIdx.x == 0) {
    rows[i] = a;
    rows[m + i] = b;
    rows[2 * m + i] = c;
  }
}

// a, b, c over the rows, sqrt(b c) and the value into stats and out[NH_VALUE], out[NH_NORM].
// Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void nhsic_combine_kernel(const double *rows, int64_t m, double *stats, double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  const double a = block_sum_of(rows, m, shared);
  const double b = block_sum_of(rows + m, m, shared);
  const double c = block_sum_of(rows + 2 * m, m, shared);
  if (threadIdx.x == 0) {
    const double norm = fg_cuda_nhsic_norm(b, c);
    stats[NH_A] = a;
    stats[NH_B] = b;
    stats[NH_C] = c;
    stats[NH_STAT_NORM] = norm;
    out[NH_VALUE] = fg_cuda_nhsic_value(a, norm);
    out[NH_NORM] = norm;
  }
}

// Row i (one block each) of C' [m, m] in float: C_ij = (float)(scale M_ij) for j != i, C'_ii =
// -sum_{j != i} C_ij (summed in double by the fixed tree). Needs sqrt(b c) > 0. Launch <<<m,
// FG_CUDA_THREADS>>>.
__global__ void nhsic_coefficients_kernel(const double *kz, const double *kt, const double *sums_z,
                                          const double *sums_t, const double *stats, int64_t m, double s,
                                          double scale, float *coef) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t i = blockIdx.x;
  const double gz = stats[NH_GRAND_Z], gt = stats[NH_GRAND_T];
  const double ratio = stats[NH_A] / stats[NH_B], norm = stats[NH_STAT_NORM];
  double off = 0.0;
  for (int64_t j = threadIdx.x; j < m; j += FG_CUDA_THREADS) {
    if (j == i) continue;
    const float cij = fg_cuda_nhsic_coefficient(centred_at(kz, sums_z, gz, m, i, j),
                                                centred_at(kt, sums_t, gt, m, i, j), kz[i * m + j], ratio, norm, s,
                                                scale);
    coef[i * m + j] = cij;
    off += (double)cij;
  }
  off = fg_block_sum(off, shared);
  if (threadIdx.x == 0) coef[i * m + i] = fg_cuda_nhsic_diagonal(off);
}

// K [m, m] := the Gaussian kernel of the rows of a [m, d] (bandwidth s).
static fg_status launch_gaussian(fg_cuda_ctx *c, const float *a, int64_t m, int64_t d, double s, double *out) {
  const unsigned tiles = (unsigned)((m + NH_TILE - 1) / NH_TILE);
  nhsic_gaussian_kernel<<<dim3(tiles, tiles), dim3(NH_TILE, NH_TILE), 0, c->stream>>>(a, m, d, s, out);
  FG_CUDA_LAUNCHED(c, "nhsic_gaussian_kernel");
  return FG_OK;
}

// The target's kernel into kt, and the label report into the scalar slots (zeros for features).
static fg_status target_kernel(fg_cuda_ctx *c, const fg_nhsic_desc *desc, const fg_tensor *x,
                               const fg_tensor *labels, int64_t m, const nh_layout *l) {
  double *scalars = (double *)c->scalars.ptr;
  if (x) {
    const int64_t dx = fg_tensor_numel(x) / m;
    FG_CUDA_TRY(cudaMemsetAsync(scalars + NH_BAD, 0, 3 * sizeof(double), c->stream)); // no bad labels
    return launch_gaussian(c, (const float *)x->data, m, dx, fg_cuda_nhsic_bandwidth(desc->sigma, dx), l->kt);
  }
  const int32_t *y = (const int32_t *)labels->data;
  nhsic_labels_check_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(y, m, desc->classes, scalars);
  FG_CUDA_LAUNCHED(c, "nhsic_labels_check_kernel");
  nhsic_label_gaussian_kernel<<<fg_cuda_blocks(m * m, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(
      y, m, fg_cuda_nhsic_bandwidth(desc->sigma, desc->classes), l->kt);
  FG_CUDA_LAUNCHED(c, "nhsic_label_gaussian_kernel");
  return FG_OK;
}

// dz [m, d] (=|+=) -C' z by cublasSgemm on the row-major buffers read as column-major: dz^T (d x m)
// = z^T (d x m) C'^T (m x m).
static fg_status gradient(fg_cuda_ctx *c, const nh_layout *l, const float *z, int64_t m, int64_t d, float *dz,
                          int accumulate) {
  const float alpha = -1.0f, beta = accumulate ? 1.0f : 0.0f;
  FG_CUBLAS_TRY(cublasSetPointerMode(c->cublas, CUBLAS_POINTER_MODE_HOST));
  FG_CUBLAS_TRY(cublasSgemm(c->cublas, CUBLAS_OP_N, CUBLAS_OP_N, (int)d, (int)m, (int)m, &alpha, z, (int)d, l->coef,
                            (int)m, &beta, dz, (int)d));
  return FG_OK;
}

// z [m, ...], x [m, ...] or NULL with labels i32 [m], dz like z or NULL; ws: nhsic_workspace(m).
static fg_status cuda_nhsic(fg_backend *b, const fg_nhsic_desc *desc, const fg_tensor *z, const fg_tensor *x,
                            const fg_tensor *labels, float weight, fg_tensor *dz, int accumulate, fg_workspace ws,
                            double *value, fg_index_report *bad) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const fg_op_query q = {FG_OP_NHSIC, {z, NULL}, NULL, 0};
  FG_TRY(fg_cuda_hsic_supports(b, &q));
  const int64_t m = z->shape[0], d = fg_tensor_numel(z) / m;
  const nh_layout l = nh_layout_of(ws.ptr, m);
  double *scalars = (double *)c->scalars.ptr;
  const float *zp = (const float *)z->data;
  FG_TRY(target_kernel(c, desc, x, labels, m, &l));
  const double sz = fg_cuda_nhsic_bandwidth(desc->sigma, d);
  FG_TRY(launch_gaussian(c, zp, m, d, sz, l.kz));
  nhsic_row_sums_kernel<<<dim3((unsigned)m, 2), FG_CUDA_THREADS, 0, c->stream>>>(l.kz, l.kt, m, l.sums_z, l.sums_t);
  FG_CUDA_LAUNCHED(c, "nhsic_row_sums_kernel");
  nhsic_grand_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(l.sums_z, l.sums_t, m, l.stats);
  FG_CUDA_LAUNCHED(c, "nhsic_grand_kernel");
  nhsic_products_kernel<<<(unsigned)m, FG_CUDA_THREADS, 0, c->stream>>>(l.kz, l.kt, l.sums_z, l.sums_t, l.stats, m,
                                                                       l.rows);
  FG_CUDA_LAUNCHED(c, "nhsic_products_kernel");
  nhsic_combine_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(l.rows, m, l.stats, scalars);
  FG_CUDA_LAUNCHED(c, "nhsic_combine_kernel");
  double r[NH_SCALARS];
  FG_TRY(fg_cuda_read_scalars(c, r, NH_SCALARS));
  if (r[NH_BAD] > 0.0) {
    bad->bad = (int64_t)r[NH_BAD];
    bad->first = (int64_t)r[NH_FIRST_BAD];
    bad->value = (int64_t)r[NH_BAD_VALUE];
    return FG_OK;
  }
  *value = r[NH_VALUE];
  if (!dz) return FG_OK;
  float *dzp = (float *)dz->data;
  if (!(r[NH_NORM] > 0.0)) { // a centred kernel vanishes: no gradient (as the CPU)
    if (!accumulate) FG_CUDA_TRY(cudaMemsetAsync(dzp, 0, (size_t)(m * d) * sizeof(float), c->stream));
    return FG_OK;
  }
  nhsic_coefficients_kernel<<<(unsigned)m, FG_CUDA_THREADS, 0, c->stream>>>(
      l.kz, l.kt, l.sums_z, l.sums_t, l.stats, m, sz, 4.0 * (double)weight, l.coef);
  FG_CUDA_LAUNCHED(c, "nhsic_coefficients_kernel");
  return gradient(c, &l, zp, m, d, dzp, accumulate);
}

void fg_cuda_register_hsic_ops(fg_backend *b) {
  b->nhsic_workspace = cuda_nhsic_workspace;
  b->nhsic = cuda_nhsic;
}
