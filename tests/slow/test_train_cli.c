/* End to end on real Fashion-MNIST (the Debian package the set-up installs): one epoch of
 * `fedgap train` learns (test accuracy well above chance), its saved weights give the same test
 * accuracy through `fedgap eval`, and the run is reproducible from its seed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/run_cmd.h"
#include "common/test_util.h"

static double accuracy_of(const fgt_run *r) {
  double acc = -1;
  cr_assert_eq(sscanf(fgt_last_line(r->out), "test_accuracy=%lf", &acc), 1, "last line: %s", fgt_last_line(r->out));
  return acc;
}

Test(train_cli, one_epoch_learns_saves_and_reloads, .timeout = 900) {
  char *dir = fgt_mkdtemp(), path[4096];
  snprintf(path, sizeof path, "%s/cnn.safetensors", dir);
  const char *train[] = {"", "train", "--model", "cnn", "--dataset", "fashion-mnist", "--epochs", "1", "--batch",
                         "64", "--lr", "0.02", "--momentum", "0.9", "--weight-decay", "5e-4", "--seed", "1",
                         "--width", "8", "--save", path, NULL};
  fgt_run r = fgt_run_fedgap(train);
  cr_assert_eq(r.status, 0, "train failed: %s", r.err);
  double trained = accuracy_of(&r);
  cr_assert_gt(trained, 0.75, "one epoch of the cnn should reach well above chance, got %.4f", trained);
  cr_assert(strstr(r.out, "epoch 1/1") != NULL);
  fgt_run_free(&r);

  const char *eval[] = {"", "eval", "--model", "cnn", "--dataset", "fashion-mnist", "--width", "8", "--weights",
                        path, NULL};
  r = fgt_run_fedgap(eval);
  cr_assert_eq(r.status, 0, "eval failed: %s", r.err);
  cr_assert_float_eq(accuracy_of(&r), trained, 1e-9, "eval %.4f vs train %.4f", accuracy_of(&r), trained);
  fgt_run_free(&r);

  r = fgt_run_fedgap(train);
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_float_eq(accuracy_of(&r), trained, 1e-9, "same seed, different accuracy");
  fgt_run_free(&r);
  fgt_rmtree(dir);
  free(dir);
}
