/* Budgets: largest-remainder counts (hand-derived and against a sort-based reference), tier
 * values, uniform whole-MiB draws covering their range, profiles (and their agreement with
 * configs/README.md), determinism, errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"
#include "fl/budget.h"

#define MIB ((size_t)1 << 20)

/* ---------------------------------------------------------------------------------------------
 * Largest remainder. */

static void assert_counts(const double *shares, int n, int total, const int *want) {
  int got[16];
  FGT_OK(fg_largest_remainder(shares, n, total, got));
  for (int i = 0; i < n; i++) cr_assert_eq(got[i], want[i], "total %d entry %d: got %d want %d", total, i, got[i], want[i]);
}

Test(budget, largest_remainder_hand_derived) {
  /* 3.5, 2.1, 1.4: floors 3 + 2 + 1 = 6, the one left goes to .5. */
  assert_counts((double[]){0.5, 0.3, 0.2}, 3, 7, (int[]){4, 2, 1});
  /* Ties go to the earlier entry. */
  assert_counts((double[]){1.0 / 3, 1.0 / 3, 1.0 / 3}, 3, 10, (int[]){4, 3, 3});
  assert_counts((double[]){0.25, 0.25, 0.25, 0.25}, 4, 2, (int[]){1, 1, 0, 0});
  /* 0.57 x 100 is 56.99999999999999 in doubles: still 57. */
  assert_counts((double[]){0.57, 0.43}, 2, 100, (int[]){57, 43});
  /* 0.1, 0.2, 0.7 of 1: only the largest remainder (.7) gets the client. */
  assert_counts((double[]){0.1, 0.2, 0.7}, 3, 1, (int[]){0, 0, 1});
  assert_counts((double[]){0.0, 1.0}, 2, 5, (int[]){0, 5});
}

/* Reference: quotas from exact rationals (shares given as integers over their sum), floors,
 * then +1 to the entries sorted by remainder (descending), ties by index. */
static void reference_counts(const int *weights, int n, int total, int *counts) {
  long long sum = 0;
  for (int i = 0; i < n; i++) sum += weights[i];
  long long rem[16];
  int order[16], assigned = 0;
  for (int i = 0; i < n; i++) {
    long long q = (long long)weights[i] * total;
    counts[i] = (int)(q / sum);
    rem[i] = q % sum;
    assigned += counts[i];
    order[i] = i;
  }
  for (int a = 0; a < n; a++) /* selection sort: remainder descending, index ascending */
    for (int b = a + 1; b < n; b++)
      if (rem[order[b]] > rem[order[a]] || (rem[order[b]] == rem[order[a]] && order[b] < order[a])) {
        int t = order[a];
        order[a] = order[b];
        order[b] = t;
      }
  for (int i = 0; i < total - assigned; i++) counts[order[i]]++;
}

Test(budget, largest_remainder_matches_reference) {
  fg_rng r = fg_rng_stream(3, FG_RNG_TEST, 0, 0);
  for (int trial = 0; trial < 500; trial++) {
    int n = 1 + (int)fg_rng_below(&r, 8);
    int total = (int)fg_rng_below(&r, 1000);
    int w[16], want[16], got[16];
    double shares[16];
    int wsum = 0;
    for (int i = 0; i < n; i++) wsum += w[i] = 1 + (int)fg_rng_below(&r, 20);
    for (int i = 0; i < n; i++) shares[i] = (double)w[i] / wsum;
    reference_counts(w, n, total, want);
    FGT_OK(fg_largest_remainder(shares, n, total, got));
    int sum = 0;
    for (int i = 0; i < n; i++) {
      cr_assert_eq(got[i], want[i], "trial %d entry %d of %d, total %d", trial, i, n, total);
      sum += got[i];
    }
    cr_assert_eq(sum, total);
  }
}

/* ---------------------------------------------------------------------------------------------
 * Kinds. */

Test(budget, none_and_fixed) {
  size_t b[5] = {9, 9, 9, 9, 9};
  fg_budget_spec none = {.kind = FG_BUDGET_NONE};
  FGT_OK(fg_budgets_assign(&none, 5, 1, 0, b));
  for (int k = 0; k < 5; k++) cr_assert_eq(b[k], 0);
  fg_budget_spec fixed = {.kind = FG_BUDGET_FIXED, .mib = 1.5};
  FGT_OK(fg_budgets_assign(&fixed, 5, 1, 0, b));
  for (int k = 0; k < 5; k++) cr_assert_eq(b[k], 1572864);
  fixed.mib = 0.0;
  cr_assert_eq(fg_budgets_assign(&fixed, 5, 1, 0, b), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "clients.budgets.mib: 0 is out of range (expected > 0)"), "%s", fg_last_error());
}

