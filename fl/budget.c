/* Memory budgets per client and the device profile table. */
#include "fl/budget.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/rng.h"

#define FG_MIB 1048576.0
/* Largest budget accepted, in bytes (2^62): far above any device, far below size_t overflow. */
#define FG_BUDGET_MAX_BYTES 4611686018427387904.0

/* Keep in sync with configs/README.md ("Device profiles"; a test compares the two). Memory is the
 * MemTotal a board reports (a little below its nominal size: firmware and carve-outs); the OS
 * share is a headless install's idle use plus 200-500 MiB of page cache; the runtime share is
 * 64 MiB for the CPU backend (code, OpenBLAS and OpenMP buffers) and 1 GiB where CUDA's context,
 * cuBLAS and cuDNN load into the same memory. */
static const fg_device_profile fg_profiles[] = {
    {"jetson-nano-4gb", 3964, 700, 1024, 1,
     "Jetson Nano 4 GB: CPU and GPU share the 4 GB; L4T without a desktop, CUDA 10.2 libraries loaded"},
    {"jetson-orin-nano-8gb", 7620, 1024, 1024, 1,
     "Jetson Orin Nano 8 GB: CPU and GPU share the 8 GB; JetPack without a desktop, CUDA libraries loaded"},
    {"rpi4-2gb", 1848, 320, 64, 0, "Raspberry Pi 4 with 2 GB, Raspberry Pi OS Lite"},
    {"rpi4-4gb", 3793, 384, 64, 0, "Raspberry Pi 4 with 4 GB, Raspberry Pi OS Lite"},
    {"rpi4-8gb", 7812, 512, 64, 0, "Raspberry Pi 4 with 8 GB, Raspberry Pi OS Lite"},
    {"rpi5-8gb", 8052, 512, 64, 0, "Raspberry Pi 5 with 8 GB, Raspberry Pi OS Lite"},
    {"phone-4gb", 3686, 2598, 64, 0,
     "phone with 4 GB: Android and the foreground apps keep all but a quarter for a background app"},
    {"phone-8gb", 7532, 5420, 64, 0,
     "phone with 8 GB: Android and the foreground apps keep all but a quarter for a background app"},
    {"mcu-512mb", 448, 128, 64, 0, "board with 512 MB (e.g. Raspberry Pi Zero 2 W), a minimal Linux"},
};

enum { FG_N_PROFILES = (int)(sizeof fg_profiles / sizeof fg_profiles[0]) };

int fg_device_profile_count(void) { return FG_N_PROFILES; }

double fg_device_profile_budget_mib(const fg_device_profile *p) {
  return p->memory_mib - p->os_mib - p->runtime_mib;
}

const fg_device_profile *fg_device_profile_at(int i) {
  return i >= 0 && i < FG_N_PROFILES ? &fg_profiles[i] : NULL;
}

const fg_device_profile *fg_device_profile_find(const char *name) {
  for (int i = 0; name && i < FG_N_PROFILES; i++)
    if (strcmp(fg_profiles[i].name, name) == 0) return &fg_profiles[i];
  char names[512] = "";
  size_t used = 0;
  for (int i = 0; i < FG_N_PROFILES && used < sizeof names; i++)
    used += (size_t)snprintf(names + used, sizeof names - used, "%s%s", i ? ", " : "", fg_profiles[i].name);
  FG_FAIL(FG_ERR_CONFIG, "unknown device profile '%s', expected one of: %s", name ? name : "(null)", names);
  return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Rounding of shares to counts. */

fg_status fg_largest_remainder(const double *shares, int n, int total, int *counts) {
  if (n < 1 || total < 0 || !shares || !counts)
    return FG_FAIL(FG_ERR_INVALID, "largest remainder: %d entries for a total of %d", n, total);
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(shares[i]) || shares[i] < 0.0)
      return FG_FAIL(FG_ERR_CONFIG, "share %g of entry %d, expected a finite value >= 0", shares[i], i);
    sum += shares[i];
  }
  if (!(sum > 0.0)) return FG_FAIL(FG_ERR_CONFIG, "shares sum to %g, expected > 0", sum);
  double *rest = malloc((size_t)n * sizeof *rest);
  if (!rest) return FG_FAIL(FG_ERR_OOM, "largest remainder: out of host memory");
  /* floor with a 1e-9 tolerance, so that a quota of 56.99999999999999 (0.57 x 100) counts 57. */
  int assigned = 0;
  for (int i = 0; i < n; i++) {
    double quota = shares[i] / sum * total;
    double whole = floor(quota + 1e-9);
    counts[i] = (int)whole;
    rest[i] = quota - whole > 0.0 ? quota - whole : 0.0;
    assigned += counts[i];
  }
  /* Hand out what floor() left, one each, largest remainder first; remainders within 1e-9 are a
   * tie (equal in exact arithmetic, e.g. 1/9 and 4/9 of 3), which goes to the earlier entry. */
  int extra = total - assigned;
  fg_status s = extra >= 0 && extra <= n
                    ? FG_OK
                    : FG_FAIL(FG_ERR_INTERNAL, "largest remainder: %d left over %d entries", extra, n);
  for (int given = 0; s == FG_OK && given < extra; given++) {
    int best = -1;
    for (int i = 0; i < n; i++)
      if (rest[i] >= 0.0 && (best < 0 || rest[i] > rest[best] + 1e-9)) best = i;
    counts[best]++;
    rest[best] = -1.0;
  }
  free(rest);
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * The rules of a spec. */

