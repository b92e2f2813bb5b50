/* Sampling: round sizes, ascending distinct ids, uniform ignoring levels, eligible never taking
 * level -1, per-level counts with the remainder in the middle, determinism, selection
 * frequencies (chi-square) over many rounds, errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "fl/sampling.h"

/* Ascending (so distinct) ids in [0, n). */
static void assert_ascending(const int *out, int m, int n) {
  for (int i = 0; i < m; i++) {
    cr_assert(out[i] >= 0 && out[i] < n, "id %d outside [0, %d)", out[i], n);
    if (i) cr_assert_gt(out[i], out[i - 1], "ids not strictly ascending at %d", i);
  }
}

static int sample(const fg_sampling_spec *spec, int n, const int *level, int n_levels, uint64_t seed,
                  int round, int *out) {
  int m = -1;
  FGT_OK(fg_sample_round(spec, n, level, n_levels, seed, round, out, &m));
  assert_ascending(out, m, n);
  return m;
}

Test(sampling, round_sizes) {
  int out[100];
  fg_sampling_spec s = {.kind = FG_SAMPLE_UNIFORM, .fraction = 0.1};
  cr_assert_eq(sample(&s, 100, NULL, 0, 1, 0, out), 10);
  cr_assert_eq(sample(&s, 30, NULL, 0, 1, 0, out), 3); /* 0.1 x 30 is 3.0000000000000004 */
  cr_assert_eq(sample(&s, 31, NULL, 0, 1, 0, out), 4);
  s.fraction = 0.001;
  cr_assert_eq(sample(&s, 100, NULL, 0, 1, 0, out), 1); /* at least one */
  s.fraction = 1.0;
  cr_assert_eq(sample(&s, 100, NULL, 0, 1, 0, out), 100);
  for (int k = 0; k < 100; k++) cr_assert_eq(out[k], k);
  s.per_round = 7;
  cr_assert_eq(sample(&s, 100, NULL, 0, 1, 0, out), 7);
  s.per_round = 500; /* at most the pool */
  cr_assert_eq(sample(&s, 100, NULL, 0, 1, 0, out), 100);
  cr_assert_eq(fg_sample_count(&s, 100, 0), 0);
}

Test(sampling, uniform_ignores_levels_and_is_deterministic) {
  enum { N = 50 };
  int level_a[N], level_b[N], a[N], b[N], c[N];
  fg_rng r = fg_rng_stream(1, FG_RNG_TEST, 0, 0);
  for (int k = 0; k < N; k++) {
    level_a[k] = -1;
    level_b[k] = (int)fg_rng_below(&r, 4) - 1;
  }
  fg_sampling_spec s = {.kind = FG_SAMPLE_UNIFORM, .per_round = 8};
  for (int round = 0; round < 20; round++) {
    int ma = sample(&s, N, NULL, 0, 77, round, a);
    int mb = sample(&s, N, level_a, 3, 77, round, b);
    int mc = sample(&s, N, level_b, 3, 77, round, c);
    cr_assert(ma == 8 && mb == 8 && mc == 8);
    cr_assert_eq(memcmp(a, b, sizeof(int) * 8), 0, "round %d: levels changed uniform sampling", round);
    cr_assert_eq(memcmp(a, c, sizeof(int) * 8), 0, "round %d", round);
  }
  /* Rounds differ from each other; seeds differ from each other. */
  sample(&s, N, NULL, 0, 77, 0, a);
  sample(&s, N, NULL, 0, 77, 1, b);
  sample(&s, N, NULL, 0, 78, 0, c);
  cr_assert_neq(memcmp(a, b, sizeof(int) * 8), 0);
  cr_assert_neq(memcmp(a, c, sizeof(int) * 8), 0);
}

