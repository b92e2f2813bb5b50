/* Plain descriptions of an experiment's parts (partition, budgets, sampling, method options),
 * shared by the config loader (fl/config.h) that fills them and the modules that act on them.
 * Owns nothing: strings and arrays point into the owning fg_config. */
#ifndef FG_FL_SPEC_H
#define FG_FL_SPEC_H

#include <stddef.h>
#include <stdint.h>

typedef enum fg_partition_kind { FG_PARTITION_IID = 0, FG_PARTITION_DIRICHLET, FG_PARTITION_SHARDS } fg_partition_kind;

typedef struct fg_partition_spec {
  fg_partition_kind kind;
  double alpha;            /* dirichlet */
  int min_size;            /* dirichlet: minimum samples per client */
  int classes_per_client;  /* shards */
} fg_partition_spec;

typedef enum fg_budget_kind {
  FG_BUDGET_NONE = 0,  /* no caps */
  FG_BUDGET_FIXED,     /* mib for everyone */
  FG_BUDGET_UNIFORM,   /* integer MiB uniform in [min_mib, max_mib] */
  FG_BUDGET_TIERS,     /* fraction x full model's training peak, for a share of clients */
  FG_BUDGET_PROFILES,  /* named device profiles, each for a share of clients */
} fg_budget_kind;

typedef struct fg_budget_tier {
  double fraction;
  double share;
} fg_budget_tier;

typedef struct fg_budget_profile {
  const char *name;
  double share;
} fg_budget_profile;

typedef struct fg_budget_spec {
  fg_budget_kind kind;
  double mib;
  double min_mib, max_mib;
  const fg_budget_tier *tiers;
  int n_tiers;
  const fg_budget_profile *profiles;
  int n_profiles;
} fg_budget_spec;

typedef enum fg_sampling_kind {
  FG_SAMPLE_UNIFORM = 0,  /* from all clients */
  FG_SAMPLE_ELIGIBLE,     /* from clients that fit some level of the method */
  FG_SAMPLE_PER_LEVEL,    /* the same number from each level; the remainder to the middle level */
  FG_SAMPLE_REFERENCE,    /* the method's own (fg_method_ops.sampling): what its reference does */
} fg_sampling_kind;

typedef struct fg_sampling_spec {
  fg_sampling_kind kind;
  int per_round;   /* > 0: this many per round; else ceil(fraction x clients) */
  double fraction;
} fg_sampling_spec;

/* What the global model is evaluated on (configs/README.md `eval.protocol`). */
typedef enum fg_eval_protocol {
  FG_EVAL_GLOBAL = 0, /* the dataset's test split */
  FG_EVAL_LOCAL,      /* every client's local test split, at its deepest allowed exit ("General") */
} fg_eval_protocol;

typedef enum fg_weighting { FG_WEIGHT_SAMPLES = 0, FG_WEIGHT_COUNT } fg_weighting;

#endif
