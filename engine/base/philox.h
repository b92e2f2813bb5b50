/* Philox4x32-10 (Salmon et al., SC'11), the counter-based generator behind every random draw, in
 * one header that both C compilers and nvcc compile (as __host__ __device__ functions there):
 * the CPU backend and the CUDA kernels draw the same numbers from the same code. Streams, keys and
 * the samplers built on them are in engine/base/rng.h. Owns nothing. */
#ifndef FG_PHILOX_H
#define FG_PHILOX_H

#include <stdint.h>

#include "engine/base/host_device.h"

/* Philox4x32-10 block: four words for counter (c0..c3) and key (k0, k1). */
FG_HOST_DEVICE static inline void fg_philox4x32(const uint32_t ctr[4], uint32_t k0, uint32_t k1,
                                                uint32_t out[4]) {
  const uint32_t m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
  const uint32_t w0 = 0x9E3779B9u, w1 = 0xBB67AE85u;
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  for (int round = 0; round < 10; round++) {
    const uint64_t p0 = (uint64_t)m0 * c0;
    const uint64_t p1 = (uint64_t)m1 * c2;
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    c0 = hi1 ^ c1 ^ k0;
    c1 = lo1;
    c2 = hi0 ^ c3 ^ k1;
    c3 = lo0;
    k0 += w0;
    k1 += w1;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* Word i of the stream `key`: word i & 3 of the block at counter (i >> 2, 0), key split in two. */
FG_HOST_DEVICE static inline uint32_t fg_rng_u32_at(uint64_t key, uint64_t i) {
  const uint64_t block = i >> 2;
  const uint32_t ctr[4] = {(uint32_t)block, (uint32_t)(block >> 32), 0u, 0u};
  uint32_t out[4];
  fg_philox4x32(ctr, (uint32_t)key, (uint32_t)(key >> 32), out);
  return out[i & 3];
}

/* Uniform float in [0, 1) with 24 random bits, from word i (exact: an integer times 2^-24). */
FG_HOST_DEVICE static inline float fg_rng_uniform_at(uint64_t key, uint64_t i) {
  return (float)(fg_rng_u32_at(key, i) >> 8) * (1.0f / 16777216.0f);
}

#endif
