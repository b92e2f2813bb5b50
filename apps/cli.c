/* Shared CLI helpers. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "apps/cli.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu_backend.h"
#include "engine/base/rng.h"
#include "engine/data/dataset.h"
#include "fedgap_config.h"
#if FEDGAP_WITH_CUDA
#include "cuda/cuda_backend.h"
#endif
#if FEDGAP_WITH_MPI
#include "mpi/mpi_transport.h"
#endif

/* The first of the launcher variables `names` that holds a number >= 0, or -1. */
static int launcher_number(const char *const *names, int n) {
  for (int i = 0; i < n; i++) {
    const char *v = getenv(names[i]);
    char *end = NULL;
    long x = v ? strtol(v, &end, 10) : -1;
    if (v && *v && end && *end == '\0' && x >= 0 && x < 1 << 24) return (int)x;
  }
  return -1;
}

/* The launcher's node-local rank of this process (0 when none): what cuda:local means outside a
 * spread run. */
static int launched_local_rank(void) {
  static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"};
  int rank = launcher_number(names, 3);
  return rank > 0 ? rank : 0;
}

int fg_cli_device(const fg_command *cmd, const char *text, fg_device *out) {
  if (fg_device_parse(text, out) != FG_OK) return fg_usage_error(cmd, "--device: %s", fg_last_error());
  *out = fg_cli_local_device(*out, launched_local_rank());
  return FG_EXIT_OK;
}

fg_status fg_cli_start_backends(int threads, fg_device device) {
  device = fg_cli_local_device(device, launched_local_rank());
  fg_cpu_options opt = {threads, 0};
  FG_TRY(fg_cpu_backend_register(&opt));
  if (device.kind == FG_DEV_CUDA) fg_cli_probe_cuda(device.index);
  return fg_backend_for(device) ? FG_OK : fg_last_status();
}

int fg_cli_start(const char *cmd, int threads, fg_device device) {
  return fg_cli_start_backends(threads, device) == FG_OK ? FG_EXIT_OK : fg_runtime_error(cmd);
}

const char *fg_cli_kernels(char *buf, size_t cap) {
  snprintf(buf, cap, "OpenBLAS core %s, %s convolutions", fg_cpu_blas_core(),
           fg_cpu_uses_avx2() ? "AVX2 3x3" : "generic");
  return buf;
}

void fg_cli_probe_cuda(int index) {
#if FEDGAP_WITH_CUDA
  fg_cuda_backend_register(index);
#else
  (void)index;
#endif
}

int fg_cli_launched_size(void) {
  static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
  static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
  int size = launcher_number(sizes, 3);
  if (size > 0) return size;
  return launcher_number(ranks, 3) >= 0 ? 1 : 0;
}

int fg_cli_launched_rank(void) {
  static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
  int rank = launcher_number(ranks, 3);
  return rank > 0 ? rank : 0;
}

int fg_cli_spread_open(const char *cmd, double watchdog, fg_transport **out) {
  *out = NULL;
  int size = fg_cli_launched_size();
  if (size == 0) return FG_EXIT_OK;
#if FEDGAP_WITH_MPI
  if (fg_mpi_open(watchdog, out) != FG_OK) return fg_runtime_error(cmd);
#else
  (void)watchdog;
  if (size > 1) {
    FG_FAIL(FG_ERR_UNSUPPORTED, "this fedgap was built without the MPI transport (FEDGAP_MPI=OFF, or no MPI library "
            "when it was configured), so each of the %d processes mpirun started would run the whole experiment: "
            "rebuild with Open MPI (scripts/install-deps.sh)", size);
    return fg_cli_launched_rank() == 0 ? fg_runtime_error(cmd) : FG_EXIT_FAILURE;
  }
#endif
  return FG_EXIT_OK;
}

int fg_cli_spread_close(fg_transport *t, int exit_status, int out_of_step) {
#if FEDGAP_WITH_MPI
  return fg_mpi_close(t, exit_status, out_of_step);
#else
  (void)t;
  (void)out_of_step;
  return exit_status;
#endif
}