Test(budget, tiers_counts_and_values) {
  fg_budget_tier tiers[3] = {{0.25, 0.5}, {0.5, 0.3}, {1.0, 0.2}};
  fg_budget_spec spec = {.kind = FG_BUDGET_TIERS, .tiers = tiers, .n_tiers = 3};
  const size_t peak = 1000003;
  const size_t value[3] = {250000, 500001, 1000003}; /* floor(fraction x peak) */
  int totals[3] = {7, 10, 101};
  int want[3][3] = {{4, 2, 1}, {5, 3, 2}, {51, 30, 20}}; /* 50.5, 30.3, 20.2 -> 50+30+20, +1 to .5 */
  for (int t = 0; t < 3; t++) {
    int N = totals[t];
    size_t *b = calloc((size_t)N, sizeof *b);
    FGT_OK(fg_budgets_assign(&spec, N, 5, peak, b));
    int count[3] = {0, 0, 0};
    for (int k = 0; k < N; k++) {
      int hit = -1;
      for (int i = 0; i < 3; i++)
        if (b[k] == value[i]) hit = i;
      cr_assert_geq(hit, 0, "client %d budget %zu is no tier's value", k, b[k]);
      count[hit]++;
    }
    for (int i = 0; i < 3; i++) cr_assert_eq(count[i], want[t][i], "%d clients, tier %d", N, i);
    free(b);
  }
  /* Which clients: a seeded permutation, not the client order; the same for the same seed. */
  size_t a[101], c[101], d[101];
  FGT_OK(fg_budgets_assign(&spec, 101, 5, peak, a));
  FGT_OK(fg_budgets_assign(&spec, 101, 5, peak, c));
  FGT_OK(fg_budgets_assign(&spec, 101, 6, peak, d));
  cr_assert_eq(memcmp(a, c, sizeof a), 0);
  cr_assert_neq(memcmp(a, d, sizeof a), 0);
  int first_half_tier0 = 0;
  for (int k = 0; k < 51; k++) first_half_tier0 += a[k] == value[0];
  cr_assert_lt(first_half_tier0, 45, "tier 0 went to the first clients: not permuted");
  cr_assert_gt(first_half_tier0, 10);
  /* Tiers need the peak. */
  cr_assert_eq(fg_budgets_assign(&spec, 10, 5, 0, a), FG_ERR_INVALID);
  /* Shares must sum to 1. */
  tiers[2].share = 0.3;
  cr_assert_eq(fg_budgets_assign(&spec, 10, 5, peak, a), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "sum to 1.1"), "%s", fg_last_error());
  tiers[2].share = 0.2;
  tiers[1].fraction = -0.5;
  cr_assert_eq(fg_budgets_assign(&spec, 10, 5, peak, a), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "clients.budgets.tiers[1].fraction: -0.5 is out of range (expected > 0)"), "%s",
            fg_last_error());
}

Test(budget, uniform_whole_mib_covering_the_range) {
  fg_budget_spec spec = {.kind = FG_BUDGET_UNIFORM, .min_mib = 100.5, .max_mib = 110.2};
  enum { N = 3000 };
  size_t *b = calloc(N, sizeof *b);
  FGT_OK(fg_budgets_assign(&spec, N, 9, 0, b));
  int count[111] = {0};
  for (int k = 0; k < N; k++) {
    cr_assert_eq(b[k] % MIB, 0, "client %d: %zu is not whole MiB", k, b[k]);
    size_t mib = b[k] / MIB;
    cr_assert(mib >= 101 && mib <= 110, "client %d: %zu MiB outside [101, 110]", k, mib);
    count[mib]++;
  }
  /* Ten values, 300 expected each; 5 sigma is about 82. */
  for (int v = 101; v <= 110; v++) cr_assert(count[v] > 210 && count[v] < 390, "%d MiB drawn %d times", v, count[v]);
  size_t *again = calloc(N, sizeof *again), *other = calloc(N, sizeof *other);
  FGT_OK(fg_budgets_assign(&spec, N, 9, 0, again));
  FGT_OK(fg_budgets_assign(&spec, N, 10, 0, other));
  cr_assert_eq(memcmp(b, again, N * sizeof *b), 0);
  cr_assert_neq(memcmp(b, other, N * sizeof *b), 0);
  /* Exact integers: a single value. */
  spec.min_mib = spec.max_mib = 64;
  FGT_OK(fg_budgets_assign(&spec, 10, 9, 0, b));
  for (int k = 0; k < 10; k++) cr_assert_eq(b[k], 64 * MIB);
  spec.min_mib = 100.2;
  spec.max_mib = 100.8;
  cr_assert_eq(fg_budgets_assign(&spec, 10, 9, 0, b), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "min_mib 100.2"), "%s", fg_last_error());
  spec.min_mib = 200;
  spec.max_mib = 100;
  cr_assert_eq(fg_budgets_assign(&spec, 10, 9, 0, b), FG_ERR_CONFIG);
  free(b);
  free(again);
  free(other);
}

