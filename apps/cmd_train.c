/* fedgap train: centralised training of a built-in model on a catalogued dataset.
 * fedgap eval: test accuracy of saved weights.
 * A line per epoch on stdout; the last line is test_accuracy=0.xxxx. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "apps/progress.h"
#include "engine/data/catalog.h"
#include "engine/nn/fit.h"
#include "engine/nn/weights.h"
#include "fedgap_config.h"
#include "fedgap_revision.h"

/* Datasets, model and trainer of one command, released together. */
typedef struct session {
  fg_ledger data_ledger, train_ledger;
  fg_dataset train, test;
  fg_loader loader;
  fg_graph *graph;
  fg_trainer *trainer;
  float *state;
  const fg_dataset_info *info;
} session;

static void session_free(session *s) {
  fg_trainer_destroy(s->trainer);
  fg_graph_free(s->graph);
  free(s->state);
  fg_loader_free(&s->loader);
  fg_dataset_free(&s->train);
  fg_dataset_free(&s->test);
}

/* Loads the splits, builds the model and its trainer. */
static int session_open(session *s, const fg_command *cmd, const char *dataset, const char *data_dir, int need_train,
                        const fg_cli_model *m, const fg_trainer_options *opt) {
  memset(s, 0, sizeof *s);
  fg_ledger_init(&s->data_ledger, "datasets", 0);
  fg_ledger_init(&s->train_ledger, "training", 0);
  s->info = fg_dataset_info_find(dataset);
  if (!s->info) return fg_usage_error(cmd, "--dataset: %s", fg_last_error());
  fg_model_spec spec;
  int rc = fg_cli_model_spec(cmd, m, s->info->c, s->info->h, s->info->w, s->info->classes, &spec);
  if (rc != FG_EXIT_OK) return rc;
  if ((need_train && fg_dataset_load_named(dataset, data_dir, 1, &s->data_ledger, &s->train) != FG_OK) ||
      fg_dataset_load_named(dataset, data_dir, 0, &s->data_ledger, &s->test) != FG_OK ||
      fg_model_build(&spec, &s->graph) != FG_OK)
    return fg_runtime_error(cmd->name);
  if (fg_loader_alloc(&s->loader, &s->data_ledger, need_train ? s->train.n : 0, opt->batch, s->test.c, s->test.h,
                      s->test.w) != FG_OK)
    return fg_runtime_error(cmd->name);
  s->state = malloc((size_t)fg_graph_state_numel(s->graph) * sizeof(float));
  if (!s->state) {
    FG_FAIL(FG_ERR_OOM, "out of memory for the model state");
    return fg_runtime_error(cmd->name);
  }
  if (fg_trainer_create(s->graph, opt, &s->train_ledger, &s->trainer) != FG_OK)
    return fg_runtime_error(cmd->name);
  return FG_EXIT_OK;
}

static double accuracy(const fg_epoch_stats *st) {
  int k = st->n_outputs > 0 ? st->n_outputs - 1 : 0;
  return st->samples ? (double)st->correct[k] / (double)st->samples : 0.0;
}

typedef struct progress_ctx {
  fg_progress bar;
  char label[32];
} progress_ctx;

static void on_step(void *ctx, int64_t step, int64_t steps, const fg_epoch_stats *so_far) {
  progress_ctx *p = ctx;
  char text[96];
  double elapsed = fg_now() - p->bar.start;
  snprintf(text, sizeof text, "loss %.4f  acc %.4f  %.0f samples/s", so_far->loss_sum / (double)so_far->samples,
           accuracy(so_far), (double)so_far->samples / (elapsed > 0 ? elapsed : 1));
  fg_progress_update(&p->bar, p->label, step, steps, text);
}

static int save_weights(session *s, const char *path, const fg_model_spec *spec) {
  char width[32], input[64], classes[16];
  snprintf(width, sizeof width, "%g", fg_model_width(spec));
  snprintf(input, sizeof input, "%lldx%lldx%lld", (long long)spec->in_c, (long long)spec->in_h, (long long)spec->in_w);
  snprintf(classes, sizeof classes, "%d", spec->classes);
  const char *keys[] = {"format", "arch", "width", "input", "classes", "fedgap"};
  const char *values[] = {"pt", spec->arch, width, input, classes, FEDGAP_VERSION " (" FEDGAP_GIT_REV ")"};
  if (fg_trainer_get_state(s->trainer, s->state) != FG_OK ||
      fg_weights_save(s->graph, s->state, path, keys, values, 6) != FG_OK)
    return fg_runtime_error("train");
  return FG_EXIT_OK;
}

