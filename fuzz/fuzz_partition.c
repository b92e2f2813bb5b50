/* partition.json (fg_partition_read, fl/partition.h) on any bytes, for 4 clients over 64
 * samples of 4 classes (labels i mod 4), with and without the labels. A file that reads is
 * written again (fg_partition_write) and must read back to the same partition. */
#include <string.h>

#include "engine/base/status.h"
#include "fl/partition.h"
#include "fuzz/fuzz.h"

enum { CLIENTS = 4, SAMPLES = 64, CLASSES = 4 };

int fg_fuzz_partition(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  int32_t labels[SAMPLES];
  for (int i = 0; i < SAMPLES; i++) labels[i] = i % CLASSES;
  char path[600], again_path[600];
  fg_fuzz_file("partition.json", data, size, 0, path, sizeof path);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "fuzz partition", 0);
  for (int with_labels = 0; with_labels < 2; with_labels++) {
    fg_partition p;
    fg_clear_error();
    fg_status s = fg_partition_read(path, CLIENTS, SAMPLES, CLASSES, with_labels ? labels : NULL, &ledger, &p);
    if (s != FG_OK) {
      fg_fuzz_check_message();
      fg_fuzz_check(ledger.current == 0, "a failed read keeps nothing charged");
      continue;
    }
    fg_fuzz_path("again.json", again_path, sizeof again_path);
    fg_status w = fg_partition_write(&p, labels, CLASSES, again_path);
    fg_fuzz_check(w == FG_OK, "a partition read writes again");
    fg_partition q;
    fg_fuzz_check(fg_partition_read(again_path, CLIENTS, SAMPLES, CLASSES, labels, &ledger, &q) == FG_OK,
                  "a partition written reads back");
    int64_t n = ((const int64_t *)p.offset.ptr)[CLIENTS];
    fg_fuzz_check(q.hash == p.hash &&
                      memcmp(q.offset.ptr, p.offset.ptr, (CLIENTS + 1) * sizeof(int64_t)) == 0 &&
                      memcmp(q.index.ptr, p.index.ptr, (size_t)n * sizeof(uint32_t)) == 0,
                  "a partition reads back unchanged");
    fg_partition_free(&q);
    fg_partition_free(&p);
  }
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_partition(data, size); }
#endif
