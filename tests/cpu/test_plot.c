/* fedgap plot: two run folders written by the metrics writers give two real PNG files (signature
 * and header size checked) and their paths on stdout; a comparison folder expands to its
 * per-method subfolders; awkward names (quotes, backquotes, newlines) reach gnuplot escaped and
 * run nothing; missing folders, a missing gnuplot and bad flags fail with one line and the
 * documented exit status; temporary files are removed. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "fl/metrics.h"

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* A run folder at dir/name with `rounds` rounds (every other one evaluated) and, when
 * `method` is given, a summary.json. */
static char *make_run(const char *dir, const char *name, const char *method, int rounds, double start,
                      size_t engine_peak, size_t process_peak) {
  char *run = fgt_join(dir, name);
  cr_assert_eq(mkdir(run, 0755), 0, "mkdir %s", run);
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(run, -1, &m));
  double best = 0;
  for (int k = 1; k <= rounds; k++) {
    fg_round_record r;
    memset(&r, 0, sizeof r);
    r.round = k;
    r.evaluated = k % 2 == 1 || k == rounds;
    r.accuracy = r.evaluated ? start + 0.05 * k : NAN;
    r.n_exits = 1;
    r.exit_accuracy[0] = r.accuracy;
    r.ensemble_accuracy = NAN;
    r.max_client_engine_peak = engine_peak * (size_t)k / (size_t)rounds;
    r.process_peak = process_peak * (size_t)k / (size_t)rounds;
    if (r.evaluated && r.accuracy > best) best = r.accuracy;
    FGT_OK(fg_metrics_append(m, &r));
  }
  fg_metrics_close(m);
  if (method) {
    fg_summary s = {.name = name, .method = method, .dataset = "fashion-mnist", .arch = "cnn",
                    .revision = "test", .rounds = rounds, .final_accuracy = best, .best_accuracy = best,
                    .n_exits = 1, .final_exit_accuracy = {best}, .max_client_engine_peak = engine_peak,
                    .process_peak = process_peak, .wall_seconds = 1, .clients = 10};
    FGT_OK(fg_summary_write(run, &s));
  }
  return run;
}

/* The file starts with the PNG signature and its IHDR says width x height. */
static void expect_png(const char *path, unsigned width, unsigned height) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s was not written", path);
  unsigned char h[24];
  size_t got = fread(h, 1, sizeof h, f);
  fclose(f);
  cr_assert_eq(got, sizeof h, "%s is too short", path);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  cr_assert_eq(memcmp(h, sig, 8), 0, "%s lacks the PNG signature", path);
  cr_assert_eq(memcmp(h + 12, "IHDR", 4), 0, "%s: first chunk is not IHDR", path);
  unsigned w = (unsigned)h[16] << 24 | (unsigned)h[17] << 16 | (unsigned)h[18] << 8 | h[19];
  unsigned ht = (unsigned)h[20] << 24 | (unsigned)h[21] << 16 | (unsigned)h[22] << 8 | h[23];
  cr_assert(w == width && ht == height, "%s is %ux%u, want %ux%u", path, w, ht, width, height);
}

static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;)
    n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return n == 0;
}

/* A private TMPDIR for the child, to check that it cleans up after itself. */
static char *private_tmpdir(const char *dir) {
  char *tmp = fgt_join(dir, "tmp");
  cr_assert_eq(mkdir(tmp, 0755), 0);
  cr_assert_eq(setenv("TMPDIR", tmp, 1), 0);
  return tmp;
}

Test(plot, two_runs_give_two_pngs) {
  char *dir = fgt_mkdtemp();
  char *tmp = private_tmpdir(dir);
  char *a = make_run(dir, "A", "heterofl", 6, 0.3, (size_t)40 << 20, (size_t)300 << 20);
  char *b = make_run(dir, "B", NULL, 5, 0.2, (size_t)20 << 20, (size_t)250 << 20); /* no summary: unfinished */
  char *out = fgt_join(dir, "plots/new");
  fgt_run r = fgt_run_fedgap((const char *[]){"", "plot", a, b, "--out", out, NULL});
  cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
  char *acc = fgt_join(out, "accuracy.png"), *mem = fgt_join(out, "memory.png");
  char want[8192];
  snprintf(want, sizeof want, "%s\n%s\n", acc, mem);
  cr_assert_str_eq(r.out, want, "stdout lists the written files");
  expect_png(acc, 1000, 650);
  expect_png(mem, 1000, 650);
  cr_assert(dir_is_empty(tmp), "temporary files were left in %s", tmp);
  fgt_run_free(&r);

  /* default --out: the first folder */
  r = fgt_run_fedgap((const char *[]){"", "plot", b, "--", a, NULL});
  cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
  char *acc_b = fgt_join(b, "accuracy.png"), *mem_b = fgt_join(b, "memory.png");
  expect_png(acc_b, 1000, 650);
  expect_png(mem_b, 1000, 650);
  fgt_run_free(&r);
  free(acc_b);
  free(mem_b);
  free(acc);
  free(mem);
  free(out);
  free(a);
  free(b);
  free(tmp);
  fgt_rmtree(dir);
  free(dir);
}

