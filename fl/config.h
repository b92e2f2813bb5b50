/* Experiment configurations: YAML files validated against fedgap's schema (configs/README.md
 * is the reference), with --set overrides, loaded with libcyaml (libyaml for the overrides).
 *
 * Every error names the file, the key path (e.g. "local.lr") and what was expected. After
 * loading, every default is filled in, per method where defaults differ, and an option a method
 * does not take is an error. Owns: every string and array it points to (fg_config_free). */
#ifndef FG_FL_CONFIG_H
#define FG_FL_CONFIG_H

#include <stdint.h>

#include "engine/base/status.h"
#include "fl/spec.h"

enum { FG_MAX_METHODS = 16, FG_MAX_LEVELS = 8 };

typedef struct fg_method_config {
  char *name;               /* fedavg | exclusivefl | fedavg-s | heterofl | fedrolex | depthfl | scalefl | neulite | hypemefed | multiexit */
  fg_weighting weighting;
  double rates[FG_MAX_LEVELS];   /* fedavg-s, heterofl, fedrolex: width rates, descending */
  int n_rates;
  int scaler;               /* heterofl, fedrolex */
  int sbn;                  /* heterofl */
  int label_mask;           /* heterofl, fedrolex */
  char *rolling;            /* fedrolex: roll | static | random */
  int kd;                   /* depthfl */
  int kd_ramp_rounds;       /* depthfl */
  double widths[FG_MAX_LEVELS];  /* scalefl: width per level */
  int exits[FG_MAX_LEVELS];      /* scalefl: exits per level */
  int n_scalefl_levels;
  double kd_gamma, kd_temperature, kd_start; /* scalefl */
  /* neulite. Every scalar is filled (its default when not given) whatever the schedule; a key given
   * for a schedule / advance that does not use it is an error. Lists: 0 entries when not given,
   * else exactly one entry per stage (fg_model_block_count of the arch). */
  char *schedule;                 /* "roundrobin" (default, as the reference code) | "sequential" */
  int stage_rounds[FG_MAX_LEVELS];/* sequential + advance "rounds": rounds of each stage; n_stage_rounds 0 = rounds split evenly */
  int n_stage_rounds;
  char *advance;                  /* sequential: "rounds" (default) | "movement" (effective-movement metric) */
  double em_threshold;            /* movement: advance when EM < this (default 0.1), range (0, 1] */
  int em_window;                  /* movement: round-to-round changes summed (default 6), >= 2 */
  int em_every;                   /* movement: check every this many rounds of a stage (default 10), >= 1 */
  int em_samples;                 /* movement: tracked scalars of the active block (default 10000), >= 1 */
  double lambdas[FG_MAX_LEVELS];  /* weight of nHSIC(X; Z_X) per stage; n_lambdas 0 = our default schedule */
  int n_lambdas;
  double gammas[FG_MAX_LEVELS];   /* weight of nHSIC(Y; Z_Y) per stage; n_gammas 0 = our default schedule */
  int n_gammas;
  double hsic_sigma;              /* Gaussian kernel sigma (default 5, as the reference), > 0 */
  int mentor;                     /* Curriculum Mentor nHSIC terms on (default 1) */
  int harmonizer;                 /* Training Harmonizer on (default 1) */
  char *frozen_bn;                /* "update" (default, reference: frozen-prefix BN uses batch statistics and updates running stats) | "fixed" (frozen-prefix BN uses running statistics, no update) */
  char *output_module;            /* "linear" (default, reference: bias-free strided convs, no BN, no ReLU) | "bn_relu" (ours: BN + ReLU after each output-module conv) */
  /* hypemefed and multiexit */
  char *levels;                   /* "budget" (default: the deepest exit level the budget fits) | "index" (client i gets depth (i mod L) + 1, budgets ignored, as the reference code) */
  double lr;                      /* local Adam learning rate (default 5e-4, hypemefed.md §6); weight decay 0.1 lr, coupled; state reset every round */
  /* hypemefed */
  char *hypernet;                 /* "lrf" (default: SVD factors, row-wise MLPs) | "naive" (flattened kernel -> kernel) | "none" */
  int rank;                       /* LRF rank r (default 100; capped per layer at min(O k, I k)); 1 reproduces the reference code (F2) */
  int hn_epochs;                  /* hypernetwork epochs per round (default 25) */
  int compat;                     /* FG_COMPAT_* bits reproducing the reference code (F1, F3); default 0 */
} fg_method_config;

