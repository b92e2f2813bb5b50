/* Run-folder metrics: every field of metrics.jsonl read back with cJSON (NaN as null, the
 * per-client array, error only when not ok), metrics.csv header and rows compared numerically,
 * resume keeping rounds <= k and dropping later ones and a torn last line, a fresh open replacing
 * old files, bad records refused without touching the files, the summary round trip, and the
 * failed tries of a round on remote devices recorded beside the rounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/test_util.h"
#include "fl/metrics.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* The whole file with plain stdio (NUL-terminated), independently of the code under test. */
static char *read_text(const char *dir, const char *name) {
  char *path = fgt_join(dir, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot open %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  buf[n] = '\0';
  fclose(f);
  free(path);
  return buf;
}

static void append_raw(const char *dir, const char *name, const char *text) {
  char *path = fgt_join(dir, name);
  FILE *f = fopen(path, "ab");
  cr_assert_not_null(f);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
  free(path);
}

static long file_size(const char *dir, const char *name) {
  char *path = fgt_join(dir, name);
  struct stat st;
  long n = stat(path, &st) == 0 ? (long)st.st_size : -1;
  free(path);
  return n;
}

/* Splits text into lines (without their newlines) in place; returns the count. A last piece
 * without a newline is not counted. */
static int split_lines(char *text, char **lines, int cap) {
  int n = 0;
  for (char *p = text; *p && n < cap;) {
    char *nl = strchr(p, '\n');
    if (!nl) break;
    *nl = '\0';
    lines[n++] = p;
    p = nl + 1;
  }
  return n;
}

/* Splits a CSV line at commas in place (no quoting in these files). */
static int split_cells(char *line, char **cells, int cap) {
  int n = 0;
  cells[n++] = line;
  for (char *p = line; *p; p++)
    if (*p == ',' && n < cap) {
      *p = '\0';
      cells[n++] = p + 1;
    }
  return n;
}

/* The test's clients and rounds. */
static fg_client_record clients1[2];
static fg_client_record clients3[1];

static fg_round_record make_round(int round, int n_exits) {
  fg_round_record r;
  memset(&r, 0, sizeof r);
  r.round = round;
  r.evaluated = 1;
  r.eval_samples = 10000 + round;
  r.n_exits = n_exits;
  for (int i = 0; i < n_exits; i++) r.exit_accuracy[i] = 0.1 * (i + 1) + 0.001 * round;
  r.accuracy = n_exits ? r.exit_accuracy[n_exits - 1] : 0.5;
  r.ensemble_accuracy = 0.77 + 0.01 * round;
  r.test_loss = 1.0 / (round + 2);
  r.train_loss = 2.0 / (round + 3);
  r.bytes_down = (size_t)round * 1000003u;
  r.bytes_up = (size_t)round * 999983u;
  r.seconds = 1.25 * round;
  r.elapsed = 10.5 * round;
  r.max_client_engine_peak = (size_t)round * (1u << 20) + 17;
  r.process_peak = ((size_t)5 << 30) + (size_t)round; /* above 2^32 */
  return r;
}

static void make_clients(void) {
  memset(clients1, 0, sizeof clients1);
  clients1[0] = (fg_client_record){.id = 7, .level = 0, .config = "full", .samples = 600,
                                   .status = FG_CLIENT_OK, .budget_bytes = 0, .planned_bytes = 123456789,
                                   .engine_peak_bytes = 123450000, .process_peak_bytes = 200000000,
                                   .bytes_down = 4000000, .bytes_up = 4000001, .train_loss = 0.625,
                                   .seconds = 3.5};
  /* text in `error` even though status is ok must not be written */
  snprintf(clients1[0].error, sizeof clients1[0].error, "stale text");
  clients1[1] = (fg_client_record){.id = 42, .level = 3, .config = "rate 0.125", .samples = 0,
                                   .status = FG_CLIENT_NO_FIT, .budget_bytes = 1048576,
                                   .planned_bytes = 2097152, .engine_peak_bytes = 0,
                                   .process_peak_bytes = 0, .bytes_down = 0, .bytes_up = 0,
                                   .train_loss = NAN, .seconds = 0};
  snprintf(clients1[1].error, sizeof clients1[1].error, "needs 2.00 MiB, budget 1.00 MiB");
  clients3[0] = (fg_client_record){.id = 3, .level = 1, .samples = 99, .status = FG_CLIENT_FAILED,
                                   .train_loss = INFINITY, .seconds = 0.25};
  /* a config that fills its field with no terminating NUL */
  memset(clients3[0].config, 'x', sizeof clients3[0].config);
  snprintf(clients3[0].error, sizeof clients3[0].error, "said \"no\"\\ then left");
}

/* Three rounds: 1 with two clients, 2 not evaluated (NaNs), 3 with a failed client. */
static void make_three(fg_round_record r[3]) {
  make_clients();
  r[0] = make_round(1, 3);
  r[0].ensemble_accuracy = NAN;
  r[0].n_clients = 2;
  r[0].clients = clients1;
  r[1] = make_round(2, 3);
  r[1].evaluated = 0;
  r[1].eval_samples = 0;
  r[1].accuracy = r[1].exit_accuracy[0] = r[1].exit_accuracy[1] = r[1].exit_accuracy[2] = NAN;
  r[1].test_loss = NAN;
  r[1].ensemble_accuracy = NAN;
  r[2] = make_round(3, 3);
  r[2].n_clients = 1;
  r[2].clients = clients3;
}

static void write_rounds(const char *dir, const fg_round_record *r, int n) {
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, -1, &m));
  for (int i = 0; i < n; i++) FGT_OK(fg_metrics_append(m, &r[i]));
  fg_metrics_close(m);
}

