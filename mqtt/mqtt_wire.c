/* Messages as safetensors, their chunks and reassembly. */
#include "mqtt/mqtt_wire.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine/io/safetensors.h"

static const uint32_t chunk_magic = 0x4b434746u; /* "FGCK" */
static const char *const kind_names[] = {NULL, "job", "result"};

/* ---- messages ----------------------------------------------------------------------------- */

static fg_status bad_msg(const char *fmt, const char *detail) {
  return FG_FAIL(FG_ERR_FORMAT, fmt, detail);
}

static fg_wire_header job_header(const fg_msg *m) {
  fg_wire_header h = {FG_WIRE_ROUND, m->job.method, m->job.round, FG_OK, m->numel, 1, 0};
  return h;
}

fg_status fg_msg_encode(const fg_msg *m, const float *state, const float *linear, unsigned char **bytes,
                        size_t *len) {
  *bytes = NULL;
  *len = 0;
  if ((m->kind != FG_MSG_JOB && m->kind != FG_MSG_RESULT) || m->numel < 0 || (m->numel > 0 && !state) ||
      (m->kind == FG_MSG_RESULT && (m->result.numel != m->numel || linear)))
    return FG_FAIL(FG_ERR_INVALID, "message: kind %d with %lld floats is not a job or result", (int)m->kind,
                   (long long)m->numel);
  unsigned char job[128], result[FG_RESULT_BYTES];
  size_t job_len = 0, result_len = 0;
  fg_wire_header h = job_header(m);
  FG_TRY(fg_wire_header_encode(&h, &m->job, job, sizeof job, &job_len));
  if (m->kind == FG_MSG_RESULT) FG_TRY(fg_result_encode(&m->result, result, sizeof result, &result_len));
  char hash[24];
  snprintf(hash, sizeof hash, "%016" PRIx64, m->config_hash);
  fg_st_writer w;
  fg_st_writer_init(&w);
  int64_t job_shape = (int64_t)job_len, result_shape = (int64_t)result_len, state_shape = m->numel;
  fg_status s = fg_st_writer_set_metadata(&w, "fedgap.kind", kind_names[m->kind]);
  if (s == FG_OK) s = fg_st_writer_set_metadata(&w, "fedgap.run", m->run);
  if (s == FG_OK) s = fg_st_writer_set_metadata(&w, "fedgap.config_hash", hash);
  if (s == FG_OK) s = fg_st_writer_add(&w, "job", FG_ST_U8, 1, &job_shape, job);
  if (s == FG_OK && m->kind == FG_MSG_RESULT) s = fg_st_writer_add(&w, "result", FG_ST_U8, 1, &result_shape, result);
  if (s == FG_OK) s = fg_st_writer_add(&w, "state", FG_ST_F32, 1, &state_shape, state);
  if (s == FG_OK && linear) s = fg_st_writer_add(&w, "linear", FG_ST_F32, 1, &state_shape, linear);
  if (s == FG_OK) s = fg_st_writer_to_memory(&w, bytes, len);
  fg_st_writer_free(&w);
  return s;
}

static fg_status read_kind(const fg_st_file *f, fg_msg *m) {
  const char *kind = fg_st_metadata(f, "fedgap.kind");
  if (!kind) return bad_msg("message: no metadata entry %s", "fedgap.kind");
  if (strcmp(kind, "job") == 0) m->kind = FG_MSG_JOB;
  else if (strcmp(kind, "result") == 0) m->kind = FG_MSG_RESULT;
  else return bad_msg("message: kind '%.40s' is neither job nor result", kind);
  const char *run = fg_st_metadata(f, "fedgap.run");
  if (!run) return bad_msg("message: no metadata entry %s", "fedgap.run");
  if (strlen(run) >= sizeof m->run) return bad_msg("message: run name '%.40s...' is too long", run);
  snprintf(m->run, sizeof m->run, "%s", run);
  const char *hash = fg_st_metadata(f, "fedgap.config_hash");
  char *end = NULL;
  if (!hash || strlen(hash) != 16) return bad_msg("message: config hash '%.40s' is not 16 hex digits", hash ? hash : "");
  m->config_hash = strtoull(hash, &end, 16);
  if (*end) return bad_msg("message: config hash '%.40s' is not 16 hex digits", hash);
  return FG_OK;
}

