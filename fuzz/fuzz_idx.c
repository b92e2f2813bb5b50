/* IDX files (engine/data/idx.c) on any bytes. Input: a flags byte (bit 0: gzip the images file,
 * bit 1: gzip the labels file), a 16-bit little-endian length L, then the images file's L bytes
 * and the labels file's bytes. Both are read by fg_dataset_load_idx, and again under
 * Fashion-MNIST's names by its loader (1 x 28 x 28 u8 images, labels < 10). */
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

int fg_fuzz_idx(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  int flags;
  const uint8_t *img, *lab;
  size_t n_img, n_lab;
  if (!fg_fuzz_split(data, size, 2, &flags, &img, &n_img, &lab, &n_lab)) return 0;
  char images[600], labels[600], dir[600];
  fg_fuzz_subdir("idx", dir, sizeof dir);
  fg_fuzz_file("idx/train-images-idx3-ubyte", img, n_img, flags & 1, images, sizeof images);
  fg_fuzz_file("idx/train-labels-idx1-ubyte", lab, n_lab, flags & 2, labels, sizeof labels);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz idx", 0);
  fg_dataset ds;
  fg_clear_error();
  fg_fuzz_check_dataset(fg_dataset_load_idx(images, labels, &ledger, &ds), &ds, &ledger, 0, 0, 0, 0);
  fg_clear_error();
  fg_fuzz_check_dataset(fg_dataset_load_fashion_mnist(dir, 1, &ledger, &ds), &ds, &ledger, 1, 28, 28, 10);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_idx(data, size); }
#endif
