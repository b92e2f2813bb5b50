/* The op suite's runner: one harness for every op, every table row and every backend.
 *
 * A case is one row of a table plus one call of an engine entry point (engine/backend/ops.h).
 * The family's build function declares the call's tensors (shape, dtype, role), fills the
 * inputs (the engine's counter-based RNG with a per-case seed, or literal values for
 * hand-derived rows), and states the expected outputs (from the double-precision references in
 * tests/ref, finite differences or numbers derived by hand). The runner then, on each backend:
 *   - allocates every tensor through a region on the backend's device, with NaN sentinels
 *     before and after it, and copies everything with fg_tensor_from_host / fg_tensor_to_host
 *     (a test never touches a non-host tensor's memory directly);
 *   - pre-fills outputs that are not accumulated with NaN (an unwritten element shows as NaN),
 *     and accumulated or updated tensors with known values;
 *   - runs the call twice on the same inputs and compares everything bitwise (determinism; on
 *     the CPU the first run uses one thread and the second two, so this is also the check that
 *     results do not depend on the thread count);
 *   - checks that the sentinels are intact (no out-of-bounds write) and the inputs unchanged;
 *   - compares the outputs with the expectation: bitwise, or within a tolerance class (see
 *     fgt_tol), reporting the worst element and the NMSE on one line;
 *   - for error rows, checks the status and the message instead.
 * An op the backend does not implement (FG_ERR_UNSUPPORTED) is counted as "unsupported on
 * <backend>", not as a failure; a backend that is not compiled in or has no usable device skips
 * the whole test with its reason. Each test prints one summary line (cases run / unsupported).
 * Owns: the buffers of the case being run. */
#ifndef FGT_OP_SUITE_H
#define FGT_OP_SUITE_H

#include <stddef.h>
#include <stdint.h>

#include <criterion/criterion.h>

#include "common/fd_check.h"
#include "engine/backend/ops.h"
#include "engine/mem/region.h"

/* ----------------------------------------------------------------------------------------- */
/* Tolerances (../shared/spec/cuda.md, "Testing")                                             */

/* |got - want| <= atol + rtol |want| elementwise, and, for outputs of at least FGT_NMSE_MIN
 * elements, NMSE = sum (got - want)^2 / sum want^2 <= nmse (0: not checked). exact: got must
 * equal want exactly (want then holds float values, or integers for u8/i32; +0 equals -0, the
 * sign of a zero being no part of any op's contract). */
typedef struct fgt_tol {
  int exact;
  double atol, rtol, nmse;
} fgt_tol;

enum { FGT_NMSE_MIN = 1000 };

/* Bitwise class: relu, add, axpy, scale, copy, fill, dropout, sigmoid backward, mul, max-pool
 * forward and argmax, avg-pool backward, SGD, Adam; compared with a float32 reference doing the same arithmetic in
 * the same order (tests/ref/ref_exact.h) or with a double reference whose rounding is provably
 * the float result. */
extern const fgt_tol FGT_EXACT;
/* Tolerance class: GEMM, convolution, reductions, the sigmoid forward (expf), bilinear
 * upsampling (and every gradient output of a loss). */
extern const fgt_tol FGT_TOL;
/* Scalar results of losses: 1e-6 relative (the correct count is compared exactly), and 1e-12
 * absolute for losses that are 0 (a row whose label is its logits' clear maximum). */
extern const fgt_tol FGT_TOL_LOSS;

/* ----------------------------------------------------------------------------------------- */
/* A case                                                                                     */

typedef enum fgt_role {
  FGT_IN = 1, /* uploaded; must be unchanged after the call */
  FGT_OUT,    /* NaN-filled before the call, compared after */
  FGT_INOUT,  /* uploaded with known values (accumulated outputs, optimizer state, in-place
                 operands), compared after */
} fgt_role;

enum { FGT_MAX_ARGS = 10 };

