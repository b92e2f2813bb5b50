/* The round loop: levels and their memory, client levels, sampling, local training,
 * aggregation, evaluation, metrics and checkpoints. */
#include "fl/server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/nn/fit.h"
#include "fedgap_revision.h"
#include "fl/checkpoint.h"
#include "fl/client.h"
#include "fl/job.h"
#include "fl/method.h"
#include "fl/remote.h"
#include "fl/sampling.h"
#include "fl/submodel.h"
#include "fl/update_check.h"

/* The training samples static BN recalibration runs over: eval.bn_samples of them (0: all). */
static int64_t bn_sample_count(const fg_config *c, int64_t total) {
  return c->eval_bn_samples > 0 && c->eval_bn_samples < total ? c->eval_bn_samples : total;
}

typedef struct server {
  const fg_world *w;
  const fg_config *cfg;
  const fg_method_config *mc;
  const fg_method_ops *ops;
  fg_method_plan mp;
  fg_ledger ledger;                          /* the server's own memory */
  fg_graph *global;
  fg_region state;                           /* the global model */
  fg_graph *level_graph[FG_MAX_LEVELS];
  fg_plan *round_plan[FG_MAX_LEVELS];        /* a local step at each level, planned for round round_of_plan[l] */
  int round_of_plan[FG_MAX_LEVELS];
  fg_index_plan level_plan[FG_MAX_LEVELS];   /* first-channel plans, built once */
  int *level;                                /* per client; -1: fits no level */
  fg_region sub_in, sub_out;                 /* one client's sub-model, sent and returned */
  fg_region prox;                            /* the round's proximal linear terms (prox_terms), or empty */
  int64_t prox_numel;                        /* floats of them this round; 0: none */
  int64_t *prox_at;                          /* [clients]: slot i's term at prox + prox_at[i] */
  fg_schedule *schedule;                     /* methods with one level per round */
  fg_method_server *method_state;            /* methods with server-side state */
  double *param_scale;                       /* [global params]: methods with tensor weights */
  int *round_levels;                         /* [clients]: the level each participant of the round trained */
  int *eligible;                             /* per client, for the round's level: 0 fits, -1 not */
  fg_aggregator agg;
  fg_trainer *eval;
  fg_graph *stats_graph;                     /* static BN recalibration: the global model, frozen */
  fg_trainer *stats;
  fg_region eval_state;
  fg_loader loader;                          /* host batches of evaluation and BN recalibration */
  fg_region bn_samples;                      /* uint32 [n_bn_samples]: with local splits, the training
                                                samples BN recalibration reads */
  int64_t n_bn_samples;
  int *participants;
  fg_client_record *records;
  size_t process_peak;                       /* this process's (rank 0's in a spread run) */
  int method;                                /* index into the configuration's methods */
  fg_job *jobs;                              /* [clients]: the round's jobs, in slot order */
  const fg_transport *t;                     /* a spread run (fg_spread_active); else NULL */
  const fg_remote *remote;                   /* a run on remote devices; else NULL */
  fg_metrics *metrics;                       /* the run's records (a failed try of a remote round) */
  size_t fit_bytes[FG_MAX_LEVELS];           /* each level's planned bytes, before FedAvg-S collapses them */
  int n_fit_levels;
  unsigned char *wire;                       /* a round header or a result as it travels */
  size_t wire_cap;
  unsigned char *awaited;                    /* [processes]: scratch of the note of what rank 0 awaits */
  fg_spread_time time;                       /* rank 0 of a spread run: where the time went */
  char report[4096];                         /* the method's records of a round or of the run */
} server;

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *f32(const fg_region *r) { return (float *)r->ptr; }

/* ------------------------------------------------------------------------------------------ */
/* Set-up                                                                                      */

/* The plan of a local step at `level` in `round` (fg_method_plan_step), made once per level and
 * round and shared by the round's participants at that level. */
static fg_status plan_step(server *s, int level, int round, fg_plan **out) {
  fg_trainer_options local = fg_world_local_options(s->w, round);
  return fg_method_plan_step(s->ops, s->mc, &s->mp, level, s->level_graph[level], &local, round, s->cfg->rounds, out);
}

static fg_status round_plan(server *s, int level, int round, const fg_plan **out) {
  if (!s->round_plan[level] || s->round_of_plan[level] != round) {
    fg_plan_free(s->round_plan[level]);
    s->round_plan[level] = NULL;
    FG_TRY(plan_step(s, level, round, &s->round_plan[level]));
    s->round_of_plan[level] = round;
  }
  *out = s->round_plan[level];
  return FG_OK;
}

/* The level's model and the memory of its budget step (fg_method_budget_round). */
static fg_status build_level(server *s, int l) {
  FG_TRY(fg_method_build_level(s->ops, s->mc, &s->mp, l, &s->level_graph[l]));
  fg_plan *p;
  FG_TRY(plan_step(s, l, fg_method_budget_round(s->cfg->rounds), &p));
  s->mp.levels[l].planned_bytes = p->total;
  fg_plan_free(p);
  return FG_OK;
}

/* Budgets play no part: every client trains uncapped. */
static int uncapped(const server *s) { return s->mp.ignore_budgets || s->mp.level_by_index; }

static int fits(const server *s, int client, int level) {
  size_t budget = s->w->budgets[client];
  return uncapped(s) || budget == 0 || s->mp.levels[level].planned_bytes <= budget;
}

/* The most capable level each client's budget fits (-1: none), or the level its index gives. */
static void assign_levels(server *s) {
  int n = s->mp.n_levels;
  for (int c = 0; c < s->cfg->clients; c++) {
    if (s->mp.level_by_index) {
      s->level[c] = n - 1 - c % n;
      continue;
    }
    s->level[c] = -1;
    for (int l = 0; l < s->mp.n_levels; l++)
      if (fits(s, c, l)) {
        s->level[c] = l;
        break;
      }
  }
}

/* A run on remote devices: the levels the clients' devices report they fit (measured there, under
 * their own budgets and backends) replace those of the configuration's budgets, unless budgets
 * play no part in the method. */
static fg_status reported_levels(server *s, const fg_remote *remote, const char *dir) {
  FG_TRY(remote->begin(remote->ctx, dir, s->method, s->cfg->clients, s->mp.n_levels, s->eligible));
  if (uncapped(s)) return FG_OK;
  for (int c = 0; c < s->cfg->clients; c++) {
    if (s->eligible[c] < -1 || s->eligible[c] >= s->mp.n_levels)
      return FG_FAIL(FG_ERR_FORMAT, "the device of client %d reports level %d, not one of the method's %d", c,
                     s->eligible[c], s->mp.n_levels);
    s->level[c] = s->eligible[c];
  }
  return FG_OK;
}

/* FedAvg-S: the level the smallest budget fits becomes the only level and the global model. */
static fg_status collapse_to_smallest(server *s) {
  int smallest = -1;
  for (int c = 0; c < s->cfg->clients; c++)
    if (s->level[c] > smallest) smallest = s->level[c];
  if (smallest < 0)
    return FG_FAIL(FG_ERR_CONFIG, "method %s: no client's budget fits any level", s->mc->name);
  fg_graph *keep = s->level_graph[smallest];
  for (int l = 0; l < s->mp.n_levels; l++) {
    if (l != smallest) fg_graph_free(s->level_graph[l]);
    s->level_graph[l] = NULL;
  }
  s->mp.levels[0] = s->mp.levels[smallest];
  s->level_graph[0] = keep;
  s->mp.n_levels = 1;
  s->mp.global = s->mp.levels[0].spec;
  for (int c = 0; c < s->cfg->clients; c++)
    if (s->level[c] >= 0) s->level[c] = 0;
  return FG_OK;
}

static fg_status alloc_f32(server *s, fg_region *r, int64_t n, fg_mem_category cat, const char *what) {
  return fg_region_alloc(r, &s->ledger, fg_host_device(), cat, (size_t)n * sizeof(float), what);
}

/* With local test splits the training set holds clients' test samples: BN recalibration then
 * reads eval.bn_samples samples spread evenly over the clients' train parts (which lie one
 * after another in the partition's index array). */
