/* The interface every FL method implements, and the registry of methods (the only list of them).
 *
 * A method declares its options (configs/README.md `method`) once, in its own file: a struct of
 * their values and a table of fields (fl/schema.h: name, type, default, range, one-line doc)
 * that reading a config file, defaults, --set and the resolved config.yaml all walk
 * (fl/method_config.h); rules across its options go in its check_options. Options a family of
 * methods shares (the width methods' rates, the multi-exit methods' levels and lr) are declared
 * once here, and begin the options struct of each method that takes them.
 *
 * A method describes, from its configuration and the base model: the global model, the levels a
 * client can train (level 0 the most capable; each a model spec, e.g. a width rate or a depth),
 * how sub-model channels are chosen, how updates are weighted, and each client's local loss. The
 * server (fl/server.h) does the rest the same way for every method: it measures each level's
 * memory with the engine's planner, gives each client the most capable level its budget fits,
 * trains clients one after another under their budgets, and aggregates with one sub-model
 * algebra (fl/submodel.h). A method file holds only that method's logic. Owns nothing. */
#ifndef FG_FL_METHOD_H
#define FG_FL_METHOD_H

#include <stddef.h>

#include "engine/nn/models.h"
#include "engine/nn/plan.h"
#include "fl/method_config.h"
#include "fl/schema.h"
#include "fl/submodel.h"

typedef struct fg_level {
  char label[48];        /* "full", "rate 0.5", "depth 2", "rate 0.7 x 2 exits" */
  fg_model_spec spec;    /* the model a client at this level trains */
  size_t planned_bytes;  /* filled by the server: the plan of one local step at this level */
} fg_level;

typedef struct fg_method_plan {
  fg_model_spec global;            /* the global model */
  fg_level levels[FG_MAX_LEVELS];  /* level 0 is the most capable */
  int n_levels;
  int ignore_budgets;   /* every client trains level 0 with no cap (the FedAvg upper bound) */
  int same_level;       /* every client trains the level the smallest budget fits, and that
                           level's model is the global model (FedAvg-S) */
  fg_channel_policy channels;
  fg_weighting weighting;
  int label_mask;       /* clients mask classes they lack, in the loss and in classifier averaging */
  fg_bn_mode bn_mode;   /* BN of every client and of the global model's evaluation */
  int static_bn;        /* recompute BN statistics over training data before each evaluation */
  int no_ensemble;      /* the global model's outputs are alternatives (NeuLite's stage
                           classifiers), not exits to average: no ensemble accuracy */
  int level_by_index;   /* client i trains level n_levels - 1 - (i mod n_levels) whatever its budget
                           (HypeMeFed's reference assignment), uncapped */
  int drop_last;        /* local training skips a client's final partial batch (unless it is its
                           only one), as HypeMeFed's reference does */
  int local_optim_set;  /* local training uses local_optim instead of the configuration's */
  fg_optim_config local_optim;
  float prox_mu;        /* > 0: local training has a proximal term (prox_mu in fg_trainer_options)
                           whose linear part the method gives per client (client_prox) */
} fg_method_plan;

/* A method's own server-side state (HypeMeFed's hypernetworks). Opaque, owned by the method. */
typedef struct fg_method_server fg_method_server;

/* A schedule: methods whose participants all train one level per round (NeuLite's stages)
 * choose it here; the server then samples the round's participants among the clients whose
 * budget fits that level. Opaque, owned by the method. */
typedef struct fg_schedule fg_schedule;