typedef struct fgt_arg {
  /* Declared by the build function (fgt_arg_declare). */
  const char *name; /* NULL: the argument is absent (the call passes NULL) */
  fg_dtype dtype;
  int ndim;
  int64_t shape[FG_MAX_DIMS];
  fgt_role role;
  void *host;        /* numel values of dtype: the inputs and initial values */
  double *want;      /* numel expected values (OUT, INOUT), or NULL: only the guards apply */
  double *atol_each; /* per-element absolute tolerance replacing tol.atol, or NULL */
  fgt_tol tol;
  /* Filled by the runner for the duration of one run. */
  fg_region region;
  fg_tensor t;
} fgt_arg;

typedef struct fgt_op fgt_op;
/* The one call of a case: the entry point, on fgt_t(op, i) tensors. */
typedef fg_status (*fgt_call_fn)(fgt_op *op);
/* Workspace bytes the call needs (queried on the device tensors before the call). */
typedef fg_status (*fgt_workspace_fn)(fgt_op *op, size_t *bytes);
/* Properties of the outputs beyond an elementwise comparison (an SVD's orthonormality, say):
 * out[i] is argument i's data as read back after the first run (NULL for absent arguments). */
typedef void (*fgt_check_fn)(const fgt_op *op, const char *backend, void *const *out);

struct fgt_op {
  char name[160];  /* names the op and the row, e.g. "conv2d_forward n3 c4 11x10 o6 k3 s2" */
  uint64_t seed;   /* per-case seed: inputs come from fg_rng streams (seed, FG_RNG_TEST, arg) */
  const void *row; /* the table row the call reads its descriptor from */
  fgt_call_fn call;
  fgt_workspace_fn workspace; /* NULL: no workspace */
  fgt_check_fn check;         /* NULL: the elementwise comparisons only */
  fgt_arg args[FGT_MAX_ARGS];
  /* Layout variants (cuda.md "Testing"). */
  int misaligned;    /* every f32 tensor sits 4 bytes past its region's alignment */
  int partial_batch; /* tensors are the front of buffers twice their size; the rest is a sentinel */
  /* Host scalar results of the call and their expectations. */
  double scalar; /* loss, nHSIC value, sum of squares */
  int64_t count; /* softmax_xent's correct count */
  int check_scalar, check_count;
  double want_scalar;
  int64_t want_count;
  fgt_tol scalar_tol;
  /* Error rows: the expected status (FG_OK for ordinary rows) and up to two message fragments. */
  fg_status expect;
  const char *expect_text[2];
  /* A refused call must leave every tensor untouched, except where a row documents that the
   * backend refuses only after writing its outputs (then only the sentinels are checked). */
  int refusal_writes;
  fg_workspace ws; /* the call's workspace, on the device */
  fg_region ws_region;
  void *scratch[64]; /* host allocations of the build function, freed with the case */
  int nscratch;
};

/* The device tensor of argument i, or NULL when the argument is absent. */
fg_tensor *fgt_t(fgt_op *op, int i);

/* Declares argument i. Returns its host buffer (numel values of dtype, zeroed). */
void *fgt_arg_declare(fgt_op *op, int i, const char *name, fg_dtype dtype, fgt_role role, int ndim,
                      const int64_t *shape);
/* Shorthand for f32 arguments of rank 1, 2 and 4. */
float *fgt_arg1(fgt_op *op, int i, const char *name, fgt_role role, int64_t n);
float *fgt_arg2(fgt_op *op, int i, const char *name, fgt_role role, int64_t rows, int64_t cols);
float *fgt_arg4(fgt_op *op, int i, const char *name, fgt_role role, int64_t n, int64_t c, int64_t h,
                int64_t w);

