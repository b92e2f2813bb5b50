/* Dataset loaders: IDX (u8 and float, plain and gzipped) and CIFAR-10/100 round trips on files
 * written here, every error case with its status and a message naming the file, truncation at
 * every length, header sizes that must fail before allocating, ledger caps, the concatenation of
 * two datasets (the train + test pool), and (where the Debian package is installed) the real
 * Fashion-MNIST. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/data/dataset.h"

/* ------------------------------------------------------------------------------------------ */
/* File writing helpers. */

typedef struct blob {
  unsigned char *p;
  size_t n;
} blob;

static void blob_put(blob *b, const void *src, size_t n) {
  b->p = realloc(b->p, b->n + n + 1);
  cr_assert_not_null(b->p);
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

static void blob_be32(blob *b, uint32_t v) {
  unsigned char q[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  blob_put(b, q, 4);
}

/* IDX header: magic 0x0000TTRR then the dims. */
static blob idx_header(int type, int rank, const uint32_t *dims) {
  blob b = {NULL, 0};
  blob_be32(&b, (uint32_t)(type << 8 | rank));
  for (int i = 0; i < rank; i++) blob_be32(&b, dims[i]);
  return b;
}

static blob read_file(const char *path) {
  blob b = {NULL, 0};
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "fopen %s", path);
  unsigned char buf[4096];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, f)) > 0) blob_put(&b, buf, k);
  fclose(f);
  return b;
}

static void random_bytes(unsigned char *p, size_t n, uint64_t seed) {
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 1, 0);
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(fg_rng_u32(&r) & 0xff);
}

/* A u8 IDX images file [n, h, w] (rank 3) with random pixels, and the pixels. */
static unsigned char *write_idx_u8(const char *path, uint32_t n, uint32_t h, uint32_t w, int gz,
                                   uint64_t seed) {
  uint32_t dims[3] = {n, h, w};
  blob b = idx_header(0x08, 3, dims);
  size_t bytes = (size_t)n * h * w;
  unsigned char *px = malloc(bytes + 1);
  random_bytes(px, bytes, seed);
  blob_put(&b, px, bytes);
  fgt_write_file(path, b.p, b.n, gz);
  free(b.p);
  return px;
}

static void write_idx_labels(const char *path, const unsigned char *labels, uint32_t n, int gz) {
  uint32_t dims[1] = {n};
  blob b = idx_header(0x08, 1, dims);
  blob_put(&b, labels, n);
  fgt_write_file(path, b.p, b.n, gz);
  free(b.p);
}

/* ------------------------------------------------------------------------------------------ */
/* Round trips. */

Test(data_idx, u8_roundtrip_plain_and_gzip) {
  fgt_fixture f = fgt_fixture_open();
  for (int gz = 0; gz < 2; gz++) {
    char *img = fgt_join(f.dir, gz ? "img.gz" : "img"), *lab = fgt_join(f.dir, gz ? "lab.gz" : "lab");
    const uint32_t n = 7, h = 5, w = 3;
    unsigned char *px = write_idx_u8(img, n, h, w, gz, 11 + gz);
    unsigned char labels[7] = {0, 3, 1, 2, 3, 0, 1};
    write_idx_labels(lab, labels, n, gz);
    fg_dataset ds;
    FGT_OK(fg_dataset_load_idx(img, lab, &f.ledger, &ds));
    cr_assert_eq(ds.n, 7);
    cr_assert_eq(ds.c, 1);
    cr_assert_eq(ds.h, 5);
    cr_assert_eq(ds.w, 3);
    cr_assert_eq(ds.classes, 4);
    cr_assert_eq(ds.dtype, FG_U8);
    cr_assert_eq(memcmp(fg_dataset_pixels_u8(&ds), px, n * h * w), 0);
    for (uint32_t i = 0; i < n; i++) cr_assert_eq(fg_dataset_labels(&ds)[i], labels[i]);
    cr_assert_eq(f.ledger.by_cat[FG_MEM_DATA],
                 fg_region_round(fg_host_device(), n * h * w) +
                     fg_region_round(fg_host_device(), n * sizeof(int32_t)));
    cr_assert_str_eq(ds.name, gz ? "img.gz" : "img");
    fg_dataset_free(&ds);
    cr_assert_eq(f.ledger.current, 0);
    free(px);
    free(img);
    free(lab);
  }
  fgt_fixture_close(&f);
}

