/* Kill at any moment, then --resume, to the numbers of an uninterrupted run.
 *
 * A comparison of HeteroFL (a width method), NeuLite and HypeMeFed on a small generated dataset,
 * with a checkpoint every round, runs once without interruption. The same comparison then runs in
 * a second folder under a schedule of SIGKILLs the binary raises on itself at the N-th call of a
 * named point (engine/base/killpoint.h: inside local training, inside aggregation, inside an
 * atomic write and just before its rename, between the two metrics lines, between rounds), each
 * followed by `fedgap run --resume DIR` (or a fresh start where the first process died before the
 * run folder had its config.yaml), until the comparison completes. Then every method's final
 * checkpoint (and HypeMeFed's method state) is bit-identical to the uninterrupted run's, and its
 * metrics.jsonl and summary.json are equal field by field, timings and process peaks aside, as is
 * the comparison table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <signal.h>

#include "common/run_cmd.h"
#include "common/run_compare.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"

static const char *const METHODS[] = {"heterofl", "neulite", "hypemefed"};

static char *write_config(const char *dir) {
  char text[2048];
  snprintf(text, sizeof text,
           "name: kill\nseed: 9\nrounds: 8\n"
           "data: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: dirichlet, alpha: 0.5, min_size: 10}}\n"
           "model: {arch: cnn, width: 4}\n"
           "clients:\n  count: 8\n  budgets:\n    kind: tiers\n    tiers:\n"
           "      - {fraction: 1.05, share: 0.25}\n      - {fraction: 0.7, share: 0.5}\n"
           "      - {fraction: 0.35, share: 0.25}\n"
           "sampling: {kind: uniform, per_round: 4}\n"
           "local: {epochs: 1, batch: 16, optimizer: sgd, lr: 0.05, momentum: 0.9}\n"
           "eval: {every: 1, max_samples: 60}\ncheckpoint: {every: 1}\n"
           "methods:\n  - {name: heterofl}\n  - {name: neulite}\n  - {name: hypemefed, lr: 1.0e-3}\n",
           dir);
  char *path = fgt_join(dir, "kill.yaml");
  fgt_write_text(path, text);
  return path;
}

/* The kill points in turn, each at a call number drawn from its own range (its calls per process
 * differ: a step happens far more often than a rename), from a fixed sequence; at most
 * MAX_MOMENTS of them, then a resume without a kill. Small numbers land in the start-up of a
 * resume (writing config.yaml and partition.json, rewriting the metrics). */
static const char *const POINTS[] = {"train_step", "aggregate",      "atomic_write",    "atomic_rename",
                                     "metrics_append", "checkpoint_begin", "checkpoint_done"};
static const int RANGE[] = {24, 6, 20, 5, 2, 2, 2};
enum { N_POINTS = 7, N_METHODS = 3, MAX_MOMENTS = 90 };

/* The method the comparison was at: the first without a summary.json. */
static int method_in_progress(const char *run) {
  for (int m = 0; m < N_METHODS; m++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s/summary.json", run, METHODS[m]);
    if (access(path, F_OK) != 0) return m;
  }
  return N_METHODS;
}

