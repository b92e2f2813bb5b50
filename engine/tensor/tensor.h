/* Tensor descriptors: a typed, shaped view of memory on one device.
 *
 * A tensor never owns its memory: data points into a region (engine/mem/region.h) or into
 * caller-owned storage. Layout is dense row-major (NCHW for images, (out, in) for linear weights),
 * rank 1 to 4. Owns nothing. */
#ifndef FG_TENSOR_H
#define FG_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/base/status.h"

typedef enum fg_dtype { FG_F32 = 0, FG_I32, FG_U8 } fg_dtype;

typedef enum fg_device_kind { FG_DEV_CPU = 0, FG_DEV_CUDA = 1, FG_DEV_KINDS } fg_device_kind;

typedef struct fg_device {
  fg_device_kind kind;
  int index;
} fg_device;

#define FG_MAX_DIMS 4

typedef struct fg_tensor {
  void *data;
  int64_t shape[FG_MAX_DIMS]; /* unused trailing extents are 1 */
  int ndim;
  fg_dtype dtype;
  fg_device device;
} fg_tensor;

/* Where host memory lives: datasets, host batches, the FL server's state, anything the CPU
 * reads directly. It is the CPU backend's memory; the device a model trains on is chosen by the
 * user (fg_device_parse) and may be another. */
static inline fg_device fg_host_device(void) {
  fg_device d = {FG_DEV_CPU, 0};
  return d;
}

/* The index of "cuda:local": the device whose number is the process's rank among the processes of
 * its node (one process per GPU under mpirun). The command line resolves it to a number before
 * the device is opened. */
enum { FG_DEVICE_INDEX_LOCAL = -1 };

/* Parses a device name: "cpu", "cuda" (= "cuda:0"), "cuda:N" (N in 0..255) or "cuda:local"
 * (index FG_DEVICE_INDEX_LOCAL). FG_ERR_INVALID naming the text and the accepted forms otherwise.
 * Whether the device exists is the backend registry's business (fg_backend_for). */
fg_status fg_device_parse(const char *text, fg_device *out);
/* Writes "cpu", "cuda:N" or "cuda:local" into buf; returns buf. */
const char *fg_device_str(fg_device d, char *buf, size_t cap);

/* Build a view. `shape` has `ndim` extents (1..4). */
fg_tensor fg_tensor_view(void *data, fg_dtype dtype, fg_device device, int ndim, const int64_t *shape);
fg_tensor fg_tensor_1d(float *data, int64_t n);                               /* host f32 */
fg_tensor fg_tensor_2d(float *data, int64_t rows, int64_t cols);              /* host f32 */
fg_tensor fg_tensor_4d(float *data, int64_t n, int64_t c, int64_t h, int64_t w); /* host f32 */

int64_t fg_tensor_numel(const fg_tensor *t);
size_t fg_dtype_size(fg_dtype dtype);
size_t fg_tensor_bytes(const fg_tensor *t);
int fg_tensor_same_shape(const fg_tensor *a, const fg_tensor *b);
int fg_device_equal(fg_device a, fg_device b);
const char *fg_dtype_name(fg_dtype dtype);
const char *fg_device_kind_name(fg_device_kind kind);

/* Writes "[2, 3, 4]" into buf; returns buf. */
const char *fg_shape_str(const fg_tensor *t, char *buf, size_t cap);

/* Host access to the elements of a tensor in host memory (the CPU backend's own tensors, host
 * batches, tests' host buffers). Any other device's memory is reachable only through its backend
 * (ops, fg_tensor_transfer): for a non-host tensor these return NULL, so a stray host access fails
 * at once instead of reading device memory. */
static inline int fg_tensor_is_host(const fg_tensor *t) { return t->device.kind == FG_DEV_CPU; }
static inline float *fg_f32(const fg_tensor *t) { return fg_tensor_is_host(t) ? (float *)t->data : NULL; }
static inline int32_t *fg_i32(const fg_tensor *t) { return fg_tensor_is_host(t) ? (int32_t *)t->data : NULL; }
static inline uint8_t *fg_u8(const fg_tensor *t) { return fg_tensor_is_host(t) ? (uint8_t *)t->data : NULL; }

#endif
