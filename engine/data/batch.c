/* Batch assembly: gather, augment (crop with zero padding, flip), normalise, in parallel. */
#include <math.h>
#include <string.h>

#include "engine/backend/ops_check.h"
#include "engine/data/dataset.h"

static const char *const fg_batch_op = "batch fill";

static fg_status check_normalize(const fg_normalize *norm, int64_t channels) {
  if (!norm) return FG_FAIL(FG_ERR_INVALID, "%s: no normalisation given", fg_batch_op);
  if (norm->channels < 0 || norm->channels > FG_NORMALIZE_MAX_CHANNELS)
    return FG_FAIL(FG_ERR_INVALID, "%s: normalisation has %d channels, expected 0..%d", fg_batch_op,
                   norm->channels, FG_NORMALIZE_MAX_CHANNELS);
  if (norm->channels != 0 && norm->channels != channels)
    return FG_FAIL(FG_ERR_SHAPE, "%s: normalisation has %d channels but the images have %lld",
                   fg_batch_op, norm->channels, (long long)channels);
  int k = norm->channels ? norm->channels : 1;
  for (int c = 0; c < k; c++)
    if (!isfinite(norm->mean[c]) || !isfinite(norm->std[c]) || !(norm->std[c] > 0.0f))
      return FG_FAIL(FG_ERR_INVALID, "%s: normalisation channel %d has mean %g, std %g (need finite, std > 0)",
                     fg_batch_op, c, (double)norm->mean[c], (double)norm->std[c]);
  return FG_OK;
}

static fg_status check_augment(const fg_augment *aug) {
  if (!aug) return FG_OK;
  if (aug->pad < 0 || aug->pad > FG_AUGMENT_MAX_PAD)
    return FG_FAIL(FG_ERR_INVALID, "%s: crop padding %d, expected 0..%d", fg_batch_op, aug->pad,
                   FG_AUGMENT_MAX_PAD);
  if (aug->flip != 0 && aug->flip != 1)
    return FG_FAIL(FG_ERR_INVALID, "%s: flip %d, expected 0 or 1", fg_batch_op, aug->flip);
  return FG_OK;
}

static fg_status check_batch(const fg_dataset_view *view, const uint32_t *order, int64_t start,
                             int64_t count, const fg_host_batch *out) {
  if (!view || !view->ds) return FG_FAIL(FG_ERR_INVALID, "%s: no dataset view", fg_batch_op);
  const fg_dataset *ds = view->ds;
  if (ds->n > 0 && (!ds->pixels.ptr || !ds->labels.ptr))
    return FG_FAIL(FG_ERR_INVALID, "%s: dataset %s has no storage", fg_batch_op, ds->name);
  if (ds->dtype != FG_U8 && ds->dtype != FG_F32)
    return FG_FAIL(FG_ERR_INVALID, "%s: dataset %s has pixel dtype %s, expected u8 or f32",
                   fg_batch_op, ds->name, fg_dtype_name(ds->dtype));
  if (!out || (count > 0 && (!out->images.ptr || !out->labels.ptr)))
    return FG_FAIL(FG_ERR_INVALID, "%s: no host batch to fill", fg_batch_op);
  if (out->c != ds->c || out->h != ds->h || out->w != ds->w)
    return FG_FAIL(FG_ERR_SHAPE, "%s: the host batch holds %lldx%lldx%lld images, the dataset %s has %lldx%lldx%lld",
                   fg_batch_op, (long long)out->c, (long long)out->h, (long long)out->w, ds->name, (long long)ds->c,
                   (long long)ds->h, (long long)ds->w);
  if (count > out->capacity)
    return FG_FAIL(FG_ERR_SHAPE, "%s: %lld samples for a host batch of %lld", fg_batch_op, (long long)count,
                   (long long)out->capacity);
  if (start < 0 || count < 0 || start > view->n - count)
    return FG_FAIL(FG_ERR_INVALID, "%s: positions %lld..%lld are outside the view of %lld samples",
                   fg_batch_op, (long long)start, (long long)(start + count - 1), (long long)view->n);
  if (order)
    for (int64_t p = start; p < start + count; p++)
      if ((int64_t)order[p] >= view->n)
        return FG_FAIL(FG_ERR_INVALID, "%s: order[%lld] = %u is outside the view of %lld samples",
                       fg_batch_op, (long long)p, order[p], (long long)view->n);
  return FG_OK;
}

/* One output plane [H, W] from a source plane: out[y][x] = f(src[y + oy][sx + ox]) with
 * sx = W-1-x when flipped, else x; `fill` where the source lies outside the image. */
static void plane_u8(const uint8_t *src, float *out, int64_t h, int64_t w, int64_t oy, int64_t ox,
                     int flip, const float *lut, float fill) {
  for (int64_t yy = 0; yy < h; yy++) {
    float *o = out + yy * w;
    int64_t sy = yy + oy;
    if (sy < 0 || sy >= h) {
      for (int64_t xx = 0; xx < w; xx++) o[xx] = fill;
      continue;
    }
    const uint8_t *row = src + sy * w;
    for (int64_t xx = 0; xx < w; xx++) {
      int64_t sx = (flip ? w - 1 - xx : xx) + ox;
      o[xx] = (sx >= 0 && sx < w) ? lut[row[sx]] : fill;
    }
  }
}

