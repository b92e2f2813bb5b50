/* The server's checks on client updates (fl/update_check.h) and diverging clients:
 * - fg_update_check accepts an update, measures its distance from the model sent (checked against
 *   a norm computed here), and rejects a NaN, a wrong size, a wrong shape and an update farther
 *   than the bound, each with its reason;
 * - in a FedAvg run on a small generated dataset, the test seam injects a NaN update, an update of
 *   the wrong size, one with a wrong shape and an oversized one in the last round: each client is
 *   recorded as rejected with its reason (in the round records and metrics.jsonl), the run
 *   completes, and the final model is the sample-weighted mean of the accepted updates alone
 *   (computed here from the updates the seam saw);
 * - a client sent a model with a NaN diverges: it is recorded as diverged, the others aggregate;
 *   with updates.on_diverge stop the run ends with an error naming the client. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"
#include "engine/nn/models.h"
#include "fl/checkpoint.h"
#include "fl/server.h"
#include "fl/update_check.h"
#include "fl/world.h"

static char *tmp;

static void setup(void) {
  fgt_setup_cpu(1);
  tmp = fgt_mkdtemp();
  fgt_write_tiny_fmnist(tmp, 240, 60, 5);
}

static void teardown(void) {
  fg_update_set_test_hook(NULL, NULL);
  fgt_rmtree(tmp);
  free(tmp);
}

TestSuite(updates, .init = setup, .fini = teardown);

/* ---- fg_update_check ------------------------------------------------------------------------ */

Test(updates, the_check_accepts_measures_and_rejects_with_reasons) {
  fg_graph *g = fgt_tiny_cnn(4);
  int64_t n = fg_graph_state_numel(g);
  float *sent = malloc((size_t)n * sizeof(float)), *back = malloc((size_t)n * sizeof(float));
  fg_graph_init_state(g, 3, sent);
  memcpy(back, sent, (size_t)n * sizeof(float));
  double norm = 0;
  for (int64_t i = 0; i < n; i++) norm += (double)sent[i] * sent[i];
  norm = sqrt(norm);
  char why[200];
  double d = -1;
  fg_update u = {back, n, 0, NULL};

  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_ACCEPTED, "%s", why);
  cr_assert_eq(d, 0.0);
  back[7] += 0.5f;
  back[n - 1] -= 1.5f;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_ACCEPTED, "%s", why);
  double dx = (double)back[7] - sent[7], dy = (double)back[n - 1] - sent[n - 1];
  cr_assert_float_eq(d, sqrt(dx * dx + dy * dy) / norm, 1e-12, "distance %g", d);

  /* a NaN in the second tensor */
  const fg_param *p1 = fg_graph_param(g, 1);
  memcpy(back, sent, (size_t)n * sizeof(float));
  back[p1->offset + 2] = NAN;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_NON_FINITE);
  char want[160];
  snprintf(want, sizeof want, "%s[2] is nan", p1->name);
  cr_assert(strstr(why, want) != NULL, "%s (expected %s)", why, want);
  cr_assert(isnan(d));
  back[p1->offset + 2] = INFINITY;
  cr_assert_eq(fg_update_check(g, sent, &u, 0, &d, why, sizeof why), FG_UPDATE_NON_FINITE, "no bound, still finite");
  back[p1->offset + 2] = sent[p1->offset + 2];

  /* one value short */
  u.numel = n - 1;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_WRONG_SIZE);
  snprintf(want, sizeof want, "%lld values, the sub-model sent has %lld", (long long)(n - 1), (long long)n);
  cr_assert(strstr(why, want) != NULL, "%s", why);
  u.numel = n;

  /* declared shapes: the graph's pass, one differing extent is named */
  int np = fg_graph_param_count(g);
  fg_update_tensor *shapes = calloc((size_t)np, sizeof *shapes);
  for (int i = 0; i < np; i++) {
    shapes[i].ndim = fg_graph_param(g, i)->ndim;
    memcpy(shapes[i].shape, fg_graph_param(g, i)->shape, sizeof shapes[i].shape);
  }
  u.n_tensors = np;
  u.tensors = shapes;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_ACCEPTED, "%s", why);
  shapes[0].shape[0] += 1;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_WRONG_SIZE);
  cr_assert(strstr(why, fg_graph_param(g, 0)->name) != NULL, "%s", why);
  shapes[0].shape[0] -= 1;
  u.n_tensors = np - 1;
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_WRONG_SIZE);
  u.n_tensors = 0;

  /* 1000 x the model sent: 999 x its norm away */
  for (int64_t i = 0; i < n; i++) back[i] = 1000.0f * sent[i];
  cr_assert_eq(fg_update_check(g, sent, &u, 10, &d, why, sizeof why), FG_UPDATE_TOO_FAR);
  cr_assert_float_eq(d, 999.0, 1e-3);
  cr_assert(strstr(why, "above updates.max_distance 10") != NULL, "%s", why);
  cr_assert_eq(fg_update_check(g, sent, &u, 0, &d, why, sizeof why), FG_UPDATE_ACCEPTED, "0: no bound");
  cr_assert_eq(fg_update_check(g, sent, &u, 1000, &d, why, sizeof why), FG_UPDATE_ACCEPTED, "999 <= 1000");
  free(shapes);
  free(sent);
  free(back);
  fg_graph_free(g);
}

