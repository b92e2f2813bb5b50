/* What travels between `fedgap serve` and `fedgap device` over MQTT: a job or a result as one
 * message, cut into chunks that each carry the SHA-256 of their bytes, and the reassembly of a
 * message from its chunks.
 *
 * A message is a safetensors buffer (engine/io/safetensors.h) holding
 *   metadata  "fedgap.kind" ("job" or "result"), "fedgap.run" (the run's name) and
 *             "fedgap.config_hash" (16 hex digits: the resolved configuration both sides hold);
 *   "job"     U8: the job (fl/job.h), encoded as a round header of that one job, whose
 *             state_numel is the floats of "state";
 *   "result"  U8 [FG_RESULT_BYTES]: results only, the result record (fl/job.h fg_result);
 *   "state"   F32 [numel]: the sub-model sent, or the trained one returned;
 *   "linear"  F32 [numel]: jobs of a method with a proximal term (DepthFL's FedDyn) only, its
 *             linear part for the client.
 * So the job's header (run, round, slot, job id, level, seeds, config hash) and the record travel
 * as explicit little-endian fields, and the tensors in the format of checkpoints.
 *
 * A chunk is a fixed header (magic "FGCK", the transfer id, index, count, total bytes, chunk size,
 * this chunk's length, SHA-256 of its bytes) and up to chunk-size bytes of the message. The
 * transfer id names the message: its kind, round and slot (fg_transfer_id). Reassembly accepts
 * chunks in any order and repeated ones (QoS 1 may deliver a chunk twice); it refuses, with
 * FG_ERR_FORMAT naming the problem, a chunk of another transfer, a bad magic, header or length,
 * a digest that does not match, a total over the receiver's cap and a repeated index with other
 * bytes.
 *
 * Topics, under fg/<run>/: status/<device> (retained: the device's status, "offline" as its last
 * will), job/<device> (the server's job chunks), result/<device> (the device's result chunks) and
 * end (the run is over: "done" or "stopped"). A device's status is one line of text: "online" and its
 * capabilities as key=value pairs (fg_device_status), or "offline".
 * Owns: an assembly's buffers (fg_assembly_free). */
#ifndef FG_MQTT_WIRE_H
#define FG_MQTT_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "fl/config.h"
#include "fl/job.h"

typedef enum fg_msg_kind { FG_MSG_JOB = 1, FG_MSG_RESULT = 2 } fg_msg_kind;

typedef struct fg_msg {
  fg_msg_kind kind;
  char run[64];
  uint64_t config_hash;
  fg_job job;       /* a result: the job it answers */
  fg_result result; /* results only */
  int64_t numel;    /* floats of "state" */
  int has_linear;   /* a job carries "linear" */
} fg_msg;

/* m with `state` [m->numel] (and for a job, `linear` [m->numel] unless NULL) as one message in a
 * malloc'd buffer (caller frees) of *len bytes. For a result, m->result.numel must be m->numel
 * and linear NULL. FG_ERR_INVALID when a field is out of range. */
fg_status fg_msg_encode(const fg_msg *m, const float *state, const float *linear, unsigned char **bytes,
                        size_t *len);

/* The message in bytes [len] into m, state [cap floats] and, when it carries one (m->has_linear),
 * linear [cap floats] (NULL: a message with one is refused). FG_ERR_FORMAT naming the problem when
 * it is not a well-formed message: not safetensors, a missing or wrong metadata entry or tensor,
 * a job that is not one job, a result for another round or slot than its job, a state of another
 * size than the job or result declares, or more than cap floats (oversized). */
fg_status fg_msg_decode(const unsigned char *bytes, size_t len, fg_msg *m, float *state, float *linear,
                        int64_t cap);

/* ---- topics and statuses ---------------------------------------------------------------- */

/* "fg/<run>/<what>" or, with a device id, "fg/<run>/<what>/<id>", into out [cap]. FG_ERR_INVALID
 * when it does not fit, or when run or id is empty or holds '/', '+', '#' or a space. */
fg_status fg_mqtt_topic(char *out, size_t cap, const char *run, const char *what, const char *id);

