/* `fedgap serve`: the rounds of fl/remote.h over an MQTT broker, the server's side.
 *
 * The server is an MQTT client. It follows the devices' retained statuses (fg/<run>/status/+):
 * each device that is online with the run's configuration holds a client (the one it names, or in
 * a federation of devices with their own data the first client free), and reports per method the
 * level its budget fits. A job goes to fg/<run>/job/<device> in chunks (mqtt/mqtt_wire.h); results
 * come back on fg/<run>/result/<device>. A result is assembled chunk by chunk in the run folder
 * (spool/roundR-slotS.partial), checked once complete (every field; at most the floats its level
 * has) and renamed to the slot's spooled result, so the server holds a chunk of each result in
 * flight and one result while it checks it; it absorbs the spooled results in slot order once the
 * round closed (fl/server.c).
 *
 * At the end of each round it logs the bytes of the job chunks it sent and of the result chunks it
 * received.
 *
 * Failures: a device whose last will ("offline") arrives while it holds a job of the round, or that
 * has not answered by the deadline (devices.deadline), has its slot dropped with the reason; a
 * result that is malformed, truncated, oversized or for another job is refused with the reason
 * (recorded, never aggregated); chunks for an earlier round (late), for a slot the sender does not
 * hold, or from an unknown device are logged and ignored. A device that comes back online takes
 * part from the next round on. Owns: the connection, the device table and the round's slots. */
#ifndef FG_MQTT_SERVE_H
#define FG_MQTT_SERVE_H

#include "fl/config.h"
#include "fl/remote.h"
#include "mqtt/mqtt_link.h"

typedef struct fg_mqtt_serve_options {
  fg_mqtt_options link;     /* the broker; client_id, will: set here */
  const char *run;          /* the run's name on the broker (topics fg/<run>/...) */
  size_t chunk_bytes;       /* 0: 256 KiB */
  /* Events worth a line (a device online or offline, a late or refused result), or NULL. */
  void (*log)(void *ctx, const char *line);
  void *log_ctx;
} fg_mqtt_serve_options;

/* Connects to the broker for the run of configuration cfg (which must outlive the remote). */
fg_status fg_mqtt_serve_open(const fg_mqtt_serve_options *o, const fg_config *cfg, fg_remote **out);
/* Tells the devices the run is over (how: status), disconnects and frees. NULL is fine. */
void fg_mqtt_serve_close(fg_remote *r, fg_status status);

#endif
