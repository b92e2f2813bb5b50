/* The YAML configuration with --set overrides (fl/config.h). Input: the file's text, then up to
 * 8 overrides, each after a NUL byte. A configuration that loads is written back resolved
 * (fg_config_resolved_text, as a run folder's config.yaml) for every method entry and as a
 * whole, and each must load again; the whole one to the same configuration (fg_config_diff). */
#include <stdlib.h>
#include <string.h>

#include "engine/base/status.h"
#include "fl/config.h"
#include "fuzz/fuzz.h"

enum { MAX_SETS = 8, MAX_SET_LEN = 512 };

static void reload(const fg_config *cfg, int method) {
  char *text = NULL;
  size_t len = 0;
  fg_fuzz_check(fg_config_resolved_text(cfg, method, "fuzz", &text, &len) == FG_OK, "a loaded config writes");
  char path[600];
  fg_fuzz_file("resolved.yaml", text, len, 0, path, sizeof path);
  free(text);
  fg_config again;
  fg_status s = fg_config_load(path, NULL, 0, &again);
  fg_fuzz_check(s == FG_OK, "a resolved configuration loads again");
  if (method < 0) {
    fg_config_change ch[4];
    int n = -1;
    fg_fuzz_check(fg_config_diff(cfg, &again, ch, 4, &n) == FG_OK, "the diff of two loaded configurations");
    fg_fuzz_check(n == 0, "a resolved configuration loads to the same configuration");
  }
  fg_config_free(&again);
}

int fg_fuzz_config(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t yaml_len = nul ? (size_t)(nul - data) : size;
  char *sets[MAX_SETS];
  int n_set = 0;
  for (const uint8_t *p = nul; p && n_set < MAX_SETS;) {
    p++;
    size_t left = size - (size_t)(p - data);
    const uint8_t *end = memchr(p, 0, left);
    size_t n = end ? (size_t)(end - p) : left;
    if (n > MAX_SET_LEN) n = MAX_SET_LEN;
    sets[n_set] = malloc(n + 1);
    memcpy(sets[n_set], p, n);
    sets[n_set][n] = '\0';
    n_set++;
    p = end;
  }
  char path[600];
  fg_fuzz_file("exp.yaml", data, yaml_len, 0, path, sizeof path);
  fg_config cfg;
  fg_clear_error();
  fg_status s = fg_config_load(path, (const char *const *)sets, n_set, &cfg);
  if (s == FG_OK) {
    reload(&cfg, -1);
    for (int m = 0; cfg.compare && m < cfg.n_methods; m++) reload(&cfg, m);
  } else {
    fg_fuzz_check_message();
  }
  fg_config_free(&cfg);
  for (int i = 0; i < n_set; i++) free(sets[i]);
  return 0;
}

#ifdef FEDGAP_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { return fg_fuzz_config(data, size); }
#endif
