/* IID, Dirichlet and shard partitions of a labelled dataset over federated clients. */
#include "fl/partition.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"

/* Stream tags (the high 32 bits of the stream's `a`), see fl/partition.h. */
enum {
  FG_PART_TAG_DIRICHLET = 0,
  FG_PART_TAG_CLIENT_SHUFFLE = 1,
  FG_PART_TAG_IID = 2,
  FG_PART_TAG_SHARDS = 3,
};

static fg_rng partition_stream(uint64_t seed, uint64_t tag, uint64_t attempt, uint64_t b) {
  return fg_rng_stream(seed, FG_RNG_PARTITION, (tag << 32) | attempt, b);
}

static fg_status data_alloc(fg_region *r, fg_ledger *ledger, size_t bytes, const char *what) {
  return fg_region_alloc(r, ledger, fg_host_device(), FG_MEM_DATA, bytes, what);
}

/* ---------------------------------------------------------------------------------------------
 * Argument checks. */

static const char *kind_name(fg_partition_kind kind) {
  switch (kind) {
    case FG_PARTITION_IID: return "iid";
    case FG_PARTITION_DIRICHLET: return "dirichlet";
    case FG_PARTITION_SHARDS: return "shards";
  }
  return "unknown";
}

static fg_status check_labels(const int32_t *labels, int64_t n, int classes) {
  for (int64_t i = 0; i < n; i++) {
    if (labels[i] < 0 || labels[i] >= classes)
      return FG_FAIL(FG_ERR_INVALID, "partition: label %d of sample %lld is outside [0, %d)",
                     (int)labels[i], (long long)i, classes);
  }
  return FG_OK;
}

static fg_status check_args(const fg_partition_spec *spec, const int32_t *labels, int64_t n,
                            int classes, int n_clients, const fg_ledger *ledger) {
  if (!spec || !labels || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "partition: spec, labels and ledger are required");
  if (n < 1 || (uint64_t)n > UINT32_MAX)
    return FG_FAIL(FG_ERR_INVALID, "partition: sample count %lld is outside [1, %u]", (long long)n,
                   UINT32_MAX);
  if (classes < 1) return FG_FAIL(FG_ERR_INVALID, "partition: class count %d, expected >= 1", classes);
  if (n_clients < 1)
    return FG_FAIL(FG_ERR_CONFIG, "partition: clients.count %d, expected >= 1", n_clients);
  if (n_clients > n)
    return FG_FAIL(FG_ERR_CONFIG,
                   "partition: %d clients but only %lld samples (every client needs at least one)",
                   n_clients, (long long)n);
  switch (spec->kind) {
    case FG_PARTITION_IID: break;
    case FG_PARTITION_DIRICHLET:
      if (!(spec->alpha > 0.0) || !isfinite(spec->alpha))
        return FG_FAIL(FG_ERR_CONFIG, "partition.alpha %g, expected a finite value > 0", spec->alpha);
      if (spec->min_size < 0)
        return FG_FAIL(FG_ERR_CONFIG, "partition.min_size %d, expected >= 0", spec->min_size);
      break;
    case FG_PARTITION_SHARDS:
      if (spec->classes_per_client < 1)
        return FG_FAIL(FG_ERR_CONFIG, "partition.classes_per_client %d, expected >= 1",
                       spec->classes_per_client);
      if ((int64_t)n_clients * spec->classes_per_client > n)
        return FG_FAIL(FG_ERR_CONFIG,
                       "partition: %d clients x classes_per_client %d = %lld shards but only %lld "
                       "samples",
                       n_clients, spec->classes_per_client,
                       (long long)n_clients * spec->classes_per_client, (long long)n);
      break;
    default:
      return FG_FAIL(FG_ERR_CONFIG, "partition.kind %d is not iid, dirichlet or shards", (int)spec->kind);
  }
  return check_labels(labels, n, classes);
}