/* hypemefed's compatibility switches (hypemefed.md §9). */
enum {
  FG_COMPAT_NOOP_WRITEBACK = 1, /* F1: generated kernels never reach aggregation (shallow clients send stale copies) */
  FG_COMPAT_DUP_AVG = 2,        /* F3: exit-block tensors weighted 1/P^2 (first participant) and (P+1)/P^2 (others) */
};

typedef struct fg_config {
  char *path;               /* the file it came from */
  char *name;
  uint64_t seed;
  int rounds;
  int threads;
  /* data */
  char *dataset;
  char *data_dir;           /* NULL: the dataset's default */
  int augment;              /* -1: the dataset's default; 0 / 1 */
  fg_partition_spec partition;
  int pool;                 /* data.pool: the training set is the train split followed by the test split */
  double local_test;        /* data.local_test: fraction of each client's share held out as its local test
                               split (ceil(local_test x n_k) samples); 0: no local split */
  /* model */
  char *arch;
  double width;             /* always set: when not given, the architecture's default (cnn 16, else 1) */
  /* clients */
  int clients;
  fg_budget_spec budgets;   /* tiers / profiles point into storage owned by the config */
  fg_sampling_spec sampling;
  /* local training */
  int local_epochs;
  int local_batch;
  char *optimizer;          /* sgd | adam */
  double lr, lr_decay, momentum, weight_decay;
  char *mode;               /* store | checkpoint */
  /* evaluation */
  int eval_every, eval_batch, eval_max_samples;
  fg_eval_protocol eval_protocol; /* global: the test split; local: the clients' local test splits */
  /* checkpoints */
  int checkpoint_every;
  /* methods: one, or several to compare (from `methods:`) */
  fg_method_config methods[FG_MAX_METHODS];
  int n_methods;
  int compare;              /* 1 when the file used `methods:` */
  void *storage;            /* owned allocations */
} fg_config;

/* Loads `path` with `n_set` overrides "dotted.key=value" (value: a YAML scalar or flow list /
 * mapping; list entries as key[N]) applied in order to the document before it is validated, so a
 * bad override fails like the same mistake in the file, its message naming the --set. Errors:
 * FG_ERR_IO when the file cannot be read, FG_ERR_CONFIG otherwise, with a message naming the
 * file and the key path (e.g. "exp.yaml: local.lr: -0.1 is out of range (expected >= 0)").
 * On failure *cfg is left empty (zeroed); fg_config_free is still safe on it. */
fg_status fg_config_load(const char *path, const char *const *set, int n_set, fg_config *cfg);
/* Writes the resolved configuration (every key, defaults filled in) as YAML, atomically, with a
 * first line "# fedgap <revision>"; loading the file gives an identical fg_config (but `path`).
 * method_index >= 0 writes a single-method file (`method:` = that method, compare 0) as a
 * comparison's per-method run folder holds; -1 writes what was loaded (`method:` or `methods:`).
 * FG_ERR_INVALID for an index out of range or a config that was not loaded; FG_ERR_IO when the
 * file cannot be written (the previous file at `path`, if any, is then untouched). */
fg_status fg_config_write_resolved(const fg_config *cfg, int method_index, const char *path,
                                   const char *revision);
void fg_config_free(fg_config *cfg);
/* "global" or "local" (the value of eval.protocol); "unknown" for other values. */
const char *fg_eval_protocol_name(fg_eval_protocol p);
/* The configuration of method `name` with every option at its default for model `arch`, as a
 * file naming only the method gets it (e.g. for `fedgap memplan --method`). FG_ERR_CONFIG for an
 * unknown method. Free with fg_method_config_free. */
fg_status fg_method_config_default(const char *name, const char *arch, fg_method_config *out);
void fg_method_config_free(fg_method_config *m);

#endif
