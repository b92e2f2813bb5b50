/* safetensors writer and validating reader (format written from the published description). */
#include "engine/io/safetensors.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <zlib.h>

#include "engine/io/atomic_file.h"

static const char fg_st_meta_key[] = "__metadata__";
static const char fg_st_crc_key[] = FG_ST_CRC_KEY;

/* ---- dtypes, byte order, small formatting helpers ---------------------------------------- */

static const struct {
  const char *name;
  size_t size;
} fg_st_dtypes[FG_ST_DTYPES] = {
    [FG_ST_F32] = {"F32", 4}, [FG_ST_I32] = {"I32", 4}, [FG_ST_U8] = {"U8", 1},
    [FG_ST_I64] = {"I64", 8}, [FG_ST_F64] = {"F64", 8},
};

static int fg_st_dtype_valid(fg_st_dtype d) { return (int)d >= 0 && d < FG_ST_DTYPES; }

size_t fg_st_dtype_size(fg_st_dtype dtype) {
  return fg_st_dtype_valid(dtype) ? fg_st_dtypes[dtype].size : 0;
}

const char *fg_st_dtype_name(fg_st_dtype dtype) {
  return fg_st_dtype_valid(dtype) ? fg_st_dtypes[dtype].name : "?";
}

fg_st_dtype fg_st_dtype_of(fg_dtype dtype) {
  switch (dtype) {
    case FG_F32: return FG_ST_F32;
    case FG_I32: return FG_ST_I32;
    case FG_U8: return FG_ST_U8;
  }
  return FG_ST_DTYPES;
}

static int fg_host_is_little_endian(void) {
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  return first == 1;
}

/* Copies `nbytes` of `elem`-byte elements, converting between host and little-endian order
 * (the same operation both ways). */
static void fg_copy_le(void *dst, const void *src, size_t nbytes, size_t elem) {
  if (elem == 1 || fg_host_is_little_endian()) {
    if (nbytes) memcpy(dst, src, nbytes);
    return;
  }
  unsigned char *d = dst;
  const unsigned char *s = src;
  for (size_t i = 0; i < nbytes; i += elem)
    for (size_t b = 0; b < elem; b++) d[i + b] = s[i + elem - 1 - b];
}

static void fg_store_u64_le(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t fg_load_u64_le(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* Index of the first byte that is not part of valid UTF-8 (NUL counts as invalid), or len. */
static size_t fg_utf8_invalid_at(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned c = s[i];
    size_t n;
    uint32_t cp, min;
    if (c == 0) return i;
    if (c < 0x80) { i++; continue; }
    if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
    else return i;
    if (len - i <= n) return i;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n + 1;
  }
  return len;
}

/* "[2, 3, 4]" (or "[]" for a scalar). */
static const char *fg_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
  return buf;
}

/* Elements in `shape`, or 0 with *overflow set when prod * elem would exceed `limit`. */
static uint64_t fg_st_numel(int ndim, const int64_t *shape, size_t elem, uint64_t limit,
                            int *overflow) {
  *overflow = 0;
  for (int i = 0; i < ndim; i++)
    if (shape[i] == 0) return 0; /* empty, however large the other extents */
  uint64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    uint64_t d = (uint64_t)shape[i];
    if (n > limit / elem / d) {
      *overflow = 1;
      return 0;
    }
    n *= d;
  }
  return n;
}

/* ---- writer ------------------------------------------------------------------------------- */

typedef struct fg_st_pending {
  char *name;
  fg_st_dtype dtype;
  int ndim;
  int64_t shape[FG_ST_MAX_DIMS];
  const void *data;
  size_t nbytes;
} fg_st_pending;

typedef struct fg_st_kv {
  char *key;
  char *value;
} fg_st_kv;

void fg_st_writer_init(fg_st_writer *w) { memset(w, 0, sizeof *w); }

