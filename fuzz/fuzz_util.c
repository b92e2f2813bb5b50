/* Scratch files and checks shared by the harnesses (fuzz.h). */
#define _XOPEN_SOURCE 700 /* nftw */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "cpu/cpu_backend.h"
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fl/checkpoint.h"
#include "fuzz/fuzz.h"

static char scratch[512];

void fg_fuzz_init(void) {
  static int done;
  if (done) return;
  done = 1;
  fg_cpu_options opt = {1, 0};
  if (fg_cpu_backend_register(&opt) != FG_OK) {
    fprintf(stderr, "fuzz: cpu backend: %s\n", fg_last_error());
    abort();
  }
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  remove(path);
  return 0;
}

/* At a normal exit (libFuzzer's end of run, the replay test): the scratch directory goes. A
 * harness that aborts leaves it, beside the crash it explains. */
static void remove_scratch(void) {
  if (scratch[0]) nftw(scratch, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *scratch_dir(void) {
  if (scratch[0]) return scratch;
  const char *t = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/fedgap-fuzz-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(scratch)) {
    perror("fuzz: mkdtemp");
    abort();
  }
  atexit(remove_scratch);
  return scratch;
}

const char *fg_fuzz_path(const char *name, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/%s", scratch_dir(), name);
  return buf;
}

const char *fg_fuzz_subdir(const char *name, char *buf, size_t cap) {
  fg_fuzz_path(name, buf, cap);
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
    perror("fuzz: mkdir");
    abort();
  }
  return buf;
}

const char *fg_fuzz_file(const char *name, const void *data, size_t n, int gz, char *buf, size_t cap) {
  fg_fuzz_path(name, buf, cap);
  if (gz) {
    gzFile f = gzopen(buf, "wb1");
    if (!f || (n && gzwrite(f, data, (unsigned)n) != (int)n) || gzclose(f) != Z_OK) {
      fprintf(stderr, "fuzz: cannot write %s\n", buf);
      abort();
    }
    return buf;
  }
  FILE *f = fopen(buf, "wb");
  if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
    fprintf(stderr, "fuzz: cannot write %s\n", buf);
    abort();
  }
  return buf;
}

int fg_fuzz_split(const uint8_t *data, size_t size, int len_bytes, int *flags, const uint8_t **a, size_t *na,
                  const uint8_t **b, size_t *nb) {
  if (size < 1 + (size_t)len_bytes) return 0;
  size_t len = 0;
  for (int i = 0; i < len_bytes; i++) len |= (size_t)data[1 + i] << (8 * i);
  *flags = data[0];
  data += 1 + len_bytes;
  size -= 1 + (size_t)len_bytes;
  if (len > size) len = size;
  *a = data;
  *na = len;
  *b = data + len;
  *nb = size - len;
  return 1;
}

void fg_fuzz_check_dataset(int s, fg_dataset *ds, fg_ledger *ledger, int64_t c, int64_t h, int64_t w, int classes) {
  if (s == FG_OK) {
    fg_fuzz_check(ds->n >= 1 && ds->c >= 1 && ds->h >= 1 && ds->w >= 1, "a loaded dataset has samples and a shape");
    fg_fuzz_check((!c || ds->c == c) && (!h || ds->h == h) && (!w || ds->w == w), "the format's image shape");
    fg_fuzz_check(!classes || ds->classes == classes, "the format's classes");
    const int32_t *y = fg_dataset_labels(ds);
    for (int64_t i = 0; i < ds->n; i++) fg_fuzz_check(y[i] >= 0 && y[i] < ds->classes, "labels within the classes");
    fg_dataset_free(ds);
  } else {
    fg_fuzz_check_message();
  }
  fg_fuzz_check(ledger->current == 0, "nothing stays charged");
}

static float method_values[7] = {1, 2, 3, 4, 5, 6, 7};
static int method_tensor(void *ctx, int i, const char **name, int64_t *numel) {
  (void)ctx;
  if (i > 1) return 0;
  *name = i == 0 ? "hypernet.a" : "hypernet.b";
  *numel = i == 0 ? 4 : 3;
  return 1;
}
static fg_status method_get(void *ctx, int i, float *host) {
  (void)ctx;
  memcpy(host, method_values + (i ? 4 : 0), (size_t)(i ? 3 : 4) * sizeof(float));
  return FG_OK;
}
static fg_status method_set(void *ctx, int i, const float *host) {
  (void)ctx;
  memcpy(method_values + (i ? 4 : 0), host, (size_t)(i ? 3 : 4) * sizeof(float));
  return FG_OK;
}

void fg_fuzz_method_tensors(fg_checkpoint_tensors *t) {
  t->ctx = NULL;
  t->tensor = method_tensor;
  t->get = method_get;
  t->set = method_set;
}

void fg_fuzz_check(int ok, const char *what) {
  if (ok) return;
  fprintf(stderr, "fuzz: broken invariant: %s (last error: %s)\n", what, fg_last_error());
  abort();
}

void fg_fuzz_check_message(void) {
  const char *m = fg_last_error();
  fg_fuzz_check(m[0] != '\0', "a reader failed without a message");
  fg_fuzz_check(strchr(m, '\n') == NULL, "an error message of more than one line");
}
