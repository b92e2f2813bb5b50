/* libmosquitto behind a connection with an inbox, waited on with timeouts. */
#include "mqtt/mqtt_link.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>

enum { KEEPALIVE = 20, MAX_FILTERS = 8 };

struct fg_mqtt_link {
  struct mosquitto *m;
  pthread_mutex_t lock;
  pthread_cond_t changed;
  int connack;       /* -1 until the broker answered the first connection; then its code */
  int connected;
  int closed_early;  /* the connection closed before the broker accepted it */
  int unacked;       /* QoS 1 messages published and not yet acknowledged */
  char *filters[MAX_FILTERS];
  int n_filters;
  fg_mqtt_msg *head, *tail;
  char *birth_topic, *birth;  /* published retained on every (re)connect; NULL: none */
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static void lib_init(void) { mosquitto_lib_init(); }

fg_status fg_mqtt_url_parse(const char *url, int *tls, char *host, size_t host_cap, int *port) {
  const char *rest = NULL;
  if (strncmp(url, "mqtt://", 7) == 0) {
    *tls = 0;
    rest = url + 7;
    *port = 1883;
  } else if (strncmp(url, "mqtts://", 8) == 0) {
    *tls = 1;
    rest = url + 8;
    *port = 8883;
  } else {
    return FG_FAIL(FG_ERR_INVALID, "broker '%.200s' is not a URL mqtt://HOST[:PORT] or mqtts://HOST[:PORT]", url);
  }
  size_t n = strcspn(rest, ":/");
  if (n == 0 || n >= host_cap) return FG_FAIL(FG_ERR_INVALID, "broker '%.200s' names no host", url);
  memcpy(host, rest, n);
  host[n] = '\0';
  rest += n;
  if (*rest == ':') {
    char *end = NULL;
    long p = strtol(rest + 1, &end, 10);
    if (end == rest + 1 || (*end && strcmp(end, "/") != 0) || p < 1 || p > 65535)
      return FG_FAIL(FG_ERR_INVALID, "broker '%.200s': the port is not a number in 1..65535", url);
    *port = (int)p;
  } else if (*rest && strcmp(rest, "/") != 0) {
    return FG_FAIL(FG_ERR_INVALID, "broker '%.200s': unexpected '%.40s' after the host", url, rest);
  }
  return FG_OK;
}

/* ---- callbacks (the network thread) ------------------------------------------------------- */

static void on_connect(struct mosquitto *m, void *obj, int rc) {
  fg_mqtt_link *l = obj;
  pthread_mutex_lock(&l->lock);
  l->connack = rc;
  l->connected = rc == 0;
  if (rc == 0)
    for (int i = 0; i < l->n_filters; i++) mosquitto_subscribe(m, NULL, l->filters[i], 1);
  if (rc == 0 && l->birth && ++l->unacked) mosquitto_publish(m, NULL, l->birth_topic, (int)strlen(l->birth), l->birth, 1, true);
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->lock);
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc) {
  (void)m;
  (void)rc;
  fg_mqtt_link *l = obj;
  pthread_mutex_lock(&l->lock);
  if (l->connack < 0) l->closed_early = 1;
  l->connected = 0;
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid) {
  (void)m;
  (void)mid;
  fg_mqtt_link *l = obj;
  pthread_mutex_lock(&l->lock);
  if (l->unacked > 0) l->unacked--;
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->lock);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg) {
  (void)m;
  fg_mqtt_link *l = obj;
  fg_mqtt_msg *e = calloc(1, sizeof *e);
  if (!e) return; /* QoS 1: dropped here means lost; the caller's deadline covers it */
  e->topic = strdup(msg->topic);
  e->len = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
  e->payload = malloc(e->len + 1);
  if (!e->topic || !e->payload) {
    fg_mqtt_msg_free(e);
    return;
  }
  if (e->len) memcpy(e->payload, msg->payload, e->len);
  e->payload[e->len] = '\0';
  pthread_mutex_lock(&l->lock);
  if (l->tail) l->tail->next = e;
  else l->head = e;
  l->tail = e;
  pthread_cond_broadcast(&l->changed);
  pthread_mutex_unlock(&l->lock);
}

/* ---- waiting ------------------------------------------------------------------------------ */

static struct timespec deadline_after(double seconds) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (seconds < 0) seconds = 0;
  if (seconds > 1e7) seconds = 1e7;
  time_t whole = (time_t)seconds;
  ts.tv_sec += whole;
  ts.tv_nsec += (long)((seconds - (double)whole) * 1e9);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

/* Waits on `changed` (lock held) until `until`; returns 0 on timeout. */
static int wait_until(fg_mqtt_link *l, const struct timespec *until) {
  return pthread_cond_timedwait(&l->changed, &l->lock, until) != ETIMEDOUT;
}

