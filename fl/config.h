/* Experiment configurations: YAML files read against the experiment's schema (configs/README.md
 * is the reference), with --set overrides, and the resolved configuration written back.
 *
 * Every error names the file, the key path (e.g. "local.lr") and what was expected. After
 * loading, every default is filled in. The experiment's keys are declared here (fl/config.c,
 * a table walked by fl/schema.h); a method entry's keys are the method's own
 * (fl/method_config.h); budget rules are fl/budget.c's (fg_budget_spec_check), named here with
 * their key path. Owns: every string and array it points to (fg_config_free). */
#ifndef FG_FL_CONFIG_H
#define FG_FL_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "engine/tensor/tensor.h"
#include "fl/method_config.h"
#include "fl/spec.h"

enum { FG_MAX_METHODS = 16 };

/* updates.max_distance when not given. */
#define FG_UPDATE_MAX_DISTANCE 100.0

/* What a client whose training loss turns non-finite does to the run: it is recorded as diverged and
 * sends nothing (skip), or the run ends with an error naming it (stop). */
typedef enum fg_diverge_action { FG_DIVERGE_SKIP = 0, FG_DIVERGE_STOP } fg_diverge_action;

enum { FG_MAX_SEEDS = 16 }; /* entries of `seeds` */
enum { FG_MAX_LR_STEPS = 8 }; /* entries of `local.lr_steps` */

typedef struct fg_config {
  char *path;               /* the file it came from */
  char *name;
  uint64_t seed;
  int seeds[FG_MAX_SEEDS];  /* `seeds`: the experiment once per seed, each a run of its own with `seed`
                               set to it (apps/seed_table.h); n_seeds 0: one run, with `seed` */
  int n_seeds;
  int rounds;
  int threads;
  fg_device device;         /* where local training and evaluation run (cpu, cuda, cuda:N); the syntax
                               is checked here, availability where the device is opened */
  /* data */
  char *dataset;
  char *data_dir;           /* NULL: the dataset's default */
  char *normalize;          /* data.normalize: a normalisation preset's name; NULL: the dataset's */
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
  const char *optimizer;    /* sgd | adam */
  double lr, lr_decay, momentum, weight_decay;
  int lr_steps[FG_MAX_LR_STEPS]; /* local.lr_steps: from each of these rounds (0-based) on, the lr is
                                    multiplied once more by lr_step_factor (PyTorch's MultiStepLR) */
  int n_lr_steps;
  double lr_step_factor;
  double clip_norm;         /* local.clip_norm: the gradients' joint L2 norm at most this (0: no clipping) */
  const char *mode;         /* store | checkpoint */
  /* evaluation */
  int eval_every, eval_batch, eval_max_samples;
  int eval_bn_samples;      /* eval.bn_samples: static BN recalibration's training samples (0: all) */
  fg_eval_protocol eval_protocol; /* global: the test split; local: the clients' local test splits */
  /* checkpoints */
  int checkpoint_every;
  /* client updates (fl/update_check.h) */
  double update_max_distance; /* updates.max_distance: reject an update farther from the model sent than
                                 this multiple of that model's norm; 0: no bound */
  fg_diverge_action on_diverge; /* updates.on_diverge: a client whose loss turns non-finite */
  /* remote devices (fedgap serve, fl/remote.h) */
  double devices_deadline;  /* devices.deadline: seconds a round waits for its results */
  int devices_min_results;  /* devices.min_results: fewer results and the round failed */
  int devices_retries;      /* devices.retries: a failed round is tried again this many times */
  double devices_wait;      /* devices.wait: seconds the server waits for every client's device */
  double devices_grace;     /* devices.grace: seconds a device gone offline mid-round may take to come back */
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
/* The text fg_config_write_resolved writes, in a malloc'd NUL-terminated buffer (caller frees). */
fg_status fg_config_resolved_text(const fg_config *cfg, int method_index, const char *revision, char **text,
                                  size_t *len);
/* The FNV-1a 64 hash of a text (NULL: of the empty text). */
uint64_t fg_text_hash(const char *text);
/* The hash of the resolved configuration (without the revision line and the `devices` section,
 * which is the server's alone): two processes that hold the same experiment agree on it. */
fg_status fg_config_hash(const fg_config *cfg, uint64_t *hash);

/* One key whose value differs between two configurations: its path ("rounds", "local.lr",
 * "methods[1].rates") and both values as the resolved config.yaml writes them ("(absent)" for a
 * key one of them leaves to a default it does not write). */
typedef struct fg_config_change {
  char key[128];
  char from[128], to[128];
} fg_config_change;

/* The keys whose resolved values differ from `was` to `now` (both loaded; every method entry, -1),
 * compared key by key on the resolved configuration: mappings by key, lists of scalars as a whole,
 * lists of mappings entry by entry. `threads` is not compared (results do not depend on it). The
 * first `cap` changes go to out[], *n is their total. */
fg_status fg_config_diff(const fg_config *was, const fg_config *now, fg_config_change *out, int cap, int *n);

void fg_config_free(fg_config *cfg);
/* The names configs/README.md gives these values ("global", "dirichlet", ...); "unknown" for
 * other values. */
const char *fg_eval_protocol_name(fg_eval_protocol p);
const char *fg_partition_kind_name(fg_partition_kind k);
const char *fg_budget_kind_name(fg_budget_kind k);
const char *fg_sampling_kind_name(fg_sampling_kind k);
const char *fg_diverge_action_name(fg_diverge_action a);

#endif
