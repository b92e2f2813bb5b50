/* The server's side of rounds on devices over MQTT: devices, dispatch, results, spool. */
#include "mqtt/mqtt_serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/base/killpoint.h"
#include "engine/io/atomic_file.h"
#include "mqtt/mqtt_wire.h"

enum { ID_CAP = 64, WHY_CAP = 200, TOPIC_CAP = 256, DEFAULT_CHUNK = 256 * 1024 };

typedef struct device {
  char id[ID_CAP];
  fg_device_status st;
  int client; /* the client it holds; -1: none (another configuration) */
} device;

typedef enum slot_state { SLOT_IDLE = 0, SLOT_PENDING, SLOT_DONE, SLOT_DROPPED, SLOT_REFUSED } slot_state;

typedef struct slot {
  slot_state state;
  fg_job job;
  int64_t numel; /* floats of the job's level */
  int dev;
  double lost_at; /* when its device's last will arrived; 0: not lost */
  char why[WHY_CAP];
  fg_assembly a;
} slot;

typedef struct serve {
  fg_remote remote;
  fg_mqtt_serve_options o;
  char run[ID_CAP];
  const fg_config *cfg;
  uint64_t config_hash;
  fg_mqtt_link *link;
  device *devs;
  int n_devs, cap_devs;
  int *client_dev; /* [clients]: the device holding each client; -1: none */
  slot *slots;     /* [clients]: the round's participants by slot */
  int round;       /* the round under way; -1: none */
  double round_t0;
  char spool[4096];
  size_t sent, received;
  char prefix[TOPIC_CAP]; /* "fg/<run>/" */
} serve;

