/* fedgap memplan: the exact memory plan of one training step, by category, without training.
 * peak_bytes=N is the ledger's peak when a trainer of the same configuration runs a step
 * (tests/cpu/test_plan.c checks this); --measure runs that step on a synthetic batch and prints
 * the peak the ledger measured beside the plan's. */
#include <stdio.h>

#include <string.h>

#include "apps/cli.h"
#include "engine/nn/plan.h"
#include "fl/config.h"
#include "fl/method.h"

/* Each level of the method `mc` configures planned as the FL server plans a local step to decide
 * what fits a budget (fg_method_plan_step at the budget round of a run of `rounds` rounds):
 * parameters, trained parameters, bytes by kind (state = parameters + gradients + optimizer),
 * the peak, and the peak relative to the model's own step. */
static int print_method_levels(const char *cmd, const fg_method_config *mc, const fg_arg_list *sets,
                               const fg_model_spec *base, const fg_trainer_options *opt, int rounds, size_t model_peak,
                               int measure) {
  const fg_method_ops *ops = fg_method_find(mc->name);
  if (!ops) return fg_runtime_error(cmd);
  fg_method_plan mp;
  fg_status st = ops->plan(mc, base, &mp);
  printf("\nmethod %s: one local step per level, planned at round %d of %d (", mc->name,
         fg_method_budget_round(rounds) + 1, rounds);
  if (sets->n == 0) printf("default options");
  for (int i = 0; i < sets->n; i++) printf("%s%s", i ? ", " : "", sets->items[i]);
  printf(")\n");
  printf("%-12s %11s %11s %9s %9s %9s %9s %13s %8s%s\n", "level", "parameters", "trained", "state MiB",
         "act MiB", "ws MiB", "data MiB", "peak_bytes", "vs model", measure ? "    measured_bytes" : "");
  size_t largest = 0;
  for (int l = 0; l < mp.n_levels && st == FG_OK; l++) {
    fg_graph *g = NULL;
    fg_plan *p = NULL;
    st = fg_method_build_level(ops, mc, &mp, l, &g);
    if (st == FG_OK)
      st = fg_method_plan_step(ops, mc, &mp, l, g, opt, fg_method_budget_round(rounds), rounds, &p);
    size_t measured = 0;
    if (st == FG_OK && measure) st = fg_cli_measure_step(g, p, base->classes, &measured);
    if (st == FG_OK) {
      const double mib = 1024.0 * 1024.0;
      size_t state = p->bytes_by_cat[FG_MEM_PARAMS] + p->bytes_by_cat[FG_MEM_GRADS] + p->bytes_by_cat[FG_MEM_OPTIM];
      printf("%-12s %11lld %11lld %9.2f %9.2f %9.2f %9.2f %13zu %7.1f%%", mp.levels[l].label,
             (long long)fg_graph_param_numel(g), (long long)p->grad_numel, (double)state / mib,
             (double)p->bytes_by_cat[FG_MEM_ACTIVATIONS] / mib, (double)p->bytes_by_cat[FG_MEM_WORKSPACE] / mib,
             (double)p->bytes_by_cat[FG_MEM_DATA] / mib, p->total, 100.0 * (double)p->total / (double)model_peak);
      if (measure) printf(" %19zu", measured);
      putchar('\n');
      if (p->total > largest) largest = p->total;
    }
    fg_plan_free(p);
    fg_graph_free(g);
  }
  if (st != FG_OK) return fg_runtime_error(cmd);
  printf("largest_level_bytes=%zu (%.1f%% of the model's %zu)\n", largest, 100.0 * (double)largest / (double)model_peak,
         model_peak);
  return FG_EXIT_OK;
}

