/* The sub-model algebra of width- and depth-heterogeneous FL (HeteroFL, FedRolex, DepthFL,
 * ScaleFL; baselines.md A.2-A.5, A.8): which elements of the global model a client's sub-model
 * holds (an index plan), extraction of a sub-model's state from the global state, and streaming
 * count-mean / weighted-mean aggregation of uploaded sub-models back into the global model.
 *
 * A sub-model is built from the global model's spec with a smaller width rate and/or depth
 * (engine/nn/models.h); its tensors carry the same models.md names as the global ones. An index
 * plan maps every sub tensor to its global tensor and, per dimension 0 and 1, to the global
 * indices it takes (NULL = the identity, i.e. a top-left slice). Plans chain: a layer's input
 * indices are its producer's output indices, across BN, pools, Scalers, residual adds (both
 * inputs must carry equal lists) and flattens (a channel list expanded over H*W). A plan is built
 * once per (level, round) and used for both extraction and aggregation of a whole model; both
 * are single passes over the sub-model's elements.
 *
 * Memory: the server holds one global model (float), one client's uploaded sub-model at a time
 * and the aggregator's two double accumulators of the global size (sums and weights, 16 bytes a
 * global element, charged to a ledger as FG_MEM_OTHER). That is the server's whole memory for a
 * round, whatever the number of clients (baselines.md A.8 pitfall 3).
 *
 * Owns: a plan owns its index arrays (malloc, bookkeeping); an aggregator owns its two regions. */
#ifndef FG_FL_SUBMODEL_H
#define FG_FL_SUBMODEL_H

#include <stdint.h>

#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
#include "engine/nn/graph.h"

/* How a hidden layer with K global channels keeps k of them. */
typedef enum fg_channel_policy {
  FG_CHANNELS_FIRST = 0, /* HeteroFL: 0 .. k-1 */
  FG_CHANNELS_ROLLING,   /* FedRolex: window start (K - j mod K) mod K, then (start + t) mod K */
  FG_CHANNELS_RANDOM,    /* ablation: the first k of a seeded permutation, sorted ascending */
} fg_channel_policy;

typedef struct fg_channel_select {
  fg_channel_policy policy;
  int64_t round;  /* ROLLING and RANDOM: the server's 0-based round counter j */
  uint64_t seed;  /* RANDOM: experiment seed */
  int client;     /* RANDOM: a fresh permutation per (seed, client, round, layer) */
} fg_channel_select;

/* One sub tensor. Sub element (o, i, r) (o along dim 0, i along dim 1, r over the dims >= 2,
 * which are copied whole) is global element (out_idx[o], in_idx[i], r) of the global tensor, in
 * PyTorch layouts: conv (O, I, kh, kw), linear (out, in), vectors [C]. */
typedef struct fg_tensor_map {
  int sub_param, global_param; /* indices into the two graphs' parameter tables */
  int32_t *out_idx;            /* [sub dim 0] global indices along dim 0, NULL = identity */
  int32_t *in_idx;             /* [sub dim 1] along dim 1 (rank >= 2), NULL = identity */
} fg_tensor_map;

/* maps[i] is the map of the sub graph's parameter i (parameters and buffers alike). */
typedef struct fg_index_plan {
  fg_tensor_map *maps;
  int n;
} fg_index_plan;

/* Derives the plan of `sub` inside `global` for one round. Rules:
 * - the sub input must equal the global input; the input carries the identity;
 * - conv (dense): outputs select(K, k) by the policy, inputs = the producer's list; depthwise
 *   conv (groups == channels): outputs = inputs, weight dim 1 identity;
 * - BN, ReLU, pools, dropout, Scaler: the input's list (BN tensors use it as out_idx);
 * - add: both inputs must carry equal lists; flatten: entry c'*HW + s -> list[c']*HW + s;
 * - linear: inputs = the producer's list; outputs: identity for graph outputs (every class is
 *   kept), else select(K, k);
 * - k == K gives the identity for every policy. Under RANDOM, layers whose outputs meet at a
 *   residual add share one permutation (keyed by the name of the earliest such layer), so the
 *   add's lists agree.
 * Fails with FG_ERR_INVALID naming the tensor or node when a sub tensor has no global tensor of
 * that name, a different rank, an extent above the global one along dims 0-1 or a different one
 * along dims >= 2, when the lists at an add differ, or when the inputs differ;
 * FG_ERR_UNSUPPORTED for a grouped (not depthwise) conv or an unknown node kind. On failure
 * *out is empty. Free with fg_index_plan_free. */