Test(data_idx, float_rank4_roundtrip_plain_and_gzip) {
  fgt_fixture f = fgt_fixture_open();
  const uint32_t dims[4] = {3, 2, 4, 5};
  const size_t numel = 3 * 2 * 4 * 5;
  float vals[120];
  fgt_fill_uniform(vals, numel, 5, -3.0f, 3.0f);
  vals[7] = 0.0f;
  vals[8] = -1e-30f;
  blob b = idx_header(0x0D, 4, dims);
  for (size_t i = 0; i < numel; i++) {
    uint32_t u;
    memcpy(&u, &vals[i], 4);
    blob_be32(&b, u);
  }
  unsigned char labels[3] = {2, 0, 1};
  for (int gz = 0; gz < 2; gz++) {
    char *img = fgt_join(f.dir, gz ? "f.gz" : "f"), *lab = fgt_join(f.dir, gz ? "l.gz" : "l");
    fgt_write_file(img, b.p, b.n, gz);
    write_idx_labels(lab, labels, 3, gz);
    fg_dataset ds;
    FGT_OK(fg_dataset_load_idx(img, lab, &f.ledger, &ds));
    cr_assert_eq(ds.dtype, FG_F32);
    cr_assert(ds.n == 3 && ds.c == 2 && ds.h == 4 && ds.w == 5);
    cr_assert_eq(ds.classes, 3);
    for (size_t i = 0; i < numel; i++)
      cr_assert(fg_dataset_pixels_f32(&ds)[i] == vals[i], "element %zu: %g != %g", i,
                (double)fg_dataset_pixels_f32(&ds)[i], (double)vals[i]);
    for (int i = 0; i < 3; i++) cr_assert_eq(fg_dataset_labels(&ds)[i], labels[i]);
    fg_dataset_free(&ds);
    free(img);
    free(lab);
  }
  free(b.p);
  fgt_fixture_close(&f);
}

/* CIFAR records: label byte(s) then 3072 random pixels; returns the file contents. */
static blob cifar_records(int variant, int count, const int *fine, uint64_t seed) {
  blob b = {NULL, 0};
  unsigned char px[3072];
  for (int i = 0; i < count; i++) {
    if (variant == 100) {
      unsigned char coarse = (unsigned char)(fine[i] % 20);
      blob_put(&b, &coarse, 1);
    }
    unsigned char lab = (unsigned char)fine[i];
    blob_put(&b, &lab, 1);
    random_bytes(px, sizeof px, seed * 1000 + (uint64_t)i);
    blob_put(&b, px, sizeof px);
  }
  return b;
}

static void check_cifar_sample(const fg_dataset *ds, int64_t sample, const blob *file, int record,
                               int variant) {
  size_t rec = variant == 100 ? 3074 : 3073, lb = variant == 100 ? 2 : 1;
  const unsigned char *r = file->p + rec * (size_t)record;
  cr_assert_eq(fg_dataset_labels(ds)[sample], r[lb - 1], "label of sample %lld", (long long)sample);
  cr_assert_eq(memcmp(fg_dataset_pixels_u8(ds) + sample * 3072, r + lb, 3072), 0,
               "pixels of sample %lld", (long long)sample);
}

Test(data_cifar, cifar10_two_files_plain_and_gzip) {
  fgt_fixture f = fgt_fixture_open();
  int la[3] = {9, 0, 4}, lb[2] = {3, 7};
  blob a = cifar_records(10, 3, la, 1), b = cifar_records(10, 2, lb, 2);
  char *pa = fgt_join(f.dir, "a.bin"), *pb = fgt_join(f.dir, "b.bin.gz");
  fgt_write_file(pa, a.p, a.n, 0);
  fgt_write_file(pb, b.p, b.n, 1);
  const char *paths[2] = {pa, pb};
  fg_dataset ds;
  FGT_OK(fg_dataset_load_cifar(paths, 2, 10, &f.ledger, &ds));
  cr_assert(ds.n == 5 && ds.c == 3 && ds.h == 32 && ds.w == 32 && ds.classes == 10);
  cr_assert_eq(ds.dtype, FG_U8);
  for (int i = 0; i < 3; i++) check_cifar_sample(&ds, i, &a, i, 10);
  for (int i = 0; i < 2; i++) check_cifar_sample(&ds, 3 + i, &b, i, 10);
  fg_dataset_free(&ds);
  free(a.p);
  free(b.p);
  free(pa);
  free(pb);
  fgt_fixture_close(&f);
}

Test(data_cifar, cifar10_standard_directory) {
  fgt_fixture f = fgt_fixture_open();
  blob files[6];
  for (int k = 0; k < 6; k++) {
    int labels[2] = {k, (k + 5) % 10};
    files[k] = cifar_records(10, 1 + k % 2, labels, 10 + (uint64_t)k);
    char name[64];
    if (k < 5)
      snprintf(name, sizeof name, "data_batch_%d.bin", k + 1);
    else
      snprintf(name, sizeof name, "test_batch.bin");
    char *p = fgt_join(f.dir, name);
    fgt_write_file(p, files[k].p, files[k].n, 0);
    free(p);
  }
  fg_dataset train, test;
  FGT_OK(fg_dataset_load_cifar_dir(f.dir, 10, 1, &f.ledger, &train));
  FGT_OK(fg_dataset_load_cifar_dir(f.dir, 10, 0, &f.ledger, &test));
  cr_assert_eq(train.n, 1 + 2 + 1 + 2 + 1);
  cr_assert_eq(test.n, 2);
  cr_assert_str_eq(train.name, "cifar10-train");
  int64_t s = 0;
  for (int k = 0; k < 5; k++)
    for (int i = 0; i < 1 + k % 2; i++) check_cifar_sample(&train, s++, &files[k], i, 10);
  for (int i = 0; i < 2; i++) check_cifar_sample(&test, i, &files[5], i, 10);
  fg_dataset_free(&train);
  fg_dataset_free(&test);
  for (int k = 0; k < 6; k++) free(files[k].p);
  fgt_fixture_close(&f);
}

