/* Shared test helpers. */
#define _XOPEN_SOURCE 700
#include "common/test_util.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "cpu/cpu_backend.h"
#include "engine/backend/backend.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"

void fgt_setup_cpu(int threads) {
  fg_cpu_options opt = {threads, 0};
  fg_status s = fg_cpu_backend_register(&opt);
  cr_assert_eq(s, FG_OK, "cpu backend: %s", fg_last_error());
}

void fgt_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * fg_rng_uniform(&r);
}

void fgt_fill_uniform_double(double *x, size_t n, uint64_t seed, double lo, double hi) {
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * fg_rng_uniform(&r);
}

static int allclose_impl(const float *got, const double *wantd, const float *wantf, size_t n,
                         double atol, double rtol, char *msg, size_t cap) {
  size_t worst = 0, bad = 0;
  double worst_excess = -1.0;
  for (size_t i = 0; i < n; i++) {
    double w = wantd ? wantd[i] : (double)wantf[i];
    double err = fabs((double)got[i] - w);
    double excess = err - (atol + rtol * fabs(w));
    if (!(excess <= 0.0)) bad++;
    if (!(excess <= worst_excess)) {
      worst_excess = excess;
      worst = i;
    }
  }
  if (bad == 0) return 1;
  double w = wantd ? wantd[worst] : (double)wantf[worst];
  if (msg)
    snprintf(msg, cap, "%zu of %zu values out of tolerance (atol %g, rtol %g); worst at %zu: got %.9g, want %.9g",
             bad, n, atol, rtol, worst, (double)got[worst], w);
  return 0;
}

int fgt_allclose(const float *got, const double *want, size_t n, double atol, double rtol,
                 char *msg, size_t cap) {
  return allclose_impl(got, want, NULL, n, atol, rtol, msg, cap);
}

int fgt_allclose_f(const float *got, const float *want, size_t n, double atol, double rtol,
                   char *msg, size_t cap) {
  return allclose_impl(got, NULL, want, n, atol, rtol, msg, cap);
}

char *fgt_mkdtemp(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[4096];
  snprintf(tmpl, sizeof tmpl, "%s/fedgap-test-XXXXXX", base && *base ? base : "/tmp");
  char *dir = mkdtemp(tmpl);
  cr_assert_not_null(dir, "mkdtemp failed");
  return strdup(dir);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void fgt_rmtree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

char *fgt_read_text(const char *path) {
  unsigned char *buf = NULL;
  size_t len = 0;
  FGT_OK(fg_read_file(path, (size_t)1 << 30, &buf, &len));
  return (char *)buf;
}

void fgt_write_file(const char *path, const void *p, size_t n, int gz) {
  if (gz) {
    gzFile f = gzopen(path, "wb6");
    cr_assert_not_null(f, "gzopen %s", path);
    if (n) cr_assert_eq(gzwrite(f, p, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(f), Z_OK);
  } else {
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    if (n) cr_assert_eq(fwrite(p, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
  }
}

void fgt_register_empty_backend(void) {
  static fg_backend empty;
  memset(&empty, 0, sizeof empty);
  empty.name = "empty";
  empty.device = fg_host_device();
  empty.available = 1;
  fg_backend_registry_clear();
  FGT_OK(fg_backend_register(&empty));
}

double fgt_json_number(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  cr_assert(cJSON_IsNumber(v), "missing number %s", key);
  return v->valuedouble;
}

void fgt_write_text(const char *path, const char *text) {
  FGT_OK(fg_write_file_atomic(path, text, strlen(text)));
}

char *fgt_join(const char *dir, const char *name) {
  char *p = fg_path_join(dir, name);
  cr_assert_not_null(p, "out of memory joining %s and %s", dir, name);
  return p;
}

enum { FGT_SCRATCH_PATHS = 64 };
static struct {
  char *dir;
  char *paths[FGT_SCRATCH_PATHS];
  int n;
} fgt_scratch;

void fgt_scratch_open(void) {
  cr_assert_null(fgt_scratch.dir, "a scratch folder is open already");
  fgt_scratch.dir = fgt_mkdtemp();
}

const char *fgt_scratch_dir(void) {
  cr_assert_not_null(fgt_scratch.dir, "no scratch folder open");
  return fgt_scratch.dir;
}

const char *fgt_at(const char *name) {
  cr_assert_lt(fgt_scratch.n, FGT_SCRATCH_PATHS);
  return fgt_scratch.paths[fgt_scratch.n++] = fgt_join(fgt_scratch_dir(), name);
}

void fgt_scratch_close(void) {
  for (int i = 0; i < fgt_scratch.n; i++) free(fgt_scratch.paths[i]);
  if (fgt_scratch.dir) fgt_rmtree(fgt_scratch.dir);
  free(fgt_scratch.dir);
  memset(&fgt_scratch, 0, sizeof fgt_scratch);
}

fgt_fixture fgt_fixture_open(void) {
  fgt_setup_cpu(1);
  fgt_fixture f;
  f.dir = fgt_mkdtemp();
  fg_ledger_init(&f.ledger, "data", 0);
  return f;
}

void fgt_fixture_close(fgt_fixture *f) {
  cr_assert_eq(f->ledger.current, 0, "ledger still holds %zu bytes", f->ledger.current);
  fgt_rmtree(f->dir);
  free(f->dir);
}

void fgt_assert_error(fg_status got, fg_status want, const char *path, const char *what) {
  cr_assert_eq(got, want, "status %s, expected %s: %s", fg_status_name(got), fg_status_name(want),
               fg_last_error());
  if (path)
    cr_assert(strstr(fg_last_error(), path) != NULL, "message does not name %s: %s", path, fg_last_error());
  if (what)
    cr_assert(strstr(fg_last_error(), what) != NULL, "message lacks \"%s\": %s", what, fg_last_error());
}

double fgt_max_abs_f32(const float *x, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double a = fabs((double)x[i]);
    if (a > m) m = a;
  }
  return m;
}
