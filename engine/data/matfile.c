/* Streaming reader of numeric variables in level-5 MAT-files; see matfile.h. */
#include "engine/data/matfile.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* Data element types (miXXX). */
enum {
  MI_INT8 = 1,
  MI_UINT8 = 2,
  MI_INT16 = 3,
  MI_UINT16 = 4,
  MI_INT32 = 5,
  MI_UINT32 = 6,
  MI_SINGLE = 7,
  MI_DOUBLE = 9,
  MI_INT64 = 12,
  MI_UINT64 = 13,
  MI_MATRIX = 14,
  MI_COMPRESSED = 15,
};

/* Array flag bits (in the second byte of the flags word). */
enum { MX_FLAG_COMPLEX = 0x08 };

/* deflate cannot shrink data by more than about 1032 : 1. */
enum { FG_MAT_DEFLATE_RATIO = 1032 };

static const unsigned char hdf5_signature[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

static int host_little_endian(void) {
  const uint16_t one = 1;
  unsigned char b;
  memcpy(&b, &one, 1);
  return b == 1;
}

static void swap_bytes(unsigned char *p, int size) {
  for (int i = 0; i < size / 2; i++) {
    unsigned char t = p[i];
    p[i] = p[size - 1 - i];
    p[size - 1 - i] = t;
  }
}

static uint32_t get_u32(const fg_mat_file *m, const unsigned char *p) {
  unsigned char b[4];
  memcpy(b, p, 4);
  if (m->swap) swap_bytes(b, 4);
  uint32_t v;
  memcpy(&v, b, 4);
  return v;
}

/* Bytes per value of a numeric data type; 0 for other types. */
static int type_size(uint32_t type) {
  switch (type) {
    case MI_INT8: case MI_UINT8: return 1;
    case MI_INT16: case MI_UINT16: return 2;
    case MI_INT32: case MI_UINT32: case MI_SINGLE: return 4;
    case MI_DOUBLE: case MI_INT64: case MI_UINT64: return 8;
    default: return 0;
  }
}

static const char *type_name(uint32_t type) {
  static const char *names[] = {"?",         "miINT8",   "miUINT8",  "miINT16",
                                "miUINT16",  "miINT32",  "miUINT32", "miSINGLE",
                                "reserved",  "miDOUBLE", "reserved", "reserved",
                                "miINT64",   "miUINT64", "miMATRIX", "miCOMPRESSED",
                                "miUTF8",    "miUTF16",  "miUTF32"};
  return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* The value at p (already in host byte order) of `type`, as a double. */
static double value_at(const unsigned char *p, uint32_t type) {
  switch (type) {
    case MI_INT8: { int8_t v; memcpy(&v, p, 1); return v; }
    case MI_UINT8: return p[0];
    case MI_INT16: { int16_t v; memcpy(&v, p, 2); return v; }
    case MI_UINT16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case MI_INT32: { int32_t v; memcpy(&v, p, 4); return v; }
    case MI_UINT32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case MI_SINGLE: { float v; memcpy(&v, p, 4); return v; }
    case MI_DOUBLE: { double v; memcpy(&v, p, 8); return v; }
    case MI_INT64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    case MI_UINT64: { uint64_t v; memcpy(&v, p, 8); return (double)v; }
    default: return 0.0;
  }
}

/* ----------------------------------------------------------------------------------------- */
/* The element stream: raw file bytes, or the inflated content of a miCOMPRESSED element.      */

static const char *var_label(const fg_mat_file *m) {
  return m->var.name[0] ? m->var.name : "name not read yet";
}

/* Reads up to n bytes of the current element's content; *got < n only at its end. */
static fg_status stream_read(fg_mat_file *m, unsigned char *buf, uint64_t n, uint64_t *got) {
  *got = 0;
  if (!m->compressed) {
    size_t k = fread(buf, 1, (size_t)n, m->f);
    *got = k;
    if (k < n && ferror(m->f))
      return FG_FAIL(FG_ERR_IO, "%s: read error: %s", m->path, strerror(errno));
    return FG_OK;
  }
  while (*got < n && !m->z_end) {
    if (m->z.avail_in == 0 && m->z_left > 0) {
      size_t want = m->z_left < sizeof m->in ? (size_t)m->z_left : sizeof m->in;
      size_t k = fread(m->in, 1, want, m->f);
      if (k < want)
        return FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d ends early (the file is "
                       "truncated)", m->path, m->index);
      m->z_left -= k;
      m->z.next_in = m->in;
      m->z.avail_in = (uInt)k;
    }
    uint64_t room = n - *got;
    if (room > (1u << 30)) room = 1u << 30;
    m->z.next_out = buf + *got;
    m->z.avail_out = (uInt)room;
    int r = inflate(&m->z, Z_NO_FLUSH);
    *got += room - m->z.avail_out;
    if (r == Z_STREAM_END) {
      m->z_end = 1;
    } else if (r == Z_BUF_ERROR && m->z.avail_in == 0 && m->z_left == 0) {
      return FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d (variable '%s') ends before its "
                     "zlib stream does (truncated or corrupt)", m->path, m->index, var_label(m));
    } else if (r != Z_OK && r != Z_BUF_ERROR) {
      return FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d (variable '%s') is corrupt: "
                     "zlib: %s", m->path, m->index, var_label(m),
                     m->z.msg ? m->z.msg : zError(r));
    }
  }
  return FG_OK;
}

