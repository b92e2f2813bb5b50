/* The device-neutral seams of the engine: ops a backend lacks or refuses fail at plan time naming
 * the op, the shapes, the node and the backend; region alignment comes from the backend; the
 * trainer copies its input in and checks it; host access to a non-host tensor is refused; index
 * data only a backend can read is reported by the entry point. */
#include <string.h>

#include "common/batch_util.h"
#include "common/test_util.h"
#include "cpu/cpu_backend.h"
#include "engine/backend/ops.h"
#include "engine/mem/region.h"
#include "engine/nn/models.h"
#include "engine/nn/plan.h"
#include "engine/nn/trainer.h"

/* A copy of the CPU backend's table, registered in its place, for a test to edit. */
static fg_backend edited;

static fg_backend *register_cpu_copy(void) {
  fgt_setup_cpu(1);
  edited = *fg_cpu_backend();
  edited.name = "edited";
  FGT_OK(fg_backend_register(&edited));
  return &edited;
}

static fg_graph *small_cnn(void) {
  fg_model_spec spec = {.arch = "cnn", .width = 4, .in_c = 1, .in_h = 12, .in_w = 12, .classes = 5};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&spec, &g));
  return g;
}

static fg_trainer_options sgd_options(int64_t batch) {
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = batch;
  o.mode = FG_EXEC_STORE;
  o.optim = fg_optim_sgd(0.1f, 0.9f, 0.0f);
  o.device = fg_host_device();
  return o;
}

static void expect_message(const char *needle) {
  cr_assert(strstr(fg_last_error(), needle) != NULL, "message '%s' lacks '%s'", fg_last_error(), needle);
}

Test(seams, plan_fails_on_a_missing_entry_naming_op_shape_node_backend) {
  fg_backend *b = register_cpu_copy();
  b->conv2d_backward_filter = NULL;
  fg_graph *g = small_cnn();
  fg_trainer_options o = sgd_options(3);
  fg_plan *p = NULL;
  cr_assert_eq(fg_plan_build(g, &o, &p), FG_ERR_UNSUPPORTED);
  cr_assert_null(p);
  /* backward runs last layer first: block 3 of the width-4 cnn sees 16 channels at 3x3 (12 / 2 / 2) */
  expect_message("plan: block3.conv2: conv2d_backward_filter [3, 16, 3, 3] x [16, 16, 3, 3]");
  expect_message("not supported by the edited backend");
  /* Inference needs no weight gradient: it plans. */
  o.mode = FG_EXEC_INFERENCE;
  FGT_OK(fg_plan_build(g, &o, &p));
  fg_plan_free(p);
  /* A missing optimizer entry is found at plan time too, not at the first step. */
  b->conv2d_backward_filter = fg_cpu_backend()->conv2d_backward_filter;
  b->sgd_step = NULL;
  o.mode = FG_EXEC_STORE;
  cr_assert_eq(fg_plan_build(g, &o, &p), FG_ERR_UNSUPPORTED);
  expect_message("sgd_step");
  fg_graph_free(g);
  fg_backend_registry_clear();
}

/* The CPU backend masks a softmax row on the stack: a class mask over more than 4096 classes is
 * refused by its `supports` hook, at plan time. */
Test(seams, plan_asks_the_backend_about_shapes) {
  fgt_setup_cpu(1);
  fg_graph *g = fg_graph_create(1, 2, 2);
  int f = fg_graph_flatten(g, 0, "flat");
  fg_graph_mark_output(g, fg_graph_linear(g, f, 5000, 1, "fc"));
  FGT_OK(fg_graph_status(g));
  fg_trainer_options o = sgd_options(2);
  fg_plan *p = NULL;
  FGT_OK(fg_plan_build(g, &o, &p));
  fg_plan_free(p);
  o.loss.class_mask = 1;
  cr_assert_eq(fg_plan_build(g, &o, &p), FG_ERR_UNSUPPORTED);
  expect_message("softmax_xent [2, 5000] on the cpu backend: a class mask over 5000 classes (at most 4096)");
  fg_graph_free(g);
}

Test(seams, region_alignment_comes_from_the_backend) {
  fg_backend *b = register_cpu_copy();
  cr_assert_eq(fg_region_round(fg_host_device(), 1), 64u);
  b->alignment = 512;
  cr_assert_eq(fg_region_round(fg_host_device(), 1), 512u);
  cr_assert_eq(fg_region_round(fg_host_device(), 513), 1024u);
  fg_ledger l;
  fg_ledger_init(&l, "aligned", 0);
  fg_region r;
  FGT_OK(fg_region_alloc(&r, &l, fg_host_device(), FG_MEM_DATA, 100, "aligned"));
  cr_assert_eq(l.current, 512u);
  fg_region_free(&r);
  fg_backend_registry_clear();
  const fg_device cuda = {FG_DEV_CUDA, 0};
  cr_assert_eq(fg_region_round(cuda, 100), 100u, "no backend: no rounding");
}

