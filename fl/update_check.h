/* The server's checks on a client's update before it is aggregated, so that one wrong or
 * malicious update cannot poison the global model.
 *
 * An update is what a client returns for the sub-model it was sent: one tensor per state entry
 * (fg_param) of its level's graph, in the graph's order, flat in `values`. The checks, in order:
 *   size      the floats returned equal the graph's state numel, and the tensor shapes the
 *             client declares (when it declares any) are the graph's, one for one;
 *   finite    every value is finite (the first offender is named by tensor and index);
 *   distance  ||values - sent||_2 <= max_distance x ||sent||_2 (max_distance 0: no bound).
 * A failing update gets a verdict and a one-line reason; the server records the client as
 * "rejected" with it and aggregates the others (fl/server.c).
 *
 * Test seam: fg_update_set_test_hook installs a function the server calls on the sub-model it
 * sends a client (before local training) and on every update (before checking it). It may
 * rewrite the values in place, and an update's size and shapes declared, so that tests can make
 * a client diverge, or inject a NaN, an update of the wrong size or an oversized one, exactly
 * where a bad client would. It is a process-wide setting that only tests use (NULL, the default:
 * no hook). Owns nothing. */
#ifndef FG_FL_UPDATE_CHECK_H
#define FG_FL_UPDATE_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "engine/nn/graph.h"

/* A tensor's shape as a client declares it. */
typedef struct fg_update_tensor {
  int ndim;
  int64_t shape[4];
} fg_update_tensor;

typedef struct fg_update {
  const float *values;
  int64_t numel;                   /* floats in values */
  int n_tensors;                   /* tensors declared; 0: none (the layout is the graph's) */
  const fg_update_tensor *tensors; /* n_tensors shapes, in the graph's order */
} fg_update;

typedef enum fg_update_verdict {
  FG_UPDATE_ACCEPTED = 0,
  FG_UPDATE_WRONG_SIZE,  /* size or shapes differ from what was sent */
  FG_UPDATE_NON_FINITE,  /* a NaN or an infinity */
  FG_UPDATE_TOO_FAR,     /* farther from what was sent than the bound */
} fg_update_verdict;

/* Checks update `u` of a client sent `sent` (the graph's state numel floats). *distance :=
 * ||values - sent||_2 / ||sent||_2 when the size is right and every value finite, else NaN
 * (an infinity when sent is all zeros and the update is not). A verdict other than accepted
 * comes with a one-line reason in reason[cap]. */
fg_update_verdict fg_update_check(const fg_graph *g, const float *sent, const fg_update *u, double max_distance,
                                  double *distance, char *reason, size_t cap);

/* "accepted", "wrong_size", "non_finite", "too_far". */
const char *fg_update_verdict_name(fg_update_verdict v);

/* The test seam (see above): called at `point` with the round (0-based), the client, and the
 * model sent or the update returned (whose values point at `values`, writable, room for
 * `capacity` floats; changes to a sent model's size or shapes are ignored). */
typedef enum fg_update_hook_point { FG_HOOK_SENT = 0, FG_HOOK_RETURNED } fg_update_hook_point;
typedef void (*fg_update_hook)(void *ctx, fg_update_hook_point point, int round, int client, fg_update *u,
                               float *values, int64_t capacity);
void fg_update_set_test_hook(fg_update_hook hook, void *ctx);
/* Calls the installed hook, if any. */
void fg_update_run_test_hook(fg_update_hook_point point, int round, int client, fg_update *u, float *values,
                             int64_t capacity);

#endif
