/* `fedgap device`: one device of a federation over an MQTT broker, the device's side of
 * mqtt/mqtt_serve.h.
 *
 * The device connects with a last will ("offline", retained, on fg/<run>/status/<id>), measures
 * for every method of the configuration the most capable level its budget fits on its own backend
 * (fg_device_trainer_fit), and announces itself with a retained "online" status carrying those
 * levels and its capabilities. Then it trains each job the server sends (fg/<run>/job/<id>, in
 * chunks) under its ledger cap, and sends the result back in chunks (fg/<run>/result/<id>), until
 * the server says the run is over (fg/<run>/end). A job of another run or configuration is answered
 * with a failed result naming the difference.
 *
 * Resuming: the status names the job the device holds (holds=ROUND,SLOT) from the moment it
 * arrives until its result is acknowledged by the broker, and is published again after every
 * reconnect, so that a server that saw the last will keeps the slot open. With a spool directory
 * the result is written there (atomically) before its first chunk is sent; a device started again
 * announces that it holds it and sends it again (the server assembles chunks it already has only
 * once). Owns: the connection and the method's trainer. */
#ifndef FG_MQTT_DEVICE_H
#define FG_MQTT_DEVICE_H

#include <stddef.h>

#include "fl/world.h"
#include "mqtt/mqtt_link.h"

typedef struct fg_mqtt_device_options {
  fg_mqtt_options link;  /* the broker; client_id and will: set here */
  const char *run;       /* the run's name on the broker */
  const char *id;        /* the device's name (its topics; with TLS, its certificate's identity) */
  int client;            /* the client of the world it trains as: a dry run on the configuration's
                            partition; -1: the device's own data, the world's only client, which
                            trains any client the server gives it */
  uint64_t config_hash;  /* the hash of the server's configuration (fg_config_hash): the world's
                            may differ in where the data lie and how they are split */
  int run_clients;       /* the clients of the server's configuration: with its own data, the
                            device trains the client the server gives it with that client's random
                            streams in a run of this many (the world has one client) */
  size_t budget;         /* bytes it trains under; 0: the world's budget of its client */
  const char *backend;   /* "cpu", "cuda:0", ...: what it announces */
  size_t chunk_bytes;    /* 0: 256 KiB */
  const char *spool;     /* a directory where a result waits until it is sent, so that a device
                            started again resends it (NULL: none) */
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
} fg_mqtt_device_options;

/* Runs the device on world w (with o->client -1: one client, its own data) until the server ends
 * the run; *jobs := the jobs it trained. */
fg_status fg_mqtt_device_run(const fg_mqtt_device_options *o, const fg_world *w, int *jobs);

#endif
