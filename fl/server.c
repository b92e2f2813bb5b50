/* The round loop: levels and their memory, client levels, sampling, local training,
 * aggregation, evaluation, metrics and checkpoints. */
#include "fl/server.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/nn/fit.h"
#include "fl/checkpoint.h"
#include "fl/client.h"
#include "fl/method.h"
#include "fl/sampling.h"
#include "fl/submodel.h"

/* Samples of the training set the static BN recalibration runs over (a fixed prefix). */
enum { FG_STATIC_BN_SAMPLES = 5000 };

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
  char report[4096];                         /* the method's records of a round or of the run */
  size_t process_peak;
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
 * reads FG_STATIC_BN_SAMPLES samples spread evenly over the clients' train parts (which lie one
 * after another in the partition's index array). */
static fg_status bn_sample_index(server *s) {
  if (!(s->cfg->local_test > 0)) return FG_OK;
  const fg_partition *part = &s->w->partition;
  const uint32_t *all = part->index.ptr;
  int64_t total = ((const int64_t *)part->offset.ptr)[part->n_clients];
  int64_t n = total < FG_STATIC_BN_SAMPLES ? total : FG_STATIC_BN_SAMPLES;
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

static fg_status server_setup(server *s, const fg_world *w, int method) {
  memset(s, 0, sizeof *s);
  s->w = w;
  s->cfg = w->cfg;
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
  if (!s->level || !s->participants || !s->records || !s->eligible || !s->round_levels)
    return FG_FAIL(FG_ERR_OOM, "server: out of memory");
  for (int l = 0; l < s->mp.n_levels; l++) FG_TRY(build_level(s, l));
  assign_levels(s);
  if (s->mp.same_level) FG_TRY(collapse_to_smallest(s));
  FG_TRY(fg_model_build(&s->mp.global, &s->global));
  fg_graph_set_bn_mode(s->global, "", s->mp.bn_mode);
  int64_t numel = fg_graph_state_numel(s->global), largest = 0;
  FG_TRY(alloc_f32(s, &s->state, numel, FG_MEM_PARAMS, "global model"));
  fg_graph_init_state(s->global, s->cfg->seed, f32(&s->state));
  for (int l = 0; l < s->mp.n_levels; l++) {
    int64_t n = fg_graph_state_numel(s->level_graph[l]);
    if (n > largest) largest = n;
    if (s->mp.channels == FG_CHANNELS_FIRST) {
      fg_channel_select sel = {FG_CHANNELS_FIRST, 0, 0, 0};
      FG_TRY(fg_index_plan_build(s->global, s->level_graph[l], &sel, &s->level_plan[l]));
    }
  }
  FG_TRY(alloc_f32(s, &s->sub_in, largest, FG_MEM_OTHER, "client sub-model (sent)"));
  FG_TRY(alloc_f32(s, &s->sub_out, largest, FG_MEM_OTHER, "client sub-model (returned)"));
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
  fg_region_free(&s->state);
  if (s->schedule) s->ops->schedule_free(s->schedule);
  if (s->method_state) s->ops->server_free(s->method_state);
  free(s->param_scale);
  free(s->round_levels);
  free(s->eligible);
  free(s->level);
  free(s->participants);
  free(s->records);
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

/* Trains participant c (the round's participant `slot` of `n`) at `level` and adds its update to
 * the accumulators. */
static fg_status train_client(server *s, int c, int level, int round, int slot, int n, fg_client_record *rec) {
  memset(rec, 0, sizeof *rec);
  rec->id = c;
  rec->level = level;
  rec->samples = fg_partition_size(&s->w->partition, c);
  level_label(s, rec->level, rec->config, sizeof rec->config);
  if (rec->level < 0) {
    rec->status = FG_CLIENT_NO_FIT;
    rec->budget_bytes = s->w->budgets[c];
    snprintf(rec->error, sizeof rec->error, "a budget of %zu bytes fits none of the method's levels (the smallest "
             "needs %zu)", s->w->budgets[c], s->mp.levels[s->mp.n_levels - 1].planned_bytes);
    return FG_OK;
  }
  const fg_graph *g = s->level_graph[rec->level];
  fg_index_plan fresh, *plan = &s->level_plan[rec->level];
  if (s->mp.channels != FG_CHANNELS_FIRST) {
    fg_channel_select sel = {s->mp.channels, round, s->cfg->seed, c};
    FG_TRY(fg_index_plan_build(s->global, g, &sel, &fresh));
    plan = &fresh;
  }
  fg_status st = fg_submodel_extract(plan, s->global, g, f32(&s->state), f32(&s->sub_in));
  if (st != FG_OK) {
    if (plan == &fresh) fg_index_plan_free(&fresh);
    return st;
  }
  const fg_plan *step = NULL;
  st = round_plan(s, rec->level, round, &step);
  fg_local_job job = {s->w, c, round, g, step, uncapped(s) ? 0 : s->w->budgets[c], f32(&s->sub_in),
                      f32(&s->sub_out)};
  if (st == FG_OK) st = fg_local_train(&job, rec);
  size_t bytes = (size_t)fg_graph_state_numel(g) * sizeof(float);
  if (st == FG_OK && rec->status == FG_CLIENT_OK) {
    rec->bytes_down = rec->bytes_up = bytes;
    double weight = s->mp.weighting == FG_WEIGHT_SAMPLES ? (double)rec->samples : 1.0;
    const float *mask = s->mp.label_mask ? fg_world_class_mask(s->w, c) : NULL;
    uint8_t classes[4096];
    if (mask) {
      int k = s->w->train.classes < 4096 ? s->w->train.classes : 4096;
      for (int j = 0; j < k; j++) classes[j] = mask[j] != 0.0f;
    }
    st = fg_aggregator_add_scaled(&s->agg, plan, s->global, g, f32(&s->sub_out), weight, mask ? classes : NULL,
                                  tensor_scale(s, slot, n));
    if (st == FG_OK && s->method_state)
      st = s->ops->server_collect(s->method_state, slot, c, rec->level, g, f32(&s->sub_in), f32(&s->sub_out));
  }
  if (rec->process_peak_bytes > s->process_peak) s->process_peak = rec->process_peak_bytes;
  if (plan == &fresh) fg_index_plan_free(&fresh);
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
  if (view.n > FG_STATIC_BN_SAMPLES) view.n = FG_STATIC_BN_SAMPLES;
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
    FG_TRY(fg_sample_round(&c->sampling, c->clients, s->level, s->mp.n_levels, c->seed, round, s->participants, &n));
  }
  fg_aggregator_reset(&s->agg);
  double loss_sum = 0;
  int64_t loss_samples = 0;
  int contributed = 0;
  for (int i = 0; i < n; i++) {
    fg_client_record *rec = &s->records[i];
    int client = s->participants[i];
    FG_TRY(train_client(s, client, round_level >= 0 ? round_level : s->level[client], round, i, n, rec));
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
  sum.dataset = s->cfg->dataset;
  sum.arch = s->cfg->arch;
  sum.revision = NULL;
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

fg_status fg_run_method(const fg_world *w, int method, const char *run_dir, int resume, fg_round_callback cb,
                        void *ctx, fg_run_result *res) {
  double t0 = seconds_now();
  server s;
  fg_status st = server_setup(&s, w, method);
  fg_metrics *metrics = NULL;
  int start = 0;
  if (st == FG_OK && resume) st = load_checkpoint(&s, run_dir, &start);
  if (st == FG_OK && s.ops->schedule_create)
    st = s.ops->schedule_create(s.mc, &s.mp, s.global, w->cfg->seed, w->cfg->rounds, start, &s.schedule);
  if (st == FG_OK) st = fg_metrics_open(run_dir, resume ? start : -1, &metrics);
  fg_round_record r;
  memset(&r, 0, sizeof r);
  size_t max_peak = 0;
  double best = 0;
  if (st == FG_OK && resume) st = resumed_extremes(run_dir, &max_peak, &best);
  const fg_config *c = w->cfg;
  for (int round = start; round < c->rounds && st == FG_OK; round++) {
    st = run_round(&s, round, &r);
    if (st != FG_OK) break;
    if (r.max_client_engine_peak > max_peak) max_peak = r.max_client_engine_peak;
    if (r.evaluated && r.accuracy > best) best = r.accuracy;
    r.elapsed = seconds_now() - t0;
    st = fg_metrics_append(metrics, &r);
    if (st == FG_OK && cb) cb(ctx, &r, c->rounds);
    int due = c->checkpoint_every > 0 && (round + 1) % c->checkpoint_every == 0;
    if (st == FG_OK && (due || round + 1 == c->rounds))
      st = save_checkpoint(&s, run_dir, round + 1);
  }
  if (st == FG_OK && start >= c->rounds) st = evaluate(&s, 1, &r); /* resumed a finished run */
  if (st == FG_OK) {
    summarize(&s, &r, max_peak, seconds_now() - t0, res);
    st = write_summary(&s, run_dir, res, best);
  }
  fg_metrics_close(metrics);
  server_free(&s);
  return st;
}
