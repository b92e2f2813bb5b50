/* Training on the CUDA backend against the CPU backend (cuda.md, "End to end"): 20 SGD steps of
 * the cnn and of resnet18 at width 0.25 from the same initial state on the same synthetic batches
 * give losses within 1e-4 (relative) for the first 5 steps and 1e-3 after; two CUDA runs are
 * bitwise equal (losses and final state); recompute (checkpoint mode) gives the store mode's
 * gradients; the device ledger refuses a cap one byte below the plan before any device byte is
 * allocated, and its peak after a step is the plan's total. Every test skips with the backend's
 * reason where no device is usable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/test_util.h"
#include "cuda/cuda_backend.h"
#include "engine/base/rng.h"
#include "engine/nn/models.h"
#include "engine/nn/trainer.h"

enum { STEPS = 20 };

/* Registers the CPU backend (host memory) and the CUDA backend; skips the test without a device. */
static fg_device cuda_or_skip(void) {
  fgt_setup_cpu(2);
  FGT_OK(fg_cuda_backend_register(0));
  const fg_backend *b = fg_backend_registered(FG_DEV_CUDA);
  if (!b || !b->available) cr_skip_test("cuda: %s", b ? b->reason : "not registered");
  return b->device;
}

typedef struct model_case {
  const char *arch;
  double width;
  int64_t c, h, w;
  int64_t batch;
} model_case;

static const model_case CNN = {"cnn", 16, 1, 28, 28, 32};
static const model_case RESNET = {"resnet18", 0.25, 3, 32, 32, 16};

static fg_graph *build(const model_case *m) {
  fg_model_spec spec = {.arch = m->arch, .width = m->width, .in_c = m->c, .in_h = m->h, .in_w = m->w, .classes = 10};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&spec, &g));
  return g;
}

static fg_trainer_options options(const model_case *m, fg_device d, fg_exec_mode mode) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = m->batch;
  o.mode = mode;
  o.optim = fg_optim_sgd(0.05f, 0.9f, 5e-4f);
  o.device = d;
  return o;
}

/* Batch k: uniform pixels in [-1, 1] and labels in [0, 10) from the test stream (seed 100 + k). */
static void load_batch(fg_trainer *t, int k) {
  fgt_input in;
  fgt_input_open(&in, t);
  fgt_fill_uniform(fg_f32(&in.x), (size_t)fg_tensor_numel(&in.x), 100 + (uint64_t)k, -1.0f, 1.0f);
  fg_rng r = fg_rng_stream(200 + (uint64_t)k, FG_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < in.y.shape[0]; i++) fg_i32(&in.y)[i] = (int32_t)fg_rng_below(&r, 10);
  fgt_input_load(&in, t, in.y.shape[0]);
  fgt_input_close(&in);
}

/* STEPS steps from the seed-1 state on device d: losses[STEPS] and the final state. */
static void train(const model_case *m, fg_device d, fg_exec_mode mode, double *losses, float *state) {
  fg_graph *g = build(m);
  fg_trainer_options o = options(m, d, mode);
  fg_ledger l;
  fg_ledger_init(&l, "train", 0);
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  fg_graph_init_state(g, 1, state);
  FGT_OK(fg_trainer_set_state(t, state));
  fg_trainer_set_dropout_stream(t, 1, 0);
  for (int k = 0; k < STEPS; k++) {
    load_batch(t, k);
    fg_step_stats st;
    FGT_OK(fg_trainer_step(t, m->batch, &st));
    losses[k] = st.loss;
  }
  FGT_OK(fg_trainer_get_state(t, state));
  cr_assert_eq(l.peak, fg_trainer_plan(t)->total, "%s: the device ledger's peak %zu is not the plan's %zu", m->arch,
               l.peak, fg_trainer_plan(t)->total);
  fg_trainer_destroy(t);
  fg_graph_free(g);
}