/* ---- JSON field checks --------------------------------------------------------------------- */

static void expect_number(const cJSON *o, const char *name, double want) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  if (!isfinite(want)) {
    cr_assert(cJSON_IsNull(v), "field %s should be null", name);
    return;
  }
  cr_assert(cJSON_IsNumber(v), "field %s is not a number", name);
  cr_assert_eq(v->valuedouble, want, "field %s: %.17g, want %.17g", name, v->valuedouble, want);
}

static void expect_string(const cJSON *o, const char *name, const char *want) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  cr_assert(cJSON_IsString(v), "field %s is not a string", name);
  cr_assert_str_eq(v->valuestring, want, "field %s", name);
}

static void expect_client(const cJSON *o, const fg_client_record *c, const char *status, const char *config) {
  expect_number(o, "id", c->id);
  expect_number(o, "level", c->level);
  expect_string(o, "config", config);
  expect_number(o, "samples", (double)c->samples);
  expect_string(o, "status", status);
  if (c->status == FG_CLIENT_OK)
    cr_assert_null(cJSON_GetObjectItemCaseSensitive(o, "error"), "an ok client has no error field");
  else
    expect_string(o, "error", c->error);
  expect_number(o, "budget_bytes", (double)c->budget_bytes);
  expect_number(o, "planned_bytes", (double)c->planned_bytes);
  expect_number(o, "engine_peak_bytes", (double)c->engine_peak_bytes);
  expect_number(o, "process_peak_bytes", (double)c->process_peak_bytes);
  expect_number(o, "bytes_down", (double)c->bytes_down);
  expect_number(o, "bytes_up", (double)c->bytes_up);
  expect_number(o, "train_loss", c->train_loss);
  expect_number(o, "seconds", c->seconds);
}

static void expect_round(const cJSON *o, const fg_round_record *r) {
  expect_number(o, "round", r->round);
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "evaluated");
  cr_assert(cJSON_IsBool(ev) && (cJSON_IsTrue(ev) != 0) == (r->evaluated != 0), "evaluated");
  expect_number(o, "eval_samples", (double)r->eval_samples);
  expect_number(o, "n_exits", r->n_exits);
  const cJSON *ex = cJSON_GetObjectItemCaseSensitive(o, "exit_accuracy");
  cr_assert(cJSON_IsArray(ex));
  cr_assert_eq(cJSON_GetArraySize(ex), r->n_exits);
  for (int i = 0; i < r->n_exits; i++) {
    const cJSON *e = cJSON_GetArrayItem(ex, i);
    if (isnan(r->exit_accuracy[i]))
      cr_assert(cJSON_IsNull(e), "exit %d should be null", i);
    else
      cr_assert(cJSON_IsNumber(e) && e->valuedouble == r->exit_accuracy[i], "exit %d", i);
  }
  expect_number(o, "accuracy", r->accuracy);
  expect_number(o, "ensemble_accuracy", r->ensemble_accuracy);
  expect_number(o, "test_loss", r->test_loss);
  expect_number(o, "train_loss", r->train_loss);
  expect_number(o, "n_clients", r->n_clients);
  expect_number(o, "bytes_down", (double)r->bytes_down);
  expect_number(o, "bytes_up", (double)r->bytes_up);
  expect_number(o, "seconds", r->seconds);
  expect_number(o, "elapsed", r->elapsed);
  expect_number(o, "max_client_engine_peak", (double)r->max_client_engine_peak);
  expect_number(o, "process_peak", (double)r->process_peak);
  const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "clients");
  cr_assert(cJSON_IsArray(cl), "clients is an array");
  cr_assert_eq(cJSON_GetArraySize(cl), r->n_clients);
}

