/* Run-folder metrics: metrics.jsonl and metrics.csv appended crash-safely, summary.json. */
#include "fl/metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/base/killpoint.h"
#include "engine/io/atomic_file.h"

static const char fg_jsonl_name[] = "metrics.jsonl";
static const char fg_csv_name[] = "metrics.csv";
static const char fg_summary_name[] = "summary.json";
static const char fg_failed_name[] = "failed_rounds.jsonl";
enum { FG_SUMMARY_MAX_BYTES = 1 << 20 };

struct fg_metrics {
  char *jsonl_path, *csv_path;
  int jsonl_fd, csv_fd;
  off_t jsonl_size, csv_size;
  int csv_exits;   /* exit columns of the CSV header; -1 until the header is written */
  int last_round;  /* 0 when there are no records */
  char *failed_path, *dir;
  int failed_fd;   /* failed_rounds.jsonl, opened at its first record; -1 until then */
  off_t failed_size;
};

const char *fg_client_status_name(fg_client_status status) {
  switch (status) {
    case FG_CLIENT_OK: return "ok";
    case FG_CLIENT_OVER_BUDGET: return "over_budget";
    case FG_CLIENT_NO_FIT: return "no_fit";
    case FG_CLIENT_FAILED: return "failed";
    case FG_CLIENT_REJECTED: return "rejected";
    case FG_CLIENT_DIVERGED: return "diverged";
    case FG_CLIENT_DROPPED: return "dropped";
  }
  return "unknown";
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* A growable text buffer. */
typedef struct fg_text {
  char *p;
  size_t len, cap;
  int failed;
} fg_text;

static void text_printf(fg_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(fg_text *t, const char *fmt, ...) {
  if (t->failed) return;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    size_t room = t->cap - t->len;
    int n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
      t->failed = 1;
      return;
    }
    if (t->p && (size_t)n < room) {
      t->len += (size_t)n;
      return;
    }
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->len + (size_t)n + 1) cap *= 2;
    char *p = realloc(t->p, cap);
    if (!p) {
      t->failed = 1;
      return;
    }
    t->p = p;
    t->cap = cap;
  }
}

/* The shortest of %.15g / %.16g / %.17g that reads back to the same (finite) double. */
static void format_double(char *buf, size_t cap, double v) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(buf, cap, "%.*g", digits, v);
    if (strtod(buf, NULL) == v) return;
  }
}

/* format_double, or nothing when not finite (an empty CSV cell). */
static void text_double(fg_text *t, double v) {
  if (!isfinite(v)) return;
  char buf[40];
  format_double(buf, sizeof buf, v);
  text_printf(t, "%s", buf);
}

/* Writes all `len` bytes. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

/* Appends a complete line with one write (retried only for a short write) and fsyncs. On failure
 * the file is cut back to `*size`. */
static fg_status append_line(int fd, off_t *size, const char *path, const char *buf, size_t len) {
  if (write_all(fd, buf, len) != 0 || fsync(fd) != 0) {
    int err = errno;
    if (ftruncate(fd, *size) == 0) (void)fsync(fd);
    return FG_FAIL(FG_ERR_IO, "cannot append to '%s': %s", path, strerror(err));
  }
  *size += (off_t)len;
  return FG_OK;
}

/* Cuts a file back to `size` after a failed append of a later file. */
static void cut_back(int fd, off_t *size, off_t old) {
  if (ftruncate(fd, old) == 0) {
    (void)fsync(fd);
    *size = old;
  }
}

/* ---- records to JSON and CSV --------------------------------------------------------------- */

/* A number item printed with format_double (cJSON's own printing may drop the last bits); null
 * when not finite. */
static cJSON *number_item(double v) {
  if (!isfinite(v)) return cJSON_CreateNull();
  char buf[40];
  format_double(buf, sizeof buf, v);
  return cJSON_CreateRaw(buf);
}

static int add_number(cJSON *obj, const char *name, double v) {
  cJSON *item = number_item(v);
  return item && cJSON_AddItemToObject(obj, name, item);
}

/* A string from a fixed-size field that may lack its terminating NUL. */
static int add_bounded_string(cJSON *obj, const char *name, const char *field, size_t cap) {
  char buf[256];
  size_t n = strnlen(field, cap);
  if (n >= sizeof buf) n = sizeof buf - 1;
  memcpy(buf, field, n);
  buf[n] = '\0';
  return cJSON_AddStringToObject(obj, name, buf) != NULL;
}

/* The JSON object text `json` as item `name` (nothing for NULL or ""); 0 when it is not one JSON
 * object. */
static int add_raw_object(cJSON *obj, const char *name, const char *json) {
  if (!json || !*json) return 1;
  cJSON *parsed = cJSON_Parse(json);
  int ok = cJSON_IsObject(parsed);
  if (!ok) {
    cJSON_Delete(parsed);
    return 0;
  }
  return cJSON_AddItemToObject(obj, name, parsed) != 0;
}

