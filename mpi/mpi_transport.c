/* Spread runs over MPI: collectives and point-to-point messages, polled with a watchdog. */
#include "mpi/mpi_transport.h"

#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { TAG_BYTES = 1, TAG_FLOATS = 2, NOTE_CAP = 640 };

typedef struct mpi_ctx {
  MPI_Comm comm;
  fg_transport t;
  double watchdog;
  int broken;
} mpi_ctx;

/* ---- what rank 0 awaits, for a process stopped by a signal -------------------------------- */

/* Two buffers: note() fills the one not shown, then shows it, so the handler always reads a whole
 * line. */
static char notes[2][NOTE_CAP];
static volatile sig_atomic_t shown;

static void write_all(const char *s, size_t n) {
  while (n > 0) {
    ssize_t k = write(STDERR_FILENO, s, n);
    if (k <= 0) return;
    s += k;
    n -= (size_t)k;
  }
}

static void on_stop(int sig) {
  static const char head[] = "fedgap run: stopped by a signal (mpirun stops every process when one of them dies "
                             "or the job is interrupted) in ";
  static const char tail[] = "; fedgap run --resume continues from the last checkpoint\n";
  const char *note = notes[shown];
  write_all(head, sizeof head - 1);
  write_all(note, strnlen(note, NOTE_CAP));
  write_all(tail, sizeof tail - 1);
  signal(sig, SIG_DFL);
  raise(sig);
}

static void note(void *ctx, const char *text) {
  (void)ctx;
  int next = !shown;
  snprintf(notes[next], NOTE_CAP, "%s", text);
  shown = next;
}

/* ---- waiting ------------------------------------------------------------------------------ */

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static fg_status mpi_failed(mpi_ctx *c, int rc, const char *call) {
  char text[MPI_MAX_ERROR_STRING] = "";
  int len = 0;
  MPI_Error_string(rc, text, &len);
  c->broken = 1;
  return FG_FAIL(FG_ERR_LIBRARY, "MPI: %s failed on rank %d: %s", call, c->t.rank, text);
}

/* Waits for `req`, at most `limit` seconds (<= 0: no limit); past it the transport is broken and
 * the message names `from` and `what`. */