/* ---- tests --------------------------------------------------------------------------------- */

Test(metrics, jsonl_records_read_back_field_by_field) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[3];
  make_three(r);
  write_rounds(dir, r, 3);

  char *text = read_text(dir, "metrics.jsonl");
  size_t len = strlen(text);
  cr_assert(len > 0 && text[len - 1] == '\n', "the file ends with a complete line");
  char *lines[8];
  int n = split_lines(text, lines, 8);
  cr_assert_eq(n, 3, "one line per round");
  for (int i = 0; i < 3; i++) {
    cr_assert_null(strchr(lines[i], '\n'));
    cJSON *o = cJSON_Parse(lines[i]);
    cr_assert_not_null(o, "line %d is JSON: %s", i + 1, lines[i]);
    expect_round(o, &r[i]);
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "clients");
    if (i == 0) {
      expect_client(cJSON_GetArrayItem(cl, 0), &clients1[0], "ok", "full");
      expect_client(cJSON_GetArrayItem(cl, 1), &clients1[1], "no_fit", "rate 0.125");
    }
    if (i == 2) {
      char x48[49]; /* all 48 bytes, no read past the field */
      memset(x48, 'x', 48);
      x48[48] = '\0';
      expect_client(cJSON_GetArrayItem(cl, 0), &clients3[0], "failed", x48);
    }
    cJSON_Delete(o);
  }
  free(text);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, csv_header_and_rows) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[5];
  make_three(r);
  r[3] = make_round(4, 2); /* fewer exits than the header: an empty cell */
  r[4] = make_round(5, 4); /* more: the fourth is not in the CSV */
  write_rounds(dir, r, 5);

  char *text = read_text(dir, "metrics.csv");
  char *lines[8];
  cr_assert_eq(split_lines(text, lines, 8), 6, "header and five rows");
  cr_assert_str_eq(lines[0],
                   "round,evaluated,eval_samples,accuracy,ensemble_accuracy,test_loss,train_loss,n_clients,"
                   "bytes_down,bytes_up,seconds,elapsed,max_client_engine_peak,process_peak,exit1,exit2,exit3");
  for (int i = 0; i < 5; i++) {
    char *c[32];
    int n = split_cells(lines[i + 1], c, 32);
    cr_assert_eq(n, 17, "row %d has %d cells", i + 1, n);
    const fg_round_record *w = &r[i];
    const double want[17] = {w->round, w->evaluated, (double)w->eval_samples, w->accuracy,
                             w->ensemble_accuracy, w->test_loss, w->train_loss, w->n_clients,
                             (double)w->bytes_down, (double)w->bytes_up, w->seconds, w->elapsed,
                             (double)w->max_client_engine_peak, (double)w->process_peak,
                             w->n_exits > 0 ? w->exit_accuracy[0] : NAN,
                             w->n_exits > 1 ? w->exit_accuracy[1] : NAN,
                             w->n_exits > 2 ? w->exit_accuracy[2] : NAN};
    for (int k = 0; k < 17; k++) {
      if (isnan(want[k])) {
        cr_assert_str_eq(c[k], "", "row %d cell %d should be empty", i + 1, k);
        continue;
      }
      char *end;
      double got = strtod(c[k], &end);
      cr_assert(end != c[k] && *end == '\0', "row %d cell %d '%s' is a number", i + 1, k, c[k]);
      cr_assert_eq(got, want[k], "row %d cell %d: %.17g, want %.17g", i + 1, k, got, want[k]);
    }
  }
  free(text);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, resume_keeps_rounds_up_to_k_and_drops_a_torn_line) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[5];
  make_three(r);
  r[3] = make_round(4, 3);
  r[4] = make_round(5, 3);
  write_rounds(dir, r, 5);
  char *jsonl_before = read_text(dir, "metrics.jsonl"), *csv_before = read_text(dir, "metrics.csv");
  append_raw(dir, "metrics.jsonl", "{\"round\":6,\"evaluated\":tr"); /* an interrupted append */

  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, 3, &m));
  /* the kept records are the first three lines, byte for byte; the CSV its header and 3 rows */
  char *jsonl = read_text(dir, "metrics.jsonl"), *csv = read_text(dir, "metrics.csv");
  /* where the fourth line starts in the originals (found on copies that split_lines cuts up) */
  char *lines[8];
  size_t cap = strlen(jsonl_before) > strlen(csv_before) ? strlen(jsonl_before) : strlen(csv_before);
  char *cut = malloc(cap + 1);
  cr_assert_not_null(cut);
  strcpy(cut, jsonl_before);
  cr_assert_eq(split_lines(cut, lines, 8), 5);
  size_t keep = (size_t)(lines[3] - cut);
  cr_assert_eq(strlen(jsonl), keep, "kept %zu bytes, want %zu", strlen(jsonl), keep);
  cr_assert_eq(memcmp(jsonl, jsonl_before, keep), 0);
  strcpy(cut, csv_before);
  cr_assert_eq(split_lines(cut, lines, 8), 6);
  size_t keep_csv = (size_t)(lines[4] - cut);
  cr_assert_eq(strlen(csv), keep_csv);
  cr_assert_eq(memcmp(csv, csv_before, keep_csv), 0);
  free(cut);
  free(jsonl_before);

  /* appending continues after round 3; an old round is refused */
  fg_round_record again = make_round(4, 3);
  again.accuracy = 0.875;
  FGT_OK(fg_metrics_append(m, &again));
  fg_round_record old = make_round(3, 3);
  cr_assert_eq(fg_metrics_append(m, &old), FG_ERR_INVALID);
  fg_metrics_close(m);

  fg_round_record *back = NULL;
  int n = 0;
  FGT_OK(fg_metrics_read(dir, &back, &n));
  cr_assert_eq(n, 4);
  for (int i = 0; i < 4; i++) cr_assert_eq(back[i].round, i + 1);
  cr_assert_eq(back[3].accuracy, 0.875);
  cr_assert_eq(back[0].n_clients, 2);
  cr_assert_null(back[0].clients);
  cr_assert(isnan(back[1].accuracy) && !back[1].evaluated);
  free(back);
  char *csv_after = read_text(dir, "metrics.csv");
  cr_assert_eq(split_lines(csv_after, lines, 8), 5, "header and rounds 1..4");
  cr_assert_eq(strncmp(lines[4], "4,1,", 4), 0, "%s", lines[4]);
  free(csv_after);
  free(jsonl);
  free(csv);
  free(csv_before);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, resume_past_the_end_keeps_all_but_the_torn_line) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[3];
  make_three(r);
  write_rounds(dir, r, 3);
  char *before = read_text(dir, "metrics.jsonl");
  append_raw(dir, "metrics.jsonl", "{\"round\":4,\"evaluated\":true,\"eval");
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, 1000, &m));
  fg_metrics_close(m);
  char *after = read_text(dir, "metrics.jsonl");
  cr_assert_str_eq(after, before);
  /* a CSV deleted by hand is rebuilt from metrics.jsonl */
  char *csv_path = fgt_join(dir, "metrics.csv");
  char *csv_before = read_text(dir, "metrics.csv");
  cr_assert_eq(remove(csv_path), 0);
  FGT_OK(fg_metrics_open(dir, 1000, &m));
  fg_metrics_close(m);
  char *csv_after = read_text(dir, "metrics.csv");
  cr_assert_str_eq(csv_after, csv_before);
  free(csv_path);
  free(csv_before);
  free(csv_after);
  free(before);
  free(after);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, resume_refuses_a_corrupted_middle_line_and_keeps_the_files) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[3];
  make_three(r);
  write_rounds(dir, r, 1);
  append_raw(dir, "metrics.jsonl", "{\"round\": garbage}\n");
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, 1000, &m)); /* a bad last line counts as torn */
  fg_metrics_close(m);
  append_raw(dir, "metrics.jsonl", "{\"round\": garbage}\n");
  append_raw(dir, "metrics.jsonl", "{\"round\": 9}\n"); /* now it is not the last line */
  char *before = read_text(dir, "metrics.jsonl");
  cr_assert_eq(fg_metrics_open(dir, 1000, &m), FG_ERR_FORMAT);
  cr_assert_null(m);
  cr_assert(strstr(fg_last_error(), "metrics.jsonl:2") != NULL, "%s", fg_last_error());
  char *after = read_text(dir, "metrics.jsonl");
  cr_assert_str_eq(after, before, "a failed resume leaves the file alone");
  free(before);
  free(after);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, fresh_open_replaces_old_files) {
  char *dir = fgt_mkdtemp();
  fg_round_record r[3];
  make_three(r);
  write_rounds(dir, r, 3);
  cr_assert(file_size(dir, "metrics.jsonl") > 0 && file_size(dir, "metrics.csv") > 0);
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, -1, &m));
  cr_assert_eq(file_size(dir, "metrics.jsonl"), 0);
  cr_assert_eq(file_size(dir, "metrics.csv"), 0);
  fg_round_record one = make_round(1, 1);
  FGT_OK(fg_metrics_append(m, &one));
  fg_metrics_close(m);
  char *csv = read_text(dir, "metrics.csv");
  char *lines[4];
  cr_assert_eq(split_lines(csv, lines, 4), 2);
  cr_assert(strstr(lines[0], ",exit1") && !strstr(lines[0], "exit2"), "header from the new first record");
  free(csv);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, bad_records_are_refused_without_writing) {
  char *dir = fgt_mkdtemp();
  fg_metrics *m = NULL;
  char *missing = fgt_join(dir, "no/such");
  cr_assert_eq(fg_metrics_open(missing, -1, &m), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), missing) != NULL, "%s", fg_last_error());
  free(missing);
  FGT_OK(fg_metrics_open(dir, -1, &m));
  fg_round_record r = make_round(1, 2);
  r.n_exits = 17;
  cr_assert_eq(fg_metrics_append(m, &r), FG_ERR_INVALID);
  r = make_round(0, 2);
  cr_assert_eq(fg_metrics_append(m, &r), FG_ERR_INVALID);
  r = make_round(1, 2);
  r.n_clients = 3; /* no records */
  cr_assert_eq(fg_metrics_append(m, &r), FG_ERR_INVALID);
  cr_assert_eq(file_size(dir, "metrics.jsonl"), 0);
  cr_assert_eq(file_size(dir, "metrics.csv"), 0);
  fg_metrics_close(m);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, read_ignores_a_torn_line_and_names_a_missing_file) {
  char *dir = fgt_mkdtemp();
  fg_round_record *back = NULL;
  int n = -1;
  cr_assert_eq(fg_metrics_read(dir, &back, &n), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), "metrics.jsonl") != NULL, "%s", fg_last_error());
  fg_round_record r[3];
  make_three(r);
  write_rounds(dir, r, 3);
  append_raw(dir, "metrics.jsonl", "{\"round\":4,");
  FGT_OK(fg_metrics_read(dir, &back, &n));
  cr_assert_eq(n, 3);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(back[i].round, r[i].round);
    cr_assert_eq(back[i].eval_samples, r[i].eval_samples);
    cr_assert_eq(back[i].n_exits, 3);
    cr_assert_eq(back[i].bytes_down, r[i].bytes_down);
    cr_assert_eq(back[i].process_peak, r[i].process_peak);
    cr_assert_eq(back[i].max_client_engine_peak, r[i].max_client_engine_peak);
    cr_assert_eq(back[i].seconds, r[i].seconds);
    cr_assert_eq(back[i].n_clients, r[i].n_clients);
  }
  cr_assert_eq(back[2].exit_accuracy[1], r[2].exit_accuracy[1]);
  cr_assert(isnan(back[0].ensemble_accuracy));
  free(back);
  fgt_rmtree(dir);
  free(dir);
}

