/* Batching: normalisation against hand-computed values, augmentation checked by searching every
 * crop offset and flip independently, determinism (same key, batch split, thread count), views,
 * epoch orders, presets and argument checks. Datasets are built directly in regions here. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common/batch_util.h"
#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/data/dataset.h"

static fg_ledger ledger;

/* A u8 dataset [n, c, h, w] with pixels in [lo, 255] and labels i % classes. */
static fg_dataset make_u8(int64_t n, int64_t c, int64_t h, int64_t w, int classes, int lo,
                          uint64_t seed) {
  fgt_setup_cpu(1);
  fg_ledger_init(&ledger, "data", 0);
  fg_dataset ds;
  memset(&ds, 0, sizeof ds);
  ds.n = n;
  ds.c = c;
  ds.h = h;
  ds.w = w;
  ds.classes = classes;
  ds.dtype = FG_U8;
  FGT_OK(fg_region_alloc(&ds.pixels, &ledger, fg_host_device(), FG_MEM_DATA, (size_t)(n * c * h * w), "px"));
  FGT_OK(fg_region_alloc(&ds.labels, &ledger, fg_host_device(), FG_MEM_DATA, (size_t)n * 4, "labels"));
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, 2, 0);
  uint8_t *px = ds.pixels.ptr;
  for (int64_t i = 0; i < n * c * h * w; i++) px[i] = (uint8_t)(lo + (int)fg_rng_below(&r, (uint64_t)(256 - lo)));
  int32_t *lab = ds.labels.ptr;
  for (int64_t i = 0; i < n; i++) lab[i] = (int32_t)(i % classes);
  return ds;
}

static double norm_ref(double x01, double mean, double std) { return (x01 - mean) / std; }

Test(data_batch, normalisation_u8_one_and_three_channels) {
  fg_dataset ds = make_u8(10, 1, 4, 3, 10, 0, 1);
  fg_normalize fm;
  FGT_OK(fg_normalize_preset("fashion-mnist", &fm));
  float x[10 * 12];
  int32_t y[10];
  fg_tensor tx = fg_tensor_4d(x, 10, 1, 4, 3);
  int64_t ys[1] = {10};
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  fg_dataset_view v = fg_dataset_view_all(&ds);
  FGT_OK(fgt_batch_fill(&v, NULL, 0, &fm, NULL, 0, &tx, &ty));
  double want[120];
  for (int i = 0; i < 120; i++) want[i] = norm_ref(fg_dataset_pixels_u8(&ds)[i] / 255.0, 0.2860, 0.3530);
  char msg[256];
  cr_assert(fgt_allclose(x, want, 120, 1e-6, 1e-6, msg, sizeof msg), "%s", msg);
  for (int i = 0; i < 10; i++) cr_assert_eq(y[i], i);
  fg_dataset_free(&ds);

  /* 3 channels, CIFAR-10 constants, a shuffled order and a batch from the middle. */
  ds = make_u8(9, 3, 2, 2, 4, 0, 2);
  fg_normalize cf;
  FGT_OK(fg_normalize_preset("cifar10", &cf));
  const double mean[3] = {0.4914, 0.4822, 0.4465}, stdv[3] = {0.2470, 0.2435, 0.2616};
  uint32_t order[9];
  FGT_OK(fg_epoch_order(9, 5, 0, 0, 1, order));
  float x3[4 * 12];
  int32_t y3[4];
  tx = fg_tensor_4d(x3, 4, 3, 2, 2);
  ys[0] = 4;
  ty = fg_tensor_view(y3, FG_I32, fg_host_device(), 1, ys);
  v = fg_dataset_view_all(&ds);
  FGT_OK(fgt_batch_fill(&v, order, 3, &cf, NULL, 0, &tx, &ty));
  double want3[48];
  for (int i = 0; i < 4; i++) {
    uint32_t s = order[3 + i];
    cr_assert_eq(y3[i], (int32_t)(s % 4));
    for (int ch = 0; ch < 3; ch++)
      for (int k = 0; k < 4; k++)
        want3[(i * 3 + ch) * 4 + k] =
            norm_ref(fg_dataset_pixels_u8(&ds)[(s * 3 + ch) * 4 + k] / 255.0, mean[ch], stdv[ch]);
  }
  cr_assert(fgt_allclose(x3, want3, 48, 1e-6, 1e-6, msg, sizeof msg), "%s", msg);
  fg_dataset_free(&ds);
  cr_assert_eq(ledger.current, 0);
}