int fg_cli_process_threads(int budget, int local_size) {
  int cores = budget;
  if (cores <= 0) {
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : (int)(online > 0 ? online : 1);
    /* a process the launcher bound to a few cores uses those; an unbound one shares the node */
    if (online > 0 && cores >= online) cores = (int)online / (local_size > 0 ? local_size : 1);
    return cores > 0 ? cores : 1;
  }
  cores /= local_size > 0 ? local_size : 1;
  return cores > 0 ? cores : 1;
}

fg_device fg_cli_local_device(fg_device d, int local_rank) {
  if (d.index == FG_DEVICE_INDEX_LOCAL) d.index = local_rank;
  return d;
}

int fg_cli_parse_shape(const char *text, int64_t *c, int64_t *h, int64_t *w) {
  long long a, b, d;
  char tail;
  if (sscanf(text, "%lldx%lldx%lld%c", &a, &b, &d, &tail) != 3) return -1;
  if (a <= 0 || b <= 0 || d <= 0 || a > 4096 || b > 65536 || d > 65536) return -1;
  *c = a;
  *h = b;
  *w = d;
  return 0;
}

int fg_cli_mode(const fg_command *cmd, const char *text, fg_exec_mode *mode) {
  if (strcmp(text, "store") == 0)
    *mode = FG_EXEC_STORE;
  else if (strcmp(text, "checkpoint") == 0)
    *mode = FG_EXEC_CHECKPOINT;
  else
    return fg_usage_error(cmd, "--mode '%s' is not store or checkpoint", text);
  return FG_EXIT_OK;
}

const char *fg_cli_mib(size_t bytes, char *buf, size_t cap) {
  snprintf(buf, cap, "%.2f MiB", (double)bytes / (1024.0 * 1024.0));
  return buf;
}

static void default_input(const char *arch, int64_t *c, int64_t *h, int64_t *w) {
  int mnist = arch && strcmp(arch, "cnn") == 0;
  *c = mnist ? 1 : 3;
  *h = mnist ? 28 : 32;
  *w = mnist ? 28 : 32;
}

int fg_cli_model_spec(const fg_command *cmd, const fg_cli_model *m, int64_t c, int64_t h, int64_t w,
                      int k, fg_model_spec *spec) {
  memset(spec, 0, sizeof *spec);
  if (c == 0) default_input(m->arch, &c, &h, &w);
  spec->arch = m->arch;
  spec->width = m->width;
  spec->exits = m->exits;
  spec->depth = m->depth;
  spec->classes = m->classes ? m->classes : (k ? k : 10);
  spec->in_c = c;
  spec->in_h = h;
  spec->in_w = w;
  if (m->input && fg_cli_parse_shape(m->input, &spec->in_c, &spec->in_h, &spec->in_w) != 0)
    return fg_usage_error(cmd, "--input '%s' is not of the form CxHxW (e.g. 3x32x32)", m->input);
  if (!fg_model_block_count(m->arch))
    return fg_usage_error(cmd, "--model '%s' is not one of %s", m->arch, fg_model_arch_list());
  return FG_EXIT_OK;
}

int fg_cli_trainer_options(const fg_command *cmd, const fg_cli_model *m, int64_t batch, const char *mode,
                           fg_trainer_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->batch = batch;
  int rc = fg_cli_mode(cmd, mode, &opt->mode);
  if (rc == FG_EXIT_OK) rc = fg_cli_device(cmd, m->device, &opt->device);
  if (rc == FG_EXIT_OK) rc = fg_cli_start(cmd->name, m->threads, opt->device);
  return rc;
}

int fg_cli_synthetic_command(fg_command *cmd, fg_cli_model *m, int argc, char **argv, const int *batch,
                             const char *const *mode, fg_cli_synthetic *out) {
  memset(out, 0, sizeof *out);
  fg_arg model_args[FG_CLI_MODEL_ARGS];
  cmd->shared = model_args;
  cmd->n_shared = fg_cli_model_args(m, 1, model_args);
  int rc = fg_args_parse(cmd, argc, argv, &out->help);
  cmd->shared = NULL;
  cmd->n_shared = 0;
  if (rc != FG_EXIT_OK || out->help) return rc;
  rc = fg_cli_model_spec(cmd, m, 0, 0, 0, 10, &out->spec);
  if (rc != FG_EXIT_OK) return rc;
  return fg_cli_trainer_options(cmd, m, *batch, *mode, &out->opt);
}

