/* Federations of real devices over MQTT on loopback (labels mqtt, slow; built with the MQTT
 * transport): each test starts its own mosquitto broker on 127.0.0.1 at a free port, then
 * `fedgap serve` and one `fedgap device` process per client of a small configuration's partition
 * (a dry run: --client K), on a small Fashion-MNIST-format dataset the test writes.
 * - three devices give the in-process `fedgap run`'s metrics (timings and process peaks aside)
 *   and its checkpoint bit for bit, for a method whose clients train different levels (each
 *   device reports what its budget fits);
 * - a device killed mid-round (SIGKILL at a training step) is recorded as dropped through its last
 *   will, the round completes with the others, and the device, started again, takes part later;
 * - devices with their own data (--data, no --client) each train theirs;
 * - a device stopped past the round's deadline is dropped; its late result is logged and ignored;
 *   a round left with fewer results than devices.min_results is tried again, each try recorded,
 *   then the run stops (or completes on a later try, which its record counts); a device whose job the broker drops past its queue cap (max_queued_bytes)
 *   is dropped at the deadline and the round completes with the others;
 * - a rogue device (this test, as an MQTT client) that answers with a NaN-carrying, an oversized, a
 *   truncated and a malformed result, and with a result for a slot it does not hold, has each
 *   refused with a record naming the problem, never aggregated, and the server runs to the end;
 * - over TLS with client certificates (configs/mosquitto/, scripts/make-certs.sh) the run is the
 *   in-process one; a device with no certificate or another CA's is refused; the ACL keeps a device
 *   from writing or reading another device's topics;
 * - a device whose connection is cut in the middle of sending a result (a proxy between it and the
 *   broker closes the link) reconnects and finishes the transfer;
 * - a device killed in the middle of sending a result and started again resends it from its spool,
 *   and a server killed mid-round and resumed (--resume) takes the spooled results: both reach the
 *   in-process run's numbers;
 * - DepthFL with FedDyn (each job carries its client's proximal linear term) on devices gives the
 *   in-process run's metrics, checkpoint and FedDyn state. */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/run_cmd.h"
#include "common/run_compare.h"
#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/io/atomic_file.h"
#include "fl/config.h"
#include "mqtt/mqtt_link.h"
#include "mqtt/mqtt_wire.h"
#include <cjson/cJSON.h>
#include <errno.h>

enum { DEVICES = 3 };
/* The queue-cap test: bytes the broker queues for a device, between the largest job's size and the
 * next level's; seconds of the round's deadline. */
enum { QUEUE_CAP = 10000, QUEUE_DEADLINE = 8 };

/* The run in `remote` has the records and the checkpoint of the in-process run in `local` (timings
 * aside), and its method state too when `method_state` is set. */
static void same_run(const char *local, const char *remote, int method_state) {
  fgt_same_run_records(local, remote);
  const char *files[] = {"checkpoint.safetensors", "method_state.safetensors"};
  for (int i = 0; i < 1 + (method_state != 0); i++) {
    char *a = fgt_join(local, files[i]), *c = fgt_join(remote, files[i]);
    fgt_same_tensors(a, c);
    free(a);
    free(c);
  }
}

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

/* The processes a test started, stopped after it whatever happened. */
static int started[16], n_started;

static void note_started(int pid) {
  if (n_started < 16) started[n_started++] = pid;
}

static void stop_all(void) {
  for (int i = 0; i < n_started; i++) {
    kill(started[i], SIGKILL);
    waitpid(started[i], NULL, 0);
  }
  n_started = 0;
}

/* A started process is no longer running (reaped): it is not stopped again. */
static void forget(int pid) {
  for (int i = 0; i < n_started; i++)
    if (started[i] == pid) started[i--] = started[--n_started];
}

/* fgt_wait on a started process. */
static int wait_started(int pid, double seconds) {
  int rc = fgt_wait(pid, seconds);
  forget(pid);
  return rc;
}

TestSuite(mqtt, .fini = stop_all);

/* mosquitto with `extra` configuration lines on 127.0.0.1 at a free port. */
static broker start_broker(const char *extra) {
  const char *exe = getenv("FEDGAP_MOSQUITTO");
  cr_assert(exe && *exe, "FEDGAP_MOSQUITTO comes from ctest");
  broker b;
  b.port = free_port();
  char conf[2048];
  snprintf(conf, sizeof conf, "listener %d 127.0.0.1\npersistence false\nuser root\n%s", b.port,
           extra ? extra : "allow_anonymous true\n");
  const char *path = fgt_at("mosquitto.conf");
  fgt_write_text(path, conf);
  const char *argv[] = {exe, "-c", path, NULL};
  b.pid = fgt_spawn(argv, fgt_at("broker.out"), fgt_at("broker.err"));
  note_started(b.pid);
  for (int i = 0; i < 100 && !port_open(b.port); i++) nap(0.05);
  cr_assert(port_open(b.port), "mosquitto did not listen on port %d", b.port);
  snprintf(b.url, sizeof b.url, "%s://127.0.0.1:%d", extra && strstr(extra, "certfile") ? "mqtts" : "mqtt", b.port);
  return b;
}

static void stop_broker(broker *b) {
  kill(b->pid, SIGTERM);
  wait_started(b->pid, 10);
}

/* ---- the federation ----------------------------------------------------------------------- */

/* Heterogeneous budgets: the three clients fit three different widths of HeteroFL. */
static const char *CONFIG =
    "name: loop\nseed: 5\nrounds: %d\n"
    "data: {dataset: fashion-mnist, dir: %s, partition: {kind: iid}}\n"
    "model: {arch: cnn, width: 4}\n"
    "clients:\n  count: 3\n  budgets:\n    kind: tiers\n    tiers:\n"
    "      - {fraction: 1.05, share: 0.34}\n      - {fraction: 0.6, share: 0.33}\n"
    "      - {fraction: 0.3, share: 0.33}\n"
    "sampling: {kind: uniform, per_round: 3}\n"
    "local: {epochs: %d, batch: 16}\n"
    "eval: {every: 1}\ncheckpoint: {every: 1}\n"
    "devices: {deadline: %g, wait: 60, min_results: 1}\n"
    "method: {name: heterofl}\n";

