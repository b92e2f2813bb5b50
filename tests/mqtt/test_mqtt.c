/* Federations of real devices over MQTT on loopback (labels mqtt, slow; built with the MQTT
 * transport): each test starts its own mosquitto broker on 127.0.0.1 at a free port, then
 * `fedgap serve` and one `fedgap device` process per client of a small configuration's partition
 * (a dry run: --client K), on a small Fashion-MNIST-format dataset the test writes.
 * - three devices give the in-process `fedgap run`'s metrics (timings and process peaks aside)
 *   and its checkpoint bit for bit, for a method whose clients train different levels (each
 *   device reports what its budget fits). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/run_cmd.h"
#include "common/run_compare.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"

enum { DEVICES = 3 };

/* A test's scratch folder and the paths in it, freed together. */
static struct {
  char *dir;
  char *paths[48];
  int n;
} scratch;

static void scratch_open(void) {
  memset(&scratch, 0, sizeof scratch);
  scratch.dir = fgt_mkdtemp();
}

/* scratch.dir/name, freed by scratch_close. */
static const char *at(const char *name) {
  cr_assert_lt(scratch.n, 48);
  return scratch.paths[scratch.n++] = fgt_join(scratch.dir, name);
}

static void scratch_close(void) {
  for (int i = 0; i < scratch.n; i++) free(scratch.paths[i]);
  fgt_rmtree(scratch.dir);
  free(scratch.dir);
  memset(&scratch, 0, sizeof scratch);
}

static void write_text(const char *path, const char *text) { FGT_OK(fg_write_file_atomic(path, text, strlen(text))); }

/* ---- the broker --------------------------------------------------------------------------- */

static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  cr_assert_geq(fd, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  socklen_t len = sizeof a;
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

static int port_open(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return ok;
}

static void nap(double seconds) {
  struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  nanosleep(&ts, NULL);
}

typedef struct broker {
  int pid, port;
  char url[64];
} broker;

/* mosquitto with `extra` configuration lines on 127.0.0.1 at a free port. */
static broker start_broker(const char *extra) {
  const char *exe = getenv("FEDGAP_MOSQUITTO");
  cr_assert(exe && *exe, "FEDGAP_MOSQUITTO comes from ctest");
  broker b;
  b.port = free_port();
  char conf[2048];
  snprintf(conf, sizeof conf, "listener %d 127.0.0.1\npersistence false\nuser root\n%s", b.port,
           extra ? extra : "allow_anonymous true\n");
  const char *path = at("mosquitto.conf");
  write_text(path, conf);
  const char *argv[] = {exe, "-c", path, NULL};
  b.pid = fgt_spawn(argv, at("broker.out"), at("broker.err"));
  for (int i = 0; i < 100 && !port_open(b.port); i++) nap(0.05);
  cr_assert(port_open(b.port), "mosquitto did not listen on port %d", b.port);
  snprintf(b.url, sizeof b.url, "%s://127.0.0.1:%d", extra && strstr(extra, "certfile") ? "mqtts" : "mqtt", b.port);
  return b;
}

static void stop_broker(broker *b) {
  kill(b->pid, SIGTERM);
  fgt_wait(b->pid, 10);
}

/* ---- the federation ----------------------------------------------------------------------- */

/* Heterogeneous budgets: the three clients fit three different widths of HeteroFL. */
static const char *CONFIG =
    "name: loop\nseed: 5\nrounds: 3\n"
    "data: {dataset: fashion-mnist, dir: %s, partition: {kind: iid}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients:\n  count: 3\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.05, share: 0.34}\n      - {fraction: 0.6, share: 0.33}\n"
    "      - {fraction: 0.3, share: 0.33}\n"
    "sampling: {kind: uniform, per_round: 3}\n"
    "local: {epochs: 1, batch: 16}\n"
    "eval: {every: 1}\ncheckpoint: {every: 1}\n"
    "devices: {deadline: %g, wait: 60, min_results: 1}\n"
    "method: {name: heterofl}\n";

static const char *write_config(double deadline) {
  const char *data = at("data");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
  cr_assert_eq(system(cmd), 0);
  fgt_write_tiny_fmnist(data, 240, 80, 11);
  char text[2048];
  snprintf(text, sizeof text, CONFIG, data, deadline);
  const char *path = at("loop.yaml");
  write_text(path, text);
  return path;
}

/* `fedgap ARGS...` in the background, its output into scratch files named after `tag`. */
static int spawn_fedgap(const char *tag, const char *const *args) {
  const char *argv[40] = {getenv("FEDGAP_BINARY")};
  int n = 1;
  for (int i = 0; args[i] && n < 39; i++) argv[n++] = args[i];
  argv[n] = NULL;
  char out[64], err[64];
  snprintf(out, sizeof out, "%s.out", tag);
  snprintf(err, sizeof err, "%s.err", tag);
  return fgt_spawn(argv, at(out), at(err));
}

static int spawn_device(const broker *b, const char *config, int k) {
  char id[16], client[16], tag[16];
  snprintf(id, sizeof id, "dev%d", k);
  snprintf(client, sizeof client, "%d", k);
  snprintf(tag, sizeof tag, "dev%d", k);
  const char *args[] = {"device", "--broker", b->url, "--id", id, "--config", config, "--client", client,
                        "--threads", "1", NULL};
  return spawn_fedgap(tag, args);
}

static int spawn_serve(const broker *b, const char *config, const char *out) {
  const char *args[] = {"serve", config, "--broker", b->url, "--out", out, "--threads", "1", NULL};
  return spawn_fedgap("serve", args);
}

static char *scratch_text(const char *name) {
  char *path = fgt_join(scratch.dir, name), *text = fgt_read_text(path);
  free(path);
  return text ? text : calloc(1, 1);
}

/* The in-process run of the configuration into `out`. */
static void run_in_process(const char *config, const char *out) {
  const char *argv[] = {"", "run", config, "--out", out, "--threads", "1", NULL};
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 0, "fedgap run failed (%d): %s", r.status, r.err);
  fgt_run_free(&r);
}

Test(mqtt, three_loopback_devices_equal_the_in_process_run, .timeout = 900) {
  scratch_open();
  const char *config = write_config(300);
  const char *local = at("local"), *remote = at("remote");
  run_in_process(config, local);
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote);
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) dev[k] = spawn_device(&b, config, k);
  int rc = fgt_wait(serve, 600);
  char *err = scratch_text("serve.err");
  cr_assert_eq(rc, 0, "fedgap serve ended with %d: %s", rc, err);
  for (int k = 0; k < DEVICES; k++) {
    int drc = fgt_wait(dev[k], 60);
    char name[16];
    snprintf(name, sizeof name, "dev%d.err", k);
    char *derr = scratch_text(name);
    cr_assert_eq(drc, 0, "device %d ended with %d: %s", k, drc, derr);
    free(derr);
  }
  fgt_same_run_records(local, remote);
  char *a = fgt_join(local, "checkpoint.safetensors"), *c = fgt_join(remote, "checkpoint.safetensors");
  fgt_same_tensors(a, c);
  free(a);
  free(c);
  free(err);
  stop_broker(&b);
  scratch_close();
}
