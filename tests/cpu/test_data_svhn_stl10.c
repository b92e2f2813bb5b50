/* SVHN (MATLAB level-5 MAT-files) and STL-10 (column-major binary) loaders on small files written
 * here: a MAT-file writer of this test's own (uncompressed and miCOMPRESSED elements, both byte
 * orders, small data elements, data stored in a narrower type than the array class, variables
 * to skip), pixel and label checks at every position, the catalog entries and their [-1, 1]
 * normalisation, and rejection of truncated, corrupt and malformed files with a message naming
 * the file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "common/batch_util.h"
#include "common/test_util.h"
#include "engine/data/catalog.h"
#include "engine/data/dataset.h"

/* ------------------------------------------------------------------------------------------ */
/* Byte buffers and files                                                                      */

typedef struct buf {
  unsigned char *p;
  size_t n;
  int big; /* write multi-byte values big-endian */
} buf;

static void put(buf *b, const void *src, size_t n) {
  b->p = realloc(b->p, b->n + n + 1);
  cr_assert_not_null(b->p);
  if (n) memcpy(b->p + b->n, src, n);
  b->n += n;
}

/* A value of `size` bytes (given in host order) in the buffer's byte order. */
static void put_value(buf *b, const void *v, int size) {
  unsigned char q[8];
  const size_t n = size > 0 && size <= (int)sizeof q ? (size_t)size : 0;
  cr_assert_neq(n, 0u, "put_value: %d bytes, expected 1..8", size);
  memcpy(q, v, n);
  const uint16_t one = 1;
  unsigned char first;
  memcpy(&first, &one, 1);
  const int host_little = first == 1;
  if (host_little == b->big)
    for (int i = 0; i < size / 2; i++) {
      unsigned char t = q[i];
      q[i] = q[size - 1 - i];
      q[size - 1 - i] = t;
    }
  put(b, q, (size_t)size);
}

static void put_u32(buf *b, uint32_t v) { put_value(b, &v, 4); }

static void pad8(buf *b) {
  static const unsigned char zeros[8] = {0};
  put(b, zeros, (8 - b->n % 8) % 8);
}

/* ------------------------------------------------------------------------------------------ */
/* A MAT-file (level 5) writer                                                                  */

enum { MI_INT8 = 1, MI_UINT8 = 2, MI_INT32 = 5, MI_UINT32 = 6, MI_DOUBLE = 9, MI_MATRIX = 14,
       MI_COMPRESSED = 15, MI_UTF8 = 16 };
enum { MX_CHAR = 4, MX_DOUBLE = 6, MX_UINT8 = 9 };

static void mat_header(buf *b, const char *text) {
  char h[116];
  memset(h, ' ', sizeof h);
  memcpy(h, text, strlen(text));
  put(b, h, sizeof h);
  const unsigned char subsys[8] = {0};
  put(b, subsys, 8);
  const uint16_t version = 0x0100, endian = ('M' << 8) | 'I';
  put_value(b, &version, 2);
  put_value(b, &endian, 2);
}

/* A sub-element: the small format (tag and data in 8 bytes) when it fits in 4 bytes. */
static void sub_element(buf *b, uint32_t type, const void *data, uint32_t bytes, int value_size) {
  const unsigned char *d = data;
  if (bytes <= 4) {
    put_u32(b, bytes << 16 | type);
    const size_t start = b->n;
    for (uint32_t i = 0; i < bytes; i += (uint32_t)value_size) put_value(b, d + i, value_size);
    const unsigned char zeros[4] = {0};
    put(b, zeros, 4 - (b->n - start));
    return;
  }
  put_u32(b, type);
  put_u32(b, bytes);
  for (uint32_t i = 0; i < bytes; i += (uint32_t)value_size) put_value(b, d + i, value_size);
  pad8(b);
}

typedef struct mat_var {
  const char *name;
  int mx_class;
  int complex;
  int ndims;
  int32_t dims[4];
  uint32_t stored_type;
  int value_size;
  const void *data; /* values of stored_type in host order */
  uint32_t count;
} mat_var;

