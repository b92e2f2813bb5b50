/* Partitions: every sample used once, sizes, determinism, the Dirichlet split against a naive
 * re-implementation of hypemefed.md §7, skew against alpha, min_size, clean failures, shards,
 * ledger accounting, the JSON export parsed back with cJSON. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"
#include "engine/mem/ledger.h"
#include "fl/partition.h"

/* ---------------------------------------------------------------------------------------------
 * Fixtures and independent checks. */

static int32_t *random_labels(int64_t n, int classes, uint64_t seed) {
  int32_t *y = malloc((size_t)n * sizeof *y);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 11, 0);
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)fg_rng_below(&r, (uint64_t)classes);
  return y;
}

static int32_t *balanced_labels(int64_t n, int classes) {
  int32_t *y = malloc((size_t)n * sizeof *y);
  for (int64_t i = 0; i < n; i++) y[i] = (int32_t)(i % classes);
  return y;
}

static const int64_t *offsets(const fg_partition *p) { return p->offset.ptr; }
static const uint32_t *indices(const fg_partition *p) { return p->index.ptr; }

/* Offsets start at 0, never decrease, end at n; every index in [0, n) appears exactly once. */
static void assert_exact_cover(const fg_partition *p, int64_t n, int n_clients) {
  cr_assert_eq(p->n_clients, n_clients);
  cr_assert_eq(p->n_samples, n);
  const int64_t *off = offsets(p);
  cr_assert_eq(off[0], 0);
  cr_assert_eq(off[n_clients], n);
  for (int k = 0; k < n_clients; k++) {
    cr_assert_geq(off[k + 1], off[k], "offsets decrease at client %d", k);
    cr_assert_eq(fg_partition_size(p, k), off[k + 1] - off[k]);
    cr_assert_eq(fg_partition_client(p, k), indices(p) + off[k]);
  }
  unsigned char *seen = calloc((size_t)n, 1);
  for (int64_t i = 0; i < n; i++) {
    uint32_t v = indices(p)[i];
    cr_assert_lt((int64_t)v, n, "index %u out of range", v);
    cr_assert_eq(seen[v], 0, "sample %u assigned twice", v);
    seen[v] = 1;
  }
  free(seen);
}

/* FNV-1a 64 over the documented byte string, built explicitly. */
static uint64_t reference_hash(int n_clients, const int64_t *off, const uint32_t *idx) {
  size_t len = 4 + 8 * ((size_t)n_clients + 1) + 4 * (size_t)off[n_clients];
  unsigned char *bytes = malloc(len), *b = bytes;
  for (int i = 0; i < 4; i++) *b++ = (unsigned char)((uint32_t)n_clients >> (8 * i));
  for (int k = 0; k <= n_clients; k++)
    for (int i = 0; i < 8; i++) *b++ = (unsigned char)((uint64_t)off[k] >> (8 * i));
  for (int64_t j = 0; j < off[n_clients]; j++)
    for (int i = 0; i < 4; i++) *b++ = (unsigned char)(idx[j] >> (8 * i));
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < len; i++) {
    h ^= bytes[i];
    h *= 1099511628211ull;
  }
  free(bytes);
  return h;
}

static int distinct_classes(const fg_partition *p, const int32_t *y, int classes, int k) {
  int *hit = calloc((size_t)classes, sizeof *hit), count = 0;
  const uint32_t *idx = fg_partition_client(p, k);
  for (int64_t i = 0; i < fg_partition_size(p, k); i++)
    if (!hit[y[idx[i]]]++) count++;
  free(hit);
  return count;
}

/* Mean over clients of the largest class's share of the client's samples. */
static double mean_top_share(const fg_partition *p, const int32_t *y, int classes) {
  double total = 0.0;
  int64_t *hist = calloc((size_t)classes, sizeof *hist);
  for (int k = 0; k < p->n_clients; k++) {
    memset(hist, 0, (size_t)classes * sizeof *hist);
    const uint32_t *idx = fg_partition_client(p, k);
    int64_t m = fg_partition_size(p, k), top = 0;
    for (int64_t i = 0; i < m; i++) hist[y[idx[i]]]++;
    for (int c = 0; c < classes; c++)
      if (hist[c] > top) top = hist[c];
    total += m ? (double)top / (double)m : 0.0;
  }
  free(hist);
  return total / p->n_clients;
}

static fg_ledger ledger;

static void setup(void) {
  fgt_setup_cpu(1);
  fg_ledger_init(&ledger, "partition-test", 0);
}

TestSuite(partition, .init = setup);

static const fg_partition_spec iid_spec = {.kind = FG_PARTITION_IID};

/* ---------------------------------------------------------------------------------------------
 * IID. */