/* ---- in a run ------------------------------------------------------------------------------- */

enum { CLIENTS = 6 };

typedef struct injector {
  int round;                      /* 0-based round the injections happen in */
  int diverge_client;             /* sent a NaN in `round` (-1: none) */
  int nan_client, short_client, shape_client, far_client; /* -1: none */
  fg_update_tensor shapes[64];
  float *kept[CLIENTS];           /* the updates of the other clients in `round`, as returned */
  int64_t numel;
  fg_client_record records[CLIENTS];
  int n_records, last_round;
} injector;

static void inject(void *ctx, fg_update_hook_point point, int round, int client, fg_update *u, float *values,
                   int64_t capacity) {
  injector *in = ctx;
  if (round != in->round) return;
  cr_assert(u->numel <= capacity);
  if (point == FG_HOOK_SENT) {
    if (client == in->diverge_client) values[0] = NAN;
    return;
  }
  in->numel = u->numel;
  if (client == in->nan_client) {
    values[u->numel / 2] = NAN;
  } else if (client == in->short_client) {
    u->numel -= 1;
  } else if (client == in->far_client) {
    for (int64_t i = 0; i < u->numel; i++) values[i] *= 1.0e6f;
  } else if (client == in->shape_client) {
    /* the shapes of a cnn of width 4 with the first tensor's first extent one larger */
    fg_graph *g = fgt_tiny_cnn(4);
    int np = fg_graph_param_count(g);
    cr_assert(np <= 64);
    for (int i = 0; i < np; i++) {
      in->shapes[i].ndim = fg_graph_param(g, i)->ndim;
      memcpy(in->shapes[i].shape, fg_graph_param(g, i)->shape, sizeof in->shapes[i].shape);
    }
    in->shapes[0].shape[0] += 1;
    u->n_tensors = np;
    u->tensors = in->shapes;
    fg_graph_free(g);
  } else {
    in->kept[client] = malloc((size_t)u->numel * sizeof(float));
    memcpy(in->kept[client], values, (size_t)u->numel * sizeof(float));
  }
}

static void on_round(void *ctx, const fg_round_record *r, int rounds) {
  (void)rounds;
  injector *in = ctx;
  in->last_round = r->round;
  if (r->round - 1 != in->round) return;
  in->n_records = r->n_clients;
  memcpy(in->records, r->clients, (size_t)r->n_clients * sizeof *r->clients);
}

