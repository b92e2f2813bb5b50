/* Jobs that travel: one participant's local training as a plain description, and the wire formats
 * of what the processes of a spread run exchange (fl/spread.h): the round header rank 0
 * broadcasts (the round's jobs), a trained participant's result, a worker's time at the end of a
 * method, and a process's identity at the start-up check.
 *
 * A job names the method (its index in the configuration), the round, the participant's slot (its
 * place in the round: rank 0 absorbs results in slot order), the client, the level it trains, the
 * experiment's seed (every random stream of local training is keyed by seed, round and client),
 * the budget it trains under and the rank that trains it. The process that trains it rebuilds the
 * level's model, trainer options and loss from the configuration, which every process of a run
 * holds identically (fl/spread.h checks it at start-up), and extracts the sub-model from the
 * global state rank 0 broadcast, and the linear part of its proximal term (when the method has
 * one: the per-client state it needs to train, e.g. FedDyn's) from the floats broadcast after it.
 * Whatever state a client's training changes comes back with its trained sub-model. A result carries the client record and, after it, the trained
 * sub-model's floats.
 *
 * Encoding: every field explicitly, in a fixed order: integers little-endian, fixed width; doubles
 * as the 8 little-endian bytes of their IEEE-754 binary64 pattern (never as text); strings as
 * NUL-padded fixed-size fields; each message starts with a 4-byte magic. Decoding checks the
 * magic, the sizes and every enumerated value, so a mismatched peer is an error naming the field,
 * never a misread. Owns nothing. */
#ifndef FG_FL_JOB_H
#define FG_FL_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "fl/metrics.h"

typedef struct fg_job {
  int method;     /* index into the configuration's methods */
  int round;      /* 0-based */
  int slot;       /* the participant's place in the round */
  int client;
  int level;      /* the method's level it trains; -1: its budget fits none (nothing to train) */
  int owner;      /* the rank that trains it */
  uint64_t seed;  /* the experiment's seed */
  uint64_t cap;   /* the budget in bytes it trains under; 0: none */
} fg_job;

typedef enum fg_wire_kind {
  FG_WIRE_ROUND = 1,  /* a round of `method`: its jobs follow, then rank 0 broadcasts the global state */
  FG_WIRE_METHOD_END, /* `method` is over: workers report their time (fg_worker_time) */
  FG_WIRE_RUN_END,    /* the run is over; `status` is how it ended */
} fg_wire_kind;

typedef struct fg_wire_header {
  fg_wire_kind kind;
  int method, round;
  fg_status status;    /* FG_WIRE_RUN_END: FG_OK or the status rank 0 stopped with */
  int64_t state_numel; /* FG_WIRE_ROUND: floats of the global state broadcast after the header */
  int n;               /* FG_WIRE_ROUND: jobs (the round's participants, in slot order) */
  int64_t prox_numel;  /* FG_WIRE_ROUND: floats broadcast after the global state: the linear parts of
                          the trainable participants' proximal terms (methods whose plan has
                          prox_mu > 0, e.g. DepthFL's FedDyn), one after another in slot order,
                          each [state numel of its level's model]; 0: none */
} fg_wire_header;

/* Bytes of a header carrying n jobs. */
size_t fg_wire_header_bytes(int n);
/* Encodes h and, for a round, jobs[h->n] into buf [cap]; *len := the bytes written. FG_ERR_INVALID
 * when cap is too small or a value is out of range. */
fg_status fg_wire_header_encode(const fg_wire_header *h, const fg_job *jobs, unsigned char *buf, size_t cap,
                                size_t *len);
/* Decodes buf [len] into h and jobs [max_jobs]. FG_ERR_FORMAT naming the field when the bytes are
 * not such a header (magic, size, kind, counts). */
fg_status fg_wire_header_decode(const unsigned char *buf, size_t len, fg_wire_header *h, fg_job *jobs,
                                int max_jobs);

/* What comes back from a job: the round and slot it answers, how its training ended (FG_OK, or
 * the error that stops the run, with its message; a worker that failed answers its later jobs of
 * the round as skipped), the client record, and how many floats of trained state follow. */
typedef struct fg_result {
  int round, slot;
  fg_status status;
  int skipped;
  char error[256];
  fg_client_record rec;
  int64_t numel;
} fg_result;

enum { FG_RESULT_BYTES = 624 };
fg_status fg_result_encode(const fg_result *r, unsigned char *buf, size_t cap, size_t *len);
fg_status fg_result_decode(const unsigned char *buf, size_t len, fg_result *r);

/* A worker's time during one method, reported when it ends. */
typedef struct fg_worker_time {
  double train;   /* extracting and training its jobs */
  double send;    /* handing results over: waiting for rank 0 to take them in slot order */
  double idle;    /* waiting for the next round's header and global state */
  int64_t jobs;   /* jobs trained */
} fg_worker_time;

enum { FG_WORKER_TIME_BYTES = 36 };
void fg_worker_time_encode(const fg_worker_time *t, unsigned char buf[FG_WORKER_TIME_BYTES]);
fg_status fg_worker_time_decode(const unsigned char buf[FG_WORKER_TIME_BYTES], fg_worker_time *t);

/* A process's identity at the start-up check (fl/spread.h fg_spread_agree), as it travels. */
typedef struct fg_identity_record {
  int phase;
  fg_status status;
  char error[256];
  uint64_t config_hash, partition_hash, local_test_hash;
  char revision[64], kernels[64], host[64];
  int diff_line;        /* the first line of its configuration that differs from rank 0's (1-based); 0: none */
  char diff_mine[120];  /* that line, and rank 0's */
  char diff_root[120];
} fg_identity_record;

enum { FG_IDENTITY_BYTES = 728 };
fg_status fg_identity_encode(const fg_identity_record *r, unsigned char buf[FG_IDENTITY_BYTES]);
fg_status fg_identity_decode(const unsigned char buf[FG_IDENTITY_BYTES], fg_identity_record *r);

#endif
