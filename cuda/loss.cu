// CUDA ops: the losses (softmax cross-entropy with an optional class mask, temperature-scaled KL
// distillation, mean squared error). The arithmetic of each element and row is the CPU backend's
// (cpu/loss.c), in double from the float inputs, through cuda/math/loss.h.
//
// Determinism: softmax_xent and kl_div run a fixed grid of FG_CUDA_REDUCE_BLOCKS blocks of
// FG_CUDA_THREADS threads whatever N and the device; block b owns rows b, b + B, b + 2B, ... in
// that order, reduces each row with the fixed trees of cuda/reduce.cuh and adds the row results
// to its own running sums (kept identically by all its threads). It writes them to the context's
// partials scratch (FG_CUDA_REDUCE_BLOCKS x 4 doubles: one slot per block and quantity), and one
// block combines the B partials with the same tree. mse uses the same fixed grid over elements.
// No atomics, no allocation: the scalar results go through the context's scalar slots and one
// read-back (fg_cuda_read_scalars) per op.
#include <math.h>

#include "cuda/cuda_internal.h"
#include "cuda/math/loss.h"
#include "cuda/reduce.cuh"

// Scalar slots of the softmax_xent combine (doubles in c->scalars).
enum { XENT_LOSS_SUM = 0, XENT_CORRECT, XENT_BAD, XENT_FIRST_BAD, XENT_BAD_VALUE, XENT_SCALARS };

// Launch geometry of the row kernels: the reduction grid (rows per block follow from N).
static const unsigned loss_row_blocks = FG_CUDA_REDUCE_BLOCKS;

// ------------------------------------------------------------------------------------------- //
// Softmax cross-entropy                                                                        //