static fg_status bn_sample_index(server *s) {
  if (!(s->cfg->local_test > 0)) return FG_OK;
  const fg_partition *part = &s->w->partition;
  const uint32_t *all = part->index.ptr;
  int64_t total = ((const int64_t *)part->offset.ptr)[part->n_clients];
  int64_t n = bn_sample_count(s->cfg, total);
  FG_TRY(fg_region_alloc(&s->bn_samples, &s->ledger, fg_host_device(), FG_MEM_DATA, (size_t)n * sizeof(uint32_t),
                         "BN recalibration samples"));
  uint32_t *idx = s->bn_samples.ptr;
  s->n_bn_samples = n;
  for (int64_t i = 0; i < n; i++) idx[i] = all[i * total / n];
  return FG_OK;
}

static fg_status make_eval(server *s) {
  const fg_config *c = s->cfg;
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = c->eval_batch;
  o.mode = FG_EXEC_INFERENCE;
  o.device = fg_world_local_options(s->w, 0).device;
  FG_TRY(fg_trainer_create(s->global, &o, &s->ledger, &s->eval));
  const fg_dataset *ds = &s->w->train;
  FG_TRY(fg_loader_alloc(&s->loader, &s->ledger, 0, c->eval_batch, ds->c, ds->h, ds->w));
  if (!s->mp.static_bn) return FG_OK;
  FG_TRY(fg_model_build(&s->mp.global, &s->stats_graph));
  fg_graph_set_trainable(s->stats_graph, "", 0);
  o.mode = FG_EXEC_STORE;
  FG_TRY(fg_trainer_create(s->stats_graph, &o, &s->ledger, &s->stats));
  FG_TRY(bn_sample_index(s));
  return alloc_f32(s, &s->eval_state, fg_graph_state_numel(s->global), FG_MEM_PARAMS, "evaluation state");
}

/* What every process of a run sets up for a method: its plan and levels, the clients' levels, the
 * global model and one client's buffers. A worker sets up only this. */
static fg_status setup_levels(server *s, const fg_world *w, int method, const fg_remote *remote, const char *dir) {
  memset(s, 0, sizeof *s);
  s->w = w;
  s->cfg = w->cfg;
  s->method = method;
  if (method < 0 || method >= w->cfg->n_methods)
    return FG_FAIL(FG_ERR_INVALID, "method %d is not one of the configuration's %d", method, w->cfg->n_methods);
  s->mc = &w->cfg->methods[method];
  fg_ledger_init(&s->ledger, "server", 0);
  s->ops = fg_method_find(s->mc->name);
  if (!s->ops) return fg_last_status();
  FG_TRY(s->ops->plan(s->mc, &w->base, &s->mp));
  int clients = s->cfg->clients;
  s->level = calloc((size_t)clients, sizeof *s->level);
  s->participants = calloc((size_t)clients, sizeof *s->participants);
  s->records = calloc((size_t)clients, sizeof *s->records);
  s->eligible = calloc((size_t)clients, sizeof *s->eligible);
  s->round_levels = calloc((size_t)clients, sizeof *s->round_levels);
  s->jobs = calloc((size_t)clients, sizeof *s->jobs);
  s->prox_at = calloc((size_t)clients, sizeof *s->prox_at);
  s->wire_cap = fg_wire_header_bytes(clients) > FG_RESULT_BYTES ? fg_wire_header_bytes(clients) : FG_RESULT_BYTES;
  s->wire = malloc(s->wire_cap);
  if (!s->level || !s->participants || !s->records || !s->eligible || !s->round_levels || !s->jobs || !s->wire ||
      !s->prox_at)
    return FG_FAIL(FG_ERR_OOM, "server: out of memory");
  for (int l = 0; l < s->mp.n_levels; l++) FG_TRY(build_level(s, l));
  s->n_fit_levels = s->mp.n_levels;
  for (int l = 0; l < s->mp.n_levels; l++) s->fit_bytes[l] = s->mp.levels[l].planned_bytes;
  assign_levels(s);
  if (remote) FG_TRY(reported_levels(s, remote, dir));
  if (s->mp.same_level) FG_TRY(collapse_to_smallest(s));
  FG_TRY(fg_model_build(&s->mp.global, &s->global));
  fg_graph_set_bn_mode(s->global, "", s->mp.bn_mode);
  int64_t numel = fg_graph_state_numel(s->global), largest = 0;
  FG_TRY(alloc_f32(s, &s->state, numel, FG_MEM_PARAMS, "global model"));
  for (int l = 0; l < s->mp.n_levels; l++) {
    int64_t n = fg_graph_state_numel(s->level_graph[l]);
    if (n > largest) largest = n;
    if (s->mp.channels == FG_CHANNELS_FIRST) {
      fg_channel_select sel = {FG_CHANNELS_FIRST, 0, 0, 0};
      FG_TRY(fg_index_plan_build(s->global, s->level_graph[l], &sel, &s->level_plan[l]));
    }
  }
  FG_TRY(alloc_f32(s, &s->sub_in, largest, FG_MEM_OTHER, "client sub-model (sent)"));
  return alloc_f32(s, &s->sub_out, largest, FG_MEM_OTHER, "client sub-model (returned)");
}

/* What only the server keeps: the initial global state, the aggregator, the method's server state
 * and evaluation. */
static fg_status setup_server(server *s, const fg_transport *t) {
  s->t = fg_spread_active(t) ? t : NULL;
  if (s->t && !(s->awaited = calloc((size_t)t->size, 1))) return FG_FAIL(FG_ERR_OOM, "server: out of memory");
  int clients = s->cfg->clients;
  int64_t numel = fg_graph_state_numel(s->global);
  fg_graph_init_state(s->global, s->cfg->seed, f32(&s->state));
  FG_TRY(fg_aggregator_init(&s->agg, numel, &s->ledger));
  if (s->ops->tensor_weight) {
    s->param_scale = calloc((size_t)fg_graph_param_count(s->global), sizeof *s->param_scale);
    if (!s->param_scale) return FG_FAIL(FG_ERR_OOM, "server: out of memory");
  }
  if (s->ops->server_create) {
    int most = fg_sample_count(&s->cfg->sampling, clients, clients); /* participants a round can have */
    FG_TRY(s->ops->server_create(s->mc, &s->mp, s->global, s->cfg->seed, clients, most, s->cfg->device,
                                 &s->ledger, &s->method_state));
  }
  return make_eval(s);
}