/* ---- the connection ----------------------------------------------------------------------- */

static fg_status mosq_failed(int rc, const char *what, const char *url) {
  if (rc == MOSQ_ERR_ERRNO)
    return FG_FAIL(FG_ERR_IO, "broker %.200s: %s failed: %s", url, what, strerror(errno));
  return FG_FAIL(rc == MOSQ_ERR_NOMEM ? FG_ERR_OOM : FG_ERR_IO, "broker %.200s: %s failed: %s", url, what,
                 mosquitto_strerror(rc));
}

static fg_status set_up(fg_mqtt_link *l, const fg_mqtt_options *o, int tls) {
  mosquitto_connect_callback_set(l->m, on_connect);
  mosquitto_disconnect_callback_set(l->m, on_disconnect);
  mosquitto_publish_callback_set(l->m, on_publish);
  mosquitto_message_callback_set(l->m, on_message);
  mosquitto_reconnect_delay_set(l->m, 1, 8, true);
  int rc = mosquitto_int_option(l->m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
  if (rc == MOSQ_ERR_SUCCESS && o->will_topic)
    rc = mosquitto_will_set(l->m, o->will_topic, (int)strlen(o->will_payload ? o->will_payload : ""),
                            o->will_payload ? o->will_payload : "", 1, true);
  if (rc != MOSQ_ERR_SUCCESS) return mosq_failed(rc, "setting up the client", o->url);
  if (!tls) {
    if (o->ca || o->cert || o->key)
      return FG_FAIL(FG_ERR_INVALID, "broker %.200s is plain mqtt://: --ca, --cert and --key need mqtts://", o->url);
    return FG_OK;
  }
  if (!o->ca) return FG_FAIL(FG_ERR_INVALID, "broker %.200s is mqtts://: give the CA file (--ca)", o->url);
  if (!o->cert != !o->key) return FG_FAIL(FG_ERR_INVALID, "give both --cert and --key, or neither");
  rc = mosquitto_tls_set(l->m, o->ca, NULL, o->cert, o->key, NULL);
  if (rc != MOSQ_ERR_SUCCESS)
    return FG_FAIL(FG_ERR_IO, "TLS set-up with CA %.200s%s%.200s failed: %s (a file missing or unreadable?)", o->ca,
                   o->cert ? " and certificate " : "", o->cert ? o->cert : "", mosquitto_strerror(rc));
  return FG_OK;
}

/* Waits for the broker's answer to the connection. */
static fg_status await_connack(fg_mqtt_link *l, const fg_mqtt_options *o) {
  struct timespec until = deadline_after(o->connect_timeout > 0 ? o->connect_timeout : 30);
  pthread_mutex_lock(&l->lock);
  while (l->connack < 0 && !l->closed_early && wait_until(l, &until)) {
  }
  int connack = l->connack, early = l->closed_early;
  pthread_mutex_unlock(&l->lock);
  if (connack == 0) return FG_OK;
  if (connack > 0)
    return FG_FAIL(FG_ERR_IO, "broker %.200s refused the connection of '%.100s': %s", o->url, o->client_id,
                   mosquitto_connack_string(connack));
  if (early)
    return FG_FAIL(FG_ERR_IO, "broker %.200s closed the connection of '%.100s' before accepting it (a certificate "
                   "it does not trust, or none where it requires one)", o->url, o->client_id);
  return FG_FAIL(FG_ERR_IO, "broker %.200s did not accept the connection of '%.100s' within %g s", o->url,
                 o->client_id, o->connect_timeout > 0 ? o->connect_timeout : 30);
}

fg_status fg_mqtt_connect(const fg_mqtt_options *o, fg_mqtt_link **out) {
  *out = NULL;
  char host[256];
  int tls = 0, port = 0;
  FG_TRY(fg_mqtt_url_parse(o->url, &tls, host, sizeof host, &port));
  pthread_once(&lib_once, lib_init);
  fg_mqtt_link *l = calloc(1, sizeof *l);
  if (!l) return FG_FAIL(FG_ERR_OOM, "MQTT: out of memory");
  pthread_mutex_init(&l->lock, NULL);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&l->changed, &attr);
  pthread_condattr_destroy(&attr);
  l->connack = -1;
  l->m = mosquitto_new(o->client_id, false, l);
  if (!l->m) {
    fg_mqtt_close(l);
    return FG_FAIL(FG_ERR_INVALID, "MQTT: cannot make a client '%.100s' (an empty id?)", o->client_id);
  }
  fg_status s = set_up(l, o, tls);
  if (s == FG_OK) {
    int rc = mosquitto_connect(l->m, host, port, KEEPALIVE);
    if (rc == MOSQ_ERR_TLS)
      s = FG_FAIL(FG_ERR_IO, "broker %.200s: the TLS handshake failed (the broker's certificate is not signed by "
                  "the CA given, or it refused this client's certificate)", o->url);
    else if (rc != MOSQ_ERR_SUCCESS)
      s = mosq_failed(rc, "connecting", o->url);
  }
  if (s == FG_OK) {
    int rc = mosquitto_loop_start(l->m);
    if (rc != MOSQ_ERR_SUCCESS) s = mosq_failed(rc, "starting the network thread", o->url);
  }
  if (s == FG_OK) s = await_connack(l, o);
  if (s != FG_OK) {
    fg_mqtt_close(l);
    return s;
  }
  *out = l;
  return FG_OK;
}

