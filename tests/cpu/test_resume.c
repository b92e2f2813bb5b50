/* Resuming what was started (fedgap run --resume DIR) on a small Fashion-MNIST-format dataset:
 * - fg_config_diff names exactly the keys whose resolved values differ (threads aside);
 * - a resume whose configuration differs from the run's config.yaml is refused with one line
 *   naming the keys and both values, and leaves the run folder as it was;
 * - --allow-change lets a named key differ and config_changes.jsonl records it;
 * - `fedgap run --resume DIR` without a file resumes with the run's own config.yaml;
 * - a folder without config.yaml, or --allow-change without --resume, is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"
#include "fl/config.h"
#include "fl/metrics.h"

static char *tmp;

static void setup(void) {
  tmp = fgt_mkdtemp();
  fgt_write_tiny_fmnist(tmp, 240, 60, 11);
}

static void teardown(void) {
  fgt_rmtree(tmp);
  free(tmp);
}

TestSuite(resume, .init = setup, .fini = teardown);

/* tmp/name.yaml: a small fedavg run over the generated data, `rounds` rounds. */
static char *write_config(const char *name, int rounds, const char *extra) {
  char file[64], text[1024];
  snprintf(file, sizeof file, "%s.yaml", name);
  char *path = fgt_join(tmp, file);
  snprintf(text, sizeof text,
           "name: %s\nseed: 2\nrounds: %d\nthreads: 1\n"
           "data: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: iid}}\n"
           "model: {arch: cnn, width: 4}\nclients: {count: 4}\nsampling: {per_round: 2}\n"
           "local: {batch: 32, lr: 0.05}\neval: {max_samples: 60}\ncheckpoint: {every: 1}\n"
           "method: {name: fedavg}\n%s",
           name, rounds, tmp, extra ? extra : "");
  fgt_write_text(path, text);
  return path;
}

static fgt_run run(const char *const *argv) { return fgt_run_fedgap(argv); }

static void run_ok(const char *const *argv) {
  fgt_run r = run(argv);
  cr_assert_eq(r.status, 0, "fedgap run failed (%d): %s", r.status, r.err);
  fgt_run_free(&r);
}

static int metric_rounds(const char *dir) {
  fg_round_record *rec = NULL;
  int n = 0;
  FGT_OK(fg_metrics_read(dir, &rec, &n));
  free(rec);
  return n;
}

static void load(const char *path, const char *const *set, int n_set, fg_config *cfg) {
  FGT_OK(fg_config_load(path, set, n_set, cfg));
}

Test(resume, diff_names_the_differing_keys) {
  char *path = write_config("d", 3, NULL);
  fg_config a, b;
  load(path, NULL, 0, &a);
  const char *set[] = {"rounds=5", "local.lr=0.1", "threads=2", "method.weighting=count"};
  load(path, set, 4, &b);
  fg_config_change ch[8];
  int n = -1;
  FGT_OK(fg_config_diff(&a, &b, ch, 8, &n));
  cr_assert_eq(n, 3, "changes: %d", n);
  cr_assert_str_eq(ch[0].key, "rounds");
  cr_assert_str_eq(ch[0].from, "3");
  cr_assert_str_eq(ch[0].to, "5");
  cr_assert_str_eq(ch[1].key, "local.lr");
  cr_assert_str_eq(ch[1].from, "0.05");
  cr_assert_str_eq(ch[1].to, "0.1");
  cr_assert_str_eq(ch[2].key, "method.weighting");
  FGT_OK(fg_config_diff(&a, &a, ch, 8, &n));
  cr_assert_eq(n, 0);
  /* a key one of them leaves to its default (data.dir written as a comment) */
  fg_config c;
  const char *reset[] = {"data={dataset: fashion-mnist}"};
  load(path, reset, 1, &c);
  FGT_OK(fg_config_diff(&a, &c, ch, 8, &n));
  cr_assert_eq(n, 1, "changes: %d", n);
  cr_assert_str_eq(ch[0].key, "data.dir");
  cr_assert_str_eq(ch[0].to, "(absent)");
  /* lists of mappings entry by entry */
  fg_config m1, m2;
  const char *other_rates[] = {"methods[1].rates=[1, 0.25]"};
  fg_config_free(&c);
  char *plain = write_config("m", 3, NULL);
  /* a file with `methods:` instead of `method:` */
  char text[1024];
  char *t = fgt_read_text(plain);
  char *at = strstr(t, "method: {name: fedavg}");
  cr_assert_not_null(at);
  *at = '\0';
  snprintf(text, sizeof text, "%smethods: [{name: fedavg}, {name: heterofl, rates: [1, 0.5]}]\n", t);
  fgt_write_text(plain, text);
  free(t);
  load(plain, NULL, 0, &m1);
  load(plain, other_rates, 1, &m2);
  FGT_OK(fg_config_diff(&m1, &m2, ch, 8, &n));
  cr_assert_eq(n, 1, "changes: %d", n);
  cr_assert_str_eq(ch[0].key, "methods[1].rates");
  cr_assert_str_eq(ch[0].from, "[1, 0.5]");
  cr_assert_str_eq(ch[0].to, "[1, 0.25]");
  fg_config_free(&m1);
  fg_config_free(&m2);
  fg_config_free(&a);
  fg_config_free(&b);
  free(plain);
  free(path);
}

