/* The FL server: one method of an experiment, round by round, into a run folder.
 *
 * Clients are simulated one after another on one device. Each round the server samples
 * participants, sends each its sub-model (the index plan of its level), lets it train under its
 * budget (fl/client.h), and streams its update into global-sized accumulators (fl/submodel.h), so
 * the server's memory is one global model, one client and the accumulators whatever the number of
 * clients. The global model is evaluated on the test set (eval.protocol global) or on every
 * client's local test split (local: "General", the mean over clients), every round's record goes to the run
 * folder's metrics files, and a checkpoint is written every `checkpoint.every` rounds; a resumed
 * run continues to exactly the numbers an uninterrupted one reaches. Owns nothing beyond a call. */
#ifndef FG_FL_SERVER_H
#define FG_FL_SERVER_H

#include "fl/metrics.h"
#include "fl/world.h"

typedef struct fg_run_result {
  double final_accuracy;            /* the global model's last output on the whole test set, or with
                                       eval.protocol local the General accuracy */
  int n_exits;
  double exit_accuracy[16];
  double ensemble_accuracy;         /* NaN for single-output models */
  size_t max_client_engine_peak;    /* over every client that trained */
  size_t process_peak;
  double seconds;
  int clients_never_fit;            /* clients with no level their budget fits */
} fg_run_result;

/* Called after every round with its record. */
typedef void (*fg_round_callback)(void *ctx, const fg_round_record *r, int rounds);

/* Runs method `method` of the world's configuration in `run_dir` (which exists). resume: continue
 * from run_dir's checkpoint. */
fg_status fg_run_method(const fg_world *w, int method, const char *run_dir, int resume, fg_round_callback cb,
                        void *ctx, fg_run_result *res);

#endif
