/* STL-10 binary files (engine/data/stl10.c) on any bytes. Input: a flags byte (bit 0: gzip the
 * images file, bit 1: gzip the labels file), a 24-bit little-endian length L, the images file's
 * L bytes, then the labels file's bytes. */
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

int fg_fuzz_stl10(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  int flags;
  const uint8_t *img, *lab;
  size_t n_img, n_lab;
  if (!fg_fuzz_split(data, size, 3, &flags, &img, &n_img, &lab, &n_lab)) return 0;
  char images[600], labels[600];
  fg_fuzz_file("train_X.bin", img, n_img, flags & 1, images, sizeof images);
  fg_fuzz_file("train_y.bin", lab, n_lab, flags & 2, labels, sizeof labels);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz stl10", 0);
  fg_dataset ds;
  fg_clear_error();
  fg_fuzz_check_dataset(fg_dataset_load_stl10(images, labels, &ledger, &ds), &ds, &ledger, 3, 96, 96, 10);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_stl10(data, size); }
#endif