static cJSON *client_to_json(const fg_client_record *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  int ok = add_number(o, "id", c->id) && add_number(o, "level", c->level) &&
           add_bounded_string(o, "config", c->config, sizeof c->config) &&
           add_number(o, "samples", (double)c->samples) &&
           cJSON_AddStringToObject(o, "status", fg_client_status_name(c->status)) != NULL;
  if (ok && c->status != FG_CLIENT_OK) ok = add_bounded_string(o, "error", c->error, sizeof c->error);
  ok = ok && add_number(o, "budget_bytes", (double)c->budget_bytes) &&
       add_number(o, "planned_bytes", (double)c->planned_bytes) &&
       add_number(o, "engine_peak_bytes", (double)c->engine_peak_bytes) &&
       add_number(o, "process_peak_bytes", (double)c->process_peak_bytes) &&
       add_number(o, "bytes_down", (double)c->bytes_down) && add_number(o, "bytes_up", (double)c->bytes_up) &&
       add_number(o, "train_loss", c->train_loss) && add_number(o, "seconds", c->seconds) &&
       add_number(o, "transfer_seconds", c->transfer_seconds) && add_number(o, "update_distance", c->update_distance);
  if (!ok) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static cJSON *number_array(const double *v, int n) {
  cJSON *a = cJSON_CreateArray();
  for (int i = 0; a && i < n; i++) {
    cJSON *item = number_item(v[i]);
    if (!item || !cJSON_AddItemToArray(a, item)) {
      cJSON_Delete(item);
      cJSON_Delete(a);
      return NULL;
    }
  }
  return a;
}

/* How many of the participants clients [n] ended in each status: "trained" (ok), "over_budget",
 * "no_fit", "failed", "rejected", "diverged", "dropped" (derived from the client records; not read back). */
static int add_status_counts(cJSON *o, const fg_client_record *clients, int n) {
  static const char *const names[] = {"trained", "over_budget", "no_fit", "failed", "rejected", "diverged", "dropped"};
  enum { N_NAMES = sizeof names / sizeof names[0] };
  int counts[N_NAMES] = {0};
  for (int i = 0; clients && i < n; i++)
    if ((unsigned)clients[i].status < N_NAMES) counts[clients[i].status]++;
  int ok = 1;
  for (int k = 0; k < N_NAMES && ok; k++) ok = add_number(o, names[k], counts[k]);
  return ok;
}

/* obj["clients"] := the records clients [n]; 0 when out of memory. */
static int add_clients(cJSON *obj, const fg_client_record *clients, int n) {
  cJSON *list = cJSON_AddArrayToObject(obj, "clients");
  for (int i = 0; list && i < n; i++) {
    cJSON *c = client_to_json(&clients[i]);
    if (!c || !cJSON_AddItemToArray(list, c)) {
      cJSON_Delete(c);
      return 0;
    }
  }
  return list != NULL;
}

static cJSON *round_to_json(const fg_round_record *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON *exits = number_array(r->exit_accuracy, r->n_exits);
  int ok = exits && add_number(o, "round", r->round) &&
           cJSON_AddBoolToObject(o, "evaluated", r->evaluated != 0) != NULL &&
           add_number(o, "eval_samples", (double)r->eval_samples) && add_number(o, "n_exits", r->n_exits) &&
           cJSON_AddItemToObject(o, "exit_accuracy", exits);
  if (!ok) cJSON_Delete(exits);
  /* a round that was not evaluated has no accuracy; one where nobody trained has no loss (null) */
  double none = NAN;
  ok = ok && add_number(o, "accuracy", r->evaluated ? r->accuracy : none) &&
       add_number(o, "ensemble_accuracy", r->evaluated ? r->ensemble_accuracy : none) &&
       add_number(o, "test_loss", r->evaluated ? r->test_loss : none) && add_number(o, "train_loss", r->train_loss) &&
       add_number(o, "n_clients", r->n_clients) && add_status_counts(o, r->clients, r->n_clients) &&
       add_number(o, "bytes_down", (double)r->bytes_down) &&
       add_number(o, "bytes_up", (double)r->bytes_up) && add_number(o, "seconds", r->seconds) &&
       add_number(o, "elapsed", r->elapsed) &&
       add_number(o, "max_client_engine_peak", (double)r->max_client_engine_peak) &&
       add_number(o, "process_peak", (double)r->process_peak) &&
       add_number(o, "transfer_seconds", r->transfer_seconds) &&
       add_number(o, "device_bytes_in_use", r->device_bytes_in_use) &&
       add_raw_object(o, "method", r->method_report) &&
       (r->failed_attempts <= 0 || add_number(o, "failed_attempts", r->failed_attempts));
  if (!ok || !add_clients(o, r->clients, r->n_clients)) {
    cJSON_Delete(o);
    return NULL;
  }
  return o;
}

static void csv_header(fg_text *t, int n_exits) {
  text_printf(t, "round,evaluated,eval_samples,accuracy,ensemble_accuracy,test_loss,train_loss,n_clients,"
                 "bytes_down,bytes_up,seconds,elapsed,max_client_engine_peak,process_peak");
  for (int i = 0; i < n_exits; i++) text_printf(t, ",exit%d", i + 1);
  text_printf(t, "\n");
}

static void csv_row(fg_text *t, const fg_round_record *r, int n_exits) {
  text_printf(t, "%d,%d,%lld,", r->round, r->evaluated != 0, (long long)r->eval_samples);
  const double reals[] = {r->evaluated ? r->accuracy : NAN, r->evaluated ? r->ensemble_accuracy : NAN,
                          r->evaluated ? r->test_loss : NAN, r->train_loss};
  for (int i = 0; i < 4; i++) {
    text_double(t, reals[i]);
    text_printf(t, ",");
  }
  text_printf(t, "%d,%zu,%zu,", r->n_clients, r->bytes_down, r->bytes_up);
  text_double(t, r->seconds);
  text_printf(t, ",");
  text_double(t, r->elapsed);
  text_printf(t, ",%zu,%zu", r->max_client_engine_peak, r->process_peak);
  for (int i = 0; i < n_exits; i++) {
    text_printf(t, ",");
    if (i < r->n_exits) text_double(t, r->exit_accuracy[i]);
  }
  text_printf(t, "\n");
}

/* ---- JSON back to records ------------------------------------------------------------------ */

/* Where a value is read from, for messages: "path:line" or "path". */
typedef struct fg_origin {
  const char *path;
  long line; /* 0: a whole file */
} fg_origin;

static fg_status field_error(fg_origin o, const char *field, const char *expected) {
  if (o.line > 0)
    return FG_FAIL(FG_ERR_FORMAT, "%s:%ld: field '%s' is missing or not %s", o.path, o.line, field, expected);
  return FG_FAIL(FG_ERR_FORMAT, "%s: field '%s' is missing or not %s", o.path, field, expected);
}

/* A number, or null read as NaN. */
static fg_status get_real(fg_origin o, const cJSON *obj, const char *name, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (cJSON_IsNull(v)) {
    *out = NAN;
    return FG_OK;
  }
  if (!cJSON_IsNumber(v)) return field_error(o, name, "a number or null");
  *out = v->valuedouble;
  return FG_OK;
}

static fg_status get_integer(fg_origin o, const cJSON *obj, const char *name, double lo, double hi, double *out) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
    return field_error(o, name, "an integer in range");
  *out = v->valuedouble;
  return FG_OK;
}