/* ---------------------------------------------------------------------------------------------
 * Profiles. */

Test(budget, profile_lookup_and_unknown_name) {
  const fg_device_profile *p = fg_device_profile_find("jetson-nano-4gb");
  cr_assert_not_null(p);
  cr_assert_eq(fg_device_profile_budget_mib(p), 3964 - 700 - 1024);
  cr_assert(p->shared_gpu);
  cr_assert(p->about && strlen(p->about) > 10);
  cr_assert_eq(fg_device_profile_budget_mib(fg_device_profile_find("rpi4-2gb")), 1848 - 320 - 64);
  cr_assert_not(fg_device_profile_find("rpi5-8gb")->shared_gpu);
  fg_clear_error();
  cr_assert_null(fg_device_profile_find("rpi5-16gb"));
  cr_assert_eq(fg_last_status(), FG_ERR_CONFIG);
  for (int i = 0; i < fg_device_profile_count(); i++)
    cr_assert(strstr(fg_last_error(), fg_device_profile_at(i)->name), "%s lacks %s", fg_last_error(),
              fg_device_profile_at(i)->name);
  cr_assert(strstr(fg_last_error(), "rpi5-16gb"), "%s", fg_last_error());
  cr_assert_null(fg_device_profile_at(fg_device_profile_count()));
}

/* configs/README.md's "Device profiles" table ("| `name` | memory | OS | runtime | budget |")
 * must say what the table in fl/budget.c says, and each row's budget must be its memory less the
 * two shares. */
Test(budget, profile_table_matches_configs_readme) {
  const char *src = getenv("FEDGAP_SOURCE_DIR");
  cr_assert_not_null(src, "FEDGAP_SOURCE_DIR is not set (ctest sets it)");
  char path[4096];
  snprintf(path, sizeof path, "%s/configs/README.md", src);
  unsigned char *text = NULL;
  size_t len = 0;
  FGT_OK(fg_read_file(path, 1u << 20, &text, &len));
  const char *para = strstr((const char *)text, "Device profiles");
  cr_assert_not_null(para, "configs/README.md has no 'Device profiles' paragraph");
  const char *end = strstr(para, "\n## ");
  int found = 0;
  for (const char *q = strstr(para, "\n| `"); q && (!end || q < end); q = strstr(q + 1, "\n| `")) {
    char name[64];
    double memory = -1, os = -1, runtime = -1, budget = -1;
    cr_assert_eq(sscanf(q, "\n| `%63[^`]` | %lf | %lf | %lf | %lf |", name, &memory, &os, &runtime, &budget), 5,
                 "a profile row that does not read: %.60s", q + 1);
    const fg_device_profile *p = fg_device_profile_find(name);
    cr_assert_not_null(p, "README profile %s is missing from the table", name);
    cr_assert_eq(p->memory_mib, memory, "%s: memory %g in the table, %g in the README", name, p->memory_mib, memory);
    cr_assert_eq(p->os_mib, os, "%s: OS %g in the table, %g in the README", name, p->os_mib, os);
    cr_assert_eq(p->runtime_mib, runtime, "%s: runtime %g in the table, %g in the README", name, p->runtime_mib,
                 runtime);
    cr_assert_eq(budget, memory - os - runtime, "%s: the README's budget %g is not %g - %g - %g", name, budget,
                 memory, os, runtime);
    cr_assert_eq(fg_device_profile_budget_mib(p), budget);
    found++;
  }
  cr_assert_eq(found, fg_device_profile_count(), "README lists %d profiles, the table %d", found,
               fg_device_profile_count());
  free(text);
}

