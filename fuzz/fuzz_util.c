/* Scratch files and checks shared by the harnesses (fuzz.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "cpu/cpu_backend.h"
#include "engine/base/status.h"
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

static const char *scratch_dir(void) {
  if (scratch[0]) return scratch;
  const char *t = getenv("TMPDIR");
  snprintf(scratch, sizeof scratch, "%s/fedgap-fuzz-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(scratch)) {
    perror("fuzz: mkdtemp");
    abort();
  }
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
