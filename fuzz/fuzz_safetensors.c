/* The safetensors reader (engine/io/safetensors.h) on any bytes; a file that opens is read tensor
 * by tensor, written again by the writer, and must read back to the same tensors. */
#include <stdlib.h>
#include <string.h>

#include "engine/base/status.h"
#include "engine/io/safetensors.h"
#include "fuzz/fuzz.h"

static void round_trip(const fg_st_file *f) {
  fg_st_writer w;
  fg_st_writer_init(&w);
  size_t n = fg_st_count(f);
  for (size_t i = 0; i < n; i++) {
    const fg_st_entry *e = fg_st_entry_at(f, i);
    fg_fuzz_check(fg_st_writer_add(&w, e->name, e->dtype, e->ndim, e->shape, e->data) == FG_OK,
                  "an entry read is one the writer takes");
  }
  const char *keys[] = {"format", "round", "method"};
  for (size_t k = 0; k < 3; k++) {
    const char *v = fg_st_metadata(f, keys[k]);
    if (v) fg_fuzz_check(fg_st_writer_set_metadata(&w, keys[k], v) == FG_OK, "metadata read is metadata written");
  }
  char path[600];
  fg_fuzz_path("rt.safetensors", path, sizeof path);
  fg_fuzz_check(fg_st_writer_write(&w, path) == FG_OK, "the writer writes what was read");
  fg_st_writer_free(&w);
  fg_st_file *g = NULL;
  fg_fuzz_check(fg_st_open(path, &g) == FG_OK, "what the writer wrote opens");
  fg_fuzz_check(fg_st_count(g) == n, "the same tensor count");
  for (size_t i = 0; i < n; i++) {
    const fg_st_entry *a = fg_st_entry_at(f, i), *b = fg_st_find(g, a->name);
    fg_fuzz_check(b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes &&
                      memcmp(b->shape, a->shape, (size_t)a->ndim * sizeof a->shape[0]) == 0 &&
                      (a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0),
                  "a tensor reads back unchanged");
  }
  fg_st_close(g);
}

int fg_fuzz_safetensors(const uint8_t *data, size_t size) {
  fg_st_file *f = NULL;
  fg_clear_error();
  if (fg_st_open_memory("fuzz.safetensors", data, size, &f) != FG_OK) {
    fg_fuzz_check_message();
    return 0;
  }
  for (size_t i = 0; i < fg_st_count(f); i++) {
    const fg_st_entry *e = fg_st_entry_at(f, i);
    void *dst = malloc(e->nbytes ? e->nbytes : 1);
    fg_fuzz_check(fg_st_read(f, e->name, e->dtype, e->ndim, e->shape, dst) == FG_OK, "an entry reads as listed");
    free(dst);
  }
  round_trip(f);
  fg_st_close(f);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_safetensors(data, size); }
#endif