fg_status fg_mqtt_subscribe(fg_mqtt_link *l, const char *filter) {
  pthread_mutex_lock(&l->lock);
  int room = l->n_filters < MAX_FILTERS;
  char *copy = room ? strdup(filter) : NULL;
  if (copy) l->filters[l->n_filters++] = copy;
  pthread_mutex_unlock(&l->lock);
  if (!copy) return FG_FAIL(room ? FG_ERR_OOM : FG_ERR_INVALID, "MQTT: cannot subscribe to %.200s", filter);
  int rc = mosquitto_subscribe(l->m, NULL, filter, 1);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) return mosq_failed(rc, "subscribing", filter);
  return FG_OK;
}

fg_status fg_mqtt_set_birth(fg_mqtt_link *l, const char *topic, const char *payload) {
  char *t = strdup(topic), *p = strdup(payload);
  if (!t || !p) {
    free(t);
    free(p);
    return FG_FAIL(FG_ERR_OOM, "MQTT: out of memory");
  }
  pthread_mutex_lock(&l->lock);
  free(l->birth_topic);
  free(l->birth);
  l->birth_topic = t;
  l->birth = p;
  pthread_mutex_unlock(&l->lock);
  return fg_mqtt_publish(l, topic, payload, strlen(payload), 1);
}

fg_status fg_mqtt_publish(fg_mqtt_link *l, const char *topic, const void *payload, size_t len, int retain) {
  if (len > 256u * 1024 * 1024) return FG_FAIL(FG_ERR_INVALID, "MQTT: a message of %zu bytes is too large", len);
  pthread_mutex_lock(&l->lock);
  l->unacked++;
  pthread_mutex_unlock(&l->lock);
  int rc = mosquitto_publish(l->m, NULL, topic, (int)len, payload, 1, retain != 0);
  pthread_mutex_lock(&l->lock);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) l->unacked--; /* NO_CONN: queued, sent on reconnect */
  pthread_mutex_unlock(&l->lock);
  if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) return mosq_failed(rc, "publishing", topic);
  return FG_OK;
}

fg_status fg_mqtt_flush(fg_mqtt_link *l, double seconds) {
  struct timespec until = deadline_after(seconds);
  pthread_mutex_lock(&l->lock);
  while (l->unacked > 0 && wait_until(l, &until)) {
  }
  int left = l->unacked;
  pthread_mutex_unlock(&l->lock);
  if (left > 0)
    return FG_FAIL(FG_ERR_IO, "MQTT: %d messages not acknowledged by the broker within %g s", left, seconds);
  return FG_OK;
}

fg_status fg_mqtt_next(fg_mqtt_link *l, double seconds, fg_mqtt_msg **msg) {
  *msg = NULL;
  struct timespec until = deadline_after(seconds);
  pthread_mutex_lock(&l->lock);
  while (!l->head && wait_until(l, &until)) {
  }
  fg_mqtt_msg *e = l->head;
  if (e) {
    l->head = e->next;
    if (!l->head) l->tail = NULL;
    e->next = NULL;
  }
  pthread_mutex_unlock(&l->lock);
  *msg = e;
  return FG_OK;
}

void fg_mqtt_msg_free(fg_mqtt_msg *m) {
  if (!m) return;
  free(m->topic);
  free(m->payload);
  free(m);
}

void fg_mqtt_close(fg_mqtt_link *l) {
  if (!l) return;
  if (l->m) {
    mosquitto_disconnect(l->m);
    mosquitto_loop_stop(l->m, false);
    mosquitto_destroy(l->m);
  }
  for (int i = 0; i < l->n_filters; i++) free(l->filters[i]);
  free(l->birth_topic);
  free(l->birth);
  for (fg_mqtt_msg *e = l->head; e;) {
    fg_mqtt_msg *next = e->next;
    fg_mqtt_msg_free(e);
    e = next;
  }
  pthread_cond_destroy(&l->changed);
  pthread_mutex_destroy(&l->lock);
  free(l);
}
