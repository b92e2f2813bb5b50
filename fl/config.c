/* Experiment configurations (configs/README.md is the reference).
 *
 * Loading goes in five steps:
 *   1. libyaml parses the file into a node tree (a syntax error names the line and column);
 *   2. each --set override is parsed as a YAML value and grafted into the tree at its path;
 *   3. the tree is checked against the libcyaml schema below (walked here, so that every error
 *      names the dotted key path and what was expected, and so that scalars are read strictly:
 *      libcyaml alone takes "1.5" or "1e3" as an int and "maybe" as true);
 *   4. the tree is emitted as YAML text and loaded with libcyaml into the raw structs below
 *      (its log is captured, never printed: a failure there is reported with its backtrace as a
 *      key path);
 *   5. the raw structs are converted to fg_config: defaults filled in (per method where they
 *      differ), ranges and cross-key rules checked, every string copied to the heap. */
#include "fl/config.h"

#include <cyaml/cyaml.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "engine/data/catalog.h"
#include "engine/io/atomic_file.h"
#include "engine/nn/models.h"

enum {
  FG_CFG_MAX_FILE = 16 << 20, /* bytes of YAML we read */
  FG_CFG_PATH_CAP = 512,      /* dotted key path of an error */
  FG_CFG_LOG_CAP = 2048,      /* captured libcyaml log */
  FG_CFG_MAX_DEPTH = 64,      /* nesting of a --set value */
};

/* ---- raw structs filled by libcyaml ------------------------------------------------------- */
/* Optional scalars are pointers (NULL: absent), so that defaults and "the method does not take
 * this key" can be told apart from a value that equals the default. */

typedef struct raw_partition {
  fg_partition_kind *kind;
  double *alpha;
  int *min_size;
  int *classes_per_client;
} raw_partition;

typedef struct raw_data {
  char *dataset;
  char *dir;
  int *augment;
  raw_partition *partition;
  int *pool;
  double *local_test;
} raw_data;

typedef struct raw_model {
  char *arch;
  double *width;
} raw_model;

typedef struct raw_tier {
  double fraction;
  double share;
} raw_tier;

typedef struct raw_profile {
  char *name;
  double share;
} raw_profile;

typedef struct raw_budgets {
  fg_budget_kind *kind;
  double *mib;
  double *min_mib;
  double *max_mib;
  raw_tier *tiers;
  unsigned n_tiers;
  raw_profile *profiles;
  unsigned n_profiles;
} raw_budgets;

typedef struct raw_clients {
  int count;
  raw_budgets *budgets;
} raw_clients;

typedef struct raw_sampling {
  fg_sampling_kind *kind;
  int *per_round;
  double *fraction;
} raw_sampling;

typedef struct raw_local {
  int *epochs;
  int *batch;
  int *optimizer;
  double *lr;
  double *lr_decay;
  double *momentum;
  double *weight_decay;
  int *mode;
} raw_local;

typedef struct raw_eval {
  int *every;
  int *batch;
  int *max_samples;
  fg_eval_protocol *protocol;
} raw_eval;

typedef struct raw_checkpoint {
  int *every;
} raw_checkpoint;

typedef struct raw_method {
  int name;
  fg_weighting *weighting;
  double *rates;
  unsigned n_rates;
  int *scaler;
  int *sbn;
  int *label_mask;
  int *rolling;
  int *kd;
  int *kd_ramp_rounds;
  double *widths;
  unsigned n_widths;
  int *exits;
  unsigned n_exits;
  double *kd_gamma;
  double *kd_temperature;
  double *kd_start;
  int *schedule;
  int *stage_rounds;
  unsigned n_stage_rounds;
  int *advance;
  double *em_threshold;
  int *em_window;
  int *em_every;
  int *em_samples;
  double *lambdas;
  unsigned n_lambdas;
  double *gammas;
  unsigned n_gammas;
  double *hsic_sigma;
  int *mentor;
  int *harmonizer;
  int *frozen_bn;
  int *output_module;
  int *levels;
  int *hypernet;
  int *rank;
  int *hn_epochs;
  double *lr;
  int *compat;
  unsigned n_compat;
} raw_method;

typedef struct raw_top {
  char *name;
  uint64_t *seed;
  int rounds;
  int *threads;
  raw_data *data;
  raw_model *model;
  raw_clients *clients;
  raw_sampling *sampling;
  raw_local *local;
  raw_eval *eval;
  raw_checkpoint *checkpoint;
  raw_method *method;
  raw_method *methods;
  unsigned n_methods;
} raw_top;

/* ---- names of enumerated values ----------------------------------------------------------- */

static const cyaml_strval_t partition_kinds[] = {
    {"iid", FG_PARTITION_IID}, {"dirichlet", FG_PARTITION_DIRICHLET}, {"shards", FG_PARTITION_SHARDS}};
static const cyaml_strval_t budget_kinds[] = {{"none", FG_BUDGET_NONE},
                                              {"fixed", FG_BUDGET_FIXED},
                                              {"uniform", FG_BUDGET_UNIFORM},
                                              {"tiers", FG_BUDGET_TIERS},
                                              {"profiles", FG_BUDGET_PROFILES}};
static const cyaml_strval_t sampling_kinds[] = {
    {"uniform", FG_SAMPLE_UNIFORM}, {"eligible", FG_SAMPLE_ELIGIBLE}, {"per_level", FG_SAMPLE_PER_LEVEL}};
static const cyaml_strval_t weightings[] = {{"samples", FG_WEIGHT_SAMPLES}, {"count", FG_WEIGHT_COUNT}};
static const cyaml_strval_t optimizers[] = {{"sgd", 0}, {"adam", 1}};
static const cyaml_strval_t modes[] = {{"store", 0}, {"checkpoint", 1}};
static const cyaml_strval_t rollings[] = {{"roll", 0}, {"static", 1}, {"random", 2}};
enum { SCHEDULE_ROUNDROBIN, SCHEDULE_SEQUENTIAL };
static const cyaml_strval_t schedules[] = {{"roundrobin", SCHEDULE_ROUNDROBIN}, {"sequential", SCHEDULE_SEQUENTIAL}};
enum { ADVANCE_ROUNDS, ADVANCE_MOVEMENT };
static const cyaml_strval_t advances[] = {{"rounds", ADVANCE_ROUNDS}, {"movement", ADVANCE_MOVEMENT}};
static const cyaml_strval_t frozen_bns[] = {{"update", 0}, {"fixed", 1}};
static const cyaml_strval_t output_modules[] = {{"linear", 0}, {"bn_relu", 1}};
static const cyaml_strval_t level_rules[] = {{"budget", 0}, {"index", 1}};
static const cyaml_strval_t hypernets[] = {{"lrf", 0}, {"naive", 1}, {"none", 2}};
static const cyaml_strval_t compats[] = {{"noop_writeback", FG_COMPAT_NOOP_WRITEBACK},
                                         {"dup_avg", FG_COMPAT_DUP_AVG}};
static const cyaml_strval_t eval_protocols[] = {{"global", FG_EVAL_GLOBAL}, {"local", FG_EVAL_LOCAL}};

enum {
  M_FEDAVG, M_EXCLUSIVEFL, M_FEDAVG_S, M_HETEROFL, M_FEDROLEX, M_DEPTHFL, M_SCALEFL, M_NEULITE,
  M_HYPEMEFED, M_MULTIEXIT, M_COUNT
};
static const cyaml_strval_t method_names[] = {
    {"fedavg", M_FEDAVG},     {"exclusivefl", M_EXCLUSIVEFL}, {"fedavg-s", M_FEDAVG_S},
    {"heterofl", M_HETEROFL}, {"fedrolex", M_FEDROLEX},       {"depthfl", M_DEPTHFL},
    {"scalefl", M_SCALEFL},   {"neulite", M_NEULITE},         {"hypemefed", M_HYPEMEFED},
    {"multiexit", M_MULTIEXIT}};

/* The options a method takes besides name and weighting, as bits of an option_set. */
typedef uint64_t option_set;
#define OPT_RATES (UINT64_C(1) << 0)
#define OPT_SCALER (UINT64_C(1) << 1)
#define OPT_SBN (UINT64_C(1) << 2)
#define OPT_LABEL_MASK (UINT64_C(1) << 3)
#define OPT_ROLLING (UINT64_C(1) << 4)
#define OPT_KD (UINT64_C(1) << 5)
#define OPT_KD_RAMP_ROUNDS (UINT64_C(1) << 6)
#define OPT_WIDTHS (UINT64_C(1) << 7)
#define OPT_EXITS (UINT64_C(1) << 8)
#define OPT_KD_GAMMA (UINT64_C(1) << 9)
#define OPT_KD_TEMPERATURE (UINT64_C(1) << 10)
#define OPT_KD_START (UINT64_C(1) << 11)
#define OPT_SCHEDULE (UINT64_C(1) << 12)
#define OPT_STAGE_ROUNDS (UINT64_C(1) << 13)
#define OPT_ADVANCE (UINT64_C(1) << 14)
#define OPT_EM_THRESHOLD (UINT64_C(1) << 15)
#define OPT_EM_WINDOW (UINT64_C(1) << 16)
#define OPT_EM_EVERY (UINT64_C(1) << 17)
#define OPT_EM_SAMPLES (UINT64_C(1) << 18)
#define OPT_LAMBDAS (UINT64_C(1) << 19)
#define OPT_GAMMAS (UINT64_C(1) << 20)
#define OPT_HSIC_SIGMA (UINT64_C(1) << 21)
#define OPT_MENTOR (UINT64_C(1) << 22)
#define OPT_HARMONIZER (UINT64_C(1) << 23)
#define OPT_FROZEN_BN (UINT64_C(1) << 24)
#define OPT_LEVELS (UINT64_C(1) << 25)
#define OPT_HYPERNET (UINT64_C(1) << 26)
#define OPT_RANK (UINT64_C(1) << 27)
#define OPT_HN_EPOCHS (UINT64_C(1) << 28)
#define OPT_LR (UINT64_C(1) << 29)
#define OPT_COMPAT (UINT64_C(1) << 30)
#define OPT_OUTPUT_MODULE (UINT64_C(1) << 31)
enum { OPT_COUNT = 32 };
static const char *const option_names[OPT_COUNT] = {"rates",     "scaler",   "sbn",
                                                    "label_mask", "rolling", "kd",
                                                    "kd_ramp_rounds", "widths", "exits",
                                                    "kd_gamma",  "kd_temperature", "kd_start",
                                                    "schedule", "stage_rounds", "advance",
                                                    "em_threshold", "em_window", "em_every",
                                                    "em_samples", "lambdas", "gammas",
                                                    "hsic_sigma", "mentor", "harmonizer",
                                                    "frozen_bn", "levels", "hypernet",
                                                    "rank", "hn_epochs", "lr", "compat", "output_module"};

/* neulite: the options of the sequential schedule, and those of each way it advances. */
#define OPT_NEULITE_SEQUENTIAL \
  (OPT_STAGE_ROUNDS | OPT_ADVANCE | OPT_EM_THRESHOLD | OPT_EM_WINDOW | OPT_EM_EVERY | OPT_EM_SAMPLES)
#define OPT_NEULITE_ROUNDS OPT_STAGE_ROUNDS
#define OPT_NEULITE_MOVEMENT (OPT_EM_THRESHOLD | OPT_EM_WINDOW | OPT_EM_EVERY | OPT_EM_SAMPLES)

typedef struct method_info {
  fg_weighting weighting; /* default */
  option_set options;
} method_info;

static const method_info methods_info[M_COUNT] = {
    [M_FEDAVG] = {FG_WEIGHT_SAMPLES, 0},
    [M_EXCLUSIVEFL] = {FG_WEIGHT_SAMPLES, 0},
    [M_FEDAVG_S] = {FG_WEIGHT_SAMPLES, OPT_RATES},
    [M_HETEROFL] = {FG_WEIGHT_COUNT, OPT_RATES | OPT_SCALER | OPT_SBN | OPT_LABEL_MASK},
    [M_FEDROLEX] = {FG_WEIGHT_COUNT, OPT_RATES | OPT_SCALER | OPT_LABEL_MASK | OPT_ROLLING},
    [M_DEPTHFL] = {FG_WEIGHT_COUNT, OPT_KD | OPT_KD_RAMP_ROUNDS},
    [M_SCALEFL] = {FG_WEIGHT_COUNT,
                   OPT_WIDTHS | OPT_EXITS | OPT_KD_GAMMA | OPT_KD_TEMPERATURE | OPT_KD_START},
    /* the paper weights by |D_n| / |D|; the reference code averages with equal weights (count) */
    [M_NEULITE] = {FG_WEIGHT_SAMPLES, OPT_SCHEDULE | OPT_NEULITE_SEQUENTIAL | OPT_LAMBDAS | OPT_GAMMAS |
                                          OPT_HSIC_SIGMA | OPT_MENTOR | OPT_HARMONIZER | OPT_FROZEN_BN |
                                          OPT_OUTPUT_MODULE},
    /* uniform mean over participants (hypemefed.md §4.1) */
    [M_HYPEMEFED] = {FG_WEIGHT_COUNT, OPT_LEVELS | OPT_HYPERNET | OPT_RANK | OPT_HN_EPOCHS | OPT_LR | OPT_COMPAT},
    [M_MULTIEXIT] = {FG_WEIGHT_COUNT, OPT_LEVELS | OPT_LR},
};