static const char *write_config_rounds(double deadline, int rounds, int epochs);
static const char *write_config(double deadline) { return write_config_rounds(deadline, 3, 1); }

static const char *write_config_rounds(double deadline, int rounds, int epochs) {
  const char *data = fgt_at("data");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
  cr_assert_eq(system(cmd), 0);
  fgt_write_tiny_fmnist(data, 240, 80, 11);
  char text[2048];
  snprintf(text, sizeof text, CONFIG, rounds, data, epochs, deadline);
  const char *path = fgt_at("loop.yaml");
  fgt_write_text(path, text);
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
  int pid = fgt_spawn(argv, fgt_at(out), fgt_at(err));
  note_started(pid);
  return pid;
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

/* fedgap serve of `config` into `out` on broker b, with the overrides `sets` ("key=value",
 * NULL-terminated; NULL for none). */
static int spawn_serve(const broker *b, const char *config, const char *out,
                       const char *const *sets) {
  const char *args[32] = {"serve", config, "--broker", b->url, "--out", out, "--threads", "1"};
  int n = 8;
  for (int i = 0; sets && sets[i] && n < 30; i++) {
    args[n++] = "--set";
    args[n++] = sets[i];
  }
  args[n] = NULL;
  return spawn_fedgap("serve", args);
}

static char *scratch_text(const char *name) {
  char *path = fgt_join(fgt_scratch_dir(), name);
  /* a process just spawned may not have created its log yet: read as empty until it has */
  char *text = access(path, F_OK) == 0 ? fgt_read_text(path) : NULL;
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
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *local = fgt_at("local"), *remote = fgt_at("remote");
  run_in_process(config, local);
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote, NULL);
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) dev[k] = spawn_device(&b, config, k);
  int rc = wait_started(serve, 600);
  char *err = scratch_text("serve.err");
  cr_assert_eq(rc, 0, "fedgap serve ended with %d: %s", rc, err);
  for (int k = 0; k < DEVICES; k++) {
    int drc = wait_started(dev[k], 60);
    char name[16];
    snprintf(name, sizeof name, "dev%d.err", k);
    char *derr = scratch_text(name);
    cr_assert_eq(drc, 0, "device %d ended with %d: %s", k, drc, derr);
    free(derr);
  }
  same_run(local, remote, 0);
  free(err);
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- reading a run's records -------------------------------------------------------------- */

/* Round `round` (1-based) of dir/metrics.jsonl, parsed (caller deletes). */
static cJSON *round_record(const char *dir, int round) {
  char *path = fgt_join(dir, "metrics.jsonl"), *text = fgt_read_text(path);
  cr_assert_not_null(text, "%s is missing", path);
  cJSON *found = NULL;
  for (char *line = strtok(text, "\n"); line && !found; line = strtok(NULL, "\n")) {
    cJSON *o = cJSON_Parse(line);
    cr_assert_not_null(o, "%s: a line is not JSON", path);
    if (cJSON_GetObjectItem(o, "round")->valueint == round) found = o;
    else cJSON_Delete(o);
  }
  cr_assert_not_null(found, "%s has no round %d", path, round);
  free(text);
  free(path);
  return found;
}

/* The record of client `id` in a round's record. */
static const cJSON *client_record(const cJSON *round, int id) {
  const cJSON *clients = cJSON_GetObjectItem(round, "clients");
  for (const cJSON *c = clients ? clients->child : NULL; c; c = c->next)
    if (cJSON_GetObjectItem(c, "id")->valueint == id) return c;
  cr_assert_fail("round %d has no client %d", cJSON_GetObjectItem(round, "round")->valueint, id);
  return NULL;
}

static const char *client_status(const cJSON *round, int id) {
  return cJSON_GetObjectItem(client_record(round, id), "status")->valuestring;
}

static const char *client_error(const cJSON *round, int id) {
  const cJSON *e = cJSON_GetObjectItem(client_record(round, id), "error");
  return e && cJSON_IsString(e) ? e->valuestring : "";
}

/* The round's count of participants with `status` ("trained", "dropped", ...). */
static int round_count(const cJSON *round, const char *status) {
  return cJSON_GetObjectItem(round, status)->valueint;
}

/* Waits until scratch file `name` holds `needle`, at most `seconds`. */
static int wait_for_text(const char *name, const char *needle, double seconds) {
  for (double t = 0; t < seconds; t += 0.05) {
    char *text = scratch_text(name);
    int found = strstr(text, needle) != NULL;
    free(text);
    if (found) return 1;
    nap(0.05);
  }
  return 0;
}

/* The server (spawn_serve) and the DEVICES devices of `config` (dev[k], client k), started
 * together; returns the server's pid once dev1 is online. */
static int start_federation(const broker *b, const char *config, const char *out,
                            const char *const *sets, int dev[DEVICES]) {
  const int serve = spawn_serve(b, config, out, sets);
  for (int k = 0; k < DEVICES; k++) dev[k] = spawn_device(b, config, k);
  cr_assert(wait_for_text("serve.err", "device dev1 is online", 120), "dev1 never came online");
  return serve;
}

static void serve_ok(int serve) {
  int rc = wait_started(serve, 600);
  char *err = scratch_text("serve.err");
  cr_assert_eq(rc, 0, "fedgap serve ended with %d: %s", rc, err);
  free(err);
}

/* ---- dropouts ----------------------------------------------------------------------------- */

