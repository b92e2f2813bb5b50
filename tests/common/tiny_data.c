/* A small Fashion-MNIST-format dataset for fast FL runs (tiny_data.h). */
#include "common/tiny_data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/test_util.h"
#include "engine/base/rng.h"
#include "engine/io/atomic_file.h"
#include "engine/nn/models.h"

enum { PIXELS = 28 * 28 };

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static void write_split(const char *dir, const char *prefix, int n, uint64_t seed, uint64_t stream) {
  size_t img_bytes = 16 + (size_t)n * PIXELS, lab_bytes = 8 + (size_t)n;
  unsigned char *img = malloc(img_bytes), *lab = malloc(lab_bytes);
  cr_assert(img && lab);
  put_be32(img, 0x00000803u);
  put_be32(img + 4, (uint32_t)n);
  put_be32(img + 8, 28);
  put_be32(img + 12, 28);
  put_be32(lab, 0x00000801u);
  put_be32(lab + 4, (uint32_t)n);
  fg_rng r = fg_rng_stream(seed, FG_RNG_TEST, stream, 0);
  for (int i = 0; i < n; i++) {
    unsigned y = (unsigned)fg_rng_below(&r, 10);
    lab[8 + i] = (unsigned char)y;
    for (int p = 0; p < PIXELS; p++)
      img[16 + (size_t)i * PIXELS + p] =
          (unsigned char)((p % 28 < 14 ? 20 * y : 200 - 15 * y) + fg_rng_below(&r, 40));
  }
  char name[64];
  snprintf(name, sizeof name, "%s-images-idx3-ubyte", prefix);
  char *path = fgt_join(dir, name);
  fgt_write_file(path, img, img_bytes, 0);
  free(path);
  snprintf(name, sizeof name, "%s-labels-idx1-ubyte", prefix);
  path = fgt_join(dir, name);
  fgt_write_file(path, lab, lab_bytes, 0);
  free(path);
  free(img);
  free(lab);
}

struct fg_graph *fgt_tiny_cnn(double width) {
  fg_model_spec spec = {.arch = "cnn", .width = width, .in_c = 1, .in_h = 28, .in_w = 28, .classes = 10};
  fg_graph *g = NULL;
  FGT_OK(fg_model_build(&spec, &g));
  return g;
}

void fgt_write_tiny_fmnist(const char *dir, int n_train, int n_test, unsigned long long seed) {
  write_split(dir, "train", n_train, seed, 1);
  write_split(dir, "t10k", n_test, seed, 2);
}
