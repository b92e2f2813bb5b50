/* Shared validation for op entry points, and whole-tensor host transfers. */
#include "engine/backend/ops_check.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/backend/ops.h"

fg_status fg_check_layout(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                          int min_rank, int max_rank) {
  if (!t) return FG_FAIL(FG_ERR_INVALID, "%s: %s is missing", op, arg);
  if (t->dtype != dtype)
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has dtype %s, expected %s", op, arg,
                   fg_dtype_name(t->dtype), fg_dtype_name(dtype));
  if (t->ndim < min_rank || t->ndim > max_rank) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s (rank %d), expected rank %d..%d", op, arg,
                   fg_shape_str(t, buf, sizeof buf), t->ndim, min_rank, max_rank);
  }
  return FG_OK;
}

fg_status fg_check_tensor(const char *op, const char *arg, const fg_tensor *t, fg_dtype dtype,
                          int min_rank, int max_rank) {
  FG_TRY(fg_check_layout(op, arg, t, dtype, min_rank, max_rank));
  if (!t->data && fg_tensor_numel(t) > 0)
    return FG_FAIL(FG_ERR_INVALID, "%s: %s has no data", op, arg);
  return FG_OK;
}

fg_status fg_check_extent(const char *op, const char *arg, const fg_tensor *t, int dim,
                          int64_t expected) {
  if (t->shape[dim] != expected) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s, expected extent %lld in dimension %d", op,
                   arg, fg_shape_str(t, buf, sizeof buf), (long long)expected, dim);
  }
  return FG_OK;
}

fg_status fg_check_numel(const char *op, const char *arg, const fg_tensor *t, int64_t expected) {
  if (fg_tensor_numel(t) != expected) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s (%lld elements), expected %lld elements", op,
                   arg, fg_shape_str(t, buf, sizeof buf), (long long)fg_tensor_numel(t),
                   (long long)expected);
  }
  return FG_OK;
}

fg_status fg_check_same_shape(const char *op, const char *arg_a, const fg_tensor *a,
                              const char *arg_b, const fg_tensor *b) {
  if (!fg_tensor_same_shape(a, b)) {
    char ba[64], bb[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s but %s has shape %s", op, arg_a,
                   fg_shape_str(a, ba, sizeof ba), arg_b, fg_shape_str(b, bb, sizeof bb));
  }
  return FG_OK;
}

