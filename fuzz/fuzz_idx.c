/* IDX files (engine/data/idx.c) on any bytes. Input: a flags byte (bit 0: gzip the images file,
 * bit 1: gzip the labels file), a 16-bit little-endian length L, then the images file's L bytes
 * and the labels file's bytes. Both are read by fg_dataset_load_idx, and again under
 * Fashion-MNIST's names by its loader (1 x 28 x 28 u8 images, labels < 10). */
#include <string.h>

#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

static void check_loaded(fg_status s, fg_dataset *ds, fg_ledger *ledger) {
  if (s == FG_OK) {
    fg_fuzz_check(ds->n >= 1 && ds->c >= 1 && ds->h >= 1 && ds->w >= 1, "a loaded dataset has samples and a shape");
    const int32_t *y = fg_dataset_labels(ds);
    for (int64_t i = 0; i < ds->n; i++) fg_fuzz_check(y[i] >= 0 && y[i] < ds->classes, "labels within the classes");
    fg_dataset_free(ds);
  } else {
    fg_fuzz_check_message();
  }
  fg_fuzz_check(ledger->current == 0, "nothing stays charged");
}

int fg_fuzz_idx(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  if (size < 3) return 0;
  int flags = data[0];
  size_t split = (size_t)data[1] | (size_t)data[2] << 8;
  data += 3;
  size -= 3;
  if (split > size) split = size;
  char images[600], labels[600], dir[600];
  fg_fuzz_subdir("idx", dir, sizeof dir);
  fg_fuzz_file("idx/train-images-idx3-ubyte", data, split, flags & 1, images, sizeof images);
  fg_fuzz_file("idx/train-labels-idx1-ubyte", data + split, size - split, flags & 2, labels, sizeof labels);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz idx", 0);
  fg_dataset ds;
  fg_clear_error();
  check_loaded(fg_dataset_load_idx(images, labels, &ledger, &ds), &ds, &ledger);
  fg_clear_error();
  check_loaded(fg_dataset_load_fashion_mnist(dir, 1, &ledger, &ds), &ds, &ledger);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_idx(data, size); }
#endif
