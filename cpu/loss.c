/* Losses on the CPU: softmax cross-entropy, temperature-scaled KL distillation, mean squared
 * error. Rows are processed in fixed blocks (fg_cpu_reduce_blocks), each row in double with
 * its maximum subtracted before exponentiating, so large logits do not overflow and the loss is
 * bit-identical for any thread count. Gradients are written row by row as each row is done;
 * nothing is allocated (row quantities are recomputed rather than stored). */
#include <math.h>

#include "cpu/math_internal.h"

/* Rows per reduction block: about 8K values, whatever the number of classes. */
static int64_t rows_per_block(int64_t k) {
  int64_t r = 8192 / (k > 0 ? k : 1);
  return r > 0 ? r : 1;
}

/* (=|+=) a double, rounded once. */
static void store_grad(float *dst, double v, int accumulate) {
  *dst = accumulate ? (float)((double)*dst + v) : (float)v;
}

static double row_max(const float *z, int64_t k) {
  double m = z[0];
  for (int64_t j = 1; j < k; j++)
    if (z[j] > m) m = z[j];
  return m;
}

/* log sum_j exp((z_j - zmax) * inv_t). */
static double row_log_sum_exp_shifted(const float *z, int64_t k, double zmax, double inv_t) {
  double s = 0.0;
  for (int64_t j = 0; j < k; j++) s += exp(((double)z[j] - zmax) * inv_t);
  return log(s);
}

/* ----------------------------------------------------------------------------------------- */
/* Softmax cross-entropy                                                                      */

typedef struct xent_ctx {
  const float *logits;
  const int32_t *labels;
  const float *mask; /* [k] of 0/1, or NULL */
  int64_t k;
  float *dlogits;    /* NULL: no gradient */
  double grad_scale; /* weight / N */
  int accumulate;
} xent_ctx;

/* Row n's logits with the class mask applied (masked classes read 0) into row[k]. */
static const float *masked_row(const xent_ctx *c, int64_t n, float *row) {
  const float *z = c->logits + n * c->k;
  if (!c->mask) return z;
  for (int64_t j = 0; j < c->k; j++) row[j] = c->mask[j] != 0.0f ? z[j] : 0.0f;
  return row;
}

fg_status fg_cpu_xent_supports(const fg_op_query *q) {
  if (q->class_mask && q->t[0]->shape[1] > FG_CPU_XENT_MASKED_MAX_K)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "a class mask over %lld classes (at most %d)", (long long)q->t[0]->shape[1],
                   FG_CPU_XENT_MASKED_MAX_K);
  return FG_OK;
}

int fg_cpu_count_bad_labels(const int32_t *y, int64_t n, int64_t k, fg_index_report *bad) {
  for (int64_t i = 0; i < n; i++) {
    if (y[i] >= 0 && y[i] < k) continue;
    if (bad->bad++ == 0) {
      bad->first = i;
      bad->value = y[i];
    }
  }
  return bad->bad > 0;
}

/* Sum over rows of logsumexp(z) - z[y], and the number of rows whose first argmax is y. */
static fg_cpu_partial xent_rows(const void *p, int64_t begin, int64_t end) {
  const xent_ctx *c = p;
  fg_cpu_partial r = {0.0, 0};
  float row[FG_CPU_XENT_MASKED_MAX_K];
  for (int64_t n = begin; n < end; n++) {
    const float *z = masked_row(c, n, row);
    const int32_t y = c->labels[n];
    int64_t arg = 0;
    for (int64_t j = 1; j < c->k; j++)
      if (z[j] > z[arg]) arg = j;
    const double zmax = z[arg];
    const double lse = zmax + row_log_sum_exp_shifted(z, c->k, zmax, 1.0);
    r.sum += lse - (double)z[y];
    r.count += arg == y;
    if (!c->dlogits) continue;
    float *g = c->dlogits + n * c->k;
    for (int64_t j = 0; j < c->k; j++) {
      double soft = exp((double)z[j] - lse);
      int kept = !c->mask || c->mask[j] != 0.0f;
      store_grad(&g[j], kept ? c->grad_scale * (soft - (j == y ? 1.0 : 0.0)) : 0.0, c->accumulate);
    }
  }
  return r;
}

