/* placeholder until bench lands */
#include "apps/cli.h"
#include <stdio.h>
int fg_cmd_bench(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "fedgap bench: not built yet\n"); return 1; }
