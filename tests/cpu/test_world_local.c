/* HypeMeFed's data protocol in the world and the server (fl/world.h, fl/server.h), on a small
 * Fashion-MNIST-format dataset written here: the pooled training set is the train split followed
 * by the test split; each client's local train and test parts partition its share exactly with
 * ceil(F n_k) test samples; the same seed gives the same split; client views, label sets and
 * sample counts follow the local train part; the default path keeps the shares and the test set;
 * and the local evaluation's "General" (and each exit's accuracy) equals the mean over clients
 * computed here with a separately built evaluator on the run's final checkpoint. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"
#include "engine/nn/fit.h"
#include "fl/checkpoint.h"
#include "fl/method.h"
#include "fl/server.h"
#include "fl/world.h"

enum { N_TRAIN = 400, N_TEST = 100, PIXELS = 28 * 28 };

static char *tmp_dir;
static unsigned char train_px[N_TRAIN * PIXELS], test_px[N_TEST * PIXELS];
static unsigned char train_y[N_TRAIN], test_y[N_TEST];

static void put_be32(FILE *f, uint32_t v) {
  unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  cr_assert_eq(fwrite(b, 1, 4, f), 4u);
}

/* Plain (not gzipped) IDX files under the names the Fashion-MNIST loader looks for. */
static void write_idx(const char *name, int images, const unsigned char *data, uint32_t n) {
  char *path = fg_path_join(tmp_dir, name);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "cannot create %s", path);
  put_be32(f, images ? 0x00000803u : 0x00000801u);
  put_be32(f, n);
  if (images) {
    put_be32(f, 28);
    put_be32(f, 28);
  }
  size_t bytes = (size_t)n * (images ? PIXELS : 1);
  cr_assert_eq(fwrite(data, 1, bytes, f), bytes);
  cr_assert_eq(fclose(f), 0);
  free(path);
}

/* Images whose brightness follows the label (so that training learns something), plus noise. */
static void make_split(unsigned char *px, unsigned char *y, int n, uint64_t stream) {
  fg_rng r = fg_rng_stream(77, FG_RNG_TEST, stream, 0);
  for (int i = 0; i < n; i++) {
    y[i] = (unsigned char)fg_rng_below(&r, 10);
    for (int p = 0; p < PIXELS; p++)
      px[i * PIXELS + p] = (unsigned char)((p % 28 < 14 ? 20 * y[i] : 200 - 15 * y[i]) + fg_rng_below(&r, 40));
  }
}

static void setup(void) {
  fgt_setup_cpu(2);
  tmp_dir = fgt_mkdtemp();
  make_split(train_px, train_y, N_TRAIN, 1);
  make_split(test_px, test_y, N_TEST, 2);
  write_idx("train-images-idx3-ubyte", 1, train_px, N_TRAIN);
  write_idx("train-labels-idx1-ubyte", 0, train_y, N_TRAIN);
  write_idx("t10k-images-idx3-ubyte", 1, test_px, N_TEST);
  write_idx("t10k-labels-idx1-ubyte", 0, test_y, N_TEST);
}

static void teardown(void) {
  fgt_rmtree(tmp_dir);
  free(tmp_dir);
}

TestSuite(world_local, .init = setup, .fini = teardown);

/* Loads `body` (with data.dir pointing at the generated files) and the overrides. */
static void load_config(const char *body, const char *const *set, int n_set, fg_config *cfg) {
  char *path = fg_path_join(tmp_dir, "exp.yaml");
  char text[2048];
  snprintf(text, sizeof text, "%sdata:\n  dataset: fashion-mnist\n  dir: \"%s\"\n", body, tmp_dir);
  fgt_write_text(path, text);
  FGT_OK(fg_config_load(path, set, n_set, cfg));
  free(path);
}

static const char *BASE = "seed: 3\nrounds: 1\nmodel: {arch: cnn, width: 4}\nclients: {count: 6}\n"
                          "local: {batch: 16}\nmethod: {name: fedavg}\n";

