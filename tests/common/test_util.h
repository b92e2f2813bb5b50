/* Shared helpers for the Criterion suites: backend set-up, deterministic fills, comparisons
 * against double-precision references, temporary directories. */
#ifndef FG_TEST_UTIL_H
#define FG_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "engine/base/status.h"
#include "engine/mem/ledger.h"

/* Registers the CPU backend with `threads` threads (0 = all cores). */
void fgt_setup_cpu(int threads);

/* Asserts that a call returned FG_OK, printing the engine's message otherwise. */
#define FGT_OK(expr)                                                                  \
  do {                                                                                \
    fg_status fgt_s_ = (expr);                                                        \
    cr_assert_eq(fgt_s_, FG_OK, "%s -> %s: %s", #expr, fg_status_name(fgt_s_),       \
                 fg_last_error());                                                    \
  } while (0)

/* Uniform values in [lo, hi) from the test RNG stream `seed`. */
void fgt_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
void fgt_fill_uniform_double(double *x, size_t n, uint64_t seed, double lo, double hi);

/* Worst elementwise violation of |got - want| <= atol + rtol |want|. Returns 1 when all pass;
 * otherwise 0 and a message naming the worst index and values. */
int fgt_allclose(const float *got, const double *want, size_t n, double atol, double rtol,
                 char *msg, size_t cap);
/* The largest |x[i]| (0 for n = 0). */
double fgt_max_abs_f32(const float *x, size_t n);
int fgt_allclose_f(const float *got, const float *want, size_t n, double atol, double rtol,
                   char *msg, size_t cap);

/* A fresh directory under $TMPDIR (or /tmp); the caller removes it with fgt_rmtree. */
char *fgt_mkdtemp(void);
void fgt_rmtree(const char *path);

/* A temporary directory and an uncapped ledger, with the CPU backend on one thread. */
typedef struct fgt_fixture {
  char *dir;
  fg_ledger ledger;
} fgt_fixture;
fgt_fixture fgt_fixture_open(void);
/* Asserts that the ledger holds nothing any more, then removes the directory. */
void fgt_fixture_close(fgt_fixture *f);

/* Asserts status `want` and, when given, that the last error names `path` and contains `what`. */
void fgt_assert_error(fg_status got, fg_status want, const char *path, const char *what);

/* Writes `text` (without its terminating zero) to path, atomically (fg_write_file_atomic);
 * asserts that it succeeds. */
void fgt_write_text(const char *path, const char *text);

/* dir/name (malloc'd; fg_path_join), asserting the allocation. */
char *fgt_join(const char *dir, const char *name);

/* A test's scratch folder (one at a time): fgt_scratch_open makes it, fgt_at(name) is the path
 * of `name` in it (valid until fgt_scratch_close, at most 64 per folder), fgt_scratch_close
 * removes the folder with everything in it and frees the paths. */
void fgt_scratch_open(void);
const char *fgt_scratch_dir(void);
const char *fgt_at(const char *name);
void fgt_scratch_close(void);

struct cJSON;
/* The number under `key` of JSON object o; asserts that there is one. */
double fgt_json_number(const struct cJSON *o, const char *key);

/* The whole file as a NUL-terminated string (malloc'd); asserts that it can be read. */
char *fgt_read_text(const char *path);

/* Writes the n bytes at p to path, gzip-compressed when gz; asserts that every write succeeds. */
void fgt_write_file(const char *path, const void *p, size_t n, int gz);

/* Clears the backend registry and registers a CPU backend named "empty" whose op table is
 * empty, so that every entry point reports "not supported". */
void fgt_register_empty_backend(void);

#endif
