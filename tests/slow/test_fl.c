/* Federated runs on real Fashion-MNIST:
 * - FedAvg with one client holding everything, one round of one local epoch, gives weights
 *   bit-identical to `fedgap train` for one epoch with the same seed;
 * - a run stopped after round 2 and resumed reaches bit-identical weights and the same later
 *   metrics as an uninterrupted run (FedRolex: its sub-models change every round);
 * - a client whose budget is one byte below its plan is rejected cleanly (nothing trained, the
 *   record says over_budget), and clients whose budget fits no level are reported and skipped. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/nn/fit.h"
#include "fl/client.h"
#include "fl/metrics.h"

/* Every tensor of two safetensors files is bit-identical. */
static void same_tensors(const char *a, const char *b) {
  fg_st_file *fa, *fb;
  FGT_OK(fg_st_open(a, &fa));
  FGT_OK(fg_st_open(b, &fb));
  cr_assert_eq(fg_st_count(fa), fg_st_count(fb));
  for (size_t i = 0; i < fg_st_count(fa); i++) {
    const fg_st_entry *ea = fg_st_entry_at(fa, i), *eb = fg_st_find(fb, ea->name);
    cr_assert_not_null(eb, "%s is missing from %s", ea->name, b);
    cr_assert_eq(ea->nbytes, eb->nbytes, "%s", ea->name);
    cr_assert_eq(memcmp(ea->data, eb->data, ea->nbytes), 0, "%s differs between %s and %s", ea->name, a, b);
  }
  fg_st_close(fa);
  fg_st_close(fb);
}

static void run_ok(const char *const *argv) {
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 0, "%s %s failed: %s", argv[1], argv[2], r.err);
  fgt_run_free(&r);
}

Test(fl, fedavg_one_client_equals_centralised_training, .timeout = 1200) {
  char *dir = fgt_mkdtemp();
  char *weights = fg_path_join(dir, "train.safetensors"), *cfg = fg_path_join(dir, "one.yaml"), *run = fg_path_join(dir, "run");
  run_ok((const char *[]){"", "train", "--model", "cnn", "--width", "4", "--dataset", "fashion-mnist", "--epochs", "1",
                          "--batch", "64", "--lr", "0.02", "--momentum", "0.9", "--weight-decay", "5e-4", "--seed",
                          "3", "--save", weights, NULL});
  fgt_write_text(cfg,
             "seed: 3\nrounds: 1\n"
             "data: {dataset: fashion-mnist, partition: {kind: iid}}\n"
             "model: {arch: cnn, width: 4}\n"
             "clients: {count: 1}\n"
             "sampling: {kind: uniform, per_round: 1}\n"
             "local: {epochs: 1, batch: 64, optimizer: sgd, lr: 0.02, momentum: 0.9, weight_decay: 5.0e-4}\n"
             "method: {name: fedavg}\n");
  run_ok((const char *[]){"", "run", cfg, "--out", run, NULL});
  char *ckpt = fg_path_join(run, "checkpoint.safetensors");
  same_tensors(weights, ckpt);
  free(ckpt);
  free(weights);
  free(cfg);
  free(run);
  fgt_rmtree(dir);
  free(dir);
}

static const char *RESUME_CONFIG =
    "seed: 5\nrounds: 4\n"
    "data: {dataset: fashion-mnist, partition: {kind: dirichlet, alpha: 0.5}}\n"
    "model: {arch: cnn, width: 8}\n"
    "clients:\n  count: 30\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.0, share: 0.3}\n      - {fraction: 0.6, share: 0.4}\n      - {fraction: 0.35, share: 0.3}\n"
    "sampling: {kind: uniform, per_round: 3}\n"
    "local: {epochs: 1, batch: 32, optimizer: sgd, lr: 0.05, momentum: 0.5, weight_decay: 1.0e-4}\n"
    "eval: {every: 1, max_samples: 500}\n"
    "checkpoint: {every: 2}\n"
    "method: {name: fedrolex, rates: [1, 0.5, 0.25]}\n";

