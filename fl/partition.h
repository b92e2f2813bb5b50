/* Client data partitions: which training samples each federated client holds.
 *
 * A partition assigns sample indices 0..n-1 of a dataset to clients, each sample to exactly one
 * client, by one of three schemes (fl/spec.h, configs/README.md `data.partition`):
 *   - iid: a seeded permutation of 0..n-1 cut into n_clients contiguous parts whose sizes differ
 *     by at most one (the first n mod n_clients clients get one more);
 *   - dirichlet: the label-skewed split of hypemefed.md §7, step by step: per class, shuffle the
 *     class's indices, draw p ~ Dir(alpha 1_N) as normalised Gamma(alpha) draws, zero p_j for
 *     every client already holding >= n/N samples and renormalise, cut the class list at
 *     floor(cumsum(p) n_k) without the last cut point and append piece j to client j; redraw the
 *     whole partition until every client holds >= min_size samples (at most
 *     FG_PARTITION_MAX_ATTEMPTS draws, then FG_ERR_CONFIG); finally shuffle each client's list;
 *   - shards: indices sorted by label (stable) and cut into n_clients x classes_per_client
 *     near-equal shards (sizes differ by at most one); each client gets classes_per_client shards
 *     drawn without replacement, and its list is shuffled. A shard straddles two classes when
 *     the class sizes are not multiples of the shard size (as in McMahan et al.'s split).
 *
 * Randomness comes only from the FG_RNG_PARTITION streams of `seed` (engine/base/rng.h), named
 * (seed, FG_RNG_PARTITION, a, b) with a = (scheme tag << 32) | attempt:
 *   tag 0: dirichlet attempt `attempt`, class b (its shuffle, then its N Gamma draws);
 *   tag 1: the final shuffle of client b's list (dirichlet and shards);
 *   tag 2: the iid permutation (b = 0);
 *   tag 3: the shard draw (b = 0).
 * So a partition depends on nothing but (spec, labels, n, classes, n_clients, seed).
 * fg_partition_split_local (clients' local train / test splits) draws from its own streams,
 * (seed, FG_RNG_LOCAL_SPLIT, client, 0).
 *
 * Owns: the two regions of a partition (index and offset arrays on the CPU device, category
 * FG_MEM_DATA, charged to the ledger given to fg_partition_make); free with fg_partition_free.
 * Temporary arrays of the make call are charged to the same ledger and freed before it returns. */
#ifndef FG_FL_PARTITION_H
#define FG_FL_PARTITION_H

#include <stdint.h>

#include "engine/base/status.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
#include "fl/spec.h"

/* Dirichlet draws tried before giving up on min_size. */
#define FG_PARTITION_MAX_ATTEMPTS 1000

typedef struct fg_partition {
  int n_clients;
  int64_t n_samples;      /* samples of the dataset the indices point into (fg_partition_make: n, every
                             one assigned to a client; a local split part: its parent's, partly held) */
  fg_region index;        /* uint32 [offset[n_clients]]: client k's sample indices at [offset[k], offset[k+1]) */
  fg_region offset;       /* int64 [n_clients + 1] */
  uint64_t hash;          /* FNV-1a 64, see fg_partition_hash */
} fg_partition;

/* Splits samples 0..n-1 with labels[n] (int32 in [0, classes)) over n_clients clients by `spec`.
 * `ledger` (required) is charged for the partition's regions and the temporaries. On failure
 * *out is zeroed and nothing stays charged. Errors: FG_ERR_CONFIG for n_clients < 1 or > n,
 * alpha <= 0 (or not finite), min_size < 0, classes_per_client < 1, more shards than samples,
 * or a min_size the Dirichlet draws cannot reach; FG_ERR_INVALID for classes < 1, a label outside
 * [0, classes) (naming its position and value), n < 1 or n > UINT32_MAX, NULL pointers. */
fg_status fg_partition_make(const fg_partition_spec *spec, const int32_t *labels, int64_t n,
                            int classes, int n_clients, uint64_t seed, fg_ledger *ledger,
                            fg_partition *out);