int fg_cmd_train(int argc, char **argv) {
  fg_cli_model m = fg_cli_model_defaults();
  const char *dataset = "fashion-mnist", *data_dir = NULL, *save = NULL, *mode_name = "store";
  const char *optimizer = "sgd";
  int epochs = 5, batch = 64;
  double lr = 0.02, momentum = 0.9, wd = 5e-4;
  uint64_t seed = 1;
  fg_arg args[] = {
      {"dataset", FG_ARG_STRING, &dataset, "NAME", "fashion-mnist, cifar10, cifar100, svhn or stl10 (default fashion-mnist)", 0, -1, 0, 0},
      {"data-dir", FG_ARG_STRING, &data_dir, "DIR", "directory of the dataset files (default: the dataset's)", 0, -1, 0, 0},
      {"epochs", FG_ARG_INT, &epochs, "E", "epochs (default 5)", 1, 100000, 0, 0},
      {"batch", FG_ARG_INT, &batch, "B", "batch size (default 64)", 1, 1 << 20, 0, 0},
      {"lr", FG_ARG_DOUBLE, &lr, "LR", "learning rate (default 0.02)", 0, 100, 0, 0},
      {"momentum", FG_ARG_DOUBLE, &momentum, "M", "SGD momentum (default 0.9)", 0, 1, 0, 0},
      {"weight-decay", FG_ARG_DOUBLE, &wd, "WD", "coupled L2 weight decay (default 5e-4)", 0, 10, 0, 0},
      {"optimizer", FG_ARG_STRING, &optimizer, "sgd|adam", "optimizer (default sgd)", 0, -1, 0, 0},
      {"seed", FG_ARG_U64, &seed, "S", "seed of init, shuffles, augmentation, dropout (default 1)", 0, -1, 0, 0},
      {"mode", FG_ARG_STRING, &mode_name, "store|checkpoint", "activation policy (default store)", 0, -1, 0, 0},
      {"save", FG_ARG_STRING, &save, "FILE", "write the trained weights (safetensors)", 0, -1, 0, 0},
  };
  fg_arg model_args[FG_CLI_MODEL_ARGS];
  int n_model = fg_cli_model_args(&m, 0, model_args);
  fg_command cmd = {"train", "Train a built-in model on a dataset and report its test accuracy.", args,
                    (int)(sizeof args / sizeof args[0]), model_args, n_model};
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  fg_trainer_options opt;
  rc = fg_cli_trainer_options(&cmd, &m, batch, mode_name, &opt);
  if (rc == FG_EXIT_OK) rc = fg_cli_optimizer(&cmd, optimizer, lr, momentum, wd, &opt.optim);
  if (rc != FG_EXIT_OK) return rc;

  session s;
  rc = session_open(&s, &cmd, dataset, data_dir, 1, &m, &opt);
  if (rc != FG_EXIT_OK) {
    session_free(&s);
    return rc;
  }
  fg_graph_init_state(s.graph, seed, s.state);
  fg_fit_options fo;
  memset(&fo, 0, sizeof fo);
  fo.aug = s.info->train_aug;
  fo.seed = seed;
  fo.shuffle = 1;
  if (fg_normalize_preset(s.info->normalize, &fo.norm) != FG_OK || fg_trainer_set_state(s.trainer, s.state) != FG_OK) {
    session_free(&s);
    return fg_runtime_error(cmd.name);
  }
  fg_trainer_set_dropout_stream(s.trainer, seed, 0);
  const fg_plan *plan = fg_trainer_plan(s.trainer);
  char mib[32];
  printf("training %s on %s: %lld train / %lld test samples, %lld parameters, batch %d, %s, engine memory %s\n",
         m.arch, dataset, (long long)s.train.n, (long long)s.test.n, (long long)fg_graph_param_numel(s.graph), batch,
         fg_exec_mode_name(opt.mode), fg_cli_mib(plan->total, mib, sizeof mib));
  fg_dataset_view train_view = fg_dataset_view_all(&s.train), test_view = fg_dataset_view_all(&s.test);
  fg_epoch_stats test = {0};
  for (int e = 0; e < epochs; e++) {
    progress_ctx pc;
    fg_progress_init(&pc.bar);
    snprintf(pc.label, sizeof pc.label, "epoch %d/%d", e + 1, epochs);
    fg_epoch_stats st;
    fg_status status = fg_fit_epoch(s.trainer, &s.loader, &train_view, &fo, (uint64_t)e, on_step, &pc, &st);
    double seconds = fg_now() - pc.bar.start;
    fg_progress_clear(&pc.bar);
    if (status != FG_OK || fg_evaluate(s.trainer, &s.loader, &test_view, &fo.norm, &test) != FG_OK) {
      session_free(&s);
      return fg_runtime_error(cmd.name);
    }
    printf("epoch %d/%d  loss %.4f  train_acc %.4f  test_acc %.4f  %.1f s  %.0f samples/s\n", e + 1, epochs,
           st.loss_sum / (double)st.samples, accuracy(&st), accuracy(&test), seconds, (double)st.samples / seconds);
    fflush(stdout);
  }
  if (save) {
    fg_model_spec spec;
    fg_cli_model_spec(&cmd, &m, s.info->c, s.info->h, s.info->w, s.info->classes, &spec);
    rc = save_weights(&s, save, &spec);
    if (rc != FG_EXIT_OK) {
      session_free(&s);
      return rc;
    }
    printf("saved %s\n", save);
  }
  printf("engine_peak_bytes=%zu peak_rss_bytes=%zu\n", s.train_ledger.peak, fg_process_peak_rss());
  printf("test_accuracy=%.4f\n", accuracy(&test));
  session_free(&s);
  return FG_EXIT_OK;
}

