/* Spread runs under mpirun (labels mpi, slow; built with the MPI transport), on real Fashion-MNIST,
 * every process count on this machine's cores with --oversubscribe:
 * - every method (a comparison of all ten, DepthFL with FedDyn as well, FedRolex's random channels
 *   too) gives byte-identical checkpoints (and the method states: HypeMeFed's hypernetworks,
 *   DepthFL's FedDyn h and client terms) and the same metrics.jsonl, timings and process
 *   peaks aside, in one process and under mpirun -np 1, 2 and 4; a run stopped after round 1
 *   under 2 processes and resumed under 3 reaches the same numbers;
 * - a process started with another configuration is refused with one line naming it;
 * - a worker killed with SIGKILL mid-round ends the run with a non-zero status and a line naming
 *   its rank and slot, well within the watchdog, and --resume then reaches the uninterrupted
 *   numbers; a worker that stops answering trips the watchdog, which names it. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "engine/io/atomic_file.h"

static const char *ALL_METHODS =
    "seed: 4\nrounds: 2\n"
    "data: {dataset: fashion-mnist, partition: {kind: dirichlet, alpha: 0.5}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients:\n  count: 200\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.05, share: 0.3}\n      - {fraction: 0.7, share: 0.4}\n      - {fraction: 0.4, share: 0.3}\n"
    "sampling: {per_round: 5}\n"
    "local: {epochs: 1, batch: 32, optimizer: sgd, lr: 0.05, momentum: 0.5, weight_decay: 1.0e-4}\n"
    "eval: {every: 1, max_samples: 300}\n"
    "checkpoint: {every: 1}\n"
    "methods:\n  - {name: fedavg}\n  - {name: exclusivefl}\n  - {name: fedavg-s}\n  - {name: heterofl}\n"
    "  - {name: fedrolex}\n  - {name: depthfl}\n  - {name: scalefl}\n  - {name: neulite}\n"
    "  - {name: hypemefed, hn_epochs: 2, rank: 8}\n  - {name: multiexit}\n"
    "  - {name: depthfl, label: depthfl-feddyn, feddyn_alpha: 0.1}\n";

static const char *const METHOD_DIRS[] = {"fedavg", "exclusivefl", "fedavg-s", "heterofl", "fedrolex",
                                          "depthfl", "scalefl", "neulite", "hypemefed", "multiexit",
                                          "depthfl-feddyn"};

/* FedRolex with random channels: each client's sub-model takes its own channels every round. */
static const char *RANDOM_CHANNELS =
    "seed: 6\nrounds: 2\n"
    "data: {dataset: fashion-mnist, partition: {kind: dirichlet, alpha: 0.5}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients:\n  count: 200\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.05, share: 0.3}\n      - {fraction: 0.7, share: 0.4}\n      - {fraction: 0.4, share: 0.3}\n"
    "sampling: {kind: uniform, per_round: 6}\n"
    "local: {epochs: 1, batch: 32}\neval: {max_samples: 300}\n"
    "method: {name: fedrolex, rolling: random}\n";

/* Many short rounds, so that a worker can be stopped mid-run. */
static const char *LONG_RUN =
    "seed: 8\nrounds: 8\n"
    "data: {dataset: fashion-mnist, partition: {kind: iid}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients: {count: 100}\n"
    "sampling: {kind: uniform, per_round: 8}\n"
    "local: {epochs: 1, batch: 32}\n"
    "eval: {every: 1, max_samples: 200}\n"
    "checkpoint: {every: 1}\n"
    "method: {name: fedavg}\n";

/* argv for `mpirun --oversubscribe -np P fedgap run ARGS...` (args NULL-terminated). */
static fgt_run mpirun(int p, const char *const *args) {
  const char *mpiexec = getenv("FEDGAP_MPIEXEC"), *bin = getenv("FEDGAP_BINARY");
  cr_assert(mpiexec && bin, "FEDGAP_MPIEXEC and FEDGAP_BINARY come from ctest");
  char np[16];
  snprintf(np, sizeof np, "%d", p);
  const char *argv[32] = {mpiexec, "--oversubscribe", "-np", np, bin, "run"};
  int n = 6;
  for (int i = 0; args[i]; i++) argv[n++] = args[i];
  argv[n] = NULL;
  return fgt_run_program(argv);
}