void fg_st_writer_free(fg_st_writer *w) {
  if (!w) return;
  for (size_t i = 0; i < w->count; i++) free(w->tensors[i].name);
  for (size_t i = 0; i < w->meta_count; i++) {
    free(w->meta[i].key);
    free(w->meta[i].value);
  }
  free(w->tensors);
  free(w->meta);
  memset(w, 0, sizeof *w);
}

/* Makes room for one more element of `size` bytes in *arr (count/cap). 0 on allocation failure. */
static int fg_grow(void **arr, size_t *cap, size_t count, size_t size) {
  if (count < *cap) return 1;
  size_t next = *cap ? 2 * *cap : 16;
  void *p = realloc(*arr, next * size);
  if (!p) return 0;
  *arr = p;
  *cap = next;
  return 1;
}

static char *fg_strdup(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static int fg_utf8_valid_str(const char *s) {
  size_t n = strlen(s);
  return fg_utf8_invalid_at((const unsigned char *)s, n) == n;
}

fg_status fg_st_writer_add(fg_st_writer *w, const char *name, fg_st_dtype dtype, int ndim,
                           const int64_t *shape, const void *data) {
  if (!w || !name) return FG_FAIL(FG_ERR_INVALID, "safetensors writer: null writer or name");
  if (!*name || !fg_utf8_valid_str(name) || strcmp(name, fg_st_meta_key) == 0)
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor name '%s' is not allowed "
                   "(expected non-empty UTF-8 other than \"%s\")", name, fg_st_meta_key);
  if (!fg_st_dtype_valid(dtype))
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s': dtype %d, expected 0..%d",
                   name, (int)dtype, FG_ST_DTYPES - 1);
  if (ndim < 0 || ndim > FG_ST_MAX_DIMS || (ndim > 0 && !shape))
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s': rank %d, expected 0..%d",
                   name, ndim, FG_ST_MAX_DIMS);
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0)
      return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s': extent %d is %" PRId64
                     ", expected >= 0", name, i, shape[i]);
  for (size_t i = 0; i < w->count; i++)
    if (strcmp(w->tensors[i].name, name) == 0)
      return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s' added twice", name);
  int overflow;
  size_t elem = fg_st_dtype_size(dtype);
  uint64_t numel = fg_st_numel(ndim, shape, elem, (uint64_t)1 << 53, &overflow);
  if (overflow)
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s' is too large", name);
  if (numel > 0 && !data)
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: tensor '%s' has no data", name);
  if (!fg_grow((void **)&w->tensors, &w->cap, w->count, sizeof *w->tensors))
    return FG_FAIL(FG_ERR_OOM, "safetensors writer: cannot grow the tensor list");
  fg_st_pending *t = &w->tensors[w->count];
  memset(t, 0, sizeof *t);
  t->name = fg_strdup(name);
  if (!t->name) return FG_FAIL(FG_ERR_OOM, "safetensors writer: cannot copy name '%s'", name);
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
  t->data = data;
  t->nbytes = (size_t)(numel * elem);
  w->count++;
  return FG_OK;
}

fg_status fg_st_writer_set_metadata(fg_st_writer *w, const char *key, const char *value) {
  if (!w || !key || !value) return FG_FAIL(FG_ERR_INVALID, "safetensors writer: null metadata");
  if (!fg_utf8_valid_str(key) || !fg_utf8_valid_str(value))
    return FG_FAIL(FG_ERR_INVALID, "safetensors writer: metadata '%s' is not valid UTF-8", key);
  char *v = fg_strdup(value);
  if (!v) return FG_FAIL(FG_ERR_OOM, "safetensors writer: cannot copy metadata '%s'", key);
  for (size_t i = 0; i < w->meta_count; i++)
    if (strcmp(w->meta[i].key, key) == 0) {
      free(w->meta[i].value);
      w->meta[i].value = v;
      return FG_OK;
    }
  char *k = fg_strdup(key);
  if (!k || !fg_grow((void **)&w->meta, &w->meta_cap, w->meta_count, sizeof *w->meta)) {
    free(k);
    free(v);
    return FG_FAIL(FG_ERR_OOM, "safetensors writer: cannot add metadata '%s'", key);
  }
  w->meta[w->meta_count].key = k;
  w->meta[w->meta_count].value = v;
  w->meta_count++;
  return FG_OK;
}

