/* The table of an experiment over several seeds (fl/seed_table.h). */
#include "fl/seed_table.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/atomic_file.h"
#include "fl/metrics.h"

const char *fg_seed_dir(const char *dir, int seed, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/seed-%d", dir, seed);
  return buf;
}

/* Mean and sample standard deviation of v[n] (0 when n < 2). */
static void mean_std(const double *v, int n, double *mean, double *std) {
  double sum = 0, ss = 0;
  for (int i = 0; i < n; i++) sum += v[i];
  *mean = n ? sum / n : NAN;
  for (int i = 0; i < n; i++) ss += (v[i] - *mean) * (v[i] - *mean);
  *std = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
}

/* Seed s's accuracy at `round`, if that round was evaluated in its run. */
static int accuracy_at(const fg_round_record *r, int n, int round, double *acc) {
  for (int k = 0; k < n; k++)
    if (r[k].round == round && r[k].evaluated && isfinite(r[k].accuracy)) {
      *acc = r[k].accuracy;
      return 1;
    }
  return 0;
}

int fg_seed_curve(const fg_round_record *const *rounds, const int *n_rounds, int seeds, int *round_out, double *mean,
                  double *std, int cap) {
  if (seeds < 1) return 0;
  int points = 0;
  double acc[FG_MAX_SEEDS];
  for (int k = 0; k < n_rounds[0] && points < cap; k++) {
    int round = rounds[0][k].round, all = seeds <= FG_MAX_SEEDS;
    for (int s = 0; s < seeds && all; s++) all = accuracy_at(rounds[s], n_rounds[s], round, &acc[s]);
    if (!all) continue;
    round_out[points] = round;
    mean_std(acc, seeds, &mean[points], &std[points]);
    points++;
  }
  return points;
}

/* The mean accuracy of the last FG_SEED_LAST_EVALS evaluated rounds of the run in `dir`. */
static fg_status last_evals_mean(const char *dir, double *out) {
  fg_round_record *rounds = NULL;
  int n = 0;
  FG_TRY(fg_metrics_read(dir, &rounds, &n));
  double sum = 0;
  int taken = 0;
  for (int i = n - 1; i >= 0 && taken < FG_SEED_LAST_EVALS; i--) {
    if (!rounds[i].evaluated) continue;
    sum += rounds[i].accuracy;
    taken++;
  }
  free(rounds);
  if (!taken) return FG_FAIL(FG_ERR_FORMAT, "%s/metrics.jsonl: no evaluated round", dir);
  *out = sum / taken;
  return FG_OK;
}

/* Seed i's run of method m: its folder into buf. */
static const char *method_dir(const fg_config *cfg, const char *dir, int i, int m, char *buf, size_t cap) {
  if (cfg->compare) snprintf(buf, cap, "%s/seed-%d/%s", dir, cfg->seeds[i], fg_method_label(&cfg->methods[m]));
  else fg_seed_dir(dir, cfg->seeds[i], buf, cap);
  return buf;
}

fg_status fg_seed_table_read(const fg_config *cfg, const char *dir, fg_seed_row *rows) {
  double final[FG_MAX_SEEDS], last[FG_MAX_SEEDS];
  for (int m = 0; m < cfg->n_methods; m++) {
    fg_seed_row *r = &rows[m];
    memset(r, 0, sizeof *r);
    r->method = fg_method_label(&cfg->methods[m]);
    r->seeds = cfg->n_seeds;
    for (int i = 0; i < cfg->n_seeds; i++) {
      char run[4096];
      method_dir(cfg, dir, i, m, run, sizeof run);
      fg_summary_file f;
      FG_TRY(fg_summary_read(run, &f));
      final[i] = f.summary.final_accuracy;
      if (f.summary.max_client_engine_peak > r->max_client_peak) r->max_client_peak = f.summary.max_client_engine_peak;
      r->wall_seconds += f.summary.wall_seconds;
      fg_summary_file_free(&f);
      FG_TRY(last_evals_mean(run, &last[i]));
    }
    mean_std(final, cfg->n_seeds, &r->final_mean, &r->final_std);
    mean_std(last, cfg->n_seeds, &r->last_mean, &r->last_std);
  }
  return FG_OK;
}

fg_status fg_seed_table_write(const char *dir, const fg_config *cfg, const fg_seed_row *rows) {
  char *path = fg_path_join(dir, "comparison.csv");
  if (!path) return FG_FAIL(FG_ERR_OOM, "out of memory");
  fg_atomic_file f;
  fg_status s = fg_atomic_open(&f, path);
  free(path);
  FG_TRY(s);
  s = fg_atomic_printf(&f, "method,seeds,final_accuracy_mean,final_accuracy_std,last_evals_mean,last_evals_std,"
                           "max_client_peak_bytes,wall_seconds\n");
  for (int m = 0; m < cfg->n_methods && s == FG_OK; m++) {
    const fg_seed_row *r = &rows[m];
    s = fg_atomic_printf(&f, "%s,%d,%.6f,%.6f,%.6f,%.6f,%zu,%.1f\n", r->method, r->seeds, r->final_mean, r->final_std,
                         r->last_mean, r->last_std, r->max_client_peak, r->wall_seconds);
  }
  if (s != FG_OK) {
    fg_atomic_abort(&f);
    return s;
  }
  return fg_atomic_commit(&f);
}