/* Appends the variable as a miMATRIX element, or inside a miCOMPRESSED element. */
static void mat_variable(buf *b, const mat_var *v, int compressed) {
  buf content = {NULL, 0, b->big};
  const uint32_t flags[2] = {(uint32_t)v->mx_class | (v->complex ? 0x0800u : 0u), 0};
  sub_element(&content, MI_UINT32, flags, 8, 4);
  sub_element(&content, MI_INT32, v->dims, (uint32_t)(4 * v->ndims), 4);
  sub_element(&content, MI_INT8, v->name, (uint32_t)strlen(v->name), 1);
  sub_element(&content, v->stored_type, v->data, v->count * (uint32_t)v->value_size, v->value_size);
  if (v->complex)
    sub_element(&content, v->stored_type, v->data, v->count * (uint32_t)v->value_size, v->value_size);
  buf element = {NULL, 0, b->big};
  put_u32(&element, MI_MATRIX);
  put_u32(&element, (uint32_t)content.n);
  put(&element, content.p, content.n);
  if (!compressed) {
    put(b, element.p, element.n);
  } else {
    uLongf zn = compressBound(element.n);
    unsigned char *z = malloc(zn);
    cr_assert_eq(compress2(z, &zn, element.p, element.n, 6), Z_OK);
    put_u32(b, MI_COMPRESSED);
    put_u32(b, (uint32_t)zn);
    put(b, z, zn);
    free(z);
  }
  free(content.p);
  free(element.p);
}

/* ------------------------------------------------------------------------------------------ */
/* SVHN files                                                                                  */

enum { SVHN_N = 5 };

/* The pixel written at (image n, channel c, row, col) and the label (1..10) of image n. */
static unsigned svhn_pixel(int n, int c, int row, int col) {
  return (unsigned)(n * 41 + c * 67 + row * 3 + col * 11) % 256u;
}
static int svhn_label(int n) {
  static const int labels[SVHN_N] = {1, 10, 3, 4, 5};
  return labels[n % SVHN_N];
}

typedef struct svhn_opts {
  int big, compressed, y_first, y_as_uint8, extra_vars;
  int n_x, n_y;          /* image / label counts (SVHN_N unless testing a mismatch) */
  int x_channels;        /* 3 unless testing a bad shape */
  int bad_label;         /* write 11 as the third label */
  int omit_y, complex_x;
  const char *header;    /* NULL: the standard v5 text */
} svhn_opts;

static svhn_opts svhn_defaults(void) {
  svhn_opts o = {0};
  o.n_x = o.n_y = SVHN_N;
  o.x_channels = 3;
  return o;
}

static buf svhn_mat(const svhn_opts *o) {
  buf b = {NULL, 0, o->big};
  mat_header(&b, o->header ? o->header : "MATLAB 5.0 MAT-file, Platform: GLNXA64, Created by fedgap tests");
  const int nx = o->n_x, ny = o->n_y, ch = o->x_channels;
  unsigned char *x = malloc((size_t)nx * 32 * 32 * (size_t)ch);
  for (int n = 0; n < nx; n++)
    for (int c = 0; c < ch; c++)
      for (int col = 0; col < 32; col++)
        for (int row = 0; row < 32; row++)
          x[row + 32 * col + 1024 * c + 1024 * ch * n] = (unsigned char)svhn_pixel(n, c, row, col);
  double yd[64];
  unsigned char yu[64];
  for (int n = 0; n < ny; n++) {
    int lab = o->bad_label && n == 2 ? 11 : svhn_label(n);
    yd[n] = lab;
    yu[n] = (unsigned char)lab;
  }
  mat_var vx = {"X", MX_UINT8, o->complex_x, 4, {32, 32, ch, nx}, MI_UINT8, 1, x,
                (uint32_t)(nx * 32 * 32 * ch)};
  mat_var vy = {"y", MX_DOUBLE, 0, 2, {ny, 1, 0, 0}, o->y_as_uint8 ? MI_UINT8 : MI_DOUBLE,
                o->y_as_uint8 ? 1 : 8, o->y_as_uint8 ? (const void *)yu : (const void *)yd,
                (uint32_t)ny};
  const double scalar = 3.5;
  const char text[] = "digits";
  mat_var vz = {"z_scale", MX_DOUBLE, 0, 2, {1, 1, 0, 0}, MI_DOUBLE, 8, &scalar, 1};
  mat_var vs = {"note", MX_CHAR, 0, 2, {1, 6, 0, 0}, MI_UTF8, 1, text, 6};
  if (o->extra_vars) mat_variable(&b, &vz, o->compressed);
  if (o->y_first && !o->omit_y) mat_variable(&b, &vy, o->compressed);
  mat_variable(&b, &vx, o->compressed);
  if (o->extra_vars) mat_variable(&b, &vs, o->compressed);
  if (!o->y_first && !o->omit_y) mat_variable(&b, &vy, o->compressed);
  free(x);
  return b;
}

