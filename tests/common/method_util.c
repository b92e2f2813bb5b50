/* Test helpers for FL methods (method_util.h). */
#include "common/method_util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"
#include "fl/client.h"
#include "fl/config.h"
#include "fl/method.h"
#include "fl/world.h"

fg_method_config fgt_method_config(const char *name, const char *arch, ...) {
  const char *set[16];
  int n = 0;
  va_list ap;
  va_start(ap, arch);
  for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
    cr_assert_lt(n, 16, "too many overrides");
    set[n++] = s;
  }
  va_end(ap);
  fg_method_config mc;
  FGT_OK(fg_method_config_with(name, arch, set, n, &mc));
  return mc;
}

/* |a - b| summed over n floats. */
static double moved(const float *a, const float *b, int64_t n) {
  double d = 0;
  for (int64_t i = 0; i < n; i++) d += fabs((double)a[i] - (double)b[i]);
  return d;
}

/* Level l of the plan, one local round from `state` (the global model's), added to agg. */
static void train_level(const fg_world *w, const fg_method_ops *ops, const fg_method_config *mc,
                        const fg_method_plan *mp, int l, const fg_graph *global, const float *state,
                        fg_aggregator *agg) {
  fg_graph *g = NULL;
  FGT_OK(fg_method_build_level(ops, mc, mp, l, &g));
  fg_index_plan ip;
  fg_channel_select sel = {.policy = mp->channels};
  FGT_OK(fg_index_plan_build(global, g, &sel, &ip));
  int64_t n = fg_graph_state_numel(g);
  float *sent = malloc((size_t)n * sizeof(float)), *trained = malloc((size_t)n * sizeof(float));
  cr_assert(sent && trained);
  FGT_OK(fg_submodel_extract(&ip, global, g, state, sent));
  fg_trainer_options local = fg_world_local_options(w, 1);
  fg_plan *plan = NULL;
  FGT_OK(fg_method_plan_step(ops, mc, mp, l, g, &local, 1, 2, &plan));
  fg_local_job job = {w, l % w->cfg->clients, 1, g, plan, 0, mp->drop_last, sent, trained, NULL, -1, 0};
  fg_client_record rec;
  memset(&rec, 0, sizeof rec);
  FGT_OK(fg_local_train(&job, &rec));
  const char *label = mp->levels[l].label;
  cr_assert_eq(rec.status, FG_CLIENT_OK, "level %s: %s", label, rec.error);
  cr_assert(isfinite(rec.train_loss) && rec.train_loss > 0, "level %s: loss %g", label, rec.train_loss);
  cr_assert_gt(moved(trained, sent, n), 0, "level %s did not train", label);
  FGT_OK(fg_aggregator_add(agg, &ip, global, g, trained, 1.0, NULL));
  fg_plan_free(plan);
  free(sent);
  free(trained);
  fg_index_plan_free(&ip);
  fg_graph_free(g);
}

int fgt_train_every_level_once(const char *name, const char *model) {
  fgt_setup_cpu(2);
  char *dir = fgt_mkdtemp(), *path = fgt_join(dir, "levels.yaml");
  fgt_write_tiny_fmnist(dir, 160, 40, 5);
  char text[1024];
  snprintf(text, sizeof text,
           "rounds: 2\nthreads: 2\ndata: {dataset: fashion-mnist, dir: \"%s\", partition: {kind: iid}}\n"
           "model: {%s}\nclients: {count: 4}\nlocal: {batch: 16, lr: 0.05}\nmethod: {name: %s}\n",
           dir, model, name);
  fgt_write_text(path, text);
  fg_config cfg;
  FGT_OK(fg_config_load(path, NULL, 0, &cfg));
  fg_world w;
  FGT_OK(fg_world_open(&cfg, &w));
  const fg_method_ops *ops = fg_method_find(name);
  cr_assert_not_null(ops);
  fg_method_plan mp;
  FGT_OK(ops->plan(&cfg.methods[0], &w.base, &mp));
  fg_graph *global = NULL;
  FGT_OK(fg_model_build(&mp.global, &global));
  int64_t gn = fg_graph_state_numel(global);
  float *state = malloc((size_t)gn * sizeof(float)), *before = malloc((size_t)gn * sizeof(float));
  cr_assert(state && before);
  fg_graph_init_state(global, 3, state);
  memcpy(before, state, (size_t)gn * sizeof(float));
  fg_ledger ledger;
  fg_ledger_init(&ledger, "aggregator", 0);
  fg_aggregator agg;
  FGT_OK(fg_aggregator_init(&agg, gn, &ledger));
  for (int l = 0; l < mp.n_levels; l++) train_level(&w, ops, &cfg.methods[0], &mp, l, global, state, &agg);
  fg_aggregator_finish(&agg, state);
  for (int64_t i = 0; i < gn; i++) cr_assert(isfinite(state[i]), "%s: global element %lld", name, (long long)i);
  for (int i = 0; i < fg_graph_param_count(global); i++) {
    const fg_param *p = fg_graph_param(global, i);
    if (p->is_buffer || !p->trainable) continue;
    cr_assert_gt(moved(state + p->offset, before + p->offset, p->numel), 0, "%s: %s did not move", name, p->name);
  }
  int levels = mp.n_levels;
  fg_aggregator_free(&agg);
  free(state);
  free(before);
  fg_graph_free(global);
  fg_world_close(&w);
  fg_config_free(&cfg);
  fgt_rmtree(dir);
  free(dir);
  free(path);
  return levels;
}
