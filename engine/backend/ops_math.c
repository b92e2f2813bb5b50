/* Validating entry points of engine/backend/ops.h for batch norm, elementwise ops, dropout,
 * losses, optimizers and reductions. Each checks ranks, extents, dtypes, devices and scalar
 * values, records a message naming the op and the offending argument, then dispatches to the
 * backend of the device the tensors live on (FG_ERR_UNSUPPORTED when its entry is NULL).
 * Index data only the backend can read (labels in [0, K)) is checked through the backend's
 * fg_index_report, turned into a status here. The scalar
 * results of the losses (loss, and for softmax_xent the optional correct count) are host
 * pointers; `loss` is required. */
#include <math.h>
#include <stdio.h>

#include "engine/backend/ops.h"
#include "engine/backend/ops_check.h"

/* ----------------------------------------------------------------------------------------- */
/* Local helpers                                                                              */

#define FG_ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* An f32 tensor of any rank (1..4). */
static fg_status check_f32(const char *op, const char *arg, const fg_tensor *t) {
  return fg_check_tensor(op, arg, t, FG_F32, 1, FG_MAX_DIMS);
}

/* An f32 tensor of any rank whose element count is `numel`. */
static fg_status check_f32_numel(const char *op, const char *arg, const fg_tensor *t,
                                 int64_t numel) {
  FG_TRY(check_f32(op, arg, t));
  return fg_check_numel(op, arg, t, numel);
}

/* An f32 tensor with the same rank and extents as `ref` (named ref_arg). */
static fg_status check_f32_like(const char *op, const char *arg, const fg_tensor *t,
                                const char *ref_arg, const fg_tensor *ref) {
  FG_TRY(check_f32(op, arg, t));
  return fg_check_same_shape(op, arg, t, ref_arg, ref);
}

/* An f32 vector [C]. */
static fg_status check_channel_vector(const char *op, const char *arg, const fg_tensor *t,
                                      int64_t channels) {
  FG_TRY(fg_check_tensor(op, arg, t, FG_F32, 1, 1));
  return fg_check_extent(op, arg, t, 0, channels);
}

/* A finite float. */
static fg_status check_finite(const char *op, const char *name, double v) {
  if (!isfinite(v))
    return FG_FAIL(FG_ERR_INVALID, "%s: %s is %g, expected a finite value", op, name, v);
  return FG_OK;
}

/* lo <= v <= hi (NaN fails). */
static fg_status check_closed_range(const char *op, const char *name, double v, double lo,
                                    double hi) {
  if (!(v >= lo && v <= hi))
    return FG_FAIL(FG_ERR_INVALID, "%s: %s is %g, expected %g <= %s <= %g", op, name, v, lo, name,
                   hi);
  return FG_OK;
}

/* 0 <= v < 1 (NaN fails). */
static fg_status check_unit_half_open(const char *op, const char *name, double v) {
  if (!(v >= 0.0 && v < 1.0))
    return FG_FAIL(FG_ERR_INVALID, "%s: %s is %g, expected 0 <= %s < 1", op, name, v, name);
  return FG_OK;
}

/* v >= 0 and finite. */
static fg_status check_non_negative(const char *op, const char *name, double v) {
  if (!(v >= 0.0) || !isfinite(v))
    return FG_FAIL(FG_ERR_INVALID, "%s: %s is %g, expected a finite value >= 0", op, name, v);
  return FG_OK;
}

static fg_status check_host_out(const char *op, const char *name, const void *p) {
  if (!p) return FG_FAIL(FG_ERR_INVALID, "%s: %s (host output) is missing", op, name);
  return FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* Batch norm                                                                                 */

/* x [N,C,H,W] or [N,C]; sets *channels = C and *count = N*H*W. */
static fg_status check_bn_input(const char *op, const char *arg, const fg_tensor *x,
                                int64_t *channels, int64_t *count) {
  FG_TRY(fg_check_tensor(op, arg, x, FG_F32, 2, 4));
  if (x->ndim == 3) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s, expected [N,C,H,W] or [N,C]", op, arg,
                   fg_shape_str(x, buf, sizeof buf));
  }
  *channels = x->shape[1];
  *count = fg_tensor_numel(x) / (x->shape[1] > 0 ? x->shape[1] : 1);
  return FG_OK;
}

