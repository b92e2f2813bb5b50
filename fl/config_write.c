/* The resolved configuration (fg_config_write_resolved, fl/config.h): every key of the experiment
 * with its value, defaults filled in, and each method entry as its method's table gives it
 * (fg_method_config_write). Loading the file gives the same fg_config (but `path`). */
#include <stdio.h>
#include <stdlib.h>

#include "engine/io/atomic_file.h"
#include "fl/config.h"
#include "fl/schema.h"

static void put_real(FILE *f, double v) {
  char buf[40];
  fg_schema_real_text(v, buf, sizeof buf);
  fputs(buf, f);
}

static const char *bool_text(int v) { return v ? "true" : "false"; }

/* "<indent>key: value\n" for a real. */
static void put_key_real(FILE *f, const char *indent_key, double v) {
  fputs(indent_key, f);
  put_real(f, v);
  fputc('\n', f);
}

/* Tiers as "- {fraction: x, share: y}", profiles as "- {name: n, share: y}". */
static void write_budget_list(FILE *f, const fg_budget_spec *b) {
  int tiers = b->kind == FG_BUDGET_TIERS;
  fputs(tiers ? "    tiers:\n" : "    profiles:\n", f);
  for (int i = 0; i < (tiers ? b->n_tiers : b->n_profiles); i++) {
    fputs(tiers ? "      - {fraction: " : "      - {name: ", f);
    if (tiers) put_real(f, b->tiers[i].fraction);
    else fg_schema_put_string(f, b->profiles[i].name);
    fputs(", share: ", f);
    put_real(f, tiers ? b->tiers[i].share : b->profiles[i].share);
    fputs("}\n", f);
  }
}

static void write_budgets(FILE *f, const fg_budget_spec *b) {
  fprintf(f, "  budgets:\n    kind: %s\n", fg_budget_kind_name(b->kind));
  if (b->kind == FG_BUDGET_FIXED) put_key_real(f, "    mib: ", b->mib);
  if (b->kind == FG_BUDGET_UNIFORM) {
    put_key_real(f, "    min_mib: ", b->min_mib);
    put_key_real(f, "    max_mib: ", b->max_mib);
  }
  if (b->kind == FG_BUDGET_TIERS || b->kind == FG_BUDGET_PROFILES) write_budget_list(f, b);
}

static void write_data_model(FILE *f, const fg_config *cfg) {
  fputs("data:\n  dataset: ", f);
  fg_schema_put_string(f, cfg->dataset);
  fputc('\n', f);
  if (cfg->data_dir) {
    fputs("  dir: ", f);
    fg_schema_put_string(f, cfg->data_dir);
    fputc('\n', f);
  } else {
    fputs("  # dir: the dataset's default\n", f);
  }
  if (cfg->normalize) {
    fputs("  normalize: ", f);
    fg_schema_put_string(f, cfg->normalize);
    fputc('\n', f);
  } else {
    fputs("  # normalize: the dataset's\n", f);
  }
  if (cfg->augment >= 0) fprintf(f, "  augment: %s\n", bool_text(cfg->augment));
  else fputs("  # augment: the dataset's default\n", f);
  fprintf(f, "  partition:\n    kind: %s\n    alpha: ", fg_partition_kind_name(cfg->partition.kind));
  put_real(f, cfg->partition.alpha);
  fprintf(f, "\n    min_size: %d\n    classes_per_client: %d\n", cfg->partition.min_size,
          cfg->partition.classes_per_client);
  fprintf(f, "  pool: %s\n  local_test: ", bool_text(cfg->pool));
  put_real(f, cfg->local_test);
  fputc('\n', f);

  fputs("model:\n  arch: ", f);
  fg_schema_put_string(f, cfg->arch);
  fputs("\n  width: ", f);
  put_real(f, cfg->width);
  fputc('\n', f);
}

static void write_training(FILE *f, const fg_config *cfg) {
  fprintf(f, "sampling:\n  kind: %s\n", fg_sampling_kind_name(cfg->sampling.kind));
  if (cfg->sampling.per_round > 0) {
    fprintf(f, "  per_round: %d\n", cfg->sampling.per_round);
  } else {
    fputs("  fraction: ", f);
    put_real(f, cfg->sampling.fraction);
    fputc('\n', f);
  }
  fprintf(f, "local:\n  epochs: %d\n  batch: %d\n  optimizer: %s\n  lr: ", cfg->local_epochs, cfg->local_batch,
          cfg->optimizer ? cfg->optimizer : "sgd");
  put_real(f, cfg->lr);
  fputs("\n  lr_decay: ", f);
  put_real(f, cfg->lr_decay);
  if (cfg->n_lr_steps > 0) {
    fputs("\n  lr_steps: [", f);
    for (int i = 0; i < cfg->n_lr_steps; i++) fprintf(f, "%s%d", i ? ", " : "", cfg->lr_steps[i]);
    fputs("]", f);
  } else {
    fputs("\n  # lr_steps: none", f);
  }
  fputs("\n  lr_step_factor: ", f);
  put_real(f, cfg->lr_step_factor);
  fputs("\n  momentum: ", f);
  put_real(f, cfg->momentum);
  fputs("\n  weight_decay: ", f);
  put_real(f, cfg->weight_decay);
  fputs("\n  clip_norm: ", f);
  put_real(f, cfg->clip_norm);
  fprintf(f, "\n  mode: %s\n", cfg->mode ? cfg->mode : "store");
  fprintf(f, "eval:\n  every: %d\n  batch: %d\n  max_samples: %d\n  bn_samples: %d\n  protocol: %s\n", cfg->eval_every,
          cfg->eval_batch, cfg->eval_max_samples, cfg->eval_bn_samples, fg_eval_protocol_name(cfg->eval_protocol));
  fprintf(f, "checkpoint:\n  every: %d\n", cfg->checkpoint_every);
  fputs("updates:\n  max_distance: ", f);
  put_real(f, cfg->update_max_distance);
  fprintf(f, "\n  on_diverge: %s\n", fg_diverge_action_name(cfg->on_diverge));
  fputs("devices:\n  deadline: ", f);
  put_real(f, cfg->devices_deadline);
  fprintf(f, "\n  min_results: %d\n  retries: %d\n  wait: ", cfg->devices_min_results, cfg->devices_retries);
  put_real(f, cfg->devices_wait);
  fputs("\n  grace: ", f);
  put_real(f, cfg->devices_grace);
  fputs("\n", f);
}

