/* Atomic writes through a temporary file + rename; whole-file reads. */
#include "engine/io/atomic_file.h"

#include "engine/base/killpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char fg_tmp_suffix[] = ".tmp.XXXXXX";

/* Closes the stream (ignoring its errors) and removes the temporary file; frees the strings. */
static void fg_atomic_discard(fg_atomic_file *f) {
  if (f->fp) fclose(f->fp);
  if (f->tmp_path) unlink(f->tmp_path);
  free(f->path);
  free(f->tmp_path);
  f->fp = NULL;
  f->path = NULL;
  f->tmp_path = NULL;
}

/* Discards the handle and records FG_ERR_IO for `what` with the current errno. */
static fg_status fg_atomic_fail(fg_atomic_file *f, const char *what) {
  int err = errno;
  fg_status s = FG_FAIL(FG_ERR_IO, "cannot %s '%s' (temporary file '%s'): %s", what,
                        f->path ? f->path : "?", f->tmp_path ? f->tmp_path : "?", strerror(err));
  fg_atomic_discard(f);
  return s;
}

static fg_status fg_atomic_check_open(const fg_atomic_file *f) {
  if (!f || !f->fp) return FG_FAIL(FG_ERR_INVALID, "atomic file handle is not open");
  return FG_OK;
}

fg_status fg_atomic_open(fg_atomic_file *f, const char *path) {
  if (!f || !path || !*path) return FG_FAIL(FG_ERR_INVALID, "fg_atomic_open: empty path");
  memset(f, 0, sizeof *f);
  size_t n = strlen(path);
  f->path = malloc(n + 1);
  f->tmp_path = malloc(n + sizeof fg_tmp_suffix);
  if (!f->path || !f->tmp_path) {
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof *f);
    return FG_FAIL(FG_ERR_OOM, "cannot allocate path strings for '%s'", path);
  }
  memcpy(f->path, path, n + 1);
  memcpy(f->tmp_path, path, n);
  memcpy(f->tmp_path + n, fg_tmp_suffix, sizeof fg_tmp_suffix);

  struct stat st;
  f->mode = stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0644u;

  int fd = mkstemp(f->tmp_path);
  if (fd < 0) {
    int err = errno;
    fg_status s = FG_FAIL(FG_ERR_IO, "cannot create a temporary file '%s' to write '%s': %s",
                          f->tmp_path, path, strerror(err));
    free(f->tmp_path);
    f->tmp_path = NULL; /* nothing was created: nothing to unlink */
    fg_atomic_discard(f);
    return s;
  }
  f->fp = fdopen(fd, "wb");
  if (!f->fp) {
    int err = errno;
    close(fd);
    errno = err;
    return fg_atomic_fail(f, "open a stream to write");
  }
  return FG_OK;
}

fg_status fg_atomic_write(fg_atomic_file *f, const void *data, size_t len) {
  FG_TRY(fg_atomic_check_open(f));
  if (len == 0) return FG_OK;
  fg_killpoint("atomic_write");
  if (fwrite(data, 1, len, f->fp) != len) return fg_atomic_fail(f, "write");
  return FG_OK;
}

fg_status fg_atomic_printf(fg_atomic_file *f, const char *fmt, ...) {
  FG_TRY(fg_atomic_check_open(f));
  va_list ap;
  va_start(ap, fmt);
  int rc = vfprintf(f->fp, fmt, ap);
  va_end(ap);
  if (rc < 0) return fg_atomic_fail(f, "write");
  return FG_OK;
}

/* Directory part of `path`: "." when it has none, "/" for files in the root. Caller frees. */
static char *fg_dir_of(const char *path) {
  const char *slash = strrchr(path, '/');
  size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
  char *dir = malloc(n + 1);
  if (!dir) return NULL;
  if (!slash) memcpy(dir, ".", 1);
  else memcpy(dir, path, n);
  dir[n] = '\0';
  return dir;
}

fg_status fg_atomic_commit(fg_atomic_file *f) {
  FG_TRY(fg_atomic_check_open(f));
  if (fflush(f->fp) != 0 || ferror(f->fp)) return fg_atomic_fail(f, "write");
  int fd = fileno(f->fp);
  /* Permission bits are best effort: some filesystems (FAT, some network mounts) refuse them. */
  (void)fchmod(fd, (mode_t)f->mode);
  if (fsync(fd) != 0) return fg_atomic_fail(f, "fsync");
  FILE *fp = f->fp;
  f->fp = NULL;
  if (fclose(fp) != 0) return fg_atomic_fail(f, "close");
  fg_killpoint("atomic_rename");
  if (rename(f->tmp_path, f->path) != 0) return fg_atomic_fail(f, "rename the temporary file over");

  /* The rename happened: the temporary name no longer exists and must not be unlinked. */
  free(f->tmp_path);
  f->tmp_path = NULL;
  fg_status s = FG_OK;
  char *dir = fg_dir_of(f->path);
  if (!dir) {
    s = FG_FAIL(FG_ERR_OOM, "cannot allocate the directory name of '%s'", f->path);
  } else {
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd < 0 || fsync(dfd) != 0) {
      int err = errno;
      s = FG_FAIL(FG_ERR_IO, "wrote '%s' but cannot fsync its directory '%s': %s", f->path, dir,
                  strerror(err));
    }
    if (dfd >= 0) close(dfd);
    free(dir);
  }
  fg_atomic_discard(f);
  return s;
}