static const double default_rates[] = {1, 0.5, 0.25, 0.125, 0.0625};
static const double default_widths[] = {0.7, 0.75, 1};
static const int default_exits[] = {1, 2, 3};

/* ---- the libcyaml schema (the key names, types and required keys of configs/README.md) ---- */

#define ENUM_LEN(a) ((uint32_t)(sizeof(a) / sizeof((a)[0])))
#define OPT CYAML_FLAG_OPTIONAL

static const cyaml_schema_field_t partition_fields[] = {
    CYAML_FIELD_ENUM_PTR("kind", OPT | CYAML_FLAG_STRICT, raw_partition, kind, partition_kinds,
                         ENUM_LEN(partition_kinds)),
    CYAML_FIELD_FLOAT_PTR("alpha", OPT | CYAML_FLAG_STRICT, raw_partition, alpha),
    CYAML_FIELD_INT_PTR("min_size", OPT, raw_partition, min_size),
    CYAML_FIELD_INT_PTR("classes_per_client", OPT, raw_partition, classes_per_client),
    CYAML_FIELD_END};

static const cyaml_schema_field_t data_fields[] = {
    CYAML_FIELD_STRING_PTR("dataset", CYAML_FLAG_DEFAULT, raw_data, dataset, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("dir", OPT, raw_data, dir, 1, CYAML_UNLIMITED),
    CYAML_FIELD_BOOL_PTR("augment", OPT, raw_data, augment),
    CYAML_FIELD_MAPPING_PTR("partition", OPT, raw_data, partition, partition_fields),
    CYAML_FIELD_BOOL_PTR("pool", OPT, raw_data, pool),
    CYAML_FIELD_FLOAT_PTR("local_test", OPT | CYAML_FLAG_STRICT, raw_data, local_test),
    CYAML_FIELD_END};

static const cyaml_schema_field_t model_fields[] = {
    CYAML_FIELD_STRING_PTR("arch", CYAML_FLAG_DEFAULT, raw_model, arch, 1, CYAML_UNLIMITED),
    CYAML_FIELD_FLOAT_PTR("width", OPT | CYAML_FLAG_STRICT, raw_model, width),
    CYAML_FIELD_END};

static const cyaml_schema_field_t tier_fields[] = {
    CYAML_FIELD_FLOAT("fraction", CYAML_FLAG_STRICT, raw_tier, fraction),
    CYAML_FIELD_FLOAT("share", CYAML_FLAG_STRICT, raw_tier, share),
    CYAML_FIELD_END};
static const cyaml_schema_value_t tier_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, raw_tier, tier_fields)};

static const cyaml_schema_field_t profile_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_DEFAULT, raw_profile, name, 1, CYAML_UNLIMITED),
    CYAML_FIELD_FLOAT("share", CYAML_FLAG_STRICT, raw_profile, share),
    CYAML_FIELD_END};
static const cyaml_schema_value_t profile_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, raw_profile, profile_fields)};