Test(data_batch, normalisation_f32_uses_values_as_is) {
  fgt_setup_cpu(1);
  fg_ledger_init(&ledger, "data", 0);
  fg_dataset ds;
  memset(&ds, 0, sizeof ds);
  ds.n = 3;
  ds.c = 2;
  ds.h = 1;
  ds.w = 2;
  ds.classes = 2;
  ds.dtype = FG_F32;
  FGT_OK(fg_region_alloc(&ds.pixels, &ledger, fg_host_device(), FG_MEM_DATA, 12 * 4, "px"));
  FGT_OK(fg_region_alloc(&ds.labels, &ledger, fg_host_device(), FG_MEM_DATA, 3 * 4, "labels"));
  float *px = ds.pixels.ptr;
  fgt_fill_uniform(px, 12, 3, -5.0f, 5.0f);
  memset(ds.labels.ptr, 0, 12);
  fg_normalize half, none;
  FGT_OK(fg_normalize_preset("half", &half));
  FGT_OK(fg_normalize_preset("none", &none));
  float x[12];
  int32_t y[3];
  fg_tensor tx = fg_tensor_4d(x, 3, 2, 1, 2);
  int64_t ys[1] = {3};
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  fg_dataset_view v = fg_dataset_view_all(&ds);
  FGT_OK(fgt_batch_fill(&v, NULL, 0, &half, NULL, 0, &tx, &ty));
  double want[12];
  for (int i = 0; i < 12; i++) want[i] = (px[i] - 0.5) / 0.5;
  char msg[256];
  cr_assert(fgt_allclose(x, want, 12, 1e-6, 1e-6, msg, sizeof msg), "%s", msg);
  FGT_OK(fgt_batch_fill(&v, NULL, 0, &none, NULL, 0, &tx, &ty));
  cr_assert_eq(memcmp(x, px, sizeof x), 0);
  fg_dataset_free(&ds);
}

/* Searches the shift (sy, sx) in [-pad, pad]^2 and flip under which `out` [c, h, w] equals the
 * sample `src` [c, h, w] shifted (out[y][x] = src[y+sy][x'+sx], x' = w-1-x when flipped) with
 * the normalised zero outside. Returns 1 and the first match, or 0. */
static int find_shift(const float *out, const uint8_t *src, int c, int h, int w, int pad,
                      const fg_normalize *nm, int *sy_out, int *sx_out, int *flip_out) {
  for (int flip = 0; flip < 2; flip++)
    for (int sy = -pad; sy <= pad; sy++)
      for (int sx = -pad; sx <= pad; sx++) {
        int ok = 1;
        for (int ch = 0; ch < c && ok; ch++) {
          double mean = nm->mean[nm->channels ? ch : 0], std = nm->std[nm->channels ? ch : 0];
          for (int y = 0; y < h && ok; y++)
            for (int x = 0; x < w && ok; x++) {
              int yy = y + sy, xx = (flip ? w - 1 - x : x) + sx;
              double v = (yy >= 0 && yy < h && xx >= 0 && xx < w) ? src[(ch * h + yy) * w + xx] : 0;
              double want = (v / 255.0 - mean) / std;
              ok = fabs(out[(ch * h + y) * w + x] - want) <= 1e-5;
            }
        }
        if (ok) {
          *sy_out = sy;
          *sx_out = sx;
          *flip_out = flip;
          return 1;
        }
      }
  return 0;
}

