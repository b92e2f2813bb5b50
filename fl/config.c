/* Experiment configurations (fl/config.h; configs/README.md is the reference): the experiment's
 * schema and what a table cannot say.
 *
 * Loading: the file is parsed into a libyaml tree, the --set overrides are grafted into it, the
 * tree is read against the tables below (types, ranges and defaults; fl/schema.h), then the rules
 * across keys are checked here (dataset and architecture names, defaults that depend on other
 * keys, the keys each budget kind takes, sampling and evaluation protocol), the budget spec by
 * fl/budget.c's rules, and each method entry by its method's table (fl/method_config.h). The
 * resolved configuration is written by fl/config_write.c. */
#include "fl/config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/data/catalog.h"
#include "engine/nn/models.h"
#include "fl/budget.h"
#include "fl/sampling.h"
#include "fl/schema.h"

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* What the tables fill: the configuration, and the values it keeps in another form. */
typedef struct loaded {
  fg_config cfg;
  int optimizer, mode; /* indices in optimizers, modes */
  char *device;        /* as written; NULL: cpu */
} loaded;

#define AT(member) offsetof(loaded, cfg.member)

/* The largest batch a plan takes (engine/nn/plan.c): a larger one is refused before anything is
 * allocated for it. */
#define FG_CONFIG_MAX_BATCH 16777216

/* ---- names of enumerated values ------------------------------------------------------------ */

static const fg_choice partition_kinds[] = {
    {"iid", FG_PARTITION_IID}, {"dirichlet", FG_PARTITION_DIRICHLET}, {"shards", FG_PARTITION_SHARDS}};
static const fg_choice budget_kinds[] = {{"none", FG_BUDGET_NONE},
                                         {"fixed", FG_BUDGET_FIXED},
                                         {"uniform", FG_BUDGET_UNIFORM},
                                         {"tiers", FG_BUDGET_TIERS},
                                         {"profiles", FG_BUDGET_PROFILES}};
static const fg_choice optimizers[] = {{"sgd", 0}, {"adam", 1}};
static const fg_choice modes[] = {{"store", 0}, {"checkpoint", 1}};
static const fg_choice eval_protocols[] = {{"global", FG_EVAL_GLOBAL}, {"local", FG_EVAL_LOCAL}};
static const fg_choice diverge_actions[] = {{"skip", FG_DIVERGE_SKIP}, {"stop", FG_DIVERGE_STOP}};

static const char *name_or_unknown(const char *name) { return name ? name : "unknown"; }

const char *fg_eval_protocol_name(fg_eval_protocol p) {
  return name_or_unknown(fg_choice_name(eval_protocols, COUNT(eval_protocols), (int)p));
}
const char *fg_partition_kind_name(fg_partition_kind k) {
  return name_or_unknown(fg_choice_name(partition_kinds, COUNT(partition_kinds), (int)k));
}
const char *fg_budget_kind_name(fg_budget_kind k) {
  return name_or_unknown(fg_choice_name(budget_kinds, COUNT(budget_kinds), (int)k));
}
const char *fg_diverge_action_name(fg_diverge_action a) {
  return name_or_unknown(fg_choice_name(diverge_actions, COUNT(diverge_actions), (int)a));
}
const char *fg_sampling_kind_name(fg_sampling_kind k) {
  return name_or_unknown(fg_choice_name(fg_sampling_kinds, FG_SAMPLING_KINDS, (int)k));
}

/* ---- the schema ---------------------------------------------------------------------------- */

static const fg_field partition_fields[] = {
    {.key = "kind", .type = FG_FIELD_CHOICE, .offset = AT(partition.kind), .def = FG_PARTITION_IID,
     .choices = partition_kinds, .n_choices = COUNT(partition_kinds), .doc = "how training samples are split"},
    {.key = "alpha", .type = FG_FIELD_REAL, .offset = AT(partition.alpha), .def = 0.5, .min = 0, .min_open = 1,
     .max = INFINITY, .doc = "Dirichlet concentration (smaller: more skewed)"},
    {.key = "min_size", .type = FG_FIELD_INT, .offset = AT(partition.min_size), .def = 10, .min = 0, .max = INFINITY,
     .doc = "Dirichlet: redraw until every client holds at least this many samples"},
    {.key = "classes_per_client", .type = FG_FIELD_INT, .offset = AT(partition.classes_per_client), .def = 2,
     .min = 1, .max = INFINITY, .doc = "shards: classes per client"},
};

