/* fedgap serve CONFIG.yaml --broker URL [...] and fedgap device --broker URL --id NAME [...]: a
 * federation of real devices over an MQTT broker (mqtt/; README, "Real devices").
 * serve: the server as an MQTT client; it waits for every client's device, then runs the
 * experiment as `fedgap run` does (the same run folder, lines and last line) with every participant
 * trained on its device. device: one board; it trains the jobs the server sends it, as client
 * --client of the configuration's partition (a dry run of a federation on one machine), or without
 * --client on its own data (--data DIR: all of the dataset's training samples there, as one
 * client, with no budget but --budget), until the server ends the run. Both print events (a device online or
 * offline, a late or refused result) as lines on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/cli.h"
#include "fedgap_config.h"
#include "fl/config.h"
#include "fl/world.h"
#if FEDGAP_WITH_MQTT
#include "mqtt/mqtt_device.h"
#include "mqtt/mqtt_serve.h"

/* The options both commands share: the broker and TLS, the run's name, the chunk size. */
typedef struct broker_args {
  const char *url, *ca, *cert, *key, *run;
  int chunk_kib;
  fg_arg_list sets;
  int threads;
} broker_args;

enum { N_BROKER_ARGS = 8 };

static void broker_arg_table(broker_args *b, fg_arg out[N_BROKER_ARGS]) {
  fg_arg table[N_BROKER_ARGS] = {
      {"broker", FG_ARG_STRING, &b->url, "URL", "the MQTT broker: mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (TLS)", 0,
       -1, 1, 0},
      {"ca", FG_ARG_STRING, &b->ca, "FILE", "mqtts: the CA certificate the broker's certificate is checked against",
       0, -1, 0, 0},
      {"cert", FG_ARG_STRING, &b->cert, "FILE", "mqtts: this client's certificate (its identity on the broker)", 0, -1,
       0, 0},
      {"key", FG_ARG_STRING, &b->key, "FILE", "mqtts: this client's private key", 0, -1, 0, 0},
      {"run", FG_ARG_STRING, &b->run, "NAME", "the run's name on the broker (topics fg/NAME/...; default: the "
       "configuration's name)", 0, -1, 0, 0},
      {"chunk-kib", FG_ARG_INT, &b->chunk_kib, "KIB", "the size of a message's chunks in KiB (default 256)", 1, 65536,
       0, 0},
      {"set", FG_ARG_LIST, &b->sets, "KEY=VALUE", "override a configuration key (repeatable)", 0, -1, 0, 0},
      {"threads", FG_ARG_INT, &b->threads, "N", "CPU threads (default: the config's, else all cores)", 0, 1024, 0, 0},
  };
  memcpy(out, table, sizeof table);
}

/* The configuration file given first (not an option); NULL when there is none. */
static const char *take_config(int *argc, char ***argv) {
  if (*argc == 0 || strncmp((*argv)[0], "--", 2) == 0) return NULL;
  const char *path = (*argv)[0];
  (*argc)--;
  (*argv)++;
  return path;
}

static void log_line(void *ctx, const char *line) {
  fprintf(stderr, "fedgap %s: %s\n", (const char *)ctx, line);
  fflush(stderr);
}

static fg_mqtt_options link_options(const broker_args *b) {
  fg_mqtt_options o;
  memset(&o, 0, sizeof o);
  o.url = b->url;
  o.ca = b->ca;
  o.cert = b->cert;
  o.key = b->key;
  o.connect_timeout = 30;
  return o;
}

static int load(const fg_command *cmd, const char *path, fg_arg_list *sets, fg_config *cfg) {
  if (fg_config_load(path, sets->items, sets->n, cfg) == FG_OK) return FG_EXIT_OK;
  fprintf(stderr, "fedgap %s: %s\n", cmd->name, fg_last_error());
  return fg_last_status() == FG_ERR_CONFIG ? FG_EXIT_USAGE : FG_EXIT_FAILURE;
}