Test(partition, iid_cover_sizes_hash_and_ledger) {
  const int64_t n = 1003;
  const int N = 10;
  int32_t *y = random_labels(n, 10, 1);
  fg_partition p;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 10, N, 7, &ledger, &p));
  assert_exact_cover(&p, n, N);
  /* 1003 = 10 x 100 + 3: the first three clients hold 101. */
  for (int k = 0; k < N; k++) cr_assert_eq(fg_partition_size(&p, k), k < 3 ? 101 : 100, "client %d", k);
  cr_assert_eq(p.hash, reference_hash(N, offsets(&p), indices(&p)));
  cr_assert_eq(p.hash, fg_partition_hash(N, offsets(&p), indices(&p)));
  /* Not the identity: the permutation is shuffled. */
  int64_t in_place = 0;
  for (int64_t i = 0; i < n; i++) in_place += indices(&p)[i] == (uint32_t)i;
  cr_assert_lt(in_place, 20);
  /* Exactly the two regions stay charged, as data. */
  size_t want = fg_region_round(fg_host_device(), (size_t)n * 4) +
                fg_region_round(fg_host_device(), (size_t)(N + 1) * 8);
  cr_assert_eq(ledger.current, want);
  cr_assert_eq(ledger.by_cat[FG_MEM_DATA], want);
  cr_assert_eq(ledger.live, 2);
  fg_partition_free(&p);
  cr_assert_eq(ledger.current, 0);
  cr_assert_eq(ledger.live, 0);
  fg_partition_free(&p); /* idempotent */
  free(y);
}

Test(partition, determinism_per_seed_for_every_kind) {
  const int64_t n = 2000;
  int32_t *y = random_labels(n, 10, 2);
  fg_partition_spec specs[3] = {
      {.kind = FG_PARTITION_IID},
      {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 10},
      {.kind = FG_PARTITION_SHARDS, .classes_per_client = 2},
  };
  for (int s = 0; s < 3; s++) {
    fg_partition a, b, c;
    FGT_OK(fg_partition_make(&specs[s], y, n, 10, 20, 42, &ledger, &a));
    FGT_OK(fg_partition_make(&specs[s], y, n, 10, 20, 42, &ledger, &b));
    FGT_OK(fg_partition_make(&specs[s], y, n, 10, 20, 43, &ledger, &c));
    cr_assert_eq(a.hash, b.hash, "kind %d: same seed, different hash", s);
    cr_assert_eq(memcmp(indices(&a), indices(&b), (size_t)n * 4), 0, "kind %d", s);
    cr_assert_eq(memcmp(offsets(&a), offsets(&b), 21 * 8), 0, "kind %d", s);
    cr_assert_neq(a.hash, c.hash, "kind %d: different seeds, same hash", s);
    cr_assert_eq(a.hash, reference_hash(20, offsets(&a), indices(&a)), "kind %d", s);
    fg_partition_free(&a);
    fg_partition_free(&b);
    fg_partition_free(&c);
  }
  cr_assert_eq(ledger.current, 0, "temporaries or partitions left charged");
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * Dirichlet. */

/* hypemefed.md §7 written out naively with growing per-client lists and plain normalised
 * fg_rng_gamma draws, on the streams fl/partition.h documents. Returns the attempts used. */
static int reference_dirichlet(const int32_t *y, int64_t n, int classes, int N, double alpha,
                               int min_size, uint64_t seed, int64_t *off, uint32_t *idx) {
  uint32_t **list = calloc((size_t)N, sizeof *list);
  int64_t *len = calloc((size_t)N, sizeof *len);
  uint32_t *cls = malloc((size_t)n * sizeof *cls);
  double *p = malloc((size_t)N * sizeof *p);
  int attempt = 0;
  for (;; attempt++) {
    for (int j = 0; j < N; j++) {
      free(list[j]);
      list[j] = malloc((size_t)n * sizeof **list);
      len[j] = 0;
    }
    for (int c = 0; c < classes; c++) {
      int64_t nk = 0;
      for (int64_t i = 0; i < n; i++)
        if (y[i] == c) cls[nk++] = (uint32_t)i;
      fg_rng r = fg_rng_stream(seed, FG_RNG_PARTITION, (uint64_t)attempt, (uint64_t)c);
      fg_rng_shuffle_u32(&r, cls, (uint64_t)nk);
      double sum = 0.0;
      for (int j = 0; j < N; j++) p[j] = fg_rng_gamma(&r, alpha);
      for (int j = 0; j < N; j++) {
        if ((double)len[j] >= (double)n / N) p[j] = 0.0;
        sum += p[j];
      }
      /* cumsum of the normalised p, as prefix sum / sum (exactly 1 at the last open client). */
      double partial = 0.0;
      int64_t prev = 0;
      for (int j = 0; j < N; j++) {
        partial += p[j];
        int64_t cut = j == N - 1 ? nk : (int64_t)floor(partial / sum * (double)nk);
        for (int64_t i = prev; i < cut; i++) list[j][len[j]++] = cls[i];
        prev = cut;
      }
    }
    int64_t smallest = n;
    for (int j = 0; j < N; j++)
      if (len[j] < smallest) smallest = len[j];
    if (smallest >= min_size) break;
  }
  off[0] = 0;
  for (int j = 0; j < N; j++) {
    fg_rng r = fg_rng_stream(seed, FG_RNG_PARTITION, (uint64_t)1 << 32, (uint64_t)j);
    fg_rng_shuffle_u32(&r, list[j], (uint64_t)len[j]);
    memcpy(idx + off[j], list[j], (size_t)len[j] * sizeof *idx);
    off[j + 1] = off[j] + len[j];
    free(list[j]);
  }
  free(list);
  free(len);
  free(cls);
  free(p);
  return attempt + 1;
}

Test(partition, dirichlet_equals_naive_reference) {
  const int64_t n = 3000;
  const int classes = 10, N = 20;
  int32_t *y = random_labels(n, classes, 3);
  double alphas[] = {0.3, 1.0, 5.0};
  int saw_retry = 0;
  for (int a = 0; a < 3; a++) {
    fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = alphas[a], .min_size = 40};
    fg_partition p;
    FGT_OK(fg_partition_make(&spec, y, n, classes, N, 5, &ledger, &p));
    assert_exact_cover(&p, n, N);
    int64_t *off = malloc((size_t)(N + 1) * sizeof *off);
    uint32_t *idx = malloc((size_t)n * sizeof *idx);
    int attempts = reference_dirichlet(y, n, classes, N, alphas[a], 40, 5, off, idx);
    saw_retry |= attempts > 1;
    cr_assert_eq(memcmp(off, offsets(&p), (size_t)(N + 1) * sizeof *off), 0, "alpha %g: sizes differ", alphas[a]);
    cr_assert_eq(memcmp(idx, indices(&p), (size_t)n * sizeof *idx), 0, "alpha %g: indices differ", alphas[a]);
    for (int k = 0; k < N; k++) cr_assert_geq(fg_partition_size(&p, k), 40);
    free(off);
    free(idx);
    fg_partition_free(&p);
  }
  cr_assert(saw_retry, "the fixture never exercised the min_size redraw");
  free(y);
}

