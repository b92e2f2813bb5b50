/* A connection to an MQTT broker (mosquitto) through libmosquitto: the only place that calls it.
 *
 * The broker is named by a URL, mqtt://HOST:PORT (plain TCP, default port 1883) or
 * mqtts://HOST:PORT (TLS, default port 8883; with a CA file, and a client certificate and key when
 * the broker asks for one). The session is persistent (clean session off): while the connection is
 * down the broker keeps the client's subscriptions and queues its QoS 1 messages, and libmosquitto
 * reconnects by itself and resends what was not acknowledged. Every message is published at QoS 1.
 * A network thread (mosquitto_loop_start) keeps the connection alive while the caller computes;
 * received messages wait in an inbox that fg_mqtt_next hands out in arrival order.
 * Owns: the mosquitto handle, its thread, the inbox and the messages it hands out until freed. */
#ifndef FG_MQTT_LINK_H
#define FG_MQTT_LINK_H

#include <stddef.h>

#include "engine/base/status.h"

typedef struct fg_mqtt_options {
  const char *url;        /* mqtt://HOST[:PORT] or mqtts://HOST[:PORT] */
  const char *client_id;  /* unique on the broker */
  const char *ca, *cert, *key; /* mqtts: the CA file; the client's certificate and key (may be NULL) */
  const char *will_topic; /* NULL: no last will */
  const char *will_payload;
  double connect_timeout; /* seconds to wait for the broker to accept the connection */
} fg_mqtt_options;

typedef struct fg_mqtt_msg {
  char *topic;
  unsigned char *payload;
  size_t len;
  struct fg_mqtt_msg *next;
} fg_mqtt_msg;

typedef struct fg_mqtt_link fg_mqtt_link;

/* Splits a broker URL. FG_ERR_INVALID naming the URL when it is not mqtt:// or mqtts:// with a
 * host and an optional port in 1..65535. */
fg_status fg_mqtt_url_parse(const char *url, int *tls, char *host, size_t host_cap, int *port);

/* Connects and waits until the broker accepted the connection (or refused it, or the timeout). A
 * refusal names the broker's reason (e.g. "not authorised") or the TLS failure. */
fg_status fg_mqtt_connect(const fg_mqtt_options *o, fg_mqtt_link **out);
/* Subscribes to a topic filter (again after every reconnect). */
fg_status fg_mqtt_subscribe(fg_mqtt_link *l, const char *filter);
/* Publishes `payload` retained on `topic` now and again after every reconnect (a device's
 * "online" status, which its last will replaced when the link broke); a later call replaces it. */
fg_status fg_mqtt_set_birth(fg_mqtt_link *l, const char *topic, const char *payload);
/* Publishes at QoS 1 (retain: the broker keeps it as the topic's last message). */
fg_status fg_mqtt_publish(fg_mqtt_link *l, const char *topic, const void *payload, size_t len, int retain);
/* Waits until every message published so far was acknowledged by the broker, at most `seconds`.
 * FG_ERR_IO when some were not. */
fg_status fg_mqtt_flush(fg_mqtt_link *l, double seconds);
/* The next received message, waiting at most `seconds`; *msg := NULL when none came. */
fg_status fg_mqtt_next(fg_mqtt_link *l, double seconds, fg_mqtt_msg **msg);
void fg_mqtt_msg_free(fg_mqtt_msg *m);
/* Disconnects cleanly (the broker does not send the last will) and frees. NULL is fine. */
void fg_mqtt_close(fg_mqtt_link *l);

#endif