typedef struct fg_method_ops {
  const char *name;
  /* Its options: the struct of their values (options_size bytes, fg_method_config.options), the
   * options it shares with other methods (a table below, whose values begin the struct), then
   * its own table; NULL / 0 for none. The weighting when not given. */
  size_t options_size;
  const fg_field *shared_options;
  int n_shared_options;
  const fg_field *options;
  int n_options;
  fg_weighting weighting;
  /* What its reference draws each round: the kind the sampling kind `reference` (the default)
   * stands for. Methods with levels draw among the clients that fit at least one (eligible), or
   * the same number per level where their reference does (per_level); fedavg from everyone. */
  fg_sampling_kind sampling;
  /* Optional: the method's rules across its options (or needing the model `arch`), once each
   * option has its value; given[i] says whether its own option i was in the entry. An error
   * names the key through the context (fg_schema_fail_key: "method.stage_rounds: ..."). */
  fg_status (*check_options)(fg_schema_ctx *c, const void *options, const unsigned char *given, const char *arch);
  /* Optional: the comment the resolved config.yaml holds instead of its own option i (an option
   * the entry's other options leave unused), or NULL to write its value. Consecutive options
   * with the same comment share one line. */
  const char *(*option_note)(const void *options, int i);
  /* Fills the plan from the method's options and the base model (arch, width, input, classes). */
  fg_status (*plan)(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out);
  /* The local loss of a client at `level` in round `round` of `rounds` (0-based); NULL: cross-
   * entropy with weight 1 on every output of the level's model. */
  void (*loss)(const fg_method_config *mc, const fg_method_plan *mp, int level, int round, int rounds,
               fg_loss_spec *out);
  /* Optional: adjusts a level's freshly built model (freeze flags, BN modes) after the server
   * has set the plan's BN mode, before it is planned. */
  fg_status (*prepare_level)(const fg_method_config *mc, const fg_method_plan *mp, int level, fg_graph *g);
  /* Optional (all three or none): a schedule for `rounds` rounds over the global model `global`
   * (whose state the server holds), random choices keyed by the experiment `seed`; `next` gives the level of round `round` (0-based), called
   * once per round in order from the round a run starts or resumes at, with the global state
   * after the previous round. */
  fg_status (*schedule_create)(const fg_method_config *mc, const fg_method_plan *mp, const fg_graph *global,
                               uint64_t seed, int rounds, int start_round, fg_schedule **out);
  fg_status (*schedule_next)(fg_schedule *s, int round, const float *global_state, int *level);
  void (*schedule_free)(fg_schedule *s);
  /* Optional (create, collect, complete and free together): server-side state; create may leave
   * *out NULL when the method's options need none (the others are then not called). It sizes it
   * for the global model, `clients` clients and at most max_participants per round, computes on
   * `device` (the run's) and charges it to the server's ledger; collect sees participant `slot`
   * (0-based, in the round's order), client `client`, right after it trained `level` from `sent`
   * (the sub-model the server sent it) into `trained` (both [state numel of g]); complete runs
   * once all participants trained, before the aggregate is formed: the round's participants'
   * levels levels[n], the global model the round started from; it adds the method's own
   * contributions to `agg` (what the participants' levels lack) or replaces means the
   * participants formed (fg_aggregator_mean, fg_aggregator_replace). tensor enumerates the state a checkpoint must
   * keep (i = 0, 1, ...: name and numel; 0 past the end); tensor_get / tensor_set copy tensor i
   * to / from host [numel] (the state may live on a device). */
  fg_status (*server_create)(const fg_method_config *mc, const fg_method_plan *mp, const fg_graph *global,
                             uint64_t seed, int clients, int max_participants, fg_device device, fg_ledger *ledger,
                             fg_method_server **out);
  fg_status (*server_collect)(fg_method_server *ms, int slot, int client, int level, const fg_graph *g,
                              const float *sent, const float *trained);
  fg_status (*server_complete)(fg_method_server *ms, int round, const int *levels, int n, fg_aggregator *agg,
                               const fg_graph *global, const float *global_state);
  int (*server_tensor)(fg_method_server *ms, int i, const char **name, int64_t *numel);
  fg_status (*server_tensor_get)(fg_method_server *ms, int i, float *host);
  fg_status (*server_tensor_set)(fg_method_server *ms, int i, const float *host);
  void (*server_free)(fg_method_server *ms);
  /* Optional (with server state; needed when the plan's prox_mu > 0): the linear part of client
   * `client`'s proximal term (fg_trainer_set_prox_linear, engine/nn/trainer.h) before it trains
   * `level` (model g) from `sent` [state numel of g]: *linear points to [state numel of g] floats
   * the method owns, valid until its next call. Rank 0 asks it for every participant before the
   * round trains (in a spread run the terms travel with the round, fl/job.h). */
  fg_status (*client_prox)(fg_method_server *ms, int client, int level, const fg_graph *g, const float *sent,
                           const float **linear);
  /* Optional (with server state): the method's own records as one JSON object's text (e.g.
   * {"hypernet": [...]}) into json [cap]: of the round just completed (final 0: metrics.jsonl's
   * "method" of that round) or of the whole run (final 1: summary.json's "method"); "" for none.
   * FG_ERR_INVALID when cap is too small. */
  fg_status (*server_report)(fg_method_server *ms, int final, char *json, size_t cap);
  /* Optional: the factor participant `slot` of `n` is weighted by, for global parameter p, on top of
   * the plan's weighting (1 when absent). */
  double (*tensor_weight)(const fg_method_config *mc, int slot, int n, const fg_param *p);
} fg_method_ops;

