/* Trainers: a model's state, gradients, optimizer and activation memory on one device, and the
 * execution of a plan (engine/nn/plan.h) step by step.
 *
 * Creating a trainer allocates every region its plan names, all charged to the given ledger;
 * nothing is allocated afterwards, so a ledger cap below the plan's total fails at creation
 * with FG_ERR_BUDGET and leaves nothing charged, and the ledger's peak after any number of steps
 * equals the plan's total. The trainer owns its input: a batch is copied in with
 * fg_trainer_set_batch (from host memory or the trainer's device), then step / evaluate run on it.
 * No code outside a backend touches the trainer's device memory. The graph must outlive
 * the trainer. Owns: the regions, and the plan when it built it (fg_trainer_create). */
#ifndef FG_TRAINER_H
#define FG_TRAINER_H

#include <stdint.h>

#include "engine/mem/region.h"
#include "engine/nn/plan.h"

typedef struct fg_trainer fg_trainer;

typedef struct fg_step_stats {
  double loss;                       /* train: sum of the weighted loss terms; eval: unused */
  double term_value[FG_MAX_LOSS_TERMS]; /* train: each term (xent, kl: weighted; nhsic: the
                                           unweighted nHSIC value) */
  double output_loss[FG_MAX_OUTPUTS];/* eval: mean cross-entropy of each output */
  int64_t correct[FG_MAX_OUTPUTS];   /* top-1 hits of each output (train: outputs with xent) */
  int n_outputs;
  int64_t ensemble_correct;          /* eval with several outputs: hits of the mean of their logits */
  double ensemble_loss;
  int64_t count;                     /* samples in the batch */
} fg_step_stats;

fg_status fg_trainer_create(const fg_graph *g, const fg_trainer_options *o, fg_ledger *ledger,
                            fg_trainer **out);
/* A trainer that runs `plan`, which fg_plan_build made for g: borrowed, not planned again (the
 * plan must outlive the trainer and not change; several trainers may share it). */
fg_status fg_trainer_create_planned(const fg_graph *g, const fg_plan *plan, fg_ledger *ledger, fg_trainer **out);
void fg_trainer_destroy(fg_trainer *t);

const fg_plan *fg_trainer_plan(const fg_trainer *t);
const fg_graph *fg_trainer_graph(const fg_trainer *t);

/* Copies a batch into the trainer's input: images [n, C, H, W] f32 (the graph's input shape,
 * 1 <= n <= the plan's batch), labels [n] i32 or NULL (then the labels are left as they are:
 * graphs whose loss reads none). Either may live in host memory or on the trainer's device; the
 * following step or evaluation runs on these n samples. */
fg_status fg_trainer_set_batch(fg_trainer *t, const fg_tensor *images, const fg_tensor *labels);

/* The whole state vector (parameters + buffers) [state_numel], on the device. */
fg_tensor fg_trainer_state(const fg_trainer *t);
fg_status fg_trainer_set_state(fg_trainer *t, const float *host_state);
fg_status fg_trainer_get_state(const fg_trainer *t, float *host_state);
/* Gradient of parameter `param` after a step, copied to host [numel]; FG_ERR_INVALID when the
 * parameter gets no gradient under this plan. */
fg_status fg_trainer_get_grad(const fg_trainer *t, int param, float *host);

/* Zeroes the optimizer state and its step counter (FL clients do this every round). */
fg_status fg_trainer_reset_optimizer(fg_trainer *t);
void fg_trainer_set_lr(fg_trainer *t, float lr);
/* Dropout masks of step k come from the stream (seed, dropout, stream, k, node). */
void fg_trainer_set_dropout_stream(fg_trainer *t, uint64_t seed, uint64_t stream);
/* The classes the cross-entropy terms keep: host [classes] of 0/1 (plans whose loss has
 * class_mask set; FG_ERR_INVALID otherwise). */
fg_status fg_trainer_set_class_mask(fg_trainer *t, const float *host_mask);
/* The linear part c of the proximal term (plans with prox_mu > 0, engine/nn/plan.h): host
 * [state numel], laid out as the state; the entries of parameters without a gradient and of
 * buffers are ignored. FG_ERR_INVALID when the plan has no proximal term. */
fg_status fg_trainer_set_prox_linear(fg_trainer *t, const float *host_state_layout);
/* BN momentum override for every BN layer in training forwards (e.g. 1/(k+1) at batch k for a
 * cumulative average, as static BN recalibration does); a value <= 0 restores each layer's own. */
void fg_trainer_set_bn_momentum(fg_trainer *t, float momentum);
/* Changes a loss term's weight (e.g. a ramped distillation weight) without re-planning. */
fg_status fg_trainer_set_loss_weight(fg_trainer *t, int term, float weight);

/* One training step on the first n (<= batch) samples of the input: forward, loss, backward,
 * optimizer update. FG_ERR_NUMERIC when the loss is not finite (the state is then unchanged).
 * Plans with an external loss term (FG_LOSS_EXTERNAL) use the parts below instead
 * (FG_ERR_INVALID). */
fg_status fg_trainer_step(fg_trainer *t, int64_t n, fg_step_stats *st);
/* Forward, loss and backward only; gradients stay readable with fg_trainer_get_grad. */
fg_status fg_trainer_compute_gradients(fg_trainer *t, int64_t n, fg_step_stats *st);

/* A training step in parts, for a loss the caller computes from an output's value
 * (FG_LOSS_EXTERNAL terms; plans without one may use them too: forward + backward + update is
 * exactly fg_trainer_step):
 *   fg_trainer_forward    the train program up to its losses on the first n samples: every
 *                         forward and the loss terms the trainer computes (their sum in st->loss;
 *                         FG_ERR_NUMERIC when it is not finite, and the step ends there);
 *   fg_trainer_output     the value of output k  } device tensors [n, ...] (the output's shape),
 *   fg_trainer_output_grad  its gradient buffer  } valid until backward; only outputs an
 *                         external term names. The caller writes the whole gradient (d loss /
 *                         d output): the buffer holds no defined values before;
 *   fg_trainer_backward   the rest of the program: every parameter gradient (readable with
 *                         fg_trainer_get_grad);
 *   fg_trainer_update     the optimizer step on those gradients.
 * The input must not change between forward and backward (backward reads it). */
fg_status fg_trainer_forward(fg_trainer *t, int64_t n, fg_step_stats *st);
fg_status fg_trainer_output(const fg_trainer *t, int k, fg_tensor *value);
fg_status fg_trainer_output_grad(const fg_trainer *t, int k, fg_tensor *grad);
fg_status fg_trainer_backward(fg_trainer *t);
fg_status fg_trainer_update(fg_trainer *t);
/* Inference on the first n samples: per-output loss and hits. */
fg_status fg_trainer_evaluate(fg_trainer *t, int64_t n, fg_step_stats *st);

#endif