/* fedgap run ARGS... in one process (p == 0) or under mpirun -np p; asserts that it succeeds. */
static void run_ok(int p, const char *const *args) {
  const char *argv[32] = {"", "run"};
  int n = 2;
  for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fgt_run r = p == 0 ? fgt_run_fedgap(argv) : mpirun(p, args);
  cr_assert_eq(r.status, 0, "P=%d: %s %s failed (%d): %s", p, args[0], args[1], r.status, r.err);
  fgt_run_free(&r);
}

static int same_file(const char *a, const char *b) {
  unsigned char *x, *y;
  size_t nx, ny;
  FGT_OK(fg_read_file(a, 1 << 28, &x, &nx));
  FGT_OK(fg_read_file(b, 1 << 28, &y, &ny));
  int same = nx == ny && memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return same;
}

/* Drops what depends on the machine's timing and the process layout. */
static void drop_timing(cJSON *o) {
  static const char *const keys[] = {"seconds", "elapsed", "transfer_seconds", "process_peak", "process_peak_bytes"};
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) cJSON_DeleteItemFromObjectCaseSensitive(o, keys[i]);
  cJSON *clients = cJSON_GetObjectItemCaseSensitive(o, "clients");
  for (cJSON *c = clients ? clients->child : NULL; c; c = c->next) drop_timing(c);
}

/* metrics.jsonl of dir, each record without its timings, one per line. */
static char *metrics_without_timing(const char *dir) {
  char *path = fgt_join(dir, "metrics.jsonl"), *text = fgt_read_text(path), *out = calloc(1, 1);
  size_t len = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    cr_assert_not_null(o, "%s: a line is not JSON", path);
    drop_timing(o);
    char *flat = cJSON_PrintUnformatted(o);
    out = realloc(out, len + strlen(flat) + 2);
    memcpy(out + len, flat, strlen(flat));
    len += strlen(flat);
    out[len++] = '\n';
    out[len] = '\0';
    free(flat);
    cJSON_Delete(o);
  }
  free(text);
  free(path);
  return out;
}

/* The run folders a and b hold the same results: checkpoint (and method state) bytes, metrics. */
static void same_results(const char *a, const char *b) {
  const char *files[] = {"checkpoint.safetensors", "method_state.safetensors"};
  for (int i = 0; i < 2; i++) {
    char *fa = fgt_join(a, files[i]), *fb = fgt_join(b, files[i]);
    int present = access(fa, F_OK) == 0;
    cr_assert_eq(present, access(fb, F_OK) == 0, "%s: in one of %s and %s only", files[i], a, b);
    if (present) cr_assert(same_file(fa, fb), "%s differs between %s and %s", files[i], a, b);
    free(fa);
    free(fb);
  }
  char *ma = metrics_without_timing(a), *mb = metrics_without_timing(b);
  cr_assert_str_eq(ma, mb, "metrics.jsonl differs between %s and %s", a, b);
  cr_assert_gt(strlen(ma), 10);
  free(ma);
  free(mb);
}

static double summary_number(const char *dir, const char *key) {
  char *path = fgt_join(dir, "summary.json"), *text = fgt_read_text(path);
  cJSON *o = cJSON_Parse(text);
  cr_assert_not_null(o);
  double v = fgt_json_number(o, key);
  cJSON_Delete(o);
  free(text);
  free(path);
  return v;
}

static void same_methods(const char *a, const char *b, int processes) {
  for (size_t m = 0; m < sizeof METHOD_DIRS / sizeof METHOD_DIRS[0]; m++) {
    char *da = fgt_join(a, METHOD_DIRS[m]), *db = fgt_join(b, METHOD_DIRS[m]);
    same_results(da, db);
    if (processes) cr_assert_eq(summary_number(db, "processes"), processes, "%s", db);
    free(da);
    free(db);
  }
}

Test(mpi, every_method_is_identical_whatever_the_processes, .timeout = 1500) {
  fgt_scratch_open();
  const char *cfg = fgt_at("all.yaml"), *one = fgt_at("one");
  fgt_write_text(cfg, ALL_METHODS);
  run_ok(0, (const char *const[]){cfg, "--out", one, "--threads", "2", NULL});
  const int procs[] = {1, 2, 4};
  for (int i = 0; i < 3; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", procs[i]);
    const char *out = fgt_at(name);
    run_ok(procs[i], (const char *const[]){cfg, "--out", out, NULL});
    same_methods(one, out, procs[i]);
  }
  /* Stopped after round 1 under 2 processes, resumed under 3. */
  const char *stopped = fgt_at("stopped"), *summary = fgt_at("stopped/fedavg/summary.json");
  run_ok(2, (const char *const[]){cfg, "--out", stopped, "--stop-after", "1", NULL});
  cr_assert_neq(access(summary, F_OK), 0, "a stopped run writes no summary");
  run_ok(3, (const char *const[]){cfg, "--resume", stopped, NULL});
  same_methods(one, stopped, 3);
  fgt_scratch_close();
}

