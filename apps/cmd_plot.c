/* fedgap plot RUN_DIR... [--out DIR]: accuracy.png (test accuracy vs round, one line per run)
 * and memory.png (max client engine peak and process peak per run, grouped bars) drawn by
 * gnuplot. A folder without metrics.jsonl whose subfolders hold one (a comparison run) stands for
 * those subfolders; a folder of an experiment over several seeds (seed-N subfolders) stands for
 * one curve per method: the mean over the seeds with a band of one standard deviation. Data and the script go to a temporary folder; folder names and methods reach
 * gnuplot only as escaped single-quoted titles (no shell is involved). The PNGs are copied into
 * --out atomically and their paths printed. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/cli.h"
#include "engine/io/atomic_file.h"
#include "fl/metrics.h"
#include "fl/seed_table.h"

enum { FG_PLOT_MAX_PNG = 64 << 20 };

typedef struct plot_run {
  char *dir;
  char *label;
  fg_round_record *rounds;
  int n_rounds;
  size_t engine_peak, process_peak;
  int seeds;           /* > 0: the mean of this many seeds' runs: the curve below, not rounds */
  int n_curve;
  int *curve_round;
  double *curve_mean, *curve_std;
} plot_run;

typedef struct plot_runs {
  plot_run *v;
  int n, cap;
} plot_runs;

static char *dup_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int holds_metrics(const char *dir) {
  char *p = fg_path_join(dir, "metrics.jsonl");
  int yes = p && is_file(p);
  free(p);
  return yes;
}

/* The last component of `dir`, ignoring trailing slashes. */
static char *base_name(const char *dir) {
  size_t end = strlen(dir);
  while (end > 1 && dir[end - 1] == '/') end--;
  size_t start = end;
  while (start > 0 && dir[start - 1] != '/') start--;
  char *p = malloc(end - start + 1);
  if (!p) return NULL;
  memcpy(p, dir + start, end - start);
  p[end - start] = '\0';
  return p;
}

static void free_runs(plot_runs *runs) {
  for (int i = 0; i < runs->n; i++) {
    free(runs->v[i].dir);
    free(runs->v[i].label);
    free(runs->v[i].rounds);
    free(runs->v[i].curve_round);
    free(runs->v[i].curve_mean);
    free(runs->v[i].curve_std);
  }
  free(runs->v);
  memset(runs, 0, sizeof *runs);
}

/* Loads one run folder: its records, its label (the summary's label, else its method, else the
 * folder name) and its peaks (the summary's, else the largest over the records of an unfinished
 * run). */
/* A new empty run at the end of runs, for folder `dir`. */
static fg_status add_run(plot_runs *runs, const char *dir, plot_run **out) {
  if (runs->n == runs->cap) {
    int cap = runs->cap ? runs->cap * 2 : 8;
    plot_run *v = realloc(runs->v, (size_t)cap * sizeof *v);
    if (!v) return FG_FAIL(FG_ERR_OOM, "cannot hold %d runs", cap);
    runs->v = v;
    runs->cap = cap;
  }
  plot_run *r = &runs->v[runs->n];
  memset(r, 0, sizeof *r);
  r->dir = dup_string(dir);
  if (!r->dir) return FG_FAIL(FG_ERR_OOM, "cannot copy a path");
  runs->n++;
  *out = r;
  return FG_OK;
}

