/* Full checkpoints of a run: the global state and the round it was reached at, with the
 * method and the partition's hash so a resume cannot mix experiments. Every other piece of state
 * is derived from (seed, round, client) by the counter-based RNG and every client optimizer is
 * reset each round, so this is all a resume needs to continue to exactly the same numbers.
 * Written atomically (safetensors). Owns nothing. */
#ifndef FG_FL_CHECKPOINT_H
#define FG_FL_CHECKPOINT_H

#include <stdint.h>

#include "engine/nn/graph.h"

/* dir/checkpoint.safetensors := state at the end of `round` (1-based count of rounds done). */
fg_status fg_checkpoint_save(const char *dir, const fg_graph *g, const float *state, int round, const char *method,
                             uint64_t partition_hash);
/* Reads dir/checkpoint.safetensors into state; checks that it belongs to `method` and
 * `partition_hash`; *round := rounds done. */
fg_status fg_checkpoint_load(const char *dir, const fg_graph *g, float *state, int *round, const char *method,
                             uint64_t partition_hash);

/* The server-side tensors of a method (HypeMeFed's hypernetworks), written beside the checkpoint
 * as dir/method_state.safetensors with the same round. They may live on any device, so they are
 * reached through copies to and from host memory: `tensor` enumerates them (for i = 0, 1, ... it
 * sets name and numel and returns 1, and returns 0 past the last), `get` copies tensor i into
 * host [numel], `set` copies host [numel] into tensor i. The host staging buffers are file I/O
 * (plain malloc, like the safetensors reader's), freed before returning. Save it before the
 * checkpoint; a load checks that its round is the checkpoint's, so a run stopped between the two
 * writes fails to resume instead of mixing rounds. */
typedef struct fg_checkpoint_tensors {
  void *ctx;
  int (*tensor)(void *ctx, int i, const char **name, int64_t *numel);
  fg_status (*get)(void *ctx, int i, float *host);
  fg_status (*set)(void *ctx, int i, const float *host);
} fg_checkpoint_tensors;
fg_status fg_checkpoint_save_tensors(const char *dir, const fg_checkpoint_tensors *t, int round);
fg_status fg_checkpoint_load_tensors(const char *dir, const fg_checkpoint_tensors *t, int round);

#endif