fg_status fg_op_backend(const char *op, const fg_tensor *const *ts, int count, fg_backend **out) {
  const fg_tensor *first = NULL;
  for (int i = 0; i < count; i++) {
    if (!ts[i]) continue;
    if (!first) {
      first = ts[i];
    } else if (!fg_device_equal(first->device, ts[i]->device)) {
      return FG_FAIL(FG_ERR_INVALID, "%s: tensors live on different devices (%s:%d and %s:%d)", op,
                     fg_device_kind_name(first->device.kind), first->device.index,
                     fg_device_kind_name(ts[i]->device.kind), ts[i]->device.index);
    }
  }
  if (!first) return FG_FAIL(FG_ERR_INVALID, "%s: no tensors given", op);
  fg_backend *b = fg_backend_for(first->device);
  if (!b) {
    fg_error_prefix("%s", op);
    return fg_last_status();
  }
  *out = b;
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* The op table: names and the table entry of each op                                         */

typedef struct op_entry {
  const char *name;
  size_t offset; /* of the function pointer in fg_backend */
} op_entry;

#define FG_OP_ENTRY(name) {#name, offsetof(fg_backend, name)}
static const op_entry fg_ops[FG_OP_COUNT] = {
    [FG_OP_CONV2D_FORWARD] = FG_OP_ENTRY(conv2d_forward),
    [FG_OP_CONV2D_BACKWARD_DATA] = FG_OP_ENTRY(conv2d_backward_data),
    [FG_OP_CONV2D_BACKWARD_FILTER] = FG_OP_ENTRY(conv2d_backward_filter),
    [FG_OP_LINEAR_FORWARD] = FG_OP_ENTRY(linear_forward),
    [FG_OP_LINEAR_BACKWARD_DATA] = FG_OP_ENTRY(linear_backward_data),
    [FG_OP_LINEAR_BACKWARD_PARAMS] = FG_OP_ENTRY(linear_backward_params),
    [FG_OP_BN_FORWARD_TRAIN] = FG_OP_ENTRY(bn_forward_train),
    [FG_OP_BN_FORWARD_EVAL] = FG_OP_ENTRY(bn_forward_eval),
    [FG_OP_BN_BACKWARD] = FG_OP_ENTRY(bn_backward),
    [FG_OP_RELU_FORWARD] = FG_OP_ENTRY(relu_forward),
    [FG_OP_RELU_BACKWARD] = FG_OP_ENTRY(relu_backward),
    [FG_OP_ADD] = FG_OP_ENTRY(add),
    [FG_OP_AXPY] = FG_OP_ENTRY(axpy),
    [FG_OP_SCALE] = FG_OP_ENTRY(scale),
    [FG_OP_COPY] = {"copy", offsetof(fg_backend, copy_tensor)},
    [FG_OP_FILL] = FG_OP_ENTRY(fill),
    [FG_OP_DROPOUT_FORWARD] = FG_OP_ENTRY(dropout_forward),
    [FG_OP_DROPOUT_BACKWARD] = FG_OP_ENTRY(dropout_backward),
    [FG_OP_SIGMOID_FORWARD] = FG_OP_ENTRY(sigmoid_forward),
    [FG_OP_SIGMOID_BACKWARD] = FG_OP_ENTRY(sigmoid_backward),
    [FG_OP_MUL] = FG_OP_ENTRY(mul),
    [FG_OP_MAXPOOL_FORWARD] = FG_OP_ENTRY(maxpool_forward),
    [FG_OP_MAXPOOL_BACKWARD] = FG_OP_ENTRY(maxpool_backward),
    [FG_OP_AVGPOOL_GLOBAL_FORWARD] = FG_OP_ENTRY(avgpool_global_forward),
    [FG_OP_AVGPOOL_GLOBAL_BACKWARD] = FG_OP_ENTRY(avgpool_global_backward),
    [FG_OP_UPSAMPLE2X_BILINEAR_FORWARD] = FG_OP_ENTRY(upsample2x_bilinear_forward),
    [FG_OP_UPSAMPLE2X_BILINEAR_BACKWARD] = FG_OP_ENTRY(upsample2x_bilinear_backward),
    [FG_OP_SOFTMAX_XENT] = FG_OP_ENTRY(softmax_xent),
    [FG_OP_KL_DIV] = FG_OP_ENTRY(kl_div),
    [FG_OP_MSE] = FG_OP_ENTRY(mse),
    [FG_OP_NHSIC] = FG_OP_ENTRY(nhsic),
    [FG_OP_SGD_STEP] = FG_OP_ENTRY(sgd_step),
    [FG_OP_ADAM_STEP] = FG_OP_ENTRY(adam_step),
    [FG_OP_SUM_SQUARES] = FG_OP_ENTRY(sum_squares),
    [FG_OP_SVD] = FG_OP_ENTRY(svd),
};
#undef FG_OP_ENTRY

const char *fg_op_name(fg_op op) { return (unsigned)op < FG_OP_COUNT ? fg_ops[op].name : "unknown op"; }

/* Whether b's table has op's entry. Every entry is a function pointer; its bytes are read as one
 * (all function pointers share a representation on the platforms fedgap targets). */
static int has_entry(const fg_backend *b, fg_op op) {
  void (*fn)(void);
  memcpy(&fn, (const char *)b + fg_ops[op].offset, sizeof fn);
  return fn != NULL;
}

/* " [2, 3, 4] x [5, 3]" for the query's tensors, into buf. */
static const char *query_shapes(const fg_op_query *q, char *buf, size_t cap) {
  size_t used = 0;
  buf[0] = '\0';
  for (int i = 0; i < 2 && q->t[i]; i++) {
    char s[64];
    int n = snprintf(buf + used, cap - used, "%s%s", i ? " x " : " ", fg_shape_str(q->t[i], s, sizeof s));
    if (n < 0 || (size_t)n >= cap - used) break;
    used += (size_t)n;
  }
  return buf;
}

static fg_status supported_by(const fg_backend *b, const fg_op_query *q) {
  if ((unsigned)q->op >= FG_OP_COUNT) return FG_FAIL(FG_ERR_INVALID, "op query: unknown op %d", (int)q->op);
  char shapes[160];
  if (!has_entry(b, q->op))
    return FG_FAIL(FG_ERR_UNSUPPORTED, "%s%s: not supported by the %s backend", fg_op_name(q->op),
                   query_shapes(q, shapes, sizeof shapes), b->name);
  if (!b->supports) return FG_OK;
  fg_status s = b->supports((fg_backend *)b, q);
  if (s != FG_OK)
    fg_error_prefix("%s%s on the %s backend", fg_op_name(q->op), query_shapes(q, shapes, sizeof shapes), b->name);
  return s;
}

fg_status fg_op_supported(fg_device device, const fg_op_query *q) {
  if (!q) return FG_FAIL(FG_ERR_INVALID, "op query: missing");
  const fg_backend *b = fg_backend_registered(device.kind);
  if (!b) {
    char d[32];
    return FG_FAIL(FG_ERR_NO_DEVICE, "%s: no backend is registered for %s", fg_op_name(q->op),
                   fg_device_str(device, d, sizeof d));
  }
  return supported_by(b, q);
}

fg_status fg_op_prepare(const fg_op_query *q, const fg_tensor *const *ts, int count, fg_backend **out) {
  FG_TRY(fg_op_backend(fg_op_name(q->op), ts, count, out));
  return supported_by(*out, q);
}

fg_status fg_op_prepare_op(fg_op op, const fg_tensor *const *ts, int count, fg_backend **out) {
  const fg_op_query q = {.op = op};
  return fg_op_prepare(&q, ts, count, out);
}

fg_status fg_check_workspace(const char *op, fg_workspace ws, size_t need) {
  if (ws.bytes < need)
    return FG_FAIL(FG_ERR_INVALID, "%s: workspace of %zu bytes is smaller than the %zu bytes needed", op, ws.bytes,
                   need);
  if (need > 0 && (!ws.ptr || (uintptr_t)ws.ptr % FG_WORKSPACE_ALIGN != 0))
    return FG_FAIL(FG_ERR_INVALID, "%s: workspace pointer %p is missing or not %d-byte aligned", op, ws.ptr,
                   FG_WORKSPACE_ALIGN);
  return FG_OK;
}

fg_status fg_index_report_status(const char *op, const fg_index_report *r, const char *what, const char *range,
                                 const char *where) {
  if (r->bad == 0) return FG_OK;
  if (r->first < 0) return FG_FAIL(FG_ERR_INVALID, "%s: %lld %s outside %s", op, (long long)r->bad, what, range);
  return FG_FAIL(FG_ERR_INVALID, "%s: %lld %s outside %s (the first, at %s %lld, is %lld)", op, (long long)r->bad,
                 what, range, where, (long long)r->first, (long long)r->value);
}

static fg_status transfer(const char *op, const fg_tensor *t, size_t bytes, fg_backend **b) {
  if (!t) return FG_FAIL(FG_ERR_INVALID, "%s: tensor is missing", op);
  if (bytes != fg_tensor_bytes(t))
    return FG_FAIL(FG_ERR_SHAPE, "%s: %zu bytes given for a tensor of %zu bytes", op, bytes,
                   fg_tensor_bytes(t));
  const fg_tensor *ts[1] = {t};
  return fg_op_backend(op, ts, 1, b);
}

fg_status fg_tensor_from_host(fg_tensor *dst, const void *src_host, size_t bytes) {
  fg_backend *b;
  FG_TRY(transfer("tensor_from_host", dst, bytes, &b));
  return b->copy(b, dst->data, src_host, bytes, FG_COPY_H2D);
}

fg_status fg_tensor_to_host(void *dst_host, const fg_tensor *src, size_t bytes) {
  fg_backend *b;
  FG_TRY(transfer("tensor_to_host", src, bytes, &b));
  return b->copy(b, dst_host, src->data, bytes, FG_COPY_D2H);
}

fg_status fg_tensor_transfer(fg_tensor *dst, const fg_tensor *src) {
  static const char op[] = "tensor_transfer";
  if (!dst || !src) return FG_FAIL(FG_ERR_INVALID, "%s: tensor is missing", op);
  if (dst->dtype != src->dtype)
    return FG_FAIL(FG_ERR_SHAPE, "%s: dtypes differ (%s into %s)", op, fg_dtype_name(src->dtype),
                   fg_dtype_name(dst->dtype));
  FG_TRY(fg_check_numel(op, "dst", dst, fg_tensor_numel(src)));
  size_t bytes = fg_tensor_bytes(src);
  if (bytes == 0) return FG_OK;
  if ((!src->data || !dst->data)) return FG_FAIL(FG_ERR_INVALID, "%s: a tensor has no data", op);
  const fg_device host = fg_host_device();
  int src_host = fg_device_equal(src->device, host), dst_host = fg_device_equal(dst->device, host);
  fg_backend *b;
  if (fg_device_equal(src->device, dst->device)) {
    const fg_tensor *ts[1] = {dst};
    FG_TRY(fg_op_backend(op, ts, 1, &b));
    return b->copy(b, dst->data, src->data, bytes, FG_COPY_D2D);
  }
  if (!src_host && !dst_host) {
    char a[32], c[32];
    return FG_FAIL(FG_ERR_UNSUPPORTED, "%s: no direct copy from %s to %s", op,
                   fg_device_str(src->device, a, sizeof a), fg_device_str(dst->device, c, sizeof c));
  }
  const fg_tensor *ts[1] = {src_host ? dst : src};
  FG_TRY(fg_op_backend(op, ts, 1, &b));
  return b->copy(b, dst->data, src->data, bytes, src_host ? FG_COPY_H2D : FG_COPY_D2H);
}

fg_status fg_device_synchronize(fg_device device) {
  fg_backend *b = fg_backend_for(device);
  if (!b) return fg_last_status();
  if (!b->synchronize) return FG_OK;
  fg_status s = b->synchronize(b);
  if (s != FG_OK) fg_error_prefix("device_synchronize");
  return s;
}
