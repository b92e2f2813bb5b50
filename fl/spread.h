/* Runs spread over processes (`mpirun -np P fedgap run ...`): the transport through which the FL
 * server hands a round's jobs (fl/job.h) to other processes and takes their results back, and the
 * start-up check that every process runs the same experiment the same way.
 *
 * fl/ never calls MPI: a transport is a table of functions over an opaque context, implemented
 * over Open MPI in mpi/ and handed in by the command line; a run without one (or with one process)
 * is the single-process run, unchanged. Rank 0 is the server (fl/server.h): it keeps the global
 * state, the plans, schedules and the method's server state, the aggregator, evaluation, metrics
 * and checkpoints; the other ranks are workers, stateless between rounds, that train the jobs
 * assigned to them and send each result back. Rank 0 takes results strictly in slot order and
 * absorbs them with the single-process code, so P processes compute bit-identical results.
 *
 * Every transport operation that waits on another process is bounded on rank 0 by the watchdog
 * (the transport's own setting): a worker that is late or dead makes it fail with one message
 * naming the rank and what was awaited, after which the transport is broken (the caller ends the
 * run; see mpi/mpi_transport.h). Owns nothing. */
#ifndef FG_FL_SPREAD_H
#define FG_FL_SPREAD_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef struct fg_transport {
  void *ctx;
  int rank, size;             /* this process and how many there are; rank 0 is the server */
  int local_rank, local_size; /* among the processes on this node */
  /* Every process, in the same order: rank 0's bytes [*len <= cap] into every other's, which get
   * *len. */
  fg_status (*broadcast)(void *ctx, void *bytes, size_t *len, size_t cap);
  /* Every process: rank 0's floats [n] into every other's v [n]. */
  fg_status (*broadcast_floats)(void *ctx, float *v, int64_t n);
  /* Every process: its bytes [len] (the same len everywhere) into rank 0's all [size x len], in
   * rank order; `all` is ignored elsewhere. */
  fg_status (*gather)(void *ctx, const void *bytes, size_t len, void *all);
  /* A worker: one message to rank 0, bytes [len] then floats [n] (n >= 0). Returns when rank 0
   * has taken it (results go in slot order: this is where a worker waits for its turn). */
  fg_status (*send)(void *ctx, const void *bytes, size_t len, const float *v, int64_t n);
  /* Rank 0: the next message of rank `from`: exactly len bytes, then at most cap floats (*n := how
   * many). `what` ("round 2, slot 3 (client 17)") names what is awaited in the watchdog's message. */
  fg_status (*receive)(void *ctx, int from, void *bytes, size_t len, float *v, int64_t cap, int64_t *n,
                       const char *what);
  /* Rank 0: a line saying what the run is waiting on (which rank trains which slot), printed if
   * the process is stopped by a signal (mpirun stops every process when one dies). */
  void (*note)(void *ctx, const char *text);
} fg_transport;

/* A transport that spreads work: not NULL and more than one process. */
int fg_spread_active(const fg_transport *t);

/* What a process checks against rank 0 before it trains anything. Phase 1 (before the data are
 * loaded): the resolved configuration, the build's revision, the BLAS core type and the CPU
 * kernels (each changes results); phase 2 (once the world is open): the partition. `status` is
 * FG_OK, or how this process failed to get there (its message in `error`): a failing process is
 * reported like a difference. */
typedef struct fg_identity {
  int phase;                  /* 1 or 2 */
  fg_status status;
  const char *error;          /* when status is not FG_OK */
  const char *config_text;    /* phase 1: fg_config_resolved_text without the revision line */
  const char *revision;       /* phase 1 */
  const char *kernels;        /* phase 1: BLAS core type and CPU kernels, e.g. "Haswell, avx2" */
  uint64_t partition_hash;    /* phase 2: the clients' training samples */
  uint64_t local_test_hash;   /* phase 2: their local test splits (0: none) */
} fg_identity;

/* Every process calls it with its identity. FG_OK on every process when all agree; otherwise every
 * process returns FG_ERR_CONFIG, or the status of a process that failed, and on rank 0 the
 * message (fg_last_error) is one line naming the first process in rank order that differs or
 * failed, and how: e.g. "rank 1 (node2) has another configuration than rank 0: line 3 'seed: 2'
 * where rank 0 has 'seed: 1'". An error of the transport itself is returned as is. */
fg_status fg_spread_agree(const fg_transport *t, const fg_identity *mine);

/* Rank 0, at the end of a spread run, whatever happened: tells the workers the run is over (how it
 * ended: `status`), so that they return from fg_run_worker (fl/server.h). */
fg_status fg_spread_end(const fg_transport *t, fg_status status);

#endif
