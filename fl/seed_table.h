/* The table of an experiment run over several seeds (`seeds:` in a configuration): each seed's run
 * folder is read back (summary.json and metrics.jsonl of every method) and each method gets, over
 * the seeds, the mean and sample standard deviation (n - 1 in the denominator; 0 for one seed) of
 * its final accuracy and of its mean accuracy over the last FG_SEED_LAST_EVALS evaluated rounds
 * (fewer when it has fewer), the largest client peak of any seed and the wall time summed; and
 * the mean curve `fedgap plot` draws. Owns nothing. */
#ifndef FG_FL_SEED_TABLE_H
#define FG_FL_SEED_TABLE_H

#include "engine/base/status.h"
#include "fl/config.h"
#include "fl/metrics.h"

enum { FG_SEED_LAST_EVALS = 5 };

/* One method over the seeds. */
typedef struct fg_seed_row {
  const char *method;          /* its label (points into the configuration) */
  int seeds;
  double final_mean, final_std;
  double last_mean, last_std;  /* of each seed's mean over its last evaluations */
  size_t max_client_peak;
  double wall_seconds;
} fg_seed_row;

/* The mean curve of one method over `seeds` runs (rounds[s][0 .. n_rounds[s]) the records of seed
 * s's run): for each round evaluated in every seed's run, in round order, the round, the mean of
 * the seeds' accuracies and their sample standard deviation. Writes at most `cap` points; returns
 * how many. */
int fg_seed_curve(const fg_round_record *const *rounds, const int *n_rounds, int seeds, int *round_out, double *mean,
                  double *std, int cap);

/* The folder of seed `seed` of the run in `dir`: dir/seed-N into buf[cap]; returns buf. */
const char *fg_seed_dir(const char *dir, int seed, char *buf, size_t cap);

/* Reads every seed's run of cfg (cfg->seeds, in dir/seed-N; a comparison's methods in their
 * subfolders) into rows[cfg->n_methods]. FG_ERR_IO / FG_ERR_FORMAT naming the file when a run is
 * missing or unreadable. */
fg_status fg_seed_table_read(const fg_config *cfg, const char *dir, fg_seed_row *rows);

/* Writes dir/comparison.csv atomically: method, seeds, final_accuracy_mean, final_accuracy_std,
 * last_evals_mean, last_evals_std, max_client_peak_bytes, wall_seconds. */
fg_status fg_seed_table_write(const char *dir, const fg_config *cfg, const fg_seed_row *rows);

#endif
