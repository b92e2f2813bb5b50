/* CIFAR binary files (engine/data/cifar.c) on any bytes. Input: a flags byte (bit 0: CIFAR-100,
 * else CIFAR-10; bit 1: gzip the file; bit 2: read it twice, as two files), then the file. */
#include "engine/base/status.h"
#include "engine/data/dataset.h"
#include "fuzz/fuzz.h"

int fg_fuzz_cifar(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  if (size < 1) return 0;
  int flags = data[0];
  char path[600];
  fg_fuzz_file("data_batch.bin", data + 1, size - 1, flags & 2, path, sizeof path);
  const char *paths[] = {path, path};
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz cifar", 0);
  fg_dataset ds;
  int variant = flags & 1 ? 100 : 10;
  fg_clear_error();
  fg_status s = fg_dataset_load_cifar(paths, 1 + ((flags >> 2) & 1), variant, &ledger, &ds);
  fg_fuzz_check_dataset(s, &ds, &ledger, 3, 32, 32, variant);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_cifar(data, size); }
#endif
