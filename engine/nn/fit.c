/* Epoch loops over dataset views. */
#include "engine/nn/fit.h"

#include <string.h>

static fg_status batch_input(fg_trainer *t, int64_t count, fg_tensor *x, fg_tensor *y) {
  fg_trainer_input(t, x, y);
  if (x->device.kind != FG_DEV_CPU)
    return FG_FAIL(FG_ERR_UNSUPPORTED, "fit: batches for a %s trainer need a host staging buffer",
                   fg_device_kind_name(x->device.kind));
  x->shape[0] = count;
  y->shape[0] = count;
  return FG_OK;
}

static void add_stats(fg_epoch_stats *acc, const fg_step_stats *st, int64_t n) {
  acc->loss_sum += st->loss * (double)n;
  acc->samples += n;
  acc->steps++;
  acc->n_outputs = st->n_outputs;
  for (int k = 0; k < st->n_outputs; k++) acc->correct[k] += st->correct[k];
}

fg_status fg_fit_epoch(fg_trainer *t, const fg_dataset_view *view, const fg_fit_options *o,
                       uint64_t epoch, uint32_t *order, fg_fit_progress progress, void *ctx,
                       fg_epoch_stats *out) {
  memset(out, 0, sizeof *out);
  int64_t b = fg_trainer_plan(t)->opt.batch;
  if (view->n <= 0) return FG_FAIL(FG_ERR_INVALID, "fit: the dataset view is empty");
  FG_TRY(fg_epoch_order((uint32_t)view->n, o->seed, epoch, o->stream, o->shuffle, order));
  int64_t steps = o->drop_last ? view->n / b : (view->n + b - 1) / b;
  uint64_t key = fg_augment_key(o->seed, epoch, o->stream);
  int augment = o->aug.pad > 0 || o->aug.flip;
  for (int64_t s = 0; s < steps; s++) {
    int64_t start = s * b, count = view->n - start < b ? view->n - start : b;
    fg_tensor x, y;
    FG_TRY(batch_input(t, count, &x, &y));
    FG_TRY(fg_batch_fill(view, order, start, &o->norm, augment ? &o->aug : NULL, key, &x, &y));
    fg_step_stats st;
    FG_TRY(fg_trainer_step(t, count, &st));
    add_stats(out, &st, count);
    if (progress) progress(ctx, s + 1, steps, out);
  }
  return FG_OK;
}

fg_status fg_evaluate(fg_trainer *t, const fg_dataset_view *view, const fg_normalize *norm,
                      fg_epoch_stats *out) {
  memset(out, 0, sizeof *out);
  int64_t b = fg_trainer_plan(t)->opt.batch;
  for (int64_t start = 0; start < view->n; start += b) {
    int64_t count = view->n - start < b ? view->n - start : b;
    fg_tensor x, y;
    FG_TRY(batch_input(t, count, &x, &y));
    FG_TRY(fg_batch_fill(view, NULL, start, norm, NULL, 0, &x, &y));
    fg_step_stats st;
    FG_TRY(fg_trainer_evaluate(t, count, &st));
    out->samples += count;
    out->steps++;
    out->n_outputs = st.n_outputs;
    out->ensemble_correct += st.ensemble_correct;
    for (int k = 0; k < st.n_outputs; k++) {
      out->correct[k] += st.correct[k];
      if (k == st.n_outputs - 1) out->loss_sum += st.output_loss[k] * (double)count;
    }
  }
  return FG_OK;
}
