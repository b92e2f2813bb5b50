/* Philox4x32-10 (Salmon et al., SC'11) and the samplers built on it. */
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

void fg_philox4x32(const uint32_t ctr[4], uint32_t k0, uint32_t k1, uint32_t out[4]) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  const uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  for (int round = 0; round < 10; round++) {
    uint64_t p0 = (uint64_t)M0 * c0;
    uint64_t p1 = (uint64_t)M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += W0;
    k1 += W1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

uint32_t fg_rng_u32_at(uint64_t key, uint64_t i) {
  uint64_t block = i >> 2;
  uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0, 0};
  uint32_t out[4];
  fg_philox4x32(ctr, (uint32_t)key, (uint32_t)(key >> 32), out);
  return out[i & 3];
}

float fg_rng_uniform_at(uint64_t key, uint64_t i) {
  return (float)(fg_rng_u32_at(key, i) >> 8) * (1.0f / 16777216.0f);
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
