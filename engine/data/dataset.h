/* Datasets in memory, their loaders, views, normalisation, augmentation and batching.
 *
 * A dataset holds N samples of C x H x W pixels, stored compactly as in the files (u8, or f32
 * for IDX files of type float), and N int32 labels in [0, classes). Both live in regions of the
 * CPU device, category FG_MEM_DATA, charged to the ledger the caller passes (the apps give
 * datasets their own ledger, separate from a client's training ledger).
 *
 * Loaders read IDX files (gzipped or plain; Fashion-MNIST is IDX), the CIFAR-10/100 and STL-10
 * binary formats, and SVHN's MATLAB files (level-5 MAT-files, engine/data/matfile.h). Every
 * malformed file gets a clear status and a message naming the file, the problem,
 * and the expected and actual values; header sizes are checked against the file before anything
 * is allocated.
 *
 * Transforms (normalisation, random crop with zero padding, horizontal flip) are applied when a
 * batch is assembled, so storage stays u8. Every random draw is keyed by (augmentation key,
 * the sample's position in the epoch order): a batch's contents never depend on the batch size,
 * the thread count or the order of calls.
 *
 * A view is a subset of a dataset given by an index array (not a copy), so federated clients
 * hold their partition without copying pixels; batching works on views.
 *
 * Owns: a dataset owns its two regions (free with fg_dataset_free). A view owns nothing. */
#ifndef FG_DATASET_H
#define FG_DATASET_H

#include <stdint.h>

#include "engine/base/status.h"
#include "engine/mem/ledger.h"
#include "engine/mem/region.h"
#include "engine/tensor/tensor.h"

/* Where the Debian package dataset-fashion-mnist installs the four gzipped IDX files. */
#define FG_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

/* Largest number of samples a dataset may hold (indices are uint32, positions int32). */
#define FG_DATASET_MAX_SAMPLES INT32_MAX

typedef struct fg_dataset {
  char name[64];      /* e.g. "fashion-mnist-train", "cifar10-test", or the images file name */
  int64_t n;          /* samples */
  int64_t c, h, w;    /* channels, height, width of one sample */
  int classes;        /* labels lie in [0, classes) */
  fg_dtype dtype;     /* pixel storage: FG_U8 (scaled by 1/255 in batches) or FG_F32 (as is) */
  fg_region pixels;   /* [n, c, h, w] of dtype, row-major */
  fg_region labels;   /* [n] int32 */
} fg_dataset;

static inline const uint8_t *fg_dataset_pixels_u8(const fg_dataset *ds) {
  return (const uint8_t *)ds->pixels.ptr;
}
static inline const float *fg_dataset_pixels_f32(const fg_dataset *ds) {
  return (const float *)ds->pixels.ptr;
}
static inline const int32_t *fg_dataset_labels(const fg_dataset *ds) {
  return (const int32_t *)ds->labels.ptr;
}
/* Elements (not bytes) of one sample: c * h * w. */
static inline int64_t fg_dataset_sample_numel(const fg_dataset *ds) { return ds->c * ds->h * ds->w; }

/* Releases both regions (and their ledger charges) and zeroes *ds. Safe on a zeroed dataset. */
void fg_dataset_free(fg_dataset *ds);

/* *out := the samples of `a` followed by those of `b` (e.g. a train split then its test split, the
 * pool of hypemefed.md section 7), copied into two new regions charged to `ledger`. Sample i < a->n
 * is a's sample i, sample a->n + j is b's sample j. a and b must have the same c, h, w and dtype;
 * out->classes is the larger of theirs; out->name is "<a's name>+<b's name>" (each cut to 31
 * characters). FG_ERR_INVALID for differing shapes or dtypes, more than FG_DATASET_MAX_SAMPLES
 * samples in all, or NULL pointers; FG_ERR_BUDGET / FG_ERR_OOM from the allocation. On failure
 * *out is zeroed and nothing stays charged. */
fg_status fg_dataset_concat(const fg_dataset *a, const fg_dataset *b, fg_ledger *ledger, fg_dataset *out);

/* ---------------------------------------------------------------------------------------------
 * Loaders. On failure *ds is zeroed and nothing stays charged to the ledger. Statuses:
 * FG_ERR_IO (missing or unreadable file, with strerror), FG_ERR_FORMAT (bad magic, rank, sizes,
 * truncated data, trailing data, count mismatch, labels out of range, no samples, corrupt gzip),
 * FG_ERR_BUDGET (the ledger's cap; nothing allocated), FG_ERR_INVALID (bad arguments). */

/* Generic IDX pair, gzipped or plain. Images: magic 0x00000803 (u8 [N, H, W], C = 1),
 * 0x00000804 (u8 [N, C, H, W]), 0x00000D03 / 0x00000D04 (big-endian float32, same ranks; values
 * must be finite). Labels: 0x00000801 (u8 [N]). classes = largest label + 1. */