/* The method called `name`, or NULL with FG_ERR_CONFIG recorded (listing the known names). */
const fg_method_ops *fg_method_find(const char *name);
/* The registry in order: fg_method_count() methods, fg_method_at(i) for i in [0, count). */
int fg_method_count(void);
const fg_method_ops *fg_method_at(int i);

/* What the server and `fedgap memplan --method` do with a level, in one place. */
/* The model a client at `level` trains: built from the level's spec, BN mode of the plan, the
 * method's preparation (freeze flags) applied. */
fg_status fg_method_build_level(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                                int level, fg_graph **out);
/* The local loss at `level` in round `round` of `rounds`, with the plan's class mask flag. */
fg_loss_spec fg_method_level_loss(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                                  int level, int round, int rounds);

/* The trainer options of local training: the configuration's (`o`), with the plan's own local
 * optimizer when it has one. */
void fg_method_local_options(const fg_method_plan *mp, fg_trainer_options *o);

/* The plan of one local step at `level` in round `round` of `rounds` (0-based), made the one way
 * every caller makes it: g is the level's model (fg_method_build_level), planned under the local
 * options `local` (the configuration's for that round) with the method's own optimizer
 * (fg_method_local_options) and the level's loss at that round (fg_method_level_loss). The server
 * decides what fits a budget from the plan of the last round (fg_method_budget_round: its loss is
 * the largest, terms that start late included), `fedgap memplan --method` prints that same plan,
 * and local training runs the plan of its own round (fg_trainer_create_planned). */
fg_status fg_method_plan_step(const fg_method_ops *ops, const fg_method_config *mc, const fg_method_plan *mp,
                              int level, const fg_graph *g, const fg_trainer_options *local, int round, int rounds,
                              fg_plan **out);
/* The round whose plan decides what fits a budget in a run of `rounds` rounds: the last. */
int fg_method_budget_round(int rounds);

/* The options of the width methods (fedavg-s, heterofl, fedrolex). */
typedef struct fg_width_options {
  double rates[FG_MAX_LEVELS]; /* width rate of each level, strictly descending */
  int n_rates;
} fg_width_options;
enum { FG_WIDTH_OPTIONS = 1 };
extern const fg_field fg_width_option_table[FG_WIDTH_OPTIONS];

/* The options of the multi-exit methods (hypemefed, multiexit), read by fg_method_plan_multiexit. */
typedef struct fg_multiexit_options {
  int levels_by_index; /* levels: index (1, the reference code) or budget (0) */
  double lr;           /* local Adam learning rate */
} fg_multiexit_options;
enum { FG_MULTIEXIT_OPTIONS = 2 };
extern const fg_field fg_multiexit_option_table[FG_MULTIEXIT_OPTIONS];

/* Shared level builders for methods. */
/* The plan of the multi-exit methods (hypemefed, multiexit; their options begin with
 * fg_multiexit_options): depth levels of `base` (vgg-me, or cnn with exits), every client at the
 * deepest level its budget fits or, by index, client i at depth (i mod L) + 1; local Adam at lr
 * with coupled weight decay 0.1 lr (hypemefed.md §2). FG_ERR_CONFIG for another architecture. */
fg_status fg_method_plan_multiexit(const fg_method_config *mc, const fg_model_spec *base, fg_method_plan *out);
/* One level per depth of a multi-exit model, deepest first: depth blocks .. 1 of `base` with
 * every exit up to the depth (DepthFL, HypeMeFed, the multi-exit baseline). */
void fg_levels_by_depth(const fg_model_spec *base, fg_method_plan *mp);
/* One level per width rate (descending), first-k sub-models of `base`; `scaler` as HeteroFL /
 * ScaleFL use it. */
void fg_levels_by_rate(const fg_model_spec *base, const double *rates, int n, fg_scaler_mode scaler,
                       fg_method_plan *mp);
/* The loss "cross-entropy on every output of the level's model" (weights 1). */
void fg_loss_every_exit(int outputs, fg_loss_spec *out);
/* Number of outputs a model spec has (its exits). */
int fg_spec_outputs(const fg_model_spec *spec);

#endif