Test(kill, kill_anywhere_then_resume_reaches_the_uninterrupted_numbers, .timeout = 2400) {
  char *dir = fgt_mkdtemp();
  fgt_write_tiny_fmnist(dir, 320, 80, 21);
  char *cfg = write_config(dir), *straight = fgt_join(dir, "straight"), *killed = fgt_join(dir, "killed");
  fgt_run r = fgt_run_fedgap((const char *[]){"", "run", cfg, "--out", straight, "--threads", "1", NULL});
  cr_assert_eq(r.status, 0, "the uninterrupted run failed: %s", r.err);
  fgt_run_free(&r);

  char *own = fgt_join(killed, "config.yaml"), kill_at[64];
  int kills = 0, per_point[N_POINTS] = {0}, per_method[N_METHODS + 1] = {0}, done = 0;
  uint64_t lcg = 12345;
  for (int k = 0; k <= MAX_MOMENTS && !done; k++) {
    fgt_run_opts o = {NULL, 0};
    int p = k % N_POINTS;
    if (k < MAX_MOMENTS) {
      lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
      int n = 1 + (int)((lcg >> 33) % (uint64_t)RANGE[p]);
      /* even calls of checkpoint_begin: after a method state, before its checkpoint (HypeMeFed) */
      if (strcmp(POINTS[p], "checkpoint_begin") == 0) n = 2 * n;
      snprintf(kill_at, sizeof kill_at, "%s:%d", POINTS[p], n);
      o.kill_at = kill_at;
    }
    int fresh = access(own, F_OK) != 0;
    r = fresh ? fgt_run_fedgap_opts((const char *[]){"", "run", cfg, "--out", killed, "--threads", "1", NULL}, &o)
              : fgt_run_fedgap_opts((const char *[]){"", "run", "--resume", killed, "--threads", "1", NULL}, &o);
    if (getenv("FGT_TRACE")) /* the schedule as it happened, for debugging */
      fprintf(stderr, "moment %d %s -> signal %d status %d (at method %d)\n", k, o.kill_at ? kill_at : "-", r.signal,
              r.status, method_in_progress(killed));
    if (r.signal == SIGKILL) {
      kills++;
      per_point[p]++;
      per_method[method_in_progress(killed)]++;
    } else {
      cr_assert_eq(r.signal, 0, "moment %d (%s): signal %d", k, kill_at, r.signal);
      cr_assert_eq(r.status, 0, "moment %d (%s): %s", k, o.kill_at ? kill_at : "none", r.err);
      done = 1;
    }
    fgt_run_free(&r);
  }
  cr_assert(done, "the comparison did not complete");
  cr_assert_geq(kills, 20, "only %d kills before the comparison completed", kills);
  for (int p = 0; p < N_POINTS; p++)
    cr_assert_geq(per_point[p], 2, "point %s killed the run %d times", POINTS[p], per_point[p]);
  for (int m = 0; m < N_METHODS; m++)
    cr_assert_geq(per_method[m], 5, "%d kills while %s ran", per_method[m], METHODS[m]);

  for (size_t m = 0; m < sizeof METHODS / sizeof METHODS[0]; m++) {
    char *a = fgt_join(straight, METHODS[m]), *b = fgt_join(killed, METHODS[m]);
    char *ca = fgt_join(a, "checkpoint.safetensors"), *cb = fgt_join(b, "checkpoint.safetensors");
    fgt_same_tensors(ca, cb);
    fgt_same_run_records(a, b);
    if (strcmp(METHODS[m], "hypemefed") == 0) {
      char *sa = fgt_join(a, "method_state.safetensors"), *sb = fgt_join(b, "method_state.safetensors");
      fgt_same_tensors(sa, sb);
      free(sa);
      free(sb);
    }
    free(ca);
    free(cb);
    free(a);
    free(b);
  }
  /* the comparison table, wall times and process peaks aside */
  char *ta = fgt_join(straight, "comparison.csv"), *tb = fgt_join(killed, "comparison.csv");
  char *xa = fgt_read_text(ta), *xb = fgt_read_text(tb);
  char *la = xa, *lb = xb;
  for (int line = 0; line < 4; line++) {
    char fa[4][64], fb[4][64];
    cr_assert_eq(sscanf(la, "%63[^,],%63[^,],%63[^,],%63[^,]", fa[0], fa[1], fa[2], fa[3]), 4);
    cr_assert_eq(sscanf(lb, "%63[^,],%63[^,],%63[^,],%63[^,]", fb[0], fb[1], fb[2], fb[3]), 4);
    for (int f = 0; f < 3; f++) cr_assert_str_eq(fa[f], fb[f], "comparison.csv line %d", line + 1);
    la = strchr(la, '\n') + 1;
    lb = strchr(lb, '\n') + 1;
  }
  free(xa);
  free(xb);
  free(ta);
  free(tb);
  free(own);
  free(cfg);
  free(straight);
  free(killed);
  fgt_rmtree(dir);
  free(dir);
}