static fg_status get_int(fg_origin o, const cJSON *obj, const char *name, int lo, int *out) {
  double d = 0;
  FG_TRY(get_integer(o, obj, name, lo, 2147483647.0, &d));
  *out = (int)d;
  return FG_OK;
}

static fg_status get_int64(fg_origin o, const cJSON *obj, const char *name, int64_t *out) {
  double d = 0;
  FG_TRY(get_integer(o, obj, name, -9007199254740992.0, 9007199254740992.0, &d));
  *out = (int64_t)d;
  return FG_OK;
}

static fg_status get_size(fg_origin o, const cJSON *obj, const char *name, size_t *out) {
  double d = 0;
  FG_TRY(get_integer(o, obj, name, 0, 9007199254740992.0, &d));
  *out = (size_t)d;
  return FG_OK;
}

static fg_status get_real_array(fg_origin o, const cJSON *obj, const char *name, double *v, int *n) {
  const cJSON *a = cJSON_GetObjectItemCaseSensitive(obj, name);
  int len = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
  if (len < 0 || len > FG_METRICS_MAX_EXITS) return field_error(o, name, "an array of at most 16 numbers");
  int i = 0;
  for (const cJSON *e = a->child; e; e = e->next, i++) {
    if (cJSON_IsNull(e))
      v[i] = NAN;
    else if (cJSON_IsNumber(e))
      v[i] = e->valuedouble;
    else
      return field_error(o, name, "an array of numbers or nulls");
  }
  *n = len;
  return FG_OK;
}

/* A count field that must equal the length of the array it describes. */
static fg_status check_count(fg_origin o, const cJSON *obj, const char *name, int expected) {
  int n = 0;
  FG_TRY(get_int(o, obj, name, 0, &n));
  if (n != expected) {
    char what[64];
    snprintf(what, sizeof what, "%d (the length of its array)", expected);
    return field_error(o, name, what);
  }
  return FG_OK;
}