Test(mqtt, a_device_killed_mid_round_is_dropped_and_rejoins, .timeout = 900) {
  fgt_scratch_open();
  /* Five steps an epoch, four epochs a round: its 30th step is in the middle of its second round. */
  const char *config = write_config_rounds(300, 8, 4);
  const char *remote = fgt_at("remote");
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote, NULL);
  int dev[DEVICES];
  dev[0] = spawn_device(&b, config, 0);
  dev[2] = spawn_device(&b, config, 2);
  const char *args[] = {"device", "--broker", b.url, "--id", "dev1", "--config", config, "--client", "1",
                        "--threads", "1", NULL};
  const char *argv[16] = {getenv("FEDGAP_BINARY")};
  for (int i = 0; args[i]; i++) argv[i + 1] = args[i];
  fgt_run_opts kill = {"train_step:30", 0};
  dev[1] = fgt_spawn_opts(argv, fgt_at("dev1-killed.out"), fgt_at("dev1-killed.err"), &kill);
  note_started(dev[1]);
  cr_assert_eq(wait_started(dev[1], 300), -1, "the device was to die of SIGKILL at its 30th training step");
  dev[1] = spawn_device(&b, config, 1);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);

  cJSON *r1 = round_record(remote, 1), *r2 = round_record(remote, 2), *last = round_record(remote, 8);
  cr_assert_str_eq(client_status(r1, 1), "ok");
  cr_assert_str_eq(client_status(r2, 1), "dropped");
  cr_assert(strstr(client_error(r2, 1), "last will") != NULL, "%s", client_error(r2, 1));
  cr_assert_eq(round_count(r2, "trained"), 2, "the round completes with the other two");
  cr_assert_str_eq(client_status(last, 1), "ok", "the device started again takes part in the last round");
  cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(last, "accuracy")));
  cJSON_Delete(r1);
  cJSON_Delete(r2);
  cJSON_Delete(last);
  stop_broker(&b);
  fgt_scratch_close();
}

Test(mqtt, a_device_past_the_deadline_is_dropped_and_its_late_result_ignored, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config_rounds(4, 3, 1);
  const char *remote = fgt_at("remote");
  broker b = start_broker(NULL);
  int dev[DEVICES];
  const int serve = start_federation(&b, config, remote, NULL, dev);
  kill(dev[1], SIGSTOP); /* it holds its first job past the deadline */
  cr_assert(wait_for_text("serve.err", "missed the round's deadline", 120), "no slot was dropped at the deadline");
  kill(dev[1], SIGCONT);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *err = scratch_text("serve.err");
  cr_assert(strstr(err, "a late result for round 1") != NULL, "the late result was not logged: %s", err);
  free(err);
  cJSON *r1 = round_record(remote, 1);
  cr_assert_str_eq(client_status(r1, 1), "dropped");
  cr_assert(strstr(client_error(r1, 1), "deadline") != NULL, "%s", client_error(r1, 1));
  cr_assert_eq(round_count(r1, "trained"), 2);
  cJSON_Delete(r1);
  stop_broker(&b);
  fgt_scratch_close();
}

Test(mqtt, a_round_short_of_results_is_tried_again_then_the_run_stops, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config_rounds(2, 3, 1);
  const char *remote = fgt_at("remote");
  broker b = start_broker(NULL);
  /* The devices section is the server's: the devices keep the file's. */
  const char *sets[] = {"devices.min_results=3", "devices.retries=1", NULL};
  int dev[DEVICES];
  const int serve = start_federation(&b, config, remote, sets, dev);
  kill(dev[1], SIGSTOP); /* it answers nothing: every try of round 1 has two results of the three needed */
  int rc = wait_started(serve, 300);
  char *err = scratch_text("serve.err");
  cr_assert_eq(rc, 1, "fedgap serve was to stop with status 1: %s", err);
  cr_assert(strstr(err, "round 1 failed (attempt 1): 2 results, fewer than the 3 needed") != NULL, "%s", err);
  cr_assert(strstr(fgt_last_line(err), "round 1 failed 2 times: 2 results of 3 participants") != NULL, "%s", err);
  free(err);
  /* Each try is recorded: the three participants, dev1's slot dropped at the deadline, the two
   * others trained; the first try retried (devices.retries 1), the second the last. */
  char *path = fgt_join(remote, "failed_rounds.jsonl"), *text = fgt_read_text(path);
  cr_assert_not_null(text, "%s is missing", path);
  int tries = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    cJSON *t = cJSON_Parse(line);
    cr_assert_not_null(t, "%s: a line is not JSON", path);
    tries++;
    cr_assert_eq(cJSON_GetObjectItem(t, "round")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(t, "attempt")->valueint, tries);
    cr_assert_eq(cJSON_GetObjectItem(t, "results")->valueint, DEVICES - 1);
    cr_assert_eq(cJSON_GetObjectItem(t, "needed")->valueint, 3, "devices.min_results as set");
    cr_assert_eq(cJSON_GetObjectItem(t, "n_clients")->valueint, DEVICES);
    cr_assert_eq(cJSON_IsTrue(cJSON_GetObjectItem(t, "retried")), tries == 1, "try %d", tries);
    cr_assert_eq(round_count(t, "trained"), DEVICES - 1);
    cr_assert_eq(round_count(t, "dropped"), 1);
    cr_assert_str_eq(client_status(t, 1), "dropped");
    cr_assert(strstr(client_error(t, 1), "device dev1 missed the round's deadline") != NULL, "%s", client_error(t, 1));
    cr_assert_str_eq(client_status(t, 0), "ok");
    cr_assert_str_eq(client_status(t, 2), "ok");
    cJSON_Delete(t);
  }
  cr_assert_eq(tries, 2, "one record per try (devices.retries 1)");
  free(text);
  free(path);
  path = fgt_join(remote, "metrics.jsonl");
  text = fgt_read_text(path);
  cr_assert(text && !*text, "the round never completed, so it has no record: %s", text ? text : "(missing)");
  free(text);
  free(path);
  kill(dev[1], SIGCONT);
  stop_broker(&b);
  fgt_scratch_close();
}

/* A round short of results on its first try and complete on its second: the try is recorded in
 * failed_rounds.jsonl and the round's record says one try failed; the later rounds have no key. */