static const cyaml_schema_field_t budgets_fields[] = {
    CYAML_FIELD_ENUM_PTR("kind", OPT | CYAML_FLAG_STRICT, raw_budgets, kind, budget_kinds,
                         ENUM_LEN(budget_kinds)),
    CYAML_FIELD_FLOAT_PTR("mib", OPT | CYAML_FLAG_STRICT, raw_budgets, mib),
    CYAML_FIELD_FLOAT_PTR("min_mib", OPT | CYAML_FLAG_STRICT, raw_budgets, min_mib),
    CYAML_FIELD_FLOAT_PTR("max_mib", OPT | CYAML_FLAG_STRICT, raw_budgets, max_mib),
    CYAML_FIELD_SEQUENCE_COUNT("tiers", CYAML_FLAG_POINTER | OPT, raw_budgets, tiers, n_tiers,
                               &tier_entry, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE_COUNT("profiles", CYAML_FLAG_POINTER | OPT, raw_budgets, profiles,
                               n_profiles, &profile_entry, 1, CYAML_UNLIMITED),
    CYAML_FIELD_END};

static const cyaml_schema_field_t clients_fields[] = {
    CYAML_FIELD_INT("count", CYAML_FLAG_DEFAULT, raw_clients, count),
    CYAML_FIELD_MAPPING_PTR("budgets", OPT, raw_clients, budgets, budgets_fields),
    CYAML_FIELD_END};

static const cyaml_schema_field_t sampling_fields[] = {
    CYAML_FIELD_ENUM_PTR("kind", OPT | CYAML_FLAG_STRICT, raw_sampling, kind, sampling_kinds,
                         ENUM_LEN(sampling_kinds)),
    CYAML_FIELD_INT_PTR("per_round", OPT, raw_sampling, per_round),
    CYAML_FIELD_FLOAT_PTR("fraction", OPT | CYAML_FLAG_STRICT, raw_sampling, fraction),
    CYAML_FIELD_END};

static const cyaml_schema_field_t local_fields[] = {
    CYAML_FIELD_INT_PTR("epochs", OPT, raw_local, epochs),
    CYAML_FIELD_INT_PTR("batch", OPT, raw_local, batch),
    CYAML_FIELD_ENUM_PTR("optimizer", OPT | CYAML_FLAG_STRICT, raw_local, optimizer, optimizers,
                         ENUM_LEN(optimizers)),
    CYAML_FIELD_FLOAT_PTR("lr", OPT | CYAML_FLAG_STRICT, raw_local, lr),
    CYAML_FIELD_FLOAT_PTR("lr_decay", OPT | CYAML_FLAG_STRICT, raw_local, lr_decay),
    CYAML_FIELD_FLOAT_PTR("momentum", OPT | CYAML_FLAG_STRICT, raw_local, momentum),
    CYAML_FIELD_FLOAT_PTR("weight_decay", OPT | CYAML_FLAG_STRICT, raw_local, weight_decay),
    CYAML_FIELD_ENUM_PTR("mode", OPT | CYAML_FLAG_STRICT, raw_local, mode, modes, ENUM_LEN(modes)),
    CYAML_FIELD_END};

static const cyaml_schema_field_t eval_fields[] = {
    CYAML_FIELD_INT_PTR("every", OPT, raw_eval, every),
    CYAML_FIELD_INT_PTR("batch", OPT, raw_eval, batch),
    CYAML_FIELD_INT_PTR("max_samples", OPT, raw_eval, max_samples),
    CYAML_FIELD_ENUM_PTR("protocol", OPT | CYAML_FLAG_STRICT, raw_eval, protocol, eval_protocols,
                         ENUM_LEN(eval_protocols)),
    CYAML_FIELD_END};

static const cyaml_schema_field_t checkpoint_fields[] = {
    CYAML_FIELD_INT_PTR("every", OPT, raw_checkpoint, every),
    CYAML_FIELD_END};

static const cyaml_schema_value_t real_entry = {CYAML_VALUE_FLOAT(CYAML_FLAG_STRICT, double)};
static const cyaml_schema_value_t int_entry = {CYAML_VALUE_INT(CYAML_FLAG_DEFAULT, int)};
static const cyaml_schema_value_t compat_entry = {
    CYAML_VALUE_ENUM(CYAML_FLAG_STRICT, int, compats, ENUM_LEN(compats))};

static const cyaml_schema_field_t method_fields[] = {
    CYAML_FIELD_ENUM("name", CYAML_FLAG_STRICT, raw_method, name, method_names,
                     ENUM_LEN(method_names)),
    CYAML_FIELD_ENUM_PTR("weighting", OPT | CYAML_FLAG_STRICT, raw_method, weighting, weightings,
                         ENUM_LEN(weightings)),
    CYAML_FIELD_SEQUENCE_COUNT("rates", CYAML_FLAG_POINTER | OPT, raw_method, rates, n_rates,
                               &real_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_BOOL_PTR("scaler", OPT, raw_method, scaler),
    CYAML_FIELD_BOOL_PTR("sbn", OPT, raw_method, sbn),
    CYAML_FIELD_BOOL_PTR("label_mask", OPT, raw_method, label_mask),
    CYAML_FIELD_ENUM_PTR("rolling", OPT | CYAML_FLAG_STRICT, raw_method, rolling, rollings,
                         ENUM_LEN(rollings)),
    CYAML_FIELD_BOOL_PTR("kd", OPT, raw_method, kd),
    CYAML_FIELD_INT_PTR("kd_ramp_rounds", OPT, raw_method, kd_ramp_rounds),
    CYAML_FIELD_SEQUENCE_COUNT("widths", CYAML_FLAG_POINTER | OPT, raw_method, widths, n_widths,
                               &real_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_SEQUENCE_COUNT("exits", CYAML_FLAG_POINTER | OPT, raw_method, exits, n_exits,
                               &int_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_FLOAT_PTR("kd_gamma", OPT | CYAML_FLAG_STRICT, raw_method, kd_gamma),
    CYAML_FIELD_FLOAT_PTR("kd_temperature", OPT | CYAML_FLAG_STRICT, raw_method, kd_temperature),
    CYAML_FIELD_FLOAT_PTR("kd_start", OPT | CYAML_FLAG_STRICT, raw_method, kd_start),
    CYAML_FIELD_ENUM_PTR("schedule", OPT | CYAML_FLAG_STRICT, raw_method, schedule, schedules,
                         ENUM_LEN(schedules)),
    CYAML_FIELD_SEQUENCE_COUNT("stage_rounds", CYAML_FLAG_POINTER | OPT, raw_method, stage_rounds,
                               n_stage_rounds, &int_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_ENUM_PTR("advance", OPT | CYAML_FLAG_STRICT, raw_method, advance, advances,
                         ENUM_LEN(advances)),
    CYAML_FIELD_FLOAT_PTR("em_threshold", OPT | CYAML_FLAG_STRICT, raw_method, em_threshold),
    CYAML_FIELD_INT_PTR("em_window", OPT, raw_method, em_window),
    CYAML_FIELD_INT_PTR("em_every", OPT, raw_method, em_every),
    CYAML_FIELD_INT_PTR("em_samples", OPT, raw_method, em_samples),
    CYAML_FIELD_SEQUENCE_COUNT("lambdas", CYAML_FLAG_POINTER | OPT, raw_method, lambdas, n_lambdas,
                               &real_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_SEQUENCE_COUNT("gammas", CYAML_FLAG_POINTER | OPT, raw_method, gammas, n_gammas,
                               &real_entry, 1, FG_MAX_LEVELS),
    CYAML_FIELD_FLOAT_PTR("hsic_sigma", OPT | CYAML_FLAG_STRICT, raw_method, hsic_sigma),
    CYAML_FIELD_BOOL_PTR("mentor", OPT, raw_method, mentor),
    CYAML_FIELD_BOOL_PTR("harmonizer", OPT, raw_method, harmonizer),
    CYAML_FIELD_ENUM_PTR("frozen_bn", OPT | CYAML_FLAG_STRICT, raw_method, frozen_bn, frozen_bns,
                         ENUM_LEN(frozen_bns)),
    CYAML_FIELD_ENUM_PTR("output_module", OPT | CYAML_FLAG_STRICT, raw_method, output_module, output_modules,
                         ENUM_LEN(output_modules)),
    CYAML_FIELD_ENUM_PTR("levels", OPT | CYAML_FLAG_STRICT, raw_method, levels, level_rules,
                         ENUM_LEN(level_rules)),
    CYAML_FIELD_ENUM_PTR("hypernet", OPT | CYAML_FLAG_STRICT, raw_method, hypernet, hypernets,
                         ENUM_LEN(hypernets)),
    CYAML_FIELD_INT_PTR("rank", OPT, raw_method, rank),
    CYAML_FIELD_INT_PTR("hn_epochs", OPT, raw_method, hn_epochs),
    CYAML_FIELD_FLOAT_PTR("lr", OPT | CYAML_FLAG_STRICT, raw_method, lr),
    CYAML_FIELD_SEQUENCE_COUNT("compat", CYAML_FLAG_POINTER | OPT, raw_method, compat, n_compat,
                               &compat_entry, 0, 2),
    CYAML_FIELD_END};
static const cyaml_schema_value_t method_entry = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, raw_method, method_fields)};

static const cyaml_schema_field_t top_fields[] = {
    CYAML_FIELD_STRING_PTR("name", OPT, raw_top, name, 1, CYAML_UNLIMITED),
    CYAML_FIELD_UINT_PTR("seed", OPT, raw_top, seed),
    CYAML_FIELD_INT("rounds", CYAML_FLAG_DEFAULT, raw_top, rounds),
    CYAML_FIELD_INT_PTR("threads", OPT, raw_top, threads),
    CYAML_FIELD_MAPPING_PTR("data", CYAML_FLAG_DEFAULT, raw_top, data, data_fields),
    CYAML_FIELD_MAPPING_PTR("model", CYAML_FLAG_DEFAULT, raw_top, model, model_fields),
    CYAML_FIELD_MAPPING_PTR("clients", CYAML_FLAG_DEFAULT, raw_top, clients, clients_fields),
    CYAML_FIELD_MAPPING_PTR("sampling", OPT, raw_top, sampling, sampling_fields),
    CYAML_FIELD_MAPPING_PTR("local", OPT, raw_top, local, local_fields),
    CYAML_FIELD_MAPPING_PTR("eval", OPT, raw_top, eval, eval_fields),
    CYAML_FIELD_MAPPING_PTR("checkpoint", OPT, raw_top, checkpoint, checkpoint_fields),
    CYAML_FIELD_MAPPING_PTR("method", OPT, raw_top, method, method_fields),
    CYAML_FIELD_SEQUENCE_COUNT("methods", CYAML_FLAG_POINTER | OPT, raw_top, methods, n_methods,
                               &method_entry, 1, FG_MAX_METHODS),
    CYAML_FIELD_END};

static const cyaml_schema_value_t top_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, raw_top, top_fields)};

#undef OPT

/* ---- error context ------------------------------------------------------------------------ */

typedef struct cfg_ctx {
  const char *file;
  const char *const *set; /* the overrides as given, for messages */
  char **set_paths;       /* their canonical key paths ("methods[2].rates") */
  int n_set;
  char path[FG_CFG_PATH_CAP]; /* key path of the value being checked */
  size_t path_len;
  char log[FG_CFG_LOG_CAP]; /* libcyaml's log */
  size_t log_len;
} cfg_ctx;

static size_t path_push_key(cfg_ctx *c, const char *key) {
  size_t old = c->path_len;
  int n = snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
  if (n > 0) c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
  return old;
}

static size_t path_push_index(cfg_ctx *c, size_t index) {
  size_t old = c->path_len;
  int n = snprintf(c->path + old, sizeof c->path - old, "[%zu]", index);
  if (n > 0) c->path_len = old + (size_t)n < sizeof c->path ? old + (size_t)n : sizeof c->path - 1;
  return old;
}

static void path_pop(cfg_ctx *c, size_t old) {
  c->path_len = old;
  c->path[old] = '\0';
}

/* 1 when `a` is `b` or a key below it ("a.x", "a[1]"). */
static int path_within(const char *a, const char *b) {
  size_t n = strlen(b);
  return n > 0 && strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '.' || a[n] == '[');
}

/* Records "file: shown: message (from --set ...)" as FG_ERR_CONFIG. An empty `shown` leaves the
 * key path out of the front; the --set note is added when `key` was set by an override, lies
 * within what one set, or holds what one set. */
static fg_status cfg_vfail(cfg_ctx *c, const char *shown, const char *key, const char *fmt, va_list ap) {
  char msg[640];
  vsnprintf(msg, sizeof msg, fmt, ap);
  const char *origin = NULL;
  for (int i = c->n_set - 1; i >= 0 && key && *key && !origin; i--)
    if (c->set_paths && c->set_paths[i] &&
        (path_within(key, c->set_paths[i]) || path_within(c->set_paths[i], key)))
      origin = c->set[i];
  int has_path = shown && *shown;
  return FG_FAIL(FG_ERR_CONFIG, "%s: %s%s%s%s%s%s", c->file, has_path ? shown : "", has_path ? ": " : "",
                 msg, origin ? " (from --set " : "", origin ? origin : "", origin ? ")" : "");
}

/* An error about the value at key path `path` ("" for the document as a whole). */
static fg_status cfg_fail_at(cfg_ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fg_status cfg_fail_at(cfg_ctx *c, const char *path, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fg_status st = cfg_vfail(c, path, path, fmt, ap);
  va_end(ap);
  return st;
}

/* An error whose message names the key itself (an unknown key): `key` only decides the --set note. */
static fg_status cfg_fail_about(cfg_ctx *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static fg_status cfg_fail_about(cfg_ctx *c, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fg_status st = cfg_vfail(c, "", key, fmt, ap);
  va_end(ap);
  return st;
}

/* A heap copy of `s` (NULL for NULL or when out of memory). */
static char *dup_string(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

/* ---- node tree helpers -------------------------------------------------------------------- */

static const char *scalar_text(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

/* An empty plain scalar, ~ or null: YAML's null. */
static int scalar_is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
  const char *s = scalar_text(n);
  return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

/* What a node is, for "expected X, got Y" messages. */
static void describe_node(const yaml_node_t *n, char *out, size_t cap) {
  if (n->type == YAML_SEQUENCE_NODE) snprintf(out, cap, "a list");
  else if (n->type == YAML_MAPPING_NODE) snprintf(out, cap, "a mapping");
  else if (scalar_is_null(n)) snprintf(out, cap, "no value");
  else snprintf(out, cap, "'%.60s'", scalar_text(n));
}

static void list_enum(const cyaml_schema_value_t *s, char *out, size_t cap);

/* What a schema value expects, for "expected X, got Y" messages. */
static void expected_kind(const cyaml_schema_value_t *s, char *out, size_t cap) {
  switch (s->type) {
    case CYAML_INT: snprintf(out, cap, "an integer"); return;
    case CYAML_UINT: snprintf(out, cap, "a non-negative integer"); return;
    case CYAML_BOOL: snprintf(out, cap, "true or false"); return;
    case CYAML_FLOAT: snprintf(out, cap, "a number"); return;
    case CYAML_STRING: snprintf(out, cap, "a string"); return;
    case CYAML_MAPPING: snprintf(out, cap, "a mapping"); return;
    case CYAML_SEQUENCE:
    case CYAML_SEQUENCE_FIXED: snprintf(out, cap, "a list"); return;
    case CYAML_ENUM: {
      char names[200];
      list_enum(s, names, sizeof names);
      snprintf(out, cap, "one of: %s", names);
      return;
    }
    default: snprintf(out, cap, "a value"); return;
  }
}

/* Looks `key` up in a mapping node: the pair's index, or -1. */
static long mapping_find(yaml_document_t *doc, yaml_node_t *map, const char *key) {
  long i = 0;
  for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++, i++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (k && k->type == YAML_SCALAR_NODE && strcmp(scalar_text(k), key) == 0) return i;
  }
  return -1;
}

/* ---- strict scalar reading ---------------------------------------------------------------- */

/* A decimal integer without leading zeros (libcyaml would read "010" as octal and "1.5" as 1). */
static int is_decimal(const char *s) {
  const char *p = s + (*s == '+' || *s == '-');
  if (!(*p >= '0' && *p <= '9') || (p[0] == '0' && p[1] != '\0')) return 0;
  for (; *p; p++)
    if (!(*p >= '0' && *p <= '9')) return 0;
  return 1;
}

static int parse_real(const char *s, double *out) {
  if (!*s) return 0;
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (*end != '\0' || errno == ERANGE || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (int i = 0; i < 3; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, 1;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, 1;
  }
  return 0;
}

static void list_enum(const cyaml_schema_value_t *s, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (uint32_t i = 0; i < s->enumeration.count && len < cap; i++) {
    int n = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", s->enumeration.strings[i].str);
    if (n < 0) break;
    len += (size_t)n;
  }
}

static void list_fields(const cyaml_schema_field_t *f, char *out, size_t cap) {
  size_t len = 0;
  out[0] = '\0';
  for (int i = 0; f[i].key && len < cap; i++) {
    int n = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", f[i].key);
    if (n < 0) break;
    len += (size_t)n;
  }
}

/* ---- schema walk: every error names the key path ------------------------------------------ */

static fg_status check_value(cfg_ctx *c, yaml_document_t *doc, yaml_node_t *n,
                             const cyaml_schema_value_t *s);

static fg_status check_scalar(cfg_ctx *c, const yaml_node_t *n, const cyaml_schema_value_t *s) {
  char got[96], want[220];
  if (n->type != YAML_SCALAR_NODE || (s->type != CYAML_STRING && scalar_is_null(n))) {
    describe_node(n, got, sizeof got);
    expected_kind(s, want, sizeof want);
    return cfg_fail_at(c, c->path, "expected %s, got %s", want, got);
  }
  const char *v = scalar_text(n);
  switch (s->type) {
    case CYAML_INT: {
      if (!is_decimal(v)) return cfg_fail_at(c, c->path, "'%.60s' is not an integer", v);
      int bits = (int)(8 * s->data_size);
      long long hi = bits >= 64 ? LLONG_MAX : (1LL << (bits - 1)) - 1, lo = -hi - 1;
      errno = 0;
      long long x = strtoll(v, NULL, 10);
      if (errno == ERANGE || x > hi || x < lo)
        return cfg_fail_at(c, c->path, "%.60s is out of range (expected %lld..%lld)", v, lo, hi);
      return FG_OK;
    }
    case CYAML_UINT: {
      if (!is_decimal(v)) return cfg_fail_at(c, c->path, "'%.60s' is not an integer", v);
      if (v[0] == '-') return cfg_fail_at(c, c->path, "%.60s is out of range (expected >= 0)", v);
      int bits = (int)(8 * s->data_size);
      unsigned long long hi = bits >= 64 ? ULLONG_MAX : (1ULL << bits) - 1;
      errno = 0;
      unsigned long long x = strtoull(v, NULL, 10);
      if (errno == ERANGE || x > hi)
        return cfg_fail_at(c, c->path, "%.60s is out of range (expected at most %llu)", v, hi);
      return FG_OK;
    }
    case CYAML_FLOAT: {
      double x;
      if (!parse_real(v, &x)) return cfg_fail_at(c, c->path, "'%.60s' is not a finite number", v);
      return FG_OK;
    }
    case CYAML_BOOL: {
      int b;
      if (!parse_bool(v, &b))
        return cfg_fail_at(c, c->path, "'%.60s' is not a boolean (expected true or false)", v);
      return FG_OK;
    }
    case CYAML_ENUM: {
      for (uint32_t i = 0; i < s->enumeration.count; i++)
        if (strcmp(v, s->enumeration.strings[i].str) == 0) return FG_OK;
      char names[256];
      list_enum(s, names, sizeof names);
      return cfg_fail_at(c, c->path, "unknown value '%.60s' (expected one of: %s)", v, names);
    }
    case CYAML_STRING:
      if (scalar_is_null(n) && n->data.scalar.length == 0)
        return cfg_fail_at(c, c->path, "no value (expected a string)");
      if (scalar_is_null(n))
        return cfg_fail_at(c, c->path, "'%s' is YAML's null (expected a string; quote it)", v);
      if (n->data.scalar.length < s->string.min)
        return cfg_fail_at(c, c->path, "empty string (expected a non-empty string)");
      return FG_OK;
    default:
      return cfg_fail_at(c, c->path, "internal: unexpected schema type %d", (int)s->type);
  }
}

static fg_status check_mapping(cfg_ctx *c, yaml_document_t *doc, yaml_node_t *n,
                               const cyaml_schema_value_t *s) {
  char got[96];
  if (n->type != YAML_MAPPING_NODE) {
    describe_node(n, got, sizeof got);
    return cfg_fail_at(c, c->path, "expected a mapping, got %s", got);
  }
  const cyaml_schema_field_t *fields = s->mapping.fields;
  int n_fields = 0;
  while (fields[n_fields].key) n_fields++;
  unsigned char seen[64] = {0};
  if (n_fields > (int)sizeof seen) return cfg_fail_at(c, c->path, "internal: schema too wide");
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(doc, p->key);
    if (!k) return cfg_fail_at(c, c->path, "internal: dangling YAML key");
    if (k->type != YAML_SCALAR_NODE) {
      describe_node(k, got, sizeof got);
      return cfg_fail_at(c, c->path, "a key must be a name, got %s", got);
    }
    const char *key = scalar_text(k);
    int f = 0;
    while (f < n_fields && strcmp(fields[f].key, key) != 0) f++;
    if (f == n_fields) {
      char names[512];
      list_fields(fields, names, sizeof names);
      char where[FG_CFG_PATH_CAP + 16];
      if (c->path_len) snprintf(where, sizeof where, "in %s", c->path);
      else snprintf(where, sizeof where, "at top level");
      size_t old = path_push_key(c, key);
      fg_status st = cfg_fail_about(c, c->path, "unknown key '%.60s' %s (expected one of: %s)", key, where, names);
      path_pop(c, old);
      return st;
    }
    size_t old = path_push_key(c, key);
    if (seen[f]) {
      fg_status st = cfg_fail_at(c, c->path, "key given more than once");
      path_pop(c, old);
      return st;
    }
    seen[f] = 1;
    fg_status st = check_value(c, doc, yaml_document_get_node(doc, p->value), &fields[f].value);
    path_pop(c, old);
    if (st != FG_OK) return st;
  }
  for (int f = 0; f < n_fields; f++) {
    if (seen[f] || (fields[f].value.flags & CYAML_FLAG_OPTIONAL)) continue;
    size_t old = path_push_key(c, fields[f].key);
    fg_status st = cfg_fail_at(c, c->path, "required key is missing");
    path_pop(c, old);
    return st;
  }
  return FG_OK;
}

static fg_status check_sequence(cfg_ctx *c, yaml_document_t *doc, yaml_node_t *n,
                                const cyaml_schema_value_t *s) {
  char got[96];
  if (n->type != YAML_SEQUENCE_NODE) {
    describe_node(n, got, sizeof got);
    return cfg_fail_at(c, c->path, "expected a list, got %s", got);
  }
  size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
  if (count < s->sequence.min)
    return cfg_fail_at(c, c->path, "%zu entries (expected at least %u)", count, s->sequence.min);
  if (s->sequence.max != CYAML_UNLIMITED && count > s->sequence.max)
    return cfg_fail_at(c, c->path, "%zu entries (expected at most %u)", count, s->sequence.max);
  for (size_t i = 0; i < count; i++) {
    size_t old = path_push_index(c, i);
    fg_status st = check_value(c, doc, yaml_document_get_node(doc, n->data.sequence.items.start[i]),
                               s->sequence.entry);
    path_pop(c, old);
    if (st != FG_OK) return st;
  }
  return FG_OK;
}

static fg_status check_value(cfg_ctx *c, yaml_document_t *doc, yaml_node_t *n,
                             const cyaml_schema_value_t *s) {
  if (!n) return cfg_fail_at(c, c->path, "internal: dangling YAML node");
  switch (s->type) {
    case CYAML_MAPPING: return check_mapping(c, doc, n, s);
    case CYAML_SEQUENCE: return check_sequence(c, doc, n, s);
    default: return check_scalar(c, n, s);
  }
}

/* ---- --set overrides ---------------------------------------------------------------------- */

typedef struct set_step {
  char key[128]; /* a mapping key, or "" for a list index */
  long index;
} set_step;

enum { FG_SET_MAX_STEPS = 16 };

/* "a.b[2].c" into steps and its canonical text. */
static fg_status parse_set_path(cfg_ctx *c, const char *text, size_t len, const char *given,
                                set_step *steps, int *n_steps, char *canon, size_t canon_cap) {
  int n = 0;
  size_t i = 0;
  canon[0] = '\0';
  size_t clen = 0;
  while (i < len) {
    if (n == FG_SET_MAX_STEPS) return cfg_fail_at(c, "", "--set %s: key path too deep", given);
    if (text[i] == '[') {
      if (n == 0) return cfg_fail_at(c, "", "--set %s: the key path starts with an index", given);
      size_t j = i + 1;
      long idx = 0;
      while (j < len && text[j] >= '0' && text[j] <= '9' && idx < 1000000) idx = idx * 10 + (text[j++] - '0');
      if (j == i + 1 || j >= len || text[j] != ']')
        return cfg_fail_at(c, "", "--set %s: expected [N] with a non-negative index", given);
      steps[n].key[0] = '\0';
      steps[n].index = idx;
      clen += (size_t)snprintf(canon + clen, canon_cap - clen, "[%ld]", idx);
      n++;
      i = j + 1;
      if (i < len && text[i] != '.' && text[i] != '[')
        return cfg_fail_at(c, "", "--set %s: expected '.' or '[' after ']'", given);
      if (i < len && text[i] == '.') {
        i++;
        if (i == len) return cfg_fail_at(c, "", "--set %s: the key path ends with '.'", given);
      }
      continue;
    }
    size_t j = i;
    while (j < len && text[j] != '.' && text[j] != '[') j++;
    if (j == i) return cfg_fail_at(c, "", "--set %s: empty key in the key path", given);
    if (j - i >= sizeof steps[n].key) return cfg_fail_at(c, "", "--set %s: key too long", given);
    memcpy(steps[n].key, text + i, j - i);
    steps[n].key[j - i] = '\0';
    steps[n].index = -1;
    clen += (size_t)snprintf(canon + clen, canon_cap - clen, "%s%s", n ? "." : "", steps[n].key);
    if (clen >= canon_cap) return cfg_fail_at(c, "", "--set %s: key path too long", given);
    n++;
    i = j;
    if (i < len && text[i] == '.') {
      i++;
      if (i == len) return cfg_fail_at(c, "", "--set %s: the key path ends with '.'", given);
    }
  }
  if (n == 0) return cfg_fail_at(c, "", "--set %s: empty key path (expected dotted.key=value)", given);
  *n_steps = n;
  return FG_OK;
}

/* Copies node `index` of `src` (and everything below it) into `dst`; the new node's id, or 0. */
static int copy_node(yaml_document_t *dst, yaml_document_t *src, int index, int depth) {
  yaml_node_t *n = yaml_document_get_node(src, index);
  if (!n || depth > FG_CFG_MAX_DEPTH) return 0;
  switch (n->type) {
    case YAML_SCALAR_NODE:
      return yaml_document_add_scalar(dst, n->tag, n->data.scalar.value, (int)n->data.scalar.length,
                                      n->data.scalar.style);
    case YAML_SEQUENCE_NODE: {
      int seq = yaml_document_add_sequence(dst, n->tag, YAML_BLOCK_SEQUENCE_STYLE);
      if (!seq) return 0;
      size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
      for (size_t i = 0; i < count; i++) {
        n = yaml_document_get_node(src, index);
        int item = copy_node(dst, src, n->data.sequence.items.start[i], depth + 1);
        if (!item || !yaml_document_append_sequence_item(dst, seq, item)) return 0;
      }
      return seq;
    }
    case YAML_MAPPING_NODE: {
      int map = yaml_document_add_mapping(dst, n->tag, YAML_BLOCK_MAPPING_STYLE);
      if (!map) return 0;
      size_t count = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
      for (size_t i = 0; i < count; i++) {
        n = yaml_document_get_node(src, index);
        yaml_node_pair_t pair = n->data.mapping.pairs.start[i];
        int k = copy_node(dst, src, pair.key, depth + 1);
        int v = k ? copy_node(dst, src, pair.value, depth + 1) : 0;
        if (!v || !yaml_document_append_mapping_pair(dst, map, k, v)) return 0;
      }
      return map;
    }
    default: return 0;
  }
}

/* Parses the value of an override as a YAML document and copies it into `doc`. */
static fg_status parse_set_value(cfg_ctx *c, yaml_document_t *doc, const char *value,
                                 const char *given, int *node_out) {
  yaml_parser_t parser;
  yaml_document_t vdoc;
  if (!yaml_parser_initialize(&parser)) return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, (const unsigned char *)value, strlen(value));
  if (!yaml_parser_load(&parser, &vdoc)) {
    fg_status st = cfg_fail_at(c, "", "--set %s: malformed value: %s", given,
                               parser.problem ? parser.problem : "YAML syntax error");
    yaml_parser_delete(&parser);
    return st;
  }
  yaml_parser_delete(&parser);
  fg_status st = FG_OK;
  if (!yaml_document_get_root_node(&vdoc)) {
    st = cfg_fail_at(c, "", "--set %s: no value after '='", given);
  } else {
    *node_out = copy_node(doc, &vdoc, 1, 0);
    if (!*node_out) st = cfg_fail_at(c, "", "--set %s: value too deeply nested or out of memory", given);
  }
  yaml_document_delete(&vdoc);
  return st;
}

static int add_plain_key(yaml_document_t *doc, const char *key) {
  return yaml_document_add_scalar(doc, NULL, (const yaml_char_t *)key, (int)strlen(key),
                                  YAML_PLAIN_SCALAR_STYLE);
}

/* Applies one "dotted.key=value" to the tree; missing mapping keys along the path are created. */
static fg_status apply_set(cfg_ctx *c, yaml_document_t *doc, int k) {
  const char *given = c->set[k];
  const char *eq = given ? strchr(given, '=') : NULL;
  if (!eq) return cfg_fail_at(c, "", "--set '%s': expected dotted.key=value", given ? given : "");
  set_step steps[FG_SET_MAX_STEPS];
  int n_steps = 0;
  char canon[FG_CFG_PATH_CAP];
  FG_TRY(parse_set_path(c, given, (size_t)(eq - given), given, steps, &n_steps, canon, sizeof canon));
  c->set_paths[k] = dup_string(canon);
  if (!c->set_paths[k]) return FG_FAIL(FG_ERR_OOM, "out of memory");
  int value = 0;
  FG_TRY(parse_set_value(c, doc, eq + 1, given, &value));

  int cur = 1; /* the root mapping */
  char at[FG_CFG_PATH_CAP] = "";
  size_t at_len = 0;
  for (int s = 0; s < n_steps; s++) {
    const set_step *st = &steps[s];
    int last = s == n_steps - 1;
    yaml_node_t *node = yaml_document_get_node(doc, cur);
    if (st->index >= 0) {
      if (node->type != YAML_SEQUENCE_NODE)
        return cfg_fail_at(c, "", "--set %s: %s is not a list", given, at);
      long count = (long)(node->data.sequence.items.top - node->data.sequence.items.start);
      if (st->index >= count)
        return cfg_fail_at(c, "", "--set %s: %s has %ld entries (index %ld is out of range)", given,
                           at, count, st->index);
      if (last) {
        node->data.sequence.items.start[st->index] = value;
        return FG_OK;
      }
      cur = node->data.sequence.items.start[st->index];
      at_len += (size_t)snprintf(at + at_len, sizeof at - at_len, "[%ld]", st->index);
      continue;
    }
    if (node->type != YAML_MAPPING_NODE)
      return cfg_fail_at(c, "", "--set %s: %s is not a mapping", given, at_len ? at : "the top level");
    long pair = mapping_find(doc, node, st->key);
    if (pair >= 0) {
      yaml_node_pair_t *p = &node->data.mapping.pairs.start[pair];
      if (last) {
        p->value = value;
        return FG_OK;
      }
      yaml_node_t *child = yaml_document_get_node(doc, p->value);
      if (scalar_is_null(child) && steps[s + 1].index < 0) {
        /* "local:" with nothing under it: a mapping to put the key in */
        int map = yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
        if (!map) return FG_FAIL(FG_ERR_OOM, "out of memory");
        node = yaml_document_get_node(doc, cur);
        node->data.mapping.pairs.start[pair].value = map;
        cur = map;
      } else {
        cur = p->value;
      }
    } else {
      if (!last && steps[s + 1].index >= 0)
        return cfg_fail_at(c, "", "--set %s: there is no list %s%s%s to index", given, at,
                           at_len ? "." : "", st->key);
      int key = add_plain_key(doc, st->key);
      int child = last ? value : yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE);
      if (!key || !child || !yaml_document_append_mapping_pair(doc, cur, key, child))
        return FG_FAIL(FG_ERR_OOM, "out of memory");
      if (last) return FG_OK;
      cur = child;
    }
    at_len += (size_t)snprintf(at + at_len, sizeof at - at_len, "%s%s", at_len ? "." : "", st->key);
    if (at_len >= sizeof at) at_len = sizeof at - 1;
  }
  return FG_OK;
}

/* ---- parsing and emitting the tree -------------------------------------------------------- */

static fg_status parse_document(cfg_ctx *c, const unsigned char *text, size_t len, yaml_document_t *doc) {
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create a parser");
  yaml_parser_set_input_string(&parser, text, len);
  if (!yaml_parser_load(&parser, doc)) {
    yaml_mark_t m = parser.problem_mark;
    char context[160] = "";
    if (parser.context)
      snprintf(context, sizeof context, " %s started at line %zu", parser.context, parser.context_mark.line + 1);
    fg_status st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s%s", c->file, m.line + 1,
                           m.column + 1, parser.problem ? parser.problem : "syntax error", context);
    yaml_parser_delete(&parser);
    return st;
  }
  /* a second document in the stream is a mistake (e.g. a stray "---") */
  yaml_document_t extra;
  int ok = yaml_parser_load(&parser, &extra);
  int more = ok && yaml_document_get_root_node(&extra) != NULL;
  yaml_mark_t m = ok ? extra.start_mark : parser.problem_mark;
  if (ok) yaml_document_delete(&extra);
  fg_status st = FG_OK;
  if (!ok)
    st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu:%zu: malformed YAML: %s", c->file, m.line + 1, m.column + 1,
                 parser.problem ? parser.problem : "syntax error");
  else if (more)
    st = FG_FAIL(FG_ERR_CONFIG, "%s:%zu: a second YAML document (expected one)", c->file, m.line + 1);
  yaml_parser_delete(&parser);
  if (st != FG_OK) {
    yaml_document_delete(doc);
    return st;
  }
  yaml_node_t *root = yaml_document_get_root_node(doc);
  if (!root) {
    /* an empty file: start from an empty mapping (the missing keys are reported by name) */
    if (!yaml_document_add_mapping(doc, NULL, YAML_BLOCK_MAPPING_STYLE)) {
      yaml_document_delete(doc);
      return FG_FAIL(FG_ERR_OOM, "out of memory");
    }
  } else if (root->type != YAML_MAPPING_NODE) {
    char got[96];
    describe_node(root, got, sizeof got);
    yaml_document_delete(doc);
    return FG_FAIL(FG_ERR_CONFIG, "%s: expected a mapping of keys at the top level, got %s", c->file, got);
  }
  return FG_OK;
}

