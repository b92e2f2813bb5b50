/* Client memory budgets: the byte cap each client trains under, and the named device profiles.
 *
 * A budget spec (fl/spec.h, configs/README.md `clients.budgets`) becomes one number per client,
 * in bytes, 0 meaning "no cap":
 *   - none:     0 for everyone;
 *   - fixed:    floor(mib x 2^20) for everyone;
 *   - uniform:  an integer number of MiB drawn uniformly from [ceil(min_mib), floor(max_mib)] per
 *               client (client k takes the k-th draw of the stream), times 2^20;
 *   - tiers:    floor(fraction x full_peak_bytes), the full model's measured training peak;
 *   - profiles: the profile's training budget x 2^20 (fg_device_profile_budget_mib).
 * For tiers and profiles the number of clients of each entry is the largest-remainder rounding
 * of share x n_clients (shares renormalised by their sum; ties go to the earlier entry), so the
 * counts sum to n_clients; which clients get which entry: a seeded permutation of the clients,
 * whose first count_0 get entry 0, the next count_1 entry 1, and so on.
 *
 * Randomness comes only from the FG_RNG_BUDGET streams of `seed`: (seed, FG_RNG_BUDGET, 0, 0) for
 * the uniform draws, (seed, FG_RNG_BUDGET, 1, 0) for the permutation.
 *
 * Owns nothing: the profile table is static. Keep it in sync with configs/README.md (the tests
 * compare the two). */
#ifndef FG_FL_BUDGET_H
#define FG_FL_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"
#include "fl/spec.h"

/* A device's real memory and what of it training may use. The budget policy leaves the operating
 * system its share (its idle use and a floor of page cache) and the training process its own
 * code and libraries (on Jetson boards, whose GPU shares the memory, the CUDA context with cuBLAS
 * and cuDNN loaded); the rest is the ledger's cap:
 *   budget = memory - os - runtime   (MiB, 2^20 bytes). */
typedef struct fg_device_profile {
  const char *name;
  double memory_mib;  /* what the kernel reports as MemTotal with the default firmware */
  double os_mib;      /* left to the operating system (headless) and its page cache */
  double runtime_mib; /* left to the process's code, libraries and (shared-memory GPU) CUDA context */
  int shared_gpu;     /* 1: the GPU allocates from this same memory */
  const char *about;  /* the board and what the numbers assume */
} fg_device_profile;

/* memory_mib - os_mib - runtime_mib: what a client with this profile may train in. */
double fg_device_profile_budget_mib(const fg_device_profile *p);

/* The profile called `name`; NULL with FG_ERR_CONFIG (message listing every name) otherwise. */
const fg_device_profile *fg_device_profile_find(const char *name);
/* The table: fg_device_profile_count() entries, fg_device_profile_at(i) for i in [0, count). */
int fg_device_profile_count(void);
const fg_device_profile *fg_device_profile_at(int i);

/* Largest-remainder rounding of shares[n] x total: counts[n] >= 0 summing to total. Each quota
 * share / sum(shares) x total is floored (with a 1e-9 tolerance against rounding noise, so
 * 0.57 x 100 gives 57), and the floors' shortfall goes one each to the largest remainders, ties
 * (remainders within 1e-9) to the earlier entry. Shares must be finite and >= 0 with a positive sum; FG_ERR_CONFIG
 * otherwise. */
fg_status fg_largest_remainder(const double *shares, int n, int total, int *counts);

/* The rules of a budget spec that hold whatever the model (the config checks them at load):
 * fixed: mib finite and > 0; uniform: min_mib and max_mib finite and > 0, max_mib >= min_mib;
 * tiers: at least one, each fraction finite and > 0, each share in (0, 1], the shares summing to
 * 1 within 1e-6; profiles: at least one, shares likewise. On a violation FG_ERR_CONFIG, the
 * message says what is wrong and what was expected ("0 is out of range (expected > 0)") and
 * `key` (cap bytes) names the key below clients.budgets ("mib", "tiers[1].fraction", "tiers"). */
fg_status fg_budget_spec_check(const fg_budget_spec *spec, char *key, size_t cap);

/* Fills budgets[n_clients] (bytes, 0 = no cap) from `spec`. full_peak_bytes is the full model's
 * measured training peak, required (> 0) for tiers: FG_ERR_INVALID when it is 0 there. Spec
 * errors (fg_budget_spec_check's, and: no integer MiB in [min, max], an unknown profile, a
 * budget that rounds to 0 bytes or overflows) are FG_ERR_CONFIG naming the key
 * ("clients.budgets.tiers[1].fraction: ...") and value. */
fg_status fg_budgets_assign(const fg_budget_spec *spec, int n_clients, uint64_t seed,
                            size_t full_peak_bytes, size_t *budgets);

#endif