static const fg_field data_fields[] = {
    {.key = "dataset", .type = FG_FIELD_STRING, .offset = AT(dataset), .required = 1, .doc = "a catalogued dataset"},
    {.key = "dir", .type = FG_FIELD_STRING, .offset = AT(data_dir), .doc = "directory of the dataset files"},
    {.key = "augment", .type = FG_FIELD_BOOL, .offset = AT(augment), .def = -1,
     .doc = "training augmentation (absent: the dataset's default)"},
    {.key = "normalize", .type = FG_FIELD_STRING, .offset = AT(normalize),
     .doc = "per-channel normalisation: fashion-mnist, cifar10, cifar100, imagenet, half or none (absent: the "
            "dataset's)"},
    {.key = "partition", .type = FG_FIELD_MAPPING, .fields = partition_fields, .n_fields = COUNT(partition_fields),
     .doc = "how training samples are split over clients"},
    {.key = "pool", .type = FG_FIELD_BOOL, .offset = AT(pool), .def = 0,
     .doc = "train on the train split followed by the test split"},
    {.key = "local_test", .type = FG_FIELD_REAL, .offset = AT(local_test), .def = 0, .min = 0, .max = 1, .max_open = 1,
     .doc = "fraction of every client's share kept as its local test split"},
};

static const fg_field model_fields[] = {
    {.key = "arch", .type = FG_FIELD_STRING, .offset = AT(arch), .required = 1, .doc = "a built-in architecture"},
    {.key = "width", .type = FG_FIELD_REAL, .offset = AT(width), .def = 0, .min = 0, .min_open = 1, .max = INFINITY,
     .doc = "cnn: block-1 channels; others: channel multiplier (absent, 0 here: the architecture's)"},
};

/* Budget values are checked by fl/budget.c (fg_budget_spec_check), not by ranges here. */
static const fg_field budgets_fields[] = {
    {.key = "kind", .type = FG_FIELD_CHOICE, .offset = AT(budgets.kind), .def = FG_BUDGET_NONE,
     .choices = budget_kinds, .n_choices = COUNT(budget_kinds), .doc = "how memory budgets are given"},
    {.key = "mib", .type = FG_FIELD_REAL, .offset = AT(budgets.mib), .doc = "fixed: every client's budget"},
    {.key = "min_mib", .type = FG_FIELD_REAL, .offset = AT(budgets.min_mib), .doc = "uniform: the smallest"},
    {.key = "max_mib", .type = FG_FIELD_REAL, .offset = AT(budgets.max_mib), .doc = "uniform: the largest"},
    {.key = "tiers", .type = FG_FIELD_LATER, .doc = "tiers: list of {fraction, share}"},
    {.key = "profiles", .type = FG_FIELD_LATER, .doc = "profiles: list of {name, share}"},
};

/* clients.budgets.tiers[i]: a budget as a fraction of the full model's training peak, for a share of the
 * clients. */
static const fg_field tier_fields[] = {
    {.key = "fraction", .type = FG_FIELD_REAL, .offset = offsetof(fg_budget_tier, fraction), .required = 1},
    {.key = "share", .type = FG_FIELD_REAL, .offset = offsetof(fg_budget_tier, share), .required = 1},
};

/* clients.budgets.profiles[i]: a device profile for a share of the clients, as read (its name a heap
 * string the storage owns). */
typedef struct profile_entry {
  char *name;
  double share;
} profile_entry;

static const fg_field profile_fields[] = {
    {.key = "name", .type = FG_FIELD_STRING, .offset = offsetof(profile_entry, name), .required = 1},
    {.key = "share", .type = FG_FIELD_REAL, .offset = offsetof(profile_entry, share), .required = 1},
};