static fg_status json_to_round(fg_origin o, const cJSON *obj, fg_round_record *r) {
  memset(r, 0, sizeof *r);
  if (!cJSON_IsObject(obj)) {
    if (o.line > 0) return FG_FAIL(FG_ERR_FORMAT, "%s:%ld: not a JSON object", o.path, o.line);
    return FG_FAIL(FG_ERR_FORMAT, "%s: not a JSON object", o.path);
  }
  const cJSON *ev = cJSON_GetObjectItemCaseSensitive(obj, "evaluated");
  if (!cJSON_IsBool(ev)) return field_error(o, "evaluated", "true or false");
  r->evaluated = cJSON_IsTrue(ev);
  const cJSON *clients = cJSON_GetObjectItemCaseSensitive(obj, "clients");
  if (!cJSON_IsArray(clients)) return field_error(o, "clients", "an array");
  r->n_clients = cJSON_GetArraySize(clients);
  FG_TRY(get_int(o, obj, "round", 1, &r->round));
  FG_TRY(get_int64(o, obj, "eval_samples", &r->eval_samples));
  FG_TRY(get_real_array(o, obj, "exit_accuracy", r->exit_accuracy, &r->n_exits));
  FG_TRY(check_count(o, obj, "n_exits", r->n_exits));
  FG_TRY(check_count(o, obj, "n_clients", r->n_clients));
  FG_TRY(get_real(o, obj, "accuracy", &r->accuracy));
  FG_TRY(get_real(o, obj, "ensemble_accuracy", &r->ensemble_accuracy));
  FG_TRY(get_real(o, obj, "test_loss", &r->test_loss));
  FG_TRY(get_real(o, obj, "train_loss", &r->train_loss));
  FG_TRY(get_size(o, obj, "bytes_down", &r->bytes_down));
  FG_TRY(get_size(o, obj, "bytes_up", &r->bytes_up));
  FG_TRY(get_real(o, obj, "seconds", &r->seconds));
  FG_TRY(get_real(o, obj, "elapsed", &r->elapsed));
  FG_TRY(get_size(o, obj, "max_client_engine_peak", &r->max_client_engine_peak));
  FG_TRY(get_size(o, obj, "process_peak", &r->process_peak));
  /* absent in records written before the fields existed */
  r->transfer_seconds = r->device_bytes_in_use = NAN;
  if (cJSON_GetObjectItemCaseSensitive(obj, "transfer_seconds"))
    FG_TRY(get_real(o, obj, "transfer_seconds", &r->transfer_seconds));
  if (cJSON_GetObjectItemCaseSensitive(obj, "device_bytes_in_use"))
    FG_TRY(get_real(o, obj, "device_bytes_in_use", &r->device_bytes_in_use));
  return FG_OK;
}

/* ---- reading metrics.jsonl line by line ----------------------------------------------------- */

/* Called for every complete, valid record with its raw line (including the newline). */
typedef fg_status (*fg_record_fn)(void *ctx, const char *line, size_t len, const fg_round_record *r);

/* Visits the records of `path`. A last line without a newline, or a last line that is not valid
 * JSON, is an interrupted append and is skipped; any other invalid line is FG_ERR_FORMAT.
 * *missing is set (and nothing visited) when the file does not exist. */
static fg_status scan_records(const char *path, fg_record_fn fn, void *ctx, int *missing) {
  *missing = 0;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (errno == ENOENT) {
      *missing = 1;
      return FG_OK;
    }
    return FG_FAIL(FG_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
  }
  char *line = NULL;
  size_t cap = 0;
  fg_status s = FG_OK;
  for (long lineno = 1;; lineno++) {
    errno = 0;
    ssize_t len = getline(&line, &cap, f);
    if (len < 0) {
      if (ferror(f)) s = FG_FAIL(FG_ERR_IO, "cannot read '%s': %s", path, strerror(errno));
      break;
    }
    if (line[len - 1] != '\n') break; /* torn: the file ends inside this line */
    int c = getc(f);
    int last = c == EOF;
    if (!last) ungetc(c, f);
    /* getline NUL-terminates: the length with the NUL makes trailing bytes an error */
    cJSON *obj = cJSON_ParseWithLengthOpts(line, (size_t)len + 1, NULL, 1);
    if (!obj) {
      if (last) break; /* a torn line (e.g. zeros after a power loss) */
      s = FG_FAIL(FG_ERR_FORMAT, "%s:%ld: not valid JSON (a corrupted record)", path, lineno);
      break;
    }
    fg_round_record r;
    s = json_to_round((fg_origin){path, lineno}, obj, &r);
    cJSON_Delete(obj);
    if (s == FG_OK) s = fn(ctx, line, (size_t)len, &r);
    if (s != FG_OK) break;
  }
  free(line);
  fclose(f);
  return s;
}

/* ---- the writer ---------------------------------------------------------------------------- */

typedef struct fg_resume_ctx {
  int keep_rounds;
  const char *path;
  fg_atomic_file *jsonl, *csv;
  int csv_exits, last_round;
} fg_resume_ctx;

static fg_status resume_record(void *vctx, const char *line, size_t len, const fg_round_record *r) {
  fg_resume_ctx *ctx = vctx;
  if (r->round > ctx->keep_rounds) return FG_OK;
  if (r->round <= ctx->last_round)
    return FG_FAIL(FG_ERR_FORMAT, "%s: round %d follows round %d (rounds must increase)", ctx->path, r->round,
                   ctx->last_round);
  ctx->last_round = r->round;
  fg_text t = {0};
  if (ctx->csv_exits < 0) {
    ctx->csv_exits = r->n_exits;
    csv_header(&t, ctx->csv_exits);
  }
  csv_row(&t, r, ctx->csv_exits);
  fg_status s = t.failed ? FG_FAIL(FG_ERR_OOM, "cannot format a CSV row") : FG_OK;
  if (s == FG_OK) s = fg_atomic_write(ctx->jsonl, line, len);
  if (s == FG_OK) s = fg_atomic_write(ctx->csv, t.p, t.len);
  free(t.p);
  return s;
}