static int positive(double v) { return isfinite(v) && v > 0.0; }

/* FG_ERR_CONFIG about the value of `key` (written to key[cap]). */
static fg_status spec_error(char *key, size_t cap, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static fg_status spec_error(char *key, size_t cap, const char *name, const char *fmt, ...) {
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(key, cap, "%s", name);
  return FG_FAIL(FG_ERR_CONFIG, "%s", msg);
}

/* A tiers or a profiles list: its name, entries and each entry's share of the clients. */
static const char *list_name(const fg_budget_spec *spec) {
  return spec->kind == FG_BUDGET_TIERS ? "tiers" : "profiles";
}

static int list_count(const fg_budget_spec *spec) {
  if (spec->kind == FG_BUDGET_TIERS) return spec->tiers ? spec->n_tiers : 0;
  return spec->profiles ? spec->n_profiles : 0;
}

static double list_share(const fg_budget_spec *spec, int i) {
  return spec->kind == FG_BUDGET_TIERS ? spec->tiers[i].share : spec->profiles[i].share;
}

/* At least one entry; tiers' fractions > 0; every share in (0, 1], their sum 1 within 1e-6. */
static fg_status check_list(const fg_budget_spec *spec, char *key, size_t cap) {
  const char *list = list_name(spec);
  int n = list_count(spec);
  char name[64];
  if (n < 1) return spec_error(key, cap, list, "no entries (expected at least one)");
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double fraction = spec->kind == FG_BUDGET_TIERS ? spec->tiers[i].fraction : 1.0, share = list_share(spec, i);
    snprintf(name, sizeof name, "tiers[%d].fraction", i);
    if (!positive(fraction)) return spec_error(key, cap, name, "%g is out of range (expected > 0)", fraction);
    snprintf(name, sizeof name, "%s[%d].share", list, i);
    if (!(positive(share) && share <= 1.0))
      return spec_error(key, cap, name, "%g is out of range (expected in (0, 1])", share);
    sum += share;
  }
  if (fabs(sum - 1.0) > 1e-6) return spec_error(key, cap, list, "the shares sum to %.9g (expected 1)", sum);
  return FG_OK;
}

fg_status fg_budget_spec_check(const fg_budget_spec *spec, char *key, size_t cap) {
  switch (spec->kind) {
    case FG_BUDGET_NONE: return FG_OK;
    case FG_BUDGET_FIXED:
      if (positive(spec->mib)) return FG_OK;
      return spec_error(key, cap, "mib", "%g is out of range (expected > 0)", spec->mib);
    case FG_BUDGET_UNIFORM:
      if (!positive(spec->min_mib))
        return spec_error(key, cap, "min_mib", "%g is out of range (expected > 0)", spec->min_mib);
      if (!positive(spec->max_mib))
        return spec_error(key, cap, "max_mib", "%g is out of range (expected > 0)", spec->max_mib);
      if (spec->max_mib < spec->min_mib)
        return spec_error(key, cap, "max_mib", "%g is below min_mib %g (expected >= min_mib)", spec->max_mib,
                          spec->min_mib);
      return FG_OK;
    case FG_BUDGET_TIERS:
    case FG_BUDGET_PROFILES: return check_list(spec, key, cap);
  }
  return spec_error(key, cap, "kind", "%d is not none, fixed, uniform, tiers or profiles", (int)spec->kind);
}

/* ---------------------------------------------------------------------------------------------
 * Budgets. */

/* mib (> 0) in bytes, at most FG_BUDGET_MAX_BYTES. */
static fg_status mib_to_bytes(double mib, const char *key, size_t *bytes) {
  double b = floor(mib * FG_MIB);
  if (b > FG_BUDGET_MAX_BYTES) return FG_FAIL(FG_ERR_CONFIG, "%s: %g MiB is too large", key, mib);
  *bytes = (size_t)b;
  return FG_OK;
}

/* Gives entry values[e] to count[e] clients chosen by the budget stream's permutation. */
static fg_status assign_by_share(const double *shares, const size_t *values, int n_entries, int n_clients,
                                 uint64_t seed, size_t *budgets) {
  int *counts = malloc((size_t)n_entries * sizeof *counts);
  uint32_t *perm = malloc((size_t)n_clients * sizeof *perm);
  fg_status s = counts && perm ? FG_OK : FG_FAIL(FG_ERR_OOM, "budgets: out of host memory");
  if (s == FG_OK) s = fg_largest_remainder(shares, n_entries, n_clients, counts);
  if (s == FG_OK) {
    for (int k = 0; k < n_clients; k++) perm[k] = (uint32_t)k;
    fg_rng r = fg_rng_stream(seed, FG_RNG_BUDGET, 1, 0);
    fg_rng_shuffle_u32(&r, perm, (uint64_t)n_clients);
    int at = 0;
    for (int e = 0; e < n_entries; e++)
      for (int i = 0; i < counts[e]; i++) budgets[perm[at++]] = values[e];
  }
  free(perm);
  free(counts);
  return s;
}