Test(data_batch, augmentation_is_a_padded_shift_and_flip) {
  const int n = 2500, c = 2, h = 8, w = 8, pad = 4;
  fg_dataset ds = make_u8(n, c, h, w, 10, 1, 7); /* pixels >= 1: padding is distinguishable */
  fg_normalize nm = {2, {0.3f, 0.6f}, {0.2f, 0.4f}};
  uint32_t *order = malloc(n * sizeof *order);
  FGT_OK(fg_epoch_order(n, 1, 0, 0, 1, order));
  float *x = malloc((size_t)n * c * h * w * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  fg_tensor tx = fg_tensor_4d(x, n, c, h, w);
  int64_t ys[1] = {n};
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  fg_dataset_view v = fg_dataset_view_all(&ds);
  fg_augment aug = {pad, 1};
  uint64_t key = fg_augment_key(1, 0, 0);
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, key, &tx, &ty));
  int seen[9][9] = {{0}}, flips[2] = {0, 0};
  for (int i = 0; i < n; i++) {
    int sy, sx, fl;
    const uint8_t *src = fg_dataset_pixels_u8(&ds) + (size_t)order[i] * c * h * w;
    cr_assert(find_shift(x + (size_t)i * c * h * w, src, c, h, w, pad, &nm, &sy, &sx, &fl),
              "sample at position %d is no shifted/flipped copy of sample %u", i, order[i]);
    cr_assert_eq(y[i], (int32_t)(order[i] % 10));
    seen[sy + pad][sx + pad]++;
    flips[fl]++;
  }
  for (int a = 0; a < 9; a++)
    for (int b = 0; b < 9; b++) cr_assert_gt(seen[a][b], 0, "shift (%d, %d) never drawn", a - pad, b - pad);
  cr_assert(flips[1] > 0.4 * n && flips[1] < 0.6 * n, "%d flips of %d", flips[1], n);

  /* Flip only: never shifted. Crop only: never flipped. Neither: the identity. */
  const fg_augment only_flip = {0, 1}, only_crop = {pad, 0}, nothing = {0, 0};
  const fg_augment *cases[3] = {&only_flip, &only_crop, &nothing};
  for (int k = 0; k < 3; k++) {
    FGT_OK(fgt_batch_fill(&v, order, 0, &nm, cases[k], key, &tx, &ty));
    int fl_count = 0, shifted = 0;
    for (int i = 0; i < 400; i++) {
      int sy, sx, fl;
      const uint8_t *src = fg_dataset_pixels_u8(&ds) + (size_t)order[i] * c * h * w;
      cr_assert(find_shift(x + (size_t)i * c * h * w, src, c, h, w, pad, &nm, &sy, &sx, &fl));
      fl_count += fl;
      shifted += sy != 0 || sx != 0;
    }
    cr_assert_eq(shifted == 0, cases[k]->pad == 0, "case %d: %d shifted", k, shifted);
    cr_assert_eq(fl_count == 0, cases[k]->flip == 0, "case %d: %d flipped", k, fl_count);
  }
  free(order);
  free(x);
  free(y);
  fg_dataset_free(&ds);
}