static const fg_field clients_fields[] = {
    {.key = "count", .type = FG_FIELD_INT, .offset = AT(clients), .required = 1, .min = 1, .max = 1000000,
     .doc = "number of clients"},
    {.key = "budgets", .type = FG_FIELD_MAPPING, .fields = budgets_fields, .n_fields = COUNT(budgets_fields),
     .doc = "memory budgets"},
};

static const fg_field sampling_fields[] = {
    {.key = "kind", .type = FG_FIELD_CHOICE, .offset = AT(sampling.kind), .def = FG_SAMPLE_REFERENCE,
     .choices = fg_sampling_kinds, .n_choices = FG_SAMPLING_KINDS,
     .doc = "who is drawn (reference: each method as its reference does)"},
    {.key = "per_round", .type = FG_FIELD_INT, .offset = AT(sampling.per_round), .def = 0, .min = 1, .max = INFINITY,
     .doc = "clients per round (exclusive with fraction)"},
    {.key = "fraction", .type = FG_FIELD_REAL, .offset = AT(sampling.fraction), .def = 0.1, .min = 0, .min_open = 1,
     .max = 1, .doc = "ceil(fraction x count) clients per round"},
};

static const fg_field local_fields[] = {
    {.key = "epochs", .type = FG_FIELD_INT, .offset = AT(local_epochs), .def = 1, .min = 1, .max = INFINITY,
     .doc = "local epochs per round"},
    {.key = "batch", .type = FG_FIELD_INT, .offset = AT(local_batch), .def = 64, .min = 1, .max = FG_CONFIG_MAX_BATCH,
     .doc = "local batch size"},
    {.key = "optimizer", .type = FG_FIELD_CHOICE, .offset = offsetof(loaded, optimizer), .def = 0,
     .choices = optimizers, .n_choices = COUNT(optimizers), .doc = "reset every round"},
    {.key = "lr", .type = FG_FIELD_REAL, .offset = AT(lr), .def = 0.01, .min = 0, .max = INFINITY,
     .doc = "learning rate"},
    {.key = "lr_decay", .type = FG_FIELD_REAL, .offset = AT(lr_decay), .def = 1, .min = 0, .min_open = 1, .max = 1,
     .doc = "lr of round t = lr x lr_decay^t"},
    {.key = "lr_steps", .type = FG_FIELD_INTS, .offset = AT(lr_steps), .count_offset = AT(n_lr_steps), .min = 1,
     .max = 1000000, .min_len = 1, .max_len = FG_MAX_LR_STEPS, .order = 1, .entry = "step", .absent = "none",
     .doc = "rounds (0-based) from which the lr is multiplied once more by lr_step_factor"},
    {.key = "lr_step_factor", .type = FG_FIELD_REAL, .offset = AT(lr_step_factor), .def = 0.1, .min = 0,
     .min_open = 1, .max = 1, .doc = "the factor of each of lr_steps"},
    {.key = "momentum", .type = FG_FIELD_REAL, .offset = AT(momentum), .def = 0, .min = 0, .max = 1, .max_open = 1,
     .doc = "SGD momentum"},
    {.key = "weight_decay", .type = FG_FIELD_REAL, .offset = AT(weight_decay), .def = 0, .min = 0, .max = INFINITY,
     .doc = "coupled L2 weight decay"},
    {.key = "clip_norm", .type = FG_FIELD_REAL, .offset = AT(clip_norm), .def = 0, .min = 0, .max = INFINITY,
     .doc = "clip the gradients' joint L2 norm to this before each update (0: no clipping)"},
    {.key = "mode", .type = FG_FIELD_CHOICE, .offset = offsetof(loaded, mode), .def = 0, .choices = modes,
     .n_choices = COUNT(modes), .doc = "activation policy"},
};

