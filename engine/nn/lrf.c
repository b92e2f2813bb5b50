/* Low-rank factorisation of conv weights by thin SVD, and its inverse; see lrf.h. */
#include "engine/nn/lrf.h"

#include <math.h>
#include <stdint.h>

#include "engine/backend/ops.h"

/* Parts of the workspace start at multiples of this many bytes. */
enum { FG_LRF_ALIGN = 64 };

static size_t align_up(size_t v) { return (v + FG_LRF_ALIGN - 1) / FG_LRF_ALIGN * FG_LRF_ALIGN; }

fg_status fg_lrf_matrix_view(const char *what, const fg_tensor *w, fg_tensor *m) {
  if (!what) what = "w";
  if (!w) return FG_FAIL(FG_ERR_INVALID, "lrf: %s is missing", what);
  if (!m) return FG_FAIL(FG_ERR_INVALID, "lrf: output view for %s is missing", what);
  char buf[64];
  if (w->dtype != FG_F32)
    return FG_FAIL(FG_ERR_SHAPE, "lrf: %s has dtype %s, expected f32", what,
                   fg_dtype_name(w->dtype));
  if (w->ndim != 2 && w->ndim != 4)
    return FG_FAIL(FG_ERR_SHAPE,
                   "lrf: %s has shape %s, expected a conv weight [O, I, kh, kw] or a matrix "
                   "[rows, cols]",
                   what, fg_shape_str(w, buf, sizeof buf));
  for (int d = 0; d < w->ndim; d++)
    if (w->shape[d] < 1)
      return FG_FAIL(FG_ERR_INVALID, "lrf: %s has shape %s, expected every extent >= 1", what,
                     fg_shape_str(w, buf, sizeof buf));
  *m = *w;
  if (w->ndim == 4) {
    const int64_t rows = w->shape[0] * w->shape[2], cols = w->shape[1] * w->shape[3];
    *m = fg_tensor_view(w->data, FG_F32, w->device, 2, (const int64_t[2]){rows, cols});
  }
  return FG_OK;
}

fg_status fg_lrf_dims(const fg_tensor *w, int64_t r, int64_t *rank, int64_t *rows, int64_t *cols) {
  fg_tensor m = {0};
  FG_TRY(fg_lrf_matrix_view("w", w, &m));
  if (r < 1) return FG_FAIL(FG_ERR_INVALID, "lrf: rank r = %lld, expected r >= 1", (long long)r);
  const int64_t k = m.shape[0] < m.shape[1] ? m.shape[0] : m.shape[1];
  if (rank) *rank = r < k ? r : k;
  if (rows) *rows = m.shape[0];
  if (cols) *cols = m.shape[1];
  return FG_OK;
}

/* Offsets in the workspace of U [rows,k], s [k], V^T [k,cols] and the SVD's own workspace; once
 * the SVD is done, the scaling matrix D [r_eff, k] (at most [k, k]) reuses the SVD's part. */
typedef struct lrf_layout {
  size_t s_off, vt_off, svd_off, svd_bytes, total;
} lrf_layout;

static fg_status layout_for(const fg_tensor *m, lrf_layout *l) {
  const int64_t rows = m->shape[0], cols = m->shape[1], k = rows < cols ? rows : cols;
  FG_TRY(fg_svd_workspace(m, &l->svd_bytes));
  const size_t d_bytes = (size_t)(k * k) * sizeof(float);
  l->s_off = align_up((size_t)(rows * k) * sizeof(float));
  l->vt_off = l->s_off + align_up((size_t)k * sizeof(float));
  l->svd_off = l->vt_off + align_up((size_t)(k * cols) * sizeof(float));
  l->total = l->svd_off + align_up(l->svd_bytes > d_bytes ? l->svd_bytes : d_bytes);
  return FG_OK;
}

fg_status fg_lrf_workspace(const fg_tensor *w, size_t *bytes) {
  if (!bytes) return FG_FAIL(FG_ERR_INVALID, "lrf_workspace: output pointer is missing");
  fg_tensor m = {0};
  FG_TRY(fg_lrf_matrix_view("w", w, &m));
  lrf_layout l = {0};
  FG_TRY(layout_for(&m, &l));
  *bytes = l.total;
  return FG_OK;
}