static fg_status check_bn_scalars(const char *op, float momentum, float eps) {
  FG_TRY(check_closed_range(op, "momentum", momentum, 0.0, 1.0));
  return check_non_negative(op, "eps", eps);
}

/* x and the tensor shaped like it (`like`: y or dy), gamma and beta (when not NULL) [C]; sets
 * *channels and *count as check_bn_input. */
static fg_status check_bn_common(const char *op, const fg_tensor *x, const char *like_name, const fg_tensor *like,
                                 const fg_tensor *gamma, const fg_tensor *beta, int64_t *channels, int64_t *count) {
  FG_TRY(check_bn_input(op, "x", x, channels, count));
  FG_TRY(check_f32_like(op, like_name, like, "x", x));
  FG_TRY(check_channel_vector(op, "gamma", gamma, *channels));
  return beta ? check_channel_vector(op, "beta", beta, *channels) : FG_OK;
}

fg_status fg_bn_forward_train(const fg_tensor *x, const fg_tensor *gamma, const fg_tensor *beta,
                              fg_tensor *y, fg_tensor *save_mean, fg_tensor *save_invstd,
                              fg_tensor *running_mean, fg_tensor *running_var, float momentum,
                              float eps) {
  const char *op = fg_op_name(FG_OP_BN_FORWARD_TRAIN);
  int64_t c = 0, count = 0;
  FG_TRY(check_bn_common(op, x, "y", y, gamma, beta, &c, &count));
  FG_TRY(check_channel_vector(op, "save_mean", save_mean, c));
  FG_TRY(check_channel_vector(op, "save_invstd", save_invstd, c));
  if ((running_mean == NULL) != (running_var == NULL))
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: running_mean and running_var must both be given or both be NULL", op);
  if (running_mean) {
    FG_TRY(check_channel_vector(op, "running_mean", running_mean, c));
    FG_TRY(check_channel_vector(op, "running_var", running_var, c));
  }
  FG_TRY(check_bn_scalars(op, momentum, eps));
  if (count < 2)
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: batch norm needs more than one value per channel (got %lld = N*H*W)", op,
                   (long long)count);
  fg_backend *b;
  const fg_tensor *ts[] = {x, gamma, beta, y, save_mean, save_invstd, running_mean, running_var};
  FG_TRY(fg_op_prepare_op(FG_OP_BN_FORWARD_TRAIN, ts, FG_ARRAY_LEN(ts), &b));
  return b->bn_forward_train(b, x, gamma, beta, y, save_mean, save_invstd, running_mean,
                             running_var, momentum, eps);
}

fg_status fg_bn_forward_eval(const fg_tensor *x, const fg_tensor *gamma, const fg_tensor *beta,
                             const fg_tensor *running_mean, const fg_tensor *running_var, float eps,
                             fg_tensor *y) {
  const char *op = fg_op_name(FG_OP_BN_FORWARD_EVAL);
  int64_t c = 0, count = 0;
  FG_TRY(check_bn_common(op, x, "y", y, gamma, beta, &c, &count));
  FG_TRY(check_channel_vector(op, "running_mean", running_mean, c));
  FG_TRY(check_channel_vector(op, "running_var", running_var, c));
  FG_TRY(check_non_negative(op, "eps", eps));
  fg_backend *b;
  const fg_tensor *ts[] = {x, gamma, beta, running_mean, running_var, y};
  FG_TRY(fg_op_prepare_op(FG_OP_BN_FORWARD_EVAL, ts, FG_ARRAY_LEN(ts), &b));
  return b->bn_forward_eval(b, x, gamma, beta, running_mean, running_var, eps, y);
}

fg_status fg_bn_backward(const fg_tensor *dy, const fg_tensor *x, const fg_tensor *gamma,
                         const fg_tensor *save_mean, const fg_tensor *save_invstd, fg_tensor *dx,
                         fg_tensor *dgamma, fg_tensor *dbeta, int accumulate) {
  const char *op = fg_op_name(FG_OP_BN_BACKWARD);
  int64_t c = 0, count = 0;
  FG_TRY(check_bn_common(op, x, "dy", dy, gamma, NULL, &c, &count));
  FG_TRY(check_channel_vector(op, "save_mean", save_mean, c));
  FG_TRY(check_channel_vector(op, "save_invstd", save_invstd, c));
  if (dx) FG_TRY(check_f32_like(op, "dx", dx, "x", x));
  if (dgamma) FG_TRY(check_channel_vector(op, "dgamma", dgamma, c));
  if (dbeta) FG_TRY(check_channel_vector(op, "dbeta", dbeta, c));
  fg_backend *b;
  const fg_tensor *ts[] = {dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta};
  FG_TRY(fg_op_prepare_op(FG_OP_BN_BACKWARD, ts, FG_ARRAY_LEN(ts), &b));
  return b->bn_backward(b, dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, accumulate);
}

