/* Shared pieces of the CLI commands: backend start-up, model options, byte formatting, the
 * command table. Owns nothing. */
#ifndef FG_APPS_CLI_H
#define FG_APPS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "apps/args.h"
#include "engine/nn/models.h"
#include "engine/nn/plan.h"
#include "engine/nn/trainer.h"
#include "fl/config.h"
#include "fl/remote.h"
#include "fl/spread.h"

/* --device / device: "cpu", "cuda", "cuda:N" or "cuda:local" (the GPU numbered by the launcher's
 * node-local rank of this process, 0 without a launcher) -> *out; FG_EXIT_OK or a usage error. */
int fg_cli_device(const fg_command *cmd, const char *text, fg_device *out);
/* Starts what a command computes with: the CPU backend (which also owns host memory) with
 * `threads` threads (0 = all cores) and, for a CUDA device, the CUDA backend; then checks that
 * `device` is usable. FG_EXIT_OK, or one line naming the reason (e.g. the CUDA runtime's) and
 * FG_EXIT_FAILURE. */
int fg_cli_start(const char *cmd, int threads, fg_device device);
/* fg_cli_start without the line: the status (its message in fg_last_error). */
fg_status fg_cli_start_backends(int threads, fg_device device);
/* What the CPU computes with, once the backend is started (a spread run's processes must agree):
 * "OpenBLAS core Haswell, AVX2 3x3 convolutions"; returns buf. */
const char *fg_cli_kernels(char *buf, size_t cap);
/* Registers the CUDA backend for device `index` (when compiled in), available or not. */
void fg_cli_probe_cuda(int index);

/* Spread runs (fl/spread.h). The launcher's view of this process, from its environment (Open MPI,
 * PMIx or PMI variables), readable before MPI starts: the job's size (0 when no launcher started
 * it) and this process's rank in it (0 when none). */
int fg_cli_launched_size(void);
int fg_cli_launched_rank(void);
/* When a launcher started this process: *out := the MPI transport (rank, size, node-local rank)
 * with `watchdog` seconds; a build without the MPI transport refuses a job of several processes
 * (each would run the whole experiment) and runs a job of one alone. Otherwise *out := NULL.
 * FG_EXIT_OK, or one line and FG_EXIT_FAILURE. */
int fg_cli_spread_open(const char *cmd, double watchdog, fg_transport **out);
/* Ends the transport (MPI_Finalize, or MPI_Abort for a run that broke or that this process left
 * out of step, after its line); returns exit_status. Safe on NULL. */
int fg_cli_spread_close(fg_transport *t, int exit_status, int out_of_step);
/* The threads of each of local_size processes on a node sharing the budget (0: the cores this
 * process may run on): budget / local_size, at least 1. */
int fg_cli_process_threads(int budget, int local_size);
/* "cuda:local" (FG_DEVICE_INDEX_LOCAL) as the device numbered local_rank; other devices as given. */
fg_device fg_cli_local_device(fg_device d, int local_rank);

/* Parses "CxHxW" (e.g. "3x32x32"). Returns 0 on success. */
int fg_cli_parse_shape(const char *text, int64_t *c, int64_t *h, int64_t *w);
/* --mode "store" | "checkpoint" -> *mode; FG_EXIT_OK or a usage error. */
int fg_cli_mode(const fg_command *cmd, const char *text, fg_exec_mode *mode);

/* "12.34 MiB" */
const char *fg_cli_mib(size_t bytes, char *buf, size_t cap);

/* The commands (apps/cmd_*.c); each returns an exit status. */
int fg_cmd_train(int argc, char **argv);
int fg_cmd_eval(int argc, char **argv);
int fg_cmd_memplan(int argc, char **argv);
int fg_cmd_bench(int argc, char **argv);
int fg_cmd_bench_hypernet(int argc, char **argv); /* fedgap bench hypernet */
int fg_cmd_bench_nhsic(int argc, char **argv);    /* fedgap bench nhsic */
int fg_cmd_devices(int argc, char **argv);
int fg_cmd_run(int argc, char **argv);
int fg_cmd_serve(int argc, char **argv);  /* fedgap serve: the server of devices over MQTT */
int fg_cmd_device(int argc, char **argv); /* fedgap device: one device of such a federation */
/* What `fedgap run` does in one process (run folder `out` or the default one, or `resume`'s from
 * its last checkpoint after checking its configuration; the world, every method, the lines it
 * prints), with every participant trained on the device that holds its client (fl/remote.h).
 * threads: -1 for the configuration's. */
