/* DepthFL runs end to end on a small generated Fashion-MNIST-format dataset:
 * - on resnet18 (width 0.125) with DepthFL's exit classifiers and FedDyn, one round in which
 *   clients of every depth 4..1 train, the global model evaluated at its four exits;
 * - with FedDyn, a run stopped after round 2 and resumed reaches the uninterrupted run's
 *   checkpoint and FedDyn state (h and every client's g_k) bit for bit, and the same records; the
 *   same run without FedDyn ends elsewhere (the term and the state take part). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/run_compare.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"

/* Whether the file's bytes hold `text` (a tensor name in a safetensors header). */
static int file_has(const char *path, const char *text) {
  unsigned char *b;
  size_t n, k = strlen(text);
  FGT_OK(fg_read_file(path, 1 << 28, &b, &n));
  int found = 0;
  for (size_t i = 0; i + k <= n && !found; i++) found = memcmp(b + i, text, k) == 0;
  free(b);
  return found;
}

static void run_ok(const char *const *argv) {
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 0, "fedgap failed (%d): %s", r.status, r.err);
  fgt_run_free(&r);
}

/* The budgets put two of the eight clients at each depth (the levels' plans are 160%, 126%, 104%
 * and 71% of the model without exits: fedgap memplan --method depthfl). */
static const char *RESNET =
    "name: depthfl-resnet\nseed: 3\nrounds: 1\nthreads: 1\n"
    "data: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: iid}}\n"
    "model: {arch: resnet18, width: 0.125}\n"
    "clients:\n  count: 8\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.75, share: 0.25}\n      - {fraction: 1.4, share: 0.25}\n"
    "      - {fraction: 1.15, share: 0.25}\n      - {fraction: 0.85, share: 0.25}\n"
    "sampling: {per_round: 8}\n"
    "local: {epochs: 1, batch: 16, optimizer: sgd, lr: 0.05, momentum: 0.9}\n"
    "eval: {every: 1, max_samples: 40}\n"
    "method: {name: depthfl, feddyn_alpha: 0.1}\n";

Test(depthfl, resnet18_trains_a_round_at_every_depth, .timeout = 600) {
  char *dir = fgt_mkdtemp();
  fgt_write_tiny_fmnist(dir, 160, 40, 5);
  char text[2048];
  snprintf(text, sizeof text, RESNET, dir);
  char *cfg = fgt_join(dir, "r.yaml"), *out = fgt_join(dir, "run");
  fgt_write_text(cfg, text);
  run_ok((const char *[]){"", "run", cfg, "--out", out, NULL});
  char *metrics = fgt_join(out, "metrics.jsonl"), *line = fgt_read_text(metrics);
  cJSON *o = cJSON_Parse(line);
  cr_assert_not_null(o);
  int at_level[4] = {0};
  const cJSON *clients = cJSON_GetObjectItemCaseSensitive(o, "clients"), *c;
  cJSON_ArrayForEach(c, clients) {
    const char *status = cJSON_GetObjectItemCaseSensitive(c, "status")->valuestring;
    int level = (int)fgt_json_number(c, "level");
    cr_assert_str_eq(status, "ok", "client %g: %s", fgt_json_number(c, "id"), status);
    cr_assert(level >= 0 && level < 4);
    at_level[level]++;
  }
  for (int l = 0; l < 4; l++) cr_assert_eq(at_level[l], 2, "depth %d: %d clients trained", 4 - l, at_level[l]);
  const cJSON *exits = cJSON_GetObjectItemCaseSensitive(o, "exit_accuracy");
  cr_assert_eq(cJSON_GetArraySize(exits), 4, "the global model's four exits are evaluated");
  /* DepthFL's classifier after block 1 is in the checkpoint; FedDyn's state beside it */
  char *ckpt = fgt_join(out, "checkpoint.safetensors"), *state = fgt_join(out, "method_state.safetensors");
  cr_assert(file_has(ckpt, "\"exit1.sep3.pw2.weight\"") && file_has(ckpt, "\"exit3.fc.bias\""));
  cr_assert(file_has(state, "\"feddyn.h\"") && file_has(state, "\"feddyn.client7\""));
  free(ckpt);
  free(state);
  cJSON_Delete(o);
  free(line);
  free(metrics);
  free(cfg);
  free(out);
  fgt_rmtree(dir);
  free(dir);
}

