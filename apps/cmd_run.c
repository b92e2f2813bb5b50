/* fedgap run CONFIG.yaml [--set key=value]... [--out DIR] [--resume DIR [--allow-change KEY]...]:
 * one federated experiment, or with `methods:` one per method on the same clients and a
 * comparison table. A resume runs the run folder's own config.yaml (CONFIG.yaml may be left out);
 * a resolved configuration that differs from it is refused, naming the keys, unless each
 * differing key is allowed with --allow-change, which config_changes.jsonl in the run folder
 * records.
 * Progress: a bar on a terminal, a line per round otherwise. Last line: final_accuracy=0.xxxx
 * (per method for comparisons). Under mpirun -np P (fl/spread.h): every process checks it runs
 * the same experiment as rank 0, then rank 0 runs it as above and the others train the clients
 * it deals them; only rank 0 prints. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/io/atomic_file.h"
#include "fedgap_config.h"
#include "fedgap_revision.h"
#include "fl/config.h"
#include "fl/seed_table.h"
#include "fl/server.h"
#include "fl/world.h"

static int make_dir(const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(buf, path, strlen(path) + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  return (mkdir(buf, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

static int file_exists(const char *dir, const char *name) {
  char *path = fg_path_join(dir, name);
  int yes = path && access(path, F_OK) == 0;
  free(path);
  return yes;
}

static fg_status out_of_memory(void) { return FG_FAIL(FG_ERR_OOM, "out of memory"); }

/* dir/config.yaml: the resolved configuration (method -1: all of it). */
static fg_status write_config(const fg_config *cfg, int method, const char *dir) {
  char *path = fg_path_join(dir, "config.yaml");
  if (!path) return out_of_memory();
  fg_status s = fg_config_write_resolved(cfg, method, path, FEDGAP_GIT_REV);
  free(path);
  return s;
}

static fg_status write_one_partition(const fg_world *w, const fg_partition *p, const char *dir, const char *name) {
  char *path = fg_path_join(dir, name);
  if (!path) return out_of_memory();
  fg_status s = fg_partition_write(p, fg_dataset_labels(&w->train), w->train.classes, path);
  free(path);
  return s;
}

/* --resume: the run's partition.json, read back whole, is the partition the configuration gives. */
static fg_status check_partition(const fg_world *w, const char *dir) {
  char *path = fg_path_join(dir, "partition.json");
  if (!path) return out_of_memory();
  fg_status s = FG_OK;
  if (access(path, F_OK) == 0) {
    fg_ledger ledger;
    fg_ledger_init(&ledger, "partition.json", 0);
    fg_partition read;
    s = fg_partition_read(path, w->partition.n_clients, w->train.n, w->train.classes, fg_dataset_labels(&w->train),
                          &ledger, &read);
    const fg_partition *p = &w->partition;
    int64_t n = ((const int64_t *)p->offset.ptr)[p->n_clients];
    if (s == FG_OK && (read.hash != p->hash ||
                       memcmp(read.offset.ptr, p->offset.ptr, ((size_t)p->n_clients + 1) * sizeof(int64_t)) != 0 ||
                       memcmp(read.index.ptr, p->index.ptr, (size_t)n * sizeof(uint32_t)) != 0))
      s = FG_FAIL(FG_ERR_CONFIG, "%s: the run's partition (hash %016llx) is not the one the configuration gives "
                  "(%016llx): different data, clients or seed, or an edited file", path,
                  (unsigned long long)read.hash, (unsigned long long)p->hash);
    fg_partition_free(&read);
  }
  free(path);
  return s;
}

/* partition.json: what clients train on; local_test.json: their local test splits, if any. */
static fg_status write_partition(const fg_world *w, const char *dir) {
  FG_TRY(write_one_partition(w, &w->partition, dir, "partition.json"));
  if (w->local_test.n_clients == 0) return FG_OK;
  return write_one_partition(w, &w->local_test, dir, "local_test.json");
}

typedef struct run_view {
  fg_progress bar;
  const char *method;
  int general;          /* eval.protocol local: the accuracy is General (clients' local test splits) */
  int terminal;
} run_view;

