/* One client's local training: its sub-model, under a ledger capped at its memory budget.
 *
 * The trainer is planned for the exact configuration (level model, local batch, activation
 * policy, optimizer, loss) and created under the cap, so a budget the plan does not fit fails
 * before anything runs; that is recorded as "over_budget", not an error. Everything random is
 * keyed by (seed, round, client): shuffles and augmentation by the epoch round x epochs + e and
 * the client id, dropout by round x clients + client. Owns nothing. */
#ifndef FG_FL_CLIENT_H
#define FG_FL_CLIENT_H

#include "fl/metrics.h"
#include "fl/world.h"

typedef struct fg_local_job {
  const fg_world *world;
  int client, round;
  const fg_graph *graph;           /* the model of the client's level */
  const fg_plan *plan;             /* its local step this round (fg_method_plan_step): batch, policy,
                                      optimizer, loss */
  size_t cap;                      /* the budget in bytes; 0: no cap */
  int drop_last;                   /* skip the final partial batch of each epoch (fg_fit_options) */
  const float *initial;            /* [state numel of graph]: the sub-model the server sent */
  float *trained;                  /* [state numel of graph]: the trained sub-model, out */
  const float *prox_linear;        /* [state numel of graph]: the linear part of the proximal term
                                      (plans with prox_mu > 0: the method's client_prox), or NULL
                                      (then zero) */
  int data_client;                 /* the world's client whose samples (and class mask) it trains;
                                      -1: `client`. A device with its own data holds them as client 0
                                      of its world, while `client` (the run's client it trains for)
                                      keys the random streams, as in the in-process run */
  int run_clients;                 /* the run's client count, which keys the dropout stream with the
                                      round and `client`; 0: the world's */
} fg_local_job;

/* Trains; fills the record (status, planned and measured peaks, loss, time). A loss that turns
 * non-finite stops the client: with updates.on_diverge skip (the default) it is recorded as
 * "diverged" (its trained state must not be used) and FG_OK returned; with stop it is an error.
 * Returns an error only for failures that must stop the experiment. */
fg_status fg_local_train(const fg_local_job *job, fg_client_record *rec);

#endif