Test(mqtt, a_round_complete_on_its_second_try_records_the_first, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config_rounds(4, 2, 1);
  const char *remote = fgt_at("remote");
  broker b = start_broker(NULL);
  const char *sets[] = {"devices.min_results=3", "devices.retries=1", NULL};
  int dev[DEVICES];
  const int serve = start_federation(&b, config, remote, sets, dev);
  kill(dev[1], SIGSTOP); /* the first try of round 1 closes with two results of the three needed */
  int failed = wait_for_text("serve.err", "round 1 failed (attempt 1)", 120);
  kill(dev[1], SIGCONT);
  cr_assert(failed, "the first try did not fail");
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *path = fgt_join(remote, "failed_rounds.jsonl"), *text = fgt_read_text(path);
  cr_assert_not_null(text, "%s is missing", path);
  char *nl = strchr(text, '\n');
  cr_assert(nl && nl[1] == '\0', "one try failed: %s", text);
  cJSON *t = cJSON_Parse(text);
  cr_assert_not_null(t);
  cr_assert_eq(cJSON_GetObjectItem(t, "round")->valueint, 1);
  cr_assert_eq(cJSON_GetObjectItem(t, "attempt")->valueint, 1);
  cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(t, "retried")));
  cr_assert_eq(cJSON_GetObjectItem(t, "results")->valueint, DEVICES - 1);
  cr_assert_str_eq(client_status(t, 1), "dropped");
  cJSON_Delete(t);
  free(text);
  free(path);
  cJSON *r1 = round_record(remote, 1), *r2 = round_record(remote, 2);
  cr_assert_eq(cJSON_GetObjectItem(r1, "failed_attempts")->valueint, 1);
  cr_assert_eq(round_count(r1, "trained"), DEVICES, "the second try has every result");
  cr_assert_null(cJSON_GetObjectItem(r2, "failed_attempts"), "round 2 completed on its first try");
  cJSON_Delete(r1);
  cJSON_Delete(r2);
  stop_broker(&b);
  fgt_scratch_close();
}

/* The broker's cap on what waits for a device (max_queued_bytes, configs/mosquitto/mosquitto.conf).
 * In this configuration's draw client 2 has the largest budget and trains the widest level: its job
 * is about 20 chunks of 1 KiB, client 0's 6 and client 1's 2. dev2 is stopped while its job is
 * published, one chunk in flight at a time, so the broker queues the rest and drops those past the
 * cap; dev2 never holds the whole job, is recorded dropped at the deadline, and the round completes
 * with the other two, whose jobs fit under the cap. */
Test(mqtt, a_job_over_the_brokers_queue_cap_is_dropped_and_the_round_completes, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config_rounds(QUEUE_DEADLINE, 1, 1);
  const char *remote = fgt_at("remote");
  char extra[256];
  snprintf(extra, sizeof extra,
           "allow_anonymous true\nlog_dest stderr\nlog_type all\nmax_inflight_messages 1\n"
           "max_queued_messages 1000000\nmax_queued_bytes %d\n", QUEUE_CAP);
  broker b = start_broker(extra);
  const char *args[] = {"serve", config, "--broker", b.url, "--out", remote, "--threads", "1", "--chunk-kib", "1", NULL};
  int serve = spawn_fedgap("serve", args);
  int dev[DEVICES];
  dev[2] = spawn_device(&b, config, 2);
  cr_assert(wait_for_text("serve.err", "device dev2 is online", 120), "dev2 never came online");
  kill(dev[2], SIGSTOP); /* the round begins once the other two are online */
  for (int k = 0; k < 2; k++) dev[k] = spawn_device(&b, config, k);
  int dropping = wait_for_text("broker.err", "Outgoing messages are being dropped for client dev2", 120);
  kill(dev[2], SIGCONT);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *log = scratch_text("broker.err");
  cr_assert(dropping, "the broker never dropped dev2's queued chunks: %s", log);
  cr_assert_null(strstr(log, "being dropped for client dev0"), "dev0's job fits under the cap");
  cr_assert_null(strstr(log, "being dropped for client dev1"), "dev1's job fits under the cap");
  free(log);
  cJSON *r1 = round_record(remote, 1);
  for (int c = 0; c < 2; c++)
    cr_assert_gt(cJSON_GetObjectItem(client_record(r1, c), "level")->valueint, 0, "client %d: a narrower level", c);
  cr_assert_eq(cJSON_GetObjectItem(client_record(r1, 2), "level")->valueint, 0, "client 2: the widest level");
  cr_assert_str_eq(client_status(r1, 2), "dropped");
  cr_assert(strstr(client_error(r1, 2), "device dev2 missed the round's deadline") != NULL, "%s", client_error(r1, 2));
  cr_assert_eq(round_count(r1, "trained"), DEVICES - 1, "the round completes with the other two");
  cJSON_Delete(r1);
  stop_broker(&b);
  fgt_scratch_close();
}

Test(mqtt, devices_with_their_own_data_train_it, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *remote = fgt_at("remote");
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote, NULL);
  const int sizes[DEVICES] = {90, 120, 150};
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) {
    char name[16], id[16], cmd[4200];
    snprintf(name, sizeof name, "own%d", k);
    snprintf(id, sizeof id, "board%d", k);
    const char *data = fgt_at(name);
    snprintf(cmd, sizeof cmd, "mkdir -p %s", data);
    cr_assert_eq(system(cmd), 0);
    fgt_write_tiny_fmnist(data, sizes[k], 20, 100 + (unsigned)k);
    const char *args[] = {"device", "--broker", b.url, "--id", id, "--config", config, "--data", data,
                          "--threads", "1", NULL};
    dev[k] = spawn_fedgap(id, args);
  }
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  for (int round = 1; round <= 3; round++) {
    cJSON *rec = round_record(remote, round);
    cr_assert_eq(round_count(rec, "trained"), DEVICES, "round %d: %s", round, cJSON_PrintUnformatted(rec));
    int seen[DEVICES] = {0};
    for (int c = 0; c < DEVICES; c++) {
      int samples = cJSON_GetObjectItem(client_record(rec, c), "samples")->valueint;
      for (int k = 0; k < DEVICES; k++) seen[k] += samples == sizes[k];
    }
    for (int k = 0; k < DEVICES; k++)
      cr_assert_eq(seen[k], 1, "round %d: the device with %d samples trained them once", round, sizes[k]);
    cJSON_Delete(rec);
  }
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- a rogue device ----------------------------------------------------------------------- */

