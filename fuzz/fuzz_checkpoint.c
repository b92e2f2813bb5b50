/* The checkpoint readers (fl/checkpoint.h) on any bytes, as a run folder's checkpoint of a small
 * cnn (width 2, Fashion-MNIST shapes) and as its method state (two tensors). A checkpoint that
 * loads is saved again and must load back to the same state and round. */
#include <stdlib.h>
#include <string.h>

#include "engine/base/status.h"
#include "engine/nn/models.h"
#include "fl/checkpoint.h"
#include "fuzz/fuzz.h"

static fg_graph *graph(void) {
  static fg_graph *g;
  if (!g) {
    fg_model_spec spec = {.arch = "cnn", .width = 2, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
    fg_fuzz_check(fg_model_build(&spec, &g) == FG_OK, "the small cnn builds");
  }
  return g;
}

int fg_fuzz_checkpoint(const uint8_t *data, size_t size) {
  fg_fuzz_init();
  fg_graph *g = graph();
  char dir[600], path[700];
  fg_fuzz_subdir("run", dir, sizeof dir);
  fg_fuzz_file("run/checkpoint.safetensors", data, size, 0, path, sizeof path);
  int64_t n = fg_graph_state_numel(g);
  float *state = calloc((size_t)n, sizeof(float)), *again = calloc((size_t)n, sizeof(float));
  int round = 0;
  fg_clear_error();
  fg_status s = fg_checkpoint_load(dir, g, state, &round, "fedavg", 0x1234);
  if (s == FG_OK) {
    fg_fuzz_check(round >= 1 && round <= FG_CHECKPOINT_MAX_ROUND, "a loaded checkpoint's round is a count");
    fg_fuzz_check(fg_checkpoint_save(dir, g, state, round, "fedavg", 0x1234) == FG_OK, "a loaded state saves");
    int round2 = 0;
    fg_fuzz_check(fg_checkpoint_load(dir, g, again, &round2, "fedavg", 0x1234) == FG_OK, "a saved state loads");
    fg_fuzz_check(round2 == round && memcmp(state, again, (size_t)n * sizeof(float)) == 0,
                  "a checkpoint saved and loaded gives back its state");
  } else {
    fg_fuzz_check_message();
  }
  /* the same bytes as the method state of the round found (or 1) */
  fg_fuzz_file("run/method_state.safetensors", data, size, 0, path, sizeof path);
  fg_checkpoint_tensors t;
  fg_fuzz_method_tensors(&t);
  fg_clear_error();
  if (fg_checkpoint_load_tensors(dir, &t, s == FG_OK ? round : 1) != FG_OK) fg_fuzz_check_message();
  free(state);
  free(again);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_checkpoint(data, size); }
#endif
