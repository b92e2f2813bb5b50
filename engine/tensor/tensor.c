/* Tensor descriptor helpers. */
#include "engine/tensor/tensor.h"

#include <stdio.h>
#include <string.h>

fg_tensor fg_tensor_view(void *data, fg_dtype dtype, fg_device device, int ndim, const int64_t *shape) {
  fg_tensor t;
  memset(&t, 0, sizeof t);
  t.data = data;
  t.dtype = dtype;
  t.device = device;
  t.ndim = ndim;
  for (int i = 0; i < FG_MAX_DIMS; i++) t.shape[i] = i < ndim ? shape[i] : 1;
  return t;
}

fg_tensor fg_tensor_1d(float *data, int64_t n) {
  return fg_tensor_view(data, FG_F32, fg_host_device(), 1, &n);
}

fg_tensor fg_tensor_2d(float *data, int64_t rows, int64_t cols) {
  int64_t s[2] = {rows, cols};
  return fg_tensor_view(data, FG_F32, fg_host_device(), 2, s);
}

fg_tensor fg_tensor_4d(float *data, int64_t n, int64_t c, int64_t h, int64_t w) {
  int64_t s[4] = {n, c, h, w};
  return fg_tensor_view(data, FG_F32, fg_host_device(), 4, s);
}

int64_t fg_tensor_numel(const fg_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

size_t fg_dtype_size(fg_dtype dtype) {
  switch (dtype) {
    case FG_F32: return 4;
    case FG_I32: return 4;
    case FG_U8: return 1;
  }
  return 0;
}

size_t fg_tensor_bytes(const fg_tensor *t) { return (size_t)fg_tensor_numel(t) * fg_dtype_size(t->dtype); }

int fg_tensor_same_shape(const fg_tensor *a, const fg_tensor *b) {
  if (a->ndim != b->ndim) return 0;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i]) return 0;
  return 1;
}

int fg_device_equal(fg_device a, fg_device b) { return a.kind == b.kind && a.index == b.index; }

enum { FG_MAX_DEVICE_INDEX = 255 };

fg_status fg_device_parse(const char *text, fg_device *out) {
  if (!text) return FG_FAIL(FG_ERR_INVALID, "device: no name given (expected cpu, cuda or cuda:N)");
  fg_device d = {FG_DEV_CPU, 0};
  if (strcmp(text, "cpu") == 0) {
    *out = d;
    return FG_OK;
  }
  d.kind = FG_DEV_CUDA;
  if (strcmp(text, "cuda") == 0) {
    *out = d;
    return FG_OK;
  }
  if (strcmp(text, "cuda:local") == 0) {
    d.index = FG_DEVICE_INDEX_LOCAL;
    *out = d;
    return FG_OK;
  }
  const char *digits = strncmp(text, "cuda:", 5) == 0 ? text + 5 : NULL;
  int index = 0, n = 0;
  if (digits && *digits) {
    for (; digits[n] >= '0' && digits[n] <= '9' && index <= FG_MAX_DEVICE_INDEX; n++)
      index = index * 10 + (digits[n] - '0');
  }
  if (!digits || n == 0 || digits[n] != '\0' || index > FG_MAX_DEVICE_INDEX)
    return FG_FAIL(FG_ERR_INVALID,
                   "device '%s' is not cpu, cuda or cuda:N (N in 0..%d), or cuda:local (the node-local rank)", text,
                   FG_MAX_DEVICE_INDEX);
  d.index = index;
  *out = d;
  return FG_OK;
}

const char *fg_device_str(fg_device d, char *buf, size_t cap) {
  if (d.kind == FG_DEV_CPU)
    snprintf(buf, cap, "cpu");
  else if (d.index == FG_DEVICE_INDEX_LOCAL)
    snprintf(buf, cap, "%s:local", fg_device_kind_name(d.kind));
  else
    snprintf(buf, cap, "%s:%d", fg_device_kind_name(d.kind), d.index);
  return buf;
}

const char *fg_dtype_name(fg_dtype dtype) {
  switch (dtype) {
    case FG_F32: return "f32";
    case FG_I32: return "i32";
    case FG_U8: return "u8";
  }
  return "?";
}

const char *fg_device_kind_name(fg_device_kind kind) {
  switch (kind) {
    case FG_DEV_CPU: return "cpu";
    case FG_DEV_CUDA: return "cuda";
    case FG_DEV_KINDS: break;
  }
  return "?";
}

const char *fg_shape_str(const fg_tensor *t, char *buf, size_t cap) {
  size_t used = 0;
  used += (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < t->ndim && used < cap; i++)
    used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)t->shape[i]);
  if (used < cap) snprintf(buf + used, cap - used, "]");
  return buf;
}
