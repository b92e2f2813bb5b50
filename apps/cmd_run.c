/* fedgap run CONFIG.yaml [--set key=value]... [--out DIR] [--resume DIR]: one federated
 * experiment, or with `methods:` one per method on the same clients and a comparison table.
 * Progress: a bar on a terminal, a line per round otherwise. Last line: final_accuracy=0.xxxx
 * (per method for comparisons). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/io/atomic_file.h"
#include "fedgap_config.h"
#include "fl/config.h"
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
  int ok = 0, over = 0, nofit = 0;
  for (int i = 0; i < r->n_clients; i++) {
    ok += r->clients[i].status == FG_CLIENT_OK;
    over += r->clients[i].status == FG_CLIENT_OVER_BUDGET;
    nofit += r->clients[i].status == FG_CLIENT_NO_FIT;
  }
  char acc[32] = "-", mib[32];
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
  printf("%s round %d/%d  %s %s  train_loss %.4f  clients %d ok, %d over budget, %d fit nothing  "
         "client peak %s  %.1f s\n",
         v->method, r->round, rounds, v->general ? "general" : "accuracy", acc, r->train_loss, ok, over, nofit, mib,
         r->seconds);
  fflush(stdout);
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

static int run_all(const fg_config *cfg, const char *dir, int resume) {
  fg_world w;
  fg_status s = fg_world_open(cfg, &w);
  if (s == FG_OK) s = write_config(cfg, -1, dir);
  if (s == FG_OK) s = write_partition(&w, dir);
  fg_run_result res[FG_MAX_METHODS];
  memset(res, 0, sizeof res);
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
    s = fg_run_method(&w, m, mdir, again, on_round, &v, &res[m]);
    fg_progress_clear(&v.bar);
    if (s == FG_OK && v.terminal)
      printf("%s: final accuracy %.4f after %d rounds, %.1f s\n", v.method, res[m].final_accuracy, cfg->rounds,
             res[m].seconds);
    free(sub);
  }
  fg_world_close(&w);
  if (s != FG_OK) return fg_runtime_error("run");
  if (cfg->compare) {
    print_table(cfg, res);
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

int fg_cmd_run(int argc, char **argv) {
  fg_arg_list sets = {{0}, 0};
  const char *out = NULL, *resume = NULL;
  int threads = -1;
  const char *device = NULL;
  fg_arg args[] = {
      {"set", FG_ARG_LIST, &sets, "KEY=VALUE", "override a configuration key (repeatable), e.g. --set rounds=5", 0, -1,
       0, 0},
      {"out", FG_ARG_STRING, &out, "DIR", "run folder (default runs/<name>-<date>-<time>)", 0, -1, 0, 0},
      {"resume", FG_ARG_STRING, &resume, "DIR", "continue the run in DIR from its last checkpoint", 0, -1, 0, 0},
      {"threads", FG_ARG_INT, &threads, "N", "CPU threads (default: the config's, else all cores)", 0, 1024, 0, 0},
      {"device", FG_ARG_STRING, &device, "cpu|cuda[:N]",
       "device of local training and evaluation (default: the config's device key, else cpu)", 0, -1, 0, 0},
  };
  fg_command cmd = {"run", "Run the federated experiment a YAML file describes (usage: fedgap run CONFIG.yaml "
                    "[options]; configs/README.md lists the keys).",
                    args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  const char *config = NULL;
  if (argc > 0 && strncmp(argv[0], "--", 2) != 0) {
    config = argv[0];
    argc--;
    argv++;
  }
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  if (!config) return fg_usage_error(&cmd, "give the experiment file: fedgap run CONFIG.yaml");
  if (out && resume) return fg_usage_error(&cmd, "--out and --resume name the run folder twice; give one");
  /* --device D is the override device=D, after the --set ones. */
  char device_set[64];
  if (device) {
    fg_device parsed;
    rc = fg_cli_device(&cmd, device, &parsed);
    if (rc != FG_EXIT_OK) return rc;
    if (sets.n >= FG_ARG_LIST_CAP) return fg_usage_error(&cmd, "too many overrides with --device");
    snprintf(device_set, sizeof device_set, "device=%s", device);
    sets.items[sets.n++] = device_set;
  }
  fg_config cfg;
  fg_status s = fg_config_load(config, sets.items, sets.n, &cfg);
  if (s != FG_OK) {
    fprintf(stderr, "fedgap run: %s\n", fg_last_error());
    return s == FG_ERR_CONFIG ? FG_EXIT_USAGE : FG_EXIT_FAILURE;
  }
  char dir[4096];
  rc = fg_cli_start(cmd.name, threads >= 0 ? threads : cfg.threads, cfg.device);
  if (rc == FG_EXIT_OK && choose_dir(&cfg, out, resume, dir, sizeof dir) != 0) rc = fg_runtime_error(cmd.name);
  if (rc == FG_EXIT_OK) rc = run_all(&cfg, dir, resume != NULL);
  fg_config_free(&cfg);
  return rc;
}
