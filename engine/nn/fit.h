/* Epoch loops: train a trainer over a dataset view batch by batch, or evaluate it.
 *
 * The same loop serves centralised training (`fedgap train`) and every federated client's
 * local training, so one seed gives one data order: epoch e of stream s (a client id, 0 for
 * centralised) shuffles with (seed, shuffle, e, s) and augments with (seed, augment, e, s).
 * Batches are written straight into the trainer's input tensors (CPU trainers). Owns nothing;
 * the caller passes an order buffer of view->n entries. */
#ifndef FG_FIT_H
#define FG_FIT_H

#include <stdint.h>

#include "engine/data/dataset.h"
#include "engine/nn/trainer.h"

typedef struct fg_fit_options {
  fg_normalize norm;
  fg_augment aug;     /* pad 0, flip 0: none */
  uint64_t seed;
  uint64_t stream;    /* client id; 0 centralised */
  int shuffle;        /* 1: shuffle every epoch */
  int drop_last;      /* 1: skip a final partial batch */
} fg_fit_options;

typedef struct fg_epoch_stats {
  double loss_sum;                 /* sum over batches of (batch loss x batch size) */
  int64_t samples;
  int64_t steps;
  int64_t correct[FG_MAX_OUTPUTS]; /* per output */
  int n_outputs;
  int64_t ensemble_correct;        /* evaluation with several outputs: the mean of their logits */
} fg_epoch_stats;

/* Called after every step with the steps done so far and the epoch's total; may be NULL. */
typedef void (*fg_fit_progress)(void *ctx, int64_t step, int64_t steps, const fg_epoch_stats *so_far);

/* One epoch. order: [view->n] scratch. Fails on the first failing step (e.g. a NaN loss). */
fg_status fg_fit_epoch(fg_trainer *t, const fg_dataset_view *view, const fg_fit_options *o,
                       uint64_t epoch, uint32_t *order, fg_fit_progress progress, void *ctx,
                       fg_epoch_stats *out);

/* Inference over the whole view in order, batch by batch (BN running statistics, no dropout):
 * per-output summed loss and hits. */
fg_status fg_evaluate(fg_trainer *t, const fg_dataset_view *view, const fg_normalize *norm,
                      fg_epoch_stats *out);

#endif