/* Appends an exact unsigned integer to a JSON array (printed by us, never through a double). */
static int fg_json_push_u64(cJSON *arr, uint64_t v) {
  char text[32];
  snprintf(text, sizeof text, "%" PRIu64, v);
  cJSON *item = cJSON_CreateRaw(text);
  return item && cJSON_AddItemToArray(arr, item);
}

/* One tensor's header entry; 0 on allocation failure. */
static int fg_st_add_entry_json(cJSON *root, const fg_st_pending *t, uint64_t begin) {
  cJSON *e = cJSON_AddObjectToObject(root, t->name);
  if (!e || !cJSON_AddStringToObject(e, "dtype", fg_st_dtype_name(t->dtype))) return 0;
  cJSON *shape = cJSON_AddArrayToObject(e, "shape");
  if (!shape) return 0;
  for (int i = 0; i < t->ndim; i++)
    if (!fg_json_push_u64(shape, (uint64_t)t->shape[i])) return 0;
  cJSON *off = cJSON_AddArrayToObject(e, "data_offsets");
  return off && fg_json_push_u64(off, begin) && fg_json_push_u64(off, begin + t->nbytes);
}

/* CRC-32 (zlib's) of n bytes, continuing from crc. */
static uint32_t fg_st_crc(uint32_t crc, const unsigned char *p, size_t n) {
  uLong c = crc;
  while (n > 0) {
    uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
    c = crc32(c, p, k);
    p += k;
    n -= k;
  }
  return (uint32_t)c;
}

/* CRC-32 of the data buffer the writer lays out: every tensor's little-endian bytes in order. */
static uint32_t fg_st_writer_crc(const fg_st_writer *w) {
  uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
  for (size_t i = 0; i < w->count; i++) {
    const fg_st_pending *t = &w->tensors[i];
    size_t elem = fg_st_dtype_size(t->dtype);
    if (elem == 1 || fg_host_is_little_endian()) {
      crc = fg_st_crc(crc, t->data, t->nbytes);
      continue;
    }
    unsigned char chunk[1 << 14];
    const unsigned char *src = t->data;
    for (size_t done = 0; done < t->nbytes;) {
      size_t n = t->nbytes - done < sizeof chunk ? t->nbytes - done : sizeof chunk;
      fg_copy_le(chunk, src + done, n, elem);
      crc = fg_st_crc(crc, chunk, n);
      done += n;
    }
  }
  return crc;
}

/* The header JSON (malloc'd by cJSON; free with cJSON_free), or NULL when out of memory. The
 * metadata always holds the data buffer's CRC-32 (FG_ST_CRC_KEY). */
static char *fg_st_header_json(const fg_st_writer *w) {
  cJSON *root = cJSON_CreateObject();
  int ok = root != NULL;
  char crc[16];
  snprintf(crc, sizeof crc, "%08" PRIx32, fg_st_writer_crc(w));
  if (ok) {
    cJSON *meta = cJSON_AddObjectToObject(root, fg_st_meta_key);
    ok = meta != NULL;
    for (size_t i = 0; ok && i < w->meta_count; i++)
      if (strcmp(w->meta[i].key, fg_st_crc_key) != 0)
        ok = cJSON_AddStringToObject(meta, w->meta[i].key, w->meta[i].value) != NULL;
    ok = ok && cJSON_AddStringToObject(meta, fg_st_crc_key, crc) != NULL;
  }
  uint64_t offset = 0;
  for (size_t i = 0; ok && i < w->count; i++) {
    ok = fg_st_add_entry_json(root, &w->tensors[i], offset);
    offset += w->tensors[i].nbytes;
  }
  char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
  cJSON_Delete(root);
  return text;
}

