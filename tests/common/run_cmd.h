/* Running the fedgap binary from tests: exit status, stdout and stderr captured. */
#ifndef FG_TEST_RUN_CMD_H
#define FG_TEST_RUN_CMD_H

typedef struct fgt_run {
  int status;   /* exit status, or -1 if it did not exit normally */
  char *out;    /* stdout, NUL-terminated (malloc'd) */
  char *err;    /* stderr */
  int signal;   /* the signal that ended it, 0 when it exited */
} fgt_run;

/* Runs $FEDGAP_BINARY with the NULL-terminated argv (argv[0] is ignored). */
fgt_run fgt_run_fedgap(const char *const *argv);

/* What else the child runs with. */
typedef struct fgt_run_opts {
  const char *kill_at;  /* FEDGAP_TEST_KILL_AT (engine/base/killpoint.h), or NULL */
  long fsize_limit;     /* RLIMIT_FSIZE in bytes, or 0 for none */
} fgt_run_opts;
fgt_run fgt_run_fedgap_opts(const char *const *argv, const fgt_run_opts *o);
/* Runs the program argv[0] (searched in PATH) with the NULL-terminated argv, captured the same way. */
fgt_run fgt_run_program(const char *const *argv);
/* Starts argv[0] (searched in PATH) in the background, stdout and stderr into the files given;
 * returns its pid. */
int fgt_spawn(const char *const *argv, const char *out_path, const char *err_path);
int fgt_spawn_opts(const char *const *argv, const char *out_path, const char *err_path, const fgt_run_opts *o);
/* Waits at most `seconds` for process pid (from fgt_spawn): its exit status, -1 when a signal
 * ended it, -2 when it was still running (it is then killed and reaped). */
int fgt_wait(int pid, double seconds);
void fgt_run_free(fgt_run *r);
/* The last non-empty line of `text` (static buffer). */
const char *fgt_last_line(const char *text);
/* Number of lines in `text`. */
int fgt_line_count(const char *text);

#endif