/* The cap of §7: a client takes a piece of class k only while it holds < n/N samples, so no
 * client ends above n/N + (the largest class) and clients never all pile onto one. */
Test(partition, dirichlet_cap_bounds_client_size) {
  const int64_t n = 4000;
  const int classes = 10, N = 40;
  int32_t *y = balanced_labels(n, classes); /* 400 per class */
  fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.05, .min_size = 0};
  for (uint64_t seed = 1; seed <= 5; seed++) {
    fg_partition p;
    FGT_OK(fg_partition_make(&spec, y, n, classes, N, seed, &ledger, &p));
    assert_exact_cover(&p, n, N);
    for (int k = 0; k < N; k++)
      cr_assert_leq(fg_partition_size(&p, k), n / N + 400, "client %d holds %lld", k,
                    (long long)fg_partition_size(&p, k));
    fg_partition_free(&p);
  }
  free(y);
}

Test(partition, dirichlet_skew_grows_as_alpha_shrinks) {
  const int64_t n = 6000;
  const int classes = 10, N = 30;
  int32_t *y = random_labels(n, classes, 4);
  double alphas[] = {100.0, 1.0, 0.1}, skew[3] = {0, 0, 0};
  for (int a = 0; a < 3; a++) {
    fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = alphas[a], .min_size = 10};
    for (uint64_t seed = 1; seed <= 3; seed++) {
      fg_partition p;
      FGT_OK(fg_partition_make(&spec, y, n, classes, N, seed, &ledger, &p));
      skew[a] += mean_top_share(&p, y, classes) / 3.0;
      fg_partition_free(&p);
    }
  }
  /* IID would give about 0.1 + noise; one class per client gives 1. */
  cr_assert_lt(skew[0], skew[1], "alpha 100: %g, alpha 1: %g", skew[0], skew[1]);
  cr_assert_lt(skew[1], skew[2], "alpha 1: %g, alpha 0.1: %g", skew[1], skew[2]);
  cr_assert_lt(skew[0], 0.25, "alpha 100 should be near-IID, top share %g", skew[0]);
  cr_assert_gt(skew[2], 0.6, "alpha 0.1 should be strongly skewed, top share %g", skew[2]);
}

Test(partition, dirichlet_tiny_alpha_stays_finite) {
  /* Gamma(1e-3) draws underflow to 0 in double; the split must still place every sample. */
  const int64_t n = 1000;
  int32_t *y = random_labels(n, 5, 6);
  fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = 1e-3, .min_size = 1};
  fg_partition p;
  FGT_OK(fg_partition_make(&spec, y, n, 5, 5, 9, &ledger, &p));
  assert_exact_cover(&p, n, 5);
  for (int k = 0; k < 5; k++) cr_assert_geq(fg_partition_size(&p, k), 1);
  fg_partition_free(&p);
  free(y);
}

