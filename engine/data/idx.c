/* IDX files (the MNIST / Fashion-MNIST format), gzipped or plain. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/data/data_internal.h"
#include "engine/data/dataset.h"
#include "engine/data/reader.h"

enum { FG_IDX_U8 = 0x08, FG_IDX_F32 = 0x0D };

typedef struct idx_header {
  int type;          /* FG_IDX_U8 or FG_IDX_F32 */
  int rank;
  uint64_t dims[4];
  uint64_t header_bytes;
} idx_header;

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static fg_status truncated_header(const fg_reader *r, uint64_t want, uint64_t got) {
  if (r->consumed == 0)
    return FG_FAIL(FG_ERR_FORMAT, "%s: empty file (expected an IDX header of %llu bytes)%s",
                   r->path, (unsigned long long)want, r->gz_note);
  return FG_FAIL(FG_ERR_FORMAT, "%s: truncated IDX header: expected %llu bytes, found %llu%s",
                 r->path, (unsigned long long)want, (unsigned long long)got, r->gz_note);
}

/* Reads and checks the magic and dims of an IDX file whose role is "images" (type u8 or f32,
 * rank 3 or 4) or "labels" (type u8, rank 1). */
static fg_status idx_read_header(fg_reader *r, int is_labels, idx_header *h) {
  memset(h, 0, sizeof *h);
  unsigned char magic[4];
  uint64_t got = 0;
  FG_TRY(fg_reader_read(r, magic, 4, &got));
  if (got < 4) return truncated_header(r, 4, got);
  uint32_t m = be32(magic);
  const char *expected = is_labels ? "0x00000801 (u8 labels [N])"
                                   : "0x00000803 or 0x00000804 (u8 images), 0x00000d03 or "
                                     "0x00000d04 (float32 images)";
  if (magic[0] != 0 || magic[1] != 0)
    return FG_FAIL(FG_ERR_FORMAT, "%s: wrong magic 0x%08x: not an IDX file (expected %s)", r->path,
                   m, expected);
  h->type = magic[2];
  h->rank = magic[3];
  if (h->type != FG_IDX_U8 && !(h->type == FG_IDX_F32 && !is_labels))
    return FG_FAIL(FG_ERR_FORMAT, "%s: wrong magic 0x%08x: element type 0x%02x is not supported for %s (expected %s)",
                   r->path, m, (unsigned)h->type, is_labels ? "labels" : "images", expected);
  int rank_ok = is_labels ? h->rank == 1 : (h->rank == 3 || h->rank == 4);
  if (!rank_ok)
    return FG_FAIL(FG_ERR_FORMAT, "%s: wrong rank %d in magic 0x%08x (expected %s)", r->path, h->rank,
                   m, is_labels ? "rank 1, [N]" : "rank 3, [N, H, W], or rank 4, [N, C, H, W]");
  unsigned char dims[16];
  uint64_t want = 4 * (uint64_t)h->rank;
  FG_TRY(fg_reader_read(r, dims, want, &got));
  if (got < want) return truncated_header(r, 4 + want, 4 + got);
  for (int i = 0; i < h->rank; i++) h->dims[i] = be32(dims + 4 * i);
  h->header_bytes = 4 + want;
  return FG_OK;
}

/* Checks that `bytes` of content follow the header: exactly for plain files (truncation and
 * trailing data are reported here, before anything is allocated), as an upper bound for gzip. */
static fg_status check_payload_size(const fg_reader *r, const idx_header *h, uint64_t bytes,
                                    const char *what) {
  uint64_t bound = fg_reader_content_bound(r);
  uint64_t avail = bound > h->header_bytes ? bound - h->header_bytes : 0;
  if (!r->compressed) {
    if (avail < bytes)
      return FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu bytes of %s, found %llu", r->path,
                     (unsigned long long)bytes, what, (unsigned long long)avail);
    if (avail > bytes)
      return FG_FAIL(FG_ERR_FORMAT,
                     "%s: trailing data: %llu bytes after the %llu bytes of %s the header announces",
                     r->path, (unsigned long long)(avail - bytes), (unsigned long long)bytes, what);
    return FG_OK;
  }
  if (avail < bytes)
    return FG_FAIL(FG_ERR_FORMAT,
                   "%s: truncated: header announces %llu bytes of %s but a gzip file of %llu bytes "
                   "holds at most %llu",
                   r->path, (unsigned long long)bytes, what, (unsigned long long)r->file_bytes,
                   (unsigned long long)avail);
  return FG_OK;
}

