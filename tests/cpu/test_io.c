/* File I/O: atomic replace/abort semantics, whole-file reads, safetensors round trips, a file
 * assembled byte by byte from the published format, the writer's header layout, and clean
 * errors (naming the file) for corrupt files. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/test_util.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* Writes bytes with plain stdio, independently of the code under test. */
static void write_raw(const char *path, const void *bytes, size_t n) {
  FILE *fp = fopen(path, "wb");
  cr_assert_not_null(fp, "cannot create %s", path);
  if (n) cr_assert_eq(fwrite(bytes, 1, n, fp), n);
  cr_assert_eq(fclose(fp), 0);
}

static unsigned char *read_raw(const char *path, size_t *n) {
  FILE *fp = fopen(path, "rb");
  cr_assert_not_null(fp, "cannot open %s", path);
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  unsigned char *buf = malloc((size_t)size + 1);
  cr_assert_eq(fread(buf, 1, (size_t)size, fp), (size_t)size);
  fclose(fp);
  *n = (size_t)size;
  return buf;
}

/* A safetensors file from its parts: 8-byte little-endian length, the literal header, data. */
static void write_st_by_hand(const char *path, const char *header, const unsigned char *data,
                             size_t data_len) {
  size_t n = strlen(header);
  unsigned char *buf = malloc(8 + n + data_len + 1);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
  memcpy(buf + 8, header, n);
  if (data_len) memcpy(buf + 8 + n, data, data_len);
  write_raw(path, buf, 8 + n + data_len);
  free(buf);
}

static size_t count_dir_entries(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  size_t n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

/* fg_st_open must fail with `want`, return no file, and name the file and `fragment`. */
static void expect_open_fails(const char *path, fg_status want, const char *fragment) {
  fg_st_file *f = (fg_st_file *)1;
  fg_status s = fg_st_open(path, &f);
  cr_assert_eq(s, want, "%s: got %s (%s), expected %s", path, fg_status_name(s), fg_last_error(),
               fg_status_name(want));
  cr_assert_null(f);
  cr_assert(strstr(fg_last_error(), path) != NULL, "message does not name the file: %s",
            fg_last_error());
  cr_assert(strstr(fg_last_error(), fragment) != NULL, "message lacks '%s': %s", fragment,
            fg_last_error());
}

/* Little-endian bytes of a float, assembled from its bit pattern. */
static void f32_le(float v, unsigned char out[4]) {
  uint32_t u;
  memcpy(&u, &v, 4);
  for (int i = 0; i < 4; i++) out[i] = (unsigned char)(u >> (8 * i));
}

/* ---- atomic files ------------------------------------------------------------------------- */

Test(atomic, commit_replaces_old_file_only_at_commit) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "result.json");
  FGT_OK(fg_write_file_atomic(path, "old", 3));

  fg_atomic_file f;
  FGT_OK(fg_atomic_open(&f, path));
  FGT_OK(fg_atomic_write(&f, "new contents ", 13));
  FGT_OK(fg_atomic_printf(&f, "%d-%s", 42, "x"));
  size_t n;
  unsigned char *before = read_raw(path, &n);
  cr_assert_eq(n, 3);
  cr_assert_eq(memcmp(before, "old", 3), 0, "target changed before commit");
  free(before);
  cr_assert_eq(count_dir_entries(dir), 2, "expected the target and one temporary file");
  FGT_OK(fg_atomic_commit(&f));
  cr_assert_null(f.fp);

  unsigned char *after = read_raw(path, &n);
  cr_assert_eq(n, 17);
  cr_assert_eq(memcmp(after, "new contents 42-x", 17), 0);
  free(after);
  cr_assert_eq(count_dir_entries(dir), 1, "temporary file left behind");
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

