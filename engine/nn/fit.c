/* Epoch loops over dataset views: one batch loop, three actions. */
#include "engine/nn/fit.h"

#include <string.h>

#include "engine/base/killpoint.h"

fg_status fg_loader_alloc(fg_loader *l, fg_ledger *ledger, int64_t max_samples, int64_t batch, int64_t c,
                          int64_t h, int64_t w) {
  memset(l, 0, sizeof *l);
  if (max_samples < 0)
    return FG_FAIL(FG_ERR_INVALID, "loader: %lld samples (expected >= 0)", (long long)max_samples);
  FG_TRY(fg_region_alloc(&l->order, ledger, fg_host_device(), FG_MEM_DATA, (size_t)max_samples * sizeof(uint32_t),
                         "epoch order"));
  l->max_samples = max_samples;
  fg_status s = fg_host_batch_alloc(&l->batch, ledger, batch, c, h, w);
  if (s != FG_OK) fg_loader_free(l);
  return s;
}

void fg_loader_free(fg_loader *l) {
  fg_host_batch_free(&l->batch);
  fg_region_free(&l->order);
  memset(l, 0, sizeof *l);
}

/* What the loop does with each batch once it is in the trainer: batch k of `steps`, count
 * samples. */
typedef fg_status (*batch_action)(fg_trainer *t, int64_t k, int64_t steps, int64_t count, void *ctx);

/* A pass over positions 0 .. view->n-1 of `order` (NULL: in order), in batches of the trainer's
 * planned batch; `steps` batches (a final partial batch included when it is not dropped). */
typedef struct batch_pass {
  const fg_dataset_view *view;
  const uint32_t *order;
  const fg_normalize *norm;
  const fg_augment *aug; /* NULL: none */
  uint64_t aug_key;
  int64_t steps;
} batch_pass;

static fg_status batch_loop(fg_trainer *t, const fg_loader *ld, const batch_pass *p, batch_action act, void *ctx) {
  int64_t b = fg_trainer_plan(t)->opt.batch;
  if (b > ld->batch.capacity)
    return FG_FAIL(FG_ERR_INVALID, "fit: batches of %lld samples, the loader holds %lld", (long long)b,
                   (long long)ld->batch.capacity);
  for (int64_t k = 0; k < p->steps; k++) {
    int64_t start = k * b, count = p->view->n - start < b ? p->view->n - start : b;
    FG_TRY(fg_batch_fill(p->view, p->order, start, count, p->norm, p->aug, p->aug_key, &ld->batch));
    fg_tensor x = fg_host_batch_images(&ld->batch, count), y = fg_host_batch_labels(&ld->batch, count);
    FG_TRY(fg_trainer_set_batch(t, &x, &y));
    FG_TRY(act(t, k, p->steps, count, ctx));
  }
  return FG_OK;
}

/* Batches of a pass over n samples: a final partial batch is dropped when asked, unless it is the
 * only one (a view smaller than a batch still trains). */
static int64_t batches(int64_t n, int64_t b, int drop_last) { return drop_last && n >= b ? n / b : (n + b - 1) / b; }

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */

typedef struct train_ctx {
  fg_epoch_stats *out;
  fg_fit_progress progress;
  void *progress_ctx;
} train_ctx;

static fg_status train_batch(fg_trainer *t, int64_t k, int64_t steps, int64_t count, void *ctx) {
  train_ctx *c = ctx;
  fg_step_stats st;
  fg_killpoint("train_step");
  FG_TRY(fg_trainer_step(t, count, &st));
  fg_epoch_stats *acc = c->out;
  acc->loss_sum += st.loss * (double)count;
  acc->samples += count;
  acc->steps++;
  acc->n_outputs = st.n_outputs;
  for (int j = 0; j < st.n_outputs; j++) acc->correct[j] += st.correct[j];
  if (c->progress) c->progress(c->progress_ctx, k + 1, steps, acc);
  return FG_OK;
}

fg_status fg_fit_epoch(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                       const fg_fit_options *o, uint64_t epoch, fg_fit_progress progress, void *ctx,
                       fg_epoch_stats *out) {
  memset(out, 0, sizeof *out);
  if (view->n <= 0) return FG_FAIL(FG_ERR_INVALID, "fit: the dataset view is empty");
  if (view->n > ld->max_samples)
    return FG_FAIL(FG_ERR_INVALID, "fit: a view of %lld samples, the loader orders up to %lld", (long long)view->n,
                   (long long)ld->max_samples);
  uint32_t *order = ld->order.ptr;
  FG_TRY(fg_epoch_order((uint32_t)view->n, o->seed, epoch, o->stream, o->shuffle, order));
  int augment = o->aug.pad > 0 || o->aug.flip;
  batch_pass p = {view, order, &o->norm, augment ? &o->aug : NULL, fg_augment_key(o->seed, epoch, o->stream),
                  batches(view->n, fg_trainer_plan(t)->opt.batch, o->drop_last)};
  train_ctx c = {out, progress, ctx};
  return batch_loop(t, ld, &p, train_batch, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation and BN recalibration                                                             */

static fg_status eval_batch(fg_trainer *t, int64_t k, int64_t steps, int64_t count, void *ctx) {
  (void)k;
  (void)steps;
  fg_epoch_stats *out = ctx;
  fg_step_stats st;
  FG_TRY(fg_trainer_evaluate(t, count, &st));
  out->samples += count;
  out->steps++;
  out->n_outputs = st.n_outputs;
  out->ensemble_correct += st.ensemble_correct;
  for (int j = 0; j < st.n_outputs; j++) {
    out->correct[j] += st.correct[j];
    if (j == st.n_outputs - 1) out->loss_sum += st.output_loss[j] * (double)count;
  }
  return FG_OK;
}

fg_status fg_evaluate(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                      const fg_normalize *norm, fg_epoch_stats *out) {
  memset(out, 0, sizeof *out);
  batch_pass p = {view, NULL, norm, NULL, 0, batches(view->n, fg_trainer_plan(t)->opt.batch, 0)};
  return batch_loop(t, ld, &p, eval_batch, out);
}

static fg_status bn_stats_batch(fg_trainer *t, int64_t k, int64_t steps, int64_t count, void *ctx) {
  (void)steps;
  (void)ctx;
  fg_trainer_set_bn_momentum(t, 1.0f / (float)(k + 1));
  fg_step_stats st;
  return fg_trainer_step(t, count, &st);
}

fg_status fg_recalibrate_bn(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                            const fg_normalize *norm) {
  batch_pass p = {view, NULL, norm, NULL, 0, batches(view->n, fg_trainer_plan(t)->opt.batch, 0)};
  fg_status s = batch_loop(t, ld, &p, bn_stats_batch, NULL);
  fg_trainer_set_bn_momentum(t, 0.0f);
  return s;
}