typedef struct fg_device_status {
  int online;
  char version[32];
  char backend[32];        /* cpu, cuda:0, ... */
  uint64_t budget;         /* bytes; 0: no cap */
  int64_t samples;         /* training samples it holds */
  int client;              /* the client of the partition it holds (a dry run); -1: its own data */
  uint64_t config_hash;    /* the configuration it planned with */
  int n_methods;
  int fits[FG_MAX_METHODS]; /* per method: the most capable level its budget fits here; -1: none */
  int holds_round, holds_slot; /* the job it is training or whose result it is sending; -1: none */
} fg_device_status;

/* The status as its line of text into out [cap]. */
fg_status fg_device_status_format(const fg_device_status *st, char *out, size_t cap);
/* A status line back. FG_ERR_FORMAT naming the key when it is not one. */
fg_status fg_device_status_parse(const char *text, fg_device_status *st);

/* ---- chunks ------------------------------------------------------------------------------- */

enum { FG_CHUNK_HEAD_BYTES = 68, FG_SHA256_BYTES = 32 };

typedef struct fg_chunk_head {
  uint64_t transfer;
  uint32_t index, count;
  uint64_t total;       /* bytes of the whole message */
  uint32_t chunk_bytes; /* every chunk's length but the last one's */
  uint32_t len;         /* this chunk's */
  unsigned char sha256[FG_SHA256_BYTES];
} fg_chunk_head;

/* The transfer id of a message: its kind, round and slot. */
uint64_t fg_transfer_id(fg_msg_kind kind, int round, int slot);
/* The kind, round and slot a transfer id names. FG_ERR_FORMAT when it names no message. */
fg_status fg_transfer_parse(uint64_t transfer, fg_msg_kind *kind, int *round, int *slot);

/* Chunks of a message of `total` bytes cut at chunk_bytes (> 0). */
uint32_t fg_chunk_count(size_t total, size_t chunk_bytes);

/* Chunk `index` of message msg [total] into out [cap] (FG_CHUNK_HEAD_BYTES + chunk_bytes is
 * enough); *len := its bytes. FG_ERR_INVALID when index is past the last chunk or cap too small. */
fg_status fg_chunk_make(uint64_t transfer, const unsigned char *msg, size_t total, size_t chunk_bytes,
                        uint32_t index, unsigned char *out, size_t cap, size_t *len);

/* The header of a chunk of len bytes, its fields checked against each other and len (the
 * digest is checked by fg_assembly_add). FG_ERR_FORMAT naming the field otherwise. */
fg_status fg_chunk_read_head(const unsigned char *chunk, size_t len, fg_chunk_head *h);

/* ---- reassembly --------------------------------------------------------------------------- */

typedef struct fg_assembly {
  uint64_t max_total;   /* the largest message accepted */
  int started;
  fg_chunk_head first;  /* transfer, count, total and chunk size of the message being assembled */
  uint32_t received;
  unsigned char *have;  /* [count]: 1 where the chunk arrived */
  unsigned char *bytes; /* [total]; NULL when assembled in a file */
  char *path;           /* the file it is assembled in, or NULL (in memory) */
  int fd;
} fg_assembly;

void fg_assembly_init(fg_assembly *a, uint64_t max_total);
/* The messages are assembled in the file at `path` (created when a message begins; removed when
 * it is dropped) instead of memory, so that a receiver of many large messages at once holds only
 * a chunk of each. */
fg_status fg_assembly_use_file(fg_assembly *a, const char *path);
/* Once complete (file-backed): the file flushed to disk and closed; it is the message and stays
 * at a->path (the caller renames or removes it). */
fg_status fg_assembly_finish_file(fg_assembly *a);
/* Adds one chunk. *complete := 1 once every chunk of the message has arrived (the message is then
 * a->bytes [a->first.total]). A chunk of a message other than the one begun, or one that fails a
 * check, is refused with FG_ERR_FORMAT naming the problem, and leaves the assembly as it was. */
fg_status fg_assembly_add(fg_assembly *a, const unsigned char *chunk, size_t len, int *complete);
/* Drops the message being assembled, and its file unless finished (the cap and the path stay). */
void fg_assembly_reset(fg_assembly *a);
void fg_assembly_free(fg_assembly *a);

#endif
