/* STL-10 binary files (engine/data/stl10.c) on any bytes. Input: a flags byte (bit 0: gzip the
 * images file, bit 1: gzip the labels file), a 24-bit little-endian length L, the images file's
 * L bytes, then the labels file's bytes. */
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

int fg_fuzz_stl10(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  if (size < 4) return 0;
  int flags = data[0];
  size_t split = (size_t)data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16;
  data += 4;
  size -= 4;
  if (split > size) split = size;
  char images[600], labels[600];
  fg_fuzz_file("train_X.bin", data, split, flags & 1, images, sizeof images);
  fg_fuzz_file("train_y.bin", data + split, size - split, flags & 2, labels, sizeof labels);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz stl10", 0);
  fg_dataset ds;
  fg_clear_error();
  fg_status s = fg_dataset_load_stl10(images, labels, &ledger, &ds);
  if (s == FG_OK) {
    fg_fuzz_check(ds.n >= 1 && ds.c == 3 && ds.h == 96 && ds.w == 96, "STL-10 images of 3 x 96 x 96");
    const int32_t *y = fg_dataset_labels(&ds);
    for (int64_t i = 0; i < ds.n; i++) fg_fuzz_check(y[i] >= 0 && y[i] < 10, "labels 0..9");
    fg_dataset_free(&ds);
  } else {
    fg_fuzz_check_message();
  }
  fg_fuzz_check(ledger.current == 0, "nothing stays charged");
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_stl10(data, size); }
#endif
