/* Built-in models (models.md): `cnn` (with optional early exits), `vgg-me` (HypeMeFed's
 * multi-exit VGG, four input variants), `resnet18`, `resnet34` (CIFAR-style). Parameter names
 * are those of models.md, so a checkpoint loads into an equivalent PyTorch module unchanged.
 * Owns nothing: builds graphs (engine/nn/graph.h). */
#ifndef FG_MODELS_H
#define FG_MODELS_H

#include <stdint.h>

#include "engine/nn/graph.h"

typedef enum fg_scaler_mode {
  FG_SCALER_NONE = 0,
  FG_SCALER_TRAIN_ONLY,  /* HeteroFL: conv outputs divided by the rate in training only */
  FG_SCALER_ALWAYS,      /* ScaleFL: in training and inference */
} fg_scaler_mode;

typedef struct fg_model_spec {
  const char *arch;        /* "cnn", "vgg-me", "resnet18", "resnet34" */
  double width;            /* cnn: block-1 channels (0 = 16); others: channel multiplier (0 = 1) */
  int64_t in_c, in_h, in_w;
  int classes;
  int exits;               /* cnn: early exits after blocks 1 and 2 (vgg-me always has exits) */
  int depth;               /* cnn, vgg-me: blocks to build (0 = all); outputs are the exits up to it */
  double rate;             /* sub-model width rate in (0, 1] (0 = 1): every hidden layer keeps
                              ceil(rate x its channels); inputs and classes are kept */
  fg_scaler_mode scaler;   /* a Scaler (x / rate) after every conv when rate < 1 */
} fg_model_spec;

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
