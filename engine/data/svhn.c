/* SVHN (cropped digits, "format 2"): train_32x32.mat / test_32x32.mat, MATLAB level-5 MAT-files
 * (engine/data/matfile.h: plain or compressed, v7.3 rejected) holding
 *   X  [32, 32, 3, N], values 0..255 (uint8 in the official files): MATLAB's column-major
 *      order, so pixel (row, col) of channel c of image n is value row + 32 col + 1024 c +
 *      3072 n; stored here as [N, 3, 32, 32] row-major, as torchvision's loader does;
 *   y  [N, 1] (or [1, N]), values 1..10 where 10 is the digit 0 (0 is accepted as 0 too);
 *      stored as 0..9.
 * Other variables are skipped; a single image may have X [32, 32, 3]. The extra split
 * (extra_32x32.mat) has the same layout and loads with fg_dataset_load_svhn. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/data/dataset.h"
#include "engine/data/matfile.h"

enum { FG_SVHN_SIDE = 32, FG_SVHN_PLANE = 32 * 32, FG_SVHN_IMAGE = 3 * 32 * 32 };

static const char *shape_str(const fg_mat_var *v, char *buf, size_t cap) {
  size_t at = 0;
  at += (size_t)snprintf(buf, cap, "[");
  for (int d = 0; d < v->ndims && at < cap; d++)
    at += (size_t)snprintf(buf + at, cap - at, "%s%lld", d ? ", " : "", (long long)v->dims[d]);
  if (at < cap) snprintf(buf + at, cap - at, "]");
  return buf;
}

/* X: [32, 32, 3, N] (N >= 1) or [32, 32, 3]; sets *n. */
static fg_status check_x(const char *path, const fg_mat_var *v, int64_t *n) {
  char buf[128];
  const int ok_rank = v->ndims == 3 || v->ndims == 4;
  if (!v->numeric || !ok_rank || v->dims[0] != FG_SVHN_SIDE || v->dims[1] != FG_SVHN_SIDE ||
      v->dims[2] != 3 || (v->ndims == 4 && v->dims[3] < 1))
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable 'X' is %s %s, expected a real numeric array "
                   "[32, 32, 3, N] with N >= 1", path, v->numeric ? "numeric" : "non-numeric",
                   shape_str(v, buf, sizeof buf));
  *n = v->ndims == 4 ? v->dims[3] : 1;
  if (*n > FG_DATASET_MAX_SAMPLES)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable 'X' holds %lld images, more than %d", path,
                   (long long)*n, FG_DATASET_MAX_SAMPLES);
  return FG_OK;
}

/* y: [N, 1] or [1, N] (N >= 1); sets *n. */
static fg_status check_y(const char *path, const fg_mat_var *v, int64_t *n) {
  char buf[128];
  if (!v->numeric || v->ndims != 2 || (v->dims[0] != 1 && v->dims[1] != 1) || v->numel < 1)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable 'y' is %s %s, expected a real numeric vector "
                   "[N, 1]", path, v->numeric ? "numeric" : "non-numeric",
                   shape_str(v, buf, sizeof buf));
  *n = v->numel;
  if (*n > FG_DATASET_MAX_SAMPLES)
    return FG_FAIL(FG_ERR_FORMAT, "%s: variable 'y' holds %lld labels, more than %d", path,
                   (long long)*n, FG_DATASET_MAX_SAMPLES);
  return FG_OK;
}

static fg_status read_x(fg_mat_file *m, int64_t n, uint8_t *pixels) {
  double vals[FG_SVHN_IMAGE];
  for (int64_t i = 0; i < n; i++) {
    FG_TRY(fg_mat_read(m, vals, FG_SVHN_IMAGE));
    uint8_t *out = pixels + i * FG_SVHN_IMAGE;
    for (int c = 0; c < 3; c++)
      for (int col = 0; col < FG_SVHN_SIDE; col++)
        for (int row = 0; row < FG_SVHN_SIDE; row++) {
          const double v = vals[c * FG_SVHN_PLANE + col * FG_SVHN_SIDE + row];
          if (!(v >= 0.0 && v <= 255.0) || v != floor(v))
            return FG_FAIL(FG_ERR_FORMAT, "%s: X(%d, %d, %d, %lld) = %g, expected an integer in "
                           "[0, 255]", m->path, row + 1, col + 1, c + 1, (long long)(i + 1), v);
          out[c * FG_SVHN_PLANE + row * FG_SVHN_SIDE + col] = (uint8_t)v;
        }
  }
  return FG_OK;
}