Test(atomic, abort_leaves_old_file_and_no_temp) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "ckpt.bin");
  write_raw(path, "precious", 8);
  fg_atomic_file f;
  FGT_OK(fg_atomic_open(&f, path));
  FGT_OK(fg_atomic_write(&f, "garbage!garbage!", 16));
  fg_atomic_abort(&f);
  fg_atomic_abort(&f); /* a second abort is harmless */
  size_t n;
  unsigned char *got = read_raw(path, &n);
  cr_assert_eq(n, 8);
  cr_assert_eq(memcmp(got, "precious", 8), 0);
  free(got);
  cr_assert_eq(count_dir_entries(dir), 1, "temporary file left behind");
  cr_assert_eq(fg_atomic_write(&f, "x", 1), FG_ERR_INVALID);
  cr_assert_eq(fg_atomic_commit(&f), FG_ERR_INVALID);
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

Test(atomic, missing_directory_fails_with_io_naming_path) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "no/such/dir/out.txt");
  fg_atomic_file f;
  cr_assert_eq(fg_atomic_open(&f, path), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), path) != NULL, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), strerror(ENOENT)) != NULL, "%s", fg_last_error());
  cr_assert_null(f.fp);
  fg_atomic_abort(&f);
  cr_assert_eq(fg_write_file_atomic(path, "x", 1), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), path) != NULL, "%s", fg_last_error());
  cr_assert_eq(count_dir_entries(dir), 0);
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

Test(atomic, failed_rename_removes_temp_and_keeps_target) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "sub");
  cr_assert_eq(mkdir(path, 0755), 0);
  char *inner = fgt_join(path, "keep.txt");
  write_raw(inner, "k", 1);
  cr_assert_eq(fg_write_file_atomic(path, "data", 4), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), path) != NULL, "%s", fg_last_error());
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert(S_ISDIR(st.st_mode), "the directory at the target path was replaced");
  cr_assert_eq(count_dir_entries(dir), 1, "temporary file left behind");
  cr_assert_eq(count_dir_entries(path), 1);
  fgt_rmtree(dir);
  free(inner);
  free(path);
  free(dir);
}

Test(atomic, permissions_kept_on_replace) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "secret.txt");
  FGT_OK(fg_write_file_atomic(path, "a", 1));
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0644, "new file mode %o", (unsigned)(st.st_mode & 0777));
  cr_assert_eq(chmod(path, 0600), 0);
  FGT_OK(fg_write_file_atomic(path, "b", 1));
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600, "replaced file mode %o", (unsigned)(st.st_mode & 0777));
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

Test(read_file, contents_limit_and_missing) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "ten.txt");
  write_raw(path, "0123456789", 10);
  unsigned char *buf;
  size_t len;
  FGT_OK(fg_read_file(path, 10, &buf, &len));
  cr_assert_eq(len, 10);
  cr_assert_eq(memcmp(buf, "0123456789", 10), 0);
  cr_assert_eq(buf[10], '\0');
  free(buf);
  cr_assert_eq(fg_read_file(path, 9, &buf, &len), FG_ERR_FORMAT);
  cr_assert_null(buf);
  cr_assert(strstr(fg_last_error(), path) != NULL, "%s", fg_last_error());

  char *empty = fgt_join(dir, "empty");
  write_raw(empty, "", 0);
  FGT_OK(fg_read_file(empty, 100, &buf, &len));
  cr_assert_eq(len, 0);
  free(buf);

  char *missing = fgt_join(dir, "missing");
  cr_assert_eq(fg_read_file(missing, 100, &buf, &len), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), missing) != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_read_file(dir, 100, &buf, &len), FG_ERR_IO);
  fgt_rmtree(dir);
  free(missing);
  free(empty);
  free(path);
  free(dir);
}

/* A FIFO has no size up front: the buffer must grow, and the limit must still hold. */
static void feed_fifo(const char *fifo, size_t n) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    FILE *fp = fopen(fifo, "wb");
    for (size_t i = 0; fp && i < n; i++) fputc((int)(i * 7 % 251), fp);
    if (fp) fclose(fp);
    _exit(0);
  }
}

