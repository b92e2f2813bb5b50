/* Commands that land with the data layer. */
#include "apps/cli.h"
#include <stdio.h>
int fg_cmd_train(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fedgap train: not built yet\n"); return 1; }
int fg_cmd_eval(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fedgap eval: not built yet\n"); return 1; }
int fg_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fedgap bench: not built yet\n"); return 1; }
