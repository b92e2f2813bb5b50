/* HypeMeFed's server-side hypernetworks (spec hypemefed.md §3): one network that maps a trained
 * conv weight of exit block j (the source) to the conv weight at the same position of exit block
 * j+1 (the target), trained on the server with MSE on (source, target) pairs from the clients
 * that trained both layers, then used to generate the target for the clients that did not.
 *
 * Two kinds:
 *   FG_HYPERNET_LRF (the method's):
 *     the source S [O_s, I_s, k, k] is read as M [O_s k, I_s k] and factored by thin SVD
 *     (fg_lrf_factor, engine/nn/lrf.h; fg_svd's sign rule, flag F8) at rank
 *     r_eff = min(rank, O_s k, I_s k) into
 *       A_src [r_eff, O_s k]  (row i = sqrt(s_i) u_i^T),   B_src [r_eff, I_s k]  (sqrt(s_i) v_i^T).
 *     Two MLPs Linear(bias) -> ReLU -> Linear(bias), hidden width `hidden`, act ROW-WISE (the
 *     r_eff rows are the batch, so the size does not depend on the rank):
 *       MLP_A: O_s k -> I_t k,   MLP_B: I_s k -> O_t k   (the cross-over of flag F7)
 *       A' = MLP_A(A_src) [r_eff, I_t k],   B' = MLP_B(B_src) [r_eff, O_t k]
 *     and the generated target is W = B'^T A' [O_t k, I_t k], read row-major as
 *     [O_t, I_t, k, k] (k: the target's own kernel extents).
 *   FG_HYPERNET_NAIVE (the baseline the paper compares with, §8): one MLP
 *     Linear(numel(src) -> hidden) -> ReLU -> Linear(hidden -> numel(tgt)) on the flattened source,
 *     batch 1, whose output is the flattened target.
 *
 * Each MLP is an engine graph (engine/nn/graph.h): input [in, 1, 1] -> flatten -> fc1 (hidden,
 * bias) -> ReLU -> fc2 (out, bias), batch r_eff (LRF) or 1 (naive), with its own trainer
 * (engine/nn/trainer.h) on the hypernetwork's device: the plan comes from the engine's planner,
 * the update is the engine's Adam. The loss is computed here, outside the graphs (for LRF it
 * joins both MLPs' outputs): the MLP output is an external loss term (FG_LOSS_EXTERNAL); each
 * step runs the trainers' forward parts, W = B'^T A' (fg_lrf_rebuild), MSE(W, target) with its
 * gradient dW (fg_mse), dA' = B' dW and dB' = A' dW^T (linear ops), writes those into the
 * trainers' output gradients, and runs their backward parts and updates. Naive: the MSE of the
 * MLP's output directly.
 *
 * Training (fg_hypernet_train): loss = MSE over all target elements (mean), no gradient through
 * the SVD; a fresh Adam (betas 0.9/0.999, eps 1e-8, no weight decay, moments zeroed, step 1) at
 * every call while the weights persist; `epochs` epochs, each visiting the pairs once in a
 * shuffled order, batch 1, one Adam step per pair. The order of epoch e is the Fisher-Yates
 * shuffle (fg_rng_shuffle_u32) of 0..n-1 drawn from the stream fg_rng_stream(key, FG_RNG_SHUFFLE,
 * e, 0). The reference redoes the source SVD at every step; a pair's source never changes within
 * a call, so with `cache_factors` the factors of each pair are computed once per call and kept:
 * the SVD is deterministic, so the results are bit-identical either way (tested).
 *
 * Weights: one flat float vector of fg_hypernet_numel floats (fg_hypernet_get_weights /
 * fg_hypernet_set_weights copy it through host memory, for checkpoints), the MLPs one after the
 * other (LRF: MLP_A then MLP_B; naive: the one MLP), each its graph's state vector
 *   w1 [hidden, in], b1 [hidden], w2 [out, hidden], b2 [out]
 * (PyTorch's Linear layout). Initialisation is PyTorch's Linear default: every element of w1 and
 * b1 uniform in (-1/sqrt(in), 1/sqrt(in)), of w2 and b2 in (-1/sqrt(hidden), 1/sqrt(hidden));
 * tensor t (0..3 for MLP_A or the naive MLP, 4..7 for MLP_B, in the order above) draws element j
 * as bound * (2u - 1), u the j-th fg_rng_uniform_double of fg_rng_stream(seed, FG_RNG_INIT, t, 1).
 *
 * Memory: every buffer is planned by fg_hypernet_plan (the MLPs' trainer plans from the engine's
 * planner, fg_plan_build, plus the buffers below) and allocated by fg_hypernet_create in regions
 * charged to the caller's ledger; train and generate allocate nothing. Categories:
 *   params      the weights (the trainers' state regions)                      (FG_MEM_PARAMS)
 *   grads       their gradients                                                (FG_MEM_GRADS)
 *   optim       Adam's m and v                                                 (FG_MEM_OPTIM)
 *   activations what each trainer keeps for backward (its plan's activation arena: the ReLU
 *               output, for r_eff rows (LRF) or 1 (naive), and whatever the planner packs with
 *               it); the generated W (LRF)                                     (FG_MEM_ACTIVATIONS)
 *   workspace   each trainer's transient buffers (its plan's workspace arena: the MLP output and
 *               the output and hidden gradients, unless packed with the activations); dW and the
 *               SVD/LRF workspace (LRF)                                        (FG_MEM_WORKSPACE)
 *   data        each trainer's input batch (the factor rows, or the flattened source) and label
 *               buffer (unused: a few bytes); the staged source and target, the factor slots
 *               (LRF: max_pairs with cache_factors, else 1); the shuffle order, in host memory
 *                                                                              (FG_MEM_DATA)
 * Devices: the networks, the staged pairs, the factors and all compute live on desc.device
 * (the host device by default); sources and targets are host arrays copied in and out, and the
 * shuffle order is host memory. All compute goes through the op entry points and the trainers.
 *
 * Owns: its graphs, trainers, regions and the struct itself. Not thread-safe (like the ledger). */
