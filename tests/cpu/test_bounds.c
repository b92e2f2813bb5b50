/* Bounded resources: small crafted inputs that claim huge sizes are refused before any large
 * allocation, with the limit named.
 * - YAML: nesting deeper than 64 levels, an alias cycle, and a --set value whose aliases expand
 *   to billions of nodes (refused in well under the test's timeout); batch sizes above the
 *   plan's limit; a client count above 1000000.
 * - safetensors: a header length beyond the file, a tensor whose shape needs exabytes, a data
 *   buffer whose CRC-32 differs from the one recorded; checkpoints: truncated, corrupted, or with
 *   a round that is not a count of rounds.
 * - datasets: IDX headers (plain and gzipped) announcing more samples than the file holds, a
 *   MAT-file element declaring more bytes than remain, a compressed element declaring more than
 *   its bytes can inflate to, a CIFAR file that is not a whole number of records: each refused
 *   with the limit named, with nothing charged to the ledger (its peak stays 0). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "common/test_util.h"
#include "common/tiny_data.h"
#include "engine/data/dataset.h"
#include "engine/io/atomic_file.h"
#include "engine/io/safetensors.h"
#include "engine/nn/models.h"
#include "engine/nn/weights.h"
#include "fl/checkpoint.h"
#include "fl/config.h"

static char *tmp;

static void setup(void) {
  fgt_setup_cpu(1);
  tmp = fgt_mkdtemp();
}

static void teardown(void) {
  fgt_rmtree(tmp);
  free(tmp);
}

TestSuite(bounds, .init = setup, .fini = teardown);

static char *put(const char *name, const void *bytes, size_t n, int gz) {
  char *path = fgt_join(tmp, name);
  fgt_write_file(path, bytes, n, gz);
  return path;
}

static void has(const char *msg, const char *what) {
  cr_assert(strstr(msg, what) != NULL, "\"%s\" lacks \"%s\"", msg, what);
}

/* ---- YAML ---------------------------------------------------------------------------------- */

static const char *BASE = "rounds: 1\ndata: {dataset: fashion-mnist}\nmodel: {arch: cnn}\nclients: {count: 4}\n"
                          "method: {name: fedavg}\n";

static fg_status load_text(const char *text, const char *const *set, int n_set) {
  char *path = put("c.yaml", text, strlen(text), 0);
  fg_config cfg;
  fg_status s = fg_config_load(path, set, n_set, &cfg);
  fg_config_free(&cfg);
  free(path);
  return s;
}

Test(bounds, yaml_nesting_and_aliases_are_bounded, .timeout = 30) {
  char text[4096];
  int at = snprintf(text, sizeof text, "%sname: ", BASE);
  for (int i = 0; i < 100; i++) text[at++] = '[';
  for (int i = 0; i < 100; i++) text[at++] = ']';
  text[at++] = '\n';
  text[at] = '\0';
  cr_assert_eq(load_text(text, NULL, 0), FG_ERR_CONFIG);
  has(fg_last_error(), "nested deeper than 64 levels");

  /* 60 levels are within the limit: the error is then the schema's */
  at = snprintf(text, sizeof text, "%sname: ", BASE);
  for (int i = 0; i < 60; i++) text[at++] = '[';
  for (int i = 0; i < 60; i++) text[at++] = ']';
  text[at++] = '\n';
  text[at] = '\0';
  cr_assert_eq(load_text(text, NULL, 0), FG_ERR_CONFIG);
  has(fg_last_error(), "name: expected a string");

  snprintf(text, sizeof text, "%sname: &a [*a]\n", BASE);
  cr_assert_eq(load_text(text, NULL, 0), FG_ERR_CONFIG);
  has(fg_last_error(), "an alias refers to a node that holds it");

  /* a --set value of 40 aliases, each used twice by the next: 2^40 nodes once expanded */
  char value[4096];
  at = snprintf(value, sizeof value, "name=[&a0 [1, 1]");
  for (int i = 1; i < 40; i++)
    at += snprintf(value + at, sizeof value - (size_t)at, ", &a%d [*a%d, *a%d]", i, i - 1, i - 1);
  snprintf(value + at, sizeof value - (size_t)at, "]");
  const char *set[] = {value};
  cr_assert_eq(load_text(BASE, set, 1), FG_ERR_CONFIG);
  has(fg_last_error(), "value of more than 10000 nodes");

  const char *big_batch[] = {"local.batch=100000000"};
  cr_assert_eq(load_text(BASE, big_batch, 1), FG_ERR_CONFIG);
  has(fg_last_error(), "expected 1..16777216");
  const char *many[] = {"clients.count=1000001"};
  cr_assert_eq(load_text(BASE, many, 1), FG_ERR_CONFIG);
  has(fg_last_error(), "expected 1..1000000");
}

