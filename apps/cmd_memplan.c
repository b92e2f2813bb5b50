/* fedgap memplan: the exact memory plan of one training step, by category, without training.
 * The last line, peak_bytes=N, is the ledger's peak when a trainer of the same configuration
 * runs a step (tests/cpu/test_plan.c checks this). */
#include <stdio.h>

#include "apps/cli.h"
#include "engine/nn/plan.h"

int fg_cmd_memplan(int argc, char **argv) {
  fg_cli_model m = {"cnn", 0, NULL, 0, 0, 0, 0};
  int batch = 0;
  const char *mode_name = "store", *optimizer = "sgd";
  double momentum = 0.9;
  fg_arg args[] = {
      {"batch", FG_ARG_INT, &batch, "B", "batch size", 1, 1 << 24, 1, 0},
      {"mode", FG_ARG_STRING, &mode_name, "store|checkpoint", "activation policy (default store)", 0, -1, 0, 0},
      {"optimizer", FG_ARG_STRING, &optimizer, "sgd|adam", "optimizer whose state is planned (default sgd)", 0, -1, 0, 0},
      {"momentum", FG_ARG_DOUBLE, &momentum, "M", "SGD momentum (default 0.9; 0 keeps no state)", 0, 1, 0, 0},
  };
  fg_arg model_args[FG_CLI_MODEL_ARGS];
  int n_model = fg_cli_model_args(&m, 1, model_args);
  fg_command cmd = {"memplan", "Print the exact memory plan of one training step, by category.", args,
                    (int)(sizeof args / sizeof args[0]), model_args, n_model};
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  fg_model_spec spec;
  rc = fg_cli_model_spec(&cmd, &m, 0, 0, 0, 10, &spec);
  if (rc != FG_EXIT_OK) return rc;
  fg_trainer_options opt = {0};
  opt.batch = batch;
  opt.device = fg_cpu_device();
  rc = fg_cli_mode(&cmd, mode_name, &opt.mode);
  if (rc == FG_EXIT_OK) rc = fg_cli_optimizer(&cmd, optimizer, 0.01, momentum, 0, &opt.optim);
  if (rc == FG_EXIT_OK) rc = fg_cli_start_cpu(cmd.name, m.threads);
  if (rc != FG_EXIT_OK) return rc;

  fg_graph *g = NULL;
  fg_plan *plan = NULL;
  if (fg_model_build(&spec, &g) != FG_OK || fg_plan_build(g, &opt, &plan) != FG_OK) {
    fg_graph_free(g);
    return fg_runtime_error(cmd.name);
  }
  printf("memory plan: %s (width %g), input %lldx%lldx%lld, %d classes, batch %d, mode %s, optimizer %s",
         spec.arch, fg_model_width(&spec), (long long)spec.in_c, (long long)spec.in_h, (long long)spec.in_w,
         spec.classes, batch, fg_exec_mode_name(opt.mode), fg_optim_name(opt.optim.kind));
  if (opt.optim.kind == FG_OPTIM_SGD) printf(" (momentum %g)", momentum);
  printf(", device cpu\n");
  printf("parameters: %lld (%lld trained), buffers: %lld floats, nodes with backward: %d\n",
         (long long)fg_graph_param_numel(g), (long long)plan->grad_numel,
         (long long)(fg_graph_state_numel(g) - fg_graph_param_numel(g)), plan->n_backward_nodes);
  printf("%-12s %14s %12s\n", "category", "bytes", "MiB");
  for (int k = 0; k < FG_MEM_CATEGORIES; k++) {
    if (k == FG_MEM_OTHER) continue;
    printf("%-12s %14zu %12.2f\n", fg_mem_category_name((fg_mem_category)k), plan->bytes_by_cat[k],
           (double)plan->bytes_by_cat[k] / (1024.0 * 1024.0));
  }
  printf("%-12s %14zu %12.2f\n", "total", plan->total, (double)plan->total / (1024.0 * 1024.0));
  printf("peak_bytes=%zu\n", plan->total);
  fg_plan_free(plan);
  fg_graph_free(g);
  return FG_EXIT_OK;
}
