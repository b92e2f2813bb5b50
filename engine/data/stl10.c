/* STL-10 binary files (train_X.bin / train_y.bin, test_X.bin / test_y.bin), plain or gzipped.
 *
 * Each image is 3 x 96 x 96 bytes: three channel planes (R, G, B), each stored column-major, so
 * pixel (c, row, col) of image n is byte n*27648 + c*9216 + col*96 + row. The loader transposes
 * every plane to the engine's row-major [C, H, W]. Labels are one byte each, 1..10 in the file,
 * 0..9 in memory. The unlabelled split (unlabeled_X.bin) is not read. */
#include <stdio.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "engine/data/reader.h"

enum { FG_STL10_SIDE = 96, FG_STL10_PLANE = 96 * 96, FG_STL10_IMAGE = 3 * 96 * 96 };

/* Reads `n` images of `path` into pixels [n, 3, 96, 96] (row-major). */
static fg_status read_images(const char *path, uint64_t n, uint8_t *pixels) {
  fg_reader r;
  FG_TRY(fg_reader_open(&r, path));
  fg_status s = FG_OK;
  uint8_t img[FG_STL10_IMAGE];
  for (uint64_t i = 0; i < n && s == FG_OK; i++) {
    uint64_t got = 0;
    if ((s = fg_reader_read(&r, img, FG_STL10_IMAGE, &got)) != FG_OK) break;
    if (got < FG_STL10_IMAGE) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu bytes (%llu images of %d), found %llu%s",
                  path, (unsigned long long)(n * FG_STL10_IMAGE), (unsigned long long)n,
                  FG_STL10_IMAGE, (unsigned long long)r.consumed, r.gz_note);
      break;
    }
    uint8_t *out = pixels + i * FG_STL10_IMAGE;
    for (int c = 0; c < 3; c++)
      for (int col = 0; col < FG_STL10_SIDE; col++)
        for (int row = 0; row < FG_STL10_SIDE; row++)
          out[c * FG_STL10_PLANE + row * FG_STL10_SIDE + col] =
              img[c * FG_STL10_PLANE + col * FG_STL10_SIDE + row];
  }
  fg_reader_close(&r);
  return s;
}

/* Reads `n` label bytes of `path` (1..10) into labels [n] as 0..9. */
static fg_status read_labels(const char *path, uint64_t n, int32_t *labels) {
  fg_reader r;
  FG_TRY(fg_reader_open(&r, path));
  fg_status s = FG_OK;
  uint8_t buf[4096];
  for (uint64_t done = 0; done < n && s == FG_OK;) {
    uint64_t want = n - done < sizeof buf ? n - done : sizeof buf, got = 0;
    if ((s = fg_reader_read(&r, buf, want, &got)) != FG_OK) break;
    if (got < want) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu label bytes, found %llu%s", path,
                  (unsigned long long)n, (unsigned long long)r.consumed, r.gz_note);
      break;
    }
    for (uint64_t j = 0; j < want; j++) {
      if (buf[j] < 1 || buf[j] > 10) {
        s = FG_FAIL(FG_ERR_FORMAT, "%s: label %d of image %llu is out of range [1, 10]", path,
                    buf[j], (unsigned long long)(done + j));
        break;
      }
      labels[done + j] = buf[j] - 1;
    }
    done += want;
  }
  fg_reader_close(&r);
  return s;
}

fg_status fg_dataset_load_stl10(const char *images_path, const char *labels_path,
                                fg_ledger *ledger, fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!images_path || !labels_path || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "STL-10: the images file, the labels file and a ledger are "
                   "required");
  uint64_t image_bytes = 0, label_bytes = 0;
  FG_TRY(fg_reader_content_size(images_path, &image_bytes));
  if (image_bytes == 0)
    return FG_FAIL(FG_ERR_FORMAT, "%s: no images (empty file; STL-10 images are %d bytes)",
                   images_path, FG_STL10_IMAGE);
  if (image_bytes % FG_STL10_IMAGE != 0)
    return FG_FAIL(FG_ERR_FORMAT,
                   "%s: size %llu is not a multiple of the STL-10 image size %d (3 x 96 x 96): "
                   "%llu images and %llu bytes over",
                   images_path, (unsigned long long)image_bytes, FG_STL10_IMAGE,
                   (unsigned long long)(image_bytes / FG_STL10_IMAGE),
                   (unsigned long long)(image_bytes % FG_STL10_IMAGE));
  const uint64_t n = image_bytes / FG_STL10_IMAGE;
  if (n > FG_DATASET_MAX_SAMPLES)
    return FG_FAIL(FG_ERR_FORMAT, "%s: %llu images, more than %d", images_path,
                   (unsigned long long)n, FG_DATASET_MAX_SAMPLES);
  FG_TRY(fg_reader_content_size(labels_path, &label_bytes));
  if (label_bytes != n)
    return FG_FAIL(FG_ERR_FORMAT,
                   "%s: %llu labels (one byte each), but %s holds %llu images: the counts must "
                   "agree",
                   labels_path, (unsigned long long)label_bytes, images_path,
                   (unsigned long long)n);
  fg_status s = fg_region_alloc(&ds->pixels, ledger, fg_host_device(), FG_MEM_DATA,
                                (size_t)(n * FG_STL10_IMAGE), "dataset pixels");
  if (s == FG_OK)
    s = fg_region_alloc(&ds->labels, ledger, fg_host_device(), FG_MEM_DATA,
                        (size_t)n * sizeof(int32_t), "dataset labels");
  if (s != FG_OK) fg_error_prefix("STL-10 from %s", images_path);
  if (s == FG_OK) s = read_images(images_path, n, ds->pixels.ptr);
  if (s == FG_OK) s = read_labels(labels_path, n, ds->labels.ptr);
  if (s != FG_OK) {
    fg_dataset_free(ds);
    return s;
  }
  ds->n = (int64_t)n;
  ds->c = 3;
  ds->h = FG_STL10_SIDE;
  ds->w = FG_STL10_SIDE;
  ds->classes = 10;
  ds->dtype = FG_U8;
  snprintf(ds->name, sizeof ds->name, "stl10");
  return FG_OK;
}

fg_status fg_dataset_load_stl10_dir(const char *dir, int split_train, fg_ledger *ledger,
                                    fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!dir) return FG_FAIL(FG_ERR_INVALID, "STL-10: no directory given");
  char images[4096], labels[4096];
  const char *split = split_train ? "train" : "test";
  snprintf(images, sizeof images, "%s/%s_X.bin", dir, split);
  snprintf(labels, sizeof labels, "%s/%s_y.bin", dir, split);
  FG_TRY(fg_dataset_load_stl10(images, labels, ledger, ds));
  snprintf(ds->name, sizeof ds->name, "stl10-%s", split);
  return FG_OK;
}