/* Rewrites both files atomically with the records of round <= keep_rounds (none when < 0). */
static fg_status rewrite_files(fg_metrics *m, int keep_rounds) {
  fg_atomic_file jsonl = {0}, csv = {0};
  FG_TRY(fg_atomic_open(&jsonl, m->jsonl_path));
  fg_status s = fg_atomic_open(&csv, m->csv_path);
  if (s != FG_OK) {
    fg_atomic_abort(&jsonl);
    return s;
  }
  fg_resume_ctx ctx = {keep_rounds, m->jsonl_path, &jsonl, &csv, -1, 0};
  int missing = 0;
  if (keep_rounds >= 0) s = scan_records(m->jsonl_path, resume_record, &ctx, &missing);
  /* metrics.jsonl first: a crash between the two commits leaves a CSV that the next resume
   * rebuilds anyway. */
  if (s == FG_OK) s = fg_atomic_commit(&jsonl);
  if (s == FG_OK) s = fg_atomic_commit(&csv);
  fg_atomic_abort(&jsonl);
  fg_atomic_abort(&csv);
  m->csv_exits = ctx.csv_exits;
  m->last_round = ctx.last_round;
  return s;
}

static fg_status open_append(const char *path, int *fd, off_t *size) {
  *fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
  struct stat st;
  if (*fd < 0 || fstat(*fd, &st) != 0) return FG_FAIL(FG_ERR_IO, "cannot open '%s' to append: %s", path, strerror(errno));
  *size = st.st_size;
  return FG_OK;
}