/* ----------------------------------------------------------------------------------------- */
/* Elementwise                                                                                */

/* One elementwise call: f32 tensors in[0..n_in) (named names[0..n_in)) and out (named
 * names[n_in]), all with in[0]'s element count; the scalars each op takes. */
typedef struct elementwise_call {
  fg_op op;
  const char *names[3];
  const fg_tensor *in[2];
  int n_in;
  fg_tensor *out;
  float alpha;    /* axpy, scale: finite */
  float p;        /* dropout: 0 <= p < 1 */
  uint64_t key;   /* dropout */
  int accumulate; /* relu_backward, dropout_backward, sigmoid_backward, mul */
} elementwise_call;

static fg_status elementwise(const elementwise_call *c) {
  const char *op = fg_op_name(c->op);
  const int64_t n = c->n_in ? fg_tensor_numel(c->in[0]) : 0;
  for (int i = 0; i < c->n_in; i++)
    FG_TRY(i == 0 ? check_f32(op, c->names[0], c->in[0]) : check_f32_numel(op, c->names[i], c->in[i], n));
  FG_TRY(c->n_in ? check_f32_numel(op, c->names[c->n_in], c->out, n) : check_f32(op, c->names[0], c->out));
  if (c->op == FG_OP_AXPY || c->op == FG_OP_SCALE) FG_TRY(check_finite(op, "alpha", c->alpha));
  if (c->op == FG_OP_DROPOUT_FORWARD || c->op == FG_OP_DROPOUT_BACKWARD)
    FG_TRY(check_unit_half_open(op, "p", c->p));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(c->op, (const fg_tensor *[]){c->in[0], c->in[1], c->out}, 3, &b));
  const fg_tensor *x = c->in[0];
  switch (c->op) {
    case FG_OP_RELU_FORWARD: return b->relu_forward(b, x, c->out);
    case FG_OP_RELU_BACKWARD: return b->relu_backward(b, x, c->in[1], c->out, c->accumulate);
    case FG_OP_ADD: return b->add(b, x, c->in[1], c->out);
    case FG_OP_AXPY: return b->axpy(b, c->alpha, x, c->out);
    case FG_OP_SCALE: return b->scale(b, c->alpha, x, c->out);
    case FG_OP_COPY: return b->copy_tensor(b, x, c->out);
    case FG_OP_FILL: return b->fill(b, c->out, c->alpha);
    case FG_OP_DROPOUT_FORWARD: return b->dropout_forward(b, x, c->out, c->p, c->key);
    case FG_OP_DROPOUT_BACKWARD: return b->dropout_backward(b, x, c->out, c->p, c->key, c->accumulate);
    case FG_OP_SIGMOID_FORWARD: return b->sigmoid_forward(b, x, c->out);
    case FG_OP_SIGMOID_BACKWARD: return b->sigmoid_backward(b, x, c->in[1], c->out, c->accumulate);
    case FG_OP_MUL: return b->mul(b, x, c->in[1], c->out, c->accumulate);
    default: break;
  }
  return FG_FAIL(FG_ERR_INTERNAL, "%s is not an elementwise op", op);
}

fg_status fg_relu_forward(const fg_tensor *x, fg_tensor *y) {
  return elementwise(
      &(elementwise_call){.op = FG_OP_RELU_FORWARD, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y});
}

fg_status fg_relu_backward(const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  return elementwise(&(elementwise_call){.op = FG_OP_RELU_BACKWARD,
                                         .names = {"y", "dy", "dx"},
                                         .in = {y, dy},
                                         .n_in = 2,
                                         .out = dx,
                                         .accumulate = accumulate});
}

fg_status fg_add(const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y) {
  return elementwise(
      &(elementwise_call){.op = FG_OP_ADD, .names = {"x1", "x2", "y"}, .in = {x1, x2}, .n_in = 2, .out = y});
}

fg_status fg_axpy(float alpha, const fg_tensor *x, fg_tensor *y) {
  return elementwise(
      &(elementwise_call){.op = FG_OP_AXPY, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y, .alpha = alpha});
}