Test(metrics, summary_round_trip) {
  char *dir = fgt_mkdtemp();
  fg_summary s = {.name = "quick \"start\"", .method = "heterofl", .dataset = "fashion-mnist", .arch = "cnn",
                  .revision = NULL, .rounds = 200, .final_accuracy = 0.8125, .best_accuracy = NAN,
                  .n_exits = 2, .final_exit_accuracy = {0.5, 0.8125},
                  .max_client_engine_peak = ((size_t)3 << 30) + 5, .process_peak = 987654321,
                  .wall_seconds = 123.25, .clients = 100, .clients_never_fit = 7, .eval_protocol = "local"};
  fg_spread_time spread = {0.5, 10.25, 2.0, 30.5, 1.5, 4.0, 12, 36};
  s.processes = 4;
  s.spread = &spread;
  FGT_OK(fg_summary_write(dir, &s));

  char *text = read_text(dir, "summary.json");
  cJSON *o = cJSON_Parse(text);
  cr_assert_not_null(o);
  expect_string(o, "name", "quick \"start\"");
  cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "revision")));
  expect_number(o, "best_accuracy", NAN);
  expect_number(o, "process_peak", 987654321);
  expect_number(o, "clients_never_fit", 7);
  expect_string(o, "eval_protocol", "local");
  expect_number(o, "processes", 4);
  const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "spread");
  cr_assert(cJSON_IsObject(sp));
  expect_number(sp, "server_wait_seconds", 2.0);
  expect_number(sp, "worker_send_seconds", 1.5);
  expect_number(sp, "worker_jobs", 36);
  cJSON_Delete(o);
  free(text);

  fg_summary_file f;
  FGT_OK(fg_summary_read(dir, &f));
  cr_assert_str_eq(f.summary.name, s.name);
  cr_assert_str_eq(f.summary.method, s.method);
  cr_assert_str_eq(f.summary.dataset, s.dataset);
  cr_assert_str_eq(f.summary.arch, s.arch);
  cr_assert_null(f.summary.revision);
  cr_assert_eq(f.summary.rounds, 200);
  cr_assert_eq(f.summary.final_accuracy, 0.8125);
  cr_assert(isnan(f.summary.best_accuracy));
  cr_assert_eq(f.summary.n_exits, 2);
  cr_assert_eq(f.summary.final_exit_accuracy[0], 0.5);
  cr_assert_eq(f.summary.final_exit_accuracy[1], 0.8125);
  cr_assert_eq(f.summary.max_client_engine_peak, s.max_client_engine_peak);
  cr_assert_eq(f.summary.process_peak, s.process_peak);
  cr_assert_eq(f.summary.wall_seconds, 123.25);
  cr_assert_eq(f.summary.clients, 100);
  cr_assert_eq(f.summary.clients_never_fit, 7);
  cr_assert_str_eq(f.summary.eval_protocol, "local");
  cr_assert_eq(f.summary.processes, 4);
  cr_assert_null(f.summary.spread, "read back without where the time went");
  fg_summary_file_free(&f);

  /* written as null when not recorded; absent (a summary from before the field) reads as NULL */
  s.eval_protocol = NULL;
  FGT_OK(fg_summary_write(dir, &s));
  FGT_OK(fg_summary_read(dir, &f));
  cr_assert_null(f.summary.eval_protocol);
  cr_assert_str_eq(f.summary.arch, "cnn");
  fg_summary_file_free(&f);
  char *old_path = fgt_join(dir, "summary.json");
  FILE *old = fopen(old_path, "wb");
  fputs("{\"name\": \"n\", \"method\": \"fedavg\", \"dataset\": \"d\", \"arch\": \"cnn\", \"revision\": null, "
        "\"rounds\": 2, \"final_accuracy\": 0.5, \"best_accuracy\": 0.5, \"n_exits\": 1, "
        "\"final_exit_accuracy\": [0.5], \"max_client_engine_peak\": 1, \"process_peak\": 2, \"wall_seconds\": 1, "
        "\"clients\": 3, \"clients_never_fit\": 0}",
        old);
  fclose(old);
  free(old_path);
  FGT_OK(fg_summary_read(dir, &f));
  cr_assert_null(f.summary.eval_protocol);
  cr_assert_eq(f.summary.clients, 3);
  cr_assert_eq(f.summary.processes, 1, "a summary from before spread runs: one process");
  fg_summary_file_free(&f);

  /* a summary with a wrong field names the file and the field */
  char *path = fgt_join(dir, "summary.json");
  FILE *fp = fopen(path, "wb");
  fputs("{\"name\": 3}", fp);
  fclose(fp);
  cr_assert_eq(fg_summary_read(dir, &f), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "summary.json") && strstr(fg_last_error(), "'name'"), "%s", fg_last_error());
  free(path);
  fgt_rmtree(dir);
  free(dir);
}