Test(partition, dirichlet_impossible_min_size_fails_quickly) {
  const int64_t n = 1000;
  int32_t *y = balanced_labels(n, 2);
  /* Counting alone rules it out: 10 x 101 > 1000. */
  fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 101};
  fg_partition p;
  cr_assert_eq(fg_partition_make(&spec, y, n, 2, 10, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "min_size 101") && strstr(fg_last_error(), "alpha 0.5"), "%s",
            fg_last_error());
  /* Possible by counting, never drawn: two classes at alpha 0.01 reach about two clients. */
  spec.alpha = 0.01;
  spec.min_size = 90;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  cr_assert_eq(fg_partition_make(&spec, y, n, 2, 10, 1, &ledger, &p), FG_ERR_CONFIG);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  cr_assert(strstr(fg_last_error(), "min_size 90") && strstr(fg_last_error(), "alpha 0.01"), "%s",
            fg_last_error());
  cr_assert(strstr(fg_last_error(), "1000 draws"), "%s", fg_last_error());
  cr_assert_lt(secs, 5.0, "gave up only after %g s", secs);
  cr_assert_eq(p.index.ptr, NULL);
  cr_assert_eq(ledger.current, 0, "a failed partition left %zu bytes charged", ledger.current);
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * Shards. */

Test(partition, shards_classes_and_sizes) {
  const int64_t n = 2000;
  const int classes = 10, N = 20;
  int32_t *y = balanced_labels(n, classes); /* 200 per class: 40 shards of 50 never straddle */
  fg_partition_spec spec = {.kind = FG_PARTITION_SHARDS, .classes_per_client = 2};
  fg_partition p;
  FGT_OK(fg_partition_make(&spec, y, n, classes, N, 3, &ledger, &p));
  assert_exact_cover(&p, n, N);
  int saw_two = 0;
  for (int k = 0; k < N; k++) {
    cr_assert_eq(fg_partition_size(&p, k), 100);
    int d = distinct_classes(&p, y, classes, k);
    cr_assert_leq(d, 2, "client %d has %d classes", k, d);
    saw_two |= d == 2;
    /* Each class appears in multiples of a whole shard. */
    int64_t hist[10] = {0};
    const uint32_t *idx = fg_partition_client(&p, k);
    for (int i = 0; i < 100; i++) hist[y[idx[i]]]++;
    for (int c = 0; c < classes; c++) cr_assert_eq(hist[c] % 50, 0, "client %d class %d: %lld", k, c, (long long)hist[c]);
  }
  cr_assert(saw_two, "no client got two different classes: shards are not drawn at random");
  fg_partition_free(&p);

  /* Unequal classes: shards may straddle a boundary, so at most 2 classes per shard. */
  int32_t *r = random_labels(1003, classes, 8);
  spec.classes_per_client = 3;
  FGT_OK(fg_partition_make(&spec, r, 1003, classes, 7, 3, &ledger, &p));
  assert_exact_cover(&p, 1003, 7);
  for (int k = 0; k < 7; k++) {
    /* 21 shards of 47 or 48 (1003 = 21 x 47 + 16). */
    cr_assert_geq(fg_partition_size(&p, k), 3 * 47);
    cr_assert_leq(fg_partition_size(&p, k), 3 * 48);
    cr_assert_leq(distinct_classes(&p, r, classes, k), 6);
  }
  fg_partition_free(&p);
  free(r);
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * Errors. */

Test(partition, errors_name_the_value) {
  int32_t y[20];
  for (int i = 0; i < 20; i++) y[i] = i % 4;
  fg_partition p;
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 4, 21, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "21 clients"), "%s", fg_last_error());
  fg_partition_spec d = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.0};
  cr_assert_eq(fg_partition_make(&d, y, 20, 4, 2, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "alpha 0"), "%s", fg_last_error());
  d.alpha = -1.5;
  cr_assert_eq(fg_partition_make(&d, y, 20, 4, 2, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "alpha -1.5"), "%s", fg_last_error());
  fg_partition_spec s = {.kind = FG_PARTITION_SHARDS, .classes_per_client = 0};
  cr_assert_eq(fg_partition_make(&s, y, 20, 4, 2, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "classes_per_client 0"), "%s", fg_last_error());
  s.classes_per_client = 3;
  cr_assert_eq(fg_partition_make(&s, y, 20, 4, 7, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "21 shards"), "%s", fg_last_error());
  y[13] = 4;
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 4, 2, 1, &ledger, &p), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "label 4 of sample 13"), "%s", fg_last_error());
  y[13] = -2;
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 4, 2, 1, &ledger, &p), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "label -2"), "%s", fg_last_error());
  y[13] = 1;
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 0, 2, 1, &ledger, &p), FG_ERR_INVALID);
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 4, 0, 1, &ledger, &p), FG_ERR_CONFIG);
  cr_assert_eq(fg_partition_make(&iid_spec, y, 20, 4, 2, 1, NULL, &p), FG_ERR_INVALID);
  cr_assert_eq(p.index.ptr, NULL);
  cr_assert_eq(ledger.current, 0);
}

