/* Datasets, partition, budgets and label sets of an experiment. */
#include "fl/world.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl/budget.h"

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

fg_trainer_options fg_world_local_options(const fg_world *w, int round) {
  const fg_config *c = w->cfg;
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = c->local_batch;
  o.mode = strcmp(c->mode, "checkpoint") == 0 ? FG_EXEC_CHECKPOINT : FG_EXEC_STORE;
  o.device = c->device;
  double lr = c->lr * pow(c->lr_decay, (double)round);
  for (int i = 0; i < c->n_lr_steps; i++)
    if (round >= c->lr_steps[i]) lr *= c->lr_step_factor;
  if (strcmp(c->optimizer, "adam") == 0)
    o.optim = fg_optim_adam((float)lr, (float)c->weight_decay);
  else
    o.optim = fg_optim_sgd((float)lr, (float)c->momentum, (float)c->weight_decay);
  o.clip_norm = (float)c->clip_norm;
  return o;
}

fg_dataset_view fg_world_client_view(const fg_world *w, int client) {
  fg_dataset_view v;
  fg_dataset_view_subset(&w->train, fg_partition_client(&w->partition, client),
                         fg_partition_size(&w->partition, client), &v);
  return v;
}

fg_status fg_world_client_test_view(const fg_world *w, int client, fg_dataset_view *view) {
  memset(view, 0, sizeof *view);
  if (w->local_test.n_clients == 0)
    return FG_FAIL(FG_ERR_INVALID, "client %d: no local test split (data.local_test is 0)", client);
  if (client < 0 || client >= w->local_test.n_clients)
    return FG_FAIL(FG_ERR_INVALID, "client %d is not in 0..%d", client, w->local_test.n_clients - 1);
  return fg_dataset_view_subset(&w->train, fg_partition_client(&w->local_test, client),
                                fg_partition_size(&w->local_test, client), view);
}

const float *fg_world_class_mask(const fg_world *w, int client) {
  return (const float *)w->class_masks.ptr + (size_t)client * (size_t)w->train.classes;
}

/* The base model's peak of one local step: the reference of budget tiers. */
static fg_status full_model_peak(fg_world *w) {
  fg_graph *g = NULL;
  fg_plan *p = NULL;
  FG_TRY(fg_model_build(&w->base, &g));
  fg_trainer_options o = fg_world_local_options(w, 0);
  fg_status s = fg_plan_build(g, &o, &p);
  if (s == FG_OK) w->full_peak = p->total;
  fg_plan_free(p);
  fg_graph_free(g);
  return s;
}

static fg_status label_sets(fg_world *w) {
  int k = w->train.classes, n = w->cfg->clients;
  FG_TRY(fg_region_alloc(&w->class_masks, &w->data_ledger, fg_host_device(), FG_MEM_DATA,
                         (size_t)n * (size_t)k * sizeof(float), "client label sets"));
  float *m = (float *)w->class_masks.ptr;
  memset(m, 0, (size_t)n * (size_t)k * sizeof(float));
  const int32_t *labels = fg_dataset_labels(&w->train);
  for (int c = 0; c < n; c++) {
    const uint32_t *idx = fg_partition_client(&w->partition, c);
    for (int64_t i = 0; i < fg_partition_size(&w->partition, c); i++) m[(size_t)c * (size_t)k + (size_t)labels[idx[i]]] = 1.0f;
  }
  return FG_OK;
}

/* The training and test sets; with data.pool the training set is train + test and `test` is empty. */
static fg_status load_datasets(const fg_config *cfg, fg_world *w) {
  FG_TRY(fg_dataset_load_named(cfg->dataset, cfg->data_dir, 1, &w->data_ledger, &w->train));
  FG_TRY(fg_dataset_load_named(cfg->dataset, cfg->data_dir, 0, &w->data_ledger, &w->test));
  if (!cfg->pool) return FG_OK;
  fg_dataset pool;
  FG_TRY(fg_dataset_concat(&w->train, &w->test, &w->data_ledger, &pool));
  fg_dataset_free(&w->train);
  fg_dataset_free(&w->test);
  w->train = pool;
  return FG_OK;
}