static fg_status load_run(plot_runs *runs, const char *dir) {
  plot_run *r;
  FG_TRY(add_run(runs, dir, &r));
  FG_TRY(fg_metrics_read(dir, &r->rounds, &r->n_rounds));
  for (int i = 0; i < r->n_rounds; i++) {
    if (r->rounds[i].max_client_engine_peak > r->engine_peak) r->engine_peak = r->rounds[i].max_client_engine_peak;
    if (r->rounds[i].process_peak > r->process_peak) r->process_peak = r->rounds[i].process_peak;
  }
  char *summary_path = fg_path_join(dir, "summary.json");
  int has_summary = summary_path && is_file(summary_path);
  free(summary_path);
  if (has_summary) {
    fg_summary_file sf;
    FG_TRY(fg_summary_read(dir, &sf));
    const char *label = sf.summary.label && *sf.summary.label ? sf.summary.label : sf.summary.method;
    if (label && *label) r->label = dup_string(label);
    r->engine_peak = sf.summary.max_client_engine_peak;
    r->process_peak = sf.summary.process_peak;
    fg_summary_file_free(&sf);
  }
  if (!r->label) r->label = base_name(dir);
  if (!r->label) return FG_FAIL(FG_ERR_OOM, "cannot copy a label");
  return FG_OK;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A comparison folder: its subfolders holding metrics.jsonl, in name order. */
static fg_status load_comparison(plot_runs *runs, const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return FG_FAIL(FG_ERR_IO, "run folder '%s': %s", dir, strerror(errno));
  char **names = NULL;
  int n = 0, cap = 0;
  fg_status s = FG_OK;
  for (struct dirent *e; s == FG_OK && (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *sub = fg_path_join(dir, e->d_name);
    if (!sub) {
      s = FG_FAIL(FG_ERR_OOM, "cannot build a path");
      break;
    }
    if (!holds_metrics(sub)) {
      free(sub);
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      char **p = realloc(names, (size_t)cap * sizeof *p);
      if (!p) {
        free(sub);
        s = FG_FAIL(FG_ERR_OOM, "cannot list '%s'", dir);
        break;
      }
      names = p;
    }
    names[n++] = sub;
  }
  closedir(d);
  if (s == FG_OK && n == 0)
    s = FG_FAIL(FG_ERR_IO, "run folder '%s' holds no metrics.jsonl, nor subfolders that do", dir);
  if (s == FG_OK) qsort(names, (size_t)n, sizeof *names, compare_names);
  for (int i = 0; s == FG_OK && i < n; i++) s = load_run(runs, names[i]);
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
  return s;
}

static fg_status load_folder(plot_runs *runs, const char *dir);

/* The seeds (N of its seed-N subfolders) of an experiment over several seeds in dir, ascending. */
static int list_seeds(const char *dir, int *seeds, int cap) {
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL && n < cap;) {
    char tail = 0;
    int seed = -1;
    if (sscanf(e->d_name, "seed-%d%c", &seed, &tail) == 1 && seed >= 0) seeds[n++] = seed;
  }
  closedir(d);
  for (int i = 1; i < n; i++) /* insertion sort: a handful */
    for (int j = i; j > 0 && seeds[j - 1] > seeds[j]; j--) {
      int t = seeds[j];
      seeds[j] = seeds[j - 1];
      seeds[j - 1] = t;
    }
  return n;
}

/* An experiment over several seeds: each seed's folder is loaded, and each method (by label, in
 * the first seed's order) becomes one run holding the mean curve over the seeds, the largest
 * peaks, and "(N seeds)" in its label. */
static fg_status load_seeds(plot_runs *runs, const char *dir, const int *seed_list, int n_seeds) {
  plot_runs per[FG_MAX_SEEDS];
  memset(per, 0, sizeof per);
  fg_status s = FG_OK;
  for (int i = 0; i < n_seeds && s == FG_OK; i++) {
    char sub[4096];
    s = load_folder(&per[i], fg_seed_dir(dir, seed_list[i], sub, sizeof sub));
  }
  for (int m = 0; s == FG_OK && m < per[0].n; m++) {
    const fg_round_record *rounds[FG_MAX_SEEDS];
    int n_rounds[FG_MAX_SEEDS];
    size_t engine = 0, process = 0;
    for (int i = 0; i < n_seeds && s == FG_OK; i++) {
      const plot_run *found = NULL;
      for (int k = 0; k < per[i].n && !found; k++)
        if (strcmp(per[i].v[k].label, per[0].v[m].label) == 0) found = &per[i].v[k];
      if (!found)
        s = FG_FAIL(FG_ERR_FORMAT, "run folder '%s': seed %d has no run of %s", dir, seed_list[i], per[0].v[m].label);
      else {
        rounds[i] = found->rounds;
        n_rounds[i] = found->n_rounds;
        if (found->engine_peak > engine) engine = found->engine_peak;
        if (found->process_peak > process) process = found->process_peak;
      }
    }
    plot_run *r = NULL;
    if (s == FG_OK) s = add_run(runs, per[0].v[m].dir, &r);
    if (s != FG_OK) break;
    int cap = n_rounds[0] > 0 ? n_rounds[0] : 1;
    r->curve_round = malloc((size_t)cap * sizeof *r->curve_round);
    r->curve_mean = malloc((size_t)cap * sizeof *r->curve_mean);
    r->curve_std = malloc((size_t)cap * sizeof *r->curve_std);
    char label[512];
    snprintf(label, sizeof label, "%s (%d seeds)", per[0].v[m].label, n_seeds);
    r->label = dup_string(label);
    if (!r->curve_round || !r->curve_mean || !r->curve_std || !r->label) {
      s = FG_FAIL(FG_ERR_OOM, "cannot hold a seeds curve");
      break;
    }
    r->seeds = n_seeds;
    r->engine_peak = engine;
    r->process_peak = process;
    r->n_curve = fg_seed_curve(rounds, n_rounds, n_seeds, r->curve_round, r->curve_mean, r->curve_std, cap);
  }
  for (int i = 0; i < n_seeds; i++) free_runs(&per[i]);
  return s;
}

static fg_status load_folder(plot_runs *runs, const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0) return FG_FAIL(FG_ERR_IO, "run folder '%s': %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return FG_FAIL(FG_ERR_IO, "run folder '%s' is not a directory", dir);
  if (holds_metrics(dir)) return load_run(runs, dir);
  int seeds[FG_MAX_SEEDS];
  int n_seeds = list_seeds(dir, seeds, FG_MAX_SEEDS);
  if (n_seeds > 0) return load_seeds(runs, dir, seeds, n_seeds);
  return load_comparison(runs, dir);
}

/* Runs that share a label are told apart by their folder paths. */
static fg_status unique_labels(plot_runs *runs) {
  int *shared = calloc((size_t)runs->n, sizeof *shared);
  if (!shared) return FG_FAIL(FG_ERR_OOM, "cannot label runs");
  for (int i = 0; i < runs->n; i++)
    for (int j = i + 1; j < runs->n; j++)
      if (strcmp(runs->v[i].label, runs->v[j].label) == 0) shared[i] = shared[j] = 1;
  fg_status s = FG_OK;
  for (int i = 0; i < runs->n && s == FG_OK; i++) {
    if (!shared[i]) continue;
    char *label = dup_string(runs->v[i].dir);
    if (!label) s = FG_FAIL(FG_ERR_OOM, "cannot label runs");
    else {
      free(runs->v[i].label);
      runs->v[i].label = label;
    }
  }
  free(shared);
  return s;
}

/* ---- gnuplot ------------------------------------------------------------------------------- */

/* `text` as a gnuplot single-quoted string: '' for a quote (the only escape there), control
 * characters replaced by '?'. Nothing inside single quotes is substituted by gnuplot. */
static void put_quoted(FILE *f, const char *text) {
  fputc('\'', f);
  for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
    if (*p == '\'')
      fputs("''", f);
    else if (*p < 0x20 || *p == 0x7f)
      fputc('?', f);
    else
      fputc(*p, f);
  }
  fputc('\'', f);
}