/* The plan of one step of the model itself, by category; *model_peak := its total. */
static int print_model_plan(const char *cmd, const fg_model_spec *spec, const fg_trainer_options *opt, int batch,
                            double momentum, int measure, size_t *model_peak) {
  fg_graph *g = NULL;
  fg_plan *plan = NULL;
  if (fg_model_build(spec, &g) != FG_OK || fg_plan_build(g, opt, &plan) != FG_OK) {
    fg_graph_free(g);
    return fg_runtime_error(cmd);
  }
  printf("memory plan: %s (width %g), input %lldx%lldx%lld, %d classes, batch %d, mode %s, optimizer %s",
         spec->arch, fg_model_width(spec), (long long)spec->in_c, (long long)spec->in_h, (long long)spec->in_w,
         spec->classes, batch, fg_exec_mode_name(opt->mode), fg_optim_name(opt->optim.kind));
  if (opt->optim.kind == FG_OPTIM_SGD) printf(" (momentum %g)", momentum);
  char device[32];
  printf(", device %s\n", fg_device_str(opt->device, device, sizeof device));
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
  const fg_backend *b = fg_backend_for(opt->device);
  if (b && (b->fixed || b->baseline_bytes))
    printf("backend overhead (outside the plan, once per process): %zu bytes of the %s backend's own scratch, "
           "%zu bytes of runtime and library handles\n",
           b->fixed ? b->fixed->current : 0, b->name, b->baseline_bytes);
  *model_peak = plan->total;
  size_t measured = 0;
  if (measure) {
    if (fg_cli_measure_step(g, plan, spec->classes, &measured) != FG_OK) {
      fg_plan_free(plan);
      fg_graph_free(g);
      return fg_runtime_error(cmd);
    }
    printf("measured_peak_bytes=%zu\n", measured);
  }
  fg_plan_free(plan);
  fg_graph_free(g);
  return FG_EXIT_OK;
}

int fg_cmd_memplan(int argc, char **argv) {
  static const char summary[] = "Print the exact memory plan of one training step, by category.";
  fg_cli_model m = fg_cli_model_defaults();
  int batch = 0;
  const char *mode_name = "store", *optimizer = "sgd", *method = NULL;
  double momentum = 0.9;
  int measure = 0, rounds = 20;
  fg_arg_list sets = {{0}, 0};
  fg_arg args[] = {
      {"batch", FG_ARG_INT, &batch, "B", "batch size", 1, 1 << 24, 1, 0},
      {"mode", FG_ARG_STRING, &mode_name, "store|checkpoint", "activation policy (default store)", 0, -1, 0, 0},
      {"optimizer", FG_ARG_STRING, &optimizer, "sgd|adam", "optimizer whose state is planned (default sgd)", 0, -1, 0, 0},
      {"momentum", FG_ARG_DOUBLE, &momentum, "M", "SGD momentum (default 0.9; 0 keeps no state)", 0, 1, 0, 0},
      {"method", FG_ARG_STRING, &method, "NAME",
       "also plan every level of an FL method (e.g. neulite stages, heterofl widths)", 0, -1, 0, 0},
      {"set", FG_ARG_LIST, &sets, "OPTION=VALUE",
       "with --method: a method option as a config file's method entry sets it (repeatable), e.g. "
       "--set output_module=bn_relu",
       0, -1, 0, 0},
      {"rounds", FG_ARG_INT, &rounds, "R",
       "with --method: the run's rounds; levels are planned at the last, as the server plans budgets (default 20)", 1,
       1 << 30, 0, 0},
      {"measure", FG_ARG_FLAG, &measure, "",
       "also run one step of each on a synthetic batch and print the ledger's measured peak", 0, -1, 0, 0},
  };
  fg_command cmd = {"memplan", summary, args, (int)(sizeof args / sizeof args[0]), NULL, 0};
  fg_cli_synthetic su;
  int rc = fg_cli_synthetic_command(&cmd, &m, argc, argv, &batch, &mode_name, &su);
  if (rc != FG_EXIT_OK || su.help) return rc;
  rc = fg_cli_optimizer(&cmd, optimizer, 0.01, momentum, 0, &su.opt.optim);
  if (rc != FG_EXIT_OK) return rc;
  if (sets.n > 0 && !method) return fg_usage_error(&cmd, "--set sets a method option: give --method");
  fg_method_config mc = {0};
  if (method && fg_method_config_with(method, su.spec.arch, sets.items, sets.n, &mc) != FG_OK)
    return fg_usage_error(&cmd, "%s", fg_last_error());

  size_t model_peak = 0;
  rc = print_model_plan(cmd.name, &su.spec, &su.opt, batch, momentum, measure, &model_peak);
  if (rc == FG_EXIT_OK && method)
    rc = print_method_levels(cmd.name, &mc, &sets, &su.spec, &su.opt, rounds, model_peak, measure);
  fg_method_config_free(&mc);
  return rc;
}
