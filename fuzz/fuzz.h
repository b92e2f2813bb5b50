/* libFuzzer harnesses of fedgap's readers (fuzz/README.md): one entry point per reader, each
 * taking any bytes. Built as libFuzzer targets (FEDGAP_LIBFUZZER: LLVMFuzzerTestOneInput calls
 * the entry point) by `scripts/fuzz.sh` with clang, ASan and UBSan, and replayed on the seed
 * corpora and every regression input by tests/cpu/test_fuzz_replay.c in the normal build.
 * A harness returns 0 for any input; a broken invariant (a round trip that does not give back
 * what was written, a reader that fails without a message) aborts, which both libFuzzer and the
 * replay test report. Owns: the per-process scratch directory of fuzz_util.c (removed at a normal exit). */
#ifndef FG_FUZZ_H
#define FG_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int fg_fuzz_config(const uint8_t *data, size_t size);      /* YAML configuration with --set overrides */
int fg_fuzz_safetensors(const uint8_t *data, size_t size); /* safetensors reader, writer round trip */
int fg_fuzz_checkpoint(const uint8_t *data, size_t size);  /* checkpoint and method-state readers */
int fg_fuzz_idx(const uint8_t *data, size_t size);         /* IDX image + label files, plain or gzip */
int fg_fuzz_cifar(const uint8_t *data, size_t size);       /* CIFAR-10 / CIFAR-100 binary files */
int fg_fuzz_stl10(const uint8_t *data, size_t size);       /* STL-10 image + label files */
int fg_fuzz_svhn(const uint8_t *data, size_t size);        /* SVHN MAT-files */
int fg_fuzz_partition(const uint8_t *data, size_t size);   /* partition.json */

/* ---- shared by the harnesses (fuzz_util.c) ---- */

/* Registers the CPU backend (one thread) once. */
void fg_fuzz_init(void);
/* dir/name in this process's scratch directory (created once, under $TMPDIR or /tmp): a static
 * buffer per call site is not needed, the caller copies or uses it before the next call. */
const char *fg_fuzz_path(const char *name, char *buf, size_t cap);
/* The scratch subdirectory `name`, created when missing; its path into buf. */
const char *fg_fuzz_subdir(const char *name, char *buf, size_t cap);
/* Writes n bytes to the scratch file `name` (gzip-compressed when gz); its path into buf. */
const char *fg_fuzz_file(const char *name, const void *data, size_t n, int gz, char *buf, size_t cap);
/* Splits an input "flags byte, `len_bytes`-byte little-endian length L, L bytes, the rest" into
 * its flags and two parts (L cut to what is there); 0 when the input is too short. */
int fg_fuzz_split(const uint8_t *data, size_t size, int len_bytes, int *flags, const uint8_t **a, size_t *na,
                  const uint8_t **b, size_t *nb);
/* After a dataset load that returned `s`: a loaded dataset has samples, images of c x h x w (0:
 * any) and labels within its classes (and within `classes` when > 0), and is freed; a failed one
 * left a one-line message. Either way nothing stays charged to `ledger`. */
struct fg_dataset;
struct fg_ledger;
void fg_fuzz_check_dataset(int s, struct fg_dataset *ds, struct fg_ledger *ledger, int64_t c, int64_t h, int64_t w,
                           int classes);
/* A method's server-side state of two tensors ("hypernet.a" [4], "hypernet.b" [3]) in static
 * storage, as fg_checkpoint_tensors (fl/checkpoint.h) reaches it. */
struct fg_checkpoint_tensors;
void fg_fuzz_method_tensors(struct fg_checkpoint_tensors *t);

/* Aborts with a message when `ok` is 0: a broken invariant. */
void fg_fuzz_check(int ok, const char *what);
/* A failing reader must leave a one-line message. */
void fg_fuzz_check_message(void);

#endif