Test(fl, resume_reaches_the_same_numbers, .timeout = 1200) {
  char *dir = fgt_mkdtemp();
  char *cfg = fg_path_join(dir, "rolex.yaml"), *straight = fg_path_join(dir, "straight"), *stopped = fg_path_join(dir, "stopped");
  fgt_write_text(cfg, RESUME_CONFIG);
  run_ok((const char *[]){"", "run", cfg, "--out", straight, NULL});
  run_ok((const char *[]){"", "run", cfg, "--set", "rounds=2", "--out", stopped, NULL});
  run_ok((const char *[]){"", "run", cfg, "--resume", stopped, "--allow-change", "rounds", NULL});
  char *a = fg_path_join(straight, "checkpoint.safetensors"), *b = fg_path_join(stopped, "checkpoint.safetensors");
  same_tensors(a, b);
  fg_round_record *ra, *rb;
  int na, nb;
  FGT_OK(fg_metrics_read(straight, &ra, &na));
  FGT_OK(fg_metrics_read(stopped, &rb, &nb));
  cr_assert_eq(na, 4);
  cr_assert_eq(nb, 4);
  for (int i = 2; i < 4; i++) {
    cr_assert_eq(rb[i].round, i + 1);
    cr_assert_eq(ra[i].accuracy, rb[i].accuracy, "round %d", i + 1);
    cr_assert_eq(ra[i].train_loss, rb[i].train_loss, "round %d", i + 1);
    cr_assert_eq(ra[i].bytes_up, rb[i].bytes_up, "round %d", i + 1);
  }
  free(ra);
  free(rb);
  free(a);
  free(b);
  free(cfg);
  free(straight);
  free(stopped);
  fgt_rmtree(dir);
  free(dir);
}

/* FedAvg's local step on 50 IID Fashion-MNIST clients (cnn width 4) at batch `batch`: the world,
 * the model and its plan, for tests of one client's training. */
typedef struct local_case {
  char *dir, *path;
  fg_config cfg;
  fg_world w;
  fg_graph *g;
  fg_plan *plan;
} local_case;

static void local_case_open(local_case *c, int batch) {
  fgt_setup_cpu(2);
  c->dir = fgt_mkdtemp();
  c->path = fg_path_join(c->dir, "c.yaml");
  char text[512];
  snprintf(text, sizeof text,
           "rounds: 1\ndata: {dataset: fashion-mnist, partition: {kind: iid}}\nmodel: {arch: cnn, width: 4}\n"
           "clients: {count: 50}\nlocal: {batch: %d}\nmethod: {name: fedavg}\n",
           batch);
  fgt_write_text(c->path, text);
  FGT_OK(fg_config_load(c->path, NULL, 0, &c->cfg));
  FGT_OK(fg_world_open(&c->cfg, &c->w));
  FGT_OK(fg_model_build(&c->w.base, &c->g));
  fg_trainer_options opt = fg_world_local_options(&c->w, 0);
  FGT_OK(fg_plan_build(c->g, &opt, &c->plan));
}

static void local_case_close(local_case *c) {
  fg_plan_free(c->plan);
  fg_graph_free(c->g);
  fg_world_close(&c->w);
  fg_config_free(&c->cfg);
  free(c->path);
  fgt_rmtree(c->dir);
  free(c->dir);
}

Test(fl, over_budget_client_is_rejected_cleanly, .timeout = 600) {
  local_case lc;
  local_case_open(&lc, 16);
  fg_world *w = &lc.w;
  fg_graph *g = lc.g;
  fg_plan *plan = lc.plan;
  int64_t n = fg_graph_state_numel(g);
  float *initial = malloc((size_t)n * sizeof(float)), *trained = malloc((size_t)n * sizeof(float));
  fg_graph_init_state(g, 1, initial);
  for (int64_t i = 0; i < n; i++) trained[i] = -7.0f;
  fg_local_job job = {w, 2, 0, g, plan, plan->total - 1, 0, initial, trained, NULL, -1, 0};
  fg_client_record rec;
  memset(&rec, 0, sizeof rec);
  FGT_OK(fg_local_train(&job, &rec));
  cr_assert_eq(rec.status, FG_CLIENT_OVER_BUDGET);
  cr_assert(strstr(rec.error, "client 2") != NULL, "%s", rec.error);
  cr_assert_eq(rec.engine_peak_bytes, 0u);
  for (int64_t i = 0; i < n; i++) cr_assert_eq(trained[i], -7.0f, "nothing may be written back");
  /* At exactly its plan it trains, and the ledger's peak is the plan. */
  job.cap = plan->total;
  memset(&rec, 0, sizeof rec);
  FGT_OK(fg_local_train(&job, &rec));
  cr_assert_eq(rec.status, FG_CLIENT_OK);
  cr_assert_eq(rec.engine_peak_bytes, plan->total);
  cr_assert_eq(rec.planned_bytes, plan->total);
  cr_assert(isfinite(rec.train_loss) && rec.train_loss > 0);
  free(initial);
  free(trained);
  local_case_close(&lc);
}