Test(sampling, eligible_never_picks_unfit_clients) {
  enum { N = 40 };
  int level[N], out[N], all[N];
  for (int k = 0; k < N; k++) level[k] = k % 4 == 0 ? -1 : k % 3; /* 10 unfit, 30 fit */
  fg_sampling_spec s = {.kind = FG_SAMPLE_ELIGIBLE, .fraction = 0.25};
  for (int round = 0; round < 200; round++) {
    int m = sample(&s, N, level, 3, 5, round, out);
    cr_assert_eq(m, 10); /* ceil(0.25 x 40), the client count, not the pool */
    for (int i = 0; i < m; i++) cr_assert_geq(level[out[i]], 0, "round %d picked unfit client %d", round, out[i]);
  }
  /* More wanted than eligible: every eligible client, once. */
  s.per_round = 35;
  cr_assert_eq(sample(&s, N, level, 3, 5, 0, out), 30);
  for (int i = 0; i < 30; i++) cr_assert_geq(level[out[i]], 0);
  /* When every client is eligible, eligible equals uniform (the same stream). */
  for (int k = 0; k < N; k++) all[k] = k % 3;
  fg_sampling_spec u = {.kind = FG_SAMPLE_UNIFORM, .per_round = 9};
  s.per_round = 9;
  for (int round = 0; round < 10; round++) {
    int x[N], y[N];
    sample(&s, N, all, 3, 5, round, x);
    sample(&u, N, NULL, 0, 5, round, y);
    cr_assert_eq(memcmp(x, y, sizeof(int) * 9), 0, "round %d", round);
  }
  /* Nobody fits: a clear error. */
  for (int k = 0; k < N; k++) all[k] = -1;
  int m = 123;
  cr_assert_eq(fg_sample_round(&s, N, all, 3, 5, 0, out, &m), FG_ERR_CONFIG);
  cr_assert_eq(m, 0);
  cr_assert(strstr(fg_last_error(), "none of the 40 clients"), "%s", fg_last_error());
}

static void level_counts(const int *out, int m, const int *level, int n_levels, int *count) {
  memset(count, 0, (size_t)n_levels * sizeof *count);
  for (int i = 0; i < m; i++) count[level[out[i]]]++;
}

Test(sampling, per_level_counts) {
  enum { N = 60 };
  int level[N], out[N], count[4];
  for (int k = 0; k < N; k++) level[k] = k % 3; /* 20 per level, as HypeMeFed's i mod 3 */
  fg_sampling_spec s = {.kind = FG_SAMPLE_PER_LEVEL, .per_round = 10};
  int m = sample(&s, N, level, 3, 2, 0, out);
  cr_assert_eq(m, 10);
  level_counts(out, m, level, 3, count);
  cr_assert(count[0] == 3 && count[1] == 4 && count[2] == 3, "%d/%d/%d", count[0], count[1], count[2]);
  /* Four levels: the remainder goes to level 4 / 2 = 2. */
  for (int k = 0; k < N; k++) level[k] = k % 4;
  m = sample(&s, N, level, 4, 2, 3, out);
  cr_assert_eq(m, 10);
  level_counts(out, m, level, 4, count);
  cr_assert(count[0] == 2 && count[1] == 2 && count[2] == 4 && count[3] == 2, "%d/%d/%d/%d", count[0],
            count[1], count[2], count[3]);
  /* A level with too few clients gives what it has; unfit clients are never taken. */
  for (int k = 0; k < N; k++) level[k] = k == 5 ? 0 : (k % 7 == 0 ? -1 : 1 + k % 2);
  s.per_round = 12;
  m = sample(&s, N, level, 3, 2, 1, out);
  level_counts(out, m, level, 3, count);
  cr_assert(count[0] == 1 && count[1] == 4 && count[2] == 4, "%d/%d/%d", count[0], count[1], count[2]);
  cr_assert_eq(m, 9);
  for (int i = 0; i < m; i++) cr_assert_geq(level[out[i]], 0);
}

/* Chi-square of observed picks against rounds x p for every candidate. */
static double chi_square(const int *hits, const double *expected, int n) {
  double x2 = 0.0;
  for (int k = 0; k < n; k++)
    if (expected[k] > 0) x2 += (hits[k] - expected[k]) * (hits[k] - expected[k]) / expected[k];
  return x2;
}

