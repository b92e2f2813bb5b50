/* fedgap bench train: training throughput and peak memory of a built-in model on synthetic
 * batches of its input shape (the data pipeline is not measured). Prints
 * samples_per_s=... peak_engine_bytes=... peak_rss_bytes=... params=... on the last line (params:
 * the model's parameter count, for checking a twin in another framework); the median of
 * --repeats timed runs of --steps steps each. Device work is asynchronous: the device is
 * synchronised before the clock is read at the start and the end of every timed run. On a device
 * other than the CPU the last line also carries peak_device_bytes (the peak of the ledger the
 * trainer's device regions are charged to), device_in_use_bytes (the device's own count of
 * memory in use after the runs: the runtime's context, library handles and the backend's fixed
 * scratch too) and device=NAME.
 * fedgap bench hypernet: HypeMeFed's server hypernetworks, in apps/cmd_bench_hypernet.c.
 * fedgap bench nhsic: the nhsic op over an m x d grid beside its roofline, in
 * apps/cmd_bench_nhsic.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/backend/ops.h"
#include "engine/base/rng.h"
#include "engine/nn/trainer.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int bench_train(int argc, char **argv) {
  static const char summary[] = "Measure training throughput and peak memory on synthetic batches.";
  fg_cli_model m = fg_cli_model_defaults();
  int batch = 64, steps = 50, warmup = 5, repeats = 3;
  const char *mode_name = "store";
  fg_arg args[] = {
      {"batch", FG_ARG_INT, &batch, "B", "batch size (default 64)", 1, 1 << 20, 0, 0},
      {"steps", FG_ARG_INT, &steps, "N", "timed steps per run (default 50)", 1, 1 << 30, 0, 0},
      {"warmup", FG_ARG_INT, &warmup, "K", "untimed steps first (default 5)", 0, 1 << 20, 0, 0},
      {"repeats", FG_ARG_INT, &repeats, "R", "timed runs; the median is reported (default 3)", 1, 1000, 0, 0},
      {"mode", FG_ARG_STRING, &mode_name, "store|checkpoint", "activation policy (default store)", 0, -1, 0, 0},
  };
  fg_command cmd = {"bench train", summary, args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  fg_cli_synthetic su;
  int rc = fg_cli_synthetic_command(&cmd, &m, argc, argv, &batch, &mode_name, &su);
  if (rc != FG_EXIT_OK || su.help) return rc;
  su.opt.optim = fg_optim_sgd(0.02f, 0.9f, 5e-4f);

  fg_ledger ledger;
  fg_ledger_init(&ledger, "bench", 0);
  fg_graph *g = NULL;
  fg_trainer *t = NULL;
  float *state = NULL;
  double *rates = calloc((size_t)repeats, sizeof *rates);
  if (fg_model_build(&su.spec, &g) != FG_OK || fg_trainer_create(g, &su.opt, &ledger, &t) != FG_OK) goto fail;
  state = malloc((size_t)fg_graph_state_numel(g) * sizeof *state);
  if (!state || !rates) {
    FG_FAIL(FG_ERR_OOM, "out of memory");
    goto fail;
  }
  fg_graph_init_state(g, 1, state);
  if (fg_trainer_set_state(t, state) != FG_OK) goto fail;
  if (fg_cli_synthetic_batch(t, 1, su.spec.classes) != FG_OK) goto fail;
  fg_step_stats st;
  for (int k = 0; k < warmup; k++)
    if (fg_trainer_step(t, batch, &st) != FG_OK) goto fail;
  for (int r = 0; r < repeats; r++) {
    if (fg_device_synchronize(su.opt.device) != FG_OK) goto fail;
    double t0 = fg_now();
    for (int k = 0; k < steps; k++)
      if (fg_trainer_step(t, batch, &st) != FG_OK) goto fail;
    if (fg_device_synchronize(su.opt.device) != FG_OK) goto fail;
    rates[r] = (double)batch * steps / (fg_now() - t0);
    printf("run %d: %.1f samples/s\n", r + 1, rates[r]);
  }
  qsort(rates, (size_t)repeats, sizeof *rates, cmp_double);
  fg_backend *b = fg_backend_for(su.opt.device);
  long long params = (long long)fg_graph_param_numel(g);
  printf("model %s (width %g), input %lldx%lldx%lld, batch %d, %lld parameters, %s, %s\n", su.spec.arch,
         fg_model_width(&su.spec), (long long)su.spec.in_c, (long long)su.spec.in_h, (long long)su.spec.in_w, batch,
         params, fg_exec_mode_name(su.opt.mode), b->description);
  if (su.opt.device.kind == FG_DEV_CPU) {
    printf("samples_per_s=%.1f peak_engine_bytes=%zu peak_rss_bytes=%zu params=%lld\n", rates[repeats / 2],
           ledger.peak, fg_process_peak_rss(), params);
  } else {
    size_t free_bytes = 0, total_bytes = 0;
    if (!b->mem_query || b->mem_query(b, &free_bytes, &total_bytes) != FG_OK) free_bytes = total_bytes = 0;
    char dev[32];
    printf("samples_per_s=%.1f peak_engine_bytes=%zu peak_device_bytes=%zu device_in_use_bytes=%zu "
           "peak_rss_bytes=%zu params=%lld device=%s\n",
           rates[repeats / 2], ledger.peak, ledger.peak, total_bytes - free_bytes, fg_process_peak_rss(), params,
           fg_device_str(su.opt.device, dev, sizeof dev));
  }
  fg_trainer_destroy(t);
  fg_graph_free(g);
  free(state);
  free(rates);
  return FG_EXIT_OK;
fail:
  rc = fg_runtime_error("bench");
  fg_trainer_destroy(t);
  fg_graph_free(g);
  free(state);
  free(rates);
  return rc;
}

int fg_cmd_bench(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "train") == 0) return bench_train(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "hypernet") == 0) return fg_cmd_bench_hypernet(argc - 1, argv + 1);
  if (argc >= 1 && strcmp(argv[0], "nhsic") == 0) return fg_cmd_bench_nhsic(argc - 1, argv + 1);
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    printf("usage: fedgap bench train|hypernet|nhsic [options]\n\n"
           "  train     training throughput and peak memory of a built-in model\n"
           "  hypernet  memory and round time of HypeMeFed's LRF hypernetworks against naive ones\n"
           "  nhsic     time of the nhsic op (value and gradient) over an m x d grid beside its roofline\n\n"
           "'fedgap bench NAME --help' lists a benchmark's options.\n");
    return FG_EXIT_OK;
  }
  fprintf(stderr, "fedgap bench: expected a benchmark name: train, hypernet or nhsic (see 'fedgap bench --help')\n");
  return FG_EXIT_USAGE;
}
