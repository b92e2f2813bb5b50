/* Shared validation for op entry points, and whole-tensor host transfers. */
#include "engine/backend/ops_check.h"

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

fg_status fg_op_unsupported(const char *op, const fg_backend *b) {
  return FG_FAIL(FG_ERR_UNSUPPORTED, "%s: not supported by the %s backend", op, b->name);
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
