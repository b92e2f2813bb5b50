/* Gzipped-or-plain sequential file reader with sizes for precise loader errors. */
#include "engine/data/reader.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* gzread takes an unsigned int length: read in chunks well below that. */
enum { FG_READER_CHUNK = 1 << 30, FG_READER_BUFFER = 1 << 17 };

uint64_t fg_mul_u64(uint64_t a, uint64_t b, int *overflow) {
  if (a != 0 && b > UINT64_MAX / a) {
    *overflow = 1;
    return 0;
  }
  return a * b;
}

fg_status fg_reader_open(fg_reader *r, const char *path) {
  memset(r, 0, sizeof *r);
  r->path = path;
  if (!path || !*path) return FG_FAIL(FG_ERR_INVALID, "data file path is empty");
  int fd = open(path, O_RDONLY);
  if (fd < 0) return FG_FAIL(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    return FG_FAIL(FG_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return FG_FAIL(FG_ERR_IO, "%s: not a regular file", path);
  }
  unsigned char magic[2] = {0, 0};
  ssize_t m = pread(fd, magic, 2, 0);
  if (m < 0) {
    int e = errno;
    close(fd);
    return FG_FAIL(FG_ERR_IO, "%s: cannot read: %s", path, strerror(e));
  }
  r->compressed = m == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
  r->file_bytes = (uint64_t)st.st_size;
  r->gz = gzdopen(fd, "rb");
  if (!r->gz) {
    close(fd);
    return FG_FAIL(FG_ERR_IO, "%s: cannot open for reading (zlib)", path);
  }
  gzbuffer(r->gz, FG_READER_BUFFER);
  return FG_OK;
}

void fg_reader_close(fg_reader *r) {
  if (r->gz) gzclose(r->gz);
  r->gz = NULL;
}

static void note_gz_error(fg_reader *r) {
  int err = Z_OK;
  const char *msg = gzerror(r->gz, &err);
  if (err != Z_OK && msg && *msg)
    snprintf(r->gz_note, sizeof r->gz_note, " (%s: %s)", r->compressed ? "gzip" : "zlib", msg);
}

fg_status fg_reader_read(fg_reader *r, void *buf, uint64_t n, uint64_t *got) {
  unsigned char *p = buf;
  uint64_t done = 0;
  while (done < n) {
    uint64_t want = n - done;
    if (want > FG_READER_CHUNK) want = FG_READER_CHUNK;
    int k = gzread(r->gz, p + done, (unsigned)want);
    if (k < 0) {
      note_gz_error(r);
      *got = done;
      r->consumed += done;
      return FG_FAIL(FG_ERR_FORMAT, "%s: corrupt data after %llu bytes%s", r->path,
                     (unsigned long long)(r->consumed), r->gz_note);
    }
    done += (uint64_t)k;
    if ((uint64_t)k < want) {
      note_gz_error(r);
      break;
    }
  }
  *got = done;
  r->consumed += done;
  return FG_OK;
}

uint64_t fg_reader_content_bound(const fg_reader *r) {
  if (!r->compressed) return r->file_bytes;
  /* Deflate expands at most 1032 : 1; allow for headers of several members. */
  int overflow = 0;
  uint64_t b = fg_mul_u64(r->file_bytes, 1032, &overflow);
  return overflow ? UINT64_MAX : b + 4096;
}

fg_status fg_reader_at_end(fg_reader *r, int *at_end) {
  unsigned char byte;
  uint64_t got = 0;
  FG_TRY(fg_reader_read(r, &byte, 1, &got));
  *at_end = got == 0;
  if (*at_end && r->gz_note[0])
    return FG_FAIL(FG_ERR_FORMAT, "%s: gzip stream ends early after %llu bytes (truncated file)%s",
                   r->path, (unsigned long long)r->consumed, r->gz_note);
  return FG_OK;
}

fg_status fg_reader_content_size(const char *path, uint64_t *bytes) {
  fg_reader r;
  FG_TRY(fg_reader_open(&r, path));
  if (!r.compressed) {
    *bytes = r.file_bytes;
    fg_reader_close(&r);
    return FG_OK;
  }
  unsigned char buf[1 << 16];
  uint64_t total = 0, got = 0;
  do {
    fg_status s = fg_reader_read(&r, buf, sizeof buf, &got);
    if (s != FG_OK) {
      fg_reader_close(&r);
      return s;
    }
    total += got;
  } while (got == sizeof buf);
  if (r.gz_note[0]) {
    fg_reader_close(&r);
    return FG_FAIL(FG_ERR_FORMAT, "%s: gzip stream ends early after %llu bytes%s", path,
                   (unsigned long long)total, r.gz_note);
  }
  fg_reader_close(&r);
  *bytes = total;
  return FG_OK;
}