Test(data_cifar, cifar100_uses_fine_labels) {
  fgt_fixture f = fgt_fixture_open();
  int fine[4] = {99, 0, 57, 12};
  blob a = cifar_records(100, 4, fine, 3);
  char *p = fgt_join(f.dir, "train.bin");
  fgt_write_file(p, a.p, a.n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_cifar_dir(f.dir, 100, 1, &f.ledger, &ds));
  cr_assert(ds.n == 4 && ds.classes == 100);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(fg_dataset_labels(&ds)[i], fine[i]);
    check_cifar_sample(&ds, i, &a, i, 100);
  }
  fg_dataset_free(&ds);
  free(a.p);
  free(p);
  fgt_fixture_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* Errors. */

/* A valid pair img/lab (4 images of 6x5, plain) in the fixture's directory. */
typedef struct idx_pair {
  char *img, *lab;
  unsigned char *px;
} idx_pair;

static idx_pair valid_pair(const fgt_fixture *f, int gz) {
  idx_pair p;
  p.img = fgt_join(f->dir, gz ? "vi.gz" : "vi");
  p.lab = fgt_join(f->dir, gz ? "vl.gz" : "vl");
  p.px = write_idx_u8(p.img, 4, 6, 5, gz, 21);
  unsigned char labels[4] = {1, 0, 1, 2};
  write_idx_labels(p.lab, labels, 4, gz);
  return p;
}

static void free_pair(idx_pair *p) {
  free(p->img);
  free(p->lab);
  free(p->px);
}

Test(data_errors, missing_and_unreadable_files) {
  fgt_fixture f = fgt_fixture_open();
  idx_pair p = valid_pair(&f, 0);
  char *none = fgt_join(f.dir, "does-not-exist.gz");
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_idx(none, p.lab, &f.ledger, &ds), FG_ERR_IO, none, strerror(ENOENT));
  cr_assert_eq(ds.pixels.ptr, NULL);
  fgt_assert_error(fg_dataset_load_idx(p.img, none, &f.ledger, &ds), FG_ERR_IO, none, strerror(ENOENT));
  fgt_assert_error(fg_dataset_load_idx(f.dir, p.lab, &f.ledger, &ds), FG_ERR_IO, f.dir, "regular file");
  const char *paths[1] = {none};
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds), FG_ERR_IO, none, strerror(ENOENT));
  fgt_assert_error(fg_dataset_load_cifar_dir(f.dir, 10, 0, &f.ledger, &ds), FG_ERR_IO, "test_batch.bin",
               strerror(ENOENT));
  fgt_assert_error(fg_dataset_load_fashion_mnist(f.dir, 1, &f.ledger, &ds), FG_ERR_IO,
               "train-images-idx3-ubyte.gz", "dataset-fashion-mnist");
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 7, &f.ledger, &ds), FG_ERR_INVALID, NULL, "variant 7");
  cr_assert_eq(f.ledger.charges, 0);
  free(none);
  free_pair(&p);
  fgt_fixture_close(&f);
}

