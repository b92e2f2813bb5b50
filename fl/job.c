/* Wire formats of spread runs: explicit little-endian fields, written and read one by one. */
#include "fl/job.h"

#include <string.h>

static const uint32_t header_magic = 0x48524746u; /* "FGRH" */
static const uint32_t result_magic = 0x53524746u; /* "FGRS" */
static const uint32_t time_magic = 0x54574746u;   /* "FGWT" */
static const uint32_t identity_magic = 0x44494746u; /* "FGID" */
enum { JOB_BYTES = 40, HEADER_BYTES = 40 };

/* ---- writing ------------------------------------------------------------------------------ */

typedef struct wbuf {
  unsigned char *p;
  size_t len, cap;
  int overflow;
} wbuf;

static void put_u64(wbuf *b, uint64_t v, int bytes) {
  if (b->len + (size_t)bytes > b->cap) {
    b->overflow = 1;
    return;
  }
  for (int i = 0; i < bytes; i++) b->p[b->len++] = (unsigned char)(v >> (8 * i));
}

static void put_u32(wbuf *b, uint32_t v) { put_u64(b, v, 4); }
static void put_i32(wbuf *b, int v) { put_u64(b, (uint32_t)v, 4); }
static void put_i64(wbuf *b, int64_t v) { put_u64(b, (uint64_t)v, 8); }

static void put_f64(wbuf *b, double v) {
  uint64_t bits;
  memcpy(&bits, &v, sizeof bits);
  put_u64(b, bits, 8);
}

/* A string in a field of n bytes, NUL-padded (cut to n - 1 characters). */
static void put_str(wbuf *b, const char *s, size_t n) {
  if (b->len + n > b->cap) {
    b->overflow = 1;
    return;
  }
  size_t k = strnlen(s, n - 1);
  memcpy(b->p + b->len, s, k);
  memset(b->p + b->len + k, 0, n - k);
  b->len += n;
}

/* ---- reading ------------------------------------------------------------------------------ */

typedef struct rbuf {
  const unsigned char *p;
  size_t len, at;
  const char *what; /* the message kind, for errors */
  const char *bad;  /* the first field that did not fit, or NULL */
} rbuf;

static uint64_t get_u64(rbuf *b, int bytes, const char *field) {
  if (b->bad || b->at + (size_t)bytes > b->len) {
    if (!b->bad) b->bad = field;
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)b->p[b->at++] << (8 * i);
  return v;
}

static uint32_t get_u32(rbuf *b, const char *field) { return (uint32_t)get_u64(b, 4, field); }
static int get_i32(rbuf *b, const char *field) { return (int)(int32_t)get_u32(b, field); }
static int64_t get_i64(rbuf *b, const char *field) { return (int64_t)get_u64(b, 8, field); }

static double get_f64(rbuf *b, const char *field) {
  uint64_t bits = get_u64(b, 8, field);
  double v;
  memcpy(&v, &bits, sizeof v);
  return v;
}

static void get_str(rbuf *b, char *out, size_t n, const char *field) {
  if (b->bad || b->at + n > b->len) {
    if (!b->bad) b->bad = field;
    out[0] = '\0';
    return;
  }
  memcpy(out, b->p + b->at, n);
  out[n - 1] = '\0';
  b->at += n;
}

static fg_status bad_field(const rbuf *b, const char *field, const char *why) {
  return FG_FAIL(FG_ERR_FORMAT, "%s: field %s %s", b->what, field, why);
}

static fg_status check_magic(rbuf *b, uint32_t magic) {
  if (get_u32(b, "magic") != magic) return bad_field(b, "magic", "is not this message's (a peer of another version?)");
  return FG_OK;
}

static fg_status finish_read(const rbuf *b) {
  if (b->bad) return bad_field(b, b->bad, "lies past the end of the message");
  if (b->at != b->len) return FG_FAIL(FG_ERR_FORMAT, "%s: %zu bytes, expected %zu", b->what, b->len, b->at);
  return FG_OK;
}