int fg_cmd_serve(int argc, char **argv) {
  broker_args b;
  memset(&b, 0, sizeof b);
  b.threads = -1;
  const char *out = NULL, *resume = NULL;
  fg_arg args[N_BROKER_ARGS + 2];
  broker_arg_table(&b, args);
  fg_arg extra[] = {
      {"out", FG_ARG_STRING, &out, "DIR", "run folder (default runs/<name>-<date>-<time>)", 0, -1, 0, 0},
      {"resume", FG_ARG_STRING, &resume, "DIR", "continue the run in DIR from its last checkpoint, taking the "
       "results of the interrupted round that are in its spool (CONFIG.yaml may be left out)", 0, -1, 0, 0},
  };
  memcpy(args + N_BROKER_ARGS, extra, sizeof extra);
  fg_command cmd = {"serve", "Serve a federation of devices over an MQTT broker (usage: fedgap serve CONFIG.yaml "
                    "--broker URL [options]): the experiment CONFIG.yaml describes, each client trained by the "
                    "fedgap device that holds it.", args, N_BROKER_ARGS + 2, NULL, 0};
  const char *config = take_config(&argc, &argv);
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  char own[4200];
  if (!config && resume) {
    snprintf(own, sizeof own, "%s/config.yaml", resume);
    config = own;
  }
  if (!config) return fg_usage_error(&cmd, "give the experiment file: fedgap serve CONFIG.yaml --broker URL");
  if (out && resume) return fg_usage_error(&cmd, "--out and --resume name the run folder twice; give one");
  fg_config cfg;
  rc = load(&cmd, config, &b.sets, &cfg);
  if (rc != FG_EXIT_OK) return rc;
  if (cfg.n_seeds > 0) {
    fg_config_free(&cfg);
    return fg_usage_error(&cmd, "one seed at a time: an experiment over several seeds (seeds: ...) is for fedgap run");
  }
  fg_mqtt_serve_options so;
  memset(&so, 0, sizeof so);
  so.link = link_options(&b);
  so.run = b.run ? b.run : cfg.name;
  so.chunk_bytes = (size_t)b.chunk_kib * 1024;
  so.log = log_line;
  so.log_ctx = "serve";
  fg_remote *remote = NULL;
  if (fg_mqtt_serve_open(&so, &cfg, &remote) != FG_OK) {
    rc = fg_runtime_error("serve");
  } else {
    rc = fg_cli_run_remote(&cfg, out, resume, b.threads, remote);
    fg_mqtt_serve_close(remote, rc == FG_EXIT_OK ? FG_OK : FG_ERR_IO);
  }
  fg_config_free(&cfg);
  return rc;
}

