// CUDA ops: the thin SVD (svd_workspace, svd) with cuSOLVER's QR-iteration SVD
// (cusolverDnSgesvd, present in CUDA 10.2), the index arithmetic and the sign rule of
// cuda/math/linalg.h. Used by HypeMeFed's hypernetworks on the server, never by training.
//
// The steps, on the backend's stream, for a [m, n] row-major, k = min(m, n):
//   1. svd_finite_partials_kernel and svd_finite_combine_kernel: non-finite entries counted and
//      the first one found (one read-back; FG_ERR_NUMERIC as on the CPU, before the solver runs);
//   2. svd_input_kernel: a copied into the workspace as the column-major problem gesvd solves
//      (a^T as it lies when n >= m, a transposed when m > n: gesvd needs rows >= columns), since
//      gesvd overwrites its input and a is not to be modified;
//   3. cusolverDnSgesvd with jobu = jobvt = 'S': s, the left and the right factors into the
//      workspace;
//   4. svd_finish_kernel: per component, the sign rule, then s, u [m, k] and vt [k, n] written
//      row-major from the factors; the solver's devInfo copied to a scalar slot (one read-back).
// Everything the solver touches (input copy, factors, singular values, work, rwork, devInfo) lies
// in the caller's workspace, sized by svd_workspace from cusolverDnSgesvd_bufferSize; each part is
// placed at a 256-byte boundary (the workspace carries 256 bytes of slack for that), so cuSOLVER
// never sees the caller's possibly 4-byte-aligned tensors. The result is deterministic: cuSOLVER's
// dense routines are deterministic by default (CUDA 12.2 names it CUSOLVER_DETERMINISTIC_RESULTS),
// and our kernels use fixed trees and one owner per output.
#include <limits.h>
#include <math.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/linalg.h"
#include "cuda/reduce.cuh"

// Scalar slots (doubles in c->scalars).
enum { SVD_BAD = 0, SVD_FIRST_BAD, SVD_BAD_VALUE, SVD_FINITE_SCALARS };
enum { SVD_INFO = 0 };
// Alignment of the workspace parts, and the slack that lets the first part be aligned too.
enum { SVD_ALIGN = 256 };

static size_t round_up(size_t v) { return (v + SVD_ALIGN - 1) / SVD_ALIGN * SVD_ALIGN; }

// a [m, n]: cuSOLVER takes int extents and indexes the matrix with them, so m, n and m n must fit
// an int (a 46341 x 46341 float matrix is 8 GiB). (The backend's `supports` hook can ask this for
// FG_OP_SVD, q->t[0] = a.)
static fg_status svd_fits(int64_t m, int64_t n) {
  if (m < 1 || n < 1 || m > INT_MAX || n > INT_MAX || m > INT_MAX / n)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "cuda svd: a [%lld, %lld] exceeds cuSOLVER's int extents", (long long)m,
                   (long long)n);
  return FG_OK;
}

fg_status fg_cuda_linalg_supports(fg_backend *b, const fg_op_query *q) {
  (void)b;
  return svd_fits(q->t[0]->shape[0], q->t[0]->shape[1]);
}

// The workspace of a [m, n] (byte offsets from the first 256-byte boundary at or after ws.ptr).
typedef struct svd_layout {
  int rows, cols, lwork; // the column-major problem (rows >= cols = k) and gesvd's work floats
  size_t input, left, right, s, rwork, work, info, total;
} svd_layout;

static fg_status svd_layout_for(fg_cuda_ctx *c, int64_t m, int64_t n, svd_layout *l) {
  FG_TRY(svd_fits(m, n));
  if (!c->cusolver) return FG_FAIL(FG_ERR_NO_DEVICE, "cuda svd: the backend has no cuSOLVER handle");
  l->rows = (int)fg_cuda_svd_rows(m, n);
  l->cols = (int)fg_cuda_svd_cols(m, n);
  l->lwork = 0;
  FG_CUSOLVER_TRY(cusolverDnSgesvd_bufferSize(c->cusolver, l->rows, l->cols, &l->lwork));
  if (l->lwork < 1) l->lwork = 1;
  const size_t rc = (size_t)l->rows * (size_t)l->cols, k = (size_t)l->cols;
  size_t at = 0;
  l->input = at, at += round_up(rc * sizeof(float));
  l->left = at, at += round_up(rc * sizeof(float)); // U or U': rows x k
  l->right = at, at += round_up(k * k * sizeof(float));
  l->s = at, at += round_up(k * sizeof(float));
  l->rwork = at, at += round_up(k * sizeof(float)); // gesvd asks min(m, n) - 1
  l->work = at, at += round_up((size_t)l->lwork * sizeof(float));
  l->info = at, at += round_up(sizeof(int));
  l->total = at + SVD_ALIGN; // slack: the parts start at the first aligned byte of ws
  return FG_OK;
}

