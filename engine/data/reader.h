/* Sequential reading of data files that may be gzipped or plain (internal to engine/data).
 *
 * zlib's gz interface reads both transparently; this wrapper adds what the loaders need for
 * precise errors: the on-disk size, whether the file is compressed, an upper bound on the
 * content size known before reading (exact for plain files), byte counts, and zlib's message
 * when a gzip stream is truncated or corrupt. Owns: the open file. */
#ifndef FG_DATA_READER_H
#define FG_DATA_READER_H

#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "engine/base/status.h"

typedef struct fg_reader {
  gzFile gz;
  const char *path;    /* caller-owned */
  int compressed;      /* gzip magic found */
  uint64_t file_bytes; /* size on disk */
  uint64_t consumed;   /* content bytes delivered so far */
  char gz_note[96];    /* " (gzip: <zlib message>)" after a short or failed read, else "" */
} fg_reader;

/* Opens a regular file. FG_ERR_IO with strerror when it is missing, unreadable, or not a
 * regular file. */
fg_status fg_reader_open(fg_reader *r, const char *path);
void fg_reader_close(fg_reader *r);

/* Reads up to n bytes; *got < n only at the end of the content (or of a truncated gzip stream,
 * noted in gz_note). FG_ERR_FORMAT when zlib reports corrupt data. */
fg_status fg_reader_read(fg_reader *r, void *buf, uint64_t n, uint64_t *got);

/* The most content bytes the file can hold: its size for plain files, the deflate bound
 * (1032 : 1 plus headers) for gzip files. */
uint64_t fg_reader_content_bound(const fg_reader *r);

/* *at_end = 1 when no content byte is left (reads at most one byte). */
fg_status fg_reader_at_end(fg_reader *r, int *at_end);

/* The content size of a file: its size for plain files, a full decompression pass for gzip. */
fg_status fg_reader_content_size(const char *path, uint64_t *bytes);

/* a * b, or 0 with *overflow = 1 when the product does not fit in 64 bits. */
uint64_t fg_mul_u64(uint64_t a, uint64_t b, int *overflow);

#endif