/* Reads exactly n bytes of the current miMATRIX's content (`what` names them in messages). */
static fg_status mat_read(fg_mat_file *m, void *buf, uint64_t n, const char *what) {
  if (n > m->mat_left)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s' (element %d): %s needs %llu bytes but the "
                   "array element has only %llu left", m->path, var_label(m), m->index, what,
                   (unsigned long long)n, (unsigned long long)m->mat_left);
  uint64_t got = 0;
  FG_TRY(stream_read(m, buf, n, &got));
  if (got < n)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s' (element %d): truncated in %s (%llu of %llu "
                   "bytes)", m->path, var_label(m), m->index, what, (unsigned long long)got,
                   (unsigned long long)n);
  m->mat_left -= n;
  return FG_OK;
}

/* A sub-element tag: type, byte count, and for the small format (data in the tag) its bytes. */
typedef struct sub_tag {
  uint32_t type, bytes;
  int small;
  unsigned char data[4];
} sub_tag;

static fg_status read_sub_tag(fg_mat_file *m, sub_tag *t, const char *what) {
  unsigned char b[8];
  FG_TRY(mat_read(m, b, 4, what));
  uint32_t w = get_u32(m, b);
  memset(t, 0, sizeof *t);
  if (w >> 16) { /* small data element: 2 bytes count, 2 bytes type, 4 bytes data */
    t->small = 1;
    t->type = w & 0xffffu;
    t->bytes = w >> 16;
    FG_TRY(mat_read(m, t->data, 4, what));
    if (t->bytes > 4)
      return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s': small %s element declares %u bytes "
                     "(at most 4)", m->path, var_label(m), what, t->bytes);
    return FG_OK;
  }
  FG_TRY(mat_read(m, b + 4, 4, what));
  t->type = w;
  t->bytes = get_u32(m, b + 4);
  return FG_OK;
}

/* Reads the data of a (non-numeric-value) sub-element into buf[cap], with its padding to 8. */
static fg_status read_sub_data(fg_mat_file *m, const sub_tag *t, unsigned char *buf, size_t cap,
                               const char *what) {
  if (t->bytes > cap)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s': %s sub-element of %u bytes, expected at "
                   "most %zu", m->path, var_label(m), what, t->bytes, cap);
  if (t->small) {
    memcpy(buf, t->data, t->bytes);
    return FG_OK;
  }
  FG_TRY(mat_read(m, buf, t->bytes, what));
  unsigned char pad[8];
  uint32_t padding = (8 - t->bytes % 8) % 8;
  if (padding > m->mat_left) padding = (uint32_t)m->mat_left; /* lenient on the last one */
  return padding ? mat_read(m, pad, padding, what) : FG_OK;
}

/* ----------------------------------------------------------------------------------------- */
/* File and variables                                                                         */

