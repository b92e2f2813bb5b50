/* Memory plans: the exact program and memory layout of one training (or inference) step.
 *
 * Planning allocates nothing. From a graph, a batch size, an execution mode, a loss and an
 * optimizer it derives which nodes run forward and backward (frozen parameters need no
 * gradient, and a frozen prefix keeps no activations), the instruction list of one step, the
 * lifetime of every buffer, and an offset for each inside two arenas (activations saved for
 * backward; transient workspace), packed by a best-fit pass over the lifetimes. Region sizes are
 * rounded exactly as the ledger will charge them, so a plan's total is the peak the ledger
 * measures when a trainer built from it runs a step. Owns: the program and the layout. */
#ifndef FG_PLAN_H
#define FG_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/mem/ledger.h"
#include "engine/nn/graph.h"
#include "engine/optim/optim.h"

typedef enum fg_exec_mode {
  FG_EXEC_STORE = 0,    /* keep every activation backward needs */
  FG_EXEC_CHECKPOINT,   /* keep segment inputs only; recompute each segment in backward */
  FG_EXEC_INFERENCE,    /* forward only: no gradients, no optimizer, nothing saved */
} fg_exec_mode;

typedef enum fg_loss_kind {
  FG_LOSS_XENT = 0,
  FG_LOSS_KL,
  FG_LOSS_NHSIC, /* weight * nHSIC(feature; target), NeuLite's Curriculum Mentor terms */
  FG_LOSS_EXTERNAL, /* a loss computed by the caller from an output's value, which writes the
                       output's gradient itself between fg_trainer_forward and
                       fg_trainer_backward (engine/nn/trainer.h); weight unused. No other term
                       may read that output. */
} fg_loss_kind;

typedef enum fg_hsic_target {
  FG_HSIC_INPUT = 0, /* the input batch X, flattened per sample */
  FG_HSIC_LABELS,    /* one-hot labels Y (hsic.classes wide) */
} fg_hsic_target;

/* One term of the training loss. Outputs are indices into the graph's output list, features
 * into its feature list. */
typedef struct fg_loss_term {
  fg_loss_kind kind;
  int output;          /* xent: logits; kl: student; nhsic: the feature */
  int teacher;         /* kl: teacher logits */
  int detach_teacher;  /* kl: no gradient into the teacher */
  float weight;        /* xent, nhsic weight (kl uses kl.weight); a negative nhsic weight
                          maximises the dependence */
  fg_kl_desc kl;
  fg_hsic_target hsic_target; /* nhsic */
  fg_nhsic_desc hsic;         /* nhsic: sigma, classes (label targets) */
} fg_loss_term;

enum { FG_MAX_LOSS_TERMS = 32, FG_MAX_OUTPUTS = 16 };

typedef struct fg_loss_spec {
  int n; /* 0: cross-entropy on every output with weight 1 (the joint multi-exit loss) */
  fg_loss_term terms[FG_MAX_LOSS_TERMS];
  int class_mask; /* 1: cross-entropy terms mask the classes a client lacks (fg_trainer_set_class_mask) */
} fg_loss_spec;

typedef struct fg_trainer_options {
  int64_t batch;           /* largest batch a step will see */
  fg_exec_mode mode;
  fg_optim_config optim;   /* kind NONE: gradients only */
  fg_loss_spec loss;
  fg_device device;
  /* > 0: before each optimizer update the gradients are scaled by clip_norm / (norm + 1e-6) when
   * that is below 1, norm the L2 norm of all of them together (PyTorch's clip_grad_norm_); the
   * optimizer's weight decay comes after. 0: no clipping. */
  float clip_norm;
  /* > 0: the loss has the proximal term (prox_mu / 2) ||θ||^2 + <c, θ> over the trained
   * parameters θ, c set by fg_trainer_set_prox_linear (zero until set): before clipping, each
   * update adds its gradient prox_mu θ + c. FedDyn's -<θ, g> + (α/2) ||θ - θ^t||^2 is
   * prox_mu = α, c = -g - α θ^t (up to a constant). The loss a step reports leaves the term out.
   * c takes a region laid out as the gradients (category optim). 0: no such term. */
  float prox_mu;
  /* 1: every op gets the least workspace it needs. 0: a convolution's workspace grows to what
   * the backend's fastest plan for it takes (fg_conv2d_workspace_within) wherever that leaves
   * the step's activation and workspace bytes as they were. */
  int lean_workspace;
} fg_trainer_options;

/* Where a buffer lives. */
typedef enum fg_arena {
  FG_ARENA_ACT = 0,  /* saved activations (category activations) */
  FG_ARENA_WS,       /* transient (category workspace) */
  FG_ARENA_IMAGES,   /* the input batch (category data) */
  FG_ARENA_COUNT
} fg_arena;

