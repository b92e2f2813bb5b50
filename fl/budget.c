/* Memory budgets per client and the device profile table. */
#include "fl/budget.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/rng.h"

#define FG_MIB 1048576.0
/* Largest budget accepted, in bytes (2^62): far above any device, far below size_t overflow. */
#define FG_BUDGET_MAX_BYTES 4611686018427387904.0

/* Keep in sync with configs/README.md ("Device profiles"). */
static const fg_device_profile fg_profiles[] = {
    {"jetson-nano-4gb", 1536,
     "Jetson Nano 4 GB: the 4 GB is shared by CPU, GPU and the OS; assumes about 1.5 GiB is left "
     "for one training process"},
    {"jetson-orin-nano-8gb", 4096,
     "Jetson Orin Nano 8 GB (memory shared by CPU and GPU): assumes half of it for training"},
    {"rpi4-2gb", 1024, "Raspberry Pi 4 with 2 GB: assumes half of it for training, the rest for the "
                       "OS and runtime"},
    {"rpi4-4gb", 2560, "Raspberry Pi 4 with 4 GB: assumes about 2.5 GiB for training"},
    {"rpi4-8gb", 6144, "Raspberry Pi 4 with 8 GB: assumes about 6 GiB for training"},
    {"phone-4gb", 1024, "phone with 4 GB: assumes a quarter of it for one app in the background"},
    {"phone-8gb", 2048, "phone with 8 GB: assumes a quarter of it for one app in the background"},
    {"mcu-512mb", 256, "board with 512 MB: assumes half of it for training"},
};

enum { FG_N_PROFILES = (int)(sizeof fg_profiles / sizeof fg_profiles[0]) };

int fg_device_profile_count(void) { return FG_N_PROFILES; }

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
 * Budgets. */

static fg_status mib_to_bytes(double mib, const char *key, size_t *bytes) {
  if (!isfinite(mib) || mib <= 0.0) return FG_FAIL(FG_ERR_CONFIG, "%s %g, expected a finite value > 0", key, mib);
  double b = floor(mib * FG_MIB);
  if (b > FG_BUDGET_MAX_BYTES) return FG_FAIL(FG_ERR_CONFIG, "%s %g MiB is too large", key, mib);
  *bytes = (size_t)b;
  return FG_OK;
}

static fg_status check_share_sum(const double *shares, int n, const char *key) {
  double sum = 0.0;
  for (int i = 0; i < n; i++) sum += shares[i];
  if (fabs(sum - 1.0) > 1e-6) return FG_FAIL(FG_ERR_CONFIG, "%s: shares sum to %.9g, expected 1", key, sum);
  return FG_OK;
}

/* Gives entry values[e] to count[e] clients chosen by the budget stream's permutation. */
static fg_status assign_by_share(const double *shares, const size_t *values, int n_entries,
                                 int n_clients, uint64_t seed, const char *key, size_t *budgets) {
  FG_TRY(check_share_sum(shares, n_entries, key));
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
  } else {
    fg_error_prefix("%s", key);
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
    return FG_FAIL(FG_ERR_CONFIG,
                   "clients.budgets: no whole MiB in [min_mib %g, max_mib %g] (min must be <= max)",
                   spec->min_mib, spec->max_mib);
  uint64_t first = (uint64_t)lo, span = (uint64_t)(hi - lo) + 1;
  fg_rng r = fg_rng_stream(seed, FG_RNG_BUDGET, 0, 0);
  for (int k = 0; k < n_clients; k++) budgets[k] = (size_t)((first + fg_rng_below(&r, span)) << 20);
  return FG_OK;
}