Test(mpi, random_channels_are_identical, .timeout = 600) {
  fgt_scratch_open();
  const char *cfg = fgt_at("random.yaml"), *one = fgt_at("one"), *three = fgt_at("three");
  fgt_write_text(cfg, RANDOM_CHANNELS);
  run_ok(0, (const char *const[]){cfg, "--out", one, NULL});
  run_ok(3, (const char *const[]){cfg, "--out", three, NULL});
  same_results(one, three);
  fgt_scratch_close();
}

/* Lines of `text` that start with `prefix`. */
static int lines_starting(const char *text, const char *prefix) {
  int n = 0;
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    n += strncmp(p, prefix, strlen(prefix)) == 0;
  return n;
}

Test(mpi, a_process_with_another_configuration_is_refused, .timeout = 300) {
  fgt_scratch_open();
  const char *cfg = fgt_at("c.yaml"), *out = fgt_at("run");
  fgt_write_text(cfg, LONG_RUN);
  const char *mpiexec = getenv("FEDGAP_MPIEXEC"), *bin = getenv("FEDGAP_BINARY");
  cr_assert(mpiexec && bin);
  fgt_run r = fgt_run_program((const char *const[]){mpiexec, "--oversubscribe", "-np", "1", bin, "run", cfg, "--out",
                                                    out, ":", "-np", "1", bin, "run", cfg, "--out", out, "--set",
                                                    "seed=9", NULL});
  cr_assert_neq(r.status, 0, "the run must be refused");
  cr_assert_eq(lines_starting(r.err, "fedgap run:"), 1, "one line from fedgap: %s", r.err);
  cr_assert(strstr(r.err, "rank 1") && strstr(r.err, "another configuration") && strstr(r.err, "seed: 9") &&
            strstr(r.err, "seed: 8"), "%s", r.err);
  cr_assert_neq(access(out, F_OK), 0, "nothing ran: no run folder");
  fgt_run_free(&r);
  fgt_scratch_close();
}

/* ---- stopping a worker mid-round ----------------------------------------------------------- */

static int read_small_file(const char *path, char *buf, size_t cap) {
  FILE *f = fopen(path, "rb");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap - 1, f);
  fclose(f);
  buf[n] = '\0';
  return (int)n;
}

/* The pid of rank `rank` among the children of mpirun `parent`; 0 when there is none (yet). */
static int rank_pid(int parent, int rank) {
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  char want[48], buf[8192], path[64];
  snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
  int found = 0;
  for (struct dirent *e = readdir(d); e && !found; e = readdir(d)) {
    int pid = atoi(e->d_name);
    if (pid <= 0) continue;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (read_small_file(path, buf, sizeof buf) <= 0) continue;
    const char *close_paren = strrchr(buf, ')');
    int ppid = 0;
    if (!close_paren || sscanf(close_paren + 2, "%*c %d", &ppid) != 1 || ppid != parent) continue;
    snprintf(path, sizeof path, "/proc/%d/environ", pid);
    int n = read_small_file(path, buf, sizeof buf);
    for (int k = 0; k < n && !found; k += (int)strlen(buf + k) + 1) found = strcmp(buf + k, want) == 0 ? pid : 0;
  }
  closedir(d);
  return found;
}

/* Whether process pid is still one of this test's (its command line names the scratch folder). */
static int runs_in_scratch(int pid) {
  char path[64], buf[8192];
  snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
  int n = read_small_file(path, buf, sizeof buf);
  for (int k = 0; k < n; k += (int)strlen(buf + k) + 1)
    if (strstr(buf + k, fgt_scratch_dir())) return 1;
  return 0;
}

/* CPU ticks process pid has used. */
static long cpu_ticks(int pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  if (read_small_file(path, buf, sizeof buf) <= 0) return -1;
  long utime = 0, stime = 0;
  const char *p = strrchr(buf, ')');
  if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) != 2) return -1;
  return utime + stime;
}