static const fg_field eval_fields[] = {
    {.key = "every", .type = FG_FIELD_INT, .offset = AT(eval_every), .def = 1, .min = 1, .max = INFINITY,
     .doc = "evaluate every this many rounds (and after the last)"},
    {.key = "batch", .type = FG_FIELD_INT, .offset = AT(eval_batch), .def = 256, .min = 1, .max = FG_CONFIG_MAX_BATCH,
     .doc = "evaluation batch"},
    {.key = "max_samples", .type = FG_FIELD_INT, .offset = AT(eval_max_samples), .def = 0, .min = 0, .max = INFINITY,
     .doc = "global protocol: the first N test samples (0: all)"},
    {.key = "bn_samples", .type = FG_FIELD_INT, .offset = AT(eval_bn_samples), .def = 5000, .min = 0,
     .max = INFINITY, .doc = "static BN recalibration (sbn): training samples it runs over (0: all)"},
    {.key = "protocol", .type = FG_FIELD_CHOICE, .offset = AT(eval_protocol), .def = FG_EVAL_GLOBAL,
     .choices = eval_protocols, .n_choices = COUNT(eval_protocols),
     .doc = "the test split, or the clients' local test splits (absent: local when data.local_test > 0)"},
};

static const fg_field checkpoint_fields[] = {
    {.key = "every", .type = FG_FIELD_INT, .offset = AT(checkpoint_every), .def = 10, .min = 0, .max = INFINITY,
     .doc = "a full checkpoint every this many rounds (0: only at the end)"},
};

static const fg_field updates_fields[] = {
    {.key = "max_distance", .type = FG_FIELD_REAL, .offset = AT(update_max_distance), .def = FG_UPDATE_MAX_DISTANCE,
     .min = 0, .max = INFINITY,
     .doc = "reject an update farther from the model sent than this multiple of its norm (0: no bound)"},
    {.key = "on_diverge", .type = FG_FIELD_CHOICE, .offset = AT(on_diverge), .def = FG_DIVERGE_SKIP,
     .choices = diverge_actions, .n_choices = COUNT(diverge_actions),
     .doc = "a client whose loss turns non-finite: skip it (recorded as diverged) or stop the run"},
};

static const fg_field devices_fields[] = {
    {.key = "deadline", .type = FG_FIELD_REAL, .offset = AT(devices_deadline), .def = 600, .min = 0.1,
     .max = 1e7, .doc = "seconds a round waits for its devices' results; a device still training is dropped"},
    {.key = "min_results", .type = FG_FIELD_INT, .offset = AT(devices_min_results), .def = 1, .min = 0,
     .max = INFINITY, .doc = "a round that closes with fewer results failed"},
    {.key = "retries", .type = FG_FIELD_INT, .offset = AT(devices_retries), .def = 2, .min = 0, .max = 1000,
     .doc = "times a failed round is tried again before the run stops"},
    {.key = "wait", .type = FG_FIELD_REAL, .offset = AT(devices_wait), .def = 600, .min = 0.1, .max = 1e7,
     .doc = "seconds the server waits for every client's device to come online"},
    {.key = "grace", .type = FG_FIELD_REAL, .offset = AT(devices_grace), .def = 30, .min = 0, .max = 1e7,
     .doc = "seconds a device whose last will arrived mid-round may take to come back holding its job"},
};