Test(seams, host_access_to_a_device_tensor_is_refused) {
  float x[4] = {0};
  fg_tensor t = fg_tensor_1d(x, 4);
  cr_assert_eq(fg_f32(&t), x);
  t.device.kind = FG_DEV_CUDA;
  cr_assert_null(fg_f32(&t));
  cr_assert_null(fg_i32(&t));
  cr_assert_null(fg_u8(&t));
}

Test(seams, transfer_checks_dtype_count_and_devices) {
  fgt_setup_cpu(1);
  float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0};
  fg_tensor ta = fg_tensor_2d(a, 2, 3), tb = fg_tensor_1d(b, 6);
  FGT_OK(fg_tensor_transfer(&tb, &ta));
  cr_assert(memcmp(a, b, sizeof a) == 0);
  fg_tensor short_b = fg_tensor_1d(b, 5);
  cr_assert_eq(fg_tensor_transfer(&short_b, &ta), FG_ERR_SHAPE);
  int32_t i[6];
  fg_tensor ti = fg_tensor_view(i, FG_I32, fg_host_device(), 1, (const int64_t[1]){6});
  cr_assert_eq(fg_tensor_transfer(&ti, &ta), FG_ERR_SHAPE);
  expect_message("dtypes differ");
  fg_tensor on_cuda = tb;
  on_cuda.device.kind = FG_DEV_CUDA;
  cr_assert_eq(fg_tensor_transfer(&on_cuda, &ta), FG_ERR_NO_DEVICE, "%s", fg_last_error());
}

Test(seams, trainer_copies_its_input_and_checks_it) {
  fgt_setup_cpu(1);
  fg_graph *g = small_cnn();
  fg_trainer_options o = sgd_options(4);
  fg_ledger l;
  fg_ledger_init(&l, "input", 0);
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  float *state = malloc((size_t)fg_graph_state_numel(g) * sizeof *state);
  fg_graph_init_state(g, 3, state);
  FGT_OK(fg_trainer_set_state(t, state));
  float x[4 * 144];
  int32_t y[4] = {0, 1, 2, 3};
  fgt_fill_uniform(x, 4 * 144, 5, -1, 1);
  fg_tensor tx = fg_tensor_4d(x, 3, 1, 12, 12);
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, (const int64_t[1]){3});
  FGT_OK(fg_trainer_set_batch(t, &tx, &ty));
  fg_step_stats a, b;
  FGT_OK(fg_trainer_evaluate(t, 3, &a));
  /* The trainer holds a copy: changing the caller's buffer after the copy changes nothing. */
  for (int k = 0; k < 4 * 144; k++) x[k] = 0.0f;
  FGT_OK(fg_trainer_evaluate(t, 3, &b));
  cr_assert_eq(a.output_loss[0], b.output_loss[0]);
  fg_tensor big = fg_tensor_4d(x, 5, 1, 12, 12), wrong = fg_tensor_4d(x, 2, 1, 12, 11);
  cr_assert_eq(fg_trainer_set_batch(t, &big, NULL), FG_ERR_SHAPE);
  expect_message("a batch of 5 samples, the plan holds 1..4");
  cr_assert_eq(fg_trainer_set_batch(t, &wrong, NULL), FG_ERR_SHAPE);
  fg_tensor ty2 = fg_tensor_view(y, FG_I32, fg_host_device(), 1, (const int64_t[1]){2});
  cr_assert_eq(fg_trainer_set_batch(t, &tx, &ty2), FG_ERR_SHAPE);
  fg_trainer_destroy(t);
  free(state);
  fg_graph_free(g);
}

/* Labels only a backend can read come back as a report; the entry point names the count, the
 * first row and its value. */
Test(seams, bad_labels_are_reported_by_the_entry_point) {
  fgt_setup_cpu(1);
  float z[12] = {0};
  int32_t y[4] = {0, 7, 1, -2};
  fg_tensor tz = fg_tensor_2d(z, 4, 3);
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, (const int64_t[1]){4});
  double loss;
  cr_assert_eq(fg_softmax_xent(&tz, &ty, NULL, 1.0f, NULL, 0, &loss, NULL), FG_ERR_INVALID);
  expect_message("softmax_xent: 2 labels outside 0..2 (the first, at row 1, is 7)");
  fg_nhsic_desc d = {5.0f, 3};
  size_t bytes = 0;
  FGT_OK(fg_nhsic_workspace(fg_host_device(), 4, &bytes));
  void *mem = aligned_alloc(64, (bytes + 63) / 64 * 64);
  fg_workspace ws = {mem, bytes};
  double value;
  cr_assert_eq(fg_nhsic(&d, &tz, NULL, &ty, 1.0f, NULL, 0, ws, &value), FG_ERR_INVALID);
  expect_message("nhsic: 2 labels outside 0..2 (the first, at row 1, is 7)");
  fg_workspace small = {mem, bytes - 1};
  y[1] = 2;
  y[3] = 0;
  cr_assert_eq(fg_nhsic(&d, &tz, NULL, &ty, 1.0f, NULL, 0, small, &value), FG_ERR_INVALID);
  expect_message("smaller than the");
  FGT_OK(fg_nhsic(&d, &tz, NULL, &ty, 1.0f, NULL, 0, ws, &value));
  free(mem);
}