Test(data_errors, wrong_magic_type_and_rank) {
  fgt_fixture f = fgt_fixture_open();
  idx_pair p = valid_pair(&f, 0);
  char *bad = fgt_join(f.dir, "bad");
  fg_dataset ds;
  /* Not an IDX file at all. */
  const char text[] = "hello, this is not an idx file";
  fgt_write_file(bad, text, sizeof text, 0);
  fgt_assert_error(fg_dataset_load_idx(bad, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, bad, "magic");
  /* IDX int32 elements: unsupported type. */
  uint32_t dims3[3] = {4, 6, 5};
  blob b = idx_header(0x0C, 3, dims3);
  fgt_write_file(bad, b.p, b.n, 0);
  free(b.p);
  fgt_assert_error(fg_dataset_load_idx(bad, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, bad, "0x00000c03");
  /* Images of rank 2. */
  uint32_t dims2[2] = {4, 30};
  b = idx_header(0x08, 2, dims2);
  fgt_write_file(bad, b.p, b.n, 0);
  free(b.p);
  fgt_assert_error(fg_dataset_load_idx(bad, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, bad, "rank 2");
  /* Labels passed where images belong, and images where labels belong. */
  fgt_assert_error(fg_dataset_load_idx(p.lab, p.img, &f.ledger, &ds), FG_ERR_FORMAT, p.lab, "rank 1");
  fgt_assert_error(fg_dataset_load_idx(p.img, p.img, &f.ledger, &ds), FG_ERR_FORMAT, p.img, "rank 3");
  /* Float labels. */
  uint32_t dims1[1] = {4};
  b = idx_header(0x0D, 1, dims1);
  blob_put(&b, "0123456789abcdef", 16);
  fgt_write_file(bad, b.p, b.n, 0);
  free(b.p);
  fgt_assert_error(fg_dataset_load_idx(p.img, bad, &f.ledger, &ds), FG_ERR_FORMAT, bad, "labels");
  cr_assert_eq(f.ledger.charges, 0);
  free(bad);
  free_pair(&p);
  fgt_fixture_close(&f);
}

Test(data_errors, truncated_and_trailing_data) {
  fgt_fixture f = fgt_fixture_open();
  for (int gz = 0; gz < 2; gz++) {
    idx_pair p = valid_pair(&f, 0);
    char *bad = fgt_join(f.dir, gz ? "bad.gz" : "bad");
    blob full = read_file(p.img); /* 16 header bytes + 120 pixel bytes */
    cr_assert_eq(full.n, 136);
    fg_dataset ds;
    fgt_write_file(bad, full.p, full.n - 1, gz);
    fgt_assert_error(fg_dataset_load_idx(bad, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, bad,
                 gz ? "expected 120 bytes of pixels" : "expected 120 bytes of pixels, found 119");
    if (gz) cr_assert(strstr(fg_last_error(), "found 119") != NULL, "%s", fg_last_error());
    blob more = {NULL, 0};
    blob_put(&more, full.p, full.n);
    blob_put(&more, "xyz", 3);
    fgt_write_file(bad, more.p, more.n, gz);
    fgt_assert_error(fg_dataset_load_idx(bad, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, bad, "trailing");
    /* Labels: one short, one extra. */
    blob lab = read_file(p.lab);
    fgt_write_file(bad, lab.p, lab.n - 1, gz);
    fgt_assert_error(fg_dataset_load_idx(p.img, bad, &f.ledger, &ds), FG_ERR_FORMAT, bad,
                 gz ? "expected 4 bytes of labels" : "expected 4 bytes of labels, found 3");
    blob_put(&lab, "\x01", 1);
    fgt_write_file(bad, lab.p, lab.n, gz);
    fgt_assert_error(fg_dataset_load_idx(p.img, bad, &f.ledger, &ds), FG_ERR_FORMAT, bad, "trailing");
    free(lab.p);
    free(more.p);
    free(full.p);
    free(bad);
    free_pair(&p);
  }
  fgt_fixture_close(&f);
}

Test(data_errors, count_mismatch_and_zero_samples) {
  fgt_fixture f = fgt_fixture_open();
  idx_pair p = valid_pair(&f, 1);
  char *lab5 = fgt_join(f.dir, "lab5"), *img0 = fgt_join(f.dir, "img0"), *lab0 = fgt_join(f.dir, "lab0");
  unsigned char labels[5] = {0, 1, 2, 3, 4};
  write_idx_labels(lab5, labels, 5, 0);
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_idx(p.img, lab5, &f.ledger, &ds), FG_ERR_FORMAT, lab5, "4 images");
  cr_assert(strstr(fg_last_error(), p.img) && strstr(fg_last_error(), "5 labels"), "%s",
            fg_last_error());
  free(write_idx_u8(img0, 0, 6, 5, 0, 1));
  write_idx_labels(lab0, labels, 0, 0);
  fgt_assert_error(fg_dataset_load_idx(img0, lab0, &f.ledger, &ds), FG_ERR_FORMAT, img0, "no samples");
  /* Zero height. */
  free(write_idx_u8(img0, 4, 0, 5, 0, 1));
  fgt_assert_error(fg_dataset_load_idx(img0, p.lab, &f.ledger, &ds), FG_ERR_FORMAT, img0, "empty image");
  cr_assert_eq(f.ledger.charges, 0);
  free(lab5);
  free(img0);
  free(lab0);
  free_pair(&p);
  fgt_fixture_close(&f);
}

Test(data_errors, absurd_header_sizes_fail_before_allocating) {
  fgt_fixture f = fgt_fixture_open();
  idx_pair p = valid_pair(&f, 0);
  char *big = fgt_join(f.dir, "big"), *bigl = fgt_join(f.dir, "bigl");
  for (int gz = 0; gz < 2; gz++) {
    /* 2^31 images of 28x28 announced in a file of about 1 KB. */
    uint32_t dims[3] = {1u << 31, 28, 28};
    blob b = idx_header(0x08, 3, dims);
    unsigned char junk[1000];
    random_bytes(junk, sizeof junk, 3);
    blob_put(&b, junk, sizeof junk);
    fgt_write_file(big, b.p, b.n, gz);
    free(b.p);
    uint32_t ldims[1] = {1u << 31};
    b = idx_header(0x08, 1, ldims);
    blob_put(&b, junk, sizeof junk);
    fgt_write_file(bigl, b.p, b.n, gz);
    free(b.p);
    fg_dataset ds;
    fg_status s = fg_dataset_load_idx(big, bigl, &f.ledger, &ds);
    fgt_assert_error(s, FG_ERR_FORMAT, big, NULL);
    /* 2^30 images of 28x28: within the sample limit, 842 GB of pixels. */
    dims[0] = 1u << 30;
    b = idx_header(0x08, 3, dims);
    blob_put(&b, junk, sizeof junk);
    fgt_write_file(big, b.p, b.n, gz);
    free(b.p);
    ldims[0] = 1u << 30;
    b = idx_header(0x08, 1, ldims);
    blob_put(&b, junk, sizeof junk);
    fgt_write_file(bigl, b.p, b.n, gz);
    free(b.p);
    fgt_assert_error(fg_dataset_load_idx(big, bigl, &f.ledger, &ds), FG_ERR_FORMAT, big,
                 gz ? "841813590016 bytes of pixels" : "expected 841813590016 bytes of pixels, found 1000");
    /* Overflowing products: 2 images of (2^32 - 1)^3 floats. */
    uint32_t huge[4] = {2, 0xffffffffu, 0xffffffffu, 0xffffffffu};
    b = idx_header(0x0D, 4, huge);
    fgt_write_file(big, b.p, b.n, gz);
    free(b.p);
    ldims[0] = 2;
    b = idx_header(0x08, 1, ldims);
    blob_put(&b, "\0\1", 2);
    fgt_write_file(bigl, b.p, b.n, gz);
    free(b.p);
    fgt_assert_error(fg_dataset_load_idx(big, bigl, &f.ledger, &ds), FG_ERR_FORMAT, big, "overflow");
    /* Just below the sample limit, with a matching label count, but tiny extents. */
    uint32_t many[3] = {0x7fffffffu, 1, 1};
    b = idx_header(0x08, 3, many);
    fgt_write_file(big, b.p, b.n, gz);
    free(b.p);
    ldims[0] = 0x7fffffffu;
    b = idx_header(0x08, 1, ldims);
    fgt_write_file(bigl, b.p, b.n, gz);
    free(b.p);
    fgt_assert_error(fg_dataset_load_idx(big, bigl, &f.ledger, &ds), FG_ERR_FORMAT, big, "truncated");
  }
  cr_assert_eq(f.ledger.charges, 0, "%llu allocations were made", (unsigned long long)f.ledger.charges);
  cr_assert_eq(f.ledger.peak, 0);
  free(big);
  free(bigl);
  free_pair(&p);
  fgt_fixture_close(&f);
}

Test(data_errors, ledger_cap_passes_through) {
  fgt_fixture f = fgt_fixture_open();
  idx_pair p = valid_pair(&f, 1);
  fg_dataset ds;
  fg_ledger_set_cap(&f.ledger, 100); /* the pixels alone need 128 after rounding */
  fgt_assert_error(fg_dataset_load_idx(p.img, p.lab, &f.ledger, &ds), FG_ERR_BUDGET, p.img, NULL);
  fg_ledger_set_cap(&f.ledger, 130); /* pixels fit, labels do not */
  fgt_assert_error(fg_dataset_load_idx(p.img, p.lab, &f.ledger, &ds), FG_ERR_BUDGET, p.lab, NULL);
  cr_assert_eq(f.ledger.current, 0);
  int labels[2] = {1, 2};
  blob c = cifar_records(10, 2, labels, 4);
  char *cp = fgt_join(f.dir, "c.bin");
  fgt_write_file(cp, c.p, c.n, 0);
  const char *paths[1] = {cp};
  fg_ledger_set_cap(&f.ledger, 4096);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds), FG_ERR_BUDGET, cp, NULL);
  fg_ledger_set_cap(&f.ledger, 0);
  FGT_OK(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds));
  fg_dataset_free(&ds);
  free(cp);
  free(c.p);
  free_pair(&p);
  fgt_fixture_close(&f);
}

Test(data_errors, labels_out_of_range_and_shapes) {
  fgt_fixture f = fgt_fixture_open();
  char *img = fgt_join(f.dir, "train-images-idx3-ubyte.gz"), *lab = fgt_join(f.dir, "train-labels-idx1-ubyte.gz");
  free(write_idx_u8(img, 3, 28, 28, 1, 4));
  unsigned char labels[3] = {9, 10, 0};
  write_idx_labels(lab, labels, 3, 1);
  fg_dataset ds;
  fgt_assert_error(fg_dataset_load_fashion_mnist(f.dir, 1, &f.ledger, &ds), FG_ERR_FORMAT, lab,
               "label 10 of sample 1 is out of range [0, 10)");
  labels[1] = 3;
  write_idx_labels(lab, labels, 3, 1);
  FGT_OK(fg_dataset_load_fashion_mnist(f.dir, 1, &f.ledger, &ds));
  cr_assert(ds.n == 3 && ds.classes == 10);
  cr_assert_str_eq(ds.name, "fashion-mnist-train");
  fg_dataset_free(&ds);
  /* The generic loader accepts the same label 10 (classes = 11). */
  labels[1] = 10;
  write_idx_labels(lab, labels, 3, 1);
  FGT_OK(fg_dataset_load_idx(img, lab, &f.ledger, &ds));
  cr_assert_eq(ds.classes, 11);
  fg_dataset_free(&ds);
  /* Fashion-MNIST test split, plain files, wrong image size. */
  char *timg = fgt_join(f.dir, "t10k-images-idx3-ubyte"), *tlab = fgt_join(f.dir, "t10k-labels-idx1-ubyte");
  free(write_idx_u8(timg, 3, 27, 28, 0, 4));
  labels[1] = 1;
  write_idx_labels(tlab, labels, 3, 0);
  fgt_assert_error(fg_dataset_load_fashion_mnist(f.dir, 0, &f.ledger, &ds), FG_ERR_FORMAT, timg,
               "1x27x28, expected 1x28x28");
  /* CIFAR-10 label 10, CIFAR-100 fine label 100 and coarse label 20. */
  char *cp = fgt_join(f.dir, "c.bin");
  const char *paths[1] = {cp};
  int bad10[2] = {4, 10};
  blob c = cifar_records(10, 2, bad10, 5);
  fgt_write_file(cp, c.p, c.n, 0);
  free(c.p);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds), FG_ERR_FORMAT, cp,
               "label 10 of record 1 is out of range [0, 10)");
  int bad100[2] = {100, 3};
  c = cifar_records(100, 2, bad100, 5);
  fgt_write_file(cp, c.p, c.n, 0);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 100, &f.ledger, &ds), FG_ERR_FORMAT, cp,
               "out of range [0, 100)");
  c.p[0] = 20; /* record 0: coarse label 20 with a valid fine label */
  c.p[1] = 99;
  fgt_write_file(cp, c.p, c.n, 0);
  free(c.p);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 100, &f.ledger, &ds), FG_ERR_FORMAT, cp,
               "coarse label 20");
  free(cp);
  free(img);
  free(lab);
  free(timg);
  free(tlab);
  fgt_fixture_close(&f);
}