static const fg_field top_fields[] = {
    {.key = "name", .type = FG_FIELD_STRING, .offset = AT(name), .doc = "experiment name (absent: the file's)"},
    {.key = "seed", .type = FG_FIELD_UINT64, .offset = AT(seed), .def = 1, .doc = "root seed"},
    {.key = "seeds", .type = FG_FIELD_INTS, .offset = AT(seeds), .count_offset = AT(n_seeds), .min = 0,
     .max = 2147483647, .min_len = 1, .max_len = FG_MAX_SEEDS, .order = 1, .entry = "seed",
     .absent = "one run, with seed",
     .doc = "run the experiment once per seed (each as with seed: N) and report mean and standard deviation"},
    {.key = "rounds", .type = FG_FIELD_INT, .offset = AT(rounds), .required = 1, .min = 1, .max = 1000000,
     .doc = "communication rounds"},
    {.key = "threads", .type = FG_FIELD_INT, .offset = AT(threads), .def = 0, .min = 0, .max = 1024,
     .doc = "CPU threads (0: all cores)"},
    {.key = "data", .type = FG_FIELD_MAPPING, .required = 1, .fields = data_fields, .n_fields = COUNT(data_fields),
     .doc = "dataset and partition"},
    {.key = "model", .type = FG_FIELD_MAPPING, .required = 1, .fields = model_fields, .n_fields = COUNT(model_fields),
     .doc = "the global model"},
    {.key = "clients", .type = FG_FIELD_MAPPING, .required = 1, .fields = clients_fields,
     .n_fields = COUNT(clients_fields), .doc = "clients and memory budgets"},
    {.key = "sampling", .type = FG_FIELD_MAPPING, .fields = sampling_fields, .n_fields = COUNT(sampling_fields),
     .doc = "who trains each round"},
    {.key = "local", .type = FG_FIELD_MAPPING, .fields = local_fields, .n_fields = COUNT(local_fields),
     .doc = "local training"},
    {.key = "eval", .type = FG_FIELD_MAPPING, .fields = eval_fields, .n_fields = COUNT(eval_fields),
     .doc = "evaluation of the global model"},
    {.key = "checkpoint", .type = FG_FIELD_MAPPING, .fields = checkpoint_fields, .n_fields = COUNT(checkpoint_fields),
     .doc = "checkpoints for --resume"},
    {.key = "method", .type = FG_FIELD_LATER, .doc = "the FL method and its options"},
    {.key = "methods", .type = FG_FIELD_LATER, .doc = "several methods, run one after another on the same clients"},
    {.key = "device", .type = FG_FIELD_STRING, .offset = offsetof(loaded, device),
     .doc = "where local training and evaluation run: cpu, cuda, cuda:N or cuda:local (absent: cpu)"},
    {.key = "updates", .type = FG_FIELD_MAPPING, .fields = updates_fields, .n_fields = COUNT(updates_fields),
     .doc = "the server's checks on client updates"},
    {.key = "devices", .type = FG_FIELD_MAPPING, .fields = devices_fields, .n_fields = COUNT(devices_fields),
     .doc = "rounds on remote devices (fedgap serve)"},
};

/* ---- rules across keys --------------------------------------------------------------------- */

typedef struct config_storage {
  fg_budget_tier *tiers;
  fg_budget_profile *profiles;
  profile_entry *profile_entries; /* own the profiles' names */
  int n_profiles;
} config_storage;

static int given(yaml_document_t *doc, yaml_node_t *root, const char *dotted) {
  return fg_schema_lookup(doc, root, dotted) != NULL;
}

/* The file's name without directory and .yaml / .yml. */
static char *base_name(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *b = slash ? slash + 1 : path;
  size_t n = strlen(b);
  if (n > 5 && strcmp(b + n - 5, ".yaml") == 0) n -= 5;
  else if (n > 4 && strcmp(b + n - 4, ".yml") == 0) n -= 4;
  char *out = malloc(n + 1);
  if (out) {
    memcpy(out, b, n);
    out[n] = '\0';
  }
  return out;
}

/* Dataset and architecture names; data.pool needs local test splits; width's default. */
static fg_status check_data_model(fg_schema_ctx *c, fg_config *cfg) {
  if (!fg_dataset_info_find(cfg->dataset))
    return fg_schema_fail_at(c, "data.dataset", "unknown dataset '%.60s' (expected one of: %s)", cfg->dataset,
                             fg_dataset_names());
  if (cfg->pool && cfg->local_test <= 0)
    return fg_schema_fail_at(c, "data.pool",
                             "true needs data.local_test > 0 (the pool keeps no global test set: the clients' local "
                             "test splits are the only test data)");
  if (fg_model_block_count(cfg->arch) <= 0)
    return fg_schema_fail_at(c, "model.arch", "unknown architecture '%.60s' (expected one of: %s)", cfg->arch,
                             fg_model_arch_list());
  if (cfg->width == 0) cfg->width = fg_model_width(&(fg_model_spec){.arch = cfg->arch});
  return FG_OK;
}