/* Where the writer's bytes go: an atomic file, or a memory buffer large enough for them all. */
typedef struct fg_st_sink {
  fg_atomic_file *file;
  unsigned char *mem;
  size_t at;
} fg_st_sink;

static fg_status fg_st_sink_write(fg_st_sink *k, const void *data, size_t n) {
  if (k->file) return fg_atomic_write(k->file, data, n);
  if (n) memcpy(k->mem + k->at, data, n);
  k->at += n;
  return FG_OK;
}

/* Writes one tensor's bytes in little-endian order (through a bounce buffer on big-endian hosts). */
static fg_status fg_st_write_data(fg_st_sink *k, const fg_st_pending *t) {
  size_t elem = fg_st_dtype_size(t->dtype);
  if (elem == 1 || fg_host_is_little_endian()) return fg_st_sink_write(k, t->data, t->nbytes);
  unsigned char chunk[1 << 14];
  const unsigned char *src = t->data;
  for (size_t done = 0; done < t->nbytes;) {
    size_t n = t->nbytes - done < sizeof chunk ? t->nbytes - done : sizeof chunk;
    fg_copy_le(chunk, src + done, n, elem);
    FG_TRY(fg_st_sink_write(k, chunk, n));
    done += n;
  }
  return FG_OK;
}

