/* Plans and trainers: the plan's total equals the ledger's measured peak of real steps; a cap
 * one byte below fails cleanly; frozen parameters cost no gradient or saved activations;
 * recompute gives bit-identical gradients; same seed, same weights; whole-model gradients
 * agree with finite differences (the small models; the ResNet-18 ones are a slow suite). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/model_case.h"
#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "engine/base/rng.h"
#include "engine/nn/models.h"
#include "engine/nn/trainer.h"

static const fgt_model_case CNN = {"cnn", 4, 1, 12, 12, 0, 5, 0, 0, 0};
static const fgt_model_case CNN_EXITS = {"cnn", 4, 1, 12, 12, 1, 5, 0, 0, 0};
static const fgt_model_case RESNET = {"resnet18", 0.125, 3, 16, 16, 0, 3, 0, 0, 0};
static const fgt_model_case VGG = {"vgg-me", 0.25, 1, 28, 28, 0, 4, 0, 0, 0};
/* Blocks 1..3 of a resnet18 with its exits (DepthFL's depth-3 level). */
static const fgt_model_case RESNET_EXITS = {"resnet18", 0.125, 3, 16, 16, 1, 3, 0, 3, 0};
/* The same with DepthFL's classifiers (attention gate, separable bottleneck) on a 14x14 input:
 * block 3's map is 4x4 but block 2's 7x7, so exit 2's gate crops its upsampled map. */
static const fgt_model_case RESNET_DEPTHFL = {"resnet18", 0.125, 3, 14, 14, 1, 3, 0, 3, FG_EXIT_HEAD_DEPTHFL};

/* ------------------------------------------------------------------------------------------ */

static void check_peak(const fgt_model_case *m, fg_exec_mode mode) {
  fgt_setup_cpu(2);
  fg_graph *g = fgt_model_build(m);
  fg_trainer_options o = fgt_model_options(m, mode);
  fg_plan *plan;
  FGT_OK(fg_plan_build(g, &o, &plan));
  float *state = fgt_model_init_state(g, 1);
  fg_ledger l;
  fg_ledger_init(&l, "client", 0);
  fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
  fg_step_stats st;
  for (int k = 0; k < 3; k++) {
    fgt_model_fill_batch(t, m->batch - (k == 2), 10 + (uint64_t)k); /* the last batch is partial */
    FGT_OK(fg_trainer_step(t, m->batch - (k == 2), &st));
    cr_assert(isfinite(st.loss));
  }
  FGT_OK(fg_trainer_evaluate(t, m->batch, &st));
  cr_assert_eq(l.peak, plan->total, "%s %s: ledger peak %zu, plan %zu", m->arch, fg_exec_mode_name(mode),
               l.peak, plan->total);
  for (int c = 0; c < FG_MEM_CATEGORIES; c++)
    cr_assert_eq(l.peak_by_cat[c], plan->bytes_by_cat[c], "category %s", fg_mem_category_name((fg_mem_category)c));
  fg_trainer_destroy(t);
  cr_assert_eq(l.current, 0u);
  cr_assert_eq(l.live, 0u);
  fg_plan_free(plan);
  free(state);
  fg_graph_free(g);
}

