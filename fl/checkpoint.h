/* Full checkpoints of a run: the global state and the round it was reached at, with the
 * method and the partition's hash so a resume cannot mix experiments. Every other piece of state
 * is derived from (seed, round, client) by the counter-based RNG and every client optimizer is
 * reset each round, so this is all a resume needs to continue to exactly the same numbers.
 * Written atomically (safetensors). Owns nothing. */
#ifndef FG_FL_CHECKPOINT_H
#define FG_FL_CHECKPOINT_H

#include <stdint.h>

#include "engine/nn/graph.h"

/* The largest round count a checkpoint may record (the largest `rounds` a configuration takes). */
#define FG_CHECKPOINT_MAX_ROUND 1000000

/* dir/checkpoint.safetensors := state at the end of `round` (1-based count of rounds done); then
 * the method state saved for this round (fg_checkpoint_save_tensors) becomes the current one. A
 * state holding a NaN or an infinity is not written (FG_ERR_NUMERIC naming the tensor): the last
 * good checkpoint stays. */
fg_status fg_checkpoint_save(const char *dir, const fg_graph *g, const float *state, int round, const char *method,
                             uint64_t partition_hash);
/* Reads dir/checkpoint.safetensors into state; checks that it belongs to `method` and
 * `partition_hash`, that its round is a count in 1..FG_CHECKPOINT_MAX_ROUND and that its data
 * matches the CRC-32 it records (a truncated or corrupted file is FG_ERR_FORMAT naming it), and
 * that every value is finite; *round := rounds done. */
fg_status fg_checkpoint_load(const char *dir, const fg_graph *g, float *state, int *round, const char *method,
                             uint64_t partition_hash);

/* The server-side tensors of a method (HypeMeFed's hypernetworks, DepthFL's FedDyn state), written
 * beside the checkpoint as dir/method_state.safetensors with the same round. They may live on any
 * device, so they are reached through copies to and from host memory: `tensor` enumerates them
 * (for i = 0, 1, ... it sets name and numel and returns 1, and returns 0 past the last), `get`
 * copies tensor i into host [numel], `set` copies host [numel] into tensor i. The host staging
 * buffers are file I/O (plain malloc, like the safetensors reader's), freed before returning. Save
 * it before the checkpoint: it goes to dir/method_state.next.safetensors, and fg_checkpoint_save
 * renames it to dir/method_state.safetensors once the checkpoint of the same round is in place. A
 * load takes whichever of the two holds the checkpoint's round (a run killed between the writes
 * leaves the previous round's state current, one killed before the rename the next one complete),
 * so a resume never mixes rounds; neither holding it is FG_ERR_FORMAT. */
typedef struct fg_checkpoint_tensors {
  void *ctx;
  int (*tensor)(void *ctx, int i, const char **name, int64_t *numel);
  fg_status (*get)(void *ctx, int i, float *host);
  fg_status (*set)(void *ctx, int i, const float *host);
} fg_checkpoint_tensors;
fg_status fg_checkpoint_save_tensors(const char *dir, const fg_checkpoint_tensors *t, int round);
fg_status fg_checkpoint_load_tensors(const char *dir, const fg_checkpoint_tensors *t, int round);

#endif