Test(sampling, frequencies_match_m_over_pool) {
  enum { N = 30, ROUNDS = 3000 };
  int level[N], out[N], hits[N];
  double expected[N];
  for (int k = 0; k < N; k++) level[k] = k % 5 == 4 ? -1 : k % 3;
  int pool = 0, per_level[3] = {0, 0, 0};
  for (int k = 0; k < N; k++)
    if (level[k] >= 0) {
      pool++;
      per_level[level[k]]++;
    }
  fg_sampling_spec kinds[3] = {
      {.kind = FG_SAMPLE_UNIFORM, .per_round = 6},
      {.kind = FG_SAMPLE_ELIGIBLE, .per_round = 6},
      {.kind = FG_SAMPLE_PER_LEVEL, .per_round = 7},
  };
  for (int s = 0; s < 3; s++) {
    memset(hits, 0, sizeof hits);
    for (int round = 0; round < ROUNDS; round++) {
      int m = sample(&kinds[s], N, level, 3, 11, round, out);
      for (int i = 0; i < m; i++) hits[out[i]]++;
    }
    int cells = 0;
    for (int k = 0; k < N; k++) {
      double p;
      if (s == 0) p = 6.0 / N;
      else if (level[k] < 0) p = 0.0;
      else if (s == 1) p = 6.0 / pool;
      else p = (level[k] == 1 ? 3.0 : 2.0) / per_level[level[k]]; /* 7 over 3 levels: 2/3/2 */
      expected[k] = ROUNDS * p;
      if (p == 0.0) cr_assert_eq(hits[k], 0, "kind %d picked unfit client %d", s, k);
      else cells++;
    }
    /* Draws without replacement make the statistic a little smaller than chi-square(cells - 1);
     * mean cells - 1 <= 29, and 3 x that is far beyond its 1e-6 tail. */
    double x2 = chi_square(hits, expected, N);
    cr_assert_lt(x2, 3.0 * cells, "kind %d: chi-square %g over %d clients", s, x2, cells);
    for (int k = 0; k < N; k++)
      if (expected[k] > 0)
        cr_assert(fabs(hits[k] - expected[k]) < 0.2 * expected[k], "kind %d client %d: %d picks, expected %g", s, k,
                  hits[k], expected[k]);
  }
}

Test(sampling, errors) {
  int level[4] = {0, 1, 2, 0}, out[4], m = 9;
  fg_sampling_spec s = {.kind = FG_SAMPLE_PER_LEVEL, .per_round = 2};
  level[2] = 3;
  cr_assert_eq(fg_sample_round(&s, 4, level, 3, 1, 0, out, &m), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "client 2 has level 3"), "%s", fg_last_error());
  cr_assert_eq(m, 0);
  level[2] = 2;
  cr_assert_eq(fg_sample_round(&s, 4, level, 0, 1, 0, out, &m), FG_ERR_INVALID);
  cr_assert_eq(fg_sample_round(&s, 4, NULL, 3, 1, 0, out, &m), FG_ERR_INVALID);
  cr_assert_eq(fg_sample_round(&s, 4, level, 3, 1, -1, out, &m), FG_ERR_INVALID);
  cr_assert_eq(fg_sample_round(&s, 0, level, 3, 1, 0, out, &m), FG_ERR_INVALID);
  fg_sampling_spec f = {.kind = FG_SAMPLE_UNIFORM, .fraction = 0.0};
  cr_assert_eq(fg_sample_round(&f, 4, NULL, 0, 1, 0, out, &m), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "sampling.fraction 0"), "%s", fg_last_error());
  f.fraction = 1.5;
  cr_assert_eq(fg_sample_round(&f, 4, NULL, 0, 1, 0, out, &m), FG_ERR_CONFIG);
  f.per_round = -3;
  cr_assert_eq(fg_sample_round(&f, 4, NULL, 0, 1, 0, out, &m), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "per_round -3"), "%s", fg_last_error());
}