/* gnuplot on PATH (or in /usr/bin when PATH is unset); NULL when absent. */
static char *find_gnuplot(void) {
  const char *path = getenv("PATH");
  if (!path || !*path) path = "/usr/bin:/bin";
  for (const char *p = path; *p;) {
    const char *colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    char dir[4096];
    if (len == 0) {
      dir[0] = '.';
      dir[1] = '\0';
    } else if (len < sizeof dir) {
      memcpy(dir, p, len);
      dir[len] = '\0';
    } else {
      dir[0] = '\0';
    }
    if (dir[0]) {
      char *candidate = fg_path_join(dir, "gnuplot");
      if (candidate && access(candidate, X_OK) == 0 && is_file(candidate)) return candidate;
      free(candidate);
    }
    if (!colon) break;
    p = colon + 1;
  }
  return NULL;
}

/* The temporary folder's files. */
typedef struct plot_tmp {
  char dir[4096];
  char *files[64];
  int n_files;
} plot_tmp;

static fg_status tmp_create(plot_tmp *t) {
  const char *base = getenv("TMPDIR");
  if (!base || !*base) base = "/tmp";
  int n = snprintf(t->dir, sizeof t->dir, "%s/fedgap-plot-XXXXXX", base);
  if (n < 0 || (size_t)n >= sizeof t->dir) return FG_FAIL(FG_ERR_IO, "temporary folder path is too long");
  if (!mkdtemp(t->dir)) return FG_FAIL(FG_ERR_IO, "cannot create a temporary folder in '%s': %s", base, strerror(errno));
  return FG_OK;
}

/* The path of a new file `name` in the temporary folder, remembered for removal; NULL on failure. */
static const char *tmp_file(plot_tmp *t, const char *name) {
  if (t->n_files == (int)(sizeof t->files / sizeof t->files[0])) return NULL;
  char *p = fg_path_join(t->dir, name);
  if (p) t->files[t->n_files++] = p;
  return p;
}

