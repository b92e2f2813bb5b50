/* Deterministic parallel reductions (fixed blocks summed in order) and sum_squares. */
#include "cpu/math_internal.h"

/* Blocks reduced per round; their partials live on the stack. */
enum { FG_CPU_REDUCE_GROUP = 256 };

fg_cpu_partial fg_cpu_reduce_blocks(int64_t n, int64_t block, fg_cpu_block_fn fn, const void *ctx) {
  fg_cpu_partial total = {0.0, 0};
  if (block < 1) block = 1;
  for (int64_t start = 0; start < n; start += block * FG_CPU_REDUCE_GROUP) {
    int64_t remaining = n - start;
    int64_t blocks = (remaining + block - 1) / block;
    if (blocks > FG_CPU_REDUCE_GROUP) blocks = FG_CPU_REDUCE_GROUP;
    fg_cpu_partial part[FG_CPU_REDUCE_GROUP];
#pragma omp parallel for schedule(static) if (blocks > 1)
    for (int64_t j = 0; j < blocks; j++) {
      int64_t begin = start + j * block;
      int64_t end = begin + block < n ? begin + block : n;
      part[j] = fn(ctx, begin, end);
    }
    for (int64_t j = 0; j < blocks; j++) {
      total.sum += part[j].sum;
      total.count += part[j].count;
    }
  }
  return total;
}

/* ----------------------------------------------------------------------------------------- */
/* sum_squares                                                                                */

enum { FG_CPU_SUM_BLOCK = 1 << 14 };

static fg_cpu_partial sum_squares_block(const void *ctx, int64_t begin, int64_t end) {
  const float *x = ctx;
  fg_cpu_partial r = {0.0, 0};
  for (int64_t i = begin; i < end; i++) r.sum += (double)x[i] * (double)x[i];
  return r;
}

static fg_status cpu_sum_squares(fg_backend *b, const fg_tensor *x, double *out) {
  (void)b;
  *out =
      fg_cpu_reduce_blocks(fg_tensor_numel(x), FG_CPU_SUM_BLOCK, sum_squares_block, fg_f32(x)).sum;
  return FG_OK;
}

void fg_cpu_register_reduce_ops(fg_backend *b) { b->sum_squares = cpu_sum_squares; }
