/* Thread-local error message for fg_status returns. */
#include "engine/base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { FG_MSG_CAP = 1024 };
static _Thread_local char fg_msg[FG_MSG_CAP];
static _Thread_local char fg_origin[128];
static _Thread_local fg_status fg_status_last = FG_OK;

/* Messages are one line: control characters that came in with a value (a key, a file name)
 * become spaces. */
static void one_line(char *s) {
  for (; *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = ' ';
}

fg_status fg_fail_at(fg_status status, const char *src_file, int src_line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(fg_msg, sizeof fg_msg, fmt, ap);
  va_end(ap);
  one_line(fg_msg);
  const char *base = strrchr(src_file, '/');
  snprintf(fg_origin, sizeof fg_origin, "%s:%d", base ? base + 1 : src_file, src_line);
  fg_status_last = status;
  return status;
}

void fg_error_prefix(const char *fmt, ...) {
  char prefix[FG_MSG_CAP / 2];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  one_line(prefix);
  size_t plen = strlen(prefix), mlen = strlen(fg_msg);
  if (plen + 2 + mlen >= FG_MSG_CAP) mlen = FG_MSG_CAP - plen - 3;
  memmove(fg_msg + plen + 2, fg_msg, mlen);
  fg_msg[plen + 2 + mlen] = '\0';
  memcpy(fg_msg, prefix, plen);
  fg_msg[plen] = ':';
  fg_msg[plen + 1] = ' ';
}

const char *fg_last_error(void) { return fg_msg; }
const char *fg_last_error_origin(void) { return fg_origin; }
fg_status fg_last_status(void) { return fg_status_last; }

void fg_clear_error(void) {
  fg_msg[0] = '\0';
  fg_origin[0] = '\0';
  fg_status_last = FG_OK;
}

const char *fg_status_name(fg_status status) {
  switch (status) {
    case FG_OK: return "ok";
    case FG_ERR_INVALID: return "invalid argument";
    case FG_ERR_SHAPE: return "shape mismatch";
    case FG_ERR_UNSUPPORTED: return "unsupported";
    case FG_ERR_NO_DEVICE: return "no device";
    case FG_ERR_BUDGET: return "memory budget exceeded";
    case FG_ERR_OOM: return "out of memory";
    case FG_ERR_LIBRARY: return "library error";
    case FG_ERR_IO: return "i/o error";
    case FG_ERR_FORMAT: return "bad file format";
    case FG_ERR_CONFIG: return "configuration error";
    case FG_ERR_NUMERIC: return "non-finite value";
    case FG_ERR_INTERNAL: return "internal error";
    case FG_STATUS_COUNT: break;
  }
  return "unknown status";
}