Test(fl, clients_that_fit_nothing_are_reported_and_skipped, .timeout = 900) {
  char *dir = fgt_mkdtemp(), *cfg = fg_path_join(dir, "x.yaml"), *run = fg_path_join(dir, "run");
  /* ExclusiveFL: half the clients get 0.5 x the full model's peak, which fits no level. */
  fgt_write_text(cfg,
             "seed: 2\nrounds: 1\ndata: {dataset: fashion-mnist, partition: {kind: iid}}\n"
             "model: {arch: cnn, width: 4}\n"
             "clients:\n  count: 40\n  budgets:\n    kind: tiers\n    tiers: [{fraction: 1.0, share: 0.5}, "
             "{fraction: 0.5, share: 0.5}]\n"
             "sampling: {kind: uniform, per_round: 10}\n"
             "local: {batch: 32}\neval: {max_samples: 200}\nmethod: {name: exclusivefl}\n");
  run_ok((const char *[]){"", "run", cfg, "--out", run, NULL});
  char *metrics = fg_path_join(run, "metrics.jsonl");
  unsigned char *text;
  size_t len;
  FGT_OK(fg_read_file(metrics, 1 << 24, &text, &len));
  cJSON *rec = cJSON_Parse((const char *)text); /* the first line: round 1 */
  cr_assert_not_null(rec);
  const cJSON *clients = cJSON_GetObjectItem(rec, "clients");
  int ok = 0, nofit = 0;
  for (const cJSON *c = clients->child; c; c = c->next) {
    const char *status = cJSON_GetObjectItem(c, "status")->valuestring;
    if (strcmp(status, "ok") == 0) ok++;
    if (strcmp(status, "no_fit") == 0) {
      nofit++;
      cr_assert(strstr(cJSON_GetObjectItem(c, "error")->valuestring, "fits none") != NULL);
      cr_assert_eq(cJSON_GetObjectItem(c, "engine_peak_bytes")->valuedouble, 0.0);
    }
  }
  cr_assert_eq(ok + nofit, 10);
  cr_assert_gt(nofit, 0, "with half the clients unable to fit, some sampled client should not fit");
  cr_assert_gt(ok, 0);
  /* the round's counts are those of its records */
  cr_assert_eq(cJSON_GetObjectItem(rec, "trained")->valuedouble, (double)ok);
  cr_assert_eq(cJSON_GetObjectItem(rec, "no_fit")->valuedouble, (double)nofit);
  cr_assert_eq(cJSON_GetObjectItem(rec, "over_budget")->valuedouble, 0.0);
  cJSON_Delete(rec);
  free(text);
  free(metrics);
  free(cfg);
  free(run);
  fgt_rmtree(dir);
  free(dir);
}

/* ExclusiveFL as its reference samples (the default kind, reference = eligible): with 20 of 40
 * clients fitting the full model and 10 a round, every round trains 10 and nobody is sampled in
 * vain; a round that was not evaluated records no accuracy. */