int64_t fgt_numel(const fgt_op *op, int i);
float *fgt_f32(fgt_op *op, int i);
/* Argument i's host values widened to double (an allocation owned by the case). */
double *fgt_widen(fgt_op *op, int i);
/* Uniform values in [lo, hi) for f32 argument i, from the stream (seed, FG_RNG_TEST, i, 0). */
float *fgt_fill(fgt_op *op, int i, float lo, float hi);
/* Uniform integers in [0, below) for i32 argument i. */
int32_t *fgt_fill_labels(fgt_op *op, int i, int64_t below);
/* fgt_fill of every declared f32 argument that is not an output (inputs and INOUT). */
void fgt_fill_all(fgt_op *op, float lo, float hi);
/* Expected values of argument i with tolerance class tol: a zeroed double array to fill. */
double *fgt_expect(fgt_op *op, int i, fgt_tol tol);
/* The same, starting from argument i's own initial values when it is accumulated into (INOUT),
 * so that a reference that adds (+=) completes it; zeroed otherwise. */
double *fgt_expect_onto(fgt_op *op, int i, fgt_tol tol);
/* The scalar result is compared with want (class tol); the count exactly. */
void fgt_expect_scalar(fgt_op *op, double want, fgt_tol tol);
void fgt_expect_count(fgt_op *op, int64_t want);
/* This row must fail with `status` and a message containing `text` (and `text2`, if given). */
void fgt_expect_error(fgt_op *op, fg_status status, const char *text, const char *text2);
/* Changes the declared shape of argument i (error rows: a shape the entry point must refuse).
 * The host buffer is resized (zeroed). */
void fgt_arg_reshape(fgt_op *op, int i, int ndim, const int64_t *shape);
void fgt_arg_retype(fgt_op *op, int i, fg_dtype dtype);

/* A host allocation freed with the case (zeroed). */
void *fgt_scratch(fgt_op *op, size_t bytes);
double *fgt_scratch_d(fgt_op *op, int64_t n);