int fg_cli_run_remote(const fg_config *cfg, const char *out, const char *resume, int threads,
                      const fg_remote *remote);
int fg_cmd_plot(int argc, char **argv);

/* Loads a full synthetic batch into the trainer: standard-normal pixels and labels uniform in
 * [0, classes), from `seed` (staged in host memory outside the trainer's ledger). */
fg_status fg_cli_synthetic_batch(fg_trainer *t, uint64_t seed, int classes);
/* One training step of g as `plan` plans it (fg_trainer_create_planned), on a synthetic batch,
 * under a fresh ledger (state initialised from seed 1): *peak := the ledger's peak (what the step
 * really charged). */
fg_status fg_cli_measure_step(const fg_graph *g, const fg_plan *plan, int classes, size_t *peak);

#endif

/* Model flags shared by train, eval, memplan and bench. */
typedef struct fg_cli_model {
  const char *arch;
  double width;
  const char *input;  /* "CxHxW" or NULL: the dataset's (or the model's default) */
  int classes;        /* 0: the dataset's (or 10) */
  int exits;
  int depth;
  int threads;        /* CPU threads, 0 = all cores */
  const char *device; /* "cpu", "cuda", "cuda:N" */
} fg_cli_model;

/* The defaults: cnn at its default width, all cores, the cpu device. */
fg_cli_model fg_cli_model_defaults(void);

enum { FG_CLI_MODEL_ARGS = 8 };
/* Fills out[] with the options --model --width --exits --depth --threads --device, plus --input
 * and --classes when `with_shape` (commands without a dataset); returns how many. The defaults are
 * m's values on entry. */
int fg_cli_model_args(fg_cli_model *m, int with_shape, fg_arg out[FG_CLI_MODEL_ARGS]);

/* Fills *spec from the flags; input and classes default to (c,h,w,k) when not given (c == 0:
 * the model's default input, 1x28x28 for cnn, else 3x32x32). Returns FG_EXIT_OK or a usage error. */
int fg_cli_model_spec(const fg_command *cmd, const fg_cli_model *m, int64_t c, int64_t h, int64_t w,
                      int k, fg_model_spec *spec);
/* The trainer options a model command shares: batch, --mode (store | checkpoint) and m's device,
 * with the backends started (fg_cli_start with m's threads); the optimizer is left to the caller
 * (kind none). FG_EXIT_OK or the exit status of the first problem. */
int fg_cli_trainer_options(const fg_command *cmd, const fg_cli_model *m, int64_t batch, const char *mode,
                           fg_trainer_options *opt);
/* What a command on a built-in model fed synthetic batches (memplan, bench train) works with. */
typedef struct fg_cli_synthetic {
  int help;                 /* --help was shown: nothing else to do */
  fg_model_spec spec;       /* the model's default input, 10 classes unless given */
  fg_trainer_options opt;   /* fg_cli_trainer_options: batch, mode, device (started) */
} fg_cli_synthetic;

/* Parses argv against cmd's own options plus the model options with --input and --classes, then
 * fills *out; *batch and *mode are the variables cmd's own options parse into. FG_EXIT_OK (with
 * out->help set when --help was shown), or the exit status of the first problem. */
int fg_cli_synthetic_command(fg_command *cmd, fg_cli_model *m, int argc, char **argv, const int *batch,
                             const char *const *mode, fg_cli_synthetic *out);
/* --optimizer "sgd" | "adam" -> *out; FG_EXIT_OK or a usage error. */
int fg_cli_optimizer(const fg_command *cmd, const char *name, double lr, double momentum, double weight_decay,
                     fg_optim_config *out);