static int metrics_lines(const char *run) {
  char *path = fgt_join(run, "metrics.jsonl");
  FILE *f = fopen(path, "rb");
  free(path);
  if (!f) return 0;
  int n = 0, c;
  while ((c = fgetc(f)) != EOF) n += c == '\n';
  fclose(f);
  return n;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Starts LONG_RUN under 2 processes with the watchdog, waits until round 1 is written and rank 1
 * is training (its CPU time grows), then sends it `sig`. Returns mpirun's pid; *victim := rank 1. */
static int start_and_hit(const char *cfg, const char *run, const char *out, const char *err, const char *watchdog,
                         int sig, int *victim) {
  const char *mpiexec = getenv("FEDGAP_MPIEXEC"), *bin = getenv("FEDGAP_BINARY");
  cr_assert(mpiexec && bin);
  int pid = fgt_spawn((const char *const[]){mpiexec, "--oversubscribe", "-np", "2", bin, "run", cfg, "--out", run,
                                            "--watchdog", watchdog, NULL},
                      out, err);
  double t0 = now_seconds();
  int worker = 0;
  while (now_seconds() - t0 < 300) {
    if (!worker) worker = rank_pid(pid, 1);
    if (worker && metrics_lines(run) >= 1) {
      long a = cpu_ticks(worker);
      struct timespec nap = {0, 50 * 1000 * 1000};
      nanosleep(&nap, NULL);
      long b = cpu_ticks(worker);
      if (a >= 0 && b - a >= 3) break; /* mostly on a core: training */
    }
    struct timespec nap = {0, 5 * 1000 * 1000};
    nanosleep(&nap, NULL);
  }
  cr_assert_gt(worker, 0, "rank 1 was not found");
  cr_assert_lt(metrics_lines(run), 8, "the run ended before rank 1 could be stopped");
  kill(worker, sig);
  *victim = worker;
  return pid;
}

Test(mpi, a_killed_worker_is_named_and_resume_reaches_the_same_numbers, .timeout = 900) {
  fgt_scratch_open();
  const char *cfg = fgt_at("long.yaml"), *run = fgt_at("run"), *straight = fgt_at("straight"), *err = fgt_at("err.txt");
  fgt_write_text(cfg, LONG_RUN);
  int victim = 0, pid = start_and_hit(cfg, run, fgt_at("out.txt"), err, "120", SIGKILL, &victim);
  double t0 = now_seconds();
  int status = fgt_wait(pid, 120);
  double took = now_seconds() - t0;
  char *text = fgt_read_text(err);
  cr_assert(status != 0 && status != -2, "mpirun must end with a failure, not %d: %s", status, text);
  cr_assert_lt(took, 60, "ended %.1f s after the kill, past the watchdog", took);
  cr_assert(strstr(text, "rank 1 on slot"), "rank 0 names the rank and its slot: %s", text);
  free(text);
  /* --resume, in one process, reaches the uninterrupted numbers. */
  cr_assert_gt(metrics_lines(run), 0);
  run_ok(0, (const char *const[]){cfg, "--resume", run, "--threads", "1", NULL});
  run_ok(0, (const char *const[]){cfg, "--out", straight, "--threads", "1", NULL});
  same_results(straight, run);
  fgt_scratch_close();
}

Test(mpi, a_worker_that_stops_answering_trips_the_watchdog, .timeout = 600) {
  fgt_scratch_open();
  const char *cfg = fgt_at("long.yaml"), *err = fgt_at("err.txt");
  fgt_write_text(cfg, LONG_RUN);
  int victim = 0, pid = start_and_hit(cfg, fgt_at("run"), fgt_at("out.txt"), err, "4", SIGSTOP, &victim);
  double t0 = now_seconds();
  int status = fgt_wait(pid, 120);
  double took = now_seconds() - t0;
  if (runs_in_scratch(victim)) kill(victim, SIGKILL); /* if MPI_Abort left it stopped */
  char *text = fgt_read_text(err);
  cr_assert(status != 0 && status != -2, "mpirun must end with a failure, not %d: %s", status, text);
  cr_assert_lt(took, 60, "ended %.1f s after the worker stopped", took);
  cr_assert(strstr(text, "rank 1 sent nothing within 4 s") && strstr(text, "slot"), "%s", text);
  free(text);
  fgt_scratch_close();
}
