/* Model graphs: layers as nodes of a DAG, parameters and buffers as named state tensors.
 *
 * A graph is built once per architecture (engine/nn/models.h) by appending nodes in
 * topological order; each node is one engine op (conv, batch norm, ReLU, ...) with its
 * parameters. Shapes are per sample (C,H,W or F); the batch size is chosen when a trainer is
 * planned (engine/nn/trainer.h). All state tensors (parameters and BN running statistics) live
 * in one flat float vector, in creation order, so copying, averaging or saving a model is one
 * pass over a vector; each has a name from models.md, a freeze flag and an init rule.
 *
 * Builders return the new node's index, or -1 after recording an error; a builder given a -1
 * input returns -1 too, so a model is built without checking every call and the first error is
 * reported by fg_graph_status(). Owns: nodes, parameter table, names. */
#ifndef FG_GRAPH_H
#define FG_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend/backend.h"

typedef enum fg_node_kind {
  FG_NODE_INPUT = 0, /* the image batch [N,C,H,W] */
  FG_NODE_CONV,
  FG_NODE_BN,
  FG_NODE_RELU,
  FG_NODE_MAXPOOL,
  FG_NODE_AVGPOOL,   /* global average pool [N,C,H,W] -> [N,C] */
  FG_NODE_FLATTEN,   /* [N,C,H,W] -> [N,C*H*W], a view */
  FG_NODE_LINEAR,
  FG_NODE_ADD,       /* residual sum of two equal shapes */
  FG_NODE_DROPOUT,
  FG_NODE_SCALE,     /* y = alpha x (HeteroFL / ScaleFL "Scaler") */
  FG_NODE_SIGMOID,   /* y = 1 / (1 + exp(-x)); keeps its output for backward */
  FG_NODE_MUL,       /* elementwise product of two equal shapes; keeps both inputs for backward */
  FG_NODE_UPSAMPLE2X, /* bilinear x2 upsampling (align_corners false) C,H,W -> C,Ho,Wo with
                         Ho in {2H-1, 2H}, Wo in {2W-1, 2W} (a crop); keeps nothing for backward */
  FG_NODE_KINDS
} fg_node_kind;

typedef enum fg_init_kind {
  FG_INIT_ZERO = 0,
  FG_INIT_ONE,
  FG_INIT_UNIFORM_FAN_IN,  /* U(-1/sqrt(fan_in), +1/sqrt(fan_in)): PyTorch's conv/linear default */
  FG_INIT_NORMAL_FAN_OUT,  /* N(0, 2/fan_out): kaiming-normal, fan_out, relu (ResNets) */
} fg_init_kind;

typedef enum fg_bn_mode {
  FG_BN_BATCH_STATS = 0,   /* training: batch statistics, running statistics updated;
                              inference: running statistics (PyTorch's default) */
  FG_BN_BATCH_NO_UPDATE,   /* training: batch statistics, running statistics left alone;
                              inference: running statistics (computed elsewhere, e.g. static BN) */
  FG_BN_RUNNING_STATS,     /* running statistics in training too (no gradient through it) */
  FG_BN_NO_RUNNING_STATS,  /* batch statistics in training and inference, running statistics
                              never used (PyTorch's track_running_stats=False) */
} fg_bn_mode;

#define FG_NAME_CAP 64

typedef struct fg_param {
  char name[FG_NAME_CAP]; /* "block1.conv1.weight" */
  int ndim;
  int64_t shape[4];
  int64_t numel;
  int64_t offset;         /* first float in the state vector */
  int trainable;          /* 0: frozen (no gradient, no optimizer state) */
  int is_buffer;          /* BN running statistics: state, never trained */
  fg_init_kind init;
  int64_t fan_in, fan_out;
  int node;               /* owning node */
} fg_param;

typedef struct fg_node {
  fg_node_kind kind;
  char name[FG_NAME_CAP];
  int in[2];
  int n_in;
  int ndim;               /* per-sample rank: 3 (C,H,W) or 1 (F) */
  int64_t shape[3];
  int param[2];           /* conv/linear: weight, bias (-1 if none); bn: gamma, beta */
  int n_param;
  int buffer[2];          /* bn: running mean, running var */
  int n_buffer;
  fg_conv_desc conv;
  fg_pool_desc pool;
  float p;                /* dropout */
  float alpha;            /* scale */
  int train_only;         /* scale: identity at inference (HeteroFL) */
  float bn_momentum, bn_eps;
  fg_bn_mode bn_mode;
  int segment;            /* checkpoint segment (recompute unit) */
  int block;              /* model block (progressive / block-wise methods), 0-based */
  int output;             /* index in the output list, or -1 */
} fg_node;