Test(fl, reference_sampling_trains_per_round_clients_when_that_many_fit, .timeout = 900) {
  char *dir = fgt_mkdtemp(), *cfg = fg_path_join(dir, "x.yaml"), *run = fg_path_join(dir, "run");
  fgt_write_text(cfg,
             "seed: 2\nrounds: 3\ndata: {dataset: fashion-mnist, partition: {kind: iid}}\n"
             "model: {arch: cnn, width: 4}\n"
             "clients:\n  count: 40\n  budgets:\n    kind: tiers\n    tiers: [{fraction: 1.0, share: 0.5}, "
             "{fraction: 0.5, share: 0.5}]\n"
             "sampling: {per_round: 10}\n"
             "local: {batch: 32}\neval: {every: 3, max_samples: 200}\nmethod: {name: exclusivefl}\n");
  run_ok((const char *[]){"", "run", cfg, "--out", run, NULL});
  char *metrics = fg_path_join(run, "metrics.jsonl");
  unsigned char *text;
  size_t len;
  FGT_OK(fg_read_file(metrics, 1 << 24, &text, &len));
  int rounds = 0;
  for (char *line = strtok((char *)text, "\n"); line; line = strtok(NULL, "\n"), rounds++) {
    cJSON *rec = cJSON_Parse(line);
    cr_assert_not_null(rec);
    int ok = 0;
    for (const cJSON *c = cJSON_GetObjectItem(rec, "clients")->child; c; c = c->next)
      ok += strcmp(cJSON_GetObjectItem(c, "status")->valuestring, "ok") == 0;
    cr_assert_eq(ok, 10, "round %d: %d trained", rounds + 1, ok);
    cr_assert_eq(cJSON_GetObjectItem(rec, "n_clients")->valuedouble, 10.0);
    cr_assert_eq(cJSON_GetObjectItem(rec, "trained")->valuedouble, 10.0);
    cr_assert_eq(cJSON_GetObjectItem(rec, "no_fit")->valuedouble, 0.0);
    int evaluated = cJSON_IsTrue(cJSON_GetObjectItem(rec, "evaluated"));
    cr_assert_eq(evaluated, rounds == 2);
    cr_assert(evaluated ? cJSON_IsNumber(cJSON_GetObjectItem(rec, "accuracy"))
                        : cJSON_IsNull(cJSON_GetObjectItem(rec, "accuracy")),
              "round %d: accuracy only where evaluated", rounds + 1);
    cJSON_Delete(rec);
  }
  cr_assert_eq(rounds, 3);
  free(text);
  char *summary = fg_path_join(run, "summary.json");
  FGT_OK(fg_read_file(summary, 1 << 20, &text, &len));
  cJSON *sum = cJSON_Parse((const char *)text);
  cr_assert_not_null(sum);
  cr_assert_str_eq(cJSON_GetObjectItem(sum, "sampling")->valuestring, "eligible");
  cJSON_Delete(sum);
  free(text);
  free(summary);
  free(metrics);
  free(cfg);
  free(run);
  fgt_rmtree(dir);
  free(dir);
}

/* The final accuracy and the mean accuracy of the evaluated rounds of the run in `dir`, read from
 * its files with cJSON. */
static void run_accuracies(const char *dir, double *final, double *evals_mean) {
  char *path = fg_path_join(dir, "summary.json"), *text = fgt_read_text(path);
  cJSON *sum = cJSON_Parse(text);
  cr_assert_not_null(sum, "%s", path);
  *final = cJSON_GetObjectItem(sum, "final_accuracy")->valuedouble;
  cJSON_Delete(sum);
  free(text);
  free(path);
  path = fg_path_join(dir, "metrics.jsonl");
  text = fgt_read_text(path);
  double total = 0;
  int n = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *rec = cJSON_Parse(line);
    cr_assert_not_null(rec);
    if (cJSON_IsTrue(cJSON_GetObjectItem(rec, "evaluated"))) {
      total += cJSON_GetObjectItem(rec, "accuracy")->valuedouble;
      n++;
    }
    cJSON_Delete(rec);
  }
  cr_assert_gt(n, 0);
  *evals_mean = total / n;
  free(text);
  free(path);
}

/* seeds: [3, 5] runs the experiment once per seed, each exactly the run `seed: N` gives, and its
 * table holds the mean and sample standard deviation over them, computed here from those runs. */