Test(data_batch, augmentation_is_deterministic_and_split_independent) {
  const int n = 600, c = 2, h = 8, w = 8;
  const size_t per = (size_t)c * h * w;
  fg_dataset ds = make_u8(n, c, h, w, 10, 0, 8);
  fg_normalize nm;
  FGT_OK(fg_normalize_preset("half", &nm));
  uint32_t order[600];
  FGT_OK(fg_epoch_order(n, 3, 2, 1, 1, order));
  fg_dataset_view v = fg_dataset_view_all(&ds);
  fg_augment aug = {4, 1};
  uint64_t key = fg_augment_key(3, 2, 1);
  float *a = malloc(n * per * sizeof *a), *b = malloc(n * per * sizeof *b);
  int32_t ya[600], yb[600];
  int64_t ys[1] = {n};
  fg_tensor ta = fg_tensor_4d(a, n, c, h, w), tb = fg_tensor_4d(b, n, c, h, w);
  fg_tensor tya = fg_tensor_view(ya, FG_I32, fg_host_device(), 1, ys);
  /* One batch of all positions on 1 thread ... */
  omp_set_num_threads(1);
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, key, &ta, &tya));
  /* ... equals batches of 4 (then 7, 13, ...) on 3 threads, filled back to front. */
  omp_set_num_threads(3);
  int64_t starts[600], counts[600], nb = 0;
  for (int64_t s = 0, k = 4; s < n; s += k, k = k == 4 ? 7 : k == 7 ? 13 : 4) {
    starts[nb] = s;
    counts[nb++] = s + k <= n ? k : n - s;
  }
  for (int64_t j = nb - 1; j >= 0; j--) {
    fg_tensor tx = fg_tensor_4d(b + starts[j] * per, counts[j], c, h, w);
    int64_t yj[1] = {counts[j]};
    fg_tensor ty = fg_tensor_view(yb + starts[j], FG_I32, fg_host_device(), 1, yj);
    FGT_OK(fgt_batch_fill(&v, order, starts[j], &nm, &aug, key, &tx, &ty));
  }
  cr_assert_eq(memcmp(a, b, n * per * sizeof *a), 0, "batch split or thread count changed pixels");
  cr_assert_eq(memcmp(ya, yb, sizeof ya), 0);
  /* The brief's case: positions 0..7 in one batch versus two batches of 4. */
  fg_tensor t8 = fg_tensor_4d(b, 8, c, h, w), t4a = fg_tensor_4d(b + 8 * per, 4, c, h, w),
            t4b = fg_tensor_4d(b + 12 * per, 4, c, h, w);
  int64_t y8s[1] = {8}, y4s[1] = {4};
  fg_tensor ty8 = fg_tensor_view(yb, FG_I32, fg_host_device(), 1, y8s);
  fg_tensor ty4a = fg_tensor_view(yb + 8, FG_I32, fg_host_device(), 1, y4s);
  fg_tensor ty4b = fg_tensor_view(yb + 12, FG_I32, fg_host_device(), 1, y4s);
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, key, &t8, &ty8));
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, key, &t4a, &ty4a));
  FGT_OK(fgt_batch_fill(&v, order, 4, &nm, &aug, key, &t4b, &ty4b));
  cr_assert_eq(memcmp(b, b + 8 * per, 8 * per * sizeof *b), 0);
  cr_assert_eq(memcmp(b, a, 8 * per * sizeof *b), 0);
  /* Same key again: same result; another key (epoch): different crops. */
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, key, &tb, &tya));
  cr_assert_eq(memcmp(a, b, n * per * sizeof *a), 0);
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, &aug, fg_augment_key(3, 3, 1), &tb, &tya));
  int differ = 0;
  for (int i = 0; i < n; i++) differ += memcmp(a + i * per, b + i * per, per * sizeof *a) != 0;
  cr_assert_gt(differ, n / 2, "only %d of %d samples changed with the key", differ, n);
  omp_set_num_threads(1);
  free(a);
  free(b);
  fg_dataset_free(&ds);
}

Test(data_batch, views_select_without_copying) {
  fg_dataset ds = make_u8(12, 1, 3, 3, 6, 0, 9);
  const uint32_t index[5] = {5, 2, 2, 11, 0};
  fg_dataset_view v;
  FGT_OK(fg_dataset_view_subset(&ds, index, 5, &v));
  cr_assert_eq(v.n, 5);
  cr_assert_eq(v.index, index);
  cr_assert_eq(fg_dataset_view_label(&v, 3), 11 % 6);
  fg_normalize nm;
  FGT_OK(fg_normalize_preset("none", &nm));
  float x[5 * 9];
  int32_t y[5];
  fg_tensor tx = fg_tensor_4d(x, 5, 1, 3, 3);
  int64_t ys[1] = {5};
  fg_tensor ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  const uint32_t order[5] = {4, 3, 2, 1, 0};
  FGT_OK(fgt_batch_fill(&v, order, 0, &nm, NULL, 0, &tx, &ty));
  for (int i = 0; i < 5; i++) {
    uint32_t s = index[order[i]];
    cr_assert_eq(y[i], (int32_t)(s % 6));
    for (int k = 0; k < 9; k++)
      cr_assert_float_eq(x[i * 9 + k], fg_dataset_pixels_u8(&ds)[s * 9 + k] / 255.0f, 1e-7);
  }
  const uint32_t bad[2] = {3, 12};
  cr_assert_eq(fg_dataset_view_subset(&ds, bad, 2, &v), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "index[1] = 12") != NULL, "%s", fg_last_error());
  fg_dataset_free(&ds);
}