/* The U8 tensor `name`, or NULL with the error recorded. */
static const fg_st_entry *bytes_entry(const fg_st_file *f, const char *name) {
  const fg_st_entry *e = fg_st_find(f, name);
  if (!e) bad_msg("message: no tensor '%s'", name);
  else if (e->dtype != FG_ST_U8 || e->ndim != 1) {
    bad_msg("message: tensor '%s' is not a U8 vector", name);
    e = NULL;
  }
  return e;
}

static fg_status read_job(const fg_st_file *f, fg_msg *m) {
  const fg_st_entry *e = bytes_entry(f, "job");
  if (!e) return FG_ERR_FORMAT;
  fg_wire_header h;
  fg_status s = fg_wire_header_decode(e->data, e->nbytes, &h, &m->job, 1);
  if (s != FG_OK) {
    fg_error_prefix("message");
    return FG_ERR_FORMAT;
  }
  if (h.kind != FG_WIRE_ROUND || h.n != 1) return bad_msg("message: tensor '%s' is not one job", "job");
  if (h.prox_numel != 0) return bad_msg("message: %s declares proximal terms, which messages do not carry", "the job");
  if (h.method != m->job.method || h.round != m->job.round)
    return bad_msg("message: %s disagrees with its job (method, round)", "the job header");
  if (m->job.slot < 0 || m->job.round < 0 || m->job.client < 0 || m->job.level < 0)
    return bad_msg("message: %s has a negative round, slot, client or level", "the job");
  m->numel = h.state_numel;
  return FG_OK;
}

static fg_status read_result(const fg_st_file *f, fg_msg *m) {
  if (m->kind != FG_MSG_RESULT) {
    if (fg_st_find(f, "result")) return bad_msg("message: a job carries a tensor '%s'", "result");
    return FG_OK;
  }
  const fg_st_entry *e = bytes_entry(f, "result");
  if (!e) return FG_ERR_FORMAT;
  if (fg_result_decode(e->data, e->nbytes, &m->result) != FG_OK) {
    fg_error_prefix("message");
    return FG_ERR_FORMAT;
  }
  if (m->result.round != m->job.round || m->result.slot != m->job.slot)
    return FG_FAIL(FG_ERR_FORMAT, "message: the result answers round %d, slot %d, its job round %d, slot %d",
                   m->result.round + 1, m->result.slot, m->job.round + 1, m->job.slot);
  if (m->result.numel != m->numel)
    return FG_FAIL(FG_ERR_FORMAT, "message: the result declares %lld floats, its job header %lld",
                   (long long)m->result.numel, (long long)m->numel);
  return FG_OK;
}

/* Tensor `name`, F32 [m->numel] of at most cap floats, into out. */
static fg_status read_floats(const fg_st_file *f, const fg_msg *m, const char *name, float *out, int64_t cap) {
  const fg_st_entry *e = fg_st_find(f, name);
  if (e->dtype != FG_ST_F32 || e->ndim != 1 || e->shape[0] != m->numel)
    return FG_FAIL(FG_ERR_FORMAT, "message: tensor '%s' is not F32 [%lld] as its job declares", name,
                   (long long)m->numel);
  if (m->numel > cap)
    return FG_FAIL(FG_ERR_FORMAT, "message: %lld floats of %s, more than the %lld expected at most (oversized)",
                   (long long)m->numel, name, (long long)cap);
  int64_t shape = m->numel;
  return fg_st_read_f32(f, name, 1, &shape, out);
}

static fg_status read_state(const fg_st_file *f, fg_msg *m, float *state, float *linear, int64_t cap) {
  if (!fg_st_find(f, "state")) return bad_msg("message: no tensor '%s'", "state");
  m->has_linear = fg_st_find(f, "linear") != NULL;
  if (m->has_linear && (m->kind != FG_MSG_JOB || !linear))
    return bad_msg("message: a tensor '%s' where none is expected", "linear");
  size_t expected = (m->kind == FG_MSG_RESULT ? 3u : 2u) + (m->has_linear ? 1u : 0u);
  if (fg_st_count(f) != expected)
    return FG_FAIL(FG_ERR_FORMAT, "message: %zu tensors, a %s has %zu", fg_st_count(f), kind_names[m->kind],
                   expected);
  FG_TRY(read_floats(f, m, "state", state, cap));
  return m->has_linear ? read_floats(f, m, "linear", linear, cap) : FG_OK;
}

