/* The CLI: usage errors are one line on stderr with exit status 2; help works; the number
 * memplan prints equals the ledger's measured peak of one real training step of the same
 * configuration; bench train keeps its CPU output format and bench nhsic prints its roofline. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/run_cmd.h"
#include "common/batch_util.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/nn/models.h"
#include "engine/nn/trainer.h"

static void expect_usage_error(const char *const *argv, const char *needle) {
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 2, "%s %s: status %d, stderr: %s", argv[1], argv[2] ? argv[2] : "", r.status, r.err);
  cr_assert_eq(fgt_line_count(r.err), 1, "stderr is not one line: %s", r.err);
  cr_assert(strstr(r.err, needle) != NULL, "stderr '%s' does not mention '%s'", r.err, needle);
  fgt_run_free(&r);
}

Test(cli, usage_errors_are_one_line_exit_2) {
  expect_usage_error((const char *[]){"", "train", "--epochs", "x", NULL}, "--epochs");
  expect_usage_error((const char *[]){"", "train", "--bogus", "1", NULL}, "--bogus");
  expect_usage_error((const char *[]){"", "train", "--lr", "-1", NULL}, "out of range");
  expect_usage_error((const char *[]){"", "train", "--batch", NULL}, "--batch");
  expect_usage_error((const char *[]){"", "memplan", "--model", "cnn", NULL}, "--batch is required");
  expect_usage_error((const char *[]){"", "memplan", "--model", "cnn", "--batch", "8", "--mode", "fast", NULL}, "--mode");
  expect_usage_error((const char *[]){"", "memplan", "--model", "vgg", "--batch", "8", NULL}, "vgg");
  expect_usage_error((const char *[]){"", "memplan", "--model", "cnn", "--batch", "8", "--input", "3x32", NULL},
                     "--input");
  expect_usage_error((const char *[]){"", "eval", NULL}, "--weights");
  expect_usage_error((const char *[]){"", "frobnicate", NULL}, "frobnicate");
  expect_usage_error((const char *[]){"", "bench", "fly", NULL}, "train");
}

Test(cli, runtime_errors_are_one_line_exit_1) {
  fgt_run r = fgt_run_fedgap((const char *[]){"", "eval", "--weights", "/nonexistent/w.safetensors", NULL});
  cr_assert_eq(r.status, 1, "status %d", r.status);
  cr_assert_eq(fgt_line_count(r.err), 1, "%s", r.err);
  cr_assert(strstr(r.err, "/nonexistent/w.safetensors") != NULL, "%s", r.err);
  fgt_run_free(&r);
}

Test(cli, help_lists_every_command_and_option) {
  fgt_run r = fgt_run_fedgap((const char *[]){"", "--help", NULL});
  cr_assert_eq(r.status, 0);
  const char *cmds[] = {"train", "eval", "memplan", "bench", "devices"};
  for (int i = 0; i < 5; i++) cr_assert(strstr(r.out, cmds[i]) != NULL, "missing %s", cmds[i]);
  fgt_run_free(&r);
  r = fgt_run_fedgap((const char *[]){"", "train", "--help", NULL});
  cr_assert_eq(r.status, 0);
  const char *opts[] = {"--model", "--dataset", "--epochs", "--batch", "--lr", "--momentum", "--weight-decay",
                        "--seed", "--width", "--threads", "--save"};
  for (int i = 0; i < 11; i++) cr_assert(strstr(r.out, opts[i]) != NULL, "missing %s", opts[i]);
  fgt_run_free(&r);
  r = fgt_run_fedgap((const char *[]){"", "--version", NULL});
  cr_assert_eq(r.status, 0);
  cr_assert(strstr(r.out, "cpu: available") != NULL, "%s", r.out);
  cr_assert(strstr(r.out, "cuda: ") != NULL, "%s", r.out);
  fgt_run_free(&r);
}

/* memplan's peak_bytes against a real step measured by the ledger, in this process. */
static void memplan_matches_step(const char *arch, const char *width, const char *input, const char *batch,
                                 const char *mode) {
  fgt_run r = fgt_run_fedgap((const char *[]){"", "memplan", "--model", arch, "--width", width, "--input", input,
                                              "--batch", batch, "--mode", mode, "--threads", "2", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  unsigned long long planned = 0;
  cr_assert_eq(sscanf(fgt_last_line(r.out), "peak_bytes=%llu", &planned), 1, "%s", r.out);
  fgt_run_free(&r);

  fgt_setup_cpu(2);
  fg_model_spec spec = {.arch = arch, .width = atof(width), .in_c = 0, .in_h = 0, .in_w = 0, .classes = 10, .exits = 0, .depth = 0};
  long long c, h, w;
  cr_assert_eq(sscanf(input, "%lldx%lldx%lld", &c, &h, &w), 3);
  spec.in_c = c;
  spec.in_h = h;
  spec.in_w = w;
  fg_graph *g;
  FGT_OK(fg_model_build(&spec, &g));
  fg_trainer_options o;
  memset(&o, 0, sizeof o);
  o.batch = atoi(batch);
  o.mode = strcmp(mode, "checkpoint") == 0 ? FG_EXEC_CHECKPOINT : FG_EXEC_STORE;
  o.optim = fg_optim_sgd(0.01f, 0.9f, 0.0f); /* memplan's default: SGD with momentum 0.9 */
  o.device = fg_host_device();
  fg_ledger l;
  fg_ledger_init(&l, "measured", 0);
  fg_trainer *t;
  FGT_OK(fg_trainer_create(g, &o, &l, &t));
  float *state = malloc((size_t)fg_graph_state_numel(g) * sizeof *state);
  fg_graph_init_state(g, 1, state);
  FGT_OK(fg_trainer_set_state(t, state));
  fgt_input in;
  fgt_input_open(&in, t);
  fgt_fill_uniform(fg_f32(&in.x), (size_t)fg_tensor_numel(&in.x), 3, -1, 1);
  for (int64_t i = 0; i < in.y.shape[0]; i++) fg_i32(&in.y)[i] = (int32_t)(i % 10);
  fgt_input_load(&in, t, o.batch);
  fgt_input_close(&in);
  fg_step_stats st;
  FGT_OK(fg_trainer_step(t, o.batch, &st));
  cr_assert_eq((unsigned long long)l.peak, planned, "%s %s: memplan %llu, measured %zu", arch, mode, planned, l.peak);
  fg_trainer_destroy(t);
  free(state);
  fg_graph_free(g);
}

Test(cli, memplan_equals_measured_peak_cnn) { memplan_matches_step("cnn", "16", "1x28x28", "64", "store"); }
Test(cli, memplan_equals_measured_peak_resnet_checkpoint) {
  memplan_matches_step("resnet18", "0.25", "3x32x32", "8", "checkpoint");
}
Test(cli, memplan_equals_measured_peak_vgg) { memplan_matches_step("vgg-me", "0.5", "3x32x32", "16", "store"); }

/* bench train on the CPU: its last line keeps the format bench/cnn_vs_torch.sh and bench/suite.sh parse. */
Test(cli, bench_train_cpu_last_line) {
  fgt_run r = fgt_run_fedgap((const char *[]){"", "bench", "train", "--model", "cnn", "--width", "2", "--batch", "4",
                                              "--steps", "2", "--warmup", "1", "--repeats", "1", "--threads", "1",
                                              NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  double rate = 0;
  unsigned long long engine = 0, rss = 0, params = 0;
  int used = 0;
  const char *last = fgt_last_line(r.out);
  cr_assert_eq(sscanf(last, "samples_per_s=%lf peak_engine_bytes=%llu peak_rss_bytes=%llu params=%llu%n", &rate,
                      &engine, &rss, &params, &used),
               4, "%s", last);
  cr_assert_eq(last[used], '\0', "extra fields on the CPU: %s", last);
  cr_assert(rate > 0 && engine > 0 && rss > 0, "%s", last);
  /* cnn width 2, 1x28x28, 10 classes: convs 18 + 36 + 72 + 144 + 288 + 576, BN 2 x (2 + 2 + 4 + 4 + 8 + 8),
   * head 8 x 10 + 10 */
  cr_assert_eq(params, 1280, "%s", last);
  fgt_run_free(&r);
}

/* bench nhsic on the CPU: one row per cell, the roofline from the counted FLOPs and bytes (at
 * 1 TFLOP/s and 1 GB/s, m = 64, d = 784: 9,782,272 FLOPs take 9.8 us, 401,664 bytes 401.7 us:
 * memory-bound), and usage errors for bad lists. */
Test(cli, bench_nhsic_cpu) {
  fgt_run r = fgt_run_fedgap((const char *[]){"", "bench", "nhsic", "--m", "64,8", "--d", "784", "--repeats", "2",
                                              "--warmup", "0", "--threads", "1", "--peak-tflops", "1", "--peak-gbs",
                                              "1", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, "roofline at 1 TFLOP/s and 1 GB/s") != NULL, "%s", r.out);
  const char *row = strstr(r.out, "\n    64     784 ");
  cr_assert_not_null(row, "%s", r.out);
  double med, fastest, gflop, mb, roof, ratio;
  char bound[16];
  cr_assert_eq(sscanf(row, " 64 784 %lf %lf %lf %lf %lf %15s %lf", &med, &fastest, &gflop, &mb, &roof, bound, &ratio),
               7, "%s", row);
  cr_assert(fabs(gflop - 0.0098) < 1e-9 && fabs(mb - 0.402) < 1e-9 && fabs(roof - 401.7) < 1e-9, "%s", row);
  cr_assert_str_eq(bound, "memory");
  cr_assert(med > 0 && fastest > 0 && fastest <= med, "%s", row);
  cr_assert(strstr(r.out, "\n     8     784 ") != NULL, "%s", r.out);
  cr_assert(strncmp(fgt_last_line(r.out), "cells=2 ", 8) == 0, "%s", fgt_last_line(r.out));
  fgt_run_free(&r);
  expect_usage_error((const char *[]){"", "bench", "nhsic", "--m", "1", NULL}, "--m");
  expect_usage_error((const char *[]){"", "bench", "nhsic", "--d", "784,x", NULL}, "--d");
  expect_usage_error((const char *[]){"", "bench", "nhsic", "--target", "pixels", NULL}, "--target");
}
