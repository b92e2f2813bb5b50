/* Model weights in safetensors: round trip, models.md names and shapes in the file, and clear
 * errors for a file of another model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/io/safetensors.h"
#include "engine/nn/models.h"
#include "engine/nn/weights.h"

static fg_graph *cnn(double width) {
  fg_model_spec s = {.arch = "cnn", .width = width, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .exits = 0, .depth = 0};
  fg_graph *g;
  FGT_OK(fg_model_build(&s, &g));
  return g;
}

Test(weights, round_trip_and_names) {
  char *dir = fgt_mkdtemp(), path[4096];
  snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
  fg_graph *g = cnn(16);
  int64_t n = fg_graph_state_numel(g);
  float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b);
  fg_graph_init_state(g, 5, a);
  const char *k[] = {"arch"}, *v[] = {"cnn"};
  FGT_OK(fg_weights_save(g, a, path, k, v, 1));
  memset(b, 0, (size_t)n * sizeof *b);
  FGT_OK(fg_weights_load(g, path, b));
  cr_assert_eq(memcmp(a, b, (size_t)n * sizeof *a), 0);
  /* The file itself: models.md names, PyTorch shapes, all 6 BN layers with running stats. */
  fg_st_file *f;
  FGT_OK(fg_st_open(path, &f));
  cr_assert_eq(fg_st_count(f), (size_t)fg_graph_param_count(g));
  const fg_st_entry *e = fg_st_find(f, "block2.conv1.weight");
  cr_assert_not_null(e);
  cr_assert(e->ndim == 4 && e->shape[0] == 32 && e->shape[1] == 16 && e->shape[2] == 3 && e->shape[3] == 3);
  cr_assert_not_null(fg_st_find(f, "block3.bn2.running_var"));
  cr_assert_not_null(fg_st_find(f, "head.weight"));
  cr_assert_str_eq(fg_st_metadata(f, "arch"), "cnn");
  fg_st_close(f);
  free(a);
  free(b);
  fg_graph_free(g);
  fgt_rmtree(dir);
  free(dir);
}

Test(weights, another_model_is_a_clear_error) {
  char *dir = fgt_mkdtemp(), path[4096];
  snprintf(path, sizeof path, "%s/w.safetensors", dir);
  fg_graph *g16 = cnn(16), *g8 = cnn(8);
  float *a = calloc((size_t)fg_graph_state_numel(g16), sizeof *a);
  float *b = calloc((size_t)fg_graph_state_numel(g8), sizeof *b);
  FGT_OK(fg_weights_save(g16, a, path, NULL, NULL, 0));
  cr_assert_eq(fg_weights_load(g8, path, b), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "block1.conv1.weight") != NULL, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), path) != NULL, "%s", fg_last_error());
  /* A file with an extra tensor (a model with exits) is refused too, naming it. */
  fg_model_spec s = {.arch = "cnn", .width = 16, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10, .exits = 1, .depth = 0};
  fg_graph *ge;
  FGT_OK(fg_model_build(&s, &ge));
  float *c = calloc((size_t)fg_graph_state_numel(ge), sizeof *c);
  FGT_OK(fg_weights_save(ge, c, path, NULL, NULL, 0));
  cr_assert_eq(fg_weights_load(g16, path, a), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "exit1") != NULL, "%s", fg_last_error());
  free(a);
  free(b);
  free(c);
  fg_graph_free(g16);
  fg_graph_free(g8);
  fg_graph_free(ge);
  fgt_rmtree(dir);
  free(dir);
}