static fg_status assign_uniform(const fg_budget_spec *spec, int n_clients, uint64_t seed, size_t *budgets) {
  size_t check = 0;
  FG_TRY(mib_to_bytes(spec->min_mib, "clients.budgets.min_mib", &check));
  FG_TRY(mib_to_bytes(spec->max_mib, "clients.budgets.max_mib", &check));
  double lo = ceil(spec->min_mib), hi = floor(spec->max_mib);
  if (lo > hi)
    return FG_FAIL(FG_ERR_CONFIG, "clients.budgets: no whole MiB in [min_mib %g, max_mib %g]", spec->min_mib,
                   spec->max_mib);
  uint64_t first = (uint64_t)lo, span = (uint64_t)(hi - lo) + 1;
  fg_rng r = fg_rng_stream(seed, FG_RNG_BUDGET, 0, 0);
  for (int k = 0; k < n_clients; k++) budgets[k] = (size_t)((first + fg_rng_below(&r, span)) << 20);
  return FG_OK;
}

/* The budget of entry i of a tiers list (fraction x the full model's peak) or of a profiles list
 * (the profile's training budget). */
static fg_status entry_bytes(const fg_budget_spec *spec, int i, size_t full_peak_bytes, size_t *bytes) {
  if (spec->kind == FG_BUDGET_PROFILES) {
    const fg_device_profile *dp = fg_device_profile_find(spec->profiles[i].name);
    if (dp) return mib_to_bytes(fg_device_profile_budget_mib(dp), dp->name, bytes);
    fg_error_prefix("clients.budgets.profiles[%d].name", i);
    return fg_last_status();
  }
  double fraction = spec->tiers[i].fraction, b = floor(fraction * (double)full_peak_bytes);
  if (b < 1.0 || b > FG_BUDGET_MAX_BYTES)
    return FG_FAIL(FG_ERR_CONFIG,
                   "clients.budgets.tiers[%d].fraction: %g gives %.0f bytes of a %zu-byte peak, expected a "
                   "fraction giving at least 1 byte",
                   i, fraction, b, full_peak_bytes);
  *bytes = (size_t)b;
  return FG_OK;
}

/* Tiers and profiles: each entry's budget to its share of the clients. */
static fg_status assign_list(const fg_budget_spec *spec, int n_clients, uint64_t seed, size_t full_peak_bytes,
                             size_t *budgets) {
  int n = list_count(spec);
  double *shares = malloc((size_t)n * sizeof *shares);
  size_t *values = malloc((size_t)n * sizeof *values);
  fg_status s = shares && values ? FG_OK : FG_FAIL(FG_ERR_OOM, "budgets: out of host memory");
  for (int i = 0; s == FG_OK && i < n; i++) {
    shares[i] = list_share(spec, i);
    s = entry_bytes(spec, i, full_peak_bytes, &values[i]);
  }
  if (s == FG_OK) s = assign_by_share(shares, values, n, n_clients, seed, budgets);
  free(values);
  free(shares);
  return s;
}

fg_status fg_budgets_assign(const fg_budget_spec *spec, int n_clients, uint64_t seed,
                            size_t full_peak_bytes, size_t *budgets) {
  if (!spec || !budgets) return FG_FAIL(FG_ERR_INVALID, "budgets: spec and output are required");
  if (n_clients < 1) return FG_FAIL(FG_ERR_CONFIG, "clients.count %d, expected >= 1", n_clients);
  if (spec->kind == FG_BUDGET_TIERS && full_peak_bytes == 0)
    return FG_FAIL(FG_ERR_INVALID, "clients.budgets tiers need the full model's training peak (given 0 bytes)");
  char key[64];
  if (fg_budget_spec_check(spec, key, sizeof key) != FG_OK) {
    fg_error_prefix("clients.budgets.%s", key);
    return FG_ERR_CONFIG;
  }
  switch (spec->kind) {
    case FG_BUDGET_NONE:
      for (int k = 0; k < n_clients; k++) budgets[k] = 0;
      return FG_OK;
    case FG_BUDGET_FIXED: {
      size_t b = 0;
      FG_TRY(mib_to_bytes(spec->mib, "clients.budgets.mib", &b));
      if (b == 0) return FG_FAIL(FG_ERR_CONFIG, "clients.budgets.mib: %g is less than one byte", spec->mib);
      for (int k = 0; k < n_clients; k++) budgets[k] = b;
      return FG_OK;
    }
    case FG_BUDGET_UNIFORM: return assign_uniform(spec, n_clients, seed, budgets);
    case FG_BUDGET_TIERS:
    case FG_BUDGET_PROFILES: return assign_list(spec, n_clients, seed, full_peak_bytes, budgets);
  }
  return FG_FAIL(FG_ERR_INTERNAL, "budgets: kind %d passed the spec check", (int)spec->kind);
}
