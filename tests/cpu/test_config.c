/* Experiment configurations (fl/config.h): a file with every key loads to the values written in
 * it; a minimal file gets every default of configs/README.md, per method too; every class of
 * mistake fails with FG_ERR_CONFIG naming the file and the key path; --set overrides act on the
 * document before validation; the resolved file re-loads to an identical configuration. */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/test_util.h"
#include "fl/config.h"
#include "fl/method.h"
#include "fl/world.h"

/* ---- helpers ------------------------------------------------------------------------------ */

static char *tmp_dir;

static void setup(void) { tmp_dir = fgt_mkdtemp(); }
static void teardown(void) {
  fgt_rmtree(tmp_dir);
  free(tmp_dir);
}

TestSuite(config, .init = setup, .fini = teardown);

static char *path_in(const char *name) {
  size_t n = strlen(tmp_dir) + strlen(name) + 2;
  char *p = malloc(n);
  cr_assert_not_null(p);
  snprintf(p, n, "%s/%s", tmp_dir, name);
  return p;
}

/* Writes `text` to tmp_dir/name with plain stdio; returns the path (caller frees). */
static char *write_yaml(const char *name, const char *text) {
  char *p = path_in(name);
  FILE *fp = fopen(p, "wb");
  cr_assert_not_null(fp, "cannot create %s", p);
  cr_assert_eq(fwrite(text, 1, strlen(text), fp), strlen(text));
  cr_assert_eq(fclose(fp), 0);
  return p;
}

static char *read_text(const char *path) {
  FILE *fp = fopen(path, "rb");
  cr_assert_not_null(fp, "cannot open %s", path);
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  cr_assert_eq(fread(buf, 1, (size_t)n, fp), (size_t)n);
  buf[n] = '\0';
  fclose(fp);
  return buf;
}

/* The smallest valid document, with `extra` appended (top-level keys). */
#define MINIMAL                 \
  "rounds: 10\n"                \
  "data:\n"                     \
  "  dataset: fashion-mnist\n"  \
  "model:\n"                    \
  "  arch: cnn\n"               \
  "clients:\n"                  \
  "  count: 100\n"

/* Loads `text` as exp.yaml with overrides and expects FG_ERR_CONFIG (or `want`) with a message
 * holding the file name and every one of the NULL-terminated `parts`. */
static void expect_error_set(const char *text, const char *const *set, int n_set, fg_status want, ...) {
  char *p = write_yaml("exp.yaml", text);
  fg_config cfg;
  fg_status s = fg_config_load(p, set, n_set, &cfg);
  const char *msg = fg_last_error();
  cr_assert_eq(s, want, "status %s (want %s), message: %s\n--- yaml:\n%s", fg_status_name(s),
               fg_status_name(want), msg, text);
  cr_assert(strstr(msg, "exp.yaml") != NULL, "message does not name the file: %s", msg);
  va_list ap;
  va_start(ap, want);
  for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *))
    cr_assert(strstr(msg, part) != NULL, "message lacks \"%s\": %s\n--- yaml:\n%s", part, msg, text);
  va_end(ap);
  /* a failed load leaves the config empty */
  cr_assert_null(cfg.name);
  cr_assert_null(cfg.storage);
  cr_assert_eq(cfg.n_methods, 0);
  fg_config_free(&cfg);
  free(p);
}

#define EXPECT_ERROR(text, ...) expect_error_set((text), NULL, 0, FG_ERR_CONFIG, __VA_ARGS__, NULL)

static void load_ok(const char *name, const char *text, const char *const *set, int n_set, fg_config *cfg) {
  char *p = write_yaml(name, text);
  FGT_OK(fg_config_load(p, set, n_set, cfg));
  cr_assert_str_eq(cfg->path, p);
  free(p);
}

static void assert_opt_str_eq(const char *a, const char *b, const char *what) {
  cr_assert_eq(a == NULL, b == NULL, "%s: one is NULL (%s vs %s)", what, a ? a : "NULL", b ? b : "NULL");
  if (a) cr_assert_str_eq(a, b, "%s", what);
}

/* Method option `key` of `m` (weighting included) as the resolved file writes it: the shortest
 * text that reads back as the same double, so equal text is equal values. */
static void assert_option(const fg_method_config *m, const char *key, const char *want) {
  char got[512];
  FGT_OK(fg_method_option_text(m, key, got, sizeof got));
  cr_assert_str_eq(got, want, "%s.%s: %s, want %s", m->name, key, got, want);
}

/* assert_option for each of the NULL-terminated pairs: key, expected text. */
static void assert_options(const fg_method_config *m, ...) {
  va_list ap;
  va_start(ap, m);
  for (const char *key = va_arg(ap, const char *); key; key = va_arg(ap, const char *))
    assert_option(m, key, va_arg(ap, const char *));
  va_end(ap);
}

/* The method takes no option `key`. */
static void assert_no_option(const fg_method_config *m, const char *key) {
  char got[512];
  cr_assert_eq(fg_method_option_text(m, key, got, sizeof got), FG_ERR_CONFIG, "%s has an option %s", m->name, key);
}

/* Option i of a method: its shared options, then its own. */
static const fg_field *method_option(const fg_method_ops *ops, int i) {
  return i < ops->n_shared_options ? &ops->shared_options[i] : &ops->options[i - ops->n_shared_options];
}

static void assert_method_equal(const fg_method_config *a, const fg_method_config *b, const char *what) {
  cr_assert_str_eq(a->name, b->name, "%s.name", what);
  assert_opt_str_eq(a->label, b->label, what);
  cr_assert_eq(a->weighting, b->weighting, "%s.weighting", what);
  cr_assert_eq(a->sampling, b->sampling, "%s.sampling", what);
  const fg_method_ops *ops = fg_method_find(a->name);
  cr_assert_not_null(ops);
  for (int i = 0; i < ops->n_shared_options + ops->n_options; i++) {
    char want[512];
    FGT_OK(fg_method_option_text(b, method_option(ops, i)->key, want, sizeof want));
    assert_option(a, method_option(ops, i)->key, want);
  }
  if (ops->options_size)
    cr_assert_eq(memcmp(a->options, b->options, ops->options_size), 0, "%s: options differ", what);
}

/* Every field but `path` (and the methods, compared by the caller when they differ in layout). */
static void assert_common_equal(const fg_config *a, const fg_config *b) {
  cr_assert_str_eq(a->name, b->name);
  cr_assert_eq(a->seed, b->seed);
  cr_assert_eq(a->rounds, b->rounds);
  cr_assert_eq(a->threads, b->threads);
  cr_assert(fg_device_equal(a->device, b->device));
  cr_assert_str_eq(a->dataset, b->dataset);
  assert_opt_str_eq(a->data_dir, b->data_dir, "data_dir");
  cr_assert_eq(a->augment, b->augment);
  cr_assert_eq(a->partition.kind, b->partition.kind);
  cr_assert_eq(a->partition.alpha, b->partition.alpha);
  cr_assert_eq(a->partition.min_size, b->partition.min_size);
  cr_assert_eq(a->partition.classes_per_client, b->partition.classes_per_client);
  cr_assert_eq(a->pool, b->pool);
  cr_assert_eq(a->local_test, b->local_test);
  cr_assert_str_eq(a->arch, b->arch);
  cr_assert_eq(a->width, b->width);
  cr_assert_eq(a->clients, b->clients);
  cr_assert_eq(a->budgets.kind, b->budgets.kind);
  cr_assert_eq(a->budgets.mib, b->budgets.mib);
  cr_assert_eq(a->budgets.min_mib, b->budgets.min_mib);
  cr_assert_eq(a->budgets.max_mib, b->budgets.max_mib);
  cr_assert_eq(a->budgets.n_tiers, b->budgets.n_tiers);
  for (int i = 0; i < a->budgets.n_tiers; i++) {
    cr_assert_eq(a->budgets.tiers[i].fraction, b->budgets.tiers[i].fraction);
    cr_assert_eq(a->budgets.tiers[i].share, b->budgets.tiers[i].share);
  }
  cr_assert_eq(a->budgets.n_profiles, b->budgets.n_profiles);
  for (int i = 0; i < a->budgets.n_profiles; i++) {
    cr_assert_str_eq(a->budgets.profiles[i].name, b->budgets.profiles[i].name);
    cr_assert_eq(a->budgets.profiles[i].share, b->budgets.profiles[i].share);
  }
  cr_assert_eq(a->sampling.kind, b->sampling.kind);
  cr_assert_eq(a->sampling.per_round, b->sampling.per_round);
  cr_assert_eq(a->sampling.fraction, b->sampling.fraction);
  cr_assert_eq(a->local_epochs, b->local_epochs);
  cr_assert_eq(a->local_batch, b->local_batch);
  cr_assert_str_eq(a->optimizer, b->optimizer);
  cr_assert_eq(a->lr, b->lr);
  cr_assert_eq(a->lr_decay, b->lr_decay);
  cr_assert_eq(a->n_lr_steps, b->n_lr_steps);
  for (int i = 0; i < a->n_lr_steps; i++) cr_assert_eq(a->lr_steps[i], b->lr_steps[i]);
  cr_assert_eq(a->lr_step_factor, b->lr_step_factor);
  cr_assert_eq(a->momentum, b->momentum);
  cr_assert_eq(a->weight_decay, b->weight_decay);
  cr_assert_eq(a->clip_norm, b->clip_norm);
  cr_assert_str_eq(a->mode, b->mode);
  cr_assert_eq(a->eval_every, b->eval_every);
  cr_assert_eq(a->eval_batch, b->eval_batch);
  cr_assert_eq(a->eval_max_samples, b->eval_max_samples);
  cr_assert_eq(a->eval_bn_samples, b->eval_bn_samples);
  cr_assert_eq(a->eval_protocol, b->eval_protocol);
  cr_assert_eq(a->checkpoint_every, b->checkpoint_every);
}

static void assert_config_equal(const fg_config *a, const fg_config *b) {
  assert_common_equal(a, b);
  cr_assert_eq(a->compare, b->compare);
  cr_assert_eq(a->n_methods, b->n_methods);
  for (int i = 0; i < a->n_methods; i++) {
    char what[32];
    snprintf(what, sizeof what, "methods[%d]", i);
    assert_method_equal(&a->methods[i], &b->methods[i], what);
  }
}

/* ---- a file with every key ---------------------------------------------------------------- */

static const char *full_yaml =
    "# every key, none at its default\n"
    "name: full-run\n"
    "seed: 42\n"
    "rounds: 250\n"
    "threads: 3\n"
    "data:\n"
    "  dataset: cifar10\n"
    "  dir: /data/my cifar\n"
    "  augment: false\n"
    "  partition:\n"
    "    kind: dirichlet\n"
    "    alpha: 0.3\n"
    "    min_size: 5\n"
    "    classes_per_client: 4\n"
    "  pool: true\n"
    "  local_test: 0.25\n"
    "model:\n"
    "  arch: resnet18\n"
    "  width: 0.5\n"
    "clients:\n"
    "  count: 50\n"
    "  budgets:\n"
    "    kind: tiers\n"
    "    tiers:\n"
    "      - {fraction: 0.25, share: 0.5}\n"
    "      - fraction: 1.5\n"
    "        share: 0.25\n"
    "      - {fraction: 0.125, share: 0.25}\n"
    "sampling:\n"
    "  kind: per_level\n"
    "  per_round: 12\n"
    "local:\n"
    "  epochs: 2\n"
    "  batch: 32\n"
    "  optimizer: adam\n"
    "  lr: 2e-4\n"
    "  lr_decay: 0.99\n"
    "  lr_steps: [100, 200]\n"
    "  lr_step_factor: 0.5\n"
    "  momentum: 0.9\n"
    "  weight_decay: 5e-4\n"
    "  clip_norm: 2.5\n"
    "  mode: checkpoint\n"
    "eval:\n"
    "  every: 5\n"
    "  batch: 128\n"
    "  max_samples: 1000\n"
    "  bn_samples: 0\n"
    "  protocol: local\n"
    "checkpoint:\n"
    "  every: 0\n"
    "method:\n"
    "  name: heterofl\n"
    "  weighting: samples\n"
    "  rates: [1, 0.5, 0.25]\n"
    "  scaler: no\n"
    "  sbn: yes\n"
    "  label_mask: true\n";

