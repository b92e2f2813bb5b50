/* Option parsing for the CLI. */
#include "apps/args.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/status.h"

int fg_usage_error(const fg_command *cmd, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "fedgap %s: ", cmd->name);
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see 'fedgap %s --help')\n", cmd->name);
  va_end(ap);
  return FG_EXIT_USAGE;
}

int fg_runtime_error(const char *cmd_name) {
  fprintf(stderr, "fedgap %s: %s: %s\n", cmd_name, fg_status_name(fg_last_status()), fg_last_error());
  return FG_EXIT_FAILURE;
}

/* Option i of the command: its own options first, then the shared ones. */
static fg_arg *arg_at(const fg_command *cmd, int i) {
  return i < cmd->n_args ? &cmd->args[i] : &cmd->shared[i - cmd->n_args];
}

static int arg_count(const fg_command *cmd) { return cmd->n_args + (cmd->shared ? cmd->n_shared : 0); }

static fg_arg *find_arg(fg_command *cmd, const char *name, size_t len) {
  for (int i = 0; i < arg_count(cmd); i++) {
    fg_arg *a = arg_at(cmd, i);
    if (strlen(a->name) == len && strncmp(a->name, name, len) == 0) return a;
  }
  return NULL;
}

static int in_range(const fg_arg *a, double v) { return a->min > a->max || (v >= a->min && v <= a->max); }

static int range_error(fg_command *cmd, const fg_arg *a, const char *value) {
  return fg_usage_error(cmd, "--%s %s is out of range (expected %g..%g)", a->name, value, a->min, a->max);
}

static int set_value(fg_command *cmd, fg_arg *a, const char *value) {
  char *end = NULL;
  errno = 0;
  switch (a->type) {
    case FG_ARG_INT: {
      long long v = strtoll(value, &end, 10);
      if (errno || end == value || *end)
        return fg_usage_error(cmd, "--%s expects an integer, got '%s'", a->name, value);
      if (!in_range(a, (double)v)) return range_error(cmd, a, value);
      *(int *)a->dest = (int)v;
      break;
    }
    case FG_ARG_U64: {
      unsigned long long v = strtoull(value, &end, 10);
      if (errno || end == value || *end || value[0] == '-')
        return fg_usage_error(cmd, "--%s expects a non-negative integer, got '%s'", a->name, value);
      if (!in_range(a, (double)v)) return range_error(cmd, a, value);
      *(uint64_t *)a->dest = (uint64_t)v;
      break;
    }
    case FG_ARG_DOUBLE: {
      double v = strtod(value, &end);
      if (errno || end == value || *end || !isfinite(v))
        return fg_usage_error(cmd, "--%s expects a number, got '%s'", a->name, value);
      if (!in_range(a, v)) return range_error(cmd, a, value);
      *(double *)a->dest = v;
      break;
    }
    case FG_ARG_STRING:
      if (!*value) return fg_usage_error(cmd, "--%s expects a value", a->name);
      *(const char **)a->dest = value;
      break;
    case FG_ARG_FLAG: *(int *)a->dest = 1; break;
    case FG_ARG_LIST: {
      fg_arg_list *l = a->dest;
      if (l->n == FG_ARG_LIST_CAP) return fg_usage_error(cmd, "--%s given more than %d times", a->name, FG_ARG_LIST_CAP);
      l->items[l->n++] = value;
      break;
    }
  }
  a->seen = 1;
  return FG_EXIT_OK;
}

int fg_args_parse(fg_command *cmd, int argc, char **argv, int *help_shown) {
  *help_shown = 0;
  for (int i = 0; i < argc; i++) {
    const char *word = argv[i];
    if (strcmp(word, "--help") == 0 || strcmp(word, "-h") == 0) {
      fg_args_print_help(cmd, stdout);
      *help_shown = 1;
      return FG_EXIT_OK;
    }
    if (strncmp(word, "--", 2) != 0)
      return fg_usage_error(cmd, "unexpected argument '%s'", word);
    const char *name = word + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    fg_arg *a = find_arg(cmd, name, len);
    if (!a) return fg_usage_error(cmd, "unknown option '--%.*s'", (int)len, name);
    if (a->seen && a->type != FG_ARG_LIST) return fg_usage_error(cmd, "--%s given twice", a->name);
    const char *value = eq ? eq + 1 : NULL;
    if (a->type == FG_ARG_FLAG) {
      if (value) return fg_usage_error(cmd, "--%s takes no value", a->name);
      value = "";
    } else if (!value) {
      if (i + 1 >= argc) return fg_usage_error(cmd, "--%s needs a value (%s)", a->name, a->metavar);
      value = argv[++i];
    }
    int rc = set_value(cmd, a, value);
    if (rc != FG_EXIT_OK) return rc;
  }
  for (int i = 0; i < arg_count(cmd); i++)
    if (arg_at(cmd, i)->required && !arg_at(cmd, i)->seen)
      return fg_usage_error(cmd, "--%s is required", arg_at(cmd, i)->name);
  return FG_EXIT_OK;
}

void fg_args_print_help(const fg_command *cmd, FILE *out) {
  fprintf(out, "usage: fedgap %s [options]\n\n%s\n\noptions:\n", cmd->name, cmd->summary);
  for (int i = 0; i < arg_count(cmd); i++) {
    const fg_arg *a = arg_at(cmd, i);
    char left[64];
    snprintf(left, sizeof left, "--%s%s%s", a->name, a->type == FG_ARG_FLAG ? "" : " ",
             a->type == FG_ARG_FLAG ? "" : a->metavar);
    fprintf(out, "  %-26s %s%s\n", left, a->help, a->required ? " (required)" : "");
  }
  fprintf(out, "  %-26s %s\n", "--help", "show this help");
}