typedef struct text_buf {
  unsigned char *data;
  size_t len, cap;
} text_buf;

static int buf_write(void *ctx, unsigned char *bytes, size_t size) {
  text_buf *b = ctx;
  if (b->len + size + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + size + 1) cap *= 2;
    unsigned char *p = realloc(b->data, cap);
    if (!p) return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, bytes, size);
  b->len += size;
  return 1;
}

/* Emits the tree as YAML text; the document is consumed. */
static fg_status emit_document(yaml_document_t *doc, text_buf *out) {
  yaml_emitter_t em;
  if (!yaml_emitter_initialize(&em)) {
    yaml_document_delete(doc);
    return FG_FAIL(FG_ERR_OOM, "libyaml: cannot create an emitter");
  }
  yaml_emitter_set_output(&em, buf_write, out);
  yaml_emitter_set_width(&em, -1);
  yaml_emitter_set_unicode(&em, 1);
  int ok = yaml_emitter_open(&em) && yaml_emitter_dump(&em, doc) && yaml_emitter_close(&em) &&
           yaml_emitter_flush(&em);
  fg_status st = ok ? FG_OK
                    : FG_FAIL(FG_ERR_INTERNAL, "libyaml: cannot emit the configuration: %s",
                              em.problem ? em.problem : "unknown error");
  if (!ok) yaml_document_delete(doc); /* a no-op once dumped */
  yaml_emitter_delete(&em);
  return st;
}