Test(resume, a_differing_configuration_is_refused_naming_the_keys, .timeout = 300) {
  char *cfg = write_config("r", 3, NULL), *dir = fgt_join(tmp, "run-r");
  run_ok((const char *[]){"", "run", cfg, "--set", "rounds=2", "--out", dir, NULL});
  cr_assert_eq(metric_rounds(dir), 2);
  char *ckpt = fgt_join(dir, "checkpoint.safetensors"), *own = fgt_join(dir, "config.yaml");
  char *before = fgt_read_text(own);
  struct stat st0, st1;
  cr_assert_eq(stat(ckpt, &st0), 0);

  /* the file says rounds: 3, the run was started with rounds=2 */
  fgt_run r = run((const char *[]){"", "run", cfg, "--resume", dir, "--set", "local.lr=0.07", NULL});
  cr_assert_eq(r.status, 2, "status %d: %s", r.status, r.err);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "rounds (2 -> 3)") != NULL, "%s", r.err);
  cr_assert(strstr(r.err, "local.lr (0.05 -> 0.07)") != NULL, "%s", r.err);
  cr_assert(strstr(r.err, "--allow-change rounds") != NULL, "%s", r.err);
  fgt_run_free(&r);
  /* nothing in the folder changed */
  cr_assert_eq(metric_rounds(dir), 2);
  cr_assert_eq(stat(ckpt, &st1), 0);
  cr_assert_eq(st0.st_mtim.tv_sec, st1.st_mtim.tv_sec);
  cr_assert_eq(st0.st_mtim.tv_nsec, st1.st_mtim.tv_nsec);
  char *after = fgt_read_text(own);
  cr_assert_str_eq(before, after);
  char *log = fgt_join(dir, "config_changes.jsonl");
  cr_assert_neq(access(log, F_OK), 0, "nothing is recorded for a refused resume");
  free(log);
  free(after);
  free(before);
  free(own);
  free(ckpt);
  free(dir);
  free(cfg);
}

