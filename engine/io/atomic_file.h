/* Atomic file writes and whole-file reads.
 *
 * A run that is interrupted or fails must never destroy earlier results: every file the engine
 * writes (checkpoints, exports, metrics, summaries) goes through fg_atomic_file. Data is written
 * to a temporary file next to the target (path + ".tmp.XXXXXX"), and only fg_atomic_commit makes
 * it visible: flush, fsync the file, rename it over the target, fsync the directory. Until then,
 * and after any failure, the previous file at the target path is untouched and the temporary
 * file is removed. Owns: the open temporary file and the two path strings of each handle. */
#ifndef FG_ATOMIC_FILE_H
#define FG_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "engine/base/status.h"

typedef struct fg_atomic_file {
  FILE *fp;       /* the temporary file; NULL when the handle is not open */
  char *path;     /* the target path */
  char *tmp_path; /* the temporary file's path */
  unsigned mode;  /* permission bits the committed file gets */
} fg_atomic_file;

/* Creates the temporary file for `path` in the same directory. The committed file keeps the
 * permission bits of an existing file at `path`, else gets 0644. FG_ERR_IO when the temporary
 * file cannot be created (e.g. the directory is missing); the handle is then not open. */
fg_status fg_atomic_open(fg_atomic_file *f, const char *path);

/* Appends bytes / formatted text. On failure the temporary file is removed and the handle
 * closed (the target stays untouched); FG_ERR_INVALID on a handle that is not open. */
fg_status fg_atomic_write(fg_atomic_file *f, const void *data, size_t len);
fg_status fg_atomic_printf(fg_atomic_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Makes the written contents the file at `path` (fflush, fsync, rename, fsync of the directory)
 * and closes the handle. On failure before the rename the temporary file is removed and the
 * target is untouched. A failing directory fsync after the rename is still reported (the new
 * file is in place but may not survive a power loss). */
fg_status fg_atomic_commit(fg_atomic_file *f);

/* Closes and removes the temporary file. Safe on a handle that is not open (no-op). */
void fg_atomic_abort(fg_atomic_file *f);

/* fsync of directory `dir`, so that renames and new files in it survive a power loss. */
fg_status fg_sync_dir(const char *dir);

/* Writes `len` bytes to `path` atomically. */
fg_status fg_write_file_atomic(const char *path, const void *data, size_t len);

/* Reads the whole file into a malloc'd buffer (caller frees) with a terminating NUL byte after
 * the `*len` bytes of content. FG_ERR_IO when it cannot be read, FG_ERR_FORMAT when it is larger
 * than `max_bytes`; *buf is NULL on failure. */
fg_status fg_read_file(const char *path, size_t max_bytes, unsigned char **buf, size_t *len);

/* "dir/name" in a malloc'd string (caller frees); NULL when out of memory. */
char *fg_path_join(const char *dir, const char *name);

#endif
