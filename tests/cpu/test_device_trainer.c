/* The device's side of a run on remote devices (fl/server.h, fg_device_trainer) with its own data:
 * its world has one client holding every sample, and it trains whatever client the server gives
 * it. Its random streams are that client's, as in the in-process run: the order it visits its
 * samples in, left in the world's loader after training, equals the engine's epoch order
 * (fg_epoch_order) of the run's seed, the last epoch and the job's client, so two devices given
 * different clients shuffle differently. */
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/data/dataset.h"
#include "engine/io/atomic_file.h"
#include "fl/config.h"
#include "fl/server.h"
#include "fl/world.h"

enum { SAMPLES = 60, RUN_CLIENTS = 4, EPOCHS = 2, ROUND = 3 };

static char *dir;
static fg_config cfg;
static fg_world world;
static fg_device_trainer *trainer;

/* A device with its own data: the configuration's, with one client and no budgets (as `fedgap
 * device --data DIR` sets it up). */
static void open_device(void) {
  fgt_setup_cpu(1);
  dir = fgt_mkdtemp();
  fgt_write_tiny_fmnist(dir, SAMPLES, 20, 7);
  char text[1024];
  snprintf(text, sizeof text,
           "name: own\nseed: 9\nrounds: 5\n"
           "data: {dataset: fashion-mnist, dir: %s, partition: {kind: iid}}\n"
           "model: {arch: cnn, width: 4}\nclients: {count: 1}\n"
           "sampling: {kind: uniform, per_round: 1}\nlocal: {epochs: %d, batch: 16}\n"
           "method: {name: heterofl}\n",
           dir, EPOCHS);
  char *path = fgt_join(dir, "own.yaml");
  fgt_write_text(path, text);
  FGT_OK(fg_config_load(path, NULL, 0, &cfg));
  free(path);
  FGT_OK(fg_world_open(&cfg, &world));
  FGT_OK(fg_device_trainer_open(&world, 0, &trainer));
}

static void close_device(void) {
  fg_device_trainer_free(trainer);
  fg_world_close(&world);
  fg_config_free(&cfg);
  fgt_rmtree(dir);
  free(dir);
}

/* Trains the job of `client` (of RUN_CLIENTS) on the device's own data; *order := the positions of
 * its last epoch, as it visited them. */
static void train_as(int client, uint32_t *order) {
  int64_t numel = fg_device_trainer_numel(trainer, 0);
  cr_assert_gt(numel, 0);
  float *sent = calloc((size_t)numel, sizeof *sent), *trained = malloc((size_t)numel * sizeof *trained);
  cr_assert(sent && trained);
  fg_job j = {0, ROUND, 1, client, 0, 0, cfg.seed, 0};
  fg_client_record rec;
  memset(&rec, 0, sizeof rec);
  FGT_OK(fg_device_trainer_train(trainer, &j, 0, RUN_CLIENTS, 0, sent, NULL, trained, &rec));
  cr_assert_eq(rec.status, FG_CLIENT_OK, "%s", rec.error);
  cr_assert_eq(rec.id, client);
  cr_assert_eq(rec.samples, SAMPLES);
  memcpy(order, world.loader.order.ptr, SAMPLES * sizeof *order);
  free(sent);
  free(trained);
}

TestSuite(device_trainer, .init = open_device, .fini = close_device);

Test(device_trainer, own_data_shuffles_with_the_stream_of_the_client_it_trains) {
  cr_assert_eq(fg_world_client_view(&world, 0).n, SAMPLES, "the device's one client holds every sample");
  uint32_t got[RUN_CLIENTS][SAMPLES], want[SAMPLES], local[SAMPLES];
  uint64_t last_epoch = (uint64_t)ROUND * EPOCHS + EPOCHS - 1;
  FGT_OK(fg_epoch_order(SAMPLES, cfg.seed, last_epoch, 0, 1, local));
  for (int c = 1; c < RUN_CLIENTS; c++) {
    train_as(c, got[c]);
    FGT_OK(fg_epoch_order(SAMPLES, cfg.seed, last_epoch, (uint64_t)c, 1, want));
    cr_assert_arr_eq(got[c], want, sizeof want, "client %d: not the order of its own stream", c);
    cr_assert(memcmp(got[c], local, sizeof local) != 0, "client %d shuffled as the world's client 0", c);
  }
  cr_assert(memcmp(got[1], got[2], sizeof got[1]) != 0, "two clients on their own data shuffled alike");
}

Test(device_trainer, a_client_outside_the_run_is_an_error) {
  int64_t numel = fg_device_trainer_numel(trainer, 0);
  float *sent = calloc((size_t)numel, sizeof *sent), *trained = malloc((size_t)numel * sizeof *trained);
  fg_job j = {0, 0, 0, RUN_CLIENTS, 0, 0, cfg.seed, 0};
  fg_client_record rec;
  cr_assert_eq(fg_device_trainer_train(trainer, &j, 0, RUN_CLIENTS, 0, sent, NULL, trained, &rec), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "not one of the run's 4") != NULL, "%s", fg_last_error());
  free(sent);
  free(trained);
}