/* ---------------------------------------------------------------------------------------------
 * Shared pieces. */

/* Start of part s when `total` items are cut into `parts` near-equal parts (the first
 * total mod parts parts one larger). */
static int64_t even_cut(int64_t total, int64_t parts, int64_t s) {
  int64_t q = total / parts, r = total % parts;
  return s * q + (s < r ? s : r);
}

/* Stable counting sort of positions 0..n-1 by label: sorted[class_start[c] ..] are class c's
 * positions in ascending order. class_start has classes + 1 entries. */
static void sort_by_label(const int32_t *labels, int64_t n, int classes, const int64_t *class_start,
                          int64_t *cursor, uint32_t *sorted) {
  memcpy(cursor, class_start, (size_t)classes * sizeof *cursor);
  for (int64_t i = 0; i < n; i++) sorted[cursor[labels[i]]++] = (uint32_t)i;
}

static void count_classes(const int32_t *labels, int64_t n, int classes, int64_t *class_start) {
  memset(class_start, 0, (size_t)(classes + 1) * sizeof *class_start);
  for (int64_t i = 0; i < n; i++) class_start[labels[i] + 1]++;
  for (int c = 0; c < classes; c++) class_start[c + 1] += class_start[c];
}

static void shuffle_clients(const fg_partition *p, uint64_t seed) {
  uint32_t *index = p->index.ptr;
  const int64_t *offset = p->offset.ptr;
  for (int k = 0; k < p->n_clients; k++) {
    fg_rng r = partition_stream(seed, FG_PART_TAG_CLIENT_SHUFFLE, 0, (uint64_t)k);
    fg_rng_shuffle_u32(&r, index + offset[k], (uint64_t)(offset[k + 1] - offset[k]));
  }
}

uint64_t fg_partition_hash(int n_clients, const int64_t *offset, const uint32_t *index) {
  uint64_t h = 0xcbf29ce484222325ull;
  const uint64_t prime = 0x100000001b3ull;
  uint32_t nc = (uint32_t)n_clients;
  for (int b = 0; b < 4; b++) h = (h ^ ((nc >> (8 * b)) & 0xffu)) * prime;
  for (int k = 0; k <= n_clients; k++) {
    uint64_t v = (uint64_t)offset[k];
    for (int b = 0; b < 8; b++) h = (h ^ ((v >> (8 * b)) & 0xffu)) * prime;
  }
  int64_t n = offset[n_clients];
  for (int64_t i = 0; i < n; i++) {
    uint32_t v = index[i];
    for (int b = 0; b < 4; b++) h = (h ^ ((v >> (8 * b)) & 0xffu)) * prime;
  }
  return h;
}

/* ---------------------------------------------------------------------------------------------
 * IID. */

static void make_iid(int64_t n, int n_clients, uint64_t seed, fg_partition *p) {
  uint32_t *index = p->index.ptr;
  int64_t *offset = p->offset.ptr;
  for (int64_t i = 0; i < n; i++) index[i] = (uint32_t)i;
  fg_rng r = partition_stream(seed, FG_PART_TAG_IID, 0, 0);
  fg_rng_shuffle_u32(&r, index, (uint64_t)n);
  for (int k = 0; k <= n_clients; k++) offset[k] = even_cut(n, n_clients, k);
}

/* ---------------------------------------------------------------------------------------------
 * Shards. */