static void server_free(server *s) {
  fg_trainer_destroy(s->stats);
  fg_graph_free(s->stats_graph);
  fg_trainer_destroy(s->eval);
  fg_loader_free(&s->loader);
  fg_aggregator_free(&s->agg);
  for (int l = 0; l < FG_MAX_LEVELS; l++) {
    if (s->mp.channels == FG_CHANNELS_FIRST && s->level_graph[l]) fg_index_plan_free(&s->level_plan[l]);
    fg_plan_free(s->round_plan[l]);
    fg_graph_free(s->level_graph[l]);
  }
  fg_graph_free(s->global);
  fg_region_free(&s->eval_state);
  fg_region_free(&s->bn_samples);
  fg_region_free(&s->sub_in);
  fg_region_free(&s->sub_out);
  fg_region_free(&s->prox);
  fg_region_free(&s->state);
  if (s->schedule) s->ops->schedule_free(s->schedule);
  if (s->method_state) s->ops->server_free(s->method_state);
  free(s->param_scale);
  free(s->round_levels);
  free(s->eligible);
  free(s->level);
  free(s->participants);
  free(s->records);
  free(s->jobs);
  free(s->prox_at);
  free(s->wire);
  free(s->awaited);
  memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------------------------------------ */
/* A round                                                                                     */

static void level_label(const server *s, int level, char *buf, size_t cap) {
  snprintf(buf, cap, "%s", level >= 0 ? s->mp.levels[level].label : "none");
}

/* The method's factor for each global parameter of participant `slot` of `n` (NULL: none). */
static const double *tensor_scale(server *s, int slot, int n) {
  if (!s->param_scale) return NULL;
  for (int i = 0; i < fg_graph_param_count(s->global); i++)
    s->param_scale[i] = s->ops->tensor_weight(s->mc, slot, n, fg_graph_param(s->global, i));
  return s->param_scale;
}

/* The job of participant `slot` of `round`: client c at `level` (-1: it fits none). */
static fg_job make_job(const server *s, int round, int slot, int c, int level) {
  fg_job j;
  memset(&j, 0, sizeof j);
  j.method = s->method;
  j.round = round;
  j.slot = slot;
  j.client = c;
  j.level = level;
  j.seed = s->cfg->seed;
  j.cap = level < 0 || uncapped(s) ? 0 : (uint64_t)s->w->budgets[c];
  return j;
}

/* A participant's record before it trains: who, at what level, on how many samples; a client that
 * fits no level is complete here. */
static void record_start(const server *s, const fg_job *j, fg_client_record *rec) {
  int c = j->client;
  memset(rec, 0, sizeof *rec);
  rec->update_distance = NAN;
  rec->id = c;
  rec->level = j->level;
  rec->samples = fg_partition_size(&s->w->partition, c);
  level_label(s, rec->level, rec->config, sizeof rec->config);
  if (rec->level >= 0) return;
  rec->status = FG_CLIENT_NO_FIT;
  rec->budget_bytes = s->w->budgets[c];
  snprintf(rec->error, sizeof rec->error, "a budget of %zu bytes fits none of the method's levels (the smallest "
           "needs %zu)", s->w->budgets[c], s->mp.levels[s->mp.n_levels - 1].planned_bytes);
}

/* The index plan of job j: its level's first-channel plan, or one made for its client and round in
 * *fresh (FedRolex, random channels). Release with plan_done. */
static fg_status job_plan(server *s, const fg_job *j, fg_index_plan *fresh, const fg_index_plan **out) {
  *out = &s->level_plan[j->level];
  if (s->mp.channels == FG_CHANNELS_FIRST) return FG_OK;
  fg_channel_select sel = {s->mp.channels, j->round, s->cfg->seed, j->client};
  FG_TRY(fg_index_plan_build(s->global, s->level_graph[j->level], &sel, fresh));
  *out = fresh;
  return FG_OK;
}

static void plan_done(const fg_index_plan *plan, fg_index_plan *fresh) {
  if (plan == fresh) fg_index_plan_free(fresh);
}

/* Local training of job j, wherever it runs, from the sub-model sent (in sub_in) and, for a method
 * with a proximal term, its linear part (else NULL), under its budget into `trained` [state numel
 * of its level's model]; fills the record. */
static fg_status train_sent(server *s, const fg_job *j, int data_client, int run_clients, const float *linear,
                            float *trained, fg_client_record *rec) {
  const fg_graph *g = s->level_graph[j->level];
  fg_update sent = {f32(&s->sub_in), fg_graph_state_numel(g), 0, NULL};
  fg_update_run_test_hook(FG_HOOK_SENT, j->round, j->client, &sent, f32(&s->sub_in), sent.numel);
  const fg_plan *step = NULL;
  FG_TRY(round_plan(s, j->level, j->round, &step));
  fg_local_job job = {s->w,           j->client,         j->round, g, step, (size_t)j->cap,
                      s->mp.drop_last, f32(&s->sub_in), trained, linear, data_client, run_clients};
  return fg_local_train(&job, rec);
}

/* The linear part of job j's proximal term among the round's (prox_terms), or NULL. */
static const float *job_linear(const server *s, const fg_job *j) {
  return s->prox_numel > 0 ? f32(&s->prox) + s->prox_at[j->slot] : NULL;
}

/* train_sent of job j with its sub-model extracted from the global state. */
static fg_status train_job(server *s, const fg_job *j, const fg_index_plan *plan, float *trained,
                           fg_client_record *rec) {
  FG_TRY(fg_submodel_extract(plan, s->global, s->level_graph[j->level], f32(&s->state), f32(&s->sub_in)));
  return train_sent(s, j, -1, 0, job_linear(s, j), trained, rec);
}

/* Where each trainable participant's proximal linear term lies among the round's jobs[n] (slot
 * order, each the state numel of its level's model; -1 for one that trains nothing), the same on
 * every process of a run; expected: their total when known (a worker: rank 0's), else -1. Makes
 * room for them in s->prox. */
static fg_status prox_layout(server *s, const fg_job *jobs, int n, int64_t expected) {
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    s->prox_at[i] = jobs[i].level >= 0 ? at : -1;
    if (jobs[i].level >= 0) at += fg_graph_state_numel(s->level_graph[jobs[i].level]);
  }
  if (expected >= 0 && at != expected)
    return FG_FAIL(FG_ERR_INTERNAL, "rank 0 sent %lld floats of proximal terms, the round's jobs need %lld",
                   (long long)expected, (long long)at);
  s->prox_numel = at;
  if (s->prox.bytes >= (size_t)at * sizeof(float)) return FG_OK;
  fg_region_free(&s->prox);
  return alloc_f32(s, &s->prox, at, FG_MEM_OTHER, "proximal terms of the round");
}

/* Methods with a proximal term (the plan's prox_mu > 0): rank 0 asks the method for the linear
 * term of each trainable participant of the round (its client_prox, from the sub-model it is sent),
 * into s->prox. */
static fg_status prox_terms(server *s, int n) {
  s->prox_numel = 0;
  if (!(s->mp.prox_mu > 0)) return FG_OK;
  if (!s->ops->client_prox || !s->method_state)
    return FG_FAIL(FG_ERR_INTERNAL, "method %s: a proximal term without the method's client terms", s->mc->name);
  FG_TRY(prox_layout(s, s->jobs, n, -1));
  for (int i = 0; i < n; i++) {
    const fg_job *j = &s->jobs[i];
    if (j->level < 0) continue;
    const fg_graph *g = s->level_graph[j->level];
    fg_index_plan fresh;
    const fg_index_plan *plan;
    FG_TRY(job_plan(s, j, &fresh, &plan));
    fg_status st = fg_submodel_extract(plan, s->global, g, f32(&s->state), f32(&s->sub_in));
    plan_done(plan, &fresh);
    const float *linear = NULL;
    if (st == FG_OK) st = s->ops->client_prox(s->method_state, j->client, j->level, g, f32(&s->sub_in), &linear);
    FG_TRY(st);
    memcpy(f32(&s->prox) + s->prox_at[i], linear, (size_t)fg_graph_state_numel(g) * sizeof(float));
  }
  return FG_OK;
}

/* The server's checks on job j's update `trained` [state numel of its level's model] against the
 * sub-model it was sent (fl/update_check.h): one that fails them turns the record to rejected,
 * with the reason. */
static void screen_update(server *s, const fg_job *j, const float *sent, float *trained, fg_client_record *rec) {
  const fg_graph *g = s->level_graph[j->level];
  fg_update u = {trained, fg_graph_state_numel(g), 0, NULL};
  int64_t room = (int64_t)(s->sub_out.bytes / sizeof(float));
  fg_update_run_test_hook(FG_HOOK_RETURNED, j->round, j->client, &u, trained, room);
  if (fg_update_check(g, sent, &u, s->cfg->update_max_distance, &rec->update_distance, rec->error,
                      sizeof rec->error) != FG_UPDATE_ACCEPTED)
    rec->status = FG_CLIENT_REJECTED;
}

/* The absorb step, the same whoever trained job j (participant j->slot of n): the server's checks
 * on its update (`sent`: the sub-model it was sent), then the update into the accumulators and the
 * method's server state. */
static fg_status absorb(server *s, const fg_job *j, const fg_index_plan *plan, int n, const float *sent,
                        float *trained, fg_client_record *rec) {
  rec->update_distance = NAN;
  if (rec->status != FG_CLIENT_OK) return FG_OK;
  screen_update(s, j, sent, trained, rec);
  if (rec->status != FG_CLIENT_OK) return FG_OK;
  int c = j->client;
  const fg_graph *g = s->level_graph[j->level];
  size_t bytes = (size_t)fg_graph_state_numel(g) * sizeof(float);
  rec->bytes_down = rec->bytes_up = bytes;
  double weight = s->mp.weighting == FG_WEIGHT_SAMPLES ? (double)rec->samples : 1.0;
  const float *mask = s->mp.label_mask ? fg_world_class_mask(s->w, c) : NULL;
  uint8_t classes[4096];
  if (mask) {
    int k = s->w->train.classes < 4096 ? s->w->train.classes : 4096;
    for (int i = 0; i < k; i++) classes[i] = mask[i] != 0.0f;
  }
  FG_TRY(fg_aggregator_add_scaled(&s->agg, plan, s->global, g, trained, weight, mask ? classes : NULL,
                                  tensor_scale(s, j->slot, n)));
  return s->method_state ? s->ops->server_collect(s->method_state, j->slot, c, rec->level, g, sent, trained) : FG_OK;
}