fg_status fg_msg_decode(const unsigned char *bytes, size_t len, fg_msg *m, float *state, float *linear,
                        int64_t cap) {
  memset(m, 0, sizeof *m);
  fg_st_file *f = NULL;
  fg_status s = fg_st_open_memory("message", bytes, len, &f);
  if (s != FG_OK) return s;
  s = read_kind(f, m);
  if (s == FG_OK) s = read_job(f, m);
  if (s == FG_OK) s = read_result(f, m);
  if (s == FG_OK) s = read_state(f, m, state, linear, cap);
  fg_st_close(f);
  return s;
}

/* ---- topics and statuses ---------------------------------------------------------------- */

static int topic_word(const char *w) { return w && *w && strcspn(w, "/+# ") == strlen(w); }

fg_status fg_mqtt_topic(char *out, size_t cap, const char *run, const char *what, const char *id) {
  if (!topic_word(run)) return FG_FAIL(FG_ERR_INVALID, "run name '%.80s' is empty or holds '/', '+', '#' or a space",
                                       run ? run : "");
  if (id && !topic_word(id))
    return FG_FAIL(FG_ERR_INVALID, "device id '%.80s' is empty or holds '/', '+', '#' or a space", id);
  int n = id ? snprintf(out, cap, "fg/%s/%s/%s", run, what, id) : snprintf(out, cap, "fg/%s/%s", run, what);
  if (n < 0 || (size_t)n >= cap) return FG_FAIL(FG_ERR_INVALID, "topic fg/%.80s/%s/... is too long", run, what);
  return FG_OK;
}

fg_status fg_device_status_format(const fg_device_status *st, char *out, size_t cap) {
  if (!st->online) {
    snprintf(out, cap, "offline");
    return FG_OK;
  }
  if (st->n_methods < 0 || st->n_methods > FG_MAX_METHODS || !topic_word(st->version) || !topic_word(st->backend))
    return FG_FAIL(FG_ERR_INVALID, "device status: %d methods, version '%s', backend '%s'", st->n_methods,
                   st->version, st->backend);
  size_t n = (size_t)snprintf(out, cap, "online version=%s backend=%s budget=%" PRIu64 " samples=%" PRId64
                              " client=%d config=%016" PRIx64 " fits=", st->version, st->backend, st->budget,
                              st->samples, st->client, st->config_hash);
  for (int m = 0; m < st->n_methods && n < cap; m++)
    n += (size_t)snprintf(out + n, cap - n, "%s%d", m ? "," : "", st->fits[m]);
  if (n < cap && st->holds_round >= 0)
    n += (size_t)snprintf(out + n, cap - n, " holds=%d,%d", st->holds_round, st->holds_slot);
  if (n >= cap) return FG_FAIL(FG_ERR_INVALID, "device status: more than %zu bytes", cap);
  return FG_OK;
}

/* The value of key=VALUE in a status line: its first character, its length in *len. */
static const char *status_value(const char *text, const char *key, size_t *len) {
  size_t k = strlen(key);
  for (const char *p = text; (p = strstr(p, key)) != NULL; p += k)
    if ((p == text || p[-1] == ' ') && p[k] == '=') {
      *len = strcspn(p + k + 1, " ");
      return p + k + 1;
    }
  return NULL;
}

static fg_status status_number(const char *text, const char *key, int base, int is_signed, void *out) {
  size_t len = 0;
  const char *v = status_value(text, key, &len);
  char buf[32], *end = NULL;
  if (!v || len == 0 || len >= sizeof buf) return FG_FAIL(FG_ERR_FORMAT, "device status: no valid %s", key);
  memcpy(buf, v, len);
  buf[len] = '\0';
  errno = 0;
  if (is_signed) *(int64_t *)out = strtoll(buf, &end, base);
  else *(uint64_t *)out = strtoull(buf, &end, base);
  if (*end || errno || (!is_signed && buf[0] == '-')) return FG_FAIL(FG_ERR_FORMAT, "device status: %s=%s is not a number", key, buf);
  return FG_OK;
}

static fg_status status_word(const char *text, const char *key, char *out, size_t cap) {
  size_t len = 0;
  const char *v = status_value(text, key, &len);
  if (!v || len == 0 || len >= cap) return FG_FAIL(FG_ERR_FORMAT, "device status: no valid %s", key);
  memcpy(out, v, len);
  out[len] = '\0';
  return FG_OK;
}