Test(config, full_file_loads_every_value) {
  fg_config cfg;
  load_ok("full.yaml", full_yaml, NULL, 0, &cfg);
  cr_assert_str_eq(cfg.name, "full-run");
  cr_assert_eq(cfg.seed, 42);
  cr_assert_eq(cfg.rounds, 250);
  cr_assert_eq(cfg.threads, 3);
  cr_assert_str_eq(cfg.dataset, "cifar10");
  cr_assert_str_eq(cfg.data_dir, "/data/my cifar");
  cr_assert_eq(cfg.augment, 0);
  cr_assert_eq(cfg.partition.kind, FG_PARTITION_DIRICHLET);
  cr_assert_eq(cfg.partition.alpha, 0.3);
  cr_assert_eq(cfg.partition.min_size, 5);
  cr_assert_eq(cfg.partition.classes_per_client, 4);
  cr_assert_eq(cfg.pool, 1);
  cr_assert_eq(cfg.local_test, 0.25);
  cr_assert_str_eq(cfg.arch, "resnet18");
  cr_assert_eq(cfg.width, 0.5);
  cr_assert_eq(cfg.clients, 50);
  cr_assert_eq(cfg.budgets.kind, FG_BUDGET_TIERS);
  cr_assert_eq(cfg.budgets.n_tiers, 3);
  const double fr[] = {0.25, 1.5, 0.125}, sh[] = {0.5, 0.25, 0.25};
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(cfg.budgets.tiers[i].fraction, fr[i]);
    cr_assert_eq(cfg.budgets.tiers[i].share, sh[i]);
  }
  cr_assert_eq(cfg.budgets.n_profiles, 0);
  cr_assert_eq(cfg.sampling.kind, FG_SAMPLE_PER_LEVEL);
  cr_assert_eq(cfg.sampling.per_round, 12);
  cr_assert_eq(cfg.local_epochs, 2);
  cr_assert_eq(cfg.local_batch, 32);
  cr_assert_str_eq(cfg.optimizer, "adam");
  cr_assert_eq(cfg.lr, 2e-4);
  cr_assert_eq(cfg.lr_decay, 0.99);
  cr_assert_eq(cfg.n_lr_steps, 2);
  cr_assert(cfg.lr_steps[0] == 100 && cfg.lr_steps[1] == 200);
  cr_assert_eq(cfg.lr_step_factor, 0.5);
  cr_assert_eq(cfg.momentum, 0.9);
  cr_assert_eq(cfg.weight_decay, 5e-4);
  cr_assert_eq(cfg.clip_norm, 2.5);
  cr_assert_str_eq(cfg.mode, "checkpoint");
  cr_assert_eq(cfg.eval_every, 5);
  cr_assert_eq(cfg.eval_batch, 128);
  cr_assert_eq(cfg.eval_max_samples, 1000);
  cr_assert_eq(cfg.eval_bn_samples, 0);
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_LOCAL);
  cr_assert_eq(cfg.checkpoint_every, 0);
  cr_assert_eq(cfg.compare, 0);
  cr_assert_eq(cfg.n_methods, 1);
  const fg_method_config *m = &cfg.methods[0];
  cr_assert_str_eq(m->name, "heterofl");
  cr_assert_eq(m->weighting, FG_WEIGHT_SAMPLES);
  assert_options(m, "rates", "[1, 0.5, 0.25]", "scaler", "false", "sbn", "true", "label_mask", "true", NULL);
  fg_config_free(&cfg);
  cr_assert_null(cfg.name);
  fg_config_free(&cfg); /* twice is harmless */
}

Test(config, every_method_option_loads) {
  const char *yaml =
      "rounds: 3\n"
      "data: {dataset: cifar100, augment: on}\n"
      "model: {arch: vgg-me}\n"
      "clients:\n"
      "  count: 7\n"
      "  budgets:\n"
      "    kind: profiles\n"
      "    profiles:\n"
      "      - {name: rpi4-2gb, share: 0.75}\n"
      "      - {name: \"phone: 8gb\", share: 0.25}\n"
      "methods:\n"
      "  - {name: fedavg, weighting: count}\n"
      "  - {name: fedavg-s, rates: [0.5, 0.25]}\n"
      "  - name: fedrolex\n"
      "    rates: [1, 0.125]\n"
      "    scaler: false\n"
      "    label_mask: true\n"
      "    rolling: random\n"
      "  - {name: depthfl, kd: false, kd_ramp_rounds: 0, weighting: samples}\n"
      "  - name: scalefl\n"
      "    widths: [0.25, 0.5, 0.75, 1]\n"
      "    exits: [1, 2, 2, 3]\n"
      "    kd_gamma: 0\n"
      "    kd_temperature: 1.5\n"
      "    kd_start: 1\n"
      "  - {name: exclusivefl}\n";
  fg_config cfg;
  load_ok("all.yaml", yaml, NULL, 0, &cfg);
  cr_assert_str_eq(cfg.name, "all");
  cr_assert_eq(cfg.augment, 1);
  cr_assert_eq(cfg.width, 1, "vgg-me's default width is 1");
  cr_assert_eq(cfg.budgets.kind, FG_BUDGET_PROFILES);
  cr_assert_eq(cfg.budgets.n_profiles, 2);
  cr_assert_str_eq(cfg.budgets.profiles[0].name, "rpi4-2gb");
  cr_assert_str_eq(cfg.budgets.profiles[1].name, "phone: 8gb");
  cr_assert_eq(cfg.budgets.profiles[1].share, 0.25);
  cr_assert_eq(cfg.compare, 1);
  cr_assert_eq(cfg.n_methods, 6);
  cr_assert_eq(cfg.methods[0].weighting, FG_WEIGHT_COUNT);
  assert_option(&cfg.methods[1], "rates", "[0.5, 0.25]");
  const fg_method_config *r = &cfg.methods[2];
  assert_options(r, "rates", "[1, 0.125]", "scaler", "false", "label_mask", "true", "rolling", "random", NULL);
  cr_assert_eq(r->weighting, FG_WEIGHT_COUNT);
  const fg_method_config *d = &cfg.methods[3];
  assert_option(d, "kd", "false");
  assert_option(d, "kd_ramp_rounds", "0");
  cr_assert_eq(d->weighting, FG_WEIGHT_SAMPLES);
  const fg_method_config *s = &cfg.methods[4];
  assert_options(s, "widths", "[0.25, 0.5, 0.75, 1]", "exits", "[1, 2, 2, 3]", "kd_gamma", "0",
                 "kd_temperature", "1.5", "kd_start", "1", NULL);
  cr_assert_str_eq(cfg.methods[5].name, "exclusivefl");
  fg_config_free(&cfg);
}

/* ---- defaults ----------------------------------------------------------------------------- */

Test(config, minimal_file_gets_every_documented_default) {
  fg_config cfg;
  load_ok("my-exp.yaml", MINIMAL "method: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_str_eq(cfg.name, "my-exp", "name defaults to the file name");
  cr_assert_eq(cfg.seed, 1);
  cr_assert_eq(cfg.rounds, 10);
  cr_assert_eq(cfg.threads, 0);
  cr_assert_str_eq(cfg.dataset, "fashion-mnist");
  cr_assert_null(cfg.data_dir);
  cr_assert_eq(cfg.augment, -1);
  cr_assert_eq(cfg.partition.kind, FG_PARTITION_IID);
  cr_assert_eq(cfg.partition.alpha, 0.5);
  cr_assert_eq(cfg.partition.min_size, 10);
  cr_assert_eq(cfg.partition.classes_per_client, 2);
  cr_assert_eq(cfg.pool, 0);
  cr_assert_eq(cfg.local_test, 0);
  cr_assert_str_eq(cfg.arch, "cnn");
  cr_assert_eq(cfg.width, 16, "cnn's default width is 16");
  cr_assert_eq(cfg.clients, 100);
  cr_assert_eq(cfg.budgets.kind, FG_BUDGET_NONE);
  cr_assert_eq(cfg.budgets.n_tiers, 0);
  cr_assert_eq(cfg.budgets.n_profiles, 0);
  cr_assert_eq(cfg.sampling.kind, FG_SAMPLE_REFERENCE);
  cr_assert_eq(cfg.sampling.per_round, 0);
  cr_assert_eq(cfg.sampling.fraction, 0.1);
  cr_assert_eq(cfg.local_epochs, 1);
  cr_assert_eq(cfg.local_batch, 64);
  cr_assert_str_eq(cfg.optimizer, "sgd");
  cr_assert_eq(cfg.lr, 0.01);
  cr_assert_eq(cfg.lr_decay, 1);
  cr_assert_eq(cfg.n_lr_steps, 0, "no lr steps by default");
  cr_assert_eq(cfg.lr_step_factor, 0.1);
  cr_assert_eq(cfg.momentum, 0);
  cr_assert_eq(cfg.weight_decay, 0);
  cr_assert_eq(cfg.clip_norm, 0, "no clipping by default");
  cr_assert_str_eq(cfg.mode, "store");
  cr_assert_eq(cfg.eval_every, 1);
  cr_assert_eq(cfg.eval_batch, 256);
  cr_assert_eq(cfg.eval_max_samples, 0);
  cr_assert_eq(cfg.eval_bn_samples, 5000, "static BN recalibration over 5000 training samples by default");
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_GLOBAL);
  cr_assert_eq(cfg.checkpoint_every, 10);
  cr_assert_eq(cfg.compare, 0);
  cr_assert_eq(cfg.n_methods, 1);
  cr_assert_str_eq(cfg.methods[0].name, "fedavg");
  cr_assert_eq(cfg.methods[0].weighting, FG_WEIGHT_SAMPLES);
  assert_no_option(&cfg.methods[0], "rates");
  fg_config_free(&cfg);
}

Test(config, per_method_defaults_follow_the_table) {
  fg_config cfg;
  load_ok("cmp.yml",
          MINIMAL
          "methods:\n"
          "  - name: fedavg\n"
          "  - name: exclusivefl\n"
          "  - name: fedavg-s\n"
          "  - name: heterofl\n"
          "  - name: fedrolex\n"
          "  - name: depthfl\n"
          "  - name: scalefl\n"
          "  - name: neulite\n",
          NULL, 0, &cfg);
  cr_assert_str_eq(cfg.name, "cmp");
  cr_assert_eq(cfg.compare, 1);
  cr_assert_eq(cfg.n_methods, 8);
  const char *names[] = {"fedavg", "exclusivefl", "fedavg-s", "heterofl", "fedrolex", "depthfl", "scalefl", "neulite"};
  const fg_weighting weighting[] = {FG_WEIGHT_SAMPLES, FG_WEIGHT_SAMPLES, FG_WEIGHT_SAMPLES, FG_WEIGHT_COUNT,
                                    FG_WEIGHT_COUNT,   FG_WEIGHT_COUNT,   FG_WEIGHT_COUNT,   FG_WEIGHT_SAMPLES};
  for (int i = 0; i < 8; i++) {
    cr_assert_str_eq(cfg.methods[i].name, names[i]);
    cr_assert_eq(cfg.methods[i].weighting, weighting[i], "%s weighting", names[i]);
  }
  for (int i = 2; i <= 4; i++) assert_option(&cfg.methods[i], "rates", "[1, 0.5, 0.25, 0.125, 0.0625]");
  const fg_method_config *h = &cfg.methods[3], *r = &cfg.methods[4], *d = &cfg.methods[5], *s = &cfg.methods[6];
  assert_options(h, "scaler", "true", "sbn", "true", "label_mask", "false", NULL);
  assert_options(r, "scaler", "true", "label_mask", "false", "rolling", "roll", NULL);
  assert_no_option(h, "rolling");
  assert_option(d, "kd", "true");
  assert_option(d, "kd_ramp_rounds", "-1");
  /* ScaleFL's reference widths; exits not given: the reference's 1..4 capped at the blocks */
  assert_options(s, "widths", "[0.7, 0.7, 0.75, 1]", "exits", "[]", "kd_gamma", "0.05", "kd_temperature", "3",
                 "kd_start", "0.25", NULL);
  /* a method has only its own options */
  assert_no_option(&cfg.methods[0], "rates");
  assert_no_option(&cfg.methods[0], "widths");
  assert_no_option(s, "rates");
  assert_no_option(s, "schedule");
  assert_no_option(s, "frozen_bn");
  assert_no_option(s, "hsic_sigma");
  assert_no_option(&cfg.methods[7], "rates");
  assert_no_option(&cfg.methods[7], "kd");
  assert_option(&cfg.methods[7], "schedule", "roundrobin");
  fg_config_free(&cfg);
}

