/* Run checkpoints as safetensors with metadata. */
#include "fl/checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/base/killpoint.h"
#include "engine/io/atomic_file.h"

#include "engine/io/safetensors.h"
#include "engine/nn/weights.h"

static void checkpoint_path(const char *dir, char *buf, size_t cap) { snprintf(buf, cap, "%s/checkpoint.safetensors", dir); }

/* A state with a NaN or an infinity is not a checkpoint: it would replace the last good one. */
static fg_status check_finite(const char *path, const fg_graph *g, const float *state) {
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    for (int64_t k = 0; k < p->numel; k++)
      if (!isfinite(state[p->offset + k]))
        return FG_FAIL(FG_ERR_NUMERIC, "%s: not written: %s[%lld] of the state is %g (the previous checkpoint is "
                       "kept)", path, p->name, (long long)k, (double)state[p->offset + k]);
  }
  return FG_OK;
}

static fg_status save_state(const char *dir, const fg_graph *g, const float *state, int round, const char *method,
                            uint64_t partition_hash) {
  char path[4096], r[32], h[32];
  checkpoint_path(dir, path, sizeof path);
  FG_TRY(check_finite(path, g, state));
  snprintf(r, sizeof r, "%d", round);
  snprintf(h, sizeof h, "%016" PRIx64, partition_hash);
  const char *keys[] = {"format", "round", "method", "partition"};
  const char *values[] = {"fedgap-checkpoint", r, method, h};
  return fg_weights_save(g, state, path, keys, values, 4);
}

/* A round count as the metadata holds it: a plain decimal in 1..FG_CHECKPOINT_MAX_ROUND. */
static int parse_round(const char *text, int *out) {
  if (!text || !*text || strlen(text) > 7) return 0;
  long v = 0;
  for (const char *p = text; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    v = v * 10 + (*p - '0');
  }
  if (v < 1 || v > FG_CHECKPOINT_MAX_ROUND || (text[0] == '0')) return 0;
  *out = (int)v;
  return 1;
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
  int done = 0;
  if (!r || !m || !p)
    s = FG_FAIL(FG_ERR_FORMAT, "%s: not a fedgap checkpoint (no round/method/partition metadata)", path);
  else if (!parse_round(r, &done))
    s = FG_FAIL(FG_ERR_FORMAT, "%s: round \"%.32s\" in the metadata, expected a count of rounds 1..%d", path, r,
                FG_CHECKPOINT_MAX_ROUND);
  else if (strcmp(m, method) != 0)
    s = FG_FAIL(FG_ERR_CONFIG, "%s: checkpoint of method %.64s, the configuration runs %s", path, m, method);
  else if (strcmp(p, h) != 0)
    s = FG_FAIL(FG_ERR_CONFIG, "%s: checkpoint of partition %.32s, the configuration gives %s (different data, "
                               "clients or seed)", path, p, h);
  if (s == FG_OK) s = fg_weights_read(g, f, state);
  if (s == FG_OK && check_finite(path, g, state) != FG_OK)
    s = FG_FAIL(FG_ERR_FORMAT, "%s: holds a NaN or an infinity, not a state to resume from", path);
  if (s == FG_OK) *round = done;
  fg_st_close(f);
  return s;
}

static void tensors_path(const char *dir, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/method_state.safetensors", dir);
}
static void next_tensors_path(const char *dir, char *buf, size_t cap) {
  snprintf(buf, cap, "%s/method_state.next.safetensors", dir);
}

fg_status fg_checkpoint_save(const char *dir, const fg_graph *g, const float *state, int round, const char *method,
                             uint64_t partition_hash) {
  fg_killpoint("checkpoint_begin");
  FG_TRY(save_state(dir, g, state, round, method, partition_hash));
  /* the method state of this round (fg_checkpoint_save_tensors) becomes the current one */
  char next[4096], cur[4096];
  next_tensors_path(dir, next, sizeof next);
  tensors_path(dir, cur, sizeof cur);
  fg_status s = FG_OK;
  if (access(next, F_OK) == 0) {
    if (rename(next, cur) != 0) return FG_FAIL(FG_ERR_IO, "cannot rename '%s' to '%s': %s", next, cur, strerror(errno));
    s = fg_sync_dir(dir);
  }
  fg_killpoint("checkpoint_done");
  return s;
}