/* Reads exactly `bytes` of payload, then requires the end of the file. */
static fg_status read_payload(fg_reader *r, void *dst, uint64_t bytes, const char *what) {
  uint64_t got = 0;
  FG_TRY(fg_reader_read(r, dst, bytes, &got));
  if (got < bytes)
    return FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu bytes of %s, found %llu%s", r->path,
                   (unsigned long long)bytes, what, (unsigned long long)got, r->gz_note);
  int at_end = 0;
  FG_TRY(fg_reader_at_end(r, &at_end));
  if (!at_end)
    return FG_FAIL(FG_ERR_FORMAT, "%s: trailing data after the %llu bytes of %s the header announces",
                   r->path, (unsigned long long)bytes, what);
  return FG_OK;
}

/* Reads n u8 labels into the int32 array through a small stack buffer. */
static fg_status read_labels(fg_reader *r, int32_t *labels, uint64_t n) {
  unsigned char buf[4096];
  uint64_t done = 0;
  while (done < n) {
    uint64_t want = n - done < sizeof buf ? n - done : sizeof buf;
    uint64_t got = 0;
    FG_TRY(fg_reader_read(r, buf, want, &got));
    for (uint64_t i = 0; i < got; i++) labels[done + i] = buf[i];
    done += got;
    if (got < want)
      return FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu bytes of labels, found %llu%s",
                     r->path, (unsigned long long)n, (unsigned long long)done, r->gz_note);
  }
  int at_end = 0;
  FG_TRY(fg_reader_at_end(r, &at_end));
  if (!at_end)
    return FG_FAIL(FG_ERR_FORMAT, "%s: trailing data after the %llu labels the header announces",
                   r->path, (unsigned long long)n);
  return FG_OK;
}

/* Big-endian float32 in place to host order, all values finite. */
static fg_status convert_floats(const char *path, float *x, uint64_t n) {
  unsigned char *b = (unsigned char *)x;
  for (uint64_t i = 0; i < n; i++) {
    uint32_t u = be32(b + 4 * i);
    float f;
    memcpy(&f, &u, 4);
    if (!isfinite(f))
      return FG_FAIL(FG_ERR_FORMAT, "%s: pixel value %g at element %llu is not finite", path,
                     (double)f, (unsigned long long)i);
    x[i] = f;
  }
  return FG_OK;
}