/* Every neulite default of configs/README.md: each scalar is filled whatever the schedule. */
static void assert_neulite_defaults(const fg_method_config *n, const char *schedule, const char *advance) {
  cr_assert_str_eq(n->name, "neulite");
  cr_assert_eq(n->weighting, FG_WEIGHT_SAMPLES, "neulite weights by samples (the paper's |D_n|/|D|)");
  assert_option(n, "schedule", schedule);
  assert_option(n, "advance", advance);
  assert_option(n, "stage_rounds", "[]"); /* not given: the rounds split evenly */
  assert_options(n, "em_threshold", "0.1", "em_window", "6", "em_every", "10", "em_samples", "10000", NULL);
  assert_option(n, "lambdas", "[]"); /* not given: the method's default schedule */
  assert_options(n, "gammas", "[]", "hsic_sigma", "5", "mentor", "true", "harmonizer", "true", "frozen_bn", "update",
                 NULL);
  /* a method has only its own options */
  assert_no_option(n, "rates");
  assert_no_option(n, "widths");
  assert_no_option(n, "rolling");
}

Test(config, neulite_defaults) {
  fg_config cfg;
  load_ok("n.yaml", MINIMAL "method: {name: neulite}\n", NULL, 0, &cfg);
  assert_neulite_defaults(&cfg.methods[0], "roundrobin", "rounds");
  fg_config_free(&cfg);
  load_ok("n.yaml", MINIMAL "method: {name: neulite, schedule: sequential}\n", NULL, 0, &cfg);
  assert_neulite_defaults(&cfg.methods[0], "sequential", "rounds");
  fg_config_free(&cfg);
  load_ok("n.yaml", MINIMAL "method: {name: neulite, schedule: sequential, advance: movement}\n", NULL, 0, &cfg);
  assert_neulite_defaults(&cfg.methods[0], "sequential", "movement");
  fg_config_free(&cfg);
}

Test(config, neulite_options_load) {
  const char *yaml =
      "rounds: 40\n"
      "data: {dataset: cifar10}\n"
      "model: {arch: resnet18}\n"
      "clients: {count: 10}\n"
      "methods:\n"
      "  - name: neulite\n"
      "    weighting: count\n"
      "    schedule: sequential\n"
      "    advance: rounds\n"
      "    stage_rounds: [5, 10, 10, 15]\n"
      "    lambdas: [0, 0.5, 1e-3, 2]\n"
      "    gammas: [1, 1, 0, 0.25]\n"
      "    hsic_sigma: 2.5\n"
      "    mentor: false\n"
      "    harmonizer: no\n"
      "    frozen_bn: fixed\n"
      "    output_module: bn_relu\n"
      "  - name: neulite\n"
      "    label: neulite-movement\n"
      "    schedule: sequential\n"
      "    advance: movement\n"
      "    em_threshold: 1\n"
      "    em_window: 2\n"
      "    em_every: 1\n"
      "    em_samples: 1\n";
  fg_config cfg;
  load_ok("nl.yaml", yaml, NULL, 0, &cfg);
  cr_assert_eq(cfg.n_methods, 2);
  const fg_method_config *a = &cfg.methods[0], *b = &cfg.methods[1];
  cr_assert_eq(a->weighting, FG_WEIGHT_COUNT);
  assert_options(a, "schedule", "sequential", "advance", "rounds", "stage_rounds", "[5, 10, 10, 15]",
                 "lambdas", "[0, 0.5, 0.001, 2]", "gammas", "[1, 1, 0, 0.25]", "hsic_sigma", "2.5", "mentor", "false",
                 "harmonizer", "false", "frozen_bn", "fixed", "output_module", "bn_relu", NULL);
  assert_option(b, "output_module", "linear"); /* the reference's output module by default */
  assert_option(a, "em_threshold", "0.1");     /* defaults filled even where unused */
  assert_options(b, "advance", "movement", "em_threshold", "1", "em_window", "2", "em_every", "1", "em_samples", "1",
                 "stage_rounds", "[]", NULL);
  cr_assert_eq(b->weighting, FG_WEIGHT_SAMPLES);
  fg_config_free(&cfg);

  /* cnn and vgg-me have 3 stages */
  load_ok("nc.yaml", MINIMAL "method: {name: neulite, lambdas: [1, 2, 3], gammas: [0, 0, 0]}\n", NULL, 0, &cfg);
  assert_option(&cfg.methods[0], "lambdas", "[1, 2, 3]");
  fg_config_free(&cfg);
  const char *vgg[] = {"model.arch=vgg-me", "method.schedule=sequential", "method.stage_rounds=[3,3,4]"};
  load_ok("nv.yaml", MINIMAL "method: {name: neulite}\n", vgg, 3, &cfg);
  assert_option(&cfg.methods[0], "stage_rounds", "[3, 3, 4]");
  fg_config_free(&cfg);
}

Test(config, neulite_bad_values_name_the_key) {
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: random}\n",
               "method.schedule: unknown value 'random' (expected one of: roundrobin, sequential)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, advance: loss}\n",
               "method.advance: unknown value 'loss' (expected one of: rounds, movement)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, frozen_bn: frozen}\n",
               "method.frozen_bn: unknown value 'frozen' (expected one of: update, fixed)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, output_module: relu}\n",
               "method.output_module: unknown value 'relu' (expected one of: linear, bn_relu)");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, output_module: linear}\n", "method.output_module: method heterofl");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, mentor: sometimes}\n", "method.mentor: 'sometimes' is not a boolean");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, harmonizer: 2}\n", "method.harmonizer: '2' is not a boolean");
  const char *seq_mv = "method: {name: neulite, schedule: sequential, advance: movement, ";
  char text[512];
#define NEULITE_ERROR(prefix, keys, ...)                                    \
  do {                                                                      \
    snprintf(text, sizeof text, "%s%s%s}\n", MINIMAL, prefix, keys);        \
    EXPECT_ERROR(text, __VA_ARGS__);                                        \
  } while (0)
  NEULITE_ERROR(seq_mv, "em_threshold: 0", "method.em_threshold: 0 is out of range (expected in (0, 1])");
  NEULITE_ERROR(seq_mv, "em_threshold: 1.5", "method.em_threshold: 1.5 is out of range (expected in (0, 1])");
  NEULITE_ERROR(seq_mv, "em_threshold: -0.1", "method.em_threshold: -0.1 is out of range");
  NEULITE_ERROR(seq_mv, "em_threshold: .nan", "method.em_threshold: '.nan' is not a finite number");
  NEULITE_ERROR(seq_mv, "em_window: 1", "method.em_window: 1 is out of range (expected >= 2)");
  NEULITE_ERROR(seq_mv, "em_window: 2.5", "method.em_window: '2.5' is not an integer");
  NEULITE_ERROR(seq_mv, "em_every: 0", "method.em_every: 0 is out of range (expected >= 1)");
  NEULITE_ERROR(seq_mv, "em_samples: 0", "method.em_samples: 0 is out of range (expected >= 1)");
  NEULITE_ERROR(seq_mv, "em_samples: -5", "method.em_samples: -5 is out of range (expected >= 1)");
  const char *nl = "method: {name: neulite, ";
  NEULITE_ERROR(nl, "hsic_sigma: 0", "method.hsic_sigma: 0 is out of range (expected > 0)");
  NEULITE_ERROR(nl, "hsic_sigma: -1", "method.hsic_sigma: -1 is out of range (expected > 0)");
  NEULITE_ERROR(nl, "hsic_sigma: .inf", "method.hsic_sigma: '.inf' is not a finite number");
  NEULITE_ERROR(nl, "lambdas: [1, -0.5, 1]", "method.lambdas[1]: -0.5 is out of range (expected >= 0)");
  NEULITE_ERROR(nl, "lambdas: [1, .nan, 1]", "method.lambdas[1]: '.nan' is not a finite number");
  NEULITE_ERROR(nl, "gammas: [0, 0, -1e-9]", "method.gammas[2]: -1e-09 is out of range (expected >= 0)");
  NEULITE_ERROR(nl, "gammas: [0, -.inf, 0]", "method.gammas[1]: '-.inf' is not a finite number");
  NEULITE_ERROR(nl, "lambdas: []", "method.lambdas: 0 entries (expected at least 1)");
  NEULITE_ERROR(nl, "gammas: 0.5", "method.gammas: expected a list, got '0.5'");
  NEULITE_ERROR(nl, "lambdas: [1, 1, 1, 1, 1, 1, 1, 1, 1]", "method.lambdas: 9 entries (expected at most 8)");
  const char *seq = "method: {name: neulite, schedule: sequential, ";
  NEULITE_ERROR(seq, "stage_rounds: [3, 0, 3]", "method.stage_rounds[1]: 0 is out of range (expected >= 1)");
  NEULITE_ERROR(seq, "stage_rounds: [3, 3, 1.5]", "method.stage_rounds[2]: '1.5' is not an integer");
  NEULITE_ERROR(seq, "stage_rounds: []", "method.stage_rounds: 0 entries (expected at least 1)");
#undef NEULITE_ERROR
}

Test(config, neulite_lists_hold_one_entry_per_stage) {
  EXPECT_ERROR(MINIMAL "method: {name: neulite, lambdas: [1, 1]}\n",
               "method.lambdas: 2 entries but model cnn has 3 stages (expected 3, one per block)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, gammas: [1, 1, 1, 1]}\n",
               "method.gammas: 4 entries but model cnn has 3 stages (expected 3");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, stage_rounds: [5]}\n",
               "method.stage_rounds: 1 entries but model cnn has 3 stages (expected 3");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: resnet34}\nclients: {count: 3}\n"
               "methods: [{name: fedavg}, {name: neulite, lambdas: [1, 1, 1]}]\n",
               "methods[1].lambdas: 3 entries but model resnet34 has 4 stages (expected 4");
  const char *arch[] = {"model.arch=resnet18"};
  expect_error_set(MINIMAL "method: {name: neulite, gammas: [1, 1, 1]}\n", arch, 1, FG_ERR_CONFIG,
                   "method.gammas: 3 entries but model resnet18 has 4 stages", NULL);
}

Test(config, neulite_keys_of_another_schedule_are_errors) {
  EXPECT_ERROR(MINIMAL "method: {name: neulite, advance: movement}\n",
               "method.advance: used only with schedule sequential (this entry has schedule roundrobin; "
               "remove it, or change the schedule)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: roundrobin, stage_rounds: [1, 2, 3]}\n",
               "method.stage_rounds: used only with schedule sequential with advance rounds (this entry has "
               "schedule roundrobin");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, em_threshold: 0.2}\n",
               "method.em_threshold: used only with schedule sequential with advance movement (this entry has "
               "schedule roundrobin");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, em_window: 4}\n",
               "method.em_window: used only with schedule sequential with advance movement (this entry has "
               "advance rounds; remove it, or change advance)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, advance: rounds, em_every: 4}\n",
               "method.em_every: used only", "advance rounds");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, em_samples: 4}\n", "method.em_samples: used only");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, schedule: sequential, advance: movement, stage_rounds: [1, 1, 1]}\n",
               "method.stage_rounds: used only with schedule sequential with advance rounds (this entry has "
               "advance movement");
  const char *rr[] = {"method.schedule=roundrobin"};
  expect_error_set(MINIMAL "method: {name: neulite, schedule: sequential, advance: movement, em_window: 3}\n", rr, 1,
                   FG_ERR_CONFIG, "method.advance: used only with schedule sequential", NULL);
  /* replacing the whole entry drops them */
  const char *whole[] = {"method={name: neulite, schedule: roundrobin}"};
  fg_config cfg;
  load_ok("w.yaml", MINIMAL "method: {name: neulite, schedule: sequential, advance: movement, em_window: 3}\n", whole,
          1, &cfg);
  assert_option(&cfg.methods[0], "schedule", "roundrobin");
  assert_option(&cfg.methods[0], "em_window", "6");
  fg_config_free(&cfg);
}