Test(read_file, unsized_stream_grows_and_respects_limit) {
  char *dir = fgt_mkdtemp();
  char *fifo = fgt_join(dir, "pipe");
  cr_assert_eq(mkfifo(fifo, 0600), 0);
  const size_t n = 50000;
  feed_fifo(fifo, n);
  unsigned char *buf;
  size_t len;
  FGT_OK(fg_read_file(fifo, n, &buf, &len));
  wait(NULL);
  cr_assert_eq(len, n);
  for (size_t i = 0; i < n; i++) cr_assert_eq(buf[i], (unsigned char)(i * 7 % 251), "byte %zu", i);
  free(buf);

  feed_fifo(fifo, n);
  cr_assert_eq(fg_read_file(fifo, n - 1, &buf, &len), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), fifo) != NULL, "%s", fg_last_error());
  wait(NULL);
  fgt_rmtree(dir);
  free(fifo);
  free(dir);
}

/* ---- safetensors: round trip -------------------------------------------------------------- */

typedef struct {
  const char *name;
  fg_st_dtype dtype;
  int ndim;
  int64_t shape[4];
} tensor_spec;

static size_t spec_numel(const tensor_spec *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

Test(safetensors, round_trip_ranks_dtypes_metadata) {
  const tensor_spec specs[] = {
      {"block1.conv1.weight", FG_ST_F32, 4, {4, 3, 3, 3}},
      {"block1.bn1.running_mean", FG_ST_F32, 1, {4}},
      {"head.weight", FG_ST_F32, 2, {10, 16}},
      {"exit1.weight", FG_ST_F32, 3, {2, 3, 5}},
      {"labels", FG_ST_I32, 1, {7}},
      {"mask", FG_ST_U8, 2, {2, 5}},
      {"step", FG_ST_I64, 0, {0}},
      {"empty", FG_ST_F32, 2, {0, 3}},
  };
  enum { NT = sizeof specs / sizeof specs[0] };
  void *data[NT];
  for (int t = 0; t < NT; t++) {
    size_t n = spec_numel(&specs[t]), es = fg_st_dtype_size(specs[t].dtype);
    data[t] = malloc(n * es + 1);
    if (specs[t].dtype == FG_ST_F32) fgt_fill_uniform(data[t], n, 100 + (uint64_t)t, -3.f, 3.f);
    if (specs[t].dtype == FG_ST_I32)
      for (size_t i = 0; i < n; i++) ((int32_t *)data[t])[i] = (int32_t)(i * 1000003) - 5000000;
    if (specs[t].dtype == FG_ST_U8)
      for (size_t i = 0; i < n; i++) ((uint8_t *)data[t])[i] = (uint8_t)(255 - 17 * i);
    if (specs[t].dtype == FG_ST_I64) *(int64_t *)data[t] = -123456789012345LL;
  }
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "model.safetensors");

  fg_st_writer w;
  fg_st_writer_init(&w);
  for (int t = 0; t < NT; t++)
    FGT_OK(fg_st_writer_add(&w, specs[t].name, specs[t].dtype, specs[t].ndim, specs[t].shape,
                            data[t]));
  FGT_OK(fg_st_writer_set_metadata(&w, "format", "pt"));
  FGT_OK(fg_st_writer_set_metadata(&w, "model", "resnet"));
  FGT_OK(fg_st_writer_set_metadata(&w, "model", "cnn")); /* replaces */
  FGT_OK(fg_st_writer_write(&w, path));
  fg_st_writer_free(&w);

  fg_st_file *f;
  FGT_OK(fg_st_open(path, &f));
  cr_assert_eq(fg_st_count(f), NT);
  cr_assert_str_eq(fg_st_path(f), path);
  for (int t = 0; t < NT; t++) {
    const fg_st_entry *e = fg_st_entry_at(f, (size_t)t);
    cr_assert_str_eq(e->name, specs[t].name, "entries keep the order added");
    cr_assert_eq(fg_st_find(f, specs[t].name), e);
    cr_assert_eq(e->dtype, specs[t].dtype);
    cr_assert_eq(e->ndim, specs[t].ndim);
    for (int i = 0; i < e->ndim; i++) cr_assert_eq(e->shape[i], specs[t].shape[i]);
    size_t bytes = spec_numel(&specs[t]) * fg_st_dtype_size(specs[t].dtype);
    cr_assert_eq(e->nbytes, bytes);
    unsigned char *back = malloc(bytes + 1);
    FGT_OK(fg_st_read(f, specs[t].name, specs[t].dtype, specs[t].ndim, specs[t].shape, back));
    cr_assert_eq(memcmp(back, data[t], bytes), 0, "tensor %s differs", specs[t].name);
    if (specs[t].dtype == FG_ST_F32) {
      memset(back, 0, bytes);
      FGT_OK(fg_st_read_f32(f, specs[t].name, specs[t].ndim, specs[t].shape, (float *)back));
      cr_assert_eq(memcmp(back, data[t], bytes), 0, "tensor %s differs", specs[t].name);
    }
    free(back);
  }
  cr_assert_null(fg_st_entry_at(f, NT));
  cr_assert_null(fg_st_find(f, "block1.conv2.weight"));
  cr_assert_str_eq(fg_st_metadata(f, "format"), "pt");
  cr_assert_str_eq(fg_st_metadata(f, "model"), "cnn");
  cr_assert_null(fg_st_metadata(f, "absent"));
  fg_st_close(f);
  cr_assert_eq(count_dir_entries(dir), 1);
  for (int t = 0; t < NT; t++) free(data[t]);
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

/* ---- safetensors: the format itself ------------------------------------------------------- */

/* Header order differs from data order; the header length (and so the data start) is not a
 * multiple of 8 and includes trailing space padding; every dtype appears. */
Test(safetensors, hand_built_file_loads) {
  const char *header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
      "\"idx\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[16,28]},"
      "\"d\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[39,47]},"
      "\"m\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[28,31]},"
      "\"n\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[31,39]}}  ";
  const unsigned char data[47] = {
      0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x20, 0xC0, /* 1.0f, -2.5f */
      0x00, 0x00, 0x00, 0x3F, 0x00, 0x00, 0x40, 0x40, /* 0.5f, 3.0f */
      0x07, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, /* 7, -1 */
      0x02, 0x00, 0x01, 0x00,                         /* 65538 */
      0x00, 0xC8, 0xFF,                               /* 0, 200, 255 */
      0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, /* -2 (i64) */
      0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xD0, 0x3F, /* 0.25 (f64) */
  };
  cr_assert_neq(strlen(header) % 8, 0, "the test wants an unaligned data start");
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "hand.safetensors");
  write_st_by_hand(path, header, data, sizeof data);

  fg_st_file *f;
  FGT_OK(fg_st_open(path, &f));
  cr_assert_eq(fg_st_count(f), 5);
  cr_assert_str_eq(fg_st_metadata(f, "format"), "pt");

  float w[4];
  FGT_OK(fg_st_read_f32(f, "w", 2, (const int64_t[]){2, 2}, w));
  cr_assert(w[0] == 1.0f && w[1] == -2.5f && w[2] == 0.5f && w[3] == 3.0f, "%g %g %g %g",
            w[0], w[1], w[2], w[3]);
  int32_t idx[3];
  FGT_OK(fg_st_read(f, "idx", FG_ST_I32, 1, (const int64_t[]){3}, idx));
  cr_assert(idx[0] == 7 && idx[1] == -1 && idx[2] == 65538, "%d %d %d", idx[0], idx[1], idx[2]);
  uint8_t m[3];
  FGT_OK(fg_st_read(f, "m", FG_ST_U8, 1, (const int64_t[]){3}, m));
  cr_assert(m[0] == 0 && m[1] == 200 && m[2] == 255);
  int64_t n;
  FGT_OK(fg_st_read(f, "n", FG_ST_I64, 1, (const int64_t[]){1}, &n));
  cr_assert_eq(n, -2);
  double d;
  FGT_OK(fg_st_read(f, "d", FG_ST_F64, 0, NULL, &d));
  cr_assert(d == 0.25, "%g", d);
  const fg_st_entry *e = fg_st_find(f, "d");
  cr_assert_eq(e->ndim, 0);
  cr_assert_eq(e->nbytes, 8);
  fg_st_close(f);
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

static void check_offsets(const cJSON *root, const char *name, const char *dtype, int b, int e) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, name);
  cr_assert(cJSON_IsObject(t), "no entry %s", name);
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring, dtype);
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
  cr_assert_eq(cJSON_GetArraySize(off), 2);
  cr_assert_eq(cJSON_GetArrayItem(off, 0)->valuedouble, b, "%s begin", name);
  cr_assert_eq(cJSON_GetArrayItem(off, 1)->valuedouble, e, "%s end", name);
}