fg_status fg_dataset_load_idx(const char *images_path, const char *labels_path, fg_ledger *ledger,
                              fg_dataset *ds);

/* Fashion-MNIST from `dir` (NULL: FG_FASHION_MNIST_DIR): train-images-idx3-ubyte.gz and
 * train-labels-idx1-ubyte.gz when split_train, else t10k-*; the name without ".gz" is tried when
 * the gzipped file is absent. Checks 1 x 28 x 28 u8 images and labels in [0, 10); classes = 10. */
fg_status fg_dataset_load_fashion_mnist(const char *dir, int split_train, fg_ledger *ledger,
                                        fg_dataset *ds);

/* CIFAR binary files (plain or gzipped), concatenated in the order given. variant 10: records of
 * 1 label byte + 3072 pixel bytes (3 x 32 x 32, channel planes R, G, B); variant 100: 2 label
 * bytes (coarse < 20, fine < 100) + 3072 pixel bytes, the fine label is used. Each file's size
 * must be a non-zero multiple of the record size. classes = variant. */
fg_status fg_dataset_load_cifar(const char *const *paths, int n_paths, int variant,
                                fg_ledger *ledger, fg_dataset *ds);

/* The standard binary layout in `dir`: CIFAR-10 data_batch_1.bin .. data_batch_5.bin (train) or
 * test_batch.bin; CIFAR-100 train.bin or test.bin. */
fg_status fg_dataset_load_cifar_dir(const char *dir, int variant, int split_train,
                                    fg_ledger *ledger, fg_dataset *ds);

/* STL-10 binary files (plain or gzipped): images_path holds N images of 3 x 96 x 96 bytes, each
 * channel plane column-major (pixel (c, row, col) of image n at byte n*27648 + c*9216 + col*96 +
 * row; stored here row-major [N, 3, 96, 96]); labels_path holds N bytes 1..10 (stored as 0..9).
 * The images file's size must be a non-zero multiple of 27648 and the label count must equal the
 * image count. classes = 10. */
fg_status fg_dataset_load_stl10(const char *images_path, const char *labels_path,
                                fg_ledger *ledger, fg_dataset *ds);

/* The official layout in `dir` (the stl10_binary folder): train_X.bin and train_y.bin (5000
 * images) when split_train, else test_X.bin and test_y.bin (8000). */
fg_status fg_dataset_load_stl10_dir(const char *dir, int split_train, fg_ledger *ledger,
                                    fg_dataset *ds);

/* An SVHN cropped-digits MAT-file (format 2): level-5 MAT-file, plain or compressed (MATLAB
 * -v6/-v7, scipy.io.savemat; v7.3/HDF5 files are rejected with a message on converting them),
 * with X [32, 32, 3, N] of integers 0..255 in any numeric class (MATLAB column-major: pixel
 * (row, col) of channel c of image n is element row + 32 col + 1024 c + 3072 n; stored here
 * row-major [N, 3, 32, 32]) and y [N, 1] of digit labels 1..10, 10 meaning 0 (0 is accepted as
 * 0 too; stored as 0..9). Other variables are ignored. classes = 10. */
fg_status fg_dataset_load_svhn(const char *path, fg_ledger *ledger, fg_dataset *ds);

/* train_32x32.mat when split_train, else test_32x32.mat, in `dir`. */
fg_status fg_dataset_load_svhn_dir(const char *dir, int split_train, fg_ledger *ledger,
                                   fg_dataset *ds);

/* ---------------------------------------------------------------------------------------------
 * Views. */

typedef struct fg_dataset_view {
  const fg_dataset *ds;
  const uint32_t *index; /* [n] indices into ds, caller-owned; NULL: the whole dataset in order */
  int64_t n;
} fg_dataset_view;

/* The whole dataset. */
fg_dataset_view fg_dataset_view_all(const fg_dataset *ds);

/* A view of ds->samples index[0..n-1] (repeats allowed). Checks every index < ds->n. The index
 * array is not copied and must outlive the view. */
fg_status fg_dataset_view_subset(const fg_dataset *ds, const uint32_t *index, int64_t n,
                                 fg_dataset_view *view);

/* Dataset index of the view's i-th sample (0 <= i < view->n). */
static inline uint32_t fg_dataset_view_index(const fg_dataset_view *v, int64_t i) {
  return v->index ? v->index[i] : (uint32_t)i;
}
static inline int32_t fg_dataset_view_label(const fg_dataset_view *v, int64_t i) {
  return fg_dataset_labels(v->ds)[fg_dataset_view_index(v, i)];
}

/* ---------------------------------------------------------------------------------------------
 * Transforms. */