static fg_status write_config(FILE *f, const fg_config *cfg, int method_index, const char *revision) {
  fputs("# fedgap ", f);
  for (const char *p = revision ? revision : "unknown"; *p; p++) fputc((unsigned char)*p < 0x20 ? ' ' : *p, f);
  fputs("\n# Resolved configuration: every key with its value, defaults filled in.\n", f);
  fputs("name: ", f);
  fg_schema_put_string(f, cfg->name);
  char device[32];
  if (cfg->n_seeds > 0) {
    fputs("\nseeds: [", f);
    for (int i = 0; i < cfg->n_seeds; i++) fprintf(f, "%s%d", i ? ", " : "", cfg->seeds[i]);
    fputs("]", f);
  }
  fprintf(f, "\nseed: %llu\nrounds: %d\nthreads: %d\ndevice: %s\n", (unsigned long long)cfg->seed, cfg->rounds,
          cfg->threads, fg_device_str(cfg->device, device, sizeof device));
  write_data_model(f, cfg);
  fprintf(f, "clients:\n  count: %d\n", cfg->clients);
  write_budgets(f, &cfg->budgets);
  write_training(f, cfg);
  if (method_index >= 0 || !cfg->compare) {
    fputs("method:\n", f);
    return fg_method_config_write(f, &cfg->methods[method_index >= 0 ? method_index : 0], "  ", "  ");
  }
  fputs("methods:\n", f);
  for (int i = 0; i < cfg->n_methods; i++) FG_TRY(fg_method_config_write(f, &cfg->methods[i], "  - ", "    "));
  return FG_OK;
}

fg_status fg_config_resolved_text(const fg_config *cfg, int method_index, const char *revision, char **text_out,
                                  size_t *len_out) {
  if (!cfg || !text_out || !len_out) return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: null argument");
  *text_out = NULL;
  *len_out = 0;
  if (cfg->n_methods < 1 || cfg->n_methods > FG_MAX_METHODS)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: the config holds no loaded method");
  if (method_index < -1 || method_index >= cfg->n_methods)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: method index %d out of range (the config has %d)",
                   method_index, cfg->n_methods);
  if (cfg->budgets.kind > FG_BUDGET_PROFILES || cfg->partition.kind > FG_PARTITION_SHARDS ||
      cfg->sampling.kind > FG_SAMPLE_REFERENCE || cfg->eval_protocol > FG_EVAL_LOCAL || !cfg->name ||
      !cfg->dataset || !cfg->arch)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: the config was not loaded");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return FG_FAIL(FG_ERR_OOM, "fg_config_write_resolved: out of memory");
  fg_status st = write_config(f, cfg, method_index, revision);
  if (fclose(f) != 0 && st == FG_OK) st = FG_FAIL(FG_ERR_OOM, "fg_config_write_resolved: out of memory");
  if (st != FG_OK) {
    free(text);
    return st;
  }
  *text_out = text;
  *len_out = len;
  return FG_OK;
}

fg_status fg_config_write_resolved(const fg_config *cfg, int method_index, const char *path, const char *revision) {
  if (!cfg || !path) return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: null argument");
  char *text = NULL;
  size_t len = 0;
  FG_TRY(fg_config_resolved_text(cfg, method_index, revision, &text, &len));
  fg_status st = fg_write_file_atomic(path, text, len);
  free(text);
  return st;
}

uint64_t fg_text_hash(const char *text) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */
  for (; text && *text; text++) h = (h ^ (unsigned char)*text) * 0x100000001b3ull;
  return h;
}

fg_status fg_config_hash(const fg_config *cfg, uint64_t *hash) {
  /* The devices section is the server's alone (how long it waits, how many results it needs): it
   * changes no number a device computes, so it stays out of the hash. */
  fg_config same = *cfg;
  same.devices_deadline = same.devices_wait = same.devices_grace = 0;
  same.devices_min_results = same.devices_retries = 0;
  char *text = NULL;
  size_t len = 0;
  FG_TRY(fg_config_resolved_text(&same, -1, "", &text, &len));
  *hash = fg_text_hash(text);
  free(text);
  return FG_OK;
}