static fg_status read_y(fg_mat_file *m, int64_t n, int32_t *labels) {
  double vals[1024];
  for (int64_t done = 0; done < n;) {
    const int64_t k = n - done < 1024 ? n - done : 1024;
    FG_TRY(fg_mat_read(m, vals, (uint64_t)k));
    for (int64_t j = 0; j < k; j++) {
      const double v = vals[j];
      if (!(v >= 0.0 && v <= 10.0) || v != floor(v))
        return FG_FAIL(FG_ERR_FORMAT, "%s: y(%lld) = %g, expected a digit label 1..10 (10 "
                       "meaning 0)", m->path, (long long)(done + j + 1), v);
      labels[done + j] = (int32_t)v % 10;
    }
    done += k;
  }
  return FG_OK;
}

static fg_status load(fg_mat_file *m, fg_ledger *ledger, fg_dataset *ds) {
  int64_t nx = -1, ny = -1;
  for (;;) {
    int done = 0;
    FG_TRY(fg_mat_next(m, &done));
    if (done) break;
    const fg_mat_var *v = &m->var;
    const int is_x = strcmp(v->name, "X") == 0, is_y = strcmp(v->name, "y") == 0;
    if (!is_x && !is_y) continue;
    if ((is_x && nx >= 0) || (is_y && ny >= 0))
      return FG_FAIL(FG_ERR_FORMAT, "%s: variable '%s' appears twice", m->path, v->name);
    if (is_x) {
      FG_TRY(check_x(m->path, v, &nx));
      fg_status s = fg_region_alloc(&ds->pixels, ledger, fg_host_device(), FG_MEM_DATA,
                                    (size_t)nx * FG_SVHN_IMAGE, "dataset pixels");
      if (s != FG_OK) {
        fg_error_prefix("SVHN from %s", m->path);
        return s;
      }
      FG_TRY(read_x(m, nx, ds->pixels.ptr));
    } else {
      FG_TRY(check_y(m->path, v, &ny));
      fg_status s = fg_region_alloc(&ds->labels, ledger, fg_host_device(), FG_MEM_DATA,
                                    (size_t)ny * sizeof(int32_t), "dataset labels");
      if (s != FG_OK) {
        fg_error_prefix("SVHN from %s", m->path);
        return s;
      }
      FG_TRY(read_y(m, ny, ds->labels.ptr));
    }
  }
  if (nx < 0 || ny < 0)
    return FG_FAIL(FG_ERR_FORMAT, "%s: no variable '%s' (an SVHN file holds X [32, 32, 3, N] and "
                   "y [N, 1])", m->path, nx < 0 ? "X" : "y");
  if (nx != ny)
    return FG_FAIL(FG_ERR_FORMAT, "%s: X holds %lld images but y %lld labels: the counts must "
                   "agree", m->path, (long long)nx, (long long)ny);
  ds->n = nx;
  return FG_OK;
}

fg_status fg_dataset_load_svhn(const char *path, fg_ledger *ledger, fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!path || !ledger)
    return FG_FAIL(FG_ERR_INVALID, "SVHN: the .mat file and a ledger are required");
  fg_mat_file m;
  FG_TRY(fg_mat_open(&m, path));
  fg_status s = load(&m, ledger, ds);
  fg_mat_close(&m);
  if (s != FG_OK) {
    fg_dataset_free(ds);
    return s;
  }
  ds->c = 3;
  ds->h = FG_SVHN_SIDE;
  ds->w = FG_SVHN_SIDE;
  ds->classes = 10;
  ds->dtype = FG_U8;
  snprintf(ds->name, sizeof ds->name, "svhn");
  return FG_OK;
}

fg_status fg_dataset_load_svhn_dir(const char *dir, int split_train, fg_ledger *ledger,
                                   fg_dataset *ds) {
  memset(ds, 0, sizeof *ds);
  if (!dir) return FG_FAIL(FG_ERR_INVALID, "SVHN: no directory given");
  char path[4096];
  const char *split = split_train ? "train" : "test";
  snprintf(path, sizeof path, "%s/%s_32x32.mat", dir, split);
  FG_TRY(fg_dataset_load_svhn(path, ledger, ds));
  snprintf(ds->name, sizeof ds->name, "svhn-%s", split);
  return FG_OK;
}