fg_status fg_idx_load(const char *images_path, const char *labels_path, const fg_idx_expect *expect,
                      fg_ledger *ledger, fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!images_path || !labels_path || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "fg_dataset_load_idx: images path, labels path and ledger are required");
  fg_reader ri, rl;
  memset(&rl, 0, sizeof rl);
  idx_header hi, hl;
  fg_status s = fg_reader_open(&ri, images_path);
  if (s != FG_OK) return s;
  s = fg_reader_open(&rl, labels_path);
  if (s != FG_OK) goto fail;
  if ((s = idx_read_header(&ri, 0, &hi)) != FG_OK) goto fail;
  if ((s = idx_read_header(&rl, 1, &hl)) != FG_OK) goto fail;

  uint64_t n = hi.dims[0];
  uint64_t c = hi.rank == 4 ? hi.dims[1] : 1;
  uint64_t h = hi.dims[hi.rank - 2], w = hi.dims[hi.rank - 1];
  if (n == 0) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: no samples (the header announces 0 images)", images_path);
    goto fail;
  }
  if (hl.dims[0] != n) {
    s = FG_FAIL(FG_ERR_FORMAT, "count mismatch: %s holds %llu images but %s holds %llu labels",
                images_path, (unsigned long long)n, labels_path, (unsigned long long)hl.dims[0]);
    goto fail;
  }
  if (n > FG_DATASET_MAX_SAMPLES) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: %llu images is more than the %d a dataset may hold", images_path,
                (unsigned long long)n, FG_DATASET_MAX_SAMPLES);
    goto fail;
  }
  if (c == 0 || h == 0 || w == 0) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: empty image shape %llux%llux%llu (C x H x W)", images_path,
                (unsigned long long)c, (unsigned long long)h, (unsigned long long)w);
    goto fail;
  }
  if (expect && (c != (uint64_t)expect->c || h != (uint64_t)expect->h || w != (uint64_t)expect->w)) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: images are %llux%llux%llu, expected %dx%dx%d (C x H x W)",
                images_path, (unsigned long long)c, (unsigned long long)h, (unsigned long long)w,
                expect->c, expect->h, expect->w);
    goto fail;
  }
  if (expect && hi.type != FG_IDX_U8) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: float32 images where u8 images are expected", images_path);
    goto fail;
  }
  int ovf = 0;
  uint64_t elem = hi.type == FG_IDX_F32 ? 4 : 1;
  uint64_t numel = fg_mul_u64(fg_mul_u64(fg_mul_u64(n, c, &ovf), h, &ovf), w, &ovf);
  uint64_t pixel_bytes = fg_mul_u64(numel, elem, &ovf);
  if (ovf || pixel_bytes > (uint64_t)SIZE_MAX / 2) {
    s = FG_FAIL(FG_ERR_FORMAT, "%s: absurd header: %llu x %llu x %llu x %llu elements overflow",
                images_path, (unsigned long long)n, (unsigned long long)c, (unsigned long long)h,
                (unsigned long long)w);
    goto fail;
  }
  if ((s = check_payload_size(&ri, &hi, pixel_bytes, "pixels")) != FG_OK) goto fail;
  if ((s = check_payload_size(&rl, &hl, n, "labels")) != FG_OK) goto fail;

  if ((s = fg_region_alloc(&ds->pixels, ledger, fg_host_device(), FG_MEM_DATA, (size_t)pixel_bytes,
                           "dataset pixels")) != FG_OK) {
    fg_error_prefix("%s", images_path);
    goto fail;
  }
  if ((s = fg_region_alloc(&ds->labels, ledger, fg_host_device(), FG_MEM_DATA,
                           (size_t)n * sizeof(int32_t), "dataset labels")) != FG_OK) {
    fg_error_prefix("%s", labels_path);
    goto fail;
  }
  if ((s = read_payload(&ri, ds->pixels.ptr, pixel_bytes, "pixels")) != FG_OK) goto fail;
  if (hi.type == FG_IDX_F32 && (s = convert_floats(images_path, ds->pixels.ptr, numel)) != FG_OK)
    goto fail;
  int32_t *labels = ds->labels.ptr;
  if ((s = read_labels(&rl, labels, n)) != FG_OK) goto fail;
  int max_label = 0;
  for (uint64_t i = 0; i < n; i++) {
    if (expect && labels[i] >= expect->classes) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: label %d of sample %llu is out of range [0, %d)", labels_path,
                  (int)labels[i], (unsigned long long)i, expect->classes);
      goto fail;
    }
    if (labels[i] > max_label) max_label = labels[i];
  }
  fg_reader_close(&ri);
  fg_reader_close(&rl);
  ds->n = (int64_t)n;
  ds->c = (int64_t)c;
  ds->h = (int64_t)h;
  ds->w = (int64_t)w;
  ds->classes = expect ? expect->classes : max_label + 1;
  ds->dtype = hi.type == FG_IDX_F32 ? FG_F32 : FG_U8;
  const char *base = strrchr(images_path, '/');
  snprintf(ds->name, sizeof ds->name, "%s", base ? base + 1 : images_path);
  return FG_OK;

fail:
  fg_reader_close(&ri);
  fg_reader_close(&rl);
  fg_dataset_free(ds);
  return s;
}

fg_status fg_dataset_load_idx(const char *images_path, const char *labels_path, fg_ledger *ledger,
                              fg_dataset *ds) {
  return fg_idx_load(images_path, labels_path, NULL, ledger, ds);
}

/* dir/name.gz when it exists, else dir/name when that exists, else dir/name.gz (whose open
 * error the caller reports). */
static void pick_file(char *out, size_t cap, const char *dir, const char *name) {
  snprintf(out, cap, "%s/%s", dir, name);
  if (access(out, F_OK) == 0) return;
  char plain[4096];
  snprintf(plain, sizeof plain, "%s", out);
  size_t len = strlen(plain);
  if (len > 3 && strcmp(plain + len - 3, ".gz") == 0) plain[len - 3] = '\0';
  if (access(plain, F_OK) == 0) snprintf(out, cap, "%s", plain);
}

fg_status fg_dataset_load_fashion_mnist(const char *dir, int split_train, fg_ledger *ledger,
                                        fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!dir) dir = FG_FASHION_MNIST_DIR;
  const char *prefix = split_train ? "train" : "t10k";
  char images[4096], labels[4096], name[64];
  snprintf(name, sizeof name, "%s-images-idx3-ubyte.gz", prefix);
  pick_file(images, sizeof images, dir, name);
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte.gz", prefix);
  pick_file(labels, sizeof labels, dir, name);
  fg_idx_expect expect = {1, 28, 28, 10};
  fg_status s = fg_idx_load(images, labels, &expect, ledger, ds);
  if (s == FG_ERR_IO)
    fg_error_prefix("Fashion-MNIST (install the Debian package dataset-fashion-mnist or give its "
                    "directory)");
  if (s != FG_OK) return s;
  snprintf(ds->name, sizeof ds->name, "fashion-mnist-%s", split_train ? "train" : "test");
  return FG_OK;
}