fg_status fg_metrics_open(const char *dir, int keep_rounds, fg_metrics **out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_open: no output handle");
  *out = NULL;
  if (!dir || !*dir) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_open: empty run folder path");
  struct stat st;
  if (stat(dir, &st) != 0) return FG_FAIL(FG_ERR_IO, "run folder '%s': %s", dir, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return FG_FAIL(FG_ERR_IO, "run folder '%s' is not a directory", dir);
  fg_metrics *m = calloc(1, sizeof *m);
  if (!m) return FG_FAIL(FG_ERR_OOM, "cannot allocate the metrics writer");
  m->jsonl_fd = m->csv_fd = m->failed_fd = -1;
  m->jsonl_path = fg_path_join(dir, fg_jsonl_name);
  m->csv_path = fg_path_join(dir, fg_csv_name);
  m->failed_path = fg_path_join(dir, fg_failed_name);
  m->dir = fg_path_join(dir, ".");
  fg_status s = m->jsonl_path && m->csv_path && m->failed_path && m->dir
                    ? FG_OK
                    : FG_FAIL(FG_ERR_OOM, "cannot allocate metrics paths");
  /* a fresh run has no failed rounds; a resumed one keeps those of the run it continues */
  if (s == FG_OK && keep_rounds < 0 && unlink(m->failed_path) != 0 && errno != ENOENT)
    s = FG_FAIL(FG_ERR_IO, "cannot remove '%s': %s", m->failed_path, strerror(errno));
  if (s == FG_OK) s = rewrite_files(m, keep_rounds);
  if (s == FG_OK) s = open_append(m->jsonl_path, &m->jsonl_fd, &m->jsonl_size);
  if (s == FG_OK) s = open_append(m->csv_path, &m->csv_fd, &m->csv_size);
  if (s != FG_OK) {
    fg_metrics_close(m);
    return s;
  }
  *out = m;
  return FG_OK;
}

static fg_status check_record(const fg_metrics *m, const fg_round_record *r) {
  if (!r) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_append: no record");
  if (r->round < 1 || r->round <= m->last_round)
    return FG_FAIL(FG_ERR_INVALID, "%s: round %d cannot follow round %d (rounds are 1-based and increase)",
                   m->jsonl_path, r->round, m->last_round);
  if (r->n_exits < 0 || r->n_exits > FG_METRICS_MAX_EXITS)
    return FG_FAIL(FG_ERR_INVALID, "round %d: n_exits %d is not in 0..%d", r->round, r->n_exits,
                   FG_METRICS_MAX_EXITS);
  if (r->n_clients < 0 || (r->n_clients > 0 && !r->clients))
    return FG_FAIL(FG_ERR_INVALID, "round %d: n_clients %d without client records", r->round, r->n_clients);
  for (int i = 0; i < r->n_clients; i++)
    if ((unsigned)r->clients[i].status > (unsigned)FG_CLIENT_DROPPED)
      return FG_FAIL(FG_ERR_INVALID, "round %d, client %d: status %d is not a fg_client_status", r->round,
                     r->clients[i].id, (int)r->clients[i].status);
  return FG_OK;
}

fg_status fg_metrics_append(fg_metrics *m, const fg_round_record *r) {
  if (!m) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_append: no writer");
  FG_TRY(check_record(m, r));
  cJSON *obj = round_to_json(r);
  char *json = obj ? cJSON_PrintUnformatted(obj) : NULL;
  cJSON_Delete(obj);
  fg_text t = {0};
  if (json) text_printf(&t, "%s\n", json);
  free(json);
  int csv_exits = m->csv_exits < 0 ? r->n_exits : m->csv_exits;
  fg_text row = {0};
  if (m->csv_exits < 0) csv_header(&row, csv_exits);
  csv_row(&row, r, csv_exits);
  fg_status s = FG_OK;
  if (!t.p || t.failed || row.failed) s = FG_FAIL(FG_ERR_OOM, "round %d: cannot format the record", r->round);
  off_t jsonl_before = m->jsonl_size;
  if (s == FG_OK) s = append_line(m->jsonl_fd, &m->jsonl_size, m->jsonl_path, t.p, t.len);
  if (s == FG_OK) fg_killpoint("metrics_append");
  if (s == FG_OK) {
    s = append_line(m->csv_fd, &m->csv_size, m->csv_path, row.p, row.len);
    if (s != FG_OK) cut_back(m->jsonl_fd, &m->jsonl_size, jsonl_before);
  }
  free(t.p);
  free(row.p);
  if (s != FG_OK) return s;
  m->csv_exits = csv_exits;
  m->last_round = r->round;
  return FG_OK;
}

/* Opens failed_rounds.jsonl to append, creating it; a torn last line (an interrupted append) is cut
 * off first. */
static fg_status open_failed(fg_metrics *m) {
  int fd = open(m->failed_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return FG_FAIL(FG_ERR_IO, "cannot open '%s' to append: %s", m->failed_path, strerror(errno));
  unsigned char *old = NULL;
  size_t len = 0;
  fg_status s = fg_read_file(m->failed_path, (size_t)1 << 30, &old, &len);
  size_t keep = len;
  while (s == FG_OK && keep > 0 && old[keep - 1] != '\n') keep--;
  free(old);
  if (s == FG_OK && keep < len && (ftruncate(fd, (off_t)keep) != 0 || fsync(fd) != 0))
    s = FG_FAIL(FG_ERR_IO, "cannot cut the torn last line of '%s': %s", m->failed_path, strerror(errno));
  if (s == FG_OK && len == 0) s = fg_sync_dir(m->dir); /* a new file: its name survives a power loss */
  if (s != FG_OK) {
    close(fd);
    return s;
  }
  m->failed_fd = fd;
  m->failed_size = (off_t)keep;
  return FG_OK;
}

fg_status fg_metrics_append_failed(fg_metrics *m, const fg_failed_round *f) {
  if (!m || !f) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_append_failed: missing argument");
  if (f->round < 1 || f->attempt < 1 || f->n_clients < 0 || (f->n_clients > 0 && !f->clients))
    return FG_FAIL(FG_ERR_INVALID, "failed round %d, attempt %d: %d participants%s", f->round, f->attempt,
                   f->n_clients, f->n_clients > 0 && !f->clients ? " without records" : "");
  for (int i = 0; i < f->n_clients; i++)
    if ((unsigned)f->clients[i].status > (unsigned)FG_CLIENT_DROPPED)
      return FG_FAIL(FG_ERR_INVALID, "failed round %d, client %d: status %d is not a fg_client_status", f->round,
                     f->clients[i].id, (int)f->clients[i].status);
  if (m->failed_fd < 0) FG_TRY(open_failed(m));
  cJSON *o = cJSON_CreateObject();
  int ok = o && add_number(o, "round", f->round) && add_number(o, "attempt", f->attempt) &&
           add_number(o, "results", f->results) && add_number(o, "needed", f->needed) &&
           cJSON_AddBoolToObject(o, "retried", f->retried != 0) && add_number(o, "n_clients", f->n_clients) &&
           add_status_counts(o, f->clients, f->n_clients) && add_clients(o, f->clients, f->n_clients);
  char *json = ok ? cJSON_PrintUnformatted(o) : NULL;
  cJSON_Delete(o);
  fg_text t = {0};
  if (json) text_printf(&t, "%s\n", json);
  free(json);
  fg_status s = t.p && !t.failed ? append_line(m->failed_fd, &m->failed_size, m->failed_path, t.p, t.len)
                                 : FG_FAIL(FG_ERR_OOM, "failed round %d: cannot format the record", f->round);
  free(t.p);
  return s;
}

void fg_metrics_close(fg_metrics *m) {
  if (!m) return;
  if (m->jsonl_fd >= 0) close(m->jsonl_fd);
  if (m->csv_fd >= 0) close(m->csv_fd);
  if (m->failed_fd >= 0) close(m->failed_fd);
  free(m->jsonl_path);
  free(m->csv_path);
  free(m->failed_path);
  free(m->dir);
  free(m);
}

/* ---- the reader ---------------------------------------------------------------------------- */

typedef struct fg_read_ctx {
  fg_round_record *rounds;
  int n, cap;
} fg_read_ctx;

static fg_status read_record(void *vctx, const char *line, size_t len, const fg_round_record *r) {
  (void)line;
  (void)len;
  fg_read_ctx *ctx = vctx;
  if (ctx->n == ctx->cap) {
    int cap = ctx->cap ? ctx->cap * 2 : 64;
    fg_round_record *p = realloc(ctx->rounds, (size_t)cap * sizeof *p);
    if (!p) return FG_FAIL(FG_ERR_OOM, "cannot hold %d metrics records", cap);
    ctx->rounds = p;
    ctx->cap = cap;
  }
  ctx->rounds[ctx->n++] = *r;
  return FG_OK;
}

fg_status fg_metrics_read(const char *dir, fg_round_record **rounds, int *n) {
  if (!rounds || !n || !dir) return FG_FAIL(FG_ERR_INVALID, "fg_metrics_read: missing argument");
  *rounds = NULL;
  *n = 0;
  char *path = fg_path_join(dir, fg_jsonl_name);
  if (!path) return FG_FAIL(FG_ERR_OOM, "cannot allocate a path");
  fg_read_ctx ctx = {0};
  int missing = 0;
  fg_status s = scan_records(path, read_record, &ctx, &missing);
  if (s == FG_OK && missing) s = FG_FAIL(FG_ERR_IO, "cannot open '%s': %s", path, strerror(ENOENT));
  free(path);
  if (s != FG_OK) {
    free(ctx.rounds);
    return s;
  }
  *rounds = ctx.rounds;
  *n = ctx.n;
  return FG_OK;
}

/* ---- summary.json -------------------------------------------------------------------------- */

static int add_string_or_null(cJSON *obj, const char *name, const char *v) {
  cJSON *item = v ? cJSON_CreateString(v) : cJSON_CreateNull();
  return item && cJSON_AddItemToObject(obj, name, item);
}

static int add_spread_time(cJSON *parent, const fg_spread_time *t) {
  cJSON *o = cJSON_CreateObject();
  if (!o || !cJSON_AddItemToObject(parent, "spread", o)) {
    cJSON_Delete(o);
    return 0;
  }
  return add_number(o, "broadcast_seconds", t->broadcast) && add_number(o, "server_train_seconds", t->server_train) &&
         add_number(o, "server_wait_seconds", t->server_wait) &&
         add_number(o, "worker_train_seconds", t->worker_train) &&
         add_number(o, "worker_send_seconds", t->worker_send) && add_number(o, "worker_idle_seconds", t->worker_idle) &&
         add_number(o, "server_jobs", (double)t->server_jobs) && add_number(o, "worker_jobs", (double)t->worker_jobs);
}

fg_status fg_summary_write(const char *dir, const fg_summary *s) {
  if (!dir || !s) return FG_FAIL(FG_ERR_INVALID, "fg_summary_write: missing argument");
  if (s->n_exits < 0 || s->n_exits > FG_METRICS_MAX_EXITS)
    return FG_FAIL(FG_ERR_INVALID, "summary: n_exits %d is not in 0..%d", s->n_exits, FG_METRICS_MAX_EXITS);
  cJSON *o = cJSON_CreateObject();
  cJSON *exits = number_array(s->final_exit_accuracy, s->n_exits);
  int ok = o && exits && add_string_or_null(o, "name", s->name) && add_string_or_null(o, "method", s->method) &&
           add_string_or_null(o, "dataset", s->dataset) && add_string_or_null(o, "arch", s->arch) &&
           add_string_or_null(o, "revision", s->revision) && add_number(o, "rounds", s->rounds) &&
           add_number(o, "final_accuracy", s->final_accuracy) && add_number(o, "best_accuracy", s->best_accuracy) &&
           add_number(o, "n_exits", s->n_exits) && cJSON_AddItemToObject(o, "final_exit_accuracy", exits);
  if (!ok) cJSON_Delete(exits);
  ok = ok && add_number(o, "max_client_engine_peak", (double)s->max_client_engine_peak) &&
       add_number(o, "process_peak", (double)s->process_peak) && add_number(o, "wall_seconds", s->wall_seconds) &&
       add_number(o, "clients", s->clients) && add_number(o, "clients_never_fit", s->clients_never_fit) &&
       add_string_or_null(o, "eval_protocol", s->eval_protocol) && add_string_or_null(o, "device", s->device) &&
       add_number(o, "processes", s->processes > 0 ? s->processes : 1) &&
       add_raw_object(o, "method", s->method_report) && (!s->label || add_string_or_null(o, "label", s->label)) &&
       (!s->sampling || add_string_or_null(o, "sampling", s->sampling));
  if (ok && s->spread) ok = add_spread_time(o, s->spread);
  char *text = ok ? cJSON_Print(o) : NULL;
  cJSON_Delete(o);
  fg_text t = {0};
  if (text) text_printf(&t, "%s\n", text);
  free(text);
  char *path = fg_path_join(dir, fg_summary_name);
  fg_status st = !t.p || t.failed || !path ? FG_FAIL(FG_ERR_OOM, "cannot format the run summary")
                                           : fg_write_file_atomic(path, t.p, t.len);
  free(path);
  free(t.p);
  return st;
}

/* A string or null; `*len` grows by the bytes it needs (with its NUL). */
static fg_status get_string(fg_origin o, const cJSON *obj, const char *name, const char **out, size_t *len) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (cJSON_IsNull(v)) {
    *out = NULL;
    return FG_OK;
  }
  if (!cJSON_IsString(v)) return field_error(o, name, "a string or null");
  *out = v->valuestring;
  *len += strlen(v->valuestring) + 1;
  return FG_OK;
}

static fg_status json_to_summary(fg_origin o, const cJSON *obj, fg_summary *s, size_t *strings) {
  memset(s, 0, sizeof *s);
  if (!cJSON_IsObject(obj)) return FG_FAIL(FG_ERR_FORMAT, "%s: not a JSON object", o.path);
  FG_TRY(get_string(o, obj, "name", &s->name, strings));
  FG_TRY(get_string(o, obj, "method", &s->method, strings));
  FG_TRY(get_string(o, obj, "dataset", &s->dataset, strings));
  FG_TRY(get_string(o, obj, "arch", &s->arch, strings));
  FG_TRY(get_string(o, obj, "revision", &s->revision, strings));
  FG_TRY(get_int(o, obj, "rounds", 0, &s->rounds));
  FG_TRY(get_real(o, obj, "final_accuracy", &s->final_accuracy));
  FG_TRY(get_real(o, obj, "best_accuracy", &s->best_accuracy));
  FG_TRY(get_real_array(o, obj, "final_exit_accuracy", s->final_exit_accuracy, &s->n_exits));
  FG_TRY(check_count(o, obj, "n_exits", s->n_exits));
  FG_TRY(get_size(o, obj, "max_client_engine_peak", &s->max_client_engine_peak));
  FG_TRY(get_size(o, obj, "process_peak", &s->process_peak));
  FG_TRY(get_real(o, obj, "wall_seconds", &s->wall_seconds));
  FG_TRY(get_int(o, obj, "clients", 0, &s->clients));
  FG_TRY(get_int(o, obj, "clients_never_fit", 0, &s->clients_never_fit));
  /* absent in summaries written before the field existed */
  if (cJSON_GetObjectItemCaseSensitive(obj, "eval_protocol"))
    FG_TRY(get_string(o, obj, "eval_protocol", &s->eval_protocol, strings));
  if (cJSON_GetObjectItemCaseSensitive(obj, "device")) FG_TRY(get_string(o, obj, "device", &s->device, strings));
  s->processes = 1;
  if (cJSON_GetObjectItemCaseSensitive(obj, "processes")) FG_TRY(get_int(o, obj, "processes", 1, &s->processes));
  if (cJSON_GetObjectItemCaseSensitive(obj, "label")) FG_TRY(get_string(o, obj, "label", &s->label, strings));
  if (cJSON_GetObjectItemCaseSensitive(obj, "sampling"))
    FG_TRY(get_string(o, obj, "sampling", &s->sampling, strings));
  return FG_OK;
}

/* Copies a string into the block at *cursor and repoints *p to the copy. */
static void move_string(const char **p, char **cursor) {
  if (!*p) return;
  size_t n = strlen(*p) + 1;
  memcpy(*cursor, *p, n);
  *p = *cursor;
  *cursor += n;
}

fg_status fg_summary_read(const char *dir, fg_summary_file *out) {
  if (!dir || !out) return FG_FAIL(FG_ERR_INVALID, "fg_summary_read: missing argument");
  memset(out, 0, sizeof *out);
  char *path = fg_path_join(dir, fg_summary_name);
  if (!path) return FG_FAIL(FG_ERR_OOM, "cannot allocate a path");
  unsigned char *buf = NULL;
  size_t len = 0;
  fg_status s = fg_read_file(path, FG_SUMMARY_MAX_BYTES, &buf, &len);
  cJSON *obj = NULL;
  if (s == FG_OK) {
    obj = cJSON_ParseWithLengthOpts((const char *)buf, len + 1, NULL, 1);
    if (!obj) s = FG_FAIL(FG_ERR_FORMAT, "%s: not valid JSON", path);
  }
  size_t strings = 1;
  fg_summary sum;
  if (s == FG_OK) s = json_to_summary((fg_origin){path, 0}, obj, &sum, &strings);
  char *block = NULL;
  if (s == FG_OK && !(block = malloc(strings))) s = FG_FAIL(FG_ERR_OOM, "cannot hold the summary's strings");
  if (s == FG_OK) {
    char *cursor = block;
    const char **fields[] = {&sum.name,     &sum.method,        &sum.dataset, &sum.arch,
                             &sum.revision, &sum.eval_protocol, &sum.device, &sum.label};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) move_string(fields[i], &cursor);
    out->summary = sum;
    out->strings = block;
  }
  cJSON_Delete(obj);
  free(buf);
  free(path);
  return s;
}

void fg_summary_file_free(fg_summary_file *f) {
  if (!f) return;
  free(f->strings);
  memset(f, 0, sizeof *f);
}
