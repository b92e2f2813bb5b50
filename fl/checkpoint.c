/* Run checkpoints as safetensors with metadata. */
#include "fl/checkpoint.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/safetensors.h"
#include "engine/nn/weights.h"

static void checkpoint_path(const char *dir, char *buf, size_t cap) { snprintf(buf, cap, "%s/checkpoint.safetensors", dir); }

fg_status fg_checkpoint_save(const char *dir, const fg_graph *g, const float *state, int round, const char *method,
                             uint64_t partition_hash) {
  char path[4096], r[32], h[32];
  checkpoint_path(dir, path, sizeof path);
  snprintf(r, sizeof r, "%d", round);
  snprintf(h, sizeof h, "%016" PRIx64, partition_hash);
  const char *keys[] = {"format", "round", "method", "partition"};
  const char *values[] = {"fedgap-checkpoint", r, method, h};
  return fg_weights_save(g, state, path, keys, values, 4);
}

fg_status fg_checkpoint_load(const char *dir, const fg_graph *g, float *state, int *round, const char *method,
                             uint64_t partition_hash) {
  char path[4096], h[32];
  checkpoint_path(dir, path, sizeof path);
  snprintf(h, sizeof h, "%016" PRIx64, partition_hash);
  fg_st_file *f = NULL;
  FG_TRY(fg_st_open(path, &f));
  const char *r = fg_st_metadata(f, "round"), *m = fg_st_metadata(f, "method"), *p = fg_st_metadata(f, "partition");
  fg_status s = FG_OK;
  if (!r || !m || !p)
    s = FG_FAIL(FG_ERR_FORMAT, "%s: not a fedgap checkpoint (no round/method/partition metadata)", path);
  else if (strcmp(m, method) != 0)
    s = FG_FAIL(FG_ERR_CONFIG, "%s: checkpoint of method %s, the configuration runs %s", path, m, method);
  else if (strcmp(p, h) != 0)
    s = FG_FAIL(FG_ERR_CONFIG, "%s: checkpoint of partition %s, the configuration gives %s (different data, "
                               "clients or seed)", path, p, h);
  else
    *round = atoi(r);
  fg_st_close(f);
  FG_TRY(s);
  return fg_weights_load(g, path, state);
}
