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
  fg_fuzz_check_dataset(fg_dataset_load_svhn(path, &ledger, &ds), &ds, &ledger, 3, 32, 32, 10);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_svhn(data, size); }
#endif