Test(partition, ledger_cap_refuses_cleanly) {
  const int64_t n = 5000;
  int32_t *y = random_labels(n, 10, 9);
  fg_ledger small;
  fg_ledger_init(&small, "small", 4096); /* less than the 20000-byte index array */
  fg_partition p;
  fg_partition_spec d = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 0};
  cr_assert_eq(fg_partition_make(&d, y, n, 10, 10, 1, &small, &p), FG_ERR_BUDGET);
  cr_assert_eq(small.current, 0);
  cr_assert_eq(p.index.ptr, NULL);
  /* Room for the result but not for the Dirichlet temporaries (two more n-sized arrays). */
  size_t result = fg_region_round(fg_host_device(), (size_t)n * 4) + fg_region_round(fg_host_device(), 11 * 8);
  fg_ledger_init(&small, "small", result + 1000);
  cr_assert_eq(fg_partition_make(&d, y, n, 10, 10, 1, &small, &p), FG_ERR_BUDGET);
  cr_assert_eq(small.current, 0);
  FGT_OK(fg_partition_make(&iid_spec, y, n, 10, 10, 1, &small, &p));
  fg_partition_free(&p);
  cr_assert_eq(small.current, 0);
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * JSON export. */

Test(partition, write_round_trips_through_cjson) {
  const int64_t n = 700;
  const int classes = 7, N = 6;
  int32_t *y = random_labels(n, classes, 10);
  fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.4, .min_size = 5};
  fg_partition p;
  FGT_OK(fg_partition_make(&spec, y, n, classes, N, 11, &ledger, &p));
  char *dir = fgt_mkdtemp();
  char path[4096];
  snprintf(path, sizeof path, "%s/partition.json", dir);
  FGT_OK(fg_partition_write(&p, y, classes, path));

  unsigned char *text = NULL;
  size_t len = 0;
  FGT_OK(fg_read_file(path, 64u << 20, &text, &len));
  cJSON *root = cJSON_Parse((const char *)text);
  cr_assert_not_null(root, "not valid JSON near: %.40s", cJSON_GetErrorPtr());
  const cJSON *hash = cJSON_GetObjectItemCaseSensitive(root, "hash");
  cr_assert(cJSON_IsString(hash));
  cr_assert_eq(strlen(hash->valuestring), 16);
  unsigned long long parsed_hash = strtoull(hash->valuestring, NULL, 16);
  cr_assert_eq(parsed_hash, p.hash);

  const cJSON *clients = cJSON_GetObjectItemCaseSensitive(root, "clients");
  cr_assert(cJSON_IsArray(clients));
  cr_assert_eq(cJSON_GetArraySize(clients), N);
  int64_t *off = malloc((size_t)(N + 1) * sizeof *off);
  uint32_t *idx = malloc((size_t)n * sizeof *idx);
  off[0] = 0;
  for (int k = 0; k < N; k++) {
    const cJSON *c = cJSON_GetArrayItem(clients, k);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(c, "id")->valueint, k);
    const cJSON *ind = cJSON_GetObjectItemCaseSensitive(c, "indices");
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(c, "classes");
    int m = cJSON_GetArraySize(ind);
    cr_assert_eq(cJSON_GetObjectItemCaseSensitive(c, "samples")->valuedouble, (double)m);
    cr_assert_eq(cJSON_GetArraySize(hist), classes);
    int64_t want[7] = {0};
    for (int i = 0; i < m; i++) {
      idx[off[k] + i] = (uint32_t)cJSON_GetArrayItem(ind, i)->valuedouble;
      want[y[idx[off[k] + i]]]++;
    }
    for (int c2 = 0; c2 < classes; c2++)
      cr_assert_eq((int64_t)cJSON_GetArrayItem(hist, c2)->valuedouble, want[c2], "client %d class %d", k, c2);
    off[k + 1] = off[k] + m;
  }
  cr_assert_eq(off[N], n);
  cr_assert_eq(memcmp(off, offsets(&p), (size_t)(N + 1) * sizeof *off), 0);
  cr_assert_eq(memcmp(idx, indices(&p), (size_t)n * sizeof *idx), 0);
  cr_assert_eq(reference_hash(N, off, idx), parsed_hash, "the file's hash does not match its indices");

  /* A missing directory is an I/O error naming the path. */
  char bad[4200];
  snprintf(bad, sizeof bad, "%s/no/such/partition.json", dir);
  cr_assert_eq(fg_partition_write(&p, y, classes, bad), FG_ERR_IO);
  cr_assert(strstr(fg_last_error(), bad), "%s", fg_last_error());

  cJSON_Delete(root);
  free(text);
  free(off);
  free(idx);
  fg_partition_free(&p);
  fgt_rmtree(dir);
  free(dir);
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * Local train / test splits. */

