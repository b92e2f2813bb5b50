/* Reading partition.json back (fg_partition_read, fl/partition.h): the format fg_partition_write
 * writes, validated entry by entry before anything is kept. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "engine/io/atomic_file.h"
#include "fl/partition.h"

/* The largest file a partition of n samples over c clients with `classes` classes can take as
 * fg_partition_write writes it, with room for other spacing: a file beyond it is refused before
 * it is parsed. */
static uint64_t max_file_bytes(int n_clients, int64_t n_samples, int classes) {
  uint64_t per_client = 128 + 24 * (uint64_t)classes;
  return 2 * (256 + (uint64_t)n_clients * per_client + 12 * (uint64_t)n_samples) + 4096;
}

/* A JSON number that is an integer in [lo, hi]. */
static int json_int(const cJSON *v, double lo, double hi, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (!(d >= lo && d <= hi) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

typedef struct reader {
  const char *path;
  int n_clients, classes;
  int64_t n_samples;
  const int32_t *labels;
  uint8_t *seen;   /* a bit per sample */
  int64_t *hist;   /* [classes] */
} reader;

static fg_status bad(const reader *r, const char *fmt, const char *a, long long x, long long y) {
  char msg[256];
  snprintf(msg, sizeof msg, fmt, a, x, y);
  return FG_FAIL(FG_ERR_FORMAT, "%s: %s", r->path, msg);
}

/* Client k's entry: counts first (so that nothing is written past what was allocated), then its
 * indices into index[at..]. */
static fg_status read_client(reader *r, const cJSON *c, int k, uint32_t *index, int64_t at, int64_t total) {
  char where[32];
  snprintf(where, sizeof where, "clients[%d]", k);
  int64_t id = -1, samples = -1;
  if (!cJSON_IsObject(c)) return bad(r, "%s is not an object", where, 0, 0);
  if (!json_int(cJSON_GetObjectItemCaseSensitive(c, "id"), 0, 1e9, &id) || id != k)
    return bad(r, "%s: id is not %lld", where, k, 0);
  if (!json_int(cJSON_GetObjectItemCaseSensitive(c, "samples"), 0, (double)r->n_samples, &samples))
    return bad(r, "%s: samples is not an integer in [0, %lld]", where, r->n_samples, 0);
  const cJSON *classes = cJSON_GetObjectItemCaseSensitive(c, "classes");
  const cJSON *indices = cJSON_GetObjectItemCaseSensitive(c, "indices");
  if (!cJSON_IsArray(classes) || cJSON_GetArraySize(classes) != r->classes)
    return bad(r, "%s: classes is not a list of %lld counts", where, r->classes, 0);
  if (!cJSON_IsArray(indices) || cJSON_GetArraySize(indices) != samples)
    return bad(r, "%s: indices is not a list of its %lld samples", where, samples, 0);
  if (at + samples > total) return bad(r, "%s: more samples than the file's total of %lld", where, total, 0);
  memset(r->hist, 0, (size_t)r->classes * sizeof *r->hist);
  int64_t i = 0;
  for (const cJSON *v = indices->child; v; v = v->next, i++) {
    int64_t s = 0;
    if (!json_int(v, 0, (double)(r->n_samples - 1), &s))
      return bad(r, "%s: indices[%lld] is not a sample index in [0, %lld)", where, i, r->n_samples);
    if (r->seen[s >> 3] & (1u << (s & 7))) return bad(r, "%s: sample %lld is held twice", where, s, 0);
    r->seen[s >> 3] |= (uint8_t)(1u << (s & 7));
    index[at + i] = (uint32_t)s;
    if (r->labels) {
      int32_t y = r->labels[s];
      if (y >= 0 && y < r->classes) r->hist[y]++;
    }
  }
  int64_t sum = 0, j = 0;
  for (const cJSON *v = classes->child; v; v = v->next, j++) {
    int64_t count = 0;
    if (!json_int(v, 0, (double)samples, &count))
      return bad(r, "%s: classes[%lld] is not a count in [0, %lld]", where, j, samples);
    if (r->labels && count != r->hist[j])
      return bad(r, "%s: classes[%lld] does not count its samples of that class (%lld)", where, j, r->hist[j]);
    sum += count;
  }
  if (sum != samples) return bad(r, "%s: its class counts add up to %lld, not its %lld samples", where, sum, samples);
  return FG_OK;
}

static fg_status read_root(reader *r, const cJSON *root, fg_ledger *ledger, fg_partition *out) {
  if (!cJSON_IsObject(root)) return bad(r, "%s is not a JSON object", "the file", 0, 0);
  const cJSON *hash = cJSON_GetObjectItemCaseSensitive(root, "hash");
  const cJSON *clients = cJSON_GetObjectItemCaseSensitive(root, "clients");
  uint64_t want = 0;
  char *end = NULL;
  if (!cJSON_IsString(hash) || strlen(hash->valuestring) != 16 ||
      (want = strtoull(hash->valuestring, &end, 16), *end != '\0'))
    return bad(r, "%s is not 16 hexadecimal digits", "hash", 0, 0);
  if (!cJSON_IsArray(clients) || cJSON_GetArraySize(clients) != r->n_clients)
    return bad(r, "%s is not a list of the %lld clients", "clients", r->n_clients, 0);
  int64_t total = 0, s = 0;
  for (const cJSON *c = clients->child; c; c = c->next)
    if (json_int(cJSON_GetObjectItemCaseSensitive(c, "samples"), 0, (double)r->n_samples, &s)) total += s;
  if (total > r->n_samples) return bad(r, "%s: the clients hold %lld samples, the dataset has %lld", "clients", total,
                                       r->n_samples);
  FG_TRY(fg_region_alloc(&out->index, ledger, fg_host_device(), FG_MEM_DATA,
                         (size_t)(total > 0 ? total : 1) * sizeof(uint32_t), "partition indices"));
  FG_TRY(fg_region_alloc(&out->offset, ledger, fg_host_device(), FG_MEM_DATA,
                         ((size_t)r->n_clients + 1) * sizeof(int64_t), "partition offsets"));
  out->n_clients = r->n_clients;
  out->n_samples = r->n_samples;
  int64_t *offset = out->offset.ptr, at = 0;
  int k = 0;
  for (const cJSON *c = clients->child; c; c = c->next, k++) {
    offset[k] = at;
    FG_TRY(read_client(r, c, k, out->index.ptr, at, total));
    at += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c, "indices"));
  }
  offset[r->n_clients] = at;
  out->hash = want;
  return FG_OK;
}