Test(safetensors, writer_header_is_aligned_json_with_expected_offsets) {
  float a[3] = {1.5f, -0.125f, 1e-3f};
  uint8_t b[5] = {1, 2, 3, 250, 0};
  float c[4] = {-7.f, 8.f, 0.f, 2.5e6f};
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "w.safetensors");
  fg_st_writer w;
  fg_st_writer_init(&w);
  FGT_OK(fg_st_writer_add(&w, "a", FG_ST_F32, 1, (const int64_t[]){3}, a));
  FGT_OK(fg_st_writer_add(&w, "b", FG_ST_U8, 1, (const int64_t[]){5}, b));
  FGT_OK(fg_st_writer_add(&w, "c.weight", FG_ST_F32, 2, (const int64_t[]){2, 2}, c));
  FGT_OK(fg_st_writer_set_metadata(&w, "note", "quote \" and \xc3\xa9"));
  FGT_OK(fg_st_writer_write(&w, path));
  fg_st_writer_free(&w);

  size_t size;
  unsigned char *raw = read_raw(path, &size);
  uint64_t n = 0;
  for (int i = 0; i < 8; i++) n |= (uint64_t)raw[i] << (8 * i);
  cr_assert_eq(n % 8, 0, "header length %llu", (unsigned long long)n);
  cr_assert_eq(size, 8 + n + 12 + 5 + 16);
  cJSON *root = cJSON_ParseWithLength((const char *)raw + 8, n);
  cr_assert_not_null(root, "header is not JSON");
  check_offsets(root, "a", "F32", 0, 12);
  check_offsets(root, "b", "U8", 12, 17);
  check_offsets(root, "c.weight", "F32", 17, 33);
  const cJSON *shape = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "c.weight"), "shape");
  cr_assert_eq(cJSON_GetArraySize(shape), 2);
  cr_assert_eq(cJSON_GetArrayItem(shape, 0)->valuedouble, 2);
  const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(meta, "note")->valuestring, "quote \" and \xc3\xa9");
  cJSON_Delete(root);
  /* Padding is spaces after the closing brace. */
  const unsigned char *hdr = raw + 8;
  size_t k = n;
  while (k > 0 && hdr[k - 1] == ' ') k--;
  cr_assert(k > 0 && hdr[k - 1] == '}', "header must end with '}' then spaces");
  cr_assert_lt(n - k, 8);

  const unsigned char *data = raw + 8 + n;
  unsigned char le[4];
  for (int i = 0; i < 3; i++) {
    f32_le(a[i], le);
    cr_assert_eq(memcmp(data + 4 * i, le, 4), 0, "a[%d] bytes", i);
  }
  cr_assert_eq(memcmp(data + 12, b, 5), 0);
  for (int i = 0; i < 4; i++) {
    f32_le(c[i], le);
    cr_assert_eq(memcmp(data + 17 + 4 * i, le, 4), 0, "c[%d] bytes", i);
  }
  free(raw);
  fgt_rmtree(dir);
  free(path);
  free(dir);
}