static void on_round(void *ctx, const fg_round_record *r, int rounds) {
  run_view *v = ctx;
  int ok = 0, over = 0, nofit = 0, rejected = 0, diverged = 0, dropped = 0;
  for (int i = 0; i < r->n_clients; i++) {
    ok += r->clients[i].status == FG_CLIENT_OK;
    over += r->clients[i].status == FG_CLIENT_OVER_BUDGET;
    nofit += r->clients[i].status == FG_CLIENT_NO_FIT;
    rejected += r->clients[i].status == FG_CLIENT_REJECTED;
    diverged += r->clients[i].status == FG_CLIENT_DIVERGED;
    dropped += r->clients[i].status == FG_CLIENT_DROPPED;
  }
  char refused[96] = "";
  if (rejected || diverged) snprintf(refused, sizeof refused, ", %d rejected, %d diverged", rejected, diverged);
  if (dropped) snprintf(refused + strlen(refused), sizeof refused - strlen(refused), ", %d dropped", dropped);
  char acc[32] = "-", mib[32], loss[32] = "-";
  if (isfinite(r->train_loss)) snprintf(loss, sizeof loss, "%.4f", r->train_loss);
  if (r->evaluated) snprintf(acc, sizeof acc, "%.4f", r->accuracy);
  fg_cli_mib(r->max_client_engine_peak, mib, sizeof mib);
  if (v->terminal) {
    char text[160], label[48];
    snprintf(label, sizeof label, "%s round", v->method);
    snprintf(text, sizeof text, "%s %s  clients %d/%d  client peak %s", v->general ? "general" : "acc", acc, ok,
             r->n_clients, mib);
    fg_progress_update(&v->bar, label, r->round, rounds, text);
    return;
  }
  printf("%s round %d/%d  %s %s  train_loss %s  clients %d ok, %d over budget, %d fit nothing%s  "
         "client peak %s  %.1f s\n",
         v->method, r->round, rounds, v->general ? "general" : "accuracy", acc, loss, ok, over, nofit,
         refused, mib, r->seconds);
  fflush(stdout);
}

/* What one comparison of one seed can show, under its table. */
static void print_caveat(const fg_config *cfg) {
  printf("One seed (%llu), %d rounds: final accuracies move by several points from round to round and from seed "
         "to seed,\nso this table shows what each method trains under its budgets and the memory it needs; which "
         "method is\nbetter needs several seeds (--seeds 1,2,3) and longer runs (configs/neulite-fmnist.yaml, "
         "configs/hypemefed-fmnist.yaml).\n\n",
         (unsigned long long)cfg->seed, cfg->rounds);
}