Test(plan, peak_equals_plan_cnn) { check_peak(&CNN, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_cnn_checkpoint) { check_peak(&CNN, FG_EXEC_CHECKPOINT); }
Test(plan, peak_equals_plan_cnn_exits) { check_peak(&CNN_EXITS, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_resnet) { check_peak(&RESNET, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_resnet_checkpoint) { check_peak(&RESNET, FG_EXEC_CHECKPOINT); }
Test(plan, peak_equals_plan_vgg) { check_peak(&VGG, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_resnet_exits) { check_peak(&RESNET_EXITS, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_resnet_exits_checkpoint) { check_peak(&RESNET_EXITS, FG_EXEC_CHECKPOINT); }
Test(plan, peak_equals_plan_resnet_depthfl_exits) { check_peak(&RESNET_DEPTHFL, FG_EXEC_STORE); }
Test(plan, peak_equals_plan_resnet_depthfl_exits_checkpoint) { check_peak(&RESNET_DEPTHFL, FG_EXEC_CHECKPOINT); }

Test(plan, cap_one_byte_below_fails_and_leaks_nothing) {
  fgt_setup_cpu(1);
  fg_graph *g = fgt_model_build(&RESNET);
  fg_trainer_options o = fgt_model_options(&RESNET, FG_EXEC_STORE);
  fg_plan *plan;
  FGT_OK(fg_plan_build(g, &o, &plan));
  fg_ledger l;
  fg_ledger_init(&l, "client 7", plan->total - 1);
  fg_trainer *t = NULL;
  cr_assert_eq(fg_trainer_create(g, &o, &l, &t), FG_ERR_BUDGET);
  cr_assert_null(t);
  cr_assert(strstr(fg_last_error(), "client 7") != NULL, "%s", fg_last_error());
  cr_assert_eq(l.current, 0u);
  cr_assert_eq(l.live, 0u);
  fg_ledger_set_cap(&l, plan->total);
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  cr_assert_eq(l.current, plan->total);
  fg_trainer_destroy(t);
  fg_plan_free(plan);
  fg_graph_free(g);
}

Test(plan, frozen_model_has_no_gradients_or_saved_activations) {
  fgt_setup_cpu(1);
  fg_graph *g = fgt_model_build(&CNN);
  fg_graph_set_trainable(g, "", 0);
  fg_trainer_options o = fgt_model_options(&CNN, FG_EXEC_STORE);
  fg_plan *plan;
  FGT_OK(fg_plan_build(g, &o, &plan));
  cr_assert_eq(plan->bytes_by_cat[FG_MEM_GRADS], 0u);
  cr_assert_eq(plan->bytes_by_cat[FG_MEM_OPTIM], 0u);
  cr_assert_eq(plan->bytes_by_cat[FG_MEM_ACTIVATIONS], 0u);
  cr_assert_eq(plan->n_backward_nodes, 0);
  /* It still runs forward and reports the loss, and changes no parameter. */
  float *state = fgt_model_init_state(g, 3);
  fg_ledger l;
  fg_ledger_init(&l, "frozen", 0);
  fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
  fgt_model_fill_batch(t, CNN.batch, 5);
  fg_step_stats st;
  FGT_OK(fg_trainer_step(t, CNN.batch, &st));
  cr_assert(st.loss > 0.5 && st.loss < 10.0, "loss %g", st.loss);
  float *after = malloc((size_t)fg_graph_state_numel(g) * sizeof *after);
  FGT_OK(fg_trainer_get_state(t, after));
  for (int i = 0; i < fg_graph_param_count(g); i++) {
    const fg_param *p = fg_graph_param(g, i);
    if (p->is_buffer) continue;
    cr_assert_eq(memcmp(state + p->offset, after + p->offset, (size_t)p->numel * sizeof(float)), 0, "%s", p->name);
  }
  cr_assert_eq(l.peak, plan->total);
  fg_trainer_destroy(t);
  free(after);
  free(state);
  fg_plan_free(plan);
  fg_graph_free(g);
}

/* Bytes of the values the train program keeps from forward for backward (alive past the loss),
 * whatever arena they were packed in. */
static size_t saved_bytes(const fg_plan *p) {
  size_t bytes = 0;
  for (int v = 1; v < p->n_vbufs; v++) {
    const fg_vbuf *b = &p->vbufs[v];
    if (fg_plan_root(p, v) == v && b->program == 0 && b->is_value && b->first >= 0 && b->last > p->loss_at)
      bytes += b->bytes;
  }
  return bytes;
}

/* Bytes of the workspaces of train instruction k's convolution (0: none). */
static size_t conv_ws_bytes(const fg_plan *p, const fg_graph *g, int k) {
  const fg_instr *in = &p->train[k];
  if (in->ws <= 0 || in->kind == FG_I_LOSS || fg_graph_node(g, in->node)->kind != FG_NODE_CONV)
    return 0;
  return p->vbufs[in->ws].bytes;
}

/* Convolution workspaces get room (the 3x3 kernels' F(4x4, 3x3), 2.25x the transformed weights;
 * none on the generic path, e.g. aarch64) only where the step's activation and workspace bytes stay what the least workspaces give:
 * the same program, some workspaces larger, none smaller, the totals no larger; and a step's
 * measured peak is still the plan's (check_peak runs the models with room). */
static void check_growth(void) {
  const fgt_model_case cases[] = {
      {"cnn", 16, 1, 28, 28, 0, 16, 0, 0, 0}, /* the default cnn: 16- and 32-channel maps */
      {"resnet18", 0.125, 3, 32, 32, 0, 8, 0, 0, 0},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    fg_graph *g = fgt_model_build(&cases[i]);
    fg_trainer_options o = fgt_model_options(&cases[i], FG_EXEC_STORE);
    o.lean_workspace = 1;
    fg_plan *lean, *roomy;
    FGT_OK(fg_plan_build(g, &o, &lean));
    o.lean_workspace = 0;
    FGT_OK(fg_plan_build(g, &o, &roomy));
    cr_assert_eq(roomy->n_train, lean->n_train);
    int grew = 0;
    for (int k = 0; k < lean->n_train; k++) {
      const size_t a = conv_ws_bytes(lean, g, k), b = conv_ws_bytes(roomy, g, k);
      cr_assert_geq(b, a, "%s: instruction %d's workspace shrank: %zu -> %zu", cases[i].arch, k, a, b);
      grew += b > a;
    }
    if (fg_cpu_uses_avx2())
      cr_assert_gt(grew, 0, "%s: no convolution got room", cases[i].arch);
    else /* im2col + GEMM has one plan: nothing to grow */
      cr_assert_eq(grew, 0, "%s: %d workspaces grew on the generic path", cases[i].arch, grew);
    const size_t lean_aw = lean->region_bytes[FG_REGION_ACT] + lean->region_bytes[FG_REGION_WS];
    const size_t roomy_aw = roomy->region_bytes[FG_REGION_ACT] + roomy->region_bytes[FG_REGION_WS];
    cr_assert_leq(roomy_aw, lean_aw, "%s: %zu activation and workspace bytes, %zu lean",
                  cases[i].arch, roomy_aw, lean_aw);
    cr_assert_leq(roomy->total, lean->total);
    fg_plan_free(lean);
    fg_plan_free(roomy);
    fg_graph_free(g);
  }
}

Test(plan, conv_workspaces_grow_within_the_lean_total) {
  fgt_setup_cpu(2);
  check_growth();
}

Test(plan, conv_workspaces_stay_lean_on_the_generic_path) {
  fgt_setup_cpu(2);
  fg_cpu_set_generic_kernels(1);
  check_growth();
  fg_cpu_set_generic_kernels(0);
}

Test(plan, frozen_prefix_keeps_nothing_for_the_prefix) {
  fgt_setup_cpu(1);
  fg_graph *full = fgt_model_build(&CNN), *part = fgt_model_build(&CNN);
  fg_graph_set_trainable(part, "block1.", 0);
  fg_graph_set_trainable(part, "block2.", 0);
  fg_trainer_options o = fgt_model_options(&CNN, FG_EXEC_STORE);
  fg_plan *pf, *pp;
  FGT_OK(fg_plan_build(full, &o, &pf));
  FGT_OK(fg_plan_build(part, &o, &pp));
  /* Gradients: exactly block 3 and the head. */
  int64_t trained = 0;
  for (int i = 0; i < fg_graph_param_count(part); i++) {
    const fg_param *p = fg_graph_param(part, i);
    if (!p->is_buffer && (strncmp(p->name, "block3.", 7) == 0 || strncmp(p->name, "head.", 5) == 0))
      trained += p->numel;
  }
  cr_assert_eq(pp->grad_numel, trained);
  /* Saved activations: only block 3's. Block 3's input (the block-2 pool output) is kept for its
   * conv; nothing of blocks 1 and 2. */
  cr_assert_lt(saved_bytes(pp), saved_bytes(pf) / 4);
  for (int i = 1; i < fg_graph_node_count(part); i++) {
    const fg_node *n = fg_graph_node(part, i);
    if (strncmp(n->name, "block3.", 7) != 0 && strncmp(n->name, "head", 4) != 0)
      cr_assert_eq(pp->node_backward[i], 0, "%s runs backward", n->name);
  }
  fg_plan_free(pf);
  fg_plan_free(pp);
  fg_graph_free(full);
  fg_graph_free(part);
}

/* ------------------------------------------------------------------------------------------ */

static void gradients(const fg_graph *g, const fg_trainer_options *o, const float *state, uint64_t batch_seed,
                      float **grads, float **state_after) {
  fg_ledger l;
  fg_ledger_init(&l, "g", 0);
  fg_trainer *t = fgt_model_trainer(g, o, &l, state);
  fgt_model_fill_batch(t, o->batch, batch_seed);
  fg_step_stats st;
  FGT_OK(fg_trainer_compute_gradients(t, o->batch, &st));
  const fg_plan *p = fg_trainer_plan(t);
  *grads = calloc((size_t)p->grad_numel + 1, sizeof(float));
  for (int i = 0; i < fg_graph_param_count(g); i++)
    if (p->grad_offset[i] >= 0) FGT_OK(fg_trainer_get_grad(t, i, *grads + p->grad_offset[i]));
  *state_after = malloc((size_t)fg_graph_state_numel(g) * sizeof(float));
  FGT_OK(fg_trainer_get_state(t, *state_after));
  fg_trainer_destroy(t);
}

static void check_recompute(const fgt_model_case *m) {
  fgt_setup_cpu(2);
  fg_graph *g = fgt_model_build(m);
  float *state = fgt_model_init_state(g, 4);
  fg_trainer_options os = fgt_model_options(m, FG_EXEC_STORE), oc = fgt_model_options(m, FG_EXEC_CHECKPOINT);
  fg_plan *ps, *pc;
  FGT_OK(fg_plan_build(g, &os, &ps));
  FGT_OK(fg_plan_build(g, &oc, &pc));
  cr_assert_eq(ps->grad_numel, pc->grad_numel);
  float *gs, *gc, *ss, *sc;
  gradients(g, &os, state, 77, &gs, &ss);
  gradients(g, &oc, state, 77, &gc, &sc);
  cr_assert_eq(memcmp(gs, gc, (size_t)ps->grad_numel * sizeof(float)), 0, "gradients differ");
  /* Running statistics were updated once, identically. */
  cr_assert_eq(memcmp(ss, sc, (size_t)fg_graph_state_numel(g) * sizeof(float)), 0, "state differs");
  double norm = 0;
  for (int64_t i = 0; i < ps->grad_numel; i++) norm += (double)gs[i] * gs[i];
  cr_assert_gt(norm, 0.0);
  free(gs);
  free(gc);
  free(ss);
  free(sc);
  fg_plan_free(ps);
  fg_plan_free(pc);
  free(state);
  fg_graph_free(g);
}

Test(recompute, cnn_bit_identical) { check_recompute(&CNN); }
Test(recompute, resnet_bit_identical) { check_recompute(&RESNET); }
Test(recompute, vgg_with_dropout_bit_identical) { check_recompute(&VGG); }
Test(recompute, resnet_exits_bit_identical) { check_recompute(&RESNET_EXITS); }
Test(recompute, resnet_depthfl_exits_bit_identical) { check_recompute(&RESNET_DEPTHFL); }

Test(recompute, checkpointing_saves_activation_memory) {
  fgt_setup_cpu(1);
  fgt_model_case m = RESNET;
  m.batch = 16;
  fg_graph *g = fgt_model_build(&m);
  fg_trainer_options os = fgt_model_options(&m, FG_EXEC_STORE), oc = fgt_model_options(&m, FG_EXEC_CHECKPOINT);
  fg_plan *ps, *pc;
  FGT_OK(fg_plan_build(g, &os, &ps));
  FGT_OK(fg_plan_build(g, &oc, &pc));
  size_t as = ps->bytes_by_cat[FG_MEM_ACTIVATIONS] + ps->bytes_by_cat[FG_MEM_WORKSPACE];
  size_t ac = pc->bytes_by_cat[FG_MEM_ACTIVATIONS] + pc->bytes_by_cat[FG_MEM_WORKSPACE];
  cr_assert_lt(ac, as / 2, "checkpoint %zu vs store %zu", ac, as);
  fg_plan_free(ps);
  fg_plan_free(pc);
  fg_graph_free(g);
}

Test(determinism, same_seed_same_weights) {
  fgt_setup_cpu(2);
  fg_graph *g = fgt_model_build(&VGG); /* has dropout */
  fg_trainer_options o = fgt_model_options(&VGG, FG_EXEC_STORE);
  float *final[2];
  for (int run = 0; run < 2; run++) {
    float *state = fgt_model_init_state(g, 11);
    fg_ledger l;
    fg_ledger_init(&l, "d", 0);
    fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
    fg_trainer_set_dropout_stream(t, 11, 0);
    for (int k = 0; k < 4; k++) {
      fgt_model_fill_batch(t, VGG.batch, 100 + (uint64_t)k);
      fg_step_stats st;
      FGT_OK(fg_trainer_step(t, VGG.batch, &st));
    }
    final[run] = malloc((size_t)fg_graph_state_numel(g) * sizeof(float));
    FGT_OK(fg_trainer_get_state(t, final[run]));
    cr_assert_neq(memcmp(final[run], state, (size_t)fg_graph_state_numel(g) * sizeof(float)), 0);
    fg_trainer_destroy(t);
    free(state);
  }
  cr_assert_eq(memcmp(final[0], final[1], (size_t)fg_graph_state_numel(g) * sizeof(float)), 0);
  free(final[0]);
  free(final[1]);
  fg_graph_free(g);
}

/* Whole-model finite differences (fgt_model_gradcheck); the ResNet-18 cases, a minute each, are
 * in tests/slow/test_gradcheck_resnet.c. */
Test(gradcheck, whole_cnn) { fgt_model_gradcheck(&CNN_EXITS); }
/* Our resnet exits: a depth-2 prefix (every tensor reaches an exit's cross-entropy). */
Test(gradcheck, resnet_prefix_with_exits) {
  fgt_model_case m = {"resnet18", 0.125, 3, 8, 8, 1, 3, 0, 2, 0};
  fgt_model_gradcheck(&m);
}
/* DepthFL's classifiers: the gate's sigmoid, upsampling and product (both factors: the gate and
 * block j's output) and the bottleneck, on a depth-2 prefix whose block 1 map is odd (7x7 of a
 * 7x7 input: exit 1's gate crops) and block 2's 4x4. */
Test(gradcheck, resnet_prefix_with_depthfl_exits) {
  fgt_model_case m = {"resnet18", 0.125, 3, 7, 7, 1, 3, 0, 2, FG_EXIT_HEAD_DEPTHFL};
  fgt_model_gradcheck(&m);
}
/* The nHSIC terms' gradients reach O_t, the block and P (which only the label term trains).
 * Their weights stay near the ones used in training (<= 1): the loss is a float32 forward, and
 * the rounding of Z passed through the kernels moves nHSIC by ~1e-7, which a large weight would
 * lift above the 1e-3 allowance (a bias of P has a zero true gradient: shifting every row of
 * Z_Y leaves all distances unchanged). */
Test(gradcheck, neulite_cnn_stage_with_nhsic_terms) {
  fgt_model_case m = {"cnn", 4, 1, 12, 12, 0, 10, 1, 0, 0};
  fgt_model_gradcheck(&m);
}

Test(plan, class_mask_zeroes_masked_classifier_rows) {
  fgt_setup_cpu(1);
  fg_graph *g = fgt_model_build(&CNN);
  fg_trainer_options o = fgt_model_options(&CNN, FG_EXEC_STORE);
  o.loss.class_mask = 1;
  float *state = fgt_model_init_state(g, 8);
  fg_ledger l;
  fg_ledger_init(&l, "mask", 0);
  fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
  float mask[10] = {1, 1, 0, 1, 0, 1, 1, 1, 1, 0};
  FGT_OK(fg_trainer_set_class_mask(t, mask));
  fgt_input in;
  fgt_input_open(&in, t);
  fgt_fill_uniform(fg_f32(&in.x), (size_t)fg_tensor_numel(&in.x), 4, -1, 1);
  for (int i = 0; i < CNN.batch; i++) fg_i32(&in.y)[i] = (int32_t)((i * 3) % 10 == 2 ? 0 : (i * 3) % 10) % 10;
  fgt_input_load(&in, t, CNN.batch);
  fgt_input_close(&in);
  fg_step_stats st;
  FGT_OK(fg_trainer_compute_gradients(t, CNN.batch, &st));
  int hw = fg_graph_find_param(g, "head.weight"), hb = fg_graph_find_param(g, "head.bias");
  const fg_param *pw = fg_graph_param(g, hw);
  float gw[10 * 64], gb[10];
  FGT_OK(fg_trainer_get_grad(t, hw, gw));
  FGT_OK(fg_trainer_get_grad(t, hb, gb));
  for (int c = 0; c < 10; c++) {
    double row = fabs(gb[c]);
    for (int64_t i = 0; i < pw->shape[1]; i++) row += fabs(gw[c * pw->shape[1] + i]);
    if (mask[c] == 0)
      cr_assert_eq(row, 0.0, "class %d is masked but its row has gradient", c);
    else
      cr_assert_gt(row, 0.0, "class %d", c);
  }
  fg_plan *plan;
  FGT_OK(fg_plan_build(g, &o, &plan));
  cr_assert_eq(l.peak, plan->total);
  cr_assert_gt(plan->region_bytes[FG_REGION_CLASS_MASK], 0u);
  fg_plan_free(plan);
  fg_trainer_destroy(t);
  free(state);
  fg_graph_free(g);
}

/* The ensemble is the mean of the exits' logits: with the early exits zeroed (their logits are
 * 0) it ranks classes exactly as the last exit, so it has the same hits; with trained-looking
 * exits it generally differs. */
Test(plan, ensemble_of_exits) {
  fgt_setup_cpu(1);
  fg_graph *g = fgt_model_build(&CNN_EXITS);
  fg_trainer_options o = fgt_model_options(&CNN_EXITS, FG_EXEC_INFERENCE);
  o.batch = 64;
  float *state = fgt_model_init_state(g, 9);
  fg_ledger l;
  fg_ledger_init(&l, "ens", 0);
  fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
  fgt_model_fill_batch(t, 64, 12);
  fg_step_stats st;
  FGT_OK(fg_trainer_evaluate(t, 64, &st));
  cr_assert_eq(st.n_outputs, 3);
  const char *zeroed[] = {"exit1.weight", "exit1.bias", "exit2.weight", "exit2.bias"};
  for (int i = 0; i < 4; i++) {
    const fg_param *p = fg_graph_param(g, fg_graph_find_param(g, zeroed[i]));
    memset(state + p->offset, 0, (size_t)p->numel * sizeof(float));
  }
  FGT_OK(fg_trainer_set_state(t, state));
  fg_step_stats z;
  FGT_OK(fg_trainer_evaluate(t, 64, &z));
  cr_assert_eq(z.ensemble_correct, z.correct[2]);
  cr_assert_eq(z.correct[2], st.correct[2], "the last exit does not depend on the others");
  cr_assert_float_neq(z.ensemble_loss, z.output_loss[2], 1e-9, "ensemble logits are a third of the head's");
  fg_plan *plan;
  FGT_OK(fg_plan_build(g, &o, &plan));
  cr_assert_eq(l.peak, plan->total);
  fg_plan_free(plan);
  fg_trainer_destroy(t);
  free(state);
  fg_graph_free(g);
}

/* FG_BN_NO_RUNNING_STATS evaluates with batch statistics: changing the stored running
 * statistics changes nothing; with the default mode it changes the outputs. */
Test(plan, bn_without_running_statistics_evaluates_with_batch_statistics) {
  fgt_setup_cpu(1);
  for (int mode = 0; mode < 2; mode++) {
    fg_graph *g = fgt_model_build(&CNN);
    if (mode) fg_graph_set_bn_mode(g, "", FG_BN_NO_RUNNING_STATS);
    fg_trainer_options o = fgt_model_options(&CNN, FG_EXEC_INFERENCE);
    float *state = fgt_model_init_state(g, 14);
    fg_ledger l;
    fg_ledger_init(&l, "bn", 0);
    fg_trainer *t = fgt_model_trainer(g, &o, &l, state);
    fgt_model_fill_batch(t, CNN.batch, 15);
    fg_step_stats a, b;
    FGT_OK(fg_trainer_evaluate(t, CNN.batch, &a));
    for (int i = 0; i < fg_graph_param_count(g); i++) {
      const fg_param *p = fg_graph_param(g, i);
      if (!p->is_buffer) continue;
      for (int64_t k = 0; k < p->numel; k++) state[p->offset + k] += strstr(p->name, "var") ? 3.0f : 0.7f;
    }
    FGT_OK(fg_trainer_set_state(t, state));
    FGT_OK(fg_trainer_evaluate(t, CNN.batch, &b));
    if (mode)
      cr_assert_eq(a.output_loss[0], b.output_loss[0], "batch statistics must ignore the running ones");
    else
      cr_assert_neq(a.output_loss[0], b.output_loss[0], "running statistics must matter by default");
    fg_plan *plan;
    FGT_OK(fg_plan_build(g, &o, &plan));
    cr_assert_eq(l.peak, plan->total);
    fg_plan_free(plan);
    fg_trainer_destroy(t);
    free(state);
    fg_graph_free(g);
  }
}
