/* Stream keys and the samplers built on Philox4x32-10 (engine/base/philox.h). */
#include "engine/base/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t fg_rng_key(uint64_t seed, fg_rng_purpose purpose, uint64_t a, uint64_t b) {
  uint64_t h = splitmix64(seed);
  h = splitmix64(h ^ (uint64_t)purpose);
  h = splitmix64(h ^ a);
  h = splitmix64(h ^ b);
  return h;
}

fg_rng fg_rng_stream(uint64_t seed, fg_rng_purpose purpose, uint64_t a, uint64_t b) {
  fg_rng r = {fg_rng_key(seed, purpose, a, b), 0};
  return r;
}

uint32_t fg_rng_u32(fg_rng *r) { return fg_rng_u32_at(r->key, r->pos++); }

uint64_t fg_rng_u64(fg_rng *r) {
  uint64_t hi = fg_rng_u32(r);
  return (hi << 32) | fg_rng_u32(r);
}

float fg_rng_uniform(fg_rng *r) { return fg_rng_uniform_at(r->key, r->pos++); }

double fg_rng_uniform_double(fg_rng *r) {
  return (double)(fg_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double fg_rng_normal(fg_rng *r) {
  double u1 = fg_rng_uniform_double(r);
  double u2 = fg_rng_uniform_double(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

uint64_t fg_rng_below(fg_rng *r, uint64_t n) {
  /* Rejection sampling on 64-bit words: unbiased for every n. */
  uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
  uint64_t x;
  do {
    x = fg_rng_u64(r);
  } while (x >= limit);
  return x % n;
}

double fg_rng_gamma(fg_rng *r, double shape) {
  if (shape < 1.0) {
    /* Gamma(a) = Gamma(a + 1) * U^(1/a). */
    double u = fg_rng_uniform_double(r);
    if (u < 1e-300) u = 1e-300;
    return fg_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = fg_rng_normal(r), v = 1.0 + c * x;
    if (v <= 0.0) continue;
    v = v * v * v;
    double u = fg_rng_uniform_double(r);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (u > 0.0 && log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

void fg_rng_shuffle_u32(fg_rng *r, uint32_t *v, uint64_t n) {
  for (uint64_t i = n; i > 1; i--) {
    uint64_t j = fg_rng_below(r, i);
    uint32_t t = v[i - 1];
    v[i - 1] = v[j];
    v[j] = t;
  }
}
