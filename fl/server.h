/* The FL server: one method of an experiment, round by round, into a run folder.
 *
 * Clients are simulated one after another on one device, or spread over processes (fl/spread.h,
 * fg_run_method_with and fg_run_worker) with identical results, or trained on remote devices
 * (fl/remote.h, fg_device_trainer). Each round the server samples
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
#include "fl/remote.h"
#include "fl/spread.h"
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

/* How a run is carried out, beyond its configuration. */
typedef struct fg_run_options {
  /* NULL or one process: clients train here one after another. Several (fl/spread.h): this is
   * rank 0, the server; the round's trainable participants are dealt in slot order to ranks
   * r, r + 1, ..., P - 1, 0, ... (r = round mod P); rank 0 trains its own and takes the others'
   * results in slot order, so the run computes exactly what one process does. The workers run
   * fg_run_worker meanwhile. */
  const fg_transport *transport;
  /* > 0: stop once this many rounds are done, with a checkpoint, as an interrupted run would
   * (no summary); --resume continues it. */
  int stop_after;
  /* Not NULL: every participant trains on the device that holds its client (fl/remote.h); the
   * server dispatches the round's jobs, waits for the round to close and absorbs the results in
   * slot order. (Not together with a spreading transport.) */
  const fg_remote *remote;
} fg_run_options;

/* fg_run_method with options (opt NULL: none). In a spread run the round records' process peak
 * is rank 0's (each client record holds the peak of the process that trained it), and the
 * summary records the processes and where the time went. *stopped := 1 when the run stopped at
 * opt->stop_after before its last round (may be NULL). */
fg_status fg_run_method_with(const fg_world *w, int method, const char *run_dir, int resume, const fg_run_options *opt,
                             fg_round_callback cb, void *ctx, fg_run_result *res, int *stopped);

/* A worker of a spread run (rank > 0): trains the jobs rank 0 deals it, method after method, until
 * rank 0 ends the run (fg_spread_end); *ended := the status rank 0 ended it with. Between rounds
 * it keeps nothing but the method's models and buffers; a job that fails here is reported to rank
 * 0 in its result (rank 0 stops the run and says why). Returns an error only when this process
 * cannot take part any more (the transport failed). */
fg_status fg_run_worker(const fg_world *w, const fg_transport *t, fg_status *ended);

/* A device's side of a run on remote devices (`fedgap device`): one method's levels, set up on the
 * device's world exactly as the server sets them up, to measure what fits here and to train the
 * jobs the server sends. Owns: the method's models and buffers. */
typedef struct fg_device_trainer fg_device_trainer;

fg_status fg_device_trainer_open(const fg_world *w, int method, fg_device_trainer **out);
void fg_device_trainer_free(fg_device_trainer *d); /* NULL is fine */
/* The most capable level of the method (before FedAvg-S makes one level of the smallest) whose
 * planned training step fits `budget` bytes here (0: no cap); -1 when none does. */
int fg_device_trainer_fit(const fg_device_trainer *d, size_t budget);
/* Floats of the state of the level a job at `level` trains; -1 when the method has no such level. */
int64_t fg_device_trainer_numel(const fg_device_trainer *d, int level);
/* Trains job j from the sub-model `sent` [fg_device_trainer_numel floats] (and, for a method with a
 * proximal term, its linear part `linear` of as many floats; else NULL) into trained, under
 * `budget` bytes (0: none) when the job is capped (a method whose budgets play no part sends none),
 * and fills the record (whose id is the job's client). It trains
 * on the samples of client `data_client` of the device's world (-1: the job's client, as in a dry
 * run on the configuration's partition; a device with its own data holds them as client 0). Its
 * random streams (shuffling, augmentation, dropout) are the job's client's in a run of
 * `run_clients` clients (used only with a data_client), as in the in-process run. An error naming
 * the job when it is not one of this method and configuration (or its client not one of
 * run_clients); a client that fails to train is reported in rec, not as an error. */
fg_status fg_device_trainer_train(fg_device_trainer *d, const fg_job *j, int data_client, int run_clients,
                                  size_t budget, const float *sent, const float *linear, float *trained,
                                  fg_client_record *rec);

#endif