Test(safetensors, writer_rejects_bad_tensors_and_failed_write_keeps_old_file) {
  float x[2] = {1, 2};
  fg_st_writer w;
  fg_st_writer_init(&w);
  FGT_OK(fg_st_writer_add(&w, "x", FG_ST_F32, 1, (const int64_t[]){2}, x));
  cr_assert_eq(fg_st_writer_add(&w, "x", FG_ST_F32, 1, (const int64_t[]){2}, x), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "'x'") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_st_writer_add(&w, "__metadata__", FG_ST_F32, 1, (const int64_t[]){2}, x),
               FG_ERR_INVALID);
  cr_assert_eq(fg_st_writer_add(&w, "", FG_ST_F32, 1, (const int64_t[]){2}, x), FG_ERR_INVALID);
  cr_assert_eq(fg_st_writer_add(&w, "neg", FG_ST_F32, 1, (const int64_t[]){-2}, x), FG_ERR_INVALID);
  cr_assert_eq(fg_st_writer_add(&w, "r9", FG_ST_F32, 9, (const int64_t[9]){1}, x), FG_ERR_INVALID);
  cr_assert_eq(fg_st_writer_add(&w, "bad\xff", FG_ST_F32, 1, (const int64_t[]){2}, x),
               FG_ERR_INVALID);

  char *dir = fgt_mkdtemp();
  char *missing = fgt_join(dir, "nodir/m.safetensors");
  cr_assert_eq(fg_st_writer_write(&w, missing), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), missing) != NULL, "%s", fg_last_error());
  /* The target is a directory: the rename fails, the directory and its contents stay. */
  char *sub = fgt_join(dir, "sub");
  cr_assert_eq(mkdir(sub, 0755), 0);
  cr_assert_eq(fg_st_writer_write(&w, sub), FG_ERR_IO);
  struct stat st;
  cr_assert(stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
  cr_assert_eq(count_dir_entries(dir), 1, "temporary file left behind");
  fg_st_writer_free(&w);
  fgt_rmtree(dir);
  free(sub);
  free(missing);
  free(dir);
}

