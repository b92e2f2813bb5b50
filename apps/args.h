/* Command-line options of the fedgap CLI: a table per command, `--name value` or
 * `--name=value`, typed and range-checked. A bad flag or value is one line on stderr and exit
 * status 2; `--help` prints the command's options. Owns nothing. */
#ifndef FG_APPS_ARGS_H
#define FG_APPS_ARGS_H

#include <stdint.h>
#include <stdio.h>

typedef enum fg_arg_type {
  FG_ARG_INT = 0,
  FG_ARG_U64,
  FG_ARG_DOUBLE,
  FG_ARG_STRING,
  FG_ARG_FLAG,
  FG_ARG_LIST, /* repeatable string option; dest is an fg_arg_list */
} fg_arg_type;

enum { FG_ARG_LIST_CAP = 64 };
typedef struct fg_arg_list {
  const char *items[FG_ARG_LIST_CAP];
  int n;
} fg_arg_list;

typedef struct fg_arg {
  const char *name;    /* without the leading "--" */
  fg_arg_type type;
  void *dest;          /* int*, uint64_t*, double*, const char**, int* (flag), fg_arg_list* */
  const char *metavar; /* "E" in "--epochs E" */
  const char *help;
  double min, max;     /* inclusive range for numbers; ignored when min > max */
  int required;
  int seen;
} fg_arg;

typedef struct fg_command {
  const char *name;     /* "train" */
  const char *summary;  /* one line */
  fg_arg *args;         /* the command's own options */
  int n_args;
  fg_arg *shared;       /* options shared with other commands (apps/cli.h), or NULL */
  int n_shared;
} fg_command;

enum { FG_EXIT_OK = 0, FG_EXIT_FAILURE = 1, FG_EXIT_USAGE = 2 };

/* Parses argv[0..argc) (the words after the command name). Returns FG_EXIT_OK, or
 * FG_EXIT_USAGE after printing one line "fedgap CMD: ..." on stderr; *help_shown is set when
 * --help was given (and the help was printed on stdout). */
int fg_args_parse(fg_command *cmd, int argc, char **argv, int *help_shown);
void fg_args_print_help(const fg_command *cmd, FILE *out);
/* Reports a usage error in the parser's format and returns FG_EXIT_USAGE. */
int fg_usage_error(const fg_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reports a runtime failure (the engine's last error) and returns FG_EXIT_FAILURE. */
int fg_runtime_error(const char *cmd_name);

#endif