/* The local split of hypemefed.md section 7: each client's samples in `p` split into a local test
 * part and a local train part. Client k's n_k indices, sorted ascending (so the split depends only
 * on the client's set of samples), are shuffled with the stream (seed, FG_RNG_LOCAL_SPLIT, k, 0)
 * by fg_rng_shuffle_u32; the first ceil(test_fraction x n_k) of the shuffled list (computed in
 * double precision, as sklearn's train_test_split(test_size=test_fraction) sizes its test part)
 * form client k's part of *test, the rest its part of *train. Both outputs hold every client (in
 * the same order as p), each client's indices ascending, with p's n_samples (the dataset's size)
 * and the hash set as fg_partition_make does; together they hold exactly p's samples. `ledger` is charged for their
 * regions and a temporary. On failure both are zeroed and nothing stays charged. Errors:
 * FG_ERR_CONFIG when a client holding samples would keep no training sample (naming the client, its
 * size and its test size); FG_ERR_INVALID for test_fraction outside (0, 1) or NULL pointers. */
fg_status fg_partition_split_local(const fg_partition *p, double test_fraction, uint64_t seed, fg_ledger *ledger,
                                   fg_partition *train, fg_partition *test);

/* Releases both regions and zeroes *p. Safe on a zeroed partition and idempotent. */
void fg_partition_free(fg_partition *p);

/* Number of samples of client k (0 for k out of range). */
int64_t fg_partition_size(const fg_partition *p, int k);
/* Client k's sample indices, fg_partition_size(p, k) of them (NULL for k out of range). */
const uint32_t *fg_partition_client(const fg_partition *p, int k);

/* FNV-1a 64 over the little-endian bytes of: n_clients (uint32), offset[0..n_clients] (int64
 * each), then the offset[n_clients] indices (uint32 each). The value fg_partition_make stores. */
uint64_t fg_partition_hash(int n_clients, const int64_t *offset, const uint32_t *index);

/* Writes the partition as JSON, atomically (engine/io/atomic_file.h):
 *   {"hash": "<16 lowercase hex>", "clients": [{"id": 0, "samples": n, "classes": [count of each
 *    class, `classes` entries], "indices": [...]}, ...]}
 * `labels` are the labels the partition was made from (every index must be a valid position,
 * every label in [0, classes)). FG_ERR_IO when the file cannot be written. */
fg_status fg_partition_write(const fg_partition *p, const int32_t *labels, int classes,
                             const char *path);

/* Limits of a partition file read back (the configuration's clients.count; classes of a dataset). */
#define FG_PARTITION_MAX_CLIENTS 1000000
#define FG_PARTITION_MAX_CLASSES 65536

/* Reads a file fg_partition_write wrote (partition.json, local_test.json) for `n_clients` clients
 * over a dataset of `n_samples` samples and `classes` classes, into *out (regions charged to
 * `ledger`, as fg_partition_make's). Checked before anything is kept: the file is no larger than
 * such a partition can take (refused unparsed otherwise, naming the limit), valid JSON, "hash" 16
 * hex digits, one client entry per client in order (id), each with its sample count, `classes`
 * class counts adding up to it (with `labels` given, the counts of its samples' labels) and that
 * many indices in [0, n_samples), no sample held twice. out->hash is the hash the file records:
 * the hash of the partition as fg_partition_make made it, which need not be the hash of the
 * indices as listed (a run folder lists every client's samples in ascending order, fl/world.h),
 * so a caller checks a file against a partition by comparing both the hash and the indices.
 * FG_ERR_FORMAT naming the file and the entry otherwise; FG_ERR_IO when it cannot be read; on
 * failure *out is zeroed and nothing stays charged. */
fg_status fg_partition_read(const char *path, int n_clients, int64_t n_samples, int classes, const int32_t *labels,
                            fg_ledger *ledger, fg_partition *out);

#endif
