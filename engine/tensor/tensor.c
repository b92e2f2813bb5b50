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
  return fg_tensor_view(data, FG_F32, fg_cpu_device(), 1, &n);
}

fg_tensor fg_tensor_2d(float *data, int64_t rows, int64_t cols) {
  int64_t s[2] = {rows, cols};
  return fg_tensor_view(data, FG_F32, fg_cpu_device(), 2, s);
}

fg_tensor fg_tensor_4d(float *data, int64_t n, int64_t c, int64_t h, int64_t w) {
  int64_t s[4] = {n, c, h, w};
  return fg_tensor_view(data, FG_F32, fg_cpu_device(), 4, s);
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