static void cpu_vs_cuda(const model_case *m) {
  const fg_device cuda = cuda_or_skip();
  fg_graph *g = build(m);
  const size_t n = (size_t)fg_graph_state_numel(g);
  fg_graph_free(g);
  double lc[STEPS], lg[STEPS], lg2[STEPS];
  float *sc = malloc(n * sizeof *sc), *sg = malloc(n * sizeof *sg), *sg2 = malloc(n * sizeof *sg2);
  cr_assert(sc && sg && sg2);
  train(m, fg_host_device(), FG_EXEC_STORE, lc, sc);
  train(m, cuda, FG_EXEC_STORE, lg, sg);
  for (int k = 0; k < STEPS; k++) {
    const double tol = k < 5 ? 1e-4 : 1e-3;
    cr_assert(fabs(lg[k] - lc[k]) <= tol * fmax(1.0, fabs(lc[k])), "%s step %d: cuda loss %.9g, cpu %.9g", m->arch,
              k + 1, lg[k], lc[k]);
  }
  train(m, cuda, FG_EXEC_STORE, lg2, sg2);
  cr_assert(memcmp(lg, lg2, sizeof lg) == 0, "%s: two CUDA runs gave different losses", m->arch);
  cr_assert(memcmp(sg, sg2, n * sizeof *sg) == 0, "%s: two CUDA runs gave different states", m->arch);
  free(sc), free(sg), free(sg2);
}

Test(cuda_train, cnn_matches_cpu_and_is_deterministic, .timeout = 600) { cpu_vs_cuda(&CNN); }
Test(cuda_train, resnet18_matches_cpu_and_is_deterministic, .timeout = 600) { cpu_vs_cuda(&RESNET); }

/* Recompute on the GPU: checkpoint mode gives the store mode's state after the same steps. */
Test(cuda_train, recompute_gives_the_store_gradients, .timeout = 600) {
  const fg_device cuda = cuda_or_skip();
  fg_graph *g = build(&RESNET);
  const size_t n = (size_t)fg_graph_state_numel(g);
  fg_graph_free(g);
  double ls[STEPS], lk[STEPS];
  float *ss = malloc(n * sizeof *ss), *sk = malloc(n * sizeof *sk);
  cr_assert(ss && sk);
  train(&RESNET, cuda, FG_EXEC_STORE, ls, ss);
  train(&RESNET, cuda, FG_EXEC_CHECKPOINT, lk, sk);
  cr_assert(memcmp(ls, lk, sizeof ls) == 0, "checkpoint mode changed the losses");
  cr_assert(memcmp(ss, sk, n * sizeof *ss) == 0, "checkpoint mode changed the trained state");
  free(ss), free(sk);
}

/* A cap one byte below the plan fails at creation with the budget status, with nothing charged
 * (the ledger is charged before the device allocator is called). */
Test(cuda_train, cap_below_the_plan_fails_before_allocating) {
  const fg_device cuda = cuda_or_skip();
  fg_graph *g = build(&CNN);
  fg_trainer_options o = options(&CNN, cuda, FG_EXEC_STORE);
  fg_plan *p;
  FGT_OK(fg_plan_build(g, &o, &p));
  fg_ledger l;
  fg_ledger_init(&l, "capped", p->total - 1);
  size_t free_before = 0, free_after = 0, total = 0;
  fg_backend *b = fg_backend_for(cuda);
  FGT_OK(b->mem_query(b, &free_before, &total));
  fg_trainer *t = NULL;
  cr_assert_eq(fg_trainer_create(g, &o, &l, &t), FG_ERR_BUDGET);
  cr_assert_null(t);
  cr_assert_eq(l.current, 0u);
  FGT_OK(b->mem_query(b, &free_after, &total));
  cr_assert_eq(free_after, free_before, "device memory moved by %zu bytes", free_before - free_after);
  fg_ledger_set_cap(&l, p->total);
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  cr_assert_eq(l.current, p->total);
  fg_trainer_destroy(t);
  fg_plan_free(p);
  fg_graph_free(g);
}
