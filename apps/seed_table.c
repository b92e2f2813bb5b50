/* The table of an experiment over several seeds (apps/seed_table.h). */
#include "apps/seed_table.h"

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

void fg_seed_table_print(const fg_config *cfg, const fg_seed_row *rows) {
  int width = 12;
  for (int m = 0; m < cfg->n_methods; m++)
    if ((int)strlen(rows[m].method) > width) width = (int)strlen(rows[m].method);
  char head[64];
  snprintf(head, sizeof head, "last %d evaluations", FG_SEED_LAST_EVALS);
  printf("\nover %d seeds (mean +- standard deviation):\n", cfg->n_seeds);
  printf("%-*s %19s %23s %18s %12s\n", width, "method", "final accuracy", head, "max client peak", "wall time");
  for (int m = 0; m < cfg->n_methods; m++) {
    const fg_seed_row *r = &rows[m];
    printf("%-*s %9.4f +- %.4f %13.4f +- %.4f %14.2f MiB %10.1f s\n", width, r->method, r->final_mean, r->final_std,
           r->last_mean, r->last_std, (double)r->max_client_peak / (1024.0 * 1024.0), r->wall_seconds);
  }
  printf("\n");
  for (int m = 0; m < cfg->n_methods; m++) {
    if (cfg->compare) printf("method=%s ", rows[m].method);
    printf("final_accuracy_mean=%.4f final_accuracy_std=%.4f\n", rows[m].final_mean, rows[m].final_std);
  }
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