Test(config, local_split_keys_and_the_protocol_default) {
  fg_config cfg;
  const char *split[] = {"data.local_test=0.2"};
  load_ok("a.yaml", MINIMAL "method: {name: fedavg}\n", split, 1, &cfg);
  cr_assert_eq(cfg.pool, 0);
  cr_assert_eq(cfg.local_test, 0.2);
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_LOCAL, "local test splits make the local protocol the default");
  cr_assert_str_eq(fg_eval_protocol_name(cfg.eval_protocol), "local");
  fg_config_free(&cfg);
  const char *global[] = {"data.local_test=0.2", "eval.protocol=global"};
  load_ok("b.yaml", MINIMAL "method: {name: fedavg}\n", global, 2, &cfg);
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_GLOBAL);
  cr_assert_str_eq(fg_eval_protocol_name(cfg.eval_protocol), "global");
  fg_config_free(&cfg);
  const char *pooled[] = {"data.pool=yes", "data.local_test=0.5"};
  load_ok("c.yaml", MINIMAL "method: {name: fedavg}\n", pooled, 2, &cfg);
  cr_assert_eq(cfg.pool, 1);
  cr_assert_eq(cfg.local_test, 0.5);
  cr_assert_eq(cfg.eval_protocol, FG_EVAL_LOCAL);
  fg_config_free(&cfg);
  cr_assert_str_eq(fg_eval_protocol_name((fg_eval_protocol)7), "unknown");
}

Test(config, local_split_mistakes_name_the_keys) {
  const char *data = "rounds: 3\nmodel: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n";
  char text[512];
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, pool: true}\n", data);
  EXPECT_ERROR(text, "exp.yaml: data.pool: true needs data.local_test > 0");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, pool: true, local_test: 0}\n", data);
  EXPECT_ERROR(text, "data.pool: true needs data.local_test > 0");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, local_test: 1}\n", data);
  EXPECT_ERROR(text, "exp.yaml: data.local_test: 1 is out of range (expected in [0, 1))");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, local_test: -0.1}\n", data);
  EXPECT_ERROR(text, "data.local_test: -0.1 is out of range (expected in [0, 1))");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, local_test: 20%%}\n", data);
  EXPECT_ERROR(text, "data.local_test: '20%' is not a finite number");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, pool: 1}\n", data);
  EXPECT_ERROR(text, "data.pool: '1' is not a boolean");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist}\neval: {protocol: local}\n", data);
  EXPECT_ERROR(text, "exp.yaml: eval.protocol: local needs data.local_test > 0");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist, pool: true, local_test: 0.2}\neval: {protocol: global}\n",
           data);
  EXPECT_ERROR(text, "exp.yaml: eval.protocol: global needs the dataset's test split", "data.pool");
  snprintf(text, sizeof text, "%sdata: {dataset: fashion-mnist}\neval: {protocol: clients}\n", data);
  EXPECT_ERROR(text, "eval.protocol: unknown value 'clients' (expected one of: global, local)");
  /* from --set: the message says which override */
  const char *set[] = {"data.pool=true"};
  expect_error_set(MINIMAL "method: {name: fedavg}\n", set, 1, FG_ERR_CONFIG, "data.pool: true needs data.local_test",
                   "(from --set data.pool=true)", NULL);
}

Test(config, empty_file_names_the_first_required_key) {
  EXPECT_ERROR("", "rounds: required key is missing");
  EXPECT_ERROR("# only a comment\n", "rounds: required key is missing");
}

/* ---- errors ------------------------------------------------------------------------------- */

Test(config, unknown_keys_name_the_mapping_and_the_choices) {
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nroundz: 3\n", "unknown key 'roundz' at top level",
               "expected one of: name, seed, seeds, rounds, threads, data, model, clients, sampling, local, eval, "
               "checkpoint, method, methods");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lrr: 0.1}\n",
               "exp.yaml: unknown key 'lrr' in local (expected one of: epochs, batch, optimizer, lr, "
               "lr_decay, lr_steps, lr_step_factor, momentum, weight_decay, clip_norm, mode)");
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: tiers\n    tiers:\n      - {fraction: 0.5, share: 0.5}\n"
                       "      - {fraction: 1, share: 0.5, sharee: 1}\n"
                       "method: {name: fedavg}\n",
               "unknown key 'sharee' in clients.budgets.tiers[1] (expected one of: fraction, share)");
  EXPECT_ERROR(MINIMAL "methods:\n  - {name: fedavg}\n  - {name: heterofl, ratez: [1]}\n",
               "unknown key 'ratez' in methods[1]");
}

Test(config, wrong_types_name_the_key) {
  EXPECT_ERROR("rounds: ten\n", "exp.yaml: rounds: 'ten' is not an integer");
  EXPECT_ERROR("rounds: 1.5\n", "rounds: '1.5' is not an integer");
  EXPECT_ERROR("rounds: 1e3\n", "rounds: '1e3' is not an integer");
  EXPECT_ERROR("rounds: 010\n", "rounds: '010' is not an integer");
  EXPECT_ERROR("rounds: [3]\n", "rounds: expected an integer, got a list");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr: [0.1]}\n", "local.lr: expected a number, got a list");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr: fast}\n", "local.lr: 'fast' is not a finite number");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr: .inf}\n", "local.lr: '.inf' is not a finite number");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr: 1e999}\n", "local.lr: '1e999' is not a finite number");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: 5\n", "local: expected a mapping, got '5'");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal:\n", "local: expected a mapping, got no value");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {epochs: }\n", "local.epochs: expected an integer, got no value");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, sbn: maybe}\n", "method.sbn: 'maybe' is not a boolean");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: 0.5}\n", "method.rates: expected a list, got '0.5'");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: [1, x]}\n", "method.rates[1]: 'x' is not a finite number");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {optimizer: [sgd]}\n",
               "local.optimizer: expected one of: sgd, adam, got a list");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10, dir: }\nmodel: {arch: cnn}\nclients: {count: 3}\n"
               "method: {name: fedavg}\n",
               "data.dir: no value (expected a string)");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10, dir: ~}\nmodel: {arch: cnn}\nclients: {count: 3}\n"
               "method: {name: fedavg}\n",
               "data.dir: '~' is YAML's null");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {optimizer: lbfgs}\n",
               "local.optimizer: unknown value 'lbfgs' (expected one of: sgd, adam)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nname: [a]\n", "name: expected a string, got a list");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nrounds: 3\n", "rounds: key given more than once");
  EXPECT_ERROR("- rounds\n- 3\n", "expected a mapping of keys at the top level, got a list");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nthreads: 99999999999\n", "threads: 99999999999 is out of range");
}

Test(config, out_of_range_values_name_the_key) {
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr: -0.1}\n",
               "exp.yaml: local.lr: -0.1 is out of range (expected >= 0)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {fraction: 0}\n",
               "sampling.fraction: 0 is out of range (expected in (0, 1])");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {fraction: 1.01}\n", "sampling.fraction: 1.01 is out of range");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10, partition: {kind: dirichlet, alpha: 0}}\n"
               "model: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "data.partition.alpha: 0 is out of range (expected > 0)");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: [1, 0.25, 0.5]}\n",
               "method.rates[2]: 0.5 is not below the previous rate 0.25");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: [1, 0.5, 0.5]}\n", "method.rates[2]", "descending");
  EXPECT_ERROR(MINIMAL "method: {name: fedrolex, rates: [1.5, 0.5]}\n",
               "method.rates[0]: 1.5 is out of range (expected in (0, 1])");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg-s, rates: [0.5, 0]}\n", "method.rates[1]: 0 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: [1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]}\n",
               "method.rates: 9 entries (expected at most 8)");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, rates: []}\n", "method.rates: 0 entries (expected at least 1)");
  EXPECT_ERROR("rounds: 0\ndata: {dataset: cifar10}\nmodel: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "rounds: 0 is out of range (expected 1..1000000)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nseed: -1\n", "seed: -1 is out of range (expected >= 0)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nthreads: 1025\n", "threads: 1025 is out of range (expected 0..1024)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {momentum: 1}\n", "local.momentum: 1 is out of range (expected in [0, 1))");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr_decay: 0}\n", "local.lr_decay: 0 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {batch: 0}\n",
               "local.batch: 0 is out of range (expected 1..16777216)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {batch: 2000000000}\n",
               "local.batch: 2000000000 is out of range (expected 1..16777216)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\neval: {batch: 16777217}\n",
               "eval.batch: 16777217 is out of range (expected 1..16777216)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\neval: {max_samples: -1}\n", "eval.max_samples: -1 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\ncheckpoint: {every: -2}\n", "checkpoint.every: -2 is out of range");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: cnn, width: 0}\nclients: {count: 3}\n"
               "method: {name: fedavg}\n",
               "model.width: 0 is out of range (expected > 0)");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: cnn, width: -1}\nclients: {count: 3}\n"
               "method: {name: fedavg}\n",
               "model.width: -1 is out of range (expected > 0)");
  EXPECT_ERROR(MINIMAL "method: {name: depthfl, kd_ramp_rounds: -2}\n", "method.kd_ramp_rounds: -2 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, kd_start: 1.5}\n", "method.kd_start: 1.5 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, kd_temperature: 0}\n", "method.kd_temperature: 0 is out of range");
}

Test(config, unknown_names_are_errors) {
  EXPECT_ERROR(MINIMAL "method: {name: fedx}\n",
               "method.name: unknown value 'fedx' (expected one of: fedavg, exclusivefl, fedavg-s, heterofl, "
               "fedrolex, depthfl, scalefl, neulite, hypemefed, multiexit)");
  EXPECT_ERROR(MINIMAL "methods: [{name: fedavg}, {name: FedAvg}]\n", "methods[1].name: unknown value 'FedAvg'");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: mnist}\nmodel: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "data.dataset: unknown dataset 'mnist'", "cifar10");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: resnet50}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "model.arch: unknown architecture 'resnet50'", "resnet18");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {kind: everyone}\n", "sampling.kind: unknown value 'everyone'");
  EXPECT_ERROR(MINIMAL "method: {name: fedrolex, rolling: sliding}\n",
               "method.rolling: unknown value 'sliding' (expected one of: roll, static, random)");
}