static void tmp_remove(plot_tmp *t) {
  for (int i = 0; i < t->n_files; i++) {
    unlink(t->files[i]);
    free(t->files[i]);
  }
  t->n_files = 0;
  if (t->dir[0]) rmdir(t->dir);
}

static fg_status close_written(FILE *f, const char *path) {
  int bad = ferror(f);
  if (fclose(f) != 0 || bad) return FG_FAIL(FG_ERR_IO, "cannot write '%s'", path);
  return FG_OK;
}

static fg_status open_tmp(plot_tmp *t, const char *name, const char **path, FILE **f) {
  *path = tmp_file(t, name);
  if (!*path) return FG_FAIL(FG_ERR_OOM, "cannot name a temporary file");
  *f = fopen(*path, "w");
  if (!*f) return FG_FAIL(FG_ERR_IO, "cannot create '%s': %s", *path, strerror(errno));
  return FG_OK;
}

/* One data file per run: "round accuracy%" for evaluated rounds with a finite accuracy.
 * Returns in *n_points how many points each run has. */
static fg_status write_accuracy_data(plot_tmp *t, const plot_runs *runs, const char **paths, int *n_points) {
  for (int i = 0; i < runs->n; i++) {
    char name[32];
    snprintf(name, sizeof name, "accuracy_%d.dat", i);
    FILE *f;
    FG_TRY(open_tmp(t, name, &paths[i], &f));
    n_points[i] = 0;
    for (int k = 0; k < runs->v[i].n_curve; k++) { /* round, mean, mean - std, mean + std */
      const plot_run *r = &runs->v[i];
      fprintf(f, "%d %.10g %.10g %.10g\n", r->curve_round[k], 100.0 * r->curve_mean[k],
              100.0 * (r->curve_mean[k] - r->curve_std[k]), 100.0 * (r->curve_mean[k] + r->curve_std[k]));
      n_points[i]++;
    }
    for (int k = 0; k < runs->v[i].n_rounds; k++) {
      const fg_round_record *r = &runs->v[i].rounds[k];
      if (!r->evaluated || !isfinite(r->accuracy)) continue;
      fprintf(f, "%d %.10g\n", r->round, 100.0 * r->accuracy);
      n_points[i]++;
    }
    FG_TRY(close_written(f, paths[i]));
  }
  return FG_OK;
}

static double mib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static fg_status write_memory_data(plot_tmp *t, const plot_runs *runs, const char **path, double *max_mib) {
  FILE *f;
  FG_TRY(open_tmp(t, "memory.dat", path, &f));
  *max_mib = 0;
  for (int i = 0; i < runs->n; i++) {
    double e = mib(runs->v[i].engine_peak), p = mib(runs->v[i].process_peak);
    fprintf(f, "%d %.6f %.6f\n", i, e, p);
    if (e > *max_mib) *max_mib = e;
    if (p > *max_mib) *max_mib = p;
  }
  return close_written(f, *path);
}

static fg_status write_script(plot_tmp *t, const plot_runs *runs, const char *acc_png, const char *mem_png,
                              const char **acc_data, const int *n_points, const char *mem_data, double max_mib,
                              const char **path) {
  FILE *f;
  FG_TRY(open_tmp(t, "plot.gp", path, &f));
  fputs("set terminal pngcairo noenhanced size 1000,650\nset output ", f);
  put_quoted(f, acc_png);
  fputs("\nset title 'Test accuracy of the global model (final exit)'\nset xlabel 'round'\n"
        "set ylabel 'test accuracy (%)'\nset key bottom right\nset grid\n",
        f);
  int any = 0;
  for (int i = 0; i < runs->n; i++) any |= n_points[i] > 0;
  if (!any) {
    fputs("set xrange [0:1]\nset yrange [0:100]\n"
          "set label 1 'no evaluated rounds' at graph 0.5, graph 0.5 center\nplot 1/0 notitle\n",
          f);
  } else {
    fputs("plot ", f);
    for (int i = 0; i < runs->n; i++) {
      if (i) fputs(", ", f);
      if (n_points[i] > 0 && runs->v[i].seeds > 1) { /* the band of one standard deviation, then the mean */
        put_quoted(f, acc_data[i]);
        fprintf(f, " using 1:3:4 with filledcurves fillstyle transparent solid 0.2 noborder lc %d notitle, ", i + 1);
        put_quoted(f, acc_data[i]);
        fprintf(f, " using 1:2 with linespoints lc %d title ", i + 1);
        put_quoted(f, runs->v[i].label);
      } else if (n_points[i] > 0) {
        put_quoted(f, acc_data[i]);
        fputs(" using 1:2 with linespoints title ", f);
        put_quoted(f, runs->v[i].label);
      } else {
        char note[4096];
        snprintf(note, sizeof note, "%s (no evaluated rounds)", runs->v[i].label);
        fputs("NaN with linespoints title ", f);
        put_quoted(f, note);
      }
    }
    fputs("\n", f);
  }
  fputs("reset\nset output ", f);
  put_quoted(f, mem_png);
  fputs("\nset title 'Peak memory per run'\nset ylabel 'MiB'\nset style data histogram\n"
        "set style histogram cluster gap 1\nset style fill solid 0.8 border -1\nset boxwidth 0.9\n"
        "set grid ytics\nset key outside bottom center horizontal\nset bmargin 5\nset xtics nomirror\n",
        f);
  if (runs->n > 4) fputs("set xtics rotate by -25\n", f);
  fprintf(f, "set xrange [-0.5:%d.5]\nset yrange [0:%.6f]\n", runs->n - 1, max_mib > 0 ? max_mib * 1.1 : 1.0);
  fputs("set xtics (", f);
  for (int i = 0; i < runs->n; i++) {
    if (i) fputs(", ", f);
    put_quoted(f, runs->v[i].label);
    fprintf(f, " %d", i);
  }
  fputs(")\nplot ", f);
  put_quoted(f, mem_data);
  fputs(" using 2 title 'max client engine peak', '' using 3 title 'process peak'\n", f);
  return close_written(f, *path);
}