/* What the rogue answers in each round (0-based). */
typedef enum rogue_answer { ROGUE_NAN = 0, ROGUE_OVERSIZED, ROGUE_TRUNCATED, ROGUE_MALFORMED, ROGUE_ANSWERS } rogue_answer;

typedef struct rogue {
  fg_mqtt_link *link;
  char job[128], result[128], other[128];
  uint64_t config_hash;
  fg_assembly a;
  int answered;
} rogue;

static void rogue_publish_chunks(rogue *r, const char *topic, uint64_t id, const unsigned char *msg, size_t len,
                                 size_t cut_last) {
  enum { CB = 4096 };
  unsigned char chunk[FG_CHUNK_HEAD_BYTES + CB];
  uint32_t n = fg_chunk_count(len, CB);
  for (uint32_t i = 0; i < n; i++) {
    size_t clen = 0;
    FGT_OK(fg_chunk_make(id, msg, len, CB, i, chunk, sizeof chunk, &clen));
    if (i + 1 == n) clen -= cut_last;
    FGT_OK(fg_mqtt_publish(r->link, topic, chunk, clen, 0));
  }
}

/* Answers a job as the round's kind of bad result. */
static void rogue_answer_job(rogue *r, const fg_msg *job, float *state) {
  rogue_answer kind = (rogue_answer)(job->job.round % ROGUE_ANSWERS);
  fg_msg m;
  memset(&m, 0, sizeof m);
  m.kind = FG_MSG_RESULT;
  snprintf(m.run, sizeof m.run, "%s", job->run);
  m.config_hash = r->config_hash;
  m.job = job->job;
  m.result.round = job->job.round;
  m.result.slot = job->job.slot;
  m.result.rec.id = job->job.client;
  m.result.rec.level = job->job.level;
  m.result.rec.status = FG_CLIENT_OK;
  m.result.rec.samples = 80;
  m.result.rec.train_loss = 1.0;
  m.numel = m.result.numel = job->numel + (kind == ROGUE_OVERSIZED ? 7 : 0);
  state[3] = kind == ROGUE_NAN ? NAN : state[3];
  unsigned char *bytes = NULL;
  size_t len = 0;
  FGT_OK(fg_msg_encode(&m, state, NULL, &bytes, &len));
  if (kind == ROGUE_MALFORMED)
    for (size_t i = 0; i < len; i++) bytes[i] = (unsigned char)(i * 7 + 3);
  uint64_t id = fg_transfer_id(FG_MSG_RESULT, job->job.round, job->job.slot);
  if (job->job.round == 0) /* first a result for a slot this device does not hold */
    rogue_publish_chunks(r, r->result, fg_transfer_id(FG_MSG_RESULT, 0, (job->job.slot + 1) % DEVICES), bytes, len, 0);
  rogue_publish_chunks(r, r->result, id, bytes, len, kind == ROGUE_TRUNCATED ? 10 : 0);
  free(bytes);
  r->answered++;
}

static void rogue_on_chunk(rogue *r, const unsigned char *chunk, size_t len) {
  int complete = 0;
  FGT_OK(fg_assembly_add(&r->a, chunk, len, &complete));
  if (!complete) return;
  enum { CAP = 1 << 20 };
  float *state = malloc(CAP * sizeof *state);
  fg_msg job;
  FGT_OK(fg_msg_decode(r->a.bytes, (size_t)r->a.first.total, &job, state, NULL, CAP - 8));
  fg_assembly_reset(&r->a);
  rogue_answer_job(r, &job, state);
  free(state);
}

Test(mqtt, malformed_nan_oversized_and_truncated_results_are_refused, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config_rounds(20, ROGUE_ANSWERS, 1);
  const char *remote = fgt_at("remote");
  fg_config cfg;
  FGT_OK(fg_config_load(config, NULL, 0, &cfg));
  rogue r;
  memset(&r, 0, sizeof r);
  FGT_OK(fg_config_hash(&cfg, &r.config_hash));
  fg_config_free(&cfg);
  broker b = start_broker(NULL);
  fg_mqtt_options o = {b.url, "rogue", NULL, NULL, NULL, "fg/loop/status/rogue", "offline", 10};
  FGT_OK(fg_mqtt_connect(&o, &r.link));
  FGT_OK(fg_mqtt_topic(r.job, sizeof r.job, "loop", "job", "rogue"));
  FGT_OK(fg_mqtt_topic(r.result, sizeof r.result, "loop", "result", "rogue"));
  FGT_OK(fg_mqtt_subscribe(r.link, r.job));
  fg_device_status st = {1, "0", "cpu", 0, 80, 2, r.config_hash, 1, {0}, -1, -1};
  char text[512];
  FGT_OK(fg_device_status_format(&st, text, sizeof text));
  FGT_OK(fg_mqtt_publish(r.link, "fg/loop/status/rogue", text, strlen(text), 1));
  fg_assembly_init(&r.a, 1 << 24);

  const char *args[] = {"serve", config, "--broker", b.url, "--out", remote, "--threads", "1", "--chunk-kib", "4",
                        NULL};
  int serve = spawn_fedgap("serve", args);
  int dev[2] = {spawn_device(&b, config, 0), spawn_device(&b, config, 1)};
  int status = 0, done = 0;
  for (double t = 0; t < 600 && !done; t += 0.1) {
    fg_mqtt_msg *m = NULL;
    FGT_OK(fg_mqtt_next(r.link, 0.1, &m));
    if (m && strcmp(m->topic, r.job) == 0) rogue_on_chunk(&r, m->payload, m->len);
    fg_mqtt_msg_free(m);
    done = waitpid(serve, &status, WNOHANG) == serve;
    if (done) forget(serve);
  }
  cr_assert(done, "fedgap serve did not end");
  char *err = scratch_text("serve.err");
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fedgap serve failed: %s", err);
  cr_assert(strstr(err, "which it does not hold: refused") != NULL, "no refusal of a foreign slot: %s", err);
  free(err);
  cr_assert_eq(r.answered, ROGUE_ANSWERS);
  for (int k = 0; k < 2; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  const char *expected[ROGUE_ANSWERS] = {"expected finite values", "oversized", "truncated", "message"};
  for (int round = 1; round <= ROGUE_ANSWERS; round++) {
    cJSON *rec = round_record(remote, round);
    cr_assert_str_eq(client_status(rec, 2), "rejected", "round %d", round);
    cr_assert(strstr(client_error(rec, 2), expected[round - 1]) != NULL, "round %d: %s", round, client_error(rec, 2));
    cr_assert_eq(round_count(rec, "trained"), 2, "round %d: the other two are aggregated", round);
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(rec, "test_loss")), "round %d: the global model stays finite", round);
    cJSON_Delete(rec);
  }
  fg_assembly_free(&r.a);
  fg_mqtt_close(r.link);
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- TLS, client certificates and the ACL ------------------------------------------------- */