static fg_status finish_write(const wbuf *b, const char *what) {
  if (b->overflow) return FG_FAIL(FG_ERR_INVALID, "%s: the buffer of %zu bytes is too small", what, b->cap);
  return FG_OK;
}

static int valid_status(int s) { return s >= FG_OK && s < FG_STATUS_COUNT; }

/* ---- round headers ------------------------------------------------------------------------ */

size_t fg_wire_header_bytes(int n) { return HEADER_BYTES + (size_t)(n > 0 ? n : 0) * JOB_BYTES; }

static void put_job(wbuf *b, const fg_job *j) {
  put_i32(b, j->method);
  put_i32(b, j->round);
  put_i32(b, j->slot);
  put_i32(b, j->client);
  put_i32(b, j->level);
  put_i32(b, j->owner);
  put_u64(b, j->seed, 8);
  put_u64(b, j->cap, 8);
}

static void get_job(rbuf *b, fg_job *j) {
  j->method = get_i32(b, "job.method");
  j->round = get_i32(b, "job.round");
  j->slot = get_i32(b, "job.slot");
  j->client = get_i32(b, "job.client");
  j->level = get_i32(b, "job.level");
  j->owner = get_i32(b, "job.owner");
  j->seed = get_u64(b, 8, "job.seed");
  j->cap = get_u64(b, 8, "job.cap");
}

fg_status fg_wire_header_encode(const fg_wire_header *h, const fg_job *jobs, unsigned char *buf, size_t cap,
                                size_t *len) {
  int n = h->kind == FG_WIRE_ROUND ? h->n : 0;
  if (n < 0 || (n > 0 && !jobs) || h->prox_numel < 0 || h->kind < FG_WIRE_ROUND || h->kind > FG_WIRE_RUN_END ||
      !valid_status(h->status))
    return FG_FAIL(FG_ERR_INVALID, "round header: kind %d with %d jobs and status %d is not a header",
                   (int)h->kind, h->n, (int)h->status);
  wbuf b = {buf, 0, cap, 0};
  put_u32(&b, header_magic);
  put_i32(&b, (int)h->kind);
  put_i32(&b, h->method);
  put_i32(&b, h->round);
  put_i32(&b, (int)h->status);
  put_i32(&b, n);
  put_i64(&b, h->state_numel);
  put_i64(&b, h->kind == FG_WIRE_ROUND ? h->prox_numel : 0);
  for (int i = 0; i < n; i++) put_job(&b, &jobs[i]);
  *len = b.len;
  return finish_write(&b, "round header");
}

fg_status fg_wire_header_decode(const unsigned char *buf, size_t len, fg_wire_header *h, fg_job *jobs,
                                int max_jobs) {
  rbuf b = {buf, len, 0, "round header", NULL};
  memset(h, 0, sizeof *h);
  FG_TRY(check_magic(&b, header_magic));
  int kind = get_i32(&b, "kind");
  h->method = get_i32(&b, "method");
  h->round = get_i32(&b, "round");
  int status = get_i32(&b, "status");
  h->n = get_i32(&b, "n");
  h->state_numel = get_i64(&b, "state_numel");
  h->prox_numel = get_i64(&b, "prox_numel");
  if (b.bad) return finish_read(&b);
  if (kind < FG_WIRE_ROUND || kind > FG_WIRE_RUN_END) return bad_field(&b, "kind", "is not a known kind");
  if (!valid_status(status)) return bad_field(&b, "status", "is not a status");
  if (h->n < 0 || h->n > max_jobs || (kind != FG_WIRE_ROUND && h->n != 0))
    return bad_field(&b, "n", "is out of range");
  if (h->prox_numel < 0 || (kind != FG_WIRE_ROUND && h->prox_numel != 0))
    return bad_field(&b, "prox_numel", "is out of range");
  h->kind = (fg_wire_kind)kind;
  h->status = (fg_status)status;
  for (int i = 0; i < h->n; i++) get_job(&b, &jobs[i]);
  return finish_read(&b);
}

