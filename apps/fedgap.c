/* fedgap: the command-line entry point. Dispatches to apps/cmd_*.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "apps/cli.h"
#include "fedgap_config.h"
#include "fedgap_revision.h"

typedef struct cli_command {
  const char *name;
  const char *summary;
  int (*run)(int argc, char **argv);
} cli_command;

static const cli_command commands[] = {
    {"run", "run a federated experiment described by a YAML file", fg_cmd_run},
    {"serve", "serve a federation of real devices over an MQTT broker", fg_cmd_serve},
    {"device", "take part in such a federation as one device", fg_cmd_device},
    {"train", "train a built-in model centrally on a dataset", fg_cmd_train},
    {"eval", "evaluate saved weights on a dataset's test split", fg_cmd_eval},
    {"memplan", "print the exact memory plan of one training step", fg_cmd_memplan},
    {"bench", "measure training throughput and peak memory", fg_cmd_bench},
    {"devices", "list the compute backends and their state", fg_cmd_devices},
    {"plot", "draw accuracy and memory plots of run folders", fg_cmd_plot},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

static void usage(FILE *out) {
  fprintf(out,
          "usage: fedgap COMMAND [options]\n\n"
          "fedgap trains models on clients whose memory is too small for the whole model.\n\n"
          "commands:\n");
  for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(out, "\n'fedgap COMMAND --help' shows a command's options; 'fedgap --version' the build.\n");
}

int main(int argc, char **argv) {
  /* A write past the file-size limit (RLIMIT_FSIZE) fails with EFBIG, reported as one line like a
   * full disk, instead of the default SIGXFSZ killing the process mid-run. */
  signal(SIGXFSZ, SIG_IGN);
  if (argc < 2) {
    usage(stderr);
    return FG_EXIT_USAGE;
  }
  const char *name = argv[1];
  if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
    usage(stdout);
    return FG_EXIT_OK;
  }
  if (strcmp(name, "--version") == 0) {
    printf("fedgap %s (%s)\n", FEDGAP_VERSION, FEDGAP_GIT_REV);
    return fg_cmd_devices(0, NULL);
  }
  for (int i = 0; i < N_COMMANDS; i++)
    if (strcmp(name, commands[i].name) == 0) return commands[i].run(argc - 2, argv + 2);
  fprintf(stderr, "fedgap: unknown command '%s' (see 'fedgap --help')\n", name);
  return FG_EXIT_USAGE;
}