/* printf into op->name. */
void fgt_name(fgt_op *op, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Asserts that `got` (float32 values of a bitwise-class float reference, or anything else)
 * agrees with the double reference `want` within the tolerance class: a check of the test's own
 * float references, so that an exact comparison against them means something. */
void fgt_check_reference(const char *what, const double *got, const double *want, int64_t n);

/* ----------------------------------------------------------------------------------------- */
/* Suites                                                                                     */

/* Builds case `index` of a suite into a zeroed op (name and seed already set). */
typedef void (*fgt_build_fn)(int index, fgt_op *op);

/* A shape or dtype error at the entry point: case `base` of the suite with argument `arg`
 * given another shape (ndim > 0) and/or dtype (dtype >= 0); the call must fail with `status`
 * and a message containing `text` (and `text2`), and must leave every tensor untouched. */
typedef struct fgt_error_row {
  int base, arg;
  int ndim;
  int64_t shape[FG_MAX_DIMS];
  int dtype; /* an fg_dtype, or -1: unchanged */
  fg_status status;
  const char *text, *text2;
} fgt_error_row;

typedef struct fgt_suite {
  const char *name; /* the op or variant, e.g. "conv2d_forward" */
  int cases;
  fgt_build_fn build;
  const fgt_error_row *errors; /* run after the cases; may be NULL */
  int nerrors;
} fgt_suite;

/* Row layouts (cuda.md "Testing": misaligned weights, a partial batch). */
enum { FGT_ALIGNED = 0, FGT_MISALIGNED = 1, FGT_PARTIAL = 2 };
void fgt_layout(fgt_op *op, int flags);
/* "", " misaligned" or " partial batch", for case names. */
const char *fgt_layout_name(int flags);

/* Runs every case of the suite on the backend of `kind`: registers it (CPU; CUDA with
 * fg_cuda_backend_register(0) when the build has it), skips the test with the backend's reason
 * when it is not usable, and prints a summary line. */
void fgt_suite_run(const fgt_suite *s, fg_device_kind kind);

/* One Criterion test per backend kind for a suite: family.op_cpu and family.op_cuda. */
#define FGT_SUITE_TESTS(family, op, suite)                        \
  Test(family, op##_cpu) { fgt_suite_run(&(suite), FG_DEV_CPU); } \
  Test(family, op##_cuda, .timeout = 300) { fgt_suite_run(&(suite), FG_DEV_CUDA); }

/* ----------------------------------------------------------------------------------------- */
/* Backends and device buffers, for tests that run ops outside a suite (finite differences,
 * sequences of calls)                                                                        */

/* Registers the backend of `kind` in this process and returns its device. When the backend is
 * not compiled in or not usable, skips the current test with the reason. */
fg_device fgt_backend_open(fg_device_kind kind);
const char *fgt_kind_name(fg_device_kind kind);

/* A tensor on a device, in a region of its own (charged to the harness's ledger). */
typedef struct fgt_dbuf {
  fg_region region;
  fg_tensor t;
} fgt_dbuf;

fgt_dbuf fgt_dbuf_alloc(fg_device dev, fg_dtype dtype, int ndim, const int64_t *shape);
void fgt_dbuf_free(fgt_dbuf *b);
/* Whole-tensor transfers, asserting success (f32 from and to double convert on the host). */
void fgt_upload(fgt_dbuf *b, const void *host);
void fgt_download(void *host, const fgt_dbuf *b);
void fgt_upload_d(fgt_dbuf *b, const double *host);
void fgt_download_d(double *host, const fgt_dbuf *b);
/* A workspace of `bytes` on dev, NaN-filled (stale contents must never be read). */
fg_workspace fgt_workspace_alloc(fg_device dev, size_t bytes, fg_region *r);

/* Finite differences through an op on a device (common/fd_check.h): `forward(ctx)` runs the op
 * after `param` was uploaded (as float) into `target`, and the loss is L = <out, r> in double,
 * or, when out is NULL, the op's own scalar result, read from *scalar. fgt_device_loss is the
 * fgt_loss_fn to hand to fgt_fd_check. */
typedef struct fgt_device_loss_ctx {
  fgt_dbuf *target;
  const double *param;
  fg_status (*forward)(void *ctx);
  void *ctx;
  const fgt_dbuf *out;
  const double *r;
  const double *scalar;
} fgt_device_loss_ctx;
double fgt_device_loss(void *device_loss_ctx);
/* fgt_fd_check of c->param (n values, perturbed in place) through fgt_device_loss, against
 * grad; afterwards the target holds the unperturbed values again. */
void fgt_fd_check_device(const char *what, fgt_device_loss_ctx *c, double *param, int64_t n,
                         const double *grad, const fgt_fd_opts *o);
/* One parameter of a forward whose gradient fgt_fd_check_params checks. */
typedef struct fgt_fd_param {
  const char *name; /* "dx", "dw", ... */
  fgt_dbuf *target; /* where the forward reads the parameter */
  double *values;   /* its values (perturbed in place and restored) */
  const double *grad;
  int64_t n;
} fgt_fd_param;
/* For each parameter: fgt_fd_check_device along one random direction (seed + its index), with
 * L = <out, r> after forward(ctx), or the forward's scalar when out is NULL. */
void fgt_fd_check_params(const char *op, fg_device_kind kind, fg_status (*forward)(void *ctx),
                         void *ctx, const fgt_dbuf *out, const double *r, const double *scalar,
                         const fgt_fd_param *params, int count, double step, double atol,
                         double rtol, uint64_t seed);
/* n uniform values in [lo, hi) from the test stream `seed` (an allocation the caller frees). */
double *fgt_alloc_uniform(int64_t n, uint64_t seed, double lo, double hi);
/* A direction of n uniform values in [-1, 1) on the grid of FGT_FD_GRID (an allocation the
 * caller frees). */
double *fgt_random_direction(int64_t n, uint64_t seed);
/* Rounds x to multiples of `step` (a power of two). Parameters on a grid of 2^-10, directions
 * on FGT_FD_GRID and steps that are powers of two make p +- h v exact in float, so the float
 * rounding of perturbed inputs does not enter a backend's finite differences. */
void fgt_quantize(double *x, int64_t n, double step);
#define FGT_FD_GRID (1.0 / 64)

#endif