#ifndef FG_FL_HYPERNET_H
#define FG_FL_HYPERNET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "engine/mem/ledger.h"
#include "engine/tensor/tensor.h"

typedef enum fg_hypernet_kind { FG_HYPERNET_LRF = 0, FG_HYPERNET_NAIVE } fg_hypernet_kind;

/* Zero-valued numeric fields take the defaults in brackets. */
typedef struct fg_hypernet_desc {
  fg_hypernet_kind kind;
  int64_t src_shape[4]; /* source conv weight [O_s, I_s, kh, kw] */
  int64_t tgt_shape[4]; /* target conv weight [O_t, I_t, kh, kw] */
  int64_t rank;         /* LRF rank r [100]; r_eff = min(r, O_s kh, I_s kw) */
  int64_t hidden;       /* MLP hidden width [512] */
  float lr;             /* Adam learning rate [5e-4] */
  int epochs;           /* epochs per train call [25] */
  int max_pairs;        /* most pairs one train call takes [8] */
  int cache_factors;    /* LRF: 1 keeps each pair's source factors for the whole train call (one
                           SVD per pair and call, max_pairs factor sets of memory); 0 redoes the
                           SVD at every step, like the reference. Same results. Ignored by naive. */
  fg_device device;     /* where the networks live and compute [the zero value: the host device] */
} fg_hypernet_desc;

/* Bytes per ledger category; total = the sum (the regions' rounded sizes, exactly what the
 * ledger is charged). */
typedef struct fg_hypernet_memory {
  size_t params, optim, grads, activations, workspace, data, total;
} fg_hypernet_memory;

typedef struct fg_hypernet fg_hypernet;

/* A desc with every default filled in (cache_factors on, the host device) for the given kind
 * and shapes. */
fg_hypernet_desc fg_hypernet_defaults(fg_hypernet_kind kind, const int64_t src_shape[4],
                                      const int64_t tgt_shape[4]);

/* Number of weights (the flat vector's length) of the hypernetwork `d` describes, without
 * allocating; -1 (and the message) when d is invalid. */
int64_t fg_hypernet_param_count(const fg_hypernet_desc *d);

/* The bytes fg_hypernet_create would charge, per category, without allocating any region (for
 * configurations too large to allocate, like the naive STL-10 networks). The LRF kind asks the
 * backend of d->device for its SVD workspace size, so that backend must be registered. */
fg_status fg_hypernet_plan(const fg_hypernet_desc *d, fg_hypernet_memory *m);

/* Plans, allocates (charging `ledger`, which may carry a cap: FG_ERR_BUDGET then, nothing left
 * charged) and initialises the weights from `seed` as in the header comment. */
fg_status fg_hypernet_create(const fg_hypernet_desc *d, uint64_t seed, fg_ledger *ledger,
                             fg_hypernet **out);
/* Frees the regions (discharging the ledger) and the struct; NULL is allowed. */
void fg_hypernet_free(fg_hypernet *h);

/* Trains on n pairs (1 <= n <= max_pairs) of host arrays src[i] [numel(src_shape)] and tgt[i]
 * [numel(tgt_shape)] as in the header comment: a fresh Adam, `epochs` shuffled epochs keyed by
 * `key`, batch 1. mse_first / mse_last (either may be NULL): the mean over the pairs of the MSE
 * measured at each step (before its update) of the first / last epoch. A non-finite input or loss
 * fails with FG_ERR_NUMERIC; the weights then hold the updates made so far. */
fg_status fg_hypernet_train(fg_hypernet *h, int n, const float *const *src, const float *const *tgt,
                            uint64_t key, double *mse_first, double *mse_last);

/* tgt [numel(tgt_shape)] := h(src [numel(src_shape)]), no gradient: LRF W = B'^T A' from the
 * factors of src at rank r_eff, read row-major as [O_t, I_t, kh, kw]; naive the MLP's output.
 * A non-finite source fails with FG_ERR_NUMERIC. */
fg_status fg_hypernet_generate(fg_hypernet *h, const float *src, float *tgt);

/* The persistent weights as one flat float array (layout in the header comment), for
 * checkpoints: their count, and copies to / from host [fg_hypernet_numel]. */
int64_t fg_hypernet_numel(const fg_hypernet *h);
fg_status fg_hypernet_get_weights(const fg_hypernet *h, float *host);
fg_status fg_hypernet_set_weights(fg_hypernet *h, const float *host);
/* The bytes charged, per category (equal to fg_hypernet_plan of its desc). */
void fg_hypernet_memory_of(const fg_hypernet *h, fg_hypernet_memory *m);
/* The desc with the defaults filled in, and r_eff (1 for naive). */
const fg_hypernet_desc *fg_hypernet_desc_of(const fg_hypernet *h);
int64_t fg_hypernet_rank(const fg_hypernet *h);

/* For tests and diagnostics: loss := MSE(h(src), tgt) and the gradient of that loss with respect
 * to every weight, kept by the trainers until the next step; the weights and the optimizer are
 * not touched. src, tgt as in generate. fg_hypernet_get_grads copies the gradients of the last
 * step (loss_grad or train) to host [fg_hypernet_numel], in the weights' layout. */
fg_status fg_hypernet_loss_grad(fg_hypernet *h, const float *src, const float *tgt, double *loss);
fg_status fg_hypernet_get_grads(const fg_hypernet *h, float *host);

#endif