/* Reads a list of mappings (at least one) at `key` into calloc'd entries of `size` bytes. */
static fg_status read_entries(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *list, const char *key,
                              const fg_field *fields, int n_fields, size_t size, void **out, int *count) {
  size_t mark = fg_schema_push_key(c, key), n = 0;
  fg_status st = fg_schema_list(c, list, 1, 0, &n);
  char *items = st == FG_OK ? calloc(n, size) : NULL;
  if (st == FG_OK && !items) st = FG_FAIL(FG_ERR_OOM, "out of memory");
  *out = items;
  *count = st == FG_OK ? (int)n : 0;
  for (size_t i = 0; st == FG_OK && i < n; i++) {
    size_t at = fg_schema_push_index(c, i);
    st = fg_schema_read_mapping(c, doc, fg_schema_list_item(doc, list, i), fields, n_fields, items + i * size);
    fg_schema_pop(c, at);
  }
  fg_schema_pop(c, mark);
  return st;
}

/* The keys a budgets kind takes, then fl/budget.c's rules. */
static fg_status check_budget_keys(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *budgets, fg_budget_kind kind) {
  static const char *const names[] = {"mib", "min_mib", "max_mib", "tiers", "profiles"};
  static const unsigned char needed[][5] = {[FG_BUDGET_NONE] = {0, 0, 0, 0, 0},
                                            [FG_BUDGET_FIXED] = {1, 0, 0, 0, 0},
                                            [FG_BUDGET_UNIFORM] = {0, 1, 1, 0, 0},
                                            [FG_BUDGET_TIERS] = {0, 0, 0, 1, 0},
                                            [FG_BUDGET_PROFILES] = {0, 0, 0, 0, 1}};
  char path[64];
  for (int i = 0; i < 5; i++) {
    int present = budgets && fg_schema_lookup(doc, budgets, names[i]) != NULL;
    snprintf(path, sizeof path, "clients.budgets.%s", names[i]);
    if (present && !needed[kind][i])
      return fg_schema_fail_at(c, path, "not used with budgets kind %s (remove it, or change the kind)",
                               fg_budget_kind_name(kind));
    if (!present && needed[kind][i])
      return fg_schema_fail_at(c, path, "required key is missing (budgets kind %s needs it)",
                               fg_budget_kind_name(kind));
  }
  return FG_OK;
}

static fg_status read_budgets(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *root, fg_config *cfg,
                              config_storage *store) {
  fg_budget_spec *b = &cfg->budgets;
  yaml_node_t *budgets = fg_schema_lookup(doc, root, "clients.budgets");
  yaml_node_t *tiers = budgets ? fg_schema_lookup(doc, budgets, "tiers") : NULL;
  yaml_node_t *profiles = budgets ? fg_schema_lookup(doc, budgets, "profiles") : NULL;
  size_t mark = fg_schema_push_key(c, "clients");
  fg_schema_push_key(c, "budgets");
  fg_status st = FG_OK;
  if (tiers) {
    void *items = NULL;
    st = read_entries(c, doc, tiers, "tiers", tier_fields, COUNT(tier_fields), sizeof(fg_budget_tier), &items,
                      &b->n_tiers);
    store->tiers = items;
    b->tiers = store->tiers;
  }
  if (st == FG_OK && profiles) {
    void *items = NULL;
    int n = 0;
    st = read_entries(c, doc, profiles, "profiles", profile_fields, COUNT(profile_fields), sizeof(profile_entry),
                      &items, &n);
    store->profile_entries = items;
    store->n_profiles = n;
    store->profiles = st == FG_OK ? calloc((size_t)n, sizeof *store->profiles) : NULL;
    if (st == FG_OK && !store->profiles) st = FG_FAIL(FG_ERR_OOM, "out of memory");
    for (int i = 0; st == FG_OK && i < n; i++)
      store->profiles[i] = (fg_budget_profile){store->profile_entries[i].name, store->profile_entries[i].share};
    b->profiles = store->profiles;
    b->n_profiles = st == FG_OK ? n : 0;
  }
  fg_schema_pop(c, mark);
  if (st != FG_OK) return st;
  FG_TRY(check_budget_keys(c, doc, budgets, b->kind));
  char key[64], path[96], msg[512];
  if (fg_budget_spec_check(b, key, sizeof key) == FG_OK) return FG_OK;
  snprintf(path, sizeof path, "clients.budgets.%s", key);
  snprintf(msg, sizeof msg, "%s", fg_last_error());
  return fg_schema_fail_at(c, path, "%s", msg);
}