/* ---- safetensors: corrupt files ----------------------------------------------------------- */

typedef struct {
  char *dir;
  char *path;
} st_case;

static st_case case_new(void) {
  st_case c;
  c.dir = fgt_mkdtemp();
  c.path = fgt_join(c.dir, "bad.safetensors");
  return c;
}

static void case_free(st_case *c) {
  fgt_rmtree(c->dir);
  free(c->path);
  free(c->dir);
}

static const unsigned char zeros[64];

Test(safetensors_corrupt, empty_file) {
  st_case c = case_new();
  write_raw(c.path, "", 0);
  expect_open_fails(c.path, FG_ERR_FORMAT, "0 bytes, expected at least 8");
  case_free(&c);
}

Test(safetensors_corrupt, seven_bytes) {
  st_case c = case_new();
  write_raw(c.path, "\x02\0\0\0\0\0\0", 7);
  expect_open_fails(c.path, FG_ERR_FORMAT, "7 bytes, expected at least 8");
  case_free(&c);
}

Test(safetensors_corrupt, header_length_larger_than_file) {
  st_case c = case_new();
  unsigned char bytes[10] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  write_raw(c.path, bytes, sizeof bytes);
  expect_open_fails(c.path, FG_ERR_FORMAT, "header length 100 exceeds the 2 bytes");
  case_free(&c);
}

Test(safetensors_corrupt, header_length_2_pow_63) {
  st_case c = case_new();
  unsigned char bytes[10] = {0, 0, 0, 0, 0, 0, 0, 0x80, '{', '}'};
  write_raw(c.path, bytes, sizeof bytes);
  expect_open_fails(c.path, FG_ERR_FORMAT, "header length 9223372036854775808 exceeds");
  case_free(&c);
}

Test(safetensors_corrupt, invalid_json) {
  st_case c = case_new();
  write_st_by_hand(c.path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],", zeros, 4);
  expect_open_fails(c.path, FG_ERR_FORMAT, "not valid JSON");
  case_free(&c);
}

