/* Crash safety of a run folder, on a small generated dataset (the kill-at-any-moment test is
 * tests/slow/test_kill_resume.c):
 * - a method state saved for a round becomes current only once that round's checkpoint is in
 *   place: a stop between the two writes, or between the checkpoint and the rename, resumes with
 *   the state of the checkpoint's round;
 * - a run folder whose checkpoint is corrupted (one flipped bit) or truncated is refused with one
 *   line, and nothing in the folder changes;
 * - a file-size limit (RLIMIT_FSIZE below the checkpoint's size) ends a run with one line naming
 *   the file, leaves the last checkpoint byte for byte and no temporary file; resuming without
 *   the limit then reaches exactly what an uninterrupted run reaches. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/run_cmd.h"
#include "common/run_compare.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"
#include "engine/nn/models.h"
#include "engine/nn/weights.h"
#include "fl/checkpoint.h"

static char *tmp;

static void setup(void) {
  fgt_setup_cpu(1);
  tmp = fgt_mkdtemp();
  fgt_write_tiny_fmnist(tmp, 240, 60, 3);
}

static void teardown(void) {
  fgt_rmtree(tmp);
  free(tmp);
}

TestSuite(crash, .init = setup, .fini = teardown);

/* ---- the method state's protocol ------------------------------------------------------------ */

static float held[4];

static int one_tensor(void *ctx, int i, const char **name, int64_t *numel) {
  (void)ctx;
  if (i > 0) return 0;
  *name = "hypernet.w";
  *numel = 4;
  return 1;
}
static fg_status get_held(void *ctx, int i, float *host) {
  (void)ctx;
  (void)i;
  memcpy(host, held, sizeof held);
  return FG_OK;
}
static fg_status set_held(void *ctx, int i, const float *host) {
  (void)ctx;
  (void)i;
  memcpy(held, host, sizeof held);
  return FG_OK;
}

static void hold(float v) {
  for (int i = 0; i < 4; i++) held[i] = v + (float)i;
}

Test(crash, the_method_state_of_the_checkpoints_round_is_loaded) {
  fg_graph *g = fgt_tiny_cnn(4);
  float *state = calloc((size_t)fg_graph_state_numel(g), sizeof(float));
  char *dir = fgt_join(tmp, "state");
  cr_assert_eq(mkdir(dir, 0755), 0);
  fg_checkpoint_tensors t = {NULL, one_tensor, get_held, set_held};

  hold(1);
  FGT_OK(fg_checkpoint_save_tensors(dir, &t, 1));
  FGT_OK(fg_checkpoint_save(dir, g, state, 1, "hypemefed", 7));
  hold(0);
  FGT_OK(fg_checkpoint_load_tensors(dir, &t, 1));
  cr_assert_eq(held[3], 4.0f);

  /* round 2's state written, then a stop before its checkpoint: round 1 resumes with round 1's */
  hold(2);
  FGT_OK(fg_checkpoint_save_tensors(dir, &t, 2));
  int round = 0;
  FGT_OK(fg_checkpoint_load(dir, g, state, &round, "hypemefed", 7));
  cr_assert_eq(round, 1);
  hold(0);
  FGT_OK(fg_checkpoint_load_tensors(dir, &t, 1));
  cr_assert_eq(held[0], 1.0f, "round 1's state, not round 2's");

  /* round 2's checkpoint in place but the state not renamed yet: the next one is round 2's */
  char *ckpt = fgt_join(dir, "checkpoint.safetensors");
  const char *keys[] = {"format", "round", "method", "partition"};
  const char *values[] = {"fedgap-checkpoint", "2", "hypemefed", "0000000000000007"};
  FGT_OK(fg_weights_save(g, state, ckpt, keys, values, 4));
  hold(0);
  FGT_OK(fg_checkpoint_load_tensors(dir, &t, 2));
  cr_assert_eq(held[0], 2.0f);

  /* the full save renames it: current, and no next one is left */
  hold(3);
  FGT_OK(fg_checkpoint_save_tensors(dir, &t, 3));
  FGT_OK(fg_checkpoint_save(dir, g, state, 3, "hypemefed", 7));
  char *next = fgt_join(dir, "method_state.next.safetensors");
  cr_assert_neq(access(next, F_OK), 0);
  hold(0);
  FGT_OK(fg_checkpoint_load_tensors(dir, &t, 3));
  cr_assert_eq(held[0], 3.0f);
  cr_assert_eq(fg_checkpoint_load_tensors(dir, &t, 4), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "method state of round 3, the checkpoint is of round 4") != NULL, "%s",
            fg_last_error());
  /* a state with a NaN is not written over the last good checkpoint */
  size_t before_n = 0, after_n = 0;
  unsigned char *before = NULL, *after = NULL;
  FGT_OK(fg_read_file(ckpt, 1u << 26, &before, &before_n));
  state[5] = NAN;
  cr_assert_eq(fg_checkpoint_save(dir, g, state, 4, "hypemefed", 7), FG_ERR_NUMERIC);
  cr_assert(strstr(fg_last_error(), "the previous checkpoint is kept") != NULL, "%s", fg_last_error());
  FGT_OK(fg_read_file(ckpt, 1u << 26, &after, &after_n));
  cr_assert(before_n == after_n && memcmp(before, after, before_n) == 0);
  free(before);
  free(after);
  free(next);
  free(ckpt);
  free(dir);
  free(state);
  fg_graph_free(g);
}

