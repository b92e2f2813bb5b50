/* Test helper: small whole models (an architecture at a width and input size, a batch, optional
 * exits or a NeuLite stage) built, given trainer options, filled with deterministic batches and
 * checked against finite differences, for the suites that test plans and trainers on real
 * models. Owns nothing beyond what each function returns. */
#ifndef FGT_MODEL_CASE_H
#define FGT_MODEL_CASE_H

#include <stdint.h>

#include "engine/nn/graph.h"
#include "engine/nn/trainer.h"

typedef struct fgt_model_case {
  const char *arch;
  double width;
  int c, h, w;
  int exits;
  int batch;
  int stage; /* NeuLite stage model, trained with CE - nHSIC(X; Z_X) - 0.5 nHSIC(Y; Z_Y) */
  int depth; /* blocks (0: all); with exits, the loss is the sum of every exit's cross-entropy */
  int exit_head; /* an fg_exit_head (0: the model's own) */
} fgt_model_case;

/* The model (10 classes); fails the test when it cannot be built. */
fg_graph *fgt_model_build(const fgt_model_case *m);
/* Host-device options: SGD (0.05, momentum 0.9, decay 5e-4), batch m->batch, the stage's loss
 * terms when m->stage is set. */
fg_trainer_options fgt_model_options(const fgt_model_case *m, fg_exec_mode mode);
/* A deterministic batch of n samples into t: images uniform in [-1, 1], labels in [0, 10). */
void fgt_model_fill_batch(fg_trainer *t, int64_t n, uint64_t seed);
/* A freshly malloc'ed state [fg_graph_state_numel(g)] initialised from seed. */
float *fgt_model_init_state(const fg_graph *g, uint64_t seed);
/* A trainer for g on ledger l, with `state` set; fails the test on an error. */
fg_trainer *fgt_model_trainer(const fg_graph *g, const fg_trainer_options *o, fg_ledger *l, const float *state);
/* Every trainable parameter tensor's gradient against central differences of the whole model's
 * loss, along the gradient's own direction and a random sign direction (see model_case.c). */
void fgt_model_gradcheck(const fgt_model_case *m);

#endif
