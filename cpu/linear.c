/* CPU linear layer: one OpenBLAS sgemm per call (threaded by OpenBLAS over all threads).
 * Weights are [out, in] (PyTorch's layout), so forward is y = x w^T + b. */
#include "cpu/nn_internal.h"

fg_status fg_cpu_linear_supports(const fg_op_query *q) {
  for (int i = 0; i < 2; i++)
    for (int d = 0; d < q->t[i]->ndim; d++)
      if (!fg_cpu_blas_fits(q->t[i]->shape[d]))
        return FG_FAIL(FG_ERR_UNSUPPORTED, "the extent %lld exceeds the BLAS int range", (long long)q->t[i]->shape[d]);
  return FG_OK;
}

/* x [N,I], w [O,I], bias [O] | NULL, y [N,O]. */
static fg_status cpu_linear_forward(fg_backend *b, const fg_tensor *x, const fg_tensor *w,
                                    const fg_tensor *bias, fg_tensor *y) {
  (void)b;
  const int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
  float *yp = fg_f32(y);
  float beta = 0.0f;
  if (bias) {
    const float *bp = fg_f32(bias);
    for (int64_t r = 0; r < n; r++)
      for (int64_t o = 0; o < out; o++) yp[r * out + o] = bp[o];
    beta = 1.0f;
  }
  fg_cpu_sgemm(0, 1, n, out, in, 1.0f, fg_f32(x), in, fg_f32(w), in, beta, yp, out);
  return FG_OK;
}

/* dy [N,O], w [O,I], dx [N,I] (=|+=) dy w. */
static fg_status cpu_linear_backward_data(fg_backend *b, const fg_tensor *dy, const fg_tensor *w,
                                          fg_tensor *dx, int accumulate) {
  (void)b;
  const int64_t n = dy->shape[0], out = dy->shape[1], in = w->shape[1];
  fg_cpu_sgemm(0, 0, n, in, out, 1.0f, fg_f32(dy), out, fg_f32(w), in, accumulate ? 1.0f : 0.0f,
               fg_f32(dx), in);
  return FG_OK;
}

/* x [N,I], dy [N,O]; dw [O,I] := dy^T x, dbias [O] := column sums of dy (each when not NULL). */
static fg_status cpu_linear_backward_params(fg_backend *b, const fg_tensor *x, const fg_tensor *dy,
                                            fg_tensor *dw, fg_tensor *dbias) {
  const int64_t n = x->shape[0], in = x->shape[1], out = dy->shape[1];
  const float *dyp = fg_f32(dy);
  if (dw) fg_cpu_sgemm(1, 0, out, in, n, 1.0f, dyp, out, fg_f32(x), in, 0.0f, fg_f32(dw), in);
  if (dbias) {
    float *db = fg_f32(dbias);
#pragma omp parallel for num_threads(fg_cpu_ctx_of(b)->threads) schedule(static)
    for (int64_t o = 0; o < out; o++) {
      double sum = 0.0;
      for (int64_t r = 0; r < n; r++) sum += dyp[r * out + o];
      db[o] = (float)sum;
    }
  }
  return FG_OK;
}

void fg_cpu_register_linear_ops(fg_backend *b) {
  b->linear_forward = cpu_linear_forward;
  b->linear_backward_data = cpu_linear_backward_data;
  b->linear_backward_params = cpu_linear_backward_params;
}