static int cmp_u32_test(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* A sorted copy of client k's list. */
static uint32_t *sorted_client(const fg_partition *p, int k) {
  int64_t n = fg_partition_size(p, k);
  uint32_t *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
  memcpy(v, fg_partition_client(p, k), (size_t)n * sizeof *v);
  qsort(v, (size_t)n, sizeof *v, cmp_u32_test);
  return v;
}

static void assert_ascending(const fg_partition *p, int k, const char *what) {
  const uint32_t *v = fg_partition_client(p, k);
  for (int64_t i = 1; i < fg_partition_size(p, k); i++)
    cr_assert_lt(v[i - 1], v[i], "%s of client %d is not strictly ascending at %lld", what, k, (long long)i);
}

/* train and test of every client are disjoint, ascending, of sizes n - t and t with t = want_test[k],
 * and their union is exactly the client's share. */
static void assert_split_covers(const fg_partition *p, const fg_partition *train, const fg_partition *test,
                                const int64_t *want_test) {
  cr_assert_eq(train->n_clients, p->n_clients);
  cr_assert_eq(test->n_clients, p->n_clients);
  cr_assert_eq(train->n_samples, p->n_samples);
  cr_assert_eq(test->n_samples, p->n_samples);
  int64_t total_test = 0;
  for (int k = 0; k < p->n_clients; k++) {
    int64_t n = fg_partition_size(p, k), t = fg_partition_size(test, k);
    cr_assert_eq(t, want_test[k], "client %d of %lld samples: %lld test samples, want %lld", k, (long long)n,
                 (long long)t, (long long)want_test[k]);
    cr_assert_eq(fg_partition_size(train, k), n - t, "client %d", k);
    assert_ascending(train, k, "train part");
    assert_ascending(test, k, "test part");
    uint32_t *share = sorted_client(p, k), *both = malloc((size_t)(n > 0 ? n : 1) * sizeof *both);
    memcpy(both, fg_partition_client(train, k), (size_t)(n - t) * sizeof *both);
    memcpy(both + (n - t), fg_partition_client(test, k), (size_t)t * sizeof *both);
    qsort(both, (size_t)n, sizeof *both, cmp_u32_test);
    for (int64_t i = 0; i < n; i++) {
      cr_assert_eq(both[i], share[i], "client %d: train + test is not its share at %lld", k, (long long)i);
      if (i > 0) cr_assert_neq(both[i], both[i - 1], "client %d: sample %u in both parts", k, both[i]);
    }
    free(both);
    free(share);
    total_test += t;
  }
  cr_assert_eq(offsets(test)[test->n_clients], total_test);
  cr_assert_eq(offsets(train)[train->n_clients], offsets(p)[p->n_clients] - total_test);
  cr_assert_eq(train->hash, reference_hash(train->n_clients, offsets(train), indices(train)));
  cr_assert_eq(test->hash, reference_hash(test->n_clients, offsets(test), indices(test)));
}

Test(partition, local_split_covers_every_share_with_ceil_sizes) {
  const int64_t n = 900;
  const int N = 7;
  int32_t *y = random_labels(n, 10, 21);
  fg_partition_spec d = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 20};
  fg_partition p, train, test;
  FGT_OK(fg_partition_make(&d, y, n, 10, N, 4, &ledger, &p));
  size_t before = ledger.current;
  FGT_OK(fg_partition_split_local(&p, 0.2, 4, &ledger, &train, &test));
  int64_t want[7];
  /* ceil(n_k / 5), in integers */
  for (int k = 0; k < N; k++) want[k] = (fg_partition_size(&p, k) + 4) / 5;
  assert_split_covers(&p, &train, &test, want);
  /* The sizes differ between clients (Dirichlet), so the rule is exercised on several values. */
  cr_assert_neq(fg_partition_size(&p, 0), fg_partition_size(&p, 1));
  fg_partition_free(&train);
  fg_partition_free(&test);
  cr_assert_eq(ledger.current, before, "the split's regions and temporary are all released");
  fg_partition_free(&p);
  free(y);
}

Test(partition, local_split_is_the_documented_keyed_shuffle) {
  const int64_t n = 403;
  const int N = 5;
  const uint64_t seed = 12;
  int32_t *y = random_labels(n, 4, 22);
  fg_partition p, train, test;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 4, N, seed, &ledger, &p));
  FGT_OK(fg_partition_split_local(&p, 0.25, seed, &ledger, &train, &test));
  for (int k = 0; k < N; k++) {
    int64_t m = fg_partition_size(&p, k), t = (m + 3) / 4;
    uint32_t *v = sorted_client(&p, k);
    fg_rng r = fg_rng_stream(seed, FG_RNG_LOCAL_SPLIT, (uint64_t)k, 0);
    fg_rng_shuffle_u32(&r, v, (uint64_t)m);
    qsort(v, (size_t)t, sizeof *v, cmp_u32_test);
    cr_assert_eq(fg_partition_size(&test, k), t);
    cr_assert_eq(memcmp(v, fg_partition_client(&test, k), (size_t)t * sizeof *v), 0, "client %d", k);
    free(v);
  }
  fg_partition_free(&train);
  fg_partition_free(&test);
  fg_partition_free(&p);
  free(y);
}