Test(data_errors, cifar_sizes_and_float_values) {
  fgt_fixture f = fgt_fixture_open();
  char *cp = fgt_join(f.dir, "c.bin");
  const char *paths[1] = {cp};
  fg_dataset ds;
  int labels[2] = {1, 2};
  blob c = cifar_records(10, 2, labels, 6);
  fgt_write_file(cp, c.p, c.n - 5, 0);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds), FG_ERR_FORMAT, cp,
               "size 6141 is not a multiple of the CIFAR-10 record size 3073");
  /* A CIFAR-10 file read as CIFAR-100. */
  fgt_write_file(cp, c.p, c.n, 0);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 100, &f.ledger, &ds), FG_ERR_FORMAT, cp, "3074");
  fgt_write_file(cp, c.p, 0, 0);
  fgt_assert_error(fg_dataset_load_cifar(paths, 1, 10, &f.ledger, &ds), FG_ERR_FORMAT, cp, "no samples");
  free(c.p);
  /* Non-finite floats in an IDX float file. */
  char *img = fgt_join(f.dir, "nan"), *lab = fgt_join(f.dir, "nanl");
  uint32_t dims[3] = {1, 1, 2};
  blob b = idx_header(0x0D, 3, dims);
  blob_be32(&b, 0x3f800000u); /* 1.0 */
  blob_be32(&b, 0x7fc00000u); /* NaN */
  fgt_write_file(img, b.p, b.n, 0);
  free(b.p);
  unsigned char l[1] = {0};
  write_idx_labels(lab, l, 1, 0);
  fgt_assert_error(fg_dataset_load_idx(img, lab, &f.ledger, &ds), FG_ERR_FORMAT, img, "not finite");
  /* A corrupt gzip stream: damage the compressed bytes in the middle. */
  idx_pair p = valid_pair(&f, 1);
  blob z = read_file(p.img);
  for (size_t i = 20; i < z.n - 12; i += 3) z.p[i] ^= 0x5a;
  fgt_write_file(img, z.p, z.n, 0);
  fg_status s = fg_dataset_load_idx(img, p.lab, &f.ledger, &ds);
  fgt_assert_error(s, FG_ERR_FORMAT, img, NULL);
  free(z.p);
  free_pair(&p);
  free(img);
  free(lab);
  free(cp);
  fgt_fixture_close(&f);
}

