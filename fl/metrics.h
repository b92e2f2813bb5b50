/* Per-round metrics of a federated run and its summary: the records the server fills, their
 * crash-safe writers, and the readers that `fedgap plot` uses.
 *
 * A run folder holds
 *   metrics.jsonl  one JSON object per round: every round field below, plus the round's clients
 *                  as an array of objects (status as "ok" | "over_budget" | "no_fit" | "failed" |
 *                  "rejected" | "diverged" | "dropped", "error" only when not ok). Non-finite
 *                  numbers are written as null.
 *   metrics.csv    a header and one row per round: the round-level fields (no per-client data),
 *                  the exit accuracies as columns exit1..exitN, N from the first record. A record
 *                  with fewer exits leaves the extra cells empty; more exits than N are only in
 *                  metrics.jsonl. Non-finite numbers are empty cells.
 *   summary.json   one object (fg_summary), written atomically at the end of the run.
 *   failed_rounds.jsonl  only in a run on remote devices where a round closed with fewer results
 *                  than it needed (fl/remote.h): one JSON object per failed try (fg_failed_round),
 *                  with the participants' records as in metrics.jsonl (a dropped slot "dropped"
 *                  with the reason) and their counts by status. Appended like metrics.jsonl; a
 *                  fresh run removes it, a resumed run appends to it. The round's record in
 *                  metrics.jsonl, once a later try completes it, says how many tries failed
 *                  ("failed_attempts"; no key when none did).
 * metrics.jsonl is the source of truth: every record is appended as one write of a complete line
 * followed by fsync, so an interrupted run never loses or corrupts earlier rounds, and a resume
 * rebuilds metrics.csv from it. Accuracies are fractions in [0, 1]; sizes are bytes.
 *
 * Owns: an fg_metrics handle owns its two open files and its path strings. Records passed in are
 * only read. */
#ifndef FG_FL_METRICS_H
#define FG_FL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

enum { FG_METRICS_MAX_EXITS = 16 };

typedef enum fg_client_status {
  FG_CLIENT_OK = 0,
  FG_CLIENT_OVER_BUDGET, /* training exceeded the client's memory budget */
  FG_CLIENT_NO_FIT,      /* nothing the method offers fits the budget: did not train */
  FG_CLIENT_FAILED,      /* another error; see `error` */
  FG_CLIENT_REJECTED,    /* trained, but the server refused its update (fl/update_check.h); see `error` */
  FG_CLIENT_DIVERGED,    /* its training loss turned non-finite: stopped, sent nothing */
  FG_CLIENT_DROPPED,     /* a remote device went away or missed the round's deadline (fl/remote.h); see `error` */
} fg_client_status;

/* One client's part in one round. */
typedef struct fg_client_record {
  int id;
  int level;
  char config[48];          /* what it trained, e.g. "rate 0.5", "depth 2", "full" */
  int64_t samples;          /* local training samples */
  fg_client_status status;
  char error[200];          /* one line; written only when status is not FG_CLIENT_OK */
  size_t budget_bytes;      /* 0: no cap */
  size_t planned_bytes, engine_peak_bytes, process_peak_bytes;
  size_t bytes_down, bytes_up;
  double train_loss;
  double seconds;
  double transfer_seconds;  /* of `seconds`: copying the model to the training device and back */
  double update_distance;   /* ||update - model sent||_2 / ||model sent||_2 as the server measured it
                               (fl/update_check.h); NaN (null) when there was no update to measure */
} fg_client_record;

/* One round. */
typedef struct fg_round_record {
  int round;                 /* 1-based */
  int evaluated;             /* 1 when the global model was evaluated after this round */
  int64_t eval_samples;
  int n_exits;               /* 0..FG_METRICS_MAX_EXITS */
  double exit_accuracy[FG_METRICS_MAX_EXITS]; /* per output of the global model, in order */
  double accuracy;           /* the last output's (the final exit) */
  double ensemble_accuracy;  /* mean of the exits' logits; NaN when not computed */
  double test_loss, train_loss;
  int n_clients;
  const fg_client_record *clients; /* n_clients records; NULL in records read back */
  size_t bytes_down, bytes_up;
  double seconds;            /* this round's wall time */
  double elapsed;            /* wall time since the run started */
  size_t max_client_engine_peak;
  size_t process_peak;       /* the server process's peak (rank 0's in a run spread over processes) */
  double transfer_seconds;   /* the clients' model copies to and from the device (their sum) */
  double device_bytes_in_use;/* the training device's memory in use after the round as its
                                runtime reports it (total - free); NaN (null) on the cpu device */
  const char *method_report; /* the method's own records of the round, one JSON object's text
                                (metrics.jsonl "method", e.g. HypeMeFed's per-hypernetwork figures);
                                NULL or "": none (no key). Not read back. */
  int failed_attempts;       /* tries of the round on remote devices that failed before this one
                                completed it (failed_rounds.jsonl); 0: none (no key). Not read back. */
} fg_round_record;

