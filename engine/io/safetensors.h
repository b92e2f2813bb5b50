/* safetensors files: the format of checkpoints and exported weights.
 *
 * Layout (https://github.com/huggingface/safetensors): an 8-byte little-endian u64 header length
 * n, n bytes of UTF-8 JSON, then the data buffer. The JSON maps each tensor name to
 * {"dtype", "shape", "data_offsets": [begin, end)} (offsets relative to the data buffer, end
 * exclusive) plus an optional "__metadata__" object of string -> string. Tensor data is dense,
 * row-major, little-endian.
 *
 * The writer keeps pointers to the caller's host data until fg_st_writer_write, which lays the
 * tensors out contiguously in the order they were added, records the CRC-32 of that data buffer
 * in the metadata (FG_ST_CRC_KEY), pads the header with spaces so the data starts 8-byte
 * aligned, and writes the file atomically (engine/io/atomic_file.h). The reader loads and
 * validates the whole file up front (a recorded CRC-32 must match the data, so a corrupted
 * file is refused), so every later lookup is on checked data.
 * Owns: the writer's name/metadata copies; the reader's file bytes and parsed header (plain
 * malloc: this is file I/O, not a training allocation). */
#ifndef FG_SAFETENSORS_H
#define FG_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "engine/tensor/tensor.h"

typedef enum fg_st_dtype { FG_ST_F32 = 0, FG_ST_I32, FG_ST_U8, FG_ST_I64, FG_ST_F64, FG_ST_DTYPES } fg_st_dtype;

#define FG_ST_MAX_DIMS 8 /* rank 0 (a scalar) to 8 */
#define FG_ST_MAX_HEADER (100 * 1024 * 1024) /* bytes of header JSON, the format's own limit */
/* The "__metadata__" entry holding the CRC-32 of the data buffer (8 lowercase hex digits) */
#define FG_ST_CRC_KEY "fedgap.data_crc32"

size_t fg_st_dtype_size(fg_st_dtype dtype);    /* bytes per element; 0 for an invalid value */
const char *fg_st_dtype_name(fg_st_dtype dtype); /* "F32", "I32", ... as in the header */
fg_st_dtype fg_st_dtype_of(fg_dtype dtype);      /* F32 -> F32, I32 -> I32, U8 -> U8 */

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct fg_st_writer {
  struct fg_st_pending *tensors;
  size_t count, cap;
  struct fg_st_kv *meta;
  size_t meta_count, meta_cap;
} fg_st_writer;

void fg_st_writer_init(fg_st_writer *w);

/* Adds tensor `name` of `dtype` with `ndim` extents `shape` (rank 0..8, extents >= 0); `data`
 * holds prod(shape) elements in host byte order and must stay valid until fg_st_writer_write.
 * FG_ERR_INVALID for an empty, non-UTF-8 or duplicate name, "__metadata__", a bad rank or a
 * negative extent. */
fg_status fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);

/* Sets (or replaces) a "__metadata__" entry. */
fg_status fg_st_writer_set_metadata(fg_st_writer *w, const char *key, const char *value);

/* Writes the file atomically: on failure the previous file at `path` is untouched. */
fg_status fg_st_writer_write(const fg_st_writer *w, const char *path);
/* The same bytes as fg_st_writer_write into a malloc'd buffer (caller frees) of *len bytes: a
 * message rather than a file (the tensors that travel between a server and its devices). */
fg_status fg_st_writer_to_memory(const fg_st_writer *w, unsigned char **bytes, size_t *len);

void fg_st_writer_free(fg_st_writer *w);

/* ---- reader ---------------------------------------------------------------------------------- */

typedef struct fg_st_entry {
  const char *name;
  fg_st_dtype dtype;
  int ndim;
  int64_t shape[FG_ST_MAX_DIMS];
  size_t nbytes;             /* prod(shape) * dtype size */
  const unsigned char *data; /* little-endian bytes inside the file buffer, maybe unaligned */
} fg_st_entry;

typedef struct fg_st_file fg_st_file;

/* Reads and validates `path`: header length within the file and at most FG_ST_MAX_HEADER,
 * UTF-8 JSON object, known dtypes, prod(shape) * dtype size == end - begin, offsets inside the
 * data buffer, entries neither overlapping nor leaving gaps (the buffer is exactly covered, as
 * the format requires), unique names, "__metadata__" string -> string, and the data's CRC-32
 * when the metadata records one (FG_ST_CRC_KEY; files from other writers have none). FG_ERR_IO
 * when the file cannot be read, FG_ERR_FORMAT naming the file, the tensor or field, the value
 * found and the value expected otherwise. */
fg_status fg_st_open(const char *path, fg_st_file **out);
/* fg_st_open on `size` bytes already in memory (copied; `label` names them in messages). */
fg_status fg_st_open_memory(const char *label, const void *bytes, size_t size, fg_st_file **out);
void fg_st_close(fg_st_file *f); /* NULL is fine */

const char *fg_st_path(const fg_st_file *f);
size_t fg_st_count(const fg_st_file *f);
const fg_st_entry *fg_st_entry_at(const fg_st_file *f, size_t i); /* header order; NULL past end */
const fg_st_entry *fg_st_find(const fg_st_file *f, const char *name); /* NULL when absent */
const char *fg_st_metadata(const fg_st_file *f, const char *key);     /* NULL when absent */

/* Copies tensor `name` into `dst` (host byte order) after checking that it exists
 * (FG_ERR_FORMAT naming it otherwise) and has exactly `dtype` and the `ndim` extents
 * `expected_shape` (FG_ERR_FORMAT naming the file, the tensor, expected and found).
 * `dst` holds prod(expected_shape) elements. */
fg_status fg_st_read(const fg_st_file *f, const char *name, fg_st_dtype dtype, int ndim,
                     const int64_t *expected_shape, void *dst);
/* fg_st_read with dtype F32. */
fg_status fg_st_read_f32(const fg_st_file *f, const char *name, int ndim,
                         const int64_t *expected_shape, float *dst);

#endif