/* ---- libcyaml ----------------------------------------------------------------------------- */

static void cyaml_capture(cyaml_log_t level, void *ctx, const char *fmt, va_list args) {
  (void)level;
  cfg_ctx *c = ctx;
  if (c->log_len + 1 >= sizeof c->log) return;
  int n = vsnprintf(c->log + c->log_len, sizeof c->log - c->log_len, fmt, args);
  if (n > 0) c->log_len += (size_t)n < sizeof c->log - c->log_len ? (size_t)n : sizeof c->log - c->log_len - 1;
}

static cyaml_config_t cyaml_settings(cfg_ctx *c) {
  return (cyaml_config_t){.log_fn = cyaml_capture,
                          .log_ctx = c,
                          .mem_fn = cyaml_mem,
                          .log_level = CYAML_LOG_ERROR,
                          .flags = CYAML_CFG_DEFAULT};
}

/* libcyaml's message and backtrace ("in mapping field 'lr'", "in sequence entry '2'", innermost
 * first) as "key.path: message". */
static fg_status cyaml_failure(cfg_ctx *c, cyaml_err_t err) {
  char message[256] = "";
  char entries[16][96];
  int n_entries = 0;
  char *save = NULL;
  for (char *line = strtok_r(c->log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    const char *field = strstr(line, "in mapping field '");
    const char *entry = strstr(line, "in sequence entry '");
    if (field && n_entries < 16) {
      field += strlen("in mapping field '");
      const char *end = strchr(field, '\'');
      snprintf(entries[n_entries++], sizeof entries[0], ".%.*s", end ? (int)(end - field) : 0, field);
    } else if (entry && n_entries < 16) {
      long k = strtol(entry + strlen("in sequence entry '"), NULL, 10);
      snprintf(entries[n_entries++], sizeof entries[0], "[%ld]", k > 0 ? k - 1 : 0); /* 1-based */
    } else if (!message[0] && !strstr(line, "Backtrace")) {
      const char *m = strncmp(line, "Load: ", 6) == 0 ? line + 6 : line;
      snprintf(message, sizeof message, "%s", m);
    }
  }
  char path[FG_CFG_PATH_CAP] = "";
  size_t len = 0;
  for (int i = n_entries - 1; i >= 0 && len < sizeof path; i--) {
    const char *e = entries[i];
    if (len == 0 && e[0] == '.') e++;
    len += (size_t)snprintf(path + len, sizeof path - len, "%s", e);
  }
  return cfg_fail_at(c, path, "%s (libcyaml: %s)", message[0] ? message : "rejected", cyaml_strerror(err));
}

/* ---- conversion and checks ---------------------------------------------------------------- */

static fg_status check_int(cfg_ctx *c, const char *path, long long v, long long lo, long long hi) {
  if (v >= lo && v <= hi) return FG_OK;
  if (hi == LLONG_MAX) return cfg_fail_at(c, path, "%lld is out of range (expected >= %lld)", v, lo);
  return cfg_fail_at(c, path, "%lld is out of range (expected %lld..%lld)", v, lo, hi);
}

/* v in [lo, hi] with either end open; an infinite end is unbounded. */
static fg_status check_real(cfg_ctx *c, const char *path, double v, double lo, int lo_open, double hi,
                            int hi_open) {
  int ok = isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return FG_OK;
  char range[64];
  if (isinf(hi)) snprintf(range, sizeof range, "%s %g", lo_open ? ">" : ">=", lo);
  else snprintf(range, sizeof range, "in %s%g, %g%s", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
  return cfg_fail_at(c, path, "%g is out of range (expected %s)", v, range);
}

#define DUP_OR_OOM(dst, src)                                               \
  do {                                                                     \
    if (!((dst) = dup_string(src))) return FG_FAIL(FG_ERR_OOM, "out of memory"); \
  } while (0)

typedef struct config_storage {
  fg_budget_tier *tiers;
  fg_budget_profile *profiles; /* names are heap strings owned here */
  int n_profiles;
} config_storage;

static fg_status convert_partition(cfg_ctx *c, const raw_partition *r, fg_config *cfg) {
  fg_partition_spec *p = &cfg->partition;
  p->kind = r && r->kind ? *r->kind : FG_PARTITION_IID;
  p->alpha = r && r->alpha ? *r->alpha : 0.5;
  p->min_size = r && r->min_size ? *r->min_size : 10;
  p->classes_per_client = r && r->classes_per_client ? *r->classes_per_client : 2;
  FG_TRY(check_real(c, "data.partition.alpha", p->alpha, 0, 1, INFINITY, 0));
  FG_TRY(check_int(c, "data.partition.min_size", p->min_size, 0, LLONG_MAX));
  return check_int(c, "data.partition.classes_per_client", p->classes_per_client, 1, LLONG_MAX);
}

/* data.pool and data.local_test: a pool keeps no global test set, so it needs local test splits. */
static fg_status convert_local_split(cfg_ctx *c, const raw_data *r, fg_config *cfg) {
  cfg->pool = r->pool ? (*r->pool != 0) : 0;
  cfg->local_test = r->local_test ? *r->local_test : 0;
  FG_TRY(check_real(c, "data.local_test", cfg->local_test, 0, 0, 1, 1));
  if (cfg->pool && cfg->local_test <= 0)
    return cfg_fail_at(c, "data.pool",
                       "true needs data.local_test > 0 (the pool keeps no global test set: the clients' local "
                       "test splits are the only test data)");
  return FG_OK;
}

/* eval.protocol: by default local exactly when there are local test splits. */
static fg_status convert_eval_protocol(cfg_ctx *c, const raw_eval *e, fg_config *cfg) {
  int given = e && e->protocol;
  cfg->eval_protocol = given ? *e->protocol : cfg->local_test > 0 ? FG_EVAL_LOCAL : FG_EVAL_GLOBAL;
  if (cfg->eval_protocol == FG_EVAL_LOCAL && cfg->local_test <= 0)
    return cfg_fail_at(c, "eval.protocol", "local needs data.local_test > 0 (the clients' local test splits)");
  if (cfg->eval_protocol == FG_EVAL_GLOBAL && cfg->pool)
    return cfg_fail_at(c, "eval.protocol",
                       "global needs the dataset's test split, which data.pool: true puts into the training "
                       "pool (expected local)");
  return FG_OK;
}

static fg_status convert_data_model(cfg_ctx *c, const raw_top *r, fg_config *cfg) {
  if (!fg_dataset_info_find(r->data->dataset))
    return cfg_fail_at(c, "data.dataset", "unknown dataset '%.60s' (expected one of: %s)", r->data->dataset,
                       fg_dataset_names());
  DUP_OR_OOM(cfg->dataset, r->data->dataset);
  if (r->data->dir) DUP_OR_OOM(cfg->data_dir, r->data->dir);
  cfg->augment = r->data->augment ? (*r->data->augment != 0) : -1;
  FG_TRY(convert_partition(c, r->data->partition, cfg));
  FG_TRY(convert_local_split(c, r->data, cfg));

  if (fg_model_block_count(r->model->arch) <= 0)
    return cfg_fail_at(c, "model.arch", "unknown architecture '%.60s' (expected one of: %s)",
                       r->model->arch, fg_model_arch_list());
  DUP_OR_OOM(cfg->arch, r->model->arch);
  if (r->model->width) {
    cfg->width = *r->model->width;
    FG_TRY(check_real(c, "model.width", cfg->width, 0, 1, INFINITY, 0));
  } else {
    cfg->width = fg_model_width(&(fg_model_spec){.arch = cfg->arch});
  }
  return FG_OK;
}

/* A key of budgets that the kind does not use, or a missing one it needs. */
static fg_status budget_keys(cfg_ctx *c, const raw_budgets *b, fg_budget_kind kind) {
  static const char *const names[] = {"mib", "min_mib", "max_mib", "tiers", "profiles"};
  const int present[] = {b->mib != NULL, b->min_mib != NULL, b->max_mib != NULL, b->n_tiers > 0,
                         b->n_profiles > 0};
  const int needed[][5] = {[FG_BUDGET_NONE] = {0, 0, 0, 0, 0},
                           [FG_BUDGET_FIXED] = {1, 0, 0, 0, 0},
                           [FG_BUDGET_UNIFORM] = {0, 1, 1, 0, 0},
                           [FG_BUDGET_TIERS] = {0, 0, 0, 1, 0},
                           [FG_BUDGET_PROFILES] = {0, 0, 0, 0, 1}};
  const char *kind_name = budget_kinds[kind].str;
  char path[64];
  for (int i = 0; i < 5; i++) {
    snprintf(path, sizeof path, "clients.budgets.%s", names[i]);
    if (present[i] && !needed[kind][i])
      return cfg_fail_at(c, path, "not used with budgets kind %s (remove it, or change the kind)", kind_name);
    if (!present[i] && needed[kind][i])
      return cfg_fail_at(c, path, "required key is missing (budgets kind %s needs it)", kind_name);
  }
  return FG_OK;
}

static fg_status check_shares(cfg_ctx *c, const char *list, double sum) {
  if (fabs(sum - 1.0) <= 1e-6) return FG_OK;
  char path[64];
  snprintf(path, sizeof path, "clients.budgets.%s", list);
  return cfg_fail_at(c, path, "the shares sum to %.9g (expected 1)", sum);
}

static fg_status convert_budgets(cfg_ctx *c, const raw_budgets *b, fg_config *cfg, config_storage *store) {
  fg_budget_spec *s = &cfg->budgets;
  s->kind = b && b->kind ? *b->kind : FG_BUDGET_NONE;
  if (!b) return FG_OK;
  FG_TRY(budget_keys(c, b, s->kind));
  char path[96];
  switch (s->kind) {
    case FG_BUDGET_NONE: return FG_OK;
    case FG_BUDGET_FIXED:
      s->mib = *b->mib;
      return check_real(c, "clients.budgets.mib", s->mib, 0, 1, INFINITY, 0);
    case FG_BUDGET_UNIFORM:
      s->min_mib = *b->min_mib;
      s->max_mib = *b->max_mib;
      FG_TRY(check_real(c, "clients.budgets.min_mib", s->min_mib, 0, 1, INFINITY, 0));
      FG_TRY(check_real(c, "clients.budgets.max_mib", s->max_mib, 0, 1, INFINITY, 0));
      if (s->max_mib < s->min_mib)
        return cfg_fail_at(c, "clients.budgets.max_mib", "%g is below min_mib %g (expected >= min_mib)",
                           s->max_mib, s->min_mib);
      return FG_OK;
    case FG_BUDGET_TIERS: {
      store->tiers = calloc(b->n_tiers, sizeof *store->tiers);
      if (!store->tiers) return FG_FAIL(FG_ERR_OOM, "out of memory");
      double sum = 0;
      for (unsigned i = 0; i < b->n_tiers; i++) {
        snprintf(path, sizeof path, "clients.budgets.tiers[%u].fraction", i);
        FG_TRY(check_real(c, path, b->tiers[i].fraction, 0, 1, INFINITY, 0));
        snprintf(path, sizeof path, "clients.budgets.tiers[%u].share", i);
        FG_TRY(check_real(c, path, b->tiers[i].share, 0, 1, 1, 0));
        store->tiers[i] = (fg_budget_tier){b->tiers[i].fraction, b->tiers[i].share};
        sum += b->tiers[i].share;
      }
      s->tiers = store->tiers;
      s->n_tiers = (int)b->n_tiers;
      return check_shares(c, "tiers", sum);
    }
    case FG_BUDGET_PROFILES: {
      store->profiles = calloc(b->n_profiles, sizeof *store->profiles);
      if (!store->profiles) return FG_FAIL(FG_ERR_OOM, "out of memory");
      double sum = 0;
      for (unsigned i = 0; i < b->n_profiles; i++) {
        /* the name is checked against the known profiles by fl/budget.c */
        snprintf(path, sizeof path, "clients.budgets.profiles[%u].share", i);
        FG_TRY(check_real(c, path, b->profiles[i].share, 0, 1, 1, 0));
        char *name = dup_string(b->profiles[i].name);
        if (!name) return FG_FAIL(FG_ERR_OOM, "out of memory");
        store->profiles[i] = (fg_budget_profile){name, b->profiles[i].share};
        store->n_profiles = (int)i + 1;
        sum += b->profiles[i].share;
      }
      s->profiles = store->profiles;
      s->n_profiles = (int)b->n_profiles;
      return check_shares(c, "profiles", sum);
    }
  }
  return FG_OK;
}

static fg_status convert_sampling(cfg_ctx *c, const raw_sampling *r, fg_config *cfg) {
  fg_sampling_spec *s = &cfg->sampling;
  s->kind = r && r->kind ? *r->kind : FG_SAMPLE_UNIFORM;
  if (r && r->per_round && r->fraction)
    return cfg_fail_at(c, "sampling.fraction", "given together with sampling.per_round (give one of them)");
  if (r && r->per_round) {
    s->per_round = *r->per_round;
    s->fraction = 0;
    if (s->per_round < 1) return check_int(c, "sampling.per_round", s->per_round, 1, LLONG_MAX);
    if (s->per_round > cfg->clients)
      return cfg_fail_at(c, "sampling.per_round", "%d is out of range (expected at most clients.count, %d)",
                         s->per_round, cfg->clients);
    return FG_OK;
  }
  s->per_round = 0;
  s->fraction = r && r->fraction ? *r->fraction : 0.1;
  return check_real(c, "sampling.fraction", s->fraction, 0, 1, 1, 0);
}

static fg_status convert_training(cfg_ctx *c, const raw_top *r, fg_config *cfg) {
  const raw_local *l = r->local;
  cfg->local_epochs = l && l->epochs ? *l->epochs : 1;
  cfg->local_batch = l && l->batch ? *l->batch : 64;
  DUP_OR_OOM(cfg->optimizer, optimizers[l && l->optimizer ? *l->optimizer : 0].str);
  cfg->lr = l && l->lr ? *l->lr : 0.01;
  cfg->lr_decay = l && l->lr_decay ? *l->lr_decay : 1;
  cfg->momentum = l && l->momentum ? *l->momentum : 0;
  cfg->weight_decay = l && l->weight_decay ? *l->weight_decay : 0;
  DUP_OR_OOM(cfg->mode, modes[l && l->mode ? *l->mode : 0].str);
  FG_TRY(check_int(c, "local.epochs", cfg->local_epochs, 1, LLONG_MAX));
  FG_TRY(check_int(c, "local.batch", cfg->local_batch, 1, LLONG_MAX));
  FG_TRY(check_real(c, "local.lr", cfg->lr, 0, 0, INFINITY, 0));
  FG_TRY(check_real(c, "local.lr_decay", cfg->lr_decay, 0, 1, 1, 0));
  FG_TRY(check_real(c, "local.momentum", cfg->momentum, 0, 0, 1, 1));
  FG_TRY(check_real(c, "local.weight_decay", cfg->weight_decay, 0, 0, INFINITY, 0));

  const raw_eval *e = r->eval;
  cfg->eval_every = e && e->every ? *e->every : 1;
  cfg->eval_batch = e && e->batch ? *e->batch : 256;
  cfg->eval_max_samples = e && e->max_samples ? *e->max_samples : 0;
  FG_TRY(check_int(c, "eval.every", cfg->eval_every, 1, LLONG_MAX));
  FG_TRY(check_int(c, "eval.batch", cfg->eval_batch, 1, LLONG_MAX));
  FG_TRY(check_int(c, "eval.max_samples", cfg->eval_max_samples, 0, LLONG_MAX));
  FG_TRY(convert_eval_protocol(c, e, cfg));

  cfg->checkpoint_every = r->checkpoint && r->checkpoint->every ? *r->checkpoint->every : 10;
  return check_int(c, "checkpoint.every", cfg->checkpoint_every, 0, LLONG_MAX);
}

/* Which options a raw method entry gives. */
static option_set method_options_given(const raw_method *m) {
  option_set o = 0;
  if (m->n_rates) o |= OPT_RATES;
  if (m->scaler) o |= OPT_SCALER;
  if (m->sbn) o |= OPT_SBN;
  if (m->label_mask) o |= OPT_LABEL_MASK;
  if (m->rolling) o |= OPT_ROLLING;
  if (m->kd) o |= OPT_KD;
  if (m->kd_ramp_rounds) o |= OPT_KD_RAMP_ROUNDS;
  if (m->n_widths) o |= OPT_WIDTHS;
  if (m->n_exits) o |= OPT_EXITS;
  if (m->kd_gamma) o |= OPT_KD_GAMMA;
  if (m->kd_temperature) o |= OPT_KD_TEMPERATURE;
  if (m->kd_start) o |= OPT_KD_START;
  if (m->schedule) o |= OPT_SCHEDULE;
  if (m->n_stage_rounds) o |= OPT_STAGE_ROUNDS;
  if (m->advance) o |= OPT_ADVANCE;
  if (m->em_threshold) o |= OPT_EM_THRESHOLD;
  if (m->em_window) o |= OPT_EM_WINDOW;
  if (m->em_every) o |= OPT_EM_EVERY;
  if (m->em_samples) o |= OPT_EM_SAMPLES;
  if (m->n_lambdas) o |= OPT_LAMBDAS;
  if (m->n_gammas) o |= OPT_GAMMAS;
  if (m->hsic_sigma) o |= OPT_HSIC_SIGMA;
  if (m->mentor) o |= OPT_MENTOR;
  if (m->harmonizer) o |= OPT_HARMONIZER;
  if (m->frozen_bn) o |= OPT_FROZEN_BN;
  if (m->output_module) o |= OPT_OUTPUT_MODULE;
  if (m->levels) o |= OPT_LEVELS;
  if (m->hypernet) o |= OPT_HYPERNET;
  if (m->rank) o |= OPT_RANK;
  if (m->hn_epochs) o |= OPT_HN_EPOCHS;
  if (m->lr) o |= OPT_LR;
  if (m->compat) o |= OPT_COMPAT;
  return o;
}

/* The lowest option of a non-empty set, as a bit index (into option_names). */
static int first_option(option_set set) {
  int b = 0;
  while (!(set & (UINT64_C(1) << b))) b++;
  return b;
}

static void method_takes(option_set options, char *out, size_t cap) {
  size_t len = (size_t)snprintf(out, cap, "weighting");
  for (int b = 0; b < OPT_COUNT && len < cap; b++)
    if (options & (UINT64_C(1) << b)) len += (size_t)snprintf(out + len, cap - len, ", %s", option_names[b]);
}

static fg_status check_rates(cfg_ctx *c, const char *where, const double *rates, int n) {
  char path[96];
  for (int i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s.rates[%d]", where, i);
    FG_TRY(check_real(c, path, rates[i], 0, 1, 1, 0));
    if (i > 0 && !(rates[i] < rates[i - 1]))
      return cfg_fail_at(c, path, "%g is not below the previous rate %g (rates must be strictly descending)",
                         rates[i], rates[i - 1]);
  }
  return FG_OK;
}

static fg_status check_scalefl(cfg_ctx *c, const char *where, const fg_method_config *m, int n_widths,
                               int n_exits) {
  char path[96];
  if (n_widths != n_exits) {
    snprintf(path, sizeof path, "%s.exits", where);
    return cfg_fail_at(c, path, "%d entries but widths has %d (expected one exit count per width)", n_exits,
                       n_widths);
  }
  for (int i = 0; i < m->n_scalefl_levels; i++) {
    snprintf(path, sizeof path, "%s.widths[%d]", where, i);
    FG_TRY(check_real(c, path, m->widths[i], 0, 1, 1, 0));
    snprintf(path, sizeof path, "%s.exits[%d]", where, i);
    if (i == 0) FG_TRY(check_int(c, path, m->exits[i], 1, LLONG_MAX));
    else if (m->exits[i] <= m->exits[i - 1])
      return cfg_fail_at(c, path, "%d is not above the previous exits %d (exits must be strictly increasing)",
                         m->exits[i], m->exits[i - 1]);
  }
  snprintf(path, sizeof path, "%s.kd_gamma", where);
  FG_TRY(check_real(c, path, m->kd_gamma, 0, 0, INFINITY, 0));
  snprintf(path, sizeof path, "%s.kd_temperature", where);
  FG_TRY(check_real(c, path, m->kd_temperature, 0, 1, INFINITY, 0));
  snprintf(path, sizeof path, "%s.kd_start", where);
  return check_real(c, path, m->kd_start, 0, 0, 1, 0);
}

/* What a neulite option given for a schedule / advance that does not use it needs. */
static const char *neulite_needs(option_set option) {
  if (option & OPT_NEULITE_ROUNDS) return "schedule sequential with advance rounds";
  if (option & OPT_NEULITE_MOVEMENT) return "schedule sequential with advance movement";
  return "schedule sequential";
}

/* A per-stage list of neulite: one entry per stage (block) of the model, when given. */
static fg_status check_stage_count(cfg_ctx *c, const char *where, const char *key, int n, const char *arch,
                                   int stages) {
  if (n == 0 || n == stages) return FG_OK;
  char path[96];
  snprintf(path, sizeof path, "%s.%s", where, key);
  return cfg_fail_at(c, path, "%d entries but model %s has %d stages (expected %d, one per block)", n, arch,
                     stages, stages);
}

/* neulite's options: every scalar gets its default; a key that the entry's schedule / advance does
 * not use is an error; the per-stage lists hold one entry per block of `arch`. */
static fg_status convert_neulite(cfg_ctx *c, const char *where, const raw_method *r, const char *arch,
                                 fg_method_config *m) {
  char path[96];
  int schedule = r->schedule ? *r->schedule : SCHEDULE_ROUNDROBIN;
  int advance = r->advance ? *r->advance : ADVANCE_ROUNDS;
  DUP_OR_OOM(m->schedule, schedules[schedule].str);
  DUP_OR_OOM(m->advance, advances[advance].str);
  DUP_OR_OOM(m->frozen_bn, frozen_bns[r->frozen_bn ? *r->frozen_bn : 0].str);
  DUP_OR_OOM(m->output_module, output_modules[r->output_module ? *r->output_module : 0].str);

  option_set given = method_options_given(r), unused;
  char has[64];
  if (schedule != SCHEDULE_SEQUENTIAL) {
    unused = given & OPT_NEULITE_SEQUENTIAL;
    snprintf(has, sizeof has, "schedule %s", schedules[schedule].str);
  } else {
    unused = given & (advance == ADVANCE_ROUNDS ? OPT_NEULITE_MOVEMENT : OPT_NEULITE_ROUNDS);
    snprintf(has, sizeof has, "advance %s", advances[advance].str);
  }
  if (unused) {
    int b = first_option(unused);
    snprintf(path, sizeof path, "%s.%s", where, option_names[b]);
    return cfg_fail_at(c, path, "used only with %s (this entry has %s; remove it, or change %s)",
                       neulite_needs(UINT64_C(1) << b), has, schedule != SCHEDULE_SEQUENTIAL ? "the schedule" : "advance");
  }

  int stages = fg_model_block_count(arch);
  FG_TRY(check_stage_count(c, where, "stage_rounds", (int)r->n_stage_rounds, arch, stages));
  FG_TRY(check_stage_count(c, where, "lambdas", (int)r->n_lambdas, arch, stages));
  FG_TRY(check_stage_count(c, where, "gammas", (int)r->n_gammas, arch, stages));
  m->n_stage_rounds = (int)r->n_stage_rounds;
  for (int i = 0; i < m->n_stage_rounds; i++) {
    m->stage_rounds[i] = r->stage_rounds[i];
    snprintf(path, sizeof path, "%s.stage_rounds[%d]", where, i);
    FG_TRY(check_int(c, path, m->stage_rounds[i], 1, LLONG_MAX));
  }
  m->n_lambdas = (int)r->n_lambdas;
  for (int i = 0; i < m->n_lambdas; i++) {
    m->lambdas[i] = r->lambdas[i];
    snprintf(path, sizeof path, "%s.lambdas[%d]", where, i);
    FG_TRY(check_real(c, path, m->lambdas[i], 0, 0, INFINITY, 0));
  }
  m->n_gammas = (int)r->n_gammas;
  for (int i = 0; i < m->n_gammas; i++) {
    m->gammas[i] = r->gammas[i];
    snprintf(path, sizeof path, "%s.gammas[%d]", where, i);
    FG_TRY(check_real(c, path, m->gammas[i], 0, 0, INFINITY, 0));
  }

  m->em_threshold = r->em_threshold ? *r->em_threshold : 0.1;
  m->em_window = r->em_window ? *r->em_window : 6;
  m->em_every = r->em_every ? *r->em_every : 10;
  m->em_samples = r->em_samples ? *r->em_samples : 10000;
  m->hsic_sigma = r->hsic_sigma ? *r->hsic_sigma : 5;
  m->mentor = r->mentor ? *r->mentor != 0 : 1;
  m->harmonizer = r->harmonizer ? *r->harmonizer != 0 : 1;
  snprintf(path, sizeof path, "%s.em_threshold", where);
  FG_TRY(check_real(c, path, m->em_threshold, 0, 1, 1, 0));
  snprintf(path, sizeof path, "%s.em_window", where);
  FG_TRY(check_int(c, path, m->em_window, 2, LLONG_MAX));
  snprintf(path, sizeof path, "%s.em_every", where);
  FG_TRY(check_int(c, path, m->em_every, 1, LLONG_MAX));
  snprintf(path, sizeof path, "%s.em_samples", where);
  FG_TRY(check_int(c, path, m->em_samples, 1, LLONG_MAX));
  snprintf(path, sizeof path, "%s.hsic_sigma", where);
  return check_real(c, path, m->hsic_sigma, 0, 1, INFINITY, 0);
}

/* hypemefed and multiexit: exit levels and local Adam; hypemefed's hypernetworks. */
static fg_status convert_multiexit(cfg_ctx *c, const char *where, const raw_method *r, option_set options,
                                   fg_method_config *m) {
  char path[96];
  DUP_OR_OOM(m->levels, level_rules[r->levels ? *r->levels : 0].str);
  m->lr = r->lr ? *r->lr : 5e-4;
  snprintf(path, sizeof path, "%s.lr", where);
  FG_TRY(check_real(c, path, m->lr, 0, 1, INFINITY, 0));
  if (!(options & OPT_HYPERNET)) return FG_OK;
  DUP_OR_OOM(m->hypernet, hypernets[r->hypernet ? *r->hypernet : 0].str);
  m->rank = r->rank ? *r->rank : 100;
  m->hn_epochs = r->hn_epochs ? *r->hn_epochs : 25;
  m->compat = 0;
  for (unsigned i = 0; i < r->n_compat; i++) m->compat |= r->compat[i];
  snprintf(path, sizeof path, "%s.rank", where);
  FG_TRY(check_int(c, path, m->rank, 1, LLONG_MAX));
  snprintf(path, sizeof path, "%s.hn_epochs", where);
  return check_int(c, path, m->hn_epochs, 1, LLONG_MAX);
}

/* One method entry; `where` is "method" or "methods[i]"; `arch` is the model's (known by now). */
static fg_status convert_method(cfg_ctx *c, const char *where, const raw_method *r, const char *arch,
                                fg_method_config *m) {
  const method_info *info = &methods_info[r->name];
  const char *name = method_names[r->name].str;
  DUP_OR_OOM(m->name, name);
  option_set extra = method_options_given(r) & ~info->options;
  if (extra) {
    int b = first_option(extra);
    char path[96], takes[256];
    snprintf(path, sizeof path, "%s.%s", where, option_names[b]);
    method_takes(info->options, takes, sizeof takes);
    return cfg_fail_at(c, path, "method %s does not take '%s' (it takes: %s)", name, option_names[b], takes);
  }
  m->weighting = r->weighting ? *r->weighting : info->weighting;
  if (info->options & OPT_RATES) {
    const double *src = r->n_rates ? r->rates : default_rates;
    m->n_rates = r->n_rates ? (int)r->n_rates : (int)(sizeof default_rates / sizeof *default_rates);
    memcpy(m->rates, src, (size_t)m->n_rates * sizeof *src);
    FG_TRY(check_rates(c, where, m->rates, m->n_rates));
  }
  if (info->options & OPT_SCALER) m->scaler = r->scaler ? *r->scaler != 0 : 1;
  if (info->options & OPT_SBN) m->sbn = r->sbn ? *r->sbn != 0 : 1;
  if (info->options & OPT_LABEL_MASK) m->label_mask = r->label_mask ? *r->label_mask != 0 : 0;
  if (info->options & OPT_ROLLING) DUP_OR_OOM(m->rolling, rollings[r->rolling ? *r->rolling : 0].str);
  if (info->options & OPT_KD) m->kd = r->kd ? *r->kd != 0 : 1;
  if (info->options & OPT_KD_RAMP_ROUNDS) {
    m->kd_ramp_rounds = r->kd_ramp_rounds ? *r->kd_ramp_rounds : 300;
    char path[96];
    snprintf(path, sizeof path, "%s.kd_ramp_rounds", where);
    FG_TRY(check_int(c, path, m->kd_ramp_rounds, 0, LLONG_MAX));
  }
  if (info->options & OPT_WIDTHS) {
    int n_widths = r->n_widths ? (int)r->n_widths : 3;
    int n_exits = r->n_exits ? (int)r->n_exits : 3;
    for (int i = 0; i < n_widths; i++) m->widths[i] = r->n_widths ? r->widths[i] : default_widths[i];
    for (int i = 0; i < n_exits; i++) m->exits[i] = r->n_exits ? r->exits[i] : default_exits[i];
    m->n_scalefl_levels = n_widths < n_exits ? n_widths : n_exits;
    m->kd_gamma = r->kd_gamma ? *r->kd_gamma : 0.05;
    m->kd_temperature = r->kd_temperature ? *r->kd_temperature : 3;
    m->kd_start = r->kd_start ? *r->kd_start : 0.25;
    FG_TRY(check_scalefl(c, where, m, n_widths, n_exits));
  }
  if (info->options & OPT_SCHEDULE) FG_TRY(convert_neulite(c, where, r, arch, m));
  if (info->options & OPT_LEVELS) FG_TRY(convert_multiexit(c, where, r, info->options, m));
  return FG_OK;
}

static void base_name(const char *path, char **out) {
  const char *slash = strrchr(path, '/');
  const char *b = slash ? slash + 1 : path;
  size_t n = strlen(b);
  if (n > 5 && strcmp(b + n - 5, ".yaml") == 0) n -= 5;
  else if (n > 4 && strcmp(b + n - 4, ".yml") == 0) n -= 4;
  *out = malloc(n + 1);
  if (*out) {
    memcpy(*out, b, n);
    (*out)[n] = '\0';
  }
}

static fg_status convert(cfg_ctx *c, const raw_top *r, fg_config *cfg) {
  config_storage *store = calloc(1, sizeof *store);
  if (!store) return FG_FAIL(FG_ERR_OOM, "out of memory");
  cfg->storage = store;
  if (r->name) DUP_OR_OOM(cfg->name, r->name);
  else base_name(c->file, &cfg->name);
  if (!cfg->name) return FG_FAIL(FG_ERR_OOM, "out of memory");
  cfg->seed = r->seed ? *r->seed : 1;
  cfg->rounds = r->rounds;
  FG_TRY(check_int(c, "rounds", cfg->rounds, 1, 1000000));
  cfg->threads = r->threads ? *r->threads : 0;
  FG_TRY(check_int(c, "threads", cfg->threads, 0, 1024));
  FG_TRY(convert_data_model(c, r, cfg));
  cfg->clients = r->clients->count;
  FG_TRY(check_int(c, "clients.count", cfg->clients, 1, 1000000));
  FG_TRY(convert_budgets(c, r->clients->budgets, cfg, store));
  FG_TRY(convert_sampling(c, r->sampling, cfg));
  FG_TRY(convert_training(c, r, cfg));

  if (r->method && r->n_methods)
    return cfg_fail_at(c, "", "both 'method' and 'methods' are given (expected exactly one)");
  if (!r->method && !r->n_methods)
    return cfg_fail_at(c, "", "neither 'method' nor 'methods' is given (expected exactly one)");
  if (r->method) {
    cfg->n_methods = 1;
    return convert_method(c, "method", r->method, cfg->arch, &cfg->methods[0]);
  }
  cfg->compare = 1;
  for (unsigned i = 0; i < r->n_methods; i++) {
    char where[32];
    snprintf(where, sizeof where, "methods[%u]", i);
    cfg->n_methods = (int)i + 1;
    FG_TRY(convert_method(c, where, &r->methods[i], cfg->arch, &cfg->methods[i]));
  }
  return FG_OK;
}

/* ---- loading ------------------------------------------------------------------------------ */

static fg_status load_tree(cfg_ctx *c, yaml_document_t *doc) {
  unsigned char *text = NULL;
  size_t len = 0;
  fg_status st = fg_read_file(c->file, FG_CFG_MAX_FILE, &text, &len);
  if (st == FG_ERR_FORMAT) return FG_FAIL(FG_ERR_CONFIG, "%s: larger than %d MiB", c->file, FG_CFG_MAX_FILE >> 20);
  if (st != FG_OK) return st;
  st = parse_document(c, text, len, doc);
  free(text);
  return st;
}

static fg_status load_checked(cfg_ctx *c, fg_config *cfg) {
  yaml_document_t doc;
  FG_TRY(load_tree(c, &doc));
  fg_status st = FG_OK;
  for (int k = 0; k < c->n_set && st == FG_OK; k++) st = apply_set(c, &doc, k);
  if (st == FG_OK) {
    c->path_len = 0;
    c->path[0] = '\0';
    st = check_value(c, &doc, yaml_document_get_root_node(&doc), &top_schema);
  }
  if (st != FG_OK) {
    yaml_document_delete(&doc);
    return st;
  }
  text_buf yaml = {0};
  FG_TRY(emit_document(&doc, &yaml));

  cyaml_config_t settings = cyaml_settings(c);
  raw_top *raw = NULL;
  cyaml_err_t err = cyaml_load_data(yaml.data, yaml.len, &settings, &top_schema, (cyaml_data_t **)&raw, NULL);
  free(yaml.data);
  if (err != CYAML_OK) return cyaml_failure(c, err);
  if (!raw) return cfg_fail_at(c, "", "empty configuration");
  st = convert(c, raw, cfg);
  cyaml_free(&settings, &top_schema, raw, 0);
  return st;
}

fg_status fg_config_load(const char *path, const char *const *set, int n_set, fg_config *cfg) {
  if (!cfg) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: null config");
  memset(cfg, 0, sizeof *cfg);
  if (!path) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: null path");
  if (n_set < 0 || (n_set > 0 && !set)) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: bad overrides");
  cfg_ctx *c = calloc(1, sizeof *c);
  if (!c) return FG_FAIL(FG_ERR_OOM, "out of memory");
  c->file = path;
  c->set = set;
  c->n_set = n_set;
  c->set_paths = n_set ? calloc((size_t)n_set, sizeof *c->set_paths) : NULL;
  fg_status st = (n_set && !c->set_paths) ? FG_FAIL(FG_ERR_OOM, "out of memory") : FG_OK;
  if (st == FG_OK) st = load_checked(c, cfg);
  if (st == FG_OK) {
    cfg->path = dup_string(path);
    if (!cfg->path) st = FG_FAIL(FG_ERR_OOM, "out of memory");
  }
  for (int i = 0; i < n_set && c->set_paths; i++) free(c->set_paths[i]);
  free(c->set_paths);
  free(c);
  if (st != FG_OK) fg_config_free(cfg);
  return st;
}

/* ---- writing the resolved configuration -------------------------------------------------- */

/* Shortest text that reads back as exactly `v`. */
static void format_real(double v, char *out, size_t cap) {
  for (int digits = 15; digits <= 17; digits++) {
    snprintf(out, cap, "%.*g", digits, v);
    if (strtod(out, NULL) == v) return;
  }
}

static int plain_safe(const char *s) {
  if (!s[0] || strcmp(s, "~") == 0 || strcasecmp(s, "null") == 0) return 0;
  int b;
  if (parse_bool(s, &b)) return 0;
  if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9') ||
        s[0] == '_' || s[0] == '/' || s[0] == '.'))
    return 0;
  for (const char *p = s; *p; p++) {
    char ch = *p;
    int ok = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
             ch == '_' || ch == '-' || ch == '.' || ch == '/' || ch == '+';
    if (!ok) return 0;
  }
  return 1;
}