typedef struct fg_graph fg_graph;

/* A graph whose node 0 is the input of per-sample shape C x H x W. */
fg_graph *fg_graph_create(int64_t c, int64_t h, int64_t w);
void fg_graph_free(fg_graph *g);
/* FG_OK, or the first error a builder recorded. */
fg_status fg_graph_status(const fg_graph *g);

/* Later nodes get this checkpoint segment / model block. */
void fg_graph_set_segment(fg_graph *g, int segment);
void fg_graph_set_block(fg_graph *g, int block);

/* Builders: input node index -> new node index (or -1). `name` is the module name from
 * models.md; parameters are named "<name>.weight", "<name>.bias", ... */
int fg_graph_conv(fg_graph *g, int in, int64_t out_c, int kernel, int stride, int pad, int groups,
                  int bias, fg_init_kind weight_init, const char *name);
int fg_graph_bn(fg_graph *g, int in, const char *name);
int fg_graph_relu(fg_graph *g, int in, const char *name);
int fg_graph_maxpool(fg_graph *g, int in, int kernel, int stride, const char *name);
int fg_graph_avgpool(fg_graph *g, int in, const char *name);
int fg_graph_flatten(fg_graph *g, int in, const char *name);
int fg_graph_linear(fg_graph *g, int in, int64_t out_f, int bias, const char *name);
int fg_graph_add(fg_graph *g, int a, int b, const char *name);
int fg_graph_dropout(fg_graph *g, int in, float p, const char *name);
int fg_graph_scale(fg_graph *g, int in, float alpha, int train_only, const char *name);
int fg_graph_sigmoid(fg_graph *g, int in, const char *name);
/* a, b: nodes of equal shape. */
int fg_graph_mul(fg_graph *g, int a, int b, const char *name);
/* in: a C x H x W node -> C x h x w, h in {2H - 1, 2H}, w in {2W - 1, 2W} (engine/backend/ops.h:
 * the x2 map, cropped by a row or column to fit an odd target). */
int fg_graph_upsample2x_bilinear(fg_graph *g, int in, int64_t h, int64_t w, const char *name);
/* Marks a node (logits [N,K]) as a model output; outputs are numbered in marking order. */
int fg_graph_mark_output(fg_graph *g, int node);
/* Marks a node (any shape, read as [N, numel]) as a feature: a training-only representation a
 * loss term may read (NeuLite's nHSIC terms), never evaluated at inference. Numbered in
 * marking order. */
int fg_graph_mark_feature(fg_graph *g, int node);

/* Queries. */
int fg_graph_node_count(const fg_graph *g);
const fg_node *fg_graph_node(const fg_graph *g, int i);
fg_node *fg_graph_node_mut(fg_graph *g, int i);
int fg_graph_output_count(const fg_graph *g);
int fg_graph_output_node(const fg_graph *g, int k);
int fg_graph_feature_count(const fg_graph *g);
int fg_graph_feature_node(const fg_graph *g, int k);
int64_t fg_node_numel(const fg_node *n); /* per sample */
int fg_graph_param_count(const fg_graph *g);
const fg_param *fg_graph_param(const fg_graph *g, int i);
int fg_graph_find_param(const fg_graph *g, const char *name); /* -1 if absent */
int64_t fg_graph_state_numel(const fg_graph *g);               /* parameters + buffers */
int64_t fg_graph_param_numel(const fg_graph *g);               /* parameters only */
int64_t fg_graph_trainable_numel(const fg_graph *g);
int fg_graph_block_count(const fg_graph *g);                   /* max block + 1 */

/* Freeze or unfreeze every parameter whose name starts with `prefix` ("" = all); returns the
 * number of tensors changed. Buffers are never trainable. */
int fg_graph_set_trainable(fg_graph *g, const char *prefix, int trainable);
/* BN mode of every BN node whose name starts with `prefix`. */
int fg_graph_set_bn_mode(fg_graph *g, const char *prefix, fg_bn_mode mode);

/* Fills a host state vector [state_numel] with the init rule of every tensor; each tensor
 * draws from its own stream (seed, FG_RNG_INIT, tensor index), so the result does not depend
 * on the order tensors are created in other models. */
void fg_graph_init_state(const fg_graph *g, uint64_t seed, float *state);

#endif