static void check_svhn(const fg_dataset *ds, int n) {
  cr_assert_eq(ds->n, n);
  cr_assert(ds->c == 3 && ds->h == 32 && ds->w == 32 && ds->classes == 10 && ds->dtype == FG_U8);
  const uint8_t *px = fg_dataset_pixels_u8(ds);
  for (int i = 0; i < n; i++) {
    cr_assert_eq(fg_dataset_labels(ds)[i], svhn_label(i) % 10, "label %d", i);
    for (int c = 0; c < 3; c++)
      for (int row = 0; row < 32; row++)
        for (int col = 0; col < 32; col++)
          cr_assert_eq(px[((i * 3 + c) * 32 + row) * 32 + col], svhn_pixel(i, c, row, col),
                       "image %d channel %d (%d, %d)", i, c, row, col);
  }
}

/* ------------------------------------------------------------------------------------------ */
/* SVHN round trips                                                                            */

Test(data_svhn, uncompressed_little_endian) {
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  o.extra_vars = 1;
  buf b = svhn_mat(&o);
  char *path = fgt_join(f.dir, "train_32x32.mat");
  fgt_write_file(path, b.p, b.n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_svhn(path, &f.ledger, &ds));
  check_svhn(&ds, SVHN_N);
  cr_assert_eq(fg_dataset_labels(&ds)[1], 0, "label 10 is the digit 0");
  cr_assert_str_eq(ds.name, "svhn");
  fg_dataset_free(&ds);
  free(b.p);
  free(path);
  fgt_fixture_close(&f);
}

Test(data_svhn, compressed_y_first_stored_as_uint8) {
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  o.compressed = o.y_first = o.y_as_uint8 = o.extra_vars = 1;
  buf b = svhn_mat(&o);
  char *path = fgt_join(f.dir, "test_32x32.mat");
  fgt_write_file(path, b.p, b.n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_svhn_dir(f.dir, 0, &f.ledger, &ds));
  check_svhn(&ds, SVHN_N);
  cr_assert_str_eq(ds.name, "svhn-test");
  fg_dataset_free(&ds);
  free(b.p);
  free(path);
  fgt_fixture_close(&f);
}

Test(data_svhn, big_endian_both_variants) {
  fgt_fixture f = fgt_fixture_open();
  for (int compressed = 0; compressed < 2; compressed++) {
    svhn_opts o = svhn_defaults();
    o.big = 1;
    o.compressed = compressed;
    o.extra_vars = 1;
    buf b = svhn_mat(&o);
    char *path = fgt_join(f.dir, "be.mat");
    fgt_write_file(path, b.p, b.n, 0);
    fg_dataset ds;
    FGT_OK(fg_dataset_load_svhn(path, &f.ledger, &ds));
    check_svhn(&ds, SVHN_N);
    fg_dataset_free(&ds);
    free(b.p);
    free(path);
  }
  fgt_fixture_close(&f);
}

Test(data_svhn, single_image_and_small_label_element) {
  /* One image: y [1, 1] as miUINT8 is a small data element (1 byte in the tag). */
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  o.n_x = o.n_y = 1;
  o.y_as_uint8 = 1;
  buf b = svhn_mat(&o);
  char *path = fgt_join(f.dir, "one.mat");
  fgt_write_file(path, b.p, b.n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_svhn(path, &f.ledger, &ds));
  check_svhn(&ds, 1);
  fg_dataset_free(&ds);
  free(b.p);
  free(path);
  fgt_fixture_close(&f);
}