static void load_config(int rounds, const char *extra, fg_config *cfg) {
  char text[1024];
  snprintf(text, sizeof text,
           "seed: 4\nrounds: %d\ndata: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: iid}}\n"
           "model: {arch: cnn, width: 4}\nclients: {count: %d}\nsampling: {per_round: %d}\n"
           "local: {batch: 32, lr: 0.05}\neval: {max_samples: 60}\ncheckpoint: {every: 1}\n"
           "method: {name: fedavg}\n%s",
           rounds, tmp, CLIENTS, CLIENTS, extra ? extra : "");
  char *path = fgt_join(tmp, "exp.yaml");
  fgt_write_text(path, text);
  FGT_OK(fg_config_load(path, NULL, 0, cfg));
  free(path);
}

static const fg_client_record *record_of(const injector *in, int client) {
  for (int i = 0; i < in->n_records; i++)
    if (in->records[i].id == client) return &in->records[i];
  cr_assert_fail("no record of client %d", client);
  return NULL;
}

/* The run's final checkpoint equals the sample-weighted mean of the kept updates. */
static void final_model_is_the_mean_of_the_kept(const fg_world *w, const char *run, const injector *in) {
  fg_graph *g = fgt_tiny_cnn(4);
  int64_t n = fg_graph_state_numel(g);
  cr_assert_eq(n, in->numel);
  float *state = malloc((size_t)n * sizeof(float));
  int done = 0;
  FGT_OK(fg_checkpoint_load(run, g, state, &done, "fedavg", w->partition.hash));
  double *sum = calloc((size_t)n, sizeof *sum), wsum = 0;
  int kept = 0;
  for (int c = 0; c < CLIENTS; c++) {
    if (!in->kept[c]) continue;
    kept++;
    double wc = (double)fg_partition_size(&w->partition, c);
    for (int64_t i = 0; i < n; i++) sum[i] += wc * (double)in->kept[c][i];
    wsum += wc;
  }
  cr_assert(kept >= 2, "%d updates kept", kept);
  for (int64_t i = 0; i < n; i++) {
    float want = (float)(sum[i] / wsum);
    cr_assert(fabsf(state[i] - want) <= 1e-6f * (1.0f + fabsf(want)), "element %lld: %g, the mean of the kept is %g",
              (long long)i, (double)state[i], (double)want);
  }
  free(sum);
  free(state);
  fg_graph_free(g);
}

Test(updates, bad_updates_are_rejected_and_the_others_aggregate, .timeout = 300) {
  fg_config cfg;
  load_config(2, NULL, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  injector in;
  memset(&in, 0, sizeof in);
  in.round = 1;
  in.diverge_client = -1;
  in.nan_client = 1;
  in.short_client = 2;
  in.far_client = 3;
  in.shape_client = 4;
  fg_update_set_test_hook(inject, &in);
  char *run = fgt_join(tmp, "run-bad");
  cr_assert_eq(mkdir(run, 0755), 0);
  fg_run_result res;
  FGT_OK(fg_run_method(&w, 0, run, 0, on_round, &in, &res));
  fg_update_set_test_hook(NULL, NULL);
  cr_assert_eq(in.last_round, 2, "the run completes");
  cr_assert_eq(in.n_records, CLIENTS);

  const fg_client_record *r;
  r = record_of(&in, 1);
  cr_assert_eq(r->status, FG_CLIENT_REJECTED);
  cr_assert(strstr(r->error, "is nan, expected finite values") != NULL, "%s", r->error);
  r = record_of(&in, 2);
  cr_assert_eq(r->status, FG_CLIENT_REJECTED);
  cr_assert(strstr(r->error, "values, the sub-model sent has") != NULL, "%s", r->error);
  r = record_of(&in, 3);
  cr_assert_eq(r->status, FG_CLIENT_REJECTED);
  cr_assert(strstr(r->error, "above updates.max_distance 100") != NULL, "%s", r->error);
  r = record_of(&in, 4);
  cr_assert_eq(r->status, FG_CLIENT_REJECTED);
  cr_assert(strstr(r->error, "the sub-model sent has [") != NULL, "%s", r->error);
  for (int c = 0; c < CLIENTS; c += 5) {
    r = record_of(&in, c);
    cr_assert_eq(r->status, FG_CLIENT_OK, "client %d: %s", c, r->error);
    cr_assert(r->update_distance > 0 && r->update_distance < 100, "client %d moved %g", c, r->update_distance);
  }
  final_model_is_the_mean_of_the_kept(&w, run, &in);

  /* metrics.jsonl says the same */
  char *path = fgt_join(run, "metrics.jsonl");
  char *text = fgt_read_text(path);
  char *second = strchr(text, '\n');
  cr_assert_not_null(second);
  cJSON *round2 = cJSON_Parse(second + 1);
  cr_assert_not_null(round2);
  const cJSON *clients = cJSON_GetObjectItemCaseSensitive(round2, "clients");
  int rejected = 0;
  for (const cJSON *c = clients ? clients->child : NULL; c; c = c->next) {
    const char *status = cJSON_GetObjectItemCaseSensitive(c, "status")->valuestring;
    if (strcmp(status, "rejected") == 0) {
      rejected++;
      cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(c, "error")));
    }
    cr_assert_not_null(cJSON_GetObjectItemCaseSensitive(c, "update_distance"));
  }
  cr_assert_eq(rejected, 4);
  cJSON_Delete(round2);
  free(text);
  free(path);
  for (int c = 0; c < CLIENTS; c++) free(in.kept[c]);
  free(run);
  fg_world_close(&w);
  fg_config_free(&cfg);
}

