/* Internals shared by the CPU math-op files (norm.c, elementwise.c, loss.c, optim.c,
 * reduce.c, hsic.c): their registration hooks, called by fg_cpu_register_math_ops (math_ops.c), and a
 * deterministic parallel reduction. Not part of the public interface. */
#ifndef FG_CPU_MATH_INTERNAL_H
#define FG_CPU_MATH_INTERNAL_H

#include <stdint.h>

#include "cpu/cpu_internal.h"

/* Each fills its family's entries of the backend table. */
void fg_cpu_register_norm_ops(fg_backend *b); /* bn_forward_train/eval, bn_backward */
void fg_cpu_register_elementwise_ops(
    fg_backend *b);                             /* relu, add, axpy, scale, copy, fill, dropout */
void fg_cpu_register_loss_ops(fg_backend *b);   /* softmax_xent, kl_div, mse */
void fg_cpu_register_optim_ops(fg_backend *b);  /* sgd_step, adam_step */
void fg_cpu_register_reduce_ops(fg_backend *b); /* sum_squares */
void fg_cpu_register_hsic_ops(fg_backend *b);   /* nhsic_workspace, nhsic */

/* Elementwise loops run on OpenMP threads only above this many elements (below it the thread
 * start-up costs more than the work). Results never depend on it. */
enum { FG_CPU_PARALLEL_MIN = 1 << 15 };

/* A partial result of a reduction: a sum in double and an integer count. */
typedef struct fg_cpu_partial {
  double sum;
  int64_t count;
} fg_cpu_partial;

/* Reduces items [begin, end) sequentially, in index order; may also write per-item outputs. */
typedef fg_cpu_partial (*fg_cpu_block_fn)(const void *ctx, int64_t begin, int64_t end);

/* Deterministic parallel reduction over items [0, n): the items are cut into fixed blocks of
 * `block` items (the cut does not depend on the thread count), each block is reduced by one
 * thread with `fn`, and the block results are added in block order. The result is therefore
 * bit-identical for any number of threads. No allocation (partials live on the stack). */
fg_cpu_partial fg_cpu_reduce_blocks(int64_t n, int64_t block, fg_cpu_block_fn fn, const void *ctx);

/* Counts the labels y[0..n) outside [0, k) into *bad (the first one too); returns 1 when any. */
int fg_cpu_count_bad_labels(const int32_t *y, int64_t n, int64_t k, fg_index_report *bad);

/* The backend's `supports` for softmax_xent: a class mask covers at most FG_CPU_XENT_MASKED_MAX_K
 * classes (a row of them is masked on the stack). */
enum { FG_CPU_XENT_MASKED_MAX_K = 4096 };
fg_status fg_cpu_xent_supports(const fg_op_query *q);

#endif