Test(config, options_a_method_does_not_take) {
  EXPECT_ERROR(MINIMAL "method: {name: fedavg, rates: [1, 0.5]}\n",
               "method.rates: method fedavg does not take 'rates' (it takes: weighting, sampling)");
  EXPECT_ERROR(MINIMAL "methods:\n  - {name: fedavg}\n  - {name: heterofl, rolling: roll}\n",
               "methods[1].rolling: method heterofl does not take 'rolling'", "rates, scaler, sbn, label_mask");
  EXPECT_ERROR(MINIMAL "method: {name: fedrolex, sbn: true}\n", "method.sbn: method fedrolex does not take 'sbn'");
  EXPECT_ERROR(MINIMAL "method: {name: depthfl, kd_gamma: 0.1}\n", "method.kd_gamma: method depthfl does not take");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, kd: true}\n", "method.kd: method scalefl does not take 'kd'");
  EXPECT_ERROR(MINIMAL "method: {name: exclusivefl, scaler: false}\n", "method.scaler: method exclusivefl");
  /* neulite's options belong to neulite only, and neulite takes no other method's */
  EXPECT_ERROR(MINIMAL "method: {name: depthfl, schedule: sequential}\n",
               "method.schedule: method depthfl does not take 'schedule' (it takes: weighting, sampling, kd, kd_ramp_rounds, feddyn_alpha)");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg, lambdas: [1, 1, 1]}\n", "method.lambdas: method fedavg does not take");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, gammas: [1, 1, 1]}\n", "method.gammas: method scalefl does not take");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, em_threshold: 0.1}\n", "method.em_threshold: method heterofl");
  EXPECT_ERROR(MINIMAL "method: {name: fedrolex, em_window: 6}\n", "method.em_window: method fedrolex");
  EXPECT_ERROR(MINIMAL "method: {name: depthfl, em_every: 6}\n", "method.em_every: method depthfl");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg-s, em_samples: 6}\n", "method.em_samples: method fedavg-s");
  EXPECT_ERROR(MINIMAL "method: {name: exclusivefl, advance: rounds}\n", "method.advance: method exclusivefl");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, stage_rounds: [1, 1, 1]}\n", "method.stage_rounds: method scalefl");
  EXPECT_ERROR(MINIMAL "method: {name: depthfl, hsic_sigma: 5}\n", "method.hsic_sigma: method depthfl");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, mentor: true}\n", "method.mentor: method heterofl");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg, harmonizer: true}\n", "method.harmonizer: method fedavg");
  EXPECT_ERROR(MINIMAL "method: {name: heterofl, frozen_bn: fixed}\n", "method.frozen_bn: method heterofl");
  EXPECT_ERROR(MINIMAL "methods: [{name: fedavg}, {name: neulite, kd: true}]\n",
               "methods[1].kd: method neulite does not take 'kd' (it takes: weighting, sampling, schedule, advance, "
               "stage_rounds, em_threshold, em_window, em_every, em_samples, lambdas, gammas, hsic_sigma, mentor, "
               "harmonizer, frozen_bn, output_module)");
  EXPECT_ERROR(MINIMAL "method: {name: neulite, rates: [1, 0.5]}\n", "method.rates: method neulite does not take");
}

Test(config, method_and_methods_exactly_one) {
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nmethods: [{name: heterofl}]\n",
               "exp.yaml: both 'method' and 'methods' are given (expected exactly one)");
  EXPECT_ERROR(MINIMAL, "exp.yaml: neither 'method' nor 'methods' is given (expected exactly one)");
  EXPECT_ERROR(MINIMAL "method: {weighting: count}\n", "method.name: required key is missing");
  char many[4096] = MINIMAL "methods:\n";
  for (int i = 0; i < 17; i++) strcat(many, "  - {name: fedavg}\n");
  EXPECT_ERROR(many, "methods: 17 entries (expected at most 16)");
}

Test(config, scalefl_levels) {
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 1], exits: [1, 2, 3]}\n",
               "method.exits: 3 entries but widths has 2");
  /* each level holds the previous one: no fewer exits, no smaller width, not the same level */
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 0.75, 1], exits: [1, 3, 2]}\n",
               "method.exits[2]: 2 exits at width 1 after 3 exits at width 0.75");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 0.5, 1], exits: [1, 1, 3]}\n",
               "method.exits[1]: 1 exits at width 0.5 after 1 exits at width 0.5");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.75, 0.5, 1], exits: [1, 2, 3]}\n",
               "method.widths[1]: 0.5 is below the previous level's 0.75");
  /* more exits than the model has blocks (cnn: 3), and a largest level short of the last block */
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.7, 0.7, 0.75, 1], exits: [1, 2, 3, 4]}\n",
               "method.exits[3]: 4 exits, the cnn model has 3 blocks");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 1], exits: [1, 2]}\n",
               "method.exits: the largest level has 2 exits, the cnn model has 3 blocks");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 1], exits: [0, 1]}\n",
               "method.exits[0]: 0 is out of range (expected >= 1)");
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 1.5], exits: [1, 2]}\n",
               "method.widths[1]: 1.5 is out of range (expected in (0, 1])");
  /* widths alone take the exits 1, 2, ...: two levels cannot reach block 3 */
  EXPECT_ERROR(MINIMAL "method: {name: scalefl, widths: [0.5, 1]}\n",
               "method.exits: the largest level has 2 exits, the cnn model has 3 blocks");
}

Test(config, budgets) {
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: tiers\n    tiers: [{fraction: 0.5, share: 0.5}, {fraction: 1, share: 0.4}]\n"
                       "method: {name: fedavg}\n",
               "clients.budgets.tiers: the shares sum to 0.9 (expected 1)");
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: profiles\n    profiles: [{name: rpi4-2gb, share: 0.5}, {name: phone-4gb, share: 0.6}]\n"
                       "method: {name: fedavg}\n",
               "clients.budgets.profiles: the shares sum to 1.1 (expected 1)");
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: profiles\n    profiles: [{name: \"\", share: 1}]\n"
                       "method: {name: fedavg}\n",
               "clients.budgets.profiles[0].name: empty string");
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: tiers\n    tiers: [{fraction: 0.5, share: 0.5}, {fraction: 1}]\n"
                       "method: {name: fedavg}\n",
               "clients.budgets.tiers[1].share: required key is missing");
  EXPECT_ERROR(MINIMAL "  budgets:\n    kind: tiers\n    tiers: [{fraction: 0, share: 1}]\nmethod: {name: fedavg}\n",
               "clients.budgets.tiers[0].fraction: 0 is out of range (expected > 0)");
  EXPECT_ERROR(MINIMAL "  budgets: {kind: fixed}\nmethod: {name: fedavg}\n",
               "clients.budgets.mib: required key is missing (budgets kind fixed needs it)");
  EXPECT_ERROR(MINIMAL "  budgets: {kind: tiers, mib: 100, tiers: [{fraction: 1, share: 1}]}\nmethod: {name: fedavg}\n",
               "clients.budgets.mib: not used with budgets kind tiers");
  EXPECT_ERROR(MINIMAL "  budgets: {mib: 100}\nmethod: {name: fedavg}\n", "clients.budgets.mib: not used with budgets kind none");
  EXPECT_ERROR(MINIMAL "  budgets: {kind: uniform, min_mib: 900, max_mib: 100}\nmethod: {name: fedavg}\n",
               "clients.budgets.max_mib: 100 is below min_mib 900");
  EXPECT_ERROR(MINIMAL "  budgets: {kind: fixed, mib: 0}\nmethod: {name: fedavg}\n", "clients.budgets.mib: 0 is out of range");
  EXPECT_ERROR(MINIMAL "  budgets: {kind: uniform, min_mib: 100}\nmethod: {name: fedavg}\n",
               "clients.budgets.max_mib: required key is missing");

  fg_config cfg;
  load_ok("u.yaml", MINIMAL "  budgets: {kind: uniform, min_mib: 100, max_mib: 900}\nmethod: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.budgets.kind, FG_BUDGET_UNIFORM);
  cr_assert_eq(cfg.budgets.min_mib, 100);
  cr_assert_eq(cfg.budgets.max_mib, 900);
  fg_config_free(&cfg);
  /* shares within 1e-6 of 1 are accepted */
  load_ok("t.yaml", MINIMAL "  budgets: {kind: tiers, tiers: [{fraction: 0.5, share: 0.3333333}, "
                    "{fraction: 1, share: 0.6666666}]}\nmethod: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.budgets.n_tiers, 2);
  fg_config_free(&cfg);
}

Test(config, sampling) {
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {per_round: 10, fraction: 0.2}\n",
               "sampling.fraction: given together with sampling.per_round");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {per_round: 0}\n", "sampling.per_round: 0 is out of range");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nsampling: {per_round: 101}\n",
               "sampling.per_round: 101 is out of range (expected at most clients.count, 100)");
  fg_config cfg;
  load_ok("s.yaml", MINIMAL "method: {name: fedavg}\nsampling: {kind: eligible, fraction: 0.25}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.sampling.kind, FG_SAMPLE_ELIGIBLE);
  cr_assert_eq(cfg.sampling.fraction, 0.25);
  cr_assert_eq(cfg.sampling.per_round, 0);
  fg_config_free(&cfg);
  /* a method entry may draw its own way; entries without one take the experiment's kind */
  load_ok("s.yaml",
          MINIMAL "methods:\n  - {name: exclusivefl, sampling: uniform}\n  - {name: heterofl}\n"
                  "  - {name: hypemefed, sampling: reference}\n",
          NULL, 0, &cfg);
  cr_assert_eq(cfg.sampling.kind, FG_SAMPLE_REFERENCE, "reference is the default kind");
  cr_assert_eq(cfg.methods[0].sampling, FG_SAMPLE_UNIFORM);
  cr_assert_eq(cfg.methods[1].sampling, -1);
  cr_assert_eq(cfg.methods[2].sampling, FG_SAMPLE_REFERENCE);
  char *text = NULL;
  size_t len = 0;
  FGT_OK(fg_config_resolved_text(&cfg, -1, "", &text, &len));
  cr_assert(strstr(text, "  - name: exclusivefl\n    weighting: samples\n    sampling: uniform\n") != NULL, "%s", text);
  cr_assert(strstr(text, "  - name: heterofl\n    weighting: count\n    scaler") != NULL ||
                strstr(text, "  - name: heterofl\n    weighting: count\n    rates") != NULL,
            "no sampling key where the entry gave none: %s", text);
  free(text);
  fg_config_free(&cfg);
  EXPECT_ERROR(MINIMAL "methods:\n  - {name: fedavg, sampling: sometimes}\n", "methods[0].sampling");
}

Test(config, seeds) {
  fg_config cfg;
  load_ok("s.yaml", MINIMAL "method: {name: fedavg}\nseeds: [1, 2, 7]\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.n_seeds, 3);
  cr_assert(cfg.seeds[0] == 1 && cfg.seeds[1] == 2 && cfg.seeds[2] == 7);
  char *text = NULL;
  size_t len = 0;
  FGT_OK(fg_config_resolved_text(&cfg, -1, "", &text, &len));
  cr_assert(strstr(text, "\nseeds: [1, 2, 7]\n") != NULL, "%s", text);
  free(text);
  fg_config_free(&cfg);
  load_ok("s.yaml", MINIMAL "method: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.n_seeds, 0, "no seeds: one run");
  fg_config_free(&cfg);
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nseeds: [3, 3]\n", "seeds");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nseeds: []\n", "seeds");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nseeds: [-1]\n", "seeds");
}

Test(config, missing_required_keys) {
  EXPECT_ERROR("data: {dataset: cifar10}\nmodel: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "exp.yaml: rounds: required key is missing");
  EXPECT_ERROR("rounds: 3\ndata: {dir: /x}\nmodel: {arch: cnn}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "data.dataset: required key is missing");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "model: required key is missing");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {width: 2}\nclients: {count: 3}\nmethod: {name: fedavg}\n",
               "model.arch: required key is missing");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: cnn}\nclients: {budgets: {kind: none}}\n"
               "method: {name: fedavg}\n",
               "clients.count: required key is missing");
  EXPECT_ERROR("rounds: 3\ndata: {dataset: cifar10}\nmodel: {arch: cnn}\nmethod: {name: fedavg}\n",
               "clients: required key is missing");
}

Test(config, malformed_yaml_names_the_line) {
  EXPECT_ERROR("rounds: 3\ndata:\n  dataset: cifar10\n  dir: [unclosed\nmodel: {arch: cnn}\n", "exp.yaml:",
               "malformed YAML");
  char *p = write_yaml("bad.yaml", "rounds: 3\nlocal:\n  lr: 0.1\n  lr_decay: 1: 2\n");
  fg_config cfg;
  cr_assert_eq(fg_config_load(p, NULL, 0, &cfg), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "bad.yaml:4:") != NULL, "no line 4: %s", fg_last_error());
  cr_assert(strstr(fg_last_error(), "malformed YAML") != NULL, "%s", fg_last_error());
  free(p);
  p = write_yaml("tab.yaml", "rounds: 3\ndata:\n\tdataset: cifar10\n");
  cr_assert_eq(fg_config_load(p, NULL, 0, &cfg), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "tab.yaml:3:") != NULL, "no line 3: %s", fg_last_error());
  free(p);
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\n---\nrounds: 4\n", "exp.yaml:9: a second YAML document");
}