static const char *const POOLED[] = {"data.pool=true", "data.local_test=0.2",
                                     "data.partition={kind: dirichlet, alpha: 0.5, min_size: 10}"};

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* The pooled labels, built here from the generated files. */
static void pooled_labels(int32_t *y) {
  for (int i = 0; i < N_TRAIN; i++) y[i] = train_y[i];
  for (int i = 0; i < N_TEST; i++) y[N_TRAIN + i] = test_y[i];
}

/* Client shares recomputed here with fg_partition_make over `labels`, each sorted. */
static void shares(const fg_config *cfg, const int32_t *labels, int64_t n, fg_ledger *ledger, fg_partition *p) {
  FGT_OK(fg_partition_make(&cfg->partition, labels, n, 10, cfg->clients, cfg->seed, ledger, p));
  for (int c = 0; c < cfg->clients; c++)
    qsort((void *)fg_partition_client(p, c), (size_t)fg_partition_size(p, c), sizeof(uint32_t), cmp_u32);
}

/* The world's local parts of every client cover its share exactly: disjoint, ascending, of sizes
 * n_k - ceil(n_k / 5) and ceil(n_k / 5) (F = 0.2), views as documented. */
static void assert_local_parts(const fg_world *w, const fg_partition *share) {
  for (int c = 0; c < w->cfg->clients; c++) {
    int64_t n = fg_partition_size(share, c), t = (n + 4) / 5;
    fg_dataset_view train = fg_world_client_view(w, c), test;
    FGT_OK(fg_world_client_test_view(w, c, &test));
    cr_assert_eq(train.ds, &w->train);
    cr_assert_eq(test.ds, &w->train, "local test samples are samples of the training set");
    cr_assert_eq(test.n, t, "client %d holds %lld: %lld test samples, want %lld", c, (long long)n, (long long)test.n,
                 (long long)t);
    cr_assert_eq(train.n, n - t, "client %d", c);
    cr_assert_eq(fg_partition_size(&w->partition, c), n - t, "partition holds the local train part");
    uint32_t *both = malloc((size_t)n * sizeof *both);
    for (int64_t i = 0; i < train.n; i++) {
      both[i] = fg_dataset_view_index(&train, i);
      if (i) cr_assert_lt(both[i - 1], both[i], "client %d: train part not ascending", c);
    }
    for (int64_t i = 0; i < test.n; i++) {
      both[train.n + i] = fg_dataset_view_index(&test, i);
      if (i) cr_assert_lt(both[train.n + i - 1], both[train.n + i], "client %d: test part not ascending", c);
    }
    qsort(both, (size_t)n, sizeof *both, cmp_u32);
    const uint32_t *want = fg_partition_client(share, c);
    for (int64_t i = 0; i < n; i++) {
      cr_assert_eq(both[i], want[i], "client %d: train + test differs from its share at %lld", c, (long long)i);
      if (i) cr_assert_neq(both[i], both[i - 1], "client %d: sample %u is in both parts", c, both[i]);
    }
    free(both);
  }
}