static double seconds_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void say(serve *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(serve *v, const char *fmt, ...) {
  if (!v->o.log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  v->o.log(v->o.log_ctx, line);
}

/* ---- devices ------------------------------------------------------------------------------ */

static int find_device(const serve *v, const char *id) {
  for (int i = 0; i < v->n_devs; i++)
    if (strcmp(v->devs[i].id, id) == 0) return i;
  return -1;
}

static fg_status add_device(serve *v, const char *id, int *index) {
  if (v->n_devs == v->cap_devs) {
    int cap = v->cap_devs ? 2 * v->cap_devs : 16;
    device *d = realloc(v->devs, (size_t)cap * sizeof *d);
    if (!d) return FG_FAIL(FG_ERR_OOM, "serve: out of memory for the device table");
    v->devs = d;
    v->cap_devs = cap;
  }
  device *d = &v->devs[v->n_devs];
  memset(d, 0, sizeof *d);
  snprintf(d->id, sizeof d->id, "%s", id);
  d->client = -1;
  *index = v->n_devs++;
  return FG_OK;
}

/* The client a device that came online with the run's configuration holds: the one it names, or
 * the first free one; -1 when none is left. */
static int claim_client(serve *v, int dev) {
  int want = v->devs[dev].st.client, clients = v->cfg->clients;
  if (v->devs[dev].client >= 0) return v->devs[dev].client;
  if (want >= clients) return -1;
  if (want >= 0) return v->client_dev[want] < 0 || v->client_dev[want] == dev ? want : -1;
  for (int c = 0; c < clients; c++)
    if (v->client_dev[c] < 0) return c;
  return -1;
}

static void drop(serve *v, slot *s, const char *why) {
  s->state = SLOT_DROPPED;
  snprintf(s->why, sizeof s->why, "%s", why);
  fg_assembly_reset(&s->a);
  say(v, "round %d, slot %d: %s", s->job.round + 1, s->job.slot, s->why);
}

/* Device dev's last will arrived: its pending slots are lost (they wait devices.grace for it). */
static void lose_slots_of(serve *v, int dev) {
  for (int i = 0; i < v->cfg->clients; i++) {
    slot *s = &v->slots[i];
    if (s->state == SLOT_PENDING && s->dev == dev && s->lost_at == 0) s->lost_at = seconds_now();
  }
}

/* Device dev is online again: a lost slot it still holds waits for its result; one it does not
 * hold (it was started again without it) is dropped. */
static void found_device(serve *v, int dev) {
  const fg_device_status *st = &v->devs[dev].st;
  for (int i = 0; i < v->cfg->clients; i++) {
    slot *s = &v->slots[i];
    if (s->state != SLOT_PENDING || s->dev != dev || s->lost_at == 0) continue;
    if (st->holds_round == s->job.round && st->holds_slot == s->job.slot) {
      s->lost_at = 0;
      say(v, "device %s is back with its job of round %d, slot %d", v->devs[dev].id, s->job.round + 1, s->job.slot);
      continue;
    }
    char why[WHY_CAP];
    snprintf(why, sizeof why, "device %.60s went offline during the round (its last will) and came back without "
             "its job", v->devs[dev].id);
    drop(v, s, why);
  }
}

/* Lost slots whose device has not come back within devices.grace are dropped. */
static void drop_lost(serve *v) {
  for (int i = 0; i < v->cfg->clients; i++) {
    slot *s = &v->slots[i];
    if (s->state != SLOT_PENDING || s->lost_at == 0 || seconds_now() - s->lost_at < v->cfg->devices_grace) continue;
    char why[WHY_CAP];
    snprintf(why, sizeof why, "device %.60s went offline during the round (its last will) and did not come back "
             "within devices.grace (%g s)", v->devs[s->dev].id, v->cfg->devices_grace);
    drop(v, s, why);
  }
}

static void on_status(serve *v, const char *id, const char *text) {
  fg_device_status st;
  if (fg_device_status_parse(text, &st) != FG_OK) {
    say(v, "device %s: unreadable status ignored: %s", id, fg_last_error());
    return;
  }
  int dev = find_device(v, id);
  if (dev < 0 && !st.online) return;
  if (dev < 0 && add_device(v, id, &dev) != FG_OK) {
    say(v, "device %s ignored: %s", id, fg_last_error());
    return;
  }
  device *d = &v->devs[dev];
  int was_online = d->st.online;
  d->st = st;
  if (!st.online) {
    if (was_online) say(v, "device %s (client %d) is offline", id, d->client);
    lose_slots_of(v, dev);
    return;
  }
  if (st.config_hash != v->config_hash) {
    say(v, "device %s runs another configuration (hash %016" PRIx64 ", the server's %016" PRIx64 "): ignored", id,
        st.config_hash, v->config_hash);
    return;
  }
  int c = claim_client(v, dev);
  if (c < 0) {
    say(v, "device %s: no client is left for it (client %d asked, %d clients): ignored", id, st.client,
        v->cfg->clients);
    return;
  }
  d->client = c;
  v->client_dev[c] = dev;
  if (!was_online)
    say(v, "device %s is online: client %d, %s, budget %" PRIu64 " bytes, %" PRId64 " samples", id, c, st.backend,
        st.budget, st.samples);
  found_device(v, dev);
}

/* ---- results ------------------------------------------------------------------------------ */

static void spool_path(const serve *v, int round, int slot, char *out, size_t cap) {
  snprintf(out, cap, "%s/round%d-slot%d.safetensors", v->spool, round + 1, slot);
}

/* Where slot s's result is assembled, chunk by chunk, before it is checked. */
static void partial_path(const serve *v, const slot *s, char *out, size_t cap) {
  snprintf(out, cap, "%s/round%d-slot%d.partial", v->spool, s->job.round + 1, s->job.slot);
}

/* Whether a complete result message of slot s is well-formed and answers its job. */
static fg_status check_result(serve *v, slot *s, const unsigned char *bytes, size_t len) {
  float *state = malloc((size_t)(s->numel > 0 ? s->numel : 1) * sizeof *state);
  fg_msg m;
  fg_status st = state ? fg_msg_decode(bytes, len, &m, state, NULL, s->numel)
                       : FG_FAIL(FG_ERR_OOM, "out of memory for a result of %lld floats", (long long)s->numel);
  free(state);
  if (st == FG_OK && m.kind != FG_MSG_RESULT) st = FG_FAIL(FG_ERR_FORMAT, "a job where a result was due");
  if (st == FG_OK && (strcmp(m.run, v->run) != 0 || m.config_hash != v->config_hash))
    st = FG_FAIL(FG_ERR_FORMAT, "it belongs to run '%.60s' (configuration %016" PRIx64 ")", m.run, m.config_hash);
  if (st == FG_OK && (m.job.method != s->job.method || m.job.round != s->job.round || m.job.slot != s->job.slot ||
                      m.job.client != s->job.client || m.job.level != s->job.level || m.job.seed != s->job.seed))
    st = FG_FAIL(FG_ERR_FORMAT, "it answers another job (client %d, level %d)", m.job.client, m.job.level);
  return st;
}

/* Checks the complete result message of slot s (assembled in its partial file) and makes it the
 * slot's spooled result. */
static void finish_result(serve *v, slot *s) {
  unsigned char *bytes = NULL;
  size_t len = 0;
  fg_status st = fg_assembly_finish_file(&s->a);
  if (st == FG_OK) st = fg_read_file(s->a.path, (size_t)1 << 34, &bytes, &len);
  if (st == FG_OK) st = check_result(v, s, bytes, len);
  free(bytes);
  char path[4200];
  spool_path(v, s->job.round, s->job.slot, path, sizeof path);
  if (st == FG_OK && rename(s->a.path, path) != 0)
    st = FG_FAIL(FG_ERR_IO, "cannot rename %s to %s: %s", s->a.path, path, strerror(errno));
  if (st == FG_OK) st = fg_sync_dir(v->spool);
  if (st == FG_OK) {
    s->state = SLOT_DONE;
    fg_killpoint("serve_spool");
    return;
  }
  unlink(s->a.path);
  s->state = st == FG_ERR_FORMAT ? SLOT_REFUSED : SLOT_DROPPED;
  snprintf(s->why, sizeof s->why, "%s result refused: %.170s", st == FG_ERR_FORMAT ? "malformed" : "unusable",
           fg_last_error());
  say(v, "round %d, slot %d (device %s): %s", s->job.round + 1, s->job.slot, v->devs[s->dev].id, s->why);
}

static void on_result_chunk(serve *v, const char *id, const unsigned char *chunk, size_t len) {
  v->received += len;
  int dev = find_device(v, id);
  fg_chunk_head h;
  fg_msg_kind kind;
  int round = -1, slot_no = -1;
  if (dev < 0) {
    say(v, "a result chunk from unknown device %s ignored", id);
    return;
  }
  /* A chunk whose fields disagree (e.g. truncated) still names its transfer when its header came. */
  char head_error[WHY_CAP] = "";
  if (fg_chunk_read_head(chunk, len, &h) != FG_OK) snprintf(head_error, sizeof head_error, "%s", fg_last_error());
  if (fg_transfer_parse(h.transfer, &kind, &round, &slot_no) != FG_OK || kind != FG_MSG_RESULT) {
    say(v, "device %s: a chunk refused: %s", id, head_error[0] ? head_error : "not a result");
    return;
  }
  if (round != v->round || slot_no < 0 || slot_no >= v->cfg->clients) {
    if (h.index == 0) say(v, "a late result for round %d, slot %d from device %s ignored", round + 1, slot_no, id);
    return;
  }
  slot *s = &v->slots[slot_no];
  if (s->state == SLOT_IDLE || s->dev != dev) {
    if (h.index == 0)
      say(v, "device %s sent a result for round %d, slot %d, which it does not hold: refused", id, round + 1, slot_no);
    return;
  }
  if (s->state != SLOT_PENDING) {
    if (h.index == 0) say(v, "a late result for round %d, slot %d from device %s ignored (%s)", round + 1, slot_no,
                          id, s->state == SLOT_DONE ? "already in" : "the slot was closed");
    return;
  }
  int complete = 0;
  if (head_error[0] || fg_assembly_add(&s->a, chunk, len, &complete) != FG_OK) {
    s->state = SLOT_REFUSED;
    snprintf(s->why, sizeof s->why, "malformed result refused: %.170s", head_error[0] ? head_error : fg_last_error());
    say(v, "round %d, slot %d (device %s): %s", round + 1, slot_no, id, s->why);
    fg_assembly_reset(&s->a);
    return;
  }
  if (!complete) return;
  finish_result(v, s);
  fg_assembly_reset(&s->a);
}

/* One message from the broker. */
static void handle(serve *v, const fg_mqtt_msg *m) {
  size_t n = strlen(v->prefix);
  if (strncmp(m->topic, v->prefix, n) != 0) return;
  const char *rest = m->topic + n;
  if (strncmp(rest, "status/", 7) == 0 && rest[7] && !strchr(rest + 7, '/')) {
    if (m->len > 0) on_status(v, rest + 7, (const char *)m->payload);
  } else if (strncmp(rest, "result/", 7) == 0 && rest[7] && !strchr(rest + 7, '/')) {
    on_result_chunk(v, rest + 7, m->payload, m->len);
  }
}

/* Handles what arrives for at most `seconds`. */
static fg_status pump(serve *v, double seconds) {
  double until = seconds_now() + seconds;
  for (;;) {
    double left = until - seconds_now();
    if (left <= 0) return FG_OK;
    fg_mqtt_msg *m = NULL;
    FG_TRY(fg_mqtt_next(v->link, left < 0.2 ? left : 0.2, &m));
    if (!m) continue;
    handle(v, m);
    fg_mqtt_msg_free(m);
  }
}

/* ---- the remote's operations -------------------------------------------------------------- */

static fg_status make_spool(serve *v, const char *dir) {
  int n = snprintf(v->spool, sizeof v->spool, "%s/spool", dir);
  if (n < 0 || (size_t)n >= sizeof v->spool) return FG_FAIL(FG_ERR_INVALID, "run folder %.200s: path too long", dir);
  if (mkdir(v->spool, 0755) != 0 && errno != EEXIST)
    return FG_FAIL(FG_ERR_IO, "cannot create %s: %s", v->spool, strerror(errno));
  return FG_OK;
}

/* The clients without an online device of the run's configuration, listed into out; how many. */
static int missing_clients(const serve *v, int clients, char *out, size_t cap) {
  int missing = 0;
  size_t len = 0;
  out[0] = '\0';
  for (int c = 0; c < clients; c++) {
    int d = v->client_dev[c];
    if (d >= 0 && v->devs[d].st.online && v->devs[d].client == c) continue;
    if (missing < 8 && len < cap) len += (size_t)snprintf(out + len, cap - len, "%s%d", missing ? ", " : "", c);
    missing++;
  }
  if (missing > 8 && len < cap) snprintf(out + len, cap - len, ", ...");
  return missing;
}

static fg_status begin(void *ctx, const char *dir, int method, int clients, int n_levels, int *level) {
  serve *v = ctx;
  FG_TRY(make_spool(v, dir));
  double t0 = seconds_now();
  char list[160];
  while (missing_clients(v, clients, list, sizeof list) > 0) {
    if (seconds_now() - t0 > v->cfg->devices_wait)
      return FG_FAIL(FG_ERR_IO, "after %g s (devices.wait), clients %s have no device online with this run's "
                     "configuration (run fedgap device for each)", v->cfg->devices_wait, list);
    FG_TRY(pump(v, 0.2));
  }
  for (int c = 0; c < clients; c++) {
    const device *d = &v->devs[v->client_dev[c]];
    if (method >= d->st.n_methods)
      return FG_FAIL(FG_ERR_FORMAT, "device %s reports %d methods, the configuration has more", d->id, d->st.n_methods);
    level[c] = d->st.fits[method];
    if (level[c] >= n_levels)
      return FG_FAIL(FG_ERR_FORMAT, "device %s reports level %d of %d", d->id, level[c], n_levels);
  }
  return FG_OK;
}

static fg_status publish_job(serve *v, const device *d, const fg_job *j, const float *sub, const float *linear,
                             int64_t numel) {
  fg_msg m;
  memset(&m, 0, sizeof m);
  m.kind = FG_MSG_JOB;
  snprintf(m.run, sizeof m.run, "%s", v->run);
  m.config_hash = v->config_hash;
  m.job = *j;
  m.numel = numel;
  unsigned char *bytes = NULL;
  size_t len = 0;
  FG_TRY(fg_msg_encode(&m, sub, linear, &bytes, &len));
  size_t cb = v->o.chunk_bytes ? v->o.chunk_bytes : DEFAULT_CHUNK;
  unsigned char *chunk = malloc(FG_CHUNK_HEAD_BYTES + cb);
  char topic[TOPIC_CAP];
  fg_status st = chunk ? fg_mqtt_topic(topic, sizeof topic, v->run, "job", d->id)
                       : FG_FAIL(FG_ERR_OOM, "serve: out of memory");
  uint64_t id = fg_transfer_id(FG_MSG_JOB, j->round, j->slot);
  for (uint32_t i = 0, n = fg_chunk_count(len, cb); st == FG_OK && i < n; i++) {
    size_t clen = 0;
    st = fg_chunk_make(id, bytes, len, cb, i, chunk, FG_CHUNK_HEAD_BYTES + cb, &clen);
    if (st == FG_OK) st = fg_mqtt_publish(v->link, topic, chunk, clen, 0);
    v->sent += clen;
  }
  free(chunk);
  free(bytes);
  return st;
}

/* A restarted server: the slot's result is already in the spool (it arrived before the stop). */
static int spooled(serve *v, slot *s) {
  char path[4200];
  spool_path(v, s->job.round, s->job.slot, path, sizeof path);
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (access(path, F_OK) != 0 || fg_read_file(path, (size_t)1 << 34, &bytes, &len) != FG_OK) return 0;
  float *state = malloc((size_t)(s->numel > 0 ? s->numel : 1) * sizeof *state);
  fg_msg m;
  int ok = state && fg_msg_decode(bytes, len, &m, state, NULL, s->numel) == FG_OK && m.kind == FG_MSG_RESULT &&
           m.config_hash == v->config_hash && memcmp(&m.job, &s->job, sizeof m.job) == 0;
  free(state);
  free(bytes);
  if (!ok) return 0;
  s->state = SLOT_DONE;
  say(v, "round %d, slot %d: its result is in the spool (from before a restart)", s->job.round + 1, s->job.slot);
  return 1;
}

static fg_status dispatch(void *ctx, const fg_job *j, const float *sub, const float *linear, int64_t numel) {
  serve *v = ctx;
  if (j->slot < 0 || j->slot >= v->cfg->clients || j->client < 0 || j->client >= v->cfg->clients)
    return FG_FAIL(FG_ERR_INTERNAL, "serve: job of slot %d, client %d", j->slot, j->client);
  if (j->round != v->round) {
    v->round = j->round;
    v->round_t0 = seconds_now();
  }
  slot *s = &v->slots[j->slot];
  s->job = *j;
  char partial[4200];
  partial_path(v, s, partial, sizeof partial);
  FG_TRY(fg_assembly_use_file(&s->a, partial));
  s->numel = numel;
  s->dev = v->client_dev[j->client];
  s->lost_at = 0;
  s->why[0] = '\0';
  if (spooled(v, s)) return FG_OK;
  if (s->dev < 0 || !v->devs[s->dev].st.online || v->devs[s->dev].client != j->client) {
    s->state = SLOT_DROPPED;
    snprintf(s->why, sizeof s->why, "the device of client %d was offline when the round began", j->client);
    return FG_OK;
  }
  s->state = SLOT_PENDING;
  return publish_job(v, &v->devs[s->dev], j, sub, linear, numel);
}

static int pending(const serve *v) {
  int n = 0;
  for (int i = 0; i < v->cfg->clients; i++) n += v->slots[i].state == SLOT_PENDING;
  return n;
}

static fg_status close_round(void *ctx, int round, int *answered) {
  serve *v = ctx;
  *answered = 0;
  if (round != v->round) { /* nothing was dispatched */
    v->round = round;
    v->round_t0 = seconds_now();
  }
  while (pending(v) > 0) {
    double left = v->round_t0 + v->cfg->devices_deadline - seconds_now();
    if (left <= 0) break;
    FG_TRY(pump(v, left < 0.2 ? left : 0.2));
    drop_lost(v);
  }
  for (int i = 0; i < v->cfg->clients; i++) {
    slot *s = &v->slots[i];
    if (s->state == SLOT_PENDING) {
      char why[WHY_CAP];
      snprintf(why, sizeof why, "device %.60s missed the round's deadline (devices.deadline %g s)",
               v->devs[s->dev].id, v->cfg->devices_deadline);
      drop(v, s, why);
    }
    *answered += s->state == SLOT_DONE;
  }
  return FG_OK;
}

static fg_status result(void *ctx, const fg_job *j, fg_result *res, float *trained, int64_t cap,
                        fg_remote_outcome *outcome, char *why, size_t why_cap) {
  serve *v = ctx;
  memset(res, 0, sizeof *res);
  if (j->slot < 0 || j->slot >= v->cfg->clients) return FG_FAIL(FG_ERR_INTERNAL, "serve: slot %d", j->slot);
  slot *s = &v->slots[j->slot];
  if (s->state != SLOT_DONE) {
    *outcome = s->state == SLOT_REFUSED ? FG_REMOTE_REFUSED : FG_REMOTE_DROPPED;
    snprintf(why, why_cap, "%s", s->why[0] ? s->why : "no result");
    return FG_OK;
  }
  char path[4200];
  spool_path(v, j->round, j->slot, path, sizeof path);
  unsigned char *bytes = NULL;
  size_t len = 0;
  fg_msg m;
  fg_status st = fg_read_file(path, (size_t)1 << 34, &bytes, &len);
  if (st == FG_OK) st = fg_msg_decode(bytes, len, &m, trained, NULL, cap);
  free(bytes);
  if (st != FG_OK) {
    *outcome = FG_REMOTE_REFUSED;
    snprintf(why, why_cap, "spooled result unreadable: %s", fg_last_error());
    return FG_OK;
  }
  *res = m.result;
  *outcome = FG_REMOTE_TRAINED;
  return FG_OK;
}

static void end_round(void *ctx, int round) {
  serve *v = ctx;
  say(v, "round %d: %zu bytes of jobs sent, %zu bytes of results received (chunks with their headers)", round + 1,
      v->sent, v->received);
  v->sent = v->received = 0;
  for (int i = 0; i < v->cfg->clients; i++) {
    slot *s = &v->slots[i];
    if (s->state == SLOT_DONE) {
      char path[4200];
      spool_path(v, round, i, path, sizeof path);
      unlink(path);
    }
    fg_assembly_reset(&s->a);
    s->state = SLOT_IDLE;
  }
  v->round = -1; /* what still arrives for it is late; a retry starts its clock again */
}

static void failed_round(void *ctx, int round, int answered, int needed, int attempt) {
  serve *v = ctx;
  say(v, "round %d failed (attempt %d): %d results, fewer than the %d needed (devices.min_results); it is tried "
      "again", round + 1, attempt, answered, needed);
}

/* ---- opening and closing ------------------------------------------------------------------ */

static void serve_free(serve *v) {
  if (!v) return;
  fg_mqtt_close(v->link);
  for (int i = 0; v->slots && i < v->cfg->clients; i++) fg_assembly_free(&v->slots[i].a);
  free(v->slots);
  free(v->client_dev);
  free(v->devs);
  free(v);
}

fg_status fg_mqtt_serve_open(const fg_mqtt_serve_options *o, const fg_config *cfg, fg_remote **out) {
  *out = NULL;
  serve *v = calloc(1, sizeof *v);
  if (!v) return FG_FAIL(FG_ERR_OOM, "serve: out of memory");
  v->o = *o;
  v->cfg = cfg;
  v->round = -1;
  snprintf(v->run, sizeof v->run, "%s", o->run);
  int clients = cfg->clients;
  v->client_dev = malloc((size_t)clients * sizeof *v->client_dev);
  v->slots = calloc((size_t)clients, sizeof *v->slots);
  fg_status st = v->client_dev && v->slots ? FG_OK : FG_FAIL(FG_ERR_OOM, "serve: out of memory");
  for (int c = 0; st == FG_OK && c < clients; c++) {
    v->client_dev[c] = -1;
    fg_assembly_init(&v->slots[c].a, (uint64_t)1 << 34);
  }
  char topic[TOPIC_CAP], id[TOPIC_CAP];
  if (st == FG_OK) st = fg_config_hash(cfg, &v->config_hash);
  if (st == FG_OK) st = fg_mqtt_topic(v->prefix, sizeof v->prefix - 1, v->run, "", NULL); /* "fg/<run>/" */
  if (st == FG_OK) {
    snprintf(id, sizeof id, "fedgap-serve-%s", v->run);
    fg_mqtt_options lo = o->link;
    lo.client_id = id;
    lo.will_topic = NULL;
    st = fg_mqtt_connect(&lo, &v->link);
  }
  if (st == FG_OK) st = fg_mqtt_topic(topic, sizeof topic, v->run, "status/+", NULL);
  if (st == FG_OK) st = fg_mqtt_subscribe(v->link, topic);
  if (st == FG_OK) st = fg_mqtt_topic(topic, sizeof topic, v->run, "result/+", NULL);
  if (st == FG_OK) st = fg_mqtt_subscribe(v->link, topic);
  if (st != FG_OK) {
    serve_free(v);
    return st;
  }
  v->remote.ctx = v;
  v->remote.begin = begin;
  v->remote.dispatch = dispatch;
  v->remote.close_round = close_round;
  v->remote.result = result;
  v->remote.end_round = end_round;
  v->remote.failed_round = failed_round;
  *out = &v->remote;
  return FG_OK;
}

void fg_mqtt_serve_close(fg_remote *r, fg_status status) {
  if (!r) return;
  serve *v = r->ctx;
  char topic[TOPIC_CAP], text[64];
  snprintf(text, sizeof text, "%s", status == FG_OK ? "done" : "stopped");
  if (fg_mqtt_topic(topic, sizeof topic, v->run, "end", NULL) == FG_OK &&
      fg_mqtt_publish(v->link, topic, text, strlen(text), 0) == FG_OK)
    fg_mqtt_flush(v->link, 10);
  serve_free(v);
}
