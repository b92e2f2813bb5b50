/* Counter-based random numbers (Philox4x32-10).
 *
 * Every random draw in fedgap comes from a stream named by (seed, purpose, a, b): for example
 * (seed, FG_RNG_SHUFFLE, epoch, client) or (seed, FG_RNG_DROPOUT, step, node). The value at
 * position i of a stream is a pure function of the key and i, so results never depend on the
 * order in which other streams are used, and a GPU kernel can draw the same numbers as the CPU.
 * Owns nothing: streams are plain values. */
#ifndef FG_RNG_H
#define FG_RNG_H

#include <stdint.h>

#include "engine/base/philox.h" /* fg_philox4x32, fg_rng_u32_at, fg_rng_uniform_at */

typedef enum fg_rng_purpose {
  FG_RNG_INIT = 1,      /* model parameter initialisation */
  FG_RNG_SHUFFLE,       /* mini-batch order */
  FG_RNG_AUGMENT,       /* random crop and flip */
  FG_RNG_DROPOUT,       /* dropout masks */
  FG_RNG_PARTITION,     /* client data partition */
  FG_RNG_SAMPLING,      /* client sampling per round */
  FG_RNG_LEVEL,         /* level / budget assignment */
  FG_RNG_SERVER,        /* server-side training (hypernetworks) */
  FG_RNG_BUDGET,        /* client memory budgets */
  FG_RNG_TEST,          /* test fixtures */
  FG_RNG_LOCAL_SPLIT,   /* each client's local train / test split (fl/world.h) */
} fg_rng_purpose;

/* A stream key: a 64-bit hash of its name. */
uint64_t fg_rng_key(uint64_t seed, fg_rng_purpose purpose, uint64_t a, uint64_t b);

/* Stateless access (engine/base/philox.h, shared with device code): fg_rng_u32_at(key, i) is
 * word i of the stream `key`, fg_rng_uniform_at(key, i) a uniform float in [0, 1) from it. */

/* A sequential reader over one stream. */
typedef struct fg_rng {
  uint64_t key;
  uint64_t pos; /* next word */
} fg_rng;

fg_rng fg_rng_stream(uint64_t seed, fg_rng_purpose purpose, uint64_t a, uint64_t b);
uint32_t fg_rng_u32(fg_rng *r);
uint64_t fg_rng_u64(fg_rng *r);
float fg_rng_uniform(fg_rng *r);               /* [0, 1), 24 bits */
double fg_rng_uniform_double(fg_rng *r);       /* [0, 1), 53 bits */
double fg_rng_normal(fg_rng *r);               /* standard normal (Box-Muller, 2 doubles) */
uint64_t fg_rng_below(fg_rng *r, uint64_t n);  /* uniform integer in [0, n), unbiased; n > 0 */
double fg_rng_gamma(fg_rng *r, double shape);  /* Gamma(shape, 1), shape > 0 (Marsaglia-Tsang) */
/* Fisher-Yates shuffle of an index array. */
void fg_rng_shuffle_u32(fg_rng *r, uint32_t *v, uint64_t n);

#endif
