/* Writes the binary seed files of the fuzz corpora (fuzz/corpus/<harness>/) from fedgap's own
 * writers and small hand-built files, so that they can be regenerated when a format changes:
 *   fuzz_make_seeds fuzz/corpus
 * The configuration seeds are the files of configs/ (copied, see fuzz/README.md). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zlib.h>

#include "cpu/cpu_backend.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/nn/models.h"
#include "fl/checkpoint.h"
#include "fl/partition.h"
#include "fuzz/fuzz.h"

static const char *root;

static void die(const char *what) {
  fprintf(stderr, "make_seeds: %s: %s\n", what, fg_last_error());
  exit(1);
}

static void put(const char *harness, const char *name, const void *data, size_t n) {
  char dir[1024], path[1200];
  snprintf(dir, sizeof dir, "%s/%s", root, harness);
  mkdir(dir, 0755);
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if (fg_write_file_atomic(path, data, n) != FG_OK) die(path);
}

/* A file written by a fedgap writer into the corpus of `harness` under `name`, with `prefix`
 * bytes in front. */
static void copy_file(const char *from, const char *harness, const char *name) {
  unsigned char *b = NULL;
  size_t n = 0;
  if (fg_read_file(from, 1u << 26, &b, &n) != FG_OK) die(from);
  put(harness, name, b, n);
  free(b);
}

/* ---- safetensors and checkpoints ---------------------------------------------------------- */

static void safetensors_seeds(const char *tmp) {
  char path[1200];
  snprintf(path, sizeof path, "%s/a.safetensors", tmp);
  float a[6] = {1, -2, 3.5f, 0, 1e-3f, 7};
  int64_t b[2] = {-5, 1LL << 40};
  unsigned char c[3] = {1, 2, 3};
  fg_st_writer w;
  fg_st_writer_init(&w);
  if (fg_st_writer_add(&w, "layer.weight", FG_ST_F32, 2, (const int64_t[]){2, 3}, a) != FG_OK ||
      fg_st_writer_add(&w, "steps", FG_ST_I64, 1, (const int64_t[]){2}, b) != FG_OK ||
      fg_st_writer_add(&w, "mask", FG_ST_U8, 1, (const int64_t[]){3}, c) != FG_OK ||
      fg_st_writer_add(&w, "scalar", FG_ST_F32, 0, NULL, a) != FG_OK ||
      fg_st_writer_set_metadata(&w, "format", "pt") != FG_OK || fg_st_writer_write(&w, path) != FG_OK)
    die("safetensors seed");
  fg_st_writer_free(&w);
  copy_file(path, "safetensors", "writer");
  /* one without a CRC, as other writers make them */
  const char *hdr = "{\"x\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
                    "\"__metadata__\":{\"format\":\"pt\"}}";
  size_t h = strlen(hdr);
  unsigned char buf[256];
  memset(buf, 0, sizeof buf);
  for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)h >> (8 * i));
  memcpy(buf + 8, hdr, h);
  double x[2] = {1.5, -2};
  memcpy(buf + 8 + h, x, sizeof x);
  put("safetensors", "plain", buf, 8 + h + sizeof x);
}