static fg_status cuda_svd_workspace(fg_backend *b, int64_t m, int64_t n, size_t *bytes) {
  svd_layout l;
  FG_TRY(svd_layout_for(fg_cuda_ctx_of(b), m, n, &l));
  *bytes = l.total;
  return FG_OK;
}

// Non-finite entries of a [count] in reduce.cuh's partition: block b's count into partials[b],
// its first position (count if none) into partials[B + b]. Launch <<<FG_CUDA_REDUCE_BLOCKS,
// FG_CUDA_THREADS>>>.
__global__ void svd_finite_partials_kernel(const float *a, int64_t count, double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t stride = (int64_t)FG_CUDA_REDUCE_BLOCKS * FG_CUDA_THREADS;
  double bad = 0.0;
  int64_t first = count;
  for (int64_t i = (int64_t)blockIdx.x * FG_CUDA_THREADS + threadIdx.x; i < count; i += stride)
    if (!isfinite(a[i])) {
      bad += 1.0;
      if (first == count) first = i;
    }
  bad = fg_block_sum(bad, shared);
  first = fg_block_first_index(first, count, shared);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = bad;
    partials[FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = (double)first;
  }
}

// The partials combined (thread t takes block t's): out[SVD_BAD] = the count, out[SVD_FIRST_BAD]
// = the first position, out[SVD_BAD_VALUE] = its value. Launch <<<1, FG_CUDA_THREADS>>>.
__global__ void svd_finite_combine_kernel(const float *a, int64_t count, const double *partials, double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int t = threadIdx.x;
  const double bad = fg_block_sum(partials[t], shared);
  const int64_t first = fg_block_first_index((int64_t)partials[FG_CUDA_REDUCE_BLOCKS + t], count, shared);
  if (t == 0) {
    out[SVD_BAD] = bad;
    out[SVD_FIRST_BAD] = (double)first;
    out[SVD_BAD_VALUE] = first < count ? (double)a[first] : 0.0;
  }
}

static_assert(FG_CUDA_THREADS == FG_CUDA_REDUCE_BLOCKS, "the combine kernel gives one thread per block");

// input (the solver's column-major problem) := a [m, n] placed by fg_cuda_svd_input_offset.
// Grid-stride over a's entries.
__global__ void svd_input_kernel(const float *a, int64_t m, int64_t n, float *input) {
  const int64_t count = m * n;
  for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < count; e += (int64_t)gridDim.x * blockDim.x)
    input[fg_cuda_svd_input_offset(e / n, e % n, m, n)] = a[e];
}

// Component i per block (k blocks): the first entry of largest magnitude of vt_i decides the
// sign; then s[i], vt [k, n] row i and u [m, k] column i are written. Block 0 also copies the
// solver's devInfo to out[SVD_INFO]. Launch <<<k, FG_CUDA_THREADS>>>.
__global__ void svd_finish_kernel(const float *left, const float *right, const float *s_in, const int *info,
                                  int64_t m, int64_t n, float *u, float *s, float *vt, double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t i = blockIdx.x, k = fg_cuda_svd_cols(m, n);
  const float *v_src = fg_cuda_svd_u_in_left(m, n) ? right : left;
  const float *u_src = fg_cuda_svd_u_in_left(m, n) ? left : right;
  float best_abs = -1.0f;
  int64_t best = n;
  for (int64_t j = threadIdx.x; j < n; j += FG_CUDA_THREADS) {
    const float v = v_src[fg_cuda_svd_vt_offset(i, j, m, n)];
    if (fg_cuda_svd_beats(v, best_abs)) {
      best_abs = fabsf(v);
      best = j;
    }
  }
  // The largest magnitude over the block, then the lowest position holding it.
  const double top = fg_block_max((double)best_abs, shared);
  const int64_t winner = fg_block_first_index((double)best_abs == top ? best : n, n, shared);
  const int negate = winner < n && fg_cuda_svd_negate(v_src[fg_cuda_svd_vt_offset(i, winner, m, n)]);
  for (int64_t j = threadIdx.x; j < n; j += FG_CUDA_THREADS)
    vt[i * n + j] = fg_cuda_svd_signed(v_src[fg_cuda_svd_vt_offset(i, j, m, n)], negate);
  for (int64_t r = threadIdx.x; r < m; r += FG_CUDA_THREADS)
    u[r * k + i] = fg_cuda_svd_signed(u_src[fg_cuda_svd_u_offset(r, i, m, n)], negate);
  if (threadIdx.x == 0) {
    s[i] = s_in[i];
    if (i == 0) out[SVD_INFO] = (double)*info;
  }
}

