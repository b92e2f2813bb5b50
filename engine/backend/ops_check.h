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

/* The backend that runs q's op on the tensors ts[0..count): all non-NULL ones on one device,
 * whose backend has the op's entry and accepts q (fg_op_supported). Every entry point dispatches
 * through this. */
fg_status fg_op_prepare(const fg_op_query *q, const fg_tensor *const *ts, int count, fg_backend **out);
/* fg_op_prepare for an op whose support depends on nothing but its presence. */
fg_status fg_op_prepare_op(fg_op op, const fg_tensor *const *ts, int count, fg_backend **out);

/* ws holds at least `need` bytes, starting at a multiple of FG_WORKSPACE_ALIGN when need > 0. */
fg_status fg_check_workspace(const char *op, fg_workspace ws, size_t need);

/* FG_OK when r counts nothing, else FG_ERR_INVALID: "<op>: <count> <what> outside <range> (the
 * first, at <where> <first>, is <value>)", the part in brackets when the backend tracked it. */
fg_status fg_index_report_status(const char *op, const fg_index_report *r, const char *what, const char *range,
                                 const char *where);

#endif