static fg_status assign_tiers(const fg_budget_spec *spec, int n_clients, uint64_t seed,
                              size_t full_peak_bytes, size_t *budgets) {
  if (full_peak_bytes == 0)
    return FG_FAIL(FG_ERR_INVALID, "clients.budgets tiers need the full model's training peak (given 0 bytes)");
  if (spec->n_tiers < 1 || !spec->tiers)
    return FG_FAIL(FG_ERR_CONFIG, "clients.budgets.tiers is empty, expected at least one {fraction, share}");
  double *shares = malloc((size_t)spec->n_tiers * sizeof *shares);
  size_t *values = malloc((size_t)spec->n_tiers * sizeof *values);
  fg_status s = shares && values ? FG_OK : FG_FAIL(FG_ERR_OOM, "budgets: out of host memory");
  for (int t = 0; s == FG_OK && t < spec->n_tiers; t++) {
    double fraction = spec->tiers[t].fraction;
    double b = isfinite(fraction) && fraction > 0.0 ? floor(fraction * (double)full_peak_bytes) : -1.0;
    if (b < 1.0 || b > FG_BUDGET_MAX_BYTES)
      s = FG_FAIL(FG_ERR_CONFIG,
                  "clients.budgets.tiers[%d].fraction %g gives %.0f bytes of a %zu-byte peak, "
                  "expected a fraction > 0 giving at least 1 byte",
                  t, fraction, b, full_peak_bytes);
    else {
      values[t] = (size_t)b;
      shares[t] = spec->tiers[t].share;
    }
  }
  if (s == FG_OK) s = assign_by_share(shares, values, spec->n_tiers, n_clients, seed, "clients.budgets.tiers", budgets);
  free(values);
  free(shares);
  return s;
}

static fg_status assign_profiles(const fg_budget_spec *spec, int n_clients, uint64_t seed, size_t *budgets) {
  if (spec->n_profiles < 1 || !spec->profiles)
    return FG_FAIL(FG_ERR_CONFIG, "clients.budgets.profiles is empty, expected at least one {name, share}");
  double *shares = malloc((size_t)spec->n_profiles * sizeof *shares);
  size_t *values = malloc((size_t)spec->n_profiles * sizeof *values);
  fg_status s = shares && values ? FG_OK : FG_FAIL(FG_ERR_OOM, "budgets: out of host memory");
  for (int i = 0; s == FG_OK && i < spec->n_profiles; i++) {
    const fg_device_profile *dp = fg_device_profile_find(spec->profiles[i].name);
    if (!dp) {
      s = fg_last_status();
      fg_error_prefix("clients.budgets.profiles[%d].name", i);
    } else {
      s = mib_to_bytes(dp->mib, dp->name, &values[i]);
      shares[i] = spec->profiles[i].share;
    }
  }
  if (s == FG_OK)
    s = assign_by_share(shares, values, spec->n_profiles, n_clients, seed, "clients.budgets.profiles", budgets);
  free(values);
  free(shares);
  return s;
}

fg_status fg_budgets_assign(const fg_budget_spec *spec, int n_clients, uint64_t seed,
                            size_t full_peak_bytes, size_t *budgets) {
  if (!spec || !budgets) return FG_FAIL(FG_ERR_INVALID, "budgets: spec and output are required");
  if (n_clients < 1) return FG_FAIL(FG_ERR_CONFIG, "clients.count %d, expected >= 1", n_clients);
  switch (spec->kind) {
    case FG_BUDGET_NONE:
      for (int k = 0; k < n_clients; k++) budgets[k] = 0;
      return FG_OK;
    case FG_BUDGET_FIXED: {
      size_t b = 0;
      FG_TRY(mib_to_bytes(spec->mib, "clients.budgets.mib", &b));
      if (b == 0) return FG_FAIL(FG_ERR_CONFIG, "clients.budgets.mib %g is less than one byte", spec->mib);
      for (int k = 0; k < n_clients; k++) budgets[k] = b;
      return FG_OK;
    }
    case FG_BUDGET_UNIFORM: return assign_uniform(spec, n_clients, seed, budgets);
    case FG_BUDGET_TIERS: return assign_tiers(spec, n_clients, seed, full_peak_bytes, budgets);
    case FG_BUDGET_PROFILES: return assign_profiles(spec, n_clients, seed, budgets);
  }
  return FG_FAIL(FG_ERR_CONFIG, "clients.budgets.kind %d is not none, fixed, uniform, tiers or profiles",
                 (int)spec->kind);
}