static void checkpoint_seeds(const char *tmp) {
  fg_model_spec spec = {.arch = "cnn", .width = 2, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
  fg_graph *g = NULL;
  if (fg_model_build(&spec, &g) != FG_OK) die("cnn");
  float *state = calloc((size_t)fg_graph_state_numel(g), sizeof(float));
  fg_graph_init_state(g, 1, state);
  fg_checkpoint_tensors t;
  fg_fuzz_method_tensors(&t);
  if (fg_checkpoint_save_tensors(tmp, &t, 3) != FG_OK ||
      fg_checkpoint_save(tmp, g, state, 3, "fedavg", 0x1234) != FG_OK)
    die("checkpoint seed");
  char path[1200];
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", tmp);
  copy_file(path, "checkpoint", "checkpoint");
  snprintf(path, sizeof path, "%s/method_state.safetensors", tmp);
  copy_file(path, "checkpoint", "method_state");
  free(state);
  fg_graph_free(g);
}

/* ---- datasets ----------------------------------------------------------------------------- */

static void be32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

static void idx_seeds(void) {
  enum { N = 2, PX = 28 * 28 };
  unsigned char b[3 + 16 + N * PX + 8 + N];
  size_t img = 16 + N * PX;
  b[1] = (unsigned char)(img & 0xff);
  b[2] = (unsigned char)(img >> 8);
  unsigned char *i = b + 3, *l = b + 3 + img;
  be32(i, 0x803);
  be32(i + 4, N);
  be32(i + 8, 28);
  be32(i + 12, 28);
  for (int k = 0; k < N * PX; k++) i[16 + k] = (unsigned char)(k * 7);
  be32(l, 0x801);
  be32(l + 4, N);
  l[8] = 3;
  l[9] = 9;
  b[0] = 0;
  put("idx", "plain", b, sizeof b);
  b[0] = 3;
  put("idx", "gzip", b, sizeof b);
  /* float32 images [N, 1, 2, 2] */
  unsigned char f[3 + 20 + 4 * 4 + 8 + 1];
  size_t fimg = 20 + 16;
  memset(f, 0, sizeof f);
  f[1] = (unsigned char)fimg;
  unsigned char *fi = f + 3;
  be32(fi, 0xd04);
  be32(fi + 4, 1);
  be32(fi + 8, 1);
  be32(fi + 12, 2);
  be32(fi + 16, 2);
  float v[4] = {0.5f, -1, 2, 0};
  for (int k = 0; k < 4; k++) {
    uint32_t u;
    memcpy(&u, &v[k], 4);
    be32(fi + 20 + 4 * k, u);
  }
  be32(f + 3 + fimg, 0x801);
  be32(f + 3 + fimg + 4, 1);
  f[3 + fimg + 8] = 1;
  put("idx", "float32", f, sizeof f);
}

static void cifar_seeds(void) {
  static unsigned char b[1 + 2 * 3073];
  b[0] = 0;
  for (int r = 0; r < 2; r++) {
    b[1 + r * 3073] = (unsigned char)(r * 7);
    for (int k = 0; k < 3072; k++) b[2 + r * 3073 + k] = (unsigned char)(k + r);
  }
  put("cifar", "cifar10", b, sizeof b);
  b[0] = 2;
  put("cifar", "cifar10-gzip", b, sizeof b);
  static unsigned char c[1 + 3074];
  c[0] = 1;
  c[1] = 19;
  c[2] = 99;
  for (int k = 0; k < 3072; k++) c[3 + k] = (unsigned char)k;
  put("cifar", "cifar100", c, sizeof c);
}

static void stl10_seeds(void) {
  enum { IMG = 3 * 96 * 96 };
  static unsigned char b[4 + IMG + 1];
  b[0] = 0;
  b[1] = (unsigned char)(IMG & 0xff);
  b[2] = (unsigned char)((IMG >> 8) & 0xff);
  b[3] = (unsigned char)(IMG >> 16);
  for (int k = 0; k < IMG; k++) b[4 + k] = (unsigned char)(k * 13);
  b[4 + IMG] = 10;
  put("stl10", "one", b, sizeof b);
  b[0] = 3;
  put("stl10", "one-gzip", b, sizeof b);
}

/* ---- MAT-files ---------------------------------------------------------------------------- */

typedef struct buf {
  unsigned char p[1 << 15];
  size_t n;
  int big;
} buf;

static void u32(buf *b, uint32_t v) {
  for (int i = 0; i < 4; i++) b->p[b->n++] = (unsigned char)(b->big ? v >> (24 - 8 * i) : v >> (8 * i));
}
static void pad8(buf *b) {
  while (b->n % 8) b->p[b->n++] = 0;
}
static void bytes(buf *b, const void *d, size_t n) {
  memcpy(b->p + b->n, d, n);
  b->n += n;
}

/* A miMATRIX element: a real numeric array of class `cls`, data stored as `type`. */
static void matrix(buf *b, const char *name, int cls, const int32_t *dims, int nd, uint32_t type, const void *data,
                   uint32_t data_bytes) {
  buf m;
  m.n = 0;
  m.big = b->big;
  u32(&m, 6); /* miUINT32 */
  u32(&m, 8);
  u32(&m, (uint32_t)cls);
  u32(&m, 0);
  u32(&m, 5); /* miINT32 */
  u32(&m, (uint32_t)(4 * nd));
  for (int d = 0; d < nd; d++) u32(&m, (uint32_t)dims[d]);
  pad8(&m);
  u32(&m, 1); /* miINT8 */
  u32(&m, (uint32_t)strlen(name));
  bytes(&m, name, strlen(name));
  pad8(&m);
  u32(&m, type);
  u32(&m, data_bytes);
  bytes(&m, data, data_bytes); /* one-byte values: the same in either byte order */
  pad8(&m);
  u32(b, 14); /* miMATRIX */
  u32(b, (uint32_t)m.n);
  bytes(b, m.p, m.n);
}

static void mat_header(buf *b) {
  memset(b->p, ' ', 128);
  memcpy(b->p, "MATLAB 5.0 MAT-file, fedgap fuzz seed", 37);
  b->p[124] = b->big ? 0x01 : 0x00;
  b->p[125] = b->big ? 0x00 : 0x01;
  b->p[126] = b->big ? 'M' : 'I';
  b->p[127] = b->big ? 'I' : 'M';
  b->n = 128;
}

static void svhn_seeds(void) {
  static unsigned char px[3072];
  for (int k = 0; k < 3072; k++) px[k] = (unsigned char)(k * 3);
  unsigned char y = 10;
  const int32_t xd[4] = {32, 32, 3, 1}, yd[2] = {1, 1};
  static buf b;
  for (int big = 0; big < 2; big++) {
    b.big = big;
    mat_header(&b);
    matrix(&b, "X", 9, xd, 4, 2 /* miUINT8 */, px, 3072);
    matrix(&b, "y", 6, yd, 2, 2, &y, 1);
    put("svhn", big ? "big-endian.mat" : "plain.mat", b.p, b.n);
  }
  /* the same variables, each in a miCOMPRESSED element */
  static buf inner, out;
  inner.big = out.big = 0;
  mat_header(&out);
  for (int v = 0; v < 2; v++) {
    inner.n = 0;
    if (v == 0) matrix(&inner, "X", 9, xd, 4, 2, px, 3072);
    else matrix(&inner, "y", 6, yd, 2, 2, &y, 1);
    uLongf zn = compressBound(inner.n);
    unsigned char *z = malloc(zn);
    if (compress2(z, &zn, inner.p, inner.n, 6) != Z_OK) die("zlib");
    u32(&out, 15); /* miCOMPRESSED */
    u32(&out, (uint32_t)zn);
    bytes(&out, z, zn);
    free(z);
  }
  put("svhn", "compressed.mat", out.p, out.n);
}

static void partition_seeds(const char *tmp, fg_ledger *ledger) {
  int32_t labels[64];
  for (int i = 0; i < 64; i++) labels[i] = i % 4;
  fg_partition_spec kinds[2] = {{.kind = FG_PARTITION_IID},
                                {.kind = FG_PARTITION_DIRICHLET, .alpha = 0.5, .min_size = 2}};
  const char *names[2] = {"iid.json", "dirichlet.json"};
  for (int k = 0; k < 2; k++) {
    fg_partition p;
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", tmp, names[k]);
    if (fg_partition_make(&kinds[k], labels, 64, 4, 4, 5, ledger, &p) != FG_OK ||
        fg_partition_write(&p, labels, 4, path) != FG_OK)
      die("partition seed");
    copy_file(path, "partition", names[k]);
    fg_partition_free(&p);
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fuzz_make_seeds CORPUS_DIR (fuzz/corpus)\n");
    return 2;
  }
  root = argv[1];
  mkdir(root, 0755);
  fg_cpu_options opt = {1, 0};
  if (fg_cpu_backend_register(&opt) != FG_OK) die("cpu backend");
  char tmp[] = "/tmp/fedgap-seeds-XXXXXX";
  if (!mkdtemp(tmp)) die("mkdtemp");
  fg_ledger ledger;
  fg_ledger_init(&ledger, "seeds", 0);
  safetensors_seeds(tmp);
  checkpoint_seeds(tmp);
  idx_seeds();
  cifar_seeds();
  stl10_seeds();
  svhn_seeds();
  partition_seeds(tmp, &ledger);
  printf("seeds written under %s (scratch files left in %s)\n", root, tmp);
  return 0;
}
