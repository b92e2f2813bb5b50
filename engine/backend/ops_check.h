/* Validation helpers shared by the op entry points (engine/backend/ops_*.c). Each returns FG_OK
 * or records a message of the form "<op>: <arg> <problem> (got ..., expected ...)". Internal to
 * engine/backend. */
#ifndef FG_OPS_CHECK_H
#define FG_OPS_CHECK_H

#include "engine/backend/backend.h"

/* `t` is present, has dtype `dtype` and rank in [min_rank, max_rank] (its data may be NULL:
 * a shape descriptor, as workspace queries take). */
fg_status fg_check_layout(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                          int min_rank, int max_rank);
/* fg_check_layout, and `t` has data unless it is empty. */
fg_status fg_check_tensor(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                          int min_rank, int max_rank);
/* t->shape[dim] == expected. */
fg_status fg_check_extent(const char *op, const char *arg, const fg_tensor *t, int dim,
                          int64_t expected);
/* numel(t) == expected. */
fg_status fg_check_numel(const char *op, const char *arg, const fg_tensor *t, int64_t expected);
/* a and b have identical rank and extents. */
fg_status fg_check_same_shape(const char *op, const char *arg_a, const fg_tensor *a,
                              const char *arg_b, const fg_tensor *b);
/* All non-NULL tensors of `ts` live on one device; *out = that device's backend. */
fg_status fg_op_backend(const char *op, const fg_tensor *const *ts, int count, fg_backend **out);
/* FG_ERR_UNSUPPORTED naming the op and backend. */
fg_status fg_op_unsupported(const char *op, const fg_backend *b);

#endif