/* Total floats of the tensors t enumerates. */
static int64_t tensors_numel(const fg_checkpoint_tensors *t) {
  const char *name;
  int64_t numel, total = 0;
  for (int i = 0; t->tensor(t->ctx, i, &name, &numel); i++) total += numel;
  return total;
}

/* A host staging buffer of n floats (at least one). */
static fg_status staging(int64_t n, float **out) {
  *out = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
  return *out ? FG_OK : FG_FAIL(FG_ERR_OOM, "checkpoint: out of host memory for %lld floats", (long long)n);
}

fg_status fg_checkpoint_save_tensors(const char *dir, const fg_checkpoint_tensors *t, int round) {
  fg_killpoint("checkpoint_begin");
  char path[4096], r[32];
  next_tensors_path(dir, path, sizeof path);
  snprintf(r, sizeof r, "%d", round);
  float *host = NULL;
  FG_TRY(staging(tensors_numel(t), &host)); /* the writer keeps pointers until it writes */
  fg_st_writer w;
  fg_st_writer_init(&w);
  fg_status st = fg_st_writer_set_metadata(&w, "round", r);
  const char *name;
  int64_t numel, at = 0;
  for (int i = 0; st == FG_OK && t->tensor(t->ctx, i, &name, &numel); i++) {
    st = t->get(t->ctx, i, host + at);
    if (st == FG_OK) st = fg_st_writer_add(&w, name, FG_ST_F32, 1, &numel, host + at);
    at += numel;
  }
  if (st == FG_OK) st = fg_st_writer_write(&w, path);
  fg_st_writer_free(&w);
  free(host);
  return st;
}

/* The round of the method state at `path`, or 0 when there is no such file or it has none. */
static int tensors_round(const char *path) {
  if (access(path, F_OK) != 0) return 0;
  fg_st_file *f = NULL;
  if (fg_st_open(path, &f) != FG_OK) return 0;
  int r = 0;
  if (!parse_round(fg_st_metadata(f, "round"), &r)) r = 0;
  fg_st_close(f);
  return r;
}

fg_status fg_checkpoint_load_tensors(const char *dir, const fg_checkpoint_tensors *t, int round) {
  char path[4096];
  /* a run stopped after the checkpoint's rename but before the method state's: the next one */
  next_tensors_path(dir, path, sizeof path);
  int next_round = tensors_round(path);
  if (next_round != round) {
    char next[4096];
    snprintf(next, sizeof next, "%s", path);
    tensors_path(dir, path, sizeof path);
    if (access(path, F_OK) != 0 && access(next, F_OK) == 0)
      return FG_FAIL(FG_ERR_FORMAT, "%s: method state of round %d, the checkpoint is of round %d (and there is no "
                     "%s)", next, next_round, round, path);
  }
  fg_st_file *f = NULL;
  FG_TRY(fg_st_open(path, &f));
  const char *r = fg_st_metadata(f, "round");
  int found = 0;
  fg_status st = FG_OK;
  if (!parse_round(r, &found) || found != round)
    st = FG_FAIL(FG_ERR_FORMAT, "%s: method state of round %.32s, the checkpoint is of round %d", path,
                 r ? r : "(none)", round);
  const char *name;
  int64_t numel;
  for (int i = 0; st == FG_OK && t->tensor(t->ctx, i, &name, &numel); i++) {
    float *host = NULL;
    st = staging(numel, &host);
    if (st == FG_OK) st = fg_st_read_f32(f, name, 1, &numel, host);
    if (st == FG_OK) st = t->set(t->ctx, i, host);
    free(host);
  }
  fg_st_close(f);
  return st;
}
