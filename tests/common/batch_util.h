/* Test helper: fg_batch_fill into caller-owned host tensors (images x [count, C, H, W] f32,
 * labels y [count] i32), staged through a host batch of x's shape, so the batching tests read the
 * samples as plain arrays. Owns nothing. */
#ifndef FGT_BATCH_UTIL_H
#define FGT_BATCH_UTIL_H

#include "engine/data/dataset.h"
#include "engine/nn/trainer.h"

/* fg_batch_fill of x->shape[0] samples from `start`; on success copies them into x and y
 * (y->shape[0] must equal x->shape[0]). Returns fg_batch_fill's status. */
fg_status fgt_batch_fill(const fg_dataset_view *view, const uint32_t *order, int64_t start,
                         const fg_normalize *norm, const fg_augment *aug, uint64_t aug_key, fg_tensor *x,
                         fg_tensor *y);

/* A full input batch of trainer t in host memory for a test to fill: x [batch, C, H, W] f32 and
 * y [batch] i32 (host views), copied into the trainer by fgt_input_load. Keep it in place (its
 * regions refer to its own ledger); close it to free. */
typedef struct fgt_input {
  fg_ledger ledger;
  fg_host_batch hb;
  fg_tensor x, y;
} fgt_input;

void fgt_input_open(fgt_input *in, const fg_trainer *t);
/* Copies the first n samples into t (fg_trainer_set_batch), asserting success. */
void fgt_input_load(fgt_input *in, fg_trainer *t, int64_t n);
void fgt_input_close(fgt_input *in);

#endif