/* The whole layout into k: length, header JSON padded to 8 bytes, the tensors' data. */
static fg_status fg_st_emit(const fg_st_writer *w, const char *json, fg_st_sink *k) {
  size_t json_len = strlen(json);
  size_t header_len = (json_len + 7) / 8 * 8; /* 8 + header_len is then a multiple of 8 */
  unsigned char len_bytes[8];
  fg_store_u64_le(len_bytes, header_len);
  static const char spaces[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
  FG_TRY(fg_st_sink_write(k, len_bytes, sizeof len_bytes));
  FG_TRY(fg_st_sink_write(k, json, json_len));
  FG_TRY(fg_st_sink_write(k, spaces, header_len - json_len));
  for (size_t i = 0; i < w->count; i++) FG_TRY(fg_st_write_data(k, &w->tensors[i]));
  return FG_OK;
}

fg_status fg_st_writer_write(const fg_st_writer *w, const char *path) {
  if (!w || !path) return FG_FAIL(FG_ERR_INVALID, "safetensors writer: null writer or path");
  char *json = fg_st_header_json(w);
  if (!json) return FG_FAIL(FG_ERR_OOM, "safetensors file '%s': cannot build the header", path);
  fg_atomic_file f;
  fg_status s = fg_atomic_open(&f, path);
  fg_st_sink k = {&f, NULL, 0};
  if (s == FG_OK) s = fg_st_emit(w, json, &k);
  cJSON_free(json);
  if (s == FG_OK) return fg_atomic_commit(&f);
  fg_atomic_abort(&f);
  return s;
}

fg_status fg_st_writer_to_memory(const fg_st_writer *w, unsigned char **bytes, size_t *len) {
  *bytes = NULL;
  *len = 0;
  if (!w) return FG_FAIL(FG_ERR_INVALID, "safetensors writer: null writer");
  char *json = fg_st_header_json(w);
  if (!json) return FG_FAIL(FG_ERR_OOM, "safetensors in memory: cannot build the header");
  size_t total = 8 + (strlen(json) + 7) / 8 * 8;
  for (size_t i = 0; i < w->count; i++) total += w->tensors[i].nbytes;
  fg_st_sink k = {NULL, malloc(total), 0};
  fg_status s = k.mem ? fg_st_emit(w, json, &k) : FG_FAIL(FG_ERR_OOM, "safetensors in memory: %zu bytes", total);
  cJSON_free(json);
  if (s != FG_OK) {
    free(k.mem);
    return s;
  }
  *bytes = k.mem;
  *len = k.at;
  return FG_OK;
}

/* ---- reader ------------------------------------------------------------------------------- */

struct fg_st_file {
  char *path;
  unsigned char *bytes; /* the whole file */
  cJSON *root;          /* parsed header: entry names and metadata point into it */
  const cJSON *meta;    /* "__metadata__" or NULL */
  fg_st_entry *entries; /* header order */
  size_t count;
};

/* Records FG_ERR_FORMAT as "safetensors file '<path>': <message>". */
static fg_status fg_st_bad(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static fg_status fg_st_bad(const char *path, const char *fmt, ...) {
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return FG_FAIL(FG_ERR_FORMAT, "safetensors file '%s': %s", path, msg);
}

/* Compact JSON text of `item` for messages, shortened to fit `cap`. */
static const char *fg_json_snippet(const cJSON *item, char *buf, size_t cap) {
  char *text = item ? cJSON_PrintUnformatted(item) : NULL;
  snprintf(buf, cap, "%s", text ? text : "(missing)");
  if (text && strlen(text) >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
  cJSON_free(text);
  return buf;
}

/* A JSON number that is an exact integer in [0, 2^53]. */
static int fg_json_u64(const cJSON *item, uint64_t *out) {
  if (!cJSON_IsNumber(item)) return 0;
  double v = item->valuedouble;
  if (!(v >= 0.0 && v <= 9007199254740992.0)) return 0;
  uint64_t u = (uint64_t)v;
  if ((double)u != v) return 0;
  *out = u;
  return 1;
}

static fg_status fg_st_parse_metadata(const char *path, const cJSON *meta) {
  char found[96];
  if (!cJSON_IsObject(meta))
    return fg_st_bad(path, "\"%s\" is %s, expected an object of strings", fg_st_meta_key,
                     fg_json_snippet(meta, found, sizeof found));
  for (const cJSON *kv = meta->child; kv; kv = kv->next)
    if (!cJSON_IsString(kv))
      return fg_st_bad(path, "\"%s\" entry '%s' is %s, expected a string", fg_st_meta_key,
                       kv->string, fg_json_snippet(kv, found, sizeof found));
  return FG_OK;
}

/* Parses one tensor entry; offsets are checked against the data buffer of `data_len` bytes. */
static fg_status fg_st_parse_entry(const char *path, const cJSON *item, size_t data_len,
                                   fg_st_entry *e, uint64_t *begin, uint64_t *end) {
  const char *name = item->string;
  char found[96], extent[48];
  e->name = name;
  if (!name[0]) return fg_st_bad(path, "a tensor has an empty name, expected a non-empty one");
  if (!cJSON_IsObject(item))
    return fg_st_bad(path, "tensor '%s': entry is %s, expected an object with dtype, shape, "
                     "data_offsets", name, fg_json_snippet(item, found, sizeof found));

  const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!cJSON_IsString(dtype))
    return fg_st_bad(path, "tensor '%s': dtype is %s, expected a string", name,
                     fg_json_snippet(dtype, found, sizeof found));
  e->dtype = FG_ST_DTYPES;
  for (int d = 0; d < FG_ST_DTYPES; d++)
    if (strcmp(dtype->valuestring, fg_st_dtypes[d].name) == 0) e->dtype = (fg_st_dtype)d;
  if (e->dtype == FG_ST_DTYPES)
    return fg_st_bad(path, "tensor '%s': dtype \"%s\" is not supported, expected one of F32, "
                     "I32, U8, I64, F64", name, dtype->valuestring);

  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
  int ndim = cJSON_IsArray(shape) ? cJSON_GetArraySize(shape) : -1;
  if (ndim < 0 || ndim > FG_ST_MAX_DIMS)
    return fg_st_bad(path, "tensor '%s': shape is %s, expected an array of at most %d extents",
                     name, fg_json_snippet(shape, found, sizeof found), FG_ST_MAX_DIMS);
  e->ndim = ndim;
  int i = 0;
  for (const cJSON *x = shape->child; x; x = x->next, i++) {
    uint64_t v;
    if (!fg_json_u64(x, &v))
      return fg_st_bad(path, "tensor '%s': shape %s has extent %s, expected a non-negative "
                       "integer", name, fg_json_snippet(shape, found, sizeof found),
                       fg_json_snippet(x, extent, sizeof extent));
    e->shape[i] = (int64_t)v;
  }

  const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !fg_json_u64(off->child, begin) ||
      !fg_json_u64(off->child->next, end) || *begin > *end)
    return fg_st_bad(path, "tensor '%s': data_offsets is %s, expected [begin, end] with "
                     "0 <= begin <= end", name, fg_json_snippet(off, found, sizeof found));

  char sbuf[160];
  int overflow;
  size_t elem = fg_st_dtype_size(e->dtype);
  uint64_t numel = fg_st_numel(ndim, e->shape, elem, UINT64_MAX, &overflow);
  if (overflow || numel * elem != *end - *begin)
    return fg_st_bad(path, "tensor '%s': shape %s of %s needs %s%" PRIu64 " bytes but "
                     "data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64 " bytes", name,
                     fg_st_shape_str(ndim, e->shape, sbuf, sizeof sbuf), dtype->valuestring,
                     overflow ? "more than " : "", overflow ? UINT64_MAX : numel * elem, *begin,
                     *end, *end - *begin);
  if (*end > data_len)
    return fg_st_bad(path, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] go past the "
                     "end of the data buffer (%zu bytes; file truncated?)", name, *begin, *end,
                     data_len);
  e->nbytes = (size_t)(*end - *begin);
  return FG_OK;
}