Test(data_svhn, catalog_entry_and_half_normalisation) {
  fgt_fixture f = fgt_fixture_open();
  const fg_dataset_info *info = fg_dataset_info_find("svhn");
  cr_assert_not_null(info);
  cr_assert(info->c == 3 && info->h == 32 && info->w == 32 && info->classes == 10);
  cr_assert_str_eq(info->normalize, "half");
  cr_assert(info->train_aug.pad == 0 && info->train_aug.flip == 0);
  cr_assert_not_null(strstr(fg_dataset_names(), "svhn"));
  svhn_opts o = svhn_defaults();
  o.compressed = 1;
  buf b = svhn_mat(&o);
  char *path = fgt_join(f.dir, "train_32x32.mat");
  fgt_write_file(path, b.p, b.n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_named("svhn", f.dir, 1, &f.ledger, &ds));
  cr_assert_str_eq(ds.name, "svhn-train");
  fg_normalize norm;
  FGT_OK(fg_normalize_preset(info->normalize, &norm));
  float x[2 * 3 * 32 * 32];
  int32_t y[2];
  fg_tensor tx = fg_tensor_4d(x, 2, 3, 32, 32);
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, (const int64_t[1]){2});
  fg_dataset_view v = fg_dataset_view_all(&ds);
  FGT_OK(fgt_batch_fill(&v, NULL, 0, &norm, NULL, 0, &tx, &ty));
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 3; c++)
      for (int p = 0; p < 1024; p += 97) {
        const double want = ((double)svhn_pixel(i, c, p / 32, p % 32) / 255.0 - 0.5) / 0.5;
        cr_assert(fabs(x[(i * 3 + c) * 1024 + p] - want) <= 1e-6, "x = %g, expected %g",
                  (double)x[(i * 3 + c) * 1024 + p], want);
      }
  cr_assert(y[0] == 1 && y[1] == 0);
  fg_dataset_free(&ds);
  free(b.p);
  free(path);
  fgt_fixture_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* SVHN errors                                                                                 */

/* Loads `b` from a file named `name`; expects `want` naming the file and containing `what`. */
static void expect_svhn_error(fgt_fixture *f, const buf *b, const char *name, fg_status want,
                              const char *what) {
  char *path = fgt_join(f->dir, name);
  fgt_write_file(path, b->p, b->n, 0);
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_svhn(path, &f->ledger, &ds), want, path, what);
  cr_assert_eq(f->ledger.current, 0, "%s: ledger holds %zu bytes after the failure", name,
               f->ledger.current);
  cr_assert_null(ds.pixels.ptr);
  free(path);
}

Test(data_svhn, truncated_files_are_rejected) {
  fgt_fixture f = fgt_fixture_open();
  for (int compressed = 0; compressed < 2; compressed++) {
    svhn_opts o = svhn_defaults();
    o.compressed = compressed;
    buf b = svhn_mat(&o);
    const size_t full = b.n;
    const size_t cuts[] = {0, 60, 127, 128, 131, 136, 200, full / 2, full - 9, full - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      buf t = {b.p, cuts[i], 0};
      expect_svhn_error(&f, &t, "cut.mat", FG_ERR_FORMAT, NULL);
    }
    free(b.p);
  }
  fgt_fixture_close(&f);
}

Test(data_svhn, corrupt_compressed_data_is_rejected) {
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  o.compressed = 1;
  buf b = svhn_mat(&o);
  /* Damage the middle of X's deflate stream (the first element after the header) and, in a
   * second file, only its final checksum. */
  buf bad = {malloc(b.n), b.n, 0};
  memcpy(bad.p, b.p, b.n);
  for (size_t i = 0; i < 16; i++) bad.p[200 + i] ^= 0x5a;
  expect_svhn_error(&f, &bad, "corrupt.mat", FG_ERR_FORMAT, NULL);
  memcpy(bad.p, b.p, b.n);
  uint32_t x_bytes;
  memcpy(&x_bytes, b.p + 128 + 4, 4); /* little-endian file on a little-endian host */
  bad.p[128 + 8 + x_bytes - 1] ^= 0xff;
  expect_svhn_error(&f, &bad, "checksum.mat", FG_ERR_FORMAT, "compressed element 1");
  free(bad.p);
  free(b.p);
  /* The checksum of a variable that is skipped unread (z_scale, the first element) is still
   * checked: the rest of its stream is inflated before moving on. */
  o.extra_vars = 1;
  b = svhn_mat(&o);
  memcpy(&x_bytes, b.p + 128 + 4, 4);
  b.p[128 + 8 + x_bytes - 1] ^= 0xff;
  expect_svhn_error(&f, &b, "skipped.mat", FG_ERR_FORMAT, "compressed element 1 (variable 'z_scale')");
  free(b.p);
  fgt_fixture_close(&f);
}