/* A try of a round on remote devices that closed with fewer results than it needed. */
typedef struct fg_failed_round {
  int round;                 /* 1-based */
  int attempt;               /* 1-based: this try of the round (counted again from 1 by a run
                                resumed in the middle of the round's tries) */
  int results, needed;       /* the results that arrived; devices.min_results (or the participants
                                that could train, when fewer) */
  int retried;               /* 1: the round is tried again; 0: the run stops */
  int n_clients;
  const fg_client_record *clients; /* the participants', in slot order: trained ones as the device
                                      reported them (not aggregated), the others with the reason */
} fg_failed_round;

/* Where the time of a spread run went (fl/spread.h; summary.json "spread"), in seconds over the
 * run: rank 0's, and the workers' summed. */
typedef struct fg_spread_time {
  double broadcast;    /* rank 0: sending each round's jobs and global state */
  double server_train; /* rank 0: training its own share of the participants */
  double server_wait;  /* rank 0: waiting for the workers' results, taken in slot order */
  double worker_train; /* workers: training their jobs */
  double worker_send;  /* workers: waiting for rank 0 to take their results in slot order */
  double worker_idle;  /* workers: waiting for the next round (rank 0 absorbing, evaluating, writing) */
  int64_t server_jobs, worker_jobs;
} fg_spread_time;

/* The whole run. Strings may be NULL (written as null). */
typedef struct fg_summary {
  const char *name, *method, *dataset, *arch, *revision;
  int rounds;
  double final_accuracy, best_accuracy;
  int n_exits;
  double final_exit_accuracy[FG_METRICS_MAX_EXITS];
  size_t max_client_engine_peak;
  size_t process_peak;       /* the server process's peak (rank 0's in a spread run) */
  double wall_seconds;
  int clients, clients_never_fit;
  const char *eval_protocol; /* what the accuracies are measured on: "global" (the test split) or
                                "local" (the mean over clients of their local test splits); NULL
                                (null, or absent in a file read back): not recorded */
  const char *device;        /* where local training and evaluation ran ("cpu", "cuda:0"); NULL
                                (null, or absent in a file read back): not recorded */
  int processes;             /* the processes the run was spread over (1: one; absent in a file read
                                back: 1) */
  const fg_spread_time *spread; /* several processes: where the time went; NULL: not written (always
                                   NULL in a file read back) */
  const char *method_report; /* the method's own records of the run, one JSON object's text
                                ("method"); NULL or "": none (no key). Not read back. */
  const char *label;         /* the method entry's label in a comparison; NULL (no key, or absent in
                                a file read back): the method's name */
  const char *sampling;      /* the sampling kind the method's rounds drew with ("eligible", ...; a
                                config's `reference` resolved); NULL: not recorded */
} fg_summary;

/* "ok", "over_budget", "no_fit", "failed", "rejected", "diverged", "dropped"; "unknown" for other
 * values. */
const char *fg_client_status_name(fg_client_status status);

typedef struct fg_metrics fg_metrics;

/* Opens the metrics files of the existing folder `dir` for appending.
 * keep_rounds < 0: a fresh run; both files are replaced by empty ones and failed_rounds.jsonl is
 * removed.
 * keep_rounds >= 0: a resume; the records of metrics.jsonl with round <= keep_rounds are kept
 * (byte for byte), later ones and a torn last line are dropped, metrics.csv is rebuilt from the
 * kept records, and both files are replaced atomically (failed_rounds.jsonl is kept whole). A
 * missing metrics.jsonl counts as empty.
 * FG_ERR_IO when the folder or files cannot be used; FG_ERR_FORMAT when a complete line that is
 * not the last one is not a valid record (message: file, line, field). */
fg_status fg_metrics_open(const char *dir, int keep_rounds, fg_metrics **out);

/* Appends one record to both files, each as one write of a complete line, then fsync. The round
 * must be greater than every round already in the files. On failure both files are cut back to
 * their previous length (nothing half-written stays). */
fg_status fg_metrics_append(fg_metrics *m, const fg_round_record *r);

/* Appends one failed try to failed_rounds.jsonl (created at the first), as one write of a complete
 * line followed by fsync; on failure the file is cut back. */
fg_status fg_metrics_append_failed(fg_metrics *m, const fg_failed_round *f);

/* Closes the files. Safe on NULL. */
void fg_metrics_close(fg_metrics *m);

/* Reads the round-level fields of every record of dir/metrics.jsonl (clients: n_clients is the
 * count, clients NULL). A torn last line (an interrupted append) is ignored. *rounds is malloc'd
 * (free() it), NULL when *n is 0. */
fg_status fg_metrics_read(const char *dir, fg_round_record **rounds, int *n);

/* Writes dir/summary.json atomically. */
fg_status fg_summary_write(const char *dir, const fg_summary *s);

/* A summary read back: the strings of `summary` point into `strings` (or are NULL). */
typedef struct fg_summary_file {
  fg_summary summary;
  char *strings;
} fg_summary_file;

/* Reads dir/summary.json. FG_ERR_IO when it cannot be read, FG_ERR_FORMAT when a field is
 * missing or of the wrong type (message: file and field). Free with fg_summary_file_free. */
fg_status fg_summary_read(const char *dir, fg_summary_file *out);
void fg_summary_file_free(fg_summary_file *f);

#endif