/* The last non-empty line of `path` (gnuplot's error message), in `buf`. */
static void last_line(const char *path, char *buf, size_t cap) {
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0]) snprintf(buf, cap, "%s", line);
  }
  fclose(f);
}

static fg_status run_gnuplot(plot_tmp *t, const char *gnuplot, const char *script) {
  const char *log = tmp_file(t, "gnuplot.log");
  if (!log) return FG_FAIL(FG_ERR_OOM, "cannot name a temporary file");
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return FG_FAIL(FG_ERR_IO, "cannot start gnuplot: %s", strerror(errno));
  if (pid == 0) {
    FILE *in = freopen("/dev/null", "r", stdin);
    FILE *out = freopen(log, "w", stdout);
    if (!in || !out || dup2(STDOUT_FILENO, STDERR_FILENO) < 0) _exit(126);
    execl(gnuplot, "gnuplot", script, (char *)NULL);
    _exit(127);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR) return FG_FAIL(FG_ERR_IO, "cannot wait for gnuplot: %s", strerror(errno));
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return FG_OK;
  char msg[1024];
  last_line(log, msg, sizeof msg);
  return FG_FAIL(FG_ERR_LIBRARY, "gnuplot (%s) failed: %s", gnuplot, msg[0] ? msg : "no message");
}

/* Creates `dir` and its missing parents. */
static fg_status make_dirs(const char *dir) {
  char *p = dup_string(dir);
  if (!p) return FG_FAIL(FG_ERR_OOM, "cannot copy a path");
  fg_status s = FG_OK;
  for (char *c = p + 1;; c++) {
    if (*c != '/' && *c != '\0') continue;
    char saved = *c;
    *c = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
      s = FG_FAIL(FG_ERR_IO, "cannot create the output folder '%s': %s", p, strerror(errno));
      break;
    }
    *c = saved;
    if (!saved) break;
  }
  free(p);
  if (s != FG_OK) return s;
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return FG_FAIL(FG_ERR_IO, "output folder '%s' is not a directory", dir);
  return FG_OK;
}

/* Copies a drawn PNG to out/name atomically; prints the path. */
static fg_status publish(const char *png, const char *out, const char *name) {
  unsigned char *data = NULL;
  size_t len = 0;
  FG_TRY(fg_read_file(png, FG_PLOT_MAX_PNG, &data, &len));
  char *dest = fg_path_join(out, name);
  fg_status s = dest ? fg_write_file_atomic(dest, data, len) : FG_FAIL(FG_ERR_OOM, "cannot build a path");
  if (s == FG_OK) printf("%s\n", dest);
  free(dest);
  free(data);
  return s;
}