Test(budget, profiles_by_share) {
  fg_budget_profile prof[2] = {{"rpi4-2gb", 0.5}, {"jetson-nano-4gb", 0.5}};
  fg_budget_spec spec = {.kind = FG_BUDGET_PROFILES, .profiles = prof, .n_profiles = 2};
  size_t b[9];
  FGT_OK(fg_budgets_assign(&spec, 9, 4, 0, b));
  int small = 0, large = 0;
  for (int k = 0; k < 9; k++) {
    small += b[k] == 1464 * MIB; /* 1848 - 320 - 64 */
    large += b[k] == 2240 * MIB; /* 3964 - 700 - 1024 */
  }
  cr_assert_eq(small, 5); /* 4.5 and 4.5: the tie goes to the first entry */
  cr_assert_eq(large, 4);
  prof[1].name = "toaster";
  cr_assert_eq(fg_budgets_assign(&spec, 9, 4, 0, b), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "profiles[1]") && strstr(fg_last_error(), "toaster"), "%s",
            fg_last_error());
}

Test(budget, bad_arguments) {
  size_t b[2];
  fg_budget_spec none = {.kind = FG_BUDGET_NONE};
  cr_assert_eq(fg_budgets_assign(&none, 0, 1, 0, b), FG_ERR_CONFIG);
  cr_assert_eq(fg_budgets_assign(NULL, 2, 1, 0, b), FG_ERR_INVALID);
  fg_budget_spec bad = {.kind = (fg_budget_kind)42};
  cr_assert_eq(fg_budgets_assign(&bad, 2, 1, 0, b), FG_ERR_CONFIG);
  fg_budget_spec empty = {.kind = FG_BUDGET_TIERS};
  cr_assert_eq(fg_budgets_assign(&empty, 2, 1, 100, b), FG_ERR_CONFIG);
}

/* ---------------------------------------------------------------------------------------------
 * The spec's rules, as the config checks them: the offending key and what was expected. */

static void expect_spec_error(const fg_budget_spec *spec, const char *key, const char *message) {
  char got[64] = "";
  cr_assert_eq(fg_budget_spec_check(spec, got, sizeof got), FG_ERR_CONFIG, "no error for key %s", key);
  cr_assert_str_eq(got, key);
  cr_assert_str_eq(fg_last_error(), message);
}

Test(budget, spec_check_names_the_key) {
  char key[64];
  fg_budget_tier tiers[2] = {{0.5, 0.25}, {1.0, 0.75}};
  fg_budget_profile prof[2] = {{"rpi4-2gb", 0.5}, {"not-a-profile", 0.5}};
  fg_budget_spec ok[] = {{.kind = FG_BUDGET_NONE},
                         {.kind = FG_BUDGET_FIXED, .mib = 300},
                         {.kind = FG_BUDGET_UNIFORM, .min_mib = 100, .max_mib = 100},
                         {.kind = FG_BUDGET_TIERS, .tiers = tiers, .n_tiers = 2},
                         /* names are looked up when budgets are assigned */
                         {.kind = FG_BUDGET_PROFILES, .profiles = prof, .n_profiles = 2}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) FGT_OK(fg_budget_spec_check(&ok[i], key, sizeof key));

  expect_spec_error(&(fg_budget_spec){.kind = FG_BUDGET_FIXED, .mib = 0}, "mib", "0 is out of range (expected > 0)");
  expect_spec_error(&(fg_budget_spec){.kind = FG_BUDGET_UNIFORM, .min_mib = -1, .max_mib = 5}, "min_mib",
                    "-1 is out of range (expected > 0)");
  expect_spec_error(&(fg_budget_spec){.kind = FG_BUDGET_UNIFORM, .min_mib = 900, .max_mib = 100}, "max_mib",
                    "100 is below min_mib 900 (expected >= min_mib)");
  tiers[1].fraction = 0;
  expect_spec_error(&ok[3], "tiers[1].fraction", "0 is out of range (expected > 0)");
  tiers[1].fraction = 1.0;
  tiers[0].share = 1.5;
  expect_spec_error(&ok[3], "tiers[0].share", "1.5 is out of range (expected in (0, 1])");
  tiers[0].share = 0.5;
  expect_spec_error(&ok[3], "tiers", "the shares sum to 1.25 (expected 1)");
  prof[1].share = 0;
  expect_spec_error(&ok[4], "profiles[1].share", "0 is out of range (expected in (0, 1])");
  expect_spec_error(&(fg_budget_spec){.kind = FG_BUDGET_TIERS}, "tiers", "no entries (expected at least one)");
  expect_spec_error(&(fg_budget_spec){.kind = (fg_budget_kind)9}, "kind",
                    "9 is not none, fixed, uniform, tiers or profiles");
}
