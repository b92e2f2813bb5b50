/* A streaming reader of numeric variables in MATLAB MAT-files, level 5 (internal to engine/data;
 * used by the SVHN loader).
 *
 * Supported: the v5 format as MATLAB (save -v6, -v7) and scipy.io.savemat write it: a 128-byte
 * header, either byte order, top-level miMATRIX elements, plain or zlib-compressed
 * (miCOMPRESSED, v7), small data elements, and real, non-sparse numeric arrays of any class
 * whose data is stored in any numeric type (MATLAB stores a double array of small integers as
 * miUINT8, for example). Values are converted as they are read, in chunks, so a variable of any
 * size streams straight into its destination. Other variables (char, cell, struct, sparse,
 * complex, function handles, objects) can be listed and skipped but not read.
 * Not supported: v7.3 files (HDF5 containers; rejected with a message saying how to convert
 * them) and v4 files (no 128-byte header; rejected as not a v5 MAT-file).
 *
 * Every malformed or truncated file gets FG_ERR_FORMAT with a message naming the file, the
 * variable and the expected and actual values; unreadable files FG_ERR_IO. The declared size of
 * every element is checked against what the file can hold before the caller allocates for it.
 * Owns: the open file and, while a compressed element is being read, its zlib stream. */
#ifndef FG_DATA_MATFILE_H
#define FG_DATA_MATFILE_H

#include <stdint.h>
#include <stdio.h>

#include <zlib.h>

#include "engine/base/status.h"

#define FG_MAT_MAX_DIMS 8

/* MATLAB array classes (mxClassID). */
enum {
  FG_MX_CELL = 1,
  FG_MX_STRUCT = 2,
  FG_MX_OBJECT = 3,
  FG_MX_CHAR = 4,
  FG_MX_SPARSE = 5,
  FG_MX_DOUBLE = 6,
  FG_MX_UINT64 = 15,
};

/* The variable the reader stands on (after fg_mat_next). */
typedef struct fg_mat_var {
  char name[64];
  int mx_class;            /* FG_MX_*; 0 for an empty element */
  int numeric;             /* 1: real, non-sparse numeric array whose values can be read */
  int ndims;
  int64_t dims[FG_MAT_MAX_DIMS]; /* MATLAB order: dims[0] rows (fastest), dims[1] columns, ... */
  int64_t numel;
  int stored_type;         /* miXXX type of the data (numeric only) */
} fg_mat_var;

typedef struct fg_mat_file {
  FILE *f;
  const char *path;        /* caller-owned */
  uint64_t file_bytes;
  int swap;                /* the file's byte order differs from this machine's */
  uint64_t next_pos;       /* file offset of the next top-level element */
  int index;               /* top-level elements read so far */
  /* The current element's content stream. */
  int compressed;
  int z_live;              /* z has been initialised */
  int z_end;               /* the compressed stream ended */
  uint64_t z_left;         /* compressed bytes of this element not yet fed to zlib */
  z_stream z;
  unsigned char in[16384];
  uint64_t mat_left;       /* bytes of the current miMATRIX content not yet consumed */
  /* The data of the current numeric variable. */
  uint64_t values_left;    /* values not yet read */
  int small;               /* the data lies in small[] (small data element format) */
  unsigned char small_data[4];
  int small_pos;
  fg_mat_var var;
} fg_mat_file;

/* Opens `path` and checks its 128-byte header. */
fg_status fg_mat_open(fg_mat_file *m, const char *path);
void fg_mat_close(fg_mat_file *m);

/* Moves to the next variable (skipping whatever of the current one was not read): *done = 1
 * at the end of the file, else m->var describes it. */
fg_status fg_mat_next(fg_mat_file *m, int *done);

/* Reads the next `count` values (in MATLAB's column-major order) of the current numeric
 * variable, converted to double. Fails when fewer are left. */
fg_status fg_mat_read(fg_mat_file *m, double *out, uint64_t count);

#endif