fg_status fg_device_status_parse(const char *text, fg_device_status *st) {
  memset(st, 0, sizeof *st);
  st->client = -1;
  st->holds_round = st->holds_slot = -1;
  if (strcmp(text, "offline") == 0) return FG_OK;
  if (strncmp(text, "online ", 7) != 0)
    return FG_FAIL(FG_ERR_FORMAT, "device status '%.60s' is neither online nor offline", text);
  st->online = 1;
  int64_t client = 0, samples = 0;
  FG_TRY(status_word(text, "version", st->version, sizeof st->version));
  FG_TRY(status_word(text, "backend", st->backend, sizeof st->backend));
  FG_TRY(status_number(text, "budget", 10, 0, &st->budget));
  FG_TRY(status_number(text, "samples", 10, 1, &samples));
  FG_TRY(status_number(text, "client", 10, 1, &client));
  FG_TRY(status_number(text, "config", 16, 0, &st->config_hash));
  if (samples < 0 || client < -1 || client > INT32_MAX)
    return FG_FAIL(FG_ERR_FORMAT, "device status: samples %" PRId64 " or client %" PRId64 " out of range", samples,
                   client);
  st->samples = samples;
  st->client = (int)client;
  size_t len = 0;
  const char *fits = status_value(text, "fits", &len);
  if (!fits || len == 0) return FG_FAIL(FG_ERR_FORMAT, "device status: no valid fits");
  for (const char *p = fits; p < fits + len;) {
    char *end = NULL;
    long l = strtol(p, &end, 10);
    if (end == p || l < -1 || l > 1000 || st->n_methods == FG_MAX_METHODS || (end < fits + len && *end != ','))
      return FG_FAIL(FG_ERR_FORMAT, "device status: fits=%.*s is not a list of levels", (int)len, fits);
    st->fits[st->n_methods++] = (int)l;
    p = end + (end < fits + len);
  }
  const char *holds = status_value(text, "holds", &len);
  if (holds) {
    int r = -1, s = -1, used = 0;
    if (sscanf(holds, "%d,%d%n", &r, &s, &used) != 2 || (size_t)used != len || r < 0 || s < 0)
      return FG_FAIL(FG_ERR_FORMAT, "device status: holds=%.*s is not ROUND,SLOT", (int)len, holds);
    st->holds_round = r;
    st->holds_slot = s;
  }
  return FG_OK;
}

/* ---- chunks ------------------------------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

uint64_t fg_transfer_id(fg_msg_kind kind, int round, int slot) {
  return (uint64_t)kind << 60 | (uint64_t)(uint32_t)round << 28 | ((uint64_t)(uint32_t)slot & 0x0fffffffu);
}

fg_status fg_transfer_parse(uint64_t transfer, fg_msg_kind *kind, int *round, int *slot) {
  uint64_t k = transfer >> 60, r = (transfer >> 28) & 0xffffffffu;
  if ((k != FG_MSG_JOB && k != FG_MSG_RESULT) || r > INT32_MAX)
    return FG_FAIL(FG_ERR_FORMAT, "chunk: transfer id %016" PRIx64 " names no job or result", transfer);
  *kind = (fg_msg_kind)k;
  *round = (int)r;
  *slot = (int)(transfer & 0x0fffffffu);
  return FG_OK;
}

uint32_t fg_chunk_count(size_t total, size_t chunk_bytes) {
  if (chunk_bytes == 0) return 0;
  size_t n = (total + chunk_bytes - 1) / chunk_bytes;
  return n == 0 ? 1 : (uint32_t)n; /* an empty message is one empty chunk */
}

static int sha256(const unsigned char *data, size_t len, unsigned char out[FG_SHA256_BYTES]) {
  unsigned int n = 0;
  return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == FG_SHA256_BYTES;
}