static int is_permutation(const uint32_t *p, uint32_t n) {
  char *seen = calloc(n ? n : 1, 1);
  int ok = 1;
  for (uint32_t i = 0; i < n && ok; i++) {
    ok = p[i] < n && !seen[p[i]];
    if (ok) seen[p[i]] = 1;
  }
  free(seen);
  return ok;
}

Test(data_batch, epoch_orders) {
  enum { N = 1000 };
  static uint32_t a[N], b[N], c[N], d[N], e[N], id[N];
  FGT_OK(fg_epoch_order(N, 42, 0, 0, 1, a));
  FGT_OK(fg_epoch_order(N, 42, 0, 0, 1, b));
  FGT_OK(fg_epoch_order(N, 42, 1, 0, 1, c));
  FGT_OK(fg_epoch_order(N, 42, 0, 1, 1, d));
  FGT_OK(fg_epoch_order(N, 43, 0, 0, 1, e));
  FGT_OK(fg_epoch_order(N, 42, 0, 0, 0, id));
  cr_assert(is_permutation(a, N) && is_permutation(c, N) && is_permutation(d, N) && is_permutation(e, N));
  cr_assert_eq(memcmp(a, b, sizeof a), 0, "same key, different order");
  cr_assert_neq(memcmp(a, c, sizeof a), 0, "epochs share an order");
  cr_assert_neq(memcmp(a, d, sizeof a), 0, "streams share an order");
  cr_assert_neq(memcmp(a, e, sizeof a), 0, "seeds share an order");
  int fixed = 0;
  for (uint32_t i = 0; i < N; i++) {
    cr_assert_eq(id[i], i);
    fixed += a[i] == i;
  }
  cr_assert_lt(fixed, 10, "%d fixed points: not shuffled", fixed);
  /* The shuffle is the Fisher-Yates shuffle of the (seed, SHUFFLE, epoch, stream) stream. */
  fg_rng r = fg_rng_stream(42, FG_RNG_SHUFFLE, 1, 0);
  for (uint32_t i = 0; i < N; i++) b[i] = i;
  for (uint32_t i = N; i > 1; i--) {
    uint32_t j = (uint32_t)fg_rng_below(&r, i), t = b[i - 1];
    b[i - 1] = b[j];
    b[j] = t;
  }
  cr_assert_eq(memcmp(b, c, sizeof b), 0);
  FGT_OK(fg_epoch_order(0, 1, 0, 0, 1, NULL));
  FGT_OK(fg_epoch_order(1, 1, 0, 0, 1, a));
  cr_assert_eq(a[0], 0);
  cr_assert_eq(fg_epoch_order(3, 1, 0, 0, 1, NULL), FG_ERR_INVALID);
}

Test(data_batch, presets) {
  fg_normalize nm;
  FGT_OK(fg_normalize_preset("fashion-mnist", &nm));
  cr_assert(nm.channels == 1 && nm.mean[0] == 0.2860f && nm.std[0] == 0.3530f);
  FGT_OK(fg_normalize_preset("cifar10", &nm));
  cr_assert(nm.channels == 3 && nm.mean[2] == 0.4465f && nm.std[1] == 0.2435f);
  FGT_OK(fg_normalize_preset("cifar100", &nm));
  cr_assert(nm.channels == 3 && nm.mean[0] == 0.5071f && nm.std[2] == 0.2762f);
  FGT_OK(fg_normalize_preset("imagenet", &nm));
  cr_assert(nm.channels == 3 && nm.mean[1] == 0.456f && nm.std[0] == 0.229f);
  FGT_OK(fg_normalize_preset("half", &nm));
  cr_assert(nm.channels == 0 && nm.mean[0] == 0.5f && nm.std[0] == 0.5f);
  cr_assert_eq(fg_normalize_preset("mnist", &nm), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "\"mnist\"") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_normalize_preset(NULL, &nm), FG_ERR_INVALID);
}