Test(data_svhn, wrong_versions_and_headers_are_rejected) {
  fgt_fixture f = fgt_fixture_open();
  /* v7.3: MATLAB's header text over an HDF5 container (signature at offset 512). */
  buf v73 = {NULL, 0, 0};
  mat_header(&v73, "MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .");
  v73.p[124] = 0x00;
  v73.p[125] = 0x02;
  unsigned char zeros[384] = {0};
  put(&v73, zeros, sizeof zeros);
  const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  put(&v73, sig, 8);
  put(&v73, zeros, 64);
  expect_svhn_error(&f, &v73, "v73.mat", FG_ERR_FORMAT, "v7.3");
  /* A bare HDF5 file. */
  buf h5 = {NULL, 0, 0};
  put(&h5, sig, 8);
  put(&h5, zeros, 200);
  expect_svhn_error(&f, &h5, "bare.mat", FG_ERR_FORMAT, "HDF5");
  /* Not a MAT-file (a v4 file has no text header). */
  buf junk = {NULL, 0, 0};
  put(&junk, zeros, 300);
  expect_svhn_error(&f, &junk, "v4.mat", FG_ERR_FORMAT, "not a level-5 MAT-file");
  /* A bad byte-order mark. */
  svhn_opts o = svhn_defaults();
  buf b = svhn_mat(&o);
  b.p[126] = 'X';
  expect_svhn_error(&f, &b, "mark.mat", FG_ERR_FORMAT, "byte-order mark");
  free(v73.p);
  free(h5.p);
  free(junk.p);
  free(b.p);
  /* A missing file. */
  char *missing = fgt_join(f.dir, "absent.mat");
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_svhn(missing, &f.ledger, &ds), FG_ERR_IO, missing, "cannot open");
  free(missing);
  fgt_fixture_close(&f);
}

Test(data_svhn, bad_contents_are_rejected) {
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  o.bad_label = 1;
  buf b = svhn_mat(&o);
  expect_svhn_error(&f, &b, "label.mat", FG_ERR_FORMAT, "y(3) = 11");
  free(b.p);

  o = svhn_defaults();
  o.x_channels = 1;
  b = svhn_mat(&o);
  expect_svhn_error(&f, &b, "gray.mat", FG_ERR_FORMAT, "variable 'X' is numeric [32, 32, 1, 5]");
  free(b.p);

  o = svhn_defaults();
  o.omit_y = 1;
  o.compressed = 1;
  b = svhn_mat(&o);
  expect_svhn_error(&f, &b, "noy.mat", FG_ERR_FORMAT, "no variable 'y'");
  free(b.p);

  o = svhn_defaults();
  o.n_y = 4;
  b = svhn_mat(&o);
  expect_svhn_error(&f, &b, "count.mat", FG_ERR_FORMAT, "X holds 5 images but y 4 labels");
  free(b.p);

  o = svhn_defaults();
  o.complex_x = 1;
  b = svhn_mat(&o);
  expect_svhn_error(&f, &b, "complex.mat", FG_ERR_FORMAT, "variable 'X' is non-numeric");
  free(b.p);

  /* A data element whose size disagrees with the dimensions. */
  o = svhn_defaults();
  b = svhn_mat(&o);
  /* X's real part tag follows the 128-byte header, the matrix tag (8), flags (16), dims (8 +
   * 16) and the one-letter name (small element, 8): at 128 + 56; its byte count at + 4. */
  uint32_t bytes;
  memcpy(&bytes, b.p + 128 + 56 + 4, 4);
  cr_assert_eq(bytes, 5u * 3072u);
  bytes -= 1;
  memcpy(b.p + 128 + 56 + 4, &bytes, 4);
  expect_svhn_error(&f, &b, "size.mat", FG_ERR_FORMAT, "15359 data bytes, expected 15360");
  free(b.p);
  fgt_fixture_close(&f);
}