Test(partition, local_split_depends_on_seed_and_sets_only) {
  const int64_t n = 600;
  const int N = 6;
  int32_t *y = random_labels(n, 10, 23);
  fg_partition p, a_train, a_test, b_train, b_test, c_train, c_test;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 10, N, 1, &ledger, &p));
  FGT_OK(fg_partition_split_local(&p, 0.2, 5, &ledger, &a_train, &a_test));
  /* the same seed: the same split, whatever the order of the clients' lists */
  uint32_t *index = p.index.ptr;
  for (int k = 0; k < N; k++) {
    uint32_t *v = index + offsets(&p)[k];
    int64_t m = fg_partition_size(&p, k);
    for (int64_t i = 0; i < m / 2; i++) {
      uint32_t tmp = v[i];
      v[i] = v[m - 1 - i];
      v[m - 1 - i] = tmp;
    }
  }
  FGT_OK(fg_partition_split_local(&p, 0.2, 5, &ledger, &b_train, &b_test));
  cr_assert_eq(a_test.hash, b_test.hash);
  cr_assert_eq(a_train.hash, b_train.hash);
  cr_assert_eq(memcmp(indices(&a_test), indices(&b_test), (size_t)offsets(&a_test)[N] * 4), 0);
  /* another seed: another split */
  FGT_OK(fg_partition_split_local(&p, 0.2, 6, &ledger, &c_train, &c_test));
  cr_assert_neq(a_test.hash, c_test.hash);
  fg_partition *all[] = {&a_train, &a_test, &b_train, &b_test, &c_train, &c_test, &p};
  for (int i = 0; i < 7; i++) fg_partition_free(all[i]);
  free(y);
}

Test(partition, local_split_sizes_are_sklearn_ceil_in_doubles) {
  /* 0.07 x 100 is 7.000000000000001 in doubles: sklearn's train_test_split(test_size=0.07) of 100
   * samples holds out ceil of that, 8 (the exact rational would give 7). */
  const int64_t n = 200;
  int32_t *y = balanced_labels(n, 2);
  fg_partition p, train, test;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 2, 2, 1, &ledger, &p));
  FGT_OK(fg_partition_split_local(&p, 0.07, 1, &ledger, &train, &test));
  const int64_t want[2] = {8, 8};
  assert_split_covers(&p, &train, &test, want);
  fg_partition_free(&train);
  fg_partition_free(&test);
  fg_partition_free(&p);
  free(y);
}

Test(partition, local_split_errors_leave_nothing_charged) {
  const int64_t n = 40;
  int32_t *y = balanced_labels(n, 4);
  fg_partition p, train, test;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 4, 40, 1, &ledger, &p)); /* one sample each */
  size_t before = ledger.current;
  const double bad[] = {0.0, 1.0, -0.2, 1.5, NAN};
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(fg_partition_split_local(&p, bad[i], 1, &ledger, &train, &test), FG_ERR_INVALID, "fraction %g",
                 bad[i]);
    cr_assert(strstr(fg_last_error(), "outside (0, 1)") != NULL, "%s", fg_last_error());
  }
  /* ceil(0.2 x 1) = 1: no training sample would be left */
  cr_assert_eq(fg_partition_split_local(&p, 0.2, 1, &ledger, &train, &test), FG_ERR_CONFIG);
  cr_assert(strstr(fg_last_error(), "client 0 no training sample") != NULL, "%s", fg_last_error());
  cr_assert(strstr(fg_last_error(), "holds 1 samples") != NULL, "%s", fg_last_error());
  cr_assert_null(train.index.ptr);
  cr_assert_null(test.offset.ptr);
  cr_assert_eq(ledger.current, before);
  fg_ledger small;
  fg_ledger_init(&small, "small", 64);
  fg_partition q;
  FGT_OK(fg_partition_make(&iid_spec, y, n, 4, 2, 1, &ledger, &q));
  cr_assert_eq(fg_partition_split_local(&q, 0.5, 1, &small, &train, &test), FG_ERR_BUDGET);
  cr_assert_eq(small.current, 0);
  cr_assert_null(train.index.ptr);
  fg_partition_free(&q);
  fg_partition_free(&p);
  free(y);
}

/* ---------------------------------------------------------------------------------------------
 * Reading partition.json back. */