/* ---- safetensors and checkpoints ------------------------------------------------------------- */

static void le64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A safetensors file: the 8-byte length, `header`, then `data_len` zero bytes. */
static char *st_file(const char *name, uint64_t claimed_len, const char *header, size_t data_len) {
  size_t h = strlen(header), n = 8 + h + data_len;
  unsigned char *b = calloc(1, n);
  le64(b, claimed_len);
  memcpy(b + 8, header, h);
  char *path = put(name, b, n, 0);
  free(b);
  return path;
}

Test(bounds, safetensors_claims_beyond_the_file_are_refused) {
  fg_st_file *f = NULL;
  const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  char *path = st_file("len.safetensors", (uint64_t)1 << 62, hdr, 4);
  cr_assert_eq(fg_st_open(path, &f), FG_ERR_FORMAT);
  has(fg_last_error(), "exceeds the");
  free(path);

  path = st_file("shape.safetensors", strlen(
      "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}"),
      "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 8);
  cr_assert_eq(fg_st_open(path, &f), FG_ERR_FORMAT);
  has(fg_last_error(), "needs more than");
  free(path);

  /* a file of another writer (no CRC recorded) loads */
  path = st_file("plain.safetensors", strlen(hdr), hdr, 4);
  FGT_OK(fg_st_open(path, &f));
  fg_st_close(f);
  free(path);
}

static unsigned char *read_all(const char *path, size_t *n) {
  unsigned char *b = NULL;
  FGT_OK(fg_read_file(path, 1u << 30, &b, n));
  return b;
}

Test(bounds, bad_checkpoints_are_refused_with_one_line) {
  fg_graph *g = fgt_tiny_cnn(4);
  int64_t n = fg_graph_state_numel(g);
  float *state = malloc((size_t)n * sizeof(float)), *back = malloc((size_t)n * sizeof(float));
  fg_graph_init_state(g, 7, state);
  FGT_OK(fg_checkpoint_save(tmp, g, state, 3, "fedavg", 0x1234));
  int round = 0;
  FGT_OK(fg_checkpoint_load(tmp, g, back, &round, "fedavg", 0x1234));
  cr_assert_eq(round, 3);
  cr_assert_eq(memcmp(state, back, (size_t)n * sizeof(float)), 0);

  char *path = fgt_join(tmp, "checkpoint.safetensors");
  size_t size = 0;
  unsigned char *good = read_all(path, &size);
  /* one flipped bit in the data */
  good[size - 5] ^= 0x10;
  fgt_write_file(path, good, size, 0);
  cr_assert_eq(fg_checkpoint_load(tmp, g, back, &round, "fedavg", 0x1234), FG_ERR_FORMAT);
  has(fg_last_error(), "the file is corrupted");
  cr_assert_eq(strchr(fg_last_error(), '\n'), NULL);
  good[size - 5] ^= 0x10;
  /* truncated */
  fgt_write_file(path, good, size - 100, 0);
  cr_assert_eq(fg_checkpoint_load(tmp, g, back, &round, "fedavg", 0x1234), FG_ERR_FORMAT);
  has(fg_last_error(), "checkpoint.safetensors");
  fgt_write_file(path, good, 5, 0);
  cr_assert_eq(fg_checkpoint_load(tmp, g, back, &round, "fedavg", 0x1234), FG_ERR_FORMAT);
  has(fg_last_error(), "expected at least 8");
  free(good);

  /* rounds that are not a count of rounds */
  const char *bad[] = {"-3", "abc", "99999999", "0", "12x", ""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *keys[] = {"format", "round", "method", "partition"};
    const char *values[] = {"fedgap-checkpoint", bad[i], "fedavg", "0000000000001234"};
    FGT_OK(fg_weights_save(g, state, path, keys, values, 4));
    cr_assert_eq(fg_checkpoint_load(tmp, g, back, &round, "fedavg", 0x1234), FG_ERR_FORMAT, "round \"%s\"", bad[i]);
    has(fg_last_error(), "expected a count of rounds 1..1000000");
  }
  free(path);
  free(state);
  free(back);
  fg_graph_free(g);
}

/* ---- datasets ------------------------------------------------------------------------------ */

static void be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

Test(bounds, idx_headers_claiming_more_than_the_file_are_refused) {
  unsigned char img[16 + 784], lab[8 + 1];
  memset(img, 7, sizeof img);
  memset(lab, 1, sizeof lab);
  be32(img, 0x803);
  be32(img + 4, 1000000000u);
  be32(img + 8, 28);
  be32(img + 12, 28);
  be32(lab, 0x801);
  be32(lab + 4, 1000000000u);
  for (int gz = 0; gz < 2; gz++) {
    char *pi = put(gz ? "i.gz" : "i", img, sizeof img, gz), *pl = put(gz ? "l.gz" : "l", lab, sizeof lab, gz);
    fg_ledger ledger;
    fg_ledger_init(&ledger, "data", 0);
    fg_dataset ds;
    cr_assert_eq(fg_dataset_load_idx(pi, pl, &ledger, &ds), FG_ERR_FORMAT);
    has(fg_last_error(), gz ? "holds at most" : "found 784");
    has(fg_last_error(), "784000000000 bytes of pixels");
    cr_assert_eq(ledger.peak, 0u, "nothing may be allocated before the sizes are checked");
    free(pi);
    free(pl);
  }
}

/* A level-5 MAT-file header (little-endian). */
static void mat_header(unsigned char *h) {
  memset(h, ' ', 128);
  memcpy(h, "MATLAB 5.0 MAT-file", 19);
  h[124] = 0x00;
  h[125] = 0x01;
  h[126] = 'I';
  h[127] = 'M';
}

static void le32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

Test(bounds, mat_elements_claiming_more_than_the_file_are_refused) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "data", 0);
  fg_dataset ds;
  unsigned char b[128 + 16];
  mat_header(b);
  le32(b + 128, 14);           /* miMATRIX */
  le32(b + 132, 0x7fffff00u);  /* of 2 GiB */
  memset(b + 136, 0, 8);
  char *path = put("big.mat", b, sizeof b, 0);
  cr_assert_eq(fg_dataset_load_svhn(path, &ledger, &ds), FG_ERR_FORMAT);
  has(fg_last_error(), "declares 2147483392 bytes but only 8 remain");
  free(path);

  /* a compressed element whose inner miMATRIX claims 4 GiB - 1 bytes */
  unsigned char inner[8], z[64];
  le32(inner, 14);
  le32(inner + 4, 0xffffffffu);
  uLongf zn = sizeof z;
  cr_assert_eq(compress2(z, &zn, inner, sizeof inner, 9), Z_OK);
  unsigned char c[128 + 8 + 64];
  mat_header(c);
  le32(c + 128, 15); /* miCOMPRESSED */
  le32(c + 132, (uint32_t)zn);
  memcpy(c + 136, z, zn);
  path = put("zbig.mat", c, 136 + zn, 0);
  cr_assert_eq(fg_dataset_load_svhn(path, &ledger, &ds), FG_ERR_FORMAT);
  has(fg_last_error(), "declares 4294967295 bytes of content");
  has(fg_last_error(), "compressed bytes can hold");
  cr_assert_eq(ledger.peak, 0u);
  free(path);
}

Test(bounds, cifar_and_stl10_sizes_are_checked_before_allocating) {
  fg_ledger ledger;
  fg_ledger_init(&ledger, "data", 0);
  fg_dataset ds;
  size_t n = 3073 * 2 + 1;
  unsigned char *b = calloc(1, n);
  char *path = put("c.bin", b, n, 0);
  const char *paths[] = {path};
  cr_assert_eq(fg_dataset_load_cifar(paths, 1, 10, &ledger, &ds), FG_ERR_FORMAT);
  has(fg_last_error(), "not a multiple of the CIFAR-10 record size 3073");
  char *lab = put("y.bin", b, 3, 0);
  cr_assert_eq(fg_dataset_load_stl10(path, lab, &ledger, &ds), FG_ERR_FORMAT);
  has(fg_last_error(), "not a multiple of the STL-10 image size 27648");
  cr_assert_eq(ledger.peak, 0u);
  free(lab);
  free(path);
  free(b);
}