Test(resume, an_allowed_change_is_recorded_and_the_own_config_resumes, .timeout = 300) {
  char *cfg = write_config("a", 3, NULL), *dir = fgt_join(tmp, "run-a");
  run_ok((const char *[]){"", "run", cfg, "--set", "rounds=2", "--out", dir, NULL});
  run_ok((const char *[]){"", "run", cfg, "--resume", dir, "--allow-change", "rounds", NULL});
  cr_assert_eq(metric_rounds(dir), 3);
  char *log = fgt_join(dir, "config_changes.jsonl");
  char *text = fgt_read_text(log);
  cr_assert_eq(fgt_line_count(text), 1, "%s", text);
  cJSON *line = cJSON_Parse(text);
  cr_assert_not_null(line, "%s", text);
  const cJSON *changes = cJSON_GetObjectItemCaseSensitive(line, "changes");
  cr_assert_eq(cJSON_GetArraySize(changes), 1, "%s", text);
  const cJSON *c = cJSON_GetArrayItem(changes, 0);
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "key")->valuestring, "rounds");
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "from")->valuestring, "2");
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(c, "to")->valuestring, "3");
  cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(line, "time")));
  cJSON_Delete(line);
  free(text);

  /* the folder's config.yaml now says rounds: 3: resuming with it alone is no change */
  fg_config own, file;
  char *own_path = fgt_join(dir, "config.yaml");
  load(own_path, NULL, 0, &own);
  load(cfg, NULL, 0, &file);
  cr_assert_eq(own.rounds, 3);
  fg_config_change ch[4];
  int n = -1;
  FGT_OK(fg_config_diff(&own, &file, ch, 4, &n));
  cr_assert_eq(n, 0);
  fg_config_free(&own);
  fg_config_free(&file);

  /* more rounds through --set with the folder's own configuration: allowed, recorded again */
  run_ok((const char *[]){"", "run", "--resume", dir, "--set", "rounds=4", "--allow-change", "rounds", NULL});
  cr_assert_eq(metric_rounds(dir), 4);
  text = fgt_read_text(log);
  cr_assert_eq(fgt_line_count(text), 2, "%s", text);
  free(text);
  /* and plain `fedgap run --resume DIR`: a finished run, nothing to change or record */
  fgt_run r = run((const char *[]){"", "run", "--resume", dir, NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "final_accuracy=") != NULL, "%s", r.out);
  fgt_run_free(&r);
  cr_assert_eq(metric_rounds(dir), 4);
  text = fgt_read_text(log);
  cr_assert_eq(fgt_line_count(text), 2, "%s", text);
  free(text);
  free(own_path);
  free(log);
  free(dir);
  free(cfg);
}

Test(resume, resuming_nothing_is_refused, .timeout = 120) {
  char *cfg = write_config("n", 2, NULL), *dir = fgt_join(tmp, "empty");
  cr_assert_eq(mkdir(dir, 0755), 0);
  fgt_run r = run((const char *[]){"", "run", cfg, "--resume", dir, NULL});
  cr_assert_eq(r.status, 1, "status %d: %s", r.status, r.err);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "config.yaml") != NULL, "%s", r.err);
  fgt_run_free(&r);
  r = run((const char *[]){"", "run", "--resume", dir, NULL});
  cr_assert_neq(r.status, 0);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "config.yaml") != NULL, "%s", r.err);
  fgt_run_free(&r);
  r = run((const char *[]){"", "run", cfg, "--out", dir, "--allow-change", "rounds", NULL});
  cr_assert_eq(r.status, 2, "status %d: %s", r.status, r.err);
  cr_assert(strstr(r.err, "--allow-change") != NULL, "%s", r.err);
  fgt_run_free(&r);
  free(dir);
  free(cfg);
}

Test(resume, an_edited_partition_file_is_refused, .timeout = 120) {
  char *cfg = write_config("p", 2, NULL), *dir = fgt_join(tmp, "run-p");
  run_ok((const char *[]){"", "run", cfg, "--set", "rounds=1", "--out", dir, NULL});
  char *path = fgt_join(dir, "partition.json");
  char *text = fgt_read_text(path);
  /* swap the first two indices of client 0: the same samples, another order, another hash */
  char *list = strstr(text, "\"indices\": [") + strlen("\"indices\": [");
  char *comma = strchr(list, ','), *end = comma + 1 + strcspn(comma + 1, ",]");
  char a[16], b[16];
  snprintf(a, sizeof a, "%.*s", (int)(comma - list), list);
  snprintf(b, sizeof b, "%.*s", (int)(end - comma - 1), comma + 1);
  char *swapped = malloc(strlen(text) + 1);
  size_t at = (size_t)(list - text);
  memcpy(swapped, text, at);
  at += (size_t)sprintf(swapped + at, "%s,%s", b, a);
  strcpy(swapped + at, end);
  fgt_write_text(path, swapped);
  fgt_run r = run((const char *[]){"", "run", cfg, "--resume", dir, "--allow-change", "rounds", NULL});
  cr_assert_eq(r.status, 1, "status %d: %s", r.status, r.err);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "partition.json") && strstr(r.err, "is not the one the configuration gives"), "%s", r.err);
  fgt_run_free(&r);
  cr_assert_eq(metric_rounds(dir), 1);
  free(swapped);
  free(text);
  free(path);
  free(dir);
  free(cfg);
}