Test(plot, comparison_folder_expands_to_its_subfolders) {
  char *dir = fgt_mkdtemp();
  char *cmp = fgt_join(dir, "quickstart");
  cr_assert_eq(mkdir(cmp, 0755), 0);
  char *s1 = make_run(cmp, "fedavg", "fedavg", 4, 0.4, (size_t)64 << 20, (size_t)400 << 20);
  char *s2 = make_run(cmp, "heterofl", "heterofl", 4, 0.3, (size_t)16 << 20, (size_t)380 << 20);
  char *notes = fgt_join(cmp, "notes");
  cr_assert_eq(mkdir(notes, 0755), 0); /* not a run: ignored */
  fgt_run r = fgt_run_fedgap((const char *[]){"", "plot", cmp, NULL});
  cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
  char *acc = fgt_join(cmp, "accuracy.png"), *mem = fgt_join(cmp, "memory.png");
  expect_png(acc, 1000, 650);
  expect_png(mem, 1000, 650);
  fgt_run_free(&r);

  /* the subfolders are read: a corrupted record in one of them is reported by its path */
  char *bad = make_run(cmp, "zz-bad", NULL, 3, 0.1, 1, 1);
  char *bad_file = fgt_join(bad, "metrics.jsonl");
  FILE *f = fopen(bad_file, "r+b");
  cr_assert_not_null(f);
  fputs("{not json", f); /* overwrites the start of line 1; lines 2 and 3 follow */
  fclose(f);
  r = fgt_run_fedgap((const char *[]){"", "plot", cmp, NULL});
  cr_assert_eq(r.status, 1, "status %d", r.status);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, bad_file) != NULL, "stderr '%s' does not name %s", r.err, bad_file);
  fgt_run_free(&r);

  /* a folder with neither metrics.jsonl nor run subfolders */
  r = fgt_run_fedgap((const char *[]){"", "plot", notes, NULL});
  cr_assert_eq(r.status, 1);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, notes) && strstr(r.err, "metrics.jsonl"), "%s", r.err);
  fgt_run_free(&r);
  free(bad);
  free(bad_file);
  free(acc);
  free(mem);
  free(notes);
  free(s1);
  free(s2);
  free(cmp);
  fgt_rmtree(dir);
  free(dir);
}

Test(plot, awkward_names_are_escaped_and_run_nothing) {
  char *dir = fgt_mkdtemp();
  char *marker = fgt_join(dir, "pwned");
  /* the method (a label) carries a backquoted command and quotes; a folder name without a
   * summary (so the label) a newline, quotes and enhanced-text markup */
  char method[8192];
  snprintf(method, sizeof method, "it's `touch %s` \"q\" @x $(touch %s) \\", marker, marker);
  char *a = make_run(dir, "run 'one'", method, 3, 0.5, (size_t)8 << 20, (size_t)90 << 20);
  char *b = make_run(dir, "B_{sub}^2\n'x' & {b}", NULL, 3, 0.4, (size_t)4 << 20, (size_t)80 << 20);
  char *c = make_run(dir, "no-evals", NULL, 1, 0.4, 0, 0);
  /* a run that evaluated nothing */
  fg_metrics *m = NULL;
  FGT_OK(fg_metrics_open(c, -1, &m));
  fg_round_record rec;
  memset(&rec, 0, sizeof rec);
  rec.round = 1;
  rec.accuracy = NAN;
  FGT_OK(fg_metrics_append(m, &rec));
  fg_metrics_close(m);
  char *out = fgt_join(dir, "out");
  fgt_run r = fgt_run_fedgap((const char *[]){"", "plot", a, b, c, "--out", out, NULL});
  cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
  cr_assert(!exists(marker), "a command in a title was run");
  char *acc = fgt_join(out, "accuracy.png");
  expect_png(acc, 1000, 650);
  fgt_run_free(&r);

  /* only runs without evaluations: still a (labelled, empty) plot */
  r = fgt_run_fedgap((const char *[]){"", "plot", c, NULL});
  cr_assert_eq(r.status, 0, "status %d, stderr: %s", r.status, r.err);
  fgt_run_free(&r);
  free(acc);
  free(out);
  free(a);
  free(b);
  free(c);
  free(marker);
  fgt_rmtree(dir);
  free(dir);
}

Test(plot, errors_are_one_line) {
  char *dir = fgt_mkdtemp();
  char *a = make_run(dir, "A", "fedavg", 2, 0.5, 1 << 20, 2 << 20);
  char *missing = fgt_join(dir, "does-not-exist");
  fgt_run r = fgt_run_fedgap((const char *[]){"", "plot", a, missing, NULL});
  cr_assert_eq(r.status, 1, "status %d", r.status);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, missing) != NULL, "stderr '%s' does not name the folder", r.err);
  cr_assert_str_eq(r.out, "");
  fgt_run_free(&r);

  r = fgt_run_fedgap((const char *[]){"", "plot", a, "--colour", "red", NULL});
  cr_assert_eq(r.status, 2, "status %d", r.status);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "--colour") != NULL, "%s", r.err);
  fgt_run_free(&r);

  r = fgt_run_fedgap((const char *[]){"", "plot", "--out", dir, NULL});
  cr_assert_eq(r.status, 2, "status %d", r.status);
  cr_assert(strstr(r.err, "RUN_DIR") != NULL, "%s", r.err);
  fgt_run_free(&r);

  r = fgt_run_fedgap((const char *[]){"", "plot", a, "--out", NULL});
  cr_assert_eq(r.status, 2, "status %d", r.status);
  fgt_run_free(&r);

  /* no gnuplot on PATH */
  char *empty = fgt_join(dir, "empty-bin");
  cr_assert_eq(mkdir(empty, 0755), 0);
  cr_assert_eq(setenv("PATH", empty, 1), 0);
  r = fgt_run_fedgap((const char *[]){"", "plot", a, NULL});
  cr_assert_eq(r.status, 1, "status %d", r.status);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "gnuplot-nox") != NULL, "%s", r.err);
  fgt_run_free(&r);
  free(empty);
  free(missing);
  free(a);
  fgt_rmtree(dir);
  free(dir);
}