/* A failed try of a round on remote devices: one line of failed_rounds.jsonl per try with its
 * participants' records and counts; the round's record, once completed, says how many tries
 * failed (and has no such key when none did); a torn last line is cut before the next append; a
 * resume keeps the tries, a fresh open removes them; metrics.jsonl stays readable. */
Test(metrics, failed_tries_of_a_round_are_recorded_beside_the_rounds) {
  char *dir = fgt_mkdtemp();
  make_clients();
  fg_client_record tried[2] = {clients1[0], clients1[0]};
  tried[1].id = 8;
  tried[1].status = FG_CLIENT_DROPPED;
  snprintf(tried[1].error, sizeof tried[1].error, "device d8 missed the round's deadline");
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(dir, -1, &m));
  fg_round_record first = make_round(1, 1);
  FGT_OK(fg_metrics_append(m, &first));
  cr_assert_eq(file_size(dir, "failed_rounds.jsonl"), -1, "no file until a try fails");
  fg_failed_round f = {2, 1, 1, 2, 1, 2, tried};
  FGT_OK(fg_metrics_append_failed(m, &f));
  fg_metrics_close(m);
  append_raw(dir, "failed_rounds.jsonl", "{\"round\": 2, \"att"); /* an interrupted append */

  FGT_OK(fg_metrics_open(dir, 1, &m)); /* resumed after round 1 */
  f.attempt = 2;
  f.retried = 0;
  FGT_OK(fg_metrics_append_failed(m, &f));
  fg_round_record second = make_round(2, 1);
  second.failed_attempts = 2;
  second.n_clients = 2;
  second.clients = tried;
  FGT_OK(fg_metrics_append(m, &second));
  fg_failed_round bad = {2, 3, 0, 1, 0, 1, NULL};
  cr_assert_eq(fg_metrics_append_failed(m, &bad), FG_ERR_INVALID, "participants without records");
  fg_metrics_close(m);

  char *text = read_text(dir, "failed_rounds.jsonl"), *lines[4];
  cr_assert_eq(split_lines(text, lines, 4), 2, "the torn line cut, one line per try: %s", text);
  for (int i = 0; i < 2; i++) {
    cJSON *o = cJSON_Parse(lines[i]);
    cr_assert_not_null(o, "line %d: %s", i + 1, lines[i]);
    expect_number(o, "round", 2);
    expect_number(o, "attempt", i + 1);
    expect_number(o, "results", 1);
    expect_number(o, "needed", 2);
    expect_number(o, "n_clients", 2);
    cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "retried")), i == 0);
    expect_number(o, "trained", 1);
    expect_number(o, "dropped", 1);
    const cJSON *cl = cJSON_GetObjectItemCaseSensitive(o, "clients");
    cr_assert_eq(cJSON_GetArraySize(cl), 2);
    expect_client(cJSON_GetArrayItem(cl, 0), &tried[0], "ok", "full");
    expect_client(cJSON_GetArrayItem(cl, 1), &tried[1], "dropped", "full");
    cJSON_Delete(o);
  }
  free(text);

  text = read_text(dir, "metrics.jsonl");
  cr_assert_eq(split_lines(text, lines, 4), 2);
  cJSON *r1 = cJSON_Parse(lines[0]), *r2 = cJSON_Parse(lines[1]);
  cr_assert_null(cJSON_GetObjectItemCaseSensitive(r1, "failed_attempts"), "no key for a round no try of which failed");
  expect_number(r2, "failed_attempts", 2);
  expect_round(r2, &second);
  cJSON_Delete(r1);
  cJSON_Delete(r2);
  free(text);
  fg_round_record *back = NULL;
  int n = 0;
  FGT_OK(fg_metrics_read(dir, &back, &n));
  cr_assert_eq(n, 2);
  cr_assert_eq(back[1].round, 2);
  free(back);

  FGT_OK(fg_metrics_open(dir, -1, &m)); /* a fresh run */
  fg_metrics_close(m);
  cr_assert_eq(file_size(dir, "failed_rounds.jsonl"), -1, "a fresh run has no failed tries");
  fgt_rmtree(dir);
  free(dir);
}