typedef struct fg_st_span {
  uint64_t begin, end;
  size_t index;
} fg_st_span;

static int fg_st_span_cmp(const void *a, const void *b) {
  const fg_st_span *x = a, *y = b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static int fg_st_name_cmp(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names are unique (JSON objects may repeat keys; safetensors files may not). */
static fg_status fg_st_check_unique(const char *path, const cJSON *root, size_t n) {
  const char **names = malloc((n ? n : 1) * sizeof *names);
  if (!names) return FG_FAIL(FG_ERR_OOM, "safetensors file '%s': cannot allocate names", path);
  size_t k = 0;
  for (const cJSON *it = root->child; it; it = it->next) names[k++] = it->string;
  qsort(names, n, sizeof *names, fg_st_name_cmp);
  fg_status s = FG_OK;
  for (size_t i = 1; i < n && s == FG_OK; i++)
    if (strcmp(names[i - 1], names[i]) == 0)
      s = fg_st_bad(path, "header key '%s' appears twice, expected unique names", names[i]);
  free(names);
  return s;
}

/* The entries tile the data buffer exactly: sorted by offset, each begins where the previous
 * one ended, and the last ends at the end of the buffer. */
static fg_status fg_st_check_layout(const char *path, const fg_st_entry *entries,
                                    fg_st_span *spans, size_t count, size_t data_len) {
  qsort(spans, count, sizeof *spans, fg_st_span_cmp);
  uint64_t pos = 0;
  const char *prev = NULL;
  for (size_t i = 0; i < count; i++) {
    const fg_st_span *s = &spans[i];
    const char *name = entries[s->index].name;
    if (s->begin < pos)
      return fg_st_bad(path, "tensor '%s' at [%" PRIu64 ", %" PRIu64 ") overlaps tensor '%s' "
                       "ending at %" PRIu64 ", expected disjoint entries", name, s->begin,
                       s->end, prev, pos);
    if (s->begin > pos)
      return fg_st_bad(path, "tensor '%s' begins at %" PRIu64 ", expected %" PRIu64 " (a gap "
                       "of unindexed bytes in the data buffer)", name, s->begin, pos);
    pos = s->end;
    prev = name;
  }
  if (pos != data_len)
    return fg_st_bad(path, "the data buffer has %zu bytes but the tensors cover %" PRIu64
                     ", expected them to be equal", data_len, pos);
  return FG_OK;
}

/* When the metadata records the data buffer's CRC-32 (FG_ST_CRC_KEY), the buffer must match it. */
static fg_status fg_st_check_crc(const fg_st_file *f, const unsigned char *data, size_t data_len) {
  const char *want = fg_st_metadata(f, fg_st_crc_key);
  if (!want) return FG_OK;
  char *end = NULL;
  unsigned long v = strtoul(want, &end, 16);
  if (strlen(want) != 8 || *end != '\0' || v > 0xfffffffful)
    return fg_st_bad(f->path, "\"%s\" is \"%.20s\", expected 8 hexadecimal digits", fg_st_crc_key, want);
  uint32_t got = fg_st_crc((uint32_t)crc32(0L, Z_NULL, 0), data, data_len);
  if (got != (uint32_t)v)
    return fg_st_bad(f->path, "the data's CRC-32 is %08" PRIx32 " but the header records %s (the file is "
                     "corrupted)", got, want);
  return FG_OK;
}

/* Parses and validates the header of the file loaded into f->bytes (size bytes). */
static fg_status fg_st_parse(fg_st_file *f, size_t size) {
  const char *path = f->path;
  if (size < 8)
    return fg_st_bad(path, "%zu bytes, expected at least 8 (the header length)", size);
  uint64_t n = fg_load_u64_le(f->bytes);
  if (n > size - 8)
    return fg_st_bad(path, "header length %" PRIu64 " exceeds the %zu bytes after the length "
                     "field", n, size - 8);
  if (n < 2)
    return fg_st_bad(path, "header length %" PRIu64 ", expected at least 2 (a JSON object)", n);
  if (n > FG_ST_MAX_HEADER)
    return fg_st_bad(path, "header length %" PRIu64 " is above the format's limit of %d bytes", n,
                     FG_ST_MAX_HEADER);
  const unsigned char *header = f->bytes + 8;
  size_t data_len = size - 8 - (size_t)n;
  size_t bad = fg_utf8_invalid_at(header, (size_t)n);
  if (bad < n)
    return fg_st_bad(path, "header byte %zu (0x%02x) is not valid UTF-8, expected UTF-8 JSON",
                     bad, header[bad]);
  if (header[0] != '{')
    return fg_st_bad(path, "header starts with '%c', expected '{'", header[0]);

  const char *end = NULL;
  f->root = cJSON_ParseWithLengthOpts((const char *)header, (size_t)n, &end, 0);
  if (!f->root)
    return fg_st_bad(path, "header is not valid JSON (error at header byte %zu of %" PRIu64 ")",
                     end ? (size_t)(end - (const char *)header) : (size_t)0, n);
  for (const char *p = end; p < (const char *)header + n; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return fg_st_bad(path, "unexpected byte '%c' at header byte %zu after the JSON object, "
                       "expected only space padding", *p, (size_t)(p - (const char *)header));
  if (!cJSON_IsObject(f->root))
    return fg_st_bad(path, "header is not a JSON object");

  size_t keys = 0;
  for (const cJSON *it = f->root->child; it; it = it->next) keys++;
  FG_TRY(fg_st_check_unique(path, f->root, keys));
  f->meta = cJSON_GetObjectItemCaseSensitive(f->root, fg_st_meta_key);
  if (f->meta) FG_TRY(fg_st_parse_metadata(path, f->meta));

  size_t count = keys - (f->meta ? 1 : 0);
  f->entries = calloc(count ? count : 1, sizeof *f->entries);
  fg_st_span *spans = malloc((count ? count : 1) * sizeof *spans);
  if (!f->entries || !spans) {
    free(spans);
    return FG_FAIL(FG_ERR_OOM, "safetensors file '%s': cannot allocate %zu entries", path, count);
  }
  const unsigned char *data = header + n;
  fg_status s = FG_OK;
  for (const cJSON *it = f->root->child; it && s == FG_OK; it = it->next) {
    if (it == f->meta) continue;
    fg_st_entry *e = &f->entries[f->count];
    fg_st_span *sp = &spans[f->count];
    s = fg_st_parse_entry(path, it, data_len, e, &sp->begin, &sp->end);
    if (s != FG_OK) break;
    e->data = data + sp->begin;
    sp->index = f->count++;
  }
  if (s == FG_OK) s = fg_st_check_layout(path, f->entries, spans, f->count, data_len);
  free(spans);
  if (s == FG_OK) s = fg_st_check_crc(f, data, data_len);
  return s;
}

fg_status fg_st_open(const char *path, fg_st_file **out) {
  if (!path || !out) return FG_FAIL(FG_ERR_INVALID, "fg_st_open: null argument");
  *out = NULL;
  fg_st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = fg_strdup(path))) {
    free(f);
    return FG_FAIL(FG_ERR_OOM, "safetensors file '%s': cannot allocate the reader", path);
  }
  size_t size = 0;
  fg_status s = fg_read_file(path, SIZE_MAX - 1, &f->bytes, &size);
  if (s == FG_OK) s = fg_st_parse(f, size);
  if (s != FG_OK) {
    fg_st_close(f);
    return s;
  }
  *out = f;
  return FG_OK;
}

fg_status fg_st_open_memory(const char *label, const void *bytes, size_t size, fg_st_file **out) {
  if (!label || (!bytes && size) || !out) return FG_FAIL(FG_ERR_INVALID, "fg_st_open_memory: null argument");
  *out = NULL;
  fg_st_file *f = calloc(1, sizeof *f);
  if (!f || !(f->path = fg_strdup(label)) || !(f->bytes = malloc(size + 1))) {
    fg_st_close(f);
    return FG_FAIL(FG_ERR_OOM, "safetensors '%s': cannot allocate %zu bytes", label, size + 1);
  }
  if (size) memcpy(f->bytes, bytes, size);
  f->bytes[size] = '\0';
  fg_status s = fg_st_parse(f, size);
  if (s != FG_OK) {
    fg_st_close(f);
    return s;
  }
  *out = f;
  return FG_OK;
}

void fg_st_close(fg_st_file *f) {
  if (!f) return;
  cJSON_Delete(f->root);
  free(f->entries);
  free(f->bytes);
  free(f->path);
  free(f);
}

const char *fg_st_path(const fg_st_file *f) { return f->path; }
size_t fg_st_count(const fg_st_file *f) { return f->count; }

const fg_st_entry *fg_st_entry_at(const fg_st_file *f, size_t i) {
  return i < f->count ? &f->entries[i] : NULL;
}

const fg_st_entry *fg_st_find(const fg_st_file *f, const char *name) {
  for (size_t i = 0; i < f->count; i++)
    if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
  return NULL;
}

const char *fg_st_metadata(const fg_st_file *f, const char *key) {
  if (!f->meta) return NULL;
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(f->meta, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

fg_status fg_st_read(const fg_st_file *f, const char *name, fg_st_dtype dtype, int ndim,
                     const int64_t *expected_shape, void *dst) {
  const fg_st_entry *e = fg_st_find(f, name);
  if (!e)
    return fg_st_bad(f->path, "tensor '%s' not found (the file has %zu tensors)", name, f->count);
  char want[160], got[160];
  int same = e->dtype == dtype && e->ndim == ndim;
  for (int i = 0; same && i < ndim; i++) same = e->shape[i] == expected_shape[i];
  if (!same)
    return fg_st_bad(f->path, "tensor '%s' is %s %s, expected %s %s", name,
                     fg_st_dtype_name(e->dtype), fg_st_shape_str(e->ndim, e->shape, got, sizeof got),
                     fg_st_dtype_name(dtype),
                     fg_st_shape_str(ndim, expected_shape, want, sizeof want));
  fg_copy_le(dst, e->data, e->nbytes, fg_st_dtype_size(e->dtype));
  return FG_OK;
}

fg_status fg_st_read_f32(const fg_st_file *f, const char *name, int ndim,
                         const int64_t *expected_shape, float *dst) {
  return fg_st_read(f, name, FG_ST_F32, ndim, expected_shape, dst);
}
