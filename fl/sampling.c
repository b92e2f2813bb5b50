/* Uniform, eligible-only and equal-per-level client sampling. */
#include "fl/sampling.h"

#include <math.h>
#include <stdlib.h>

#include "engine/base/rng.h"

const fg_choice fg_sampling_kinds[FG_SAMPLING_KINDS] = {{"uniform", FG_SAMPLE_UNIFORM},
                                                        {"eligible", FG_SAMPLE_ELIGIBLE},
                                                        {"per_level", FG_SAMPLE_PER_LEVEL},
                                                        {"reference", FG_SAMPLE_REFERENCE}};

int fg_sample_count(const fg_sampling_spec *spec, int n_clients, int pool) {
  if (pool <= 0) return 0;
  double m = spec->per_round > 0 ? (double)spec->per_round : ceil(spec->fraction * n_clients - 1e-9);
  if (m < 1.0) m = 1.0;
  return m > (double)pool ? pool : (int)m;
}

/* Partial Fisher-Yates: afterwards cand[0..take) is a uniform sample without replacement of the
 * `pool` candidates. */
static void draw_without_replacement(fg_rng *r, int *cand, int pool, int take) {
  for (int i = 0; i < take; i++) {
    int j = i + (int)fg_rng_below(r, (uint64_t)(pool - i));
    int t = cand[i];
    cand[i] = cand[j];
    cand[j] = t;
  }
}

static int compare_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

/* Writes the clients of level `want` (any level >= 0 when want < 0) to cand[], ascending. */
static int gather(const int *level, int n_clients, int want, int *cand) {
  int count = 0;
  for (int k = 0; k < n_clients; k++)
    if (want < 0 ? level[k] >= 0 : level[k] == want) cand[count++] = k;
  return count;
}

static fg_status check_args(const fg_sampling_spec *spec, int n_clients, const int *level,
                            int n_levels, int round, const int *out, const int *n_out) {
  if (!spec || !out || !n_out) return FG_FAIL(FG_ERR_INVALID, "sampling: spec and outputs are required");
  if (n_clients < 1) return FG_FAIL(FG_ERR_INVALID, "sampling: %d clients, expected >= 1", n_clients);
  if (round < 0) return FG_FAIL(FG_ERR_INVALID, "sampling: round %d, expected >= 0", round);
  if (spec->per_round < 0)
    return FG_FAIL(FG_ERR_CONFIG, "sampling.per_round %d, expected >= 1 (or 0 for fraction)", spec->per_round);
  if (spec->per_round == 0 && !(spec->fraction > 0.0 && spec->fraction <= 1.0))
    return FG_FAIL(FG_ERR_CONFIG, "sampling.fraction %g, expected a value in (0, 1]", spec->fraction);
  if (spec->kind != FG_SAMPLE_UNIFORM && spec->kind != FG_SAMPLE_ELIGIBLE && spec->kind != FG_SAMPLE_PER_LEVEL)
    return FG_FAIL(FG_ERR_CONFIG, "sampling.kind %d is not uniform, eligible or per_level (reference is resolved to "
                   "the method's kind before drawing)", (int)spec->kind);
  if (spec->kind == FG_SAMPLE_UNIFORM) return FG_OK;
  if (!level) return FG_FAIL(FG_ERR_INVALID, "sampling: eligible and per_level need the clients' levels");
  if (n_levels < 1) return FG_FAIL(FG_ERR_INVALID, "sampling: %d levels, expected >= 1", n_levels);
  for (int k = 0; k < n_clients; k++)
    if (level[k] < -1 || level[k] >= n_levels)
      return FG_FAIL(FG_ERR_INVALID, "sampling: client %d has level %d, expected -1 or [0, %d)", k,
                     level[k], n_levels);
  return FG_OK;
}

fg_status fg_sample_round(const fg_sampling_spec *spec, int n_clients, const int *level,
                          int n_levels, uint64_t seed, int round, int *out, int *n_out) {
  if (n_out) *n_out = 0;
  FG_TRY(check_args(spec, n_clients, level, n_levels, round, out, n_out));
  int pool = n_clients;
  if (spec->kind == FG_SAMPLE_UNIFORM) {
    for (int k = 0; k < n_clients; k++) out[k] = k;
  } else {
    pool = gather(level, n_clients, -1, out);
    if (pool == 0)
      return FG_FAIL(FG_ERR_CONFIG,
                     "sampling: none of the %d clients fits any level the method offers (budgets too "
                     "small for its smallest model)",
                     n_clients);
  }
  int m = fg_sample_count(spec, n_clients, pool);
  int chosen = 0;
  if (spec->kind != FG_SAMPLE_PER_LEVEL) {
    fg_rng r = fg_rng_stream(seed, FG_RNG_SAMPLING, (uint64_t)round, 0);
    draw_without_replacement(&r, out, pool, m);
    chosen = m;
  } else {
    /* out[0..chosen) holds the picks so far; each level's candidates go right after them. */
    for (int l = 0; l < n_levels; l++) {
      int take = m / n_levels + (l == n_levels / 2 ? m % n_levels : 0);
      int count = gather(level, n_clients, l, out + chosen);
      if (take > count) take = count;
      fg_rng r = fg_rng_stream(seed, FG_RNG_SAMPLING, (uint64_t)round, 1 + (uint64_t)l);
      draw_without_replacement(&r, out + chosen, count, take);
      chosen += take;
    }
  }
  qsort(out, (size_t)chosen, sizeof *out, compare_int);
  *n_out = chosen;
  return FG_OK;
}