static fg_status check_normalize(fg_schema_ctx *c, const fg_config *cfg) {
  fg_normalize n;
  if (!cfg->normalize || fg_normalize_preset(cfg->normalize, &n) == FG_OK) return FG_OK;
  return fg_schema_fail_at(c, "data.normalize", "'%s' is not a normalisation (expected fashion-mnist, cifar10, "
                           "cifar100, imagenet, half or none)", cfg->normalize);
}

static fg_status check_sampling(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *root, fg_config *cfg) {
  fg_sampling_spec *s = &cfg->sampling;
  int per_round = given(doc, root, "sampling.per_round");
  if (per_round && given(doc, root, "sampling.fraction"))
    return fg_schema_fail_at(c, "sampling.fraction", "given together with sampling.per_round (give one of them)");
  if (!per_round) return FG_OK;
  s->fraction = 0;
  if (s->per_round > cfg->clients)
    return fg_schema_fail_at(c, "sampling.per_round", "%d is out of range (expected at most clients.count, %d)",
                             s->per_round, cfg->clients);
  return FG_OK;
}

/* eval.protocol: by default local exactly when there are local test splits. */
static fg_status check_eval_protocol(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *root, fg_config *cfg) {
  if (!given(doc, root, "eval.protocol")) cfg->eval_protocol = cfg->local_test > 0 ? FG_EVAL_LOCAL : FG_EVAL_GLOBAL;
  if (cfg->eval_protocol == FG_EVAL_LOCAL && cfg->local_test <= 0)
    return fg_schema_fail_at(c, "eval.protocol", "local needs data.local_test > 0 (the clients' local test splits)");
  if (cfg->eval_protocol == FG_EVAL_GLOBAL && cfg->pool)
    return fg_schema_fail_at(c, "eval.protocol",
                             "global needs the dataset's test split, which data.pool: true puts into the training "
                             "pool (expected local)");
  return FG_OK;
}

static fg_status check_device(fg_schema_ctx *c, const char *text, fg_config *cfg) {
  if (fg_device_parse(text ? text : "cpu", &cfg->device) == FG_OK) return FG_OK;
  char msg[512];
  snprintf(msg, sizeof msg, "%s", fg_last_error());
  return fg_schema_fail_at(c, "device", "%s", msg);
}

/* Exactly one of `method` and `methods` (1..FG_MAX_METHODS entries). */
static fg_status read_methods(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *root, fg_config *cfg) {
  yaml_node_t *one = fg_schema_lookup(doc, root, "method"), *many = fg_schema_lookup(doc, root, "methods");
  if (one && many) return fg_schema_fail_at(c, "", "both 'method' and 'methods' are given (expected exactly one)");
  if (!one && !many) return fg_schema_fail_at(c, "", "neither 'method' nor 'methods' is given (expected exactly one)");
  size_t mark = fg_schema_push_key(c, one ? "method" : "methods");
  fg_status st = FG_OK;
  if (one) {
    st = fg_method_config_read(c, doc, one, cfg->arch, &cfg->methods[0]);
    cfg->n_methods = 1;
  } else {
    size_t n = 0;
    st = fg_schema_list(c, many, 1, FG_MAX_METHODS, &n);
    cfg->compare = 1;
    for (size_t i = 0; st == FG_OK && i < n; i++) {
      size_t at = fg_schema_push_index(c, i);
      st = fg_method_config_read(c, doc, fg_schema_list_item(doc, many, i), cfg->arch, &cfg->methods[i]);
      for (size_t j = 0; st == FG_OK && j < i; j++)
        if (strcmp(fg_method_label(&cfg->methods[j]), fg_method_label(&cfg->methods[i])) == 0)
          st = fg_schema_fail(c, "'%s' also names methods[%zu] (expected each entry its own run folder: give one a "
                              "label, e.g. label: %s-2)",
                              fg_method_label(&cfg->methods[i]), j, fg_method_label(&cfg->methods[i]));
      fg_schema_pop(c, at);
      cfg->n_methods = (int)i + 1;
    }
  }
  fg_schema_pop(c, mark);
  return st;
}

