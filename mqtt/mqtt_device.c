/* The device's side of rounds over MQTT: announce, receive jobs, train, send results. */
#include "mqtt/mqtt_device.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/killpoint.h"
#include "engine/io/atomic_file.h"
#include "fedgap_config.h"
#include "fl/config.h"
#include "fl/partition.h"
#include "fl/server.h"
#include "mqtt/mqtt_wire.h"

enum { TOPIC_CAP = 256, DEFAULT_CHUNK = 256 * 1024 };

typedef struct device {
  const fg_mqtt_device_options *o;
  const fg_world *w;
  fg_mqtt_link *link;
  uint64_t config_hash;
  size_t budget;
  int64_t max_numel;         /* the largest level of any method */
  fg_device_status status;
  fg_device_trainer *trainer; /* of method `method` */
  int method;
  float *sent, *linear, *trained; /* [max_numel]: a job's sub-model and proximal linear part, the result */
  fg_assembly a;
  char job_topic[TOPIC_CAP], result_topic[TOPIC_CAP], status_topic[TOPIC_CAP], end_topic[TOPIC_CAP];
  char spool_path[4200];     /* "" without a spool directory */
  int jobs;
} device;

static void say(const device *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const device *d, const char *fmt, ...) {
  if (!d->o->log) return;
  char line[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  d->o->log(d->o->log_ctx, line);
}

/* The client of the device's world whose samples it trains. */
static int data_client(const device *d) { return d->o->client >= 0 ? d->o->client : 0; }

/* What fits here, per method, and the largest state a job may carry. */
static fg_status measure(device *d) {
  const fg_config *cfg = d->w->cfg;
  fg_device_status *st = &d->status;
  st->online = 1;
  snprintf(st->version, sizeof st->version, "%s", FEDGAP_VERSION);
  snprintf(st->backend, sizeof st->backend, "%s", d->o->backend ? d->o->backend : "cpu");
  st->budget = d->budget;
  st->samples = fg_partition_size(&d->w->partition, data_client(d));
  st->client = d->o->client;
  st->config_hash = d->config_hash;
  st->n_methods = cfg->n_methods;
  st->holds_round = st->holds_slot = -1;
  for (int m = 0; m < cfg->n_methods; m++) {
    fg_device_trainer *t = NULL;
    FG_TRY(fg_device_trainer_open(d->w, m, &t));
    st->fits[m] = fg_device_trainer_fit(t, d->budget);
    for (int l = 0; fg_device_trainer_numel(t, l) >= 0; l++)
      if (fg_device_trainer_numel(t, l) > d->max_numel) d->max_numel = fg_device_trainer_numel(t, l);
    fg_device_trainer_free(t);
  }
  d->sent = malloc((size_t)(d->max_numel > 0 ? d->max_numel : 1) * sizeof(float));
  d->trained = malloc((size_t)(d->max_numel > 0 ? d->max_numel : 1) * sizeof(float));
  d->linear = malloc((size_t)(d->max_numel > 0 ? d->max_numel : 1) * sizeof(float));
  if (!d->sent || !d->trained || !d->linear) return FG_FAIL(FG_ERR_OOM, "device: out of memory for %lld floats", (long long)d->max_numel);
  /* A message: the state, the job and result fields and the safetensors header, with room to spare. */
  fg_assembly_init(&d->a, (uint64_t)d->max_numel * sizeof(float) + (1u << 16));
  return FG_OK;
}

static fg_status topics(device *d) {
  const char *run = d->o->run, *id = d->o->id;
  FG_TRY(fg_mqtt_topic(d->job_topic, TOPIC_CAP, run, "job", id));
  FG_TRY(fg_mqtt_topic(d->result_topic, TOPIC_CAP, run, "result", id));
  FG_TRY(fg_mqtt_topic(d->status_topic, TOPIC_CAP, run, "status", id));
  return fg_mqtt_topic(d->end_topic, TOPIC_CAP, run, "end", NULL);
}

/* The status, now and after every reconnect, holding job (round, slot) (-1: none). */
static fg_status announce(device *d, int round, int slot) {
  char text[512];
  d->status.holds_round = round;
  d->status.holds_slot = slot;
  FG_TRY(fg_device_status_format(&d->status, text, sizeof text));
  return fg_mqtt_set_birth(d->link, d->status_topic, text);
}

/* ---- a job -------------------------------------------------------------------------------- */

/* Sends a result message in chunks and waits until the broker has every chunk; then the device
 * holds no job and its spooled copy goes. */
static fg_status send_message(device *d, const fg_msg *m, const unsigned char *bytes, size_t len) {
  size_t cb = d->o->chunk_bytes ? d->o->chunk_bytes : DEFAULT_CHUNK;
  unsigned char *chunk = malloc(FG_CHUNK_HEAD_BYTES + cb);
  fg_status st = chunk ? FG_OK : FG_FAIL(FG_ERR_OOM, "device: out of memory");
  uint64_t id = fg_transfer_id(FG_MSG_RESULT, m->job.round, m->job.slot);
  for (uint32_t i = 0, n = fg_chunk_count(len, cb); st == FG_OK && i < n; i++) {
    size_t clen = 0;
    st = fg_chunk_make(id, bytes, len, cb, i, chunk, FG_CHUNK_HEAD_BYTES + cb, &clen);
    if (st == FG_OK) st = fg_mqtt_publish(d->link, d->result_topic, chunk, clen, 0);
    fg_killpoint("device_chunk");
  }
  free(chunk);
  if (st == FG_OK) st = fg_mqtt_flush(d->link, 3600);
  if (st == FG_OK && d->spool_path[0]) remove(d->spool_path);
  return st == FG_OK ? announce(d, -1, -1) : st;
}

static fg_status send_result(device *d, const fg_msg *m) {
  unsigned char *bytes = NULL;
  size_t len = 0;
  FG_TRY(fg_msg_encode(m, d->trained, NULL, &bytes, &len));
  fg_status st = d->spool_path[0] ? fg_write_file_atomic(d->spool_path, bytes, len) : FG_OK;
  if (st == FG_OK) st = send_message(d, m, bytes, len);
  free(bytes);
  return st;
}

/* The first status: online, holding the job whose result its spool holds (a device started again),
 * which it then sends again; else holding none. */
static fg_status come_online(device *d) {
  unsigned char *bytes = NULL;
  size_t len = 0;
  if (!d->spool_path[0] || fg_read_file(d->spool_path, (size_t)1 << 34, &bytes, &len) != FG_OK)
    return announce(d, -1, -1);
  fg_msg m;
  fg_status st = fg_msg_decode(bytes, len, &m, d->trained, NULL, d->max_numel);
  if (st != FG_OK || m.kind != FG_MSG_RESULT || strcmp(m.run, d->o->run) != 0 || m.config_hash != d->config_hash) {
    say(d, "a spooled result of another run or unreadable, dropped: %s", st != FG_OK ? fg_last_error() : "");
    remove(d->spool_path);
    free(bytes);
    return announce(d, -1, -1);
  }
  say(d, "sending again the result of round %d, slot %d", m.job.round + 1, m.job.slot);
  st = announce(d, m.job.round, m.job.slot);
  if (st == FG_OK) st = send_message(d, &m, bytes, len);
  free(bytes);
  return st;
}

/* Trains the job `in` carries (its state in d->sent) into the result `out`. A job this device
 * cannot train is answered with the failure. */
static void train(device *d, const fg_msg *in, fg_msg *out) {
  memset(out, 0, sizeof *out);
  out->kind = FG_MSG_RESULT;
  snprintf(out->run, sizeof out->run, "%s", d->o->run);
  out->config_hash = d->config_hash;
  out->job = in->job;
  out->result.round = in->job.round;
  out->result.slot = in->job.slot;
  fg_status st = FG_OK;
  if (strcmp(in->run, d->o->run) != 0 || in->config_hash != d->config_hash)
    st = FG_FAIL(FG_ERR_CONFIG, "device %s holds run '%s' with configuration %016" PRIx64 ", the job is of run '%s' "
                 "with %016" PRIx64, d->o->id, d->o->run, d->config_hash, in->run, in->config_hash);
  else if (d->o->client >= 0 && in->job.client != d->o->client)
    st = FG_FAIL(FG_ERR_CONFIG, "device %s holds client %d, the job is for client %d", d->o->id, d->o->client,
                 in->job.client);
  if (st == FG_OK && (!d->trainer || d->method != in->job.method)) {
    fg_device_trainer_free(d->trainer);
    d->trainer = NULL;
    d->method = in->job.method;
    st = in->job.method >= 0 && in->job.method < d->w->cfg->n_methods
             ? fg_device_trainer_open(d->w, in->job.method, &d->trainer)
             : FG_FAIL(FG_ERR_CONFIG, "the job's method %d is not one of the configuration's", in->job.method);
  }
  if (st == FG_OK && fg_device_trainer_numel(d->trainer, in->job.level) != in->numel)
    st = FG_FAIL(FG_ERR_CONFIG, "the job sends %lld floats for level %d, which has %lld here", (long long)in->numel,
                 in->job.level, (long long)fg_device_trainer_numel(d->trainer, in->job.level));
  if (st == FG_OK)
    st = fg_device_trainer_train(d->trainer, &in->job, d->o->client >= 0 ? -1 : 0, d->o->run_clients, d->budget,
                                 d->sent, in->has_linear ? d->linear : NULL, d->trained, &out->result.rec);
  if (st != FG_OK) {
    out->result.status = st;
    snprintf(out->result.error, sizeof out->result.error, "%s", fg_last_error());
    memset(&out->result.rec, 0, sizeof out->result.rec);
    say(d, "round %d, slot %d: %s", in->job.round + 1, in->job.slot, out->result.error);
    return;
  }
  if (out->result.rec.status == FG_CLIENT_OK) out->numel = out->result.numel = in->numel;
  d->jobs++;
  say(d, "round %d, slot %d: trained client %d at level %d (%s), loss %.4f", in->job.round + 1, in->job.slot,
      in->job.client, in->job.level, fg_client_status_name(out->result.rec.status), out->result.rec.train_loss);
}

/* A chunk of a job; once the job is complete, it is trained and answered. */
static fg_status on_job_chunk(device *d, const unsigned char *chunk, size_t len) {
  fg_chunk_head h;
  if (fg_chunk_read_head(chunk, len, &h) != FG_OK) {
    say(d, "a job chunk refused: %s", fg_last_error());
    return FG_OK;
  }
  if (d->a.started && h.transfer != d->a.first.transfer) {
    fg_msg_kind kind, was_kind;
    int round = -1, slot = -1, was = -1;
    if (fg_transfer_parse(h.transfer, &kind, &round, &slot) != FG_OK || kind != FG_MSG_JOB ||
        (fg_transfer_parse(d->a.first.transfer, &was_kind, &was, &slot) == FG_OK && round < was)) {
      say(d, "a chunk of an earlier or unknown job ignored"); /* e.g. redelivered after a reconnect */
      return FG_OK;
    }
    fg_assembly_reset(&d->a); /* a newer job */
  }
  int complete = 0;
  if (fg_assembly_add(&d->a, chunk, len, &complete) != FG_OK) {
    say(d, "a job chunk refused: %s", fg_last_error());
    fg_assembly_reset(&d->a);
    return FG_OK;
  }
  if (!complete) return FG_OK;
  fg_msg in, out;
  fg_status st = fg_msg_decode(d->a.bytes, (size_t)d->a.first.total, &in, d->sent, d->linear, d->max_numel);
  fg_assembly_reset(&d->a);
  if (st != FG_OK || in.kind != FG_MSG_JOB) {
    say(d, "a job refused: %s", st != FG_OK ? fg_last_error() : "not a job");
    return FG_OK;
  }
  FG_TRY(announce(d, in.job.round, in.job.slot));
  train(d, &in, &out);
  return send_result(d, &out);
}

/* ---- the device's life -------------------------------------------------------------------- */

static fg_status serve_jobs(device *d) {
  for (;;) {
    fg_mqtt_msg *m = NULL;
    FG_TRY(fg_mqtt_next(d->link, 1.0, &m));
    if (!m) continue;
    fg_status st = FG_OK;
    int end = strcmp(m->topic, d->end_topic) == 0 && m->len > 0;
    if (!end && strcmp(m->topic, d->job_topic) == 0) st = on_job_chunk(d, m->payload, m->len);
    if (end) say(d, "the server ended the run (%s)", (const char *)m->payload);
    fg_mqtt_msg_free(m);
    if (st != FG_OK || end) return st;
  }
}

fg_status fg_mqtt_device_run(const fg_mqtt_device_options *o, const fg_world *w, int *jobs) {
  *jobs = 0;
  device d;
  memset(&d, 0, sizeof d);
  d.o = o;
  d.w = w;
  d.method = -1;
  if (o->client < -1 || o->client >= w->cfg->clients || (o->client < 0 && w->cfg->clients != 1))
    return FG_FAIL(FG_ERR_INVALID, "client %d is not one of the configuration's %d", o->client, w->cfg->clients);
  if (o->client < 0 && o->run_clients < 1)
    return FG_FAIL(FG_ERR_INVALID, "a device with its own data needs the run's client count (%d given)", o->run_clients);
  d.budget = o->budget ? o->budget : w->budgets[data_client(&d)];
  d.config_hash = o->config_hash;
  fg_status st = topics(&d);
  if (st == FG_OK && o->spool &&
      (size_t)snprintf(d.spool_path, sizeof d.spool_path, "%s/%s-%s.result", o->spool, o->run, o->id) >=
          sizeof d.spool_path)
    st = FG_FAIL(FG_ERR_INVALID, "spool directory %.200s: path too long", o->spool);
  if (st == FG_OK) st = measure(&d);
  if (st == FG_OK) {
    fg_mqtt_options lo = o->link;
    lo.client_id = o->id;
    lo.will_topic = d.status_topic;
    lo.will_payload = "offline";
    st = fg_mqtt_connect(&lo, &d.link);
  }
  if (st == FG_OK) st = fg_mqtt_subscribe(d.link, d.job_topic);
  if (st == FG_OK) st = fg_mqtt_subscribe(d.link, d.end_topic);
  if (st == FG_OK) st = come_online(&d);
  if (st == FG_OK && o->client >= 0)
    say(&d, "online as client %d of run %s, budget %zu bytes", o->client, o->run, d.budget);
  if (st == FG_OK && o->client < 0)
    say(&d, "online with its own %lld samples for run %s, budget %zu bytes", (long long)d.status.samples, o->run,
        d.budget);
  if (st == FG_OK) st = serve_jobs(&d);
  if (d.link) { /* a clean exit: say so, since the broker sends the will only when the link breaks */
    fg_device_status off = {0};
    char text[16];
    if (fg_device_status_format(&off, text, sizeof text) == FG_OK &&
        fg_mqtt_set_birth(d.link, d.status_topic, text) == FG_OK)
      fg_mqtt_flush(d.link, 10);
  }
  fg_mqtt_close(d.link);
  fg_device_trainer_free(d.trainer);
  fg_assembly_free(&d.a);
  free(d.sent);
  free(d.linear);
  free(d.trained);
  *jobs = d.jobs;
  return st;
}