fg_status fg_scale(float alpha, const fg_tensor *x, fg_tensor *y) {
  return elementwise(
      &(elementwise_call){.op = FG_OP_SCALE, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y, .alpha = alpha});
}

fg_status fg_copy(const fg_tensor *x, fg_tensor *y) {
  return elementwise(&(elementwise_call){.op = FG_OP_COPY, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y});
}

fg_status fg_fill(fg_tensor *y, float value) {
  return elementwise(&(elementwise_call){.op = FG_OP_FILL, .names = {"y"}, .out = y, .alpha = value});
}

fg_status fg_dropout_forward(const fg_tensor *x, fg_tensor *y, float p, uint64_t key) {
  return elementwise(&(elementwise_call){
      .op = FG_OP_DROPOUT_FORWARD, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y, .p = p, .key = key});
}

fg_status fg_dropout_backward(const fg_tensor *dy, fg_tensor *dx, float p, uint64_t key, int accumulate) {
  return elementwise(&(elementwise_call){.op = FG_OP_DROPOUT_BACKWARD,
                                         .names = {"dy", "dx"},
                                         .in = {dy},
                                         .n_in = 1,
                                         .out = dx,
                                         .p = p,
                                         .key = key,
                                         .accumulate = accumulate});
}

fg_status fg_sigmoid_forward(const fg_tensor *x, fg_tensor *y) {
  return elementwise(
      &(elementwise_call){.op = FG_OP_SIGMOID_FORWARD, .names = {"x", "y"}, .in = {x}, .n_in = 1, .out = y});
}

fg_status fg_sigmoid_backward(const fg_tensor *y, const fg_tensor *dy, fg_tensor *dx, int accumulate) {
  return elementwise(&(elementwise_call){.op = FG_OP_SIGMOID_BACKWARD,
                                         .names = {"y", "dy", "dx"},
                                         .in = {y, dy},
                                         .n_in = 2,
                                         .out = dx,
                                         .accumulate = accumulate});
}

fg_status fg_mul(const fg_tensor *x1, const fg_tensor *x2, fg_tensor *y, int accumulate) {
  return elementwise(&(elementwise_call){
      .op = FG_OP_MUL, .names = {"x1", "x2", "y"}, .in = {x1, x2}, .n_in = 2, .out = y, .accumulate = accumulate});
}

/* ----------------------------------------------------------------------------------------- */
/* Losses                                                                                     */

/* logits-like [N,K] with N >= 1 and K >= 1. */
static fg_status check_rows(const char *op, const char *arg, const fg_tensor *t) {
  FG_TRY(fg_check_tensor(op, arg, t, FG_F32, 2, 2));
  if (t->shape[0] < 1 || t->shape[1] < 1) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s, expected at least one row and one class", op,
                   arg, fg_shape_str(t, buf, sizeof buf));
  }
  return FG_OK;
}

fg_status fg_softmax_xent(const fg_tensor *logits, const fg_tensor *labels, const fg_tensor *class_mask,
                          float weight, fg_tensor *dlogits, int accumulate, double *loss,
                          int64_t *correct) {
  const char *op = fg_op_name(FG_OP_SOFTMAX_XENT);
  FG_TRY(check_rows(op, "logits", logits));
  FG_TRY(fg_check_tensor(op, "labels", labels, FG_I32, 1, 1));
  FG_TRY(fg_check_extent(op, "labels", labels, 0, logits->shape[0]));
  if (class_mask) {
    FG_TRY(fg_check_tensor(op, "class_mask", class_mask, FG_F32, 1, 1));
    FG_TRY(fg_check_extent(op, "class_mask", class_mask, 0, logits->shape[1]));
  }
  if (dlogits) FG_TRY(check_f32_like(op, "dlogits", dlogits, "logits", logits));
  FG_TRY(check_finite(op, "weight", weight));
  FG_TRY(check_host_out(op, "loss", loss));
  fg_backend *b;
  fg_op_query q = {.op = FG_OP_SOFTMAX_XENT, .t = {logits, NULL}, .class_mask = class_mask != NULL};
  FG_TRY(fg_op_prepare(&q, (const fg_tensor *[]){logits, labels, class_mask, dlogits}, 4, &b));
  fg_index_report bad = {0, 0, 0};
  FG_TRY(b->softmax_xent(b, logits, labels, class_mask, weight, dlogits, accumulate, loss, correct, &bad));
  char range[48];
  snprintf(range, sizeof range, "0..%lld", (long long)logits->shape[1] - 1);
  return fg_index_report_status(op, &bad, "labels", range, "row");
}