/* Every length of small files; for larger ones (CIFAR records are 3073 bytes) the first and
 * last bytes, both sides of every record boundary, and every 61st length. */
static int cut_length_worth_testing(size_t len, size_t n) {
  if (n <= 512 || len < 24 || len + 24 > n) return 1;
  size_t r = len % 3073;
  return r <= 2 || r >= 3071 || len % 61 == 0;
}

/* Every prefix of a valid file fails cleanly, naming the file; the whole file loads. */
static void truncation_loop(fgt_fixture *f, const char *good, const char *other, int file_is_labels,
                            int cifar) {
  blob full = read_file(good);
  char *cut = fgt_join(f->dir, "cut");
  for (size_t len = 0; len <= full.n; len++) {
    if (!cut_length_worth_testing(len, full.n)) continue;
    fgt_write_file(cut, full.p, len, 0);
    fg_dataset ds;
    fg_status s;
    if (cifar) {
      const char *paths[1] = {cut};
      s = fg_dataset_load_cifar(paths, 1, 10, &f->ledger, &ds);
    } else {
      s = file_is_labels ? fg_dataset_load_idx(other, cut, &f->ledger, &ds)
                         : fg_dataset_load_idx(cut, other, &f->ledger, &ds);
    }
    /* A plain CIFAR file cut at a record boundary is a valid, shorter file. */
    int whole_records = cifar && full.p[0] != 0x1f && len > 0 && len % 3073 == 0;
    if (len < full.n && s == FG_OK && !whole_records)
      cr_assert_fail("%s cut to %zu of %zu bytes loads", good, len, full.n);
    if (len == full.n || whole_records) {
      cr_assert_eq(s, FG_OK, "%zu bytes: %s", len, fg_last_error());
      if (cifar) cr_assert_eq(ds.n, (int64_t)(len / 3073));
      fg_dataset_free(&ds);
    } else {
      fgt_assert_error(s, FG_ERR_FORMAT, cut, NULL);
      cr_assert_eq(ds.pixels.ptr, NULL);
      cr_assert_eq(f->ledger.current, 0);
    }
  }
  free(cut);
  free(full.p);
}

