/* Status codes and error messages for every fallible engine call.
 *
 * Library code never exits on bad input: it returns an fg_status and leaves a one-line message
 * naming the problem (file, field, value, expected; control characters of quoted values become
 * spaces) in a thread-local buffer, readable with
 * fg_last_error(). The first failure is recorded where it happens; callers that add context
 * use fg_error_prefix(). Owns: the thread-local message buffer. */
#ifndef FG_STATUS_H
#define FG_STATUS_H

typedef enum fg_status {
  FG_OK = 0,
  FG_ERR_INVALID,      /* an argument or value is out of range */
  FG_ERR_SHAPE,        /* tensor shapes or dtypes do not agree */
  FG_ERR_UNSUPPORTED,  /* the backend or build does not implement this */
  FG_ERR_NO_DEVICE,    /* the requested device is absent or unusable */
  FG_ERR_BUDGET,       /* a ledger cap would be exceeded: nothing was allocated */
  FG_ERR_OOM,          /* the system or device allocator failed */
  FG_ERR_LIBRARY,      /* an external library (BLAS, LAPACK, cuDNN, ...) reported an error */
  FG_ERR_IO,           /* a file could not be opened, read or written */
  FG_ERR_FORMAT,       /* a file's contents are malformed (magic, size, header) */
  FG_ERR_CONFIG,       /* a configuration key or value is wrong */
  FG_ERR_NUMERIC,      /* a NaN or infinity appeared where a finite value is required */
  FG_ERR_INTERNAL,     /* a broken invariant: a bug in fedgap */
  FG_STATUS_COUNT
} fg_status;

/* Records `status` with a printf-style message and the source location; returns `status`.
 * Use through FG_FAIL so the location is filled in. */
fg_status fg_fail_at(fg_status status, const char *src_file, int src_line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#define FG_FAIL(status, ...) fg_fail_at((status), __FILE__, __LINE__, __VA_ARGS__)

/* Returns early from the calling function when `expr` is not FG_OK. */
#define FG_TRY(expr)                     \
  do {                                   \
    fg_status fg_try_s_ = (expr);        \
    if (fg_try_s_ != FG_OK) return fg_try_s_; \
  } while (0)

/* Prepends "context: " to the current message (e.g. the path of the file being read). */
void fg_error_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

const char *fg_last_error(void);        /* message of the latest failure in this thread, or "" */
const char *fg_last_error_origin(void); /* "src.c:123" of the latest failure, or "" */
fg_status fg_last_status(void);
void fg_clear_error(void);
const char *fg_status_name(fg_status status); /* e.g. "budget exceeded" */

#endif