static fg_status wait_for(mpi_ctx *c, MPI_Request *req, MPI_Status *status, double limit, const char *call, int from,
                          const char *what) {
  double t0 = seconds_now();
  long nap = 2000; /* ns, doubling up to 1 ms */
  for (;;) {
    int done = 0;
    int rc = MPI_Test(req, &done, status ? status : MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_failed(c, rc, call);
    if (done) return FG_OK;
    if (limit > 0 && seconds_now() - t0 > limit) {
      c->broken = 1;
      if (from >= 0)
        return FG_FAIL(FG_ERR_IO, "%s: rank %d sent nothing within %g s (the watchdog, fedgap run --watchdog): it "
                       "is late or dead; the run stops (fedgap run --resume continues from the last checkpoint)",
                       what, from, limit);
      return FG_FAIL(FG_ERR_IO, "%s did not complete within %g s (the watchdog, fedgap run --watchdog): a worker is "
                     "late or dead; the run stops (fedgap run --resume continues from the last checkpoint)", what,
                     limit);
    }
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    if (nap < 1000000) nap *= 2;
  }
}

/* Rank 0 waits under the watchdog; workers wait as long as rank 0 takes. */
static double limit_of(const mpi_ctx *c) { return c->t.rank == 0 ? c->watchdog : 0; }

static fg_status usable(const mpi_ctx *c) {
  if (c->broken) return FG_FAIL(FG_ERR_IO, "MPI: the transport stopped after an earlier failure");
  return FG_OK;
}

/* ---- operations --------------------------------------------------------------------------- */

static fg_status broadcast(void *ctx, void *bytes, size_t *len, size_t cap) {
  mpi_ctx *c = ctx;
  FG_TRY(usable(c));
  uint64_t n = c->t.rank == 0 ? (uint64_t)*len : 0;
  if (n > INT_MAX) return FG_FAIL(FG_ERR_INVALID, "MPI: a broadcast of %llu bytes is too large", (unsigned long long)n);
  MPI_Request req;
  int rc = MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Ibcast");
  FG_TRY(wait_for(c, &req, NULL, limit_of(c), "MPI_Ibcast", -1, "a broadcast"));
  if (n > cap) {
    c->broken = 1;
    return FG_FAIL(FG_ERR_FORMAT, "MPI: rank 0 broadcast %llu bytes, more than the %zu expected",
                   (unsigned long long)n, cap);
  }
  *len = (size_t)n;
  if (n == 0) return FG_OK;
  rc = MPI_Ibcast(bytes, (int)n, MPI_BYTE, 0, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Ibcast");
  return wait_for(c, &req, NULL, limit_of(c), "MPI_Ibcast", -1, "a broadcast");
}

static fg_status broadcast_floats(void *ctx, float *v, int64_t n) {
  mpi_ctx *c = ctx;
  FG_TRY(usable(c));
  if (n < 0 || n > INT_MAX) return FG_FAIL(FG_ERR_INVALID, "MPI: a broadcast of %lld floats", (long long)n);
  MPI_Request req;
  int rc = MPI_Ibcast(v, (int)n, MPI_FLOAT, 0, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Ibcast");
  return wait_for(c, &req, NULL, limit_of(c), "MPI_Ibcast", -1, "the broadcast of the global state");
}

static fg_status gather(void *ctx, const void *bytes, size_t len, void *all) {
  mpi_ctx *c = ctx;
  FG_TRY(usable(c));
  if (len > INT_MAX) return FG_FAIL(FG_ERR_INVALID, "MPI: a gather of %zu bytes", len);
  MPI_Request req;
  int rc = MPI_Igather(bytes, (int)len, MPI_BYTE, c->t.rank == 0 ? all : NULL, (int)len, MPI_BYTE, 0, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Igather");
  return wait_for(c, &req, NULL, limit_of(c), "MPI_Igather", -1, "a gather");
}

static fg_status send_message(void *ctx, const void *bytes, size_t len, const float *v, int64_t n) {
  mpi_ctx *c = ctx;
  FG_TRY(usable(c));
  if (len > INT_MAX || n < 0 || n > INT_MAX)
    return FG_FAIL(FG_ERR_INVALID, "MPI: a message of %zu bytes and %lld floats", len, (long long)n);
  MPI_Request req[2];
  int rc = MPI_Isend(bytes, (int)len, MPI_BYTE, 0, TAG_BYTES, c->comm, &req[0]);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Isend");
  rc = MPI_Isend(v, (int)n, MPI_FLOAT, 0, TAG_FLOATS, c->comm, &req[1]);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Isend");
  FG_TRY(wait_for(c, &req[0], NULL, 0, "MPI_Isend", 0, "a result"));
  return wait_for(c, &req[1], NULL, 0, "MPI_Isend", 0, "a result");
}

static fg_status receive_message(void *ctx, int from, void *bytes, size_t len, float *v, int64_t cap, int64_t *n,
                         const char *what) {
  mpi_ctx *c = ctx;
  FG_TRY(usable(c));
  if (len > INT_MAX || cap < 0 || cap > INT_MAX)
    return FG_FAIL(FG_ERR_INVALID, "MPI: a message of %zu bytes and %lld floats", len, (long long)cap);
  MPI_Request req;
  MPI_Status status;
  int rc = MPI_Irecv(bytes, (int)len, MPI_BYTE, from, TAG_BYTES, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Irecv");
  FG_TRY(wait_for(c, &req, &status, c->watchdog, "MPI_Irecv", from, what));
  int count = 0;
  MPI_Get_count(&status, MPI_BYTE, &count);
  if ((size_t)count != len) {
    c->broken = 1;
    return FG_FAIL(FG_ERR_FORMAT, "%s: rank %d sent %d bytes, expected %zu", what, from, count, len);
  }
  rc = MPI_Irecv(v, (int)cap, MPI_FLOAT, from, TAG_FLOATS, c->comm, &req);
  if (rc != MPI_SUCCESS) return mpi_failed(c, rc, "MPI_Irecv");
  FG_TRY(wait_for(c, &req, &status, c->watchdog, "MPI_Irecv", from, what));
  MPI_Get_count(&status, MPI_FLOAT, &count);
  *n = count;
  return FG_OK;
}

/* ---- opening and closing ------------------------------------------------------------------ */

fg_status fg_mpi_open(double watchdog, fg_transport **out) {
  *out = NULL;
  int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  if (rc != MPI_SUCCESS) return FG_FAIL(FG_ERR_LIBRARY, "MPI: MPI_Init_thread failed (code %d)", rc);
  mpi_ctx *c = calloc(1, sizeof *c);
  if (!c) return FG_FAIL(FG_ERR_OOM, "MPI: out of memory");
  c->watchdog = watchdog;
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(c->comm, &c->t.rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(c->comm, &c->t.size);
  MPI_Comm node = MPI_COMM_NULL;
  if (rc == MPI_SUCCESS) rc = MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->t.rank, MPI_INFO_NULL, &node);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(node, &c->t.local_rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &c->t.local_size);
  if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
  if (rc != MPI_SUCCESS) {
    fg_status s = mpi_failed(c, rc, "setting up the communicator");
    free(c);
    return s;
  }
  c->t.ctx = c;
  c->t.broadcast = broadcast;
  c->t.broadcast_floats = broadcast_floats;
  c->t.gather = gather;
  c->t.send = send_message;
  c->t.receive = receive_message;
  c->t.note = note;
  if (c->t.rank == 0) {
    note(c, "its start, before the first round");
    signal(SIGTERM, on_stop);
    signal(SIGINT, on_stop);
  }
  *out = &c->t;
  return FG_OK;
}

int fg_mpi_close(fg_transport *t, int exit_status, int out_of_step) {
  if (!t) return exit_status;
  mpi_ctx *c = t->ctx;
  if (c->broken || out_of_step) {
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(c->comm, exit_status ? exit_status : 1);
  }
  if (c->t.rank == 0) {
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
  }
  MPI_Comm_free(&c->comm);
  MPI_Finalize();
  free(c);
  return exit_status;
}