/* ---- results ------------------------------------------------------------------------------ */

static void put_record(wbuf *b, const fg_client_record *r) {
  put_i32(b, r->id);
  put_i32(b, r->level);
  put_str(b, r->config, sizeof r->config);
  put_i64(b, r->samples);
  put_i32(b, (int)r->status);
  put_str(b, r->error, sizeof r->error);
  put_u64(b, r->budget_bytes, 8);
  put_u64(b, r->planned_bytes, 8);
  put_u64(b, r->engine_peak_bytes, 8);
  put_u64(b, r->process_peak_bytes, 8);
  put_u64(b, r->bytes_down, 8);
  put_u64(b, r->bytes_up, 8);
  put_f64(b, r->train_loss);
  put_f64(b, r->seconds);
  put_f64(b, r->transfer_seconds);
}

static fg_status get_record(rbuf *b, fg_client_record *r) {
  memset(r, 0, sizeof *r);
  r->id = get_i32(b, "record.id");
  r->level = get_i32(b, "record.level");
  get_str(b, r->config, sizeof r->config, "record.config");
  r->samples = get_i64(b, "record.samples");
  int status = get_i32(b, "record.status");
  get_str(b, r->error, sizeof r->error, "record.error");
  r->budget_bytes = (size_t)get_u64(b, 8, "record.budget_bytes");
  r->planned_bytes = (size_t)get_u64(b, 8, "record.planned_bytes");
  r->engine_peak_bytes = (size_t)get_u64(b, 8, "record.engine_peak_bytes");
  r->process_peak_bytes = (size_t)get_u64(b, 8, "record.process_peak_bytes");
  r->bytes_down = (size_t)get_u64(b, 8, "record.bytes_down");
  r->bytes_up = (size_t)get_u64(b, 8, "record.bytes_up");
  r->train_loss = get_f64(b, "record.train_loss");
  r->seconds = get_f64(b, "record.seconds");
  r->transfer_seconds = get_f64(b, "record.transfer_seconds");
  if (!b->bad && (status < FG_CLIENT_OK || status > FG_CLIENT_DROPPED))
    return bad_field(b, "record.status", "is not a client status");
  r->status = (fg_client_status)status;
  return FG_OK;
}

fg_status fg_result_encode(const fg_result *r, unsigned char *buf, size_t cap, size_t *len) {
  if (!valid_status(r->status) || r->numel < 0)
    return FG_FAIL(FG_ERR_INVALID, "result: status %d with %lld floats is not a result", (int)r->status,
                   (long long)r->numel);
  wbuf b = {buf, 0, cap, 0};
  put_u32(&b, result_magic);
  put_i32(&b, r->round);
  put_i32(&b, r->slot);
  put_i32(&b, (int)r->status);
  put_i32(&b, r->skipped ? 1 : 0);
  put_str(&b, r->error, sizeof r->error);
  put_i64(&b, r->numel);
  put_record(&b, &r->rec);
  *len = b.len;
  FG_TRY(finish_write(&b, "result"));
  if (b.len != FG_RESULT_BYTES)
    return FG_FAIL(FG_ERR_INTERNAL, "result: %zu bytes written, FG_RESULT_BYTES says %d", b.len, FG_RESULT_BYTES);
  return FG_OK;
}

fg_status fg_result_decode(const unsigned char *buf, size_t len, fg_result *r) {
  rbuf b = {buf, len, 0, "result", NULL};
  memset(r, 0, sizeof *r);
  FG_TRY(check_magic(&b, result_magic));
  r->round = get_i32(&b, "round");
  r->slot = get_i32(&b, "slot");
  int status = get_i32(&b, "status");
  r->skipped = get_i32(&b, "skipped");
  get_str(&b, r->error, sizeof r->error, "error");
  r->numel = get_i64(&b, "numel");
  FG_TRY(get_record(&b, &r->rec));
  FG_TRY(finish_read(&b));
  if (!valid_status(status)) return bad_field(&b, "status", "is not a status");
  if (r->skipped != 0 && r->skipped != 1) return bad_field(&b, "skipped", "is not 0 or 1");
  if (r->numel < 0) return bad_field(&b, "numel", "is negative");
  r->status = (fg_status)status;
  return FG_OK;
}