Test(data_svhn, ledger_cap_is_respected) {
  fgt_fixture f = fgt_fixture_open();
  svhn_opts o = svhn_defaults();
  buf b = svhn_mat(&o);
  char *path = fgt_join(f.dir, "cap.mat");
  fgt_write_file(path, b.p, b.n, 0);
  fg_ledger_set_cap(&f.ledger, 4096);
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_svhn(path, &f.ledger, &ds), FG_ERR_BUDGET, path, NULL);
  cr_assert_eq(f.ledger.current, 0);
  free(b.p);
  free(path);
  fgt_fixture_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* STL-10                                                                                      */

enum { STL_IMAGE = 3 * 96 * 96 };

static unsigned stl_pixel(int n, int c, int row, int col) {
  return (unsigned)(n * 31 + c * 17 + row * 3 + col * 7 + (row * col) % 5) % 256u;
}

/* N images in the official layout: channel planes, each column-major. */
static buf stl_images(int n) {
  buf b = {calloc((size_t)n * STL_IMAGE + 1, 1), (size_t)n * STL_IMAGE, 0};
  for (int i = 0; i < n; i++)
    for (int c = 0; c < 3; c++)
      for (int row = 0; row < 96; row++)
        for (int col = 0; col < 96; col++)
          b.p[(size_t)i * STL_IMAGE + (size_t)c * 9216 + (size_t)col * 96 + (size_t)row] =
              (unsigned char)stl_pixel(i, c, row, col);
  return b;
}

static const unsigned char stl_labels[4] = {1, 10, 5, 7};

static void write_stl(const char *dir, const char *split, int n, const unsigned char *labels,
                      int n_labels, int gz) {
  buf x = stl_images(n);
  char name[64];
  snprintf(name, sizeof name, "%s_X.bin", split);
  char *px = fgt_join(dir, name);
  fgt_write_file(px, x.p, x.n, gz);
  snprintf(name, sizeof name, "%s_y.bin", split);
  char *py = fgt_join(dir, name);
  fgt_write_file(py, labels, (size_t)n_labels, gz);
  free(px);
  free(py);
  free(x.p);
}

static void check_stl(const fg_dataset *ds, int n) {
  cr_assert_eq(ds->n, n);
  cr_assert(ds->c == 3 && ds->h == 96 && ds->w == 96 && ds->classes == 10 && ds->dtype == FG_U8);
  const uint8_t *px = fg_dataset_pixels_u8(ds);
  for (int i = 0; i < n; i++) {
    cr_assert_eq(fg_dataset_labels(ds)[i], stl_labels[i] - 1, "label %d", i);
    for (int c = 0; c < 3; c++)
      for (int row = 0; row < 96; row++)
        for (int col = 0; col < 96; col++)
          cr_assert_eq(px[(((size_t)i * 3 + (size_t)c) * 96 + (size_t)row) * 96 + (size_t)col],
                       stl_pixel(i, c, row, col), "image %d channel %d (%d, %d)", i, c, row, col);
  }
}

Test(data_stl10, plain_and_gzipped_roundtrip) {
  fgt_fixture f = fgt_fixture_open();
  write_stl(f.dir, "train", 4, stl_labels, 4, 0);
  write_stl(f.dir, "test", 3, stl_labels, 3, 1);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_stl10_dir(f.dir, 1, &f.ledger, &ds));
  check_stl(&ds, 4);
  cr_assert_str_eq(ds.name, "stl10-train");
  cr_assert_eq(f.ledger.current, fg_region_round(fg_host_device(), 4 * STL_IMAGE) +
                                     fg_region_round(fg_host_device(), 4 * sizeof(int32_t)));
  fg_dataset_free(&ds);
  FGT_OK(fg_dataset_load_stl10_dir(f.dir, 0, &f.ledger, &ds));
  check_stl(&ds, 3);
  cr_assert_str_eq(ds.name, "stl10-test");
  fg_dataset_free(&ds);
  fgt_fixture_close(&f);
}

