/* Subprocess helper for CLI tests. */
#define _POSIX_C_SOURCE 200809L
#include "common/run_cmd.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "cannot read %s", path);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  size_t got = fread(buf, 1, (size_t)n, f);
  buf[got] = '\0';
  fclose(f);
  return buf;
}

int fgt_spawn_opts(const char *const *argv, const char *out_path, const char *err_path, const fgt_run_opts *o) {
  pid_t pid = fork();
  cr_assert(pid >= 0);
  if (pid == 0) {
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fo < 0 || fe < 0) _exit(126);
    dup2(fo, STDOUT_FILENO);
    dup2(fe, STDERR_FILENO);
    if (o && o->kill_at) setenv("FEDGAP_TEST_KILL_AT", o->kill_at, 1);
    else unsetenv("FEDGAP_TEST_KILL_AT");
    if (o && o->fsize_limit > 0) {
      struct rlimit rl = {(rlim_t)o->fsize_limit, (rlim_t)o->fsize_limit};
      if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(126);
    }
    execvp(argv[0], (char *const *)argv);
    _exit(127);
  }
  return (int)pid;
}

int fgt_spawn(const char *const *argv, const char *out_path, const char *err_path) {
  return fgt_spawn_opts(argv, out_path, err_path, NULL);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fgt_wait(int pid, double seconds) {
  struct timespec nap = {0, 20 * 1000 * 1000};
  for (double t0 = now_seconds(); now_seconds() - t0 < seconds;) {
    int st = 0;
    pid_t got = waitpid((pid_t)pid, &st, WNOHANG);
    cr_assert(got >= 0);
    if (got == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    nanosleep(&nap, NULL);
  }
  kill((pid_t)pid, SIGKILL);
  waitpid((pid_t)pid, NULL, 0);
  return -2;
}

static fgt_run run_program(const char *const *argv, const fgt_run_opts *o) {
  char out_path[] = "/tmp/fedgap-out-XXXXXX", err_path[] = "/tmp/fedgap-err-XXXXXX";
  int fo = mkstemp(out_path), fe = mkstemp(err_path);
  cr_assert(fo >= 0 && fe >= 0);
  close(fo);
  close(fe);
  int pid = fgt_spawn_opts(argv, out_path, err_path, o);
  int st = 0;
  waitpid((pid_t)pid, &st, 0);
  fgt_run r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, slurp(out_path), slurp(err_path),
               WIFSIGNALED(st) ? WTERMSIG(st) : 0};
  unlink(out_path);
  unlink(err_path);
  return r;
}

fgt_run fgt_run_program(const char *const *argv) { return run_program(argv, NULL); }

fgt_run fgt_run_fedgap(const char *const *argv) { return fgt_run_fedgap_opts(argv, NULL); }

fgt_run fgt_run_fedgap_opts(const char *const *argv, const fgt_run_opts *o) {
  const char *bin = getenv("FEDGAP_BINARY");
  cr_assert_not_null(bin, "FEDGAP_BINARY is not set (run the tests through ctest)");
  int n = 0;
  while (argv[n]) n++;
  const char **args = calloc((size_t)n + 1, sizeof *args);
  cr_assert_not_null(args);
  args[0] = bin;
  for (int i = 1; i < n; i++) args[i] = argv[i];
  fgt_run r = run_program(args, o);
  free(args);
  return r;
}

void fgt_run_free(fgt_run *r) {
  free(r->out);
  free(r->err);
}

const char *fgt_last_line(const char *text) {
  static char line[4096];
  line[0] = '\0';
  const char *end = text + strlen(text);
  while (end > text && (end[-1] == '\n' || end[-1] == '\r')) end--;
  const char *start = end;
  while (start > text && start[-1] != '\n') start--;
  size_t n = (size_t)(end - start) < sizeof line - 1 ? (size_t)(end - start) : sizeof line - 1;
  memcpy(line, start, n);
  line[n] = '\0';
  return line;
}

int fgt_line_count(const char *text) {
  int n = 0;
  for (const char *p = text; *p; p++) n += *p == '\n';
  return n;
}