Test(data_errors, truncation_at_every_length) {
  fgt_fixture f = fgt_fixture_open();
  for (int gz = 0; gz < 2; gz++) {
    idx_pair p = valid_pair(&f, gz);
    truncation_loop(&f, p.img, p.lab, 0, 0);
    truncation_loop(&f, p.lab, p.img, 1, 0);
    free_pair(&p);
  }
  int labels[2] = {1, 2};
  char *cp = fgt_join(f.dir, "c.bin");
  for (int gz = 0; gz < 2; gz++) {
    blob c = cifar_records(10, 2, labels, 7);
    fgt_write_file(cp, c.p, c.n, gz);
    free(c.p);
    truncation_loop(&f, cp, NULL, 0, 1);
  }
  free(cp);
  fgt_fixture_close(&f);
}

/* ------------------------------------------------------------------------------------------ */
/* The real Fashion-MNIST, where the Debian package is installed. */

/* ------------------------------------------------------------------------------------------ */
/* Concatenation (the train + test pool). */

/* A u8 dataset loaded from IDX files written here: n images of h x w, labels given. */
static fg_dataset load_written(fgt_fixture *f, const char *name, uint32_t n, uint32_t h, uint32_t w,
                               const unsigned char *labels, uint64_t seed, unsigned char **px) {
  char img_name[64], lab_name[64];
  snprintf(img_name, sizeof img_name, "%s-images", name);
  snprintf(lab_name, sizeof lab_name, "%s-labels", name);
  char *img = fgt_join(f->dir, img_name), *lab = fgt_join(f->dir, lab_name);
  *px = write_idx_u8(img, n, h, w, 0, seed);
  write_idx_labels(lab, labels, n, 0);
  fg_dataset ds;
  FGT_OK(fg_dataset_load_idx(img, lab, &f->ledger, &ds));
  free(img);
  free(lab);
  return ds;
}

Test(data_concat, train_then_test_samples_and_labels) {
  fgt_fixture f = fgt_fixture_open();
  const unsigned char la[5] = {0, 1, 2, 1, 0}, lb[3] = {4, 3, 0};
  unsigned char *pa, *pb;
  fg_dataset a = load_written(&f, "a", 5, 4, 3, la, 31, &pa);
  fg_dataset b = load_written(&f, "b", 3, 4, 3, lb, 32, &pb);
  size_t before = f.ledger.current;
  fg_dataset pool;
  FGT_OK(fg_dataset_concat(&a, &b, &f.ledger, &pool));
  cr_assert_eq(pool.n, 8);
  cr_assert_eq(pool.c, 1);
  cr_assert_eq(pool.h, 4);
  cr_assert_eq(pool.w, 3);
  cr_assert_eq(pool.dtype, FG_U8);
  cr_assert_eq(pool.classes, 5, "the larger class count (b's labels reach 4)");
  cr_assert_str_eq(pool.name, "a-images+b-images");
  for (int i = 0; i < 8; i++) {
    const unsigned char *want = i < 5 ? pa + i * 12 : pb + (i - 5) * 12;
    cr_assert_eq(memcmp(fg_dataset_pixels_u8(&pool) + i * 12, want, 12), 0, "sample %d", i);
    cr_assert_eq(fg_dataset_labels(&pool)[i], i < 5 ? la[i] : lb[i - 5], "label %d", i);
  }
  cr_assert_eq(f.ledger.current - before,
               fg_region_round(fg_host_device(), 8 * 12) + fg_region_round(fg_host_device(), 8 * sizeof(int32_t)));
  fg_dataset_free(&pool);
  cr_assert_eq(f.ledger.current, before);
  fg_dataset_free(&a);
  fg_dataset_free(&b);
  free(pa);
  free(pb);
  fgt_fixture_close(&f);
}