int fg_cmd_device(int argc, char **argv) {
  broker_args b;
  memset(&b, 0, sizeof b);
  b.threads = -1;
  const char *id = NULL, *config = NULL, *data = NULL, *device = NULL;
  int client = -1;
  uint64_t budget = 0;
  const char *spool = NULL;
  fg_arg args[N_BROKER_ARGS + 7];
  broker_arg_table(&b, args);
  fg_arg extra[] = {
      {"id", FG_ARG_STRING, &id, "NAME", "this device's name (with TLS: its certificate's common name)", 0, -1, 1, 0},
      {"config", FG_ARG_STRING, &config, "CONFIG.yaml", "the experiment (the server's)", 0, -1, 1, 0},
      {"client", FG_ARG_INT, &client, "K", "train as client K of the configuration's partition (a dry run on one "
       "machine; without it, the device trains on its own data, --data)", 0, 1e9, 0, 0},
      {"data", FG_ARG_STRING, &data, "DIR", "the directory of this device's dataset files (the override data.dir)", 0,
       -1, 0, 0},
      {"budget", FG_ARG_U64, &budget, "BYTES", "this device's memory budget (default: with --client, that client's "
       "in the configuration; with its own data, none)", 1, 1e18, 0, 0},
      {"device", FG_ARG_STRING, &device, "cpu|cuda[:N]", "where it trains (default cpu)", 0, -1, 0, 0},
      {"spool", FG_ARG_STRING, &spool, "DIR", "keep each result in DIR until the broker has it, so that the "
       "device started again sends it again (default: none)", 0, -1, 0, 0},
  };
  memcpy(args + N_BROKER_ARGS, extra, sizeof extra);
  fg_command cmd = {"device", "Take part in a federation over an MQTT broker as one device (usage: fedgap device "
                    "--broker URL --id NAME --config CONFIG.yaml [--client K | --data DIR] [options]).", args,
                    N_BROKER_ARGS + 7, NULL, 0};
  int help, rc = fg_args_parse(&cmd, argc, argv, &help);
  if (rc != FG_EXIT_OK || help) return rc;
  if (client < 0 && !data)
    return fg_usage_error(&cmd, "give this device's data (--data DIR), or the client of the partition it holds in a "
                          "dry run (--client K)");
  /* The server's configuration (its hash is the run's) before this device's own overrides. */
  fg_config server;
  rc = load(&cmd, config, &b.sets, &server);
  if (rc != FG_EXIT_OK) return rc;
  uint64_t hash = 0;
  fg_status hashed = fg_config_hash(&server, &hash);
  const int run_clients = server.clients;
  fg_config_free(&server);
  if (hashed != FG_OK) return fg_runtime_error("device");
  char data_set[4200], device_set[64];
  if (data) {
    snprintf(data_set, sizeof data_set, "data.dir=%s", data);
    if (b.sets.n < FG_ARG_LIST_CAP) b.sets.items[b.sets.n++] = data_set;
  }
  if (device) {
    fg_device parsed;
    rc = fg_cli_device(&cmd, device, &parsed);
    if (rc != FG_EXIT_OK) return rc;
    snprintf(device_set, sizeof device_set, "device=%s", device);
    if (b.sets.n < FG_ARG_LIST_CAP) b.sets.items[b.sets.n++] = device_set;
  }
  fg_config cfg;
  rc = load(&cmd, config, &b.sets, &cfg);
  if (rc != FG_EXIT_OK) return rc;
  if (client < 0) { /* its own data: one client holding every training sample, capped by --budget only */
    cfg.clients = 1;
    cfg.budgets.kind = FG_BUDGET_NONE;
    cfg.partition.kind = FG_PARTITION_IID;
    cfg.local_test = 0;
  }
  rc = fg_cli_start("device", b.threads >= 0 ? b.threads : cfg.threads, cfg.device);
  fg_world w;
  int opened = rc == FG_EXIT_OK && fg_world_open(&cfg, &w) == FG_OK;
  if (rc == FG_EXIT_OK && !opened) rc = fg_runtime_error("device");
  if (rc == FG_EXIT_OK) {
    char backend[32];
    fg_mqtt_device_options o;
    memset(&o, 0, sizeof o);
    o.link = link_options(&b);
    o.run = b.run ? b.run : cfg.name;
    o.id = id;
    o.client = client;
    o.config_hash = hash;
    o.run_clients = run_clients;
    o.budget = (size_t)budget;
    o.backend = fg_device_str(cfg.device, backend, sizeof backend);
    o.chunk_bytes = (size_t)b.chunk_kib * 1024;
    o.spool = spool;
    o.log = log_line;
    o.log_ctx = "device";
    int jobs = 0;
    if (fg_mqtt_device_run(&o, &w, &jobs) != FG_OK) rc = fg_runtime_error("device");
    else printf("jobs=%d\n", jobs);
  }
  if (opened) fg_world_close(&w);
  fg_config_free(&cfg);
  return rc;
}

#else

static int no_mqtt(const char *name) {
  fprintf(stderr, "fedgap %s: this build has no MQTT transport (configure with libmosquitto-dev and libssl-dev "
          "installed, or -DFEDGAP_MQTT=ON)\n", name);
  return FG_EXIT_FAILURE;
}

int fg_cmd_serve(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return no_mqtt("serve");
}

int fg_cmd_device(int argc, char **argv) {
  (void)argc;
  (void)argv;
  return no_mqtt("device");
}

#endif
