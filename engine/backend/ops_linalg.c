/* Validating entry points of engine/backend/ops.h for linear algebra (thin SVD). Each checks
 * ranks, extents, dtypes and devices, records a message naming the op and the offending argument,
 * then dispatches to the backend of the device the tensors live on (FG_ERR_UNSUPPORTED when its
 * entry is NULL). The workspace size and the finiteness of the input are checked by the backend,
 * which knows its own needs and can read the data. */
#include <stdint.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_check.h"

/* a [m,n] f32 with m, n >= 1 (data may be NULL when `need_data` is 0). */
static fg_status check_svd_input(const char *op, const fg_tensor *a, int need_data) {
  if (need_data)
    FG_TRY(fg_check_tensor(op, "a", a, FG_F32, 2, 2));
  else
    FG_TRY(fg_check_layout(op, "a", a, FG_F32, 2, 2));
  if (a->shape[0] < 1 || a->shape[1] < 1) {
    char buf[64];
    return FG_FAIL(FG_ERR_INVALID, "%s: a has shape %s, expected a matrix with at least one row and "
                   "one column", op, fg_shape_str(a, buf, sizeof buf));
  }
  return FG_OK;
}

/* t has rank `rank` (1 or 2) and the extents e[0..rank-1]. */
static fg_status check_svd_output(const char *op, const char *arg, const fg_tensor *t, int rank,
                                  const int64_t *e) {
  FG_TRY(fg_check_tensor(op, arg, t, FG_F32, rank, rank));
  for (int d = 0; d < rank; d++) FG_TRY(fg_check_extent(op, arg, t, d, e[d]));
  return FG_OK;
}

/* The byte ranges of x and y intersect (same device; both have data). */
static int overlap(const fg_tensor *x, const fg_tensor *y) {
  if (!fg_device_equal(x->device, y->device)) return 0;
  const uintptr_t x0 = (uintptr_t)x->data, y0 = (uintptr_t)y->data;
  const uintptr_t x1 = x0 + fg_tensor_bytes(x), y1 = y0 + fg_tensor_bytes(y);
  return x0 < y1 && y0 < x1;
}

/* The workspace the backend needs for a's shape; a backend that runs svd answers this query. */
static fg_status svd_workspace(const char *op, fg_backend *b, const fg_tensor *a, size_t *bytes) {
  *bytes = 0;
  if (!b->svd_workspace)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "svd_workspace: not supported by the %s backend", b->name);
  fg_status s = b->svd_workspace(b, a->shape[0], a->shape[1], bytes);
  if (s != FG_OK) fg_error_prefix("%s", op);
  return s;
}

fg_status fg_svd_workspace(const fg_tensor *a, size_t *bytes) {
  const char *op = "svd_workspace";
  if (!bytes) return FG_FAIL(FG_ERR_INVALID, "%s: output pointer is missing", op);
  FG_TRY(check_svd_input(op, a, 0));
  fg_backend *b;
  fg_op_query q = {.op = FG_OP_SVD, .t = {a, NULL}};
  FG_TRY(fg_op_prepare(&q, (const fg_tensor *[]){a}, 1, &b));
  return svd_workspace(op, b, a, bytes);
}

fg_status fg_svd(const fg_tensor *a, fg_tensor *u, fg_tensor *s, fg_tensor *vt, fg_workspace ws) {
  const char *op = "svd";
  FG_TRY(check_svd_input(op, a, 1));
  const int64_t m = a->shape[0], n = a->shape[1], k = m < n ? m : n;
  const int64_t eu[2] = {m, k}, es[1] = {k}, evt[2] = {k, n};
  FG_TRY(check_svd_output(op, "u", u, 2, eu));
  FG_TRY(check_svd_output(op, "s", s, 1, es));
  FG_TRY(check_svd_output(op, "vt", vt, 2, evt));
  const fg_tensor *all[4] = {a, u, s, vt};
  const char *names[4] = {"a", "u", "s", "vt"};
  for (int i = 0; i < 4; i++)
    for (int j = i + 1; j < 4; j++)
      if (overlap(all[i], all[j]))
        return FG_FAIL(FG_ERR_INVALID, "%s: %s and %s overlap in memory, expected distinct buffers",
                       op, names[i], names[j]);
  fg_backend *b;
  fg_op_query q = {.op = FG_OP_SVD, .t = {a, NULL}};
  FG_TRY(fg_op_prepare(&q, (const fg_tensor *[]){a, u, s, vt}, 4, &b));
  size_t need = 0;
  FG_TRY(svd_workspace(op, b, a, &need));
  FG_TRY(fg_check_workspace(op, ws, need));
  return b->svd(b, a, u, s, vt, ws);
}