Test(updates, a_diverging_client_sends_nothing, .timeout = 300) {
  fg_config cfg;
  load_config(1, NULL, &cfg);
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  injector in;
  memset(&in, 0, sizeof in);
  in.round = 0;
  in.diverge_client = 2;
  in.nan_client = in.short_client = in.far_client = in.shape_client = -1;
  fg_update_set_test_hook(inject, &in);
  char *run = fgt_join(tmp, "run-diverge");
  cr_assert_eq(mkdir(run, 0755), 0);
  fg_run_result res;
  FGT_OK(fg_run_method(&w, 0, run, 0, on_round, &in, &res));
  fg_update_set_test_hook(NULL, NULL);
  const fg_client_record *r = record_of(&in, 2);
  cr_assert_eq(r->status, FG_CLIENT_DIVERGED);
  cr_assert(strstr(r->error, "diverged: ") != NULL && strstr(r->error, "loss") != NULL, "%s", r->error);
  cr_assert(in.kept[2] == NULL, "a diverged client sends nothing");
  for (int c = 0; c < CLIENTS; c++)
    if (c != 2) cr_assert_eq(record_of(&in, c)->status, FG_CLIENT_OK, "client %d", c);
  final_model_is_the_mean_of_the_kept(&w, run, &in);
  for (int c = 0; c < CLIENTS; c++) free(in.kept[c]);
  fg_world_close(&w);
  fg_config_free(&cfg);

  /* on_diverge: stop ends the run, naming the client */
  load_config(1, "updates: {on_diverge: stop}\n", &cfg);
  FGT_OK(fg_world_open(&cfg, &w));
  memset(&in, 0, sizeof in);
  in.round = 0;
  in.diverge_client = 2;
  in.nan_client = in.short_client = in.far_client = in.shape_client = -1;
  fg_update_set_test_hook(inject, &in);
  char *stop = fgt_join(tmp, "run-stop");
  cr_assert_eq(mkdir(stop, 0755), 0);
  fg_status st = fg_run_method(&w, 0, stop, 0, on_round, &in, &res);
  fg_update_set_test_hook(NULL, NULL);
  cr_assert_eq(st, FG_ERR_NUMERIC, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), "client 2") != NULL && strstr(fg_last_error(), "on_diverge: stop") != NULL, "%s",
            fg_last_error());
  for (int c = 0; c < CLIENTS; c++) free(in.kept[c]);
  free(stop);
  free(run);
  fg_world_close(&w);
  fg_config_free(&cfg);
}