/* scripts/make-certs.sh DIR ARGS... */
static void make_certs(const char *dir, const char *args) {
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "OPENSSL='%s' bash '%s/scripts/make-certs.sh' '%s' %s", getenv("FEDGAP_OPENSSL"),
           getenv("FEDGAP_SOURCE_DIR"), dir, args);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* text with every `from` replaced by `to` (malloc'd). */
static char *replace_all(const char *text, const char *from, const char *to) {
  size_t n = 0, lf = strlen(from), lt = strlen(to);
  for (const char *p = text; (p = strstr(p, from)) != NULL; p += lf) n++;
  char *out = malloc(strlen(text) + n * lt + 1), *o = out;
  for (const char *p = text;;) {
    const char *q = strstr(p, from);
    size_t k = q ? (size_t)(q - p) : strlen(p);
    memcpy(o, p, k);
    o += k;
    if (!q) break;
    memcpy(o, to, lt);
    o += lt;
    p = q + lf;
  }
  *o = '\0';
  return out;
}

/* The broker of configs/mosquitto/ (its mosquitto.conf and acl, the paths and port made the
 * test's) with certificates from scripts/make-certs.sh in scratch dir `certs`: a CA, the broker's
 * for 127.0.0.1, fedgap-server, the devices', an intruder's; and a second CA with its own dev0. */
static broker start_tls_broker(const char *certs) {
  make_certs(certs, "ca");
  make_certs(certs, "broker 127.0.0.1");
  make_certs(certs, "client fedgap-server dev0 dev1 dev2 intruder");
  char other[4200];
  snprintf(other, sizeof other, "%s/other", certs);
  make_certs(other, "ca");
  make_certs(other, "client dev0");
  char *src = fgt_join(getenv("FEDGAP_SOURCE_DIR"), "configs/mosquitto/mosquitto.conf");
  char *acl_src = fgt_join(getenv("FEDGAP_SOURCE_DIR"), "configs/mosquitto/acl");
  char *conf = fgt_read_text(src), *acl = fgt_read_text(acl_src);
  cr_assert(conf && acl, "configs/mosquitto is missing");
  char acl_path[4200], dir[4200];
  snprintf(acl_path, sizeof acl_path, "%s/acl", certs);
  fgt_write_text(acl_path, acl);
  snprintf(dir, sizeof dir, "%s/", certs);
  char *local = replace_all(conf, "/etc/mosquitto/fedgap/", dir);
  char *tail = strstr(local, "listener 8883\n");
  cr_assert_not_null(tail, "mosquitto.conf has no 'listener 8883' line");
  char *extra = malloc(strlen(local) + 64);
  snprintf(extra, strlen(local) + 64, "%.*s%s", (int)(tail - local), local, tail + strlen("listener 8883\n"));
  broker b = start_broker(extra);
  free(extra);
  free(local);
  free(conf);
  free(acl);
  free(src);
  free(acl_src);
  return b;
}

/* fedgap device over TLS as `id` with the certificate files of dir (NULL: none). */
static int spawn_tls_device(const broker *b, const char *config, int k, const char *dir, const char *id,
                            const char *tag) {
  char client[16], ca[4200], cert[4200], key[4200];
  snprintf(client, sizeof client, "%d", k);
  snprintf(ca, sizeof ca, "%s/ca.crt", fgt_scratch_dir());
  snprintf(cert, sizeof cert, "%s/%s.crt", dir ? dir : "", id);
  snprintf(key, sizeof key, "%s/%s.key", dir ? dir : "", id);
  const char *args[] = {"device", "--broker", b->url, "--id", id, "--config", config, "--client", client,
                        "--threads", "1", "--ca", ca, dir ? "--cert" : NULL, cert, "--key", key, NULL};
  return spawn_fedgap(tag, args);
}

Test(mqtt, tls_with_client_certificates_gives_the_in_process_run, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *local = fgt_at("local"), *remote = fgt_at("remote");
  run_in_process(config, local);
  broker b = start_tls_broker(fgt_scratch_dir());
  char ca[4200], cert[4200], key[4200];
  snprintf(ca, sizeof ca, "%s/ca.crt", fgt_scratch_dir());
  snprintf(cert, sizeof cert, "%s/fedgap-server.crt", fgt_scratch_dir());
  snprintf(key, sizeof key, "%s/fedgap-server.key", fgt_scratch_dir());
  const char *args[] = {"serve", config, "--broker", b.url, "--out", remote, "--threads", "1", "--ca", ca, "--cert",
                        cert, "--key", key, NULL};
  int serve = spawn_fedgap("serve", args);
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) {
    char id[16];
    snprintf(id, sizeof id, "dev%d", k);
    dev[k] = spawn_tls_device(&b, config, k, fgt_scratch_dir(), id, id);
  }
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  fgt_same_run_records(local, remote);
  stop_broker(&b);
  fgt_scratch_close();
}