Test(config, missing_file_is_an_io_error) {
  char *p = path_in("nope.yaml");
  fg_config cfg;
  cr_assert_eq(fg_config_load(p, NULL, 0, &cfg), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), "nope.yaml") != NULL, "%s", fg_last_error());
  cr_assert_null(cfg.name);
  fg_config_free(&cfg);
  free(p);
  cr_assert_eq(fg_config_load(tmp_dir, NULL, 0, &cfg), FG_ERR_IO, "a directory is not a file");
}

Test(config, libraries_print_nothing) {
  /* No library may print: every message must land in fg_last_error. */
  char *log = path_in("stderr.txt");
  fflush(stderr);
  int saved = dup(2);
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  cr_assert(saved >= 0 && fd >= 0);
  dup2(fd, 2);
  close(fd);
  const char *bad[] = {"rounds: ten\n", MINIMAL "local: {lrr: 1}\nmethod: {name: fedavg}\n",
                       "rounds: [\n", MINIMAL "method: {name: fedavg}\n"};
  for (int i = 0; i < 4; i++) {
    char *p = write_yaml("quiet.yaml", bad[i]);
    fg_config cfg;
    fg_status s = fg_config_load(p, NULL, 0, &cfg);
    fg_config_free(&cfg);
    free(p);
    if (i < 3) cr_assert_eq(s, FG_ERR_CONFIG);
    else cr_assert_eq(s, FG_OK);
  }
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  struct stat st;
  cr_assert_eq(stat(log, &st), 0);
  cr_assert_eq(st.st_size, 0, "something was printed to stderr");
  free(log);
}

/* ---- --set -------------------------------------------------------------------------------- */

Test(config, set_overrides_scalars_nested_keys_and_lists) {
  const char *set[] = {"rounds=7",
                       "local.lr=0.5",
                       "data.partition.kind=dirichlet", /* creates data.partition */
                       "method.rates=[1,0.5]",
                       "seed=9",
                       "seed=11", /* the later one wins */
                       "sampling={kind: eligible, per_round: 4}",
                       "data.dir=/mnt/data"};
  fg_config cfg;
  load_ok("s.yaml", MINIMAL "method: {name: heterofl}\nlocal: {lr: 0.1, epochs: 3}\n", set, 8, &cfg);
  cr_assert_eq(cfg.rounds, 7);
  cr_assert_eq(cfg.lr, 0.5);
  cr_assert_eq(cfg.local_epochs, 3, "siblings of an overridden key are kept");
  cr_assert_eq(cfg.partition.kind, FG_PARTITION_DIRICHLET);
  assert_option(&cfg.methods[0], "rates", "[1, 0.5]");
  cr_assert_eq(cfg.seed, 11);
  cr_assert_eq(cfg.sampling.kind, FG_SAMPLE_ELIGIBLE);
  cr_assert_eq(cfg.sampling.per_round, 4);
  cr_assert_str_eq(cfg.data_dir, "/mnt/data");
  fg_config_free(&cfg);
}

Test(config, set_inside_methods_and_method_name) {
  const char *set[] = {"methods[1].rates=[0.5, 0.25]", "methods[0].weighting=count", "methods[2]={name: depthfl, kd: false}"};
  fg_config cfg;
  load_ok("c.yaml", MINIMAL "methods:\n  - name: fedavg\n  - name: heterofl\n  - name: scalefl\n", set, 3, &cfg);
  cr_assert_eq(cfg.compare, 1);
  cr_assert_eq(cfg.n_methods, 3);
  cr_assert_eq(cfg.methods[0].weighting, FG_WEIGHT_COUNT);
  assert_option(&cfg.methods[1], "rates", "[0.5, 0.25]");
  cr_assert_str_eq(cfg.methods[2].name, "depthfl");
  assert_option(&cfg.methods[2], "kd", "false");
  fg_config_free(&cfg);

  const char *rename[] = {"method.name=heterofl"};
  load_ok("one.yaml", MINIMAL "method:\n  name: fedavg\n", rename, 1, &cfg);
  cr_assert_str_eq(cfg.methods[0].name, "heterofl");
  cr_assert_eq(cfg.methods[0].weighting, FG_WEIGHT_COUNT, "heterofl's default weighting");
  assert_option(&cfg.methods[0], "rates", "[1, 0.5, 0.25, 0.125, 0.0625]");
  fg_config_free(&cfg);

  /* an empty mapping value ("local:") takes keys set below it */
  const char *below[] = {"local.epochs=4"};
  load_ok("e.yaml", MINIMAL "method: {name: fedavg}\nlocal:\n", below, 1, &cfg);
  cr_assert_eq(cfg.local_epochs, 4);
  fg_config_free(&cfg);
}

Test(config, set_mistakes_fail_like_file_mistakes) {
  const char *base = MINIMAL "method: {name: fedavg}\nlocal: {lr: 0.1}\n";
  const char *unknown[] = {"local.lrr=1"};
  expect_error_set(base, unknown, 1, FG_ERR_CONFIG, "unknown key 'lrr' in local (expected one of: epochs",
                   "(from --set local.lrr=1)", NULL);
  const char *unknown_top[] = {"roundz=1"};
  expect_error_set(base, unknown_top, 1, FG_ERR_CONFIG, "unknown key 'roundz' at top level", "from --set roundz=1", NULL);
  const char *range[] = {"local.lr=-0.1"};
  expect_error_set(base, range, 1, FG_ERR_CONFIG, "local.lr: -0.1 is out of range (expected >= 0) (from --set local.lr=-0.1)",
                   NULL);
  const char *type[] = {"rounds=ten"};
  expect_error_set(base, type, 1, FG_ERR_CONFIG, "rounds: 'ten' is not an integer (from --set rounds=ten)", NULL);
  const char *option[] = {"method.rates=[1,0.5]"};
  expect_error_set(base, option, 1, FG_ERR_CONFIG, "method.rates: method fedavg does not take 'rates'",
                   "(from --set method.rates=[1,0.5])", NULL);
  const char *rate[] = {"method.name=heterofl", "method.rates=[1,1.5]"};
  expect_error_set(base, rate, 2, FG_ERR_CONFIG, "method.rates[1]: 1.5 is out of range", "from --set method.rates=[1,1.5]",
                   NULL);
  const char *both[] = {"methods=[{name: fedavg}]"};
  expect_error_set(base, both, 1, FG_ERR_CONFIG, "both 'method' and 'methods'", NULL);
  /* malformed overrides */
  const char *no_eq[] = {"rounds"};
  expect_error_set(base, no_eq, 1, FG_ERR_CONFIG, "--set 'rounds': expected dotted.key=value", NULL);
  const char *empty_key[] = {"local..lr=1"};
  expect_error_set(base, empty_key, 1, FG_ERR_CONFIG, "--set local..lr=1: empty key", NULL);
  const char *no_value[] = {"rounds="};
  expect_error_set(base, no_value, 1, FG_ERR_CONFIG, "--set rounds=: no value", NULL);
  const char *bad_value[] = {"method.rates=[1,0.5"};
  expect_error_set(base, bad_value, 1, FG_ERR_CONFIG, "--set method.rates=[1,0.5: malformed value", NULL);
  const char *through_scalar[] = {"rounds.x=1"};
  expect_error_set(base, through_scalar, 1, FG_ERR_CONFIG, "--set rounds.x=1: rounds is not a mapping", NULL);
  const char *index_map[] = {"local[0]=1"};
  expect_error_set(base, index_map, 1, FG_ERR_CONFIG, "--set local[0]=1: local is not a list", NULL);
  const char *bad_index[] = {"methods[x].name=fedavg"};
  expect_error_set(MINIMAL "methods: [{name: fedavg}]\n", bad_index, 1, FG_ERR_CONFIG, "expected [N]", NULL);
  const char *past_end[] = {"methods[2].name=heterofl"};
  expect_error_set(MINIMAL "methods: [{name: fedavg}, {name: depthfl}]\n", past_end, 1, FG_ERR_CONFIG,
                   "--set methods[2].name=heterofl: methods has 2 entries (index 2 is out of range)", NULL);
  const char *no_list[] = {"methods[0].name=heterofl"};
  expect_error_set(base, no_list, 1, FG_ERR_CONFIG, "there is no list methods to index", NULL);
}

/* ---- writing the resolved file ------------------------------------------------------------ */

static void round_trip(const char *name, const char *yaml, const char *const *set, int n_set) {
  fg_config a, b;
  load_ok(name, yaml, set, n_set, &a);
  char *out = path_in("resolved.yaml");
  FGT_OK(fg_config_write_resolved(&a, -1, out, "abc123-dirty"));
  char *text = read_text(out);
  cr_assert(strncmp(text, "# fedgap abc123-dirty\n", 22) == 0, "first line: %.40s", text);
  FGT_OK(fg_config_load(out, NULL, 0, &b));
  assert_config_equal(&a, &b);
  /* and the resolved file of the resolved file is the same text */
  char *out2 = path_in("resolved2.yaml");
  FGT_OK(fg_config_write_resolved(&b, -1, out2, "abc123-dirty"));
  char *text2 = read_text(out2);
  cr_assert_str_eq(text, text2);
  fg_config_free(&a);
  fg_config_free(&b);
  free(text);
  free(text2);
  free(out);
  free(out2);
}

Test(config, round_trip_single_method) {
  round_trip("full.yaml", full_yaml, NULL, 0);
  round_trip("min.yaml", MINIMAL "method: {name: fedavg}\n", NULL, 0);
  const char *set[] = {"name=\"yes: a name with # and 'quotes'\"", "data.dir=\"/tmp/x y\\\\z\"", "seed=18446744073709551615",
                       "local.lr=0.1", "local.weight_decay=3.3e-7"};
  round_trip("odd.yaml", MINIMAL "method: {name: fedrolex, rates: [1, 0.3333333333333333]}\n", set, 5);
  round_trip("prof.yaml",
             MINIMAL "  budgets:\n    kind: profiles\n    profiles: [{name: \"phone: 8gb\", share: 0.1}, "
                     "{name: null-ish, share: 0.9}]\nmethod: {name: depthfl}\n",
             NULL, 0);
  round_trip("fixed.yaml", MINIMAL "  budgets: {kind: fixed, mib: 300.5}\nmethod: {name: scalefl}\n", NULL, 0);
  round_trip("nl.yaml", MINIMAL "method: {name: neulite}\n", NULL, 0);
  round_trip("hm.yaml", MINIMAL "method: {name: hypemefed}\n", NULL, 0);
  round_trip("hm2.yaml",
             MINIMAL "method: {name: hypemefed, hypernet: naive, rank: 7, hn_epochs: 3, lr: 0.001, levels: index,"
                     " compat: [dup_avg]}\n",
             NULL, 0);
  round_trip("me.yaml", MINIMAL "method: {name: multiexit, lr: 0.003}\n", NULL, 0);
}