static fg_status end_element(fg_mat_file *m) {
  fg_status s = FG_OK;
  if (m->z_live) {
    /* Inflate what is left so that zlib checks the stream's checksum. */
    unsigned char scratch[4096];
    while (s == FG_OK && !m->z_end) {
      uint64_t got = 0;
      s = stream_read(m, scratch, sizeof scratch, &got);
      if (s == FG_OK && got == 0 && !m->z_end)
        s = FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d (variable '%s') ends before its "
                    "zlib stream does (truncated or corrupt)", m->path, m->index, var_label(m));
    }
    inflateEnd(&m->z);
    m->z_live = 0;
  }
  m->compressed = 0;
  m->z_end = 0;
  m->mat_left = 0;
  m->values_left = 0;
  m->small = 0;
  return s;
}

fg_status fg_mat_open(fg_mat_file *m, const char *path) {
  memset(m, 0, sizeof *m);
  m->path = path;
  if (!path || !*path) return FG_FAIL(FG_ERR_INVALID, "MAT-file path is empty");
  m->f = fopen(path, "rb");
  if (!m->f) return FG_FAIL(FG_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(m->f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_IO, "%s: not a regular file", path);
  }
  m->file_bytes = (uint64_t)st.st_size;
  unsigned char h[128];
  size_t k = fread(h, 1, sizeof h, m->f);
  const char *convert =
      "this reader takes MAT-files of version 5 (MATLAB save -v7 or -v6, scipy.io.savemat): "
      "convert it, e.g. in MATLAB: load(f); save(g, 'X', 'y', '-v7'), or in Python with h5py "
      "and scipy.io.savemat (mind that HDF5 stores MATLAB arrays transposed)";
  if (k >= 8 && memcmp(h, hdf5_signature, 8) == 0) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: an HDF5 file (MATLAB v7.3 MAT-file?); %s", path, convert);
  }
  if (k < sizeof h) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: %zu bytes, too short for the 128-byte MAT-file header",
                   path, k);
  }
  if (memcmp(h, "MATLAB 7.3", 10) == 0 || (h[124] == 0 && h[125] == 2) ||
      (h[124] == 2 && h[125] == 0)) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: a MATLAB v7.3 MAT-file (HDF5), not supported; %s", path,
                   convert);
  }
  if (memcmp(h, "MATLAB", 6) != 0) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: not a level-5 MAT-file: the header text does not start "
                   "with \"MATLAB 5.0 MAT-file\" (v4 MAT-files are not supported)", path);
  }
  int file_little;
  if (h[126] == 'I' && h[127] == 'M')
    file_little = 1;
  else if (h[126] == 'M' && h[127] == 'I')
    file_little = 0;
  else {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: byte-order mark 0x%02x%02x, expected \"IM\" or \"MI\"",
                   path, h[126], h[127]);
  }
  m->swap = file_little != host_little_endian();
  unsigned char vb[2] = {h[124], h[125]};
  if (m->swap) swap_bytes(vb, 2);
  uint16_t version;
  memcpy(&version, vb, 2);
  if (version != 0x0100) {
    fg_mat_close(m);
    return FG_FAIL(FG_ERR_FORMAT, "%s: MAT-file version 0x%04x, expected 0x0100 (level 5)%s%s",
                   path, version, version == 0x0200 ? "; " : "",
                   version == 0x0200 ? convert : "");
  }
  m->next_pos = sizeof h;
  return FG_OK;
}

void fg_mat_close(fg_mat_file *m) {
  if (m->z_live) inflateEnd(&m->z);
  m->z_live = 0;
  if (m->f) fclose(m->f);
  m->f = NULL;
}