// Stops with FG_ERR_NUMERIC, naming the first non-finite entry, when a [m, n] has one.
static fg_status check_finite(fg_cuda_ctx *c, const float *a, int64_t m, int64_t n) {
  double *partials = (double *)c->partials.ptr, *scalars = (double *)c->scalars.ptr;
  const int64_t count = m * n;
  svd_finite_partials_kernel<<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS, 0, c->stream>>>(a, count, partials);
  FG_CUDA_LAUNCHED(c, "svd_finite_partials_kernel");
  svd_finite_combine_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(a, count, partials, scalars);
  FG_CUDA_LAUNCHED(c, "svd_finite_combine_kernel");
  double r[SVD_FINITE_SCALARS];
  FG_TRY(fg_cuda_read_scalars(c, r, SVD_FINITE_SCALARS));
  if (r[SVD_BAD] > 0.0) {
    const int64_t first = (int64_t)r[SVD_FIRST_BAD];
    return FG_FAIL(FG_ERR_NUMERIC, "cuda svd: a [%lld, %lld] has the non-finite value %g at row %lld, column %lld",
                   (long long)m, (long long)n, r[SVD_BAD_VALUE], (long long)(first / n), (long long)(first % n));
  }
  return FG_OK;
}

// a [m,n] -> u [m,k], s [k], vt [k,n]; ws: svd_workspace(m, n) bytes.
static fg_status cuda_svd(fg_backend *b, const fg_tensor *a, fg_tensor *u, fg_tensor *s, fg_tensor *vt,
                          fg_workspace ws) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t m = a->shape[0], n = a->shape[1];
  svd_layout l;
  FG_TRY(svd_layout_for(c, m, n, &l)); // the entry point checked ws against l.total
  const float *ap = (const float *)a->data;
  FG_TRY(check_finite(c, ap, m, n));
  const uintptr_t start = ((uintptr_t)ws.ptr + SVD_ALIGN - 1) / SVD_ALIGN * SVD_ALIGN;
  unsigned char *base = (unsigned char *)start;
  float *input = (float *)(base + l.input), *left = (float *)(base + l.left), *right = (float *)(base + l.right);
  float *s_ws = (float *)(base + l.s), *rwork = (float *)(base + l.rwork), *work = (float *)(base + l.work);
  int *info = (int *)(base + l.info);
  svd_input_kernel<<<fg_cuda_blocks(m * n, FG_CUDA_THREADS), FG_CUDA_THREADS, 0, c->stream>>>(ap, m, n, input);
  FG_CUDA_LAUNCHED(c, "svd_input_kernel");
  FG_CUSOLVER_TRY(cusolverDnSgesvd(c->cusolver, 'S', 'S', l.rows, l.cols, input, l.rows, s_ws, left, l.rows, right,
                                   l.cols, work, l.lwork, rwork, info));
  svd_finish_kernel<<<(unsigned)l.cols, FG_CUDA_THREADS, 0, c->stream>>>(
      left, right, s_ws, info, m, n, (float *)u->data, (float *)s->data, (float *)vt->data, (double *)c->scalars.ptr);
  FG_CUDA_LAUNCHED(c, "svd_finish_kernel");
  double status = 0.0;
  FG_TRY(fg_cuda_read_scalars(c, &status, 1));
  const int code = (int)status;
  if (code < 0)
    return FG_FAIL(FG_ERR_INTERNAL, "cuda svd: cusolverDnSgesvd rejected its argument %d for [%lld, %lld]", -code,
                   (long long)m, (long long)n);
  if (code > 0)
    return FG_FAIL(FG_ERR_LIBRARY, "cuda svd: cusolverDnSgesvd did not converge for [%lld, %lld] (info %d)",
                   (long long)m, (long long)n, code);
  return FG_OK;
}

void fg_cuda_register_linalg_ops(fg_backend *b) {
  b->svd_workspace = cuda_svd_workspace;
  b->svd = cuda_svd;
}
