/* Federated runs on the CUDA backend (issue "FL on the GPU"): three rounds of NeuLite and of
 * HypeMeFed on Fashion-MNIST with `--device cuda` and with `--device cpu` reach final accuracies
 * within 1 point, and the CUDA run's summary records the device. Skips with the backend's reason
 * where no device is usable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/run_cmd.h"
#include "common/test_util.h"
#include "cuda/cuda_backend.h"
#include "engine/io/atomic_file.h"

static void cuda_or_skip(void) {
  fgt_setup_cpu(2);
  FGT_OK(fg_cuda_backend_register(0));
  const fg_backend *b = fg_backend_registered(FG_DEV_CUDA);
  if (!b || !b->available) cr_skip_test("cuda: %s", b ? b->reason : "not registered");
}

/* Final accuracy of a run of `method_entry` (a YAML mapping) on `device`; *recorded := the
 * summary's device field (malloc'd). */
static double run_on(const char *dir, const char *method_entry, const char *arch, const char *device, char **recorded) {
  char *cfg = fg_path_join(dir, "c.yaml"), out[4096];
  char text[1024];
  snprintf(text, sizeof text,
           "seed: 2\nrounds: 3\ndata: {dataset: fashion-mnist, partition: {kind: dirichlet, alpha: 0.5}}\n"
           "model: {arch: %s, width: %s}\nclients: {count: 6}\nsampling: {kind: uniform, per_round: 3}\n"
           "local: {epochs: 1, batch: 64, optimizer: sgd, lr: 0.02, momentum: 0.9}\n"
           "eval: {every: 3, max_samples: 2000}\ncheckpoint: {every: 0}\nmethod: %s\n",
           arch, strcmp(arch, "cnn") == 0 ? "16" : "0.25", method_entry);
  fgt_write_text(cfg, text);
  snprintf(out, sizeof out, "%s/run-%s", dir, device);
  const char *argv[] = {"", "run", cfg, "--out", out, "--device", device, NULL};
  fgt_run r = fgt_run_fedgap(argv);
  cr_assert_eq(r.status, 0, "run on %s failed: %s", device, r.err);
  double acc = -1;
  cr_assert_eq(sscanf(fgt_last_line(r.out), "final_accuracy=%lf", &acc), 1, "%s", fgt_last_line(r.out));
  fgt_run_free(&r);
  char *summary_path = fg_path_join(out, "summary.json"), *summary = fgt_read_text(summary_path);
  cJSON *s = cJSON_Parse(summary);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(s, "device");
  cr_assert(cJSON_IsString(d), "summary.json has no device");
  *recorded = strdup(d->valuestring);
  cJSON_Delete(s);
  free(summary), free(summary_path), free(cfg);
  return acc;
}

static void cpu_vs_cuda(const char *method_entry, const char *arch) {
  cuda_or_skip();
  char *dir = fgt_mkdtemp(), *dev_cpu = NULL, *dev_cuda = NULL;
  const double on_cpu = run_on(dir, method_entry, arch, "cpu", &dev_cpu);
  const double on_cuda = run_on(dir, method_entry, arch, "cuda", &dev_cuda);
  cr_assert_str_eq(dev_cpu, "cpu");
  cr_assert_str_eq(dev_cuda, "cuda:0");
  cr_assert(on_cuda >= on_cpu - 0.01 && on_cuda <= on_cpu + 0.01, "%s: accuracy %.4f on cuda, %.4f on cpu",
            method_entry, on_cuda, on_cpu);
  free(dev_cpu), free(dev_cuda);
  fgt_rmtree(dir);
  free(dir);
}

Test(cuda_fl, neulite_three_rounds_match_cpu, .timeout = 1200) {
  cpu_vs_cuda("{name: neulite, schedule: roundrobin}", "cnn");
}

Test(cuda_fl, hypemefed_three_rounds_match_cpu, .timeout = 1200) {
  cpu_vs_cuda("{name: hypemefed, lr: 1.0e-3}", "vgg-me");
}