Test(data_stl10, catalog_entry_and_half_normalisation) {
  fgt_fixture f = fgt_fixture_open();
  const fg_dataset_info *info = fg_dataset_info_find("stl10");
  cr_assert_not_null(info);
  cr_assert(info->c == 3 && info->h == 96 && info->w == 96 && info->classes == 10);
  cr_assert_str_eq(info->normalize, "half");
  cr_assert(info->train_aug.pad == 0 && info->train_aug.flip == 0);
  write_stl(f.dir, "test", 2, stl_labels, 2, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_named("stl10", f.dir, 0, &f.ledger, &ds));
  fg_normalize norm;
  FGT_OK(fg_normalize_preset(info->normalize, &norm));
  float *x = malloc(2 * STL_IMAGE * sizeof *x);
  int32_t y[2];
  fg_tensor tx = fg_tensor_4d(x, 2, 3, 96, 96);
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, (const int64_t[1]){2});
  fg_dataset_view v = fg_dataset_view_all(&ds);
  FGT_OK(fgt_batch_fill(&v, NULL, 0, &norm, NULL, 0, &tx, &ty));
  const int probes[][4] = {{0, 0, 0, 0}, {0, 1, 5, 90}, {1, 2, 95, 3}, {1, 0, 47, 48}};
  for (int k = 0; k < 4; k++) {
    const int *p = probes[k];
    const double want = ((double)stl_pixel(p[0], p[1], p[2], p[3]) / 255.0 - 0.5) / 0.5;
    const float got = x[((p[0] * 3 + p[1]) * 96 + p[2]) * 96 + p[3]];
    cr_assert(fabs(got - want) <= 1e-6, "probe %d: %g, expected %g", k, (double)got, want);
  }
  cr_assert(y[0] == 0 && y[1] == 9);
  free(x);
  fg_dataset_free(&ds);
  fgt_fixture_close(&f);
}

Test(data_stl10, malformed_files_are_rejected) {
  fgt_fixture f = fgt_fixture_open();
  char *px = fgt_join(f.dir, "train_X.bin"), *py = fgt_join(f.dir, "train_y.bin");
  fg_dataset ds;
  /* Image file one byte short of a whole image, plain and gzipped. */
  for (int gz = 0; gz < 2; gz++) {
    buf x = stl_images(2);
    fgt_write_file(px, x.p, x.n - 1, gz);
    fgt_write_file(py, stl_labels, 2, 0);
    fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, px,
                 "not a multiple of the STL-10 image size 27648");
    free(x.p);
  }
  /* Empty image file. */
  fgt_write_file(px, "", 0, 0);
  fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, px, "no images");
  /* Label count disagreeing with the image count, both ways. */
  write_stl(f.dir, "train", 2, stl_labels, 3, 0);
  fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, py,
               "3 labels (one byte each), but");
  write_stl(f.dir, "train", 3, stl_labels, 2, 0);
  fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, py, "holds 3 images");
  /* Labels outside 1..10. */
  const unsigned char zero[2] = {3, 0}, eleven[2] = {11, 2};
  write_stl(f.dir, "train", 2, zero, 2, 0);
  fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, py,
               "label 0 of image 1 is out of range [1, 10]");
  write_stl(f.dir, "train", 2, eleven, 2, 0);
  fgt_assert_error(fg_dataset_load_stl10(px, py, &f.ledger, &ds), FG_ERR_FORMAT, py, "label 11");
  /* A truncated gzip stream. */
  write_stl(f.dir, "train", 2, stl_labels, 2, 1);
  {
    FILE *fp = fopen(px, "rb");
    unsigned char *all = malloc(200000);
    size_t n = fread(all, 1, 200000, fp);
    fclose(fp);
    fgt_write_file(px, all, n / 2, 0);
    free(all);
  }
  fg_status s = fg_dataset_load_stl10(px, py, &f.ledger, &ds);
  cr_assert(s == FG_ERR_FORMAT || s == FG_ERR_IO, "%s: %s", fg_status_name(s), fg_last_error());
  cr_assert(strstr(fg_last_error(), px) != NULL, "%s", fg_last_error());
  /* Missing files. */
  char *absent = fgt_join(f.dir, "absent");
  fgt_assert_error(fg_dataset_load_stl10_dir(absent, 1, &f.ledger, &ds), FG_ERR_IO, "absent/train_X.bin",
               NULL);
  free(absent);
  cr_assert_eq(f.ledger.current, 0);
  free(px);
  free(py);
  fgt_fixture_close(&f);
}