/* ---- worker time -------------------------------------------------------------------------- */

void fg_worker_time_encode(const fg_worker_time *t, unsigned char buf[FG_WORKER_TIME_BYTES]) {
  wbuf b = {buf, 0, FG_WORKER_TIME_BYTES, 0};
  put_u32(&b, time_magic);
  put_f64(&b, t->train);
  put_f64(&b, t->send);
  put_f64(&b, t->idle);
  put_i64(&b, t->jobs);
}

fg_status fg_worker_time_decode(const unsigned char buf[FG_WORKER_TIME_BYTES], fg_worker_time *t) {
  rbuf b = {buf, FG_WORKER_TIME_BYTES, 0, "worker time", NULL};
  FG_TRY(check_magic(&b, time_magic));
  t->train = get_f64(&b, "train");
  t->send = get_f64(&b, "send");
  t->idle = get_f64(&b, "idle");
  t->jobs = get_i64(&b, "jobs");
  return finish_read(&b);
}

/* ---- identities --------------------------------------------------------------------------- */

fg_status fg_identity_encode(const fg_identity_record *r, unsigned char buf[FG_IDENTITY_BYTES]) {
  wbuf b = {buf, 0, FG_IDENTITY_BYTES, 0};
  put_u32(&b, identity_magic);
  put_i32(&b, r->phase);
  put_i32(&b, (int)r->status);
  put_str(&b, r->error, sizeof r->error);
  put_u64(&b, r->config_hash, 8);
  put_u64(&b, r->partition_hash, 8);
  put_u64(&b, r->local_test_hash, 8);
  put_str(&b, r->revision, sizeof r->revision);
  put_str(&b, r->kernels, sizeof r->kernels);
  put_str(&b, r->host, sizeof r->host);
  put_i32(&b, r->diff_line);
  put_str(&b, r->diff_mine, sizeof r->diff_mine);
  put_str(&b, r->diff_root, sizeof r->diff_root);
  FG_TRY(finish_write(&b, "identity"));
  if (b.len != FG_IDENTITY_BYTES)
    return FG_FAIL(FG_ERR_INTERNAL, "identity: %zu bytes written, FG_IDENTITY_BYTES says %d", b.len,
                   FG_IDENTITY_BYTES);
  return FG_OK;
}

fg_status fg_identity_decode(const unsigned char buf[FG_IDENTITY_BYTES], fg_identity_record *r) {
  rbuf b = {buf, FG_IDENTITY_BYTES, 0, "identity", NULL};
  memset(r, 0, sizeof *r);
  FG_TRY(check_magic(&b, identity_magic));
  r->phase = get_i32(&b, "phase");
  int status = get_i32(&b, "status");
  get_str(&b, r->error, sizeof r->error, "error");
  r->config_hash = get_u64(&b, 8, "config_hash");
  r->partition_hash = get_u64(&b, 8, "partition_hash");
  r->local_test_hash = get_u64(&b, 8, "local_test_hash");
  get_str(&b, r->revision, sizeof r->revision, "revision");
  get_str(&b, r->kernels, sizeof r->kernels, "kernels");
  get_str(&b, r->host, sizeof r->host, "host");
  r->diff_line = get_i32(&b, "diff_line");
  get_str(&b, r->diff_mine, sizeof r->diff_mine, "diff_mine");
  get_str(&b, r->diff_root, sizeof r->diff_root, "diff_root");
  FG_TRY(finish_read(&b));
  if (!valid_status(status)) return bad_field(&b, "status", "is not a status");
  r->status = (fg_status)status;
  return FG_OK;
}
