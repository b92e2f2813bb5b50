/* Rounds trained on remote devices (`fedgap serve` and `fedgap device`): the interface through
 * which the FL server (fl/server.h) hands each participant's job (fl/job.h) and sub-model to the
 * device that holds the client, and takes the results back once the round has closed.
 *
 * fl/ never calls MQTT: a remote is a table of functions over an opaque context, implemented over
 * an MQTT broker in mqtt/ and handed in by the command line. What fits a client is measured on its
 * device: when a method begins, each device reports the most capable level its own budget and
 * backend fit (fg_device_fit_level), and the server assigns levels from those reports. Each round
 * the server dispatches every trainable participant's job with the sub-model extracted for it,
 * waits for the round to close (every result in, or the deadline passed), then takes the results
 * strictly in slot order and absorbs them with the single-process code: a run whose devices all
 * answer computes exactly what the in-process run does. A slot whose device dropped out, or whose
 * result was malformed, is recorded with the reason and not aggregated. A round that closes with
 * fewer results than devices.min_results is recorded as a failed try (fl/metrics.h) and tried
 * again, devices.retries times. Owns nothing. */
#ifndef FG_FL_REMOTE_H
#define FG_FL_REMOTE_H

#include <stddef.h>
#include <stdint.h>

#include "fl/job.h"

typedef enum fg_remote_outcome {
  FG_REMOTE_TRAINED = 0, /* a well-formed result arrived in time */
  FG_REMOTE_DROPPED,     /* its device went away (last will) or missed the deadline */
  FG_REMOTE_REFUSED,     /* what arrived was malformed, truncated, oversized or from the wrong device */
} fg_remote_outcome;

typedef struct fg_remote {
  void *ctx;
  /* Method `method` (of n_levels levels) begins in run folder `dir` (results are spooled under
   * it). Waits until every client's device has reported, then level [clients] := the most
   * capable level each reported its budget fits (-1: none). */
  fg_status (*begin)(void *ctx, const char *dir, int method, int clients, int n_levels, int *level);
  /* Sends job j with sub-model sub [numel] (and, for a method with a proximal term, its linear part
   * linear [numel]; else NULL) to the device that holds client j->client. */
  fg_status (*dispatch)(void *ctx, const fg_job *j, const float *sub, const float *linear, int64_t numel);
  /* Waits until round `round` closes: every dispatched job answered or dropped, or the deadline
   * passed (the jobs still open are then dropped). *answered := the results that arrived. */
  fg_status (*close_round)(void *ctx, int round, int *answered);
  /* Job j's result once its round closed: the result and trained [at most cap floats] with
   * *outcome FG_REMOTE_TRAINED, or another outcome with the reason in why [why_cap]. */
  fg_status (*result)(void *ctx, const fg_job *j, fg_result *res, float *trained, int64_t cap,
                      fg_remote_outcome *outcome, char *why, size_t why_cap);
  /* The round is over (absorbed, or failed): its spooled results may go. */
  void (*end_round)(void *ctx, int round);
  /* Round `round` closed with `answered` results, fewer than `needed`: it failed (the attempt-th
   * time) and is tried again (the server has recorded the try in failed_rounds.jsonl, fl/metrics.h);
   * the remote may log it. */
  void (*failed_round)(void *ctx, int round, int answered, int needed, int attempt);
} fg_remote;

#endif