/* t is an f32 matrix [rows, cols] with data. */
static fg_status check_factor(const char *op, const char *arg, const fg_tensor *t, int64_t rows,
                              int64_t cols) {
  if (!t) return FG_FAIL(FG_ERR_INVALID, "%s: %s is missing", op, arg);
  char buf[64];
  if (t->dtype != FG_F32 || t->ndim != 2 || t->shape[0] != rows || t->shape[1] != cols)
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s is %s %s, expected f32 [%lld, %lld]", op, arg,
                   fg_dtype_name(t->dtype), fg_shape_str(t, buf, sizeof buf), (long long)rows,
                   (long long)cols);
  if (!t->data) return FG_FAIL(FG_ERR_INVALID, "%s: %s has no data", op, arg);
  return FG_OK;
}

static fg_status check_one_device(const char *op, const fg_tensor *w, const fg_tensor *a, const fg_tensor *b) {
  if (fg_device_equal(w->device, a->device) && fg_device_equal(w->device, b->device)) return FG_OK;
  char dw[32], da[32], db[32];
  return FG_FAIL(FG_ERR_INVALID, "%s: w, a and b live on different devices (%s, %s, %s)", op,
                 fg_device_str(w->device, dw, sizeof dw), fg_device_str(a->device, da, sizeof da),
                 fg_device_str(b->device, db, sizeof db));
}

/* a := D U^T, b := D V^T with D = [diag(sqrt s_r) | 0] [r, k]: row i of a is sqrt(s_i) u_i^T and
 * of b sqrt(s_i) v_i^T. Every element of a product has one nonzero term, so it is the rounded
 * sqrt(s_i) times the vector entry exactly. The r singular values are read to the host one at a
 * time; everything else runs through the op entry points on the tensors' device. */
static fg_status scale_factors(fg_tensor *d, const fg_tensor *s, const fg_tensor *u, const fg_tensor *vt,
                               fg_tensor *a, fg_tensor *b) {
  const int64_t rank = d->shape[0], k = d->shape[1], one = 1;
  FG_TRY(fg_fill(d, 0.0f));
  for (int64_t i = 0; i < rank; i++) {
    float si = 0.0f;
    fg_tensor s_i = fg_tensor_view((float *)s->data + i, FG_F32, s->device, 1, &one);
    FG_TRY(fg_tensor_to_host(&si, &s_i, sizeof si));
    fg_tensor d_ii = fg_tensor_view((float *)d->data + i * k + i, FG_F32, d->device, 1, &one);
    FG_TRY(fg_fill(&d_ii, sqrtf(si > 0.0f ? si : 0.0f)));
  }
  FG_TRY(fg_linear_forward(d, u, NULL, a));        /* [r, k] x [rows, k]^T */
  return fg_linear_backward_data(d, vt, b, 0);     /* [r, k] x [k, cols] */
}

/* Byte ranges [p, p + n) and [q, q + k) intersect. */
static int ranges_overlap(const void *p, size_t n, const void *q, size_t k) {
  const uintptr_t a0 = (uintptr_t)p, b0 = (uintptr_t)q;
  return n > 0 && k > 0 && a0 < b0 + k && b0 < a0 + n;
}