static void plane_f32(const float *src, float *out, int64_t h, int64_t w, int64_t oy, int64_t ox,
                      int flip, float mean, float std, float fill) {
  for (int64_t yy = 0; yy < h; yy++) {
    float *o = out + yy * w;
    int64_t sy = yy + oy;
    if (sy < 0 || sy >= h) {
      for (int64_t xx = 0; xx < w; xx++) o[xx] = fill;
      continue;
    }
    const float *row = src + sy * w;
    for (int64_t xx = 0; xx < w; xx++) {
      int64_t sx = (flip ? w - 1 - xx : xx) + ox;
      o[xx] = (sx >= 0 && sx < w) ? (row[sx] - mean) / std : fill;
    }
  }
}

fg_status fg_host_batch_alloc(fg_host_batch *b, fg_ledger *ledger, int64_t capacity, int64_t c,
                              int64_t h, int64_t w) {
  memset(b, 0, sizeof *b);
  if (capacity < 1 || c < 1 || h < 1 || w < 1)
    return FG_FAIL(FG_ERR_INVALID, "host batch: %lld samples of %lldx%lldx%lld (expected all >= 1)",
                   (long long)capacity, (long long)c, (long long)h, (long long)w);
  size_t images = (size_t)capacity * (size_t)(c * h * w) * sizeof(float);
  FG_TRY(fg_region_alloc(&b->images, ledger, fg_host_device(), FG_MEM_DATA, images, "host batch images"));
  fg_status s = fg_region_alloc(&b->labels, ledger, fg_host_device(), FG_MEM_DATA,
                                (size_t)capacity * sizeof(int32_t), "host batch labels");
  if (s != FG_OK) {
    fg_region_free(&b->images);
    return s;
  }
  b->capacity = capacity;
  b->c = c;
  b->h = h;
  b->w = w;
  return FG_OK;
}

void fg_host_batch_free(fg_host_batch *b) {
  fg_region_free(&b->labels);
  fg_region_free(&b->images);
  memset(b, 0, sizeof *b);
}

fg_tensor fg_host_batch_images(const fg_host_batch *b, int64_t count) {
  const int64_t shape[4] = {count, b->c, b->h, b->w};
  return fg_tensor_view(b->images.ptr, FG_F32, fg_host_device(), 4, shape);
}

fg_tensor fg_host_batch_labels(const fg_host_batch *b, int64_t count) {
  return fg_tensor_view(b->labels.ptr, FG_I32, fg_host_device(), 1, &count);
}

fg_status fg_batch_fill(const fg_dataset_view *view, const uint32_t *order, int64_t start,
                        int64_t count, const fg_normalize *norm, const fg_augment *aug,
                        uint64_t aug_key, const fg_host_batch *out) {
  FG_TRY(check_batch(view, order, start, count, out));
  const fg_dataset *ds = view->ds;
  FG_TRY(check_normalize(norm, ds->c));
  FG_TRY(check_augment(aug));

  const int64_t c = ds->c, h = ds->h, w = ds->w, plane = h * w;
  const int n_norm = norm->channels ? norm->channels : 1;
  /* u8: the normalised value of every byte, per normalisation channel (exact in double). */
  float lut[FG_NORMALIZE_MAX_CHANNELS][256];
  float fill[FG_NORMALIZE_MAX_CHANNELS];
  for (int k = 0; k < n_norm; k++) {
    fill[k] = (float)((0.0 - (double)norm->mean[k]) / (double)norm->std[k]);
    if (ds->dtype == FG_U8)
      for (int v = 0; v < 256; v++)
        lut[k][v] = (float)(((double)v / 255.0 - (double)norm->mean[k]) / (double)norm->std[k]);
  }
  const int augmenting = aug && (aug->pad > 0 || aug->flip);
  const int64_t pad = aug ? aug->pad : 0;
  float *pixels_out = (float *)out->images.ptr;
  int32_t *labels_out = (int32_t *)out->labels.ptr;
  const int32_t *labels = fg_dataset_labels(ds);

#pragma omp parallel for schedule(static) if (count * c * plane >= 32768)
  for (int64_t i = 0; i < count; i++) {
    const int64_t pos = start + i;
    const uint32_t vi = order ? order[pos] : (uint32_t)pos;
    const int64_t di = fg_dataset_view_index(view, vi);
    labels_out[i] = labels[di];
    int dy = 0, dx = 0, flip = 0;
    if (augmenting) fg_augment_draw(aug, aug_key, pos, &dy, &dx, &flip);
    const int64_t oy = augmenting ? dy - pad : 0, ox = augmenting ? dx - pad : 0;
    for (int64_t ch = 0; ch < c; ch++) {
      const int k = norm->channels ? (int)ch : 0;
      float *o = pixels_out + (i * c + ch) * plane;
      const int64_t src_off = (di * c + ch) * plane;
      if (ds->dtype == FG_U8)
        plane_u8(fg_dataset_pixels_u8(ds) + src_off, o, h, w, oy, ox, flip, lut[k], fill[k]);
      else
        plane_f32(fg_dataset_pixels_f32(ds) + src_off, o, h, w, oy, ox, flip, norm->mean[k],
                  norm->std[k], fill[k]);
    }
  }
  return FG_OK;
}
