/* Replays the fuzz corpora (fuzz/corpus/<harness>/, the seeds) and every regression input
 * (fuzz/regressions/<harness>/: inputs that once crashed, hung or broke an invariant) through the
 * harnesses of fuzz/, compiled into this normal test: a harness that crashes, aborts on a broken
 * invariant or does not return fails the test. Under the sanitizer build (.ci/run) memory errors
 * fail it too. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/io/atomic_file.h"
#include "fuzz/fuzz.h"

typedef int (*harness_fn)(const uint8_t *, size_t);

static const struct {
  const char *name;
  harness_fn fn;
} HARNESSES[] = {
    {"config", fg_fuzz_config}, {"safetensors", fg_fuzz_safetensors}, {"checkpoint", fg_fuzz_checkpoint},
    {"idx", fg_fuzz_idx},       {"cifar", fg_fuzz_cifar},             {"stl10", fg_fuzz_stl10},
    {"svhn", fg_fuzz_svhn},     {"partition", fg_fuzz_partition},
};

/* Runs every file of src/fuzz/<kind>/<name>/ through fn; the number of files. */
static int replay_dir(const char *src, const char *kind, const char *name, harness_fn fn) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/fuzz/%s/%s", src, kind, name);
  DIR *d = opendir(dir);
  if (!d) return 0;
  int n = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    char *path = fgt_join(dir, e->d_name);
    unsigned char *bytes = NULL;
    size_t len = 0;
    FGT_OK(fg_read_file(path, 1u << 24, &bytes, &len));
    fn(bytes, len);
    free(bytes);
    free(path);
    n++;
  }
  closedir(d);
  return n;
}

Test(fuzz_replay, every_seed_and_regression_input_passes, .timeout = 600) {
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src, "FEDGAP_SOURCE_DIR is not set (ctest sets it)");
  for (size_t h = 0; h < sizeof HARNESSES / sizeof HARNESSES[0]; h++) {
    int seeds = replay_dir(src, "corpus", HARNESSES[h].name, HARNESSES[h].fn);
    int regressions = replay_dir(src, "regressions", HARNESSES[h].name, HARNESSES[h].fn);
    cr_assert_gt(seeds, 0, "fuzz/corpus/%s has no seed", HARNESSES[h].name);
    cr_log_info("%s: %d seeds, %d regression inputs", HARNESSES[h].name, seeds, regressions);
  }
}