/* A device that must be refused: it ends non-zero with one line naming the broker. */
static void refused_device(const broker *b, const char *config, const char *dir, const char *id, const char *why) {
  int pid = spawn_tls_device(b, config, 0, dir, id, "refused");
  int rc = wait_started(pid, 120);
  char *err = scratch_text("refused.err");
  cr_assert(rc > 0, "%s: the device was not refused (exit %d): %s", why, rc, err);
  cr_assert(strstr(err, "broker") != NULL, "%s: %s", why, err);
  cr_assert_eq(fgt_line_count(err), 1, "%s: one line expected: %s", why, err);
  free(err);
}

Test(mqtt, devices_without_a_valid_certificate_are_refused, .timeout = 600) {
  fgt_scratch_open();
  const char *config = write_config(300);
  broker b = start_tls_broker(fgt_scratch_dir());
  char other[4200];
  snprintf(other, sizeof other, "%s/other", fgt_scratch_dir());
  refused_device(&b, config, NULL, "dev0", "no certificate");
  refused_device(&b, config, other, "dev0", "a certificate of another CA");
  stop_broker(&b);
  fgt_scratch_close();
}

/* A client of the TLS broker with identity `name` (its certificate in fgt_scratch_dir()). */
static fg_mqtt_link *tls_client(const broker *b, const char *name) {
  char ca[4200], cert[4200], key[4200];
  snprintf(ca, sizeof ca, "%s/ca.crt", fgt_scratch_dir());
  snprintf(cert, sizeof cert, "%s/%s.crt", fgt_scratch_dir(), name);
  snprintf(key, sizeof key, "%s/%s.key", fgt_scratch_dir(), name);
  fg_mqtt_options o = {b->url, name, ca, cert, key, NULL, NULL, 20};
  fg_mqtt_link *l = NULL;
  FGT_OK(fg_mqtt_connect(&o, &l));
  return l;
}

/* The payloads `l` receives until one equals `last`, joined by '|' (malloc'd). */
static char *received_until(fg_mqtt_link *l, const char *last) {
  char *all = calloc(1, 1);
  for (double t = 0; t < 20; t += 0.1) {
    fg_mqtt_msg *m = NULL;
    FGT_OK(fg_mqtt_next(l, 0.1, &m));
    if (!m) continue;
    char *more = malloc(strlen(all) + m->len + strlen(m->topic) + 4);
    sprintf(more, "%s%s=%s|", all, m->topic, (const char *)m->payload);
    free(all);
    all = more;
    int done = strcmp((const char *)m->payload, last) == 0;
    fg_mqtt_msg_free(m);
    if (done) return all;
  }
  cr_assert_fail("'%s' never arrived; got: %s", last, all);
  return all;
}

Test(mqtt, the_acl_confines_each_device_to_its_own_topics, .timeout = 600) {
  fgt_scratch_open();
  broker b = start_tls_broker(fgt_scratch_dir());
  fg_mqtt_link *server = tls_client(&b, "fedgap-server"), *intruder = tls_client(&b, "intruder");
  FGT_OK(fg_mqtt_subscribe(server, "fg/#"));
  FGT_OK(fg_mqtt_subscribe(intruder, "fg/loop/job/dev0"));
  FGT_OK(fg_mqtt_subscribe(intruder, "fg/loop/job/intruder"));
  FGT_OK(fg_mqtt_subscribe(intruder, "fg/loop/end"));
  FGT_OK(fg_mqtt_flush(server, 10));
  nap(0.3); /* the subscriptions are in place */
  /* The intruder writes another device's status, results and jobs, then its own status. */
  const char *forged[] = {"fg/loop/status/dev0", "fg/loop/result/dev0", "fg/loop/job/dev0", "fg/loop/end"};
  for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++)
    FGT_OK(fg_mqtt_publish(intruder, forged[i], "forged", 6, 0));
  FGT_OK(fg_mqtt_publish(intruder, "fg/loop/status/intruder", "own", 3, 0));
  char *seen = received_until(server, "own");
  cr_assert(strstr(seen, "forged") == NULL, "the broker let another device's topics be written: %s", seen);
  free(seen);
  /* The server writes the intruder's job, dev0's job and the end: the intruder reads its own. */
  FGT_OK(fg_mqtt_publish(server, "fg/loop/job/dev0", "dev0's job", 10, 0));
  FGT_OK(fg_mqtt_publish(server, "fg/loop/job/intruder", "its job", 7, 0));
  FGT_OK(fg_mqtt_publish(server, "fg/loop/end", "done", 4, 0));
  seen = received_until(intruder, "done");
  cr_assert(strstr(seen, "dev0's job") == NULL, "the broker let another device's jobs be read: %s", seen);
  cr_assert(strstr(seen, "its job") != NULL, "%s", seen);
  free(seen);
  fg_mqtt_close(intruder);
  fg_mqtt_close(server);
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- resuming ----------------------------------------------------------------------------- */

Test(mqtt, a_device_killed_mid_upload_resends_from_its_spool, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *local = fgt_at("local"), *remote = fgt_at("remote"), *spool = fgt_at("spool");
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p %s", spool);
  cr_assert_eq(system(cmd), 0);
  run_in_process(config, local);
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote, NULL);
  int dev[DEVICES];
  /* Client 2 trains the full model: its result is 27 chunks of 1 KiB; the device dies after 10. */
  const char *args[] = {"device", "--broker", b.url, "--id", "dev2", "--config", config, "--client", "2",
                        "--threads", "1", "--chunk-kib", "1", "--spool", spool, NULL};
  const char *argv[24] = {getenv("FEDGAP_BINARY")};
  for (int i = 0; args[i]; i++) argv[i + 1] = args[i];
  fgt_run_opts kill = {"device_chunk:10", 0};
  dev[2] = fgt_spawn_opts(argv, fgt_at("dev2-killed.out"), fgt_at("dev2-killed.err"), &kill);
  note_started(dev[2]);
  dev[0] = spawn_device(&b, config, 0);
  dev[1] = spawn_device(&b, config, 1);
  cr_assert_eq(wait_started(dev[2], 300), -1, "the device was to die of SIGKILL at its tenth chunk");
  dev[2] = spawn_fedgap("dev2", args);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *derr = scratch_text("dev2.err"), *serr = scratch_text("serve.err");
  cr_assert(strstr(derr, "sending again the result of round 1") != NULL, "%s", derr);
  cr_assert(strstr(serr, "is back with its job of round 1") != NULL, "%s", serr);
  free(derr);
  free(serr);
  same_run(local, remote, 0);
  stop_broker(&b);
  fgt_scratch_close();
}