fg_status fg_partition_read(const char *path, int n_clients, int64_t n_samples, int classes, const int32_t *labels,
                            fg_ledger *ledger, fg_partition *out) {
  if (out) memset(out, 0, sizeof *out);
  if (!path || !ledger || !out || n_clients < 1 || n_clients > FG_PARTITION_MAX_CLIENTS || n_samples < 1 ||
      n_samples > UINT32_MAX || classes < 1 || classes > FG_PARTITION_MAX_CLASSES)
    return FG_FAIL(FG_ERR_INVALID, "partition read: a path, a ledger, 1..%d clients, 1..%u samples and 1..%d "
                   "classes are required", FG_PARTITION_MAX_CLIENTS, UINT32_MAX, FG_PARTITION_MAX_CLASSES);
  uint64_t limit = max_file_bytes(n_clients, n_samples, classes);
  unsigned char *text = NULL;
  size_t len = 0;
  fg_status s = fg_read_file(path, (size_t)limit, &text, &len);
  if (s == FG_ERR_FORMAT)
    return FG_FAIL(FG_ERR_FORMAT, "%s: larger than the %" PRIu64 " bytes a partition of %lld samples over %d clients "
                   "takes", path, limit, (long long)n_samples, n_clients);
  FG_TRY(s);
  cJSON *root = cJSON_ParseWithLength((const char *)text, len);
  free(text);
  if (!root) return FG_FAIL(FG_ERR_FORMAT, "%s: not valid JSON", path);
  reader r = {path, n_clients, classes, n_samples, labels, calloc((size_t)(n_samples + 7) / 8, 1),
              calloc((size_t)classes, sizeof(int64_t))};
  s = r.seen && r.hist ? read_root(&r, root, ledger, out) : FG_FAIL(FG_ERR_OOM, "partition read: out of memory");
  free(r.seen);
  free(r.hist);
  cJSON_Delete(root);
  if (s != FG_OK) fg_partition_free(out);
  return s;
}