fg_status fg_chunk_make(uint64_t transfer, const unsigned char *msg, size_t total, size_t chunk_bytes,
                        uint32_t index, unsigned char *out, size_t cap, size_t *len) {
  uint32_t count = fg_chunk_count(total, chunk_bytes);
  if (chunk_bytes == 0 || chunk_bytes > UINT32_MAX || index >= count)
    return FG_FAIL(FG_ERR_INVALID, "chunk %u of %u (chunks of %zu bytes) does not exist", index, count, chunk_bytes);
  size_t at = (size_t)index * chunk_bytes, n = total - at < chunk_bytes ? total - at : chunk_bytes;
  if (cap < FG_CHUNK_HEAD_BYTES + n)
    return FG_FAIL(FG_ERR_INVALID, "chunk: a buffer of %zu bytes holds no chunk of %zu", cap, n);
  put_le(out, chunk_magic, 4);
  put_le(out + 4, transfer, 8);
  put_le(out + 12, index, 4);
  put_le(out + 16, count, 4);
  put_le(out + 20, total, 8);
  put_le(out + 28, chunk_bytes, 4);
  put_le(out + 32, n, 4);
  if (!sha256(msg + at, n, out + 36)) return FG_FAIL(FG_ERR_LIBRARY, "OpenSSL: SHA-256 failed");
  memcpy(out + FG_CHUNK_HEAD_BYTES, msg + at, n);
  *len = FG_CHUNK_HEAD_BYTES + n;
  return FG_OK;
}

static fg_status bad_chunk(const char *field, const char *why) {
  return FG_FAIL(FG_ERR_FORMAT, "chunk: %s %s", field, why);
}

fg_status fg_chunk_read_head(const unsigned char *chunk, size_t len, fg_chunk_head *h) {
  memset(h, 0, sizeof *h);
  if (len < FG_CHUNK_HEAD_BYTES)
    return FG_FAIL(FG_ERR_FORMAT, "chunk: %zu bytes, shorter than its header (%d; truncated)", len,
                   FG_CHUNK_HEAD_BYTES);
  if (get_le(chunk, 4) != chunk_magic) return bad_chunk("magic", "is not a chunk's");
  h->transfer = get_le(chunk + 4, 8);
  h->index = (uint32_t)get_le(chunk + 12, 4);
  h->count = (uint32_t)get_le(chunk + 16, 4);
  h->total = get_le(chunk + 20, 8);
  h->chunk_bytes = (uint32_t)get_le(chunk + 28, 4);
  h->len = (uint32_t)get_le(chunk + 32, 4);
  memcpy(h->sha256, chunk + 36, FG_SHA256_BYTES);
  if (h->chunk_bytes == 0) return bad_chunk("chunk_bytes", "is 0");
  if (h->total > SIZE_MAX) return bad_chunk("total", "is larger than this machine's memory");
  if (h->count != fg_chunk_count((size_t)h->total, h->chunk_bytes))
    return bad_chunk("count", "does not match the total and chunk size");
  if (h->index >= h->count) return bad_chunk("index", "is past the last chunk");
  uint64_t at = (uint64_t)h->index * h->chunk_bytes;
  uint64_t expected = h->total - at < h->chunk_bytes ? h->total - at : h->chunk_bytes;
  if (h->len != expected) return bad_chunk("len", "does not match its index, the total and the chunk size");
  if (len != FG_CHUNK_HEAD_BYTES + (size_t)h->len)
    return FG_FAIL(FG_ERR_FORMAT, "chunk: %zu bytes where its header says %u (truncated or padded)", len,
                   FG_CHUNK_HEAD_BYTES + h->len);
  return FG_OK;
}

/* ---- reassembly --------------------------------------------------------------------------- */

void fg_assembly_init(fg_assembly *a, uint64_t max_total) {
  memset(a, 0, sizeof *a);
  a->max_total = max_total;
  a->fd = -1;
}

fg_status fg_assembly_use_file(fg_assembly *a, const char *path) {
  fg_assembly_reset(a);
  char *copy = strdup(path);
  if (!copy) return FG_FAIL(FG_ERR_OOM, "chunk: out of memory");
  free(a->path);
  a->path = copy;
  return FG_OK;
}

void fg_assembly_reset(fg_assembly *a) {
  uint64_t max_total = a->max_total;
  char *path = a->path;
  if (a->fd >= 0) {
    close(a->fd);
    unlink(path);
  }
  free(a->have);
  free(a->bytes);
  fg_assembly_init(a, max_total);
  a->path = path;
}

void fg_assembly_free(fg_assembly *a) {
  fg_assembly_reset(a);
  free(a->path);
  a->path = NULL;
}