Test(mqtt, a_server_killed_mid_round_resumes_from_its_spool, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *local = fgt_at("local"), *remote = fgt_at("remote");
  run_in_process(config, local);
  broker b = start_broker(NULL);
  const char *args[] = {getenv("FEDGAP_BINARY"), "serve", config, "--broker", b.url, "--out", remote, "--threads",
                        "1", NULL};
  fgt_run_opts kill = {"serve_spool:5", 0}; /* round 2, after two of its three results */
  int serve = fgt_spawn_opts(args, fgt_at("serve-killed.out"), fgt_at("serve-killed.err"), &kill);
  note_started(serve);
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) dev[k] = spawn_device(&b, config, k);
  cr_assert_eq(wait_started(serve, 300), -1, "the server was to die of SIGKILL at its fifth spooled result");
  const char *again[] = {"serve", "--resume", remote, "--broker", b.url, "--threads", "1", NULL};
  serve = spawn_fedgap("serve", again);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *serr = scratch_text("serve.err");
  cr_assert(strstr(serr, "round 2, slot") != NULL && strstr(serr, "is in the spool") != NULL, "%s", serr);
  free(serr);
  same_run(local, remote, 0);
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- a link cut mid-upload ---------------------------------------------------------------- */

static int listen_on(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0) _exit(3);
  return fd;
}

static int connect_to(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) _exit(4);
  return fd;
}

/* A forked TCP proxy from `port` to the broker's: it forwards both ways, and closes the first
 * connection through which the client sends more than `cut` bytes (later ones are left alone). */
static int start_proxy(int port, int broker_port, long cut) {
  int pid = fork();
  cr_assert_geq(pid, 0);
  if (pid > 0) {
    note_started(pid);
    for (int i = 0; i < 100 && !port_open(port); i++) nap(0.05);
    return pid;
  }
  int lfd = listen_on(port), done = 0;
  for (;;) {
    int c = accept(lfd, NULL, NULL), s = connect_to(broker_port);
    long up = 0;
    for (;;) {
      struct pollfd p[2] = {{c, POLLIN, 0}, {s, POLLIN, 0}};
      if (poll(p, 2, -1) < 0) break;
      char buf[1024]; /* small reads: the cut lands inside a chunk */
      ssize_t k = 0;
      if (p[0].revents) {
        if ((k = read(c, buf, sizeof buf)) <= 0 || write(s, buf, (size_t)k) != k) break;
        up += k;
        if (!done && up > cut) {
          done = 1;
          break;
        }
      }
      if (p[1].revents && ((k = read(s, buf, sizeof buf)) <= 0 || write(c, buf, (size_t)k) != k)) break;
    }
    close(c);
    close(s);
  }
}

Test(mqtt, a_link_cut_mid_upload_resumes, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  const char *local = fgt_at("local"), *remote = fgt_at("remote");
  run_in_process(config, local);
  broker b = start_broker(NULL);
  int proxy_port = free_port();
  /* Client 2 trains the full model: its first result is about 30 KB in chunks of 1 KiB; the link
   * is cut after 12 KB the device sent (its connection, subscriptions and status are far less). */
  start_proxy(proxy_port, b.port, 12000);
  char via[64];
  snprintf(via, sizeof via, "mqtt://127.0.0.1:%d", proxy_port);
  int serve = spawn_serve(&b, config, remote, NULL);
  int dev[DEVICES];
  dev[0] = spawn_device(&b, config, 0);
  dev[1] = spawn_device(&b, config, 1);
  const char *args[] = {"device", "--broker", via, "--id", "dev2", "--config", config, "--client", "2",
                        "--threads", "1", "--chunk-kib", "1", NULL};
  dev[2] = spawn_fedgap("dev2", args);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  char *serr = scratch_text("serve.err");
  cr_assert(strstr(serr, "device dev2 (client 2) is offline") != NULL, "the link was not cut: %s", serr);
  free(serr);
  /* Back online, the device resends the chunks the broker had not acknowledged (before or after
   * its status saying it holds the job): the slot is not dropped. */
  cJSON *r1 = round_record(remote, 1);
  cr_assert_str_eq(client_status(r1, 2), "ok");
  cJSON_Delete(r1);
  same_run(local, remote, 0);
  stop_broker(&b);
  fgt_scratch_close();
}

/* ---- a method with server state sent to its clients ------------------------------------------ */

Test(mqtt, depthfl_with_feddyn_on_devices_equals_the_in_process_run, .timeout = 900) {
  fgt_scratch_open();
  const char *config = write_config(300);
  char *text = fgt_read_text(config);
  char *feddyn = replace_all(text, "method: {name: heterofl}", "method: {name: depthfl, feddyn_alpha: 0.1}");
  fgt_write_text(config, feddyn);
  free(text);
  free(feddyn);
  const char *local = fgt_at("local"), *remote = fgt_at("remote");
  run_in_process(config, local);
  broker b = start_broker(NULL);
  int serve = spawn_serve(&b, config, remote, NULL);
  int dev[DEVICES];
  for (int k = 0; k < DEVICES; k++) dev[k] = spawn_device(&b, config, k);
  serve_ok(serve);
  for (int k = 0; k < DEVICES; k++) cr_assert_eq(wait_started(dev[k], 60), 0, "device %d", k);
  same_run(local, remote, 1);
  stop_broker(&b);
  fgt_scratch_close();
}