static fg_status make_shards(const int32_t *labels, int64_t n, int classes, int n_clients, int per_client,
                             uint64_t seed, fg_ledger *ledger, fg_partition *p) {
  int64_t n_shards = (int64_t)n_clients * per_client;
  int64_t *class_start = calloc((size_t)classes + 1, sizeof *class_start);
  int64_t *cursor = calloc((size_t)classes, sizeof *cursor);
  fg_region sorted_r = {0}, shard_r = {0};
  fg_status s = (class_start && cursor) ? FG_OK : FG_FAIL(FG_ERR_OOM, "partition: out of host memory");
  if (s == FG_OK) s = data_alloc(&sorted_r, ledger, (size_t)n * sizeof(uint32_t), "partition sort");
  if (s == FG_OK) s = data_alloc(&shard_r, ledger, (size_t)n_shards * sizeof(uint32_t), "partition shards");
  if (s == FG_OK) {
    uint32_t *sorted = sorted_r.ptr, *shard = shard_r.ptr;
    uint32_t *index = p->index.ptr;
    int64_t *offset = p->offset.ptr;
    count_classes(labels, n, classes, class_start);
    sort_by_label(labels, n, classes, class_start, cursor, sorted);
    for (int64_t i = 0; i < n_shards; i++) shard[i] = (uint32_t)i;
    fg_rng r = partition_stream(seed, FG_PART_TAG_SHARDS, 0, 0);
    fg_rng_shuffle_u32(&r, shard, (uint64_t)n_shards);
    int64_t at = 0;
    for (int k = 0; k < n_clients; k++) {
      offset[k] = at;
      for (int j = 0; j < per_client; j++) {
        int64_t id = shard[(int64_t)k * per_client + j];
        int64_t lo = even_cut(n, n_shards, id), hi = even_cut(n, n_shards, id + 1);
        memcpy(index + at, sorted + lo, (size_t)(hi - lo) * sizeof *index);
        at += hi - lo;
      }
    }
    offset[n_clients] = at;
    shuffle_clients(p, seed);
  }
  fg_region_free(&shard_r);
  fg_region_free(&sorted_r);
  free(cursor);
  free(class_start);
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * Dirichlet (hypemefed.md §7). */

/* log of a Gamma(alpha, 1) draw, consuming the stream exactly as fg_rng_gamma(r, alpha) does
 * (for alpha < 1: one uniform u, then Gamma(alpha + 1), value Gamma(alpha + 1) u^(1/alpha)), but
 * kept in log space so that tiny alphas do not underflow to an all-zero Dirichlet draw. */
static double log_gamma_draw(fg_rng *r, double alpha) {
  if (alpha < 1.0) {
    double u = fg_rng_uniform_double(r);
    if (u < 1e-300) u = 1e-300;
    return log(fg_rng_gamma(r, alpha + 1.0)) + log(u) / alpha;
  }
  return log(fg_rng_gamma(r, alpha));
}

typedef struct dirichlet_work {
  int64_t n;
  int classes, n_clients;
  double alpha;
  const int32_t *labels;      /* [n] */
  const int64_t *class_start; /* [classes + 1] */
  int64_t *cursor;            /* [classes] */
  int64_t *held;              /* [n_clients] samples per client in this attempt */
  double *p;                  /* [n_clients] */
  uint32_t *order;            /* [n] sample indices, class by class, each class shuffled */
  uint32_t *owner;            /* [n] client of order[i] */
} dirichlet_work;

/* Splits class c's shuffled list over the clients; updates held[] and owner[]. */
static fg_status dirichlet_class(dirichlet_work *w, fg_rng *r, int c) {
  int N = w->n_clients;
  int64_t start = w->class_start[c], nk = w->class_start[c + 1] - start;
  fg_rng_shuffle_u32(r, w->order + start, (uint64_t)nk);
  for (int j = 0; j < N; j++) w->p[j] = log_gamma_draw(r, w->alpha);
  /* Clients holding >= n/N samples get nothing more: held * N >= n, exact in integers. */
  double top = -INFINITY;
  int open = 0;
  for (int j = 0; j < N; j++) {
    if (w->held[j] * N < w->n) {
      open++;
      if (w->p[j] > top) top = w->p[j];
    }
  }
  if (open == 0) {
    if (nk == 0) return FG_OK;
    /* Every client holding >= n/N means all n samples are placed already. */
    return FG_FAIL(FG_ERR_INTERNAL, "dirichlet partition: class %d has %lld samples left but "
                   "every client is full", c, (long long)nk);
  }
  double sum = 0.0;
  for (int j = 0; j < N; j++) {
    w->p[j] = w->held[j] * N < w->n ? exp(w->p[j] - top) : 0.0;
    sum += w->p[j];
  }
  /* cumsum(p / sum) as partial / sum: once the last open client is reached, partial equals sum
   * bit for bit, so the cut is exactly nk and a full client after it never gets a stray sample
   * from rounding (0.99999... x nk). */
  double partial = 0.0;
  int64_t prev = 0;
  for (int j = 0; j < N; j++) {
    partial += w->p[j];
    int64_t cut = nk;
    if (j < N - 1) { /* the last cut point is dropped: the last piece takes the rest */
      double f = floor(partial / sum * (double)nk);
      cut = f < (double)prev ? prev : (f > (double)nk ? nk : (int64_t)f);
    }
    for (int64_t i = prev; i < cut; i++) w->owner[start + i] = (uint32_t)j;
    w->held[j] += cut - prev;
    prev = cut;
  }
  return FG_OK;
}

/* One whole draw; *smallest receives the smallest client size. */
static fg_status dirichlet_attempt(dirichlet_work *w, uint64_t seed, int attempt, int64_t *smallest) {
  memset(w->held, 0, (size_t)w->n_clients * sizeof *w->held);
  /* Every attempt starts each class from its ascending index list. */
  sort_by_label(w->labels, w->n, w->classes, w->class_start, w->cursor, w->order);
  for (int c = 0; c < w->classes; c++) {
    fg_rng r = partition_stream(seed, FG_PART_TAG_DIRICHLET, (uint64_t)attempt, (uint64_t)c);
    FG_TRY(dirichlet_class(w, &r, c));
  }
  int64_t lo = INT64_MAX;
  for (int j = 0; j < w->n_clients; j++)
    if (w->held[j] < lo) lo = w->held[j];
  *smallest = lo;
  return FG_OK;
}

static fg_status make_dirichlet(const fg_partition_spec *spec, const int32_t *labels, int64_t n,
                                int classes, int n_clients, uint64_t seed, fg_ledger *ledger,
                                fg_partition *p) {
  if ((int64_t)spec->min_size * n_clients > n)
    return FG_FAIL(FG_ERR_CONFIG,
                   "dirichlet partition cannot give every client min_size %d samples at alpha %g: "
                   "%d clients x %d > %lld samples",
                   spec->min_size, spec->alpha, n_clients, spec->min_size, (long long)n);
  dirichlet_work w = {.n = n, .classes = classes, .n_clients = n_clients, .alpha = spec->alpha,
                      .labels = labels};
  int64_t *class_start = calloc((size_t)classes + 1, sizeof *class_start);
  w.cursor = calloc((size_t)classes, sizeof *w.cursor);
  w.held = calloc((size_t)n_clients, sizeof *w.held);
  w.p = calloc((size_t)n_clients, sizeof *w.p);
  w.class_start = class_start;
  fg_region order_r = {0}, owner_r = {0};
  fg_status s = (class_start && w.cursor && w.held && w.p)
                    ? FG_OK
                    : FG_FAIL(FG_ERR_OOM, "partition: out of host memory");
  if (s == FG_OK) s = data_alloc(&order_r, ledger, (size_t)n * sizeof(uint32_t), "partition order");
  if (s == FG_OK) s = data_alloc(&owner_r, ledger, (size_t)n * sizeof(uint32_t), "partition owners");
  if (s == FG_OK) {
    w.order = order_r.ptr;
    w.owner = owner_r.ptr;
    count_classes(labels, n, classes, class_start);
  }
  int attempt = 0;
  int64_t smallest = -1;
  while (s == FG_OK) {
    s = dirichlet_attempt(&w, seed, attempt, &smallest);
    attempt++;
    if (s != FG_OK || smallest >= spec->min_size) break;
    if (attempt >= FG_PARTITION_MAX_ATTEMPTS)
      s = FG_FAIL(FG_ERR_CONFIG,
                  "dirichlet partition cannot give every client min_size %d samples at alpha %g: "
                  "%d draws over %d clients left the smallest with %lld (raise partition.alpha or "
                  "lower partition.min_size)",
                  spec->min_size, spec->alpha, attempt, n_clients, (long long)smallest);
  }
  if (s == FG_OK) {
    /* Client j's list: its piece of class 0, then of class 1, ... (order[] is class-major). */
    int64_t *offset = p->offset.ptr;
    uint32_t *index = p->index.ptr;
    offset[0] = 0;
    for (int j = 0; j < n_clients; j++) {
      offset[j + 1] = offset[j] + w.held[j];
      w.held[j] = offset[j]; /* now the write cursor */
    }
    for (int64_t i = 0; i < n; i++) index[w.held[w.owner[i]]++] = w.order[i];
    shuffle_clients(p, seed);
  }
  fg_region_free(&owner_r);
  fg_region_free(&order_r);
  free(w.p);
  free(w.held);
  free(w.cursor);
  free(class_start);
  return s;
}

/* ---------------------------------------------------------------------------------------------
 * Public API. */

fg_status fg_partition_make(const fg_partition_spec *spec, const int32_t *labels, int64_t n,
                            int classes, int n_clients, uint64_t seed, fg_ledger *ledger,
                            fg_partition *out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "partition: output is NULL");
  memset(out, 0, sizeof *out);
  FG_TRY(check_args(spec, labels, n, classes, n_clients, ledger));
  fg_partition p = {.n_clients = n_clients, .n_samples = n};
  fg_status s = data_alloc(&p.index, ledger, (size_t)n * sizeof(uint32_t), "partition indices");
  if (s == FG_OK)
    s = data_alloc(&p.offset, ledger, ((size_t)n_clients + 1) * sizeof(int64_t), "partition offsets");
  if (s == FG_OK) {
    switch (spec->kind) {
      case FG_PARTITION_IID: make_iid(n, n_clients, seed, &p); break;
      case FG_PARTITION_DIRICHLET:
        s = make_dirichlet(spec, labels, n, classes, n_clients, seed, ledger, &p);
        break;
      case FG_PARTITION_SHARDS:
        s = make_shards(labels, n, classes, n_clients, spec->classes_per_client, seed, ledger, &p);
        break;
    }
  }
  if (s != FG_OK) {
    fg_error_prefix("%s partition of %lld samples over %d clients", kind_name(spec->kind),
                    (long long)n, n_clients);
    fg_partition_free(&p);
    return s;
  }
  p.hash = fg_partition_hash(n_clients, p.offset.ptr, p.index.ptr);
  *out = p;
  return FG_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Local train / test splits. */

static int cmp_index(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Samples of a client's local test part: ceil(fraction x n) in double precision, as sklearn. */
static int64_t local_test_count(double fraction, int64_t n) { return (int64_t)ceil(fraction * (double)n); }

/* A partition holding `total` of the n_samples indices over n_clients clients, its regions
 * allocated, offsets unset. */
static fg_status alloc_parts(int n_clients, int64_t n_samples, int64_t total, fg_ledger *ledger, const char *what,
                             fg_partition *out) {
  memset(out, 0, sizeof *out);
  out->n_clients = n_clients;
  out->n_samples = n_samples;
  fg_status s = data_alloc(&out->index, ledger, (size_t)total * sizeof(uint32_t), what);
  if (s == FG_OK) s = data_alloc(&out->offset, ledger, ((size_t)n_clients + 1) * sizeof(int64_t), what);
  if (s != FG_OK) fg_partition_free(out);
  return s;
}

/* Sizes of every client's test part; FG_ERR_CONFIG when one would leave a client no training sample. */
static fg_status local_test_counts(const fg_partition *p, double fraction, int64_t *test_total, int64_t *largest) {
  *test_total = 0;
  *largest = 0;
  for (int k = 0; k < p->n_clients; k++) {
    int64_t n = fg_partition_size(p, k), t = local_test_count(fraction, n);
    if (n > 0 && t >= n)
      return FG_FAIL(FG_ERR_CONFIG,
                     "local test fraction %g leaves client %d no training sample (it holds %lld samples, "
                     "ceil(%g x %lld) = %lld go to its local test split)",
                     fraction, k, (long long)n, fraction, (long long)n, (long long)t);
    *test_total += t;
    if (n > *largest) *largest = n;
  }
  return FG_OK;
}

/* Client k's list, sorted then shuffled by its stream, cut into its test and train parts. */
static void split_client(const fg_partition *p, int k, double fraction, uint64_t seed, uint32_t *scratch,
                         fg_partition *train, fg_partition *test) {
  int64_t n = fg_partition_size(p, k), t = local_test_count(fraction, n);
  int64_t *train_off = train->offset.ptr, *test_off = test->offset.ptr;
  uint32_t *train_idx = (uint32_t *)train->index.ptr + train_off[k];
  uint32_t *test_idx = (uint32_t *)test->index.ptr + test_off[k];
  if (n > 0) memcpy(scratch, fg_partition_client(p, k), (size_t)n * sizeof *scratch);
  qsort(scratch, (size_t)n, sizeof *scratch, cmp_index);
  fg_rng r = fg_rng_stream(seed, FG_RNG_LOCAL_SPLIT, (uint64_t)k, 0);
  fg_rng_shuffle_u32(&r, scratch, (uint64_t)n);
  if (t > 0) memcpy(test_idx, scratch, (size_t)t * sizeof *scratch);
  if (n > t) memcpy(train_idx, scratch + t, (size_t)(n - t) * sizeof *scratch);
  qsort(test_idx, (size_t)t, sizeof *test_idx, cmp_index);
  qsort(train_idx, (size_t)(n - t), sizeof *train_idx, cmp_index);
  test_off[k + 1] = test_off[k] + t;
  train_off[k + 1] = train_off[k] + (n - t);
}

fg_status fg_partition_split_local(const fg_partition *p, double test_fraction, uint64_t seed, fg_ledger *ledger,
                                   fg_partition *train, fg_partition *test) {
  if (!train || !test) return FG_FAIL(FG_ERR_INVALID, "local split: output is NULL");
  memset(train, 0, sizeof *train);
  memset(test, 0, sizeof *test);
  if (!p || !ledger || !p->offset.ptr) return FG_FAIL(FG_ERR_INVALID, "local split: partition and ledger are required");
  if (!(test_fraction > 0.0 && test_fraction < 1.0))
    return FG_FAIL(FG_ERR_INVALID, "local split: test fraction %g is outside (0, 1)", test_fraction);
  int64_t test_total = 0, largest = 0;
  FG_TRY(local_test_counts(p, test_fraction, &test_total, &largest));
  int64_t total = ((const int64_t *)p->offset.ptr)[p->n_clients];
  fg_region scratch = {0};
  fg_status s = alloc_parts(p->n_clients, p->n_samples, total - test_total, ledger, "local train splits", train);
  if (s == FG_OK) s = alloc_parts(p->n_clients, p->n_samples, test_total, ledger, "local test splits", test);
  if (s == FG_OK) s = data_alloc(&scratch, ledger, (size_t)largest * sizeof(uint32_t), "local split scratch");
  if (s == FG_OK) {
    ((int64_t *)train->offset.ptr)[0] = 0;
    ((int64_t *)test->offset.ptr)[0] = 0;
    for (int k = 0; k < p->n_clients; k++) split_client(p, k, test_fraction, seed, scratch.ptr, train, test);
    train->hash = fg_partition_hash(train->n_clients, train->offset.ptr, train->index.ptr);
    test->hash = fg_partition_hash(test->n_clients, test->offset.ptr, test->index.ptr);
  }
  fg_region_free(&scratch);
  if (s != FG_OK) {
    fg_partition_free(train);
    fg_partition_free(test);
  }
  return s;
}

void fg_partition_free(fg_partition *p) {
  if (!p) return;
  fg_region_free(&p->index);
  fg_region_free(&p->offset);
  memset(p, 0, sizeof *p);
}

int64_t fg_partition_size(const fg_partition *p, int k) {
  if (!p || !p->offset.ptr || k < 0 || k >= p->n_clients) return 0;
  const int64_t *offset = p->offset.ptr;
  return offset[k + 1] - offset[k];
}

const uint32_t *fg_partition_client(const fg_partition *p, int k) {
  if (!p || !p->offset.ptr || k < 0 || k >= p->n_clients) return NULL;
  const int64_t *offset = p->offset.ptr;
  return (const uint32_t *)p->index.ptr + offset[k];
}

/* ---------------------------------------------------------------------------------------------
 * JSON export. */

static fg_status write_client(fg_atomic_file *f, const fg_partition *p, const int32_t *labels,
                              int classes, int k, int64_t *hist) {
  const uint32_t *idx = fg_partition_client(p, k);
  int64_t m = fg_partition_size(p, k);
  memset(hist, 0, (size_t)classes * sizeof *hist);
  for (int64_t i = 0; i < m; i++) {
    if ((int64_t)idx[i] >= p->n_samples)
      return FG_FAIL(FG_ERR_INVALID, "partition: client %d holds index %u outside [0, %lld)", k,
                     idx[i], (long long)p->n_samples);
    int32_t y = labels[idx[i]];
    if (y < 0 || y >= classes)
      return FG_FAIL(FG_ERR_INVALID, "partition: label %d of sample %u is outside [0, %d)", (int)y,
                     idx[i], classes);
    hist[y]++;
  }
  FG_TRY(fg_atomic_printf(f, "%s\n    {\"id\": %d, \"samples\": %lld, \"classes\": [", k ? "," : "",
                          k, (long long)m));
  for (int c = 0; c < classes; c++)
    FG_TRY(fg_atomic_printf(f, "%s%lld", c ? ", " : "", (long long)hist[c]));
  FG_TRY(fg_atomic_printf(f, "],\n     \"indices\": ["));
  for (int64_t i = 0; i < m; i++) FG_TRY(fg_atomic_printf(f, "%s%u", i ? "," : "", idx[i]));
  return fg_atomic_printf(f, "]}");
}

fg_status fg_partition_write(const fg_partition *p, const int32_t *labels, int classes,
                             const char *path) {
  if (!p || !p->offset.ptr || !labels || !path)
    return FG_FAIL(FG_ERR_INVALID, "partition write: partition, labels and path are required");
  if (classes < 1) return FG_FAIL(FG_ERR_INVALID, "partition write: class count %d, expected >= 1", classes);
  int64_t *hist = calloc((size_t)classes, sizeof *hist);
  if (!hist) return FG_FAIL(FG_ERR_OOM, "partition write: out of host memory");
  fg_atomic_file f = {0};
  fg_status s = fg_atomic_open(&f, path);
  if (s == FG_OK)
    s = fg_atomic_printf(&f, "{\"hash\": \"%016llx\", \"clients\": [", (unsigned long long)p->hash);
  for (int k = 0; s == FG_OK && k < p->n_clients; k++) s = write_client(&f, p, labels, classes, k, hist);
  if (s == FG_OK) s = fg_atomic_printf(&f, "\n]}\n");
  if (s == FG_OK)
    s = fg_atomic_commit(&f);
  else
    fg_atomic_abort(&f);
  free(hist);
  if (s != FG_OK) fg_error_prefix("partition file %s", path);
  return s;
}