/* Parses flags, dimensions, name and (numeric arrays) the data tag of the current miMATRIX. */
static fg_status parse_matrix(fg_mat_file *m) {
  fg_mat_var *v = &m->var;
  if (m->mat_left == 0) return FG_OK; /* an empty element */
  sub_tag t;
  unsigned char buf[FG_MAT_MAX_DIMS * 4];
  FG_TRY(read_sub_tag(m, &t, "array flags"));
  if (t.type != MI_UINT32 || t.bytes != 8)
    return FG_FAIL(FG_ERR_FORMAT, "%s: element %d: array flags are %s of %u bytes, expected "
                   "miUINT32 of 8", m->path, m->index, type_name(t.type), t.bytes);
  FG_TRY(read_sub_data(m, &t, buf, 8, "array flags"));
  const uint32_t flags = get_u32(m, buf);
  v->mx_class = (int)(flags & 0xffu);
  const int complex = ((flags >> 8) & MX_FLAG_COMPLEX) != 0;

  FG_TRY(read_sub_tag(m, &t, "dimensions"));
  if (t.type != MI_INT32 || t.bytes % 4 != 0 || t.bytes < 8 || t.bytes > sizeof buf)
    return FG_FAIL(FG_ERR_FORMAT, "%s: element %d: dimensions are %s of %u bytes, expected "
                   "miINT32 with 2 to %d extents", m->path, m->index, type_name(t.type), t.bytes,
                   FG_MAT_MAX_DIMS);
  FG_TRY(read_sub_data(m, &t, buf, sizeof buf, "dimensions"));
  v->ndims = (int)(t.bytes / 4);
  v->numel = 1;
  for (int d = 0; d < v->ndims; d++) {
    int32_t e;
    uint32_t u = get_u32(m, buf + 4 * d);
    memcpy(&e, &u, 4);
    if (e < 0)
      return FG_FAIL(FG_ERR_FORMAT, "%s: element %d: extent %d is %d, expected >= 0", m->path,
                     m->index, d, e);
    v->dims[d] = e;
    if (e != 0 && v->numel > INT64_MAX / 16 / e)
      return FG_FAIL(FG_ERR_FORMAT, "%s: element %d: the extents overflow", m->path, m->index);
    v->numel *= e;
  }

  FG_TRY(read_sub_tag(m, &t, "array name"));
  if (t.type != MI_INT8)
    return FG_FAIL(FG_ERR_FORMAT, "%s: element %d: array name is %s, expected miINT8", m->path,
                   m->index, type_name(t.type));
  unsigned char name[sizeof v->name];
  FG_TRY(read_sub_data(m, &t, name, sizeof v->name - 1, "array name"));
  memcpy(v->name, name, t.bytes);
  v->name[t.bytes] = '\0';

  if (v->mx_class < FG_MX_DOUBLE || v->mx_class > FG_MX_UINT64 || complex) return FG_OK;
  FG_TRY(read_sub_tag(m, &t, "real part"));
  const int size = type_size(t.type);
  if (!size)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s': data stored as %s (type %u), expected a "
                   "numeric type", m->path, v->name, type_name(t.type), t.type);
  if ((uint64_t)t.bytes != (uint64_t)v->numel * (uint64_t)size)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s': %u data bytes, expected %llu (%lld values "
                   "of %s)", m->path, v->name, t.bytes,
                   (unsigned long long)((uint64_t)v->numel * (uint64_t)size),
                   (long long)v->numel, type_name(t.type));
  if (t.small) {
    m->small = 1;
    m->small_pos = 0;
    memcpy(m->small_data, t.data, 4);
  } else if (t.bytes > m->mat_left) {
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s': %u data bytes, but the array element has "
                   "only %llu left", m->path, v->name, t.bytes, (unsigned long long)m->mat_left);
  }
  v->stored_type = (int)t.type;
  v->numeric = 1;
  m->values_left = (uint64_t)v->numel;
  return FG_OK;
}