/* Trains job j (participant j->slot of n) here and absorbs it. */
static fg_status train_client(server *s, const fg_job *j, int n, fg_client_record *rec) {
  record_start(s, j, rec);
  if (j->level < 0) return FG_OK;
  fg_index_plan fresh;
  const fg_index_plan *plan;
  FG_TRY(job_plan(s, j, &fresh, &plan));
  double t0 = seconds_now();
  fg_status st = train_job(s, j, plan, f32(&s->sub_out), rec);
  s->time.server_train += seconds_now() - t0;
  s->time.server_jobs++;
  if (st == FG_OK) st = absorb(s, j, plan, n, f32(&s->sub_in), f32(&s->sub_out), rec);
  if (rec->process_peak_bytes > s->process_peak) s->process_peak = rec->process_peak_bytes;
  plan_done(plan, &fresh);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Rank 0 of a spread run                                                                      */

/* What rank 0 awaits from slot `from` of the round on: the first slot each worker still owes. */
static void note_awaited(server *s, int round, int from, int n) {
  char text[512];
  size_t len = (size_t)snprintf(text, sizeof text, "round %d, awaiting", round + 1);
  memset(s->awaited, 0, (size_t)s->t->size);
  int listed = 0, i = from;
  for (; i < n && len < sizeof text - 64 && listed < s->t->size - 1; i++) {
    const fg_job *j = &s->jobs[i];
    if (j->level < 0 || j->owner == 0 || s->awaited[j->owner]) continue;
    s->awaited[j->owner] = 1;
    len += (size_t)snprintf(text + len, sizeof text - len, "%s rank %d on slot %d (client %d)", listed ? "," : "",
                            j->owner, j->slot, j->client);
    listed++;
  }
  if (!listed) snprintf(text + len, sizeof text - len, " no worker (every result of the round was taken)");
  else if (i < n && len >= sizeof text - 64) snprintf(text + len, sizeof text - len, ", ...");
  s->t->note(s->t->ctx, text);
}

/* Deals the round's trainable participants to the processes in slot order, round-robin from rank
 * (round mod P) so that no process takes a round's odd one every round, and sends every process
 * the jobs and the global state. */
static fg_status send_round(server *s, int round, int n) {
  int k = round % s->t->size;
  for (int i = 0; i < n; i++) s->jobs[i].owner = s->jobs[i].level >= 0 ? k++ % s->t->size : 0;
  int64_t numel = fg_graph_state_numel(s->global);
  fg_wire_header h = {FG_WIRE_ROUND, s->method, round, FG_OK, numel, n, s->prox_numel};
  size_t len = 0;
  FG_TRY(fg_wire_header_encode(&h, s->jobs, s->wire, s->wire_cap, &len));
  double t0 = seconds_now();
  fg_status st = s->t->broadcast(s->t->ctx, s->wire, &len, s->wire_cap);
  if (st == FG_OK) st = s->t->broadcast_floats(s->t->ctx, f32(&s->state), numel);
  if (st == FG_OK && s->prox_numel > 0) st = s->t->broadcast_floats(s->t->ctx, f32(&s->prox), s->prox_numel);
  s->time.broadcast += seconds_now() - t0;
  if (st == FG_OK) note_awaited(s, round, 0, n);
  return st;
}

/* Job j's result from the worker that trained it: *res, its record in rec, the trained state in
 * sub_out. */
static fg_status receive_result(server *s, const fg_job *j, fg_result *res, fg_client_record *rec) {
  int64_t numel = fg_graph_state_numel(s->level_graph[j->level]), got = 0;
  char what[96];
  snprintf(what, sizeof what, "round %d, slot %d (client %d)", j->round + 1, j->slot, j->client);
  double t0 = seconds_now();
  fg_status st = s->t->receive(s->t->ctx, j->owner, s->wire, FG_RESULT_BYTES, f32(&s->sub_out), numel, &got, what);
  s->time.server_wait += seconds_now() - t0;
  FG_TRY(st);
  FG_TRY(fg_result_decode(s->wire, FG_RESULT_BYTES, res));
  if (res->round != j->round || res->slot != j->slot)
    return FG_FAIL(FG_ERR_INTERNAL, "rank %d answered round %d, slot %d where %s was due", j->owner, res->round + 1,
                   res->slot, what);
  *rec = res->rec;
  if (res->status == FG_OK && !res->skipped && rec->status == FG_CLIENT_OK && got != numel)
    return FG_FAIL(FG_ERR_FORMAT, "rank %d sent %lld floats for %s, expected %lld", j->owner, (long long)got, what,
                   (long long)numel);
  return FG_OK;
}

/* Job j (participant j->slot of n), trained by another process: its result, then the absorb step. */
static fg_status take_result(server *s, const fg_job *j, int n, fg_client_record *rec) {
  fg_result res;
  FG_TRY(receive_result(s, j, &res, rec));
  if (res.status != FG_OK) return FG_FAIL(res.status, "%s (rank %d)", res.error, j->owner);
  if (res.skipped)
    return FG_FAIL(FG_ERR_INTERNAL, "rank %d skipped round %d, slot %d without an error before it", j->owner,
                   j->round + 1, j->slot);
  fg_index_plan fresh;
  const fg_index_plan *plan;
  FG_TRY(job_plan(s, j, &fresh, &plan));
  const fg_graph *g = s->level_graph[j->level];
  fg_status st = fg_submodel_extract(plan, s->global, g, f32(&s->state), f32(&s->sub_in));
  if (st == FG_OK) st = absorb(s, j, plan, n, f32(&s->sub_in), f32(&s->sub_out), rec);
  plan_done(plan, &fresh);
  return st;
}

/* After the round failed at a slot before `from`: takes (and drops) the results the workers still
 * send, so that every process ends the round together; returns `failed` with its message. */
static fg_status drain(server *s, int from, int n, fg_status failed) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s", fg_last_error());
  for (int i = from; i < n; i++) {
    const fg_job *j = &s->jobs[i];
    fg_result res;
    if (j->level >= 0 && j->owner != 0 && receive_result(s, j, &res, &s->records[i]) != FG_OK) break;
  }
  return FG_FAIL(failed, "%s", msg);
}