fg_status fg_index_plan_build(const fg_graph *global, const fg_graph *sub, const fg_channel_select *sel,
                              fg_index_plan *out);
void fg_index_plan_free(fg_index_plan *p);

/* sub_state [state_numel(sub)] := the elements of global_state [state_numel(global)] that the
 * plan selects. FG_ERR_INVALID when the plan does not belong to these graphs. */
fg_status fg_submodel_extract(const fg_index_plan *p, const fg_graph *global, const fg_graph *sub,
                              const float *global_state, float *sub_state);

/* Streaming aggregation into global-sized accumulators: sum [numel] and weight [numel], doubles
 * on the host. Clients are added one at a time, so memory does not grow with the cohort. */
typedef struct fg_aggregator {
  fg_region sum, weight;
  int64_t numel;
} fg_aggregator;

/* Zeroed accumulators for a global state of `numel` floats, charged to `ledger` (FG_MEM_OTHER);
 * FG_ERR_BUDGET when the ledger's cap does not allow them. */
fg_status fg_aggregator_init(fg_aggregator *a, int64_t numel, fg_ledger *ledger);
/* Zeroes both accumulators (start of a round). */
void fg_aggregator_reset(fg_aggregator *a);
/* For every global element e the plan covers, with e' its sub element in sub_state
 * [state_numel(sub)]: sum[e] += w * sub[e'] and weight[e] += w. w = 1 gives the count mean of
 * HeteroFL/FedRolex/DepthFL/ScaleFL, w = n_k the FedAvg sample-weighted mean.
 * class_mask (NULL, or [classes] of 0/1, indexed by global class): rows c of the classifier
 * tensors (weight and bias of the sub graph's output nodes) count only where class_mask[c] is 1
 * (the label-split rule, baselines.md A.2). FG_ERR_INVALID when the plan or the aggregator does
 * not belong to these graphs, or w is negative or not finite. */
fg_status fg_aggregator_add(fg_aggregator *a, const fg_index_plan *p, const fg_graph *global, const fg_graph *sub,
                            const float *sub_state, double w, const uint8_t *class_mask);
/* fg_aggregator_add with the weight of global parameter i scaled by scale[i] (scale NULL: 1;
 * [param count of global], each finite and >= 0). */
fg_status fg_aggregator_add_scaled(fg_aggregator *a, const fg_index_plan *p, const fg_graph *global,
                                   const fg_graph *sub, const float *sub_state, double w, const uint8_t *class_mask,
                                   const double *scale);
/* One whole global tensor: sum[e] += w * values[e - p->offset] and weight[e] += w for the
 * elements of global parameter p (values [p->numel]). A method's own contributions (e.g.
 * generated weights). FG_ERR_INVALID when p lies outside the accumulators or w is bad. */
fg_status fg_aggregator_add_tensor(fg_aggregator *a, const fg_param *p, const float *values, double w);
/* What a method's server state reads and changes of the round's means, before finish: for global
 * parameter p, mean [p->numel] := sum / weight where some participant covered the element, NaN
 * where none did (fg_aggregator_mean); the covered elements' means := values [p->numel]
 * (fg_aggregator_replace; the uncovered keep their global value; a non-finite replacement is
 * FG_ERR_NUMERIC). FG_ERR_INVALID when p lies outside the accumulators. */
fg_status fg_aggregator_mean(const fg_aggregator *a, const fg_param *p, double *mean);
fg_status fg_aggregator_replace(fg_aggregator *a, const fg_param *p, const double *values);
/* global_state [numel]: global[e] := (float)(sum[e] / weight[e]) where weight[e] > 0; the other
 * elements (covered by no client) keep their value. */
void fg_aggregator_finish(const fg_aggregator *a, float *global_state);
void fg_aggregator_free(fg_aggregator *a);

#endif