// Rows of logits [n, k] (labels i32 [n], mask f32 [k] or NULL), each by the whole block: the
// masked row's maximum, its first argmax, its log-sum-exp, the loss term and the gradient
// dlogits [n, k] (=|+= grad_scale (softmax - onehot), when not NULL). The block's sums of row
// losses, correct rows and bad labels, and its first bad row (n if none), go to
// partials[q * B + blockIdx.x] for q = 0..3. Rows with a bad label add no loss and no count, and
// their gradient ignores the label (outputs are unspecified then: the entry point fails).
__global__ void softmax_xent_rows_kernel(const float *logits, const int32_t *labels, const float *mask, int64_t n,
                                         int64_t k, double grad_scale, float *dlogits, int accumulate,
                                         double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int has_mask = mask != NULL;
  double loss = 0.0, correct = 0.0, bad = 0.0;
  int64_t first_bad = n;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const float *z = logits + row * k;
    const int32_t y = labels[row];
    const int valid = fg_cuda_label_valid(y, k);
    // The label's logit is read before the block's first barrier, so no thread reads it after
    // another has begun writing the gradient (dlogits may be logits itself).
    const float z_label = valid ? fg_cuda_xent_logit(z[y], has_mask, has_mask ? mask[y] : 1.0f) : 0.0f;
    double local_max = -INFINITY;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      const double v = fg_cuda_xent_logit(z[j], has_mask, has_mask ? mask[j] : 1.0f);
      if (v > local_max) local_max = v;
    }
    const double zmax = fg_block_max(local_max, shared);
    int64_t local_first = k; // this thread's lowest j holding the maximum (its j ascend)
    double local_sum = 0.0;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      const float v = fg_cuda_xent_logit(z[j], has_mask, has_mask ? mask[j] : 1.0f);
      if (local_first == k && (double)v == zmax) local_first = j;
      local_sum += fg_cuda_exp_shifted(v, zmax, 1.0);
    }
    const int64_t arg = fg_block_first_index(local_first, k, shared);
    const double lse = fg_cuda_xent_lse(zmax, fg_block_sum(local_sum, shared));
    if (valid) {
      loss += fg_cuda_xent_row_loss(lse, z_label);
      correct += arg == (int64_t)y ? 1.0 : 0.0;
    } else {
      bad += 1.0;
      if (first_bad == n) first_bad = row;
    }
    if (!dlogits) continue;
    float *g = dlogits + row * k;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      const float mj = has_mask ? mask[j] : 1.0f;
      const double v = fg_cuda_xent_grad(fg_cuda_xent_logit(z[j], has_mask, mj), lse, j == (int64_t)y,
                                         fg_cuda_xent_kept(has_mask, mj), grad_scale);
      g[j] = fg_cuda_loss_store(g[j], v, accumulate);
    }
  }
  if (threadIdx.x == 0) {
    partials[0 * FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = loss;
    partials[1 * FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = correct;
    partials[2 * FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = bad;
    partials[3 * FG_CUDA_REDUCE_BLOCKS + blockIdx.x] = (double)first_bad;
  }
}

// The FG_CUDA_REDUCE_BLOCKS partials of softmax_xent_rows_kernel combined by one block (thread t
// takes block t's; FG_CUDA_THREADS == FG_CUDA_REDUCE_BLOCKS) into out[XENT_*]: the loss sum, the
// correct count, the bad-label count, the first bad row and its label. Launch <<<1,
// FG_CUDA_THREADS>>>.
__global__ void softmax_xent_combine_kernel(const double *partials, const int32_t *labels, int64_t n,
                                            double *out) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int t = threadIdx.x;
  const double loss = fg_block_sum(partials[0 * FG_CUDA_REDUCE_BLOCKS + t], shared);
  const double correct = fg_block_sum(partials[1 * FG_CUDA_REDUCE_BLOCKS + t], shared);
  const double bad = fg_block_sum(partials[2 * FG_CUDA_REDUCE_BLOCKS + t], shared);
  const int64_t first = fg_block_first_index((int64_t)partials[3 * FG_CUDA_REDUCE_BLOCKS + t], n, shared);
  if (t == 0) {
    out[XENT_LOSS_SUM] = loss;
    out[XENT_CORRECT] = correct;
    out[XENT_BAD] = bad;
    out[XENT_FIRST_BAD] = (double)first;
    out[XENT_BAD_VALUE] = first < n ? (double)labels[first] : 0.0;
  }
}

static_assert(FG_CUDA_THREADS == FG_CUDA_REDUCE_BLOCKS, "the combine kernels give one thread per block");

// logits [N,K], labels i32 [N], class_mask [K] or NULL, dlogits [N,K] or NULL.
static fg_status cuda_softmax_xent(fg_backend *b, const fg_tensor *logits, const fg_tensor *labels,
                                   const fg_tensor *class_mask, float weight, fg_tensor *dlogits, int accumulate,
                                   double *loss, int64_t *correct, fg_index_report *bad) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = logits->shape[0], k = logits->shape[1];
  double *partials = (double *)c->partials.ptr, *scalars = (double *)c->scalars.ptr;
  const int32_t *y = (const int32_t *)labels->data;
  softmax_xent_rows_kernel<<<loss_row_blocks, FG_CUDA_THREADS, 0, c->stream>>>(
      (const float *)logits->data, y, class_mask ? (const float *)class_mask->data : NULL, n, k,
      (double)weight / (double)n, dlogits ? (float *)dlogits->data : NULL, accumulate, partials);
  FG_CUDA_LAUNCHED(c, "softmax_xent_rows_kernel");
  softmax_xent_combine_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(partials, y, n, scalars);
  FG_CUDA_LAUNCHED(c, "softmax_xent_combine_kernel");
  double r[XENT_SCALARS];
  FG_TRY(fg_cuda_read_scalars(c, r, XENT_SCALARS));
  if (r[XENT_BAD] > 0.0) {
    bad->bad = (int64_t)r[XENT_BAD];
    bad->first = (int64_t)r[XENT_FIRST_BAD];
    bad->value = (int64_t)r[XENT_BAD_VALUE];
    return FG_OK;
  }
  *loss = (double)weight * r[XENT_LOSS_SUM] / (double)n;
  if (correct) *correct = (int64_t)r[XENT_CORRECT];
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// KL distillation                                                                              //

// Rows of student, teacher [n, k], each by the whole block (cpu/loss.c's kl_rows): the shifts of
// p = softmax(s / T) and q0 = softmax(t / T), the row's loss sum_j q_j r_j, Q = sum_j q_j and
// sum_j q0_j r_j, then dstudent, dteacher [n, k] (=|+=, each when not NULL) with g = scale / T.
// The block's sum of row losses goes to partials[blockIdx.x].
__global__ void kl_div_rows_kernel(const float *student, const float *teacher, int64_t n, int64_t k, double inv_t,
                                   double eps, double g, float *dstudent, float *dteacher, int accumulate,
                                   double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  double loss = 0.0;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const float *s = student + row * k, *t = teacher + row * k;
    double smax = -INFINITY, tmax = -INFINITY;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      if ((double)s[j] > smax) smax = s[j];
      if ((double)t[j] > tmax) tmax = t[j];
    }
    fg_cuda_kl_row w;
    w.smax = fg_block_max(smax, shared);
    w.tmax = fg_block_max(tmax, shared);
    w.inv_t = inv_t;
    w.eps = eps;
    double ss = 0.0, st = 0.0;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      ss += fg_cuda_exp_shifted(s[j], w.smax, inv_t);
      st += fg_cuda_exp_shifted(t[j], w.tmax, inv_t);
    }
    w.ls = log(fg_block_sum(ss, shared));
    w.lt = log(fg_block_sum(st, shared));
    double row_loss = 0.0, q_total = 0.0, q0_r = 0.0;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      const fg_cuda_kl_term e = fg_cuda_kl_term_at(&w, s[j], t[j]);
      row_loss += e.q * e.r;
      q_total += e.q;
      q0_r += e.q0 * e.r;
    }
    loss += fg_block_sum(row_loss, shared);
    q_total = fg_block_sum(q_total, shared);
    q0_r = fg_block_sum(q0_r, shared);
    if (!dstudent && !dteacher) continue;
    for (int64_t j = threadIdx.x; j < k; j += FG_CUDA_THREADS) {
      const fg_cuda_kl_term e = fg_cuda_kl_term_at(&w, s[j], t[j]);
      if (dstudent) {
        float *ds = dstudent + row * k + j;
        *ds = fg_cuda_loss_store(*ds, fg_cuda_kl_dstudent(&e, q_total, g), accumulate);
      }
      if (dteacher) {
        float *dt = dteacher + row * k + j;
        *dt = fg_cuda_loss_store(*dt, fg_cuda_kl_dteacher(&e, q0_r, g), accumulate);
      }
    }
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = loss;
}