/* `text` with the first occurrence of `from` replaced by `to`, written to path. */
static void write_edited(const char *path, const char *text, const char *from, const char *to) {
  const char *at = strstr(text, from);
  cr_assert_not_null(at, "'%s' not in the file", from);
  size_t n = strlen(text), a = (size_t)(at - text), f = strlen(from), t = strlen(to);
  char *out = malloc(n - f + t + 1);
  memcpy(out, text, a);
  memcpy(out + a, to, t);
  memcpy(out + a + t, at + f, n - a - f + 1);
  fgt_write_text(path, out);
  free(out);
}

Test(partition, read_gives_back_what_was_written_and_refuses_edits) {
  const int64_t n = 300;
  const int classes = 5, N = 4;
  int32_t *y = random_labels(n, classes, 21);
  fg_partition_spec spec = {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 5};
  fg_partition p, q;
  FGT_OK(fg_partition_make(&spec, y, n, classes, N, 12, &ledger, &p));
  char *dir = fgt_mkdtemp();
  char path[4096], edited[4096];
  snprintf(path, sizeof path, "%s/partition.json", dir);
  snprintf(edited, sizeof edited, "%s/edited.json", dir);
  FGT_OK(fg_partition_write(&p, y, classes, path));
  FGT_OK(fg_partition_read(path, N, n, classes, y, &ledger, &q));
  cr_assert_eq(q.hash, p.hash);
  cr_assert_eq(q.n_clients, N);
  cr_assert_eq(memcmp(offsets(&q), offsets(&p), (size_t)(N + 1) * sizeof(int64_t)), 0);
  cr_assert_eq(memcmp(indices(&q), indices(&p), (size_t)n * sizeof(uint32_t)), 0);
  fg_partition_free(&q);

  char *text = fgt_read_text(path);
  /* the first index of client 0, and the entries around it */
  const char *first = strstr(text, "\"indices\": [") + strlen("\"indices\": [");
  char idx0[16];
  size_t k = strcspn(first, ",]");
  memcpy(idx0, first, k);
  idx0[k] = '\0';
  char from[40], to[40];
  struct {
    const char *to;
    const char *says;
  } cases[] = {
      {"300", "is not a sample index in [0, 300)"},
      {"-1", "is not a sample index in [0, 300)"},
      {"1.5", "is not a sample index"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    snprintf(from, sizeof from, "[%s,", idx0);
    snprintf(to, sizeof to, "[%s,", cases[c].to);
    write_edited(edited, text, from, to);
    cr_assert_eq(fg_partition_read(edited, N, n, classes, y, &ledger, &q), FG_ERR_FORMAT, "%s", cases[c].to);
    cr_assert(strstr(fg_last_error(), cases[c].says) && strstr(fg_last_error(), "edited.json"), "%s", fg_last_error());
    cr_assert_null(q.index.ptr);
  }
  /* another valid index in place of the first: a sample twice, or (labels aside) a bad hash */
  uint32_t other = indices(&p)[offsets(&p)[1]];
  snprintf(from, sizeof from, "[%s,", idx0);
  snprintf(to, sizeof to, "[%u,", other);
  write_edited(edited, text, from, to);
  cr_assert_eq(fg_partition_read(edited, N, n, classes, NULL, &ledger, &q), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "is held twice"), "%s", fg_last_error());
  /* the hash is the one recorded; not a hash but 16 hex digits is refused */
  char hash[40];
  snprintf(hash, sizeof hash, "\"%016llx\"", (unsigned long long)p.hash);
  snprintf(to, sizeof to, "\"%016llx\"", (unsigned long long)(p.hash ^ 1));
  write_edited(edited, text, hash, to);
  FGT_OK(fg_partition_read(edited, N, n, classes, y, &ledger, &q));
  cr_assert_eq(q.hash, p.hash ^ 1);
  fg_partition_free(&q);
  write_edited(edited, text, hash, "\"0x12\"");
  cr_assert_eq(fg_partition_read(edited, N, n, classes, y, &ledger, &q), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "hash is not 16 hexadecimal digits"), "%s", fg_last_error());
  /* the client count the configuration gives */
  cr_assert_eq(fg_partition_read(path, N + 1, n, classes, y, &ledger, &q), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "not a list of the 5 clients"), "%s", fg_last_error());
  /* a file far larger than such a partition takes is refused unparsed */
  size_t big = 20u << 20;
  char *huge = malloc(big);
  memset(huge, ' ', big);
  FGT_OK(fg_write_file_atomic(edited, huge, big));
  free(huge);
  cr_assert_eq(fg_partition_read(edited, N, n, classes, y, &ledger, &q), FG_ERR_FORMAT);
  cr_assert(strstr(fg_last_error(), "bytes a partition of 300 samples over 4 clients takes"), "%s", fg_last_error());
  cr_assert_eq(ledger.current, p.index.bytes + p.offset.bytes, "a failed read keeps nothing charged");
  free(text);
  fg_partition_free(&p);
  fgt_rmtree(dir);
  free(dir);
  free(y);
}