/* With data.local_test: the shares become the local train parts, and local_test the test parts. */
static fg_status split_local(fg_world *w) {
  const fg_config *cfg = w->cfg;
  if (cfg->local_test <= 0) return FG_OK;
  fg_partition train;
  fg_status s = fg_partition_split_local(&w->partition, cfg->local_test, cfg->seed, &w->data_ledger, &train,
                                         &w->local_test);
  if (s != FG_OK) {
    fg_error_prefix("%s: data.local_test", cfg->path ? cfg->path : "configuration");
    return s;
  }
  fg_partition_free(&w->partition);
  w->partition = train;
  return FG_OK;
}

fg_status fg_world_open(const fg_config *cfg, fg_world *w) {
  memset(w, 0, sizeof *w);
  w->cfg = cfg;
  fg_ledger_init(&w->data_ledger, "datasets", 0);
  w->info = fg_dataset_info_find(cfg->dataset);
  if (!w->info) return fg_last_status();
  fg_status s = load_datasets(cfg, w);
  if (s == FG_OK) s = fg_normalize_preset(cfg->normalize ? cfg->normalize : w->info->normalize, &w->norm);
  if (s == FG_OK && w->norm.channels && w->norm.channels != (int)w->train.c)
    s = FG_FAIL(FG_ERR_CONFIG, "data.normalize: '%s' is for %d channels, %s has %d", cfg->normalize,
                w->norm.channels, cfg->dataset, (int)w->train.c);
  if (s != FG_OK) return s;
  w->aug = cfg->augment == 0 ? (fg_augment){0, 0} : w->info->train_aug;
  w->base.arch = cfg->arch;
  w->base.width = cfg->width;
  w->base.in_c = w->train.c;
  w->base.in_h = w->train.h;
  w->base.in_w = w->train.w;
  w->base.classes = w->train.classes;
  s = fg_partition_make(&cfg->partition, fg_dataset_labels(&w->train), w->train.n, w->train.classes, cfg->clients,
                        cfg->seed, &w->data_ledger, &w->partition);
  if (s != FG_OK) return s;
  /* A client's samples are a set: ascending order, so that its epoch order depends only on the
   * shuffle stream (one client holding everything trains exactly as `fedgap train`). */
  for (int c = 0; c < cfg->clients; c++)
    qsort((void *)fg_partition_client(&w->partition, c), (size_t)fg_partition_size(&w->partition, c),
          sizeof(uint32_t), cmp_u32);
  s = split_local(w);
  if (s != FG_OK) return s;
  int64_t largest = 0;
  for (int c = 0; c < cfg->clients; c++)
    if (fg_partition_size(&w->partition, c) > largest) largest = fg_partition_size(&w->partition, c);
  s = fg_loader_alloc(&w->loader, &w->data_ledger, largest, cfg->local_batch, w->train.c, w->train.h, w->train.w);
  if (s == FG_OK) s = label_sets(w);
  if (s == FG_OK) s = full_model_peak(w);
  if (s != FG_OK) return s;
  w->budgets = calloc((size_t)cfg->clients, sizeof *w->budgets);
  if (!w->budgets) return FG_FAIL(FG_ERR_OOM, "out of memory for client budgets");
  return fg_budgets_assign(&cfg->budgets, cfg->clients, cfg->seed, w->full_peak, w->budgets);
}

void fg_world_close(fg_world *w) {
  free(w->budgets);
  fg_loader_free(&w->loader);
  fg_region_free(&w->class_masks);
  fg_partition_free(&w->local_test);
  fg_partition_free(&w->partition);
  fg_dataset_free(&w->train);
  fg_dataset_free(&w->test);
  memset(w, 0, sizeof *w);
}