static const char *SMALL =
    "name: depthfl-feddyn\nseed: 7\nrounds: 4\nthreads: 1\n"
    "data: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: dirichlet, alpha: 0.5, min_size: 10}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients:\n  count: 8\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.05, share: 0.25}\n      - {fraction: 0.7, share: 0.5}\n"
    "      - {fraction: 0.35, share: 0.25}\n"
    "sampling: {per_round: 4}\n"
    "local: {epochs: 1, batch: 16, optimizer: sgd, lr: 0.05, momentum: 0.9, clip_norm: 10}\n"
    "eval: {every: 1, max_samples: 60}\ncheckpoint: {every: 1}\n"
    "method: {name: depthfl, feddyn_alpha: %s}\n";

static int same_bytes(const char *a, const char *b) {
  unsigned char *x, *y;
  size_t nx, ny;
  FGT_OK(fg_read_file(a, 1 << 28, &x, &nx));
  FGT_OK(fg_read_file(b, 1 << 28, &y, &ny));
  int same = nx == ny && memcmp(x, y, nx) == 0;
  free(x);
  free(y);
  return same;
}

Test(depthfl, feddyn_state_survives_a_resume, .timeout = 600) {
  char *dir = fgt_mkdtemp();
  fgt_write_tiny_fmnist(dir, 320, 80, 21);
  char text[2048];
  char *cfg = fgt_join(dir, "d.yaml"), *plain_cfg = fgt_join(dir, "p.yaml");
  snprintf(text, sizeof text, SMALL, dir, "0.1");
  fgt_write_text(cfg, text);
  snprintf(text, sizeof text, SMALL, dir, "0");
  fgt_write_text(plain_cfg, text);
  char *straight = fgt_join(dir, "straight"), *stopped = fgt_join(dir, "stopped"), *plain = fgt_join(dir, "plain");
  run_ok((const char *[]){"", "run", cfg, "--out", straight, NULL});
  run_ok((const char *[]){"", "run", cfg, "--out", stopped, "--stop-after", "2", NULL});
  char *summary = fgt_join(stopped, "summary.json");
  cr_assert_neq(access(summary, F_OK), 0, "a stopped run writes no summary");
  run_ok((const char *[]){"", "run", "--resume", stopped, NULL});
  char *ca = fgt_join(straight, "checkpoint.safetensors"), *cb = fgt_join(stopped, "checkpoint.safetensors");
  char *sa = fgt_join(straight, "method_state.safetensors"), *sb = fgt_join(stopped, "method_state.safetensors");
  fgt_same_tensors(ca, cb);
  fgt_same_tensors(sa, sb);
  cr_assert(same_bytes(ca, cb), "the checkpoints differ in bytes");
  cr_assert(same_bytes(sa, sb), "the FedDyn states differ in bytes");
  fgt_same_run_records(straight, stopped);
  /* without FedDyn: no method state, another global model */
  run_ok((const char *[]){"", "run", plain_cfg, "--out", plain, NULL});
  char *cp = fgt_join(plain, "checkpoint.safetensors"), *sp = fgt_join(plain, "method_state.safetensors");
  cr_assert_neq(access(sp, F_OK), 0, "DepthFL (FedAvg) keeps no method state");
  cr_assert(!same_bytes(ca, cp), "FedDyn changed nothing");
  free(cp);
  free(sp);
  free(ca);
  free(cb);
  free(sa);
  free(sb);
  free(summary);
  free(straight);
  free(stopped);
  free(plain);
  free(cfg);
  free(plain_cfg);
  fgt_rmtree(dir);
  free(dir);
}