void fg_atomic_abort(fg_atomic_file *f) {
  if (!f) return;
  fg_atomic_discard(f);
}

fg_status fg_sync_dir(const char *dir) {
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  if (dfd < 0 || fsync(dfd) != 0) {
    int err = errno;
    if (dfd >= 0) close(dfd);
    return FG_FAIL(FG_ERR_IO, "cannot fsync the directory '%s': %s", dir, strerror(err));
  }
  close(dfd);
  return FG_OK;
}

fg_status fg_write_file_atomic(const char *path, const void *data, size_t len) {
  fg_atomic_file f;
  FG_TRY(fg_atomic_open(&f, path));
  FG_TRY(fg_atomic_write(&f, data, len));
  return fg_atomic_commit(&f);
}

/* read() that retries on EINTR. */
static ssize_t fg_read_some(int fd, void *dst, size_t n) {
  ssize_t r;
  do r = read(fd, dst, n);
  while (r < 0 && errno == EINTR);
  return r;
}

/* Reads until EOF into a buffer of at most max_bytes of content plus one NUL byte. The size
 * from fstat is only a hint: the buffer grows if the file is longer than it said. */
static fg_status fg_read_fd(int fd, const char *path, size_t size_hint, size_t max_bytes,
                            unsigned char **buf, size_t *len) {
  size_t room = size_hint < max_bytes ? size_hint : max_bytes; /* content capacity */
  unsigned char *p = malloc(room + 1);
  if (!p) return FG_FAIL(FG_ERR_OOM, "cannot allocate %zu bytes to read '%s'", room + 1, path);
  size_t n = 0;
  for (;;) {
    if (n == room) {
      if (room == max_bytes) { /* at the limit: fine only if the file ends here */
        unsigned char probe;
        ssize_t r = fg_read_some(fd, &probe, 1);
        if (r == 0) break;
        int err = errno;
        free(p);
        if (r < 0) return FG_FAIL(FG_ERR_IO, "cannot read '%s': %s", path, strerror(err));
        return FG_FAIL(FG_ERR_FORMAT, "file '%s' is larger than the limit of %zu bytes", path,
                       max_bytes);
      }
      size_t want = room < 4096 ? 4096 : room;
      size_t next = want > max_bytes - room ? max_bytes : room + want;
      unsigned char *q = realloc(p, next + 1);
      if (!q) {
        free(p);
        return FG_FAIL(FG_ERR_OOM, "cannot allocate %zu bytes to read '%s'", next + 1, path);
      }
      p = q;
      room = next;
    }
    ssize_t r = fg_read_some(fd, p + n, room - n);
    if (r < 0) {
      int err = errno;
      free(p);
      return FG_FAIL(FG_ERR_IO, "cannot read '%s': %s", path, strerror(err));
    }
    if (r == 0) break;
    n += (size_t)r;
  }
  p[n] = '\0';
  *buf = p;
  *len = n;
  return FG_OK;
}

fg_status fg_read_file(const char *path, size_t max_bytes, unsigned char **buf, size_t *len) {
  if (!buf || !len || !path) return FG_FAIL(FG_ERR_INVALID, "fg_read_file: null argument");
  *buf = NULL;
  *len = 0;
  if (max_bytes == SIZE_MAX) max_bytes = SIZE_MAX - 1;
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    int err = errno;
    return FG_FAIL(FG_ERR_IO, "cannot open '%s' for reading: %s", path, strerror(err));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return FG_FAIL(FG_ERR_IO, "cannot stat '%s': %s", path, strerror(err));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return FG_FAIL(FG_ERR_IO, "cannot read '%s': it is a directory", path);
  }
  if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > (uint64_t)max_bytes) {
    close(fd);
    return FG_FAIL(FG_ERR_FORMAT, "file '%s' is %lld bytes, larger than the limit of %zu bytes",
                   path, (long long)st.st_size, max_bytes);
  }
  size_t hint = S_ISREG(st.st_mode) ? (size_t)st.st_size : 4096;
  fg_status s = fg_read_fd(fd, path, hint, max_bytes, buf, len);
  close(fd);
  return s;
}

char *fg_path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}