Test(safetensors_corrupt, unknown_dtype) {
  st_case c = case_new();
  write_st_by_hand(c.path, "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                   zeros, 4);
  expect_open_fails(c.path, FG_ERR_FORMAT, "tensor 'a': dtype \"F16\" is not supported");
  cr_assert(strstr(fg_last_error(), "expected one of F32") != NULL, "%s", fg_last_error());
  case_free(&c);
}

Test(safetensors_corrupt, shape_not_matching_offsets) {
  st_case c = case_new();
  write_st_by_hand(c.path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                   zeros, 8);
  expect_open_fails(c.path, FG_ERR_FORMAT, "tensor 'a': shape [3] of F32 needs 12 bytes");
  cr_assert(strstr(fg_last_error(), "span 8 bytes") != NULL, "%s", fg_last_error());
  case_free(&c);
}

Test(safetensors_corrupt, offsets_past_the_end) {
  st_case c = case_new();
  write_st_by_hand(c.path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                   zeros, 8);
  expect_open_fails(c.path, FG_ERR_FORMAT, "tensor 'a': data_offsets [0, 16] go past the end");
  cr_assert(strstr(fg_last_error(), "(8 bytes") != NULL, "%s", fg_last_error());
  case_free(&c);
}

Test(safetensors_corrupt, overlapping_entries) {
  st_case c = case_new();
  write_st_by_hand(c.path,
                   "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                   "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                   zeros, 12);
  expect_open_fails(c.path, FG_ERR_FORMAT, "tensor 'b' at [4, 12) overlaps tensor 'a'");
  case_free(&c);
}

Test(safetensors_corrupt, truncated_data) {
  st_case c = case_new();
  float x[6] = {1, 2, 3, 4, 5, 6};
  fg_st_writer w;
  fg_st_writer_init(&w);
  FGT_OK(fg_st_writer_add(&w, "a", FG_ST_F32, 1, (const int64_t[]){2}, x));
  FGT_OK(fg_st_writer_add(&w, "b", FG_ST_F32, 2, (const int64_t[]){2, 2}, x + 2));
  FGT_OK(fg_st_writer_write(&w, c.path));
  fg_st_writer_free(&w);
  struct stat st;
  cr_assert_eq(stat(c.path, &st), 0);
  cr_assert_eq(truncate(c.path, st.st_size - 3), 0);
  expect_open_fails(c.path, FG_ERR_FORMAT, "tensor 'b': data_offsets [8, 24] go past the end");
  case_free(&c);
}

Test(safetensors_corrupt, missing_tensor_and_shape_mismatch_on_read) {
  st_case c = case_new();
  float x[6] = {1, 2, 3, 4, 5, 6};
  fg_st_writer w;
  fg_st_writer_init(&w);
  FGT_OK(fg_st_writer_add(&w, "head.weight", FG_ST_F32, 2, (const int64_t[]){2, 3}, x));
  FGT_OK(fg_st_writer_write(&w, c.path));
  fg_st_writer_free(&w);
  fg_st_file *f;
  FGT_OK(fg_st_open(c.path, &f));
  float out[6] = {0};
  cr_assert_eq(fg_st_read_f32(f, "head.bias", 1, (const int64_t[]){2}, out), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), c.path) != NULL, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), "tensor 'head.bias' not found") != NULL, "%s", fg_last_error());

  cr_assert_eq(fg_st_read_f32(f, "head.weight", 2, (const int64_t[]){3, 2}, out), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), c.path) != NULL, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), "tensor 'head.weight' is F32 [2, 3], expected F32 [3, 2]"),
            "%s", fg_last_error());
  cr_assert_eq(fg_st_read(f, "head.weight", FG_ST_I32, 2, (const int64_t[]){2, 3}, out),
               FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "is F32 [2, 3], expected I32 [2, 3]"), "%s", fg_last_error());
  cr_assert_eq(fg_st_read_f32(f, "head.weight", 1, (const int64_t[]){6}, out), FG_ERR_FORMAT);
  for (int i = 0; i < 6; i++) cr_assert_eq(out[i], 0.f, "a failed read wrote into dst");
  fg_st_close(f);
  case_free(&c);
}

