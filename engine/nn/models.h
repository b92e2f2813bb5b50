/* Built-in models (models.md): `cnn` (with optional early exits), `vgg-me` (HypeMeFed's
 * multi-exit VGG, four input variants), `resnet18`, `resnet34` (CIFAR-style, with optional early
 * exits: ours, for the depth methods; models.md gives the resnets none), with the early exits'
 * heads of the model, of ScaleFL or of DepthFL (fg_exit_head). Parameter names are those of
 * models.md, so a checkpoint loads into an equivalent PyTorch module unchanged.
 * Owns nothing: builds graphs (engine/nn/graph.h). */
#ifndef FG_MODELS_H
#define FG_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/nn/graph.h"

typedef enum fg_scaler_mode {
  FG_SCALER_NONE = 0,
  FG_SCALER_TRAIN_ONLY,  /* HeteroFL: conv outputs divided by the rate in training only */
  FG_SCALER_ALWAYS,      /* ScaleFL: in training and inference */
} fg_scaler_mode;

/* The heads of a model's early exits (every exit but the architecture's own last classifier). */
typedef enum fg_exit_head {
  FG_EXIT_HEAD_MODEL = 0, /* the architecture's own: cnn and resnets global pool + linear
                             (exit{j}), vgg-me flatten, dropout, linear (exit{j}.head) */
  FG_EXIT_HEAD_SCALEFL,   /* ScaleFL's (baselines.md A.5), on the block's output x [N, C, H, W]:
                             3 x (conv3x3 C->C stride 1 pad 1 no bias, Scaler, BN, ReLU), global
                             average pool, linear C->K with bias: 3 (9 C^2 + 2 C) + C K + K
                             parameters, named scalefl.exit{j}.conv{i}, .bn{i}, .fc (i = 1..3) */
  FG_EXIT_HEAD_DEPTHFL,   /* DepthFL's classifier, resnets only (baselines.md A.4): after block j
                             (C_j channels, H x W), the attention gate exit{j}.gate: a separable
                             block C_j -> C_j (exit{j}.gate.sep, as below), BN (.bn), ReLU,
                             bilinear x2 upsampling back to H x W (.up; align_corners false, the
                             last row/column dropped on an odd map), sigmoid, times block j's
                             output (.mul); then the bottleneck: 4 - j depthwise-separable
                             blocks exit{j}.sep{s} (s = 1..4-j), block s taking block j+s-1's
                             channels C to block j+s's C' with stride 2: dw 3x3 stride 2 (dw1), 1x1
                             C->C (pw1), BN (bn1), ReLU, dw 3x3 stride 1 (dw2), 1x1 C->C' (pw2), BN
                             (bn2), ReLU, all convs bias-free; then global average pool
                             (exit{j}.pool) and linear C_4 -> classes with bias (exit{j}.fc).
                             Parameters of block s: 20 C + C^2 + C C' + 2 C'; of the gate:
                             24 C_j + 2 C_j^2. */
} fg_exit_head;

typedef struct fg_model_spec {
  const char *arch;        /* "cnn", "vgg-me", "resnet18", "resnet34" */
  double width;            /* cnn: block-1 channels (0 = 16); others: channel multiplier (0 = 1) */
  int64_t in_c, in_h, in_w;
  int classes;
  int exits;               /* cnn: early exits after blocks 1 and 2; resnets: after blocks 1..3
                              (heads: exit_head); vgg-me always has exits */
  int depth;               /* blocks to build (0 = all; fewer needs exits); outputs are the
                              exits up to it */
  double rate;             /* sub-model width rate in (0, 1] (0 = 1): every hidden layer keeps
                              ceil(rate x its channels), floor with rate_floor; inputs and
                              classes are kept */
  fg_scaler_mode scaler;   /* a Scaler (x / rate) after every conv when rate < 1 */
  int rate_floor;          /* floor(rate x channels), at least 1, instead of ceil (ScaleFL) */
  fg_exit_head exit_head;  /* with exits: whose heads the early exits are */
  int stage;               /* NeuLite (neulite.md §1.3; cnn and resnets): 0 the model itself;
                              t in 1..blocks the stage-t model; FG_STAGES_ALL the full model
                              with every stage's heads (the server's copy of all stages) */
  int no_projection;       /* stage t in 1..blocks: leave out the projection head P and feature
                              Z_Y (a stage whose label-HSIC term has weight 0 never uses them) */
  int om_bn_relu;          /* stage models: BN + ReLU after each output-module conv (ours; the
                              reference's output module is linear) */
} fg_model_spec;

/* NeuLite stage models. The stage-t model is blocks 1..t, the output module O_t (one bias-free
 * 3x3 conv per missing block, with that block's stride and output channels, no BN, no ReLU, or
 * with om_bn_relu each conv followed by BN (neulite.stage{t}.om{i}.bn) and ReLU; none at the last
 * stage), global pool + linear classifier (output 0) and the projection head P
 * (three linear layers with bias and no activation: C -> round(C 2056 / 512) -> 2C -> C on the
 * pooled C channels; 512-2056-1024-512 for the resnets). Its features are Z_X (feature 0: the
 * map after O_t, flattened) and Z_Y (feature 1: P's output). Stage heads are named
 * neulite.stage{t}.om{i}, .pool, .fc, .proj{1,2,3}; the last stage's classifier is the model's
 * own (`head` / `fc`), so the last stage model holds the model itself. The FG_STAGES_ALL model
 * has every stage's heads, outputs the stage-1..T classifiers in order, and marks no features. */
enum { FG_STAGES_ALL = -1 };

/* The name prefix of the last conv + BN of block `block` (1-based), e.g. "block2" (cnn:
 * block2.conv2, block2.bn2) or "layer1.1" (resnet18: layer1.1.conv2, layer1.1.bn2): NeuLite's
 * Training Harmonizer trains these with the next block. FG_ERR_INVALID for other architectures
 * or blocks. */
fg_status fg_model_block_tail(const fg_model_spec *spec, int block, char *prefix, size_t cap);

/* Builds the graph; FG_ERR_INVALID names the bad field (unknown arch, bad width, an input size
 * the architecture has no variant for, a depth out of range). */
fg_status fg_model_build(const fg_model_spec *spec, fg_graph **out);

/* The width a spec builds with: its own, or the architecture's default (cnn 16, others 1). */
double fg_model_width(const fg_model_spec *spec);

/* "cnn, vgg-me, resnet18, resnet34" */
const char *fg_model_arch_list(void);
/* Number of blocks of the full architecture (cnn 3, vgg-me 3, resnet 4), or 0 if unknown. */
int fg_model_block_count(const char *arch);

#endif
