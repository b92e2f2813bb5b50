/* SVHN MAT-files (engine/data/matfile.c, svhn.c) on any bytes: the input is the .mat file. */
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

int fg_fuzz_svhn(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  char path[600];
  fg_fuzz_file("train_32x32.mat", data, size, 0, path, sizeof path);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz svhn", 0);
  fg_dataset ds;
  fg_clear_error();
  fg_status s = fg_dataset_load_svhn(path, &ledger, &ds);
  if (s == FG_OK) {
    fg_fuzz_check(ds.n >= 1 && ds.c == 3 && ds.h == 32 && ds.w == 32, "SVHN images of 3 x 32 x 32");
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
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_svhn(data, size); }
#endif