Test(config, hypemefed_and_multiexit_options) {
  fg_config cfg;
  load_ok("h.yaml", MINIMAL "methods: [{name: hypemefed}, {name: multiexit}]\n", NULL, 0, &cfg);
  const fg_method_config *h = &cfg.methods[0], *m = &cfg.methods[1];
  assert_options(h, "levels", "budget", "lr", "0.0005", "hypernet", "lrf", "rank", "100", "hn_epochs", "25",
                 "compat", "[]", NULL);
  cr_assert_eq(h->weighting, FG_WEIGHT_COUNT);
  assert_option(m, "levels", "budget");
  assert_option(m, "lr", "0.0005");
  assert_no_option(m, "hypernet");
  fg_config_free(&cfg);
  load_ok("h.yaml", MINIMAL "method: {name: hypemefed, rank: 1, compat: [noop_writeback, dup_avg], levels: index}\n",
          NULL, 0, &cfg);
  assert_options(&cfg.methods[0], "compat", "[noop_writeback, dup_avg]", "rank", "1", "levels", "index", NULL);
  fg_config_free(&cfg);
  EXPECT_ERROR(MINIMAL "method: {name: multiexit, rank: 4}\n", "method.rank", "does not take");
  EXPECT_ERROR(MINIMAL "method: {name: hypemefed, rank: 0}\n", "method.rank");
  EXPECT_ERROR(MINIMAL "method: {name: hypemefed, compat: [sometimes]}\n", "method.compat[0]", "noop_writeback");
  EXPECT_ERROR(MINIMAL "method: {name: hypemefed, hypernet: huge}\n", "method.hypernet", "naive");
  EXPECT_ERROR(MINIMAL "method: {name: hypemefed, generate: sometimes}\n", "method.generate", "if_better");
  load_ok("h.yaml", MINIMAL "method: {name: hypemefed, generate: if_better}\n", NULL, 0, &cfg);
  assert_option(&cfg.methods[0], "generate", "if_better");
  fg_config_free(&cfg);
  load_ok("h.yaml", MINIMAL "method: {name: hypemefed}\n", NULL, 0, &cfg);
  assert_option(&cfg.methods[0], "generate", "always");
  fg_config_free(&cfg);
}

/* A comparison may hold a method twice under different labels; the labels name the run folders,
 * so two entries may not share one. */
Test(config, labels_name_the_entries_of_a_comparison) {
  const char *yaml = MINIMAL
      "methods:\n"
      "  - {name: hypemefed}\n"
      "  - {name: hypemefed, label: hypemefed-if-better, generate: if_better}\n"
      "  - {name: hypemefed, label: hypemefed-no-hn, hypernet: none}\n";
  fg_config cfg;
  load_ok("l.yaml", yaml, NULL, 0, &cfg);
  cr_assert_null(cfg.methods[0].label);
  cr_assert_str_eq(fg_method_label(&cfg.methods[0]), "hypemefed");
  cr_assert_str_eq(fg_method_label(&cfg.methods[1]), "hypemefed-if-better");
  cr_assert_str_eq(fg_method_label(&cfg.methods[2]), "hypemefed-no-hn");
  assert_option(&cfg.methods[1], "generate", "if_better");
  assert_option(&cfg.methods[2], "hypernet", "none");
  fg_config_free(&cfg);
  round_trip("l.yaml", yaml, NULL, 0);
  EXPECT_ERROR(MINIMAL "methods: [{name: hypemefed}, {name: hypemefed, generate: if_better}]\n", "methods[1]",
               "methods[0]", "label");
  EXPECT_ERROR(MINIMAL "methods: [{name: fedavg, label: a}, {name: heterofl, label: a}]\n", "methods[1]", "'a'");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg, label: ../x}\n", "method.label", "folder name");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg, label: .hidden}\n", "method.label", "folder name");
}

Test(config, round_trip_local_splits) {
  const char *pooled[] = {"data.pool=true", "data.local_test=0.2"};
  round_trip("pool.yaml", MINIMAL "method: {name: fedavg}\n", pooled, 2);
  const char *split[] = {"data.local_test=0.1234567890123", "eval.protocol=global"};
  round_trip("split.yaml", MINIMAL "method: {name: depthfl}\n", split, 2);
  const char *local[] = {"data.local_test=0.3"};
  round_trip("local.yaml", MINIMAL "method: {name: scalefl}\n", local, 1);
}

Test(config, round_trip_neulite_non_default_values) {
  round_trip("nl-rounds.yaml",
             "rounds: 40\ndata: {dataset: cifar10}\nmodel: {arch: resnet18}\nclients: {count: 10}\n"
             "method:\n  name: neulite\n  weighting: count\n  schedule: sequential\n  advance: rounds\n"
             "  stage_rounds: [7, 11, 13, 9]\n  lambdas: [0, 0.1, 0.30000000000000004, 2e-7]\n"
             "  gammas: [1, 0.5, 0.25, 0.125]\n  hsic_sigma: 0.7\n  mentor: false\n  harmonizer: false\n"
             "  frozen_bn: fixed\n",
             NULL, 0);
  round_trip("nl-move.yaml",
             MINIMAL "method: {name: neulite, schedule: sequential, advance: movement, em_threshold: 0.0123,"
                     " em_window: 3, em_every: 4, em_samples: 12345, gammas: [3, 2, 1], hsic_sigma: 12}\n",
             NULL, 0);
  const char *set[] = {"methods[1].lambdas=[0.5, 0.25, 0.125]", "methods[0].frozen_bn=fixed"};
  round_trip("nl-cmp.yaml",
             MINIMAL "methods:\n  - {name: neulite, harmonizer: false}\n"
                     "  - {name: neulite, label: nl2, schedule: sequential, mentor: false}\n  - {name: depthfl}\n",
             set, 2);

  /* each entry of a comparison as a single-method file */
  const char *yaml = MINIMAL
      "methods:\n"
      "  - {name: neulite, schedule: sequential, stage_rounds: [2, 3, 5], lambdas: [1, 2, 3]}\n"
      "  - {name: neulite, label: nl-mv, schedule: sequential, advance: movement, em_samples: 77, frozen_bn: fixed}\n";
  fg_config a, one;
  load_ok("nl2.yaml", yaml, NULL, 0, &a);
  char *out = path_in("nl-one.yaml");
  for (int i = 0; i < a.n_methods; i++) {
    FGT_OK(fg_config_write_resolved(&a, i, out, "rev"));
    FGT_OK(fg_config_load(out, NULL, 0, &one));
    assert_common_equal(&a, &one);
    cr_assert_eq(one.n_methods, 1);
    assert_method_equal(&one.methods[0], &a.methods[i], "neulite");
    fg_config_free(&one);
  }
  fg_config_free(&a);
  free(out);
}

Test(config, round_trip_compare_file_and_single_method_files) {
  const char *yaml = MINIMAL
      "sampling: {per_round: 10}\n"
      "methods:\n"
      "  - name: fedavg\n"
      "  - name: exclusivefl\n"
      "  - {name: fedavg-s, rates: [0.5]}\n"
      "  - {name: heterofl, sbn: true}\n"
      "  - {name: fedrolex, rolling: static}\n"
      "  - {name: depthfl, kd_ramp_rounds: 10}\n"
      "  - {name: scalefl, widths: [0.5, 1], exits: [2, 3]}\n";
  round_trip("cmp.yaml", yaml, NULL, 0);

  fg_config a, one;
  load_ok("cmp.yaml", yaml, NULL, 0, &a);
  char *out = path_in("method-3.yaml");
  for (int i = 0; i < a.n_methods; i++) {
    FGT_OK(fg_config_write_resolved(&a, i, out, "rev"));
    FGT_OK(fg_config_load(out, NULL, 0, &one));
    assert_common_equal(&a, &one);
    cr_assert_eq(one.compare, 0);
    cr_assert_eq(one.n_methods, 1);
    char what[32];
    snprintf(what, sizeof what, "method %d", i);
    assert_method_equal(&one.methods[0], &a.methods[i], what);
    char *text = read_text(out);
    cr_assert(strstr(text, "\nmethod:\n") != NULL && strstr(text, "methods:") == NULL, "%s", text);
    free(text);
    fg_config_free(&one);
  }
  cr_assert_eq(fg_config_write_resolved(&a, 7, out, "rev"), FG_ERR_INVALID);
  cr_assert_eq(fg_config_write_resolved(&a, -2, out, "rev"), FG_ERR_INVALID);
  char *missing_dir = path_in("no/such/dir/config.yaml");
  cr_assert_eq(fg_config_write_resolved(&a, -1, missing_dir, "rev"), FG_ERR_IO);
  fg_config_free(&a);
  free(out);
  free(missing_dir);
}

Test(config, resolved_file_lists_defaults_explicitly) {
  fg_config a;
  load_ok("d.yaml", MINIMAL "method: {name: heterofl}\n", NULL, 0, &a);
  char *out = path_in("resolved.yaml");
  FGT_OK(fg_config_write_resolved(&a, -1, out, "r1"));
  char *text = read_text(out);
  const char *want[] = {"name: d\n",      "seed: 1\n",          "threads: 0\n",        "kind: iid\n",
                        "alpha: 0.5\n",   "width: 16\n",        "kind: none\n",        "fraction: 0.1\n",
                        "lr: 0.01\n",     "optimizer: sgd\n",   "mode: store\n",       "every: 10\n",
                        "batch: 256\n",   "weighting: count\n", "rates: [1, 0.5, 0.25, 0.125, 0.0625]\n",
                        "scaler: true\n", "sbn: true\n",        "label_mask: false\n", "  pool: false\n",
                        "  local_test: 0\n", "  protocol: global\n"};
  for (size_t i = 0; i < sizeof want / sizeof *want; i++)
    cr_assert(strstr(text, want[i]) != NULL, "resolved file lacks \"%s\":\n%s", want[i], text);
  free(text);
  free(out);
  fg_config_free(&a);
}

Test(config, resolved_file_lists_neulite_defaults_explicitly) {
  const char *files[] = {MINIMAL "method: {name: neulite}\n",
                         MINIMAL "method: {name: neulite, schedule: sequential}\n",
                         MINIMAL "method: {name: neulite, schedule: sequential, advance: movement}\n"};
  const char *want[][6] = {
      {"schedule: roundrobin\n", "# advance, stage_rounds, em_*: used only with schedule sequential\n", NULL},
      {"schedule: sequential\n", "advance: rounds\n", "# stage_rounds: the rounds split evenly over the stages\n",
       NULL},
      {"advance: movement\n", "em_threshold: 0.1\n", "em_window: 6\n", "em_every: 10\n", "em_samples: 10000\n",
       NULL}};
  const char *common[] = {"weighting: samples\n", "# lambdas: the method's default schedule\n",
                          "# gammas: the method's default schedule\n", "hsic_sigma: 5\n", "mentor: true\n",
                          "harmonizer: true\n", "frozen_bn: update\n", "output_module: linear\n"};
  const char *absent[][2] = {{"advance:", "em_"}, {"em_threshold:", "stage_rounds: ["}, {"stage_rounds: [", NULL}};
  char *out = path_in("resolved.yaml");
  for (int f = 0; f < 3; f++) {
    fg_config a;
    load_ok("d.yaml", files[f], NULL, 0, &a);
    FGT_OK(fg_config_write_resolved(&a, -1, out, "r1"));
    char *text = read_text(out);
    for (int i = 0; want[f][i]; i++)
      cr_assert(strstr(text, want[f][i]) != NULL, "resolved file lacks \"%s\":\n%s", want[f][i], text);
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
      cr_assert(strstr(text, common[i]) != NULL, "resolved file lacks \"%s\":\n%s", common[i], text);
    for (int i = 0; i < 2 && absent[f][i]; i++) {
      /* only in comments: a key line would be rejected on reload */
      for (const char *p = strstr(text, absent[f][i]); p; p = strstr(p + 1, absent[f][i])) {
        const char *line = p;
        while (line > text && line[-1] != '\n') line--;
        while (*line == ' ') line++;
        cr_assert_eq(*line, '#', "\"%s\" outside a comment:\n%s", absent[f][i], text);
      }
    }
    free(text);
    fg_config_free(&a);
  }
  free(out);
}

Test(config, free_is_safe_on_empty_configs) {
  fg_config cfg;
  memset(&cfg, 0, sizeof cfg);
  fg_config_free(&cfg);
  fg_config_free(NULL);
  cr_assert_eq(fg_config_write_resolved(&cfg, -1, "x.yaml", "r"), FG_ERR_INVALID);
}

/* ---- device -------------------------------------------------------------------------------- */