#define FG_NORMALIZE_MAX_CHANNELS 16

/* Per-channel normalisation: out = (x - mean[ch]) / std[ch], where x = pixel / 255 for u8 data
 * and the stored value for f32 data. channels == 0: mean[0] and std[0] apply to every channel;
 * otherwise channels must equal the dataset's C. */
typedef struct fg_normalize {
  int channels;
  float mean[FG_NORMALIZE_MAX_CHANNELS];
  float std[FG_NORMALIZE_MAX_CHANNELS];
} fg_normalize;

/* Named presets:
 *   "fashion-mnist"  1 channel  0.2860 / 0.3530
 *   "cifar10"        3 channels (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616)
 *   "cifar100"       3 channels (0.5071, 0.4865, 0.4409) / (0.2673, 0.2564, 0.2762)
 *   "imagenet"       3 channels (0.485, 0.456, 0.406) / (0.229, 0.224, 0.225)
 *   "half"           every channel 0.5 / 0.5 (maps [0, 1] to [-1, 1], as HypeMeFed for SVHN
 *                    and STL-10: x / 255, then (x - 0.5) / 0.5 per channel)
 *   "none"           every channel 0 / 1 (u8 data still scaled to [0, 1]; f32 data raw)
 * An unknown name gives FG_ERR_INVALID listing the known ones. */
fg_status fg_normalize_preset(const char *name, fg_normalize *out);

/* Random augmentation in the order of torchvision's RandomCrop(size=(H, W), padding=pad) then
 * RandomHorizontalFlip(0.5): the image is padded with pixel value 0 (before normalisation) on
 * every side, an H x W window is taken at offsets (dy, dx) uniform in [0, 2 pad]^2, then mirrored
 * left-right with probability 0.5. pad 0 and flip 0 together mean no augmentation. */
typedef struct fg_augment {
  int pad;  /* 0 <= pad <= FG_AUGMENT_MAX_PAD; 0: no crop */
  int flip; /* 0 or 1 */
} fg_augment;

#define FG_AUGMENT_MAX_PAD 64

/* The augmentation key of (seed, epoch, stream_id), e.g. stream_id = client. */
uint64_t fg_augment_key(uint64_t seed, uint64_t epoch, uint64_t stream_id);

/* The draws of the sample at `position` of the epoch order under `key`: crop offsets
 * dy, dx in [0, 2 pad] and the flip bit (always 0 offsets / no flip where disabled). */
void fg_augment_draw(const fg_augment *aug, uint64_t key, int64_t position, int *dy, int *dx,
                     int *flip);

/* ---------------------------------------------------------------------------------------------
 * Batching. */

/* order[0..n-1] := a permutation of 0..n-1: the identity when shuffle == 0, else a Fisher-Yates
 * shuffle from the stream (seed, FG_RNG_SHUFFLE, epoch, stream_id). */
fg_status fg_epoch_order(uint32_t n, uint64_t seed, uint64_t epoch, uint64_t stream_id,
                         int shuffle, uint32_t *order);

/* A batch in host memory, owned by whoever loads data (a trainer copies it in with
 * fg_trainer_set_batch): images f32 [capacity, c, h, w] and labels i32 [capacity] in two host
 * regions charged to a ledger (category data). Owns its regions. */
typedef struct fg_host_batch {
  fg_region images;
  fg_region labels;
  int64_t capacity, c, h, w;
} fg_host_batch;

/* Allocates a host batch of `capacity` >= 1 samples of c x h x w. */
fg_status fg_host_batch_alloc(fg_host_batch *b, fg_ledger *ledger, int64_t capacity, int64_t c,
                              int64_t h, int64_t w);
/* Frees the regions; safe on a zeroed batch. */
void fg_host_batch_free(fg_host_batch *b);
/* Views of the first `count` (<= capacity) samples: images [count, c, h, w], labels [count]. */
fg_tensor fg_host_batch_images(const fg_host_batch *b, int64_t count);
fg_tensor fg_host_batch_labels(const fg_host_batch *b, int64_t count);

/* Assembles the samples at positions start .. start+count-1 of `order` into the first `count`
 * samples of `out` (its c, h, w the dataset's; count <= its capacity): sample p is view sample
 * order[p] (order NULL: the identity), transformed by `aug` (NULL: none) with key `aug_key` and
 * `norm`, with its label. `order` has view->n entries, each < view->n; start + count <= view->n.
 * Threads over samples with OpenMP; results do not depend on the thread count. Allocates
 * nothing. */
fg_status fg_batch_fill(const fg_dataset_view *view, const uint32_t *order, int64_t start,
                        int64_t count, const fg_normalize *norm, const fg_augment *aug,
                        uint64_t aug_key, const fg_host_batch *out);

#endif