static fg_status draw(const plot_runs *runs, const char *gnuplot, const char *out) {
  plot_tmp t;
  memset(&t, 0, sizeof t);
  FG_TRY(tmp_create(&t));
  const char **acc_data = calloc((size_t)runs->n, sizeof *acc_data);
  int *n_points = calloc((size_t)runs->n, sizeof *n_points);
  fg_status s = acc_data && n_points ? FG_OK : FG_FAIL(FG_ERR_OOM, "cannot hold plot data");
  const char *mem_data = NULL, *script = NULL;
  const char *acc_png = tmp_file(&t, "accuracy.png"), *mem_png = tmp_file(&t, "memory.png");
  if (s == FG_OK && (!acc_png || !mem_png)) s = FG_FAIL(FG_ERR_OOM, "cannot name a temporary file");
  double max_mib = 0;
  if (s == FG_OK) s = write_accuracy_data(&t, runs, acc_data, n_points);
  if (s == FG_OK) s = write_memory_data(&t, runs, &mem_data, &max_mib);
  if (s == FG_OK) s = write_script(&t, runs, acc_png, mem_png, acc_data, n_points, mem_data, max_mib, &script);
  if (s == FG_OK) s = run_gnuplot(&t, gnuplot, script);
  if (s == FG_OK) s = make_dirs(out);
  if (s == FG_OK) s = publish(acc_png, out, "accuracy.png");
  if (s == FG_OK) s = publish(mem_png, out, "memory.png");
  tmp_remove(&t);
  free(acc_data);
  free(n_points);
  return s;
}

/* ---- the command --------------------------------------------------------------------------- */

/* Splits argv into options (for fg_args_parse) and run folders: a word not starting with "-" is
 * a folder unless it is the value of the option before it; after "--" every word is a folder. */
static void split_args(const fg_command *cmd, int argc, char **argv, char **opts, int *n_opts, char **dirs,
                       int *n_dirs) {
  *n_opts = *n_dirs = 0;
  int only_dirs = 0;
  for (int i = 0; i < argc; i++) {
    const char *w = argv[i];
    if (only_dirs || w[0] != '-') {
      dirs[(*n_dirs)++] = argv[i];
      continue;
    }
    if (strcmp(w, "--") == 0) {
      only_dirs = 1;
      continue;
    }
    opts[(*n_opts)++] = argv[i];
    if (strncmp(w, "--", 2) != 0 || strchr(w, '=')) continue;
    for (int k = 0; k < cmd->n_args; k++)
      if (strcmp(w + 2, cmd->args[k].name) == 0 && cmd->args[k].type != FG_ARG_FLAG && i + 1 < argc)
        opts[(*n_opts)++] = argv[++i];
  }
}

int fg_cmd_plot(int argc, char **argv) {
  const char *out = NULL;
  fg_arg args[] = {
      {"out", FG_ARG_STRING, &out, "DIR", "folder for accuracy.png and memory.png (default: the first RUN_DIR)",
       0, -1, 0, 0},
  };
  fg_command cmd = {"plot",
                    "Draw accuracy.png (test accuracy vs round) and memory.png (peak memory) of the run folders "
                    "RUN_DIR... with gnuplot; a comparison folder stands for its per-method subfolders.",
                    args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  char **opts = calloc((size_t)argc + 1, sizeof *opts), **dirs = calloc((size_t)argc + 1, sizeof *dirs);
  if (!opts || !dirs) {
    free(opts);
    free(dirs);
    fprintf(stderr, "fedgap plot: out of memory\n");
    return FG_EXIT_FAILURE;
  }
  int n_opts, n_dirs;
  split_args(&cmd, argc, argv, opts, &n_opts, dirs, &n_dirs);
  int help, rc = fg_args_parse(&cmd, n_opts, opts, &help);
  if (rc == FG_EXIT_OK && !help && n_dirs == 0) rc = fg_usage_error(&cmd, "expects at least one RUN_DIR");
  if (rc != FG_EXIT_OK || help) {
    free(opts);
    free(dirs);
    return rc;
  }
  plot_runs runs = {0};
  fg_status s = FG_OK;
  for (int i = 0; i < n_dirs && s == FG_OK; i++) s = load_folder(&runs, dirs[i]);
  if (s == FG_OK) s = unique_labels(&runs);
  char *gnuplot = NULL;
  if (s == FG_OK && !(gnuplot = find_gnuplot()))
    s = FG_FAIL(FG_ERR_UNSUPPORTED, "gnuplot was not found on PATH: install the Debian package gnuplot-nox");
  if (s == FG_OK) s = draw(&runs, gnuplot, out ? out : dirs[0]);
  free(gnuplot);
  free_runs(&runs);
  free(opts);
  free(dirs);
  return s == FG_OK ? FG_EXIT_OK : fg_runtime_error(cmd.name);
}
