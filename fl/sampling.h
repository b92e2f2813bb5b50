/* Client sampling: who trains in each round.
 *
 * The number of participants is m = per_round when per_round > 0, else ceil(fraction x
 * n_clients) (with a 1e-9 tolerance, so 0.1 x 30 is 3), at least 1 and at most the pool:
 *   - uniform:   m distinct clients, uniformly from all clients (levels are ignored);
 *   - eligible:  m distinct clients, uniformly from those with level >= 0 (the ones that fit
 *                something the method offers);
 *   - per_level: with L = n_levels, floor(m / L) from each level and the remaining m mod L from
 *                level L / 2 (the middle one; HypeMeFed gives it to level 2 of 3); a level with
 *                too few clients gives all it has (the shortfall is not moved elsewhere).
 * Draws are partial Fisher-Yates shuffles of the candidates in ascending id order. Uniform and
 * eligible read the stream (seed, FG_RNG_SAMPLING, round, 0), so every method sees the same clients
 * in the same round for the same seed and client count (and eligible equals uniform when every
 * client is eligible); level l of per_level reads (seed, FG_RNG_SAMPLING, round, 1 + l).
 *
 * Owns nothing. */
#ifndef FG_FL_SAMPLING_H
#define FG_FL_SAMPLING_H

#include "engine/base/status.h"
#include "fl/schema.h"
#include "fl/spec.h"

#include <stdint.h>

/* Participants of round `round` (0-based), ascending client ids, into out[] (capacity n_clients);
 * *n_out receives their number.
 * level[k] is client k's level index in [0, n_levels) or -1 when it fits nothing the method
 * offers; level may be NULL for uniform (which ignores it), and is required otherwise.
 * Errors: FG_ERR_CONFIG for a bad spec (per_round < 0, fraction outside (0, 1] when per_round is
 * 0) and for eligible / per_level when no client has a level >= 0; FG_ERR_INVALID for
 * n_clients < 1, round < 0, n_levels < 1 (per_level), a level outside [-1, n_levels), NULL
 * pointers. On failure *n_out is 0. */
fg_status fg_sample_round(const fg_sampling_spec *spec, int n_clients, const int *level,
                          int n_levels, uint64_t seed, int round, int *out, int *n_out);

/* The kinds' names as configuration files give them: uniform, eligible, per_level, reference. */
enum { FG_SAMPLING_KINDS = 4 };
extern const fg_choice fg_sampling_kinds[FG_SAMPLING_KINDS];

/* The m of a round for a pool of `pool` clients (0 when pool is 0); spec as above, not checked. */
int fg_sample_count(const fg_sampling_spec *spec, int n_clients, int pool);

#endif