fg_status fg_kl_div(const fg_kl_desc *d, const fg_tensor *student, const fg_tensor *teacher,
                    fg_tensor *dstudent, fg_tensor *dteacher, int accumulate, double *loss) {
  const char *op = fg_op_name(FG_OP_KL_DIV);
  if (!d) return FG_FAIL(FG_ERR_INVALID, "%s: descriptor is missing", op);
  FG_TRY(check_rows(op, "student", student));
  FG_TRY(check_f32_like(op, "teacher", teacher, "student", student));
  if (dstudent) FG_TRY(check_f32_like(op, "dstudent", dstudent, "student", student));
  if (dteacher) FG_TRY(check_f32_like(op, "dteacher", dteacher, "student", student));
  if (!(d->temperature > 0.0f) || !isfinite(d->temperature))
    return FG_FAIL(FG_ERR_INVALID, "%s: temperature is %g, expected a finite value > 0", op,
                   (double)d->temperature);
  FG_TRY(check_non_negative(op, "teacher_eps", d->teacher_eps));
  if (d->reduction != FG_KL_BATCHMEAN && d->reduction != FG_KL_ELEMENTWISE_MEAN)
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: reduction is %d, expected FG_KL_BATCHMEAN or "
                   "FG_KL_ELEMENTWISE_MEAN",
                   op, (int)d->reduction);
  FG_TRY(check_finite(op, "weight", d->weight));
  FG_TRY(check_host_out(op, "loss", loss));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_KL_DIV, (const fg_tensor *[]){student, teacher, dstudent, dteacher}, 4, &b));
  return b->kl_div(b, d, student, teacher, dstudent, dteacher, accumulate, loss);
}

fg_status fg_mse(const fg_tensor *y, const fg_tensor *target, float weight, fg_tensor *dy,
                 int accumulate, double *loss) {
  const char *op = fg_op_name(FG_OP_MSE);
  FG_TRY(check_f32(op, "y", y));
  int64_t n = fg_tensor_numel(y);
  if (n < 1) return FG_FAIL(FG_ERR_SHAPE, "%s: y has no elements", op);
  FG_TRY(check_f32_numel(op, "target", target, n));
  if (dy) FG_TRY(check_f32_numel(op, "dy", dy, n));
  FG_TRY(check_finite(op, "weight", weight));
  FG_TRY(check_host_out(op, "loss", loss));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_MSE, (const fg_tensor *[]){y, target, dy}, 3, &b));
  return b->mse(b, y, target, weight, dy, accumulate, loss);
}

/* A batch of m >= 2 rows with at least one value each: [m, ...]. */
static fg_status check_batch_rows(const char *op, const char *arg, const fg_tensor *t) {
  FG_TRY(fg_check_tensor(op, arg, t, FG_F32, 1, FG_MAX_DIMS));
  if (t->shape[0] < 2 || fg_tensor_numel(t) < t->shape[0]) {
    char buf[64];
    return FG_FAIL(FG_ERR_SHAPE, "%s: %s has shape %s, expected at least 2 rows of at least one value", op, arg,
                   fg_shape_str(t, buf, sizeof buf));
  }
  return FG_OK;
}

/* The workspace the backend needs for m rows; a backend that runs nhsic answers this query. */
static fg_status nhsic_workspace(const char *op, fg_backend *b, int64_t m, size_t *bytes) {
  *bytes = 0;
  if (!b->nhsic_workspace)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "nhsic_workspace: not supported by the %s backend", b->name);
  fg_status s = b->nhsic_workspace(b, m, bytes);
  if (s != FG_OK) fg_error_prefix("%s", op);
  return s;
}

fg_status fg_nhsic_workspace(fg_device device, int64_t m, size_t *bytes) {
  const char *op = "nhsic_workspace";
  FG_TRY(check_host_out(op, "bytes", bytes));
  if (m < 2 || m > (1 << 16))
    return FG_FAIL(FG_ERR_INVALID, "%s: %lld rows, expected 2..%d", op, (long long)m, 1 << 16);
  fg_backend *b = fg_backend_for(device);
  if (!b) return fg_last_status();
  return nhsic_workspace(op, b, m, bytes);
}