static fg_status check_and_read_rest(fg_schema_ctx *c, yaml_document_t *doc, yaml_node_t *root, loaded *v) {
  fg_config *cfg = &v->cfg;
  config_storage *store = calloc(1, sizeof *store);
  if (!store) return FG_FAIL(FG_ERR_OOM, "out of memory");
  cfg->storage = store;
  if (!cfg->name && !(cfg->name = base_name(c->file))) return FG_FAIL(FG_ERR_OOM, "out of memory");
  cfg->optimizer = optimizers[v->optimizer].name;
  cfg->mode = modes[v->mode].name;
  FG_TRY(check_data_model(c, cfg));
  FG_TRY(read_budgets(c, doc, root, cfg, store));
  FG_TRY(check_sampling(c, doc, root, cfg));
  FG_TRY(check_normalize(c, cfg));
  FG_TRY(check_eval_protocol(c, doc, root, cfg));
  FG_TRY(check_device(c, v->device, cfg));
  return read_methods(c, doc, root, cfg);
}

/* ---- loading and freeing ------------------------------------------------------------------- */

static fg_status load(fg_schema_ctx *c, loaded *v) {
  yaml_document_t doc;
  FG_TRY(fg_schema_load_file(c, &doc));
  fg_status st = fg_schema_apply_sets(c, &doc);
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if (st == FG_OK) st = fg_schema_read_mapping(c, &doc, root, top_fields, COUNT(top_fields), v);
  if (st == FG_OK) st = check_and_read_rest(c, &doc, root, v);
  yaml_document_delete(&doc);
  return st;
}

fg_status fg_config_load(const char *path, const char *const *set, int n_set, fg_config *cfg) {
  if (!cfg) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: null config");
  memset(cfg, 0, sizeof *cfg);
  if (!path) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: null path");
  if (n_set < 0 || (n_set > 0 && !set)) return FG_FAIL(FG_ERR_INVALID, "fg_config_load: bad overrides");
  loaded *v = calloc(1, sizeof *v);
  if (!v) return FG_FAIL(FG_ERR_OOM, "out of memory");
  fg_schema_ctx c;
  fg_status st = fg_schema_init(&c, path, set, n_set);
  if (st == FG_OK) st = load(&c, v);
  if (st == FG_OK && !(v->cfg.path = strdup(path))) st = FG_FAIL(FG_ERR_OOM, "out of memory");
  fg_schema_release(&c);
  free(v->device);
  if (st == FG_OK) *cfg = v->cfg;
  else fg_config_free(&v->cfg);
  free(v);
  return st;
}

void fg_config_free(fg_config *cfg) {
  if (!cfg) return;
  free(cfg->path);
  free(cfg->name);
  free(cfg->dataset);
  free(cfg->data_dir);
  free(cfg->normalize);
  free(cfg->arch);
  for (int i = 0; i < FG_MAX_METHODS; i++) fg_method_config_free(&cfg->methods[i]);
  config_storage *store = cfg->storage;
  if (store) {
    for (int i = 0; i < store->n_profiles; i++) free(store->profile_entries[i].name);
    free(store->profile_entries);
    free(store->profiles);
    free(store->tiers);
    free(store);
  }
  memset(cfg, 0, sizeof *cfg);
}