/* The end of a method: workers drop its models and report their time, summed into s->time. */
static fg_status end_method(server *s) {
  fg_wire_header h = {FG_WIRE_METHOD_END, s->method, 0, FG_OK, 0, 0, 0};
  size_t len = 0;
  FG_TRY(fg_wire_header_encode(&h, NULL, s->wire, s->wire_cap, &len));
  FG_TRY(s->t->broadcast(s->t->ctx, s->wire, &len, s->wire_cap));
  unsigned char mine[FG_WORKER_TIME_BYTES], *all = malloc((size_t)s->t->size * FG_WORKER_TIME_BYTES);
  if (!all) return FG_FAIL(FG_ERR_OOM, "server: out of memory");
  fg_worker_time none = {0, 0, 0, 0};
  fg_worker_time_encode(&none, mine);
  fg_status st = s->t->gather(s->t->ctx, mine, sizeof mine, all);
  for (int k = 1; k < s->t->size && st == FG_OK; k++) {
    fg_worker_time wt;
    st = fg_worker_time_decode(all + (size_t)k * FG_WORKER_TIME_BYTES, &wt);
    s->time.worker_train += wt.train;
    s->time.worker_send += wt.send;
    s->time.worker_idle += wt.idle;
    s->time.worker_jobs += wt.jobs;
  }
  free(all);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* A run on remote devices (fl/remote.h)                                                       */

/* Sends every trainable job of the round with the sub-model extracted for it. */
static fg_status dispatch_round(server *s, int n) {
  for (int i = 0; i < n; i++) {
    const fg_job *j = &s->jobs[i];
    if (j->level < 0) continue;
    fg_index_plan fresh;
    const fg_index_plan *plan;
    FG_TRY(job_plan(s, j, &fresh, &plan));
    const fg_graph *g = s->level_graph[j->level];
    fg_status st = fg_submodel_extract(plan, s->global, g, f32(&s->state), f32(&s->sub_in));
    plan_done(plan, &fresh);
    double t0 = seconds_now();
    if (st == FG_OK)
      st = s->remote->dispatch(s->remote->ctx, j, f32(&s->sub_in), job_linear(s, j), fg_graph_state_numel(g));
    s->time.broadcast += seconds_now() - t0;
    FG_TRY(st);
  }
  return FG_OK;
}

/* Whether the record a device sent answers job j, with the floats of its level; else why not. */
static int answers_job(const server *s, const fg_job *j, const fg_result *res, char *why, size_t cap) {
  int64_t numel = fg_graph_state_numel(s->level_graph[j->level]);
  if (res->rec.id != j->client || res->rec.level != j->level)
    snprintf(why, cap, "its record names client %d at level %d where the job was client %d at level %d",
             res->rec.id, res->rec.level, j->client, j->level);
  else if (res->rec.status == FG_CLIENT_OK && res->numel != numel)
    snprintf(why, cap, "it returned %lld floats where the level has %lld", (long long)res->numel, (long long)numel);
  else
    return 1;
  return 0;
}

/* Job j's record once its round closed: the device's record with *trained := 1 (its trained
 * sub-model in sub_out) when a well-formed result answering the job arrived; else the slot's
 * status (dropped, failed, rejected) with the reason. */
static fg_status remote_record(server *s, const fg_job *j, fg_client_record *rec, int *trained) {
  *trained = 0;
  record_start(s, j, rec);
  if (j->level < 0) return FG_OK;
  int64_t numel = fg_graph_state_numel(s->level_graph[j->level]);
  fg_result res;
  fg_remote_outcome outcome = FG_REMOTE_DROPPED;
  char why[sizeof rec->error] = "";
  FG_TRY(s->remote->result(s->remote->ctx, j, &res, f32(&s->sub_out), numel, &outcome, why, sizeof why));
  if (outcome == FG_REMOTE_TRAINED && res.status != FG_OK) {
    outcome = FG_REMOTE_REFUSED;
    snprintf(why, sizeof why, "the device failed: %.160s", res.error);
  } else if (outcome == FG_REMOTE_TRAINED && !answers_job(s, j, &res, why, sizeof why)) {
    outcome = FG_REMOTE_REFUSED;
  }
  if (outcome != FG_REMOTE_TRAINED) {
    rec->status = outcome == FG_REMOTE_DROPPED ? FG_CLIENT_DROPPED
                  : res.status != FG_OK        ? FG_CLIENT_FAILED
                                               : FG_CLIENT_REJECTED;
    snprintf(rec->error, sizeof rec->error, "%s", why);
    return FG_OK;
  }
  *rec = res.rec;
  *trained = 1;
  return FG_OK;
}

/* Records a try of the round that closed with `answered` results, fewer than `needed`, in the run's
 * failed_rounds.jsonl: every participant's record as it stood when the try closed. */
static fg_status record_failed_try(server *s, int round, int n, int answered, int needed, int attempt, int retried) {
  for (int i = 0; i < n; i++) {
    int trained = 0;
    FG_TRY(remote_record(s, &s->jobs[i], &s->records[i], &trained));
  }
  fg_failed_round f = {round + 1, attempt, answered, needed, retried, n, s->records};
  return s->metrics ? fg_metrics_append_failed(s->metrics, &f) : FG_OK;
}

/* The round's jobs on the devices until the round closes with at least devices.min_results
 * results (or every trainable participant's, when there are fewer); a round that closes with
 * fewer failed, and is tried again devices.retries times before the run stops. */
static fg_status remote_round(server *s, int round, int n, int *failed_tries) {
  int trainable = 0;
  for (int i = 0; i < n; i++) trainable += s->jobs[i].level >= 0;
  int needed = s->cfg->devices_min_results < trainable ? s->cfg->devices_min_results : trainable;
  for (int attempt = 0;; attempt++) {
    int answered = 0;
    FG_TRY(dispatch_round(s, n));
    double t0 = seconds_now();
    FG_TRY(s->remote->close_round(s->remote->ctx, round, &answered));
    s->time.server_wait += seconds_now() - t0;
    *failed_tries = attempt;
    if (answered >= needed) return FG_OK;
    int retried = attempt < s->cfg->devices_retries;
    fg_status recorded = record_failed_try(s, round, n, answered, needed, attempt + 1, retried);
    s->remote->end_round(s->remote->ctx, round);
    FG_TRY(recorded);
    if (!retried)
      return FG_FAIL(FG_ERR_IO, "round %d failed %d times: %d results of %d participants, fewer than "
                     "devices.min_results %d (fedgap serve --resume continues from the last checkpoint)", round + 1,
                     attempt + 1, answered, trainable, needed);
    s->remote->failed_round(s->remote->ctx, round, answered, needed, attempt + 1);
  }
}

/* Job j (participant j->slot of n) trained on a device: its result once the round closed, then the
 * absorb step. A dropped, refused or failed slot is recorded with the reason and not aggregated. */
static fg_status take_remote(server *s, const fg_job *j, int n, fg_client_record *rec) {
  int trained = 0;
  FG_TRY(remote_record(s, j, rec, &trained));
  if (!trained) return FG_OK;
  fg_index_plan fresh;
  const fg_index_plan *plan;
  FG_TRY(job_plan(s, j, &fresh, &plan));
  fg_status st = fg_submodel_extract(plan, s->global, s->level_graph[j->level], f32(&s->state), f32(&s->sub_in));
  if (st == FG_OK) st = absorb(s, j, plan, n, f32(&s->sub_in), f32(&s->sub_out), rec);
  plan_done(plan, &fresh);
  return st;
}

/* BN statistics of the global model recomputed over a fixed prefix of the training data, as a
 * cumulative average (momentum 1/(k+1) at batch k), into eval_state. */
static fg_status recalibrate_bn(server *s) {
  float *st = f32(&s->eval_state);
  memcpy(st, f32(&s->state), (size_t)fg_graph_state_numel(s->global) * sizeof(float));
  for (int i = 0; i < fg_graph_param_count(s->global); i++) {
    const fg_param *p = fg_graph_param(s->global, i);
    if (!p->is_buffer) continue;
    float v = strstr(p->name, "running_var") ? 1.0f : 0.0f;
    for (int64_t k = 0; k < p->numel; k++) st[p->offset + k] = v;
  }
  FG_TRY(fg_trainer_set_state(s->stats, st));
  fg_dataset_view view = fg_dataset_view_all(&s->w->train);
  if (s->bn_samples.ptr)
    FG_TRY(fg_dataset_view_subset(&s->w->train, s->bn_samples.ptr, s->n_bn_samples, &view));
  view.n = bn_sample_count(s->cfg, view.n); /* a prefix of the training set (a spread with local splits) */
  FG_TRY(fg_recalibrate_bn(s->stats, &s->loader, &view, &s->w->norm));
  return fg_trainer_get_state(s->stats, st);
}

/* The output of the global model (n_outputs of them) that is the deepest exit a client of `level`
 * may use: the last one when the outputs are alternatives, else the level's own last exit. */
static int deepest_allowed_exit(const server *s, int level, int n_outputs) {
  if (s->mp.no_ensemble) return n_outputs - 1;
  int own = fg_spec_outputs(&s->mp.levels[level].spec);
  return (own < n_outputs ? own : n_outputs) - 1;
}

/* eval.protocol local ("General", hypemefed.md section 7): the global model (state already set) on
 * every client's local test split; clients that fit no level are skipped. accuracy: the mean over
 * clients of the accuracy at their deepest allowed exit; exit k: the mean over clients whose deepest
 * allowed exit is >= k; loss: sample-weighted. eval.max_samples does not apply. */
static fg_status evaluate_local(server *s, fg_round_record *r) {
  double exit_sum[FG_METRICS_MAX_EXITS] = {0}, general = 0, loss_sum = 0;
  int exit_clients[FG_METRICS_MAX_EXITS] = {0}, clients = 0, n_outputs = 0;
  int64_t samples = 0;
  for (int c = 0; c < s->cfg->clients; c++) {
    fg_dataset_view view;
    if (s->level[c] < 0) continue;
    FG_TRY(fg_world_client_test_view(s->w, c, &view));
    if (view.n == 0) continue;
    fg_epoch_stats es;
    FG_TRY(fg_evaluate(s->eval, &s->loader, &view, &s->w->norm, &es));
    n_outputs = es.n_outputs;
    int deepest = deepest_allowed_exit(s, s->level[c], es.n_outputs);
    for (int k = 0; k <= deepest; k++) {
      exit_sum[k] += (double)es.correct[k] / (double)es.samples;
      exit_clients[k]++;
    }
    general += (double)es.correct[deepest] / (double)es.samples;
    clients++;
    samples += es.samples;
    loss_sum += es.loss_sum;
  }
  r->evaluated = 1;
  r->eval_samples = samples;
  r->n_exits = n_outputs;
  for (int k = 0; k < n_outputs; k++) r->exit_accuracy[k] = exit_clients[k] ? exit_sum[k] / exit_clients[k] : NAN;
  r->accuracy = clients ? general / clients : NAN;
  r->ensemble_accuracy = NAN;
  r->test_loss = samples ? loss_sum / (double)samples : NAN;
  return FG_OK;
}

static fg_status evaluate(server *s, int full, fg_round_record *r) {
  const float *st = f32(&s->state);
  if (s->mp.static_bn) {
    FG_TRY(recalibrate_bn(s));
    st = f32(&s->eval_state);
  }
  FG_TRY(fg_trainer_set_state(s->eval, st));
  if (s->cfg->eval_protocol == FG_EVAL_LOCAL) return evaluate_local(s, r);
  fg_dataset_view view = fg_dataset_view_all(&s->w->test);
  if (!full && s->cfg->eval_max_samples > 0 && view.n > s->cfg->eval_max_samples) view.n = s->cfg->eval_max_samples;
  fg_epoch_stats es;
  FG_TRY(fg_evaluate(s->eval, &s->loader, &view, &s->w->norm, &es));
  r->evaluated = 1;
  r->eval_samples = es.samples;
  r->n_exits = es.n_outputs;
  for (int k = 0; k < es.n_outputs; k++) r->exit_accuracy[k] = (double)es.correct[k] / (double)es.samples;
  r->accuracy = r->exit_accuracy[es.n_outputs - 1];
  r->ensemble_accuracy =
      es.n_outputs > 1 && !s->mp.no_ensemble ? (double)es.ensemble_correct / (double)es.samples : NAN;
  r->test_loss = es.loss_sum / (double)es.samples;
  return FG_OK;
}

/* The training device's memory in use as its runtime reports it; NaN on the host device (the
 * process peak covers it) or when the backend cannot say. */
static double device_in_use(const server *s) {
  const fg_device d = s->cfg->device;
  fg_backend *b = fg_device_equal(d, fg_host_device()) ? NULL : fg_backend_for(d);
  size_t free_bytes = 0, total = 0;
  if (!b || !b->mem_query || b->mem_query(b, &free_bytes, &total) != FG_OK || total < free_bytes) return NAN;
  return (double)(total - free_bytes);
}

/* The kind the method's rounds draw with: its entry's, else the experiment's, `reference` resolved
 * to the method's own. (NeuLite's stages draw among the clients that fit the stage whatever it is.) */
static fg_sampling_kind sampling_kind(const server *s) {
  int k = s->mc->sampling >= 0 ? s->mc->sampling : (int)s->cfg->sampling.kind;
  return k == FG_SAMPLE_REFERENCE ? s->ops->sampling : (fg_sampling_kind)k;
}

static fg_status run_round(server *s, int round, fg_round_record *r) {
  double t0 = seconds_now();
  const fg_config *c = s->cfg;
  memset(r, 0, sizeof *r);
  r->round = round + 1;
  r->ensemble_accuracy = NAN;
  int n = 0, round_level = -1;
  if (s->schedule) {
    /* One level for everyone: participants come from the clients whose budget fits it. */
    FG_TRY(s->ops->schedule_next(s->schedule, round, f32(&s->state), &round_level));
    for (int k = 0; k < c->clients; k++) s->eligible[k] = fits(s, k, round_level) ? 0 : -1;
    fg_sampling_spec spec = c->sampling;
    spec.kind = FG_SAMPLE_ELIGIBLE;
    fg_status st = fg_sample_round(&spec, c->clients, s->eligible, 1, c->seed, round, s->participants, &n);
    if (st != FG_OK) {
      fg_error_prefix("round %d (%s)", round + 1, s->mp.levels[round_level].label);
      return st;
    }
  } else {
    fg_sampling_spec spec = c->sampling;
    spec.kind = sampling_kind(s);
    FG_TRY(fg_sample_round(&spec, c->clients, s->level, s->mp.n_levels, c->seed, round, s->participants, &n));
  }
  fg_aggregator_reset(&s->agg);
  for (int i = 0; i < n; i++) {
    int client = s->participants[i];
    s->jobs[i] = make_job(s, round, i, client, round_level >= 0 ? round_level : s->level[client]);
  }
  FG_TRY(prox_terms(s, n));
  if (s->t) FG_TRY(send_round(s, round, n));
  if (s->remote) FG_TRY(remote_round(s, round, n, &r->failed_attempts));
  double loss_sum = 0;
  int64_t loss_samples = 0;
  int contributed = 0;
  for (int i = 0; i < n; i++) {
    fg_client_record *rec = &s->records[i];
    const fg_job *j = &s->jobs[i];
    fg_status st = s->remote                               ? take_remote(s, j, n, rec)
                   : s->t && j->owner != 0 && j->level >= 0 ? take_result(s, j, n, rec)
                                                            : train_client(s, j, n, rec);
    if (st != FG_OK) return s->t ? drain(s, i + 1, n, st) : st;
    if (s->t && j->owner != 0) note_awaited(s, round, i + 1, n);
    s->round_levels[i] = rec->status == FG_CLIENT_OK ? rec->level : -1;
    if (rec->status != FG_CLIENT_OK) continue;
    contributed++;
    loss_sum += rec->train_loss * (double)rec->samples;
    loss_samples += rec->samples;
    r->bytes_down += rec->bytes_down;
    r->bytes_up += rec->bytes_up;
    r->transfer_seconds += rec->transfer_seconds;
    if (rec->engine_peak_bytes > r->max_client_engine_peak) r->max_client_engine_peak = rec->engine_peak_bytes;
  }
  if (s->remote) s->remote->end_round(s->remote->ctx, round);
  if (contributed && s->method_state)
    FG_TRY(s->ops->server_complete(s->method_state, round, s->round_levels, n, &s->agg, s->global, f32(&s->state)));
  if (contributed) fg_aggregator_finish(&s->agg, f32(&s->state));
  if (contributed && s->method_state && s->ops->server_report) {
    FG_TRY(s->ops->server_report(s->method_state, 0, s->report, sizeof s->report));
    r->method_report = s->report;
  }
  r->n_clients = n;
  r->clients = s->records;
  r->train_loss = loss_samples ? loss_sum / (double)loss_samples : NAN;
  int last = round + 1 == c->rounds;
  if (last || (round + 1) % c->eval_every == 0) FG_TRY(evaluate(s, last, r));
  r->device_bytes_in_use = device_in_use(s);
  size_t peak = fg_process_peak_rss();
  if (peak > s->process_peak) s->process_peak = peak;
  r->process_peak = s->process_peak;
  r->seconds = seconds_now() - t0;
  return FG_OK;
}

/* ------------------------------------------------------------------------------------------ */

static void summarize(const server *s, const fg_round_record *last, size_t max_peak, double seconds,
                      fg_run_result *res) {
  memset(res, 0, sizeof *res);
  res->final_accuracy = last->accuracy;
  res->n_exits = last->n_exits;
  memcpy(res->exit_accuracy, last->exit_accuracy, sizeof res->exit_accuracy);
  res->ensemble_accuracy = last->ensemble_accuracy;
  res->max_client_engine_peak = max_peak;
  res->process_peak = s->process_peak;
  res->seconds = seconds;
  for (int c = 0; c < s->cfg->clients; c++) res->clients_never_fit += s->level[c] < 0;
}

static fg_status write_summary(server *s, const char *dir, const fg_run_result *res, double best) {
  fg_summary sum;
  memset(&sum, 0, sizeof sum);
  sum.name = s->cfg->name;
  sum.method = s->mc->name;
  sum.label = s->mc->label;
  sum.sampling = fg_sampling_kind_name(s->schedule ? FG_SAMPLE_ELIGIBLE : sampling_kind(s));
  sum.dataset = s->cfg->dataset;
  sum.arch = s->cfg->arch;
  sum.revision = FEDGAP_GIT_REV;
  sum.rounds = s->cfg->rounds;
  sum.final_accuracy = res->final_accuracy;
  sum.best_accuracy = best;
  sum.n_exits = res->n_exits;
  memcpy(sum.final_exit_accuracy, res->exit_accuracy, sizeof sum.final_exit_accuracy);
  sum.max_client_engine_peak = res->max_client_engine_peak;
  sum.process_peak = res->process_peak;
  sum.wall_seconds = res->seconds;
  sum.clients = s->cfg->clients;
  sum.clients_never_fit = res->clients_never_fit;
  sum.eval_protocol = fg_eval_protocol_name(s->cfg->eval_protocol);
  char device[32];
  sum.device = fg_device_str(s->cfg->device, device, sizeof device);
  sum.processes = s->t ? s->t->size : 1;
  sum.spread = s->t ? &s->time : NULL;
  if (s->method_state && s->ops->server_report) {
    FG_TRY(s->ops->server_report(s->method_state, 1, s->report, sizeof s->report));
    sum.method_report = s->report;
  }
  return fg_summary_write(dir, &sum);
}

static int method_tensor(void *ctx, int i, const char **name, int64_t *numel) {
  server *s = ctx;
  return s->ops->server_tensor(s->method_state, i, name, numel);
}

static fg_status method_tensor_get(void *ctx, int i, float *host) {
  server *s = ctx;
  return s->ops->server_tensor_get(s->method_state, i, host);
}

static fg_status method_tensor_set(void *ctx, int i, const float *host) {
  server *s = ctx;
  return s->ops->server_tensor_set(s->method_state, i, host);
}

static fg_checkpoint_tensors method_tensors(server *s) {
  fg_checkpoint_tensors t = {s, method_tensor, method_tensor_get, method_tensor_set};
  return t;
}

static fg_status save_checkpoint(server *s, const char *dir, int rounds_done) {
  const fg_checkpoint_tensors t = method_tensors(s);
  if (s->method_state) FG_TRY(fg_checkpoint_save_tensors(dir, &t, rounds_done));
  return fg_checkpoint_save(dir, s->global, f32(&s->state), rounds_done, s->mc->name, s->w->partition.hash);
}

static fg_status load_checkpoint(server *s, const char *dir, int *rounds_done) {
  FG_TRY(fg_checkpoint_load(dir, s->global, f32(&s->state), rounds_done, s->mc->name, s->w->partition.hash));
  const fg_checkpoint_tensors t = method_tensors(s);
  return s->method_state ? fg_checkpoint_load_tensors(dir, &t, *rounds_done) : FG_OK;
}

/* The largest client peak and best accuracy of the rounds a resumed run keeps. */
static fg_status resumed_extremes(const char *run_dir, size_t *max_peak, double *best) {
  fg_round_record *kept = NULL;
  int n = 0;
  FG_TRY(fg_metrics_read(run_dir, &kept, &n));
  for (int i = 0; i < n; i++) {
    if (kept[i].max_client_engine_peak > *max_peak) *max_peak = kept[i].max_client_engine_peak;
    if (kept[i].evaluated && kept[i].accuracy > *best) *best = kept[i].accuracy;
  }
  free(kept);
  return FG_OK;
}

fg_status fg_run_method_with(const fg_world *w, int method, const char *run_dir, int resume, const fg_run_options *opt,
                             fg_round_callback cb, void *ctx, fg_run_result *res, int *stopped) {
  double t0 = seconds_now();
  const fg_transport *t = opt ? opt->transport : NULL;
  int stop_after = opt ? opt->stop_after : 0, stop = 0;
  server s;
  const fg_remote *remote = opt ? opt->remote : NULL;
  fg_status st = setup_levels(&s, w, method, remote, run_dir);
  s.remote = remote;
  if (st == FG_OK) st = setup_server(&s, t);
  fg_metrics *metrics = NULL;
  int start = 0;
  if (st == FG_OK && resume) st = load_checkpoint(&s, run_dir, &start);
  if (st == FG_OK && s.ops->schedule_create)
    st = s.ops->schedule_create(s.mc, &s.mp, s.global, w->cfg->seed, w->cfg->rounds, start, &s.schedule);
  if (st == FG_OK) st = fg_metrics_open(run_dir, resume ? start : -1, &metrics);
  s.metrics = metrics;
  fg_round_record r;
  memset(&r, 0, sizeof r);
  size_t max_peak = 0;
  double best = 0;
  if (st == FG_OK && resume) st = resumed_extremes(run_dir, &max_peak, &best);
  const fg_config *c = w->cfg;
  for (int round = start; round < c->rounds && st == FG_OK; round++) {
    if (stop_after > 0 && round >= stop_after) {
      stop = 1;
      break;
    }
    st = run_round(&s, round, &r);
    if (st != FG_OK) break;
    if (r.max_client_engine_peak > max_peak) max_peak = r.max_client_engine_peak;
    if (r.evaluated && r.accuracy > best) best = r.accuracy;
    r.elapsed = seconds_now() - t0;
    st = fg_metrics_append(metrics, &r);
    if (st == FG_OK && cb) cb(ctx, &r, c->rounds);
    int due = c->checkpoint_every > 0 && (round + 1) % c->checkpoint_every == 0;
    if (st == FG_OK && (due || round + 1 == c->rounds || round + 1 == stop_after))
      st = save_checkpoint(&s, run_dir, round + 1);
  }
  if (s.t) {
    /* Workers wait for the method's end whatever happened here (unless the transport broke). */
    char msg[512];
    snprintf(msg, sizeof msg, "%s", fg_last_error());
    fg_status ended = end_method(&s);
    if (st == FG_OK) st = ended;
    else FG_FAIL(st, "%s", msg);
  }
  if (st == FG_OK && !stop && start >= c->rounds) st = evaluate(&s, 1, &r); /* resumed a finished run */
  if (st == FG_OK && !stop) {
    summarize(&s, &r, max_peak, seconds_now() - t0, res);
    st = write_summary(&s, run_dir, res, best);
  }
  if (stopped) *stopped = stop;
  fg_metrics_close(metrics);
  server_free(&s);
  return st;
}

fg_status fg_run_method(const fg_world *w, int method, const char *run_dir, int resume, fg_round_callback cb,
                        void *ctx, fg_run_result *res) {
  return fg_run_method_with(w, method, run_dir, resume, NULL, cb, ctx, res, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Workers                                                                                     */

/* Whether job j is one this process can train: its method, seed, client and level. */
static fg_status check_job(const server *s, const fg_job *j) {
  if (j->method != s->method || j->seed != s->cfg->seed || j->client < 0 || j->client >= s->cfg->clients ||
      j->level < 0 || j->level >= s->mp.n_levels)
    return FG_FAIL(FG_ERR_INTERNAL, "round %d, slot %d: the job (method %d, seed %llu, client %d, level %d) does not "
                   "fit this process's configuration", j->round + 1, j->slot, j->method, (unsigned long long)j->seed,
                   j->client, j->level);
  return FG_OK;
}

/* A worker's jobs of one round, in slot order, each result sent as soon as it is trained. `failed`
 * (FG_OK when the method's set-up succeeded, else its status and message `why`) is answered on the
 * first job; after a failure the later jobs are answered as skipped. Returns only transport errors. */
static fg_status work_round(server *s, const fg_transport *t, const fg_wire_header *h, const fg_job *jobs,
                            fg_status failed, const char *why, fg_worker_time *time) {
  int reported = 0;
  for (int i = 0; i < h->n; i++) {
    const fg_job *j = &jobs[i];
    if (j->owner != t->rank || j->level < 0) continue;
    fg_result res;
    memset(&res, 0, sizeof res);
    res.round = j->round;
    res.slot = j->slot;
    if (failed == FG_OK && (failed = check_job(s, j)) != FG_OK) why = fg_last_error();
    if (failed == FG_OK) {
      double t0 = seconds_now();
      record_start(s, j, &res.rec);
      fg_index_plan fresh;
      const fg_index_plan *plan;
      failed = job_plan(s, j, &fresh, &plan);
      if (failed == FG_OK) {
        failed = train_job(s, j, plan, f32(&s->sub_out), &res.rec);
        plan_done(plan, &fresh);
      }
      time->train += seconds_now() - t0;
      time->jobs++;
      if (failed == FG_OK && res.rec.status == FG_CLIENT_OK) res.numel = fg_graph_state_numel(s->level_graph[j->level]);
      why = fg_last_error();
    }
    if (failed != FG_OK) {
      res.status = reported ? FG_OK : failed;
      res.skipped = reported;
      snprintf(res.error, sizeof res.error, "%s", reported ? "" : why);
      memset(&res.rec, 0, sizeof res.rec);
      res.numel = 0;
      reported = 1;
    }
    size_t len = 0;
    FG_TRY(fg_result_encode(&res, s->wire, s->wire_cap, &len));
    double t0 = seconds_now();
    fg_status st = t->send(t->ctx, s->wire, len, f32(&s->sub_out), res.numel);
    time->send += seconds_now() - t0;
    FG_TRY(st);
  }
  return FG_OK;
}

/* The end of a method on a worker: its time to rank 0, then its models dropped. */
static fg_status worker_end_method(server *s, const fg_transport *t, fg_worker_time *time) {
  unsigned char mine[FG_WORKER_TIME_BYTES];
  fg_worker_time_encode(time, mine);
  memset(time, 0, sizeof *time);
  server_free(s);
  return t->gather(t->ctx, mine, sizeof mine, NULL);
}

fg_status fg_run_worker(const fg_world *w, const fg_transport *t, fg_status *ended) {
  *ended = FG_OK;
  if (!fg_spread_active(t) || t->rank == 0) return FG_FAIL(FG_ERR_INVALID, "fg_run_worker: not a worker of a spread run");
  int clients = w->cfg->clients;
  size_t cap = fg_wire_header_bytes(clients);
  unsigned char *header = malloc(cap);
  fg_job *jobs = calloc((size_t)clients, sizeof *jobs);
  float *scratch = NULL;
  server s;
  memset(&s, 0, sizeof s);
  fg_status st = header && jobs ? FG_OK : FG_FAIL(FG_ERR_OOM, "worker: out of memory");
  int set_up = 0;         /* a method's set-up was tried (since the last method's end) */
  fg_status ready = FG_OK; /* how it went */
  char why[512] = "";
  fg_worker_time time = {0, 0, 0, 0};
  while (st == FG_OK) {
    size_t len = 0;
    double t0 = seconds_now();
    st = t->broadcast(t->ctx, header, &len, cap);
    fg_wire_header h;
    if (st == FG_OK) st = fg_wire_header_decode(header, len, &h, jobs, clients);
    time.idle += seconds_now() - t0;
    if (st != FG_OK) break;
    if (h.kind == FG_WIRE_RUN_END) {
      *ended = h.status;
      break;
    }
    if (h.kind == FG_WIRE_METHOD_END) {
      st = worker_end_method(&s, t, &time);
      set_up = 0;
      continue;
    }
    if (!set_up || h.method != s.method) {
      server_free(&s);
      set_up = 1;
      ready = setup_levels(&s, w, h.method, NULL, NULL);
      if (ready == FG_OK && h.state_numel != fg_graph_state_numel(s.global))
        ready = FG_FAIL(FG_ERR_INTERNAL, "rank 0's global model has %lld floats, this process's %lld",
                        (long long)h.state_numel, (long long)fg_graph_state_numel(s.global));
      snprintf(why, sizeof why, "%s", ready == FG_OK ? "" : fg_last_error());
    }
    float *state = ready == FG_OK ? f32(&s.state) : NULL, *prox = NULL;
    s.prox_numel = 0;
    if (ready == FG_OK && h.prox_numel > 0) {
      ready = prox_layout(&s, jobs, h.n, h.prox_numel);
      if (ready == FG_OK) prox = f32(&s.prox);
      else snprintf(why, sizeof why, "%s", fg_last_error());
    }
    if (!state || (h.prox_numel > 0 && !prox)) { /* still take part in the broadcasts, then answer the
                                                     jobs with the failure */
      int64_t most = h.state_numel > h.prox_numel ? h.state_numel : h.prox_numel;
      free(scratch);
      scratch = malloc((size_t)(most > 0 ? most : 1) * sizeof(float));
      if (!scratch) st = FG_FAIL(FG_ERR_OOM, "worker: out of memory");
      if (!state) state = scratch;
      if (!prox) prox = scratch;
    }
    t0 = seconds_now();
    if (st == FG_OK) st = t->broadcast_floats(t->ctx, state, h.state_numel);
    if (st == FG_OK && h.prox_numel > 0) st = t->broadcast_floats(t->ctx, prox, h.prox_numel);
    time.idle += seconds_now() - t0;
    if (st == FG_OK) st = work_round(&s, t, &h, jobs, ready, why, &time);
  }
  server_free(&s);
  free(scratch);
  free(jobs);
  free(header);
  return st;
}

/* ------------------------------------------------------------------------------------------ */
/* Devices                                                                                     */

struct fg_device_trainer {
  server s;
};

fg_status fg_device_trainer_open(const fg_world *w, int method, fg_device_trainer **out) {
  *out = calloc(1, sizeof **out);
  if (!*out) return FG_FAIL(FG_ERR_OOM, "device: out of memory");
  fg_status st = setup_levels(&(*out)->s, w, method, NULL, NULL);
  if (st != FG_OK) {
    fg_device_trainer_free(*out);
    *out = NULL;
  }
  return st;
}

void fg_device_trainer_free(fg_device_trainer *d) {
  if (!d) return;
  server_free(&d->s);
  free(d);
}

int fg_device_trainer_fit(const fg_device_trainer *d, size_t budget) {
  for (int l = 0; l < d->s.n_fit_levels; l++)
    if (budget == 0 || d->s.fit_bytes[l] <= budget) return l;
  return -1;
}

int64_t fg_device_trainer_numel(const fg_device_trainer *d, int level) {
  if (level < 0 || level >= d->s.mp.n_levels) return -1;
  return fg_graph_state_numel(d->s.level_graph[level]);
}

fg_status fg_device_trainer_train(fg_device_trainer *d, const fg_job *j, int data_client, int run_clients,
                                  size_t budget, const float *sent, const float *linear, float *trained,
                                  fg_client_record *rec) {
  server *s = &d->s;
  fg_job mine = *j;
  if (data_client >= 0) mine.client = data_client; /* checked and recorded as the world's client */
  if (j->cap > 0) mine.cap = budget; /* a method that caps training: under the device's own budget */
  FG_TRY(check_job(s, &mine));
  if (data_client >= 0 && (j->client < 0 || run_clients <= j->client))
    return FG_FAIL(FG_ERR_INVALID, "round %d, slot %d: client %d is not one of the run's %d", j->round + 1, j->slot,
                   j->client, run_clients);
  record_start(s, &mine, rec);
  memcpy(f32(&s->sub_in), sent, (size_t)fg_graph_state_numel(s->level_graph[j->level]) * sizeof(float));
  fg_job trains = mine;
  trains.client = j->client; /* the run's client keys the random streams */
  fg_status st = train_sent(s, &trains, data_client, data_client >= 0 ? run_clients : 0, linear, trained, rec);
  rec->id = j->client;
  return st;
}