fg_status fg_nhsic(const fg_nhsic_desc *d, const fg_tensor *z, const fg_tensor *x, const fg_tensor *labels,
                   float weight, fg_tensor *dz, int accumulate, fg_workspace ws, double *value) {
  const char *op = fg_op_name(FG_OP_NHSIC);
  if (!d) return FG_FAIL(FG_ERR_INVALID, "%s: descriptor is missing", op);
  FG_TRY(check_batch_rows(op, "z", z));
  int64_t m = z->shape[0];
  if (x) {
    FG_TRY(check_batch_rows(op, "x", x));
    FG_TRY(fg_check_extent(op, "x", x, 0, m));
  } else {
    if (!labels) return FG_FAIL(FG_ERR_INVALID, "%s: neither a feature target x nor labels were given", op);
    FG_TRY(fg_check_tensor(op, "labels", labels, FG_I32, 1, 1));
    FG_TRY(fg_check_extent(op, "labels", labels, 0, m));
    if (d->classes < 2)
      return FG_FAIL(FG_ERR_INVALID, "%s: %d classes for a label target, expected >= 2", op, d->classes);
  }
  if (dz) FG_TRY(check_f32_like(op, "dz", dz, "z", z));
  if (!(d->sigma > 0.0f) || !isfinite(d->sigma))
    return FG_FAIL(FG_ERR_INVALID, "%s: sigma is %g, expected a finite value > 0", op, (double)d->sigma);
  FG_TRY(check_finite(op, "weight", weight));
  FG_TRY(check_host_out(op, "value", value));
  fg_backend *b;
  fg_op_query q = {.op = FG_OP_NHSIC, .t = {z, NULL}};
  FG_TRY(fg_op_prepare(&q, (const fg_tensor *[]){z, x, x ? NULL : labels, dz}, 4, &b));
  size_t need = 0;
  FG_TRY(nhsic_workspace(op, b, m, &need));
  FG_TRY(fg_check_workspace(op, ws, need));
  fg_index_report bad = {0, 0, 0};
  FG_TRY(b->nhsic(b, d, z, x, labels, weight, dz, accumulate, ws, value, &bad));
  char range[48];
  snprintf(range, sizeof range, "0..%d", d->classes - 1);
  return fg_index_report_status(op, &bad, "labels", range, "row");
}

/* ----------------------------------------------------------------------------------------- */
/* Optimizers                                                                                 */

static fg_status check_sgd_hparams(const char *op, const fg_sgd_hparams *h) {
  if (!h) return FG_FAIL(FG_ERR_INVALID, "%s: hyper-parameters are missing", op);
  FG_TRY(check_non_negative(op, "lr", h->lr));
  FG_TRY(check_closed_range(op, "momentum", h->momentum, 0.0, 1.0));
  FG_TRY(check_non_negative(op, "weight_decay", h->weight_decay));
  FG_TRY(check_closed_range(op, "dampening", h->dampening, 0.0, 1.0));
  if (h->nesterov && (h->momentum <= 0.0f || h->dampening != 0.0f))
    return FG_FAIL(FG_ERR_INVALID,
                   "%s: nesterov needs momentum > 0 and dampening 0 (got momentum "
                   "%g, dampening %g)",
                   op, (double)h->momentum, (double)h->dampening);
  return FG_OK;
}