static fg_status cpu_softmax_xent(fg_backend *b, const fg_tensor *logits, const fg_tensor *labels,
                                  const fg_tensor *class_mask, float weight, fg_tensor *dlogits,
                                  int accumulate, double *loss, int64_t *correct, fg_index_report *bad) {
  (void)b;
  const int64_t n = logits->shape[0], k = logits->shape[1];
  const int32_t *y = fg_i32(labels);
  if (fg_cpu_count_bad_labels(y, n, k, bad)) return FG_OK;
  xent_ctx c = {fg_f32(logits), y, class_mask ? fg_f32(class_mask) : NULL, k,
                dlogits ? fg_f32(dlogits) : NULL, (double)weight / (double)n, accumulate};
  fg_cpu_partial r = fg_cpu_reduce_blocks(n, rows_per_block(k), xent_rows, &c);
  *loss = (double)weight * r.sum / (double)n;
  if (correct) *correct = r.count;
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* KL distillation                                                                            */

/* Per row, with p = softmax(s / T), q0 = softmax(t / T), q = q0 + eps, r_j = log q_j - log p_j:
 *   L = sum_j q_j r_j
 *   dL/ds_j = (p_j Q - q_j) / T                    with Q = sum_j q_j
 *   dL/dt_j = q0_j (r_j - sum_i q0_i r_i) / T      (the "+1" of d(q log q)/dq cancels because
 *                                                    sum_i q0_i = 1)
 * and everything is multiplied by scale = weight * T^2 / (N or N*K). */
typedef struct kl_ctx {
  const float *student, *teacher;
  int64_t k;
  double inv_t, eps, scale;
  float *dstudent, *dteacher; /* NULL: not wanted */
  int accumulate;
} kl_ctx;

/* The shifts of one row: log p_j = (s_j - smax) inv_t - ls, log q0_j = (t_j - tmax) inv_t - lt. */
typedef struct kl_row {
  const float *s, *t;
  double smax, ls, tmax, lt;
} kl_row;

static double kl_log_p(const kl_ctx *c, const kl_row *w, int64_t j) {
  return ((double)w->s[j] - w->smax) * c->inv_t - w->ls;
}

static double kl_log_q0(const kl_ctx *c, const kl_row *w, int64_t j) {
  return ((double)w->t[j] - w->tmax) * c->inv_t - w->lt;
}

/* log q_j from log q0_j (exact when eps == 0, so underflowed q0 do not produce log 0). */
static double kl_log_q(const kl_ctx *c, double log_q0) {
  return c->eps == 0.0 ? log_q0 : log(exp(log_q0) + c->eps);
}

static fg_cpu_partial kl_rows(const void *p, int64_t begin, int64_t end) {
  const kl_ctx *c = p;
  const int64_t k = c->k;
  fg_cpu_partial r = {0.0, 0};
  for (int64_t n = begin; n < end; n++) {
    kl_row w;
    w.s = c->student + n * k;
    w.t = c->teacher + n * k;
    w.smax = row_max(w.s, k);
    w.tmax = row_max(w.t, k);
    w.ls = row_log_sum_exp_shifted(w.s, k, w.smax, c->inv_t);
    w.lt = row_log_sum_exp_shifted(w.t, k, w.tmax, c->inv_t);
    double row_loss = 0.0, q_total = 0.0, q0_r = 0.0;
    for (int64_t j = 0; j < k; j++) {
      double lq0 = kl_log_q0(c, &w, j), q0 = exp(lq0), q = q0 + c->eps;
      double rj = kl_log_q(c, lq0) - kl_log_p(c, &w, j);
      row_loss += q * rj;
      q_total += q;
      q0_r += q0 * rj;
    }
    r.sum += row_loss;
    const double g = c->scale * c->inv_t;
    if (c->dstudent) {
      float *ds = c->dstudent + n * k;
      for (int64_t j = 0; j < k; j++) {
        double lq0 = kl_log_q0(c, &w, j);
        double pj = exp(kl_log_p(c, &w, j)), qj = exp(lq0) + c->eps;
        store_grad(&ds[j], g * (pj * q_total - qj), c->accumulate);
      }
    }
    if (c->dteacher) {
      float *dt = c->dteacher + n * k;
      for (int64_t j = 0; j < k; j++) {
        double lq0 = kl_log_q0(c, &w, j), q0 = exp(lq0);
        double rj = kl_log_q(c, lq0) - kl_log_p(c, &w, j);
        store_grad(&dt[j], g * q0 * (rj - q0_r), c->accumulate);
      }
    }
  }
  return r;
}

static fg_status cpu_kl_div(fg_backend *b, const fg_kl_desc *d, const fg_tensor *student,
                            const fg_tensor *teacher, fg_tensor *dstudent, fg_tensor *dteacher,
                            int accumulate, double *loss) {
  (void)b;
  const int64_t n = student->shape[0], k = student->shape[1];
  const double t = d->temperature;
  const double divisor = d->reduction == FG_KL_BATCHMEAN ? (double)n : (double)n * (double)k;
  kl_ctx c;
  c.student = fg_f32(student);
  c.teacher = fg_f32(teacher);
  c.k = k;
  c.inv_t = 1.0 / t;
  c.eps = d->teacher_eps;
  c.scale = (double)d->weight * t * t / divisor;
  c.dstudent = dstudent ? fg_f32(dstudent) : NULL;
  c.dteacher = dteacher ? fg_f32(dteacher) : NULL;
  c.accumulate = accumulate;
  fg_cpu_partial r = fg_cpu_reduce_blocks(n, rows_per_block(k), kl_rows, &c);
  *loss = c.scale * r.sum;
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Mean squared error                                                                         */

enum { FG_CPU_MSE_BLOCK = 1 << 14 };

typedef struct mse_ctx {
  const float *y, *target;
  float *dy;         /* NULL: no gradient */
  double grad_scale; /* 2 weight / numel */
  int accumulate;
} mse_ctx;

static fg_cpu_partial mse_block(const void *p, int64_t begin, int64_t end) {
  const mse_ctx *c = p;
  fg_cpu_partial r = {0.0, 0};
  for (int64_t i = begin; i < end; i++) {
    double d = (double)c->y[i] - (double)c->target[i];
    r.sum += d * d;
    if (c->dy) store_grad(&c->dy[i], c->grad_scale * d, c->accumulate);
  }
  return r;
}

static fg_status cpu_mse(fg_backend *b, const fg_tensor *y, const fg_tensor *target, float weight,
                         fg_tensor *dy, int accumulate, double *loss) {
  (void)b;
  const int64_t n = fg_tensor_numel(y);
  mse_ctx c = {fg_f32(y), fg_f32(target), dy ? fg_f32(dy) : NULL, 2.0 * (double)weight / (double)n,
               accumulate};
  fg_cpu_partial r = fg_cpu_reduce_blocks(n, FG_CPU_MSE_BLOCK, mse_block, &c);
  *loss = (double)weight * r.sum / (double)n;
  return FG_OK;
}

void fg_cpu_register_loss_ops(fg_backend *b) {
  b->softmax_xent = cpu_softmax_xent;
  b->kl_div = cpu_kl_div;
  b->mse = cpu_mse;
}