// student, teacher [N,K]; dstudent, dteacher [N,K] or NULL.
static fg_status cuda_kl_div(fg_backend *b, const fg_kl_desc *d, const fg_tensor *student, const fg_tensor *teacher,
                             fg_tensor *dstudent, fg_tensor *dteacher, int accumulate, double *loss) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = student->shape[0], k = student->shape[1];
  const double t = d->temperature;
  const double divisor = d->reduction == FG_KL_BATCHMEAN ? (double)n : (double)n * (double)k;
  const double inv_t = 1.0 / t, scale = (double)d->weight * t * t / divisor;
  double *partials = (double *)c->partials.ptr, *scalars = (double *)c->scalars.ptr;
  kl_div_rows_kernel<<<loss_row_blocks, FG_CUDA_THREADS, 0, c->stream>>>(
      (const float *)student->data, (const float *)teacher->data, n, k, inv_t, (double)d->teacher_eps,
      scale * inv_t, dstudent ? (float *)dstudent->data : NULL, dteacher ? (float *)dteacher->data : NULL,
      accumulate, partials);
  FG_CUDA_LAUNCHED(c, "kl_div_rows_kernel");
  fg_cuda_combine_partials_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(partials, FG_CUDA_REDUCE_BLOCKS, scalars);
  FG_CUDA_LAUNCHED(c, "fg_cuda_combine_partials_kernel");
  double sum = 0.0;
  FG_TRY(fg_cuda_read_scalars(c, &sum, 1));
  *loss = scale * sum;
  return FG_OK;
}

// ------------------------------------------------------------------------------------------- //
// Mean squared error                                                                           //

// Elements of y, target [n] in reduce.cuh's partition (thread t of block b: i = b T + t, then
// + B T, ...): the squares of y - target summed per thread, then per block into
// partials[blockIdx.x]; dy [n] (=|+= grad_scale (y - target)) when not NULL. Launch
// <<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS>>>.
__global__ void mse_partials_kernel(const float *y, const float *target, int64_t n, double grad_scale, float *dy,
                                    int accumulate, double *partials) {
  __shared__ double shared[FG_CUDA_THREADS];
  const int64_t stride = (int64_t)FG_CUDA_REDUCE_BLOCKS * FG_CUDA_THREADS;
  double s = 0.0;
  for (int64_t i = (int64_t)blockIdx.x * FG_CUDA_THREADS + threadIdx.x; i < n; i += stride) {
    const double d = fg_cuda_mse_diff(y[i], target[i]);
    s += d * d;
    if (dy) dy[i] = fg_cuda_loss_store(dy[i], grad_scale * d, accumulate);
  }
  s = fg_block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

// y, target, dy (or NULL): any shape, the same element count.
static fg_status cuda_mse(fg_backend *b, const fg_tensor *y, const fg_tensor *target, float weight, fg_tensor *dy,
                          int accumulate, double *loss) {
  fg_cuda_ctx *c = fg_cuda_ctx_of(b);
  const int64_t n = fg_tensor_numel(y);
  double *partials = (double *)c->partials.ptr, *scalars = (double *)c->scalars.ptr;
  mse_partials_kernel<<<FG_CUDA_REDUCE_BLOCKS, FG_CUDA_THREADS, 0, c->stream>>>(
      (const float *)y->data, (const float *)target->data, n, 2.0 * (double)weight / (double)n,
      dy ? (float *)dy->data : NULL, accumulate, partials);
  FG_CUDA_LAUNCHED(c, "mse_partials_kernel");
  fg_cuda_combine_partials_kernel<<<1, FG_CUDA_THREADS, 0, c->stream>>>(partials, FG_CUDA_REDUCE_BLOCKS, scalars);
  FG_CUDA_LAUNCHED(c, "fg_cuda_combine_partials_kernel");
  double sum = 0.0;
  FG_TRY(fg_cuda_read_scalars(c, &sum, 1));
  *loss = (double)weight * sum / (double)n;
  return FG_OK;
}

void fg_cuda_register_loss_ops(fg_backend *b) {
  b->softmax_xent = cuda_softmax_xent;
  b->kl_div = cuda_kl_div;
  b->mse = cuda_mse;
}