fg_status fg_assembly_finish_file(fg_assembly *a) {
  if (a->fd < 0 || !a->started || a->received != a->first.count)
    return FG_FAIL(FG_ERR_INVALID, "chunk: no complete message in a file to finish");
  int ok = fsync(a->fd) == 0;
  ok = close(a->fd) == 0 && ok;
  a->fd = -1; /* the file stays: it is the message */
  if (!ok) return FG_FAIL(FG_ERR_IO, "%s: cannot be written: %s", a->path, strerror(errno));
  return FG_OK;
}

/* A chunk's bytes into the message at `at`; `seen`: they arrived before, and must be the same. */
static fg_status put_chunk(fg_assembly *a, size_t at, const unsigned char *data, size_t len, int seen) {
  if (a->fd < 0) {
    if (seen) return memcmp(a->bytes + at, data, len) == 0 ? FG_OK : FG_ERR_FORMAT;
    if (len) memcpy(a->bytes + at, data, len);
    return FG_OK;
  }
  if (seen) {
    unsigned char *old = malloc(len ? len : 1);
    if (!old) return FG_FAIL(FG_ERR_OOM, "chunk: out of memory");
    int same = pread(a->fd, old, len, (off_t)at) == (ssize_t)len && memcmp(old, data, len) == 0;
    free(old);
    return same ? FG_OK : FG_ERR_FORMAT;
  }
  if (pwrite(a->fd, data, len, (off_t)at) != (ssize_t)len)
    return FG_FAIL(FG_ERR_IO, "%s: cannot be written: %s", a->path, strerror(errno));
  return FG_OK;
}

static fg_status begin(fg_assembly *a, const fg_chunk_head *h) {
  if (h->total > a->max_total)
    return FG_FAIL(FG_ERR_FORMAT, "chunk: a message of %" PRIu64 " bytes, more than the %" PRIu64 " accepted "
                   "(oversized)", h->total, a->max_total);
  a->have = calloc(h->count, 1);
  if (a->path) {
    a->fd = open(a->path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (a->fd < 0) {
      fg_assembly_reset(a);
      return FG_FAIL(FG_ERR_IO, "%s: cannot be created: %s", a->path, strerror(errno));
    }
  } else {
    a->bytes = malloc(h->total ? (size_t)h->total : 1);
  }
  if (!a->have || (!a->path && !a->bytes)) {
    fg_assembly_reset(a);
    return FG_FAIL(FG_ERR_OOM, "chunk: out of memory for a message of %" PRIu64 " bytes", h->total);
  }
  a->first = *h;
  a->started = 1;
  a->received = 0;
  return FG_OK;
}

fg_status fg_assembly_add(fg_assembly *a, const unsigned char *chunk, size_t len, int *complete) {
  *complete = 0;
  fg_chunk_head h;
  FG_TRY(fg_chunk_read_head(chunk, len, &h));
  unsigned char digest[FG_SHA256_BYTES];
  const unsigned char *data = chunk + FG_CHUNK_HEAD_BYTES;
  if (!sha256(data, h.len, digest)) return FG_FAIL(FG_ERR_LIBRARY, "OpenSSL: SHA-256 failed");
  if (memcmp(digest, h.sha256, FG_SHA256_BYTES) != 0)
    return FG_FAIL(FG_ERR_FORMAT, "chunk %u of %u: its bytes do not match their SHA-256 (corrupted)", h.index,
                   h.count);
  if (!a->started) FG_TRY(begin(a, &h));
  if (h.transfer != a->first.transfer)
    return FG_FAIL(FG_ERR_FORMAT, "chunk: transfer %016" PRIx64 " while %016" PRIx64 " is being assembled",
                   h.transfer, a->first.transfer);
  if (h.total != a->first.total || h.chunk_bytes != a->first.chunk_bytes)
    return FG_FAIL(FG_ERR_FORMAT, "chunk %u: total or chunk size differ from the transfer's first chunk", h.index);
  size_t at = (size_t)h.index * h.chunk_bytes;
  fg_status st = put_chunk(a, at, data, h.len, a->have[h.index]);
  if (st == FG_ERR_FORMAT)
    return FG_FAIL(FG_ERR_FORMAT, "chunk %u of %u: arrived again with other bytes", h.index, h.count);
  FG_TRY(st);
  if (!a->have[h.index]) {
    a->have[h.index] = 1;
    a->received++;
  }
  *complete = a->received == a->first.count;
  return FG_OK;
}
