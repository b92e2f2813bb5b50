/* CIFAR-10 / CIFAR-100 binary files, plain or gzipped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "engine/data/reader.h"

enum { FG_CIFAR_PIXELS = 3 * 32 * 32 };

/* Reads `records` records of one file into pixels [records, 3072] and labels [records]. */
static fg_status read_cifar_file(const char *path, int variant, uint64_t records, uint8_t *pixels,
                                 int32_t *labels) {
  fg_reader r;
  FG_TRY(fg_reader_open(&r, path));
  int label_bytes = variant == 100 ? 2 : 1;
  uint64_t record_bytes = (uint64_t)label_bytes + FG_CIFAR_PIXELS;
  fg_status s = FG_OK;
  for (uint64_t i = 0; i < records; i++) {
    unsigned char lab[2];
    uint64_t got_l = 0, got_p = 0;
    if ((s = fg_reader_read(&r, lab, (uint64_t)label_bytes, &got_l)) != FG_OK) break;
    if (got_l == (uint64_t)label_bytes &&
        (s = fg_reader_read(&r, pixels + i * FG_CIFAR_PIXELS, FG_CIFAR_PIXELS, &got_p)) != FG_OK)
      break;
    if (got_l + got_p < record_bytes) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: truncated: expected %llu bytes (%llu records of %llu), found %llu%s",
                  path, (unsigned long long)(records * record_bytes), (unsigned long long)records,
                  (unsigned long long)record_bytes, (unsigned long long)(r.consumed), r.gz_note);
      break;
    }
    int label = variant == 100 ? lab[1] : lab[0];
    if (variant == 100 && lab[0] >= 20) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: coarse label %d of record %llu is out of range [0, 20)", path,
                  lab[0], (unsigned long long)i);
      break;
    }
    if (label >= variant) {
      s = FG_FAIL(FG_ERR_FORMAT, "%s: label %d of record %llu is out of range [0, %d)", path, label,
                  (unsigned long long)i, variant);
      break;
    }
    labels[i] = label;
  }
  if (s == FG_OK) {
    int at_end = 0;
    s = fg_reader_at_end(&r, &at_end);
    if (s == FG_OK && !at_end)
      s = FG_FAIL(FG_ERR_FORMAT, "%s: trailing data after %llu records of %llu bytes", path,
                  (unsigned long long)records, (unsigned long long)record_bytes);
  }
  fg_reader_close(&r);
  return s;
}

fg_status fg_dataset_load_cifar(const char *const *paths, int n_paths, int variant,
                                fg_ledger *ledger, fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (variant != 10 && variant != 100)
    return FG_FAIL(FG_ERR_INVALID, "CIFAR variant %d: expected 10 or 100", variant);
  if (!paths || n_paths <= 0 || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "CIFAR-%d: %d files given: expected at least one, and a ledger",
                   variant, n_paths);
  uint64_t record_bytes = (variant == 100 ? 2 : 1) + (uint64_t)FG_CIFAR_PIXELS;
  uint64_t *records = calloc((size_t)n_paths, sizeof *records);
  if (!records) return FG_FAIL(FG_ERR_OOM, "CIFAR-%d: no memory for %d file sizes", variant, n_paths);
  uint64_t n = 0;
  fg_status s = FG_OK;
  for (int f = 0; f < n_paths && s == FG_OK; f++) {
    if (!paths[f]) {
      s = FG_FAIL(FG_ERR_INVALID, "CIFAR-%d: file %d of %d is NULL", variant, f, n_paths);
      break;
    }
    uint64_t bytes = 0;
    if ((s = fg_reader_content_size(paths[f], &bytes)) != FG_OK) break;
    if (bytes == 0)
      s = FG_FAIL(FG_ERR_FORMAT, "%s: no samples (empty file; CIFAR-%d records are %llu bytes)",
                  paths[f], variant, (unsigned long long)record_bytes);
    else if (bytes % record_bytes != 0)
      s = FG_FAIL(FG_ERR_FORMAT,
                  "%s: size %llu is not a multiple of the CIFAR-%d record size %llu "
                  "(%d label byte%s + 3072 pixel bytes): %llu records and %llu bytes over",
                  paths[f], (unsigned long long)bytes, variant, (unsigned long long)record_bytes,
                  variant == 100 ? 2 : 1, variant == 100 ? "s" : "",
                  (unsigned long long)(bytes / record_bytes),
                  (unsigned long long)(bytes % record_bytes));
    records[f] = bytes / record_bytes;
    n += records[f];
    if (s == FG_OK && n > FG_DATASET_MAX_SAMPLES)
      s = FG_FAIL(FG_ERR_FORMAT, "%s: more than %d CIFAR records in all", paths[f],
                  FG_DATASET_MAX_SAMPLES);
  }
  if (s == FG_OK) {
    s = fg_region_alloc(&ds->pixels, ledger, fg_host_device(), FG_MEM_DATA,
                        (size_t)(n * FG_CIFAR_PIXELS), "dataset pixels");
    if (s == FG_OK)
      s = fg_region_alloc(&ds->labels, ledger, fg_host_device(), FG_MEM_DATA,
                          (size_t)n * sizeof(int32_t), "dataset labels");
    if (s != FG_OK) fg_error_prefix("CIFAR-%d from %s", variant, paths[0]);
  }
  uint64_t first = 0;
  for (int f = 0; f < n_paths && s == FG_OK; f++) {
    s = read_cifar_file(paths[f], variant, records[f],
                        (uint8_t *)ds->pixels.ptr + first * FG_CIFAR_PIXELS,
                        (int32_t *)ds->labels.ptr + first);
    first += records[f];
  }
  free(records);
  if (s != FG_OK) {
    fg_dataset_free(ds);
    return s;
  }
  ds->n = (int64_t)n;
  ds->c = 3;
  ds->h = 32;
  ds->w = 32;
  ds->classes = variant;
  ds->dtype = FG_U8;
  snprintf(ds->name, sizeof ds->name, "cifar%d", variant);
  return FG_OK;
}

fg_status fg_dataset_load_cifar_dir(const char *dir, int variant, int split_train,
                                    fg_ledger *ledger, fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!dir) return FG_FAIL(FG_ERR_INVALID, "CIFAR-%d: no directory given", variant);
  if (variant != 10 && variant != 100)
    return FG_FAIL(FG_ERR_INVALID, "CIFAR variant %d: expected 10 or 100", variant);
  char buf[6][4096];
  const char *paths[6];
  int count = 0;
  if (variant == 10 && split_train) {
    for (int i = 0; i < 5; i++) snprintf(buf[count++], sizeof buf[0], "%s/data_batch_%d.bin", dir, i + 1);
  } else if (variant == 10) {
    snprintf(buf[count++], sizeof buf[0], "%s/test_batch.bin", dir);
  } else {
    snprintf(buf[count++], sizeof buf[0], "%s/%s.bin", dir, split_train ? "train" : "test");
  }
  for (int i = 0; i < count; i++) paths[i] = buf[i];
  FG_TRY(fg_dataset_load_cifar(paths, count, variant, ledger, ds));
  snprintf(ds->name, sizeof ds->name, "cifar%d-%s", variant, split_train ? "train" : "test");
  return FG_OK;
}
