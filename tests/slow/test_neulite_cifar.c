/* configs/neulite-cifar10.yaml (the paper's setting: resnet18, 100 clients with budgets uniform
 * in 100-900 MiB, 10 per round, 5 local epochs, batch 64, SGD 0.01) runs for a few rounds on
 * generated data in the CIFAR-10 binary format: the stages cycle 1, 2, 3, 4; every participant
 * trains the round's stage within its budget (its measured peak is the stage's plan and at most
 * its budget); at most 10 take part; the final model is evaluated. */
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

enum { RECORD = 1 + 3072 };

/* A CIFAR-10 binary batch file of `count` records: a label byte in 0..9, then 3072 pixels. */
static void write_cifar_file(const char *dir, const char *name, int count, uint64_t seed) {
  unsigned char *buf = malloc((size_t)count * RECORD);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (int i = 0; i < count; i++) {
    unsigned char *rec = buf + (size_t)i * RECORD;
    rec[0] = (unsigned char)(i % 10);
    /* A class-dependent brightness plus noise, so the task is learnable. */
    for (int k = 1; k < RECORD; k++) rec[k] = (unsigned char)(20 * rec[0] + (int)fg_rng_below(&r, 56));
  }
  char *path = fg_path_join(dir, name);
  FGT_OK(fg_write_file_atomic(path, buf, (size_t)count * RECORD));
  free(path);
  free(buf);
}

Test(neulite, paper_config_runs_on_generated_cifar10, .timeout = 2400) {
  char *dir = fgt_mkdtemp(), *data = fg_path_join(dir, "cifar-10-batches-bin"), *run = fg_path_join(dir, "run");
  cr_assert_eq(mkdir(data, 0755), 0);
  for (int k = 1; k <= 5; k++) {
    char name[32];
    snprintf(name, sizeof name, "data_batch_%d.bin", k);
    write_cifar_file(data, name, 120, (uint64_t)k);
  }
  write_cifar_file(data, "test_batch.bin", 100, 9);
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src);
  char *cfg = fg_path_join(src, "configs/neulite-cifar10.yaml");
  char data_set[1024];
  snprintf(data_set, sizeof data_set, "data.dir=%s", data);
  fgt_run r = fgt_run_fedgap((const char *[]){"", "run", cfg, "--out", run, "--threads", "2", "--set", data_set, "--set",
                                              "rounds=4", "--set", "local.epochs=1", NULL});
  cr_assert_eq(r.status, 0, "fedgap run failed: %s", r.err);
  fgt_run_free(&r);

  char *metrics_path = fg_path_join(run, "metrics.jsonl");
  char *text = fgt_read_text(metrics_path);
  int rounds = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    cr_assert_not_null(o, "bad metrics line: %s", line);
    int round = (int)fgt_json_number(o, "round");
    cr_assert_eq(round, rounds + 1);
    const cJSON *clients = cJSON_GetObjectItemCaseSensitive(o, "clients");
    int n = cJSON_GetArraySize(clients);
    cr_assert(n >= 1 && n <= 10, "round %d: %d participants", round, n);
    char want[32];
    snprintf(want, sizeof want, "stage %d", (round - 1) % 4 + 1);
    for (int i = 0; i < n; i++) {
      const cJSON *c = cJSON_GetArrayItem(clients, i);
      const cJSON *config = cJSON_GetObjectItemCaseSensitive(c, "config");
      cr_assert_str_eq(config->valuestring, want, "round %d", round);
      cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "status")->valuestring, "ok");
      double budget = fgt_json_number(c, "budget_bytes"), planned = fgt_json_number(c, "planned_bytes"),
             peak = fgt_json_number(c, "engine_peak_bytes");
      cr_assert(budget >= 100.0 * 1048576 && budget <= 900.0 * 1048576, "budget %.0f", budget);
      cr_assert(peak == planned && peak <= budget, "round %d: peak %.0f, plan %.0f, budget %.0f", round, peak,
                planned, budget);
    }
    if (round == 4) {
      cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "evaluated")));
      double acc = fgt_json_number(o, "accuracy");
      cr_assert(acc >= 0.0 && acc <= 1.0);
      /* One accuracy per stage classifier. */
      cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(o, "exit_accuracy")), 4);
    }
    cJSON_Delete(o);
    rounds++;
  }
  cr_assert_eq(rounds, 4);
  free(text);
  free(metrics_path);
  free(cfg);
  fgt_rmtree(dir);
  free(dir);
  free(data);
  free(run);
}