Test(data_batch, argument_checks) {
  fg_dataset ds = make_u8(6, 3, 4, 4, 3, 0, 10);
  fg_dataset_view v = fg_dataset_view_all(&ds);
  fg_normalize cf, fm;
  FGT_OK(fg_normalize_preset("cifar10", &cf));
  FGT_OK(fg_normalize_preset("fashion-mnist", &fm));
  float x[6 * 48];
  int32_t y[6];
  int64_t ys[1] = {4};
  fg_tensor tx = fg_tensor_4d(x, 4, 3, 4, 4), ty = fg_tensor_view(y, FG_I32, fg_host_device(), 1, ys);
  fg_tensor bad_c = fg_tensor_4d(x, 4, 1, 4, 4);
  FGT_OK(fgt_batch_fill(&v, NULL, 2, &cf, NULL, 0, &tx, &ty));
  cr_assert_eq(fgt_batch_fill(&v, NULL, 3, &cf, NULL, 0, &tx, &ty), FG_ERR_INVALID, "past the end");
  cr_assert_eq(fgt_batch_fill(&v, NULL, -1, &cf, NULL, 0, &tx, &ty), FG_ERR_INVALID);
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &cf, NULL, 0, &bad_c, &ty), FG_ERR_SHAPE);
  /* More samples than the host batch holds. */
  fg_ledger small_ledger;
  fg_ledger_init(&small_ledger, "small batch", 0);
  fg_host_batch small;
  FGT_OK(fg_host_batch_alloc(&small, &small_ledger, 3, 3, 4, 4));
  cr_assert_eq(fg_batch_fill(&v, NULL, 0, 4, &cf, NULL, 0, &small), FG_ERR_SHAPE);
  cr_assert(strstr(fg_last_error(), "4 samples for a host batch of 3") != NULL, "%s", fg_last_error());
  cr_assert_eq(fg_batch_fill(&v, NULL, 0, 3, &cf, NULL, 0, NULL), FG_ERR_INVALID);
  fg_host_batch_free(&small);
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &fm, NULL, 0, &tx, &ty), FG_ERR_SHAPE, "1-channel normalisation on 3 channels");
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, NULL, NULL, 0, &tx, &ty), FG_ERR_INVALID);
  fg_normalize zero = cf;
  zero.std[1] = 0.0f;
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &zero, NULL, 0, &tx, &ty), FG_ERR_INVALID);
  uint32_t order[6] = {0, 1, 2, 3, 4, 6};
  cr_assert_eq(fgt_batch_fill(&v, order, 2, &cf, NULL, 0, &tx, &ty), FG_ERR_INVALID);
  cr_assert(strstr(fg_last_error(), "order[5] = 6") != NULL, "%s", fg_last_error());
  fg_augment neg = {-1, 0}, big = {FG_AUGMENT_MAX_PAD + 1, 0}, flip2 = {0, 2};
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &cf, &neg, 0, &tx, &ty), FG_ERR_INVALID);
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &cf, &big, 0, &tx, &ty), FG_ERR_INVALID);
  cr_assert_eq(fgt_batch_fill(&v, NULL, 0, &cf, &flip2, 0, &tx, &ty), FG_ERR_INVALID);
  /* A zero-sample batch is a no-op. */
  fg_tensor t0 = fg_tensor_4d(x, 0, 3, 4, 4);
  int64_t y0s[1] = {0};
  fg_tensor ty0 = fg_tensor_view(y, FG_I32, fg_host_device(), 1, y0s);
  FGT_OK(fgt_batch_fill(&v, NULL, 6, &cf, NULL, 0, &t0, &ty0));
  fg_dataset_free(&ds);
}