Test(world_local, pool_is_train_then_test) {
  fg_config cfg;
  load_config(BASE, POOLED, 3, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  cr_assert_eq(w.train.n, N_TRAIN + N_TEST);
  cr_assert_eq(w.test.n, 0, "no global test set is kept");
  cr_assert_eq(w.train.classes, 10);
  for (int i = 0; i < N_TRAIN + N_TEST; i++) {
    const unsigned char *want = i < N_TRAIN ? train_px + i * PIXELS : test_px + (i - N_TRAIN) * PIXELS;
    cr_assert_eq(memcmp(fg_dataset_pixels_u8(&w.train) + (size_t)i * PIXELS, want, PIXELS), 0, "sample %d", i);
    cr_assert_eq(fg_dataset_labels(&w.train)[i], i < N_TRAIN ? train_y[i] : test_y[i - N_TRAIN], "label %d", i);
  }
  /* the pool is charged to the data ledger: pixels and labels of 200 samples at least */
  cr_assert_geq(w.data_ledger.by_cat[FG_MEM_DATA], (size_t)(N_TRAIN + N_TEST) * (PIXELS + 4));
  fg_world_close(&w);
  fg_config_free(&cfg);
}

Test(world_local, local_splits_partition_each_pooled_share) {
  fg_config cfg;
  load_config(BASE, POOLED, 3, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  int32_t y[N_TRAIN + N_TEST];
  pooled_labels(y);
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_partition share;
  shares(&cfg, y, N_TRAIN + N_TEST, &ledger, &share);
  assert_local_parts(&w, &share);
  /* the shares reach into the test split: the pool is what is partitioned */
  int64_t from_test = 0;
  for (int64_t i = 0; i < share.n_samples; i++) from_test += ((const uint32_t *)share.index.ptr)[i] >= N_TRAIN;
  cr_assert_eq(from_test, N_TEST);
  /* label sets: the classes of the local train part only */
  for (int c = 0; c < cfg.clients; c++) {
    float mask[10] = {0};
    fg_dataset_view v = fg_world_client_view(&w, c);
    for (int64_t i = 0; i < v.n; i++) mask[y[fg_dataset_view_index(&v, i)]] = 1.0f;
    cr_assert_eq(memcmp(mask, fg_world_class_mask(&w, c), sizeof mask), 0, "client %d's label set", c);
  }
  fg_partition_free(&share);
  fg_world_close(&w);
  fg_config_free(&cfg);
}

Test(world_local, same_seed_same_split_other_seed_another) {
  fg_config cfg;
  load_config(BASE, POOLED, 3, &cfg);
  fg_world a, b;
  FGT_OK(fg_world_open(&cfg, &a));
  FGT_OK(fg_world_open(&cfg, &b));
  cr_assert_eq(a.local_test.hash, b.local_test.hash);
  cr_assert_eq(a.partition.hash, b.partition.hash);
  for (int c = 0; c < cfg.clients; c++) {
    fg_dataset_view va, vb;
    FGT_OK(fg_world_client_test_view(&a, c, &va));
    FGT_OK(fg_world_client_test_view(&b, c, &vb));
    cr_assert_eq(va.n, vb.n);
    cr_assert_eq(memcmp(va.index, vb.index, (size_t)va.n * sizeof(uint32_t)), 0, "client %d", c);
  }
  fg_world_close(&b);
  fg_config_free(&cfg);
  const char *other[] = {POOLED[0], POOLED[1], POOLED[2], "seed=4"};
  load_config(BASE, other, 4, &cfg);
  FGT_OK(fg_world_open(&cfg, &b));
  cr_assert_neq(a.local_test.hash, b.local_test.hash);
  fg_world_close(&a);
  fg_world_close(&b);
  fg_config_free(&cfg);
}

Test(world_local, default_path_keeps_shares_and_the_test_set) {
  fg_config cfg;
  const char *dirichlet[] = {POOLED[2]};
  load_config(BASE, dirichlet, 1, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  cr_assert_eq(w.train.n, N_TRAIN);
  cr_assert_eq(w.test.n, N_TEST);
  cr_assert_eq(w.local_test.n_clients, 0);
  int32_t y[N_TRAIN];
  for (int i = 0; i < N_TRAIN; i++) y[i] = train_y[i];
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_partition share;
  FGT_OK(fg_partition_make(&cfg.partition, y, N_TRAIN, 10, cfg.clients, cfg.seed, &ledger, &share));
  cr_assert_eq(w.partition.hash, share.hash, "the partition (and its checkpoint hash) is unchanged");
  for (int c = 0; c < cfg.clients; c++) {
    qsort((void *)fg_partition_client(&share, c), (size_t)fg_partition_size(&share, c), sizeof(uint32_t), cmp_u32);
    fg_dataset_view v = fg_world_client_view(&w, c);
    cr_assert_eq(v.n, fg_partition_size(&share, c));
    cr_assert_eq(memcmp(v.index, fg_partition_client(&share, c), (size_t)v.n * sizeof(uint32_t)), 0, "client %d", c);
    fg_dataset_view t;
    cr_assert_eq(fg_world_client_test_view(&w, c, &t), FG_ERR_INVALID);
    cr_assert(strstr(fg_last_error(), "data.local_test") != NULL, "%s", fg_last_error());
  }
  fg_partition_free(&share);
  fg_world_close(&w);
  fg_config_free(&cfg);
}

Test(world_local, local_test_without_pool_splits_the_train_split) {
  fg_config cfg;
  const char *set[] = {POOLED[1], POOLED[2]};
  load_config(BASE, set, 2, &cfg);
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_LOCAL);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  cr_assert_eq(w.train.n, N_TRAIN);
  cr_assert_eq(w.test.n, N_TEST, "the test split stays available to eval.protocol global");
  int32_t y[N_TRAIN];
  for (int i = 0; i < N_TRAIN; i++) y[i] = train_y[i];
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test", 0);
  fg_partition share;
  shares(&cfg, y, N_TRAIN, &ledger, &share);
  assert_local_parts(&w, &share);
  fg_dataset_view v;
  cr_assert_eq(fg_world_client_test_view(&w, cfg.clients, &v), FG_ERR_INVALID);
  cr_assert_eq(fg_world_client_test_view(&w, -1, &v), FG_ERR_INVALID);
  fg_partition_free(&share);
  fg_world_close(&w);
  fg_config_free(&cfg);
}

Test(world_local, shares_too_small_to_split_name_the_key) {
  fg_config cfg;
  /* as many clients as pooled samples: one each, and ceil(0.2 x 1) = 1 leaves none to train */
  char count[32];
  snprintf(count, sizeof count, "clients.count=%d", N_TRAIN + N_TEST);
  const char *set[] = {POOLED[0], POOLED[1], count};
  load_config(BASE, set, 3, &cfg);
  fg_world w;
  cr_assert_eq(fg_world_open(&cfg, &w), FG_ERR_CONFIG);
  const char *msg = fg_last_error();
  cr_assert(strstr(msg, "exp.yaml: data.local_test") != NULL, "%s", msg);
  cr_assert(strstr(msg, "no training sample") != NULL, "%s", msg);
  fg_world_close(&w);
  fg_config_free(&cfg);
}

/* ---- the local evaluation ("General") ------------------------------------------------------ */

typedef struct capture {
  int level[16];         /* per client, from the round's records; -2: no record */
  fg_round_record last;  /* the last round's record (clients dropped) */
} capture;

static void on_round(void *ctx, const fg_round_record *r, int rounds) {
  (void)rounds;
  capture *cap = ctx;
  for (int i = 0; i < r->n_clients; i++) cap->level[r->clients[i].id] = r->clients[i].level;
  cap->last = *r;
  cap->last.clients = NULL;
}

Test(world_local, general_is_the_mean_over_clients_at_their_deepest_exits, .timeout = 300) {
  const char *body =
      "seed: 4\nrounds: 3\nmodel: {arch: cnn, width: 4}\n"
      "clients:\n  count: 8\n  budgets:\n    kind: tiers\n    tiers:\n"
      "      - {fraction: 3.0, share: 0.25}\n      - {fraction: 0.93, share: 0.25}\n"
      "      - {fraction: 0.8, share: 0.25}\n      - {fraction: 0.0001, share: 0.25}\n"
      "sampling: {kind: uniform, per_round: 8}\nlocal: {epochs: 3, batch: 16, lr: 0.05, momentum: 0.9}\n"
      "eval: {batch: 7}\n"
      "method: {name: depthfl}\n";
  /* Dirichlet shares: local test splits of different sizes, so a sample-weighted mean would differ */
  fg_config cfg;
  load_config(body, POOLED, 3, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  char *run = fg_path_join(tmp_dir, "run");
  cr_assert_eq(mkdir(run, 0755), 0);
  capture cap;
  for (int c = 0; c < 16; c++) cap.level[c] = -2;
  fg_run_result res;
  FGT_OK(fg_run_method(&w, 0, run, 0, on_round, &cap, &res));

  /* every client has a record; the tiers (fractions of the base model's planned peak: depth 2
   * needs about 88% of it, depth 1 about 66% with the x86 3x3 kernels' workspaces and about 75%
   * with the generic im2col path other processors take) give full-depth, shallower and no-fit
   * clients */
  int at[3] = {0}, skipped = 0;
  for (int c = 0; c < cfg.clients; c++) {
    cr_assert_neq(cap.level[c], -2, "client %d has no record", c);
    if (cap.level[c] < 0) skipped++;
    else at[cap.level[c]]++;
  }
  cr_assert(at[0] > 0 && at[1] > 0 && at[2] > 0 && skipped > 0, "clients at depth 3, 2, 1: %d, %d, %d; fitting nothing: %d",
            at[0], at[1], at[2], skipped);

  /* The global model after the round, evaluated here with a trainer of our own. */
  const fg_method_ops *ops = fg_method_find("depthfl");
  fg_method_plan mp;
  FGT_OK(ops->plan(&cfg.methods[0], &w.base, &mp));
  fg_graph *g;
  FGT_OK(fg_model_build(&mp.global, &g));
  fg_graph_set_bn_mode(g, "", mp.bn_mode);
  cr_assert_eq(fg_graph_output_count(g), 3, "depthfl's global cnn has three exits");
  float *state = malloc((size_t)fg_graph_state_numel(g) * sizeof(float));
  int rounds_done = 0;
  FGT_OK(fg_checkpoint_load(run, g, state, &rounds_done, "depthfl", w.partition.hash));
  cr_assert_eq(rounds_done, cfg.rounds);
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = 5;
  o.mode = FG_EXEC_INFERENCE;
  o.device = fg_host_device();
  fg_ledger ledger;
  fg_ledger_init(&ledger, "test eval", 0);
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, &ledger, &t));
  FGT_OK(fg_trainer_set_state(t, state));
  fg_loader ld;
  FGT_OK(fg_loader_alloc(&ld, &ledger, 0, o.batch, w.train.c, w.train.h, w.train.w));

  double general = 0, exit_sum[3] = {0}, loss = 0;
  int clients = 0, exit_clients[3] = {0}, sizes_differ = 0;
  int64_t samples = 0;
  for (int c = 0; c < cfg.clients; c++) {
    if (cap.level[c] < 0) continue;
    /* depthfl level l trains depth 3 - l: its deepest exit is output 2 - l */
    int deepest = 2 - cap.level[c];
    fg_dataset_view v;
    FGT_OK(fg_dataset_view_subset(&w.train, fg_partition_client(&w.local_test, c), fg_partition_size(&w.local_test, c),
                                  &v));
    fg_epoch_stats es;
    FGT_OK(fg_evaluate(t, &ld, &v, &w.norm, &es));
    cr_assert_eq(es.samples, v.n);
    sizes_differ += es.samples != fg_partition_size(&w.local_test, 0);
    general += (double)es.correct[deepest] / (double)es.samples;
    for (int k = 0; k <= deepest; k++) {
      exit_sum[k] += (double)es.correct[k] / (double)es.samples;
      exit_clients[k]++;
    }
    clients++;
    samples += es.samples;
    loss += es.loss_sum;
  }
  cr_assert_gt(sizes_differ, 0, "every evaluated client has the same test size: the test would not tell a "
               "client mean from a sample-weighted one");
  const fg_round_record *r = &cap.last;
  cr_assert_eq(r->evaluated, 1);
  cr_assert_float_eq(r->accuracy, general / clients, 1e-12, "General %.6f, want %.6f", r->accuracy, general / clients);
  cr_assert_eq(r->n_exits, 3);
  for (int k = 0; k < 3; k++)
    cr_assert_float_eq(r->exit_accuracy[k], exit_sum[k] / exit_clients[k], 1e-12, "exit %d: %.6f, want %.6f", k + 1,
                       r->exit_accuracy[k], exit_sum[k] / exit_clients[k]);
  cr_assert_eq(r->eval_samples, samples, "every local test sample of the evaluated clients, once");
  cr_assert_float_eq(r->test_loss, loss / (double)samples, 1e-6 * fabs(loss / (double)samples));
  cr_assert(isnan(r->ensemble_accuracy));
  cr_assert_eq(res.final_accuracy, r->accuracy);
  cr_assert_eq(res.clients_never_fit, skipped);
  fg_summary_file sf;
  FGT_OK(fg_summary_read(run, &sf));
  cr_assert_str_eq(sf.summary.eval_protocol, "local");
  fg_summary_file_free(&sf);

  fg_loader_free(&ld);
  fg_trainer_destroy(t);
  fg_graph_free(g);
  free(state);
  free(run);
  fg_world_close(&w);
  fg_config_free(&cfg);
}