/* A string as a YAML scalar: plain when that is unambiguous, else double-quoted. */
static void put_string(FILE *f, const char *s) {
  if (plain_safe(s)) {
    fputs(s, f);
    return;
  }
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

static void put_real(FILE *f, double v) {
  char buf[40];
  format_real(v, buf, sizeof buf);
  fputs(buf, f);
}

static void put_reals(FILE *f, const double *v, int n) {
  fputc('[', f);
  for (int i = 0; i < n; i++) {
    if (i) fputs(", ", f);
    put_real(f, v[i]);
  }
  fputc(']', f);
}

static void put_ints(FILE *f, const int *v, int n) {
  fputc('[', f);
  for (int i = 0; i < n; i++) fprintf(f, "%s%d", i ? ", " : "", v[i]);
  fputc(']', f);
}

static const char *bool_text(int v) { return v ? "true" : "false"; }

/* A per-stage list of neulite, or a comment when it was not given (the method's default). */
static void put_stage_list(FILE *f, const char *indent, const char *key, const double *v, int n,
                           const char *absent) {
  if (n == 0) {
    fprintf(f, "%s# %s: %s\n", indent, key, absent);
    return;
  }
  fprintf(f, "%s%s: ", indent, key);
  put_reals(f, v, n);
  fputc('\n', f);
}

static void write_neulite(FILE *f, const fg_method_config *m, const char *indent) {
  const char *schedule = m->schedule ? m->schedule : schedules[SCHEDULE_ROUNDROBIN].str;
  const char *advance = m->advance ? m->advance : advances[ADVANCE_ROUNDS].str;
  fprintf(f, "%sschedule: %s\n", indent, schedule);
  if (strcmp(schedule, schedules[SCHEDULE_SEQUENTIAL].str) != 0) {
    fprintf(f, "%s# advance, stage_rounds, em_*: used only with schedule sequential\n", indent);
  } else {
    fprintf(f, "%sadvance: %s\n", indent, advance);
    if (strcmp(advance, advances[ADVANCE_MOVEMENT].str) == 0) {
      fprintf(f, "%sem_threshold: ", indent);
      put_real(f, m->em_threshold);
      fprintf(f, "\n%sem_window: %d\n%sem_every: %d\n%sem_samples: %d\n", indent, m->em_window, indent,
              m->em_every, indent, m->em_samples);
      fprintf(f, "%s# stage_rounds: used only with advance rounds\n", indent);
    } else {
      if (m->n_stage_rounds > 0) {
        fprintf(f, "%sstage_rounds: ", indent);
        put_ints(f, m->stage_rounds, m->n_stage_rounds);
        fputc('\n', f);
      } else {
        fprintf(f, "%s# stage_rounds: the rounds split evenly over the stages\n", indent);
      }
      fprintf(f, "%s# em_*: used only with advance movement\n", indent);
    }
  }
  put_stage_list(f, indent, "lambdas", m->lambdas, m->n_lambdas, "the method's default schedule");
  put_stage_list(f, indent, "gammas", m->gammas, m->n_gammas, "the method's default schedule");
  fprintf(f, "%shsic_sigma: ", indent);
  put_real(f, m->hsic_sigma);
  fprintf(f, "\n%smentor: %s\n%sharmonizer: %s\n%sfrozen_bn: %s\n%soutput_module: %s\n", indent,
          bool_text(m->mentor), indent, bool_text(m->harmonizer), indent,
          m->frozen_bn ? m->frozen_bn : frozen_bns[0].str, indent,
          m->output_module ? m->output_module : output_modules[0].str);
}

static void write_multiexit(FILE *f, const fg_method_config *m, option_set options, const char *indent) {
  fprintf(f, "%slevels: %s\n%slr: ", indent, m->levels ? m->levels : level_rules[0].str, indent);
  put_real(f, m->lr);
  fputc('\n', f);
  if (!(options & OPT_HYPERNET)) return;
  fprintf(f, "%shypernet: %s\n%srank: %d\n%shn_epochs: %d\n%scompat: [", indent,
          m->hypernet ? m->hypernet : hypernets[0].str, indent, m->rank, indent, m->hn_epochs, indent);
  int n = 0;
  for (size_t i = 0; i < ENUM_LEN(compats); i++)
    if (m->compat & compats[i].val) fprintf(f, "%s%s", n++ ? ", " : "", compats[i].str);
  fputs("]\n", f);
}

static int method_index_of(const char *name) {
  for (int i = 0; i < M_COUNT; i++)
    if (name && strcmp(method_names[i].str, name) == 0) return i;
  return -1;
}

/* A method's keys; `first` starts the first line ("  " or "  - "), `indent` the others. */
static fg_status write_method(FILE *f, const fg_method_config *m, const char *first, const char *indent) {
  int id = method_index_of(m->name);
  if (id < 0) return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: unknown method '%s'", m->name ? m->name : "");
  option_set o = methods_info[id].options;
  fprintf(f, "%sname: %s\n", first, m->name);
  fprintf(f, "%sweighting: %s\n", indent, weightings[m->weighting == FG_WEIGHT_COUNT].str);
  if (o & OPT_RATES) {
    fprintf(f, "%srates: ", indent);
    put_reals(f, m->rates, m->n_rates);
    fputc('\n', f);
  }
  if (o & OPT_SCALER) fprintf(f, "%sscaler: %s\n", indent, bool_text(m->scaler));
  if (o & OPT_SBN) fprintf(f, "%ssbn: %s\n", indent, bool_text(m->sbn));
  if (o & OPT_LABEL_MASK) fprintf(f, "%slabel_mask: %s\n", indent, bool_text(m->label_mask));
  if (o & OPT_ROLLING) fprintf(f, "%srolling: %s\n", indent, m->rolling ? m->rolling : "roll");
  if (o & OPT_KD) fprintf(f, "%skd: %s\n", indent, bool_text(m->kd));
  if (o & OPT_KD_RAMP_ROUNDS) fprintf(f, "%skd_ramp_rounds: %d\n", indent, m->kd_ramp_rounds);
  if (o & OPT_WIDTHS) {
    fprintf(f, "%swidths: ", indent);
    put_reals(f, m->widths, m->n_scalefl_levels);
    fprintf(f, "\n%sexits: [", indent);
    for (int i = 0; i < m->n_scalefl_levels; i++) fprintf(f, "%s%d", i ? ", " : "", m->exits[i]);
    fprintf(f, "]\n%skd_gamma: ", indent);
    put_real(f, m->kd_gamma);
    fprintf(f, "\n%skd_temperature: ", indent);
    put_real(f, m->kd_temperature);
    fprintf(f, "\n%skd_start: ", indent);
    put_real(f, m->kd_start);
    fputc('\n', f);
  }
  if (o & OPT_SCHEDULE) write_neulite(f, m, indent);
  if (o & OPT_LEVELS) write_multiexit(f, m, o, indent);
  return FG_OK;
}

static void write_budgets(FILE *f, const fg_budget_spec *b) {
  fprintf(f, "  budgets:\n    kind: %s\n", budget_kinds[b->kind].str);
  switch (b->kind) {
    case FG_BUDGET_NONE: break;
    case FG_BUDGET_FIXED:
      fputs("    mib: ", f);
      put_real(f, b->mib);
      fputc('\n', f);
      break;
    case FG_BUDGET_UNIFORM:
      fputs("    min_mib: ", f);
      put_real(f, b->min_mib);
      fputs("\n    max_mib: ", f);
      put_real(f, b->max_mib);
      fputc('\n', f);
      break;
    case FG_BUDGET_TIERS:
      fputs("    tiers:\n", f);
      for (int i = 0; i < b->n_tiers; i++) {
        fputs("      - {fraction: ", f);
        put_real(f, b->tiers[i].fraction);
        fputs(", share: ", f);
        put_real(f, b->tiers[i].share);
        fputs("}\n", f);
      }
      break;
    case FG_BUDGET_PROFILES:
      fputs("    profiles:\n", f);
      for (int i = 0; i < b->n_profiles; i++) {
        fputs("      - {name: ", f);
        put_string(f, b->profiles[i].name);
        fputs(", share: ", f);
        put_real(f, b->profiles[i].share);
        fputs("}\n", f);
      }
      break;
  }
}

static fg_status write_config(FILE *f, const fg_config *cfg, int method_index, const char *revision) {
  fputs("# fedgap ", f);
  for (const char *p = revision ? revision : "unknown"; *p; p++)
    fputc((unsigned char)*p < 0x20 ? ' ' : *p, f);
  fputs("\n# Resolved configuration: every key with its value, defaults filled in.\n", f);
  fputs("name: ", f);
  put_string(f, cfg->name);
  fprintf(f, "\nseed: %llu\nrounds: %d\nthreads: %d\n", (unsigned long long)cfg->seed, cfg->rounds, cfg->threads);

  fputs("data:\n  dataset: ", f);
  put_string(f, cfg->dataset);
  fputc('\n', f);
  if (cfg->data_dir) {
    fputs("  dir: ", f);
    put_string(f, cfg->data_dir);
    fputc('\n', f);
  } else {
    fputs("  # dir: the dataset's default\n", f);
  }
  if (cfg->augment >= 0) fprintf(f, "  augment: %s\n", bool_text(cfg->augment));
  else fputs("  # augment: the dataset's default\n", f);
  fprintf(f, "  partition:\n    kind: %s\n    alpha: ", partition_kinds[cfg->partition.kind].str);
  put_real(f, cfg->partition.alpha);
  fprintf(f, "\n    min_size: %d\n    classes_per_client: %d\n", cfg->partition.min_size,
          cfg->partition.classes_per_client);
  fprintf(f, "  pool: %s\n  local_test: ", bool_text(cfg->pool));
  put_real(f, cfg->local_test);
  fputc('\n', f);

  fputs("model:\n  arch: ", f);
  put_string(f, cfg->arch);
  fputs("\n  width: ", f);
  put_real(f, cfg->width);
  fprintf(f, "\nclients:\n  count: %d\n", cfg->clients);
  write_budgets(f, &cfg->budgets);

  fprintf(f, "sampling:\n  kind: %s\n", sampling_kinds[cfg->sampling.kind].str);
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
  fputs("\n  momentum: ", f);
  put_real(f, cfg->momentum);
  fputs("\n  weight_decay: ", f);
  put_real(f, cfg->weight_decay);
  fprintf(f, "\n  mode: %s\n", cfg->mode ? cfg->mode : "store");
  fprintf(f, "eval:\n  every: %d\n  batch: %d\n  max_samples: %d\n  protocol: %s\n", cfg->eval_every,
          cfg->eval_batch, cfg->eval_max_samples, fg_eval_protocol_name(cfg->eval_protocol));
  fprintf(f, "checkpoint:\n  every: %d\n", cfg->checkpoint_every);

  if (method_index >= 0 || !cfg->compare) {
    fputs("method:\n", f);
    return write_method(f, &cfg->methods[method_index >= 0 ? method_index : 0], "  ", "  ");
  }
  fputs("methods:\n", f);
  for (int i = 0; i < cfg->n_methods; i++) FG_TRY(write_method(f, &cfg->methods[i], "  - ", "    "));
  return FG_OK;
}

fg_status fg_config_write_resolved(const fg_config *cfg, int method_index, const char *path,
                                   const char *revision) {
  if (!cfg || !path) return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: null argument");
  if (cfg->n_methods < 1 || cfg->n_methods > FG_MAX_METHODS)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: the config holds no loaded method");
  if (method_index < -1 || method_index >= cfg->n_methods)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: method index %d out of range (the config has %d)",
                   method_index, cfg->n_methods);
  if (cfg->budgets.kind > FG_BUDGET_PROFILES || cfg->partition.kind > FG_PARTITION_SHARDS ||
      cfg->sampling.kind > FG_SAMPLE_PER_LEVEL || cfg->eval_protocol > FG_EVAL_LOCAL || !cfg->name ||
      !cfg->dataset || !cfg->arch)
    return FG_FAIL(FG_ERR_INVALID, "fg_config_write_resolved: the config was not loaded");
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&text, &len);
  if (!f) return FG_FAIL(FG_ERR_OOM, "fg_config_write_resolved: out of memory");
  fg_status st = write_config(f, cfg, method_index, revision);
  if (fclose(f) != 0 && st == FG_OK) st = FG_FAIL(FG_ERR_OOM, "fg_config_write_resolved: out of memory");
  if (st == FG_OK) st = fg_write_file_atomic(path, text, len);
  free(text);
  return st;
}

