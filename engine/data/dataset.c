/* Dataset lifetime, views, normalisation presets, epoch orders and augmentation draws. */
#include "engine/data/dataset.h"

#include <stdio.h>
#include <string.h>

#include "engine/base/rng.h"

void fg_dataset_free(fg_dataset *ds) {
  if (!ds) return;
  fg_region_free(&ds->pixels);
  fg_region_free(&ds->labels);
  memset(ds, 0, sizeof *ds);
}

fg_dataset_view fg_dataset_view_all(const fg_dataset *ds) {
  fg_dataset_view v = {ds, NULL, ds ? ds->n : 0};
  return v;
}

fg_status fg_dataset_view_subset(const fg_dataset *ds, const uint32_t *index, int64_t n,
                                 fg_dataset_view *view) {
  memset(view, 0, sizeof *view);
  if (!ds) return FG_FAIL(FG_ERR_INVALID, "dataset view: no dataset");
  if (n < 0 || (n > 0 && !index))
    return FG_FAIL(FG_ERR_INVALID, "dataset view of %s: %lld indices%s", ds->name, (long long)n,
                   n > 0 ? " but no index array" : "");
  for (int64_t i = 0; i < n; i++)
    if ((int64_t)index[i] >= ds->n)
      return FG_FAIL(FG_ERR_INVALID, "dataset view of %s: index[%lld] = %u is out of range [0, %lld)",
                     ds->name, (long long)i, index[i], (long long)ds->n);
  view->ds = ds;
  view->index = index;
  view->n = n;
  return FG_OK;
}

fg_status fg_dataset_concat(const fg_dataset *a, const fg_dataset *b, fg_ledger *ledger, fg_dataset *out) {
  if (!out) return FG_FAIL(FG_ERR_INVALID, "dataset concatenation: no output");
  memset(out, 0, sizeof *out);
  if (!a || !b || !ledger) return FG_FAIL(FG_ERR_INVALID, "dataset concatenation: missing argument");
  if (a->c != b->c || a->h != b->h || a->w != b->w || a->dtype != b->dtype)
    return FG_FAIL(FG_ERR_INVALID,
                   "dataset concatenation: %s holds %lld x %lld x %lld %s samples, %s holds %lld x %lld x %lld %s "
                   "(expected the same shape and storage)",
                   a->name, (long long)a->c, (long long)a->h, (long long)a->w, fg_dtype_name(a->dtype), b->name,
                   (long long)b->c, (long long)b->h, (long long)b->w, fg_dtype_name(b->dtype));
  if (a->n < 0 || b->n < 0 || a->n + b->n > FG_DATASET_MAX_SAMPLES)
    return FG_FAIL(FG_ERR_INVALID, "dataset concatenation: %s (%lld samples) and %s (%lld) exceed %lld samples",
                   a->name, (long long)a->n, b->name, (long long)b->n, (long long)FG_DATASET_MAX_SAMPLES);
  size_t sample_bytes = (size_t)fg_dataset_sample_numel(a) * fg_dtype_size(a->dtype);
  size_t a_bytes = (size_t)a->n * sample_bytes, b_bytes = (size_t)b->n * sample_bytes;
  fg_status s = fg_region_alloc(&out->pixels, ledger, fg_host_device(), FG_MEM_DATA, a_bytes + b_bytes,
                                "pooled dataset pixels");
  if (s == FG_OK)
    s = fg_region_alloc(&out->labels, ledger, fg_host_device(), FG_MEM_DATA,
                        (size_t)(a->n + b->n) * sizeof(int32_t), "pooled dataset labels");
  if (s != FG_OK) {
    fg_dataset_free(out);
    return s;
  }
  snprintf(out->name, sizeof out->name, "%.31s+%.31s", a->name, b->name);
  out->n = a->n + b->n;
  out->c = a->c;
  out->h = a->h;
  out->w = a->w;
  out->classes = a->classes > b->classes ? a->classes : b->classes;
  out->dtype = a->dtype;
  if (a_bytes) memcpy(out->pixels.ptr, a->pixels.ptr, a_bytes);
  if (b_bytes) memcpy((unsigned char *)out->pixels.ptr + a_bytes, b->pixels.ptr, b_bytes);
  if (a->n) memcpy(out->labels.ptr, a->labels.ptr, (size_t)a->n * sizeof(int32_t));
  if (b->n) memcpy((int32_t *)out->labels.ptr + a->n, b->labels.ptr, (size_t)b->n * sizeof(int32_t));
  return FG_OK;
}

typedef struct fg_norm_preset {
  const char *name;
  int channels;
  float mean[3];
  float std[3];
} fg_norm_preset;

static const fg_norm_preset fg_norm_presets[] = {
    {"fashion-mnist", 1, {0.2860f}, {0.3530f}},
    {"cifar10", 3, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}},
    {"cifar100", 3, {0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}},
    {"imagenet", 3, {0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}},
    {"half", 0, {0.5f}, {0.5f}},
    {"none", 0, {0.0f}, {1.0f}},
};

fg_status fg_normalize_preset(const char *name, fg_normalize *out) {
  memset(out, 0, sizeof *out);
  size_t count = sizeof fg_norm_presets / sizeof fg_norm_presets[0];
  for (size_t i = 0; name && i < count; i++) {
    const fg_norm_preset *p = &fg_norm_presets[i];
    if (strcmp(name, p->name) != 0) continue;
    out->channels = p->channels;
    int k = p->channels ? p->channels : 1;
    for (int c = 0; c < k; c++) {
      out->mean[c] = p->mean[c];
      out->std[c] = p->std[c];
    }
    return FG_OK;
  }
  return FG_FAIL(FG_ERR_INVALID,
                 "unknown normalisation \"%s\" (expected fashion-mnist, cifar10, cifar100, "
                 "imagenet, half or none)",
                 name ? name : "(null)");
}

uint64_t fg_augment_key(uint64_t seed, uint64_t epoch, uint64_t stream_id) {
  return fg_rng_key(seed, FG_RNG_AUGMENT, epoch, stream_id);
}

void fg_augment_draw(const fg_augment *aug, uint64_t key, int64_t position, int *dy, int *dx,
                     int *flip) {
  *dy = *dx = *flip = 0;
  if (!aug) return;
  /* A sub-stream per sample: its draws depend only on (key, position). */
  fg_rng r = fg_rng_stream(key, FG_RNG_AUGMENT, (uint64_t)position, 0);
  if (aug->pad > 0) {
    uint64_t span = 2 * (uint64_t)aug->pad + 1;
    *dy = (int)fg_rng_below(&r, span);
    *dx = (int)fg_rng_below(&r, span);
  }
  if (aug->flip) *flip = fg_rng_uniform(&r) < 0.5f;
}

fg_status fg_epoch_order(uint32_t n, uint64_t seed, uint64_t epoch, uint64_t stream_id,
                         int shuffle, uint32_t *order) {
  if (n > 0 && !order) return FG_FAIL(FG_ERR_INVALID, "epoch order: no output array for %u entries", n);
  for (uint32_t i = 0; i < n; i++) order[i] = i;
  if (shuffle) {
    fg_rng r = fg_rng_stream(seed, FG_RNG_SHUFFLE, epoch, stream_id);
    fg_rng_shuffle_u32(&r, order, n);
  }
  return FG_OK;
}