fg_status fg_mat_next(fg_mat_file *m, int *done) {
  *done = 0;
  FG_TRY(end_element(m));
  memset(&m->var, 0, sizeof m->var);
  for (;;) {
    if (m->next_pos == m->file_bytes) {
      *done = 1;
      return FG_OK;
    }
    if (m->file_bytes - m->next_pos < 8)
      return FG_FAIL(FG_ERR_FORMAT, "%s: %llu stray bytes at offset %llu, too few for an "
                     "element tag (truncated file?)", m->path,
                     (unsigned long long)(m->file_bytes - m->next_pos),
                     (unsigned long long)m->next_pos);
    if (fseeko(m->f, (off_t)m->next_pos, SEEK_SET) != 0)
      return FG_FAIL(FG_ERR_IO, "%s: cannot seek to %llu: %s", m->path,
                     (unsigned long long)m->next_pos, strerror(errno));
    unsigned char b[8];
    if (fread(b, 1, 8, m->f) != 8)
      return FG_FAIL(FG_ERR_IO, "%s: cannot read the element tag at offset %llu", m->path,
                     (unsigned long long)m->next_pos);
    m->index++;
    const uint32_t w = get_u32(m, b);
    if (w >> 16) { /* a small element at the top level: nothing to read */
      m->next_pos += 8;
      continue;
    }
    const uint32_t type = w, bytes = get_u32(m, b + 4);
    const uint64_t remaining = m->file_bytes - m->next_pos - 8;
    if (bytes > remaining)
      return FG_FAIL(FG_ERR_FORMAT, "%s: element %d (%s) at offset %llu declares %u bytes but "
                     "only %llu remain: the file is truncated", m->path, m->index,
                     type_name(type), (unsigned long long)m->next_pos, bytes,
                     (unsigned long long)remaining);
    m->next_pos += 8 + (uint64_t)bytes;
    if (type == MI_MATRIX) {
      m->mat_left = bytes;
      return parse_matrix(m);
    }
    if (type != MI_COMPRESSED) continue; /* not a variable: skip */
    memset(&m->z, 0, sizeof m->z);
    if (inflateInit(&m->z) != Z_OK)
      return FG_FAIL(FG_ERR_OOM, "%s: zlib could not start a stream", m->path);
    m->z_live = 1;
    m->compressed = 1;
    m->z_left = bytes;
    uint64_t got = 0;
    FG_TRY(stream_read(m, b, 8, &got));
    if (got < 8)
      return FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d holds %llu bytes, too few for an "
                     "element tag", m->path, m->index, (unsigned long long)got);
    const uint32_t inner_type = get_u32(m, b), inner_bytes = get_u32(m, b + 4);
    if (inner_type != MI_MATRIX) {
      FG_TRY(end_element(m)); /* not a variable: skip, checking the stream */
      continue;
    }
    const uint64_t bound = (uint64_t)bytes * FG_MAT_DEFLATE_RATIO + 1024;
    if (inner_bytes > bound)
      return FG_FAIL(FG_ERR_FORMAT, "%s: compressed element %d declares %u bytes of content, "
                     "more than %u compressed bytes can hold", m->path, m->index, inner_bytes,
                     bytes);
    m->mat_left = inner_bytes;
    return parse_matrix(m);
  }
}

fg_status fg_mat_read(fg_mat_file *m, double *out, uint64_t count) {
  if (!m->var.numeric)
    return FG_FAIL(FG_ERR_INVALID, "%s: variable '%s' is not a real numeric array", m->path,
                   var_label(m));
  if (count > m->values_left)
    return FG_FAIL(FG_ERR_INVALID, "%s: variable '%s': %llu values asked, %llu left", m->path,
                   var_label(m), (unsigned long long)count, (unsigned long long)m->values_left);
  const uint32_t type = (uint32_t)m->var.stored_type;
  const int size = type_size(type);
  unsigned char raw[4096];
  const uint64_t per_chunk = sizeof raw / (uint64_t)size;
  for (uint64_t done = 0; done < count;) {
    const uint64_t k = count - done < per_chunk ? count - done : per_chunk;
    const uint64_t bytes = k * (uint64_t)size;
    if (m->small) {
      memcpy(raw, m->small_data + m->small_pos, (size_t)bytes);
      m->small_pos += (int)bytes;
    } else {
      FG_TRY(mat_read(m, raw, bytes, "the array data"));
    }
    for (uint64_t i = 0; i < k; i++) {
      unsigned char *p = raw + i * (uint64_t)size;
      if (m->swap) swap_bytes(p, size);
      out[done + i] = value_at(p, type);
    }
    done += k;
  }
  m->values_left -= count;
  return FG_OK;
}
