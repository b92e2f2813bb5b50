/* configs/hypemefed-stl10.yaml (the paper's STL-10 setting: vgg-me 3x96x96, levels by client index,
 * 10 per round drawn per level, pooled train+test with 80/20 local splits, LRF hypernetworks) runs
 * for two rounds on generated files in the STL-10 binary format, with fewer clients and samples:
 * every participant trains depth (id mod 3) + 1; the evaluation is the local (General) protocol;
 * the hypernetworks' weights are checkpointed beside the model, and a resumed run loads them and
 * trains them on in round 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"

enum { SIDE = 96, IMAGE = 3 * SIDE * SIDE };

/* `count` images (a class-dependent brightness plus noise) and their labels 1..10. */
static void write_stl10_split(const char *dir, const char *split, int count, uint64_t seed) {
  unsigned char *x = malloc((size_t)count * IMAGE), *y = malloc((size_t)count);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (int i = 0; i < count; i++) {
    y[i] = (unsigned char)(i % 10 + 1);
    for (int k = 0; k < IMAGE; k++) x[(size_t)i * IMAGE + k] = (unsigned char)(20 * (y[i] - 1) + (int)fg_rng_below(&r, 56));
  }
  char name[64];
  snprintf(name, sizeof name, "%s_X.bin", split);
  char *path = fg_path_join(dir, name);
  FGT_OK(fg_write_file_atomic(path, x, (size_t)count * IMAGE));
  free(path);
  snprintf(name, sizeof name, "%s_y.bin", split);
  path = fg_path_join(dir, name);
  FGT_OK(fg_write_file_atomic(path, y, (size_t)count));
  free(path);
  free(x);
  free(y);
}

/* Sum of |w| over tensor `name` of a safetensors file. */
static double abs_sum(const char *path, const char *name) {
  fg_st_file *f = NULL;
  FGT_OK(fg_st_open(path, &f));
  const fg_st_entry *e = fg_st_find(f, name);
  cr_assert_not_null(e, "%s: no tensor %s", path, name);
  int64_t n = e->shape[0];
  float *w = malloc((size_t)n * sizeof(float));
  FGT_OK(fg_st_read_f32(f, name, 1, &n, w));
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += fabs((double)w[i]);
  free(w);
  fg_st_close(f);
  return s;
}

/* Round 1 into `run`, or (resume) on to round 2 from its checkpoint. */
static void run_rounds(const char *cfg, const char *data, const char *run, int resume) {
  char data_set[1024];
  snprintf(data_set, sizeof data_set, "data.dir=%s", data);
  const char *rounds = resume ? "rounds=2" : "rounds=1";
  fgt_run r = fgt_run_fedgap((const char *[]){"", "run", cfg, resume ? "--resume" : "--out", run, "--threads", "2",
                                              "--set", data_set,
                                              "--set", rounds, "--set", "local.epochs=1", "--set", "clients.count=6",
                                              "--set", "sampling.per_round=6", "--set", "data.partition.min_size=20",
                                              "--set", "method.hn_epochs=2", "--set", "checkpoint.every=1",
                                              resume ? "--allow-change" : NULL, "rounds", NULL});
  cr_assert_eq(r.status, 0, "fedgap run failed: %s", r.err);
  fgt_run_free(&r);
}

Test(hypemefed, paper_config_runs_on_generated_stl10, .timeout = 2400) {
  char *dir = fgt_mkdtemp(), *data = fg_path_join(dir, "stl10_binary"), *run = fg_path_join(dir, "run");
  cr_assert_eq(mkdir(data, 0755), 0);
  write_stl10_split(data, "train", 200, 1);
  write_stl10_split(data, "test", 100, 2);
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src);
  char *cfg = fg_path_join(src, "configs/hypemefed-stl10.yaml");
  char *state = fg_path_join(run, "method_state.safetensors");

  run_rounds(cfg, data, run, 0);
  const char *net = "hypernet.b1c1-b2c1";
  double after_one = abs_sum(state, net);
  run_rounds(cfg, data, run, 1);
  double after_two = abs_sum(state, net);
  cr_assert(isfinite(after_one) && after_one > 0 && after_two != after_one, "hypernetwork weights %g then %g",
            after_one, after_two);

  char *metrics_path = fg_path_join(run, "metrics.jsonl");
  char *text = fgt_read_text(metrics_path);
  int rounds = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    cr_assert_not_null(o, "bad metrics line: %s", line);
    const cJSON *clients = cJSON_GetObjectItemCaseSensitive(o, "clients");
    cr_assert_eq(cJSON_GetArraySize(clients), 6);
    for (int i = 0; i < 6; i++) {
      const cJSON *c = cJSON_GetArrayItem(clients, i);
      char want[32];
      snprintf(want, sizeof want, "depth %d", (int)fgt_json_number(c, "id") % 3 + 1);
      cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "config")->valuestring, want);
      cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "status")->valuestring, "ok");
    }
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "evaluated")));
    double acc = fgt_json_number(o, "accuracy");
    cr_assert(acc >= 0.0 && acc <= 1.0);
    cJSON_Delete(o);
    rounds++;
  }
  cr_assert_eq(rounds, 2);
  char *summary_path = fg_path_join(run, "summary.json");
  char *summary = fgt_read_text(summary_path);
  cr_assert(strstr(summary, "\"local\"") != NULL, "summary without the local protocol: %s", summary);
  free(summary);
  free(summary_path);
  free(text);
  free(metrics_path);
  free(state);
  free(cfg);
  fgt_rmtree(dir);
  free(dir);
  free(data);
  free(run);
}