Test(fl, seeds_are_runs_of_their_own_and_the_table_their_mean_and_std, .timeout = 1200) {
  char *dir = fgt_mkdtemp(), *seeded = fg_path_join(dir, "seeded.yaml"), *single = fg_path_join(dir, "single.yaml");
  const char *body = "name: exp\nrounds: 2\ndata: {dataset: fashion-mnist, partition: {kind: iid}}\n"
                     "model: {arch: cnn, width: 4}\nclients: {count: 10}\nsampling: {per_round: 3}\n"
                     "local: {batch: 32}\neval: {every: 1, max_samples: 300}\n"
                     "methods:\n  - {name: fedavg}\n  - {name: heterofl}\n";
  char text[1024];
  snprintf(text, sizeof text, "seeds: [3, 5]\n%s", body);
  fgt_write_text(seeded, text);
  fgt_write_text(single, body);
  char *run = fg_path_join(dir, "run");
  run_ok((const char *[]){"", "run", seeded, "--out", run, NULL});
  const int seeds[2] = {3, 5};
  const char *methods[2] = {"fedavg", "heterofl"};
  double final[2][2], evals[2][2];
  for (int i = 0; i < 2; i++) {
    char name[32], set[32];
    snprintf(name, sizeof name, "single-%d", seeds[i]);
    snprintf(set, sizeof set, "seed=%d", seeds[i]);
    char *alone = fg_path_join(dir, name);
    run_ok((const char *[]){"", "run", single, "--set", set, "--out", alone, NULL});
    for (int m = 0; m < 2; m++) {
      char a[4096], b[4096];
      snprintf(a, sizeof a, "%s/seed-%d/%s/checkpoint.safetensors", run, seeds[i], methods[m]);
      snprintf(b, sizeof b, "%s/%s/checkpoint.safetensors", alone, methods[m]);
      same_tensors(a, b);
      snprintf(b, sizeof b, "%s/%s", alone, methods[m]);
      run_accuracies(b, &final[m][i], &evals[m][i]);
    }
    free(alone);
  }
  char *csv_path = fg_path_join(run, "comparison.csv"), *csv = fgt_read_text(csv_path);
  char *line = strtok(csv, "\n"); /* the header */
  cr_assert(strstr(line, "final_accuracy_mean,final_accuracy_std") != NULL, "%s", line);
  for (int m = 0; m < 2; m++) {
    line = strtok(NULL, "\n");
    cr_assert_not_null(line);
    char name[32];
    int n = 0;
    double fm, fs, em, es;
    cr_assert_eq(sscanf(line, "%31[^,],%d,%lf,%lf,%lf,%lf", name, &n, &fm, &fs, &em, &es), 6, "%s", line);
    cr_assert_str_eq(name, methods[m]);
    cr_assert_eq(n, 2);
    double f_mean = (final[m][0] + final[m][1]) / 2, e_mean = (evals[m][0] + evals[m][1]) / 2;
    double f_std = fabs(final[m][0] - final[m][1]) / sqrt(2.0), e_std = fabs(evals[m][0] - evals[m][1]) / sqrt(2.0);
    cr_assert_float_eq(fm, f_mean, 1e-6, "%s: %f vs %f", methods[m], fm, f_mean);
    cr_assert_float_eq(fs, f_std, 1e-6, "%s: %f vs %f", methods[m], fs, f_std);
    cr_assert_float_eq(em, e_mean, 1e-6, "%s: %f vs %f", methods[m], em, e_mean);
    cr_assert_float_eq(es, e_std, 1e-6, "%s: %f vs %f", methods[m], es, e_std);
  }
  free(csv);
  free(csv_path);
  free(run);
  free(single);
  free(seeded);
  fgt_rmtree(dir);
  free(dir);
}

/* Epoch passes count their batches: drop_last skips a final partial batch (n / b steps of b
 * samples), unless it is the only one; without it the partial batch trains (ceil(n / b) steps). */
Test(fl, drop_last_skips_the_final_partial_batch_unless_it_is_the_only_one, .timeout = 600) {
  local_case lc;
  local_case_open(&lc, 64);
  fg_world *w = &lc.w;
  fg_graph *g = lc.g;
  fg_plan *plan = lc.plan;
  fg_ledger ledger;
  fg_ledger_init(&ledger, "drop_last", 0);
  fg_trainer *t = NULL;
  FGT_OK(fg_trainer_create_planned(g, plan, &ledger, &t));
  fg_dataset_view view = fg_world_client_view(w, 2);
  const int64_t b = 64, n = view.n;
  cr_assert_neq(n % b, 0, "the client's share must end in a partial batch (%lld samples)", (long long)n);
  fg_fit_options fo;
  memset(&fo, 0, sizeof fo);
  fo.norm = w->norm;
  fo.seed = 1;
  fo.stream = 2;
  fo.shuffle = 1;
  const struct {
    int64_t n;
    int drop_last;
    int64_t steps, samples;
  } cases[] = {{n, 1, n / b, (n / b) * b}, {n, 0, (n + b - 1) / b, n}, {10, 1, 1, 10}, {10, 0, 1, 10}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fg_dataset_view v = view;
    v.n = cases[i].n;
    fo.drop_last = cases[i].drop_last;
    fg_epoch_stats st;
    memset(&st, 0, sizeof st);
    FGT_OK(fg_fit_epoch(t, &w->loader, &v, &fo, 0, NULL, NULL, &st));
    cr_assert_eq(st.steps, cases[i].steps, "case %zu: %lld steps", i, (long long)st.steps);
    cr_assert_eq(st.samples, cases[i].samples, "case %zu: %lld samples", i, (long long)st.samples);
  }
  fg_trainer_destroy(t);
  local_case_close(&lc);
}