fg_status fg_lrf_factor(const fg_tensor *w, int64_t r, fg_tensor *a, fg_tensor *b,
                        fg_workspace ws) {
  const char *op = "lrf_factor";
  fg_tensor m = {0};
  FG_TRY(fg_lrf_matrix_view("w", w, &m));
  if (!w->data) return FG_FAIL(FG_ERR_INVALID, "%s: w has no data", op);
  int64_t rank = 0;
  FG_TRY(fg_lrf_dims(w, r, &rank, NULL, NULL));
  const int64_t rows = m.shape[0], cols = m.shape[1], k = rows < cols ? rows : cols;
  FG_TRY(check_factor(op, "a", a, rank, rows));
  FG_TRY(check_factor(op, "b", b, rank, cols));
  FG_TRY(check_one_device(op, w, a, b));
  lrf_layout l = {0};
  FG_TRY(layout_for(&m, &l));
  if (ws.bytes < l.total)
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: workspace of %zu bytes is smaller than the %zu bytes needed for w [%lld, "
                   "%lld] (ask fg_lrf_workspace)",
                   op, ws.bytes, l.total, (long long)rows, (long long)cols);
  if (!ws.ptr || (uintptr_t)ws.ptr % sizeof(double) != 0)
    return FG_FAIL(FG_ERR_INVALID, "%s: workspace pointer %p is missing or not %zu-byte aligned",
                   op, ws.ptr, sizeof(double));
  const fg_tensor *outs[3] = {w, a, b};
  const char *names[3] = {"w", "a", "b"};
  for (int i = 0; i < 3; i++)
    if (ranges_overlap(ws.ptr, l.total, outs[i]->data, fg_tensor_bytes(outs[i])))
      return FG_FAIL(FG_ERR_INVALID, "%s: the workspace overlaps %s", op, names[i]);
  if (ranges_overlap(a->data, fg_tensor_bytes(a), b->data, fg_tensor_bytes(b)) ||
      ranges_overlap(w->data, fg_tensor_bytes(w), a->data, fg_tensor_bytes(a)) ||
      ranges_overlap(w->data, fg_tensor_bytes(w), b->data, fg_tensor_bytes(b)))
    return FG_FAIL(FG_ERR_INVALID, "%s: w, a and b must not overlap in memory", op);

  unsigned char *base = ws.ptr;
  fg_tensor u = fg_tensor_view(base, FG_F32, w->device, 2, (const int64_t[2]){rows, k});
  fg_tensor s = fg_tensor_view(base + l.s_off, FG_F32, w->device, 1, (const int64_t[1]){k});
  fg_tensor vt = fg_tensor_view(base + l.vt_off, FG_F32, w->device, 2, (const int64_t[2]){k, cols});
  fg_workspace svd_ws = {base + l.svd_off, l.svd_bytes};
  fg_status st = fg_svd(&m, &u, &s, &vt, svd_ws);
  if (st != FG_OK) {
    fg_error_prefix("%s of w [%lld, %lld]", op, (long long)rows, (long long)cols);
    return st;
  }
  fg_tensor d = fg_tensor_view(base + l.svd_off, FG_F32, w->device, 2, (const int64_t[2]){rank, k});
  st = scale_factors(&d, &s, &u, &vt, a, b);
  if (st != FG_OK) fg_error_prefix("%s: scaling the singular vectors", op);
  return st;
}

fg_status fg_lrf_rebuild(const fg_tensor *a, const fg_tensor *b, fg_tensor *w) {
  const char *op = "lrf_rebuild";
  fg_tensor m = {0};
  FG_TRY(fg_lrf_matrix_view("w", w, &m));
  if (!a || !b) return FG_FAIL(FG_ERR_INVALID, "%s: %s is missing", op, a ? "b" : "a");
  if (a->ndim < 1 || a->shape[0] < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: a needs at least one row (rank r >= 1)", op);
  const int64_t r = a->shape[0], rows = m.shape[0], cols = m.shape[1];
  FG_TRY(check_factor(op, "a", a, r, rows));
  FG_TRY(check_factor(op, "b", b, r, cols));
  if (!w->data) return FG_FAIL(FG_ERR_INVALID, "%s: w has no data", op);
  if (ranges_overlap(w->data, fg_tensor_bytes(w), a->data, fg_tensor_bytes(a)) ||
      ranges_overlap(w->data, fg_tensor_bytes(w), b->data, fg_tensor_bytes(b)))
    return FG_FAIL(FG_ERR_INVALID, "%s: w must not overlap a or b in memory", op);
  /* M [rows, cols] = a^T b is the linear layer's weight gradient dy^T x with dy = a [r, rows]
   * (r samples, rows outputs) and x = b [r, cols] (cols inputs). */
  fg_status st = fg_linear_backward_params(b, a, &m, NULL);
  if (st != FG_OK) fg_error_prefix("%s", op);
  return st;
}