Test(data_concat, mismatches_and_caps_fail_cleanly) {
  fgt_fixture f = fgt_fixture_open();
  const unsigned char la[4] = {0, 1, 0, 1}, lb[2] = {1, 0};
  unsigned char *pa, *pb;
  fg_dataset a = load_written(&f, "a", 4, 4, 3, la, 41, &pa);
  fg_dataset b = load_written(&f, "b", 2, 3, 4, lb, 42, &pb); /* 3 x 4, not 4 x 3 */
  size_t before = f.ledger.current;
  fg_dataset pool;
  fgt_assert_error(fg_dataset_concat(&a, &b, &f.ledger, &pool), FG_ERR_INVALID, "a-images", "same shape");
  cr_assert_null(pool.pixels.ptr);
  cr_assert_eq(pool.n, 0);
  cr_assert_eq(f.ledger.current, before);
  fg_ledger small;
  fg_ledger_init(&small, "small", 64); /* room for the 48 pixel bytes, not for the labels too */
  fgt_assert_error(fg_dataset_concat(&a, &a, &small, &pool), FG_ERR_BUDGET, NULL, NULL);
  cr_assert_eq(small.current, 0);
  cr_assert_null(pool.pixels.ptr);
  fgt_assert_error(fg_dataset_concat(&a, NULL, &f.ledger, &pool), FG_ERR_INVALID, NULL, "missing argument");
  fg_dataset_free(&a);
  fg_dataset_free(&b);
  free(pa);
  free(pb);
  fgt_fixture_close(&f);
}

Test(data_fashion_mnist, installed_package) {
  char probe[512];
  snprintf(probe, sizeof probe, "%s/train-images-idx3-ubyte.gz", FG_FASHION_MNIST_DIR);
  if (access(probe, R_OK) != 0)
    cr_skip_test("%s is not installed (Debian package dataset-fashion-mnist)", probe);
  fgt_setup_cpu(0);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "data", 0);
  fg_dataset train, test;
  FGT_OK(fg_dataset_load_fashion_mnist(NULL, 1, &ledger, &train));
  FGT_OK(fg_dataset_load_fashion_mnist(FG_FASHION_MNIST_DIR, 0, &ledger, &test));
  cr_assert_eq(train.n, 60000);
  cr_assert_eq(test.n, 10000);
  const fg_dataset *both[2] = {&train, &test};
  for (int k = 0; k < 2; k++) {
    const fg_dataset *ds = both[k];
    cr_assert(ds->c == 1 && ds->h == 28 && ds->w == 28 && ds->classes == 10 && ds->dtype == FG_U8);
    int64_t hist[10] = {0};
    for (int64_t i = 0; i < ds->n; i++) {
      int32_t l = fg_dataset_labels(ds)[i];
      cr_assert(l >= 0 && l < 10);
      hist[l]++;
    }
    for (int c = 0; c < 10; c++) cr_assert_eq(hist[c], ds->n / 10, "class %d: %lld", c, (long long)hist[c]);
  }
  /* The first labels of each split, as published (ankle boot, t-shirt, t-shirt, dress, ...). */
  const int first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
  const int first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
  for (int i = 0; i < 10; i++) {
    cr_assert_eq(fg_dataset_labels(&train)[i], first_train[i]);
    cr_assert_eq(fg_dataset_labels(&test)[i], first_test[i]);
  }
  /* The training pixels' mean and std in [0, 1] units are the normalisation constants of
   * models.md (0.2860, 0.3530). */
  double sum = 0.0, sq = 0.0;
  const uint8_t *px = fg_dataset_pixels_u8(&train);
  int64_t numel = train.n * 784;
  for (int64_t i = 0; i < numel; i++) {
    double v = px[i] / 255.0;
    sum += v;
    sq += v * v;
  }
  double mean = sum / (double)numel, std = sqrt(sq / (double)numel - mean * mean);
  cr_assert(fabs(mean - 0.2860) < 5e-5, "mean %.6f", mean);
  cr_assert(fabs(std - 0.3530) < 5e-5, "std %.6f", std);
  fg_dataset_free(&train);
  fg_dataset_free(&test);
  cr_assert_eq(ledger.current, 0);
}
