/* `fedgap memplan --method M --set ...` prints the planned bytes a run with those options records:
 * a three-round NeuLite run on Fashion-MNIST (round robin: stages 1, 2, 3, with the bn_relu output
 * module, which memplan plans differently from the default) against memplan with the same model,
 * batch, optimizer, rounds and options. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "engine/io/atomic_file.h"

/* The planned_bytes of `level` from memplan's method table ("stage 2   ...   peak_bytes ..."). */
static unsigned long long memplan_level_bytes(const char *out, const char *level) {
  const char *line = strstr(out, level);
  cr_assert_not_null(line, "memplan printed no row '%s':\n%s", level, out);
  /* columns: label (two words), parameters, trained, 4 MiB columns, peak_bytes */
  char a[32], b[32];
  unsigned long long params, trained, peak;
  double m1, m2, m3, m4;
  cr_assert_eq(sscanf(line, "%31s %31s %llu %llu %lf %lf %lf %lf %llu", a, b, &params, &trained, &m1, &m2, &m3, &m4,
                      &peak),
               9, "cannot read the row of %s", level);
  return peak;
}

Test(memplan_run, method_options_plan_what_the_run_records, .timeout = 1200) {
  char *dir = fgt_mkdtemp(), *cfg = fg_path_join(dir, "n.yaml"), *run = fg_path_join(dir, "run");
  const char *text =
      "seed: 3\nrounds: 3\ndata: {dataset: fashion-mnist, partition: {kind: dirichlet, alpha: 0.5}}\n"
      "model: {arch: cnn, width: 8}\nclients: {count: 6}\nsampling: {kind: uniform, per_round: 2}\n"
      "local: {epochs: 1, batch: 32, optimizer: sgd, lr: 0.02, momentum: 0.9}\n"
      "eval: {every: 3, max_samples: 200}\ncheckpoint: {every: 0}\n"
      "method: {name: neulite, schedule: roundrobin, output_module: bn_relu, frozen_bn: fixed}\n";
  fgt_write_text(cfg, text);
  const char *run_argv[] = {"", "run", cfg, "--out", run, "--threads", "2", NULL};
  fgt_run r = fgt_run_fedgap(run_argv);
  cr_assert_eq(r.status, 0, "run failed: %s", r.err);
  fgt_run_free(&r);

  const char *plan_argv[] = {"",          "memplan",       "--model", "cnn",   "--width",      "8",
                             "--batch",   "32",            "--method", "neulite", "--rounds",   "3",
                             "--set",     "output_module=bn_relu",     "--set",   "frozen_bn=fixed", NULL};
  fgt_run m = fgt_run_fedgap(plan_argv);
  cr_assert_eq(m.status, 0, "memplan failed: %s", m.err);

  char *metrics_path = fg_path_join(run, "metrics.jsonl"), *metrics = fgt_read_text(metrics_path);
  int seen[3] = {0};
  for (char *line = strtok(metrics, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *rec = cJSON_Parse(line);
    cr_assert_not_null(rec);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(rec, "clients")) {
      const char *config = cJSON_GetObjectItemCaseSensitive(c, "config")->valuestring;
      int stage = 0;
      if (sscanf(config, "stage %d", &stage) != 1) continue;
      unsigned long long recorded = (unsigned long long)fgt_json_number(c, "planned_bytes");
      cr_assert_eq(recorded, memplan_level_bytes(m.out, config), "%s: the run recorded %llu bytes, memplan printed %llu",
                   config, recorded, memplan_level_bytes(m.out, config));
      seen[stage - 1] = 1;
    }
    cJSON_Delete(rec);
  }
  cr_assert(seen[0] && seen[1] && seen[2], "the run trained stages %d %d %d", seen[0], seen[1], seen[2]);
  /* Without the option memplan plans another model: the test can tell the two apart. */
  const char *default_argv[] = {"", "memplan", "--model", "cnn", "--width", "8", "--batch", "32", "--method",
                                "neulite", "--rounds", "3", NULL};
  fgt_run d = fgt_run_fedgap(default_argv);
  cr_assert_eq(d.status, 0, "%s", d.err);
  cr_assert_neq(memplan_level_bytes(d.out, "stage 1"), memplan_level_bytes(m.out, "stage 1"));
  fgt_run_free(&d);
  fgt_run_free(&m);
  free(metrics);
  free(metrics_path);
  fgt_rmtree(dir);
  free(dir), free(cfg), free(run);
}