const char *fg_eval_protocol_name(fg_eval_protocol p) {
  for (uint32_t i = 0; i < ENUM_LEN(eval_protocols); i++)
    if (eval_protocols[i].val == (int64_t)p) return eval_protocols[i].str;
  return "unknown";
}

/* ---- freeing ------------------------------------------------------------------------------ */

void fg_config_free(fg_config *cfg) {
  if (!cfg) return;
  free(cfg->path);
  free(cfg->name);
  free(cfg->dataset);
  free(cfg->data_dir);
  free(cfg->arch);
  free(cfg->optimizer);
  free(cfg->mode);
  for (int i = 0; i < FG_MAX_METHODS; i++) fg_method_config_free(&cfg->methods[i]);
  config_storage *store = cfg->storage;
  if (store) {
    for (int i = 0; i < store->n_profiles; i++) free((char *)store->profiles[i].name);
    free(store->profiles);
    free(store->tiers);
    free(store);
  }
  memset(cfg, 0, sizeof *cfg);
}

void fg_method_config_free(fg_method_config *m) {
  if (!m) return;
  free(m->name);
  free(m->rolling);
  free(m->schedule);
  free(m->advance);
  free(m->frozen_bn);
  free(m->output_module);
  free(m->levels);
  free(m->hypernet);
  memset(m, 0, sizeof *m);
}

fg_status fg_method_config_default(const char *name, const char *arch, fg_method_config *out) {
  memset(out, 0, sizeof *out);
  raw_method r;
  memset(&r, 0, sizeof r);
  r.name = -1;
  for (int k = 0; k < M_COUNT; k++)
    if (name && strcmp(method_names[k].str, name) == 0) r.name = method_names[k].val;
  if (r.name < 0) {
    char known[256] = "";
    for (int k = 0; k < M_COUNT; k++) {
      strncat(known, method_names[k].str, sizeof known - strlen(known) - 1);
      if (k + 1 < M_COUNT) strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    return FG_FAIL(FG_ERR_CONFIG, "unknown method '%s' (expected one of %s)", name ? name : "", known);
  }
  cfg_ctx c;
  memset(&c, 0, sizeof c);
  c.file = "(defaults)";
  fg_status s = convert_method(&c, "method", &r, arch, out);
  if (s != FG_OK) fg_method_config_free(out);
  return s;
}