/* ---- run folders ----------------------------------------------------------------------------- */

static char *config(int rounds) {
  char text[1024];
  snprintf(text, sizeof text,
           "name: crash\nseed: 6\nrounds: %d\ndata: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: iid}}\n"
           "model: {arch: cnn, width: 4}\nclients: {count: 4}\nsampling: {per_round: 3}\n"
           "local: {batch: 32, lr: 0.05}\neval: {max_samples: 60}\ncheckpoint: {every: 1}\n"
           "method: {name: fedavg}\n",
           rounds, tmp);
  char *path = fgt_join(tmp, "crash.yaml");
  fgt_write_text(path, text);
  return path;
}

static void run_ok(const char *const *argv) {
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 0, "fedgap %s failed (%d): %s", argv[1], r.status, r.err);
  fgt_run_free(&r);
}

static unsigned char *bytes_of(const char *dir, const char *name, size_t *n) {
  char *path = fgt_join(dir, name);
  unsigned char *b = NULL;
  FGT_OK(fg_read_file(path, 1u << 30, &b, n));
  free(path);
  return b;
}

static void same_bytes(const char *dir, const char *name, const unsigned char *want, size_t n) {
  size_t got_n = 0;
  unsigned char *got = bytes_of(dir, name, &got_n);
  cr_assert(got_n == n && memcmp(got, want, n) == 0, "%s/%s changed", dir, name);
  free(got);
}

static int temporaries(const char *dir) {
  DIR *d = opendir(dir);
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

Test(crash, a_bad_checkpoint_is_refused_and_changes_nothing, .timeout = 300) {
  char *cfg = config(2), *dir = fgt_join(tmp, "bad");
  run_ok((const char *[]){"", "run", cfg, "--out", dir, NULL});
  size_t n_ckpt, n_jsonl, n_csv;
  unsigned char *ckpt = bytes_of(dir, "checkpoint.safetensors", &n_ckpt);
  unsigned char *jsonl = bytes_of(dir, "metrics.jsonl", &n_jsonl), *csv = bytes_of(dir, "metrics.csv", &n_csv);
  char *path = fgt_join(dir, "checkpoint.safetensors");
  const char *what[] = {"corrupted", "truncated"};
  for (int k = 0; k < 2; k++) {
    if (k == 0) {
      ckpt[n_ckpt - 9] ^= 0x01; /* one bit of the last tensor */
      fgt_write_file(path, ckpt, n_ckpt, 0);
    } else {
      ckpt[n_ckpt - 9] ^= 0x01;
      n_ckpt -= 64;
      fgt_write_file(path, ckpt, n_ckpt, 0);
    }
    fgt_run r = fgt_run_fedgap((const char *[]){"", "run", "--resume", dir, "--set", "rounds=3", "--allow-change",
                                                "rounds", NULL});
    cr_assert_eq(r.status, 1, "status %d: %s", r.status, r.err);
    cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
    cr_assert(strstr(r.err, "checkpoint.safetensors") != NULL && strstr(r.err, what[k]) != NULL, "%s", r.err);
    fgt_run_free(&r);
    same_bytes(dir, "checkpoint.safetensors", ckpt, n_ckpt);
    same_bytes(dir, "metrics.jsonl", jsonl, n_jsonl);
    same_bytes(dir, "metrics.csv", csv, n_csv);
  }
  free(path);
  free(ckpt);
  free(jsonl);
  free(csv);
  free(dir);
  free(cfg);
}

Test(crash, a_file_size_limit_ends_the_run_and_keeps_the_last_checkpoint, .timeout = 300) {
  char *cfg = config(4), *straight = fgt_join(tmp, "straight"), *dir = fgt_join(tmp, "limited");
  run_ok((const char *[]){"", "run", cfg, "--out", straight, NULL});
  run_ok((const char *[]){"", "run", cfg, "--set", "rounds=2", "--out", dir, NULL});
  size_t n_ckpt = 0, n_part = 0;
  unsigned char *ckpt = bytes_of(dir, "checkpoint.safetensors", &n_ckpt);
  free(bytes_of(dir, "partition.json", &n_part));
  long limit = (long)n_ckpt / 2;
  cr_assert(n_part < (size_t)limit / 2, "partition.json (%zu bytes) must fit the limit of %ld", n_part, limit);

  fgt_run_opts o = {NULL, limit};
  fgt_run r = fgt_run_fedgap_opts((const char *[]){"", "run", cfg, "--resume", dir, "--allow-change", "rounds", NULL},
                                  &o);
  cr_assert_eq(r.signal, 0, "killed by signal %d", r.signal);
  cr_assert_eq(r.status, 1, "status %d: %s", r.status, r.err);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "checkpoint.safetensors") != NULL && strstr(r.err, "File too large") != NULL, "%s", r.err);
  fgt_run_free(&r);
  same_bytes(dir, "checkpoint.safetensors", ckpt, n_ckpt);
  cr_assert_eq(temporaries(dir), 0, "a failed write leaves no temporary file");

  /* without the limit it goes on to the numbers of the uninterrupted run */
  run_ok((const char *[]){"", "run", "--resume", dir, NULL});
  char *a = fgt_join(straight, "checkpoint.safetensors"), *b = fgt_join(dir, "checkpoint.safetensors");
  fgt_same_tensors(a, b);
  fgt_same_run_records(straight, dir);
  free(a);
  free(b);
  free(ckpt);
  free(dir);
  free(straight);
  free(cfg);
}