int fg_cmd_eval(int argc, char **argv) {
  fg_cli_model m = fg_cli_model_defaults();
  const char *dataset = "fashion-mnist", *data_dir = NULL, *weights = NULL;
  int batch = 256;
  fg_arg args[] = {
      {"dataset", FG_ARG_STRING, &dataset, "NAME", "fashion-mnist, cifar10, cifar100, svhn or stl10 (default fashion-mnist)", 0, -1, 0, 0},
      {"data-dir", FG_ARG_STRING, &data_dir, "DIR", "directory of the dataset files (default: the dataset's)", 0, -1, 0, 0},
      {"weights", FG_ARG_STRING, &weights, "FILE", "safetensors file written by fedgap train --save", 0, -1, 1, 0},
      {"batch", FG_ARG_INT, &batch, "B", "evaluation batch size (default 256)", 1, 1 << 20, 0, 0},
  };
  fg_arg model_args[FG_CLI_MODEL_ARGS];
  int n_model = fg_cli_model_args(&m, 0, model_args);
  fg_command cmd = {"eval", "Evaluate saved weights on a dataset's test split.", args,
                    (int)(sizeof args / sizeof args[0]), model_args, n_model};
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  fg_trainer_options opt;
  rc = fg_cli_trainer_options(&cmd, &m, batch, "store", &opt);
  if (rc != FG_EXIT_OK) return rc;
  opt.mode = FG_EXEC_INFERENCE;
  session s;
  rc = session_open(&s, &cmd, dataset, data_dir, 0, &m, &opt);
  fg_normalize norm;
  fg_epoch_stats test;
  if (rc == FG_EXIT_OK) {
    fg_dataset_view view = fg_dataset_view_all(&s.test);
    if (fg_weights_load(s.graph, weights, s.state) != FG_OK || fg_trainer_set_state(s.trainer, s.state) != FG_OK ||
        fg_normalize_preset(s.info->normalize, &norm) != FG_OK || fg_evaluate(s.trainer, &s.loader, &view, &norm, &test) != FG_OK)
      rc = fg_runtime_error(cmd.name);
  }
  if (rc == FG_EXIT_OK) {
    printf("evaluated %s on %lld %s test samples\n", weights, (long long)test.samples, dataset);
    printf("test_accuracy=%.4f\n", accuracy(&test));
  }
  session_free(&s);
  return rc;
}