Test(safetensors_corrupt, missing_file_is_io_error) {
  st_case c = case_new();
  expect_open_fails(c.path, FG_ERR_IO, "cannot open");
  case_free(&c);
}

/* Further malformations, each with the phrase its message must contain. */
Test(safetensors_corrupt, other_malformed_headers) {
  static const struct {
    const char *header;
    size_t data_len;
    const char *fragment;
  } cases[] = {
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "'a' appears twice"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "begins at 4, expected 0"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
       "has 8 bytes but the tensors cover 4"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "extent -1"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "extent 1.5"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "0 <= begin <= end"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets is [0]"},
      {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
       "needs more than"},
      {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "dtype is 7"},
      {"{\"a\":[1,2]}", 0, "entry is [1,2]"},
      {"{\"__metadata__\":{\"k\":1}}", 0, "entry 'k' is 1, expected a string"},
      {"{\"__metadata__\":[]}", 0, "\"__metadata__\" is []"},
      {"{}x", 0, "unexpected byte 'x'"},
      {"[1]", 0, "expected '{'"},
      {"{\"\xff\":1}", 0, "not valid UTF-8"},
      {"{}  ", 4, "has 4 bytes but the tensors cover 0"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    st_case c = case_new();
    write_st_by_hand(c.path, cases[i].header, zeros, cases[i].data_len);
    expect_open_fails(c.path, FG_ERR_FORMAT, cases[i].fragment);
    case_free(&c);
  }
}

Test(safetensors_corrupt, nul_byte_in_header) {
  st_case c = case_new();
  unsigned char bytes[8 + 8] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', 0, '"', ':', '1', '}'};
  write_raw(c.path, bytes, sizeof bytes);
  expect_open_fails(c.path, FG_ERR_FORMAT, "header byte 3 (0x00) is not valid UTF-8");
  case_free(&c);
}

Test(safetensors, empty_header_object_is_a_valid_file) {
  st_case c = case_new();
  write_st_by_hand(c.path, "{}      ", NULL, 0);
  fg_st_file *f;
  FGT_OK(fg_st_open(c.path, &f));
  cr_assert_eq(fg_st_count(f), 0);
  cr_assert_null(fg_st_metadata(f, "x"));
  fg_st_close(f);
  case_free(&c);
}

Test(safetensors, memory_bytes_are_the_file_bytes) {
  char *dir = fgt_mkdtemp();
  char *path = fgt_join(dir, "t.safetensors");
  float a[5] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-20f};
  int32_t b[3] = {7, -8, 9};
  int64_t sa[1] = {5}, sb[2] = {1, 3};
  fg_st_writer w;
  fg_st_writer_init(&w);
  FGT_OK(fg_st_writer_add(&w, "a", FG_ST_F32, 1, sa, a));
  FGT_OK(fg_st_writer_add(&w, "b", FG_ST_I32, 2, sb, b));
  FGT_OK(fg_st_writer_set_metadata(&w, "k", "v"));
  FGT_OK(fg_st_writer_write(&w, path));
  unsigned char *mem = NULL, *file = NULL;
  size_t mem_len = 0, file_len = 0;
  FGT_OK(fg_st_writer_to_memory(&w, &mem, &mem_len));
  FGT_OK(fg_read_file(path, 1 << 20, &file, &file_len));
  cr_assert_eq(mem_len, file_len);
  cr_assert_eq(memcmp(mem, file, mem_len), 0);
  fg_st_file *f = NULL;
  FGT_OK(fg_st_open_memory("memory", mem, mem_len, &f));
  float back[5];
  FGT_OK(fg_st_read_f32(f, "a", 1, sa, back));
  cr_assert_eq(memcmp(back, a, sizeof a), 0);
  fg_st_close(f);
  free(mem);
  free(file);
  fg_st_writer_free(&w);
  free(path);
  fgt_rmtree(dir);
  free(dir);
}
