/* The paper presets (configs/README.md, paper presets): each level of the method gets the share
 * of the clients its paper gives it. Budget tier i of a preset is fraction_i x the plain model's
 * planned peak (as fl/world.c sizes tiers), and the server gives a client the most capable level
 * whose planned peak at the budget round fits its budget (fl/server.c); here that level is
 * recomputed from the engine's plans and must be level i, for every tier. Only the plans are
 * made: no dataset is read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/data/catalog.h"
#include "fl/config.h"
#include "fl/method.h"
#include "fl/world.h"

/* configs/<name>.yaml: tier i's budget fits level i and no more capable one. */
static void tiers_map_one_to_one(const char *name) {
  fgt_setup_cpu(2);
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src, "FEDGAP_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/configs/%s.yaml", src, name);
  fg_config cfg;
  cr_assert_eq(fg_config_load(path, NULL, 0, &cfg), FG_OK, "%s: %s", path, fg_last_error());
  cr_assert_eq(cfg.budgets.kind, FG_BUDGET_TIERS, "%s", name);
  const fg_dataset_info *info = fg_dataset_info_find(cfg.dataset);
  cr_assert_not_null(info);
  fg_world w;
  memset(&w, 0, sizeof w);
  w.cfg = &cfg;
  fg_model_spec base = {.arch = cfg.arch, .width = cfg.width, .in_c = info->c, .in_h = info->h, .in_w = info->w,
                        .classes = info->classes};
  /* the plain model's peak of one local step: what tier fractions multiply */
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&base, &g));
  fg_trainer_options first = fg_world_local_options(&w, 0);
  fg_plan *p = NULL;
  FGT_OK(fg_plan_build(g, &first, &p));
  size_t full = p->total;
  fg_plan_free(p);
  fg_graph_free(g);
  /* each level's peak at the budget round */
  const fg_method_config *mc = &cfg.methods[0];
  const fg_method_ops *ops = fg_method_find(mc->name);
  fg_method_plan mp;
  FGT_OK(ops->plan(mc, &base, &mp));
  cr_assert_eq(mp.n_levels, cfg.budgets.n_tiers, "%s: one tier per level", name);
  int round = fg_method_budget_round(cfg.rounds);
  fg_trainer_options local = fg_world_local_options(&w, round);
  size_t peak[FG_MAX_LEVELS];
  for (int l = 0; l < mp.n_levels; l++) {
    FGT_OK(fg_method_build_level(ops, mc, &mp, l, &g));
    FGT_OK(fg_method_plan_step(ops, mc, &mp, l, g, &local, round, cfg.rounds, &p));
    peak[l] = p->total;
    fg_plan_free(p);
    fg_graph_free(g);
  }
  for (int i = 0; i < cfg.budgets.n_tiers; i++) {
    double fraction = cfg.budgets.tiers[i].fraction;
    size_t budget = (size_t)(fraction * (double)full);
    int level = -1;
    for (int l = 0; l < mp.n_levels && level < 0; l++)
      if (peak[l] <= budget) level = l;
    cr_assert_eq(level, i, "%s: tier %d (%g x %zu = %zu bytes) trains level %d (%s), want level %d (%s needs %zu)",
                 name, i, fraction, full, budget, level, level >= 0 ? mp.levels[level].label : "none", i,
                 mp.levels[i].label, peak[i]);
  }
  fg_config_free(&cfg);
}

Test(presets, heterofl_cifar10_gives_each_width_a_fifth) { tiers_map_one_to_one("heterofl-cifar10"); }

Test(presets, fedrolex_cifar10_gives_each_width_a_fifth) { tiers_map_one_to_one("fedrolex-cifar10"); }

Test(presets, scalefl_cifar10_gives_each_level_a_quarter) { tiers_map_one_to_one("scalefl-cifar10"); }

Test(presets, scalefl_fmnist_gives_each_level_a_quarter) { tiers_map_one_to_one("scalefl"); }
