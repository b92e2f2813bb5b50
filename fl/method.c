/* The method registry, the options families of methods share, and the level builders methods share. */
#include "fl/method.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

extern const fg_method_ops fg_method_fedavg, fg_method_exclusivefl, fg_method_fedavg_s,
    fg_method_heterofl, fg_method_fedrolex, fg_method_depthfl, fg_method_scalefl, fg_method_neulite,
    fg_method_hypemefed, fg_method_multiexit;

static const fg_method_ops *const registry[] = {
    &fg_method_fedavg,   &fg_method_exclusivefl, &fg_method_fedavg_s, &fg_method_heterofl,
    &fg_method_fedrolex, &fg_method_depthfl,     &fg_method_scalefl,   &fg_method_neulite,
    &fg_method_hypemefed, &fg_method_multiexit,
};

enum { N_METHODS = (int)(sizeof registry / sizeof registry[0]) };

int fg_method_count(void) { return N_METHODS; }

const fg_method_ops *fg_method_at(int i) { return i >= 0 && i < N_METHODS ? registry[i] : NULL; }

const fg_method_ops *fg_method_find(const char *name) {
  for (int i = 0; i < N_METHODS; i++)
    if (name && strcmp(registry[i]->name, name) == 0) return registry[i];
  char names[256] = "";
  size_t len = 0;
  for (int i = 0; i < N_METHODS && len < sizeof names; i++)
    len += (size_t)snprintf(names + len, sizeof names - len, "%s%s", i ? ", " : "", registry[i]->name);
  FG_FAIL(FG_ERR_CONFIG, "unknown method '%s' (expected one of %s)", name ? name : "", names);
  return NULL;
}

/* ---- options families of methods share ---------------------------------------------------- */

static const double default_rates[] = {1, 0.5, 0.25, 0.125, 0.0625};

const fg_field fg_width_option_table[FG_WIDTH_OPTIONS] = {
    {.key = "rates", .type = FG_FIELD_REALS, .offset = offsetof(fg_width_options, rates),
     .count_offset = offsetof(fg_width_options, n_rates), .def_reals = default_rates, .n_def = 5, .min = 0,
     .min_open = 1, .max = 1, .min_len = 1, .max_len = FG_MAX_LEVELS, .order = -1, .entry = "rate",
     .doc = "width rate of each level (1: the full model), strictly descending"},
};

static const fg_choice level_rules[] = {{"budget", 0}, {"index", 1}};

const fg_field fg_multiexit_option_table[FG_MULTIEXIT_OPTIONS] = {
    {.key = "levels", .type = FG_FIELD_CHOICE, .offset = offsetof(fg_multiexit_options, levels_by_index), .def = 0,
     .choices = level_rules, .n_choices = 2,
     .doc = "each client at the deepest level its budget fits, or client i at depth (i mod 3) + 1 (index)"},
    {.key = "lr", .type = FG_FIELD_REAL, .offset = offsetof(fg_multiexit_options, lr), .def = 5e-4, .min = 0,
     .min_open = 1, .max = INFINITY, .doc = "local Adam learning rate (replaces local.optimizer and local.lr)"},
};

fg_status fg_method_build_level(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                                int level, fg_graph **out) {
  FG_TRY(fg_model_build(&mp->levels[level].spec, out));
  fg_graph_set_bn_mode(*out, "", mp->bn_mode);
  fg_status s = ops->prepare_level ? ops->prepare_level(mc, mp, level, *out) : FG_OK;
  if (s != FG_OK) {
    fg_graph_free(*out);
    *out = NULL;
  }
  return s;
}

fg_loss_spec fg_method_level_loss(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                                  int level, int round, int rounds) {
  fg_loss_spec loss;
  if (ops->loss)
    ops->loss(mc, mp, level, round, rounds, &loss);
  else
    fg_loss_every_exit(fg_spec_outputs(&mp->levels[level].spec), &loss);
  loss.class_mask = mp->label_mask;
  return loss;
}

void fg_method_local_options(const fg_method_plan *mp, fg_trainer_options *o) {
  if (mp->local_optim_set) o->optim = mp->local_optim;
  o->prox_mu = mp->prox_mu;
}

fg_status fg_method_plan_step(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                              int level, const fg_graph *g, const fg_trainer_options *local, int round, int rounds,
                              fg_plan **out) {
  fg_trainer_options o = *local;
  fg_method_local_options(mp, &o);
  o.loss = fg_method_level_loss(ops, mc, mp, level, round, rounds);
  return fg_plan_build(g, &o, out);
}

int fg_method_budget_round(int rounds) { return rounds > 0 ? rounds - 1 : 0; }

fg_status fg_method_plan_multiexit(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out) {
  const fg_multiexit_options *o = mc->options;
  memset(out, 0, sizeof *out);
  out->global = *base;
  out->global.exits = 1;
  fg_levels_by_depth(&out->global, out);
  out->channels = FG_CHANNELS_FIRST;
  out->weighting = mc->weighting;
  out->level_by_index = o->levels_by_index;
  out->local_optim_set = 1;
  out->local_optim = fg_optim_adam((float)o->lr, (float)(0.1 * o->lr));
  out->drop_last = 1; /* the reference's loaders drop the last partial batch */
  return FG_OK;
}

void fg_levels_by_depth(const fg_model_spec *base, fg_method_plan *mp) {
  int blocks = fg_model_block_count(base->arch);
  mp->n_levels = blocks;
  for (int l = 0; l < blocks; l++) {
    fg_level *lv = &mp->levels[l];
    memset(lv, 0, sizeof *lv);
    lv->spec = *base;
    lv->spec.exits = 1;
    lv->spec.depth = blocks - l;
    snprintf(lv->label, sizeof lv->label, "depth %d", blocks - l);
  }
}

void fg_levels_by_rate(const fg_model_spec *base, const double *rates, int n, fg_scaler_mode scaler,
                       fg_method_plan *mp) {
  mp->n_levels = n;
  for (int l = 0; l < n; l++) {
    fg_level *lv = &mp->levels[l];
    memset(lv, 0, sizeof *lv);
    lv->spec = *base;
    lv->spec.rate = rates[l];
    lv->spec.scaler = scaler;
    if (rates[l] >= 1.0)
      snprintf(lv->label, sizeof lv->label, "full");
    else
      snprintf(lv->label, sizeof lv->label, "rate %g", rates[l]);
  }
}

void fg_loss_every_exit(int outputs, fg_loss_spec *out) {
  memset(out, 0, sizeof *out);
  out->n = outputs;
  for (int k = 0; k < outputs; k++) {
    out->terms[k].kind = FG_LOSS_XENT;
    out->terms[k].output = k;
    out->terms[k].weight = 1.0f;
  }
}

int fg_spec_outputs(const fg_model_spec *spec) {
  int blocks = fg_model_block_count(spec->arch);
  int depth = spec->depth ? spec->depth : blocks;
  return spec->exits || strcmp(spec->arch, "vgg-me") == 0 ? depth : 1;
}