fg_cli_model fg_cli_model_defaults(void) {
  fg_cli_model m;
  memset(&m, 0, sizeof m);
  m.arch = "cnn";
  m.device = "cpu";
  return m;
}

int fg_cli_optimizer(const fg_command *cmd, const char *name, double lr, double momentum, double weight_decay,
                     fg_optim_config *out) {
  if (strcmp(name, "sgd") == 0)
    *out = fg_optim_sgd((float)lr, (float)momentum, (float)weight_decay);
  else if (strcmp(name, "adam") == 0)
    *out = fg_optim_adam((float)lr, (float)weight_decay);
  else
    return fg_usage_error(cmd, "--optimizer '%s' is not sgd or adam", name);
  return FG_EXIT_OK;
}

int fg_cli_model_args(fg_cli_model *m, int with_shape, fg_arg out[FG_CLI_MODEL_ARGS]) {
  const fg_arg common[] = {
      {"model", FG_ARG_STRING, &m->arch, "M", "cnn, vgg-me, resnet18 or resnet34 (default cnn)", 0, -1, 0, 0},
      {"width", FG_ARG_DOUBLE, &m->width, "W", "cnn: block-1 channels (default 16); others: multiplier (1)", 0.01,
       1024, 0, 0},
      {"exits", FG_ARG_FLAG, &m->exits, "", "cnn, resnets: with the early exits (after blocks 1-2, 1-3)", 0, -1, 0, 0},
      {"depth", FG_ARG_INT, &m->depth, "D", "blocks to build (default all; fewer needs --exits except on vgg-me)", 1, 4, 0, 0},
      {"threads", FG_ARG_INT, &m->threads, "N", "CPU threads (default: all cores)", 1, 1024, 0, 0},
      {"device", FG_ARG_STRING, &m->device, "cpu|cuda[:N]", "device to compute on (default cpu)", 0, -1, 0, 0},
      {"input", FG_ARG_STRING, &m->input, "CxHxW", "input shape (default 1x28x28 for cnn, else 3x32x32)", 0, -1, 0, 0},
      {"classes", FG_ARG_INT, &m->classes, "K", "number of classes (default 10)", 2, 100000, 0, 0},
  };
  int n = with_shape ? 8 : 6;
  for (int i = 0; i < n; i++) out[i] = common[i];
  return n;
}

fg_status fg_cli_synthetic_batch(fg_trainer *t, uint64_t seed, int classes) {
  const fg_node *in = fg_graph_node(fg_trainer_graph(t), 0);
  int64_t n = fg_trainer_plan(t)->opt.batch;
  fg_ledger ledger;
  fg_ledger_init(&ledger, "synthetic batch", 0);
  fg_host_batch hb;
  FG_TRY(fg_host_batch_alloc(&hb, &ledger, n, in->shape[0], in->shape[1], in->shape[2]));
  fg_tensor x = fg_host_batch_images(&hb, n), y = fg_host_batch_labels(&hb, n);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < fg_tensor_numel(&x); i++) fg_f32(&x)[i] = (float)fg_rng_normal(&r);
  for (int64_t i = 0; i < n; i++) fg_i32(&y)[i] = (int32_t)fg_rng_below(&r, (uint64_t)classes);
  fg_status s = fg_trainer_set_batch(t, &x, &y);
  fg_host_batch_free(&hb);
  return s;
}

fg_status fg_cli_measure_step(const fg_graph *g, const fg_plan *plan, int classes, size_t *peak) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "measure", 0);
  fg_trainer *t = NULL;
  float *state = malloc((size_t)fg_graph_state_numel(g) * sizeof *state);
  fg_status st = state ? fg_trainer_create_planned(g, plan, &ledger, &t) : FG_FAIL(FG_ERR_OOM, "out of memory");
  if (st == FG_OK) {
    fg_graph_init_state(g, 1, state);
    st = fg_trainer_set_state(t, state);
  }
  if (st == FG_OK) st = fg_cli_synthetic_batch(t, 1, classes);
  if (st == FG_OK) {
    fg_step_stats ss;
    st = fg_trainer_step(t, plan->opt.batch, &ss);
  }
  fg_trainer_destroy(t);
  free(state);
  *peak = ledger.peak;
  return st;
}
