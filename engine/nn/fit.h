/* Epoch loops: train a trainer over a dataset view batch by batch, evaluate it, or recompute its
 * BN statistics.
 *
 * One batch loop serves all three, for centralised training (`fedgap train`), every federated
 * client's local training and the server's evaluation, so one seed gives one data order: epoch e
 * of stream s (a client id, 0 for centralised) shuffles with (seed, shuffle, e, s) and augments
 * with (seed, augment, e, s). Batches are assembled in a host batch the caller's loader owns and
 * copied into the trainer (fg_trainer_set_batch), whatever device it runs on. Owns nothing. */
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
  int drop_last;      /* 1: skip a final partial batch, unless it is the only batch */
} fg_fit_options;

typedef struct fg_epoch_stats {
  double loss_sum;                 /* sum over batches of (batch loss x batch size) */
  int64_t samples;
  int64_t steps;
  int64_t correct[FG_MAX_OUTPUTS]; /* per output */
  int n_outputs;
  int64_t ensemble_correct;        /* evaluation with several outputs: the mean of their logits */
} fg_epoch_stats;

/* The host scratch of the loops: the epoch order (max_samples positions; 0 for loops that never
 * shuffle: evaluation, BN recalibration) and one host batch. Owns its regions. */
typedef struct fg_loader {
  fg_region order;       /* u32 [max_samples] */
  int64_t max_samples;
  fg_host_batch batch;
} fg_loader;

/* Allocates a loader for views of up to max_samples samples (>= 0) and batches of up to `batch`
 * samples of c x h x w, in host regions charged to `ledger` (category data). */
fg_status fg_loader_alloc(fg_loader *l, fg_ledger *ledger, int64_t max_samples, int64_t batch, int64_t c,
                          int64_t h, int64_t w);
void fg_loader_free(fg_loader *l);

/* Called after every step with the steps done so far and the epoch's total; may be NULL. */
typedef void (*fg_fit_progress)(void *ctx, int64_t step, int64_t steps, const fg_epoch_stats *so_far);

/* One epoch (view->n <= the loader's max_samples; batches of the trainer's planned batch, at most
 * the loader's). Fails on the first failing step (e.g. a NaN loss). */
fg_status fg_fit_epoch(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                       const fg_fit_options *o, uint64_t epoch, fg_fit_progress progress, void *ctx,
                       fg_epoch_stats *out);

/* Inference over the whole view in order, batch by batch (BN running statistics, no dropout):
 * per-output summed loss and hits. */
fg_status fg_evaluate(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                      const fg_normalize *norm, fg_epoch_stats *out);

/* BN running statistics recomputed over the whole view in order: a training step per batch with
 * every BN momentum at 1/(k+1) for batch k (a cumulative average over the batches). The trainer's
 * parameters must all be frozen, so that only the BN buffers change; the caller resets the
 * buffers first (running mean 0, running variance 1) and reads the state afterwards. */
fg_status fg_recalibrate_bn(fg_trainer *t, const fg_loader *ld, const fg_dataset_view *view,
                            const fg_normalize *norm);

#endif