Test(config, device_key) {
  fg_config cfg;
  load_ok("d.yaml", MINIMAL "method: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.device.kind, FG_DEV_CPU, "cpu when not given");
  fg_config_free(&cfg);
  load_ok("d.yaml", MINIMAL "device: cuda\nmethod: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_eq(cfg.device.kind, FG_DEV_CUDA);
  cr_assert_eq(cfg.device.index, 0);
  fg_config_free(&cfg);
  const char *third[] = {"device=cuda:3"};
  load_ok("d.yaml", MINIMAL "device: cpu\nmethod: {name: fedavg}\n", third, 1, &cfg);
  cr_assert_eq(cfg.device.kind, FG_DEV_CUDA);
  cr_assert_eq(cfg.device.index, 3);
  fg_config_free(&cfg);

  EXPECT_ERROR(MINIMAL "device: gpu\nmethod: {name: fedavg}\n", "exp.yaml: device: ", "'gpu'", "cpu, cuda or cuda:N");
  EXPECT_ERROR(MINIMAL "device: cuda:x\nmethod: {name: fedavg}\n", "exp.yaml: device: ", "'cuda:x'");
  EXPECT_ERROR(MINIMAL "device: [cpu]\nmethod: {name: fedavg}\n", "exp.yaml: device: expected a string, got a list");
  EXPECT_ERROR(MINIMAL "device:\nmethod: {name: fedavg}\n", "exp.yaml: device: no value (expected a string)");
  const char *bad[] = {"device=tpu"};
  expect_error_set(MINIMAL "method: {name: fedavg}\n", bad, 1, FG_ERR_CONFIG, "device: ", "'tpu'",
                   "(from --set device=tpu)", NULL);
}

/* The resolved file of `yaml` (caller frees). */
static char *resolved_text(const char *yaml) {
  fg_config a;
  load_ok("d.yaml", yaml, NULL, 0, &a);
  char *out = path_in("resolved.yaml");
  FGT_OK(fg_config_write_resolved(&a, -1, out, "r1"));
  char *text = read_text(out);
  fg_config_free(&a);
  free(out);
  return text;
}

Test(config, resolved_file_names_the_device) {
  const char *set[] = {"device=cuda:2"};
  round_trip("dev.yaml", MINIMAL "method: {name: fedavg}\n", set, 1);
  const char *files[] = {MINIMAL "method: {name: fedavg}\n", MINIMAL "device: cuda:2\nmethod: {name: fedavg}\n"};
  const char *want[] = {"\nthreads: 0\ndevice: cpu\n", "\nthreads: 0\ndevice: cuda:2\n"};
  for (int i = 0; i < 2; i++) {
    char *text = resolved_text(files[i]);
    cr_assert(strstr(text, want[i]) != NULL, "resolved file lacks \"%s\":\n%s", want[i], text);
    free(text);
  }
}

/* ---- a method's configuration with overrides (fedgap memplan --method) --------------------- */

/* fg_method_config_with fails with FG_ERR_CONFIG and a message holding every one of `parts`. */
static void expect_with_error(const char *method, const char *arch, const char *override, ...) {
  fg_method_config m;
  const char *set[] = {override};
  fg_status s = fg_method_config_with(method, arch, set, override ? 1 : 0, &m);
  const char *msg = fg_last_error();
  cr_assert_eq(s, FG_ERR_CONFIG, "%s with %s: status %s, message: %s", method, override ? override : "nothing",
               fg_status_name(s), msg);
  cr_assert_null(m.name);
  cr_assert_null(m.options);
  va_list ap;
  va_start(ap, override);
  for (const char *part = va_arg(ap, const char *); part; part = va_arg(ap, const char *))
    cr_assert(strstr(msg, part) != NULL, "message lacks \"%s\": %s", part, msg);
  va_end(ap);
}

Test(config, method_config_with_overrides) {
  fg_method_config m;
  const char *set[] = {"output_module=bn_relu", "schedule=sequential", "stage_rounds=[1, 2, 3]", "weighting=count"};
  FGT_OK(fg_method_config_with("neulite", "cnn", set, 4, &m));
  cr_assert_str_eq(m.name, "neulite");
  cr_assert_eq(m.weighting, FG_WEIGHT_COUNT);
  assert_options(&m, "output_module", "bn_relu", "schedule", "sequential", "stage_rounds", "[1, 2, 3]", NULL);
  assert_option(&m, "frozen_bn", "update"); /* the others at their defaults */
  assert_option(&m, "hsic_sigma", "5");
  fg_method_config_free(&m);
  cr_assert_null(m.options);

  /* no overrides: what a file naming only the method gets, for every method */
  for (int i = 0; i < fg_method_count(); i++) {
    const char *name = fg_method_at(i)->name;
    char text[256];
    snprintf(text, sizeof text, "%smethod: {name: %s}\n", MINIMAL, name);
    fg_config cfg;
    load_ok("only.yaml", text, NULL, 0, &cfg);
    FGT_OK(fg_method_config_default(name, "cnn", &m));
    assert_method_equal(&m, &cfg.methods[0], name);
    fg_method_config_free(&m);
    fg_config_free(&cfg);
  }
}

Test(config, method_config_with_mistakes_name_the_override) {
  /* as in a file, the same messages */
  expect_with_error("neulite", "cnn", "output_module=relu",
                    "method neulite: output_module: unknown value 'relu' (expected one of: linear, bn_relu) "
                    "(from --set output_module=relu)",
                    NULL);
  expect_error_set(MINIMAL "method: {name: neulite}\n", (const char *const[]){"method.output_module=relu"}, 1,
                   FG_ERR_CONFIG,
                   "method.output_module: unknown value 'relu' (expected one of: linear, bn_relu) "
                   "(from --set method.output_module=relu)",
                   NULL);
  expect_with_error("heterofl", "cnn", "rates=[1, 1.5]",
                    "method heterofl: rates[1]: 1.5 is out of range (expected in (0, 1]) (from --set rates=[1, 1.5])",
                    NULL);
  expect_with_error("heterofl", "cnn", "rates=[1, 0.5, 0.5]", "rates[2]: 0.5 is not below the previous rate 0.5", NULL);
  expect_with_error("scalefl", "cnn", "kd_temperature=0", "kd_temperature: 0 is out of range (expected > 0)", NULL);
  expect_with_error("depthfl", "cnn", "kd=maybe", "kd: 'maybe' is not a boolean", NULL);
  /* an option of another method, and one of no method */
  expect_with_error("fedavg", "cnn", "rates=[1, 0.5]",
                    "method fedavg: rates: method fedavg does not take 'rates' (it takes: weighting, sampling) "
                    "(from --set rates=[1, 0.5])",
                    NULL);
  expect_with_error("fedavg", "cnn", "ratez=1", "method fedavg: unknown key 'ratez'",
                    "(expected one of: name, weighting, label, sampling)", "(from --set ratez=1)", NULL);
  /* the method's own rules across options, and the model's stages */
  expect_with_error("neulite", "cnn", "em_window=3",
                    "method neulite: em_window: used only with schedule sequential with advance movement",
                    "(from --set em_window=3)", NULL);
  expect_with_error("neulite", "resnet18", "lambdas=[1, 1, 1]",
                    "lambdas: 3 entries but model resnet18 has 4 stages (expected 4, one per block)", NULL);
  expect_with_error("scalefl", "cnn", "widths=[0.5, 1]", "exits: the largest level has 2 exits", NULL);
  /* the method is chosen by name, not by an override; and it must exist, as the model */
  expect_with_error("neulite", "cnn", "name=heterofl", "--set name=heterofl: name is not an option", NULL);
  expect_with_error("fedx", "cnn", NULL, "unknown method 'fedx'", "neulite", NULL);
  expect_with_error("fedavg", "resnet50", NULL, "unknown architecture 'resnet50'", NULL);
  expect_with_error("fedavg", "cnn", "rates", "--set 'rates': expected dotted.key=value", NULL);
}

/* Every method's options are documented: a doc line in the table and the key in configs/README.md. */
Test(config, every_method_option_is_documented) {
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src, "FEDGAP_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/configs/README.md", src);
  char *readme = read_text(path);
  const char *section = strstr(readme, "## `method`");
  cr_assert_not_null(section);
  for (int i = 0; i < fg_method_count(); i++) {
    const fg_method_ops *ops = fg_method_at(i);
    char row[64];
    snprintf(row, sizeof row, "| `%s` |", ops->name);
    cr_assert(strstr(section, row) != NULL, "configs/README.md has no row for method %s", ops->name);
    for (int k = 0; k < ops->n_shared_options + ops->n_options; k++) {
      const fg_field *o = method_option(ops, k);
      cr_assert(o->doc && o->doc[0], "%s.%s has no doc line", ops->name, o->key);
      cr_assert(strstr(section, o->key) != NULL, "configs/README.md does not name %s.%s", ops->name, o->key);
    }
  }
  free(readme);
}

/* Every configuration the repository ships loads (its keys and values are the documented ones). */
Test(config, every_shipped_configuration_loads) {
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src, "FEDGAP_SOURCE_DIR is not set (ctest sets it)");
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/configs", src);
  DIR *d = opendir(dir);
  cr_assert_not_null(d, "%s", dir);
  int loaded = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t n = strlen(e->d_name);
    if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") != 0) continue;
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    fg_config cfg;
    cr_assert_eq(fg_config_load(path, NULL, 0, &cfg), FG_OK, "%s: %s", e->d_name, fg_last_error());
    fg_config_free(&cfg);
    loaded++;
  }
  closedir(d);
  cr_assert_geq(loaded, 10, "only %d configurations found in %s", loaded, dir);
}

/* local.lr_steps: round t's lr is lr x lr_decay^t x factor^(steps <= t), as MultiStepLR stepped
 * once a round; the steps must increase. */
Test(config, lr_steps_multiply_the_lr_from_their_rounds_on) {
  fg_config cfg;
  load_ok("steps.yaml",
          MINIMAL "method: {name: fedavg}\nlocal: {lr: 0.1, lr_decay: 0.5, lr_steps: [2, 4], lr_step_factor: 0.1}\n",
          NULL, 0, &cfg);
  fg_world w;
  memset(&w, 0, sizeof w);
  w.cfg = &cfg;
  const double want[6] = {0.1, 0.05, 0.1 * 0.25 * 0.1, 0.1 * 0.125 * 0.1, 0.1 * 0.0625 * 0.01,
                          0.1 * 0.03125 * 0.01};
  for (int t = 0; t < 6; t++) {
    fg_trainer_options o = fg_world_local_options(&w, t);
    cr_assert_float_eq(o.optim.sgd.lr, want[t], 1e-6 * want[t], "round %d: lr %g, want %g", t, (double)o.optim.sgd.lr, want[t]);
  }
  fg_config_free(&cfg);
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr_steps: [200, 100]}\n", "local.lr_steps[1]");
  EXPECT_ERROR(MINIMAL "method: {name: fedavg}\nlocal: {lr_step_factor: 0}\n", "local.lr_step_factor: 0 is out of range");
}

Test(config, normalize) {
  fg_config cfg;
  load_ok("n.yaml", MINIMAL "method: {name: fedavg}\n", NULL, 0, &cfg);
  cr_assert_null(cfg.normalize, "absent: the dataset's");
  fg_config_free(&cfg);
  const char *set[] = {"data.normalize=half"};
  load_ok("n.yaml", MINIMAL "method: {name: fedavg}\n", set, 1, &cfg);
  cr_assert_str_eq(cfg.normalize, "half");
  char *text = NULL;
  size_t len = 0;
  FGT_OK(fg_config_resolved_text(&cfg, -1, "", &text, &len));
  cr_assert(strstr(text, "\n  normalize: half\n") != NULL, "%s", text);
  free(text);
  fg_config_free(&cfg);
  const char *bad[] = {"data.normalize=imagenette"};
  char *path = path_in("n.yaml");
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(MINIMAL "method: {name: fedavg}\n", f);
  fclose(f);
  cr_assert_eq(fg_config_load(path, bad, 1, &cfg), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "data.normalize: 'imagenette' is not a normalisation") != NULL, "%s",
            fg_last_error());
  free(path);
}