typedef struct fg_vbuf {
  size_t bytes;       /* rounded to the device alignment */
  int first, last;    /* instruction indices of its lifetime (inclusive) */
  int program;        /* 0 = train, 1 = eval */
  int is_value;       /* node value or saved statistic (else gradient or scratch) */
  int parent;         /* in-place merges: storage shared with `parent` (itself if root) */
  fg_arena arena;
  size_t offset;
} fg_vbuf;

typedef enum fg_instr_kind {
  FG_I_FORWARD = 0,
  FG_I_RECOMPUTE,   /* forward again from a checkpoint; BN statistics not updated twice */
  FG_I_LOSS,        /* one loss term (node = term index) */
  FG_I_BACKWARD,
  FG_I_ACCUMULATE,  /* din[0] += dout (a gradient reaching a node through a view) */
  FG_I_ENSEMBLE,    /* eval: out (=|+=) in[0] / outputs (node = output index): mean of the exits' logits */
} fg_instr_kind;

typedef struct fg_instr {
  fg_instr_kind kind;
  int node;
  int eval;            /* inference semantics (BN running statistics, no dropout) */
  int update_running;  /* BN: update running statistics */
  int out;             /* value written */
  int in[2];           /* values read */
  int aux[2];          /* BN mean/invstd, max-pool argmax: written by forward, read by backward */
  int ws;              /* op workspace */
  int self_out;        /* backward: the node's own forward output (ReLU) */
  int dout;            /* backward: gradient of the output */
  int din[2];          /* backward / loss: gradients written (-1: none) */
  int din_acc[2];      /* accumulate into din instead of overwriting */
  int accumulate;      /* ensemble: add into out instead of overwriting */
} fg_instr;

/* Regions a trainer allocates, in this order. */
typedef enum fg_plan_region {
  FG_REGION_STATE = 0, /* parameters + buffers */
  FG_REGION_GRADS,
  FG_REGION_OPTIM,
  FG_REGION_ACT,
  FG_REGION_WS,
  FG_REGION_IMAGES,
  FG_REGION_LABELS,
  FG_REGION_CLASS_MASK, /* [classes] floats when the loss masks classes */
  FG_REGION_PROX,       /* the proximal term's linear part c, laid out as the gradients (prox_mu > 0) */
  FG_PLAN_REGIONS
} fg_plan_region;

typedef struct fg_plan {
  fg_trainer_options opt;
  int n_nodes;
  fg_instr *train;
  int n_train;
  int loss_at;             /* index of the first LOSS instruction in `train` */
  int backward_at;         /* index of the first instruction after the LOSS instructions: the
                              forward part of a step is [0, backward_at), the backward part the
                              rest. Values and gradients an external term names live at least
                              until backward_at - 1, so the caller can use them in between. */
  fg_instr *eval;
  int n_eval;
  fg_vbuf *vbufs;
  int n_vbufs;
  int64_t *grad_offset;    /* per parameter: float offset in the gradient region, or -1 */
  int64_t *optim_offset;   /* per parameter: float offset in the optimizer region, or -1 */
  int64_t grad_numel, optim_numel;
  int *node_backward;      /* per node: runs backward in the train program */
  int n_backward_nodes;
  size_t region_bytes[FG_PLAN_REGIONS];
  size_t bytes_by_cat[FG_MEM_CATEGORIES];
  size_t total;            /* sum of region_bytes = the ledger's peak for one step */
} fg_plan;

/* The loss a trainer optimises: `l` itself, or (l->n == 0) cross-entropy on every output with
 * weight 1. */
fg_loss_spec fg_loss_effective(const fg_graph *g, const fg_loss_spec *l);

/* Builds the plan of `g` under `o`. The graph must not change while the plan is used. Every op the
 * plan will run is checked with the backend of o->device first (fg_plan_check_supported), so
 * unsupported work fails here, naming the op, its shapes, the node and the backend. */
fg_status fg_plan_build(const fg_graph *g, const fg_trainer_options *o, fg_plan **out);
/* Whether the backend of p's device (registered, available or not) can run every op p's programs
 * call (engine/backend/ops.h, fg_op_supported); FG_ERR_UNSUPPORTED naming the first that it
 * cannot, FG_ERR_NO_DEVICE when no backend is registered for the device. */
fg_status fg_plan_check_supported(const fg_graph *g, const fg_plan *p);
void fg_plan_free(fg_plan *p);
fg_mem_category fg_plan_region_category(fg_plan_region r);
const char *fg_plan_region_name(fg_plan_region r);
const char *fg_exec_mode_name(fg_exec_mode m);
/* The storage root of a buffer after in-place merges. */
int fg_plan_root(const fg_plan *p, int vbuf);

#endif