/* The run folder: --resume DIR, --out DIR, or runs/<name>-<date>-<time>. */
static int choose_dir(const fg_config *cfg, const char *out, const char *resume, char *dir, size_t cap) {
  if (resume)
    snprintf(dir, cap, "%s", resume);
  else if (out)
    snprintf(dir, cap, "%s", out);
  else {
    char stamp[32];
    time_t now = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&now));
    snprintf(dir, cap, "runs/%s-%s", cfg->name, stamp);
  }
  if (make_dir(dir) != 0) {
    FG_FAIL(FG_ERR_IO, "cannot create the run folder %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

static fg_status write_table(const char *dir, const fg_config *cfg, const fg_run_result *res) {
  char *path = fg_path_join(dir, "comparison.csv");
  if (!path) return out_of_memory();
  fg_atomic_file f;
  fg_status opened = fg_atomic_open(&f, path);
  free(path);
  FG_TRY(opened);
  fg_status s = fg_atomic_printf(&f, "method,final_accuracy,max_client_peak_bytes,process_peak_bytes,wall_seconds\n");
  for (int m = 0; m < cfg->n_methods && s == FG_OK; m++)
    s = fg_atomic_printf(&f, "%s,%.4f,%zu,%zu,%.1f\n", fg_method_label(&cfg->methods[m]), res[m].final_accuracy,
                         res[m].max_client_engine_peak, res[m].process_peak, res[m].seconds);
  if (s != FG_OK) {
    fg_atomic_abort(&f);
    return s;
  }
  return fg_atomic_commit(&f);
}

static void print_table(const fg_config *cfg, const fg_run_result *res) {
  int width = 12;
  for (int m = 0; m < cfg->n_methods; m++)
    if ((int)strlen(fg_method_label(&cfg->methods[m])) > width) width = (int)strlen(fg_method_label(&cfg->methods[m]));
  printf("\n%-*s %14s %18s %12s\n", width, "method", "final accuracy", "max client peak", "wall time");
  for (int m = 0; m < cfg->n_methods; m++)
    printf("%-*s %14.4f %14.2f MiB %10.1f s\n", width, fg_method_label(&cfg->methods[m]), res[m].final_accuracy,
           (double)res[m].max_client_engine_peak / (1024.0 * 1024.0), res[m].seconds);
  printf("\n");
}

/* An atomic write's temporary file ("NAME.tmp.XXXXXX", engine/io/atomic_file.h). */
static int is_temporary(const char *name) {
  const char *t = strstr(name, ".tmp.");
  while (t && strstr(t + 1, ".tmp.")) t = strstr(t + 1, ".tmp.");
  return t && t != name && strlen(t + 5) == 6;
}

/* A resume removes the temporary files that writes interrupted by a crash left in `dir`. */
static void remove_temporaries(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (!is_temporary(e->d_name)) continue;
    char *path = fg_path_join(dir, e->d_name);
    if (path) unlink(path);
    free(path);
  }
  closedir(d);
}

/* Every method of the configuration on the open world, into dir (rank 0 of a spread run, or the
 * only process); prints the results. A resume first removes what interrupted writes left and
 * checks the folder's partition. one_of_seeds: a run of several seeds' (no word on what one seed shows). */
static int run_all(const fg_config *cfg, const fg_world *w, const char *dir, int resume, int one_of_seeds,
                   const fg_run_options *opt) {
  fg_status s = FG_OK;
  if (resume) {
    remove_temporaries(dir);
    for (int m = 0; cfg->compare && m < cfg->n_methods; m++) {
      char *sub = fg_path_join(dir, fg_method_label(&cfg->methods[m]));
      if (sub) remove_temporaries(sub);
      free(sub);
    }
    s = check_partition(w, dir);
  }
  if (s == FG_OK) s = write_config(cfg, -1, dir);
  if (s == FG_OK) s = write_partition(w, dir);
  fg_run_result res[FG_MAX_METHODS];
  memset(res, 0, sizeof res);
  int stopped = 0;
  for (int m = 0; m < cfg->n_methods && s == FG_OK; m++) {
    char *sub = cfg->compare ? fg_path_join(dir, fg_method_label(&cfg->methods[m])) : NULL;
    if (cfg->compare && !sub) {
      s = out_of_memory();
      break;
    }
    const char *mdir = cfg->compare ? sub : dir;
    if (cfg->compare && make_dir(sub) != 0) s = FG_FAIL(FG_ERR_IO, "cannot create %s: %s", sub, strerror(errno));
    if (s == FG_OK && cfg->compare) s = write_config(cfg, m, sub);
    if (s != FG_OK) {
      free(sub);
      break;
    }
    run_view v;
    fg_progress_init(&v.bar);
    v.terminal = v.bar.enabled;
    v.method = fg_method_label(&cfg->methods[m]);
    v.general = cfg->eval_protocol == FG_EVAL_LOCAL;
    int again = resume && file_exists(mdir, "checkpoint.safetensors");
    s = fg_run_method_with(w, m, mdir, again, opt, on_round, &v, &res[m], &stopped);
    fg_progress_clear(&v.bar);
    if (s == FG_OK && v.terminal && !stopped)
      printf("%s: final accuracy %.4f after %d rounds, %.1f s\n", v.method, res[m].final_accuracy, cfg->rounds,
             res[m].seconds);
    free(sub);
  }
  if (s != FG_OK) return fg_runtime_error("run");
  if (stopped) {
    printf("stopped after round %d (--stop-after): --resume %s continues the run\n", opt->stop_after, dir);
    printf("run folder: %s\n", dir);
    return FG_EXIT_OK;
  }
  if (cfg->compare) {
    print_table(cfg, res);
    if (!one_of_seeds) print_caveat(cfg);
    if (write_table(dir, cfg, res) != FG_OK) return fg_runtime_error("run");
  }
  if (cfg->eval_protocol == FG_EVAL_LOCAL)
    printf("accuracy: General, the mean over clients of the global model's accuracy at each client's deepest "
           "allowed exit on its local test split\n");
  printf("run folder: %s\n", dir);
  for (int m = 0; m < cfg->n_methods; m++) {
    if (cfg->compare) printf("method=%s ", fg_method_label(&cfg->methods[m]));
    printf("final_accuracy=%.4f\n", res[m].final_accuracy);
  }
  return FG_EXIT_OK;
}

/* ---- --resume: the run's own configuration --------------------------------------------------- */

enum { MAX_CHANGES = 64 };

/* `key` is allowed by one of the --allow-change items: equal to one of their comma-separated
 * names, or below it ("local" allows "local.lr"). */
static int change_allowed(const fg_arg_list *allow, const char *key) {
  for (int i = 0; i < allow->n; i++) {
    const char *p = allow->items[i];
    while (*p) {
      size_t n = strcspn(p, ",");
      if (n > 0 && strncmp(key, p, n) == 0 && (key[n] == '\0' || key[n] == '.' || key[n] == '['))
        return 1;
      p += n;
      if (*p == ',') p++;
    }
  }
  return 0;
}

/* Appends one line to dir/config_changes.jsonl (rewritten atomically): when, at which revision,
 * and each allowed change with its old and new value. */
static fg_status record_changes(const char *dir, const fg_config_change *changes, int n) {
  char *path = fg_path_join(dir, "config_changes.jsonl");
  if (!path) return out_of_memory();
  unsigned char *old = NULL;
  size_t old_len = 0;
  fg_status s = fg_read_file(path, 16u << 20, &old, &old_len);
  if (s == FG_ERR_IO && access(path, F_OK) != 0) { /* none yet */
    s = FG_OK;
    old_len = 0;
  }
  cJSON *line = s == FG_OK ? cJSON_CreateObject() : NULL;
  char when[32];
  time_t now = time(NULL);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  cJSON *list = NULL;
  int ok = line && cJSON_AddStringToObject(line, "time", when) &&
           cJSON_AddStringToObject(line, "revision", FEDGAP_GIT_REV) &&
           (list = cJSON_AddArrayToObject(line, "changes")) != NULL;
  for (int i = 0; ok && i < n; i++) {
    cJSON *c = cJSON_CreateObject();
    ok = c && cJSON_AddItemToArray(list, c) && cJSON_AddStringToObject(c, "key", changes[i].key) &&
         cJSON_AddStringToObject(c, "from", changes[i].from) && cJSON_AddStringToObject(c, "to", changes[i].to);
  }
  char *text = ok ? cJSON_PrintUnformatted(line) : NULL;
  cJSON_Delete(line);
  if (s == FG_OK && !text) s = out_of_memory();
  if (s == FG_OK) {
    size_t t = strlen(text);
    int sep = old_len > 0 && old[old_len - 1] != '\n';
    unsigned char *all = malloc(old_len + (size_t)sep + t + 1);
    if (!all) s = out_of_memory();
    else {
      if (old_len) memcpy(all, old, old_len);
      if (sep) all[old_len] = '\n';
      memcpy(all + old_len + sep, text, t);
      all[old_len + (size_t)sep + t] = '\n';
      s = fg_write_file_atomic(path, all, old_len + (size_t)sep + t + 1);
      free(all);
    }
  }
  cJSON_free(text);
  free(old);
  free(path);
  return s;
}

/* What `fedgap run` was asked, beyond the configuration. */
typedef struct run_request {
  const char *out, *resume;
  int threads;         /* -1: the configuration's */
  int stop_after;
  double watchdog;
  fg_config_change changes[MAX_CHANGES]; /* --resume: the allowed changes, recorded in the run folder */
  int n_changes;
  int one_of_seeds;  /* a run of an experiment over several seeds (its table comes after the last) */
  const fg_remote *remote; /* fedgap serve: the clients' devices */
} run_request;

/* Compares the resolved configuration with the run folder's config.yaml. Every differing key must
 * be allowed (the allowed ones go to q->changes); otherwise FG_ERR_CONFIG naming the keys. A folder
 * without a readable config.yaml is FG_ERR_IO. */
static fg_status check_resume(const fg_config *cfg, const char *dir, const fg_arg_list *allow, run_request *q) {
  q->n_changes = 0;
  char *own = fg_path_join(dir, "config.yaml");
  if (!own) return out_of_memory();
  fg_config was;
  fg_status s = fg_config_load(own, NULL, 0, &was);
  free(own);
  if (s != FG_OK) {
    fg_error_prefix("--resume %s: the run's configuration", dir);
    return FG_ERR_IO;
  }
  fg_config_change all[MAX_CHANGES];
  int n = 0;
  s = fg_config_diff(&was, cfg, all, MAX_CHANGES, &n);
  fg_config_free(&was);
  if (s != FG_OK) return s;
  char refused[1024] = "", first[128] = "";
  size_t len = 0;
  int n_refused = 0;
  for (int i = 0; i < n && i < MAX_CHANGES; i++) {
    if (change_allowed(allow, all[i].key)) {
      q->changes[q->n_changes++] = all[i];
      continue;
    }
    if (n_refused++ == 0) snprintf(first, sizeof first, "%.127s", all[i].key);
    if (len < sizeof refused)
      len += (size_t)snprintf(refused + len, sizeof refused - len, "%s%s (%s -> %s)", len ? ", " : "", all[i].key,
                              all[i].from, all[i].to);
  }
  if (n > MAX_CHANGES) n_refused += n - MAX_CHANGES;
  if (n_refused == 0) return FG_OK;
  return FG_FAIL(FG_ERR_CONFIG,
                 "--resume %s: the configuration differs from the run's config.yaml in %d key%s: %s; resume with "
                 "the run's own (fedgap run --resume %s), or allow a deliberate change, which the run folder "
                 "records (--allow-change %s)",
                 dir, n_refused, n_refused == 1 ? "" : "s", refused, dir, first);
}

/* One process: the run folder, the world, every method. */
static int run_alone(const fg_config *cfg, const run_request *q, const fg_transport *t) {
  char dir[4096];
  fg_run_options opt = {t, q->stop_after, q->remote};
  int rc = fg_cli_start(q->remote ? "serve" : "run", q->threads >= 0 ? q->threads : cfg->threads, cfg->device);
  if (rc == FG_EXIT_OK && choose_dir(cfg, q->out, q->resume, dir, sizeof dir) != 0) rc = fg_runtime_error("run");
  if (rc != FG_EXIT_OK) return rc;
  fg_world w;
  fg_status s = fg_world_open(cfg, &w);
  if (s == FG_OK && q->n_changes > 0) s = record_changes(dir, q->changes, q->n_changes);
  rc = s == FG_OK ? run_all(cfg, &w, dir, q->resume != NULL, q->one_of_seeds, &opt) : FG_EXIT_FAILURE;
  fg_world_close(&w);
  return s == FG_OK ? rc : fg_runtime_error("run");
}

int fg_cli_run_remote(const fg_config *cfg, const char *out, const char *resume, int threads,
                      const fg_remote *remote) {
  static run_request q; /* static: its changes[] are large */
  memset(&q, 0, sizeof q);
  q.out = out;
  q.resume = resume;
  q.threads = threads;
  q.remote = remote;
  fg_arg_list none = {{0}, 0};
  if (resume && check_resume(cfg, resume, &none, &q) != FG_OK) {
    fprintf(stderr, "fedgap serve: %s\n", fg_last_error());
    return fg_last_status() == FG_ERR_CONFIG ? FG_EXIT_USAGE : FG_EXIT_FAILURE;
  }
  return run_alone(cfg, &q, NULL);
}

/* Workers of a spread run say nothing until the start-up check has passed: rank 0 speaks for the
 * run (their failures reach it through the check). Returns the saved stderr, or -1. */
static int hush_workers(void) {
  if (fg_cli_launched_size() == 0 || fg_cli_launched_rank() == 0) return -1;
  fflush(stderr);
  int saved = dup(STDERR_FILENO), null = open("/dev/null", O_WRONLY);
  if (saved >= 0 && null >= 0) dup2(null, STDERR_FILENO);
  if (null >= 0) close(null);
  return saved;
}

static void unhush(int *saved) {
  if (*saved < 0) return;
  fflush(stderr);
  dup2(*saved, STDERR_FILENO);
  close(*saved);
  *saved = -1;
}

/* The exit status of a failed start-up check: configuration problems are usage errors. */
static int refused(const fg_transport *t, fg_status s) {
  if (t->rank == 0) fprintf(stderr, "fedgap run: %s\n", fg_last_error());
  return s == FG_ERR_CONFIG ? FG_EXIT_USAGE : FG_EXIT_FAILURE;
}

/* Start-up check, phase 1: every process loaded the same configuration and computes with the same
 * build and kernels; the CPU backend is started with this process's share of the threads. */
static fg_status agree_on_setup(fg_config *cfg, fg_status loaded, const char *why, const run_request *q,
                                const fg_transport *t) {
  fg_identity id;
  memset(&id, 0, sizeof id);
  id.phase = 1;
  id.status = loaded;
  id.error = why;
  id.revision = FEDGAP_GIT_REV;
  char *text = NULL, kernels[96] = "";
  size_t len = 0;
  if (id.status == FG_OK) id.status = fg_config_resolved_text(cfg, -1, "", &text, &len);
  if (id.status == FG_OK) {
    cfg->device = fg_cli_local_device(cfg->device, t->local_rank);
    int budget = q->threads >= 0 ? q->threads : cfg->threads;
    id.status = fg_cli_start_backends(fg_cli_process_threads(budget, t->local_size), cfg->device);
  }
  if (id.status == FG_OK) id.kernels = fg_cli_kernels(kernels, sizeof kernels);
  else if (!id.error || loaded == FG_OK) id.error = fg_last_error();
  id.config_text = text;
  fg_status s = fg_spread_agree(t, &id);
  free(text);
  return s;
}

/* Start-up check, phase 2: every process opened the same world (and rank 0 its run folder). */
static fg_status agree_on_world(const fg_config *cfg, const run_request *q, const fg_transport *t, fg_world *w,
                                char *dir, size_t cap) {
  fg_identity id;
  memset(&id, 0, sizeof id);
  id.phase = 2;
  id.status = fg_world_open(cfg, w);
  if (id.status == FG_OK && t->rank == 0 && choose_dir(cfg, q->out, q->resume, dir, cap) != 0)
    id.status = fg_last_status();
  if (id.status == FG_OK) {
    id.partition_hash = w->partition.hash;
    id.local_test_hash = w->local_test.n_clients ? w->local_test.hash : 0;
  } else {
    id.error = fg_last_error();
  }
  return fg_spread_agree(t, &id);
}

/* Several processes: rank 0 runs the experiment, the others train the jobs it deals them. */
static int run_spread(fg_config *cfg, fg_status loaded, const char *why, const run_request *q, const fg_transport *t,
                      int *hushed, int *out_of_step) {
  fg_status s = agree_on_setup(cfg, loaded, why, q, t);
  if (s != FG_OK) return refused(t, s);
  fg_world w;
  char dir[4096] = "";
  s = agree_on_world(cfg, q, t, &w, dir, sizeof dir);
  unhush(hushed);
  int rc;
  if (s != FG_OK) {
    rc = refused(t, s);
  } else if (t->rank == 0) {
    fg_run_options opt = {t, q->stop_after, NULL};
    rc = q->n_changes > 0 && record_changes(dir, q->changes, q->n_changes) != FG_OK
             ? fg_runtime_error("run")
             : run_all(cfg, &w, dir, q->resume != NULL, q->one_of_seeds, &opt);
    fg_spread_end(t, rc == FG_EXIT_OK ? FG_OK : FG_ERR_INVALID);
  } else {
    fg_status ended = FG_OK;
    s = fg_run_worker(&w, t, &ended);
    if (s != FG_OK) fprintf(stderr, "fedgap run: rank %d: %s\n", t->rank, fg_last_error());
    *out_of_step = s != FG_OK;
    rc = s == FG_OK && ended == FG_OK ? FG_EXIT_OK : FG_EXIT_FAILURE;
  }
  fg_world_close(&w);
  return rc;
}

/* The table over the seeds and, last, one line per method: "method=NAME final_accuracy_mean=0.xxxx
 * final_accuracy_std=0.xxxx" (without method= for a single method). */
static void print_seed_table(const fg_config *cfg, const fg_seed_row *rows) {
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

/* `seeds:`: the experiment once per seed, each a run of its own in DIR/seed-N (its config.yaml
 * with `seed: N`; a resume continues the seeds' folders it finds), then, on rank 0, the table over
 * the seeds in DIR (comparison.csv). Under mpirun every process goes through the seeds in step. */
static int run_seeds(const fg_config *cfg, run_request *q, const fg_transport *t, int *hushed, int *out_of_step) {
  int spread = fg_spread_active(t), rank0 = !spread || t->rank == 0;
  char top[4096] = "";
  fg_status ready = FG_OK;
  if (rank0 && choose_dir(cfg, q->out, q->resume, top, sizeof top) != 0) ready = fg_last_status();
  if (rank0 && ready == FG_OK) ready = write_config(cfg, -1, top);
  if (rank0 && ready == FG_OK && q->n_changes > 0) ready = record_changes(top, q->changes, q->n_changes);
  char why[1024];
  snprintf(why, sizeof why, "%s", ready == FG_OK ? "" : fg_last_error());
  if (!spread && ready != FG_OK) return fg_runtime_error("run");
  static run_request one_q;
  int rc = FG_EXIT_OK;
  for (int i = 0; i < cfg->n_seeds && rc == FG_EXIT_OK; i++) {
    fg_config one = *cfg; /* shares the configuration's storage; not freed */
    one.seed = (uint64_t)cfg->seeds[i];
    one.n_seeds = 0;
    char sub[4096];
    fg_seed_dir(top, cfg->seeds[i], sub, sizeof sub);
    int again = rank0 && q->resume && file_exists(sub, "config.yaml");
    one_q = *q;
    one_q.n_changes = 0;
    one_q.one_of_seeds = 1;
    one_q.resume = again ? sub : NULL;
    one_q.out = again ? NULL : sub;
    if (spread) rc = run_spread(&one, ready, why, &one_q, t, hushed, out_of_step);
    else rc = run_alone(&one, &one_q, t);
  }
  if (rc != FG_EXIT_OK || !rank0) return rc;
  fg_seed_row rows[FG_MAX_METHODS];
  fg_status s = fg_seed_table_read(cfg, top, rows);
  if (s == FG_OK) {
    print_seed_table(cfg, rows);
    s = fg_seed_table_write(top, cfg, rows);
  }
  if (s != FG_OK) return fg_runtime_error("run");
  printf("run folder: %s\n", top);
  return FG_EXIT_OK;
}

int fg_cmd_run(int argc, char **argv) {
  int hushed = hush_workers();
  fg_arg_list sets = {{0}, 0}, allow = {{0}, 0};
  static run_request q; /* static: its changes[] are large */
  memset(&q, 0, sizeof q);
  q.threads = -1;
  q.watchdog = 600;
  const char *device = NULL, *seeds = NULL;
  fg_arg args[] = {
      {"set", FG_ARG_LIST, &sets, "KEY=VALUE", "override a configuration key (repeatable), e.g. --set rounds=5", 0, -1,
       0, 0},
      {"out", FG_ARG_STRING, &q.out, "DIR", "run folder (default runs/<name>-<date>-<time>)", 0, -1, 0, 0},
      {"resume", FG_ARG_STRING, &q.resume, "DIR",
       "continue the run in DIR from its last checkpoint, with DIR/config.yaml (CONFIG.yaml may be left out)", 0,
       -1, 0, 0},
      {"allow-change", FG_ARG_LIST, &allow, "KEY",
       "with --resume: let KEY (e.g. rounds, local.lr; repeatable or comma-separated) differ from the run's "
       "config.yaml; recorded in DIR/config_changes.jsonl", 0, -1, 0, 0},
      {"threads", FG_ARG_INT, &q.threads, "N",
       "CPU threads (default: the config's, else all cores); under mpirun, shared by the processes of a node", 0, 1024,
       0, 0},
      {"device", FG_ARG_STRING, &device, "cpu|cuda[:N]|cuda:local",
       "device of local training and evaluation (default: the config's device key, else cpu)", 0, -1, 0, 0},
      {"seeds", FG_ARG_STRING, &seeds, "N,N,...",
       "run the experiment once per seed and report mean and standard deviation (the override seeds=[N, ...])", 0,
       -1, 0, 0},
      {"stop-after", FG_ARG_INT, &q.stop_after, "R",
       "stop once R rounds are done, with a checkpoint, as an interrupted run (--resume continues it)", 1, 1e9, 0, 0},
      {"watchdog", FG_ARG_DOUBLE, &q.watchdog, "SECONDS",
       "under mpirun: how long rank 0 waits for a worker's result before it names the worker and stops the run (0: "
       "no limit; default 600)", 0, 1e9, 0, 0},
  };
  fg_command cmd = {"run", "Run the federated experiment a YAML file describes (usage: fedgap run CONFIG.yaml "
                    "[options], or fedgap run --resume DIR [options]; configs/README.md lists the keys; under "
                    "mpirun -np P the clients of each round are spread over the P processes, with the results of one "
                    "process).",
                    args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  const char *config = NULL;
  if (argc > 0 && strncmp(argv[0], "--", 2) != 0) {
    config = argv[0];
    argc--;
    argv++;
  }
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  char own_config[4096];
  if (rc == FG_EXIT_OK && !help && !config && q.resume) {
    snprintf(own_config, sizeof own_config, "%s/config.yaml", q.resume);
    config = own_config;
  }
  if (rc == FG_EXIT_OK && !help && !config) rc = fg_usage_error(&cmd, "give the experiment file: fedgap run CONFIG.yaml");
  if (rc == FG_EXIT_OK && !help && q.out && q.resume)
    rc = fg_usage_error(&cmd, "--out and --resume name the run folder twice; give one");
  if (rc == FG_EXIT_OK && !help && allow.n && !q.resume)
    rc = fg_usage_error(&cmd, "--allow-change applies to --resume only");
  /* --device D is the override device=D, after the --set ones. */
  char device_set[64];
  if (rc == FG_EXIT_OK && !help && device) {
    fg_device parsed;
    rc = fg_cli_device(&cmd, device, &parsed);
    if (rc == FG_EXIT_OK && sets.n >= FG_ARG_LIST_CAP) rc = fg_usage_error(&cmd, "too many overrides with --device");
    snprintf(device_set, sizeof device_set, "device=%s", device);
    if (rc == FG_EXIT_OK) sets.items[sets.n++] = device_set;
  }
  /* --seeds 1,2,3 is the override seeds=[1,2,3], after the --set ones. */
  char seeds_set[256];
  if (rc == FG_EXIT_OK && !help && seeds) {
    if (sets.n >= FG_ARG_LIST_CAP) rc = fg_usage_error(&cmd, "too many overrides with --seeds");
    else if (strlen(seeds) > 200 || strspn(seeds, "0123456789, ") != strlen(seeds))
      rc = fg_usage_error(&cmd, "--seeds '%.200s' is not a comma-separated list of seeds (e.g. 1,2,3)", seeds);
    snprintf(seeds_set, sizeof seeds_set, "seeds=[%s]", seeds);
    if (rc == FG_EXIT_OK) sets.items[sets.n++] = seeds_set;
  }
  if (rc != FG_EXIT_OK || help) {
    unhush(&hushed);
    return rc;
  }
  fg_config cfg;
  fg_status loaded = fg_config_load(config, sets.items, sets.n, &cfg);
  char why[1536];
  if (loaded != FG_OK && config == own_config) fg_error_prefix("--resume %s: the run's configuration", q.resume);
  snprintf(why, sizeof why, "%s", loaded == FG_OK ? "" : fg_last_error());
  /* The run folder is rank 0's (on a cluster, only its node may see it). */
  if (loaded == FG_OK && q.resume && fg_cli_launched_rank() == 0) {
    loaded = check_resume(&cfg, q.resume, &allow, &q);
    if (loaded != FG_OK) snprintf(why, sizeof why, "%s", fg_last_error());
  }
  fg_transport *t = NULL;
  int out_of_step = 0;
  if (fg_cli_launched_size() > 0) rc = fg_cli_spread_open(cmd.name, q.watchdog, &t);
  int seeded = loaded == FG_OK && cfg.n_seeds > 0;
  if (seeded && q.stop_after > 0) {
    loaded = FG_FAIL(FG_ERR_CONFIG, "--stop-after stops one run, not an experiment over several seeds (seeds: ...)");
    snprintf(why, sizeof why, "%s", fg_last_error());
    seeded = 0;
  }
  if (rc == FG_EXIT_OK && fg_spread_active(t)) {
    rc = seeded ? run_seeds(&cfg, &q, t, &hushed, &out_of_step)
                : run_spread(&cfg, loaded, why, &q, t, &hushed, &out_of_step);
  } else if (rc == FG_EXIT_OK) {
    unhush(&hushed);
    if (loaded != FG_OK) {
      fprintf(stderr, "fedgap run: %s\n", why);
      rc = loaded == FG_ERR_CONFIG ? FG_EXIT_USAGE : FG_EXIT_FAILURE;
    } else {
      rc = seeded ? run_seeds(&cfg, &q, t, &hushed, &out_of_step) : run_alone(&cfg, &q, t);
    }
  }
  unhush(&hushed);
  fg_config_free(&cfg);
  return fg_cli_spread_close(t, rc, out_of_step);
}