static fg_status check_adam_hparams(const char *op, const fg_adam_hparams *h, int64_t step) {
  if (!h) return FG_FAIL(FG_ERR_INVALID, "%s: hyper-parameters are missing", op);
  FG_TRY(check_non_negative(op, "lr", h->lr));
  FG_TRY(check_unit_half_open(op, "beta1", h->beta1));
  FG_TRY(check_unit_half_open(op, "beta2", h->beta2));
  FG_TRY(check_non_negative(op, "eps", h->eps));
  FG_TRY(check_non_negative(op, "weight_decay", h->weight_decay));
  if (step < 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: step is %lld, expected step >= 1 (1-based)", op, (long long)step);
  return FG_OK;
}

/* The tensors of a group with `states` state tensors each, all on one device whose backend runs
 * `op`. names: the argument names of a single tensor ("param", "grad", the states'); a group of
 * more than one names tensor i "param[i]", .... */
static fg_status group_prepare(fg_op op, const fg_param_group *g, int states, const char *const names[4],
                               fg_backend **out) {
  const char *name = fg_op_name(op);
  if (!g || g->count < 0 || (g->count > 0 && (!g->param || !g->grad)))
    return FG_FAIL(FG_ERR_INVALID, "%s: the parameter group is missing or malformed", name);
  if (g->count == 0) return FG_FAIL(FG_ERR_INVALID, "%s: the parameter group is empty", name);
  for (int s = 0; s < states; s++)
    if (!g->state[s]) return FG_FAIL(FG_ERR_INVALID, "%s: %s is missing", name, names[2 + s]);
  for (int i = 0; i < g->count; i++) {
    char arg[4][48];
    const fg_tensor *ts[4] = {g->param[i], g->grad[i], states > 0 ? g->state[0][i] : NULL,
                              states > 1 ? g->state[1][i] : NULL};
    for (int k = 0; k < 2 + states; k++)
      snprintf(arg[k], sizeof arg[k], g->count > 1 ? "%s[%d]" : "%s", names[k], i);
    FG_TRY(check_f32(name, arg[0], ts[0]));
    for (int k = 1; k < 2 + states; k++) FG_TRY(check_f32_numel(name, arg[k], ts[k], fg_tensor_numel(ts[0])));
    fg_backend *b;
    FG_TRY(fg_op_prepare_op(op, ts, 2 + states, &b));
    if (i > 0 && b != *out)
      return FG_FAIL(FG_ERR_INVALID, "%s: the group's tensors live on different devices", name);
    *out = b;
  }
  return FG_OK;
}

static const char *const sgd_names[4] = {"param", "grad", "momentum_buf", NULL};
static const char *const adam_names[4] = {"param", "grad", "m", "v"};

fg_status fg_sgd_step_group(const fg_sgd_hparams *h, const fg_param_group *g) {
  const char *op = fg_op_name(FG_OP_SGD_STEP);
  FG_TRY(check_sgd_hparams(op, h));
  const int states = h->momentum != 0.0f ? 1 : 0;
  for (int i = 0; states && g && i < g->count; i++)
    if (!g->state[0] || !g->state[0][i])
      return FG_FAIL(FG_ERR_INVALID, "%s: momentum_buf of tensor %d is missing but momentum is %g", op, i,
                     (double)h->momentum);
  fg_backend *b = NULL;
  FG_TRY(group_prepare(FG_OP_SGD_STEP, g, states, sgd_names, &b));
  return b->sgd_step(b, h, g);
}

fg_status fg_adam_step_group(const fg_adam_hparams *h, int64_t step, const fg_param_group *g) {
  FG_TRY(check_adam_hparams(fg_op_name(FG_OP_ADAM_STEP), h, step));
  fg_backend *b = NULL;
  FG_TRY(group_prepare(FG_OP_ADAM_STEP, g, 2, adam_names, &b));
  return b->adam_step(b, h, step, g);
}

fg_status fg_sgd_step(const fg_sgd_hparams *h, fg_tensor *param, const fg_tensor *grad,
                      fg_tensor *momentum_buf) {
  fg_tensor *const params[1] = {param}, *const bufs[1] = {momentum_buf};
  const fg_tensor *const grads[1] = {grad};
  const fg_param_group g = {1, params, grads, {momentum_buf ? bufs : NULL, NULL}};
  return fg_sgd_step_group(h, &g);
}

fg_status fg_adam_step(const fg_adam_hparams *h, int64_t step, fg_tensor *param,
                       const fg_tensor *grad, fg_tensor *m, fg_tensor *v) {
  fg_tensor *const params[1] = {param}, *const ms[1] = {m}, *const vs[1] = {v};
  const fg_tensor *const grads[1] = {grad};
  const fg_param_group g = {1, params, grads, {ms, vs}};
  return fg_adam_step_group(h, step, &g);
}

/* ----------------------------------------------------------------------------------------- */
/* Reductions                                                                                 */

fg_status fg_sum_squares(const fg_tensor *x, double *out) {
  const char *op = fg_op_name(FG_OP_SUM_SQUARES);
  FG_TRY(check_f32(op, "x", x));
  FG_TRY(check_host_out(op, "out", out));
  fg_backend *b;
  FG_TRY(fg_op_prepare_op(FG_OP_SUM_SQUARES, (const fg_tensor *[]){x}, 1, &b));
  return b->sum_squares(b, x, out);
}
